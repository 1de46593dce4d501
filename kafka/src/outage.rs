//! Riding out a broker outage: how ingest and detect wait before they try a
//! failed step again, and when they give up.
//!
//! A step that failed with a transient error ([`KafkaError::is_transient`])
//! is tried again after a backoff of 1 s, doubling up to 30 s, for as long as
//! the outage lasts up to the bus's `max_outage_secs` (counted from the first
//! failure since the last success). The wait ends early when the stop flag
//! is set. Anything else, or an outage longer than the limit, is returned
//! as it is.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use trailhound_bus::BusConfig;

use crate::error::KafkaError;

/// The first wait after a failure.
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
/// The longest wait between two tries.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// The retry state of one loop (an ingest run, a detector member).
#[derive(Debug)]
pub struct OutageRetry {
    limit: Option<Duration>,
    stop: Option<Arc<AtomicBool>>,
    /// When the current outage began (the first failure since a success).
    since: Option<Instant>,
    /// Failures in the current outage.
    failures: u32,
    /// Outages ridden out so far (for the summary).
    outages: u64,
}

/// What to do after a failure.
#[derive(Debug)]
pub enum Retry {
    /// Waited out the backoff: try again.
    Again,
    /// Asked to stop while waiting.
    Stopped,
}

impl OutageRetry {
    /// Retries within `bus.max_outage_secs`, waits cut short by `stop`.
    pub fn new(bus: &BusConfig, stop: Option<Arc<AtomicBool>>) -> Self {
        Self::with_limit(bus.max_outage(), stop)
    }

    /// Retries for at most `limit` (`None`: for ever).
    pub fn with_limit(limit: Option<Duration>, stop: Option<Arc<AtomicBool>>) -> Self {
        Self {
            limit,
            stop,
            since: None,
            failures: 0,
            outages: 0,
        }
    }

    /// The step succeeded: the next failure starts a new outage.
    pub fn succeeded(&mut self) {
        if self.since.take().is_some() {
            tracing::info!(failures = self.failures, "The broker is reachable again.");
        }
        self.failures = 0;
    }

    /// Outages met so far (each one counted at its first failure).
    pub fn outages(&self) -> u64 {
        self.outages
    }

    /// After `error`: waits the backoff and says to try again, or returns
    /// the error when it is not transient or the outage is over its limit.
    pub fn after(&mut self, what: &str, error: KafkaError) -> Result<Retry, KafkaError> {
        if !error.is_transient() {
            return Err(error);
        }
        let since = *self.since.get_or_insert_with(|| {
            self.outages += 1;
            Instant::now()
        });
        if self.limit.is_some_and(|limit| since.elapsed() >= limit) {
            tracing::error!(%error, lasted = ?since.elapsed(), "Giving up: the broker outage is longer than max_outage_secs.");
            return Err(error);
        }
        self.failures = self.failures.saturating_add(1);
        let wait = backoff(self.failures);
        tracing::warn!(%error, step = what, retry_in = ?wait, outage = ?since.elapsed(), "Kafka step failed; trying again.");
        let until = Instant::now() + wait;
        while Instant::now() < until {
            if self
                .stop
                .as_ref()
                .is_some_and(|s| s.load(Ordering::Relaxed))
            {
                return Ok(Retry::Stopped);
            }
            std::thread::sleep(Duration::from_millis(100).min(until - Instant::now()));
        }
        Ok(Retry::Again)
    }
}

/// The wait before try number `failures + 1`: 1 s doubling, at most 30 s.
fn backoff(failures: u32) -> Duration {
    let doublings = failures.saturating_sub(1).min(5);
    (FIRST_BACKOFF * 2u32.pow(doublings)).min(MAX_BACKOFF)
}

#[cfg(test)]
mod tests {
    use super::*;
    use trailhound_bus::BusError;

    fn transient() -> KafkaError {
        KafkaError::Bus(BusError::AckTimeout {
            input: "x".into(),
            sent: 2,
            acked: 1,
            waited: Duration::from_secs(1),
        })
    }

    #[test]
    fn backoff_doubles_up_to_thirty_seconds() {
        let steps: Vec<u64> = (1..=8).map(|f| backoff(f).as_secs()).collect();
        assert_eq!(steps, [1, 2, 4, 8, 16, 30, 30, 30]);
    }

    #[test]
    fn a_permanent_error_is_returned_at_once() {
        let mut retry = OutageRetry::with_limit(None, None);
        let error = KafkaError::State("bad".into());
        assert!(matches!(retry.after("x", error), Err(KafkaError::State(_))));
        assert_eq!(retry.outages(), 0);
    }

    #[test]
    fn an_outage_past_its_limit_gives_up_with_the_error() {
        let mut retry = OutageRetry::with_limit(Some(Duration::ZERO), None);
        assert!(matches!(
            retry.after("x", transient()),
            Err(KafkaError::Bus(BusError::AckTimeout { .. }))
        ));
    }

    #[test]
    fn a_stop_ends_the_wait() {
        let stop = Arc::new(AtomicBool::new(true));
        let mut retry = OutageRetry::with_limit(None, Some(stop));
        assert!(matches!(retry.after("x", transient()), Ok(Retry::Stopped)));
        assert_eq!(retry.outages(), 1);
        retry.succeeded();
        assert!(matches!(retry.after("x", transient()), Ok(Retry::Stopped)));
        assert_eq!(
            retry.outages(),
            2,
            "a failure after a success is a new outage"
        );
    }
}
