//! The `kind: kafka` sink of a config file, end to end: `trailhound detect
//! --demo --config` sends every alert to the alerts topic of a real broker
//! (tansu on loopback through the bus tests' harness, or
//! `TRAILHOUND_KAFKA=host:port`), keyed by alert id, before it exits.

use crate::broker;
use crate::common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::text;
use trailhound_bus::{EventConsumer, TopicKind};

#[test]
fn every_demo_alert_reaches_the_kafka_alerts_topic() {
    let broker = broker::Broker::start();
    let bus = broker.config("notify-kafka");
    trailhound_bus::ensure_topics(&bus, Duration::from_secs(30)).unwrap();
    let topic = bus.topic(TopicKind::Alerts);

    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        "notify:\n  dead_letters: {dl}\n  sinks:\n    - kind: kafka\n      name: bus\n      \
         brokers: env:TEST_KAFKA_BROKERS\n      topic: {topic}\n",
        dl = dir.path().join("notify-dead.jsonl").display()
    );
    std::fs::write(dir.path().join("trailhound.yaml"), config).unwrap();
    let out = common::run_within(
        std::process::Command::new(env!("CARGO_BIN_EXE_trailhound"))
            .args([
                "detect",
                "--demo",
                "--format",
                "json",
                "--config",
                "trailhound.yaml",
            ])
            .env("TEST_KAFKA_BROKERS", &broker.addr)
            .current_dir(dir.path()),
        common::RUN_LIMIT,
    );
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    // Alerts are JSON lines; the demo's scenario report follows them.
    let printed: BTreeMap<String, serde_json::Value> = text(&out.stdout)
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            (v["alert_id"].as_str().unwrap().to_string(), v)
        })
        .collect();
    assert_eq!(printed.len(), 13, "{stderr}");
    assert!(
        stderr.contains("bus (kafka): 13 sent, 0 retried, 0 failed"),
        "{stderr}"
    );
    assert!(!dir.path().join("notify-dead.jsonl").exists());

    // The records: key = alert id, payload = the alert as printed. They
    // carry the alert schema, which an event consumer hands back as not an
    // event, with the message as it was.
    let mut consumer = EventConsumer::subscribe(&bus, "notify-kafka-check", &topic).unwrap();
    let mut got: BTreeMap<String, serde_json::Value> = BTreeMap::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while got.len() < printed.len() && Instant::now() < deadline {
        let batch = consumer
            .poll_batch(100, Duration::from_millis(500))
            .unwrap();
        assert!(batch.events.is_empty());
        for record in batch.undecodable {
            let key = String::from_utf8(record.key.clone().unwrap_or_default()).unwrap();
            let alert: serde_json::Value = serde_json::from_slice(&record.payload).unwrap();
            assert_eq!(alert["alert_id"].as_str(), Some(key.as_str()));
            got.insert(key, alert);
        }
    }
    assert_eq!(got, printed);
}
