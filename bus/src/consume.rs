//! [`EventConsumer`]: a member of a consumer group on the event topic that
//! stores and commits an offset only when the caller says the records before
//! it are durable (alerts written, state checkpointed).
//!
//! It is synchronous (librdkafka's `BaseConsumer`): the detector's engine is a
//! thread, and rebalance callbacks run inside [`EventConsumer::poll_batch`] on
//! that thread. Rebalances are reported as [`RebalanceNotice`]s with the batch
//! (and on a channel, [`EventConsumer::take_rebalances`]); a batch stops at the
//! first notice, so the caller can restore the state of assigned partitions
//! before it sees any of their records. Records of partitions revoked during
//! a poll are left out of the batch: their new owner reads them again from the
//! committed offset.
//!
//! A revocation notice arrives after the partitions are gone. A caller that
//! must checkpoint and commit *before* they are handed to another member sets
//! a hook ([`EventConsumer::set_revoke_hook`]); it runs inside the rebalance,
//! and the offsets it returns are committed synchronously before the consumer
//! rejoins the group.

use std::collections::BTreeMap;
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use rdkafka::ClientContext;
use rdkafka::admin::AdminClient;
use rdkafka::client::DefaultClientContext;
use rdkafka::config::FromClientConfigAndContext;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Headers, Message};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use serde::Serialize;
use trailhound_core::{DeadLetter, Event, Position};

use crate::codec::{CONTROL_SCHEMAS, SCHEMA_HEADER, decode_event};
use crate::config::{BusConfig, TopicKind};
use crate::error::{BusError, DecodeError};

/// One partition of one topic.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct PartitionId {
    /// The topic.
    pub topic: String,
    /// The partition number.
    pub partition: i32,
}

/// Where a message sits: topic, partition and offset.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct MessagePosition {
    /// The topic.
    pub topic: String,
    /// The partition number.
    pub partition: i32,
    /// The message's offset in the partition.
    pub offset: i64,
}

impl MessagePosition {
    /// The partition the message is on.
    pub fn partition_id(&self) -> PartitionId {
        PartitionId {
            topic: self.topic.clone(),
            partition: self.partition,
        }
    }
}

/// A decoded event and where it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivered {
    /// Topic, partition and offset.
    pub position: MessagePosition,
    /// The message key (the principal), when it had one.
    pub key: Option<String>,
    /// The event.
    pub event: Event,
    /// Headers other than the schema header, in order (empty for events
    /// written by [`crate::EventProducer`]; rekeyed events carry the rule and
    /// their origin, [`crate::codec::RULE_HEADER`], [`crate::codec::ORIGIN_HEADER`]).
    pub headers: Vec<(String, Vec<u8>)>,
}

impl Delivered {
    /// The value of header `name` as text, when present and UTF-8.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .and_then(|(_, v)| std::str::from_utf8(v).ok())
    }
}

/// A control record (a schema of [`crate::codec::CONTROL_SCHEMAS`]): not an
/// event, handed to the caller as it is.
#[derive(Debug, Clone, PartialEq)]
pub struct ControlRecord {
    /// Topic, partition and offset.
    pub position: MessagePosition,
    /// The schema header's value.
    pub schema: String,
    /// The payload, as it was.
    pub payload: Vec<u8>,
}

/// A message that could not be decoded, with the reason. The caller
/// dead-letters it ([`Undecodable::to_dead_letter`]) and may then commit past it.
#[derive(Debug, Clone, PartialEq)]
pub struct Undecodable {
    /// Topic, partition and offset.
    pub position: MessagePosition,
    /// The message key, as it was.
    pub key: Option<Vec<u8>>,
    /// The payload, as it was.
    pub payload: Vec<u8>,
    /// Why it could not be decoded.
    pub error: DecodeError,
}

impl Undecodable {
    /// The machine-friendly reason (`missing_schema`, `invalid_event`, ...).
    pub fn reason(&self) -> &'static str {
        self.error.reason()
    }

    /// The dead letter for this message: origin `kafka:<topic>/<partition>`,
    /// position the offset, the reason and the first bytes of the payload.
    pub fn to_dead_letter(&self) -> DeadLetter {
        let origin = format!("kafka:{}/{}", self.position.topic, self.position.partition);
        let offset = u64::try_from(self.position.offset).unwrap_or_default();
        DeadLetter::new(
            &origin,
            Position::Record(offset),
            self.reason(),
            self.error.to_string(),
            &self.payload,
        )
    }
}

