//! SQL over the lake with DataFusion: the tables are registered as listing
//! tables over their folders with `date` and `hour` as Hive partition columns,
//! so `WHERE date = '2026-11-02' AND hour = '10'` reads only that folder.
//! Only published parts (`*.parquet`) are listed; temporary files never are.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::error::ArrowError;
use arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::datasource::MemTable;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::error::DataFusionError;
use datafusion::prelude::{SessionConfig, SessionContext};

use super::Table;

/// Errors querying the lake.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// The query failed to plan or run (bad SQL, unknown column, unreadable file).
    #[error("{0}")]
    DataFusion(#[from] DataFusionError),
    /// Results could not be formatted.
    #[error("cannot format the results: {0}")]
    Arrow(#[from] ArrowError),
    /// Writing the results or starting the runtime failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// How results are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputFormat {
    /// A boxed table (arrow's pretty printer).
    Table,
    /// CSV with a header line; nested values (lists) as their text.
    Csv,
    /// One JSON object per row.
    Json,
}

/// The partition columns every table has, in folder order.
pub fn partition_columns() -> Vec<(String, DataType)> {
    vec![
        ("date".to_string(), DataType::Utf8),
        ("hour".to_string(), DataType::Utf8),
    ]
}

/// A lake opened for SQL: a DataFusion session with the tables registered and
/// a current-thread runtime to run it on.
pub struct LakeQuery {
    runtime: tokio::runtime::Runtime,
    ctx: SessionContext,
}

impl LakeQuery {
    /// Opens the lake at `root`. A table with no folder yet is registered
    /// empty, so queries over it return no rows instead of failing.
    pub fn open(root: &Path) -> Result<Self, QueryError> {
        let runtime = tokio::runtime::Builder::new_current_thread().build()?;
        let config = SessionConfig::new().with_information_schema(true);
        let mut ctx = SessionContext::new_with_config(config);
        // The JSON functions the rules use (`json_get_str(request, 'userName')`),
        // for `request`, `response`, `extra` and the actions' `details`.
        datafusion_functions_json::register_all(&mut ctx)?;
        for table in Table::ALL {
            register(&ctx, root, table)?;
        }
        Ok(Self { runtime, ctx })
    }

    /// Runs one statement and returns its result schema and batches.
    pub fn query(&self, sql: &str) -> Result<(SchemaRef, Vec<RecordBatch>), QueryError> {
        let sql = sql.trim().trim_end_matches(';');
        self.runtime.block_on(async {
            let frame = self.ctx.sql(sql).await?;
            let schema: SchemaRef = Arc::new(frame.schema().as_arrow().clone());
            let batches = frame.collect().await?;
            Ok((schema, batches))
        })
    }
}

fn register(ctx: &SessionContext, root: &Path, table: Table) -> Result<(), QueryError> {
    let folder = root.join(table.folder());
    if !folder.is_dir() {
        let mut fields: Vec<Field> = table
            .schema()
            .fields()
            .iter()
            .map(|f| f.as_ref().clone())
            .collect();
        for (name, data_type) in partition_columns() {
            fields.push(Field::new(name, data_type, false));
        }
        let empty = MemTable::try_new(Arc::new(Schema::new(fields)), vec![vec![]])?;
        ctx.register_table(table.name(), Arc::new(empty))?;
        return Ok(());
    }
    let absolute = std::path::absolute(&folder)?;
    let mut path = absolute.to_string_lossy().to_string();
    if !path.ends_with(std::path::MAIN_SEPARATOR) {
        path.push(std::path::MAIN_SEPARATOR);
    }
    let url = ListingTableUrl::parse(&path)?;
    let options = ListingOptions::new(Arc::new(ParquetFormat::default()))
        .with_file_extension(".parquet")
        .with_table_partition_cols(partition_columns());
    let config = ListingTableConfig::new(url)
        .with_listing_options(options)
        .with_schema(table.schema());
    ctx.register_table(table.name(), Arc::new(ListingTable::try_new(config)?))?;
    Ok(())
}

/// Writes results in `format`.
pub fn write_results(
    schema: &SchemaRef,
    batches: &[RecordBatch],
    format: OutputFormat,
    out: &mut dyn Write,
) -> Result<(), QueryError> {
    match format {
        OutputFormat::Table => {
            let table = arrow::util::pretty::pretty_format_batches_with_schema(
                Arc::clone(schema),
                batches,
            )?;
            writeln!(out, "{table}")?;
        }
        OutputFormat::Csv => {
            let mut writer = arrow::csv::WriterBuilder::new()
                .with_header(true)
                .build(&mut *out);
            if batches.is_empty() {
                // Still print the header line.
                writer.write(&RecordBatch::new_empty(flat_schema(schema)))?;
            }
            for batch in batches {
                writer.write(&flatten(batch)?)?;
            }
        }
        OutputFormat::Json => {
            let mut writer = arrow::json::LineDelimitedWriter::new(&mut *out);
            for batch in batches {
                writer.write(batch)?;
            }
            writer.finish()?;
        }
    }
    out.flush()?;
    Ok(())
}

fn nested(data_type: &DataType) -> bool {
    matches!(
        data_type,
        DataType::List(_)
            | DataType::LargeList(_)
            | DataType::FixedSizeList(_, _)
            | DataType::ListView(_)
            | DataType::LargeListView(_)
            | DataType::Struct(_)
            | DataType::Map(_, _)
            | DataType::Union(_, _)
    )
}

fn flat_schema(schema: &SchemaRef) -> SchemaRef {
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| {
            if nested(f.data_type()) {
                Field::new(f.name(), DataType::Utf8, true)
            } else {
                f.as_ref().clone()
            }
        })
        .collect();
    Arc::new(Schema::new(fields))
}

