//! The Parquet audit lake: every event and every alert, written as Parquet
//! (zstd) under a Hive-style layout that DuckDB, Athena, Spark and
//! `trailhound sql` read as it is:
//!
//! ```text
//! <root>/table=events/date=2026-11-02/hour=10/part-<writer id>-00001.parquet
//! <root>/table=alerts/date=2026-11-02/hour=10/part-<writer id>-00001.parquet
//! <root>/table=actions/date=2026-11-02/hour=10/part-<writer id>-00002.parquet
//! ```
//!
//! Rows land in the partition of their event time (alerts: the time of their
//! first triggering event; actions: the time they were taken), in UTC. Files are rolled by size, by age and when
//! the writer closes, and published atomically: a part is written to a
//! dot-prefixed `.tmp` file in the same folder, fsynced, then renamed into
//! place, so a reader listing `*.parquet` never sees a half-written file.
//!
//! The `actions` table holds every response action ([`trailhound_core::Action`]):
//! the responders write it through [`LakeWriter::write_actions`].
//! `docs/lake.md` is the user's guide.

pub mod actions;
pub mod alerts;
pub mod sql;
pub mod stale;
mod writer;

use std::path::{Path, PathBuf};

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use trailhound_core::{Action, Alert};

use crate::SinkError;

pub use actions::{action_schema, actions_to_batch};
pub use alerts::{alert_schema, alerts_to_batch};
pub use writer::{LakeConfig, LakeStats, LakeWriter};

/// A table of the lake.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Table {
    /// Every event, as the event model's Arrow batches.
    Events,
    /// Every alert raised.
    Alerts,
    /// Every response action, taken or not ([`trailhound_core::Action`]).
    Actions,
}

impl Table {
    /// Every table, in the order they are registered for SQL.
    pub const ALL: [Table; 3] = [Table::Events, Table::Alerts, Table::Actions];

    /// The table's name (`events`, `alerts`, `actions`).
    pub fn name(self) -> &'static str {
        match self {
            Table::Events => "events",
            Table::Alerts => "alerts",
            Table::Actions => "actions",
        }
    }

    /// The table's folder under the lake root (`table=events`).
    pub fn folder(self) -> String {
        format!("table={}", self.name())
    }

    /// The column whose time decides a row's partition.
    pub fn time_column(self) -> &'static str {
        match self {
            Table::Events => trailhound_core::schema::columns::EVENT_TIME,
            Table::Alerts => "first_event_time",
            Table::Actions => "time",
        }
    }

    /// The Arrow schema of the table's files (without the partition columns).
    pub fn schema(self) -> SchemaRef {
        match self {
            Table::Events => trailhound_core::event_schema(),
            Table::Alerts => alert_schema(),
            Table::Actions => action_schema(),
        }
    }
}

/// Microseconds in an hour.
const HOUR_MICROS: i64 = 3_600_000_000;

/// The `(date, hour)` partition values (`"2026-11-02"`, `"10"`) of a time in
/// microseconds UTC, or `None` when the time is outside chrono's range.
pub fn partition_values(micros: i64) -> Option<(String, String)> {
    let t = chrono::DateTime::from_timestamp_micros(micros.div_euclid(HOUR_MICROS) * HOUR_MICROS)?;
    Some((t.format("%Y-%m-%d").to_string(), t.format("%H").to_string()))
}

/// The folder a row of `table` with time `micros` goes to.
pub fn partition_dir(root: &Path, table: Table, micros: i64) -> Option<PathBuf> {
    let (date, hour) = partition_values(micros)?;
    Some(
        root.join(table.folder())
            .join(format!("date={date}"))
            .join(format!("hour={hour}")),
    )
}

/// One hour partition of a table as found on disk: its folder values and
/// the start of its hour.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Partition {
    /// Start of the hour, microseconds UTC.
    pub start_micros: i64,
    /// The `date` value (`2026-11-02`).
    pub date: String,
    /// The `hour` value (`10`).
    pub hour: String,
}

