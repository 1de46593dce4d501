//! The sources of `trailhound ingest` as a user runs them, against a real
//! broker (tansu) and moto, all on loopback: `--follow` sends a growing log
//! through a rotation and a restart exactly once; `--listen` takes every
//! session format posted with the right token to the event topic and
//! refuses the wrong one; `--sqs` brings the files S3 announces to the topic,
//! a gzip bomb to the dead letters, and leaves the queue empty; `--trail`
//! finds its bucket with DescribeTrails and reads each log file once across
//! runs. Every wait is bounded; children are killed by guards.

use crate::aws;
use crate::broker;
use crate::common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use broker::{Broker, Storage, free_port, unique, within};
use common::{run_within, text};
use trailhound_bus::{BusConfig, TopicKind};
use trailhound_ingest::{Collect, ParseContext, parse_input};

/// Kills its process when dropped.
struct Guard(Option<Child>, PathBuf);

impl Guard {
    /// SIGTERM, then the exit status and standard error once it exited (at
    /// most 30 s).
    fn terminate(&mut self) -> (std::process::ExitStatus, String) {
        let child = self.0.take().expect("a running child");
        let pid = child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut child = child;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return (status, std::fs::read_to_string(&self.1).unwrap_or_default());
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("the child did not stop within 30 s of SIGTERM");
            }
            thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Fields drop in order: the folder goes while its broker still runs.
struct Setup {
    bus: BusConfig,
    dir: tempfile::TempDir,
    broker: Broker,
}

impl Setup {
    fn new(test: &str) -> Setup {
        let broker = Broker::start_with(Storage::Memory);
        let mut bus = broker.config(test);
        bus.topic_prefix = format!("{}.", unique(test));
        // The probes below read the topics before any child has made them.
        trailhound_bus::ensure_topics(&bus, Duration::from_secs(30))
            .unwrap_or_else(|e| panic!("creating the topics: {e}"));
        Setup {
            bus,
            broker,
            dir: tempfile::tempdir().expect("a temporary folder"),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_trailhound"));
        c.args(args)
            .args(["--kafka", &self.broker.addr])
            .current_dir(self.dir.path())
            .env("TRAILHOUND_KAFKA_TOPIC_PREFIX", &self.bus.topic_prefix)
            .env(
                "TRAILHOUND_KAFKA_PARTITIONS",
                self.bus.partitions.to_string(),
            )
            // One record per batch: the topic's high watermarks count records.
            .env("TRAILHOUND_KAFKA_PROP_BATCH_NUM_MESSAGES", "1")
            .env("TRAILHOUND_LOG", "info")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        c
    }

    /// A long-running child; its standard error goes to a file (a pipe
    /// nobody reads would block it once full).
    fn spawn(&self, args: &[&str], env: &[(&str, &str)]) -> Guard {
        let log = self.path(&format!("{}.err", unique("child")));
        let err = std::fs::File::create(&log).expect("a log file");
        let child = self
            .command(args)
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::from(err))
            .spawn()
            .unwrap_or_else(|e| panic!("starting trailhound {args:?}: {e}"));
        Guard(Some(child), log)
    }

    fn events(&self) -> i64 {
        self.records(TopicKind::Events)
    }

    /// The records on `kind`'s topic: the sum of its partitions' high
    /// watermarks (one record per batch, see [`Setup::command`]).
    fn records(&self, kind: TopicKind) -> i64 {
        let topic = self.bus.topic(kind);
        // A plain client in no group: a consumer joining and leaving a group
        // per probe is slow and can stall its close on a busy machine.
        trailhound_bus::high_watermarks(&self.bus, &topic, Duration::from_secs(10))
            .unwrap_or_else(|e| panic!("the high watermarks of {topic}: {e}"))
            .into_iter()
            .sum()
    }

