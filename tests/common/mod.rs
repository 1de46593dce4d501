//! Helpers shared by the end-to-end tests: run the real binary, read its output.

// Each test binary uses the helpers it needs.
#![allow(dead_code)]

use std::path::Path;
use std::process::{Command, Output};

/// Runs `trailhound ARGS` in `cwd` and returns what it did.
pub fn trailhound(args: &[&str], cwd: &Path) -> Output {
    match Command::new(env!("CARGO_BIN_EXE_trailhound"))
        .args(args)
        .current_dir(cwd)
        .output()
    {
        Ok(o) => o,
        Err(e) => panic!("cannot run trailhound: {e}"),
    }
}

/// Output bytes as text.
pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}
