//! The realistic workload generator: a simulated organisation's CloudTrail
//! logs and gateway session logs, with attack scenarios injected and
//! labelled.
//!
//! The organisation ([`org`]) has IAM users who are people (MFA, console
//! sign-ins, CLI and Terraform during their working hours, gateway sessions
//! to hosts), machine roles (CI/CD in bursts, applications and monitoring
//! calling steadily through SDKs), the role the gateway links its users to
//! ([`linked`]), and AWS services acting for them. Their calls ([`ops`])
//! cover the usual mix of services, S3 and DynamoDB data events, errors
//! included, written as real CloudTrail records ([`record`]) grouped into
//! delivery files per account, region and five minutes ([`cloudtrail`]).
//! Sessions ([`sessions`]) are written as Teleport audit events, asciinema
//! casts, Cowrie logs and trailhound session JSON lines. Each requested
//! [`Scenario`] is injected once ([`scenarios`], [`misuse`] for credential
//! misuse, [`grants`] for just-in-time grants and the session that outlives
//! one) and described by a [`Label`].
//!
//! Behaviour is consistent per principal so that baselines can learn it: a
//! person's networks, hours, APIs, user agents, hosts, commands and typing
//! rhythm are theirs for the whole span, a role's APIs, sources and hours
//! its own. Novelty is rare on purpose: it is what a baseline's
//! false-positive rate is measured on.
//!
//! Background activity never looks like any scenario: no root, no trail
//! changes, access keys only for oneself, console sign-ins always with MFA,
//! security groups opened only to 10.0.0.0/8, no suspicious commands, no
//! scripted typing, and the linked role only reads.
//!
//! Output is a pure function of the [`GenerateConfig`]: seeded generators,
//! ordered collections, no clock. [`generate`] keeps the files in memory;
//! [`generate_to_dir`] writes each as soon as it is complete.

mod cloudtrail;
mod grants;
mod linked;
mod misuse;
mod ops;
mod org;
mod record;
mod scenarios;
mod sessions;
mod util;

use serde::{Deserialize, Serialize};

pub use scenarios::Scenario;

/// What to generate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GenerateConfig {
    /// Seed: the same configuration always gives byte-identical output.
    pub seed: u64,
    /// Number of principals (people, roles and AWS services; at least 3 are
    /// made). About 64% are people (IAM users with keys and console
    /// sign-ins, each also a gateway user), 35% roles (CI, applications,
    /// monitoring, ETL, and the gateway's linked role), the rest AWS services.
    pub principals: usize,
    /// Length of the span in days (at least 1).
    pub days: u32,
    /// Start of the span, microseconds since the epoch, UTC.
    pub start: i64,
    /// Attacks to inject, each once. The credential-misuse ones
    /// ([`Scenario::credential_misuse`]) need nine days or more to land
    /// after a week of history.
    pub scenarios: Vec<Scenario>,
    /// Whether to write background gateway sessions (attack sessions are always written).
    pub sessions: bool,
    /// Whether CloudTrail files are gzip-compressed, as CloudTrail delivers them.
    pub gzip: bool,
    /// Average CloudTrail records per principal per day.
    pub events_per_principal_per_day: u32,
}

impl Default for GenerateConfig {
    fn default() -> Self {
        Self {
            seed: 7,
            principals: 20,
            days: 1,
            // 2026-11-02T00:00:00Z
            start: 1_793_577_600_000_000,
            scenarios: Scenario::demo(),
            sessions: true,
            gzip: true,
            events_per_principal_per_day: 150,
        }
    }
}

/// One generated file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GeneratedFile {
    /// Path relative to the output folder, in the layout the source uses
    /// (`AWSLogs/<account>/CloudTrail/<region>/YYYY/MM/DD/...json.gz`,
    /// `sessions/teleport/YYYY-MM-DD.log`, `sessions/asciinema/<sid>.cast`,
    /// `sessions/cowrie/cowrie.json.YYYY-MM-DD`,
    /// `sessions/gateway/sessions-YYYY-MM-DD.jsonl`, and with the grants
    /// scenario `grants/sym/grants-YYYY-MM-DD.jsonl`).
    pub path: String,
    /// The file's bytes.
    pub bytes: Vec<u8>,
    /// Time of the newest event in the file, microseconds since the epoch.
    /// Reading files in the order of this time (then path) gives the
    /// detector its events in about event-time order, which baselines need;
    /// the path order is region by region.
    pub newest: i64,
}

/// Ground truth for one injected scenario.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Label {
    /// Scenario id (`stop-logging`).
    pub scenario: String,
    /// The built-in rule that must catch it.
    pub rule_id: String,
    /// The event-model principal the detector sees (user or role ARN, root
    /// ARN, or `gateway:<login>`).
    pub principal: String,
    /// Time of the first labelled event, RFC 3339 (rounded down to the second).
    pub start: String,
    /// Time of the last labelled event, RFC 3339 (rounded up to the second).
    pub end: String,
    /// Event ids (CloudTrail `eventID`, or `<session id>:<sequence>`) the rule must match.
    pub event_ids: Vec<String>,
    /// Events of the same attack made as another principal, each with the
    /// rule that must catch them: the linked role a gateway user calls AWS
    /// through, say. Empty for most scenarios.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub related: Vec<Related>,
}

