//! Per-batch indexes of the prefilter columns (`event_name`,
//! `event_source`, `source`), so that a rule which can only match a few
//! values of them is skipped on batches without them and otherwise
//! evaluated only on the rows that have them.

use std::collections::{BTreeSet, HashMap};

use arrow::array::{Array, AsArray, BooleanArray, BooleanBufferBuilder, RecordBatch};
use arrow::buffer::BooleanBuffer;
use arrow::compute::filter_record_batch;
use arrow::datatypes::Int32Type;
use trailhound_rules::{CompiledRule, RuleError};

/// One dictionary column of a batch: its keys and where each value is.
struct ColumnIndex<'a> {
    keys: &'a arrow::array::PrimitiveArray<Int32Type>,
    /// Each value's entry; when a value is in the dictionary more than once
    /// (joined batches may hold such), only `values` can tell them all.
    by_value: HashMap<&'a str, usize>,
    repeated: bool,
    values: &'a arrow::array::StringArray,
}

impl<'a> ColumnIndex<'a> {
    fn of(batch: &'a RecordBatch, column: usize) -> Option<Self> {
        let dict = batch
            .columns()
            .get(column)?
            .as_dictionary_opt::<Int32Type>()?;
        let values = dict.values().as_string_opt::<i32>()?;
        let mut by_value = HashMap::with_capacity(values.len());
        let mut repeated = false;
        for (i, v) in values.iter().enumerate() {
            if let Some(v) = v {
                repeated |= by_value.insert(v, i).is_some();
            }
        }
        Some(Self {
            keys: dict.keys(),
            by_value,
            repeated,
            values,
        })
    }

    /// Which dictionary entries are one of `values`; `None` when none is.
    fn wanted(&self, values: &BTreeSet<String>) -> Option<Vec<bool>> {
        let mut wanted = vec![false; self.values.len()];
        let mut any = false;
        if self.repeated {
            for (w, v) in wanted.iter_mut().zip(self.values.iter()) {
                *w = v.is_some_and(|v| values.contains(v));
                any |= *w;
            }
            return any.then_some(wanted);
        }
        for v in values {
            if let Some(&i) = self.by_value.get(v.as_str())
                && let Some(w) = wanted.get_mut(i)
            {
                *w = true;
                any = true;
            }
        }
        any.then_some(wanted)
    }
}

/// The prefilter columns of one batch, indexed.
pub struct ValueIndex<'a> {
    columns: Vec<(usize, ColumnIndex<'a>)>,
    rows: usize,
}

impl<'a> ValueIndex<'a> {
    /// Indexes `columns` of `batch` (those that are dictionary-encoded, as
    /// the prefilter columns are in the event schema).
    pub fn of(batch: &'a RecordBatch, columns: &[usize]) -> Self {
        Self {
            columns: columns
                .iter()
                .filter_map(|&c| Some((c, ColumnIndex::of(batch, c)?)))
                .collect(),
            rows: batch.num_rows(),
        }
    }

    /// Whether no row of the batch can hold what `required` asks: some
    /// listed column has none of its values. A cheaper, weaker test than
    /// the selection: rows could still fail to hold all of it at once.
    pub fn cannot_match(&self, required: &[(usize, BTreeSet<String>)]) -> bool {
        required.iter().any(|(column, values)| {
            self.columns
                .iter()
                .find(|(c, _)| c == column)
                .is_some_and(|(_, index)| index.wanted(values).is_none())
        })
    }

