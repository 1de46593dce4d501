//! Where rules run: every compiled rule on every batch, matches folded into
//! alerts by dedup key and period.
//!
//! Each rule's `where` is evaluated once per batch. Rows that pass it and are
//! not suppressed (the engine's global suppress list first, then the rule's)
//! either become alerts directly, or feed the rule's window
//! ([`crate::window`]) or sequence ([`crate::sequence`]) state. Stateful rules
//! alert when a window closes or a sequence completes; time there is event
//! time, driven by a watermark: the newest event time seen minus the allowed
//! lateness ([`DEFAULT_LATENESS_MICROS`], see [`Engine::with_lateness`]).
//! [`Engine::flush`] closes everything at the end of input. Baseline rules
//! ([`crate::baseline`]) learn and query per-key state row by row, in event
//! time order within the batch, and alert at once on a departure. Every
//! alert then goes through dedup. Before any rule, the grant table
//! ([`crate::grants`]) adds the grant columns to the batch; grants whose end
//! the watermark passed come back as `grant.closed` rows run through the
//! rules too.

use std::borrow::Cow;
use std::collections::HashMap;

use trailhound_rules::template::TextColumn;
/// A string cell without allocating (the rules' template reads cells the same way).
pub(crate) use trailhound_rules::template::text_cell as str_at;

use arrow::array::{Array, AsArray, RecordBatch, TimestampMicrosecondArray};
use arrow::datatypes::TimestampMicrosecondType;
use trailhound_core::grant::GrantClosure;
use trailhound_core::schema::columns;
use trailhound_core::time::now_micros;
use trailhound_core::{Alert, event_schema, id::stable_id};
use trailhound_rules::compile::Stateful;
use trailhound_rules::{CompiledRule, RuleError, RuleSet, Suppress};

use crate::baseline::{BaselineLimits, BaselineSnapshot, BaselineStats, BaselineStore};
use crate::correlate::{CorrelateState, Joins, SideRow};
use crate::dedup::{Dedup, Verdict};
use crate::grants::{GrantConfig, GrantSnapshot, GrantTable};
use crate::link::{LinkConfig, LinkContext, RowLink};
use crate::prefilter::{self, Hits, ValueIndex};
use crate::sequence::{SequenceState, StartMeta};
use crate::window::{AggColumns, GroupMeta, RowInfo, WindowState};

/// Most event ids an alert carries; `event_count` has the full number.
pub const MAX_EVENT_IDS: usize = 20;

/// How far behind the newest event time seen an event may be and still
/// count in a window or sequence: 20 minutes.
pub const DEFAULT_LATENESS_MICROS: i64 = 20 * 60 * 1_000_000;

/// How many rows ahead a baseline feed starts loading a key's index slot.
const PREFETCH_SLOT_AHEAD: usize = 16;
/// How many rows ahead a baseline feed starts loading a key's profile.
const PREFETCH_PROFILE_AHEAD: usize = 8;

/// Counters the engine keeps about itself.
#[derive(Debug, Default, Clone)]
pub struct EngineStats {
    /// Batches evaluated.
    pub batches: u64,
    /// Rows evaluated.
    pub rows: u64,
    /// Matches per rule id (before dedup). For window and sequence rules,
    /// the windows and sequences that fired.
    pub matches: HashMap<String, u64>,
    /// Matches folded into an alert already raised.
    pub suppressed: u64,
    /// Matching rows left out by a suppress list (global or the rule's).
    pub suppressed_by_list: u64,
    /// Rule evaluations skipped because the batch had none of the event
    /// names the rule needs.
    pub skipped_by_prefilter: u64,
    /// Nanoseconds spent evaluating each rule's `where`, by the rule's
    /// place in the rule set (see [`Engine::where_seconds`]).
    pub where_nanos: Vec<u64>,
}

/// An alert-to-be from a window or sequence, before dedup.
#[derive(Debug, Clone)]
pub(crate) struct Candidate {
    pub rule_id: String,
    /// Group or join key values (part of the alert id).
    pub key: Vec<String>,
    /// Window start or first step time (part of the alert id).
    pub id_time: i64,
    pub principal: String,
    pub account: Option<String>,
    pub dedup_key: Vec<String>,
    pub first_event_time: i64,
    pub last_event_time: i64,
    pub event_ids: Vec<String>,
    pub event_count: u64,
    pub evidence: String,
}

/// Runs a rule set on batches.
pub struct Engine {
    rules: RuleSet,
    /// Global suppress list, applied before every rule's own.
    pub suppress: Suppress,
    dedup: Dedup,
    stats: EngineStats,
    lateness_micros: i64,
    newest: Option<i64>,
    hold: Option<i64>,
    windows: Vec<Option<WindowState>>,
    sequences: Vec<Option<SequenceState>>,
    correlations: Vec<Option<CorrelateState>>,
    baselines: BaselineStore,
    links: LinkContext,
    grants: GrantTable,
    idx_event_time: usize,
    idx_event_id: usize,
    idx_principal: usize,
    idx_event_name: usize,
    idx_account: usize,
    idx_source_ip: usize,
    idx_source: usize,
    idx_command: usize,
    idx_event_source: usize,
    idx_session_id: usize,
    idx_target: usize,
    idx_access_key: usize,
}

struct Pending {
    alert: Alert,
}

