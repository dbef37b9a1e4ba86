//! The lake: Delta tables under one root (a local directory or `s3://bucket/prefix`), and the
//! helpers every job uses to open, read and write them. Exactly-once bookkeeping rides in the
//! commits themselves (`txn` actions), never in side files.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Once};

use deltalake::arrow::array::RecordBatch;
use deltalake::arrow::datatypes::SchemaRef;
use deltalake::datafusion::prelude::SessionContext;
use deltalake::kernel::transaction::{CommitBuilder, CommitProperties, TransactionError};
use deltalake::kernel::Action;
use deltalake::kernel::Transaction;
use deltalake::operations::write::SchemaMode;
use deltalake::parquet::basic::Compression;
use deltalake::parquet::file::properties::WriterProperties;
use deltalake::protocol::DeltaOperation;
use deltalake::protocol::SaveMode;
use deltalake::writer::{DeltaWriter, RecordBatchWriter};
use deltalake::{DeltaTable, DeltaTableBuilder, DeltaTableError};
use futures::TryStreamExt;
use url::Url;

use crate::config::AwsConfig;
use crate::error::{Error, Result};

static REGISTER: Once = Once::new();

/// Where the lake lives.
#[derive(Clone)]
pub struct Lake {
    root: Url,
    /// The bucket's object store of an S3 lake (credentials from the one AWS chain), shared by
    /// every table opened here; `None` for a local lake.
    store: Option<Arc<dyn deltalake::ObjectStore>>,
    /// The tables opened so far, when [`Lake::remembering`]: a table opened again is brought up
    /// to date from the state it was left in (only the commits since are read) instead of being
    /// loaded from its last checkpoint.
    opened: Option<Arc<Mutex<HashMap<String, DeltaTable>>>>,
}

impl std::fmt::Debug for Lake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lake").field("root", &self.root.as_str()).finish_non_exhaustive()
    }
}

fn delta_error(context: impl Into<String>) -> impl FnOnce(DeltaTableError) -> Error {
    let context = context.into();
    move |source| Error::Delta { context, source: Box::new(source) }
}

impl Lake {
    /// Opens a lake root: `s3://bucket/prefix` (AWS settings from the environment and the
    /// credential chain, including `AWS_ENDPOINT_URL` and `~/.aws` profiles) or a local directory
    /// (created if missing).
    pub async fn new(root: &str) -> Result<Self> {
        Self::new_with(root, &AwsConfig::default()).await
    }

    /// Opens a lake root with explicit AWS settings; unset ones come from the environment.
    pub async fn new_with(root: &str, aws: &AwsConfig) -> Result<Self> {
        REGISTER.call_once(|| deltalake::aws::register_handlers(None));
        if let Some((bucket, _)) = crate::aws::split_s3_url(root) {
            let store = crate::aws::s3_store(bucket, aws).await?;
            let root = Url::parse(&format!("{}/", root.trim_end_matches('/')))
                .map_err(|e| Error::Config(format!("lake {root:?}: {e}")))?;
            return Ok(Lake { root, store: Some(store), opened: None });
        }
        let path = root.strip_prefix("file://").unwrap_or(root);
        std::fs::create_dir_all(path).map_err(Error::io(format!("create directory {path}")))?;
        let abs = std::fs::canonicalize(path).map_err(Error::io(format!("resolve {path}")))?;
        let root =
            Url::from_directory_path(&abs).map_err(|_| Error::Config(format!("lake {root:?} is not a usable path")))?;
        Ok(Lake { root, store: None, opened: None })
    }

    /// This lake, remembering the tables it opens: opening one again reads only the commits
    /// made since (what a job that opens the same tables many times wants). Every opening still
    /// returns the table's latest version.
    pub fn remembering(self) -> Self {
        Lake { opened: Some(Arc::default()), ..self }
    }

    pub fn root(&self) -> &Url {
        &self.root
    }

