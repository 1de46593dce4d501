//! Micro-batching: events gathered into Arrow batches that close at a row
//! count or an age, whichever comes first.

use std::time::{Duration, Instant};

use arrow::array::RecordBatch;
use trailhound_core::{Event, EventBatchBuilder};

/// When a batch closes.
#[derive(Debug, Clone, Copy)]
pub struct BatchPolicy {
    /// Close at this many rows.
    pub max_rows: usize,
    /// Close once the rows hold this many bytes of text
    /// ([`Event::text_bytes`]): the memory of a batch, and of the chunks
    /// readers queue for the engine, stays bounded whatever the records'
    /// sizes (default 4 MiB; a thousand typical CloudTrail records are 1.5).
    pub max_bytes: usize,
    /// Close when the oldest row has waited this long.
    pub max_wait: Duration,
}

/// The default of [`BatchPolicy::max_bytes`].
pub const DEFAULT_BATCH_BYTES: usize = 4 * 1024 * 1024;

impl Default for BatchPolicy {
    fn default() -> Self {
        Self {
            max_rows: 1024,
            max_bytes: DEFAULT_BATCH_BYTES,
            max_wait: Duration::from_millis(10),
        }
    }
}

/// Gathers events and hands out batches. Keeps the events of the open batch
/// too, so that alerts can carry the original event ids and times cheaply.
pub struct Batcher {
    policy: BatchPolicy,
    builder: EventBatchBuilder,
    bytes: usize,
    opened_at: Option<Instant>,
}

impl Batcher {
    /// An empty batcher.
    pub fn new(policy: BatchPolicy) -> Self {
        Self {
            policy,
            builder: EventBatchBuilder::new(),
            bytes: 0,
            opened_at: None,
        }
    }

    /// Adds an event; returns a batch when this one filled it.
    pub fn push(&mut self, event: &Event) -> Option<RecordBatch> {
        if self.opened_at.is_none() {
            self.opened_at = Some(Instant::now());
        }
        self.builder.append(event);
        self.bytes += event.text_bytes();
        (self.builder.len() >= self.policy.max_rows || self.bytes >= self.policy.max_bytes)
            .then(|| self.take())
    }

    /// How long until the open batch must close; `None` when empty.
    pub fn time_left(&self) -> Option<Duration> {
        self.opened_at
            .map(|t| self.policy.max_wait.saturating_sub(t.elapsed()))
    }

    /// Closes the open batch if it is old enough.
    pub fn poll_expired(&mut self) -> Option<RecordBatch> {
        match self.time_left() {
            Some(left) if left.is_zero() => Some(self.take()),
            _ => None,
        }
    }

    /// Closes the open batch whatever its size; `None` when empty.
    pub fn flush(&mut self) -> Option<RecordBatch> {
        (!self.builder.is_empty()).then(|| self.take())
    }

    fn take(&mut self) -> RecordBatch {
        self.opened_at = None;
        self.bytes = 0;
        self.builder.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closes_at_row_count() {
        let mut b = Batcher::new(BatchPolicy {
            max_rows: 3,
            max_wait: Duration::from_secs(60),
            ..BatchPolicy::default()
        });
        let e = Event::default();
        assert!(b.push(&e).is_none());
        assert!(b.push(&e).is_none());
        assert_eq!(b.push(&e).map(|b| b.num_rows()), Some(3));
        assert!(b.flush().is_none());
    }

    #[test]
    fn closes_at_age() {
        let mut b = Batcher::new(BatchPolicy {
            max_rows: 1000,
            max_wait: Duration::from_millis(1),
            ..BatchPolicy::default()
        });
        b.push(&Event::default());
        std::thread::sleep(Duration::from_millis(3));
        assert_eq!(b.poll_expired().map(|b| b.num_rows()), Some(1));
        assert!(b.time_left().is_none());
    }

    #[test]
    fn closes_at_byte_size_whatever_the_row_count() {
        let mut b = Batcher::new(BatchPolicy {
            max_rows: 1000,
            max_bytes: 1000,
            max_wait: Duration::from_secs(60),
        });
        let big = Event {
            request: Some("x".repeat(400)),
            ..Event::default()
        };
        assert!(b.push(&big).is_none());
        assert!(b.push(&big).is_none());
        assert_eq!(b.push(&big).map(|b| b.num_rows()), Some(3));
        assert!(b.push(&big).is_none(), "the count starts again");
    }
}
