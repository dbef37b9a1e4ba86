//! Kinesis side of the gateway: the resources of API Gateway's Kinesis-proxy REST API, with the
//! mapping templates the original project used, in front of Kinesis (aws-sdk-kinesis).
//!
//! `GET /streams`; `POST|GET|DELETE /streams/{name}`; `PUT /streams/{name}/record` with
//! `{"StreamName", "Data": <json>, "PartitionKey"}` (the record's data is the UTF-8 JSON text of
//! `Data`, as `$util.base64Encode($input.json('$.Data'))` made it); `PUT /streams/{name}/records`
//! with `{"records": [{"data", "partition-key"}]}` (a string `data` is stored as its text, any other
//! value as its JSON text); `GET /streams/{name}/sharditerator?shard-id=...`;
//! `GET /streams/{name}/records` with the `Shard-Iterator` header. Replies are Kinesis' own bodies;
//! errors are the gateway's JSON envelope. A 200 means Kinesis stored the record.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{Path, Query, Request, State as AxumState};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use axum::Router;
use base64::Engine;
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{json, Value};

use super::rest::check_api_key;
use super::{ApiError, State};
use crate::error::Error;
use crate::kinesis::{
    Fault, PutResult, StartAt, MAX_PARTITION_KEY_CHARS, MAX_PUT_RECORDS, MAX_PUT_RECORDS_BYTES, MAX_RECORD_BYTES,
};

pub(super) fn routes() -> Router<Arc<State>> {
    Router::new()
        .route("/streams", get(list_streams))
        .route("/streams/{name}", get(describe_stream).post(create_stream).delete(delete_stream))
        .route("/streams/{name}/record", put(put_record))
        .route("/streams/{name}/records", put(put_records).get(get_records))
        .route("/streams/{name}/sharditerator", get(shard_iterator))
}

/// The `{name}` of the path, checked against Kinesis' naming rules and the allowlist.
struct StreamName(String);

impl axum::extract::FromRequestParts<Arc<State>> for StreamName {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, state: &Arc<State>) -> Result<Self, Response> {
        check_api_key(state, &parts.headers).map_err(kinesis_reply)?;
        let name = match Path::<String>::from_request_parts(parts, state).await {
            Ok(Path(name)) => name,
            Err(e) => {
                return Err(kinesis_reply(ApiError::malformed(format!(
                    "invalid stream in the request path: {}",
                    e.body_text()
                ))))
            }
        };
        if !valid_stream_name(&name) {
            return Err(kinesis_reply(ApiError::new(
                StatusCode::NOT_FOUND,
                40401,
                format!("stream {name:?} not found: not a valid stream name (1-128 of a-z A-Z 0-9 _ . -)"),
            )));
        }
        if let Some(allowed) = &state.allowed_streams {
            if !allowed.contains(&name) {
                return Err(kinesis_reply(ApiError::forbidden(format!(
                    "stream {name:?} is not in the gateway's allowlist"
                ))));
            }
        }
        Ok(StreamName(name))
    }
}

/// Kinesis' legal stream names: 1..=128 of `[a-zA-Z0-9_.-]`.
fn valid_stream_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.' || b == b'-')
}

/// An error of the Kinesis side: the envelope, as plain JSON.
fn kinesis_reply(e: ApiError) -> Response {
    e.with_content_type("application/json").into_response()
}

/// A Kinesis failure as the gateway's reply: throttling and outages are a retriable 503, never
/// a 200.
fn from_kinesis(e: Error) -> ApiError {
    let message = e.to_string();
    match &e {
        Error::Kinesis { fault, .. } => match fault {
            Fault::NotFound => ApiError::new(StatusCode::NOT_FOUND, 40401, message),
            Fault::InUse => ApiError::new(StatusCode::CONFLICT, 40901, message),
            Fault::Throttled | Fault::Unavailable => ApiError::kafka_retriable(message),
            Fault::ExpiredIterator | Fault::Invalid => ApiError::invalid_payload(message),
            Fault::Denied => ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, 50002, message),
        },
        Error::Config(_) => ApiError::invalid_payload(message),
        _ => ApiError::kafka(message),
    }
}

