//! Dead letters: records that could not become events, kept with the reason
//! and their position so that nothing is lost silently.

use serde::{Deserialize, Serialize};

/// Where in its input a record sits, so that a dead letter can be found again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "at")]
pub enum Position {
    /// The whole input (unreadable file, bad gzip, ...).
    Whole,
    /// 1-based line number, for line-oriented inputs.
    Line(u64),
    /// 0-based index of a record inside a JSON array or `Records` list.
    Record(u64),
    /// Byte offset into the (decompressed) input.
    Byte(u64),
}

impl std::fmt::Display for Position {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Position::Whole => f.write_str("whole input"),
            Position::Line(n) => write!(f, "line {n}"),
            Position::Record(n) => write!(f, "record {n}"),
            Position::Byte(n) => write!(f, "byte {n}"),
        }
    }
}

/// A record that could not become an event, with the reason and where it was.
/// Dead letters are never dropped silently: they are written to the dead-letter
/// file and counted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeadLetter {
    /// The input it came from (a path, `-` for stdin, an S3 URL, ...).
    pub origin: String,
    /// Where in that input.
    pub position: Position,
    /// A short machine-friendly reason (`invalid_json`, `too_large`, ...), used as a metric label.
    pub reason: &'static str,
    /// The full explanation in plain words.
    pub detail: String,
    /// The first bytes of the record (lossy UTF-8, at most 256 characters).
    pub excerpt: String,
}

impl DeadLetter {
    /// Builds a dead letter, cutting the excerpt to a readable size.
    pub fn new(
        origin: &str,
        position: Position,
        reason: &'static str,
        detail: impl Into<String>,
        raw: &[u8],
    ) -> Self {
        let head = raw.get(..1024).unwrap_or(raw);
        let excerpt: String = String::from_utf8_lossy(head).chars().take(256).collect();
        Self {
            origin: origin.to_string(),
            position,
            reason,
            detail: detail.into(),
            excerpt,
        }
    }
}
