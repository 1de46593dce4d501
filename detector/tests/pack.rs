//! The built-in pack through the detector: every inline test passes,
//! including the window and sequence tests judged by alerts.

use trailhound_detector::testing::all_tests;
use trailhound_rules::RuleSet;

#[test]
fn every_builtin_inline_test_passes_through_the_engine() {
    let rules = RuleSet::builtin().unwrap_or_else(|e| panic!("{e}"));
    let outcomes = all_tests(&rules);
    let stateful = rules
        .rules()
        .iter()
        .flat_map(|r| &r.tests)
        .filter(|t| t.is_stateful())
        .count();
    assert!(stateful >= 4, "only {stateful} stateful inline tests");
    let total: usize = rules.rules().iter().map(|r| r.tests.len()).sum();
    assert_eq!(outcomes.len(), total, "every test ran");
    let failures: Vec<String> = outcomes
        .iter()
        .filter(|o| !o.passed())
        .map(|o| {
            format!(
                "{} / {}: {}",
                o.rule_id,
                o.name,
                o.failure.as_deref().unwrap_or_default()
            )
        })
        .collect();
    assert!(
        failures.is_empty(),
        "failing inline tests:\n{}",
        failures.join("\n")
    );
}
