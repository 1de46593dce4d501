//! Helpers shared by the end-to-end tests: run the real binary, read its output.

// Each test binary uses the helpers it needs.
#![allow(dead_code)]

use std::io::Read;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// How long one run of the binary may take in a test before it is killed
/// and the test fails with what the run printed.
pub const RUN_LIMIT: Duration = Duration::from_secs(300);

/// Runs `trailhound ARGS` in `cwd` and returns what it did.
pub fn trailhound(args: &[&str], cwd: &Path) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_trailhound"));
    command.args(args).current_dir(cwd);
    run_within(&mut command, RUN_LIMIT)
}

/// Runs `command` to its end like [`Command::output`], but for at most
/// `limit`: a run still going then is killed and the test fails with its
/// standard error so far, so that a hang is a failure with a reason rather
/// than a stalled suite.
pub fn run_within(command: &mut Command, limit: Duration) -> Output {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"));
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        thread::spawn(move || {
            let mut bytes = Vec::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_end(&mut bytes);
            }
            bytes
        })
    };
    let stdout = drain(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let stderr = drain(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let deadline = Instant::now() + limit;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(50)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                let err = stderr.join().unwrap_or_default();
                panic!(
                    "{command:?} did not finish within {limit:?}; it printed:\n{}",
                    text(&err)
                );
            }
            Err(e) => panic!("waiting for {command:?}: {e}"),
        }
    };
    Output {
        status,
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    }
}

/// Output bytes as text.
pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}
