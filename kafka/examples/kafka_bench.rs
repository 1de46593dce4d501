//! The Kafka deployment end to end, with the broker beside it on loopback:
//!
//! 1. **Throughput**: a generated organisation's events (parsed by ingest)
//!    are put on the event topic first; one detector member then reads them
//!    with the built-in rules (plus a probe rule) and the figure is events
//!    per second from the first event polled to the last one's alerts
//!    delivered (forwarded rows, alert topic and sinks confirmed).
//! 2. **Latency** at half that rate: a producer sends the same events at a
//!    steady rate while the member runs; one event in 20 is a probe
//!    (`event_name = 'BenchPing'`, its event time the wall time it was
//!    produced) that the probe rule turns into one alert each. Latency is
//!    from that produce time to the alert reaching the member's sink.
//!
//! ```sh
//! cargo run --release -p trailhound-kafka --example kafka_bench            # 200 principals, 20 s
//! cargo run --release -p trailhound-kafka --example kafka_bench -- 400 30  # principals, seconds
//! ```
//!
//! The broker is a fresh tansu with in-memory storage (`TRAILHOUND_TANSU` or
//! `~/.cache/trailhound/tools/bin/tansu`), or `TRAILHOUND_KAFKA=host:port`.
//! `TRAILHOUND_KAFKA_*` variables tune the clients as they tune
//! `trailhound` (for example `TRAILHOUND_KAFKA_CONSUMER_BUFFER_MIB=64`).

#[path = "../../bus/tests/common/mod.rs"]
mod broker;

use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use trailhound_bus::{BusConfig, EventProducer, ensure_topics};
use trailhound_core::time::now_micros;
use trailhound_core::{Alert, Event};
use trailhound_ingest::generate::{GenerateConfig, generate};
use trailhound_ingest::{Collect, ParseContext, parse_input};
use trailhound_kafka::detect::{DetectIo, DetectOptions, DetectSummary};
use trailhound_rules::{Compiler, RuleSet, RuleSpec, Suppress};
use trailhound_sinks::{AlertSink, SinkError};

const PROBE_RULE: &str = "id: bench-probe\ntitle: Bench probe\nseverity: low\n\
where: \"event_name = 'BenchPing'\"\ndedup: {key: [principal, event_id], period: 1s}\n";

/// Counts alerts and, for probes, when they arrived.
#[derive(Clone, Default)]
struct Probe {
    latencies_micros: Arc<Mutex<Vec<i64>>>,
    alerts: Arc<Mutex<u64>>,
}

impl AlertSink for Probe {
    fn name(&self) -> &'static str {
        "bench"
    }
    fn send(&mut self, alert: &Alert) -> Result<(), SinkError> {
        *self.alerts.lock().unwrap_or_else(PoisonError::into_inner) += 1;
        if alert.rule_id == "bench-probe" {
            let latency = now_micros() - alert.first_event_time;
            self.latencies_micros
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(latency);
        }
        Ok(())
    }
    fn flush(&mut self) -> Result<(), SinkError> {
        Ok(())
    }
}

fn events_of(principals: usize) -> Vec<Event> {
    let generated = generate(&GenerateConfig {
        principals,
        ..GenerateConfig::default()
    });
    let mut files = generated.files;
    files.sort_by(|a, b| a.newest.cmp(&b.newest).then(a.path.cmp(&b.path)));
    let mut out = Collect::default();
    for f in &files {
        parse_input(&f.bytes, &ParseContext::new(f.path.clone()), &mut out);
    }
    out.events
}

fn rules() -> Result<RuleSet, String> {
    let builtin = RuleSet::builtin().map_err(|e| format!("{:?}", e.errors))?;
    let spec: RuleSpec = serde_yaml::from_str(PROBE_RULE).map_err(|e| e.to_string())?;
    let probe = Compiler::new()
        .and_then(|c| c.compile(spec, None))
        .map_err(|e| e.to_string())?;
    let mut all = builtin.rules().to_vec();
    all.push(probe);
    Ok(RuleSet::from_rules(all))
}

