//! Baseline state: per baseline rule and key (the principal by default), what
//! is usual, in a few dozen bytes per key and with fixed budgets.
//!
//! - `new_value`: the values seen, each as a 32-bit fingerprint with a
//!   saturating count, in a sorted boxed slice (8 bytes a value), at most
//!   [`MAX_VALUES`] per key. Past that the least-seen value is evicted and
//!   the set is marked **saturated**: a saturated set no longer alerts on new
//!   values (it cannot tell new from evicted), it only keeps learning.
//! - `unusual_hour`: 24 one-byte counters, one per hour of day (UTC or the
//!   rule's offset). When one would pass 255 all are halved, rounding up so
//!   that an hour once seen is never taken for one never seen; halving keeps
//!   the shares to within a few counts, and shares are taken over the
//!   counters' sum (from 128 upwards once any hour was busy).
//! - `rate`: per key a fixed 28-byte profile: for each of four 6-hour parts
//!   of the day (in the rule's offset; one part when bins are 6 h or longer)
//!   the *usual* value, a decayed maximum of past bins' values (each active
//!   bin folded into its part multiplies the old maximum by [`RATE_DECAY`]
//!   first, so a one-off burst fades over about a hundred active bins),
//!   stored as a 16-bit step of a log scale (steps of 0.05% of 1 + value,
//!   rounded up, so quantising never raises an alert), and
//!   whether the part has any history; plus the running values of two open
//!   bins, the current one and the one before it. Idle bins are implicit
//!   zeros and cost nothing. A row alerts *as soon as* its bin's running
//!   value exceeds `factor` x the usual value of its part of the day and
//!   reaches `min_value`, once per bin. A row one bin behind the key's
//!   newest still counts and is evaluated (CloudTrail files arrive late and
//!   out of order, so the next hour's file can come first); the older open
//!   bin is folded into the history when a row two bins later arrives (so
//!   alerting bins are learnt too). A row older than both open bins is not
//!   counted ([`BaselineStats::late_rows`]). `count_distinct` keeps each
//!   open bin's values exactly (32-bit fingerprints, up to
//!   [`EXACT_DISTINCT`]), then as a HyperLogLog of 1,024 one-byte registers.
//! - `rare`: per *value* (64-bit fingerprint) when it was first and last seen
//!   and the 32-bit fingerprints of up to `below - 1` holders (keys), then
//!   only "many". The rule's learning period starts at the first event the
//!   rule saw, for the whole organisation.
//!
//! Keys are 64-bit fingerprints of the key parts
//! ([`trailhound_rules::baseline::key_fingerprint`]), held with their
//! profiles in a dense vector (grown by an eighth at a time) indexed by an
//! open-addressed table of 32-bit slots (an 8-bit tag and the position), at
//! most three quarters full ([`KeyTable`]). A key costs its profile, its
//! 8-byte fingerprint and 5 to 11 bytes of index: a `rate` key about 45
//! bytes, `new_value` with three values about 75.
//! Times are whole seconds since 1970 in `u32` (to 2106): learning is
//! measured to the second, which changes nothing for CloudTrail's
//! whole-second event times.
//!
//! The texts of values, needed only for an alert's "usually: ..." list, live
//! once in a shared interner (fingerprint -> text) across all keys and rules,
//! bounded ([`DEFAULT_MAX_INTERNED`] texts, [`MAX_INTERNED_BYTES`] bytes,
//! texts up to [`MAX_INTERNED_TEXT`] bytes). When it is full, new texts are
//! not kept (counted in [`BaselineStats::interner_full`]) and the alert says
//! "(n other values)" instead. Two texts with the same fingerprint are
//! noticed when the second is learnt, and neither is shown again.
//!
//! **Known error.** A new value whose 32-bit fingerprint equals that of one
//! of the n values a key holds is taken as seen and does not alert: with
//! probability at most n / 2^32 per new value (2.3e-9 for 10 values, 6e-8
//! for a full set of 256). Two keys (or two `rare` values) share state when
//! their 64-bit fingerprints are equal: about 3e-8 for a million keys. A
//! `rare` holder is mistaken for a known one with probability at most
//! (below - 1) / 2^32. `count_distinct` is exact up to [`EXACT_DISTINCT`]
//! per bin (bar 32-bit fingerprint merges, about n^2 / 2^33 values: 1.2e-4
//! at 1,024), then an estimate with a standard error of about 3.3%, said so
//! in the alert ("about").
//!
//! A key may alert only once its first event is at least the rule's
//! `learning` period old (event time) and it has `min_history` events (for
//! `rate`: active bins) behind it; `rare` learns for its `learning` period
//! from the rule's first event. Every row updates the state, also rows that
//! alert, so the same departure alerts once. Keys idle (in event time)
//! beyond a horizon ([`DEFAULT_IDLE_HORIZON_MICROS`]) are evicted by a sweep
//! at most once an hour of event time; a global cap on keys across all
//! baseline rules ([`DEFAULT_MAX_PRINCIPALS`]; `rare` values count as keys)
//! refuses new keys when reached and counts the refusals
//! ([`BaselineStats::cap_reached`]).
//!
//! The learnt state can be saved and restored ([`BaselineStore::snapshot`],
//! [`BaselineStore::restore`], [`BaselineSnapshot`]), keyed by rule id and
//! the fingerprint of what the rule's baseline learns.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use trailhound_rules::baseline::{BaselineKind, CompiledBaseline, Measure, number_words};

/// Most values kept per key and rule.
pub const MAX_VALUES: usize = 256;
/// Keys idle for longer than this (event time) are forgotten: 30 days.
pub const DEFAULT_IDLE_HORIZON_MICROS: i64 = 30 * 86_400 * 1_000_000;
/// Most keys held across every baseline rule.
pub const DEFAULT_MAX_PRINCIPALS: usize = 1_000_000;
/// Most value texts the shared interner keeps.
pub const DEFAULT_MAX_INTERNED: usize = 1_000_000;
/// Most bytes of text the shared interner keeps: 64 MiB.
pub const MAX_INTERNED_BYTES: usize = 64 << 20;
/// Longest text the interner keeps, in bytes.
pub const MAX_INTERNED_TEXT: usize = 512;
/// How many usual values an alert lists.
pub const USUAL_SHOWN: usize = 5;
/// Distinct values a `rate` bin counts exactly before it estimates.
pub const EXACT_DISTINCT: usize = 1024;
/// Factor applied to a part of the day's usual `rate` value before each
/// active bin of that part is folded in.
pub const RATE_DECAY: f32 = 0.98;
/// Version of [`BaselineSnapshot`]'s layout; a snapshot of another version
/// restores nothing.
pub const SNAPSHOT_VERSION: u32 = 3;

const SWEEP_EVERY_MICROS: i64 = 3_600 * 1_000_000;
const HOUR_MICROS: i64 = 3_600 * 1_000_000;
const SECOND: i64 = 1_000_000;
const BANDS: usize = 4;
const BAND_HOURS: u8 = 6;
const HLL_BITS: u32 = 10;
const HLL_REGISTERS: usize = 1 << HLL_BITS;
/// Interner entry length meaning "two texts share this fingerprint".
const AMBIGUOUS: u32 = u32::MAX;

/// The budgets of baseline state.
#[derive(Debug, Clone, Copy)]
pub struct BaselineLimits {
    /// Most values per key and rule ([`MAX_VALUES`]).
    pub max_values: usize,
    /// Idle horizon in microseconds of event time.
    pub idle_horizon_micros: i64,
    /// Most keys across all baseline rules.
    pub max_principals: usize,
    /// Most texts in the shared interner ([`DEFAULT_MAX_INTERNED`]).
    pub max_interned: usize,
}

impl Default for BaselineLimits {
    fn default() -> Self {
        Self {
            max_values: MAX_VALUES,
            idle_horizon_micros: DEFAULT_IDLE_HORIZON_MICROS,
            max_principals: DEFAULT_MAX_PRINCIPALS,
            max_interned: DEFAULT_MAX_INTERNED,
        }
    }
}

/// Counters about baseline state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BaselineStats {
    /// Keys held now, across rules (`rare` values included).
    pub principals: usize,
    /// Value sets that became saturated.
    pub saturated_sets: u64,
    /// Values evicted from full sets.
    pub evicted_values: u64,
    /// Keys forgotten because they were idle beyond the horizon.
    pub evicted_idle: u64,
    /// Events of new keys not learnt because the global cap was reached.
    pub cap_reached: u64,
    /// Value texts held by the shared interner now.
    pub interned_values: usize,
    /// Value texts not kept because the interner was full (or the text too long).
    pub interner_full: u64,
    /// `rate` rows not counted because their bin was older than the key's current bin.
    pub late_rows: u64,
}

/// One row as a baseline sees it.
#[derive(Debug, Clone, Copy)]
pub struct Row<'a> {
    /// Fingerprint of the key parts
    /// ([`trailhound_rules::baseline::BaselineColumns::key_fingerprint`]).
    pub key: u64,
    /// The row's value in words (`new_value`, `rare`, `rate` with
    /// `count_distinct`); rows that need one and lack it are not learnt.
    pub value: Option<&'a str>,
    /// The row's amount (`rate` with `sum`); rows that need one and lack it
    /// are not learnt.
    pub amount: Option<f64>,
    /// Event time in microseconds.
    pub time: i64,
}

/// A departure from a key's baseline, with what is usual beside it.
#[derive(Debug, Clone, PartialEq)]
pub enum Finding {
    /// A value never seen for the key.
    NewValue {
        /// The new value.
        value: String,
        /// Up to [`USUAL_SHOWN`] most-seen values whose text is known, with their counts.
        usual: Vec<(String, u32)>,
        /// How many of the most-seen values have no text kept (interner full).
        unnamed: usize,
        /// How many distinct values the key had.
        distinct: usize,
        /// Events seen for the key before this one.
        events: u64,
        /// Time of the key's first event.
        since: i64,
    },
    /// An hour of day never or rarely seen for the key.
    UnusualHour {
        /// The hour (0-23, in the rule's offset).
        hour: u8,
        /// Events counted in that hour before this one.
        seen: u32,
        /// Up to [`USUAL_SHOWN`] busiest hours with their counts.
        usual: Vec<(u8, u32)>,
        /// Events seen for the key before this one.
        events: u64,
        /// Sum of the hour counters before this one (shares are over it;
        /// equal to `events` until counters were halved).
        total: u64,
        /// Time of the key's first event.
        since: i64,
    },
    /// A bin whose value is far above the key's usual for that part of the day.
    Rate {
        /// The bin's value when it crossed.
        value: f64,
        /// True when `value` is an estimate (many distinct values).
        estimated: bool,
        /// Start of the bin (event time).
        bin_start: i64,
        /// First hour of the part of the day (0, 6, 12, 18 in the rule's
        /// offset); `None` when bins are 6 h or longer.
        band: Option<u8>,
        /// The usual value for that part of the day (0 when it had no activity).
        usual: f64,
        /// 1 when that part of the day has history behind `usual`, else 0.
        band_bins: u32,
        /// Active bins of history in all.
        history_bins: u32,
        /// Time of the key's first event.
        since: i64,
    },
    /// A value few holders across the organisation have shown.
    Rare {
        /// The value.
        value: String,
        /// Holders that have shown it, this one included.
        holders: usize,
        /// When it was first seen.
        since: i64,
    },
}

impl Finding {
    /// What is new, for the alert id: the value, `hour:HH`, or `bin:<start>`.
    pub fn id_part(&self) -> String {
        match self {
            Finding::NewValue { value, .. } | Finding::Rare { value, .. } => value.clone(),
            Finding::UnusualHour { hour, .. } => format!("hour:{hour:02}"),
            Finding::Rate { bin_start, .. } => format!("bin:{bin_start}"),
        }
    }
}

// ---------------------------------------------------------------------------
// Hashing of values that are already fingerprints.

/// A hasher for keys that are already fingerprints: one multiply, so the
/// high bits (hashbrown's tag) and the low bits (its bucket) both vary.
#[derive(Debug, Default, Clone, Copy)]
struct FpHasher(u64);

const FP_MUL: u64 = 0x9E37_79B9_7F4A_7C15;

