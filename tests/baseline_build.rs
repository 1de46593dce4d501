//! `trailhound baseline build`: learning from history before going live.

use crate::common;

use std::path::Path;

use common::{text, trailhound};

const RULE: &str = "baseline-new-source-network-for-principal";

/// One CloudTrail record of bob's long-term key calling ListBuckets.
fn record(n: usize, time: &str, ip: &str) -> serde_json::Value {
    serde_json::json!({
        "eventVersion": "1.09",
        "userIdentity": {
            "type": "IAMUser",
            "principalId": "AIDAEXAMPLEBOB",
            "arn": "arn:aws:iam::111122223333:user/bob",
            "accountId": "111122223333",
            "accessKeyId": "AKIAEXAMPLEBOB00001",
            "userName": "bob"
        },
        "eventTime": time,
        "eventSource": "s3.amazonaws.com",
        "eventName": "ListBuckets",
        "awsRegion": "eu-west-1",
        "sourceIPAddress": ip,
        "userAgent": "aws-cli/2.15.0 Python/3.11.6 Linux/6.1",
        "requestParameters": null,
        "responseElements": null,
        "eventID": format!("00000000-0000-4000-8000-{n:012}"),
        "readOnly": true,
        "eventType": "AwsApiCall",
        "managementEvent": true,
        "recipientAccountId": "111122223333"
    })
}

fn write_trail(path: &Path, records: Vec<serde_json::Value>) {
    let body = serde_json::json!({ "Records": records });
    std::fs::write(path, body.to_string()).unwrap();
}

/// Ten days of bob from his office network, then one call from elsewhere.
fn history_and_live(dir: &Path) -> (String, String) {
    let history: Vec<_> = (0..30)
        .map(|i| {
            let day = 1 + i / 3;
            let hour = 9 + (i % 3) * 3;
            record(
                i,
                &format!("2026-11-{day:02}T{hour:02}:15:00Z"),
                "198.51.100.20",
            )
        })
        .collect();
    let h = dir.join("history.json");
    write_trail(&h, history);
    let l = dir.join("live.json");
    write_trail(&l, vec![record(99, "2026-11-12T03:00:00Z", "203.0.113.50")]);
    (
        h.to_str().unwrap().to_string(),
        l.to_str().unwrap().to_string(),
    )
}

fn alerts_of(stdout: &str, rule: &str) -> Vec<serde_json::Value> {
    stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|a| a.get("rule_id").and_then(|r| r.as_str()) == Some(rule))
        .collect()
}

#[test]
fn without_history_a_first_call_from_a_new_network_is_still_learning() {
    let dir = tempfile::tempdir().unwrap();
    let (_, live) = history_and_live(dir.path());
    let out = trailhound(&["detect", &live, "--format", "json"], dir.path());
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(alerts_of(&text(&out.stdout), RULE).is_empty());
}

#[test]
fn a_baseline_built_from_history_makes_the_first_live_call_from_a_new_network_alert() {
    let dir = tempfile::tempdir().unwrap();
    let (history, live) = history_and_live(dir.path());
    let state = dir.path().join("state");
    let state_s = state.to_str().unwrap();

    let build = trailhound(
        &["baseline", "build", &history, "--state", state_s],
        dir.path(),
    );
    let err = text(&build.stderr);
    assert!(build.status.success(), "{err}");
    assert!(err.contains("events learnt: 30"), "{err}");
    assert!(
        err.lines()
            .any(|l| l.contains(RULE) && !l.trim_start().starts_with('0')),
        "{err}"
    );

    let show = trailhound(&["baseline", "show", "--state", state_s], dir.path());
    let shown = text(&show.stdout);
    assert!(show.status.success(), "{}", text(&show.stderr));
    assert!(shown.contains("inputs read:   1"), "{shown}");
    assert!(
        shown
            .lines()
            .any(|l| l.trim_end().ends_with(RULE) && l.trim_start().starts_with('1')),
        "{shown}"
    );

    let out = trailhound(
        &["detect", &live, "--format", "json", "--state", state_s],
        dir.path(),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let alerts = alerts_of(&text(&out.stdout), RULE);
    assert_eq!(alerts.len(), 1, "{}", text(&out.stdout));
    let evidence = alerts[0]["evidence"].to_string();
    assert!(evidence.contains("203.0.113.0/24"), "{evidence}");
    assert!(evidence.contains("198.51.100.0/24"), "{evidence}");
}

#[test]
fn a_build_without_baseline_rules_or_inputs_and_a_show_without_checkpoint_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let (history, _) = history_and_live(dir.path());
    let state = dir.path().join("state");
    let state_s = state.to_str().unwrap();
    let out = trailhound(
        &[
            "baseline",
            "build",
            &history,
            "--state",
            state_s,
            "--no-builtin",
        ],
        dir.path(),
    );
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains("no rule with a `baseline:` block"), "{err}");

    let out = trailhound(
        &[
            "baseline",
            "build",
            "nothing-here/*.json",
            "--state",
            state_s,
        ],
        dir.path(),
    );
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains("nothing-here/*.json"), "{err}");

    let show = trailhound(&["baseline", "show", "--state", state_s], dir.path());
    assert!(!show.status.success());
    let err = text(&show.stderr);
    assert!(err.contains("no checkpoint"), "{err}");
}

#[test]
fn a_baseline_built_from_the_audit_lake_makes_the_first_live_call_from_a_new_network_alert() {
    let dir = tempfile::tempdir().unwrap();
    let (history, live) = history_and_live(dir.path());
    let lake = dir.path().join("lake");
    let lake_s = lake.to_str().unwrap();
    let kept = trailhound(
        &["detect", &history, "--lake", lake_s, "--quiet"],
        dir.path(),
    );
    assert!(kept.status.success(), "{}", text(&kept.stderr));

    let state = dir.path().join("state");
    let state_s = state.to_str().unwrap();
    let build = trailhound(
        &["baseline", "build", "--lake", lake_s, "--state", state_s],
        dir.path(),
    );
    let err = text(&build.stderr);
    assert!(build.status.success(), "{err}");
    assert!(err.contains("30 event(s) learnt"), "{err}");

    let out = trailhound(
        &["detect", &live, "--format", "json", "--state", state_s],
        dir.path(),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        alerts_of(&text(&out.stdout), RULE).len(),
        1,
        "{}",
        text(&out.stdout)
    );
}