    /// URL of a table given its path under the root (`batch/pin`).
    pub fn table_url(&self, rel: &str) -> Result<Url> {
        let url = self
            .root
            .join(&format!("{}/", rel.trim_matches('/')))
            .map_err(|e| Error::Config(format!("table path {rel:?}: {e}")))?;
        if url.scheme() == "file" {
            if let Ok(path) = url.to_file_path() {
                std::fs::create_dir_all(&path).map_err(Error::io(format!("create directory {}", path.display())))?;
            }
        }
        Ok(url)
    }

    /// The table at `rel`, loaded if it exists (`version()` is `None` if it does not yet).
    pub async fn table(&self, rel: &str) -> Result<DeltaTable> {
        let known = self.opened.as_ref().and_then(|o| o.lock().expect("opened tables").get(rel).cloned());
        if let Some(mut table) = known {
            if let Err(e) = table.update_incremental(None).await {
                return Err(load_error(&table, rel, e).await);
            }
            self.remember(rel, &table);
            return Ok(table);
        }
        let table = self.open(rel).await?;
        self.remember(rel, &table);
        Ok(table)
    }

    fn remember(&self, rel: &str, table: &DeltaTable) {
        if let (Some(opened), Some(_)) = (&self.opened, table.version()) {
            opened.lock().expect("opened tables").insert(rel.to_string(), table.clone());
        }
    }

    async fn open(&self, rel: &str) -> Result<DeltaTable> {
        let url = self.table_url(rel)?;
        let mut builder = DeltaTableBuilder::from_url(url.clone()).map_err(delta_error(format!("open table {rel}")))?;
        if let Some(store) = &self.store {
            builder = builder.with_storage_backend(store.clone(), url);
        }
        let mut table = builder.build().map_err(delta_error(format!("open table {rel}")))?;
        if table.verify_deltatable_existence().await.map_err(delta_error(format!("open table {rel}")))? {
            if let Err(e) = table.load().await {
                return Err(load_error(&table, rel, e).await);
            }
        }
        Ok(table)
    }

    /// The table at `rel` if it exists.
    pub async fn existing(&self, rel: &str) -> Result<Option<DeltaTable>> {
        let table = self.table(rel).await?;
        Ok(table.version().is_some().then_some(table))
    }

    /// Writes batches in one commit, with the given `txn` actions and commit metadata, rebasing
    /// over concurrent commits that do not conflict. An empty input still creates (or empties,
    /// with overwrite) the table with `schema`.
    pub async fn write(
        &self,
        rel: &str,
        schema: &SchemaRef,
        batches: Vec<RecordBatch>,
        mode: SaveMode,
        txns: Vec<Transaction>,
        operation: &str,
    ) -> Result<DeltaTable> {
        let table = self.table(rel).await?;
        match write_on(table, rel, schema, batches, mode, txns, operation, false).await? {
            Written::Committed(t) => Ok(t),
            Written::Conflict => unreachable!("only exclusive writes report conflicts"),
        }
    }

    /// Writes on top of exactly the snapshot `base` was loaded at: if another writer committed
    /// since, nothing is written and `Written::Conflict` is returned, so the caller can re-read
    /// its positions and try again. This is what makes `txn` bookkeeping safe with several writers.
    #[allow(clippy::too_many_arguments)]
    pub async fn write_exclusive(
        &self,
        base: DeltaTable,
        rel: &str,
        schema: &SchemaRef,
        batches: Vec<RecordBatch>,
        mode: SaveMode,
        txns: Vec<Transaction>,
        operation: &str,
    ) -> Result<Written> {
        write_on(base, rel, schema, batches, mode, txns, operation, true).await
    }

    /// Starts a streaming write to the table at `rel` (created empty with `schema` if missing):
    /// batches are written to data files as they come, and nothing is visible until
    /// [`Staged::commit_exclusive`].
    pub async fn stage(&self, rel: &str, schema: &SchemaRef) -> Result<Staged> {
        let mut table = self.table(rel).await?;
        if table.version().is_none() {
            if let Err(e) = self.write(rel, schema, vec![], SaveMode::Append, vec![], "create").await {
                // Another writer may have created it at the same moment.
                table = self.table(rel).await?;
                if table.version().is_none() {
                    return Err(e);
                }
            }
            table = self.table(rel).await?;
        }
        let writer = RecordBatchWriter::for_table(&table)
            .map_err(delta_error(format!("write table {rel}")))?
            .with_target_file_size(STAGED_FILE_BYTES)
            .with_writer_properties(
                WriterProperties::builder()
                    .set_compression(Compression::SNAPPY)
                    .set_max_row_group_row_count(Some(STAGED_ROW_GROUP_ROWS))
                    .build(),
            );
        Ok(Staged { base: table, writer, rel: rel.to_string(), rows: 0, adds: Vec::new() })
    }

