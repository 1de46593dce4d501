//! The gateway receiver: `POST /v1/sessions` with a bearer token.
//!
//! | answer | when |
//! |---|---|
//! | `200` `{"events":N,"dead_letters":M,"format":F}` | every event and dead letter of the body was acknowledged by the bus |
//! | `401` (with `WWW-Authenticate: Bearer`) | no token, or not one of the configured tokens |
//! | `413` | the body (or its declared length) is over `max_body_bytes` |
//! | `422` | nothing in the body could be read; the reasons went to the dead-letter topic |
//! | `503` (with `Retry-After`) | the bus did not acknowledge in time, or `max_in_flight` requests are being worked on |
//!
//! `GET /healthz` answers `200` without a token. Tokens are compared in
//! constant time and never logged; several may be configured so that one
//! can be rotated without downtime. A gateway may name what it sends with
//! `X-Trailhound-Name` (a file name such as `alice-42.cast`, used where a
//! file's name would be, as in dead letters and sessions without an id);
//! without it the name is a hash of the body, so a retry of the same body
//! gives the same event ids and the detector's alert ids stay the same.
//!
//! The server runs on a runtime of its own on a thread of its own; parsing
//! and delivery run on its blocking pool, so a slow broker never stalls
//! the listener.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::Router;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use serde::Deserialize;
use tokio::sync::{Semaphore, oneshot};
use trailhound_core::{DeadLetter, Event};
use trailhound_ingest::{Collect, Format, Limits, ParseContext, parse_input};
use trailhound_sinks::Metrics;

use crate::downstream::Downstream;
use crate::error::ReceiveError;

/// The shortest token accepted: shorter ones are guessable.
pub const MIN_TOKEN_CHARS: usize = 16;

/// The receiver's settings (`receiver:` in the config file).
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ReceiverSettings {
    /// Where to listen (default `127.0.0.1:8514`: loopback unless set).
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// Must be true for `listen` to be an address beyond loopback (default
    /// false): exposing the receiver to a network is a decision, not a typo.
    #[serde(default)]
    pub allow_remote: bool,
    /// Bearer tokens accepted; at least one is needed. Also from
    /// `TRAILHOUND_RECEIVER_TOKENS` (comma-separated), which keeps them out
    /// of files.
    #[serde(default)]
    pub tokens: Vec<String>,
    /// Largest request body, compressed (default 16 MiB).
    #[serde(default = "default_max_body")]
    pub max_body_bytes: usize,
    /// Largest body after decompression (default 128 MiB), and at most
    /// `max_decompression_ratio` times the compressed size (default 200).
    #[serde(default = "default_max_decompressed")]
    pub max_decompressed_bytes: u64,
    /// See `max_decompressed_bytes`.
    #[serde(default = "default_ratio")]
    pub max_decompression_ratio: u64,
    /// Requests parsed and delivered at once; more get `503` (default 8).
    #[serde(default = "default_in_flight")]
    pub max_in_flight: usize,
    /// `Retry-After` on a `503`, in seconds (default 5).
    #[serde(default = "default_retry_after")]
    pub retry_after_seconds: u32,
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8514))
}
fn default_max_body() -> usize {
    16 * 1024 * 1024
}
fn default_max_decompressed() -> u64 {
    128 * 1024 * 1024
}
fn default_ratio() -> u64 {
    200
}
fn default_in_flight() -> usize {
    8
}
fn default_retry_after() -> u32 {
    5
}

impl Default for ReceiverSettings {
    fn default() -> Self {
        Self {
            listen: default_listen(),
            allow_remote: false,
            tokens: Vec::new(),
            max_body_bytes: default_max_body(),
            max_decompressed_bytes: default_max_decompressed(),
            max_decompression_ratio: default_ratio(),
            max_in_flight: default_in_flight(),
            retry_after_seconds: default_retry_after(),
        }
    }
}

impl std::fmt::Debug for ReceiverSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReceiverSettings")
            .field("listen", &self.listen)
            .field("allow_remote", &self.allow_remote)
            .field("tokens", &format_args!("[{} redacted]", self.tokens.len()))
            .field("max_body_bytes", &self.max_body_bytes)
            .field("max_decompressed_bytes", &self.max_decompressed_bytes)
            .field("max_decompression_ratio", &self.max_decompression_ratio)
            .field("max_in_flight", &self.max_in_flight)
            .field("retry_after_seconds", &self.retry_after_seconds)
            .finish()
    }
}