    /// The rows holding what `required` asks (every listed column one of
    /// its values): `Narrowed::None` when no row does, `Narrowed::All` when
    /// every row does or nothing can be told (a column not indexed).
    fn selection(&self, required: &[(usize, BTreeSet<String>)]) -> Narrowed {
        let mut selected: Option<BooleanBuffer> = None;
        for (column, values) in required {
            let Some((_, index)) = self.columns.iter().find(|(c, _)| c == column) else {
                continue;
            };
            let Some(wanted) = index.wanted(values) else {
                return Narrowed::None;
            };
            // Every value of the dictionary wanted (a trail's batch and
            // `source = 'cloudtrail'`): every row with one passes.
            if index.keys.null_count() == 0 && wanted.iter().all(|w| *w) {
                continue;
            }
            let keys = index.keys.values();
            let nulls = index.keys.nulls();
            let rows = BooleanBuffer::collect_bool(self.rows, |row| {
                nulls.is_none_or(|n| n.is_valid(row))
                    && keys
                        .get(row)
                        .and_then(|&k| usize::try_from(k).ok())
                        .and_then(|k| wanted.get(k).copied())
                        .unwrap_or(false)
            });
            selected = Some(match selected {
                Some(before) => &before & &rows,
                None => rows,
            });
        }
        let Some(selected) = selected else {
            return Narrowed::All;
        };
        match selected.count_set_bits() {
            0 => Narrowed::None,
            n if n == self.rows => Narrowed::All,
            _ => Narrowed::Rows(selected),
        }
    }
}

/// Whether some row of column `col` may hold one of `values`: false only
/// when none does (for a dictionary column, when none of them is in its
/// dictionary). A quick way to pass over a batch that cannot concern a
/// feature (gateway links, grants) without reading its rows.
pub(crate) fn may_hold(batch: &RecordBatch, col: usize, values: &[&str]) -> bool {
    let Some(a) = batch.columns().get(col) else {
        return false;
    };
    if let Some(d) = a.as_dictionary_opt::<Int32Type>()
        && let Some(dictionary) = d.values().as_string_opt::<i32>()
    {
        return dictionary.iter().flatten().any(|v| values.contains(&v));
    }
    (0..batch.num_rows())
        .any(|row| crate::engine::str_at(a.as_ref(), row).is_some_and(|v| values.contains(&v)))
}

/// The rows a rule can match in a batch.
enum Narrowed {
    None,
    All,
    Rows(BooleanBuffer),
}

/// Outcome of evaluating a rule's `where` on a batch.
pub enum Hits {
    /// The rule cannot match any row of this batch: not evaluated.
    Skipped,
    /// Per-row verdicts over the whole batch.
    Rows(BooleanArray),
}

