//! Short `IN` lists kept as lists.
//!
//! DataFusion's simplifier writes `x IN (a, b, c)` (three items or fewer) as
//! `x = a OR x = b OR x = c`, and `x NOT IN (a, b)` as `x <> a AND x <> b`.
//! On a dictionary column (`principal_type`, `event_source`, ...) every one
//! of those comparisons is a pass over each row's key, and the `OR`s and
//! `AND`s are more passes; an `IN` list is tested once per distinct value
//! and then takes one pass. The rules' `where`s are full of such short lists
//! (`principal_type IN ('IAMUser', 'Root', 'IdentityCenterUser')`).
//!
//! [`fold`], run after the simplifier, writes an `OR` of equalities between
//! one column and literals (and an `AND` of inequalities) as an `IN` list
//! (a `NOT IN` list) again. The results are the same, NULL included:
//! `x IN (a, b)` is NULL exactly when `x = a OR x = b` is (`x` NULL, or no
//! match and a NULL item), and so for `NOT IN`.

use datafusion::common::Result;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::logical_expr::expr::InList;
use datafusion::logical_expr::{BinaryExpr, Expr, Operator};

/// `expr` with every `OR` of equalities (every `AND` of inequalities)
/// between one column and literals written as one `IN` (`NOT IN`) list.
pub fn fold(expr: Expr) -> Result<Expr> {
    expr.transform_up(|e| {
        Ok(match merged(&e) {
            Some(list) => Transformed::yes(list),
            None => Transformed::no(e),
        })
    })
    .map(|t| t.data)
}

/// A test of a column against literals: the column, the literals, and
/// whether it is negated (`<>`, `NOT IN`).
type Membership<'a> = (&'a Expr, Vec<Expr>, bool);

fn membership(e: &Expr) -> Option<Membership<'_>> {
    match e {
        Expr::BinaryExpr(BinaryExpr { left, op, right }) => {
            let negated = match op {
                Operator::Eq => false,
                Operator::NotEq => true,
                _ => return None,
            };
            match (left.as_ref(), right.as_ref()) {
                (column @ Expr::Column(_), literal @ Expr::Literal(..))
                | (literal @ Expr::Literal(..), column @ Expr::Column(_)) => {
                    Some((column, vec![literal.clone()], negated))
                }
                _ => None,
            }
        }
        Expr::InList(InList {
            expr,
            list,
            negated,
        }) if matches!(expr.as_ref(), Expr::Column(_))
            && list.iter().all(|i| matches!(i, Expr::Literal(..))) =>
        {
            Some((expr.as_ref(), list.clone(), *negated))
        }
        _ => None,
    }
}

/// One list for `a OR b` when both test the same column for membership, or
/// `a AND b` when both test it for non-membership.
fn merged(e: &Expr) -> Option<Expr> {
    let Expr::BinaryExpr(BinaryExpr { left, op, right }) = e else {
        return None;
    };
    let negated = match op {
        Operator::Or => false,
        Operator::And => true,
        _ => return None,
    };
    let (column, mut items, left_negated) = membership(left)?;
    let (other, more, right_negated) = membership(right)?;
    if column != other || left_negated != negated || right_negated != negated {
        return None;
    }
    items.extend(more);
    Some(Expr::InList(InList::new(
        Box::new(column.clone()),
        items,
        negated,
    )))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{Array, AsArray};
    use datafusion::common::DFSchema;
    use datafusion::logical_expr::simplify::SimplifyContext;
    use datafusion::optimizer::simplify_expressions::ExprSimplifier;
    use datafusion::prelude::SessionContext;
    use trailhound_core::{Event, event_schema, events_to_batch};

    use super::*;

    /// The simplified `sql`, planned as it is and folded: their displays,
    /// and their results on `batch`.
    fn both(sql: &str, batch: &arrow::array::RecordBatch) -> [(String, Vec<Option<bool>>); 2] {
        let ctx = SessionContext::new();
        let schema = DFSchema::try_from(event_schema().as_ref().clone()).unwrap();
        let simplifier = ExprSimplifier::new(
            SimplifyContext::builder()
                .with_schema(Arc::new(schema.clone()))
                .build(),
        );
        let expr = ctx.parse_sql_expr(sql, &schema).unwrap();
        let expr = simplifier
            .simplify(simplifier.coerce(expr, &schema).unwrap())
            .unwrap();
        [expr.clone(), fold(expr).unwrap()].map(|e| {
            let planned = ctx.create_physical_expr(e, &schema).unwrap();
            let out = planned
                .evaluate(batch)
                .unwrap()
                .into_array(batch.num_rows())
                .unwrap();
            let out = out.as_boolean();
            (
                format!("{planned}"),
                (0..out.len())
                    .map(|i| out.is_valid(i).then(|| out.value(i)))
                    .collect(),
            )
        })
    }

    #[test]
    fn short_lists_are_lists_again_with_the_same_results() {
        let events: Vec<Event> = [Some("IAMUser"), Some("Root"), None, Some("AWSService")]
            .iter()
            .map(|t| Event {
                principal_type: t.unwrap_or_default().to_string(),
                user_name: t.map(str::to_string),
                ..Default::default()
            })
            .collect();
        let batch = events_to_batch(&events);
        for sql in [
            "principal_type IN ('IAMUser', 'Root', 'IdentityCenterUser')",
            "principal_type NOT IN ('AWSService', 'AWSAccount')",
            "user_name IN ('IAMUser', 'Root')",
            "user_name NOT IN ('Root', 'AWSService')",
            "user_name = 'Root' OR user_name = 'IAMUser' OR user_name IS NULL",
            "(user_name IN ('Root', NULL)) AND principal_type <> 'Root'",
        ] {
            let [(plain, expected), (folded, got)] = both(sql, &batch);
            assert_eq!(got, expected, "{sql}: {plain} / {folded}");
        }
        let [(plain, _), (folded, _)] = both(
            "principal_type IN ('IAMUser', 'Root', 'IdentityCenterUser') AND user_name NOT IN ('AWSService', 'AWSAccount')",
            &batch,
        );
        assert!(plain.contains(" OR "), "{plain}");
        assert!(
            !folded.contains(" OR ") && !folded.contains("!="),
            "{folded}"
        );
        assert_eq!(folded.matches(" IN ").count(), 2, "{folded}");
        // Different columns, or a comparison that is not with a literal,
        // stay as they are.
        let [(plain, _), (folded, _)] = both(
            "principal_type = 'Root' OR user_name = 'Root' OR user_name = principal_type",
            &batch,
        );
        assert_eq!(plain, folded);
    }
}
