//! Where the cluster is and how to talk to it: [`BusConfig`].
//!
//! It deserialises from the `kafka` section of a config file and is then
//! overlaid with the environment ([`BusConfig::apply_env`]). Properties that
//! carry secrets (SASL passwords, key material) are passed to librdkafka
//! untouched but never shown: `Debug` prints `<redacted>` in their place.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use rdkafka::ClientConfig;
use serde::Deserialize;

use crate::error::ConfigError;

/// The prefix of every environment variable [`BusConfig::apply_env`] reads.
pub const ENV_PREFIX: &str = "TRAILHOUND_KAFKA_";

/// Environment variables `TRAILHOUND_KAFKA_PROP_<NAME>` become the librdkafka
/// property `<name>` (lower-cased, `_` read as `.`): `TRAILHOUND_KAFKA_PROP_SASL_USERNAME`
/// sets `sasl.username`.
pub const ENV_PROPERTY_PREFIX: &str = "TRAILHOUND_KAFKA_PROP_";

/// librdkafka properties that trailhound sets itself because the delivery
/// guarantees depend on them; the pass-through map may not override them.
pub const MANAGED_PROPERTIES: &[&str] = &[
    "bootstrap.servers",
    "metadata.broker.list",
    "client.id",
    "group.id",
    "enable.auto.commit",
    "enable.auto.offset.store",
    "enable.idempotence",
    "acks",
    "request.required.acks",
    "compression.type",
    "compression.codec",
];

/// Compression of produced record batches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// LZ4: cheap on CPU, the default.
    #[default]
    Lz4,
    /// Zstandard: smaller, costs more CPU.
    Zstd,
    /// No compression (debugging only).
    None,
}

impl Compression {
    /// The librdkafka `compression.type` value.
    pub fn as_str(self) -> &'static str {
        match self {
            Compression::Lz4 => "lz4",
            Compression::Zstd => "zstd",
            Compression::None => "none",
        }
    }

    fn parse(value: &str) -> Option<Self> {
        match value.trim().to_ascii_lowercase().as_str() {
            "lz4" => Some(Compression::Lz4),
            "zstd" => Some(Compression::Zstd),
            "none" => Some(Compression::None),
            _ => None,
        }
    }
}

/// Where a consumer group with no committed offset for a partition starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OffsetReset {
    /// From the oldest retained record (nothing is skipped): the default.
    #[default]
    Earliest,
    /// From the next record produced.
    Latest,
}

impl OffsetReset {
    fn as_str(self) -> &'static str {
        match self {
            OffsetReset::Earliest => "earliest",
            OffsetReset::Latest => "latest",
        }
    }
}

/// Topic names, before the prefix is put in front.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TopicNames {
    /// Normalised events, keyed by principal.
    pub events: String,
    /// Alerts, keyed by alert id.
    pub alerts: String,
    /// Response actions, keyed by principal.
    pub actions: String,
    /// Records that could not be decoded or processed, with the reason.
    pub dead_letters: String,
    /// Events re-published by detectors keyed by a rule's state key (for
    /// rules whose state is not per principal), with the rule in a header;
    /// each consumer group uses `<this>.<group>`.
    pub rekeyed: String,
}

impl Default for TopicNames {
    fn default() -> Self {
        Self {
            events: "trailhound.events".into(),
            alerts: "trailhound.alerts".into(),
            actions: "trailhound.actions".into(),
            dead_letters: "trailhound.dead-letters".into(),
            rekeyed: "trailhound.rekeyed".into(),
        }
    }
}

/// The four kinds of topic trailhound writes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TopicKind {
    /// Normalised events.
    Events,
    /// Alerts.
    Alerts,
    /// Response actions.
    Actions,
    /// Dead letters.
    DeadLetters,
    /// Events forwarded between detectors, keyed by a rule's state key.
    Rekeyed,
}

impl TopicKind {
    /// Every kind [`crate::ensure_topics`] creates, in a stable order. The
    /// rekeyed topic is not among them: each consumer group has its own
    /// (`<rekeyed>.<group>`), created by its detectors.
    pub const ALL: [TopicKind; 4] = [
        TopicKind::Events,
        TopicKind::Alerts,
        TopicKind::Actions,
        TopicKind::DeadLetters,
    ];
}

