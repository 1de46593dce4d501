//! The embedded pipeline: reader threads parse inputs, build full chunks of
//! events into Arrow batches on their own threads, and feed a bounded
//! in-process channel; one engine thread gathers the remaining short chunks
//! into batches, runs the rules over every batch and hands alerts to the
//! sinks. Same engine, same rules, same outputs as the Kafka deployment,
//! with no server.
//!
//! The channel is bounded, so a slow engine slows the readers down
//! (backpressure) instead of buffering without end.
//!
//! Event time across inputs read in parallel: the engine's watermark is held
//! at the oldest of the newest event times of the inputs being read, so an
//! input that runs ahead never makes another one's events late. Inputs are
//! taken in the order given (sorted paths: CloudTrail keys sort by time).
//!
//! With a state folder ([`StateConfig`]) the run resumes from the last
//! checkpoint ([`crate::checkpoint`]): inputs read to the end before are
//! skipped, a partly read input resumes after its last consumed record, and
//! the engine's state is restored. Checkpoints are taken at consistent
//! points, every [`StateConfig::every`] and at the end of the run, also when
//! the run is asked to stop ([`Progress::stop`]).

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arrow::array::{AsArray, RecordBatch};
use arrow::datatypes::TimestampMicrosecondType;
use trailhound_core::schema::columns;
use trailhound_core::{
    Alert, DeadLetter, Event, EventBatchBuilder, Position, ResponseHook, ResponseOutput, Source,
};
use trailhound_ingest::{
    Emit, Format, Gather, InputSummary, Limits, ParseContext, Part, Pieces, parse_file_in_parallel,
    parse_input,
};
use trailhound_rules::template::text_cell;
use trailhound_sinks::{AlertSink, DeadLetterFile, LakeHook, SinkError};
// metrics (issue 8)
use trailhound_sinks::metrics::{EngineState, Metrics};

use crate::batcher::{BatchPolicy, Batcher};
use crate::checkpoint::{self, Checkpoint, CheckpointError, InputIdentity, InputMark, Resume};
use crate::engine::Engine;

/// One input to read.
#[derive(Debug, Clone)]
pub enum Input {
    /// A file on disk.
    Path(PathBuf),
    /// Standard input, read whole.
    Stdin,
    /// Bytes already in memory (the demo, tests).
    Bytes {
        /// Name used in dead letters and format recognition.
        name: String,
        /// The content, gzip or not.
        bytes: Vec<u8>,
    },
}

impl Input {
    fn name(&self) -> String {
        match self {
            Input::Path(p) => p.display().to_string(),
            Input::Stdin => "-".to_string(),
            Input::Bytes { name, .. } => name.clone(),
        }
    }

    /// What identifies the input across runs; `None` for standard input,
    /// which cannot be resumed.
    fn identity(&self) -> Option<InputIdentity> {
        match self {
            Input::Path(p) => {
                let meta = std::fs::metadata(p).ok()?;
                let stamp = meta
                    .modified()
                    .ok()
                    .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                    .map_or(0, |d| d.as_nanos());
                Some(InputIdentity {
                    size: meta.len(),
                    stamp,
                })
            }
            Input::Bytes { bytes, .. } => Some(InputIdentity {
                size: bytes.len() as u64,
                stamp: u128::from(checkpoint::fnv64(bytes)),
            }),
            Input::Stdin => None,
        }
    }
}

/// Where a run keeps its state between runs.
#[derive(Debug, Clone)]
pub struct StateConfig {
    /// The state folder (holds `checkpoint.bin`).
    pub dir: PathBuf,
    /// Wall time between checkpoints during a run.
    pub every: Duration,
}

impl StateConfig {
    /// State in `dir`, checkpointed every 30 seconds.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            every: Duration::from_secs(30),
        }
    }
}

/// What the end of the inputs means.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EndOfInput {
    /// The input is complete: close every window and end every sequence wait.
    #[default]
    Flush,
    /// More input will come in a later run: keep open windows and sequences
    /// (in the checkpoint) and close only what the watermark passed.
    Keep,
}

/// How the pipeline runs. Separate from the running pipeline so that it can
/// come from a config file.
#[derive(Debug, Clone)]
pub struct PipelineConfig {
    /// When batches close.
    pub batch: BatchPolicy,
    /// Threads parsing inputs in parallel: one reader per input, and when
    /// there are fewer inputs than this, the rest parse pieces of a large
    /// CloudTrail line file beside its reader ([`Pieces`]), so that one
    /// file uses every core.
    pub readers: usize,
    /// Chunks of events the channel holds before readers wait.
    pub channel_chunks: usize,
    /// Events a reader builds into one Arrow batch on its own thread before
    /// sending it (at most `batch.max_rows`). An input's last few events,
    /// fewer than this, go to the engine's batcher instead, to join other
    /// inputs' in a full batch.
    pub chunk_events: usize,
    /// Parser limits.
    pub limits: Limits,
    /// From what size, and in what pieces, line files are read.
    pub pieces: Pieces,
    /// Nice levels the reading threads run below the engine thread
    /// ([`crate::niceness`]); 0 leaves them level.
    pub reader_niceness: i32,
    /// Where dead letters go; `None` keeps only the counts.
    pub dead_letter_path: Option<PathBuf>,
    /// Where state is checkpointed and resumed from; `None` keeps none.
    pub state: Option<StateConfig>,
    /// Whether the end of the inputs closes every window.
    pub end_of_input: EndOfInput,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        Self {
            batch: BatchPolicy::default(),
            readers: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
                .clamp(1, 8),
            channel_chunks: 64,
            chunk_events: 1024,
            limits: Limits::default(),
            pieces: Pieces::default(),
            reader_niceness: crate::niceness::READER_NICENESS,
            dead_letter_path: Some(PathBuf::from("trailhound.deadletter.jsonl")),
            state: None,
            end_of_input: EndOfInput::Flush,
        }
    }
}

