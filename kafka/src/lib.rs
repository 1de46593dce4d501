//! # trailhound-kafka
//!
//! trailhound over Kafka (`docs/architecture.md`, "Kafka"):
//!
//! - [`ingest`]: `trailhound ingest PATHS --kafka BROKERS`, inputs parsed
//!   and sent to the event topic, each recorded as done only once the broker
//!   acknowledged all of its records.
//! - [`queue`]: `trailhound ingest --sqs QUEUE_URL --kafka BROKERS`,
//!   CloudTrail files announced on SQS read from S3 (`trailhound-aws`) and
//!   sent the same way; a message is deleted only once the broker
//!   acknowledged every event of its objects.
//! - [`lookup`]: `trailhound ingest --lookup --kafka BROKERS`, CloudTrail's
//!   LookupEvents polled per region; the cursor is saved only once the
//!   broker acknowledged the window's events.
//! - [`trail`]: `trailhound ingest --trail [NAME] --kafka BROKERS`, the
//!   trail found by DescribeTrails and its bucket's new log files sent the
//!   same way; a file is marked done once the broker acknowledged it.
//! - [`follow`]: `trailhound ingest --follow LOG... --kafka BROKERS`,
//!   gateway logs on this machine followed through rotation; a log's
//!   position is saved once the broker acknowledged what was read.
//! - [`detect`]: `trailhound detect --kafka BROKERS --group NAME`, a
//!   consumer-group member with an engine per event partition, rules whose
//!   state is not per principal run through the rekeyed topic, and
//!   checkpoints that follow partitions ([`state`]).
//! - [`scope`]: which rules run per partition and how the others are keyed.
//! - [`outage`]: how ingest and detect ride out a broker outage (backoff,
//!   try again, give up after `max_outage_secs`).
//!
//! The transport itself (topics, encoding, producers with delivery
//! confirmation, the group consumer) is `trailhound-bus`.

pub mod cursor;
pub mod detect;
pub mod error;
pub mod follow;
pub mod ingest;
pub mod lookup;
pub mod outage;
pub mod queue;
pub mod scope;
pub mod state;
pub mod trail;

pub use cursor::PollOptions;
pub use detect::{DetectIo, DetectOptions, DetectSummary};
pub use error::KafkaError;
pub use follow::{FollowOptions, FollowSummary, ingest_follow};
pub use ingest::{IngestInput, IngestOptions, IngestSummary};
pub use lookup::{LookupOptions, LookupSummary, ingest_lookup};
pub use queue::{QueueOptions, QueueSummary, ingest_queue};
pub use trail::{TrailOptions, TrailSummary, ingest_trail};
