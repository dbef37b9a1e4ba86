//! The stream tables (`<lake>/stream/<uid>_<t>_table`, `<lake>/stream/_dead_letters`), the
//! cleaning of one micro-batch into them, and the shard positions their commits carry.
//!
//! Every commit that consumed records of a shard carries, in the same commit as the rows:
//! a `txn` action `pinpipe-stream:<stream>/<shard>` whose version is the commit's own table
//! version, and in its `commitInfo` under `pinpipe.stream.positions` the shard's last sequence
//! number consumed (and whether the shard is finished). A restart reads the `txn` version from the
//! snapshot and the position from that one commit: O(shards), with no side file. A writer commits
//! only on top of the snapshot it checked (no rebase), after checking that each of its shards'
//! `txn` is still the one it last saw: a commit that lost a race is never applied twice.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use deltalake::arrow::array::{ArrayRef, BinaryBuilder, RecordBatch, StringBuilder, TimestampMicrosecondBuilder};
use deltalake::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use deltalake::datafusion::datasource::MemTable;
use deltalake::datafusion::prelude::SessionContext;
use deltalake::kernel::transaction::{CommitBuilder, CommitProperties, TransactionError};
use deltalake::kernel::{Action, Transaction};
use deltalake::protocol::{DeltaOperation, SaveMode};
use deltalake::writer::{DeltaWriter, RecordBatchWriter};
use deltalake::{DeltaTable, DeltaTableError};
use serde::{Deserialize, Serialize};

use crate::clean::decode::decode_records;
use crate::clean::raw::timestamp_type;
use crate::clean::{clean_columns, clean_schema, conform};
use crate::delta::Lake;
use crate::error::{Error, Result};
use crate::kinesis::ShardRecord;
use crate::model::Table;
use crate::names::UserId;

/// The dead letters of the three streams.
pub const DEAD_LETTERS_PATH: &str = "stream/_dead_letters";

/// Key of the shard positions in a commit's `commitInfo`.
pub const POSITIONS_KEY: &str = "pinpipe.stream.positions";

/// Lake path of a stream table: `stream/<uid>_pin_table`.
pub fn table_path(user: &UserId, table: Table) -> String {
    format!("stream/{}", user.stream_table(table))
}

/// The `txn` application id of one shard: `pinpipe-stream:<stream>/<shard>`.
pub fn app_id(stream: &str, shard: &str) -> String {
    format!("pinpipe-stream:{stream}/{shard}")
}

/// A stream table's schema: the clean table's columns, then where the record came from.
pub fn stream_schema(table: Table) -> SchemaRef {
    let mut fields: Vec<Field> = clean_schema(table).fields().iter().map(|f| f.as_ref().clone()).collect();
    fields.push(Field::new("shard_id", DataType::Utf8, false));
    fields.push(Field::new("sequence_number", DataType::Utf8, false));
    fields.push(Field::new("arrival_time", timestamp_type(), true));
    Arc::new(Schema::new(fields))
}

/// Schema of `stream/_dead_letters`.
pub fn dead_letter_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("stream", DataType::Utf8, false),
        Field::new("shard_id", DataType::Utf8, false),
        Field::new("sequence_number", DataType::Utf8, false),
        Field::new("arrival_time", timestamp_type(), true),
        Field::new("partition_key", DataType::Utf8, true),
        Field::new("raw", DataType::Utf8, false),
        Field::new("raw_bytes", DataType::Binary, false),
        Field::new("error", DataType::Utf8, false),
    ]))
}

/// Where a shard's reading stands, as a commit records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Position {
    /// The last sequence number consumed.
    pub sequence_number: Option<String>,
    /// The shard is closed and every record of it has been consumed.
    #[serde(default)]
    pub finished: bool,
}

/// A shard's position in one table and the `txn` version that recorded it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    pub txn_version: i64,
    pub position: Position,
}

