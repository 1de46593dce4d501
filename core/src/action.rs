//! Response actions: what a responder did (or, in shadow mode, would have
//! done) about an alert. Every action is recorded, in the audit lake's
//! `actions` table and on the actions topic, whatever its outcome.

use serde::{Deserialize, Serialize};

/// How a responder runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ActionMode {
    /// Responses are switched off: the record says what was not done.
    Off,
    /// Responses are recorded as they would have been taken, not taken.
    Shadow,
    /// Responses are taken.
    Enforce,
}

impl ActionMode {
    /// The lower-case name (`off`, `shadow`, `enforce`).
    pub fn as_str(self) -> &'static str {
        match self {
            ActionMode::Off => "off",
            ActionMode::Shadow => "shadow",
            ActionMode::Enforce => "enforce",
        }
    }
}

/// How an action ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ActionOutcome {
    /// Taken (in shadow mode: would have been taken).
    Done,
    /// Not taken on purpose: allow-listed principal, cap reached, circuit
    /// open, already in place, root or AWS service principal.
    Skipped,
    /// Tried and failed.
    Failed,
    /// Undone: released by its time to live or by `release`.
    Released,
}

impl ActionOutcome {
    /// The lower-case name (`done`, `skipped`, `failed`, `released`).
    pub fn as_str(self) -> &'static str {
        match self {
            ActionOutcome::Done => "done",
            ActionOutcome::Skipped => "skipped",
            ActionOutcome::Failed => "failed",
            ActionOutcome::Released => "released",
        }
    }
}

/// One response action.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Action {
    /// Stable id of the action (the same action retried has the same id).
    pub action_id: String,
    /// The alert it answers.
    pub alert_id: String,
    /// The rule that raised the alert.
    pub rule_id: String,
    /// Who it acts on (the alert's principal).
    pub principal: String,
    /// What it does: a rule's response name (`quarantine-principal`,
    /// `revoke-sessions`, `disable-access-key`, `end-gateway-session`, ...).
    pub kind: String,
    /// The responder's mode when it ran.
    pub mode: ActionMode,
    /// How it ended.
    pub outcome: ActionOutcome,
    /// Why, in words (the skip reason, the error, what was changed); may be empty.
    pub reason: String,
    /// When it happened, microseconds UTC.
    pub time: i64,
    /// What the responder needs to undo it or to show it (policy name, key
    /// id, session id, the API's answer): any JSON.
    pub details: serde_json::Value,
}

/// What a response hook hands back: the action records to keep (lake,
/// actions topic, metrics) and alerts about the response itself (a failed
/// action, a circuit breaker that tripped), which go to the sinks like any
/// other alert.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct ResponseOutput {
    /// Decisions taken since the last call.
    pub actions: Vec<Action>,
    /// Alerts raised by the responders.
    pub alerts: Vec<crate::Alert>,
}

impl ResponseOutput {
    /// Nothing to hand back.
    pub fn is_empty(&self) -> bool {
        self.actions.is_empty() && self.alerts.is_empty()
    }

    /// Appends `other`.
    pub fn extend(&mut self, other: ResponseOutput) {
        self.actions.extend(other.actions);
        self.alerts.extend(other.alerts);
    }
}

/// Where the pipeline hands alerts for automated response. The hook must
/// not block detection on the network: `alerts` queues (bounded), the work
/// happens elsewhere, and what was decided comes back through `poll`.
pub trait ResponseHook: Send {
    /// Alerts just raised and delivered to the sinks.
    fn alerts(&mut self, alerts: &[crate::Alert]);
    /// Decisions made since the last call (never waits); also the moment
    /// to release actions whose time to live is over.
    fn poll(&mut self) -> ResponseOutput;
    /// Waits at most `timeout` for everything handed over so far to be
    /// decided (at a checkpoint and at the end of a run).
    fn settle(&mut self, timeout: std::time::Duration) -> ResponseOutput;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_and_outcomes_serialise_as_their_names() {
        let a = Action {
            action_id: "x1".into(),
            alert_id: "a1".into(),
            rule_id: "r".into(),
            principal: "arn:aws:iam::111122223333:user/alice".into(),
            kind: "quarantine-principal".into(),
            mode: ActionMode::Shadow,
            outcome: ActionOutcome::Skipped,
            reason: "allow-listed".into(),
            time: 1,
            details: serde_json::json!({"policy": "trailhound-quarantine"}),
        };
        let v = serde_json::to_value(&a).unwrap_or_default();
        assert_eq!(v["mode"], "shadow");
        assert_eq!(v["outcome"], "skipped");
        assert_eq!(ActionMode::Enforce.as_str(), "enforce");
        assert_eq!(ActionOutcome::Released.as_str(), "released");
        let back: Action = serde_json::from_value(v).unwrap_or_else(|_| a.clone());
        assert_eq!(back, a);
    }
}
