//! The notification sinks against real HTTP servers on 127.0.0.1
//! ([`super::testserver`]), with short backoff settings so every test ends
//! within seconds.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;
use trailhound_core::{Alert, Severity};

use super::testserver::{Reply, TestServer, free_port};
use super::*;
use crate::AlertSink;

fn alert(i: usize, severity: Severity) -> Alert {
    Alert {
        alert_id: format!("alert-{i:04}"),
        rule_id: "aws-cloudtrail-logging-stopped".into(),
        title: "CloudTrail logging stopped or trail deleted".into(),
        severity,
        principal: "arn:aws:iam::123456789012:user/mallory".into(),
        account_id: Some("123456789012".into()),
        first_event_time: 1_793_000_000_000_000,
        last_event_time: 1_793_000_060_000_000,
        detected_at: 1_793_000_100_000_000,
        event_ids: vec!["ev-1".into(), "ev-2".into()],
        event_count: 3,
        evidence: "mallory called StopLogging on trail main from 203.0.113.7".into(),
        tags: vec![
            "attack.defense-evasion".into(),
            "attack.t1562.008".into(),
            "baseline".into(),
        ],
        access_key_id: None,
        session_id: None,
        closes: None,
    }
}

/// Short waits, a small queue, dead letters in `dir`.
fn policy(dir: &Path) -> DeliveryPolicy {
    DeliveryPolicy {
        queue_size: 100,
        max_attempts: 50,
        give_up_after: Duration::from_secs(10),
        initial_backoff: Duration::from_millis(50),
        max_backoff: Duration::from_millis(200),
        max_retry_after: Duration::from_secs(5),
        request_timeout: Duration::from_secs(2),
        flush_timeout: Duration::from_secs(5),
        dead_letters: dir.join("notify-dl.jsonl"),
    }
}

fn dead_letters(path: &Path) -> Vec<NotifyDeadLetter> {
    match std::fs::read_to_string(path) {
        Ok(text) => text
            .lines()
            .map(|l| serde_json::from_str(l).expect("a dead letter"))
            .collect(),
        Err(_) => Vec::new(),
    }
}

fn texts(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) => out.push(s.clone()),
        Value::Array(a) => a.iter().for_each(|x| texts(x, out)),
        Value::Object(o) => o.values().for_each(|x| texts(x, out)),
        _ => {}
    }
}

