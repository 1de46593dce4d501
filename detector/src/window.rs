//! Window state: per rule, per group key, per bin of event time.
//!
//! A bin is `slide` long (or `size` for tumbling windows) and holds the count,
//! the bounded distinct sets, sums, minima and maxima of the rows that fell in
//! it. A window is `size / slide` consecutive bins; it closes when the
//! watermark (newest event time minus the allowed lateness) passes its end,
//! or at [`crate::Engine::flush`]. Closed windows of a rule are gathered into
//! one small `RecordBatch` of aggregates and the rule's compiled `having` runs
//! on it once. Bins no open window can use any more are dropped, and a group
//! with no bins left is forgotten, so state never outlives a window plus the
//! lateness.
//!
//! Group keys and distinct values are names a sender chooses, so their
//! tables are hashed with keys drawn at random per process, as std's are;
//! with aHash ([`Keyed`]), which costs a fraction of std's SipHash on the
//! short strings these are.

use std::borrow::{Borrow, Cow};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, Float64Array, Int64Array, RecordBatch, RecordBatchOptions,
};
use arrow::datatypes::{DataType, Float64Type, Int64Type};
use trailhound_core::time::format_micros;
use trailhound_rules::window::{AggKind, CompiledWindow, DISTINCT_CAP};

use trailhound_rules::template::TextColumn;

use crate::engine::{Candidate, MAX_EVENT_IDS};

/// The hasher of the window tables: aHash, keyed at random per process.
type Keyed = ahash::RandomState;

/// What one row adds to a window: the parts of the row the state keeps.
pub(crate) struct RowInfo<'a> {
    /// The columns of the window's aggregates in this batch, in order
    /// ([`AggColumns::of`]).
    pub columns: &'a AggColumns<'a>,
    pub row: usize,
    pub time: i64,
}

/// A batch's columns of a window's aggregates, each resolved once for the
/// batch's rows; `None` for `count(*)` and a column the batch lacks.
pub(crate) struct AggColumns<'a>(Vec<Option<TextColumn<'a>>>);

impl<'a> AggColumns<'a> {
    pub fn of(window: &CompiledWindow, batch: &'a RecordBatch) -> Self {
        Self(
            window
                .aggregates
                .iter()
                .map(|a| Some(TextColumn::of(batch.columns().get(a.column?)?.as_ref())))
                .collect(),
        )
    }

    fn get(&self, i: usize) -> Option<&TextColumn<'a>> {
        self.0.get(i).and_then(Option::as_ref)
    }
}

/// Values captured once when a group is first seen.
#[derive(serde::Serialize, serde::Deserialize)]
pub(crate) struct GroupMeta {
    pub principal: String,
    pub account: Option<String>,
    pub dedup_key: Vec<String>,
}

#[derive(Debug, serde::Serialize, serde::Deserialize)]
enum Acc {
    Count(u64),
    Distinct {
        set: HashSet<String, Keyed>,
        capped: bool,
    },
    Numeric {
        sum: f64,
        min: f64,
        max: f64,
        n: u64,
    },
}

#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Bin {
    count: u64,
    first_time: i64,
    last_time: i64,
    event_ids: Vec<String>,
    evidence: Option<String>,
    accs: Vec<Acc>,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Group {
    bins: Bins,
    meta: GroupMeta,
}

/// A group's bins by index, in order. A group holds a few bins at a time
/// (a window's worth plus the lateness) and rows nearly always go to the
/// newest, so a vector searched from its end beats a tree. Serialised as
/// the map it stands for.
#[derive(Default)]
struct Bins(Vec<(i64, Bin)>);

impl Bins {
    /// The bin at `index`, made with `new` when there is none.
    fn entry(&mut self, index: i64, new: impl FnOnce() -> Bin) -> &mut Bin {
        // Where `index` is or belongs: after every bin before it.
        let at = self
            .0
            .iter()
            .rposition(|(b, _)| *b <= index)
            .map_or(0, |i| i + 1);
        let found = at > 0 && self.0.get(at - 1).is_some_and(|(b, _)| *b == index);
        let at = if found {
            at - 1
        } else {
            self.0.insert(at, (index, new()));
            at
        };
        // `at` is in bounds: it was found or just inserted.
        &mut self.0[at].1
    }

