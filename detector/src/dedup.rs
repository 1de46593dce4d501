//! Alert dedup: matches of one rule with the same key in the same period
//! of event time are one alert.
//!
//! Periods are a fixed grid (an hour-long period runs from the top of one
//! hour to the next), not a span opened by whichever match arrives first.
//! CloudTrail delivers late and out of order, a replay from the lake comes
//! in event-time order, and a rebalanced partition is read again from its
//! last offset: with a grid, the set of alerts and their ids are the same
//! whatever order the matches came in, so every replay gives the ids of the
//! live run and duplicates downstream are harmless. The price is that two
//! matches a minute apart on either side of a period boundary are two
//! alerts.

use std::collections::HashMap;

/// What dedup says about a match.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Raise an alert: the first match of its period, which starts at
    /// `window_start` (event time).
    New {
        /// Event time the period starts at.
        window_start: i64,
    },
    /// This key already raised an alert in this period.
    Suppressed,
}

/// Periods that raised an alert, by rule, key and period start; the value
/// is the period's end.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct Dedup {
    open: HashMap<(String, Vec<String>, i64), i64>,
    newest: i64,
}

/// Start of the period of length `period` that holds `event_time`; a
/// period of zero or less makes every microsecond its own period.
pub fn period_start(event_time: i64, period: i64) -> i64 {
    if period <= 0 {
        event_time
    } else {
        event_time.div_euclid(period).saturating_mul(period)
    }
}

impl Dedup {
    /// Checks a match at `event_time`: new for the first match of its
    /// period, suppressed for the others.
    pub fn check(&mut self, rule: &str, key: &[String], event_time: i64, period: i64) -> Verdict {
        self.newest = self.newest.max(event_time);
        let start = period_start(event_time, period);
        let k = (rule.to_string(), key.to_vec(), start);
        if self.open.contains_key(&k) {
            return Verdict::Suppressed;
        }
        self.open.insert(k, start.saturating_add(period.max(1)));
        Verdict::New {
            window_start: start,
        }
    }

    /// Drops periods that ended more than `horizon` before the newest event.
    pub fn expire(&mut self, horizon: i64) {
        let cutoff = self.newest.saturating_sub(horizon);
        self.open.retain(|_, &mut end| end >= cutoff);
    }

    /// Keeps only the periods of rules for which `keep` says true.
    pub fn retain_rules(&mut self, mut keep: impl FnMut(&str) -> bool) {
        self.open.retain(|(rule, _, _), _| keep(rule));
    }

    /// Periods remembered.
    pub fn len(&self) -> usize {
        self.open.len()
    }

    /// True when no period is remembered.
    pub fn is_empty(&self) -> bool {
        self.open.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: i64 = 3_600_000_000;

    #[test]
    fn same_key_within_period_is_one_alert() {
        let mut d = Dedup::default();
        let k = vec!["p".to_string()];
        assert_eq!(d.check("r", &k, 0, H), Verdict::New { window_start: 0 });
        assert_eq!(d.check("r", &k, H - 1, H), Verdict::Suppressed);
        assert_eq!(d.check("r", &k, H, H), Verdict::New { window_start: H });
        assert_eq!(d.check("other", &k, H, H), Verdict::New { window_start: H });
    }

    #[test]
    fn the_alerts_are_the_same_whatever_order_the_matches_arrive_in() {
        let k = vec!["p".to_string()];
        let times = [10, H / 2, H - 1, H + 5, 3 * H + 1, 2 * H];
        let run = |order: &[i64]| {
            let mut d = Dedup::default();
            let mut opened: Vec<i64> = order
                .iter()
                .filter_map(|&t| match d.check("r", &k, t, H) {
                    Verdict::New { window_start } => Some(window_start),
                    Verdict::Suppressed => None,
                })
                .collect();
            opened.sort_unstable();
            opened
        };
        let forward = run(&times);
        let mut backward = times;
        backward.reverse();
        assert_eq!(forward, vec![0, H, 2 * H, 3 * H]);
        assert_eq!(run(&backward), forward);
    }

    #[test]
    fn a_late_match_in_a_period_already_alerted_is_suppressed() {
        let mut d = Dedup::default();
        let k = vec!["p".to_string()];
        assert_eq!(
            d.check("r", &k, H + 10, H),
            Verdict::New { window_start: H }
        );
        assert_eq!(
            d.check("r", &k, 5 * H, H),
            Verdict::New {
                window_start: 5 * H
            }
        );
        // Late, but its period already raised an alert.
        assert_eq!(d.check("r", &k, H + 1, H), Verdict::Suppressed);
        assert_eq!(period_start(-1, H), -H);
    }

    #[test]
    fn expiry_forgets_old_windows() {
        let mut d = Dedup::default();
        d.check("r", &["a".into()], 0, H);
        d.check("r", &["b".into()], 10 * H, H);
        d.expire(2 * H);
        assert_eq!(d.len(), 1);
    }
}