#[test]
fn slack_gets_a_valid_block_kit_message_within_slacks_limits() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(|_, _| Reply::ok());
    let mut sink = SlackSink::new(
        SlackConfig {
            name: "chat".into(),
            webhook_url: server.url("/services/T000/B000/XXXX"),
        },
        Route::all(),
        policy(dir.path()),
    )
    .unwrap();
    let mut long = alert(1, Severity::High);
    long.evidence = format!("<@U123> & {}", "x".repeat(5000));
    long.title = "T".repeat(300);
    sink.send(&long).unwrap();
    sink.send(&alert(2, Severity::Critical)).unwrap();
    sink.flush().unwrap();
    let reqs = server.wait_for(2, Duration::from_secs(5));
    assert_eq!(reqs.len(), 2);
    for r in &reqs {
        assert_eq!(r.method, "POST");
        assert_eq!(r.path, "/services/T000/B000/XXXX");
        assert!(
            r.header("content-type")
                .unwrap_or_default()
                .starts_with("application/json")
        );
        let m = r.json();
        assert!(
            m["text"].as_str().is_some_and(|t| !t.is_empty()),
            "fallback text"
        );
        let blocks = m["blocks"].as_array().expect("blocks");
        assert!(!blocks.is_empty() && blocks.len() <= 50);
        for b in blocks {
            match b["type"].as_str() {
                Some("header") => {
                    assert_eq!(b["text"]["type"], "plain_text");
                    assert!(b["text"]["text"].as_str().unwrap().chars().count() <= 150);
                }
                Some("section") => {
                    if let Some(t) = b["text"]["text"].as_str() {
                        assert_eq!(b["text"]["type"], "mrkdwn");
                        assert!(t.chars().count() <= 3000);
                    }
                    if let Some(fields) = b["fields"].as_array() {
                        assert!(fields.len() <= 10);
                        for f in fields {
                            assert!(f["text"].as_str().unwrap().chars().count() <= 2000);
                        }
                    }
                    assert!(b.get("text").is_some() || b.get("fields").is_some());
                }
                Some("context") => {
                    let e = b["elements"].as_array().unwrap();
                    assert!(!e.is_empty() && e.len() <= 10);
                }
                other => panic!("unexpected block type {other:?}"),
            }
        }
    }
    let first = reqs[0].json();
    let blocks = first["blocks"].as_array().unwrap();
    let header = blocks[0]["text"]["text"].as_str().unwrap();
    assert!(header.contains("HIGH") && header.ends_with('…'), "{header}");
    let mut all = Vec::new();
    texts(&first, &mut all);
    let all = all.join("\n");
    for want in [
        "arn:aws:iam::123456789012:user/mallory",
        "123456789012",
        "aws-cloudtrail-logging-stopped",
        "alert-0001",
        "attack.t1562.008",
        "baseline",
        "*Events*\n3",
        "&lt;@U123&gt; &amp; xxx",
    ] {
        assert!(all.contains(want), "missing {want:?} in {all}");
    }
    assert!(!all.contains("<@U123>"), "mentions must be escaped");
    let evidence = all.lines().find(|l| l.starts_with("&lt;@U123")).unwrap();
    assert!(evidence.ends_with('…'));
    let stats = sink.stats();
    assert_eq!((stats.sent, stats.failed, stats.queue_depth), (2, 0, 0));
}

#[test]
fn slack_429_with_retry_after_is_retried_after_about_a_second_then_delivered() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(|_, i| {
        if i == 0 {
            Reply::status(429, "rate_limited").with_header("Retry-After", "1")
        } else {
            Reply::ok()
        }
    });
    let mut sink = SlackSink::new(
        SlackConfig {
            name: "chat".into(),
            webhook_url: server.url("/hook"),
        },
        Route::all(),
        policy(dir.path()),
    )
    .unwrap();
    sink.send(&alert(1, Severity::High)).unwrap();
    assert!(
        sink.flush_within(Duration::from_secs(5)).unwrap() || {
            // flush returns early while backing off: wait for the retry instead.
            server.wait_for(2, Duration::from_secs(5)).len() == 2
        }
    );
    let reqs = server.wait_for(2, Duration::from_secs(5));
    assert_eq!(reqs.len(), 2, "one 429 and one retry");
    let gap = reqs[1].at - reqs[0].at;
    assert!(
        gap >= Duration::from_millis(950) && gap < Duration::from_secs(3),
        "retried after {gap:?}"
    );
    assert_eq!(reqs[0].body, reqs[1].body);
    let stats = sink.close();
    assert_eq!((stats.sent, stats.retried, stats.failed), (1, 1, 0));
    assert!(dead_letters(&dir.path().join("notify-dl.jsonl")).is_empty());
}

