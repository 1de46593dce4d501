//! `column = 'text'` and `column <> 'text'` on a dictionary column, as a
//! comparison of keys.
//!
//! Arrow compares a dictionary column with a constant by comparing each
//! distinct value, then taking a boolean per row by its key (`take`): a
//! lookup into the values' answers for every row, for every such
//! comparison of every rule. Here the constant's key is found once per
//! batch (the dictionaries `core::schema` builds hold each value once) and
//! each row's key is compared with it. Dictionaries of another shape (a
//! value twice, a NULL value) and columns that are not dictionaries go to
//! the comparison DataFusion planned, which is kept for them, so results
//! are DataFusion's in every case (tested against it).

use std::fmt;
use std::hash::Hash;
use std::sync::Arc;

use arrow::array::{Array, AsArray, BooleanArray, RecordBatch};
use arrow::buffer::BooleanBuffer;
use arrow::datatypes::{DataType, Int32Type, Schema};
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{Result, ScalarValue, internal_err};
use datafusion::logical_expr::{ColumnarValue, Operator};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::expressions::{BinaryExpr, Column, Literal};

/// Replaces every `dictionary column = / <> text constant` of a planned
/// expression by a [`DictCompare`]; other nodes are left as they are.
pub(crate) fn rewrite(
    expr: Arc<dyn PhysicalExpr>,
    schema: &Schema,
) -> Result<Arc<dyn PhysicalExpr>> {
    expr.transform_up(|e| {
        Ok(match DictCompare::of(&e, schema) {
            Some(compare) => Transformed::yes(Arc::new(compare) as Arc<dyn PhysicalExpr>),
            None => Transformed::no(e),
        })
    })
    .map(|t| t.data)
}

/// A dictionary column compared with a text constant (module docs).
#[derive(Debug)]
pub struct DictCompare {
    column: Arc<dyn PhysicalExpr>,
    value: String,
    negated: bool,
    /// The comparison as DataFusion planned it, for other shapes.
    planned: Arc<dyn PhysicalExpr>,
}

impl DictCompare {
    /// The comparison `expr` is, when it is one this handles.
    fn of(expr: &Arc<dyn PhysicalExpr>, schema: &Schema) -> Option<Self> {
        let compare = Self::parts_of(expr)?;
        let is_dictionary = matches!(
            compare.column.data_type(schema).ok()?,
            DataType::Dictionary(key, value)
                if *key == DataType::Int32 && *value == DataType::Utf8
        );
        is_dictionary.then_some(compare)
    }

    /// `expr` read as a column compared with a text constant, whatever the
    /// column's type.
    fn parts_of(expr: &Arc<dyn PhysicalExpr>) -> Option<Self> {
        let binary = expr.downcast_ref::<BinaryExpr>()?;
        let negated = match binary.op() {
            Operator::Eq => false,
            Operator::NotEq => true,
            _ => return None,
        };
        let (column, literal) = match (
            binary.left().downcast_ref::<Column>(),
            binary.right().downcast_ref::<Literal>(),
        ) {
            (Some(_), Some(literal)) => (binary.left(), literal),
            _ => match (
                binary.right().downcast_ref::<Column>(),
                binary.left().downcast_ref::<Literal>(),
            ) {
                (Some(_), Some(literal)) => (binary.right(), literal),
                _ => return None,
            },
        };
        let value = match literal.value() {
            ScalarValue::Utf8(Some(v)) => v.clone(),
            ScalarValue::Dictionary(_, inner) => match inner.as_ref() {
                ScalarValue::Utf8(Some(v)) => v.clone(),
                _ => return None,
            },
            _ => return None,
        };
        Some(Self {
            column: Arc::clone(column),
            value,
            negated,
            planned: Arc::clone(expr),
        })
    }

    /// The answer by keys, or `None` for a column this does not handle.
    fn by_keys(&self, array: &dyn Array) -> Option<BooleanArray> {
        let dictionary = array.as_dictionary_opt::<Int32Type>()?;
        let values = dictionary.values().as_string_opt::<i32>()?;
        if values.null_count() > 0 {
            return None;
        }
        let mut found = values
            .iter()
            .enumerate()
            .filter(|(_, v)| *v == Some(self.value.as_str()));
        let key = match (found.next(), found.next()) {
            (None, _) => None,
            (Some((k, _)), None) => Some(i32::try_from(k).ok()?),
            // The value twice: left to the planned comparison.
            (Some(_), Some(_)) => return None,
        };
        let keys = dictionary.keys();
        let negated = self.negated;
        let bits = match key {
            Some(key) => BooleanBuffer::collect_bool(keys.len(), |i| {
                keys.values().get(i).is_some_and(|k| *k == key) != negated
            }),
            None if negated => BooleanBuffer::new_set(keys.len()),
            None => BooleanBuffer::new_unset(keys.len()),
        };
        Some(BooleanArray::new(bits, keys.nulls().cloned()))
    }
}

// The planned comparison says all the rest.
impl PartialEq for DictCompare {
    fn eq(&self, other: &Self) -> bool {
        self.planned.as_ref() == other.planned.as_ref()
    }
}

impl Eq for DictCompare {}

impl Hash for DictCompare {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.planned.as_ref().hash(state);
    }
}

impl fmt::Display for DictCompare {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.planned, f)
    }
}

impl PhysicalExpr for DictCompare {
    fn data_type(&self, _schema: &Schema) -> Result<DataType> {
        Ok(DataType::Boolean)
    }

    fn nullable(&self, schema: &Schema) -> Result<bool> {
        self.planned.nullable(schema)
    }