impl Hasher for FpHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(FP_MUL);
        }
    }
    fn write_u32(&mut self, n: u32) {
        self.0 = (self.0 ^ u64::from(n)).wrapping_mul(FP_MUL);
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0 ^ n ^ (n >> 32)).wrapping_mul(FP_MUL);
    }
}

type FpMap<K, V> = HashMap<K, V, BuildHasherDefault<FpHasher>>;

/// Approximate heap bytes of a std hash map (hashbrown layout: buckets of
/// `(K, V)` plus one control byte each and a group of padding).
fn map_heap_bytes<K, V>(m: &FpMap<K, V>) -> usize {
    let cap = m.capacity();
    if cap == 0 {
        return 0;
    }
    let buckets = if cap < 8 {
        (cap + 1).next_power_of_two()
    } else {
        (cap * 8 / 7).next_power_of_two()
    };
    buckets * (std::mem::size_of::<(K, V)>() + 1) + 16
}

/// The 32-bit fingerprint of a value's text (set members, interner keys).
fn value_fp(text: &str) -> u32 {
    (trailhound_rules::baseline::fingerprint(text) >> 32) as u32
}

/// Whole seconds since 1970 of a time in microseconds, clamped to `u32`.
fn secs(micros: i64) -> u32 {
    micros.div_euclid(SECOND).clamp(0, i64::from(u32::MAX)) as u32
}

fn micros(secs: u32) -> i64 {
    i64::from(secs) * SECOND
}

/// True when `now` is at least `learning_micros` after `first`.
fn learnt(first: u32, now: u32, learning_micros: i64) -> bool {
    (i64::from(now) - i64::from(first)) * SECOND >= learning_micros
}

// ---------------------------------------------------------------------------
// The key table.

/// Something held per key, with its heap use.
trait Profile {
    fn heap(&self) -> usize;
    /// Where the profile's heap part starts, for prefetching.
    fn heap_start(&self) -> Option<*const u8> {
        None
    }
}

/// A profile with its key. The key is kept as two 32-bit halves so that a
/// profile of 4-byte fields is not padded to the key's 8-byte alignment.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Keyed<P> {
    lo: u32,
    hi: u32,
    p: P,
}

impl<P> Keyed<P> {
    fn new(key: u64, p: P) -> Self {
        Self {
            lo: key as u32,
            hi: (key >> 32) as u32,
            p,
        }
    }

    fn key(&self) -> u64 {
        (u64::from(self.hi) << 32) | u64::from(self.lo)
    }
}

/// Bits of an index slot that hold the position plus one.
const SLOT_POS_BITS: u32 = 24;
const SLOT_POS_MASK: u32 = (1 << SLOT_POS_BITS) - 1;
/// Most keys one rule's table holds: 16,777,214.
pub const MAX_TABLE_KEYS: usize = SLOT_POS_MASK as usize - 1;

/// The 8-bit tag of a key in its index slot: the key's top byte, which the
/// home slot (taken from the low 32 bits) does not depend on.
fn slot_tag(key: u64) -> u32 {
    (key >> 56) as u32
}

/// Profiles by 64-bit key: a dense vector plus an open-addressed index.
///
/// Each 32-bit index slot packs the key's top byte (a tag) with the
/// profile's position plus one in 24 bits (0: empty, so at most
/// [`MAX_TABLE_KEYS`] keys); lookups probe linearly from a slot chosen by
/// the key's low 32 bits and confirm the whole key in the vector only when
/// the tag agrees (a stranger's tag agrees one time in 256), so keys that
/// share their low bits simply take further slots. The index stays at most three
/// quarters full. Keys are only removed by [`KeyTable::retain`], which
/// compacts the vector and rebuilds the index, so slots never need
/// tombstones. One slot read and one profile read per lookup, both of which
/// [`KeyTable::prefetch_slot`] and [`KeyTable::prefetch_profile`] can start
/// ahead of time for a batch of rows.
#[derive(Debug, Clone)]
struct KeyTable<P> {
    entries: Vec<Keyed<P>>,
    slots: Vec<u32>,
}

impl<P> Default for KeyTable<P> {
    fn default() -> Self {
        Self {
            entries: Vec::new(),
            slots: Vec::new(),
        }
    }
}

/// Smallest index of a table that has keys.
const MIN_SLOTS: usize = 16;

/// Where a tag's probe starts in an index of `mask + 1` slots.
fn home_slot(tag: u32, mask: usize) -> usize {
    ((u64::from(tag).wrapping_mul(FP_MUL) >> 32) as usize) & mask
}

/// Asks the processor to start loading the cache line at `p`. Only a hint:
/// it never faults, whatever the address.
#[inline(always)]
fn prefetch<T>(p: *const T) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        // SAFETY: a prefetch is a hint that never reads memory
        // architecturally and cannot fault, whatever the address; SSE is
        // part of every x86_64 target.
        unsafe { _mm_prefetch::<_MM_HINT_T0>(p.cast::<i8>()) };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

impl<P: Profile> KeyTable<P> {
    fn len(&self) -> usize {
        self.entries.len()
    }

    fn position(&self, key: u64) -> Option<usize> {
        if self.slots.is_empty() {
            return None;
        }
        let mask = self.slots.len() - 1;
        let tag = slot_tag(key);
        let mut i = home_slot(key as u32, mask);
        loop {
            let slot = *self.slots.get(i)?;
            if slot == 0 {
                return None;
            }
            if slot >> SLOT_POS_BITS == tag {
                let pos = ((slot & SLOT_POS_MASK) as usize).wrapping_sub(1);
                if self.entries.get(pos).is_some_and(|e| e.key() == key) {
                    return Some(pos);
                }
            }
            i = (i + 1) & mask;
        }
    }

    /// Starts loading the index slot where a lookup of `key` begins.
    fn prefetch_slot(&self, key: u64) {
        if self.slots.is_empty() {
            return;
        }
        let i = home_slot(key as u32, self.slots.len() - 1);
        if let Some(slot) = self.slots.get(i) {
            prefetch(slot);
        }
    }

    /// Starts loading `key`'s profile (and its heap part) when its home
    /// slot (ideally already in cache through [`KeyTable::prefetch_slot`])
    /// holds it; does nothing otherwise.
    fn prefetch_profile(&self, key: u64) {
        if self.slots.is_empty() {
            return;
        }
        let i = home_slot(key as u32, self.slots.len() - 1);
        let Some(&slot) = self.slots.get(i) else {
            return;
        };
        if slot == 0 || slot >> SLOT_POS_BITS != slot_tag(key) {
            return;
        }
        let pos = ((slot & SLOT_POS_MASK) as usize).wrapping_sub(1);
        if let Some(e) = self.entries.get(pos) {
            prefetch(e);
            if let Some(heap) = e.p.heap_start() {
                prefetch(heap);
            }
        }
    }

    /// Writes `pos` into the index under `key`, which must be absent.
    fn link(&mut self, key: u64, pos: usize) {
        let mask = self.slots.len() - 1;
        let mut i = home_slot(key as u32, mask);
        while let Some(slot) = self.slots.get_mut(i) {
            if *slot == 0 {
                *slot = (slot_tag(key) << SLOT_POS_BITS) | ((pos as u32 + 1) & SLOT_POS_MASK);
                return;
            }
            i = (i + 1) & mask;
        }
    }

    /// Makes an index of `slots` slots (a power of two) over the vector.
    fn reindex(&mut self, slots: usize) {
        self.slots = vec![0; slots];
        for pos in 0..self.entries.len() {
            let key = self.entries[pos].key();
            self.link(key, pos);
        }
    }

    /// Index slots for `keys` keys: at most three quarters full.
    fn slots_for(keys: usize) -> usize {
        (keys.saturating_mul(4) / 3 + 1)
            .next_power_of_two()
            .max(MIN_SLOTS)
    }

    /// Adds a key known to be absent; `None` past [`MAX_TABLE_KEYS`] keys.
    fn insert(&mut self, key: u64, p: P) -> Option<usize> {
        let pos = self.entries.len();
        if pos >= MAX_TABLE_KEYS {
            return None;
        }
        if self.entries.len() == self.entries.capacity() {
            // Grow by an eighth rather than double: large vectors are
            // reallocated in place or remapped (no copy), and the slack
            // stays around 6% of the table.
            self.entries.reserve_exact((self.entries.len() / 8).max(16));
        }
        self.entries.push(Keyed::new(key, p));
        if (pos + 1).saturating_mul(4) > self.slots.len().saturating_mul(3) {
            self.reindex(Self::slots_for(pos + 1).max(self.slots.len() * 2));
        } else {
            self.link(key, pos);
        }
        Some(pos)
    }

    fn at(&mut self, pos: usize) -> Option<&mut P> {
        self.entries.get_mut(pos).map(|e| &mut e.p)
    }

    /// Removes the profiles `keep` refuses; returns how many.
    fn retain(&mut self, mut keep: impl FnMut(&P) -> bool) -> usize {
        let before = self.entries.len();
        self.entries.retain(|e| keep(&e.p));
        let removed = before - self.entries.len();
        if removed > 0 {
            if self.entries.capacity() > 2 * self.entries.len() + 64 {
                self.entries.shrink_to_fit();
            }
            let slots = if self.entries.is_empty() {
                0
            } else {
                Self::slots_for(self.entries.len())
            };
            self.reindex(slots);
        }
        removed
    }

    fn from_entries(entries: Vec<Keyed<P>>) -> Self {
        let mut t = Self {
            entries: Vec::with_capacity(entries.len()),
            slots: vec![0; Self::slots_for(entries.len())],
        };
        for e in entries {
            if t.position(e.key()).is_none() {
                t.insert(e.key(), e.p);
            }
        }
        t
    }

    fn heap_bytes(&self) -> usize {
        self.entries.capacity() * std::mem::size_of::<Keyed<P>>()
            + self.slots.capacity() * std::mem::size_of::<u32>()
            + self.entries.iter().map(|e| e.p.heap()).sum::<usize>()
    }
}

impl<P: Serialize> Serialize for KeyTable<P> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.entries.serialize(s)
    }
}

impl<'de, P: Deserialize<'de> + Profile> Deserialize<'de> for KeyTable<P> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Self::from_entries(Vec::<Keyed<P>>::deserialize(d)?))
    }
}

/// Finds or adds a key's profile, counting it against the global cap.
fn profile_at<'t, P: Profile>(
    table: &'t mut KeyTable<P>,
    key: u64,
    stats: &mut BaselineStats,
    max_keys: usize,
    make: impl FnOnce() -> P,
) -> Option<&'t mut P> {
    let pos = match table.position(key) {
        Some(pos) => pos,
        None => {
            if stats.principals >= max_keys {
                stats.cap_reached += 1;
                return None;
            }
            let Some(pos) = table.insert(key, make()) else {
                stats.cap_reached += 1;
                return None;
            };
            stats.principals += 1;
            pos
        }
    };
    table.at(pos)
}

// ---------------------------------------------------------------------------
// The shared interner.

/// Value texts by 32-bit fingerprint, shared by every key and rule, in one
/// text arena.
#[derive(Debug, Clone, Default)]
struct Interner {
    /// fingerprint -> (offset, length) in `text`; length [`AMBIGUOUS`] when
    /// two texts share the fingerprint.
    map: FpMap<u32, (u32, u32)>,
    text: String,
}

/// The interner as saved: entries sorted by fingerprint, and the arena.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct InternerState {
    entries: Vec<(u32, u32, u32)>,
    text: String,
}

impl Interner {
    /// Keeps `text` for `fp` if there is room; false when refused.
    fn intern(&mut self, fp: u32, text: &str, max_entries: usize) -> bool {
        if let Some(&(off, len)) = self.map.get(&fp) {
            if len != AMBIGUOUS && self.slice(off, len) != Some(text) {
                self.map.insert(fp, (0, AMBIGUOUS));
            }
            return true;
        }
        if self.map.len() >= max_entries
            || text.len() > MAX_INTERNED_TEXT
            || self.text.len() + text.len() > MAX_INTERNED_BYTES
        {
            return false;
        }
        let (Ok(off), Ok(len)) = (u32::try_from(self.text.len()), u32::try_from(text.len())) else {
            return false;
        };
        self.text.push_str(text);
        self.map.insert(fp, (off, len));
        true
    }

