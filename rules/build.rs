//! Embeds every `pack/*.yaml` rule file into the binary.
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
    for p in names {
        println!("cargo:rerun-if-changed={}", p.display());
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        let text = match std::fs::read_to_string(&p) {
            Ok(t) => t,
            Err(e) => panic!("cannot read built-in rule {}: {e}", p.display()),
        };
        let _ = writeln!(out, "    ({name:?}, {text:?}),");
    }
    out.push(']');
    let target =
        std::path::Path::new(&std::env::var("OUT_DIR").unwrap_or_default()).join("pack.rs");
    if let Err(e) = std::fs::write(&target, out) {
        panic!("cannot write {}: {e}", target.display());
    }
}
