//! Nothing lost on the worst day, through the real binary and a real broker
//! on loopback:
//!
//! - **Crashes.** The detector is SIGKILLed at random points five times
//!   while it works through a generated organisation on the event topic, and
//!   restarted each time; afterwards every input event is in the audit lake
//!   (read back by DuckDB) exactly once after dedup by event id, and the
//!   alerts of all the runs together, after dedup by alert id, are exactly
//!   those of the uninterrupted embedded run.
//! - **Outages.** While ingest and the detector stream, the broker (sqlite
//!   storage, so that it keeps its records) is stopped for 30 seconds and
//!   started again, and the webhook the alerts go to is down for the first
//!   minute. Both resume on their own: every event reaches the lake, the
//!   webhook receives every alert once it is back, and the metrics showed
//!   the backlog meanwhile (ingest's records waiting for the broker, the
//!   sink's queue).
//!
//! Every wait is bounded; children are killed by guards when a test fails.

use crate::broker;
use crate::cluster;
use crate::common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use broker::{Storage, free_port};
use cluster::{Guard, LATENESS, Setup, alerts, assert_same_alerts, embedded_with, scrape};
use common::text;

/// Event ids of a lake's `events` table: (rows, distinct ids). DuckDB when
/// `TRAILHOUND_PYTHON` has it (scripts/test), else `trailhound sql`.
fn lake_event_ids(lake: &Path) -> (u64, BTreeSet<String>) {
    let ids: Vec<String> = match std::env::var_os("TRAILHOUND_PYTHON") {
        Some(python) => {
            let script = format!(
                "import duckdb\nfor (i,) in duckdb.sql(\"select event_id from read_parquet('{}/table=events/*/*/*.parquet', hive_partitioning=1)\").fetchall():\n    print(i)",
                lake.display()
            );
            let out = Command::new(&python)
                .args(["-c", &script])
                .output()
                .unwrap_or_else(|e| panic!("cannot run {python:?}: {e}"));
            assert!(out.status.success(), "DuckDB failed: {}", text(&out.stderr));
            text(&out.stdout).lines().map(str::to_string).collect()
        }
        None => {
            let lake_arg = lake.display().to_string();
            let out = common::trailhound(
                &[
                    "sql",
                    "--lake",
                    &lake_arg,
                    "--format",
                    "csv",
                    "SELECT event_id FROM events",
                ],
                Path::new("."),
            );
            assert!(out.status.success(), "sql failed: {}", text(&out.stderr));
            text(&out.stdout)
                .lines()
                .skip(1)
                .map(str::to_string)
                .collect()
        }
    };
    let rows = ids.len() as u64;
    (rows, ids.into_iter().collect())
}

/// Every event of the embedded run's lake is in `lake`, and nothing else.
fn assert_lake_holds_every_event_once(want: &Path, got: &Path) {
    let (want_rows, want_ids) = lake_event_ids(want);
    let (got_rows, got_ids) = lake_event_ids(got);
    assert_eq!(
        want_rows,
        want_ids.len() as u64,
        "the embedded lake has no duplicate"
    );
    let missing: Vec<_> = want_ids.difference(&got_ids).take(5).collect();
    let extra: Vec<_> = got_ids.difference(&want_ids).take(5).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "lake event ids differ: {} missing (e.g. {missing:?}), {} extra (e.g. {extra:?})",
        want_ids.difference(&got_ids).count(),
        got_ids.difference(&want_ids).count()
    );
    eprintln!(
        "lake: {} distinct events = the input's {}; {} rows before dedup by event id ({} written again after a restart)",
        got_ids.len(),
        want_ids.len(),
        got_rows,
        got_rows - got_ids.len() as u64
    );
}

/// A small random number from the clock, shown so a failing run can be
/// told apart (the kill points are random by design, not replayable).
fn seed() -> u64 {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    u64::from(nanos) ^ 0x9e37_79b9_7f4a_7c15
}

/// xorshift64*: the next pseudo-random number of `state`.
fn next(state: &mut u64) -> u64 {
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    state.wrapping_mul(0x2545_f491_4f6c_dd1d)
}

