//! The lake writer: one open Parquet part per table and hour partition,
//! rolled by size, by age and on close, each published by rename after an
//! fsync so readers only ever see whole files.
//!
//! Memory is bounded whatever the spread of event times: the rows buffered
//! in open parts' row groups are kept under [`LakeConfig::max_buffered_bytes`]
//! (the largest row groups are written out first), and at most
//! [`LakeConfig::max_open_parts`] parts are open (the one written to least
//! recently is published to make room). A backfill over weeks of logs
//! touches hundreds of hour partitions within a minute; without these, every
//! one of them would hold its rows in memory until its part rolled.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use arrow::array::{Array, RecordBatch, TimestampMicrosecondArray, UInt32Array};
use arrow::compute::take_record_batch;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;
use trailhound_core::{Action, Alert};

use super::stale::{WriterLock, sweep};
use super::{LakeHook, Table, actions_to_batch, alerts_to_batch, partition_dir};
use crate::SinkError;

const SINK: &str = "lake";
const HOUR_MICROS: i64 = 3_600_000_000;

/// Where the lake is and when its files roll.
#[derive(Debug, Clone)]
pub struct LakeConfig {
    /// The lake's root folder (created when missing).
    pub root: PathBuf,
    /// A part is published once it holds about this many bytes (default 128 MiB).
    pub max_file_bytes: u64,
    /// A part is published once it has been open this long (default 60 s).
    pub max_file_age: Duration,
    /// Bytes the open parts may hold in unwritten row groups, all together
    /// (default 32 MiB); past it the largest row groups are written out.
    pub max_buffered_bytes: u64,
    /// Parts open at once (default 16); opening one more publishes the part
    /// written to least recently.
    pub max_open_parts: usize,
}

impl LakeConfig {
    /// The default limits for a lake at `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self {
            root: root.into(),
            max_file_bytes: 128 * 1024 * 1024,
            max_file_age: Duration::from_secs(60),
            max_buffered_bytes: 32 * 1024 * 1024,
            max_open_parts: 16,
        }
    }
}

/// What the writer published.
#[derive(Debug, Clone, Default)]
pub struct LakeStats {
    /// Files published.
    pub files: u64,
    /// Bytes in the published files.
    pub bytes: u64,
    /// Rows published, by table name.
    pub rows: BTreeMap<&'static str, u64>,
}

struct OpenPart {
    table: Table,
    temp: PathBuf,
    dest: PathBuf,
    writer: ArrowWriter<File>,
    opened: Instant,
    /// The writer's append count at this part's last write.
    last_write: u64,
    rows: u64,
}

/// Writes events and alerts into the lake. Call [`LakeWriter::close`] (or
/// [`LakeHook::close`]) at the end: parts still open are published then.
/// Dropping the writer without closing leaves only dot-prefixed temporary
/// files, which no reader lists; the next writer to open the lake removes
/// them (see [`super::stale`]).
pub struct LakeWriter {
    config: LakeConfig,
    props: WriterProperties,
    writer_id: String,
    next_part: u64,
    /// Appends so far: orders the open parts by their last write.
    appends: u64,
    open: HashMap<(Table, i64), OpenPart>,
    stats: LakeStats,
    /// Held while the writer lives: tells other writers' sweeps that this
    /// writer's temporary parts are still being written.
    _lock: WriterLock,
}

fn io(source: std::io::Error) -> SinkError {
    SinkError::Io { sink: SINK, source }
}

fn encode(reason: impl std::fmt::Display) -> SinkError {
    SinkError::Encode {
        sink: SINK,
        reason: reason.to_string(),
    }
}

fn parquet_error(e: parquet::errors::ParquetError) -> SinkError {
    match e {
        parquet::errors::ParquetError::External(inner) => io(std::io::Error::other(inner)),
        other => encode(other),
    }
}

