//! Prometheus metrics: what the detector counts about itself, and an HTTP
//! endpoint that serves them ([`MetricsServer`]).
//!
//! [`Metrics`] holds typed metrics registered on a registry of its own (never
//! the process-global one), so two pipelines in one process, or two tests,
//! never share counters. It is cheap to clone (one `Arc`), and the pipeline
//! calls its methods where it counts things for its summary.
//!
//! Names follow Prometheus conventions: prefix `trailhound_`, base units
//! (seconds), `_total` on counters. Labels are bounded: source, format,
//! dead-letter reason, rule id and severity (bounded by the rule set), the
//! clock of a latency, partition, action kind and outcome; never a principal
//! or an event id.
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `trailhound_events_read_total` | counter | `source` |
//! | `trailhound_dead_letters_total` | counter | `reason` |
//! | `trailhound_inputs_total` | counter | `format` |
//! | `trailhound_input_errors_total` | counter | |
//! | `trailhound_batch_duration_seconds` | histogram | |
//! | `trailhound_batch_rows` | histogram | |
//! | `trailhound_event_to_alert_seconds` | histogram | `clock` (`event`, `ingest`) |
//! | `trailhound_alerts_total` | counter | `rule`, `severity` |
//! | `trailhound_rule_errors_total` | counter | |
//! | `trailhound_matches_suppressed_total` | counter | |
//! | `trailhound_rule_where_seconds_total` | counter | `rule` |
//! | `trailhound_principals_tracked` | gauge | |
//! | `trailhound_baseline_cap_refusals_total` | counter | |
//! | `trailhound_state_open` | gauge | |
//! | `trailhound_late_rows_total` | counter | |
//! | `trailhound_checkpoint_age_seconds` | gauge | |
//! | `trailhound_checkpoints_total` | counter | |
//! | `trailhound_consumer_lag` | gauge | `partition` |
//! | `trailhound_actions_total` | counter | `kind`, `outcome` |
//! | `trailhound_bus_restarts_total` | counter | `role` |
//! | `trailhound_bus_pending_records` | gauge | `role` |
//! | `trailhound_receiver_requests_total` | counter | `outcome` |
//! | `trailhound_build_info` | gauge (always 1) | `version` |
//!
//! Series whose labels are not known up front (a dead-letter reason, a rule)
//! appear at their first increment; `trailhound_checkpoint_age_seconds`
//! appears with the first checkpoint and is computed at each scrape.

mod server;

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use arrow::array::{Array, RecordBatch, TimestampMicrosecondArray};
use prometheus::core::Collector;
use prometheus::{
    CounterVec, Encoder, GaugeVec, Histogram, HistogramOpts, HistogramVec, IntCounter,
    IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder,
};
use trailhound_core::schema::columns::INGEST_TIME;
use trailhound_core::{Alert, Event, Source};

pub use server::{MAX_REQUEST_BYTES, MetricsServer};

/// The content type of [`Metrics::render`]'s output (text exposition 0.0.4).
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Buckets of `trailhound_batch_duration_seconds`: 100 µs to 10 s.
pub const BATCH_DURATION_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

/// Buckets of `trailhound_batch_rows`: 1 to 16,384 rows, by fours.
pub const BATCH_ROWS_BUCKETS: &[f64] = &[1.0, 4.0, 16.0, 64.0, 256.0, 1024.0, 4096.0, 16384.0];

/// Buckets of `trailhound_event_to_alert_seconds`: 10 ms to one day.
/// CloudTrail delivers minutes late, so the event clock lives in the upper
/// half; the ingest clock (the engine's own delay) in the lower.
pub const EVENT_TO_ALERT_BUCKETS: &[f64] = &[
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0,
    1800.0, 3600.0, 7200.0, 21600.0, 43200.0, 86400.0,
];

/// Errors setting metrics up or serving them.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    /// A metric could not be created or registered (a bug: names and labels
    /// are fixed in this module). Retrying does not help.
    #[error("cannot register the metric {name}: {source}")]
    Register {
        /// The metric's name.
        name: &'static str,
        /// The cause.
        source: prometheus::Error,
    },
    /// The metrics address could not be bound (in use, not local, no
    /// permission). Retrying helps once the address is free.
    #[error("cannot serve metrics on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: std::net::SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
    /// The address is beyond loopback and exposing the endpoint was not
    /// asked for. Retrying does not help; the operator decides.
    #[error(
        "metrics on {addr} would be served beyond loopback, without authentication: add --metrics-allow-remote to mean it"
    )]
    NotLoopback {
        /// The address asked for.
        addr: std::net::SocketAddr,
    },
    /// The server thread could not be started.
    #[error("cannot start the metrics server thread: {0}")]
    Spawn(std::io::Error),
}