impl Engine {
    /// An engine for the given rules.
    pub fn new(rules: RuleSet) -> Self {
        let schema = event_schema();
        let idx = |n: &str| schema.index_of(n).unwrap_or(usize::MAX);
        let windows = rules
            .rules()
            .iter()
            .map(|r| r.window().map(|_| WindowState::default()))
            .collect();
        let sequences = rules
            .rules()
            .iter()
            .map(|r| r.sequence().map(|_| SequenceState::default()))
            .collect();
        let correlations = rules
            .rules()
            .iter()
            .map(|r| r.correlate().map(|_| CorrelateState::default()))
            .collect();
        let baselines = BaselineStore::for_rules(
            rules.rules().iter().map(|r| r.baseline()),
            BaselineLimits::default(),
        );
        Self {
            rules,
            baselines,
            links: LinkContext::default(),
            grants: GrantTable::default(),
            suppress: Suppress::default(),
            dedup: Dedup::default(),
            stats: EngineStats::default(),
            lateness_micros: DEFAULT_LATENESS_MICROS,
            newest: None,
            hold: None,
            windows,
            sequences,
            correlations,
            idx_event_time: idx(columns::EVENT_TIME),
            idx_event_id: idx(columns::EVENT_ID),
            idx_principal: idx(columns::PRINCIPAL),
            idx_event_name: idx(columns::EVENT_NAME),
            idx_account: idx(columns::ACCOUNT_ID),
            idx_source_ip: idx(columns::SOURCE_IP),
            idx_source: idx(columns::SOURCE),
            idx_command: idx(columns::COMMAND),
            idx_event_source: idx(columns::EVENT_SOURCE),
            idx_access_key: idx(columns::ACCESS_KEY_ID),
            idx_session_id: idx(columns::SESSION_ID),
            idx_target: idx(columns::TARGET),
        }
    }

    /// Sets how gateway logins and AWS principals are linked for the
    /// context every alert carries ([`crate::link`]).
    pub fn with_links(mut self, config: LinkConfig) -> Self {
        self.links = LinkContext::new(config);
        self
    }

    /// Sets how the grant table judges calls ([`crate::grants`]): which
    /// roles are privileged, how gateway roles map to AWS roles.
    pub fn with_grants(mut self, config: GrantConfig) -> Self {
        self.grants = GrantTable::new(config);
        self
    }

    /// The grant table.
    pub fn grants(&self) -> &GrantTable {
        &self.grants
    }

    /// Applies the grant events of a batch (grant events, Identity Center
    /// records, gateway session starts and ends) to the grant table without
    /// running any rule: a cold start rebuilds the table from the lake this
    /// way. Grants that ended by `settled_until` are taken as closed.
    pub fn learn_grants(
        &mut self,
        batch: &RecordBatch,
        settled_until: Option<i64>,
    ) -> Result<(), RuleError> {
        self.grants.enrich(batch).map_err(grant_error)?;
        if let Some(t) = settled_until {
            self.grants.settle(t);
        }
        Ok(())
    }

    /// Sets the global suppress list: events from these principals, accounts
    /// and source networks never alert, whatever the rule.
    pub fn with_suppress(mut self, suppress: Suppress) -> Self {
        self.suppress = suppress;
        self
    }

    /// Sets how late (behind the newest event time seen) an event may be and
    /// still count in windows and sequences. Negative values count as zero.
    pub fn with_lateness(mut self, micros: i64) -> Self {
        self.lateness_micros = micros.max(0);
        self
    }

    /// Sets the budgets of baseline state (values per key, idle horizon,
    /// global cap on keys).
    pub fn with_baseline_limits(mut self, limits: BaselineLimits) -> Self {
        self.baselines.set_limits(limits);
        self
    }

    /// Counters about baseline state: keys held, saturated sets, evictions,
    /// refusals at the global cap.
    pub fn baseline_stats(&self) -> &BaselineStats {
        self.baselines.stats()
    }

    /// Baseline keys held per rule, as (rule id, keys), for the rules that
    /// have a baseline.
    pub fn baseline_keys(&self) -> Vec<(&str, usize)> {
        self.rules
            .rules()
            .iter()
            .zip(self.baselines.keys_per_rule())
            .filter(|(r, _)| r.baseline().is_some())
            .map(|(r, keys)| (r.id.as_str(), keys))
            .collect()
    }

    /// The rules this engine runs.
    pub fn rules(&self) -> &RuleSet {
        &self.rules
    }

    /// Counters so far.
    pub fn stats(&self) -> &EngineStats {
        &self.stats
    }

