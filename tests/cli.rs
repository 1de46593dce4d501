//! The `trailhound` command end to end: the real binary on real inputs.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common;
use common::{text, trailhound};

fn shared_data() -> Option<PathBuf> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/cloudtrail");
    if p.is_dir() {
        Some(p)
    } else {
        eprintln!(
            "SKIPPED: {} is absent (the shared third-party recordings)",
            p.display()
        );
        None
    }
}

#[test]
fn demo_detects_every_injected_attack_and_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let out = trailhound(&["detect", "--demo"], dir.path());
    let stdout = text(&out.stdout);
    assert!(
        out.status.success(),
        "demo failed:\n{stdout}\n{}",
        text(&out.stderr)
    );
    assert!(!stdout.contains("MISSED"), "{stdout}");
    assert!(!stdout.contains("FALSE POSITIVE"), "{stdout}");
    assert!(
        stdout.contains("12 of 12 scenarios detected, 0 alert(s) on the benign background"),
        "{stdout}"
    );
}

#[test]
fn detect_with_labels_scores_the_run_and_fails_on_a_missed_scenario() {
    let dir = tempfile::tempdir().unwrap();
    let out = trailhound(&["generate", "--out", "org"], dir.path());
    assert!(out.status.success(), "{}", text(&out.stderr));
    let detect = |labels: &str| {
        trailhound(
            &[
                "detect", "org", "--labels", labels, "--format", "json", "--quiet",
            ],
            dir.path(),
        )
    };
    let out = detect("org/labels.json");
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("12 of 12 scenarios detected, 0 alert(s) on the benign background"),
        "{stderr}"
    );
    assert!(stderr.contains("  detected  stop-logging "), "{stderr}");

    // The same run against labels expecting a rule that never fires there.
    let mut labels: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("org/labels.json")).unwrap())
            .unwrap();
    labels[0]["rule_id"] = "aws-kms-key-scheduled-deletion".into();
    std::fs::write(dir.path().join("wrong.json"), labels.to_string()).unwrap();
    let out = detect("wrong.json");
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("MISSED"), "{stderr}");
    assert!(stderr.contains("11 of 12 scenarios detected"), "{stderr}");

    // A file that is not a labels.json is refused before anything runs.
    std::fs::write(dir.path().join("bad.json"), "{\"not\": \"labels\"}").unwrap();
    let out = detect("bad.json");
    let stderr = text(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("not a generator labels.json"), "{stderr}");
}

#[test]
fn shared_recordings_parse_cleanly_and_most_stratus_techniques_alert() {
    let Some(data) = shared_data() else { return };
    let dir = tempfile::tempdir().unwrap();
    let out = trailhound(
        &["detect", data.to_str().unwrap(), "--format", "json"],
        dir.path(),
    );
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("events read:   413 (cloudtrail 413)"),
        "{stderr}"
    );
    assert!(stderr.contains("dead letters:  0"), "{stderr}");
    assert!(!dir.path().join("trailhound.deadletter.jsonl").exists());

    // Which technique file each event id came from.
    let mut file_of: HashMap<String, String> = HashMap::new();
    let stratus = data.join("stratus-red-team");
    for entry in std::fs::read_dir(&stratus).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|x| x != "json") {
            continue;
        }
        let records: Vec<serde_json::Value> =
            serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        for r in records {
            if let Some(id) = r["eventID"].as_str() {
                file_of.insert(id.to_string(), name.clone());
            }
        }
    }
    let mut alerted = BTreeSet::new();
    for line in text(&out.stdout).lines() {
        let alert: serde_json::Value = serde_json::from_str(line).unwrap();
        for id in alert["event_ids"].as_array().unwrap() {
            if let Some(f) = id.as_str().and_then(|id| file_of.get(id)) {
                alerted.insert(f.clone());
            }
        }
    }
    eprintln!("{} technique files alerted: {alerted:?}", alerted.len());
    assert!(
        alerted.len() >= 12,
        "only {} of 35 technique files alerted: {alerted:?}",
        alerted.len()
    );
}

