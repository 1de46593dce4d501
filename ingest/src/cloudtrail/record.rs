//! One CloudTrail record into one event.
//!
//! A record is read in one pass into its top-level fields, each kept as the
//! raw JSON text it has in the input; no `serde_json::Value` is built. The
//! pass is the `scan` module's (a checked scan of the JSON that builds
//! nothing), or serde_json's ([`RawValue`]) for the texts the scan declines:
//! `Records` lists, pretty-printed records, escaped keys. The lifted fields
//! are then read from that text: plain strings are borrowed,
//! `requestParameters` and `responseElements` are copied as
//! they are (whitespace outside strings dropped), and every field no column
//! lifts is copied into `extra` the same way. Only the small objects the event
//! model looks inside (`userIdentity`, `additionalEventData`, `resources`,
//! `insightDetails`, S3 `requestParameters`) are read a second time: the S3
//! parameters, `additionalEventData` and `resources` with the scan when it
//! is sure to agree with serde ([`scanned_texts`], [`scanned_resources`]),
//! the rest, and anything the scan declines, with serde into borrowed typed
//! structs.
//!
//! Field by field:
//! - `event_time`: `eventTime`, else Logstash's `@timestamp` (RFC 3339, also
//!   `YYYY-MM-DD HH:MM:SS[.fff]` taken as UTC, or epoch seconds/ms/µs/ns);
//! - `event_id`: `eventID`, else a stable hash of the record text
//!   ([`trailhound_core::id::stable_id`]), so a replayed file gives the same ids;
//! - `event_category`: `eventCategory`; else `Insight` for `eventType`
//!   `AwsCloudTrailInsight`, `Data` when `managementEvent` is `false`, else
//!   `Management`;
//! - Insights events carry their event name and source in `insightDetails`;
//! - `read_only`: `readOnly` as a boolean or the string `"true"`/`"false"`,
//!   and `console_session` from `sessionCredentialFromConsole` the same way
//!   (any other value of either stays in `extra`);
//! - principal columns: see [`super::identity`]; `mfa` is overridden for
//!   `ConsoleLogin` by `additionalEventData.MFAUsed` (`Yes`/`No`);
//! - S3: `bucket`/`object_key` from `requestParameters.bucketName`/`key`,
//!   `bytes_in`/`bytes_out` from `additionalEventData.bytesTransferredIn`/`Out`,
//!   `resources` from `resources[].ARN`;
//! - an EventBridge envelope (`{"detail-type": ..., "detail": {...}}`) is
//!   unwrapped and its `detail` read as the record.
//!
//! A record without `eventTime` (or `@timestamp`) or `eventName` is refused
//! with [`RecordError::MissingField`]; unknown fields are never an error.

use std::borrow::Cow;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;
use trailhound_core::{Event, Source};

use super::identity::with_who;
use super::json::{
    Lenient, Scalar, Text, kind_of, parse_bool, parse_count, parse_lenient, push_compact, push_key,
    scalar,
};
use crate::emit::ParseContext;

/// Why a record could not become an event.
#[derive(Debug)]
pub enum RecordError {
    /// The text is not valid JSON.
    InvalidJson(serde_json::Error),
    /// Valid JSON, but not a record object; says what it is instead.
    NotARecord(&'static str),
    /// A field every record needs is absent, null or empty.
    MissingField(&'static str),
    /// A field is present but unusable.
    InvalidField {
        /// The field's JSON name.
        field: &'static str,
        /// What is wrong with it.
        detail: String,
    },
}

impl RecordError {
    /// The short reason used as the dead letter's `reason` and metric label.
    pub fn reason(&self) -> &'static str {
        match self {
            RecordError::InvalidJson(_) => "invalid_json",
            RecordError::NotARecord(_) => "not_a_record",
            RecordError::MissingField(_) => "missing_field",
            RecordError::InvalidField { .. } => "invalid_field",
        }
    }
}

impl fmt::Display for RecordError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecordError::InvalidJson(e) => write!(f, "not valid JSON: {e}"),
            RecordError::NotARecord(what) => {
                write!(f, "valid JSON but not a CloudTrail record: {what}")
            }
            RecordError::MissingField("eventTime") => {
                f.write_str("the record has no eventTime (nor @timestamp)")
            }
            RecordError::MissingField(field) => write!(f, "the record has no {field}"),
            RecordError::InvalidField { field, detail } => write!(f, "{field}: {detail}"),
        }
    }
}

impl std::error::Error for RecordError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            RecordError::InvalidJson(e) => Some(e),
            _ => None,
        }
    }
}

/// Parses one record from its JSON text into an event.
///
/// `text` is one record object (an EventBridge envelope is unwrapped). A
/// `{"Records":[...]}` file holds many records and is refused here; use
/// [`super::parse`] for whole inputs.
pub fn to_event(text: &str, ctx: &ParseContext) -> Result<Event, RecordError> {
    match read_record(text)? {
        Object::Record(fields) => fields.into_event(text, ctx),
        Object::Records(_) => Err(RecordError::NotARecord(
            "a Records list holding many records",
        )),
    }
}

/// What a top-level JSON object turned out to be.
// `Fields` is large but short-lived on the stack; boxing it would cost an
// allocation per record.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Object<'a> {
    /// A record (or something that should be one), field by field.
    Record(Fields<'a>),
    /// A `{"Records": [...]}` wrapper whose records were handed one by one
    /// to the callback.
    Records(RecordsList),
}

/// What was found under a wrapper's `Records` key.
pub(crate) struct RecordsList {
    /// When `Records` is not a list: what it is instead.
    pub(crate) not_a_list: Option<&'static str>,
}

