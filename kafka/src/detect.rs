//! `trailhound detect --kafka BROKERS --group NAME`: one member of a consumer
//! group on the event topic and the rekeyed topic.
//!
//! - **An engine per event partition.** Events are keyed by principal, so
//!   the rules whose state is per principal ([`crate::scope`]) run exactly on
//!   the partition's own engine.
//! - **Rekeyed rules.** For every other rule the partition's engine only
//!   evaluates the `where` and forwards matching rows to the rekeyed topic,
//!   keyed by the rule's state key, with the rule id and the row's origin
//!   (`topic/partition/offset`) in headers. The member owning a partition of
//!   the rekeyed topic runs those rules' state, one engine per rule. A row
//!   forwarded twice (its origin re-read after a crash upstream) is applied
//!   once: each rekeyed partition keeps, per rule and origin partition, the
//!   highest origin offset applied.
//! - **Event time.** An event partition's watermark is held at the oldest
//!   newest-event-time of its streams (CloudTrail, sessions), as the embedded
//!   pipeline does. Each event partition reports that front to every rekeyed
//!   partition (`front.v1+json` control records, when it moves); a rekeyed
//!   engine holds its watermark at the oldest front of all event partitions,
//!   and closes nothing until every one has reported.
//! - **Durability.** After each poll the forwarded rows, the alerts (sinks,
//!   alert topic, lake) and dead letters are confirmed before the next poll.
//!   Every `checkpoint_every`, on revocation (inside the rebalance, before
//!   the partitions go) and at the end, each partition's state is written to
//!   `<state>/<topic>-<partition>/checkpoint.bin` and only then its offset
//!   committed. A gaining member restores the checkpoint before it processes
//!   the partition's records and skips records the checkpoint already holds.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use arrow::array::RecordBatch;
use trailhound_bus::codec::{
    EVENT_JSON_V1, FRONT_JSON_V1, ORIGIN_HEADER, RULE_HEADER, encode_event,
};
use trailhound_bus::{
    BusConfig, ControlRecord, Delivered, EventConsumer, MessagePosition, Offsets, PartitionId,
    RawRecord, RebalanceNotice, RecordProducer, RecordSender, TopicKind, ensure_named_topics,
    ensure_topics, partition_count,
};
use trailhound_core::{Alert, DeadLetter, Event, ResponseHook, events_to_batch};
use trailhound_detector::Engine;
use trailhound_rules::{CompiledRule, RuleSet, Suppress};
use trailhound_sinks::{AlertSink, DeadLetterFile, LakeHook, Metrics};

use crate::error::KafkaError;
use crate::outage::{OutageRetry, Retry};
use crate::scope::{RekeyedRule, split};
use crate::state::{PartitionState, StateStore};

/// How often a member logs its progress (at `info`).
const PROGRESS_EVERY: Duration = Duration::from_secs(30);

/// How long an event partition without any event waits before it reports
/// "no events" to the rekeyed partitions (which then stop waiting for it).
pub const EMPTY_REPORT_AFTER: Duration = Duration::from_secs(30);

/// How a member runs.
#[derive(Debug, Clone)]
pub struct DetectOptions {
    /// The consumer group.
    pub group: String,
    /// Where partition checkpoints live; `None` keeps state in memory only
    /// (a partition that moves then starts empty on its new owner).
    pub state: Option<StateStore>,
    /// Wall time between checkpoints and commits.
    pub checkpoint_every: Duration,
    /// Flush every window and stop after this long without an event.
    pub exit_when_idle: Option<Duration>,
    /// Most records per poll.
    pub poll_rows: usize,
    /// Longest wait of one poll.
    pub poll_wait: Duration,
    /// Allowed lateness of events in windows and sequences, microseconds.
    pub lateness_micros: i64,
    /// Local dead-letter file (besides the dead-letter topic).
    pub dead_letter_path: Option<PathBuf>,
    /// Also write alerts to the alert topic.
    pub alerts_topic: bool,
}

impl DetectOptions {
    /// Defaults for `group`.
    pub fn new(group: impl Into<String>) -> Self {
        Self {
            group: group.into(),
            state: None,
            checkpoint_every: Duration::from_secs(30),
            exit_when_idle: None,
            poll_rows: 4096,
            poll_wait: Duration::from_millis(100),
            lateness_micros: trailhound_detector::engine::DEFAULT_LATENESS_MICROS,
            dead_letter_path: None,
            alerts_topic: true,
        }
    }
}

/// What a member did.
#[derive(Debug, Clone, Default)]
pub struct DetectSummary {
    /// Events of the event topic processed.
    pub events: u64,
    /// Rows forwarded to the rekeyed topic.
    pub forwarded: u64,
    /// Rekeyed rows applied (duplicates left out).
    pub rekeyed_applied: u64,
    /// Rekeyed rows skipped as already applied.
    pub rekeyed_duplicates: u64,
    /// Records of either topic skipped because a restored checkpoint held them.
    pub skipped_restored: u64,
    /// Dead letters by reason.
    pub dead_letters_by_reason: BTreeMap<String, u64>,
    /// Alerts by rule id.
    pub alerts_by_rule: BTreeMap<String, u64>,
    /// Response actions by `kind mode outcome`.
    pub actions: BTreeMap<String, u64>,
    /// Rule evaluation failures.
    pub rule_errors: u64,
    /// Partitions whose state came from a checkpoint.
    pub partitions_restored: u64,
    /// Partition checkpoints written.
    pub checkpoints: u64,
    /// Rebalance notices seen.
    pub rebalances: u64,
    /// Rules run per partition and rules run through the rekeyed topic.
    pub rules_principal: usize,
    /// See [`DetectSummary::rules_principal`].
    pub rules_rekeyed: usize,
    /// True when it stopped because it was idle.
    pub idle_exit: bool,
    /// Times the member was replaced after a broker outage.
    pub member_restarts: u64,
    /// From the first event polled to the last one's alerts delivered.
    pub busy: Duration,
    /// Wall time.
    pub elapsed: Duration,
}

