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

/// mimalloc's `mi_option_purge_delay` (its `mimalloc.h`; the same in its
/// versions 2 and 3). The sys crate names no constant for it.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Freed memory stays with the allocator for reuse and is not given back to
/// the system (mimalloc's `-1`; its default purges after a second). With any
/// purging, memory freed between batches went back and was faulted in again,
/// zeroed a huge page at a time: up to a third of a second of kernel time on
/// the bench file, a tenth of a two-core run, and still so with a delay of
/// ten seconds (BENCHMARKS.md). What a run uses is bounded by its settings
/// (batch bytes, queued chunks, state limits), so the peak it reaches is the
/// memory it needs; the peak itself is unchanged.
const PURGE_DELAY: std::ffi::c_long = -1;

fn keep_freed_memory() {
    // SAFETY: sets one of mimalloc's options, a plain integer it reads when
    // it would purge; no memory is touched.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, PURGE_DELAY) };
}

fn main() -> std::process::ExitCode {
    keep_freed_memory();
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_purge_delay_is_the_option_set() {
        // mimalloc's default for the option at that index is its purge
        // delay's, unless the environment set it.
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
            // SAFETY: reads one of mimalloc's options.
            let before = unsafe { libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY) };
            assert_eq!(before, 1_000);
        }
        keep_freed_memory();
        // SAFETY: as above.
        let after = unsafe { libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY) };
        assert_eq!(after, PURGE_DELAY);
    }
}
