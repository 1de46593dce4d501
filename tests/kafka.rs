//! `trailhound ingest --kafka` and `trailhound detect --kafka` against a real
//! broker on loopback (tansu, started per test by the bus tests' harness, or
//! `TRAILHOUND_KAFKA=host:port`): two detector instances in one group give the
//! alerts of the embedded run, and one of them killed mid-stream loses
//! nothing. Every wait is bounded; child processes are killed by guards,
//! also when a test fails.

use crate::cluster;

use std::thread;
use std::time::{Duration, Instant};

use cluster::{Setup, alerts, assert_same_alerts, embedded, inputs};
use trailhound_respond::moto::MotoServer;

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
