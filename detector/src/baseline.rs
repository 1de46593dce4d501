//! Baseline state: per baseline rule and key (the principal by default), what
//! is usual, with a fixed memory budget.
//!
//! - `new_value`: a compact set of the values seen, each with its count, at
//!   most [`MAX_VALUES`] per key. Past that the least-seen value is evicted
//!   and the set is marked **saturated**: a saturated set no longer alerts on
//!   new values (it cannot tell new from evicted), it only keeps learning.
//! - `unusual_hour`: 24 counters, one per hour of day (UTC or the rule's
//!   offset).
//!
//! A key may alert only once its first event is at least the rule's
//! `learning` period old (event time) and it has `min_history` events
//! behind it. Every row updates the state, also rows that alert, so the
//! same departure alerts once. Keys idle (in event time) beyond a horizon
//! ([`DEFAULT_IDLE_HORIZON_MICROS`]) are evicted by a sweep at most once an
//! hour of event time; a global cap on keys across all baseline rules
//! ([`DEFAULT_MAX_PRINCIPALS`]) refuses new keys when reached and counts
//! the refusals ([`BaselineStats::cap_reached`]).

use std::collections::HashMap;

use trailhound_rules::baseline::{BaselineKind, CompiledBaseline};

/// Most values kept per key and rule.
pub const MAX_VALUES: usize = 256;
/// Keys idle for longer than this (event time) are forgotten: 30 days.
pub const DEFAULT_IDLE_HORIZON_MICROS: i64 = 30 * 86_400 * 1_000_000;
/// Most keys held across every baseline rule.
pub const DEFAULT_MAX_PRINCIPALS: usize = 1_000_000;
/// How many usual values an alert lists.
pub const USUAL_SHOWN: usize = 5;
const SWEEP_EVERY_MICROS: i64 = 3_600 * 1_000_000;
const HOUR_MICROS: i64 = 3_600 * 1_000_000;

/// The budgets of baseline state.
#[derive(Debug, Clone, Copy)]
pub struct BaselineLimits {
    /// Most values per key and rule ([`MAX_VALUES`]).
    pub max_values: usize,
    /// Idle horizon in microseconds of event time.
    pub idle_horizon_micros: i64,
    /// Most keys across all baseline rules.
    pub max_principals: usize,
}

impl Default for BaselineLimits {
    fn default() -> Self {
        Self {
            max_values: MAX_VALUES,
            idle_horizon_micros: DEFAULT_IDLE_HORIZON_MICROS,
            max_principals: DEFAULT_MAX_PRINCIPALS,
        }
    }
}

/// Counters about baseline state.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BaselineStats {
    /// Keys held now, across rules.
    pub principals: usize,
    /// Value sets that became saturated.
    pub saturated_sets: u64,
    /// Values evicted from full sets.
    pub evicted_values: u64,
    /// Keys forgotten because they were idle beyond the horizon.
    pub evicted_idle: u64,
    /// Events of new keys not learnt because the global cap was reached.
    pub cap_reached: u64,
}

/// What one key has shown so far.
#[derive(Debug, Clone)]
struct Profile {
    first_seen: i64,
    last_seen: i64,
    events: u64,
    values: HashMap<Box<str>, u32>,
    saturated: bool,
    hours: Option<Box<[u32; 24]>>,
}

/// A departure from a key's baseline, with what is usual beside it.
#[derive(Debug, Clone, PartialEq)]
pub enum Finding {
    /// A value never seen for the key.
    NewValue {
        /// The new value.
        value: String,
        /// Up to [`USUAL_SHOWN`] most-seen values with their counts.
        usual: Vec<(String, u32)>,
        /// How many distinct values the key had.
        distinct: usize,
        /// Events seen for the key before this one.
        events: u64,
        /// Time of the key's first event.
        since: i64,
    },
    /// An hour of day never or rarely seen for the key.
    UnusualHour {
        /// The hour (0-23, in the rule's offset).
        hour: u8,
        /// Events in that hour before this one.
        seen: u32,
        /// Up to [`USUAL_SHOWN`] busiest hours with their counts.
        usual: Vec<(u8, u32)>,
        /// Events seen for the key before this one.
        events: u64,
        /// Time of the key's first event.
        since: i64,
    },
}

