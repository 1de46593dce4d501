//! The dead-letter file: one JSON object per line for every record that could
//! not become an event, with its origin, position and reason.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use trailhound_core::DeadLetter;

use crate::SinkError;

/// Writes dead letters to a JSON-lines file, created on the first one so that
/// a clean run leaves no empty file behind.
#[derive(Debug)]
pub struct DeadLetterFile {
    path: PathBuf,
    out: Option<BufWriter<File>>,
    written: u64,
}

impl DeadLetterFile {
    /// A writer for `path` (not created yet).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            out: None,
            written: 0,
        }
    }

    /// Where the file is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// How many dead letters were written.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Appends one dead letter.
    pub fn write(&mut self, dl: &DeadLetter) -> Result<(), SinkError> {
        let io = |source| SinkError::Io {
            sink: "dead_letters",
            source,
        };
        if self.out.is_none() {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.path)
                .map_err(io)?;
            self.out = Some(BufWriter::new(file));
        }
        if let Some(out) = self.out.as_mut() {
            serde_json::to_writer(&mut *out, dl).map_err(|e| SinkError::Encode {
                sink: "dead_letters",
                reason: e.to_string(),
            })?;
            out.write_all(b"\n").map_err(io)?;
        }
        self.written += 1;
        Ok(())
    }

    /// Flushes to the file.
    pub fn flush(&mut self) -> Result<(), SinkError> {
        match self.out.as_mut() {
            Some(out) => out.flush().map_err(|source| SinkError::Io {
                sink: "dead_letters",
                source,
            }),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use trailhound_core::Position;

    #[test]
    fn writes_one_line_per_dead_letter_and_nothing_when_clean() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dl.jsonl");
        let mut f = DeadLetterFile::new(&path);
        f.flush().unwrap();
        assert!(!path.exists());
        let dl = DeadLetter::new("a.json", Position::Line(3), "invalid_json", "bad", b"{x");
        f.write(&dl).unwrap();
        f.write(&dl).unwrap();
        f.flush().unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 2);
        assert!(text.contains(r#""reason":"invalid_json""#));
        assert!(text.contains(r#""position":{"kind":"line","at":3}"#));
    }
}