#[test]
fn pagerduty_triggers_with_the_alert_id_as_dedup_key_and_resolves() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(|r, _| {
        let dedup = r.json()["dedup_key"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        Reply::status(
            202,
            &format!(r#"{{"status":"success","message":"Event processed","dedup_key":"{dedup}"}}"#),
        )
    });
    let mut config = PagerDutyConfig::new("oncall", "R0UT1NGKEY0000000000000000000000");
    config.base_url = server.url("");
    config.resolve = true;
    let route = Route::new(Severity::High, vec![], &[] as &[&str]).unwrap();
    let mut sink = PagerDutySink::new(config, route, policy(dir.path())).unwrap();
    sink.send(&alert(1, Severity::Medium)).unwrap(); // not routed
    sink.send(&alert(2, Severity::High)).unwrap();
    sink.send(&alert(2, Severity::High)).unwrap(); // the same alert again
    sink.send(&alert(3, Severity::Critical)).unwrap();
    sink.resolve("alert-0002").unwrap();
    sink.flush().unwrap();
    let reqs = server.wait_for(4, Duration::from_secs(5));
    assert_eq!(reqs.len(), 4);
    assert!(
        reqs.iter()
            .all(|r| r.path == "/v2/enqueue" && r.method == "POST")
    );
    let events: Vec<Value> = reqs.iter().map(|r| r.json()).collect();
    for e in &events[..3] {
        assert_eq!(e["routing_key"], "R0UT1NGKEY0000000000000000000000");
        assert_eq!(e["event_action"], "trigger");
        let p = &e["payload"];
        assert!(
            p["summary"]
                .as_str()
                .unwrap()
                .contains("CloudTrail logging stopped")
        );
        assert!(p["summary"].as_str().unwrap().chars().count() <= 1024);
        assert_eq!(p["source"], "aws account 123456789012");
        assert_eq!(p["component"], "arn:aws:iam::123456789012:user/mallory");
        assert_eq!(p["class"], "aws-cloudtrail-logging-stopped");
        assert!(p["timestamp"].as_str().unwrap().starts_with("2026-"));
        assert!(
            p["custom_details"]["evidence"]
                .as_str()
                .unwrap()
                .contains("StopLogging")
        );
        assert_eq!(
            p["custom_details"]["event_ids"],
            serde_json::json!(["ev-1", "ev-2"])
        );
    }
    assert_eq!(events[0]["dedup_key"], "alert-0002");
    assert_eq!(
        events[1]["dedup_key"], "alert-0002",
        "stable across duplicates"
    );
    assert_eq!(events[0]["payload"]["severity"], "error");
    assert_eq!(events[2]["dedup_key"], "alert-0003");
    assert_eq!(events[2]["payload"]["severity"], "critical");
    assert_eq!(
        events[3],
        serde_json::json!({"routing_key": "R0UT1NGKEY0000000000000000000000", "event_action": "resolve", "dedup_key": "alert-0002"})
    );
    let stats = sink.stats();
    assert_eq!((stats.sent, stats.not_routed, stats.failed), (4, 1, 0));

    let mut off = PagerDutyConfig::new("quiet", "k");
    off.base_url = server.url("");
    let quiet = PagerDutySink::new(off, Route::all(), policy(dir.path())).unwrap();
    assert!(matches!(
        quiet.resolve("alert-0002"),
        Err(NotifyError::ResolveDisabled { .. })
    ));
}

#[test]
fn webhook_signature_verifies_with_the_shared_secret() {
    use hmac::{Hmac, Mac};
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(|_, _| Reply::status(204, ""));
    let secret = b"correct horse battery staple".to_vec();
    let mut sink = WebhookSink::new(
        WebhookConfig {
            name: "soar".into(),
            url: server.url("/in"),
            secret: secret.clone(),
            format: WebhookFormat::Alert,
        },
        Route::all(),
        policy(dir.path()),
    )
    .unwrap();
    let mut ocsf = WebhookSink::new(
        WebhookConfig {
            name: "lake".into(),
            url: server.url("/ocsf"),
            secret: secret.clone(),
            format: WebhookFormat::Ocsf,
        },
        Route::all(),
        policy(dir.path()),
    )
    .unwrap();
    let a = alert(7, Severity::Low);
    sink.send(&a).unwrap();
    sink.flush().unwrap();
    ocsf.send(&a).unwrap();
    ocsf.flush().unwrap();
    let reqs = server.wait_for(2, Duration::from_secs(5));
    assert_eq!(reqs.len(), 2);
    let now = chrono::Utc::now().timestamp();
    for r in &reqs {
        let sig = r
            .header("x-trailhound-signature")
            .expect("signature header");
        let hex = sig.strip_prefix("sha256=").expect("sha256= prefix");
        // Check with the hmac crate directly, not with our own verify.
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(&secret).unwrap();
        mac.update(&r.body);
        let want: String = mac
            .finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(hex, want);
        assert!(webhook::verify(&secret, &r.body, sig));
        assert!(!webhook::verify(b"wrong", &r.body, sig));
        let ts: i64 = r.header("x-trailhound-timestamp").unwrap().parse().unwrap();
        assert!((now - ts).abs() < 60);
        assert_eq!(r.header("x-trailhound-alert-id"), Some("alert-0007"));
    }
    let plain = reqs.iter().find(|r| r.path == "/in").unwrap();
    let back: Alert = serde_json::from_slice(&plain.body).unwrap();
    assert_eq!(back, a);
    let finding = reqs.iter().find(|r| r.path == "/ocsf").unwrap().json();
    assert_eq!(finding["class_uid"], 2004);
    assert_eq!(finding["finding_info"]["uid"], "alert-0007");
}

#[test]
fn a_sink_that_is_down_never_blocks_send_and_dead_letters_every_alert() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("http://127.0.0.1:{}/hook", free_port());
    let mut p = policy(dir.path());
    p.queue_size = 8;
    p.give_up_after = Duration::from_secs(1);
    let dl = p.dead_letters.clone();
    let mut sink = WebhookSink::new(
        WebhookConfig {
            name: "down".into(),
            url,
            secret: b"s".to_vec(),
            format: WebhookFormat::Alert,
        },
        Route::all(),
        p,
    )
    .unwrap();
    let started = Instant::now();
    for i in 0..1000 {
        sink.send(&alert(i, Severity::High)).unwrap();
    }
    let took = started.elapsed();
    assert!(took < Duration::from_secs(2), "1,000 sends took {took:?}");
    let stats = sink.stats();
    assert!(stats.queue_depth <= 9, "{stats:?}");
    assert!(stats.dropped >= 990, "{stats:?}");
    // flush does not wait on a destination that is down.
    let t = Instant::now();
    sink.flush().unwrap();
    assert!(t.elapsed() < Duration::from_secs(2));
    // After the give-up limit every alert is a dead letter.
    let until = Instant::now() + Duration::from_secs(10);
    while sink.stats().dead_lettered < 1000 && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(20));
    }
    let stats = sink.close();
    assert_eq!(stats.dead_lettered, 1000, "{stats:?}");
    assert_eq!(stats.sent, 0);
    assert_eq!(stats.failed + stats.dropped, 1000);
    let letters = dead_letters(&dl);
    assert_eq!(letters.len(), 1000);
    let mut ids: Vec<&str> = letters
        .iter()
        .map(|d| d.alert.as_ref().unwrap().alert_id.as_str())
        .collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 1000, "every alert once");
    let full = letters.iter().filter(|d| d.reason == "queue_full").count();
    let gave_up: Vec<_> = letters.iter().filter(|d| d.reason == "gave_up").collect();
    assert_eq!(full as u64, stats.dropped);
    assert_eq!(full + gave_up.len(), 1000);
    assert!(!gave_up.is_empty());
    assert!(
        gave_up
            .iter()
            .any(|d| d.detail.to_lowercase().contains("refused")),
        "{:?}",
        gave_up[0]
    );
    assert!(
        letters
            .iter()
            .all(|d| d.sink == "down" && d.kind == "webhook")
    );
}