impl Finding {
    /// What is new, for the alert id: the value, or `hour:HH`.
    pub fn id_part(&self) -> String {
        match self {
            Finding::NewValue { value, .. } => value.clone(),
            Finding::UnusualHour { hour, .. } => format!("hour:{hour:02}"),
        }
    }
}

/// Baseline state of every baseline rule of an engine.
#[derive(Debug, Default)]
pub struct BaselineStore {
    rules: Vec<HashMap<Vec<String>, Profile>>,
    limits: BaselineLimits,
    stats: BaselineStats,
    last_sweep: Option<i64>,
}

impl BaselineStore {
    /// Empty state for `rules` rules (indexed as in the rule set).
    pub fn new(rules: usize, limits: BaselineLimits) -> Self {
        Self {
            rules: (0..rules).map(|_| HashMap::new()).collect(),
            limits,
            stats: BaselineStats::default(),
            last_sweep: None,
        }
    }

    /// Sets the budgets.
    pub fn set_limits(&mut self, limits: BaselineLimits) {
        self.limits = limits;
    }

    /// Counters so far.
    pub fn stats(&self) -> &BaselineStats {
        &self.stats
    }

    /// Learns one row of rule `ri` for `key` at event time `time` and says
    /// whether it departs from the key's baseline. `value` is the row's value
    /// for `new_value` (rows without one are not learnt); ignored for
    /// `unusual_hour`.
    pub fn observe(
        &mut self,
        ri: usize,
        baseline: &CompiledBaseline,
        key: Vec<String>,
        value: Option<&str>,
        time: i64,
    ) -> Option<Finding> {
        if baseline.kind == BaselineKind::NewValue && value.is_none() {
            return None;
        }
        let held = self.stats.principals;
        let limits = self.limits;
        let profiles = self.rules.get_mut(ri)?;
        let profile = match profiles.get_mut(&key) {
            Some(p) => p,
            None => {
                if held >= limits.max_principals {
                    self.stats.cap_reached += 1;
                    return None;
                }
                self.stats.principals += 1;
                profiles.entry(key).or_insert_with(|| Profile {
                    first_seen: time,
                    last_seen: time,
                    events: 0,
                    values: HashMap::new(),
                    saturated: false,
                    hours: (baseline.kind == BaselineKind::UnusualHour).then(|| Box::new([0; 24])),
                })
            }
        };
        profile.first_seen = profile.first_seen.min(time);
        profile.last_seen = profile.last_seen.max(time);
        let eligible = time.saturating_sub(profile.first_seen) >= baseline.learning_micros
            && profile.events >= baseline.min_history;
        let finding = match (baseline.kind, value) {
            (BaselineKind::NewValue, Some(v)) => {
                learn_value(profile, v, eligible, limits.max_values, &mut self.stats)
            }
            (BaselineKind::UnusualHour, _) => learn_hour(profile, baseline, time, eligible),
            (BaselineKind::NewValue, None) => None,
        };
        profile.events += 1;
        finding
    }

    /// Forgets keys idle beyond the horizon before `newest`; runs at most
    /// once per hour of event time.
    pub fn sweep(&mut self, newest: i64) {
        match self.last_sweep {
            Some(last) if newest.saturating_sub(last) < SWEEP_EVERY_MICROS => return,
            _ => {}
        }
        self.last_sweep = Some(newest);
        let cutoff = newest.saturating_sub(self.limits.idle_horizon_micros);
        let mut gone = 0usize;
        for profiles in &mut self.rules {
            let before = profiles.len();
            profiles.retain(|_, p| p.last_seen >= cutoff);
            gone += before - profiles.len();
        }
        self.stats.principals = self.stats.principals.saturating_sub(gone);
        self.stats.evicted_idle += gone as u64;
    }
}

