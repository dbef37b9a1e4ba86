//! The clean tables, kept up to date by merging what each run brought.
//!
//! A clean table records, per landing partition, the highest raw `_offset` it has taken in (a
//! `txn` action, app id `pinpipe-clean:<topic>:<partition>`). A run reads only the raw rows past
//! those offsets (the raw table's file statistics skip the rest), keeps the winner per key (the
//! highest landing position), and compares each winner with the key index `batch/_keys_<t>`: one
//! row per key with the landing position of the record the clean row came from. Winners that beat
//! (or are) the indexed record are upserted ([`upsert`]: a rewrite or a MERGE) into the index,
//! then into the clean table; each commit carries the new offsets. The index is always committed
//! first, so a run killed between the two commits finds the index ahead and the same winners
//! again (a winner equal to the indexed record is upserted again, which changes nothing). A
//! run's cost grows with the rows it brought and the clean table's size, not with the raw history.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use deltalake::arrow::array::{Array, ArrayRef, AsArray, BooleanArray, RecordBatch};
use deltalake::arrow::compute::{filter_record_batch, interleave};
use deltalake::arrow::datatypes::{DataType, Field, Int32Type, Int64Type, Schema, SchemaRef};
use deltalake::datafusion::datasource::MemTable;
use deltalake::datafusion::prelude::{col, SessionContext};
use deltalake::protocol::SaveMode;
use deltalake::DeltaTable;
use futures::TryStreamExt;

use super::tables::{clean_path, raw_path};
use crate::clean::{self, raw::OFFSET_COLUMN, raw::PARTITION_COLUMN};
use crate::delta::{txn, Lake, Written};
use crate::error::{Error, Result};
use crate::model::Table;

/// Folder of a key index: `batch/_keys_pin`.
pub fn keys_path(table: Table) -> String {
    format!("batch/_keys_{}", table.suffix())
}

fn keys_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("ind", DataType::Int64, false),
        Field::new(PARTITION_COLUMN, DataType::Int32, false),
        Field::new(OFFSET_COLUMN, DataType::Int64, false),
    ]))
}

fn app_id(topic: &str, partition: i32) -> String {
    format!("pinpipe-clean:{topic}:{partition}")
}

/// A landing position as one ordered number: partition, then offset.
fn position(partition: i32, offset: i64) -> i64 {
    (i64::from(partition) << 40) + offset
}

/// What merging did to one clean table.
#[derive(Debug, Default)]
pub struct Merged {
    pub rows_before: u64,
    pub rows_after: u64,
}

/// The winner per key among raw rows pushed batch by batch, holding only the batches that still
/// hold a winner (compacted as they pile up), so memory follows the number of keys.
struct Winners {
    schema: SchemaRef,
    batches: Vec<RecordBatch>,
    /// key → (position, batch, row)
    best: HashMap<i64, (i64, usize, usize)>,
    held_rows: usize,
    /// Highest offset seen per partition.
    reached: BTreeMap<i32, i64>,
}

impl Winners {
    fn new(schema: SchemaRef) -> Self {
        Winners { schema, batches: Vec::new(), best: HashMap::new(), held_rows: 0, reached: BTreeMap::new() }
    }

    fn push(&mut self, batch: RecordBatch) -> Result<()> {
        let n = batch.num_rows();
        if n == 0 {
            return Ok(());
        }
        let keys = batch.column(0).as_primitive::<Int64Type>();
        let partitions = column(&batch, PARTITION_COLUMN)?.as_primitive::<Int32Type>();
        let offsets = column(&batch, OFFSET_COLUMN)?.as_primitive::<Int64Type>();
        if self.batches.is_empty() {
            // As read (the reader may hand out view types).
            self.schema = batch.schema();
        }
        let b = self.batches.len();
        for row in 0..n {
            let (p, o) = (partitions.value(row), offsets.value(row));
            let reached = self.reached.entry(p).or_insert(o);
            *reached = (*reached).max(o);
            if keys.is_null(row) {
                continue;
            }
            let pos = position(p, o);
            self.best
                .entry(keys.value(row))
                .and_modify(|e| {
                    if pos >= e.0 {
                        *e = (pos, b, row)
                    }
                })
                .or_insert((pos, b, row));
        }
        self.batches.push(batch);
        self.held_rows += n;
        if self.held_rows > 4 * self.best.len() + 65_536 {
            self.compact()?;
        }
        Ok(())
    }

