//! Gateway session logs: asciinema casts, Teleport audit events, Cowrie logs and
//! trailhound's own JSON lines, all into `session.*` events.

pub mod asciinema;
mod common;
pub mod cowrie;
pub mod jsonl;
mod keys;
pub mod teleport;
