//! # trailhound-detector
//!
//! The streaming engine. Events arrive, are gathered into Arrow batches
//! ([`batcher`]), every compiled rule runs on every batch ([`engine`]), and
//! matches become deduplicated alerts ([`dedup`]) handed to the sinks. The
//! embedded [`pipeline`] wires parsers to the engine through a bounded
//! in-process channel, so `trailhound detect <files>` needs no server.
//!
//! The one design decision to know: the engine only ever sees `RecordBatch`es
//! of the event schema; where they come from (files, stdin, Kafka later) is
//! the pipeline's business, so every deployment runs the same engine.
//!
//! Window and sequence rules keep state per rule and key ([`window`],
//! [`sequence`]) in event time, closed by a watermark (newest event time minus
//! the allowed lateness) and by [`engine::Engine::flush`] at the end of input.
//! Baseline rules keep, per rule and key, the values and hours seen, with a
//! fixed budget ([`baseline`]), and alert on the first departure once the key
//! is past its learning period and minimum history.
//! Just-in-time grants are a table of their own ([`grants`]): in force by
//! person and role in event time, read by rules as columns, closed when the
//! watermark passes their end.
//! [`testing::all_tests`] runs every rule's inline tests, the stateful ones
//! through a fresh engine.
//!
//! Where a match becomes an alert (and where, later, a revocation is decided
//! from it): [`engine::Engine::process`].

pub mod backtest;
pub mod baseline;
pub mod batcher;
pub mod checkpoint;
pub mod correlate;
pub mod dedup;
pub mod engine;
pub mod grants;
pub mod link;
pub mod niceness;
pub mod pipeline;
pub mod prefilter;
pub mod sequence;
pub mod testing;
pub mod window;

pub use batcher::BatchPolicy;
pub use engine::Engine;
pub use pipeline::{Input, PipelineConfig, Progress, Summary, run};