    /// Replaces the held batches by one batch of the winners, sorted by key.
    fn compact(&mut self) -> Result<()> {
        let mut winners: Vec<(i64, (i64, usize, usize))> = self.best.iter().map(|(k, v)| (*k, *v)).collect();
        winners.sort_unstable_by_key(|(k, _)| *k);
        let indices: Vec<(usize, usize)> = winners.iter().map(|(_, (_, b, r))| (*b, *r)).collect();
        let columns = (0..self.schema.fields().len())
            .map(|c| {
                let arrays: Vec<&dyn Array> = self.batches.iter().map(|b| b.column(c).as_ref()).collect();
                interleave(&arrays, &indices)
            })
            .collect::<std::result::Result<Vec<ArrayRef>, _>>()
            .map_err(|e| Error::Config(format!("gather the winners: {e}")))?;
        let batch = RecordBatch::try_new(self.schema.clone(), columns)
            .map_err(|e| Error::Config(format!("gather the winners: {e}")))?;
        self.best = winners.into_iter().enumerate().map(|(i, (k, (pos, _, _)))| (k, (pos, 0, i))).collect();
        self.held_rows = batch.num_rows();
        self.batches = vec![batch];
        Ok(())
    }

    fn finish(mut self) -> Result<(RecordBatch, BTreeMap<i32, i64>)> {
        if self.best.is_empty() {
            return Ok((RecordBatch::new_empty(self.schema.clone()), self.reached));
        }
        self.compact()?;
        let batch = self.batches.pop().expect("compact leaves one batch");
        Ok((batch, self.reached))
    }
}

fn column<'a>(batch: &'a RecordBatch, name: &str) -> Result<&'a ArrayRef> {
    batch.column_by_name(name).ok_or_else(|| Error::Config(format!("raw rows lack column {name}")))
}

/// Offsets recorded in `table` per partition.
async fn consumed(table: &DeltaTable, topic: &str, partitions: &[i32]) -> Result<BTreeMap<i32, Option<i64>>> {
    super::txn_versions(table, partitions, |p| app_id(topic, p)).await
}

/// SQL predicate for raw rows past `done` (partitions not listed are read whole).
fn past(done: &BTreeMap<i32, Option<i64>>) -> String {
    let mut terms: Vec<String> = done
        .iter()
        .map(|(p, o)| match o {
            Some(o) => format!("(\"{PARTITION_COLUMN}\" = {p} AND \"{OFFSET_COLUMN}\" > {o})"),
            None => format!("\"{PARTITION_COLUMN}\" = {p}"),
        })
        .collect();
    let listed: Vec<String> = done.keys().map(i32::to_string).collect();
    terms.push(if listed.is_empty() {
        "true".to_string()
    } else {
        format!("\"{PARTITION_COLUMN}\" NOT IN ({})", listed.join(", "))
    });
    terms.join(" OR ")
}

/// The landing position of every key in the index.
async fn indexed(ctx: &SessionContext, lake: &Lake, keys: &DeltaTable) -> Result<HashMap<i64, i64>> {
    let mut out = HashMap::new();
    if keys.version().is_none() {
        return Ok(out);
    }
    let name = "pinpipe_keys";
    lake.register_table(ctx, name, keys).await?;
    let result = async {
        let df = ctx.sql(&format!("SELECT * FROM \"{name}\"")).await?;
        df.collect().await
    }
    .await;
    ctx.deregister_table(name).map_err(Error::datafusion("unstage"))?;
    for batch in result.map_err(Error::datafusion("read the key index"))? {
        let k = batch.column(0).as_primitive::<Int64Type>();
        let p = batch.column(1).as_primitive::<Int32Type>();
        let o = batch.column(2).as_primitive::<Int64Type>();
        for i in 0..batch.num_rows() {
            out.insert(k.value(i), position(p.value(i), o.value(i)));
        }
    }
    Ok(out)
}

/// Commit attempts against concurrent writers before a run gives up.
const MAX_ATTEMPTS: usize = 20;