/// Receives each raw record of a streamed list, in order.
pub(crate) type OnRecord<'f, 'a> = &'f mut dyn FnMut(&'a RawValue);

/// Reads one record object (no `Records` list expected): the fast scan of
/// [`read_record_fast`] first, and [`read_object`] when that declines, which
/// also says what is wrong with a text that is not a record.
pub(crate) fn read_record(text: &str) -> Result<Object<'_>, RecordError> {
    match read_record_fast(text) {
        Some(fields) => Ok(Object::Record(fields)),
        None => read_object(text, None),
    }
}

/// Reads a record object with [`super::scan`]: every top-level value found
/// and checked without being built, and kept as its raw text, as
/// [`read_object`] keeps it, with under half the instructions. `None`
/// when the scan declines the text (it is not one valid JSON object, or is
/// unusual: see the scan's page), and when it holds a `Records` key; the
/// caller then reads it with [`read_object`], which streams such lists and
/// words the error.
pub(crate) fn read_record_fast(text: &str) -> Option<Fields<'_>> {
    // Room for the fields a record usually keeps in `extra` (eventVersion,
    // requestID, tlsDetails, ...), so the list is not grown twice per record.
    let mut fields = Fields {
        extra: Vec::with_capacity(8),
        ..Fields::default()
    };
    fields.compact = super::scan::object_entries(text, |key, raw, plain| {
        match Known::from_key(key) {
            Some(Known::Records) => return None,
            Some(known) => fields.set(known, raw, plain),
            None => fields.extra.push((Cow::Borrowed(key), raw)),
        }
        Some(())
    })?;
    Some(fields)
}

/// The named fields of a small object as serde reads them into [`Text`]s,
/// taken with the scan when it is sure to agree with serde: each named
/// field at most once, holding a string without escapes or a whole number
/// of at most 18 digits (which serde's `Text` keeps as written). `None`
/// otherwise (not a plain object, a field repeated, any other value), and
/// the caller reads the text with serde, which then decides.
fn scanned_texts<'a, const N: usize>(raw: &'a str, keys: [&str; N]) -> Option<[Text<'a>; N]> {
    let mut found: [Option<&'a str>; N] = [None; N];
    super::scan::object_entries(raw, |key, value, plain| {
        let Some(i) = keys.iter().position(|k| *k == key) else {
            return Some(());
        };
        let slot = found.get_mut(i)?;
        if slot.is_some() {
            // serde refuses the whole object for a repeated field.
            return None;
        }
        *slot = Some(if plain {
            value.get(1..value.len().saturating_sub(1))?
        } else if value.len() <= 18 && value.bytes().all(|b| b.is_ascii_digit()) {
            value
        } else {
            return None;
        });
        Some(())
    })?;
    Some(found.map(|t| Text(t.map(Cow::Borrowed))))
}

/// The ARNs of a `resources` list read with serde: elements that are not
/// objects are skipped; an object without an `ARN` (or `arn`) gives none;
/// anything serde refuses (an element with both names) gives no ARNs.
fn serde_resources(raw: &str) -> Vec<String> {
    parse_lenient::<Vec<Lenient<Resource<'_>>>>(raw)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|r| r.0.and_then(|r| r.arn.take()).map(Cow::into_owned))
        .collect()
}

/// The ARNs of a `resources` list, taken with the scan when it is sure to
/// agree with serde's reading ([`Resource`] in a lenient list): elements
/// that are not objects are skipped, and an object's `ARN` (or `arn`) is
/// read by [`scanned_texts`]. `None` when that declines any element, or an
/// element has both names (serde refuses the list); the caller then reads
/// it with serde.
fn scanned_resources(raw: &str) -> Option<Vec<String>> {
    let mut arns = Vec::new();
    super::scan::array_elements(raw, |element| {
        if !element.starts_with('{') {
            return Some(());
        }
        let [upper, lower] = scanned_texts(element, ["ARN", "arn"])?;
        if upper.0.is_some() && lower.0.is_some() {
            return None;
        }
        let arn = upper.take().or(lower.take());
        arns.extend(arn.map(Cow::into_owned));
        Some(())
    })?;
    Some(arns)
}

/// Whether the fast scan and serde_json agree on `text`: the scan may
/// decline it, but what it accepts serde_json must read as a record with the
/// same fields; and the nested objects read with the scan
/// ([`scanned_texts`], [`scanned_resources`]) must read as serde reads them.
/// For the tests and the fuzz target.
#[doc(hidden)]
pub fn fast_scan_agrees(text: &str) -> bool {
    match (read_record_fast(text), read_object(text, None)) {
        (None, _) => true,
        (Some(fast), Ok(Object::Record(slow))) => {
            fast.known == slow.known
                && fast.extra == slow.extra
                && nested_scans_agree(&fast)
                && compact_when_said(&fast)
        }
        (Some(_), _) => false,
    }
}

/// A record the scan calls compact keeps every value as the compact text
/// [`push_compact`] would make of it.
fn compact_when_said(fields: &Fields<'_>) -> bool {
    let values = fields
        .known
        .iter()
        .flatten()
        .chain(fields.extra.iter().map(|(_, v)| v));
    !fields.compact
        || values.into_iter().all(|raw| {
            let mut out = String::new();
            push_compact(&mut out, raw);
            out == *raw
        })
}

/// The nested readings of [`fast_scan_agrees`].
fn nested_scans_agree(fields: &Fields<'_>) -> bool {
    let s3 = fields.get(Known::RequestParameters).is_none_or(|raw| {
        scanned_texts(raw, ["bucketName", "key"]).is_none_or(|[bucket, key]| {
            let slow = parse_lenient::<S3Request<'_>>(raw).unwrap_or_default();
            bucket.get() == slow.bucket.get() && key.get() == slow.key.get()
        })
    });
    let additional = fields.get(Known::AdditionalEventData).is_none_or(|raw| {
        scanned_texts(
            raw,
            ["bytesTransferredIn", "bytesTransferredOut", "MFAUsed"],
        )
        .is_none_or(|[bytes_in, bytes_out, mfa]| {
            let slow = parse_lenient::<AdditionalEventData<'_>>(raw).unwrap_or_default();
            bytes_in.get() == slow.bytes_in.get()
                && bytes_out.get() == slow.bytes_out.get()
                && mfa.get() == slow.mfa_used.get()
        })
    });
    let resources = fields
        .get(Known::Resources)
        .is_none_or(|raw| scanned_resources(raw).is_none_or(|fast| fast == serde_resources(raw)));
    s3 && additional && resources
}

/// Reads a JSON object. With `on_record`, a `Records` key is streamed: each
/// element goes to the callback as soon as it is read, so a list that breaks
/// off still delivers the records before the break (the error follows).
pub(crate) fn read_object<'a>(
    text: &'a str,
    on_record: Option<OnRecord<'_, 'a>>,
) -> Result<Object<'a>, RecordError> {
    if !text.trim_start().starts_with('{') {
        return Err(match serde_json::from_str::<IgnoredAny>(text) {
            Ok(_) => RecordError::NotARecord(kind_of(text)),
            Err(e) => RecordError::InvalidJson(e),
        });
    }
    let mut de = serde_json::Deserializer::from_str(text);
    let object = de
        .deserialize_map(ObjectVisitor { on_record })
        .map_err(RecordError::InvalidJson)?;
    de.end().map_err(RecordError::InvalidJson)?;
    Ok(object)
}

