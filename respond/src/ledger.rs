//! The ledger: every change trailhound has put in place and not yet
//! released, with exactly what it added, so that a release (by time to
//! live or by `trailhound release`) removes that and nothing else. A JSON
//! file, rewritten atomically (write, sync, rename) under an exclusive
//! lock, so the detector and a `release` run by hand may share it.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The ledger cannot be read or written.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    /// Reading, locking or writing failed.
    #[error("action ledger {}: {source}", .path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The file is not a ledger. It is left as it is: what it lists may
    /// still be in place.
    #[error("action ledger {} is not readable ({reason}); fix or move it, it may list actions still in place", .path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// serde's message.
        reason: String,
    },
}

/// What an action added, enough to remove exactly that.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "change", rename_all = "kebab-case")]
pub enum Change {
    /// An inline policy on a user or role.
    InlinePolicy {
        /// `user` or `role`.
        holder: String,
        /// The user or role name.
        name: String,
        /// The policy's name (trailhound's own, unique per action).
        policy: String,
    },
    /// An access key set inactive (it was active before).
    KeyDeactivated {
        /// The key's user.
        user: String,
        /// The key id.
        key: String,
    },
    /// A gateway session ended and locked.
    GatewaySession {
        /// The session.
        session_id: String,
        /// The login.
        login: String,
    },
}

/// One change in place.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Placed {
    /// The action's id.
    pub action_id: String,
    /// The alert that caused it.
    pub alert_id: String,
    /// The alert's rule.
    pub rule_id: String,
    /// The alert's principal.
    pub principal: String,
    /// The responder (`quarantine-principal`, ...).
    pub kind: String,
    /// What was added.
    pub change: Change,
    /// When, microseconds UTC.
    pub taken_at: i64,
    /// When the time to live ends, microseconds UTC; `None`: never.
    pub expires_at: Option<i64>,
}

/// The file's content.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LedgerData {
    /// Changes in place, by action id.
    pub placed: BTreeMap<String, Placed>,
    /// Action ids released, with when (bounded to the newest
    /// [`RELEASED_KEPT`]): a replayed alert does not put them back.
    pub released: BTreeMap<String, i64>,
}

/// How many released ids the ledger remembers.
pub const RELEASED_KEPT: usize = 10_000;

impl LedgerData {
    /// The change in place for `kind` on `principal`, if any.
    pub fn active(&self, kind: &str, principal: &str) -> Option<&Placed> {
        self.placed
            .values()
            .find(|p| p.kind == kind && p.principal == principal)
    }

    /// Action ids whose time to live is over at `now`.
    pub fn expired(&self, now: i64) -> Vec<String> {
        self.placed
            .values()
            .filter(|p| p.expires_at.is_some_and(|t| t <= now))
            .map(|p| p.action_id.clone())
            .collect()
    }

    fn trim_released(&mut self) {
        while self.released.len() > RELEASED_KEPT {
            let oldest = self
                .released
                .iter()
                .min_by_key(|(_, t)| **t)
                .map(|(id, _)| id.clone());
            match oldest {
                Some(id) => {
                    self.released.remove(&id);
                }
                None => break,
            }
        }
    }
}

/// The ledger file.
#[derive(Debug, Clone)]
pub struct Ledger {
    path: PathBuf,
}

impl Ledger {
    /// The ledger at `path` (created on the first change).
    pub fn at(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }

    /// Where it is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn io(&self, source: std::io::Error) -> LedgerError {
        LedgerError::Io {
            path: self.path.clone(),
            source,
        }
    }

    /// Reads it (empty when the file does not exist yet; nothing is
    /// created then, so shadow mode leaves no files behind).
    pub fn read(&self) -> Result<LedgerData, LedgerError> {
        if !self.path.exists() {
            return Ok(LedgerData::default());
        }
        let _lock = self.lock()?;
        self.read_unlocked()
    }

    fn read_unlocked(&self) -> Result<LedgerData, LedgerError> {
        match std::fs::read(&self.path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| LedgerError::Corrupt {
                path: self.path.clone(),
                reason: e.to_string(),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(LedgerData::default()),
            Err(e) => Err(self.io(e)),
        }
    }

    /// Reads, applies `f` and writes back, under the lock; returns `f`'s value.
    pub fn update<T>(&self, f: impl FnOnce(&mut LedgerData) -> T) -> Result<T, LedgerError> {
        let _lock = self.lock()?;
        let mut data = self.read_unlocked()?;
        let out = f(&mut data);
        data.trim_released();
        self.write_unlocked(&data)?;
        Ok(out)
    }

    fn write_unlocked(&self, data: &LedgerData) -> Result<(), LedgerError> {
        let bytes = serde_json::to_vec_pretty(data).map_err(|e| LedgerError::Corrupt {
            path: self.path.clone(),
            reason: e.to_string(),
        })?;
        let tmp = self.sibling(".tmp");
        let mut f = File::create(&tmp).map_err(|e| self.io(e))?;
        f.write_all(&bytes).map_err(|e| self.io(e))?;
        f.sync_all().map_err(|e| self.io(e))?;
        drop(f);
        std::fs::rename(&tmp, &self.path).map_err(|e| self.io(e))?;
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty())
            && let Ok(d) = File::open(dir)
        {
            let _ = d.sync_all();
        }
        Ok(())
    }

    fn sibling(&self, suffix: &str) -> PathBuf {
        let mut name = self.path.file_name().unwrap_or_default().to_os_string();
        name.push(suffix);
        self.path.with_file_name(name)
    }

    fn lock(&self) -> Result<File, LedgerError> {
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| self.io(e))?;
        }
        let f = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(self.sibling(".lock"))
            .map_err(|e| self.io(e))?;
        f.lock().map_err(|e| self.io(e))?;
        Ok(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn placed(id: &str, expires_at: Option<i64>) -> Placed {
        Placed {
            action_id: id.into(),
            alert_id: "a".into(),
            rule_id: "r".into(),
            principal: "arn:aws:iam::1:user/alice".into(),
            kind: "quarantine-principal".into(),
            change: Change::InlinePolicy {
                holder: "user".into(),
                name: "alice".into(),
                policy: format!("trailhound-quarantine-{id}"),
            },
            taken_at: 1,
            expires_at,
        }
    }

    #[test]
    fn changes_survive_a_reopen_and_expire_by_their_time_to_live() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = Ledger::at(dir.path().join("state/actions.json"));
        assert_eq!(ledger.read().unwrap(), LedgerData::default());
        ledger
            .update(|d| {
                d.placed.insert("x1".into(), placed("x1", Some(100)));
                d.placed.insert("x2".into(), placed("x2", None));
            })
            .unwrap();
        let again = Ledger::at(dir.path().join("state/actions.json"))
            .read()
            .unwrap();
        assert_eq!(again.placed.len(), 2);
        assert_eq!(again.expired(99), Vec::<String>::new());
        assert_eq!(again.expired(100), vec!["x1".to_string()]);
        assert!(
            again
                .active("quarantine-principal", "arn:aws:iam::1:user/alice")
                .is_some()
        );
    }

    #[test]
    fn a_corrupt_ledger_is_an_error_and_left_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("actions.json");
        std::fs::write(&path, b"{not json").unwrap();
        let ledger = Ledger::at(&path);
        let err = ledger.update(|_| ()).unwrap_err();
        assert!(err.to_string().contains("may list actions still in place"));
        assert_eq!(std::fs::read(&path).unwrap(), b"{not json");
    }
}
