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
use std::path::Path;
use std::time::{Duration, Instant};

use trailhound_aws::lookup::{LookupCursor, LookupReader};
use trailhound_bus::BusConfig;
use trailhound_ingest::ParseContext;

use crate::error::KafkaError;
use crate::ingest::{send_dead_letters, send_parsed};

/// The cursor file's name in the state folder.
pub const CURSOR_FILE: &str = "lookup-cursor.json";

/// How a LookupEvents run behaves.
pub type LookupOptions = crate::cursor::PollOptions;

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

fn save_cursor(dir: &Path, cursor: &LookupCursor) -> Result<(), KafkaError> {
    crate::cursor::save(dir, CURSOR_FILE, cursor)
}

/// Polls until stopped (or `options.polls`).
pub fn ingest_lookup(
    reader: &mut LookupReader,
    bus: &BusConfig,
    options: &LookupOptions,
) -> Result<LookupSummary, KafkaError> {
    let started = Instant::now();
    let (producer, records) = crate::ingest::open_producers(bus, true)?;
    let mut cursor: LookupCursor = options.load_cursor(CURSOR_FILE)?;
    let mut summary = LookupSummary::default();
    while !options.stopping() {
        let polled = match reader.poll(&cursor, trailhound_core::time::now_micros()) {
            Ok(p) => p,
            Err(e) => {
                // The SDK retried already; the cursor has not moved.
                tracing::warn!(error = %e, "LookupEvents failed; polling again after the interval");
                summary.requests += 1;
                options.pause();
                continue;
            }
        };
        summary.requests += polled.requests;
        summary.duplicates += polled.duplicates;
        let name = format!("cloudtrail:LookupEvents@{}", polled_until(&polled.next));
        let mut ctx = ParseContext::new(name.clone());
        ctx.limits = options.limits;
        let body = polled.records.join("\n");
        let (ack, dead_letters) = send_parsed(&producer, &ctx, body.as_bytes())?;
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
        options.pause();
    }
    summary.elapsed = started.elapsed();
    Ok(summary)
}

fn polled_until(cursor: &LookupCursor) -> i64 {
    cursor.regions.values().map(|c| c.until).max().unwrap_or(0)
}
