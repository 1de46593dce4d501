//! Baseline rules end to end: the pack's through the embedded pipeline
//! (CloudTrail JSON lines in, alerts out), `rate` and `rare` rules written
//! here through the engine.

use trailhound_core::{Alert, Event, events_to_batch};
use trailhound_detector::{Engine, Input, PipelineConfig, run};
use trailhound_rules::{Compiler, RuleSet, RuleSpec};
use trailhound_sinks::{AlertSink, MemorySink};

const ALICE: &str = "arn:aws:iam::111122223333:user/alice";

fn record(day: u32, minute: u32, source: &str, name: &str, ip: &str, id: &str) -> String {
    format!(
        r#"{{"eventTime":"2026-11-{day:02}T10:{minute:02}:00Z","eventSource":"{source}","eventName":"{name}","eventID":"{id}","awsRegion":"us-east-1","readOnly":false,"sourceIPAddress":"{ip}","userAgent":"aws-cli/2.15.0 Python/3.11","userIdentity":{{"type":"IAMUser","arn":"{ALICE}","userName":"alice","accountId":"111122223333","accessKeyId":"AKIAEXAMPLEALICE"}}}}"#
    )
}

/// Ten days of alice's usual write calls from her usual network.
fn usual_days() -> Vec<String> {
    let usual = [
        ("s3.amazonaws.com", "PutObject"),
        ("ec2.amazonaws.com", "StartInstances"),
        ("ec2.amazonaws.com", "StopInstances"),
        ("lambda.amazonaws.com", "UpdateFunctionCode"),
    ];
    let mut lines = Vec::new();
    for day in 1..=10 {
        for (i, (source, name)) in usual.iter().enumerate() {
            for k in 0..(4 - i as u32) {
                let minute = i as u32 * 10 + k;
                let id = format!("u-{day}-{i}-{k}");
                lines.push(record(day, minute, source, name, "198.51.100.20", &id));
            }
        }
    }
    lines
}

fn detect(rule_id: &str, lines: &[String]) -> Vec<trailhound_core::Alert> {
    let builtin = RuleSet::builtin().unwrap_or_else(|e| panic!("{e}"));
    let rules = builtin
        .rules()
        .iter()
        .filter(|r| r.id == rule_id)
        .cloned()
        .collect::<Vec<_>>();
    assert_eq!(rules.len(), 1, "rule {rule_id} is in the pack");
    let mut engine = Engine::new(RuleSet::from_rules(rules));
    let memory = MemorySink::new();
    let mut sinks: Vec<Box<dyn AlertSink>> = vec![Box::new(memory.clone())];
    let config = PipelineConfig {
        dead_letter_path: None,
        ..PipelineConfig::default()
    };
    let input = Input::Bytes {
        name: "trail.jsonl".into(),
        bytes: lines.join("\n").into_bytes(),
    };
    run(vec![input], &mut engine, &mut sinks, &config, None).unwrap_or_else(|e| panic!("{e}"));
    memory.alerts()
}

#[test]
fn a_new_write_call_after_ten_usual_days_is_one_alert_naming_the_usual_calls() {
    let mut lines = usual_days();
    let quiet = detect("baseline-new-api-for-principal", &lines);
    assert!(quiet.is_empty(), "{quiet:?}");

    lines.push(record(
        11,
        0,
        "iam.amazonaws.com",
        "CreateUser",
        "198.51.100.20",
        "new-1",
    ));
    lines.push(record(
        11,
        1,
        "iam.amazonaws.com",
        "CreateUser",
        "198.51.100.20",
        "new-2",
    ));
    let alerts = detect("baseline-new-api-for-principal", &lines);
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    let a = &alerts[0];
    assert_eq!(a.principal, ALICE);
    assert_eq!(a.event_ids, ["new-1"]);
    assert_eq!(
        a.evidence,
        format!(
            "{ALICE} called iam:CreateUser for the first time; usually: s3:PutObject, \
             ec2:StartInstances, ec2:StopInstances, lambda:UpdateFunctionCode \
             (100 events since 2026-11-01)"
        )
    );
    // a replay gives the same id
    let again = detect("baseline-new-api-for-principal", &lines);
    assert_eq!(again[0].alert_id, a.alert_id);
}

