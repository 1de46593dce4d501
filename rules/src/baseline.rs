//! Baseline rules: the `baseline:` block checked and compiled.
//!
//! A baseline learns, per key (the principal by default), what is usual and
//! lets the detector alert on a departure: a value never seen before for the
//! key (`new_value`), an hour of day never or rarely seen (`unusual_hour`), a
//! bin of event time whose count, distinct count or sum is far above the
//! key's usual for that part of the day (`rate`), or a value that fewer than
//! `below` holders across the organisation have ever shown (`rare`). This
//! module says *what* the key, the value and the amount of a row are; the
//! state (sets, counts, histograms, budgets) lives in the detector.
//!
//! A name in `by`, `of` or inside `measure` is a column of the event model,
//! one of the derived values computed here ([`NETWORK`]: the /24 of an IPv4
//! or /48 of an IPv6 `source_ip`; [`USER_AGENT_FAMILY`]: the product token of
//! `user_agent`), or else a SQL expression compiled once like `where`.
//!
//! Keys and values reach the detector as stable 64-bit fingerprints
//! ([`fingerprint`], [`key_fingerprint`]): the same text gives the same
//! number on every machine and in every version, so state can be saved and
//! restored.

use std::cell::Cell;
use std::fmt::Write as _;
use std::net::IpAddr;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, PrimitiveArray, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Int32Type};
use datafusion::common::DFSchema;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::prelude::SessionContext;
use trailhound_core::rule_schema;
use trailhound_core::schema::columns;

use crate::compile::plan_expr;
use crate::rule::{BaselineKindName, BaselineSpec, parse_period_micros};
use crate::template::cell_text;

/// Derived value: the source network of `source_ip` (/24 for IPv4, /48 for IPv6).
pub const NETWORK: &str = "network";
/// Derived value: the product token of `user_agent`, lower-cased.
pub const USER_AGENT_FAMILY: &str = "user_agent_family";
/// Most names in `by` or `of`.
pub const MAX_PARTS: usize = 8;
/// Largest `below` of a `rare` baseline.
pub const MAX_BELOW: u32 = 64;
/// Default `min_history` of `new_value` and `unusual_hour`: events.
pub const DEFAULT_MIN_EVENTS: u64 = 50;
/// Default `min_history` of `rate`: bins with activity.
pub const DEFAULT_MIN_BINS: u64 = 24;
/// Default `factor` of `rate`.
pub const DEFAULT_FACTOR: f64 = 10.0;
/// Default `min_value` of `rate`.
pub const DEFAULT_MIN_VALUE: f64 = 100.0;
/// Default `below` of `rare`.
pub const DEFAULT_BELOW: u32 = 3;

/// What a baseline learns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BaselineKind {
    /// Values seen per key; a value never seen alerts.
    NewValue,
    /// Hours of day seen per key; an hour never or rarely seen alerts.
    UnusualHour,
    /// Per key, the usual value of a bin per part of the day; a bin far
    /// above it alerts as soon as it crosses.
    Rate,
    /// Per value, the holders (keys) that showed it; a value shown by fewer
    /// than `below` holders alerts for each new holder.
    Rare,
}

impl BaselineKind {
    /// The name as written in YAML (`new_value`, ...).
    pub fn name(self) -> &'static str {
        match self {
            BaselineKind::NewValue => "new_value",
            BaselineKind::UnusualHour => "unusual_hour",
            BaselineKind::Rate => "rate",
            BaselineKind::Rare => "rare",
        }
    }
}

/// What a `rate` bin measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Measure {
    /// Rows.
    Count,
    /// Distinct values of the baseline's `of` part.
    CountDistinct,
    /// The sum of a numeric column or expression ([`BaselineColumns::amount`]).
    Sum,
}

/// Where one part of a key or value comes from.
#[derive(Debug, Clone)]
pub enum Part {
    /// A column of the event model, by index.
    Column(usize),
    /// [`NETWORK`] of the `source_ip` column at this index.
    Network(usize),
    /// [`USER_AGENT_FAMILY`] of the `user_agent` column at this index.
    UserAgentFamily(usize),
    /// A SQL expression, compiled once.
    Expr(Arc<dyn PhysicalExpr>),
}

/// A compiled `baseline:` block.
#[derive(Debug, Clone)]
pub struct CompiledBaseline {
    /// What is learnt.
    pub kind: BaselineKind,
    /// The key's parts and their names as written.
    pub by: Vec<(String, Part)>,
    /// The value's parts (`new_value`, `rare`; for `rate` with
    /// `count_distinct(x)`, the one part `x`) and their names as written.
    pub of: Vec<(String, Part)>,
    /// Learning period in microseconds of event time.
    pub learning_micros: i64,
    /// Learning period as written.
    pub learning_text: String,
    /// Events (`new_value`, `unusual_hour`) or bins with activity (`rate`)
    /// seen for a key before it may alert; 0 for `rare`.
    pub min_history: u64,
    /// Offset from UTC of the hours of `unusual_hour` and the parts of the
    /// day of `rate`, in minutes.
    pub utc_offset_minutes: i32,
    /// Offset as written (`UTC` when none).
    pub utc_offset_text: String,
    /// Share of a key's events below which an hour is rare (0.01 = 1%).
    pub rare_ratio: f64,
    /// `rate`: what a bin measures.
    pub measure: Measure,
    /// `rate`: the name inside `count_distinct(..)` or `sum(..)` as written
    /// (empty for `count`).
    pub measure_of: String,
    /// `rate` with `sum(x)`: the part `x`.
    pub amount: Option<(String, Part)>,
    /// `rate`: bin length in microseconds (0 for other kinds).
    pub bin_micros: i64,
    /// `rate`: bin length as written.
    pub bin_text: String,
    /// `rate`: a bin alerts above `factor` times the usual value.
    pub factor: f64,
    /// `rate`: and at or above this value.
    pub min_value: f64,
    /// `rare`: a value is rare while fewer than this many holders showed it.
    pub below: u32,
    /// A stable hash of what the learnt state means (kind, `by`, `of`,
    /// `measure`, bin length, UTC offset, `below`). Saved state whose
    /// fingerprint differs is dropped on restore; thresholds (`learning`,
    /// `min_history`, `factor`, `min_value`, `rare_percent`) may be tuned
    /// without losing what was learnt.
    pub fingerprint: u64,
}