    /// The bins with indices in `from..to`, in order.
    fn range(&self, from: i64, to: i64) -> &[(i64, Bin)] {
        let start = self.0.partition_point(|(b, _)| *b < from);
        let end = self.0.partition_point(|(b, _)| *b < to).max(start);
        self.0.get(start..end).unwrap_or_default()
    }

    fn last_index(&self) -> Option<i64> {
        self.0.last().map(|(b, _)| *b)
    }

    /// Drops the bins with indices up to `last`.
    fn drop_through(&mut self, last: i64) {
        let keep = self.0.partition_point(|(b, _)| *b <= last);
        self.0.drain(..keep);
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl serde::Serialize for Bins {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.0.iter().map(|(b, bin)| (b, bin)))
    }
}

impl<'de> serde::Deserialize<'de> for Bins {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let map = BTreeMap::<i64, Bin>::deserialize(deserializer)?;
        Ok(Self(map.into_iter().collect()))
    }
}

/// A group's key as stored: the values of the rule's `group_by` columns.
/// Serialised as the list it holds.
#[derive(Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
struct GroupKey(Vec<String>);

/// A group key seen either way: stored ([`GroupKey`]) or as a row holds it
/// (borrowed from the batch). Both hash and compare alike, so a row finds
/// its group without building an owned key; one is built only for a new
/// group.
trait KeyParts {
    fn count(&self) -> usize;
    fn part(&self, i: usize) -> &str;
}

impl KeyParts for Vec<String> {
    fn count(&self) -> usize {
        self.len()
    }
    fn part(&self, i: usize) -> &str {
        self.get(i).map_or("", String::as_str)
    }
}

/// The key columns' values of one row.
struct RowKey<'k>(&'k [Cow<'k, str>]);

impl KeyParts for RowKey<'_> {
    fn count(&self) -> usize {
        self.0.len()
    }
    fn part(&self, i: usize) -> &str {
        self.0.get(i).map_or("", |p| p.as_ref())
    }
}

impl Hash for dyn KeyParts + '_ {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_usize(self.count());
        for i in 0..self.count() {
            self.part(i).hash(state);
        }
    }
}

impl PartialEq for dyn KeyParts + '_ {
    fn eq(&self, other: &Self) -> bool {
        self.count() == other.count() && (0..self.count()).all(|i| self.part(i) == other.part(i))
    }
}

impl Eq for dyn KeyParts + '_ {}

impl Hash for GroupKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        (&self.0 as &dyn KeyParts).hash(state);
    }
}

impl<'a> Borrow<dyn KeyParts + 'a> for GroupKey {
    fn borrow(&self) -> &(dyn KeyParts + 'a) {
        &self.0
    }
}

/// The open windows of one window rule.
#[derive(Default, serde::Serialize, serde::Deserialize)]
pub struct WindowState {
    groups: HashMap<GroupKey, Group, Keyed>,
    /// Window start bins up to this one have been evaluated.
    closed_through: Option<i64>,
    late_dropped: u64,
}

/// One aggregate's value for a closed window.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Value {
    Int(i64),
    Float(Option<f64>),
}

impl WindowState {
    /// Groups with open bins.
    pub fn groups(&self) -> usize {
        self.groups.len()
    }

    /// Rows that came after every window they belong to had closed.
    pub fn late_dropped(&self) -> u64 {
        self.late_dropped
    }

