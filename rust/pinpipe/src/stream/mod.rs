//! `pinpipe stream`: Kinesis → stream tables, exactly once.
//!
//! One reader task per leased shard pulls pages with GetRecords; every `commit_interval` the
//! records gathered so far become one micro-batch per table: decoded and cleaned with batch's
//! code, undecodable records to `stream/_dead_letters` first, then the rows, each commit carrying
//! its shards' positions (see [`tables`]). A child shard is read only once its parents are
//! finished in the table, so per partition key rows keep their PutRecord order across reshards.

mod lease;
mod shard;
pub mod tables;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::future::Future;
use std::time::{Duration, Instant};

use deltalake::DeltaTable;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::config::AwsConfig;
use crate::delta::Lake;
use crate::error::{Error, Result};
use crate::kinesis::{compare_sequence, Kinesis, ShardInfo, ShardRecord, StartAt};
use crate::model::Table;
use crate::names::UserId;
use lease::{Lease, LeaseStore, Tag};
use shard::{Event, Pacing};
use tables::{Committed, Position, ShardBatch};

pub use tables::{dead_letter_schema, stream_schema, table_path, DEAD_LETTERS_PATH};

/// Settings of `pinpipe stream`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StreamConfig {
    /// Whose streams and tables (`streaming-<uid>-pin|geo|user` → `<uid>_pin_table`, ...).
    pub user_id: UserId,
    /// Lake root: a local directory or `s3://bucket/prefix`. Default `lake`.
    pub lake: String,
    /// Where a shard with no position in its table starts: `trim-horizon` (default), `latest`,
    /// or a time (RFC 3339, e.g. `2026-12-01T00:00:00Z`). Child shards always start at their
    /// beginning.
    pub start: String,
    /// Read to the ends seen at start, commit, and exit with a summary (for Airflow).
    pub until_caught_up: bool,
    /// How often the records gathered are committed (the micro-batch length). Default 0.5 s.
    #[serde(with = "crate::config::duration_secs")]
    pub commit_interval: Duration,
    /// Records gathered that trigger a commit before `commit_interval` is up. Default 50,000.
    pub max_batch_records: usize,
    /// Pause between GetRecords calls on a shard at its tip. Default 0.2 s (Kinesis allows five
    /// calls per shard per second).
    #[serde(with = "crate::config::duration_secs")]
    pub poll_interval: Duration,
    /// A lease not renewed for this long is taken over by another process. Default 10 s.
    #[serde(with = "crate::config::duration_secs")]
    pub lease_duration: Duration,
    /// This process's name in the leases. Default: host name, process id and a random suffix.
    /// A stable one lets a restarted process take its own leases back at once.
    pub worker_id: Option<String>,
    /// With `until_caught_up`: how long Kinesis may stay unreachable or throttling before the run
    /// fails. Default 120 s. (A daemon waits as long as it takes.)
    #[serde(with = "crate::config::duration_secs")]
    pub retry_deadline: Duration,
    /// AWS access for Kinesis and an S3 lake.
    pub aws: AwsConfig,
    /// Show progress on stderr.
    pub progress: bool,
}

impl Default for StreamConfig {
    fn default() -> Self {
        StreamConfig {
            user_id: UserId::default(),
            lake: "lake".into(),
            start: "trim-horizon".into(),
            until_caught_up: false,
            commit_interval: Duration::from_millis(500),
            max_batch_records: 50_000,
            poll_interval: Duration::from_millis(200),
            lease_duration: Duration::from_secs(10),
            worker_id: None,
            retry_deadline: Duration::from_secs(120),
            aws: AwsConfig::default(),
            progress: false,
        }
    }
}

impl StreamConfig {
    fn start_at(&self) -> Result<StartAt> {
        match self.start.to_ascii_lowercase().replace('_', "-").as_str() {
            "trim-horizon" => Ok(StartAt::TrimHorizon),
            "latest" => Ok(StartAt::Latest),
            _ => chrono::DateTime::parse_from_rfc3339(&self.start)
                .map(|t| StartAt::AtTimestamp(t.with_timezone(&chrono::Utc)))
                .map_err(|_| {
                    Error::Config(format!(
                        "start {:?}: use trim-horizon, latest or an RFC 3339 time such as 2026-12-01T00:00:00Z",
                        self.start
                    ))
                }),
        }
    }
}

