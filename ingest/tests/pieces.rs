//! Large line-oriented files read in pieces (`parse_file_with`), and parsed
//! by several threads (`parse_file_in_parallel`): the events, event ids and
//! dead letters (with their line numbers) are those of the whole file read
//! at once, for CloudTrail lines and session logs, with lines cut across
//! pieces, an over-long line, and documents still read whole.

use std::path::{Path, PathBuf};

use trailhound_ingest::{
    Collect, Format, ParseContext, Pieces, parse_file_in_parallel, parse_file_with, parse_input,
};

fn fixture(rel: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(rel);
    std::fs::read(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

fn ctx(path: &Path) -> ParseContext {
    let mut ctx = ParseContext::new(path.display().to_string());
    ctx.ingest_time = 7;
    ctx
}

/// Small pieces, so that every fixture spans many of them.
const SMALL: Pieces = Pieces {
    from_bytes: 0,
    piece_bytes: 4096,
};

/// Parses `path` in pieces, on this thread and with 1 to 3 workers; the
/// workers must give what this thread gives.
fn in_pieces(path: &Path) -> (Collect, Format) {
    let mut pieces = Collect::default();
    let summary = parse_file_with(path, &ctx(path), &mut pieces, SMALL)
        .expect("readable")
        .expect("within the limits");
    for workers in 1..=3 {
        let mut parallel = Collect::default();
        let format = parse_file_in_parallel(path, &ctx(path), &mut parallel, SMALL, workers)
            .expect("readable")
            .expect("within the limits")
            .format;
        assert_eq!(format, summary.format);
        assert_eq!(parallel.events, pieces.events, "{workers} workers");
        assert_eq!(
            parallel.dead_letters, pieces.dead_letters,
            "{workers} workers"
        );
    }
    (pieces, summary.format)
}

/// Writes `bytes`, parses the file in pieces and whole; returns both.
fn both(name: &str, bytes: &[u8]) -> (Collect, Collect, Format) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join(name);
    std::fs::write(&path, bytes).expect("write");
    let (pieces, format) = in_pieces(&path);
    let mut whole = Collect::default();
    parse_input(bytes, &ctx(&path), &mut whole);
    (pieces, whole, format)
}

/// `fixture` repeated until it is over `bytes` long.
fn repeated(fixture: &[u8], bytes: usize) -> Vec<u8> {
    let mut out = Vec::new();
    while out.len() < bytes {
        out.extend_from_slice(fixture);
        if !out.ends_with(b"\n") {
            out.push(b'\n');
        }
    }
    out
}

#[test]
fn cloudtrail_lines_read_in_pieces_give_the_events_and_dead_letters_of_the_whole_file() {
    let mut log = repeated(&fixture("cloudtrail/identities.jsonl"), 64 * 1024);
    // A broken line in the middle, and a last line without its newline.
    let middle = log.len() / 2;
    let cut = middle + log[middle..].iter().position(|b| *b == b'\n').unwrap_or(0) + 1;
    log.splice(
        cut..cut,
        b"{\"eventVersion\": \"1.08\", broken\n".iter().copied(),
    );
    while log.ends_with(b"\n") {
        log.pop();
    }
    let (pieces, whole, format) = both("trail.jsonl", &log);
    assert_eq!(format, Format::CloudTrail);
    assert!(whole.events.len() > 100);
    assert_eq!(pieces.events, whole.events);
    assert_eq!(pieces.dead_letters.len(), 1);
    assert_eq!(pieces.dead_letters, whole.dead_letters);
}

#[test]
fn session_logs_read_in_pieces_give_the_events_of_the_whole_file() {
    for (name, rel) in [
        ("audit.log", "session/teleport/audit.log"),
        ("cowrie.json", "session/cowrie/cowrie.json"),
        ("session.jsonl", "session/jsonl/session.jsonl"),
    ] {
        let log = repeated(&fixture(rel), 32 * 1024);
        let (pieces, whole, _) = both(name, &log);
        assert!(!whole.events.is_empty(), "{name}");
        assert_eq!(pieces.events, whole.events, "{name}");
        assert_eq!(pieces.dead_letters, whole.dead_letters, "{name}");
    }
}

#[test]
fn an_over_long_line_is_one_dead_letter_and_the_lines_after_it_keep_their_numbers() {
    let records = fixture("cloudtrail/identities.jsonl");
    let mut log = records.clone();
    if !log.ends_with(b"\n") {
        log.push(b'\n');
    }
    let long_line = records.iter().filter(|b| **b == b'\n').count() as u64 + 1;
    log.extend_from_slice(b"{\"eventVersion\":\"1.08\",\"pad\":\"");
    log.extend(std::iter::repeat_n(b'x', 3 * 1024 * 1024));
    log.extend_from_slice(b"\"}\n");
    log.extend_from_slice(&records);

    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("trail.jsonl");
    std::fs::write(&path, &log).expect("write");
    let (pieces, _) = in_pieces(&path);
    let mut whole = Collect::default();
    parse_input(&log, &ctx(&path), &mut whole);

    assert_eq!(pieces.dead_letters.len(), 1, "{:?}", pieces.dead_letters);
    assert_eq!(pieces.dead_letters[0].reason, "too_large");
    assert_eq!(
        pieces.dead_letters[0].position,
        trailhound_ingest::Position::Line(long_line)
    );
    assert_eq!(pieces.events, whole.events);
}

#[test]
fn documents_and_small_files_are_still_read_whole() {
    let records = fixture("cloudtrail/records.json");
    let (pieces, whole, format) = both("records.json", &records);
    assert_eq!(format, Format::CloudTrail);
    assert!(!whole.events.is_empty());
    assert_eq!(pieces.events, whole.events);
}

/// Counts events; its parts panic at the `panic_at`-th event parsed by any
/// of them, as a parser bug would.
struct Brittle {
    parsed: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    panic_at: usize,
    gathered: usize,
}

struct BrittlePart {
    parsed: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    panic_at: usize,
    events: usize,
}

impl trailhound_ingest::Emit for Brittle {
    fn event(&mut self, _: &trailhound_core::Event) {
        self.gathered += 1;
    }
    fn dead_letter(&mut self, _: trailhound_ingest::DeadLetter) {}
}

impl trailhound_ingest::Emit for BrittlePart {
    fn event(&mut self, _: &trailhound_core::Event) {
        let n = self
            .parsed
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst)
            + 1;
        assert!(n != self.panic_at, "a parser bug at event {n}");
        self.events += 1;
    }
    fn dead_letter(&mut self, _: trailhound_ingest::DeadLetter) {}
}

