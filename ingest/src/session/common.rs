//! What the session parsers share: splitting an input into lines, reading one
//! line as a JSON object within the limits, the base of every `session.*`
//! event, and small field helpers.

use serde_json::{Map, Value};
use trailhound_core::{Event, Source};

use crate::emit::{Emit, ParseContext, Position};

/// The user name used when a log does not say who is behind an event.
pub(crate) const UNKNOWN_USER: &str = "unknown";

/// The non-blank lines of `bytes` with their 1-based line numbers. A trailing
/// `\r` is dropped, and a UTF-8 byte-order mark at the very start is skipped.
pub(crate) fn lines(bytes: &[u8]) -> impl Iterator<Item = (u64, &[u8])> {
    let bytes = bytes.strip_prefix(b"\xef\xbb\xbf").unwrap_or(bytes);
    bytes
        .split(|b| *b == b'\n')
        .enumerate()
        .map(|(i, line)| {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            (i as u64 + 1, line)
        })
        .filter(|(_, line)| !line.iter().all(u8::is_ascii_whitespace))
}

/// Checks one line against the record limit and UTF-8, in that order, and
/// returns its text; otherwise emits the dead letter at `position`.
pub(crate) fn line_text<'a>(
    position: Position,
    raw: &'a [u8],
    ctx: &ParseContext,
    out: &mut dyn Emit,
) -> Option<&'a str> {
    let limit = ctx.limits.max_record_bytes;
    if raw.len() > limit {
        out.dead_letter(ctx.dead_letter(
            position,
            "too_large",
            format!(
                "record of {} bytes is over the {limit}-byte record limit; it was not parsed",
                raw.len()
            ),
            raw,
        ));
        return None;
    }
    match std::str::from_utf8(raw) {
        Ok(text) => Some(text),
        Err(e) => {
            out.dead_letter(ctx.dead_letter(
                position,
                "invalid_utf8",
                format!(
                    "record is not valid UTF-8 (first bad byte at offset {} of the line)",
                    e.valid_up_to()
                ),
                raw,
            ));
            None
        }
    }
}

/// Reads one line as a JSON object: limit, UTF-8, JSON syntax, then shape.
/// Every failure becomes a dead letter at `Line(number)`.
pub(crate) fn json_object(
    number: u64,
    raw: &[u8],
    ctx: &ParseContext,
    out: &mut dyn Emit,
) -> Option<Map<String, Value>> {
    let text = line_text(Position::Line(number), raw, ctx, out)?;
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(map)) => Some(map),
        Ok(other) => {
            out.dead_letter(ctx.dead_letter(
                Position::Line(number),
                "not_object",
                format!(
                    "expected one JSON object per line, found {}",
                    json_kind(&other)
                ),
                raw,
            ));
            None
        }
        Err(e) => {
            out.dead_letter(ctx.dead_letter(
                Position::Line(number),
                "invalid_json",
                format!("line is not valid JSON: {e}"),
                raw,
            ));
            None
        }
    }
}

/// A short name for the kind of a JSON value, for messages.
pub(crate) fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A string field that is present and not empty.
pub(crate) fn str_field<'a>(map: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    match map.get(key) {
        Some(Value::String(s)) if !s.is_empty() => Some(s.as_str()),
        _ => None,
    }
}

/// The first of `keys` that holds a non-empty string.
pub(crate) fn first_str<'a>(map: &'a Map<String, Value>, keys: &[&str]) -> Option<&'a str> {
    keys.iter().find_map(|k| str_field(map, k))
}

