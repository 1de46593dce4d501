//! Scoring a run against a generated organisation's ground truth
//! (`labels.json`): which injected scenarios were caught, which
//! credential-misuse scenarios a behavioural rule flagged, and how many
//! alerts the benign background raised, per 100,000 events.
//!
//! Used by `detect --demo` (in memory) and `detect --labels FILE` (any
//! generated organisation on disk).
//!
//! - A scenario is **detected** when its expected rule raised an alert on
//!   its principal (or a related one: a correlation's alert is on the AWS
//!   side) that holds one of its labelled events, and each `related` part's
//!   rule likewise on its own principal.
//! - An alert is **caused by** a scenario when it is on the scenario's
//!   principal (or a related one) and holds one of its events or starts
//!   within an hour of the scenario's span: the attacker's other calls set
//!   off rules too, and those alerts are right, not noise.
//! - **Behavioural** rules are those with a `baseline:` block or the
//!   `baseline` tag (keystroke cadence); a scenario whose expected rule is
//!   behavioural is a credential-misuse scenario, flagged when any
//!   behavioural rule raised an alert it caused.
//! - The **background** is every alert no scenario caused, except the
//!   records of routine grant closures (informational alerts that close a
//!   just-in-time grant's sessions as it ends): those are counted apart.

use std::collections::{BTreeMap, HashSet};

use trailhound_core::{Alert, Severity};
use trailhound_ingest::generate::Label;
use trailhound_rules::RuleSet;

const HOUR_MICROS: i64 = 3_600 * 1_000_000;
/// Background alerts listed one by one.
const LISTED: usize = 20;

/// A scored run.
pub struct Report {
    /// Scenarios whose expected rule did not fire.
    pub missed: usize,
    /// Alerts no scenario caused.
    pub background: usize,
    /// The report, one line per scenario and the totals.
    pub text: String,
}

/// Rule ids of the behavioural rules of `rules`.
pub fn behavioural(rules: &RuleSet) -> HashSet<String> {
    rules
        .rules()
        .iter()
        .filter(|r| r.baseline().is_some() || r.tags.iter().any(|t| t == "baseline"))
        .map(|r| r.id.clone())
        .collect()
}

fn holds_any(alert: &Alert, ids: &[String]) -> bool {
    alert.event_ids.iter().any(|id| ids.contains(id))
}

fn detects(rule: &str, principal: &str, ids: &[String], alert: &Alert) -> bool {
    alert.rule_id == rule
        && alert.principal == principal
        && (ids.is_empty() || holds_any(alert, ids))
}

/// Micros since 1970 of a label's RFC 3339 time.
fn label_time(text: &str) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.timestamp_micros())
}

fn caused_by(label: &Label, alert: &Alert) -> bool {
    if holds_any(alert, &label.event_ids)
        || label.related.iter().any(|r| holds_any(alert, &r.event_ids))
    {
        return true;
    }
    let on_principal = alert.principal == label.principal
        || label.related.iter().any(|r| r.principal == alert.principal);
    match (label_time(&label.start), label_time(&label.end)) {
        (Some(start), Some(end)) if on_principal => {
            (start - HOUR_MICROS..=end + HOUR_MICROS).contains(&alert.first_event_time)
        }
        _ => false,
    }
}

