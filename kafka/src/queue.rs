//! `trailhound ingest --sqs QUEUE_URL --kafka BROKERS`: CloudTrail files
//! announced on an SQS queue (S3 notifications, directly or through SNS or
//! EventBridge) read from S3, parsed by the same code as local files, and
//! sent to the event topic keyed by principal.
//!
//! A message is deleted only after the broker acknowledged every event of
//! every object it names and their dead letters were sent: a crash before
//! that leaves it on the queue, to be handed out again after its
//! visibility timeout (at least once; alert ids make the repeats harmless
//! downstream). What can never succeed becomes a dead letter with the
//! reason and the message is deleted: a notification that is not one, an
//! object over the size limit, one deleted before it was read, and (from
//! the parsers) a gzip bomb, a truncated file or a file that is not
//! CloudTrail. An object that cannot be read *now* (network, throttling
//! past the SDK's retries, permissions) leaves its message on the queue
//! with a visibility backoff of 30 s doubling per receive (at most 15
//! minutes), logged with its receive count, so a message that keeps
//! failing goes to the queue's redrive queue after `maxReceiveCount`,
//! never round a hot loop. Digest files and `s3:TestEvent` are skipped.
//! While a message's objects are read its visibility is extended whenever
//! half of it has passed.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use trailhound_aws::{Delivery, Fetched, KeyKind, Notice, ObjectRef, S3Queue, classify_key};
use trailhound_bus::{BusConfig, EventProducer};
use trailhound_core::{DeadLetter, Position};
use trailhound_ingest::{Limits, ParseContext};
use trailhound_sinks::DeadLetterFile;

use crate::error::KafkaError;
use crate::ingest::{send_dead_letters, send_parsed};

/// How a queue run behaves.
#[derive(Debug, Clone, Default)]
pub struct QueueOptions {
    /// Local dead-letter file; `None` sends dead letters to the topic only.
    pub dead_letter_path: Option<std::path::PathBuf>,
    /// Parser limits.
    pub limits: Limits,
    /// Set to stop after the message being worked on.
    pub stop: Option<Arc<AtomicBool>>,
    /// Stop after this many long polls in a row that returned nothing
    /// (`None`: run until stopped).
    pub idle_polls: Option<u32>,
    /// Leave the topics as they are (they exist, or this principal may not
    /// create them); by default absent topics are created first.
    pub skip_topic_creation: bool,
}

/// What a queue run did.
#[derive(Debug, Clone, Default)]
pub struct QueueSummary {
    /// Messages deleted after their objects were delivered.
    pub messages_done: u64,
    /// Messages left on the queue to be retried (reads that failed).
    pub messages_retried: u64,
    /// `s3:TestEvent` messages (deleted).
    pub test_events: u64,
    /// Objects whose events were acknowledged.
    pub objects: u64,
    /// Digest files skipped.
    pub digests_skipped: u64,
    /// Events acknowledged by the broker.
    pub events: u64,
    /// Dead letters by reason.
    pub dead_letters_by_reason: BTreeMap<String, u64>,
    /// True when asked to stop.
    pub stopped: bool,
    /// Wall time.
    pub elapsed: Duration,
}

/// Reads the queue until stopped (or idle, see [`QueueOptions::idle_polls`]).
pub fn ingest_queue(
    queue: &S3Queue,
    bus: &BusConfig,
    options: &QueueOptions,
) -> Result<QueueSummary, KafkaError> {
    let started = Instant::now();
    let (producer, records) = crate::ingest::open_producers(bus, !options.skip_topic_creation)?;
    let mut dead_file = options.dead_letter_path.clone().map(DeadLetterFile::new);
    let mut summary = QueueSummary::default();
    let mut idle = 0u32;
    let stopping = || {
        options
            .stop
            .as_ref()
            .is_some_and(|s| s.load(Ordering::Relaxed))
    };
    while !stopping() {
        let deliveries = match queue.receive() {
            Ok(d) => d,
            Err(e) => {
                // The SDK retried already: wait a little and poll again.
                tracing::warn!(error = %e, "receiving from the queue failed; retrying in 5 s");
                std::thread::sleep(Duration::from_secs(5));
                continue;
            }
        };
        if deliveries.is_empty() {
            idle += 1;
            if options.idle_polls.is_some_and(|n| idle >= n) {
                break;
            }
            continue;
        }
        idle = 0;
        for delivery in deliveries {
            let mut work = Work {
                queue,
                producer: &producer,
                limits: options.limits,
                summary: &mut summary,
                dead_letters: Vec::new(),
                received: Instant::now(),
            };
            let done = work.delivery(&delivery)?;
            let dead_letters = std::mem::take(&mut work.dead_letters);
            send_dead_letters(
                &dead_letters,
                &records,
                dead_file.as_mut(),
                &mut summary.dead_letters_by_reason,
            )?;
            if done {
                match queue.delete(&delivery) {
                    Ok(()) => summary.messages_done += 1,
                    // Delivered but not deleted: it comes back and is sent
                    // again (at least once).
                    Err(e) => {
                        tracing::warn!(message = %delivery.message_id, error = %e, "deleting a delivered message failed")
                    }
                }
            } else {
                summary.messages_retried += 1;
                let wait = trailhound_aws::backoff_seconds(delivery.receive_count);
                if let Err(e) = queue.set_visibility(&delivery, wait) {
                    tracing::warn!(message = %delivery.message_id, error = %e, "setting the retry backoff failed");
                }
            }
        }
    }
    summary.stopped = stopping();
    summary.elapsed = started.elapsed();
    Ok(summary)
}