/// A change of the partitions this consumer owns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RebalanceNotice {
    /// These partitions are now this consumer's: restore their state before
    /// processing their records.
    Assigned(Vec<PartitionId>),
    /// These partitions were taken away: their records already polled but
    /// not committed will be read again by their new owner.
    Revoked(Vec<PartitionId>),
    /// The group protocol reported an error (the consumer keeps trying).
    Failed(String),
}

/// What one [`EventConsumer::poll_batch`] call returns.
#[derive(Debug, Default)]
pub struct Batch {
    /// Decoded events, in partition order (per partition, by offset).
    pub events: Vec<Delivered>,
    /// Messages that could not be decoded.
    pub undecodable: Vec<Undecodable>,
    /// Control records ([`crate::codec::CONTROL_SCHEMAS`]), in partition order.
    pub control: Vec<ControlRecord>,
    /// Rebalances seen during the poll, in order. All of the batch's records
    /// were fetched before the first of them.
    pub rebalances: Vec<RebalanceNotice>,
    /// Payload bytes of the batch's records.
    pub bytes: usize,
}

impl Batch {
    /// Number of messages (decoded or not, control records included).
    pub fn len(&self) -> usize {
        self.events.len() + self.undecodable.len() + self.control.len()
    }

    /// True when no message arrived.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The offsets to commit once everything in this batch is durable.
    pub fn offsets(&self) -> Offsets {
        let mut offsets = Offsets::new();
        for d in &self.events {
            offsets.mark(&d.position);
        }
        for u in &self.undecodable {
            offsets.mark(&u.position);
        }
        for c in &self.control {
            offsets.mark(&c.position);
        }
        offsets
    }
}

/// Offsets to commit: per partition, the offset of the next message to read
/// (the last durable message's offset plus one, as Kafka counts).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Offsets {
    next: BTreeMap<PartitionId, i64>,
}

impl Offsets {
    /// No offsets.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records that the message at `position` (and every one before it on
    /// its partition) is durable.
    pub fn mark(&mut self, position: &MessagePosition) {
        let next = position.offset.saturating_add(1);
        let entry = self.next.entry(position.partition_id()).or_insert(next);
        if *entry < next {
            *entry = next;
        }
    }

    /// Merges `other` in, keeping the higher offset of each partition.
    pub fn merge(&mut self, other: &Offsets) {
        for (partition, next) in &other.next {
            let entry = self.next.entry(partition.clone()).or_insert(*next);
            if *entry < *next {
                *entry = *next;
            }
        }
    }

    /// Drops a partition (revoked: no longer ours to commit).
    pub fn remove(&mut self, partition: &PartitionId) -> Option<i64> {
        self.next.remove(partition)
    }

    /// The next offset to read on `partition`, when known.
    pub fn next_offset(&self, partition: &PartitionId) -> Option<i64> {
        self.next.get(partition).copied()
    }

    /// Partitions and their next offsets.
    pub fn iter(&self) -> impl Iterator<Item = (&PartitionId, i64)> {
        self.next.iter().map(|(p, o)| (p, *o))
    }

    /// Number of partitions.
    pub fn len(&self) -> usize {
        self.next.len()
    }

    /// True when there is nothing to commit.
    pub fn is_empty(&self) -> bool {
        self.next.is_empty()
    }

    fn to_list(&self) -> Result<TopicPartitionList, KafkaError> {
        let mut list = TopicPartitionList::with_capacity(self.next.len());
        for (p, next) in &self.next {
            list.add_partition_offset(&p.topic, p.partition, Offset::Offset(*next))?;
        }
        Ok(list)
    }
}

/// Called inside a revocation, before the partitions go to another member:
/// checkpoint their state and return the offsets to commit for them.
pub type RevokeHook = Box<dyn FnMut(&[PartitionId]) -> Option<Offsets> + Send>;

/// The consumer context: turns librdkafka's rebalance callbacks into notices.
struct GroupContext {
    notices: Mutex<Sender<RebalanceNotice>>,
    revoke_hook: Mutex<Option<RevokeHook>>,
}

impl GroupContext {
    fn notify(&self, notice: RebalanceNotice) {
        let sender = self.notices.lock().unwrap_or_else(PoisonError::into_inner);
        // The receiver lives as long as the consumer; a send can only fail
        // while the consumer is being dropped, when nobody listens.
        let _ = sender.send(notice);
    }
}