    fn slice(&self, off: u32, len: u32) -> Option<&str> {
        let start = off as usize;
        self.text.get(start..start + len as usize)
    }

    fn get(&self, fp: u32) -> Option<&str> {
        let &(off, len) = self.map.get(&fp)?;
        if len == AMBIGUOUS {
            return None;
        }
        self.slice(off, len)
    }

    fn len(&self) -> usize {
        self.map.len()
    }

    fn heap_bytes(&self) -> usize {
        self.text.capacity() + map_heap_bytes(&self.map)
    }

    fn save(&self) -> InternerState {
        let mut entries: Vec<(u32, u32, u32)> =
            self.map.iter().map(|(&f, &(o, l))| (f, o, l)).collect();
        entries.sort_unstable();
        InternerState {
            entries,
            text: self.text.clone(),
        }
    }

    fn load(state: InternerState) -> Self {
        let mut map = FpMap::default();
        map.reserve(state.entries.len());
        for (fp, off, len) in state.entries {
            let fits = len == AMBIGUOUS
                || state
                    .text
                    .get(off as usize..off as usize + len as usize)
                    .is_some();
            if fits {
                map.insert(fp, (off, len));
            }
        }
        Self {
            map,
            text: state.text,
        }
    }
}

// ---------------------------------------------------------------------------
// Profiles of each kind.

/// A value of a key's set: its fingerprint and a saturating count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct Seen {
    fp: u32,
    count: u32,
}

/// `new_value`: 32 bytes plus 8 a value.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct ValueProfile {
    first: u32,
    last: u32,
    events: u32,
    saturated: bool,
    /// Sorted by fingerprint.
    values: Box<[Seen]>,
}

impl Profile for ValueProfile {
    fn heap(&self) -> usize {
        self.values.len() * std::mem::size_of::<Seen>()
    }
    fn heap_start(&self) -> Option<*const u8> {
        (!self.values.is_empty()).then(|| self.values.as_ptr().cast::<u8>())
    }
}

/// `unusual_hour`: 36 bytes, no heap.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct HourProfile {
    first: u32,
    last: u32,
    events: u32,
    hours: [u8; 24],
}

impl Profile for HourProfile {
    fn heap(&self) -> usize {
        0
    }
}

/// `rate`: 28 bytes (32 with its key); a `count_distinct` rule's profile
/// adds the open bins' distinct values on the heap while they last
/// ([`DistinctRate`]).
///
/// Two bins are open at a time: the current one and, when it directly
/// precedes it, the previous one, so that a row up to one bin late (a
/// CloudTrail file delivered after the next hour's) is still counted and
/// evaluated. The previous bin is folded into the history when a row two or
/// more bins later arrives. The key's last activity is the current bin (the
/// table knows the bin length), so no last-seen time is kept.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct RateProfile {
    first: u32,
    /// Current bin (event time / bin length).
    bin: u32,
    /// Active bins folded into the history.
    history: u16,
    /// Bits 0..4: whether each part of the day has folded bins; then
    /// [`RATE_ALERTED`], [`RATE_PREV_OPEN`], [`RATE_PREV_ALERTED`].
    flags: u8,
    /// Usual value per part of the day, on the log scale of
    /// [`encode_usual`].
    high: [u16; BANDS],
    /// The current bin's value so far (f32: exact for counts up to 2^24,
    /// about 7 significant digits for sums).
    running: f32,
    /// The previous bin's value, while it is open.
    prev_running: f32,
}

impl RateProfile {
    fn new(now: u32, bin: u32) -> Self {
        Self {
            first: now,
            bin,
            history: 0,
            flags: 0,
            high: [0; BANDS],
            running: 0.0,
            prev_running: 0.0,
        }
    }

    fn usual(&self, band: usize) -> f32 {
        self.high.get(band).copied().map_or(0.0, decode_usual)
    }
}

/// Steps of the usual-value scale per unit of ln(1 + value): a step is a
/// relative change of 1/2048 (0.05%), and 65,535 steps reach about 8e13.
const USUAL_STEPS: f64 = 2048.0;

/// A usual value as a 16-bit step of a log scale, rounded up so that the
/// value read back is never below the one stored: quantising can only make
/// an alert less likely, never raise one.
fn encode_usual(value: f32) -> u16 {
    if value.is_nan() || value <= 0.0 {
        return 0;
    }
    let steps = (f64::from(value).ln_1p() * USUAL_STEPS).ceil();
    let mut q = steps.clamp(0.0, f64::from(u16::MAX)) as u16;
    while q < u16::MAX && decode_usual(q) < value {
        q += 1;
    }
    q
}

fn decode_usual(q: u16) -> f32 {
    (f64::from(q) / USUAL_STEPS).exp_m1() as f32
}

/// Whether the current bin has alerted.
const RATE_ALERTED: u8 = 1 << 4;
/// Whether the bin before the current one is still open.
const RATE_PREV_OPEN: u8 = 1 << 5;
/// Whether the previous open bin has alerted.
const RATE_PREV_ALERTED: u8 = 1 << 6;

/// `rate` with `count_distinct`: the rate profile and the distinct values
/// of its two open bins.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct DistinctRate {
    rate: RateProfile,
    distinct: Option<Box<OpenDistinct>>,
}

/// The distinct values of a rate profile's two open bins.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct OpenDistinct {
    current: Option<Distinct>,
    previous: Option<Distinct>,
}

impl OpenDistinct {
    fn heap(&self) -> usize {
        std::mem::size_of::<Self>()
            + [&self.current, &self.previous]
                .into_iter()
                .flatten()
                .map(|d| match d {
                    Distinct::Exact(v) => v.capacity() * 4,
                    Distinct::Sketch(r) => r.len(),
                })
                .sum::<usize>()
    }
}

impl Profile for RateProfile {
    fn heap(&self) -> usize {
        0
    }
}

impl Profile for DistinctRate {
    fn heap(&self) -> usize {
        self.distinct.as_ref().map_or(0, |d| d.heap())
    }
}

/// A `rate` rule's profiles and its bin length in seconds, by which a
/// key's current bin says when it was last active.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(bound(deserialize = "P: Deserialize<'de> + Profile"))]
struct RateTable<P> {
    bin_secs: u32,
    table: KeyTable<P>,
}

impl<P: Profile> RateTable<P> {
    fn new(baseline: &CompiledBaseline) -> Self {
        Self {
            bin_secs: (baseline.bin_micros / SECOND).clamp(1, i64::from(u32::MAX)) as u32,
            table: KeyTable::default(),
        }
    }

    /// Forgets keys whose current bin ended before `cutoff`.
    fn forget_idle(&mut self, cutoff: u32, rate: impl Fn(&P) -> &RateProfile) -> usize {
        let bin_secs = u64::from(self.bin_secs);
        self.table
            .retain(|p| (u64::from(rate(p).bin) + 1).saturating_mul(bin_secs) >= u64::from(cutoff))
    }
}

/// Distinct values of one bin: exact up to [`EXACT_DISTINCT`], then a
/// HyperLogLog.
#[derive(Debug, Clone, Serialize, Deserialize)]
enum Distinct {
    /// Sorted fingerprints.
    Exact(Vec<u32>),
    /// [`HLL_REGISTERS`] registers.
    Sketch(Box<[u8]>),
}

impl Distinct {
    fn insert(&mut self, fp: u32) {
        match self {
            Distinct::Exact(v) => {
                if let Err(at) = v.binary_search(&fp) {
                    if v.len() < EXACT_DISTINCT {
                        v.insert(at, fp);
                    } else {
                        let mut regs = vec![0u8; HLL_REGISTERS].into_boxed_slice();
                        for &x in v.iter() {
                            hll_add(&mut regs, x);
                        }
                        hll_add(&mut regs, fp);
                        *self = Distinct::Sketch(regs);
                    }
                }
            }
            Distinct::Sketch(regs) => hll_add(regs, fp),
        }
    }

    fn estimate(&self) -> f64 {
        match self {
            Distinct::Exact(v) => v.len() as f64,
            Distinct::Sketch(regs) => hll_estimate(regs).round(),
        }
    }

    fn is_estimate(&self) -> bool {
        matches!(self, Distinct::Sketch(_))
    }
}

fn hll_add(regs: &mut [u8], fp: u32) {
    let idx = (fp >> (32 - HLL_BITS)) as usize;
    let rest = fp << HLL_BITS;
    let rank = (rest.leading_zeros() + 1).min(32 - HLL_BITS + 1) as u8;
    if let Some(r) = regs.get_mut(idx) {
        *r = (*r).max(rank);
    }
}

fn hll_estimate(regs: &[u8]) -> f64 {
    let m = regs.len() as f64;
    if regs.is_empty() {
        return 0.0;
    }
    let sum: f64 = regs.iter().map(|&r| (-f64::from(r)).exp2()).sum();
    let zeros = regs.iter().filter(|&&r| r == 0).count();
    let alpha = 0.7213 / (1.0 + 1.079 / m);
    let raw = alpha * m * m / sum;
    let two32 = 4_294_967_296.0_f64;
    if raw <= 2.5 * m && zeros > 0 {
        m * (m / zeros as f64).ln()
    } else if raw > two32 / 30.0 {
        -two32 * (1.0 - raw / two32).ln()
    } else {
        raw
    }
}

/// `rare`: per value, 32 bytes plus 4 a holder (at most `below - 1`).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct RareValue {
    since: u32,
    last: u32,
    /// `below` holders or more have shown it: never rare again.
    many: bool,
    holders: Box<[u32]>,
}

impl Profile for RareValue {
    fn heap(&self) -> usize {
        self.holders.len() * 4
    }
}

/// `rare` state of one rule.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct RareState {
    /// The rule's first event.
    first: Option<u32>,
    values: KeyTable<RareValue>,
}

/// The state of one baseline rule.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
enum RuleState {
    #[default]
    Empty,
    Values(KeyTable<ValueProfile>),
    Hours(KeyTable<HourProfile>),
    Rate(RateTable<RateProfile>),
    DistinctRate(RateTable<DistinctRate>),
    Rare(RareState),
}

impl RuleState {
    fn empty(baseline: &CompiledBaseline) -> Self {
        match baseline.kind {
            BaselineKind::NewValue => RuleState::Values(KeyTable::default()),
            BaselineKind::UnusualHour => RuleState::Hours(KeyTable::default()),
            BaselineKind::Rate if baseline.measure == Measure::CountDistinct => {
                RuleState::DistinctRate(RateTable::new(baseline))
            }
            BaselineKind::Rate => RuleState::Rate(RateTable::new(baseline)),
            BaselineKind::Rare => RuleState::Rare(RareState::default()),
        }
    }

    /// Whether this state is the kind `baseline` learns into.
    fn fits(&self, baseline: &CompiledBaseline) -> bool {
        let distinct = baseline.measure == Measure::CountDistinct;
        match self {
            RuleState::Empty => false,
            RuleState::Values(_) => baseline.kind == BaselineKind::NewValue,
            RuleState::Hours(_) => baseline.kind == BaselineKind::UnusualHour,
            RuleState::Rate(_) => baseline.kind == BaselineKind::Rate && !distinct,
            RuleState::DistinctRate(_) => baseline.kind == BaselineKind::Rate && distinct,
            RuleState::Rare(_) => baseline.kind == BaselineKind::Rare,
        }
    }

    fn keys(&self) -> usize {
        match self {
            RuleState::Empty => 0,
            RuleState::Values(t) => t.len(),
            RuleState::Hours(t) => t.len(),
            RuleState::Rate(t) => t.table.len(),
            RuleState::DistinctRate(t) => t.table.len(),
            RuleState::Rare(r) => r.values.len(),
        }
    }

    fn forget_idle(&mut self, cutoff: u32) -> usize {
        let keep = |last: u32| last >= cutoff;
        match self {
            RuleState::Empty => 0,
            RuleState::Values(t) => t.retain(|p| keep(p.last)),
            RuleState::Hours(t) => t.retain(|p| keep(p.last)),
            RuleState::Rate(t) => t.forget_idle(cutoff, |p| p),
            RuleState::DistinctRate(t) => t.forget_idle(cutoff, |p| &p.rate),
            RuleState::Rare(r) => r.values.retain(|p| keep(p.last)),
        }
    }