/// Live counters for a progress display.
#[derive(Debug, Default)]
pub struct Progress {
    /// Inputs to read.
    pub inputs_total: AtomicU64,
    /// Inputs finished.
    pub inputs_done: AtomicU64,
    /// Events handed to the engine.
    pub events: AtomicU64,
    /// Alerts raised.
    pub alerts: AtomicU64,
    /// Set to ask the run to stop at the next safe point: readers stop
    /// handing over events, the engine evaluates what it has, and a
    /// checkpoint (when there is a state folder) records where to resume.
    pub stop: Arc<std::sync::atomic::AtomicBool>,
}

/// What a run did.
#[derive(Debug, Default, Clone)]
pub struct Summary {
    /// Events read, by source (`cloudtrail`, `session`).
    pub events_by_source: BTreeMap<String, u64>,
    /// Inputs read, by format.
    pub inputs_by_format: BTreeMap<String, u64>,
    /// Inputs recognised and skipped (CloudTrail digests).
    pub inputs_skipped: u64,
    /// Inputs that could not be opened.
    pub input_errors: Vec<String>,
    /// Dead letters, by reason.
    pub dead_letters_by_reason: BTreeMap<String, u64>,
    /// Where dead letters were written, when any were.
    pub dead_letter_file: Option<PathBuf>,
    /// Alerts raised, by rule id.
    pub alerts_by_rule: BTreeMap<String, u64>,
    /// Response actions by `kind mode outcome` (`quarantine-principal shadow done`).
    pub actions: BTreeMap<String, u64>,
    /// Rule evaluation failures (a rule erroring on a batch).
    pub rule_errors: u64,
    /// Batches evaluated.
    pub batches: u64,
    /// Rule matches, before dedup.
    pub matches: u64,
    /// Matches folded into an alert raised earlier (dedup).
    pub suppressed: u64,
    /// Wall time of the run.
    pub elapsed: Duration,
    /// Inputs skipped because a checkpoint says they were read to the end.
    pub inputs_already_read: u64,
    /// Records skipped at the start of partly read inputs (already in state).
    pub records_resumed: u64,
    /// Rules whose state came back from the checkpoint.
    pub rules_restored: usize,
    /// Rules whose checkpointed state was dropped (gone or changed).
    pub rules_state_dropped: Vec<String>,
    /// Checkpoints written.
    pub checkpoints: u64,
    /// True when the run stopped on request before the inputs ended.
    pub stopped: bool,
    /// Window groups and sequence keys still open at the end (kept in the
    /// checkpoint when the end of input did not flush).
    pub open_state: usize,
    /// Rows left out of windows as later than the allowed lateness.
    pub late_dropped: u64,
    /// Baseline state at the end: keys held, evictions, cap refusals.
    pub baselines: crate::baseline::BaselineStats,
}

impl Summary {
    /// All events read.
    pub fn events(&self) -> u64 {
        self.events_by_source.values().sum()
    }
    /// All dead letters.
    pub fn dead_letters(&self) -> u64 {
        self.dead_letters_by_reason.values().sum()
    }
    /// All alerts.
    pub fn alerts(&self) -> u64 {
        self.alerts_by_rule.values().sum()
    }
    /// Events per second over the whole run.
    pub fn events_per_second(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 {
            self.events() as f64 / secs
        } else {
            0.0
        }
    }
}

/// A pipeline failure that stops the run.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// An alert sink failed: alerts would be lost, so the run stops.
    /// Retrying helps only once the sink's destination is writable again.
    #[error(transparent)]
    Sink(#[from] SinkError),
    /// The checkpoint could not be read or written.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    /// The checkpoint's engine state does not decode.
    #[error(
        "the engine state in {path} cannot be restored: {reason}; move the file away to start from empty state"
    )]
    Restore {
        /// The checkpoint file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
}

/// A message from a reader. `input` is the input's index in the run;
/// `through` counts the input's records (events and dead letters, in the
/// parser's order) handed over so far, this message included.
enum Msg {
    /// A full chunk, built into a batch on the reader's thread as it was
    /// parsed, so that the engine thread only evaluates it.
    Batch {
        input: usize,
        batch: RecordBatch,
        seen: Seen,
        through: u64,
    },
    /// A short chunk (an input's last rows, or those before a dead letter),
    /// for the engine's batcher to join with others; `bytes` is its text
    /// size.
    Rows {
        input: usize,
        batch: RecordBatch,
        seen: Seen,
        bytes: usize,
        through: u64,
    },
    DeadLetter {
        input: usize,
        dead_letter: DeadLetter,
        through: u64,
    },
    InputDone {
        input: usize,
        format: Format,
        skipped: bool,
    },
    InputStopped {
        input: usize,
    },
    InputError {
        input: usize,
        error: String,
    },
}

/// One input of a run, with where to start it.
struct Task {
    index: usize,
    input: Input,
    skip: u64,
}

