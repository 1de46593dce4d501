//! Large line-oriented files read in pieces cut at newlines, so that a file
//! of any size is parsed in bounded memory: on the calling thread
//! ([`parse_file_with`]), or with CloudTrail lines parsed by several threads
//! whose output is gathered back in the file's order
//! ([`parse_file_in_parallel`]).
//!
//! Either way the events and dead letters, with their line numbers, are
//! those of the whole file read at once.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Read;
use std::path::Path;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};

use crate::emit::{Emit, Gather, ParseContext, Part, Position};
use crate::format::{Format, sniff};
use crate::input::{GZIP_MAGIC, InputError, InputSummary, parse_input};
use crate::{cloudtrail, session};

/// When [`parse_file`] reads a file in pieces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pieces {
    /// Uncompressed line-oriented files at least this big are read in pieces
    /// (64 MiB).
    pub from_bytes: u64,
    /// Bytes read per piece before it is cut at its last newline (1 MiB; at
    /// least 4 KiB). A piece that fits a core's L2 cache is still there when
    /// it is parsed: against 8 MiB pieces, the kernel's time reading the
    /// bench file fell from 0.49 s to 0.31 s (mean of three runs on one
    /// core), with no more read calls than the parsing can absorb.
    pub piece_bytes: usize,
}

impl Default for Pieces {
    fn default() -> Self {
        Self {
            from_bytes: 64 * 1024 * 1024,
            piece_bytes: 1024 * 1024,
        }
    }
}

/// Reads and parses one file. Small files, compressed files and whole
/// documents (`{"Records":[...]}`) are read whole within the input limit, as
/// by [`crate::read_file`] and [`parse_input`]. An uncompressed file of at
/// least [`Pieces::from_bytes`] holding one record per line (CloudTrail
/// lines, Teleport, Cowrie, session JSON lines) is read in pieces cut at
/// newlines, so that its size is bounded by the disk, not by memory or the
/// input limit. A line over the record limit is a `too_large` dead letter
/// and is skipped to its newline without being held.
///
/// `Ok(None)` means the file was over the input limit (nothing parsed; the
/// caller reports it).
pub fn parse_file(
    path: &Path,
    ctx: &ParseContext,
    out: &mut dyn Emit,
) -> Result<Option<InputSummary>, InputError> {
    parse_file_with(path, ctx, out, Pieces::default())
}

/// [`parse_file`] with other piece sizes.
pub fn parse_file_with(
    path: &Path,
    ctx: &ParseContext,
    out: &mut dyn Emit,
    sizes: Pieces,
) -> Result<Option<InputSummary>, InputError> {
    match open(path, ctx, sizes)? {
        Opened::OverLimit => Ok(None),
        Opened::Whole(bytes) => Ok(Some(parse_input(&bytes, ctx, out))),
        Opened::Lines(mut lines) => {
            lines.parse_here(ctx, out).map_err(|e| io_error(path, e))?;
            Ok(Some(lines.summary()))
        }
    }
}

/// [`parse_file_with`], with the pieces of a large CloudTrail line file
/// parsed by `workers` threads (started here, in a scope that ends with the
/// file). Pieces go on one queue that any free worker takes from, and
/// their output is gathered back by the pieces' numbers, so `out` receives
/// it in the file's order, as from one thread. With `workers` under 2 the
/// pieces are parsed on this thread, but still each into a part that is
/// then gathered, so that `out` sees the same parts whatever the number of
/// workers. Files of other shapes are
/// read as by [`parse_file_with`].
pub fn parse_file_in_parallel<G: Gather>(
    path: &Path,
    ctx: &ParseContext,
    out: &mut G,
    sizes: Pieces,
    workers: usize,
) -> Result<Option<InputSummary>, InputError> {
    match open(path, ctx, sizes)? {
        Opened::OverLimit => Ok(None),
        Opened::Whole(bytes) => Ok(Some(parse_input(&bytes, ctx, out))),
        Opened::Lines(mut lines) => {
            if lines.numbering.line_log.is_some() {
                lines.parse_here(ctx, out)
            } else {
                lines.parse_in_parts(ctx, out, workers)
            }
            .map_err(|e| io_error(path, e))?;
            Ok(Some(lines.summary()))
        }
    }
}