    /// Seconds spent evaluating each rule's `where` so far, by rule id.
    pub fn where_seconds(&self) -> impl Iterator<Item = (&str, f64)> + '_ {
        self.rules
            .rules()
            .iter()
            .zip(self.stats.where_nanos.iter())
            .map(|(rule, nanos)| (rule.id.as_str(), *nanos as f64 / 1e9))
    }

    /// The watermark: the newest event time seen (or the hold, when it is
    /// earlier) minus the allowed lateness. Windows ending at or before it
    /// are closed. `None` before any event.
    pub fn watermark(&self) -> Option<i64> {
        let front = match (self.newest, self.hold) {
            (Some(n), Some(h)) => Some(n.min(h)),
            (n, _) => n,
        };
        front.map(|n| n.saturating_sub(self.lateness_micros))
    }

    /// Holds the watermark back to at most `front` minus the lateness, or
    /// releases it (`None`). A source reading several inputs at once sets
    /// it to the oldest of their newest event times, so that one input
    /// running ahead does not make another one's events late.
    pub fn hold_watermark(&mut self, front: Option<i64>) {
        self.hold = front;
    }

    /// Groups and keys held in window and sequence state (for tests and metrics).
    pub fn state_size(&self) -> usize {
        self.windows
            .iter()
            .flatten()
            .map(WindowState::groups)
            .sum::<usize>()
            + self
                .sequences
                .iter()
                .flatten()
                .map(SequenceState::keys)
                .sum::<usize>()
            + self
                .correlations
                .iter()
                .flatten()
                .map(CorrelateState::links)
                .sum::<usize>()
    }

    /// Rows left out of windows because every window they belonged to had
    /// already closed (later than the allowed lateness).
    pub fn late_dropped(&self) -> u64 {
        self.windows
            .iter()
            .flatten()
            .map(WindowState::late_dropped)
            .sum()
    }

    /// Evaluates every rule on the batch and returns the new alerts.
    pub fn process(&mut self, batch: &RecordBatch) -> Result<Vec<Alert>, RuleError> {
        self.stats.batches += 1;
        self.stats.rows += batch.num_rows() as u64;
        if batch.num_rows() == 0 {
            return Ok(Vec::new());
        }
        // The grant columns, before any rule (crate::grants).
        let enriched = self.grants.enrich(batch).map_err(grant_error)?;
        let mut closures = enriched.closures;
        let batch = &enriched.batch;
        let times = batch
            .column(self.idx_event_time)
            .as_primitive::<TimestampMicrosecondType>();
        let batch_newest = times.values().iter().copied().max();
        let row_links = self.links.observe(batch, self.watermark());
        let mut alerts = Vec::new();
        let mut candidates = Vec::new();
        self.run_rules(batch, &mut alerts, &mut candidates)?;
        if let Some(n) = batch_newest {
            self.newest = Some(self.newest.map_or(n, |o| o.max(n)));
        }
        if let Some(newest) = self.newest {
            self.baselines.sweep(newest);
        }
        if let Some(watermark) = self.watermark() {
            self.close_grants(watermark, &mut alerts, &mut candidates, &mut closures)?;
            candidates.extend(self.close(Some(watermark))?);
        }
        alerts.extend(self.finish(candidates));
        if !row_links.is_empty() {
            self.annotate_links(&mut alerts, &row_links);
        }
        self.annotate_closures(&mut alerts, &closures);
        Ok(alerts)
    }

    /// Runs every rule on one batch (of the rule schema): plain alerts to
    /// `alerts`, window, sequence and correlation results to `candidates`.
    fn run_rules(
        &mut self,
        batch: &RecordBatch,
        alerts: &mut Vec<Alert>,
        candidates: &mut Vec<Candidate>,
    ) -> Result<(), RuleError> {
        let rules = std::mem::take(&mut self.rules);
        let values = ValueIndex::of(
            batch,
            &[self.idx_event_name, self.idx_event_source, self.idx_source],
        );
        // The batch's rows in event-time order, sorted once for every
        // baseline that needs it.
        let mut by_time = TimeOrder::default();
        let result = (|| {
            for (ri, rule) in rules.rules().iter().enumerate() {
                let started = std::time::Instant::now();
                let evaluated = prefilter::evaluate(rule, batch, &values);
                let took = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
                if self.stats.where_nanos.len() <= ri {
                    self.stats.where_nanos.resize(ri + 1, 0);
                }
                if let Some(total) = self.stats.where_nanos.get_mut(ri) {
                    *total = total.saturating_add(took);
                }
                let hits = match evaluated? {
                    Hits::Skipped => {
                        self.stats.skipped_by_prefilter += 1;
                        continue;
                    }
                    Hits::Rows(h) => h,
                };
                if hits.true_count() == 0 {
                    continue;
                }
                let rows = self.passing_rows(rule, batch, &hits);
                if rows.is_empty() {
                    continue;
                }
                match &rule.stateful {
                    Stateful::None => alerts.extend(self.plain_alerts(rule, batch, &rows)),
                    Stateful::Window(_) => self.feed_window(ri, rule, batch, &rows),
                    Stateful::Sequence(_) => {
                        candidates.extend(self.feed_sequence(ri, rule, batch, &values, &rows)?)
                    }
                    Stateful::Correlate(_) => {
                        candidates.extend(self.feed_correlate(ri, rule, batch, &rows)?)
                    }
                    Stateful::Baseline(_) => {
                        alerts.extend(self.feed_baseline(ri, rule, batch, &rows, &mut by_time)?)
                    }
                }
            }
            Ok::<(), RuleError>(())
        })();
        self.rules = rules;
        result
    }

    /// Closes the grants whose end is at or before `until` and runs their
    /// `grant.closed` rows through the rules ([`crate::grants`]).
    fn close_grants(
        &mut self,
        until: i64,
        alerts: &mut Vec<Alert>,
        candidates: &mut Vec<Candidate>,
        closures: &mut HashMap<String, GrantClosure>,
    ) -> Result<(), RuleError> {
        self.grants.sweep(until);
        if let Some(closed) = self.grants.close_until(until).map_err(grant_error)? {
            self.run_rules(&closed.batch, alerts, candidates)?;
            closures.extend(closed.closures);
        }
        Ok(())
    }

    /// Gives the alerts of grant rules (tagged `grant`) the sessions their
    /// first closing event asks to close: a `grant.closed` row's, or a late
    /// call's own. Alerts of other rules are left as they are, so their
    /// responders act as they always do.
    fn annotate_closures(&self, alerts: &mut [Alert], closures: &HashMap<String, GrantClosure>) {
        if closures.is_empty() {
            return;
        }
        for alert in alerts {
            let grant_rule = self
                .rules
                .rules()
                .iter()
                .find(|r| r.id == alert.rule_id)
                .is_some_and(|r| r.tags.iter().any(|t| t == "grant"));
            if !grant_rule {
                continue;
            }
            if let Some(c) = alert.event_ids.iter().find_map(|id| closures.get(id)) {
                alert.closes = Some(c.clone());
            }
        }
    }

    /// Gives each alert of this batch the other side of its gateway <-> AWS
    /// link (see [`crate::link`]), found through its first linked event.
    /// Correlation rules already show both sides and are left as they are.
    fn annotate_links(&self, alerts: &mut [Alert], row_links: &HashMap<String, RowLink>) {
        for alert in alerts {
            let correlation = self
                .rules
                .rules()
                .iter()
                .find(|r| r.id == alert.rule_id)
                .is_some_and(|r| r.correlate().is_some());
            if correlation {
                continue;
            }
            if let Some(link) = alert.event_ids.iter().find_map(|id| row_links.get(id)) {
                self.links.annotate(alert, link);
            }
        }
    }

    /// Closes every window and ends every sequence wait, and closes the
    /// grants that ended by the newest event time: call at the end of
    /// input. Returns the alerts they raise.
    pub fn flush(&mut self) -> Result<Vec<Alert>, RuleError> {
        let mut alerts = Vec::new();
        let mut candidates = Vec::new();
        let mut closures = HashMap::new();
        if let Some(newest) = self.newest {
            self.close_grants(newest, &mut alerts, &mut candidates, &mut closures)?;
        }
        candidates.extend(self.close(None)?);
        alerts.extend(self.finish(candidates));
        self.annotate_closures(&mut alerts, &closures);
        Ok(alerts)
    }

    /// Forgets dedup state older than `horizon_micros` before the newest event seen.
    pub fn expire(&mut self, horizon_micros: i64) {
        self.dedup.expire(horizon_micros);
    }

    /// Rows where `hits` is true and no suppress list applies.
    fn passing_rows(
        &mut self,
        rule: &CompiledRule,
        batch: &RecordBatch,
        hits: &arrow::array::BooleanArray,
    ) -> Vec<usize> {
        let check = !self.suppress.is_empty() || !rule.suppress.is_empty();
        let mut rows = Vec::with_capacity(hits.true_count());
        let principal = batch.columns().get(self.idx_principal);
        let account = batch.columns().get(self.idx_account);
        let source_ip = batch.columns().get(self.idx_source_ip);
        for row in hits.values().set_indices() {
            if check {
                let p = principal.and_then(|c| str_at(c.as_ref(), row));
                let a = account.and_then(|c| str_at(c.as_ref(), row));
                let ip = source_ip.and_then(|c| str_at(c.as_ref(), row));
                if self.suppress.suppresses(p, a, ip) || rule.suppress.suppresses(p, a, ip) {
                    self.stats.suppressed_by_list += 1;
                    continue;
                }
            }
            rows.push(row);
        }
        rows
    }

    fn plain_alerts(
        &mut self,
        rule: &CompiledRule,
        batch: &RecordBatch,
        rows: &[usize],
    ) -> Vec<Alert> {
        let times = batch
            .column(self.idx_event_time)
            .as_primitive::<TimestampMicrosecondType>();
        *self.stats.matches.entry(rule.id.clone()).or_default() += rows.len() as u64;
        // Alerts opened by this batch for this rule, by dedup key.
        let mut open: HashMap<Vec<String>, Pending> = HashMap::new();
        for &row in rows {
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
                    let alert =
                        self.new_alert(rule, batch, row, &key, window_start, event_time, event_id);
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
        new
    }

    fn feed_window(&mut self, ri: usize, rule: &CompiledRule, batch: &RecordBatch, rows: &[usize]) {
        let Some(window) = rule.window() else { return };
        let Some(Some(state)) = self.windows.get_mut(ri) else {
            return;
        };
        let times = batch
            .column(self.idx_event_time)
            .as_primitive::<TimestampMicrosecondType>();
        let event_ids = batch
            .columns()
            .get(self.idx_event_id)
            .map(|c| TextColumn::of(c.as_ref()));
        let (idx_principal, idx_account) = (self.idx_principal, self.idx_account);
        let Some(key_columns) = key_columns_of(batch, &window.group_by) else {
            return;
        };
        let agg_columns = AggColumns::of(window, batch);
        let mut key = Vec::with_capacity(window.group_by.len());
        for &row in rows {
            if !key_parts(&key_columns, row, &mut key) {
                continue;
            }
            let info = RowInfo {
                columns: &agg_columns,
                row,
                time: times.value(row),
            };
            let event_id = event_ids.and_then(|c| c.get(row));
            state.add(
                window,
                &key,
                &info,
                event_id,
                || GroupMeta {
                    principal: cell(batch, idx_principal, row),
                    account: account_of(batch, idx_account, row),
                    dedup_key: rule.dedup_key(batch, row),
                },
                || {
                    rule.has_evidence_template()
                        .then(|| rule.evidence(batch, row))
                },
            );
        }
    }

    fn feed_sequence(
        &mut self,
        ri: usize,
        rule: &CompiledRule,
        batch: &RecordBatch,
        values: &ValueIndex<'_>,
        rows: &[usize],
    ) -> Result<Vec<Candidate>, RuleError> {
        let Some(seq) = rule.sequence() else {
            return Ok(Vec::new());
        };
        // Each step's condition once per batch; a step whose required
        // values are absent from the batch holds on no row.
        let steps = seq
            .steps
            .iter()
            .map(|s| {
                if values.cannot_match(s.required()) {
                    Ok(arrow::array::BooleanArray::from(vec![
                        false;
                        batch.num_rows()
                    ]))
                } else {
                    s.evaluate(batch)
                }
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| rule.eval_error(e))?;
        let absent = seq
            .absent
            .as_ref()
            .map(|s| s.evaluate(batch))
            .transpose()
            .map_err(|e| rule.eval_error(e))?;
        let times = batch
            .column(self.idx_event_time)
            .as_primitive::<TimestampMicrosecondType>();
        let mut marked: Vec<(i64, usize, u64, bool)> = rows
            .iter()
            .filter_map(|&row| {
                let mut mask = 0u64;
                for (i, s) in steps.iter().enumerate() {
                    if s.value(row) {
                        mask |= 1 << i;
                    }
                }
                let gone = absent.as_ref().is_some_and(|a| a.value(row));
                (mask != 0 || gone).then(|| (times.value(row), row, mask, gone))
            })
            .collect();
        marked.sort_unstable_by_key(|&(t, row, _, _)| (t, row));
        let Some(Some(state)) = self.sequences.get_mut(ri) else {
            return Ok(Vec::new());
        };
        let event_ids = batch.columns().get(self.idx_event_id);
        let (idx_principal, idx_account) = (self.idx_principal, self.idx_account);
        let Some(key_columns) = key_columns_of(batch, &seq.by) else {
            return Ok(Vec::new());
        };
        let mut parts = Vec::with_capacity(seq.by.len());
        let mut out = Vec::new();
        for (time, row, mask, gone) in marked {
            if !key_parts(&key_columns, row, &mut parts) {
                continue;
            }
            let key = parts.drain(..).map(Cow::into_owned).collect();
            let event_id = event_ids
                .and_then(|c| str_at(c.as_ref(), row))
                .unwrap_or("-");
            out.extend(
                state.on_row(&rule.id, seq, key, time, event_id, mask, gone, || {
                    StartMeta {
                        principal: cell(batch, idx_principal, row),
                        account: account_of(batch, idx_account, row),
                        dedup_key: rule.dedup_key(batch, row),
                        evidence: rule
                            .has_evidence_template()
                            .then(|| rule.evidence(batch, row)),
                    }
                }),
            );
        }
        Ok(out)
    }

    /// Keeps the `first` rows of a correlation rule and joins `then` rows to
    /// them by link value (see [`crate::correlate`]).
    fn feed_correlate(
        &mut self,
        ri: usize,
        rule: &CompiledRule,
        batch: &RecordBatch,
        rows: &[usize],
    ) -> Result<Vec<Candidate>, RuleError> {
        let Some(spec) = rule.correlate() else {
            return Ok(Vec::new());
        };
        let columns = spec.columns(batch).map_err(|e| rule.eval_error(e))?;
        let times = batch
            .column(self.idx_event_time)
            .as_primitive::<TimestampMicrosecondType>();
        let mut marked: Vec<(i64, usize)> = rows
            .iter()
            .filter(|&&r| columns.is_first(r) || columns.is_then(r))
            .map(|&r| (times.value(r), r))
            .collect();
        marked.sort_unstable();
        let watermark = self.watermark();
        let Some(Some(state)) = self.correlations.get_mut(ri) else {
            return Ok(Vec::new());
        };
        let text_of = |row: usize| -> String {
            let col = |i: usize| batch.columns().get(i).and_then(|c| str_at(c.as_ref(), row));
            if col(self.idx_source) == Some("session") {
                col(self.idx_command)
                    .or(col(self.idx_event_name))
                    .unwrap_or("-")
                    .to_string()
            } else {
                let service = col(self.idx_event_source).unwrap_or("-");
                let service = service.strip_suffix(".amazonaws.com").unwrap_or(service);
                format!("{service}:{}", col(self.idx_event_name).unwrap_or("-"))
            }
        };
        let side_row = |row: usize, time: i64| {
            let col = |i: usize| {
                batch
                    .columns()
                    .get(i)
                    .and_then(|c| str_at(c.as_ref(), row))
                    .map(str::to_string)
            };
            SideRow {
                time,
                event_id: col(self.idx_event_id).unwrap_or_else(|| "-".into()),
                text: text_of(row),
                principal: cell(batch, self.idx_principal, row),
                session: col(self.idx_session_id),
                target: col(self.idx_target),
                account: account_of(batch, self.idx_account, row),
            }
        };
        let mut joins = Joins::default();
        for (time, row) in marked {
            let Some(link) = columns.link(row) else {
                continue;
            };
            if columns.is_then(row) {
                let firsts: Vec<SideRow> = state
                    .recent(&link, time, spec.within_micros)
                    .into_iter()
                    .cloned()
                    .collect();
                if !firsts.is_empty() {
                    joins.add(&link, firsts, side_row(row, time));
                }
            }
            if columns.is_first(row) {
                state.remember(&link, side_row(row, time));
            }
        }
        if let Some(w) = watermark {
            state.expire(w, spec.within_micros);
        }
        Ok(joins.into_candidates(&rule.id, spec))
    }

    /// Learns the rows of a baseline rule in event-time order and turns each
    /// departure into an alert (through dedup). Rows reach the store as
    /// fingerprints (no allocation per row for string columns); the key's
    /// text is read from the row only when it alerts. The alert id is a hash
    /// of the rule id, the key and what is new.
    fn feed_baseline(
        &mut self,
        ri: usize,
        rule: &CompiledRule,
        batch: &RecordBatch,
        rows: &[usize],
        by_time: &mut TimeOrder,
    ) -> Result<Vec<Alert>, RuleError> {
        let Some(baseline) = rule.baseline() else {
            return Ok(Vec::new());
        };
        let columns = baseline.columns(batch).map_err(|e| rule.eval_error(e))?;
        let times = batch
            .column(self.idx_event_time)
            .as_primitive::<TimestampMicrosecondType>();
        let ordered = by_time.of(times, rows);
        let keyed: Vec<(i64, usize, u64)> = ordered
            .into_iter()
            .filter_map(|(time, row)| columns.key_fingerprint(row).map(|k| (time, row, k)))
            .collect();
        let mut alerts = Vec::new();
        let mut value = String::new();
        for (j, &(time, row, key)) in keyed.iter().enumerate() {
            // State lookups are cache misses on a large store: start those
            // of the rows ahead so that they overlap.
            if let Some(&(_, _, ahead)) = keyed.get(j + PREFETCH_SLOT_AHEAD) {
                self.baselines.prefetch_slot(ri, ahead);
            }
            if let Some(&(_, _, ahead)) = keyed.get(j + PREFETCH_PROFILE_AHEAD) {
                self.baselines.prefetch_profile(ri, ahead);
            }
            let has_value = columns.value_into(row, &mut value);
            let observed = crate::baseline::Row {
                key,
                value: has_value.then_some(value.as_str()),
                amount: columns.amount(row),
                time,
            };
            let Some(finding) = self.baselines.observe(ri, baseline, observed) else {
                continue;
            };
            let Some(key) = columns.key(row) else {
                continue;
            };
            *self.stats.matches.entry(rule.id.clone()).or_default() += 1;
            let dedup_key = rule.dedup_key(batch, row);
            match self
                .dedup
                .check(&rule.id, &dedup_key, time, rule.dedup_period_micros)
            {
                Verdict::Suppressed => {
                    self.stats.suppressed += 1;
                    continue;
                }
                Verdict::New { .. } => {}
            }
            let what = finding.id_part();
            let parts = std::iter::once(rule.id.as_str())
                .chain(key.iter().map(String::as_str))
                .chain(std::iter::once(what.as_str()));
            let mut evidence = crate::baseline::describe(baseline, &key.join(" / "), &finding);
            if rule.has_evidence_template() {
                evidence = format!("{}; {evidence}", rule.evidence(batch, row));
            }
            alerts.push(Alert {
                alert_id: stable_id(parts),
                rule_id: rule.id.clone(),
                title: rule.title.clone(),
                severity: rule.severity,
                principal: cell(batch, self.idx_principal, row),
                account_id: account_of(batch, self.idx_account, row),
                first_event_time: time,
                last_event_time: time,
                detected_at: now_micros(),
                event_ids: vec![cell(batch, self.idx_event_id, row)],
                event_count: 1,
                evidence,
                tags: rule.tags.clone(),
                access_key_id: optional_cell(batch, self.idx_access_key, row),
                session_id: optional_cell(batch, self.idx_session_id, row),
                closes: None,
            });
        }
        Ok(alerts)
    }

    /// Closes windows and absence waits up to `watermark` (`None`: all).
    fn close(&mut self, watermark: Option<i64>) -> Result<Vec<Candidate>, RuleError> {
        let mut out = Vec::new();
        for (ri, rule) in self.rules.rules().iter().enumerate() {
            if let (Some(w), Some(Some(state))) = (rule.window(), self.windows.get_mut(ri)) {
                out.extend(
                    state
                        .close(&rule.id, w, watermark)
                        .map_err(|e| rule.eval_error(e))?,
                );
            }
            if let (Some(s), Some(Some(state))) = (rule.sequence(), self.sequences.get_mut(ri)) {
                out.extend(state.advance(&rule.id, s, watermark));
            }
        }
        Ok(out)
    }

    /// Dedups candidates and turns the new ones into alerts.
    fn finish(&mut self, mut candidates: Vec<Candidate>) -> Vec<Alert> {
        candidates.sort_by(|a, b| {
            a.first_event_time
                .cmp(&b.first_event_time)
                .then(a.rule_id.cmp(&b.rule_id))
                .then(a.id_time.cmp(&b.id_time))
                .then(a.key.cmp(&b.key))
        });
        let mut alerts = Vec::new();
        for c in candidates {
            let Some(rule) = self.rules.rules().iter().find(|r| r.id == c.rule_id) else {
                continue;
            };
            *self.stats.matches.entry(c.rule_id.clone()).or_default() += 1;
            match self.dedup.check(
                &c.rule_id,
                &c.dedup_key,
                c.first_event_time,
                rule.dedup_period_micros,
            ) {
                Verdict::Suppressed => {
                    self.stats.suppressed += 1;
                    continue;
                }
                Verdict::New { .. } => {}
            }
            let id_time = c.id_time.to_string();
            let parts = std::iter::once(c.rule_id.as_str())
                .chain(c.key.iter().map(String::as_str))
                .chain(std::iter::once(id_time.as_str()));
            alerts.push(Alert {
                alert_id: stable_id(parts),
                rule_id: c.rule_id,
                title: rule.title.clone(),
                severity: rule.severity,
                principal: c.principal,
                account_id: c.account,
                first_event_time: c.first_event_time,
                last_event_time: c.last_event_time,
                detected_at: now_micros(),
                event_ids: c.event_ids,
                event_count: c.event_count,
                evidence: c.evidence,
                tags: rule.tags.clone(),
                access_key_id: None,
                session_id: None,
                closes: None,
            });
        }
        alerts
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
        Alert {
            alert_id: stable_id(parts),
            rule_id: rule.id.clone(),
            title: rule.title.clone(),
            severity: rule.severity,
            principal: cell(batch, self.idx_principal, row),
            account_id: account_of(batch, self.idx_account, row),
            first_event_time: event_time,
            last_event_time: event_time,
            detected_at: now_micros(),
            event_ids: vec![event_id],
            event_count: 1,
            evidence: rule.evidence(batch, row),
            tags: rule.tags.clone(),
            access_key_id: optional_cell(batch, self.idx_access_key, row),
            session_id: optional_cell(batch, self.idx_session_id, row),
            closes: None,
        }
    }
}

/// The engine's state as a checkpoint holds it: per rule (by id, with the
/// rule's fingerprint) its window, sequence or correlation state, the
/// baseline store's snapshot, the dedup windows and the newest event time.
#[derive(serde::Serialize)]
struct SavedRef<'a> {
    newest: Option<i64>,
    hold: Option<i64>,
    dedup: &'a Dedup,
    rules: Vec<SavedRuleRef<'a>>,
    baselines: BaselineSnapshot,
    grants: GrantSnapshot,
}

