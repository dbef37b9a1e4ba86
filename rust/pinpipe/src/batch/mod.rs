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
use crate::delta::{txn, txn_version, Lake};
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
    let dead_letters_table = lake.table(DEAD_LETTERS_PATH).await?;
    let ctx = clean::session();
    let mut quality = Vec::new();
    for table in Table::ALL {
        let topic = config.user_id.topic(table);
        let raw_rel = raw_path(table);
        let raw_table = lake.table(&raw_rel).await?;
        let raw_existed = raw_table.version().is_some();

        // Positions already consumed, per partition, by the raw table and the dead letters.
        let objects = landed.remove(&table).unwrap_or_default();
        let mut raw_done = BTreeMap::new();
        let mut dl_done = BTreeMap::new();
        for partition in objects.keys() {
            let raw_v = if config.full_refresh { None } else { txn_version(&raw_table, &app_id(&topic, *partition)).await? };
            raw_done.insert(*partition, raw_v.unwrap_or(-1));
            let dl_v = txn_version(&dead_letters_table, &app_id(&topic, *partition)).await?;
            dl_done.insert(*partition, dl_v.unwrap_or(-1));
        }
        let todo: Vec<landed::Object> = objects
            .values()
            .flatten()
            .filter(|o| o.start > raw_done[&o.partition].min(dl_done[&o.partition]))
            .cloned()
            .collect();

        let t0 = Instant::now();
        let decoded = landed::decode_all(&store, table, todo, config.concurrency, config.progress).await?;
        summary.decode_secs += t0.elapsed().as_secs_f64();

        let mut ts = TableSummary { table: table.suffix().to_string(), ..Default::default() };
        let mut raw_batches: Vec<RecordBatch> = Vec::new();
        let mut raw_txns: BTreeMap<i32, i64> = BTreeMap::new();
        let mut dl_rows = Vec::new();
        let mut dl_txns: BTreeMap<i32, i64> = BTreeMap::new();
        for (object, d) in decoded {
            if object.start > raw_done[&object.partition] {
                ts.objects_read += 1;
                ts.records_read += (d.batch.num_rows() + d.dead_letters.len()) as u64;
                raw_txns.insert(object.partition, object.start.max(*raw_txns.get(&object.partition).unwrap_or(&-1)));
                raw_batches.push(d.batch);
            }
            if object.start > dl_done[&object.partition] {
                ts.dead_lettered += d.dead_letters.len() as u64;
                dl_txns.insert(object.partition, object.start.max(*dl_txns.get(&object.partition).unwrap_or(&-1)));
                dl_rows.extend(d.dead_letters.into_iter().map(|dl| (object.clone(), dl)));
            }
        }
        if !dl_rows.is_empty() {
            let batch = tables::dead_letter_batch(&run_id, &topic, &dl_rows);
            let txns = dl_txns.iter().map(|(p, v)| txn(app_id(&topic, *p), *v)).collect();
            lake.write(DEAD_LETTERS_PATH, &tables::dead_letter_schema(), vec![batch], SaveMode::Append, txns, "dead letters").await?;
        }
        let new_rows: usize = raw_batches.iter().map(|b| b.num_rows()).sum();
        let new_batches = raw_batches.clone();
        if !raw_txns.is_empty() || config.full_refresh {
            let mode = if config.full_refresh { SaveMode::Overwrite } else { SaveMode::Append };
            let txns = raw_txns.iter().map(|(p, v)| txn(app_id(&topic, *p), *v)).collect();
            lake.write(&raw_rel, &raw_schema(table), raw_batches, mode, txns, "landed records").await?;
        }

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
        let raw_table = lake.table(&raw_rel).await?;
        let clean_rel = clean_path(table);
        let clean_before = lake.existing(&clean_rel).await?;
        let built_from = match &clean_before {
            Some(t) => txn_version(t, CLEAN_APP_ID).await?,
            None => None,
        };
        let rows_before = match &clean_before {
            Some(t) => tables::count_rows(&ctx, t, "clean_before").await?,
            None => 0,
        };
        let raw_version = raw_table.version().map(|v| v as i64);
        let rows_after = if raw_version.is_some() && (built_from != raw_version || config.full_refresh) {
            let input = format!("raw_{}", table.suffix());
            if (!raw_existed || config.full_refresh) && !new_batches.is_empty() {
                let mem = MemTable::try_new(raw_schema(table), vec![new_batches]).map_err(Error::datafusion("stage raw"))?;
                ctx.register_table(input.as_str(), Arc::new(mem)).map_err(Error::datafusion("stage raw"))?;
            } else {
                lake.register(&ctx, &input, &raw_rel).await?;
            }
            let cleaned = clean::clean(&ctx, table, &input).await.map_err(Error::datafusion(format!("clean {table}")))?;
            ctx.deregister_table(input.as_str()).map_err(Error::datafusion("unstage"))?;
            let rows: usize = cleaned.iter().map(|b| b.num_rows()).sum();
            let txns = vec![txn(CLEAN_APP_ID, raw_version.unwrap_or(0))];
            lake.write(&clean_rel, &clean::clean_schema(table), cleaned, SaveMode::Overwrite, txns, "clean").await?;
            rows as u64
        } else {
            rows_before
        };
        ts.clean_rows = rows_after;
        let kept_before = if config.full_refresh || !raw_existed { 0 } else { rows_before };
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
