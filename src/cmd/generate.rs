//! `trailhound generate`: a simulated organisation written to a folder.

use std::process::ExitCode;

use anyhow::{Context, bail};
use trailhound_ingest::generate::{GenerateConfig, Scenario, generate_to_dir};

use crate::cli::GenerateArgs;

/// Scenario ids and set names (`demo`, `credential-misuse`, `all`, `none`),
/// comma-separated; each scenario once, in the order given.
pub fn parse_scenarios(text: &str) -> anyhow::Result<Vec<Scenario>> {
    let mut out: Vec<Scenario> = Vec::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let found = match part {
            "none" => Vec::new(),
            name => match Scenario::set(name) {
                Some(set) => set,
                None => vec![name.parse::<Scenario>().map_err(|e| {
                    anyhow::anyhow!("{e}; sets are demo, credential-misuse, grants, all, none")
                })?],
            },
        };
        for sc in found {
            if !out.contains(&sc) {
                out.push(sc);
            }
        }
    }
    Ok(out)
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
    let started = std::time::Instant::now();
    let summary = generate_to_dir(&config, &args.out)
        .with_context(|| format!("cannot write to {}", args.out.display()))?;
    eprintln!(
        "wrote {} files ({:.1} MiB) to {} in {:.1}s: {} CloudTrail records, {} session events, {} labelled attack scenario(s) in labels.json",
        summary.files,
        summary.bytes as f64 / (1024.0 * 1024.0),
        args.out.display(),
        started.elapsed().as_secs_f64(),
        summary.cloudtrail_records,
        summary.session_events,
        summary.labels.len()
    );
    Ok(ExitCode::SUCCESS)
}
