//! The Kafka test harness shared by `tests/kafka.rs` and
//! `tests/resilience.rs`: a broker per test, the binary's `ingest` and
//! `detect --kafka` as child processes killed by guards, the embedded run to
//! compare with, and the checks on what a run left behind. Every wait is
//! bounded.

#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::broker::{Broker, Storage, unique};
use crate::common::{self, text, trailhound};
use trailhound_bus::{BusConfig, TopicKind};
use trailhound_kafka::state::StateStore;
use trailhound_rules::baseline::BaselineKind;

/// Allowed lateness of both runs: long enough that no row is ever late.
/// Whether a row more than the lateness behind is dropped depends on the
/// batch it happens to share with newer rows, and batches are cut
/// differently by the embedded pipeline and by polls; the comparison is
/// about the transport, so it leaves lateness out.
pub const LATENESS: &str = "2000d";

/// Kills its process when dropped (a test that fails leaves nothing behind).
pub struct Guard {
    pub child: Option<Child>,
    pub name: String,
    /// Its log, shown (the last 60 lines) when it does not exit in time.
    pub log: Option<PathBuf>,
}

impl Guard {
    /// Waits at most `timeout` for the process to exit.
    pub fn wait(&mut self, timeout: Duration) -> ExitStatus {
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
            if Instant::now() >= deadline {
                let log = self
                    .log
                    .as_ref()
                    .and_then(|p| std::fs::read_to_string(p).ok())
                    .unwrap_or_default();
                let lines: Vec<&str> = log.lines().collect();
                let tail = lines[lines.len().saturating_sub(60)..].join("\n");
                panic!(
                    "{} did not exit within {timeout:?}; the end of its log:\n{tail}",
                    self.name
                );
            }
            thread::sleep(Duration::from_millis(100));
        }
    }

    /// SIGKILL.
    pub fn kill(&mut self) {
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
pub struct Setup {
    pub broker: Broker,
    pub prefix: String,
    pub dir: tempfile::TempDir,
    /// The detectors' `--state`: a folder in `dir`, or an object store URL.
    pub state: String,
    /// More environment for every child (object store settings).
    pub env: Vec<(String, String)>,
}

impl Setup {
    pub fn new(test: &str) -> Setup {
        // Memory storage: several times faster than sqlite here, and the
        // one-record batches below let it serve a fetch from any offset
        // (a member taking over resumes from a committed offset).
        Self::with_storage(test, Storage::Memory)
    }

    /// A setup whose broker keeps its records in `storage` (sqlite for one
    /// that must survive a restart).
    pub fn with_storage(test: &str, storage: Storage) -> Setup {
        Setup {
            state: "detect-state".into(),
            env: Vec::new(),
            broker: Broker::start_with(storage),
            prefix: format!("{}.", unique(test)),
            dir: tempfile::tempdir().expect("a temporary folder"),
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn command(&self, args: &[&str]) -> Command {
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

    pub fn bus(&self) -> BusConfig {
        let mut config = self.broker.config("probe");
        config.topic_prefix = self.prefix.clone();
        config
    }

    /// `trailhound ingest INPUTS --kafka`; returns the events acknowledged.
    pub fn ingest(&self, inputs: &[String]) -> u64 {
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
    pub fn detector(&self, name: &str, group: &str, idle_secs: u64) -> Guard {
        self.detector_with(name, group, idle_secs, &[])
    }

    /// [`Setup::detector`] with more arguments.
    pub fn detector_with(&self, name: &str, group: &str, idle_secs: u64, more: &[&str]) -> Guard {
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
            log: Some(self.path(&format!("{name}.err"))),
        }
    }

    /// Where the detectors keep their checkpoints, as they open it.
    pub fn state_store(&self) -> StateStore {
        if self.state.contains("://") {
            StateStore::parse_with(&self.state, self.env.clone())
                .unwrap_or_else(|e| panic!("the state store {}: {e}", self.state))
        } else {
            StateStore::local(self.path(&self.state))
        }
    }

    pub fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.path(&format!("{name}.err"))).unwrap_or_default()
    }

    /// Every event partition's checkpoint holds the partition up to its end.
    pub fn assert_every_event_processed(&self, group: &str, events: u64) {
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

/// A generated organisation alone (seed 7), as the one input.
pub fn generated(setup: &Setup, principals: &str, days: &str) -> Vec<String> {
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
    vec![setup.path("org").display().to_string()]
}

/// The inputs: a generated organisation and, when present, the shared
/// Stratus recordings.
pub fn inputs(setup: &Setup, principals: &str, days: &str) -> Vec<String> {
    let mut inputs = generated(setup, principals, days);
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
pub fn alerts(path: &Path) -> BTreeMap<String, String> {
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
pub fn embedded(setup: &Setup, inputs: &[String]) -> BTreeMap<String, String> {
    embedded_with(setup, inputs, &[])
}

/// [`embedded`] with more arguments (`--lake DIR`).
pub fn embedded_with(setup: &Setup, inputs: &[String], more: &[&str]) -> BTreeMap<String, String> {
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
    args.extend(more);
    let out = trailhound(&args, setup.dir.path());
    assert!(out.status.success(), "embedded run: {}", text(&out.stderr));
    std::fs::write(setup.path("embedded.out"), &out.stdout).expect("writing the embedded alerts");
    alerts(&setup.path("embedded.out"))
}

/// Rules whose alerts depend on the order in which *different principals'*
/// events arrive (organisation-wide `rare` baselines: who is among the first
/// holders of a value). No partitioned run can reproduce the embedded run's
/// interleaving of principals exactly, so these are reported, not compared.
pub fn order_dependent_rules() -> BTreeSet<String> {
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
pub fn assert_same_alerts(
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

/// One metric's value in a scrape of `addr` (the sum of its series whose
/// line holds `label`; `""` takes them all), or `None` when the endpoint
/// does not answer.
pub fn scrape(addr: &str, name: &str, label: &str) -> Option<f64> {
    let mut stream = TcpStream::connect(addr).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .ok()?;
    let mut body = String::new();
    stream.read_to_string(&mut body).ok()?;
    Some(
        body.lines()
            .filter(|l| l.starts_with(name) && l.contains(label))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum(),
    )
}