/// The hour partitions of `table` under `root`, oldest first. Folders whose
/// names are not `date=YYYY-MM-DD` / `hour=HH` are left out (they are not
/// trailhound's). A lake without the table's folder has none.
pub fn partitions(root: &Path, table: Table) -> Result<Vec<Partition>, std::io::Error> {
    let folder = root.join(table.folder());
    let mut out = Vec::new();
    let dates = match std::fs::read_dir(&folder) {
        Ok(d) => d,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(e),
    };
    for date_entry in dates {
        let date_entry = date_entry?;
        let name = date_entry.file_name().to_string_lossy().to_string();
        let Some(date) = name.strip_prefix("date=") else {
            continue;
        };
        let Ok(day) = chrono::NaiveDate::parse_from_str(date, "%Y-%m-%d") else {
            continue;
        };
        if !date_entry.file_type()?.is_dir() {
            continue;
        }
        for hour_entry in std::fs::read_dir(date_entry.path())? {
            let hour_entry = hour_entry?;
            let name = hour_entry.file_name().to_string_lossy().to_string();
            let Some(hour) = name.strip_prefix("hour=") else {
                continue;
            };
            let Some(h) = hour
                .parse::<u32>()
                .ok()
                .filter(|h| *h < 24 && hour.len() == 2)
            else {
                continue;
            };
            if !hour_entry.file_type()?.is_dir() {
                continue;
            }
            let Some(start) = day.and_hms_opt(h, 0, 0) else {
                continue;
            };
            out.push(Partition {
                start_micros: start.and_utc().timestamp_micros(),
                date: date.to_string(),
                hour: hour.to_string(),
            });
        }
    }
    out.sort();
    Ok(out)
}

/// Whether a file name is a published part: readers take exactly these.
/// Temporary files start with a dot and end in `.tmp`, so they never match.
pub fn is_published(file_name: &str) -> bool {
    !file_name.starts_with('.') && !file_name.starts_with('_') && file_name.ends_with(".parquet")
}

/// What the pipeline hands to the lake: every batch once rules ran over it,
/// every alert raised, a periodic tick (so idle files still roll by age), and
/// a close at the end of the run.
pub trait LakeHook: Send {
    /// Records a batch of events (of the event schema).
    fn record_batch(&mut self, batch: &RecordBatch) -> Result<(), SinkError>;
    /// Records alerts.
    fn record_alerts(&mut self, alerts: &[Alert]) -> Result<(), SinkError>;
    /// Records response actions.
    fn record_actions(&mut self, actions: &[Action]) -> Result<(), SinkError>;
    /// Publishes files that reached their age limit.
    fn tick(&mut self) -> Result<(), SinkError>;
    /// Publishes every open file.
    fn close(&mut self) -> Result<(), SinkError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_comes_from_the_event_time_in_utc() {
        // 2026-11-02T10:59:59.999999Z
        let t = chrono::DateTime::parse_from_rfc3339("2026-11-02T10:59:59.999999Z")
            .map(|t| t.timestamp_micros())
            .unwrap();
        assert_eq!(
            partition_values(t),
            Some(("2026-11-02".to_string(), "10".to_string()))
        );
        assert_eq!(
            partition_values(t + 1),
            Some(("2026-11-02".to_string(), "11".to_string()))
        );
        let dir = partition_dir(Path::new("/lake"), Table::Alerts, t).unwrap();
        assert_eq!(dir, Path::new("/lake/table=alerts/date=2026-11-02/hour=10"));
    }

    #[test]
    fn times_before_1970_partition_on_the_right_day() {
        assert_eq!(
            partition_values(-1),
            Some(("1969-12-31".to_string(), "23".to_string()))
        );
    }

    #[test]
    fn partitions_are_listed_oldest_first_and_foreign_folders_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let events = dir.path().join("table=events");
        for d in [
            "date=2026-11-02/hour=10",
            "date=2026-11-01/hour=23",
            "date=2026-11-02/hour=09",
            "date=2026-11-02/hour=9x",
            "date=yesterday/hour=01",
            "other/hour=01",
        ] {
            std::fs::create_dir_all(events.join(d)).unwrap();
        }
        let found: Vec<(String, String)> = partitions(dir.path(), Table::Events)
            .unwrap()
            .into_iter()
            .map(|p| (p.date, p.hour))
            .collect();
        let want = [
            ("2026-11-01", "23"),
            ("2026-11-02", "09"),
            ("2026-11-02", "10"),
        ];
        let want: Vec<(String, String)> = want
            .iter()
            .map(|(d, h)| (d.to_string(), h.to_string()))
            .collect();
        assert_eq!(found, want);
        assert!(partitions(dir.path(), Table::Alerts).unwrap().is_empty());
    }

    #[test]
    fn temporary_files_are_not_published_names() {
        assert!(is_published("part-abc-00001.parquet"));
        assert!(!is_published(".part-abc-00001.parquet.tmp"));
        assert!(!is_published(".part-abc-00001.parquet"));
    }
}
