//! `trailhound ingest PATHS --kafka BROKERS`: every input parsed by the same
//! code as the embedded pipeline, its events sent to the event topic keyed
//! by principal, and the input recorded as done only once the broker has
//! acknowledged every one of its records.
//!
//! Inputs are sent one after another in the order given (the caller lists
//! folders in time order), so each partition receives a principal's events
//! in the order the embedded pipeline would read them. With a state folder
//! the ledger of done inputs (`<state>/checkpoint.bin`, the embedded
//! pipeline's checkpoint format with an empty engine) is written after each
//! input; a later run skips those inputs. An input that fails part-way is
//! not recorded and is sent again whole by the next run (at least once).
//!
//! Dead letters go to the local dead-letter file and to the dead-letter
//! topic (keyed by their origin), both before the input is recorded.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use trailhound_bus::{
    BusConfig, BusError, EventProducer, InputAck, InputSender, RecordProducer, TopicKind,
    ensure_topics,
};
use trailhound_core::{DeadLetter, Event, Position};
use trailhound_detector::checkpoint::{
    self, Checkpoint, InputIdentity, InputLedger, InputMark, Resume,
};
use trailhound_ingest::{Emit, Limits, ParseContext, parse_file, parse_input};
use trailhound_sinks::{DeadLetterFile, Metrics};

use crate::error::KafkaError;
use crate::outage::{OutageRetry, Retry};

/// One input to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IngestInput {
    /// A file.
    Path(PathBuf),
    /// Standard input (never recorded in the ledger).
    Stdin,
}

impl IngestInput {
    fn name(&self) -> String {
        match self {
            IngestInput::Path(p) => p.display().to_string(),
            IngestInput::Stdin => "-".into(),
        }
    }

    fn identity(&self) -> Option<InputIdentity> {
        let IngestInput::Path(p) = self else {
            return None;
        };
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
}

/// How an ingest run behaves.
#[derive(Debug, Clone, Default)]
pub struct IngestOptions {
    /// Folder of the ledger of done inputs; `None` keeps none.
    pub state: Option<PathBuf>,
    /// Local dead-letter file; `None` sends dead letters to the topic only.
    pub dead_letter_path: Option<PathBuf>,
    /// Parser limits.
    pub limits: Limits,
    /// Set to stop after the input being sent.
    pub stop: Option<Arc<AtomicBool>>,
    /// Prometheus metrics: dead letters, records not yet acknowledged
    /// (`trailhound_bus_pending_records{role="ingest"}`), producers replaced
    /// after an outage.
    pub metrics: Option<Metrics>,
}

/// What an ingest run did.
#[derive(Debug, Clone, Default)]
pub struct IngestSummary {
    /// Inputs whose records the broker acknowledged in this run.
    pub inputs_sent: u64,
    /// Inputs skipped because the ledger says they were sent before.
    pub inputs_already_sent: u64,
    /// Events acknowledged.
    pub events: u64,
    /// Dead letters by reason.
    pub dead_letters_by_reason: BTreeMap<String, u64>,
    /// Inputs that could not be opened or read.
    pub input_errors: Vec<String>,
    /// True when asked to stop before the end.
    pub stopped: bool,
    /// Broker outages ridden out (inputs sent again after a backoff).
    pub outages: u64,
    /// Wall time.
    pub elapsed: Duration,
}

impl IngestSummary {
    /// Events per second over the run.
    pub fn events_per_second(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 {
            self.events as f64 / secs
        } else {
            0.0
        }
    }
}

/// The parser's output going straight to the producer.
pub(crate) struct SendEmit<'p> {
    pub(crate) sender: InputSender<'p>,
    pub(crate) dead_letters: Vec<DeadLetter>,
    pub(crate) error: Option<BusError>,
}

impl Emit for SendEmit<'_> {
    fn event(&mut self, event: &Event) {
        if self.error.is_some() {
            return;
        }
        if let Err(e) = self.sender.send(event) {
            self.error = Some(e);
        }
    }

    fn dead_letter(&mut self, dead_letter: DeadLetter) {
        self.dead_letters.push(dead_letter);
    }
}