/// Streams a JSON array, handing each element to `on_record` as soon as it is
/// read.
pub(crate) fn read_list<'a>(
    text: &'a str,
    on_record: OnRecord<'_, 'a>,
) -> Result<RecordsList, serde_json::Error> {
    let mut de = serde_json::Deserializer::from_str(text);
    let list = ListSeed { on_record }.deserialize(&mut de)?;
    de.end()?;
    Ok(list)
}

struct ObjectVisitor<'f, 'a> {
    on_record: Option<OnRecord<'f, 'a>>,
}

impl<'de> Visitor<'de> for ObjectVisitor<'_, 'de> {
    type Value = Object<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a CloudTrail record object")
    }

    fn visit_map<A: MapAccess<'de>>(mut self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut fields = Fields::default();
        while let Some(key) = map.next_key::<Key<'de>>()? {
            match key {
                Key::Known(Known::Records) => match self.on_record.take() {
                    Some(on_record) => {
                        let list = map.next_value_seed(ListSeed { on_record })?;
                        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                        return Ok(Object::Records(list));
                    }
                    None => {
                        let value: &'de RawValue = map.next_value()?;
                        fields.set(Known::Records, value.get(), false);
                    }
                },
                Key::Known(known) => {
                    let value: &'de RawValue = map.next_value()?;
                    fields.set(known, value.get(), false);
                }
                Key::Other(name) => {
                    let value: &'de RawValue = map.next_value()?;
                    fields.extra.push((name, value.get()));
                }
            }
        }
        Ok(Object::Record(fields))
    }
}

/// Streams the elements of a list to a callback; null is an empty list.
struct ListSeed<'f, 'a> {
    on_record: OnRecord<'f, 'a>,
}

impl<'de> DeserializeSeed<'de> for ListSeed<'_, 'de> {
    type Value = RecordsList;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<RecordsList, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ListSeed<'_, 'de> {
    type Value = RecordsList;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a list of CloudTrail records")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<RecordsList, A::Error> {
        while let Some(raw) = seq.next_element::<&'de RawValue>()? {
            (self.on_record)(raw);
        }
        Ok(RecordsList { not_a_list: None })
    }
    fn visit_unit<E: de::Error>(self) -> Result<RecordsList, E> {
        Ok(RecordsList { not_a_list: None })
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RecordsList, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(not_a_list("an object"))
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<RecordsList, E> {
        Ok(not_a_list("a boolean"))
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<RecordsList, E> {
        Ok(not_a_list("a number"))
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<RecordsList, E> {
        Ok(not_a_list("a number"))
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<RecordsList, E> {
        Ok(not_a_list("a number"))
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<RecordsList, E> {
        Ok(not_a_list("a string"))
    }
}

fn not_a_list(what: &'static str) -> RecordsList {
    RecordsList {
        not_a_list: Some(what),
    }
}

/// A top-level key: one the parser reads, or any other (kept in `extra`).
enum Key<'a> {
    Known(Known),
    Other(Cow<'a, str>),
}

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_str(KeyVisitor)
    }
}

struct KeyVisitor;

impl<'de> Visitor<'de> for KeyVisitor {
    type Value = Key<'de>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a field name")
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Key<'de>, E> {
        Ok(Known::from_key(v).map_or(Key::Other(Cow::Borrowed(v)), Key::Known))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Key<'de>, E> {
        Ok(Known::from_key(v).map_or_else(|| Key::Other(Cow::Owned(v.to_owned())), Key::Known))
    }
}

/// The top-level fields the parser reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Known {
    EventTime,
    Timestamp,
    EventId,
    EventSource,
    EventName,
    EventCategory,
    ReadOnly,
    ErrorCode,
    ErrorMessage,
    RecipientAccountId,
    AwsRegion,
    SourceIp,
    UserAgent,
    SessionCredentialFromConsole,
    RequestParameters,
    ResponseElements,
    // read, and kept in `extra` as well
    EventType,
    UserIdentity,
    AdditionalEventData,
    Resources,
    ManagementEvent,
    InsightDetails,
    Detail,
    DetailType,
    // a wrapper's list
    Records,
}