#[derive(serde::Serialize)]
struct SavedRuleRef<'a> {
    id: &'a str,
    fingerprint: &'a str,
    window: Option<&'a WindowState>,
    sequence: Option<&'a SequenceState>,
    correlate: Option<&'a CorrelateState>,
}

#[derive(serde::Deserialize)]
struct Saved {
    newest: Option<i64>,
    hold: Option<i64>,
    dedup: Dedup,
    rules: Vec<SavedRule>,
    baselines: BaselineSnapshot,
    grants: GrantSnapshot,
}

#[derive(serde::Deserialize)]
struct SavedRule {
    id: String,
    fingerprint: String,
    window: Option<WindowState>,
    sequence: Option<SequenceState>,
    correlate: Option<CorrelateState>,
}

/// What [`Engine::restore_state`] kept and dropped.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RestoreReport {
    /// Rules whose state was restored.
    pub restored: usize,
    /// Rules in the checkpoint that are gone or changed: their state was dropped.
    pub dropped: Vec<String>,
}

impl Engine {
    /// Encodes the engine's state (windows, sequences, baselines, dedup,
    /// the grant table, event-time progress) for a checkpoint.
    pub fn save_state(&self) -> Result<Vec<u8>, String> {
        let rules = self
            .rules
            .rules()
            .iter()
            .enumerate()
            .map(|(i, r)| SavedRuleRef {
                id: &r.id,
                fingerprint: &r.fingerprint,
                window: self.windows.get(i).and_then(Option::as_ref),
                sequence: self.sequences.get(i).and_then(Option::as_ref),
                correlate: self.correlations.get(i).and_then(Option::as_ref),
            })
            .collect();
        let ids: Vec<&str> = self.rules.rules().iter().map(|r| r.id.as_str()).collect();
        let saved = SavedRef {
            newest: self.newest,
            hold: self.hold,
            dedup: &self.dedup,
            rules,
            baselines: self.baselines.snapshot(&ids),
            grants: self.grants.snapshot(),
        };
        postcard::to_stdvec(&saved).map_err(|e| e.to_string())
    }

