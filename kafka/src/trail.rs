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
use std::path::Path;
use std::time::{Duration, Instant};

use trailhound_aws::trail::{TrailBucket, TrailCursor, day_folder};
use trailhound_aws::{Fetched, ObjectRef};
use trailhound_bus::{BusConfig, EventProducer, RecordProducer};
use trailhound_core::Position;
use trailhound_ingest::ParseContext;

use crate::error::KafkaError;
use crate::ingest::{send_dead_letters, send_parsed};

/// The cursor file's name in the state folder.
pub const CURSOR_FILE: &str = "trail-cursor.json";

/// How a trail run behaves.
pub type TrailOptions = crate::cursor::PollOptions;

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

fn save_cursor(dir: &Path, cursor: &TrailCursor) -> Result<(), KafkaError> {
    crate::cursor::save(dir, CURSOR_FILE, cursor)
}

/// Polls the trail's bucket until stopped (or `options.polls`).
pub fn ingest_trail(
    trail: &TrailBucket,
    bus: &BusConfig,
    options: &TrailOptions,
) -> Result<TrailSummary, KafkaError> {
    let started = Instant::now();
    let (producer, records) = crate::ingest::open_producers(bus, true)?;
    let mut cursor: TrailCursor = options.load_cursor(CURSOR_FILE)?;
    let mut summary = TrailSummary::default();
    while !options.stopping() {
        let now = trailhound_core::time::now_micros();
        match trail.pending(&cursor, now) {
            Ok(pending) => {
                for group in pending.chunks(trail.concurrency.max(1)) {
                    if options.stopping() {
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
        options.pause();
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
    let (ack, dead_letters) = send_parsed(producer, &ctx, &bytes)?;
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
