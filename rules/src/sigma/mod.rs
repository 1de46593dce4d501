//! Native Sigma rules.
//!
//! A user rule file whose YAML has a top-level `detection` key is a Sigma
//! rule. [`convert`] turns it into a [`RuleSpec`] whose `where` is a SQL
//! boolean expression (so `rules list` shows what runs), and the rule then
//! compiles like any other.
//!
//! - id: `sigma-` + the file stem (`sigma-aws_root_account_usage`); the Sigma
//!   UUID, author, status and false positives go into the description;
//! - `level` becomes the severity (`medium` when the rule has none);
//! - `tags` and `references` are kept;
//! - only `logsource` product `aws` (service `cloudtrail` or none) is accepted;
//!   field names are CloudTrail's own, mapped as [`fields`] describes;
//! - the detection is converted by [`to_sql`]: maps AND their fields, lists OR
//!   their items, value lists are ORed (`|all`: ANDed), `null` is absence,
//!   and the modifiers `contains`, `startswith`, `endswith`, `all`, `re`
//!   (with `i`, `m`, `s`), `cidr`, `exists`, `fieldref`, `base64`,
//!   `base64offset`, `wide`/`utf16le`/`utf16be`/`utf16` (before a base64),
//!   `windash`, `gt`, `gte`, `lt`, `lte`, `cased` and `expand` (with
//!   placeholder values from [`SigmaConfig`]) are supported;
//! - conditions: `and`, `or`, `not`, parentheses, `1 of x*`, `all of x*`,
//!   `N of x*`, `1 of them`, `all of them`; aggregations (`|`), `near` and
//!   `timeframe` are refused.
//!
//! Whatever cannot be converted is refused with the rule's id and file, the
//! field and the feature; nothing is dropped silently. `cidr` needs the
//! `sigma_cidr_match` function in the compiler's session ([`register`]).

pub mod cidr;
pub mod condition;
pub mod fields;
pub mod model;
pub mod modifiers;
pub mod to_sql;

use std::collections::BTreeMap;
use std::path::Path;

use datafusion::prelude::SessionContext;
use serde_yaml::{Mapping, Value};

use crate::error::RuleError;
use crate::rule::RuleSpec;
pub use model::{SigmaRule, is_sigma};

/// Settings for Sigma conversion.
#[derive(Debug, Clone, Default)]
pub struct SigmaConfig {
    /// Values of `%name%` placeholders for the `expand` modifier. Without an
    /// entry, a rule using `expand` on that placeholder is refused.
    pub placeholders: BTreeMap<String, Vec<String>>,
}

/// Registers the functions Sigma rules need (`sigma_cidr_match`) in a
/// DataFusion session. The rule compiler's session must call this.
pub fn register(ctx: &mut SessionContext) {
    cidr::register(ctx);
}

/// True when `text` is YAML whose top level has a `detection` key.
pub fn is_sigma_text(text: &str) -> bool {
    serde_yaml::from_str::<Value>(text).is_ok_and(|v| is_sigma(&v))
}

/// The rule id of a Sigma file: `sigma-` + the file stem.
pub fn rule_id(file: &Path) -> String {
    let stem = file
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "rule".into());
    format!("sigma-{stem}")
}

/// Converts the Sigma rule in `text` (read from `file`) into a rule spec.
/// Errors name the rule id, the file and what is not supported.
pub fn convert(text: &str, file: &Path, config: &SigmaConfig) -> Result<RuleSpec, RuleError> {
    let id = rule_id(file);
    let invalid = |reason: String| RuleError::Invalid {
        id: id.clone(),
        file: Some(file.to_path_buf()),
        reason: format!("Sigma rule: {reason}"),
    };
    let rule: SigmaRule = serde_yaml::from_str(text).map_err(|e| RuleError::Yaml {
        file: file.display().to_string(),
        reason: format!("not a valid Sigma rule: {e}"),
    })?;
    to_spec(&rule, &id, config).map_err(invalid)
}

/// Converts a parsed Sigma rule under the given id.
pub fn to_spec(rule: &SigmaRule, id: &str, config: &SigmaConfig) -> Result<RuleSpec, String> {
    let product = rule.logsource.product.as_deref().unwrap_or("");
    let service_ok = matches!(rule.logsource.service.as_deref(), None | Some("cloudtrail"));
    if !product.eq_ignore_ascii_case("aws") || !service_ok || rule.logsource.category.is_some() {
        return Err(format!(
            "{} is not supported: only product aws (service cloudtrail) is",
            rule.logsource.describe()
        ));
    }
    let predicate = to_sql::detection_sql(&rule.detection, &config.placeholders)?;
    let severity = match rule.level.as_deref().map(str::to_ascii_lowercase) {
        None => "medium".to_string(),
        Some(l) if ["informational", "low", "medium", "high", "critical"].contains(&l.as_str()) => {
            l
        }
        Some(l) => return Err(format!("level {l:?} is not a Sigma level")),
    };

    let mut description = rule
        .description
        .clone()
        .unwrap_or_default()
        .trim()
        .to_string();
    let mut notes = Vec::new();
    let fps = rule.falsepositives.lines();
    if !fps.is_empty() {
        notes.push(format!("False positives: {}", fps.join("; ")));
    }
    if let Some(a) = &rule.author {
        notes.push(format!("Author: {a}"));
    }
    let mut origin = String::from("Sigma rule");
    if let Some(u) = &rule.id {
        origin.push_str(&format!(" {u}"));
    }
    if let Some(n) = &rule.name {
        origin.push_str(&format!(" ({n})"));
    }
    if let Some(s) = &rule.status {
        origin.push_str(&format!(", status {s}"));
    }
    notes.push(origin);
    for n in notes {
        if !description.is_empty() {
            description.push_str("\n\n");
        }
        description.push_str(&n);
    }

    // Built through the rule file's own deserializer, so that the spec gets
    // the same defaults as a YAML rule.
    let mut m = Mapping::new();
    let s = |v: &str| Value::String(v.to_string());
    let list = |v: &[String]| Value::Sequence(v.iter().map(|x| s(x)).collect());
    m.insert(s("id"), s(id));
    m.insert(s("title"), s(&rule.title));
    m.insert(s("description"), s(&description));
    m.insert(s("severity"), s(&severity));
    m.insert(s("tags"), list(&rule.tags));
    m.insert(s("references"), list(&rule.references));
    m.insert(s("where"), s(&predicate));
    serde_yaml::from_value(Value::Mapping(m)).map_err(|e| format!("building the rule: {e}"))
}
