//! trailhound's grants JSON lines (`"trailhound":"grant/v1"`) into grant
//! events. The format is specified for broker authors in
//! `docs/grants-jsonl.md`; this module follows it field by field.
//!
//! In short: every line is an object with `trailhound`, `id` and a time
//! (`time`, else `start`, else `end`). `state` (default `approved`) becomes
//! the event name: `grant.requested`, `grant.approved`, `grant.denied`,
//! `grant.ended` (`revoked`, `expired` and `ended` alike). An approved line
//! also needs `principal` and `roles` (or `role`). The grant id is
//! `<broker>:<id>`, so two brokers' ids never meet; unknown keys go to
//! `extra`. A line is read on its own: the detector merges a grant's lines
//! by id (an extension is an approved line with a later `end`, an early
//! revocation a `revoked` line).

use serde_json::{Map, Value};
use trailhound_core::grant::{GrantDoc, names};
use trailhound_core::time::format_micros;

use super::GrantEvent;
use crate::emit::{Emit, ParseContext, Position};
use crate::session::common::{self, Required};

/// The value of the `trailhound` key this parser reads.
pub const FORMAT_VERSION: &str = "grant/v1";

/// The broker name when a line gives none.
pub const DEFAULT_BROKER: &str = "grants";

/// Keys the format defines; the others go to `extra`.
const KNOWN_KEYS: [&str; 17] = [
    "trailhound",
    "id",
    "state",
    "time",
    "principal",
    "role",
    "roles",
    "account",
    "accounts",
    "start",
    "end",
    "requester",
    "approver",
    "ticket",
    "reason",
    "broker",
    "gateway",
];

/// A dead letter's reason and detail.
type Reject = (&'static str, String);

/// Parses grants JSON lines.
pub fn parse(bytes: &[u8], ctx: &ParseContext, out: &mut dyn Emit) {
    for (number, raw) in common::lines(bytes) {
        line(number, raw, ctx, out);
    }
}

/// Parses line `number` (1-based) of a grants log: one event or one dead
/// letter.
pub fn line(number: u64, raw: &[u8], ctx: &ParseContext, out: &mut dyn Emit) {
    let Some(map) = common::json_object(number, raw, ctx, out) else {
        return;
    };
    match read(&map, ctx) {
        Ok(event) => out.event(&event),
        Err((reason, detail)) => {
            out.dead_letter(ctx.dead_letter(Position::Line(number), reason, detail, raw));
        }
    }
}

fn missing(key: &str) -> Reject {
    (
        "missing_field",
        format!("required field `{key}` is missing or empty"),
    )
}

fn invalid(detail: String) -> Reject {
    ("invalid_field", detail)
}

/// An optional string field: absent or null is `None`, another type an error.
fn optional_str<'a>(map: &'a Map<String, Value>, key: &str) -> Result<Option<&'a str>, Reject> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.as_str())),
        Some(other) => Err(invalid(format!(
            "`{key}` should be a string, found {}",
            common::json_kind(other)
        ))),
    }
}

/// An optional RFC 3339 time field, in microseconds.
fn optional_time(map: &Map<String, Value>, key: &str) -> Result<Option<i64>, Reject> {
    match common::rfc3339_field(map, key) {
        Required::Ok(t) => Ok(Some(t)),
        Required::Missing => Ok(None),
        Required::Invalid(why) => Err(invalid(why)),
    }
}

/// A list of strings given as a list (`many`) or as one string (`one`).
fn string_list(map: &Map<String, Value>, many: &str, one: &str) -> Result<Vec<String>, Reject> {
    let mut out = Vec::new();
    match map.get(many) {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) if !s.trim().is_empty() => out.push(s.trim().to_string()),
        Some(Value::String(_)) => {}
        Some(Value::Array(items)) => {
            for item in items {
                match item {
                    Value::String(s) if !s.trim().is_empty() => out.push(s.trim().to_string()),
                    other => {
                        return Err(invalid(format!(
                            "`{many}` should hold non-empty strings, found {}",
                            common::json_kind(other)
                        )));
                    }
                }
            }
        }
        Some(other) => {
            return Err(invalid(format!(
                "`{many}` should be a list of strings, found {}",
                common::json_kind(other)
            )));
        }
    }
    if let Some(s) = optional_str(map, one)? {
        out.push(s.trim().to_string());
    }
    out.dedup();
    Ok(out)
}

