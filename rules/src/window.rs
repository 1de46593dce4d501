//! Window rules: the `window:` block checked and compiled.
//!
//! `having` is SQL over aggregates. It is parsed once with sqlparser, every
//! aggregate call (`count(*)`, `count(col)`, `count(DISTINCT col)`, `sum`,
//! `min`, `max`, `avg` of numeric columns) is replaced by a synthetic column
//! `__agg_N`, and the rewritten expression goes through the same DataFusion
//! planning as `where`, against a small schema of those columns (Int64 for
//! counts, Float64 for the rest). The detector keeps the aggregates per group
//! and window and evaluates the compiled `having` on a batch of closed windows.

use std::ops::ControlFlow;
use std::sync::Arc;

use arrow::array::{BooleanArray, RecordBatch};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::common::DFSchema;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::prelude::SessionContext;
use datafusion::sql::sqlparser::ast::{
    DuplicateTreatment, Expr, FunctionArg, FunctionArgExpr, FunctionArguments, Ident,
    visit_expressions, visit_expressions_mut,
};
use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::parser::Parser;
use trailhound_core::rule_schema;

use crate::compile::{eval_bool, plan_expr};
use crate::rule::{WindowSpec, parse_period_micros};

/// Most distinct values one `count(DISTINCT ...)` set keeps per window; past
/// it the count is a lower bound and the evidence says so.
pub const DISTINCT_CAP: usize = 10_000;

/// What an aggregate computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AggKind {
    /// `count(*)`: rows.
    CountStar,
    /// `count(col)`: rows where the column is not NULL.
    Count,
    /// `count(DISTINCT col)`: distinct non-NULL values (capped).
    CountDistinct,
    /// `sum(col)` of a numeric column.
    Sum,
    /// `min(col)` of a numeric column.
    Min,
    /// `max(col)` of a numeric column.
    Max,
    /// `avg(col)` of a numeric column.
    Avg,
}

impl AggKind {
    /// True for the three counts (Int64 results).
    pub fn is_count(self) -> bool {
        matches!(self, Self::CountStar | Self::Count | Self::CountDistinct)
    }
}

/// One aggregate of a window rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Aggregate {
    /// What it computes.
    pub kind: AggKind,
    /// The event-schema column index (`None` for `count(*)`).
    pub column: Option<usize>,
    /// How it reads in evidence: `count(DISTINCT object_key)`.
    pub label: String,
}

/// A compiled `window:` block.
#[derive(Debug, Clone)]
pub struct CompiledWindow {
    /// Event-schema indices of the group columns.
    pub group_by: Vec<usize>,
    /// Window length, microseconds.
    pub size_micros: i64,
    /// Step between window starts, microseconds (equal to the size for tumbling windows).
    pub slide_micros: i64,
    /// The window length as written (`10m`), for evidence.
    pub size_text: String,
    /// Every aggregate: the `having` ones first (`__agg_0`, ...), then `show`.
    pub aggregates: Vec<Aggregate>,
    /// `having` as written.
    pub having_sql: String,
    having: Arc<dyn PhysicalExpr>,
    having_schema: SchemaRef,
}

impl CompiledWindow {
    /// Bins (of `slide`) per window.
    pub fn bins_per_window(&self) -> i64 {
        self.size_micros / self.slide_micros
    }

    /// The schema of the batch `having` is evaluated on: one column per
    /// aggregate, `__agg_N`, Int64 for counts and Float64 for the rest.
    pub fn having_schema(&self) -> &SchemaRef {
        &self.having_schema
    }

    /// Evaluates `having` on a batch of [`Self::having_schema`], one row per
    /// closed window. NULL counts as false.
    pub fn evaluate_having(&self, batch: &RecordBatch) -> Result<BooleanArray, String> {
        eval_bool(&self.having, batch)
    }
}

const NUMERIC: [&DataType; 2] = [&DataType::Int64, &DataType::Float64];