    /// Adds one row (already past `where` and suppress) to its group's bin:
    /// `key` holds the row's values of the `group_by` columns. `meta` and
    /// `evidence` are called only when a group or bin is new.
    pub(crate) fn add(
        &mut self,
        window: &CompiledWindow,
        key: &[Cow<'_, str>],
        info: &RowInfo<'_>,
        event_id: Option<&str>,
        meta: impl FnOnce() -> GroupMeta,
        evidence: impl FnOnce() -> Option<String>,
    ) {
        let bin_index = info.time.div_euclid(window.slide_micros);
        if self.closed_through.is_some_and(|c| bin_index <= c) {
            // Every window this row belongs to has closed already.
            self.late_dropped += 1;
            return;
        }
        let group = match self.groups.get_mut(&RowKey(key) as &dyn KeyParts) {
            Some(group) => group,
            None => self
                .groups
                .entry(GroupKey(
                    key.iter().map(|p| p.as_ref().to_owned()).collect(),
                ))
                .or_insert_with(|| Group {
                    bins: Bins::default(),
                    meta: meta(),
                }),
        };
        let bin = group.bins.entry(bin_index, || Bin {
            count: 0,
            first_time: info.time,
            last_time: info.time,
            event_ids: Vec::new(),
            evidence: evidence(),
            accs: window
                .aggregates
                .iter()
                .map(|a| match a.kind {
                    AggKind::CountStar | AggKind::Count => Acc::Count(0),
                    AggKind::CountDistinct => Acc::Distinct {
                        set: HashSet::default(),
                        capped: false,
                    },
                    _ => Acc::Numeric {
                        sum: 0.0,
                        min: f64::INFINITY,
                        max: f64::NEG_INFINITY,
                        n: 0,
                    },
                })
                .collect(),
        });
        bin.count += 1;
        bin.first_time = bin.first_time.min(info.time);
        bin.last_time = bin.last_time.max(info.time);
        if bin.event_ids.len() < MAX_EVENT_IDS
            && let Some(id) = event_id
        {
            bin.event_ids.push(id.to_string());
        }
        for (i, acc) in bin.accs.iter_mut().enumerate() {
            let column = info.columns.get(i);
            match acc {
                Acc::Count(n) => {
                    if column.is_none_or(|c| c.array().is_valid(info.row)) {
                        *n += 1;
                    }
                }
                Acc::Distinct { set, capped } => {
                    let Some(c) = column else { continue };
                    if !c.array().is_valid(info.row) {
                        continue;
                    }
                    match c.get(info.row) {
                        Some(s) => {
                            if !set.contains(s) {
                                if set.len() >= DISTINCT_CAP {
                                    *capped = true;
                                } else {
                                    set.insert(s.to_string());
                                }
                            }
                        }
                        None => {
                            let s = trailhound_rules::template::cell_text(c.array(), info.row);
                            if !set.contains(&s) {
                                if set.len() >= DISTINCT_CAP {
                                    *capped = true;
                                } else {
                                    set.insert(s);
                                }
                            }
                        }
                    }
                }
                Acc::Numeric { sum, min, max, n } => {
                    let Some(v) = column.and_then(|c| number_at(c.array(), info.row)) else {
                        continue;
                    };
                    *sum += v;
                    *min = min.min(v);
                    *max = max.max(v);
                    *n += 1;
                }
            }
        }
    }

    /// Closes every window whose end is at or before `watermark` (`None`:
    /// every window, at the end of input), evaluates `having` on them and
    /// returns the alert candidates of those where it holds.
    pub(crate) fn close(
        &mut self,
        rule_id: &str,
        window: &CompiledWindow,
        watermark: Option<i64>,
    ) -> Result<Vec<Candidate>, String> {
        let n = window.bins_per_window();
        let last = match watermark {
            Some(w) => w.div_euclid(window.slide_micros) - n,
            None => match self
                .groups
                .values()
                .filter_map(|g| g.bins.last_index())
                .max()
            {
                Some(m) => m,
                None => return Ok(Vec::new()),
            },
        };
        if self.closed_through.is_some_and(|c| last <= c) {
            return Ok(Vec::new());
        }
        let from = self.closed_through.map(|c| c + 1);
        self.closed_through = Some(last);

        // (group key, group, window start bin) of every window closing now
        // with rows in it.
        let mut closing: Vec<(&GroupKey, &Group, i64)> = Vec::new();
        for (key, group) in &self.groups {
            // The starts of the windows holding each bin, in order and each
            // once: bins come in order, so a start already given is below
            // `next`.
            let mut next = from.unwrap_or(i64::MIN);
            for &(b, _) in group.bins.range(i64::MIN, last + n) {
                let lo = (b - n + 1).max(next);
                let hi = b.min(last);
                if lo <= hi {
                    closing.extend((lo..=hi).map(|k| (key, group, k)));
                    next = hi + 1;
                }
            }
        }
        let mut out = Vec::new();
        if !closing.is_empty() {
            let mut columns: Vec<Vec<Value>> = vec![Vec::new(); window.aggregates.len()];
            let mut capped_flags: Vec<Vec<bool>> = Vec::with_capacity(closing.len());
            for (_, group, k) in &closing {
                let (values, capped) = merge(window, group.bins.range(*k, *k + n));
                for (col, v) in columns.iter_mut().zip(values) {
                    col.push(v);
                }
                capped_flags.push(capped);
            }
            let arrays: Vec<ArrayRef> = window
                .aggregates
                .iter()
                .zip(&columns)
                .map(|(a, col)| -> ArrayRef {
                    if a.kind.is_count() {
                        Arc::new(Int64Array::from_iter_values(col.iter().map(|v| match v {
                            Value::Int(i) => *i,
                            Value::Float(_) => 0,
                        })))
                    } else {
                        Arc::new(Float64Array::from_iter(col.iter().map(|v| match v {
                            Value::Float(f) => *f,
                            Value::Int(i) => Some(*i as f64),
                        })))
                    }
                })
                .collect();
            let batch = RecordBatch::try_new_with_options(
                window.having_schema().clone(),
                arrays,
                &RecordBatchOptions::new().with_row_count(Some(closing.len())),
            )
            .map_err(|e| e.to_string())?;
            let verdict = window.evaluate_having(&batch)?;
            for (i, (key, group, k)) in closing.iter().enumerate() {
                if !verdict.value(i) {
                    continue;
                }
                let bins: Vec<&Bin> = group
                    .bins
                    .range(*k, *k + n)
                    .iter()
                    .map(|(_, b)| b)
                    .collect();
                let start = k.saturating_mul(window.slide_micros);
                let end = start.saturating_add(window.size_micros);
                let values: Vec<Value> = columns.iter().filter_map(|c| c.get(i).copied()).collect();
                let capped = capped_flags.get(i).cloned().unwrap_or_default();
                let mut evidence = format!("{}: ", key.0.join(", "));
                for (j, (a, v)) in window.aggregates.iter().zip(&values).enumerate() {
                    if j > 0 {
                        evidence.push_str(", ");
                    }
                    if capped.get(j).copied().unwrap_or(false) {
                        evidence.push_str(&format!(
                            "{}>={} (capped at {DISTINCT_CAP} values)",
                            a.label,
                            show(v)
                        ));
                    } else {
                        evidence.push_str(&format!("{}={}", a.label, show(v)));
                    }
                }
                evidence.push_str(&format!(
                    " in {} ending {}",
                    window.size_text,
                    format_micros(end)
                ));
                if let Some(t) = bins.iter().find_map(|b| b.evidence.as_deref()) {
                    evidence = format!("{t}; {evidence}");
                }
                let mut event_ids = Vec::new();
                for b in &bins {
                    for id in &b.event_ids {
                        if event_ids.len() < MAX_EVENT_IDS {
                            event_ids.push(id.clone());
                        }
                    }
                }
                out.push(Candidate {
                    rule_id: rule_id.to_string(),
                    key: key.0.clone(),
                    id_time: start,
                    principal: group.meta.principal.clone(),
                    account: group.meta.account.clone(),
                    dedup_key: group.meta.dedup_key.clone(),
                    first_event_time: bins.iter().map(|b| b.first_time).min().unwrap_or(start),
                    last_event_time: bins.iter().map(|b| b.last_time).max().unwrap_or(start),
                    event_ids,
                    event_count: bins.iter().map(|b| b.count).sum(),
                    evidence,
                });
            }
        }
        // Drop bins no open window can use, and groups left empty.
        for group in self.groups.values_mut() {
            group.bins.drop_through(last);
        }
        self.groups.retain(|_, g| !g.bins.is_empty());
        Ok(out)
    }
}

fn merge(window: &CompiledWindow, bins: &[(i64, Bin)]) -> (Vec<Value>, Vec<bool>) {
    let bins = || bins.iter().map(|(_, b)| b);
    let mut values = Vec::with_capacity(window.aggregates.len());
    let mut capped = Vec::with_capacity(window.aggregates.len());
    for (j, agg) in window.aggregates.iter().enumerate() {
        let accs = bins().filter_map(|b| b.accs.get(j));
        let (value, cap) = match agg.kind {
            AggKind::CountStar => (Value::Int(to_i64(bins().map(|b| b.count).sum())), false),
            AggKind::Count => (
                Value::Int(to_i64(
                    accs.map(|a| match a {
                        Acc::Count(n) => *n,
                        _ => 0,
                    })
                    .sum(),
                )),
                false,
            ),
            AggKind::CountDistinct => {
                let sets: Vec<(&HashSet<String, Keyed>, bool)> = accs
                    .filter_map(|a| match a {
                        Acc::Distinct { set, capped } => Some((set, *capped)),
                        _ => None,
                    })
                    .filter(|(set, capped)| *capped || !set.is_empty())
                    .collect();
                if let [(set, capped)] = sets[..] {
                    // One bin holds all the values: no union to build.
                    (Value::Int(to_i64(set.len() as u64)), capped)
                } else {
                    let mut union: HashSet<&str, Keyed> = HashSet::default();
                    let mut cap = false;
                    for (set, capped) in sets {
                        cap |= capped;
                        for s in set {
                            if union.len() >= DISTINCT_CAP {
                                if !union.contains(s.as_str()) {
                                    cap = true;
                                }
                            } else {
                                union.insert(s);
                            }
                        }
                    }
                    (Value::Int(to_i64(union.len() as u64)), cap)
                }
            }
            kind => {
                let (mut sum, mut min, mut max, mut n) =
                    (0.0f64, f64::INFINITY, f64::NEG_INFINITY, 0u64);
                for a in accs {
                    if let Acc::Numeric {
                        sum: s,
                        min: lo,
                        max: hi,
                        n: c,
                    } = a
                    {
                        sum += s;
                        min = min.min(*lo);
                        max = max.max(*hi);
                        n += c;
                    }
                }
                let v = (n > 0).then(|| match kind {
                    AggKind::Sum => sum,
                    AggKind::Min => min,
                    AggKind::Max => max,
                    _ => sum / n as f64,
                });
                (Value::Float(v), false)
            }
        };
        values.push(value);
        capped.push(cap);
    }
    (values, capped)
}

fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn show(v: &Value) -> String {
    match v {
        Value::Int(i) => i.to_string(),
        Value::Float(None) => "NULL".to_string(),
        Value::Float(Some(f)) if f.fract() == 0.0 && f.abs() < 1e15 => format!("{}", *f as i64),
        Value::Float(Some(f)) => format!("{f:.2}"),
    }
}

fn number_at(column: &dyn Array, row: usize) -> Option<f64> {
    if row >= column.len() || !column.is_valid(row) {
        return None;
    }
    match column.data_type() {
        DataType::Int64 => Some(column.as_primitive::<Int64Type>().value(row) as f64),
        DataType::Float64 => Some(column.as_primitive::<Float64Type>().value(row)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::Engine;
    use crate::engine::test_support::{MIN, at, ev, process, rules};
    use trailhound_core::Event;

    fn window_rule(having: &str, slide: Option<&str>) -> String {
        let slide = slide.map(|s| format!("  slide: {s}\n")).unwrap_or_default();
        format!(
            "id: w\ntitle: W\nseverity: high\nwhere: \"event_name = 'GetObject'\"\n\
             window:\n  group_by: [principal]\n  size: 10m\n{slide}  having: \"{having}\"\n  show: [\"sum(bytes_out)\"]\n"
        )
    }

    fn get(minutes: f64, id: &str, principal: &str, key: &str) -> Event {
        Event {
            object_key: Some(key.into()),
            bytes_out: Some(100),
            ..ev(minutes, id, "GetObject", principal)
        }
    }

    fn three(start: f64, step: f64) -> Vec<Event> {
        (0..3)
            .map(|i| {
                let t = start + step * i as f64;
                get(t, &format!("e{i}"), "p", &format!("k{i}"))
            })
            .collect()
    }

    #[test]
    fn tumbling_bins_are_aligned_to_the_size() {
        let mut e = Engine::new(rules(&window_rule("count(*) >= 3", None)));
        assert!(process(&mut e, &three(1.0, 1.0)).is_empty());
        let alerts = e.flush().unwrap();
        assert_eq!(alerts.len(), 1);
        assert_eq!(alerts[0].event_ids, ["e0", "e1", "e2"]);
        assert_eq!(alerts[0].event_count, 3);
        assert!(
            alerts[0].evidence.starts_with(
                "p: count(*)=3, sum(bytes_out)=300 in 10m ending 2026-11-02T10:10:00Z"
            ),
            "{}",
            alerts[0].evidence
        );
        // 10:08, 10:09, 10:11 straddle the 10:10 boundary: no tumbling window has three.
        let mut e = Engine::new(rules(&window_rule("count(*) >= 3", None)));
        process(
            &mut e,
            &[
                get(8.0, "a", "p", "x"),
                get(9.0, "b", "p", "y"),
                get(11.0, "c", "p", "z"),
            ],
        );
        assert!(e.flush().unwrap().is_empty());
    }

    #[test]
    fn sliding_windows_catch_a_burst_across_a_boundary() {
        let mut e = Engine::new(rules(&window_rule("count(*) >= 3", Some("1m"))));
        process(
            &mut e,
            &[
                get(8.0, "a", "p", "x"),
                get(9.0, "b", "p", "y"),
                get(11.0, "c", "p", "z"),
            ],
        );
        let alerts = e.flush().unwrap();
        // Every window holding all three is one incident: dedup folds them.
        assert_eq!(alerts.len(), 1, "{alerts:?}");
        assert_eq!(alerts[0].event_count, 3);
    }

    #[test]
    fn a_window_closes_when_the_watermark_passes_its_end() {
        let mut e = Engine::new(rules(&window_rule("count(*) >= 3", None))).with_lateness(5 * MIN);
        assert!(process(&mut e, &three(1.0, 1.0)).is_empty());
        // Newest 10:14, watermark 10:09: the 10:00-10:10 window is still open.
        assert!(process(&mut e, &[get(14.0, "q", "other", "k")]).is_empty());
        // Newest 10:16, watermark 10:11: it closes now, without a flush.
        let alerts = process(&mut e, &[get(16.0, "r", "other", "k")]);
        assert_eq!(alerts.len(), 1);
        assert_eq!(alerts[0].principal, "p");
        assert_eq!(e.watermark(), Some(at(11.0)));
    }

    #[test]
    fn late_events_count_while_their_window_is_open_and_are_dropped_after() {
        let mut e = Engine::new(rules(&window_rule("count(*) >= 3", None)));
        process(&mut e, &[get(1.0, "a", "p", "x"), get(12.0, "b", "p", "y")]);
        // Out of order but within the lateness: still counts.
        process(&mut e, &[get(5.0, "c", "p", "z"), get(6.0, "d", "p", "w")]);
        let alerts = process(&mut e, &[get(40.0, "z", "other", "k")]);
        assert_eq!(alerts.len(), 1);
        assert_eq!(alerts[0].event_count, 3);
        // The 10:00 window has closed: a row for it now is dropped as too late.
        process(&mut e, &[get(2.0, "late", "p", "v")]);
        assert_eq!(e.late_dropped(), 1);
    }

    #[test]
    fn distinct_sets_are_capped_and_the_evidence_says_so() {
        let mut e = Engine::new(rules(&window_rule(
            "count(DISTINCT object_key) >= 10000",
            None,
        )));
        let events: Vec<Event> = (0..DISTINCT_CAP + 5)
            .map(|i| get(1.0, &format!("e{i}"), "p", &format!("key-{i}")))
            .collect();
        process(&mut e, &events);
        let alerts = e.flush().unwrap();
        assert_eq!(alerts.len(), 1);
        assert!(
            alerts[0]
                .evidence
                .contains("count(DISTINCT object_key)>=10000 (capped at 10000 values)"),
            "{}",
            alerts[0].evidence
        );
        assert_eq!(alerts[0].event_count, (DISTINCT_CAP + 5) as u64);
        assert_eq!(alerts[0].event_ids.len(), crate::engine::MAX_EVENT_IDS);
    }

    #[test]
    fn closed_windows_leave_no_state_and_ids_are_stable() {
        let run = || {
            let mut e = Engine::new(rules(&window_rule("count(*) >= 3", None)));
            process(&mut e, &three(1.0, 1.0));
            let mut alerts = process(&mut e, &[get(45.0, "z", "other", "k")]);
            assert_eq!(e.state_size(), 1, "only the newest group is left");
            alerts.extend(e.flush().unwrap());
            assert_eq!(e.state_size(), 0);
            alerts
        };
        let (a, b) = (run(), run());
        assert_eq!(a.len(), 1);
        assert_eq!(a[0].alert_id, b[0].alert_id);
    }

    fn bin(count: u64) -> Bin {
        Bin {
            count,
            first_time: 0,
            last_time: 0,
            event_ids: Vec::new(),
            evidence: None,
            accs: Vec::new(),
        }
    }

    #[test]
    fn bins_stay_in_order_and_serialise_as_the_map_they_stand_for() {
        let mut bins = Bins::default();
        for (index, count) in [(5, 1), (3, 2), (9, 3), (5, 10), (-2, 4), (7, 5)] {
            bins.entry(index, || bin(0)).count += count;
        }
        let indices = |b: &Bins| b.0.iter().map(|(i, b)| (*i, b.count)).collect::<Vec<_>>();
        assert_eq!(indices(&bins), [(-2, 4), (3, 2), (5, 11), (7, 5), (9, 3)]);
        let counts = |r: &[(i64, Bin)]| r.iter().map(|(_, b)| b.count).collect::<Vec<_>>();
        assert_eq!(counts(bins.range(3, 8)), [2, 11, 5]);
        assert_eq!(counts(bins.range(4, 5)), Vec::<u64>::new());
        assert_eq!(counts(bins.range(8, 3)), Vec::<u64>::new());
        assert_eq!(bins.last_index(), Some(9));

        // The same bytes as the tree the checkpoints held before.
        let tree: BTreeMap<i64, Bin> = bins.0.iter().map(|(i, b)| (*i, bin(b.count))).collect();
        let bytes = postcard::to_allocvec(&bins).unwrap();
        assert_eq!(bytes, postcard::to_allocvec(&tree).unwrap());
        let back: Bins = postcard::from_bytes(&bytes).unwrap();
        assert_eq!(indices(&back), indices(&bins));

        bins.drop_through(5);
        assert_eq!(indices(&bins), [(7, 5), (9, 3)]);
        bins.drop_through(9);
        assert!(bins.is_empty());
    }

    #[test]
    fn having_below_threshold_does_not_alert() {
        let mut e = Engine::new(rules(&window_rule("count(DISTINCT object_key) >= 3", None)));
        process(
            &mut e,
            &[
                get(1.0, "a", "p", "x"),
                get(2.0, "b", "p", "x"),
                get(3.0, "c", "p", "y"),
            ],
        );
        assert!(e.flush().unwrap().is_empty());
    }
}
