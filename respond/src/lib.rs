//! # trailhound-respond
//!
//! Automated response that is safe to switch on. An alert's rule (its
//! `respond:` list) and the settings file's `response.policy` name
//! responders; [`Responder`] (in `responder.rs`, where a revocation is
//! decided) runs the guardrails and, in enforce mode, makes the change:
//!
//! | responder | what it adds | release removes |
//! |---|---|---|
//! | `quarantine-principal` | a deny-all inline policy on the IAM user or role | that policy |
//! | `revoke-sessions` | an inline deny of every action when `aws:TokenIssueTime` is before now (what the console's "revoke active sessions" does) | that policy |
//! | `disable-access-key` | the alert's access key set inactive | the key set active again |
//! | `end-gateway-session` | the gateway's API called to end and lock the session; in Kafka deployments the action record on the actions topic is the command | the unlock URL, when configured |
//!
//! Guardrails, all on by default: shadow mode unless `mode: enforce`; an
//! allow-list with wildcards; root and AWS service principals never acted
//! on; a cap per window with a circuit breaker that falls back to shadow
//! and raises a critical alert; idempotency (one action per responder and
//! principal while in place; a released action is not redone by a replayed
//! alert); a time to live; every decision an [`trailhound_core::Action`]
//! record. What is in place is kept in the [`ledger`], so that a release
//! removes exactly what was added, and nothing else.
//!
//! [`ResponseWorker`] runs the responder on its own thread behind the
//! pipeline's [`trailhound_core::ResponseHook`], so IAM calls and their
//! retries never hold up detection.

pub mod config;
pub mod gateway;
pub mod iam;
pub mod ledger;
pub mod moto;
pub mod principal;
pub mod responder;
pub mod worker;

pub use config::{PolicyEntry, ResponseConfig};
pub use iam::{AwsIam, Holder, Iam, IamError, KeyStatus};
pub use ledger::{Change, Ledger, LedgerData, LedgerError, Placed};
pub use principal::Target;
pub use responder::{IamFactory, ReleaseError, Responder, kind_name};
pub use worker::ResponseWorker;

/// The ledger's file name inside a state folder.
pub const LEDGER_FILE: &str = "actions.json";

#[cfg(test)]
mod tests;
