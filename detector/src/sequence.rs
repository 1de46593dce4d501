//! Sequence state: per rule and join key, the partial matches in progress
//! and the complete ones waiting out an absence step.
//!
//! Rows arrive in event-time order within a batch (the engine sorts the few
//! rows that match a step). A row matching the next step of a partial match,
//! no earlier than its last step and within `within` of its first, advances
//! it; a row matching the first step starts a new partial match, or restarts
//! the one still waiting for its second step (the latest first step gives the
//! best chance to finish within `within`). At most [`MAX_PARTIALS`] partial
//! matches are kept per key, the oldest dropped first.
//!
//! With an absence step, a complete match waits until its first step time
//! plus `within` passes the watermark (or the input ends) and alerts only if
//! no absent event for the key came in that span; an absent event cancels
//! every match of the key whose span covers it. Partial matches whose span
//! has passed the watermark are dropped, and keys with nothing left are
//! forgotten.

use std::collections::{HashMap, VecDeque};

use trailhound_core::time::format_micros;
use trailhound_rules::sequence::CompiledSequence;

use crate::engine::Candidate;

/// Most partial matches kept per key.
pub const MAX_PARTIALS: usize = 64;

/// Values captured from a row that starts a partial match.
pub(crate) struct StartMeta {
    pub principal: String,
    pub account: Option<String>,
    pub dedup_key: Vec<String>,
    pub evidence: Option<String>,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct Hit {
    time: i64,
    event_id: String,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Partial {
    hits: Vec<Hit>,
    first_time: i64,
    principal: String,
    account: Option<String>,
    dedup_key: Vec<String>,
    evidence: Option<String>,
}

impl Partial {
    fn last_time(&self) -> i64 {
        self.hits.last().map_or(self.first_time, |h| h.time)
    }
}

#[derive(Default, serde::Serialize, serde::Deserialize)]
struct KeyState {
    partials: VecDeque<Partial>,
    waiting: Vec<Partial>,
}

/// The partial matches of one sequence rule.
#[derive(Default, serde::Serialize, serde::Deserialize)]
pub struct SequenceState {
    keys: HashMap<Vec<String>, KeyState>,
    dropped: u64,
}

impl SequenceState {
    /// Keys with partial or waiting matches.
    pub fn keys(&self) -> usize {
        self.keys.len()
    }

    /// Partial matches dropped because a key had [`MAX_PARTIALS`] already.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// One row for `key` at `time`. `steps` has bit `i` set when the row
    /// matches positive step `i`; `absent` when it matches the absence step.
    /// Returns the candidates of matches completed by this row (rules
    /// without an absence step).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn on_row(
        &mut self,
        rule_id: &str,
        seq: &CompiledSequence,
        key: Vec<String>,
        time: i64,
        event_id: &str,
        steps: u64,
        absent: bool,
        meta: impl FnOnce() -> StartMeta,
    ) -> Vec<Candidate> {
        let within = seq.within_micros;
        let total = seq.steps.len();
        let mut out = Vec::new();
        if absent && steps == 0 && !self.keys.contains_key(&key) {
            return out;
        }
        if !self.keys.contains_key(&key) {
            self.keys.insert(key.clone(), KeyState::default());
        }
        let Some(state) = self.keys.get_mut(&key) else {
            return out;
        };
        if absent {
            let covers = |p: &Partial| p.first_time <= time && time <= p.first_time + within;
            state.partials.retain(|p| !covers(p));
            state.waiting.retain(|p| !covers(p));
        }
        if steps == 0 {
            return out;
        }
        let mut completed = Vec::new();
        let mut i = 0;
        while i < state.partials.len() {
            let advance = state.partials.get(i).is_some_and(|p| {
                let next = p.hits.len();
                next < total
                    && steps & (1 << next) != 0
                    && time >= p.last_time()
                    && time - p.first_time <= within
            });
            if advance && let Some(p) = state.partials.get_mut(i) {
                p.hits.push(Hit {
                    time,
                    event_id: event_id.to_string(),
                });
                if p.hits.len() == total {
                    if let Some(done) = state.partials.remove(i) {
                        completed.push(done);
                    }
                    continue;
                }
            }
            i += 1;
        }
        if steps & 1 != 0 {
            let hit = Hit {
                time,
                event_id: event_id.to_string(),
            };
            let m = meta();
            let restart = state.partials.iter_mut().find(|p| p.hits.len() == 1);
            let fresh = Partial {
                hits: vec![hit],
                first_time: time,
                principal: m.principal,
                account: m.account,
                dedup_key: m.dedup_key,
                evidence: m.evidence,
            };
            match restart {
                Some(p) if time >= p.first_time => *p = fresh,
                _ => {
                    if state.partials.len() >= MAX_PARTIALS {
                        state.partials.pop_front();
                        self.dropped += 1;
                    }
                    state.partials.push_back(fresh);
                }
            }
        }
        for done in completed {
            if seq.absent.is_some() {
                state.waiting.push(done);
            } else {
                out.push(candidate(rule_id, seq, &key, &done, false));
            }
        }
        out
    }

    /// Drops partial matches whose span has passed `watermark` and alerts
    /// the waiting ones whose absence span has (`None`: the input ended, so
    /// every waiting match alerts and every partial one is dropped).
    pub(crate) fn advance(
        &mut self,
        rule_id: &str,
        seq: &CompiledSequence,
        watermark: Option<i64>,
    ) -> Vec<Candidate> {
        let within = seq.within_micros;
        let passed =
            |p: &Partial| watermark.is_none_or(|w| p.first_time.saturating_add(within) < w);
        let mut out = Vec::new();
        for (key, state) in self.keys.iter_mut() {
            state.partials.retain(|p| !passed(p));
            let mut i = 0;
            while i < state.waiting.len() {
                if state.waiting.get(i).is_some_and(passed) {
                    let done = state.waiting.swap_remove(i);
                    out.push(candidate(rule_id, seq, key, &done, true));
                } else {
                    i += 1;
                }
            }
        }
        self.keys
            .retain(|_, s| !s.partials.is_empty() || !s.waiting.is_empty());
        out
    }
}

/// The key is the `by` values, in the same order as the rule's `by`.
fn candidate(
    rule_id: &str,
    seq: &CompiledSequence,
    key: &[String],
    p: &Partial,
    waited: bool,
) -> Candidate {
    let mut evidence = String::new();
    if let Some(t) = &p.evidence {
        evidence.push_str(t);
        evidence.push_str("; ");
    }
    evidence.push_str(&key.join(", "));
    evidence.push_str(": ");
    for (i, (h, step)) in p.hits.iter().zip(&seq.steps).enumerate() {
        if i > 0 {
            evidence.push_str(" -> ");
        }
        evidence.push_str(&format!(
            "{} at {} ({})",
            step.name,
            format_micros(h.time),
            h.event_id
        ));
    }
    if waited && let Some(a) = &seq.absent {
        evidence.push_str(&format!(
            "; no {:?} within {} of the first step",
            a.name, seq.within_text
        ));
    } else {
        evidence.push_str(&format!(" within {}", seq.within_text));
    }
    Candidate {
        rule_id: rule_id.to_string(),
        key: key.to_vec(),
        id_time: p.first_time,
        principal: p.principal.clone(),
        account: p.account.clone(),
        dedup_key: p.dedup_key.clone(),
        first_event_time: p.first_time,
        last_event_time: p.last_time(),
        event_ids: p.hits.iter().map(|h| h.event_id.clone()).collect(),
        event_count: p.hits.len() as u64,
        evidence,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::Engine;
    use crate::engine::test_support::{MIN, at, ev, process, rules};
    use trailhound_core::Event;

    const SEQ: &str = "id: s\ntitle: S\nseverity: high\nwhere: \"event_name IN ('A', 'B', 'C')\"\n\
        sequence:\n  by: [principal]\n  within: 10m\n  steps:\n\
        \x20   - {name: a, where: \"event_name = 'A'\"}\n\
        \x20   - {name: b, where: \"event_name = 'B'\"}\n";

    fn with_absence() -> String {
        format!("{SEQ}    - {{name: no c, absent: \"event_name = 'C'\"}}\n")
    }

    fn three_steps() -> String {
        format!("{SEQ}    - {{name: c, where: \"event_name = 'C'\"}}\n")
    }

    fn e(minutes: f64, id: &str, name: &str) -> Event {
        ev(minutes, id, name, "p")
    }

    #[test]
    fn steps_must_come_in_order_within_the_span() {
        let mut eng = Engine::new(rules(SEQ));
        let alerts = process(&mut eng, &[e(2.0, "b1", "B"), e(1.0, "a1", "A")]);
        assert_eq!(alerts.len(), 1, "rows are taken in event-time order");
        assert_eq!(alerts[0].event_ids, ["a1", "b1"]);
        assert_eq!(alerts[0].first_event_time, at(1.0));
        assert!(
            alerts[0]
                .evidence
                .contains("p: a at 2026-11-02T10:01:00Z (a1) -> b at")
        );

        let mut eng = Engine::new(rules(SEQ));
        assert!(process(&mut eng, &[e(1.0, "b1", "B")]).is_empty());
        assert!(process(&mut eng, &[e(2.0, "a1", "A")]).is_empty());
        assert!(eng.flush().unwrap().is_empty(), "B before A is no sequence");

        let mut eng = Engine::new(rules(SEQ));
        assert!(process(&mut eng, &[e(1.0, "a1", "A"), e(12.0, "b1", "B")]).is_empty());
    }

    #[test]
    fn different_keys_do_not_join() {
        let mut eng = Engine::new(rules(SEQ));
        let alerts = process(&mut eng, &[ev(1.0, "a", "A", "p"), ev(2.0, "b", "B", "q")]);
        assert!(alerts.is_empty());
    }

    #[test]
    fn absence_alerts_once_the_span_passes_the_watermark() {
        let mut eng = Engine::new(rules(&with_absence())).with_lateness(0);
        assert!(process(&mut eng, &[e(1.0, "a1", "A"), e(2.0, "b1", "B")]).is_empty());
        // Watermark 10:10 is not past 10:11 yet.
        assert!(process(&mut eng, &[ev(10.0, "x", "Other", "q")]).is_empty());
        let alerts = process(&mut eng, &[ev(11.5, "y", "Other", "q")]);
        assert_eq!(alerts.len(), 1);
        assert!(
            alerts[0].evidence.contains("no \"no c\" within 10m"),
            "{}",
            alerts[0].evidence
        );
        assert_eq!(eng.state_size(), 0);
    }

    #[test]
    fn an_absent_event_cancels_the_match() {
        let mut eng = Engine::new(rules(&with_absence()));
        process(&mut eng, &[e(1.0, "a1", "A"), e(2.0, "b1", "B")]);
        process(&mut eng, &[e(5.0, "c1", "C")]);
        assert!(eng.flush().unwrap().is_empty());
        // The absent event after the span does not cancel.
        let mut eng = Engine::new(rules(&with_absence()));
        process(
            &mut eng,
            &[e(1.0, "a1", "A"), e(2.0, "b1", "B"), e(12.0, "c1", "C")],
        );
        assert_eq!(eng.flush().unwrap().len(), 1);
    }

    #[test]
    fn the_end_of_input_ends_the_absence_wait() {
        let mut eng = Engine::new(rules(&with_absence()));
        assert!(process(&mut eng, &[e(1.0, "a1", "A"), e(2.0, "b1", "B")]).is_empty());
        assert_eq!(eng.flush().unwrap().len(), 1);
    }

    #[test]
    fn partial_matches_are_bounded_per_key() {
        let set = rules(&three_steps());
        let rule = set.rules().first().unwrap();
        let seq = rule.sequence().unwrap();
        let mut state = SequenceState::default();
        let meta = || StartMeta {
            principal: "p".into(),
            account: None,
            dedup_key: vec!["p".into()],
            evidence: None,
        };
        for i in 0..70 {
            let t = at(0.0) + i * 1_000;
            state.on_row("s", seq, vec!["p".into()], t, "a", 0b001, false, meta);
            state.on_row("s", seq, vec!["p".into()], t + 1, "b", 0b010, false, meta);
        }
        assert_eq!(state.dropped(), 70 - MAX_PARTIALS as u64);
        let done = state.on_row("s", seq, vec!["p".into()], at(1.0), "c", 0b100, false, meta);
        assert_eq!(done.len(), MAX_PARTIALS);
    }

    #[test]
    fn idle_partial_matches_are_evicted() {
        let mut eng = Engine::new(rules(SEQ)).with_lateness(MIN);
        process(&mut eng, &[e(1.0, "a1", "A")]);
        assert_eq!(eng.state_size(), 1);
        process(&mut eng, &[ev(13.0, "x", "Other", "q")]);
        assert_eq!(eng.state_size(), 0);
    }

    #[test]
    fn a_newer_first_step_restarts_the_waiting_match() {
        let mut eng = Engine::new(rules(SEQ));
        let alerts = process(
            &mut eng,
            &[e(0.0, "a0", "A"), e(8.0, "a1", "A"), e(15.0, "b1", "B")],
        );
        assert_eq!(alerts.len(), 1);
        assert_eq!(alerts[0].event_ids, ["a1", "b1"]);
    }
}