/// A whole number given as a JSON number or a numeric string.
pub(crate) fn int_field(map: &Map<String, Value>, key: &str) -> Option<i64> {
    match map.get(key)? {
        Value::Number(n) => n
            .as_i64()
            .or_else(|| n.as_u64().map(|u| i64::try_from(u).unwrap_or(i64::MAX)))
            .or_else(|| {
                n.as_f64()
                    .filter(|f| f.is_finite() && f.fract() == 0.0)
                    .map(|f| f as i64)
            }),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// Outcome of reading a required field.
pub(crate) enum Required<T> {
    /// The value.
    Ok(T),
    /// The field is absent (or null, or an empty string).
    Missing,
    /// The field is there but unusable; the text says why.
    Invalid(String),
}

/// Reads a required RFC 3339 time field into microseconds.
pub(crate) fn rfc3339_field(map: &Map<String, Value>, key: &str) -> Required<i64> {
    match map.get(key) {
        None | Some(Value::Null) => Required::Missing,
        Some(Value::String(s)) if s.is_empty() => Required::Missing,
        Some(Value::String(s)) => match trailhound_core::time::parse_rfc3339_micros(s) {
            Some(t) => Required::Ok(t),
            None => Required::Invalid(format!("`{key}` is not an RFC 3339 time: {s:?}")),
        },
        Some(other) => Required::Invalid(format!(
            "`{key}` should be an RFC 3339 time string, found {}",
            json_kind(other)
        )),
    }
}

/// Emits the dead letter for a required field that is missing or invalid.
pub(crate) fn bad_field<T>(
    outcome: Required<T>,
    key: &str,
    number: u64,
    raw: &[u8],
    ctx: &ParseContext,
    out: &mut dyn Emit,
) -> Option<T> {
    match outcome {
        Required::Ok(v) => Some(v),
        Required::Missing => {
            out.dead_letter(ctx.dead_letter(
                Position::Line(number),
                "missing_field",
                format!("required field `{key}` is missing or empty"),
                raw,
            ));
            None
        }
        Required::Invalid(why) => {
            out.dead_letter(ctx.dead_letter(Position::Line(number), "invalid_field", why, raw));
            None
        }
    }
}

/// A required non-empty string field.
pub(crate) fn required_str<'a>(map: &'a Map<String, Value>, key: &str) -> Required<&'a str> {
    match map.get(key) {
        None | Some(Value::Null) => Required::Missing,
        Some(Value::String(s)) if s.is_empty() => Required::Missing,
        Some(Value::String(s)) => Required::Ok(s.as_str()),
        Some(other) => Required::Invalid(format!(
            "`{key}` should be a string, found {}",
            json_kind(other)
        )),
    }
}

/// The host part of an address: `1.2.3.4:22` -> `1.2.3.4`, `[::1]:3022` ->
/// `::1`; a bare IPv6 address or a name without a port is kept as it is.
pub(crate) fn host_of(addr: &str) -> String {
    let addr = addr.trim();
    if let Some(rest) = addr.strip_prefix('[') {
        if let Some((host, _)) = rest.split_once(']') {
            return host.to_string();
        }
        return addr.to_string();
    }
    match addr.rsplit_once(':') {
        Some((host, port))
            if !host.contains(':')
                && !port.is_empty()
                && port.bytes().all(|b| b.is_ascii_digit()) =>
        {
            host.to_string()
        }
        _ => addr.to_string(),
    }
}

/// The fields every `session.*` event has, before the parser adds its own.
pub(crate) struct Base<'a> {
    /// The gateway kind (`asciinema`, `teleport`, `cowrie`, ...).
    pub gateway: &'a str,
    /// `session.start`, `session.command`, ...
    pub event_name: &'a str,
    /// Event time, microseconds UTC.
    pub time: i64,
    /// The gateway user; `unknown` when the log does not say.
    pub user: &'a str,
    /// The session, when the event belongs to one.
    pub session_id: Option<&'a str>,
    /// The event id (`<session id>:<sequence>`).
    pub event_id: String,
}

impl Base<'_> {
    /// The event with the common session fields filled in.
    pub(crate) fn event(self, ctx: &ParseContext) -> Event {
        let user = if self.user.is_empty() {
            UNKNOWN_USER
        } else {
            self.user
        };
        Event {
            event_time: self.time,
            ingest_time: ctx.ingest_time,
            source: Source::Session,
            event_id: self.event_id,
            event_source: self.gateway.to_string(),
            event_name: self.event_name.to_string(),
            event_category: "Session".to_string(),
            principal: format!("gateway:{user}"),
            principal_type: "GatewayUser".to_string(),
            user_name: Some(user.to_string()),
            session_id: self.session_id.map(str::to_string),
            ..Event::default()
        }
    }
}

/// The record as JSON text without the keys already lifted into columns;
/// `None` when nothing is left.
pub(crate) fn extra_without(map: &Map<String, Value>, lifted: &[&str]) -> Option<String> {
    let rest: Map<String, Value> = map
        .iter()
        .filter(|(k, _)| !lifted.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    if rest.is_empty() {
        None
    } else {
        serde_json::to_string(&Value::Object(rest)).ok()
    }
}

/// The last path component of an input name (`/x/y/demo.cast` -> `demo.cast`).
pub(crate) fn file_name(origin: &str) -> &str {
    origin.rsplit(['/', '\\']).next().unwrap_or(origin)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_of_strips_ports_but_keeps_bare_ipv6() {
        assert_eq!(host_of("10.0.0.1:22"), "10.0.0.1");
        assert_eq!(host_of("[::1]:3022"), "::1");
        assert_eq!(host_of("fe80::1"), "fe80::1");
        assert_eq!(host_of("node-1"), "node-1");
        assert_eq!(host_of("[broken"), "[broken");
    }

    #[test]
    fn lines_skip_blank_and_number_from_one() {
        let got: Vec<_> = lines(b"\xef\xbb\xbfa\r\n\n  \nb").collect();
        assert_eq!(got, vec![(1, &b"a"[..]), (4, &b"b"[..])]);
    }
}
