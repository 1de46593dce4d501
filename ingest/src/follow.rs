//! Following a gateway's local log as it grows: `tail -F` for Teleport audit
//! logs, Cowrie logs and session JSON lines, through rotation.
//!
//! A [`Follower`] reads what was appended since its last poll, hands every
//! complete line to the format's [`LineLog`] parser (sniffed from the first
//! line) and keeps a partial last line until its newline arrives. Line
//! numbers are those of the file, so a followed log gives the same events and
//! event ids as the finished file ingested later.
//!
//! - Rotation by rename (`events.log` becomes `events.log.1` and a new
//!   `events.log` appears): at the end of the old file the follower reads it
//!   once more, takes its unterminated last line as complete, and goes on
//!   with the new file from its start. The parser keeps what it knew about
//!   open sessions, since sessions span rotations.
//! - Rotation by truncation (`copytruncate`): a file shorter than what was
//!   read is read again from its start.
//! - Resuming: [`Follower::resume`] takes the [`FollowPosition`] saved after
//!   the last acknowledged poll. When the file at the path is still that
//!   file, reading goes on after the position; when it was rotated away
//!   while nothing followed it, the rotated file is found by its identity in
//!   the same folder and finished first. Either way the part already read is
//!   parsed again without emitting anything, so the parser knows the open
//!   sessions as before.
//! - A line longer than the record limit is a `too_large` dead letter and is
//!   skipped to its newline without being held in memory; a line that is not
//!   one of the line formats is an `unknown_format` dead letter.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::emit::{DeadLetter, Emit, Limits, ParseContext, Position};
use crate::format::{Format, sniff};
use crate::input::InputError;
use crate::session::LineLog;
use trailhound_core::Event;

/// Which file a position is in: device and inode, so that a renamed file is
/// still recognised.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileId {
    /// Device number.
    pub dev: u64,
    /// Inode number.
    pub ino: u64,
}

impl FileId {
    #[cfg(unix)]
    fn of(meta: &std::fs::Metadata) -> Self {
        use std::os::unix::fs::MetadataExt;
        Self {
            dev: meta.dev(),
            ino: meta.ino(),
        }
    }

    /// Without inodes a rename cannot be seen; truncation still is.
    #[cfg(not(unix))]
    fn of(_meta: &std::fs::Metadata) -> Self {
        Self { dev: 0, ino: 0 }
    }
}

/// How far a followed log was read: the end of its last complete line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FollowPosition {
    /// The file; `None` before anything was read.
    pub file: Option<FileId>,
    /// Bytes of the file read as complete lines.
    pub offset: u64,
    /// Lines read (the number of the last one).
    pub line: u64,
}

/// What one poll read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Polled {
    /// Complete lines read (blank ones included).
    pub lines: u64,
    /// Bytes read.
    pub bytes: u64,
    /// Rotations by rename followed.
    pub rotations: u64,
    /// Truncations seen (the file read again from its start).
    pub truncations: u64,
    /// True when there is more to read at once (the poll stopped at its
    /// byte budget, or moved to a new file).
    pub more: bool,
}

/// One log followed through its rotations (see the module page).
pub struct Follower {
    path: PathBuf,
    limits: Limits,
    /// Bytes read per poll at most, so one poll's events stay bounded.
    budget: usize,
    resume: Option<FollowPosition>,
    current: Option<Open>,
    parser: Option<LineLog>,
}

/// The file being read.
struct Open {
    file: File,
    /// The path it was opened by (the rotated name when finishing one).
    name: String,
    id: FileId,
    /// End of the last complete line.
    offset: u64,
    /// Bytes read from the file (`offset` plus the partial line).
    read: u64,
    line: u64,
    pending: Vec<u8>,
    /// Inside a line over the record limit: dropping bytes to its newline.
    skipping: bool,
    /// A file already rotated away: at its end, go on with the path.
    rotated: bool,
}

/// Swallows what re-reading an already sent part produces.
struct Discard;

impl Emit for Discard {
    fn event(&mut self, _event: &Event) {}
    fn dead_letter(&mut self, _dead_letter: DeadLetter) {}
}

impl Follower {
    /// Follows `path` from its start (the file need not exist yet).
    pub fn new(path: impl Into<PathBuf>, limits: Limits) -> Self {
        Self {
            path: path.into(),
            limits,
            budget: 8 * 1024 * 1024,
            resume: None,
            current: None,
            parser: None,
        }
    }

    /// Follows `path` from a position saved by an earlier run.
    pub fn resume(path: impl Into<PathBuf>, limits: Limits, position: FollowPosition) -> Self {
        let mut follower = Self::new(path, limits);
        follower.resume = Some(position);
        follower
    }

    /// Reads at most this many bytes per poll (at least 4 KiB).
    pub fn with_budget(mut self, bytes: usize) -> Self {
        self.budget = bytes.max(4096);
        self
    }

