//! # trailhound-core
//!
//! The vocabulary every other crate shares: the normalised [`Event`], its Arrow
//! schema and batch builder ([`schema`]), the [`Alert`] a rule raises, and time
//! helpers.
//!
//! The one design decision to know: every source (CloudTrail, S3 data events,
//! gateway session logs) is mapped onto one flat event model *once*, at ingest,
//! and from then on events travel as Arrow `RecordBatch`es of
//! [`schema::event_schema`]. Rules, baselines, the lake and the benchmarks all
//! see the same columns. Fields the model does not lift stay reachable as JSON
//! text in `request`, `response` and `extra`.

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

pub mod action;
pub mod alert;
pub mod deadletter;
pub mod event;
pub mod grant;
pub mod id;
pub mod schema;
pub mod time;
pub mod wildcard;

pub use action::{Action, ActionMode, ActionOutcome, ResponseHook, ResponseOutput};
pub use alert::{Alert, Severity};
pub use deadletter::{DeadLetter, Position};
pub use event::{Event, Source};
pub use grant::{GrantClosure, rule_schema};
pub use schema::{EventBatchBuilder, event_schema, events_to_batch, join_event_batches};
pub use wildcard::wildcard;