impl DetectSummary {
    /// All alerts.
    pub fn alerts(&self) -> u64 {
        self.alerts_by_rule.values().sum()
    }
}

/// The optional parts of a run.
pub struct DetectIo<'a> {
    /// Alert sinks (stdout and the configured ones).
    pub sinks: &'a mut [Box<dyn AlertSink>],
    /// The audit lake.
    pub lake: Option<&'a mut dyn LakeHook>,
    /// Prometheus metrics.
    pub metrics: Option<Metrics>,
    /// Set to stop at the next safe point (checkpoint and commit, no flush).
    pub stop: Arc<AtomicBool>,
    /// Automated response: handed every alert; its action records go to
    /// the actions topic (keyed by principal) and the lake, its own alerts
    /// to the sinks. Settled before every commit.
    pub respond: Option<&'a mut dyn ResponseHook>,
}

/// Builds the engines.
struct Factory {
    principal: Vec<CompiledRule>,
    rekeyed: Vec<RekeyedRule>,
    suppress: Suppress,
    lateness: i64,
}

impl Factory {
    fn engine(&self, rules: Vec<CompiledRule>) -> Engine {
        Engine::new(RuleSet::from_rules(rules))
            .with_suppress(self.suppress.clone())
            .with_lateness(self.lateness)
    }

    fn rekeyed(&self, id: &str) -> Option<&RekeyedRule> {
        self.rekeyed.iter().find(|r| r.rule.id == id)
    }
}

/// What a partition holds.
enum Kind {
    /// A partition of the event topic.
    Events {
        engine: Box<Engine>,
        /// Newest event time per stream.
        fronts: BTreeMap<String, i64>,
        /// The front last reported to the rekeyed partitions.
        reported: Option<Option<i64>>,
        /// When it was assigned: a partition without events reports "no
        /// events" only after [`EMPTY_REPORT_AFTER`], so that one whose
        /// records are merely not fetched yet does not release the hold.
        since: Instant,
    },
    /// A partition of the rekeyed topic.
    Rekeyed {
        engines: BTreeMap<String, Engine>,
        applied: HashMap<(String, String), i64>,
        origins: BTreeMap<String, Option<i64>>,
    },
}

struct Part {
    kind: Kind,
    /// Next offset not yet held by the state.
    next: Option<i64>,
    /// Records below this offset are already in the (restored) state.
    skip_below: i64,
    /// Processed since the last checkpoint.
    dirty: bool,
}

impl Part {
    fn front(&self) -> Option<i64> {
        match &self.kind {
            Kind::Events { fronts, .. } => fronts.values().copied().min(),
            Kind::Rekeyed { .. } => None,
        }
    }
}

/// The state shared between the poll loop and the revoke hook.
struct Inner {
    state: Option<StateStore>,
    events_topic: String,
    rekeyed_topic: String,
    event_partitions: usize,
    factory: Factory,
    parts: BTreeMap<PartitionId, Part>,
    checkpoints: u64,
    restored: u64,
    metrics: Option<Metrics>,
}

fn lock(m: &Mutex<Inner>) -> MutexGuard<'_, Inner> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn origin_name(p: &PartitionId) -> String {
    format!("{}/{}", p.topic, p.partition)
}

impl Inner {
    /// Creates (restoring its checkpoint, when there is one) the state of a
    /// newly assigned partition.
    fn assign(&mut self, p: &PartitionId) -> Result<(), KafkaError> {
        if self.parts.contains_key(p) {
            return Ok(());
        }
        let saved = match &self.state {
            Some(store) => store.load(&p.topic, p.partition)?,
            None => None,
        };
        let restored = saved.is_some();
        let saved = saved.unwrap_or_default();
        let restore = |engine: &mut Engine, bytes: &[u8]| -> Result<(), KafkaError> {
            let report = engine
                .restore_state(bytes)
                .map_err(|reason| KafkaError::Restore {
                    path: self
                        .state
                        .as_ref()
                        .map(|s| s.describe(&p.topic, p.partition))
                        .unwrap_or_default(),
                    reason,
                })?;
            if !report.dropped.is_empty() {
                tracing::info!(partition = %origin_name(p), dropped = ?report.dropped, "state of changed or removed rules dropped");
            }
            Ok(())
        };
        let kind = if p.topic == self.rekeyed_topic {
            let mut engines = BTreeMap::new();
            for (id, bytes) in &saved.engines {
                let Some(r) = self.factory.rekeyed(id) else {
                    tracing::info!(rule = %id, "saved state of a rule no longer rekeyed dropped");
                    continue;
                };
                let mut engine = self.factory.engine(vec![r.rule.clone()]);
                restore(&mut engine, bytes)?;
                engines.insert(id.clone(), engine);
            }
            Kind::Rekeyed {
                engines,
                applied: saved
                    .applied
                    .iter()
                    .map(|(r, o, off)| ((r.clone(), o.clone()), *off))
                    .collect(),
                origins: saved.origins.iter().cloned().collect(),
            }
        } else {
            let mut engine = self.factory.engine(self.factory.principal.clone());
            if let Some((_, bytes)) = saved.engines.first() {
                restore(&mut engine, bytes)?;
            }
            Kind::Events {
                engine: Box::new(engine),
                fronts: saved.fronts.iter().cloned().collect(),
                reported: None,
                since: Instant::now(),
            }
        };
        if restored {
            self.restored += 1;
            tracing::info!(partition = %origin_name(p), next = saved.next, "partition state restored");
        }
        self.parts.insert(
            p.clone(),
            Part {
                kind,
                next: restored.then_some(saved.next),
                skip_below: saved.next,
                dirty: false,
            },
        );
        Ok(())
    }