#[test]
fn a_new_write_call_during_learning_is_quiet() {
    let mut lines: Vec<String> = usual_days().into_iter().take(60).collect();
    lines.push(record(
        3,
        59,
        "iam.amazonaws.com",
        "CreateUser",
        "198.51.100.20",
        "new",
    ));
    assert!(detect("baseline-new-api-for-principal", &lines).is_empty());
}

#[test]
fn a_key_used_from_a_new_network_is_one_alert_naming_the_usual_network() {
    let mut lines = usual_days();
    lines.push(record(
        11,
        0,
        "s3.amazonaws.com",
        "PutObject",
        "203.0.113.9",
        "far-1",
    ));
    lines.push(record(
        11,
        2,
        "s3.amazonaws.com",
        "PutObject",
        "203.0.113.10",
        "far-2",
    ));
    lines.push(record(
        11,
        3,
        "s3.amazonaws.com",
        "PutObject",
        "ec2.amazonaws.com",
        "svc",
    ));
    let alerts = detect("baseline-new-source-network-for-principal", &lines);
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    let e = &alerts[0].evidence;
    assert!(
        e.contains("came from network 203.0.113.0/24 for the first time; usually: 198.51.100.0/24 (100 events since 2026-11-01)"),
        "{e}"
    );
    assert!(
        e.starts_with(&format!("{ALICE} called PutObject from 203.0.113.9")),
        "{e}"
    );
}

const HOUR: i64 = 3_600_000_000;
/// 2026-11-01T00:00:00Z.
const DAY0: i64 = 1_793_491_200_000_000;

fn engine_for(yaml: &str) -> Engine {
    let spec: RuleSpec = serde_yaml::from_str(yaml).unwrap_or_else(|e| panic!("{e}"));
    let rule = Compiler::new()
        .and_then(|c| c.compile(spec, None))
        .unwrap_or_else(|e| panic!("{e}"));
    Engine::new(RuleSet::from_rules(vec![rule]))
}

/// Runs the events (in order) through the engine in batches of 1,024.
fn alerts_of(engine: &mut Engine, events: &[Event]) -> Vec<Alert> {
    let mut out = Vec::new();
    for chunk in events.chunks(1024) {
        out.extend(
            engine
                .process(&events_to_batch(chunk))
                .unwrap_or_else(|e| panic!("{e}")),
        );
    }
    out.extend(engine.flush().unwrap_or_else(|e| panic!("{e}")));
    out
}

fn get_object(time: i64, principal: &str, key: &str, id: String) -> Event {
    Event {
        event_time: time,
        event_id: id,
        event_source: "s3.amazonaws.com".into(),
        event_name: "GetObject".into(),
        read_only: Some(true),
        principal: principal.into(),
        principal_type: "AssumedRole".into(),
        account_id: Some("111122223333".into()),
        bucket: Some("payroll".into()),
        object_key: Some(key.into()),
        ..Default::default()
    }
}

const MASS_READ: &str = r#"
id: mass-s3-read
title: Principal read far more distinct objects than it usually does
severity: high
where: "event_name = 'GetObject'"
baseline:
  kind: rate
  by: [principal]
  measure: count_distinct(object_key)
  window: 1h
  learning: 2d
  min_history: 24
  factor: 10
  min_value: 200
dedup: {key: [principal], period: 1h}
"#;

const ROLE: &str = "arn:aws:iam::111122223333:role/etl";

/// Three days of the role reading 20 objects (of a working set of 50) in
/// each hour from 08:00 to 20:00.
fn usual_reads() -> Vec<Event> {
    let mut events = Vec::new();
    for day in 0..3 {
        for hour in 8..20 {
            let start = DAY0 + day * 86_400_000_000 + hour * HOUR;
            for i in 0..20 {
                let key = format!("reports/{}.csv", (hour + i) % 50);
                events.push(get_object(
                    start + i * 60_000_000,
                    ROLE,
                    &key,
                    format!("u-{day}-{hour}-{i}"),
                ));
            }
        }
    }
    events
}

