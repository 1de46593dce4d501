//! Baseline state at scale: the pack's baseline rules fed a million distinct
//! principals (two in three IAM users with long-term keys, the rest assumed
//! roles) with a few events each (several calls, one to three source
//! networks, a user agent), then a warm store updated again.
//!
//! Prints the principals and keys held, the heap bytes per principal as a
//! counting global allocator measures them (live bytes after the feed minus
//! before, every temporary dropped; malloc's own overhead not included) beside
//! the store's own estimate, and nanoseconds per event: cold (row extraction
//! plus update, new keys) and, as a criterion benchmark, the update alone on a
//! warm store. Asserts nothing.
//!
//! `TRAILHOUND_BASELINE_PRINCIPALS` sets the number of principals (default
//! 1,000,000; 5,000 under `--test`). The global key cap is raised so that
//! every key is held.

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use trailhound_core::{Event, events_to_batch};
use trailhound_detector::baseline::{BaselineLimits, BaselineStore, Row};
use trailhound_rules::{CompiledRule, RuleSet};

/// Live heap bytes, as requested from the allocator.
static LIVE: AtomicUsize = AtomicUsize::new(0);

/// The system allocator, counting live bytes.
struct Counting;

// SAFETY: every call is forwarded to `System` unchanged; only a counter is
// updated beside it.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: same contract as `System.alloc`.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: same contract as `System.alloc_zeroed`.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as `System.dealloc`.
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: same contract as `System.realloc`.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            LIVE.fetch_add(new_size, Ordering::Relaxed);
            LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        }
        p
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn live() -> usize {
    LIVE.load(Ordering::Relaxed)
}

/// SplitMix64: a small deterministic generator, so every run feeds the same events.
struct Mix(u64);

impl Mix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

const APIS: [(&str, &str); 24] = [
    ("s3.amazonaws.com", "PutObject"),
    ("s3.amazonaws.com", "DeleteObject"),
    ("s3.amazonaws.com", "GetObject"),
    ("ec2.amazonaws.com", "StartInstances"),
    ("ec2.amazonaws.com", "StopInstances"),
    ("ec2.amazonaws.com", "RunInstances"),
    ("ec2.amazonaws.com", "CreateTags"),
    ("ec2.amazonaws.com", "DescribeInstances"),
    ("lambda.amazonaws.com", "UpdateFunctionCode"),
    ("lambda.amazonaws.com", "Invoke"),
    ("dynamodb.amazonaws.com", "PutItem"),
    ("dynamodb.amazonaws.com", "UpdateItem"),
    ("sqs.amazonaws.com", "SendMessage"),
    ("sns.amazonaws.com", "Publish"),
    ("kms.amazonaws.com", "Decrypt"),
    ("kms.amazonaws.com", "GenerateDataKey"),
    ("logs.amazonaws.com", "PutLogEvents"),
    ("cloudformation.amazonaws.com", "UpdateStack"),
    ("ecs.amazonaws.com", "UpdateService"),
    ("secretsmanager.amazonaws.com", "GetSecretValue"),
    ("ssm.amazonaws.com", "GetParameter"),
    ("sts.amazonaws.com", "AssumeRole"),
    ("iam.amazonaws.com", "ListRoles"),
    ("iam.amazonaws.com", "PassRole"),
];

const AGENTS: [&str; 6] = [
    "aws-cli/2.15.0 Python/3.11.6 Linux/6.1",
    "Boto3/1.34.0 md/Botocore#1.34.0",
    "aws-sdk-go-v2/1.24.0 os/linux",
    "aws-sdk-java/2.21.0 Linux/5.10",
    "terraform/1.6.5 (+https://www.terraform.io)",
    "console.amazonaws.com",
];

/// Source networks shared by principals (offices, VPN egress, NAT gateways).
const NETWORKS: u64 = 50_000;
/// Start of the fed period: 2026-11-01T00:00:00Z.
const T0: i64 = 1_793_491_200_000_000;
const DAY: i64 = 86_400_000_000;