/// What the engine reports about its state, read by the pipeline after a
/// batch and at the end. Totals are cumulative; the counters they feed move
/// up to them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EngineState {
    /// Baseline keys held now (principals and other keys, `rare` values included).
    pub principals_tracked: u64,
    /// Window groups, sequence keys and correlation links held now.
    pub state_open: u64,
    /// Rows left out of windows as later than the allowed lateness, so far.
    pub late_rows_total: u64,
    /// Events of new baseline keys refused at the global key cap, so far.
    pub baseline_cap_refusals_total: u64,
    /// Rule matches folded into an alert raised earlier (dedup), so far.
    pub matches_suppressed_total: u64,
}

/// The detector's metrics. Clones share the same metrics.
#[derive(Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

struct Inner {
    registry: Registry,
    events_cloudtrail: IntCounter,
    events_session: IntCounter,
    dead_letters: IntCounterVec,
    inputs: IntCounterVec,
    input_errors: IntCounter,
    batch_duration: Histogram,
    batch_rows: Histogram,
    latency_event: Histogram,
    latency_ingest: Histogram,
    alerts: IntCounterVec,
    rule_errors: IntCounter,
    matches_suppressed: IntCounter,
    rule_where_seconds: CounterVec,
    principals_tracked: IntGauge,
    baseline_cap_refusals: IntCounter,
    state_open: IntGauge,
    late_rows: IntCounter,
    /// No labels: its one series is created at the first checkpoint, so the
    /// age is absent (not 0) while there was none.
    checkpoint_age: GaugeVec,
    last_checkpoint: Mutex<Option<SystemTime>>,
    checkpoints: IntCounter,
    consumer_lag: IntGaugeVec,
    actions: IntCounterVec,
    bus_restarts: IntCounterVec,
    receiver_requests: IntCounterVec,
    /// Records queued on Kafka producers and not yet acknowledged, by role;
    /// read from the producers' counters at each scrape.
    bus_pending: IntGaugeVec,
    pending: Mutex<Vec<(String, Vec<trailhound_bus::PendingRecords>)>>,
    /// Notification sinks (`notify:`): deliveries by result, dead letters,
    /// queue depth; read from the sinks' counters at each scrape.
    notify: IntCounterVec,
    notify_dead_letters: IntCounterVec,
    notify_queue: IntGaugeVec,
    sinks: Mutex<Vec<crate::notify::StatsHandle>>,
    /// Newest ingest time of the batches evaluated so far (µs), `i64::MIN`
    /// before the first: the ingest clock of event-to-alert latency.
    newest_ingest: AtomicI64,
}

/// Registers `c` on `registry` and returns it.
fn reg<C: Collector + Clone + 'static>(
    registry: &Registry,
    name: &'static str,
    c: Result<C, prometheus::Error>,
) -> Result<C, MetricsError> {
    let c = c.map_err(|source| MetricsError::Register { name, source })?;
    registry
        .register(Box::new(c.clone()))
        .map_err(|source| MetricsError::Register { name, source })?;
    Ok(c)
}

/// A labelled child, or `None` when the label count is wrong (it never is:
/// the callers below pass the label names' count).
fn child<T: prometheus::core::MetricVecBuilder>(
    vec: &prometheus::core::MetricVec<T>,
    name: &'static str,
    labels: &[&str],
) -> Option<T::M> {
    match vec.get_metric_with_label_values(labels) {
        Ok(m) => Some(m),
        Err(e) => {
            tracing::error!(metric = name, error = %e, "Metric label mismatch.");
            None
        }
    }
}

fn counter(
    registry: &Registry,
    name: &'static str,
    help: &str,
) -> Result<IntCounter, MetricsError> {
    reg(registry, name, IntCounter::new(name, help))
}

fn counter_vec(
    registry: &Registry,
    name: &'static str,
    help: &str,
    labels: &[&str],
) -> Result<IntCounterVec, MetricsError> {
    reg(
        registry,
        name,
        IntCounterVec::new(Opts::new(name, help), labels),
    )
}

