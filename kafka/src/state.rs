//! Checkpoints that follow partitions: one per partition, named
//! `<topic>-<partition>/checkpoint.bin` under the state location, in the
//! embedded pipeline's checkpoint format (`trailhound_detector::checkpoint`:
//! versioned, checksummed) with the partition's state as the body's engine
//! bytes.
//!
//! The state location ([`StateStore`]) is a local folder for detectors on
//! one machine (written atomically: temporary file, sync, rename), or an
//! object store path shared by detectors on several machines, through the
//! `object_store` crate: `s3://bucket/prefix` (credentials, region and
//! endpoint from the standard `AWS_*` environment variables, for example
//! `AWS_ENDPOINT_URL` and `AWS_ALLOW_HTTP=true` for an emulator), or
//! `file:///path`. An object store PUT replaces the whole object at once,
//! so a reader sees the old checkpoint or the new one, never half of one.
//!
//! A checkpoint says up to which offset the state holds the partition's
//! records (`next`): a member that restores it skips records before `next`
//! even when the group's committed offset is older (a crash between writing
//! the checkpoint and committing), so no record is applied twice.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
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

/// Where partition checkpoints live.
#[derive(Clone)]
pub enum StateStore {
    /// A local folder.
    Local(PathBuf),
    /// An object store path shared by detectors.
    Object(Arc<ObjectState>),
}

/// An object store location and the runtime its calls run on.
pub struct ObjectState {
    store: Box<dyn ObjectStore>,
    prefix: object_store::path::Path,
    url: String,
    runtime: tokio::runtime::Runtime,
}

impl std::fmt::Debug for StateStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StateStore::Local(p) => write!(f, "Local({})", p.display()),
            StateStore::Object(o) => write!(f, "Object({})", o.url),
        }
    }
}

impl StateStore {
    /// A location as written on the command line: a URL with a scheme
    /// (`s3://`, `file://`) is an object store, anything else a folder.
    pub fn parse(location: &str) -> Result<Self, KafkaError> {
        Self::parse_with(location, std::env::vars())
    }

    /// [`StateStore::parse`] with the variables given instead of the
    /// process environment (only `AWS_*` ones are read).
    pub fn parse_with(
        location: &str,
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, KafkaError> {
        if !location.contains("://") {
            return Ok(StateStore::Local(PathBuf::from(location)));
        }
        let fail = |reason: String| KafkaError::StateStore {
            location: location.to_string(),
            reason,
        };
        let url = url::Url::parse(location).map_err(|e| fail(e.to_string()))?;
        // The standard AWS variables, as object_store's options
        // (`aws_access_key_id`, `aws_endpoint`, `aws_allow_http`, ...).
        let options = vars
            .into_iter()
            .filter(|(k, _)| k.starts_with("AWS_"))
            .map(|(k, v)| (k.to_ascii_lowercase(), v))
            .map(|(k, v)| match k.as_str() {
                "aws_endpoint_url" | "aws_endpoint_url_s3" => ("aws_endpoint".to_string(), v),
                _ => (k, v),
            });
        let (store, prefix) =
            object_store::parse_url_opts(&url, options).map_err(|e| fail(e.to_string()))?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| fail(e.to_string()))?;
        Ok(StateStore::Object(Arc::new(ObjectState {
            store,
            prefix,
            url: location.trim_end_matches('/').to_string(),
            runtime,
        })))
    }

    /// A local folder.
    pub fn local(dir: impl Into<PathBuf>) -> Self {
        StateStore::Local(dir.into())
    }

    /// Where one partition's checkpoint is, for messages.
    pub fn describe(&self, topic: &str, partition: i32) -> PathBuf {
        match self {
            StateStore::Local(dir) => checkpoint::path_in(&partition_dir(dir, topic, partition)),
            StateStore::Object(o) => {
                PathBuf::from(format!("{}/{}", o.url, object_name(topic, partition)))
            }
        }
    }

    /// Writes the checkpoint of one partition (atomically).
    pub fn save(
        &self,
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
        match self {
            StateStore::Local(dir) => {
                checkpoint::save(&partition_dir(dir, topic, partition), &cp)?;
            }
            StateStore::Object(o) => {
                let bytes = checkpoint::encode(&cp)?;
                let path = o.path(topic, partition);
                o.runtime
                    .block_on(o.store.put(&path, PutPayload::from(bytes)))
                    .map_err(|e| KafkaError::StateStore {
                        location: self.describe(topic, partition).display().to_string(),
                        reason: e.to_string(),
                    })?;
            }
        }
        Ok(())
    }

