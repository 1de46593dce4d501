//! `trailhound generate`: a simulated organisation written to a folder.

use std::process::ExitCode;

use anyhow::{Context, bail};
use trailhound_ingest::generate::{GenerateConfig, Scenario, generate};

use crate::cli::GenerateArgs;

pub fn parse_scenarios(text: &str) -> anyhow::Result<Vec<Scenario>> {
    match text.trim() {
        "all" => Ok(Scenario::all()),
        "none" | "" => Ok(Vec::new()),
        list => list
            .split(',')
            .map(|s| {
                s.trim()
                    .parse::<Scenario>()
                    .map_err(|e| anyhow::anyhow!("{e}"))
            })
            .collect(),
    }
}

pub fn run(args: &GenerateArgs) -> anyhow::Result<ExitCode> {
    let start = chrono::NaiveDate::parse_from_str(&args.start, "%Y-%m-%d")
        .with_context(|| format!("--start {:?} is not YYYY-MM-DD", args.start))?;
    let Some(start) = start.and_hms_opt(0, 0, 0) else {
        bail!("--start {:?} is not a valid day", args.start);
    };
    if args.principals == 0 {
        bail!("--principals must be at least 1");
    }
    let config = GenerateConfig {
        seed: args.seed,
        principals: args.principals,
        days: args.days.max(1),
        start: start.and_utc().timestamp_micros(),
        scenarios: parse_scenarios(&args.attacks)?,
        sessions: !args.no_sessions,
        gzip: !args.no_gzip,
        events_per_principal_per_day: args.events_per_principal_per_day,
    };
    let generated = generate(&config);
    generated
        .write_to(&args.out)
        .with_context(|| format!("cannot write to {}", args.out.display()))?;
    eprintln!(
        "wrote {} files to {}: {} CloudTrail records, {} session events, {} labelled attack scenario(s) in labels.json",
        generated.files.len(),
        args.out.display(),
        generated.cloudtrail_records,
        generated.session_events,
        generated.labels.len()
    );
    Ok(ExitCode::SUCCESS)
}
