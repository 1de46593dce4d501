//! Where received events go, and when they count as accepted.

use trailhound_bus::{BusConfig, EventProducer, RecordProducer, TopicKind};
use trailhound_core::{DeadLetter, Event};

use crate::error::DownstreamError;

/// Takes one request's (or one batch's) events and dead letters, and
/// returns only once they are durable: the receiver answers 2xx, and the
/// follower records its offset, after this returned `Ok`.
pub trait Downstream: Send + Sync {
    /// Delivers `events` and `dead_letters` read from `origin`.
    fn deliver(
        &self,
        origin: &str,
        events: &[Event],
        dead_letters: &[DeadLetter],
    ) -> Result<(), DownstreamError>;
}

/// The event topic (keyed by principal) and the dead-letter topic (keyed by
/// origin), through idempotent producers with `acks=all`.
pub struct BusDownstream {
    events: EventProducer,
    records: RecordProducer,
}

impl BusDownstream {
    /// Producers for `bus`; the topics are expected to exist
    /// (`trailhound_bus::ensure_topics`).
    pub fn new(bus: &BusConfig) -> Result<Self, DownstreamError> {
        Ok(Self {
            events: EventProducer::new(bus)?,
            records: RecordProducer::new(bus)?,
        })
    }
}

impl Downstream for BusDownstream {
    fn deliver(
        &self,
        origin: &str,
        events: &[Event],
        dead_letters: &[DeadLetter],
    ) -> Result<(), DownstreamError> {
        if !events.is_empty() {
            self.events.send_input(origin, events)?;
        }
        if !dead_letters.is_empty() {
            self.records.send_json(
                TopicKind::DeadLetters,
                dead_letters.iter().map(|d| (d.origin.as_str(), d)),
            )?;
        }
        Ok(())
    }
}
