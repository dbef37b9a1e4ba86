//! Table upkeep at the end of a batch run: small files compacted (delta-rs `optimize`), a
//! checkpoint every few commits, and files no snapshot within the retention period needs deleted
//! (delta-rs `vacuum`: the replaced files each run, and with each checkpoint a full vacuum that
//! also finds the files of writes killed before their commit).
//!
//! Both are safe at any moment: a compaction is one commit that replaces files with files holding
//! the same rows (a run killed during it leaves only uncommitted files, which a later vacuum
//! removes), and vacuum deletes only files that no version younger than the retention period
//! references, so a reader that started a query within that period still finds its files.

use std::num::NonZeroU64;
use std::time::{Duration, Instant};

use deltalake::kernel::transaction::CommitProperties;
use deltalake::operations::vacuum::VacuumMode;
use futures::TryStreamExt;
use serde::Serialize;

use crate::delta::Lake;
use crate::error::{Error, Result};

/// How a batch run looks after its tables (from [`super::BatchConfig`]).
#[derive(Debug, Clone)]
pub struct MaintenanceConfig {
    pub compact: bool,
    pub compact_min_files: usize,
    pub target_file_mib: u64,
    pub vacuum: bool,
    pub vacuum_retention: Duration,
}

/// What upkeep did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct MaintenanceSummary {
    /// Tables compacted, and the files they had before and after.
    pub tables_compacted: u64,
    pub files_compacted: u64,
    pub files_written: u64,
    /// Files deleted by vacuum.
    pub files_vacuumed: u64,
    pub secs: f64,
}

/// Compacts and vacuums the tables at `rels` (missing ones are skipped), a few at a time: each
/// table's upkeep is mostly waiting on its log and files.
pub async fn maintain(lake: &Lake, rels: &[String], config: &MaintenanceConfig) -> Result<MaintenanceSummary> {
    use futures::StreamExt;
    let started = Instant::now();
    let mut summary = MaintenanceSummary::default();
    // The futures made first, not in a stream's closure over borrowed names: the compiler cannot
    // prove such a stream `Send`, which the Python front's jobs must be.
    let tables: Vec<_> = rels.iter().map(|rel| maintain_table(lake, rel, config)).collect();
    let mut each = futures::stream::iter(tables).buffer_unordered(TABLES_AT_ONCE);
    while let Some(one) = each.next().await {
        let one = one?;
        summary.tables_compacted += one.tables_compacted;
        summary.files_compacted += one.files_compacted;
        summary.files_written += one.files_written;
        summary.files_vacuumed += one.files_vacuumed;
    }
    summary.secs = started.elapsed().as_secs_f64();
    Ok(summary)
}

/// Tables looked after at once.
const TABLES_AT_ONCE: usize = 4;

async fn maintain_table(lake: &Lake, rel: &str, config: &MaintenanceConfig) -> Result<MaintenanceSummary> {
    let mut summary = MaintenanceSummary::default();
    let target = config.target_file_mib.max(1) * 1024 * 1024;
    let Some(mut table) = lake.existing(rel).await? else { return Ok(summary) };
    if config.compact && config.compact_min_files > 0 {
        let snapshot = table.snapshot().map_err(|e| delta(rel, "read", e))?;
        let small = snapshot
            .snapshot()
            .file_views(table.log_store().as_ref(), None)
            .try_fold(0usize, |n, f| async move { Ok(n + usize::from((f.size() as u64) < target)) })
            .await
            .map_err(|e| delta(rel, "list the files of", e))?;
        if small >= config.compact_min_files.max(2) {
            tracing::info!(table = %rel, small_files = small, "compacting");
            let commit = CommitProperties::default()
                .with_metadata([("pinpipe.operation".to_string(), serde_json::Value::from("compact"))]);
            let (t, metrics) = table
                .optimize()
                .with_target_size(NonZeroU64::new(target).expect("target is at least 1 MiB"))
                .with_commit_properties(commit)
                .await
                .map_err(|e| delta(rel, "compact", e))?;
            table = t;
            if metrics.num_files_removed > 0 {
                summary.tables_compacted += 1;
                summary.files_compacted += metrics.num_files_removed;
                summary.files_written += metrics.num_files_added;
            }
        }
    }
    // Every few commits a checkpoint, and then a full vacuum (which lists the table's files to
    // find those of killed writes too); in between, vacuum removes only replaced files.
    let full = checkpoint(&table, rel).await?;
    if config.vacuum {
        let retention = chrono::Duration::from_std(config.vacuum_retention)
            .map_err(|_| Error::Config("vacuum_retention is too long".into()))?;
        let (_, metrics) = table
            .vacuum()
            .with_retention_period(retention)
            .with_enforce_retention_duration(false)
            .with_mode(if full { VacuumMode::Full } else { VacuumMode::Lite })
            .await
            .map_err(|e| delta(rel, "vacuum", e))?;
        if !metrics.files_deleted.is_empty() {
            tracing::debug!(table = %rel, files = metrics.files_deleted.len(), "vacuumed");
        }
        summary.files_vacuumed += metrics.files_deleted.len() as u64;
    }
    Ok(summary)
}

/// Commits a table may gather past its last checkpoint before the run writes one: every opening
/// of a table replays the commits since its last checkpoint, so this bounds what a run pays for
/// the history of the log (delta-rs writes one only every 100 commits by itself).
const COMMITS_PER_CHECKPOINT: i64 = 10;

/// Writes a checkpoint if the table is due one; true if it was.
async fn checkpoint(table: &deltalake::DeltaTable, rel: &str) -> Result<bool> {
    use object_store::ObjectStoreExt;
    let Some(version) = table.version() else { return Ok(false) };
    let store = table.log_store().object_store(None);
    let last = match store.get(&deltalake::Path::from("_delta_log/_last_checkpoint")).await {
        Ok(found) => found
            .bytes()
            .await
            .ok()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .and_then(|v| v["version"].as_i64())
            .unwrap_or(-1),
        Err(_) => -1,
    };
    if version as i64 - last >= COMMITS_PER_CHECKPOINT {
        tracing::debug!(table = %rel, version, "checkpoint");
        deltalake::checkpoints::create_checkpoint(table, None).await.map_err(|e| delta(rel, "checkpoint", e))?;
        return Ok(true);
    }
    Ok(false)
}

fn delta(rel: &str, what: &str, source: deltalake::DeltaTableError) -> Error {
    Error::Delta { context: format!("{what} table {rel}"), source: Box::new(source) }
}