/// What the engine needs to know of a chunk's events without looking at
/// them: how many of each source, the first one's source and the newest
/// event time.
#[derive(Debug, Clone, Copy, Default)]
struct Seen {
    cloudtrail: u64,
    session: u64,
    first: Option<Source>,
    newest: Option<i64>,
}

impl Seen {
    fn add(&mut self, event: &Event) {
        self.add_row(event.source, event.event_time);
    }

    fn add_row(&mut self, source: Source, time: i64) {
        match source {
            Source::Session => self.session += 1,
            Source::Cloudtrail => self.cloudtrail += 1,
        }
        self.first.get_or_insert(source);
        self.newest = self.newest.max(Some(time));
    }

    /// Read back from a batch's `source` and `event_time` columns.
    fn of_batch(batch: &RecordBatch) -> Self {
        let mut seen = Self::default();
        let column = |name| batch.column_by_name(name).map(|c| c.as_ref());
        let (Some(sources), Some(times)) = (
            column(columns::SOURCE),
            column(columns::EVENT_TIME)
                .and_then(|c| c.as_primitive_opt::<TimestampMicrosecondType>()),
        ) else {
            return seen;
        };
        for (row, time) in times.values().iter().enumerate() {
            let source = match text_cell(sources, row) {
                Some("session") => Source::Session,
                _ => Source::Cloudtrail,
            };
            seen.add_row(source, *time);
        }
        seen
    }

    fn count(&self) -> u64 {
        self.cloudtrail + self.session
    }
}

/// A reader's side of the channel: events are appended to an Arrow batch
/// as they are parsed, and the batch is sent when full.
struct ChannelEmit<'a> {
    tx: &'a SyncSender<Msg>,
    input: usize,
    /// The chunk being built.
    open: OpenRows,
    /// When a chunk is full: a chunk of large records is sent early, so the
    /// channel holds at most `channel_chunks` times its bytes (plus one
    /// record each).
    chunk: Chunk,
    /// Records the parser produced so far.
    records: u64,
    /// Records to drop at the start (already in the restored state).
    skip: u64,
    stop: &'a std::sync::atomic::AtomicBool,
    stopped: bool,
}

impl ChannelEmit<'_> {
    fn send_chunk(&mut self) {
        if self.stopped {
            return;
        }
        let full = self.open.is_full(self.chunk);
        if let Some(rows) = self.open.take() {
            self.hand_over(rows, full);
        }
    }

    /// Sends rows to the engine, counted through `self.records`: as a batch
    /// of their own when `full`, else to be joined with others. Nothing
    /// once the run is asked to stop.
    fn hand_over(&mut self, Rows { batch, seen, bytes }: Rows, full: bool) {
        if self.stop.load(Ordering::Relaxed) {
            // Records not handed over are read again on resume.
            self.stopped = true;
            return;
        }
        let (input, through) = (self.input, self.records);
        let msg = if full {
            Msg::Batch {
                input,
                batch,
                seen,
                through,
            }
        } else {
            Msg::Rows {
                input,
                batch,
                seen,
                bytes,
                through,
            }
        };
        // The receiver only goes away when the run is stopping.
        let _ = self.tx.send(msg);
    }

    /// Rows parsed on another thread, after the rows appended here:
    /// counted, the first ones dropped while resuming, and sent.
    fn rows(&mut self, Rows { batch, seen, bytes }: Rows) {
        self.send_chunk();
        let rows = batch.num_rows();
        let start = self.records;
        self.records += rows as u64;
        let drop = usize::try_from(self.skip.saturating_sub(start)).map_or(rows, |d| d.min(rows));
        if self.stopped || drop == rows {
            return;
        }
        let (batch, seen, bytes) = if drop > 0 {
            let kept = batch.slice(drop, rows - drop);
            let seen = Seen::of_batch(&kept);
            (kept, seen, bytes / rows * (rows - drop))
        } else {
            (batch, seen, bytes)
        };
        // A piece's rows are a batch of their own unless they are few (cut
        // short by dead letters).
        let full = 2 * batch.num_rows() >= self.chunk.events || 2 * bytes >= self.chunk.bytes;
        self.hand_over(Rows { batch, seen, bytes }, full);
    }

    /// Counts one record; false when it is to be dropped.
    fn admit(&mut self) -> bool {
        self.records += 1;
        self.records > self.skip && !self.stopped
    }
}

impl Emit for ChannelEmit<'_> {
    fn event(&mut self, event: &Event) {
        if !self.admit() {
            return;
        }
        if self.open.push(event, self.chunk) {
            self.send_chunk();
        }
    }
    fn dead_letter(&mut self, dead_letter: DeadLetter) {
        // Events before it go first, so that `through` never runs ahead of
        // what was handed over.
        let records = self.records;
        if !self.admit() {
            return;
        }
        self.records = records;
        self.send_chunk();
        self.records += 1;
        if self.stopped {
            return;
        }
        let _ = self.tx.send(Msg::DeadLetter {
            input: self.input,
            dead_letter,
            through: self.records,
        });
    }
}

impl Gather for ChannelEmit<'_> {
    type Part = PieceRows;

    fn part(&self) -> PieceRows {
        PieceRows {
            open: OpenRows::default(),
            segments: Vec::new(),
            chunk: self.chunk,
        }
    }

    fn gather(&mut self, part: &mut PieceRows) {
        for segment in part.segments.drain(..) {
            match segment {
                Segment::Rows(rows) => self.rows(rows),
                Segment::Dead(dead_letter) => self.dead_letter(dead_letter),
            }
        }
    }
}

