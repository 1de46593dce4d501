//! CloudTrail from AWS itself.
//!
//! - [`queue`]: an SQS queue of S3 notifications ([`notice`] reads every
//!   shape they come in: direct, through SNS, through EventBridge, and
//!   CloudTrail's own SNS notice), the objects they name read with a size
//!   limit, and the queue's visibility used for retries with backoff. The
//!   caller (`trailhound_kafka::ingest::ingest_queue`) parses each object
//!   with the same parsers as files and deletes a message only after every
//!   event from it was acknowledged downstream.
//! - [`notice::classify_key`]: CloudTrail's delivery layout, organisation
//!   trails included; digest files are skipped.
//! - [`lookup`]: CloudTrail's LookupEvents for accounts without a trail
//!   bucket, per region, with a cursor that overlaps the last window and
//!   drops what it already read, under the API's 2 requests per second.
//! - [`trail`]: DescribeTrails finds a trail's bucket, prefix and kind;
//!   its log files of yesterday and today are listed and read as they
//!   appear (`ingest --trail`), with a cursor of the files done.
//! - [`config`]: the standard AWS configuration (credential chain, profile,
//!   region, assume-role, `--endpoint-url`).
//!
//! Blocking interfaces over the async SDK: each client owns a
//! current-thread runtime, so callers stay plain threads like the rest of
//! the pipeline.

pub mod config;
pub mod error;
pub mod lookup;
pub mod notice;
pub mod queue;
pub mod trail;

pub use config::AwsSettings;
pub use error::AwsError;
pub use notice::{KeyKind, Notice, NoticeError, ObjectRef, classify_key, parse_notice};
pub use queue::{Delivery, Fetched, QueueSettings, S3Queue, backoff_seconds};
