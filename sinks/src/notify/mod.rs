//! # Notifications: chat, paging and webhooks
//!
//! Sinks that post alerts to people and their tools over HTTP:
//!
//! - [`SlackSink`] ([`slack`]): a Slack incoming webhook, one Block Kit message per alert.
//! - [`PagerDutySink`] ([`pagerduty`]): PagerDuty Events API v2, `trigger`
//!   with the alert id as dedup key, and `resolve` when enabled.
//! - [`WebhookSink`] ([`webhook`]): any HTTP endpoint, the alert (or its
//!   OCSF Detection Finding) as JSON, signed with HMAC-SHA256.
//! - [`KafkaSink`] ([`kafka`]): the Kafka alerts topic, keyed by alert id,
//!   each record acknowledged by the broker.
//!
//! Each is a [`Route`] ([`route`]: which alerts it takes) in front of a
//! [`Delivery`] ([`delivery`]: a bounded queue, one worker thread, retries
//! with backoff, a dead-letter file). `send` never waits for the network, so
//! a destination that is slow or down never holds up detection; what cannot
//! be delivered ends in the dead-letter file with the reason, and every sink
//! counts what it did in [`SinkStats`].

pub mod delivery;
pub mod kafka;
pub mod pagerduty;
pub mod route;
pub mod slack;
pub mod webhook;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod testserver;

use trailhound_core::Alert;

pub use delivery::{
    Delivery, DeliveryPolicy, Encode, Job, NotifyDeadLetter, Outcome, Request, SinkStats,
    StatsHandle, Transport,
};
pub use kafka::{KafkaSink, KafkaSinkConfig};
pub use pagerduty::{PagerDutyConfig, PagerDutySink};
pub use route::{Route, Routed};
pub use slack::{SlackConfig, SlackSink};
pub use webhook::{WebhookConfig, WebhookFormat, WebhookSink};

use crate::SinkError;

/// Errors setting up or using a notification sink.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    /// The destination URL is not an absolute http(s) URL.
    #[error("sink {sink}: {url:?} is not a usable URL: {reason}")]
    InvalidUrl {
        /// The sink's name.
        sink: String,
        /// The URL (secrets in it are not shown: only scheme and host).
        url: String,
        /// Why.
        reason: String,
    },
    /// A rule pattern of a route is not a valid glob.
    #[error("rule pattern {pattern:?} is not a valid glob: {reason}")]
    InvalidPattern {
        /// The pattern.
        pattern: String,
        /// Why.
        reason: String,
    },
    /// A setting is out of range or missing.
    #[error("sink {sink}: {reason}")]
    Invalid {
        /// The sink's name.
        sink: String,
        /// What is wrong.
        reason: String,
    },
    /// The delivery thread could not be started.
    #[error("sink {sink}: cannot start its delivery thread: {source}")]
    Thread {
        /// The sink's name.
        sink: String,
        /// The cause.
        source: std::io::Error,
    },
    /// `resolve` was called on a PagerDuty sink without `resolve` enabled.
    #[error("sink {sink}: sending resolve events is not enabled for this sink")]
    ResolveDisabled {
        /// The sink's name.
        sink: String,
    },
    /// Queueing failed (the dead-letter file could not be written).
    #[error(transparent)]
    Sink(#[from] SinkError),
}

/// Checks that `url` is an absolute http or https URL with a host. The error
/// shows only scheme and host: a Slack webhook's path is its secret.
pub fn check_url(sink: &str, url: &str) -> Result<(), NotifyError> {
    let invalid = |reason: &str| NotifyError::InvalidUrl {
        sink: sink.to_string(),
        url: redact_url(url),
        reason: reason.to_string(),
    };
    let uri: ureq::http::Uri = url.parse().map_err(|_| invalid("it does not parse"))?;
    match uri.scheme_str() {
        Some("http" | "https") => {}
        _ => return Err(invalid("the scheme must be http or https")),
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err(invalid("it has no host"));
    }
    Ok(())
}

/// `scheme://host[:port]/…`: a URL with its path and query hidden.
pub fn redact_url(url: &str) -> String {
    match url.parse::<ureq::http::Uri>() {
        Ok(uri) => match (uri.scheme_str(), uri.authority()) {
            (Some(s), Some(a)) => {
                let host = a.as_str().rsplit('@').next().unwrap_or_default();
                format!("{s}://{host}/…")
            }
            _ => "(hidden)".into(),
        },
        Err(_) => "(hidden)".into(),
    }
}

/// A route in front of a delivery: what the notification sinks share.
#[derive(Debug)]
struct Queued {
    kind: &'static str,
    route: Route,
    delivery: Delivery,
}

impl Queued {
    fn send(&self, alert: &Alert) -> Result<(), SinkError> {
        if self.route.matches(alert) {
            self.delivery.enqueue(Job::Alert(Box::new(alert.clone())))
        } else {
            self.delivery.count_not_routed();
            Ok(())
        }
    }
    fn flush(&self) -> Result<(), SinkError> {
        self.delivery.flush().map(|_| ())
    }
}

/// Implements the parts of a notification sink that only forward to `inner`.
macro_rules! queued_sink {
    ($sink:ty) => {
        impl $sink {
            /// The counters now.
            pub fn stats(&self) -> $crate::notify::SinkStats {
                self.inner.delivery.stats()
            }
            /// A handle on the counters that stays valid after the sink is boxed or dropped.
            pub fn stats_handle(&self) -> $crate::notify::StatsHandle {
                self.inner.delivery.stats_handle()
            }
            /// The sink's route.
            pub fn route(&self) -> &$crate::notify::Route {
                &self.inner.route
            }
            /// Waits at most `timeout` for the queue to drain; whether it did.
            pub fn flush_within(
                &self,
                timeout: std::time::Duration,
            ) -> Result<bool, $crate::SinkError> {
                self.inner.delivery.flush_within(timeout)
            }
            /// Stops the sink: waits (bounded) for the queue, dead-letters the rest, returns the final counters.
            pub fn close(self) -> $crate::notify::SinkStats {
                self.inner.delivery.close()
            }
        }

        impl $crate::AlertSink for $sink {
            fn name(&self) -> &'static str {
                self.inner.kind
            }
            fn send(&mut self, alert: &trailhound_core::Alert) -> Result<(), $crate::SinkError> {
                self.inner.send(alert)
            }
            fn flush(&mut self) -> Result<(), $crate::SinkError> {
                self.inner.flush()
            }
        }
    };
}
use queued_sink;
