//! Evidence templates: `"{principal} stopped trail {request.name}"`.
//!
//! `{column}` is any column of the event model; `{request.a.b}`,
//! `{response.x}` and `{extra.y.z}` reach into the JSON text columns.
//! Templates are checked when the rule is compiled and rendered only for rows
//! that matched, so they cost nothing on the hot path.

use arrow::array::{Array, AsArray, Int32Array, RecordBatch, StringArray};
use arrow::datatypes::{Int32Type, Schema};
use arrow::util::display::array_value_to_string;

#[derive(Debug, Clone)]
enum Part {
    Text(String),
    Column(usize),
    Json { column: usize, path: Vec<String> },
}

/// A parsed evidence template.
#[derive(Debug, Clone)]
pub struct Template {
    parts: Vec<Part>,
}

const JSON_COLUMNS: [&str; 3] = ["request", "response", "extra"];

impl Template {
    /// Parses a template, checking every placeholder against the schema.
    pub fn parse(text: &str, schema: &Schema) -> Result<Self, String> {
        let mut parts = Vec::new();
        let mut rest = text;
        while let Some(open) = rest.find('{') {
            if open > 0 {
                parts.push(Part::Text(rest[..open].to_string()));
            }
            let after = &rest[open + 1..];
            let close = after
                .find('}')
                .ok_or_else(|| format!("evidence template has an unclosed '{{': {text:?}"))?;
            let name = after[..close].trim();
            let mut segments = name.split('.');
            let head = segments.next().unwrap_or_default();
            let column = schema
                .index_of(head)
                .map_err(|_| format!("evidence template names {head:?}, which is not a column"))?;
            let path: Vec<String> = segments.map(str::to_string).collect();
            if path.is_empty() {
                parts.push(Part::Column(column));
            } else if JSON_COLUMNS.contains(&head) {
                parts.push(Part::Json { column, path });
            } else {
                return Err(format!(
                    "evidence template {{{name}}}: only request, response and extra have fields"
                ));
            }
            rest = &after[close + 1..];
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.to_string()));
        }
        Ok(Self { parts })
    }

    /// Fills the template from one row.
    pub fn render(&self, batch: &RecordBatch, row: usize) -> String {
        let mut out = String::with_capacity(128);
        for part in &self.parts {
            match part {
                Part::Text(t) => out.push_str(t),
                Part::Column(c) => match batch.columns().get(*c) {
                    Some(column) => push_cell(&mut out, column.as_ref(), row),
                    None => out.push('-'),
                },
                Part::Json { column, path } => {
                    let text = column_text(batch, *column, row);
                    out.push_str(&json_path_text(&text, path));
                }
            }
        }
        out
    }
}

/// One cell of column `c` as text; `-` for NULL or a column the batch lacks
/// (a grant column of a batch the detector did not enrich).
fn column_text(batch: &RecordBatch, c: usize, row: usize) -> String {
    match batch.columns().get(c) {
        Some(column) => cell_text(column.as_ref(), row),
        None => "-".to_string(),
    }
}

/// One cell as text; `-` for NULL.
pub fn cell_text(array: &dyn Array, row: usize) -> String {
    let mut out = String::new();
    push_cell(&mut out, array, row);
    out
}

/// [`cell_text`], appended to `out`. Text cells (the event columns are
/// `Utf8` or dictionaries of it) are copied as they are; other types go
/// through Arrow's display formatting.
fn push_cell(out: &mut String, array: &dyn Array, row: usize) {
    if row >= array.len() || array.is_null(row) {
        out.push('-');
    } else if let Some(text) = text_cell(array, row) {
        out.push_str(text);
    } else {
        match array_value_to_string(array, row) {
            Ok(text) => out.push_str(&text),
            Err(_) => out.push('-'),
        }
    }
}

/// A cell of a `Utf8` column or of a dictionary of `Utf8` values, borrowed
/// without allocating; `None` for NULL, a row past the end, any other type,
/// and a dictionary key pointing at a null or missing value.
pub fn text_cell(array: &dyn Array, row: usize) -> Option<&str> {
    if row >= array.len() || array.is_null(row) {
        return None;
    }
    if let Some(strings) = array.as_string_opt::<i32>() {
        return Some(strings.value(row));
    }
    let dictionary = array.as_dictionary_opt::<Int32Type>()?;
    let key = usize::try_from(dictionary.keys().values().get(row).copied()?).ok()?;
    let values = dictionary.values().as_string_opt::<i32>()?;
    (key < values.len() && values.is_valid(key)).then(|| values.value(key))
}

/// A column read as [`text_cell`] reads it, its type resolved once: a
/// caller reading many rows of one batch pays no type test per row.
#[derive(Clone, Copy)]
pub struct TextColumn<'a> {
    array: &'a dyn Array,
    reading: Reading<'a>,
}

#[derive(Clone, Copy)]
enum Reading<'a> {
    /// A `Utf8` column.
    Text(&'a StringArray),
    /// A dictionary of `Utf8` values: the rows' keys and the values.
    Dictionary(&'a Int32Array, &'a StringArray),
    /// Any other column: [`text_cell`] row by row.
    Other,
}

impl<'a> TextColumn<'a> {
    /// The column's reading.
    pub fn of(array: &'a dyn Array) -> Self {
        let reading = if let Some(text) = array.as_string_opt::<i32>() {
            Reading::Text(text)
        } else if let Some(dictionary) = array.as_dictionary_opt::<Int32Type>()
            && let Some(values) = dictionary.values().as_string_opt::<i32>()
        {
            Reading::Dictionary(dictionary.keys(), values)
        } else {
            Reading::Other
        };
        Self { array, reading }
    }