fn ok(body: Value) -> Response {
    (StatusCode::OK, axum::Json(body)).into_response()
}

/// Runs a handler body, answering its error in the envelope.
async fn reply(state: &State, started: Instant, body_len: usize, result: Result<Value, ApiError>) -> Response {
    let response = match result {
        Ok(body) => ok(body),
        Err(e) => {
            if e.status.is_server_error() {
                tracing::warn!(code = e.error_code, message = %e.message, "kinesis request failed");
            } else {
                tracing::debug!(code = e.error_code, message = %e.message, "kinesis request rejected");
            }
            kinesis_reply(e)
        }
    };
    state.metrics.record_request(response.status().as_u16(), started.elapsed(), body_len);
    response
}

async fn list_streams(AxumState(state): AxumState<Arc<State>>, headers: HeaderMap) -> Response {
    let started = Instant::now();
    let result = async {
        check_api_key(&state, &headers)?;
        let mut names = state.kinesis.list_streams().await.map_err(from_kinesis)?;
        names.retain(|n| state.allowed_streams.as_ref().is_none_or(|a| a.contains(n)));
        Ok(json!({"HasMoreStreams": false, "StreamNames": names}))
    }
    .await;
    reply(&state, started, 0, result).await
}

async fn describe_stream(AxumState(state): AxumState<Arc<State>>, StreamName(name): StreamName) -> Response {
    let started = Instant::now();
    let result = async {
        let info = state.kinesis.describe(&name).await.map_err(from_kinesis)?;
        let shards: Vec<Value> = info
            .shards
            .iter()
            .map(|s| {
                let mut shard = json!({
                    "ShardId": s.shard_id,
                    "HashKeyRange": {"StartingHashKey": s.starting_hash_key, "EndingHashKey": s.ending_hash_key},
                    "SequenceNumberRange": {"StartingSequenceNumber": s.starting_sequence_number},
                });
                if let Some(p) = &s.parent_shard_id {
                    shard["ParentShardId"] = json!(p);
                }
                if let Some(p) = &s.adjacent_parent_shard_id {
                    shard["AdjacentParentShardId"] = json!(p);
                }
                if let Some(end) = &s.ending_sequence_number {
                    shard["SequenceNumberRange"]["EndingSequenceNumber"] = json!(end);
                }
                shard
            })
            .collect();
        Ok(json!({"StreamDescription": {
            "StreamName": info.name,
            "StreamStatus": info.status,
            "RetentionPeriodHours": info.retention_hours,
            "HasMoreShards": false,
            "Shards": shards,
        }}))
    }
    .await;
    reply(&state, started, 0, result).await
}

#[derive(Deserialize)]
struct CreateBody {
    #[serde(rename = "ShardCount", alias = "shardCount", alias = "shard-count")]
    shard_count: Option<i64>,
}

async fn create_stream(
    AxumState(state): AxumState<Arc<State>>,
    StreamName(name): StreamName,
    request: Request,
) -> Response {
    let started = Instant::now();
    let body = body_bytes(request).await;
    let len = body.as_ref().map_or(0, |b| b.len());
    let result = async {
        let body = body?;
        // The tutorial's mapping template: ShardCount from the body, 5 when it is absent.
        let shards = if body.trim_ascii().is_empty() {
            5
        } else {
            let parsed: CreateBody = parse_json(&body, "request body must be {\"ShardCount\": <shards>}")?;
            parsed.shard_count.unwrap_or(5)
        };
        let shards = i32::try_from(shards).ok().filter(|n| *n >= 1).ok_or_else(|| {
            ApiError::invalid_payload(format!("ShardCount must be a positive integer (got {shards})"))
        })?;
        state.kinesis.create_stream(&name, shards).await.map_err(from_kinesis)?;
        Ok(json!({}))
    }
    .await;
    reply(&state, started, len, result).await
}

