//! Alert dedup: matches of one rule with the same key within the rule's
//! period (counted in event time from the first match) are one alert.

use std::collections::HashMap;

/// What dedup says about a match.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Raise an alert; its dedup window starts at `window_start` (event time).
    New {
        /// Event time the window opened at.
        window_start: i64,
    },
    /// An alert for this key is already open.
    Suppressed,
}

/// Open dedup windows by rule and key.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct Dedup {
    open: HashMap<(String, Vec<String>), (i64, i64)>,
    newest: i64,
}

impl Dedup {
    /// Checks a match at `event_time`, opening a window when none covers it.
    pub fn check(&mut self, rule: &str, key: &[String], event_time: i64, period: i64) -> Verdict {
        self.newest = self.newest.max(event_time);
        let k = (rule.to_string(), key.to_vec());
        match self.open.get(&k) {
            Some(&(start, end)) if event_time >= start && event_time < end => Verdict::Suppressed,
            // An event older than the open window (CloudTrail is late and out
            // of order) within one period of it is the same incident.
            Some(&(start, _)) if event_time < start && start - event_time < period => {
                Verdict::Suppressed
            }
            _ => {
                self.open
                    .insert(k, (event_time, event_time.saturating_add(period)));
                Verdict::New {
                    window_start: event_time,
                }
            }
        }
    }

    /// Drops windows that ended more than `horizon` before the newest event.
    pub fn expire(&mut self, horizon: i64) {
        let cutoff = self.newest.saturating_sub(horizon);
        self.open.retain(|_, &mut (_, end)| end >= cutoff);
    }

    /// Keeps only the windows of rules for which `keep` says true.
    pub fn retain_rules(&mut self, mut keep: impl FnMut(&str) -> bool) {
        self.open.retain(|(rule, _), _| keep(rule));
    }

    /// Open windows.
    pub fn len(&self) -> usize {
        self.open.len()
    }

    /// True when no window is open.
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
    fn expiry_forgets_old_windows() {
        let mut d = Dedup::default();
        d.check("r", &["a".into()], 0, H);
        d.check("r", &["b".into()], 10 * H, H);
        d.expire(2 * H);
        assert_eq!(d.len(), 1);
    }
}
