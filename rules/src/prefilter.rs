//! Prefiltering: which event names a rule can possibly match.
//!
//! Most rules say `event_name = 'X'` or `event_name IN (...)` at the top of a
//! conjunction. When none of those names occurs in a batch, the rule cannot
//! match any row of it and is not evaluated at all. The check is one lookup in
//! the batch's dictionary of event names per rule, so adding rules that test
//! names absent from the batch costs almost nothing.

use std::collections::BTreeSet;

use datafusion::logical_expr::{BinaryExpr, Expr, Operator};
use datafusion::scalar::ScalarValue;

/// The event names a predicate requires: `Some(names)` when every row it
/// matches must have one of `names` as `event_name`; `None` when it cannot
/// tell (the rule then runs on every batch).
pub fn required_event_names(expr: &Expr) -> Option<BTreeSet<String>> {
    match expr {
        Expr::BinaryExpr(BinaryExpr { left, op, right }) => match op {
            Operator::And => match (required_event_names(left), required_event_names(right)) {
                (Some(a), Some(b)) => Some(a.intersection(&b).cloned().collect()),
                (Some(a), None) | (None, Some(a)) => Some(a),
                (None, None) => None,
            },
            Operator::Or => {
                let mut a = required_event_names(left)?;
                a.extend(required_event_names(right)?);
                Some(a)
            }
            Operator::Eq => match (is_event_name(left), is_event_name(right)) {
                (true, false) => literal(right).map(|s| BTreeSet::from([s])),
                (false, true) => literal(left).map(|s| BTreeSet::from([s])),
                _ => None,
            },
            _ => None,
        },
        Expr::InList(list) if !list.negated && is_event_name(&list.expr) => {
            list.list.iter().map(literal).collect()
        }
        Expr::Alias(a) => required_event_names(&a.expr),
        _ => None,
    }
}

fn is_event_name(expr: &Expr) -> bool {
    match expr {
        Expr::Column(c) => c.name == trailhound_core::schema::columns::EVENT_NAME,
        Expr::Cast(c) => is_event_name(&c.expr),
        Expr::TryCast(c) => is_event_name(&c.expr),
        _ => false,
    }
}

fn literal(expr: &Expr) -> Option<String> {
    match expr {
        Expr::Literal(ScalarValue::Utf8(Some(s)), _)
        | Expr::Literal(ScalarValue::LargeUtf8(Some(s)), _)
        | Expr::Literal(ScalarValue::Utf8View(Some(s)), _) => Some(s.clone()),
        Expr::Literal(ScalarValue::Dictionary(_, v), _) => {
            literal(&Expr::Literal((**v).clone(), None))
        }
        Expr::Cast(c) => literal(&c.expr),
        Expr::TryCast(c) => literal(&c.expr),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::common::DFSchema;
    use datafusion::prelude::SessionContext;

    fn names(sql: &str) -> Option<Vec<String>> {
        let ctx = SessionContext::new();
        let schema = DFSchema::try_from(trailhound_core::event_schema().as_ref().clone()).unwrap();
        let expr = ctx.parse_sql_expr(sql, &schema).unwrap();
        required_event_names(&expr).map(|s| s.into_iter().collect())
    }

    #[test]
    fn conjunctions_with_names_are_prefiltered() {
        assert_eq!(
            names(
                "event_source = 'iam.amazonaws.com' AND event_name IN ('A', 'B') AND error_code IS NULL"
            ),
            Some(vec!["A".into(), "B".into()])
        );
        assert_eq!(
            names("event_name = 'A' AND event_name IN ('A', 'B')"),
            Some(vec!["A".into()])
        );
        assert_eq!(
            names("'A' = event_name OR event_name = 'B'"),
            Some(vec!["A".into(), "B".into()])
        );
    }

    #[test]
    fn anything_else_runs_on_every_batch() {
        assert_eq!(names("source = 'session'"), None);
        assert_eq!(names("event_name = 'A' OR source = 'session'"), None);
        assert_eq!(names("event_name NOT IN ('A')"), None);
        assert_eq!(names("NOT (event_name = 'A')"), None);
        assert_eq!(names("lower(event_name) = 'a'"), None);
    }
}
