//! Typed errors of the bus. Nothing from the network is unwrapped: every
//! failure of the broker or of a record ends up as one of these.

use std::time::Duration;

use rdkafka::error::KafkaError;

/// A configuration that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// A required setting is empty.
    #[error("kafka setting `{0}` is required")]
    Missing(&'static str),
    /// A setting has a value that cannot work.
    #[error("kafka setting: {0}")]
    Invalid(String),
    /// An environment variable does not parse.
    #[error("{name}={value:?}: expected {expected}")]
    BadValue {
        /// The variable's name.
        name: String,
        /// What it held.
        value: String,
        /// What it should hold.
        expected: &'static str,
    },
    /// A `TRAILHOUND_KAFKA_*` variable that means nothing (a typo, most likely).
    #[error("unknown environment variable {0}")]
    UnknownVariable(String),
    /// A pass-through property that trailhound sets itself.
    #[error(
        "kafka property `{0}` is set by trailhound (the delivery guarantees depend on it) and cannot be passed through"
    )]
    Managed(String),
}

/// Why a message on the event topic could not become an [`Event`](trailhound_core::Event).
/// The consumer reports these beside the decoded events; the caller
/// dead-letters the message with [`DecodeError::reason`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The message has no schema header.
    #[error("no `{header}` header: not written by trailhound's event producer")]
    MissingSchema {
        /// The header that was looked for.
        header: &'static str,
    },
    /// The schema header names an encoding this build does not know.
    #[error("unknown event schema {0:?}")]
    UnknownSchema(String),
    /// The message has no payload.
    #[error("empty payload")]
    EmptyPayload,
    /// The payload does not parse as an event of the announced schema.
    #[error("payload is not a valid event: {0}")]
    InvalidEvent(String),
}

impl DecodeError {
    /// A short machine-friendly label, used as the dead letter's reason and
    /// as a metric label.
    pub fn reason(&self) -> &'static str {
        match self {
            DecodeError::MissingSchema { .. } => "missing_schema",
            DecodeError::UnknownSchema(_) => "unknown_schema",
            DecodeError::EmptyPayload => "empty_payload",
            DecodeError::InvalidEvent(_) => "invalid_event",
        }
    }
}

/// Everything else that can go wrong on the bus.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    /// The configuration cannot work.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// librdkafka refused to create a client (usually a bad pass-through property).
    #[error("creating the kafka {role}: {source}")]
    Client {
        /// producer, consumer or admin client.
        role: &'static str,
        /// librdkafka's error.
        #[source]
        source: KafkaError,
    },
    /// An admin request failed as a whole (unreachable broker, timeout).
    #[error("kafka admin request: {0}")]
    Admin(#[source] KafkaError),
    /// The broker refused to create a topic.
    #[error("creating topic {topic}: {code}")]
    CreateTopic {
        /// The topic.
        topic: String,
        /// The broker's error code.
        code: String,
    },
    /// A record could not be serialised.
    #[error("encoding a record for {topic}: {source}")]
    Encode {
        /// The destination topic.
        topic: String,
        /// serde_json's error.
        #[source]
        source: serde_json::Error,
    },
    /// librdkafka refused to queue a record (not a delivery failure: the
    /// record never left the process).
    #[error("queueing a record for {topic}: {source}")]
    Enqueue {
        /// The destination topic.
        topic: String,
        /// librdkafka's error.
        #[source]
        source: KafkaError,
    },
    /// Some records of an input were not acknowledged by the broker.
    #[error(
        "input {input}: {failed} of {sent} records were not acknowledged by the broker (first error: {first_error})"
    )]
    Delivery {
        /// The input's id.
        input: String,
        /// Records sent.
        sent: u64,
        /// Records that failed.
        failed: u64,
        /// The first failure librdkafka reported.
        first_error: KafkaError,
    },
    /// The broker did not acknowledge every record of an input in time.
    #[error("input {input}: the broker acknowledged {acked} of {sent} records within {waited:?}")]
    AckTimeout {
        /// The input's id.
        input: String,
        /// Records sent.
        sent: u64,
        /// Records acknowledged so far.
        acked: u64,
        /// How long it waited.
        waited: Duration,
    },
    /// Records were still queued or in flight when a flush gave up.
    #[error("flushing the producer: {0}")]
    Flush(#[source] KafkaError),
    /// Joining the group or subscribing failed.
    #[error("subscribing to {topic}: {source}")]
    Subscribe {
        /// The topic.
        topic: String,
        /// librdkafka's error.
        #[source]
        source: KafkaError,
    },
    /// A fatal consumer error (not a single bad message, which is reported
    /// with the batch).
    #[error("consuming: {0}")]
    Consume(#[source] KafkaError),
    /// Committing offsets failed; nothing is lost, the records will be
    /// delivered again.
    #[error("committing offsets: {0}")]
    Commit(#[source] KafkaError),
    /// Reading the cluster's metadata failed.
    #[error("reading kafka metadata: {0}")]
    Metadata(#[source] KafkaError),
}

impl BusError {
    /// True when the same operation can succeed later without any change on
    /// trailhound's side: the broker unreachable or slow, a record not
    /// acknowledged in time, a producer or consumer that librdkafka declared
    /// unusable (a new one works). False for what only a change of
    /// configuration, permissions or data can mend: a bad setting, a refused
    /// topic, a record too large, an authorisation or authentication failure.
    /// Ingest and detect retry transient errors through an outage
    /// (`max_outage_secs`) and stop on the others.
    pub fn is_transient(&self) -> bool {
        match self {
            BusError::Config(_)
            | BusError::Client { .. }
            | BusError::Encode { .. }
            | BusError::CreateTopic { .. } => false,
            BusError::Delivery { first_error, .. } => !is_permanent(first_error),
            BusError::Enqueue { source, .. }
            | BusError::Admin(source)
            | BusError::Flush(source)
            | BusError::Subscribe { source, .. }
            | BusError::Consume(source)
            | BusError::Commit(source)
            | BusError::Metadata(source) => !is_permanent(source),
            BusError::AckTimeout { .. } => true,
        }
    }
}

/// librdkafka errors that no retry can mend.
fn is_permanent(error: &KafkaError) -> bool {
    use rdkafka::types::RDKafkaErrorCode as Code;
    matches!(
        error.rdkafka_error_code(),
        Some(
            Code::InvalidMessageSize
                | Code::MessageSizeTooLarge
                | Code::InvalidTopic
                | Code::TopicAuthorizationFailed
                | Code::ClusterAuthorizationFailed
                | Code::GroupAuthorizationFailed
                | Code::SaslAuthenticationFailed
                | Code::Authentication
                | Code::InvalidConfig
                | Code::InvalidRecord
        )
    ) || matches!(
        error,
        KafkaError::ClientConfig(..) | KafkaError::ClientCreation(_)
    )
}
