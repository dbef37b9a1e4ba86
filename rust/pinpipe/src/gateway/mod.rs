//! The gateway: the HTTP front of the pipeline. Its Kafka side speaks the Confluent REST Proxy v2
//! produce API and its Kinesis side the resources of API Gateway's Kinesis proxy, so the original
//! emulators work against it unchanged.

mod error;
mod kinesis;
mod metrics;
mod rest;
mod server;

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use axum::routing::get;
use axum::Router;
use rdkafka::producer::FutureProducer;
use serde::{Deserialize, Serialize};

pub use error::ApiError;

use crate::config::{AwsConfig, Secret};
use crate::error::{Error, Result};
use crate::kafka::KafkaConnection;
use crate::names::UserId;

/// Default cap on a request body: 8 MiB.
pub const DEFAULT_MAX_BODY_BYTES: usize = 8 * 1024 * 1024;

/// Configuration of the gateway.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GatewayConfig {
    /// Address to listen on. Default `127.0.0.1:8082` (the REST proxy's port).
    pub listen: SocketAddr,
    /// The user id whose three topics form the default allowlist.
    pub user_id: UserId,
    /// Kafka bootstrap servers (`host:port,...`).
    pub bootstrap_servers: Option<String>,
    /// Extra librdkafka properties (TLS, SASL, ...).
    pub kafka_properties: std::collections::BTreeMap<String, String>,
    /// Topics the API may write to. Default (empty): the three `<uid>.pin|geo|user` topics.
    /// `["*"]` allows every existing topic.
    pub allowed_topics: Vec<String>,
    /// Kinesis streams the API may use. Default (empty): the three `streaming-<uid>-pin|geo|user`
    /// streams. `["*"]` allows every stream.
    pub allowed_streams: Vec<String>,
    /// AWS access for the Kinesis side (`kinesis_endpoint_url`, region, keys; unset: the default
    /// credential chain).
    pub aws: AwsConfig,
    /// When set, every request must carry this value in the `x-api-key` header.
    pub api_key: Option<Secret>,
    /// Largest accepted request body in bytes. Default 8 MiB.
    pub max_body_bytes: usize,
    /// How long a record may wait for the broker's acknowledgement before the request fails
    /// with 503 / 50003 (librdkafka `message.timeout.ms`). Default 30 s.
    #[serde(with = "crate::config::duration_secs")]
    pub produce_timeout: Duration,
    /// How long the producer waits to batch records (librdkafka `linger.ms`). Default 2 ms.
    pub linger_ms: u32,
    /// Most connections open at once. At the limit, a new connection closes the one idle the
    /// longest; if all are busy it gets a 503. Default 512.
    pub max_connections: usize,
    /// A connection that sends no complete request head for this long (after connecting, or
    /// after its last reply) is closed. Default 30 s.
    #[serde(with = "crate::config::duration_secs")]
    pub idle_timeout: Duration,
    /// A request body must arrive within this time, or the reply is 408. Default 30 s.
    #[serde(with = "crate::config::duration_secs")]
    pub body_timeout: Duration,
    /// Longest request URI (path and query) in bytes; longer ones get 414. Default 8 KiB.
    pub max_uri_bytes: usize,
    /// Largest header section in bytes; larger ones get 431. Default 16 KiB.
    pub max_header_bytes: usize,
    /// Most header fields in a request; more get 431. Default 100.
    pub max_headers: usize,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        GatewayConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8082)),
            user_id: UserId::default(),
            bootstrap_servers: None,
            kafka_properties: Default::default(),
            allowed_topics: Vec::new(),
            allowed_streams: Vec::new(),
            aws: AwsConfig::default(),
            api_key: None,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            produce_timeout: Duration::from_secs(30),
            linger_ms: 2,
            max_connections: 512,
            idle_timeout: Duration::from_secs(30),
            body_timeout: Duration::from_secs(30),
            max_uri_bytes: 8 * 1024,
            max_header_bytes: 16 * 1024,
            max_headers: 100,
        }
    }
}

impl GatewayConfig {
    /// The Kafka connection of these settings.
    pub fn kafka(&self) -> Result<KafkaConnection> {
        KafkaConnection::from_settings(self.bootstrap_servers.as_deref(), &self.kafka_properties)
    }