// Constants of the xxHash64 family; the mixing below follows its round and
// avalanche structure with a single lane.
const P1: u64 = 0x9E37_79B1_85EB_CA87;
const P2: u64 = 0xC2B2_AE3D_27D4_EB4F;
const P3: u64 = 0x1656_67B1_9E37_79F9;
const P4: u64 = 0x85EB_CA77_C2B2_AE63;
const P5: u64 = 0x27D4_EB2F_1656_67C5;
const KEY_SEED: u64 = 0x7472_6169_6c68_6f75; // "trailhou"

#[inline]
fn round(acc: u64, lane: u64) -> u64 {
    acc.wrapping_add(lane.wrapping_mul(P2))
        .rotate_left(31)
        .wrapping_mul(P1)
}

#[inline]
fn avalanche(mut h: u64) -> u64 {
    h ^= h >> 33;
    h = h.wrapping_mul(P2);
    h ^= h >> 29;
    h = h.wrapping_mul(P3);
    h ^ (h >> 32)
}

/// A stable 64-bit fingerprint of a text: the same on every machine and in
/// every version (state saved by one run is read by the next). Not
/// cryptographic; distinct texts collide with probability about 2^-64.
pub fn fingerprint(text: &str) -> u64 {
    let bytes = text.as_bytes();
    let mut h = P5.wrapping_add(bytes.len() as u64);
    let mut chunks = bytes.chunks_exact(8);
    for chunk in &mut chunks {
        let mut lane = [0u8; 8];
        lane.copy_from_slice(chunk);
        h = round(h, u64::from_le_bytes(lane));
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        let mut lane = [0u8; 8];
        for (l, b) in lane.iter_mut().zip(rest) {
            *l = *b;
        }
        h = round(h ^ P4, u64::from_le_bytes(lane));
    }
    avalanche(h)
}

/// The fingerprint of a key made of several parts (in order); what
/// [`BaselineColumns::key_fingerprint`] computes for a row.
pub fn key_fingerprint<'a>(parts: impl IntoIterator<Item = &'a str>) -> u64 {
    let mut acc = KeyAcc::new();
    for p in parts {
        acc.push(fingerprint(p));
    }
    acc.finish()
}

struct KeyAcc(u64, u64);

impl KeyAcc {
    fn new() -> Self {
        Self(KEY_SEED, 0)
    }
    fn push(&mut self, part: u64) {
        self.0 = round(self.0, part);
        self.1 += 1;
    }
    fn finish(&self) -> u64 {
        avalanche(self.0 ^ self.1.wrapping_mul(P3))
    }
}

/// The arrays a baseline reads from one batch, evaluated once per batch.
pub struct BaselineColumns {
    by: Vec<Source>,
    of: Vec<Source>,
    amount: Option<ArrayRef>,
    api_pair: bool,
    /// The buffer derived parts (networks, user agent families) are written
    /// into, kept for every row of the batch instead of made for each.
    scratch: Cell<String>,
}

/// One part of a key or value, read from one array of a batch.
struct Source {
    derive: Derive,
    cells: Cells,
    /// For a dictionary column: the fingerprint of each distinct value
    /// (after derivation), filled in as rows ask for it, so a value shared
    /// by many rows is derived and hashed once per batch.
    fingerprints: Vec<Cell<Option<Option<u64>>>>,
}

/// What is taken from a cell.
#[derive(Clone, Copy)]
enum Derive {
    /// The text itself.
    Plain,
    /// The network of an address ([`network_into`]).
    Network,
    /// The family of a user agent ([`user_agent_family_into`]).
    UserAgentFamily,
}

/// An array resolved to its type once per batch, so that reading a row
/// does not test the type again.
enum Cells {
    /// A dictionary of `Utf8` with `Int32` keys (most text columns).
    Dictionary {
        keys: PrimitiveArray<Int32Type>,
        values: StringArray,
    },
    /// Plain `Utf8`.
    Text(StringArray),
    /// Anything else: a text borrowed where possible ([`borrowed_str`]),
    /// else the cell's display text.
    Other(ArrayRef),
}

impl Source {
    fn new(derive: Derive, array: ArrayRef) -> Self {
        let dictionary = array.as_dictionary_opt::<Int32Type>().and_then(|d| {
            let values = d.values().as_string_opt::<i32>()?;
            Some((d.keys().clone(), values.clone()))
        });
        let (cells, distinct) = match dictionary {
            Some((keys, values)) => {
                let distinct = values.len();
                (Cells::Dictionary { keys, values }, distinct)
            }
            None => match array.as_string_opt::<i32>() {
                Some(text) => (Cells::Text(text.clone()), 0),
                None => (Cells::Other(array), 0),
            },
        };
        Self {
            derive,
            cells,
            fingerprints: vec![Cell::new(None); distinct],
        }
    }

    /// Calls `f` with the text of the cell (a derived value is written into
    /// `scratch` first); `None` when NULL, empty or not derivable.
    fn with_text<R>(
        &self,
        row: usize,
        scratch: &mut String,
        f: impl FnOnce(&str) -> R,
    ) -> Option<R> {
        let owned;
        let raw = match &self.cells {
            Cells::Dictionary { keys, values } => {
                let key = dictionary_key(keys, values, row)?;
                values.value(key)
            }
            Cells::Text(text) => {
                if row >= text.len() || text.is_null(row) {
                    return None;
                }
                text.value(row)
            }
            Cells::Other(array) => {
                if row >= array.len() || array.is_null(row) {
                    return None;
                }
                match borrowed_str(array.as_ref(), row) {
                    Some(s) => s,
                    None => {
                        owned = cell_text(array.as_ref(), row);
                        owned.as_str()
                    }
                }
            }
        };
        if raw.is_empty() {
            return None;
        }
        match self.derive {
            Derive::Plain => Some(f(raw)),
            Derive::Network => {
                scratch.clear();
                network_into(raw, scratch).then(|| f(scratch))
            }
            Derive::UserAgentFamily => {
                scratch.clear();
                user_agent_family_into(raw, scratch).then(|| f(scratch))
            }
        }
    }

