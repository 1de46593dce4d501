//! Evidence templates: `"{principal} stopped trail {request.name}"`.
//!
//! `{column}` is any column of the event model; `{request.a.b}`,
//! `{response.x}` and `{extra.y.z}` reach into the JSON text columns.
//! Templates are checked when the rule is compiled and rendered only for rows
//! that matched, so they cost nothing on the hot path.

use arrow::array::{Array, RecordBatch};
use arrow::datatypes::Schema;
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
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Text(t) => out.push_str(t),
                Part::Column(c) => out.push_str(&column_text(batch, *c, row)),
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
    if row >= array.len() || array.is_null(row) {
        return "-".to_string();
    }
    array_value_to_string(array, row).unwrap_or_else(|_| "-".to_string())
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
    fn refuses_unknown_columns_and_unclosed_braces() {
        assert!(Template::parse("{nope}", &event_schema()).is_err());
        assert!(Template::parse("{principal", &event_schema()).is_err());
        assert!(Template::parse("{principal.x}", &event_schema()).is_err());
    }
}
