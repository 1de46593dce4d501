//! Backtesting: the rules run over the audit lake's `events` table, through
//! the same [`Engine`] the live pipeline uses, and the report says what
//! would have fired.
//!
//! The events of a time range are read hour partition by hour partition
//! (`date=`/`hour=` folders, so only the hours in the range are read), each
//! hour sorted by event time (then event id, so ties replay the same way
//! every time) with DataFusion, cut into batches of the live batch size and
//! handed to [`Engine::process`] in event-time order; [`Engine::flush`]
//! closes windows and sequences at the end. Since a partition holds exactly
//! the rows of its hour, the replay is in event-time order over the whole
//! range with one hour in memory at a time.
//!
//! The engine starts empty: baselines learn from the range itself, and
//! dedup, windows and sequences see only its events.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::PathBuf;

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use arrow::compute::{cast, concat_batches};
use arrow::datatypes::{DataType, TimestampMicrosecondType};
use serde::Serialize;
use trailhound_core::schema::columns;
use trailhound_core::time::format_micros;
use trailhound_core::{Alert, Severity, event_schema};
use trailhound_rules::rule::ResponseName;
use trailhound_rules::{RuleSet, Suppress};
use trailhound_sinks::lake::sql::{LakeQuery, QueryError};
use trailhound_sinks::lake::{Table, partitions};

use crate::engine::{DEFAULT_LATENESS_MICROS, Engine};

/// What a backtest reads and how it replays it.
#[derive(Debug, Clone)]
pub struct BacktestOptions {
    /// The lake's root folder.
    pub lake: PathBuf,
    /// Start of the range, microseconds UTC (included).
    pub from: i64,
    /// End of the range, microseconds UTC (excluded).
    pub to: i64,
    /// Rows per batch handed to the engine (the live default is 1,024).
    pub batch_rows: usize,
    /// Sample alerts kept per rule for the report.
    pub samples: usize,
    /// Allowed lateness for windows and sequences (as `detect --lateness`).
    pub lateness_micros: i64,
    /// The global suppress list (as `detect --suppress`).
    pub suppress: Suppress,
}

impl BacktestOptions {
    /// A backtest of `[from, to)` over the lake at `lake` with the live defaults.
    pub fn new(lake: impl Into<PathBuf>, from: i64, to: i64) -> Self {
        Self {
            lake: lake.into(),
            from,
            to,
            batch_rows: 1024,
            samples: 3,
            lateness_micros: DEFAULT_LATENESS_MICROS,
            suppress: Suppress::default(),
        }
    }
}

/// Why a backtest could not run.
#[derive(Debug, thiserror::Error)]
pub enum BacktestError {
    /// The range is empty or backwards.
    #[error("the range is empty: --from {from} is not before --to {to}")]
    EmptyRange {
        /// The start, as given.
        from: String,
        /// The end, as given.
        to: String,
    },
    /// The lake's folders could not be listed.
    #[error("cannot list the lake's partitions in {path}: {source}")]
    List {
        /// The table's folder.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// Reading the lake failed (an unreadable file, a query error).
    #[error("cannot read the lake's events (partition {partition}): {source}")]
    Lake {
        /// `date=…/hour=…`, or `-` when opening the lake.
        partition: String,
        /// The cause.
        source: QueryError,
    },
    /// A batch read from the lake does not fit the event schema.
    #[error("the lake's events (partition {partition}) do not fit the event schema: {reason}")]
    Schema {
        /// `date=…/hour=…`.
        partition: String,
        /// What did not fit.
        reason: String,
    },
}

/// What one response of a rule would have done over the range.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ResponseReport {
    /// The response (`quarantine-principal`, `revoke-sessions`, ...).
    pub response: ResponseName,
    /// Alerts on which it would have been taken.
    pub would_take: u64,
    /// Alerts on which it would not: root and AWS service principals are
    /// alerted, never acted on (the design's guardrail). Always 0 for `notify`.
    pub never_acted_on: u64,
}