    fn heap_bytes(&self) -> usize {
        match self {
            RuleState::Empty => 0,
            RuleState::Values(t) => t.heap_bytes(),
            RuleState::Hours(t) => t.heap_bytes(),
            RuleState::Rate(t) => t.table.heap_bytes(),
            RuleState::DistinctRate(t) => t.table.heap_bytes(),
            RuleState::Rare(r) => r.values.heap_bytes(),
        }
    }
}

#[derive(Debug, Clone, Default)]
struct RuleSlot {
    /// The fingerprint of the rule's baseline, when known.
    fingerprint: Option<u64>,
    state: RuleState,
}

// ---------------------------------------------------------------------------
// Snapshots.

/// The learnt state of a [`BaselineStore`], for checkpoints: each rule's
/// state under its rule id and the fingerprint of its baseline
/// ([`CompiledBaseline::fingerprint`]), the shared interner and the
/// counters. Serde-serialisable (postcard: [`BaselineSnapshot::to_bytes`]).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct BaselineSnapshot {
    /// Layout version ([`SNAPSHOT_VERSION`]).
    pub version: u32,
    rules: Vec<SavedRule>,
    interner: InternerState,
    last_sweep: Option<i64>,
    stats: BaselineStats,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct SavedRule {
    id: String,
    fingerprint: u64,
    state: RuleState,
}

impl BaselineSnapshot {
    /// The rules saved, as (rule id, baseline fingerprint, keys held).
    pub fn rules(&self) -> Vec<(&str, u64, usize)> {
        self.rules
            .iter()
            .map(|r| (r.id.as_str(), r.fingerprint, r.state.keys()))
            .collect()
    }

    /// The snapshot as postcard bytes.
    pub fn to_bytes(&self) -> Result<Vec<u8>, postcard::Error> {
        postcard::to_allocvec(self)
    }

    /// A snapshot from postcard bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, postcard::Error> {
        postcard::from_bytes(bytes)
    }
}

// ---------------------------------------------------------------------------
// The store.

/// Baseline state of every baseline rule of an engine.
#[derive(Debug, Default)]
pub struct BaselineStore {
    rules: Vec<RuleSlot>,
    interner: Interner,
    limits: BaselineLimits,
    stats: BaselineStats,
    last_sweep: Option<i64>,
}

impl BaselineStore {
    /// Empty state for `rules` rules (indexed as in the rule set). The
    /// baselines' fingerprints are learnt as rows arrive; prefer
    /// [`BaselineStore::for_rules`] when state will be restored.
    pub fn new(rules: usize, limits: BaselineLimits) -> Self {
        Self {
            rules: vec![RuleSlot::default(); rules],
            limits,
            ..Self::default()
        }
    }

    /// Empty state for a rule set: one entry per rule, in order, with the
    /// rule's baseline (`None` for rules without one).
    pub fn for_rules<'a>(
        baselines: impl IntoIterator<Item = Option<&'a CompiledBaseline>>,
        limits: BaselineLimits,
    ) -> Self {
        Self {
            rules: baselines
                .into_iter()
                .map(|b| RuleSlot {
                    fingerprint: b.map(|b| b.fingerprint),
                    state: RuleState::Empty,
                })
                .collect(),
            limits,
            ..Self::default()
        }
    }

    /// Keys held per rule, in the rule set's order (0 for rules without a
    /// baseline or without state yet).
    pub fn keys_per_rule(&self) -> Vec<usize> {
        self.rules.iter().map(|r| r.state.keys()).collect()
    }

    /// [`BaselineStore::heap_bytes`] per rule, in the rule set's order
    /// (the interner, shared by every rule, not included).
    pub fn heap_bytes_per_rule(&self) -> Vec<usize> {
        self.rules.iter().map(|r| r.state.heap_bytes()).collect()
    }

    /// Sets the budgets.
    pub fn set_limits(&mut self, limits: BaselineLimits) {
        self.limits = limits;
    }

    /// Counters so far.
    pub fn stats(&self) -> &BaselineStats {
        &self.stats
    }

    /// An estimate of the heap bytes the state holds (tables, value sets,
    /// the interner). Walks every key: call it for metrics, not per row.
    pub fn heap_bytes(&self) -> usize {
        self.rules.capacity() * std::mem::size_of::<RuleSlot>()
            + self
                .rules
                .iter()
                .map(|r| r.state.heap_bytes())
                .sum::<usize>()
            + self.interner.heap_bytes()
    }

    /// Starts loading the index slot that observing `key` for rule `ri`
    /// reads first. A hint for memory-bound feeds: call it some rows ahead
    /// of [`BaselineStore::observe`] (the engine uses 16), then
    /// [`BaselineStore::prefetch_profile`] fewer rows ahead (8), so that the
    /// cache misses of many rows overlap instead of queueing one by one.
    /// `rare` rules (keyed by value, not by key) are not prefetched.
    pub fn prefetch_slot(&self, ri: usize, key: u64) {
        match self.rules.get(ri).map(|r| &r.state) {
            Some(RuleState::Values(t)) => t.prefetch_slot(key),
            Some(RuleState::Hours(t)) => t.prefetch_slot(key),
            Some(RuleState::Rate(t)) => t.table.prefetch_slot(key),
            Some(RuleState::DistinctRate(t)) => t.table.prefetch_slot(key),
            _ => {}
        }
    }

    /// Starts loading `key`'s profile for rule `ri` (and, for `new_value`,
    /// its set of values); see [`BaselineStore::prefetch_slot`].
    pub fn prefetch_profile(&self, ri: usize, key: u64) {
        match self.rules.get(ri).map(|r| &r.state) {
            Some(RuleState::Values(t)) => t.prefetch_profile(key),
            Some(RuleState::Hours(t)) => t.prefetch_profile(key),
            Some(RuleState::Rate(t)) => t.table.prefetch_profile(key),
            Some(RuleState::DistinctRate(t)) => t.table.prefetch_profile(key),
            _ => {}
        }
    }

    /// Learns one row of rule `ri` and says whether it departs from the
    /// baseline. Rows of `new_value`, `rare` and `rate` with
    /// `count_distinct` without a value, and of `rate` with `sum` without an
    /// amount, are not learnt.
    pub fn observe(
        &mut self,
        ri: usize,
        baseline: &CompiledBaseline,
        row: Row<'_>,
    ) -> Option<Finding> {
        let needs_value = match baseline.kind {
            BaselineKind::NewValue | BaselineKind::Rare => true,
            BaselineKind::Rate => baseline.measure == Measure::CountDistinct,
            BaselineKind::UnusualHour => false,
        };
        if needs_value && row.value.is_none() {
            return None;
        }
        if baseline.kind == BaselineKind::Rate
            && baseline.measure == Measure::Sum
            && row.amount.is_none()
        {
            return None;
        }
        let Self {
            rules,
            interner,
            limits,
            stats,
            ..
        } = self;
        let slot = rules.get_mut(ri)?;
        slot.fingerprint.get_or_insert(baseline.fingerprint);
        if !slot.state.fits(baseline) {
            stats.principals = stats.principals.saturating_sub(slot.state.keys());
            slot.state = RuleState::empty(baseline);
        }
        let now = secs(row.time);
        let max_keys = limits.max_principals;
        match &mut slot.state {
            RuleState::Values(table) => {
                let text = row.value?;
                let p = profile_at(table, row.key, stats, max_keys, || ValueProfile {
                    first: now,
                    last: now,
                    events: 0,
                    saturated: false,
                    values: Box::new([]),
                })?;
                p.first = p.first.min(now);
                p.last = p.last.max(now);
                let eligible = learnt(p.first, now, baseline.learning_micros)
                    && u64::from(p.events) >= baseline.min_history;
                let finding = learn_value(p, text, eligible, limits, interner, stats);
                p.events = p.events.saturating_add(1);
                finding
            }
            RuleState::Hours(table) => {
                let p = profile_at(table, row.key, stats, max_keys, || HourProfile {
                    first: now,
                    last: now,
                    events: 0,
                    hours: [0; 24],
                })?;
                p.first = p.first.min(now);
                p.last = p.last.max(now);
                let eligible = learnt(p.first, now, baseline.learning_micros)
                    && u64::from(p.events) >= baseline.min_history;
                let finding = learn_hour(p, baseline, row.time, eligible);
                p.events = p.events.saturating_add(1);
                finding
            }
            RuleState::Rate(t) => {
                let bin = bin_of(row.time, baseline.bin_micros);
                let p = profile_at(&mut t.table, row.key, stats, max_keys, || {
                    RateProfile::new(now, bin)
                })?;
                p.first = p.first.min(now);
                learn_rate(p, None, baseline, &row, bin, stats)
            }
            RuleState::DistinctRate(t) => {
                let bin = bin_of(row.time, baseline.bin_micros);
                let p = profile_at(&mut t.table, row.key, stats, max_keys, || DistinctRate {
                    rate: RateProfile::new(now, bin),
                    distinct: None,
                })?;
                p.rate.first = p.rate.first.min(now);
                learn_rate(
                    &mut p.rate,
                    Some(&mut p.distinct),
                    baseline,
                    &row,
                    bin,
                    stats,
                )
            }
            RuleState::Rare(state) => {
                let text = row.value?;
                learn_rare(state, baseline, &row, text, stats, max_keys)
            }
            RuleState::Empty => None,
        }
    }

    /// Forgets keys idle beyond the horizon before `newest`; runs at most
    /// once per hour of event time.
    pub fn sweep(&mut self, newest: i64) {
        match self.last_sweep {
            Some(last) if newest.saturating_sub(last) < SWEEP_EVERY_MICROS => return,
            _ => {}
        }
        self.last_sweep = Some(newest);
        let cutoff = secs(newest.saturating_sub(self.limits.idle_horizon_micros));
        let mut gone = 0usize;
        for slot in &mut self.rules {
            gone += slot.state.forget_idle(cutoff);
        }
        self.stats.principals = self.stats.principals.saturating_sub(gone);
        self.stats.evicted_idle += gone as u64;
    }

    /// The learnt state, for a checkpoint. `rule_ids` are the ids of the
    /// rules in the order the store was made for; rules without an id there,
    /// without a known baseline fingerprint or without state are left out.
    pub fn snapshot(&self, rule_ids: &[&str]) -> BaselineSnapshot {
        let rules = self
            .rules
            .iter()
            .zip(rule_ids)
            .filter_map(|(slot, id)| {
                let fingerprint = slot.fingerprint?;
                (!matches!(slot.state, RuleState::Empty)).then(|| SavedRule {
                    id: (*id).to_string(),
                    fingerprint,
                    state: slot.state.clone(),
                })
            })
            .collect();
        BaselineSnapshot {
            version: SNAPSHOT_VERSION,
            rules,
            interner: self.interner.save(),
            last_sweep: self.last_sweep,
            stats: self.stats.clone(),
        }
    }

    /// Replaces the state with a checkpoint's. `rule_ids` are the ids of the
    /// rules now, in the order the store was made for. A rule takes the
    /// saved state with its id only when the baseline fingerprints agree;
    /// rules that changed, are new, or whose fingerprint the store does not
    /// know (made with [`BaselineStore::new`] and not yet fed) start empty,
    /// and state of rules that disappeared is dropped. A snapshot of another
    /// [`SNAPSHOT_VERSION`] restores nothing.
    pub fn restore(&mut self, snapshot: BaselineSnapshot, rule_ids: &[&str]) {
        for slot in &mut self.rules {
            slot.state = RuleState::Empty;
        }
        self.interner = Interner::default();
        self.stats.principals = 0;
        self.stats.interned_values = 0;
        if snapshot.version != SNAPSHOT_VERSION {
            tracing::warn!(
                version = snapshot.version,
                "baseline snapshot of another version: baselines start empty"
            );
            return;
        }
        let mut saved: HashMap<String, SavedRule> = snapshot
            .rules
            .into_iter()
            .map(|r| (r.id.clone(), r))
            .collect();
        let (mut restored, mut dropped) = (0usize, 0usize);
        for (slot, id) in self.rules.iter_mut().zip(rule_ids) {
            let Some(r) = saved.remove(*id) else {
                continue;
            };
            if slot.fingerprint == Some(r.fingerprint) {
                slot.state = r.state;
                restored += 1;
            } else {
                dropped += 1;
            }
        }
        dropped += saved.len();
        self.interner = Interner::load(snapshot.interner);
        self.last_sweep = snapshot.last_sweep;
        self.stats = BaselineStats {
            principals: self.rules.iter().map(|r| r.state.keys()).sum(),
            interned_values: self.interner.len(),
            ..snapshot.stats
        };
        tracing::info!(
            restored,
            dropped,
            keys = self.stats.principals,
            "baseline state restored"
        );
    }
}