/// Events being built into an Arrow batch, with what the engine needs to
/// know of them: by a reader ([`ChannelEmit`]) or a worker ([`PieceRows`]).
#[derive(Default)]
struct OpenRows {
    builder: EventBatchBuilder,
    seen: Seen,
    /// Text bytes of the rows ([`Event::text_bytes`]).
    bytes: usize,
}

/// Rows built into a batch.
struct Rows {
    batch: RecordBatch,
    seen: Seen,
    bytes: usize,
}

impl OpenRows {
    /// Appends an event; true when that filled the chunk.
    fn push(&mut self, event: &Event, chunk: Chunk) -> bool {
        self.bytes += event.text_bytes();
        self.seen.add(event);
        self.builder.append(event);
        self.is_full(chunk)
    }

    fn is_full(&self, chunk: Chunk) -> bool {
        self.builder.len() >= chunk.events || self.bytes >= chunk.bytes
    }

    /// The rows as a batch, leaving none; `None` when there are none.
    fn take(&mut self) -> Option<Rows> {
        (!self.builder.is_empty()).then(|| Rows {
            batch: self.builder.finish(),
            seen: std::mem::take(&mut self.seen),
            bytes: std::mem::take(&mut self.bytes),
        })
    }
}

/// What a parsing thread made of one piece of a file: its events built into
/// Arrow batches there, and its dead letters, in order.
struct PieceRows {
    open: OpenRows,
    segments: Vec<Segment>,
    chunk: Chunk,
}

enum Segment {
    Rows(Rows),
    Dead(DeadLetter),
}

impl Part for PieceRows {
    /// Ends the rows being built: on the worker that parsed the piece, so
    /// that the one thread gathering parts does not finish every batch.
    fn close(&mut self) {
        if let Some(rows) = self.open.take() {
            self.segments.push(Segment::Rows(rows));
        }
    }
}

impl Emit for PieceRows {
    fn event(&mut self, event: &Event) {
        if self.open.push(event, self.chunk) {
            self.close();
        }
    }
    fn dead_letter(&mut self, dead_letter: DeadLetter) {
        self.close();
        self.segments.push(Segment::Dead(dead_letter));
    }
}

/// Runs the whole pipeline over `inputs` until they are exhausted.
pub fn run(
    inputs: Vec<Input>,
    engine: &mut Engine,
    sinks: &mut [Box<dyn AlertSink>],
    config: &PipelineConfig,
    progress: Option<Arc<Progress>>,
) -> Result<Summary, PipelineError> {
    run_with_lake(inputs, engine, sinks, config, progress, None)
}

/// The optional parts of a run, for [`run_with`].
#[derive(Default)]
pub struct RunOptions<'l> {
    /// Live counters for a progress display.
    pub progress: Option<Arc<Progress>>,
    /// The audit lake: every batch (after its rules ran) and every alert.
    pub lake: Option<&'l mut dyn LakeHook>,
    /// Prometheus metrics, fed where the summary counts (`trailhound_sinks::metrics`).
    pub metrics: Option<Metrics>,
    /// Automated response (`trailhound_respond::ResponseWorker`): handed
    /// every alert; its action records go to the lake and the metrics, its
    /// own alerts (a failed action, a tripped breaker) to the sinks.
    pub respond: Option<&'l mut dyn ResponseHook>,
}

/// [`run`], also handing every batch (after its rules ran) and every alert to
/// `lake` (the audit lake), which is closed at the end of the run.
pub fn run_with_lake(
    inputs: Vec<Input>,
    engine: &mut Engine,
    sinks: &mut [Box<dyn AlertSink>],
    config: &PipelineConfig,
    progress: Option<Arc<Progress>>,
    lake: Option<&mut dyn LakeHook>,
) -> Result<Summary, PipelineError> {
    let options = RunOptions {
        progress,
        lake,
        metrics: None,
        respond: None,
    };
    run_with(inputs, engine, sinks, config, options)
}