/// Columns whose values hardly ever repeat (an event's id, the JSON of its
/// request, response and unlifted fields): Parquet's dictionary encoding is
/// tried and given up on them in every column chunk, and their min/max
/// statistics (long JSON texts, truncated) prune nothing. Both are turned
/// off for them; every other column keeps its dictionary and statistics.
const UNIQUE_TEXT_COLUMNS: [&str; 4] = [
    trailhound_core::schema::columns::EVENT_ID,
    trailhound_core::schema::columns::REQUEST,
    trailhound_core::schema::columns::RESPONSE,
    trailhound_core::schema::columns::EXTRA,
];

/// How every part is written: zstd, and [`UNIQUE_TEXT_COLUMNS`] plain.
fn writer_properties() -> Result<WriterProperties, SinkError> {
    let level = ZstdLevel::try_new(3).map_err(encode)?;
    let mut props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(level))
        .set_created_by(format!("trailhound {}", env!("CARGO_PKG_VERSION")));
    for column in UNIQUE_TEXT_COLUMNS {
        let path = ColumnPath::from(column);
        props = props.set_column_dictionary_enabled(path.clone(), false);
        if column != trailhound_core::schema::columns::EVENT_ID {
            props = props.set_column_statistics_enabled(path, EnabledStatistics::None);
        }
    }
    Ok(props.build())
}

