//! CloudTrail: every file shape, every userIdentity type, S3 data events, Insights.
//!
//! [`parse`] takes a whole (decompressed) input in any of the shapes
//! CloudTrail really comes in, after an optional UTF-8 byte-order mark:
//!
//! - `{"Records":[...]}`, the S3 delivery shape (other top-level keys allowed,
//!   several such documents one after another too);
//! - a JSON array of records;
//! - one record per line (JSON lines; blank lines and CRLF are fine);
//! - a single record, compact or pretty-printed;
//! - SIEM exports: Logstash `@timestamp` in place of `eventTime`, EventBridge
//!   envelopes (`{"detail-type": "AWS API Call via CloudTrail", "detail": {...}}`).
//!
//! How the shape is told apart: when the first non-blank line is a whole
//! object or array on its own, the input is read line by line, and each line
//! may be a record, a `Records` document or an array; otherwise it is read as
//! a stream of JSON documents. A `Records` list or array is streamed: each
//! record is measured and parsed on its own as soon as it is read, and
//! records before a break (a truncated file) are kept.
//!
//! Nothing stops the run. Each problem becomes a dead letter:
//! `invalid_json` (with serde's message and where), `too_large` (over
//! `max_record_bytes`, measured before parsing), `invalid_utf8`,
//! `not_a_record` (JSON but not an object), `missing_field` (no `eventTime`
//! nor `@timestamp`, or no `eventName`), `invalid_field` (an unreadable
//! `eventTime`). Positions are `Line(n)` for records on their own line and
//! `Record(i)` (0-based, counted across the input) for records in a list
//! or in a multi-line document, and counted within the line for a list on
//! a line of its own. An input that is neither valid JSON
//! documents nor JSON lines with at least one good record is one `Whole`
//! dead letter.
//!
//! Where a record becomes an event: [`record`].

pub mod identity;
mod json;
pub mod record;
mod scan;
mod shape;

use std::borrow::Cow;

use serde::de::IgnoredAny;
use serde_json::value::RawValue;
use trailhound_core::Event;

use self::record::{Object, RecordError};
use self::shape::BadBytes;
use crate::emit::{DeadLetter, Emit, ParseContext, Position};

/// Parses a decompressed CloudTrail input of any shape, emitting one event
/// per record and one dead letter per record that cannot be read.
pub fn parse(bytes: &[u8], ctx: &ParseContext, out: &mut dyn Emit) {
    let body = shape::strip_bom(bytes);
    let mut run = Run::new(ctx, out);
    if shape::is_line_oriented(body) {
        run.lines(body);
    } else {
        run.documents(body);
    }
}

/// Parses CloudTrail printed one record per line, where `body` is a piece of
/// a larger input that starts at line `first_line` (1-based): the lines get
/// the numbers they have in the whole input. How large line-oriented files
/// are read in pieces ([`crate::input::parse_file`]). Returns the number of
/// newlines in `body`, so the next piece's first line is this one's plus
/// that.
pub fn parse_lines_from(
    body: &[u8],
    first_line: u64,
    ctx: &ParseContext,
    out: &mut dyn Emit,
) -> u64 {
    let body = if first_line <= 1 {
        shape::strip_bom(body)
    } else {
        body
    };
    let mut run = Run::new(ctx, out);
    let before = first_line.saturating_sub(1);
    // `lines` gives one line more than there are newlines: the text after
    // the last one (empty when the body ends with a newline).
    let mut last = 0;
    for (n, line) in shape::lines(body) {
        last = n;
        if shape::is_punctuation(line) {
            continue;
        }
        run.line(shape::strip_trailing_comma(line), n + before);
    }
    last.saturating_sub(1)
}

/// Whether `head` (the start of an input) holds CloudTrail one record per
/// line, so that the input can be read in pieces cut at newlines.
pub fn is_line_oriented(head: &[u8]) -> bool {
    shape::is_line_oriented(shape::strip_bom(head))
}

/// Where a top-level value sits: on its own line, or in a document.
#[derive(Debug, Clone, Copy)]
enum At {
    Line(u64),
    Document,
}

