//! Rule evaluation cost on 1,024-row batches: the whole built-in pack, and
//! how the cost grows as rules are added. Added rules test event names, so
//! the engine's prefilter skips them on batches without those names and runs
//! them only on the rows that have them elsewhere. Prints figures; asserts
//! nothing.

use std::time::Instant;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use trailhound_detector::Engine;
use trailhound_rules::{Compiler, RuleSet, RuleSpec};

fn extra_rules(n: usize, name: &str) -> Vec<trailhound_rules::CompiledRule> {
    let compiler = match Compiler::new() {
        Ok(c) => c,
        Err(e) => panic!("{e}"),
    };
    (0..n)
        .map(|i| {
            let yaml = format!(
                "id: extra-{name}-{i}\ntitle: extra\nseverity: low\nwhere: |\n  event_name = '{name}' AND json_get_str(request, 'userName') = 'user-{i}'\n"
            );
            let spec: RuleSpec = match serde_yaml::from_str(&yaml) {
                Ok(s) => s,
                Err(e) => panic!("{e}"),
            };
            match compiler.compile(spec, None) {
                Ok(r) => r,
                Err(e) => panic!("{e}"),
            }
        })
        .collect()
}

fn engine_with(extra: Vec<trailhound_rules::CompiledRule>) -> Engine {
    let pack = match RuleSet::builtin() {
        Ok(r) => r,
        Err(e) => panic!("{e}"),
    };
    let mut rules: Vec<_> = pack.rules().to_vec();
    rules.extend(extra);
    Engine::new(RuleSet::from_rules(rules))
}

fn rules(c: &mut Criterion) {
    let w = trailhound_benches::workload(50, 400);
    let batches: Vec<_> = w
        .events
        .chunks(1024)
        .map(trailhound_core::events_to_batch)
        .collect();
    eprintln!(
        "workload: {} events in {} batches of up to 1,024 rows",
        w.events.len(),
        batches.len()
    );
    let mut g = c.benchmark_group("rules");
    g.sample_size(10);
    g.throughput(Throughput::Elements(batches.len() as u64));
    // `CreateUser` is rare in the workload; `GetObject` is frequent; `NoSuchCall` never occurs.
    for (label, name) in [
        ("absent", "NoSuchCall"),
        ("rare", "CreateUser"),
        ("frequent", "GetObject"),
    ] {
        for n in [0usize, 100, 400] {
            if n == 0 && label != "absent" {
                continue;
            }
            let mut engine = engine_with(extra_rules(n, name));
            let rule_count = engine.rules().len();
            // A plain figure too, outside criterion's statistics.
            let started = Instant::now();
            for b in &batches {
                let _ = engine.process(b);
            }
            let per_batch = started.elapsed().as_secs_f64() * 1e6 / batches.len() as f64;
            eprintln!(
                "{rule_count:>4} rules (+{n} on {label} event name {name}): {per_batch:>9.1} µs per 1,024-row batch"
            );
            g.bench_with_input(
                BenchmarkId::new(format!("pack_plus_{label}"), n),
                &n,
                |b, _| {
                    b.iter(|| {
                        let mut alerts = 0;
                        for batch in &batches {
                            alerts += engine.process(batch).map(|a| a.len()).unwrap_or(0);
                        }
                        alerts
                    })
                },
            );
        }
    }
    g.finish();
}

criterion_group!(benches, rules);
criterion_main!(benches);
