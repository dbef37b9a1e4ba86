//! The REST proxy's error envelope: `{"error_code": ..., "message": "..."}` with the HTTP status
//! that Confluent's REST Proxy v2 uses for the same error.

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

const KAFKA_V2_JSON: &str = "application/vnd.kafka.v2+json";

/// An error reply of the gateway.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub error_code: u32,
    pub message: String,
    /// Per-record results already known when a produce request failed part way.
    pub offsets: Option<serde_json::Value>,
    /// The reply's Content-Type: the REST proxy's on the Kafka side, plain JSON on the Kinesis side.
    pub content_type: &'static str,
}

impl ApiError {
    pub fn new(status: StatusCode, error_code: u32, message: impl Into<String>) -> Self {
        ApiError { status, error_code, message: message.into(), offsets: None, content_type: KAFKA_V2_JSON }
    }

    pub fn with_content_type(mut self, content_type: &'static str) -> Self {
        self.content_type = content_type;
        self
    }

    /// 400: the body is not JSON.
    pub fn malformed(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, 400, message)
    }

    /// 403: missing or wrong `x-api-key`, or a topic outside the allowlist.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, 40301, message)
    }

    /// 404 / 40401: the topic does not exist (or its name is not a topic name).
    pub fn topic_not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, 40401, message)
    }

    /// 404 / 40402: the partition does not exist.
    pub fn partition_not_found(topic: &str, partition: i32) -> Self {
        Self::new(StatusCode::NOT_FOUND, 40402, format!("partition {partition} of topic {topic} not found"))
    }

    /// 422 / 42206: the body is JSON but not a valid produce request.
    pub fn invalid_payload(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, 42206, message)
    }

    /// 413: the body is larger than the configured limit.
    pub fn too_large(limit: usize) -> Self {
        Self::new(StatusCode::PAYLOAD_TOO_LARGE, 413, format!("request body larger than {limit} bytes"))
    }

    /// 415: the content type is not one of the REST proxy's produce formats.
    pub fn unsupported_media_type(got: &str) -> Self {
        Self::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            415,
            format!(
                "unsupported Content-Type {got:?}: use application/vnd.kafka.json.v2+json, \
                 application/vnd.kafka.binary.v2+json or application/json"
            ),
        )
    }

    /// 406: the client accepts no representation the gateway can produce.
    pub fn not_acceptable(got: &str) -> Self {
        Self::new(
            StatusCode::NOT_ACCEPTABLE,
            406,
            format!(
                "cannot answer with any type of Accept {got:?}: use application/vnd.kafka.v2+json or application/json"
            ),
        )
    }

    /// 500 / 50002: the broker rejected a record for good.
    pub fn kafka(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, 50002, message)
    }

    /// 503 / 50003: the broker did not acknowledge in time or is unreachable; retrying may work.
    pub fn kafka_retriable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, 50003, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = json!({ "error_code": self.error_code, "message": self.message });
        if let Some(offsets) = self.offsets {
            body["offsets"] = offsets;
        }
        let mut response = (self.status, axum::Json(body)).into_response();
        let headers = response.headers_mut();
        headers.insert(axum::http::header::CONTENT_TYPE, HeaderValue::from_static(self.content_type));
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            headers.insert(axum::http::header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}
