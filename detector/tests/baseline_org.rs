//! Baselines measured on a generated organisation: a reduced org (60
//! principals, 10 days, seeded) with the credential-misuse scenarios is
//! written to a temporary folder and read back through the embedded
//! pipeline with the built-in pack. Every scenario must be alerted by a rule
//! tagged `baseline` or by the rule its label names, and the benign
//! background must stay at or under one baseline alert per 100,000 events.
//! `cargo test -p trailhound-detector --test integration baseline_org -- --nocapture`
//! prints the figures.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use trailhound_core::Alert;
use trailhound_core::time::parse_rfc3339_micros;
use trailhound_detector::{BatchPolicy, Engine, Input, PipelineConfig, Summary, run};
use trailhound_ingest::generate::{GenerateConfig, Generated, Label, Scenario, generate};
use trailhound_rules::RuleSet;
use trailhound_sinks::{AlertSink, MemorySink};

/// The reduced org of the test; `TRAILHOUND_ORG_PRINCIPALS` and
/// `TRAILHOUND_ORG_DAYS` measure another (500 and 14 for the full size).
const PRINCIPALS: usize = 60;
const DAYS: u32 = 10;

fn from_env<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

/// Minutes after its newest event a CloudTrail file is delivered.
const CLOUDTRAIL_DELAY_MINUTES: i64 = 5;

/// Writes the org to a temporary folder and reads it back through the
/// pipeline, in the order a live deployment would receive it.
///
/// Baselines learn in arrival order and correlations need a session's
/// commands before the API calls they cause, so the inputs are not read in
/// path order (region by region, then the session logs): each CloudTrail
/// file arrives five minutes after its newest event, as CloudTrail delivers
/// them, and each gateway session arrives when it starts, as a gateway
/// streams it (the daily Teleport, Cowrie and JSON-lines logs are replayed
/// one session at a time; casts are one session each already).
fn detect(generated: &Generated) -> (Vec<Alert>, Summary, Duration) {
    let written = Instant::now();
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("temp dir: {e}"));
    generated
        .write_to(dir.path())
        .unwrap_or_else(|e| panic!("writing the org: {e}"));
    eprintln!(
        "written to {} in {:.1}s",
        dir.path().display(),
        written.elapsed().as_secs_f64()
    );
    let mut keyed: Vec<(i64, String, Input)> = Vec::new();
    for f in &generated.files {
        let path = dir.path().join(&f.path);
        if f.path.starts_with("AWSLogs/") {
            let due = f.newest + CLOUDTRAIL_DELAY_MINUTES * 60_000_000;
            keyed.push((due, f.path.clone(), Input::Path(path)));
            continue;
        }
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", f.path));
        for (start, lines) in sessions_of(&f.path, &bytes) {
            let input = Input::Bytes {
                name: f.path.clone(),
                bytes: lines,
            };
            keyed.push((start, f.path.clone(), input));
        }
    }
    keyed.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.cmp(&b.1)));
    eprintln!(
        "{} inputs ordered after {:.1}s",
        keyed.len(),
        written.elapsed().as_secs_f64()
    );
    let inputs = keyed.into_iter().map(|(_, _, input)| input).collect();
    let mut engine = Engine::new(RuleSet::builtin().unwrap_or_else(|e| panic!("{e}")));
    let memory = MemorySink::new();
    let mut sinks: Vec<Box<dyn AlertSink>> = vec![Box::new(memory.clone())];
    let config = PipelineConfig {
        // One reader keeps the inputs' order.
        readers: 1,
        // Large batches: the same rules over fewer, bigger batches (this
        // runs in a debug build).
        batch: BatchPolicy {
            max_rows: 16_384,
            max_bytes: 64 * 1024 * 1024,
            max_wait: Duration::from_secs(1),
        },
        dead_letter_path: None,
        ..PipelineConfig::default()
    };
    let started = Instant::now();
    let summary = run(inputs, &mut engine, &mut sinks, &config, None)
        .unwrap_or_else(|e| panic!("pipeline: {e}"));
    (memory.alerts(), summary, started.elapsed())
}

/// A session log split into its sessions: (time of the session's first
/// line, its lines). A cast is one session already; its header has the start.
fn sessions_of(path: &str, bytes: &[u8]) -> Vec<(i64, Vec<u8>)> {
    let text = String::from_utf8_lossy(bytes);
    let json = |line: &str| serde_json::from_str::<serde_json::Value>(line).ok();
    if path.ends_with(".cast") {
        let start = text
            .lines()
            .next()
            .and_then(json)
            .and_then(|h| h["timestamp"].as_i64())
            .unwrap_or(0);
        return vec![(start * 1_000_000, bytes.to_vec())];
    }
    let mut sessions: BTreeMap<String, (i64, Vec<u8>)> = BTreeMap::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let Some(v) = json(line) else {
            panic!("{path}: not JSON: {line}");
        };
        let id = ["sid", "session", "session_id"]
            .iter()
            .find_map(|k| v[*k].as_str())
            .unwrap_or("")
            .to_string();
        let time = ["time", "timestamp"]
            .iter()
            .find_map(|k| v[*k].as_str())
            .and_then(parse_rfc3339_micros)
            .unwrap_or(0);
        let entry = sessions.entry(id).or_insert((time, Vec::new()));
        entry.0 = entry.0.min(time);
        entry.1.extend_from_slice(line.as_bytes());
        entry.1.push(b'\n');
    }
    sessions.into_values().collect()
}

