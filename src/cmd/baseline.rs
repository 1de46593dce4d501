//! `trailhound baseline build [PATHS] [--lake DIR] --state DIR`: learn
//! baselines from history (the audit lake, then files) without alerting; `trailhound baseline show --state DIR`: what a
//! state folder has learnt.
//!
//! The build runs only the rules with a `baseline:` block through the same
//! embedded pipeline and engine as `detect`, discards what they would have
//! raised, and leaves the engine's checkpoint (baselines, event-time
//! progress, inputs read) in the state folder. A later `detect --state DIR`
//! restores it: baseline rules start past their learning period for every
//! principal seen in the history, the other rules start empty.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use trailhound_detector::backtest::{self, BacktestOptions};
use trailhound_detector::checkpoint::Checkpoint;
use trailhound_detector::pipeline::{EndOfInput, RunOptions, StateConfig};
use trailhound_detector::{Engine, Input, PipelineConfig, Progress, checkpoint};
use trailhound_rules::RuleSet;

use crate::cli::{BaselineBuildArgs, BaselineCommand, RuleArgs};

pub fn run(cmd: BaselineCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        BaselineCommand::Build(args) => build(&args),
        BaselineCommand::Show { state, rules } => show(&state, &rules),
    }
}

/// The rules of `args` that have a baseline.
fn baseline_rules(args: &RuleArgs) -> anyhow::Result<RuleSet> {
    let all = super::load_rules(args)?;
    let rules: Vec<_> = all
        .rules()
        .iter()
        .filter(|r| r.baseline().is_some())
        .cloned()
        .collect();
    if rules.is_empty() {
        bail!("no rule with a `baseline:` block is loaded: nothing to learn");
    }
    Ok(RuleSet::from_rules(rules))
}

/// Learns the lake's events of the range into the checkpoint of the state
/// folder (restoring it first when there is one).
fn build_from_lake(
    args: &BaselineBuildArgs,
    lake: &std::path::Path,
    lateness: i64,
) -> anyhow::Result<()> {
    let time = |flag: &str, text: &Option<String>, default: i64| {
        match text {
        None => Ok(default),
        Some(t) => backtest::parse_time(t).ok_or_else(|| {
            anyhow::anyhow!("{flag} {t:?} is not a time: give RFC 3339 or, in UTC, 2026-11-02, 2026-11-02T10 or 2026-11-02T10:30")
        }),
    }
    };
    let from = time("--from", &args.from, 0)?;
    let to = time("--to", &args.to, i64::MAX / 2)?;
    let mut engine = Engine::new(baseline_rules(&args.rules)?).with_lateness(lateness);
    let previous = checkpoint::load(&args.state)?;
    if let Some(cp) = &previous {
        engine.restore_state(&cp.engine).map_err(|reason| {
            anyhow::anyhow!(
                "the checkpoint in {} cannot be restored: {reason}",
                args.state.display()
            )
        })?;
    }
    let options = BacktestOptions::new(lake, from, to);
    let report = backtest::replay(&mut engine, &options, false, &mut |_| {})
        .with_context(|| format!("cannot learn from the lake at {}", lake.display()))?;
    let state = engine.save_state().map_err(anyhow::Error::msg)?;
    let cp = Checkpoint {
        written_by: format!("trailhound {}", env!("CARGO_PKG_VERSION")),
        written_at: trailhound_core::time::now_micros(),
        inputs: previous.map(|p| p.inputs).unwrap_or_default(),
        engine: state,
    };
    checkpoint::save(&args.state, &cp)?;
    if !args.quiet {
        eprintln!(
            "lake:          {} event(s) learnt from {} hour partition(s) of {} ({} departure(s) in them not alerted)",
            report.events,
            report.partitions,
            lake.display(),
            report.alerts
        );
        if args.paths.is_empty() {
            eprint!("{}", keys_table(&engine));
            eprintln!(
                "state:         {}; start live with `trailhound detect --state {} ...`",
                args.state.display(),
                args.state.display()
            );
        }
    }
    Ok(())
}

