//! Crash recovery: temporary parts left by writers that stopped without
//! closing (killed, out of memory, power lost).
//!
//! Every writer holds an exclusive lock on `<root>/.writers/<writer id>.lock`
//! for as long as it runs; the operating system releases it when the process
//! dies, however it dies. A part is written as
//! `.part-<writer id>-<n>.parquet.tmp`, so a temporary file names its writer.
//! When a writer opens the lake it removes every temporary file whose
//! writer's lock it can take (that writer is gone) and the lock files of
//! such writers; files of writers still holding their lock are left alone,
//! so several writers can share a lake. A temporary file whose writer has no
//! lock file at all (written by a trailhound without locks, or the lock
//! folder was deleted) is removed once it has not changed for an hour.

use std::collections::HashMap;
use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The folder of writer locks under the lake root (hidden from readers).
pub const WRITERS_DIR: &str = ".writers";

/// How long a temporary file without a lock file must stay unchanged before
/// it counts as abandoned.
const UNLOCKED_STALE_AFTER: Duration = Duration::from_secs(3600);

/// The lock a running writer holds; removed (and released) on drop.
#[derive(Debug)]
pub(crate) struct WriterLock {
    path: PathBuf,
    _file: File,
}

impl WriterLock {
    /// Creates and locks `<root>/.writers/<writer_id>.lock`.
    pub(crate) fn acquire(root: &Path, writer_id: &str) -> std::io::Result<Self> {
        let dir = root.join(WRITERS_DIR);
        std::fs::create_dir_all(&dir)?;
        let path = dir.join(format!("{writer_id}.lock"));
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)?;
        match file.try_lock() {
            Ok(()) => Ok(Self { path, _file: file }),
            Err(TryLockError::WouldBlock) => Err(std::io::Error::other(format!(
                "the writer lock {} is held by another process",
                path.display()
            ))),
            Err(TryLockError::Error(e)) => Err(e),
        }
    }
}

impl Drop for WriterLock {
    fn drop(&mut self) {
        // Removed while still held, so no sweeper ever takes a live writer for a dead one.
        let _ = std::fs::remove_file(&self.path);
    }
}

/// What a sweep did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Sweep {
    /// Temporary parts removed.
    pub removed: Vec<PathBuf>,
    /// Temporary parts left because their writer is still running.
    pub kept: usize,
}

/// The writer id in a temporary part's name (`.part-<id>-<n>.parquet.tmp`).
pub(crate) fn temp_writer_id(file_name: &str) -> Option<&str> {
    let inner = file_name
        .strip_prefix(".part-")?
        .strip_suffix(".parquet.tmp")?;
    let (id, n) = inner.rsplit_once('-')?;
    (!id.is_empty() && !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit())).then_some(id)
}

/// Whether the writer `id` is gone: its lock can be taken. A lock file that
/// cannot be opened counts as a live writer (nothing is removed on a guess).
fn writer_gone(root: &Path, id: &str) -> Option<bool> {
    let path = root.join(WRITERS_DIR).join(format!("{id}.lock"));
    let file = match OpenOptions::new().write(true).open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(_) => return Some(false),
    };
    match file.try_lock() {
        Ok(()) => Some(true),
        Err(_) => Some(false),
    }
}

