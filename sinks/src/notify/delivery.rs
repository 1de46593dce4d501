//! Delivery: what keeps a sink that is down from ever blocking detection.
//!
//! Every HTTP sink owns a [`Delivery`]: a bounded queue in memory and one
//! worker thread that posts the queued jobs in order with a blocking HTTP
//! client (`ureq`, rustls). The engine's `send` only takes the queue's lock
//! to push a job and returns at once.
//!
//! - **Retries.** HTTP 408, 425, 429, 5xx and transport failures (connection
//!   refused, timeouts, TLS) are retried with exponential backoff and jitter
//!   (half the step fixed, half random), or after the server's
//!   `Retry-After` (seconds or an HTTP date, capped at
//!   [`DeliveryPolicy::max_retry_after`]) when it gives one. Other 4xx answers
//!   are final: retrying the same request cannot help.
//! - **Giving up.** A job is given up after [`DeliveryPolicy::max_attempts`]
//!   attempts or once it is [`DeliveryPolicy::give_up_after`] old (counted
//!   from when `send` accepted it, so a long outage drains the queue instead
//!   of retrying each job for the full period in turn).
//! - **Dead letters.** Every job that is not delivered is written, with the
//!   reason, to a JSON-lines file ([`NotifyDeadLetter`]): `gave_up`,
//!   `rejected`, `encode_failed`, `shutdown` (the process ended before it
//!   went out), and `queue_full`: when the queue is full, `send` spills the
//!   *oldest* queued job there and queues the new one, so the engine never
//!   waits for the network.
//! - **Flush and close.** [`Delivery::flush`] waits, at most
//!   [`DeliveryPolicy::flush_timeout`], for the queue to drain, and returns
//!   early when the sink is backing off (waiting on a server that is down
//!   does not help anyone). Dropping the delivery gives the worker the same
//!   time to finish, then writes what is left as `shutdown`.
//! - **Counters.** [`SinkStats`] (sent, retried, failed, dropped, dead
//!   lettered, not routed, queue depth), readable at any time through a
//!   [`StatsHandle`] without taking the queue's lock.

use std::collections::VecDeque;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rand::Rng;
use serde::{Deserialize, Serialize};
use trailhound_core::Alert;

use super::NotifyError;
use crate::SinkError;

/// What a sink is asked to deliver.
#[derive(Debug, Clone, PartialEq)]
pub enum Job {
    /// A new alert.
    Alert(Box<Alert>),
    /// Close what an earlier alert opened (PagerDuty's `resolve`).
    Resolve {
        /// The alert's id.
        alert_id: String,
    },
}

impl Job {
    /// The id of the alert the job is about.
    pub fn alert_id(&self) -> &str {
        match self {
            Job::Alert(a) => &a.alert_id,
            Job::Resolve { alert_id } => alert_id,
        }
    }
}

/// One HTTP POST, as an [`Encode`] builds it for a job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// Where to post.
    pub url: String,
    /// Extra headers (`Content-Type` included).
    pub headers: Vec<(&'static str, String)>,
    /// The body.
    pub body: Vec<u8>,
}

/// Turns a job into the request a destination expects. Called for every
/// attempt, so time-dependent headers (signatures, timestamps) are fresh.
pub trait Encode: Send + 'static {
    /// The request for `job`, or why there is none (the job is then dead-lettered as `encode_failed`).
    fn encode(&self, job: &Job) -> Result<Request, String>;
}

/// How a sink retries, queues and gives up.
#[derive(Debug, Clone, PartialEq)]
pub struct DeliveryPolicy {
    /// Jobs waiting at most (beyond it the oldest is dead-lettered as `queue_full`).
    pub queue_size: usize,
    /// Attempts per job at most (the first one included).
    pub max_attempts: u32,
    /// A job older than this (since `send` accepted it) is given up.
    pub give_up_after: Duration,
    /// The first backoff step; each retry doubles it.
    pub initial_backoff: Duration,
    /// The largest backoff step.
    pub max_backoff: Duration,
    /// The longest `Retry-After` honoured; a longer one means give up.
    pub max_retry_after: Duration,
    /// The time one HTTP request may take in all (connect, send, answer).
    pub request_timeout: Duration,
    /// How long `flush` and shutdown wait for the queue to drain.
    pub flush_timeout: Duration,
    /// The dead-letter file (JSON lines, created on the first dead letter).
    pub dead_letters: PathBuf,
}