fn partitions_of(list: &TopicPartitionList) -> Vec<PartitionId> {
    let mut partitions: Vec<PartitionId> = list
        .elements()
        .iter()
        .map(|e| PartitionId {
            topic: e.topic().to_string(),
            partition: e.partition(),
        })
        .collect();
    partitions.sort();
    partitions
}

impl ClientContext for GroupContext {}

impl ConsumerContext for GroupContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Revoke(list) => {
                let partitions = partitions_of(list);
                // Lost (the session timed out): another member may own them
                // already, so neither checkpoint nor commit on their behalf.
                let lost = consumer.assignment_lost();
                if lost {
                    tracing::warn!(partitions = ?partitions, "kafka partitions lost (session timed out); not checkpointing them");
                }
                let mut hook = self
                    .revoke_hook
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner);
                if !lost
                    && let Some(hook) = hook.as_mut()
                    && let Some(offsets) = hook(&partitions)
                    && !offsets.is_empty()
                {
                    let committed = offsets
                        .to_list()
                        .and_then(|list| consumer.commit(&list, CommitMode::Sync));
                    if let Err(error) = committed {
                        tracing::warn!(%error, "committing offsets of revoked partitions failed; their records will be read again");
                    }
                }
                drop(hook);
                tracing::info!(partitions = ?partitions, "kafka partitions revoked");
                self.notify(RebalanceNotice::Revoked(partitions));
            }
            Rebalance::Error(error) => {
                tracing::warn!(%error, "kafka rebalance error");
                self.notify(RebalanceNotice::Failed(error.to_string()));
            }
            Rebalance::Assign(_) => {}
        }
    }

    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(list) = rebalance {
            let partitions = partitions_of(list);
            tracing::info!(partitions = ?partitions, "kafka partitions assigned");
            self.notify(RebalanceNotice::Assigned(partitions));
        }
    }
}

/// A consumer-group member on the event topic.
pub struct EventConsumer {
    consumer: BaseConsumer<GroupContext>,
    notices: Receiver<RebalanceNotice>,
    topic: String,
    /// A plain client in no group, for watermark reads.
    watermarks: AdminClient<DefaultClientContext>,
    /// A poll stops adding records past this many payload bytes: a quarter
    /// of the consumer buffer, so that a batch of large records stays
    /// within the memory the configuration allows.
    max_batch_bytes: usize,
}

impl EventConsumer {
    /// Joins `group` and subscribes to `config`'s event topic. Partitions are
    /// assigned during the first polls.
    pub fn new(config: &BusConfig, group: &str) -> Result<Self, BusError> {
        Self::subscribe(config, group, &config.topic(TopicKind::Events))
    }

    /// Joins `group` and subscribes to `topic` (which must carry events).
    pub fn subscribe(config: &BusConfig, group: &str, topic: &str) -> Result<Self, BusError> {
        Self::subscribe_topics(config, group, &[topic])
    }

    /// Joins `group` and subscribes to every topic of `topics` (all carrying
    /// events or control records); the first is reported by [`EventConsumer::topic`].
    pub fn subscribe_topics(
        config: &BusConfig,
        group: &str,
        topics: &[&str],
    ) -> Result<Self, BusError> {
        let topic = topics.first().copied().unwrap_or_default();
        let client_config = config.consumer_config(group)?;
        let (sender, notices) = mpsc::channel();
        let context = GroupContext {
            notices: Mutex::new(sender),
            revoke_hook: Mutex::new(None),
        };
        let consumer =
            BaseConsumer::from_config_and_context(&client_config, context).map_err(|source| {
                BusError::Client {
                    role: "consumer",
                    source,
                }
            })?;
        consumer
            .subscribe(topics)
            .map_err(|source| BusError::Subscribe {
                topic: topics.join(","),
                source,
            })?;
        Ok(Self {
            consumer,
            watermarks: crate::admin::admin_client(config)?,
            notices,
            topic: topic.to_string(),
            max_batch_bytes: (config.consumer_buffer_mib as usize * 1024 * 1024 / 4)
                .max(1024 * 1024),
        })
    }

