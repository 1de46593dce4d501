//! The built-in pack: every rule compiles and every inline test passes.

use trailhound_rules::RuleSet;

#[test]
fn every_builtin_rule_compiles() {
    let rules = match RuleSet::builtin() {
        Ok(r) => r,
        Err(e) => panic!("{e}"),
    };
    assert!(rules.len() >= 15, "only {} built-in rules", rules.len());
}

#[test]
fn every_builtin_rule_has_passing_inline_tests() {
    let rules = RuleSet::builtin().unwrap_or_else(|e| panic!("{e}"));
    for rule in rules.rules() {
        assert!(
            rule.tests.len() >= 2,
            "rule {} has {} inline test(s); every built-in rule needs one that fires and one that does not",
            rule.id,
            rule.tests.len()
        );
    }
    let failures: Vec<String> = rules
        .run_tests()
        .into_iter()
        .filter(|o| !o.passed())
        .map(|o| {
            format!(
                "{} / {}: {}",
                o.rule_id,
                o.name,
                o.failure.unwrap_or_default()
            )
        })
        .collect();
    assert!(
        failures.is_empty(),
        "failing inline tests:\n{}",
        failures.join("\n")
    );
}
