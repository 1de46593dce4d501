//! What the fuzz targets check. Each target in `fuzz_targets/` is a thin
//! `fuzz_target!` over one function here; the functions assert what must
//! hold of a parser's output whatever the input, beyond "no panic":
//!
//! - every event has an id and a name, and every batch of events becomes an
//!   Arrow batch of as many rows;
//! - every dead letter has a reason, a detail and a position inside the input;
//! - nothing is lost silently: CloudTrail records counted by an independent
//!   reading (serde_json) each become an event or a dead letter, each line of
//!   a Teleport or Cowrie log becomes exactly one of them, and so on;
//! - reading a line-oriented CloudTrail file in pieces gives what reading it
//!   whole gives;
//! - the receiver's answer agrees with what the body held, and the same body
//!   gives the same events whether it arrives plain or gzipped;
//! - a rule the loader refuses gets at least one error from the linter, and a
//!   Sigma rule that converts also compiles.

use std::cell::RefCell;
use std::io::Write;
use std::path::Path;

use serde::de::{self, Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use trailhound_core::{Event, Source, events_to_batch};
use trailhound_ingest::input::decompress;
use trailhound_ingest::{
    Collect, Format, ParseContext, Position, cloudtrail, parse_input, session,
};

/// The ingest time every parse is stamped with, so that outputs compare.
pub const INGEST_TIME: i64 = 1_714_560_000_000_000;

/// A parse context named `origin`, with a fixed ingest time.
pub fn ctx(origin: &str) -> ParseContext {
    let mut ctx = ParseContext::new(origin);
    ctx.ingest_time = INGEST_TIME;
    ctx
}

/// Number of lines of `bytes` as the parsers count them (1 + newlines).
fn line_count(bytes: &[u8]) -> u64 {
    1 + bytes.iter().filter(|b| **b == b'\n').count() as u64
}

/// What every parser's output must satisfy. `source`: the source every
/// event must have (`None` when formats are mixed); `bytes`: the
/// (decompressed) input the positions point into.
pub fn check_output(out: &Collect, source: Option<Source>, bytes: &[u8]) {
    for e in &out.events {
        assert!(!e.event_id.is_empty(), "an event without an id: {e:?}");
        assert!(!e.event_name.is_empty(), "an event without a name: {e:?}");
        if let Some(source) = source {
            assert_eq!(e.source, source, "an event of the wrong source: {e:?}");
        }
    }
    let lines = line_count(bytes);
    for d in &out.dead_letters {
        assert!(
            !d.reason.is_empty(),
            "a dead letter without a reason: {d:?}"
        );
        assert!(
            !d.detail.is_empty(),
            "a dead letter without a detail: {d:?}"
        );
        assert!(d.excerpt.chars().count() <= 256, "an excerpt too long");
        match d.position {
            Position::Line(n) => assert!(
                (1..=lines).contains(&n),
                "dead letter at line {n} of a {lines}-line input: {d:?}"
            ),
            Position::Byte(b) => assert!(b <= bytes.len() as u64, "byte {b} past the end"),
            Position::Whole | Position::Record(_) => {}
        }
    }
    let batch = events_to_batch(&out.events);
    assert_eq!(batch.num_rows(), out.events.len());
}

/// Dead letters of a line-oriented session log: at most one per line, so
/// their lines strictly increase.
fn check_one_dead_letter_per_line(out: &Collect) {
    let mut last = 0;
    for d in &out.dead_letters {
        if let Position::Line(n) = d.position {
            assert!(n > last, "two dead letters for line {n}, or out of order");
            last = n;
        }
    }
}

// ---------------------------------------------------------------- CloudTrail

/// How many records an independent reading (serde_json) finds in a
/// CloudTrail input: every element of a top-level list or of a `Records`
/// list (the first `Records` key of an object, as the parser streams it), a
/// `Records` value that is not a list counted once, any other top-level
/// value once.
#[derive(Debug, Default, Clone, Copy)]
struct Count {
    records: u64,
}

impl<'de> Deserialize<'de> for Count {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(TopVisitor)
    }
}

struct TopVisitor;

