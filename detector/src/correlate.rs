//! Correlation state: per rule and link value, the recent rows of the
//! `first` side (what a person typed in a gateway session), waiting for a
//! row of the `then` side (an AWS call through the linked role).
//!
//! Rows are taken in event-time order within a batch. A `then` row whose
//! link has `first` rows no older than `within` becomes an alert candidate
//! that lists those rows (the command lines) beside the call; further `then`
//! rows of the same link in the same batch join that candidate, so a burst
//! of calls is one alert showing all of them. Later calls fold into the
//! alert through dedup, keyed by the link. `first` rows older than the
//! watermark minus `within` are forgotten; at most [`MAX_FIRSTS`] are kept
//! per link and at most [`MAX_LINKS`] links per rule (the oldest go first).

use std::collections::{BTreeMap, HashMap, VecDeque};

use trailhound_rules::correlate::CompiledCorrelate;

use crate::engine::{Candidate, MAX_EVENT_IDS};

/// Most `first` rows kept per link.
pub const MAX_FIRSTS: usize = 64;
/// Most links kept per rule.
pub const MAX_LINKS: usize = 100_000;
/// Most lines of each side an alert's evidence shows.
pub const SHOWN: usize = 12;

/// One side's row as the evidence shows it.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(crate) struct SideRow {
    pub time: i64,
    pub event_id: String,
    /// The command line, or `service:EventName`.
    pub text: String,
    /// Principal of the row.
    pub principal: String,
    /// Gateway session id, for `first` rows.
    pub session: Option<String>,
    /// Host the session was on, for `first` rows.
    pub target: Option<String>,
    pub account: Option<String>,
}

/// The waiting `first` rows of one correlation rule.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct CorrelateState {
    links: HashMap<String, VecDeque<SideRow>>,
    dropped: u64,
}

impl CorrelateState {
    /// Links with waiting rows.
    pub fn links(&self) -> usize {
        self.links.len()
    }

    /// Rows given up because a link or the rule was at its cap.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Keeps a `first` row.
    pub(crate) fn remember(&mut self, link: &str, row: SideRow) {
        if !self.links.contains_key(link) && self.links.len() >= MAX_LINKS {
            // Forget the link whose newest row is oldest.
            if let Some(oldest) = self
                .links
                .iter()
                .min_by_key(|(_, rows)| rows.back().map_or(i64::MIN, |r| r.time))
                .map(|(k, _)| k.clone())
            {
                self.links.remove(&oldest);
                self.dropped += 1;
            }
        }
        let rows = self.links.entry(link.to_string()).or_default();
        if rows.len() >= MAX_FIRSTS {
            rows.pop_front();
            self.dropped += 1;
        }
        rows.push_back(row);
    }

    /// The `first` rows of `link` within `within` before `time`.
    pub(crate) fn recent(&self, link: &str, time: i64, within: i64) -> Vec<&SideRow> {
        self.links.get(link).map_or_else(Vec::new, |rows| {
            rows.iter()
                .filter(|r| r.time <= time && time - r.time <= within)
                .collect()
        })
    }

    /// Forgets rows that no later row can join any more.
    pub(crate) fn expire(&mut self, watermark: i64, within: i64) {
        let cutoff = watermark.saturating_sub(within);
        self.links.retain(|_, rows| {
            rows.retain(|r| r.time >= cutoff);
            !rows.is_empty()
        });
    }
}

/// Candidates being built from one batch, by link.
#[derive(Default)]
pub(crate) struct Joins {
    open: BTreeMap<String, Join>,
}

struct Join {
    firsts: Vec<SideRow>,
    thens: Vec<SideRow>,
}

impl Joins {
    /// Adds a `then` row joined to `firsts` (the link's recent `first` rows).
    pub fn add(&mut self, link: &str, firsts: Vec<SideRow>, then: SideRow) {
        let join = self.open.entry(link.to_string()).or_insert_with(|| Join {
            firsts: Vec::new(),
            thens: Vec::new(),
        });
        for f in firsts {
            if !join.firsts.iter().any(|g| g.event_id == f.event_id) {
                join.firsts.push(f);
            }
        }
        join.thens.push(then);
    }

    /// One candidate per link, with both sides in the evidence.
    pub fn into_candidates(self, rule_id: &str, spec: &CompiledCorrelate) -> Vec<Candidate> {
        self.open
            .into_iter()
            .filter_map(|(link, mut j)| {
                j.firsts.sort_by_key(|r| r.time);
                j.thens.sort_by_key(|r| r.time);
                let first = j.firsts.first()?;
                let last_then = j.thens.last()?;
                let head_then = j.thens.first()?;
                let evidence = describe(&link, &j.firsts, &j.thens, spec);
                let mut event_ids: Vec<String> = j
                    .firsts
                    .iter()
                    .chain(&j.thens)
                    .map(|r| r.event_id.clone())
                    .collect();
                let event_count = event_ids.len() as u64;
                event_ids.truncate(MAX_EVENT_IDS);
                Some(Candidate {
                    rule_id: rule_id.to_string(),
                    key: vec![link.clone()],
                    id_time: first.time,
                    principal: head_then.principal.clone(),
                    account: head_then.account.clone(),
                    dedup_key: vec![link],
                    first_event_time: first.time,
                    last_event_time: last_then.time,
                    event_ids,
                    event_count,
                    evidence,
                })
            })
            .collect()
    }
}

fn listed(rows: &[SideRow], quote: bool) -> String {
    let mut seen: Vec<&str> = Vec::new();
    for r in rows {
        if !seen.contains(&r.text.as_str()) {
            seen.push(&r.text);
        }
    }
    let more = seen.len().saturating_sub(SHOWN);
    let mut out: Vec<String> = seen
        .iter()
        .take(SHOWN)
        .map(|t| {
            if quote {
                format!("`{t}`")
            } else {
                t.to_string()
            }
        })
        .collect();
    if more > 0 {
        out.push(format!("and {more} more"));
    }
    out.join("; ")
}

fn describe(link: &str, firsts: &[SideRow], thens: &[SideRow], spec: &CompiledCorrelate) -> String {
    let mut sessions: Vec<String> = Vec::new();
    for f in firsts {
        let where_ = match (&f.session, &f.target) {
            (Some(s), Some(t)) => format!("session {s} on {t}"),
            (Some(s), None) => format!("session {s}"),
            (None, Some(t)) => format!("on {t}"),
            (None, None) => continue,
        };
        if !sessions.contains(&where_) {
            sessions.push(where_);
        }
    }
    let who_first = firsts.first().map_or(link, |f| f.principal.as_str());
    let who_then: Vec<&str> = {
        let mut v: Vec<&str> = Vec::new();
        for t in thens {
            if !v.contains(&t.principal.as_str()) {
                v.push(&t.principal);
            }
        }
        v
    };
    format!(
        "{who_first} ({}) typed: {}. Then, within {}, {} linked by {link:?} called: {}",
        if sessions.is_empty() {
            "gateway".to_string()
        } else {
            sessions.join(", ")
        },
        listed(firsts, true),
        spec.within_text,
        who_then.join(", "),
        listed(thens, false),
    )
}
