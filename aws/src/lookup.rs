//! CloudTrail's LookupEvents, for accounts without a trail bucket: the last
//! 90 days of management events, read region by region.
//!
//! Each region keeps a [`RegionCursor`]: the end of the last window read
//! and the event ids seen in the last `overlap` before it. A poll asks for
//! `[until - overlap, now]`, follows every page, and drops the ids it has
//! seen, so an event CloudTrail made visible late (LookupEvents lags by
//! minutes) is read once and only once. The poll returns the new cursor
//! beside the records instead of moving the old one: the caller saves it
//! only after the records were acknowledged downstream, so a crash reads
//! the window again (at least once; event ids make it harmless).
//!
//! LookupEvents allows 2 requests per second per account and region;
//! every request of a region goes through a limiter that keeps under
//! `requests_per_second` (default 1.5), and throttling past that is
//! retried by the SDK's standard backoff.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use aws_sdk_cloudtrail::primitives::DateTime;
use serde::{Deserialize, Serialize};

use crate::config::{self, AwsSettings};
use crate::error::AwsError;

/// How LookupEvents is read.
#[derive(Debug, Clone)]
pub struct LookupSettings {
    /// Regions to read; empty: the configured region only.
    pub regions: Vec<String>,
    /// How far back each poll reaches before the previous window's end.
    pub overlap: Duration,
    /// Where a region without a cursor starts: this long before now.
    pub lookback: Duration,
    /// Requests per second per region, at most (the API allows 2).
    pub requests_per_second: f64,
    /// Events per page (the API's maximum is 50).
    pub page_size: i32,
}

impl Default for LookupSettings {
    fn default() -> Self {
        Self {
            regions: Vec::new(),
            overlap: Duration::from_secs(15 * 60),
            lookback: Duration::from_secs(60 * 60),
            requests_per_second: 1.5,
            page_size: 50,
        }
    }
}

/// How far one region has been read.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegionCursor {
    /// End of the last window read, microseconds UTC.
    pub until: i64,
    /// Event ids seen within `overlap` of `until`, with their event times.
    pub seen: BTreeMap<String, i64>,
}

/// Every region's cursor: what the caller checkpoints.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LookupCursor {
    /// By region.
    pub regions: BTreeMap<String, RegionCursor>,
}

/// What one poll read.
#[derive(Debug, Clone, Default)]
pub struct Polled {
    /// The CloudTrail records (each one JSON object, as a trail file holds
    /// them), in the order the API gave them.
    pub records: Vec<String>,
    /// Events left out because an earlier window had them.
    pub duplicates: u64,
    /// Events without their CloudTrail record (counted, not sent).
    pub without_record: u64,
    /// Requests made.
    pub requests: u64,
    /// The cursor to save once `records` are acknowledged.
    pub next: LookupCursor,
}

/// Spaces the requests of one region.
#[derive(Debug)]
struct Limiter {
    interval: Duration,
    last: Option<Instant>,
    sent: Vec<Instant>,
}

impl Limiter {
    fn new(per_second: f64) -> Self {
        let per_second = if per_second.is_finite() && per_second > 0.0 {
            per_second.min(2.0)
        } else {
            1.5
        };
        Self {
            interval: Duration::from_secs_f64(1.0 / per_second),
            last: None,
            sent: Vec::new(),
        }
    }

    fn wait(&mut self) {
        if let Some(last) = self.last {
            let next = last + self.interval;
            let now = Instant::now();
            if next > now {
                std::thread::sleep(next - now);
            }
        }
        let now = Instant::now();
        self.last = Some(now);
        // Kept for the figures and the rate test; bounded.
        if self.sent.len() < 10_000 {
            self.sent.push(now);
        }
    }
}

/// LookupEvents clients, one per region, on a runtime of their own.
pub struct LookupReader {
    runtime: tokio::runtime::Runtime,
    regions: Vec<(String, aws_sdk_cloudtrail::Client, Limiter)>,
    settings: LookupSettings,
}

