//! Tests of the exposition (names, labels, buckets), of the HTTP endpoint
//! over real loopback sockets, and of the Grafana dashboard's metric names
//! against what [`Metrics`] really exports.

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, SystemTime};

use trailhound_core::{Alert, Event, Severity, Source, events_to_batch};

use super::*;

fn event(source: Source, ingest_time: i64) -> Event {
    Event {
        event_time: 1_700_000_000_000_000,
        ingest_time,
        source,
        event_id: "e".into(),
        event_name: "GetObject".into(),
        principal: "arn:aws:iam::1:user/a".into(),
        ..Event::default()
    }
}

fn alert(rule: &str, severity: Severity, last_event_time: i64, detected_at: i64) -> Alert {
    Alert {
        alert_id: "a".into(),
        rule_id: rule.into(),
        title: "t".into(),
        severity,
        principal: "arn:aws:iam::1:user/a".into(),
        account_id: None,
        first_event_time: last_event_time,
        last_event_time,
        detected_at,
        event_ids: vec!["e".into()],
        event_count: 1,
        evidence: "why".into(),
        tags: Vec::new(),
        access_key_id: None,
        session_id: None,
        closes: None,
    }
}

/// Metrics with every family fed at least once.
fn fed() -> Metrics {
    let m = Metrics::with_version("9.9.9").unwrap();
    let events = vec![
        event(Source::Cloudtrail, 10_000_000),
        event(Source::Cloudtrail, 12_000_000),
        event(Source::Session, 11_000_000),
    ];
    m.events_read(&events);
    m.dead_letter("invalid_json");
    m.dead_letter("invalid_json");
    m.dead_letter("too_large");
    m.input_read("cloudtrail");
    m.input_error();
    m.batch_evaluated(&events_to_batch(&events), Duration::from_millis(3));
    // Detected 2 s after the newest ingest time; 90 s after the last event
    // (rule-a), two days after it (rule-b).
    m.alerts_raised(&[
        alert(
            "rule-a",
            Severity::High,
            14_000_000 - 90_000_000,
            14_000_000,
        ),
        alert(
            "rule-a",
            Severity::High,
            14_000_000 - 90_000_000,
            14_000_000,
        ),
        alert(
            "rule-b",
            Severity::Low,
            14_000_000 - 2 * 86_400_000_000,
            14_000_000,
        ),
    ]);
    m.rule_error();
    m.engine_state(&EngineState {
        principals_tracked: 7,
        state_open: 3,
        late_rows_total: 5,
        baseline_cap_refusals_total: 2,
        matches_suppressed_total: 4,
    });
    m.rule_where_seconds([("rule-a", 0.25), ("rule-b", 0.5)]);
    m.checkpoint_written_at(SystemTime::now() - Duration::from_secs(30));
    m.consumer_lag(2, 40);
    m.action("quarantine_role", "shadow");
    // A notify sink whose route takes nothing: one alert not routed.
    let sink = crate::notify::SlackSink::new(
        crate::notify::SlackConfig {
            name: "chat".into(),
            webhook_url: "http://127.0.0.1:9/services/x".into(),
        },
        crate::notify::Route::new(Severity::Critical, Vec::new(), &[] as &[&str]).unwrap(),
        crate::notify::DeliveryPolicy {
            dead_letters: std::env::temp_dir().join("trailhound-metrics-test.jsonl"),
            ..crate::notify::DeliveryPolicy::default()
        },
    )
    .unwrap();
    m.watch_sinks([sink.stats_handle()]);
    let mut sink = sink;
    crate::AlertSink::send(&mut sink, &alert("rule-a", Severity::Low, 0, 1)).unwrap();
    drop(sink);
    m
}

/// The value of the sample line that starts with `series ` (exact series).
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|l| {
        l.strip_prefix(series)?
            .strip_prefix(' ')?
            .trim()
            .parse()
            .ok()
    })
}

fn families(text: &str) -> BTreeSet<(String, String)> {
    text.lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| {
            let mut p = l.split(' ');
            Some((p.next()?.to_string(), p.next()?.to_string()))
        })
        .collect()
}

