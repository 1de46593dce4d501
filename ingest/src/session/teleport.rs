//! Teleport audit events (one JSON object per line) into `session.*` events.
//!
//! Mapping of Teleport's `event` to `event_name`:
//!
//! | Teleport | trailhound |
//! |---|---|
//! | `session.start`, `session.join` | `session.start` |
//! | `session.end`, `session.leave` | `session.end` |
//! | `session.command`, `exec` | `session.command` |
//! | `session.data`, `print`, `session.print` | `session.output` |
//! | `user.login` with `success` true / false | `session.login` / `session.login_failed` |
//! | `scp`, `sftp` | `session.file_transfer` |
//! | `access_request.*` | grant events (`crate::grants::teleport`) |
//! | anything else | `session.other` |
//!
//! Fields: `time` (required, RFC 3339), `sid` (the session; required for the
//! `session.*` and `print` events above), `ei` (the event index: the
//! sequence in `event_id = <sid>:<ei>`; the line number when absent). Events
//! without a session (logins, most cluster events) get `uid` as their id, or
//! `teleport:<line>`.
//!
//! - user: Teleport's `user` (the person), else the user who started the
//!   same session earlier in the file, else `login` (the OS login), else
//!   `unknown`. The OS `login` stays in `extra`. Someone joining a session is
//!   the principal of their own join and leave events.
//! - target: `server_hostname`, else the host part of `server_addr`, else
//!   `kubernetes_cluster`, `db_service`, `desktop_name`, `app_name`, else
//!   what an earlier event of the same session said.
//! - source_ip: the host part of `addr.remote`, else the address the same
//!   user had earlier in the same session.
//! - command: `command` when the record has one (`exec`, `scp`), else
//!   `program` (or `path`) followed by `argv`, redacted as described in
//!   [`super::keys`].
//! - bytes: `session.data` gives `tx` as `bytes_out` and `rx` as `bytes_in`;
//!   `print` gives `bytes` as `bytes_out`.
//! - file transfers: `path` becomes the one entry of `resources`.
//! - errors: `error` becomes `error_message`; the Teleport `code` becomes
//!   `error_code` when `success` is false or the code ends in `E` or `W`.
//! - `extra`: the record without `time`, `sid`, `ei`, `user`, `addr.remote`
//!   and `server_hostname`; the original `event` name stays there.

use std::collections::HashMap;

use serde_json::{Map, Value};

use super::common::{self, Base, UNKNOWN_USER};
use super::redact;
use crate::emit::{Emit, ParseContext, Position};

const GATEWAY: &str = "teleport";

/// Keys lifted into columns, left out of `extra`.
const LIFTED: [&str; 6] = [
    "time",
    "sid",
    "ei",
    "user",
    "addr.remote",
    "server_hostname",
];

/// Keys that may name the target, in order of preference.
const TARGET_KEYS: [&str; 5] = [
    "server_hostname",
    "kubernetes_cluster",
    "db_service",
    "desktop_name",
    "app_name",
];

/// What earlier events said about a session.
#[derive(Default, Clone)]
struct Known {
    /// The user who started the session.
    user: Option<String>,
    target: Option<String>,
    /// Client address per participant.
    source_ips: HashMap<String, String>,
}

/// Parses Teleport audit events.
pub fn parse(bytes: &[u8], ctx: &ParseContext, out: &mut dyn Emit) {
    let mut parser = Parser::default();
    for (number, raw) in common::lines(bytes) {
        parser.line(number, raw, ctx, out);
    }
}