    /// Writes the checkpoint of one partition (when there is a state
    /// folder) and returns the offset to commit for it.
    fn checkpoint(&mut self, p: &PartitionId) -> Result<Option<i64>, KafkaError> {
        let Some(part) = self.parts.get_mut(p) else {
            return Ok(None);
        };
        let Some(next) = part.next else {
            return Ok(None);
        };
        if let Some(store) = &self.state
            && part.dirty
        {
            let mut saved = PartitionState {
                next,
                ..PartitionState::default()
            };
            match &part.kind {
                Kind::Events { engine, fronts, .. } => {
                    saved.fronts = fronts.iter().map(|(k, v)| (k.clone(), *v)).collect();
                    saved.engines.push((
                        String::new(),
                        engine.save_state().map_err(KafkaError::State)?,
                    ));
                }
                Kind::Rekeyed {
                    engines,
                    applied,
                    origins,
                } => {
                    for (id, engine) in engines {
                        saved
                            .engines
                            .push((id.clone(), engine.save_state().map_err(KafkaError::State)?));
                    }
                    saved.applied = applied
                        .iter()
                        .map(|((r, o), off)| (r.clone(), o.clone(), *off))
                        .collect();
                    saved.applied.sort();
                    saved.origins = origins.iter().map(|(k, v)| (k.clone(), *v)).collect();
                }
            }
            store.save(&p.topic, p.partition, &saved)?;
            self.checkpoints += 1;
            if let Some(m) = &self.metrics {
                m.checkpoint_written();
            }
        }
        part.dirty = false;
        Ok(Some(next))
    }

    /// Checkpoints every partition and returns the offsets to commit.
    fn checkpoint_all(&mut self) -> Result<Offsets, KafkaError> {
        let ids: Vec<PartitionId> = self.parts.keys().cloned().collect();
        let mut offsets = Offsets::new();
        for p in ids {
            if let Some(next) = self.checkpoint(&p)?
                && next > 0
            {
                offsets.mark(&MessagePosition {
                    topic: p.topic.clone(),
                    partition: p.partition,
                    offset: next - 1,
                });
            }
        }
        Ok(offsets)
    }

    /// Inside a revocation: checkpoint the partitions and let them go.
    fn revoke(&mut self, partitions: &[PartitionId]) -> Offsets {
        let mut offsets = Offsets::new();
        for p in partitions {
            match self.checkpoint(p) {
                Ok(Some(next)) if next > 0 => offsets.mark(&MessagePosition {
                    topic: p.topic.clone(),
                    partition: p.partition,
                    offset: next - 1,
                }),
                Ok(_) => {}
                Err(error) => {
                    // Not committed either: the new owner resumes from the
                    // last checkpoint and the committed offset, consistently.
                    tracing::error!(partition = %origin_name(p), %error, "checkpoint of a revoked partition failed");
                }
            }
            self.parts.remove(p);
        }
        offsets
    }

    /// The hold of a rekeyed engine: the oldest front of all event partitions.
    fn rekeyed_hold(&self, origins: &BTreeMap<String, Option<i64>>) -> Option<i64> {
        if origins.len() < self.event_partitions {
            return Some(i64::MIN);
        }
        origins.values().flatten().copied().min()
    }
}

/// Alerts and records of one poll, confirmed before the next.
struct Outbox {
    alerts: Vec<Alert>,
    dead_letters: Vec<DeadLetter>,
}

/// Runs one member until it is stopped or idle (see the module page).
///
/// A broker outage does not end the run: when a step fails with a transient
/// error ([`KafkaError::is_transient`]) the member is dropped without
/// checkpointing anything it has not delivered, and after a backoff a new
/// one joins the group, restores the partitions' checkpoints and resumes from
/// the committed offsets (what was processed since is processed again, with
/// the same alert ids). It gives up once an outage lasts longer than the
/// bus's `max_outage_secs`.
pub fn run(
    bus: &BusConfig,
    rules: &RuleSet,
    suppress: Suppress,
    options: &DetectOptions,
    io: DetectIo<'_>,
) -> Result<DetectSummary, KafkaError> {
    let started = Instant::now();
    let DetectIo {
        sinks,
        mut lake,
        metrics,
        stop,
        mut respond,
    } = io;
    let mut summary = DetectSummary::default();
    let mut dead_file = options.dead_letter_path.clone().map(DeadLetterFile::new);
    let mut retry = OutageRetry::new(bus, Some(Arc::clone(&stop)));
    loop {
        let member = Member {
            sinks: &mut *sinks,
            lake: lake.as_deref_mut(),
            metrics: metrics.clone(),
            stop: Arc::clone(&stop),
            respond: respond.as_deref_mut(),
            dead_file: dead_file.as_mut(),
            retry: &mut retry,
        };
        let Err(error) = run_member(bus, rules, suppress.clone(), options, member, &mut summary)
        else {
            break;
        };
        match retry.after("running the group member", error)? {
            Retry::Again => {
                summary.member_restarts += 1;
                if let Some(m) = &metrics {
                    m.bus_restart("detect");
                }
            }
            Retry::Stopped => break,
        }
    }
    for s in sinks.iter_mut() {
        s.flush()?;
    }
    if let Some(l) = lake {
        l.close()?;
    }
    if let Some(f) = dead_file.as_mut() {
        f.flush()?;
    }
    summary.elapsed = started.elapsed();
    Ok(summary)
}