/// One rule that fired during the range.
#[derive(Debug, Clone, Serialize)]
pub struct RuleReport {
    /// The rule's id.
    pub rule_id: String,
    /// Its title.
    pub title: String,
    /// Its severity.
    pub severity: Severity,
    /// Alerts it would have raised (after dedup).
    pub alerts: u64,
    /// Its matches before dedup (windows and sequences: the ones that fired).
    pub matches: u64,
    /// Its alerts in the lake's `alerts` table for the range (what the live
    /// runs that wrote the lake raised).
    pub live: u64,
    /// Alerts the backtest raised that the lake does not hold (by alert id).
    pub new: u64,
    /// Alerts the lake holds that the backtest did not raise.
    pub gone: u64,
    /// The responses its `respond:` names, with what they would have done.
    pub responses: Vec<ResponseReport>,
    /// The first alerts it raised, at most [`BacktestOptions::samples`].
    pub samples: Vec<Alert>,
}

/// What a backtest found.
#[derive(Debug, Clone, Serialize)]
pub struct BacktestReport {
    /// Start of the range (RFC 3339).
    pub from: String,
    /// End of the range (RFC 3339, excluded).
    pub to: String,
    /// Hour partitions read.
    pub partitions: usize,
    /// Events replayed.
    pub events: u64,
    /// Batches handed to the engine.
    pub batches: u64,
    /// Rules that ran.
    pub rules_run: usize,
    /// Alerts in all.
    pub alerts: u64,
    /// Batches on which a rule failed (their alerts are missing, as live).
    pub rule_errors: u64,
    /// Rows left out of windows as late (0 in an event-time-ordered replay
    /// unless the lateness is shorter than a window's slide allows).
    pub late_rows: u64,
    /// Alerts in the lake's `alerts` table for the range, of the rules that ran.
    pub lake_alerts: u64,
    /// Backtest alerts the lake does not hold.
    pub new_alerts: u64,
    /// Lake alerts the backtest did not raise.
    pub gone_alerts: u64,
    /// Alerts in the lake for the range from rules that did not run.
    pub lake_alerts_other_rules: u64,
    /// The rules that fired, in the backtest or in the lake, most alerts first.
    pub rules: Vec<RuleReport>,
}

/// Whether a principal is one that responses never act on: the root user and
/// AWS services (the design: "Root and AWS service principals are alerted,
/// never acted on").
pub fn never_acted_on(principal: &str) -> bool {
    principal.ends_with(":root") || principal.ends_with(".amazonaws.com")
}

/// Parses a time for `--from`/`--to`: RFC 3339 (`2026-11-02T10:00:00Z`), or
/// in UTC `2026-11-02`, `2026-11-02T10`, `2026-11-02T10:30`,
/// `2026-11-02T10:30:00` (a space works for the `T`).
pub fn parse_time(text: &str) -> Option<i64> {
    let text = text.trim();
    if let Some(t) = trailhound_core::time::parse_rfc3339_micros(text) {
        return Some(t);
    }
    if let Ok(day) = chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return day
            .and_hms_opt(0, 0, 0)
            .map(|t| t.and_utc().timestamp_micros());
    }
    let text = text.replacen(' ', "T", 1);
    for format in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%dT%H:%M"] {
        if let Ok(t) = chrono::NaiveDateTime::parse_from_str(&text, format) {
            return Some(t.and_utc().timestamp_micros());
        }
    }
    let (day, hour) = text.split_once('T')?;
    let hour: u32 = hour.parse().ok().filter(|_| hour.len() == 2)?;
    let day = chrono::NaiveDate::parse_from_str(day, "%Y-%m-%d").ok()?;
    day.and_hms_opt(hour, 0, 0)
        .map(|t| t.and_utc().timestamp_micros())
}

const HOUR_MICROS: i64 = 3_600_000_000;

/// Replays the lake's events of the range through `rules` and reports what
/// would have fired. Every alert also goes to `on_alert`, in the order the
/// engine raised it.
pub fn run(
    rules: RuleSet,
    options: &BacktestOptions,
    on_alert: &mut dyn FnMut(&Alert),
) -> Result<BacktestReport, BacktestError> {
    let mut engine = Engine::new(rules)
        .with_suppress(options.suppress.clone())
        .with_lateness(options.lateness_micros);
    replay(&mut engine, options, true, on_alert)
}