fn learn_value(
    profile: &mut Profile,
    value: &str,
    eligible: bool,
    max_values: usize,
    stats: &mut BaselineStats,
) -> Option<Finding> {
    if let Some(count) = profile.values.get_mut(value) {
        *count = count.saturating_add(1);
        return None;
    }
    let finding = (eligible && !profile.saturated).then(|| {
        let mut usual: Vec<(String, u32)> = profile
            .values
            .iter()
            .map(|(v, c)| (v.to_string(), *c))
            .collect();
        usual.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        usual.truncate(USUAL_SHOWN);
        Finding::NewValue {
            value: value.to_string(),
            usual,
            distinct: profile.values.len(),
            events: profile.events,
            since: profile.first_seen,
        }
    });
    if profile.values.len() >= max_values.max(1) {
        // The least-seen value goes (ties: the greatest value, so the
        // choice does not depend on hash order).
        let victim = profile
            .values
            .iter()
            .min_by(|a, b| a.1.cmp(b.1).then_with(|| b.0.cmp(a.0)))
            .map(|(v, _)| v.clone());
        if let Some(v) = victim {
            profile.values.remove(&v);
            stats.evicted_values += 1;
        }
        if !profile.saturated {
            profile.saturated = true;
            stats.saturated_sets += 1;
        }
    }
    profile.values.insert(value.into(), 1);
    finding
}

/// The hour of day of `time` in the rule's offset.
pub fn hour_of(time: i64, utc_offset_minutes: i32) -> u8 {
    let local = time.saturating_add(i64::from(utc_offset_minutes) * 60_000_000);
    // rem_euclid keeps times before 1970 in 0..24.
    (local.div_euclid(HOUR_MICROS).rem_euclid(24)) as u8
}

fn learn_hour(
    profile: &mut Profile,
    baseline: &CompiledBaseline,
    time: i64,
    eligible: bool,
) -> Option<Finding> {
    let hours = profile.hours.as_mut()?;
    let hour = hour_of(time, baseline.utc_offset_minutes);
    let slot = hours.get_mut(usize::from(hour))?;
    let seen = *slot;
    *slot = slot.saturating_add(1);
    let total: u64 = profile.events;
    let rare = seen == 0 || (f64::from(seen) < baseline.rare_ratio * total as f64);
    if !(eligible && rare) {
        return None;
    }
    let mut usual: Vec<(u8, u32)> = hours
        .iter()
        .enumerate()
        .filter(|&(h, &c)| c > 0 && h != usize::from(hour))
        .map(|(h, &c)| (h as u8, c))
        .collect();
    usual.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    usual.truncate(USUAL_SHOWN);
    Some(Finding::UnusualHour {
        hour,
        seen,
        usual,
        events: total,
        since: profile.first_seen,
    })
}

