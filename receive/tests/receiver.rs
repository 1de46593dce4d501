//! The gateway receiver against a real broker (tansu) on loopback, through
//! real HTTP: each session format posted is answered 200 once its events
//! are on the event topic and the detector reads them; a wrong token is
//! 401, an oversized body 413, an unreadable one 422; and when the broker
//! is away the receiver answers 503, and the gateway's retry after it is
//! back delivers everything, once.

#[path = "../../bus/tests/common/mod.rs"]
mod broker;

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use broker::{Broker, Storage, one_record_batches, records_on, unique};
use trailhound_bus::{BusConfig, TopicKind, ensure_topics};
use trailhound_ingest::{Collect, ParseContext, parse_input};
use trailhound_kafka::detect::{DetectIo, DetectOptions};
use trailhound_receive::{BusDownstream, Receiver, ReceiverSettings};
use trailhound_rules::{RuleSet, Suppress};
use trailhound_sinks::{AlertSink, MemorySink};

const TOKEN: &str = "gateway-token-0123456789";

const FIXTURES: &[(&str, &str)] = &[
    ("audit.log", "teleport/audit.log"),
    ("v2_session.cast", "asciinema/v2_session.cast"),
    ("v3_session.cast", "asciinema/v3_session.cast"),
    ("cowrie.json", "cowrie/cowrie.json"),
    ("session.jsonl", "jsonl/session.jsonl"),
];

