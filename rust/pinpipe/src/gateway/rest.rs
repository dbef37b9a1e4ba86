//! Kafka side of the gateway: the Confluent REST Proxy v2 produce API.
//!
//! `POST /topics/{topic}` with `{"records":[{"key"?, "value", "partition"?}]}` in the json or binary
//! embedded format; `GET /topics`; `GET /topics/{topic}`. A 200 is sent only once the broker has
//! acknowledged every record of the request (acks=all, idempotent producer).

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Path, Request, State as AxumState};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use base64::Engine;
use rdkafka::error::KafkaError;
use rdkafka::producer::{FutureRecord, Producer};
use rdkafka::types::RDKafkaErrorCode;
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{json, Value};

use super::{ApiError, State};

/// How long a topic's cached metadata is trusted.
const METADATA_TTL: Duration = Duration::from_secs(30);
/// How long "this topic does not exist" is remembered.
const MISSING_TTL: Duration = Duration::from_secs(1);

const KAFKA_V2_JSON: &str = "application/vnd.kafka.v2+json";

pub(super) fn routes() -> Router<Arc<State>> {
    Router::new().route("/topics", get(list_topics)).route("/topics/{topic}", get(describe_topic).post(produce))
}

/// The embedded format of a produce request, from its Content-Type.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Format {
    Json,
    Binary,
}

fn format_of(headers: &HeaderMap) -> Result<Format, ApiError> {
    let raw = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let mime = raw.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    match mime.as_str() {
        "application/vnd.kafka.json.v2+json" | "application/json" => Ok(Format::Json),
        "application/vnd.kafka.binary.v2+json" => Ok(Format::Binary),
        _ => Err(ApiError::unsupported_media_type(raw)),
    }
}

fn check_accept(headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(raw) = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()) else {
        return Ok(());
    };
    let acceptable = raw.split(',').any(|part| {
        let mime = part.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
        matches!(
            mime.as_str(),
            "" | "*/*" | "application/*" | "application/json" | KAFKA_V2_JSON | "application/vnd.kafka+json"
        )
    });
    if acceptable {
        Ok(())
    } else {
        Err(ApiError::not_acceptable(raw))
    }
}