/// What a stream run did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct StreamSummary {
    pub lake: String,
    pub worker_id: String,
    /// Rows appended, by table name.
    pub rows: BTreeMap<String, u64>,
    pub dead_letters: u64,
    /// Values the cleaning turned to null, by `column: cause`.
    pub quality: BTreeMap<String, u64>,
    pub commits: u64,
    /// Shards read by this process.
    pub shards_read: u64,
    /// Shards finished (closed and fully consumed) during the run.
    pub shards_finished: u64,
    /// Commits that found another writer had consumed a shard first (nothing was applied twice).
    pub lost_races: u64,
    pub elapsed_secs: f64,
    pub records_per_sec: f64,
}

/// A shard this process holds.
struct Held {
    stream: String,
    shard_id: String,
    table: Table,
    generation: u64,
    task: tokio::task::AbortHandle,
    lease: Tag,
    counter: u64,
    /// The `txn` versions last seen for the shard in its table and in the dead letters.
    rows_txn: Option<i64>,
    dead_letters_txn: Option<i64>,
    /// The last sequence number committed to the table, and to the dead letters.
    committed: Option<String>,
    dead_letters_committed: Option<String>,
    buffer: Vec<ShardRecord>,
    ended: bool,
    caught_up: bool,
}

/// A lease object as last observed.
struct Seen {
    tag: Tag,
    counter: u64,
    since: Instant,
    /// The object changed while observed: its owner is alive.
    renewed: bool,
}

struct Job {
    config: StreamConfig,
    kinesis: Kinesis,
    lake: Lake,
    leases: LeaseStore,
    worker: String,
    start: StartAt,
    streams: Vec<(String, Table)>,
    tables: HashMap<Table, DeltaTable>,
    dead_letters: Option<DeltaTable>,
    ctx: deltalake::datafusion::prelude::SessionContext,
    held: HashMap<String, Held>,
    /// Every shard of the streams, by key, as last listed.
    listed: HashMap<String, ShardInfo>,
    finished: HashSet<String>,
    seen: HashMap<String, Seen>,
    generation: u64,
    tx: mpsc::Sender<Event>,
    summary: StreamSummary,
    /// Records gathered and not yet committed.
    pending_records: usize,
    /// Leases of other readers not yet seen renewed.
    undecided: usize,
    /// A shard finished: its children may be listed now.
    resharded: bool,
}

fn default_worker_id() -> String {
    let host = std::fs::read_to_string("/etc/hostname").map(|h| h.trim().to_string()).unwrap_or_default();
    let nonce: u32 =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    format!("{}-{}-{:08x}", if host.is_empty() { "pinpipe" } else { &host }, std::process::id(), nonce)
}

