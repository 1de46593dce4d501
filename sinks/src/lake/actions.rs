//! The `actions` table: one row per response action ([`Action`]), whatever
//! its outcome, so that what the responders did (or in shadow mode would
//! have done) is queryable beside the alerts that caused it. `details` is
//! kept as JSON text, reachable with `json_get_str(details, 'policy')` in
//! `trailhound sql` and `json_extract_string(details, 'policy')` in DuckDB.

use std::sync::{Arc, OnceLock};

use arrow::array::{ArrayRef, RecordBatch, StringBuilder, TimestampMicrosecondBuilder};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::error::ArrowError;
use trailhound_core::Action;
use trailhound_core::schema::timestamp_utc;

/// The Arrow schema of the `actions` table. Built once and shared.
pub fn action_schema() -> SchemaRef {
    static SCHEMA: OnceLock<SchemaRef> = OnceLock::new();
    SCHEMA
        .get_or_init(|| {
            let s = |n: &str| Field::new(n, DataType::Utf8, false);
            Arc::new(Schema::new(vec![
                s("action_id"),
                s("alert_id"),
                s("rule_id"),
                s("principal"),
                s("kind"),
                s("mode"),
                s("outcome"),
                s("reason"),
                Field::new("time", timestamp_utc(), false),
                s("details"),
            ]))
        })
        .clone()
}

/// Turns actions into one `RecordBatch` of [`action_schema`].
pub fn actions_to_batch(actions: &[Action]) -> Result<RecordBatch, ArrowError> {
    let n = actions.len();
    let text = |bytes: usize| StringBuilder::with_capacity(n, n * bytes);
    let mut action_id = text(16);
    let mut alert_id = text(16);
    let mut rule_id = text(32);
    let mut principal = text(48);
    let mut kind = text(20);
    let mut mode = text(8);
    let mut outcome = text(8);
    let mut reason = text(40);
    let mut time = TimestampMicrosecondBuilder::with_capacity(n).with_timezone("UTC");
    let mut details = text(64);
    for a in actions {
        action_id.append_value(&a.action_id);
        alert_id.append_value(&a.alert_id);
        rule_id.append_value(&a.rule_id);
        principal.append_value(&a.principal);
        kind.append_value(&a.kind);
        mode.append_value(a.mode.as_str());
        outcome.append_value(a.outcome.as_str());
        reason.append_value(&a.reason);
        time.append_value(a.time);
        details.append_value(a.details.to_string());
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(action_id.finish()),
        Arc::new(alert_id.finish()),
        Arc::new(rule_id.finish()),
        Arc::new(principal.finish()),
        Arc::new(kind.finish()),
        Arc::new(mode.finish()),
        Arc::new(outcome.finish()),
        Arc::new(reason.finish()),
        Arc::new(time.finish()),
        Arc::new(details.finish()),
    ];
    RecordBatch::try_new(action_schema(), columns)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use trailhound_core::{ActionMode, ActionOutcome};

    /// An action for tests, at `time` microseconds.
    pub(crate) fn action(n: u32, time: i64) -> Action {
        Action {
            action_id: format!("x{n}"),
            alert_id: format!("a{n}"),
            rule_id: "aws-test-rule".into(),
            principal: "arn:aws:iam::111122223333:user/alice".into(),
            kind: "quarantine-principal".into(),
            mode: ActionMode::Shadow,
            outcome: ActionOutcome::Done,
            reason: "would attach the deny-all policy".into(),
            time,
            details: serde_json::json!({"policy": "trailhound-quarantine", "n": n}),
        }
    }

    #[test]
    fn actions_become_rows_of_the_action_schema() {
        let batch = actions_to_batch(&[action(1, 10), action(2, 20)]).unwrap();
        assert_eq!(batch.num_rows(), 2);
        assert_eq!(batch.schema(), action_schema());
        let text = arrow::util::pretty::pretty_format_batches(&[batch])
            .unwrap()
            .to_string();
        assert!(text.contains("shadow"), "{text}");
        assert!(
            text.contains(r#""policy":"trailhound-quarantine""#),
            "{text}"
        );
    }
}