/// What one incarnation of the member borrows from the run (`'a`) of what
/// the run was given (`'b`).
struct Member<'a, 'b> {
    sinks: &'a mut [Box<dyn AlertSink>],
    lake: Option<&'a mut (dyn LakeHook + 'b)>,
    metrics: Option<Metrics>,
    stop: Arc<AtomicBool>,
    respond: Option<&'a mut (dyn ResponseHook + 'b)>,
    dead_file: Option<&'a mut DeadLetterFile>,
    retry: &'a mut OutageRetry,
}

/// One incarnation of the member: joins the group and runs until stopped,
/// idle, or an error. On an error nothing undelivered is checkpointed or
/// committed, and the consumer leaves within a bounded time.
fn run_member(
    bus: &BusConfig,
    rules: &RuleSet,
    suppress: Suppress,
    options: &DetectOptions,
    io: Member<'_, '_>,
    summary: &mut DetectSummary,
) -> Result<(), KafkaError> {
    let mut io = io;
    let metrics = io.metrics.clone();
    ensure_topics(bus, Duration::from_secs(30))?;
    let events_topic = bus.topic(TopicKind::Events);
    // One rekeyed topic per group: another group's forwarded rows are not ours.
    let rekeyed_topic = format!(
        "{}.{}",
        bus.topic(TopicKind::Rekeyed),
        topic_safe(&options.group)
    );
    ensure_named_topics(
        bus,
        std::slice::from_ref(&rekeyed_topic),
        Duration::from_secs(30),
    )?;
    let timeout = Duration::from_secs(10);
    let event_partitions = partition_count(bus, &events_topic, timeout)?.unwrap_or(0);
    let rekeyed_partitions = partition_count(bus, &rekeyed_topic, timeout)?.unwrap_or(0) as i32;
    let parts = split(rules.rules());
    summary.rules_principal = parts.principal.len();
    summary.rules_rekeyed = parts.rekeyed.len();
    for r in &parts.rekeyed {
        tracing::info!(rule = %r.rule.id, key = %r.by.describe(), "rule runs through the rekeyed topic");
    }
    if !parts.left_out.is_empty() {
        tracing::warn!(
            rules = %parts.left_out.join(", "),
            "Grant rules are not run over Kafka: a partition does not see every grant event; run them in the embedded detector."
        );
    }
    let shared = Arc::new(Mutex::new(Inner {
        state: options.state.clone(),
        events_topic: events_topic.clone(),
        rekeyed_topic: rekeyed_topic.clone(),
        event_partitions,
        factory: Factory {
            principal: parts.principal,
            rekeyed: parts.rekeyed,
            suppress,
            lateness: options.lateness_micros,
        },
        parts: BTreeMap::new(),
        checkpoints: 0,
        restored: 0,
        metrics: metrics.clone(),
    }));
    let producer = RecordProducer::new(bus)?;
    if let Some(m) = &metrics {
        m.watch_pending("detect", vec![producer.pending()]);
    }
    let mut consumer = EventConsumer::subscribe_topics(
        bus,
        &options.group,
        &[events_topic.as_str(), rekeyed_topic.as_str()],
    )?;
    {
        let shared = Arc::clone(&shared);
        consumer.set_revoke_hook(move |partitions| Some(lock(&shared).revoke(partitions)));
    }
    let outcome = member_loop(
        &mut consumer,
        &shared,
        &producer,
        &rekeyed_topic,
        rekeyed_partitions,
        options,
        &mut io,
        summary,
    );
    {
        let inner = lock(&shared);
        summary.checkpoints += inner.checkpoints;
        summary.partitions_restored += inner.restored;
    }
    if outcome.is_err() {
        // Nothing the failed step left undelivered may be checkpointed
        // when the consumer leaves: the next member restores the last
        // checkpoints and reads from the committed offsets instead.
        lock(&shared).parts.clear();
    }
    // Leaving the group revokes what is left: nothing new to checkpoint.
    // Bounded: a stalled coordinator (or a broker that is down) must not
    // keep a finished run from exiting, nor a failed member from being
    // replaced (every offset that matters is already committed).
    let leave = if outcome.is_ok() { 30 } else { 5 };
    consumer.close(Duration::from_secs(leave));
    outcome
}

