//! The dependency tree passes `deps-policy.toml` (`scripts/deps-check`,
//! offline): every package's licence can be met with the allowed permissive
//! licences, and every crate present in more than one version is accepted
//! with a reason. And the script's own check of its SPDX licence-expression
//! evaluator. The Python is `TRAILHOUND_PYTHON` (set by `scripts/test`), else
//! `python3`; it needs 3.11 or later (tomllib).

use crate::common;

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use common::{run_within, text};

/// `cargo metadata` and two `cargo tree` runs, offline, take seconds; the
/// margin is for a busy machine or another cargo holding the package cache.
const LIMIT: Duration = Duration::from_secs(180);

fn python() -> String {
    std::env::var("TRAILHOUND_PYTHON")
        .ok()
        .filter(|p| !p.trim().is_empty())
        .unwrap_or_else(|| "python3".to_string())
}

/// `python3 scripts/deps-check ARGS` from the repository root, with the cargo
/// that built this test.
fn deps_check(args: &[&str]) -> Output {
    let mut command = Command::new(python());
    command
        .arg("scripts/deps-check")
        .args(args)
        .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")))
        .env("CARGO", env!("CARGO"));
    run_within(&mut command, LIMIT)
}

fn assert_passes(args: &[&str]) -> String {
    let out = deps_check(args);
    let stdout = text(&out.stdout);
    assert!(
        out.status.success(),
        "{} scripts/deps-check {} failed ({}):\n{stdout}\n{}",
        python(),
        args.join(" "),
        out.status,
        text(&out.stderr)
    );
    stdout
}

#[test]
fn the_dependency_tree_passes_the_licence_and_duplicate_policy() {
    let stdout = assert_passes(&[]);
    assert!(stdout.contains("deps-check: OK"), "{stdout}");
}

#[test]
fn the_licence_expression_evaluator_decides_known_cases() {
    let stdout = assert_passes(&["--self-test"]);
    assert!(stdout.contains("checks passed"), "{stdout}");
}
