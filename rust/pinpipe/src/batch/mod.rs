//! `batch`: landing zone → raw Delta tables → clean Delta tables → analytics Delta tables.
//!
//! Incremental and exactly once. For each topic partition the raw table's commit records, as a
//! `txn` action (app id `pinpipe-batch:<topic>:<partition>`), the start offset of the last landing
//! object it holds; a run reads only objects past it, and writes their records and the new
//! position in one commit. Dead letters carry their own positions the same way. Clean tables are
//! rebuilt from the raw tables (deduplicated across all runs) in one overwrite commit each, which
//! records the raw table version it was built from; analytics are recomputed from the clean tables.
//! A run killed at any point and run again leaves the tables exactly as one clean run would.

mod landed;
mod tables;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use deltalake::arrow::array::RecordBatch;
use deltalake::datafusion::datasource::MemTable;
use deltalake::protocol::SaveMode;
use serde::{Deserialize, Serialize};

use crate::analytics;
use crate::clean::{self, raw::raw_schema};
use crate::clean::decode::{DeadLetter, Decoded};
use crate::delta::{txn, txn_version, Lake, Written};
use crate::error::{Error, Result};
use crate::landing::Store;
use crate::model::Table;
use crate::names::UserId;

pub use tables::{clean_path, raw_path, to_json_rows as rows_as_json, DEAD_LETTERS_PATH, QUALITY_PATH};

/// Configuration of a batch run.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BatchConfig {
    #[serde(skip)]
    pub user_id: UserId,
    /// Landing zone: a local directory or `s3://bucket/prefix`. Default `landing`.
    pub landing: String,
    /// Lake root: a local directory or `s3://bucket/prefix`. Default `lake`.
    pub lake: String,
    /// Rebuild every table from all landed objects instead of only the new ones.
    pub full_refresh: bool,
    /// Landing objects read and decoded at once. Default: the number of CPUs.
    pub concurrency: usize,
    /// Show a progress bar on stderr.
    pub progress: bool,
}

impl Default for BatchConfig {
    fn default() -> Self {
        BatchConfig {
            user_id: UserId::default(),
            landing: "landing".into(),
            lake: "lake".into(),
            full_refresh: false,
            concurrency: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2),
            progress: false,
        }
    }
}

/// What a run did to one source table.
#[derive(Debug, Clone, Default, Serialize)]
pub struct TableSummary {
    pub table: String,
    /// Landing objects read this run.
    pub objects_read: u64,
    /// Lines read this run (records and dead letters).
    pub records_read: u64,
    pub dead_lettered: u64,
    /// Records read this run that repeat a key already present (or repeated within the run).
    pub deduplicated: u64,
    /// Values set to null this run, by `column: cause` (empty, a sentinel, unparsable).
    pub nulled: BTreeMap<String, u64>,
    /// Rows in the clean table after the run.
    pub clean_rows: u64,
}

/// An analytics table as computed this run, rows as JSON objects.
#[derive(Debug, Clone, Serialize)]
pub struct AnalyticsTable {
    pub name: String,
    pub question: String,
    pub rows: Vec<serde_json::Map<String, serde_json::Value>>,
}

/// What a batch run did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct BatchSummary {
    pub run_id: String,
    pub lake: String,
    pub tables: Vec<TableSummary>,
    pub analytics: Vec<AnalyticsTable>,
    pub decode_secs: f64,
    pub clean_secs: f64,
    pub analytics_secs: f64,
    pub elapsed_secs: f64,
}

impl BatchSummary {
    pub fn records_read(&self) -> u64 {
        self.tables.iter().map(|t| t.records_read).sum()
    }
}

/// Commit attempts against concurrent writers before a run gives up.
const MAX_ATTEMPTS: usize = 20;

fn conflict(rel: &str) -> Error {
    Error::Conflict(format!("table {rel}: other writers kept committing first ({MAX_ATTEMPTS} attempts)"))
}

/// Position (start offset of the last object consumed) recorded in `table` per partition.
async fn positions(table: &deltalake::DeltaTable, topic: &str, partitions: &[i32]) -> Result<BTreeMap<i32, Option<i64>>> {
    let mut out = BTreeMap::new();
    for p in partitions {
        out.insert(*p, txn_version(table, &app_id(topic, *p)).await?);
    }
    Ok(out)
}

/// The largest start offset per partition among `objects`.
fn last_starts<'a>(objects: impl Iterator<Item = &'a landed::Object>) -> impl Iterator<Item = (i32, i64)> {
    let mut out: BTreeMap<i32, i64> = BTreeMap::new();
    for o in objects {
        let e = out.entry(o.partition).or_insert(o.start);
        *e = (*e).max(o.start);
    }
    out.into_iter()
}

fn app_id(topic: &str, partition: i32) -> String {
    format!("pinpipe-batch:{topic}:{partition}")
}

const CLEAN_APP_ID: &str = "pinpipe-clean";