impl ReceiverSettings {
    /// Adds the tokens of `TRAILHOUND_RECEIVER_TOKENS` (comma-separated).
    pub fn apply_env(&mut self) {
        if let Ok(list) = std::env::var("TRAILHOUND_RECEIVER_TOKENS") {
            self.tokens.extend(
                list.split(',')
                    .map(str::trim)
                    .filter(|t| !t.is_empty())
                    .map(str::to_string),
            );
        }
    }

    /// Refuses settings that cannot work or would be unsafe.
    pub fn validate(&self) -> Result<(), ReceiveError> {
        if !self.listen.ip().is_loopback() && !self.allow_remote {
            return Err(ReceiveError::Settings(format!(
                "listen {} is beyond loopback: set receiver.allow_remote: true to expose the receiver to the network (gateways then reach it with their bearer tokens; put TLS in front of it)",
                self.listen
            )));
        }
        if self.tokens.is_empty() {
            return Err(ReceiveError::Settings(
                "no bearer token: set receiver.tokens or TRAILHOUND_RECEIVER_TOKENS".into(),
            ));
        }
        if let Some(n) = self
            .tokens
            .iter()
            .position(|t| t.chars().count() < MIN_TOKEN_CHARS)
        {
            return Err(ReceiveError::Settings(format!(
                "token {} is shorter than {MIN_TOKEN_CHARS} characters",
                n + 1
            )));
        }
        if self.max_body_bytes == 0 || self.max_in_flight == 0 {
            return Err(ReceiveError::Settings(
                "max_body_bytes and max_in_flight must be above 0".into(),
            ));
        }
        Ok(())
    }

    fn limits(&self) -> Limits {
        Limits {
            max_input_bytes: self.max_decompressed_bytes,
            max_decompression_ratio: self.max_decompression_ratio,
            ..Limits::default()
        }
    }
}

/// Counts of what the receiver answered.
#[derive(Debug, Default)]
struct Counts {
    accepted: AtomicU64,
    unauthorised: AtomicU64,
    too_large: AtomicU64,
    unreadable: AtomicU64,
    unavailable: AtomicU64,
}

/// What a receiver answered over its life.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReceiverStats {
    /// `200`s.
    pub accepted: u64,
    /// `401`s.
    pub unauthorised: u64,
    /// `413`s.
    pub too_large: u64,
    /// `422`s and `400`s.
    pub unreadable: u64,
    /// `503`s.
    pub unavailable: u64,
}

struct Shared {
    settings: ReceiverSettings,
    downstream: Arc<dyn Downstream>,
    metrics: Option<Metrics>,
    in_flight: Arc<Semaphore>,
    counts: Counts,
}

/// A running receiver. Dropping it (or [`Receiver::stop`]) stops accepting
/// connections and lets the requests being worked on finish.
pub struct Receiver {
    addr: SocketAddr,
    shared: Arc<Shared>,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<Result<(), ReceiveError>>>,
}

impl Receiver {
    /// Binds `settings.listen` and starts serving.
    pub fn start(
        settings: ReceiverSettings,
        downstream: Arc<dyn Downstream>,
        metrics: Option<Metrics>,
    ) -> Result<Self, ReceiveError> {
        settings.validate()?;
        let listener =
            std::net::TcpListener::bind(settings.listen).map_err(|source| ReceiveError::Bind {
                addr: settings.listen,
                source,
            })?;
        let addr = listener.local_addr().map_err(ReceiveError::Runtime)?;
        listener
            .set_nonblocking(true)
            .map_err(ReceiveError::Runtime)?;
        let shared = Arc::new(Shared {
            in_flight: Arc::new(Semaphore::new(settings.max_in_flight)),
            settings,
            downstream,
            metrics,
            counts: Counts::default(),
        });
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .max_blocking_threads(shared.settings.max_in_flight.max(1))
            .build()
            .map_err(ReceiveError::Runtime)?;
        let (tx, rx) = oneshot::channel::<()>();
        let app = Router::new()
            .route("/v1/sessions", post(sessions))
            .route("/healthz", get(|| async { "ok\n" }))
            .with_state(Arc::clone(&shared));
        let thread = std::thread::Builder::new()
            .name("trailhound-receiver".into())
            .spawn(move || {
                runtime.block_on(async move {
                    let listener = tokio::net::TcpListener::from_std(listener)
                        .map_err(ReceiveError::Runtime)?;
                    axum::serve(
                        listener,
                        app.into_make_service_with_connect_info::<SocketAddr>(),
                    )
                    .with_graceful_shutdown(async move {
                        let _ = rx.await;
                    })
                    .await
                    .map_err(|e| ReceiveError::Server(e.to_string()))
                })
            })
            .map_err(ReceiveError::Runtime)?;
        tracing::info!(%addr, "gateway receiver listening");
        Ok(Self {
            addr,
            shared,
            shutdown: Some(tx),
            thread: Some(thread),
        })
    }

