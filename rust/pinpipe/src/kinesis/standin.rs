//! An in-process stand-in for Kinesis, for `pinpipe demo` (the way librdkafka's mock cluster
//! stands in for Kafka): an HTTP server on 127.0.0.1 speaking the Kinesis JSON 1.1 API that
//! aws-sdk-kinesis speaks (`X-Amz-Target: Kinesis_20131202.<Operation>`), so the gateway, the
//! reader and the Delta code are exactly the ones used against Kinesis. It keeps everything in
//! memory and implements what the pipeline calls: CreateStream, DeleteStream, ListStreams,
//! DescribeStreamSummary, ListShards, PutRecord, PutRecords, GetShardIterator, GetRecords. Shards
//! are never resharded and iterators never expire; it is not a test double for Kinesis' limits
//! (the tests run against kinesalite).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use base64::Engine;
use md5::{Digest, Md5};
use serde_json::{json, Value};

use crate::error::{Error, Result};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

struct Record {
    sequence: u128,
    key: String,
    data: Vec<u8>,
    arrival: f64,
}

struct Shard {
    id: String,
    start_hash: u128,
    end_hash: u128,
    records: Vec<Record>,
}

#[derive(Default)]
struct Streams {
    streams: BTreeMap<String, Vec<Shard>>,
    next_sequence: u128,
}

type Shared = Arc<Mutex<Streams>>;

/// A running stand-in; stops when dropped.
pub struct StandIn {
    addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl StandIn {
    /// Starts the stand-in on a free port of 127.0.0.1.
    pub async fn start() -> Result<Self> {
        let listener =
            tokio::net::TcpListener::bind(("127.0.0.1", 0)).await.map_err(Error::io("start the Kinesis stand-in"))?;
        let addr = listener.local_addr().map_err(Error::io("start the Kinesis stand-in"))?;
        let state: Shared =
            Arc::new(Mutex::new(Streams { next_sequence: 49_000_000_000_000_000_000, ..Default::default() }));
        let app = Router::new().route("/", post(handle)).with_state(state);
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(StandIn { addr, task })
    }

    /// The endpoint URL to give the AWS SDK.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for StandIn {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A Kinesis error reply: `{"__type": code, "message"}` with status 400.
struct Fail {
    code: &'static str,
    message: String,
}

impl IntoResponse for Fail {
    fn into_response(self) -> Response {
        let body = json!({"__type": self.code, "message": self.message});
        (StatusCode::BAD_REQUEST, [("content-type", "application/x-amz-json-1.1")], body.to_string()).into_response()
    }
}

fn error(code: &'static str, message: impl Into<String>) -> Fail {
    Fail { code, message: message.into() }
}

fn reply(body: Value) -> Response {
    (StatusCode::OK, [("content-type", "application/x-amz-json-1.1")], body.to_string()).into_response()
}

fn text<'a>(body: &'a Value, field: &str) -> std::result::Result<&'a str, Fail> {
    body.get(field).and_then(Value::as_str).ok_or_else(|| error("ValidationException", format!("{field} is required")))
}

async fn handle(State(state): State<Shared>, headers: HeaderMap, body: bytes::Bytes) -> Response {
    let target = headers.get("x-amz-target").and_then(|v| v.to_str().ok()).unwrap_or("");
    let Some(operation) = target.strip_prefix("Kinesis_20131202.") else {
        return error("UnknownOperationException", format!("unknown target {target:?}")).into_response();
    };
    let body: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => return error("SerializationException", e.to_string()).into_response(),
    };
    let mut streams = state.lock().expect("stand-in lock");
    match run(&mut streams, operation, &body) {
        Ok(v) => reply(v),
        Err(f) => f.into_response(),
    }
}

fn now() -> f64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
}

fn shard_of(shards: &[Shard], key: &str) -> usize {
    let hash = u128::from_be_bytes(Md5::digest(key.as_bytes()).into());
    shards.iter().position(|s| (s.start_hash..=s.end_hash).contains(&hash)).unwrap_or(0)
}

fn put(streams: &mut Streams, name: &str, data: &str, key: &str) -> std::result::Result<(String, String), Fail> {
    let data = B64.decode(data).map_err(|e| error("ValidationException", format!("Data is not base64: {e}")))?;
    streams.next_sequence += 1;
    let sequence = streams.next_sequence;
    let shards = streams
        .streams
        .get_mut(name)
        .ok_or_else(|| error("ResourceNotFoundException", format!("Stream {name} not found")))?;
    let i = shard_of(shards, key);
    shards[i].records.push(Record { sequence, key: key.to_string(), data, arrival: now() });
    Ok((sequence.to_string(), shards[i].id.clone()))
}

