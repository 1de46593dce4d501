//! Prints what the event codec costs per event: encode, decode, and size.
//!
//! The events are a generated organisation's CloudTrail and session logs,
//! parsed by the real ingest code, so field sizes are realistic.
//!
//! ```text
//! cargo run -p trailhound-bus --example codec_speed [rounds]
//! ```
//! (The dev profile is fine for comparing encodings; optimised builds are
//! several times faster.)

use std::hint::black_box;
use std::time::Instant;

use trailhound_bus::codec::{decode_event, encode_event};
use trailhound_core::Event;
use trailhound_ingest::generate::{GenerateConfig, generate};
use trailhound_ingest::{Collect, ParseContext, parse_input};

fn main() {
    let rounds: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(3);
    let events = sample_events();
    let n = events.len();

    let mut encoded: Vec<(Vec<u8>, &'static str)> = Vec::with_capacity(n);
    let mut bytes = 0usize;
    for event in &events {
        let mut buf = Vec::new();
        let schema = match encode_event(event, &mut buf) {
            Ok(schema) => schema,
            Err(e) => {
                eprintln!("encoding failed: {e}");
                std::process::exit(1);
            }
        };
        bytes += buf.len();
        encoded.push((buf, schema));
    }

    let mut best_encode = f64::MAX;
    let mut best_decode = f64::MAX;
    let mut buf = Vec::with_capacity(4096);
    for _ in 0..rounds.max(1) {
        let start = Instant::now();
        for event in &events {
            buf.clear();
            let _ = black_box(encode_event(black_box(event), &mut buf));
        }
        best_encode = best_encode.min(start.elapsed().as_nanos() as f64 / n as f64);

        let start = Instant::now();
        for (payload, schema) in &encoded {
            let _ = black_box(decode_event(Some(schema.as_bytes()), Some(payload)));
        }
        best_decode = best_decode.min(start.elapsed().as_nanos() as f64 / n as f64);
    }
    let profile = if cfg!(debug_assertions) {
        "dev"
    } else {
        "release"
    };
    println!(
        "events: {n} (generated organisation, parsed by ingest), {profile} profile, best of {rounds}"
    );
    println!(
        "bytes/event (JSON v1, before batch compression): {:.0}",
        bytes as f64 / n as f64
    );
    println!("encode ns/event: {best_encode:.0}");
    println!("decode ns/event: {best_decode:.0}");
    println!("encode+decode ns/event: {:.0}", best_encode + best_decode);
}

/// A day of a 20-principal organisation with every attack scenario.
fn sample_events() -> Vec<Event> {
    let generated = generate(&GenerateConfig::default());
    let mut out = Collect::default();
    for file in &generated.files {
        let ctx = ParseContext::new(file.path.clone());
        parse_input(&file.bytes, &ctx, &mut out);
    }
    out.events
}
