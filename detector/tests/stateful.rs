//! Window and sequence rules end to end through the embedded pipeline, with
//! in-memory CloudTrail JSON lines.

use trailhound_core::Alert;
use trailhound_detector::{Engine, Input, PipelineConfig, run};
use trailhound_rules::RuleSet;
use trailhound_rules::Suppress;
use trailhound_rules::rule::SuppressSpec;
use trailhound_sinks::{AlertSink, MemorySink};

const MALLORY: &str = "arn:aws:iam::111122223333:user/mallory";

fn get_object(i: usize, second: usize, user: &str) -> String {
    let (m, s) = (second / 60, second % 60);
    format!(
        r#"{{"eventTime":"2026-11-02T10:{m:02}:{s:02}Z","eventSource":"s3.amazonaws.com","eventName":"GetObject","eventCategory":"Data","eventID":"g{i}","awsRegion":"us-east-1","sourceIPAddress":"203.0.113.50","userIdentity":{{"type":"IAMUser","arn":"arn:aws:iam::111122223333:user/{user}","userName":"{user}","accountId":"111122223333"}},"requestParameters":{{"bucketName":"payroll","key":"2026/{i:04}.csv"}},"additionalEventData":{{"bytesTransferredOut":1000}}}}"#
    )
}

fn iam(id: &str, minute: u32, name: &str, request: &str) -> String {
    format!(
        r#"{{"eventTime":"2026-11-02T11:{minute:02}:00Z","eventSource":"iam.amazonaws.com","eventName":"{name}","eventID":"{id}","awsRegion":"us-east-1","sourceIPAddress":"203.0.113.50","userIdentity":{{"type":"IAMUser","arn":"{MALLORY}","userName":"mallory","accountId":"111122223333"}},"requestParameters":{request}}}"#
    )
}

fn detect(lines: Vec<String>, engine: Engine) -> Vec<Alert> {
    let mut engine = engine;
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
    run(vec![input], &mut engine, &mut sinks, &config, None).unwrap();
    memory.alerts()
}

fn builtin() -> Engine {
    Engine::new(RuleSet::builtin().unwrap_or_else(|e| panic!("{e}")))
}

fn of<'a>(alerts: &'a [Alert], rule: &str) -> Vec<&'a Alert> {
    alerts.iter().filter(|a| a.rule_id == rule).collect()
}

#[test]
fn a_mass_download_alerts_once_with_its_aggregates() {
    let lines: Vec<String> = (0..120).map(|i| get_object(i, i * 4, "mallory")).collect();
    let alerts = detect(lines, builtin());
    let mass = of(&alerts, "aws-s3-mass-download");
    assert_eq!(mass.len(), 1, "{alerts:#?}");
    let a = mass[0];
    assert_eq!(a.principal, MALLORY);
    assert_eq!(a.account_id.as_deref(), Some("111122223333"));
    assert!(
        a.evidence.contains("count(DISTINCT object_key)="),
        "{}",
        a.evidence
    );
    assert!(a.evidence.contains("sum(bytes_out)="), "{}", a.evidence);
    assert!(a.evidence.contains("in 10m ending"), "{}", a.evidence);
    assert!(a.event_count >= 100, "{}", a.event_count);
    assert_eq!(a.event_ids.len(), 20);
}

#[test]
fn a_slow_download_does_not_alert() {
    // One object every 10 s: 60 per ten minutes at most.
    let lines: Vec<String> = (0..300)
        .map(|i| get_object(i, i * 10 % 3600, "mallory"))
        .take(300)
        .collect();
    let alerts = detect(lines, builtin());
    assert!(of(&alerts, "aws-s3-mass-download").is_empty());
}

#[test]
fn a_user_created_then_made_admin_alerts_with_its_steps_in_order() {
    let lines = vec![
        iam("c1", 0, "CreateUser", r#"{"userName":"backup-svc"}"#),
        iam("x1", 2, "ListUsers", "null"),
        iam(
            "a1",
            4,
            "AttachUserPolicy",
            r#"{"userName":"backup-svc","policyArn":"arn:aws:iam::aws:policy/AdministratorAccess"}"#,
        ),
    ];
    let alerts = detect(lines.clone(), builtin());
    let seq = of(&alerts, "aws-iam-user-created-then-admin-attached");
    assert_eq!(seq.len(), 1, "{alerts:#?}");
    assert_eq!(seq[0].event_ids, ["c1", "a1"]);
    assert!(
        seq[0]
            .evidence
            .contains("user created at 2026-11-02T11:00:00Z (c1)"),
        "{}",
        seq[0].evidence
    );
    assert!(
        seq[0].evidence.contains("created user backup-svc"),
        "{}",
        seq[0].evidence
    );
    // The single-event rule still fires on the attach on its own.
    assert_eq!(of(&alerts, "aws-iam-admin-policy-attached").len(), 1);
    // Same input, same ids.
    let again = detect(lines, builtin());
    assert_eq!(
        of(&again, "aws-iam-user-created-then-admin-attached")[0].alert_id,
        seq[0].alert_id
    );
}

#[test]
fn the_global_suppress_list_silences_stateful_rules_too() {
    let suppress = Suppress::from_spec(&SuppressSpec {
        principals: vec!["arn:aws:iam::*:user/mall*".into()],
        ..SuppressSpec::default()
    })
    .unwrap();
    let mut lines: Vec<String> = (0..120).map(|i| get_object(i, i * 4, "mallory")).collect();
    lines.push(iam("c1", 0, "CreateUser", r#"{"userName":"x"}"#));
    lines.push(iam(
        "a1",
        1,
        "AttachUserPolicy",
        r#"{"userName":"x","policyArn":"arn:aws:iam::aws:policy/AdministratorAccess"}"#,
    ));
    let alerts = detect(lines, builtin().with_suppress(suppress));
    assert!(alerts.is_empty(), "{alerts:#?}");
}
