//! The embedded pipeline: reader threads parse inputs and feed a bounded
//! in-process channel; one engine thread gathers events into batches, runs
//! the rules and hands alerts to the sinks. Same engine, same rules, same
//! outputs as the Kafka deployment, with no server.
//!
//! The channel is bounded, so a slow engine slows the readers down
//! (backpressure) instead of buffering without end.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use trailhound_core::{Alert, DeadLetter, Event, Position};
use trailhound_ingest::{Emit, Format, Limits, ParseContext, parse_input, read_file};
use trailhound_sinks::{AlertSink, DeadLetterFile, LakeHook, SinkError};

use crate::batcher::{BatchPolicy, Batcher};
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
}

/// How the pipeline runs. Separate from the running pipeline so that it can
/// come from a config file.
#[derive(Debug, Clone)]
pub struct PipelineConfig {
    /// When batches close.
    pub batch: BatchPolicy,
    /// Reader threads parsing inputs in parallel.
    pub readers: usize,
    /// Chunks of events the channel holds before readers wait.
    pub channel_chunks: usize,
    /// Events per chunk sent through the channel.
    pub chunk_events: usize,
    /// Parser limits.
    pub limits: Limits,
    /// Where dead letters go; `None` keeps only the counts.
    pub dead_letter_path: Option<PathBuf>,
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
            chunk_events: 256,
            limits: Limits::default(),
            dead_letter_path: Some(PathBuf::from("trailhound.deadletter.jsonl")),
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
}

enum Msg {
    Events(Vec<Event>),
    DeadLetter(DeadLetter),
    InputDone { format: Format, skipped: bool },
    InputError(String),
}

struct ChannelEmit<'a> {
    tx: &'a SyncSender<Msg>,
    chunk: Vec<Event>,
    chunk_size: usize,
}

impl ChannelEmit<'_> {
    fn send_chunk(&mut self) {
        if !self.chunk.is_empty() {
            let chunk = std::mem::replace(&mut self.chunk, Vec::with_capacity(self.chunk_size));
            // The receiver only goes away when the run is stopping.
            let _ = self.tx.send(Msg::Events(chunk));
        }
    }
}

