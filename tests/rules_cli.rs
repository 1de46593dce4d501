//! `trailhound rules test|lint` and `detect --suppress`: the real binary in
//! temporary folders.

use std::path::Path;

use crate::common;
use common::{text, trailhound};

fn write(dir: &Path, name: &str, content: &str) {
    let path = dir.join(name);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).unwrap();
    }
    std::fs::write(path, content).unwrap();
}

/// A complete rule (nothing for lint to warn about) with the given `where`.
fn rule(id: &str, predicate: &str, tests: &str) -> String {
    format!(
        "id: {id}\ntitle: T\ndescription: d\nseverity: low\ntags: [x]\nrespond: [notify]\nwhere: \"{predicate}\"\ntests:\n{tests}"
    )
}

const ONE_TEST: &str = "  - {name: t, event: {event_name: StopLogging}, match: true}\n";

const SIGMA: &str = "title: CloudTrail stopped\nlogsource:\n  product: aws\n  service: cloudtrail\ndetection:\n  sel:\n    eventSource: cloudtrail.amazonaws.com\n    eventName: StopLogging\n  condition: sel\nlevel: high\ntags: [attack.defense-evasion]\n";

#[test]
fn rules_test_prints_a_table_and_fails_on_a_failing_user_rule() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("mine");
    write(
        &rules,
        "my-rule.yaml",
        &rule(
            "my-rule",
            "event_name = 'StopLogging'",
            "  - {name: stop fires, event: {event_name: StopLogging}, match: true}\n  - {name: wrongly expected, event: {event_name: DeleteTrail}, match: true}\n",
        ),
    );
    let out = trailhound(&["rules", "test", "mine"], dir.path());
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}{}", text(&out.stderr));
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(lines[0].starts_with("RULE") && lines[0].ends_with("TESTS  RESULT"));
    let row = lines
        .iter()
        .position(|l| l.starts_with("my-rule "))
        .unwrap();
    assert!(lines[row].ends_with("1/2  FAIL"), "{}", lines[row]);
    assert_eq!(
        lines[row + 1],
        "    FAIL \"wrongly expected\": expected 1 matching event(s), got 0"
    );
    // The built-in pack is still there, and passes.
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("aws-cloudtrail-logging-stopped ") && l.ends_with("PASS")),
        "{stdout}"
    );
    let last = lines.last().unwrap();
    assert!(last.contains(" passed, 1 failed ("), "{last}");

    // Alone, and with the test fixed: success.
    let out = trailhound(&["rules", "test", "mine", "--no-builtin"], dir.path());
    let stdout = text(&out.stdout);
    assert!(
        stdout.ends_with("1 passed, 1 failed (1 rules, 0 without tests)\n"),
        "{stdout}"
    );
    write(
        &rules,
        "my-rule.yaml",
        &rule("my-rule", "event_name = 'StopLogging'", ONE_TEST),
    );
    let out = trailhound(
        &["rules", "test", "--no-builtin", "--rules", "mine"],
        dir.path(),
    );
    assert!(out.status.success(), "{}", text(&out.stdout));
    assert!(text(&out.stdout).contains("my-rule      1/1  PASS"));
}

#[test]
fn sigma_rules_take_their_tests_from_a_sibling_file() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("sigma");
    write(&rules, "stop_logging.yml", SIGMA);
    write(
        &rules,
        "stop_logging.tests.yaml",
        "tests:\n  - name: stopping fires\n    event: {event_source: cloudtrail.amazonaws.com, event_name: StopLogging}\n    match: true\n  - name: others do not\n    events:\n      - {event_source: cloudtrail.amazonaws.com, event_name: DescribeTrails}\n      - {event_source: cloudtrail.amazonaws.com, event_name: StopLogging}\n    matches: 2\n",
    );
    let out = trailhound(&["rules", "test", "sigma", "--no-builtin"], dir.path());
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}{}", text(&out.stderr));
    assert!(
        stdout.contains("sigma-stop_logging      1/2  FAIL"),
        "{stdout}"
    );
    assert!(
        stdout.contains("    FAIL \"others do not\": expected 2 matching event(s), got 1"),
        "{stdout}"
    );
    // The tests file is not a rule of its own.
    assert!(
        stdout.ends_with("1 passed, 1 failed (1 rules, 0 without tests)\n"),
        "{stdout}"
    );
    let out = trailhound(
        &["rules", "list", "--rules", "sigma", "--no-builtin"],
        dir.path(),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).lines().count(), 1);

    // A broken tests file is reported with its name.
    write(&rules, "stop_logging.tests.yaml", "tests:\n  - nme: x\n");
    let out = trailhound(&["rules", "test", "sigma", "--no-builtin"], dir.path());
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("stop_logging.tests.yaml") && stderr.contains("nme"),
        "{stderr}"
    );
}

