//! Rule loading has limits, and breaking one is a clear error naming the
//! file or the rule, never a hang or an out-of-memory.

use std::time::Duration;

use trailhound_rules::{LoadOptions, MAX_RULE_FILE_BYTES, RuleSet};

fn rule(id: &str) -> String {
    format!("id: {id}\ntitle: A rule\nseverity: low\nwhere: \"event_name = 'GetCallerIdentity'\"\n")
}

#[test]
fn a_rule_file_over_the_size_limit_is_refused_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("huge.yaml");
    let mut text = rule("huge");
    // A comment that takes the file past the limit: valid YAML, too big.
    text.push('#');
    text.push_str(&"x".repeat(MAX_RULE_FILE_BYTES as usize));
    std::fs::write(&path, text).unwrap();
    let err = RuleSet::load(&LoadOptions {
        no_builtin: true,
        paths: vec![dir.path().to_path_buf()],
        ..LoadOptions::default()
    })
    .expect_err("a rule file over the limit must be refused")
    .to_string();
    assert!(err.contains("huge.yaml"), "{err}");
    assert!(err.contains("byte limit of a rule file"), "{err}");
}

#[test]
fn a_rule_slower_to_compile_than_the_limit_stops_the_load_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    // A rule that takes milliseconds to plan (a list of 5,000 names), so
    // that its compilation cannot finish before the loader starts waiting,
    // even when the loader's thread is descheduled on a busy machine (a
    // one-line rule sometimes did).
    let names: Vec<String> = (0..5000).map(|i| format!("'Name{i}'")).collect();
    let slow = format!(
        "id: first-rule\ntitle: A rule\nseverity: low\nwhere: \"event_name IN ({})\"\n",
        names.join(", ")
    );
    std::fs::write(dir.path().join("a.yaml"), slow).unwrap();
    let err = RuleSet::load(&LoadOptions {
        no_builtin: true,
        paths: vec![dir.path().to_path_buf()],
        // No compilation takes less than a nanosecond: the limit is broken.
        compile_limit: Duration::from_nanos(1),
        ..LoadOptions::default()
    })
    .expect_err("a rule over the compile limit must be refused")
    .to_string();
    assert!(err.contains("first-rule"), "{err}");
    assert!(err.contains("did not compile within"), "{err}");
}

#[test]
fn rules_within_the_limits_load() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.yaml"), rule("fine")).unwrap();
    let set = RuleSet::load(&LoadOptions {
        no_builtin: true,
        paths: vec![dir.path().to_path_buf()],
        ..LoadOptions::default()
    })
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(set.len(), 1);
}