const KNOWN_COUNT: usize = Known::Records as usize + 1;

// `Fields::plain` has one bit per known field.
const _: () = assert!(KNOWN_COUNT <= 64);

impl Known {
    #[inline]
    fn from_key(key: &str) -> Option<Known> {
        Some(match key {
            "eventTime" => Known::EventTime,
            "@timestamp" => Known::Timestamp,
            "eventID" => Known::EventId,
            "eventSource" => Known::EventSource,
            "eventName" => Known::EventName,
            "eventCategory" => Known::EventCategory,
            "readOnly" => Known::ReadOnly,
            "errorCode" => Known::ErrorCode,
            "errorMessage" => Known::ErrorMessage,
            "recipientAccountId" => Known::RecipientAccountId,
            "awsRegion" => Known::AwsRegion,
            "sourceIPAddress" => Known::SourceIp,
            "userAgent" => Known::UserAgent,
            "sessionCredentialFromConsole" => Known::SessionCredentialFromConsole,
            "requestParameters" => Known::RequestParameters,
            "responseElements" => Known::ResponseElements,
            "eventType" => Known::EventType,
            "userIdentity" => Known::UserIdentity,
            "additionalEventData" => Known::AdditionalEventData,
            "resources" => Known::Resources,
            "managementEvent" => Known::ManagementEvent,
            "insightDetails" => Known::InsightDetails,
            "detail" => Known::Detail,
            "detail-type" => Known::DetailType,
            "Records" => Known::Records,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            Known::EventTime => "eventTime",
            Known::Timestamp => "@timestamp",
            Known::EventId => "eventID",
            Known::EventSource => "eventSource",
            Known::EventName => "eventName",
            Known::EventCategory => "eventCategory",
            Known::ReadOnly => "readOnly",
            Known::ErrorCode => "errorCode",
            Known::ErrorMessage => "errorMessage",
            Known::RecipientAccountId => "recipientAccountId",
            Known::AwsRegion => "awsRegion",
            Known::SourceIp => "sourceIPAddress",
            Known::UserAgent => "userAgent",
            Known::SessionCredentialFromConsole => "sessionCredentialFromConsole",
            Known::RequestParameters => "requestParameters",
            Known::ResponseElements => "responseElements",
            Known::EventType => "eventType",
            Known::UserIdentity => "userIdentity",
            Known::AdditionalEventData => "additionalEventData",
            Known::Resources => "resources",
            Known::ManagementEvent => "managementEvent",
            Known::InsightDetails => "insightDetails",
            Known::Detail => "detail",
            Known::DetailType => "detail-type",
            Known::Records => "Records",
        }
    }

    /// Fields only partly lifted into columns, kept whole in `extra` too.
    #[inline]
    fn kept_in_extra(self) -> bool {
        matches!(
            self,
            Known::EventType
                | Known::UserIdentity
                | Known::AdditionalEventData
                | Known::Resources
                | Known::ManagementEvent
                | Known::InsightDetails
                | Known::Detail
                | Known::DetailType
                | Known::Records
        )
    }
}

/// A record's top-level fields as raw JSON text, read in one pass.
#[derive(Default)]
pub(crate) struct Fields<'a> {
    known: [Option<&'a str>; KNOWN_COUNT],
    /// Bit `known as usize` is set when that field's value is a string the
    /// scan saw hold no escape, so its text is read without looking again.
    plain: u64,
    /// The record had no whitespace outside strings, so every raw value is
    /// already compact JSON and is kept as it is.
    compact: bool,
    /// Fields for `extra`, in input order.
    extra: Vec<(Cow<'a, str>, &'a str)>,
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct AdditionalEventData<'a> {
    #[serde(rename = "bytesTransferredIn", borrow)]
    bytes_in: Text<'a>,
    #[serde(rename = "bytesTransferredOut", borrow)]
    bytes_out: Text<'a>,
    #[serde(rename = "MFAUsed", borrow)]
    mfa_used: Text<'a>,
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct S3Request<'a> {
    #[serde(rename = "bucketName", borrow)]
    bucket: Text<'a>,
    #[serde(borrow)]
    key: Text<'a>,
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct Resource<'a> {
    #[serde(rename = "ARN", alias = "arn", borrow)]
    arn: Text<'a>,
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct InsightDetails<'a> {
    #[serde(rename = "eventName", borrow)]
    event_name: Text<'a>,
    #[serde(rename = "eventSource", borrow)]
    event_source: Text<'a>,
}

impl<'a> Fields<'a> {
    /// Keeps a field's raw value; `plain` when it is a string without
    /// escapes (as the scan tells).
    #[inline]
    fn set(&mut self, known: Known, value: &'a str, plain: bool) {
        if let Some(slot) = self.known.get_mut(known as usize) {
            *slot = Some(value);
        }
        let bit = 1u64 << (known as usize);
        if plain {
            self.plain |= bit;
        } else {
            self.plain &= !bit;
        }
        if known.kept_in_extra() {
            self.extra.push((Cow::Borrowed(known.name()), value));
        }
    }

