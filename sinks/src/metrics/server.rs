//! The metrics endpoint: a small HTTP/1.x server on a background thread,
//! built on `std::net::TcpListener` (no async runtime).
//!
//! `GET /metrics` answers [`Metrics::render`] as
//! `text/plain; version=0.0.4`, `GET /healthz` answers `ok`; `HEAD` works on
//! both, any other path is 404, any other method 405. One request per
//! connection (`Connection: close`), handled one connection at a time: a
//! scrape is small and rare, and a slow client is cut off by the timeouts
//! (2 s per read, 5 s for the whole request head). A request head larger
//! than [`MAX_REQUEST_BYTES`] is refused with 431; a malformed one with 400.
//! Nothing a client sends can panic the thread.
//!
//! The server stops when [`MetricsServer`] is dropped: the accept loop polls
//! a stop flag every 20 ms, and the drop waits for the thread to end, so the
//! port is closed when the drop returns.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::{CONTENT_TYPE, Metrics, MetricsError};

/// Largest request head read (request line and headers): 8 KiB.
pub const MAX_REQUEST_BYTES: usize = 8 * 1024;

/// How long one read may wait.
const READ_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a client may take to send its whole request head.
const REQUEST_DEADLINE: Duration = Duration::from_secs(5);
/// How long writing the answer may take.
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// How often the idle accept loop looks at the stop flag.
const POLL: Duration = Duration::from_millis(20);

/// A running metrics endpoint. Dropping it stops the server.
#[derive(Debug)]
pub struct MetricsServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl MetricsServer {
    /// Binds `addr` (port 0 picks a free port; see [`Self::local_addr`]) and
    /// serves `metrics` on a background thread.
    ///
    /// Only a loopback address is accepted (the endpoint has no
    /// authentication); [`MetricsServer::start_remote`] takes any.
    pub fn start(addr: SocketAddr, metrics: Metrics) -> Result<MetricsServer, MetricsError> {
        if !addr.ip().is_loopback() {
            return Err(MetricsError::NotLoopback { addr });
        }
        Self::start_remote(addr, metrics)
    }