/// Polls, evaluates and delivers until stopped or idle (the module page says
/// in which order outputs are confirmed).
#[allow(clippy::too_many_arguments)]
fn member_loop(
    consumer: &mut EventConsumer,
    shared: &Arc<Mutex<Inner>>,
    producer: &RecordProducer,
    rekeyed_topic: &str,
    rekeyed_partitions: i32,
    options: &DetectOptions,
    io: &mut Member<'_, '_>,
    summary: &mut DetectSummary,
) -> Result<(), KafkaError> {
    let Member {
        sinks,
        lake,
        metrics,
        stop,
        respond,
        dead_file,
        retry,
    } = io;
    let metrics = metrics.as_ref();
    let mut last_event = Instant::now();
    let mut last_checkpoint = Instant::now();
    let mut last_lag = Instant::now();
    let mut last_progress = Instant::now();
    let mut encode_buf = Vec::with_capacity(2048);
    let mut first_event: Option<Instant> = None;

    loop {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let batch = consumer.poll_batch(options.poll_rows, options.poll_wait)?;
        let mut inner = lock(shared);
        for notice in &batch.rebalances {
            summary.rebalances += 1;
            match notice {
                RebalanceNotice::Assigned(ps) => {
                    for p in ps {
                        inner.assign(p)?;
                    }
                    // Idle counts from the last assignment: a member that
                    // takes over partitions is not idle before reading them.
                    last_event = Instant::now();
                }
                RebalanceNotice::Revoked(ps) => {
                    for p in ps {
                        // Already checkpointed by the hook, unless lost.
                        inner.parts.remove(p);
                    }
                }
                RebalanceNotice::Failed(e) => tracing::warn!(error = %e, "rebalance failed"),
            }
        }
        let had_events = !batch.events.is_empty() || !batch.undecodable.is_empty();
        if had_events {
            last_event = Instant::now();
            first_event.get_or_insert(last_event);
        }
        let mut out = Outbox {
            alerts: Vec::new(),
            dead_letters: Vec::new(),
        };
        let mut sender = producer.begin("forwarded rows");

        for u in &batch.undecodable {
            let p = u.position.partition_id();
            inner.assign(&p)?;
            if let Some(part) = inner.parts.get_mut(&p) {
                if u.position.offset < part.skip_below {
                    continue;
                }
                part.next = Some(u.position.offset + 1);
                part.dirty = true;
            }
            out.dead_letters.push(u.to_dead_letter());
        }

        // Events, per partition in offset order.
        let mut by_partition: BTreeMap<PartitionId, Vec<&Delivered>> = BTreeMap::new();
        for d in &batch.events {
            by_partition
                .entry(d.position.partition_id())
                .or_default()
                .push(d);
        }
        for (p, delivered) in by_partition {
            inner.assign(&p)?;
            if p.topic == inner.events_topic {
                process_events(
                    &mut inner,
                    &p,
                    &delivered,
                    &mut sender,
                    &mut encode_buf,
                    rekeyed_topic,
                    &mut out,
                    summary,
                    lake.as_deref_mut(),
                )?;
            } else {
                process_rekeyed(&mut inner, &p, &delivered, &mut out, summary)?;
            }
        }

        // Front reports after the rows: a report may only ever hold later rows.
        apply_control(&mut inner, &batch.control, summary)?;

        // Fronts to the rekeyed partitions, when they moved.
        if rekeyed_partitions > 0 && !inner.factory.rekeyed.is_empty() {
            let mut moved = Vec::new();
            for (p, part) in inner.parts.iter_mut() {
                let front = part.front();
                if let Kind::Events {
                    reported, since, ..
                } = &mut part.kind
                    && *reported != Some(front)
                    && (front.is_some() || since.elapsed() >= EMPTY_REPORT_AFTER)
                {
                    *reported = Some(front);
                    moved.push((origin_name(p), front));
                }
            }
            for (origin, front) in moved {
                let payload = serde_json::to_vec(&serde_json::json!({
                    "source": origin,
                    "front": front,
                }))
                .map_err(|e| KafkaError::State(e.to_string()))?;
                for r in 0..rekeyed_partitions {
                    sender.send(RawRecord {
                        topic: rekeyed_topic,
                        partition: Some(r),
                        key: origin.as_bytes(),
                        payload: &payload,
                        schema: FRONT_JSON_V1,
                        headers: &[],
                    })?;
                }
            }
        }

        // Idle: nothing new for the whole period, and the broker says every
        // owned partition is read to its end (a member cut off from a broker
        // that is down, or waiting for its partitions back, is not idle).
        let idle = options
            .exit_when_idle
            .is_some_and(|limit| last_event.elapsed() >= limit)
            && caught_up(consumer, &inner);
        if idle {
            flush_all(&mut inner, &mut out, summary);
        }
        drop(inner);
        summary.forwarded += sender.sent();
        sender.finish()?;
        deliver(
            &out,
            producer,
            options,
            sinks,
            lake.as_deref_mut(),
            metrics,
            dead_file.as_deref_mut(),
            summary,
        )?;
        let settle = idle || last_checkpoint.elapsed() >= options.checkpoint_every;
        respond_step(
            respond.as_deref_mut(),
            &out.alerts,
            settle,
            producer,
            options,
            sinks,
            lake.as_deref_mut(),
            metrics,
            summary,
        )?;
        if had_events && let Some(first) = first_event {
            summary.busy = first.elapsed();
        }

        // Everything of this poll is delivered: an outage, if there was
        // one, is over.
        retry.succeeded();
        if last_progress.elapsed() >= PROGRESS_EVERY {
            last_progress = Instant::now();
            let owned = lock(shared).parts.len();
            tracing::info!(
                events = summary.events,
                alerts = summary.alerts(),
                partitions = owned,
                idle = ?last_event.elapsed(),
                "Detector progress."
            );
            // Waiting to exit when idle far longer than asked: say which
            // partitions keep it from being caught up.
            if let Some(limit) = options.exit_when_idle
                && last_event.elapsed() >= limit.saturating_mul(3)
            {
                match behind(consumer, &lock(shared)) {
                    Ok(lagging) if !lagging.is_empty() => {
                        let partitions: Vec<String> =
                            lagging.iter().map(ToString::to_string).collect();
                        tracing::info!(
                            partitions = ?partitions,
                            "Idle but not caught up: these partitions end past what was read; fetching them again from there."
                        );
                        // Records the broker holds but no fetch delivers
                        // (seen with tansu after a member restarts): start
                        // the partition's fetch again at the first record
                        // the state does not hold. Nothing is read twice.
                        for b in lagging.iter().filter(|b| b.high.is_some()) {
                            if let Err(e) =
                                consumer.seek(&b.partition, b.next, Duration::from_secs(2))
                            {
                                tracing::warn!(partition = %b, error = %e, "Fetching a partition again failed.");
                            }
                        }
                    }
                    Ok(_) => {}
                    Err(e) => {
                        tracing::info!(error = %e, "Idle; the committed offsets cannot be read.")
                    }
                }
            }
        }
        if let Some(m) = metrics
            && last_lag.elapsed() >= Duration::from_secs(5)
        {
            last_lag = Instant::now();
            feed_lag(consumer, shared, m);
        }
        if let Some(l) = lake.as_deref_mut() {
            l.tick()?;
        }
        if idle || last_checkpoint.elapsed() >= options.checkpoint_every {
            commit_all(consumer, shared, lake.as_deref_mut())?;
            last_checkpoint = Instant::now();
        }
        if idle {
            summary.idle_exit = true;
            break;
        }
    }
    if !summary.idle_exit {
        respond_step(
            respond.as_deref_mut(),
            &[],
            true,
            producer,
            options,
            sinks,
            lake.as_deref_mut(),
            metrics,
            summary,
        )?;
        commit_all(consumer, shared, lake.as_deref_mut())?;
    }
    Ok(())
}