/// `1,204`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The alert's sentence: what is new, for whom, and what is usual.
pub fn describe(baseline: &CompiledBaseline, who: &str, finding: &Finding) -> String {
    let day = |t: i64| {
        let s = trailhound_core::time::format_micros(t);
        s.get(..10).map(str::to_string).unwrap_or(s)
    };
    match finding {
        Finding::NewValue {
            value,
            usual,
            distinct,
            events,
            since,
        } => {
            let mut list: Vec<String> = usual.iter().map(|(v, _)| v.clone()).collect();
            if *distinct > usual.len() {
                list.push("...".into());
            }
            let list = if list.is_empty() {
                "nothing yet".to_string()
            } else {
                list.join(", ")
            };
            format!(
                "{who} {} {value} for the first time; usually: {list} ({} events since {})",
                baseline.verb(),
                thousands(*events),
                day(*since)
            )
        }
        Finding::UnusualHour {
            hour,
            seen,
            usual,
            events,
            since,
        } => {
            let zone = if baseline.utc_offset_minutes == 0 {
                "UTC".to_string()
            } else {
                format!("UTC{}", baseline.utc_offset_text)
            };
            let share = |c: u32| {
                if *events == 0 {
                    0.0
                } else {
                    100.0 * f64::from(c) / *events as f64
                }
            };
            let how = if *seen == 0 {
                "an hour never seen for it before".to_string()
            } else {
                format!(
                    "an hour of {seen} of its events before ({:.1}%)",
                    share(*seen)
                )
            };
            let list: Vec<String> = usual
                .iter()
                .map(|(h, c)| format!("{h:02}:00 ({:.0}%)", share(*c)))
                .collect();
            format!(
                "{who} was active at {hour:02}:00-{:02}:00 {zone}, {how}; usually: {} ({} events since {})",
                (hour + 1) % 24,
                list.join(", "),
                thousands(*events),
                day(*since)
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use trailhound_rules::{Compiler, RuleSpec};

    const DAY: i64 = 86_400_000_000;
    const T0: i64 = 1_793_527_200_000_000; // 2026-11-01T10:00:00Z

    fn baseline(extra: &str) -> CompiledBaseline {
        let spec: RuleSpec = serde_yaml::from_str(&format!(
            "id: b\ntitle: T\nseverity: low\nwhere: \"true\"\nbaseline:\n{extra}"
        ))
        .unwrap();
        let rule = Compiler::new().unwrap().compile(spec, None).unwrap();
        rule.baseline().unwrap().clone()
    }

    fn key(p: &str) -> Vec<String> {
        vec![p.to_string()]
    }

    #[test]
    fn hours_follow_utc_and_offsets() {
        assert_eq!(hour_of(T0, 0), 10);
        assert_eq!(hour_of(T0, 120), 12);
        assert_eq!(hour_of(T0, -11 * 60), 23);
        assert_eq!(hour_of(-1, 0), 23);
    }

    #[test]
    fn no_alert_during_learning_even_with_history() {
        let b = baseline("  kind: new_value\n  of: event_name\n  learning: 2d\n  min_history: 3\n");
        let mut s = BaselineStore::new(1, BaselineLimits::default());
        for i in 0..10 {
            assert_eq!(s.observe(0, &b, key("p"), Some("A"), T0 + i), None);
        }
        // a day in: history is there, learning is not over
        assert_eq!(s.observe(0, &b, key("p"), Some("B"), T0 + DAY), None);
        // two days in: it alerts, and only once
        let f = s.observe(0, &b, key("p"), Some("C"), T0 + 2 * DAY);
        assert!(
            matches!(&f, Some(Finding::NewValue { value, .. }) if value == "C"),
            "{f:?}"
        );
        assert_eq!(
            s.observe(0, &b, key("p"), Some("C"), T0 + 2 * DAY + 1),
            None
        );
        // learning is per key: a new key starts over
        assert_eq!(s.observe(0, &b, key("q"), Some("Z"), T0 + 3 * DAY), None);
    }

    #[test]
    fn no_alert_without_min_history() {
        let b = baseline("  kind: new_value\n  of: event_name\n  learning: 1d\n  min_history: 5\n");
        let mut s = BaselineStore::new(1, BaselineLimits::default());
        for i in 0..4 {
            s.observe(0, &b, key("p"), Some("A"), T0 + i);
        }
        assert_eq!(s.observe(0, &b, key("p"), Some("B"), T0 + 2 * DAY), None);
        // now 5 events behind it
        let f = s.observe(0, &b, key("p"), Some("C"), T0 + 2 * DAY);
        match f {
            Some(Finding::NewValue {
                usual,
                events,
                distinct,
                ..
            }) => {
                assert_eq!(events, 5);
                assert_eq!(distinct, 2);
                assert_eq!(usual[0], ("A".to_string(), 4));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_saturated_set_evicts_the_least_seen_and_stops_alerting() {
        let b = baseline("  kind: new_value\n  of: event_name\n  learning: 1s\n  min_history: 0\n");
        let limits = BaselineLimits {
            max_values: 4,
            ..Default::default()
        };
        let mut s = BaselineStore::new(1, limits);
        for (i, v) in ["A", "A", "A", "B", "B", "C", "D"].iter().enumerate() {
            s.observe(0, &b, key("p"), Some(v), T0 + i as i64);
        }
        assert_eq!(s.stats().saturated_sets, 0);
        // a fifth value alerts (the set is full, not yet saturated), evicts
        // the least seen and saturates the set
        assert!(s.observe(0, &b, key("p"), Some("E"), T0 + DAY).is_some());
        assert_eq!(s.stats().saturated_sets, 1);
        assert_eq!(s.stats().evicted_values, 1);
        // from now on new values are learnt but never alert
        assert_eq!(s.observe(0, &b, key("p"), Some("F"), T0 + DAY), None);
        assert_eq!(s.observe(0, &b, key("p"), Some("G"), T0 + DAY), None);
        // the most seen are still known
        assert_eq!(s.observe(0, &b, key("p"), Some("A"), T0 + DAY), None);
        let profile = &s.rules[0][&key("p")];
        assert_eq!(profile.values.len(), 4);
        assert!(profile.values.contains_key("A") && profile.values.contains_key("B"));
    }

    #[test]
    fn idle_keys_are_evicted_and_the_cap_is_counted() {
        let b = baseline("  kind: new_value\n  of: event_name\n");
        let limits = BaselineLimits {
            max_principals: 2,
            idle_horizon_micros: 10 * DAY,
            ..Default::default()
        };
        let mut s = BaselineStore::new(1, limits);
        s.observe(0, &b, key("old"), Some("A"), T0);
        s.observe(0, &b, key("new"), Some("A"), T0 + 5 * DAY);
        s.observe(0, &b, key("third"), Some("A"), T0 + 5 * DAY);
        assert_eq!(s.stats().principals, 2);
        assert_eq!(s.stats().cap_reached, 1);
        s.sweep(T0 + 12 * DAY);
        assert_eq!(s.stats().principals, 1);
        assert_eq!(s.stats().evicted_idle, 1);
        assert!(!s.rules[0].contains_key(&key("old")));
        // room again
        s.observe(0, &b, key("third"), Some("A"), T0 + 12 * DAY);
        assert_eq!(s.stats().principals, 2);
        // everyone idle goes
        s.sweep(T0 + 40 * DAY);
        assert_eq!(s.stats().principals, 0);
        s.observe(0, &b, key("x"), Some("A"), T0 + 40 * DAY);
        // a second sweep within the hour of event time does nothing
        s.sweep(T0 + 40 * DAY + HOUR_MICROS / 2);
        assert_eq!(s.stats().principals, 1);
        s.sweep(T0 + 80 * DAY);
        assert_eq!(s.stats().evicted_idle, 4);
    }

    #[test]
    fn the_hour_histogram_alerts_on_never_and_rarely_seen_hours() {
        let b = baseline("  kind: unusual_hour\n  learning: 1d\n  min_history: 10\n");
        let mut s = BaselineStore::new(1, BaselineLimits::default());
        // 200 events at 10:00 and 2 at 11:00 over two days
        for i in 0..200 {
            s.observe(0, &b, key("p"), None, T0 + i * 1_000_000);
        }
        assert_eq!(s.observe(0, &b, key("p"), None, T0 + HOUR_MICROS), None);
        // 11:00 seen once in 201 events: rare (< 1%)
        let f = s.observe(0, &b, key("p"), None, T0 + DAY + HOUR_MICROS);
        assert!(
            matches!(
                f,
                Some(Finding::UnusualHour {
                    hour: 11,
                    seen: 1,
                    ..
                })
            ),
            "{f:?}"
        );
        // 03:00 never seen
        let f = s.observe(0, &b, key("p"), None, T0 + 2 * DAY - 7 * HOUR_MICROS);
        let Some(f) = f else { panic!("no finding") };
        assert!(matches!(
            f,
            Finding::UnusualHour {
                hour: 3,
                seen: 0,
                ..
            }
        ));
        let text = describe(&b, "p", &f);
        assert!(
            text.starts_with("p was active at 03:00-04:00 UTC, an hour never seen"),
            "{text}"
        );
        assert!(text.contains("usually: 10:00 (99%), 11:00 (1%)"), "{text}");
        // the usual hour never alerts
        assert_eq!(s.observe(0, &b, key("p"), None, T0 + 3 * DAY), None);
    }

    #[test]
    fn evidence_names_the_new_value_and_the_usual_ones() {
        let b = baseline("  kind: new_value\n  of: [event_source, event_name]\n");
        let f = Finding::NewValue {
            value: "iam:CreateUser".into(),
            usual: (0..5).map(|i| (format!("s3:Get{i}"), 10 - i)).collect(),
            distinct: 7,
            events: 1204,
            since: T0,
        };
        assert_eq!(
            describe(&b, "arn:aws:iam::1:user/alice", &f),
            "arn:aws:iam::1:user/alice called iam:CreateUser for the first time; usually: \
             s3:Get0, s3:Get1, s3:Get2, s3:Get3, s3:Get4, ... (1,204 events since 2026-11-01)"
        );
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }
}
