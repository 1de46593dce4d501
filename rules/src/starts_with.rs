//! `starts_with` kept as a function.
//!
//! DataFusion simplifies `starts_with(value, 'prefix')` into
//! `value LIKE 'prefix%'`, with `%`, `_` and `\` in the prefix escaped. Two
//! costs follow for a rule engine, which evaluates the same expression on
//! every batch: a dictionary column (`user_name`, `event_name`, ...) is
//! first unpacked into one string per row for the `LIKE`, and a prefix
//! holding an escaped character (`'AWSReservedSSO_'`) makes Arrow build a
//! regular expression for the pattern on every call. The profile put about
//! 2 % of a detect run in that regex building.
//!
//! This function replaces DataFusion's under the same name with the same
//! results and no such rewrite. A column of strings against a constant
//! prefix goes to Arrow's `starts_with` kernel (a byte comparison per row);
//! a dictionary column is tested once per distinct value. Every other shape
//! goes to DataFusion's own implementation.

use std::sync::Arc;

use arrow::array::{ArrayRef, BooleanArray, LargeStringArray, StringArray, StringViewArray};
use arrow::datatypes::DataType;
use datafusion::common::{Result, plan_err};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use datafusion::prelude::SessionContext;

use crate::udf::{constant, datafusion_own, is_string, on_strings};

/// Registers this `starts_with` in place of DataFusion's.
pub fn register(ctx: &mut SessionContext) {
    ctx.register_udf(ScalarUDF::new_from_impl(StartsWith::new()));
}

/// `starts_with` without the rewrite into `LIKE` (module docs).
#[derive(Debug)]
pub struct StartsWith {
    inner: Arc<ScalarUDF>,
    /// Argument types are decided by [`ScalarUDFImpl::coerce_types`], so
    /// that a dictionary column reaches the function as it is.
    signature: Signature,
}