/// Runs `rules lint DIR --no-builtin` and returns (exit code, stdout).
fn lint(dir: &Path, files: &[(&str, &str)]) -> (Option<i32>, String) {
    let rules = dir.join("rules");
    for (name, content) in files {
        write(&rules, name, content);
    }
    let out = trailhound(&["rules", "lint", "rules", "--no-builtin"], dir);
    (out.status.code(), text(&out.stdout))
}

#[test]
fn lint_reports_yaml_and_schema_errors_with_positions() {
    let dir = tempfile::tempdir().unwrap();
    let typo = rule("typo", "event_name = 'A'", ONE_TEST)
        .replace("where:", "wehre:")
        .replace("tags:", "tgas:");
    let (code, out) = lint(
        dir.path(),
        &[
            ("broken.yaml", "id: broken\ntitle: [oops\n"),
            ("typo.yaml", &typo),
        ],
    );
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("rules/broken.yaml:3:1: error: not valid YAML:"),
        "{out}"
    );
    assert!(
        out.contains("rules/typo.yaml:7:1: error [typo]: unknown field `wehre` (did you mean `where`?); allowed there: id, title, description, severity"),
        "{out}"
    );
    assert!(
        out.contains(
            "rules/typo.yaml:5:1: error [typo]: unknown field `tgas` (did you mean `tags`?)"
        ),
        "{out}"
    );
    assert!(
        out.contains("rules/typo.yaml: error [typo]: missing field `where`"),
        "{out}"
    );
    assert!(
        out.ends_with("4 error(s), 1 warning(s) in 2 file(s)\n"),
        "{out}"
    );
}

#[test]
fn lint_reports_compile_errors_duplicates_and_naming() {
    let dir = tempfile::tempdir().unwrap();
    let dup = rule("dup", "event_name = 'StopLogging'", ONE_TEST);
    let (code, out) = lint(
        dir.path(),
        &[
            (
                "nocompile.yaml",
                &rule("nocompile", "evnt_name = 'A'", ONE_TEST),
            ),
            ("dup.yaml", &dup),
            ("sub/dup.yaml", &dup),
            (
                "named.yaml",
                &rule("not-named", "event_name = 'StopLogging'", ONE_TEST),
            ),
            (
                "bare.yaml",
                "id: bare\ntitle: T\nseverity: low\nwhere: \"event_name = 'StopLogging'\"\n",
            ),
        ],
    );
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("rules/nocompile.yaml:7:1: error [nocompile]: does not compile:")
            && out.contains("evnt_name"),
        "{out}"
    );
    assert!(
        out.contains("rules/sub/dup.yaml:1:1: error [dup]: duplicate id: dup is also defined in rules/dup.yaml"),
        "{out}"
    );
    assert!(
        out.contains(
            "rules/named.yaml:1:1: warning [not-named]: id `not-named` is not the file name `named`"
        ),
        "{out}"
    );
    for what in ["description", "tags", "tests", "`respond`"] {
        assert!(
            out.contains(&format!("rules/bare.yaml: warning [bare]: has no {what}")),
            "{what}: {out}"
        );
    }
    assert!(
        out.ends_with("2 error(s), 5 warning(s) in 5 file(s)\n"),
        "{out}"
    );
}

#[test]
fn lint_finds_rules_that_can_never_match() {
    let dir = tempfile::tempdir().unwrap();
    let (code, out) = lint(
        dir.path(),
        &[
            (
                "constant.yaml",
                &rule("constant", "event_name = 'A' AND 1 = 2", ONE_TEST),
            ),
            (
                "two.yaml",
                &rule(
                    "two",
                    "event_name = 'StopLogging' AND error_code IS NULL AND event_name = 'DeleteTrail'",
                    ONE_TEST,
                ),
            ),
            (
                "case.yaml",
                &rule("case", "event_name = 'stoplogging'", ONE_TEST),
            ),
            (
                "sess.yaml",
                &rule(
                    "sess",
                    "source = 'session' AND region = 'us-east-1'",
                    ONE_TEST,
                ),
            ),
        ],
    );
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("rules/constant.yaml:7:1: error [constant]: can never match: DataFusion's simplifier reduces `where` to the constant FALSE"),
        "{out}"
    );
    assert!(
        out.contains("rules/two.yaml:7:1: error [two]: can never match: event_name must be 'StopLogging' and also 'DeleteTrail'"),
        "{out}"
    );
    assert!(
        out.contains("rules/case.yaml:7:1: warning [case]: event_name is compared to 'stoplogging', which starts lower-case"),
        "{out}"
    );
    assert!(
        out.contains("rules/sess.yaml:7:1: error [sess]: can never match: source = 'session' selects session events, but the conditions on region need columns only CloudTrail events have"),
        "{out}"
    );
    assert!(
        out.ends_with("3 error(s), 1 warning(s) in 4 file(s)\n"),
        "{out}"
    );
}