/// The default dead-letter file of notification sinks.
pub const DEFAULT_DEAD_LETTERS: &str = "trailhound.notify-deadletter.jsonl";

impl Default for DeliveryPolicy {
    fn default() -> Self {
        Self {
            queue_size: 1000,
            max_attempts: 10,
            give_up_after: Duration::from_secs(15 * 60),
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(60),
            max_retry_after: Duration::from_secs(5 * 60),
            request_timeout: Duration::from_secs(10),
            flush_timeout: Duration::from_secs(10),
            dead_letters: PathBuf::from(DEFAULT_DEAD_LETTERS),
        }
    }
}

/// Why a job ended in the dead-letter file.
pub mod reason {
    /// The queue was full: the oldest queued job made room for a new one.
    pub const QUEUE_FULL: &str = "queue_full";
    /// Retries ran out (attempts or age).
    pub const GAVE_UP: &str = "gave_up";
    /// The destination answered with a final error (4xx other than 408, 425, 429).
    pub const REJECTED: &str = "rejected";
    /// The request could not be built.
    pub const ENCODE_FAILED: &str = "encode_failed";
    /// The process ended before the job was delivered.
    pub const SHUTDOWN: &str = "shutdown";
}

/// One line of the notification dead-letter file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NotifyDeadLetter {
    /// The sink's configured name.
    pub sink: String,
    /// Its kind (`slack`, `pagerduty`, `webhook`).
    pub kind: String,
    /// A label from [`reason`].
    pub reason: String,
    /// What happened, in words (the last error, the status and body).
    pub detail: String,
    /// Attempts made.
    pub attempts: u32,
    /// When `send` accepted the job, microseconds UTC.
    pub accepted_at: i64,
    /// When it was written here, microseconds UTC.
    pub written_at: i64,
    /// The alert, for an alert job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alert: Option<Alert>,
    /// The alert id, for a resolve job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolve: Option<String>,
}

/// A sink's counters at one moment. Every field but `queue_depth` only grows.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SinkStats {
    /// The sink's configured name.
    pub name: String,
    /// Its kind (`slack`, `pagerduty`, `webhook`).
    pub kind: String,
    /// Jobs delivered (answered 2xx).
    pub sent: u64,
    /// Attempts that were retries (every attempt after a job's first).
    pub retried: u64,
    /// Jobs given up after being attempted or taken from the queue: `gave_up`, `rejected`, `encode_failed`, `shutdown`.
    pub failed: u64,
    /// Jobs spilled because the queue was full (`queue_full`).
    pub dropped: u64,
    /// Dead letters written (failed + dropped, less any the file refused).
    pub dead_lettered: u64,
    /// Alerts the sink's route left out.
    pub not_routed: u64,
    /// Jobs waiting or in flight now.
    pub queue_depth: u64,
}

#[derive(Debug, Default)]
struct Counters {
    sent: AtomicU64,
    retried: AtomicU64,
    failed: AtomicU64,
    dropped: AtomicU64,
    dead_lettered: AtomicU64,
    not_routed: AtomicU64,
    depth: AtomicU64,
}

struct Queued {
    job: Job,
    accepted: Instant,
    accepted_at: i64,
}

#[derive(Default)]
struct State {
    queue: VecDeque<Queued>,
    in_flight: bool,
    backing_off: bool,
    /// Set by close: the time by which the worker must be done.
    closing: Option<Instant>,
    /// A dead letter the worker could not write, reported by the next flush.
    dead_letter_error: Option<std::io::Error>,
}