impl At {
    /// Words added to the detail of a dead letter for a record inside a list.
    fn in_list(self) -> Cow<'static, str> {
        match self {
            At::Line(n) => Cow::Owned(format!(" (in the list on line {n})")),
            At::Document => Cow::Borrowed(""),
        }
    }
}

/// One parse: the context, the output, and the running record index.
struct Run<'r> {
    ctx: &'r ParseContext,
    out: &'r mut dyn Emit,
    /// 0-based index of the next record read from a list or document.
    next_record: u64,
    /// Events emitted so far.
    events: u64,
    /// When a broken document is re-read from its failing point, serde's
    /// message with the position in the whole input (the re-read only knows
    /// positions from where it started).
    break_message: Option<String>,
    /// The event each record is parsed into, record after record, so that
    /// its strings are allocated once rather than per record.
    scratch: Event,
}

impl<'r> Run<'r> {
    fn new(ctx: &'r ParseContext, out: &'r mut dyn Emit) -> Self {
        Self {
            ctx,
            out,
            next_record: 0,
            events: 0,
            break_message: None,
            scratch: Event::default(),
        }
    }

    fn event(&mut self, event: &Event) {
        self.events += 1;
        self.out.event(event);
    }

    /// Maps a record's fields onto the scratch event and hands it over.
    fn record(&mut self, fields: record::Fields<'_>, text: &str) -> Result<(), RecordError> {
        fields.fill(text, self.ctx, &mut self.scratch)?;
        self.events += 1;
        self.out.event(&self.scratch);
        Ok(())
    }

    fn dead(&mut self, position: Position, reason: &'static str, detail: String, raw: &[u8]) {
        self.out
            .dead_letter(self.ctx.dead_letter(position, reason, detail, raw));
    }

    /// The position of a top-level value that is a record.
    fn top_position(&mut self, at: At) -> Position {
        match at {
            At::Line(n) => Position::Line(n),
            At::Document => {
                let i = self.next_record;
                self.next_record += 1;
                Position::Record(i)
            }
        }
    }

    /// Line-oriented input: each line on its own.
    fn lines(&mut self, body: &[u8]) {
        for (n, line) in shape::lines(body) {
            if shape::is_punctuation(line) {
                continue;
            }
            self.line(shape::strip_trailing_comma(line), n);
        }
    }

    fn line(&mut self, bytes: &[u8], n: u64) {
        // A list on a line numbers its records from 0, so that a position
        // does not depend on the lines before it (nor on whether the file
        // was read whole or in pieces).
        self.next_record = 0;
        let at = At::Line(n);
        let max = self.ctx.limits.max_record_bytes;
        let list = || bytes.starts_with(b"[") || shape::has_records_key(bytes);
        if bytes.len() > max && !list() {
            self.dead(
                Position::Line(n),
                "too_large",
                format!(
                    "the line is {} bytes, over the {max}-byte record limit; not parsed",
                    bytes.len()
                ),
                bytes,
            );
            return;
        }
        // The SIMD check first; std's, which says where the bad byte is,
        // only for a line that fails it.
        let checked = simdutf8::basic::from_utf8(bytes)
            .ok()
            .map_or_else(|| std::str::from_utf8(bytes), Ok);
        match checked {
            Ok(text) => self.top(text, at, None),
            Err(_) if list() => {
                let repaired = shape::repair_utf8(bytes);
                let bad = BadBytes::new(&repaired, bytes);
                self.top(&repaired.text, at, Some(&bad));
            }
            Err(e) => self.dead(
                Position::Line(n),
                "invalid_utf8",
                format!("byte {} of the line is not valid UTF-8", e.valid_up_to()),
                bytes,
            ),
        }
    }

