//! Teleport access requests, from its audit log, into grant events.
//!
//! | Teleport `event` | grant event |
//! |---|---|
//! | `access_request.create` | `grant.requested` (`grant.approved` when created approved) |
//! | `access_request.review` | `grant.reviewed`; `grant.approved` / `grant.denied` when the review settled the request (`state`) |
//! | `access_request.update` with `state` `APPROVED` / `DENIED` | `grant.approved` / `grant.denied`; other states `grant.reviewed` |
//! | `access_request.expire`, `access_request.delete` | `grant.ended` |
//!
//! Fields: `id` (required) is the request; the grant id is
//! `teleport:<id>`. `user` (the requester, on `create`) is the person and the
//! requester; `roles` the Teleport roles asked for (the detector maps them
//! to AWS roles through the configuration); `expires` (the access expiry;
//! Teleport's zero time `0001-01-01T00:00:00Z` counts as absent) the end,
//! `assume_start_time` the start; `reviewer` (a review that approves),
//! else `updated_by`, else `delegator`, the approver; `reason` the reason.
//! Update, review and expiry events of recent Teleport versions carry only
//! the id and the state: the detector finds the rest by the id.
//!
//! Teleport access requests govern the user's gateway sessions too (the
//! roles are the gateway's), so their documents say `gateway: true`.

use serde_json::{Map, Value};
use trailhound_core::grant::{GrantDoc, names};
use trailhound_core::time::format_micros;

use super::GrantEvent;
use crate::emit::{Emit, ParseContext, Position};
use crate::session::common;

const BROKER: &str = "teleport";

/// Keys lifted into the grant document or the event, left out of `extra`.
const LIFTED: [&str; 11] = [
    "time",
    "id",
    "user",
    "roles",
    "state",
    "expires",
    "assume_start_time",
    "reviewer",
    "updated_by",
    "delegator",
    "reason",
];

/// Whether `event` is an access-request event this module reads.
pub fn is_access_request(event: &str) -> bool {
    matches!(
        event,
        "access_request.create"
            | "access_request.review"
            | "access_request.update"
            | "access_request.expire"
            | "access_request.delete"
    )
}

/// A time field, unless absent, unparsable or Teleport's zero time.
fn time_field(map: &Map<String, Value>, key: &str) -> Option<i64> {
    let text = common::str_field(map, key)?;
    let t = trailhound_core::time::parse_rfc3339_micros(text)?;
    // 0001-01-01T00:00:00Z and friends: "not set".
    (t > 0).then_some(t)
}

/// Turns one access-request record (`event` as Teleport names it, read at
/// `time`) into a grant event, or a dead letter when it has no request id.
pub fn record(
    number: u64,
    raw: &[u8],
    event: &str,
    time: i64,
    map: &Map<String, Value>,
    ctx: &ParseContext,
    out: &mut dyn Emit,
) {
    let Some(id) = common::str_field(map, "id") else {
        out.dead_letter(ctx.dead_letter(
            Position::Line(number),
            "missing_field",
            format!("required field `id` is missing or empty in a `{event}` event"),
            raw,
        ));
        return;
    };
    let state = common::str_field(map, "state")
        .unwrap_or_default()
        .to_ascii_uppercase();
    let user = common::str_field(map, "user");
    let reviewer = common::str_field(map, "reviewer");
    let approving_review = common::str_field(map, "proposed_state")
        .is_some_and(|s| s.eq_ignore_ascii_case("APPROVED"));
    let name = match (event, state.as_str()) {
        ("access_request.expire" | "access_request.delete", _) => names::ENDED,
        (_, "APPROVED") => names::APPROVED,
        (_, "DENIED") => names::DENIED,
        ("access_request.create", _) => names::REQUESTED,
        _ => names::REVIEWED,
    };
    let approver = match event {
        "access_request.review" if approving_review || name == names::APPROVED => reviewer,
        "access_request.review" => None,
        _ if name == names::APPROVED => common::first_str(map, &["updated_by", "delegator"]),
        _ => None,
    };
    let roles = match map.get("roles") {
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(Value::as_str)
            .filter(|r| !r.is_empty())
            .map(str::to_string)
            .collect(),
        _ => Vec::new(),
    };
    let creates = event == "access_request.create";
    let doc = GrantDoc {
        id: format!("{BROKER}:{id}"),
        person: user.filter(|_| creates).map(str::to_string),
        roles,
        accounts: Vec::new(),
        start: time_field(map, "assume_start_time").map(format_micros),
        end: match name {
            names::ENDED => Some(format_micros(time)),
            _ => time_field(map, "expires").map(format_micros),
        },
        requester: user.filter(|_| creates).map(str::to_string),
        approver: approver.map(str::to_string),
        ticket: None,
        reason: common::str_field(map, "reason").map(str::to_string),
        gateway: true,
    };
    let (principal, principal_type) = match doc.person.as_deref() {
        Some(u) => (format!("gateway:{u}"), "GatewayUser"),
        None => (format!("grant:{}", doc.id), "Grant"),
    };
    let event_id = common::str_field(map, "uid")
        .map(str::to_string)
        .unwrap_or_else(|| format!("{}:{event}:{time}", doc.id));
    out.event(
        &GrantEvent {
            broker: BROKER,
            name,
            time,
            event_id,
            principal,
            principal_type,
            doc,
            extra: common::extra_without(map, &LIFTED),
        }
        .event(ctx),
    );
}

