//! Restarts: a run stopped part way and resumed from its checkpoint gives
//! exactly the alerts of one uninterrupted run, none twice.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use trailhound_core::Alert;
use trailhound_detector::pipeline::{EndOfInput, StateConfig, run};
use trailhound_detector::{Engine, Input, PipelineConfig, Progress, Summary};
use trailhound_ingest::generate::{GenerateConfig, generate};
use trailhound_rules::RuleSet;
use trailhound_rules::compile::Stateful;
use trailhound_sinks::{AlertSink, MemorySink, SinkError};

/// A generated organisation over three days with every scenario, as
/// in-memory inputs in path (and so time) order.
fn organisation(gzip: bool) -> Vec<Input> {
    let generated = generate(&GenerateConfig {
        days: 3,
        gzip,
        ..GenerateConfig::default()
    });
    generated
        .files
        .into_iter()
        .map(|f| Input::Bytes {
            name: f.path,
            bytes: f.bytes,
        })
        .collect()
}

fn config(state: Option<&std::path::Path>, end: EndOfInput) -> PipelineConfig {
    PipelineConfig {
        dead_letter_path: None,
        // One reader: the order rows reach the engine is then the same in
        // every run, which the exact comparison below needs.
        readers: 1,
        chunk_events: 64,
        state: state.map(StateConfig::new),
        end_of_input: end,
        ..PipelineConfig::default()
    }
}

fn engine() -> Engine {
    Engine::new(RuleSet::builtin().unwrap_or_else(|e| panic!("{e}")))
}

fn detect(
    inputs: Vec<Input>,
    config: &PipelineConfig,
    sink: Box<dyn AlertSink>,
    progress: Option<Arc<Progress>>,
) -> Summary {
    let mut sinks = vec![sink];
    run(inputs, &mut engine(), &mut sinks, config, progress).unwrap_or_else(|e| panic!("{e}"))
}

/// Alerts by id, checking that no id came twice.
fn by_id(alerts: &[Alert]) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for a in alerts {
        let before = out.insert(a.alert_id.clone(), a.rule_id.clone());
        assert!(
            before.is_none(),
            "alert {} ({}) raised twice",
            a.alert_id,
            a.rule_id
        );
    }
    out
}

fn uninterrupted(inputs: Vec<Input>) -> BTreeMap<String, String> {
    let memory = MemorySink::new();
    detect(
        inputs,
        &config(None, EndOfInput::Flush),
        Box::new(memory.clone()),
        None,
    );
    by_id(&memory.alerts())
}

fn get_object(i: usize) -> String {
    // After the generated organisation's last day, so that its files do not
    // close the window before the second half arrives.
    let (m, s) = (30 + i * 4 / 60, i * 4 % 60);
    format!(
        r#"{{"eventTime":"2026-11-05T00:{m:02}:{s:02}Z","eventSource":"s3.amazonaws.com","eventName":"GetObject","eventCategory":"Data","eventID":"cp-g{i}","awsRegion":"us-east-1","sourceIPAddress":"203.0.113.50","userIdentity":{{"type":"IAMUser","arn":"arn:aws:iam::111122223333:user/mallory","userName":"mallory","accountId":"111122223333"}},"requestParameters":{{"bucketName":"payroll","key":"2026/{i:04}.csv"}},"additionalEventData":{{"bytesTransferredOut":1000}}}}"#
    )
}