impl LakeWriter {
    /// Opens a lake at `config.root`, creating the folder when missing.
    pub fn open(config: LakeConfig) -> Result<Self, SinkError> {
        std::fs::create_dir_all(&config.root).map_err(io)?;
        let props = writer_properties()?;
        let writer_id = uuid::Uuid::new_v4().simple().to_string();
        let lock = WriterLock::acquire(&config.root, &writer_id).map_err(io)?;
        match sweep(&config.root, &writer_id) {
            Ok(s) if !s.removed.is_empty() => {
                tracing::warn!(
                    removed = s.removed.len(),
                    root = %config.root.display(),
                    "Removed stale temporary lake files left by a writer that stopped without closing (their rows were never published)."
                );
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %e, root = %config.root.display(), "Cannot look for stale temporary lake files; they stay hidden from readers.");
            }
        }
        Ok(Self {
            config,
            props,
            writer_id,
            next_part: 0,
            appends: 0,
            open: HashMap::new(),
            stats: LakeStats::default(),
            _lock: lock,
        })
    }

    /// The lake's root folder.
    pub fn root(&self) -> &Path {
        &self.config.root
    }

    /// What has been published so far.
    pub fn stats(&self) -> &LakeStats {
        &self.stats
    }

    /// Writes a batch of events (of the event schema).
    pub fn write_events(&mut self, batch: &RecordBatch) -> Result<(), SinkError> {
        self.write(Table::Events, batch)
    }

    /// Writes alerts.
    pub fn write_alerts(&mut self, alerts: &[Alert]) -> Result<(), SinkError> {
        if alerts.is_empty() {
            return Ok(());
        }
        let batch = alerts_to_batch(alerts).map_err(encode)?;
        self.write(Table::Alerts, &batch)
    }

    /// Writes response actions.
    pub fn write_actions(&mut self, actions: &[Action]) -> Result<(), SinkError> {
        if actions.is_empty() {
            return Ok(());
        }
        let batch = actions_to_batch(actions).map_err(encode)?;
        self.write(Table::Actions, &batch)
    }

    /// Writes a batch of `table`'s schema, split by hour partition.
    pub fn write(&mut self, table: Table, batch: &RecordBatch) -> Result<(), SinkError> {
        if batch.num_rows() > 0 {
            let schema = table.schema();
            let batch = if batch.schema() == schema {
                batch.clone()
            } else {
                RecordBatch::try_new(schema, batch.columns().to_vec()).map_err(|e| {
                    encode(format!(
                        "a batch for table {} has another schema: {e}",
                        table.name()
                    ))
                })?
            };
            for (hour, part) in split_by_hour(table, &batch)? {
                self.append(table, hour, &part)?;
            }
        }
        self.roll_expired()
    }

    fn append(&mut self, table: Table, hour: i64, batch: &RecordBatch) -> Result<(), SinkError> {
        let key = (table, hour);
        if !self.open.contains_key(&key) {
            self.make_room()?;
            let part = self.open_part(table, hour)?;
            self.open.insert(key, part);
        }
        self.appends += 1;
        let full = match self.open.get_mut(&key) {
            Some(part) => {
                part.writer.write(batch).map_err(parquet_error)?;
                part.rows += batch.num_rows() as u64;
                part.last_write = self.appends;
                (part.writer.bytes_written() + part.writer.in_progress_size()) as u64
                    >= self.config.max_file_bytes
            }
            None => false,
        };
        if full && let Some(part) = self.open.remove(&key) {
            self.publish(part)?;
        }
        self.bound_buffers()
    }

    /// Below the open-part cap: publishes the parts written to least
    /// recently until one more fits.
    fn make_room(&mut self) -> Result<(), SinkError> {
        while self.open.len() >= self.config.max_open_parts.max(1) {
            let Some(key) = self
                .open
                .iter()
                .min_by_key(|(_, p)| p.last_write)
                .map(|(k, _)| *k)
            else {
                break;
            };
            if let Some(part) = self.open.remove(&key) {
                self.publish(part)?;
            }
        }
        Ok(())
    }

    /// Over the buffer budget: writes out the largest row groups until the
    /// open parts hold at most half of it (the part stays open; its file
    /// gains a row group).
    fn bound_buffers(&mut self) -> Result<(), SinkError> {
        let budget = self.config.max_buffered_bytes;
        let mut by_size: Vec<((Table, i64), u64)> = self
            .open
            .iter()
            .map(|(k, p)| (*k, p.writer.in_progress_size() as u64))
            .collect();
        let mut total: u64 = by_size.iter().map(|(_, size)| size).sum();
        if total <= budget {
            return Ok(());
        }
        by_size.sort_by_key(|(_, size)| std::cmp::Reverse(*size));
        for (key, size) in by_size {
            if total <= budget / 2 {
                break;
            }
            if let Some(part) = self.open.get_mut(&key) {
                part.writer.flush().map_err(parquet_error)?;
                total = total.saturating_sub(size);
            }
        }
        Ok(())
    }

    fn open_part(&mut self, table: Table, hour: i64) -> Result<OpenPart, SinkError> {
        let dir = partition_dir(&self.config.root, table, hour * HOUR_MICROS)
            .ok_or_else(|| encode(format!("event time out of range (hour {hour})")))?;
        std::fs::create_dir_all(&dir).map_err(io)?;
        self.next_part += 1;
        let name = format!("part-{}-{:05}.parquet", self.writer_id, self.next_part);
        let temp = dir.join(format!(".{name}.tmp"));
        let dest = dir.join(name);
        let file = File::create(&temp).map_err(io)?;
        let writer = ArrowWriter::try_new(file, table.schema(), Some(self.props.clone()))
            .map_err(parquet_error)?;
        Ok(OpenPart {
            table,
            temp,
            dest,
            writer,
            opened: Instant::now(),
            last_write: self.appends,
            rows: 0,
        })
    }

    /// Finishes a part: footer, fsync, rename into place, fsync the folder.
    fn publish(&mut self, part: OpenPart) -> Result<(), SinkError> {
        let file = part.writer.into_inner().map_err(parquet_error)?;
        file.sync_all().map_err(io)?;
        let bytes = file.metadata().map_err(io)?.len();
        drop(file);
        std::fs::rename(&part.temp, &part.dest).map_err(io)?;
        if let Some(dir) = part.dest.parent() {
            // Makes the rename itself durable; not every platform can open a folder.
            if let Ok(d) = File::open(dir) {
                let _ = d.sync_all();
            }
        }
        self.stats.files += 1;
        self.stats.bytes += bytes;
        *self.stats.rows.entry(part.table.name()).or_default() += part.rows;
        tracing::debug!(path = %part.dest.display(), rows = part.rows, bytes, "Lake part published.");
        Ok(())
    }

    /// Publishes the parts that have been open longer than the age limit.
    pub fn roll_expired(&mut self) -> Result<(), SinkError> {
        let max_age = self.config.max_file_age;
        let expired: Vec<(Table, i64)> = self
            .open
            .iter()
            .filter(|(_, p)| p.opened.elapsed() >= max_age)
            .map(|(k, _)| *k)
            .collect();
        for key in expired {
            if let Some(part) = self.open.remove(&key) {
                self.publish(part)?;
            }
        }
        Ok(())
    }

    /// Publishes every open part. The writer stays usable.
    pub fn close(&mut self) -> Result<(), SinkError> {
        let mut keys: Vec<(Table, i64)> = self.open.keys().copied().collect();
        keys.sort();
        let mut first_error = None;
        for key in keys {
            if let Some(part) = self.open.remove(&key)
                && let Err(e) = self.publish(part)
            {
                first_error.get_or_insert(e);
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

/// Splits a batch into one batch per hour of its time column, in hour order.
fn split_by_hour(table: Table, batch: &RecordBatch) -> Result<Vec<(i64, RecordBatch)>, SinkError> {
    let column = batch
        .column_by_name(table.time_column())
        .and_then(|c| c.as_any().downcast_ref::<TimestampMicrosecondArray>())
        .ok_or_else(|| {
            encode(format!(
                "table {} needs a microsecond timestamp column {}",
                table.name(),
                table.time_column()
            ))
        })?;
    let hour_of = |i: usize| {
        if column.is_null(i) {
            0
        } else {
            column.value(i).div_euclid(HOUR_MICROS)
        }
    };
    let first = hour_of(0);
    if (1..column.len()).all(|i| hour_of(i) == first) {
        return Ok(vec![(first, batch.clone())]);
    }
    let mut rows: BTreeMap<i64, Vec<u32>> = BTreeMap::new();
    for i in 0..column.len() {
        let index = u32::try_from(i).map_err(|_| encode("a batch of over 4 billion rows"))?;
        rows.entry(hour_of(i)).or_default().push(index);
    }
    rows.into_iter()
        .map(|(hour, indices)| {
            take_record_batch(batch, &UInt32Array::from(indices))
                .map(|b| (hour, b))
                .map_err(encode)
        })
        .collect()
}

impl LakeHook for LakeWriter {
    fn record_batch(&mut self, batch: &RecordBatch) -> Result<(), SinkError> {
        self.write_events(batch)
    }
    fn record_alerts(&mut self, alerts: &[Alert]) -> Result<(), SinkError> {
        self.write_alerts(alerts)
    }
    fn record_actions(&mut self, actions: &[Action]) -> Result<(), SinkError> {
        self.write_actions(actions)
    }
    fn tick(&mut self) -> Result<(), SinkError> {
        self.roll_expired()
    }
    fn close(&mut self) -> Result<(), SinkError> {
        LakeWriter::close(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lake::alerts::tests::alert;
    use crate::lake::is_published;

    const T0: i64 = 1_793_613_600_000_000; // 2026-11-02T10:00:00Z

    fn files(root: &Path) -> Vec<String> {
        let mut out = Vec::new();
        let mut stack = vec![root.to_path_buf()];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                if path.ends_with(super::super::stale::WRITERS_DIR) {
                    continue;
                }
                if path.is_dir() {
                    stack.push(path);
                } else {
                    out.push(path.strip_prefix(root).unwrap().display().to_string());
                }
            }
        }
        out.sort();
        out
    }

    fn published(root: &Path) -> Vec<String> {
        files(root)
            .into_iter()
            .filter(|f| f.rsplit('/').next().is_some_and(is_published))
            .collect()
    }

    #[test]
    fn alerts_land_in_the_hour_of_their_first_event() {
        let dir = tempfile::tempdir().unwrap();
        let mut lake = LakeWriter::open(LakeConfig::new(dir.path())).unwrap();
        lake.write_alerts(&[
            alert(1, T0 + 5),
            alert(2, T0 + HOUR_MICROS + 1),
            alert(3, T0 + 9),
        ])
        .unwrap();
        lake.close().unwrap();
        let names = published(dir.path());
        assert_eq!(names.len(), 2, "{names:?}");
        assert!(names[0].starts_with("table=alerts/date=2026-11-02/hour=10/part-"));
        assert!(names[1].starts_with("table=alerts/date=2026-11-02/hour=11/part-"));
        assert_eq!(lake.stats().rows.get("alerts"), Some(&3));
    }

    #[test]
    fn parts_are_invisible_until_close_and_no_temporary_file_remains() {
        let dir = tempfile::tempdir().unwrap();
        let mut lake = LakeWriter::open(LakeConfig::new(dir.path())).unwrap();
        lake.write_alerts(&[alert(1, T0)]).unwrap();
        // Mid-write: only a dot-prefixed temporary file, which no reader takes.
        let during = files(dir.path());
        assert_eq!(during.len(), 1, "{during:?}");
        let name = during[0].rsplit('/').next().unwrap();
        assert!(
            name.starts_with('.') && name.ends_with(".parquet.tmp"),
            "{name}"
        );
        assert!(!is_published(name));
        let pattern = glob_pattern(dir.path());
        assert_eq!(
            glob_count(&pattern),
            0,
            "a temporary file matched {pattern}"
        );
        lake.close().unwrap();
        let after = files(dir.path());
        assert_eq!(after.len(), 1, "{after:?}");
        assert!(!after[0].contains("/."), "{after:?}");
        assert_eq!(glob_count(&pattern), 1);
        // And the published file is whole Parquet with the rows written.
        let file = File::open(dir.path().join(&after[0])).unwrap();
        let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
            .unwrap()
            .build()
            .unwrap();
        let rows: usize = reader.map(|b| b.unwrap().num_rows()).sum();
        assert_eq!(rows, 1);
    }

    fn glob_pattern(root: &Path) -> String {
        format!("{}/table=alerts/*/*/*.parquet", root.display())
    }

    /// Counts files matching a `dir/*/*/*.parquet` pattern the way a glob
    /// reader (DuckDB, Spark) does: `*` within one path segment.
    fn glob_count(pattern: &str) -> usize {
        let prefix = pattern.trim_end_matches("/*/*/*.parquet");
        let mut n = 0;
        let Ok(dates) = std::fs::read_dir(prefix) else {
            return 0;
        };
        for date in dates.flatten() {
            for hour in std::fs::read_dir(date.path()).unwrap().flatten() {
                for f in std::fs::read_dir(hour.path()).unwrap().flatten() {
                    let name = f.file_name().to_string_lossy().to_string();
                    if name.ends_with(".parquet") {
                        n += 1;
                    }
                }
            }
        }
        n
    }

    #[test]
    fn parts_roll_by_size() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = LakeConfig::new(dir.path());
        config.max_file_bytes = 1;
        let mut lake = LakeWriter::open(config).unwrap();
        for n in 0..4 {
            lake.write_alerts(&[alert(n, T0 + i64::from(n))]).unwrap();
        }
        // Every write reached the tiny limit, so every part is already published.
        assert_eq!(published(dir.path()).len(), 4);
        lake.close().unwrap();
        assert_eq!(published(dir.path()).len(), 4);
        assert_eq!(files(dir.path()).len(), 4);
        assert_eq!(lake.stats().files, 4);
    }

    fn rows_in(path: &Path) -> (usize, usize) {
        let file = File::open(path).unwrap();
        let builder =
            parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file).unwrap();
        let groups = builder.metadata().num_row_groups();
        let rows = builder
            .build()
            .unwrap()
            .map(|b| b.unwrap().num_rows())
            .sum();
        (rows, groups)
    }

    #[test]
    fn opening_a_part_over_the_cap_publishes_the_one_written_to_least_recently() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = LakeConfig::new(dir.path());
        config.max_open_parts = 2;
        let mut lake = LakeWriter::open(config).unwrap();
        lake.write_alerts(&[alert(1, T0)]).unwrap(); // hour 10
        lake.write_alerts(&[alert(2, T0 + HOUR_MICROS)]).unwrap(); // hour 11
        lake.write_alerts(&[alert(3, T0 + 1)]).unwrap(); // hour 10 again
        assert!(published(dir.path()).is_empty());
        // Hour 12 makes three: hour 11, written to least recently, goes.
        lake.write_alerts(&[alert(4, T0 + 2 * HOUR_MICROS)])
            .unwrap();
        let names = published(dir.path());
        assert_eq!(names.len(), 1, "{names:?}");
        assert!(names[0].contains("/hour=11/"), "{names:?}");
        lake.close().unwrap();
        assert_eq!(published(dir.path()).len(), 3);
        assert_eq!(lake.stats().rows.get("alerts"), Some(&4));
    }

    #[test]
    fn buffered_rows_over_the_budget_are_written_out_as_row_groups() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = LakeConfig::new(dir.path());
        config.max_buffered_bytes = 1;
        let mut lake = LakeWriter::open(config).unwrap();
        for n in 0..5 {
            lake.write_alerts(&[alert(n, T0 + i64::from(n))]).unwrap();
            let held: usize = lake
                .open
                .values()
                .map(|p| p.writer.in_progress_size())
                .sum();
            assert_eq!(held, 0, "rows held in memory after write {n}");
        }
        lake.close().unwrap();
        // One file for the hour, one row group per write, every row there.
        let names = published(dir.path());
        assert_eq!(names.len(), 1, "{names:?}");
        assert_eq!(rows_in(&dir.path().join(&names[0])), (5, 5));
    }

    #[test]
    fn a_writer_that_died_leaves_only_temporary_files_and_the_next_removes_them() {
        let dir = tempfile::tempdir().unwrap();
        let mut crashed = LakeWriter::open(LakeConfig::new(dir.path())).unwrap();
        crashed.write_alerts(&[alert(1, T0)]).unwrap();
        // A crash: the open part is never finished. Forgetting the writer
        // keeps its lock file, as a killed process would (its lock, though,
        // is held until this test ends, so it counts as alive).
        let lock_dir = dir.path().join(super::super::stale::WRITERS_DIR);
        std::mem::forget(crashed);
        let left = files(dir.path());
        assert_eq!(left.len(), 1, "{left:?}");
        assert!(published(dir.path()).is_empty());
        let live = LakeWriter::open(LakeConfig::new(dir.path())).unwrap();
        assert_eq!(files(dir.path()).len(), 1, "a live writer's part is kept");
        drop(live);
        // Now the writer is gone: release its lock as the OS would.
        for entry in std::fs::read_dir(&lock_dir).unwrap() {
            let path = entry.unwrap().path();
            std::fs::remove_file(&path).unwrap();
            File::create(&path).unwrap();
        }
        let next = LakeWriter::open(LakeConfig::new(dir.path())).unwrap();
        assert!(files(dir.path()).is_empty(), "{:?}", files(dir.path()));
        drop(next);
    }

    #[test]
    fn parts_roll_by_age() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = LakeConfig::new(dir.path());
        config.max_file_age = Duration::ZERO;
        let mut lake = LakeWriter::open(config).unwrap();
        lake.write_alerts(&[alert(1, T0)]).unwrap();
        assert_eq!(published(dir.path()).len(), 1);
    }

    #[test]
    fn event_batches_keep_their_dictionary_columns() {
        let dir = tempfile::tempdir().unwrap();
        let mut lake = LakeWriter::open(LakeConfig::new(dir.path())).unwrap();
        let event = trailhound_core::Event {
            event_time: T0,
            event_name: "StopLogging".into(),
            ..Default::default()
        };
        let batch = trailhound_core::events_to_batch(&[event]);
        lake.write_events(&batch).unwrap();
        lake.close().unwrap();
        let names = published(dir.path());
        assert_eq!(names.len(), 1);
        assert!(names[0].starts_with("table=events/date=2026-11-02/hour=10/"));
        let file = File::open(dir.path().join(&names[0])).unwrap();
        let builder =
            parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file).unwrap();
        assert_eq!(
            builder.schema().as_ref(),
            trailhound_core::event_schema().as_ref()
        );
    }
}
