//! `trailhound sql [QUERY]`: SQL over the audit lake. One query, or an
//! interactive prompt reading statements ending in `;` from standard input.

use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;

use anyhow::Context;
use trailhound_sinks::lake::sql::{LakeQuery, OutputFormat, write_results};

use crate::cli::{SqlArgs, SqlFormat};

pub fn run(args: &SqlArgs) -> anyhow::Result<ExitCode> {
    let format = match args.format {
        SqlFormat::Table => OutputFormat::Table,
        SqlFormat::Csv => OutputFormat::Csv,
        SqlFormat::Json => OutputFormat::Json,
    };
    let lake = LakeQuery::open(&args.lake)
        .with_context(|| format!("cannot open the lake at {}", args.lake.display()))?;
    if let Some(query) = &args.query {
        let (schema, batches) = lake.query(query)?;
        write_results(&schema, &batches, format, &mut std::io::stdout().lock())?;
        return Ok(ExitCode::SUCCESS);
    }
    prompt(&lake, format)
}

fn prompt(lake: &LakeQuery, format: OutputFormat) -> anyhow::Result<ExitCode> {
    let interactive = std::io::stdin().is_terminal();
    if interactive {
        eprintln!(
            "trailhound sql: tables events, alerts, actions (partition columns date, hour); end statements with ; and quit with \\q or Ctrl-D"
        );
    }
    let mut failed = false;
    let mut statement = String::new();
    let show_prompt = |continuing: bool| {
        if interactive {
            eprint!(
                "{}",
                if continuing {
                    "        -> "
                } else {
                    "trailhound> "
                }
            );
            let _ = std::io::stderr().flush();
        }
    };
    show_prompt(false);
    for line in std::io::stdin().lock().lines() {
        let line = line.context("cannot read standard input")?;
        if statement.is_empty() && matches!(line.trim(), "\\q" | "quit" | "exit") {
            break;
        }
        statement.push_str(&line);
        statement.push('\n');
        if line.trim_end().ends_with(';') {
            failed |= !execute(lake, &statement, format);
            statement.clear();
        }
        show_prompt(!statement.trim().is_empty());
    }
    if !statement.trim().is_empty() {
        failed |= !execute(lake, &statement, format);
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// Runs one statement and prints its result or its error; true when it ran.
fn execute(lake: &LakeQuery, statement: &str, format: OutputFormat) -> bool {
    let result = lake.query(statement).and_then(|(schema, batches)| {
        write_results(&schema, &batches, format, &mut std::io::stdout().lock())
    });
    match result {
        Ok(()) => true,
        Err(e) => {
            eprintln!("error: {e}");
            false
        }
    }
}
