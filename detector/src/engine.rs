//! Where rules run: every compiled rule on every batch, matches folded into
//! alerts by dedup key and period.

use std::collections::HashMap;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::TimestampMicrosecondType;
use trailhound_core::schema::columns;
use trailhound_core::time::now_micros;
use trailhound_core::{Alert, event_schema, id::stable_id};
use trailhound_rules::{CompiledRule, RuleError, RuleSet};

use crate::dedup::{Dedup, Verdict};

/// Most event ids an alert carries; `event_count` has the full number.
pub const MAX_EVENT_IDS: usize = 20;

/// Counters the engine keeps about itself.
#[derive(Debug, Default, Clone)]
pub struct EngineStats {
    /// Batches evaluated.
    pub batches: u64,
    /// Rows evaluated.
    pub rows: u64,
    /// Matches per rule id (before dedup).
    pub matches: HashMap<String, u64>,
    /// Matches folded into an alert already raised.
    pub suppressed: u64,
}

/// Runs a rule set on batches.
pub struct Engine {
    rules: RuleSet,
    dedup: Dedup,
    stats: EngineStats,
    idx_event_time: usize,
    idx_event_id: usize,
    idx_principal: usize,
    idx_account: usize,
}

struct Pending {
    alert: Alert,
}

impl Engine {
    /// An engine for the given rules.
    pub fn new(rules: RuleSet) -> Self {
        let schema = event_schema();
        let idx = |n: &str| schema.index_of(n).unwrap_or(usize::MAX);
        Self {
            rules,
            dedup: Dedup::default(),
            stats: EngineStats::default(),
            idx_event_time: idx(columns::EVENT_TIME),
            idx_event_id: idx(columns::EVENT_ID),
            idx_principal: idx(columns::PRINCIPAL),
            idx_account: idx(columns::ACCOUNT_ID),
        }
    }

    /// The rules this engine runs.
    pub fn rules(&self) -> &RuleSet {
        &self.rules
    }

    /// Counters so far.
    pub fn stats(&self) -> &EngineStats {
        &self.stats
    }

    /// Evaluates every rule on the batch and returns the new alerts.
    pub fn process(&mut self, batch: &RecordBatch) -> Result<Vec<Alert>, RuleError> {
        self.stats.batches += 1;
        self.stats.rows += batch.num_rows() as u64;
        if batch.num_rows() == 0 {
            return Ok(Vec::new());
        }
        let times = batch
            .column(self.idx_event_time)
            .as_primitive::<TimestampMicrosecondType>();
        let mut alerts = Vec::new();
        for rule in self.rules.rules() {
            let hits = rule.evaluate(batch)?;
            if hits.true_count() == 0 {
                continue;
            }
            *self.stats.matches.entry(rule.id.clone()).or_default() += hits.true_count() as u64;
            // Alerts opened by this batch for this rule, by dedup key.
            let mut open: HashMap<Vec<String>, Pending> = HashMap::new();
            for row in (0..batch.num_rows()).filter(|&r| hits.value(r)) {
                let key = rule.dedup_key(batch, row);
                let event_time = times.value(row);
                let event_id = cell(batch, self.idx_event_id, row);
                if let Some(p) = open.get_mut(&key) {
                    extend(&mut p.alert, event_time, event_id);
                    continue;
                }
                match self
                    .dedup
                    .check(&rule.id, &key, event_time, rule.dedup_period_micros)
                {
                    Verdict::Suppressed => self.stats.suppressed += 1,
                    Verdict::New { window_start } => {
                        let alert = self.new_alert(
                            rule,
                            batch,
                            row,
                            &key,
                            window_start,
                            event_time,
                            event_id,
                        );
                        open.insert(key, Pending { alert });
                    }
                }
            }
            let mut new: Vec<Alert> = open.into_values().map(|p| p.alert).collect();
            new.sort_by(|a, b| {
                a.first_event_time
                    .cmp(&b.first_event_time)
                    .then(a.alert_id.cmp(&b.alert_id))
            });
            alerts.extend(new);
        }
        Ok(alerts)
    }

    /// Forgets dedup state older than `horizon_micros` before the newest event seen.
    pub fn expire(&mut self, horizon_micros: i64) {
        self.dedup.expire(horizon_micros);
    }

    #[allow(clippy::too_many_arguments)]
    fn new_alert(
        &self,
        rule: &CompiledRule,
        batch: &RecordBatch,
        row: usize,
        key: &[String],
        window_start: i64,
        event_time: i64,
        event_id: String,
    ) -> Alert {
        let start = window_start.to_string();
        let parts = std::iter::once(rule.id.as_str())
            .chain(key.iter().map(String::as_str))
            .chain(std::iter::once(start.as_str()));
        let account = cell(batch, self.idx_account, row);
        Alert {
            alert_id: stable_id(parts),
            rule_id: rule.id.clone(),
            title: rule.title.clone(),
            severity: rule.severity,
            principal: cell(batch, self.idx_principal, row),
            account_id: (account != "-").then_some(account),
            first_event_time: event_time,
            last_event_time: event_time,
            detected_at: now_micros(),
            event_ids: vec![event_id],
            event_count: 1,
            evidence: rule.evidence(batch, row),
            tags: rule.tags.clone(),
        }
    }
}

fn extend(alert: &mut Alert, event_time: i64, event_id: String) {
    alert.first_event_time = alert.first_event_time.min(event_time);
    alert.last_event_time = alert.last_event_time.max(event_time);
    alert.event_count += 1;
    if alert.event_ids.len() < MAX_EVENT_IDS {
        alert.event_ids.push(event_id);
    }
}

fn cell(batch: &RecordBatch, column: usize, row: usize) -> String {
    match batch.columns().get(column) {
        Some(c) if !c.is_null(row) => trailhound_rules::template::cell_text(c.as_ref(), row),
        _ => "-".to_string(),
    }
}