#[test]
fn a_detector_killed_five_times_loses_no_event_and_no_alert() {
    let setup = Setup::new("resilience-crash");
    let inputs = cluster::generated(&setup, "30", "2");
    let want = embedded_with(&setup, &inputs, &["--lake", "embedded-lake"]);
    assert!(!want.is_empty(), "the embedded run raised no alerts");
    let events = setup.ingest(&inputs);
    // Small polls keep each run going long enough to be killed mid-stream.
    let slow = ["--poll-records", "20", "--lake", "lake"];
    let mut rng = seed();
    eprintln!("kill points drawn from seed {rng:#x}");
    let mut outputs = Vec::new();
    for kill in 1..=5 {
        let name = format!("d{kill}");
        let mut detector = setup.detector_with(&name, "detect", 60, &slow);
        outputs.push(name.clone());
        let log_marker = "partitions assigned partitions=[PartitionId";
        let deadline = Instant::now() + Duration::from_secs(120);
        while !setup.log(&name).contains(log_marker) {
            assert!(
                Instant::now() < deadline,
                "{name} was assigned no partition within 120 s:\n{}",
                setup.log(&name)
            );
            thread::sleep(Duration::from_millis(100));
        }
        // Somewhere between 0.5 and 6 s into the partitions' work: before,
        // at or after a checkpoint (every 2 s), mid-poll or mid-delivery.
        let after = Duration::from_millis(500 + next(&mut rng) % 5_500);
        thread::sleep(after);
        assert!(
            !setup.log(&name).lines().any(|l| l.starts_with("detect: ")),
            "{name} finished before its kill {kill}; the stream is too short:\n{}",
            setup.log(&name)
        );
        detector.kill();
        eprintln!("kill {kill}: SIGKILL {after:?} after {name} got its partitions");
        // Restarted once the group has dropped the killed member (its
        // session, 6 s), as a supervisor's restart delay would: tansu
        // 0.6.0 gives a member that joins while a dead one is still in the
        // group an empty assignment and never rebalances when the dead one
        // expires (Kafka itself rebalances after max.poll.interval.ms).
        thread::sleep(Duration::from_secs(8));
    }
    let mut last = setup.detector_with("d6", "detect", 20, &slow);
    outputs.push("d6".into());
    let status = last.wait(Duration::from_secs(600));
    assert!(
        status.success(),
        "the last run failed:\n{}",
        setup.log("d6")
    );

    let mut got = BTreeMap::new();
    let mut lines = 0;
    for name in &outputs {
        let path = setup.path(&format!("{name}.out"));
        lines += std::fs::read_to_string(&path)
            .unwrap_or_default()
            .lines()
            .count();
        got.extend(alerts(&path));
    }
    eprintln!(
        "alerts: {lines} lines written by the six runs, {} after dedup by alert id",
        got.len()
    );
    assert_same_alerts(&setup, &want, &got);
    setup.assert_every_event_processed("detect", events);
    assert_lake_holds_every_event_once(&setup.path("embedded-lake"), &setup.path("lake"));
}

/// A webhook endpoint on a loopback port: refused connections until it is
/// started, then 200 to every POST, keeping the alert ids of the bodies.
struct Webhook {
    port: u16,
    received: Arc<Mutex<Vec<String>>>,
}

impl Webhook {
    fn reserve() -> Webhook {
        Webhook {
            port: free_port(),
            received: Arc::default(),
        }
    }

    /// Starts serving (the sink's outage ends).
    fn start(&self) {
        let listener = TcpListener::bind(("127.0.0.1", self.port))
            .unwrap_or_else(|e| panic!("binding the webhook's port {}: {e}", self.port));
        let received = Arc::clone(&self.received);
        thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let received = Arc::clone(&received);
                thread::spawn(move || serve_one(stream, &received));
            }
        });
    }

    fn alert_ids(&self) -> BTreeSet<String> {
        let bodies = self.received.lock().map(|b| b.clone()).unwrap_or_default();
        bodies
            .iter()
            .filter_map(|b| serde_json::from_str::<serde_json::Value>(b).ok())
            .filter_map(|v| Some(v.get("alert_id")?.as_str()?.to_string()))
            .collect()
    }
}

/// Answers the requests of one connection (keep-alive) with 200.
fn serve_one(stream: TcpStream, received: &Mutex<Vec<String>>) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
    let Ok(mut writer) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(stream);
    loop {
        let mut length = 0usize;
        let mut request_line = String::new();
        if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
            return;
        }
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            if line.trim().is_empty() {
                break;
            }
            if let Some((k, v)) = line.split_once(':')
                && k.eq_ignore_ascii_case("content-length")
            {
                length = v.trim().parse().unwrap_or(0);
            }
        }
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        if let Ok(mut r) = received.lock() {
            r.push(String::from_utf8_lossy(&body).into_owned());
        }
        let answer = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
        if writer.write_all(answer.as_bytes()).is_err() {
            return;
        }
    }
}