    /// Reads the checkpoint of one partition; `None` when there is none.
    pub fn load(&self, topic: &str, partition: i32) -> Result<Option<PartitionState>, KafkaError> {
        let cp = match self {
            StateStore::Local(dir) => checkpoint::load(&partition_dir(dir, topic, partition))?,
            StateStore::Object(o) => {
                let path = o.path(topic, partition);
                let got = o.runtime.block_on(async {
                    match o.store.get(&path).await {
                        Ok(r) => r.bytes().await.map(Some),
                        Err(object_store::Error::NotFound { .. }) => Ok(None),
                        Err(e) => Err(e),
                    }
                });
                let bytes = got.map_err(|e| KafkaError::StateStore {
                    location: self.describe(topic, partition).display().to_string(),
                    reason: e.to_string(),
                })?;
                match bytes {
                    Some(b) => Some(checkpoint::decode(&b, &self.describe(topic, partition))?),
                    None => None,
                }
            }
        };
        let Some(cp) = cp else {
            return Ok(None);
        };
        postcard::from_bytes(&cp.engine)
            .map(Some)
            .map_err(|e| KafkaError::Restore {
                path: self.describe(topic, partition),
                reason: e.to_string(),
            })
    }
}

impl ObjectState {
    fn path(&self, topic: &str, partition: i32) -> object_store::path::Path {
        self.prefix
            .clone()
            .join(format!("{topic}-{partition}"))
            .join("checkpoint.bin")
    }
}

fn object_name(topic: &str, partition: i32) -> String {
    format!("{topic}-{partition}/checkpoint.bin")
}

/// The folder of one partition's checkpoint.
pub fn partition_dir(state: &Path, topic: &str, partition: i32) -> PathBuf {
    state.join(format!("{topic}-{partition}"))
}

/// Writes the checkpoint of one partition atomically into a local folder.
pub fn save(
    state: &Path,
    topic: &str,
    partition: i32,
    saved: &PartitionState,
) -> Result<(), KafkaError> {
    StateStore::local(state).save(topic, partition, saved)
}

/// Reads the checkpoint of one partition from a local folder; `None` when there is none.
pub fn load(
    state: &Path,
    topic: &str,
    partition: i32,
) -> Result<Option<PartitionState>, KafkaError> {
    StateStore::local(state).load(topic, partition)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> PartitionState {
        PartitionState {
            next: 42,
            fronts: vec![("cloudtrail".into(), 7)],
            engines: vec![(String::new(), vec![1, 2])],
            applied: vec![("r".into(), "t/1".into(), 9)],
            origins: vec![("t/1".into(), Some(5)), ("t/2".into(), None)],
        }
    }

    #[test]
    fn a_partition_checkpoint_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        assert!(load(dir.path(), "t", 3).unwrap().is_none());
        save(dir.path(), "t", 3, &sample()).unwrap();
        assert_eq!(load(dir.path(), "t", 3).unwrap(), Some(sample()));
        assert!(dir.path().join("t-3").join("checkpoint.bin").is_file());
    }

    #[test]
    fn a_file_url_is_an_object_store_that_another_instance_reads() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("file://{}/shared", dir.path().display());
        std::fs::create_dir_all(dir.path().join("shared")).unwrap();
        let writer = StateStore::parse(&url).unwrap();
        assert!(matches!(writer, StateStore::Object(_)));
        assert!(writer.load("t", 3).unwrap().is_none());
        writer.save("t", 3, &sample()).unwrap();
        let reader = StateStore::parse(&url).unwrap();
        assert_eq!(reader.load("t", 3).unwrap(), Some(sample()));
        assert!(dir.path().join("shared/t-3/checkpoint.bin").is_file());
        assert!(matches!(
            StateStore::parse("state").unwrap(),
            StateStore::Local(_)
        ));
        assert!(StateStore::parse("nosuch://x").is_err());
    }

    #[test]
    fn a_damaged_object_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("file://{}", dir.path().display());
        std::fs::create_dir_all(dir.path().join("t-1")).unwrap();
        std::fs::write(dir.path().join("t-1/checkpoint.bin"), b"garbage").unwrap();
        let err = StateStore::parse(&url).unwrap().load("t", 1).unwrap_err();
        assert!(
            err.to_string().contains("not a trailhound checkpoint"),
            "{err}"
        );
    }
}