/// [`run`] with the optional parts of [`RunOptions`]: progress, the audit
/// lake (closed at the end of the run) and metrics.
pub fn run_with(
    inputs: Vec<Input>,
    engine: &mut Engine,
    sinks: &mut [Box<dyn AlertSink>],
    config: &PipelineConfig,
    options: RunOptions<'_>,
) -> Result<Summary, PipelineError> {
    let RunOptions {
        progress,
        mut lake,
        metrics,
        respond,
    } = options;
    let started = Instant::now();
    let progress = progress.unwrap_or_default();
    let mut summary = Summary::default();

    // Resume: restore the engine and decide where each input starts.
    let mut ledger = checkpoint::InputLedger::default();
    if let Some(state) = &config.state
        && let Some(cp) = checkpoint::load(&state.dir)?
    {
        let report = engine
            .restore_state(&cp.engine)
            .map_err(|reason| PipelineError::Restore {
                path: checkpoint::path_in(&state.dir),
                reason,
            })?;
        summary.rules_restored = report.restored;
        summary.rules_state_dropped = report.dropped;
        ledger = cp.inputs;
    }
    let mut tasks = Vec::with_capacity(inputs.len());
    let mut tracked = Vec::with_capacity(inputs.len());
    for input in inputs {
        let name = input.name();
        let identity = if config.state.is_some() {
            input.identity()
        } else {
            None
        };
        let skip = match identity.as_ref().map(|id| ledger.resume(&name, id)) {
            Some(Resume::Done) => {
                summary.inputs_already_read += 1;
                continue;
            }
            Some(Resume::Skip(n)) => n,
            Some(Resume::FromStart) | None => 0,
        };
        summary.records_resumed += skip;
        tasks.push(Task {
            index: tracked.len(),
            input,
            skip,
        });
        tracked.push(Tracked {
            name,
            identity,
            through: skip,
            complete: false,
            ended: false,
            front: None,
            stream: None,
        });
    }

    progress
        .inputs_total
        .store(tasks.len() as u64, Ordering::Relaxed);
    let (tx, rx) = sync_channel::<Msg>(config.channel_chunks.max(1));
    let readers = config.readers.clamp(1, tasks.len().max(1));
    // Readers the inputs leave idle parse pieces of a large line file
    // instead: one file read on two cores is parsed by two threads.
    let workers = (config.readers / readers).max(1);
    let queue = Mutex::new(tasks.into_iter().collect::<std::collections::VecDeque<_>>());
    // Inputs handed to a reader so far, counted under the queue's lock: the
    // tasks are taken in index order, so inputs `0..dispatched` have started.
    let dispatched = AtomicUsize::new(0);
    let stop = Arc::clone(&progress.stop);

    std::thread::scope(|scope| {
        for _ in 0..readers {
            let tx = tx.clone();
            let queue = &queue;
            let limits = config.limits;
            let pieces = config.pieces;
            let niceness = config.reader_niceness;
            let chunk = Chunk {
                events: config.chunk_events.clamp(1, config.batch.max_rows.max(1)),
                bytes: config.batch.max_bytes.max(1),
            };
            let stop = &stop;
            let dispatched = &dispatched;
            scope.spawn(move || {
                if niceness > 0 {
                    crate::niceness::lower_this_thread(niceness);
                }
                loop {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let task = match queue.lock() {
                        Ok(mut q) => {
                            let task = q.pop_front();
                            if task.is_some() {
                                dispatched.fetch_add(1, Ordering::Release);
                            }
                            task
                        }
                        Err(_) => None,
                    };
                    let Some(task) = task else { break };
                    read_one(task, limits, (chunk, pieces, workers), &tx, stop);
                }
            });
        }
        drop(tx);
        let mut run = Run {
            engine,
            sinks,
            lake: &mut lake,
            progress: &progress,
            summary,
            tracked,
            ledger,
            streams: BTreeMap::new(),
            state: config.state.as_ref(),
            last_checkpoint: Instant::now(),
            metrics,
            dispatched: &dispatched,
            held: None,
            respond,
        };
        run.consume(rx, config)?;
        let mut summary = run.summary;
        summary.elapsed = started.elapsed();
        Ok(summary)
    })
}

/// What the engine thread knows of one input of the run.
struct Tracked {
    name: String,
    identity: Option<InputIdentity>,
    /// Records handed over (absolute, skipped ones included).
    through: u64,
    complete: bool,
    /// Its reader is done with it (read to the end, failed or stopped).
    ended: bool,
    /// Newest event time seen from it while it is being read.
    front: Option<i64>,
    /// The stream its events belong to (`cloudtrail`, `session`).
    stream: Option<&'static str>,
}

/// Parses an input held in memory; `None` when it is over the input limit.
fn parse_bytes(bytes: &[u8], ctx: &ParseContext, out: &mut dyn Emit) -> Option<InputSummary> {
    (bytes.len() as u64 <= ctx.limits.max_input_bytes).then(|| parse_input(bytes, ctx, out))
}

/// When a reader sends what it has: at this many events or text bytes.
#[derive(Debug, Clone, Copy)]
struct Chunk {
    events: usize,
    bytes: usize,
}

/// Reads one input: `(chunk, pieces, workers)` say how it is cut and how
/// many threads parse it.
fn read_one(
    task: Task,
    limits: Limits,
    (chunk, pieces, workers): (Chunk, Pieces, usize),
    tx: &SyncSender<Msg>,
    stop: &std::sync::atomic::AtomicBool,
) {
    let Task { index, input, skip } = task;
    let name = input.name();
    let mut ctx = ParseContext::new(name.clone());
    ctx.limits = limits;
    let mut emit = ChannelEmit {
        tx,
        input: index,
        open: OpenRows::default(),
        chunk,
        records: 0,
        skip,
        stop,
        stopped: false,
    };
    let parsed = match input {
        Input::Bytes { bytes, .. } => parse_bytes(&bytes, &ctx, &mut emit),
        // Large line-oriented files are read in pieces.
        Input::Path(p) => match parse_file_in_parallel(&p, &ctx, &mut emit, pieces, workers) {
            Ok(parsed) => parsed,
            Err(e) => {
                let _ = tx.send(Msg::InputError {
                    input: index,
                    error: e.to_string(),
                });
                return;
            }
        },
        Input::Stdin => {
            let mut b = Vec::new();
            let stdin = std::io::stdin();
            let mut lock = stdin.lock().take(limits.max_input_bytes.saturating_add(1));
            if let Err(e) = lock.read_to_end(&mut b) {
                let _ = tx.send(Msg::InputError {
                    input: index,
                    error: format!("cannot read standard input: {e}"),
                });
                return;
            }
            parse_bytes(&b, &ctx, &mut emit)
        }
    };
    let (format, skipped) = match parsed {
        Some(summary) => (summary.format, summary.skipped),
        None => {
            emit.dead_letter(ctx.dead_letter(
                Position::Whole,
                "input_too_large",
                format!("input is over the {}-byte limit", limits.max_input_bytes),
                b"",
            ));
            (Format::Unknown, false)
        }
    };
    emit.send_chunk();
    let _ = tx.send(if emit.stopped {
        Msg::InputStopped { input: index }
    } else {
        Msg::InputDone {
            input: index,
            format,
            skipped,
        }
    });
}

