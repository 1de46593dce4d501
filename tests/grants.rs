//! Just-in-time grants end to end, through the binary, on a generated
//! organisation with grants (`--attacks grants`): five people get the
//! `jit-admin` role for an hour from a broker's grants JSON lines and use it
//! inside their grants; one person's role session keeps calling for 25
//! minutes after the grant ended.
//!
//! - In the default shadow mode: the first late call raises
//!   `grant-expired-role-still-used` on the very row it is (so within the
//!   batch it arrives in), nothing else about grants alarms, and every grant
//!   is closed in shadow as it ends.
//! - In enforce mode against moto's IAM on loopback: afterwards the role
//!   carries, for each grant, the token-issue-time deny scoped to that
//!   person's sessions issued before the grant ended; the late call and the
//!   closure of the same grant made one action.

use crate::common;

use std::path::Path;
use std::process::{Command, Output};

use trailhound_core::Alert;
use trailhound_ingest::generate::{GenerateConfig, Label, Scenario, generate_to_dir};
use trailhound_respond::AwsIam;
use trailhound_respond::moto::MotoServer;

const ROLE: &str = "jit-admin";

/// Writes the organisation into `dir/org`; returns its one label.
fn organisation(dir: &Path) -> Label {
    let summary = generate_to_dir(
        &GenerateConfig {
            scenarios: Scenario::grants(),
            ..GenerateConfig::default()
        },
        &dir.join("org"),
    )
    .unwrap_or_else(|e| panic!("cannot generate: {e}"));
    assert_eq!(summary.labels.len(), 1);
    summary.labels[0].clone()
}

/// The binary with AWS settings isolated from the machine's.
fn run(args: &[&str], cwd: &Path) -> Output {
    common::run_within(
        Command::new(env!("CARGO_BIN_EXE_trailhound"))
            .args(args)
            .current_dir(cwd)
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("AWS_CONFIG_FILE", cwd.join("no-aws-config"))
            .env(
                "AWS_SHARED_CREDENTIALS_FILE",
                cwd.join("no-aws-credentials"),
            )
            .env_remove("AWS_PROFILE")
            .env_remove("TRAILHOUND_CONFIG"),
        std::time::Duration::from_secs(300),
    )
}