struct Shared {
    name: String,
    kind: &'static str,
    state: Mutex<State>,
    /// The worker waits here for jobs and for close.
    wake: Condvar,
    /// `flush` waits here for the queue to drain.
    idle: Condvar,
    counters: Counters,
    dead: DeadLetterLog,
    /// Whether the first `queue_full` was logged (later ones are only counted).
    warned_full: std::sync::atomic::AtomicBool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves a consistent queue: keep going.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn dead_letter(
        &self,
        q: &Queued,
        reason: &str,
        detail: String,
        attempts: u32,
    ) -> Result<(), std::io::Error> {
        let (alert, resolve) = match &q.job {
            Job::Alert(a) => (Some(a.as_ref().clone()), None),
            Job::Resolve { alert_id } => (None, Some(alert_id.clone())),
        };
        let record = NotifyDeadLetter {
            sink: self.name.clone(),
            kind: self.kind.to_string(),
            reason: reason.to_string(),
            detail,
            attempts,
            accepted_at: q.accepted_at,
            written_at: trailhound_core::time::now_micros(),
            alert,
            resolve,
        };
        tracing::debug!(sink = %self.name, kind = self.kind, reason, alert_id = q.job.alert_id(), detail = %record.detail, "Notification not delivered; written to the dead-letter file.");
        self.dead.write(&record)?;
        self.counters.dead_lettered.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Dead-letters a job from the worker, where an error has nobody to go to but the next flush.
    fn fail(&self, q: &Queued, reason: &str, detail: String, attempts: u32) {
        self.counters.failed.fetch_add(1, Ordering::Relaxed);
        if let Err(e) = self.dead_letter(q, reason, detail, attempts) {
            tracing::error!(sink = %self.name, error = %e, path = %self.dead.path.display(), "Cannot write a notification dead letter: the alert is lost.");
            self.lock().dead_letter_error.get_or_insert(e);
        }
    }

    fn stats(&self) -> SinkStats {
        let c = &self.counters;
        SinkStats {
            name: self.name.clone(),
            kind: self.kind.to_string(),
            sent: c.sent.load(Ordering::Relaxed),
            retried: c.retried.load(Ordering::Relaxed),
            failed: c.failed.load(Ordering::Relaxed),
            dropped: c.dropped.load(Ordering::Relaxed),
            dead_lettered: c.dead_lettered.load(Ordering::Relaxed),
            not_routed: c.not_routed.load(Ordering::Relaxed),
            queue_depth: c.depth.load(Ordering::Relaxed),
        }
    }
}

/// Appends dead letters to a JSON-lines file, one `write` per line on a file
/// opened for appending, so sinks sharing a file do not interleave lines.
struct DeadLetterLog {
    path: PathBuf,
    file: Mutex<Option<File>>,
}

impl DeadLetterLog {
    fn write(&self, record: &NotifyDeadLetter) -> Result<(), std::io::Error> {
        let mut line = serde_json::to_vec(record).map_err(std::io::Error::other)?;
        line.push(b'\n');
        let mut file = self.file.lock().unwrap_or_else(|p| p.into_inner());
        if file.is_none() {
            *file = Some(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&self.path)?,
            );
        }
        match file.as_mut() {
            Some(f) => f.write_all(&line),
            None => Ok(()),
        }
    }
}

/// A cheap, cloneable view of a sink's counters, for metrics exporters.
#[derive(Clone)]
pub struct StatsHandle(Arc<Shared>);

impl StatsHandle {
    /// The counters now.
    pub fn snapshot(&self) -> SinkStats {
        self.0.stats()
    }
    /// The sink's configured name.
    pub fn name(&self) -> &str {
        &self.0.name
    }
    /// The sink's dead-letter file.
    pub fn dead_letter_path(&self) -> &Path {
        &self.0.dead.path
    }
}

impl std::fmt::Debug for StatsHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("StatsHandle").field(&self.0.name).finish()
    }
}

/// A bounded queue and the worker thread that delivers it (see the module page).
pub struct Delivery {
    shared: Arc<Shared>,
    queue_size: usize,
    flush_timeout: Duration,
    worker: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Delivery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Delivery")
            .field("name", &self.shared.name)
            .field("kind", &self.shared.kind)
            .field("queue_size", &self.queue_size)
            .finish()
    }
}