    /// The address it listens on (the port chosen when `listen` had 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// What it answered so far.
    pub fn stats(&self) -> ReceiverStats {
        let c = &self.shared.counts;
        ReceiverStats {
            accepted: c.accepted.load(Ordering::Relaxed),
            unauthorised: c.unauthorised.load(Ordering::Relaxed),
            too_large: c.too_large.load(Ordering::Relaxed),
            unreadable: c.unreadable.load(Ordering::Relaxed),
            unavailable: c.unavailable.load(Ordering::Relaxed),
        }
    }

    /// Stops accepting, waits for the requests in flight, and returns the stats.
    pub fn stop(mut self) -> Result<ReceiverStats, ReceiveError> {
        self.shutdown_and_join()?;
        Ok(self.stats())
    }

    fn shutdown_and_join(&mut self) -> Result<(), ReceiveError> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        match self.thread.take().map(std::thread::JoinHandle::join) {
            Some(Ok(result)) => result,
            Some(Err(_)) => Err(ReceiveError::Server("the receiver thread panicked".into())),
            None => Ok(()),
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        if let Err(e) = self.shutdown_and_join() {
            tracing::warn!(error = %e, "stopping the receiver");
        }
    }
}

/// Equal in time independent of where `a` and `b` differ.
fn same_secret(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl Shared {
    fn authorised(&self, headers: &HeaderMap) -> bool {
        let Some(given) = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .map(str::trim)
        else {
            return false;
        };
        // Every token is compared, so the time does not tell which matched.
        self.settings.tokens.iter().fold(false, |ok, t| {
            same_secret(t.as_bytes(), given.as_bytes()) | ok
        })
    }

    fn retry_after(&self) -> HeaderValue {
        HeaderValue::from(self.settings.retry_after_seconds)
    }
}

fn json(status: StatusCode, body: serde_json::Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        format!("{body}\n"),
    )
        .into_response()
}

/// The `X-Trailhound-Name` header, when it is there and printable.
fn name_header(headers: &HeaderMap) -> Option<&str> {
    headers
        .get("x-trailhound-name")
        .and_then(|v| v.to_str().ok())
}

/// The name a request's events are read under (see the module page): the
/// `X-Trailhound-Name` header cut to a safe file name, else a hash of the body.
fn origin(name: Option<&str>, body: &[u8]) -> String {
    let named = name
        .map(|v| {
            v.chars()
                .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'))
                .take(128)
                .collect::<String>()
        })
        .filter(|v| !v.is_empty() && v != "." && v != "..");
    let name = named.unwrap_or_else(|| {
        trailhound_core::id::stable_id([String::from_utf8_lossy(body).as_ref()])
    });
    format!("gateway/{name}")
}

/// One request body as the receiver reads it, before delivery: what
/// [`read_body`] made of it.
#[derive(Debug)]
pub struct Body {
    /// The name its events are read under (`gateway/...`).
    pub origin: String,
    /// The events, in body order.
    pub events: Vec<Event>,
    /// The records that could not be read, with their reasons.
    pub dead_letters: Vec<DeadLetter>,
    /// The format the body was recognised as.
    pub format: Format,
}

/// What a body gets once its events and dead letters are on the bus.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// `200` with these counts.
    Accepted {
        /// Events delivered.
        events: usize,
        /// Dead letters delivered.
        dead_letters: usize,
        /// The format's name.
        format: &'static str,
    },
    /// `422`: nothing could be read; the distinct reasons, sorted.
    Unreadable {
        /// Dead-letter reasons.
        reasons: Vec<&'static str>,
    },
}