fn alerts(out: &Output) -> Vec<Alert> {
    common::text(&out.stdout)
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

fn detect(dir: &Path, extra: &[&str]) -> (Vec<Alert>, String) {
    let mut args = vec![
        "detect",
        "org",
        "--labels",
        "org/labels.json",
        "--format",
        "json",
        "--lake",
        "lake",
    ];
    args.extend_from_slice(extra);
    let out = run(&args, dir);
    let stderr = common::text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    (alerts(&out), stderr)
}

/// What the first run must show, whatever the mode.
fn check_alerts(alerts: &[Alert], stderr: &str, label: &Label) {
    let late: Vec<&Alert> = alerts
        .iter()
        .filter(|a| a.rule_id == "grant-expired-role-still-used")
        .collect();
    assert_eq!(late.len(), 1, "{late:#?}");
    let a = late[0];
    assert_eq!(a.principal, label.principal);
    // Raised on the first late call itself (rows of a batch come in file
    // order, so it need not be the alert's first id).
    let first = label.event_ids.first().expect("labelled calls");
    assert!(a.event_ids.contains(first), "{a:#?}");
    assert_eq!(
        Some(a.first_event_time),
        trailhound_core::time::parse_rfc3339_micros(&label.start),
        "{a:#?}"
    );
    let closes = a
        .closes
        .as_ref()
        .expect("the late call carries its closure");
    assert_eq!(closes.role_sessions.len(), 1);
    assert!(
        closes.role_sessions[0]
            .role_arn
            .ends_with(":role/jit-admin")
    );
    // Nothing else about grants alarms: use inside grants is quiet.
    let other: Vec<&str> = alerts
        .iter()
        .filter(|a| a.tags.iter().any(|t| t == "grant"))
        .map(|a| a.rule_id.as_str())
        .filter(|r| {
            !matches!(
                *r,
                "grant-expired-role-still-used" | "grant-ended-close-sessions"
            )
        })
        .collect();
    assert!(other.is_empty(), "{other:?}");
    let closures = alerts
        .iter()
        .filter(|a| a.rule_id == "grant-ended-close-sessions")
        .count();
    assert_eq!(closures, 5, "one closure per grant");
    assert!(
        stderr.contains("1 of 1 scenarios detected, 0 alert(s) on the benign background"),
        "{stderr}"
    );
    assert!(stderr.contains("5 grant closure(s) recorded"), "{stderr}");
}

#[test]
fn a_session_outliving_its_grant_alerts_on_its_first_late_call_and_grants_close_in_shadow() {
    let dir = tempfile::tempdir().unwrap();
    let label = organisation(dir.path());
    let (alerts, stderr) = detect(dir.path(), &[]);
    check_alerts(&alerts, &stderr, &label);
    // Shadow: six decisions (five closures, the late call), nothing done.
    assert!(
        stderr.contains("6  revoke-sessions shadow done"),
        "{stderr}"
    );
    assert!(!dir.path().join("actions.json").exists());
}

fn role_policies(iam: &AwsIam) -> Vec<String> {
    let mut names = iam
        .block_on(iam.client().list_role_policies().role_name(ROLE).send())
        .expect("list role policies")
        .policy_names;
    names.sort();
    names
}

/// A policy document as IAM returns it (URL-encoded JSON).
fn document(iam: &AwsIam, policy: &str) -> serde_json::Value {
    let doc = iam
        .block_on(
            iam.client()
                .get_role_policy()
                .role_name(ROLE)
                .policy_name(policy)
                .send(),
        )
        .expect("get role policy")
        .policy_document;
    if let Ok(v) = serde_json::from_str(&doc) {
        return v;
    }
    let mut out = Vec::new();
    let b = doc.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match (b[i], doc.get(i + 1..i + 3)) {
            (b'%', Some(hex)) if u8::from_str_radix(hex, 16).is_ok() => {
                out.push(u8::from_str_radix(hex, 16).unwrap_or_default());
                i += 3;
            }
            (b'+', _) => {
                out.push(b' ');
                i += 1;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    serde_json::from_slice(&out).unwrap_or_else(|e| panic!("{e}: {doc}"))
}

#[test]
fn in_enforce_mode_the_role_carries_the_token_issue_time_deny_of_the_outlived_grant() {
    let moto = MotoServer::start().unwrap_or_else(|e| panic!("{e}"));
    let iam = AwsIam::from_conf(moto.iam_conf()).expect("client");
    let trust = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::123456789012:root"},"Action":"sts:AssumeRole"}]}"#;
    iam.block_on(
        iam.client()
            .create_role()
            .role_name(ROLE)
            .assume_role_policy_document(trust)
            .send(),
    )
    .expect("create role");

    let dir = tempfile::tempdir().unwrap();
    let label = organisation(dir.path());
    let config = dir.path().join("trailhound.yaml");
    std::fs::write(
        &config,
        format!(
            "response:\n  mode: enforce\n  ledger: {}\n  aws:\n    region: us-east-1\n    endpoint_url: {}\n",
            dir.path().join("ledger.json").display(),
            moto.url
        ),
    )
    .unwrap();
    let (alerts, stderr) = detect(dir.path(), &["--config", config.to_str().unwrap()]);
    check_alerts(&alerts, &stderr, &label);
    // Five grants closed for real; the late call's action was the same as
    // its grant's closure.
    assert!(
        stderr.contains("5  revoke-sessions enforce done"),
        "{stderr}"
    );
    assert!(
        stderr.contains("1  revoke-sessions enforce skipped"),
        "{stderr}"
    );

    let names = role_policies(&iam);
    assert_eq!(names.len(), 5, "{names:?}");
    assert!(
        names
            .iter()
            .all(|n| n.starts_with("trailhound-revoke-grant-"))
    );
    // The outlived grant's deny: the victim's sessions issued before its end.
    let grants =
        std::fs::read_to_string(dir.path().join("org/grants/sym/grants-2026-11-02.jsonl")).unwrap();
    let last: serde_json::Value =
        serde_json::from_str(grants.lines().last().unwrap_or_default()).unwrap();
    let (person, end) = (
        last["principal"].as_str().unwrap_or_default(),
        last["end"].as_str().unwrap_or_default(),
    );
    let late = alerts
        .iter()
        .find(|a| a.rule_id == "grant-expired-role-still-used")
        .unwrap();
    assert_eq!(
        late.closes.as_ref().map(|c| c.person.as_str()),
        Some(person)
    );
    let denies: Vec<serde_json::Value> = names
        .iter()
        .map(|n| document(&iam, n))
        .filter(|d| {
            d["Statement"][0]["Condition"]["StringLike"]["aws:userid"] == format!("*:{person}")
        })
        .collect();
    assert_eq!(denies.len(), 1, "{denies:#?}");
    let st = &denies[0]["Statement"][0];
    assert_eq!(
        (st["Effect"].as_str(), st["Action"].as_str()),
        (Some("Deny"), Some("*"))
    );
    assert_eq!(st["Condition"]["DateLessThan"]["aws:TokenIssueTime"], end);
}

/// A cold start: the grants were read by an earlier run into the lake; a
/// new run without a checkpoint, over the CloudTrail files only, rebuilds
/// the grant table from the lake and still knows whose session outlived
/// its grant. (Without the rebuild it would know no grant at all: the role
/// would not even count as managed, and nothing would alert.)
#[test]
fn a_cold_start_rebuilds_the_grant_table_from_the_lake() {
    let dir = tempfile::tempdir().unwrap();
    let label = organisation(dir.path());
    let first = run(
        &["detect", "org/grants", "--lake", "lake", "--quiet"],
        dir.path(),
    );
    assert!(first.status.success(), "{}", common::text(&first.stderr));
    let out = run(
        &[
            "detect",
            "org/AWSLogs",
            "--labels",
            "org/labels.json",
            "--format",
            "json",
            "--lake",
            "lake",
        ],
        dir.path(),
    );
    let stderr = common::text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("grants: 5 rebuilt from the lake"),
        "{stderr}"
    );
    let alerts = alerts(&out);
    let rules: Vec<&str> = alerts.iter().map(|a| a.rule_id.as_str()).collect();
    assert_eq!(
        rules
            .iter()
            .filter(|r| **r == "grant-expired-role-still-used")
            .count(),
        1,
        "{rules:?}"
    );
    assert!(
        !rules.contains(&"grant-privileged-call-without-grant"),
        "{rules:?}"
    );
    // The grants that had ended when the lake was written count as closed;
    // the last one ends after it and is closed by this run.
    assert_eq!(
        rules
            .iter()
            .filter(|r| **r == "grant-ended-close-sessions")
            .count(),
        1,
        "{rules:?}"
    );
    let late = alerts
        .iter()
        .find(|a| a.rule_id == "grant-expired-role-still-used")
        .unwrap();
    assert_eq!(late.principal, label.principal);
}
