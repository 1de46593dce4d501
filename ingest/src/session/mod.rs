//! Gateway session logs: asciinema casts, Teleport audit events, Cowrie logs and
//! trailhound's own JSON lines, all into `session.*` events.
//!
//! The line-oriented logs (Teleport, Cowrie, session JSON lines) also parse
//! one line at a time through [`LineLog`], which keeps what earlier lines
//! said about each open session; that is how a followed log
//! ([`crate::follow`]) gives the same events as the whole file read at once.

pub mod asciinema;
pub(crate) mod common;
pub mod cowrie;
pub mod jsonl;
mod keys;
mod redact;
pub mod teleport;

use crate::emit::{Emit, ParseContext};
use crate::format::Format;

/// A line-oriented session log parsed one line at a time.
pub enum LineLog {
    /// Teleport audit events.
    Teleport(teleport::Parser),
    /// Cowrie JSON logs.
    Cowrie(cowrie::Parser),
    /// trailhound session JSON lines.
    Jsonl(jsonl::Parser),
    /// trailhound grants JSON lines (stateless: each line stands alone).
    Grants,
}

impl LineLog {
    /// A parser for `format`, or `None` when the format is not a line log
    /// (CloudTrail files and asciinema casts are read whole).
    pub fn for_format(format: Format) -> Option<Self> {
        match format {
            Format::Teleport => Some(Self::Teleport(teleport::Parser::default())),
            Format::Cowrie => Some(Self::Cowrie(cowrie::Parser::default())),
            Format::SessionJsonl => Some(Self::Jsonl(jsonl::Parser::default())),
            Format::GrantJsonl => Some(Self::Grants),
            _ => None,
        }
    }

    /// The format it parses.
    pub fn format(&self) -> Format {
        match self {
            Self::Teleport(_) => Format::Teleport,
            Self::Cowrie(_) => Format::Cowrie,
            Self::Jsonl(_) => Format::SessionJsonl,
            Self::Grants => Format::GrantJsonl,
        }
    }

    /// Parses line `number` (1-based, counting blank lines) of the log.
    pub fn line(&mut self, number: u64, raw: &[u8], ctx: &ParseContext, out: &mut dyn Emit) {
        match self {
            Self::Teleport(p) => p.line(number, raw, ctx, out),
            Self::Cowrie(p) => p.line(number, raw, ctx, out),
            Self::Jsonl(p) => p.line(number, raw, ctx, out),
            Self::Grants => crate::grants::jsonl::line(number, raw, ctx, out),
        }
    }
}