impl Delivery {
    /// Starts the worker thread of HTTP sink `name` of `kind`: `encoder`
    /// builds each job's request, a blocking client (rustls, the policy's
    /// `request_timeout`, no redirects) posts it.
    pub fn start(
        name: &str,
        kind: &'static str,
        encoder: Box<dyn Encode>,
        policy: DeliveryPolicy,
    ) -> Result<Self, NotifyError> {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(policy.request_timeout))
            .max_redirects(0)
            .user_agent(format!("trailhound/{}", env!("CARGO_PKG_VERSION")))
            .build()
            .into();
        Self::start_transport(name, kind, Box::new(Http { encoder, agent }), policy)
    }

    /// Starts the worker thread of sink `name` of `kind` over any transport.
    pub fn start_transport(
        name: &str,
        kind: &'static str,
        transport: Box<dyn Transport>,
        policy: DeliveryPolicy,
    ) -> Result<Self, NotifyError> {
        if policy.queue_size == 0 {
            return Err(NotifyError::Invalid {
                sink: name.to_string(),
                reason: "the queue size must be at least 1".into(),
            });
        }
        if policy.max_attempts == 0 {
            return Err(NotifyError::Invalid {
                sink: name.to_string(),
                reason: "max_attempts must be at least 1".into(),
            });
        }
        let shared = Arc::new(Shared {
            name: name.to_string(),
            kind,
            state: Mutex::new(State::default()),
            wake: Condvar::new(),
            idle: Condvar::new(),
            counters: Counters::default(),
            dead: DeadLetterLog {
                path: policy.dead_letters.clone(),
                file: Mutex::new(None),
            },
            warned_full: std::sync::atomic::AtomicBool::new(false),
        });
        let worker = {
            let shared = Arc::clone(&shared);
            let policy = policy.clone();
            std::thread::Builder::new()
                .name(format!("notify-{name}"))
                .spawn(move || Worker::new(shared, transport, policy).run())
                .map_err(|source| NotifyError::Thread {
                    sink: name.to_string(),
                    source,
                })?
        };
        Ok(Self {
            shared,
            queue_size: policy.queue_size,
            flush_timeout: policy.flush_timeout,
            worker: Some(worker),
        })
    }

    /// Queues a job and returns at once. When the queue is full the oldest
    /// queued job is written to the dead-letter file as `queue_full`; the only
    /// error is failing to write that file.
    pub fn enqueue(&self, job: Job) -> Result<(), SinkError> {
        let item = Queued {
            job,
            accepted: Instant::now(),
            accepted_at: trailhound_core::time::now_micros(),
        };
        let (spilled, refused) = {
            let mut st = self.shared.lock();
            if st.closing.is_some() {
                (None, Some(item))
            } else {
                let spilled = if st.queue.len() >= self.queue_size {
                    st.queue.pop_front()
                } else {
                    None
                };
                st.queue.push_back(item);
                (spilled, None)
            }
        };
        let c = &self.shared.counters;
        let io = |source| SinkError::Io {
            sink: self.shared.kind,
            source,
        };
        if let Some(item) = refused {
            c.failed.fetch_add(1, Ordering::Relaxed);
            return self
                .shared
                .dead_letter(&item, reason::SHUTDOWN, "the sink was closed".into(), 0)
                .map_err(io);
        }
        self.shared.wake.notify_one();
        if let Some(old) = spilled {
            c.dropped.fetch_add(1, Ordering::Relaxed);
            if !self.shared.warned_full.swap(true, Ordering::Relaxed) {
                tracing::warn!(sink = %self.shared.name, queue = self.queue_size, path = %self.shared.dead.path.display(), "Notification queue full: the oldest queued alerts go to the dead-letter file (counted from now on, not logged).");
            }
            self.shared
                .dead_letter(
                    &old,
                    reason::QUEUE_FULL,
                    format!(
                        "the queue of {} was full; the oldest job made room",
                        self.queue_size
                    ),
                    0,
                )
                .map_err(io)?;
        } else {
            c.depth.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    }

    /// Counts an alert that the route left out.
    pub fn count_not_routed(&self) {
        self.shared
            .counters
            .not_routed
            .fetch_add(1, Ordering::Relaxed);
    }

    /// Waits, at most the policy's `flush_timeout`, for the queue to drain;
    /// returns early while the sink backs off from a failing destination.
    /// Returns whether the queue is empty. Errs only when a dead letter could
    /// not be written since the last flush.
    pub fn flush(&self) -> Result<bool, SinkError> {
        self.flush_within(self.flush_timeout)
    }

    /// [`Delivery::flush`] with its own bound.
    pub fn flush_within(&self, timeout: Duration) -> Result<bool, SinkError> {
        let deadline = Instant::now() + timeout;
        let mut st = self.shared.lock();
        let drained = loop {
            if st.queue.is_empty() && !st.in_flight {
                break true;
            }
            let now = Instant::now();
            if st.backing_off || now >= deadline {
                break false;
            }
            st = self
                .shared
                .idle
                .wait_timeout(st, deadline - now)
                .map(|(g, _)| g)
                .unwrap_or_else(|p| p.into_inner().0);
        };
        if let Some(source) = st.dead_letter_error.take() {
            return Err(SinkError::Io {
                sink: self.shared.kind,
                source,
            });
        }
        if !drained {
            tracing::info!(sink = %self.shared.name, waiting = st.queue.len() + usize::from(st.in_flight), "Notifications still queued after flush; they keep being retried in the background.");
        }
        Ok(drained)
    }

    /// The counters now.
    pub fn stats(&self) -> SinkStats {
        self.shared.stats()
    }

    /// A handle on the counters that outlives the sink.
    pub fn stats_handle(&self) -> StatsHandle {
        StatsHandle(Arc::clone(&self.shared))
    }

    /// Stops accepting jobs, gives the worker `flush_timeout` to deliver what
    /// is queued, dead-letters the rest as `shutdown`, and returns the final counters.
    pub fn close(mut self) -> SinkStats {
        self.shutdown();
        self.shared.stats()
    }

    fn shutdown(&mut self) {
        {
            let mut st = self.shared.lock();
            if st.closing.is_none() {
                st.closing = Some(Instant::now() + self.flush_timeout);
            }
        }
        self.shared.wake.notify_all();
        if let Some(worker) = self.worker.take()
            && worker.join().is_err()
        {
            tracing::error!(sink = %self.shared.name, "The notification worker panicked.");
        }
    }
}

