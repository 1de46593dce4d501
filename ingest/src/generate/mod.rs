//! The realistic workload generator: a simulated organisation's CloudTrail
//! logs and gateway session logs, with attack scenarios injected and
//! labelled.
//!
//! The organisation ([`org`]) has IAM users who are people (MFA, console
//! sign-ins, CLI and Terraform during their working hours, gateway sessions
//! to hosts), machine roles (CI/CD in bursts, applications and monitoring
//! calling steadily through SDKs) and AWS services acting for them. Their
//! calls ([`ops`]) cover the usual mix of services, S3 and DynamoDB data
//! events, errors included, written as real CloudTrail records
//! ([`record`]) grouped into delivery files per account, region and five
//! minutes ([`cloudtrail`]). Sessions ([`sessions`]) are written as Teleport
//! audit events, asciinema casts, Cowrie logs and trailhound session JSON
//! lines. Each requested [`Scenario`] is injected once ([`scenarios`]) and
//! described by a [`Label`].
//!
//! Background activity never looks like any scenario: no root, no trail
//! changes, access keys only for oneself, console sign-ins always with MFA,
//! security groups opened only to 10.0.0.0/8, and no suspicious commands.
//!
//! Output is a pure function of the [`GenerateConfig`]: seeded generators,
//! ordered collections, no clock.

mod cloudtrail;
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
    /// Number of principals (people, roles and AWS services; at least 3 are made).
    pub principals: usize,
    /// Length of the span in days (at least 1).
    pub days: u32,
    /// Start of the span, microseconds since the epoch, UTC.
    pub start: i64,
    /// Attacks to inject, each once.
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
            scenarios: Scenario::all(),
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
    /// `sessions/teleport/...`, `sessions/asciinema/<sid>.cast`,
    /// `sessions/cowrie/cowrie.json`, `sessions/gateway/sessions.jsonl`).
    pub path: String,
    /// The file's bytes.
    pub bytes: Vec<u8>,
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

/// Generates the workload described by `cfg`.
pub fn generate(cfg: &GenerateConfig) -> Generated {
    let org = org::Org::new(cfg.seed, cfg.principals);
    let start = cfg.start;
    let end = start.saturating_add(i64::from(cfg.days.max(1)) * util::DAY);

    let inj = scenarios::inject_all(&org, cfg.seed, &cfg.scenarios, start, end);
    let mut labels = inj.labels;

    let mut all_sessions = if cfg.sessions {
        sessions::plan_background(&org, start, end)
    } else {
        Vec::new()
    };
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

    let (mut files, records, _bytes) = cloudtrail::write_trail(
        &org,
        start,
        end,
        cfg.events_per_principal_per_day,
        cfg.gzip,
        inj.records,
    );
    files.extend(written.files);
    files.sort_by(|a, b| a.path.cmp(&b.path));
    Generated {
        files,
        labels,
        cloudtrail_records: records,
        session_events: written.events,
    }
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
        let labels = serde_json::to_vec_pretty(&self.labels).map_err(std::io::Error::other)?;
        std::fs::write(dir.join("labels.json"), labels)
    }
}
