//! `trailhound ingest --kafka` and `trailhound detect --kafka` against a real
//! broker on loopback (tansu, started per test by the bus tests' harness, or
//! `TRAILHOUND_KAFKA=host:port`): two detector instances in one group give the
//! alerts of the embedded run, and one of them killed mid-stream loses
//! nothing. Every wait is bounded; child processes are killed by guards,
//! also when a test fails.

#[path = "../bus/tests/common/mod.rs"]
mod broker;
mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use broker::{Broker, Storage, unique};
use common::{text, trailhound};
use trailhound_bus::{BusConfig, TopicKind};
use trailhound_kafka::state::StateStore;
use trailhound_respond::moto::MotoServer;
use trailhound_rules::baseline::BaselineKind;

/// Allowed lateness of both runs: long enough that no row is ever late.
/// Whether a row more than the lateness behind is dropped depends on the
/// batch it happens to share with newer rows, and batches are cut
/// differently by the embedded pipeline and by polls; the comparison is
/// about the transport, so it leaves lateness out.
const LATENESS: &str = "2000d";

/// Kills its process when dropped (a test that fails leaves nothing behind).
struct Guard {
    child: Option<Child>,
    name: String,
}

impl Guard {
    /// Waits at most `timeout` for the process to exit.
    fn wait(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(child) = self.child.as_mut() {
                match child.try_wait() {
                    Ok(Some(status)) => {
                        self.child = None;
                        return status;
                    }
                    Ok(None) => {}
                    Err(e) => panic!("waiting for {}: {e}", self.name),
                }
            }
            assert!(
                Instant::now() < deadline,
                "{} did not exit within {timeout:?}",
                self.name
            );
            thread::sleep(Duration::from_millis(100));
        }
    }

    /// SIGKILL.
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        self.kill();
    }
}

/// One test's broker, topic prefix and folder.
struct Setup {
    broker: Broker,
    prefix: String,
    dir: tempfile::TempDir,
    /// The detectors' `--state`: a folder in `dir`, or an object store URL.
    state: String,
    /// More environment for every child (object store settings).
    env: Vec<(String, String)>,
}

impl Setup {
    fn new(test: &str) -> Setup {
        Setup {
            state: "detect-state".into(),
            env: Vec::new(),
            // Memory storage: several times faster than sqlite here, and the
            // one-record batches below let it serve a fetch from any offset
            // (a member taking over resumes from a committed offset).
            broker: Broker::start_with(Storage::Memory),
            prefix: format!("{}.", unique(test)),
            dir: tempfile::tempdir().expect("a temporary folder"),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_trailhound"));
        c.args(args)
            .current_dir(self.dir.path())
            .env("TRAILHOUND_KAFKA_TOPIC_PREFIX", &self.prefix)
            .env("TRAILHOUND_KAFKA_SESSION_TIMEOUT_MS", "6000")
            .env("TRAILHOUND_KAFKA_PARTITIONS", "6")
            .env("TRAILHOUND_KAFKA_DELIVERY_TIMEOUT_MS", "20000")
            .env("TRAILHOUND_KAFKA_PROP_BATCH_NUM_MESSAGES", "1")
            // A rebalance waits at most this long for members that do not
            // rejoin (a killed one), instead of librdkafka's 5 minutes.
            .env("TRAILHOUND_KAFKA_PROP_MAX_POLL_INTERVAL_MS", "10000")
            .env("TRAILHOUND_LOG", "info")
            .env("NO_COLOR", "1")
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null());
        c
    }

    fn bus(&self) -> BusConfig {
        let mut config = self.broker.config("probe");
        config.topic_prefix = self.prefix.clone();
        config
    }

    /// `trailhound ingest INPUTS --kafka`; returns the events acknowledged.
    fn ingest(&self, inputs: &[String]) -> u64 {
        let mut args = vec!["ingest"];
        args.extend(inputs.iter().map(String::as_str));
        args.extend(["--kafka", &self.broker.addr, "--state", "ingest-state"]);
        let out = common::run_within(&mut self.command(&args), common::RUN_LIMIT);
        let err = text(&out.stderr);
        assert!(out.status.success(), "ingest failed:\n{err}");
        let line = err
            .lines()
            .find(|l| l.starts_with("ingest: "))
            .unwrap_or_else(|| panic!("no ingest summary:\n{err}"));
        line.split_whitespace()
            .nth(1)
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no event count in {line:?}"))
    }

