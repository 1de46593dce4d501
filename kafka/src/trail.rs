//! `trailhound ingest --trail [NAME] --kafka BROKERS`: a trail found by
//! DescribeTrails, its bucket's log files read as they appear
//! (`trailhound_aws::trail`) and sent to the event topic.
//!
//! A file is marked done in the cursor (`<state>/trail-cursor.json`, written
//! then renamed) only after the broker acknowledged its events and dead
//! letters. A file that cannot be read now is left for the next poll; one
//! that can never be read (over the size limit, gone) is a dead letter and
//! done.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use trailhound_aws::trail::{TrailBucket, TrailCursor, day_folder};
use trailhound_aws::{Fetched, ObjectRef};
use trailhound_bus::{BusConfig, EventProducer, RecordProducer, ensure_topics};
use trailhound_core::Position;
use trailhound_ingest::{Limits, ParseContext, parse_input};

use crate::error::KafkaError;
use crate::ingest::{SendEmit, send_dead_letters};

/// The cursor file's name in the state folder.
pub const CURSOR_FILE: &str = "trail-cursor.json";

/// How a trail run behaves.
#[derive(Debug, Clone)]
pub struct TrailOptions {
    /// Folder of the cursor; `None` keeps it in memory.
    pub state: Option<PathBuf>,
    /// Wall time between polls (default 60 s).
    pub every: Duration,
    /// Stop after this many polls (`None`: until stopped).
    pub polls: Option<u32>,
    /// Set to stop between files.
    pub stop: Option<Arc<AtomicBool>>,
    /// Parser limits.
    pub limits: Limits,
}

impl Default for TrailOptions {
    fn default() -> Self {
        Self {
            state: None,
            every: Duration::from_secs(60),
            polls: None,
            stop: None,
            limits: Limits::default(),
        }
    }
}

/// What a trail run did.
#[derive(Debug, Clone, Default)]
pub struct TrailSummary {
    /// Polls done.
    pub polls: u64,
    /// Log files whose events were acknowledged.
    pub files: u64,
    /// Files left for a later poll (reads that failed).
    pub files_retried: u64,
    /// Events acknowledged by the broker.
    pub events: u64,
    /// Dead letters by reason.
    pub dead_letters_by_reason: BTreeMap<String, u64>,
    /// Wall time.
    pub elapsed: Duration,
}

/// Reads the cursor saved in `dir`, or an empty one.
pub fn load_cursor(dir: &Path) -> Result<TrailCursor, KafkaError> {
    let path = dir.join(CURSOR_FILE);
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| KafkaError::Restore {
            path,
            reason: e.to_string(),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(TrailCursor::default()),
        Err(e) => Err(KafkaError::Restore {
            path,
            reason: e.to_string(),
        }),
    }
}

fn save_cursor(dir: &Path, cursor: &TrailCursor) -> Result<(), KafkaError> {
    let fail = |reason: String| KafkaError::StateStore {
        location: dir.join(CURSOR_FILE).display().to_string(),
        reason,
    };
    std::fs::create_dir_all(dir).map_err(|e| fail(e.to_string()))?;
    let tmp = dir.join(format!("{CURSOR_FILE}.tmp"));
    let bytes = serde_json::to_vec(cursor).map_err(|e| fail(e.to_string()))?;
    std::fs::write(&tmp, bytes).map_err(|e| fail(e.to_string()))?;
    std::fs::rename(&tmp, dir.join(CURSOR_FILE)).map_err(|e| fail(e.to_string()))
}

/// Polls the trail's bucket until stopped (or `options.polls`).
pub fn ingest_trail(
    trail: &TrailBucket,
    bus: &BusConfig,
    options: &TrailOptions,
) -> Result<TrailSummary, KafkaError> {
    let started = Instant::now();
    ensure_topics(bus, Duration::from_secs(30))?;
    let producer = EventProducer::new(bus)?;
    let records = RecordProducer::new(bus)?;
    let mut cursor = match &options.state {
        Some(dir) => load_cursor(dir)?,
        None => TrailCursor::default(),
    };
    let mut summary = TrailSummary::default();
    let stopping = || {
        options
            .stop
            .as_ref()
            .is_some_and(|s| s.load(Ordering::Relaxed))
    };
    while !stopping() {
        let now = trailhound_core::time::now_micros();
        match trail.pending(&cursor, now) {
            Ok(pending) => {
                for group in pending.chunks(trail.concurrency.max(1)) {
                    if stopping() {
                        break;
                    }
                    for (o, fetched) in group.iter().zip(trail.fetch_all(group)) {
                        if deliver(o, fetched, &producer, &records, options, &mut summary)? {
                            cursor.mark(&o.key);
                        } else {
                            summary.files_retried += 1;
                        }
                    }
                    cursor.forget_before(&day_folder(now - 86_400_000_000));
                    if let Some(dir) = &options.state {
                        save_cursor(dir, &cursor)?;
                    }
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, bucket = %trail.info().bucket, "listing the trail's bucket failed; trying again after the interval")
            }
        }
        summary.polls += 1;
        if options.polls.is_some_and(|n| summary.polls >= u64::from(n)) {
            break;
        }
        let until = Instant::now() + options.every;
        while Instant::now() < until && !stopping() {
            std::thread::sleep(Duration::from_millis(200).min(options.every));
        }
    }
    summary.elapsed = started.elapsed();
    Ok(summary)
}

/// Sends one file's events; true when it is done (delivered or dead).
fn deliver(
    o: &ObjectRef,
    fetched: Fetched,
    producer: &EventProducer,
    records: &RecordProducer,
    options: &TrailOptions,
    summary: &mut TrailSummary,
) -> Result<bool, KafkaError> {
    let name = o.url();
    let mut ctx = ParseContext::new(name.clone());
    ctx.limits = options.limits;
    let bytes = match fetched {
        Fetched::Bytes(b) => b,
        Fetched::TooLarge { size } => {
            let dl = ctx.dead_letter(
                Position::Whole,
                "input_too_large",
                format!("object of {size} bytes is over the size limit"),
                b"",
            );
            send_dead_letters(&[dl], records, None, &mut summary.dead_letters_by_reason)?;
            return Ok(true);
        }
        Fetched::Missing(e) => {
            let dl = ctx.dead_letter(Position::Whole, "object_missing", e, b"");
            send_dead_letters(&[dl], records, None, &mut summary.dead_letters_by_reason)?;
            return Ok(true);
        }
        Fetched::Failed(e) => {
            tracing::warn!(object = %name, error = %e, "log file could not be read; trying again at the next poll");
            return Ok(false);
        }
    };
    let mut emit = SendEmit {
        sender: producer.begin_input(name),
        dead_letters: Vec::new(),
        error: None,
    };
    parse_input(&bytes, &ctx, &mut emit);
    let SendEmit {
        sender,
        dead_letters,
        error,
    } = emit;
    if let Some(e) = error {
        return Err(e.into());
    }
    let ack = sender.finish()?;
    send_dead_letters(
        &dead_letters,
        records,
        None,
        &mut summary.dead_letters_by_reason,
    )?;
    summary.events += ack.records;
    summary.files += 1;
    Ok(true)
}
