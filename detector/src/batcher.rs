//! Micro-batching: short Arrow batches joined into batches that close at a
//! row count, a size or an age, whichever comes first.

use std::time::{Duration, Instant};

use arrow::array::RecordBatch;
#[cfg(doc)]
use trailhound_core::Event;
use trailhound_core::join_event_batches;

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

/// Gathers the short batches readers send (an input's last rows, the rows
/// before a dead letter) into batches of the policy's size, so that many
/// small inputs are evaluated a thousand rows at a time rather than a few.
/// Readers build the rows into Arrow themselves; this only joins them.
pub struct Batcher {
    policy: BatchPolicy,
    pending: Vec<RecordBatch>,
    rows: usize,
    bytes: usize,
    opened_at: Option<Instant>,
}

impl Batcher {
    /// An empty batcher.
    pub fn new(policy: BatchPolicy) -> Self {
        Self {
            policy,
            pending: Vec::new(),
            rows: 0,
            bytes: 0,
            opened_at: None,
        }
    }

    /// Adds a short batch holding `bytes` of text ([`Event::text_bytes`]
    /// summed over its rows); returns the joined batches when this one
    /// filled them.
    pub fn push(&mut self, batch: RecordBatch, bytes: usize) -> Option<Vec<RecordBatch>> {
        if batch.num_rows() == 0 {
            return None;
        }
        if self.opened_at.is_none() {
            self.opened_at = Some(Instant::now());
        }
        self.rows += batch.num_rows();
        self.bytes += bytes;
        self.pending.push(batch);
        (self.rows >= self.policy.max_rows || self.bytes >= self.policy.max_bytes)
            .then(|| self.take())
    }

    /// How long until the open batch must close; `None` when empty.
    pub fn time_left(&self) -> Option<Duration> {
        self.opened_at
            .map(|t| self.policy.max_wait.saturating_sub(t.elapsed()))
    }

    /// Closes the open batch if it is old enough.
    pub fn poll_expired(&mut self) -> Option<Vec<RecordBatch>> {
        match self.time_left() {
            Some(left) if left.is_zero() => Some(self.take()),
            _ => None,
        }
    }

    /// Closes the open batch whatever its size; empty when nothing is open.
    pub fn flush(&mut self) -> Vec<RecordBatch> {
        self.take()
    }

    /// The pending rows as one batch. Every batch has the event schema, so
    /// joining cannot fail; were it ever to, they are handed out one by one
    /// rather than lost.
    fn take(&mut self) -> Vec<RecordBatch> {
        self.opened_at = None;
        self.rows = 0;
        self.bytes = 0;
        let pending = std::mem::take(&mut self.pending);
        if pending.len() <= 1 {
            return pending;
        }
        match join_event_batches(&pending) {
            Ok(joined) => vec![joined],
            Err(e) => {
                tracing::warn!(error = %e, "Short batches could not be joined; evaluating them one by one.");
                pending
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Array, AsArray};
    use arrow::datatypes::Int32Type;
    use trailhound_core::{Event, event_schema, events_to_batch};

    fn one(id: &str, name: &str) -> (RecordBatch, usize) {
        let e = Event {
            event_id: id.into(),
            event_name: name.into(),
            ..Event::default()
        };
        (events_to_batch(std::slice::from_ref(&e)), e.text_bytes())
    }

    fn rows(batches: &[RecordBatch]) -> usize {
        batches.iter().map(RecordBatch::num_rows).sum()
    }

    #[test]
    fn closes_at_row_count() {
        let mut b = Batcher::new(BatchPolicy {
            max_rows: 3,
            max_wait: Duration::from_secs(60),
            ..BatchPolicy::default()
        });
        let (batch, bytes) = one("a", "GetObject");
        assert!(b.push(batch.clone(), bytes).is_none());
        assert!(b.push(batch.clone(), bytes).is_none());
        let full = b.push(batch, bytes).unwrap_or_default();
        assert_eq!(full.len(), 1, "joined into one batch");
        assert_eq!(rows(&full), 3);
        assert!(b.flush().is_empty());
    }

    #[test]
    fn closes_at_age() {
        let mut b = Batcher::new(BatchPolicy {
            max_rows: 1000,
            max_wait: Duration::from_millis(1),
            ..BatchPolicy::default()
        });
        let (batch, bytes) = one("a", "GetObject");
        b.push(batch, bytes);
        std::thread::sleep(Duration::from_millis(3));
        assert_eq!(b.poll_expired().map(|b| rows(&b)), Some(1));
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
        let batch = events_to_batch(std::slice::from_ref(&big));
        let bytes = big.text_bytes();
        assert!(b.push(batch.clone(), bytes).is_none());
        assert!(b.push(batch.clone(), bytes).is_none());
        assert_eq!(b.push(batch.clone(), bytes).map(|b| rows(&b)), Some(3));
        assert!(b.push(batch, bytes).is_none(), "the count starts again");
    }

    #[test]
    fn joined_rows_keep_their_order_and_values() {
        let mut b = Batcher::new(BatchPolicy::default());
        for (id, name) in [("1", "GetObject"), ("2", "PutObject"), ("3", "GetObject")] {
            let (batch, bytes) = one(id, name);
            assert!(b.push(batch, bytes).is_none());
        }
        let empty = events_to_batch(&[]);
        assert!(b.push(empty, 0).is_none(), "an empty batch adds nothing");
        let joined = b.flush();
        assert_eq!(joined.len(), 1);
        let batch = &joined[0];
        let ids = batch.column(3).as_string::<i32>();
        let names = batch.column(5).as_dictionary::<Int32Type>();
        let names: Vec<_> = names
            .downcast_dict::<arrow::array::StringArray>()
            .map(|d| d.into_iter().map(|v| v.map(str::to_owned)).collect())
            .unwrap_or_default();
        assert_eq!(
            ids.iter().collect::<Vec<_>>(),
            [Some("1"), Some("2"), Some("3")]
        );
        assert_eq!(
            names,
            [
                Some("GetObject".to_owned()),
                Some("PutObject".to_owned()),
                Some("GetObject".to_owned())
            ]
        );
        assert_eq!(batch.schema(), event_schema());
        assert!(batch.column(0).len() == 3);
    }
}