    /// One detector instance of `group`, alerts as JSON lines to `<name>.out`.
    fn detector(&self, name: &str, group: &str, idle_secs: u64) -> Guard {
        self.detector_with(name, group, idle_secs, &[])
    }

    /// [`Setup::detector`] with more arguments.
    fn detector_with(&self, name: &str, group: &str, idle_secs: u64, more: &[&str]) -> Guard {
        let out = File::create(self.path(&format!("{name}.out"))).expect("an output file");
        let err = File::create(self.path(&format!("{name}.err"))).expect("a log file");
        let idle = idle_secs.to_string();
        let child = self
            .command(&[
                "detect",
                "--kafka",
                &self.broker.addr,
                "--group",
                group,
                "--state",
                &self.state,
                "--format",
                "json",
                "--checkpoint-secs",
                "2",
                "--exit-when-idle",
                &idle,
                "--dead-letters",
                &format!("{name}.deadletters.jsonl"),
                "--lateness",
                LATENESS,
            ])
            .args(more)
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .spawn()
            .unwrap_or_else(|e| panic!("starting detector {name}: {e}"));
        Guard {
            child: Some(child),
            name: format!("detector {name}"),
        }
    }

    /// Where the detectors keep their checkpoints, as they open it.
    fn state_store(&self) -> StateStore {
        if self.state.contains("://") {
            StateStore::parse_with(&self.state, self.env.clone())
                .unwrap_or_else(|e| panic!("the state store {}: {e}", self.state))
        } else {
            StateStore::local(self.path(&self.state))
        }
    }

    fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.path(&format!("{name}.err"))).unwrap_or_default()
    }

    /// Every event partition's checkpoint holds the partition up to its end.
    fn assert_every_event_processed(&self, group: &str, events: u64) {
        let bus = self.bus();
        let topic = bus.topic(TopicKind::Events);
        let highs = trailhound_bus::high_watermarks(&bus, &topic, Duration::from_secs(10))
            .unwrap_or_else(|e| panic!("high watermarks of {topic}: {e}"));
        assert_eq!(highs.len(), 6, "partitions of {topic}");
        let mut total = 0;
        for (partition, high) in (0..).zip(highs) {
            total += high;
            let saved = self
                .state_store()
                .load(&topic, partition)
                .unwrap_or_else(|e| panic!("reading checkpoint {partition}: {e}"));
            let next = saved.map_or(0, |s| s.next);
            assert_eq!(
                next, high,
                "group {group}: partition {partition} checkpointed up to {next}, the partition ends at {high}"
            );
        }
        assert_eq!(total as u64, events, "records on the event topic");
    }
}

/// The inputs: a generated organisation and, when present, the shared
/// Stratus recordings.
fn inputs(setup: &Setup, principals: &str, days: &str) -> Vec<String> {
    let out = trailhound(
        &[
            "generate",
            "--out",
            "org",
            "--principals",
            principals,
            "--days",
            days,
            "--seed",
            "7",
        ],
        setup.dir.path(),
    );
    assert!(out.status.success(), "generate: {}", text(&out.stderr));
    let mut inputs = vec![setup.path("org").display().to_string()];
    let shared =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/cloudtrail/stratus-red-team");
    if shared.is_dir() {
        inputs.push(shared.display().to_string());
    } else {
        eprintln!(
            "SKIPPED the shared Stratus recordings: {} is absent; the generated organisation alone is used",
            shared.display()
        );
    }
    inputs
}

/// Alerts (id -> rule id) of a JSON-lines output.
fn alerts(path: &Path) -> BTreeMap<String, String> {
    let body = std::fs::read_to_string(path).unwrap_or_default();
    body.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| {
            Some((
                v.get("alert_id")?.as_str()?.to_string(),
                v.get("rule_id")?.as_str()?.to_string(),
            ))
        })
        .collect()
}