impl Body {
    /// The answer this body gets when the bus acknowledges it.
    pub fn verdict(&self) -> Verdict {
        if self.events.is_empty() && !self.dead_letters.is_empty() {
            let mut reasons: Vec<&'static str> =
                self.dead_letters.iter().map(|d| d.reason).collect();
            reasons.sort_unstable();
            reasons.dedup();
            return Verdict::Unreadable { reasons };
        }
        Verdict::Accepted {
            events: self.events.len(),
            dead_letters: self.dead_letters.len(),
            format: self.format.as_str(),
        }
    }
}

/// Reads one request body (already within `max_body_bytes`) as the
/// receiver does: named by `name` (the `X-Trailhound-Name` header) or by
/// its content, gunzipped within the decompression limits, its format
/// recognised and parsed. The handler delivers the result; the fuzz target
/// `receiver_body` calls this directly.
pub fn read_body(settings: &ReceiverSettings, name: Option<&str>, body: &[u8]) -> Body {
    let origin = origin(name, body);
    let mut ctx = ParseContext::new(origin.as_str());
    ctx.limits = settings.limits();
    let mut out = Collect::default();
    let summary = parse_input(body, &ctx, &mut out);
    Body {
        origin,
        events: out.events,
        dead_letters: out.dead_letters,
        format: summary.format,
    }
}

async fn sessions(
    State(shared): State<Arc<Shared>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
) -> Response {
    if !shared.authorised(request.headers()) {
        shared.answered(Answer::unauthorised);
        tracing::warn!(%peer, "receiver: request without a valid bearer token");
        let mut r = json(
            StatusCode::UNAUTHORIZED,
            serde_json::json!({"error": "a valid bearer token is needed"}),
        );
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"trailhound\""),
        );
        return r;
    }
    let max = shared.settings.max_body_bytes;
    let too_large = || {
        shared.answered(Answer::too_large);
        json(
            StatusCode::PAYLOAD_TOO_LARGE,
            serde_json::json!({"error": format!("the body is over the {max}-byte limit")}),
        )
    };
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max as u64) {
        return too_large();
    }
    let Ok(permit) = Arc::clone(&shared.in_flight).try_acquire_owned() else {
        shared.answered(Answer::unavailable);
        let mut r = json(
            StatusCode::SERVICE_UNAVAILABLE,
            serde_json::json!({"error": "too many requests in flight; retry later"}),
        );
        r.headers_mut()
            .insert(header::RETRY_AFTER, shared.retry_after());
        return r;
    };
    let (parts, body) = request.into_parts();
    let body = match Limited::new(body, max).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => return too_large(),
        Err(e) => {
            shared.answered(Answer::unreadable);
            return json(
                StatusCode::BAD_REQUEST,
                serde_json::json!({"error": format!("reading the body: {e}")}),
            );
        }
    };
    let work = Arc::clone(&shared);
    let headers = parts.headers;
    let outcome = tokio::task::spawn_blocking(move || {
        let _permit = permit;
        work.accept(name_header(&headers), &body)
    })
    .await;
    match outcome {
        Ok(Accepted::Delivered {
            events,
            dead_letters,
            format,
        }) => {
            shared.answered(Answer::accepted);
            json(
                StatusCode::OK,
                serde_json::json!({"events": events, "dead_letters": dead_letters, "format": format}),
            )
        }
        Ok(Accepted::Unreadable { reasons }) => {
            shared.answered(Answer::unreadable);
            json(
                StatusCode::UNPROCESSABLE_ENTITY,
                serde_json::json!({"error": "nothing in the body could be read", "reasons": reasons}),
            )
        }
        Ok(Accepted::Unavailable(e)) => {
            shared.answered(Answer::unavailable);
            tracing::warn!(%peer, error = %e, "receiver: the bus did not take a request; answered 503");
            let mut r = json(
                StatusCode::SERVICE_UNAVAILABLE,
                serde_json::json!({"error": format!("the event bus did not acknowledge: {e}")}),
            );
            r.headers_mut()
                .insert(header::RETRY_AFTER, shared.retry_after());
            r
        }
        Err(e) => {
            shared.answered(Answer::unavailable);
            json(
                StatusCode::INTERNAL_SERVER_ERROR,
                serde_json::json!({"error": format!("the request's worker failed: {e}")}),
            )
        }
    }
}

