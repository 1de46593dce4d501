//! `trailhound detect PATHS`: the embedded pipeline over files or stdin.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use trailhound_detector::pipeline::{EndOfInput, RunOptions, StateConfig};
use trailhound_detector::{BatchPolicy, Engine, Input, PipelineConfig, Progress, Summary};
use trailhound_rules::Suppress;
use trailhound_sinks::{
    AlertSink, JsonLinesSink, LakeConfig, LakeHook, LakeStats, LakeWriter, Metrics, MetricsServer,
    OcsfLinesSink, SinkStats, TextSink,
};

use crate::cli::{AlertFormat, DetectArgs};

pub fn run(args: &DetectArgs) -> anyhow::Result<ExitCode> {
    if args.paths.is_empty() {
        bail!("nothing to read: give files, folders, globs or - for standard input (or --demo)");
    }
    let inputs = super::expand_inputs(&args.paths, || Input::Stdin, Input::Path)?;
    let rules = super::load_rules(&args.rules)?;
    // --labels: the generator's ground truth, read before the run so that a
    // bad file fails at once.
    let labels = match &args.labels {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading labels {}", path.display()))?;
            let labels: Vec<trailhound_ingest::generate::Label> = serde_json::from_str(&text)
                .with_context(|| {
                    format!("labels {}: not a generator labels.json", path.display())
                })?;
            Some((labels, super::score::behavioural(&rules)))
        }
        None => None,
    };
    let memory = trailhound_sinks::MemorySink::new();
    let mut sinks: Vec<Box<dyn AlertSink>> = vec![stdout_sink(args.format)];
    if labels.is_some() {
        sinks.push(Box::new(memory.clone()));
    }
    let run = run_pipeline(inputs, rules, &mut sinks, args)?;
    if !args.quiet {
        print_summary(&run);
    }
    let mut missed = 0;
    if let Some((labels, behavioural)) = labels {
        let events = run.summary.events_by_source.values().sum();
        let report = super::score::score(&labels, &memory.alerts(), &behavioural, events);
        eprintln!("{}", report.text);
        missed = report.missed;
    }
    Ok(if run.summary.input_errors.is_empty() && missed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

pub fn stdout_sink(format: AlertFormat) -> Box<dyn AlertSink> {
    match format {
        AlertFormat::Text => Box::new(TextSink::new(std::io::stdout())),
        AlertFormat::Json => Box::new(JsonLinesSink::new(std::io::stdout())),
        AlertFormat::Ocsf => Box::new(OcsfLinesSink::new(std::io::stdout())),
    }
}

pub fn pipeline_config(args: &DetectArgs) -> PipelineConfig {
    let mut config = PipelineConfig {
        batch: BatchPolicy {
            max_rows: args.batch_rows.max(1),
            max_wait: Duration::from_millis(args.batch_ms),
            ..BatchPolicy::default()
        },
        dead_letter_path: Some(args.dead_letters.clone()),
        ..PipelineConfig::default()
    };
    if let Some(dir) = &args.state {
        config.state = Some(StateConfig {
            dir: dir.clone(),
            every: Duration::from_secs(args.checkpoint_secs.max(1)),
        });
        if !args.flush {
            config.end_of_input = EndOfInput::Keep;
        }
    }
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
    /// The state folder of `--state`, if any.
    pub state: Option<PathBuf>,
    /// The final counters of the `notify:` sinks of `--config`, with their dead-letter files.
    pub notify: Vec<(SinkStats, PathBuf)>,
    /// The metrics endpoint of `--metrics`: it keeps serving for
    /// `--metrics-linger` seconds when this summary is dropped, that is after
    /// the caller has printed it.
    pub metrics: Option<MetricsEndpoint>,
}

/// The running endpoint of `--metrics`. Dropping it waits out
/// `--metrics-linger` (ended early by SIGINT or SIGTERM), then stops the server.
pub struct MetricsEndpoint {
    server: MetricsServer,
    linger: Duration,
    stop: Arc<AtomicBool>,
    quiet: bool,
}

impl Drop for MetricsEndpoint {
    fn drop(&mut self) {
        if self.linger.is_zero() || self.stop.load(Ordering::Relaxed) {
            return;
        }
        if !self.quiet {
            eprintln!(
                "metrics: still serving http://{}/metrics for {} s (Ctrl-C stops)",
                self.server.local_addr(),
                self.linger.as_secs()
            );
        }
        let until = Instant::now() + self.linger;
        while !self.stop.load(Ordering::Relaxed) {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            std::thread::sleep(left.min(Duration::from_millis(100)));
        }
    }
}

/// Starts the endpoint of `--metrics`, if given, and says where it is.
pub fn start_metrics(args: &DetectArgs) -> anyhow::Result<Option<(Metrics, MetricsServer)>> {
    serve_metrics(args.metrics, args.metrics_allow_remote, args.quiet)
}

/// Starts a metrics endpoint on `addr`, if given (beyond loopback only with
/// `allow_remote`), and says where it is.
pub fn serve_metrics(
    addr: Option<std::net::SocketAddr>,
    allow_remote: bool,
    quiet: bool,
) -> anyhow::Result<Option<(Metrics, MetricsServer)>> {
    let Some(addr) = addr else {
        return Ok(None);
    };
    let metrics = Metrics::new().context("cannot set up the metrics")?;
    let server = if allow_remote {
        MetricsServer::start_remote(addr, metrics.clone())?
    } else {
        MetricsServer::start(addr, metrics.clone())?
    };
    if !quiet {
        eprintln!("metrics: serving http://{}/metrics", server.local_addr());
    }
    Ok(Some((metrics, server)))
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

/// A cold start with a lake (no checkpoint to resume from): the grant
/// table is rebuilt from the lake's grant events of the last retention.
fn rebuild_grants(engine: &mut Engine, args: &DetectArgs) -> anyhow::Result<()> {
    let Some(lake) = &args.lake else {
        return Ok(());
    };
    let resumes = args
        .state
        .as_deref()
        .is_some_and(|dir| trailhound_detector::checkpoint::path_in(dir).exists());
    if resumes {
        return Ok(());
    }
    let rebuilt = trailhound_detector::grants::history::rebuild_from_lake(engine, lake)
        .with_context(|| format!("cannot rebuild the grant table from {}", lake.display()))?;
    if !args.quiet && rebuilt.grants > 0 {
        eprintln!(
            "grants: {} rebuilt from the lake ({} rows in {} hours)",
            rebuilt.grants, rebuilt.rows, rebuilt.hours
        );
    }
    Ok(())
}

/// Runs the pipeline with a progress bar when standard error is a terminal.
pub fn run_pipeline(
    inputs: Vec<Input>,
    rules: trailhound_rules::RuleSet,
    sinks: &mut Vec<Box<dyn AlertSink>>,
    args: &DetectArgs,
) -> anyhow::Result<RunSummary> {
    let config = pipeline_config(args);
    // The sinks of --config's `notify:` go beside the stdout sink; a configured
    // `stdout` output takes the place of --format's.
    let notify = crate::config::load_notify(args.config.as_deref())?;
    let mut notify_stats = Vec::new();
    if let Some(n) = &notify
        && n.replaces_stdout
    {
        sinks.retain(|s| !matches!(s.name(), "text" | "json" | "ocsf"));
    }
    let configured_from = sinks.len();
    if let Some(n) = notify {
        notify_stats = n.stats;
        sinks.extend(n.sinks);
    }
    let suppress = load_suppress(args)?;
    let lateness = super::lateness_micros(&args.lateness)?;
    // Automated response: shadow unless `response.mode: enforce`.
    let mut responder = super::respond::start_worker(
        args.config.as_deref(),
        &rules,
        args.state.as_deref(),
        args.quiet,
    )?;
    let grants = crate::config::load_grants(args.config.as_deref())?;
    let mut engine = Engine::new(rules)
        .with_suppress(suppress)
        .with_lateness(lateness)
        .with_grants(grants);
    rebuild_grants(&mut engine, args)?;
    let progress = Arc::new(Progress::default());
    super::stop_on_signals(&progress.stop)?;
    let show_bar = !args.quiet && std::io::stderr().is_terminal() && inputs.len() > 1;
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let bar_thread = show_bar.then(|| {
        let progress = Arc::clone(&progress);
        let done = Arc::clone(&done);
        std::thread::spawn(move || progress_bar(&progress, &done))
    });
    let mut lake = open_lake(args)?;
    let endpoint = start_metrics(args)?;
    if let Some((m, _)) = &endpoint {
        // The notify sinks' counters, read at every scrape.
        m.watch_sinks(notify_stats.iter().cloned());
    }
    let stop = Arc::clone(&progress.stop);
    let options = RunOptions {
        progress: Some(progress),
        lake: lake.as_mut().map(|l| l as &mut dyn LakeHook),
        metrics: endpoint.as_ref().map(|(m, _)| m.clone()),
        respond: Some(&mut responder),
    };
    let result =
        trailhound_detector::pipeline::run_with(inputs, &mut engine, sinks, &config, options);
    drop(responder);
    // Closing the configured sinks gives their queues a bounded time, then
    // writes what is left to their dead-letter files; count after that.
    sinks.truncate(configured_from);
    let notify = notify_stats
        .iter()
        .map(|h| (h.snapshot(), h.dead_letter_path().to_path_buf()))
        .collect();
    done.store(true, Ordering::Relaxed);
    if let Some(t) = bar_thread {
        let _ = t.join();
    }
    Ok(RunSummary {
        summary: result?,
        suppressed_by_list: engine.stats().suppressed_by_list,
        suppress_file: args.suppress.clone(),
        lake: lake.map(|l| (l.root().to_path_buf(), l.stats().clone())),
        state: args.state.clone(),
        notify,
        metrics: endpoint.map(|(_, server)| MetricsEndpoint {
            server,
            linger: Duration::from_secs(args.metrics_linger),
            stop,
            quiet: args.quiet,
        }),
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
    if !s.actions.is_empty() {
        out.push_str(&format!(
            "responses:     {} action record(s)\n",
            s.actions.values().sum::<u64>()
        ));
        for (what, n) in &s.actions {
            out.push_str(&format!("  {n:>6}  {what}\n"));
        }
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
    out.push_str(&notify_summary(&run.notify));
    if s.rule_errors > 0 {
        out.push_str(&format!("rule errors:   {} (see the log)\n", s.rule_errors));
    }
    let b = &s.baselines;
    if b.principals > 0 {
        out.push_str(&format!(
            "baselines:     {} key(s) learnt, {} value text(s) held",
            b.principals, b.interned_values
        ));
        let mut notes = Vec::new();
        if b.saturated_sets > 0 {
            notes.push(format!("{} saturated set(s)", b.saturated_sets));
        }
        if b.evicted_idle > 0 {
            notes.push(format!("{} idle key(s) forgotten", b.evicted_idle));
        }
        if b.cap_reached > 0 {
            notes.push(format!(
                "{} event(s) of new keys refused at the key cap",
                b.cap_reached
            ));
        }
        if b.late_rows > 0 {
            notes.push(format!("{} late row(s) not counted in rates", b.late_rows));
        }
        if !notes.is_empty() {
            out.push_str(&format!(" ({})", notes.join(", ")));
        }
        out.push('\n');
    }
    if s.late_dropped > 0 {
        out.push_str(&format!(
            "late events:   {} row(s) came after their windows closed (see --lateness)\n",
            s.late_dropped
        ));
    }
    if let Some(dir) = &run.state {
        out.push_str(&format!(
            "state:         {} checkpoint(s) in {}; resumed: {} input(s) already read, {} record(s) skipped, {} rule state(s) restored",
            s.checkpoints,
            dir.display(),
            s.inputs_already_read,
            s.records_resumed,
            s.rules_restored
        ));
        if !s.rules_state_dropped.is_empty() {
            out.push_str(&format!(
                ", dropped for changed or removed rules: {}",
                s.rules_state_dropped.join(", ")
            ));
        }
        out.push('\n');
        if s.stopped {
            out.push_str("stopped:       on request; the next run with --state resumes here\n");
        }
        if s.open_state > 0 {
            out.push_str(&format!(
                "open state:    {} window group(s) and sequence key(s) kept for the next run (--flush closes them)\n",
                s.open_state
            ));
        }
    }
    if let Some(m) = &run.metrics {
        out.push_str(&format!(
            "metrics:       http://{}/metrics\n",
            m.server.local_addr()
        ));
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

/// The summary's lines for the `notify:` sinks: one per sink, then where dead letters went.
fn notify_summary(sinks: &[(SinkStats, PathBuf)]) -> String {
    let mut out = String::new();
    let mut files: Vec<(&PathBuf, u64)> = Vec::new();
    for (i, (st, file)) in sinks.iter().enumerate() {
        out.push_str(&format!(
            "{}{} ({}): {} sent, {} retried, {} failed, {} dropped (queue full), {} not routed\n",
            if i == 0 {
                "notify:        "
            } else {
                "               "
            },
            st.name,
            st.kind,
            st.sent,
            st.retried,
            st.failed,
            st.dropped,
            st.not_routed
        ));
        if st.dead_lettered > 0 {
            match files.iter_mut().find(|(f, _)| *f == file) {
                Some((_, n)) => *n += st.dead_lettered,
                None => files.push((file, st.dead_lettered)),
            }
        }
    }
    for (file, n) in files {
        out.push_str(&format!(
            "               {n} undelivered alert(s) written to {}\n",
            file.display()
        ));
    }
    out
}