    /// Restores state saved by [`Engine::save_state`]. State of a rule that
    /// is gone or whose fingerprint changed is dropped (the rule starts
    /// empty); new rules start empty.
    pub fn restore_state(&mut self, bytes: &[u8]) -> Result<RestoreReport, String> {
        let saved: Saved = postcard::from_bytes(bytes).map_err(|e| e.to_string())?;
        let mut report = RestoreReport::default();
        let by_id: HashMap<&str, usize> = self
            .rules
            .rules()
            .iter()
            .enumerate()
            .map(|(i, r)| (r.id.as_str(), i))
            .collect();
        let mut kept = std::collections::HashSet::new();
        for r in saved.rules {
            let Some(&i) = by_id.get(r.id.as_str()) else {
                report.dropped.push(r.id);
                continue;
            };
            if self.rules.rules()[i].fingerprint != r.fingerprint {
                report.dropped.push(r.id);
                continue;
            }
            if let (Some(slot @ Some(_)), Some(w)) = (self.windows.get_mut(i), r.window) {
                *slot = Some(w);
            }
            if let (Some(slot @ Some(_)), Some(q)) = (self.sequences.get_mut(i), r.sequence) {
                *slot = Some(q);
            }
            if let (Some(slot @ Some(_)), Some(c)) = (self.correlations.get_mut(i), r.correlate) {
                *slot = Some(c);
            }
            kept.insert(r.id);
            report.restored += 1;
        }
        // Baseline state comes back only for rules kept above (the store
        // also checks its own fingerprint of the baseline block).
        let ids: Vec<&str> = self
            .rules
            .rules()
            .iter()
            .map(|r| {
                if kept.contains(&r.id) {
                    r.id.as_str()
                } else {
                    ""
                }
            })
            .collect();
        self.baselines.restore(saved.baselines, &ids);
        self.grants.restore(saved.grants);
        self.dedup = saved.dedup;
        self.dedup.retain_rules(|id| kept.contains(id));
        self.newest = saved.newest;
        self.hold = saved.hold;
        Ok(report)
    }
}

