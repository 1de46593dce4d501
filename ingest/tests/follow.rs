//! Following a growing gateway log (`trailhound_ingest::follow`): appended
//! lines, partial lines, rotation by rename and by truncation, resuming from
//! a saved position, and bad lines, each checked against what the whole file
//! gives when parsed at once.

use std::io::Write;
use std::path::{Path, PathBuf};

use trailhound_core::Event;
use trailhound_ingest::{
    Collect, Follower, Format, Limits, ParseContext, Polled, Position, parse_input,
};

const INGEST_TIME: i64 = 42;

fn fixture(rel: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/session")
        .join(rel);
    std::fs::read(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// The events of `bytes` parsed whole, as if the file were named `origin`.
fn whole(origin: &Path, bytes: &[u8]) -> Vec<Event> {
    let mut ctx = ParseContext::new(origin.display().to_string());
    ctx.ingest_time = INGEST_TIME;
    let mut out = Collect::default();
    parse_input(bytes, &ctx, &mut out);
    assert!(out.dead_letters.is_empty(), "{:?}", out.dead_letters);
    out.events
}

/// Polls until a poll finds nothing more.
fn drain(follower: &mut Follower, out: &mut Collect) -> Polled {
    let mut total = Polled::default();
    for _ in 0..100 {
        let polled = follower.poll(INGEST_TIME, out).expect("poll");
        total.lines += polled.lines;
        total.bytes += polled.bytes;
        total.rotations += polled.rotations;
        total.truncations += polled.truncations;
        if !polled.more {
            return total;
        }
    }
    panic!("the follower never caught up");
}

fn append(path: &Path, bytes: &[u8]) {
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .expect("open for append");
    file.write_all(bytes).expect("append");
}

fn ids(events: &[Event]) -> Vec<&str> {
    events.iter().map(|e| e.event_id.as_str()).collect()
}

/// Splits `bytes` after its `n`-th newline.
fn split_lines(bytes: &[u8], n: usize) -> (&[u8], &[u8]) {
    let mut seen = 0;
    for (i, b) in bytes.iter().enumerate() {
        if *b == b'\n' {
            seen += 1;
            if seen == n {
                return bytes.split_at(i + 1);
            }
        }
    }
    (bytes, &[])
}

#[test]
fn appended_lines_and_a_line_written_in_two_parts_give_the_events_of_the_whole_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("cowrie.json");
    let log = fixture("cowrie/cowrie.json");
    let (first, rest) = split_lines(&log, 5);
    // The sixth line arrives in two writes.
    let (half, second) = rest.split_at(rest.len().min(40));

    let mut follower = Follower::new(&path, Limits::default());
    let mut out = Collect::default();
    assert_eq!(drain(&mut follower, &mut out).lines, 0, "no file yet");
    append(&path, first);
    append(&path, half);
    drain(&mut follower, &mut out);
    assert_eq!(follower.format(), Some(Format::Cowrie));
    let after_first = out.events.len();
    assert_eq!(
        follower.position().line,
        5,
        "the partial sixth line is held"
    );
    append(&path, second);
    drain(&mut follower, &mut out);

    let expected = whole(&path, &log);
    assert!(after_first > 0 && after_first < expected.len());
    assert_eq!(out.events, expected);
    assert!(out.dead_letters.is_empty());
    assert_eq!(follower.position().offset, log.len() as u64);
}

#[test]
fn a_rename_rotation_finishes_the_old_file_then_reads_the_new_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("audit.log");
    let rotated = dir.path().join("audit.log.1");
    let log = fixture("teleport/audit.log");
    let (before, after) = split_lines(&log, 8);
    let (late, new_file) = split_lines(after, 2);

    let mut follower = Follower::new(&path, Limits::default());
    let mut out = Collect::default();
    append(&path, before);
    drain(&mut follower, &mut out);
    // The gateway renames its log and writes two more lines to the old file
    // (the last without its newline) before it opens the new one.
    std::fs::rename(&path, &rotated).expect("rename");
    let late_unterminated = late.strip_suffix(b"\n").unwrap_or(late);
    append(&rotated, late_unterminated);
    append(&path, new_file);
    let polled = drain(&mut follower, &mut out);
    assert_eq!(polled.rotations, 1);

    // The old file's lines keep their numbers in it, the new file's start at
    // one; the parser carries the sessions across.
    let mut old = before.to_vec();
    old.extend_from_slice(late);
    let whole_old = whole(&rotated, &old);
    let mut expected: Vec<String> = whole_old.iter().map(|e| e.event_id.clone()).collect();
    let new_events: Vec<&Event> = out.events[whole_old.len()..].iter().collect();
    assert_eq!(new_events.len(), whole(&path, new_file).len());
    expected.extend(new_events.iter().map(|e| e.event_id.clone()));
    assert_eq!(ids(&out.events), expected);
    assert_eq!(out.events[..whole_old.len()], whole_old[..]);
    // Users and addresses learned from the old file's session start carry on.
    for event in &new_events {
        assert_ne!(event.principal, "unknown", "{event:?}");
    }
    assert!(out.dead_letters.is_empty(), "{:?}", out.dead_letters);
}