struct Work<'a> {
    queue: &'a S3Queue,
    producer: &'a EventProducer,
    limits: Limits,
    summary: &'a mut QueueSummary,
    dead_letters: Vec<DeadLetter>,
    received: Instant,
}

impl Work<'_> {
    /// Delivers one message's objects; true when it may be deleted.
    fn delivery(&mut self, d: &Delivery) -> Result<bool, KafkaError> {
        let objects = match &d.notice {
            Ok(Notice::Test) => {
                self.summary.test_events += 1;
                return Ok(true);
            }
            Ok(Notice::Objects(o)) => o,
            Err(e) => {
                self.dead_letters.push(DeadLetter::new(
                    &format!("sqs:{}", d.message_id),
                    Position::Whole,
                    "bad_notification",
                    e.to_string(),
                    b"",
                ));
                return Ok(true);
            }
        };
        let wanted: Vec<ObjectRef> = objects
            .iter()
            .filter(|o| {
                let digest = classify_key(&o.key) == KeyKind::Digest;
                if digest {
                    self.summary.digests_skipped += 1;
                }
                !digest
            })
            .cloned()
            .collect();
        let mut done = true;
        let at_once = self.queue.settings().concurrency.max(1);
        for group in wanted.chunks(at_once) {
            self.keep_invisible(d);
            for (o, fetched) in group.iter().zip(self.queue.fetch_all(group)) {
                done &= self.object(d, o, fetched)?;
            }
        }
        Ok(done)
    }

    /// Extends the message's visibility when half of it has passed.
    fn keep_invisible(&mut self, d: &Delivery) {
        let visibility =
            u64::try_from(self.queue.settings().visibility_seconds.max(1)).unwrap_or(1);
        if self.received.elapsed() >= Duration::from_secs(visibility / 2) {
            match self
                .queue
                .set_visibility(d, self.queue.settings().visibility_seconds)
            {
                Ok(()) => self.received = Instant::now(),
                Err(e) => {
                    tracing::warn!(message = %d.message_id, error = %e, "extending visibility failed")
                }
            }
        }
    }

    fn object(
        &mut self,
        d: &Delivery,
        o: &ObjectRef,
        fetched: Fetched,
    ) -> Result<bool, KafkaError> {
        let name = o.url();
        let mut ctx = ParseContext::new(name.clone());
        ctx.limits = self.limits;
        let bytes = match fetched {
            Fetched::Bytes(b) => b,
            Fetched::TooLarge { size } => {
                self.dead_letters.push(ctx.dead_letter(
                    Position::Whole,
                    "input_too_large",
                    format!(
                        "object of {size} bytes is over the {}-byte limit",
                        self.queue.settings().max_object_bytes
                    ),
                    b"",
                ));
                return Ok(true);
            }
            Fetched::Missing(e) => {
                self.dead_letters
                    .push(ctx.dead_letter(Position::Whole, "object_missing", e, b""));
                return Ok(true);
            }
            Fetched::Failed(e) => {
                tracing::warn!(
                    object = %name,
                    message = %d.message_id,
                    receive_count = d.receive_count,
                    error = %e,
                    "object could not be read; the message is retried later (after the queue's maxReceiveCount it goes to the redrive queue)"
                );
                return Ok(false);
            }
        };
        let (ack, dead_letters) = send_parsed(self.producer, &ctx, &bytes)?;
        self.summary.events += ack.records;
        self.summary.objects += 1;
        self.dead_letters.extend(dead_letters);
        tracing::debug!(object = %name, records = ack.records, "object acknowledged by the broker");
        Ok(true)
    }
}