    /// The [`fingerprint`] of the cell's text (derived), as
    /// [`Source::with_text`] gives it; once per distinct value of a
    /// dictionary column.
    fn fingerprint(&self, row: usize, scratch: &mut String) -> Option<u64> {
        if let Cells::Dictionary { keys, values } = &self.cells {
            let key = dictionary_key(keys, values, row)?;
            let slot = self.fingerprints.get(key)?;
            if let Some(known) = slot.get() {
                return known;
            }
            let found = self.with_text(row, scratch, fingerprint);
            slot.set(Some(found));
            return found;
        }
        self.with_text(row, scratch, fingerprint)
    }
}

/// The dictionary value a row points at; `None` when the row is out of
/// range or NULL, or its value is.
fn dictionary_key(
    keys: &PrimitiveArray<Int32Type>,
    values: &StringArray,
    row: usize,
) -> Option<usize> {
    if row >= keys.len() || keys.is_null(row) {
        return None;
    }
    let key = usize::try_from(keys.value(row)).ok()?;
    (key < values.len() && values.is_valid(key)).then_some(key)
}

/// A cell of the string types [`Cells`] does not resolve itself
/// (`LargeUtf8`, `Utf8View`), without allocating; `None` for other types.
fn borrowed_str(array: &dyn Array, row: usize) -> Option<&str> {
    match array.data_type() {
        DataType::LargeUtf8 => Some(array.as_string::<i64>().value(row)),
        DataType::Utf8View => Some(array.as_string_view().value(row)),
        _ => None,
    }
}

impl BaselineColumns {
    /// The key of a row as text, one string per part; `None` when any part
    /// is NULL or cannot be derived. For the alert's words and id.
    pub fn key(&self, row: usize) -> Option<Vec<String>> {
        let mut scratch = String::new();
        self.by
            .iter()
            .map(|s| s.with_text(row, &mut scratch, str::to_string))
            .collect()
    }

    /// The fingerprint of a row's key ([`key_fingerprint`] of the parts),
    /// without allocating for string columns; `None` when any part is NULL
    /// or cannot be derived.
    pub fn key_fingerprint(&self, row: usize) -> Option<u64> {
        self.with_scratch(|scratch| {
            let mut acc = KeyAcc::new();
            for s in &self.by {
                acc.push(s.fingerprint(row, scratch)?);
            }
            Some(acc.finish())
        })
    }

    /// Runs `f` with the batch's scratch buffer.
    fn with_scratch<R>(&self, f: impl FnOnce(&mut String) -> R) -> R {
        let mut scratch = self.scratch.take();
        let r = f(&mut scratch);
        self.scratch.set(scratch);
        r
    }

    /// The value of a row in plain words (`iam:CreateUser`, `203.0.113.0/24`,
    /// parts joined by ` / `); `None` when the baseline has no value or any
    /// part is NULL or cannot be derived (a `source_ip` that is a service
    /// name has no network).
    pub fn value(&self, row: usize) -> Option<String> {
        let mut out = String::new();
        self.value_into(row, &mut out).then_some(out)
    }

    /// [`BaselineColumns::value`] written into `out` (cleared first), so a
    /// caller can reuse one buffer for every row; false when there is none.
    pub fn value_into(&self, row: usize, out: &mut String) -> bool {
        out.clear();
        if self.of.is_empty() {
            return false;
        }
        self.with_scratch(|scratch| {
            if self.api_pair
                && let [source, name] = self.of.as_slice()
            {
                let ok = source
                    .with_text(row, scratch, |s| {
                        out.push_str(s.strip_suffix(".amazonaws.com").unwrap_or(s));
                        out.push(':');
                    })
                    .and_then(|()| name.with_text(row, scratch, |n| out.push_str(n)));
                return ok.is_some();
            }
            for (i, s) in self.of.iter().enumerate() {
                if i > 0 {
                    out.push_str(" / ");
                }
                if s.with_text(row, scratch, |t| out.push_str(t)).is_none() {
                    out.clear();
                    return false;
                }
            }
            true
        })
    }

    /// The amount of a row for `rate` with `sum(x)`: `x` as a number;
    /// `None` when NULL, not a finite number, or the measure is not a sum.
    pub fn amount(&self, row: usize) -> Option<f64> {
        let a = self.amount.as_ref()?;
        if row >= a.len() || a.is_null(row) {
            return None;
        }
        let v = a
            .as_primitive_opt::<arrow::datatypes::Float64Type>()?
            .value(row);
        v.is_finite().then_some(v)
    }
}

impl CompiledBaseline {
    /// Evaluates the key, value and amount parts on a batch of the event schema.
    pub fn columns(&self, batch: &RecordBatch) -> Result<BaselineColumns, String> {
        let array = |name: &str, p: &Part| -> Result<ArrayRef, String> {
            let column = |i: usize| {
                batch
                    .columns()
                    .get(i)
                    .cloned()
                    .ok_or_else(|| format!("baseline column {name:?} missing in batch"))
            };
            match p {
                Part::Column(i) | Part::Network(i) | Part::UserAgentFamily(i) => column(*i),
                Part::Expr(e) => e
                    .evaluate(batch)
                    .and_then(|v| v.into_array(batch.num_rows()))
                    .map_err(|e| format!("baseline {name:?}: {e}")),
            }
        };
        let sources = |parts: &[(String, Part)]| -> Result<Vec<Source>, String> {
            parts
                .iter()
                .map(|(name, p)| {
                    let a = array(name, p)?;
                    let derive = match p {
                        Part::Network(_) => Derive::Network,
                        Part::UserAgentFamily(_) => Derive::UserAgentFamily,
                        Part::Column(_) | Part::Expr(_) => Derive::Plain,
                    };
                    Ok(Source::new(derive, a))
                })
                .collect()
        };
        let amount = match &self.amount {
            Some((name, p)) => Some(
                arrow::compute::cast(&array(name, p)?, &DataType::Float64)
                    .map_err(|e| format!("baseline measure sum({name}): {e}"))?,
            ),
            None => None,
        };
        Ok(BaselineColumns {
            by: sources(&self.by)?,
            of: sources(&self.of)?,
            amount,
            api_pair: self.is_api_pair(),
            scratch: Cell::new(String::new()),
        })
    }

