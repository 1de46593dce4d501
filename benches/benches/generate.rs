//! How fast the workload generator writes CloudTrail: prints records per
//! second for a 100,000-record organisation, gzip on and off.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use trailhound_ingest::generate::{GenerateConfig, generate};

fn generator(c: &mut Criterion) {
    let config = |gzip| GenerateConfig {
        principals: 250,
        events_per_principal_per_day: 400,
        scenarios: Vec::new(),
        sessions: false,
        gzip,
        ..GenerateConfig::default()
    };
    let records = generate(&config(false)).cloudtrail_records;
    let mut g = c.benchmark_group("generate");
    g.sample_size(10);
    g.throughput(Throughput::Elements(records));
    for gzip in [false, true] {
        let name = if gzip {
            "cloudtrail_gzip"
        } else {
            "cloudtrail_plain"
        };
        g.bench_function(name, |b| {
            b.iter(|| generate(&config(gzip)).cloudtrail_records)
        });
    }
    g.finish();
}

criterion_group!(benches, generator);
criterion_main!(benches);