/// Positions recorded in `table` for the given shard keys (`<stream>/<shard>`).
pub async fn recorded_positions(table: &DeltaTable, keys: &[String]) -> Result<HashMap<String, Recorded>> {
    let mut out = HashMap::new();
    if table.version().is_none() {
        return Ok(out);
    }
    let mut commits: HashMap<i64, serde_json::Map<String, serde_json::Value>> = HashMap::new();
    for key in keys {
        let (stream, shard) = key.split_once('/').unwrap_or((key.as_str(), ""));
        let Some(version) = crate::delta::txn_version(table, &app_id(stream, shard)).await? else { continue };
        if let std::collections::hash_map::Entry::Vacant(slot) = commits.entry(version) {
            slot.insert(commit_positions(table, version).await?);
        }
        let position = commits[&version]
            .get(key)
            .and_then(|v| serde_json::from_value::<Position>(v.clone()).ok())
            .ok_or_else(|| {
                Error::Conflict(format!(
                    "commit {version} of {} records shard {key} in its txn but not its position in {POSITIONS_KEY}",
                    table.table_url()
                ))
            })?;
        out.insert(key.clone(), Recorded { txn_version: version, position });
    }
    Ok(out)
}

/// The `pinpipe.stream.positions` of commit `version`.
async fn commit_positions(table: &DeltaTable, version: i64) -> Result<serde_json::Map<String, serde_json::Value>> {
    let what = || format!("read commit {version} of {}", table.table_url());
    let bytes = table
        .log_store()
        .read_commit_entry(version as deltalake::kernel::Version)
        .await
        .map_err(|e| Error::Delta { context: what(), source: Box::new(e) })?
        .ok_or_else(|| {
            Error::Conflict(format!(
                "{}: the commit file is gone (log retention cleaned it up); positions cannot be read",
                what()
            ))
        })?;
    for line in bytes.split(|b| *b == b'\n') {
        let Ok(serde_json::Value::Object(action)) = serde_json::from_slice::<serde_json::Value>(line) else { continue };
        if let Some(serde_json::Value::Object(info)) = action.get("commitInfo") {
            if let Some(serde_json::Value::Object(positions)) = info.get(POSITIONS_KEY) {
                return Ok(positions.clone());
            }
        }
    }
    Ok(serde_json::Map::new())
}

/// The records of one shard consumed by a micro-batch.
#[derive(Debug, Clone)]
pub struct ShardBatch {
    pub stream: String,
    pub shard_id: String,
    pub records: Vec<ShardRecord>,
    /// The shard reported its end: it is finished once this batch is committed.
    pub finished: bool,
}

impl ShardBatch {
    pub fn key(&self) -> String {
        format!("{}/{}", self.stream, self.shard_id)
    }

    /// The position after this batch (`start` if it holds no record).
    pub fn end_position(&self, start: Option<&str>) -> Position {
        Position {
            sequence_number: self.records.last().map(|r| r.sequence_number.clone()).or(start.map(str::to_string)),
            finished: self.finished,
        }
    }
}

/// A micro-batch of one table, decoded and cleaned.
pub struct Cleaned {
    pub rows: Vec<RecordBatch>,
    pub row_count: usize,
    pub dead_letters: Option<RecordBatch>,
    pub dead_letter_count: usize,
    /// The shards (`<stream>/<shard>`) the dead letters came from.
    pub dead_letter_keys: Vec<String>,
    /// `column: cause` counts of values the cleaning turned to null.
    pub quality: BTreeMap<String, u64>,
}