/// [`run`] on an engine the caller made (one restored from a checkpoint,
/// or one that only learns, as `trailhound baseline build --lake` does).
/// `flush` closes windows and sequences at the end of the range; without
/// it their state stays in the engine for whatever comes next.
pub fn replay(
    engine: &mut Engine,
    options: &BacktestOptions,
    flush: bool,
    on_alert: &mut dyn FnMut(&Alert),
) -> Result<BacktestReport, BacktestError> {
    if options.from >= options.to {
        return Err(BacktestError::EmptyRange {
            from: format_micros(options.from),
            to: format_micros(options.to),
        });
    }
    let mut tally = Tally::new(engine, options.samples);
    let hours: Vec<_> = partitions(&options.lake, Table::Events)
        .map_err(|source| BacktestError::List {
            path: options.lake.join(Table::Events.folder()),
            source,
        })?
        .into_iter()
        .filter(|p| p.start_micros + HOUR_MICROS > options.from && p.start_micros < options.to)
        .collect();
    let lake = LakeQuery::open(&options.lake).map_err(|source| BacktestError::Lake {
        partition: "-".into(),
        source,
    })?;
    let schema = event_schema();
    let select = schema
        .fields()
        .iter()
        .map(|f| format!("\"{}\"", f.name()))
        .collect::<Vec<_>>()
        .join(", ");
    let batch_rows = options.batch_rows.max(1);
    let mut since_expiry = 0u64;
    for p in &hours {
        let name = format!("date={}/hour={}", p.date, p.hour);
        // The values come from folder names parsed as a date and an hour.
        let sql = format!(
            "SELECT {select} FROM events WHERE date = '{}' AND hour = '{}' ORDER BY \"{}\", \"{}\"",
            p.date,
            p.hour,
            columns::EVENT_TIME,
            columns::EVENT_ID
        );
        let (_, batches) = lake.query(&sql).map_err(|source| BacktestError::Lake {
            partition: name.clone(),
            source,
        })?;
        let hour = in_range(&batches, options, &name)?;
        let Some(hour) = hour else { continue };
        let mut offset = 0;
        while offset < hour.num_rows() {
            let len = batch_rows.min(hour.num_rows() - offset);
            let batch = normalise(&hour.slice(offset, len), &name)?;
            offset += len;
            tally.events += batch.num_rows() as u64;
            tally.batches += 1;
            match engine.process(&batch) {
                Ok(alerts) => tally.add(&alerts, on_alert),
                Err(e) => {
                    tracing::error!(error = %e, partition = %name, "Rule evaluation failed on a batch.");
                    tally.rule_errors += 1;
                }
            }
            since_expiry += 1;
            if since_expiry >= 256 {
                // As the live pipeline does: a day past any dedup period.
                engine.expire(2 * 86_400_000_000);
                since_expiry = 0;
            }
        }
    }
    if flush {
        match engine.flush() {
            Ok(alerts) => tally.add(&alerts, on_alert),
            Err(e) => {
                tracing::error!(error = %e, "Closing windows at the end of the range failed.");
                tally.rule_errors += 1;
            }
        }
    }
    let live = lake_alerts(&lake, options)?;
    Ok(tally.report(engine, options, hours.len(), live))
}

/// The alert ids per rule in the lake's `alerts` table whose first event
/// time is in the range (read from the `date` partitions it spans).
fn lake_alerts(
    lake: &LakeQuery,
    options: &BacktestOptions,
) -> Result<BTreeMap<String, BTreeSet<String>>, BacktestError> {
    let day = |t: i64| {
        chrono::DateTime::from_timestamp_micros(t).map(|d| d.format("%Y-%m-%d").to_string())
    };
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let (Some(first), Some(last)) = (day(options.from), day(options.to.saturating_sub(1))) else {
        return Ok(out);
    };
    let sql = format!(
        "SELECT alert_id, rule_id, CAST(first_event_time AS BIGINT) AS t FROM alerts \
         WHERE date >= '{first}' AND date <= '{last}'"
    );
    let lake_error = |source| BacktestError::Lake {
        partition: "table=alerts".into(),
        source,
    };
    let schema_error = |reason: String| BacktestError::Schema {
        partition: "table=alerts".into(),
        reason,
    };
    let (_, batches) = lake.query(&sql).map_err(lake_error)?;
    for batch in &batches {
        let text = |i: usize| {
            cast(batch.column(i), &DataType::Utf8).map_err(|e| schema_error(e.to_string()))
        };
        let (ids, rules) = (text(0)?, text(1)?);
        let times =
            cast(batch.column(2), &DataType::Int64).map_err(|e| schema_error(e.to_string()))?;
        let (ids, rules) = (ids.as_string::<i32>(), rules.as_string::<i32>());
        let times = times.as_primitive::<arrow::datatypes::Int64Type>();
        for row in 0..batch.num_rows() {
            let t = times.value(row);
            if ids.is_null(row) || rules.is_null(row) || t < options.from || t >= options.to {
                continue;
            }
            out.entry(rules.value(row).to_string())
                .or_default()
                .insert(ids.value(row).to_string());
        }
    }
    Ok(out)
}

