//! `trailhound detect --config FILE` end to end: the real binary posting the
//! demo's alerts to a webhook server this test runs on 127.0.0.1, signed;
//! a webhook that is down; `--format ocsf`; a configured stdout output; and
//! config errors that name the file and the key.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hmac::{Hmac, Mac};

use crate::common;
use common::text;

const SECRET: &str = "a shared secret for the test";

/// One request the server received: lower-case header names and the body.
#[derive(Debug, Clone)]
struct Received {
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Received {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A loopback HTTP server answering 200 to every POST, one request per
/// connection. It runs until the test process ends.
fn serve() -> (u16, Arc<Mutex<Vec<Received>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let received = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&received);
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            if let Some(r) = read_request(&stream) {
                log.lock().unwrap().push(r);
            }
            let mut stream = stream;
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok");
        }
    });
    (port, received)
}

fn read_request(stream: &TcpStream) -> Option<Received> {
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let mut reader = BufReader::new(stream.try_clone().ok()?);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let path = line.split_whitespace().nth(1)?.to_string();
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        reader.read_line(&mut h).ok()?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        let (k, v) = h.split_once(':')?;
        headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
    }
    let len: usize = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; len];
    reader.read_exact(&mut body).ok()?;
    Some(Received {
        path,
        headers,
        body,
    })
}

fn run(args: &[&str], cwd: &Path, env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_trailhound"));
    cmd.args(args)
        .current_dir(cwd)
        .env_remove("TRAILHOUND_CONFIG");
    for (k, v) in env {
        cmd.env(k, v);
    }
    common::run_within(&mut cmd, common::RUN_LIMIT)
}

/// The JSON objects among stdout's lines (the demo also prints its report).
fn json_lines(stdout: &[u8]) -> Vec<serde_json::Value> {
    text(stdout)
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect()
}

