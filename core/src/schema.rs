//! The Arrow schema of the event model, and the builder that turns events into
//! `RecordBatch`es. This is where a normalised event becomes an Arrow row.
//!
//! Low-cardinality strings (event source and name, account, region, ...) are
//! dictionary-encoded: a batch of a thousand events usually holds a few dozen
//! distinct values, and rules compare them far faster as dictionary keys.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, OnceLock};

use arrow::array::builder::NullBufferBuilder;
use arrow::array::{
    Array, ArrayRef, AsArray, BooleanBuilder, DictionaryArray, Float64Builder, Int32Array,
    Int64Builder, ListBuilder, PrimitiveBuilder, RecordBatch, StringBuilder,
    TimestampMicrosecondBuilder,
};
use arrow::compute::{cast, concat_batches};
use arrow::datatypes::{
    ArrowPrimitiveType, DataType, Field, Int32Type, Schema, SchemaRef, TimeUnit,
};
use arrow::error::ArrowError;

use crate::event::Event;

/// The type of dictionary-encoded string columns.
pub fn dict_utf8() -> DataType {
    DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8))
}

/// The type of the time columns: microseconds, UTC.
pub fn timestamp_utc() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

/// The column names of the event model, in schema order.
pub mod columns {
    #![allow(missing_docs)]
    pub const EVENT_TIME: &str = "event_time";
    pub const INGEST_TIME: &str = "ingest_time";
    pub const SOURCE: &str = "source";
    pub const EVENT_ID: &str = "event_id";
    pub const EVENT_SOURCE: &str = "event_source";
    pub const EVENT_NAME: &str = "event_name";
    pub const EVENT_CATEGORY: &str = "event_category";
    pub const READ_ONLY: &str = "read_only";
    pub const ERROR_CODE: &str = "error_code";
    pub const ERROR_MESSAGE: &str = "error_message";
    pub const ACCOUNT_ID: &str = "account_id";
    pub const PRINCIPAL: &str = "principal";
    pub const PRINCIPAL_TYPE: &str = "principal_type";
    pub const PRINCIPAL_ARN: &str = "principal_arn";
    pub const USER_NAME: &str = "user_name";
    pub const SESSION_NAME: &str = "session_name";
    pub const ACCESS_KEY_ID: &str = "access_key_id";
    pub const SOURCE_IDENTITY: &str = "source_identity";
    pub const MFA: &str = "mfa";
    pub const CONSOLE_SESSION: &str = "console_session";
    pub const REGION: &str = "region";
    pub const SOURCE_IP: &str = "source_ip";
    pub const USER_AGENT: &str = "user_agent";
    pub const RESOURCES: &str = "resources";
    pub const BUCKET: &str = "bucket";
    pub const OBJECT_KEY: &str = "object_key";
    pub const BYTES_IN: &str = "bytes_in";
    pub const BYTES_OUT: &str = "bytes_out";
    pub const SESSION_ID: &str = "session_id";
    pub const TARGET: &str = "target";
    pub const COMMAND: &str = "command";
    pub const INPUT: &str = "input";
    pub const KEYSTROKES: &str = "keystrokes";
    pub const KEYSTROKE_INTERVAL_MS_MEAN: &str = "keystroke_interval_ms_mean";
    pub const KEYSTROKE_INTERVAL_MS_STDDEV: &str = "keystroke_interval_ms_stddev";
    pub const REQUEST: &str = "request";
    pub const RESPONSE: &str = "response";
    pub const EXTRA: &str = "extra";
}

