//! trailhound's own session JSON lines (`"trailhound":"session/v1"`) into
//! `session.*` events. The format is specified for gateway authors in
//! `docs/session-jsonl.md`; this module follows it field by field.
//!
//! In short: every line is an object with `trailhound`, `type`, `time`,
//! `session_id` and `user`. `type` becomes `session.<type>`, except `input`:
//! raw keystrokes are assembled per session into command lines (see
//! [`super::keys`]), and each submitted line becomes a `session.command`.
//! `output` lines may carry the output text in `data`: it is used only to
//! recognise password prompts and is not stored. Unknown types become
//! `session.other` with the type kept in `extra`.

use std::collections::HashMap;

use serde_json::{Map, Value};
use trailhound_core::Event;

use super::common::{self, Base, Required};
use super::keys::{self, LineAssembler, TypedLine};
use super::redact;
use crate::emit::{Emit, ParseContext, Position};

/// The value of the `trailhound` key this parser reads.
const FORMAT_VERSION: &str = "session/v1";

/// Keys the format defines; the others go to `extra`.
const KNOWN_KEYS: [&str; 17] = [
    "trailhound",
    "type",
    "time",
    "session_id",
    "user",
    "gateway",
    "target",
    "source_ip",
    "command",
    "data",
    "keystrokes",
    "keystroke_interval_ms_mean",
    "keystroke_interval_ms_stddev",
    "bytes",
    "seq",
    "path",
    "error",
];

/// Parses trailhound session JSON lines.
pub fn parse(bytes: &[u8], ctx: &ParseContext, out: &mut dyn Emit) {
    let mut parser = Parser::default();
    for (number, raw) in common::lines(bytes) {
        parser.line(number, raw, ctx, out);
    }
}

/// Session JSON lines read one by one, keeping each open session's keystroke
/// assembler (so a followed log parses as the whole file would).
#[derive(Default)]
pub struct Parser {
    sessions: HashMap<String, LineAssembler>,
}

impl Parser {
    /// Parses line `number` (1-based) of the log.
    pub fn line(&mut self, number: u64, raw: &[u8], ctx: &ParseContext, out: &mut dyn Emit) {
        let Some(map) = common::json_object(number, raw, ctx, out) else {
            return;
        };
        let line = Line { number, map: &map };
        if let Err((reason, detail)) = line.read(&mut self.sessions, ctx, out) {
            out.dead_letter(ctx.dead_letter(Position::Line(number), reason, detail, raw));
        }
    }
}

/// A dead letter's reason and detail.
type Reject = (&'static str, String);

struct Line<'a> {
    number: u64,
    map: &'a Map<String, Value>,
}

