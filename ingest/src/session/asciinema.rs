//! asciinema casts (asciicast v2 and v3) into `session.*` events.
//!
//! A cast is a header line (a JSON object) followed by one event per line,
//! `[time, code, data]`. In v2 `time` is seconds since the start of the
//! recording; in v3 it is seconds since the previous event. Lines starting
//! with `#` are comments (v3) and are skipped in both versions.
//!
//! What comes out, per cast:
//! - one `session.start` at the header `timestamp` (when the header has no
//!   timestamp, the ingest time is used and the start event's `extra` says
//!   `"timestamp_missing": true`);
//! - one `session.command` per line typed in `i` (input) events, assembled
//!   as described in [`super::keys`], at the time its Enter was pressed, with
//!   `command`, `input` (both redacted), `keystrokes` and the keystroke
//!   interval mean and standard deviation; `o` (output) events are not
//!   events of their own, but they are watched for password prompts;
//! - one `session.end` at the time of the last event, with `bytes_out` (the
//!   UTF-8 bytes of all output) and `bytes_in` (of all input). Its `extra`
//!   holds the exit status of an `x` event and counts of events by kind.
//!
//! `r` (resize), `m` (marker), `x` (exit) and unknown codes are tolerated.
//!
//! Who and where, from the header:
//! - user: `env.USER`, else a top-level `user` key, else `env.LOGNAME`, else
//!   `unknown`. The file name is not used: recordings are named freely.
//! - target: `env.HOSTNAME`, else a top-level `hostname`, else `title`.
//! - source_ip: a top-level `source_ip` or `remote_addr` (port dropped), when
//!   a recorder adds one.
//! - session_id: a top-level `session_id` or `id`, else a stable hash of the
//!   input's file name and the header line (so that reading the same cast
//!   again gives the same ids wherever it lies).
//!
//! Event ids are `<session_id>:<line>`, where the line is the cast's line
//! number: the header line for the start, the line of the input event that
//! held the Enter for a command (`<line>.<k>` for the k-th further line
//! submitted by the same event, as in a paste), and one past the last line
//! for the end.
//!
//! Bad input: a header that is not a JSON object with `version` 2 or 3 (or
//! has a non-numeric `timestamp`) makes the whole cast a dead letter
//! (`bad_header`, or `too_large` / `invalid_utf8`); a bad event line is a
//! dead letter of its own (`invalid_json`, `invalid_event`, `too_large`,
//! `invalid_utf8`) and the rest of the cast is still read.

use serde_json::{Map, Value, json};
use trailhound_core::Event;

use super::common::{self, Base, UNKNOWN_USER};
use super::keys::{LineAssembler, TypedLine};
use super::redact;
use crate::emit::{Emit, ParseContext, Position};

const GATEWAY: &str = "asciinema";

/// Largest event time accepted, in seconds (about 300 years).
const MAX_SECONDS: f64 = 1e10;

/// What the header says.
struct Header {
    version: u8,
    start: i64,
    user: String,
    target: Option<String>,
    source_ip: Option<String>,
    session_id: String,
    extra: Option<String>,
}

/// Parses one asciinema cast.
pub fn parse(bytes: &[u8], ctx: &ParseContext, out: &mut dyn Emit) {
    let mut lines = common::lines(bytes);
    let Some((header_line, header_raw)) = lines.next() else {
        out.dead_letter(ctx.dead_letter(
            Position::Whole,
            "bad_header",
            "empty input: an asciinema cast starts with a header line",
            bytes,
        ));
        return;
    };
    let Some(header) = read_header(header_raw, ctx, out) else {
        return;
    };

    let mut start = Base {
        gateway: GATEWAY,
        event_name: "session.start",
        time: header.start,
        user: &header.user,
        session_id: Some(&header.session_id),
        event_id: format!("{}:{header_line}", header.session_id),
    }
    .event(ctx);
    start.target = header.target.clone();
    start.source_ip = header.source_ip.clone();
    start.extra = header.extra.clone();
    out.event(&start);

    let mut stream = Stream::new(&header);
    let mut last_line = header_line;
    for (number, raw) in lines {
        last_line = number;
        stream.line(number, raw, ctx, out);
    }
    stream.end(last_line + 1, ctx, out);
}

