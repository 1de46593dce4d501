//! Producers that know when the broker has every record: [`EventProducer`]
//! for events (one input at a time, acknowledged as a whole) and
//! [`RecordProducer`] for alerts, actions and dead letters.
//!
//! Both are idempotent producers with `acks=all`. Every record carries a
//! shared counter of its input (a `Tracker`); librdkafka's delivery report
//! (served by the producer's polling thread) counts it as acknowledged or
//! failed, and the input's sender waits until the counts add up. A failure is
//! returned as [`BusError::Delivery`]; a broker that never answers gives
//! [`BusError::AckTimeout`] once `delivery_timeout_ms` is over (librdkafka
//! fails a record by then itself, so the wait is bounded).

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use rdkafka::ClientContext;
use rdkafka::config::FromClientConfigAndContext;
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::types::RDKafkaErrorCode;
use serde::Serialize;
use trailhound_core::{Alert, Event};

use crate::codec::{SCHEMA_HEADER, encode_event, event_key};
use crate::config::{BusConfig, TopicKind};
use crate::error::BusError;

/// Extra time, beyond `delivery_timeout_ms`, that a sender waits for the
/// delivery reports librdkafka owes it.
const REPORT_GRACE: Duration = Duration::from_secs(5);

/// How long a sender sleeps when librdkafka's local queue is full.
const QUEUE_FULL_BACKOFF: Duration = Duration::from_millis(2);

/// Acknowledgement counts of one input, shared by its records.
#[derive(Debug)]
struct Tracker {
    state: Mutex<TrackState>,
    changed: Condvar,
}

#[derive(Debug, Default)]
struct TrackState {
    acked: u64,
    failed: u64,
    first_error: Option<KafkaError>,
}