impl Line<'_> {
    fn read(
        &self,
        sessions: &mut HashMap<String, LineAssembler>,
        ctx: &ParseContext,
        out: &mut dyn Emit,
    ) -> Result<(), Reject> {
        let map = self.map;
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
        let kind = required(common::required_str(map, "type"), "type")?;
        let time = required(common::rfc3339_field(map, "time"), "time")?;
        let session_id = required(common::required_str(map, "session_id"), "session_id")?;
        let user = required(common::required_str(map, "user"), "user")?;
        let keystrokes = non_negative_int(map, "keystrokes")?;
        let mean = non_negative_number(map, "keystroke_interval_ms_mean")?;
        let stddev = non_negative_number(map, "keystroke_interval_ms_stddev")?;
        let bytes = non_negative_int(map, "bytes")?;
        let data = optional_str(map, "data")?;
        let command = optional_str(map, "command")?;
        for key in ["gateway", "target", "source_ip", "path", "error"] {
            optional_str(map, key)?;
        }
        let sequence = match map.get("seq") {
            None | Some(Value::Null) => self.number.to_string(),
            Some(Value::String(s)) if !s.is_empty() => s.clone(),
            Some(Value::Number(n)) => n.to_string(),
            Some(other) => {
                return Err((
                    "invalid_field",
                    format!(
                        "`seq` should be a number or a string, found {}",
                        common::json_kind(other)
                    ),
                ));
            }
        };

        let event_name = match kind {
            "start" => "session.start",
            "end" => "session.end",
            "command" => "session.command",
            "output" => "session.output",
            "login" => "session.login",
            "login_failed" => "session.login_failed",
            "file_transfer" => "session.file_transfer",
            "input" => {
                let Some(data) = data else {
                    return Err(missing("data"));
                };
                let keys = sessions.entry(session_id.to_string()).or_default();
                let mut done = Vec::new();
                keys.input(time, data, &mut done);
                let many = done.len() > 1;
                for (k, typed) in done.into_iter().enumerate() {
                    let id = if many && k > 0 {
                        format!("{sequence}.{k}")
                    } else {
                        sequence.clone()
                    };
                    out.event(&self.typed_command(typed, session_id, user, &id, ctx));
                }
                return Ok(());
            }
            _ => "session.other",
        };

        let mut event = self.base(event_name, time, session_id, user, &sequence, ctx);
        match kind {
            "command" => {
                let after_prompt = sessions
                    .get_mut(session_id)
                    .is_some_and(LineAssembler::take_prompt);
                let (line, typed_keys) = match (command, data) {
                    (Some(c), _) => (c.to_string(), data.map(|d| keys::line_from_keys(d).1)),
                    (None, Some(d)) => {
                        let (line, n) = keys::line_from_keys(d);
                        (line, Some(n))
                    }
                    (None, None) => return Err(missing("command")),
                };
                let (command, input) = if after_prompt {
                    (
                        redact::REDACTED.to_string(),
                        data.map(|_| redact::REDACTED.to_string()),
                    )
                } else {
                    let (clean, changed) = redact::redact_command(line.trim());
                    let input = match data {
                        Some(_) if changed => Some(clean.clone()),
                        Some(d) => Some(keys::render_keys(d)),
                        None => None,
                    };
                    (clean, input)
                };
                event.command = Some(command);
                event.input = input;
                event.keystrokes = keystrokes.or(typed_keys);
                event.keystroke_interval_ms_mean = mean;
                event.keystroke_interval_ms_stddev = stddev;
            }
            "output" => {
                if let Some(d) = data {
                    sessions
                        .entry(session_id.to_string())
                        .or_default()
                        .output(d);
                }
                event.bytes_out = bytes.or(data.map(|d| d.len() as i64));
            }
            "file_transfer" => {
                event.command = command.map(|c| redact::redact_command(c).0);
                if let Some(path) = common::str_field(map, "path") {
                    event.resources = vec![path.to_string()];
                }
                match common::str_field(map, "direction") {
                    Some("upload") => event.bytes_in = bytes,
                    _ => event.bytes_out = bytes,
                }
            }
            _ => {
                event.command = command.map(|c| redact::redact_command(c).0);
                event.bytes_out = bytes;
            }
        }
        if kind == "end" {
            sessions.remove(session_id);
        }
        out.event(&event);
        Ok(())
    }

    /// The event with the fields every line shares.
    fn base(
        &self,
        event_name: &str,
        time: i64,
        session_id: &str,
        user: &str,
        sequence: &str,
        ctx: &ParseContext,
    ) -> Event {
        let map = self.map;
        let mut event = Base {
            gateway: common::str_field(map, "gateway").unwrap_or("gateway"),
            event_name,
            time,
            user,
            session_id: Some(session_id),
            event_id: format!("{session_id}:{sequence}"),
        }
        .event(ctx);
        event.target = common::str_field(map, "target").map(str::to_string);
        event.source_ip = common::str_field(map, "source_ip").map(str::to_string);
        event.error_message = common::str_field(map, "error").map(str::to_string);
        // Unknown types keep their `type` in `extra`.
        let lifted: Vec<&str> = KNOWN_KEYS
            .iter()
            .copied()
            .filter(|k| event_name != "session.other" || *k != "type")
            .collect();
        event.extra = common::extra_without(map, &lifted);
        event
    }

    /// A `session.command` assembled from `input` lines.
    fn typed_command(
        &self,
        typed: TypedLine,
        session_id: &str,
        user: &str,
        sequence: &str,
        ctx: &ParseContext,
    ) -> Event {
        let mut event = self.base(
            "session.command",
            typed.time,
            session_id,
            user,
            sequence,
            ctx,
        );
        event.command = Some(typed.command);
        event.input = Some(typed.input);
        event.keystrokes = Some(typed.keystrokes);
        event.keystroke_interval_ms_mean = typed.mean_ms;
        event.keystroke_interval_ms_stddev = typed.stddev_ms;
        event
    }
}

fn missing(key: &str) -> Reject {
    (
        "missing_field",
        format!("required field `{key}` is missing or empty"),
    )
}

fn required<T>(outcome: Required<T>, key: &str) -> Result<T, Reject> {
    match outcome {
        Required::Ok(v) => Ok(v),
        Required::Missing => Err(missing(key)),
        Required::Invalid(why) => Err(("invalid_field", why)),
    }
}

fn optional_str<'a>(map: &'a Map<String, Value>, key: &str) -> Result<Option<&'a str>, Reject> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.as_str())),
        Some(other) => Err((
            "invalid_field",
            format!(
                "`{key}` should be a string, found {}",
                common::json_kind(other)
            ),
        )),
    }
}

fn non_negative_int(map: &Map<String, Value>, key: &str) -> Result<Option<i64>, Reject> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => match n.as_i64().filter(|v| *v >= 0) {
            Some(v) => Ok(Some(v)),
            None => Err((
                "invalid_field",
                format!("`{key}` should be a whole number of 0 or more, found {n}"),
            )),
        },
        Some(other) => Err((
            "invalid_field",
            format!(
                "`{key}` should be a whole number, found {}",
                common::json_kind(other)
            ),
        )),
    }
}

fn non_negative_number(map: &Map<String, Value>, key: &str) -> Result<Option<f64>, Reject> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => match n.as_f64().filter(|v| v.is_finite() && *v >= 0.0) {
            Some(v) => Ok(Some(v)),
            None => Err((
                "invalid_field",
                format!("`{key}` should be a number of 0 or more, found {n}"),
            )),
        },
        Some(other) => Err((
            "invalid_field",
            format!(
                "`{key}` should be a number, found {}",
                common::json_kind(other)
            ),
        )),
    }
}