/// Runs the stream job until `stop` completes, or (with `until_caught_up`) until every shard it
/// can lease is read to its tip or end.
pub async fn run_stream(config: StreamConfig, stop: impl Future<Output = ()>) -> Result<StreamSummary> {
    if config.commit_interval.is_zero() || config.lease_duration.is_zero() || config.max_batch_records == 0 {
        return Err(Error::Config("commit_interval, lease_duration and max_batch_records must be positive".into()));
    }
    let start = config.start_at()?;
    let started = Instant::now();
    let kinesis = Kinesis::connect(&config.aws).await;
    let lake = Lake::new_with(&config.lake, &config.aws).await?;
    let leases = LeaseStore::for_lake(&config.lake, &config.aws).await?;
    let worker = config.worker_id.clone().unwrap_or_else(default_worker_id);
    let streams: Vec<(String, Table)> = Table::ALL.iter().map(|t| (config.user_id.stream(*t), *t)).collect();
    let mut tables = HashMap::new();
    for (_, table) in &streams {
        tables.insert(*table, lake.table(&table_path(&config.user_id, *table)).await?);
    }
    let dead_letters = lake.table(DEAD_LETTERS_PATH).await?;
    let (tx, mut rx) = mpsc::channel(64);
    let mut job = Job {
        summary: StreamSummary { lake: lake.root().to_string(), worker_id: worker.clone(), ..Default::default() },
        config,
        kinesis,
        lake,
        leases,
        worker,
        start,
        streams,
        tables,
        dead_letters: Some(dead_letters),
        ctx: crate::clean::session(),
        held: HashMap::new(),
        listed: HashMap::new(),
        finished: HashSet::new(),
        seen: HashMap::new(),
        generation: 0,
        tx,
        pending_records: 0,
        undecided: 0,
        resharded: false,
    };
    tracing::info!(worker = %job.worker, lake = %job.summary.lake, "stream reader starting");
    job.refresh_shards().await?;
    job.lease_cycle().await?;

    let mut commit_tick = tokio::time::interval(job.config.commit_interval);
    commit_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut lease_tick = tokio::time::interval(job.config.lease_duration / 3);
    lease_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    lease_tick.tick().await;
    let mut cycles = 0u64;
    tokio::pin!(stop);
    let result: Result<()> = loop {
        tokio::select! {
            event = rx.recv() => {
                let Some(event) = event else { break Ok(()) };
                if let Err(e) = job.on_event(event) {
                    break Err(e);
                }
                if job.pending_records >= job.config.max_batch_records {
                    if let Err(e) = job.commit_all().await {
                        break Err(e);
                    }
                }
            }
            _ = commit_tick.tick() => {
                if let Err(e) = job.commit_all().await {
                    break Err(e);
                }
                if std::mem::take(&mut job.resharded) {
                    // A finished parent frees its children: list them and take them now.
                    if let Err(e) = job.refresh_shards().await {
                        break Err(e);
                    }
                    if let Err(e) = job.lease_cycle().await {
                        break Err(e);
                    }
                }
                if job.config.until_caught_up && job.caught_up() {
                    // The leases are refreshed once more: a finished parent frees its children.
                    if let Err(e) = job.lease_cycle().await {
                        break Err(e);
                    }
                    if job.caught_up() {
                        break Ok(());
                    }
                }
            }
            _ = lease_tick.tick() => {
                cycles += 1;
                // New shards appear only through resharding: list them every few cycles.
                let listed = if cycles.is_multiple_of(3) { job.refresh_shards().await } else { Ok(()) };
                if let Err(e) = listed.and(job.lease_cycle().await) {
                    break Err(e);
                }
            }
            _ = &mut stop => {
                break job.commit_all().await;
            }
        }
    };
    for held in job.held.values() {
        held.task.abort();
    }
    job.release_all().await;
    result?;
    job.summary.elapsed_secs = started.elapsed().as_secs_f64();
    let total: u64 = job.summary.rows.values().sum::<u64>() + job.summary.dead_letters;
    job.summary.records_per_sec =
        if job.summary.elapsed_secs > 0.0 { total as f64 / job.summary.elapsed_secs } else { 0.0 };
    Ok(job.summary)
}

impl Job {
    fn key(stream: &str, shard: &str) -> String {
        format!("{stream}/{shard}")
    }

    fn pacing(&self) -> Pacing {
        Pacing {
            poll_interval: self.config.poll_interval,
            limit: 10_000,
            give_up_after: self.config.until_caught_up.then_some(self.config.retry_deadline),
        }
    }

    /// Lists the shards of the three streams (with backoff while Kinesis is unreachable).
    async fn refresh_shards(&mut self) -> Result<()> {
        let deadline = self.config.until_caught_up.then(|| Instant::now() + self.config.retry_deadline);
        let mut delay = Duration::from_millis(200);
        let mut listed = HashMap::new();
        for (stream, _) in &self.streams {
            let shards = loop {
                match self.kinesis.shards(stream).await {
                    Ok(shards) => break shards,
                    Err(e) if e.is_transient() && deadline.is_none_or(|d| Instant::now() < d) => {
                        tracing::warn!(stream = %stream, error = %e, "cannot list shards; retrying");
                        tokio::time::sleep(delay).await;
                        delay = (delay * 2).min(Duration::from_secs(5));
                    }
                    Err(e) => return Err(e),
                }
            };
            for shard in shards {
                listed.insert(Self::key(stream, &shard.shard_id), shard);
            }
        }
        self.listed = listed;
        Ok(())
    }