/// Reads the header, or emits a whole-input dead letter.
fn read_header(raw: &[u8], ctx: &ParseContext, out: &mut dyn Emit) -> Option<Header> {
    let text = common::line_text(Position::Whole, raw, ctx, out)?;
    let bad = |out: &mut dyn Emit, why: String| {
        out.dead_letter(ctx.dead_letter(Position::Whole, "bad_header", why, raw));
    };
    let map = match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(map)) => map,
        Ok(other) => {
            bad(
                out,
                format!(
                    "the first line of an asciinema cast must be a JSON object, found {}",
                    common::json_kind(&other)
                ),
            );
            return None;
        }
        Err(e) => {
            bad(out, format!("the header line is not valid JSON: {e}"));
            return None;
        }
    };
    let version = match map.get("version").and_then(Value::as_u64) {
        Some(2) => 2,
        Some(3) => 3,
        Some(v) => {
            bad(
                out,
                format!("asciicast version {v} is not supported (only 2 and 3)"),
            );
            return None;
        }
        None => {
            bad(
                out,
                "the header has no numeric `version` (2 or 3)".to_string(),
            );
            return None;
        }
    };
    let (start, timestamp_missing) = match map.get("timestamp") {
        None | Some(Value::Null) => (ctx.ingest_time, true),
        Some(Value::Number(n)) => match n.as_f64().filter(|t| (0.0..MAX_SECONDS).contains(t)) {
            Some(t) => ((t * 1e6).round() as i64, false),
            None => {
                bad(out, format!("the header `timestamp` {n} is out of range"));
                return None;
            }
        },
        Some(other) => {
            bad(
                out,
                format!(
                    "the header `timestamp` should be Unix seconds, found {}",
                    common::json_kind(other)
                ),
            );
            return None;
        }
    };

    let env = map.get("env").and_then(Value::as_object);
    let env_str = |key: &str| env.and_then(|e| common::str_field(e, key));
    let user = env_str("USER")
        .or_else(|| common::str_field(&map, "user"))
        .or_else(|| env_str("LOGNAME"))
        .unwrap_or(UNKNOWN_USER)
        .to_string();
    let target = env_str("HOSTNAME")
        .or_else(|| common::str_field(&map, "hostname"))
        .or_else(|| common::str_field(&map, "title"))
        .map(str::to_string);
    let source_ip = common::first_str(&map, &["source_ip", "remote_addr"]).map(common::host_of);
    let session_id = match map.get("session_id").or_else(|| map.get("id")) {
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => trailhound_core::id::stable_id([common::file_name(&ctx.origin), text]),
    };

    Some(Header {
        version,
        start,
        user,
        target,
        source_ip,
        session_id,
        extra: header_extra(map, timestamp_missing),
    })
}

/// The header for the start event's `extra`, with secret-looking environment
/// values and the recorded command redacted.
fn header_extra(mut map: Map<String, Value>, timestamp_missing: bool) -> Option<String> {
    if let Some(Value::Object(env)) = map.get_mut("env") {
        for (name, value) in env.iter_mut() {
            if redact::is_secret_name(name) {
                *value = Value::String(redact::REDACTED.to_string());
            }
        }
    }
    if let Some(Value::String(command)) = map.get_mut("command") {
        *command = redact::redact_command(command).0;
    }
    if timestamp_missing {
        map.insert("timestamp_missing".to_string(), Value::Bool(true));
    }
    common::extra_without(&map, &[])
}

/// The event stream after the header.
struct Stream<'h> {
    header: &'h Header,
    keys: LineAssembler,
    /// Seconds since the start of the last event (v3 sums intervals).
    clock: f64,
    last_time: i64,
    commands: u64,
    bytes_in: i64,
    bytes_out: i64,
    input_events: u64,
    output_events: u64,
    markers: u64,
    resizes: u64,
    other_events: u64,
    exit_status: Option<Value>,
    done: Vec<TypedLine>,
}

impl<'h> Stream<'h> {
    fn new(header: &'h Header) -> Self {
        Self {
            header,
            keys: LineAssembler::new(),
            clock: 0.0,
            last_time: header.start,
            commands: 0,
            bytes_in: 0,
            bytes_out: 0,
            input_events: 0,
            output_events: 0,
            markers: 0,
            resizes: 0,
            other_events: 0,
            exit_status: None,
            done: Vec::new(),
        }
    }

