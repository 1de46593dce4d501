//! PagerDuty: alerts as Events API v2 events (`POST {base}/v2/enqueue`).
//!
//! A trigger ([`trigger_event`]) carries the integration's `routing_key`,
//! `event_action: trigger`, the alert id as `dedup_key` (so the same alert
//! raised again, by a replay or a resumed run, updates the same PagerDuty
//! alert instead of paging twice), and a `payload` with `summary` (title and
//! principal, at most 1,024 characters), `source` (the AWS account, or
//! `trailhound`), `severity` mapped from ours ([`severity`]: critical →
//! critical, high → error, medium → warning, low and informational → info),
//! `timestamp`, `component` (the principal), `group` (the account), `class`
//! (the rule id) and `custom_details` (evidence, rule, tags, event ids and
//! count). A resolve ([`resolve_event`]) is `event_action: resolve` with the
//! same dedup key, sent by [`PagerDutySink::resolve`] when the sink was
//! configured with `resolve` enabled. The base URL is configurable
//! ([`DEFAULT_BASE_URL`] by default) so that tests can point at loopback.

use serde_json::{Value, json};
use trailhound_core::{Alert, Severity};

use super::delivery::{Delivery, DeliveryPolicy, Encode, Job, Request};
use super::slack::truncate;
use super::{NotifyError, Queued, Route, check_url, queued_sink};

/// PagerDuty's Events API host.
pub const DEFAULT_BASE_URL: &str = "https://events.pagerduty.com";
/// The summary's length limit.
pub const SUMMARY_MAX: usize = 1024;

/// Where and how a PagerDuty sink sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PagerDutyConfig {
    /// The sink's name (for logs, counters and dead letters).
    pub name: String,
    /// The Events API v2 integration key of the service (a secret).
    pub routing_key: String,
    /// The API's base URL, without `/v2/enqueue`.
    pub base_url: String,
    /// Whether [`PagerDutySink::resolve`] may send resolve events.
    pub resolve: bool,
}

impl PagerDutyConfig {
    /// A config for `routing_key` at the default base URL, resolve disabled.
    pub fn new(name: impl Into<String>, routing_key: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            routing_key: routing_key.into(),
            base_url: DEFAULT_BASE_URL.into(),
            resolve: false,
        }
    }
}

/// Triggers a PagerDuty alert for every routed alert.
#[derive(Debug)]
pub struct PagerDutySink {
    inner: Queued,
    resolve: bool,
}

impl PagerDutySink {
    /// Starts the sink's delivery thread.
    pub fn new(
        config: PagerDutyConfig,
        route: Route,
        policy: DeliveryPolicy,
    ) -> Result<Self, NotifyError> {
        if config.routing_key.trim().is_empty() {
            return Err(NotifyError::Invalid {
                sink: config.name,
                reason: "the routing key is empty".into(),
            });
        }
        let url = format!("{}/v2/enqueue", config.base_url.trim_end_matches('/'));
        check_url(&config.name, &url)?;
        let encoder = PagerDutyEncoder {
            url,
            routing_key: config.routing_key,
        };
        let delivery = Delivery::start(&config.name, "pagerduty", Box::new(encoder), policy)?;
        Ok(Self {
            inner: Queued {
                kind: "pagerduty",
                route,
                delivery,
            },
            resolve: config.resolve,
        })
    }

    /// Queues a resolve event for `alert_id` (the dedup key of its trigger).
    /// Fails unless the sink was configured with `resolve` enabled.
    pub fn resolve(&self, alert_id: &str) -> Result<(), NotifyError> {
        if !self.resolve {
            return Err(NotifyError::ResolveDisabled {
                sink: self.inner.delivery.stats_handle().name().to_string(),
            });
        }
        self.inner.delivery.enqueue(Job::Resolve {
            alert_id: alert_id.to_string(),
        })?;
        Ok(())
    }
}

queued_sink!(PagerDutySink);

struct PagerDutyEncoder {
    url: String,
    routing_key: String,
}

impl Encode for PagerDutyEncoder {
    fn encode(&self, job: &Job) -> Result<Request, String> {
        let body = match job {
            Job::Alert(alert) => trigger_event(&self.routing_key, alert),
            Job::Resolve { alert_id } => resolve_event(&self.routing_key, alert_id),
        };
        Ok(Request {
            url: self.url.clone(),
            headers: vec![("Content-Type", "application/json".into())],
            body: serde_json::to_vec(&body).map_err(|e| e.to_string())?,
        })
    }
}

/// PagerDuty's severity for ours.
pub fn severity(severity: Severity) -> &'static str {
    match severity {
        Severity::Critical => "critical",
        Severity::High => "error",
        Severity::Medium => "warning",
        Severity::Low | Severity::Informational => "info",
    }
}

/// The trigger event for `alert`.
pub fn trigger_event(routing_key: &str, alert: &Alert) -> Value {
    let summary = truncate(
        &format!(
            "[{}] {}: {}",
            alert.severity.as_str().to_uppercase(),
            alert.title,
            alert.principal
        ),
        SUMMARY_MAX,
    );
    let timestamp = chrono::DateTime::from_timestamp_micros(alert.first_event_time)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true));
    let mut payload = json!({
        "summary": summary,
        "source": alert.account_id.as_deref().map(|a| format!("aws account {a}")).unwrap_or_else(|| "trailhound".into()),
        "severity": severity(alert.severity),
        "component": alert.principal,
        "class": alert.rule_id,
        "custom_details": {
            "evidence": alert.evidence,
            "rule_id": alert.rule_id,
            "title": alert.title,
            "severity": alert.severity.as_str(),
            "principal": alert.principal,
            "account_id": alert.account_id,
            "tags": alert.tags,
            "event_ids": alert.event_ids,
            "event_count": alert.event_count,
            "first_event_time": trailhound_core::time::format_micros(alert.first_event_time),
            "last_event_time": trailhound_core::time::format_micros(alert.last_event_time),
            "alert_id": alert.alert_id,
        },
    });
    if let (Some(obj), Some(ts)) = (payload.as_object_mut(), timestamp) {
        obj.insert("timestamp".into(), Value::String(ts));
    }
    if let (Some(obj), Some(account)) = (payload.as_object_mut(), &alert.account_id) {
        obj.insert("group".into(), Value::String(account.clone()));
    }
    json!({
        "routing_key": routing_key,
        "event_action": "trigger",
        "dedup_key": alert.alert_id,
        "client": "trailhound",
        "payload": payload,
    })
}

/// The resolve event for the alert with id `alert_id`.
pub fn resolve_event(routing_key: &str, alert_id: &str) -> Value {
    json!({
        "routing_key": routing_key,
        "event_action": "resolve",
        "dedup_key": alert_id,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn severities_map_onto_pagerdutys_four() {
        assert_eq!(severity(Severity::Critical), "critical");
        assert_eq!(severity(Severity::High), "error");
        assert_eq!(severity(Severity::Medium), "warning");
        assert_eq!(severity(Severity::Low), "info");
        assert_eq!(severity(Severity::Informational), "info");
    }

    #[test]
    fn resolve_needs_only_key_action_and_dedup_key() {
        let e = resolve_event("k", "a1");
        assert_eq!(
            e,
            json!({"routing_key": "k", "event_action": "resolve", "dedup_key": "a1"})
        );
    }
}