/// Scores `alerts` against `labels`; `events` is how many events the run
/// read (for the background rate).
pub fn score(
    labels: &[Label],
    alerts: &[Alert],
    behavioural: &HashSet<String>,
    events: u64,
) -> Report {
    let mut text = String::from("== injected attacks ==\n");
    let mut missed = 0;
    let (mut misuse, mut misuse_flagged) = (0usize, 0usize);
    for label in labels {
        // A correlation alert may be raised on the related principal (the
        // AWS side of a gateway session): it counts when it holds the
        // scenario's events.
        let hit = alerts.iter().find(|a| {
            detects(&label.rule_id, &label.principal, &label.event_ids, a)
                || label
                    .related
                    .iter()
                    .any(|r| detects(&label.rule_id, &r.principal, &label.event_ids, a))
        });
        let related_ok = label.related.iter().all(|r| {
            alerts
                .iter()
                .any(|a| detects(&r.rule_id, &r.principal, &r.event_ids, a))
        });
        let caused: Vec<&Alert> = alerts.iter().filter(|a| caused_by(label, a)).collect();
        let mut others: Vec<&str> = caused
            .iter()
            .map(|a| a.rule_id.as_str())
            .filter(|r| *r != label.rule_id)
            .collect();
        others.sort_unstable();
        others.dedup();
        let also = if others.is_empty() {
            String::new()
        } else {
            format!(" (also {})", others.join(", "))
        };
        if behavioural.contains(&label.rule_id) {
            misuse += 1;
            if caused.iter().any(|a| behavioural.contains(&a.rule_id)) {
                misuse_flagged += 1;
            }
        }
        match hit {
            Some(a) if related_ok => text.push_str(&format!(
                "  detected  {:<26} by {:<44} alert {}{also}\n",
                label.scenario, label.rule_id, a.alert_id
            )),
            _ => {
                missed += 1;
                text.push_str(&format!(
                    "  MISSED    {:<26} expected {} on {}{also}\n",
                    label.scenario, label.rule_id, label.principal
                ));
            }
        }
    }
    // Every grant's end is closed and recorded: routine, not an alarm.
    let is_record = |a: &Alert| a.severity == Severity::Informational && a.closes.is_some();
    let records = alerts.iter().filter(|a| is_record(a)).count();
    let background: Vec<&Alert> = alerts
        .iter()
        .filter(|a| !is_record(a))
        .filter(|a| !labels.iter().any(|l| caused_by(l, a)))
        .collect();
    for a in background.iter().take(LISTED) {
        text.push_str(&format!(
            "  FALSE POSITIVE on benign background: {} on {} ({})\n",
            a.rule_id, a.principal, a.evidence
        ));
    }
    if background.len() > LISTED {
        text.push_str(&format!(
            "  ... and {} more on the background\n",
            background.len() - LISTED
        ));
    }
    if records > 0 {
        text.push_str(&format!(
            "  {records} grant closure(s) recorded (their sessions closed as each grant ended; not counted)\n"
        ));
    }
    text.push_str(&format!(
        "{} of {} scenarios detected, {} alert(s) on the benign background",
        labels.len() - missed,
        labels.len(),
        background.len()
    ));
    let mut per_rule: BTreeMap<&str, u64> = BTreeMap::new();
    for a in background
        .iter()
        .filter(|a| behavioural.contains(&a.rule_id))
    {
        *per_rule.entry(a.rule_id.as_str()).or_default() += 1;
    }
    if misuse > 0 || !per_rule.is_empty() {
        let n: u64 = per_rule.values().sum();
        let rate = n as f64 * 100_000.0 / events.max(1) as f64;
        text.push_str(&format!(
            "\n{misuse_flagged} of {misuse} credential-misuse scenario(s) flagged by a behavioural rule\n\
             {n} behavioural alert(s) on the benign background over {events} events = {rate:.3} per 100,000 events"
        ));
        for (rule, count) in per_rule {
            text.push_str(&format!("\n  {rule}: {count}"));
        }
    }
    Report {
        missed,
        background: background.len(),
        text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn label(scenario: &str, rule: &str, principal: &str, ids: &[&str]) -> Label {
        Label {
            scenario: scenario.into(),
            rule_id: rule.into(),
            principal: principal.into(),
            start: "2026-11-02T10:00:00Z".into(),
            end: "2026-11-02T10:05:00Z".into(),
            event_ids: ids.iter().map(|s| s.to_string()).collect(),
            related: Vec::new(),
        }
    }

    fn alert(rule: &str, principal: &str, ids: &[&str], at: &str) -> Alert {
        let time = label_time(at).unwrap();
        Alert {
            alert_id: format!("{rule}-{at}"),
            rule_id: rule.into(),
            title: rule.into(),
            severity: Severity::High,
            principal: principal.into(),
            account_id: None,
            first_event_time: time,
            last_event_time: time,
            detected_at: time,
            event_ids: ids.iter().map(|s| s.to_string()).collect(),
            event_count: ids.len() as u64,
            evidence: "e".into(),
            tags: Vec::new(),
            access_key_id: None,
            session_id: None,
            closes: None,
        }
    }

    #[test]
    fn detections_side_effects_and_background_are_told_apart() {
        let labels = [
            label("stop-logging", "stop", "alice", &["e1"]),
            label("stolen-key", "new-network", "bob", &["e2"]),
        ];
        let behavioural: HashSet<String> = ["new-network".to_string(), "odd-hour".to_string()]
            .into_iter()
            .collect();
        let alerts = [
            alert("stop", "alice", &["e1"], "2026-11-02T10:01:00Z"),
            // bob's key used at an odd hour too: caused by the scenario,
            // though it holds none of its labelled events
            alert("odd-hour", "bob", &["x1"], "2026-11-02T10:30:00Z"),
            // carol, unrelated: background, and behavioural
            alert("odd-hour", "carol", &["x2"], "2026-11-02T12:00:00Z"),
        ];
        let r = score(&labels, &alerts, &behavioural, 200_000);
        assert_eq!(r.missed, 1, "{}", r.text);
        assert_eq!(r.background, 1, "{}", r.text);
        assert!(r.text.contains("MISSED    stolen-key"), "{}", r.text);
        assert!(r.text.contains("(also odd-hour)"), "{}", r.text);
        assert!(
            r.text
                .contains("1 of 2 scenarios detected, 1 alert(s) on the benign background"),
            "{}",
            r.text
        );
        assert!(
            r.text
                .contains("1 of 1 credential-misuse scenario(s) flagged by a behavioural rule"),
            "{}",
            r.text
        );
        assert!(
            r.text.contains("1 behavioural alert(s) on the benign background over 200000 events = 0.500 per 100,000 events"),
            "{}",
            r.text
        );
    }
}