    #[inline]
    fn get(&self, known: Known) -> Option<&'a str> {
        self.known.get(known as usize).copied().flatten()
    }

    /// A lifted scalar field, unless absent, null or empty. An object or
    /// array where a scalar belongs is kept in `extra` instead.
    fn text(&mut self, known: Known) -> Option<Cow<'a, str>> {
        let raw = self.get(known)?;
        if self.plain & (1u64 << (known as usize)) != 0 {
            let inner = raw.get(1..raw.len().saturating_sub(1))?;
            return (!inner.is_empty()).then_some(Cow::Borrowed(inner));
        }
        match scalar(raw) {
            Scalar::Text(t) if !t.is_empty() => Some(t),
            Scalar::Text(_) | Scalar::Null => None,
            Scalar::Complex => {
                if !known.kept_in_extra() {
                    self.extra.push((Cow::Borrowed(known.name()), raw));
                }
                None
            }
        }
    }

    /// A lifted JSON field as compact text into `out`; `None` when absent
    /// or null.
    fn put_json(&self, known: Known, out: &mut Option<String>) {
        match self.get(known) {
            Some(raw) if raw != "null" => {
                let text = out.get_or_insert_with(String::new);
                text.clear();
                text.reserve(raw.len());
                self.push_value(text, raw);
            }
            _ => *out = None,
        }
    }

    /// Appends a raw value as compact JSON: as it is when the record is
    /// compact, else through [`push_compact`].
    fn push_value(&self, out: &mut String, raw: &str) {
        if self.compact {
            out.push_str(raw);
        } else {
            push_compact(out, raw);
        }
    }

    /// True for a `{"Records": [...]}` wrapper read without a callback.
    pub(crate) fn records_list(&self) -> Option<&'a str> {
        let records = self.get(Known::Records)?;
        let is_record =
            self.get(Known::EventName).is_some() || self.get(Known::EventTime).is_some();
        (!is_record).then_some(records)
    }

    /// The `detail` of an EventBridge envelope, when this is one.
    fn eventbridge_detail(&self) -> Option<&'a str> {
        let detail = self.get(Known::Detail)?;
        let envelope =
            self.get(Known::DetailType).is_some() || self.get(Known::EventName).is_none();
        (envelope && detail.starts_with('{')).then_some(detail)
    }

    /// Maps the fields onto an event. `text` is the record's JSON text, hashed
    /// into the event id when the record has no `eventID`.
    pub(crate) fn into_event(self, text: &str, ctx: &ParseContext) -> Result<Event, RecordError> {
        let mut event = Event::default();
        self.fill(text, ctx, &mut event)?;
        Ok(event)
    }

    /// [`Fields::into_event`] into an event used before: every field is
    /// written, into the strings it already holds, so that a reader parsing
    /// record after record into one event allocates next to nothing. On an
    /// error the event is left part written.
    pub(crate) fn fill(
        mut self,
        text: &str,
        ctx: &ParseContext,
        event: &mut Event,
    ) -> Result<(), RecordError> {
        if let Some(detail) = self.eventbridge_detail() {
            return match read_record(detail)? {
                Object::Record(mut inner) if inner.eventbridge_detail().is_none() => {
                    inner.build(detail, ctx, event)
                }
                _ => Err(RecordError::NotARecord(
                    "an EventBridge envelope whose detail is not a CloudTrail record",
                )),
            };
        }
        if self.records_list().is_some() {
            return Err(RecordError::NotARecord(
                "a Records list holding many records",
            ));
        }
        self.build(text, ctx, event)
    }

    fn build(
        &mut self,
        text: &str,
        ctx: &ParseContext,
        out: &mut Event,
    ) -> Result<(), RecordError> {
        // Every field named: one added to the event model must be written
        // here too, or a reused event would carry the last record's value.
        let Event {
            event_time,
            ingest_time,
            source,
            event_id,
            event_source,
            event_name,
            event_category,
            read_only,
            error_code,
            error_message,
            account_id,
            principal,
            principal_type,
            principal_arn,
            user_name,
            session_name,
            access_key_id,
            source_identity,
            mfa,
            console_session,
            region,
            source_ip,
            user_agent,
            resources,
            bucket,
            object_key,
            bytes_in,
            bytes_out,
            session_id,
            target,
            command,
            input,
            keystrokes,
            keystroke_interval_ms_mean,
            keystroke_interval_ms_stddev,
            request,
            response,
            extra,
        } = out;
        let event_type = self.text(Known::EventType);
        let is_insight = event_type.as_deref() == Some("AwsCloudTrailInsight");
        let insight = if is_insight {
            self.get(Known::InsightDetails)
                .and_then(parse_lenient::<InsightDetails<'_>>)
        } else {
            None
        };

        match self.text(Known::EventName) {
            Some(name) => put(event_name, &name),
            None => put(
                event_name,
                insight
                    .as_ref()
                    .and_then(|i| i.event_name.get())
                    .ok_or(RecordError::MissingField("eventName"))?,
            ),
        }
        *event_time = self.event_time()?;
        *ingest_time = ctx.ingest_time;
        *source = Source::Cloudtrail;

        match self.text(Known::EventSource) {
            Some(s) => put(event_source, &s),
            None => put(
                event_source,
                insight
                    .as_ref()
                    .and_then(|i| i.event_source.get())
                    .unwrap_or_default(),
            ),
        }
        match self.text(Known::EventId) {
            Some(id) => put(event_id, &id),
            None => *event_id = trailhound_core::id::stable_id([text]),
        }
        match self.text(Known::EventCategory) {
            Some(c) => put(event_category, &c),
            None if is_insight => put(event_category, "Insight"),
            None if self
                .text(Known::ManagementEvent)
                .as_deref()
                .and_then(parse_bool)
                == Some(false) =>
            {
                put(event_category, "Data")
            }
            None => put(event_category, "Management"),
        }
        *read_only = self.flag(Known::ReadOnly);
        *console_session = self.flag(Known::SessionCredentialFromConsole);

        let identity_account = with_who(self.get(Known::UserIdentity), |who| {
            put(principal, &who.principal);
            put(principal_type, &who.principal_type);
            put_opt(principal_arn, who.principal_arn.as_deref());
            put_opt(user_name, who.user_name.as_deref());
            put_opt(session_name, who.session_name.as_deref());
            put_opt(access_key_id, who.access_key_id.as_deref());
            put_opt(source_identity, who.source_identity.as_deref());
            *mfa = who.mfa;
            who.account_id.clone()
        });

        // Read only when it can hold what is taken from it: `MFAUsed` (read
        // for console logins) or the byte counts. A key written with escapes
        // could hide the words, so a backslash reads it too.
        let console_login = event_name == "ConsoleLogin";
        let additional = self
            .get(Known::AdditionalEventData)
            .filter(|raw| console_login || raw.contains("bytesTransferred") || raw.contains('\\'))
            .and_then(|raw| {
                match scanned_texts(
                    raw,
                    ["bytesTransferredIn", "bytesTransferredOut", "MFAUsed"],
                ) {
                    Some([bytes_in, bytes_out, mfa_used]) => Some(AdditionalEventData {
                        bytes_in,
                        bytes_out,
                        mfa_used,
                    }),
                    None => parse_lenient::<AdditionalEventData<'_>>(raw),
                }
            })
            .unwrap_or_default();
        if console_login {
            match additional.mfa_used.get() {
                Some(v) if v.eq_ignore_ascii_case("yes") => *mfa = Some(true),
                Some(v) if v.eq_ignore_ascii_case("no") => *mfa = Some(false),
                _ => {}
            }
        }
        *bytes_in = additional.bytes_in.get().and_then(parse_count);
        *bytes_out = additional.bytes_out.get().and_then(parse_count);

        match self.get(Known::RequestParameters) {
            Some(raw) if raw.contains("\"bucketName\"") => {
                let s3 = match scanned_texts(raw, ["bucketName", "key"]) {
                    Some([bucket, key]) => S3Request { bucket, key },
                    None => parse_lenient::<S3Request<'_>>(raw).unwrap_or_default(),
                };
                put_opt(bucket, s3.bucket.get());
                put_opt(object_key, s3.key.get());
            }
            _ => {
                *bucket = None;
                *object_key = None;
            }
        }
        *resources = self.get(Known::Resources).map_or_else(Vec::new, |raw| {
            scanned_resources(raw).unwrap_or_else(|| serde_resources(raw))
        });

        match self.text(Known::RecipientAccountId) {
            Some(account) => put_opt(account_id, Some(&account)),
            None => *account_id = identity_account,
        }
        self.put_text(Known::ErrorCode, error_code);
        self.put_text(Known::ErrorMessage, error_message);
        self.put_text(Known::AwsRegion, region);
        self.put_text(Known::SourceIp, source_ip);
        self.put_text(Known::UserAgent, user_agent);
        self.put_json(Known::RequestParameters, request);
        self.put_json(Known::ResponseElements, response);
        // Not CloudTrail's: the session columns stay empty.
        *session_id = None;
        *target = None;
        *command = None;
        *input = None;
        *keystrokes = None;
        *keystroke_interval_ms_mean = None;
        *keystroke_interval_ms_stddev = None;
        // Last: reading the fields above adds what they cannot lift.
        self.put_extra(extra);
        Ok(())
    }

    /// A lifted scalar field into `out`.
    fn put_text(&mut self, known: Known, out: &mut Option<String>) {
        let text = self.text(known);
        put_opt(out, text.as_deref());
    }

    /// A lifted flag: a JSON boolean or the text `true`/`false`. Any other
    /// value is kept in `extra` as it came, so that nothing is dropped.
    fn flag(&mut self, known: Known) -> Option<bool> {
        let text = self.text(known)?;
        let flag = parse_bool(&text);
        if flag.is_none()
            && let Some(raw) = self.get(known)
        {
            self.extra.push((Cow::Borrowed(known.name()), raw));
        }
        flag
    }

    /// `eventTime`, else `@timestamp`; the one not used goes to `extra`.
    fn event_time(&mut self) -> Result<i64, RecordError> {
        let (field, raw) = match (self.get(Known::EventTime), self.get(Known::Timestamp)) {
            (Some(t), stamp) if raw_is_present(t) => {
                if let Some(stamp) = stamp {
                    self.extra.push((Cow::Borrowed("@timestamp"), stamp));
                }
                ("eventTime", t)
            }
            (time, Some(stamp)) if raw_is_present(stamp) => {
                if let Some(time) = time {
                    self.extra.push((Cow::Borrowed("eventTime"), time));
                }
                ("@timestamp", stamp)
            }
            _ => return Err(RecordError::MissingField("eventTime")),
        };
        parse_time(raw).ok_or_else(|| RecordError::InvalidField {
            field,
            detail: format!(
                "{} is not a timestamp this parser reads (RFC 3339 expected)",
                excerpt(raw)
            ),
        })
    }

    /// The `extra` object as compact JSON text into `out`; `None` when
    /// empty.
    fn put_extra(&self, out: &mut Option<String>) {
        if self.extra.is_empty() {
            *out = None;
            return;
        }
        let size: usize = self.extra.iter().map(|(k, v)| k.len() + v.len() + 4).sum();
        let out = out.get_or_insert_with(String::new);
        out.clear();
        out.reserve(size + 2);
        out.push('{');
        for (i, (key, value)) in self.extra.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            match key {
                // A borrowed key is raw JSON text without escapes (one with
                // escapes arrives unescaped, owned): written as it is.
                Cow::Borrowed(raw) => {
                    out.push('"');
                    out.push_str(raw);
                    out.push('"');
                }
                Cow::Owned(unescaped) => push_key(out, unescaped),
            }
            out.push(':');
            self.push_value(out, value);
        }
        out.push('}');
    }
}