#[test]
fn a_mass_read_alerts_once_when_it_crosses_naming_the_usual_volume() {
    let mut events = usual_reads();
    let mut engine = engine_for(MASS_READ);
    assert!(alerts_of(&mut engine, &events).is_empty());

    // day 4, 14:00: the usual volume at a usual hour is quiet
    let day4 = DAY0 + 3 * 86_400_000_000;
    let mut engine = engine_for(MASS_READ);
    for i in 0..25 {
        events.push(get_object(
            day4 + 14 * HOUR + i,
            ROLE,
            &format!("reports/{i}.csv"),
            format!("n-{i}"),
        ));
    }
    assert!(alerts_of(&mut engine, &events).is_empty());

    // 15:00: 2,000 distinct objects in a few minutes
    for i in 0..2_000 {
        events.push(get_object(
            day4 + 15 * HOUR + i * 100_000,
            ROLE,
            &format!("payroll/{i}.pdf"),
            format!("x-{i}"),
        ));
    }
    let mut engine = engine_for(MASS_READ);
    let alerts = alerts_of(&mut engine, &events);
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    let a = &alerts[0];
    assert_eq!(a.principal, ROLE);
    // the usual for 12:00-18:00 is now 25 (14:00's bin): the 251st distinct
    // object crosses max(200, 10 x 25)
    assert_eq!(a.event_ids, ["x-250"]);
    assert_eq!(
        a.evidence,
        format!(
            "{ROLE} had 251 distinct object_key in the 1h from 15:00 UTC on 2026-11-04; \
             usual for 12:00-18:00 UTC: up to 25 over 37 hours of history"
        )
    );
    // a replay gives the same id
    let mut engine = engine_for(MASS_READ);
    assert_eq!(alerts_of(&mut engine, &events)[0].alert_id, a.alert_id);
}

#[test]
fn a_mass_read_during_learning_is_quiet() {
    let mut events: Vec<Event> = usual_reads().into_iter().take(20 * 12).collect();
    for i in 0..2_000 {
        events.push(get_object(
            DAY0 + 21 * HOUR + i,
            ROLE,
            &format!("payroll/{i}.pdf"),
            format!("x-{i}"),
        ));
    }
    let mut engine = engine_for(MASS_READ);
    assert!(alerts_of(&mut engine, &events).is_empty());
}

const RARE_AGENT: &str = r#"
id: rare-user-agent
title: A user agent almost no one in the organisation uses
severity: medium
where: "source = 'cloudtrail'"
baseline:
  kind: rare
  of: user_agent_family
  by: [principal]
  below: 3
  learning: 1d
"#;

fn call(time: i64, principal: &str, agent: &str, id: String) -> Event {
    Event {
        event_time: time,
        event_id: id,
        event_source: "sts.amazonaws.com".into(),
        event_name: "GetCallerIdentity".into(),
        principal: principal.into(),
        principal_type: "IAMUser".into(),
        user_agent: Some(agent.into()),
        ..Default::default()
    }
}

#[test]
fn a_user_agent_shown_by_one_principal_alerts_and_one_shown_by_five_does_not() {
    let user = |i: usize| format!("arn:aws:iam::111122223333:user/u{i}");
    let mut events = Vec::new();
    // a day of learning: five users on boto3, one on aws-cli
    for i in 0..5 {
        events.push(call(
            DAY0 + i as i64,
            &user(i),
            "Boto3/1.34.0",
            format!("l-{i}"),
        ));
    }
    events.push(call(DAY0 + 10, &user(0), "aws-cli/2.15.0", "l-cli".into()));
    // after it: a sixth user on boto3 (shown by five), a user on curl (no
    // one), again, and a second user on aws-cli (two with this one)
    let after = DAY0 + 86_400_000_000;
    events.push(call(after, &user(5), "Boto3/1.35.1", "boto".into()));
    events.push(call(after + 1, &user(3), "curl/8.4.0", "curl-1".into()));
    events.push(call(after + 2, &user(3), "curl/8.4.0", "curl-2".into()));
    events.push(call(after + 3, &user(4), "aws-cli/2.16.0", "cli".into()));
    let mut engine = engine_for(RARE_AGENT);
    let alerts = alerts_of(&mut engine, &events);
    let ids: Vec<&str> = alerts.iter().map(|a| a.event_ids[0].as_str()).collect();
    assert_eq!(ids, ["curl-1", "cli"], "{alerts:?}");
    assert_eq!(
        alerts[0].evidence,
        format!(
            "{} used user agent curl, which no other principal in the organisation \
             has shown (first seen 2026-11-02)",
            user(3)
        )
    );
    assert!(
        alerts[1]
            .evidence
            .contains("aws-cli, which only 2 principals in the organisation have shown"),
        "{}",
        alerts[1].evidence
    );
}

