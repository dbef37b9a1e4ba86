//! Kinesis Data Streams through aws-sdk-kinesis: the stream admin (`pinpipe streams`), the puts of
//! the gateway's Kinesis side and the shard reads of `pinpipe stream`. Every failure is sorted into
//! a [`Fault`] so callers can tell "retry later" (throttled, unreachable) from "this is wrong".

use std::time::Duration;

use aws_sdk_kinesis::config::http::HttpResponse;
use aws_sdk_kinesis::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::{PutRecordsRequestEntry, ShardIteratorType};
use serde::Serialize;

use crate::config::AwsConfig;
use crate::error::{Error, Result};

pub mod admin;
pub mod standin;

/// Largest record (data plus partition key) Kinesis accepts: 1 MiB.
pub const MAX_RECORD_BYTES: usize = 1024 * 1024;
/// Most records in one PutRecords call.
pub const MAX_PUT_RECORDS: usize = 500;
/// Largest PutRecords call: 5 MiB.
pub const MAX_PUT_RECORDS_BYTES: usize = 5 * 1024 * 1024;
/// Longest partition key, in Unicode characters.
pub const MAX_PARTITION_KEY_CHARS: usize = 256;

/// What kind of failure a Kinesis call met.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Fault {
    /// No such stream or shard.
    NotFound,
    /// The stream exists already, or is being created, updated or deleted.
    InUse,
    /// Throttled (`ProvisionedThroughputExceededException`, `LimitExceededException`): retry later.
    Throttled,
    /// The shard iterator is older than five minutes: get a new one.
    ExpiredIterator,
    /// A bad argument (name, shard count, record size, iterator).
    Invalid,
    /// Credentials refused or missing permission.
    Denied,
    /// The endpoint could not be reached, timed out or failed inside (5xx): retry later.
    Unavailable,
}

impl Fault {
    /// Whether trying again later may succeed.
    pub fn is_transient(self) -> bool {
        matches!(self, Fault::Throttled | Fault::Unavailable)
    }
}

fn fault_of_code(code: &str) -> Fault {
    match code {
        "ResourceNotFoundException" => Fault::NotFound,
        "ResourceInUseException" => Fault::InUse,
        "ProvisionedThroughputExceededException"
        | "LimitExceededException"
        | "ThrottlingException"
        | "KMSThrottlingException" => Fault::Throttled,
        "ExpiredIteratorException" | "ExpiredNextTokenException" => Fault::ExpiredIterator,
        "AccessDeniedException"
        | "UnrecognizedClientException"
        | "InvalidSignatureException"
        | "MissingAuthenticationTokenException"
        | "IncompleteSignature"
        | "ExpiredTokenException"
        | "KMSAccessDeniedException" => Fault::Denied,
        "InternalFailureException" | "ServiceUnavailable" | "InternalFailure" => Fault::Unavailable,
        _ => Fault::Invalid,
    }
}

/// Turns an SDK error into the library's error: one line, the service's own code and message.
fn sdk_error<E>(context: impl Into<String>, e: SdkError<E, HttpResponse>) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let context = context.into();
    let (fault, message) = match &e {
        SdkError::ServiceError(service) => {
            let err = service.err();
            let code = err.code().unwrap_or("UnknownError");
            let status = service.raw().status().as_u16();
            let fault = if status >= 500 && fault_of_code(code) == Fault::Invalid {
                Fault::Unavailable
            } else {
                fault_of_code(code)
            };
            (fault, format!("{code}: {}", err.message().unwrap_or("no message")))
        }
        SdkError::TimeoutError(_) => (Fault::Unavailable, "the request timed out".to_string()),
        SdkError::DispatchFailure(d) => {
            let what = if d.is_io() {
                "cannot connect"
            } else if d.is_timeout() {
                "the connection timed out"
            } else {
                "the request could not be sent"
            };
            (Fault::Unavailable, format!("{what}: {}", aws_sdk_kinesis::error::DisplayErrorContext(&e)))
        }
        SdkError::ResponseError(_) => {
            (Fault::Unavailable, format!("unreadable reply: {}", aws_sdk_kinesis::error::DisplayErrorContext(&e)))
        }
        _ => (Fault::Invalid, aws_sdk_kinesis::error::DisplayErrorContext(&e).to_string()),
    };
    Error::Kinesis { context, fault, message: one_cause(&message) }
}