impl StartsWith {
    /// The function.
    pub fn new() -> Self {
        Self {
            inner: datafusion::functions::string::starts_with(),
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

crate::udf::same_by_name!(StartsWith);

/// Each value of a column of strings tested for `prefix` (null stays null);
/// `None` when the column is not of strings.
fn test_column(values: &ArrayRef, prefix: &str) -> Result<Option<BooleanArray>> {
    use arrow::compute::kernels::comparison::starts_with;
    Ok(Some(match values.data_type() {
        DataType::Utf8 => starts_with(values, &StringArray::new_scalar(prefix))?,
        DataType::LargeUtf8 => starts_with(values, &LargeStringArray::new_scalar(prefix))?,
        DataType::Utf8View => starts_with(values, &StringViewArray::new_scalar(prefix))?,
        _ => return Ok(None),
    }))
}

impl ScalarUDFImpl for StartsWith {
    fn name(&self) -> &str {
        "starts_with"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    /// The value as a string type, or a dictionary of strings as it is; the
    /// prefix as the value's string type (a null as a null string);
    /// anything else is refused, as DataFusion refuses it.
    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        let [value, prefix] = arg_types else {
            return plan_err!(
                "starts_with takes 2 arguments (value, prefix), not {}",
                arg_types.len()
            );
        };
        let text = match value {
            t if is_string(t) => t.clone(),
            DataType::Null => DataType::Utf8,
            DataType::Dictionary(_, v) if is_string(v) => v.as_ref().clone(),
            other => return plan_err!("starts_with: argument 1 is {other}, not a string"),
        };
        let prefix_is_text = match prefix {
            DataType::Dictionary(_, v) => is_string(v),
            t => is_string(t) || *t == DataType::Null,
        };
        if !prefix_is_text {
            return plan_err!("starts_with: argument 2 is {prefix}, not a string");
        }
        let value = match value {
            DataType::Dictionary(..) => value.clone(),
            _ => text.clone(),
        };
        Ok(vec![value, text])
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Boolean)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        if let [ColumnarValue::Array(values), prefix] = args.args.as_slice()
            && let Some(Some(prefix)) = constant(prefix)
            && let Some(out) = on_strings(values, |v| test_column(v, prefix))?
        {
            return Ok(out);
        }
        datafusion_own(&self.inner, args)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn run(ctx: &SessionContext, sql: &str) -> Vec<Option<bool>> {
        crate::udf::testing::run(
            ctx,
            sql,
            &[
                Some("AWSReservedSSO_Admin_1234"),
                Some("AWSReservedSSOXAdmin"),
                None,
                Some("50%_off"),
                Some("a\\b"),
                Some(""),
                Some("AWSReservedSSO_Admin_1234"),
            ],
        )
        .await
    }

    #[test]
    fn gives_datafusions_results_for_every_shape() {
        crate::udf::testing::block_on(same_results())
    }

    async fn same_results() {
        let plain = SessionContext::new();
        let mut kept = SessionContext::new();
        register(&mut kept);
        for sql in [
            // LIKE's wildcards and escape in a prefix are plain characters.
            "SELECT starts_with(c, 'AWSReservedSSO_') FROM t",
            "SELECT starts_with(c, '50%') FROM t",
            "SELECT starts_with(c, 'a\\') FROM t",
            "SELECT starts_with(c, '') FROM t",
            "SELECT starts_with(c, NULL) FROM t",
            "SELECT starts_with(c, c) FROM t",
            "SELECT starts_with('AWS', 'A') FROM t",
            "SELECT starts_with(arrow_cast(c, 'Utf8View'), 'AWS') FROM t",
            "SELECT starts_with(arrow_cast(c, 'LargeUtf8'), 'AWS') FROM t",
            "SELECT starts_with(arrow_cast(c, 'Dictionary(Int32, Utf8)'), 'AWSReservedSSO_') FROM t",
            "SELECT starts_with(arrow_cast(c, 'Dictionary(Int32, Utf8)'), c) FROM t",
            "SELECT starts_with(arrow_cast(c, 'Dictionary(Int32, Utf8)'), NULL) FROM t",
            "SELECT starts_with(c, arrow_cast('AWS', 'Dictionary(Int32, Utf8)')) FROM t",
            "SELECT NOT starts_with(c, 'AWS') FROM t",
        ] {
            assert_eq!(run(&kept, sql).await, run(&plain, sql).await, "{sql}");
        }
        assert_eq!(
            run(&kept, "SELECT starts_with(c, 'AWSReservedSSO_') FROM t").await,
            [
                Some(true),
                Some(false),
                None,
                Some(false),
                Some(false),
                Some(false),
                Some(true)
            ]
        );
    }

    #[test]
    fn a_dictionary_column_is_taken_as_it_is_and_no_like_is_planned() {
        let f = StartsWith::new();
        let dictionary = DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8));
        assert_eq!(
            f.coerce_types(&[dictionary.clone(), DataType::Utf8])
                .unwrap(),
            [dictionary.clone(), DataType::Utf8]
        );
        assert_eq!(
            f.coerce_types(&[DataType::Utf8View, DataType::Null])
                .unwrap(),
            [DataType::Utf8View, DataType::Utf8View]
        );
        assert_eq!(
            f.coerce_types(&[DataType::Utf8, dictionary]).unwrap(),
            [DataType::Utf8, DataType::Utf8]
        );
        assert!(f.coerce_types(&[DataType::Int64, DataType::Utf8]).is_err());
        assert!(f.coerce_types(&[DataType::Utf8, DataType::Int64]).is_err());
        assert!(f.coerce_types(&[DataType::Utf8]).is_err());

        // Planned against the event model, the call stays a call on the
        // dictionary column; DataFusion's own becomes a LIKE on a cast.
        let schema = datafusion::common::DFSchema::try_from(
            trailhound_core::event_schema().as_ref().clone(),
        )
        .unwrap();
        let sql = "starts_with(user_name, 'AWSReservedSSO_')";
        let mut kept = SessionContext::new();
        register(&mut kept);
        let planned = crate::compile::plan_expr(&kept, sql, &schema).unwrap();
        let planned = format!("{planned}");
        assert!(planned.starts_with("starts_with(user_name@"), "{planned}");
        let theirs = crate::compile::plan_expr(&SessionContext::new(), sql, &schema).unwrap();
        assert!(format!("{theirs}").contains("LIKE"), "{theirs}");
    }
}