fn hmac_hex(body: &[u8]) -> String {
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(body);
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[test]
fn every_demo_alert_reaches_the_webhook_signed() {
    let dir = tempfile::tempdir().unwrap();
    let (port, received) = serve();
    let config = dir.path().join("trailhound.yaml");
    std::fs::write(
        &config,
        format!(
            "notify:\n  dead_letters: notify-dl.jsonl\n  sinks:\n    - kind: webhook\n      name: soar\n      url: http://127.0.0.1:{port}/trailhound\n      secret: env:TRAILHOUND_TEST_WEBHOOK_SECRET\n"
        ),
    )
    .unwrap();
    let out = run(
        &[
            "detect",
            "--demo",
            "--config",
            "trailhound.yaml",
            "--format",
            "json",
        ],
        dir.path(),
        &[("TRAILHOUND_TEST_WEBHOOK_SECRET", SECRET)],
    );
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{}\n{stderr}", text(&out.stdout));
    let printed: BTreeSet<String> = json_lines(&out.stdout)
        .iter()
        .map(|a| a["alert_id"].as_str().unwrap().to_string())
        .collect();
    assert!(printed.len() >= 12, "the demo raises an alert per scenario");
    let got = received.lock().unwrap().clone();
    assert_eq!(got.len(), printed.len(), "one POST per alert");
    let mut posted = BTreeSet::new();
    for r in &got {
        assert_eq!(r.path, "/trailhound");
        let sig = r.header("x-trailhound-signature").expect("signed");
        assert_eq!(sig, format!("sha256={}", hmac_hex(&r.body)), "signature");
        assert!(
            r.header("x-trailhound-timestamp")
                .is_some_and(|t| t.parse::<i64>().is_ok())
        );
        let alert: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(
            r.header("x-trailhound-alert-id"),
            alert["alert_id"].as_str()
        );
        posted.insert(alert["alert_id"].as_str().unwrap().to_string());
    }
    assert_eq!(posted, printed);
    assert!(
        stderr.contains(&format!(
            "notify:        soar (webhook): {} sent, 0 retried, 0 failed",
            printed.len()
        )),
        "{stderr}"
    );
    assert!(!dir.path().join("notify-dl.jsonl").exists());
}

#[test]
fn a_webhook_that_is_down_does_not_hold_up_detection_and_dead_letters_every_alert() {
    let dir = tempfile::tempdir().unwrap();
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port(); // closed again: connections are refused
    std::fs::write(
        dir.path().join("trailhound.yaml"),
        format!(
            "notify:\n  retry: {{give_up_after: 1s, initial_backoff: 100ms, max_backoff: 200ms, flush_timeout: 2s}}\n  sinks:\n    - kind: webhook\n      url: http://127.0.0.1:{port}/down\n      secret: env:TRAILHOUND_TEST_WEBHOOK_SECRET\n"
        ),
    )
    .unwrap();
    let started = std::time::Instant::now();
    let out = run(
        &["detect", "--demo", "--format", "json"],
        dir.path(),
        &[
            ("TRAILHOUND_TEST_WEBHOOK_SECRET", SECRET),
            ("TRAILHOUND_CONFIG", "trailhound.yaml"),
        ],
    );
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(started.elapsed() < Duration::from_secs(120));
    let printed = json_lines(&out.stdout).len();
    let dl = std::fs::read_to_string(dir.path().join("trailhound.notify-deadletter.jsonl"))
        .expect("dead letters in the default file");
    let letters: Vec<serde_json::Value> = dl
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(letters.len(), printed, "{stderr}");
    for d in &letters {
        assert!(
            ["gave_up", "shutdown"].contains(&d["reason"].as_str().unwrap()),
            "{d}"
        );
        assert_eq!(d["sink"], "webhook");
        assert!(d["alert"]["alert_id"].is_string());
    }
    assert!(
        stderr.contains("undelivered alert(s) written to trailhound.notify-deadletter.jsonl"),
        "{stderr}"
    );
}

#[test]
fn format_ocsf_prints_one_detection_finding_per_alert() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(
        &["detect", "--demo", "--format", "ocsf", "--quiet"],
        dir.path(),
        &[],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let findings = json_lines(&out.stdout);
    assert!(findings.len() >= 12);
    for f in &findings {
        assert_eq!(f["class_uid"], 2004);
        assert_eq!(f["type_uid"], 200401);
        assert_eq!(f["metadata"]["version"], "1.1.0");
        assert!(f["finding_info"]["uid"].is_string());
        assert!(f["finding_info"]["analytic"]["name"].is_string());
        assert!((1..=5).contains(&f["severity_id"].as_u64().unwrap()));
    }
}

#[test]
fn a_configured_stdout_output_replaces_format_and_routes() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("trailhound.yaml"),
        "notify:\n  sinks:\n    - kind: stdout\n      format: json\n      route: {min_severity: critical}\n",
    )
    .unwrap();
    let all = run(
        &["detect", "--demo", "--format", "json", "--quiet"],
        dir.path(),
        &[],
    );
    assert!(all.status.success());
    let critical = json_lines(&all.stdout)
        .iter()
        .filter(|a| a["severity"] == "critical")
        .count();
    let routed = run(
        &["detect", "--demo", "--quiet", "--config", "trailhound.yaml"],
        dir.path(),
        &[],
    );
    assert!(routed.status.success(), "{}", text(&routed.stderr));
    let lines = json_lines(&routed.stdout);
    assert!(critical > 0);
    assert_eq!(lines.len(), critical, "only critical alerts, once each");
    assert!(lines.iter().all(|a| a["severity"] == "critical"));
}

#[test]
fn config_errors_name_the_file_and_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("logs");
    std::fs::create_dir(&empty).unwrap();
    std::fs::write(
        dir.path().join("bad.yaml"),
        "notify:\n  sinks:\n    - kind: slack\n      urll: https://hooks.example.invalid/x\n",
    )
    .unwrap();
    let out = run(&["detect", "logs", "--config", "bad.yaml"], dir.path(), &[]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("bad.yaml")
            && stderr.contains("notify.sinks[0]")
            && stderr.contains("urll"),
        "{stderr}"
    );

    std::fs::write(
        dir.path().join("env.yaml"),
        "notify:\n  sinks:\n    - kind: slack\n      url: env:TRAILHOUND_TEST_UNSET_SLACK_URL\n",
    )
    .unwrap();
    let out = run(&["detect", "logs", "--config", "env.yaml"], dir.path(), &[]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("env.yaml: notify.sinks[0].url: environment variable TRAILHOUND_TEST_UNSET_SLACK_URL is not set"),
        "{stderr}"
    );
}