/// The SDK's context display repeats nested causes; keep each once.
fn one_cause(message: &str) -> String {
    let mut seen: Vec<&str> = Vec::new();
    for part in message.split(": ") {
        if !seen.contains(&part) {
            seen.push(part);
        }
    }
    seen.join(": ")
}

/// A stream as `describe` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct StreamInfo {
    pub name: String,
    /// `CREATING`, `ACTIVE`, `UPDATING` or `DELETING`.
    pub status: String,
    pub open_shards: usize,
    pub retention_hours: i32,
    pub shards: Vec<ShardInfo>,
}

/// One shard and where it came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ShardInfo {
    pub shard_id: String,
    pub parent_shard_id: Option<String>,
    pub adjacent_parent_shard_id: Option<String>,
    pub starting_hash_key: String,
    pub ending_hash_key: String,
    pub starting_sequence_number: String,
    /// Set once the shard is closed (split or merged): no record comes after it.
    pub ending_sequence_number: Option<String>,
}

impl ShardInfo {
    pub fn is_open(&self) -> bool {
        self.ending_sequence_number.is_none()
    }

    /// The shards this one continues (none for an original shard).
    pub fn parents(&self) -> impl Iterator<Item = &str> {
        self.parent_shard_id.as_deref().into_iter().chain(self.adjacent_parent_shard_id.as_deref())
    }
}

/// Where a shard iterator starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartAt {
    TrimHorizon,
    Latest,
    AtTimestamp(chrono::DateTime<chrono::Utc>),
    AtSequence(String),
    AfterSequence(String),
}

/// One record read from a shard.
#[derive(Debug, Clone)]
pub struct ShardRecord {
    pub data: Vec<u8>,
    pub partition_key: String,
    pub sequence_number: String,
    /// Approximate arrival time, microseconds since the epoch (UTC).
    pub arrival_micros: i64,
}

/// One page of `GetRecords`.
#[derive(Debug, Clone)]
pub struct RecordsPage {
    pub records: Vec<ShardRecord>,
    /// `None`: the shard is closed and every record of it has been read.
    pub next_iterator: Option<String>,
    pub millis_behind_latest: Option<i64>,
}

/// The outcome of one put: where it landed, or why it did not.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum PutResult {
    #[serde(rename_all = "PascalCase")]
    Ok { sequence_number: String, shard_id: String },
    #[serde(rename_all = "PascalCase")]
    Failed { error_code: String, error_message: String },
}

/// An opened Kinesis client.
#[derive(Clone, Debug)]
pub struct Kinesis {
    client: aws_sdk_kinesis::Client,
}

