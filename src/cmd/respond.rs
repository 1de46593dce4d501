//! Automated response in the binary: the responder of `detect` (from
//! `response:` of `--config`, shadow by default) and `trailhound release`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use trailhound_core::ActionMode;
use trailhound_respond::{AwsIam, Iam, Ledger, Responder, ResponseConfig, ResponseWorker};
use trailhound_rules::rule::ResponseName;
use trailhound_sinks::LakeHook;

use crate::cli::ReleaseArgs;

/// Where the ledger is: `response.ledger`, else `actions.json` in the
/// state folder, else in the working folder.
pub fn ledger_path(config: &ResponseConfig, state: Option<&Path>) -> PathBuf {
    match (&config.ledger, state) {
        (Some(p), _) => p.clone(),
        (None, Some(dir)) => dir.join(trailhound_respond::LEDGER_FILE),
        (None, None) => PathBuf::from(trailhound_respond::LEDGER_FILE),
    }
}

/// A responder over `config`, making its IAM client (from the standard
/// AWS chain and `response.aws`) only when it first acts.
pub fn responder(
    config: ResponseConfig,
    rule_lists: BTreeMap<String, Vec<ResponseName>>,
    state: Option<&Path>,
) -> Responder {
    let ledger = Ledger::at(ledger_path(&config, state));
    let aws = config.aws.clone();
    let attempts = config.attempts;
    Responder::new(
        config,
        rule_lists,
        ledger,
        Box::new(move || Ok(Box::new(AwsIam::from_settings(&aws, attempts)?) as Box<dyn Iam>)),
    )
}

/// The responder of a `detect` run on its own thread.
pub fn start_worker(
    config_file: Option<&Path>,
    rules: &trailhound_rules::RuleSet,
    state: Option<&Path>,
    quiet: bool,
) -> anyhow::Result<ResponseWorker> {
    let config = crate::config::load_response(config_file)?;
    let lists: BTreeMap<String, Vec<ResponseName>> = rules
        .rules()
        .iter()
        .filter(|r| !r.respond.is_empty())
        .map(|r| (r.id.clone(), r.respond.clone()))
        .collect();
    if !quiet && config.mode == ActionMode::Enforce {
        eprintln!(
            "response: ENFORCE mode: at most {} action(s) per {}s, released after {}s; ledger {}",
            config.max_actions,
            config.window.as_secs(),
            config.ttl.as_secs(),
            ledger_path(&config, state).display()
        );
    }
    Ok(ResponseWorker::start(responder(config, lists, state)))
}

/// `trailhound release ACTION_ID... | --principal ARN`.
pub fn release(args: &ReleaseArgs) -> anyhow::Result<ExitCode> {
    let config = crate::config::load_response(args.config.as_deref())?;
    let mut config = config;
    if let Some(l) = &args.ledger {
        config.ledger = Some(l.clone());
    }
    let mut r = responder(config, BTreeMap::new(), args.state.as_deref());
    let why = "released by hand (trailhound release)";
    let mut results = Vec::new();
    for id in &args.action_ids {
        results.push(r.release(id, why));
    }
    if let Some(p) = &args.principal {
        let found = r.release_principal(p, why);
        if found.is_empty() {
            eprintln!("release: no action is in place on {p}");
        }
        results.extend(found);
    }
    if results.is_empty() {
        anyhow::bail!("name an action id, or --principal ARN");
    }
    let mut released = Vec::new();
    let mut failed = 0;
    for res in results {
        match res {
            Ok(a) => {
                println!(
                    "released {} ({} on {}): {}",
                    a.action_id, a.kind, a.principal, a.reason
                );
                released.push(a);
            }
            Err(e) => {
                failed += 1;
                eprintln!("release: {e}");
            }
        }
    }
    if let Some(root) = &args.lake
        && !released.is_empty()
    {
        let mut lake = trailhound_sinks::LakeWriter::open(trailhound_sinks::LakeConfig::new(root))
            .with_context(|| format!("cannot open the lake at {}", root.display()))?;
        lake.record_actions(&released)?;
        lake.close()?;
    }
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