impl<'de> Visitor<'de> for TopVisitor {
    type Value = Count;
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Count, A::Error> {
        ListVisitor.visit_seq(seq)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Count, A::Error> {
        let mut count = None;
        while let Some(key) = map.next_key::<String>()? {
            if key == "Records" && count.is_none() {
                count = Some(map.next_value::<Records>()?.0);
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(count.unwrap_or(ONE))
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Count, E> {
        Ok(ONE)
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Count, E> {
        Ok(ONE)
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Count, E> {
        Ok(ONE)
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Count, E> {
        Ok(ONE)
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<Count, E> {
        Ok(ONE)
    }
    fn visit_unit<E: de::Error>(self) -> Result<Count, E> {
        Ok(ONE)
    }
}

const ONE: Count = Count { records: 1 };

/// The value of a `Records` key: a list counts its elements, anything else
/// is one (refused) record.
struct Records(Count);

impl<'de> Deserialize<'de> for Records {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Records;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Records, A::Error> {
                ListVisitor.visit_seq(seq).map(Records)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Records, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Records(ONE))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Records, E> {
                Ok(Records(ONE))
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Records, E> {
                Ok(Records(ONE))
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Records, E> {
                Ok(Records(ONE))
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Records, E> {
                Ok(Records(ONE))
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<Records, E> {
                Ok(Records(ONE))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Records, E> {
                Ok(Records(ONE))
            }
        }
        d.deserialize_any(V)
    }
}

struct ListVisitor;

impl ListVisitor {
    fn visit_seq<'de, A: SeqAccess<'de>>(self, mut seq: A) -> Result<Count, A::Error> {
        let mut count = Count::default();
        while seq.next_element::<IgnoredAny>()?.is_some() {
            count.records += 1;
        }
        Ok(count)
    }
}

/// The records of a whole (decompressed) input, when it is a stream of
/// valid JSON values in valid UTF-8; `None` otherwise.
fn count_records(body: &[u8]) -> Option<Count> {
    let text = std::str::from_utf8(body).ok()?;
    let mut total = Count::default();
    for value in serde_json::Deserializer::from_str(text).into_iter::<Count>() {
        total.records += value.ok()?.records;
    }
    Some(total)
}

/// True when an input holds nothing but whitespace and list punctuation,
/// which may give no output at all.
fn is_blank(body: &[u8]) -> bool {
    body.iter()
        .all(|b| b.is_ascii_whitespace() || matches!(b, b'[' | b']' | b','))
}

/// The least a line-oriented input must give: each line the line reader
/// looks at (trimmed, list punctuation skipped, a trailing comma dropped)
/// gives its records when it is valid JSON on its own, and at least one
/// dead letter when it is not.
fn line_lower_bound(bytes: &[u8]) -> u64 {
    let mut total = 0;
    for line in bytes.split(|b| *b == b'\n') {
        let line = line.trim_ascii_start();
        let line = line
            .strip_prefix(b"\xEF\xBB\xBF")
            .unwrap_or(line)
            .trim_ascii();
        if line.len() <= 2 && line.iter().all(|b| matches!(b, b'[' | b']' | b',')) {
            continue;
        }
        let line = match line.strip_suffix(b",") {
            Some(l) => l.trim_ascii_end(),
            None => line,
        };
        total += std::str::from_utf8(line)
            .ok()
            .and_then(|t| serde_json::from_str::<Count>(t).ok())
            .map_or(1, |c| c.records);
    }
    total
}

/// `out` is what the CloudTrail parser made of the decompressed `bytes`
/// (with a gzip dead letter first when `clean_gzip` is false). Checks that
/// no record was lost.
fn check_cloudtrail_counts(bytes: &[u8], out: &Collect, clean_gzip: bool) {
    let body = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let outputs = (out.events.len() + out.dead_letters.len()) as u64;
    if !clean_gzip {
        assert!(outputs >= 1, "a damaged gzip input gave no dead letter");
        return;
    }
    if cloudtrail::is_line_oriented(bytes) {
        let least = line_lower_bound(bytes);
        assert!(
            outputs >= least,
            "the lines hold at least {least} record(s) or bad line(s), but the line reader gave {} event(s) and {} dead letter(s)",
            out.events.len(),
            out.dead_letters.len()
        );
        return;
    }
    match count_records(body) {
        Some(count) => assert_eq!(
            outputs,
            count.records,
            "{} record(s) by serde_json, but {} event(s) and {} dead letter(s) from the document reader: {:?}",
            count.records,
            out.events.len(),
            out.dead_letters.len(),
            out.dead_letters
        ),
        None => assert!(
            is_blank(body) || outputs >= 1,
            "an input that is not valid JSON gave neither an event nor a dead letter"
        ),
    }
}

/// Reading a line-oriented input in two pieces cut at a newline (as
/// `parse_file` does for big files) gives what reading it whole gives.
fn check_cloudtrail_pieces(bytes: &[u8], whole: &Collect, ctx: &ParseContext) {
    if !cloudtrail::is_line_oriented(bytes) {
        return;
    }
    let newlines: Vec<usize> = bytes
        .iter()
        .enumerate()
        .filter(|(_, b)| **b == b'\n')
        .map(|(i, _)| i)
        .collect();
    let Some(&cut) = newlines.get(newlines.len() / 2) else {
        return;
    };
    let (first, rest) = bytes.split_at(cut + 1);
    let mut pieces = Collect::default();
    cloudtrail::parse_lines_from(first, 1, ctx, &mut pieces);
    cloudtrail::parse_lines_from(rest, line_count(first), ctx, &mut pieces);
    assert_eq!(
        pieces.events, whole.events,
        "events differ when read in pieces"
    );
    assert_eq!(
        pieces.dead_letters, whole.dead_letters,
        "dead letters differ when read in pieces"
    );
}

/// The CloudTrail target: a whole input (gzip or not, any shape) through
/// `parse_input`, and through the CloudTrail parser itself when it was
/// recognised as something else.
pub fn cloudtrail(data: &[u8]) {
    let mut ctx = ctx("fuzz.json");
    // A small record limit for a third of the inputs, so that the
    // `too_large` paths are reached.
    if data.len().is_multiple_of(3) {
        ctx.limits.max_record_bytes = 512;
    }
    // The fast first reading of a record never accepts what serde_json
    // refuses, nor reads different fields: the whole input and each line.
    if let Ok(text) = std::str::from_utf8(data) {
        for part in std::iter::once(text).chain(text.lines()) {
            assert!(
                cloudtrail::record::fast_scan_agrees(part),
                "the fast scan and serde_json disagree on {part:?}"
            );
        }
    }
    let mut out = Collect::default();
    let summary = parse_input(data, &ctx, &mut out);
    let mut gzip = Collect::default();
    let bytes = decompress(data, &ctx, &mut gzip);
    check_output(
        &out,
        Some(Source::Cloudtrail).filter(|_| summary.format == Format::CloudTrail),
        &bytes,
    );
    let clean = gzip.dead_letters.is_empty();
    if summary.format == Format::CloudTrail {
        check_cloudtrail_counts(&bytes, &out, clean);
        if clean {
            let mut direct = Collect::default();
            cloudtrail::parse(&bytes, &ctx, &mut direct);
            check_cloudtrail_pieces(&bytes, &direct, &ctx);
        }
    } else {
        let mut direct = Collect::default();
        cloudtrail::parse(&bytes, &ctx, &mut direct);
        check_output(&direct, Some(Source::Cloudtrail), &bytes);
        check_cloudtrail_counts(&bytes, &direct, true);
        check_cloudtrail_pieces(&bytes, &direct, &ctx);
    }
}

// ------------------------------------------------------------------ sessions

/// The non-blank lines of a session log as its parsers count them.
fn session_lines(bytes: &[u8]) -> impl Iterator<Item = &[u8]> {
    let bytes = bytes.strip_prefix(b"\xef\xbb\xbf").unwrap_or(bytes);
    bytes
        .split(|b| *b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
        .filter(|l| !l.iter().all(u8::is_ascii_whitespace))
}

/// A session context: a small record limit for a third of the inputs.
fn session_ctx(data: &[u8], origin: &str) -> ParseContext {
    let mut ctx = ctx(origin);
    if data.len().is_multiple_of(3) {
        ctx.limits.max_record_bytes = 256;
    }
    ctx
}

/// Parses `data` as `format`'s line log, one line at a time as a followed
/// log is read, and checks it gives what the whole-input parser gives.
fn line_log_matches(format: Format, data: &[u8], ctx: &ParseContext, whole: &Collect) {
    let Some(mut log) = session::LineLog::for_format(format) else {
        return;
    };
    let body = data.strip_prefix(b"\xef\xbb\xbf").unwrap_or(data);
    let mut out = Collect::default();
    for (i, line) in body.split(|b| *b == b'\n').enumerate() {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if !line.iter().all(u8::is_ascii_whitespace) {
            log.line(i as u64 + 1, line, ctx, &mut out);
        }
    }
    assert_eq!(
        out.events, whole.events,
        "a followed log gives other events"
    );
    assert_eq!(out.dead_letters, whole.dead_letters);
}

/// Teleport audit events or Cowrie JSON: every non-blank line is exactly
/// one event or one dead letter.
pub fn one_per_line(format: Format, data: &[u8]) {
    let ctx = session_ctx(data, "fuzz.log");
    let mut out = Collect::default();
    match format {
        Format::Teleport => session::teleport::parse(data, &ctx, &mut out),
        Format::Cowrie => session::cowrie::parse(data, &ctx, &mut out),
        other => panic!("not a one-per-line format: {other:?}"),
    }
    check_output(&out, Some(Source::Session), data);
    check_one_dead_letter_per_line(&out);
    let lines = session_lines(data).count();
    assert_eq!(
        out.events.len() + out.dead_letters.len(),
        lines,
        "{lines} line(s), but {} event(s) and {} dead letter(s)",
        out.events.len(),
        out.dead_letters.len()
    );
    line_log_matches(format, data, &ctx, &out);
}

/// An asciinema cast: one whole-input dead letter (bad header), or a
/// `session.start`, the commands typed, and a `session.end` whose counts
/// agree, all of one session and none before its start.
pub fn asciinema(data: &[u8]) {
    let ctx = session_ctx(data, "fuzz.cast");
    let mut out = Collect::default();
    session::asciinema::parse(data, &ctx, &mut out);
    check_output(&out, Some(Source::Session), data);
    let Some(first) = out.events.first() else {
        assert_eq!(out.dead_letters.len(), 1, "no events, so one dead letter");
        assert_eq!(out.dead_letters[0].position, Position::Whole);
        return;
    };
    assert!(
        out.dead_letters
            .iter()
            .all(|d| d.position != Position::Whole),
        "a cast with a header has no whole-input dead letter"
    );
    check_one_dead_letter_per_line(&out);
    let last = out.events.last().expect("not empty");
    assert_eq!(first.event_name, "session.start");
    assert_eq!(last.event_name, "session.end");
    assert!(out.events.len() >= 2);
    let commands = &out.events[1..out.events.len() - 1];
    for e in commands {
        assert_eq!(e.event_name, "session.command");
        assert!(e.command.as_deref().is_some_and(|c| !c.is_empty()));
    }
    for e in &out.events {
        assert_eq!(e.session_id, first.session_id, "one session per cast");
        assert!(
            e.event_time >= first.event_time,
            "an event before the start"
        );
    }
    let extra: serde_json::Value =
        serde_json::from_str(last.extra.as_deref().expect("the end has extra")).expect("JSON");
    assert_eq!(
        extra["commands"].as_u64(),
        Some(commands.len() as u64),
        "the end event counts the commands"
    );
    let lines = session_lines(data).count() as u64;
    assert!(out.dead_letters.len() as u64 <= lines.saturating_sub(1));
}

/// trailhound session JSON lines: every line that is not keystroke input is
/// an event or a dead letter; command lines come out redacted, and
/// redacting them again changes nothing.
pub fn session_jsonl(data: &[u8]) {
    let ctx = session_ctx(data, "fuzz.jsonl");
    let mut out = Collect::default();
    session::jsonl::parse(data, &ctx, &mut out);
    check_output(&out, Some(Source::Session), data);
    check_one_dead_letter_per_line(&out);
    let mut lines = 0usize;
    let mut input_lines = 0usize;
    for line in session_lines(data) {
        lines += 1;
        let is_input = serde_json::from_slice::<serde_json::Value>(line)
            .ok()
            .is_some_and(|v| v.get("type").and_then(|t| t.as_str()) == Some("input"));
        if is_input {
            input_lines += 1;
        }
    }
    assert!(
        out.events.len() + out.dead_letters.len() >= lines - input_lines,
        "{lines} line(s) ({input_lines} of input), but {} event(s) and {} dead letter(s)",
        out.events.len(),
        out.dead_letters.len()
    );
    line_log_matches(Format::SessionJsonl, data, &ctx, &out);
    for e in &out.events {
        if let Some(command) = e.command.as_deref() {
            assert_redaction_is_stable(command);
        }
    }
}

/// A command line as it came out of redaction, put through redaction again
/// (as a `command` line of the JSON-lines format), is unchanged: redaction
/// leaves nothing that still looks like a secret.
fn assert_redaction_is_stable(command: &str) {
    let line = serde_json::json!({
        "trailhound": "session/v1",
        "type": "command",
        "time": "2026-01-01T00:00:00Z",
        "session_id": "s",
        "user": "u",
        "command": command,
    })
    .to_string();
    let mut again = Collect::default();
    session::jsonl::parse(line.as_bytes(), &ctx("again.jsonl"), &mut again);
    let Some(e) = again.events.first() else {
        return;
    };
    assert_eq!(
        e.command.as_deref().map(str::trim),
        Some(command.trim()),
        "redacting a redacted command changed it"
    );
}

// ------------------------------------------------------------------ receiver

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(bytes).expect("gzip into memory");
    enc.finish().expect("gzip into memory")
}

/// What identifies a body's outputs across two reads of it (ingest time and
/// the times taken from it left out).
fn identity(events: &[Event]) -> Vec<(&str, &str)> {
    events
        .iter()
        .map(|e| (e.event_id.as_str(), e.event_name.as_str()))
        .collect()
}

/// The receiver: a POST body read as `POST /v1/sessions` reads it. The
/// answer agrees with the body's events and dead letters; a retry of the
/// same body gives the same event ids; a body sent gzipped gives what it
/// gives plain.
pub fn receiver_body(data: &[u8]) {
    use trailhound_receive::{ReceiverSettings, Verdict, read_body};
    let settings = ReceiverSettings::default();
    let body = read_body(&settings, None, data);
    let collect = Collect {
        events: body.events.clone(),
        dead_letters: body.dead_letters.clone(),
    };
    let mut sink = Collect::default();
    let bytes = decompress(data, &ctx("x"), &mut sink);
    check_output(&collect, None, &bytes);
    assert!(body.origin.starts_with("gateway/"));
    for d in &body.dead_letters {
        assert_eq!(d.origin, body.origin);
    }
    match body.verdict() {
        Verdict::Accepted {
            events,
            dead_letters,
            format,
        } => {
            assert_eq!(events, body.events.len());
            assert_eq!(dead_letters, body.dead_letters.len());
            assert_eq!(format, body.format.as_str());
        }
        Verdict::Unreadable { reasons } => {
            assert!(body.events.is_empty());
            assert!(!reasons.is_empty());
            assert!(reasons.windows(2).all(|w| w[0] < w[1]));
            for r in &reasons {
                assert!(body.dead_letters.iter().any(|d| d.reason == *r));
            }
        }
    }
    // Skipped formats (digests, generator labels) are the only way a body
    // with content may give nothing.
    if body.events.is_empty()
        && body.dead_letters.is_empty()
        && !matches!(
            body.format,
            Format::CloudTrailDigest | Format::GeneratorLabels | Format::CloudTrail
        )
    {
        assert!(
            bytes.iter().all(u8::is_ascii_whitespace),
            "a {:?} body with content gave nothing",
            body.format
        );
    }
    let retry = read_body(&settings, None, data);
    assert_eq!(identity(&retry.events), identity(&body.events));
    assert_eq!(retry.dead_letters, body.dead_letters);

    if data.starts_with(&[0x1f, 0x8b]) {
        return;
    }
    let named = read_body(&settings, Some("fuzz-1.log"), data);
    let zipped = read_body(&settings, Some("fuzz-1.log"), &gzip(data));
    assert_eq!(zipped.format, named.format);
    assert_eq!(identity(&zipped.events), identity(&named.events));
    assert_eq!(zipped.dead_letters, named.dead_letters);
}

// --------------------------------------------------------------------- rules

mod rules_support {
    use super::*;
    use arrow::array::{Array, RecordBatch};
    use trailhound_rules::lint::{Level, Linter, Origin};
    use trailhound_rules::{Compiler, RuleSpec, sigma};

    /// What the rule targets keep between inputs: one compiler, one linter
    /// and a batch of real events to evaluate compiled rules on.
    pub struct Tools {
        compiler: Compiler,
        linter: Linter,
        batch: RecordBatch,
    }

    thread_local! {
        static TOOLS: RefCell<Option<Tools>> = const { RefCell::new(None) };
    }

    fn sample_events() -> Vec<Event> {
        let inputs: [(&str, &[u8]); 5] = [
            (
                "records.json",
                include_bytes!("../../ingest/tests/fixtures/cloudtrail/records.json"),
            ),
            (
                "s3_data.json",
                include_bytes!("../../ingest/tests/fixtures/cloudtrail/s3_data.json"),
            ),
            (
                "identities.jsonl",
                include_bytes!("../../ingest/tests/fixtures/cloudtrail/identities.jsonl"),
            ),
            (
                "session.jsonl",
                include_bytes!("../../ingest/tests/fixtures/session/jsonl/session.jsonl"),
            ),
            (
                "audit.log",
                include_bytes!("../../ingest/tests/fixtures/session/teleport/audit.log"),
            ),
        ];
        let mut out = Collect::default();
        for (name, bytes) in inputs {
            parse_input(bytes, &ctx(name), &mut out);
        }
        out.events
    }

    pub fn with_tools(f: impl FnOnce(&Tools)) {
        TOOLS.with(|t| {
            let mut t = t.borrow_mut();
            let tools = t.get_or_insert_with(|| Tools {
                compiler: Compiler::new().expect("compiler"),
                linter: Linter::new().expect("linter"),
                batch: events_to_batch(&sample_events()),
            });
            f(tools);
        });
    }

    const FILE: &str = "fuzz.yml";

    /// A compiled rule runs on real events without failing in a way that
    /// panics, and its evidence and dedup key can be made for every row.
    fn exercise(tools: &Tools, rule: &trailhound_rules::CompiledRule) {
        if let Ok(hits) = rule.evaluate(&tools.batch) {
            assert_eq!(hits.len(), tools.batch.num_rows());
            for row in 0..tools.batch.num_rows() {
                if hits.is_valid(row) && hits.value(row) {
                    let _ = rule.evidence(&tools.batch, row);
                    let _ = rule.dedup_key(&tools.batch, row);
                }
            }
        }
        let _ = trailhound_rules::testing::run_rule_tests(rule);
    }

    /// The linter finds at least one error in a rule the loader refuses.
    fn lint_agrees(tools: &Tools, text: &str, refusal: &str) {
        let lint = tools.linter.lint_text(
            text,
            Origin {
                label: FILE,
                path: None,
                stem: "fuzz",
            },
        );
        assert!(
            lint.findings.iter().any(|f| f.level == Level::Error),
            "the loader refuses the rule ({refusal}) but the linter finds no error: {:?}",
            lint.findings
        );
    }

    /// A rule file as the loader reads it (our own format, or Sigma when
    /// it has a top-level `detection`), compiled and run.
    pub fn rule_yaml(data: &[u8]) {
        let Ok(text) = std::str::from_utf8(data) else {
            return;
        };
        with_tools(|tools| {
            let spec: Result<RuleSpec, String> = if sigma::is_sigma_text(text) {
                sigma::convert(text, Path::new(FILE), &sigma::SigmaConfig::default())
                    .map_err(|e| e.to_string())
            } else {
                serde_yaml::from_str::<RuleSpec>(text).map_err(|e| e.to_string())
            };
            let compiled =
                spec.and_then(|s| tools.compiler.compile(s, None).map_err(|e| e.to_string()));
            match compiled {
                Ok(rule) => exercise(tools, &rule),
                Err(e) => {
                    assert!(!e.is_empty());
                    lint_agrees(tools, text, &e);
                }
            }
        });
    }

    /// A Sigma rule converted to SQL: when the conversion succeeds, the SQL
    /// compiles (values are quoted and escaped as SQL needs).
    pub fn sigma_rule(data: &[u8]) {
        let Ok(text) = std::str::from_utf8(data) else {
            return;
        };
        with_tools(|tools| {
            let converted = sigma::convert(text, Path::new(FILE), &sigma::SigmaConfig::default());
            let spec = match converted {
                Ok(spec) => spec,
                Err(e) => {
                    let e = e.to_string();
                    assert!(e.contains("sigma-fuzz") || e.contains(FILE), "{e}");
                    if sigma::is_sigma_text(text) {
                        lint_agrees(tools, text, &e);
                    }
                    return;
                }
            };
            let sql = spec.predicate.clone();
            match tools.compiler.compile(spec, Some(Path::new(FILE))) {
                Ok(rule) => exercise(tools, &rule),
                Err(e) => panic!("a converted Sigma rule does not compile: {e}\nSQL: {sql}"),
            }
        });
    }
}

pub use rules_support::{rule_yaml, sigma_rule};