/// Brings the clean table of `table` (and its key index) up to date with its raw table.
/// `partitions`: the topic's landing partitions. A full refresh rebuilds both from the raw table.
pub async fn update_clean(
    ctx: &SessionContext,
    lake: &Lake,
    table: Table,
    topic: &str,
    partitions: &[i32],
    full_refresh: bool,
) -> Result<Merged> {
    let (raw_rel, clean_rel, keys_rel) = (raw_path(table), clean_path(table), keys_path(table));
    for _ in 0..MAX_ATTEMPTS {
        let raw = lake.table(&raw_rel).await?;
        let keys = lake.table(&keys_rel).await?;
        let clean_table = lake.table(&clean_rel).await?;
        let rows_before =
            if clean_table.version().is_some() { super::tables::count_rows(ctx, &clean_table).await? } else { 0 };
        if raw.version().is_none() {
            return Ok(Merged { rows_before, rows_after: rows_before });
        }
        let done = if full_refresh {
            partitions.iter().map(|p| (*p, None)).collect()
        } else {
            consumed(&clean_table, topic, partitions).await?
        };
        let keys_done = consumed(&keys, topic, partitions).await?;

        // The winners among the raw rows this table has not taken in yet.
        let input = format!("raw_{}", table.suffix());
        lake.register_table(ctx, &input, &raw).await?;
        let mut winners = Winners::new(clean::raw::raw_schema(table));
        let read = async {
            let df = ctx.sql(&format!("SELECT * FROM \"{input}\" WHERE {}", past(&done))).await?;
            df.execute_stream().await
        }
        .await;
        let result = match read {
            Ok(mut stream) => loop {
                match stream.try_next().await {
                    Ok(Some(batch)) => winners.push(batch)?,
                    Ok(None) => break Ok(()),
                    Err(e) => break Err(e),
                }
            },
            Err(e) => Err(e),
        };
        ctx.deregister_table(input.as_str()).map_err(Error::datafusion("unstage"))?;
        result.map_err(Error::datafusion(format!("read the new rows of {raw_rel}")))?;
        let (winners, reached) = winners.finish()?;
        let target: BTreeMap<i32, i64> = done
            .iter()
            .filter_map(|(p, o)| reached.get(p).copied().or(*o).map(|v| (*p, v)))
            .chain(reached.iter().filter(|(p, _)| !done.contains_key(p)).map(|(p, o)| (*p, *o)))
            .collect();
        if winners.num_rows() == 0 && !full_refresh && target.iter().all(|(p, o)| done.get(p) == Some(&Some(*o))) {
            return Ok(Merged { rows_before, rows_after: rows_before });
        }

        // Keep the winners that beat, or are, the record each key's clean row came from.
        let index = if full_refresh { HashMap::new() } else { indexed(ctx, lake, &keys).await? };
        let changed = {
            let k = winners.column(0).as_primitive::<Int64Type>();
            let p = column(&winners, PARTITION_COLUMN)?.as_primitive::<Int32Type>();
            let o = column(&winners, OFFSET_COLUMN)?.as_primitive::<Int64Type>();
            let keep: BooleanArray = (0..winners.num_rows())
                .map(|i| Some(index.get(&k.value(i)).is_none_or(|&at| position(p.value(i), o.value(i)) >= at)))
                .collect();
            filter_record_batch(&winners, &keep).map_err(|e| Error::Config(format!("select the winners: {e}")))?
        };
        let txns = || target.iter().map(|(p, o)| txn(app_id(topic, *p), *o)).collect::<Vec<_>>();

        // The index first.
        let index_behind = target.iter().any(|(p, o)| keys_done.get(p).copied().flatten().is_none_or(|d| d < *o));
        if full_refresh || index_behind {
            let rows = RecordBatch::try_new(
                keys_schema(),
                vec![
                    changed.column(0).clone(),
                    column(&changed, PARTITION_COLUMN)?.clone(),
                    column(&changed, OFFSET_COLUMN)?.clone(),
                ],
            )
            .map_err(|e| Error::Config(format!("key index rows: {e}")))?;
            let written = if full_refresh || keys.version().is_none() {
                let mode = if full_refresh { SaveMode::Overwrite } else { SaveMode::Append };
                lake.write_exclusive(keys, &keys_rel, &keys_schema(), vec![rows], mode, txns(), "clean index").await?
            } else {
                upsert(ctx, lake, keys, &keys_rel, rows, index.len(), txns(), "clean index").await?.0
            };
            if matches!(written, Written::Conflict) {
                continue;
            }
        }

        // Then the clean table.
        let cleaned = clean_rows(ctx, table, changed).await?;
        let schema = clean::clean_schema(table);
        let written = if full_refresh || clean_table.version().is_none() {
            let mode = if full_refresh { SaveMode::Overwrite } else { SaveMode::Append };
            lake.write_exclusive(clean_table, &clean_rel, &schema, cleaned, mode, txns(), "clean").await?
        } else {
            let batch = deltalake::arrow::compute::concat_batches(&schema, &cleaned)
                .map_err(|e| Error::Config(format!("clean rows: {e}")))?;
            let (written, rows) =
                upsert(ctx, lake, clean_table, &clean_rel, batch, rows_before as usize, txns(), "clean merge").await?;
            match (written, rows) {
                (Written::Committed(_), Some(rows_after)) => return Ok(Merged { rows_before, rows_after }),
                (written, _) => written,
            }
        };
        match written {
            Written::Committed(t) => {
                let rows_after = super::tables::count_rows(ctx, &t).await?;
                return Ok(Merged { rows_before, rows_after });
            }
            Written::Conflict => continue,
        }
    }
    Err(Error::Conflict(format!("table {clean_rel}: other writers kept committing first ({MAX_ATTEMPTS} attempts)")))
}

