//! Every event of a generated organisation survives the event codec.
//! Ignored by default (it parses a day of logs); run with `--ignored`.
//! `examples/codec_speed.rs` measures the same path.

use trailhound_bus::codec::{EVENT_JSON_V1, decode_event, encode_event};
use trailhound_core::Event;
use trailhound_ingest::generate::{GenerateConfig, generate};
use trailhound_ingest::{Collect, ParseContext, parse_input};

/// serde_json's default float parser may be one unit in the last place off
/// for some 17-digit values; keystroke statistics are compared with that
/// tolerance, everything else exactly.
fn same(a: &Event, b: &Event) -> bool {
    fn close(x: Option<f64>, y: Option<f64>) -> bool {
        match (x, y) {
            (Some(x), Some(y)) => {
                x == y || ((x - y).abs() <= x.abs().max(y.abs()) * 4.0 * f64::EPSILON)
            }
            (None, None) => true,
            _ => false,
        }
    }
    let strip = |e: &Event| Event {
        keystroke_interval_ms_mean: None,
        keystroke_interval_ms_stddev: None,
        ..e.clone()
    };
    strip(a) == strip(b)
        && close(a.keystroke_interval_ms_mean, b.keystroke_interval_ms_mean)
        && close(
            a.keystroke_interval_ms_stddev,
            b.keystroke_interval_ms_stddev,
        )
}

#[test]
#[ignore = "parses a generated day of logs; run with --ignored"]
fn every_generated_event_round_trips() {
    let generated = generate(&GenerateConfig::default());
    let mut out = Collect::default();
    for file in &generated.files {
        parse_input(&file.bytes, &ParseContext::new(file.path.clone()), &mut out);
    }
    assert!(out.events.len() > 1_000, "{}", out.events.len());
    assert!(
        out.events
            .iter()
            .any(|e| e.keystroke_interval_ms_mean.is_some())
    );
    let mut buf = Vec::new();
    for event in &out.events {
        buf.clear();
        let schema = encode_event(event, &mut buf).expect("encodes");
        assert_eq!(schema, EVENT_JSON_V1);
        let back = decode_event(Some(schema.as_bytes()), Some(&buf)).expect("decodes");
        assert!(
            same(&back, event),
            "{} changed:\n{event:?}\n{back:?}",
            event.event_id
        );
    }
}
