//! The broker the bus tests run against, and helpers.
//!
//! `TRAILHOUND_KAFKA=host:port` points the tests at a running broker (every
//! test then uses its own topic prefix and group). Otherwise each test starts
//! its own tansu (`TRAILHOUND_TANSU`, else `~/.cache/trailhound/tools/bin/tansu`)
//! on a free loopback port with in-memory storage, and kills it when the test
//! ends. With neither, the tests fail: they never skip silently.

#![allow(dead_code)]

use std::fs::File;
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use trailhound_bus::BusConfig;
use trailhound_core::Event;

/// tansu's storage engines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Storage {
    /// `memory://`: fastest, but cannot serve a fetch that starts inside a
    /// record batch (a consumer resuming from a committed offset in the
    /// middle of a producer's batch gets nothing).
    Memory,
    /// `sqlite://<file>` (libsql): stores records one by one, so resuming
    /// from any offset works.
    Sqlite,
}

/// A broker for one test.
pub struct Broker {
    /// `host:port` to bootstrap from.
    pub addr: String,
    child: Option<Child>,
    log: Option<PathBuf>,
    engine: String,
    _dir: Option<tempfile::TempDir>,
}

impl Broker {
    /// The external broker, or a fresh tansu. Panics with instructions when
    /// there is neither.
    pub fn start() -> Broker {
        Self::start_with(Storage::Sqlite)
    }

    /// [`Broker::start`] with a chosen tansu storage engine (ignored for an
    /// external broker).
    pub fn start_with(storage: Storage) -> Broker {
        if let Ok(addr) = std::env::var("TRAILHOUND_KAFKA")
            && !addr.trim().is_empty()
        {
            return Broker {
                addr: addr.trim().to_string(),
                child: None,
                log: None,
                engine: String::new(),
                _dir: None,
            };
        }
        let tansu = tansu_path();
        assert!(
            tansu.is_file(),
            "no Kafka broker for the bus tests: {} does not exist. Set TRAILHOUND_KAFKA=host:port \
             to use a running broker, or install tansu (scripts/test does it: cargo install tansu \
             --locked --version 0.6.0 --features dynostore,libsql --root ~/.cache/trailhound/tools) \
             or set TRAILHOUND_TANSU to its binary.",
            tansu.display()
        );
        Self::start_on(free_port(), storage)
    }

    /// A fresh tansu on `port` of loopback (a test that needs the broker's
    /// address before the broker exists reserves it with [`free_port`]).
    pub fn start_on(port: u16, storage: Storage) -> Broker {
        let addr = format!("127.0.0.1:{port}");
        let dir = tempfile::tempdir().expect("a temporary folder for the broker log");
        let log = dir.path().join("tansu.log");
        let engine = match storage {
            Storage::Memory => "memory://tansu/".to_string(),
            // tansu opens `sqlite://<host><path>` relative to its working
            // directory, whatever the slashes: it runs in the test's folder.
            Storage::Sqlite => "sqlite://tansu.db".to_string(),
        };
        let mut broker = Broker {
            addr,
            child: None,
            log: Some(log),
            engine,
            _dir: Some(dir),
        };
        broker.spawn();
        broker.wait_ready(Duration::from_secs(30));
        broker
    }

