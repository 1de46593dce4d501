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

fn session_command(seq: u32, second: u32, user: &str, command: &str) -> String {
    format!(
        r#"{{"trailhound":"session/v1","type":"command","time":"2026-11-02T10:00:{second:02}Z","session_id":"g-7","seq":{seq},"user":"{user}","gateway":"bastion","target":"bastion-1","command":"{command}"}}"#
    )
}

fn linked_role_call(id: &str, minute: u32, name: &str, login: &str) -> String {
    format!(
        r#"{{"eventTime":"2026-11-02T10:{minute:02}:30Z","eventSource":"iam.amazonaws.com","eventName":"{name}","eventID":"{id}","awsRegion":"us-east-1","sourceIPAddress":"10.0.0.5","readOnly":false,"userIdentity":{{"type":"AssumedRole","arn":"arn:aws:sts::111122223333:assumed-role/gateway-admin/{login}","accountId":"111122223333","sessionContext":{{"sourceIdentity":"{login}","sessionIssuer":{{"type":"Role","arn":"arn:aws:iam::111122223333:role/gateway-admin"}}}}}}}}"#
    )
}

#[test]
fn a_gateway_session_then_iam_through_the_linked_role_is_one_alert_showing_commands_and_calls() {
    let session = [
        session_command(1, 5, "alice", "aws sts get-caller-identity"),
        session_command(2, 20, "alice", "aws iam create-user --user-name backdoor"),
        session_command(
            3,
            40,
            "alice",
            "aws iam attach-user-policy --user-name backdoor",
        ),
    ]
    .join("\n");
    let trail = [
        linked_role_call("c1", 0, "CreateUser", "alice"),
        linked_role_call("c2", 1, "AttachUserPolicy", "alice"),
        linked_role_call("c3", 2, "CreateAccessKey", "alice"),
        // The same role used by someone else joins nothing.
        linked_role_call("c4", 2, "CreateUser", "bob"),
    ]
    .join("\n");
    let mut engine = builtin();
    let memory = MemorySink::new();
    let mut sinks: Vec<Box<dyn AlertSink>> = vec![Box::new(memory.clone())];
    let config = PipelineConfig {
        dead_letter_path: None,
        readers: 1,
        ..PipelineConfig::default()
    };
    let inputs = vec![
        Input::Bytes {
            name: "gateway.jsonl".into(),
            bytes: session.into_bytes(),
        },
        Input::Bytes {
            name: "trail.jsonl".into(),
            bytes: trail.into_bytes(),
        },
    ];
    run(inputs, &mut engine, &mut sinks, &config, None).unwrap_or_else(|e| panic!("{e}"));
    let alerts = memory.alerts();
    let found = of(&alerts, "gateway-session-then-iam-via-linked-role");
    assert_eq!(found.len(), 1, "{alerts:#?}");
    let a = found[0];
    eprintln!("{}", a.evidence);
    for shown in [
        "`aws sts get-caller-identity`",
        "`aws iam create-user --user-name backdoor`",
        "`aws iam attach-user-policy --user-name backdoor`",
        "iam:CreateUser",
        "iam:AttachUserPolicy",
        "iam:CreateAccessKey",
        "gateway:alice",
        "session g-7 on bastion-1",
    ] {
        assert!(
            a.evidence.contains(shown),
            "{shown} missing from: {}",
            a.evidence
        );
    }
    assert_eq!(a.principal, "arn:aws:iam::111122223333:role/gateway-admin");
    assert!(
        a.event_ids.contains(&"g-7:2".to_string()),
        "{:?}",
        a.event_ids
    );
    assert!(a.event_ids.contains(&"c1".to_string()));
    assert!(!a.event_ids.contains(&"c4".to_string()));
    assert_eq!(a.event_count, 6);
}

fn linked_role_stop_logging(id: &str, second: u32, role: &str, login: &str) -> String {
    format!(
        r#"{{"eventTime":"2026-11-02T10:00:{second:02}Z","eventSource":"cloudtrail.amazonaws.com","eventName":"StopLogging","eventID":"{id}","awsRegion":"us-east-1","sourceIPAddress":"10.0.0.5","readOnly":false,"requestParameters":{{"name":"main"}},"userIdentity":{{"type":"AssumedRole","arn":"arn:aws:sts::111122223333:assumed-role/{role}/{login}","accountId":"111122223333","sessionContext":{{"sourceIdentity":"{login}","sessionIssuer":{{"type":"Role","arn":"arn:aws:iam::111122223333:role/{role}"}}}}}}}}"#
    )
}

#[test]
fn alerts_on_either_side_of_a_gateway_link_carry_the_other_side() {
    // The gateway log is read whole before the trail (a day-long log
    // replayed): later commands must not push out the ones before the call.
    let mut before = vec![
        session_command(1, 5, "alice", "aws sts get-caller-identity"),
        session_command(2, 20, "alice", "aws cloudtrail stop-logging --name main"),
    ];
    before.extend((0..20).map(|i| session_command(10 + i, 35 + i, "alice", "ls -la")));
    let before = before.join("\n");
    let trail = [
        linked_role_stop_logging("s1", 30, "gateway-ops", "alice"),
        // A login with no gateway activity: nothing to link.
        linked_role_stop_logging("s2", 31, "break-glass", "bob"),
    ]
    .join("\n");
    let after = session_command(3, 58, "alice", "history -c");
    let mut engine = builtin();
    let memory = MemorySink::new();
    let mut sinks: Vec<Box<dyn AlertSink>> = vec![Box::new(memory.clone())];
    let config = PipelineConfig {
        dead_letter_path: None,
        readers: 1,
        ..PipelineConfig::default()
    };
    let inputs = [
        ("before.jsonl", before),
        ("trail.jsonl", trail),
        ("after.jsonl", after),
    ]
    .into_iter()
    .map(|(name, text)| Input::Bytes {
        name: name.into(),
        bytes: text.into_bytes(),
    })
    .collect();
    run(inputs, &mut engine, &mut sinks, &config, None).unwrap_or_else(|e| panic!("{e}"));
    let alerts = memory.alerts();

    let stopped = of(&alerts, "aws-cloudtrail-logging-stopped");
    let alice = stopped
        .iter()
        .find(|a| a.event_ids.iter().any(|id| id == "s1"))
        .unwrap_or_else(|| panic!("{alerts:#?}"));
    for shown in [
        "gateway user alice typed before this",
        "bastion-1 (g-7): aws cloudtrail stop-logging --name main",
        "bastion-1 (g-7): aws sts get-caller-identity",
    ] {
        assert!(
            alice.evidence.contains(shown),
            "{shown} missing from: {}",
            alice.evidence
        );
    }
    let bob = stopped
        .iter()
        .find(|a| a.event_ids.iter().any(|id| id == "s2"))
        .unwrap_or_else(|| panic!("{alerts:#?}"));
    assert!(
        !bob.evidence.contains("typed before this"),
        "{}",
        bob.evidence
    );

    let wiped = of(&alerts, "session-history-wiped");
    assert_eq!(wiped.len(), 1, "{alerts:#?}");
    for shown in [
        "AWS calls through alice's linked principal",
        "arn:aws:iam::111122223333:role/gateway-ops cloudtrail:StopLogging",
    ] {
        assert!(
            wiped[0].evidence.contains(shown),
            "{shown} missing from: {}",
            wiped[0].evidence
        );
    }
    assert!(!wiped[0].evidence.contains("bob"), "{}", wiped[0].evidence);
}
