//! One module per subcommand.

mod backtest;
mod baseline;
mod demo;
mod detect;
mod generate;
mod kafka;
mod rules;
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
    }
}

/// Loads the rules the arguments ask for.
pub fn load_rules(args: &RuleArgs) -> anyhow::Result<trailhound_rules::RuleSet> {
    let options = trailhound_rules::LoadOptions {
        no_builtin: args.no_builtin,
        paths: args.rules.clone(),
    };
    Ok(trailhound_rules::RuleSet::load(&options)?)
}
