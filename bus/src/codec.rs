//! The wire form of an [`Event`]: one Kafka message per event.
//!
//! - **key**: the event's `principal` (UTF-8), so that every event of one
//!   principal lands on one partition and one detector owns its state;
//! - **header** [`SCHEMA_HEADER`]: the encoding and its version, today
//!   [`EVENT_JSON_V1`];
//! - **payload**: for `event.v1+json`, the JSON of `Event` (its serde form,
//!   times as microseconds), compressed with the batch by the producer.
//!
//! The header makes the encoding replaceable: a binary `v2` can be introduced
//! with consumers that read both, then producers switched. A message without
//! the header, with an unknown version, or whose payload does not parse is a
//! [`DecodeError`], reported with the batch and dead-lettered by the caller.

use trailhound_core::Event;

use crate::error::DecodeError;

/// The message header that names the payload's encoding.
pub const SCHEMA_HEADER: &str = "trailhound-schema";

/// Version 1: the JSON of [`Event`].
pub const EVENT_JSON_V1: &str = "event.v1+json";

/// A detector's event-time progress on one partition of the event topic,
/// sent to the partitions of the rekeyed topic (see `docs/architecture.md`,
/// "Kafka"): JSON `{"source": "<topic>/<partition>", "front": <micros or null>}`.
pub const FRONT_JSON_V1: &str = "front.v1+json";

/// Schemas of control records: not events, returned apart by the consumer
/// ([`crate::Batch::control`]).
pub const CONTROL_SCHEMAS: &[&str] = &[FRONT_JSON_V1];

/// Header naming the rule a rekeyed event was forwarded for.
pub const RULE_HEADER: &str = "trailhound-rule";

/// Header naming where a rekeyed event came from: `<topic>/<partition>/<offset>`
/// of the event topic.
pub const ORIGIN_HEADER: &str = "trailhound-origin";

/// The message key of an event: its principal.
pub fn event_key(event: &Event) -> &str {
    &event.principal
}

/// Appends the payload of `event` to `out` (which is not cleared) and returns
/// the schema to put in the [`SCHEMA_HEADER`].
pub fn encode_event(event: &Event, out: &mut Vec<u8>) -> Result<&'static str, serde_json::Error> {
    serde_json::to_writer(&mut *out, event)?;
    Ok(EVENT_JSON_V1)
}

/// Decodes a message given its schema header value and payload.
pub fn decode_event(schema: Option<&[u8]>, payload: Option<&[u8]>) -> Result<Event, DecodeError> {
    let schema = schema.ok_or(DecodeError::MissingSchema {
        header: SCHEMA_HEADER,
    })?;
    if schema != EVENT_JSON_V1.as_bytes() {
        return Err(DecodeError::UnknownSchema(
            String::from_utf8_lossy(schema.get(..64).unwrap_or(schema)).into_owned(),
        ));
    }
    let payload = match payload {
        Some(p) if !p.is_empty() => p,
        _ => return Err(DecodeError::EmptyPayload),
    };
    serde_json::from_slice(payload).map_err(|e| DecodeError::InvalidEvent(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn sample() -> Event {
        Event {
            event_time: 1_704_164_645_123_456,
            ingest_time: 1_704_164_700_000_000,
            event_id: "0b5c6e1e-1".into(),
            event_source: "iam.amazonaws.com".into(),
            event_name: "AttachUserPolicy".into(),
            event_category: "Management".into(),
            read_only: Some(false),
            principal: "arn:aws:iam::111122223333:user/alice".into(),
            principal_type: "IAMUser".into(),
            resources: vec!["arn:aws:iam::111122223333:user/bob".into()],
            keystroke_interval_ms_mean: Some(120.5),
            request: Some(r#"{"policyArn":"arn:aws:iam::aws:policy/AdministratorAccess"}"#.into()),
            ..Event::default()
        }
    }

    #[test]
    fn round_trip() {
        let event = sample();
        let mut buf = Vec::new();
        let schema = encode_event(&event, &mut buf).unwrap();
        let back = decode_event(Some(schema.as_bytes()), Some(&buf)).unwrap();
        assert_eq!(back, event);
        assert_eq!(event_key(&event), "arn:aws:iam::111122223333:user/alice");
    }

    #[test]
    fn undecodable_messages_say_why() {
        type Case<'a> = (Option<&'a [u8]>, Option<&'a [u8]>, &'a str);
        let v1 = Some(EVENT_JSON_V1.as_bytes());
        let cases: [Case<'_>; 5] = [
            (None, Some(b"{}"), "missing_schema"),
            (Some(b"event.v9+avro"), Some(b"{}"), "unknown_schema"),
            (v1, None, "empty_payload"),
            (v1, Some(b"{\"event_time\": \"noon\"}"), "invalid_event"),
            (v1, Some(b"\xff\xfe not json"), "invalid_event"),
        ];
        for (schema, payload, reason) in cases {
            let err = decode_event(schema, payload).unwrap_err();
            assert_eq!(err.reason(), reason, "{err}");
        }
    }
}