#[test]
fn a_server_back_within_the_retry_window_gets_the_queued_alerts_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let p = policy(dir.path());
    let dl = p.dead_letters.clone();
    let mut sink = SlackSink::new(
        SlackConfig {
            name: "chat".into(),
            webhook_url: format!("http://127.0.0.1:{port}/hook"),
        },
        Route::all(),
        p,
    )
    .unwrap();
    for i in 0..5 {
        sink.send(&alert(i, Severity::Medium)).unwrap();
    }
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(sink.stats().sent, 0);
    assert!(sink.stats().retried >= 1);
    let server = TestServer::start_on(port, |_, _| Reply::ok());
    let reqs = server.wait_for(5, Duration::from_secs(8));
    assert_eq!(reqs.len(), 5);
    let ids: Vec<String> = reqs
        .iter()
        .map(|r| {
            let mut t = Vec::new();
            texts(&r.json(), &mut t);
            t.into_iter()
                .find_map(|s| {
                    s.strip_prefix("alert `")
                        .map(|x| x.trim_end_matches('`').to_string())
                })
                .unwrap()
        })
        .collect();
    assert_eq!(
        ids,
        [
            "alert-0000",
            "alert-0001",
            "alert-0002",
            "alert-0003",
            "alert-0004"
        ]
    );
    assert!(sink.flush_within(Duration::from_secs(2)).unwrap());
    let stats = sink.close();
    assert_eq!((stats.sent, stats.failed, stats.dropped), (5, 0, 0));
    assert!(dead_letters(&dl).is_empty());
}