#[test]
fn exposition_has_every_metric_with_its_type() {
    let text = fed().render();
    let want = [
        ("trailhound_events_read_total", "counter"),
        ("trailhound_dead_letters_total", "counter"),
        ("trailhound_inputs_total", "counter"),
        ("trailhound_input_errors_total", "counter"),
        ("trailhound_batch_duration_seconds", "histogram"),
        ("trailhound_batch_rows", "histogram"),
        ("trailhound_event_to_alert_seconds", "histogram"),
        ("trailhound_alerts_total", "counter"),
        ("trailhound_rule_errors_total", "counter"),
        ("trailhound_matches_suppressed_total", "counter"),
        ("trailhound_rule_where_seconds_total", "counter"),
        ("trailhound_principals_tracked", "gauge"),
        ("trailhound_baseline_cap_refusals_total", "counter"),
        ("trailhound_state_open", "gauge"),
        ("trailhound_late_rows_total", "counter"),
        ("trailhound_checkpoint_age_seconds", "gauge"),
        ("trailhound_checkpoints_total", "counter"),
        ("trailhound_consumer_lag", "gauge"),
        ("trailhound_actions_total", "counter"),
        ("trailhound_notify_total", "counter"),
        ("trailhound_notify_dead_letters_total", "counter"),
        ("trailhound_notify_queue_depth", "gauge"),
        ("trailhound_build_info", "gauge"),
    ];
    let got = families(&text);
    let want: BTreeSet<(String, String)> = want
        .iter()
        .map(|(n, t)| (n.to_string(), t.to_string()))
        .collect();
    assert_eq!(got, want, "{text}");
    for (name, kind) in &got {
        assert_eq!(name.ends_with("_total"), kind == "counter", "{name}");
        assert!(
            text.contains(&format!("# HELP {name} ")),
            "no help for {name}"
        );
    }
}