pub(super) fn check_api_key(state: &State, headers: &HeaderMap) -> Result<(), ApiError> {
    match &state.api_key {
        None => Ok(()),
        Some(expected) => {
            let given = headers.get("x-api-key").map(|v| v.as_bytes()).unwrap_or(b"");
            if constant_time_eq(given, expected.as_bytes()) {
                Ok(())
            } else {
                Err(ApiError::forbidden("missing or invalid x-api-key header"))
            }
        }
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Kafka's legal topic names: 1..=249 of `[a-zA-Z0-9._-]`, not `.` or `..`.
pub(crate) fn valid_topic_name(topic: &str) -> bool {
    !topic.is_empty()
        && topic.len() <= 249
        && topic != "."
        && topic != ".."
        && topic.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
}

fn check_topic(state: &State, topic: &str) -> Result<(), ApiError> {
    if !valid_topic_name(topic) {
        return Err(ApiError::topic_not_found(format!("topic {topic:?} not found: not a valid topic name")));
    }
    if let Some(allowed) = &state.allowed {
        if !allowed.contains(topic) {
            return Err(ApiError::forbidden(format!("topic {topic:?} is not in the gateway's allowlist")));
        }
    }
    Ok(())
}

/// Partition count of a topic, from the cache or the broker. `Ok(None)`: no such topic.
async fn partition_count(state: &Arc<State>, topic: &str) -> Result<Option<i32>, ApiError> {
    if let Some((count, at)) = state.topics.read().expect("topic cache lock").get(topic) {
        let ttl = if count.is_some() { METADATA_TTL } else { MISSING_TTL };
        if at.elapsed() < ttl {
            return Ok(*count);
        }
    }
    let producer = state.producer().1;
    let name = topic.to_string();
    let fetched = tokio::task::spawn_blocking(move || {
        producer.client().fetch_metadata(Some(&name), Duration::from_secs(5)).map(|metadata| {
            metadata
                .topics()
                .iter()
                .find(|t| t.name() == name && t.error().is_none() && !t.partitions().is_empty())
                .map(|t| t.partitions().len() as i32)
        })
    })
    .await
    .map_err(|e| ApiError::kafka(format!("metadata task failed: {e}")))?;
    match fetched {
        Ok(count) => {
            state.topics.write().expect("topic cache lock").insert(topic.to_string(), (count, Instant::now()));
            Ok(count)
        }
        Err(e) => {
            // Broker unreachable: keep serving known topics; librdkafka queues until it returns.
            if let Some((count, _)) = state.topics.read().expect("topic cache lock").get(topic) {
                if count.is_some() {
                    return Ok(*count);
                }
            }
            Err(ApiError::kafka_retriable(format!("cannot read metadata of topic {topic}: {e}")))
        }
    }
}

async fn list_topics(AxumState(state): AxumState<Arc<State>>, headers: HeaderMap) -> Response {
    if let Err(e) = check_api_key(&state, &headers) {
        return e.into_response();
    }
    let producer = state.producer().1;
    let fetched = tokio::task::spawn_blocking(move || {
        producer.client().fetch_metadata(None, Duration::from_secs(5)).map(|m| {
            m.topics().iter().filter(|t| t.error().is_none()).map(|t| t.name().to_string()).collect::<Vec<_>>()
        })
    })
    .await;
    match fetched {
        Ok(Ok(mut names)) => {
            names.retain(|n| state.allowed.as_ref().is_none_or(|a| a.contains(n)));
            names.sort();
            v2_json(StatusCode::OK, json!(names))
        }
        Ok(Err(e)) => ApiError::kafka_retriable(format!("cannot list topics: {e}")).into_response(),
        Err(e) => ApiError::kafka(format!("metadata task failed: {e}")).into_response(),
    }
}

async fn describe_topic(AxumState(state): AxumState<Arc<State>>, Topic(topic): Topic, headers: HeaderMap) -> Response {
    let result = async {
        check_api_key(&state, &headers)?;
        check_topic(&state, &topic)?;
        let count = partition_count(&state, &topic)
            .await?
            .ok_or_else(|| ApiError::topic_not_found(format!("topic {topic:?} not found")))?;
        let partitions: Vec<Value> =
            (0..count).map(|p| json!({"partition": p, "leader": null, "replicas": []})).collect();
        Ok::<_, ApiError>(json!({"name": topic, "configs": {}, "partitions": partitions}))
    }
    .await;
    match result {
        Ok(body) => v2_json(StatusCode::OK, body),
        Err(e) => e.into_response(),
    }
}

/// The `{topic}` of the path; one that cannot be decoded (bad percent-encoding, not UTF-8) is
/// a 400 with the JSON envelope.
struct Topic(String);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Topic {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, state: &S) -> Result<Self, ApiError> {
        match Path::<String>::from_request_parts(parts, state).await {
            Ok(Path(topic)) => Ok(Topic(topic)),
            Err(e) => Err(ApiError::malformed(format!("invalid topic in the request path: {}", e.body_text()))),
        }
    }
}

fn v2_json(status: StatusCode, body: Value) -> Response {
    let mut response = (status, axum::Json(body)).into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(KAFKA_V2_JSON));
    response
}

pub(super) async fn metrics(AxumState(state): AxumState<Arc<State>>) -> Response {
    let mut response = state.metrics.render().into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4"));
    response
}

#[derive(Deserialize)]
struct ProduceRequest<'a> {
    #[serde(borrow)]
    records: Vec<&'a RawValue>,
}

/// One record of a produce request. Key and value are kept as the client's JSON text: in the
/// json format that text is what goes to Kafka, byte for byte (numbers are never re-printed).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProduceRecord<'a> {
    #[serde(default, borrow)]
    key: Option<&'a RawValue>,
    #[serde(default, borrow)]
    value: Option<&'a RawValue>,
    #[serde(default)]
    partition: Option<i32>,
}