/// The rows of an hour's sorted batches inside `[from, to)`, as one batch.
fn in_range(
    batches: &[RecordBatch],
    options: &BacktestOptions,
    partition: &str,
) -> Result<Option<RecordBatch>, BacktestError> {
    let Some(first) = batches.first() else {
        return Ok(None);
    };
    let schema_error = |reason: String| BacktestError::Schema {
        partition: partition.to_string(),
        reason,
    };
    let all = concat_batches(&first.schema(), batches).map_err(|e| schema_error(e.to_string()))?;
    let times = all
        .column_by_name(columns::EVENT_TIME)
        .and_then(|c| c.as_primitive_opt::<TimestampMicrosecondType>())
        .ok_or_else(|| schema_error("no microsecond event_time column".into()))?;
    // Sorted by event time: the range is one slice.
    let values = times.values();
    let start = values.partition_point(|&t| t < options.from);
    let end = values.partition_point(|&t| t < options.to);
    Ok((end > start).then(|| all.slice(start, end - start)))
}

/// A batch exactly of the event schema, with fresh compact dictionaries (as
/// the live batcher builds them): the engine indexes a batch's dictionary of
/// event names, which a slice of a bigger read would share whole.
pub(crate) fn normalise(
    batch: &RecordBatch,
    partition: &str,
) -> Result<RecordBatch, BacktestError> {
    let schema = event_schema();
    let schema_error = |reason: String| BacktestError::Schema {
        partition: partition.to_string(),
        reason,
    };
    let mut out: Vec<ArrayRef> = Vec::with_capacity(schema.fields().len());
    for field in schema.fields() {
        let column = batch
            .column_by_name(field.name())
            .ok_or_else(|| schema_error(format!("no column {}", field.name())))?;
        let column = match field.data_type() {
            DataType::Dictionary(_, value) => {
                let plain = cast(column, value).map_err(|e| schema_error(e.to_string()))?;
                cast(&plain, field.data_type()).map_err(|e| schema_error(e.to_string()))?
            }
            t if t != column.data_type() => {
                cast(column, t).map_err(|e| schema_error(e.to_string()))?
            }
            _ => std::sync::Arc::clone(column),
        };
        out.push(column);
    }
    RecordBatch::try_new(schema, out).map_err(|e| schema_error(e.to_string()))
}

/// One rule's alerts, samples and, per entry of its `respond:` list, the
/// alerts it would act on and those it never acts on.
#[derive(Default)]
struct RuleTally {
    alerts: u64,
    ids: BTreeSet<String>,
    samples: Vec<Alert>,
    responses: BTreeMap<usize, (u64, u64)>,
}

/// Counts and samples per rule while the replay runs.
struct Tally {
    samples: usize,
    events: u64,
    batches: u64,
    rule_errors: u64,
    per_rule: BTreeMap<String, RuleTally>,
    respond: BTreeMap<String, Vec<ResponseName>>,
}

impl Tally {
    fn new(engine: &Engine, samples: usize) -> Self {
        let respond = engine
            .rules()
            .rules()
            .iter()
            .map(|r| (r.id.clone(), r.respond.clone()))
            .collect();
        Self {
            samples,
            events: 0,
            batches: 0,
            rule_errors: 0,
            per_rule: BTreeMap::new(),
            respond,
        }
    }