/// The events of principal `i` from `later` on: 4 to 10 calls over ten
/// days, from 2 to 5 of its APIs and 1 to 3 of its networks.
fn events_of(i: u64, events: &mut Vec<Event>, later: i64) {
    let mut r = Mix(i.wrapping_mul(0x2545_F491_4F6C_DD1D) ^ 0x5eed);
    let apis: Vec<u64> = (0..2 + r.below(4))
        .map(|_| r.below(APIS.len() as u64))
        .collect();
    let nets: Vec<u64> = (0..1 + r.below(3)).map(|_| r.below(NETWORKS)).collect();
    let agent = AGENTS[r.below(AGENTS.len() as u64) as usize];
    let account = format!("{:012}", 100_000_000_000 + i % 500);
    // two in three are IAM users with long-term keys, the rest roles
    let role = i % 3 == 2;
    let principal = if role {
        format!("arn:aws:iam::{account}:role/role-{i}")
    } else {
        format!("arn:aws:iam::{account}:user/user-{i}")
    };
    let (kind, key_prefix) = if role {
        ("AssumedRole", "ASIA")
    } else {
        ("IAMUser", "AKIA")
    };
    for k in 0..4 + r.below(7) {
        let (source, name) = APIS[apis[r.below(apis.len() as u64) as usize] as usize];
        let net = nets[r.below(nets.len() as u64) as usize];
        events.push(Event {
            event_time: later + r.below(10 * DAY as u64) as i64,
            event_id: format!("e-{i}-{k}"),
            event_source: source.into(),
            event_name: name.into(),
            read_only: Some(name.starts_with("Get") || name.starts_with("Describe")),
            principal: principal.clone(),
            principal_type: kind.into(),
            account_id: Some(account.clone()),
            access_key_id: Some(format!("{key_prefix}{i:016}")),
            region: Some("us-east-1".into()),
            source_ip: Some(format!(
                "{}.{}.{}.{}",
                10 + net / 65_536,
                (net / 256) % 256,
                net % 256,
                1 + r.below(250)
            )),
            user_agent: Some(agent.into()),
            bucket: (source == "s3.amazonaws.com").then(|| format!("bucket-{}", i % 97)),
            object_key: (source == "s3.amazonaws.com").then(|| format!("k/{}", r.below(1_000))),
            bytes_out: Some(r.below(100_000) as i64),
            ..Default::default()
        });
    }
}

/// One row for the store, owned.
struct Prepared {
    rule: usize,
    key: u64,
    value: Option<String>,
    amount: Option<f64>,
    time: i64,
}

/// Every (rule, row) of the events that passes the rule's `where`, in event-time order.
fn prepare(rules: &[CompiledRule], events: &mut [Event], out: &mut Vec<Prepared>) {
    events.sort_by_key(|e| e.event_time);
    let batch = events_to_batch(events);
    for (ri, rule) in rules.iter().enumerate() {
        let Some(baseline) = rule.baseline() else {
            continue;
        };
        let (Ok(hits), Ok(columns)) = (rule.evaluate(&batch), baseline.columns(&batch)) else {
            continue;
        };
        let mut value = String::new();
        for row in (0..batch.num_rows()).filter(|&r| hits.value(r)) {
            let Some(key) = columns.key_fingerprint(row) else {
                continue;
            };
            let has = columns.value_into(row, &mut value);
            out.push(Prepared {
                rule: ri,
                key,
                value: has.then(|| value.clone()),
                amount: columns.amount(row),
                time: events[row].event_time,
            });
        }
    }
}

fn observe(store: &mut BaselineStore, rules: &[CompiledRule], p: &Prepared) -> bool {
    let Some(baseline) = rules.get(p.rule).and_then(|r| r.baseline()) else {
        return false;
    };
    let row = Row {
        key: p.key,
        value: p.value.as_deref(),
        amount: p.amount,
        time: p.time,
    };
    store.observe(p.rule, baseline, row).is_some()
}

/// Observes `rows` in order the way the engine feeds a rule: the index slot
/// of the row 16 ahead and the profile of the row 8 ahead are prefetched, so
/// the cache misses of several rows overlap. Returns the findings.
fn observe_all(store: &mut BaselineStore, rules: &[CompiledRule], rows: &[Prepared]) -> u32 {
    let mut hits = 0u32;
    for (j, p) in rows.iter().enumerate() {
        if let Some(a) = rows.get(j + 16) {
            store.prefetch_slot(a.rule, a.key);
        }
        if let Some(a) = rows.get(j + 8) {
            store.prefetch_profile(a.rule, a.key);
        }
        hits += u32::from(observe(store, rules, p));
    }
    hits
}