/// Everything needed to reach a Kafka cluster and lay out trailhound's topics.
///
/// All fields have defaults, so an empty section is a local single broker.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BusConfig {
    /// Bootstrap brokers, comma-separated `host:port`.
    pub brokers: String,
    /// `client.id` sent to the brokers (shows up in their logs and quotas).
    pub client_id: String,
    /// Put in front of every topic name (`prod.` gives `prod.trailhound.events`).
    pub topic_prefix: String,
    /// Topic names, before the prefix.
    pub topics: TopicNames,
    /// Partitions of a topic created because it was absent.
    pub partitions: i32,
    /// Replication factor of a topic created because it was absent.
    pub replication: i32,
    /// Compression of produced batches.
    pub compression: Compression,
    /// How long a producer waits for the broker to acknowledge an input's
    /// records before it reports the input as not delivered, in milliseconds
    /// (default 300,000, librdkafka's own: a broker restart or a leader
    /// election shorter than that costs no re-send and no duplicate).
    pub delivery_timeout_ms: u64,
    /// How long ingest and detect keep retrying through a broker outage
    /// (backing off, then sending again or rejoining the group) before they
    /// give up with an error, in seconds; 0 retries for ever (default 900).
    pub max_outage_secs: u64,
    /// Consumer group session timeout, in milliseconds.
    pub session_timeout_ms: u32,
    /// The most a consumer holds of records fetched ahead of processing, in
    /// MiB (default 16): librdkafka's prefetch queue
    /// (`queued.max.messages.kbytes`) and one fetch (`fetch.max.bytes`). A
    /// backlog on the topic, however large, costs a detector a bounded
    /// amount of memory that grows with this, not with the backlog (about 8
    /// times this, with the fetch responses held and inflated, and the
    /// poll's batches): the broker keeps the rest until the detector asks.
    pub consumer_buffer_mib: u32,
    /// Where a group starts on a partition with no committed offset.
    pub auto_offset_reset: OffsetReset,
    /// librdkafka properties passed through untouched: `security.protocol`,
    /// `sasl.mechanism`, `sasl.username`, `sasl.password`, `ssl.ca.location`, ...
    /// Values of secret-looking keys are never printed.
    pub properties: BTreeMap<String, String>,
}

impl Default for BusConfig {
    fn default() -> Self {
        Self {
            brokers: "127.0.0.1:9092".into(),
            client_id: "trailhound".into(),
            topic_prefix: String::new(),
            topics: TopicNames::default(),
            partitions: 6,
            replication: 1,
            compression: Compression::default(),
            delivery_timeout_ms: 300_000,
            max_outage_secs: 900,
            consumer_buffer_mib: 16,
            session_timeout_ms: 10_000,
            auto_offset_reset: OffsetReset::default(),
            properties: BTreeMap::new(),
        }
    }
}

/// True for property names whose values must never be logged or printed.
pub fn is_secret_property(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    [
        "password",
        "secret",
        "token",
        "jaas",
        "key",
        "pem",
        "credential",
    ]
    .iter()
    .any(|word| name.contains(word))
}

impl fmt::Debug for BusConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let properties: BTreeMap<&str, &str> = self
            .properties
            .iter()
            .map(|(k, v)| {
                let shown = if is_secret_property(k) {
                    "<redacted>"
                } else {
                    v.as_str()
                };
                (k.as_str(), shown)
            })
            .collect();
        f.debug_struct("BusConfig")
            .field("brokers", &self.brokers)
            .field("client_id", &self.client_id)
            .field("topic_prefix", &self.topic_prefix)
            .field("topics", &self.topics)
            .field("partitions", &self.partitions)
            .field("replication", &self.replication)
            .field("compression", &self.compression)
            .field("delivery_timeout_ms", &self.delivery_timeout_ms)
            .field("max_outage_secs", &self.max_outage_secs)
            .field("session_timeout_ms", &self.session_timeout_ms)
            .field("consumer_buffer_mib", &self.consumer_buffer_mib)
            .field("auto_offset_reset", &self.auto_offset_reset)
            .field("properties", &properties)
            .finish()
    }
}

impl BusConfig {
    /// A default configuration for the given bootstrap brokers.
    pub fn new(brokers: impl Into<String>) -> Self {
        Self {
            brokers: brokers.into(),
            ..Self::default()
        }
    }