fn io_error(path: &Path, source: std::io::Error) -> InputError {
    InputError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// A file opened and recognised.
enum Opened {
    /// Read whole (small, compressed or not line-oriented).
    Whole(Vec<u8>),
    /// Over the input limit, and not line-oriented.
    OverLimit,
    /// To be read in pieces.
    Lines(LineFile),
}

fn open(path: &Path, ctx: &ParseContext, sizes: Pieces) -> Result<Opened, InputError> {
    let io = |source| io_error(path, source);
    let mut file = File::open(path).map_err(io)?;
    let len = file.metadata().map_err(io)?.len();
    let mut head = Vec::with_capacity(64 * 1024);
    (&mut file)
        .take(64 * 1024)
        .read_to_end(&mut head)
        .map_err(io)?;
    let format = sniff(&ctx.origin, &head);
    let line_log = if len < sizes.from_bytes || head.starts_with(&GZIP_MAGIC) {
        None
    } else {
        match format {
            Format::CloudTrail if cloudtrail::is_line_oriented(&head) => Some(None),
            other => session::LineLog::for_format(other).map(Some),
        }
    };
    let Some(line_log) = line_log else {
        let mut bytes = head;
        file.take(ctx.limits.max_input_bytes.saturating_add(1))
            .read_to_end(&mut bytes)
            .map_err(io)?;
        if bytes.len() as u64 > ctx.limits.max_input_bytes {
            return Ok(Opened::OverLimit);
        }
        return Ok(Opened::Whole(bytes));
    };
    Ok(Opened::Lines(LineFile {
        reader: LineReader {
            file,
            carry: head,
            piece_bytes: sizes.piece_bytes.max(4096),
            max_line: ctx.limits.max_record_bytes.max(sizes.piece_bytes),
        },
        numbering: Numbering {
            line_log,
            next_line: 1,
            skipping: false,
        },
        format,
    }))
}

/// A line-oriented file being read in pieces.
struct LineFile {
    reader: LineReader,
    numbering: Numbering,
    format: Format,
}

impl LineFile {
    fn summary(&self) -> InputSummary {
        InputSummary {
            format: self.format,
            skipped: false,
        }
    }

    /// Every piece parsed on this thread.
    fn parse_here(&mut self, ctx: &ParseContext, out: &mut dyn Emit) -> std::io::Result<()> {
        let mut piece = Piece::default();
        loop {
            match self.reader.next(&mut piece)? {
                Next::End => return Ok(()),
                Next::TooLong => self.numbering.too_long(piece.text(), ctx, out),
                Next::Lines => {
                    let Some((lines, first)) = self.numbering.take(piece.text()) else {
                        continue;
                    };
                    let newlines = match &mut self.numbering.line_log {
                        None => cloudtrail::parse_lines_from(lines, first, ctx, out),
                        Some(log) => log_lines(log, lines, first, ctx, out),
                    };
                    self.numbering.next_line += newlines;
                }
            }
        }
    }

    /// CloudTrail pieces parsed into parts by `workers` threads (on this
    /// one when under 2), gathered in order.
    fn parse_in_parts<G: Gather>(
        &mut self,
        ctx: &ParseContext,
        out: &mut G,
        workers: usize,
    ) -> std::io::Result<()> {
        let threads = if workers < 2 { 0 } else { workers };
        std::thread::scope(|scope| {
            let (mut pool, ends) = Pool::new(ctx, threads);
            if let Some((inbox, outbox)) = ends {
                for _ in 0..threads {
                    let (inbox, outbox) = (Arc::clone(&inbox), outbox.clone());
                    scope.spawn(move || work(&inbox, &outbox, ctx));
                }
            }
            let read = self.feed(ctx, out, &mut pool);
            // The workers end when the pool, which holds the sender of the
            // pieces, is dropped with the scope; what they already hold is
            // gathered first.
            let gathered = pool.drain(out);
            read.and(gathered)
        })
    }

    /// Reads pieces and hands them to the pool.
    fn feed<G: Gather>(
        &mut self,
        ctx: &ParseContext,
        out: &mut G,
        pool: &mut Pool<'_, G::Part>,
    ) -> std::io::Result<()> {
        loop {
            let mut job = pool.spare.pop().unwrap_or_else(|| Job {
                piece: Piece::default(),
                first_line: 0,
                part: out.part(),
                seq: 0,
            });
            match self.reader.next(&mut job.piece)? {
                Next::End => return Ok(()),
                Next::TooLong => {
                    // Its dead letter comes after the lines before it.
                    pool.drain(out)?;
                    self.numbering.too_long(job.piece.text(), ctx, out);
                    pool.spare.push(job);
                }
                Next::Lines => {
                    let Some((lines, first)) = self.numbering.take(job.piece.text()) else {
                        pool.spare.push(job);
                        continue;
                    };
                    let skipped = job.piece.text().len() - lines.len();
                    // A worker needs the next piece's first line before it
                    // has counted this one's: counted here then.
                    let counted = pool
                        .shared
                        .is_some()
                        .then(|| memchr::memchr_iter(b'\n', lines).count() as u64);
                    job.piece.start += skipped;
                    job.first_line = first;
                    let parsed = pool.send(job, out)?;
                    self.numbering.next_line += counted.or(parsed).unwrap_or(0);
                }
            }
        }
    }
}

/// Line numbers across pieces, and the skipping of an over-long line.
struct Numbering {
    /// `None`: CloudTrail lines; else the session log's parser.
    line_log: Option<session::LineLog>,
    /// The number of the first line of the next piece.
    next_line: u64,
    /// The start of the next piece is the rest of an over-long line.
    skipping: bool,
}

impl Numbering {
    /// The whole lines of `piece` to parse, and the number of the first;
    /// `None` when there are none (the rest of an over-long line at the end
    /// of the file).
    fn take<'p>(&mut self, piece: &'p [u8]) -> Option<(&'p [u8], u64)> {
        if piece.is_empty() {
            return None;
        }
        let mut lines = piece;
        if self.skipping {
            self.skipping = false;
            let at = memchr::memchr(b'\n', piece)?;
            lines = piece.get(at + 1..).unwrap_or_default();
            self.next_line += 1;
        }
        Some((lines, self.next_line))
    }

    /// A line over the record limit: one dead letter, however many pieces
    /// it spans.
    fn too_long(&mut self, start: &[u8], ctx: &ParseContext, out: &mut dyn Emit) {
        if !self.skipping {
            out.dead_letter(ctx.dead_letter(
                Position::Line(self.next_line),
                "too_large",
                format!(
                    "line is over the {}-byte record limit; skipped to its end",
                    ctx.limits.max_record_bytes
                ),
                start,
            ));
        }
        self.skipping = true;
    }
}