/// A record ready for the producer.
struct Outgoing {
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
    partition: Option<i32>,
}

fn encode(format: Format, field: &str, index: usize, v: Option<&RawValue>) -> Result<Option<Vec<u8>>, ApiError> {
    let Some(raw) = v.filter(|raw| raw.get() != "null") else {
        return Ok(None);
    };
    match format {
        Format::Json => Ok(Some(raw.get().as_bytes().to_vec())),
        Format::Binary => match serde_json::from_str::<String>(raw.get()) {
            Ok(text) => base64::engine::general_purpose::STANDARD
                .decode(text.as_bytes())
                .map(Some)
                .map_err(|e| ApiError::invalid_payload(format!("records[{index}].{field} is not valid base64: {e}"))),
            Err(_) => Err(ApiError::invalid_payload(format!(
                "records[{index}].{field} must be a base64 string in the binary format"
            ))),
        },
    }
}

fn parse_request(format: Format, body: &[u8]) -> Result<Vec<Outgoing>, ApiError> {
    const SHAPE: &str = "request body must be {\"records\": [{\"value\": ...}, ...]}";
    if !body.trim_ascii_start().starts_with(b"{") {
        // serde would read the request struct from an array too.
        return Err(match serde_json::from_slice::<serde::de::IgnoredAny>(body) {
            Ok(_) => ApiError::invalid_payload(format!("{SHAPE}: the body is not an object")),
            Err(e) => ApiError::malformed(format!("request body is not valid JSON: {e}")),
        });
    }
    let request: ProduceRequest<'_> = serde_json::from_slice(body).map_err(|e| match e.classify() {
        serde_json::error::Category::Data => ApiError::invalid_payload(format!("{SHAPE}: {e}")),
        _ => ApiError::malformed(format!("request body is not valid JSON: {e}")),
    })?;
    if request.records.is_empty() {
        return Err(ApiError::invalid_payload("records must contain at least one record"));
    }
    request
        .records
        .into_iter()
        .enumerate()
        .map(|(i, raw)| {
            // A record is an object: serde would also take a struct from an array.
            if !raw.get().starts_with('{') {
                return Err(ApiError::invalid_payload(format!(
                    "records[{i}] must be an object with \"value\" (and optional \"key\", \"partition\")"
                )));
            }
            let r: ProduceRecord<'_> =
                serde_json::from_str(raw.get()).map_err(|e| ApiError::invalid_payload(format!("records[{i}]: {e}")))?;
            if r.value.is_none() && r.key.is_none() {
                return Err(ApiError::invalid_payload(format!("records[{i}] has neither key nor value")));
            }
            if matches!(r.partition, Some(p) if p < 0) {
                return Err(ApiError::invalid_payload(format!("records[{i}].partition must not be negative")));
            }
            Ok(Outgoing {
                key: encode(format, "key", i, r.key)?,
                value: encode(format, "value", i, r.value)?,
                partition: r.partition,
            })
        })
        .collect()
}

fn retriable(e: &KafkaError) -> bool {
    use RDKafkaErrorCode::*;
    matches!(
        e.rdkafka_error_code(),
        Some(
            MessageTimedOut
                | QueueFull
                | BrokerTransportFailure
                | AllBrokersDown
                | RequestTimedOut
                | NotEnoughReplicas
                | NotEnoughReplicasAfterAppend
                | LeaderNotAvailable
                | NotLeaderForPartition
                | NetworkException
                | OutOfOrderSequenceNumber
        )
    )
}