/// Checks and compiles a `window:` block.
pub fn compile_window(ctx: &SessionContext, spec: &WindowSpec) -> Result<CompiledWindow, String> {
    let schema = rule_schema();
    if spec.group_by.is_empty() {
        return Err("window.group_by needs at least one column".into());
    }
    let mut group_by = Vec::with_capacity(spec.group_by.len());
    for name in &spec.group_by {
        group_by.push(
            schema.index_of(name).map_err(|_| {
                format!("window.group_by column {name:?} is not in the event model")
            })?,
        );
    }
    let size_micros = parse_period_micros(&spec.size).ok_or_else(|| {
        format!(
            "window.size {:?} is not a positive number followed by s, m, h or d",
            spec.size
        )
    })?;
    let slide_micros = match &spec.slide {
        None => size_micros,
        Some(s) => parse_period_micros(s).ok_or_else(|| {
            format!("window.slide {s:?} is not a positive number followed by s, m, h or d")
        })?,
    };
    if slide_micros > size_micros || size_micros % slide_micros != 0 {
        return Err(format!(
            "window.size {} must be a whole multiple of window.slide {}",
            spec.size,
            spec.slide.as_deref().unwrap_or_default()
        ));
    }
    if size_micros / slide_micros > 1_440 {
        return Err("window.size / window.slide is over 1440 bins: use a longer slide".into());
    }

    let mut aggregates: Vec<Aggregate> = Vec::new();
    let mut having = parse_sql(&spec.having, "window.having")?;
    rewrite_aggregates(&mut having, &mut aggregates)?;
    check_no_bare_columns(&having)?;
    if aggregates.is_empty() {
        return Err(
            "window.having uses no aggregate (count(*), count(DISTINCT col), sum(col), ...)".into(),
        );
    }
    for text in &spec.show {
        let mut e = parse_sql(text, "window.show")?;
        rewrite_aggregates(&mut e, &mut aggregates)?;
        if !matches!(&e, Expr::Identifier(Ident { value, .. }) if value.starts_with("__agg_")) {
            return Err(format!(
                "window.show {text:?} must be a single aggregate such as sum(bytes_out)"
            ));
        }
    }

    let fields: Vec<Field> = aggregates
        .iter()
        .enumerate()
        .map(|(i, a)| {
            let t = if a.kind.is_count() {
                DataType::Int64
            } else {
                DataType::Float64
            };
            Field::new(format!("__agg_{i}"), t, true)
        })
        .collect();
    let having_schema = Arc::new(Schema::new(fields));
    let df_schema =
        DFSchema::try_from(having_schema.as_ref().clone()).map_err(|e| e.to_string())?;
    let having_expr = plan_expr(ctx, &having.to_string(), &df_schema)
        .map_err(|e| format!("window.having does not compile: {e}"))?;
    let data_type = having_expr
        .data_type(&having_schema)
        .map_err(|e| e.to_string())?;
    if data_type != DataType::Boolean {
        return Err(format!(
            "window.having must be a boolean condition, but it gives {data_type}"
        ));
    }
    Ok(CompiledWindow {
        group_by,
        size_micros,
        slide_micros,
        size_text: spec.size.trim().to_string(),
        aggregates,
        having_sql: spec.having.clone(),
        having: having_expr,
        having_schema,
    })
}

fn parse_sql(text: &str, what: &str) -> Result<Expr, String> {
    Parser::new(&GenericDialect {})
        .try_with_sql(text)
        .and_then(|mut p| p.parse_expr())
        .map_err(|e| format!("{what} {text:?} is not SQL: {e}"))
}

/// Replaces every aggregate call by `__agg_N` (the same aggregate twice gets one column).
fn rewrite_aggregates(expr: &mut Expr, aggregates: &mut Vec<Aggregate>) -> Result<(), String> {
    let schema = rule_schema();
    let flow = visit_expressions_mut(expr, |e| {
        let Expr::Function(f) = e else {
            return ControlFlow::Continue(());
        };
        let name = f.name.to_string().to_ascii_lowercase();
        let kind = match name.as_str() {
            "count" => AggKind::Count,
            "sum" => AggKind::Sum,
            "min" => AggKind::Min,
            "max" => AggKind::Max,
            "avg" => AggKind::Avg,
            _ => return ControlFlow::Continue(()),
        };
        if f.filter.is_some() || f.over.is_some() || !f.within_group.is_empty() {
            return ControlFlow::Break(format!(
                "{e}: FILTER, OVER and WITHIN GROUP are not supported in window.having"
            ));
        }
        let FunctionArguments::List(list) = &f.args else {
            return ControlFlow::Break(format!("{e}: an aggregate needs one argument"));
        };
        if list.args.len() != 1 || !list.clauses.is_empty() {
            return ControlFlow::Break(format!("{e}: an aggregate takes exactly one argument"));
        }
        let distinct = matches!(list.duplicate_treatment, Some(DuplicateTreatment::Distinct));
        let (kind, column, label) = match list.args.first() {
            Some(FunctionArg::Unnamed(FunctionArgExpr::Wildcard)) => {
                if kind != AggKind::Count || distinct {
                    return ControlFlow::Break(format!("{e}: only count(*) takes *"));
                }
                (AggKind::CountStar, None, "count(*)".to_string())
            }
            Some(FunctionArg::Unnamed(FunctionArgExpr::Expr(Expr::Identifier(id)))) => {
                let col = id.value.to_ascii_lowercase();
                let Ok(idx) = schema.index_of(&col) else {
                    return ControlFlow::Break(format!(
                        "{e}: column {col:?} is not in the event model"
                    ));
                };
                let data_type = schema.field(idx).data_type();
                let kind = match (kind, distinct) {
                    (AggKind::Count, true) => AggKind::CountDistinct,
                    (AggKind::Count, false) => AggKind::Count,
                    (_, true) => {
                        return ControlFlow::Break(format!(
                            "{e}: DISTINCT is only supported in count"
                        ));
                    }
                    (k, false) => {
                        if !NUMERIC.contains(&data_type) {
                            return ControlFlow::Break(format!(
                                "{e}: {name} needs a numeric column, but {col} is {data_type}"
                            ));
                        }
                        k
                    }
                };
                let label = if distinct {
                    format!("count(DISTINCT {col})")
                } else {
                    format!("{name}({col})")
                };
                (kind, Some(idx), label)
            }
            _ => {
                return ControlFlow::Break(format!(
                    "{e}: an aggregate's argument must be * or a column name"
                ));
            }
        };
        let agg = Aggregate {
            kind,
            column,
            label,
        };
        let n = match aggregates.iter().position(|a| *a == agg) {
            Some(n) => n,
            None => {
                aggregates.push(agg);
                aggregates.len() - 1
            }
        };
        *e = Expr::Identifier(Ident::new(format!("__agg_{n}")));
        ControlFlow::Continue(())
    });
    match flow {
        ControlFlow::Break(reason) => Err(reason),
        ControlFlow::Continue(()) => Ok(()),
    }
}

