//! `pinpipe streams create|list|describe|delete`: the user's three streams.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{Fault, Kinesis, StreamInfo};
use crate::config::AwsConfig;
use crate::error::{Error, Result};
use crate::names::UserId;

/// Settings of the stream admin commands.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StreamsConfig {
    /// Whose streams (`streaming-<uid>-pin|geo|user`).
    pub user_id: UserId,
    /// Streams to act on instead of the user's three.
    pub streams: Vec<String>,
    /// Shards of each new stream. Default 1.
    pub shards: i32,
    /// How long `create` and `delete` wait for the stream to be `ACTIVE` or gone. Default 60 s.
    #[serde(with = "crate::config::duration_secs")]
    pub wait: Duration,
    /// AWS access (`kinesis_endpoint_url`, region, keys; unset: the default credential chain).
    pub aws: AwsConfig,
}

impl Default for StreamsConfig {
    fn default() -> Self {
        StreamsConfig {
            user_id: UserId::default(),
            streams: Vec::new(),
            shards: 1,
            wait: Duration::from_secs(60),
            aws: AwsConfig::default(),
        }
    }
}

impl StreamsConfig {
    /// The streams these settings name.
    pub fn names(&self) -> Vec<String> {
        if self.streams.is_empty() {
            self.user_id.streams()
        } else {
            self.streams.clone()
        }
    }
}

/// What `create` or `delete` did to one stream.
#[derive(Debug, Clone, Serialize)]
pub struct StreamChange {
    pub stream: String,
    /// Whether this call changed it (false: it existed already, or was gone already).
    pub changed: bool,
    pub message: String,
}

/// Creates the streams that do not exist and waits until each is `ACTIVE`.
pub async fn create_streams(config: &StreamsConfig) -> Result<Vec<StreamChange>> {
    if config.shards < 1 {
        return Err(Error::Config(format!("shards must be at least 1 (got {})", config.shards)));
    }
    let kinesis = Kinesis::connect(&config.aws).await;
    let mut out = Vec::new();
    for name in config.names() {
        let changed = match kinesis.create_stream(&name, config.shards).await {
            Ok(()) => true,
            Err(Error::Kinesis { fault: Fault::InUse, .. }) => false,
            Err(e) => return Err(e),
        };
        let info = kinesis.wait_active(&name, config.wait).await?;
        let message = if changed {
            format!("created, {} shards", info.open_shards)
        } else {
            format!("already exists, {} open shards", info.open_shards)
        };
        out.push(StreamChange { stream: name, changed, message });
    }
    Ok(out)
}

/// Every stream of the account and region.
pub async fn list_streams(config: &StreamsConfig) -> Result<Vec<String>> {
    Kinesis::connect(&config.aws).await.list_streams().await
}

/// Status and shards of each stream.
pub async fn describe_streams(config: &StreamsConfig) -> Result<Vec<StreamInfo>> {
    let kinesis = Kinesis::connect(&config.aws).await;
    let mut out = Vec::new();
    for name in config.names() {
        out.push(kinesis.describe(&name).await?);
    }
    Ok(out)
}

/// Deletes the streams and waits until they are gone.
pub async fn delete_streams(config: &StreamsConfig) -> Result<Vec<StreamChange>> {
    let kinesis = Kinesis::connect(&config.aws).await;
    let mut out = Vec::new();
    for name in config.names() {
        let changed = match kinesis.delete_stream(&name).await {
            Ok(()) => true,
            Err(Error::Kinesis { fault: Fault::NotFound, .. }) => false,
            Err(e) => return Err(e),
        };
        let deadline = tokio::time::Instant::now() + config.wait;
        loop {
            match kinesis.describe(&name).await {
                Err(Error::Kinesis { fault: Fault::NotFound, .. }) => break,
                Err(e) => return Err(e),
                Ok(info) if tokio::time::Instant::now() >= deadline => {
                    return Err(Error::Kinesis {
                        context: format!("delete stream {name}"),
                        fault: Fault::InUse,
                        message: format!("still {} after {:.0} s", info.status, config.wait.as_secs_f64()),
                    })
                }
                Ok(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
        let message = if changed { "deleted" } else { "not found" };
        out.push(StreamChange { stream: name, changed, message: message.into() });
    }
    Ok(out)
}

/// What `streams read` read.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ReadSummary {
    pub shards: usize,
    pub records: u64,
    pub bytes: u64,
    pub elapsed_secs: f64,
    pub records_per_sec: f64,
}

/// Reads every shard of the streams from its oldest record to its tip with a bare GetRecords
/// loop per shard (all shards at once), handing each record to `each`. A debugging tool for
/// operators, and the ceiling `pinpipe stream` is measured against.
pub async fn read_streams(
    config: &StreamsConfig,
    each: impl Fn(&str, &str, &super::ShardRecord) + Send + Sync + 'static,
) -> Result<ReadSummary> {
    let kinesis = Kinesis::connect(&config.aws).await;
    let started = std::time::Instant::now();
    let each = std::sync::Arc::new(each);
    let mut tasks = tokio::task::JoinSet::new();
    let mut shards = 0;
    for name in config.names() {
        for shard in kinesis.shards(&name).await? {
            shards += 1;
            let (kinesis, name, each) = (kinesis.clone(), name.clone(), each.clone());
            tasks.spawn(async move {
                let mut records = 0u64;
                let mut bytes = 0u64;
                let mut it = kinesis.shard_iterator(&name, &shard.shard_id, &super::StartAt::TrimHorizon).await?;
                loop {
                    let page = kinesis.get_records(&it, Some(10_000)).await?;
                    for r in &page.records {
                        records += 1;
                        bytes += r.data.len() as u64;
                        each(&name, &shard.shard_id, r);
                    }
                    let at_tip = page.records.is_empty() && page.millis_behind_latest.is_none_or(|ms| ms == 0);
                    match page.next_iterator {
                        Some(next) if !at_tip => it = next,
                        _ => break,
                    }
                }
                Ok::<_, Error>((records, bytes))
            });
        }
    }
    let mut summary = ReadSummary { shards, ..Default::default() };
    while let Some(done) = tasks.join_next().await {
        let (records, bytes) = done.map_err(|e| Error::Config(format!("a shard reader stopped: {e}")))??;
        summary.records += records;
        summary.bytes += bytes;
    }
    summary.elapsed_secs = started.elapsed().as_secs_f64();
    summary.records_per_sec =
        if summary.elapsed_secs > 0.0 { summary.records as f64 / summary.elapsed_secs } else { 0.0 };
    Ok(summary)
}