    fn add(&mut self, alerts: &[Alert], on_alert: &mut dyn FnMut(&Alert)) {
        for alert in alerts {
            on_alert(alert);
            let tally = self.per_rule.entry(alert.rule_id.clone()).or_default();
            tally.alerts += 1;
            tally.ids.insert(alert.alert_id.clone());
            if tally.samples.len() < self.samples {
                tally.samples.push(alert.clone());
            }
            let protected = never_acted_on(&alert.principal);
            for (i, r) in self
                .respond
                .get(&alert.rule_id)
                .into_iter()
                .flatten()
                .enumerate()
            {
                let counts = tally.responses.entry(i).or_default();
                if protected && *r != ResponseName::Notify {
                    counts.1 += 1;
                } else {
                    counts.0 += 1;
                }
            }
        }
    }

    fn report(
        mut self,
        engine: &Engine,
        options: &BacktestOptions,
        partitions: usize,
        mut live: BTreeMap<String, BTreeSet<String>>,
    ) -> BacktestReport {
        let stats = engine.stats();
        let mut rules: Vec<RuleReport> = Vec::new();
        let mut total = 0;
        let (mut lake_total, mut new_total, mut gone_total) = (0, 0, 0);
        // Rules that fired only live get an entry too (with 0 alerts).
        for id in live.keys() {
            if engine.rules().rules().iter().any(|r| &r.id == id) {
                self.per_rule.entry(id.clone()).or_default();
            }
        }
        for (id, tally) in self.per_rule {
            let RuleTally {
                alerts,
                ids,
                samples,
                responses,
            } = tally;
            total += alerts;
            let Some(rule) = engine.rules().rules().iter().find(|r| r.id == id) else {
                continue;
            };
            let in_lake = live.remove(&id).unwrap_or_default();
            let new = ids.difference(&in_lake).count() as u64;
            let gone = in_lake.difference(&ids).count() as u64;
            lake_total += in_lake.len() as u64;
            new_total += new;
            gone_total += gone;
            let responses = rule
                .respond
                .iter()
                .enumerate()
                .map(|(i, r)| {
                    let (would_take, never) = responses.get(&i).copied().unwrap_or_default();
                    ResponseReport {
                        response: *r,
                        would_take,
                        never_acted_on: never,
                    }
                })
                .collect();
            rules.push(RuleReport {
                rule_id: id.clone(),
                title: rule.title.clone(),
                severity: rule.severity,
                alerts,
                matches: stats.matches.get(&id).copied().unwrap_or_default(),
                live: in_lake.len() as u64,
                new,
                gone,
                responses,
                samples,
            });
        }
        rules.sort_by(|a, b| {
            b.alerts
                .cmp(&a.alerts)
                .then(b.live.cmp(&a.live))
                .then(a.rule_id.cmp(&b.rule_id))
        });
        BacktestReport {
            from: format_micros(options.from),
            to: format_micros(options.to),
            partitions,
            events: self.events,
            batches: self.batches,
            rules_run: engine.rules().rules().len(),
            alerts: total,
            rule_errors: self.rule_errors,
            late_rows: engine.late_dropped(),
            lake_alerts: lake_total,
            new_alerts: new_total,
            gone_alerts: gone_total,
            lake_alerts_other_rules: live.values().map(|ids| ids.len() as u64).sum(),
            rules,
        }
    }
}

fn response_name(r: ResponseName) -> &'static str {
    match r {
        ResponseName::QuarantinePrincipal => "quarantine-principal",
        ResponseName::RevokeSessions => "revoke-sessions",
        ResponseName::DisableAccessKey => "disable-access-key",
        ResponseName::EndGatewaySession => "end-gateway-session",
        ResponseName::Notify => "notify",
    }
}

