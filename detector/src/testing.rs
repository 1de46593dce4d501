//! Inline rule tests, all of them: those judged by row matches run through
//! `trailhound_rules::testing`; those judged by alerts (`alerts: N`, for
//! window and sequence rules) run their events through a fresh [`Engine`]
//! holding only that rule, then [`Engine::flush`], and count the alerts.

use trailhound_core::events_to_batch;
use trailhound_rules::testing::{TestOutcome, run_rule_tests};
use trailhound_rules::{CompiledRule, RuleSet};

use crate::engine::Engine;

/// Runs every inline test of every rule in the set, plain and stateful.
pub fn all_tests(rules: &RuleSet) -> Vec<TestOutcome> {
    rules.rules().iter().flat_map(rule_tests).collect()
}

/// Runs every inline test of one rule, plain and stateful.
pub fn rule_tests(rule: &CompiledRule) -> Vec<TestOutcome> {
    let mut out = run_rule_tests(rule);
    for t in rule.tests.iter().filter(|t| t.is_stateful()) {
        let failure = match (t.alerts, t.events.is_empty(), &t.event) {
            (Some(expected), false, None) => match alerts_for(rule, &t.events) {
                Ok(got) if got == expected => None,
                Ok(got) => Some(format!("expected {expected} alert(s), got {got}")),
                Err(e) => Some(e),
            },
            _ => Some("a test with `alerts` needs `events`".to_string()),
        };
        out.push(TestOutcome {
            rule_id: rule.id.clone(),
            name: t.name.clone(),
            failure,
        });
    }
    out
}

fn alerts_for(rule: &CompiledRule, events: &[trailhound_core::Event]) -> Result<usize, String> {
    let mut engine = Engine::new(RuleSet::from_rules(vec![rule.clone()]));
    let batch = events_to_batch(events);
    let mut n = engine.process(&batch).map_err(|e| e.to_string())?.len();
    n += engine.flush().map_err(|e| e.to_string())?.len();
    Ok(n)
}