/// The engine thread's side of a run.
struct Run<'r, 'l> {
    engine: &'r mut Engine,
    sinks: &'r mut [Box<dyn AlertSink>],
    lake: &'r mut Option<&'l mut dyn LakeHook>,
    progress: &'r Progress,
    summary: Summary,
    tracked: Vec<Tracked>,
    ledger: checkpoint::InputLedger,
    /// Newest event time seen per stream (`cloudtrail`, `session`).
    streams: BTreeMap<&'static str, i64>,
    state: Option<&'r StateConfig>,
    last_checkpoint: Instant,
    /// metrics (issue 8): fed beside the summary's counters.
    metrics: Option<Metrics>,
    /// Inputs taken by a reader so far (they start in index order).
    dispatched: &'r AtomicUsize,
    /// The front last given to [`Engine::hold_watermark`].
    held: Option<i64>,
    /// Automated response, when on.
    respond: Option<&'l mut dyn ResponseHook>,
}

impl Run<'_, '_> {
    fn consume(&mut self, rx: Receiver<Msg>, config: &PipelineConfig) -> Result<(), PipelineError> {
        let mut batcher = Batcher::new(config.batch);
        let mut dead_letters = config.dead_letter_path.clone().map(DeadLetterFile::new);
        let mut since_expiry = 0u64;
        let mut reading: BTreeSet<usize> = BTreeSet::new();
        loop {
            let wait = batcher.time_left().unwrap_or(Duration::from_millis(200));
            match rx.recv_timeout(wait) {
                Ok(Msg::Rows {
                    input,
                    batch,
                    seen,
                    bytes,
                    through,
                }) => {
                    self.arrived(input, through, &seen, &mut reading);
                    if let Some(full) = batcher.push(batch, bytes) {
                        since_expiry += self.evaluate_all(full)?;
                    }
                    if let Some(expired) = batcher.poll_expired() {
                        self.evaluate_all(expired)?;
                    }
                }
                Ok(Msg::Batch {
                    input,
                    batch,
                    seen,
                    through,
                }) => {
                    let full = (input, through, &seen, &batch);
                    since_expiry += self.full_chunk(full, &mut batcher, &mut reading)?;
                }
                Ok(Msg::DeadLetter {
                    input,
                    dead_letter: dl,
                    through,
                }) => {
                    if let Some(t) = self.tracked.get_mut(input) {
                        t.through = t.through.max(through);
                    }
                    tracing::debug!(origin = %dl.origin, position = %dl.position, reason = dl.reason, "Dead letter.");
                    *self
                        .summary
                        .dead_letters_by_reason
                        .entry(dl.reason.to_string())
                        .or_default() += 1;
                    if let Some(m) = &self.metrics {
                        m.dead_letter(dl.reason); // metrics (issue 8)
                    }
                    if let Some(f) = dead_letters.as_mut() {
                        f.write(&dl)?;
                    }
                }
                Ok(Msg::InputDone {
                    input,
                    format,
                    skipped,
                }) => {
                    self.progress.inputs_done.fetch_add(1, Ordering::Relaxed);
                    *self
                        .summary
                        .inputs_by_format
                        .entry(format.as_str().to_string())
                        .or_default() += 1;
                    if let Some(m) = &self.metrics {
                        m.input_read(format.as_str()); // metrics (issue 8)
                    }
                    if skipped {
                        self.summary.inputs_skipped += 1;
                    }
                    if let Some(t) = self.tracked.get_mut(input) {
                        t.complete = true;
                        t.ended = true;
                    }
                    reading.remove(&input);
                    self.hold(&reading);
                }
                Ok(Msg::InputStopped { input }) => {
                    if let Some(t) = self.tracked.get_mut(input) {
                        t.ended = true;
                    }
                    reading.remove(&input);
                    self.hold(&reading);
                }
                Ok(Msg::InputError { input, error }) => {
                    self.progress.inputs_done.fetch_add(1, Ordering::Relaxed);
                    if let Some(t) = self.tracked.get_mut(input) {
                        t.ended = true;
                    }
                    tracing::warn!(error = %error, "Input could not be read.");
                    self.summary.input_errors.push(error);
                    if let Some(m) = &self.metrics {
                        m.input_error(); // metrics (issue 8)
                    }
                    reading.remove(&input);
                    self.hold(&reading);
                }
                Err(RecvTimeoutError::Timeout) => {
                    self.poll_responses()?;
                    if let Some(l) = self.lake.as_mut() {
                        l.tick()?;
                    }
                    if let Some(expired) = batcher.poll_expired() {
                        self.evaluate_all(expired)?;
                    }
                }
                Err(RecvTimeoutError::Disconnected) => break,
            }
            if since_expiry >= 256 {
                // Keep dedup memory bounded on long runs: a day past any period.
                self.engine.expire(2 * 86_400_000_000);
                since_expiry = 0;
            }
            if let Some(state) = self.state
                && self.last_checkpoint.elapsed() >= state.every
            {
                self.evaluate_all(batcher.flush())?;
                if let Some(f) = dead_letters.as_mut() {
                    f.flush()?;
                }
                self.checkpoint(state)?;
            }
        }
        self.evaluate_all(batcher.flush())?;
        self.engine.hold_watermark(None);
        self.summary.stopped = self.progress.stop.load(Ordering::Relaxed);
        let flush = config.end_of_input == EndOfInput::Flush && !self.summary.stopped;
        if flush {
            // End of input: close every window and end every sequence wait.
            match self.engine.flush() {
                Ok(alerts) => self.send(&alerts)?,
                Err(e) => {
                    tracing::error!(error = %e, "Closing windows at the end of input failed.");
                    self.summary.rule_errors += 1;
                    if let Some(m) = &self.metrics {
                        m.rule_error(); // metrics (issue 8)
                    }
                }
            }
        }
        if let Some(f) = dead_letters.as_mut() {
            f.flush()?;
            if f.written() > 0 {
                self.summary.dead_letter_file = Some(f.path().to_path_buf());
            }
        }
        match self.state {
            Some(state) => self.checkpoint(state)?,
            None => {
                self.settle_responses()?;
                for s in self.sinks.iter_mut() {
                    s.flush()?;
                }
                if let Some(l) = self.lake.as_mut() {
                    l.close()?;
                }
            }
        }
        let stats = self.engine.stats();
        self.summary.batches = stats.batches;
        self.summary.matches = stats.matches.values().sum();
        self.summary.suppressed = stats.suppressed;
        if !flush {
            self.summary.open_state = self.engine.state_size();
        }
        self.summary.late_dropped = self.engine.late_dropped();
        self.summary.baselines = self.engine.baseline_stats().clone();
        self.feed_engine_state(); // metrics (issue 8)
        Ok(())
    }

