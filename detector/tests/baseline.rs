//! Baseline rules end to end through the embedded pipeline: CloudTrail JSON
//! lines in, alerts out.

use trailhound_detector::{Engine, Input, PipelineConfig, run};
use trailhound_rules::RuleSet;
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
