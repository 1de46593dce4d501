//! What the polling sources (LookupEvents, a trail's bucket) share: how a
//! run polls ([`PollOptions`]), and their small JSON cursors in the state
//! folder, written to a temporary file and then renamed, so a crash leaves
//! the old cursor or the new one, never half of one.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;
use serde::de::DeserializeOwned;

use trailhound_ingest::Limits;

use crate::error::KafkaError;

/// How a polling run behaves.
#[derive(Debug, Clone)]
pub struct PollOptions {
    /// Folder of the cursor; `None` keeps it in memory (each start begins
    /// afresh).
    pub state: Option<PathBuf>,
    /// Wall time between polls (default 60 s).
    pub every: Duration,
    /// Stop after this many polls (`None`: until stopped).
    pub polls: Option<u32>,
    /// Set to stop between polls.
    pub stop: Option<Arc<AtomicBool>>,
    /// Parser limits.
    pub limits: Limits,
}

impl Default for PollOptions {
    fn default() -> Self {
        Self {
            state: None,
            every: Duration::from_secs(60),
            polls: None,
            stop: None,
            limits: Limits::default(),
        }
    }
}

impl PollOptions {
    /// Whether the run was asked to stop.
    pub fn stopping(&self) -> bool {
        self.stop
            .as_ref()
            .is_some_and(|s| s.load(Ordering::Relaxed))
    }

    /// The cursor saved as `file` in the state folder, or an empty one (also
    /// when the run keeps no state).
    pub fn load_cursor<T: DeserializeOwned + Default>(&self, file: &str) -> Result<T, KafkaError> {
        match &self.state {
            Some(dir) => load(dir, file),
            None => Ok(T::default()),
        }
    }

    /// Waits `every`, or less when asked to stop.
    pub fn pause(&self) {
        let until = Instant::now() + self.every;
        while Instant::now() < until && !self.stopping() {
            std::thread::sleep(Duration::from_millis(200).min(self.every));
        }
    }
}

/// Reads `<dir>/<file>`, or the default when there is none yet.
pub fn load<T: DeserializeOwned + Default>(dir: &Path, file: &str) -> Result<T, KafkaError> {
    let path = dir.join(file);
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| KafkaError::Restore {
            path,
            reason: e.to_string(),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(T::default()),
        Err(e) => Err(KafkaError::Restore {
            path,
            reason: e.to_string(),
        }),
    }
}

/// Writes `<dir>/<file>` atomically.
pub fn save<T: Serialize>(dir: &Path, file: &str, value: &T) -> Result<(), KafkaError> {
    let fail = |reason: String| KafkaError::StateStore {
        location: dir.join(file).display().to_string(),
        reason,
    };
    std::fs::create_dir_all(dir).map_err(|e| fail(e.to_string()))?;
    let tmp = dir.join(format!("{file}.tmp"));
    let bytes = serde_json::to_vec(value).map_err(|e| fail(e.to_string()))?;
    std::fs::write(&tmp, bytes).map_err(|e| fail(e.to_string()))?;
    std::fs::rename(&tmp, dir.join(file)).map_err(|e| fail(e.to_string()))
}
