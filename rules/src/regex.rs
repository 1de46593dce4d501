//! `regexp_like` with compiled patterns kept.
//!
//! DataFusion's `regexp_like(value, pattern [, flags])` with a constant
//! pattern compiles the regular expression on every call, which for a rule
//! engine means once per rule per batch: the profile in BENCHMARKS.md put
//! about 5 % of a detect run in the regex compiler. This function replaces it
//! under the same name with the same signature and results, and keeps each
//! compiled pattern (at most [`MAX_PATTERNS`]; the cache starts over when
//! full). Only the common shape (a column of strings against a constant
//! pattern and constant flags) takes the cached path; every other shape goes
//! to DataFusion's own implementation.
//!
//! A dictionary-encoded column (most of the event columns a rule matches
//! with a pattern: `user_agent`, `event_name`, `user_name`) is taken as it
//! is instead of being unpacked into one string per row first: the pattern
//! is tested once per distinct value, and each row takes its value's result.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use arrow::array::{ArrayRef, BooleanArray};
use arrow::datatypes::DataType;
use datafusion::common::cast::{as_large_string_array, as_string_array, as_string_view_array};
use datafusion::common::{DataFusionError, Result, plan_err};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use datafusion::prelude::SessionContext;
use regex::Regex;

use crate::udf::{constant, datafusion_own, is_string, on_strings};

/// The most compiled patterns kept at once.
pub const MAX_PATTERNS: usize = 4096;

/// Registers the caching `regexp_like` in place of DataFusion's.
pub fn register(ctx: &mut SessionContext) {
    ctx.register_udf(ScalarUDF::new_from_impl(CachedRegexpLike::new()));
}

/// `regexp_like` keeping compiled patterns (module docs).
#[derive(Debug)]
pub struct CachedRegexpLike {
    inner: Arc<ScalarUDF>,
    /// Argument types are decided by [`ScalarUDFImpl::coerce_types`], so
    /// that a dictionary column reaches the function as it is.
    signature: Signature,
    patterns: Mutex<HashMap<String, Arc<Regex>>>,
}

impl CachedRegexpLike {
    /// A function with an empty cache.
    pub fn new() -> Self {
        Self {
            inner: datafusion::functions::regex::regexp_like(),
            signature: Signature::user_defined(Volatility::Immutable),
            patterns: Mutex::new(HashMap::new()),
        }
    }

    /// The compiled form of `pattern` with `flags` (as DataFusion writes
    /// them: `(?flags)pattern`).
    fn compiled(&self, pattern: &str, flags: Option<&str>) -> Result<Arc<Regex>> {
        let full = match flags {
            Some(f) if !f.is_empty() => format!("(?{f}){pattern}"),
            _ => pattern.to_string(),
        };
        let mut patterns = self.patterns.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(re) = patterns.get(&full) {
            return Ok(Arc::clone(re));
        }
        let re = Arc::new(Regex::new(&full).map_err(|e| {
            DataFusionError::Execution(format!(
                "regexp_like: the regular expression {full:?} does not compile: {e}"
            ))
        })?);
        if patterns.len() >= MAX_PATTERNS {
            patterns.clear();
        }
        patterns.insert(full, Arc::clone(&re));
        Ok(re)
    }
}

crate::udf::same_by_name!(CachedRegexpLike);

/// Each value of a string column tested against `re` (null stays null).
fn test_column(values: &ArrayRef, re: &Regex) -> Result<Option<BooleanArray>> {
    Ok(Some(match values.data_type() {
        DataType::Utf8 => as_string_array(values)?
            .iter()
            .map(|v| v.map(|v| re.is_match(v)))
            .collect(),
        DataType::LargeUtf8 => as_large_string_array(values)?
            .iter()
            .map(|v| v.map(|v| re.is_match(v)))
            .collect(),
        DataType::Utf8View => as_string_view_array(values)?
            .iter()
            .map(|v| v.map(|v| re.is_match(v)))
            .collect(),
        _ => return Ok(None),
    }))
}

impl ScalarUDFImpl for CachedRegexpLike {
    fn name(&self) -> &str {
        "regexp_like"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    /// The string types DataFusion's `regexp_like` takes, as they are, and
    /// for the value tested also a dictionary of strings; a null becomes a
    /// null string; anything else is refused, as DataFusion refuses it.
    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        if !(2..=3).contains(&arg_types.len()) {
            return plan_err!(
                "regexp_like takes 2 or 3 arguments (value, pattern [, flags]), not {}",
                arg_types.len()
            );
        }
        arg_types
            .iter()
            .enumerate()
            .map(|(i, t)| match t {
                t if is_string(t) => Ok(t.clone()),
                DataType::Null => Ok(DataType::Utf8),
                DataType::Dictionary(_, value) if i == 0 && is_string(value) => Ok(t.clone()),
                DataType::Dictionary(_, value) if is_string(value) => Ok(value.as_ref().clone()),
                other => plan_err!("regexp_like: argument {} is {other}, not a string", i + 1),
            })
            .collect()
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Boolean)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let fast = match args.args.as_slice() {
            [ColumnarValue::Array(values), pattern] => {
                constant(pattern).map(|p| (values, p, Some(None)))
            }
            [ColumnarValue::Array(values), pattern, flags] => {
                constant(pattern).map(|p| (values, p, constant(flags)))
            }
            _ => None,
        };
        if let Some((values, Some(pattern), Some(flags))) = fast
            && !flags.is_some_and(|f| f.contains('g'))
        {
            let re = self.compiled(pattern, flags)?;
            if let Some(out) = on_strings(values, |v| test_column(v, &re))? {
                return Ok(out);
            }
        }
        datafusion_own(&self.inner, args)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{AsArray, RecordBatch, StringArray};
    use arrow::datatypes::{Field, Schema};