    /// Notes a chunk of an input's events on arrival: how far the input is
    /// handed over, its front and stream (for the watermark hold) and the
    /// counts.
    /// A full chunk `(input, through, seen, batch)`, built by its reader:
    /// short chunks that arrived before it are evaluated first, as they
    /// would be in one batcher. Returns the batches evaluated.
    fn full_chunk(
        &mut self,
        (input, through, seen, batch): (usize, u64, &Seen, &RecordBatch),
        batcher: &mut Batcher,
        reading: &mut BTreeSet<usize>,
    ) -> Result<u64, PipelineError> {
        self.arrived(input, through, seen, reading);
        let evaluated = self.evaluate_all(batcher.flush())?;
        self.evaluate(batch)?;
        Ok(evaluated + 1)
    }

    /// Evaluates batches in order; returns how many.
    fn evaluate_all(&mut self, batches: Vec<RecordBatch>) -> Result<u64, PipelineError> {
        for batch in &batches {
            self.evaluate(batch)?;
        }
        Ok(batches.len() as u64)
    }

    fn arrived(&mut self, input: usize, through: u64, seen: &Seen, reading: &mut BTreeSet<usize>) {
        if let Some(t) = self.tracked.get_mut(input) {
            t.through = t.through.max(through);
            t.front = t.front.max(seen.newest);
            if let Some(first) = seen.first {
                let stream = first.as_str();
                t.stream = Some(stream);
                if let Some(n) = seen.newest {
                    let newest = self.streams.entry(stream).or_insert(n);
                    *newest = (*newest).max(n);
                }
            }
            reading.insert(input);
        }
        self.hold(reading);
        for (source, n) in [
            (Source::Cloudtrail, seen.cloudtrail),
            (Source::Session, seen.session),
        ] {
            if n > 0 {
                *self
                    .summary
                    .events_by_source
                    .entry(source.as_str().to_string())
                    .or_default() += n;
            }
            if let Some(m) = &self.metrics {
                m.add_events(source, n); // metrics (issue 8)
            }
        }
        self.progress
            .events
            .fetch_add(seen.count(), Ordering::Relaxed);
    }

    /// metrics (issue 8): the engine's gauges and cumulative counters.
    fn feed_engine_state(&self) {
        if let Some(m) = &self.metrics {
            let baselines = self.engine.baseline_stats();
            m.engine_state(&EngineState {
                principals_tracked: baselines.principals as u64,
                state_open: self.engine.state_size() as u64,
                late_rows_total: self.engine.late_dropped(),
                baseline_cap_refusals_total: baselines.cap_reached,
                matches_suppressed_total: self.engine.stats().suppressed,
            });
            m.rule_where_seconds(self.engine.where_seconds());
        }
    }