fn run(streams: &mut Streams, operation: &str, body: &Value) -> std::result::Result<Value, Fail> {
    let not_found = |name: &str| error("ResourceNotFoundException", format!("Stream {name} not found"));
    match operation {
        "CreateStream" => {
            let name = text(body, "StreamName")?;
            let count = body.get("ShardCount").and_then(Value::as_u64).unwrap_or(1).clamp(1, 64) as u128;
            if streams.streams.contains_key(name) {
                return Err(error("ResourceInUseException", format!("Stream {name} already exists")));
            }
            let step = u128::MAX / count;
            let shards = (0..count)
                .map(|i| Shard {
                    id: format!("shardId-{i:012}"),
                    start_hash: i * step,
                    end_hash: if i == count - 1 { u128::MAX } else { (i + 1) * step - 1 },
                    records: Vec::new(),
                })
                .collect();
            streams.streams.insert(name.to_string(), shards);
            Ok(json!({}))
        }
        "DeleteStream" => {
            let name = text(body, "StreamName")?;
            streams.streams.remove(name).ok_or_else(|| not_found(name))?;
            Ok(json!({}))
        }
        "ListStreams" => {
            let names: Vec<&String> = streams.streams.keys().collect();
            Ok(json!({"StreamNames": names, "HasMoreStreams": false}))
        }
        "DescribeStreamSummary" => {
            let name = text(body, "StreamName")?;
            let shards = streams.streams.get(name).ok_or_else(|| not_found(name))?;
            Ok(json!({"StreamDescriptionSummary": {
                "StreamName": name,
                "StreamARN": format!("arn:aws:kinesis:us-east-1:000000000000:stream/{name}"),
                "StreamStatus": "ACTIVE",
                "RetentionPeriodHours": 24,
                "StreamCreationTimestamp": 0.0,
                "EnhancedMonitoring": [],
                "OpenShardCount": shards.len(),
            }}))
        }
        "ListShards" => {
            let name = text(body, "StreamName")?;
            let shards = streams.streams.get(name).ok_or_else(|| not_found(name))?;
            let list: Vec<Value> = shards
                .iter()
                .map(|s| {
                    json!({
                        "ShardId": s.id,
                        "HashKeyRange": {"StartingHashKey": s.start_hash.to_string(), "EndingHashKey": s.end_hash.to_string()},
                        "SequenceNumberRange": {"StartingSequenceNumber": "0"},
                    })
                })
                .collect();
            Ok(json!({"Shards": list}))
        }
        "PutRecord" => {
            let name = text(body, "StreamName")?.to_string();
            let (seq, shard) = put(streams, &name, text(body, "Data")?, text(body, "PartitionKey")?)?;
            Ok(json!({"SequenceNumber": seq, "ShardId": shard}))
        }
        "PutRecords" => {
            let name = text(body, "StreamName")?.to_string();
            let records = body.get("Records").and_then(Value::as_array).cloned().unwrap_or_default();
            let mut out = Vec::new();
            for r in &records {
                let (seq, shard) = put(streams, &name, text(r, "Data")?, text(r, "PartitionKey")?)?;
                out.push(json!({"SequenceNumber": seq, "ShardId": shard}));
            }
            Ok(json!({"FailedRecordCount": 0, "Records": out}))
        }
        "GetShardIterator" => {
            let name = text(body, "StreamName")?;
            let shard_id = text(body, "ShardId")?;
            let shards = streams.streams.get(name).ok_or_else(|| not_found(name))?;
            let shard = shards
                .iter()
                .find(|s| s.id == shard_id)
                .ok_or_else(|| error("ResourceNotFoundException", format!("Shard {shard_id} not found")))?;
            let seq = |field: &str| {
                text(body, field)?.parse::<u128>().map_err(|_| error("InvalidArgumentException", "bad sequence number"))
            };
            // The position is the index of the next record to read.
            let index = match text(body, "ShardIteratorType")? {
                "TRIM_HORIZON" => 0,
                "LATEST" => shard.records.len(),
                "AT_SEQUENCE_NUMBER" => {
                    let at = seq("StartingSequenceNumber")?;
                    shard.records.partition_point(|r| r.sequence < at)
                }
                "AFTER_SEQUENCE_NUMBER" => {
                    let after = seq("StartingSequenceNumber")?;
                    shard.records.partition_point(|r| r.sequence <= after)
                }
                "AT_TIMESTAMP" => {
                    let t = body.get("Timestamp").and_then(Value::as_f64).unwrap_or(0.0);
                    shard.records.partition_point(|r| r.arrival < t)
                }
                other => return Err(error("InvalidArgumentException", format!("unknown iterator type {other}"))),
            };
            Ok(json!({"ShardIterator": iterator(name, shard_id, index)}))
        }
        "GetRecords" => {
            let raw = text(body, "ShardIterator")?;
            let (name, shard_id, index) =
                parse_iterator(raw).ok_or_else(|| error("InvalidArgumentException", "bad shard iterator"))?;
            let limit = body.get("Limit").and_then(Value::as_u64).unwrap_or(10_000).clamp(1, 10_000) as usize;
            let shards = streams.streams.get(&name).ok_or_else(|| not_found(&name))?;
            let shard = shards
                .iter()
                .find(|s| s.id == shard_id)
                .ok_or_else(|| error("ResourceNotFoundException", format!("Shard {shard_id} not found")))?;
            let end = (index + limit).min(shard.records.len());
            let page: Vec<Value> = shard.records[index.min(end)..end]
                .iter()
                .map(|r| {
                    json!({
                        "SequenceNumber": r.sequence.to_string(),
                        "ApproximateArrivalTimestamp": r.arrival,
                        "Data": B64.encode(&r.data),
                        "PartitionKey": r.key,
                    })
                })
                .collect();
            let behind = shard.records.last().zip(shard.records.get(end.saturating_sub(1)));
            let millis = match behind {
                Some((last, at)) if end < shard.records.len() => ((last.arrival - at.arrival) * 1000.0).max(1.0) as i64,
                _ => 0,
            };
            Ok(
                json!({"Records": page, "NextShardIterator": iterator(&name, &shard_id, end), "MillisBehindLatest": millis}),
            )
        }
        other => Err(error("UnknownOperationException", format!("the stand-in does not implement {other}"))),
    }
}

