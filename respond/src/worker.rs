//! The responder on a thread of its own, behind the pipeline's
//! [`ResponseHook`]: IAM calls and their retries never hold up detection.
//! Alerts wait in a bounded queue; when it is full, the alert's response
//! is recorded as skipped with that reason (never dropped unrecorded).
//! The thread also releases actions whose time to live is over, checking
//! every few seconds.

use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError, sync_channel};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use trailhound_core::{Action, ActionOutcome, Alert, ResponseHook, ResponseOutput};

use crate::responder::Responder;

enum Msg {
    Alert(Box<Alert>),
    Settle(SyncSender<()>),
}

/// How often the thread looks for expired actions.
const EXPIRY_CHECK: Duration = Duration::from_secs(5);

/// A [`Responder`] running on its own thread.
pub struct ResponseWorker {
    tx: Option<SyncSender<Msg>>,
    rx: Receiver<ResponseOutput>,
    thread: Option<JoinHandle<()>>,
    queue: usize,
    mode: trailhound_core::ActionMode,
    /// Records made on this side (queue overflow), handed out at the next poll.
    pending: Vec<ResponseOutput>,
}

impl ResponseWorker {
    /// Starts the thread.
    pub fn start(responder: Responder) -> Self {
        let queue = responder.config().queue.max(1);
        let mode = responder.config().mode;
        let (tx, inbox) = sync_channel::<Msg>(queue);
        let (outbox, rx) = std::sync::mpsc::channel::<ResponseOutput>();
        let thread = std::thread::Builder::new()
            .name("trailhound-respond".into())
            .spawn(move || run(responder, inbox, outbox))
            .ok();
        Self {
            tx: Some(tx),
            rx,
            thread,
            queue,
            mode,
            pending: Vec::new(),
        }
    }

    fn drain(&self) -> ResponseOutput {
        let mut out = ResponseOutput::default();
        while let Ok(o) = self.rx.try_recv() {
            out.extend(o);
        }
        out
    }
}

fn run(
    mut responder: Responder,
    inbox: Receiver<Msg>,
    outbox: std::sync::mpsc::Sender<ResponseOutput>,
) {
    let mut last_expiry = Instant::now();
    loop {
        match inbox.recv_timeout(EXPIRY_CHECK) {
            Ok(Msg::Alert(alert)) => {
                let out = responder.handle(&alert);
                if !out.is_empty() && outbox.send(out).is_err() {
                    return;
                }
            }
            Ok(Msg::Settle(done)) => {
                let _ = done.send(());
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
        if last_expiry.elapsed() >= EXPIRY_CHECK {
            last_expiry = Instant::now();
            let out = responder.expire();
            if !out.is_empty() && outbox.send(out).is_err() {
                return;
            }
        }
    }
}

impl ResponseHook for ResponseWorker {
    fn alerts(&mut self, alerts: &[Alert]) {
        let Some(tx) = &self.tx else { return };
        let mut overflow = Vec::new();
        for a in alerts {
            match tx.try_send(Msg::Alert(Box::new(a.clone()))) {
                Ok(()) => {}
                Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                    overflow.push(a);
                }
            }
        }
        if overflow.is_empty() {
            return;
        }
        tracing::warn!(
            alerts = overflow.len(),
            queue = self.queue,
            "Response queue full: responses recorded as skipped."
        );
        // Recorded right away, so the lake shows what was not considered.
        let actions = overflow
            .into_iter()
            .map(|a| Action {
                action_id: trailhound_core::id::stable_id(["action", "queue", &a.alert_id]),
                alert_id: a.alert_id.clone(),
                rule_id: a.rule_id.clone(),
                principal: a.principal.clone(),
                kind: "respond".into(),
                mode: self.mode,
                outcome: ActionOutcome::Skipped,
                reason: format!("response queue full ({} alerts waiting)", self.queue),
                time: trailhound_core::time::now_micros(),
                details: serde_json::Value::Null,
            })
            .collect();
        self.pending.push(ResponseOutput {
            actions,
            alerts: Vec::new(),
        });
    }

    fn poll(&mut self) -> ResponseOutput {
        let mut out = self.drain();
        for p in self.pending.drain(..) {
            out.extend(p);
        }
        out
    }

    fn settle(&mut self, timeout: Duration) -> ResponseOutput {
        if let Some(tx) = &self.tx {
            let (done_tx, done_rx) = sync_channel::<()>(1);
            let deadline = Instant::now() + timeout;
            // The queue may be full: keep offering the marker until the deadline.
            let mut msg = Msg::Settle(done_tx);
            loop {
                match tx.try_send(msg) {
                    Ok(()) => {
                        let left = deadline.saturating_duration_since(Instant::now());
                        let _ = done_rx.recv_timeout(left);
                        break;
                    }
                    Err(TrySendError::Full(m)) if Instant::now() < deadline => {
                        msg = m;
                        std::thread::sleep(Duration::from_millis(10));
                    }
                    Err(_) => break,
                }
            }
        }
        self.poll()
    }
}

impl Drop for ResponseWorker {
    fn drop(&mut self) {
        self.tx = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