    /// The column itself, for what is not read as text (numbers, the
    /// display of other types).
    pub fn array(&self) -> &'a dyn Array {
        self.array
    }

    /// Whether the row is NULL (or past the end), as [`Array::is_null`]
    /// says for the column.
    #[inline]
    pub fn is_null(&self, row: usize) -> bool {
        match self.reading {
            Reading::Text(text) => row >= text.len() || text.is_null(row),
            Reading::Dictionary(keys, _) => row >= keys.len() || keys.is_null(row),
            Reading::Other => row >= self.array.len() || self.array.is_null(row),
        }
    }

    /// The row's text, exactly as [`text_cell`] gives it.
    #[inline]
    pub fn get(&self, row: usize) -> Option<&'a str> {
        match self.reading {
            Reading::Text(text) => (!self.is_null(row)).then(|| text.value(row)),
            Reading::Dictionary(keys, values) => {
                if self.is_null(row) {
                    return None;
                }
                let key = usize::try_from(keys.values().get(row).copied()?).ok()?;
                (key < values.len() && values.is_valid(key)).then(|| values.value(key))
            }
            Reading::Other => text_cell(self.array, row),
        }
    }
}

fn json_path_text(json: &str, path: &[String]) -> String {
    let Ok(mut value) = serde_json::from_str::<serde_json::Value>(json) else {
        return "-".to_string();
    };
    for key in path {
        value = match value {
            serde_json::Value::Object(mut map) => map.remove(key.as_str()).unwrap_or_default(),
            serde_json::Value::Array(mut items) => match key.parse::<usize>() {
                Ok(i) if i < items.len() => items.swap_remove(i),
                _ => serde_json::Value::Null,
            },
            _ => serde_json::Value::Null,
        };
    }
    match value {
        serde_json::Value::Null => "-".to_string(),
        serde_json::Value::String(s) => s,
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use trailhound_core::{Event, event_schema, events_to_batch};

    /// Every row of every shape reads as `text_cell` reads it.
    #[test]
    fn a_resolved_column_reads_every_row_as_text_cell_does() {
        use arrow::array::{ArrayRef, DictionaryArray, Int64Array};
        use std::sync::Arc;
        let text: ArrayRef = Arc::new(StringArray::from(vec![
            Some("a"),
            None,
            Some(""),
            Some("b"),
        ]));
        let values = StringArray::from(vec![Some("x"), None, Some("y")]);
        let keys = Int32Array::from(vec![Some(0), None, Some(1), Some(2), Some(0)]);
        let dictionary: ArrayRef = Arc::new(DictionaryArray::new(keys, Arc::new(values)));
        let numbers: ArrayRef = Arc::new(Int64Array::from(vec![Some(1), None]));
        for array in [text, dictionary, numbers] {
            let column = TextColumn::of(array.as_ref());
            for row in 0..array.len() + 2 {
                assert_eq!(column.get(row), text_cell(array.as_ref(), row), "row {row}");
                assert_eq!(
                    column.is_null(row),
                    row >= array.len() || array.is_null(row),
                    "row {row}"
                );
            }
        }
    }

    #[test]
    fn renders_columns_and_json_paths() {
        let e = Event {
            principal: "arn:aws:iam::1:user/mallory".into(),
            event_name: "StopLogging".into(),
            request: Some(r#"{"name":"main","tags":[{"k":"v"}]}"#.into()),
            ..Default::default()
        };
        let batch = events_to_batch(&[e]);
        let t = Template::parse(
            "{principal} ran {event_name} on {request.name} ({request.tags.0.k}) from {source_ip}",
            &event_schema(),
        )
        .unwrap();
        assert_eq!(
            t.render(&batch, 0),
            "arn:aws:iam::1:user/mallory ran StopLogging on main (v) from -"
        );
    }

    #[test]
    fn text_cells_read_as_arrow_formats_them() {
        use arrow::array::{DictionaryArray, Int64Array, StringArray};
        use arrow::util::display::array_value_to_string;
        let strings = StringArray::from(vec![Some("a b"), None, Some("")]);
        let values = StringArray::from(vec![Some("x"), None]);
        let dictionary = DictionaryArray::<Int32Type>::try_new(
            arrow::array::Int32Array::from(vec![Some(0), Some(1), None, Some(0)]),
            std::sync::Arc::new(values),
        )
        .unwrap();
        let numbers = Int64Array::from(vec![Some(-7), None]);
        let arrays: [&dyn Array; 3] = [&strings, &dictionary, &numbers];
        for array in arrays {
            for row in 0..array.len() + 1 {
                let expected = if row >= array.len() || array.is_null(row) {
                    "-".to_string()
                } else {
                    array_value_to_string(array, row).unwrap()
                };
                assert_eq!(cell_text(array, row), expected, "{array:?} row {row}");
            }
        }
        assert_eq!(cell_text(&dictionary, 3), "x");
    }

    #[test]
    fn refuses_unknown_columns_and_unclosed_braces() {
        assert!(Template::parse("{nope}", &event_schema()).is_err());
        assert!(Template::parse("{principal", &event_schema()).is_err());
        assert!(Template::parse("{principal.x}", &event_schema()).is_err());
    }
}