    /// The path followed.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The format, once the first line was recognised.
    pub fn format(&self) -> Option<Format> {
        self.parser.as_ref().map(LineLog::format)
    }

    /// Where reading stands: save it once everything polled so far is
    /// acknowledged, and give it to [`Follower::resume`] after a restart.
    pub fn position(&self) -> FollowPosition {
        match &self.current {
            // Also while finishing a rotated file: its identity finds it again.
            Some(open) => FollowPosition {
                file: Some(open.id),
                offset: open.offset,
                line: open.line,
            },
            None => self.resume.unwrap_or_default(),
        }
    }

    /// Reads what was appended since the last poll (up to the byte budget),
    /// following a rotation or truncation seen at the end of the file.
    /// Events carry `ingest_time`; an absent file is not an error (it may be
    /// between rotations), an unreadable one is.
    pub fn poll(&mut self, ingest_time: i64, out: &mut dyn Emit) -> Result<Polled, InputError> {
        let mut polled = Polled::default();
        if self.current.is_none() {
            self.current = self.open_first()?;
        }
        let Some(mut open) = self.current.take() else {
            return Ok(polled);
        };
        let ctx = self.context(&open, ingest_time);
        let result = self.poll_open(&mut open, &ctx, out, &mut polled);
        self.current = Some(open);
        result?;
        Ok(polled)
    }

    fn poll_open(
        &mut self,
        open: &mut Open,
        ctx: &ParseContext,
        out: &mut dyn Emit,
        polled: &mut Polled,
    ) -> Result<(), InputError> {
        let budget = self.budget as u64;
        let read = self.read_into(open, budget, ctx, out, polled)?;
        if read >= budget {
            polled.more = true;
            return Ok(());
        }
        if open.rotated {
            self.finish(open, ctx, out, polled);
            return self.switch_to_path(open, polled);
        }
        let meta = match std::fs::metadata(&self.path) {
            Ok(meta) => meta,
            // Renamed away, the new file not created yet.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(source) => return Err(self.io(source)),
        };
        if FileId::of(&meta) != open.id {
            // Whatever the writer added before it reopened, then the new file.
            self.read_into(open, u64::MAX, ctx, out, polled)?;
            self.finish(open, ctx, out, polled);
            return self.switch_to_path(open, polled);
        }
        if meta.len() < open.read {
            open.file.seek(SeekFrom::Start(0)).map_err(|e| self.io(e))?;
            open.offset = 0;
            open.read = 0;
            open.line = 0;
            open.pending.clear();
            open.skipping = false;
            polled.truncations += 1;
            polled.more = true;
        }
        Ok(())
    }

    fn context(&self, open: &Open, ingest_time: i64) -> ParseContext {
        ParseContext {
            origin: open.name.clone(),
            ingest_time,
            limits: self.limits,
        }
    }

    fn io(&self, source: std::io::Error) -> InputError {
        InputError::Io {
            path: self.path.display().to_string(),
            source,
        }
    }