/// The Arrow schema every event batch has. Built once and shared.
pub fn event_schema() -> SchemaRef {
    static SCHEMA: OnceLock<SchemaRef> = OnceLock::new();
    SCHEMA
        .get_or_init(|| {
            use columns::*;
            let s = |n: &str| Field::new(n, DataType::Utf8, true);
            let d = |n: &str| Field::new(n, dict_utf8(), true);
            Arc::new(Schema::new(vec![
                Field::new(EVENT_TIME, timestamp_utc(), false),
                Field::new(INGEST_TIME, timestamp_utc(), false),
                Field::new(SOURCE, dict_utf8(), false),
                Field::new(EVENT_ID, DataType::Utf8, false),
                Field::new(EVENT_SOURCE, dict_utf8(), false),
                Field::new(EVENT_NAME, dict_utf8(), false),
                Field::new(EVENT_CATEGORY, dict_utf8(), false),
                Field::new(READ_ONLY, DataType::Boolean, true),
                d(ERROR_CODE),
                s(ERROR_MESSAGE),
                d(ACCOUNT_ID),
                Field::new(PRINCIPAL, dict_utf8(), false),
                Field::new(PRINCIPAL_TYPE, dict_utf8(), false),
                s(PRINCIPAL_ARN),
                d(USER_NAME),
                s(SESSION_NAME),
                s(ACCESS_KEY_ID),
                s(SOURCE_IDENTITY),
                Field::new(MFA, DataType::Boolean, true),
                Field::new(CONSOLE_SESSION, DataType::Boolean, true),
                d(REGION),
                s(SOURCE_IP),
                d(USER_AGENT),
                Field::new(
                    RESOURCES,
                    DataType::List(Arc::new(Field::new("item", DataType::Utf8, true))),
                    true,
                ),
                d(BUCKET),
                s(OBJECT_KEY),
                Field::new(BYTES_IN, DataType::Int64, true),
                Field::new(BYTES_OUT, DataType::Int64, true),
                s(SESSION_ID),
                d(TARGET),
                s(COMMAND),
                s(INPUT),
                Field::new(KEYSTROKES, DataType::Int64, true),
                Field::new(KEYSTROKE_INTERVAL_MS_MEAN, DataType::Float64, true),
                Field::new(KEYSTROKE_INTERVAL_MS_STDDEV, DataType::Float64, true),
                s(REQUEST),
                s(RESPONSE),
                s(EXTRA),
            ]))
        })
        .clone()
}

/// A dictionary column. Each value is looked up once per run of rows that
/// hold it (the source, and a trail's account and region, nearly always; the
/// principal type and category often), first against the run's own key,
/// then in a table of the batch's distinct values, hashed with aHash keyed
/// at random per process (the values are names a sender chooses).
struct Dict {
    /// One key per row (0 for a null row).
    keys: Vec<i32>,
    valid: NullBufferBuilder,
    /// The distinct values, in order of first appearance: key `k` is the
    /// `k`th.
    values: StringBuilder,
    index: HashMap<Box<str>, i32, ahash::RandomState>,
    /// The key of the last value appended.
    last: Option<i32>,
}

impl Dict {
    fn with_capacity(rows: usize) -> Self {
        Self {
            keys: Vec::with_capacity(rows),
            valid: NullBufferBuilder::new(rows),
            values: StringBuilder::with_capacity(64, 1024),
            index: HashMap::default(),
            last: None,
        }
    }

    /// The text of the value with key `key`.
    fn value(&self, key: i32) -> Option<&[u8]> {
        let offsets = self.values.offsets_slice();
        let k = usize::try_from(key).ok()?;
        let (start, end) = (*offsets.get(k)?, *offsets.get(k + 1)?);
        let (start, end) = (usize::try_from(start).ok()?, usize::try_from(end).ok()?);
        self.values.values_slice().get(start..end)
    }

    fn append_value(&mut self, value: &str) {
        let key = match self.last {
            Some(last) if self.value(last) == Some(value.as_bytes()) => last,
            _ => match self.index.get(value) {
                Some(&key) => key,
                None => {
                    // Past 2^31 distinct values in one batch (never: a batch
                    // holds thousands of rows) the row would be null.
                    let Ok(key) = i32::try_from(self.index.len()) else {
                        self.append_null();
                        return;
                    };
                    self.values.append_value(value);
                    self.index.insert(value.into(), key);
                    key
                }
            },
        };
        self.last = Some(key);
        self.keys.push(key);
        self.valid.append_non_null();
    }

    fn append_null(&mut self) {
        self.keys.push(0);
        self.valid.append_null();
    }

    fn append_option(&mut self, value: Option<&str>) {
        match value {
            Some(v) => self.append_value(v),
            None => self.append_null(),
        }
    }