fn is_baseline(a: &Alert) -> bool {
    a.tags.iter().any(|t| t == "baseline")
}

/// Whether an alert belongs to a scenario: on its principal, or sharing an
/// event with it (its own events or a related principal's).
fn belongs(label: &Label, a: &Alert) -> bool {
    if a.principal == label.principal {
        return true;
    }
    let ids: BTreeSet<&str> = label
        .event_ids
        .iter()
        .chain(label.related.iter().flat_map(|r| r.event_ids.iter()))
        .map(String::as_str)
        .collect();
    a.event_ids.iter().any(|id| ids.contains(id.as_str()))
}

#[test]
fn credential_misuse_is_alerted_and_the_background_stays_under_one_baseline_alert_per_100k_events()
{
    let principals = from_env("TRAILHOUND_ORG_PRINCIPALS", PRINCIPALS);
    let days = from_env("TRAILHOUND_ORG_DAYS", DAYS);
    let config = GenerateConfig {
        seed: from_env("TRAILHOUND_ORG_SEED", 7),
        principals,
        days,
        scenarios: Scenario::credential_misuse(),
        // Big orgs stay compressed in memory and on disk.
        gzip: principals > 100,
        ..GenerateConfig::default()
    };
    let started = Instant::now();
    let generated = generate(&config);
    let generation = started.elapsed();
    assert_eq!(generated.labels.len(), Scenario::credential_misuse().len());
    let (alerts, summary, detection) = detect(&generated);
    let events = summary.events();
    assert_eq!(summary.dead_letters(), 0, "{summary:?}");

    eprintln!(
        "org: {principals} principals, {days} days, seed {}: {events} events ({} CloudTrail, {} session) in {} files, {} alerts; generated in {:.1}s, detected in {:.1}s",
        config.seed,
        generated.cloudtrail_records,
        summary
            .events_by_source
            .get("session")
            .copied()
            .unwrap_or(0),
        generated.files.len(),
        alerts.len(),
        generation.as_secs_f64(),
        detection.as_secs_f64()
    );

    // Each scenario: which rules alerted on it.
    let mut missed = Vec::new();
    for label in &generated.labels {
        let mut by_rule: BTreeMap<&str, usize> = BTreeMap::new();
        for a in alerts.iter().filter(|a| belongs(label, a)) {
            *by_rule.entry(a.rule_id.as_str()).or_default() += 1;
        }
        let intended: Vec<&str> = std::iter::once(label.rule_id.as_str())
            .chain(label.related.iter().map(|r| r.rule_id.as_str()))
            .collect();
        let caught: Vec<&str> = alerts
            .iter()
            .filter(|a| belongs(label, a))
            .filter(|a| is_baseline(a) || intended.contains(&a.rule_id.as_str()))
            .map(|a| a.rule_id.as_str())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        eprintln!(
            "  {:<34} on {:<60} intended {:<44} caught by {:?} (all alerts on it: {:?})",
            label.scenario, label.principal, label.rule_id, caught, by_rule
        );
        if caught.is_empty() {
            missed.push(label.scenario.clone());
        }
    }

    // The background: alerts that belong to no scenario.
    let background: Vec<&Alert> = alerts
        .iter()
        .filter(|a| !generated.labels.iter().any(|l| belongs(l, a)))
        .collect();
    let baseline_background: Vec<&&Alert> = background.iter().filter(|a| is_baseline(a)).collect();
    let per_100k = baseline_background.len() as f64 * 100_000.0 / events.max(1) as f64;
    eprintln!(
        "background: {} baseline alert(s) in {events} events = {per_100k:.2} per 100,000 events; {} other alert(s)",
        baseline_background.len(),
        background.len() - baseline_background.len()
    );
    for a in &background {
        eprintln!(
            "  background {}: {} | {}",
            a.rule_id, a.principal, a.evidence
        );
    }

    assert!(missed.is_empty(), "scenarios not alerted: {missed:?}");
    // At most one per 100,000 events: with fewer events than that, none.
    let allowed = events / 100_000;
    assert!(
        baseline_background.len() as u64 <= allowed,
        "{} baseline alerts on the background, at most {allowed} allowed for {events} events",
        baseline_background.len()
    );
}
