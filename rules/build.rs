//! Embeds every `pack/*.yaml` rule file into the binary: as written, and
//! without its `tests:` block, which is four fifths of the pack's text and
//! only `rules test` and `rules lint` read.
//!
//! The generated file holds the rules' text itself (not `include_str!` of
//! absolute paths) and change tracking uses paths relative to this crate, so
//! a build cache shared by two checkouts never serves one checkout's pack to
//! the other.

use std::fmt::Write as _;

fn main() {
    println!("cargo:rerun-if-changed=pack");
    let dir = std::path::Path::new("pack");
    let mut names: Vec<_> = std::fs::read_dir(dir)
        .map(|it| {
            it.filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    let mut out = String::from("&[\n");
    let mut untested = String::from("&[\n");
    for p in names {
        println!("cargo:rerun-if-changed={}", p.display());
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        let text = match std::fs::read_to_string(&p) {
            Ok(t) => t,
            Err(e) => panic!("cannot read built-in rule {}: {e}", p.display()),
        };
        let _ = writeln!(out, "    ({name:?}, {text:?}),");
        let _ = writeln!(untested, "    ({name:?}, {:?}),", without_tests(&text));
    }
    out.push(']');
    untested.push(']');
    let dir = std::path::PathBuf::from(std::env::var("OUT_DIR").unwrap_or_default());
    for (file, text) in [("pack.rs", out), ("pack_without_tests.rs", untested)] {
        let target = dir.join(file);
        if let Err(e) = std::fs::write(&target, text) {
            panic!("cannot write {}: {e}", target.display());
        }
    }
}

/// `text` without its top-level `tests:` block: from the line that starts
/// with `tests:` to the next line starting with a letter (the next
/// top-level key) or the end. Lines of the block are indented or start
/// with `-`, `#` or a space; a top-level key starts with a letter at the
/// start of its line. `pack::tests` checks that every rule reads the same
/// either way but for its tests.
fn without_tests(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut skipping = false;
    for line in text.split_inclusive('\n') {
        if line.starts_with(|c: char| c.is_ascii_alphabetic()) {
            skipping = line.starts_with("tests:");
        }
        if !skipping {
            out.push_str(line);
        }
    }
    out
}