    /// The full name (prefix included) of a topic.
    pub fn topic(&self, kind: TopicKind) -> String {
        let name = match kind {
            TopicKind::Events => &self.topics.events,
            TopicKind::Alerts => &self.topics.alerts,
            TopicKind::Actions => &self.topics.actions,
            TopicKind::DeadLetters => &self.topics.dead_letters,
            TopicKind::Rekeyed => &self.topics.rekeyed,
        };
        format!("{}{}", self.topic_prefix, name)
    }

    /// Overlays the process environment ([`ENV_PREFIX`] variables) on this
    /// configuration. See [`BusConfig::apply_env_from`].
    pub fn apply_env(&mut self) -> Result<(), ConfigError> {
        self.apply_env_from(std::env::vars())
    }

    /// Overlays `TRAILHOUND_KAFKA_*` variables from `vars`:
    /// `BROKERS`, `CLIENT_ID`, `TOPIC_PREFIX`, `TOPIC_EVENTS`, `TOPIC_ALERTS`,
    /// `TOPIC_ACTIONS`, `TOPIC_DEAD_LETTERS`, `TOPIC_REKEYED`, `PARTITIONS`, `REPLICATION`,
    /// `COMPRESSION`, `DELIVERY_TIMEOUT_MS`, `SESSION_TIMEOUT_MS`,
    /// `AUTO_OFFSET_RESET`, and `PROP_<NAME>` for pass-through properties.
    /// Unknown `TRAILHOUND_KAFKA_*` names are an error, so a typo is not ignored.
    pub fn apply_env_from<I, K, V>(&mut self, vars: I) -> Result<(), ConfigError>
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: Into<String>,
    {
        for (key, value) in vars {
            let key = key.as_ref();
            let Some(name) = key.strip_prefix(ENV_PREFIX) else {
                continue;
            };
            let value: String = value.into();
            if let Some(prop) = key.strip_prefix(ENV_PROPERTY_PREFIX) {
                if prop.is_empty() {
                    return Err(ConfigError::UnknownVariable(key.to_string()));
                }
                let prop = prop.to_ascii_lowercase().replace('_', ".");
                self.properties.insert(prop, value);
                continue;
            }
            match name {
                "BROKERS" => self.brokers = value,
                "CLIENT_ID" => self.client_id = value,
                "TOPIC_PREFIX" => self.topic_prefix = value,
                "TOPIC_EVENTS" => self.topics.events = value,
                "TOPIC_ALERTS" => self.topics.alerts = value,
                "TOPIC_ACTIONS" => self.topics.actions = value,
                "TOPIC_DEAD_LETTERS" => self.topics.dead_letters = value,
                "TOPIC_REKEYED" => self.topics.rekeyed = value,
                "PARTITIONS" => self.partitions = parse_number(key, &value)?,
                "REPLICATION" => self.replication = parse_number(key, &value)?,
                "DELIVERY_TIMEOUT_MS" => self.delivery_timeout_ms = parse_number(key, &value)?,
                "MAX_OUTAGE_SECS" => self.max_outage_secs = parse_number(key, &value)?,
                "SESSION_TIMEOUT_MS" => self.session_timeout_ms = parse_number(key, &value)?,
                "CONSUMER_BUFFER_MIB" => self.consumer_buffer_mib = parse_number(key, &value)?,
                "COMPRESSION" => {
                    self.compression =
                        Compression::parse(&value).ok_or_else(|| ConfigError::BadValue {
                            name: key.to_string(),
                            value,
                            expected: "lz4, zstd or none",
                        })?
                }
                "AUTO_OFFSET_RESET" => {
                    self.auto_offset_reset = match value.trim().to_ascii_lowercase().as_str() {
                        "earliest" => OffsetReset::Earliest,
                        "latest" => OffsetReset::Latest,
                        _ => {
                            return Err(ConfigError::BadValue {
                                name: key.to_string(),
                                value,
                                expected: "earliest or latest",
                            });
                        }
                    }
                }
                _ => return Err(ConfigError::UnknownVariable(key.to_string())),
            }
        }
        Ok(())
    }

    /// How long to retry through a broker outage; `None` for ever.
    pub fn max_outage(&self) -> Option<Duration> {
        (self.max_outage_secs > 0).then(|| Duration::from_secs(self.max_outage_secs))
    }

