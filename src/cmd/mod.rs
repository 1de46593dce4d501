//! One module per subcommand.

mod backtest;
mod baseline;
mod demo;
mod detect;
mod generate;
mod kafka;
mod respond;
mod rules;
mod score;
mod sql;

use std::process::ExitCode;

use crate::cli::{Cli, Command, RuleArgs};

pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Detect(args) if args.kafka.is_some() => kafka::detect(&args),
        Command::Detect(args) if args.demo => demo::run(&args),
        Command::Detect(args) => detect::run(&args),
        Command::Rules(cmd) => rules::run(cmd),
        Command::Generate(args) => generate::run(&args),
        Command::Sql(args) => sql::run(&args),
        Command::Ingest(args) => kafka::ingest(&args),
        Command::Backtest(args) => backtest::run(&args),
        Command::Baseline(cmd) => baseline::run(cmd),
        Command::Release(args) => respond::release(&args),
    }
}

/// Loads the rules the arguments ask for, to run (the built-in pack without
/// its tests).
pub fn load_rules(args: &RuleArgs) -> anyhow::Result<trailhound_rules::RuleSet> {
    load_rules_with(args, false)
}

/// [`load_rules`] with the built-in rules' tests, for `rules test`.
pub fn load_rules_with_tests(args: &RuleArgs) -> anyhow::Result<trailhound_rules::RuleSet> {
    load_rules_with(args, true)
}

/// The rules to run, the built-in pack read without its tests unless
/// `tests` (`LoadOptions::tests`).
fn load_rules_with(args: &RuleArgs, tests: bool) -> anyhow::Result<trailhound_rules::RuleSet> {
    let options = trailhound_rules::LoadOptions {
        no_builtin: args.no_builtin,
        paths: args.rules.clone(),
        tests,
        ..Default::default()
    };
    Ok(trailhound_rules::RuleSet::load(&options)?)
}

/// The inputs of a command line: `-` is standard input, anything else a
/// file, folder (read recursively) or glob, expanded in the order file
/// names say they were written.
pub fn expand_inputs<T>(
    paths: &[String],
    stdin: impl Fn() -> T,
    path: impl Fn(std::path::PathBuf) -> T,
) -> anyhow::Result<Vec<T>> {
    use anyhow::Context;
    let mut inputs = Vec::new();
    let mut named = Vec::new();
    for p in paths {
        if p == "-" {
            inputs.push(stdin());
        } else {
            named.push(p.clone());
        }
    }
    let files = trailhound_ingest::expand_paths(&named).context("cannot list the inputs")?;
    inputs.extend(files.into_iter().map(path));
    Ok(inputs)
}

/// `--lateness` in microseconds.
pub fn lateness_micros(text: &str) -> anyhow::Result<i64> {
    trailhound_rules::rule::parse_period_micros(text).ok_or_else(|| {
        anyhow::anyhow!("--lateness {text:?} is not a number followed by s, m, h or d")
    })
}

/// Makes SIGINT and SIGTERM set `stop` (the run ends at its next safe
/// point); a second one while `stop` is set exits at once with status 130.
pub fn stop_on_signals(stop: &std::sync::Arc<std::sync::atomic::AtomicBool>) -> anyhow::Result<()> {
    use anyhow::Context;
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        let _ = signal_hook::flag::register_conditional_shutdown(
            signal,
            130,
            std::sync::Arc::clone(stop),
        );
        signal_hook::flag::register(signal, std::sync::Arc::clone(stop))
            .context("cannot install the signal handler")?;
    }
    Ok(())
}