#[test]
fn a_truncated_log_is_read_again_from_its_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("cowrie.json");
    let log = fixture("cowrie/cowrie.json");
    let (first, second) = split_lines(&log, 6);

    let mut follower = Follower::new(&path, Limits::default());
    let mut out = Collect::default();
    append(&path, first);
    drain(&mut follower, &mut out);
    let before = out.events.len();
    // copytruncate: the file is emptied in place and written again.
    std::fs::write(&path, b"").expect("truncate");
    assert_eq!(drain(&mut follower, &mut out).truncations, 1);
    append(&path, second);
    drain(&mut follower, &mut out);

    assert_eq!(out.events[..before], whole(&path, first)[..]);
    let after: Vec<&str> = ids(&out.events[before..]);
    // The second part is now lines 1.. of the file.
    let again = {
        let mut follower = Follower::new(&path, Limits::default());
        let mut fresh = Collect::default();
        drain(&mut follower, &mut fresh);
        fresh.events
    };
    assert_eq!(after, ids(&again));
    assert!(!after.is_empty());
}

#[test]
fn a_resumed_follower_sends_only_new_lines_and_still_knows_the_open_sessions() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("cowrie.json");
    let log = fixture("cowrie/cowrie.json");
    let (first, second) = split_lines(&log, 6);
    append(&path, first);

    let mut follower = Follower::new(&path, Limits::default());
    let mut out = Collect::default();
    drain(&mut follower, &mut out);
    let saved = follower.position();
    drop(follower);

    append(&path, second);
    let mut resumed = Follower::resume(&path, Limits::default(), saved);
    let mut later = Collect::default();
    drain(&mut resumed, &mut later);

    let expected = whole(&path, &log);
    assert_eq!(later.events, expected[out.events.len()..]);
    assert!(later.dead_letters.is_empty());
}

#[test]
fn a_log_rotated_while_nothing_followed_it_is_finished_before_the_new_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("audit.log");
    let rotated = dir.path().join("audit.log.2026-12-03");
    let log = fixture("teleport/audit.log");
    let (first, after) = split_lines(&log, 5);
    let (late, new_file) = split_lines(after, 4);
    append(&path, first);

    let mut follower = Follower::new(&path, Limits::default());
    let mut out = Collect::default();
    drain(&mut follower, &mut out);
    let saved = follower.position();
    drop(follower);

    // While trailhound was down: more lines, rotation, a new file.
    append(&path, late);
    std::fs::rename(&path, &rotated).expect("rename");
    append(&path, new_file);

    let mut resumed = Follower::resume(&path, Limits::default(), saved);
    let mut later = Collect::default();
    let polled = drain(&mut resumed, &mut later);
    assert_eq!(polled.rotations, 1);

    let mut old = first.to_vec();
    old.extend_from_slice(late);
    let old_events = whole(&rotated, &old);
    let n_late = old_events.len() - out.events.len();
    assert!(n_late > 0);
    assert_eq!(later.events[..n_late], old_events[out.events.len()..]);
    assert_eq!(
        later.events.len() - n_late,
        whole(&path, new_file).len(),
        "then every line of the new file"
    );
}

#[test]
fn an_oversized_line_is_a_dead_letter_and_the_next_lines_flow_on() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("cowrie.json");
    let log = fixture("cowrie/cowrie.json");
    let limits = Limits {
        max_record_bytes: 1024,
        ..Limits::default()
    };
    let mut follower = Follower::new(&path, limits).with_budget(4096);
    let mut out = Collect::default();
    let (first, second) = split_lines(&log, 3);
    append(&path, first);
    drain(&mut follower, &mut out);
    // A 100 KiB line written in pieces, each poll seeing part of it.
    let long = format!(
        "{{\"eventid\":\"cowrie.log\",\"pad\":\"{}\"}}\n",
        "x".repeat(100 * 1024)
    );
    for piece in long.as_bytes().chunks(8 * 1024) {
        append(&path, piece);
        drain(&mut follower, &mut out);
    }
    append(&path, second);
    drain(&mut follower, &mut out);

    assert_eq!(out.dead_letters.len(), 1, "{:?}", out.dead_letters);
    assert_eq!(out.dead_letters[0].reason, "too_large");
    assert_eq!(out.dead_letters[0].position, Position::Line(4));
    let mut expected_lines = first.to_vec();
    expected_lines.extend_from_slice(b"\n");
    expected_lines.extend_from_slice(second);
    // Same events as the file with the long line blank (numbers unchanged).
    assert_eq!(out.events, whole(&path, &expected_lines));
}

#[test]
fn a_line_of_another_format_is_a_dead_letter_and_the_next_line_decides() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("audit.log");
    let mut log = b"this is not json\n".to_vec();
    let teleport = fixture("teleport/audit.log");
    log.extend_from_slice(&teleport);
    append(&path, &log);
    let mut follower = Follower::new(&path, Limits::default());
    let mut out = Collect::default();
    drain(&mut follower, &mut out);
    assert_eq!(follower.format(), Some(Format::Teleport));
    assert_eq!(out.dead_letters.len(), 1);
    assert_eq!(out.dead_letters[0].reason, "unknown_format");
    assert_eq!(out.dead_letters[0].position, Position::Line(1));
    let mut shifted = b"\n".to_vec();
    shifted.extend_from_slice(&teleport);
    assert_eq!(out.events, whole(&path, &shifted));
}