    /// The column, leaving room for `rows` more.
    fn finish(&mut self, rows: usize) -> ArrayRef {
        let len = self.keys.len();
        let keys = std::mem::replace(&mut self.keys, Vec::with_capacity(rows));
        let keys = Int32Array::try_new(keys.into(), self.valid.finish());
        let (distinct, bytes) = (self.index.len(), self.values.values_slice().len());
        let values: ArrayRef = Arc::new(
            std::mem::replace(
                &mut self.values,
                StringBuilder::with_capacity(distinct + distinct / 4, bytes + bytes / 4),
            )
            .finish(),
        );
        self.index.clear();
        self.last = None;
        match keys.and_then(|keys| DictionaryArray::try_new(keys, values)) {
            Ok(dict) => Arc::new(dict),
            // Never: every row adds one key and one validity bit, and keys
            // only index the values appended with them.
            Err(_) => arrow::array::new_null_array(&dict_utf8(), len),
        }
    }
}

/// Appends events column by column and finishes them into a `RecordBatch` of
/// [`event_schema`]. Reusable: `finish` leaves it empty and ready.
pub struct EventBatchBuilder {
    len: usize,
    event_time: TimestampMicrosecondBuilder,
    ingest_time: TimestampMicrosecondBuilder,
    source: Dict,
    event_id: StringBuilder,
    event_source: Dict,
    event_name: Dict,
    event_category: Dict,
    read_only: BooleanBuilder,
    error_code: Dict,
    error_message: StringBuilder,
    account_id: Dict,
    principal: Dict,
    principal_type: Dict,
    principal_arn: StringBuilder,
    user_name: Dict,
    session_name: StringBuilder,
    access_key_id: StringBuilder,
    source_identity: StringBuilder,
    mfa: BooleanBuilder,
    console_session: BooleanBuilder,
    region: Dict,
    source_ip: StringBuilder,
    user_agent: Dict,
    resources: ListBuilder<StringBuilder>,
    bucket: Dict,
    object_key: StringBuilder,
    bytes_in: Int64Builder,
    bytes_out: Int64Builder,
    session_id: StringBuilder,
    target: Dict,
    command: StringBuilder,
    input: StringBuilder,
    keystrokes: Int64Builder,
    keystroke_interval_ms_mean: Float64Builder,
    keystroke_interval_ms_stddev: Float64Builder,
    request: StringBuilder,
    response: StringBuilder,
    extra: StringBuilder,
}

impl Default for EventBatchBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl EventBatchBuilder {
    /// An empty builder.
    pub fn new() -> Self {
        Self::with_capacity(&[])
    }

    /// An empty builder whose buffers already hold room for `events`: the
    /// text columns' bytes are counted first, so appending them copies each
    /// value once instead of growing (and copying again) every buffer from
    /// empty, batch after batch.
    pub fn with_capacity(events: &[Event]) -> Self {
        let rows = events.len();
        let text = |f: fn(&Event) -> Option<&str>| {
            let bytes = events.iter().filter_map(f).map(str::len).sum();
            StringBuilder::with_capacity(rows, bytes)
        };
        let dict = || Dict::with_capacity(rows);
        let time = || TimestampMicrosecondBuilder::with_capacity(rows).with_timezone("UTC");
        let resources = events.iter().map(|e| e.resources.len()).sum();
        let resource_bytes = events
            .iter()
            .flat_map(|e| &e.resources)
            .map(String::len)
            .sum();
        Self {
            len: 0,
            event_time: time(),
            ingest_time: time(),
            source: dict(),
            event_id: text(|e| Some(&e.event_id)),
            event_source: dict(),
            event_name: dict(),
            event_category: dict(),
            read_only: BooleanBuilder::with_capacity(rows),
            error_code: dict(),
            error_message: text(|e| e.error_message.as_deref()),
            account_id: dict(),
            principal: dict(),
            principal_type: dict(),
            principal_arn: text(|e| e.principal_arn.as_deref()),
            user_name: dict(),
            session_name: text(|e| e.session_name.as_deref()),
            access_key_id: text(|e| e.access_key_id.as_deref()),
            source_identity: text(|e| e.source_identity.as_deref()),
            mfa: BooleanBuilder::with_capacity(rows),
            console_session: BooleanBuilder::with_capacity(rows),
            region: dict(),
            source_ip: text(|e| e.source_ip.as_deref()),
            user_agent: dict(),
            resources: ListBuilder::with_capacity(
                StringBuilder::with_capacity(resources, resource_bytes),
                rows,
            ),
            bucket: dict(),
            object_key: text(|e| e.object_key.as_deref()),
            bytes_in: Int64Builder::with_capacity(rows),
            bytes_out: Int64Builder::with_capacity(rows),
            session_id: text(|e| e.session_id.as_deref()),
            target: dict(),
            command: text(|e| e.command.as_deref()),
            input: text(|e| e.input.as_deref()),
            keystrokes: Int64Builder::with_capacity(rows),
            keystroke_interval_ms_mean: Float64Builder::with_capacity(rows),
            keystroke_interval_ms_stddev: Float64Builder::with_capacity(rows),
            request: text(|e| e.request.as_deref()),
            response: text(|e| e.response.as_deref()),
            extra: text(|e| e.extra.as_deref()),
        }
    }

