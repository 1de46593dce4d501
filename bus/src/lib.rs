//! # trailhound-bus
//!
//! The Kafka transport between trailhound's ingestors and detectors, on
//! librdkafka (the `rdkafka` crate, with its bundled librdkafka built
//! statically by its own configure and make; zstd is built from source,
//! zlib and OpenSSL come from the system). See `docs/architecture.md`,
//! "Kafka", for the topic layout and the delivery contract.
//!
//! - [`BusConfig`]: brokers, client id, topic prefix and names, partitions,
//!   compression, and librdkafka properties passed through for SASL/SSL;
//!   from a config file section and `TRAILHOUND_KAFKA_*` variables.
//! - [`ensure_topics`]: creates the event, alert, action and dead-letter
//!   topics when absent.
//! - [`codec`]: one message per event, keyed by principal, with a schema
//!   header (`event.v1+json`) in front of the JSON of the event.
//! - [`EventProducer`]: sends the events of one input and returns only when
//!   the broker acknowledged every one of them (`acks=all`, idempotent).
//! - [`EventConsumer`]: a consumer-group member that polls in batches,
//!   reports undecodable messages with the reason, commits only what the
//!   caller says is durable, and surfaces rebalances as
//!   [`RebalanceNotice`]s.
//! - [`RecordProducer`]: alerts, actions and dead letters as JSON, with
//!   delivery confirmation.
//!
//! The contract is at-least-once: an input is acknowledged to its origin only
//! after the broker acknowledged its records, and a detector commits offsets
//! only after the alerts and state of the records before them are durable.
//! Duplicates after a crash are made harmless by stable alert ids.

// Code that reads input never panics on it (tests may).
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::indexing_slicing,
        clippy::panic
    )
)]

pub mod admin;
pub mod codec;
pub mod config;
pub mod consume;
pub mod error;
pub mod produce;

pub use admin::{
    TopicStatus, ensure_named_topics, ensure_topics, high_watermarks, partition_count,
};
pub use config::{BusConfig, Compression, OffsetReset, TopicKind, TopicNames};
pub use consume::{
    Batch, ControlRecord, Delivered, EventConsumer, MessagePosition, Offsets, PartitionId,
    RebalanceNotice, RevokeHook, Undecodable,
};
pub use error::{BusError, ConfigError, DecodeError};
pub use produce::{
    EventProducer, InputAck, InputSender, PendingRecords, RawRecord, RecordProducer, RecordSender,
    record_schema,
};