/// A group name as a topic name part: characters Kafka refuses become `_`.
fn topic_safe(group: &str) -> String {
    group
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Front reports on rekeyed partitions.
fn apply_control(
    inner: &mut Inner,
    control: &[ControlRecord],
    summary: &mut DetectSummary,
) -> Result<(), KafkaError> {
    for c in control {
        let p = c.position.partition_id();
        inner.assign(&p)?;
        let Some(part) = inner.parts.get_mut(&p) else {
            continue;
        };
        if c.position.offset < part.skip_below {
            summary.skipped_restored += 1;
            continue;
        }
        part.next = Some(c.position.offset + 1);
        part.dirty = true;
        if c.schema != FRONT_JSON_V1 {
            continue;
        }
        #[derive(serde::Deserialize)]
        struct Front {
            source: String,
            front: Option<i64>,
        }
        let Ok(front) = serde_json::from_slice::<Front>(&c.payload) else {
            tracing::warn!(position = ?c.position, "a front record that does not parse was skipped");
            continue;
        };
        if let Kind::Rekeyed { origins, .. } = &mut part.kind {
            let slot = origins.entry(front.source).or_insert(front.front);
            *slot = (*slot).max(front.front);
        }
    }
    Ok(())
}

/// Runs a partition's engine on its new events and forwards the rows of
/// rekeyed rules.
#[allow(clippy::too_many_arguments)]
fn process_events(
    inner: &mut Inner,
    p: &PartitionId,
    delivered: &[&Delivered],
    sender: &mut RecordSender<'_>,
    buf: &mut Vec<u8>,
    rekeyed_topic: &str,
    out: &mut Outbox,
    summary: &mut DetectSummary,
    lake: Option<&mut (dyn LakeHook + '_)>,
) -> Result<(), KafkaError> {
    let metrics = inner.metrics.clone();
    let Inner { parts, factory, .. } = inner;
    let Some(part) = parts.get_mut(p) else {
        return Ok(());
    };
    let mut events: Vec<Event> = Vec::with_capacity(delivered.len());
    let mut offsets: Vec<i64> = Vec::with_capacity(delivered.len());
    for d in delivered {
        if d.position.offset < part.skip_below {
            summary.skipped_restored += 1;
            continue;
        }
        events.push(d.event.clone());
        offsets.push(d.position.offset);
    }
    let Some(&last) = offsets.last() else {
        return Ok(());
    };
    let Kind::Events { engine, fronts, .. } = &mut part.kind else {
        return Ok(());
    };
    for e in &events {
        let seen = fronts
            .entry(e.source.as_str().to_string())
            .or_insert(e.event_time);
        *seen = (*seen).max(e.event_time);
    }
    engine.hold_watermark(fronts.values().copied().min());
    let batch = events_to_batch(&events);
    let took = Instant::now();
    match engine.process(&batch) {
        Ok(alerts) => out.alerts.extend(alerts),
        Err(e) => {
            tracing::error!(error = %e, "rule evaluation failed on a batch");
            summary.rule_errors += 1;
            if let Some(m) = &metrics {
                m.rule_error();
            }
        }
    }
    if let Some(m) = &metrics {
        m.events_read(&events);
        m.batch_evaluated(&batch, took.elapsed());
    }
    if let Some(l) = lake {
        l.record_batch(&batch)?;
    }
    summary.events += events.len() as u64;
    forward(
        factory,
        p,
        &batch,
        &events,
        &offsets,
        sender,
        buf,
        rekeyed_topic,
        summary,
    )?;
    part.next = Some(last + 1);
    part.dirty = true;
    Ok(())
}

/// Forwards the rows of every rekeyed rule to the rekeyed topic.
#[allow(clippy::too_many_arguments)]
fn forward(
    factory: &Factory,
    p: &PartitionId,
    batch: &RecordBatch,
    events: &[Event],
    offsets: &[i64],
    sender: &mut RecordSender<'_>,
    buf: &mut Vec<u8>,
    rekeyed_topic: &str,
    summary: &mut DetectSummary,
) -> Result<(), KafkaError> {
    let origin = origin_name(p);
    for r in &factory.rekeyed {
        let rows = match r.rows_to_forward(batch) {
            Ok(rows) => rows,
            Err(e) => {
                tracing::error!(rule = %r.rule.id, error = %e, "evaluating a rekeyed rule failed on a batch");
                summary.rule_errors += 1;
                continue;
            }
        };
        for (row, key) in rows {
            let (Some(event), Some(offset)) = (events.get(row), offsets.get(row)) else {
                continue;
            };
            buf.clear();
            let schema = encode_event(event, buf).map_err(|e| KafkaError::State(e.to_string()))?;
            debug_assert_eq!(schema, EVENT_JSON_V1);
            let at = format!("{origin}/{offset}");
            sender.send(RawRecord {
                topic: rekeyed_topic,
                partition: None,
                key: key.as_bytes(),
                payload: buf,
                schema,
                headers: &[
                    (RULE_HEADER, r.rule.id.as_bytes()),
                    (ORIGIN_HEADER, at.as_bytes()),
                ],
            })?;
        }
    }
    Ok(())
}

/// Applies rekeyed rows to the engines of their rules.
fn process_rekeyed(
    inner: &mut Inner,
    p: &PartitionId,
    delivered: &[&Delivered],
    out: &mut Outbox,
    summary: &mut DetectSummary,
) -> Result<(), KafkaError> {
    let metrics = inner.metrics.clone();
    let hold_of = {
        let Some(Part {
            kind: Kind::Rekeyed { origins, .. },
            ..
        }) = inner.parts.get(p)
        else {
            return Ok(());
        };
        inner.rekeyed_hold(origins)
    };
    let Inner { parts, factory, .. } = inner;
    let Some(part) = parts.get_mut(p) else {
        return Ok(());
    };
    let Kind::Rekeyed {
        engines, applied, ..
    } = &mut part.kind
    else {
        return Ok(());
    };
    // Rows per rule, in offset order.
    let mut per_rule: BTreeMap<String, Vec<Event>> = BTreeMap::new();
    let mut last = None;
    for d in delivered {
        last = Some(d.position.offset);
        if d.position.offset < part.skip_below {
            summary.skipped_restored += 1;
            continue;
        }
        let (Some(rule), Some(at)) = (d.header(RULE_HEADER), d.header(ORIGIN_HEADER)) else {
            out.dead_letters.push(DeadLetter::new(
                &format!("kafka:{}/{}", p.topic, p.partition),
                trailhound_core::Position::Record(u64::try_from(d.position.offset).unwrap_or(0)),
                "missing_rekey_headers",
                "a rekeyed event without its rule or origin header",
                d.event.event_id.as_bytes(),
            ));
            continue;
        };
        let Some((origin, offset)) = at
            .rsplit_once('/')
            .and_then(|(o, off)| off.parse::<i64>().ok().map(|off| (o, off)))
        else {
            continue;
        };
        if factory.rekeyed(rule).is_none() {
            tracing::warn!(
                rule,
                "a rekeyed event for a rule this member does not run was skipped"
            );
            continue;
        }
        let seen = applied
            .entry((rule.to_string(), origin.to_string()))
            .or_insert(-1);
        if offset <= *seen {
            summary.rekeyed_duplicates += 1;
            continue;
        }
        *seen = offset;
        per_rule
            .entry(rule.to_string())
            .or_default()
            .push(d.event.clone());
    }
    if let Some(last) = last {
        part.next = Some(last + 1);
        part.dirty = true;
    }
    for (rule, events) in per_rule {
        let Some(r) = factory.rekeyed(&rule) else {
            continue;
        };
        let engine = engines
            .entry(rule.clone())
            .or_insert_with(|| factory.engine(vec![r.rule.clone()]));
        engine.hold_watermark(hold_of);
        summary.rekeyed_applied += events.len() as u64;
        let batch = events_to_batch(&events);
        match engine.process(&batch) {
            Ok(alerts) => out.alerts.extend(alerts),
            Err(e) => {
                tracing::error!(rule = %rule, error = %e, "rule evaluation failed on a rekeyed batch");
                summary.rule_errors += 1;
                if let Some(m) = &metrics {
                    m.rule_error();
                }
            }
        }
    }
    for engine in engines.values_mut() {
        engine.hold_watermark(hold_of);
    }
    Ok(())
}

/// End of input: close every window and sequence of every partition.
fn flush_all(inner: &mut Inner, out: &mut Outbox, summary: &mut DetectSummary) {
    for part in inner.parts.values_mut() {
        let engines: Vec<&mut Engine> = match &mut part.kind {
            Kind::Events { engine, .. } => vec![engine.as_mut()],
            Kind::Rekeyed { engines, .. } => engines.values_mut().collect(),
        };
        for engine in engines {
            engine.hold_watermark(None);
            match engine.flush() {
                Ok(alerts) => out.alerts.extend(alerts),
                Err(e) => {
                    tracing::error!(error = %e, "closing windows failed");
                    summary.rule_errors += 1;
                }
            }
        }
        part.dirty = true;
    }
}

/// Confirms the alerts and dead letters of one poll.
#[allow(clippy::too_many_arguments)]
fn deliver(
    out: &Outbox,
    producer: &RecordProducer,
    options: &DetectOptions,
    sinks: &mut [Box<dyn AlertSink>],
    lake: Option<&mut (dyn LakeHook + '_)>,
    metrics: Option<&Metrics>,
    dead_file: Option<&mut DeadLetterFile>,
    summary: &mut DetectSummary,
) -> Result<(), KafkaError> {
    if !out.dead_letters.is_empty() {
        if let Some(f) = dead_file {
            for dl in &out.dead_letters {
                f.write(dl)?;
            }
            f.flush()?;
        }
        producer.send_json(
            TopicKind::DeadLetters,
            out.dead_letters.iter().map(|d| (d.origin.as_str(), d)),
        )?;
        for dl in &out.dead_letters {
            *summary
                .dead_letters_by_reason
                .entry(dl.reason.to_string())
                .or_default() += 1;
            if let Some(m) = metrics {
                m.dead_letter(dl.reason);
            }
        }
    }
    if out.alerts.is_empty() {
        return Ok(());
    }
    if let Some(l) = lake {
        l.record_alerts(&out.alerts)?;
    }
    for alert in &out.alerts {
        *summary
            .alerts_by_rule
            .entry(alert.rule_id.clone())
            .or_default() += 1;
        for s in sinks.iter_mut() {
            s.send(alert)?;
        }
    }
    for s in sinks.iter_mut() {
        s.flush()?;
    }
    if options.alerts_topic {
        producer.send_alerts(&out.alerts)?;
    }
    if let Some(m) = metrics {
        m.alerts_raised(&out.alerts);
    }
    Ok(())
}

/// Hands a poll's alerts to the responder and records what it decided:
/// action records on the actions topic (keyed by principal; gateways that
/// listen there take `end-gateway-session` records as their command) and
/// in the lake, the responder's own alerts to the sinks. `settle` waits
/// (bounded) for every alert so far, before a commit.
#[allow(clippy::too_many_arguments)]
fn respond_step(
    respond: Option<&mut (dyn ResponseHook + '_)>,
    alerts: &[Alert],
    settle: bool,
    producer: &RecordProducer,
    options: &DetectOptions,
    sinks: &mut [Box<dyn AlertSink>],
    mut lake: Option<&mut (dyn LakeHook + '_)>,
    metrics: Option<&Metrics>,
    summary: &mut DetectSummary,
) -> Result<(), KafkaError> {
    let Some(r) = respond else {
        return Ok(());
    };
    let own: Vec<Alert> = alerts
        .iter()
        .filter(|a| !a.rule_id.starts_with("trailhound-response-"))
        .cloned()
        .collect();
    if !own.is_empty() {
        r.alerts(&own);
    }
    let out = if settle {
        r.settle(Duration::from_secs(60))
    } else {
        r.poll()
    };
    if !out.actions.is_empty() {
        producer.send_json(
            TopicKind::Actions,
            out.actions.iter().map(|a| (a.principal.as_str(), a)),
        )?;
        if let Some(l) = lake.as_deref_mut() {
            l.record_actions(&out.actions)?;
        }
        for a in &out.actions {
            *summary
                .actions
                .entry(format!(
                    "{} {} {}",
                    a.kind,
                    a.mode.as_str(),
                    a.outcome.as_str()
                ))
                .or_default() += 1;
            if let Some(m) = metrics {
                m.action(&a.kind, a.outcome.as_str());
            }
        }
    }
    if !out.alerts.is_empty() {
        let outbox = Outbox {
            alerts: out.alerts,
            dead_letters: Vec::new(),
        };
        deliver(
            &outbox, producer, options, sinks, lake, metrics, None, summary,
        )?;
    }
    Ok(())
}

/// Checkpoints every partition and commits their offsets (after the lake's
/// open files are published).
fn commit_all(
    consumer: &EventConsumer,
    shared: &Mutex<Inner>,
    lake: Option<&mut (dyn LakeHook + '_)>,
) -> Result<(), KafkaError> {
    if let Some(l) = lake {
        l.close()?;
    }
    let offsets = {
        let mut inner = lock(shared);
        for part in inner.parts.values_mut() {
            if let Kind::Events { engine, .. } = &mut part.kind {
                // Keep dedup memory bounded: a day past any period.
                engine.expire(2 * 86_400_000_000);
            }
        }
        inner.checkpoint_all()?
    };
    consumer.commit(&offsets)?;
    Ok(())
}

/// True when every partition this member owns (event and rekeyed topics) is
/// read to the high watermark the broker gives now; false when the broker
/// cannot say.
fn caught_up(consumer: &EventConsumer, inner: &Inner) -> bool {
    behind(consumer, inner).is_ok_and(|behind| behind.is_empty())
}

/// An owned partition not read to the end the broker gives: its next
/// offset, and its high watermark (`None` when the broker did not say).
struct Behind {
    partition: PartitionId,
    next: i64,
    high: Option<i64>,
}

impl std::fmt::Display for Behind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let name = origin_name(&self.partition);
        match self.high {
            Some(high) => write!(f, "{name} next={} high={high}", self.next),
            None => write!(f, "{name} next={} high unknown", self.next),
        }
    }
}

/// The partitions this member owns that are not read to the high watermark
/// the broker gives now; `Err` when the broker cannot say what was
/// committed.
fn behind(consumer: &EventConsumer, inner: &Inner) -> Result<Vec<Behind>, String> {
    let owned: Vec<(PartitionId, Option<i64>)> = inner
        .parts
        .iter()
        .map(|(p, part)| (p.clone(), part.next))
        .collect();
    let timeout = Duration::from_secs(2);
    // A partition read nothing from yet starts at its committed offset.
    let committed = if owned.iter().any(|(_, next)| next.is_none()) {
        Some(consumer.committed(timeout).map_err(|e| e.to_string())?)
    } else {
        None
    };
    Ok(owned
        .iter()
        .filter_map(|(p, next)| {
            let next = next
                .or_else(|| committed.as_ref().and_then(|c| c.next_offset(p)))
                .unwrap_or(0);
            match consumer.high_watermark(p, timeout) {
                Ok(high) if high <= next => None,
                high => Some(Behind {
                    partition: p.clone(),
                    next,
                    high: high.ok(),
                }),
            }
        })
        .collect())
}

/// `trailhound_consumer_lag{partition}` of the owned event partitions.
fn feed_lag(consumer: &EventConsumer, shared: &Mutex<Inner>, metrics: &Metrics) {
    let owned: Vec<(PartitionId, i64)> = {
        let inner = lock(shared);
        inner
            .parts
            .iter()
            .filter(|(p, _)| p.topic == inner.events_topic)
            .map(|(p, part)| (p.clone(), part.next.unwrap_or(0)))
            .collect()
    };
    for (p, next) in owned {
        match consumer.high_watermark(&p, Duration::from_millis(500)) {
            Ok(high) => metrics.consumer_lag(p.partition, (high - next).max(0)),
            Err(e) => tracing::debug!(error = %e, "reading a high watermark failed"),
        }
    }
}