fn gauge(registry: &Registry, name: &'static str, help: &str) -> Result<IntGauge, MetricsError> {
    reg(registry, name, IntGauge::new(name, help))
}

fn histogram(
    registry: &Registry,
    name: &'static str,
    help: &str,
    buckets: &[f64],
) -> Result<Histogram, MetricsError> {
    reg(
        registry,
        name,
        Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets.to_vec())),
    )
}

/// Microseconds to seconds, never negative (clocks of different machines
/// may put an event a little in the future).
fn micros_to_secs(micros: i64) -> f64 {
    micros.max(0) as f64 / 1e6
}

impl Metrics {
    /// Every metric, registered on a new registry, with
    /// `trailhound_build_info{version}` set to 1 for this crate's version.
    pub fn new() -> Result<Self, MetricsError> {
        Self::with_version(env!("CARGO_PKG_VERSION"))
    }

    /// [`Metrics::new`] with the version `trailhound_build_info` reports.
    pub fn with_version(version: &str) -> Result<Self, MetricsError> {
        let r = Registry::new();
        let events = counter_vec(
            &r,
            "trailhound_events_read_total",
            "Events read and handed to the engine, by source.",
            &["source"],
        )?;
        let latency = reg(
            &r,
            "trailhound_event_to_alert_seconds",
            HistogramVec::new(
                HistogramOpts::new(
                    "trailhound_event_to_alert_seconds",
                    "Time from an alert's events to the alert: clock=event from the last event's event time, clock=ingest from when the batch's newest event was read.",
                )
                .buckets(EVENT_TO_ALERT_BUCKETS.to_vec()),
                &["clock"],
            ),
        )?;
        let build_info = reg(
            &r,
            "trailhound_build_info",
            IntGaugeVec::new(
                Opts::new(
                    "trailhound_build_info",
                    "Always 1; the version is in the label.",
                ),
                &["version"],
            ),
        )?;
        if let Some(g) = child(&build_info, "trailhound_build_info", &[version]) {
            g.set(1);
        }
        let missing = |name: &'static str| MetricsError::Register {
            name,
            source: prometheus::Error::Msg("label mismatch".into()),
        };
        let inner = Inner {
            events_cloudtrail: child(&events, "trailhound_events_read_total", &["cloudtrail"])
                .ok_or_else(|| missing("trailhound_events_read_total"))?,
            events_session: child(&events, "trailhound_events_read_total", &["session"])
                .ok_or_else(|| missing("trailhound_events_read_total"))?,
            dead_letters: counter_vec(
                &r,
                "trailhound_dead_letters_total",
                "Records that could not be parsed, by reason.",
                &["reason"],
            )?,
            inputs: counter_vec(
                &r,
                "trailhound_inputs_total",
                "Inputs (files, objects, streams) read to the end, by recognised format.",
                &["format"],
            )?,
            input_errors: counter(
                &r,
                "trailhound_input_errors_total",
                "Inputs that could not be opened or read.",
            )?,
            batch_duration: histogram(
                &r,
                "trailhound_batch_duration_seconds",
                "Engine time to evaluate every rule on one batch.",
                BATCH_DURATION_BUCKETS,
            )?,
            batch_rows: histogram(
                &r,
                "trailhound_batch_rows",
                "Events per evaluated batch.",
                BATCH_ROWS_BUCKETS,
            )?,
            latency_event: child(&latency, "trailhound_event_to_alert_seconds", &["event"])
                .ok_or_else(|| missing("trailhound_event_to_alert_seconds"))?,
            latency_ingest: child(&latency, "trailhound_event_to_alert_seconds", &["ingest"])
                .ok_or_else(|| missing("trailhound_event_to_alert_seconds"))?,
            alerts: counter_vec(
                &r,
                "trailhound_alerts_total",
                "Alerts raised (after dedup), by rule and severity.",
                &["rule", "severity"],
            )?,
            rule_errors: counter(
                &r,
                "trailhound_rule_errors_total",
                "Rule evaluations that failed on a batch (or when closing windows).",
            )?,
            matches_suppressed: counter(
                &r,
                "trailhound_matches_suppressed_total",
                "Rule matches folded into an alert raised earlier (dedup).",
            )?,
            rule_where_seconds: reg(
                &r,
                "trailhound_rule_where_seconds_total",
                CounterVec::new(
                    Opts::new(
                        "trailhound_rule_where_seconds_total",
                        "Time spent evaluating each rule's where over batches (the costly rules of a pack).",
                    ),
                    &["rule"],
                ),
            )?,
            principals_tracked: gauge(
                &r,
                "trailhound_principals_tracked",
                "Baseline keys (principals and other keys) held now.",
            )?,
            baseline_cap_refusals: counter(
                &r,
                "trailhound_baseline_cap_refusals_total",
                "Events of new baseline keys not learnt because the global key cap was reached.",
            )?,
            state_open: gauge(
                &r,
                "trailhound_state_open",
                "Window groups, sequence keys and correlation links held now.",
            )?,
            late_rows: counter(
                &r,
                "trailhound_late_rows_total",
                "Rows left out of windows because they came later than the allowed lateness.",
            )?,
            checkpoint_age: reg(
                &r,
                "trailhound_checkpoint_age_seconds",
                GaugeVec::new(
                    Opts::new(
                        "trailhound_checkpoint_age_seconds",
                        "Seconds since the last checkpoint was written (absent before the first).",
                    ),
                    &[],
                ),
            )?,
            last_checkpoint: Mutex::new(None),
            checkpoints: counter(&r, "trailhound_checkpoints_total", "Checkpoints written.")?,
            consumer_lag: reg(
                &r,
                "trailhound_consumer_lag",
                IntGaugeVec::new(
                    Opts::new(
                        "trailhound_consumer_lag",
                        "Records between the consumer's position and the end of the partition.",
                    ),
                    &["partition"],
                ),
            )?,
            actions: counter_vec(
                &r,
                "trailhound_actions_total",
                "Response actions, by kind and outcome.",
                &["kind", "outcome"],
            )?,
            bus_restarts: counter_vec(
                &r,
                "trailhound_bus_restarts_total",
                "Kafka clients replaced after a broker outage, by role (detect, ingest).",
                &["role"],
            )?,
            receiver_requests: counter_vec(
                &r,
                "trailhound_receiver_requests_total",
                "Requests to the gateway receiver, by outcome (accepted, unauthorised, too_large, unreadable, unavailable).",
                &["outcome"],
            )?,
            bus_pending: reg(
                &r,
                "trailhound_bus_pending_records",
                IntGaugeVec::new(
                    Opts::new(
                        "trailhound_bus_pending_records",
                        "Records queued for Kafka and not yet acknowledged by the broker, by role (detect, ingest): the backlog of a broker outage.",
                    ),
                    &["role"],
                ),
            )?,
            pending: Mutex::new(Vec::new()),
            notify: counter_vec(
                &r,
                "trailhound_notify_total",
                "Notification sink jobs, by sink, kind and result (sent, retried, failed, dropped, not_routed).",
                &["sink", "kind", "result"],
            )?,
            notify_dead_letters: counter_vec(
                &r,
                "trailhound_notify_dead_letters_total",
                "Alerts a notification sink wrote to its dead-letter file, by sink and kind.",
                &["sink", "kind"],
            )?,
            notify_queue: reg(
                &r,
                "trailhound_notify_queue_depth",
                IntGaugeVec::new(
                    Opts::new(
                        "trailhound_notify_queue_depth",
                        "Alerts waiting or in flight in a notification sink's queue.",
                    ),
                    &["sink", "kind"],
                ),
            )?,
            sinks: Mutex::new(Vec::new()),
            newest_ingest: AtomicI64::new(i64::MIN),
            registry: r,
        };
        Ok(Self {
            inner: Arc::new(inner),
        })
    }

    /// The registry, for parts that add metrics of their own.
    pub fn registry(&self) -> &Registry {
        &self.inner.registry
    }

    /// Counts events handed to the engine, by their source.
    pub fn events_read(&self, events: &[Event]) {
        let session = events
            .iter()
            .filter(|e| e.source == Source::Session)
            .count() as u64;
        let cloudtrail = events.len() as u64 - session;
        self.add_events(Source::Cloudtrail, cloudtrail);
        self.add_events(Source::Session, session);
    }

    /// Counts `n` events of `source`.
    pub fn add_events(&self, source: Source, n: u64) {
        if n == 0 {
            return;
        }
        match source {
            Source::Cloudtrail => self.inner.events_cloudtrail.inc_by(n),
            Source::Session => self.inner.events_session.inc_by(n),
        }
    }

    /// Counts a dead letter with its reason label (`invalid_json`, ...).
    pub fn dead_letter(&self, reason: &str) {
        if let Some(c) = child(
            &self.inner.dead_letters,
            "trailhound_dead_letters_total",
            &[reason],
        ) {
            c.inc();
        }
    }

    /// Counts an input read to the end, with its recognised format.
    pub fn input_read(&self, format: &str) {
        if let Some(c) = child(&self.inner.inputs, "trailhound_inputs_total", &[format]) {
            c.inc();
        }
    }

    /// Counts an input that could not be read.
    pub fn input_error(&self) {
        self.inner.input_errors.inc();
    }

    /// Records one evaluated batch: the engine time it took, its rows, and
    /// its newest `ingest_time` (the ingest clock of the alerts that follow).
    pub fn batch_evaluated(&self, batch: &RecordBatch, took: Duration) {
        self.inner.batch_duration.observe(took.as_secs_f64());
        self.inner.batch_rows.observe(batch.num_rows() as f64);
        let newest = batch
            .column_by_name(INGEST_TIME)
            .and_then(|c| c.as_any().downcast_ref::<TimestampMicrosecondArray>())
            .and_then(arrow::compute::max);
        if let Some(t) = newest {
            self.inner.newest_ingest.fetch_max(t, Ordering::Relaxed);
        }
    }

    /// Counts alerts by rule and severity, and observes their latency:
    /// `detected_at` minus the last event's time (clock `event`) and minus
    /// the newest ingest time of the batches evaluated so far (clock
    /// `ingest`; not observed before the first batch).
    pub fn alerts_raised(&self, alerts: &[Alert]) {
        let ingest = self.inner.newest_ingest.load(Ordering::Relaxed);
        for a in alerts {
            if let Some(c) = child(
                &self.inner.alerts,
                "trailhound_alerts_total",
                &[a.rule_id.as_str(), a.severity.as_str()],
            ) {
                c.inc();
            }
            self.inner.latency_event.observe(micros_to_secs(
                a.detected_at.saturating_sub(a.last_event_time),
            ));
            if ingest != i64::MIN {
                self.inner
                    .latency_ingest
                    .observe(micros_to_secs(a.detected_at.saturating_sub(ingest)));
            }
        }
    }

    /// Counts a rule evaluation that failed.
    pub fn rule_error(&self) {
        self.inner.rule_errors.inc();
    }

    /// Sets the engine's gauges and moves its counters up to the totals.
    pub fn engine_state(&self, s: &EngineState) {
        let i = &self.inner;
        i.principals_tracked
            .set(i64::try_from(s.principals_tracked).unwrap_or(i64::MAX));
        i.state_open
            .set(i64::try_from(s.state_open).unwrap_or(i64::MAX));
        advance(&i.late_rows, s.late_rows_total);
        advance(&i.baseline_cap_refusals, s.baseline_cap_refusals_total);
        advance(&i.matches_suppressed, s.matches_suppressed_total);
    }

    /// Moves each rule's `where` time up to its cumulative total in
    /// seconds, as the detector engine counts them.
    pub fn rule_where_seconds<'a>(&self, totals: impl IntoIterator<Item = (&'a str, f64)>) {
        for (rule, total) in totals {
            if let Ok(c) = self
                .inner
                .rule_where_seconds
                .get_metric_with_label_values(&[rule])
            {
                let now = c.get();
                if total > now {
                    c.inc_by(total - now);
                }
            }
        }
    }

    /// Records a checkpoint written now.
    pub fn checkpoint_written(&self) {
        self.checkpoint_written_at(SystemTime::now());
    }

    /// Records a checkpoint written at `at`.
    pub fn checkpoint_written_at(&self, at: SystemTime) {
        self.inner.checkpoints.inc();
        if let Ok(mut last) = self.inner.last_checkpoint.lock() {
            *last = Some(at);
        }
    }

    /// Sets the consumer lag of a partition.
    pub fn consumer_lag(&self, partition: i32, lag: i64) {
        let p = partition.to_string();
        if let Some(g) = child(
            &self.inner.consumer_lag,
            "trailhound_consumer_lag",
            &[p.as_str()],
        ) {
            g.set(lag);
        }
    }

    /// Counts a response action of `kind` (`quarantine_role`, ...) with its
    /// `outcome` (`done`, `shadow`, `refused`, `failed`, ...).
    pub fn action(&self, kind: &str, outcome: &str) {
        if let Some(c) = child(
            &self.inner.actions,
            "trailhound_actions_total",
            &[kind, outcome],
        ) {
            c.inc();
        }
    }

    /// Counts a request to the gateway receiver by its `outcome`.
    pub fn receiver_request(&self, outcome: &str) {
        if let Some(c) = child(
            &self.inner.receiver_requests,
            "trailhound_receiver_requests_total",
            &[outcome],
        ) {
            c.inc();
        }
    }

    /// Counts a Kafka client (`role`: `detect`, `ingest`) replaced after a
    /// transient failure of the broker.
    pub fn bus_restart(&self, role: &str) {
        if let Some(c) = child(
            &self.inner.bus_restarts,
            "trailhound_bus_restarts_total",
            &[role],
        ) {
            c.inc();
        }
    }

    /// Reports the counters of these notification sinks (the `notify:`
    /// sinks of a config file) at every scrape, beside those watched before.
    pub fn watch_sinks(&self, handles: impl IntoIterator<Item = crate::notify::StatsHandle>) {
        if let Ok(mut sinks) = self.inner.sinks.lock() {
            sinks.extend(handles);
        }
        self.refresh_sinks();
    }

    /// Reports, as `trailhound_bus_pending_records{role}`, the sum of these
    /// producers' unacknowledged records at every scrape (replacing those
    /// watched before for the same role: producers replaced after an outage).
    pub fn watch_pending(&self, role: &str, producers: Vec<trailhound_bus::PendingRecords>) {
        if let Ok(mut pending) = self.inner.pending.lock() {
            pending.retain(|(r, _)| r != role);
            pending.push((role.to_string(), producers));
        }
    }

    /// Moves the pending-record gauges to the producers' counters now.
    fn refresh_pending(&self) {
        let Ok(pending) = self.inner.pending.lock() else {
            return;
        };
        for (role, producers) in pending.iter() {
            if let Some(g) = child(
                &self.inner.bus_pending,
                "trailhound_bus_pending_records",
                &[role.as_str()],
            ) {
                g.set(producers.iter().map(|p| p.get()).sum());
            }
        }
    }

    /// Moves the notification series up to the sinks' counters now.
    fn refresh_sinks(&self) {
        let Ok(sinks) = self.inner.sinks.lock() else {
            return;
        };
        for handle in sinks.iter() {
            let st = handle.snapshot();
            let (sink, kind) = (st.name.as_str(), st.kind.as_str());
            for (result, total) in [
                ("sent", st.sent),
                ("retried", st.retried),
                ("failed", st.failed),
                ("dropped", st.dropped),
                ("not_routed", st.not_routed),
            ] {
                if let Some(c) = child(
                    &self.inner.notify,
                    "trailhound_notify_total",
                    &[sink, kind, result],
                ) {
                    advance(&c, total);
                }
            }
            if let Some(c) = child(
                &self.inner.notify_dead_letters,
                "trailhound_notify_dead_letters_total",
                &[sink, kind],
            ) {
                advance(&c, st.dead_lettered);
            }
            if let Some(g) = child(
                &self.inner.notify_queue,
                "trailhound_notify_queue_depth",
                &[sink, kind],
            ) {
                g.set(i64::try_from(st.queue_depth).unwrap_or(i64::MAX));
            }
        }
    }

    /// Every metric in the text exposition format (version 0.0.4).
    pub fn render(&self) -> String {
        self.refresh_sinks();
        self.refresh_pending();
        let last = self.inner.last_checkpoint.lock().ok().and_then(|l| *l);
        if let Some(at) = last
            && let Some(g) = child(
                &self.inner.checkpoint_age,
                "trailhound_checkpoint_age_seconds",
                &[],
            )
        {
            let age = SystemTime::now()
                .duration_since(at)
                .map_or(0.0, |d| d.as_secs_f64());
            g.set(age);
        }
        let families = self.inner.registry.gather();
        let mut buf = Vec::new();
        match TextEncoder::new().encode(&families, &mut buf) {
            Ok(()) => String::from_utf8_lossy(&buf).into_owned(),
            Err(e) => {
                tracing::error!(error = %e, "Metrics could not be encoded.");
                format!("# trailhound: metrics could not be encoded: {e}\n")
            }
        }
    }
}

/// Moves a counter up to a cumulative total (never down).
fn advance(c: &IntCounter, total: u64) {
    let now = c.get();
    if total > now {
        c.inc_by(total - now);
    }
}

#[cfg(test)]
mod tests;
