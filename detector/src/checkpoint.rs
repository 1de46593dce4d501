//! Checkpoints: the engine's state and how far each input was read, in one
//! file written atomically, so that a stopped run resumes where it left off.
//!
//! A checkpoint is taken at a *consistent point*: every event handed to the
//! engine so far has been evaluated, its alerts delivered to the sinks and
//! its rows published to the lake. The input ledger then says exactly which
//! inputs were read to the end and how many records of the others were
//! consumed, so a restart skips precisely what the restored state already
//! holds: the same alerts as one uninterrupted run, and none twice.
//!
//! The file (`checkpoint.bin` in the state folder) is a small header (magic,
//! format version, body length, a 64-bit FNV-1a checksum of the body) and a
//! [postcard] body. It is written to a temporary file, synced, renamed over
//! the old one and the folder synced, so a crash leaves either the old or
//! the new checkpoint, never half of one. A damaged or foreign file is a
//! clear error naming the file; it is never silently ignored.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// File name of the checkpoint in the state folder.
pub const FILE_NAME: &str = "checkpoint.bin";
const MAGIC: &[u8; 8] = b"THOUNDCK";
/// Version of the checkpoint format this build writes and reads.
pub const FORMAT_VERSION: u32 = 4;
const HEADER: usize = 8 + 4 + 8 + 8;

/// A checkpoint could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// Reading or writing the file or folder failed.
    #[error("checkpoint {path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// What the system said.
        source: std::io::Error,
    },
    /// The file is not a checkpoint of this format, or is damaged.
    #[error("checkpoint {path} cannot be used: {reason}; move it away to start from empty state")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The state could not be encoded.
    #[error("checkpoint state could not be encoded: {0}")]
    Encode(String),
}

/// What identifies one input across runs: its name, size and modification
/// time (or, for bytes in memory, a hash of the content).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputIdentity {
    /// Length in bytes.
    pub size: u64,
    /// Modification time in nanoseconds since the Unix epoch, or a content
    /// hash for inputs that are not files.
    pub stamp: u128,
}

/// How far one input was read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputMark {
    /// The input as it was when read.
    pub identity: InputIdentity,
    /// Records (events and dead letters, in the parser's order) consumed.
    pub records: u64,
    /// True when the input was read to the end.
    pub complete: bool,
}

/// Every input a state folder has seen, by name.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputLedger {
    /// Marks by input name (path as given).
    pub inputs: BTreeMap<String, InputMark>,
}

/// What to do with an input, given the ledger.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resume {
    /// Read it from the start (new, or changed since it was read).
    FromStart,
    /// Skip the first `n` records: they are in the restored state.
    Skip(u64),
    /// Read to the end before: nothing to do.
    Done,
}

impl InputLedger {
    /// Where to resume `name`, whose identity is now `identity`. An input
    /// whose size or stamp changed is read again from the start.
    pub fn resume(&self, name: &str, identity: &InputIdentity) -> Resume {
        match self.inputs.get(name) {
            Some(m) if &m.identity == identity && m.complete => Resume::Done,
            Some(m) if &m.identity == identity && m.records > 0 => Resume::Skip(m.records),
            _ => Resume::FromStart,
        }
    }
}

/// One checkpoint: engine state and input positions.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Checkpoint {
    /// The trailhound version that wrote it.
    pub written_by: String,
    /// Wall-clock time it was written, microseconds since the Unix epoch.
    pub written_at: i64,
    /// How far every input was read.
    pub inputs: InputLedger,
    /// The engine's state ([`crate::Engine::save_state`]).
    pub engine: Vec<u8>,
}

/// The checkpoint file in a state folder.
pub fn path_in(dir: &Path) -> PathBuf {
    dir.join(FILE_NAME)
}

/// Writes `checkpoint` to `dir` atomically (temporary file, sync, rename,
/// folder sync). Creates the folder when absent.
pub fn save(dir: &Path, checkpoint: &Checkpoint) -> Result<(), CheckpointError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| CheckpointError::Io { path, source }
    };
    fs::create_dir_all(dir).map_err(io(dir))?;
    let bytes = encode(checkpoint)?;
    let target = path_in(dir);
    let tmp = dir.join(format!("{FILE_NAME}.tmp"));
    {
        let mut f = File::create(&tmp).map_err(io(&tmp))?;
        f.write_all(&bytes).map_err(io(&tmp))?;
        f.sync_all().map_err(io(&tmp))?;
    }
    fs::rename(&tmp, &target).map_err(io(&target))?;
    // Make the rename itself durable.
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Reads the checkpoint in `dir`; `Ok(None)` when there is none yet.
pub fn load(dir: &Path) -> Result<Option<Checkpoint>, CheckpointError> {
    let path = path_in(dir);
    let bytes = match fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(CheckpointError::Io { path, source }),
    };
    decode(&bytes, &path).map(Some)
}