    fn of_names(&self) -> Vec<&str> {
        self.of.iter().map(|(n, _)| n.as_str()).collect()
    }

    fn is_api_pair(&self) -> bool {
        self.of_names() == [columns::EVENT_SOURCE, columns::EVENT_NAME]
    }

    /// The verb of the alert's sentence for a value: `called`, `came
    /// from network`, `used region`, ...
    pub fn verb(&self) -> String {
        match self.of_names().as_slice() {
            [columns::EVENT_SOURCE, columns::EVENT_NAME] | [columns::EVENT_NAME] => "called".into(),
            [NETWORK] => "came from network".into(),
            [columns::SOURCE_IP] => "came from address".into(),
            [columns::REGION] => "used region".into(),
            [USER_AGENT_FAMILY] => "used user agent".into(),
            [columns::USER_AGENT] => "used user agent string".into(),
            [columns::BUCKET] => "touched bucket".into(),
            [columns::TARGET] => "connected to".into(),
            [columns::COMMAND] => "ran".into(),
            [columns::EVENT_SOURCE] => "called service".into(),
            other => format!("had {}", other.join(" / ")),
        }
    }

    /// What a `rate` bin's value is, in words: `1,204 events`, `4,812
    /// distinct object_key`, `bytes_out totalling 9,876,543`.
    pub fn measure_words(&self, value: f64, estimated: bool) -> String {
        let n = number_words(value);
        let about = if estimated { "about " } else { "" };
        match self.measure {
            Measure::Count => format!("{about}{n} events"),
            Measure::CountDistinct => format!("{about}{n} distinct {}", self.measure_of),
            Measure::Sum => format!("{} totalling {about}{n}", self.measure_of),
        }
    }
}

/// A number for people: `1,204`, or `12.5` when it has a fraction.
pub fn number_words(v: f64) -> String {
    if !v.is_finite() {
        return v.to_string();
    }
    let whole = v.trunc();
    let mut digits = String::new();
    let _ = write!(digits, "{:.0}", whole.abs());
    let mut out = String::with_capacity(digits.len() + digits.len() / 3 + 4);
    if v < 0.0 {
        out.push('-');
    }
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    let frac = (v - whole).abs();
    if frac >= 0.05 {
        let tenths = format!("{frac:.1}");
        if let Some(t) = tenths.strip_prefix('0') {
            out.push_str(t);
        }
    }
    out
}

/// The source network of an address: `a.b.c.0/24` for IPv4, the /48 for
/// IPv6 (`2001:db8:1::/48`); `None` for anything that is not an address
/// (CloudTrail puts service names such as `ec2.amazonaws.com` there).
pub fn network_of(source_ip: &str) -> Option<String> {
    let mut out = String::new();
    network_into(source_ip, &mut out).then_some(out)
}

/// [`network_of`] appended to `out`; false (and nothing appended) when
/// there is none.
pub fn network_into(source_ip: &str, out: &mut String) -> bool {
    let source_ip = source_ip.trim();
    // A plain dotted IPv4 address (nearly every source address) is its own
    // network's text up to the third dot: read without the parser.
    if let Some(third_dot) = dotted_ipv4_third_dot(source_ip)
        && let Some(head) = source_ip.get(..third_dot)
    {
        out.push_str(head);
        out.push_str(".0/24");
        return true;
    }
    let Ok(ip) = source_ip.parse::<IpAddr>() else {
        return false;
    };
    match ip.to_canonical() {
        IpAddr::V4(v4) => {
            // Written digit by digit: the formatter cost more than the
            // rest of a baseline's reading of the row.
            let [a, b, c, _] = v4.octets();
            for octet in [a, b, c] {
                push_decimal(out, octet);
                out.push('.');
            }
            out.push_str("0/24");
        }
        IpAddr::V6(v6) => {
            let s = v6.segments();
            let net = std::net::Ipv6Addr::new(s[0], s[1], s[2], 0, 0, 0, 0, 0);
            let _ = write!(out, "{net}/48");
        }
    }
    true
}

/// Where the third dot of `text` is, when `text` is an IPv4 address as the
/// standard parser reads one: four decimal octets of one to three digits,
/// none above 255 and none with a leading zero. `None` for anything else.
fn dotted_ipv4_third_dot(text: &str) -> Option<usize> {
    let bytes = text.as_bytes();
    let mut at = 0;
    let mut third = None;
    for octet in 0..4 {
        let start = at;
        let mut value = 0u16;
        while at - start < 3
            && let Some(d) = bytes.get(at).filter(|b| b.is_ascii_digit())
        {
            value = value * 10 + u16::from(d - b'0');
            at += 1;
        }
        let digits = at - start;
        if digits == 0 || value > 255 || (digits > 1 && bytes.get(start) == Some(&b'0')) {
            return None;
        }
        if octet < 3 {
            if bytes.get(at) != Some(&b'.') {
                return None;
            }
            if octet == 2 {
                third = Some(at);
            }
            at += 1;
        }
    }
    if at == bytes.len() { third } else { None }
}

/// `n` in decimal, without leading zeros.
fn push_decimal(out: &mut String, n: u8) {
    if n >= 100 {
        out.push(char::from(b'0' + n / 100));
    }
    if n >= 10 {
        out.push(char::from(b'0' + n / 10 % 10));
    }
    out.push(char::from(b'0' + n % 10));
}