/// Decodes and cleans the records of some shards of one table's stream, with the cleaning code
/// batch uses (no deduplication: every record is a row). Dead letters for which
/// `keep_dead_letter` says no (already committed by an earlier attempt) are left out.
pub async fn clean_batch(
    ctx: &SessionContext,
    table: Table,
    shards: &[&ShardBatch],
    keep_dead_letter: impl Fn(&ShardBatch, &ShardRecord) -> bool,
) -> Result<Cleaned> {
    let records: Vec<(&ShardBatch, &ShardRecord)> =
        shards.iter().flat_map(|s| s.records.iter().map(move |r| (*s, r))).collect();
    let decoded = decode_records(table, records.iter().map(|(_, r)| r.data.as_slice()));
    let mut quality = BTreeMap::new();
    decoded.count_nulls(&mut quality);

    // Where each decoded row came from, by its `_offset` (the record's index in `records`).
    let offsets = decoded
        .batch
        .column_by_name(crate::clean::raw::OFFSET_COLUMN)
        .and_then(|c| c.as_any().downcast_ref::<deltalake::arrow::array::Int64Array>())
        .expect("raw batches have an int64 _offset column")
        .clone();
    let mut shard_ids = StringBuilder::new();
    let mut sequences = StringBuilder::new();
    let mut arrivals = TimestampMicrosecondBuilder::new().with_timezone("UTC");
    for i in offsets.values() {
        let (shard, record) = records[*i as usize];
        shard_ids.append_value(&shard.shard_id);
        sequences.append_value(&record.sequence_number);
        arrivals.append_value(record.arrival_micros);
    }
    let mut fields: Vec<Field> = decoded.batch.schema().fields().iter().map(|f| f.as_ref().clone()).collect();
    let mut columns: Vec<ArrayRef> = decoded.batch.columns().to_vec();
    for (name, array, ty) in [
        ("shard_id", Arc::new(shard_ids.finish()) as ArrayRef, DataType::Utf8),
        ("sequence_number", Arc::new(sequences.finish()) as ArrayRef, DataType::Utf8),
        ("arrival_time", Arc::new(arrivals.finish()) as ArrayRef, timestamp_type()),
    ] {
        fields.push(Field::new(name, ty, true));
        columns.push(array);
    }
    let input = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)
        .map_err(|e| Error::Config(format!("assemble a micro-batch: {e}")))?;
    let row_count = input.num_rows();

    let rows = if row_count == 0 {
        Vec::new()
    } else {
        let name = format!("stream_input_{}", table.suffix());
        let provider = MemTable::try_new(input.schema(), vec![vec![input]])
            .map_err(Error::datafusion("register a micro-batch"))?;
        ctx.register_table(name.as_str(), Arc::new(provider)).map_err(Error::datafusion("register a micro-batch"))?;
        let sql = format!(
            "SELECT {}, shard_id, sequence_number, arrival_time FROM \"{name}\" ORDER BY \"{}\"",
            clean_columns(table).join(", "),
            crate::clean::raw::OFFSET_COLUMN
        );
        let result = async {
            let df = ctx.sql(&sql).await?;
            df.collect().await
        }
        .await;
        ctx.deregister_table(name.as_str()).map_err(Error::datafusion("drop a micro-batch"))?;
        let batches = result.map_err(Error::datafusion(format!("clean a micro-batch of {}", table.suffix())))?;
        conform(&batches, &stream_schema(table)).map_err(Error::datafusion("conform a micro-batch"))?
    };

    let kept: Vec<&crate::clean::decode::DeadLetter> = decoded
        .dead_letters
        .iter()
        .filter(|d| {
            let (s, r) = records[d.index as usize];
            keep_dead_letter(s, r)
        })
        .collect();
    let dead_letter_count = kept.len();
    let mut dead_letter_keys: Vec<String> = kept.iter().map(|d| records[d.index as usize].0.key()).collect();
    dead_letter_keys.sort();
    dead_letter_keys.dedup();
    let dead_letters = (dead_letter_count > 0).then(|| {
        let mut stream = StringBuilder::new();
        let mut shard = StringBuilder::new();
        let mut seq = StringBuilder::new();
        let mut arrival = TimestampMicrosecondBuilder::new().with_timezone("UTC");
        let mut key = StringBuilder::new();
        let mut raw = StringBuilder::new();
        let mut raw_bytes = BinaryBuilder::new();
        let mut error = StringBuilder::new();
        for d in &kept {
            let (s, r) = records[d.index as usize];
            stream.append_value(&s.stream);
            shard.append_value(&s.shard_id);
            seq.append_value(&r.sequence_number);
            arrival.append_value(r.arrival_micros);
            key.append_value(&r.partition_key);
            raw.append_value(&d.raw);
            raw_bytes.append_value(&d.raw_bytes);
            error.append_value(&d.error);
        }
        let columns: Vec<ArrayRef> = vec![
            Arc::new(stream.finish()),
            Arc::new(shard.finish()),
            Arc::new(seq.finish()),
            Arc::new(arrival.finish()),
            Arc::new(key.finish()),
            Arc::new(raw.finish()),
            Arc::new(raw_bytes.finish()),
            Arc::new(error.finish()),
        ];
        RecordBatch::try_new(dead_letter_schema(), columns).expect("dead letter columns match their schema")
    });
    Ok(Cleaned { rows, row_count, dead_letters, dead_letter_count, dead_letter_keys, quality })
}

/// The outcome of a guarded commit.
pub enum Committed {
    /// Committed as table version `version`; the table is at that version.
    Done { table: DeltaTable, version: i64 },
    /// A shard's `txn` is no longer the one expected: another writer consumed it. Nothing was
    /// written; the shards named must be re-read from the table.
    Lost { table: DeltaTable, shards: Vec<String> },
}