impl BacktestReport {
    /// The report as text: a line per rule that fired (alerts, matches,
    /// severity, responses), then each rule's sample alerts.
    pub fn write_table(&self, out: &mut dyn Write) -> std::io::Result<()> {
        writeln!(
            out,
            "backtest {} .. {}: {} events in {} hour partition(s), {} batches, {} rules",
            self.from, self.to, self.events, self.partitions, self.batches, self.rules_run
        )?;
        writeln!(
            out,
            "{} alert(s) from {} rule(s); {} rule error(s); {} late row(s)",
            self.alerts,
            self.rules.iter().filter(|r| r.alerts > 0).count(),
            self.rule_errors,
            self.late_rows
        )?;
        writeln!(
            out,
            "against the lake's alerts: {} there, {} new, {} gone{}",
            self.lake_alerts,
            self.new_alerts,
            self.gone_alerts,
            if self.lake_alerts_other_rules > 0 {
                format!(
                    " ({} more from rules that did not run)",
                    self.lake_alerts_other_rules
                )
            } else {
                String::new()
            }
        )?;
        if self.rules.is_empty() {
            return Ok(());
        }
        let width = self
            .rules
            .iter()
            .map(|r| r.rule_id.len())
            .max()
            .unwrap_or(4)
            .max(4);
        writeln!(out)?;
        writeln!(
            out,
            "{:<width$}  {:>6}  {:>7}  {:>5}  {:>4}  {:>4}  {:<13}  responses (would take / never on root or AWS services)",
            "rule", "alerts", "matches", "live", "new", "gone", "severity"
        )?;
        for r in &self.rules {
            let responses = if r.responses.is_empty() {
                "-".to_string()
            } else {
                r.responses
                    .iter()
                    .map(|x| {
                        if x.never_acted_on > 0 {
                            format!(
                                "{} {} / {}",
                                response_name(x.response),
                                x.would_take,
                                x.never_acted_on
                            )
                        } else {
                            format!("{} {}", response_name(x.response), x.would_take)
                        }
                    })
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            writeln!(
                out,
                "{:<width$}  {:>6}  {:>7}  {:>5}  {:>4}  {:>4}  {:<13}  {responses}",
                r.rule_id,
                r.alerts,
                r.matches,
                r.live,
                r.new,
                r.gone,
                r.severity.as_str()
            )?;
        }
        for r in self.rules.iter().filter(|r| r.alerts > 0) {
            writeln!(out)?;
            writeln!(out, "{} ({}): {}", r.rule_id, r.severity, r.title)?;
            for a in &r.samples {
                writeln!(
                    out,
                    "  {}  {}  {}  {}",
                    a.alert_id,
                    format_micros(a.first_event_time),
                    a.principal,
                    a.evidence
                )?;
            }
            if r.alerts > r.samples.len() as u64 {
                writeln!(out, "  ... {} more", r.alerts - r.samples.len() as u64)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use trailhound_core::{Event, events_to_batch};
    use trailhound_sinks::lake::{LakeConfig, LakeWriter};

    const MIN: i64 = 60_000_000;

    fn at(minutes: i64) -> i64 {
        parse_time("2026-11-02T10:00:00Z").unwrap_or_default() + minutes * MIN
    }

    fn ev(minutes: i64, id: &str, principal: &str) -> Event {
        Event {
            event_time: at(minutes),
            event_id: id.into(),
            event_source: "cloudtrail.amazonaws.com".into(),
            event_name: "StopLogging".into(),
            principal: principal.into(),
            principal_type: "IAMUser".into(),
            account_id: Some("111122223333".into()),
            ..Default::default()
        }
    }

    fn rules() -> RuleSet {
        let yaml = "id: stop\ntitle: Stop\nseverity: high\n\
                    where: \"event_name = 'StopLogging'\"\n\
                    dedup: {key: [principal], period: 1h}\n\
                    respond: [quarantine-principal, notify]\n";
        let spec: trailhound_rules::RuleSpec = serde_yaml::from_str(yaml).unwrap();
        let rule = trailhound_rules::Compiler::new()
            .unwrap()
            .compile(spec, None)
            .unwrap();
        RuleSet::from_rules(vec![rule])
    }

    #[test]
    fn times_parse_in_every_documented_shape() {
        let t = at(0);
        assert_eq!(parse_time("2026-11-02T10:00:00Z"), Some(t));
        assert_eq!(parse_time("2026-11-02T11:00:00+01:00"), Some(t));
        assert_eq!(parse_time("2026-11-02T10"), Some(t));
        assert_eq!(parse_time("2026-11-02 10:00"), Some(t));
        assert_eq!(parse_time("2026-11-02T10:00:00"), Some(t));
        assert_eq!(parse_time("2026-11-02"), Some(t - 600 * MIN));
        assert_eq!(parse_time("soon"), None);
        assert_eq!(parse_time("2026-11-02T1"), None);
    }

    #[test]
    fn the_replay_is_in_event_time_order_whatever_the_order_written() {
        let dir = tempfile::tempdir().unwrap();
        let mut lake = LakeWriter::open(LakeConfig::new(dir.path())).unwrap();
        let root = "arn:aws:iam::111122223333:root";
        // Written newest first, across two hours and two files: the first
        // match of the dedup period is the one at minute 5.
        lake.write_events(&events_to_batch(&[
            ev(70, "c", "alice"),
            ev(30, "b", "alice"),
        ]))
        .unwrap();
        lake.close().unwrap();
        lake.write_events(&events_to_batch(&[ev(5, "a", "alice"), ev(6, "r", root)]))
            .unwrap();
        lake.close().unwrap();

        let options = BacktestOptions::new(dir.path(), at(-60), at(120));
        let mut seen = Vec::new();
        let report = run(rules(), &options, &mut |a| seen.push(a.clone())).unwrap();
        assert_eq!(report.partitions, 2);
        assert_eq!(report.events, 4);
        // The lake has no alerts: all of them are new.
        assert_eq!(
            (report.lake_alerts, report.new_alerts, report.gone_alerts),
            (0, 3, 0)
        );
        // alice: minutes 5 and 30 are one alert, 70 opens the next period; root: one.
        assert_eq!(report.alerts, 3);
        let alice: Vec<i64> = seen
            .iter()
            .filter(|a| a.principal == "alice")
            .map(|a| a.first_event_time)
            .collect();
        assert_eq!(alice, vec![at(5), at(70)]);
        let r = &report.rules[0];
        assert_eq!((r.alerts, r.matches), (3, 4));
        assert_eq!(r.samples.len(), 3);
        let quarantine = &r.responses[0];
        assert_eq!(quarantine.response, ResponseName::QuarantinePrincipal);
        assert_eq!((quarantine.would_take, quarantine.never_acted_on), (2, 1));
        assert_eq!(
            (r.responses[1].would_take, r.responses[1].never_acted_on),
            (3, 0)
        );

        // Compared with the lake's alerts: one of them there, one the rules
        // no longer raise, one from a rule that did not run.
        let mut ghost = seen[0].clone();
        ghost.alert_id = "ghost".into();
        let mut other = seen[0].clone();
        other.alert_id = "other".into();
        other.rule_id = "not-running".into();
        lake.write_alerts(&[seen[0].clone(), ghost, other]).unwrap();
        lake.close().unwrap();
        let report = run(rules(), &options, &mut |_| {}).unwrap();
        assert_eq!(
            (report.lake_alerts, report.new_alerts, report.gone_alerts),
            (2, 2, 1)
        );
        assert_eq!(report.lake_alerts_other_rules, 1);
        let r = &report.rules[0];
        assert_eq!((r.alerts, r.live, r.new, r.gone), (3, 2, 2, 1));

        // The range prunes: only the first hour, and within it from minute 6.
        let options = BacktestOptions::new(dir.path(), at(6), at(60));
        let report = run(rules(), &options, &mut |_| {}).unwrap();
        assert_eq!((report.partitions, report.events, report.alerts), (1, 2, 2));

        let mut text = Vec::new();
        report.write_table(&mut text).unwrap();
        let text = String::from_utf8(text).unwrap();
        assert!(
            text.contains("quarantine-principal 1 / 1, notify 2"),
            "{text}"
        );
    }

    #[test]
    fn an_empty_range_or_lake_is_handled() {
        let dir = tempfile::tempdir().unwrap();
        let options = BacktestOptions::new(dir.path(), at(10), at(10));
        assert!(matches!(
            run(rules(), &options, &mut |_| {}),
            Err(BacktestError::EmptyRange { .. })
        ));
        let options = BacktestOptions::new(dir.path(), at(0), at(10));
        let report = run(rules(), &options, &mut |_| {}).unwrap();
        assert_eq!((report.events, report.alerts, report.partitions), (0, 0, 0));
    }
}