/// RULES.md's cleaning of raw winner rows.
async fn clean_rows(ctx: &SessionContext, table: Table, rows: RecordBatch) -> Result<Vec<RecordBatch>> {
    let name = format!("winners_{}", table.suffix());
    let provider =
        MemTable::try_new(rows.schema(), vec![vec![rows]]).map_err(Error::datafusion("stage the winners"))?;
    ctx.register_table(name.as_str(), Arc::new(provider)).map_err(Error::datafusion("stage the winners"))?;
    let sql = format!("SELECT {} FROM \"{name}\"", clean::clean_columns(table).join(", "));
    let result = async { ctx.sql(&sql).await?.collect().await }.await;
    ctx.deregister_table(name.as_str()).map_err(Error::datafusion("unstage"))?;
    let batches = result.map_err(Error::datafusion(format!("clean {table}")))?;
    clean::conform(&batches, &clean::clean_schema(table)).map_err(Error::datafusion(format!("clean {table}")))
}

/// Upserts `rows` (one per key, first column `ind`) into `target`, which holds `target_rows` rows,
/// in one exclusive commit. When the rows replace a good part of the table (as a day of the
/// emulator's events does: they draw from a fixed set of rows) the table is rewritten — its rows
/// read, those of the new keys left out, everything written as one overwrite — which writes what
/// a MERGE would rewrite anyway and skips its join; a few rows into a large table are merged.
/// Returns the row count after the rewrite (a merge does not count).
#[allow(clippy::too_many_arguments)]
async fn upsert(
    ctx: &SessionContext,
    lake: &Lake,
    target: DeltaTable,
    rel: &str,
    rows: RecordBatch,
    target_rows: usize,
    txns: Vec<deltalake::kernel::Transaction>,
    operation: &str,
) -> Result<(Written, Option<u64>)> {
    if rows.num_rows() * REWRITE_FRACTION < target_rows {
        return Ok((merge(ctx, lake, target, rel, rows, txns, operation).await?, None));
    }
    tracing::debug!(table = rel, rows = rows.num_rows(), "merging (rewrite)");
    let name = "pinpipe_upsert_target";
    lake.register_table(ctx, name, &target).await?;
    let result = async { ctx.sql(&format!("SELECT * FROM \"{name}\"")).await?.collect().await }.await;
    ctx.deregister_table(name).map_err(Error::datafusion("unstage"))?;
    let current = result.map_err(Error::datafusion(format!("read {rel}")))?;
    let new_keys: std::collections::HashSet<i64> =
        rows.column(0).as_primitive::<Int64Type>().iter().flatten().collect();
    let schema = rows.schema();
    let kept = current
        .iter()
        .map(|batch| {
            let keep: BooleanArray = batch
                .column(0)
                .as_primitive::<Int64Type>()
                .iter()
                .map(|k| Some(k.is_none_or(|k| !new_keys.contains(&k))))
                .collect();
            filter_record_batch(batch, &keep)
        })
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| Error::Config(format!("rewrite {rel}: {e}")))?;
    // In the rows' schema (the reader may hand out view types).
    let mut out = clean::conform(&kept, &schema).map_err(Error::datafusion(format!("rewrite {rel}")))?;
    out.push(rows);
    let total = out.iter().map(|b| b.num_rows() as u64).sum();
    let written = lake.write_exclusive(target, rel, &schema, out, SaveMode::Overwrite, txns, operation).await?;
    Ok((written, Some(total)))
}