    /// Rows appended since the last `finish`.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when nothing was appended since the last `finish`.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Appends one event as one row.
    pub fn append(&mut self, e: &Event) {
        self.len += 1;
        self.event_time.append_value(e.event_time);
        self.ingest_time.append_value(e.ingest_time);
        self.source.append_value(e.source.as_str());
        self.event_id.append_value(&e.event_id);
        self.event_source.append_value(&e.event_source);
        self.event_name.append_value(&e.event_name);
        self.event_category.append_value(&e.event_category);
        self.read_only.append_option(e.read_only);
        self.error_code.append_option(e.error_code.as_deref());
        self.error_message.append_option(e.error_message.as_deref());
        self.account_id.append_option(e.account_id.as_deref());
        self.principal.append_value(&e.principal);
        self.principal_type.append_value(&e.principal_type);
        self.principal_arn.append_option(e.principal_arn.as_deref());
        self.user_name.append_option(e.user_name.as_deref());
        self.session_name.append_option(e.session_name.as_deref());
        self.access_key_id.append_option(e.access_key_id.as_deref());
        self.source_identity
            .append_option(e.source_identity.as_deref());
        self.mfa.append_option(e.mfa);
        self.console_session.append_option(e.console_session);
        self.region.append_option(e.region.as_deref());
        self.source_ip.append_option(e.source_ip.as_deref());
        self.user_agent.append_option(e.user_agent.as_deref());
        for r in &e.resources {
            self.resources.values().append_value(r);
        }
        self.resources.append(true);
        self.bucket.append_option(e.bucket.as_deref());
        self.object_key.append_option(e.object_key.as_deref());
        self.bytes_in.append_option(e.bytes_in);
        self.bytes_out.append_option(e.bytes_out);
        self.session_id.append_option(e.session_id.as_deref());
        self.target.append_option(e.target.as_deref());
        self.command.append_option(e.command.as_deref());
        self.input.append_option(e.input.as_deref());
        self.keystrokes.append_option(e.keystrokes);
        self.keystroke_interval_ms_mean
            .append_option(e.keystroke_interval_ms_mean);
        self.keystroke_interval_ms_stddev
            .append_option(e.keystroke_interval_ms_stddev);
        self.request.append_option(e.request.as_deref());
        self.response.append_option(e.response.as_deref());
        self.extra.append_option(e.extra.as_deref());
    }

