//! Alerts: what a rule says when it fires.

use serde::{Deserialize, Serialize};

/// How bad an alert is. Ordered: `Critical > High > Medium > Low > Informational`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Worth recording, not worth a look.
    Informational,
    /// Worth a look during the day.
    Low,
    /// Worth a look soon.
    Medium,
    /// Likely misuse: look now.
    High,
    /// Misuse in progress: act now.
    Critical,
}

impl Severity {
    /// The lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Informational => "informational",
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }
}

impl std::fmt::Display for Severity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Severity {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "informational" | "info" => Ok(Severity::Informational),
            "low" => Ok(Severity::Low),
            "medium" => Ok(Severity::Medium),
            "high" => Ok(Severity::High),
            "critical" => Ok(Severity::Critical),
            other => Err(format!(
                "unknown severity {other:?}: expected informational, low, medium, high or critical"
            )),
        }
    }
}

/// One alert. `alert_id` is derived from the rule and the dedup key, so a
/// replayed event yields the same id and downstream consumers can drop
/// duplicates.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    /// Stable id: a hash of the rule id, dedup key and dedup period start.
    pub alert_id: String,
    /// The rule that fired.
    pub rule_id: String,
    /// The rule's title.
    pub title: String,
    /// How bad it is.
    pub severity: Severity,
    /// Who did it (the event model's `principal`).
    pub principal: String,
    /// The account it happened in, when known.
    pub account_id: Option<String>,
    /// Event time of the first triggering event, microseconds UTC.
    pub first_event_time: i64,
    /// Event time of the last triggering event, microseconds UTC.
    pub last_event_time: i64,
    /// When trailhound raised the alert, microseconds UTC.
    pub detected_at: i64,
    /// Ids of the events that triggered the alert (bounded sample).
    pub event_ids: Vec<String>,
    /// How many events matched in all (may exceed `event_ids.len()`).
    pub event_count: u64,
    /// Why it fired, in plain words.
    pub evidence: String,
    /// ATT&CK and other tags (`attack.t1562.008`).
    pub tags: Vec<String>,
    /// The access key the triggering event was signed with, when the rule
    /// fired on one event (what `disable-access-key` deactivates).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_key_id: Option<String>,
    /// The gateway session of the triggering event, when it came from one
    /// (what `end-gateway-session` ends).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    /// For an alert about a just-in-time grant that ended (or was outlived):
    /// the sessions issued during it, which `revoke-sessions` and
    /// `end-gateway-session` close.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub closes: Option<crate::grant::GrantClosure>,
}
