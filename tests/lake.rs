//! The audit lake end to end: the real binary writes a lake with
//! `detect --demo --lake`, then `trailhound sql` and DuckDB read it back.

use std::process::Command;
use std::sync::OnceLock;

mod common;
use common::{text, trailhound};

/// A lake written once by the demo, shared by the tests: its folder, and the
/// events and alerts the run's summary reported.
struct DemoLake {
    _dir: tempfile::TempDir,
    root: std::path::PathBuf,
    events: u64,
    alerts: u64,
}

fn summary_number(stderr: &str, label: &str) -> u64 {
    let line = stderr
        .lines()
        .find(|l| l.starts_with(label))
        .unwrap_or_else(|| panic!("no {label:?} line in the summary:\n{stderr}"));
    line[label.len()..]
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no number in {line:?}"))
}

fn demo_lake() -> &'static DemoLake {
    static LAKE: OnceLock<DemoLake> = OnceLock::new();
    LAKE.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("lake");
        let out = trailhound(
            &["detect", "--demo", "--format", "json", "--lake", "lake"],
            dir.path(),
        );
        let stderr = text(&out.stderr);
        assert!(out.status.success(), "demo failed:\n{stderr}");
        assert!(
            stderr.contains("lake:"),
            "no lake line in the summary:\n{stderr}"
        );
        DemoLake {
            events: summary_number(&stderr, "events read:"),
            alerts: summary_number(&stderr, "alerts:"),
            root,
            _dir: dir,
        }
    })
}

fn sql_csv(lake: &DemoLake, query: &str) -> Vec<String> {
    let root = lake.root.to_string_lossy().to_string();
    let out = trailhound(
        &["sql", query, "--lake", &root, "--format", "csv"],
        &lake.root,
    );
    assert!(out.status.success(), "{query}: {}", text(&out.stderr));
    text(&out.stdout)
        .lines()
        .skip(1)
        .map(str::to_string)
        .collect()
}

fn sql_count(lake: &DemoLake, query: &str) -> u64 {
    let rows = sql_csv(lake, query);
    assert_eq!(rows.len(), 1, "{query}: {rows:?}");
    rows[0].parse().unwrap()
}

#[test]
fn sql_counts_every_event_and_every_demo_alert() {
    let lake = demo_lake();
    assert!(lake.events > 1000, "the demo read {} events", lake.events);
    assert_eq!(sql_count(lake, "SELECT count(*) FROM events"), lake.events);
    assert_eq!(lake.alerts, 13);
    assert_eq!(sql_count(lake, "SELECT count(*) FROM alerts"), 13);
    assert_eq!(
        sql_count(lake, "SELECT count(DISTINCT alert_id) FROM alerts"),
        13
    );
}

#[test]
fn partition_columns_prune_to_one_hour() {
    let lake = demo_lake();
    let hours = sql_csv(
        lake,
        "SELECT date, hour, count(*) AS n FROM events GROUP BY date, hour ORDER BY n DESC, date, hour",
    );
    assert!(hours.len() > 1, "{hours:?}");
    let busiest: Vec<&str> = hours[0].split(',').collect();
    let (date, hour, n) = (busiest[0], busiest[1], busiest[2]);
    let pruned = sql_count(
        lake,
        &format!("SELECT count(*) FROM events WHERE date = '{date}' AND hour = '{hour}'"),
    );
    assert_eq!(pruned.to_string(), n);
    // And the rows of that partition really are from that hour.
    let outside = sql_count(
        lake,
        &format!(
            "SELECT count(*) FROM events WHERE date = '{date}' AND hour = '{hour}' \
             AND to_char(event_time, '%Y-%m-%d %H') <> '{date} {hour}'"
        ),
    );
    assert_eq!(outside, 0);
}

#[test]
fn no_temporary_file_is_left_after_a_run() {
    let lake = demo_lake();
    let mut stack = vec![lake.root.clone()];
    let mut parts = 0;
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().to_string();
            if path.is_dir() {
                stack.push(path);
            } else {
                assert!(!name.starts_with('.'), "left behind: {}", path.display());
                assert!(
                    name.starts_with("part-") && name.ends_with(".parquet"),
                    "{name}"
                );
                parts += 1;
            }
        }
    }
    assert!(parts > 0);
}

#[test]
fn the_prompt_runs_statements_ending_in_a_semicolon() {
    let lake = demo_lake();
    let root = lake.root.to_string_lossy().to_string();
    let mut child = Command::new(env!("CARGO_BIN_EXE_trailhound"))
        .args(["sql", "--lake", &root, "--format", "csv"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        stdin
            .write_all(b"SELECT count(*) AS n\nFROM alerts;\nSELECT 'x' AS y;\n")
            .unwrap();
    }
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "n\n13\ny\nx\n");
}