/// Events of a scenario made as another principal than its label's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Related {
    /// The event-model principal of these events.
    pub principal: String,
    /// The built-in rule that must catch them.
    pub rule_id: String,
    /// Their event ids.
    pub event_ids: Vec<String>,
}

/// Everything generated.
#[derive(Debug, Clone, Default)]
pub struct Generated {
    /// Files, sorted by path.
    pub files: Vec<GeneratedFile>,
    /// One label per injected scenario, in the order asked.
    pub labels: Vec<Label>,
    /// CloudTrail records written.
    pub cloudtrail_records: u64,
    /// Session log events written (log lines; for casts, start, commands and end).
    pub session_events: u64,
}

/// What a generation written to disk amounts to (files are not kept).
#[derive(Debug, Clone, Default)]
pub struct Summary {
    /// Files written (`labels.json` not counted).
    pub files: u64,
    /// Bytes written (`labels.json` not counted).
    pub bytes: u64,
    /// One label per injected scenario, in the order asked.
    pub labels: Vec<Label>,
    /// CloudTrail records written.
    pub cloudtrail_records: u64,
    /// Session log events written.
    pub session_events: u64,
}

/// Generates the workload described by `cfg`, in memory.
pub fn generate(cfg: &GenerateConfig) -> Generated {
    let mut files = Vec::new();
    let mut keep = |f: GeneratedFile| -> std::io::Result<()> {
        files.push(f);
        Ok(())
    };
    // Keeping files in memory cannot fail.
    let counts = run(cfg, &mut keep).unwrap_or_default();
    files.sort_by(|a, b| a.path.cmp(&b.path));
    Generated {
        files,
        labels: counts.labels,
        cloudtrail_records: counts.cloudtrail_records,
        session_events: counts.session_events,
    }
}

/// Generates the workload described by `cfg` straight into `dir` (created
/// if missing): each CloudTrail file is written as soon as its five minutes
/// are over, so memory stays flat however long the span; `labels.json` last.
pub fn generate_to_dir(cfg: &GenerateConfig, dir: &std::path::Path) -> std::io::Result<Summary> {
    std::fs::create_dir_all(dir)?;
    let mut made = std::collections::BTreeSet::new();
    let mut files = 0u64;
    let mut bytes = 0u64;
    let mut write = |f: GeneratedFile| -> std::io::Result<()> {
        let path = dir.join(&f.path);
        if let Some(parent) = path.parent()
            && made.insert(parent.to_path_buf())
        {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&path, &f.bytes)?;
        files += 1;
        bytes += f.bytes.len() as u64;
        Ok(())
    };
    let mut summary = run(cfg, &mut write)?;
    summary.files = files;
    summary.bytes = bytes;
    write_labels(dir, &summary.labels)?;
    Ok(summary)
}

fn write_labels(dir: &std::path::Path, labels: &[Label]) -> std::io::Result<()> {
    let text = serde_json::to_vec_pretty(labels).map_err(std::io::Error::other)?;
    std::fs::write(dir.join("labels.json"), text)
}

/// Generates everything, handing each finished file to `sink`.
fn run(cfg: &GenerateConfig, sink: cloudtrail::Sink<'_>) -> std::io::Result<Summary> {
    let org = org::Org::new(cfg.seed, cfg.principals);
    let start = cfg.start;
    let end = start.saturating_add(i64::from(cfg.days.max(1)) * util::DAY);

    let inj = scenarios::inject_all(&org, cfg.seed, &cfg.scenarios, start, end);
    let mut labels = inj.labels;
    let scenario_files = inj.files;

    let background = if cfg.sessions {
        sessions::plan_background(&org, start, end)
    } else {
        Vec::new()
    };
    // Benign AWS CLI use on bastions, through the gateway's linked role.
    let mut records = linked::background_calls(&org, &background);
    records.extend(inj.records);
    let mut all_sessions = background;
    all_sessions.extend(inj.sessions);
    let written = sessions::write_all(cfg.seed, &all_sessions);
    let mut times: Vec<Vec<i64>> = vec![Vec::new(); labels.len()];
    for (index, id, time) in written.labelled {
        if let (Some(l), Some(ts)) = (labels.get_mut(index), times.get_mut(index)) {
            l.event_ids.push(id);
            ts.push(time);
        }
    }
    for (l, ts) in labels.iter_mut().zip(&times) {
        if !ts.is_empty() {
            scenarios::set_label_times(l, ts);
        }
    }

    let (cloudtrail_records, _bytes) = cloudtrail::write_trail(
        &org,
        start,
        end,
        cfg.events_per_principal_per_day,
        cfg.gzip,
        records,
        &mut *sink,
    )?;
    for f in written.files.into_iter().chain(scenario_files) {
        sink(f)?;
    }
    Ok(Summary {
        files: 0,
        bytes: 0,
        labels,
        cloudtrail_records,
        session_events: written.events,
    })
}

impl Generated {
    /// Writes every file under `dir` (creating folders) plus `labels.json`.
    pub fn write_to(&self, dir: &std::path::Path) -> std::io::Result<()> {
        std::fs::create_dir_all(dir)?;
        for f in &self.files {
            let path = dir.join(&f.path);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::write(&path, &f.bytes)?;
        }
        write_labels(dir, &self.labels)
    }
}

#[cfg(test)]
mod tests;