    /// [`MetricsServer::start`] on any address, loopback or not: for an
    /// operator who asked for it (`--metrics-allow-remote`).
    pub fn start_remote(addr: SocketAddr, metrics: Metrics) -> Result<MetricsServer, MetricsError> {
        let listener =
            TcpListener::bind(addr).map_err(|source| MetricsError::Bind { addr, source })?;
        let local = listener
            .local_addr()
            .map_err(|source| MetricsError::Bind { addr, source })?;
        listener
            .set_nonblocking(true)
            .map_err(|source| MetricsError::Bind { addr, source })?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("trailhound-metrics".into())
            .spawn(move || serve(listener, metrics, flag))
            .map_err(MetricsError::Spawn)?;
        Ok(MetricsServer {
            addr: local,
            stop,
            thread: Some(thread),
        })
    }

    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve(listener: TcpListener, metrics: Metrics, stop: Arc<AtomicBool>) {
    while !stop.load(Ordering::Relaxed) {
        match listener.accept() {
            Ok((stream, peer)) => {
                if let Err(e) = handle(stream, &metrics) {
                    tracing::debug!(peer = %peer, error = %e, "Metrics request failed.");
                }
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => std::thread::sleep(POLL),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => {
                // Out of file descriptors and the like: wait, then go on.
                tracing::warn!(error = %e, "Metrics server cannot accept a connection.");
                std::thread::sleep(POLL * 5);
            }
        }
    }
}

/// What the request head turned out to be.
enum Head {
    /// A complete head: its bytes up to the blank line.
    Complete(Vec<u8>),
    /// Larger than [`MAX_REQUEST_BYTES`] without an end.
    TooLarge,
    /// The client stopped sending (closed, or took too long) before the end.
    Incomplete,
}

fn read_head(stream: &mut TcpStream) -> std::io::Result<Head> {
    let started = Instant::now();
    let mut head = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    loop {
        if started.elapsed() > REQUEST_DEADLINE {
            return Ok(Head::Incomplete);
        }
        let n = match stream.read(&mut chunk) {
            Ok(0) => return Ok(Head::Incomplete),
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return Ok(Head::Incomplete);
            }
            Err(e) => return Err(e),
        };
        // Look for the end only in what may hold it: the new bytes and the
        // three before them.
        let from = head.len().saturating_sub(3);
        head.extend_from_slice(chunk.get(..n).unwrap_or_default());
        if let Some(end) = find_end(head.get(from..).unwrap_or_default()) {
            if from + end > MAX_REQUEST_BYTES {
                return Ok(Head::TooLarge);
            }
            head.truncate(from + end);
            return Ok(Head::Complete(head));
        }
        if head.len() > MAX_REQUEST_BYTES {
            return Ok(Head::TooLarge);
        }
    }
}

/// Where the head ends (just before the blank line), `\r\n\r\n` or `\n\n`.
fn find_end(bytes: &[u8]) -> Option<usize> {
    let crlf = bytes.windows(4).position(|w| w == b"\r\n\r\n");
    let lf = bytes.windows(2).position(|w| w == b"\n\n");
    match (crlf, lf) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

fn handle(mut stream: TcpStream, metrics: &Metrics) -> std::io::Result<()> {
    // Accepted sockets do not inherit the listener's non-blocking mode on
    // every platform: make sure, so the timeouts apply.
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(READ_TIMEOUT))?;
    stream.set_write_timeout(Some(WRITE_TIMEOUT))?;
    let answer = match read_head(&mut stream)? {
        Head::Incomplete => return Ok(()),
        Head::TooLarge => {
            Answer::plain("431 Request Header Fields Too Large", "request too large\n")
        }
        Head::Complete(head) => route(&head, metrics),
    };
    answer.write_to(&mut stream)?;
    // Half-close, then read what the client may still be sending, so that
    // closing with unread bytes does not reset the connection before the
    // client has read the answer.
    let _ = stream.shutdown(Shutdown::Write);
    let _ = stream.set_read_timeout(Some(Duration::from_millis(200)));
    let mut sink = [0u8; 4096];
    let mut drained = 0usize;
    while drained < 64 * 1024 {
        match stream.read(&mut sink) {
            Ok(0) | Err(_) => break,
            Ok(n) => drained += n,
        }
    }
    Ok(())
}

/// An HTTP answer.
struct Answer {
    status: &'static str,
    content_type: &'static str,
    body: String,
    head_only: bool,
    allow: bool,
}

impl Answer {
    fn plain(status: &'static str, body: &str) -> Self {
        Answer {
            status,
            content_type: "text/plain; charset=utf-8",
            body: body.to_string(),
            head_only: false,
            allow: false,
        }
    }

    fn write_to(&self, stream: &mut TcpStream) -> std::io::Result<()> {
        let mut out = format!(
            "HTTP/1.1 {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n",
            self.status,
            self.content_type,
            self.body.len()
        );
        if self.allow {
            out.push_str("Allow: GET, HEAD\r\n");
        }
        out.push_str("\r\n");
        if !self.head_only {
            out.push_str(&self.body);
        }
        stream.write_all(out.as_bytes())?;
        stream.flush()
    }
}

/// Answers a complete request head.
fn route(head: &[u8], metrics: &Metrics) -> Answer {
    let Ok(text) = std::str::from_utf8(head) else {
        return Answer::plain("400 Bad Request", "request is not UTF-8\n");
    };
    let line = text.lines().next().unwrap_or_default();
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Answer::plain("400 Bad Request", "malformed request line\n");
    };
    if !version.starts_with("HTTP/1.") || method.is_empty() || target.is_empty() {
        return Answer::plain("400 Bad Request", "malformed request line\n");
    }
    let head_only = match method {
        "GET" => false,
        "HEAD" => true,
        _ => {
            let mut a = Answer::plain("405 Method Not Allowed", "only GET and HEAD\n");
            a.allow = true;
            return a;
        }
    };
    let path = target.split(['?', '#']).next().unwrap_or_default();
    let mut answer = match path {
        "/metrics" => Answer {
            status: "200 OK",
            content_type: CONTENT_TYPE,
            body: metrics.render(),
            head_only: false,
            allow: false,
        },
        "/healthz" => Answer::plain("200 OK", "ok\n"),
        _ => Answer::plain("404 Not Found", "not found: try /metrics or /healthz\n"),
    };
    answer.head_only = head_only;
    answer
}