impl trailhound_ingest::Part for BrittlePart {}

impl trailhound_ingest::Gather for Brittle {
    type Part = BrittlePart;
    fn part(&self) -> BrittlePart {
        BrittlePart {
            parsed: std::sync::Arc::clone(&self.parsed),
            panic_at: self.panic_at,
            events: 0,
        }
    }
    fn gather(&mut self, part: &mut BrittlePart) {
        self.gathered += std::mem::take(&mut part.events);
    }
}

#[test]
fn a_panic_on_a_parsing_thread_stops_the_file_with_an_error_and_no_hang() {
    let log = repeated(&fixture("cloudtrail/identities.jsonl"), 256 * 1024);
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("trail.jsonl");
    std::fs::write(&path, &log).expect("write");
    for workers in 2..=3 {
        let mut brittle = Brittle {
            parsed: Default::default(),
            panic_at: 300,
            gathered: 0,
        };
        let err = parse_file_in_parallel(&path, &ctx(&path), &mut brittle, SMALL, workers)
            .err()
            .unwrap_or_else(|| panic!("{workers} workers: the file read on"));
        assert!(
            err.to_string().contains("a parsing thread stopped"),
            "{workers} workers: {err}"
        );
        // What was gathered is what came before the failed piece.
        assert!(brittle.gathered < 300, "{workers} workers");
    }
}
