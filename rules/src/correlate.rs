//! Correlation rules: the `correlate:` block checked and compiled.
//!
//! A correlation joins two kinds of activity that share a *link* value
//! within a span of event time: typically what a person typed in a gateway
//! session (`first`) and the AWS calls made through the role that session
//! is linked to (`then`). The link is a SQL expression evaluated on every
//! row, because the two sides name the person differently (the gateway
//! login in `user_name`, the role session's `source_identity` or
//! `session_name` on CloudTrail). The detector keeps the recent `first` rows
//! per link and alerts when a `then` row follows one within `within`, with
//! both sides in the evidence.

use std::sync::Arc;

use arrow::array::{Array, BooleanArray, RecordBatch};
use datafusion::common::DFSchema;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::prelude::SessionContext;

use crate::compile::{eval_bool, plan_expr};
use crate::rule::{CorrelateSpec, parse_period_micros};
use crate::template::cell_text;

/// A compiled `correlate:` block.
#[derive(Debug, Clone)]
pub struct CompiledCorrelate {
    /// The link expression as written.
    pub link_sql: String,
    link: Arc<dyn PhysicalExpr>,
    /// The `first` condition as written.
    pub first_sql: String,
    first: Arc<dyn PhysicalExpr>,
    /// The `then` condition as written.
    pub then_sql: String,
    then: Arc<dyn PhysicalExpr>,
    /// Longest span from a `first` row to a `then` row, microseconds.
    pub within_micros: i64,
    /// `within` as written.
    pub within_text: String,
}

/// The link values and side flags of one batch.
pub struct CorrelateColumns {
    link: Arc<dyn Array>,
    first: BooleanArray,
    then: BooleanArray,
}

impl CorrelateColumns {
    /// The row's link value; `None` when NULL or empty.
    pub fn link(&self, row: usize) -> Option<String> {
        if row >= self.link.len() || self.link.is_null(row) {
            return None;
        }
        let text = cell_text(self.link.as_ref(), row);
        let text = text.trim();
        (!text.is_empty()).then(|| text.to_string())
    }

    /// Whether the row is on the `first` side.
    pub fn is_first(&self, row: usize) -> bool {
        row < self.first.len() && self.first.value(row)
    }

    /// Whether the row is on the `then` side.
    pub fn is_then(&self, row: usize) -> bool {
        row < self.then.len() && self.then.value(row)
    }
}

impl CompiledCorrelate {
    /// Evaluates the link and both sides on a batch of the event schema.
    pub fn columns(&self, batch: &RecordBatch) -> Result<CorrelateColumns, String> {
        let link = self
            .link
            .evaluate(batch)
            .and_then(|v| v.into_array(batch.num_rows()))
            .map_err(|e| format!("correlate.link: {e}"))?;
        Ok(CorrelateColumns {
            link,
            first: eval_bool(&self.first, batch).map_err(|e| format!("correlate.first: {e}"))?,
            then: eval_bool(&self.then, batch).map_err(|e| format!("correlate.then: {e}"))?,
        })
    }
}

/// Checks and compiles a `correlate:` block.
pub fn compile_correlate(
    ctx: &SessionContext,
    schema: &DFSchema,
    spec: &CorrelateSpec,
) -> Result<CompiledCorrelate, String> {
    let within_micros = parse_period_micros(&spec.within).ok_or_else(|| {
        format!(
            "correlate.within {:?} is not a positive number followed by s, m, h or d",
            spec.within
        )
    })?;
    let link = plan_expr(ctx, &spec.link, schema).map_err(|e| format!("correlate.link: {e}"))?;
    let first = plan_expr(ctx, &spec.first, schema).map_err(|e| format!("correlate.first: {e}"))?;
    let then = plan_expr(ctx, &spec.then, schema).map_err(|e| format!("correlate.then: {e}"))?;
    let arrow_schema = trailhound_core::rule_schema();
    for (name, expr) in [("first", &first), ("then", &then)] {
        let t = expr
            .data_type(&arrow_schema)
            .map_err(|e| format!("correlate.{name}: {e}"))?;
        if t != arrow::datatypes::DataType::Boolean {
            return Err(format!(
                "correlate.{name} must be a boolean condition, but it gives {t}"
            ));
        }
    }
    Ok(CompiledCorrelate {
        link_sql: spec.link.clone(),
        link,
        first_sql: spec.first.clone(),
        first,
        then_sql: spec.then.clone(),
        then,
        within_micros,
        within_text: spec.within.clone(),
    })
}