async fn delete_stream(AxumState(state): AxumState<Arc<State>>, StreamName(name): StreamName) -> Response {
    let started = Instant::now();
    let result = async {
        state.kinesis.delete_stream(&name).await.map_err(from_kinesis)?;
        Ok(json!({}))
    }
    .await;
    reply(&state, started, 0, result).await
}

async fn body_bytes(request: Request) -> Result<bytes::Bytes, ApiError> {
    // The guard has read the whole body already (within the size and time limits).
    axum::body::to_bytes(request.into_body(), usize::MAX)
        .await
        .map_err(|e| ApiError::malformed(format!("cannot read the request body: {e}")))
}

/// Parses a JSON object body: 400 if it is not JSON, 422 if it is JSON of the wrong shape.
fn parse_json<'a, T: Deserialize<'a>>(body: &'a [u8], shape: &str) -> Result<T, ApiError> {
    if !body.trim_ascii_start().starts_with(b"{") {
        return Err(match serde_json::from_slice::<serde::de::IgnoredAny>(body) {
            Ok(_) => ApiError::invalid_payload(format!("{shape}: the body is not an object")),
            Err(e) => ApiError::malformed(format!("request body is not valid JSON: {e}")),
        });
    }
    serde_json::from_slice(body).map_err(|e| match e.classify() {
        serde_json::error::Category::Data => ApiError::invalid_payload(format!("{shape}: {e}")),
        _ => ApiError::malformed(format!("request body is not valid JSON: {e}")),
    })
}

/// The body of `PUT /streams/{name}/record`.
#[derive(Deserialize)]
struct PutRecordBody<'a> {
    #[serde(rename = "StreamName", default)]
    stream_name: Option<String>,
    #[serde(rename = "Data", default, borrow)]
    data: Option<&'a RawValue>,
    #[serde(rename = "PartitionKey", default)]
    partition_key: Option<Value>,
}

fn partition_key(value: Option<&Value>, what: &str) -> Result<String, ApiError> {
    let key = match value {
        None | Some(Value::Null) => return Err(ApiError::invalid_payload(format!("{what} is missing"))),
        Some(Value::String(s)) => s.clone(),
        // API Gateway's template put the value's text in a string.
        Some(v @ (Value::Number(_) | Value::Bool(_))) => v.to_string(),
        Some(_) => return Err(ApiError::invalid_payload(format!("{what} must be a string"))),
    };
    let chars = key.chars().count();
    if chars == 0 || chars > MAX_PARTITION_KEY_CHARS {
        return Err(ApiError::invalid_payload(format!(
            "{what} must have 1 to {MAX_PARTITION_KEY_CHARS} characters (got {chars})"
        )));
    }
    Ok(key)
}

fn check_record_size(data: &[u8], key: &str, what: &str) -> Result<(), ApiError> {
    let size = data.len() + key.len();
    if size > MAX_RECORD_BYTES {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            413,
            format!("{what} is {size} bytes with its partition key: Kinesis takes at most {MAX_RECORD_BYTES}"),
        ));
    }
    Ok(())
}

/// The record a `PUT .../record` body asks for: the data bytes and partition key.
fn parse_put_record(name: &str, body: &[u8]) -> Result<(Vec<u8>, String), ApiError> {
    const SHAPE: &str = "request body must be {\"StreamName\": ..., \"Data\": <json>, \"PartitionKey\": ...}";
    let parsed: PutRecordBody<'_> = parse_json(body, SHAPE)?;
    if let Some(given) = &parsed.stream_name {
        if given != name {
            return Err(ApiError::invalid_payload(format!(
                "StreamName {given:?} differs from the stream of the path {name:?}"
            )));
        }
    }
    let data = match parsed.data {
        None => return Err(ApiError::invalid_payload(format!("{SHAPE}: Data is missing"))),
        Some(raw) if raw.get() == "null" => return Err(ApiError::invalid_payload("Data must not be null")),
        Some(raw) => raw.get().as_bytes().to_vec(),
    };
    let key = partition_key(parsed.partition_key.as_ref(), "PartitionKey")?;
    check_record_size(&data, &key, "Data")?;
    Ok((data, key))
}

