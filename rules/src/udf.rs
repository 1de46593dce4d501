//! What the string functions the engine puts in place of DataFusion's
//! (`regexp_like` in [`crate::regex`], `starts_with` in
//! [`crate::starts_with`]) share: reading their constant arguments, testing a
//! dictionary column once per distinct value, and handing every other shape
//! to DataFusion's own implementation.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, BooleanArray};
use arrow::datatypes::{DataType, Field};
use datafusion::common::{Result, ScalarValue};
use datafusion::logical_expr::{ColumnarValue, ScalarFunctionArgs, ScalarUDF};

/// `Default`, and the equality and hash DataFusion asks of a function
/// object, for a function type with a `new()`: all of one type are equal
/// (they hold no settings), and hash by name.
macro_rules! same_by_name {
    ($function:ty) => {
        impl Default for $function {
            fn default() -> Self {
                Self::new()
            }
        }

        impl PartialEq for $function {
            fn eq(&self, _other: &Self) -> bool {
                true
            }
        }

        impl Eq for $function {}

        impl std::hash::Hash for $function {
            fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
                datafusion::logical_expr::ScalarUDFImpl::name(self).hash(state);
            }
        }
    };
}
pub(crate) use same_by_name;

/// A constant string argument: `Some(None)` for a null, `None` when the
/// argument is not a constant string.
pub(crate) fn constant(value: &ColumnarValue) -> Option<Option<&str>> {
    match value {
        ColumnarValue::Scalar(
            ScalarValue::Utf8(s) | ScalarValue::LargeUtf8(s) | ScalarValue::Utf8View(s),
        ) => Some(s.as_deref()),
        _ => None,
    }
}

/// Whether a type is one of Arrow's string types.
pub(crate) fn is_string(t: &DataType) -> bool {
    matches!(t, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View)
}

/// `test` (a per-value test of a column of strings, `None` when it does not
/// take the column's type) on `values`: directly on a column of strings, or
/// on a dictionary's values, each distinct value once, spread to the rows
/// through the keys. `None` when neither fits.
pub(crate) fn on_strings(
    values: &ArrayRef,
    test: impl Fn(&ArrayRef) -> Result<Option<BooleanArray>>,
) -> Result<Option<ColumnarValue>> {
    if let Some(out) = test(values)? {
        return Ok(Some(ColumnarValue::Array(Arc::new(out))));
    }
    Ok(by_distinct_value(values, test)?.map(ColumnarValue::Array))
}

/// A test of each row of a dictionary column, made by `test` on the
/// dictionary's values (each distinct value once) and spread to the rows
/// through the keys; `None` when `values` is not a dictionary or `test`
/// does not take its values.
pub(crate) fn by_distinct_value(
    values: &ArrayRef,
    test: impl FnOnce(&ArrayRef) -> Result<Option<BooleanArray>>,
) -> Result<Option<ArrayRef>> {
    let Some(dictionary) = values.as_any_dictionary_opt() else {
        return Ok(None);
    };
    let Some(tested) = test(dictionary.values())? else {
        return Ok(None);
    };
    // A null key, or a key pointing at a null value, gives a null.
    Ok(Some(arrow::compute::take(
        &tested,
        dictionary.keys(),
        None,
    )?))
}

/// DataFusion's own implementation `inner` on `args`, a dictionary first
/// argument unpacked for it first (it takes plain strings only): for the
/// shapes the replacements do not take themselves.
pub(crate) fn datafusion_own(
    inner: &ScalarUDF,
    mut args: ScalarFunctionArgs,
) -> Result<ColumnarValue> {
    unpack_dictionary_argument(&mut args)?;
    inner.invoke_with_args(args)
}

/// Unpacks a dictionary first argument into its values' type.
fn unpack_dictionary_argument(args: &mut ScalarFunctionArgs) -> Result<()> {
    if let Some(ColumnarValue::Array(values)) = args.args.first()
        && let DataType::Dictionary(_, value_type) = values.data_type()
    {
        let value_type = value_type.as_ref().clone();
        let unpacked = arrow::compute::cast(values, &value_type)?;
        let nullable = args.arg_fields.first().is_none_or(|f| f.is_nullable());
        if let Some(first) = args.args.first_mut() {
            *first = ColumnarValue::Array(unpacked);
        }
        if let Some(field) = args.arg_fields.first_mut() {
            *field = Arc::new(Field::new(field.name(), value_type, nullable));
        }
    }
    Ok(())
}

/// For the functions' tests: SQL run on a one-column table `t(c)`.
#[cfg(test)]
pub(crate) mod testing {
    use std::sync::Arc;

    use arrow::array::{ArrayRef, AsArray, RecordBatch, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};
    use datafusion::prelude::SessionContext;

    /// The booleans `sql` gives on a table `t` whose column `c` holds `rows`.
    pub(crate) async fn run(
        ctx: &SessionContext,
        sql: &str,
        rows: &[Option<&str>],
    ) -> Vec<Option<bool>> {
        let schema = Arc::new(Schema::new(vec![Field::new("c", DataType::Utf8, true)]));
        let column: ArrayRef = Arc::new(StringArray::from(rows.to_vec()));
        let batch = RecordBatch::try_new(schema, vec![column]).unwrap();
        let _ = ctx.deregister_table("t");
        ctx.register_batch("t", batch).unwrap();
        let frames = ctx.sql(sql).await.unwrap().collect().await.unwrap();
        let mut out = Vec::new();
        for b in frames {
            out.extend(b.column(0).as_boolean().iter());
        }
        out
    }

    /// Runs `f` to completion on a runtime of its own.
    pub(crate) fn block_on<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(f)
    }
}