/// A grant table failure, as a rule error of the pseudo-rule `grants`.
fn grant_error(reason: String) -> RuleError {
    RuleError::Evaluate {
        id: "grants".into(),
        reason,
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

/// A cell's text, `None` when NULL or empty.
fn optional_cell(batch: &RecordBatch, column: usize, row: usize) -> Option<String> {
    match batch.columns().get(column) {
        Some(c) if !c.is_null(row) => {
            Some(trailhound_rules::template::cell_text(c.as_ref(), row)).filter(|s| !s.is_empty())
        }
        _ => None,
    }
}

fn account_of(batch: &RecordBatch, column: usize, row: usize) -> Option<String> {
    let account = cell(batch, column, row);
    (account != "-").then_some(account)
}

/// The key columns of a batch, each with its reading resolved once
/// ([`TextColumn`]); `None` when one is missing.
fn key_columns_of<'b>(
    batch: &'b RecordBatch,
    key_columns: &[usize],
) -> Option<Vec<TextColumn<'b>>> {
    key_columns
        .iter()
        .map(|&c| Some(TextColumn::of(batch.columns().get(c)?.as_ref())))
        .collect()
}

/// The values of the key columns of one row, borrowing string cells from
/// the batch instead of copying them, into `parts` (cleared first); `false`
/// when any is NULL (such rows join no group or sequence).
fn key_parts<'b>(columns: &[TextColumn<'b>], row: usize, parts: &mut Vec<Cow<'b, str>>) -> bool {
    parts.clear();
    for column in columns {
        if column.is_null(row) {
            return false;
        }
        parts.push(match column.get(row) {
            Some(s) => Cow::Borrowed(s),
            None => Cow::Owned(trailhound_rules::template::cell_text(column.array(), row)),
        });
    }
    true
}

