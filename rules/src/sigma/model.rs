//! The Sigma rule file as written: the metadata trailhound keeps and the raw
//! `detection` section, which [`super::to_sql`] reads.

use serde::Deserialize;
use serde_yaml::{Mapping, Value};

/// One Sigma rule. Keys trailhound does not use (`date`, `modified`,
/// `status`, `fields`, custom keys, ...) are accepted and ignored: they do not
/// change what the rule matches.
#[derive(Debug, Clone, Deserialize)]
pub struct SigmaRule {
    /// One line.
    pub title: String,
    /// The rule's UUID.
    #[serde(default)]
    pub id: Option<String>,
    /// Optional unique name.
    #[serde(default)]
    pub name: Option<String>,
    /// `stable`, `test`, `experimental`, `deprecated`, `unsupported`.
    #[serde(default)]
    pub status: Option<String>,
    /// What it catches.
    #[serde(default)]
    pub description: Option<String>,
    /// Links.
    #[serde(default)]
    pub references: Vec<String>,
    /// Who wrote it.
    #[serde(default)]
    pub author: Option<String>,
    /// ATT&CK and other tags.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Which logs it applies to.
    #[serde(default)]
    pub logsource: LogSource,
    /// The detection section: search identifiers and `condition`.
    pub detection: Mapping,
    /// Known benign causes.
    #[serde(default)]
    pub falsepositives: FalsePositives,
    /// `informational`, `low`, `medium`, `high`, `critical`.
    #[serde(default)]
    pub level: Option<String>,
}

/// `falsepositives`: a list, or (in some rules) a single string.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(untagged)]
pub enum FalsePositives {
    /// None given.
    #[default]
    None,
    /// One line.
    One(String),
    /// Several lines.
    Many(Vec<Value>),
}

impl FalsePositives {
    /// The lines, as text.
    pub fn lines(&self) -> Vec<String> {
        match self {
            FalsePositives::None => Vec::new(),
            FalsePositives::One(s) => vec![s.clone()],
            FalsePositives::Many(v) => v.iter().filter_map(scalar_text).collect(),
        }
    }
}

/// The `logsource` section.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct LogSource {
    /// `aws`, `windows`, ...
    #[serde(default)]
    pub product: Option<String>,
    /// `cloudtrail`, ...
    #[serde(default)]
    pub service: Option<String>,
    /// `process_creation`, ...
    #[serde(default)]
    pub category: Option<String>,
}

impl LogSource {
    /// `product/service/category` for messages.
    pub fn describe(&self) -> String {
        let part = |k: &str, v: &Option<String>| v.as_ref().map(|v| format!("{k}: {v}"));
        let parts: Vec<String> = [
            part("product", &self.product),
            part("service", &self.service),
            part("category", &self.category),
        ]
        .into_iter()
        .flatten()
        .collect();
        if parts.is_empty() {
            "an empty logsource".into()
        } else {
            format!("logsource {{{}}}", parts.join(", "))
        }
    }
}

/// A YAML scalar as text (`None` for null, sequences and maps).
pub fn scalar_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// True when a YAML document is a Sigma rule: a mapping with a top-level
/// `detection` key.
pub fn is_sigma(doc: &Value) -> bool {
    doc.as_mapping()
        .is_some_and(|m| m.contains_key(Value::String("detection".into())))
}