    /// Upserts `source` (at most one row per key) into `target` on `predicate` (source alias `s`,
    /// target alias `t`): matched rows get every one of `columns` from the source, the others are
    /// inserted. One commit with `txns`, on top of exactly `target`'s snapshot: `Written::Conflict`
    /// if another writer committed since.
    #[allow(clippy::too_many_arguments)]
    pub async fn merge(
        &self,
        target: DeltaTable,
        rel: &str,
        source: deltalake::datafusion::prelude::DataFrame,
        predicate: deltalake::datafusion::prelude::Expr,
        columns: &[String],
        txns: Vec<Transaction>,
        operation: &str,
    ) -> Result<Written> {
        use deltalake::datafusion::prelude::col;
        let source_col = |c: &str| col(deltalake::datafusion::common::Column::new(Some("s"), c));
        let merge = target
            .merge(source, predicate)
            .with_source_alias("s")
            .with_target_alias("t")
            .with_commit_properties(commit_properties(txns, operation, true))
            .when_matched_update(|u| columns.iter().fold(u, |u, c| u.update(c.as_str(), source_col(c))))
            .and_then(|m| {
                m.when_not_matched_insert(|i| columns.iter().fold(i, |i, c| i.set(c.as_str(), source_col(c))))
            })
            .map_err(delta_error(format!("merge into {rel}")))?;
        match merge.await {
            Ok((table, _)) => Ok(Written::Committed(table)),
            Err(e) if lost_race(&e, rel) => Ok(Written::Conflict),
            Err(e) => Err(delta_error(format!("merge into {rel}"))(e)),
        }
    }

    /// Registers the table at `rel` in a DataFusion session under `name`. Returns false if the
    /// table does not exist.
    pub async fn register(&self, ctx: &SessionContext, name: &str, rel: &str) -> Result<bool> {
        let Some(table) = self.existing(rel).await? else {
            return Ok(false);
        };
        self.register_table(ctx, name, &table).await?;
        Ok(true)
    }

    /// Registers a loaded table (at the snapshot it was loaded at) under `name`.
    pub async fn register_table(&self, ctx: &SessionContext, name: &str, table: &DeltaTable) -> Result<()> {
        table.update_datafusion_session(&ctx.state()).map_err(delta_error(format!("register {name}")))?;
        let provider = table.table_provider().await.map_err(Error::datafusion(format!("read {name}")))?;
        ctx.register_table(name, provider).map_err(Error::datafusion(format!("register {name}")))?;
        Ok(())
    }
}

/// The first commit file of the table's log that is not valid JSON lines, described with its
/// path, line and parse error: the file a user must look at when a table cannot be loaded.
async fn corrupt_commit(table: &DeltaTable) -> Option<String> {
    use object_store::ObjectStoreExt;
    let store = table.log_store().object_store(None);
    let log = deltalake::Path::from("_delta_log");
    let mut files: Vec<deltalake::Path> = store
        .list(Some(&log))
        .try_filter_map(|meta| async move { Ok(meta.location.as_ref().ends_with(".json").then_some(meta.location)) })
        .try_collect()
        .await
        .ok()?;
    files.sort();
    for file in files {
        let data = store.get(&file).await.ok()?.bytes().await.ok()?;
        for (i, line) in data.split(|b| *b == b'\n').enumerate() {
            if line.trim_ascii().is_empty() {
                continue;
            }
            if let Err(e) = serde_json::from_slice::<serde::de::IgnoredAny>(line) {
                return Some(format!("corrupt commit file {file} (line {}): {e}", i + 1));
            }
        }
    }
    None
}

