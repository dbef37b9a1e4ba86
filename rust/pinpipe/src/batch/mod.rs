//! `batch`: landing zone → raw Delta tables → clean Delta tables → analytics Delta tables.
//!
//! Incremental and exactly once. For each topic partition the raw table's commit records, as a
//! `txn` action (app id `pinpipe-batch:<topic>:<partition>`), the start offset of the last landing
//! object it holds; a run reads only objects past it, and writes their records and the new
//! position in one commit. Dead letters carry their own positions the same way. Clean tables take
//! in only the raw rows past their own positions, merged by key (`merge`: highest landing
//! position wins); analytics are recomputed from the clean tables.
//! A run killed at any point and run again leaves the tables exactly as one clean run would.

mod landed;
mod maintain;
mod merge;
mod tables;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use deltalake::datafusion::datasource::MemTable;
use deltalake::protocol::SaveMode;
use futures::{StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};

use crate::analytics;
use crate::clean::decode::DeadLetter;
use crate::clean::{self, raw::raw_schema};
use crate::config::AwsConfig;
use crate::delta::{txn, txn_version, Lake, Written};
use crate::error::{Error, Result};
use crate::landing::Store;
use crate::model::Table;
use crate::names::UserId;

pub use merge::keys_path;
pub use tables::{clean_path, raw_path, to_json_rows as rows_as_json, DEAD_LETTERS_PATH, QUALITY_PATH};

/// Configuration of a batch run.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BatchConfig {
    /// Whose topics' landing objects to read.
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
    /// Run one stage only: `clean` (landing → raw and clean tables) or `analytics` (clean tables →
    /// the nine analytics tables). Default: both.
    pub only: Option<Stage>,
    /// AWS access for an S3 landing zone or lake.
    pub aws: AwsConfig,
    /// How long the run is retried after transient storage failures (connection refused or
    /// reset, timeouts, 5xx) before it fails. A run can be repeated safely: each retry starts
    /// over from what the tables hold. Default 120 s.
    #[serde(with = "crate::config::duration_secs")]
    pub retry_deadline: std::time::Duration,
    /// Multipart uploads under the lake that were started longer ago than this and never
    /// completed are aborted when a run starts: they are the leftovers of a run that was killed
    /// while writing a data file (a run that fails aborts its own at once). Keep it longer than
    /// any writer of the lake takes to write one file. Default 86,400 s (one day).
    #[serde(with = "crate::config::duration_secs")]
    pub abandoned_upload_age: std::time::Duration,
    /// Compact a table's small files at the end of a run when it has at least
    /// `compact_min_files` files smaller than `target_file_mib` (delta-rs `optimize`). Default on.
    pub compact: bool,
    /// Small files a table must have before it is compacted. Default 10.
    pub compact_min_files: usize,
    /// File size compaction aims for, in MiB. Default 128.
    pub target_file_mib: u64,
    /// Delete, at the end of a run, the files no table version younger than `vacuum_retention`
    /// references (delta-rs `vacuum`, full mode: also files of writes killed before their commit).
    /// Default on.
    pub vacuum: bool,
    /// How long replaced files are kept for readers and time travel: a query running longer than
    /// this while runs replace its files may fail. Default 604,800 s (7 days, Delta's default
    /// `deletedFileRetentionDuration`).
    #[serde(with = "crate::config::duration_secs")]
    pub vacuum_retention: std::time::Duration,
}

/// A stage of the batch job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stage {
    /// Landing zone → raw tables → clean tables.
    Clean,
    /// Clean tables → analytics tables.
    Analytics,
}