impl Kinesis {
    /// A client on aws-config's default chain (environment, profiles, SSO, IMDS, ...), with the
    /// set fields of `aws` winning over it and the Kinesis endpoint of [`AwsConfig::kinesis_endpoint`].
    pub async fn connect(aws: &AwsConfig) -> Self {
        let shared = aws.sdk_config(aws.kinesis_endpoint()).await;
        let config = aws_sdk_kinesis::config::Builder::from(&shared)
            .timeout_config(
                aws_config::timeout::TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(3))
                    .operation_attempt_timeout(Duration::from_secs(10))
                    .build(),
            )
            .build();
        Kinesis { client: aws_sdk_kinesis::Client::from_conf(config) }
    }

    /// Creates a provisioned stream with `shards` shards (it is `CREATING` for a while).
    pub async fn create_stream(&self, name: &str, shards: i32) -> Result<()> {
        if shards < 1 {
            return Err(Error::Config(format!("a stream needs at least one shard (got {shards})")));
        }
        self.client
            .create_stream()
            .stream_name(name)
            .shard_count(shards)
            .send()
            .await
            .map_err(|e| sdk_error(format!("create stream {name}"), e))?;
        Ok(())
    }

    /// Waits until the stream is `ACTIVE` (or `timeout` passes) and describes it.
    pub async fn wait_active(&self, name: &str, timeout: Duration) -> Result<StreamInfo> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let info = self.describe(name).await?;
            if info.status == "ACTIVE" {
                return Ok(info);
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(Error::Kinesis {
                    context: format!("wait for stream {name}"),
                    fault: Fault::InUse,
                    message: format!("still {} after {:.0} s", info.status, timeout.as_secs_f64()),
                });
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Names of every stream of the account and region, sorted.
    pub async fn list_streams(&self) -> Result<Vec<String>> {
        let mut names = Vec::new();
        let mut start: Option<String> = None;
        loop {
            let page = self
                .client
                .list_streams()
                .set_exclusive_start_stream_name(start.take())
                .send()
                .await
                .map_err(|e| sdk_error("list streams", e))?;
            names.extend(page.stream_names().iter().cloned());
            if !page.has_more_streams() || page.stream_names().is_empty() {
                break;
            }
            start = names.last().cloned();
        }
        names.sort();
        names.dedup();
        Ok(names)
    }

    /// Status, retention and every shard (open and closed) with its parents.
    pub async fn describe(&self, name: &str) -> Result<StreamInfo> {
        let summary = self
            .client
            .describe_stream_summary()
            .stream_name(name)
            .send()
            .await
            .map_err(|e| sdk_error(format!("describe stream {name}"), e))?;
        let summary = summary.stream_description_summary().ok_or_else(|| Error::Kinesis {
            context: format!("describe stream {name}"),
            fault: Fault::Unavailable,
            message: "the reply has no stream description".into(),
        })?;
        let status = summary.stream_status().as_str().to_string();
        let shards = if status == "CREATING" || status == "DELETING" { Vec::new() } else { self.shards(name).await? };
        Ok(StreamInfo {
            name: name.to_string(),
            status,
            open_shards: summary.open_shard_count().max(0) as usize,
            retention_hours: summary.retention_period_hours(),
            shards,
        })
    }

    /// Every shard of the stream still within its retention, open and closed.
    pub async fn shards(&self, name: &str) -> Result<Vec<ShardInfo>> {
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let request = match token.take() {
                Some(t) => self.client.list_shards().next_token(t),
                None => self.client.list_shards().stream_name(name),
            };
            let page = request.send().await.map_err(|e| sdk_error(format!("list shards of {name}"), e))?;
            for s in page.shards() {
                let hash = s.hash_key_range();
                let seq = s.sequence_number_range();
                out.push(ShardInfo {
                    shard_id: s.shard_id().to_string(),
                    parent_shard_id: s.parent_shard_id().map(str::to_string),
                    adjacent_parent_shard_id: s.adjacent_parent_shard_id().map(str::to_string),
                    starting_hash_key: hash.map(|h| h.starting_hash_key().to_string()).unwrap_or_default(),
                    ending_hash_key: hash.map(|h| h.ending_hash_key().to_string()).unwrap_or_default(),
                    starting_sequence_number: seq.map(|r| r.starting_sequence_number().to_string()).unwrap_or_default(),
                    ending_sequence_number: seq.and_then(|r| r.ending_sequence_number()).map(str::to_string),
                });
            }
            match page.next_token() {
                Some(t) if !t.is_empty() => token = Some(t.to_string()),
                _ => break,
            }
        }
        Ok(out)
    }

    /// Deletes a stream (it is `DELETING` for a while).
    pub async fn delete_stream(&self, name: &str) -> Result<()> {
        self.client
            .delete_stream()
            .stream_name(name)
            .enforce_consumer_deletion(true)
            .send()
            .await
            .map_err(|e| sdk_error(format!("delete stream {name}"), e))?;
        Ok(())
    }

    /// Splits a shard at `new_starting_hash_key` (default: the middle of its hash range).
    pub async fn split_shard(
        &self,
        name: &str,
        shard: &ShardInfo,
        new_starting_hash_key: Option<String>,
    ) -> Result<()> {
        let key = match new_starting_hash_key {
            Some(k) => k,
            None => middle_hash_key(&shard.starting_hash_key, &shard.ending_hash_key)?,
        };
        self.client
            .split_shard()
            .stream_name(name)
            .shard_to_split(&shard.shard_id)
            .new_starting_hash_key(key)
            .send()
            .await
            .map_err(|e| sdk_error(format!("split shard {} of {name}", shard.shard_id), e))?;
        Ok(())
    }

    /// Merges two adjacent shards.
    pub async fn merge_shards(&self, name: &str, shard: &str, adjacent: &str) -> Result<()> {
        self.client
            .merge_shards()
            .stream_name(name)
            .shard_to_merge(shard)
            .adjacent_shard_to_merge(adjacent)
            .send()
            .await
            .map_err(|e| sdk_error(format!("merge shards {shard} and {adjacent} of {name}"), e))?;
        Ok(())
    }

    /// Puts one record.
    pub async fn put_record(&self, name: &str, data: Vec<u8>, partition_key: &str) -> Result<(String, String)> {
        let out = self
            .client
            .put_record()
            .stream_name(name)
            .data(Blob::new(data))
            .partition_key(partition_key)
            .send()
            .await
            .map_err(|e| sdk_error(format!("put a record to {name}"), e))?;
        Ok((out.sequence_number().to_string(), out.shard_id().to_string()))
    }

    /// Puts several records; each gets its own result, in order (a throttled record fails alone).
    pub async fn put_records(&self, name: &str, records: Vec<(Vec<u8>, String)>) -> Result<Vec<PutResult>> {
        let entries = records
            .into_iter()
            .map(|(data, key)| {
                PutRecordsRequestEntry::builder().data(Blob::new(data)).partition_key(key).build().map_err(|e| {
                    Error::Kinesis {
                        context: format!("put records to {name}"),
                        fault: Fault::Invalid,
                        message: e.to_string(),
                    }
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let out = self
            .client
            .put_records()
            .stream_name(name)
            .set_records(Some(entries))
            .send()
            .await
            .map_err(|e| sdk_error(format!("put records to {name}"), e))?;
        Ok(out
            .records()
            .iter()
            .map(|r| match (r.sequence_number(), r.shard_id()) {
                (Some(seq), Some(shard)) => {
                    PutResult::Ok { sequence_number: seq.to_string(), shard_id: shard.to_string() }
                }
                _ => PutResult::Failed {
                    error_code: r.error_code().unwrap_or("InternalFailure").to_string(),
                    error_message: r.error_message().unwrap_or("").to_string(),
                },
            })
            .collect())
    }

    /// A shard iterator starting at `start`.
    pub async fn shard_iterator(&self, name: &str, shard_id: &str, start: &StartAt) -> Result<String> {
        let mut request = self.client.get_shard_iterator().stream_name(name).shard_id(shard_id);
        request = match start {
            StartAt::TrimHorizon => request.shard_iterator_type(ShardIteratorType::TrimHorizon),
            StartAt::Latest => request.shard_iterator_type(ShardIteratorType::Latest),
            StartAt::AtTimestamp(t) => request
                .shard_iterator_type(ShardIteratorType::AtTimestamp)
                .timestamp(aws_sdk_kinesis::primitives::DateTime::from_millis(t.timestamp_millis())),
            StartAt::AtSequence(s) => {
                request.shard_iterator_type(ShardIteratorType::AtSequenceNumber).starting_sequence_number(s)
            }
            StartAt::AfterSequence(s) => {
                request.shard_iterator_type(ShardIteratorType::AfterSequenceNumber).starting_sequence_number(s)
            }
        };
        let out = request.send().await.map_err(|e| sdk_error(format!("get an iterator of {name}/{shard_id}"), e))?;
        out.shard_iterator().map(str::to_string).ok_or_else(|| Error::Kinesis {
            context: format!("get an iterator of {name}/{shard_id}"),
            fault: Fault::NotFound,
            message: "no iterator in the reply (the shard is closed and empty)".into(),
        })
    }

    /// Reads up to `limit` records from an iterator.
    pub async fn get_records(&self, iterator: &str, limit: Option<i32>) -> Result<RecordsPage> {
        let out = self
            .client
            .get_records()
            .shard_iterator(iterator)
            .set_limit(limit)
            .send()
            .await
            .map_err(|e| sdk_error("get records", e))?;
        let records = out
            .records()
            .iter()
            .map(|r| ShardRecord {
                data: r.data().as_ref().to_vec(),
                partition_key: r.partition_key().unwrap_or_default().to_string(),
                sequence_number: r.sequence_number().to_string(),
                arrival_micros: r
                    .approximate_arrival_timestamp()
                    .and_then(|t| t.to_millis().ok())
                    .map(|ms| ms * 1000)
                    .unwrap_or(0),
            })
            .collect();
        Ok(RecordsPage {
            records,
            next_iterator: out.next_shard_iterator().filter(|s| !s.is_empty()).map(str::to_string),
            millis_behind_latest: out.millis_behind_latest(),
        })
    }
}

/// The hash key halfway between two (decimal, up to 2^128 - 1).
pub fn middle_hash_key(start: &str, end: &str) -> Result<String> {
    let parse =
        |s: &str| s.parse::<u128>().map_err(|e| Error::Config(format!("hash key {s:?} is not a 128-bit number: {e}")));
    let (a, b) = (parse(start)?, parse(end)?);
    if b <= a + 1 {
        return Err(Error::Config(format!("the hash range {a}..{b} is too small to split")));
    }
    Ok((a + (b - a) / 2 + 1).to_string())
}

/// Compares two sequence numbers (decimal strings of up to 128 bits and more): numerically.
pub fn compare_sequence(a: &str, b: &str) -> std::cmp::Ordering {
    let (a, b) = (a.trim_start_matches('0'), b.trim_start_matches('0'));
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cmp::Ordering;

    #[test]
    fn sequence_numbers_compare_as_numbers() {
        assert_eq!(compare_sequence("9", "10"), Ordering::Less);
        assert_eq!(compare_sequence("0010", "10"), Ordering::Equal);
        let a = "49680800452488634081508807369859049132206837656482480130";
        let b = "49680800452488634081508807369861466983846066914831892482";
        assert_eq!(compare_sequence(a, b), Ordering::Less);
        assert_eq!(compare_sequence(b, a), Ordering::Greater);
    }

    #[test]
    fn splits_in_the_middle_of_the_range() {
        assert_eq!(
            middle_hash_key("0", "340282366920938463463374607431768211455").unwrap(),
            "170141183460469231731687303715884105728"
        );
        assert!(middle_hash_key("5", "6").is_err());
    }

    #[test]
    fn service_codes_map_to_faults() {
        assert_eq!(fault_of_code("ProvisionedThroughputExceededException"), Fault::Throttled);
        assert!(fault_of_code("ProvisionedThroughputExceededException").is_transient());
        assert_eq!(fault_of_code("ResourceNotFoundException"), Fault::NotFound);
        assert_eq!(fault_of_code("ExpiredIteratorException"), Fault::ExpiredIterator);
        assert!(!fault_of_code("ValidationException").is_transient());
    }

    #[test]
    fn repeated_causes_are_kept_once() {
        assert_eq!(
            one_cause("dispatch failure: io error: refused: io error: refused"),
            "dispatch failure: io error: refused"
        );
    }
}
