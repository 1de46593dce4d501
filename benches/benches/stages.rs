//! Per-stage throughput: parse CloudTrail JSON, build Arrow batches, evaluate
//! the built-in pack, write the events to the Parquet lake. Prints figures;
//! asserts nothing.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use trailhound_core::EventBatchBuilder;
use trailhound_detector::Engine;
use trailhound_ingest::{Collect, ParseContext};
use trailhound_rules::RuleSet;
use trailhound_sinks::lake::{LakeConfig, LakeWriter};

fn stages(c: &mut Criterion) {
    let w = trailhound_benches::workload(50, 400);
    let n = w.events.len() as u64;
    eprintln!(
        "workload: {n} CloudTrail records, {} bytes of JSON ({} bytes per record on average)",
        w.cloudtrail_bytes(),
        w.cloudtrail_bytes() as u64 / n.max(1)
    );

    let mut g = c.benchmark_group("stages");
    g.sample_size(10);
    g.throughput(Throughput::Elements(n));
    g.bench_function("parse_cloudtrail", |b| {
        let ctx = ParseContext::new("bench");
        b.iter(|| {
            let mut out = Collect::default();
            for f in &w.cloudtrail_files {
                trailhound_ingest::cloudtrail::parse(f, &ctx, &mut out);
            }
            out.events.len()
        })
    });
    g.bench_function("events_to_arrow", |b| {
        let mut builder = EventBatchBuilder::new();
        b.iter(|| {
            let mut rows = 0;
            for chunk in w.events.chunks(1024) {
                for e in chunk {
                    builder.append(e);
                }
                rows += builder.finish().num_rows();
            }
            rows
        })
    });
    let batches: Vec<_> = w
        .events
        .chunks(1024)
        .map(trailhound_core::events_to_batch)
        .collect();
    let rules = match RuleSet::builtin() {
        Ok(r) => r,
        Err(e) => panic!("{e}"),
    };
    eprintln!("built-in pack: {} rules", rules.len());
    let mut engine = Engine::new(rules);
    g.bench_function("evaluate_builtin_pack", |b| {
        b.iter(|| {
            let mut alerts = 0;
            for batch in &batches {
                alerts += engine.process(batch).map(|a| a.len()).unwrap_or(0);
            }
            alerts
        })
    });
    // Lake write: every batch into a fresh lake (zstd Parquet, partitioned by
    // date and hour), published on close, as `detect --lake` does.
    let lake_dir = match tempfile::tempdir() {
        Ok(d) => d,
        Err(e) => panic!("temporary folder: {e}"),
    };
    let mut round = 0u64;
    g.bench_function("lake_write_events", |b| {
        b.iter(|| {
            round += 1;
            let root = lake_dir.path().join(round.to_string());
            let mut writer = match LakeWriter::open(LakeConfig::new(&root)) {
                Ok(w) => w,
                Err(e) => panic!("{e}"),
            };
            for batch in &batches {
                if let Err(e) = writer.write_events(batch) {
                    panic!("{e}");
                }
            }
            if let Err(e) = writer.close() {
                panic!("{e}");
            }
            let files = writer.stats().files;
            let _ = std::fs::remove_dir_all(&root);
            files
        })
    });
    g.finish();
}

criterion_group!(benches, stages);
criterion_main!(benches);