    /// Starts tansu on this broker's address, storage and log.
    fn spawn(&mut self) {
        let tansu = tansu_path();
        let url = format!("tcp://{}", self.addr);
        let (Some(log), Some(dir)) = (&self.log, &self._dir) else {
            panic!("an external broker cannot be started here");
        };
        let out = File::options()
            .create(true)
            .append(true)
            .open(log)
            .expect("the broker log file");
        let err = out.try_clone().expect("the broker log file");
        let mut command = Command::new(&tansu);
        command
            .args(["broker", "--listener-url", &url])
            .args(["--advertised-listener-url", &url])
            .args(["--storage-engine", &self.engine])
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err);
        // tansu reads these from the environment too: keep the test's own.
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
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", tansu.display()));
        self.child = Some(child);
    }

    /// Kills the broker (an outage); [`Broker::restart`] brings it back on
    /// the same address with the same storage (sqlite keeps the topics and
    /// records, memory loses them).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the broker again after [`Broker::stop`].
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
        self.wait_ready(Duration::from_secs(30));
    }

    fn wait_ready(&mut self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        let target = self.addr.parse().expect("a socket address");
        loop {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                panic!(
                    "tansu exited ({status}) before accepting connections:\n{}",
                    self.log_text()
                );
            }
            if TcpStream::connect_timeout(&target, Duration::from_millis(200)).is_ok() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "tansu did not accept connections on {} within {timeout:?}:\n{}",
                self.addr,
                self.log_text()
            );
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// What the broker printed so far (empty for an external broker).
    pub fn log_text(&self) -> String {
        self.log
            .as_ref()
            .and_then(|p| std::fs::read_to_string(p).ok())
            .unwrap_or_default()
    }

    /// A configuration for this broker with topic names of its own (so tests
    /// sharing an external broker do not meet), 6 partitions, and a short
    /// session timeout so that group joins take about a second.
    pub fn config(&self, test: &str) -> BusConfig {
        let mut config = BusConfig::new(self.addr.clone());
        config.topic_prefix = format!("{}.", unique(test));
        config.client_id = format!("trailhound-test-{test}");
        config.partitions = 6;
        config.replication = 1;
        config.session_timeout_ms = 6000;
        config.delivery_timeout_ms = 20_000;
        config
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if thread::panicking() && self.log.is_some() {
            let log = self.log_text();
            let tail: String = log
                .lines()
                .rev()
                .take(40)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect::<Vec<_>>()
                .join("\n");
            eprintln!("--- last lines of the tansu log ---\n{tail}");
        }
    }
}

fn tansu_path() -> PathBuf {
    if let Ok(path) = std::env::var("TRAILHOUND_TANSU")
        && !path.trim().is_empty()
    {
        return PathBuf::from(path.trim());
    }
    let home = std::env::var("HOME").unwrap_or_else(|_| "/root".into());
    PathBuf::from(home).join(".cache/trailhound/tools/bin/tansu")
}

/// A loopback port free a moment ago.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("binding a free loopback port");
    listener.local_addr().expect("the bound address").port()
}

/// A name no other test or run uses.
pub fn unique(name: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    format!(
        "{name}-{}-{}-{nanos}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// `n` events spread over `principals` principals; event `i` has
/// `event_id = "e<i>"` and `ingest_time = i`, so order can be checked.
pub fn events(n: usize, principals: usize) -> Vec<Event> {
    (0..n)
        .map(|i| {
            let p = i % principals.max(1);
            Event {
                event_time: 1_793_577_600_000_000 + i as i64 * 1_000,
                ingest_time: i as i64,
                event_id: format!("e{i}"),
                event_source: "s3.amazonaws.com".into(),
                event_name: if i % 7 == 0 { "PutObject" } else { "GetObject" }.into(),
                event_category: "Data".into(),
                read_only: Some(i % 7 != 0),
                account_id: Some("111122223333".into()),
                principal: format!("arn:aws:iam::111122223333:user/user{p}"),
                principal_type: "IAMUser".into(),
                region: Some("eu-west-1".into()),
                source_ip: Some(format!("10.0.{}.{}", p % 256, i % 256)),
                bucket: Some("finance-reports".into()),
                object_key: Some(format!("2026/q4/report-{i}.csv")),
                bytes_out: Some(i as i64 * 17),
                request: Some(format!(
                    r#"{{"bucketName":"finance-reports","key":"2026/q4/report-{i}.csv"}}"#
                )),
                ..Event::default()
            }
        })
        .collect()
}

/// Runs `step` until it returns `Some`, or panics after `timeout` with `what`.
pub fn within<T>(timeout: Duration, what: &str, mut step: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = step() {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?}: {what}"
        );
    }
}

/// One record per produce batch: tansu's memory storage then gives high
/// watermarks in records, which [`records_on`] counts.
pub fn one_record_batches(mut bus: BusConfig) -> BusConfig {
    bus.properties
        .insert("batch.num.messages".into(), "1".into());
    bus
}

/// The records on `kind`'s topic: the sum of its partitions' high watermarks.
pub fn records_on(bus: &BusConfig, kind: trailhound_bus::TopicKind) -> i64 {
    let topic = bus.topic(kind);
    trailhound_bus::high_watermarks(bus, &topic, Duration::from_secs(10))
        .expect("high watermarks")
        .into_iter()
        .sum()
}
