//! The built-in rule pack: every `rules/pack/*.yaml`, embedded at build time.

/// `(file name, YAML text)` of every built-in rule, sorted by file name.
pub const FILES: &[(&str, &str)] = include!(concat!(env!("OUT_DIR"), "/pack.rs"));