impl Drop for Delivery {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// How one attempt at delivering a job ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The destination has it.
    Delivered,
    /// A failure that may pass (the destination is down, slow or rate
    /// limiting): retried with backoff, or after `retry_after` when the
    /// destination asked for it.
    Retry {
        /// What happened, in words.
        detail: String,
        /// How long the destination asked to wait.
        retry_after: Option<Duration>,
    },
    /// A final refusal: retrying the same request cannot help.
    Rejected(String),
    /// The job cannot be put into the destination's form (dead-lettered as `encode_failed`).
    Unencodable(String),
}

/// What carries jobs to a destination: one blocking attempt per call, from
/// the delivery's worker thread. HTTP sinks use [`Delivery::start`] with an
/// [`Encode`]; other transports (Kafka) implement this directly and start
/// with [`Delivery::start_transport`].
pub trait Transport: Send + 'static {
    /// Makes one attempt at delivering `job`.
    fn attempt(&mut self, job: &Job) -> Outcome;
}

/// HTTP: an [`Encode`] builds the request, a blocking client posts it.
struct Http {
    encoder: Box<dyn Encode>,
    agent: ureq::Agent,
}

impl Transport for Http {
    fn attempt(&mut self, job: &Job) -> Outcome {
        match self.encoder.encode(job) {
            Ok(request) => post(&self.agent, &request),
            Err(e) => Outcome::Unencodable(e),
        }
    }
}

struct Worker {
    shared: Arc<Shared>,
    transport: Box<dyn Transport>,
    policy: DeliveryPolicy,
    rng: rand::rngs::SmallRng,
    /// The last failure, to say why queued jobs expired.
    last_error: Option<String>,
    /// Whether the destination is failing (logged once when it starts, once when it recovers).
    failing: bool,
}

impl Worker {
    fn new(shared: Arc<Shared>, transport: Box<dyn Transport>, policy: DeliveryPolicy) -> Self {
        use rand::SeedableRng;
        Self {
            shared,
            transport,
            policy,
            rng: rand::rngs::SmallRng::from_entropy(),
            last_error: None,
            failing: false,
        }
    }