impl std::str::FromStr for Stage {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "clean" => Ok(Stage::Clean),
            "analytics" => Ok(Stage::Analytics),
            other => Err(Error::Config(format!("unknown stage {other:?}: use clean or analytics"))),
        }
    }
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
            only: None,
            aws: AwsConfig::default(),
            retry_deadline: std::time::Duration::from_secs(120),
            abandoned_upload_age: std::time::Duration::from_secs(86_400),
            compact: true,
            compact_min_files: 10,
            target_file_mib: 128,
            vacuum: true,
            vacuum_retention: std::time::Duration::from_secs(7 * 24 * 3600),
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
    /// Records of this run that reached the raw table.
    #[serde(skip)]
    pub records_landed: u64,
    #[serde(skip)]
    pub decode_secs: f64,
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
    /// Compaction and vacuum at the end of the run.
    pub maintenance: maintain::MaintenanceSummary,
    pub elapsed_secs: f64,
}

impl BatchSummary {
    pub fn records_read(&self) -> u64 {
        self.tables.iter().map(|t| t.records_read).sum()
    }
}

/// Peak resident memory of this process so far, in MiB (Linux; 0 elsewhere).
fn peak_rss_mib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .map(|kb| kb / 1024)
        .unwrap_or(0)
}

/// Commit attempts against concurrent writers before a run gives up.
const MAX_ATTEMPTS: usize = 20;

fn conflict(rel: &str) -> Error {
    Error::Conflict(format!("table {rel}: other writers kept committing first ({MAX_ATTEMPTS} attempts)"))
}

/// Position (start offset of the last object consumed) recorded in `table` per partition.
async fn positions(
    table: &deltalake::DeltaTable,
    topic: &str,
    partitions: &[i32],
) -> Result<BTreeMap<i32, Option<i64>>> {
    txn_versions(table, partitions, |p| app_id(topic, p)).await
}

/// The `txn` version recorded in `table` per partition, under the app id `app_id(partition)`.
async fn txn_versions(
    table: &deltalake::DeltaTable,
    partitions: &[i32],
    app_id: impl Fn(i32) -> String,
) -> Result<BTreeMap<i32, Option<i64>>> {
    let mut out = BTreeMap::new();
    for p in partitions {
        out.insert(*p, txn_version(table, &app_id(*p)).await?);
    }
    Ok(out)
}