    /// Checks the values that would otherwise fail late, inside librdkafka or
    /// at the broker.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.brokers.trim().is_empty() {
            return Err(ConfigError::Missing("brokers"));
        }
        if self.partitions < 1 {
            return Err(ConfigError::Invalid(format!(
                "partitions must be at least 1, not {}",
                self.partitions
            )));
        }
        if self.replication < 1 {
            return Err(ConfigError::Invalid(format!(
                "replication must be at least 1, not {}",
                self.replication
            )));
        }
        if self.consumer_buffer_mib < 2 {
            return Err(ConfigError::Invalid(format!(
                "consumer_buffer_mib must be at least 2 (a fetch must hold the largest record), not {}",
                self.consumer_buffer_mib
            )));
        }
        if self.delivery_timeout_ms == 0 {
            return Err(ConfigError::Invalid(
                "delivery_timeout_ms must be more than 0".into(),
            ));
        }
        for kind in TopicKind::ALL {
            let topic = self.topic(kind);
            if !valid_topic_name(&topic) {
                return Err(ConfigError::Invalid(format!(
                    "{topic:?} is not a valid Kafka topic name (1 to 249 of a-z A-Z 0-9 . _ -)"
                )));
            }
        }
        for key in self.properties.keys() {
            if MANAGED_PROPERTIES.contains(&key.as_str()) {
                return Err(ConfigError::Managed(key.clone()));
            }
        }
        Ok(())
    }

    /// The librdkafka settings every client shares: brokers, client id and
    /// the pass-through properties.
    pub(crate) fn base_client_config(&self) -> Result<ClientConfig, ConfigError> {
        self.validate()?;
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", &self.brokers)
            .set("client.id", &self.client_id);
        for (key, value) in &self.properties {
            config.set(key, value);
        }
        Ok(config)
    }

    /// Producer settings: acknowledged by all in-sync replicas, idempotent
    /// (no duplicates or reordering from retries), compressed.
    pub(crate) fn producer_config(&self) -> Result<ClientConfig, ConfigError> {
        let mut config = self.base_client_config()?;
        let timeout = self.delivery_timeout_ms.to_string();
        config
            .set("acks", "all")
            .set("enable.idempotence", "true")
            .set("compression.type", self.compression.as_str())
            .set("message.timeout.ms", &timeout);
        Ok(config)
    }

    /// Consumer settings: a group member that neither stores nor commits an
    /// offset unless told to.
    pub(crate) fn consumer_config(&self, group: &str) -> Result<ClientConfig, ConfigError> {
        if group.trim().is_empty() {
            return Err(ConfigError::Missing("group"));
        }
        let mut config = self.base_client_config()?;
        config
            .set("group.id", group)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", self.auto_offset_reset.as_str())
            .set("session.timeout.ms", self.session_timeout_ms.to_string())
            // Heartbeats at a third of the session timeout, as Kafka advises.
            .set(
                "heartbeat.interval.ms",
                (self.session_timeout_ms / 3).max(100).to_string(),
            );
        // Prefetch bounded in bytes (the message-count bound, 100,000 per
        // partition by default, would let small records pile up far more).
        let buffer_kib = u64::from(self.consumer_buffer_mib) * 1024;
        for (key, value) in [
            ("queued.max.messages.kbytes", buffer_kib.to_string()),
            ("queued.min.messages", "10000".to_string()),
            // When the prefetch queue is full, fetch again soon after it
            // drains: librdkafka's default waits a whole second, which left
            // the detector idle for most of a backlog (5,600 against 17,000
            // events/s in kafka_bench).
            ("fetch.queue.backoff.ms", "10".to_string()),
            (
                "fetch.max.bytes",
                (buffer_kib.min(50 * 1024) * 1024).to_string(),
            ),
        ] {
            if !self.properties.contains_key(key) {
                config.set(key, value);
            }
        }
        // Incremental rebalancing: members keep the partitions they own
        // while one joins or leaves, and only the moved ones are handed over
        // (checkpointed by the loser, restored by the gainer). It is also
        // what makes tansu 0.6.0 hand a dead member's partitions to the
        // survivors (with the eager strategies it keeps the old assignment;
        // docs/architecture.md, Kafka). A pass-through
        // `partition.assignment.strategy` still wins.
        if !self
            .properties
            .contains_key("partition.assignment.strategy")
        {
            config.set("partition.assignment.strategy", "cooperative-sticky");
        }
        Ok(config)
    }
}