/// A Teleport audit log read line by line, remembering what each open
/// session's earlier events said (so a followed log parses as the whole file
/// would).
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
    let Some(teleport_event) = common::bad_field(
        common::required_str(map, "event"),
        "event",
        number,
        raw,
        ctx,
        out,
    ) else {
        return;
    };
    let Some(time) = common::bad_field(
        common::rfc3339_field(map, "time"),
        "time",
        number,
        raw,
        ctx,
        out,
    ) else {
        return;
    };
    if crate::grants::teleport::is_access_request(teleport_event) {
        crate::grants::teleport::record(number, raw, teleport_event, time, map, ctx, out);
        return;
    }
    let event_name = event_name(teleport_event, map);
    let sid = common::str_field(map, "sid");
    if sid.is_none() && needs_session(teleport_event) {
        out.dead_letter(ctx.dead_letter(
            Position::Line(number),
            "missing_field",
            format!("required field `sid` is missing or empty in a `{teleport_event}` event"),
            raw,
        ));
        return;
    }

    let known = sid.and_then(|s| sessions.get(s));
    let own_user = common::str_field(map, "user").map(str::to_string);
    let user = own_user
        .clone()
        .or_else(|| known.and_then(|k| k.user.clone()))
        .or_else(|| common::str_field(map, "login").map(str::to_string))
        .unwrap_or_else(|| UNKNOWN_USER.to_string());
    let target = common::first_str(map, &TARGET_KEYS[..1])
        .map(str::to_string)
        .or_else(|| common::str_field(map, "server_addr").map(common::host_of))
        .or_else(|| common::first_str(map, &TARGET_KEYS[1..]).map(str::to_string))
        .or_else(|| known.and_then(|k| k.target.clone()));
    let own_source_ip = common::str_field(map, "addr.remote").map(common::host_of);
    let source_ip = own_source_ip
        .clone()
        .or_else(|| known.and_then(|k| k.source_ips.get(&user).cloned()));

    let sequence = common::int_field(map, "ei")
        .map(|ei| ei.to_string())
        .unwrap_or_else(|| number.to_string());
    let event_id = match sid {
        Some(sid) => format!("{sid}:{sequence}"),
        None => common::str_field(map, "uid")
            .map(str::to_string)
            .unwrap_or_else(|| format!("teleport:{number}")),
    };

    let mut event = Base {
        gateway: GATEWAY,
        event_name,
        time,
        user: &user,
        session_id: sid,
        event_id,
    }
    .event(ctx);
    event.target = target.clone();
    event.source_ip = source_ip.clone();

    match event_name {
        "session.command" => event.command = command_line(map),
        "session.output" => {
            if teleport_event == "session.data" {
                event.bytes_out = common::int_field(map, "tx");
                event.bytes_in = common::int_field(map, "rx");
            } else {
                event.bytes_out = common::int_field(map, "bytes");
            }
        }
        "session.file_transfer" => {
            event.command = common::str_field(map, "command").map(|c| redact::redact_command(c).0);
            if let Some(path) = common::str_field(map, "path") {
                event.resources = vec![path.to_string()];
            }
        }
        _ => {}
    }

    let success = map.get("success").and_then(Value::as_bool);
    let code = common::str_field(map, "code");
    if success == Some(false) || code.is_some_and(|c| c.ends_with('E') || c.ends_with('W')) {
        event.error_code = code.map(str::to_string);
    }
    event.error_message = common::str_field(map, "error").map(str::to_string);
    event.extra = common::extra_without(map, &LIFTED);
    out.event(&event);

    // Remember who and where for the later events of the session; someone
    // joining does not replace the session's owner.
    if let Some(sid) = sid {
        if teleport_event == "session.end" {
            sessions.remove(sid);
        } else {
            let entry = sessions.entry(sid.to_string()).or_default();
            if entry.user.is_none() || (teleport_event != "session.join" && own_user.is_some()) {
                entry.user = own_user.or(entry.user.take());
            }
            if let Some(ip) = own_source_ip {
                entry.source_ips.insert(user, ip);
            }
            if target.is_some() {
                entry.target = target;
            }
        }
    }
}

/// The trailhound event name for a Teleport event.
fn event_name(teleport_event: &str, map: &Map<String, Value>) -> &'static str {
    match teleport_event {
        "session.start" | "session.join" => "session.start",
        "session.end" | "session.leave" => "session.end",
        "session.command" | "exec" => "session.command",
        "session.data" | "print" | "session.print" => "session.output",
        "user.login" => {
            let success = map
                .get("success")
                .and_then(Value::as_bool)
                .unwrap_or_else(|| {
                    common::str_field(map, "code").is_some_and(|c| c.ends_with('I'))
                });
            if success {
                "session.login"
            } else {
                "session.login_failed"
            }
        }
        "scp" | "sftp" => "session.file_transfer",
        _ => "session.other",
    }
}

/// Teleport events that belong to a session and are useless without its id.
fn needs_session(teleport_event: &str) -> bool {
    matches!(
        teleport_event,
        "session.start"
            | "session.join"
            | "session.end"
            | "session.leave"
            | "session.command"
            | "session.data"
            | "print"
            | "session.print"
    )
}

/// The command line of a `session.command` or `exec` record, redacted.
fn command_line(map: &Map<String, Value>) -> Option<String> {
    if let Some(command) = common::str_field(map, "command") {
        return Some(redact::redact_command(command).0);
    }
    let program = common::first_str(map, &["program", "path"]);
    let path = common::str_field(map, "path");
    let mut parts: Vec<String> = program.map(|p| vec![p.to_string()]).unwrap_or_default();
    if let Some(Value::Array(argv)) = map.get("argv") {
        let mut args = argv.iter().map(|a| match a {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        });
        // Some recorders put the program itself first in argv.
        let first = args.next();
        if let Some(first) = first {
            let same = Some(first.as_str()) == program
                || Some(first.as_str()) == path
                || program.is_some_and(|p| first.rsplit('/').next() == Some(p));
            if !same || parts.is_empty() {
                parts.push(first);
            }
        }
        parts.extend(args);
    }
    if parts.is_empty() {
        return None;
    }
    let line = parts
        .iter()
        .map(|p| shell_word(p))
        .collect::<Vec<_>>()
        .join(" ");
    Some(redact::redact_command(&line).0)
}

/// A word as a shell would need it: quoted when empty or holding spaces.
fn shell_word(word: &str) -> String {
    if !word.is_empty()
        && !word
            .chars()
            .any(|c| c.is_whitespace() || c == '\'' || c == '"')
    {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}