impl Tracker {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(TrackState::default()),
            changed: Condvar::new(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, TrackState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn record(&self, outcome: Result<(), &KafkaError>) {
        let mut state = self.lock();
        match outcome {
            Ok(()) => state.acked += 1,
            Err(error) => {
                state.failed += 1;
                if state.first_error.is_none() {
                    state.first_error = Some(error.clone());
                }
            }
        }
        drop(state);
        self.changed.notify_all();
    }

    /// Waits until `sent` records are reported, or `deadline`.
    fn wait(
        &self,
        input: &str,
        sent: u64,
        started: Instant,
        deadline: Instant,
    ) -> Result<(), BusError> {
        let mut state = self.lock();
        loop {
            if state.acked + state.failed >= sent {
                break;
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(BusError::AckTimeout {
                    input: input.to_string(),
                    sent,
                    acked: state.acked,
                    waited: now - started,
                });
            }
            state = self
                .changed
                .wait_timeout(state, deadline - now)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        if state.failed > 0 {
            let first_error = state
                .first_error
                .clone()
                .unwrap_or(KafkaError::MessageProduction(RDKafkaErrorCode::Unknown));
            return Err(BusError::Delivery {
                input: input.to_string(),
                sent,
                failed: state.failed,
                first_error,
            });
        }
        Ok(())
    }
}

/// Records a producer has queued and the broker has not acknowledged (nor
/// librdkafka failed) yet: the backlog a broker outage builds up. Cheap to
/// clone and read from any thread (a metrics scrape).
#[derive(Debug, Clone, Default)]
pub struct PendingRecords(Arc<AtomicI64>);

impl PendingRecords {
    /// Records queued and not yet reported.
    pub fn get(&self) -> i64 {
        self.0.load(Ordering::Relaxed).max(0)
    }

    fn add(&self, n: i64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }
}

/// The producer context: counts each delivery report on its input's tracker.
struct AckContext {
    pending: PendingRecords,
}

impl ClientContext for AckContext {}

impl ProducerContext for AckContext {
    type DeliveryOpaque = Arc<Tracker>;

    fn delivery(&self, result: &DeliveryResult<'_>, tracker: Arc<Tracker>) {
        self.pending.add(-1);
        match result {
            Ok(_) => tracker.record(Ok(())),
            Err((error, _)) => tracker.record(Err(error)),
        }
    }
}

/// The librdkafka producer both public producers share the code of.
struct Acking {
    producer: ThreadedProducer<AckContext>,
    delivery_timeout: Duration,
    pending: PendingRecords,
}

impl Acking {
    fn new(config: &BusConfig) -> Result<Self, BusError> {
        let client_config = config.producer_config()?;
        let pending = PendingRecords::default();
        let context = AckContext {
            pending: pending.clone(),
        };
        let producer = ThreadedProducer::from_config_and_context(&client_config, context).map_err(
            |source| BusError::Client {
                role: "producer",
                source,
            },
        )?;
        Ok(Self {
            producer,
            delivery_timeout: Duration::from_millis(config.delivery_timeout_ms),
            pending,
        })
    }

    /// Queues one record, waiting while librdkafka's local queue is full
    /// (bounded by the delivery timeout).
    fn enqueue(
        &self,
        topic: &str,
        key: &[u8],
        payload: &[u8],
        schema: &str,
        tracker: &Arc<Tracker>,
    ) -> Result<(), BusError> {
        self.enqueue_with(topic, None, key, payload, schema, &[], tracker)
    }

    /// [`Acking::enqueue`] with extra headers and, optionally, a partition
    /// chosen by the caller (else the key's hash picks it).
    #[allow(clippy::too_many_arguments)]
    fn enqueue_with(
        &self,
        topic: &str,
        partition: Option<i32>,
        key: &[u8],
        payload: &[u8],
        schema: &str,
        extra: &[(&str, &[u8])],
        tracker: &Arc<Tracker>,
    ) -> Result<(), BusError> {
        let mut headers = OwnedHeaders::new_with_capacity(1 + extra.len()).insert(Header {
            key: SCHEMA_HEADER,
            value: Some(schema.as_bytes()),
        });
        for (name, value) in extra {
            headers = headers.insert(Header {
                key: name,
                value: Some(*value),
            });
        }
        let mut record = BaseRecord::with_opaque_to(topic, Arc::clone(tracker))
            .key(key)
            .payload(payload)
            .headers(headers);
        if let Some(p) = partition {
            record = record.partition(p);
        }
        let deadline = Instant::now() + self.delivery_timeout;
        loop {
            // Counted before the send: the delivery report may come first.
            self.pending.add(1);
            match self.producer.send(record) {
                Ok(()) => return Ok(()),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back))
                    if Instant::now() < deadline =>
                {
                    self.pending.add(-1);
                    record = back;
                    thread::sleep(QUEUE_FULL_BACKOFF);
                }
                Err((source, _)) => {
                    self.pending.add(-1);
                    return Err(BusError::Enqueue {
                        topic: topic.to_string(),
                        source,
                    });
                }
            }
        }
    }

    fn wait(
        &self,
        input: &str,
        tracker: &Tracker,
        sent: u64,
        started: Instant,
    ) -> Result<(), BusError> {
        let deadline = Instant::now() + self.delivery_timeout + REPORT_GRACE;
        tracker.wait(input, sent, started, deadline)
    }

    fn flush(&self, timeout: Duration) -> Result<(), BusError> {
        self.producer.flush(timeout).map_err(BusError::Flush)
    }
}

/// What the broker acknowledged for one input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputAck {
    /// The input's id (a path, an S3 URL, an SQS message id, ...).
    pub input: String,
    /// Records acknowledged: every record sent for the input.
    pub records: u64,
    /// From the first record queued to the last acknowledgement.
    pub elapsed: Duration,
}

/// Writes events to the event topic, keyed by principal, and tells when the
/// broker has acknowledged every event of an input.
///
/// Cheap to share between reader threads (`&EventProducer` is `Sync`): each
/// input has its own [`InputSender`].
pub struct EventProducer {
    acking: Acking,
    topic: String,
}

impl EventProducer {
    /// A producer for `config`'s event topic.
    pub fn new(config: &BusConfig) -> Result<Self, BusError> {
        Ok(Self {
            acking: Acking::new(config)?,
            topic: config.topic(TopicKind::Events),
        })
    }