/// CSV has no nested values: lists and structs become their text (`[a, b]`).
fn flatten(batch: &RecordBatch) -> Result<RecordBatch, ArrowError> {
    let schema = batch.schema();
    if !schema.fields().iter().any(|f| nested(f.data_type())) {
        return Ok(batch.clone());
    }
    let options = FormatOptions::default();
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(batch.num_columns());
    for column in batch.columns() {
        if nested(column.data_type()) {
            let formatter = ArrayFormatter::try_new(column.as_ref(), &options)?;
            let text: StringArray = (0..column.len())
                .map(|i| (!column.is_null(i)).then(|| formatter.value(i).to_string()))
                .collect();
            columns.push(Arc::new(text));
        } else {
            columns.push(Arc::clone(column));
        }
    }
    RecordBatch::try_new(flat_schema(&schema), columns)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lake::actions::tests::action;
    use crate::lake::alerts::tests::alert;
    use crate::lake::{LakeConfig, LakeWriter};

    const T0: i64 = 1_793_613_600_000_000; // 2026-11-02T10:00:00Z
    const HOUR: i64 = 3_600_000_000;

    fn lake_with_alerts() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let mut lake = LakeWriter::open(LakeConfig::new(dir.path())).unwrap();
        lake.write_alerts(&[alert(1, T0), alert(2, T0 + HOUR), alert(3, T0 + 2)])
            .unwrap();
        lake.close().unwrap();
        dir
    }

    fn text(q: &LakeQuery, sql: &str, format: OutputFormat) -> String {
        let (schema, batches) = q.query(sql).unwrap();
        let mut out = Vec::new();
        write_results(&schema, &batches, format, &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn partitions_are_columns_and_prune() {
        let dir = lake_with_alerts();
        let q = LakeQuery::open(dir.path()).unwrap();
        let all = text(&q, "SELECT count(*) AS n FROM alerts", OutputFormat::Csv);
        assert_eq!(all, "n\n3\n");
        let pruned = text(
            &q,
            "SELECT count(*) AS n FROM alerts WHERE date = '2026-11-02' AND hour = '11';",
            OutputFormat::Csv,
        );
        assert_eq!(pruned, "n\n1\n");
    }

    #[test]
    fn event_files_written_before_a_column_existed_read_as_null_in_it() {
        use trailhound_core::Event;
        let dir = tempfile::tempdir().unwrap();
        let new = Event {
            event_time: T0,
            event_id: "new".into(),
            event_name: "ListUsers".into(),
            principal: "p".into(),
            console_session: Some(true),
            ..Event::default()
        };
        let mut lake = LakeWriter::open(LakeConfig::new(dir.path())).unwrap();
        lake.write_events(&trailhound_core::events_to_batch(std::slice::from_ref(
            &new,
        )))
        .unwrap();
        lake.close().unwrap();
        // A file of an older version: the same schema without `console_session`.
        let old = trailhound_core::events_to_batch(&[Event {
            event_id: "old".into(),
            console_session: None,
            ..new
        }]);
        let at = old.schema().index_of("console_session").unwrap();
        let mut old = old;
        old.remove_column(at);
        let folder =
            crate::lake::partition_dir(dir.path(), crate::lake::Table::Events, T0).unwrap();
        let file = std::fs::File::create(folder.join("old-version.parquet")).unwrap();
        let mut writer = parquet::arrow::ArrowWriter::try_new(file, old.schema(), None).unwrap();
        writer.write(&old).unwrap();
        writer.close().unwrap();

        let q = LakeQuery::open(dir.path()).unwrap();
        let rows = text(
            &q,
            "SELECT event_id, console_session FROM events ORDER BY event_id",
            OutputFormat::Csv,
        );
        assert_eq!(rows, "event_id,console_session\nnew,true\nold,\n");
    }

    #[test]
    fn a_table_without_files_is_empty() {
        let dir = lake_with_alerts();
        let q = LakeQuery::open(dir.path()).unwrap();
        let n = text(&q, "SELECT count(*) AS n FROM events", OutputFormat::Csv);
        assert_eq!(n, "n\n0\n");
    }

    #[test]
    fn results_print_as_table_csv_and_json() {
        let dir = lake_with_alerts();
        let q = LakeQuery::open(dir.path()).unwrap();
        let sql = "SELECT alert_id, tags, event_count FROM alerts ORDER BY alert_id LIMIT 1";
        let table = text(&q, sql, OutputFormat::Table);
        assert!(table.contains("| a1 "), "{table}");
        let csv = text(&q, sql, OutputFormat::Csv);
        assert_eq!(csv, "alert_id,tags,event_count\na1,[attack.t1562.008],2\n");
        let json = text(&q, sql, OutputFormat::Json);
        let row: serde_json::Value = serde_json::from_str(json.trim()).unwrap();
        assert_eq!(row["alert_id"], "a1");
        assert_eq!(row["event_count"], 2);
        assert_eq!(row["tags"][0], "attack.t1562.008");
    }

    #[test]
    fn actions_are_a_table_with_json_details() {
        let dir = tempfile::tempdir().unwrap();
        let q = LakeQuery::open(dir.path()).unwrap();
        let n = text(&q, "SELECT count(*) AS n FROM actions", OutputFormat::Csv);
        assert_eq!(n, "n\n0\n");
        let mut lake = LakeWriter::open(LakeConfig::new(dir.path())).unwrap();
        lake.write_actions(&[action(1, T0), action(2, T0 + HOUR)])
            .unwrap();
        lake.close().unwrap();
        let q = LakeQuery::open(dir.path()).unwrap();
        let rows = text(
            &q,
            "SELECT action_id, alert_id, kind, mode, outcome, hour, \
             json_get_str(details, 'policy') AS policy FROM actions ORDER BY action_id",
            OutputFormat::Csv,
        );
        assert_eq!(
            rows,
            "action_id,alert_id,kind,mode,outcome,hour,policy\n\
             x1,a1,quarantine-principal,shadow,done,10,trailhound-quarantine\n\
             x2,a2,quarantine-principal,shadow,done,11,trailhound-quarantine\n"
        );
    }

    #[test]
    fn bad_sql_is_an_error_not_a_panic() {
        let dir = lake_with_alerts();
        let q = LakeQuery::open(dir.path()).unwrap();
        assert!(q.query("SELECT nope FROM alerts").is_err());
    }
}