/// Parses `bytes` as the input `ctx` names and sends its events; returns
/// once the broker acknowledged all of them, with the parsers' dead letters.
pub(crate) fn send_parsed(
    producer: &EventProducer,
    ctx: &ParseContext,
    bytes: &[u8],
) -> Result<(InputAck, Vec<DeadLetter>), KafkaError> {
    let mut emit = SendEmit {
        sender: producer.begin_input(ctx.origin.clone()),
        dead_letters: Vec::new(),
        error: None,
    };
    parse_input(bytes, ctx, &mut emit);
    let SendEmit {
        sender,
        dead_letters,
        error,
    } = emit;
    if let Some(e) = error {
        return Err(e.into());
    }
    let ack = sender.finish().map_err(KafkaError::from)?;
    Ok((ack, dead_letters))
}

/// The producers every source sends with: events to the event topic,
/// dead letters to theirs; the topics are created first unless told not to.
pub(crate) fn open_producers(
    bus: &BusConfig,
    create_topics: bool,
) -> Result<(EventProducer, RecordProducer), KafkaError> {
    if create_topics {
        ensure_topics(bus, Duration::from_secs(30))?;
    }
    Ok((EventProducer::new(bus)?, RecordProducer::new(bus)?))
}

/// Sends every input to the event topic (see the module page).
pub fn ingest(
    inputs: Vec<IngestInput>,
    bus: &BusConfig,
    options: &IngestOptions,
) -> Result<IngestSummary, KafkaError> {
    let started = Instant::now();
    let (mut producer, mut records) = open_producers(bus, true)?;
    let watch = |producer: &EventProducer, records: &RecordProducer| {
        if let Some(m) = &options.metrics {
            m.watch_pending("ingest", vec![producer.pending(), records.pending()]);
        }
    };
    watch(&producer, &records);
    let mut retry = OutageRetry::new(bus, options.stop.clone());
    let mut ledger = match &options.state {
        Some(dir) => checkpoint::load(dir)?.map(|c| c.inputs).unwrap_or_default(),
        None => InputLedger::default(),
    };
    let mut dead_file = options.dead_letter_path.clone().map(DeadLetterFile::new);
    let mut summary = IngestSummary::default();
    for input in inputs {
        if options
            .stop
            .as_ref()
            .is_some_and(|s| s.load(Ordering::Relaxed))
        {
            summary.stopped = true;
            break;
        }
        let name = input.name();
        let identity = options.state.as_ref().and(input.identity());
        if let Some(id) = &identity
            && ledger.resume(&name, id) == Resume::Done
        {
            summary.inputs_already_sent += 1;
            continue;
        }
        let mut ctx = ParseContext::new(name.clone());
        ctx.limits = options.limits;
        // Standard input is read once: a retry sends the same bytes again.
        let stdin = match &input {
            IngestInput::Stdin => match read_stdin(options.limits) {
                Ok(bytes) => Some(bytes),
                Err(e) => {
                    tracing::warn!(input = %name, error = %e, "input could not be read");
                    summary.input_errors.push(e);
                    continue;
                }
            },
            IngestInput::Path(_) => None,
        };
        // Through a broker outage the whole input is sent again after a
        // backoff (at least once: records acknowledged before the failure
        // are sent twice, with the same event ids).
        let outcome = loop {
            let sent = match (&input, &stdin) {
                (IngestInput::Path(path), _) => send_file(&producer, &ctx, path),
                (IngestInput::Stdin, Some(bytes)) => send_stdin(&producer, &ctx, bytes),
                (IngestInput::Stdin, None) => {
                    Err(ReadOrSend::Read("standard input was not read".into()))
                }
            }
            .and_then(|(ack, dead_letters)| {
                send_dead_letters(
                    &dead_letters,
                    &records,
                    dead_file.as_mut(),
                    &mut summary.dead_letters_by_reason,
                )?;
                Ok((ack, dead_letters))
            });
            match sent {
                Ok(sent) => {
                    retry.succeeded();
                    break Some(sent);
                }
                Err(ReadOrSend::Read(e)) => {
                    tracing::warn!(input = %name, error = %e, "input could not be read");
                    summary.input_errors.push(e);
                    break None;
                }
                Err(ReadOrSend::Send(e)) => match retry.after("sending an input", e)? {
                    // librdkafka may have declared the producers unusable
                    // (a fatal idempotence error after a broker restart):
                    // new ones start clean.
                    Retry::Again => {
                        (producer, records) = open_producers(bus, false)?;
                        watch(&producer, &records);
                        if let Some(m) = &options.metrics {
                            m.bus_restart("ingest");
                        }
                    }
                    Retry::Stopped => {
                        summary.stopped = true;
                        break None;
                    }
                },
            }
        };
        let Some((ack, dead_letters)) = outcome else {
            if summary.stopped {
                break;
            }
            continue;
        };
        if let Some(m) = &options.metrics {
            for dl in &dead_letters {
                m.dead_letter(dl.reason);
            }
        }
        summary.events += ack.records;
        summary.inputs_sent += 1;
        tracing::debug!(input = %name, records = ack.records, elapsed = ?ack.elapsed, "input acknowledged by the broker");
        if let (Some(dir), Some(identity)) = (&options.state, identity) {
            ledger.inputs.insert(
                name,
                InputMark {
                    identity,
                    records: ack.records + dead_letters.len() as u64,
                    complete: true,
                },
            );
            let cp = Checkpoint {
                written_by: format!("trailhound {}", env!("CARGO_PKG_VERSION")),
                written_at: trailhound_core::time::now_micros(),
                inputs: ledger.clone(),
                engine: Vec::new(),
            };
            checkpoint::save(dir, &cp)?;
        }
    }
    summary.outages = retry.outages();
    summary.elapsed = started.elapsed();
    Ok(summary)
}