#[test]
fn bad_input_is_dead_lettered_and_the_run_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("mixed.jsonl");
    std::fs::write(
        &input,
        concat!(
            r#"{"eventVersion":"1.08","eventTime":"2026-11-02T10:00:00Z","eventSource":"cloudtrail.amazonaws.com","eventName":"StopLogging","awsRegion":"us-east-1","eventID":"e1","userIdentity":{"type":"IAMUser","arn":"arn:aws:iam::111122223333:user/mallory","userName":"mallory","accountId":"111122223333"},"requestParameters":{"name":"main"}}"#,
            "\n{not json\n"
        ),
    )
    .unwrap();
    let out = trailhound(
        &["detect", input.to_str().unwrap(), "--format", "json"],
        dir.path(),
    );
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("dead letters:  1 (invalid_json 1)"),
        "{stderr}"
    );
    assert!(text(&out.stdout).contains("aws-cloudtrail-logging-stopped"));
    let dl = std::fs::read_to_string(dir.path().join("trailhound.deadletter.jsonl")).unwrap();
    assert!(dl.contains(r#""position":{"kind":"line","at":2}"#), "{dl}");
}

#[test]
fn stdin_is_an_input() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_trailhound"))
        .args(["detect", "-", "--format", "json"])
        .current_dir(dir.path())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let record = r#"{"Records":[{"eventTime":"2026-11-02T10:00:00Z","eventSource":"signin.amazonaws.com","eventName":"ConsoleLogin","eventID":"r1","userIdentity":{"type":"Root","arn":"arn:aws:iam::111122223333:root","accountId":"111122223333"},"responseElements":{"ConsoleLogin":"Success"},"additionalEventData":{"MFAUsed":"No"}}]}"#;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(record.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("aws-root-account-activity"),
        "{}",
        text(&out.stdout)
    );
}

#[test]
fn a_rule_that_does_not_compile_is_refused_with_id_file_and_reason() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules");
    std::fs::create_dir(&rules).unwrap();
    std::fs::write(
        rules.join("broken.yaml"),
        "id: broken-rule\ntitle: Broken\nseverity: low\nwhere: \"evnt_name = 'x'\"\n",
    )
    .unwrap();
    let out = trailhound(
        &["rules", "list", "--rules", rules.to_str().unwrap()],
        dir.path(),
    );
    let stderr = text(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("broken-rule"), "{stderr}");
    assert!(stderr.contains("broken.yaml"), "{stderr}");
    assert!(stderr.contains("evnt_name"), "{stderr}");
}

#[test]
fn rules_test_runs_every_inline_test() {
    let dir = tempfile::tempdir().unwrap();
    let out = trailhound(&["rules", "test"], dir.path());
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains(" passed, 0 failed"), "{stdout}");
}

#[test]
fn generate_writes_files_and_labels_that_detect_finds() {
    let dir = tempfile::tempdir().unwrap();
    let org = dir.path().join("org");
    let out = trailhound(
        &[
            "generate",
            "--out",
            org.to_str().unwrap(),
            "--principals",
            "8",
            "--attacks",
            "stop-logging,session-reverse-shell",
        ],
        dir.path(),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let labels: Vec<serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(org.join("labels.json")).unwrap()).unwrap();
    assert_eq!(labels.len(), 2);
    let out = trailhound(
        &["detect", org.to_str().unwrap(), "--format", "json"],
        dir.path(),
    );
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        stdout.contains("aws-cloudtrail-logging-stopped"),
        "{stdout}"
    );
    assert!(stdout.contains("session-reverse-shell"), "{stdout}");
    assert!(
        text(&out.stderr).contains("dead letters:  0"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn sigmahq_cloudtrail_rules_load_as_they_are_and_alert_on_the_recordings() {
    let Some(data) = shared_data() else { return };
    let sigma = data.join("../sigma/cloudtrail");
    if !sigma.is_dir() {
        eprintln!("SKIPPED: {} is absent", sigma.display());
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = trailhound(
        &[
            "detect",
            "--rules",
            sigma.to_str().unwrap(),
            data.to_str().unwrap(),
            "--format",
            "json",
        ],
        dir.path(),
    );
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let sigma_rules: BTreeSet<String> = text(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|a| a["rule_id"].as_str().map(str::to_string))
        .filter(|id| id.starts_with("sigma-"))
        .collect();
    eprintln!("{} Sigma rules alerted: {sigma_rules:?}", sigma_rules.len());
    assert!(sigma_rules.len() >= 5, "{sigma_rules:?}\n{stderr}");
}