async fn put_record(
    AxumState(state): AxumState<Arc<State>>,
    StreamName(name): StreamName,
    request: Request,
) -> Response {
    let started = Instant::now();
    let body = body_bytes(request).await;
    let len = body.as_ref().map_or(0, |b| b.len());
    let result = async {
        let (data, key) = parse_put_record(&name, &body?)?;
        match state.kinesis.put_record(&name, data, &key).await {
            Ok((sequence_number, shard_id)) => {
                state.metrics.record_produced(1, 0);
                Ok(json!({"SequenceNumber": sequence_number, "ShardId": shard_id}))
            }
            Err(e) => {
                state.metrics.record_produced(0, 1);
                Err(from_kinesis(e))
            }
        }
    }
    .await;
    reply(&state, started, len, result).await
}

#[derive(Deserialize)]
struct PutRecordsBody<'a> {
    #[serde(alias = "Records", borrow)]
    records: Vec<&'a RawValue>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PutRecordsEntry<'a> {
    #[serde(alias = "Data", default, borrow)]
    data: Option<&'a RawValue>,
    #[serde(rename = "partition-key", alias = "PartitionKey", default)]
    partition_key: Option<Value>,
}

fn parse_put_records(body: &[u8]) -> Result<Vec<(Vec<u8>, String)>, ApiError> {
    const SHAPE: &str = "request body must be {\"records\": [{\"data\": ..., \"partition-key\": ...}, ...]}";
    if body.len() > MAX_PUT_RECORDS_BYTES {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            413,
            format!(
                "request body of {} bytes: Kinesis takes at most {MAX_PUT_RECORDS_BYTES} per PutRecords",
                body.len()
            ),
        ));
    }
    let parsed: PutRecordsBody<'_> = parse_json(body, SHAPE)?;
    if parsed.records.is_empty() || parsed.records.len() > MAX_PUT_RECORDS {
        return Err(ApiError::invalid_payload(format!(
            "records must hold 1 to {MAX_PUT_RECORDS} records (got {})",
            parsed.records.len()
        )));
    }
    parsed
        .records
        .iter()
        .enumerate()
        .map(|(i, raw)| {
            if !raw.get().starts_with('{') {
                return Err(ApiError::invalid_payload(format!(
                    "records[{i}] must be an object with \"data\" and \"partition-key\""
                )));
            }
            let entry: PutRecordsEntry<'_> =
                serde_json::from_str(raw.get()).map_err(|e| ApiError::invalid_payload(format!("records[{i}]: {e}")))?;
            let data = match entry.data {
                None => return Err(ApiError::invalid_payload(format!("records[{i}].data is missing"))),
                Some(raw) if raw.get() == "null" => {
                    return Err(ApiError::invalid_payload(format!("records[{i}].data must not be null")))
                }
                Some(raw) => match serde_json::from_str::<String>(raw.get()) {
                    Ok(text) => text.into_bytes(),
                    Err(_) => raw.get().as_bytes().to_vec(),
                },
            };
            let key = partition_key(entry.partition_key.as_ref(), &format!("records[{i}].partition-key"))?;
            check_record_size(&data, &key, &format!("records[{i}].data"))?;
            Ok((data, key))
        })
        .collect()
}

async fn put_records(
    AxumState(state): AxumState<Arc<State>>,
    StreamName(name): StreamName,
    request: Request,
) -> Response {
    let started = Instant::now();
    let body = body_bytes(request).await;
    let len = body.as_ref().map_or(0, |b| b.len());
    let result = async {
        let records = parse_put_records(&body?)?;
        let count = records.len() as u64;
        match state.kinesis.put_records(&name, records).await {
            Ok(results) => {
                let failed = results.iter().filter(|r| matches!(r, PutResult::Failed { .. })).count();
                state.metrics.record_produced(count - failed as u64, failed as u64);
                Ok(json!({"FailedRecordCount": failed, "Records": results}))
            }
            Err(e) => {
                state.metrics.record_produced(0, count);
                Err(from_kinesis(e))
            }
        }
    }
    .await;
    reply(&state, started, len, result).await
}