#[test]
fn lint_passes_the_builtin_pack_and_a_sigma_rule_with_tests() {
    let dir = tempfile::tempdir().unwrap();
    let out = trailhound(&["rules", "lint"], dir.path());
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains("0 error(s)"), "{stdout}");

    write(dir.path(), "sigma/stop_logging.yml", SIGMA);
    write(
        dir.path(),
        "sigma/stop_logging.tests.yaml",
        "tests:\n  - {name: fires, event: {event_source: cloudtrail.amazonaws.com, event_name: StopLogging}, match: true}\n",
    );
    let out = trailhound(&["rules", "lint", "sigma", "--no-builtin"], dir.path());
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert_eq!(stdout, "0 error(s), 0 warning(s) in 1 file(s)\n");
}

fn stop_logging(id: &str, user: &str, ip: &str, second: u32) -> String {
    format!(
        r#"{{"eventTime":"2026-11-02T10:00:0{second}Z","eventSource":"cloudtrail.amazonaws.com","eventName":"StopLogging","awsRegion":"us-east-1","eventID":"{id}","sourceIPAddress":"{ip}","userIdentity":{{"type":"IAMUser","arn":"arn:aws:iam::111122223333:user/{user}","userName":"{user}","accountId":"111122223333"}},"requestParameters":{{"name":"main"}}}}"#
    )
}

fn alerted_principals(stdout: &str) -> Vec<String> {
    let mut principals: Vec<String> = stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|a| a["rule_id"] == "aws-cloudtrail-logging-stopped")
        .filter_map(|a| a["principal"].as_str().map(str::to_string))
        .collect();
    principals.sort();
    principals
}

#[test]
fn a_global_suppress_list_hides_principals_and_networks() {
    let dir = tempfile::tempdir().unwrap();
    let trail = [
        stop_logging("e1", "mallory", "203.0.113.9", 1),
        stop_logging("e2", "bob", "10.1.2.3", 2),
        stop_logging("e3", "carol", "198.51.100.7", 3),
    ]
    .join("\n");
    write(dir.path(), "trail.jsonl", &trail);
    write(
        dir.path(),
        "suppress.yaml",
        "principals: [\"arn:aws:iam::*:user/mal*\"]\nsource_networks: [\"10.0.0.0/8\"]\n",
    );

    let out = trailhound(&["detect", "trail.jsonl", "--format", "json"], dir.path());
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(alerted_principals(&text(&out.stdout)).len(), 3);
    assert!(!text(&out.stderr).contains("suppressed:"));

    let out = trailhound(
        &[
            "detect",
            "trail.jsonl",
            "--format",
            "json",
            "--suppress",
            "suppress.yaml",
        ],
        dir.path(),
    );
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(
        alerted_principals(&text(&out.stdout)),
        ["arn:aws:iam::111122223333:user/carol"]
    );
    let line = stderr
        .lines()
        .find(|l| l.starts_with("suppressed:"))
        .unwrap_or_else(|| panic!("{stderr}"));
    assert!(
        line.contains("by suppress lists (global list suppress.yaml"),
        "{line}"
    );
    let n: u64 = line
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap();
    assert!(n >= 2, "{line}");

    // The same list under a `suppress:` key; a bad one is refused.
    write(
        dir.path(),
        "wrapped.yaml",
        "suppress:\n  principals: [\"*carol\"]\n",
    );
    let out = trailhound(
        &[
            "detect",
            "trail.jsonl",
            "--format",
            "json",
            "--suppress",
            "wrapped.yaml",
        ],
        dir.path(),
    );
    assert_eq!(alerted_principals(&text(&out.stdout)).len(), 2);
    write(
        dir.path(),
        "bad.yaml",
        "source_networks: [\"10.0.0.0/99\"]\n",
    );
    let out = trailhound(
        &["detect", "trail.jsonl", "--suppress", "bad.yaml"],
        dir.path(),
    );
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("suppress list bad.yaml") && stderr.contains("prefix length"),
        "{stderr}"
    );
}

#[test]
fn the_demo_takes_a_suppress_list_too() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "none.yaml", "principals: [\"nobody-at-all\"]\n");
    let out = trailhound(&["detect", "--demo", "--suppress", "none.yaml"], dir.path());
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{}\n{stderr}", text(&out.stdout));
    assert!(
        stderr.contains("suppressed:") && stderr.contains("global list none.yaml"),
        "{stderr}"
    );
}