    /// Document input: a stream of JSON documents (usually one).
    fn documents(&mut self, body: &[u8]) {
        let repaired;
        let (text, bad) = match std::str::from_utf8(body) {
            Ok(text) => (text, None),
            Err(_) => {
                repaired = shape::repair_utf8(body);
                (repaired.text.as_str(), Some(BadBytes::new(&repaired, body)))
            }
        };
        let bad = bad.as_ref();
        let mut values = serde_json::Deserializer::from_str(text).into_iter::<&RawValue>();
        let mut read = 0u64;
        loop {
            let offset = values.byte_offset();
            match values.next() {
                None => return,
                Some(Ok(value)) => {
                    self.top(value.get(), At::Document, bad);
                    read += 1;
                }
                Some(Err(e)) => {
                    let rest = text.get(offset..).unwrap_or("").trim_start();
                    if read > 0 {
                        self.break_message = Some(e.to_string());
                        self.top(rest, At::Document, bad);
                        self.break_message = None;
                    } else {
                        self.rescue(body, rest, bad, &e);
                    }
                    return;
                }
            }
        }
    }

    /// A document broken before anything was read from it: keep what can
    /// be read either as far as the document goes or line by line, whichever
    /// yields more records; else one dead letter for the whole input.
    fn rescue(
        &mut self,
        body: &[u8],
        text: &str,
        bad: Option<&BadBytes<'_>>,
        e: &serde_json::Error,
    ) {
        let mut partial = Buffer::default();
        let partial_events = {
            let mut run = Run::new(self.ctx, &mut partial);
            run.break_message = Some(e.to_string());
            run.top(text, At::Document, bad);
            run.events
        };
        let mut by_line = Buffer::default();
        let line_events = {
            let mut run = Run::new(self.ctx, &mut by_line);
            run.lines(body);
            run.events
        };
        if partial_events == 0 && line_events == 0 {
            self.dead(
                Position::Whole,
                "invalid_json",
                format!("not valid JSON, read as a document or as JSON lines: {e}"),
                body,
            );
            return;
        }
        let chosen = if partial_events >= line_events {
            partial
        } else {
            by_line
        };
        for item in chosen.0 {
            match item {
                Item::Event(event) => self.event(&event),
                Item::Dead(dead) => self.out.dead_letter(dead),
            }
        }
    }

    /// One top-level JSON value: a list, a `Records` document or a record.
    fn top(&mut self, text: &str, at: At, bad: Option<&BadBytes<'_>>) {
        match text.as_bytes().first() {
            Some(b'[') => self.list(text, at, bad),
            Some(b'{') => self.object(text, at, bad),
            _ => {
                let position = self.top_position(at);
                let error = match serde_json::from_str::<IgnoredAny>(text) {
                    Ok(_) => RecordError::NotARecord(json::kind_of(text)),
                    Err(e) => RecordError::InvalidJson(e),
                };
                self.refuse(position, &error, "", text.as_bytes());
            }
        }
    }

    /// A top-level object: a `Records` document (streamed) or one record.
    fn object(&mut self, text: &str, at: At, bad: Option<&BadBytes<'_>>) {
        let max = self.ctx.limits.max_record_bytes;
        let damaged = bad.and_then(|b| b.within(text));
        if (text.len() > max || damaged.is_some()) && !shape::has_records_key(text.as_bytes()) {
            let position = self.top_position(at);
            self.oversized_or_damaged(position, text, bad, "");
            return;
        }
        let first = self.next_record;
        let result = match record::read_record_fast(text) {
            Some(fields) => Ok(Object::Record(fields)),
            None => {
                let mut on_record = |raw: &RawValue| self.element(raw.get(), at, bad);
                record::read_object(text, Some(&mut on_record))
            }
        };
        match result {
            Ok(Object::Records(list)) => {
                if let Some(what) = list.not_a_list {
                    let position = self.top_position(at);
                    self.dead(
                        position,
                        "not_a_record",
                        format!("the Records value is {what}, not a list of records"),
                        text.as_bytes(),
                    );
                }
            }
            Ok(Object::Record(fields)) => {
                let position = self.top_position(at);
                if damaged.is_some() || text.len() > max {
                    self.oversized_or_damaged(position, text, bad, "");
                } else {
                    if let Err(error) = self.record(fields, text) {
                        self.refuse(position, &error, "", text.as_bytes());
                    }
                }
            }
            Err(RecordError::InvalidJson(e)) if self.next_record > first => {
                self.broke_off(text, &e, at, first);
            }
            Err(error) => {
                let position = self.top_position(at);
                self.refuse(position, &error, "", text.as_bytes());
            }
        }
    }

