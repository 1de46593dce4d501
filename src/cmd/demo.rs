//! `trailhound detect --demo`: generate a small organisation with every attack
//! scenario in memory, detect, and check the alerts against the labels.

use std::process::ExitCode;

use trailhound_core::Alert;
use trailhound_detector::Input;
use trailhound_ingest::generate::{GenerateConfig, Label, generate};
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
    let memory = MemorySink::new();
    let mut sinks: Vec<Box<dyn AlertSink>> = vec![
        super::detect::stdout_sink(args.format),
        Box::new(memory.clone()),
    ];
    let summary = super::detect::run_pipeline(inputs, rules, &mut sinks, args)?;
    let alerts = memory.alerts();
    let report = check(&generated.labels, &alerts);
    println!("{}", report.text);
    if !args.quiet {
        super::detect::print_summary(&summary);
    }
    Ok(if report.ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

struct Report {
    ok: bool,
    text: String,
}

fn explains(label: &Label, alert: &Alert) -> bool {
    alert.rule_id == label.rule_id
        && alert.principal == label.principal
        && (label.event_ids.is_empty()
            || alert
                .event_ids
                .iter()
                .any(|id| label.event_ids.contains(id)))
}

fn check(labels: &[Label], alerts: &[Alert]) -> Report {
    let mut text = String::from("== demo: injected attacks ==\n");
    let mut missed = 0;
    for label in labels {
        let hit = alerts.iter().find(|a| explains(label, a));
        match hit {
            Some(a) => text.push_str(&format!(
                "  detected  {:<26} by {:<44} alert {}\n",
                label.scenario, label.rule_id, a.alert_id
            )),
            None => {
                missed += 1;
                text.push_str(&format!(
                    "  MISSED    {:<26} expected {} on {}\n",
                    label.scenario, label.rule_id, label.principal
                ));
            }
        }
    }
    let background: Vec<&Alert> = alerts
        .iter()
        .filter(|a| {
            !labels
                .iter()
                .any(|l| explains(l, a) || a.event_ids.iter().any(|id| l.event_ids.contains(id)))
        })
        .collect();
    for a in &background {
        text.push_str(&format!(
            "  FALSE POSITIVE on benign background: {} on {} ({})\n",
            a.rule_id, a.principal, a.evidence
        ));
    }
    text.push_str(&format!(
        "{} of {} scenarios detected, {} alert(s) on the benign background",
        labels.len() - missed,
        labels.len(),
        background.len()
    ));
    Report {
        ok: missed == 0 && background.is_empty(),
        text,
    }
}