/// Removes the temporary parts (and lock files) of writers that are gone;
/// `own_id` is the sweeping writer's id (its files are never touched).
pub fn sweep(root: &Path, own_id: &str) -> std::io::Result<Sweep> {
    let mut sweep = Sweep::default();
    let mut verdicts: HashMap<String, Option<bool>> = HashMap::new();
    // root / table=… / date=… / hour=… / files
    let mut stack: Vec<(PathBuf, usize)> = vec![(root.to_path_buf(), 0)];
    while let Some((dir, depth)) = stack.pop() {
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        for entry in entries {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().to_string();
            let kind = entry.file_type()?;
            if kind.is_dir() {
                if depth < 3 && name != WRITERS_DIR {
                    stack.push((entry.path(), depth + 1));
                }
                continue;
            }
            let Some(id) = temp_writer_id(&name) else {
                continue;
            };
            if id == own_id {
                continue;
            }
            let verdict = *verdicts
                .entry(id.to_string())
                .or_insert_with(|| writer_gone(root, id));
            let gone = match verdict {
                Some(gone) => gone,
                None => entry
                    .metadata()
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|t| t.elapsed().ok())
                    .is_some_and(|age| age >= UNLOCKED_STALE_AFTER),
            };
            if !gone {
                sweep.kept += 1;
                continue;
            }
            match std::fs::remove_file(entry.path()) {
                Ok(()) => {
                    tracing::info!(path = %entry.path().display(), writer = id, "Removed a temporary lake part left by a writer that stopped.");
                    sweep.removed.push(entry.path());
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
    }
    // Lock files of writers that are gone (with or without parts left).
    if let Ok(entries) = std::fs::read_dir(root.join(WRITERS_DIR)) {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().to_string();
            let Some(id) = name.strip_suffix(".lock") else {
                continue;
            };
            if id != own_id && writer_gone(root, id) == Some(true) {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }
    Ok(sweep)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temporary_names_give_their_writer() {
        assert_eq!(
            temp_writer_id(".part-abc123-00001.parquet.tmp"),
            Some("abc123")
        );
        assert_eq!(temp_writer_id(".part-a-b-7.parquet.tmp"), Some("a-b"));
        assert_eq!(temp_writer_id("part-abc-00001.parquet"), None);
        assert_eq!(temp_writer_id(".part-abc-x1.parquet.tmp"), None);
        assert_eq!(temp_writer_id(".part--1.parquet.tmp"), None);
    }

    fn touch(path: &Path) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, b"half a file").unwrap();
    }

    #[test]
    fn parts_of_gone_writers_go_and_live_writers_keep_theirs() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let hour = root.join("table=events/date=2026-11-02/hour=10");
        let live = WriterLock::acquire(root, "live").unwrap();
        // A writer that died: its lock file is there, nobody holds it.
        drop(File::create(root.join(WRITERS_DIR).join("dead.lock")).unwrap());
        touch(&hour.join(".part-live-00001.parquet.tmp"));
        touch(&hour.join(".part-dead-00001.parquet.tmp"));
        touch(&hour.join(".part-dead-00002.parquet.tmp"));
        // No lock file, recent: kept (it may be an older writer still running).
        touch(&hour.join(".part-nolock-00001.parquet.tmp"));
        touch(&hour.join("part-dead-00000.parquet"));

        let s = sweep(root, "me").unwrap();
        assert_eq!(s.removed.len(), 2, "{s:?}");
        assert_eq!(s.kept, 2);
        assert!(hour.join(".part-live-00001.parquet.tmp").exists());
        assert!(hour.join(".part-nolock-00001.parquet.tmp").exists());
        assert!(hour.join("part-dead-00000.parquet").exists());
        assert!(!root.join(WRITERS_DIR).join("dead.lock").exists());
        assert!(root.join(WRITERS_DIR).join("live.lock").exists());

        // Once the live writer stops, its lock file goes with it.
        drop(live);
        assert!(!root.join(WRITERS_DIR).join("live.lock").exists());
        assert!(WriterLock::acquire(root, "again").is_ok());
    }

    #[test]
    fn a_held_lock_cannot_be_taken_twice() {
        let dir = tempfile::tempdir().unwrap();
        let _held = WriterLock::acquire(dir.path(), "w").unwrap();
        assert!(WriterLock::acquire(dir.path(), "w").is_err());
        assert_eq!(writer_gone(dir.path(), "w"), Some(false));
        assert_eq!(writer_gone(dir.path(), "other"), None);
    }
}