/// A batch's rows in event-time order (ties by row), sorted the first
/// time a baseline asks and shared by the others: each used to sort its own
/// rows, a few hundred per batch, about 1.5 % of a run.
#[derive(Default)]
struct TimeOrder {
    rows: Option<Vec<usize>>,
    /// Scratch: which rows a rule keeps.
    kept: Vec<bool>,
}

impl TimeOrder {
    /// `(time, row)` of `rows` (ascending, each once) in event-time order,
    /// ties by row.
    fn of(&mut self, times: &TimestampMicrosecondArray, rows: &[usize]) -> Vec<(i64, usize)> {
        let n = times.len();
        let at = |r: usize| (times.value(r), r);
        // A few rows are sorted on their own rather than picked from the
        // whole batch's order.
        if rows.len() * 8 < n {
            let mut few: Vec<(i64, usize)> =
                rows.iter().filter(|&&r| r < n).map(|&r| at(r)).collect();
            few.sort_unstable();
            return few;
        }
        let order = self.rows.get_or_insert_with(|| {
            let mut all: Vec<usize> = (0..n).collect();
            all.sort_unstable_by_key(|&r| at(r));
            all
        });
        if rows.len() == n {
            return order.iter().map(|&r| at(r)).collect();
        }
        self.kept.clear();
        self.kept.resize(n, false);
        for &r in rows {
            if let Some(k) = self.kept.get_mut(r) {
                *k = true;
            }
        }
        order
            .iter()
            .filter(|&&r| self.kept.get(r).copied().unwrap_or(false))
            .map(|&r| at(r))
            .collect()
    }
}