    /// The topic consumed.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// Sets the hook run inside a revocation (see the module page).
    pub fn set_revoke_hook(
        &self,
        hook: impl FnMut(&[PartitionId]) -> Option<Offsets> + Send + 'static,
    ) {
        let mut slot = self
            .consumer
            .context()
            .revoke_hook
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        *slot = Some(Box::new(hook));
    }

    /// Polls for at most `max_wait` and at most `max_rows` messages. Returns
    /// early at the first rebalance. Transient broker errors are logged and
    /// polled through; a fatal consumer error is returned.
    pub fn poll_batch(&mut self, max_rows: usize, max_wait: Duration) -> Result<Batch, BusError> {
        let deadline = Instant::now() + max_wait;
        let mut batch = Batch::default();
        while batch.len() < max_rows.max(1) && batch.bytes < self.max_batch_bytes {
            let remaining = deadline.saturating_duration_since(Instant::now());
            let polled = self.consumer.poll(remaining);
            match polled {
                Some(Ok(message)) => push_message(&mut batch, &message),
                Some(Err(error)) => handle_poll_error(error)?,
                None => {}
            }
            let before = batch.rebalances.len();
            batch.rebalances.extend(self.notices.try_iter());
            if batch.rebalances.len() > before {
                break;
            }
            if remaining.is_zero() {
                break;
            }
        }
        // Records of partitions revoked during this poll are no longer ours.
        for notice in &batch.rebalances {
            if let RebalanceNotice::Revoked(revoked) = notice {
                batch
                    .events
                    .retain(|d| !revoked.contains(&d.position.partition_id()));
                batch
                    .undecodable
                    .retain(|u| !revoked.contains(&u.position.partition_id()));
                batch
                    .control
                    .retain(|c| !revoked.contains(&c.position.partition_id()));
            }
        }
        Ok(batch)
    }

    /// Leaves the group, waiting at most `timeout` for the revocation and
    /// the leave to complete; true when they did. The consumer's own drop
    /// waits for that without end (rdkafka polls until closed), which a
    /// stalled coordinator turns into a hang at exit; past `timeout` the
    /// client is abandoned instead (its memory is left to the process's end,
    /// and the broker drops the member when its session times out).
    /// Offsets are committed only by [`EventConsumer::commit`], so nothing
    /// is lost either way.
    ///
    /// It unsubscribes first and serves the revocation until nothing is
    /// assigned, and only then closes: librdkafka 2.x aborts the process
    /// (`rd_kafka_cgrp_terminated: assert: !rd_kafka_assignment_in_progress`)
    /// when a consumer is closed while a cooperative assignment is still
    /// being applied, which a member that leaves just as partitions are
    /// handed to it meets (librdkafka issues 4527 and 4792).
    pub fn close(self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        self.consumer.unsubscribe();
        loop {
            let assigned = self.consumer.assignment().map_or(0, |a| a.count());
            let remaining = deadline.saturating_duration_since(Instant::now());
            if assigned == 0 || remaining.is_zero() {
                break;
            }
            // Serves the revocation callback (records still fetched are
            // dropped: uncommitted, their partition's next owner reads them).
            let _ = self
                .consumer
                .poll(remaining.min(Duration::from_millis(100)));
        }
        if let Err(e) = self.consumer.close_queue() {
            // The drop then skips its wait too.
            tracing::warn!(error = %e, "closing the kafka consumer failed");
            return false;
        }
        while !self.consumer.closed() {
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                tracing::warn!(
                    ?timeout,
                    "the kafka consumer did not leave its group in time; abandoning it"
                );
                std::mem::forget(self);
                return false;
            }
            // Serves the revocation callback and the leave.
            let _ = self
                .consumer
                .poll(remaining.min(Duration::from_millis(100)));
        }
        true
    }

    /// Rebalance notices not yet returned with a batch (for instance those
    /// of a poll that returned an error).
    pub fn take_rebalances(&self) -> Vec<RebalanceNotice> {
        self.notices.try_iter().collect()
    }

    /// Stores and synchronously commits `offsets`: only what the caller says
    /// is durable. Nothing else is ever committed. Partitions no longer
    /// assigned to this consumer are left out (their new owner commits them;
    /// committing here could move its offset), so a commit racing a
    /// rebalance is harmless.
    pub fn commit(&self, offsets: &Offsets) -> Result<(), BusError> {
        if offsets.is_empty() {
            return Ok(());
        }
        let assigned = self.assignment()?;
        let mut ours = offsets.clone();
        ours.next
            .retain(|partition, _| assigned.contains(partition));
        if ours.len() < offsets.len() {
            tracing::debug!(
                skipped = offsets.len() - ours.len(),
                "not committing offsets of partitions no longer assigned"
            );
        }
        if ours.is_empty() {
            return Ok(());
        }
        let list = ours.to_list().map_err(BusError::Commit)?;
        self.consumer
            .store_offsets(&list)
            .map_err(BusError::Commit)?;
        self.consumer
            .commit(&list, CommitMode::Sync)
            .map_err(BusError::Commit)
    }

    /// The high watermark (the offset the next record written will get) of
    /// one partition, asked of the broker (at most `timeout`) through the
    /// consumer's own plain client: on the consumer's connection the request
    /// would queue behind its long-polling fetches, which a broker may hold
    /// for longer than any sensible timeout.
    pub fn high_watermark(
        &self,
        partition: &PartitionId,
        timeout: Duration,
    ) -> Result<i64, BusError> {
        self.watermarks
            .inner()
            .fetch_watermarks(&partition.topic, partition.partition, timeout)
            .map(|(_, high)| high)
            .map_err(BusError::Metadata)
    }

    /// Moves the read position of an assigned partition to `offset`: the
    /// next records fetched from it start there, and what was prefetched
    /// for it is dropped. Restarts a fetch that stopped delivering records
    /// the broker holds.
    pub fn seek(
        &self,
        partition: &PartitionId,
        offset: i64,
        timeout: Duration,
    ) -> Result<(), BusError> {
        self.consumer
            .seek(
                &partition.topic,
                partition.partition,
                Offset::Offset(offset),
                timeout,
            )
            .map_err(BusError::Consume)
    }

    /// The partitions currently assigned to this consumer.
    pub fn assignment(&self) -> Result<Vec<PartitionId>, BusError> {
        let list = self.consumer.assignment().map_err(BusError::Consume)?;
        Ok(partitions_of(&list))
    }

    /// The group's committed offsets for the assigned partitions (partitions
    /// with no committed offset are left out).
    pub fn committed(&self, timeout: Duration) -> Result<Offsets, BusError> {
        let list = self
            .consumer
            .committed(timeout)
            .map_err(BusError::Consume)?;
        let mut offsets = Offsets::new();
        for e in list.elements() {
            if let Offset::Offset(next) = e.offset() {
                offsets.next.insert(
                    PartitionId {
                        topic: e.topic().to_string(),
                        partition: e.partition(),
                    },
                    next,
                );
            }
        }
        Ok(offsets)
    }
}