/// A checkpoint as the bytes of its file: header (magic, format version,
/// body length, checksum) and postcard body. What [`save`] writes, and what
/// an object store holds for the Kafka detector.
pub fn encode(checkpoint: &Checkpoint) -> Result<Vec<u8>, CheckpointError> {
    let body =
        postcard::to_stdvec(checkpoint).map_err(|e| CheckpointError::Encode(e.to_string()))?;
    let mut bytes = Vec::with_capacity(HEADER + body.len());
    bytes.extend_from_slice(MAGIC);
    bytes.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    bytes.extend_from_slice(&(body.len() as u64).to_le_bytes());
    bytes.extend_from_slice(&fnv64(&body).to_le_bytes());
    bytes.extend_from_slice(&body);
    Ok(bytes)
}

/// Reads the bytes of a checkpoint file; `path` names it in errors.
pub fn decode(bytes: &[u8], path: &Path) -> Result<Checkpoint, CheckpointError> {
    let path = path.to_path_buf();
    let corrupt = |reason: String| CheckpointError::Corrupt {
        path: path.clone(),
        reason,
    };
    if bytes.len() < HEADER || &bytes[..8] != MAGIC {
        return Err(corrupt("it is not a trailhound checkpoint".into()));
    }
    let word = |at: usize, n: usize| -> u64 {
        let mut b = [0u8; 8];
        b[..n].copy_from_slice(&bytes[at..at + n]);
        u64::from_le_bytes(b)
    };
    let version = word(8, 4) as u32;
    if version != FORMAT_VERSION {
        return Err(corrupt(format!(
            "format version {version}, this build reads version {FORMAT_VERSION}"
        )));
    }
    let len = word(12, 8);
    let sum = word(20, 8);
    let body = &bytes[HEADER..];
    if body.len() as u64 != len {
        return Err(corrupt(format!(
            "the body is {} bytes, the header says {len} (truncated?)",
            body.len()
        )));
    }
    if fnv64(body) != sum {
        return Err(corrupt("the checksum does not match (damaged?)".into()));
    }
    postcard::from_bytes(body).map_err(|e| corrupt(format!("the body does not decode: {e}")))
}

/// 64-bit FNV-1a.
pub(crate) fn fnv64(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Checkpoint {
        let mut inputs = InputLedger::default();
        inputs.inputs.insert(
            "a.json".into(),
            InputMark {
                identity: InputIdentity { size: 10, stamp: 7 },
                records: 3,
                complete: false,
            },
        );
        Checkpoint {
            written_by: "test".into(),
            written_at: 1,
            inputs,
            engine: vec![1, 2, 3],
        }
    }

    #[test]
    fn a_checkpoint_reads_back_as_written() {
        let dir = tempfile::tempdir().unwrap();
        assert!(load(dir.path()).unwrap().is_none());
        save(dir.path(), &sample()).unwrap();
        let back = load(dir.path()).unwrap().unwrap();
        assert_eq!(back.inputs, sample().inputs);
        assert_eq!(back.engine, vec![1, 2, 3]);
        assert!(!dir.path().join("checkpoint.bin.tmp").exists());
    }

    #[test]
    fn a_damaged_checkpoint_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        save(dir.path(), &sample()).unwrap();
        let path = path_in(dir.path());
        let mut bytes = fs::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        fs::write(&path, &bytes).unwrap();
        let e = load(dir.path()).unwrap_err().to_string();
        assert!(e.contains("checksum"), "{e}");
        fs::write(&path, &bytes[..HEADER + 1]).unwrap();
        let e = load(dir.path()).unwrap_err().to_string();
        assert!(e.contains("truncated"), "{e}");
        fs::write(&path, b"hello").unwrap();
        let e = load(dir.path()).unwrap_err().to_string();
        assert!(e.contains("not a trailhound checkpoint"), "{e}");
    }

    #[test]
    fn the_ledger_says_where_to_resume() {
        let c = sample();
        let same = InputIdentity { size: 10, stamp: 7 };
        let grown = InputIdentity { size: 11, stamp: 8 };
        assert_eq!(c.inputs.resume("a.json", &same), Resume::Skip(3));
        assert_eq!(c.inputs.resume("a.json", &grown), Resume::FromStart);
        assert_eq!(c.inputs.resume("b.json", &same), Resume::FromStart);
        let mut done = c.inputs.clone();
        if let Some(m) = done.inputs.get_mut("a.json") {
            m.complete = true;
        }
        assert_eq!(done.resume("a.json", &same), Resume::Done);
    }
}
