//! The `trailhound` command: argument parsing and wiring only. Each
//! subcommand lives in `cmd/`; the work is done by the library crates.

mod cli;
mod cmd;
mod config;

use clap::Parser;

/// Events are built on reader threads and dropped on the engine thread;
/// mimalloc handles that cross-thread traffic with far less time in the
/// allocator than the system one (BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    let cli = cli::Cli::parse();
    let filter =
        tracing_subscriber::EnvFilter::try_from_env("TRAILHOUND_LOG").unwrap_or_else(|_| {
            tracing_subscriber::EnvFilter::new(if cli.verbose { "info" } else { "warn" })
        });
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    match cmd::run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("trailhound: {e:#}");
            std::process::ExitCode::from(2)
        }
    }
}
