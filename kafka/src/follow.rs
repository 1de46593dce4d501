//! `trailhound ingest --follow LOG... --kafka BROKERS`: gateway logs written
//! on this machine (Teleport audit logs, Cowrie, session JSON lines)
//! followed as they grow and through rotation (`trailhound_ingest::follow`).
//!
//! Every pass polls each log; what a poll read is sent keyed by principal,
//! and only once the broker acknowledged all of it (and its dead letters)
//! is the log's new position written to `<state>/follow-positions.json`
//! (write, then rename). A crash in between reads the same lines again after
//! the restart: at least once, and the event ids (the file's line numbers)
//! make repeats harmless downstream. Without a state folder every start
//! reads the logs from their beginning.
//!
//! A broker outage is ridden out the same way ([`crate::outage`]): after a
//! backoff the logs are read again from the positions the broker last
//! acknowledged, with new producers.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use trailhound_bus::BusConfig;
use trailhound_ingest::{FollowPosition, Follower};
use trailhound_sinks::DeadLetterFile;

use crate::cursor::PollOptions;
use crate::error::KafkaError;
use crate::ingest::{SendEmit, open_producers, send_dead_letters};
use crate::outage::{OutageRetry, Retry};

/// The positions file's name in the state folder.
pub const POSITIONS_FILE: &str = "follow-positions.json";

/// How a follow run behaves.
#[derive(Debug, Clone, Default)]
pub struct FollowOptions {
    /// Pass interval (`every`, 1 s from the CLI), state folder, stop flag,
    /// `polls` (passes) and limits.
    pub poll: PollOptions,
    /// Stop after this many passes in a row that found nothing new.
    pub idle_passes: Option<u32>,
    /// Local dead-letter file besides the dead-letter topic.
    pub dead_letter_path: Option<PathBuf>,
}

/// What a follow run did.
#[derive(Debug, Clone, Default)]
pub struct FollowSummary {
    /// Passes over the logs.
    pub passes: u64,
    /// Lines read.
    pub lines: u64,
    /// Events acknowledged by the broker.
    pub events: u64,
    /// Rotations by rename followed.
    pub rotations: u64,
    /// Truncations seen.
    pub truncations: u64,
    /// Dead letters by reason.
    pub dead_letters_by_reason: BTreeMap<String, u64>,
    /// Polls that could not read their log (permissions, I/O), retried on
    /// the next pass.
    pub read_errors: u64,
    /// Broker outages ridden out (what was read since the last
    /// acknowledged position read and sent again after each).
    pub outages: u64,
    /// Wall time.
    pub elapsed: Duration,
}

/// Where each log stands, by the path given.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Positions {
    logs: BTreeMap<String, FollowPosition>,
}

/// Follows `logs` until stopped, `options.poll.polls` passes, or
/// `options.idle_passes` empty passes in a row.
pub fn ingest_follow(
    logs: &[PathBuf],
    bus: &BusConfig,
    options: &FollowOptions,
) -> Result<FollowSummary, KafkaError> {
    let started = Instant::now();
    let (mut producer, mut records) = open_producers(bus, true)?;
    let mut positions: Positions = options.poll.load_cursor(POSITIONS_FILE)?;
    let limits = options.poll.limits;
    // A follower at the last position the broker acknowledged (or the
    // start of its log).
    let follow_from = |positions: &Positions| -> Vec<(String, Follower)> {
        logs.iter()
            .map(|path| {
                let key = path.display().to_string();
                let follower = match positions.logs.get(&key) {
                    Some(position) => Follower::resume(path, limits, *position),
                    None => Follower::new(path, limits),
                };
                (key, follower)
            })
            .collect()
    };
    let mut followers = follow_from(&positions);
    let mut retry = OutageRetry::new(bus, options.poll.stop.clone());
    let mut dead_file = options.dead_letter_path.clone().map(DeadLetterFile::new);
    let mut summary = FollowSummary::default();
    let mut idle = 0u32;
    while !options.poll.stopping() {
        let mut read = false;
        let mut failed = None;
        'logs: for (key, follower) in &mut followers {
            loop {
                let mut emit = SendEmit {
                    sender: producer.begin_input(key.clone()),
                    dead_letters: Vec::new(),
                    error: None,
                };
                let polled = match follower.poll(trailhound_core::time::now_micros(), &mut emit) {
                    Ok(polled) => polled,
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot read a followed log; trying again on the next pass");
                        summary.read_errors += 1;
                        break;
                    }
                };
                let SendEmit {
                    sender,
                    dead_letters,
                    error,
                } = emit;
                let sent = match error {
                    Some(e) => Err(KafkaError::from(e)),
                    None => sender.finish().map_err(KafkaError::from),
                }
                .and_then(|ack| {
                    send_dead_letters(
                        &dead_letters,
                        &records,
                        dead_file.as_mut(),
                        &mut summary.dead_letters_by_reason,
                    )?;
                    Ok(ack)
                });
                let ack = match sent {
                    Ok(ack) => ack,
                    Err(e) => {
                        failed = Some(e);
                        break 'logs;
                    }
                };
                retry.succeeded();
                summary.events += ack.records;
                summary.lines += polled.lines;
                summary.rotations += polled.rotations;
                summary.truncations += polled.truncations;
                if polled.bytes > 0 || polled.rotations > 0 || polled.truncations > 0 {
                    read = true;
                    positions.logs.insert(key.clone(), follower.position());
                    if let Some(dir) = &options.poll.state {
                        crate::cursor::save(dir, POSITIONS_FILE, &positions)?;
                    }
                }
                if !polled.more {
                    break;
                }
            }
        }
        if let Some(error) = failed {
            // The broker did not take what was read: back off, then read
            // again from the positions it acknowledged, with new producers.
            match retry.after("sending a followed log", error)? {
                Retry::Again => {
                    (producer, records) = open_producers(bus, false)?;
                    followers = follow_from(&positions);
                    summary.outages = retry.outages();
                    continue;
                }
                Retry::Stopped => break,
            }
        }
        summary.passes += 1;
        idle = if read { 0 } else { idle + 1 };
        if options
            .poll
            .polls
            .is_some_and(|n| summary.passes >= u64::from(n))
            || options.idle_passes.is_some_and(|n| idle >= n)
        {
            break;
        }
        if !read {
            options.poll.pause();
        }
    }
    summary.elapsed = started.elapsed();
    Ok(summary)
}