fn fixture(path: &str) -> Vec<u8> {
    let full = format!(
        "{}/../ingest/tests/fixtures/session/{path}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&full).unwrap_or_else(|e| panic!("{full}: {e}"))
}

/// Events the parsers find in `body` read as the receiver names it.
fn expected_events(name: &str, body: &[u8]) -> usize {
    let mut out = Collect::default();
    parse_input(
        body,
        &ParseContext::new(format!("gateway/{name}")),
        &mut out,
    );
    out.events.len()
}

fn settings() -> ReceiverSettings {
    ReceiverSettings {
        listen: "127.0.0.1:0".parse().expect("an address"),
        tokens: vec!["an-older-token-still-valid".into(), TOKEN.into()],
        max_body_bytes: 256 * 1024,
        retry_after_seconds: 1,
        ..ReceiverSettings::default()
    }
}

struct Answer {
    status: u16,
    retry_after: Option<String>,
    www_authenticate: Option<String>,
    body: serde_json::Value,
}

fn post(receiver: &Receiver, token: Option<&str>, name: &str, body: &[u8]) -> Answer {
    post_with(receiver, token, name, body, &[])
}

fn post_with(
    receiver: &Receiver,
    token: Option<&str>,
    name: &str,
    body: &[u8],
    extra: &[(&str, &str)],
) -> Answer {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .into();
    let mut request = agent
        .post(format!("http://{}/v1/sessions", receiver.local_addr()))
        .header("X-Trailhound-Name", name);
    if let Some(t) = token {
        request = request.header("Authorization", format!("Bearer {t}"));
    }
    for (k, v) in extra {
        request = request.header(*k, *v);
    }
    let mut response = request
        .send(body)
        .unwrap_or_else(|e| panic!("posting {name}: {e}"));
    let header = |n: &str| {
        response
            .headers()
            .get(n)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let retry_after = header("retry-after");
    let www_authenticate = header("www-authenticate");
    let text = response.body_mut().read_to_string().unwrap_or_default();
    Answer {
        status: response.status().as_u16(),
        retry_after,
        www_authenticate,
        body: serde_json::from_str(&text).unwrap_or(serde_json::Value::Null),
    }
}

/// Declares a body of `length` bytes with `Expect: 100-continue`, as curl
/// and most HTTP clients do for large bodies, and returns the status the
/// receiver answers before any of the body is sent. (Sending the body
/// anyway races the server's close after its early answer: the client can
/// see a broken pipe instead of the 413.)
fn declare_oversized(receiver: &Receiver, length: usize) -> u16 {
    use std::io::{BufRead, BufReader};
    let mut stream =
        std::net::TcpStream::connect(receiver.local_addr()).expect("connecting to the receiver");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("a read timeout");
    write!(
        stream,
        "POST /v1/sessions HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {TOKEN}\r\n\
         X-Trailhound-Name: big.log\r\nContent-Length: {length}\r\n\
         Expect: 100-continue\r\n\r\n",
        receiver.local_addr()
    )
    .expect("writing the request head");
    let mut status_line = String::new();
    BufReader::new(&stream)
        .read_line(&mut status_line)
        .expect("reading the status line");
    status_line
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP status line: {status_line:?}"))
}

#[test]
fn each_session_format_posted_is_accepted_and_reaches_the_detector() {
    let broker = Broker::start_with(Storage::Memory);
    let bus = one_record_batches(broker.config("receiver-formats"));
    ensure_topics(&bus, Duration::from_secs(30)).expect("topics");
    let downstream = BusDownstream::new(&bus).expect("producers");
    let receiver = Receiver::start(settings(), Arc::new(downstream), None).expect("receiver");

    let mut total = 0usize;
    for (name, path) in FIXTURES {
        let body = fixture(path);
        let want = expected_events(name, &body);
        assert!(want > 0, "{path} has no events");
        let a = post(&receiver, Some(TOKEN), name, &body);
        assert_eq!(a.status, 200, "{path}: {}", a.body);
        assert_eq!(a.body["events"], want, "{path}: {}", a.body);
        total += want;
    }
    // Compressed bodies are read too.
    let body = fixture("jsonl/session.jsonl");
    let mut z = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    z.write_all(&body).expect("gzip");
    let gz = z.finish().expect("gzip");
    let want = expected_events("again.jsonl.gz", &body);
    let a = post(&receiver, Some(TOKEN), "again.jsonl.gz", &gz);
    assert_eq!(
        (a.status, a.body["events"].as_u64()),
        (200, Some(want as u64))
    );
    assert_eq!(a.body["format"], "session_jsonl");
    total += want;
    assert_eq!(records_on(&bus, TopicKind::Events), total as i64);

    // Refusals: nothing reaches the topic.
    let body = fixture("teleport/audit.log");
    let wrong = post(&receiver, Some("gateway-token-0123456780"), "x.log", &body);
    assert_eq!(wrong.status, 401);
    assert!(
        wrong
            .www_authenticate
            .as_deref()
            .is_some_and(|h| h.starts_with("Bearer"))
    );
    assert_eq!(post(&receiver, None, "x.log", &body).status, 401);
    assert_eq!(declare_oversized(&receiver, 256 * 1024 + 1), 413);
    let junk = post(
        &receiver,
        Some(TOKEN),
        "junk.log",
        b"this is not a session log\n",
    );
    assert_eq!(junk.status, 422, "{}", junk.body);
    assert_eq!(junk.body["reasons"][0], "unknown_format");
    assert_eq!(records_on(&bus, TopicKind::Events), total as i64);
    assert_eq!(records_on(&bus, TopicKind::DeadLetters), 1);
    let stats = receiver.stop().expect("stopping");
    assert_eq!(
        (
            stats.accepted,
            stats.unauthorised,
            stats.too_large,
            stats.unreadable
        ),
        (FIXTURES.len() as u64 + 1, 2, 1, 1)
    );

    // The detector, in its consumer group, reads every accepted event.
    let rules = RuleSet::builtin().expect("the built-in pack");
    let memory = MemorySink::new();
    let mut sinks: Vec<Box<dyn AlertSink>> = vec![Box::new(memory.clone())];
    let options = DetectOptions {
        exit_when_idle: Some(Duration::from_secs(4)),
        ..DetectOptions::new(unique("receiver-detect"))
    };
    let summary = trailhound_kafka::detect::run(
        &bus,
        &rules,
        Suppress::default(),
        &options,
        DetectIo {
            sinks: &mut sinks,
            lake: None,
            metrics: None,
            stop: Arc::new(AtomicBool::new(false)),
            respond: None,
        },
    )
    .unwrap_or_else(|e| panic!("detect: {e}"));
    assert_eq!(summary.events, total as u64);
}

#[test]
fn a_request_the_bus_cannot_take_is_answered_503_and_the_gateways_retry_delivers_it() {
    // The bus is away: its address is known, nothing answers there yet.
    let port = broker::free_port();
    let mut bus = BusConfig::new(format!("127.0.0.1:{port}"));
    bus.topic_prefix = format!("{}.", unique("receiver-outage"));
    bus.partitions = 6;
    bus.replication = 1;
    bus.delivery_timeout_ms = 3000;
    let bus = one_record_batches(bus);
    let downstream = BusDownstream::new(&bus).expect("producers");
    let receiver = Receiver::start(settings(), Arc::new(downstream), None).expect("receiver");

    let body = fixture("teleport/audit.log");
    let want = expected_events("audit.log", &body);
    let refused = post(&receiver, Some(TOKEN), "audit.log", &body);
    assert_eq!(refused.status, 503, "{}", refused.body);
    assert_eq!(refused.retry_after.as_deref(), Some("1"));

    // The broker comes up; the gateway retries after Retry-After until it
    // gets a 2xx, with the same receiver and producer.
    let _broker = Broker::start_on(port, Storage::Memory);
    ensure_topics(&bus, Duration::from_secs(30)).expect("topics");
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut tries = 1;
    loop {
        let a = post(&receiver, Some(TOKEN), "audit.log", &body);
        tries += 1;
        if a.status == 200 {
            assert_eq!(a.body["events"], want);
            break;
        }
        assert_eq!(a.status, 503, "{}", a.body);
        assert!(
            Instant::now() < deadline,
            "the broker was back but the receiver kept answering 503 ({tries} tries)"
        );
        std::thread::sleep(Duration::from_secs(1));
    }
    let more = fixture("cowrie/cowrie.json");
    let more_events = expected_events("cowrie.json", &more);
    assert_eq!(
        post(&receiver, Some(TOKEN), "cowrie.json", &more).status,
        200
    );
    // Everything accepted is there, once: the refused attempt left nothing.
    assert_eq!(
        records_on(&bus, TopicKind::Events),
        (want + more_events) as i64
    );
    let stats = receiver.stop().expect("stopping");
    assert!(stats.unavailable >= 1);
    assert_eq!(stats.accepted, 2);
}
