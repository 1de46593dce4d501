//! `trailhound rules list|test|lint`.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use trailhound_rules::lint::Level;

use crate::cli::{RuleArgs, RulesCommand};

pub fn run(cmd: RulesCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        RulesCommand::List { rules } => list(&rules),
        RulesCommand::Test { paths, rules } => test(&with_paths(rules, paths)),
        RulesCommand::Lint {
            paths,
            rules,
            errors_only,
        } => lint(&with_paths(rules, paths), errors_only),
    }
}

/// Positional folders add to `--rules`; the built-in pack stays unless `--no-builtin`.
fn with_paths(mut rules: RuleArgs, paths: Vec<PathBuf>) -> RuleArgs {
    rules.rules.extend(paths);
    rules
}

fn list(rules: &RuleArgs) -> anyhow::Result<ExitCode> {
    let set = super::load_rules(rules)?;
    let mut out = String::new();
    for r in set.rules() {
        let from = r
            .file
            .as_ref()
            .map(|f| f.display().to_string())
            .unwrap_or_else(|| "built-in".into());
        let _ = writeln!(
            out,
            "{:<48} {:<13} {}  [{}]",
            r.id,
            r.severity.as_str(),
            r.title,
            from
        );
    }
    emit(&out)?;
    eprintln!("{} rules", set.len());
    Ok(ExitCode::SUCCESS)
}

/// One row per rule (id, passed/total, verdict), each failing test under its
/// rule, and the totals on the last line.
fn test(rules: &RuleArgs) -> anyhow::Result<ExitCode> {
    let set = super::load_rules_with_tests(rules)?;
    let width = set
        .rules()
        .iter()
        .map(|r| r.id.len())
        .max()
        .unwrap_or(0)
        .max("RULE".len());
    let mut out = String::new();
    let _ = writeln!(out, "{:<width$}  {:>7}  RESULT", "RULE", "TESTS");
    let (mut passed, mut failed, mut untested) = (0usize, 0usize, 0usize);
    for rule in set.rules() {
        let outcomes = trailhound_detector::testing::rule_tests(rule);
        let ok = outcomes.iter().filter(|o| o.passed()).count();
        passed += ok;
        failed += outcomes.len() - ok;
        let verdict = if outcomes.is_empty() {
            untested += 1;
            "NO TESTS"
        } else if ok == outcomes.len() {
            "PASS"
        } else {
            "FAIL"
        };
        let count = format!("{ok}/{}", outcomes.len());
        let _ = writeln!(out, "{:<width$}  {count:>7}  {verdict}", rule.id);
        for o in outcomes.iter().filter(|o| !o.passed()) {
            let _ = writeln!(
                out,
                "    FAIL {:?}: {}",
                o.name,
                o.failure.as_deref().unwrap_or("")
            );
        }
    }
    let _ = writeln!(
        out,
        "{passed} passed, {failed} failed ({} rules, {untested} without tests)",
        set.len()
    );
    emit(&out)?;
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Every finding, one a line, and the totals; fails when there is an error.
fn lint(rules: &RuleArgs, errors_only: bool) -> anyhow::Result<ExitCode> {
    let options = trailhound_rules::LoadOptions {
        no_builtin: rules.no_builtin,
        paths: rules.rules.clone(),
        ..Default::default()
    };
    if options.no_builtin && options.paths.is_empty() {
        anyhow::bail!("nothing to lint: give folders or files of rules, or leave out --no-builtin");
    }
    let report = trailhound_rules::lint::lint(&options)?;
    let mut out = String::new();
    for f in &report.findings {
        if errors_only && f.level != Level::Error {
            continue;
        }
        let _ = writeln!(out, "{f}");
    }
    let _ = writeln!(
        out,
        "{} error(s), {} warning(s) in {} file(s)",
        report.errors(),
        report.warnings(),
        report.files
    );
    emit(&out)?;
    Ok(if report.errors() == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Writes to standard output; a reader that went away (`| head`) is not an error.
fn emit(text: &str) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(()),
    }
}
