//! Prefiltering: which values of a few dictionary columns a rule can
//! possibly match.
//!
//! Most rules say `event_name = 'X'` or `event_name IN (...)` at the top of a
//! conjunction; the gateway's rules say `source = 'session'`, and others
//! name an `event_source`. When none of a rule's required values occurs in a
//! batch, the rule cannot match any row of it and is not evaluated at all.
//! The check is a lookup in the batch's dictionary of that column per rule,
//! so adding rules that test values absent from the batch costs almost
//! nothing.

use std::collections::{BTreeMap, BTreeSet};

use datafusion::logical_expr::{BinaryExpr, Expr, Operator};
use datafusion::scalar::ScalarValue;
use trailhound_core::schema::columns::{EVENT_NAME, EVENT_SOURCE, SOURCE};

/// The columns a rule can be prefiltered on: dictionary-encoded in the
/// event model, and what rules most often require one value of.
pub const PREFILTER_COLUMNS: [&str; 3] = [EVENT_NAME, EVENT_SOURCE, SOURCE];

/// For some of [`PREFILTER_COLUMNS`], the values one of which every row a
/// predicate matches has in that column. Empty when it cannot tell.
pub type Required = BTreeMap<&'static str, BTreeSet<String>>;

/// What a predicate requires of the rows it matches ([`Required`]): from
/// `column = 'X'` and `column IN (...)` in its top conjunction, and from an
/// `OR` whose sides both require values of the same column.
pub fn required_values(expr: &Expr) -> Required {
    match expr {
        Expr::BinaryExpr(BinaryExpr { left, op, right }) => match op {
            Operator::And => {
                let mut a = required_values(left);
                for (column, b) in required_values(right) {
                    match a.get_mut(column) {
                        Some(values) => values.retain(|v| b.contains(v)),
                        None => {
                            a.insert(column, b);
                        }
                    }
                }
                a
            }
            Operator::Or => {
                let a = required_values(left);
                let mut b = required_values(right);
                a.into_iter()
                    .filter_map(|(column, mut values)| {
                        values.extend(b.remove(column)?);
                        Some((column, values))
                    })
                    .collect()
            }
            Operator::Eq => {
                let found = match (prefilter_column(left), prefilter_column(right)) {
                    (Some(c), None) => literal(right).map(|v| (c, v)),
                    (None, Some(c)) => literal(left).map(|v| (c, v)),
                    _ => None,
                };
                found
                    .map(|(c, v)| Required::from([(c, BTreeSet::from([v]))]))
                    .unwrap_or_default()
            }
            _ => Required::new(),
        },
        Expr::InList(list) if !list.negated => {
            let values: Option<BTreeSet<String>> = list.list.iter().map(literal).collect();
            match (prefilter_column(&list.expr), values) {
                (Some(c), Some(values)) => Required::from([(c, values)]),
                _ => Required::new(),
            }
        }
        Expr::Alias(a) => required_values(&a.expr),
        _ => Required::new(),
    }
}

/// Which of [`PREFILTER_COLUMNS`] an expression reads as it is.
fn prefilter_column(expr: &Expr) -> Option<&'static str> {
    match expr {
        Expr::Column(c) => PREFILTER_COLUMNS.into_iter().find(|p| *p == c.name),
        Expr::Cast(c) => prefilter_column(&c.expr),
        Expr::TryCast(c) => prefilter_column(&c.expr),
        _ => None,
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
        required_values(&expr)
            .remove(EVENT_NAME)
            .map(|s| s.into_iter().collect())
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

    fn required(sql: &str) -> Vec<(&'static str, Vec<String>)> {
        let ctx = SessionContext::new();
        let schema = DFSchema::try_from(trailhound_core::event_schema().as_ref().clone()).unwrap();
        let expr = ctx.parse_sql_expr(sql, &schema).unwrap();
        required_values(&expr)
            .into_iter()
            .map(|(c, v)| (c, v.into_iter().collect()))
            .collect()
    }

    #[test]
    fn sources_and_services_are_required_like_names() {
        assert_eq!(
            required("source = 'session' AND regexp_like(command, 'x')"),
            [("source", vec!["session".to_string()])]
        );
        assert_eq!(
            required(
                "event_source = 's3.amazonaws.com' AND event_name IN ('A', 'B') AND principal_type <> 'AWSService'"
            ),
            [
                ("event_name", vec!["A".to_string(), "B".to_string()]),
                ("event_source", vec!["s3.amazonaws.com".to_string()])
            ]
        );
        // Both sides of an OR must require the column.
        assert_eq!(
            required(
                "(source = 'session' AND command IS NOT NULL) OR (source = 'cloudtrail' AND event_source = 'iam.amazonaws.com')"
            ),
            [(
                "source",
                vec!["cloudtrail".to_string(), "session".to_string()]
            )]
        );
        // Contradicting requirements leave nothing to match.
        assert_eq!(
            required("source = 'session' AND source = 'cloudtrail'"),
            [("source", vec![])]
        );
        assert_eq!(required("principal_type = 'Root'"), []);
        assert_eq!(required("NOT (source = 'session')"), []);
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
