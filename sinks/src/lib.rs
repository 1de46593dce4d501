//! # trailhound-sinks
//!
//! Where alerts go: readable text and JSON lines on any writer (stdout by
//! default), Slack, PagerDuty, webhooks and Kafka ([`notify`]), all behind
//! the same [`AlertSink`] trait; the Parquet audit lake ([`lake`]) and
//! Prometheus metrics ([`metrics`]). The responders land here too.
//!
//! The one design decision to know: a sink acknowledges an alert only once it
//! is durably delivered (`send` returns `Ok` after the write, `flush` after
//! the data left the process), so the engine can account for every alert.

// Code that reads input never panics on it (tests may).
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::indexing_slicing,
        clippy::panic
    )
)]

pub mod deadletter;
pub mod lake;
pub mod memory;
pub mod metrics;
pub mod notify;
pub mod ocsf;
pub mod text;

use trailhound_core::Alert;

pub use deadletter::DeadLetterFile;
pub use lake::{LakeConfig, LakeHook, LakeStats, LakeWriter};
pub use memory::MemorySink;
pub use metrics::{EngineState, Metrics, MetricsError, MetricsServer};
pub use notify::{
    DeliveryPolicy, KafkaSink, NotifyError, PagerDutySink, Route, Routed, SinkStats, SlackSink,
    StatsHandle, WebhookSink,
};
pub use ocsf::OcsfLinesSink;
pub use text::{JsonLinesSink, TextSink};

/// Errors delivering alerts.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// Writing failed. Retrying may help if the cause was transient (a full pipe, a full disk freed later).
    #[error("alert sink {sink} failed to write: {source}")]
    Io {
        /// The sink's name.
        sink: &'static str,
        /// The cause.
        source: std::io::Error,
    },
    /// The alert could not be encoded. Retrying does not help.
    #[error("alert sink {sink} could not encode an alert: {reason}")]
    Encode {
        /// The sink's name.
        sink: &'static str,
        /// Why.
        reason: String,
    },
}

/// Something that takes alerts.
pub trait AlertSink: Send {
    /// The sink's name, for logs and metrics.
    fn name(&self) -> &'static str;
    /// Delivers one alert.
    fn send(&mut self, alert: &Alert) -> Result<(), SinkError>;
    /// Pushes out anything buffered.
    fn flush(&mut self) -> Result<(), SinkError>;
}