    /// Opens the file at the path from its start; `None` when it does not exist.
    fn open_path(&self) -> Result<Option<Open>, InputError> {
        let file = match File::open(&self.path) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(self.io(source)),
        };
        let meta = file.metadata().map_err(|e| self.io(e))?;
        Ok(Some(Open::new(
            file,
            self.path.display().to_string(),
            FileId::of(&meta),
            false,
        )))
    }

    fn switch_to_path(&mut self, open: &mut Open, polled: &mut Polled) -> Result<(), InputError> {
        if let Some(next) = self.open_path()? {
            *open = next;
            polled.rotations += 1;
            polled.more = true;
        }
        Ok(())
    }

    /// The first file: the saved one when it can still be found (re-read up
    /// to the saved offset without emitting), else the path from its start.
    fn open_first(&mut self) -> Result<Option<Open>, InputError> {
        let Some(position) = self.resume.take() else {
            return self.open_path();
        };
        let Some(id) = position.file else {
            return self.open_path();
        };
        let Some(mut open) = self.find(id)? else {
            tracing::warn!(
                path = %self.path.display(),
                "the file read before is gone (rotated away and deleted?): following the path from its start"
            );
            return self.open_path();
        };
        let len = open.file.metadata().map_err(|e| self.io(e))?.len();
        if len < position.offset {
            // Truncated while nothing followed it: all of it is new.
            return Ok(Some(open));
        }
        let ctx = self.context(&open, 0);
        let mut polled = Polled::default();
        self.read_into(&mut open, position.offset, &ctx, &mut Discard, &mut polled)?;
        Ok(Some(open))
    }

    /// The file with identity `id`: the path itself, or a rotated sibling.
    fn find(&self, id: FileId) -> Result<Option<Open>, InputError> {
        if let Some(open) = self.open_path()?
            && open.id == id
        {
            return Ok(Some(open));
        }
        let dir = match self.path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let entries = std::fs::read_dir(&dir).map_err(|e| self.io(e))?;
        for entry in entries.flatten() {
            let candidate = entry.path();
            let Ok(meta) = std::fs::metadata(&candidate) else {
                continue;
            };
            if meta.is_file() && FileId::of(&meta) == id {
                let file = File::open(&candidate).map_err(|source| InputError::Io {
                    path: candidate.display().to_string(),
                    source,
                })?;
                return Ok(Some(Open::new(
                    file,
                    candidate.display().to_string(),
                    id,
                    true,
                )));
            }
        }
        Ok(None)
    }

    /// Reads up to `limit` bytes, parsing every complete line; returns the
    /// bytes read.
    fn read_into(
        &mut self,
        open: &mut Open,
        limit: u64,
        ctx: &ParseContext,
        out: &mut dyn Emit,
        polled: &mut Polled,
    ) -> Result<u64, InputError> {
        let mut buf = vec![0u8; 64 * 1024];
        let mut total = 0u64;
        while total < limit {
            let want = (limit - total).min(buf.len() as u64) as usize;
            let n = match open.file.read(buf.get_mut(..want).unwrap_or_default()) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(source) => {
                    return Err(InputError::Io {
                        path: open.name.clone(),
                        source,
                    });
                }
            };
            total += n as u64;
            open.read += n as u64;
            polled.bytes += n as u64;
            self.split(open, buf.get(..n).unwrap_or_default(), ctx, out, polled);
        }
        Ok(total)
    }

    /// Hands the complete lines in `chunk` (after the pending partial line)
    /// to the parser and keeps the rest.
    fn split(
        &mut self,
        open: &mut Open,
        chunk: &[u8],
        ctx: &ParseContext,
        out: &mut dyn Emit,
        polled: &mut Polled,
    ) {
        // `read` already counts the chunk.
        let chunk_start = open.read - chunk.len() as u64;
        let mut rest = chunk;
        let mut at_chunk = 0usize;
        while let Some(at) = rest.iter().position(|b| *b == b'\n') {
            let (head, tail) = rest.split_at(at);
            rest = tail.get(1..).unwrap_or_default();
            at_chunk += at + 1;
            open.line += 1;
            polled.lines += 1;
            if open.skipping {
                open.skipping = false;
            } else if open.pending.is_empty() {
                self.line(open.offset, open.line, head, ctx, out);
            } else {
                let mut line = std::mem::take(&mut open.pending);
                line.extend_from_slice(head);
                self.line(open.offset, open.line, &line, ctx, out);
                line.clear();
                open.pending = line;
            }
            open.offset = chunk_start + at_chunk as u64;
        }
        if open.skipping {
            return;
        }
        open.pending.extend_from_slice(rest);
        if open.pending.len() > self.limits.max_record_bytes {
            out.dead_letter(ctx.dead_letter(
                Position::Line(open.line + 1),
                "too_large",
                format!(
                    "line is over the {}-byte record limit; skipped to its end",
                    self.limits.max_record_bytes
                ),
                &open.pending,
            ));
            open.pending.clear();
            open.skipping = true;
        }
    }

    /// The last line of a file that will not grow again, newline or not.
    fn finish(
        &mut self,
        open: &mut Open,
        ctx: &ParseContext,
        out: &mut dyn Emit,
        polled: &mut Polled,
    ) {
        if open.skipping || open.pending.is_empty() {
            open.skipping = false;
            open.pending.clear();
            return;
        }
        let line = std::mem::take(&mut open.pending);
        open.line += 1;
        polled.lines += 1;
        self.line(open.offset, open.line, &line, ctx, out);
        open.offset = open.read;
    }

    /// One complete line starting at byte `start` of the file.
    fn line(
        &mut self,
        start: u64,
        number: u64,
        raw: &[u8],
        ctx: &ParseContext,
        out: &mut dyn Emit,
    ) {
        let mut raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        if start == 0 {
            raw = raw.strip_prefix(b"\xef\xbb\xbf").unwrap_or(raw);
        }
        if raw.iter().all(u8::is_ascii_whitespace) {
            return;
        }
        if self.parser.is_none() {
            let format = sniff(&ctx.origin, raw);
            match LineLog::for_format(format) {
                Some(parser) => self.parser = Some(parser),
                None => {
                    out.dead_letter(ctx.dead_letter(
                        Position::Line(number),
                        "unknown_format",
                        format!(
                            "a followed log must be Teleport audit events, Cowrie JSON or session JSON lines; this line reads as {}",
                            format.as_str()
                        ),
                        raw,
                    ));
                    return;
                }
            }
        }
        if let Some(parser) = self.parser.as_mut() {
            parser.line(number, raw, ctx, out);
        }
    }
}

impl Open {
    fn new(file: File, name: String, id: FileId, rotated: bool) -> Self {
        Self {
            file,
            name,
            id,
            offset: 0,
            read: 0,
            line: 0,
            pending: Vec::new(),
            skipping: false,
            rotated,
        }
    }
}
