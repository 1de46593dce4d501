//! The `alerts` table: the Arrow schema of an [`Alert`] and the conversion of
//! alerts into a `RecordBatch` of it. Times are UTC microsecond timestamps
//! like the event model's; counts are signed 64-bit so every engine (Athena
//! included) reads them without an unsigned type.

use std::sync::{Arc, OnceLock};

use arrow::array::{
    ArrayRef, Int64Builder, ListBuilder, RecordBatch, StringBuilder, TimestampMicrosecondBuilder,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::error::ArrowError;
use trailhound_core::Alert;
use trailhound_core::schema::timestamp_utc;

fn string_list() -> DataType {
    DataType::List(Arc::new(Field::new("item", DataType::Utf8, true)))
}

/// The Arrow schema of the `alerts` table. Built once and shared.
pub fn alert_schema() -> SchemaRef {
    static SCHEMA: OnceLock<SchemaRef> = OnceLock::new();
    SCHEMA
        .get_or_init(|| {
            Arc::new(Schema::new(vec![
                Field::new("alert_id", DataType::Utf8, false),
                Field::new("rule_id", DataType::Utf8, false),
                Field::new("severity", DataType::Utf8, false),
                Field::new("title", DataType::Utf8, false),
                Field::new("principal", DataType::Utf8, false),
                Field::new("account_id", DataType::Utf8, true),
                Field::new("first_event_time", timestamp_utc(), false),
                Field::new("last_event_time", timestamp_utc(), false),
                Field::new("detected_at", timestamp_utc(), false),
                Field::new("event_ids", string_list(), false),
                Field::new("event_count", DataType::Int64, false),
                Field::new("evidence", DataType::Utf8, false),
                Field::new("tags", string_list(), false),
            ]))
        })
        .clone()
}

/// Turns alerts into one `RecordBatch` of [`alert_schema`].
pub fn alerts_to_batch(alerts: &[Alert]) -> Result<RecordBatch, ArrowError> {
    let n = alerts.len();
    let mut alert_id = StringBuilder::with_capacity(n, n * 16);
    let mut rule_id = StringBuilder::with_capacity(n, n * 32);
    let mut severity = StringBuilder::with_capacity(n, n * 8);
    let mut title = StringBuilder::with_capacity(n, n * 48);
    let mut principal = StringBuilder::with_capacity(n, n * 48);
    let mut account_id = StringBuilder::with_capacity(n, n * 12);
    let mut first = TimestampMicrosecondBuilder::with_capacity(n).with_timezone("UTC");
    let mut last = TimestampMicrosecondBuilder::with_capacity(n).with_timezone("UTC");
    let mut detected = TimestampMicrosecondBuilder::with_capacity(n).with_timezone("UTC");
    let mut event_ids = ListBuilder::new(StringBuilder::new());
    let mut event_count = Int64Builder::with_capacity(n);
    let mut evidence = StringBuilder::with_capacity(n, n * 80);
    let mut tags = ListBuilder::new(StringBuilder::new());
    for a in alerts {
        alert_id.append_value(&a.alert_id);
        rule_id.append_value(&a.rule_id);
        severity.append_value(a.severity.as_str());
        title.append_value(&a.title);
        principal.append_value(&a.principal);
        account_id.append_option(a.account_id.as_deref());
        first.append_value(a.first_event_time);
        last.append_value(a.last_event_time);
        detected.append_value(a.detected_at);
        for id in &a.event_ids {
            event_ids.values().append_value(id);
        }
        event_ids.append(true);
        event_count.append_value(i64::try_from(a.event_count).unwrap_or(i64::MAX));
        evidence.append_value(&a.evidence);
        for t in &a.tags {
            tags.values().append_value(t);
        }
        tags.append(true);
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(alert_id.finish()),
        Arc::new(rule_id.finish()),
        Arc::new(severity.finish()),
        Arc::new(title.finish()),
        Arc::new(principal.finish()),
        Arc::new(account_id.finish()),
        Arc::new(first.finish()),
        Arc::new(last.finish()),
        Arc::new(detected.finish()),
        Arc::new(event_ids.finish()),
        Arc::new(event_count.finish()),
        Arc::new(evidence.finish()),
        Arc::new(tags.finish()),
    ];
    RecordBatch::try_new(alert_schema(), columns)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use trailhound_core::Severity;

    /// An alert for tests, at `first_event_time` microseconds.
    pub(crate) fn alert(n: u32, first_event_time: i64) -> Alert {
        Alert {
            alert_id: format!("a{n}"),
            rule_id: "aws-test-rule".into(),
            title: "A test rule".into(),
            severity: Severity::High,
            principal: "arn:aws:iam::111122223333:user/alice".into(),
            account_id: n.is_multiple_of(2).then(|| "111122223333".to_string()),
            first_event_time,
            last_event_time: first_event_time + 5,
            detected_at: first_event_time + 10,
            event_ids: vec![format!("e{n}"), format!("f{n}")],
            event_count: 2,
            evidence: "alice did it".into(),
            tags: vec!["attack.t1562.008".into()],
            access_key_id: None,
            session_id: None,
            closes: None,
        }
    }

    #[test]
    fn alerts_become_rows_of_the_alert_schema() {
        let batch = alerts_to_batch(&[alert(1, 10), alert(2, 20)]).unwrap();
        assert_eq!(batch.num_rows(), 2);
        assert_eq!(batch.schema(), alert_schema());
        let text = arrow::util::pretty::pretty_format_batches(&[batch])
            .unwrap()
            .to_string();
        assert!(text.contains("[e1, f1]"), "{text}");
        assert!(text.contains("high"), "{text}");
        assert!(text.contains("111122223333"), "{text}");
    }
}