/// Activity of stateful rules that straddles the split: a mass download
/// (window) half before and half after, and (with the session line the test
/// adds before the split) an IAM call through a gateway's linked role after
/// it (correlation).
fn straddling() -> (Input, Input) {
    let mut before: Vec<String> = (0..60).map(get_object).collect();
    before.push(r#"{"eventTime":"2026-11-05T00:33:00Z","eventSource":"iam.amazonaws.com","eventName":"ListUsers","eventID":"cp-pad","awsRegion":"us-east-1","sourceIPAddress":"203.0.113.50","userIdentity":{"type":"IAMUser","arn":"arn:aws:iam::111122223333:user/mallory","userName":"mallory","accountId":"111122223333"}}"#.to_string());
    let mut after: Vec<String> = (60..120).map(get_object).collect();
    after.push(r#"{"eventTime":"2026-11-05T00:36:00Z","eventSource":"iam.amazonaws.com","eventName":"CreateUser","eventID":"cp-iam1","awsRegion":"us-east-1","sourceIPAddress":"203.0.113.60","readOnly":false,"userIdentity":{"type":"AssumedRole","arn":"arn:aws:sts::111122223333:assumed-role/gateway-admin/zed","accountId":"111122223333","sessionContext":{"sourceIdentity":"zed","sessionIssuer":{"type":"Role","arn":"arn:aws:iam::111122223333:role/gateway-admin"}}}}"#.to_string());
    let mut first = before.join("\n").into_bytes();
    first.push(b'\n');
    (
        Input::Bytes {
            name: "straddle-before.jsonl".into(),
            bytes: first,
        },
        Input::Bytes {
            name: "straddle-after.jsonl".into(),
            bytes: after.join("\n").into_bytes(),
        },
    )
}

#[test]
fn a_run_resumed_from_its_checkpoint_after_half_the_inputs_gives_the_alerts_of_one_run() {
    let generated = organisation(true);
    let half = generated.len() / 2;
    let (before, after) = straddling();
    let session = Input::Bytes {
        name: "straddle-session.jsonl".into(),
        bytes: br#"{"trailhound":"session/v1","type":"command","time":"2026-11-05T00:34:00Z","session_id":"cp-s1","seq":1,"user":"zed","gateway":"bastion","target":"bastion-1","command":"aws iam create-user --user-name backdoor"}"#.to_vec(),
    };
    let mut inputs: Vec<Input> = generated[..half].to_vec();
    inputs.push(before);
    inputs.push(session);
    inputs.extend(generated[half..].iter().cloned());
    inputs.push(after);
    let half = half + 2;
    let expected = uninterrupted(inputs.clone());
    assert!(
        expected.len() >= 10,
        "too few alerts to compare: {expected:?}"
    );
    let rules = RuleSet::builtin().unwrap_or_else(|e| panic!("{e}"));
    let stateful = expected
        .values()
        .filter(|id| {
            rules
                .rules()
                .iter()
                .any(|r| &r.id == *id && !matches!(r.stateful, Stateful::None))
        })
        .count();
    eprintln!(
        "uninterrupted: {} alerts, {stateful} of them from window, sequence, baseline or correlation rules",
        expected.len()
    );
    assert!(
        stateful >= 2,
        "the split must cut through stateful rules: {expected:?}"
    );

    let state = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let memory = MemorySink::new();
    let first = detect(
        inputs[..half].to_vec(),
        &config(Some(state.path()), EndOfInput::Keep),
        Box::new(memory.clone()),
        None,
    );
    assert!(first.checkpoints >= 1);
    let second = detect(
        inputs.clone(),
        &config(Some(state.path()), EndOfInput::Flush),
        Box::new(memory.clone()),
        None,
    );
    assert_eq!(second.inputs_already_read, half as u64);
    assert!(second.rules_restored > 0);
    assert!(second.rules_state_dropped.is_empty());
    let resumed = by_id(&memory.alerts());
    assert_eq!(resumed, expected);
}

/// Asks the run to stop at its `after`-th alert.
struct StopAfter {
    inner: MemorySink,
    seen: usize,
    after: usize,
    stop: Arc<AtomicBool>,
}

impl AlertSink for StopAfter {
    fn name(&self) -> &'static str {
        "stop-after"
    }
    fn send(&mut self, alert: &Alert) -> Result<(), SinkError> {
        self.seen += 1;
        if self.seen == self.after {
            self.stop.store(true, Ordering::Relaxed);
        }
        self.inner.send(alert)
    }
    fn flush(&mut self) -> Result<(), SinkError> {
        self.inner.flush()
    }
}

#[test]
fn a_run_stopped_inside_an_input_resumes_after_its_last_record_with_no_alert_twice() {
    // One input holding the whole trail, so that the stop falls inside it.
    let mut whole = Vec::new();
    let mut rest = Vec::new();
    for input in organisation(false) {
        match input {
            Input::Bytes { name, bytes } if name.starts_with("AWSLogs/") => {
                whole.extend_from_slice(&bytes);
                whole.push(b'\n');
            }
            other => rest.push(other),
        }
    }
    let mut inputs = vec![Input::Bytes {
        name: "trail.json".into(),
        bytes: whole,
    }];
    inputs.extend(rest);
    let expected = uninterrupted(inputs.clone());
    let state = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let both = config(Some(state.path()), EndOfInput::Flush);
    let (first, alerts) = stopped_then_resumed(inputs, &both, &both);
    assert!(first.alerts() < expected.len() as u64);
    assert_eq!(by_id(&alerts), expected);
}

/// Runs `inputs` with `first` until its third alert, which stops the run,
/// then again with `second` (the same state folder, so that it resumes) to
/// the end; returns the first run's summary and every alert sent.
fn stopped_then_resumed(
    inputs: Vec<Input>,
    first: &PipelineConfig,
    second: &PipelineConfig,
) -> (Summary, Vec<Alert>) {
    let memory = MemorySink::new();
    let progress = Arc::new(Progress::default());
    let stopper = StopAfter {
        inner: memory.clone(),
        seen: 0,
        after: 3,
        stop: Arc::clone(&progress.stop),
    };
    let stopped = detect(inputs.clone(), first, Box::new(stopper), Some(progress));
    assert!(stopped.stopped);
    let resumed = detect(inputs, second, Box::new(memory.clone()), None);
    eprintln!(
        "stopped after {} events and {} alerts; resumed skipping {} records",
        stopped.events(),
        stopped.alerts(),
        resumed.records_resumed
    );
    assert!(resumed.records_resumed > 0);
    assert!(!resumed.stopped);
    (stopped, memory.alerts())
}

#[test]
fn a_changed_rule_starts_from_empty_state_and_says_so() {
    let state = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let inputs = organisation(true);
    let memory = MemorySink::new();
    detect(
        inputs[..2].to_vec(),
        &config(Some(state.path()), EndOfInput::Keep),
        Box::new(memory.clone()),
        None,
    );
    let yaml = r#"
id: aws-s3-mass-download
title: changed
severity: low
where: "event_name = 'GetObject'"
window: {size: 10m, group_by: [principal], having: "count(*) > 1000"}
"#;
    let spec = serde_yaml::from_str(yaml).unwrap_or_else(|e| panic!("{e}"));
    let rule = trailhound_rules::Compiler::new()
        .and_then(|c| c.compile(spec, None))
        .unwrap_or_else(|e| panic!("{e}"));
    let mut engine = Engine::new(RuleSet::from_rules(vec![rule]));
    let mut sinks: Vec<Box<dyn AlertSink>> = vec![Box::new(MemorySink::new())];
    let summary = run(
        inputs[2..4].to_vec(),
        &mut engine,
        &mut sinks,
        &config(Some(state.path()), EndOfInput::Flush),
        None,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(summary.rules_restored, 0);
    assert!(
        summary
            .rules_state_dropped
            .contains(&"aws-s3-mass-download".to_string()),
        "{:?}",
        summary.rules_state_dropped
    );
}

#[test]
fn a_damaged_checkpoint_stops_the_run_with_a_clear_error() {
    let state = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(state.path().join("checkpoint.bin"), b"THOUNDCK garbage")
        .unwrap_or_else(|e| panic!("{e}"));
    let mut sinks: Vec<Box<dyn AlertSink>> = vec![Box::new(MemorySink::new())];
    let err = run(
        organisation(true)[..1].to_vec(),
        &mut engine(),
        &mut sinks,
        &config(Some(state.path()), EndOfInput::Flush),
        None,
    )
    .err()
    .map(|e| e.to_string())
    .unwrap_or_default();
    assert!(err.contains("checkpoint.bin"), "{err}");
    assert!(err.contains("move it away"), "{err}");
}

/// The organisation's trail as one CloudTrail JSON-lines file in `dir`,
/// one record per line in time order, with a broken line now and then when
/// `broken`.
fn trail_file(dir: &std::path::Path, broken: bool) -> Input {
    let mut lines = String::new();
    let mut documents = 0;
    for input in organisation(false) {
        let Input::Bytes { name, bytes } = input else {
            continue;
        };
        if !name.starts_with("AWSLogs/") {
            continue;
        }
        let doc: serde_json::Value =
            serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        for record in doc["Records"].as_array().into_iter().flatten() {
            lines.push_str(&record.to_string());
            lines.push('\n');
        }
        documents += 1;
        if broken && documents % 50 == 0 {
            lines.push_str("{\"eventVersion\": \"1.08\", broken\n");
        }
    }
    let path = dir.join("trail.jsonl");
    std::fs::write(&path, lines).unwrap_or_else(|e| panic!("{e}"));
    Input::Path(path)
}

/// [`config`] for a file read in small pieces by `readers` threads. Each
/// piece (about 30 records) is a chunk of its own, and so a batch.
fn in_pieces(state: Option<&std::path::Path>, readers: usize) -> PipelineConfig {
    PipelineConfig {
        readers,
        chunk_events: 16,
        pieces: trailhound_ingest::Pieces {
            from_bytes: 0,
            piece_bytes: 32 * 1024,
        },
        ..config(state, EndOfInput::Flush)
    }
}

/// Alerts as JSON without the time they were raised, sorted.
fn contents(alerts: &[Alert]) -> Vec<String> {
    let mut out: Vec<String> = alerts
        .iter()
        .map(|a| {
            let mut v = serde_json::to_value(a).unwrap_or_else(|e| panic!("{e}"));
            if let Some(o) = v.as_object_mut() {
                o.remove("detected_at");
            }
            v.to_string()
        })
        .collect();
    out.sort();
    out
}

#[test]
fn a_line_file_parsed_by_several_threads_gives_exactly_what_one_thread_gives() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    for broken in [false, true] {
        let file = trail_file(dir.path(), broken);
        let mut runs = Vec::new();
        for readers in [1, 3] {
            let memory = MemorySink::new();
            let summary = detect(
                vec![file.clone()],
                &in_pieces(None, readers),
                Box::new(memory.clone()),
                None,
            );
            runs.push((summary, memory.alerts()));
        }
        let (one, one_alerts) = &runs[0];
        let (three, three_alerts) = &runs[1];
        eprintln!(
            "broken lines {broken}: {} events, {} dead letters, {} alerts, {} batches",
            one.events(),
            one.dead_letters(),
            one_alerts.len(),
            one.batches
        );
        assert!(one.events() > 10_000, "too small to span many pieces");
        assert!(one_alerts.len() >= 5, "too few alerts to compare");
        assert_eq!(three.events(), one.events());
        assert_eq!(three.dead_letters_by_reason, one.dead_letters_by_reason);
        assert_eq!(by_id(three_alerts), by_id(one_alerts));
        if broken {
            assert!(one.dead_letters() > 0);
        } else {
            // Rows cut short by a dead letter join others in the engine's
            // batcher, when its timer says; without them, every batch is a
            // piece, whatever thread parsed it, and so is every alert.
            assert_eq!(three.batches, one.batches, "the same batches");
            assert_eq!(contents(three_alerts), contents(one_alerts));
        }
    }
}

#[test]
fn a_run_stopped_inside_a_file_read_by_several_threads_resumes_after_its_last_record() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let inputs = vec![trail_file(dir.path(), true)];
    let memory = MemorySink::new();
    detect(
        inputs.clone(),
        &in_pieces(None, 3),
        Box::new(memory.clone()),
        None,
    );
    let expected = by_id(&memory.alerts());
    assert!(expected.len() >= 5, "too few alerts to compare");

    let state = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    // Other pieces on resuming: the rows to skip end inside a piece's.
    let other_pieces = PipelineConfig {
        pieces: trailhound_ingest::Pieces {
            from_bytes: 0,
            piece_bytes: 20 * 1024,
        },
        ..in_pieces(Some(state.path()), 3)
    };
    let (_, alerts) =
        stopped_then_resumed(inputs, &in_pieces(Some(state.path()), 3), &other_pieces);
    assert_eq!(by_id(&alerts), expected);
}
