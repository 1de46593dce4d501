//! # trailhound-ingest
//!
//! Everything between the outside world and the event model: the parsers
//! (CloudTrail in all its shapes, S3 data events, asciinema, Teleport, Cowrie
//! and trailhound's own session JSON lines; just-in-time grants in
//! [`grants`]), input handling (gzip, limits,
//! format recognition, folders and globs) and the workload generator.
//!
//! The one design decision to know: a parser never fails and never stops on a
//! bad record. Every record becomes either an [`Event`](trailhound_core::Event)
//! or a [`DeadLetter`] with the reason and its position, through the [`Emit`]
//! trait. Whole-input problems (corrupt gzip, unknown format) are dead letters
//! too; only an unreadable path is an error.
//!
//! Where a CloudTrail record becomes an event: [`cloudtrail::record`]. Where an
//! event becomes an Arrow row: `trailhound_core::schema`.

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

pub mod cloudtrail;
pub mod emit;
pub mod follow;
pub mod format;
pub mod generate;
pub mod grants;
pub mod input;
pub mod pieces;
pub mod session;

pub use emit::{Collect, DeadLetter, Emit, Gather, Limits, ParseContext, Part, Position};
pub use follow::{FollowPosition, Follower, Polled};
pub use format::{Format, sniff};
pub use input::{InputError, InputSummary, expand_paths, parse_input, read_file};
pub use pieces::{Pieces, parse_file, parse_file_in_parallel, parse_file_with};
