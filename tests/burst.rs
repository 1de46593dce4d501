//! A burst of ten times the steady rate for a minute, through a real broker
//! on loopback: the detector reads the backlog at its own pace (the broker
//! keeps it, the consumer lag shows it) and its memory stays within the
//! bound its configuration sets (`consumer_buffer_mib`), instead of growing
//! with what is waiting. Afterwards every event has been processed.
//!
//! Memory is the detector's resident set, sampled from `/proc` every 250 ms
//! (Linux only; elsewhere the test says so and skips).

use crate::broker;
use crate::cluster;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use broker::free_port;
use cluster::{Setup, scrape};
use trailhound_bus::{EventProducer, ensure_topics};
use trailhound_core::Event;

/// The steady rate, events per second, and the burst's multiple of it.
const STEADY_RATE: usize = 250;
const BURST_FACTOR: usize = 10;
const STEADY: Duration = Duration::from_secs(20);
const BURST: Duration = Duration::from_secs(60);
/// The detector's consumer buffer (`TRAILHOUND_KAFKA_CONSUMER_BUFFER_MIB`).
const BUFFER_MIB: u64 = 4;
/// What the burst may add to the steady peak: librdkafka's fetch buffers
/// (a fetch response stays in memory while any of its records is queued, and
/// compressed batches are inflated), one poll's records decoded and built
/// into batches, and the allocator's slack. Measured on this 220 MiB burst:
/// +32 MiB with a 2 MiB buffer, +80 MiB with 8 MiB (docs/architecture.md,
/// "Limits"): about 16 MiB plus 8 times the buffer, here 48 MiB; the bound
/// leaves room for a busy machine. What matters is that it does not depend
/// on the backlog, which is several times larger.
const ALLOWED_GROWTH_MIB: u64 = 32 + 16 * BUFFER_MIB;

/// Event `i` of 200 principals, about 1.5 KB like a CloudTrail record
/// (its identity and request as JSON text). Each principal reads the same
/// 20 objects from the same 4 addresses over and over, so what the engine
/// legitimately keeps (distinct objects per window, values seen per
/// principal) stops growing after the first seconds: memory that grows
/// with the burst would be buffering.
fn event(i: usize) -> Event {
    let p = i % 200;
    let o = (i / 200) % 20;
    Event {
        event_time: 1_793_577_600_000_000 + i as i64 * 1_000,
        ingest_time: trailhound_core::time::now_micros(),
        event_id: format!("burst-{i}"),
        event_source: "s3.amazonaws.com".into(),
        event_name: if i.is_multiple_of(9) {
            "PutObject"
        } else {
            "GetObject"
        }
        .into(),
        event_category: "Data".into(),
        read_only: Some(!i.is_multiple_of(9)),
        account_id: Some("111122223333".into()),
        principal: format!("arn:aws:iam::111122223333:role/app-{p}"),
        principal_type: "AssumedRole".into(),
        principal_arn: Some(format!(
            "arn:aws:sts::111122223333:assumed-role/app-{p}/session-{p}"
        )),
        session_name: Some(format!("session-{p}")),
        access_key_id: Some(format!("ASIA{p:016}")),
        region: Some("eu-west-1".into()),
        source_ip: Some(format!("10.1.{}.{}", p % 250, 1 + i % 4)),
        user_agent: Some("aws-sdk-java/2.25.1 Linux/5.10 OpenJDK_64-Bit_Server_VM/17".into()),
        bucket: Some("app-data".into()),
        object_key: Some(format!("tenants/{p}/objects/{o}.json")),
        bytes_out: Some(4096),
        request: Some(format!(
            r#"{{"bucketName":"app-data","Host":"app-data.s3.eu-west-1.amazonaws.com","key":"tenants/{p}/objects/{o}.json","x-id":"GetObject"}}"#
        )),
        extra: Some(format!(
            r#"{{"userIdentity":{{"type":"AssumedRole","principalId":"AROA{p:017}:session-{p}","arn":"arn:aws:sts::111122223333:assumed-role/app-{p}/session-{p}","accountId":"111122223333","accessKeyId":"ASIA{p:016}","sessionContext":{{"sessionIssuer":{{"type":"Role","principalId":"AROA{p:017}","arn":"arn:aws:iam::111122223333:role/app-{p}","accountId":"111122223333","userName":"app-{p}"}},"attributes":{{"creationDate":"2026-11-02T00:00:00Z","mfaAuthenticated":"false"}}}}}},"additionalEventData":{{"SignatureVersion":"SigV4","CipherSuite":"TLS_AES_128_GCM_SHA256","bytesTransferredIn":0,"AuthenticationMethod":"AuthHeader","x-amz-id-2":"{}","bytesTransferredOut":4096}},"requestID":"{:016X}","eventType":"AwsApiCall","managementEvent":false,"recipientAccountId":"111122223333","eventCategory":"Data","tlsDetails":{{"tlsVersion":"TLSv1.3","cipherSuite":"TLS_AES_128_GCM_SHA256","clientProvidedHostHeader":"app-data.s3.eu-west-1.amazonaws.com"}}}}"#,
            "a".repeat(76),
            i
        )),
        ..Event::default()
    }
}