    /// Finishes the appended rows into a batch and empties the builder,
    /// leaving each column room for as many rows as this batch had and a
    /// quarter more bytes (Arrow's builders give their buffers away whole),
    /// so that a builder filled batch after batch does not grow every
    /// buffer from empty, nor copy it whole when the next batch is a little
    /// bigger.
    pub fn finish(&mut self) -> RecordBatch {
        let rows = std::mem::take(&mut self.len);
        let time = |b: &mut TimestampMicrosecondBuilder| finish_primitive(b, rows);
        let count = |b: &mut Int64Builder| finish_primitive(b, rows);
        let real = |b: &mut Float64Builder| finish_primitive(b, rows);
        let flag = |b: &mut BooleanBuilder| -> ArrayRef {
            let array = b.finish();
            *b = BooleanBuilder::with_capacity(rows);
            Arc::new(array)
        };
        let text = |b: &mut StringBuilder| -> ArrayRef {
            let bytes = b.values_slice().len();
            let array = b.finish();
            *b = StringBuilder::with_capacity(rows, bytes + bytes / 4);
            Arc::new(array)
        };
        let resources = {
            let (items, bytes) = {
                let values = self.resources.values_ref();
                (
                    values.offsets_slice().len().saturating_sub(1),
                    values.values_slice().len(),
                )
            };
            let array = self.resources.finish();
            self.resources = ListBuilder::with_capacity(
                StringBuilder::with_capacity(items + items / 4, bytes + bytes / 4),
                rows,
            );
            Arc::new(array) as ArrayRef
        };
        let columns: Vec<ArrayRef> = vec![
            time(&mut self.event_time),
            time(&mut self.ingest_time),
            self.source.finish(rows),
            text(&mut self.event_id),
            self.event_source.finish(rows),
            self.event_name.finish(rows),
            self.event_category.finish(rows),
            flag(&mut self.read_only),
            self.error_code.finish(rows),
            text(&mut self.error_message),
            self.account_id.finish(rows),
            self.principal.finish(rows),
            self.principal_type.finish(rows),
            text(&mut self.principal_arn),
            self.user_name.finish(rows),
            text(&mut self.session_name),
            text(&mut self.access_key_id),
            text(&mut self.source_identity),
            flag(&mut self.mfa),
            flag(&mut self.console_session),
            self.region.finish(rows),
            text(&mut self.source_ip),
            self.user_agent.finish(rows),
            resources,
            self.bucket.finish(rows),
            text(&mut self.object_key),
            count(&mut self.bytes_in),
            count(&mut self.bytes_out),
            text(&mut self.session_id),
            self.target.finish(rows),
            text(&mut self.command),
            text(&mut self.input),
            count(&mut self.keystrokes),
            real(&mut self.keystroke_interval_ms_mean),
            real(&mut self.keystroke_interval_ms_stddev),
            text(&mut self.request),
            text(&mut self.response),
            text(&mut self.extra),
        ];
        // The columns above are built in schema order with the schema's types,
        // so this cannot fail; a mismatch is a programming error caught by the
        // `batch_matches_schema` test.
        RecordBatch::try_new(event_schema(), columns)
            .unwrap_or_else(|e| unreachable!("event builder out of step with schema: {e}"))
    }
}

/// A primitive column, leaving its builder room for `rows` more of the
/// same type (a timestamp keeps its time zone).
fn finish_primitive<T: ArrowPrimitiveType>(b: &mut PrimitiveBuilder<T>, rows: usize) -> ArrayRef {
    let array = b.finish();
    *b = PrimitiveBuilder::<T>::with_capacity(rows).with_data_type(array.data_type().clone());
    Arc::new(array)
}

/// Converts a slice of events into one batch.
pub fn events_to_batch(events: &[Event]) -> RecordBatch {
    let mut b = EventBatchBuilder::with_capacity(events);
    for e in events {
        b.append(e);
    }
    b.finish()
}

/// Joins batches of [`event_schema`] into one. Each dictionary column of
/// the result holds every value once, as [`EventBatchBuilder`] makes them
/// (Arrow's join keeps each part's dictionary while they are short), so
/// that comparisons by dictionary key still apply to it.
pub fn join_event_batches(batches: &[RecordBatch]) -> Result<RecordBatch, ArrowError> {
    let joined = concat_batches(&event_schema(), batches)?;
    let columns = joined
        .columns()
        .iter()
        .map(|column| match column.as_dictionary_opt::<Int32Type>() {
            Some(dict) if repeats_a_value(dict) => {
                cast(&cast(column, &DataType::Utf8)?, column.data_type())
            }
            _ => Ok(Arc::clone(column)),
        })
        .collect::<Result<Vec<_>, _>>()?;
    RecordBatch::try_new(joined.schema(), columns)
}