#[test]
fn baselines_learnt_before_a_restart_are_restored_from_the_checkpoint() {
    use trailhound_detector::pipeline::{EndOfInput, StateConfig};
    let new_call = [
        record(
            11,
            0,
            "iam.amazonaws.com",
            "CreateUser",
            "203.0.113.9",
            "n-1",
        ),
        record(
            11,
            1,
            "iam.amazonaws.com",
            "CreateAccessKey",
            "203.0.113.9",
            "n-2",
        ),
    ];
    let mut all = usual_days();
    all.extend(new_call.iter().cloned());
    let (whole, whole_keys) = detect_all_with_keys(&[all]);
    let expected: Vec<String> = whole.iter().map(|a| a.alert_id.clone()).collect();
    assert!(expected.len() >= 2, "{expected:?}");

    let state = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let run_once = |lines: &[String], name: &str, end: EndOfInput| {
        let mut engine = Engine::new(RuleSet::builtin().unwrap_or_else(|e| panic!("{e}")));
        let memory = MemorySink::new();
        let mut sinks: Vec<Box<dyn AlertSink>> = vec![Box::new(memory.clone())];
        let config = PipelineConfig {
            dead_letter_path: None,
            state: Some(StateConfig::new(state.path())),
            end_of_input: end,
            ..PipelineConfig::default()
        };
        let input = Input::Bytes {
            name: name.into(),
            bytes: lines.join("\n").into_bytes(),
        };
        let summary = run(vec![input], &mut engine, &mut sinks, &config, None)
            .unwrap_or_else(|e| panic!("{e}"));
        (memory.alerts(), summary, engine.baseline_stats().principals)
    };
    let (before, _, learnt) = run_once(&usual_days(), "usual.jsonl", EndOfInput::Keep);
    assert!(
        !before
            .iter()
            .any(|a| a.tags.iter().any(|t| t == "baseline"))
    );
    assert!(learnt > 0);
    let (after, summary, restored) = run_once(&new_call, "new.jsonl", EndOfInput::Flush);
    assert!(summary.rules_restored > 0);
    assert!(restored >= learnt);
    assert_eq!(
        restored, whole_keys,
        "every learnt key came back: the resumed run holds what one uninterrupted run holds"
    );
    assert!(
        after
            .iter()
            .any(|a| a.rule_id == "baseline-new-api-for-principal")
    );
    let got: Vec<String> = before
        .iter()
        .chain(&after)
        .map(|a| a.alert_id.clone())
        .collect();
    assert_eq!(got, expected);
}

/// Every alert of the built-in pack over the given inputs, one reader.
/// Runs the built-in pack over the inputs in one go: the alerts and the
/// baseline keys held at the end.
fn detect_all_with_keys(inputs: &[Vec<String>]) -> (Vec<Alert>, usize) {
    let mut engine = Engine::new(RuleSet::builtin().unwrap_or_else(|e| panic!("{e}")));
    let memory = MemorySink::new();
    let mut sinks: Vec<Box<dyn AlertSink>> = vec![Box::new(memory.clone())];
    let config = PipelineConfig {
        dead_letter_path: None,
        readers: 1,
        ..PipelineConfig::default()
    };
    let inputs = inputs
        .iter()
        .enumerate()
        .map(|(i, lines)| Input::Bytes {
            name: format!("part-{i}.jsonl"),
            bytes: lines.join("\n").into_bytes(),
        })
        .collect();
    run(inputs, &mut engine, &mut sinks, &config, None).unwrap_or_else(|e| panic!("{e}"));
    (memory.alerts(), engine.baseline_stats().principals)
}