/// Runs the batch job once.
pub async fn run_batch(config: BatchConfig) -> Result<BatchSummary> {
    if config.concurrency == 0 {
        return Err(Error::Config("concurrency must be at least 1".into()));
    }
    let started = Instant::now();
    let lake = Lake::new(&config.lake)?;
    let store = Store::open(&config.landing)?;
    let run_id = format!("{}-{}", chrono::Utc::now().format("%Y%m%dT%H%M%S%.3fZ"), std::process::id());
    let mut summary = BatchSummary { run_id: run_id.clone(), lake: lake.root().to_string(), ..Default::default() };

    let mut landed = BTreeMap::new();
    for table in Table::ALL {
        let topic = config.user_id.topic(table);
        landed.insert(table, landed::list_objects(&store, &topic).await?);
    }
    if config.full_refresh {
        let partitions: Vec<(String, i32)> = landed
            .iter()
            .flat_map(|(t, objects)| objects.keys().map(|p| (config.user_id.topic(*t), *p)))
            .collect();
        tables::reset_dead_letters(&lake, &partitions).await?;
    }
    let ctx = clean::session();
    let mut quality = Vec::new();
    for table in Table::ALL {
        let topic = config.user_id.topic(table);
        let raw_rel = raw_path(table);
        let objects = landed.remove(&table).unwrap_or_default();
        let partitions: Vec<i32> = objects.keys().copied().collect();

        // Objects to read: past the raw table's position, or all of them where the dead letters
        // were reset by a full refresh and must be written again.
        let raw_done = positions(&lake.table(&raw_rel).await?, &topic, &partitions).await?;
        let dl_done = positions(&lake.table(DEAD_LETTERS_PATH).await?, &topic, &partitions).await?;
        let todo: Vec<landed::Object> = objects
            .values()
            .flatten()
            .filter(|o| {
                let dl_reset = dl_done[&o.partition] == Some(-1);
                config.full_refresh || dl_reset || o.start > raw_done[&o.partition].unwrap_or(-1)
            })
            .cloned()
            .collect();

        let t0 = Instant::now();
        let decoded = landed::decode_all(&store, table, todo, config.concurrency, config.progress).await?;
        summary.decode_secs += t0.elapsed().as_secs_f64();
        let mut ts = TableSummary { table: table.suffix().to_string(), ..Default::default() };

        // Dead letters first: once the raw table records an object, its dead letters are written.
        for attempt in 0.. {
            let dl_table = lake.table(DEAD_LETTERS_PATH).await?;
            let done = positions(&dl_table, &topic, &partitions).await?;
            let fresh: Vec<&(landed::Object, Decoded)> =
                decoded.iter().filter(|(o, _)| o.start > done[&o.partition].unwrap_or(-1)).collect();
            let rows: Vec<(landed::Object, DeadLetter)> = fresh
                .iter()
                .flat_map(|(o, d)| d.dead_letters.iter().map(move |dl| (o.clone(), dl.clone())))
                .collect();
            let reset = fresh.iter().any(|(o, _)| done[&o.partition] == Some(-1));
            if rows.is_empty() && !reset {
                break;
            }
            let txns = last_starts(fresh.iter().map(|(o, _)| o)).map(|(p, v)| txn(app_id(&topic, p), v)).collect();
            let batch = tables::dead_letter_batch(&run_id, &topic, &rows);
            let schema = tables::dead_letter_schema();
            match lake.write_exclusive(dl_table, DEAD_LETTERS_PATH, &schema, vec![batch], SaveMode::Append, txns, "dead letters").await? {
                Written::Committed(_) => {
                    ts.dead_lettered = rows.len() as u64;
                    break;
                }
                Written::Conflict if attempt < MAX_ATTEMPTS => continue,
                Written::Conflict => return Err(conflict(DEAD_LETTERS_PATH)),
            }
        }

        // The records and their positions, in one commit.
        let mut new_batches: Vec<RecordBatch> = Vec::new();
        // Set when this run's commit made the raw table hold exactly `new_batches`.
        let mut sole_contents_at: Option<i64> = None;
        for attempt in 0.. {
            let raw_table = lake.table(&raw_rel).await?;
            let done = if config.full_refresh { BTreeMap::new() } else { positions(&raw_table, &topic, &partitions).await? };
            let fresh: Vec<&(landed::Object, Decoded)> = decoded
                .iter()
                .filter(|(o, _)| o.start > done.get(&o.partition).copied().flatten().unwrap_or(-1))
                .collect();
            if fresh.is_empty() && !config.full_refresh {
                break;
            }
            let txns = last_starts(fresh.iter().map(|(o, _)| o)).map(|(p, v)| txn(app_id(&topic, p), v)).collect();
            let batches: Vec<RecordBatch> = fresh.iter().map(|(_, d)| d.batch.clone()).collect();
            let mode = if config.full_refresh { SaveMode::Overwrite } else { SaveMode::Append };
            let was_empty = raw_table.version().is_none();
            match lake.write_exclusive(raw_table, &raw_rel, &raw_schema(table), batches.clone(), mode, txns, "landed records").await? {
                Written::Committed(t) => {
                    if was_empty || config.full_refresh {
                        sole_contents_at = t.version().map(|v| v as i64);
                    }
                    ts.objects_read = fresh.len() as u64;
                    ts.records_read = fresh.iter().map(|(_, d)| (d.batch.num_rows() + d.dead_letters.len()) as u64).sum();
                    new_batches = batches;
                    break;
                }
                Written::Conflict if attempt < MAX_ATTEMPTS => continue,
                Written::Conflict => return Err(conflict(&raw_rel)),
            }
        }
        let new_rows: usize = new_batches.iter().map(|b| b.num_rows()).sum();

        // Quality counts of this run's records.
        if new_rows > 0 {
            let mem = MemTable::try_new(raw_schema(table), vec![new_batches.clone()]).map_err(Error::datafusion("stage new records"))?;
            let name = format!("new_{}", table.suffix());
            ctx.register_table(name.as_str(), Arc::new(mem)).map_err(Error::datafusion("stage new records"))?;
            if let Some(sql) = clean::nulled_counts_sql(table, &name) {
                for (column, cause, n) in tables::collect_counts(&ctx, &sql).await? {
                    if n > 0 {
                        ts.nulled.insert(format!("{column}: {cause}"), n as u64);
                    }
                }
            }
            ctx.deregister_table(name.as_str()).map_err(Error::datafusion("unstage"))?;
        }

        // Clean table: rebuilt from the raw table when the raw table changed.
        let t0 = Instant::now();
        let clean_rel = clean_path(table);
        let mut rows_before = 0;
        let mut rows_after = 0;
        for attempt in 0.. {
            let raw_table = lake.table(&raw_rel).await?;
            let clean_table = lake.table(&clean_rel).await?;
            let built_from = txn_version(&clean_table, CLEAN_APP_ID).await?;
            rows_before = if clean_table.version().is_some() { tables::count_rows(&ctx, &clean_table).await? } else { 0 };
            let raw_version = raw_table.version().map(|v| v as i64);
            let stale = raw_version.is_some() && (config.full_refresh || built_from.is_none_or(|b| b < raw_version.unwrap_or(0)));
            if !stale {
                rows_after = rows_before;
                break;
            }
            let input = format!("raw_{}", table.suffix());
            if sole_contents_at.is_some() && sole_contents_at == raw_version && !new_batches.is_empty() {
                let mem = MemTable::try_new(raw_schema(table), vec![new_batches.clone()]).map_err(Error::datafusion("stage raw"))?;
                ctx.register_table(input.as_str(), Arc::new(mem)).map_err(Error::datafusion("stage raw"))?;
            } else {
                lake.register_table(&ctx, &input, &raw_table).await?;
            }
            let cleaned = clean::clean(&ctx, table, &input).await.map_err(Error::datafusion(format!("clean {table}")));
            ctx.deregister_table(input.as_str()).map_err(Error::datafusion("unstage"))?;
            let cleaned = cleaned?;
            let rows: u64 = cleaned.iter().map(|b| b.num_rows() as u64).sum();
            let txns = vec![txn(CLEAN_APP_ID, raw_version.unwrap_or(0))];
            let schema = clean::clean_schema(table);
            match lake.write_exclusive(clean_table, &clean_rel, &schema, cleaned, SaveMode::Overwrite, txns, "clean").await? {
                Written::Committed(_) => {
                    rows_after = rows;
                    break;
                }
                Written::Conflict if attempt < MAX_ATTEMPTS => continue,
                Written::Conflict => return Err(conflict(&clean_rel)),
            }
        }
        ts.clean_rows = rows_after;
        let kept_before = if config.full_refresh { 0 } else { rows_before };
        ts.deduplicated = (kept_before + new_rows as u64).saturating_sub(rows_after);
        summary.clean_secs += t0.elapsed().as_secs_f64();
        quality.push(ts.clone());
        summary.tables.push(ts);
    }

    let t0 = Instant::now();
    summary.analytics = compute_analytics(&lake).await?;
    summary.analytics_secs = t0.elapsed().as_secs_f64();
    tables::append_quality(&lake, &run_id, &quality).await?;
    summary.elapsed_secs = started.elapsed().as_secs_f64();
    Ok(summary)
}

/// Recomputes the nine analytics tables from the clean tables (one overwrite commit each).
pub async fn compute_analytics(lake: &Lake) -> Result<Vec<AnalyticsTable>> {
    let ctx = clean::session();
    for table in Table::ALL {
        if !lake.register(&ctx, table.suffix(), &clean_path(table)).await? {
            let empty = MemTable::try_new(clean::clean_schema(table), vec![vec![]]).map_err(Error::datafusion("empty table"))?;
            ctx.register_table(table.suffix(), Arc::new(empty)).map_err(Error::datafusion("empty table"))?;
        }
    }
    let mut out = Vec::new();
    for query in analytics::queries() {
        let batches = query.run(&ctx).await.map_err(Error::datafusion(format!("analytics {}", query.name)))?;
        let rows = tables::to_json_rows(&batches)?;
        lake.write(&analytics::table_path(query.name), query.schema(), batches, SaveMode::Overwrite, vec![], "analytics").await?;
        out.push(AnalyticsTable { name: query.name.to_string(), question: query.question.to_string(), rows });
    }
    Ok(out)
}