/// The lines of a session log, one at a time through its parser; returns
/// the newlines passed.
fn log_lines(
    log: &mut session::LineLog,
    piece: &[u8],
    first: u64,
    ctx: &ParseContext,
    out: &mut dyn Emit,
) -> u64 {
    let piece = if first == 1 {
        piece.strip_prefix(b"\xef\xbb\xbf").unwrap_or(piece)
    } else {
        piece
    };
    let mut lines = 0;
    for (i, line) in piece.split(|b| *b == b'\n').enumerate() {
        lines = i;
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if !line.iter().all(u8::is_ascii_whitespace) {
            log.line(first + i as u64, line, ctx, out);
        }
    }
    lines as u64
}

/// What [`LineReader::next`] read.
enum Next {
    /// Whole lines (the last one may lack its newline at the end of the
    /// file).
    Lines,
    /// The start of a line over the limit, dropped from the reader.
    TooLong,
    /// The end of the file.
    End,
}

/// Reads a file in pieces of whole lines.
struct LineReader {
    file: File,
    /// What was read past the last newline of the previous piece.
    carry: Vec<u8>,
    piece_bytes: usize,
    /// A line longer than this (the record limit) is given up.
    max_line: usize,
}

impl LineReader {
    /// The next piece, into `piece` (emptied first): one read call, more
    /// only while no line is whole.
    fn next(&mut self, piece: &mut Piece) -> std::io::Result<Next> {
        piece.clear();
        piece.room(self.carry.len()).copy_from_slice(&self.carry);
        piece.end += self.carry.len();
        self.carry.clear();
        loop {
            let room = piece.room(self.piece_bytes);
            let read = loop {
                match self.file.read(room) {
                    Ok(n) => break n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(e),
                }
            };
            if read == 0 {
                return Ok(if piece.text().is_empty() {
                    Next::End
                } else {
                    Next::Lines
                });
            }
            piece.end += read;
            // The whole piece: the first one starts with the head read to
            // recognise the file, lines included.
            match memchr::memrchr(b'\n', piece.text()) {
                Some(at) => {
                    let end = piece.start + at + 1;
                    self.carry
                        .extend_from_slice(piece.bytes.get(end..piece.end).unwrap_or_default());
                    piece.end = end;
                    return Ok(Next::Lines);
                }
                None if piece.text().len() > self.max_line => return Ok(Next::TooLong),
                None => {}
            }
        }
    }
}