    /// Shards that may be read now: not finished, and every parent finished (or gone).
    async fn eligible(&mut self) -> Result<Vec<String>> {
        let unknown: Vec<String> = self
            .listed
            .keys()
            .filter(|k| !self.finished.contains(*k) && !self.held.contains_key(*k))
            .cloned()
            .collect();
        // Finished shards are recorded in the tables; read what other writers recorded.
        for (stream, table) in self.streams.clone() {
            let keys: Vec<String> = unknown.iter().filter(|k| k.starts_with(&format!("{stream}/"))).cloned().collect();
            if keys.is_empty() {
                continue;
            }
            let t = self.tables.get_mut(&table).expect("every table is loaded");
            refresh(&self.lake, &table_path(&self.config.user_id, table), t).await?;
            for (key, recorded) in tables::recorded_positions(t, &keys).await? {
                if recorded.position.finished {
                    self.finished.insert(key);
                }
            }
        }
        let mut out: Vec<String> = self
            .listed
            .iter()
            .filter(|(key, _)| !self.finished.contains(*key))
            .filter(|(key, info)| {
                let stream = key.split('/').next().unwrap_or_default();
                info.parents().all(|p| {
                    let parent = Self::key(stream, p);
                    self.finished.contains(&parent) || !self.listed.contains_key(&parent)
                })
            })
            .map(|(key, _)| key.clone())
            .collect();
        out.sort();
        Ok(out)
    }

    /// Renews the leases held, takes free or expired ones up to a fair share, steals one from
    /// the busiest worker when short, and starts or stops readers to match.
    async fn lease_cycle(&mut self) -> Result<()> {
        // Renew.
        let keys: Vec<String> = self.held.keys().cloned().collect();
        for key in keys {
            let held = self.held.get(&key).expect("held");
            let lease = Lease::new(&self.worker, held.counter + 1);
            match self.leases.swap(&key, &lease, Some(&held.lease)).await {
                Ok(Some(tag)) => {
                    let held = self.held.get_mut(&key).expect("held");
                    held.lease = tag;
                    held.counter += 1;
                }
                Ok(None) => {
                    tracing::info!(shard = %key, "lease taken over by another reader; stopping this shard");
                    self.drop_shard(&key);
                }
                Err(e) if e.is_transient() => tracing::warn!(shard = %key, error = %e, "cannot renew a lease"),
                Err(e) => return Err(e),
            }
        }
        let eligible = self.eligible().await?;
        // Observe the others' leases.
        let now = Instant::now();
        let mut free: Vec<(String, Option<Tag>)> = Vec::new();
        let mut by_owner: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for key in eligible.iter().filter(|k| !self.held.contains_key(*k)) {
            match self.leases.read(key).await {
                Ok(None) => free.push((key.clone(), None)),
                Ok(Some((lease, tag))) => {
                    let seen = self.seen.entry(key.clone()).or_insert(Seen {
                        tag: tag.clone(),
                        counter: lease.counter,
                        since: now,
                        renewed: false,
                    });
                    if seen.tag != tag {
                        *seen = Seen { tag: tag.clone(), counter: lease.counter, since: now, renewed: true };
                    }
                    let expired = now.duration_since(seen.since) >= self.config.lease_duration;
                    if lease.owner.is_empty() || lease.owner == self.worker || expired {
                        free.push((key.clone(), Some(tag)));
                    } else {
                        by_owner.entry(lease.owner.clone()).or_default().push(key.clone());
                    }
                }
                Err(e) if e.is_transient() => tracing::warn!(shard = %key, error = %e, "cannot read a lease"),
                Err(e) => return Err(e),
            }
        }
        // Leases of others not yet seen renewed may belong to a reader that died: until they are
        // renewed (alive) or expire (taken over), a catch-up run is not done.
        self.undecided = by_owner.values().flatten().filter(|k| self.seen.get(*k).is_some_and(|s| !s.renewed)).count();
        let workers = by_owner.len() + 1;
        let target = eligible.len().div_ceil(workers);
        let mut want = target.saturating_sub(self.held.len());
        for (key, tag) in free {
            if want == 0 {
                break;
            }
            if self.take(&key, tag.as_ref()).await? {
                want -= 1;
            }
        }
        if want > 0 {
            // Steal one lease from the worker holding the most, if it holds more than its share.
            if let Some((owner, keys)) = by_owner.iter().max_by_key(|(_, keys)| keys.len()) {
                if keys.len() > target {
                    let key = keys[0].clone();
                    let tag = self.seen.get(&key).map(|s| s.tag.clone());
                    tracing::info!(shard = %key, from = %owner, "taking a lease over to balance the shards");
                    self.take(&key, tag.as_ref()).await?;
                }
            }
        }
        Ok(())
    }