/// A MERGE rewrites every file holding a matched row: once a run's rows number at least
/// 1 / `REWRITE_FRACTION` of the table's, they are spread over nearly every file of it.
const REWRITE_FRACTION: usize = 4;

/// Upserts `rows` (one per key, first column `ind`) into `target` in one exclusive commit.
async fn merge(
    ctx: &SessionContext,
    lake: &Lake,
    target: DeltaTable,
    rel: &str,
    rows: RecordBatch,
    txns: Vec<deltalake::kernel::Transaction>,
    operation: &str,
) -> Result<Written> {
    tracing::debug!(table = rel, rows = rows.num_rows(), "merging");
    let names: Vec<String> = rows.schema().fields().iter().map(|f| f.name().clone()).collect();
    let source = ctx.read_batch(rows).map_err(Error::datafusion(format!("merge into {rel}")))?;
    lake.merge(target, rel, source, col("t.ind").eq(col("s.ind")), &names, txns, operation).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use deltalake::arrow::array::{Int32Array, Int64Array};

    fn raw(keys: &[i64], partitions: &[i32], offsets: &[i64]) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("ind", DataType::Int64, true),
            Field::new("v", DataType::Int64, true),
            Field::new(PARTITION_COLUMN, DataType::Int32, false),
            Field::new(OFFSET_COLUMN, DataType::Int64, false),
        ]));
        let values: Int64Array = offsets.iter().map(|o| Some(o * 10)).collect();
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int64Array::from(keys.to_vec())),
                Arc::new(values),
                Arc::new(Int32Array::from(partitions.to_vec())),
                Arc::new(Int64Array::from(offsets.to_vec())),
            ],
        )
        .unwrap()
    }

    #[test]
    fn the_highest_landing_position_wins_across_batches_and_compactions() {
        let first = raw(&[1, 2, 1], &[0, 0, 0], &[0, 1, 2]);
        let mut w = Winners::new(first.schema());
        w.push(first).unwrap();
        w.compact().unwrap();
        // Partition 1 beats any offset of partition 0; a later offset of partition 0 beats 2.
        w.push(raw(&[2, 3, 1], &[1, 0, 0], &[0, 3, 4])).unwrap();
        w.push(raw(&[2], &[0], &[9])).unwrap();
        let (batch, reached) = w.finish().unwrap();
        let keys = batch.column(0).as_primitive::<Int64Type>().values().to_vec();
        let offsets = batch.column(3).as_primitive::<Int64Type>().values().to_vec();
        let partitions = batch.column(2).as_primitive::<Int32Type>().values().to_vec();
        assert_eq!(keys, [1, 2, 3]);
        assert_eq!(partitions, [0, 1, 0]);
        assert_eq!(offsets, [4, 0, 3]);
        assert_eq!(reached, BTreeMap::from([(0, 9), (1, 0)]));
    }

    #[test]
    fn only_rows_past_the_consumed_offsets_are_read() {
        let done = BTreeMap::from([(0, Some(41)), (2, None)]);
        assert_eq!(
            past(&done),
            "(\"_partition\" = 0 AND \"_offset\" > 41) OR \"_partition\" = 2 OR \"_partition\" NOT IN (0, 2)"
        );
        assert_eq!(past(&BTreeMap::new()), "true");
    }
}