#[test]
fn exposition_values_and_labels() {
    let text = fed().render();
    let v = |s: &str| sample(&text, s).unwrap_or_else(|| panic!("no {s} in\n{text}"));
    assert_eq!(
        v(r#"trailhound_events_read_total{source="cloudtrail"}"#),
        2.0
    );
    assert_eq!(v(r#"trailhound_events_read_total{source="session"}"#), 1.0);
    assert_eq!(
        v(r#"trailhound_dead_letters_total{reason="invalid_json"}"#),
        2.0
    );
    assert_eq!(
        v(r#"trailhound_dead_letters_total{reason="too_large"}"#),
        1.0
    );
    assert_eq!(v(r#"trailhound_inputs_total{format="cloudtrail"}"#), 1.0);
    assert_eq!(v("trailhound_input_errors_total"), 1.0);
    assert_eq!(
        v(r#"trailhound_alerts_total{rule="rule-a",severity="high"}"#),
        2.0
    );
    assert_eq!(
        v(r#"trailhound_alerts_total{rule="rule-b",severity="low"}"#),
        1.0
    );
    assert_eq!(v("trailhound_rule_errors_total"), 1.0);
    assert_eq!(v("trailhound_principals_tracked"), 7.0);
    assert_eq!(v("trailhound_state_open"), 3.0);
    assert_eq!(v("trailhound_late_rows_total"), 5.0);
    assert_eq!(v("trailhound_baseline_cap_refusals_total"), 2.0);
    assert_eq!(v("trailhound_matches_suppressed_total"), 4.0);
    assert_eq!(v("trailhound_checkpoints_total"), 1.0);
    let age = v("trailhound_checkpoint_age_seconds");
    assert!((29.0..120.0).contains(&age), "age {age}");
    assert_eq!(v(r#"trailhound_consumer_lag{partition="2"}"#), 40.0);
    assert_eq!(
        v(r#"trailhound_actions_total{kind="quarantine_role",outcome="shadow"}"#),
        1.0
    );
    assert_eq!(v(r#"trailhound_build_info{version="9.9.9"}"#), 1.0);
    // No high-cardinality label anywhere: only these label names appear.
    let allowed = [
        "source",
        "reason",
        "format",
        "le",
        "clock",
        "rule",
        "severity",
        "partition",
        "kind",
        "outcome",
        "version",
        // A notify sink's configured name, and what happened to its jobs.
        "sink",
        "result",
    ];
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some((_, labels)) = line.split_once('{') else {
            continue;
        };
        for pair in labels.split(',') {
            let name = pair.split('=').next().unwrap_or_default();
            assert!(allowed.contains(&name), "label {name:?} in {line}");
        }
    }
}

#[test]
fn histogram_buckets() {
    let text = fed().render();
    let v = |s: &str| sample(&text, s).unwrap_or_else(|| panic!("no {s} in\n{text}"));
    let lat = "trailhound_event_to_alert_seconds";
    // Buckets from 10 ms to one day, both clocks.
    for clock in ["event", "ingest"] {
        let buckets: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with(&format!("{lat}_bucket{{clock=\"{clock}\",")))
            .collect();
        assert_eq!(buckets.len(), EVENT_TO_ALERT_BUCKETS.len() + 1, "{clock}");
        assert!(buckets[0].contains(r#"le="0.01""#), "{}", buckets[0]);
        assert!(buckets[buckets.len() - 2].contains(r#"le="86400""#));
        assert!(buckets[buckets.len() - 1].contains(r#"le="+Inf""#));
    }
    // Event clock: two alerts 90 s after their last event, one two days.
    assert_eq!(v(&format!(r#"{lat}_bucket{{clock="event",le="60"}}"#)), 0.0);
    assert_eq!(
        v(&format!(r#"{lat}_bucket{{clock="event",le="120"}}"#)),
        2.0
    );
    assert_eq!(
        v(&format!(r#"{lat}_bucket{{clock="event",le="86400"}}"#)),
        2.0
    );
    assert_eq!(
        v(&format!(r#"{lat}_bucket{{clock="event",le="+Inf"}}"#)),
        3.0
    );
    assert_eq!(v(&format!(r#"{lat}_count{{clock="event"}}"#)), 3.0);
    // Ingest clock: 2 s after the batch's newest ingest time (12 s), all three.
    assert_eq!(v(&format!(r#"{lat}_bucket{{clock="ingest",le="1"}}"#)), 0.0);
    assert_eq!(
        v(&format!(r#"{lat}_bucket{{clock="ingest",le="2.5"}}"#)),
        3.0
    );
    assert_eq!(v(&format!(r#"{lat}_sum{{clock="ingest"}}"#)), 6.0);
    // Batch: 3 ms, 3 rows.
    assert_eq!(
        v(r#"trailhound_batch_duration_seconds_bucket{le="0.0025"}"#),
        0.0
    );
    assert_eq!(
        v(r#"trailhound_batch_duration_seconds_bucket{le="0.005"}"#),
        1.0
    );
    assert_eq!(v(r#"trailhound_batch_rows_bucket{le="1"}"#), 0.0);
    assert_eq!(v(r#"trailhound_batch_rows_bucket{le="4"}"#), 1.0);
    assert_eq!(v("trailhound_batch_rows_sum"), 3.0);
}

#[test]
fn fresh_metrics_show_zero_series_and_no_checkpoint_age() {
    let m = Metrics::new().unwrap();
    let text = m.render();
    assert_eq!(
        sample(
            &text,
            r#"trailhound_events_read_total{source="cloudtrail"}"#
        ),
        Some(0.0)
    );
    assert_eq!(sample(&text, "trailhound_checkpoints_total"), Some(0.0));
    assert!(
        !text.contains("trailhound_checkpoint_age_seconds"),
        "{text}"
    );
    // No batch yet: alerts observe the event clock only.
    m.alerts_raised(&[alert("r", Severity::Medium, 0, 1_000_000)]);
    let text = m.render();
    assert_eq!(
        sample(
            &text,
            r#"trailhound_event_to_alert_seconds_count{clock="event"}"#
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &text,
            r#"trailhound_event_to_alert_seconds_count{clock="ingest"}"#
        ),
        Some(0.0)
    );
    let version = format!(
        r#"trailhound_build_info{{version="{}"}}"#,
        env!("CARGO_PKG_VERSION")
    );
    assert_eq!(sample(&text, &version), Some(1.0));
}

#[test]
fn clones_share_and_instances_do_not() {
    let a = Metrics::new().unwrap();
    let b = a.clone();
    let other = Metrics::new().unwrap();
    b.input_error();
    a.input_error();
    assert_eq!(
        sample(&a.render(), "trailhound_input_errors_total"),
        Some(2.0)
    );
    assert_eq!(
        sample(&other.render(), "trailhound_input_errors_total"),
        Some(0.0)
    );
}

#[test]
fn engine_counters_follow_totals_and_never_go_down() {
    let m = Metrics::new().unwrap();
    let mut s = EngineState {
        late_rows_total: 10,
        ..EngineState::default()
    };
    m.engine_state(&s);
    s.late_rows_total = 4;
    m.engine_state(&s);
    assert_eq!(
        sample(&m.render(), "trailhound_late_rows_total"),
        Some(10.0)
    );
    s.late_rows_total = 12;
    m.engine_state(&s);
    assert_eq!(
        sample(&m.render(), "trailhound_late_rows_total"),
        Some(12.0)
    );
    // Per-rule where time follows its totals too, per rule.
    m.rule_where_seconds([("r1", 1.5), ("r2", 0.5)]);
    m.rule_where_seconds([("r1", 1.0), ("r2", 2.0)]);
    let text = m.render();
    assert_eq!(
        sample(&text, "trailhound_rule_where_seconds_total{rule=\"r1\"}"),
        Some(1.5)
    );
    assert_eq!(
        sample(&text, "trailhound_rule_where_seconds_total{rule=\"r2\"}"),
        Some(2.0)
    );
}

// ---- the HTTP endpoint ----

fn start() -> (MetricsServer, SocketAddr) {
    let m = fed();
    let server = MetricsServer::start("127.0.0.1:0".parse().unwrap(), m).unwrap();
    let addr = server.local_addr();
    (server, addr)
}

/// Sends `request` whole and reads the answer to the end.
fn exchange(addr: SocketAddr, request: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(request).unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).unwrap();
    String::from_utf8_lossy(&out).into_owned()
}

fn get(addr: SocketAddr, path: &str) -> String {
    exchange(
        addr,
        format!("GET {path} HTTP/1.1\r\nHost: x\r\nUser-Agent: test\r\n\r\n").as_bytes(),
    )
}

#[test]
fn serves_metrics_and_health() {
    let (_server, addr) = start();
    let r = get(addr, "/metrics");
    assert!(r.starts_with("HTTP/1.1 200 OK\r\n"), "{r}");
    assert!(
        r.contains("\r\nContent-Type: text/plain; version=0.0.4"),
        "{r}"
    );
    let (head, body) = r.split_once("\r\n\r\n").unwrap();
    assert!(
        head.contains(&format!("Content-Length: {}", body.len())),
        "{head}"
    );
    assert_eq!(
        sample(body, r#"trailhound_events_read_total{source="cloudtrail"}"#),
        Some(2.0)
    );
    // A query string is ignored; HEAD has the headers and no body.
    assert!(get(addr, "/metrics?x=1").starts_with("HTTP/1.1 200 OK"));
    let h = exchange(addr, b"HEAD /metrics HTTP/1.0\r\n\r\n");
    assert!(h.starts_with("HTTP/1.1 200 OK"), "{h}");
    assert!(h.ends_with("\r\n\r\n"), "{h}");

    let r = get(addr, "/healthz");
    assert!(r.starts_with("HTTP/1.1 200 OK"), "{r}");
    assert!(r.ends_with("\r\n\r\nok\n"), "{r}");
}

#[test]
fn unknown_paths_methods_and_garbage() {
    let (_server, addr) = start();
    assert!(get(addr, "/").starts_with("HTTP/1.1 404 Not Found"));
    assert!(get(addr, "/metricsx").starts_with("HTTP/1.1 404 Not Found"));
    let r = exchange(addr, b"POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n");
    assert!(r.starts_with("HTTP/1.1 405 Method Not Allowed"), "{r}");
    assert!(r.contains("Allow: GET, HEAD"), "{r}");
    for bad in [
        &b"\r\n\r\n"[..],
        b"GET\r\n\r\n",
        b"GET /metrics\r\n\r\n",
        b"GET /metrics SMTP/2 extra\r\n\r\n",
        b"\xff\xfe /metrics HTTP/1.1\r\n\r\n",
    ] {
        let r = exchange(addr, bad);
        assert!(r.starts_with("HTTP/1.1 400 Bad Request"), "{bad:?}: {r}");
    }
    // Bare newlines end a head too.
    assert!(exchange(addr, b"GET /healthz HTTP/1.0\n\n").starts_with("HTTP/1.1 200 OK"));
    // Still serving after all that.
    assert!(get(addr, "/healthz").starts_with("HTTP/1.1 200 OK"));
}

#[test]
fn oversized_request_is_refused() {
    let (_server, addr) = start();
    let mut big = b"GET /metrics HTTP/1.1\r\nX-Filler: ".to_vec();
    big.extend(std::iter::repeat_n(b'a', MAX_REQUEST_BYTES));
    big.extend_from_slice(b"\r\n\r\n");
    let r = exchange(addr, &big);
    assert!(r.starts_with("HTTP/1.1 431 "), "{r}");
    // A head that never ends is cut at the cap as well.
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let _ = s.write_all(&vec![b'x'; 3 * MAX_REQUEST_BYTES]);
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    assert!(String::from_utf8_lossy(&out).starts_with("HTTP/1.1 431 "));
    assert!(get(addr, "/healthz").starts_with("HTTP/1.1 200 OK"));
}

#[test]
fn silent_client_does_not_block_the_server() {
    let (_server, addr) = start();
    let idle = TcpStream::connect(addr).unwrap();
    let started = std::time::Instant::now();
    let r = get(addr, "/healthz");
    assert!(r.starts_with("HTTP/1.1 200 OK"), "{r}");
    assert!(started.elapsed() < Duration::from_secs(8));
    drop(idle);
}

#[test]
fn stops_on_drop() {
    let (server, addr) = start();
    assert!(get(addr, "/healthz").starts_with("HTTP/1.1 200 OK"));
    drop(server);
    let refused = TcpStream::connect_timeout(&addr, Duration::from_secs(2));
    assert!(refused.is_err(), "still accepting on {addr}");
}

#[test]
fn bind_error_is_typed() {
    let (_server, addr) = start();
    let err = MetricsServer::start(addr, Metrics::new().unwrap()).unwrap_err();
    assert!(matches!(err, MetricsError::Bind { .. }), "{err}");
    assert!(err.to_string().contains(&addr.to_string()), "{err}");
}

#[test]
fn an_address_beyond_loopback_is_refused_unless_asked_for() {
    let err =
        MetricsServer::start("0.0.0.0:0".parse().unwrap(), Metrics::new().unwrap()).unwrap_err();
    assert!(matches!(err, MetricsError::NotLoopback { .. }), "{err}");
    assert!(err.to_string().contains("--metrics-allow-remote"), "{err}");
    let exposed =
        MetricsServer::start_remote("0.0.0.0:0".parse().unwrap(), Metrics::new().unwrap());
    assert!(exposed.is_ok(), "start_remote takes any address");
}

#[test]
fn pending_records_are_read_at_each_scrape() {
    let m = Metrics::new().unwrap();
    let pending = trailhound_bus::PendingRecords::default();
    m.watch_pending("ingest", vec![pending.clone()]);
    assert!(
        m.render()
            .contains("trailhound_bus_pending_records{role=\"ingest\"} 0")
    );
    m.bus_restart("ingest");
    assert!(
        m.render()
            .contains("trailhound_bus_restarts_total{role=\"ingest\"} 1")
    );
}

// ---- the Grafana dashboard ----

/// Every `trailhound_*` name in the dashboard's queries is a family the
/// detector exports (histogram names with `_bucket`, `_sum` or `_count`).
#[test]
fn dashboard_queries_use_exported_metrics() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../deploy/grafana/dashboards/trailhound.json"
    );
    let text = std::fs::read_to_string(path).unwrap();
    let dashboard: serde_json::Value = serde_json::from_str(&text).unwrap();
    let mut exprs = Vec::new();
    collect_exprs(&dashboard, &mut exprs);
    assert!(exprs.len() >= 8, "{exprs:?}");

    let exported = families(&fed().render());
    let kind_of = |name: &str| {
        exported
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, k)| k.clone())
    };
    let mut used = BTreeSet::new();
    for expr in &exprs {
        for name in metric_names(expr) {
            let ok = match kind_of(&name) {
                Some(k) => k != "histogram",
                None => ["_bucket", "_sum", "_count"].iter().any(|suffix| {
                    name.strip_suffix(suffix)
                        .and_then(kind_of)
                        .is_some_and(|k| k == "histogram")
                }),
            };
            assert!(
                ok,
                "the dashboard queries {name}, which is not exported: {expr}"
            );
            used.insert(name);
        }
    }
    for must in [
        "trailhound_events_read_total",
        "trailhound_dead_letters_total",
        "trailhound_batch_duration_seconds_bucket",
        "trailhound_event_to_alert_seconds_bucket",
        "trailhound_alerts_total",
        "trailhound_principals_tracked",
        "trailhound_checkpoint_age_seconds",
        "trailhound_consumer_lag",
        "trailhound_notify_total",
        "trailhound_notify_queue_depth",
    ] {
        assert!(used.contains(must), "the dashboard has no panel on {must}");
    }
}

fn collect_exprs(v: &serde_json::Value, out: &mut Vec<String>) {
    match v {
        serde_json::Value::Object(map) => {
            for (k, v) in map {
                match (k.as_str(), v) {
                    ("expr", serde_json::Value::String(s)) => out.push(s.clone()),
                    _ => collect_exprs(v, out),
                }
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|v| collect_exprs(v, out)),
        _ => {}
    }
}

fn metric_names(expr: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = expr;
    while let Some(i) = rest.find("trailhound_") {
        let tail = &rest[i..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        names.push(tail[..end].to_string());
        rest = &tail[end..];
    }
    names
}

#[test]
fn notification_sinks_are_reported_at_each_scrape() {
    use crate::AlertSink;
    use crate::notify::{DeliveryPolicy, Route, SlackConfig, SlackSink};

    let dir = tempfile::tempdir().unwrap();
    let policy = DeliveryPolicy {
        dead_letters: dir.path().join("dead.jsonl"),
        ..DeliveryPolicy::default()
    };
    let route = Route::new(Severity::Critical, Vec::new(), &[] as &[&str]).unwrap();
    let mut sink = SlackSink::new(
        SlackConfig {
            name: "chat".into(),
            webhook_url: "http://127.0.0.1:9/services/x".into(),
        },
        route,
        policy,
    )
    .unwrap();
    let m = Metrics::new().unwrap();
    assert!(!m.render().contains("trailhound_notify_total"));
    m.watch_sinks([sink.stats_handle()]);
    let series = r#"trailhound_notify_total{kind="slack",result="not_routed",sink="chat"}"#;
    assert_eq!(sample(&m.render(), series), Some(0.0));
    // Not routed (below critical): counted by the sink, seen at the next scrape.
    sink.send(&alert("r", Severity::Low, 0, 1)).unwrap();
    sink.send(&alert("r", Severity::Low, 0, 1)).unwrap();
    let text = m.render();
    assert_eq!(sample(&text, series), Some(2.0));
    assert_eq!(
        sample(
            &text,
            r#"trailhound_notify_total{kind="slack",result="sent",sink="chat"}"#
        ),
        Some(0.0)
    );
    assert_eq!(
        sample(
            &text,
            r#"trailhound_notify_queue_depth{kind="slack",sink="chat"}"#
        ),
        Some(0.0)
    );
    assert_eq!(
        sample(
            &text,
            r#"trailhound_notify_dead_letters_total{kind="slack",sink="chat"}"#
        ),
        Some(0.0)
    );
    drop(sink);
}