fn read(map: &Map<String, Value>, ctx: &ParseContext) -> Result<trailhound_core::Event, Reject> {
    match map.get("trailhound") {
        None | Some(Value::Null) => return Err(missing("trailhound")),
        Some(Value::String(v)) if v == FORMAT_VERSION => {}
        Some(other) => {
            return Err((
                "unsupported_version",
                format!("`trailhound` is {other}; this version reads {FORMAT_VERSION:?}"),
            ));
        }
    }
    let id = match map.get("id") {
        Some(Value::String(s)) if !s.trim().is_empty() => s.trim().to_string(),
        Some(Value::Number(n)) => n.to_string(),
        None | Some(Value::Null) | Some(Value::String(_)) => return Err(missing("id")),
        Some(other) => {
            return Err(invalid(format!(
                "`id` should be a string or a number, found {}",
                common::json_kind(other)
            )));
        }
    };
    let state = optional_str(map, "state")?.unwrap_or("approved");
    let name = match state.to_ascii_lowercase().as_str() {
        "requested" | "pending" => names::REQUESTED,
        "approved" | "active" | "granted" => names::APPROVED,
        "denied" | "rejected" => names::DENIED,
        "revoked" | "expired" | "ended" => names::ENDED,
        other => {
            return Err(invalid(format!(
                "`state` {other:?} is not one of requested, approved, denied, revoked, expired, ended"
            )));
        }
    };
    let start = optional_time(map, "start")?;
    let end = optional_time(map, "end")?;
    let time = optional_time(map, "time")?
        .or(match name {
            names::ENDED => end.or(start),
            _ => start,
        })
        .ok_or_else(|| missing("time"))?;
    if let (Some(s), Some(e)) = (start, end)
        && e < s
    {
        return Err(invalid(format!(
            "`end` {} is before `start` {}",
            format_micros(e),
            format_micros(s)
        )));
    }
    let person = optional_str(map, "principal")?.map(|p| p.trim().to_string());
    let roles = string_list(map, "roles", "role")?;
    if name == names::APPROVED {
        if person.is_none() {
            return Err(missing("principal"));
        }
        if roles.is_empty() {
            return Err(missing("roles"));
        }
    }
    let accounts = string_list(map, "accounts", "account")?;
    let gateway = match map.get("gateway") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(other) => {
            return Err(invalid(format!(
                "`gateway` should be true or false, found {}",
                common::json_kind(other)
            )));
        }
    };
    let broker = optional_str(map, "broker")?.unwrap_or(DEFAULT_BROKER);
    let doc = GrantDoc {
        id: format!("{broker}:{id}"),
        person: person.clone(),
        roles,
        accounts,
        start: start.map(format_micros),
        end: end.map(format_micros),
        requester: optional_str(map, "requester")?.map(str::to_string),
        approver: optional_str(map, "approver")?.map(str::to_string),
        ticket: optional_str(map, "ticket")?.map(str::to_string),
        reason: optional_str(map, "reason")?.map(str::to_string),
        gateway,
    };
    let state_word = name.trim_start_matches("grant.");
    Ok(GrantEvent {
        broker,
        name,
        time,
        event_id: format!("{}:{state_word}:{time}", doc.id),
        principal: person.unwrap_or_else(|| format!("grant:{}", doc.id)),
        principal_type: "Person",
        doc,
        extra: common::extra_without(map, &KNOWN_KEYS),
    }
    .event(ctx))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::emit::Collect;

    fn run(text: &str) -> Collect {
        let mut out = Collect::default();
        parse(
            text.as_bytes(),
            &ParseContext::new("grants.jsonl"),
            &mut out,
        );
        out
    }

    fn doc(e: &trailhound_core::Event) -> GrantDoc {
        serde_json::from_str(e.request.as_deref().unwrap_or("{}")).unwrap()
    }

    #[test]
    fn an_approved_line_becomes_a_grant_event_with_its_document() {
        let out = run(concat!(
            r#"{"trailhound":"grant/v1","id":"CHG-7","principal":"alice","roles":["arn:aws:iam::111122223333:role/jit-admin"],"#,
            r#""account":"111122223333","start":"2026-11-02T10:00:00Z","end":"2026-11-02T11:00:00Z","#,
            r#""requester":"alice","approver":"bob","ticket":"CHG-7","broker":"sym","team":"sre"}"#,
            "\n"
        ));
        assert!(out.dead_letters.is_empty(), "{:?}", out.dead_letters);
        let e = &out.events[0];
        assert_eq!(e.event_name, "grant.approved");
        assert_eq!(e.event_category, "Grant");
        assert_eq!(e.event_source, "sym");
        assert_eq!(e.principal, "alice");
        assert_eq!(e.event_time, 1_793_613_600_000_000);
        assert_eq!(e.event_id, "sym:CHG-7:approved:1793613600000000");
        assert_eq!(e.extra.as_deref(), Some(r#"{"team":"sre"}"#));
        let d = doc(e);
        assert_eq!(d.id, "sym:CHG-7");
        assert_eq!(d.accounts, vec!["111122223333"]);
        assert_eq!(d.end.as_deref(), Some("2026-11-02T11:00:00Z"));
        assert_eq!(d.approver.as_deref(), Some("bob"));
    }

    #[test]
    fn a_revocation_needs_only_the_id_and_a_time() {
        let out = run(
            r#"{"trailhound":"grant/v1","id":"CHG-7","state":"revoked","end":"2026-11-02T10:20:00Z"}"#,
        );
        let e = &out.events[0];
        assert_eq!(e.event_name, "grant.ended");
        assert_eq!(e.principal, "grant:grants:CHG-7");
        assert_eq!(doc(e).end.as_deref(), Some("2026-11-02T10:20:00Z"));
    }

    #[test]
    fn bad_lines_are_dead_letters_with_reasons() {
        let out = run(concat!(
            r#"{"trailhound":"grant/v2","id":"a","time":"2026-11-02T10:00:00Z"}"#,
            "\n",
            r#"{"trailhound":"grant/v1","time":"2026-11-02T10:00:00Z"}"#,
            "\n",
            r#"{"trailhound":"grant/v1","id":"b","roles":["x"],"time":"2026-11-02T10:00:00Z"}"#,
            "\n",
            r#"{"trailhound":"grant/v1","id":"c","principal":"a","roles":"x","start":"2026-11-02T10:00:00Z","end":"2026-11-02T09:00:00Z"}"#,
            "\n",
            r#"{"trailhound":"grant/v1","id":"d","state":"maybe","time":"2026-11-02T10:00:00Z"}"#,
            "\n",
            r#"{"trailhound":"grant/v1","id":"e","principal":"a","roles":"x"}"#,
            "\n",
            "not json\n",
        ));
        assert!(out.events.is_empty());
        let reasons: Vec<&str> = out.dead_letters.iter().map(|d| d.reason).collect();
        assert_eq!(
            reasons,
            [
                "unsupported_version",
                "missing_field",
                "missing_field",
                "invalid_field",
                "invalid_field",
                "missing_field",
                "invalid_json"
            ]
        );
    }
}