    /// Waits until the event topic holds `n` records.
    fn wait_for_events(&self, n: usize, what: &str) {
        within(Duration::from_secs(60), what, || {
            let on = self.events();
            assert!(on <= n as i64, "{on} events on the topic, expected {n}");
            if on == n as i64 {
                Some(())
            } else {
                thread::sleep(Duration::from_millis(200));
                None
            }
        });
    }
}

fn fixture(rel: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("ingest/tests/fixtures/session")
        .join(rel);
    std::fs::read(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// The events `bytes` give parsed whole.
fn count_events(name: &str, bytes: &[u8]) -> usize {
    let mut out = Collect::default();
    parse_input(bytes, &ParseContext::new(name), &mut out);
    out.events.len()
}

fn append(path: &Path, bytes: &[u8]) {
    use std::io::Write;
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .expect("open for append");
    file.write_all(bytes).expect("append");
}

/// The first `n` lines of `bytes`, and the rest.
fn split_lines(bytes: &[u8], n: usize) -> (&[u8], &[u8]) {
    let mut seen = 0;
    for (i, b) in bytes.iter().enumerate() {
        if *b == b'\n' {
            seen += 1;
            if seen == n {
                return bytes.split_at(i + 1);
            }
        }
    }
    (bytes, &[])
}

#[test]
fn ingest_follow_sends_a_growing_rotated_log_once_across_a_restart() {
    let setup = Setup::new("follow");
    let log = setup.path("audit.log");
    let teleport = fixture("teleport/audit.log");
    let (first, rest) = split_lines(&teleport, 8);
    append(&log, first);
    let n_first = count_events("a", first);
    let n_all = count_events("a", &teleport);
    assert!(n_first > 0 && n_first < n_all);

    let args = [
        "ingest",
        "--follow",
        "audit.log",
        "--state",
        "ingest-state",
        "--poll-secs",
        "1",
    ];
    let mut follower = setup.spawn(&args, &[]);
    setup.wait_for_events(n_first, "the first lines on the topic");

    // Rotation by rename; the gateway goes on in a new file.
    std::fs::rename(&log, setup.path("audit.log.1")).expect("rename");
    append(&log, rest);
    setup.wait_for_events(n_all, "the rest of the log on the topic");
    let (status, err) = follower.terminate();
    assert!(status.success(), "{err}");
    assert!(err.contains("1 rotation(s)"), "{err}");

    // Restarted from its state: nothing is sent again...
    let idle = ["--idle-polls", "2"];
    let again = run_within(
        &mut setup.command(&[&args[..], &idle[..]].concat()),
        Duration::from_secs(120),
    );
    assert!(again.status.success(), "{}", text(&again.stderr));
    assert_eq!(setup.events(), n_all as i64, "{}", text(&again.stderr));

    // ...and lines written while it was down are sent when it comes back.
    let (more, _) = split_lines(rest, 3);
    append(&log, more);
    let after = run_within(
        &mut setup.command(&[&args[..], &idle[..]].concat()),
        Duration::from_secs(120),
    );
    assert!(after.status.success(), "{}", text(&after.stderr));
    let n_more = count_events("b", more);
    assert!(n_more > 0);
    assert_eq!(setup.events(), (n_all + n_more) as i64);
}

#[test]
fn ingest_listen_takes_every_session_format_to_kafka_and_refuses_a_wrong_token() {
    let setup = Setup::new("listen");
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let mut receiver = setup.spawn(
        &["ingest", "--listen", &addr],
        &[("TRAILHOUND_RECEIVER_TOKENS", "gateway-token-0123456789")],
    );
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .into();
    let url = format!("http://{addr}/v1/sessions");
    let post = |token: &str, name: &str, body: &[u8]| -> Option<u16> {
        agent
            .post(&url)
            .header("Authorization", format!("Bearer {token}"))
            .header("X-Trailhound-Name", name)
            .send(body)
            .ok()
            .map(|r| r.status().as_u16())
    };
    let teleport = fixture("teleport/audit.log");
    // Up once it answers.
    let first = within(Duration::from_secs(60), "the receiver answering", || {
        let status = post("gateway-token-0123456789", "audit.log", &teleport);
        if status.is_none() {
            thread::sleep(Duration::from_millis(200));
        }
        status
    });
    assert_eq!(first, 200);
    let mut expected = count_events("audit.log", &teleport);
    for rel in [
        "cowrie/cowrie.json",
        "jsonl/session.jsonl",
        "asciinema/v2_session.cast",
        "asciinema/v3_session.cast",
    ] {
        let body = fixture(rel);
        assert_eq!(
            post("gateway-token-0123456789", rel, &body),
            Some(200),
            "{rel}"
        );
        expected += count_events(rel, &body);
    }
    assert_eq!(
        post(
            "not-the-token",
            "x.cast",
            &fixture("asciinema/v2_session.cast")
        ),
        Some(401)
    );
    // 200 came only after the broker acknowledged: nothing to wait for.
    assert_eq!(setup.events(), expected as i64);

    let (status, err) = receiver.terminate();
    assert!(status.success(), "{err}");
    assert!(err.contains("5 requests accepted, 1 unauthorised"), "{err}");
    assert!(
        !err.contains("gateway-token-0123456789"),
        "the token was logged:\n{err}"
    );
}

/// The environment that points the AWS SDK at moto and nowhere else.
fn moto_env(aws: &aws::Aws) -> Vec<(&'static str, String)> {
    vec![
        ("AWS_ACCESS_KEY_ID", "testing".into()),
        ("AWS_SECRET_ACCESS_KEY", "testing".into()),
        ("AWS_REGION", "us-east-1".into()),
        ("AWS_CONFIG_FILE", "/nonexistent/aws-config".into()),
        (
            "AWS_SHARED_CREDENTIALS_FILE",
            "/nonexistent/aws-credentials".into(),
        ),
        ("AWS_EC2_METADATA_DISABLED", "true".into()),
        ("AWS_ENDPOINT_URL", aws.moto.url.clone()),
    ]
}

#[test]
fn ingest_sqs_brings_announced_files_to_kafka_and_leaves_the_queue_empty() {
    let aws = aws::Aws::start();
    let queue = aws.bucket_with_queue("trail-logs", "trail-notices");
    aws.put("trail-logs", &aws::key(12, "a"), aws::trail_file(120, "a"));
    aws.put("trail-logs", &aws::key(13, "b"), aws::trail_file(80, "b"));
    aws.put(
        "trail-logs",
        &aws::key(14, "bomb"),
        aws::gzip(&vec![b' '; 3 * 1024 * 1024]),
    );
    let setup = Setup::new("sqs");
    let out = run_within(
        setup
            .command(&[
                "ingest",
                "--sqs",
                &queue,
                "--endpoint-url",
                &aws.moto.url,
                "--wait-secs",
                "1",
                "--idle-polls",
                "2",
            ])
            .envs(moto_env(&aws)),
        Duration::from_secs(180),
    );
    let err = text(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert_eq!(setup.events(), 200, "{err}");
    assert_eq!(setup.records(TopicKind::DeadLetters), 1, "{err}");
    assert!(err.contains("1 test event(s)"), "{err}");
    // The bomb (3 MiB of spaces in 3 KiB) is over the decompression ratio.
    assert!(
        err.contains("dead letters decompressed_too_large: 1"),
        "{err}"
    );
    assert_eq!(aws.messages(&queue), 0, "every message deleted:\n{err}");
}

#[test]
fn ingest_trail_finds_the_bucket_and_reads_each_file_once_across_runs() {
    use aws_sdk_cloudtrail::config::{BehaviorVersion, Credentials, Region};
    let aws = aws::Aws::start();
    aws.bucket("org-trail-logs");
    let cloudtrail = aws_sdk_cloudtrail::Client::from_conf(
        aws_sdk_cloudtrail::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .endpoint_url(&aws.moto.url)
            .credentials_provider(Credentials::new("testing", "testing", None, None, "moto"))
            .build(),
    );
    aws.rt
        .block_on(
            cloudtrail
                .create_trail()
                .name("management")
                .s3_bucket_name("org-trail-logs")
                .s3_key_prefix("audit")
                .is_multi_region_trail(true)
                .send(),
        )
        .unwrap_or_else(|e| panic!("create_trail: {e:?}"));
    let today = trailhound_aws::trail::day_folder(trailhound_core::time::now_micros());
    let account = aws::ACCOUNT;
    let file = |region: &str, tag: &str| {
        format!(
            "audit/AWSLogs/{account}/CloudTrail/{region}/{today}/{account}_CloudTrail_{region}_x_{tag}.json.gz"
        )
    };
    aws.put(
        "org-trail-logs",
        &file("us-east-1", "a"),
        aws::trail_file(40, "ta"),
    );
    aws.put(
        "org-trail-logs",
        &file("eu-west-1", "b"),
        aws::trail_file(25, "tb"),
    );

    let setup = Setup::new("trail");
    let run = || {
        let out = run_within(
            setup
                .command(&[
                    "ingest",
                    "--trail",
                    "management",
                    "--endpoint-url",
                    &aws.moto.url,
                    "--state",
                    "trail-state",
                    "--polls",
                    "1",
                ])
                .envs(moto_env(&aws)),
            Duration::from_secs(180),
        );
        let err = text(&out.stderr);
        assert!(out.status.success(), "{err}");
        err
    };
    let first = run();
    assert_eq!(setup.events(), 65, "{first}");
    aws.put(
        "org-trail-logs",
        &file("us-east-1", "c"),
        aws::trail_file(10, "tc"),
    );
    let second = run();
    assert_eq!(
        setup.events(),
        75,
        "only the new file the second time:\n{second}"
    );
}
