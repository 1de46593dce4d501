//! A cold start: the grant table rebuilt from the audit lake's events.
//!
//! The lake keeps every event, grant events and Identity Center records
//! included. Without a checkpoint, the detector reads the last `retention`
//! (7 days) of them, up to the newest hour the lake holds, hour by hour in
//! event-time order, and applies only what concerns grants: grant events,
//! Identity Center assignment and directory records, gateway session starts
//! and ends (a filtered query, not a replay of every call). Grants that had
//! ended by then were closed when they ended, so they are taken as closed;
//! role sessions seen during grants still in force are not in the lake's
//! grant rows, so their closure names the roles the grant names by ARN and
//! the sessions seen from the start on.

use std::path::Path;

use trailhound_core::event_schema;
use trailhound_core::schema::columns;
use trailhound_sinks::lake::sql::LakeQuery;
use trailhound_sinks::lake::{Table, partitions};

use crate::backtest::{BacktestError, normalise};
use crate::engine::Engine;

const HOUR: i64 = 3_600_000_000;

/// What a rebuild read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rebuilt {
    /// Hour partitions read.
    pub hours: usize,
    /// Rows applied.
    pub rows: u64,
    /// Grants held afterwards.
    pub grants: usize,
}

/// Rebuilds `engine`'s grant table from the lake at `lake`: the grant rows
/// of the `retention` before the end of the newest hour it holds.
pub fn rebuild_from_lake(engine: &mut Engine, lake: &Path) -> Result<Rebuilt, BacktestError> {
    let all = partitions(lake, Table::Events).map_err(|source| BacktestError::List {
        path: lake.join(Table::Events.folder()),
        source,
    })?;
    let Some(newest) = all.last().map(|p| p.start_micros + HOUR) else {
        return Ok(Rebuilt::default());
    };
    let from = newest.saturating_sub(engine.grants().config().retention_micros);
    let query = LakeQuery::open(lake).map_err(|source| BacktestError::Lake {
        partition: "-".into(),
        source,
    })?;
    let select = event_schema()
        .fields()
        .iter()
        .map(|f| format!("\"{}\"", f.name()))
        .collect::<Vec<_>>()
        .join(", ");
    let mut out = Rebuilt::default();
    for p in all.iter().filter(|p| p.start_micros + HOUR > from) {
        let name = format!("date={}/hour={}", p.date, p.hour);
        // The values come from folder names parsed as a date and an hour.
        let sql = format!(
            "SELECT {select} FROM events WHERE date = '{}' AND hour = '{}' AND (\
             \"{category}\" = 'Grant' \
             OR \"{source}\" IN ('sso.amazonaws.com', 'identitystore.amazonaws.com') \
             OR \"{name_col}\" IN ('session.start', 'session.end')) \
             ORDER BY \"{time}\", \"{id}\"",
            p.date,
            p.hour,
            category = columns::EVENT_CATEGORY,
            source = columns::EVENT_SOURCE,
            name_col = columns::EVENT_NAME,
            time = columns::EVENT_TIME,
            id = columns::EVENT_ID,
        );
        let (_, batches) = query.query(&sql).map_err(|source| BacktestError::Lake {
            partition: name.clone(),
            source,
        })?;
        out.hours += 1;
        for batch in batches.iter().filter(|b| b.num_rows() > 0) {
            let batch = normalise(batch, &name)?;
            out.rows += batch.num_rows() as u64;
            engine
                .learn_grants(&batch, None)
                .map_err(|e| BacktestError::Schema {
                    partition: name.clone(),
                    reason: e.to_string(),
                })?;
        }
    }
    engine
        .learn_grants(
            &trailhound_core::events_to_batch(&[]),
            Some(newest.saturating_sub(1)),
        )
        .map_err(|e| BacktestError::Schema {
            partition: "-".into(),
            reason: e.to_string(),
        })?;
    out.grants = engine.grants().len();
    Ok(out)
}
