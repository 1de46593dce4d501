//! The embedded pipeline end to end, in process: inputs in, alerts and dead letters out.

use trailhound_detector::{BatchPolicy, Engine, Input, PipelineConfig, run};
use trailhound_rules::RuleSet;
use trailhound_sinks::{AlertSink, MemorySink};

fn stop_logging(id: &str, minute: u32) -> String {
    format!(
        r#"{{"eventTime":"2026-11-02T10:{minute:02}:00Z","eventSource":"cloudtrail.amazonaws.com","eventName":"StopLogging","eventID":"{id}","awsRegion":"us-east-1","userIdentity":{{"type":"IAMUser","arn":"arn:aws:iam::111122223333:user/mallory","userName":"mallory","accountId":"111122223333"}},"requestParameters":{{"name":"main"}}}}"#
    )
}

fn detect(
    inputs: Vec<Input>,
    config: &PipelineConfig,
) -> (Vec<trailhound_core::Alert>, trailhound_detector::Summary) {
    let mut engine = Engine::new(RuleSet::builtin().unwrap_or_else(|e| panic!("{e}")));
    let memory = MemorySink::new();
    let mut sinks: Vec<Box<dyn AlertSink>> = vec![Box::new(memory.clone())];
    let summary = run(inputs, &mut engine, &mut sinks, config, None).unwrap();
    (memory.alerts(), summary)
}

fn bytes(name: &str, text: String) -> Input {
    Input::Bytes {
        name: name.into(),
        bytes: text.into_bytes(),
    }
}

#[test]
fn repeated_matches_within_the_dedup_period_are_one_alert() {
    let lines = [
        stop_logging("a", 0),
        stop_logging("b", 5),
        stop_logging("c", 10),
    ]
    .join("\n");
    let config = PipelineConfig {
        dead_letter_path: None,
        ..PipelineConfig::default()
    };
    let (alerts, summary) = detect(vec![bytes("t.jsonl", lines)], &config);
    let stops: Vec<_> = alerts
        .iter()
        .filter(|a| a.rule_id == "aws-cloudtrail-logging-stopped")
        .collect();
    assert_eq!(stops.len(), 1);
    assert_eq!(stops[0].event_count, 3);
    assert_eq!(stops[0].event_ids, ["a", "b", "c"]);
    assert_eq!(summary.events(), 3);
}

#[test]
fn the_same_input_twice_gives_the_same_alert_ids() {
    let config = PipelineConfig {
        dead_letter_path: None,
        ..PipelineConfig::default()
    };
    let (first, _) = detect(vec![bytes("t.jsonl", stop_logging("a", 0))], &config);
    let (second, _) = detect(vec![bytes("t.jsonl", stop_logging("a", 0))], &config);
    assert!(!first.is_empty());
    let ids =
        |v: &[trailhound_core::Alert]| v.iter().map(|a| a.alert_id.clone()).collect::<Vec<_>>();
    assert_eq!(ids(&first), ids(&second));
}

#[test]
fn events_spread_over_many_small_batches_are_all_evaluated() {
    let lines: Vec<String> = (0..50).map(|i| stop_logging(&format!("e{i}"), 0)).collect();
    let config = PipelineConfig {
        batch: BatchPolicy {
            max_rows: 7,
            ..BatchPolicy::default()
        },
        readers: 2,
        chunk_events: 3,
        channel_chunks: 1,
        dead_letter_path: None,
        ..PipelineConfig::default()
    };
    let (alerts, summary) = detect(vec![bytes("t.jsonl", lines.join("\n"))], &config);
    assert_eq!(summary.events(), 50);
    assert!(summary.batches >= 8, "{} batches", summary.batches);
    // Every event matched; the first batch raised the alert and the later
    // matches were folded into it by dedup.
    assert_eq!(summary.matches, 50);
    let stops: Vec<_> = alerts
        .iter()
        .filter(|a| a.rule_id == "aws-cloudtrail-logging-stopped")
        .collect();
    assert_eq!(stops.len(), 1);
    assert_eq!(stops[0].event_count + summary.suppressed, 50);
}

#[test]
fn dead_letters_are_counted_and_written_with_their_position() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dl.jsonl");
    let config = PipelineConfig {
        dead_letter_path: Some(path.clone()),
        ..PipelineConfig::default()
    };
    let text = format!("{}\n{{broken\n\u{0}\n", stop_logging("a", 0));
    let (_, summary) = detect(
        vec![
            bytes("t.jsonl", text),
            bytes("junk.bin", "\u{1}\u{2}binary".into()),
        ],
        &config,
    );
    assert_eq!(summary.events(), 1);
    assert!(
        summary.dead_letters() >= 2,
        "{:?}",
        summary.dead_letters_by_reason
    );
    assert_eq!(
        summary.dead_letters_by_reason.get("unknown_format"),
        Some(&1)
    );
    let written = std::fs::read_to_string(&path).unwrap();
    assert_eq!(written.lines().count() as u64, summary.dead_letters());
    assert!(
        written.contains(r#""origin":"t.jsonl","position":{"kind":"line","at":2}"#),
        "{written}"
    );
}

#[test]
fn an_unreadable_path_is_reported_not_fatal() {
    let config = PipelineConfig {
        dead_letter_path: None,
        ..PipelineConfig::default()
    };
    let (_, summary) = detect(
        vec![
            Input::Path("/definitely/not/here.json".into()),
            bytes("t.jsonl", stop_logging("a", 0)),
        ],
        &config,
    );
    assert_eq!(summary.input_errors.len(), 1);
    assert_eq!(summary.events(), 1);
}