fn principals() -> u64 {
    if let Some(n) = std::env::var("TRAILHOUND_BASELINE_PRINCIPALS")
        .ok()
        .and_then(|s| s.replace(['_', ','], "").parse().ok())
    {
        return n;
    }
    if std::env::args().any(|a| a == "--test") {
        5_000
    } else {
        1_000_000
    }
}

fn baseline(c: &mut Criterion) {
    let pack = match RuleSet::builtin() {
        Ok(r) => r,
        Err(e) => panic!("{e}"),
    };
    let rules: Vec<CompiledRule> = pack
        .rules()
        .iter()
        .filter(|r| r.baseline().is_some())
        .cloned()
        .collect();
    let names: Vec<String> = rules
        .iter()
        .filter_map(|r| {
            r.baseline()
                .map(|b| format!("{} ({})", r.id, b.kind.name()))
        })
        .collect();
    eprintln!("baseline rules: {}", names.join(", "));
    let n = principals();
    let limits = BaselineLimits {
        max_principals: usize::MAX,
        ..BaselineLimits::default()
    };

    let before = live();
    let mut store = BaselineStore::for_rules(rules.iter().map(|r| r.baseline()), limits);
    let (mut rows, mut findings) = (0u64, 0u64);
    let mut observing = Duration::ZERO;
    let started = Instant::now();
    {
        let mut events = Vec::new();
        let mut prepared = Vec::new();
        let chunk = 2_048;
        for start in (0..n).step_by(chunk) {
            events.clear();
            prepared.clear();
            for i in start..(start + chunk as u64).min(n) {
                events_of(i, &mut events, T0);
            }
            prepare(&rules, &mut events, &mut prepared);
            let t = Instant::now();
            findings += u64::from(observe_all(&mut store, &rules, &prepared));
            observing += t.elapsed();
            rows += prepared.len() as u64;
        }
    }
    let fed = started.elapsed();
    let heap = live().saturating_sub(before);
    let stats = store.stats().clone();
    eprintln!(
        "fed {n} principals: {rows} rule rows in {:.1} s ({} findings)",
        fed.as_secs_f64(),
        findings
    );
    eprintln!(
        "held: {} keys over {} rules ({:.2} keys per principal), {} value texts interned, {} refused",
        stats.principals,
        rules.len(),
        stats.principals as f64 / n.max(1) as f64,
        stats.interned_values,
        stats.interner_full
    );
    for ((rule, keys), bytes) in rules
        .iter()
        .zip(store.keys_per_rule())
        .zip(store.heap_bytes_per_rule())
    {
        if keys > 0 {
            eprintln!(
                "  {}: {keys} keys, {bytes} bytes estimated ({:.1} per principal, {:.1} per key)",
                rule.id,
                bytes as f64 / n.max(1) as f64,
                bytes as f64 / keys as f64
            );
        }
    }
    eprintln!(
        "heap: {heap} bytes measured = {:.1} bytes per principal ({:.1} per key); estimate {} bytes",
        heap as f64 / n.max(1) as f64,
        heap as f64 / stats.principals.max(1) as f64,
        store.heap_bytes()
    );
    eprintln!(
        "cold update (new keys): {:.0} ns per row",
        observing.as_nanos() as f64 / rows.max(1) as f64
    );

    // A warm store: the same principals again, ten days later.
    let mut warm = Vec::new();
    {
        let mut events = Vec::new();
        let step = (n / 20_000).max(1);
        let mut i = 0;
        while i < n {
            events_of(i, &mut events, T0 + 10 * DAY);
            i += step;
        }
        prepare(&rules, &mut events, &mut warm);
    }
    let t = Instant::now();
    for p in &warm {
        black_box(observe(&mut store, &rules, p));
    }
    eprintln!(
        "warm update, one row at a time: {:.0} ns per row over {} rows",
        t.elapsed().as_nanos() as f64 / warm.len().max(1) as f64,
        warm.len()
    );
    let t = Instant::now();
    black_box(observe_all(&mut store, &rules, &warm));
    eprintln!(
        "warm update, prefetched as the engine feeds: {:.0} ns per row over {} rows",
        t.elapsed().as_nanos() as f64 / warm.len().max(1) as f64,
        warm.len()
    );

    let mut g = c.benchmark_group("baseline");
    g.sample_size(10);
    g.throughput(Throughput::Elements(warm.len() as u64));
    g.bench_function("observe_warm", |b| {
        b.iter(|| observe_all(&mut store, &rules, &warm))
    });
    g.finish();
}

criterion_group!(benches, baseline);
criterion_main!(benches);
