//! Automated response end to end: the real binary detecting on a CloudTrail
//! file, in shadow mode by default and in enforce mode against moto's IAM on
//! loopback, then `trailhound release`. What moto reports through the IAM
//! API is the evidence; a policy that was on the user before survives.

use crate::common;

use std::path::Path;
use std::process::{Command, Output};

use trailhound_respond::AwsIam;
use trailhound_respond::moto::MotoServer;

const ACCOUNT: &str = "123456789012";
const KEEP: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"*"}]}"#;

/// Mallory stops the trail (the pack's `aws-cloudtrail-logging-stopped`,
/// `respond: [quarantine-principal, revoke-sessions]`), with a benign call beside it.
fn write_trail(dir: &Path) -> std::path::PathBuf {
    let record = |id: &str, name: &str, source: &str| {
        serde_json::json!({
            "eventVersion": "1.08",
            "userIdentity": {
                "type": "IAMUser",
                "principalId": "AIDAEXAMPLEMALLORY",
                "arn": format!("arn:aws:iam::{ACCOUNT}:user/mallory"),
                "accountId": ACCOUNT,
                "accessKeyId": "AKIAEXAMPLEMALLORY1",
                "userName": "mallory"
            },
            "eventTime": "2026-11-20T10:00:00Z",
            "eventSource": source,
            "eventName": name,
            "awsRegion": "us-east-1",
            "sourceIPAddress": "203.0.113.7",
            "userAgent": "aws-cli/2.15.0",
            "requestParameters": {"name": "main-trail"},
            "responseElements": null,
            "eventID": id,
            "readOnly": false,
            "eventType": "AwsApiCall",
            "recipientAccountId": ACCOUNT
        })
    };
    let file = serde_json::json!({"Records": [
        record("e-1", "DescribeTrails", "cloudtrail.amazonaws.com"),
        record("e-2", "StopLogging", "cloudtrail.amazonaws.com"),
    ]});
    let path = dir.join("trail.json");
    std::fs::write(&path, file.to_string()).unwrap();
    path
}

/// The binary with AWS settings isolated from the machine's: test
/// credentials, no profile files, no instance metadata.
fn run(args: &[&str], cwd: &Path) -> Output {
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
        .env_remove("TRAILHOUND_CONFIG")
        .output()
        .unwrap_or_else(|e| panic!("cannot run trailhound: {e}"))
}

fn user_policies(iam: &AwsIam, user: &str) -> Vec<String> {
    let mut names = iam
        .block_on(iam.client().list_user_policies().user_name(user).send())
        .expect("list user policies")
        .policy_names;
    names.sort();
    names
}

#[test]
fn shadow_is_the_default_and_records_what_would_be_done_in_the_lake() {
    let dir = tempfile::tempdir().unwrap();
    let trail = write_trail(dir.path());
    let out = run(
        &[
            "detect",
            trail.to_str().unwrap(),
            "--lake",
            "lake",
            "--quiet",
        ],
        dir.path(),
    );
    assert!(out.status.success(), "{}", common::text(&out.stderr));
    let q = run(
        &[
            "sql",
            "--lake",
            "lake",
            "--format",
            "csv",
            "SELECT kind, mode, outcome, principal FROM actions ORDER BY kind",
        ],
        dir.path(),
    );
    let csv = common::text(&q.stdout);
    assert!(q.status.success(), "{}", common::text(&q.stderr));
    let user = format!("arn:aws:iam::{ACCOUNT}:user/mallory");
    assert_eq!(
        csv.lines().collect::<Vec<_>>(),
        vec![
            "kind,mode,outcome,principal".to_string(),
            format!("quarantine-principal,shadow,done,{user}"),
            format!("revoke-sessions,shadow,done,{user}"),
        ]
    );
    // Shadow leaves nothing behind: no ledger, no lock file.
    assert!(!dir.path().join("actions.json").exists());
    assert!(!dir.path().join("actions.json.lock").exists());
}

#[test]
fn enforce_quarantines_in_moto_and_release_removes_exactly_that() {
    let moto = MotoServer::start().unwrap_or_else(|e| panic!("{e}"));
    let iam = AwsIam::from_conf(moto.iam_conf()).expect("client");
    let c = iam.client();
    iam.block_on(c.create_user().user_name("mallory").send())
        .expect("create user");
    iam.block_on(
        c.put_user_policy()
            .user_name("mallory")
            .policy_name("keep-me")
            .policy_document(KEEP)
            .send(),
    )
    .expect("pre-existing policy");

    let dir = tempfile::tempdir().unwrap();
    let trail = write_trail(dir.path());
    let config = dir.path().join("trailhound.yaml");
    std::fs::write(
        &config,
        format!(
            "response:\n  mode: enforce\n  ttl: 0s\n  ledger: {}\n  aws:\n    region: us-east-1\n    endpoint_url: {}\n",
            dir.path().join("ledger.json").display(),
            moto.url
        ),
    )
    .unwrap();
    let cfg = config.to_str().unwrap();
    let out = run(
        &[
            "detect",
            trail.to_str().unwrap(),
            "--config",
            cfg,
            "--state",
            "state",
            "--lake",
            "lake",
        ],
        dir.path(),
    );
    let stderr = common::text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("quarantine-principal enforce done"),
        "{stderr}"
    );
    assert!(stderr.contains("revoke-sessions enforce done"), "{stderr}");

    let names = user_policies(&iam, "mallory");
    assert_eq!(names.len(), 3, "{names:?}");
    assert!(names.contains(&"keep-me".to_string()));
    assert!(
        names
            .iter()
            .any(|n| n.starts_with("trailhound-quarantine-"))
    );
    assert!(
        names
            .iter()
            .any(|n| n.starts_with("trailhound-revoke-sessions-"))
    );

    // Running again over the same input (a replay) acts no more.
    let again = run(
        &[
            "detect",
            trail.to_str().unwrap(),
            "--config",
            cfg,
            "--lake",
            "lake2",
        ],
        dir.path(),
    );
    let again_err = common::text(&again.stderr);
    assert!(again.status.success(), "{again_err}");
    assert!(
        again_err.contains("quarantine-principal enforce skipped"),
        "{again_err}"
    );
    assert_eq!(user_policies(&iam, "mallory").len(), 3);
    let out = run(
        &[
            "release",
            "--principal",
            &format!("arn:aws:iam::{ACCOUNT}:user/mallory"),
            "--config",
            cfg,
            "--lake",
            "lake",
        ],
        dir.path(),
    );
    assert!(out.status.success(), "{}", common::text(&out.stderr));
    assert_eq!(common::text(&out.stdout).lines().count(), 2);
    assert_eq!(user_policies(&iam, "mallory"), vec!["keep-me".to_string()]);

    let q = run(
        &[
            "sql",
            "--lake",
            "lake",
            "--format",
            "csv",
            "SELECT kind, mode, outcome FROM actions ORDER BY outcome, kind",
        ],
        dir.path(),
    );
    assert_eq!(
        common::text(&q.stdout).lines().collect::<Vec<_>>(),
        vec![
            "kind,mode,outcome",
            "quarantine-principal,enforce,done",
            "revoke-sessions,enforce,done",
            "quarantine-principal,enforce,released",
            "revoke-sessions,enforce,released",
        ]
    );
}