/// Last version recorded by `app_id` in the table's `txn` actions.
pub async fn txn_version(table: &DeltaTable, app_id: &str) -> Result<Option<i64>> {
    if table.version().is_none() {
        return Ok(None);
    }
    let snapshot = table.snapshot().map_err(delta_error("read snapshot"))?;
    snapshot
        .transaction_version(table.log_store().as_ref(), app_id)
        .await
        .map_err(delta_error(format!("read txn {app_id}")))
}

pub fn txn(app_id: impl Into<String>, version: i64) -> Transaction {
    Transaction::new(app_id.into(), version)
}

/// Shared handle type for tables registered in sessions.
pub type TableRef = Arc<DeltaTable>;

/// Commit properties of every pipeline write: its `txn` actions, the operation in the commit
/// metadata, and for exclusive writes no rebasing over other writers' commits.
fn commit_properties(txns: Vec<Transaction>, operation: &str, exclusive: bool) -> CommitProperties {
    let commit = CommitProperties::default()
        .with_application_transactions(txns)
        .with_metadata([("pinpipe.operation".to_string(), serde_json::Value::from(operation))]);
    if exclusive {
        commit.with_max_retries(0)
    } else {
        commit
    }
}

/// Whether a failed exclusive commit lost to another writer (rather than failing outright).
fn lost_race(e: &DeltaTableError, rel: &str) -> bool {
    let lost = matches!(
        e,
        DeltaTableError::Transaction { source: TransactionError::MaxCommitAttempts(_) }
            | DeltaTableError::VersionAlreadyExists(_)
    );
    if lost {
        tracing::info!(table = rel, "another writer committed first; retrying");
    }
    lost
}

/// Outcome of an exclusive write.
pub enum Written {
    Committed(DeltaTable),
    /// Another writer committed first; nothing was written.
    Conflict,
}

#[allow(clippy::too_many_arguments)]
async fn write_on(
    table: DeltaTable,
    rel: &str,
    schema: &SchemaRef,
    batches: Vec<RecordBatch>,
    mode: SaveMode,
    txns: Vec<Transaction>,
    operation: &str,
    exclusive: bool,
) -> Result<Written> {
    let batches =
        if batches.iter().all(|b| b.num_rows() == 0) { vec![RecordBatch::new_empty(schema.clone())] } else { batches };
    let commit = commit_properties(txns, operation, exclusive);
    // Merge: a table written by an older version gains the columns added since (as nullable).
    let write = table.write(batches).with_save_mode(mode).with_schema_mode(SchemaMode::Merge);
    match write.with_commit_properties(commit).await {
        Ok(t) => Ok(Written::Committed(t)),
        Err(e) if exclusive && lost_race(&e, rel) => Ok(Written::Conflict),
        Err(e) => Err(delta_error(format!("write table {rel}"))(e)),
    }
}

/// Rows per Parquet row group of a streaming write: the writer holds one row group in memory.
const STAGED_ROW_GROUP_ROWS: usize = 64 * 1024;

/// Target size of the data files of a streaming write.
const STAGED_FILE_BYTES: u64 = 32 * 1024 * 1024;

/// A streaming write in progress: data files written, not yet committed.
pub struct Staged {
    base: DeltaTable,
    writer: RecordBatchWriter,
    rel: String,
    rows: u64,
    /// Files already written (flushed from the writer's buffer), waiting for the commit.
    adds: Vec<Action>,
}

impl Staged {
    /// The snapshot the write will commit on top of.
    pub fn base(&self) -> &DeltaTable {
        &self.base
    }

    pub fn rows(&self) -> u64 {
        self.rows
    }

