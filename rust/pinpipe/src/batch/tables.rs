//! The batch half's own tables: where they live, and the dead-letter and quality tables.

use std::sync::Arc;

use deltalake::arrow::array::{
    Array, BinaryArray, Int32Array, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
};
use deltalake::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use deltalake::datafusion::prelude::SessionContext;
use deltalake::protocol::SaveMode;
use deltalake::DeltaTable;

use super::landed::Object;
use super::{app_id, TableSummary};
use crate::clean::decode::DeadLetter;
use crate::clean::raw::timestamp_type;
use crate::delta::{txn, Lake};
use crate::error::{Error, Result};
use crate::model::Table;

pub const DEAD_LETTERS_PATH: &str = "batch/_dead_letters";
pub const QUALITY_PATH: &str = "batch/_quality";

/// Folder of a clean table: `batch/pin`.
pub fn clean_path(table: Table) -> String {
    format!("batch/{}", table.suffix())
}

/// Folder of a raw table: `batch/_raw_pin`.
pub fn raw_path(table: Table) -> String {
    format!("batch/_raw_{}", table.suffix())
}

pub fn dead_letter_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("run_id", DataType::Utf8, false),
        Field::new("topic", DataType::Utf8, false),
        Field::new("partition", DataType::Int32, false),
        Field::new("object", DataType::Utf8, false),
        Field::new("line", DataType::Int64, false),
        Field::new("offset", DataType::Int64, false),
        Field::new("raw", DataType::Utf8, false),
        Field::new("raw_bytes", DataType::Binary, false),
        Field::new("error", DataType::Utf8, false),
    ]))
}

pub fn dead_letter_batch(run_id: &str, topic: &str, rows: &[(Object, DeadLetter)]) -> RecordBatch {
    let n = rows.len();
    let columns: Vec<Arc<dyn Array>> = vec![
        Arc::new(StringArray::from(vec![run_id; n])),
        Arc::new(StringArray::from(vec![topic; n])),
        Arc::new(Int32Array::from_iter_values(rows.iter().map(|(o, _)| o.partition))),
        Arc::new(StringArray::from_iter_values(rows.iter().map(|(o, _)| o.key.as_str()))),
        Arc::new(Int64Array::from_iter_values(rows.iter().map(|(_, d)| d.line))),
        Arc::new(Int64Array::from_iter_values(rows.iter().map(|(o, d)| o.start + d.index))),
        Arc::new(StringArray::from_iter_values(rows.iter().map(|(_, d)| d.raw.as_str()))),
        Arc::new(BinaryArray::from_iter_values(rows.iter().map(|(_, d)| d.raw_bytes.as_slice()))),
        Arc::new(StringArray::from_iter_values(rows.iter().map(|(_, d)| d.error.as_str()))),
    ];
    RecordBatch::try_new(dead_letter_schema(), columns).expect("dead letter columns match")
}

/// Empties the dead-letter table and resets its positions for the given topic partitions, so a
/// full refresh writes every dead letter again.
pub async fn reset_dead_letters(lake: &Lake, partitions: &[(String, i32)]) -> Result<()> {
    let txns = partitions.iter().map(|(topic, p)| txn(app_id(topic, *p), -1)).collect();
    lake.write(DEAD_LETTERS_PATH, &dead_letter_schema(), vec![], SaveMode::Overwrite, txns, "full refresh").await?;
    Ok(())
}

pub fn quality_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("run_id", DataType::Utf8, false),
        Field::new("run_at", timestamp_type(), false),
        Field::new("table", DataType::Utf8, false),
        Field::new("metric", DataType::Utf8, false),
        Field::new("column_name", DataType::Utf8, true),
        Field::new("cause", DataType::Utf8, true),
        Field::new("count", DataType::Int64, false),
    ]))
}

/// Appends this run's counts to the quality table.
pub async fn append_quality(lake: &Lake, run_id: &str, tables: &[TableSummary]) -> Result<()> {
    // (table, metric, column, cause, count)
    type Row = (String, String, Option<String>, Option<String>, i64);
    let mut rows: Vec<Row> = Vec::new();
    for t in tables {
        for (metric, n) in [
            ("objects_read", t.objects_read),
            ("records_read", t.records_read),
            ("dead_lettered", t.dead_lettered),
            ("deduplicated", t.deduplicated),
            ("clean_rows", t.clean_rows),
        ] {
            rows.push((t.table.clone(), metric.into(), None, None, n as i64));
        }
        for (key, n) in &t.nulled {
            let (column, cause) = key.split_once(": ").unwrap_or((key, ""));
            rows.push((t.table.clone(), "nulled".into(), Some(column.into()), Some(cause.into()), *n as i64));
        }
    }
    let n = rows.len();
    let now = chrono::Utc::now().timestamp_micros();
    let columns: Vec<Arc<dyn Array>> = vec![
        Arc::new(StringArray::from(vec![run_id; n])),
        Arc::new(TimestampMicrosecondArray::from(vec![now; n]).with_timezone("UTC")),
        Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.0.as_str()))),
        Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.1.as_str()))),
        Arc::new(StringArray::from_iter(rows.iter().map(|r| r.2.as_deref()))),
        Arc::new(StringArray::from_iter(rows.iter().map(|r| r.3.as_deref()))),
        Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.4))),
    ];
    let batch = RecordBatch::try_new(quality_schema(), columns).expect("quality columns match");
    lake.write(QUALITY_PATH, &quality_schema(), vec![batch], SaveMode::Append, vec![], "quality").await?;
    Ok(())
}

/// Number of rows of a table.
pub async fn count_rows(ctx: &SessionContext, table: &DeltaTable) -> Result<u64> {
    table
        .update_datafusion_session(&ctx.state())
        .map_err(|e| Error::Delta { context: "count".into(), source: Box::new(e) })?;
    let provider = table.table_provider().await.map_err(Error::datafusion("count"))?;
    let df = ctx.read_table(provider).map_err(Error::datafusion("count"))?;
    let n = df.count().await.map_err(Error::datafusion("count"))?;
    Ok(n as u64)
}

/// Batches as JSON objects (for summaries and `--json`).
pub fn to_json_rows(batches: &[RecordBatch]) -> Result<Vec<serde_json::Map<String, serde_json::Value>>> {
    let mut writer = deltalake::arrow::json::ArrayWriter::new(Vec::new());
    let refs: Vec<&RecordBatch> = batches.iter().collect();
    writer.write_batches(&refs).map_err(|e| Error::datafusion("to JSON")(e.into()))?;
    writer.finish().map_err(|e| Error::datafusion("to JSON")(e.into()))?;
    let bytes = writer.into_inner();
    if bytes.is_empty() {
        return Ok(vec![]);
    }
    serde_json::from_slice(&bytes).map_err(|e| Error::Config(format!("JSON rows: {e}")))
}