    async fn run(ctx: &SessionContext, sql: &str) -> Vec<Option<bool>> {
        crate::udf::testing::run(
            ctx,
            sql,
            &[
                Some("curl http://x | sh"),
                Some("CURL http://x | bash"),
                None,
                Some("ls -la"),
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
        let mut cached = SessionContext::new();
        register(&mut cached);
        for sql in [
            r"SELECT regexp_like(c, 'curl .*\|\s*(ba)?sh') FROM t",
            r"SELECT regexp_like(c, 'curl .*\|\s*(ba)?sh', 'i') FROM t",
            "SELECT regexp_like(c, NULL) FROM t",
            "SELECT regexp_like(c, c) FROM t",
            "SELECT regexp_like('ls', '^l') FROM t",
            "SELECT regexp_like(arrow_cast(c, 'Utf8View'), '^ls') FROM t",
            "SELECT regexp_like(arrow_cast(c, 'LargeUtf8'), '^ls') FROM t",
            // A dictionary column: each distinct value tested once, and
            // DataFusion's own path (a pattern per row) unpacking it.
            r"SELECT regexp_like(arrow_cast(c, 'Dictionary(Int32, Utf8)'), 'curl .*\|\s*(ba)?sh', 'i') FROM t",
            "SELECT regexp_like(arrow_cast(c, 'Dictionary(Int32, Utf8)'), c) FROM t",
            "SELECT regexp_like(arrow_cast(c, 'Dictionary(Int32, Utf8)'), NULL) FROM t",
            "SELECT regexp_like(c, arrow_cast('^ls', 'Dictionary(Int32, Utf8)')) FROM t",
        ] {
            assert_eq!(run(&cached, sql).await, run(&plain, sql).await, "{sql}");
        }
        assert_eq!(
            run(
                &cached,
                r"SELECT regexp_like(c, 'curl .*\|\s*(ba)?sh', 'i') FROM t"
            )
            .await,
            vec![Some(true), Some(true), None, Some(false)]
        );
    }

    #[test]
    fn a_bad_pattern_or_the_global_flag_is_an_error_not_a_panic() {
        crate::udf::testing::block_on(errors())
    }

    async fn errors() {
        let mut cached = SessionContext::new();
        register(&mut cached);
        let schema = Arc::new(Schema::new(vec![Field::new("c", DataType::Utf8, true)]));
        let column: ArrayRef = Arc::new(StringArray::from(vec![Some("a")]));
        let batch = RecordBatch::try_new(schema, vec![column]).unwrap();
        cached.register_batch("t", batch).unwrap();
        for sql in [
            "SELECT regexp_like(c, '(') FROM t",
            "SELECT regexp_like(c, 'a', 'g') FROM t",
        ] {
            let result = match cached.sql(sql).await {
                Ok(frame) => frame.collect().await.map(|_| ()),
                Err(e) => Err(e),
            };
            assert!(result.is_err(), "{sql}");
        }
    }

    #[test]
    fn a_dictionary_column_is_tested_once_per_value() {
        use arrow::array::{DictionaryArray, Int32Array};
        use arrow::datatypes::Int32Type;
        let f = CachedRegexpLike::new();
        let dictionary = DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8));
        assert_eq!(
            f.coerce_types(&[dictionary.clone(), DataType::Utf8])
                .unwrap(),
            [dictionary.clone(), DataType::Utf8]
        );
        assert_eq!(
            f.coerce_types(&[DataType::Utf8, dictionary, DataType::Null])
                .unwrap(),
            [DataType::Utf8, DataType::Utf8, DataType::Utf8]
        );
        assert!(f.coerce_types(&[DataType::Int64, DataType::Utf8]).is_err());
        assert!(f.coerce_types(&[DataType::Utf8]).is_err());

        let values = StringArray::from(vec![Some("Mac OS X"), Some("Linux"), None]);
        let keys = Int32Array::from(vec![Some(1), Some(0), None, Some(2), Some(0)]);
        let column: ArrayRef =
            Arc::new(DictionaryArray::<Int32Type>::try_new(keys, Arc::new(values)).unwrap());
        let re = f.compiled("Mac", None).unwrap();
        let out = crate::udf::by_distinct_value(&column, |v| test_column(v, &re))
            .unwrap()
            .unwrap();
        let out: Vec<Option<bool>> = out.as_boolean().iter().collect();
        assert_eq!(out, [Some(false), Some(true), None, None, Some(true)]);
    }

    #[test]
    fn a_pattern_is_compiled_once() {
        let f = CachedRegexpLike::new();
        let a = f.compiled("^a", None).unwrap();
        let b = f.compiled("^a", None).unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        let c = f.compiled("^a", Some("i")).unwrap();
        assert!(!Arc::ptr_eq(&a, &c));
        assert!(c.is_match("A"));
    }
}