fn member(
    bus: BusConfig,
    rules: Arc<RuleSet>,
    group: &str,
    sink: Probe,
    idle: Duration,
) -> thread::JoinHandle<Result<DetectSummary, String>> {
    let options = DetectOptions {
        exit_when_idle: Some(idle),
        ..DetectOptions::new(group)
    };
    thread::spawn(move || {
        let mut sinks: Vec<Box<dyn AlertSink>> = vec![Box::new(sink)];
        let io = DetectIo {
            sinks: &mut sinks,
            lake: None,
            metrics: None,
            stop: Arc::new(AtomicBool::new(false)),
            respond: None,
        };
        trailhound_kafka::detect::run(&bus, &rules, Suppress::default(), &options, io)
            .map_err(|e| e.to_string())
    })
}

fn percentile(sorted: &[i64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1] as f64 / 1000.0
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let principals: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(200);
    let seconds: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(20);
    let broker = broker::Broker::start_with(broker::Storage::Memory);
    let events = events_of(principals);
    let rules = Arc::new(rules()?);
    println!(
        "kafka bench: {} events of a generated organisation ({principals} principals, 1 day), {} rules, broker {} (tansu, memory storage, same machine)",
        events.len(),
        rules.len(),
        broker.addr
    );

    // 1. Throughput: the topic is full before the member starts.
    let mut bus = broker.config("bench-throughput");
    bus.session_timeout_ms = 6000;
    bus.apply_env()?;
    ensure_topics(&bus, Duration::from_secs(30))?;
    let producer = EventProducer::new(&bus)?;
    let started = Instant::now();
    let ack = producer.send_input("bench", &events)?;
    println!(
        "produce: {} events acknowledged in {:.2} s ({:.0} events/s)",
        ack.records,
        started.elapsed().as_secs_f64(),
        ack.records as f64 / started.elapsed().as_secs_f64()
    );
    let sink = Probe::default();
    let summary = member(
        bus,
        Arc::clone(&rules),
        "bench",
        sink.clone(),
        Duration::from_secs(5),
    )
    .join()
    .map_err(|_| "the member panicked")??;
    let throughput = summary.events as f64 / summary.busy.as_secs_f64().max(1e-9);
    println!(
        "throughput: {} events from the event topic to alerts in {:.2} s: {:.0} events/s ({} alerts, {} rows forwarded to the rekeyed topic)",
        summary.events,
        summary.busy.as_secs_f64(),
        throughput,
        summary.alerts(),
        summary.forwarded
    );

    // 2. Latency at half that rate.
    let rate = (throughput / 2.0).max(1.0);
    let mut bus = broker.config("bench-latency");
    bus.session_timeout_ms = 6000;
    bus.apply_env()?;
    ensure_topics(&bus, Duration::from_secs(30))?;
    let sink = Probe::default();
    // Idle limit past the wait below: the member must outlive it.
    let handle = member(
        bus.clone(),
        Arc::clone(&rules),
        "bench",
        sink.clone(),
        Duration::from_secs(15),
    );
    // Let the member join and be assigned before the clock starts.
    thread::sleep(Duration::from_secs(8));
    let producer = EventProducer::new(&bus)?;
    let mut sender = producer.begin_input("bench-latency");
    let total = (rate * seconds as f64) as usize;
    let t0 = Instant::now();
    let mut probes = 0u64;
    for i in 0..total {
        let due = t0 + Duration::from_secs_f64(i as f64 / rate);
        let now = Instant::now();
        if due > now {
            thread::sleep(due - now);
        }
        let mut event = events[i % events.len()].clone();
        if i % 20 == 0 {
            event.event_name = "BenchPing".into();
            event.event_id = format!("probe-{i}");
            event.event_time = now_micros();
            probes += 1;
        }
        sender.send(&event)?;
    }
    sender.finish()?;
    let sent_secs = t0.elapsed().as_secs_f64();
    let summary = handle.join().map_err(|_| "the member panicked")??;
    let mut lat = sink
        .latencies_micros
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    lat.sort_unstable();
    println!(
        "latency: {total} events at {:.0} events/s ({:.0} achieved over {sent_secs:.1} s), {probes} probes, {} probe alerts, {} events processed",
        rate,
        total as f64 / sent_secs,
        lat.len(),
        summary.events
    );
    println!(
        "latency produce -> alert: p50 {:.1} ms, p99 {:.1} ms, p99.9 {:.1} ms, max {:.1} ms",
        percentile(&lat, 50.0),
        percentile(&lat, 99.0),
        percentile(&lat, 99.9),
        percentile(&lat, 100.0)
    );
    Ok(())
}
