//! Per-batch event-name index, so that a rule which can only match a few
//! event names is skipped on batches without them and otherwise evaluated
//! only on the rows that have them.

use std::collections::{BTreeSet, HashMap};

use arrow::array::{Array, AsArray, BooleanArray, BooleanBuilder, RecordBatch};
use arrow::compute::filter_record_batch;
use arrow::datatypes::Int32Type;
use trailhound_rules::{CompiledRule, RuleError};

/// The distinct event names of one batch and where they are.
pub struct NameIndex<'a> {
    keys: Option<&'a arrow::array::PrimitiveArray<Int32Type>>,
    by_name: HashMap<&'a str, usize>,
    dictionary_len: usize,
}

impl<'a> NameIndex<'a> {
    /// Indexes the event-name column (dictionary-encoded in the event schema).
    pub fn of(batch: &'a RecordBatch, column: usize) -> Self {
        let dict = batch
            .columns()
            .get(column)
            .and_then(|c| c.as_dictionary_opt::<Int32Type>());
        let mut by_name = HashMap::new();
        let mut dictionary_len = 0;
        if let Some(d) = dict
            && let Some(values) = d.values().as_string_opt::<i32>()
        {
            dictionary_len = values.len();
            for (i, v) in values.iter().enumerate() {
                if let Some(v) = v {
                    by_name.insert(v, i);
                }
            }
        }
        Self {
            keys: dict.map(|d| d.keys()),
            by_name,
            dictionary_len,
        }
    }

    /// Rows whose event name is one of `names`; `None` when no row has one.
    fn selection(&self, names: &BTreeSet<String>) -> Option<BooleanArray> {
        let keys = self.keys?;
        let mut wanted = vec![false; self.dictionary_len];
        let mut any = false;
        for n in names {
            if let Some(&i) = self.by_name.get(n.as_str()) {
                wanted[i] = true;
                any = true;
            }
        }
        if !any {
            return None;
        }
        let sel: BooleanArray = keys
            .iter()
            .map(|k| {
                Some(
                    k.and_then(|k| usize::try_from(k).ok())
                        .is_some_and(|k| wanted.get(k).copied().unwrap_or(false)),
                )
            })
            .collect();
        (sel.true_count() > 0).then_some(sel)
    }
}

/// Outcome of evaluating a rule's `where` on a batch.
pub enum Hits {
    /// The rule cannot match any row of this batch: not evaluated.
    Skipped,
    /// Per-row verdicts over the whole batch.
    Rows(BooleanArray),
}

/// Evaluates `rule` on `batch`, skipping it or narrowing it to the rows
/// with its event names when the rule says which names it needs.
pub fn evaluate(
    rule: &CompiledRule,
    batch: &RecordBatch,
    index: &NameIndex<'_>,
) -> Result<Hits, RuleError> {
    let Some(names) = rule.event_names() else {
        return rule.evaluate(batch).map(Hits::Rows);
    };
    if index.keys.is_none() {
        return rule.evaluate(batch).map(Hits::Rows);
    }
    let Some(selection) = index.selection(names) else {
        return Ok(Hits::Skipped);
    };
    if selection.true_count() == batch.num_rows() {
        return rule.evaluate(batch).map(Hits::Rows);
    }
    // Only the columns the rule reads are copied for the selected rows.
    let sub = filter_record_batch(&rule.project(batch)?, &selection)
        .map_err(|e| rule.eval_error(e.to_string()))?;
    let sub_hits = rule.evaluate_projected(&sub)?;
    let mut out = BooleanBuilder::with_capacity(batch.num_rows());
    let mut j = 0;
    for i in 0..batch.num_rows() {
        if selection.value(i) {
            out.append_value(j < sub_hits.len() && sub_hits.value(j));
            j += 1;
        } else {
            out.append_value(false);
        }
    }
    Ok(Hits::Rows(out.finish()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use trailhound_core::{Event, event_schema, events_to_batch};
    use trailhound_rules::{Compiler, RuleSpec};

    fn rule(sql: &str) -> CompiledRule {
        let spec: RuleSpec = serde_yaml::from_str(&format!(
            "id: t\ntitle: T\nseverity: low\nwhere: |\n  {sql}\n"
        ))
        .unwrap();
        Compiler::new().unwrap().compile(spec, None).unwrap()
    }

    fn ev(name: &str, ip: &str) -> Event {
        Event {
            event_name: name.into(),
            source_ip: Some(ip.into()),
            ..Default::default()
        }
    }

    fn column() -> usize {
        event_schema().index_of("event_name").unwrap()
    }

    #[test]
    fn a_rule_whose_names_are_absent_is_skipped() {
        let batch = events_to_batch(&[ev("ListUsers", "1.1.1.1"), ev("GetObject", "2.2.2.2")]);
        let index = NameIndex::of(&batch, column());
        let r = rule("event_name = 'StopLogging'");
        assert!(matches!(
            evaluate(&r, &batch, &index).unwrap(),
            Hits::Skipped
        ));
    }

    #[test]
    fn narrowed_evaluation_gives_the_same_verdicts_as_the_full_one() {
        let events = [
            ev("StopLogging", "1.1.1.1"),
            ev("ListUsers", "1.1.1.1"),
            ev("StopLogging", "2.2.2.2"),
            ev("DeleteTrail", "1.1.1.1"),
        ];
        let batch = events_to_batch(&events);
        let index = NameIndex::of(&batch, column());
        let r = rule("event_name IN ('StopLogging', 'DeleteTrail') AND source_ip = '1.1.1.1'");
        // Only the columns the rule reads are copied for it.
        let at = |name: &str| event_schema().index_of(name).unwrap();
        assert_eq!(r.predicate_columns(), [at("event_name"), at("source_ip")]);
        let full = r.evaluate(&batch).unwrap();
        let Hits::Rows(narrowed) = evaluate(&r, &batch, &index).unwrap() else {
            panic!("skipped a batch that has the names");
        };
        assert_eq!(full, narrowed);
        assert_eq!(
            narrowed.iter().collect::<Vec<_>>(),
            [Some(true), Some(false), Some(false), Some(true)]
        );
    }
}