    /// Holds the watermark at the oldest front over streams: a stream's
    /// front is the oldest front of its inputs being read, or, when none is
    /// being read, the newest event time it has shown. So neither a file
    /// read ahead in parallel nor a session log covering a whole day makes
    /// the CloudTrail files of that day late.
    ///
    /// An input a reader has taken but sent nothing from yet (still being
    /// read or decompressed) has no front: until it shows one, the hold does
    /// not move forward, or a reader that ran on to a later file could make
    /// that input's events late. That makes what is late independent of how
    /// the reader threads happen to be scheduled.
    fn hold(&mut self, reading: &BTreeSet<usize>) {
        let started = self.dispatched.load(Ordering::Acquire);
        let unknown = self
            .tracked
            .iter()
            .take(started)
            .any(|t| !t.ended && t.front.is_none());
        let front = self
            .streams
            .iter()
            .map(|(stream, newest)| {
                reading
                    .iter()
                    .filter_map(|i| self.tracked.get(*i))
                    .filter(|t| t.stream == Some(*stream))
                    .filter_map(|t| t.front)
                    .min()
                    .unwrap_or(*newest)
            })
            .min();
        let front = if unknown {
            Some(front.unwrap_or(i64::MIN).min(self.held.unwrap_or(i64::MIN)))
        } else {
            front
        };
        self.held = front;
        self.engine.hold_watermark(front);
    }

    /// Writes a checkpoint at a consistent point: everything handed over has
    /// been evaluated (the caller flushed the batcher), alerts are delivered
    /// and the lake's open files are published before the state is saved.
    fn checkpoint(&mut self, state: &StateConfig) -> Result<(), PipelineError> {
        self.settle_responses()?;
        for s in self.sinks.iter_mut() {
            s.flush()?;
        }
        if let Some(l) = self.lake.as_mut() {
            l.close()?;
        }
        for t in &self.tracked {
            let Some(identity) = &t.identity else {
                continue;
            };
            if t.through == 0 && !t.complete {
                continue;
            }
            self.ledger.inputs.insert(
                t.name.clone(),
                InputMark {
                    identity: identity.clone(),
                    records: t.through,
                    complete: t.complete,
                },
            );
        }
        let engine = self.engine.save_state().map_err(CheckpointError::Encode)?;
        let cp = Checkpoint {
            written_by: format!("trailhound {}", env!("CARGO_PKG_VERSION")),
            written_at: trailhound_core::time::now_micros(),
            inputs: self.ledger.clone(),
            engine,
        };
        checkpoint::save(&state.dir, &cp)?;
        self.summary.checkpoints += 1;
        if let Some(m) = &self.metrics {
            m.checkpoint_written(); // metrics (issue 8)
        }
        self.last_checkpoint = Instant::now();
        Ok(())
    }

    fn evaluate(&mut self, batch: &RecordBatch) -> Result<(), PipelineError> {
        let started = Instant::now(); // metrics (issue 8)
        let result = self.engine.process(batch);
        if let Some(m) = &self.metrics {
            m.batch_evaluated(batch, started.elapsed()); // metrics (issue 8)
            self.feed_engine_state();
        }
        // The lake keeps every event, whether or not its rules ran cleanly.
        if let Some(l) = self.lake.as_mut() {
            l.record_batch(batch)?;
        }
        let alerts: Vec<Alert> = match result {
            Ok(a) => a,
            Err(e) => {
                tracing::error!(error = %e, "Rule evaluation failed on a batch.");
                self.summary.rule_errors += 1;
                if let Some(m) = &self.metrics {
                    m.rule_error(); // metrics (issue 8)
                }
                return Ok(());
            }
        };
        self.send(&alerts)?;
        self.poll_responses()
    }

    fn send(&mut self, alerts: &[Alert]) -> Result<(), PipelineError> {
        if let Some(l) = self.lake.as_mut() {
            l.record_alerts(alerts)?;
        }
        for alert in alerts {
            *self
                .summary
                .alerts_by_rule
                .entry(alert.rule_id.clone())
                .or_default() += 1;
            for s in self.sinks.iter_mut() {
                s.send(alert)?;
            }
        }
        self.progress
            .alerts
            .fetch_add(alerts.len() as u64, Ordering::Relaxed);
        if let Some(m) = &self.metrics {
            m.alerts_raised(alerts); // metrics (issue 8)
        }
        if let Some(r) = self.respond.as_mut() {
            r.alerts(alerts);
        }
        Ok(())
    }

    /// Takes what the responders decided since the last look.
    fn poll_responses(&mut self) -> Result<(), PipelineError> {
        let Some(r) = self.respond.as_mut() else {
            return Ok(());
        };
        let out = r.poll();
        self.record_responses(out)
    }

    /// Waits (bounded) for the responders to decide on every alert so far.
    fn settle_responses(&mut self) -> Result<(), PipelineError> {
        let Some(r) = self.respond.as_mut() else {
            return Ok(());
        };
        let out = r.settle(RESPONSE_SETTLE);
        self.record_responses(out)
    }

    /// Action records to the lake, the metrics and the summary; the
    /// responders' own alerts to the sinks.
    fn record_responses(&mut self, out: ResponseOutput) -> Result<(), PipelineError> {
        if !out.actions.is_empty() {
            if let Some(l) = self.lake.as_mut() {
                l.record_actions(&out.actions)?;
            }
            for a in &out.actions {
                *self
                    .summary
                    .actions
                    .entry(format!(
                        "{} {} {}",
                        a.kind,
                        a.mode.as_str(),
                        a.outcome.as_str()
                    ))
                    .or_default() += 1;
                if let Some(m) = &self.metrics {
                    m.action(&a.kind, a.outcome.as_str());
                }
            }
        }
        if !out.alerts.is_empty() {
            self.send(&out.alerts)?;
        }
        Ok(())
    }
}

/// How long a checkpoint or the end of a run waits for the responders.
const RESPONSE_SETTLE: Duration = Duration::from_secs(60);
