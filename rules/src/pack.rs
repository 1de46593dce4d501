//! The built-in rule pack: every `rules/pack/*.yaml`, embedded at build time.

/// `(file name, YAML text)` of every built-in rule, sorted by file name.
pub const FILES: &[(&str, &str)] = include!(concat!(env!("OUT_DIR"), "/pack.rs"));

/// [`FILES`] without their `tests:` blocks (cut by `rules/build.rs`), for
/// loading rules to run ([`crate::LoadOptions::tests`]): the tests are four
/// fifths of the pack's YAML, and reading them was most of the time a
/// `detect` run took to start.
pub const WITHOUT_TESTS: &[(&str, &str)] =
    include!(concat!(env!("OUT_DIR"), "/pack_without_tests.rs"));

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rule::RuleSpec;

    #[test]
    fn every_rule_reads_the_same_without_its_tests_but_for_them() {
        assert_eq!(FILES.len(), WITHOUT_TESTS.len());
        let mut tested = 0;
        for ((name, text), (short_name, short)) in FILES.iter().zip(WITHOUT_TESTS) {
            assert_eq!(name, short_name);
            assert!(
                short.len() < text.len() || !text.contains("\ntests:"),
                "{name}"
            );
            let mut full: RuleSpec = serde_yaml::from_str(text).expect("the pack reads");
            let cut: RuleSpec = serde_yaml::from_str(short).expect("the cut pack reads");
            assert!(cut.tests.is_empty(), "{name}");
            tested += usize::from(!full.tests.is_empty());
            full.tests.clear();
            assert_eq!(format!("{full:?}"), format!("{cut:?}"), "{name}");
        }
        assert!(tested > 60, "{tested} rules with tests");
    }
}
