//! Cowrie JSON logs (one object per line) into `session.*` events.
//!
//! Every record needs `eventid`, `timestamp` (RFC 3339) and `session`.
//!
//! | Cowrie `eventid` | trailhound |
//! |---|---|
//! | `cowrie.session.connect` | `session.start` |
//! | `cowrie.login.success` | `session.login` |
//! | `cowrie.login.failed` | `session.login_failed` |
//! | `cowrie.command.input`, `cowrie.command.failed` | `session.command` |
//! | `cowrie.session.file_download`, `.file_download.failed`, `.file_upload` | `session.file_transfer` |
//! | `cowrie.session.closed` | `session.end` |
//! | anything else (`cowrie.client.*`, `cowrie.log.closed`, ...) | `session.other` |
//!
//! - user: the `username` of the session's `cowrie.login.success`, tracked per
//!   session within the file; `unknown` before the login. A failed login is
//!   attributed to the user name it tried, without changing the session's.
//! - source_ip: `src_ip`; target: `sensor`, else `dst_ip` (else what the
//!   session's earlier records said).
//! - command and input: the `input` line, redacted as described in
//!   [`super::keys`]. A failed command gets `error_code` `command_not_found`.
//! - file transfers: `url` (downloads) or `filename` (uploads) becomes the
//!   one entry of `resources`; `shasum`, `outfile` and the rest stay in
//!   `extra`. A failed download gets `error_code` `download_failed`.
//! - passwords: a login record's `password` and `message` (which repeats the
//!   password) are dropped; nothing of them reaches the event. Command
//!   records drop `message` too, since it repeats the unredacted input.
//! - `extra`: the rest of the record (`eventid`, `sensor`, `dst_ip`,
//!   `duration`, `protocol`, ...).
//! - event id: `<session>:<line number>`.

use std::collections::HashMap;

use serde_json::{Map, Value};

use super::common::{self, Base, UNKNOWN_USER};
use super::redact;
use crate::emit::{Emit, ParseContext};

const GATEWAY: &str = "cowrie";

/// What earlier records said about a session.
#[derive(Default)]
struct Known {
    user: Option<String>,
    source_ip: Option<String>,
    target: Option<String>,
}

/// Parses Cowrie JSON logs.
pub fn parse(bytes: &[u8], ctx: &ParseContext, out: &mut dyn Emit) {
    let mut parser = Parser::default();
    for (number, raw) in common::lines(bytes) {
        parser.line(number, raw, ctx, out);
    }
}

/// A Cowrie log read line by line, remembering what each open session's
/// earlier records said (so a followed log parses as the whole file would).
#[derive(Default)]
pub struct Parser {
    sessions: HashMap<String, Known>,
}

impl Parser {
    /// Parses line `number` (1-based) of the log.
    pub fn line(&mut self, number: u64, raw: &[u8], ctx: &ParseContext, out: &mut dyn Emit) {
        if let Some(map) = common::json_object(number, raw, ctx, out) {
            record(number, raw, &map, &mut self.sessions, ctx, out);
        }
    }
}

fn record(
    number: u64,
    raw: &[u8],
    map: &Map<String, Value>,
    sessions: &mut HashMap<String, Known>,
    ctx: &ParseContext,
    out: &mut dyn Emit,
) {
    let required = |key: &str, out: &mut dyn Emit| {
        common::bad_field(common::required_str(map, key), key, number, raw, ctx, out)
    };
    let Some(eventid) = required("eventid", out) else {
        return;
    };
    let Some(time) = common::bad_field(
        common::rfc3339_field(map, "timestamp"),
        "timestamp",
        number,
        raw,
        ctx,
        out,
    ) else {
        return;
    };
    let Some(session) = required("session", out) else {
        return;
    };
    let is_command = matches!(eventid, "cowrie.command.input" | "cowrie.command.failed");
    let input = if is_command {
        let Some(input) = required("input", out) else {
            return;
        };
        Some(input)
    } else {
        None
    };

    let known = sessions.entry(session.to_string()).or_default();
    if let Some(ip) = common::str_field(map, "src_ip") {
        known.source_ip = Some(ip.to_string());
    }
    if let Some(target) = common::first_str(map, &["sensor", "dst_ip"]) {
        known.target = Some(target.to_string());
    }
    let username = common::str_field(map, "username");
    if let Some(name) = username.filter(|_| eventid == "cowrie.login.success") {
        known.user = Some(name.to_string());
    }
    let user = match eventid {
        "cowrie.login.failed" => username.or(known.user.as_deref()),
        _ => known.user.as_deref(),
    }
    .unwrap_or(UNKNOWN_USER)
    .to_string();

    let (event_name, error_code) = match eventid {
        "cowrie.session.connect" => ("session.start", None),
        "cowrie.login.success" => ("session.login", None),
        "cowrie.login.failed" => ("session.login_failed", None),
        "cowrie.command.input" => ("session.command", None),
        "cowrie.command.failed" => ("session.command", Some("command_not_found")),
        "cowrie.session.file_download" | "cowrie.session.file_upload" => {
            ("session.file_transfer", None)
        }
        "cowrie.session.file_download.failed" => ("session.file_transfer", Some("download_failed")),
        "cowrie.session.closed" => ("session.end", None),
        _ => ("session.other", None),
    };

    let mut event = Base {
        gateway: GATEWAY,
        event_name,
        time,
        user: &user,
        session_id: Some(session),
        event_id: format!("{session}:{number}"),
    }
    .event(ctx);
    event.source_ip = known.source_ip.clone();
    event.target = known.target.clone();
    event.error_code = error_code.map(str::to_string);
    if let Some(input) = input {
        let (clean, _) = redact::redact_command(input.trim());
        event.command = Some(clean.clone());
        event.input = Some(clean);
    }
    if event_name == "session.file_transfer"
        && let Some(what) = common::first_str(map, &["url", "filename", "destfile"])
    {
        event.resources = vec![what.to_string()];
    }

    let mut lifted = vec!["timestamp", "session", "src_ip"];
    if eventid.starts_with("cowrie.login.") {
        lifted.extend(["password", "message", "username"]);
    }
    if is_command {
        lifted.extend(["input", "message"]);
    }
    event.extra = common::extra_without(map, &lifted);
    out.event(&event);

    if eventid == "cowrie.session.closed" {
        sessions.remove(session);
    }
}