impl LookupReader {
    /// Clients from the standard configuration and `aws`, for each region
    /// of `settings` (the configured region when it names none).
    pub fn new(aws: &AwsSettings, settings: LookupSettings) -> Result<Self, AwsError> {
        let runtime = crate::queue::runtime()?;
        let sdk = runtime.block_on(config::load(aws));
        let regions = if settings.regions.is_empty() {
            vec![
                sdk.region()
                    .map_or_else(|| "us-east-1".to_string(), |r| r.to_string()),
            ]
        } else {
            settings.regions.clone()
        };
        let clients = regions
            .into_iter()
            .map(|region| {
                let conf = aws_sdk_cloudtrail::config::Builder::from(&sdk)
                    .region(aws_sdk_cloudtrail::config::Region::new(region.clone()))
                    .build();
                let limiter = Limiter::new(settings.requests_per_second);
                (region, aws_sdk_cloudtrail::Client::from_conf(conf), limiter)
            })
            .collect();
        Ok(Self {
            runtime,
            regions: clients,
            settings,
        })
    }

    /// From ready clients, by region (tests, embedders).
    pub fn from_clients(
        clients: Vec<(String, aws_sdk_cloudtrail::Client)>,
        settings: LookupSettings,
    ) -> Result<Self, AwsError> {
        let regions = clients
            .into_iter()
            .map(|(r, c)| (r, c, Limiter::new(settings.requests_per_second)))
            .collect();
        Ok(Self {
            runtime: crate::queue::runtime()?,
            regions,
            settings,
        })
    }

    /// The regions read.
    pub fn regions(&self) -> impl Iterator<Item = &str> {
        self.regions.iter().map(|(r, _, _)| r.as_str())
    }

    /// When each request of `region` was sent (the first 10,000).
    pub fn request_times(&self, region: &str) -> &[Instant] {
        self.regions
            .iter()
            .find(|(r, _, _)| r == region)
            .map_or(&[], |(_, _, l)| l.sent.as_slice())
    }

    /// Reads every region from its cursor up to `now` (microseconds UTC).
    pub fn poll(&mut self, cursor: &LookupCursor, now: i64) -> Result<Polled, AwsError> {
        let overlap = micros(self.settings.overlap);
        let lookback = micros(self.settings.lookback);
        let page_size = self.settings.page_size.clamp(1, 50);
        let mut polled = Polled {
            next: cursor.clone(),
            ..Polled::default()
        };
        for (region, client, limiter) in &mut self.regions {
            let previous = cursor.regions.get(region.as_str());
            let start = previous.map_or(now - lookback, |c| c.until - overlap);
            let mut seen = previous.map(|c| c.seen.clone()).unwrap_or_default();
            let mut token: Option<String> = None;
            loop {
                limiter.wait();
                polled.requests += 1;
                let request = client
                    .lookup_events()
                    .start_time(datetime(start))
                    .end_time(datetime(now))
                    .max_results(page_size)
                    .set_next_token(token.clone());
                let out = self
                    .runtime
                    .block_on(request.send())
                    .map_err(|e| AwsError::from_sdk("cloudtrail:LookupEvents", e))?;
                for event in out.events() {
                    let id = event.event_id().unwrap_or_default();
                    let time = event.event_time().map_or(now, from_datetime);
                    if !id.is_empty() && seen.contains_key(id) {
                        polled.duplicates += 1;
                        continue;
                    }
                    match event.cloud_trail_event() {
                        Some(record) if !record.trim().is_empty() => {
                            polled.records.push(record.to_string());
                        }
                        _ => polled.without_record += 1,
                    }
                    if !id.is_empty() {
                        seen.insert(id.to_string(), time);
                    }
                }
                token = out
                    .next_token()
                    .filter(|t| !t.is_empty())
                    .map(str::to_string);
                if token.is_none() {
                    break;
                }
            }
            // Only ids the next window can meet again are kept.
            let keep_from = now - overlap;
            seen.retain(|_, t| *t >= keep_from);
            polled
                .next
                .regions
                .insert(region.clone(), RegionCursor { until: now, seen });
        }
        Ok(polled)
    }
}

fn micros(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX / 4)
}

fn datetime(micros: i64) -> DateTime {
    DateTime::from_nanos(i128::from(micros) * 1000).unwrap_or_else(|_| DateTime::from_secs(0))
}

fn from_datetime(t: &DateTime) -> i64 {
    t.secs()
        .saturating_mul(1_000_000)
        .saturating_add(i64::from(t.subsec_nanos() / 1000))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_round_trip_through_the_sdk_type() {
        let t = 1_764_763_200_123_456;
        assert_eq!(from_datetime(&datetime(t)), t);
    }

    #[test]
    fn the_limiter_never_allows_more_than_two_requests_a_second() {
        assert_eq!(Limiter::new(10.0).interval, Duration::from_millis(500));
        assert_eq!(Limiter::new(f64::NAN).interval, Limiter::new(1.5).interval);
    }
}
