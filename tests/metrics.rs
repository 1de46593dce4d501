//! The metrics endpoint end to end: the real binary runs the demo with
//! `--metrics`, a real Prometheus (Debian's package) scrapes it every second
//! on loopback, and the test reads the series back through Prometheus's HTTP
//! API and compares them with the run's own summary.
//!
//! Prometheus is `/usr/bin/prometheus`, or the binary named by
//! `TRAILHOUND_PROMETHEUS`; `scripts/test` installs the package when absent.
//! Without it the test fails and says so.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use crate::common;
use common::text;

/// Kills the process when dropped, also when the test fails.
struct Killed {
    child: Child,
}

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn prometheus_binary() -> PathBuf {
    let path = std::env::var_os("TRAILHOUND_PROMETHEUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/prometheus"));
    assert!(
        path.is_file(),
        "Prometheus is needed for this test and is not at {}: install Debian's package \
         (apt-get install -y --no-install-recommends prometheus; scripts/test does it) \
         or set TRAILHOUND_PROMETHEUS to a prometheus binary",
        path.display()
    );
    path
}

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// Percent-encodes a query-string value.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A plain HTTP/1.0 GET: status and body.
fn http_get(addr: SocketAddr, path: &str) -> Result<(u16, String), String> {
    let mut s =
        TcpStream::connect_timeout(&addr, Duration::from_secs(2)).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(|e| e.to_string())?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    s.read_to_end(&mut out).map_err(|e| e.to_string())?;
    let out = text(&out);
    let (head, body) = out
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("no end of head in {out:?}"))?;
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("no status in {head:?}"))?;
    Ok((status, body.to_string()))
}

/// One series of a query's answer: its labels and value.
type Series = (BTreeMap<String, String>, f64);

/// One instant query: each series' labels and value.
fn query(prometheus: SocketAddr, q: &str) -> Result<Vec<Series>, String> {
    let (status, body) = http_get(prometheus, &format!("/api/v1/query?query={}", encode(q)))?;
    if status != 200 {
        return Err(format!("status {status}: {body}"));
    }
    let v: serde_json::Value = serde_json::from_str(&body).map_err(|e| e.to_string())?;
    let result = v["data"]["result"]
        .as_array()
        .ok_or_else(|| format!("no result in {body}"))?;
    result
        .iter()
        .map(|r| {
            let labels = r["metric"]
                .as_object()
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                        .collect()
                })
                .unwrap_or_default();
            let value = r["value"][1]
                .as_str()
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| format!("no value in {r}"))?;
            Ok((labels, value))
        })
        .collect()
}

/// Waits for a stderr line starting with `prefix`.
fn wait_line(
    lines: &Receiver<String>,
    seen: &mut Vec<String>,
    prefix: &str,
    limit: Duration,
) -> String {
    let until = Instant::now() + limit;
    loop {
        let left = until.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) => {
                seen.push(line.clone());
                if line.starts_with(prefix) {
                    return line;
                }
            }
            Err(RecvTimeoutError::Timeout) => {
                panic!(
                    "no {prefix:?} line within {limit:?}; stderr so far:\n{}",
                    seen.join("\n")
                )
            }
            Err(RecvTimeoutError::Disconnected) => {
                panic!(
                    "the detector ended before a {prefix:?} line; stderr:\n{}",
                    seen.join("\n")
                )
            }
        }
    }
}

/// The first number after `label` and the `name value` pairs in parentheses:
/// `events read:   4206 (cloudtrail 3702, session 504)`.
fn summary_numbers(line: &str, label: &str) -> (u64, BTreeMap<String, u64>) {
    let rest = line.strip_prefix(label).unwrap_or(line).trim();
    let total = rest
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no number in {line:?}"));
    let mut parts = BTreeMap::new();
    if let Some(inner) = rest.split_once('(').and_then(|(_, r)| r.split_once(')')) {
        for pair in inner.0.split(", ") {
            if let Some((k, v)) = pair.split_once(' ')
                && let Ok(v) = v.parse()
            {
                parts.insert(k.to_string(), v);
            }
        }
    }
    (total, parts)
}