    /// A top-level array, streamed record by record.
    fn list(&mut self, text: &str, at: At, bad: Option<&BadBytes<'_>>) {
        let first = self.next_record;
        let result = {
            let mut on_record = |raw: &RawValue| self.element(raw.get(), at, bad);
            record::read_list(text, &mut on_record)
        };
        if let Err(e) = result {
            if self.next_record > first {
                self.broke_off(text, &e, at, first);
            } else {
                let position = self.top_position(at);
                self.refuse(position, &RecordError::InvalidJson(e), "", text.as_bytes());
            }
        }
    }

    /// One record from a list: measured, checked, then parsed.
    fn element(&mut self, text: &str, at: At, bad: Option<&BadBytes<'_>>) {
        let position = Position::Record(self.next_record);
        self.next_record += 1;
        let max = self.ctx.limits.max_record_bytes;
        if text.len() > max || bad.and_then(|b| b.within(text)).is_some() {
            self.oversized_or_damaged(position, text, bad, &at.in_list());
            return;
        }
        let result = match record::read_record(text) {
            Ok(Object::Record(fields)) => self.record(fields, text),
            Ok(Object::Records(_)) => Err(RecordError::NotARecord("a nested Records list")),
            Err(e) => Err(e),
        };
        if let Err(error) = result {
            self.dead(
                position,
                error.reason(),
                format!("{error}{}", at.in_list()),
                text.as_bytes(),
            );
        }
    }

    /// A top-level value that is not a record.
    fn refuse(&mut self, position: Position, error: &RecordError, suffix: &str, raw: &[u8]) {
        let detail = match (error, &self.break_message) {
            (RecordError::InvalidJson(_), Some(message)) => {
                format!("not valid JSON: {message}{suffix}")
            }
            _ => format!("{error}{suffix}"),
        };
        self.dead(position, error.reason(), detail, raw);
    }

    /// A record over the size limit, or holding bytes that are not UTF-8.
    fn oversized_or_damaged(
        &mut self,
        position: Position,
        text: &str,
        bad: Option<&BadBytes<'_>>,
        suffix: &str,
    ) {
        if let Some(bad) = bad
            && let Some(original) = bad.within(text)
        {
            let at = bad.first_in(text).unwrap_or(0);
            self.dead(
                position,
                "invalid_utf8",
                format!("byte {at} of the record is not valid UTF-8{suffix}"),
                original,
            );
            return;
        }
        let max = self.ctx.limits.max_record_bytes;
        self.dead(
            position,
            "too_large",
            format!(
                "the record is {} bytes, over the {max}-byte record limit; not parsed{suffix}",
                text.len()
            ),
            text.as_bytes(),
        );
    }

    /// A list that breaks off (truncated or corrupt) after some records were
    /// read: the records before stay, one dead letter covers the rest.
    fn broke_off(&mut self, text: &str, e: &serde_json::Error, at: At, first: u64) {
        let i = self.next_record;
        let message = self.break_message.clone().unwrap_or_else(|| e.to_string());
        let where_ = at.in_list();
        let offset = shape::offset_of(text, e.line(), e.column());
        self.dead(
            Position::Record(i),
            "invalid_json",
            format!(
                "the list breaks off at record {i}{where_}: {message}; the {} record(s) of the list before it were read, the rest is lost",
                i - first
            ),
            shape::around(text, offset).as_bytes(),
        );
    }
}

/// What a parse produced, in order; used to try a broken input two ways.
#[derive(Default)]
struct Buffer(Vec<Item>);

enum Item {
    Event(Box<Event>),
    Dead(DeadLetter),
}

impl Emit for Buffer {
    fn event(&mut self, event: &Event) {
        self.0.push(Item::Event(Box::new(event.clone())));
    }
    fn dead_letter(&mut self, dead_letter: DeadLetter) {
        self.0.push(Item::Dead(dead_letter));
    }
}