#[test]
fn duckdb_reads_the_same_counts() {
    let Some(python) = std::env::var_os("TRAILHOUND_PYTHON") else {
        eprintln!(
            "SKIPPED: TRAILHOUND_PYTHON is unset (./scripts/test sets it to a Python with DuckDB from PyPI)"
        );
        return;
    };
    let lake = demo_lake();
    let root = lake.root.to_string_lossy().to_string();
    for (table, expected) in [("events", lake.events), ("alerts", lake.alerts)] {
        // fetchall, not fetchone: recent DuckDB relations no longer have fetchone().
        let script = format!(
            "import duckdb; print(duckdb.sql(\"select count(*) from read_parquet('{root}/table={table}/*/*/*.parquet', hive_partitioning=1)\").fetchall()[0][0])"
        );
        let out = Command::new(&python)
            .args(["-c", &script])
            .output()
            .unwrap_or_else(|e| panic!("cannot run {python:?}: {e}"));
        assert!(out.status.success(), "DuckDB failed: {}", text(&out.stderr));
        let n: u64 = text(&out.stdout).trim().parse().unwrap();
        eprintln!("DuckDB counted {n} rows in {table}");
        assert_eq!(n, expected, "{table}");
        assert_eq!(n, sql_count(lake, &format!("SELECT count(*) FROM {table}")));
    }
}

/// A response action written to the lake (as the responders will write
/// them) reads back whole through `trailhound sql` and DuckDB.
#[test]
fn an_action_record_reads_back_through_sql_and_duckdb() {
    use trailhound_core::{Action, ActionMode, ActionOutcome};
    use trailhound_sinks::{LakeConfig, LakeWriter};

    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("lake");
    let time = trailhound_core::time::parse_rfc3339_micros("2026-11-02T10:15:30.123456Z").unwrap();
    let action = Action {
        action_id: "act-0001".into(),
        alert_id: "cdbc7f7c26d89b97d693d488b1c09e7d".into(),
        rule_id: "aws-cloudtrail-logging-stopped".into(),
        principal: "arn:aws:iam::111122223333:user/bob.almeida".into(),
        kind: "quarantine-principal".into(),
        mode: ActionMode::Shadow,
        outcome: ActionOutcome::Done,
        reason: "would attach the deny-all inline policy".into(),
        time,
        details: serde_json::json!({"policy": "trailhound-quarantine", "ttl_secs": 3600}),
    };
    let skipped = Action {
        action_id: "act-0002".into(),
        principal: "arn:aws:iam::111122223333:root".into(),
        mode: ActionMode::Enforce,
        outcome: ActionOutcome::Skipped,
        reason: "root is alerted, never acted on".into(),
        time: time + 3_600_000_000,
        details: serde_json::json!({}),
        ..action.clone()
    };
    let mut lake = LakeWriter::open(LakeConfig::new(&root)).unwrap();
    lake.write_actions(&[action.clone(), skipped]).unwrap();
    lake.close().unwrap();
    drop(lake);

    let root_text = root.to_string_lossy().to_string();
    let out = trailhound(
        &[
            "sql",
            "SELECT action_id, alert_id, rule_id, principal, kind, mode, outcome, reason, \
             CAST(time AS BIGINT) AS time, json_get_str(details, 'policy') AS policy, \
             json_get_int(details, 'ttl_secs') AS ttl, date, hour \
             FROM actions ORDER BY action_id",
            "--lake",
            &root_text,
            "--format",
            "json",
        ],
        dir.path(),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let rows: Vec<serde_json::Value> = text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 2, "{rows:?}");
    let first = &rows[0];
    for (column, want) in [
        ("action_id", action.action_id.as_str()),
        ("alert_id", action.alert_id.as_str()),
        ("rule_id", action.rule_id.as_str()),
        ("principal", action.principal.as_str()),
        ("kind", "quarantine-principal"),
        ("mode", "shadow"),
        ("outcome", "done"),
        ("reason", action.reason.as_str()),
        ("policy", "trailhound-quarantine"),
        ("date", "2026-11-02"),
        ("hour", "10"),
    ] {
        assert_eq!(first[column], want, "{column}: {first}");
    }
    assert_eq!(first["time"].as_i64(), Some(time));
    assert_eq!(first["ttl"].as_i64(), Some(3600));
    assert_eq!(rows[1]["outcome"], "skipped");
    assert_eq!(rows[1]["mode"], "enforce");
    assert_eq!(rows[1]["hour"], "11");

    let Some(python) = std::env::var_os("TRAILHOUND_PYTHON") else {
        eprintln!(
            "SKIPPED (DuckDB part): TRAILHOUND_PYTHON is unset (./scripts/test sets it to a Python with DuckDB from PyPI)"
        );
        return;
    };
    let script = format!(
        "import duckdb, json\n\
         rows = duckdb.sql(\"select action_id, alert_id, rule_id, principal, kind, mode, outcome, reason, \
         epoch_us(time), json_extract_string(details, '$.policy'), date, hour \
         from read_parquet('{root_text}/table=actions/*/*/*.parquet', hive_partitioning=1) \
         order by action_id\").fetchall()\n\
         print(json.dumps([[str(v) for v in r] for r in rows]))"
    );
    let out = Command::new(&python)
        .args(["-c", &script])
        .output()
        .unwrap_or_else(|e| panic!("cannot run {python:?}: {e}"));
    assert!(out.status.success(), "DuckDB failed: {}", text(&out.stderr));
    let rows: Vec<Vec<String>> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!(
        rows[0],
        [
            action.action_id.as_str(),
            action.alert_id.as_str(),
            action.rule_id.as_str(),
            action.principal.as_str(),
            "quarantine-principal",
            "shadow",
            "done",
            action.reason.as_str(),
            &time.to_string(),
            "trailhound-quarantine",
            "2026-11-02",
            "10",
        ]
    );
    assert_eq!(rows[1][6], "skipped");
}