async fn produce(AxumState(state): AxumState<Arc<State>>, Topic(topic): Topic, request: Request) -> Response {
    let started = Instant::now();
    let (result, body_len) = produce_inner(&state, &topic, request).await;
    let response = match result {
        Ok(body) => v2_json(StatusCode::OK, body),
        Err(e) => {
            if e.status.is_server_error() {
                tracing::warn!(topic = %topic, code = e.error_code, message = %e.message, "produce failed");
            } else {
                tracing::debug!(topic = %topic, code = e.error_code, message = %e.message, "request rejected");
            }
            e.into_response()
        }
    };
    state.metrics.record_request(response.status().as_u16(), started.elapsed(), body_len);
    response
}

async fn produce_inner(state: &Arc<State>, topic: &str, request: Request) -> (Result<Value, ApiError>, usize) {
    let (parts, body) = request.into_parts();
    let headers = &parts.headers;
    let checked = check_api_key(state, headers)
        .and_then(|_| check_topic(state, topic))
        .and_then(|_| format_of(headers))
        .and_then(|f| check_accept(headers).map(|_| f));
    let format = match checked {
        Ok(f) => f,
        Err(e) => return (Err(e), 0),
    };
    // The guard has read the whole body already (within the size and time limits).
    let bytes = match axum::body::to_bytes(body, usize::MAX).await {
        Ok(b) => b,
        Err(e) => return (Err(ApiError::malformed(format!("cannot read the request body: {e}"))), 0),
    };
    let len = bytes.len();
    (produce_records(state, topic, format, &bytes).await, len)
}