/// The embedded run on the same inputs.
fn embedded(setup: &Setup, inputs: &[String]) -> BTreeMap<String, String> {
    let mut args = vec!["detect"];
    args.extend(inputs.iter().map(String::as_str));
    args.extend([
        "--format",
        "json",
        "--quiet",
        "--dead-letters",
        "embedded.deadletters.jsonl",
        // One reader: inputs arrive in the order `ingest` sends them, so a
        // principal's events reach its rules in the same order (with two
        // readers the interleaving of files, and so which row opens a dedup
        // window, varies from run to run).
        "--readers",
        "1",
        "--lateness",
        LATENESS,
    ]);
    let out = trailhound(&args, setup.dir.path());
    assert!(out.status.success(), "embedded run: {}", text(&out.stderr));
    std::fs::write(setup.path("embedded.out"), &out.stdout).expect("writing the embedded alerts");
    alerts(&setup.path("embedded.out"))
}

/// Rules whose alerts depend on the order in which *different principals'*
/// events arrive (organisation-wide `rare` baselines: who is among the first
/// holders of a value). No partitioned run can reproduce the embedded run's
/// interleaving of principals exactly, so these are reported, not compared.
fn order_dependent_rules() -> BTreeSet<String> {
    let rules = trailhound_rules::RuleSet::builtin().unwrap_or_else(|e| panic!("{:?}", e.errors));
    rules
        .rules()
        .iter()
        .filter(|r| r.baseline().is_some_and(|b| b.kind == BaselineKind::Rare))
        .map(|r| r.id.clone())
        .collect()
}

/// Compares the alerts of the Kafka run with the embedded run's; on a
/// difference the members' logs are shown.
fn assert_same_alerts(
    setup: &Setup,
    embedded: &BTreeMap<String, String>,
    kafka: &BTreeMap<String, String>,
) {
    let loose = order_dependent_rules();
    let strict = |m: &BTreeMap<String, String>| -> BTreeSet<String> {
        m.iter()
            .filter(|(_, rule)| !loose.contains(*rule))
            .map(|(id, _)| id.clone())
            .collect()
    };
    let (want, got) = (strict(embedded), strict(kafka));
    let missing: Vec<_> = want
        .difference(&got)
        .map(|id| (id, &embedded[id]))
        .collect();
    let extra: Vec<_> = got.difference(&want).map(|id| (id, &kafka[id])).collect();
    if !(missing.is_empty() && extra.is_empty()) {
        let keep = setup.dir.path().with_extension("kept");
        let _ = std::fs::rename(setup.dir.path(), &keep);
        panic!(
            "alerts differ from the embedded run's: missing {missing:?}, extra {extra:?}; files kept in {}",
            keep.display()
        );
    }
    for rule in &loose {
        let count = |m: &BTreeMap<String, String>| m.values().filter(|r| *r == rule).count();
        eprintln!(
            "order-dependent rule {rule}: embedded {} alerts, kafka {}",
            count(embedded),
            count(kafka)
        );
    }
    eprintln!(
        "alerts compared exactly: {} (embedded) = {} (kafka, after dedup by id)",
        want.len(),
        got.len()
    );
}

#[test]
fn two_detectors_in_one_group_give_the_embedded_alerts() {
    two_detectors(&Setup::new("kafka-two"));
}