    /// The event topic's full name.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// Its records not yet acknowledged, readable from any thread.
    pub fn pending(&self) -> PendingRecords {
        self.acking.pending.clone()
    }

    /// Starts an input: send its events with [`InputSender::send`], then
    /// [`InputSender::finish`] waits for the broker's acknowledgements.
    pub fn begin_input(&self, input: impl Into<String>) -> InputSender<'_> {
        InputSender {
            producer: self,
            input: input.into(),
            tracker: Tracker::new(),
            sent: 0,
            buf: Vec::with_capacity(2048),
            started: Instant::now(),
        }
    }

    /// Sends every event of one input and returns once the broker has
    /// acknowledged all of them (or with the error that prevented it).
    pub fn send_input<'e>(
        &self,
        input: impl Into<String>,
        events: impl IntoIterator<Item = &'e Event>,
    ) -> Result<InputAck, BusError> {
        let mut sender = self.begin_input(input);
        for event in events {
            sender.send(event)?;
        }
        sender.finish()
    }

    /// Waits (at most `timeout`) for every queued record of every input.
    pub fn flush(&self, timeout: Duration) -> Result<(), BusError> {
        self.acking.flush(timeout)
    }
}

/// The events of one input on their way to the broker.
pub struct InputSender<'p> {
    producer: &'p EventProducer,
    input: String,
    tracker: Arc<Tracker>,
    sent: u64,
    buf: Vec<u8>,
    started: Instant,
}

impl InputSender<'_> {
    /// Encodes and queues one event. Returns once librdkafka has it, not
    /// once the broker has it: that is [`InputSender::finish`].
    pub fn send(&mut self, event: &Event) -> Result<(), BusError> {
        self.buf.clear();
        let schema = encode_event(event, &mut self.buf).map_err(|source| BusError::Encode {
            topic: self.producer.topic.clone(),
            source,
        })?;
        self.producer.acking.enqueue(
            &self.producer.topic,
            event_key(event).as_bytes(),
            &self.buf,
            schema,
            &self.tracker,
        )?;
        self.sent += 1;
        Ok(())
    }

    /// Events queued so far.
    pub fn sent(&self) -> u64 {
        self.sent
    }

    /// Waits until the broker has acknowledged every event sent for this
    /// input. Only then may the input be acknowledged to its origin.
    pub fn finish(self) -> Result<InputAck, BusError> {
        self.producer
            .acking
            .wait(&self.input, &self.tracker, self.sent, self.started)?;
        Ok(InputAck {
            input: self.input,
            records: self.sent,
            elapsed: self.started.elapsed(),
        })
    }
}

/// The schema header of JSON records on the alert, action and dead-letter
/// topics: `<kind>.v1+json`.
pub fn record_schema(kind: TopicKind) -> &'static str {
    match kind {
        TopicKind::Events | TopicKind::Rekeyed => crate::codec::EVENT_JSON_V1,
        TopicKind::Alerts => "alert.v1+json",
        TopicKind::Actions => "action.v1+json",
        TopicKind::DeadLetters => "dead-letter.v1+json",
    }
}

/// Writes JSON records (alerts, actions, dead letters) to their topics and
/// returns once the broker acknowledged them.
pub struct RecordProducer {
    acking: Acking,
    config: BusConfig,
}

impl RecordProducer {
    /// A producer for `config`'s topics.
    pub fn new(config: &BusConfig) -> Result<Self, BusError> {
        Ok(Self {
            acking: Acking::new(config)?,
            config: config.clone(),
        })
    }

    /// Its records not yet acknowledged, readable from any thread.
    pub fn pending(&self) -> PendingRecords {
        self.acking.pending.clone()
    }