/// The resident set of `pid` in KiB, from `/proc`.
fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// Sends events at `rate` per second for `span`, in ten ticks a second,
/// each acknowledged before the next; returns the next event number.
fn produce(producer: &EventProducer, from: usize, rate: usize, span: Duration) -> usize {
    let per_tick = (rate / 10).max(1);
    let started = Instant::now();
    let mut next = from;
    let mut tick = 0u32;
    while started.elapsed() < span {
        let events: Vec<Event> = (next..next + per_tick).map(event).collect();
        producer
            .send_input(format!("burst-tick-{next}"), &events)
            .unwrap_or_else(|e| panic!("producing: {e}"));
        next += per_tick;
        tick += 1;
        let due = Duration::from_millis(100) * tick;
        if let Some(wait) = due.checked_sub(started.elapsed()) {
            thread::sleep(wait);
        }
    }
    next
}

#[test]
fn a_burst_of_ten_times_the_steady_rate_stays_within_the_memory_bound() {
    if rss_kib(std::process::id()).is_none() {
        eprintln!("SKIPPED: no /proc/<pid>/status here to read a resident set from");
        return;
    }
    let mut setup = Setup::new("burst");
    setup.env.push((
        "TRAILHOUND_KAFKA_CONSUMER_BUFFER_MIB".into(),
        BUFFER_MIB.to_string(),
    ));
    let bus = setup.bus();
    ensure_topics(&bus, Duration::from_secs(30)).unwrap_or_else(|e| panic!("{e}"));
    let metrics = format!("127.0.0.1:{}", free_port());
    let mut detector = setup.detector_with("d", "detect", 20, &["--metrics", &metrics]);
    let pid = detector.child.as_ref().map(|c| c.id()).expect("a child");
    let deadline = Instant::now() + Duration::from_secs(120);
    while !setup
        .log("d")
        .contains("partitions assigned partitions=[PartitionId")
    {
        assert!(
            Instant::now() < deadline,
            "no partitions:\n{}",
            setup.log("d")
        );
        thread::sleep(Duration::from_millis(100));
    }

    // RSS samples, tagged with the phase they were taken in.
    let samples: Arc<Mutex<Vec<(u8, u64)>>> = Arc::default();
    let phase = Arc::new(std::sync::atomic::AtomicU8::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (samples, phase, done) = (Arc::clone(&samples), Arc::clone(&phase), Arc::clone(&done));
        thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                if let (Some(kib), Ok(mut s)) = (rss_kib(pid), samples.lock()) {
                    s.push((phase.load(Ordering::Relaxed), kib));
                }
                thread::sleep(Duration::from_millis(250));
            }
        })
    };

    let producer = EventProducer::new(&bus).unwrap_or_else(|e| panic!("{e}"));
    let after_steady = produce(&producer, 0, STEADY_RATE, STEADY);
    phase.store(1, Ordering::Relaxed);
    let burst_started = Instant::now();
    let mut max_lag = 0.0f64;
    let lag_seen = Arc::new(Mutex::new(0.0f64));
    let lag_probe = {
        let (metrics, lag_seen, done) = (metrics.clone(), Arc::clone(&lag_seen), Arc::clone(&done));
        thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                if let (Some(lag), Ok(mut seen)) = (
                    scrape(&metrics, "trailhound_consumer_lag", ""),
                    lag_seen.lock(),
                ) {
                    *seen = seen.max(lag);
                }
                thread::sleep(Duration::from_secs(1));
            }
        })
    };
    let total = produce(&producer, after_steady, STEADY_RATE * BURST_FACTOR, BURST);
    let burst_took = burst_started.elapsed();
    let burst_events = total - after_steady;

    let status = detector.wait(Duration::from_secs(900));
    done.store(true, Ordering::Relaxed);
    let _ = sampler.join();
    let _ = lag_probe.join();
    if let Ok(seen) = lag_seen.lock() {
        max_lag = *seen;
    }
    assert!(status.success(), "the detector failed:\n{}", setup.log("d"));

    let samples = samples.lock().map(|s| s.clone()).unwrap_or_default();
    let peak = |p: u8| {
        samples
            .iter()
            .filter(|(phase, _)| *phase == p)
            .map(|(_, kib)| *kib)
            .max()
            .unwrap_or(0)
    };
    let (steady_peak, burst_peak) = (peak(0), peak(1));
    let payload_mib = burst_events as f64 * 1.5 / 1024.0;
    eprintln!(
        "steady {STEADY_RATE}/s for {STEADY:?}, then {} events in {burst_took:?} ({:.0}/s, about {payload_mib:.0} MiB); \
         detector RSS peak {} MiB steady, {} MiB during the burst and its drain ({} samples); consumer lag up to {max_lag}",
        burst_events,
        burst_events as f64 / burst_took.as_secs_f64(),
        steady_peak / 1024,
        burst_peak / 1024,
        samples.len()
    );
    assert!(steady_peak > 0 && burst_peak > 0, "no RSS samples");
    assert!(
        burst_peak <= steady_peak + ALLOWED_GROWTH_MIB * 1024,
        "the burst grew the detector from {} MiB to {} MiB, more than {ALLOWED_GROWTH_MIB} MiB: it buffers what waits",
        steady_peak / 1024,
        burst_peak / 1024
    );
    // Every event produced was processed (tansu's memory storage gives
    // high watermarks in record batches, so the count is the detector's).
    let log = setup.log("d");
    let processed: u64 = log
        .lines()
        .find_map(|l| l.strip_prefix("detect: "))
        .and_then(|l| l.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no detect summary:\n{log}"));
    assert_eq!(processed, total as u64, "events processed");
}