    /// Takes the lease of `key` (at `tag`, or creates it) and starts reading the shard.
    async fn take(&mut self, key: &str, tag: Option<&Tag>) -> Result<bool> {
        let counter = self.seen.get(key).map_or(0, |s| s.counter) + 1;
        let lease = Lease::new(&self.worker, counter);
        let tag = match self.leases.swap(key, &lease, tag).await {
            Ok(Some(tag)) => tag,
            Ok(None) => return Ok(false),
            Err(e) if e.is_transient() => {
                tracing::warn!(shard = %key, error = %e, "cannot take a lease");
                return Ok(false);
            }
            Err(e) => return Err(e),
        };
        self.seen.remove(key);
        if let Err(e) = self.start_shard(key, tag.clone(), counter).await {
            // Give the lease back so that another reader can try.
            let _ = self.leases.swap(key, &Lease::new("", counter + 1), Some(&tag)).await;
            return Err(e);
        }
        Ok(true)
    }

    /// Reads the shard's positions from the tables and starts its reader.
    async fn start_shard(&mut self, key: &str, lease: Tag, counter: u64) -> Result<()> {
        let (stream, shard_id) = key.split_once('/').expect("keys are stream/shard");
        let table = self.streams.iter().find(|(s, _)| s == stream).map(|(_, t)| *t).expect("a stream of the job");
        let t = self.tables.get_mut(&table).expect("every table is loaded");
        refresh(&self.lake, &table_path(&self.config.user_id, table), t).await?;
        let rows = tables::recorded_positions(t, &[key.to_string()]).await?.remove(key);
        let dead_letters = self.dead_letters.as_mut().expect("the dead-letter table is loaded");
        refresh(&self.lake, DEAD_LETTERS_PATH, dead_letters).await?;
        let dead = tables::recorded_positions(dead_letters, &[key.to_string()]).await?.remove(key);
        if rows.as_ref().is_some_and(|r| r.position.finished) {
            self.finished.insert(key.to_string());
            let _ = self.leases.swap(key, &Lease::new("", counter + 1), Some(&lease)).await;
            return Ok(());
        }
        let committed = rows.as_ref().and_then(|r| r.position.sequence_number.clone());
        let has_parents = self.listed.get(key).is_some_and(|s| s.parents().next().is_some());
        let start = match &committed {
            Some(seq) => StartAt::AfterSequence(seq.clone()),
            None if has_parents => StartAt::TrimHorizon,
            None => self.start.clone(),
        };
        self.generation += 1;
        let generation = self.generation;
        tracing::info!(shard = %key, ?start, "reading shard");
        let task = tokio::spawn(shard::read_shard(
            self.kinesis.clone(),
            stream.to_string(),
            shard_id.to_string(),
            start,
            generation,
            self.pacing(),
            self.tx.clone(),
        ))
        .abort_handle();
        self.summary.shards_read += 1;
        self.held.insert(
            key.to_string(),
            Held {
                stream: stream.to_string(),
                shard_id: shard_id.to_string(),
                table,
                generation,
                task,
                lease,
                counter,
                rows_txn: rows.as_ref().map(|r| r.txn_version),
                dead_letters_txn: dead.as_ref().map(|r| r.txn_version),
                committed,
                dead_letters_committed: dead.and_then(|r| r.position.sequence_number),
                buffer: Vec::new(),
                ended: false,
                caught_up: false,
            },
        );
        Ok(())
    }