/// Appends `batches` to the table at `rel` in one commit with the positions of `shards`, only if
/// each shard's `txn` version is still `expected[shard]` (None: never recorded). Retries on top
/// of commits of other writers that did not touch these shards.
pub async fn commit_guarded(
    lake: &Lake,
    rel: &str,
    schema: &SchemaRef,
    mut table: DeltaTable,
    batches: Vec<RecordBatch>,
    positions: &BTreeMap<String, Position>,
    expected: &HashMap<String, Option<i64>>,
) -> Result<Committed> {
    if table.version().is_none() {
        table = create(lake, rel, schema).await?;
    }
    // Data files are written once; only the commit is retried.
    let mut adds: Vec<Action> = Vec::new();
    if batches.iter().any(|b| b.num_rows() > 0) {
        let mut writer = RecordBatchWriter::for_table(&table).map_err(delta_error(format!("write table {rel}")))?;
        for batch in batches {
            if batch.num_rows() > 0 {
                writer.write(batch).await.map_err(delta_error(format!("write table {rel}")))?;
            }
        }
        adds = writer
            .flush()
            .await
            .map_err(delta_error(format!("write table {rel}")))?
            .into_iter()
            .map(Action::Add)
            .collect();
    }
    loop {
        let lost = changed_shards(&table, expected).await?;
        if !lost.is_empty() {
            return Ok(Committed::Lost { table, shards: lost });
        }
        let base = table.version().expect("created above") as i64;
        let version = base + 1;
        let txns: Vec<Transaction> = positions
            .keys()
            .map(|key| {
                let (stream, shard) = key.split_once('/').unwrap_or((key.as_str(), ""));
                Transaction::new(app_id(stream, shard), version)
            })
            .collect();
        let properties = CommitProperties::default()
            .with_application_transactions(txns)
            .with_metadata([
                ("pinpipe.operation".to_string(), serde_json::Value::from("stream")),
                (POSITIONS_KEY.to_string(), serde_json::to_value(positions).expect("positions serialize")),
            ])
            .with_max_retries(0);
        let snapshot = table.snapshot().map_err(delta_error(format!("read table {rel}")))?;
        let operation = DeltaOperation::Write { mode: SaveMode::Append, partition_by: None, predicate: None };
        let result = CommitBuilder::from(properties)
            .with_actions(adds.clone())
            .build(Some(snapshot), table.log_store(), operation)
            .await;
        match result {
            Ok(done) => {
                let committed = done.version() as i64;
                table.update_incremental(None).await.map_err(delta_error(format!("reload table {rel}")))?;
                return Ok(Committed::Done { table, version: committed });
            }
            Err(e) if lost_race(&e) => {
                tracing::debug!(table = rel, "another writer committed first; checking its shards");
                table.update_incremental(None).await.map_err(delta_error(format!("reload table {rel}")))?;
            }
            Err(e) => return Err(delta_error(format!("commit table {rel}"))(e)),
        }
    }
}

/// Shards whose `txn` version in `table` differs from the expected one.
async fn changed_shards(table: &DeltaTable, expected: &HashMap<String, Option<i64>>) -> Result<Vec<String>> {
    let mut lost = Vec::new();
    for (key, want) in expected {
        let (stream, shard) = key.split_once('/').unwrap_or((key.as_str(), ""));
        let have = crate::delta::txn_version(table, &app_id(stream, shard)).await?;
        if have != *want {
            lost.push(key.clone());
        }
    }
    lost.sort();
    Ok(lost)
}

/// Creates an empty table (another writer may create it at the same moment).
async fn create(lake: &Lake, rel: &str, schema: &SchemaRef) -> Result<DeltaTable> {
    if let Err(e) = lake.write(rel, schema, vec![], SaveMode::Append, vec![], "create").await {
        let table = lake.table(rel).await?;
        if table.version().is_none() {
            return Err(e);
        }
        return Ok(table);
    }
    lake.table(rel).await
}

fn lost_race(e: &DeltaTableError) -> bool {
    matches!(
        e,
        DeltaTableError::Transaction { source: TransactionError::MaxCommitAttempts(_) }
            | DeltaTableError::VersionAlreadyExists(_)
    )
}

fn delta_error(context: impl Into<String>) -> impl FnOnce(DeltaTableError) -> Error {
    let context = context.into();
    move |source| Error::Delta { context, source: Box::new(source) }
}