    fn run(mut self) {
        while let Some(item) = self.next() {
            self.deliver(&item);
            self.shared.counters.depth.fetch_sub(1, Ordering::Relaxed);
            self.shared.lock().in_flight = false;
            self.shared.idle.notify_all();
        }
        self.shared.idle.notify_all();
    }

    /// The next job to attempt; `None` once closed and empty. Jobs past the
    /// shutdown deadline or past their age limit are dead-lettered here.
    fn next(&mut self) -> Option<Queued> {
        loop {
            let mut st = self.shared.lock();
            let item = loop {
                if let Some(item) = st.queue.pop_front() {
                    st.in_flight = true;
                    break item;
                }
                if st.closing.is_some() {
                    return None;
                }
                st = self.shared.wake.wait(st).unwrap_or_else(|p| p.into_inner());
            };
            let past_shutdown = st.closing.is_some_and(|d| Instant::now() >= d);
            drop(st);
            let outcome = if past_shutdown {
                Some((
                    reason::SHUTDOWN,
                    "the process ended before it could be delivered".to_string(),
                ))
            } else if item.accepted.elapsed() >= self.policy.give_up_after {
                Some((
                    reason::GAVE_UP,
                    format!(
                        "waited {:.1}s in the queue, past the limit of {:.1}s; last error: {}",
                        item.accepted.elapsed().as_secs_f64(),
                        self.policy.give_up_after.as_secs_f64(),
                        self.last_error.as_deref().unwrap_or("none")
                    ),
                ))
            } else {
                None
            };
            match outcome {
                None => return Some(item),
                Some((reason, detail)) => {
                    self.shared.fail(&item, reason, detail, 0);
                    self.shared.counters.depth.fetch_sub(1, Ordering::Relaxed);
                    self.shared.lock().in_flight = false;
                    self.shared.idle.notify_all();
                }
            }
        }
    }

    fn deliver(&mut self, item: &Queued) {
        let mut attempts = 0u32;
        loop {
            if attempts > 0 {
                self.shared.counters.retried.fetch_add(1, Ordering::Relaxed);
            }
            let outcome = self.transport.attempt(&item.job);
            if !matches!(outcome, Outcome::Unencodable(_)) {
                attempts += 1;
            }
            match outcome {
                Outcome::Unencodable(e) => {
                    self.shared.fail(item, reason::ENCODE_FAILED, e, attempts);
                    return;
                }
                Outcome::Delivered => {
                    self.shared.counters.sent.fetch_add(1, Ordering::Relaxed);
                    self.last_error = None;
                    if std::mem::take(&mut self.failing) {
                        tracing::info!(sink = %self.shared.name, "Notification sink delivering again.");
                    }
                    return;
                }
                Outcome::Rejected(detail) => {
                    self.failing_now(&detail);
                    self.last_error = Some(detail.clone());
                    self.shared.fail(item, reason::REJECTED, detail, attempts);
                    return;
                }
                Outcome::Retry {
                    detail,
                    retry_after,
                } => {
                    self.failing_now(&detail);
                    self.last_error = Some(detail.clone());
                    let age = item.accepted.elapsed();
                    let left = self.policy.give_up_after.saturating_sub(age);
                    let wait = match retry_after {
                        Some(d) if d > self.policy.max_retry_after || d > left => {
                            let detail = format!(
                                "{detail}; the server asked to wait {:.1}s, more than allowed",
                                d.as_secs_f64()
                            );
                            self.shared.fail(item, reason::GAVE_UP, detail, attempts);
                            return;
                        }
                        Some(d) => d,
                        None => self.backoff(attempts).min(left),
                    };
                    if attempts >= self.policy.max_attempts || left.is_zero() {
                        let detail = format!(
                            "{attempts} attempt(s) in {:.1}s; last error: {detail}",
                            age.as_secs_f64()
                        );
                        self.shared.fail(item, reason::GAVE_UP, detail, attempts);
                        return;
                    }
                    if !self.pause(wait) {
                        let detail = format!(
                            "the process ended while retrying ({attempts} attempt(s)); last error: {detail}"
                        );
                        self.shared.fail(item, reason::SHUTDOWN, detail, attempts);
                        return;
                    }
                }
            }
        }
    }