fn build(args: &BaselineBuildArgs) -> anyhow::Result<ExitCode> {
    let lateness = super::lateness_micros(&args.lateness)?;
    std::fs::create_dir_all(&args.state)
        .with_context(|| format!("cannot create the state folder {}", args.state.display()))?;
    if let Some(lake) = &args.lake {
        build_from_lake(args, lake, lateness)?;
        if args.paths.is_empty() {
            return Ok(ExitCode::SUCCESS);
        }
    }
    let inputs = super::expand_inputs(&args.paths, || Input::Stdin, Input::Path)?;
    let rules = baseline_rules(&args.rules)?;
    let mut engine = Engine::new(rules).with_lateness(lateness);
    let mut config = PipelineConfig {
        dead_letter_path: Some(args.dead_letters.clone()),
        state: Some(StateConfig {
            dir: args.state.clone(),
            every: Duration::from_secs(args.checkpoint_secs.max(1)),
        }),
        // History is followed by live input: nothing is closed at its end.
        end_of_input: EndOfInput::Keep,
        ..PipelineConfig::default()
    };
    if let Some(n) = args.readers {
        config.readers = n.max(1);
    }
    let progress = Arc::new(Progress::default());
    super::stop_on_signals(&progress.stop)?;
    // No sinks: what the history would have raised is counted, not sent.
    let mut sinks = Vec::new();
    let options = RunOptions {
        progress: Some(progress),
        ..RunOptions::default()
    };
    let summary =
        trailhound_detector::pipeline::run_with(inputs, &mut engine, &mut sinks, &config, options)?;
    if !args.quiet {
        let mut out = String::from("\n== trailhound baseline build ==\n");
        out.push_str(&format!(
            "events learnt: {} from {} input(s) ({} already in the state, skipped), {} dead letter(s)\n",
            summary.events(),
            summary.inputs_by_format.values().sum::<u64>(),
            summary.inputs_already_read,
            summary.dead_letters()
        ));
        out.push_str(&keys_table(&engine));
        out.push_str(&format!(
            "not alerted:   {} departure(s) the history itself holds (a live run would have raised them)\n",
            summary.alerts()
        ));
        if let Some(w) = engine.watermark() {
            out.push_str(&format!(
                "learnt up to: {} (event time, less the allowed lateness)\n",
                trailhound_core::time::format_micros(w)
            ));
        }
        out.push_str(&format!(
            "state:         {}; start live with `trailhound detect --state {} ...`\n",
            args.state.display(),
            args.state.display()
        ));
        eprint!("{out}");
    }
    Ok(if summary.input_errors.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Keys per baseline rule, as lines.
fn keys_table(engine: &Engine) -> String {
    let mut out = String::new();
    let keys = engine.baseline_keys();
    let total: usize = keys.iter().map(|(_, k)| k).sum();
    out.push_str(&format!(
        "baselines:     {total} key(s) in {} rule(s)\n",
        keys.len()
    ));
    for (id, k) in keys {
        out.push_str(&format!("  {k:>9}  {id}\n"));
    }
    out
}

fn show(state: &std::path::Path, rules: &RuleArgs) -> anyhow::Result<ExitCode> {
    let Some(cp) = checkpoint::load(state)? else {
        bail!(
            "no checkpoint in {}: build one with `trailhound baseline build PATHS --state {}`",
            state.display(),
            state.display()
        );
    };
    let mut engine = Engine::new(super::load_rules(rules)?);
    let report = engine.restore_state(&cp.engine).map_err(|reason| {
        anyhow::anyhow!(
            "the checkpoint in {} cannot be read: {reason}",
            state.display()
        )
    })?;
    let mut out = format!(
        "checkpoint:    {} (written by {} at {})\n",
        checkpoint::path_in(state).display(),
        cp.written_by,
        trailhound_core::time::format_micros(cp.written_at)
    );
    out.push_str(&format!("inputs read:   {}\n", cp.inputs.inputs.len()));
    out.push_str(&keys_table(&engine));
    if !report.dropped.is_empty() {
        out.push_str(&format!(
            "not restored:  {} (rules changed or gone since the checkpoint)\n",
            report.dropped.join(", ")
        ));
    }
    if let Some(w) = engine.watermark() {
        out.push_str(&format!(
            "event time:    up to {} (less the allowed lateness)\n",
            trailhound_core::time::format_micros(w)
        ));
    }
    print!("{out}");
    Ok(ExitCode::SUCCESS)
}