enum Accepted {
    Delivered {
        events: usize,
        dead_letters: usize,
        format: &'static str,
    },
    Unreadable {
        reasons: Vec<&'static str>,
    },
    Unavailable(crate::error::DownstreamError),
}

/// A counted answer of the receiver.
#[derive(Debug, Clone, Copy)]
#[allow(non_camel_case_types)]
enum Answer {
    accepted,
    unauthorised,
    too_large,
    unreadable,
    unavailable,
}

impl Shared {
    /// Counts an answer in the stats and in
    /// `trailhound_receiver_requests_total{outcome}`.
    fn answered(&self, answer: Answer) {
        let (counter, outcome) = match answer {
            Answer::accepted => (&self.counts.accepted, "accepted"),
            Answer::unauthorised => (&self.counts.unauthorised, "unauthorised"),
            Answer::too_large => (&self.counts.too_large, "too_large"),
            Answer::unreadable => (&self.counts.unreadable, "unreadable"),
            Answer::unavailable => (&self.counts.unavailable, "unavailable"),
        };
        counter.fetch_add(1, Ordering::Relaxed);
        if let Some(m) = &self.metrics {
            m.receiver_request(outcome);
        }
    }

    /// Parses and delivers one body (on the blocking pool).
    fn accept(&self, name: Option<&str>, body: &[u8]) -> Accepted {
        let read = read_body(&self.settings, name, body);
        if let Err(e) = self
            .downstream
            .deliver(&read.origin, &read.events, &read.dead_letters)
        {
            return Accepted::Unavailable(e);
        }
        if let Some(m) = &self.metrics {
            m.input_read(read.format.as_str());
            m.events_read(&read.events);
            for d in &read.dead_letters {
                m.dead_letter(d.reason);
            }
        }
        match read.verdict() {
            Verdict::Accepted {
                events,
                dead_letters,
                format,
            } => Accepted::Delivered {
                events,
                dead_letters,
                format,
            },
            Verdict::Unreadable { reasons } => Accepted::Unreadable { reasons },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_compare_equal_only_when_identical() {
        assert!(same_secret(b"abcdefghijklmnop", b"abcdefghijklmnop"));
        assert!(!same_secret(b"abcdefghijklmnop", b"abcdefghijklmnoq"));
        assert!(!same_secret(b"abcdefghijklmnop", b"abcdefghijklmno"));
    }

    #[test]
    fn settings_need_a_long_enough_token() {
        let mut s = ReceiverSettings::default();
        assert!(s.validate().is_err());
        s.tokens = vec!["short".into()];
        assert!(s.validate().is_err());
        s.tokens = vec!["0123456789abcdef".into()];
        assert!(s.validate().is_ok());
        assert!(!format!("{s:?}").contains("0123456789abcdef"));
    }

    #[test]
    fn listening_beyond_loopback_needs_allow_remote() {
        let mut s = ReceiverSettings {
            tokens: vec!["0123456789abcdef".into()],
            listen: "0.0.0.0:8514".parse().unwrap(),
            ..ReceiverSettings::default()
        };
        let refused = s.validate().unwrap_err().to_string();
        assert!(refused.contains("allow_remote"), "{refused}");
        s.allow_remote = true;
        assert!(s.validate().is_ok());
        s.listen = "[::1]:8514".parse().unwrap();
        s.allow_remote = false;
        assert!(s.validate().is_ok(), "IPv6 loopback is loopback");
    }

    #[test]
    fn a_named_body_keeps_its_name_and_an_unnamed_one_is_named_by_its_content() {
        let mut h = HeaderMap::new();
        assert_eq!(origin(name_header(&h), b"x"), origin(name_header(&h), b"x"));
        assert_ne!(origin(name_header(&h), b"x"), origin(name_header(&h), b"y"));
        h.insert(
            "x-trailhound-name",
            HeaderValue::from_static("../alice 42.cast"),
        );
        assert_eq!(origin(name_header(&h), b"x"), "gateway/..alice42.cast");
    }
}