    fn failing_now(&mut self, detail: &str) {
        if !self.failing {
            self.failing = true;
            tracing::warn!(sink = %self.shared.name, kind = self.shared.kind, error = detail, path = %self.shared.dead.path.display(), "Notification sink failing: alerts are retried, then written to the dead-letter file.");
        }
    }

    /// The backoff before retry number `attempt` (1 for the first retry): the
    /// doubled step capped at `max_backoff`, half of it fixed and half random.
    fn backoff(&mut self, attempt: u32) -> Duration {
        let step = self
            .policy
            .initial_backoff
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(20))
            .min(self.policy.max_backoff);
        let half = step / 2;
        let jitter_nanos = u64::try_from(half.as_nanos()).unwrap_or(u64::MAX);
        half + Duration::from_nanos(self.rng.gen_range(0..=jitter_nanos))
    }

    /// Sleeps `wait`, marked as backing off. False when the sink is closing
    /// and the wait would end past its deadline.
    fn pause(&mut self, wait: Duration) -> bool {
        let until = Instant::now() + wait;
        let mut st = self.shared.lock();
        st.backing_off = true;
        self.shared.idle.notify_all();
        let ok = loop {
            if st.closing.is_some_and(|deadline| until > deadline) {
                break false;
            }
            let now = Instant::now();
            if now >= until {
                break true;
            }
            st = self
                .shared
                .wake
                .wait_timeout(st, until - now)
                .map(|(g, _)| g)
                .unwrap_or_else(|p| p.into_inner().0);
        };
        st.backing_off = false;
        ok
    }
}

/// One HTTP POST and what its answer means for the job.
fn post(agent: &ureq::Agent, request: &Request) -> Outcome {
    let mut builder = agent.post(&request.url);
    for (name, value) in &request.headers {
        builder = builder.header(*name, value);
    }
    match builder.send(&request.body[..]) {
        Ok(mut response) => {
            let status = response.status().as_u16();
            let retry_after = response
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(parse_retry_after);
            let body = response
                .body_mut()
                .with_config()
                .limit(4096)
                .read_to_string()
                .unwrap_or_default();
            let detail = format!("HTTP {status}: {}", one_line(&body, 300));
            match status {
                200..=299 => Outcome::Delivered,
                408 | 425 | 429 | 500..=599 => Outcome::Retry {
                    detail,
                    retry_after,
                },
                _ => Outcome::Rejected(detail),
            }
        }
        Err(e @ (ureq::Error::BadUri(_) | ureq::Error::RequireHttpsOnly(_))) => {
            Outcome::Rejected(e.to_string())
        }
        Err(e) => Outcome::Retry {
            detail: e.to_string(),
            retry_after: None,
        },
    }
}

/// A response body on one line, at most `max` characters.
fn one_line(s: &str, max: usize) -> String {
    let mut out: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(max)
        .collect();
    if s.chars().count() > max {
        out.push('…');
    }
    out.trim().to_string()
}

/// `Retry-After`: delay-seconds or an HTTP date (RFC 9110 section 10.2.3).
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    if let Ok(secs) = value.parse::<f64>() {
        return (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs.min(1e9)));
    }
    let at = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    let wait = at.with_timezone(&chrono::Utc) - chrono::Utc::now();
    Some(wait.to_std().unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_takes_seconds_and_http_dates() {
        assert_eq!(parse_retry_after("1"), Some(Duration::from_secs(1)));
        assert_eq!(parse_retry_after(" 30 "), Some(Duration::from_secs(30)));
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(Duration::ZERO)
        );
        let later = (chrono::Utc::now() + chrono::Duration::seconds(120)).to_rfc2822();
        let d = parse_retry_after(&later).unwrap_or_default();
        assert!(
            d > Duration::from_secs(100) && d <= Duration::from_secs(120),
            "{d:?}"
        );
        assert_eq!(parse_retry_after("soon"), None);
    }

    #[test]
    fn one_line_flattens_and_bounds() {
        assert_eq!(one_line("a\nb", 10), "a b");
        assert_eq!(one_line("abcdef", 3), "abc…");
    }
}