// ---------------------------------------------------------------------------
// Learning, per kind.

fn learn_value(
    p: &mut ValueProfile,
    text: &str,
    eligible: bool,
    limits: &BaselineLimits,
    interner: &mut Interner,
    stats: &mut BaselineStats,
) -> Option<Finding> {
    let fp = value_fp(text);
    let at = match p.values.binary_search_by_key(&fp, |s| s.fp) {
        Ok(i) => {
            if let Some(s) = p.values.get_mut(i) {
                s.count = s.count.saturating_add(1);
            }
            return None;
        }
        Err(at) => at,
    };
    let finding = (eligible && !p.saturated).then(|| {
        let (usual, unnamed) = usual_values(&p.values, interner);
        Finding::NewValue {
            value: text.to_string(),
            usual,
            unnamed,
            distinct: p.values.len(),
            events: u64::from(p.events),
            since: micros(p.first),
        }
    });
    let new = Seen { fp, count: 1 };
    if p.values.len() >= limits.max_values.max(1) {
        // The least-seen value goes (ties: the greatest fingerprint, so the
        // choice is the same on every run).
        let mut v = std::mem::take(&mut p.values).into_vec();
        if let Some(victim) = v
            .iter()
            .enumerate()
            .min_by(|a, b| a.1.count.cmp(&b.1.count).then(b.1.fp.cmp(&a.1.fp)))
            .map(|(i, _)| i)
        {
            v.remove(victim);
            stats.evicted_values += 1;
        }
        let at = v.partition_point(|s| s.fp < fp);
        v.insert(at, new);
        p.values = v.into_boxed_slice();
        if !p.saturated {
            p.saturated = true;
            stats.saturated_sets += 1;
        }
    } else {
        let mut v = Vec::with_capacity(p.values.len() + 1);
        v.extend_from_slice(&p.values[..at]);
        v.push(new);
        v.extend_from_slice(&p.values[at..]);
        p.values = v.into_boxed_slice();
    }
    if interner.intern(fp, text, limits.max_interned) {
        stats.interned_values = interner.len();
    } else {
        stats.interner_full += 1;
    }
    finding
}

/// The most-seen values with a known text (by count, then text), and how
/// many of the [`USUAL_SHOWN`] most-seen have none.
fn usual_values(values: &[Seen], interner: &Interner) -> (Vec<(String, u32)>, usize) {
    let mut all: Vec<(Option<&str>, u32)> = values
        .iter()
        .map(|s| (interner.get(s.fp), s.count))
        .collect();
    // Known texts first among equal counts, then by text.
    all.sort_by(|a, b| {
        b.1.cmp(&a.1)
            .then_with(|| a.0.is_none().cmp(&b.0.is_none()))
            .then_with(|| a.0.cmp(&b.0))
    });
    all.truncate(USUAL_SHOWN);
    let unnamed = all.iter().filter(|(t, _)| t.is_none()).count();
    let usual = all
        .into_iter()
        .filter_map(|(t, c)| t.map(|t| (t.to_string(), c)))
        .collect();
    (usual, unnamed)
}

/// The hour of day of `time` in the rule's offset.
pub fn hour_of(time: i64, utc_offset_minutes: i32) -> u8 {
    let local = time.saturating_add(i64::from(utc_offset_minutes) * 60_000_000);
    // rem_euclid keeps times before 1970 in 0..24.
    (local.div_euclid(HOUR_MICROS).rem_euclid(24)) as u8
}

fn learn_hour(
    p: &mut HourProfile,
    baseline: &CompiledBaseline,
    time: i64,
    eligible: bool,
) -> Option<Finding> {
    let hour = hour_of(time, baseline.utc_offset_minutes);
    let h = usize::from(hour);
    let seen = u32::from(*p.hours.get(h)?);
    let total: u64 = p.hours.iter().map(|&c| u64::from(c)).sum();
    let rare = seen == 0 || (f64::from(seen) < baseline.rare_ratio * total as f64);
    let finding = (eligible && rare).then(|| {
        let mut usual: Vec<(u8, u32)> = p
            .hours
            .iter()
            .enumerate()
            .filter(|&(i, &c)| c > 0 && i != h)
            .map(|(i, &c)| (i as u8, u32::from(c)))
            .collect();
        usual.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        usual.truncate(USUAL_SHOWN);
        Finding::UnusualHour {
            hour,
            seen,
            usual,
            events: u64::from(p.events),
            total,
            since: micros(p.first),
        }
    });
    if p.hours[h] == u8::MAX {
        for c in &mut p.hours {
            *c = c.div_ceil(2);
        }
    }
    p.hours[h] += 1;
    finding
}

/// The bin of `time`: event time / bin length, clamped to `u32`.
fn bin_of(time: i64, bin_micros: i64) -> u32 {
    time.div_euclid(bin_micros.max(1))
        .clamp(0, i64::from(u32::MAX)) as u32
}

/// The part of the day (0..4) of a bin, or 0 when bins are 6 h or longer.
fn band_of(bin: u32, baseline: &CompiledBaseline) -> usize {
    if baseline.bin_micros >= i64::from(BAND_HOURS) * HOUR_MICROS {
        return 0;
    }
    let start = i64::from(bin) * baseline.bin_micros;
    usize::from(hour_of(start, baseline.utc_offset_minutes) / BAND_HOURS)
}

/// Learns a closed bin (`value` for `bin`), which always had rows (a bin is
/// only ever opened by a row). A bin whose value came to 0 counts as
/// history too: a principal that works all day without an error has a
/// usual of 0 errors, not no history.
fn fold(p: &mut RateProfile, baseline: &CompiledBaseline, bin: u32, value: f32) {
    let band = band_of(bin, baseline);
    if let Some(high) = p.high.get_mut(band) {
        *high = encode_usual(value.max(0.0).max(decode_usual(*high) * RATE_DECAY));
        p.flags |= 1 << band;
    }
    p.history = p.history.saturating_add(1);
}

/// Moves the key's open bins on so that `bin` is the current one: the
/// previous bin is folded, and the current one becomes the previous one
/// when `bin` directly follows it, or is folded too.
fn advance(
    p: &mut RateProfile,
    distinct: Option<&mut Option<Box<OpenDistinct>>>,
    baseline: &CompiledBaseline,
    bin: u32,
) {
    if p.flags & RATE_PREV_OPEN != 0 {
        fold(p, baseline, p.bin.saturating_sub(1), p.prev_running);
    }
    let (current, running) = (p.bin, p.running);
    let alerted = p.flags & RATE_ALERTED != 0;
    p.flags &= !(RATE_ALERTED | RATE_PREV_OPEN | RATE_PREV_ALERTED);
    if bin == current.saturating_add(1) {
        p.prev_running = running;
        p.flags |= RATE_PREV_OPEN;
        if alerted {
            p.flags |= RATE_PREV_ALERTED;
        }
        if let Some(d) = distinct.and_then(|d| d.as_deref_mut()) {
            d.previous = d.current.take();
        }
    } else {
        fold(p, baseline, current, running);
        p.prev_running = 0.0;
        if let Some(d) = distinct {
            *d = None;
        }
    }
    p.bin = bin;
    p.running = 0.0;
}

fn learn_rate(
    p: &mut RateProfile,
    mut distinct: Option<&mut Option<Box<OpenDistinct>>>,
    baseline: &CompiledBaseline,
    row: &Row<'_>,
    bin: u32,
    stats: &mut BaselineStats,
) -> Option<Finding> {
    if bin > p.bin {
        advance(p, distinct.as_deref_mut(), baseline, bin);
    }
    let previous = bin != p.bin;
    if previous {
        if bin.saturating_add(1) != p.bin {
            stats.late_rows += 1;
            return None;
        }
        if p.flags & RATE_PREV_OPEN == 0 {
            // The bin before the current one had no rows yet: it opens now.
            p.flags = (p.flags | RATE_PREV_OPEN) & !RATE_PREV_ALERTED;
            p.prev_running = 0.0;
            if let Some(d) = distinct.as_deref_mut().and_then(|d| d.as_deref_mut()) {
                d.previous = None;
            }
        }
    }
    let (value, alerted_flag) = if previous {
        (&mut p.prev_running, RATE_PREV_ALERTED)
    } else {
        (&mut p.running, RATE_ALERTED)
    };
    let mut estimated = false;
    match baseline.measure {
        Measure::Count => *value += 1.0,
        Measure::Sum => *value += row.amount.unwrap_or(0.0) as f32,
        Measure::CountDistinct => {
            let fp = value_fp(row.value?);
            let open = distinct?.get_or_insert_with(Default::default);
            let d = if previous {
                &mut open.previous
            } else {
                &mut open.current
            };
            let d = d.get_or_insert_with(|| Distinct::Exact(Vec::new()));
            d.insert(fp);
            *value = d.estimate() as f32;
            estimated = d.is_estimate();
        }
    }
    let running = f64::from(*value);
    if p.flags & alerted_flag != 0 {
        return None;
    }
    // The current bin is judged against the history as it will be once the
    // open bin before it is folded, the previous bin against the history
    // before it: the same verdicts as rows arriving in order.
    let band = band_of(bin, baseline);
    let mut high = p.usual(band);
    let mut history = p.history;
    let mut band_seen = p.flags & (1 << band) != 0;
    if !previous && p.flags & RATE_PREV_OPEN != 0 {
        history = history.saturating_add(1);
        if band_of(bin.saturating_sub(1), baseline) == band {
            // As fold will store it, so the verdict is the in-order one.
            high = decode_usual(encode_usual(p.prev_running.max(0.0).max(high * RATE_DECAY)));
            band_seen = true;
        }
    }
    let eligible = learnt(p.first, secs(row.time), baseline.learning_micros)
        && u64::from(history) >= baseline.min_history;
    if !eligible {
        return None;
    }
    let usual = f64::from(high);
    if !(running > baseline.factor * usual && running >= baseline.min_value) {
        return None;
    }
    p.flags |= alerted_flag;
    let banded = baseline.bin_micros < i64::from(BAND_HOURS) * HOUR_MICROS;
    Some(Finding::Rate {
        value: running,
        estimated,
        bin_start: i64::from(bin) * baseline.bin_micros,
        band: banded.then_some(band as u8 * BAND_HOURS),
        usual,
        band_bins: u32::from(band_seen),
        history_bins: u32::from(history),
        since: micros(p.first),
    })
}

fn learn_rare(
    state: &mut RareState,
    baseline: &CompiledBaseline,
    row: &Row<'_>,
    text: &str,
    stats: &mut BaselineStats,
    max_keys: usize,
) -> Option<Finding> {
    let now = secs(row.time);
    let first = state.first.map_or(now, |f| f.min(now));
    state.first = Some(first);
    let eligible = learnt(first, now, baseline.learning_micros);
    let value_key = trailhound_rules::baseline::fingerprint(text);
    let holder = (row.key >> 32) as u32;
    let v = profile_at(&mut state.values, value_key, stats, max_keys, || {
        RareValue {
            since: now,
            last: now,
            many: false,
            holders: Box::new([]),
        }
    })?;
    v.since = v.since.min(now);
    v.last = v.last.max(now);
    if v.many || v.holders.contains(&holder) {
        return None;
    }
    let holders = v.holders.len() + 1;
    if holders >= baseline.below as usize {
        v.many = true;
        v.holders = Box::new([]);
        return None;
    }
    let mut h = Vec::with_capacity(holders);
    h.extend_from_slice(&v.holders);
    h.push(holder);
    v.holders = h.into_boxed_slice();
    eligible.then(|| Finding::Rare {
        value: text.to_string(),
        holders,
        since: micros(v.since),
    })
}