fn parse_number<T: std::str::FromStr>(name: &str, value: &str) -> Result<T, ConfigError> {
    value.trim().parse().map_err(|_| ConfigError::BadValue {
        name: name.to_string(),
        value: value.to_string(),
        expected: "a whole number",
    })
}

fn valid_topic_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 249
        && name != "."
        && name != ".."
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_prefix() {
        let mut config = BusConfig::default();
        assert_eq!(config.topic(TopicKind::Events), "trailhound.events");
        assert_eq!(
            config.topic(TopicKind::DeadLetters),
            "trailhound.dead-letters"
        );
        config.topic_prefix = "prod.".into();
        assert_eq!(config.topic(TopicKind::Alerts), "prod.trailhound.alerts");
        config.validate().unwrap();
    }

    #[test]
    fn reads_a_config_section() {
        let config: BusConfig = serde_json::from_str(
            r#"{"brokers": "k1:9092,k2:9092", "topic_prefix": "x.", "compression": "zstd",
                "topics": {"events": "ev"},
                "properties": {"security.protocol": "SASL_SSL", "sasl.password": "hunter2"}}"#,
        )
        .unwrap();
        assert_eq!(config.brokers, "k1:9092,k2:9092");
        assert_eq!(config.compression, Compression::Zstd);
        assert_eq!(config.topic(TopicKind::Events), "x.ev");
        assert_eq!(config.topic(TopicKind::Alerts), "x.trailhound.alerts");
        assert_eq!(config.partitions, 6);
        config.validate().unwrap();
        let shown = format!("{config:?}");
        assert!(shown.contains("SASL_SSL"));
        assert!(!shown.contains("hunter2"), "{shown}");
    }

    #[test]
    fn environment_overlays() {
        let mut config = BusConfig::default();
        config
            .apply_env_from([
                ("TRAILHOUND_KAFKA_BROKERS", "b:1"),
                ("TRAILHOUND_KAFKA_PARTITIONS", "12"),
                ("TRAILHOUND_KAFKA_COMPRESSION", "ZSTD"),
                ("TRAILHOUND_KAFKA_PROP_SASL_MECHANISM", "SCRAM-SHA-512"),
                ("TRAILHOUND_KAFKA_PROP_SASL_PASSWORD", "s3cret"),
                ("PATH", "/bin"),
            ])
            .unwrap();
        assert_eq!(config.brokers, "b:1");
        assert_eq!(config.partitions, 12);
        assert_eq!(config.compression, Compression::Zstd);
        assert_eq!(config.properties["sasl.mechanism"], "SCRAM-SHA-512");
        assert!(!format!("{config:?}").contains("s3cret"));

        let err = config
            .apply_env_from([("TRAILHOUND_KAFKA_PARTITONS", "3")])
            .unwrap_err();
        assert!(matches!(err, ConfigError::UnknownVariable(_)), "{err}");
        let err = config
            .apply_env_from([("TRAILHOUND_KAFKA_PARTITIONS", "many")])
            .unwrap_err();
        assert!(
            err.to_string().contains("TRAILHOUND_KAFKA_PARTITIONS"),
            "{err}"
        );
    }

    #[test]
    fn refuses_what_it_manages_and_bad_names() {
        let mut config = BusConfig::default();
        config
            .properties
            .insert("enable.auto.commit".into(), "true".into());
        assert!(matches!(config.validate(), Err(ConfigError::Managed(_))));
        let config = BusConfig {
            topic_prefix: "bad prefix/".into(),
            ..BusConfig::default()
        };
        assert!(config.validate().is_err());
        let config = BusConfig::new("");
        assert!(matches!(config.validate(), Err(ConfigError::Missing(_))));
    }

    #[test]
    fn consumer_settings_never_auto_commit() {
        let config = BusConfig::default().consumer_config("g").unwrap();
        assert_eq!(config.get("enable.auto.commit"), Some("false"));
        assert_eq!(config.get("enable.auto.offset.store"), Some("false"));
        let producer = BusConfig::default().producer_config().unwrap();
        assert_eq!(producer.get("acks"), Some("all"));
        assert_eq!(producer.get("enable.idempotence"), Some("true"));
    }
}