/// Writes dead letters to the local file (when there is one) and sends them
/// to the dead-letter topic keyed by origin, counting them by reason.
pub(crate) fn send_dead_letters(
    dead_letters: &[DeadLetter],
    records: &RecordProducer,
    file: Option<&mut DeadLetterFile>,
    by_reason: &mut BTreeMap<String, u64>,
) -> Result<(), KafkaError> {
    if dead_letters.is_empty() {
        return Ok(());
    }
    if let Some(f) = file {
        for dl in dead_letters {
            f.write(dl)?;
        }
        f.flush()?;
    }
    records.send_json(
        TopicKind::DeadLetters,
        dead_letters.iter().map(|d| (d.origin.as_str(), d)),
    )?;
    for dl in dead_letters {
        *by_reason.entry(dl.reason.to_string()).or_default() += 1;
    }
    Ok(())
}

/// Reading an input failed (reported, the run goes on) or sending it did
/// (the run stops: nothing after it could be acknowledged either).
enum ReadOrSend {
    Read(String),
    Send(KafkaError),
}

impl From<KafkaError> for ReadOrSend {
    fn from(e: KafkaError) -> Self {
        Self::Send(e)
    }
}

/// The dead letter of an input over the input limit (nothing of it parsed).
fn input_too_large(ctx: &ParseContext) -> DeadLetter {
    ctx.dead_letter(
        Position::Whole,
        "input_too_large",
        format!(
            "input is over the {}-byte limit",
            ctx.limits.max_input_bytes
        ),
        b"",
    )
}

/// Parses a file as [`parse_file`] reads it (a large line-oriented file in
/// pieces, so memory stays flat) and sends its events; returns once the
/// broker acknowledged all of them, with the parsers' dead letters (or the
/// one saying the file was over the input limit).
fn send_file(
    producer: &EventProducer,
    ctx: &ParseContext,
    path: &Path,
) -> Result<(InputAck, Vec<DeadLetter>), ReadOrSend> {
    let mut emit = SendEmit {
        sender: producer.begin_input(ctx.origin.clone()),
        dead_letters: Vec::new(),
        error: None,
    };
    let parsed = parse_file(path, ctx, &mut emit).map_err(|e| ReadOrSend::Read(e.to_string()))?;
    let SendEmit {
        sender,
        mut dead_letters,
        error,
    } = emit;
    if let Some(e) = error {
        return Err(KafkaError::from(e).into());
    }
    if parsed.is_none() {
        dead_letters.push(input_too_large(ctx));
    }
    let ack = sender.finish().map_err(KafkaError::from)?;
    Ok((ack, dead_letters))
}

/// Parses standard input's bytes and sends its events, or the dead letter
/// saying it was over the input limit.
fn send_stdin(
    producer: &EventProducer,
    ctx: &ParseContext,
    bytes: &[u8],
) -> Result<(InputAck, Vec<DeadLetter>), ReadOrSend> {
    if bytes.len() as u64 > ctx.limits.max_input_bytes {
        let ack = producer
            .begin_input(ctx.origin.clone())
            .finish()
            .map_err(KafkaError::from)?;
        return Ok((ack, vec![input_too_large(ctx)]));
    }
    Ok(send_parsed(producer, ctx, bytes)?)
}

fn read_stdin(limits: Limits) -> Result<Vec<u8>, String> {
    let mut bytes = Vec::new();
    std::io::stdin()
        .lock()
        .take(limits.max_input_bytes.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read standard input: {e}"))?;
    Ok(bytes)
}