    pub async fn write(&mut self, batch: RecordBatch) -> Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        self.rows += batch.num_rows() as u64;
        self.writer.write(batch).await.map_err(delta_error(format!("write table {}", self.rel)))?;
        if self.writer.buffer_len() as u64 >= STAGED_FILE_BYTES {
            let written = self.writer.flush().await.map_err(delta_error(format!("write table {}", self.rel)))?;
            self.adds.extend(written.into_iter().map(Action::Add));
        }
        Ok(())
    }

    /// Commits the written files (replacing every current file with `Overwrite`) with `txns`,
    /// on top of exactly the base snapshot: `Written::Conflict` if another writer committed since.
    pub async fn commit_exclusive(
        mut self,
        mode: SaveMode,
        txns: Vec<Transaction>,
        operation: &str,
    ) -> Result<Written> {
        let rel = self.rel.clone();
        let mut actions: Vec<Action> = std::mem::take(&mut self.adds);
        let last = self.writer.flush().await.map_err(delta_error(format!("write table {rel}")))?;
        actions.extend(last.into_iter().map(Action::Add));
        let snapshot = self.base.snapshot().map_err(delta_error(format!("read table {rel}")))?;
        if mode == SaveMode::Overwrite {
            let current: Vec<_> = snapshot
                .snapshot()
                .file_views(self.base.log_store().as_ref(), None)
                .try_collect()
                .await
                .map_err(delta_error(format!("list files of {rel}")))?;
            actions.extend(current.iter().map(|f| Action::Remove(f.remove_action(true))));
        }
        let properties = commit_properties(txns, operation, true);
        let operation = DeltaOperation::Write { mode, partition_by: None, predicate: None };
        let result = CommitBuilder::from(properties)
            .with_actions(actions)
            .build(Some(snapshot), self.base.log_store(), operation)
            .await;
        match result {
            Ok(_) => Ok(Written::Committed(self.base)),
            Err(e) if lost_race(&e, &rel) => Ok(Written::Conflict),
            Err(e) => Err(delta_error(format!("commit table {rel}"))(e)),
        }
    }
}

/// Why `table` could not be loaded: the commit file that is not a commit, when one is.
async fn load_error(table: &DeltaTable, rel: &str, e: DeltaTableError) -> Error {
    match corrupt_commit(table).await {
        Some(bad) => Error::Delta { context: format!("load table {rel}: {bad}"), source: Box::new(e) },
        None => delta_error(format!("load table {rel}"))(e),
    }
}

#[cfg(test)]
mod tests {
    use deltalake::arrow::array::Int64Array;
    use deltalake::arrow::datatypes::{DataType, Field, Schema};

    use super::*;

    async fn file_count(table: &DeltaTable) -> usize {
        let snapshot = table.snapshot().unwrap();
        let files: Vec<_> =
            snapshot.snapshot().file_views(table.log_store().as_ref(), None).try_collect().await.unwrap();
        files.len()
    }

    fn rows(values: &[i64]) -> (SchemaRef, Vec<RecordBatch>) {
        let schema: SchemaRef = Arc::new(Schema::new(vec![Field::new("n", DataType::Int64, true)]));
        let batch = RecordBatch::try_new(schema.clone(), vec![Arc::new(Int64Array::from(values.to_vec()))]).unwrap();
        (schema, vec![batch])
    }

    #[tokio::test]
    async fn a_remembered_table_opened_again_has_every_commit_made_since_by_anyone() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_str().unwrap();
        let remembering = Lake::new_with(root, &AwsConfig::default()).await.unwrap().remembering();
        let other = Lake::new_with(root, &AwsConfig::default()).await.unwrap();

        assert_eq!(remembering.table("t").await.unwrap().version(), None, "no table yet");
        let (schema, batches) = rows(&[1, 2]);
        remembering.write("t", &schema, batches, SaveMode::Append, vec![], "test").await.unwrap();
        assert_eq!(remembering.table("t").await.unwrap().version(), Some(0));

        // Another writer (another process, in real life) appends, then overwrites.
        let (schema, batches) = rows(&[3]);
        other.write("t", &schema, batches, SaveMode::Append, vec![], "test").await.unwrap();
        let table = remembering.table("t").await.unwrap();
        assert_eq!(table.version(), Some(1));
        assert_eq!(file_count(&table).await, 2);
        let (schema, batches) = rows(&[4]);
        other.write("t", &schema, batches, SaveMode::Overwrite, vec![], "test").await.unwrap();
        let table = remembering.table("t").await.unwrap();
        assert_eq!(table.version(), Some(2));
        assert_eq!(file_count(&table).await, 1, "the overwritten files are gone");
    }
}