/// The bytes of a piece, `bytes[start..end]`, in a buffer kept from piece
/// to piece. What lies past `end` was written before (zeroed once, when the
/// buffer grew), so a read goes straight into it, with no zeroing per piece.
#[derive(Default)]
struct Piece {
    bytes: Vec<u8>,
    start: usize,
    end: usize,
}

impl Piece {
    fn text(&self) -> &[u8] {
        self.bytes.get(self.start..self.end).unwrap_or_default()
    }

    fn clear(&mut self) {
        self.start = 0;
        self.end = 0;
    }

    /// `n` bytes of room after the text.
    fn room(&mut self, n: usize) -> &mut [u8] {
        let want = self.end + n;
        if self.bytes.len() < want {
            self.bytes.resize(want, 0);
        }
        self.bytes.get_mut(self.end..want).unwrap_or_default()
    }
}

/// Pieces in flight per worker: parsed, waiting to be, or parsed and
/// waiting to be gathered.
const DEPTH: usize = 4;

/// A piece sent to a worker, and sent back with its output in `part`.
struct Job<P> {
    piece: Piece,
    first_line: u64,
    part: P,
    /// Its place in the file: pieces are numbered as they are sent.
    seq: u64,
}

impl<P: Part> Job<P> {
    /// Parses the piece's lines into the part and closes it; returns the
    /// newlines passed.
    fn parse(&mut self, ctx: &ParseContext) -> u64 {
        let newlines =
            cloudtrail::parse_lines_from(self.piece.text(), self.first_line, ctx, &mut self.part);
        self.part.close();
        newlines
    }
}

/// What a worker sends back: its job, parsed, or `None` when the parser
/// panicked (a bug), after which the worker ends.
type Parsed<P> = Option<Job<P>>;

/// The pool's ends of the channels the workers share: any idle worker
/// takes the next piece, so none waits while another has a backlog, and
/// parts come back in any order, to be put back in the file's order when
/// gathered.
struct Shared<P> {
    /// Dropped with the pool, which ends the workers.
    jobs: SyncSender<Job<P>>,
    /// Fails once every worker has ended.
    done: Receiver<Parsed<P>>,
}

/// The workers' ends of the shared channels.
type WorkerEnds<P> = (Arc<Mutex<Receiver<Job<P>>>>, SyncSender<Parsed<P>>);

/// The workers' channels (none: pieces are parsed where they are sent), the
/// pieces in flight, the parts that came back ahead of their turn, and
/// buffers to reuse.
struct Pool<'c, P> {
    ctx: &'c ParseContext,
    shared: Option<Shared<P>>,
    /// At most this many pieces in flight.
    most: usize,
    /// The number the next piece sent gets.
    sent: u64,
    /// The number of the next piece to gather.
    gathered: u64,
    /// Parts back ahead of their turn, by number.
    early: BTreeMap<u64, Job<P>>,
    /// A worker stopped: nothing more is gathered.
    failed: bool,
    spare: Vec<Job<P>>,
}