#[test]
fn a_final_4xx_is_not_retried_and_is_dead_lettered_as_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(|_, _| Reply::status(400, "invalid_payload"));
    let p = policy(dir.path());
    let dl = p.dead_letters.clone();
    let mut sink = SlackSink::new(
        SlackConfig {
            name: "chat".into(),
            webhook_url: server.url("/hook"),
        },
        Route::all(),
        p,
    )
    .unwrap();
    sink.send(&alert(1, Severity::High)).unwrap();
    assert!(sink.flush_within(Duration::from_secs(5)).unwrap());
    assert_eq!(server.requests().len(), 1);
    let letters = dead_letters(&dl);
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].reason, "rejected");
    assert!(
        letters[0].detail.contains("HTTP 400: invalid_payload"),
        "{}",
        letters[0].detail
    );
    assert_eq!(letters[0].attempts, 1);
    assert_eq!(letters[0].alert.as_ref().unwrap().alert_id, "alert-0001");
}

#[test]
fn closing_writes_what_is_left_as_shutdown_within_the_flush_bound() {
    let dir = tempfile::tempdir().unwrap();
    let mut p = policy(dir.path());
    p.give_up_after = Duration::from_secs(60);
    p.initial_backoff = Duration::from_secs(2);
    p.max_backoff = Duration::from_secs(2);
    p.flush_timeout = Duration::from_millis(300);
    let dl = p.dead_letters.clone();
    let mut config = PagerDutyConfig::new("oncall", "k");
    config.base_url = format!("http://127.0.0.1:{}", free_port());
    let mut sink = PagerDutySink::new(config, Route::all(), p).unwrap();
    for i in 0..3 {
        sink.send(&alert(i, Severity::Critical)).unwrap();
    }
    std::thread::sleep(Duration::from_millis(100));
    let t = Instant::now();
    let stats = sink.close();
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    assert_eq!(
        (stats.failed, stats.dead_lettered, stats.queue_depth),
        (3, 3, 0)
    );
    let letters = dead_letters(&dl);
    assert_eq!(letters.len(), 3);
    assert!(
        letters.iter().all(|d| d.reason == "shutdown"),
        "{letters:?}"
    );
}

#[test]
fn urls_are_checked_and_never_shown_with_their_secret_path() {
    let dir = tempfile::tempdir().unwrap();
    let e = SlackSink::new(
        SlackConfig {
            name: "chat".into(),
            webhook_url: "hooks.slack.com/services/T/B/SECRET".into(),
        },
        Route::all(),
        policy(dir.path()),
    )
    .unwrap_err();
    assert!(!e.to_string().contains("SECRET"), "{e}");
    let e = SlackSink::new(
        SlackConfig {
            name: "chat".into(),
            webhook_url: "ftp://example.invalid/services/T/B/SECRET".into(),
        },
        Route::all(),
        policy(dir.path()),
    )
    .unwrap_err();
    assert!(e.to_string().contains("ftp://example.invalid/…"), "{e}");
    assert!(!e.to_string().contains("SECRET"), "{e}");
}
