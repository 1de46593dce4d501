//! The parse-only floor of the end-to-end benchmark (`scripts/bench`,
//! BENCHMARKS.md): every line of a JSON-lines file parsed into an untyped
//! tree, single-threaded, with the fastest Rust JSON parser we know of
//! (sonic-rs) and, for reference, serde_json. Nothing else is done with the
//! tree, so this is the most any JSON reader could do per core.
//!
//! `cargo run --release -p trailhound-benches --example parse_floor -- FILE.jsonl [--json]`

use std::io::Read;
use std::time::Instant;

fn main() -> std::process::ExitCode {
    let mut args = std::env::args().skip(1);
    let Some(path) = args.next() else {
        eprintln!("usage: parse_floor FILE.jsonl [--json]");
        return std::process::ExitCode::from(2);
    };
    let json = args.any(|a| a == "--json");
    let sonic = match run(&path, |line| {
        sonic_rs::from_slice::<sonic_rs::Value>(line).is_ok()
    }) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("parse_floor: {path}: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    let serde = match run(&path, |line| {
        serde_json::from_slice::<serde_json::Value>(line).is_ok()
    }) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("parse_floor: {path}: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    for (name, r) in [("sonic-rs", &sonic), ("serde_json", &serde)] {
        eprintln!(
            "{name:>10}: {} records ({} bad) in {:.2} s: {:.0} records/s, {:.0} MB/s",
            r.records,
            r.bad,
            r.seconds,
            r.records as f64 / r.seconds,
            r.bytes as f64 / r.seconds / 1e6
        );
    }
    if json {
        println!(
            "{{\"records\":{},\"bytes\":{},\"sonic_seconds\":{:.3},\"serde_json_seconds\":{:.3}}}",
            sonic.records, sonic.bytes, sonic.seconds, serde.seconds
        );
    }
    std::process::ExitCode::SUCCESS
}

struct Run {
    records: u64,
    bad: u64,
    bytes: u64,
    seconds: f64,
}

/// Bytes read per piece, as trailhound reads.
const PIECE: usize = 1 << 20;

/// Reads `path` in 1 MiB pieces cut at newlines (as trailhound does) and
/// parses every non-blank line with `parse`.
fn run(path: &str, parse: impl Fn(&[u8]) -> bool) -> std::io::Result<Run> {
    let mut file = std::fs::File::open(path)?;
    let started = Instant::now();
    let mut out = Run {
        records: 0,
        bad: 0,
        bytes: 0,
        seconds: 0.0,
    };
    // `buf[..have]` is read and not yet parsed; the buffer is zeroed only
    // when it grows, as trailhound's is.
    let mut buf: Vec<u8> = Vec::new();
    let mut have = 0;
    loop {
        if buf.len() < have + PIECE {
            buf.resize(have + PIECE, 0);
        }
        let n = file.read(&mut buf[have..])?;
        have += n;
        let end = if n == 0 {
            have
        } else {
            match buf[..have].iter().rposition(|b| *b == b'\n') {
                Some(at) => at + 1,
                None => continue,
            }
        };
        for line in buf[..end].split(|b| *b == b'\n') {
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            out.bytes += line.len() as u64 + 1;
            if parse(line) {
                out.records += 1;
            } else {
                out.bad += 1;
            }
        }
        buf.copy_within(end..have, 0);
        have -= end;
        if n == 0 {
            break;
        }
    }
    out.seconds = started.elapsed().as_secs_f64();
    Ok(out)
}
