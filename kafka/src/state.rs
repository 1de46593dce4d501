//! Checkpoints that follow partitions: one per partition, in
//! `<state>/<topic>-<partition>/checkpoint.bin`, in the embedded pipeline's
//! checkpoint format (`trailhound_detector::checkpoint`: atomic, checksummed)
//! with the partition's state as the body's engine bytes.
//!
//! A checkpoint says up to which offset the state holds the partition's
//! records (`next`): a member that restores it skips records before `next`
//! even when the group's committed offset is older (a crash between writing
//! the checkpoint and committing), so no record is applied twice.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use trailhound_detector::checkpoint::{self, Checkpoint, InputLedger};

use crate::error::KafkaError;

/// The saved state of one partition.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PartitionState {
    /// The offset of the next record the state does not hold yet.
    pub next: i64,
    /// Newest event time seen per stream (`cloudtrail`, `session`), for the
    /// watermark hold.
    pub fronts: Vec<(String, i64)>,
    /// Engine state per rule id: one entry `""` for an event partition's
    /// engine, one per rekeyed rule on a rekeyed partition.
    pub engines: Vec<(String, Vec<u8>)>,
    /// Rekeyed partitions: per (rule id, origin partition) the highest origin
    /// offset applied, so that rows forwarded twice (after a crash upstream)
    /// are applied once.
    pub applied: Vec<(String, String, i64)>,
    /// Rekeyed partitions: the event-time front reported by each origin
    /// partition (`None`: it had no events when it reported).
    pub origins: Vec<(String, Option<i64>)>,
}

/// The folder of one partition's checkpoint.
pub fn partition_dir(state: &Path, topic: &str, partition: i32) -> PathBuf {
    state.join(format!("{topic}-{partition}"))
}

/// Writes the checkpoint of one partition atomically.
pub fn save(
    state: &Path,
    topic: &str,
    partition: i32,
    saved: &PartitionState,
) -> Result<(), KafkaError> {
    let engine = postcard::to_stdvec(saved).map_err(|e| KafkaError::State(e.to_string()))?;
    let cp = Checkpoint {
        written_by: format!("trailhound {}", env!("CARGO_PKG_VERSION")),
        written_at: trailhound_core::time::now_micros(),
        inputs: InputLedger::default(),
        engine,
    };
    checkpoint::save(&partition_dir(state, topic, partition), &cp)?;
    Ok(())
}

/// Reads the checkpoint of one partition; `None` when there is none.
pub fn load(
    state: &Path,
    topic: &str,
    partition: i32,
) -> Result<Option<PartitionState>, KafkaError> {
    let dir = partition_dir(state, topic, partition);
    let Some(cp) = checkpoint::load(&dir)? else {
        return Ok(None);
    };
    postcard::from_bytes(&cp.engine)
        .map(Some)
        .map_err(|e| KafkaError::Restore {
            path: checkpoint::path_in(&dir),
            reason: e.to_string(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_partition_checkpoint_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        assert!(load(dir.path(), "t", 3).unwrap().is_none());
        let saved = PartitionState {
            next: 42,
            fronts: vec![("cloudtrail".into(), 7)],
            engines: vec![(String::new(), vec![1, 2])],
            applied: vec![("r".into(), "t/1".into(), 9)],
            origins: vec![("t/1".into(), Some(5)), ("t/2".into(), None)],
        };
        save(dir.path(), "t", 3, &saved).unwrap();
        assert_eq!(load(dir.path(), "t", 3).unwrap(), Some(saved));
        assert!(dir.path().join("t-3").join("checkpoint.bin").is_file());
    }
}
