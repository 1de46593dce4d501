//! `trailhound ingest --lookup --kafka BROKERS`: CloudTrail's LookupEvents
//! (`trailhound_aws::lookup`) polled region by region and sent to the
//! event topic, for accounts without a trail bucket.
//!
//! Each poll's records are parsed by the CloudTrail parser (one record per
//! line), sent keyed by principal, and only once the broker acknowledged
//! all of them (and their dead letters) is the new cursor written to
//! `<state>/lookup-cursor.json` (write, then rename). A crash or a broker
//! outage in between reads the same window again: at least once, and the
//! event ids make repeats harmless downstream.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use trailhound_aws::lookup::{LookupCursor, LookupReader};
use trailhound_bus::{BusConfig, EventProducer, RecordProducer, ensure_topics};
use trailhound_ingest::{Limits, ParseContext, parse_input};

use crate::error::KafkaError;
use crate::ingest::{SendEmit, send_dead_letters};

/// The cursor file's name in the state folder.
pub const CURSOR_FILE: &str = "lookup-cursor.json";

/// How a LookupEvents run behaves.
#[derive(Debug, Clone)]
pub struct LookupOptions {
    /// Folder of the cursor; `None` keeps it in memory (each start reads
    /// the settings' lookback again).
    pub state: Option<PathBuf>,
    /// Wall time between polls (default 60 s).
    pub every: Duration,
    /// Stop after this many polls (`None`: until stopped).
    pub polls: Option<u32>,
    /// Set to stop between polls.
    pub stop: Option<Arc<AtomicBool>>,
    /// Parser limits.
    pub limits: Limits,
}

impl Default for LookupOptions {
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

/// What a LookupEvents run did.
#[derive(Debug, Clone, Default)]
pub struct LookupSummary {
    /// Polls done (every region read and its events acknowledged).
    pub polls: u64,
    /// Requests made.
    pub requests: u64,
    /// Events acknowledged by the broker.
    pub events: u64,
    /// Events left out as already read in an earlier window.
    pub duplicates: u64,
    /// Dead letters by reason.
    pub dead_letters_by_reason: BTreeMap<String, u64>,
    /// Wall time.
    pub elapsed: Duration,
}

/// Reads the cursor saved in `dir`, or an empty one.
pub fn load_cursor(dir: &Path) -> Result<LookupCursor, KafkaError> {
    let path = dir.join(CURSOR_FILE);
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| KafkaError::Restore {
            path,
            reason: e.to_string(),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(LookupCursor::default()),
        Err(e) => Err(KafkaError::Restore {
            path,
            reason: e.to_string(),
        }),
    }
}

fn save_cursor(dir: &Path, cursor: &LookupCursor) -> Result<(), KafkaError> {
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

/// Polls until stopped (or `options.polls`).
pub fn ingest_lookup(
    reader: &mut LookupReader,
    bus: &BusConfig,
    options: &LookupOptions,
) -> Result<LookupSummary, KafkaError> {
    let started = Instant::now();
    ensure_topics(bus, Duration::from_secs(30))?;
    let producer = EventProducer::new(bus)?;
    let records = RecordProducer::new(bus)?;
    let mut cursor = match &options.state {
        Some(dir) => load_cursor(dir)?,
        None => LookupCursor::default(),
    };
    let mut summary = LookupSummary::default();
    let stopping = || {
        options
            .stop
            .as_ref()
            .is_some_and(|s| s.load(Ordering::Relaxed))
    };
    while !stopping() {
        let polled = match reader.poll(&cursor, trailhound_core::time::now_micros()) {
            Ok(p) => p,
            Err(e) => {
                // The SDK retried already; the cursor has not moved.
                tracing::warn!(error = %e, "LookupEvents failed; polling again after the interval");
                summary.requests += 1;
                pause(options, &stopping);
                continue;
            }
        };
        summary.requests += polled.requests;
        summary.duplicates += polled.duplicates;
        let name = format!("cloudtrail:LookupEvents@{}", polled_until(&polled.next));
        let mut ctx = ParseContext::new(name.clone());
        ctx.limits = options.limits;
        let body = polled.records.join("\n");
        let mut emit = SendEmit {
            sender: producer.begin_input(name),
            dead_letters: Vec::new(),
            error: None,
        };
        if !body.is_empty() {
            parse_input(body.as_bytes(), &ctx, &mut emit);
        }
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
            &records,
            None,
            &mut summary.dead_letters_by_reason,
        )?;
        summary.events += ack.records;
        cursor = polled.next;
        if let Some(dir) = &options.state {
            save_cursor(dir, &cursor)?;
        }
        summary.polls += 1;
        if options.polls.is_some_and(|n| summary.polls >= u64::from(n)) {
            break;
        }
        pause(options, &stopping);
    }
    summary.elapsed = started.elapsed();
    Ok(summary)
}

fn polled_until(cursor: &LookupCursor) -> i64 {
    cursor.regions.values().map(|c| c.until).max().unwrap_or(0)
}

fn pause(options: &LookupOptions, stopping: &dyn Fn() -> bool) {
    let until = Instant::now() + options.every;
    while Instant::now() < until && !stopping() {
        std::thread::sleep(Duration::from_millis(200).min(options.every));
    }
}
