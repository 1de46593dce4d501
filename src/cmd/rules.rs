//! `trailhound rules list|test`.

use std::process::ExitCode;

use crate::cli::RulesCommand;

pub fn run(cmd: RulesCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        RulesCommand::List { rules } => {
            let set = super::load_rules(&rules)?;
            for r in set.rules() {
                let from = r
                    .file
                    .as_ref()
                    .map(|f| f.display().to_string())
                    .unwrap_or_else(|| "built-in".into());
                println!(
                    "{:<48} {:<13} {}  [{}]",
                    r.id,
                    r.severity.as_str(),
                    r.title,
                    from
                );
            }
            eprintln!("{} rules", set.len());
            Ok(ExitCode::SUCCESS)
        }
        RulesCommand::Test { rules } => {
            let set = super::load_rules(&rules)?;
            let outcomes = trailhound_detector::testing::all_tests(&set);
            let failed: Vec<_> = outcomes.iter().filter(|o| !o.passed()).collect();
            for o in &failed {
                println!(
                    "FAIL {} / {}: {}",
                    o.rule_id,
                    o.name,
                    o.failure.as_deref().unwrap_or("")
                );
            }
            let untested = set.rules().iter().filter(|r| r.tests.is_empty()).count();
            println!(
                "{} passed, {} failed ({} rules, {} without tests)",
                outcomes.len() - failed.len(),
                failed.len(),
                set.len(),
                untested
            );
            Ok(if failed.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
    }
}
