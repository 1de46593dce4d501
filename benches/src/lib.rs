//! # trailhound-benches
//!
//! Benchmarks for every stage of trailhound: parsing, normalising to Arrow,
//! rule evaluation, baseline update, lake write. `cargo bench -p
//! trailhound-benches` runs the criterion benchmarks in `benches/`; they print
//! figures and assert nothing. Tests never time anything. The end-to-end
//! comparison with DuckDB and the parse-only floor is `scripts/bench`
//! (BENCHMARKS.md).
//!
//! The one design decision to know: every benchmark runs on the workload
//! generator's output (realistic record sizes and event-source mix), never on
//! hand-picked records, so figures compare across stages and over time.

use trailhound_core::Event;
use trailhound_ingest::generate::{GenerateConfig, generate};
use trailhound_ingest::{Collect, Format, ParseContext, input::decompress, sniff};

/// A generated workload: the raw (decompressed) CloudTrail files and their parsed events.
pub struct Workload {
    /// Decompressed CloudTrail files, as they would be read from S3.
    pub cloudtrail_files: Vec<Vec<u8>>,
    /// Every event, parsed.
    pub events: Vec<Event>,
}

impl Workload {
    /// Total bytes of CloudTrail JSON.
    pub fn cloudtrail_bytes(&self) -> usize {
        self.cloudtrail_files.iter().map(Vec::len).sum()
    }
}

/// Generates about `principals * per_day` CloudTrail records (no attacks, no sessions).
pub fn workload(principals: usize, per_day: u32) -> Workload {
    let config = GenerateConfig {
        principals,
        events_per_principal_per_day: per_day,
        scenarios: Vec::new(),
        sessions: false,
        gzip: false,
        ..GenerateConfig::default()
    };
    let generated = generate(&config);
    let mut files = Vec::new();
    let mut out = Collect::default();
    for f in generated.files {
        let ctx = ParseContext::new(f.path.clone());
        let bytes = decompress(&f.bytes, &ctx, &mut out).into_owned();
        if sniff(&f.path, &bytes) == Format::CloudTrail {
            trailhound_ingest::cloudtrail::parse(&bytes, &ctx, &mut out);
            files.push(bytes);
        }
    }
    Workload {
        cloudtrail_files: files,
        events: out.events,
    }
}