#[derive(Deserialize)]
struct IteratorQuery {
    #[serde(rename = "shard-id")]
    shard_id: Option<String>,
    /// TRIM_HORIZON (the tutorial's), LATEST, AT_TIMESTAMP, AT_SEQUENCE_NUMBER, AFTER_SEQUENCE_NUMBER.
    #[serde(rename = "type")]
    kind: Option<String>,
    #[serde(rename = "sequence-number")]
    sequence_number: Option<String>,
    /// RFC 3339 or seconds since the epoch.
    timestamp: Option<String>,
}

fn start_of(q: &IteratorQuery) -> Result<StartAt, ApiError> {
    let need_seq = || {
        q.sequence_number
            .clone()
            .ok_or_else(|| ApiError::malformed("the sequence-number query parameter is required for this type"))
    };
    match q.kind.as_deref().unwrap_or("TRIM_HORIZON").to_ascii_uppercase().as_str() {
        "TRIM_HORIZON" => Ok(StartAt::TrimHorizon),
        "LATEST" => Ok(StartAt::Latest),
        "AT_SEQUENCE_NUMBER" => Ok(StartAt::AtSequence(need_seq()?)),
        "AFTER_SEQUENCE_NUMBER" => Ok(StartAt::AfterSequence(need_seq()?)),
        "AT_TIMESTAMP" => {
            let raw = q.timestamp.as_deref().ok_or_else(|| {
                ApiError::malformed("the timestamp query parameter is required for AT_TIMESTAMP")
            })?;
            let at = chrono::DateTime::parse_from_rfc3339(raw)
                .map(|t| t.with_timezone(&chrono::Utc))
                .ok()
                .or_else(|| raw.parse::<f64>().ok().and_then(|s| chrono::DateTime::from_timestamp_micros((s * 1e6) as i64)))
                .ok_or_else(|| ApiError::malformed(format!("timestamp {raw:?} is neither RFC 3339 nor epoch seconds")))?;
            Ok(StartAt::AtTimestamp(at))
        }
        other => Err(ApiError::malformed(format!(
            "unknown iterator type {other:?}: use TRIM_HORIZON, LATEST, AT_TIMESTAMP, AT_SEQUENCE_NUMBER or AFTER_SEQUENCE_NUMBER"
        ))),
    }
}

async fn shard_iterator(
    AxumState(state): AxumState<Arc<State>>,
    StreamName(name): StreamName,
    query: Result<Query<IteratorQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let started = Instant::now();
    let result = async {
        let Query(q) = query.map_err(|e| ApiError::malformed(format!("bad query: {}", e.body_text())))?;
        let shard =
            q.shard_id.clone().ok_or_else(|| ApiError::malformed("the shard-id query parameter is required"))?;
        let start = start_of(&q)?;
        let iterator = state.kinesis.shard_iterator(&name, &shard, &start).await.map_err(from_kinesis)?;
        Ok(json!({"ShardIterator": iterator}))
    }
    .await;
    reply(&state, started, 0, result).await
}

#[derive(Deserialize)]
struct RecordsQuery {
    limit: Option<i32>,
}