/// The family of a user agent: the product token before the first `/`,
/// lower-cased (`aws-cli/2.15.0 Python/3.11` -> `aws-cli`, `Boto3/1.34`
/// -> `boto3`, `[aws-sdk-go/1.44]` -> `aws-sdk-go`); the whole string,
/// lower-cased, when it has no `/` (`console.amazonaws.com`). `None` when
/// empty.
pub fn user_agent_family(user_agent: &str) -> Option<String> {
    let mut out = String::new();
    user_agent_family_into(user_agent, &mut out).then_some(out)
}

/// [`user_agent_family`] appended to `out`; false (and nothing appended)
/// when empty.
pub fn user_agent_family_into(user_agent: &str, out: &mut String) -> bool {
    let head = user_agent.split('/').next().unwrap_or_default();
    let head = head.trim().trim_start_matches(['[', '(']).trim();
    if head.is_empty() {
        return false;
    }
    for c in head.chars().take(64) {
        out.extend(c.to_lowercase());
    }
    true
}

/// Parses `+02:00`, `-05:30`, `+2`, `UTC`, `Z` into minutes east of UTC.
pub fn parse_utc_offset(s: &str) -> Option<i32> {
    let s = s.trim();
    if s.eq_ignore_ascii_case("utc") || s == "Z" || s.is_empty() {
        return Some(0);
    }
    let (sign, rest) = match s.as_bytes().first()? {
        b'+' => (1, &s[1..]),
        b'-' => (-1, &s[1..]),
        _ => (1, s),
    };
    let (h, m) = match rest.split_once(':') {
        Some((h, m)) => (h.parse::<i32>().ok()?, m.parse::<i32>().ok()?),
        None => (rest.parse::<i32>().ok()?, 0),
    };
    if !(0..=14).contains(&h) || !(0..60).contains(&m) {
        return None;
    }
    Some(sign * (h * 60 + m))
}

fn part(ctx: &SessionContext, schema: &DFSchema, name: &str) -> Result<Part, String> {
    let arrow_schema = rule_schema();
    let index = |column: &str| {
        arrow_schema
            .index_of(column)
            .map_err(|_| format!("column {column:?} is not in the event model"))
    };
    Ok(match name.trim() {
        NETWORK => Part::Network(index(columns::SOURCE_IP)?),
        USER_AGENT_FAMILY => Part::UserAgentFamily(index(columns::USER_AGENT)?),
        n if arrow_schema.index_of(n).is_ok() => Part::Column(index(n)?),
        sql => Part::Expr(plan_expr(ctx, sql, schema).map_err(|e| {
            format!(
                "{sql:?} is neither a column of the event model, `{NETWORK}`, \
                 `{USER_AGENT_FAMILY}` nor an expression that compiles: {e}"
            )
        })?),
    })
}

fn parts(
    ctx: &SessionContext,
    schema: &DFSchema,
    names: &[String],
    field: &str,
) -> Result<Vec<(String, Part)>, String> {
    names
        .iter()
        .map(|n| {
            Ok((
                n.clone(),
                part(ctx, schema, n).map_err(|e| format!("baseline.{field}: {e}"))?,
            ))
        })
        .collect()
}

/// Splits `count`, `count_distinct(x)`, `sum(x)` into the measure and `x`.
fn parse_measure(text: &str) -> Result<(Measure, String), String> {
    let t = text.trim();
    if t.eq_ignore_ascii_case("count") || t.eq_ignore_ascii_case("count(*)") {
        return Ok((Measure::Count, String::new()));
    }
    let bad = || {
        format!(
            "baseline.measure {text:?} is not `count`, `count_distinct(<name>)` or `sum(<name>)`"
        )
    };
    let (head, rest) = t.split_once('(').ok_or_else(bad)?;
    let inner = rest.strip_suffix(')').ok_or_else(bad)?.trim();
    if inner.is_empty() {
        return Err(bad());
    }
    let measure = match head.trim().to_ascii_lowercase().as_str() {
        "count_distinct" => Measure::CountDistinct,
        "sum" => Measure::Sum,
        _ => return Err(bad()),
    };
    Ok((measure, inner.to_string()))
}

fn is_numeric(t: &DataType) -> bool {
    t.is_integer() || t.is_floating() || matches!(t, DataType::Decimal128(..) | DataType::Null)
}