#[test]
fn a_broker_outage_and_a_sink_outage_lose_nothing() {
    let mut setup = Setup::with_storage("resilience-outage", Storage::Sqlite);
    let inputs = cluster::generated(&setup, "12", "2");
    let want = embedded_with(&setup, &inputs, &["--lake", "embedded-lake"]);
    assert!(!want.is_empty(), "the embedded run raised no alerts");

    // The webhook is down (its port refuses) for the first minute.
    let webhook = Webhook::reserve();
    let config = format!(
        "notify:\n  dead_letters: notify-dead.jsonl\n  retry:\n    initial_backoff: 1s\n    max_backoff: 3s\n    \
         give_up_after: 10m\n    max_attempts: 1000\n    flush_timeout: 60s\n  sinks:\n    - kind: webhook\n      \
         name: soar\n      url: http://127.0.0.1:{}/hook\n      secret: outage-test-signing-key\n",
        webhook.port
    );
    std::fs::write(setup.path("trailhound.yaml"), config).expect("writing the config");
    let started = Instant::now();

    let detect_metrics = format!("127.0.0.1:{}", free_port());
    let mut detector = setup.detector_with(
        "d",
        "detect",
        30,
        &[
            "--lake",
            "lake",
            "--config",
            "trailhound.yaml",
            "--metrics",
            &detect_metrics,
        ],
    );
    // Ingest one record per request so that the stream lasts through the
    // outage; its metrics show the records waiting for the broker.
    let ingest_metrics = format!("127.0.0.1:{}", free_port());
    let mut args = vec!["ingest"];
    args.extend(inputs.iter().map(String::as_str));
    args.extend([
        "--kafka",
        &setup.broker.addr,
        "--state",
        "ingest-state",
        "--metrics",
        &ingest_metrics,
    ]);
    let err = std::fs::File::create(setup.path("ingest.err")).expect("a log file");
    let child = setup
        .command(&args)
        .env("TRAILHOUND_KAFKA_PROP_BATCH_NUM_MESSAGES", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::from(err))
        .spawn()
        .expect("starting ingest");
    let mut ingest = Guard {
        child: Some(child),
        name: "ingest".into(),
        log: Some(setup.path("ingest.err")),
    };

    // Mid-stream: some events on the topic, not all, and the detector at
    // work on them.
    let bus = setup.bus();
    let topic = bus.topic(trailhound_bus::TopicKind::Events);
    broker::within(
        Duration::from_secs(180),
        "500 events on the topic and some processed",
        || {
            thread::sleep(Duration::from_millis(200));
            let highs =
                trailhound_bus::high_watermarks(&bus, &topic, Duration::from_secs(5)).ok()?;
            let on_topic: i64 = highs.into_iter().sum();
            let read = scrape(&detect_metrics, "trailhound_events_read_total", "")?;
            (on_topic >= 500 && read > 0.0).then_some(on_topic)
        },
    );
    setup.broker.stop();
    let stopped_at = Instant::now();
    eprintln!("broker stopped at {:?}", started.elapsed());
    let mut pending_seen = 0.0f64;
    while stopped_at.elapsed() < Duration::from_secs(30) {
        if let Some(p) = scrape(&ingest_metrics, "trailhound_bus_pending_records", "ingest") {
            pending_seen = pending_seen.max(p);
        }
        thread::sleep(Duration::from_millis(500));
    }
    setup.broker.restart();
    eprintln!(
        "broker back at {:?}; ingest had at most {pending_seen} records waiting for it",
        started.elapsed()
    );
    assert!(
        pending_seen > 0.0,
        "ingest's metrics showed no backlog during the outage:\n{}",
        std::fs::read_to_string(setup.path("ingest.err")).unwrap_or_default()
    );

    // The sink's minute (or more, until alerts have waited for it): its
    // queue holds the alerts raised meanwhile.
    let mut queued_seen = 0.0f64;
    while started.elapsed() < Duration::from_secs(60)
        || (queued_seen == 0.0 && started.elapsed() < Duration::from_secs(300))
    {
        if let Some(q) = scrape(&detect_metrics, "trailhound_notify_queue_depth", "soar") {
            queued_seen = queued_seen.max(q);
        }
        thread::sleep(Duration::from_millis(500));
    }
    webhook.start();
    eprintln!(
        "webhook up at {:?}; its queue had held up to {queued_seen} alerts",
        started.elapsed()
    );
    assert!(
        queued_seen > 0.0,
        "the sink's queue never showed a backlog while it was down:\n{}",
        setup.log("d")
    );

    let status = ingest.wait(Duration::from_secs(400));
    let ingest_log = std::fs::read_to_string(setup.path("ingest.err")).unwrap_or_default();
    assert!(status.success(), "ingest failed:\n{ingest_log}");
    eprintln!(
        "ingest: {}",
        ingest_log
            .lines()
            .filter(|l| !l.contains("  INFO ") && !l.contains(" WARN ") && !l.contains(" ERROR "))
            .collect::<Vec<_>>()
            .join("\n  ")
    );
    let status = detector.wait(Duration::from_secs(400));
    assert!(status.success(), "the detector failed:\n{}", setup.log("d"));
    eprintln!(
        "detector: {}",
        setup
            .log("d")
            .lines()
            .filter(|l| l.starts_with("detect: ") || l.starts_with("  rejoined"))
            .collect::<Vec<_>>()
            .join("\n  ")
    );

    let got = alerts(&setup.path("d.out"));
    assert_same_alerts(&setup, &want, &got);
    assert_lake_holds_every_event_once(&setup.path("embedded-lake"), &setup.path("lake"));
    let delivered = webhook.alert_ids();
    let raised: BTreeSet<String> = got.keys().cloned().collect();
    let undelivered: Vec<_> = raised.difference(&delivered).collect();
    assert!(
        undelivered.is_empty(),
        "the webhook never received {} of {} alerts (e.g. {:?}); notify dead letters:\n{}",
        undelivered.len(),
        raised.len(),
        undelivered.first(),
        std::fs::read_to_string(setup.path("notify-dead.jsonl")).unwrap_or_default()
    );
    eprintln!(
        "webhook: all {} alerts received after its minute down; topic {topic} intact",
        delivered.len()
    );
    let _ = LATENESS;
}