#[cfg(test)]
mod tests {
    use crate::emit::{Collect, ParseContext};
    use trailhound_core::grant::GrantDoc;

    fn run(lines: &[&str]) -> Collect {
        let mut out = Collect::default();
        let text = lines.join("\n");
        crate::session::teleport::parse(
            text.as_bytes(),
            &ParseContext::new("teleport.log"),
            &mut out,
        );
        out
    }

    fn doc(e: &trailhound_core::Event) -> GrantDoc {
        serde_json::from_str(e.request.as_deref().unwrap_or("{}")).unwrap()
    }

    #[test]
    fn a_request_its_review_its_approval_and_its_expiry_become_grant_events() {
        let out = run(&[
            r#"{"event":"access_request.create","code":"T5000I","time":"2026-11-02T10:00:00Z","uid":"u1","user":"alice","id":"r-1","roles":["aws-admin"],"state":"PENDING","expires":"2026-11-02T11:00:00Z","reason":"INC-9"}"#,
            r#"{"event":"access_request.review","code":"T5002I","time":"2026-11-02T10:01:00Z","uid":"u2","id":"r-1","reviewer":"bob","proposed_state":"APPROVED","state":"PENDING"}"#,
            r#"{"event":"access_request.update","code":"T5001I","time":"2026-11-02T10:02:00Z","uid":"u3","id":"r-1","state":"APPROVED","updated_by":"bob","expires":"2026-11-02T11:00:00Z"}"#,
            r#"{"event":"access_request.expire","code":"T5005I","time":"2026-11-02T11:00:00Z","uid":"u4","id":"r-1"}"#,
            r#"{"event":"access_request.update","code":"T5001I","time":"2026-11-02T10:02:00Z","uid":"u5","state":"APPROVED"}"#,
        ]);
        let names: Vec<&str> = out.events.iter().map(|e| e.event_name.as_str()).collect();
        assert_eq!(
            names,
            [
                "grant.requested",
                "grant.reviewed",
                "grant.approved",
                "grant.ended"
            ]
        );
        assert_eq!(out.dead_letters.len(), 1);
        assert_eq!(out.dead_letters[0].reason, "missing_field");
        let create = &out.events[0];
        assert_eq!(create.principal, "gateway:alice");
        assert_eq!(create.event_id, "u1");
        assert_eq!(create.event_category, "Grant");
        let d = doc(create);
        assert_eq!(d.id, "teleport:r-1");
        assert_eq!(d.roles, vec!["aws-admin"]);
        assert_eq!(d.requester.as_deref(), Some("alice"));
        assert_eq!(d.end.as_deref(), Some("2026-11-02T11:00:00Z"));
        assert!(d.gateway);
        assert_eq!(doc(&out.events[1]).approver.as_deref(), Some("bob"));
        let approved = &out.events[2];
        assert_eq!(approved.principal, "grant:teleport:r-1");
        assert_eq!(doc(approved).approver.as_deref(), Some("bob"));
        assert_eq!(
            doc(&out.events[3]).end.as_deref(),
            Some("2026-11-02T11:00:00Z")
        );
    }

    #[test]
    fn teleports_zero_time_is_no_expiry() {
        let out = run(&[
            r#"{"event":"access_request.create","time":"2026-11-02T10:00:00Z","user":"alice","id":"r-2","roles":["dba"],"state":"PENDING","expires":"0001-01-01T00:00:00Z"}"#,
        ]);
        assert_eq!(doc(&out.events[0]).end, None);
    }
}