impl<'c, P: Part> Pool<'c, P> {
    /// A pool for `workers` threads, and the ends they are to be started
    /// with (none for none).
    fn new(ctx: &'c ParseContext, workers: usize) -> (Self, Option<WorkerEnds<P>>) {
        let most = DEPTH * workers;
        let (shared, ends) = if workers > 0 {
            let (jobs, inbox) = sync_channel(most);
            // Room for every piece in flight: a worker never waits to hand
            // one back.
            let (outbox, done) = sync_channel(most);
            (
                Some(Shared { jobs, done }),
                Some((Arc::new(Mutex::new(inbox)), outbox)),
            )
        } else {
            (None, None)
        };
        let pool = Self {
            ctx,
            shared,
            most,
            sent: 0,
            gathered: 0,
            early: BTreeMap::new(),
            failed: false,
            spare: Vec::new(),
        };
        (pool, ends)
    }

    /// Sends the next piece to whichever worker is free, first gathering
    /// the oldest piece when enough are in flight. With no workers the
    /// piece is parsed and gathered here, and its newlines returned.
    fn send<G: Gather<Part = P>>(
        &mut self,
        mut job: Job<P>,
        out: &mut G,
    ) -> std::io::Result<Option<u64>> {
        if self.shared.is_none() {
            let newlines = job.parse(self.ctx);
            out.gather(&mut job.part);
            self.spare.push(job);
            return Ok(Some(newlines));
        }
        if self.sent - self.gathered >= self.most as u64 {
            self.gather_one(out)?;
        }
        job.seq = self.sent;
        self.shared
            .as_ref()
            .and_then(|s| s.jobs.send(job).ok())
            .ok_or_else(stopped)?;
        self.sent += 1;
        Ok(None)
    }

    /// Gathers the oldest piece in flight, waiting for it if need be.
    fn gather_one<G: Gather<Part = P>>(&mut self, out: &mut G) -> std::io::Result<()> {
        if self.failed {
            return Err(stopped());
        }
        if self.gathered == self.sent {
            return Ok(());
        }
        let want = self.gathered;
        let mut job = loop {
            if let Some(job) = self.early.remove(&want) {
                break job;
            }
            let parsed = self.shared.as_ref().and_then(|s| s.done.recv().ok());
            match parsed {
                Some(Some(job)) => {
                    self.early.insert(job.seq, job);
                }
                Some(None) | None => {
                    self.failed = true;
                    return Err(stopped());
                }
            }
        };
        self.gathered += 1;
        out.gather(&mut job.part);
        self.spare.push(job);
        Ok(())
    }

    /// Gathers every piece in flight.
    fn drain<G: Gather<Part = P>>(&mut self, out: &mut G) -> std::io::Result<()> {
        while self.gathered < self.sent {
            self.gather_one(out)?;
        }
        Ok(())
    }
}

/// A worker that went away: only by a panic in a parser, which would be a
/// bug. The file is reported unread past that point rather than its
/// remaining events silently lost.
fn stopped() -> std::io::Error {
    std::io::Error::other("a parsing thread stopped; the rest of the file was not read")
}

/// A worker: takes the next piece any worker may take, parses it into its
/// part and sends it back, until the pieces end (their sender is dropped).
/// A panic in a parser is sent back as such rather than leaving the piece
/// to be waited for.
fn work<P: Part>(
    inbox: &Mutex<Receiver<Job<P>>>,
    outbox: &SyncSender<Parsed<P>>,
    ctx: &ParseContext,
) {
    loop {
        // The lock is held while waiting, so one idle worker waits on the
        // channel and the others on the lock.
        let next = match inbox.lock() {
            Ok(inbox) => inbox.recv(),
            Err(_) => return,
        };
        let Ok(mut job) = next else { return };
        let parsed =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job.parse(ctx))).is_ok();
        if outbox.send(parsed.then_some(job)).is_err() || !parsed {
            return;
        }
    }
}
