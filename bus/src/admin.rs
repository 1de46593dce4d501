//! Topic administration: create trailhound's topics when they are absent.

use std::collections::BTreeMap;
use std::thread;
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::FromClientConfig;
use rdkafka::types::RDKafkaErrorCode;

use crate::config::{BusConfig, TopicKind};
use crate::error::BusError;

/// What [`ensure_topics`] found or did for one topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicStatus {
    /// The topic's full name.
    pub name: String,
    /// True when this call created it; false when it already existed.
    pub created: bool,
    /// Its partition count as the cluster reports it.
    pub partitions: usize,
}

/// Creates every topic of `config` ([`TopicKind::ALL`]) that is absent, with
/// the configured partition count and replication, and waits (at most
/// `timeout`) until the cluster's metadata shows all of them. A topic that
/// already exists is left as it is, whatever its partition count.
pub fn ensure_topics(config: &BusConfig, timeout: Duration) -> Result<Vec<TopicStatus>, BusError> {
    let names: Vec<String> = TopicKind::ALL.iter().map(|k| config.topic(*k)).collect();
    ensure_named_topics(config, &names, timeout)
}

/// [`ensure_topics`] for an explicit list of topic names.
pub fn ensure_named_topics(
    config: &BusConfig,
    names: &[String],
    timeout: Duration,
) -> Result<Vec<TopicStatus>, BusError> {
    let deadline = Instant::now() + timeout;
    let admin = admin_client(config)?;

    let existing = topic_partitions(&admin, timeout)?;
    let missing: Vec<&String> = names
        .iter()
        .filter(|n| !existing.contains_key(n.as_str()))
        .collect();
    let mut created = Vec::new();
    if !missing.is_empty() {
        let new_topics: Vec<NewTopic<'_>> = missing
            .iter()
            .map(|name| {
                NewTopic::new(
                    name,
                    config.partitions,
                    TopicReplication::Fixed(config.replication),
                )
            })
            .collect();
        let options = AdminOptions::new()
            .request_timeout(Some(timeout))
            .operation_timeout(Some(timeout));
        let results = futures_executor::block_on(admin.create_topics(&new_topics, &options))
            .map_err(BusError::Admin)?;
        for result in results {
            match result {
                Ok(name) => {
                    tracing::info!(topic = %name, partitions = config.partitions, "created kafka topic");
                    created.push(name);
                }
                Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((topic, code)) => {
                    return Err(BusError::CreateTopic {
                        topic,
                        code: code.to_string(),
                    });
                }
            }
        }
    }

    // Creation is asynchronous on a real cluster: wait until every topic is
    // visible with its partitions.
    loop {
        let now = topic_partitions(&admin, deadline.saturating_duration_since(Instant::now()))?;
        let statuses: Option<Vec<TopicStatus>> = names
            .iter()
            .map(|name| {
                now.get(name.as_str())
                    .filter(|p| **p > 0)
                    .map(|p| TopicStatus {
                        name: name.clone(),
                        created: created.contains(name),
                        partitions: *p,
                    })
            })
            .collect();
        if let Some(statuses) = statuses {
            return Ok(statuses);
        }
        if Instant::now() >= deadline {
            let absent = names
                .iter()
                .find(|n| !now.contains_key(n.as_str()))
                .cloned()
                .unwrap_or_default();
            return Err(BusError::CreateTopic {
                topic: absent,
                code: format!("not visible in the cluster metadata after {timeout:?}"),
            });
        }
        thread::sleep(Duration::from_millis(100));
    }
}

/// Partition counts of every topic in the cluster.
fn topic_partitions(
    admin: &AdminClient<DefaultClientContext>,
    timeout: Duration,
) -> Result<BTreeMap<String, usize>, BusError> {
    // All topics, not one by name: asking for one by name may auto-create it
    // on brokers that allow that, with the broker's default partition count.
    let metadata = admin
        .inner()
        .fetch_metadata(None, timeout.max(Duration::from_millis(1)))
        .map_err(BusError::Metadata)?;
    Ok(metadata
        .topics()
        .iter()
        .filter(|t| t.error().is_none())
        .map(|t| (t.name().to_string(), t.partitions().len()))
        .collect())
}

/// The partition count of one topic, or `None` when it does not exist.
pub fn partition_count(
    config: &BusConfig,
    topic: &str,
    timeout: Duration,
) -> Result<Option<usize>, BusError> {
    let admin = admin_client(config)?;
    Ok(topic_partitions(&admin, timeout)?.get(topic).copied())
}

/// The high watermark (the offset the next record written will get) of every
/// partition of `topic`, in partition order, asked of the cluster with a
/// plain client that joins no group (at most `timeout` per partition). For
/// probes and tools: a consumer that subscribes only to read watermarks joins
/// and leaves a group, which is slow and can stall its close on a busy broker.
pub fn high_watermarks(
    config: &BusConfig,
    topic: &str,
    timeout: Duration,
) -> Result<Vec<i64>, BusError> {
    let admin = admin_client(config)?;
    let partitions = topic_partitions(&admin, timeout)?
        .get(topic)
        .copied()
        .unwrap_or(0);
    (0..partitions)
        .map(|p| {
            let partition = i32::try_from(p).unwrap_or(i32::MAX);
            admin
                .inner()
                .fetch_watermarks(topic, partition, timeout)
                .map(|(_, high)| high)
                .map_err(BusError::Metadata)
        })
        .collect()
}

/// A plain admin client of `config`'s cluster.
pub(crate) fn admin_client(
    config: &BusConfig,
) -> Result<AdminClient<DefaultClientContext>, BusError> {
    let client_config = config.base_client_config()?;
    AdminClient::from_config(&client_config).map_err(|source| BusError::Client {
        role: "admin client",
        source,
    })
}