/// Evaluates `rule` on `batch`, skipping it or narrowing it to the rows
/// with the values it requires ([`CompiledRule::required`]).
pub fn evaluate(
    rule: &CompiledRule,
    batch: &RecordBatch,
    index: &ValueIndex<'_>,
) -> Result<Hits, RuleError> {
    let selection = match index.selection(rule.required()) {
        Narrowed::None => return Ok(Hits::Skipped),
        Narrowed::All => return rule.evaluate(batch).map(Hits::Rows),
        Narrowed::Rows(selection) => selection,
    };
    // Only the columns the rule reads are copied for the selected rows.
    let sub = filter_record_batch(
        &rule.project(batch)?,
        &BooleanArray::new(selection.clone(), None),
    )
    .map_err(|e| rule.eval_error(e.to_string()))?;
    let sub_hits = rule.evaluate_projected(&sub)?;
    // The verdicts back in place: the j-th selected row takes the j-th.
    let mut out = BooleanBufferBuilder::new(batch.num_rows());
    out.append_n(batch.num_rows(), false);
    for (j, row) in selection.set_indices().enumerate() {
        if j < sub_hits.len() && sub_hits.value(j) {
            out.set_bit(row, true);
        }
    }
    Ok(Hits::Rows(BooleanArray::new(out.finish(), None)))
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
        let index = ValueIndex::of(&batch, &[column()]);
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
        let index = ValueIndex::of(&batch, &[column()]);
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

    #[test]
    fn a_value_repeated_in_the_dictionary_is_found_at_every_entry() {
        // Joined batches hold each part's dictionary: `StopLogging` twice.
        // (Arrow's join keeps both while the dictionaries are shorter than
        // the rows.)
        let stop = || ev("StopLogging", "1.1.1.1");
        let first = events_to_batch(&[stop(), ev("ListUsers", "1.1.1.1"), stop()]);
        let second = events_to_batch(&[ev("DeleteTrail", "2.2.2.2"), stop(), stop()]);
        let batch = arrow::compute::concat_batches(&event_schema(), [&first, &second]).unwrap();
        let names = batch.column(column()).as_dictionary::<Int32Type>();
        let repeated = names.values().as_string::<i32>();
        assert_eq!(
            repeated
                .iter()
                .filter(|v| *v == Some("StopLogging"))
                .count(),
            2,
            "the test needs a repeated value"
        );
        let index = ValueIndex::of(&batch, &[column()]);
        let r = rule("event_name = 'StopLogging' AND source_ip = '1.1.1.1'");
        let Hits::Rows(narrowed) = evaluate(&r, &batch, &index).unwrap() else {
            panic!("skipped a batch that has the name");
        };
        assert_eq!(narrowed, r.evaluate(&batch).unwrap());
        assert_eq!(
            narrowed.iter().collect::<Vec<_>>(),
            [
                Some(true),
                Some(false),
                Some(true),
                Some(false),
                Some(true),
                Some(true)
            ]
        );
    }

    #[test]
    fn sources_and_services_narrow_rules_as_names_do() {
        let schema = event_schema();
        let columns = ["event_name", "event_source", "source"].map(|c| schema.index_of(c).unwrap());
        let call = |name: &str, service: &str, ip: &str| Event {
            event_source: service.into(),
            ..ev(name, ip)
        };
        let batch = events_to_batch(&[
            call("GetObject", "s3.amazonaws.com", "1.1.1.1"),
            call("ListUsers", "iam.amazonaws.com", "1.1.1.1"),
            call("PutObject", "s3.amazonaws.com", "2.2.2.2"),
        ]);
        let index = ValueIndex::of(&batch, &columns);
        // A gateway rule on a batch of AWS calls: skipped.
        let gateway = rule("source = 'session' AND regexp_like(command, 'x')");
        assert!(matches!(
            evaluate(&gateway, &batch, &index).unwrap(),
            Hits::Skipped
        ));
        // A service rule: evaluated on the service's rows, same verdicts.
        let s3 = rule("event_source = 's3.amazonaws.com' AND source_ip = '1.1.1.1'");
        let Hits::Rows(narrowed) = evaluate(&s3, &batch, &index).unwrap() else {
            panic!("skipped a batch that has the service");
        };
        assert_eq!(narrowed, s3.evaluate(&batch).unwrap());
        assert_eq!(
            narrowed.iter().collect::<Vec<_>>(),
            [Some(true), Some(false), Some(false)]
        );
        // Both a name and a service required: rows must have both.
        let both = rule("event_source = 's3.amazonaws.com' AND event_name = 'ListUsers'");
        assert!(matches!(
            evaluate(&both, &batch, &index).unwrap(),
            Hits::Skipped
        ));
        // The weaker test (for sequence steps) only looks at each column.
        assert!(index.cannot_match(gateway.required()));
        assert!(!index.cannot_match(both.required()));
        assert!(!index.cannot_match(s3.required()));
        assert!(!index.cannot_match(&[]));
    }

    #[test]
    fn a_value_is_found_in_a_dictionary_or_plain_column_only_when_a_row_has_it() {
        let trail = Event {
            source: trailhound_core::Source::Cloudtrail,
            event_id: "a".into(),
            ..Default::default()
        };
        let gateway = Event {
            source: trailhound_core::Source::Session,
            event_id: "b".into(),
            ..Default::default()
        };
        let schema = event_schema();
        let source = schema.index_of("source").unwrap();
        let event_id = schema.index_of("event_id").unwrap();
        let only_trail = events_to_batch(&[trail.clone(), trail.clone()]);
        assert!(!may_hold(&only_trail, source, &["session"]));
        assert!(may_hold(&only_trail, source, &["cloudtrail"]));
        let both = events_to_batch(&[trail, gateway]);
        assert!(may_hold(&both, source, &["x", "session"]));
        // event_id is a plain text column.
        assert!(may_hold(&both, event_id, &["b"]));
        assert!(!may_hold(&both, event_id, &["c"]));
        assert!(!may_hold(&both, 999, &["b"]));
    }
}