fn iterator(stream: &str, shard: &str, index: usize) -> String {
    B64.encode(format!("{stream}\n{shard}\n{index}"))
}

fn parse_iterator(raw: &str) -> Option<(String, String, usize)> {
    let text = String::from_utf8(B64.decode(raw).ok()?).ok()?;
    let mut parts = text.split('\n');
    Some((parts.next()?.to_string(), parts.next()?.to_string(), parts.next()?.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{AwsConfig, Secret};
    use crate::kinesis::{Kinesis, StartAt};

    #[tokio::test]
    async fn the_aws_sdk_puts_and_reads_through_the_stand_in() {
        let standin = StandIn::start().await.unwrap();
        let aws = AwsConfig {
            access_key_id: Some("demo".into()),
            secret_access_key: Some(Secret::new("demo")),
            region: Some("us-east-1".into()),
            kinesis_endpoint_url: Some(standin.url()),
            ..Default::default()
        };
        let k = Kinesis::connect(&aws).await;
        k.create_stream("s", 2).await.unwrap();
        assert_eq!(k.describe("s").await.unwrap().open_shards, 2);
        let mut put = Vec::new();
        for i in 0..20 {
            put.push(k.put_record("s", format!("{{\"i\":{i}}}").into_bytes(), &format!("key-{i}")).await.unwrap());
        }
        let mut read = 0;
        for shard in k.shards("s").await.unwrap() {
            let it = k.shard_iterator("s", &shard.shard_id, &StartAt::TrimHorizon).await.unwrap();
            let page = k.get_records(&it, None).await.unwrap();
            read += page.records.len();
            assert_eq!(page.millis_behind_latest, Some(0));
            if let Some(last) = page.records.last() {
                let after = StartAt::AfterSequence(last.sequence_number.clone());
                let it = k.shard_iterator("s", &shard.shard_id, &after).await.unwrap();
                assert!(k.get_records(&it, None).await.unwrap().records.is_empty());
            }
        }
        assert_eq!(read, 20);
        assert!(put.iter().any(|(_, shard)| shard == "shardId-000000000001"), "keys spread over the shards");
    }
}
