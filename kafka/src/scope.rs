//! Which rules a partition's engine can run exactly, and how the others are
//! rekeyed.
//!
//! Events are keyed by principal, so every event of one principal is on one
//! partition of the event topic. A rule whose state (window groups,
//! sequence keys, baseline keys) *and* dedup key both contain the principal
//! column only ever combines rows of one principal: the partition's own
//! engine runs it exactly ([`Scope::Principal`]). Any other rule combines
//! rows of several principals (a window grouped by `source_ip`, a
//! correlation whose link joins a gateway user with a role session, a
//! `rare` baseline across the organisation, dedup by account): the
//! partition engine only evaluates its `where` and forwards the matching
//! rows to the rekeyed topic keyed by the rule's state key
//! ([`Scope::Rekeyed`]), and the engine owning that partition of the
//! rekeyed topic holds the rule's state.
//!
//! The state key of a rekeyed rule is chosen so that every row that can
//! meet another in the rule's state or dedup has the same key:
//! the columns common to the state key and the dedup key ([`RekeyBy::Columns`]);
//! the correlation link for `correlate:` rules (they dedup by link,
//! [`RekeyBy::Link`]); or, when the two share no column or the state key is
//! computed, the rule id itself ([`RekeyBy::Whole`]: exact, but the rule
//! then runs on one partition).

use arrow::array::RecordBatch;
use trailhound_core::event_schema;
use trailhound_core::schema::columns;
use trailhound_rules::CompiledRule;
use trailhound_rules::baseline::{BaselineKind, Part};
use trailhound_rules::compile::Stateful;

/// Where a rule's state lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Per principal: the engine of the event partition runs it.
    Principal,
    /// Across principals: rows are forwarded to the rekeyed topic.
    Rekeyed(RekeyBy),
}

/// The key rows of a rekeyed rule are forwarded under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RekeyBy {
    /// The values of these columns (indexes in the event schema).
    Columns(Vec<usize>),
    /// The correlation's link value.
    Link,
    /// One key for the whole rule (the rule id).
    Whole,
}

impl RekeyBy {
    /// A short description for logs and `docs`.
    pub fn describe(&self) -> String {
        match self {
            RekeyBy::Columns(cols) => {
                let schema = event_schema();
                let names: Vec<&str> = cols
                    .iter()
                    .filter_map(|c| schema.fields().get(*c).map(|f| f.name().as_str()))
                    .collect();
                names.join(",")
            }
            RekeyBy::Link => "link".to_string(),
            RekeyBy::Whole => "rule".to_string(),
        }
    }
}

/// Classifies one rule (see the module page).
pub fn scope_of(rule: &CompiledRule) -> Scope {
    let principal = event_schema().index_of(columns::PRINCIPAL).ok();
    let has_principal = |cols: &[usize]| principal.is_some_and(|p| cols.contains(&p));
    let dedup = rule.dedup_columns();
    let state: Option<Vec<usize>> = match &rule.stateful {
        Stateful::None => None,
        Stateful::Window(w) => Some(w.group_by.clone()),
        Stateful::Sequence(s) => Some(s.by.clone()),
        Stateful::Baseline(b) => {
            if b.kind == BaselineKind::Rare {
                // Holders of a value are counted across the organisation.
                return Scope::Rekeyed(RekeyBy::Whole);
            }
            // Only plain columns: a derived part (a network, a product
            // token, SQL) is not a column rows agree on.
            Some(
                b.by.iter()
                    .filter_map(|(_, part)| match part {
                        Part::Column(c) => Some(*c),
                        _ => None,
                    })
                    .collect(),
            )
        }
        Stateful::Correlate(_) => return Scope::Rekeyed(RekeyBy::Link),
    };
    match state {
        None if has_principal(dedup) => Scope::Principal,
        None if dedup.is_empty() => Scope::Rekeyed(RekeyBy::Whole),
        None => Scope::Rekeyed(RekeyBy::Columns(dedup.to_vec())),
        Some(cols) if has_principal(&cols) && has_principal(dedup) => Scope::Principal,
        Some(cols) => {
            let common: Vec<usize> = cols.iter().copied().filter(|c| dedup.contains(c)).collect();
            if common.is_empty() {
                Scope::Rekeyed(RekeyBy::Whole)
            } else {
                Scope::Rekeyed(RekeyBy::Columns(common))
            }
        }
    }
}

/// A rule run through the rekeyed topic.
#[derive(Debug, Clone)]
pub struct RekeyedRule {
    /// The rule.
    pub rule: CompiledRule,
    /// Its key.
    pub by: RekeyBy,
}

impl RekeyedRule {
    /// The rows of `batch` to forward, with their keys: rows where the
    /// rule's `where` holds and the key is defined.
    pub fn rows_to_forward(&self, batch: &RecordBatch) -> Result<Vec<(usize, String)>, String> {
        let hits = self.rule.evaluate(batch).map_err(|e| e.to_string())?;
        if hits.true_count() == 0 {
            return Ok(Vec::new());
        }
        let link = match (&self.by, self.rule.correlate()) {
            (RekeyBy::Link, Some(spec)) => Some(spec.columns(batch)?),
            _ => None,
        };
        let mut out = Vec::with_capacity(hits.true_count());
        for row in (0..batch.num_rows()).filter(|&r| hits.value(r)) {
            let key = match &self.by {
                RekeyBy::Columns(cols) => {
                    let mut key = String::new();
                    for (i, c) in cols.iter().enumerate() {
                        if i > 0 {
                            key.push('\u{1f}');
                        }
                        if let Some(column) = batch.columns().get(*c) {
                            key.push_str(&trailhound_rules::template::cell_text(
                                column.as_ref(),
                                row,
                            ));
                        }
                    }
                    key
                }
                RekeyBy::Link => {
                    let Some(columns) = link.as_ref() else {
                        continue;
                    };
                    if !(columns.is_first(row) || columns.is_then(row)) {
                        continue;
                    }
                    match columns.link(row) {
                        Some(l) => l,
                        None => continue,
                    }
                }
                RekeyBy::Whole => self.rule.id.clone(),
            };
            out.push((row, key));
        }
        Ok(out)
    }
}

