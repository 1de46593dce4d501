//! `trailhound backtest --from T --to T`: the rules over the lake's events
//! (`trailhound_detector::backtest` does the work).

use std::io::Write;
use std::process::ExitCode;

use anyhow::{Context, anyhow};
use trailhound_detector::backtest::{self, BacktestOptions};
use trailhound_rules::Suppress;

use crate::cli::{BacktestArgs, BacktestFormat};

pub fn run(args: &BacktestArgs) -> anyhow::Result<ExitCode> {
    let time = |flag: &str, text: &str| {
        backtest::parse_time(text).ok_or_else(|| {
            anyhow!("{flag} {text:?} is not a time: give RFC 3339 or, in UTC, 2026-11-02, 2026-11-02T10 or 2026-11-02T10:30")
        })
    };
    if !args.lake.is_dir() {
        anyhow::bail!(
            "no lake at {}: give --lake (or TRAILHOUND_LAKE) the folder `detect --lake` wrote",
            args.lake.display()
        );
    }
    let from = time("--from", &args.from)?;
    let to = time("--to", &args.to)?;
    let lateness = super::lateness_micros(&args.lateness)?;
    let suppress = match &args.suppress {
        Some(path) => trailhound_rules::load_suppress_file(path).map_err(anyhow::Error::msg)?,
        None => Suppress::default(),
    };
    let rules = super::load_rules(&args.rules)?;
    let options = BacktestOptions {
        batch_rows: args.batch_rows.max(1),
        samples: args.samples,
        lateness_micros: lateness,
        suppress,
        ..BacktestOptions::new(&args.lake, from, to)
    };
    let mut alerts_file = match &args.alerts {
        Some(path) => Some(std::io::BufWriter::new(
            std::fs::File::create(path)
                .with_context(|| format!("cannot create {}", path.display()))?,
        )),
        None => None,
    };
    let mut write_error = None;
    let report = backtest::run(rules, &options, &mut |alert| {
        if let Some(f) = alerts_file.as_mut()
            && write_error.is_none()
        {
            let line = serde_json::to_string(alert).map_err(std::io::Error::other);
            if let Err(e) = line.and_then(|l| writeln!(f, "{l}")) {
                write_error = Some(e);
            }
        }
    })
    .with_context(|| format!("backtest over the lake at {}", args.lake.display()))?;
    if let (Some(path), Some(e)) = (&args.alerts, write_error) {
        return Err(e).with_context(|| format!("cannot write {}", path.display()));
    }
    if let (Some(path), Some(mut f)) = (&args.alerts, alerts_file) {
        f.flush()
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    let mut out = std::io::stdout().lock();
    match args.format {
        BacktestFormat::Table => report.write_table(&mut out)?,
        BacktestFormat::Json => {
            serde_json::to_writer(&mut out, &report)?;
            writeln!(out)?;
        }
    }
    out.flush()?;
    Ok(if report.rule_errors > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
