//! `trailhound detect --state DIR`: resume after a stop, skip what was read.

use crate::common;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{text, trailhound};

fn alert_ids(stdout: &str) -> Vec<String> {
    stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v.get("alert_id").and_then(|i| i.as_str()).map(String::from))
        .collect()
}

#[test]
fn a_run_stopped_by_sigterm_resumes_from_its_state_with_the_same_alerts_and_none_twice() {
    let dir = tempfile::tempdir().unwrap();
    let org = dir.path().join("org");
    let org_s = org.to_str().unwrap();
    let out = trailhound(
        &[
            "generate",
            "--out",
            org_s,
            "--principals",
            "30",
            "--days",
            "4",
        ],
        dir.path(),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));

    let whole = trailhound(
        &["detect", org_s, "--format", "json", "--readers", "1"],
        dir.path(),
    );
    assert!(whole.status.success(), "{}", text(&whole.stderr));
    let expected = alert_ids(&text(&whole.stdout));
    assert!(expected.len() >= 5, "{}", text(&whole.stderr));

    // First run: stopped by SIGTERM soon after it starts.
    let state = dir.path().join("state");
    let state_s = state.to_str().unwrap();
    let args = [
        "detect",
        org_s,
        "--format",
        "json",
        "--readers",
        "1",
        "--state",
        state_s,
        "--flush",
    ];
    let mut child = Command::new(env!("CARGO_BIN_EXE_trailhound"))
        .args(args)
        .current_dir(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Stop it once it has raised its first alert: the signal handler is in
    // place by then and most of the input is still ahead.
    let stdout = child.stdout.take().unwrap();
    let pid = child.id().to_string();
    let reader = std::thread::spawn(move || {
        let mut lines = Vec::new();
        let mut signalled = false;
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if !signalled {
                let _ = Command::new("kill").args(["-TERM", &pid]).status();
                signalled = true;
            }
            lines.push(line);
        }
        lines.join("\n")
    });
    let started = Instant::now();
    let first = child.wait_with_output().unwrap();
    let first_stdout = reader.join().unwrap();
    assert!(started.elapsed() < Duration::from_secs(120));
    assert!(first.status.success(), "{}", text(&first.stderr));
    let first_err = text(&first.stderr);
    assert!(state.join("checkpoint.bin").exists(), "{first_err}");

    // Second run: resumes.
    let second = trailhound(&args, dir.path());
    assert!(second.status.success(), "{}", text(&second.stderr));
    let second_err = text(&second.stderr);
    eprintln!("first run:\n{first_err}\nsecond run:\n{second_err}");
    assert!(first_err.contains("stopped:"), "{first_err}");
    assert!(
        !second_err.contains("resumed: 0 input(s) already read, 0 record(s) skipped"),
        "{second_err}"
    );
    let mut all = alert_ids(&first_stdout);
    all.extend(alert_ids(&text(&second.stdout)));
    let unique: BTreeSet<&String> = all.iter().collect();
    assert_eq!(unique.len(), all.len(), "an alert was raised twice");
    let expected: BTreeSet<&String> = expected.iter().collect();
    assert_eq!(unique, expected);

    // Third run: everything was read; nothing new.
    let third = trailhound(&args, dir.path());
    assert!(third.status.success());
    assert!(alert_ids(&text(&third.stdout)).is_empty());
    assert!(
        text(&third.stderr).contains("events read:   0"),
        "{}",
        text(&third.stderr)
    );
}