/// The same with the partition state in an S3 bucket (moto's S3 on
/// loopback) that both detectors share, as detectors on two machines would:
/// partitions that move are restored from the bucket.
#[test]
fn two_detectors_sharing_state_in_s3_give_the_embedded_alerts() {
    let moto = MotoServer::start().unwrap_or_else(|e| panic!("{e}"));
    let created = ureq::put(&format!("{}/trailhound-state", moto.url)).send_empty();
    assert!(created.is_ok(), "creating the bucket: {created:?}");
    let mut setup = Setup::new("kafka-s3");
    setup.state = "s3://trailhound-state/detect".into();
    setup.env = [
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("AWS_REGION", "us-east-1"),
        ("AWS_ENDPOINT_URL", moto.url.as_str()),
        ("AWS_ALLOW_HTTP", "true"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    two_detectors(&setup);
    let restored: u64 = ["a", "b"]
        .iter()
        .filter_map(|n| {
            let log = setup.log(n);
            let at = log.find("partitions restored from checkpoints: ")?;
            let rest = &log[at + "partitions restored from checkpoints: ".len()..];
            rest.split(|c: char| !c.is_ascii_digit())
                .next()?
                .parse::<u64>()
                .ok()
        })
        .sum();
    assert!(restored > 0, "no partition was restored from the bucket");
    assert!(
        !setup.path("s3:").exists(),
        "the URL was taken for a local folder"
    );
}

fn two_detectors(setup: &Setup) {
    let inputs = inputs(setup, "20", "1");
    let want = embedded(setup, &inputs);
    assert!(!want.is_empty(), "the embedded run raised no alerts");
    let events = setup.ingest(&inputs);

    let mut a = setup.detector("a", "detect", 12);
    thread::sleep(Duration::from_secs(2));
    let mut b = setup.detector("b", "detect", 12);
    let status_a = a.wait(Duration::from_secs(300));
    let status_b = b.wait(Duration::from_secs(300));
    assert!(status_a.success(), "a failed:\n{}", setup.log("a"));
    assert!(status_b.success(), "b failed:\n{}", setup.log("b"));

    let mut got = alerts(&setup.path("a.out"));
    got.extend(alerts(&setup.path("b.out")));
    assert_same_alerts(setup, &want, &got);
    setup.assert_every_event_processed("detect", events);
    assert!(
        setup.log("a").contains("partitions assigned")
            && setup.log("b").contains("partitions assigned"),
        "both members owned partitions:\n{}\n{}",
        setup.log("a"),
        setup.log("b")
    );
}

/// Kills `b` (SIGKILL) mid-stream: once it has restored and processed part
/// of its partitions (small polls keep the stream going long enough). With
/// `replace`, a third member `c` joins in its place.
fn failover(test: &str, replace: bool) {
    let setup = Setup::new(test);
    let inputs = inputs(&setup, "30", "2");
    let want = embedded(&setup, &inputs);
    let events = setup.ingest(&inputs);
    let slow = ["--poll-records", "40"];

    // Idle limit well past the session timeout and a rebalance's wait for
    // the dead member, so that the survivor outlives the hand-over.
    let mut a = setup.detector_with("a", "detect", 40, &slow);
    thread::sleep(Duration::from_secs(2));
    let mut b = setup.detector_with("b", "detect", 40, &slow);
    let deadline = Instant::now() + Duration::from_secs(120);
    while !setup
        .log("b")
        .contains("partitions assigned partitions=[PartitionId")
    {
        assert!(
            Instant::now() < deadline,
            "b was assigned no partition within 120 s:\n{}",
            setup.log("b")
        );
        thread::sleep(Duration::from_millis(100));
    }
    // Past at least one of b's own checkpoints (every 2 s).
    thread::sleep(Duration::from_secs(5));
    assert!(
        !setup.log("b").lines().any(|l| l.starts_with("detect: ")),
        "b finished before it could be killed mid-stream:\n{}",
        setup.log("b")
    );
    b.kill();
    let mut c = replace.then(|| setup.detector_with("c", "detect", 40, &slow));
    let status_a = a.wait(Duration::from_secs(400));
    assert!(status_a.success(), "a failed:\n{}", setup.log("a"));
    if let Some(c) = c.as_mut() {
        let status_c = c.wait(Duration::from_secs(400));
        assert!(status_c.success(), "c failed:\n{}", setup.log("c"));
    }
    let mut got = alerts(&setup.path("a.out"));
    got.extend(alerts(&setup.path("b.out")));
    got.extend(alerts(&setup.path("c.out")));
    assert_same_alerts(&setup, &want, &got);
    setup.assert_every_event_processed("detect", events);
}

/// The survivor takes over the killed member's partitions from their
/// checkpoints once the killed member's session times out; nothing is lost
/// or counted twice. (With the eager assignment strategies tansu 0.6.0 kept
/// the old assignment after dropping the dead member; the consumer's
/// default `cooperative-sticky` strategy makes it hand them over.)
#[test]
fn a_killed_detector_loses_nothing() {
    failover("kafka-failover", false);
}

/// The killed member's partitions are taken over from their checkpoints by
/// the members left, a third member joining in its place among them;
/// nothing is lost or counted twice.
#[test]
fn a_detector_killed_mid_stream_is_replaced_without_loss() {
    failover("kafka-replace", true);
}