    /// Sends `(key, record)` pairs as JSON to the topic of `kind` and waits
    /// until the broker acknowledged all of them. Returns how many.
    pub fn send_json<'r, K, T, I>(&self, kind: TopicKind, records: I) -> Result<u64, BusError>
    where
        K: AsRef<str>,
        T: Serialize + 'r,
        I: IntoIterator<Item = (K, &'r T)>,
    {
        let topic = self.config.topic(kind);
        let schema = record_schema(kind);
        let tracker = Tracker::new();
        let started = Instant::now();
        let mut buf = Vec::with_capacity(1024);
        let mut sent = 0u64;
        for (key, record) in records {
            buf.clear();
            serde_json::to_writer(&mut buf, record).map_err(|source| BusError::Encode {
                topic: topic.clone(),
                source,
            })?;
            self.acking
                .enqueue(&topic, key.as_ref().as_bytes(), &buf, schema, &tracker)?;
            sent += 1;
        }
        self.acking.wait(&topic, &tracker, sent, started)?;
        Ok(sent)
    }

    /// Sends alerts to the alert topic, keyed by alert id.
    pub fn send_alerts(&self, alerts: &[Alert]) -> Result<u64, BusError> {
        self.send_json(
            TopicKind::Alerts,
            alerts.iter().map(|a| (a.alert_id.as_str(), a)),
        )
    }

    /// Starts a group of records to any topics, sent one by one with
    /// [`RecordSender::send`] and confirmed together by [`RecordSender::finish`].
    pub fn begin(&self, label: impl Into<String>) -> RecordSender<'_> {
        RecordSender {
            acking: &self.acking,
            label: label.into(),
            tracker: Tracker::new(),
            sent: 0,
            started: Instant::now(),
        }
    }

    /// Waits (at most `timeout`) for every queued record.
    pub fn flush(&self, timeout: Duration) -> Result<(), BusError> {
        self.acking.flush(timeout)
    }
}

/// One record of a [`RecordSender`]: payload already encoded, its schema
/// header, extra headers, and a partition when the caller picks it.
#[derive(Debug, Clone, Copy)]
pub struct RawRecord<'a> {
    /// The destination topic (full name).
    pub topic: &'a str,
    /// The partition; `None` lets the key's hash choose.
    pub partition: Option<i32>,
    /// The message key.
    pub key: &'a [u8],
    /// The payload.
    pub payload: &'a [u8],
    /// The value of the schema header.
    pub schema: &'a str,
    /// Further headers.
    pub headers: &'a [(&'a str, &'a [u8])],
}

/// Records on their way to the broker, confirmed as a group.
pub struct RecordSender<'p> {
    acking: &'p Acking,
    label: String,
    tracker: Arc<Tracker>,
    sent: u64,
    started: Instant,
}

impl RecordSender<'_> {
    /// Queues one record (returns once librdkafka has it).
    pub fn send(&mut self, record: RawRecord<'_>) -> Result<(), BusError> {
        self.acking.enqueue_with(
            record.topic,
            record.partition,
            record.key,
            record.payload,
            record.schema,
            record.headers,
            &self.tracker,
        )?;
        self.sent += 1;
        Ok(())
    }

    /// Records queued so far.
    pub fn sent(&self) -> u64 {
        self.sent
    }

    /// Waits until the broker acknowledged every record sent.
    pub fn finish(self) -> Result<u64, BusError> {
        self.acking
            .wait(&self.label, &self.tracker, self.sent, self.started)?;
        Ok(self.sent)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn producers_are_shared_between_reader_threads() {
        fn shareable<T: Send + Sync>() {}
        shareable::<EventProducer>();
        shareable::<RecordProducer>();
    }

    #[test]
    fn a_failed_record_fails_its_input() {
        let tracker = Tracker::new();
        tracker.record(Ok(()));
        tracker.record(Err(&KafkaError::MessageProduction(
            RDKafkaErrorCode::MessageTimedOut,
        )));
        let started = Instant::now();
        let err = tracker
            .wait("in", 2, started, started + Duration::from_secs(1))
            .unwrap_err();
        assert!(
            matches!(
                err,
                BusError::Delivery {
                    sent: 2,
                    failed: 1,
                    ..
                }
            ),
            "{err}"
        );
        let tracker = Tracker::new();
        tracker.record(Ok(()));
        let err = tracker
            .wait("in", 2, started, Instant::now() + Duration::from_millis(20))
            .unwrap_err();
        assert!(
            matches!(
                err,
                BusError::AckTimeout {
                    sent: 2,
                    acked: 1,
                    ..
                }
            ),
            "{err}"
        );
    }
}