/// Checks and compiles a `baseline:` block.
pub fn compile_baseline(
    ctx: &SessionContext,
    schema: &DFSchema,
    spec: &BaselineSpec,
) -> Result<CompiledBaseline, String> {
    let kind = match spec.kind {
        BaselineKindName::NewValue => BaselineKind::NewValue,
        BaselineKindName::UnusualHour => BaselineKind::UnusualHour,
        BaselineKindName::Rate => BaselineKind::Rate,
        BaselineKindName::Rare => BaselineKind::Rare,
    };
    let only = |set: bool, key: &str, kinds: &[BaselineKind]| -> Result<(), String> {
        if set && !kinds.contains(&kind) {
            let names: Vec<&str> = kinds.iter().map(|k| k.name()).collect();
            return Err(format!(
                "baseline.{key} applies to kind {} only, not {}",
                names.join(" and "),
                kind.name()
            ));
        }
        Ok(())
    };
    use BaselineKind::{NewValue, Rare, Rate, UnusualHour};
    only(
        spec.min_history.is_some(),
        "min_history",
        &[NewValue, UnusualHour, Rate],
    )?;
    only(
        spec.utc_offset.is_some(),
        "utc_offset",
        &[UnusualHour, Rate],
    )?;
    only(spec.rare_percent.is_some(), "rare_percent", &[UnusualHour])?;
    only(spec.measure.is_some(), "measure", &[Rate])?;
    only(spec.window.is_some(), "window", &[Rate])?;
    only(spec.factor.is_some(), "factor", &[Rate])?;
    only(spec.min_value.is_some(), "min_value", &[Rate])?;
    only(spec.below.is_some(), "below", &[Rare])?;

    if spec.by.is_empty() || spec.by.len() > MAX_PARTS {
        return Err(format!("baseline.by needs 1 to {MAX_PARTS} names"));
    }
    let by = parts(ctx, schema, &spec.by, "by")?;
    let of_names = spec.of.as_ref().map(|o| o.to_vec()).unwrap_or_default();
    match kind {
        NewValue | Rare if of_names.is_empty() || of_names.len() > MAX_PARTS => {
            return Err(format!(
                "baseline kind {} needs `of`: 1 to {MAX_PARTS} names",
                kind.name()
            ));
        }
        UnusualHour | Rate if !of_names.is_empty() => {
            let hint = if kind == Rate {
                " (name the column in `measure: count_distinct(<name>)` or `sum(<name>)`)"
            } else {
                ""
            };
            return Err(format!("baseline kind {} takes no `of`{hint}", kind.name()));
        }
        _ => {}
    }
    let mut of = parts(ctx, schema, &of_names, "of")?;

    let learning_micros = parse_period_micros(&spec.learning).ok_or_else(|| {
        format!(
            "baseline.learning {:?} is not a positive number followed by s, m, h or d",
            spec.learning
        )
    })?;
    let utc_offset_text = spec.utc_offset.clone().unwrap_or_else(|| "UTC".into());
    let utc_offset_minutes = parse_utc_offset(&utc_offset_text).ok_or_else(|| {
        format!("baseline.utc_offset {utc_offset_text:?} is not like +02:00 or -05:30")
    })?;
    let rare_percent = spec.rare_percent.unwrap_or(1.0);
    if !(0.0..=50.0).contains(&rare_percent) {
        return Err(format!(
            "baseline.rare_percent {rare_percent} is not between 0 and 50"
        ));
    }
    let min_history = match kind {
        NewValue | UnusualHour => spec.min_history.unwrap_or(DEFAULT_MIN_EVENTS),
        Rate => spec.min_history.unwrap_or(DEFAULT_MIN_BINS),
        Rare => 0,
    };

    // rate
    let (measure, measure_of) = match (&spec.measure, kind) {
        (Some(m), Rate) => parse_measure(m)?,
        _ => (Measure::Count, String::new()),
    };
    let mut amount = None;
    match measure {
        Measure::Count => {}
        Measure::CountDistinct => {
            of = parts(ctx, schema, std::slice::from_ref(&measure_of), "measure")?;
        }
        Measure::Sum => {
            let p = part(ctx, schema, &measure_of).map_err(|e| format!("baseline.measure: {e}"))?;
            let arrow_schema = rule_schema();
            let data_type = match &p {
                Part::Column(i) => arrow_schema.fields().get(*i).map(|f| f.data_type().clone()),
                Part::Expr(e) => e.data_type(&arrow_schema).ok(),
                Part::Network(_) | Part::UserAgentFamily(_) => None,
            };
            if !data_type.as_ref().is_some_and(is_numeric) {
                return Err(format!(
                    "baseline.measure sum({measure_of}) needs a numeric column or expression"
                ));
            }
            amount = Some((measure_of.clone(), p));
        }
    }
    let (bin_micros, bin_text) = if kind == Rate {
        let text = spec.window.clone().unwrap_or_else(|| "1h".into());
        let micros = parse_period_micros(&text).ok_or_else(|| {
            format!("baseline.window {text:?} is not a positive number followed by s, m, h or d")
        })?;
        (micros, text)
    } else {
        (0, String::new())
    };
    let factor = spec.factor.unwrap_or(DEFAULT_FACTOR);
    if kind == Rate && !(factor.is_finite() && factor > 0.0) {
        return Err(format!("baseline.factor {factor} is not a positive number"));
    }
    let min_value = spec.min_value.unwrap_or(DEFAULT_MIN_VALUE);
    if kind == Rate && !(min_value.is_finite() && min_value >= 0.0) {
        return Err(format!(
            "baseline.min_value {min_value} is not a number >= 0"
        ));
    }

    // rare
    let below = spec.below.unwrap_or(DEFAULT_BELOW);
    if kind == Rare && !(2..=MAX_BELOW).contains(&below) {
        return Err(format!(
            "baseline.below {below} is not between 2 and {MAX_BELOW}"
        ));
    }

    let bin_part = bin_micros.to_string();
    let offset_part = utc_offset_minutes.to_string();
    let below_part = if kind == Rare {
        below.to_string()
    } else {
        String::new()
    };
    let measure_part = match measure {
        Measure::Count => "count".to_string(),
        Measure::CountDistinct => format!("count_distinct({measure_of})"),
        Measure::Sum => format!("sum({measure_of})"),
    };
    let fingerprint = key_fingerprint(
        [kind.name(), "by"]
            .into_iter()
            .chain(spec.by.iter().map(String::as_str))
            .chain(["of"])
            .chain(of_names.iter().map(String::as_str))
            .chain([
                "measure",
                measure_part.as_str(),
                "bin",
                bin_part.as_str(),
                "utc",
                offset_part.as_str(),
                "below",
                below_part.as_str(),
            ]),
    );
    Ok(CompiledBaseline {
        kind,
        by,
        of,
        learning_micros,
        learning_text: spec.learning.clone(),
        min_history,
        utc_offset_minutes,
        utc_offset_text,
        rare_ratio: rare_percent / 100.0,
        measure,
        measure_of,
        amount,
        bin_micros,
        bin_text,
        factor,
        min_value,
        below,
        fingerprint,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn networks_are_the_24_of_ipv4_and_the_48_of_ipv6() {
        assert_eq!(
            network_of("203.0.113.77").as_deref(),
            Some("203.0.113.0/24")
        );
        assert_eq!(
            network_of("2001:db8:abcd:12::1").as_deref(),
            Some("2001:db8:abcd::/48")
        );
        assert_eq!(
            network_of("::ffff:198.51.100.9").as_deref(),
            Some("198.51.100.0/24")
        );
        assert_eq!(network_of("ec2.amazonaws.com"), None);
        assert_eq!(network_of("AWS Internal"), None);
        assert_eq!(network_of(""), None);
        // The dotted fast path says what the parser says.
        for text in [
            "1.2.3.4",
            "255.255.255.255",
            "256.1.1.1",
            "01.2.3.4",
            "1.2.3",
            "1.2.3.4.5",
            "1..2.3",
            "1.2.3.",
            ".1.2.3",
            "1.2.3.4 ",
            " 10.0.0.1",
            "1.2.3.04",
            "0.0.0.0",
            "1.2.3.x",
            "+1.2.3.4",
            "1.2.3.1000",
            "::ffff:1.2.3.4",
            "",
        ] {
            let parsed = text.trim().parse::<std::net::Ipv4Addr>().ok();
            let expected = parsed.map(|ip| {
                let [a, b, c, _] = ip.octets();
                format!("{a}.{b}.{c}.0/24")
            });
            if dotted_ipv4_third_dot(text.trim()).is_some() || parsed.is_some() {
                assert_eq!(network_of(text), expected, "{text:?}");
            }
            assert_eq!(
                dotted_ipv4_third_dot(text.trim()).is_some(),
                parsed.is_some(),
                "{text:?}"
            );
        }
        // Octets are written digit by digit: every value as `Display` has it.
        for n in 0..=255u8 {
            assert_eq!(
                network_of(&format!("{n}.{n}.{n}.{n}")),
                Some(format!("{n}.{n}.{n}.0/24"))
            );
        }
    }

    #[test]
    fn user_agent_family_is_the_product_token_lower_cased() {
        assert_eq!(
            user_agent_family("aws-cli/2.15.0 Python/3.11.6 Linux/6.1").as_deref(),
            Some("aws-cli")
        );
        assert_eq!(
            user_agent_family("Boto3/1.34.0 md/Botocore#1.34.0").as_deref(),
            Some("boto3")
        );
        assert_eq!(
            user_agent_family("[aws-sdk-go/1.44.0 (go1.21)]").as_deref(),
            Some("aws-sdk-go")
        );
        assert_eq!(
            user_agent_family("Mozilla/5.0 (X11; Linux x86_64)").as_deref(),
            Some("mozilla")
        );
        assert_eq!(
            user_agent_family("console.amazonaws.com").as_deref(),
            Some("console.amazonaws.com")
        );
        assert_eq!(user_agent_family("  "), None);
    }

    #[test]
    fn utc_offsets_parse() {
        assert_eq!(parse_utc_offset("+02:00"), Some(120));
        assert_eq!(parse_utc_offset("-05:30"), Some(-330));
        assert_eq!(parse_utc_offset("3"), Some(180));
        assert_eq!(parse_utc_offset("UTC"), Some(0));
        assert_eq!(parse_utc_offset("+25:00"), None);
        assert_eq!(parse_utc_offset("east"), None);
    }

    fn compile(extra: &str) -> Result<CompiledBaseline, String> {
        let spec: crate::RuleSpec = serde_yaml::from_str(&format!(
            "id: b\ntitle: T\nseverity: low\nwhere: \"true\"\nbaseline:\n{extra}"
        ))
        .map_err(|e| e.to_string())?;
        let rule = crate::Compiler::new()
            .map_err(|e| e.to_string())?
            .compile(spec, None)
            .map_err(|e| e.to_string())?;
        rule.baseline()
            .cloned()
            .ok_or_else(|| "not a baseline".to_string())
    }

    #[test]
    fn fingerprints_are_stable_and_tell_texts_and_parts_apart() {
        // Pinned: saved state depends on these never changing.
        assert_eq!(fingerprint(""), fingerprint(""));
        assert_eq!(fingerprint("iam:CreateUser"), 0x7b41_8881_e2eb_08ae);
        assert_ne!(fingerprint("a"), fingerprint("a\0"));
        assert_ne!(fingerprint("abcdefgh"), fingerprint("abcdefgi"));
        assert_ne!(key_fingerprint(["ab", "c"]), key_fingerprint(["a", "bc"]));
        assert_ne!(key_fingerprint(["a"]), key_fingerprint(["a", ""]));
        assert_ne!(key_fingerprint(["a"]), fingerprint("a"));
    }

    #[test]
    fn rows_give_keys_values_and_amounts() {
        let b = compile("  kind: new_value\n  of: [event_source, event_name]\n").unwrap();
        let e = trailhound_core::Event {
            event_source: "iam.amazonaws.com".into(),
            event_name: "CreateUser".into(),
            principal: "arn:aws:iam::1:user/alice".into(),
            source_ip: Some("203.0.113.9".into()),
            bytes_out: Some(512),
            ..Default::default()
        };
        let batch = trailhound_core::events_to_batch(&[e]);
        let c = b.columns(&batch).unwrap();
        assert_eq!(c.value(0).as_deref(), Some("iam:CreateUser"));
        assert_eq!(
            c.key(0),
            Some(vec!["arn:aws:iam::1:user/alice".to_string()])
        );
        assert_eq!(
            c.key_fingerprint(0),
            Some(key_fingerprint(["arn:aws:iam::1:user/alice"]))
        );
        assert_eq!(c.amount(0), None);

        let b =
            compile("  kind: rare\n  by: [principal, network]\n  of: user_agent_family\n").unwrap();
        let c = b.columns(&batch).unwrap();
        // user_agent is NULL: no value
        assert_eq!(c.value(0), None);
        assert_eq!(
            c.key_fingerprint(0),
            Some(key_fingerprint([
                "arn:aws:iam::1:user/alice",
                "203.0.113.0/24"
            ]))
        );

        let b = compile("  kind: rate\n  measure: sum(bytes_out)\n").unwrap();
        let c = b.columns(&batch).unwrap();
        assert_eq!(c.amount(0), Some(512.0));
        assert_eq!(c.value(0), None);
        let b = compile("  kind: rate\n  measure: count_distinct(network)\n").unwrap();
        let c = b.columns(&batch).unwrap();
        assert_eq!(c.value(0).as_deref(), Some("203.0.113.0/24"));
    }

    #[test]
    fn a_repeated_dictionary_value_keys_every_row_as_its_own_text() {
        // Fingerprints of dictionary values are kept per batch once
        // computed: every row must still get its own text's key, whether
        // its value came first, repeats, is NULL or cannot be derived.
        let agents = [
            Some("aws-cli/2.15.0 Python/3.11"),
            Some("Boto3/1.34.0 Python/3.12"),
            None,
            Some("aws-cli/2.15.0 Python/3.11"),
            Some(""),
            Some("Boto3/1.34.0 Python/3.12"),
        ];
        let events: Vec<_> = agents
            .iter()
            .enumerate()
            .map(|(i, ua)| trailhound_core::Event {
                principal: format!("arn:aws:iam::1:user/u{}", i % 2),
                user_agent: ua.map(str::to_string),
                ..Default::default()
            })
            .collect();
        let batch = trailhound_core::events_to_batch(&events);
        let b = compile("  kind: rare\n  by: [principal, user_agent_family]\n  of: event_name\n")
            .unwrap();
        let c = b.columns(&batch).unwrap();
        for (row, ua) in agents.iter().enumerate() {
            let mut family = String::new();
            let derived = ua
                .filter(|ua| !ua.is_empty())
                .filter(|ua| user_agent_family_into(ua, &mut family))
                .map(|_| family.clone());
            let principal = format!("arn:aws:iam::1:user/u{}", row % 2);
            let expected = derived.map(|f| key_fingerprint([principal.as_str(), f.as_str()]));
            // Asked twice: the second answer comes from what the first kept.
            assert_eq!(c.key_fingerprint(row), expected, "row {row}");
            assert_eq!(c.key_fingerprint(row), expected, "row {row} again");
        }
    }

    #[test]
    fn rate_and_rare_blocks_compile_with_defaults_and_bad_ones_are_refused() {
        let b = compile(
            "  kind: rate\n  measure: count_distinct(object_key)\n  window: 10m\n  factor: 5\n  min_value: 300\n  utc_offset: \"+01:00\"\n",
        )
        .unwrap();
        assert_eq!(b.kind, BaselineKind::Rate);
        assert_eq!(b.measure, Measure::CountDistinct);
        assert_eq!(b.measure_of, "object_key");
        assert_eq!(b.of.len(), 1);
        assert_eq!(b.bin_micros, 600_000_000);
        assert_eq!((b.factor, b.min_value), (5.0, 300.0));
        assert_eq!(b.min_history, DEFAULT_MIN_BINS);
        assert_eq!(b.utc_offset_minutes, 60);
        assert_eq!(b.measure_words(4812.0, false), "4,812 distinct object_key");
        let b = compile("  kind: rate\n").unwrap();
        assert_eq!(b.measure, Measure::Count);
        assert_eq!(b.bin_micros, 3_600_000_000);
        assert_eq!(b.measure_words(1204.0, true), "about 1,204 events");
        let b = compile("  kind: rate\n  measure: sum(bytes_out)\n  min_history: 3\n").unwrap();
        assert_eq!(b.measure, Measure::Sum);
        assert!(b.amount.is_some());
        assert_eq!(b.min_history, 3);
        assert_eq!(b.measure_words(2.5, false), "bytes_out totalling 2.5");

        let b = compile("  kind: rare\n  of: user_agent_family\n").unwrap();
        assert_eq!((b.kind, b.below, b.min_history), (BaselineKind::Rare, 3, 0));
        assert_eq!(b.by[0].0, "principal");

        let err = |extra: &str| compile(extra).unwrap_err();
        assert!(err("  kind: rate\n  measure: avg(bytes_out)\n").contains("measure"));
        assert!(err("  kind: rate\n  measure: sum(principal)\n").contains("numeric"));
        assert!(err("  kind: rate\n  measure: sum(network)\n").contains("numeric"));
        assert!(err("  kind: rate\n  of: object_key\n").contains("takes no `of`"));
        assert!(err("  kind: rate\n  window: 0m\n").contains("window"));
        assert!(err("  kind: rate\n  factor: -1\n").contains("factor"));
        assert!(err("  kind: rate\n  below: 2\n").contains("applies to kind rare only"));
        assert!(err("  kind: rare\n").contains("needs `of`"));
        assert!(err("  kind: rare\n  of: region\n  below: 1\n").contains("below"));
        assert!(err("  kind: rare\n  of: region\n  min_history: 5\n").contains("min_history"));
        assert!(err("  kind: new_value\n  of: region\n  window: 1h\n").contains("window"));
        assert!(
            err("  kind: new_value\n  of: region\n  utc_offset: \"+01:00\"\n")
                .contains("utc_offset")
        );
    }

    #[test]
    fn the_fingerprint_follows_meaning_not_thresholds() {
        let fp = |extra: &str| compile(extra).unwrap().fingerprint;
        let base = fp("  kind: rate\n  measure: count\n");
        assert_eq!(base, fp("  kind: rate\n  factor: 20\n  learning: 1d\n"));
        assert_ne!(base, fp("  kind: rate\n  window: 2h\n"));
        assert_ne!(base, fp("  kind: rate\n  measure: sum(bytes_out)\n"));
        assert_ne!(
            fp("  kind: new_value\n  of: region\n"),
            fp("  kind: new_value\n  of: bucket\n")
        );
        assert_ne!(
            fp("  kind: rare\n  of: region\n"),
            fp("  kind: rare\n  of: region\n  below: 5\n")
        );
    }

    #[test]
    fn numbers_read_well() {
        assert_eq!(number_words(0.0), "0");
        assert_eq!(number_words(1_234_567.0), "1,234,567");
        assert_eq!(number_words(12.5), "12.5");
        assert_eq!(number_words(-1500.0), "-1,500");
    }
}