    /// Validates the config, connects the producer and binds the listener.
    pub async fn build(self, kafka: &KafkaConnection) -> Result<Gateway> {
        for (key, value) in [
            ("max_body_bytes", self.max_body_bytes),
            ("max_connections", self.max_connections),
            ("max_uri_bytes", self.max_uri_bytes),
            ("max_header_bytes", self.max_header_bytes),
            ("max_headers", self.max_headers),
        ] {
            if value == 0 {
                return Err(Error::Config(format!("{key} must be positive")));
            }
        }
        for (key, value) in [("idle_timeout", self.idle_timeout), ("body_timeout", self.body_timeout)] {
            if value.is_zero() {
                return Err(Error::Config(format!("{key} must be positive")));
            }
        }
        if matches!(&self.api_key, Some(k) if k.expose().is_empty()) {
            return Err(Error::Config("api_key must not be empty when set".into()));
        }
        let allowed = if self.allowed_topics.is_empty() {
            Some(self.user_id.topics().into_iter().collect())
        } else if self.allowed_topics.iter().any(|t| t == "*") {
            None
        } else {
            Some(self.allowed_topics.iter().cloned().collect())
        };
        let allowed_streams = if self.allowed_streams.is_empty() {
            Some(self.user_id.streams().into_iter().collect())
        } else if self.allowed_streams.iter().any(|t| t == "*") {
            None
        } else {
            Some(self.allowed_streams.iter().cloned().collect())
        };
        let kinesis = crate::kinesis::Kinesis::connect(&self.aws).await;
        let producer_config = kafka
            .client_config()
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("partitioner", "murmur2_random")
            .set("linger.ms", self.linger_ms.to_string())
            .set("message.timeout.ms", self.produce_timeout.as_millis().to_string())
            .set("allow.auto.create.topics", "false")
            .set("queue.buffering.max.messages", "1000000")
            .clone();
        let producer: FutureProducer = producer_config.create().map_err(Error::kafka("create producer"))?;
        let listener = tokio::net::TcpListener::bind(self.listen)
            .await
            .map_err(Error::io(format!("listen on {}", self.listen)))?;
        let state = Arc::new(State {
            producer: RwLock::new((0, producer)),
            producer_config,
            allowed,
            allowed_streams,
            kinesis,
            api_key: self.api_key.as_ref().map(|k| k.expose().to_string()),
            limits: server::Limits {
                max_connections: self.max_connections,
                idle_timeout: self.idle_timeout,
                body_timeout: self.body_timeout,
                max_body_bytes: self.max_body_bytes,
                max_uri_bytes: self.max_uri_bytes,
                max_header_bytes: self.max_header_bytes,
                max_headers: self.max_headers,
            },
            topics: RwLock::new(HashMap::new()),
            metrics: metrics::Metrics::default(),
        });
        Ok(Gateway { listener, state })
    }
}

/// Shared state of the request handlers.
pub(crate) struct State {
    /// The producer and its generation (bumped each time it is replaced).
    producer: RwLock<(u64, FutureProducer)>,
    producer_config: rdkafka::ClientConfig,
    /// `None` allows every existing topic.
    allowed: Option<HashSet<String>>,
    /// `None` allows every stream.
    allowed_streams: Option<HashSet<String>>,
    kinesis: crate::kinesis::Kinesis,
    api_key: Option<String>,
    limits: server::Limits,
    /// Topic metadata cache: partition count (None: the topic does not exist) and when it was read.
    topics: RwLock<HashMap<String, (Option<i32>, Instant)>>,
    metrics: metrics::Metrics,
}

impl State {
    /// The current producer and its generation.
    pub(crate) fn producer(&self) -> (u64, FutureProducer) {
        let guard = self.producer.read().expect("producer lock");
        (guard.0, guard.1.clone())
    }

    /// Replaces the producer of `generation` after records timed out: an idempotent producer
    /// whose records expired carries sequence state that some brokers reject after they come
    /// back, so new records go through a new producer (a new producer id). Records already
    /// acknowledged are unaffected; those that failed were reported as 5xx.
    pub(crate) fn replace_producer(&self, generation: u64) {
        let old = {
            let mut guard = self.producer.write().expect("producer lock");
            if guard.0 != generation {
                return; // another request replaced it already
            }
            match self.producer_config.create::<FutureProducer>() {
                Ok(fresh) => {
                    tracing::warn!(generation = generation + 1, "records timed out; producing through a new producer");
                    std::mem::replace(&mut *guard, (generation + 1, fresh)).1
                }
                Err(e) => {
                    tracing::error!(error = %e, "cannot create a new producer; keeping the old one");
                    return;
                }
            }
        };
        // Dropping a producer waits for its outstanding requests: not on a runtime thread.
        std::thread::spawn(move || drop(old));
    }
}

/// A bound, ready gateway.
pub struct Gateway {
    listener: tokio::net::TcpListener,
    state: Arc<State>,
}

/// What a gateway did before it stopped.
#[derive(Debug, Clone, Serialize)]
pub struct GatewaySummary {
    pub records_acknowledged: u64,
}

impl Gateway {
    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("bound listener has an address")
    }

    /// The HTTP routes.
    fn router(state: Arc<State>) -> Router {
        Router::new()
            .route("/", get(|| async { axum::Json(serde_json::json!({})) }))
            .route("/healthz", get(|| async { axum::Json(serde_json::json!({"status": "ok"})) }))
            .route("/metrics", get(rest::metrics))
            .merge(rest::routes())
            .merge(kinesis::routes())
            .fallback(|| async { ApiError::new(axum::http::StatusCode::NOT_FOUND, 404, "HTTP 404 Not Found") })
            .method_not_allowed_fallback(|request: axum::extract::Request| async move {
                ApiError::new(
                    axum::http::StatusCode::METHOD_NOT_ALLOWED,
                    405,
                    format!("HTTP 405 Method Not Allowed: {} {}", request.method(), request.uri().path()),
                )
            })
            .layer(axum::middleware::from_fn_with_state(state.clone(), server::guard))
            .with_state(state)
    }

    /// Serves until `shutdown` completes, then waits for in-flight records.
    pub async fn serve(self, shutdown: impl Future<Output = ()> + Send + 'static) -> Result<GatewaySummary> {
        let addr = self.local_addr();
        tracing::info!(%addr, "gateway listening");
        let state = self.state.clone();
        let limits = state.limits.clone();
        server::serve(self.listener, Self::router(self.state), limits, shutdown)
            .await
            .map_err(Error::io("serve HTTP"))?;
        let producer = state.producer().1;
        tokio::task::spawn_blocking(move || {
            use rdkafka::producer::Producer;
            let _ = producer.flush(Duration::from_secs(10));
        })
        .await
        .ok();
        Ok(GatewaySummary { records_acknowledged: state.metrics.records_produced() })
    }
}
