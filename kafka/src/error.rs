//! Typed errors of the Kafka ingest and detector.

use std::path::PathBuf;

/// What stops `ingest --kafka` or `detect --kafka`.
#[derive(Debug, thiserror::Error)]
pub enum KafkaError {
    /// The bus failed (configuration, broker, delivery, commit).
    #[error(transparent)]
    Bus(#[from] trailhound_bus::BusError),
    /// A sink (stdout, dead-letter file, lake) failed: alerts would be lost.
    #[error(transparent)]
    Sink(#[from] trailhound_sinks::SinkError),
    /// A checkpoint or ledger file could not be read or written.
    #[error(transparent)]
    Checkpoint(#[from] trailhound_detector::checkpoint::CheckpointError),
    /// A partition's state could not be encoded.
    #[error("partition state could not be encoded: {0}")]
    State(String),
    /// A partition's saved state does not restore.
    #[error(
        "the partition state in {path} cannot be restored: {reason}; move the file away to start that partition from empty state"
    )]
    Restore {
        /// The checkpoint file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// The object store holding partition state failed (after its own retries).
    #[error("partition state at {location}: {reason}")]
    StateStore {
        /// The object's URL.
        location: String,
        /// What went wrong.
        reason: String,
    },
    /// The inputs could not be listed.
    #[error(transparent)]
    Input(#[from] trailhound_ingest::InputError),
}

impl KafkaError {
    /// True when the broker (or the object store holding partition state)
    /// failing is the cause, so the same step can succeed once it is back:
    /// see [`trailhound_bus::BusError::is_transient`]. Local files, sinks and
    /// bad state are not retried.
    pub fn is_transient(&self) -> bool {
        match self {
            KafkaError::Bus(e) => e.is_transient(),
            KafkaError::StateStore { .. } => true,
            _ => false,
        }
    }
}
