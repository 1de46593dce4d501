//! Inline rule tests: `trailhound rules test` and the pack's own test suite.
//!
//! Tests judged by row matches (`match`, `matches`) run here. Tests judged by
//! alerts (`alerts: N`, for window and sequence rules) need the detector's
//! state and run in `trailhound_detector::testing`, which also runs these.

use trailhound_core::events_to_batch;

use crate::compile::CompiledRule;

/// The result of one inline test.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestOutcome {
    /// The rule.
    pub rule_id: String,
    /// The test's name.
    pub name: String,
    /// `None` when it passed, else why it failed.
    pub failure: Option<String>,
}

impl TestOutcome {
    /// True when the test passed.
    pub fn passed(&self) -> bool {
        self.failure.is_none()
    }
}

/// Runs every inline test of one rule that is judged by row matches (tests
/// with `alerts` are left out: see the module doc).
pub fn run_rule_tests(rule: &CompiledRule) -> Vec<TestOutcome> {
    rule.tests
        .iter()
        .filter(|t| !t.is_stateful())
        .map(|t| {
            let (events, expected) = match (&t.event, t.matches_event, t.matches) {
                (Some(e), Some(m), None) if t.events.is_empty() => {
                    (vec![e.clone()], usize::from(m))
                }
                (None, None, Some(n)) if !t.events.is_empty() => (t.events.clone(), n),
                _ => {
                    return TestOutcome {
                        rule_id: rule.id.clone(),
                        name: t.name.clone(),
                        failure: Some(
                            "a test needs either `event` with `match`, or `events` with `matches`"
                                .into(),
                        ),
                    };
                }
            };
            let batch = events_to_batch(&events);
            let failure = match rule.evaluate(&batch) {
                Ok(hits) => {
                    let got = hits.true_count();
                    (got != expected)
                        .then(|| format!("expected {expected} matching event(s), got {got}"))
                }
                Err(e) => Some(e.to_string()),
            };
            TestOutcome {
                rule_id: rule.id.clone(),
                name: t.name.clone(),
                failure,
            }
        })
        .collect()
}
