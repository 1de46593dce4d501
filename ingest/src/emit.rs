//! What a parser produces: events, dead letters, and the context it parses in.

use trailhound_core::Event;
pub use trailhound_core::deadletter::{DeadLetter, Position};

/// Receives what a parser produces. Parsers never stop on a bad record: they
/// emit a dead letter and go on with the next one.
pub trait Emit {
    /// One normalised event. Borrowed: a receiver that keeps events copies
    /// what it keeps, so that a parser can hand over an event it goes on
    /// reusing, and the engine's reader appends it straight to an Arrow
    /// batch.
    fn event(&mut self, event: &Event);
    /// One record that could not be parsed.
    fn dead_letter(&mut self, dead_letter: DeadLetter);
}

/// An [`Emit`] that can also take what pieces of its input, parsed on other
/// threads, produced: one large file is then parsed by several threads and
/// still comes out in order ([`crate::parse_file_in_parallel`]).
pub trait Gather: Emit {
    /// What one thread produces from one piece. Reused piece after piece:
    /// [`Gather::gather`] leaves it empty.
    type Part: Part;
    /// A new, empty part.
    fn part(&self) -> Self::Part;
    /// Takes a part's output, the next piece's in the input's order (the
    /// part closed by [`Part::close`]), and leaves the part empty.
    fn gather(&mut self, part: &mut Self::Part);
}

/// What one thread makes of one piece of a large input, for a [`Gather`].
pub trait Part: Emit + Send {
    /// The piece is parsed: called on the thread that parsed it, before the
    /// part goes back to be gathered. Work that can be done here rather
    /// than on the one gathering thread (finishing the rows being built)
    /// belongs here.
    fn close(&mut self) {}
}

/// Collects everything in memory; handy in tests and for small inputs.
#[derive(Debug, Default)]
pub struct Collect {
    /// Events in input order.
    pub events: Vec<Event>,
    /// Dead letters in input order.
    pub dead_letters: Vec<DeadLetter>,
}

impl Gather for Collect {
    type Part = Collect;
    fn part(&self) -> Collect {
        Collect::default()
    }
    fn gather(&mut self, part: &mut Collect) {
        self.events.append(&mut part.events);
        self.dead_letters.append(&mut part.dead_letters);
    }
}

impl Part for Collect {}

impl Emit for Collect {
    fn event(&mut self, event: &Event) {
        self.events.push(event.clone());
    }
    fn dead_letter(&mut self, dead_letter: DeadLetter) {
        self.dead_letters.push(dead_letter);
    }
}

/// Size limits that keep hostile or broken input from exhausting memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest single record (one JSON object or line), in bytes.
    pub max_record_bytes: usize,
    /// Largest input after decompression, in bytes.
    pub max_input_bytes: u64,
    /// Largest decompressed-to-compressed ratio accepted (gzip bombs).
    pub max_decompression_ratio: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_record_bytes: 1024 * 1024,
            max_input_bytes: 2 * 1024 * 1024 * 1024,
            max_decompression_ratio: 200,
        }
    }
}

/// What every parser is given besides the bytes.
#[derive(Debug, Clone)]
pub struct ParseContext {
    /// The input's name, copied into dead letters.
    pub origin: String,
    /// Stamped on every event as `ingest_time` (microseconds UTC).
    pub ingest_time: i64,
    /// Size limits.
    pub limits: Limits,
}

impl ParseContext {
    /// A context for `origin`, stamped with the current time and default limits.
    pub fn new(origin: impl Into<String>) -> Self {
        Self {
            origin: origin.into(),
            ingest_time: trailhound_core::time::now_micros(),
            limits: Limits::default(),
        }
    }

    /// A dead letter from this input.
    pub fn dead_letter(
        &self,
        position: Position,
        reason: &'static str,
        detail: impl Into<String>,
        raw: &[u8],
    ) -> DeadLetter {
        DeadLetter::new(&self.origin, position, reason, detail, raw)
    }
}