async fn produce_records(state: &Arc<State>, topic: &str, format: Format, body: &[u8]) -> Result<Value, ApiError> {
    let records = parse_request(format, body)?;
    let partitions = partition_count(state, topic)
        .await?
        .ok_or_else(|| ApiError::topic_not_found(format!("topic {topic:?} not found")))?;
    if let Some(p) = records.iter().filter_map(|r| r.partition).find(|p| *p >= partitions) {
        return Err(ApiError::partition_not_found(topic, p));
    }
    let (generation, producer) = state.producer();
    let mut pending = Vec::with_capacity(records.len());
    for r in &records {
        let mut record: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(topic);
        if let Some(k) = &r.key {
            record = record.key(k.as_slice());
        }
        if let Some(v) = &r.value {
            record = record.payload(v.as_slice());
        }
        if let Some(p) = r.partition {
            record = record.partition(p);
        }
        match producer.send_result(record) {
            Ok(future) => pending.push(future),
            Err((e, _)) => {
                // Queue full (or similar) before anything was sent for the rest: fail the request.
                state.metrics.record_produced(0, (records.len() - pending.len()) as u64);
                let error = ApiError::kafka_retriable(format!("producer cannot take records: {e}"));
                drop(futures::future::join_all(pending).await);
                return Err(error);
            }
        }
    }
    let results = futures::future::join_all(pending).await;
    let mut offsets = Vec::with_capacity(results.len());
    let mut failure: Option<ApiError> = None;
    let (mut ok, mut failed) = (0u64, 0u64);
    let mut timed_out = false;
    for result in results {
        match result {
            Ok(Ok(delivery)) => {
                ok += 1;
                offsets.push(json!({"partition": delivery.partition, "offset": delivery.offset, "error_code": null, "error": null}));
            }
            Ok(Err((e, _))) => {
                failed += 1;
                timed_out |= e.rdkafka_error_code() == Some(RDKafkaErrorCode::MessageTimedOut);
                let retry = retriable(&e);
                offsets.push(json!({"partition": null, "offset": null, "error_code": if retry { 2 } else { 1 }, "error": e.to_string()}));
                if failure.as_ref().is_none_or(|f| f.error_code == 50003 && !retry) {
                    failure = Some(if retry {
                        ApiError::kafka_retriable(format!("broker did not acknowledge: {e}"))
                    } else {
                        ApiError::kafka(format!("broker rejected a record: {e}"))
                    });
                }
            }
            Err(_) => {
                failed += 1;
                offsets
                    .push(json!({"partition": null, "offset": null, "error_code": 2, "error": "producer shut down"}));
                failure.get_or_insert_with(|| ApiError::kafka_retriable("producer shut down"));
            }
        }
    }
    state.metrics.record_produced(ok, failed);
    if timed_out {
        state.replace_producer(generation);
    }
    match failure {
        None => Ok(json!({"offsets": offsets, "key_schema_id": null, "value_schema_id": null})),
        Some(mut e) => {
            e.offsets = Some(Value::Array(offsets));
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_names_follow_kafka_rules() {
        assert!(valid_topic_name("0eaf46a0829f.pin"));
        assert!(valid_topic_name("a_b-c.d"));
        for bad in ["", ".", "..", "../etc", "a/b", "a b", "tópico", &"x".repeat(250)] {
            assert!(!valid_topic_name(bad), "{bad:?} accepted");
        }
    }

    #[test]
    fn parses_json_and_binary_records() {
        let body = br#"{"records":[{"value":{"a":1}},{"key":"k","value":[1,2],"partition":0}]}"#;
        let records = parse_request(Format::Json, body).unwrap();
        assert_eq!(records[0].value.as_deref(), Some(&b"{\"a\":1}"[..]));
        assert_eq!(records[1].key.as_deref(), Some(&b"\"k\""[..]));
        assert_eq!(records[1].partition, Some(0));
        let body = br#"{"records":[{"value":"aGVsbG8="}]}"#;
        let records = parse_request(Format::Binary, body).unwrap();
        assert_eq!(records[0].value.as_deref(), Some(&b"hello"[..]));
    }

    #[test]
    fn rejects_bad_payloads_with_the_right_codes() {
        let code = |f, b: &[u8]| parse_request(f, b).err().map(|e| (e.status.as_u16(), e.error_code));
        assert_eq!(code(Format::Json, b"{not json"), Some((400, 400)));
        assert_eq!(code(Format::Json, br#"{"records":[]}"#), Some((422, 42206)));
        assert_eq!(code(Format::Json, br#"{"records":{}}"#), Some((422, 42206)));
        assert_eq!(code(Format::Json, br#"[1,2]"#), Some((422, 42206)));
        assert_eq!(code(Format::Binary, br#"{"records":[{"value":"!!"}]}"#), Some((422, 42206)));
        assert_eq!(code(Format::Binary, br#"{"records":[{"value":{"a":1}}]}"#), Some((422, 42206)));
        assert_eq!(code(Format::Json, br#"{"records":[{"value":1,"partition":-1}]}"#), Some((422, 42206)));
        // A record is an object, never an array (serde would read a struct from one).
        assert_eq!(code(Format::Json, br#"{"records":[["k1",{"a":1},1]]}"#), Some((422, 42206)));
        assert_eq!(code(Format::Json, br#"{"records":[1]}"#), Some((422, 42206)));
        assert_eq!(code(Format::Json, br#"{"records":[{"value":1,"other":2}]}"#), Some((422, 42206)));
    }

    #[test]
    fn json_values_pass_through_as_the_client_wrote_them() {
        let body = br#"{"records":[{"key":123456789012345678901,"value":{"f": -1.703900619396251e-173, "big": 123456789012345678901, "s":"\u00e9"}}]}"#;
        let records = parse_request(Format::Json, body).unwrap();
        assert_eq!(records[0].key.as_deref(), Some(&b"123456789012345678901"[..]));
        assert_eq!(
            std::str::from_utf8(records[0].value.as_deref().unwrap()).unwrap(),
            r#"{"f": -1.703900619396251e-173, "big": 123456789012345678901, "s":"\u00e9"}"#
        );
        // Binary values are the decoded bytes, whatever they hold.
        let body = br#"{"records":[{"value":""},{"value":"CQ0="},{"value":"/wo="}]}"#;
        let values: Vec<Vec<u8>> =
            parse_request(Format::Binary, body).unwrap().into_iter().map(|r| r.value.unwrap()).collect();
        assert_eq!(values, vec![b"".to_vec(), b"\t\r".to_vec(), vec![0xff, b'\n']]);
    }
}