    /// Stops reading a shard and forgets what was gathered of it (it was not committed).
    fn drop_shard(&mut self, key: &str) {
        if let Some(held) = self.held.remove(key) {
            held.task.abort();
            self.pending_records -= held.buffer.len();
        }
    }

    fn on_event(&mut self, event: Event) -> Result<()> {
        match event {
            Event::Records { key, generation, records, caught_up } => {
                if let Some(held) = self.held.get_mut(&key).filter(|h| h.generation == generation) {
                    self.pending_records += records.len();
                    held.buffer.extend(records);
                    held.caught_up |= caught_up;
                }
            }
            Event::End { key, generation } => {
                if let Some(held) = self.held.get_mut(&key).filter(|h| h.generation == generation) {
                    held.ended = true;
                    held.caught_up = true;
                }
            }
            Event::Failed { key, generation, error } => {
                if self.held.get(&key).is_some_and(|h| h.generation == generation) {
                    return Err(error);
                }
            }
        }
        Ok(())
    }

    /// Every held shard is at its tip or end and everything read is committed.
    fn caught_up(&self) -> bool {
        self.undecided == 0 && self.held.values().all(|h| h.caught_up && !h.ended && h.buffer.is_empty())
    }

    /// Commits what each table's shards gathered.
    async fn commit_all(&mut self) -> Result<()> {
        for (_, table) in self.streams.clone() {
            self.commit_table(table).await?;
        }
        Ok(())
    }

    async fn commit_table(&mut self, table: Table) -> Result<()> {
        let keys: Vec<String> = self
            .held
            .iter()
            .filter(|(_, h)| h.table == table && (!h.buffer.is_empty() || h.ended))
            .map(|(k, _)| k.clone())
            .collect();
        if keys.is_empty() {
            return Ok(());
        }
        // The records move into the micro-batch; a shard whose commit does not happen for another
        // shard's sake gets them back (`restore`).
        let mut batches: Vec<ShardBatch> = Vec::with_capacity(keys.len());
        for k in &keys {
            let h = self.held.get_mut(k).expect("held");
            let records = std::mem::take(&mut h.buffer);
            self.pending_records -= records.len();
            batches.push(ShardBatch {
                stream: h.stream.clone(),
                shard_id: h.shard_id.clone(),
                records,
                finished: h.ended,
            });
        }
        let refs: Vec<&ShardBatch> = batches.iter().collect();
        let done_dead: HashMap<String, Option<String>> =
            keys.iter().map(|k| (k.clone(), self.held[k].dead_letters_committed.clone())).collect();
        let cleaned = tables::clean_batch(&self.ctx, table, &refs, |batch, record| {
            done_dead
                .get(&batch.key())
                .and_then(|d| d.as_deref())
                .is_none_or(|done| compare_sequence(&record.sequence_number, done) == std::cmp::Ordering::Greater)
        })
        .await?;
        let mut lost: BTreeSet<String> = BTreeSet::new();

        // Dead letters first, with their own positions: a crash between the two commits re-reads
        // the records, and the dead letters already committed are skipped.
        if let Some(dead) = cleaned.dead_letters.clone() {
            let shards: BTreeSet<String> = cleaned.dead_letter_keys.iter().cloned().collect();
            let positions: BTreeMap<String, Position> = batches
                .iter()
                .filter(|b| shards.contains(&b.key()))
                .map(|b| (b.key(), Position { finished: false, ..b.end_position(None) }))
                .collect();
            let expected: HashMap<String, Option<i64>> =
                positions.keys().map(|k| (k.clone(), self.held[k].dead_letters_txn)).collect();
            let base = match self.dead_letters.take() {
                Some(t) => t,
                None => self.lake.table(DEAD_LETTERS_PATH).await?,
            };
            let outcome = tables::commit_guarded(
                &self.lake,
                DEAD_LETTERS_PATH,
                &dead_letter_schema(),
                base,
                vec![dead],
                &positions,
                &expected,
            )
            .await?;
            match outcome {
                Committed::Done { table: t, version } => {
                    self.dead_letters = Some(t);
                    for (key, position) in &positions {
                        let h = self.held.get_mut(key).expect("held");
                        h.dead_letters_txn = Some(version);
                        h.dead_letters_committed = position.sequence_number.clone();
                    }
                    self.summary.dead_letters += cleaned.dead_letter_count as u64;
                    self.summary.commits += 1;
                }
                Committed::Lost { table: t, shards } => {
                    self.dead_letters = Some(t);
                    lost.extend(shards);
                }
            }
        }

        let positions: BTreeMap<String, Position> = batches
            .iter()
            .filter(|b| !lost.contains(&b.key()))
            .map(|b| (b.key(), b.end_position(self.held[&b.key()].committed.as_deref())))
            .collect();
        if !lost.is_empty() {
            // Those shards' rows must not go in: commit the others next time.
            self.restore(batches, &lost);
            self.lose(&lost);
            return Ok(());
        }
        let expected: HashMap<String, Option<i64>> =
            positions.keys().map(|k| (k.clone(), self.held[k].rows_txn)).collect();
        let rel = table_path(&self.config.user_id, table);
        let base = self.tables.remove(&table).expect("every table is loaded");
        let outcome =
            tables::commit_guarded(&self.lake, &rel, &stream_schema(table), base, cleaned.rows, &positions, &expected)
                .await;
        let outcome = match outcome {
            Ok(o) => o,
            Err(e) => {
                self.tables.insert(table, self.lake.table(&rel).await?);
                return Err(e);
            }
        };
        match outcome {
            Committed::Done { table: t, version } => {
                self.tables.insert(table, t);
                self.summary.commits += 1;
                *self.summary.rows.entry(self.config.user_id.stream_table(table)).or_default() +=
                    cleaned.row_count as u64;
                for (k, v) in cleaned.quality {
                    *self.summary.quality.entry(k).or_default() += v;
                }
                for (key, position) in positions {
                    let h = self.held.get_mut(&key).expect("held");
                    h.rows_txn = Some(version);
                    h.committed = position.sequence_number.clone();
                    if position.finished {
                        tracing::info!(shard = %key, "shard finished");
                        self.summary.shards_finished += 1;
                        self.finished.insert(key.clone());
                        self.resharded = true;
                        let h = self.held.remove(&key).expect("held");
                        let _ = self.leases.swap(&key, &Lease::new("", h.counter + 1), Some(&h.lease)).await;
                    }
                }
            }
            Committed::Lost { table: t, shards } => {
                self.tables.insert(table, t);
                let lost = shards.into_iter().collect();
                self.restore(batches, &lost);
                self.lose(&lost);
            }
        }
        Ok(())
    }