/// Every `expr` in the Grafana dashboard.
fn dashboard_exprs() -> Vec<String> {
    fn walk(v: &serde_json::Value, out: &mut Vec<String>) {
        match v {
            serde_json::Value::Object(map) => {
                for (k, v) in map {
                    match (k.as_str(), v) {
                        ("expr", serde_json::Value::String(s)) => out.push(s.clone()),
                        _ => walk(v, out),
                    }
                }
            }
            serde_json::Value::Array(items) => items.iter().for_each(|v| walk(v, out)),
            _ => {}
        }
    }
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/deploy/grafana/dashboards/trailhound.json"
    );
    let text = std::fs::read_to_string(path).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let mut out = Vec::new();
    walk(&v, &mut out);
    out
}

fn prometheus_log(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("prometheus.log")).unwrap_or_default()
}

#[test]
fn prometheus_scrapes_the_detector() {
    let prometheus_bin = prometheus_binary();
    let dir = tempfile::tempdir().unwrap();

    // The detector: the demo, with the endpoint on a free loopback port,
    // serving 20 s past the end of its input.
    let mut detector = Killed {
        child: Command::new(env!("CARGO_BIN_EXE_trailhound"))
            .args([
                "detect",
                "--demo",
                "--format",
                "json",
                "--metrics",
                "127.0.0.1:0",
                "--metrics-linger",
                "20",
            ])
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    };
    let stderr = detector.child.stderr.take().unwrap();
    let (tx, lines) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut seen = Vec::new();
    let line = wait_line(
        &lines,
        &mut seen,
        "metrics: serving http://",
        Duration::from_secs(120),
    );
    let target = line
        .trim_start_matches("metrics: serving http://")
        .trim_end_matches("/metrics")
        .to_string();
    let target_addr: SocketAddr = target.parse().unwrap();

    // Prometheus: scrapes the detector every second, storage in the temp folder.
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n\
             scrape_configs:\n  - job_name: trailhound\n    static_configs:\n      - targets: ['{target}']\n"
        ),
    )
    .unwrap();
    let prometheus_addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let log = std::fs::File::create(dir.path().join("prometheus.log")).unwrap();
    let mut prometheus = Killed {
        child: Command::new(&prometheus_bin)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("tsdb").display()
            ))
            .arg(format!("--web.listen-address={prometheus_addr}"))
            .arg("--log.level=warn")
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", prometheus_bin.display())),
    };

    // The run's own account of what it read.
    let events_line = wait_line(&lines, &mut seen, "events read:", Duration::from_secs(180));
    let (events, by_source) = summary_numbers(&events_line, "events read:");
    let alerts_line = wait_line(&lines, &mut seen, "alerts:", Duration::from_secs(10));
    let (alerts, _) = summary_numbers(&alerts_line, "alerts:");
    assert!(events > 1000, "{events_line}");
    assert!(alerts > 0, "{alerts_line}");

    // Prometheus reports the same count once it scraped the final values.
    let started = Instant::now();
    let deadline = Duration::from_secs(30);
    let mut last: String;
    let series = loop {
        if let Ok(Some(status)) = prometheus.child.try_wait() {
            panic!(
                "Prometheus exited ({status}):\n{}",
                prometheus_log(dir.path())
            );
        }
        match query(prometheus_addr, "trailhound_events_read_total") {
            Ok(series) => {
                let sum: f64 = series.iter().map(|(_, v)| v).sum();
                // Alerts of the end-of-input flush come after the last
                // events: wait for a scrape that has both.
                let alerts_seen: f64 = query(prometheus_addr, "trailhound_alerts_total")
                    .map(|a| a.iter().map(|(_, v)| v).sum())
                    .unwrap_or(-1.0);
                if sum == events as f64 && alerts_seen == alerts as f64 {
                    break series;
                }
                last = format!("{series:?}");
            }
            Err(e) => last = e,
        }
        assert!(
            started.elapsed() < deadline,
            "Prometheus did not report {events} events within {deadline:?}; last answer: {last}\n\
             detector at {target_addr}: {:?}\nPrometheus log:\n{}",
            http_get(target_addr, "/healthz"),
            prometheus_log(dir.path())
        );
        std::thread::sleep(Duration::from_millis(250));
    };
    eprintln!(
        "Prometheus reported {events} events {:.1} s after the run's summary",
        started.elapsed().as_secs_f64()
    );

    // Per source, as in the summary.
    let mut got = BTreeMap::new();
    for (labels, value) in &series {
        assert_eq!(labels.get("job").map(String::as_str), Some("trailhound"));
        assert_eq!(
            labels.get("__name__").map(String::as_str),
            Some("trailhound_events_read_total")
        );
        got.insert(
            labels.get("source").cloned().unwrap_or_default(),
            *value as u64,
        );
    }
    for (source, n) in &by_source {
        assert_eq!(got.get(source), Some(n), "source {source}: {got:?}");
    }

    // Alerts by rule and severity add up to the summary's count.
    let alert_series = query(prometheus_addr, "trailhound_alerts_total").unwrap();
    assert!(!alert_series.is_empty());
    for (labels, _) in &alert_series {
        assert!(
            labels.contains_key("rule") && labels.contains_key("severity"),
            "{labels:?}"
        );
        assert!(!labels.contains_key("principal"), "{labels:?}");
    }
    let alert_sum: f64 = alert_series.iter().map(|(_, v)| v).sum();
    assert_eq!(alert_sum, alerts as f64, "{alert_series:?}");

    // Build info: 1, with this version.
    let info = query(prometheus_addr, "trailhound_build_info").unwrap();
    assert_eq!(info.len(), 1, "{info:?}");
    assert_eq!(info[0].1, 1.0);
    assert_eq!(
        info[0].0.get("version").map(String::as_str),
        Some(env!("CARGO_PKG_VERSION"))
    );

    // Every batch's rows were observed.
    let rows = query(prometheus_addr, "trailhound_batch_rows_sum").unwrap();
    assert_eq!(rows.first().map(|r| r.1), Some(events as f64), "{rows:?}");

    // And the target is up.
    let up = query(prometheus_addr, "up{job=\"trailhound\"}").unwrap();
    assert_eq!(up.first().map(|r| r.1), Some(1.0), "{up:?}");

    // Every query of the Grafana dashboard is PromQL that this Prometheus
    // accepts (Grafana's interval macros replaced by fixed ranges).
    let exprs = dashboard_exprs();
    assert!(exprs.len() >= 10, "{exprs:?}");
    for expr in &exprs {
        let q = expr
            .replace("$__rate_interval", "1m")
            .replace("$__range", "5m");
        if let Err(e) = query(prometheus_addr, &q) {
            panic!("the dashboard query {expr:?} fails: {e}");
        }
    }
    // Those about what the demo exercised have data, once Prometheus holds
    // the few samples that rate() and increase() need.
    let until = Instant::now() + Duration::from_secs(15);
    loop {
        let n = query(
            prometheus_addr,
            "count_over_time(trailhound_build_info[1m])",
        )
        .ok()
        .and_then(|r| r.first().map(|s| s.1))
        .unwrap_or(0.0);
        if n >= 3.0 {
            break;
        }
        assert!(Instant::now() < until, "Prometheus holds {n} scrapes only");
        std::thread::sleep(Duration::from_millis(250));
    }
    for expr in exprs.iter().filter(|e| {
        e.contains("trailhound_events_read_total")
            || e.contains("trailhound_alerts_total[$__range]")
            || e.contains("trailhound_rule_where_seconds_total")
    }) {
        let q = expr
            .replace("$__rate_interval", "1m")
            .replace("$__range", "5m");
        let r = query(prometheus_addr, &q).unwrap();
        assert!(!r.is_empty(), "no data for the dashboard query {expr:?}");
    }
    drop(prometheus);
    drop(detector);
}
