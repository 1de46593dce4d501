//! What the tests against moto share: moto on loopback with S3 and SQS
//! clients, buckets whose new objects are announced on a queue, and
//! CloudTrail files to put in them. Used by `kafka/tests/queue.rs` and the
//! CLI tests in `tests/ingest_sources.rs`.

#![allow(dead_code)]

use std::io::Write;

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_sqs::types::QueueAttributeName;
use trailhound_aws::{QueueSettings, S3Queue};
use trailhound_respond::moto::MotoServer;

/// moto on loopback and clients for it.
pub struct Aws {
    pub moto: MotoServer,
    pub rt: tokio::runtime::Runtime,
    pub s3: aws_sdk_s3::Client,
    pub sqs: aws_sdk_sqs::Client,
}

impl Aws {
    pub fn start() -> Aws {
        let moto = MotoServer::start().unwrap_or_else(|e| panic!("{e}"));
        let creds = aws_sdk_s3::config::Credentials::new("testing", "testing", None, None, "moto");
        let region = aws_sdk_s3::config::Region::new("us-east-1");
        let s3 = aws_sdk_s3::Config::builder()
            .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
            .region(region.clone())
            .endpoint_url(&moto.url)
            .credentials_provider(creds.clone())
            .force_path_style(true)
            .build();
        let sqs = aws_sdk_sqs::Config::builder()
            .behavior_version(aws_sdk_sqs::config::BehaviorVersion::latest())
            .region(region)
            .endpoint_url(&moto.url)
            .credentials_provider(creds)
            .build();
        Aws {
            rt: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime"),
            s3: aws_sdk_s3::Client::from_conf(s3),
            sqs: aws_sdk_sqs::Client::from_conf(sqs),
            moto,
        }
    }

    /// A queue, and a bucket whose new objects are announced on it.
    pub fn bucket_with_queue(&self, bucket: &str, queue: &str) -> String {
        self.rt.block_on(async {
            let url = self
                .sqs
                .create_queue()
                .queue_name(queue)
                .send()
                .await
                .expect("create_queue")
                .queue_url
                .expect("a queue URL");
            let arn = self
                .sqs
                .get_queue_attributes()
                .queue_url(&url)
                .attribute_names(QueueAttributeName::QueueArn)
                .send()
                .await
                .expect("get_queue_attributes")
                .attributes
                .and_then(|a| a.get(&QueueAttributeName::QueueArn).cloned())
                .expect("the queue ARN");
            self.s3
                .create_bucket()
                .bucket(bucket)
                .send()
                .await
                .expect("create_bucket");
            use aws_sdk_s3::types::{Event, NotificationConfiguration, QueueConfiguration};
            let config = NotificationConfiguration::builder()
                .queue_configurations(
                    QueueConfiguration::builder()
                        .queue_arn(arn)
                        .events(Event::S3ObjectCreated)
                        .build()
                        .expect("a queue configuration"),
                )
                .build();
            self.s3
                .put_bucket_notification_configuration()
                .bucket(bucket)
                .notification_configuration(config)
                .send()
                .await
                .expect("put_bucket_notification_configuration");
            url
        })
    }

    pub fn bucket(&self, bucket: &str) {
        self.rt
            .block_on(self.s3.create_bucket().bucket(bucket).send())
            .expect("create_bucket");
    }

    pub fn put(&self, bucket: &str, key: &str, body: Vec<u8>) {
        self.rt
            .block_on(
                self.s3
                    .put_object()
                    .bucket(bucket)
                    .key(key)
                    .body(ByteStream::from(body))
                    .send(),
            )
            .unwrap_or_else(|e| panic!("put {key}: {e:?}"));
    }

    pub fn send(&self, queue: &str, body: &str) {
        self.rt
            .block_on(
                self.sqs
                    .send_message()
                    .queue_url(queue)
                    .message_body(body)
                    .send(),
            )
            .expect("send_message");
    }

    /// Visible plus in-flight messages.
    pub fn messages(&self, queue: &str) -> u64 {
        let attrs = self
            .rt
            .block_on(
                self.sqs
                    .get_queue_attributes()
                    .queue_url(queue)
                    .attribute_names(QueueAttributeName::All)
                    .send(),
            )
            .expect("get_queue_attributes")
            .attributes
            .unwrap_or_default();
        [
            QueueAttributeName::ApproximateNumberOfMessages,
            QueueAttributeName::ApproximateNumberOfMessagesNotVisible,
        ]
        .iter()
        .filter_map(|k| attrs.get(k).and_then(|v| v.parse::<u64>().ok()))
        .sum()
    }

    pub fn queue(&self, url: &str, visibility_seconds: i32) -> S3Queue {
        let mut settings = QueueSettings::new(url);
        settings.wait_seconds = 1;
        settings.visibility_seconds = visibility_seconds;
        settings.max_object_bytes = 4 * 1024 * 1024;
        S3Queue::from_clients(self.sqs.clone(), self.s3.clone(), settings).expect("a queue")
    }
}

pub const ACCOUNT: &str = "111122223333";

pub fn key(hour: u32, tag: &str) -> String {
    format!(
        "AWSLogs/o-a1b2c3d4e5/{ACCOUNT}/CloudTrail/us-east-1/2026/11/03/{ACCOUNT}_CloudTrail_us-east-1_20261103T{hour:02}00Z_{tag}.json.gz"
    )
}

/// A CloudTrail file of `n` records, gzipped.
pub fn trail_file(n: usize, tag: &str) -> Vec<u8> {
    let records: Vec<serde_json::Value> = (0..n)
        .map(|i| {
            serde_json::json!({
                "eventVersion": "1.09",
                "userIdentity": {"type": "IAMUser", "principalId": "AIDAEXAMPLE", "accountId": ACCOUNT,
                    "arn": format!("arn:aws:iam::{ACCOUNT}:user/user-{}", i % 7), "userName": format!("user-{}", i % 7)},
                "eventTime": format!("2026-11-03T12:{:02}:{:02}Z", (i / 60) % 60, i % 60),
                "eventSource": "s3.amazonaws.com",
                "eventName": "ListBuckets",
                "awsRegion": "us-east-1",
                "sourceIPAddress": "198.51.100.7",
                "userAgent": "aws-cli/2.15.0",
                "eventID": format!("{tag}-{i:06}"),
                "readOnly": true,
                "eventType": "AwsApiCall",
                "recipientAccountId": ACCOUNT
            })
        })
        .collect();
    gzip(
        serde_json::json!({ "Records": records })
            .to_string()
            .as_bytes(),
    )
}

pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut z = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    z.write_all(bytes).expect("gzip");
    z.finish().expect("gzip")
}
