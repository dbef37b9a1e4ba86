//! Writing events straight into a landing zone, in the sink's layout, without Kafka: for
//! benchmarks, fixtures and backfills. Offsets are what a one-partition topic would have given.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::Draws;
use crate::config::AwsConfig;
use crate::error::{Error, Result};
use crate::landing::{object_key, PutOutcome, Store};
use crate::model::Table;
use crate::names::UserId;
use crate::source::Source;

/// What to write.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LandingWriteConfig {
    /// Whose topics' folders to write.
    pub user_id: UserId,
    /// Landing zone: a local directory or `s3://bucket/prefix`. Default `landing`.
    pub landing: String,
    /// Events to write. Default 1000.
    pub events: u64,
    /// Seed of the draws (as for the emulator). Default 100.
    pub seed: u64,
    /// Rows of the synthetic dataset; rows drawn are `0..=min(11000, rows - 1)`. Default 11,154.
    pub rows: u64,
    /// Records per object. Default 1000.
    pub flush_size: usize,
    /// Offset of the first record (to add a later day's objects after an earlier day's).
    /// Default 0.
    pub start_offset: u64,
    /// AWS access for an S3 landing zone.
    pub aws: AwsConfig,
}

impl Default for LandingWriteConfig {
    fn default() -> Self {
        LandingWriteConfig {
            user_id: UserId::default(),
            landing: "landing".into(),
            events: 1000,
            seed: 100,
            rows: 11_154,
            flush_size: 1000,
            start_offset: 0,
            aws: AwsConfig::default(),
        }
    }
}

impl LandingWriteConfig {
    /// Largest row number drawn.
    pub fn max_row(&self) -> u64 {
        11_000.min(self.rows.saturating_sub(1))
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct LandingWriteSummary {
    pub records_per_topic: u64,
    pub objects_written: u64,
    pub objects_already_present: u64,
    pub bytes_written: u64,
}

/// Draws `events` rows like the emulator and lands them in partition 0 of each topic.
pub async fn write_landing(config: &LandingWriteConfig, source: &Source) -> Result<LandingWriteSummary> {
    if config.flush_size == 0 {
        return Err(Error::Config("flush_size must be at least 1".into()));
    }
    let store = Store::open_with(&config.landing, &config.aws).await?;
    let mut draws = Draws::new(config.seed, config.max_row());
    let mut summary =
        LandingWriteSummary { records_per_topic: 0, objects_written: 0, objects_already_present: 0, bytes_written: 0 };
    let mut buffers: Vec<Vec<u8>> = vec![Vec::new(); Table::ALL.len()];
    let mut start = config.start_offset;
    let mut in_buffer = 0usize;
    for n in 0..config.events {
        let (_, row) = draws.next_event();
        let event = source.event(row).await?;
        for (i, table) in Table::ALL.iter().enumerate() {
            serde_json::to_writer(&mut buffers[i], event.get(*table)).expect("row serializes");
            buffers[i].push(b'\n');
        }
        in_buffer += 1;
        if in_buffer == config.flush_size || n + 1 == config.events {
            for (i, table) in Table::ALL.iter().enumerate() {
                let key = object_key(&config.user_id.topic(*table), 0, start as i64);
                let data = Bytes::from(std::mem::take(&mut buffers[i]));
                summary.bytes_written += data.len() as u64;
                match store.put_new(&key, data).await? {
                    PutOutcome::Created => summary.objects_written += 1,
                    PutOutcome::AlreadyExists => summary.objects_already_present += 1,
                }
            }
            start += in_buffer as u64;
            in_buffer = 0;
        }
    }
    summary.records_per_topic = config.events;
    Ok(summary)
}