/// True when a dictionary holds some text more than once.
fn repeats_a_value(dict: &DictionaryArray<Int32Type>) -> bool {
    let Some(values) = dict.values().as_string_opt::<i32>() else {
        return false;
    };
    let mut seen = HashSet::with_capacity_and_hasher(values.len(), ahash::RandomState::new());
    values.iter().flatten().any(|v| !seen.insert(v))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Source;
    use arrow::datatypes::Int32Type;

    #[test]
    fn batch_matches_schema() {
        let e = Event {
            event_time: 1,
            source: Source::Session,
            event_id: "s:1".into(),
            event_name: "session.command".into(),
            principal: "gateway:alice".into(),
            resources: vec!["arn:aws:s3:::b".into()],
            command: Some("ls".into()),
            ..Default::default()
        };
        let batch = events_to_batch(&[e.clone(), Event::default()]);
        assert_eq!(batch.num_rows(), 2);
        assert_eq!(batch.schema(), event_schema());
    }

    #[test]
    fn dictionary_columns_appended_in_runs_keep_every_row() {
        use arrow::array::{Array, AsArray};
        let regions = [
            Some("eu-west-1"),
            Some("eu-west-1"),
            None,
            Some("eu-west-1"),
            Some("us-east-1"),
            Some("us-east-1"),
            Some(""),
            Some("eu-west-1"),
            None,
            None,
            Some("ap-south-1"),
        ];
        let events: Vec<Event> = regions
            .iter()
            .map(|r| Event {
                region: r.map(str::to_string),
                ..Default::default()
            })
            .collect();
        let mut b = EventBatchBuilder::new();
        for round in 0..2 {
            for e in &events {
                b.append(e);
            }
            let batch = b.finish();
            let column = batch
                .column_by_name(columns::REGION)
                .and_then(|c| c.as_dictionary_opt::<Int32Type>())
                .unwrap();
            let values = column.values().as_string::<i32>();
            let read: Vec<Option<&str>> = column
                .keys()
                .iter()
                .map(|k| k.map(|k| values.value(k as usize)))
                .collect();
            assert_eq!(read, regions, "round {round}");
            // Each distinct value is in the dictionary once.
            assert_eq!(values.len(), 4, "round {round}");
        }
    }

    #[test]
    fn joined_batches_hold_the_rows_in_order_with_each_value_once() {
        let event = |name: &str, region: Option<&str>, id: &str| Event {
            event_id: id.into(),
            event_name: name.into(),
            region: region.map(str::to_string),
            ..Default::default()
        };
        let parts = [
            vec![
                event("GetObject", Some("eu-west-1"), "1"),
                event("GetObject", None, "2"),
                event("ListUsers", Some("eu-west-1"), "3"),
            ],
            vec![event("ListUsers", Some("us-east-1"), "4")],
            vec![
                event("GetObject", Some("eu-west-1"), "5"),
                event("GetObject", Some("eu-west-1"), "6"),
                event("GetObject", Some("eu-west-1"), "7"),
            ],
        ];
        let batches: Vec<RecordBatch> = parts.iter().map(|p| events_to_batch(p)).collect();
        let joined = join_event_batches(&batches).unwrap();
        let whole = events_to_batch(&parts.concat());
        assert_eq!(joined.schema(), event_schema());
        assert_eq!(joined.num_rows(), 7);
        for (i, (a, b)) in joined.columns().iter().zip(whole.columns()).enumerate() {
            if let Some(dict) = a.as_dictionary_opt::<Int32Type>() {
                assert!(!repeats_a_value(dict), "column {i} repeats a value");
                let text = |c: &ArrayRef| cast(c, &DataType::Utf8).unwrap();
                assert_eq!(&text(a), &text(b), "column {i}");
            } else {
                assert_eq!(a, b, "column {i}");
            }
        }
        assert!(join_event_batches(&[]).unwrap().num_rows() == 0);
    }

    #[test]
    fn builder_is_reusable() {
        let mut b = EventBatchBuilder::new();
        b.append(&Event::default());
        assert_eq!(b.finish().num_rows(), 1);
        assert!(b.is_empty());
        assert_eq!(b.finish().num_rows(), 0);
    }
}
