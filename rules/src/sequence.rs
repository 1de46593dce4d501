//! Sequence rules: the `sequence:` block checked and compiled.
//!
//! Each step's condition is compiled once, like `where`, and evaluated once
//! per batch on the rows that passed the rule's `where`. The detector keeps
//! the partial matches per key and advances them in event-time order.

use std::collections::BTreeSet;
use std::sync::Arc;

use arrow::array::{BooleanArray, RecordBatch};
use datafusion::common::DFSchema;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::prelude::SessionContext;
use trailhound_core::rule_schema;

use crate::compile::{eval_bool, plan_where};
use crate::rule::{SequenceSpec, parse_period_micros};

/// Most steps that must happen in one sequence.
pub const MAX_STEPS: usize = 32;

/// One compiled step.
#[derive(Debug, Clone)]
pub struct CompiledStep {
    /// The step's name, for evidence.
    pub name: String,
    /// Its condition as written.
    pub sql: String,
    predicate: Arc<dyn PhysicalExpr>,
    /// What the condition requires of the prefilter columns, as
    /// [`crate::CompiledRule::required`] says it for a rule's `where`.
    required: Vec<(usize, BTreeSet<String>)>,
}

impl CompiledStep {
    /// Evaluates the step's condition on a batch of the event schema; NULL is false.
    pub fn evaluate(&self, batch: &RecordBatch) -> Result<BooleanArray, String> {
        eval_bool(&self.predicate, batch)
    }

    /// What a row must hold to meet the condition, when it says
    /// ([`crate::CompiledRule::required`]).
    pub fn required(&self) -> &[(usize, BTreeSet<String>)] {
        &self.required
    }
}

/// A compiled `sequence:` block.
#[derive(Debug, Clone)]
pub struct CompiledSequence {
    /// Event-schema indices of the join key columns.
    pub by: Vec<usize>,
    /// Longest span from the first step to the last, microseconds.
    pub within_micros: i64,
    /// `within` as written.
    pub within_text: String,
    /// Steps that must happen, in order (at least two).
    pub steps: Vec<CompiledStep>,
    /// The step that must not happen within `within` of the first step.
    pub absent: Option<CompiledStep>,
}

/// Checks and compiles a `sequence:` block.
pub fn compile_sequence(
    ctx: &SessionContext,
    schema: &DFSchema,
    spec: &SequenceSpec,
) -> Result<CompiledSequence, String> {
    let arrow_schema = rule_schema();
    if spec.by.is_empty() {
        return Err("sequence.by needs at least one column".into());
    }
    let mut by = Vec::with_capacity(spec.by.len());
    for name in &spec.by {
        by.push(
            arrow_schema
                .index_of(name)
                .map_err(|_| format!("sequence.by column {name:?} is not in the event model"))?,
        );
    }
    let within_micros = parse_period_micros(&spec.within).ok_or_else(|| {
        format!(
            "sequence.within {:?} is not a positive number followed by s, m, h or d",
            spec.within
        )
    })?;
    let mut steps = Vec::new();
    let mut absent = None;
    let count = spec.steps.len();
    for (i, step) in spec.steps.iter().enumerate() {
        let (sql, is_absent) = match (&step.predicate, &step.absent) {
            (Some(w), None) => (w, false),
            (None, Some(a)) => (a, true),
            _ => {
                return Err(format!(
                    "sequence step {:?} needs exactly one of `where` and `absent`",
                    step.name
                ));
            }
        };
        if is_absent && i + 1 != count {
            return Err(format!(
                "sequence step {:?}: an absence step must be the last step",
                step.name
            ));
        }
        let (predicate, required) = plan_where(ctx, sql, schema)
            .map_err(|e| format!("sequence step {:?} does not compile: {e}", step.name))?;
        let data_type = predicate
            .data_type(&arrow_schema)
            .map_err(|e| e.to_string())?;
        if data_type != arrow::datatypes::DataType::Boolean {
            return Err(format!(
                "sequence step {:?} must be a boolean condition, but it gives {data_type}",
                step.name
            ));
        }
        let compiled = CompiledStep {
            name: step.name.clone(),
            sql: sql.clone(),
            predicate,
            required,
        };
        if is_absent {
            absent = Some(compiled);
        } else {
            steps.push(compiled);
        }
    }
    if steps.len() > MAX_STEPS {
        return Err(format!(
            "a sequence has at most {MAX_STEPS} steps, it has {}",
            steps.len()
        ));
    }
    if steps.len() < 2 {
        return Err(format!(
            "a sequence needs at least 2 steps that must happen, it has {}",
            steps.len()
        ));
    }
    Ok(CompiledSequence {
        by,
        within_micros,
        within_text: spec.within.trim().to_string(),
        steps,
        absent,
    })
}