fn push_message(batch: &mut Batch, message: &BorrowedMessage<'_>) {
    batch.bytes += message.payload_len();
    let position = MessagePosition {
        topic: message.topic().to_string(),
        partition: message.partition(),
        offset: message.offset(),
    };
    let schema = message.headers().and_then(|headers| {
        headers
            .iter()
            .find(|h| h.key == SCHEMA_HEADER)
            .and_then(|h| h.value)
    });
    if let Some(s) = schema
        && let Some(control) = CONTROL_SCHEMAS.iter().find(|c| c.as_bytes() == s)
    {
        batch.control.push(ControlRecord {
            position,
            schema: (*control).to_string(),
            payload: message.payload().map(<[u8]>::to_vec).unwrap_or_default(),
        });
        return;
    }
    match decode_event(schema, message.payload()) {
        Ok(event) => batch.events.push(Delivered {
            position,
            key: message
                .key()
                .map(|k| String::from_utf8_lossy(k).into_owned()),
            event,
            headers: message
                .headers()
                .map(|headers| {
                    headers
                        .iter()
                        .filter(|h| h.key != SCHEMA_HEADER)
                        .map(|h| (h.key.to_string(), h.value.unwrap_or_default().to_vec()))
                        .collect()
                })
                .unwrap_or_default(),
        }),
        Err(error) => batch.undecodable.push(Undecodable {
            position,
            key: message.key().map(<[u8]>::to_vec),
            payload: message.payload().map(<[u8]>::to_vec).unwrap_or_default(),
            error,
        }),
    }
}

fn handle_poll_error(error: KafkaError) -> Result<(), BusError> {
    match error {
        KafkaError::MessageConsumptionFatal(_) => Err(BusError::Consume(error)),
        other => {
            tracing::warn!(error = %other, "kafka consumer error (retrying)");
            Ok(())
        }
    }
}
