//! `ingest_queue` against moto's S3 and SQS and a real broker (tansu), all on
//! loopback: CloudTrail files put into a bucket reach the event topic through
//! S3's own notifications to SQS, notices wrapped by SNS and EventBridge are
//! read too, bad objects and notices end as dead letters while the rest
//! flows on, and a message is deleted only once its events are in Kafka.

#[path = "common/aws.rs"]
mod aws;
#[path = "../../bus/tests/common/mod.rs"]
mod broker;

use std::time::{Duration, Instant};

use aws::{ACCOUNT, Aws, gzip, key, trail_file};
use broker::{Broker, Storage, one_record_batches, records_on, unique};
use trailhound_bus::{BusConfig, TopicKind};
use trailhound_kafka::{QueueOptions, ingest_queue};

fn events_on_topic(bus: &BusConfig) -> i64 {
    records_on(bus, TopicKind::Events)
}

#[test]
fn s3_notifications_bring_every_file_to_kafka_and_bad_objects_to_dead_letters() {
    let aws = Aws::start();
    let queue_url = aws.bucket_with_queue("trail-logs", "trail-notices");
    // Configuring the notification sent S3's test event.
    assert!(
        aws.messages(&queue_url) >= 1,
        "no s3:TestEvent on the queue"
    );

    // Through S3's own notifications: two good files, a digest, a gzip
    // bomb, a truncated file, and something that is not CloudTrail.
    aws.put("trail-logs", &key(12, "a"), trail_file(300, "a"));
    aws.put("trail-logs", &key(13, "b"), trail_file(200, "b"));
    aws.put(
        "trail-logs",
        &format!("AWSLogs/o-a1b2c3d4e5/{ACCOUNT}/CloudTrail-Digest/us-east-1/2026/11/03/{ACCOUNT}_CloudTrail-Digest_us-east-1_x.json.gz"),
        gzip(br#"{"awsAccountId":"111122223333","digestStartTime":"2026-11-03T12:00:00Z"}"#),
    );
    aws.put(
        "trail-logs",
        &key(14, "bomb"),
        gzip(&vec![b' '; 3 * 1024 * 1024]),
    );
    let whole = trail_file(100, "t");
    aws.put(
        "trail-logs",
        &key(15, "truncated"),
        whole[..whole.len() / 2].to_vec(),
    );
    aws.put(
        "trail-logs",
        "exports/report.csv",
        b"user,calls\nalice,3\n".to_vec(),
    );

    // Notices of other shapes, sent by hand, for objects in a bucket
    // without notifications: SNS-wrapped, EventBridge, CloudTrail's own.
    aws.bucket("org-trail");
    aws.put("org-trail", &key(16, "sns"), trail_file(50, "sns"));
    aws.put("org-trail", &key(17, "eb"), trail_file(40, "eb"));
    aws.put("org-trail", &key(18, "ct"), trail_file(30, "ct"));
    let s3_notice = serde_json::json!({"Records": [{"eventSource": "aws:s3", "eventName": "ObjectCreated:Put",
        "s3": {"bucket": {"name": "org-trail"}, "object": {"key": key(16, "sns")}}}]});
    aws.send(
        &queue_url,
        &serde_json::json!({"Type": "Notification", "MessageId": "1", "Message": s3_notice.to_string()}).to_string(),
    );
    aws.send(
        &queue_url,
        &serde_json::json!({"version": "0", "source": "aws.s3", "detail-type": "Object Created",
            "detail": {"bucket": {"name": "org-trail"}, "object": {"key": key(17, "eb")}}})
        .to_string(),
    );
    aws.send(
        &queue_url,
        &serde_json::json!({"s3Bucket": "org-trail", "s3ObjectKey": [key(18, "ct")]}).to_string(),
    );
    aws.send(&queue_url, "this is not a notification");

    let broker = Broker::start_with(Storage::Memory);
    let bus = one_record_batches(broker.config("sqs"));
    let dead = tempfile::NamedTempFile::new().expect("a temporary file");
    let options = QueueOptions {
        dead_letter_path: Some(dead.path().to_path_buf()),
        idle_polls: Some(2),
        ..QueueOptions::default()
    };
    let started = Instant::now();
    let summary = ingest_queue(&aws.queue(&queue_url, 30), &bus, &options)
        .unwrap_or_else(|e| panic!("ingest_queue: {e}"));
    eprintln!("{summary:?} in {:?}", started.elapsed());

    // The five good files, and the records the truncated file holds
    // before it breaks off (the rest is a dead letter).
    let good = 300 + 200 + 50 + 40 + 30;
    assert!(
        summary.events >= good && summary.events < good + 100,
        "{} events",
        summary.events
    );
    assert_eq!(
        events_on_topic(&bus),
        summary.events as i64,
        "events on the topic"
    );
    assert_eq!(
        summary.objects, 8,
        "objects parsed (5 good, bomb, truncated, csv)"
    );
    assert_eq!(summary.digests_skipped, 1);
    assert!(summary.test_events >= 1);
    assert_eq!(summary.messages_retried, 0);
    let reasons = &summary.dead_letters_by_reason;
    // The bomb, the truncated file (its stream and its last record), the
    // CSV, the message that is no notice.
    for reason in [
        "decompressed_too_large",
        "bad_gzip",
        "invalid_json",
        "unknown_format",
        "bad_notification",
    ] {
        assert_eq!(reasons.get(reason), Some(&1), "{reason}: {reasons:?}");
    }
    let lines = std::fs::read_to_string(dead.path()).expect("the dead-letter file");
    assert!(
        lines.contains(&format!("s3://trail-logs/{}", key(14, "bomb"))),
        "{lines}"
    );
    assert!(
        lines.contains("s3://trail-logs/exports/report.csv"),
        "{lines}"
    );
    // Every message was deleted, none left in flight.
    assert_eq!(aws.messages(&queue_url), 0, "messages left on the queue");
    drop(aws.moto);
}

#[test]
fn a_message_stays_on_the_queue_until_its_events_are_in_kafka() {
    let aws = Aws::start();
    let queue_url = aws.bucket_with_queue("trail-logs", "trail-notices");
    aws.put("trail-logs", &key(12, "a"), trail_file(100, "a"));

    // A broker that is not there: the message is received and its object
    // read, delivery times out, the run fails, and the message is not
    // deleted.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port");
    let mut down = BusConfig::new(closed.to_string());
    down.topic_prefix = format!("{}.", unique("sqs-down"));
    down.delivery_timeout_ms = 3000;
    let failed = ingest_queue(
        &aws.queue(&queue_url, 2),
        &down,
        &QueueOptions {
            idle_polls: Some(2),
            skip_topic_creation: true,
            ..QueueOptions::default()
        },
    );
    let error = failed.expect_err("ingest with no broker succeeded");
    assert!(
        error.to_string().contains("deliver") || error.to_string().contains("broker"),
        "{error}"
    );
    assert!(
        aws.messages(&queue_url) >= 1,
        "the message was deleted without its events"
    );
    let options = QueueOptions {
        idle_polls: Some(2),
        ..QueueOptions::default()
    };

    // With the broker there, the same message is delivered and deleted.
    std::thread::sleep(Duration::from_secs(3));
    let broker = Broker::start_with(Storage::Memory);
    let bus = one_record_batches(broker.config("sqs-up"));
    let summary = ingest_queue(&aws.queue(&queue_url, 30), &bus, &options)
        .unwrap_or_else(|e| panic!("ingest_queue: {e}"));
    assert_eq!(summary.events, 100);
    assert_eq!(events_on_topic(&bus), 100);
    assert_eq!(aws.messages(&queue_url), 0);
}

#[test]
fn a_trail_found_by_describe_trails_brings_its_new_log_files_to_kafka_once() {
    use aws_sdk_cloudtrail::config::{BehaviorVersion, Credentials, Region};
    use trailhound_aws::trail::{TrailBucket, day_folder};
    use trailhound_kafka::{TrailOptions, ingest_trail};

    let aws = Aws::start();
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
    let today = day_folder(trailhound_core::time::now_micros());
    let file = |region: &str, tag: &str| {
        format!(
            "audit/AWSLogs/{ACCOUNT}/CloudTrail/{region}/{today}/{ACCOUNT}_CloudTrail_{region}_x_{tag}.json.gz"
        )
    };
    aws.put(
        "org-trail-logs",
        &file("us-east-1", "a"),
        trail_file(40, "ta"),
    );
    aws.put(
        "org-trail-logs",
        &file("eu-west-1", "b"),
        trail_file(25, "tb"),
    );
    aws.put(
        "org-trail-logs",
        &format!("audit/AWSLogs/{ACCOUNT}/CloudTrail-Digest/us-east-1/{today}/{ACCOUNT}_CloudTrail-Digest_us-east-1_x.json.gz"),
        gzip(b"{\"digestStartTime\":\"x\"}"),
    );

    let trail = TrailBucket::from_clients(aws.s3.clone(), &cloudtrail, Some("management"))
        .unwrap_or_else(|e| panic!("discovery: {e}"));
    assert_eq!(trail.info().bucket, "org-trail-logs");
    assert_eq!(trail.info().prefix.as_deref(), Some("audit"));
    assert!(trail.info().multi_region);
    assert!(!trail.info().organization);

    let broker = Broker::start_with(Storage::Memory);
    let bus = one_record_batches(broker.config("trail"));
    let state = tempfile::tempdir().expect("a state folder");
    let options = TrailOptions {
        state: Some(state.path().to_path_buf()),
        polls: Some(1),
        every: Duration::from_millis(100),
        ..TrailOptions::default()
    };
    let first = ingest_trail(&trail, &bus, &options).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((first.files, first.events), (2, 65));
    assert_eq!(events_on_topic(&bus), 65);

    // A new file appears: the next run (from the saved cursor) reads only it.
    aws.put(
        "org-trail-logs",
        &file("us-east-1", "c"),
        trail_file(10, "tc"),
    );
    let second = ingest_trail(&trail, &bus, &options).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((second.files, second.events), (1, 10));
    assert_eq!(events_on_topic(&bus), 75);

    // An unnamed discovery finds the only trail.
    let only = TrailBucket::from_clients(aws.s3.clone(), &cloudtrail, None)
        .unwrap_or_else(|e| panic!("discovery: {e}"));
    assert_eq!(only.info().name, "management");
}
