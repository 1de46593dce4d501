//! `trailhound detect --demo`: generate a small organisation with every attack
//! scenario in memory, detect, and check the alerts against the labels.

use std::process::ExitCode;

use trailhound_detector::Input;
use trailhound_ingest::generate::{GenerateConfig, generate};
use trailhound_sinks::{AlertSink, MemorySink};

use crate::cli::DetectArgs;

pub fn run(args: &DetectArgs) -> anyhow::Result<ExitCode> {
    let config = GenerateConfig::default();
    let generated = generate(&config);
    if !args.quiet {
        eprintln!(
            "demo: a simulated organisation of {} principals over {} day(s): {} CloudTrail records and {} session log records in {} files, with {} attack scenarios injected",
            config.principals,
            config.days,
            generated.cloudtrail_records,
            generated.session_events,
            generated.files.len(),
            generated.labels.len()
        );
    }
    let inputs = generated
        .files
        .iter()
        .map(|f| Input::Bytes {
            name: f.path.clone(),
            bytes: f.bytes.clone(),
        })
        .collect();
    let rules = super::load_rules(&args.rules)?;
    let behavioural = super::score::behavioural(&rules);
    let memory = MemorySink::new();
    let mut sinks: Vec<Box<dyn AlertSink>> = vec![
        super::detect::stdout_sink(args.format),
        Box::new(memory.clone()),
    ];
    let summary = super::detect::run_pipeline(inputs, rules, &mut sinks, args)?;
    let alerts = memory.alerts();
    let events = summary.summary.events_by_source.values().sum();
    let report = super::score::score(&generated.labels, &alerts, &behavioural, events);
    println!("{}", report.text);
    if !args.quiet {
        super::detect::print_summary(&summary);
    }
    Ok(if report.missed == 0 && report.background == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