    /// Gives the records of an uncommitted micro-batch back to their shards, except `lost` ones.
    fn restore(&mut self, batches: Vec<ShardBatch>, lost: &BTreeSet<String>) {
        for batch in batches {
            let key = batch.key();
            if lost.contains(&key) {
                continue;
            }
            if let Some(h) = self.held.get_mut(&key) {
                self.pending_records += batch.records.len();
                let newer = std::mem::replace(&mut h.buffer, batch.records);
                h.buffer.extend(newer);
            }
        }
    }

    /// Another writer consumed these shards: stop them; the lease cycle decides who reads them.
    fn lose(&mut self, keys: &BTreeSet<String>) {
        for key in keys {
            tracing::warn!(shard = %key, "another reader committed this shard first; dropping what was read of it");
            self.summary.lost_races += 1;
            self.drop_shard(key);
        }
    }

    /// Gives every held lease back, so another reader can take over at once.
    async fn release_all(&mut self) {
        for (key, held) in std::mem::take(&mut self.held) {
            let _ = self.leases.swap(&key, &Lease::new("", held.counter + 1), Some(&held.lease)).await;
        }
    }
}

/// Brings a loaded (or not yet created) table up to date.
async fn refresh(lake: &Lake, rel: &str, table: &mut DeltaTable) -> Result<()> {
    if table.version().is_none() {
        *table = lake.table(rel).await?;
        return Ok(());
    }
    table
        .update_incremental(None)
        .await
        .map_err(|e| Error::Delta { context: format!("reload table {rel}"), source: Box::new(e) })
}