/// Writes `text` into `out`, in the room it already has.
fn put(out: &mut String, text: &str) {
    out.clear();
    out.push_str(text);
}

/// [`put`] for an optional field: `None` empties it.
fn put_opt(out: &mut Option<String>, text: Option<&str>) {
    match (out.as_mut(), text) {
        (Some(out), Some(text)) => put(out, text),
        (None, Some(text)) => *out = Some(text.to_owned()),
        (_, None) => *out = None,
    }
}

fn raw_is_present(raw: &str) -> bool {
    !matches!(raw, "null" | "\"\"")
}

fn excerpt(s: &str) -> String {
    let cut: String = s.chars().take(64).collect();
    if cut.len() < s.len() {
        format!("{cut}...")
    } else {
        cut
    }
}

/// Reads a timestamp: RFC 3339, `YYYY-MM-DD[T ]HH:MM:SS[.fff]` without zone
/// (taken as UTC), or a number of seconds, milliseconds, microseconds or
/// nanoseconds since the epoch (told apart by magnitude).
fn parse_time(raw: &str) -> Option<i64> {
    let text = match scalar(raw) {
        Scalar::Text(t) => t,
        Scalar::Null | Scalar::Complex => return None,
    };
    let text = text.trim();
    if let Some(micros) = trailhound_core::time::parse_rfc3339_micros(text) {
        return Some(micros);
    }
    if text
        .bytes()
        .all(|b| b.is_ascii_digit() || b == b'.' || b == b'-')
    {
        let n = text.parse::<f64>().ok().filter(|n| n.is_finite())?;
        let micros = match n.abs() {
            a if a < 1e11 => n * 1e6,
            a if a < 1e14 => n * 1e3,
            a if a < 1e17 => n,
            _ => n / 1e3,
        };
        return (micros.abs() < 9.0e18).then_some(micros.round() as i64);
    }
    let plain = text.trim_end_matches('Z');
    ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"]
        .iter()
        .find_map(|f| chrono::NaiveDateTime::parse_from_str(plain, f).ok())
        .map(|t| t.and_utc().timestamp_micros())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn time(s: &str) -> Option<i64> {
        parse_time(s)
    }

    /// The fast scan may decline anything (serde_json then decides), but
    /// what it accepts, serde_json must accept too, with the same fields.
    #[test]
    fn the_fast_scan_accepts_only_what_serde_json_accepts_with_the_same_fields() {
        let record = r#"{"eventVersion":"1.08","userIdentity":{"type":"IAMUser","arn":"arn:aws:iam::1:user/a","sessionContext":{"attributes":{"mfaAuthenticated":"true"}}},"eventTime":"2026-11-02T10:00:00Z","eventName":"GetObject","requestParameters":{"bucketName":"b","key":"a\"b\u00e9 \\ ü😀"},"n":-1.5e3,"t":true,"f":false,"z":null,"arr":[1,[2,{}],"x",0.5,-0],"weird":"k\"q"}"#;
        let mut cases: Vec<String> = [
            "{}",
            " { } ",
            "{}\n",
            "{} x",
            "{}}",
            "{,}",
            r#"{"a":1,}"#,
            r#"{"a":1 "b":2}"#,
            r#"{"a" 1}"#,
            r#"{"a":01}"#,
            r#"{"a":1.}"#,
            r#"{"a":-}"#,
            r#"{"a":1e}"#,
            r#"{"a":.5}"#,
            r#"{"a":+1}"#,
            r#"{"a":tru}"#,
            r#"{"a":nul}"#,
            r#"{"a":"\x"}"#,
            r#"{"a":"\u12"}"#,
            r#"{"a":"\u12G4"}"#,
            r#"{"a":"\ud800"}"#,
            r#"{"a":"\ud800\udc00"}"#,
            "{\"a\":\"tab\there\"}",
            "{\"a\":\"new\nline\"}",
            r#"{"a":[1,2}"#,
            r#"{"a":{"b":[1,2,]}}"#,
            r#"{"a":{"b":1}"#,
            r#"{"a":"x"#,
            r#"{"a":1}{"b":2}"#,
            r#"{"a":1}  "#,
            r#"{"k\"ey":1}"#,
            r#"{"Records":[{"eventName":"x"}]}"#,
            "[1]",
            "\"s\"",
            "",
        ]
        .into_iter()
        .map(str::to_owned)
        .collect();
        cases.push(record.to_owned());
        let pretty: serde_json::Value = serde_json::from_str(record).unwrap();
        cases.push(serde_json::to_string_pretty(&pretty).unwrap());
        // The same without a backslash: strings are then found by the
        // quote bits, not scanned.
        let plain = r#"{"eventVersion":"1.08","userIdentity":{"type":"IAMUser","arn":"arn:aws:iam::1:user/a","sessionContext":{"attributes":{"mfaAuthenticated":"true"}}},"eventTime":"2026-11-02T10:00:00Z","eventName":"GetObject","requestParameters":{"bucketName":"b","key":"a b ü😀 a long key that crosses a 64-byte word of the quote bits"},"n":-1.5e3,"t":true,"f":false,"z":null,"arr":[1,[2,{}],"x",0.5,-0],"weird":"kq"}"#;
        cases.push(plain.to_owned());
        for base in [record, plain] {
            cases.extend((0..base.len()).filter_map(|i| base.get(..i).map(str::to_owned)));
            for i in 0..base.len() {
                for b in [
                    b'"', b'\\', b'{', b'}', b'[', b']', b',', b':', b' ', b'x', b'0', b'e', b'-',
                    0x01, 0x7f,
                ] {
                    let mut bytes = base.as_bytes().to_vec();
                    bytes[i] = b;
                    cases.extend(String::from_utf8(bytes).ok());
                    let mut bytes = base.as_bytes().to_vec();
                    bytes.insert(i, b);
                    cases.extend(String::from_utf8(bytes).ok());
                }
            }
        }
        let mut accepted = 0;
        for case in &cases {
            let slow = read_object(case, None);
            let Some(fast) = read_record_fast(case) else {
                // Declined: only texts serde_json refuses too, `Records`
                // lists and texts with control characters (newlines).
                let escaped_key =
                    |f: &Fields<'_>| f.extra.iter().any(|(k, _)| matches!(k, Cow::Owned(_)));
                assert!(
                    match &slow {
                        Ok(Object::Record(f)) => escaped_key(f),
                        _ => true,
                    } || case.contains("Records")
                        || case.bytes().any(|b| b < 0x20),
                    "declined a plain valid record: {case:?}"
                );
                continue;
            };
            accepted += 1;
            match slow {
                Ok(Object::Record(slow)) => {
                    assert_eq!(fast.known, slow.known, "{case}");
                    assert_eq!(fast.extra, slow.extra, "{case}");
                    assert!(compact_when_said(&fast), "{case}");
                }
                _ => panic!("the fast scan accepted what serde_json refuses: {case:?}"),
            }
        }
        assert!(read_record_fast(record).is_some());
        assert!(read_record_fast(plain).is_some());
        assert!(accepted > 1000, "accepted only {accepted}");
    }

    #[test]
    fn times_in_the_shapes_exports_use() {
        let t = Some(1_600_044_263_000_000);
        assert_eq!(time(r#""2020-09-14T00:44:23Z""#), t);
        assert_eq!(time(r#""2020-09-14T00:44:23.000Z""#), t);
        assert_eq!(time(r#""2020-09-14 00:44:23""#), t);
        assert_eq!(time("1600044263"), t);
        assert_eq!(time("1600044263000"), t);
        assert_eq!(time(r#""1600044263000""#), t);
        assert_eq!(time(r#""yesterday""#), None);
        assert_eq!(time("{}"), None);
    }

    #[test]
    fn nested_fields_taken_with_the_scan_agree_with_serde() {
        let objects = [
            r#"{"bucketName":"b","Host":"b.s3.amazonaws.com","key":"k/1.json"}"#,
            r#"{"bucketName":"","key":"k"}"#,
            r#"{"bucketName":"b","bucketName":"c"}"#,
            r#"{"bucketName":"b\u0041","key":"k"}"#,
            r#"{"bucket\u004eame":"b"}"#,
            r#"{"bucketName":12345,"key":0}"#,
            r#"{"bucketName":1.5,"key":-3}"#,
            r#"{"bucketName":true,"key":null}"#,
            r#"{"bucketName":{"a":1},"key":["k"]}"#,
            r#"{"Host":"h","Host":"h2","bucketName":"b"}"#,
            r#"{ "bucketName" : "b" , "key" : "k" }"#,
            r#"["bucketName"]"#,
            r#""bucketName""#,
            "{}",
        ];
        let mut taken = 0;
        for raw in objects {
            let slow = parse_lenient::<S3Request<'_>>(raw).unwrap_or_default();
            if let Some([bucket, key]) = scanned_texts(raw, ["bucketName", "key"]) {
                taken += 1;
                assert_eq!(bucket.get(), slow.bucket.get(), "{raw}");
                assert_eq!(key.get(), slow.key.get(), "{raw}");
            }
        }
        assert!(taken >= 5, "took only {taken}");

        let lists = [
            r#"[{"type":"AWS::S3::Object","ARN":"arn:aws:s3:::b/k"},{"accountId":"1","ARN":"arn:aws:s3:::b"}]"#,
            r#"[{"arn":"arn:aws:iam::1:role/r"}]"#,
            r#"[{"ARN":"a","arn":"b"}]"#,
            r#"[{"ARN":"","arn":"b"}]"#,
            r#"[{"ARN":"a","ARN":"b"}]"#,
            r#"[{"ARN":"a\/b"}]"#,
            r#"[{"ARN":7},"text",3,null,[1],{"type":"x"}]"#,
            r#"[{"ARN":"a"},{"ARN":{"x":1}}]"#,
            r#"{"ARN":"a"}"#,
            "[]",
            "[ ]",
        ];
        let mut taken = 0;
        for raw in lists {
            let slow = serde_resources(raw);
            if let Some(fast) = scanned_resources(raw) {
                taken += 1;
                assert_eq!(fast, slow, "{raw}");
            }
        }
        assert!(taken >= 5, "took only {taken}");
    }
}
