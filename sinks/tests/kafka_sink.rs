//! The Kafka alert sink against a real broker: tansu on a loopback port
//! (`TRAILHOUND_TANSU`, else `~/.cache/trailhound/tools/bin/tansu`, which
//! `scripts/test` installs), or `TRAILHOUND_KAFKA=host:port`. Without either
//! the broker test fails with instructions; the unreachable-broker test needs
//! no broker.

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{Offset, TopicPartitionList};
use trailhound_core::{Alert, Severity};
use trailhound_sinks::AlertSink;
use trailhound_sinks::notify::NotifyDeadLetter;
use trailhound_sinks::notify::kafka::BusConfig;
use trailhound_sinks::notify::{DeliveryPolicy, KafkaSink, KafkaSinkConfig, Route};

struct Broker {
    addr: String,
    child: Option<Child>,
    _dir: Option<tempfile::TempDir>,
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap()
}

fn broker() -> Broker {
    if let Ok(addr) = std::env::var("TRAILHOUND_KAFKA")
        && !addr.trim().is_empty()
    {
        return Broker {
            addr: addr.trim().to_string(),
            child: None,
            _dir: None,
        };
    }
    let tansu = std::env::var("TRAILHOUND_TANSU")
        .ok()
        .filter(|p| !p.trim().is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let home = std::env::var("HOME").unwrap_or_else(|_| "/root".into());
            PathBuf::from(home).join(".cache/trailhound/tools/bin/tansu")
        });
    assert!(
        tansu.is_file(),
        "no Kafka broker: {} does not exist; set TRAILHOUND_KAFKA=host:port, or install tansu \
         (scripts/test does: cargo install tansu --locked --version 0.6.0 --features \
         dynostore,libsql --root ~/.cache/trailhound/tools), or set TRAILHOUND_TANSU",
        tansu.display()
    );
    let dir = tempfile::tempdir().unwrap();
    let addr = format!("127.0.0.1:{}", free_port());
    let url = format!("tcp://{addr}");
    let mut command = Command::new(&tansu);
    command
        .args(["broker", "--listener-url", &url])
        .args(["--advertised-listener-url", &url])
        .args(["--storage-engine", "sqlite://tansu.db"])
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // tansu also reads its settings from the environment.
    for var in [
        "CLUSTER_ID",
        "LISTENER_URL",
        "ADVERTISED_LISTENER_URL",
        "STORAGE_ENGINE",
        "SCHEMA_REGISTRY",
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "DATA_LAKE",
    ] {
        command.env_remove(var);
    }
    let child = command.spawn().unwrap();
    let broker = Broker {
        addr,
        child: Some(child),
        _dir: Some(dir),
    };
    let target = broker.addr.parse().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect_timeout(&target, Duration::from_millis(200)).is_err() {
        assert!(
            Instant::now() < deadline,
            "tansu does not accept connections"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    broker
}

fn alert(n: u32, severity: Severity) -> Alert {
    Alert {
        alert_id: format!("alert-{n:04}"),
        rule_id: "aws-cloudtrail-logging-stopped".into(),
        title: "CloudTrail logging stopped or trail deleted".into(),
        severity,
        principal: "arn:aws:iam::111122223333:user/bob".into(),
        account_id: Some("111122223333".into()),
        first_event_time: 1_793_613_600_000_000 + i64::from(n),
        last_event_time: 1_793_613_600_000_000 + i64::from(n),
        detected_at: 1_793_613_700_000_000,
        event_ids: vec![format!("e{n}")],
        event_count: 1,
        evidence: format!("bob called StopLogging ({n})"),
        tags: vec!["attack.t1562.008".into()],
        access_key_id: None,
        session_id: None,
        closes: None,
    }
}

fn policy(dir: &std::path::Path) -> DeliveryPolicy {
    DeliveryPolicy {
        dead_letters: dir.join("dead.jsonl"),
        initial_backoff: Duration::from_millis(50),
        max_backoff: Duration::from_millis(200),
        request_timeout: Duration::from_secs(20),
        flush_timeout: Duration::from_secs(60),
        ..DeliveryPolicy::default()
    }
}

#[test]
fn routed_alerts_reach_the_alerts_topic_keyed_by_id_with_the_schema_header() {
    let broker = broker();
    let dir = tempfile::tempdir().unwrap();
    let mut bus = BusConfig::new(broker.addr.clone());
    bus.topic_prefix = format!("sink{}.", std::process::id());
    bus.partitions = 2;
    trailhound_bus::ensure_topics(&bus, Duration::from_secs(30)).unwrap();
    let route = Route::new(Severity::High, Vec::new(), &[] as &[&str]).unwrap();
    let mut sink = KafkaSink::new(
        KafkaSinkConfig {
            name: "alerts-topic".into(),
            bus: bus.clone(),
        },
        route,
        policy(dir.path()),
    )
    .unwrap();
    assert_eq!(
        sink.topic(),
        format!("{}trailhound.alerts", bus.topic_prefix)
    );
    let sent: Vec<Alert> = (1..=5).map(|n| alert(n, Severity::High)).collect();
    for a in &sent {
        sink.send(a).unwrap();
    }
    sink.send(&alert(99, Severity::Low)).unwrap();
    sink.flush().unwrap();
    let stats = sink.close();
    assert_eq!((stats.sent, stats.not_routed, stats.failed), (5, 1, 0));

    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &broker.addr)
        .set("group.id", "kafka-sink-test")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let topic = format!("{}trailhound.alerts", bus.topic_prefix);
    let mut partitions = TopicPartitionList::new();
    for p in 0..2 {
        partitions
            .add_partition_offset(&topic, p, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&partitions).unwrap();
    let mut got: Vec<(String, String, Alert)> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while got.len() < sent.len() && Instant::now() < deadline {
        let Some(message) = consumer.poll(Duration::from_millis(500)) else {
            continue;
        };
        let message = message.unwrap();
        let key = String::from_utf8(message.key().unwrap().to_vec()).unwrap();
        let schema = message
            .headers()
            .and_then(|h| h.iter().find(|x| x.key == "trailhound-schema"))
            .and_then(|h| h.value)
            .map(|v| String::from_utf8_lossy(v).to_string())
            .unwrap_or_default();
        let alert: Alert = serde_json::from_slice(message.payload().unwrap()).unwrap();
        got.push((key, schema, alert));
    }
    got.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(got.len(), sent.len(), "{got:?}");
    for ((key, schema, alert), want) in got.iter().zip(&sent) {
        assert_eq!(key, &want.alert_id);
        assert_eq!(schema, "alert.v1+json");
        assert_eq!(alert, want);
    }
}

#[test]
fn an_unreachable_broker_never_blocks_send_and_ends_in_the_dead_letter_file() {
    let dir = tempfile::tempdir().unwrap();
    // A port nothing listens on.
    let bus = BusConfig::new(format!("127.0.0.1:{}", free_port()));
    let mut sink = KafkaSink::new(
        KafkaSinkConfig {
            name: "down".into(),
            bus,
        },
        Route::default(),
        DeliveryPolicy {
            queue_size: 2,
            max_attempts: 2,
            request_timeout: Duration::from_millis(300),
            initial_backoff: Duration::from_millis(10),
            max_backoff: Duration::from_millis(20),
            flush_timeout: Duration::from_secs(5),
            ..policy(dir.path())
        },
    )
    .unwrap();
    // Five alerts into a queue of two: send returns at once each time and
    // spills the oldest queued ones.
    for n in 1..=5 {
        sink.send(&alert(n, Severity::High)).unwrap();
    }
    let stats = sink.close();
    assert_eq!(stats.sent, 0);
    assert_eq!(stats.dropped + stats.failed, 5, "{stats:?}");
    assert!(stats.dropped >= 2, "{stats:?}");
    let lines = std::fs::read_to_string(dir.path().join("dead.jsonl")).unwrap();
    let dead: Vec<NotifyDeadLetter> = lines
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(dead.len(), 5);
    assert!(dead.iter().all(|d| d.kind == "kafka" && d.sink == "down"));
    assert!(dead.iter().any(|d| d.reason == "queue_full"));
    assert!(
        dead.iter()
            .any(|d| d.reason == "gave_up" || d.reason == "shutdown"),
        "{dead:?}"
    );
    let mut ids: Vec<String> = dead
        .iter()
        .filter_map(|d| d.alert.as_ref().map(|a| a.alert_id.clone()))
        .collect();
    ids.sort();
    assert_eq!(
        ids,
        (1..=5).map(|n| format!("alert-{n:04}")).collect::<Vec<_>>()
    );
}