    fn line(&mut self, number: u64, raw: &[u8], ctx: &ParseContext, out: &mut dyn Emit) {
        let Some(text) = common::line_text(Position::Line(number), raw, ctx, out) else {
            return;
        };
        if text.trim_start().starts_with('#') {
            return;
        }
        let value = match serde_json::from_str::<Value>(text) {
            Ok(v) => v,
            Err(e) => {
                out.dead_letter(ctx.dead_letter(
                    Position::Line(number),
                    "invalid_json",
                    format!("cast event is not valid JSON: {e}"),
                    raw,
                ));
                return;
            }
        };
        let (seconds, code, data) = match event_parts(&value) {
            Ok(parts) => parts,
            Err(why) => {
                out.dead_letter(ctx.dead_letter(Position::Line(number), "invalid_event", why, raw));
                return;
            }
        };
        let at = if self.header.version == 3 {
            self.clock + seconds
        } else {
            seconds
        };
        if !(0.0..MAX_SECONDS).contains(&at) {
            out.dead_letter(ctx.dead_letter(
                Position::Line(number),
                "invalid_event",
                format!("event time {at} s from the start is out of range"),
                raw,
            ));
            return;
        }
        self.clock = at;
        let micros = self.header.start.saturating_add((at * 1e6).round() as i64);
        self.last_time = self.last_time.max(micros);

        match (code, data) {
            ("o", Value::String(s)) => {
                self.output_events += 1;
                self.bytes_out = self.bytes_out.saturating_add(s.len() as i64);
                self.keys.output(s);
            }
            ("i", Value::String(s)) => {
                self.input_events += 1;
                self.bytes_in = self.bytes_in.saturating_add(s.len() as i64);
                self.keys.input(micros, s, &mut self.done);
                for (k, typed) in std::mem::take(&mut self.done).into_iter().enumerate() {
                    let sequence = if k == 0 {
                        number.to_string()
                    } else {
                        format!("{number}.{k}")
                    };
                    self.command(typed, &sequence, ctx, out);
                }
            }
            ("o" | "i", other) => {
                out.dead_letter(ctx.dead_letter(
                    Position::Line(number),
                    "invalid_event",
                    format!(
                        "`{code}` event data should be a string, found {}",
                        common::json_kind(other)
                    ),
                    raw,
                ));
            }
            ("x", status) => {
                self.exit_status = Some(match status {
                    Value::String(s) => s
                        .trim()
                        .parse::<i64>()
                        .map(Value::from)
                        .unwrap_or_else(|_| status.clone()),
                    other => other.clone(),
                });
            }
            ("m", _) => self.markers += 1,
            ("r", _) => self.resizes += 1,
            _ => self.other_events += 1,
        }
    }

    fn base(
        &self,
        event_name: &'static str,
        time: i64,
        sequence: &str,
        ctx: &ParseContext,
    ) -> Event {
        let header = self.header;
        let mut event = Base {
            gateway: GATEWAY,
            event_name,
            time,
            user: &header.user,
            session_id: Some(&header.session_id),
            event_id: format!("{}:{sequence}", header.session_id),
        }
        .event(ctx);
        event.target = header.target.clone();
        event.source_ip = header.source_ip.clone();
        event
    }

    fn command(
        &mut self,
        typed: TypedLine,
        sequence: &str,
        ctx: &ParseContext,
        out: &mut dyn Emit,
    ) {
        self.commands += 1;
        let mut event = self.base("session.command", typed.time, sequence, ctx);
        event.command = Some(typed.command);
        event.input = Some(typed.input);
        event.keystrokes = Some(typed.keystrokes);
        event.keystroke_interval_ms_mean = typed.mean_ms;
        event.keystroke_interval_ms_stddev = typed.stddev_ms;
        if typed.redacted {
            event.extra = Some(json!({ "redacted": true }).to_string());
        }
        out.event(&event);
    }

    fn end(mut self, sequence: u64, ctx: &ParseContext, out: &mut dyn Emit) {
        let mut event = self.base("session.end", self.last_time, &sequence.to_string(), ctx);
        event.bytes_out = Some(self.bytes_out);
        event.bytes_in = Some(self.bytes_in);
        let mut extra = json!({
            "duration_s": (self.last_time - self.header.start) as f64 / 1e6,
            "commands": self.commands,
            "input_events": self.input_events,
            "output_events": self.output_events,
        });
        for (key, count) in [
            ("markers", self.markers),
            ("resizes", self.resizes),
            ("other_events", self.other_events),
        ] {
            if count > 0
                && let Some(map) = extra.as_object_mut()
            {
                map.insert(key.into(), Value::from(count));
            }
        }
        if let Some(map) = extra.as_object_mut() {
            if let Some(status) = self.exit_status.take() {
                map.insert("exit_status".into(), status);
            }
            if self.keys.has_pending() {
                map.insert("unsubmitted_input".into(), Value::Bool(true));
            }
        }
        event.extra = Some(extra.to_string());
        out.event(&event);
    }
}

/// `[time, code, data]`, checked.
fn event_parts(value: &Value) -> Result<(f64, &str, &Value), String> {
    let Value::Array(items) = value else {
        return Err(format!(
            "a cast event is a [time, code, data] array, found {}",
            common::json_kind(value)
        ));
    };
    let (Some(time), Some(code), Some(data)) = (items.first(), items.get(1), items.get(2)) else {
        return Err(format!(
            "a cast event is a [time, code, data] array, found {} element(s)",
            items.len()
        ));
    };
    let Some(seconds) = time.as_f64() else {
        return Err(format!(
            "event time should be a number of seconds, found {}",
            common::json_kind(time)
        ));
    };
    if seconds < 0.0 {
        return Err(format!("event time {seconds} is negative"));
    }
    let Some(code) = code.as_str() else {
        return Err(format!(
            "event code should be a string, found {}",
            common::json_kind(code)
        ));
    };
    Ok((seconds, code, data))
}