// ---------------------------------------------------------------------------
// Words.

/// `1,204`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// `240 hours`, `90 minutes`, `45 seconds`: a span of bins in words.
fn span_words(micros: i64) -> String {
    let secs = micros / SECOND;
    let (n, unit) = if secs % 3_600 == 0 {
        (secs / 3_600, "hour")
    } else if secs % 60 == 0 {
        (secs / 60, "minute")
    } else {
        (secs, "second")
    };
    let s = if n == 1 { "" } else { "s" };
    format!("{} {unit}{s}", thousands(n.max(0) as u64))
}

fn zone(baseline: &CompiledBaseline) -> String {
    if baseline.utc_offset_minutes == 0 {
        "UTC".to_string()
    } else {
        format!("UTC{}", baseline.utc_offset_text)
    }
}

/// The alert's sentence: what is new, for whom, and what is usual.
pub fn describe(baseline: &CompiledBaseline, who: &str, finding: &Finding) -> String {
    let day = |t: i64| {
        let s = trailhound_core::time::format_micros(t);
        s.get(..10).map(str::to_string).unwrap_or(s)
    };
    match finding {
        Finding::NewValue {
            value,
            usual,
            unnamed,
            distinct,
            events,
            since,
        } => {
            let mut list: Vec<String> = usual.iter().map(|(v, _)| v.clone()).collect();
            if *unnamed > 0 {
                let s = if *unnamed == 1 { "" } else { "s" };
                list.push(format!("({unnamed} other value{s})"));
            }
            if *distinct > usual.len() + unnamed {
                list.push("...".into());
            }
            let list = if list.is_empty() {
                "nothing yet".to_string()
            } else {
                list.join(", ")
            };
            format!(
                "{who} {} {value} for the first time; usually: {list} ({} events since {})",
                baseline.verb(),
                thousands(*events),
                day(*since)
            )
        }
        Finding::UnusualHour {
            hour,
            seen,
            usual,
            events,
            total,
            since,
        } => {
            let share = |c: u32| {
                if *total == 0 {
                    0.0
                } else {
                    100.0 * f64::from(c) / *total as f64
                }
            };
            let how = if *seen == 0 {
                "an hour never seen for it before".to_string()
            } else {
                format!(
                    "an hour of {seen} of its events before ({:.1}%)",
                    share(*seen)
                )
            };
            let list: Vec<String> = usual
                .iter()
                .map(|(h, c)| format!("{h:02}:00 ({:.0}%)", share(*c)))
                .collect();
            format!(
                "{who} was active at {hour:02}:00-{:02}:00 {}, {how}; usually: {} ({} events since {})",
                (hour + 1) % 24,
                zone(baseline),
                list.join(", "),
                thousands(*events),
                day(*since)
            )
        }
        Finding::Rate {
            value,
            estimated,
            bin_start,
            band,
            usual,
            band_bins,
            history_bins,
            ..
        } => {
            let start = trailhound_core::time::format_micros(*bin_start);
            let clock = start.get(11..16).unwrap_or("");
            let history = span_words(i64::from(*history_bins) * baseline.bin_micros);
            let usual_words = if *band_bins == 0 {
                "no activity".to_string()
            } else {
                let u = if *usual >= 10.0 {
                    usual.round()
                } else {
                    *usual
                };
                format!("up to {}", number_words(u))
            };
            let part = match band {
                Some(b) => format!(" for {b:02}:00-{:02}:00 {}", b + BAND_HOURS, zone(baseline)),
                None => String::new(),
            };
            format!(
                "{who} had {} in the {} from {clock} UTC on {}; usual{part}: {usual_words} over {history} of history",
                baseline.measure_words(*value, *estimated),
                baseline.bin_text,
                day(*bin_start),
            )
        }
        Finding::Rare {
            value,
            holders,
            since,
        } => {
            let names: Vec<&str> = baseline.by.iter().map(|(n, _)| n.as_str()).collect();
            let holder = if names == ["principal"] {
                "principal".to_string()
            } else {
                format!("{} value", names.join(" / "))
            };
            if *holders <= 1 {
                format!(
                    "{who} {} {value}, which no other {holder} in the organisation has shown (first seen {})",
                    baseline.verb(),
                    day(*since)
                )
            } else {
                format!(
                    "{who} {} {value}, which only {holders} {holder}s in the organisation have shown, this one included (first seen {})",
                    baseline.verb(),
                    day(*since)
                )
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use trailhound_rules::baseline::key_fingerprint;
    use trailhound_rules::{Compiler, RuleSpec};

    const DAY: i64 = 86_400_000_000;
    const T0: i64 = 1_793_527_200_000_000; // 2026-11-01T10:00:00Z

    fn baseline(extra: &str) -> CompiledBaseline {
        let spec: RuleSpec = serde_yaml::from_str(&format!(
            "id: b\ntitle: T\nseverity: low\nwhere: \"true\"\nbaseline:\n{extra}"
        ))
        .unwrap();
        let rule = Compiler::new().unwrap().compile(spec, None).unwrap();
        rule.baseline().unwrap().clone()
    }

    fn key(p: &str) -> u64 {
        key_fingerprint([p])
    }

    fn row<'a>(p: &str, value: Option<&'a str>, time: i64) -> Row<'a> {
        Row {
            key: key(p),
            value,
            amount: None,
            time,
        }
    }

    fn see(
        s: &mut BaselineStore,
        b: &CompiledBaseline,
        p: &str,
        v: Option<&str>,
        t: i64,
    ) -> Option<Finding> {
        s.observe(0, b, row(p, v, t))
    }

    fn values_of(s: &BaselineStore, p: &str) -> Vec<Seen> {
        match &s.rules[0].state {
            RuleState::Values(t) => t
                .position(key(p))
                .map(|i| t.entries[i].p.values.to_vec())
                .unwrap_or_default(),
            _ => Vec::new(),
        }
    }

    #[test]
    fn hours_follow_utc_and_offsets() {
        assert_eq!(hour_of(T0, 0), 10);
        assert_eq!(hour_of(T0, 120), 12);
        assert_eq!(hour_of(T0, -11 * 60), 23);
        assert_eq!(hour_of(-1, 0), 23);
    }

    #[test]
    fn usual_values_read_back_never_lower_and_within_a_step_of_the_log_scale() {
        for v in [0.5f32, 1.0, 2.0, 3.0, 10.0, 200.0, 1e6, 3.3e9, 5e13] {
            let back = decode_usual(encode_usual(v));
            assert!(back >= v, "{v} read back as {back}");
            assert!(back <= v + (1.0 + v) * 0.0006, "{v} read back as {back}");
        }
        assert_eq!(encode_usual(0.0), 0);
        assert_eq!(encode_usual(f32::NAN), 0);
        assert_eq!(decode_usual(0), 0.0);
        // Decay still decays on the scale.
        let q = encode_usual(100.0);
        assert!(encode_usual(decode_usual(q) * RATE_DECAY) < q);
    }

    #[test]
    fn profiles_stay_small() {
        assert!(std::mem::size_of::<ValueProfile>() <= 32);
        assert!(std::mem::size_of::<HourProfile>() <= 36);
        assert!(std::mem::size_of::<RateProfile>() <= 28);
        assert!(std::mem::size_of::<Keyed<RateProfile>>() <= 36);
        assert!(std::mem::size_of::<RareValue>() <= 32);
        assert_eq!(std::mem::size_of::<Seen>(), 8);
    }

    #[test]
    fn no_alert_during_learning_even_with_history() {
        let b = baseline("  kind: new_value\n  of: event_name\n  learning: 2d\n  min_history: 3\n");
        let mut s = BaselineStore::new(1, BaselineLimits::default());
        for i in 0..10 {
            assert_eq!(see(&mut s, &b, "p", Some("A"), T0 + i), None);
        }
        // a day in: history is there, learning is not over
        assert_eq!(see(&mut s, &b, "p", Some("B"), T0 + DAY), None);
        // two days in: it alerts, and only once
        let f = see(&mut s, &b, "p", Some("C"), T0 + 2 * DAY);
        assert!(
            matches!(&f, Some(Finding::NewValue { value, .. }) if value == "C"),
            "{f:?}"
        );
        assert_eq!(see(&mut s, &b, "p", Some("C"), T0 + 2 * DAY + 1), None);
        // learning is per key: a new key starts over
        assert_eq!(see(&mut s, &b, "q", Some("Z"), T0 + 3 * DAY), None);
    }

    #[test]
    fn no_alert_without_min_history() {
        let b = baseline("  kind: new_value\n  of: event_name\n  learning: 1d\n  min_history: 5\n");
        let mut s = BaselineStore::new(1, BaselineLimits::default());
        for i in 0..4 {
            see(&mut s, &b, "p", Some("A"), T0 + i);
        }
        assert_eq!(see(&mut s, &b, "p", Some("B"), T0 + 2 * DAY), None);
        // now 5 events behind it
        let f = see(&mut s, &b, "p", Some("C"), T0 + 2 * DAY);
        match f {
            Some(Finding::NewValue {
                usual,
                events,
                distinct,
                unnamed,
                ..
            }) => {
                assert_eq!(events, 5);
                assert_eq!(distinct, 2);
                assert_eq!(unnamed, 0);
                assert_eq!(usual[0], ("A".to_string(), 4));
                assert_eq!(usual[1], ("B".to_string(), 1));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_saturated_set_evicts_the_least_seen_and_stops_alerting() {
        let b = baseline("  kind: new_value\n  of: event_name\n  learning: 1s\n  min_history: 0\n");
        let limits = BaselineLimits {
            max_values: 4,
            ..Default::default()
        };
        let mut s = BaselineStore::new(1, limits);
        for (i, v) in ["A", "A", "A", "B", "B", "C", "D"].iter().enumerate() {
            see(&mut s, &b, "p", Some(v), T0 + i as i64);
        }
        assert_eq!(s.stats().saturated_sets, 0);
        // a fifth value alerts (the set is full, not yet saturated), evicts
        // the least seen and saturates the set
        assert!(see(&mut s, &b, "p", Some("E"), T0 + DAY).is_some());
        assert_eq!(s.stats().saturated_sets, 1);
        assert_eq!(s.stats().evicted_values, 1);
        // from now on new values are learnt but never alert
        assert_eq!(see(&mut s, &b, "p", Some("F"), T0 + DAY), None);
        assert_eq!(see(&mut s, &b, "p", Some("G"), T0 + DAY), None);
        // the most seen are still known
        assert_eq!(see(&mut s, &b, "p", Some("A"), T0 + DAY), None);
        let values = values_of(&s, "p");
        assert_eq!(values.len(), 4);
        assert!(values.windows(2).all(|w| w[0].fp < w[1].fp), "sorted");
        for v in ["A", "B"] {
            assert!(values.iter().any(|s| s.fp == value_fp(v)), "{v} kept");
        }
    }

    #[test]
    fn idle_keys_are_evicted_and_the_cap_is_counted() {
        let b = baseline("  kind: new_value\n  of: event_name\n");
        let limits = BaselineLimits {
            max_principals: 2,
            idle_horizon_micros: 10 * DAY,
            ..Default::default()
        };
        let mut s = BaselineStore::new(1, limits);
        see(&mut s, &b, "old", Some("A"), T0);
        see(&mut s, &b, "new", Some("A"), T0 + 5 * DAY);
        see(&mut s, &b, "third", Some("A"), T0 + 5 * DAY);
        assert_eq!(s.stats().principals, 2);
        assert_eq!(s.stats().cap_reached, 1);
        s.sweep(T0 + 12 * DAY);
        assert_eq!(s.stats().principals, 1);
        assert_eq!(s.stats().evicted_idle, 1);
        assert!(values_of(&s, "old").is_empty());
        assert_eq!(values_of(&s, "new").len(), 1);
        // room again
        see(&mut s, &b, "third", Some("A"), T0 + 12 * DAY);
        assert_eq!(s.stats().principals, 2);
        // everyone idle goes
        s.sweep(T0 + 40 * DAY);
        assert_eq!(s.stats().principals, 0);
        see(&mut s, &b, "x", Some("A"), T0 + 40 * DAY);
        // a second sweep within the hour of event time does nothing
        s.sweep(T0 + 40 * DAY + HOUR_MICROS / 2);
        assert_eq!(s.stats().principals, 1);
        s.sweep(T0 + 80 * DAY);
        assert_eq!(s.stats().evicted_idle, 4);
    }

    #[test]
    fn the_key_table_survives_colliding_low_bits_and_removals() {
        let mut t: KeyTable<HourProfile> = KeyTable::default();
        let p = |last: u32| HourProfile {
            first: 0,
            last,
            events: 0,
            hours: [0; 24],
        };
        // keys 1..=6 share their low 32 bits in pairs
        let keys: Vec<u64> = (0..6u64).map(|i| ((i % 2 + 1) << 32) | (i / 2)).collect();
        for (i, &k) in keys.iter().enumerate() {
            assert_eq!(t.position(k), None);
            t.insert(k, p(i as u32));
        }
        for (i, &k) in keys.iter().enumerate() {
            assert_eq!(t.entries[t.position(k).unwrap()].p.last, i as u32);
        }
        // drop the even ones (the index holders), then every lookup still works
        assert_eq!(t.retain(|p| p.last % 2 == 1), 3);
        for (i, &k) in keys.iter().enumerate() {
            let found = t.position(k).map(|pos| t.entries[pos].p.last);
            assert_eq!(found, (i % 2 == 1).then_some(i as u32), "key {i}");
        }
        // a new key with a freed low half goes to the index
        t.insert(keys[0], p(100));
        assert_eq!(t.entries[t.position(keys[0]).unwrap()].p.last, 100);
        let back = KeyTable::<HourProfile>::from_entries(t.entries.clone());
        for &k in &keys {
            assert_eq!(
                back.position(k).map(|i| back.entries[i].p.last),
                t.position(k).map(|i| t.entries[i].p.last)
            );
        }
    }

    #[test]
    fn a_full_interner_keeps_counting_and_the_alert_names_other_values() {
        let b = baseline("  kind: new_value\n  of: event_name\n  learning: 1s\n  min_history: 0\n");
        let limits = BaselineLimits {
            max_interned: 2,
            ..Default::default()
        };
        let mut s = BaselineStore::new(1, limits);
        for (i, v) in ["A", "A", "A", "B", "B", "C", "D", "D", "D", "D"]
            .iter()
            .enumerate()
        {
            see(&mut s, &b, "p", Some(v), T0 + i as i64);
        }
        // A and B were kept; C and D were not
        assert_eq!(s.stats().interned_values, 2);
        assert_eq!(s.stats().interner_full, 2);
        // a second key shares the texts: nothing new to keep
        see(&mut s, &b, "q", Some("A"), T0);
        assert_eq!(s.stats().interner_full, 2);
        let f = see(&mut s, &b, "p", Some("E"), T0 + DAY).unwrap();
        let Finding::NewValue { usual, unnamed, .. } = &f else {
            panic!("{f:?}")
        };
        assert_eq!(usual, &[("A".to_string(), 3), ("B".to_string(), 2)]);
        assert_eq!(*unnamed, 2);
        let text = describe(&b, "p", &f);
        assert!(
            text.contains("E for the first time; usually: A, B, (2 other values) (10 events"),
            "{text}"
        );
    }

    #[test]
    fn interned_texts_that_share_a_fingerprint_are_never_shown() {
        let mut i = Interner::default();
        assert!(i.intern(7, "alpha", 10));
        assert_eq!(i.get(7), Some("alpha"));
        assert!(i.intern(7, "alpha", 10));
        assert_eq!(i.get(7), Some("alpha"));
        assert!(i.intern(7, "beta", 10));
        assert_eq!(i.get(7), None);
        assert!(!i.intern(8, &"x".repeat(MAX_INTERNED_TEXT + 1), 10));
        let back = Interner::load(i.save());
        assert_eq!(back.get(7), None);
        assert_eq!(back.len(), 1);
    }

    #[test]
    fn the_hour_histogram_alerts_on_never_and_rarely_seen_hours() {
        let b = baseline("  kind: unusual_hour\n  learning: 1d\n  min_history: 10\n");
        let mut s = BaselineStore::new(1, BaselineLimits::default());
        // 200 events at 10:00 and 2 at 11:00 over two days
        for i in 0..200 {
            see(&mut s, &b, "p", None, T0 + i * 1_000_000);
        }
        assert_eq!(see(&mut s, &b, "p", None, T0 + HOUR_MICROS), None);
        // 11:00 seen once in 201 events: rare (< 1%)
        let f = see(&mut s, &b, "p", None, T0 + DAY + HOUR_MICROS);
        assert!(
            matches!(
                f,
                Some(Finding::UnusualHour {
                    hour: 11,
                    seen: 1,
                    ..
                })
            ),
            "{f:?}"
        );
        // 03:00 never seen
        let f = see(&mut s, &b, "p", None, T0 + 2 * DAY - 7 * HOUR_MICROS);
        let Some(f) = f else { panic!("no finding") };
        assert!(matches!(
            f,
            Finding::UnusualHour {
                hour: 3,
                seen: 0,
                ..
            }
        ));
        let text = describe(&b, "p", &f);
        assert!(
            text.starts_with("p was active at 03:00-04:00 UTC, an hour never seen"),
            "{text}"
        );
        assert!(text.contains("usually: 10:00 (99%), 11:00 (1%)"), "{text}");
        // the usual hour never alerts
        assert_eq!(see(&mut s, &b, "p", None, T0 + 3 * DAY), None);
    }

    #[test]
    fn full_hour_counters_halve_and_keep_their_shares() {
        let b = baseline("  kind: unusual_hour\n  learning: 1s\n  min_history: 1\n");
        let mut p = HourProfile {
            first: secs(T0),
            last: secs(T0),
            events: 100_000,
            hours: [0; 24],
        };
        p.hours[10] = u8::MAX;
        p.hours[11] = 4;
        p.hours[12] = 1;
        // the busy hour stays usual past the counter's range
        assert_eq!(learn_hour(&mut p, &b, T0 + DAY, true), None);
        assert_eq!(p.hours[10], 129);
        assert_eq!(p.hours[11], 2);
        // an hour seen once is still seen
        assert_eq!(p.hours[12], 1);
        // 11:00 is 1.5% of the events: not rare
        assert_eq!(learn_hour(&mut p, &b, T0 + DAY + HOUR_MICROS, true), None);
    }

    fn rate(extra: &str) -> CompiledBaseline {
        baseline(&format!("  kind: rate\n{extra}"))
    }

    /// `n` rows for `p` spread over the hour starting at `t`.
    fn burst(s: &mut BaselineStore, b: &CompiledBaseline, p: &str, t: i64, n: i64) -> Vec<Finding> {
        (0..n)
            .filter_map(|i| see(s, b, p, None, t + i * (HOUR_MICROS / n.max(1))))
            .collect()
    }

    #[test]
    fn a_rate_bin_alerts_once_as_soon_as_it_crosses() {
        let b = rate("  learning: 2d\n  min_history: 24\n  factor: 10\n  min_value: 200\n");
        let mut s = BaselineStore::new(1, BaselineLimits::default());
        // three days of 10 rows an hour, every hour
        for h in 0..72 {
            assert!(burst(&mut s, &b, "p", T0 + h * HOUR_MICROS, 10).is_empty());
        }
        // the next hour: 400 rows; threshold max(200, 10 x 10) = 200
        let t = T0 + 72 * HOUR_MICROS;
        let mut fired = Vec::new();
        for i in 0..400 {
            if let Some(f) = see(&mut s, &b, "p", None, t + i * 1_000_000) {
                fired.push((i, f));
            }
        }
        assert_eq!(fired.len(), 1, "{fired:?}");
        let (at, f) = &fired[0];
        // the 200th row crosses (running value 200 >= min_value and > 100)
        assert_eq!(*at, 199);
        let Finding::Rate {
            value,
            band,
            usual,
            history_bins,
            ..
        } = f
        else {
            panic!("{f:?}")
        };
        // The usual value is stored on a log scale, rounded up.
        assert!((10.0..10.01).contains(usual), "{usual}");
        assert_eq!((*value, *band, *history_bins), (200.0, Some(6), 72));
        let text = describe(&b, "p", f);
        assert_eq!(
            text,
            "p had 200 events in the 1h from 10:00 UTC on 2026-11-04; \
             usual for 06:00-12:00 UTC: up to 10 over 72 hours of history"
        );
        // the next bin starts over (and has learnt the burst)
        assert!(burst(&mut s, &b, "p", t + HOUR_MICROS, 400).is_empty());
        // a row of a bin older than the two open ones is not counted
        assert_eq!(see(&mut s, &b, "p", None, t - HOUR_MICROS), None);
        assert_eq!(s.stats().late_rows, 1);
    }

    #[test]
    fn a_row_one_bin_late_still_counts_and_alerts_as_in_order() {
        let b = rate("  learning: 2d\n  min_history: 24\n  factor: 10\n  min_value: 200\n");
        // In order: 72 quiet hours, then 300 rows in hour 72 and 10 in 73.
        let quiet = |s: &mut BaselineStore| {
            for h in 0..72 {
                assert!(burst(s, &b, "p", T0 + h * HOUR_MICROS, 10).is_empty());
            }
        };
        let t = T0 + 72 * HOUR_MICROS;
        let mut in_order = BaselineStore::new(1, BaselineLimits::default());
        quiet(&mut in_order);
        let mut expected = burst(&mut in_order, &b, "p", t, 300);
        expected.extend(burst(&mut in_order, &b, "p", t + HOUR_MICROS, 10));
        assert_eq!(expected.len(), 1, "{expected:?}");

        // Out of order: hour 73's file first, then the burst of hour 72.
        let mut late = BaselineStore::new(1, BaselineLimits::default());
        quiet(&mut late);
        let mut got = burst(&mut late, &b, "p", t + HOUR_MICROS, 10);
        got.extend(burst(&mut late, &b, "p", t, 300));
        assert_eq!(late.stats().late_rows, 0);
        assert_eq!(format!("{got:?}"), format!("{expected:?}"));
        let text = describe(&b, "p", &got[0]);
        assert!(
            text.starts_with("p had 200 events in the 1h from 10:00 UTC"),
            "{text}"
        );

        // Hour 74 folds hour 72: a row for it now is late and not counted.
        assert!(burst(&mut late, &b, "p", t + 2 * HOUR_MICROS, 10).is_empty());
        assert_eq!(see(&mut late, &b, "p", None, t + 59 * 60_000_000), None);
        assert_eq!(late.stats().late_rows, 1);
    }

    #[test]
    fn a_rate_burst_during_learning_or_without_history_is_quiet() {
        let b = rate("  learning: 7d\n  min_history: 3\n  min_value: 50\n");
        let mut s = BaselineStore::new(1, BaselineLimits::default());
        for h in 0..10 {
            burst(&mut s, &b, "p", T0 + h * HOUR_MICROS, 5);
        }
        // past min_history, not past learning
        assert!(burst(&mut s, &b, "p", T0 + DAY, 1_000).is_empty());
        // past learning but a new key has no history
        assert!(burst(&mut s, &b, "q", T0 + 8 * DAY, 1_000).is_empty());
        // p, past both, at 02:00 (no history at that part of the day)
        assert_eq!(
            burst(&mut s, &b, "p", T0 + 8 * DAY + 16 * HOUR_MICROS, 1_000).len(),
            1
        );
    }

    #[test]
    fn a_usual_volume_at_a_busy_part_of_the_day_does_not_alert() {
        let b = rate("  learning: 1d\n  min_history: 24\n  factor: 10\n  min_value: 200\n");
        let mut s = BaselineStore::new(1, BaselineLimits::default());
        let midnight = T0 - 10 * HOUR_MICROS;
        assert_eq!(s.stats().late_rows, 0);
        // two weeks: 300 rows an hour from 12:00 to 18:00, 5 an hour at night
        for d in 0..14 {
            for h in 0..6 {
                burst(&mut s, &b, "p", midnight + d * DAY + h * HOUR_MICROS, 5);
            }
            for h in 12..18 {
                burst(&mut s, &b, "p", midnight + d * DAY + h * HOUR_MICROS, 300);
            }
        }
        assert_eq!(s.stats().late_rows, 0);
        let day15 = midnight + 14 * DAY;
        // the usual afternoon volume: quiet, though far above the night's
        assert!(burst(&mut s, &b, "p", day15 + 14 * HOUR_MICROS, 320).is_empty());
        // the same volume at 03:00 alerts
        let f = burst(&mut s, &b, "p", day15 + DAY + 3 * HOUR_MICROS, 320);
        assert_eq!(f.len(), 1, "{f:?}");
        let text = describe(&b, "p", &f[0]);
        assert!(
            text.contains("usual for 00:00-06:00 UTC: up to 5 over"),
            "{text}"
        );
        // an evening with no history alerts at min_value
        let f = burst(&mut s, &b, "p", day15 + DAY + 20 * HOUR_MICROS, 250);
        assert_eq!(f.len(), 1);
        assert!(
            describe(&b, "p", &f[0]).contains("usual for 18:00-24:00 UTC: no activity over"),
            "{}",
            describe(&b, "p", &f[0])
        );
    }

    #[test]
    fn count_distinct_counts_exactly_then_estimates() {
        let b = rate(
            "  measure: count_distinct(object_key)\n  learning: 1s\n  min_history: 1\n  min_value: 3000\n",
        );
        let mut s = BaselineStore::new(1, BaselineLimits::default());
        // history: one bin of 20 distinct objects, read twice each
        for i in 0..40 {
            let v = format!("obj-{}", i % 20);
            see(&mut s, &b, "p", Some(&v), T0 + i);
        }
        // rows without a value are not learnt
        assert_eq!(see(&mut s, &b, "p", None, T0 + HOUR_MICROS), None);
        let t = T0 + 2 * HOUR_MICROS;
        let mut fired = Vec::new();
        for i in 0..5_000 {
            let v = format!("object/{i}");
            if let Some(f) = see(&mut s, &b, "p", Some(&v), t + i) {
                fired.push((i, f));
            }
        }
        assert_eq!(fired.len(), 1);
        let (at, f) = &fired[0];
        // an estimate crosses 3,000 within a few percent of the 3,000th
        assert!((2_700..3_300).contains(at), "{at}");
        assert!(
            matches!(
                f,
                Finding::Rate {
                    estimated: true,
                    ..
                }
            ),
            "{f:?}"
        );
        assert!(
            describe(&b, "p", f).contains("p had about 3,"),
            "{}",
            describe(&b, "p", f)
        );
        let mut d = Distinct::Exact(Vec::new());
        for i in 0..100_000u32 {
            d.insert(value_fp(&i.to_string()));
        }
        let e = d.estimate();
        assert!((90_000.0..110_000.0).contains(&e), "{e}");
    }

    #[test]
    fn sums_add_amounts() {
        let b = rate(
            "  measure: sum(bytes_out)\n  learning: 1s\n  min_history: 1\n  min_value: 1000\n",
        );
        let mut s = BaselineStore::new(1, BaselineLimits::default());
        let r = |amount: Option<f64>, time: i64| Row {
            key: key("p"),
            value: None,
            amount,
            time,
        };
        s.observe(0, &b, r(Some(50.0), T0));
        assert_eq!(s.observe(0, &b, r(None, T0 + HOUR_MICROS)), None);
        let t = T0 + HOUR_MICROS;
        assert_eq!(s.observe(0, &b, r(Some(600.0), t)), None);
        let f = s.observe(0, &b, r(Some(600.0), t + 1)).unwrap();
        assert!(
            describe(&b, "p", &f).starts_with("p had bytes_out totalling 1,200 in the 1h"),
            "{}",
            describe(&b, "p", &f)
        );
    }

    fn rare(extra: &str) -> CompiledBaseline {
        baseline(&format!("  kind: rare\n  of: user_agent_family\n{extra}"))
    }

    #[test]
    fn rare_values_alert_once_per_principal_and_common_ones_never() {
        let b = rare("  learning: 1d\n  below: 3\n");
        let mut s = BaselineStore::new(1, BaselineLimits::default());
        // during learning: five principals use boto3, one uses curl
        for p in ["a", "b", "c", "d", "e"] {
            assert_eq!(see(&mut s, &b, p, Some("boto3"), T0), None);
        }
        assert_eq!(see(&mut s, &b, "a", Some("curl"), T0 + 1), None);
        let after = T0 + DAY;
        // boto3 shown by five: never rare
        assert_eq!(see(&mut s, &b, "f", Some("boto3"), after), None);
        // a value nobody showed: rare for its first principal, once
        let f = see(&mut s, &b, "f", Some("python-requests"), after).unwrap();
        assert_eq!(
            f,
            Finding::Rare {
                value: "python-requests".into(),
                holders: 1,
                since: after
            }
        );
        assert_eq!(
            describe(&b, "arn:f", &f),
            "arn:f used user agent python-requests, which no other principal in the \
             organisation has shown (first seen 2026-11-02)"
        );
        assert_eq!(
            see(&mut s, &b, "f", Some("python-requests"), after + 1),
            None
        );
        // curl's second principal: 2 < 3
        let f = see(&mut s, &b, "b", Some("curl"), after).unwrap();
        assert!(matches!(f, Finding::Rare { holders: 2, since, .. } if since == T0));
        assert!(describe(&b, "b", &f).contains("only 2 principals"));
        // the third is not rare any more, and no one after
        assert_eq!(see(&mut s, &b, "c", Some("curl"), after), None);
        assert_eq!(see(&mut s, &b, "a", Some("curl"), after), None);
        assert_eq!(see(&mut s, &b, "g", Some("curl"), after), None);
        // values count as keys
        assert_eq!(s.stats().principals, 3);
    }

    fn store_for(bs: &[&CompiledBaseline]) -> BaselineStore {
        BaselineStore::for_rules(bs.iter().map(|b| Some(*b)), BaselineLimits::default())
    }

    /// A mixed history for four rules, then `after` rows; every finding.
    fn feed(s: &mut BaselineStore, bs: &[&CompiledBaseline], after: bool) -> Vec<Finding> {
        let mut out = Vec::new();
        let apis = ["s3:PutObject", "ec2:StartInstances", "iam:ListUsers"];
        let mut push = |s: &mut BaselineStore, ri: usize, r: Row<'_>| {
            if let Some(f) = s.observe(ri, bs[ri], r) {
                out.push(f);
            }
        };
        let range = if after { 10..12 } else { 0..10 };
        for d in range {
            for h in 0..24 {
                let t = T0 + d * DAY + h * HOUR_MICROS;
                for p in ["alice", "bob", "carol"] {
                    for (i, api) in apis.iter().enumerate() {
                        let api = if after && p == "bob" && h == 3 {
                            "iam:CreateUser"
                        } else {
                            api
                        };
                        push(s, 0, row(p, Some(api), t + i as i64));
                        push(s, 1, row(p, None, t + i as i64));
                        let ua = if after && p == "carol" {
                            "curl"
                        } else {
                            "boto3"
                        };
                        push(s, 3, row(p, Some(ua), t + i as i64));
                    }
                    let n = if after && p == "alice" && h == 5 {
                        300
                    } else {
                        3
                    };
                    for k in 0..n {
                        push(s, 2, row(p, None, t + k));
                    }
                }
            }
        }
        out
    }

    #[test]
    fn a_snapshot_through_postcard_restores_the_same_findings() {
        let nv =
            baseline("  kind: new_value\n  of: event_name\n  learning: 1d\n  min_history: 10\n");
        let uh = baseline("  kind: unusual_hour\n  learning: 1d\n");
        let rt = rate("  learning: 1d\n  min_history: 24\n  min_value: 100\n");
        let ra = rare("  learning: 1d\n");
        let bs = [&nv, &uh, &rt, &ra];
        let ids = ["nv", "uh", "rt", "ra"];

        let mut original = store_for(&bs);
        assert!(feed(&mut original, &bs, false).is_empty());
        let bytes = original.snapshot(&ids).to_bytes().unwrap();
        let snapshot = BaselineSnapshot::from_bytes(&bytes).unwrap();
        assert_eq!(snapshot.rules().len(), 4);

        let mut restored = store_for(&bs);
        restored.restore(snapshot, &ids);
        assert_eq!(restored.stats(), original.stats());
        let a = feed(&mut original, &bs, true);
        let b = feed(&mut restored, &bs, true);
        assert!(a.len() >= 3, "{a:?}");
        assert!(a.iter().any(|f| matches!(f, Finding::NewValue { .. })));
        assert!(a.iter().any(|f| matches!(f, Finding::Rate { .. })));
        assert!(a.iter().any(|f| matches!(f, Finding::Rare { .. })));
        assert_eq!(a, b);
        assert_eq!(restored.stats(), original.stats());
    }

    #[test]
    fn a_restore_drops_changed_and_vanished_rules_and_starts_new_ones_empty() {
        let nv =
            baseline("  kind: new_value\n  of: event_name\n  learning: 1s\n  min_history: 1\n");
        let other = baseline("  kind: new_value\n  of: region\n  learning: 1s\n  min_history: 1\n");
        let mut s = store_for(&[&nv, &nv, &nv]);
        for ri in 0..3 {
            s.observe(ri, &nv, row("p", Some("A"), T0));
            s.observe(ri, &nv, row("p", Some("A"), T0 + 1));
        }
        let snap = s.snapshot(&["kept", "changed", "gone"]);
        let bytes = snap.to_bytes().unwrap();

        // now: "kept" as it was, "changed" learns another value, "new" is new
        let mut now = store_for(&[&nv, &other, &nv]);
        now.restore(
            BaselineSnapshot::from_bytes(&bytes).unwrap(),
            &["kept", "changed", "new"],
        );
        assert_eq!(now.stats().principals, 1);
        // kept: knows A, B is new
        let later = T0 + 10 * SECOND;
        assert_eq!(now.observe(0, &nv, row("p", Some("A"), later)), None);
        assert!(now.observe(0, &nv, row("p", Some("B"), later)).is_some());
        // changed and new start empty: no history, no alert
        assert_eq!(now.observe(1, &other, row("p", Some("B"), later)), None);
        assert_eq!(now.observe(2, &nv, row("p", Some("B"), later)), None);

        // another version restores nothing
        let mut v = BaselineSnapshot::from_bytes(&bytes).unwrap();
        v.version += 1;
        let mut none = store_for(&[&nv]);
        none.restore(v, &["kept"]);
        assert_eq!(none.stats().principals, 0);
    }

    #[test]
    fn heap_bytes_grow_with_keys() {
        let b = baseline("  kind: new_value\n  of: event_name\n");
        let mut s = BaselineStore::new(1, BaselineLimits::default());
        let empty = s.heap_bytes();
        for i in 0..1_000 {
            s.observe(0, &b, row(&format!("p{i}"), Some("A"), T0));
        }
        let full = s.heap_bytes();
        assert!(full > empty + 1_000 * 40, "{empty} {full}");
        assert!(full < empty + 1_000 * 120, "{empty} {full}");
    }

    #[test]
    fn evidence_names_the_new_value_and_the_usual_ones() {
        let b = baseline("  kind: new_value\n  of: [event_source, event_name]\n");
        let f = Finding::NewValue {
            value: "iam:CreateUser".into(),
            usual: (0..5).map(|i| (format!("s3:Get{i}"), 10 - i)).collect(),
            unnamed: 0,
            distinct: 7,
            events: 1204,
            since: T0,
        };
        assert_eq!(
            describe(&b, "arn:aws:iam::1:user/alice", &f),
            "arn:aws:iam::1:user/alice called iam:CreateUser for the first time; usually: \
             s3:Get0, s3:Get1, s3:Get2, s3:Get3, s3:Get4, ... (1,204 events since 2026-11-01)"
        );
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(1_234_567), "1,234,567");
        assert_eq!(span_words(240 * HOUR_MICROS), "240 hours");
        assert_eq!(span_words(HOUR_MICROS), "1 hour");
        assert_eq!(span_words(90 * 60 * SECOND), "90 minutes");
    }
}