#[cfg(test)]
mod time_order_tests {
    use super::*;

    #[test]
    fn rows_come_in_time_order_ties_by_row_whatever_the_share_kept() {
        // Times out of order with ties.
        let times =
            TimestampMicrosecondArray::from((0..64i64).map(|i| (i * 37) % 11).collect::<Vec<_>>());
        let mut order = TimeOrder::default();
        for keep in [1, 2, 3, 7, 64] {
            let rows: Vec<usize> = (0..64).filter(|r| r % keep == 0).collect();
            let mut expected: Vec<(i64, usize)> =
                rows.iter().map(|&r| (times.value(r), r)).collect();
            expected.sort_unstable();
            assert_eq!(order.of(&times, &rows), expected, "every {keep}th row");
        }
    }
}

/// Helpers for the window and sequence unit tests.
#[cfg(test)]
pub(crate) mod test_support {
    use trailhound_core::time::parse_rfc3339_micros;
    use trailhound_core::{Alert, Event, events_to_batch};
    use trailhound_rules::{Compiler, RuleSet, RuleSpec};

    use super::Engine;

    pub const MIN: i64 = 60_000_000;

    /// 2026-11-02T10:00:00Z plus `minutes`.
    pub fn at(minutes: f64) -> i64 {
        parse_rfc3339_micros("2026-11-02T10:00:00Z").unwrap_or_default()
            + (minutes * MIN as f64) as i64
    }

    pub fn rules(yaml: &str) -> RuleSet {
        let spec: RuleSpec = serde_yaml::from_str(yaml).unwrap();
        let rule = Compiler::new().unwrap().compile(spec, None).unwrap();
        RuleSet::from_rules(vec![rule])
    }

    pub fn ev(minutes: f64, id: &str, name: &str, principal: &str) -> Event {
        Event {
            event_time: at(minutes),
            event_id: id.into(),
            event_source: "s3.amazonaws.com".into(),
            event_name: name.into(),
            principal: principal.into(),
            principal_type: "IAMUser".into(),
            account_id: Some("111122223333".into()),
            source_ip: Some("203.0.113.7".into()),
            ..Default::default()
        }
    }

    pub fn process(engine: &mut Engine, events: &[Event]) -> Vec<Alert> {
        engine.process(&events_to_batch(events)).unwrap()
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::{ev, process, rules};
    use super::*;
    use trailhound_rules::rule::SuppressSpec;

    const PLAIN: &str = "id: r\ntitle: R\nseverity: high\nwhere: \"event_name = 'GetObject'\"\n";

    fn global(principals: &[&str], networks: &[&str]) -> Suppress {
        Suppress::from_spec(&SuppressSpec {
            principals: principals.iter().map(|s| s.to_string()).collect(),
            accounts: Vec::new(),
            source_networks: networks.iter().map(|s| s.to_string()).collect(),
        })
        .unwrap()
    }

    #[test]
    fn the_global_suppress_list_applies_with_wildcards_and_networks() {
        let breakglass = "arn:aws:iam::111122223333:role/BreakGlassAdmin";
        let mut e = Engine::new(rules(PLAIN))
            .with_suppress(global(&["arn:aws:iam::*:role/BreakGlass*"], &[]));
        assert!(process(&mut e, &[ev(1.0, "a", "GetObject", breakglass)]).is_empty());
        assert_eq!(
            process(&mut e, &[ev(1.0, "b", "GetObject", "other")]).len(),
            1
        );
        assert_eq!(e.stats().suppressed_by_list, 1);

        let mut e = Engine::new(rules(PLAIN)).with_suppress(global(&[], &["203.0.113.0/24"]));
        assert!(process(&mut e, &[ev(1.0, "a", "GetObject", "p")]).is_empty());
        let mut e = Engine::new(rules(PLAIN)).with_suppress(global(&[], &["2001:db8::/32"]));
        assert_eq!(process(&mut e, &[ev(1.0, "a", "GetObject", "p")]).len(), 1);
    }

    #[test]
    fn each_rules_where_time_is_counted_under_its_id() {
        let mut e = Engine::new(rules(PLAIN));
        assert_eq!(e.where_seconds().count(), 0);
        process(&mut e, &[ev(1.0, "a", "GetObject", "p")]);
        let first: Vec<(String, f64)> = e
            .where_seconds()
            .map(|(id, s)| (id.to_string(), s))
            .collect();
        assert_eq!(first.len(), 1);
        assert_eq!(first[0].0, e.rules().rules()[0].id);
        assert!(first[0].1 > 0.0);
        process(&mut e, &[ev(2.0, "b", "GetObject", "p")]);
        let second: Vec<f64> = e.where_seconds().map(|(_, s)| s).collect();
        assert!(second[0] > first[0].1, "the time only grows");
    }

    #[test]
    fn a_rules_own_suppress_list_applies_to_it() {
        let yaml = format!("{PLAIN}suppress:\n  accounts: [\"111122223333\"]\n");
        let mut e = Engine::new(rules(&yaml));
        assert!(process(&mut e, &[ev(1.0, "a", "GetObject", "p")]).is_empty());
        let yaml = format!("{PLAIN}suppress:\n  source_networks: [\"10.0.0.0/8\"]\n");
        let mut e = Engine::new(rules(&yaml));
        assert_eq!(process(&mut e, &[ev(1.0, "a", "GetObject", "p")]).len(), 1);
    }
}