fn check_no_bare_columns(expr: &Expr) -> Result<(), String> {
    let flow = visit_expressions(expr, |e| match e {
        Expr::Identifier(id) if id.value.starts_with("__agg_") => ControlFlow::Continue(()),
        Expr::Identifier(id) => ControlFlow::Break(format!(
            "window.having refers to column {:?} outside an aggregate (write count(DISTINCT {0}), max({0}), ...)",
            id.value
        )),
        Expr::CompoundIdentifier(ids) => ControlFlow::Break(format!(
            "window.having refers to {} outside an aggregate",
            ids.iter()
                .map(|i| i.value.as_str())
                .collect::<Vec<_>>()
                .join(".")
        )),
        _ => ControlFlow::Continue(()),
    });
    match flow {
        ControlFlow::Break(reason) => Err(reason),
        ControlFlow::Continue(()) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Float64Array, Int64Array};

    fn spec(having: &str) -> WindowSpec {
        WindowSpec {
            group_by: vec!["principal".into()],
            size: "10m".into(),
            slide: None,
            having: having.into(),
            show: vec!["sum(bytes_out)".into()],
        }
    }

    fn compile(having: &str) -> Result<CompiledWindow, String> {
        compile_window(&SessionContext::new(), &spec(having))
    }

    #[test]
    fn aggregates_become_columns_and_having_runs_on_them() {
        let w = compile("count(*) >= 2 AND COUNT(DISTINCT object_key) >= 2 AND count(*) < 100")
            .unwrap();
        let labels: Vec<_> = w.aggregates.iter().map(|a| a.label.as_str()).collect();
        assert_eq!(
            labels,
            ["count(*)", "count(DISTINCT object_key)", "sum(bytes_out)"]
        );
        let batch = RecordBatch::try_new(
            w.having_schema().clone(),
            vec![
                Arc::new(Int64Array::from(vec![3, 3, 1])),
                Arc::new(Int64Array::from(vec![3, 1, 1])),
                Arc::new(Float64Array::from(vec![Some(1.0), None, None])),
            ],
        )
        .unwrap();
        let got: Vec<bool> = w
            .evaluate_having(&batch)
            .unwrap()
            .iter()
            .map(|v| v.unwrap_or(false))
            .collect();
        assert_eq!(got, [true, false, false]);
    }

    #[test]
    fn bad_having_is_refused_with_a_reason() {
        let e = compile("count(*) >= 2 AND principal = 'x'").unwrap_err();
        assert!(e.contains("outside an aggregate"), "{e}");
        let e = compile("count(DISTINCT nope) > 1").unwrap_err();
        assert!(e.contains("not in the event model"), "{e}");
        let e = compile("max(object_key) > 'a'").unwrap_err();
        assert!(e.contains("numeric"), "{e}");
        let e = compile("count(*)").unwrap_err();
        assert!(e.contains("boolean"), "{e}");
        let e = compile("1 = 1").unwrap_err();
        assert!(e.contains("no aggregate"), "{e}");
    }

    #[test]
    fn slide_must_divide_size() {
        let ctx = SessionContext::new();
        let mut s = spec("count(*) > 1");
        s.slide = Some("3m".into());
        assert!(compile_window(&ctx, &s).unwrap_err().contains("multiple"));
        s.slide = Some("1m".into());
        let w = compile_window(&ctx, &s).unwrap();
        assert_eq!(w.bins_per_window(), 10);
    }
}