/// Per partition of `topic`'s landing folder, the start offset of the last object the raw table
/// holds: a run need list only the objects after it. A partition is left out (listed whole) when
/// the raw table holds none of its objects, or a full refresh reset its dead letters.
async fn read_from(lake: &Lake, table: Table, topic: &str, folders: &[(String, i32)]) -> Result<BTreeMap<i32, i64>> {
    let partitions: Vec<i32> = folders.iter().map(|(_, p)| *p).collect();
    let raw = positions(&lake.table(&raw_path(table)).await?, topic, &partitions).await?;
    let dead = positions(&lake.table(DEAD_LETTERS_PATH).await?, topic, &partitions).await?;
    Ok(raw
        .into_iter()
        .filter_map(|(p, done)| done.filter(|_| dead.get(&p).copied().flatten() != Some(-1)).map(|d| (p, d)))
        .collect())
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

/// Runs the batch job, again from the top after a transient storage failure until
/// `retry_deadline` (every run is exact whatever the previous one left behind). The summary is
/// the successful attempt's.
pub async fn run_batch(config: BatchConfig) -> Result<BatchSummary> {
    if config.concurrency == 0 {
        return Err(Error::Config("concurrency must be at least 1".into()));
    }
    let started = std::time::SystemTime::now();
    // A run killed while it wrote a data file left that file's upload open.
    let abandoned = started.checked_sub(config.abandoned_upload_age).unwrap_or(std::time::UNIX_EPOCH);
    abort_uploads(&config, ..abandoned, "aborted the incomplete uploads of an earlier run").await;
    let result = crate::error::retrying("batch run", config.retry_deadline, || run_once(&config)).await;
    if result.is_err() {
        // Data files whose upload failed at its completion step leave their parts behind.
        let since = started - std::time::Duration::from_secs(5);
        abort_uploads(&config, since.., "aborted the incomplete uploads of this run").await;
    }
    result
}

/// Aborts the lake's incomplete multipart uploads started in `started`; a failure to do so is
/// logged, never fatal (S3 lifecycle rules are the last resort).
async fn abort_uploads(config: &BatchConfig, started: impl std::ops::RangeBounds<std::time::SystemTime>, done: &str) {
    match crate::landing::abort_incomplete_uploads(&config.lake, &config.aws, started).await {
        Ok(0) => {}
        Ok(n) => tracing::info!(uploads = n, "{done}"),
        Err(e) => tracing::warn!(error = %e.one_line(), "cannot abort the lake's incomplete uploads"),
    }
}

async fn run_once(config: &BatchConfig) -> Result<BatchSummary> {
    let config = config.clone();
    let started = Instant::now();
    let lake = Lake::new_with(&config.lake, &config.aws).await?.remembering();
    let run_id = format!("{}-{}", chrono::Utc::now().format("%Y%m%dT%H%M%S%.3fZ"), std::process::id());
    let mut summary = BatchSummary { run_id: run_id.clone(), lake: lake.root().to_string(), ..Default::default() };
    if config.only == Some(Stage::Analytics) {
        let t0 = Instant::now();
        summary.analytics = compute_analytics(&lake).await?;
        summary.analytics_secs = t0.elapsed().as_secs_f64();
        summary.elapsed_secs = started.elapsed().as_secs_f64();
        return Ok(summary);
    }
    let store = Store::open_with(&config.landing, &config.aws).await?;

    let mut landed = BTreeMap::new();
    for table in Table::ALL {
        let topic = config.user_id.topic(table);
        let objects = if config.full_refresh {
            landed::list_objects(&store, &topic, None).await?
        } else {
            let folders = landed::partition_folders(&store, &topic).await?;
            let after = read_from(&lake, table, &topic, &folders).await?;
            landed::list_objects(&store, &topic, Some(landed::Resume { folders: &folders, after: &after })).await?
        };
        landed.insert(table, objects);
    }
    if config.full_refresh {
        let partitions: Vec<(String, i32)> =
            landed.iter().flat_map(|(t, objects)| objects.keys().map(|p| (config.user_id.topic(*t), *p))).collect();
        tables::reset_dead_letters(&lake, &partitions).await?;
    }
    let mut landed_tables = Vec::new();
    for table in Table::ALL {
        let raw_rel = raw_path(table);
        let objects = landed.remove(&table).unwrap_or_default();
        let partitions: Vec<i32> = objects.keys().copied().collect();

        let mut ts = TableSummary { table: table.suffix().to_string(), ..Default::default() };
        for attempt in 0.. {
            match land_table(&config, &lake, &store, &run_id, table, &objects, &partitions, &mut ts).await? {
                Written::Committed(_) => break,
                Written::Conflict if attempt < MAX_ATTEMPTS => continue,
                Written::Conflict => return Err(conflict(&raw_rel)),
            }
        }
        summary.decode_secs += ts.decode_secs;
        tracing::debug!(table = %table, peak_rss_mib = peak_rss_mib(), "landed");
        landed_tables.push((table, partitions, ts));
    }

    // Clean tables: the new raw rows merged in, the three tables at once (each is small work,
    // mostly waiting on storage).
    let t0 = Instant::now();
    let cleaned = futures::future::try_join_all(landed_tables.into_iter().map(|(table, partitions, mut ts)| {
        let (config, lake) = (&config, &lake);
        async move {
            let ctx = clean::session();
            let topic = config.user_id.topic(table);
            let merged = merge::update_clean(&ctx, lake, table, &topic, &partitions, config.full_refresh).await?;
            let (rows_before, rows_after) = (merged.rows_before, merged.rows_after);
            ts.clean_rows = rows_after;
            let kept_before = if config.full_refresh { 0 } else { rows_before };
            ts.deduplicated = (kept_before + ts.records_landed).saturating_sub(rows_after);
            tracing::debug!(table = %table, peak_rss_mib = peak_rss_mib(), "cleaned");
            Ok::<_, Error>(ts)
        }
    }))
    .await?;
    summary.clean_secs += t0.elapsed().as_secs_f64();
    let quality = cleaned.clone();
    summary.tables = cleaned;

    if config.only != Some(Stage::Clean) {
        let t0 = Instant::now();
        summary.analytics = compute_analytics(&lake).await?;
        summary.analytics_secs = t0.elapsed().as_secs_f64();
    }
    tables::append_quality(&lake, &run_id, &quality).await?;
    let written = lake_tables(config.only != Some(Stage::Clean));
    summary.maintenance = maintain::maintain(&lake, &written, &config.maintenance()).await?;
    summary.elapsed_secs = started.elapsed().as_secs_f64();
    Ok(summary)
}

/// The tables a batch run writes (the analytics tables when it computes them).
fn lake_tables(with_analytics: bool) -> Vec<String> {
    let mut rels: Vec<String> =
        Table::ALL.iter().flat_map(|t| [raw_path(*t), clean_path(*t), merge::keys_path(*t)]).collect();
    rels.extend([DEAD_LETTERS_PATH.to_string(), QUALITY_PATH.to_string()]);
    if with_analytics {
        rels.extend(analytics::queries().iter().map(|q| analytics::table_path(q.name)));
    }
    rels
}

impl BatchConfig {
    fn maintenance(&self) -> maintain::MaintenanceConfig {
        maintain::MaintenanceConfig {
            compact: self.compact,
            compact_min_files: self.compact_min_files,
            target_file_mib: self.target_file_mib,
            vacuum: self.vacuum,
            vacuum_retention: self.vacuum_retention,
        }
    }
}

/// Reads the objects past the raw table's position (all of them for a full refresh, or where a
/// full refresh reset the dead letters), streams their records into the raw table's data files,
/// commits the dead letters, then commits the records with their positions on top of the
/// snapshot the positions were read from. `Written::Conflict`: another run committed first.
#[allow(clippy::too_many_arguments)]
async fn land_table(
    config: &BatchConfig,
    lake: &Lake,
    store: &Store,
    run_id: &str,
    table: Table,
    objects: &BTreeMap<i32, Vec<landed::Object>>,
    partitions: &[i32],
    ts: &mut TableSummary,
) -> Result<Written> {
    let topic = config.user_id.topic(table);
    let raw_rel = raw_path(table);
    let mut staged = lake.stage(&raw_rel, &raw_schema(table)).await?;
    let raw_done =
        if config.full_refresh { BTreeMap::new() } else { positions(staged.base(), &topic, partitions).await? };
    let raw_done = |p: i32| raw_done.get(&p).copied().flatten().unwrap_or(-1);
    let dl_done = positions(&lake.table(DEAD_LETTERS_PATH).await?, &topic, partitions).await?;
    let todo: Vec<landed::Object> = objects
        .values()
        .flatten()
        .filter(|o| dl_done[&o.partition] == Some(-1) || o.start > raw_done(o.partition))
        .cloned()
        .collect();

    let t0 = Instant::now();
    let mut read = TableSummary { table: ts.table.clone(), ..Default::default() };
    let mut records: Vec<&landed::Object> = Vec::new();
    let mut dead: Vec<(landed::Object, DeadLetter)> = Vec::new();
    let mut seen: Vec<landed::Object> = Vec::new();
    let mut stream =
        std::pin::pin!(landed::decode_stream(store, table, todo.clone(), config.concurrency, config.progress));
    while let Some((object, decoded)) = stream.try_next().await? {
        dead.extend(decoded.dead_letters.iter().map(|d| (object.clone(), d.clone())));
        if object.start > raw_done(object.partition) {
            read.objects_read += 1;
            read.records_read += (decoded.batch.num_rows() + decoded.dead_letters.len()) as u64;
            read.records_landed += decoded.batch.num_rows() as u64;
            decoded.count_nulls(&mut read.nulled);
            staged.write(decoded.batch).await?;
        }
        seen.push(object);
    }
    for o in &todo {
        if o.start > raw_done(o.partition) {
            records.push(o);
        }
    }
    read.decode_secs = t0.elapsed().as_secs_f64();

    // Dead letters first: once the raw table records an object, its dead letters are in.
    for attempt in 0.. {
        let dl_table = lake.table(DEAD_LETTERS_PATH).await?;
        let done = positions(&dl_table, &topic, partitions).await?;
        let fresh = |o: &landed::Object| o.start > done[&o.partition].unwrap_or(-1);
        let rows: Vec<(landed::Object, DeadLetter)> = dead.iter().filter(|(o, _)| fresh(o)).cloned().collect();
        let reset = seen.iter().any(|o| done[&o.partition] == Some(-1));
        if rows.is_empty() && !reset {
            break;
        }
        let txns = last_starts(seen.iter().filter(|o| fresh(o))).map(|(p, v)| txn(app_id(&topic, p), v)).collect();
        let batch = tables::dead_letter_batch(run_id, &topic, &rows);
        let schema = tables::dead_letter_schema();
        match lake
            .write_exclusive(dl_table, DEAD_LETTERS_PATH, &schema, vec![batch], SaveMode::Append, txns, "dead letters")
            .await?
        {
            Written::Committed(_) => {
                read.dead_lettered = rows.len() as u64;
                break;
            }
            Written::Conflict if attempt < MAX_ATTEMPTS => continue,
            Written::Conflict => return Err(conflict(DEAD_LETTERS_PATH)),
        }
    }

    if records.is_empty() && !config.full_refresh {
        *ts = TableSummary { dead_lettered: read.dead_lettered, decode_secs: read.decode_secs, ..read };
        return Ok(Written::Committed(staged.base().clone()));
    }
    let txns = last_starts(records.iter().copied()).map(|(p, v)| txn(app_id(&topic, p), v)).collect();
    let mode = if config.full_refresh { SaveMode::Overwrite } else { SaveMode::Append };
    let written = staged.commit_exclusive(mode, txns, "landed records").await?;
    if matches!(written, Written::Committed(_)) {
        *ts = read;
    }
    Ok(written)
}

/// Analytics tables computed and written at once.
const ANALYTICS_AT_ONCE: usize = 3;

/// Recomputes the nine analytics tables from the clean tables (one overwrite commit each).
pub async fn compute_analytics(lake: &Lake) -> Result<Vec<AnalyticsTable>> {
    let ctx = clean::session();
    for table in Table::ALL {
        if !lake.register(&ctx, table.suffix(), &clean_path(table)).await? {
            let empty = MemTable::try_new(clean::clean_schema(table), vec![vec![]])
                .map_err(Error::datafusion("empty table"))?;
            ctx.register_table(table.suffix(), Arc::new(empty)).map_err(Error::datafusion("empty table"))?;
        }
    }
    // A few at once: each is a small query and one commit, mostly waiting on storage.
    let each = futures::stream::iter(analytics::queries()).map(|query| {
        let ctx = &ctx;
        async move {
            let batches = query.run(ctx).await.map_err(Error::datafusion(format!("analytics {}", query.name)))?;
            let rows = tables::to_json_rows(&batches)?;
            lake.write(
                &analytics::table_path(query.name),
                query.schema(),
                batches,
                SaveMode::Overwrite,
                vec![],
                "analytics",
            )
            .await?;
            Ok::<_, Error>(AnalyticsTable { name: query.name.to_string(), question: query.question.to_string(), rows })
        }
    });
    let out: Vec<AnalyticsTable> = each.buffered(ANALYTICS_AT_ONCE).try_collect().await?;
    Ok(out)
}