async fn get_records(
    AxumState(state): AxumState<Arc<State>>,
    StreamName(_name): StreamName,
    headers: HeaderMap,
    query: Result<Query<RecordsQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let started = Instant::now();
    let result = async {
        let Query(q) = query.map_err(|e| ApiError::malformed(format!("bad query: {}", e.body_text())))?;
        let iterator = headers
            .get("shard-iterator")
            .and_then(|v| v.to_str().ok())
            .filter(|v| !v.is_empty())
            .ok_or_else(|| ApiError::malformed("the Shard-Iterator header is required"))?;
        if matches!(q.limit, Some(n) if !(1..=10_000).contains(&n)) {
            return Err(ApiError::malformed("limit must be 1 to 10000"));
        }
        let page = state.kinesis.get_records(iterator, q.limit).await.map_err(from_kinesis)?;
        let records: Vec<Value> = page
            .records
            .iter()
            .map(|r| {
                json!({
                    "Data": base64::engine::general_purpose::STANDARD.encode(&r.data),
                    "PartitionKey": r.partition_key,
                    "SequenceNumber": r.sequence_number,
                    "ApproximateArrivalTimestamp": r.arrival_micros as f64 / 1e6,
                })
            })
            .collect();
        Ok(json!({
            "Records": records,
            "NextShardIterator": page.next_iterator,
            "MillisBehindLatest": page.millis_behind_latest,
        }))
    }
    .await;
    reply(&state, started, 0, result).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code<T>(r: Result<T, ApiError>) -> Option<(u16, u32)> {
        r.err().map(|e| (e.status.as_u16(), e.error_code))
    }

    #[test]
    fn a_record_is_the_json_text_of_its_data() {
        let body = br#"{"StreamName": "s", "Data": {"index": 7, "n": 123456789012345678901, "t": "2020-01-01 00:00:00"}, "PartitionKey": "partition-1"}"#;
        let (data, key) = parse_put_record("s", body).unwrap();
        assert_eq!(
            std::str::from_utf8(&data).unwrap(),
            r#"{"index": 7, "n": 123456789012345678901, "t": "2020-01-01 00:00:00"}"#
        );
        assert_eq!(key, "partition-1");
    }

    #[test]
    fn bad_records_get_the_right_codes() {
        assert_eq!(code(parse_put_record("s", b"{nope")), Some((400, 400)));
        assert_eq!(code(parse_put_record("s", br#"{"Data": {"a": 1}}"#)), Some((422, 42206)));
        assert_eq!(code(parse_put_record("s", br#"{"PartitionKey": "p"}"#)), Some((422, 42206)));
        assert_eq!(code(parse_put_record("s", br#"{"Data": null, "PartitionKey": "p"}"#)), Some((422, 42206)));
        assert_eq!(code(parse_put_record("s", br#"{"Data": 1, "PartitionKey": ""}"#)), Some((422, 42206)));
        assert_eq!(
            code(parse_put_record("s", br#"{"StreamName": "t", "Data": 1, "PartitionKey": "p"}"#)),
            Some((422, 42206))
        );
        let big = format!(r#"{{"Data": "{}", "PartitionKey": "p"}}"#, "x".repeat(MAX_RECORD_BYTES));
        assert_eq!(code(parse_put_record("s", big.as_bytes())), Some((413, 413)));
    }

    #[test]
    fn put_records_takes_the_tutorial_shape() {
        let body =
            br#"{"records": [{"data": "some text", "partition-key": "a"}, {"data": {"x": 1}, "partition-key": "b"}]}"#;
        let records = parse_put_records(body).unwrap();
        assert_eq!(records[0], (b"some text".to_vec(), "a".to_string()));
        assert_eq!(records[1], (br#"{"x": 1}"#.to_vec(), "b".to_string()));
        assert_eq!(code(parse_put_records(br#"{"records": []}"#)), Some((422, 42206)));
        assert_eq!(code(parse_put_records(br#"{"records": [["a", 1]]}"#)), Some((422, 42206)));
        let many = format!(r#"{{"records": [{}]}}"#, vec![r#"{"data": 1, "partition-key": "k"}"#; 501].join(","));
        assert_eq!(code(parse_put_records(many.as_bytes())), Some((422, 42206)));
    }

    #[test]
    fn stream_names_follow_kinesis_rules() {
        assert!(valid_stream_name("streaming-0eaf46a0829f-pin"));
        for bad in ["", "a/b", "a b", &"x".repeat(129)] {
            assert!(!valid_stream_name(bad), "{bad:?}");
        }
    }
}