/// A rule set split by scope.
#[derive(Debug, Default)]
pub struct Split {
    /// Rules each event partition's engine runs.
    pub principal: Vec<CompiledRule>,
    /// Rules run through the rekeyed topic.
    pub rekeyed: Vec<RekeyedRule>,
    /// Rules not run over Kafka: those on just-in-time grants (tagged
    /// `grant`), whose grant table needs every grant event while a
    /// partition sees only its principals' (grant events are not broadcast
    /// to the partitions yet); they run in the embedded detector.
    pub left_out: Vec<String>,
}

/// Splits `rules` by [`scope_of`], leaving out the grant rules.
pub fn split(rules: &[CompiledRule]) -> Split {
    let mut out = Split::default();
    for rule in rules {
        if rule.tags.iter().any(|t| t == "grant") {
            out.left_out.push(rule.id.clone());
            continue;
        }
        match scope_of(rule) {
            Scope::Principal => out.principal.push(rule.clone()),
            Scope::Rekeyed(by) => out.rekeyed.push(RekeyedRule {
                rule: rule.clone(),
                by,
            }),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use trailhound_rules::{Compiler, RuleSet, RuleSpec};

    fn compile(yaml: &str) -> CompiledRule {
        let spec: RuleSpec = serde_yaml::from_str(yaml).unwrap();
        Compiler::new().unwrap().compile(spec, None).unwrap()
    }

    const HEAD: &str = "id: r\ntitle: R\nseverity: high\nwhere: \"event_name = 'GetObject'\"\n";

    #[test]
    fn principal_keyed_rules_stay_on_their_partition() {
        assert_eq!(scope_of(&compile(HEAD)), Scope::Principal);
        let w = format!(
            "{HEAD}window: {{group_by: [principal, bucket], size: 5m, having: 'count(*) > 3'}}\n\
             dedup: {{key: [principal, bucket]}}\n"
        );
        assert_eq!(scope_of(&compile(&w)), Scope::Principal);
    }

    #[test]
    fn other_keys_are_rekeyed() {
        let ip = format!(
            "{HEAD}window: {{group_by: [source_ip], size: 5m, having: 'count(*) > 3'}}\n\
             dedup: {{key: [source_ip]}}\n"
        );
        let schema = event_schema();
        let source_ip = schema.index_of("source_ip").unwrap();
        assert_eq!(
            scope_of(&compile(&ip)),
            Scope::Rekeyed(RekeyBy::Columns(vec![source_ip]))
        );
        let account = format!("{HEAD}dedup: {{key: [account_id]}}\n");
        assert!(matches!(
            scope_of(&compile(&account)),
            Scope::Rekeyed(RekeyBy::Columns(_))
        ));
        // Grouped by principal but deduplicated across principals.
        let mixed = format!(
            "{HEAD}window: {{group_by: [principal], size: 5m, having: 'count(*) > 3'}}\n\
             dedup: {{key: [account_id]}}\n"
        );
        assert_eq!(scope_of(&compile(&mixed)), Scope::Rekeyed(RekeyBy::Whole));
    }

    #[test]
    fn the_builtin_pack_splits_and_keys_rows() {
        let rules = RuleSet::builtin().unwrap_or_else(|e| panic!("{:?}", e.errors));
        let split = split(rules.rules());
        assert_eq!(
            split.principal.len() + split.rekeyed.len() + split.left_out.len(),
            rules.rules().len()
        );
        assert!(split.left_out.iter().all(|id| id.starts_with("grant-")));
        assert!(!split.left_out.is_empty());
        let correlate = split
            .rekeyed
            .iter()
            .find(|r| r.rule.correlate().is_some())
            .expect("the pack has a correlation rule");
        assert_eq!(correlate.by, RekeyBy::Link);
        let events = vec![
            trailhound_core::Event {
                source: trailhound_core::Source::Session,
                event_name: "session.command".into(),
                principal: "gateway:alice".into(),
                user_name: Some("alice".into()),
                command: Some("aws iam create-user".into()),
                ..Default::default()
            },
            trailhound_core::Event {
                event_source: "iam.amazonaws.com".into(),
                event_name: "CreateUser".into(),
                read_only: Some(false),
                principal: "arn:aws:iam::1:role/gateway-ops".into(),
                principal_type: "AssumedRole".into(),
                session_name: Some("alice".into()),
                source_identity: Some("alice".into()),
                ..Default::default()
            },
        ];
        let batch = trailhound_core::events_to_batch(&events);
        let rows = correlate.rows_to_forward(&batch).unwrap();
        assert_eq!(rows, vec![(0, "alice".into()), (1, "alice".into())]);
    }
}
