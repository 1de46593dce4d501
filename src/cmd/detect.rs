//! `trailhound detect PATHS`: the embedded pipeline over files or stdin.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::{Context, bail};
use trailhound_detector::{BatchPolicy, Engine, Input, PipelineConfig, Progress, Summary};
use trailhound_rules::Suppress;
use trailhound_sinks::{
    AlertSink, JsonLinesSink, LakeConfig, LakeHook, LakeStats, LakeWriter, TextSink,
};

use crate::cli::{AlertFormat, DetectArgs};

pub fn run(args: &DetectArgs) -> anyhow::Result<ExitCode> {
    if args.paths.is_empty() {
        bail!("nothing to read: give files, folders, globs or - for standard input (or --demo)");
    }
    let mut inputs = Vec::new();
    let mut named = Vec::new();
    for p in &args.paths {
        if p == "-" {
            inputs.push(Input::Stdin);
        } else {
            named.push(p.clone());
        }
    }
    let files = trailhound_ingest::expand_paths(&named).context("cannot list the inputs")?;
    inputs.extend(files.into_iter().map(Input::Path));
    let rules = super::load_rules(&args.rules)?;
    let mut sinks: Vec<Box<dyn AlertSink>> = vec![stdout_sink(args.format)];
    let run = run_pipeline(inputs, rules, &mut sinks, args)?;
    if !args.quiet {
        print_summary(&run);
    }
    Ok(if run.summary.input_errors.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

pub fn stdout_sink(format: AlertFormat) -> Box<dyn AlertSink> {
    match format {
        AlertFormat::Text => Box::new(TextSink::new(std::io::stdout())),
        AlertFormat::Json => Box::new(JsonLinesSink::new(std::io::stdout())),
    }
}

pub fn pipeline_config(args: &DetectArgs) -> PipelineConfig {
    let mut config = PipelineConfig {
        batch: BatchPolicy {
            max_rows: args.batch_rows.max(1),
            max_wait: Duration::from_millis(args.batch_ms),
        },
        dead_letter_path: Some(args.dead_letters.clone()),
        ..PipelineConfig::default()
    };
    if let Some(n) = args.readers {
        config.readers = n.max(1);
    }
    config
}

/// What a run did: the pipeline's summary and the engine's suppress-list count.
pub struct RunSummary {
    pub summary: Summary,
    /// Matching rows left out by a suppress list (the global one or a rule's own).
    pub suppressed_by_list: u64,
    /// The global suppress list given with `--suppress`, if any.
    pub suppress_file: Option<PathBuf>,
    /// What went to the audit lake, with its folder, when `--lake` was given.
    pub lake: Option<(PathBuf, LakeStats)>,
}

/// Opens the audit lake of `--lake`, if given.
pub fn open_lake(args: &DetectArgs) -> anyhow::Result<Option<LakeWriter>> {
    let Some(root) = &args.lake else {
        return Ok(None);
    };
    let mut config = LakeConfig::new(root);
    config.max_file_bytes = args.lake_file_mib.max(1).saturating_mul(1024 * 1024);
    config.max_file_age = Duration::from_secs(args.lake_file_secs);
    let lake = LakeWriter::open(config)
        .with_context(|| format!("cannot open the lake at {}", root.display()))?;
    Ok(Some(lake))
}

/// Loads the global suppress list of `--suppress`, or an empty one.
pub fn load_suppress(args: &DetectArgs) -> anyhow::Result<Suppress> {
    match &args.suppress {
        Some(path) => trailhound_rules::load_suppress_file(path).map_err(anyhow::Error::msg),
        None => Ok(Suppress::default()),
    }
}

/// Runs the pipeline with a progress bar when standard error is a terminal.
pub fn run_pipeline(
    inputs: Vec<Input>,
    rules: trailhound_rules::RuleSet,
    sinks: &mut [Box<dyn AlertSink>],
    args: &DetectArgs,
) -> anyhow::Result<RunSummary> {
    let config = pipeline_config(args);
    let suppress = load_suppress(args)?;
    let mut engine = Engine::new(rules).with_suppress(suppress);
    let progress = Arc::new(Progress::default());
    let show_bar = !args.quiet && std::io::stderr().is_terminal() && inputs.len() > 1;
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let bar_thread = show_bar.then(|| {
        let progress = Arc::clone(&progress);
        let done = Arc::clone(&done);
        std::thread::spawn(move || progress_bar(&progress, &done))
    });
    let mut lake = open_lake(args)?;
    let result = trailhound_detector::pipeline::run_with_lake(
        inputs,
        &mut engine,
        sinks,
        &config,
        Some(progress),
        lake.as_mut().map(|l| l as &mut dyn LakeHook),
    );
    done.store(true, Ordering::Relaxed);
    if let Some(t) = bar_thread {
        let _ = t.join();
    }
    Ok(RunSummary {
        summary: result?,
        suppressed_by_list: engine.stats().suppressed_by_list,
        suppress_file: args.suppress.clone(),
        lake: lake.map(|l| (l.root().to_path_buf(), l.stats().clone())),
    })
}

fn progress_bar(progress: &Progress, done: &std::sync::atomic::AtomicBool) {
    let bar = indicatif::ProgressBar::new(progress.inputs_total.load(Ordering::Relaxed));
    let style = indicatif::ProgressStyle::with_template(
        "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} inputs  {msg}",
    )
    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
    bar.set_style(style);
    while !done.load(Ordering::Relaxed) {
        bar.set_length(progress.inputs_total.load(Ordering::Relaxed));
        bar.set_position(progress.inputs_done.load(Ordering::Relaxed));
        bar.set_message(format!(
            "{} events, {} alerts",
            progress.events.load(Ordering::Relaxed),
            progress.alerts.load(Ordering::Relaxed)
        ));
        std::thread::sleep(Duration::from_millis(100));
    }
    bar.finish_and_clear();
}

pub fn print_summary(run: &RunSummary) {
    let s = &run.summary;
    let mut out = String::from("\n== trailhound summary ==\n");
    let by_source: Vec<String> = s
        .events_by_source
        .iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect();
    out.push_str(&format!(
        "events read:   {} ({})\n",
        s.events(),
        if by_source.is_empty() {
            "none".into()
        } else {
            by_source.join(", ")
        }
    ));
    let formats: Vec<String> = s
        .inputs_by_format
        .iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect();
    out.push_str(&format!(
        "inputs:        {} ({}), {} skipped (digests, labels), {} unreadable\n",
        s.inputs_by_format.values().sum::<u64>(),
        formats.join(", "),
        s.inputs_skipped,
        s.input_errors.len()
    ));
    for e in &s.input_errors {
        out.push_str(&format!("  unreadable: {e}\n"));
    }
    out.push_str(&format!("dead letters:  {}", s.dead_letters()));
    if s.dead_letters() > 0 {
        let reasons: Vec<String> = s
            .dead_letters_by_reason
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
        out.push_str(&format!(" ({})", reasons.join(", ")));
        if let Some(f) = &s.dead_letter_file {
            out.push_str(&format!(", written to {}", f.display()));
        }
    }
    out.push('\n');
    out.push_str(&format!(
        "alerts:        {} ({} rule matches, {} folded into earlier alerts by dedup)\n",
        s.alerts(),
        s.matches,
        s.suppressed
    ));
    let mut by_rule: Vec<_> = s.alerts_by_rule.iter().collect();
    by_rule.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    for (rule, n) in by_rule {
        out.push_str(&format!("  {n:>6}  {rule}\n"));
    }
    if run.suppressed_by_list > 0 || run.suppress_file.is_some() {
        out.push_str(&format!(
            "suppressed:    {} rule match(es) by suppress lists",
            run.suppressed_by_list
        ));
        match &run.suppress_file {
            Some(f) => out.push_str(&format!(
                " (global list {} and the rules' own)\n",
                f.display()
            )),
            None => out.push_str(" (the rules' own)\n"),
        }
    }
    if let Some((root, stats)) = &run.lake {
        let rows: Vec<String> = stats.rows.iter().map(|(k, v)| format!("{k} {v}")).collect();
        out.push_str(&format!(
            "lake:          {} file(s), {} bytes ({}) in {}\n",
            stats.files,
            stats.bytes,
            if rows.is_empty() {
                "no rows".into()
            } else {
                rows.join(", ")
            },
            root.display()
        ));
    }
    if s.rule_errors > 0 {
        out.push_str(&format!("rule errors:   {} (see the log)\n", s.rule_errors));
    }
    out.push_str(&format!(
        "throughput:    {:.0} events/s ({} events in {:.3} s, {} batches)\n",
        s.events_per_second(),
        s.events(),
        s.elapsed.as_secs_f64(),
        s.batches
    ));
    eprint!("{out}");
}
