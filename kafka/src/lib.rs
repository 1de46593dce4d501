//! # trailhound-kafka
//!
//! trailhound over Kafka (`docs/architecture.md`, "Kafka"):
//!
//! - [`ingest`]: `trailhound ingest PATHS --kafka BROKERS`, inputs parsed
//!   and sent to the event topic, each recorded as done only once the broker
//!   acknowledged all of its records.
//! - [`detect`]: `trailhound detect --kafka BROKERS --group NAME`, a
//!   consumer-group member with an engine per event partition, rules whose
//!   state is not per principal run through the rekeyed topic, and
//!   checkpoints that follow partitions ([`state`]).
//! - [`scope`]: which rules run per partition and how the others are keyed.
//!
//! The transport itself (topics, encoding, producers with delivery
//! confirmation, the group consumer) is `trailhound-bus`.

pub mod detect;
pub mod error;
pub mod ingest;
pub mod scope;
pub mod state;

pub use detect::{DetectIo, DetectOptions, DetectSummary};
pub use error::KafkaError;
pub use ingest::{IngestInput, IngestOptions, IngestSummary};