    fn evaluate(&self, batch: &RecordBatch) -> Result<ColumnarValue> {
        let column = self.column.evaluate(batch)?;
        if let ColumnarValue::Array(array) = &column
            && let Some(answer) = self.by_keys(array.as_ref())
        {
            return Ok(ColumnarValue::Array(Arc::new(answer)));
        }
        self.planned.evaluate(batch)
    }

    fn children(&self) -> Vec<&Arc<dyn PhysicalExpr>> {
        vec![&self.planned]
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn PhysicalExpr>>,
    ) -> Result<Arc<dyn PhysicalExpr>> {
        // A new child is the planned comparison with new children (its
        // column renumbered for a projection, say): the same comparison of
        // the same column, unless it is no longer one.
        match <[_; 1]>::try_from(children) {
            Ok([planned]) => Ok(match Self::parts_of(&planned) {
                Some(compare) => Arc::new(compare),
                None => planned,
            }),
            Err(_) => internal_err!("DictCompare has one child"),
        }
    }

    fn fmt_sql(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.planned.fmt_sql(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{ArrayRef, DictionaryArray, Int32Array, StringArray};
    use arrow::datatypes::Field;
    use datafusion::common::DFSchema;
    use datafusion::prelude::SessionContext;

    fn schema() -> Schema {
        Schema::new(vec![Field::new(
            "c",
            DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8)),
            true,
        )])
    }

    /// `sql` as DataFusion plans it, and as the compiler does (with the
    /// [`rewrite`]).
    fn planned(sql: &str) -> (Arc<dyn PhysicalExpr>, Arc<dyn PhysicalExpr>) {
        let ctx = SessionContext::new();
        let df = DFSchema::try_from(schema()).unwrap();
        let (rewritten, _) = crate::compile::plan_where(&ctx, sql, &df).unwrap();
        let datafusions = Arc::clone(&rewritten)
            .transform_up(|e| {
                Ok(match e.downcast_ref::<DictCompare>() {
                    Some(compare) => Transformed::yes(Arc::clone(&compare.planned)),
                    None => Transformed::no(e),
                })
            })
            .unwrap()
            .data;
        (datafusions, rewritten)
    }

    fn batch(keys: Vec<Option<i32>>, values: Vec<Option<&str>>) -> RecordBatch {
        let dictionary =
            DictionaryArray::new(Int32Array::from(keys), Arc::new(StringArray::from(values)));
        RecordBatch::try_new(Arc::new(schema()), vec![Arc::new(dictionary) as ArrayRef]).unwrap()
    }

    fn answer(expr: &Arc<dyn PhysicalExpr>, batch: &RecordBatch) -> BooleanArray {
        let rows = batch.num_rows();
        expr.evaluate(batch)
            .unwrap()
            .into_array(rows)
            .unwrap()
            .as_boolean()
            .clone()
    }

    #[test]
    fn comparisons_with_a_constant_give_datafusions_answers_by_keys() {
        let keys = vec![Some(0), Some(1), None, Some(2), Some(1), Some(0), None];
        let batches = [
            // The value once; NULL rows.
            batch(keys.clone(), vec![Some("a"), Some("x"), Some("b")]),
            // The value absent.
            batch(keys.clone(), vec![Some("a"), Some("y"), Some("b")]),
            // The value twice, and a NULL value: DataFusion's comparison.
            batch(keys.clone(), vec![Some("x"), Some("a"), Some("x")]),
            batch(keys, vec![Some("x"), None, Some("b")]),
            batch(vec![], vec![]),
            batch(vec![Some(0); 70], vec![Some("x")]),
        ];
        for sql in ["c = 'x'", "c <> 'x'", "'x' = c", "'x' <> c", "c = ''"] {
            let (planned, rewritten) = planned(sql);
            assert!(
                rewritten.downcast_ref::<DictCompare>().is_some(),
                "{sql} was not rewritten: {rewritten}"
            );
            for (i, b) in batches.iter().enumerate() {
                assert_eq!(
                    answer(&rewritten, b),
                    answer(&planned, b),
                    "{sql}, batch {i}"
                );
            }
        }
    }

    /// Renumbering the columns for a projection (as the compiler does)
    /// keeps the comparison, on the renumbered column.
    #[test]
    fn a_comparison_survives_new_children() {
        let wide = Schema::new(vec![
            Field::new("w", DataType::Utf8, true),
            schema().field(0).clone(),
        ]);
        let ctx = SessionContext::new();
        let df = DFSchema::try_from(wide).unwrap();
        let (on_wide, _) = crate::compile::plan_where(&ctx, "c = 'x'", &df).unwrap();
        let moved =
            datafusion::physical_expr::utils::reassign_expr_columns(on_wide, &schema()).unwrap();
        assert!(moved.downcast_ref::<DictCompare>().is_some(), "{moved}");
        let (planned, _) = planned("c = 'x'");
        let b = batch(vec![Some(0), None, Some(1)], vec![Some("x"), Some("y")]);
        assert_eq!(answer(&moved, &b), answer(&planned, &b));
    }

    #[test]
    fn only_comparisons_of_a_dictionary_with_text_are_rewritten() {
        for sql in ["c LIKE 'x%'", "c IN ('x', 'y')", "c IS NULL", "c = c"] {
            let (planned, rewritten) = planned(sql);
            assert_eq!(rewritten.to_string(), planned.to_string(), "{sql}");
            assert!(rewritten.downcast_ref::<DictCompare>().is_none(), "{sql}");
        }
        // Nested comparisons are found; the rest of the tree stays.
        let (_, rewritten) = planned("c = 'x' OR (c <> 'y' AND c IS NOT NULL)");
        let mut found = 0;
        rewritten
            .apply(|e| {
                found += usize::from(e.downcast_ref::<DictCompare>().is_some());
                Ok(datafusion::common::tree_node::TreeNodeRecursion::Continue)
            })
            .unwrap();
        assert_eq!(found, 2);
    }
}