impl Emit for ChannelEmit<'_> {
    fn event(&mut self, event: Event) {
        self.chunk.push(event);
        if self.chunk.len() >= self.chunk_size {
            self.send_chunk();
        }
    }
    fn dead_letter(&mut self, dead_letter: DeadLetter) {
        let _ = self.tx.send(Msg::DeadLetter(dead_letter));
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

/// [`run`], also handing every batch (after its rules ran) and every alert to
/// `lake` (the audit lake), which is closed at the end of the run.
pub fn run_with_lake(
    inputs: Vec<Input>,
    engine: &mut Engine,
    sinks: &mut [Box<dyn AlertSink>],
    config: &PipelineConfig,
    progress: Option<Arc<Progress>>,
    mut lake: Option<&mut dyn LakeHook>,
) -> Result<Summary, PipelineError> {
    let started = Instant::now();
    let progress = progress.unwrap_or_default();
    progress
        .inputs_total
        .store(inputs.len() as u64, Ordering::Relaxed);
    let (tx, rx) = sync_channel::<Msg>(config.channel_chunks.max(1));
    let readers = config.readers.clamp(1, inputs.len().max(1));
    let queue = Mutex::new(
        inputs
            .into_iter()
            .collect::<std::collections::VecDeque<_>>(),
    );

    std::thread::scope(|scope| {
        for _ in 0..readers {
            let tx = tx.clone();
            let queue = &queue;
            let limits = config.limits;
            let chunk_size = config.chunk_events.max(1);
            scope.spawn(move || {
                loop {
                    let input = match queue.lock() {
                        Ok(mut q) => q.pop_front(),
                        Err(_) => None,
                    };
                    let Some(input) = input else { break };
                    read_one(input, limits, chunk_size, &tx);
                }
            });
        }
        drop(tx);
        consume(rx, engine, sinks, &mut lake, config, &progress, started)
    })
}

fn read_one(input: Input, limits: Limits, chunk_size: usize, tx: &SyncSender<Msg>) {
    let name = input.name();
    let mut ctx = ParseContext::new(name.clone());
    ctx.limits = limits;
    let bytes = match input {
        Input::Bytes { bytes, .. } => bytes,
        Input::Path(p) => match read_file(&p, &ctx) {
            Ok(b) => b,
            Err(e) => {
                let _ = tx.send(Msg::InputError(e.to_string()));
                return;
            }
        },
        Input::Stdin => {
            let mut b = Vec::new();
            let stdin = std::io::stdin();
            let mut lock = stdin.lock().take(limits.max_input_bytes.saturating_add(1));
            if let Err(e) = lock.read_to_end(&mut b) {
                let _ = tx.send(Msg::InputError(format!("cannot read standard input: {e}")));
                return;
            }
            b
        }
    };
    let mut emit = ChannelEmit {
        tx,
        chunk: Vec::with_capacity(chunk_size),
        chunk_size,
    };
    if bytes.len() as u64 > limits.max_input_bytes {
        emit.dead_letter(ctx.dead_letter(
            Position::Whole,
            "input_too_large",
            format!("input is over the {}-byte limit", limits.max_input_bytes),
            b"",
        ));
        let _ = tx.send(Msg::InputDone {
            format: Format::Unknown,
            skipped: false,
        });
        return;
    }
    let summary = parse_input(&bytes, &ctx, &mut emit);
    emit.send_chunk();
    let _ = tx.send(Msg::InputDone {
        format: summary.format,
        skipped: summary.skipped,
    });
}

fn consume(
    rx: Receiver<Msg>,
    engine: &mut Engine,
    sinks: &mut [Box<dyn AlertSink>],
    lake: &mut Option<&mut dyn LakeHook>,
    config: &PipelineConfig,
    progress: &Progress,
    started: Instant,
) -> Result<Summary, PipelineError> {
    let mut summary = Summary::default();
    let mut batcher = Batcher::new(config.batch);
    let mut dead_letters = config.dead_letter_path.clone().map(DeadLetterFile::new);
    let mut since_expiry = 0u64;
    loop {
        let wait = batcher.time_left().unwrap_or(Duration::from_millis(200));
        match rx.recv_timeout(wait) {
            Ok(Msg::Events(events)) => {
                for e in &events {
                    *summary
                        .events_by_source
                        .entry(e.source.as_str().to_string())
                        .or_default() += 1;
                    if let Some(batch) = batcher.push(e) {
                        evaluate(&batch, engine, sinks, lake, &mut summary, progress)?;
                        since_expiry += 1;
                    }
                }
                progress
                    .events
                    .fetch_add(events.len() as u64, Ordering::Relaxed);
                if let Some(batch) = batcher.poll_expired() {
                    evaluate(&batch, engine, sinks, lake, &mut summary, progress)?;
                }
            }
            Ok(Msg::DeadLetter(dl)) => {
                tracing::debug!(origin = %dl.origin, position = %dl.position, reason = dl.reason, "Dead letter.");
                *summary
                    .dead_letters_by_reason
                    .entry(dl.reason.to_string())
                    .or_default() += 1;
                if let Some(f) = dead_letters.as_mut() {
                    f.write(&dl)?;
                }
            }
            Ok(Msg::InputDone { format, skipped }) => {
                progress.inputs_done.fetch_add(1, Ordering::Relaxed);
                *summary
                    .inputs_by_format
                    .entry(format.as_str().to_string())
                    .or_default() += 1;
                if skipped {
                    summary.inputs_skipped += 1;
                }
            }
            Ok(Msg::InputError(e)) => {
                progress.inputs_done.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(error = %e, "Input could not be read.");
                summary.input_errors.push(e);
            }
            Err(RecvTimeoutError::Timeout) => {
                if let Some(l) = lake.as_mut() {
                    l.tick()?;
                }
                if let Some(batch) = batcher.poll_expired() {
                    evaluate(&batch, engine, sinks, lake, &mut summary, progress)?;
                }
            }
            Err(RecvTimeoutError::Disconnected) => break,
        }
        if since_expiry >= 256 {
            // Keep dedup memory bounded on long runs: a day past any period.
            engine.expire(2 * 86_400_000_000);
            since_expiry = 0;
        }
    }
    if let Some(batch) = batcher.flush() {
        evaluate(&batch, engine, sinks, lake, &mut summary, progress)?;
    }
    // End of input: close every window and end every sequence wait.
    match engine.flush() {
        Ok(alerts) => send(&alerts, sinks, lake, &mut summary, progress)?,
        Err(e) => {
            tracing::error!(error = %e, "Closing windows at the end of input failed.");
            summary.rule_errors += 1;
        }
    }
    for s in sinks.iter_mut() {
        s.flush()?;
    }
    if let Some(l) = lake.as_mut() {
        l.close()?;
    }
    if let Some(f) = dead_letters.as_mut() {
        f.flush()?;
        if f.written() > 0 {
            summary.dead_letter_file = Some(f.path().to_path_buf());
        }
    }
    summary.batches = engine.stats().batches;
    summary.matches = engine.stats().matches.values().sum();
    summary.suppressed = engine.stats().suppressed;
    summary.elapsed = started.elapsed();
    Ok(summary)
}

fn evaluate(
    batch: &arrow::array::RecordBatch,
    engine: &mut Engine,
    sinks: &mut [Box<dyn AlertSink>],
    lake: &mut Option<&mut dyn LakeHook>,
    summary: &mut Summary,
    progress: &Progress,
) -> Result<(), PipelineError> {
    let result = engine.process(batch);
    // The lake keeps every event, whether or not its rules ran cleanly.
    if let Some(l) = lake.as_mut() {
        l.record_batch(batch)?;
    }
    let alerts: Vec<Alert> = match result {
        Ok(a) => a,
        Err(e) => {
            tracing::error!(error = %e, "Rule evaluation failed on a batch.");
            summary.rule_errors += 1;
            return Ok(());
        }
    };
    send(&alerts, sinks, lake, summary, progress)
}

fn send(
    alerts: &[Alert],
    sinks: &mut [Box<dyn AlertSink>],
    lake: &mut Option<&mut dyn LakeHook>,
    summary: &mut Summary,
    progress: &Progress,
) -> Result<(), PipelineError> {
    if let Some(l) = lake.as_mut() {
        l.record_alerts(alerts)?;
    }
    for alert in alerts {
        *summary
            .alerts_by_rule
            .entry(alert.rule_id.clone())
            .or_default() += 1;
        for s in sinks.iter_mut() {
            s.send(alert)?;
        }
    }
    progress
        .alerts
        .fetch_add(alerts.len() as u64, Ordering::Relaxed);
    Ok(())
}
