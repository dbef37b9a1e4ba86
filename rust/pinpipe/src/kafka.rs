//! Kafka plumbing shared by the gateway, the sink and the admin commands: client configs, the
//! in-process cluster of the embedded default, and topic administration.

use std::collections::BTreeMap;
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::DefaultProducerContext;
use rdkafka::types::RDKafkaErrorCode;
use serde::{Deserialize, Serialize};

use crate::names::UserId;

use crate::error::{Error, Result};

/// How long admin and metadata calls may take before they fail.
pub const METADATA_TIMEOUT: Duration = Duration::from_secs(10);

/// Where Kafka is: a list of bootstrap servers plus librdkafka properties passed through as given
/// (for TLS/SASL on MSK, for example: `security.protocol`, `sasl.mechanism`, ...).
#[derive(Debug, Clone, Default)]
pub struct KafkaConnection {
    pub bootstrap_servers: String,
    pub properties: BTreeMap<String, String>,
}

impl KafkaConnection {
    /// The connection of a job's `bootstrap_servers` and `kafka_properties` settings.
    pub fn from_settings(servers: Option<&str>, properties: &BTreeMap<String, String>) -> Result<Self> {
        match servers {
            Some(s) if !s.trim().is_empty() => {
                Ok(KafkaConnection { bootstrap_servers: s.to_string(), properties: properties.clone() })
            }
            _ => Err(Error::Config(
                "no Kafka configured: set --bootstrap-servers, PINPIPE_BOOTSTRAP_SERVERS or bootstrap_servers in the \
                 config file"
                    .into(),
            )),
        }
    }

    pub fn new(bootstrap_servers: impl Into<String>) -> Self {
        KafkaConnection { bootstrap_servers: bootstrap_servers.into(), properties: BTreeMap::new() }
    }

    /// A librdkafka config with the servers and pass-through properties set.
    pub fn client_config(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", &self.bootstrap_servers);
        config.set("client.id", "pinpipe");
        for (key, value) in &self.properties {
            config.set(key, value);
        }
        config
    }
}

/// An in-process Kafka cluster (librdkafka's mock cluster) for the embedded default and fast
/// tests. It lives as long as this value.
pub struct EmbeddedKafka {
    cluster: MockCluster<'static, DefaultProducerContext>,
}

impl EmbeddedKafka {
    /// Starts a one-broker cluster.
    pub fn start() -> Result<Self> {
        let cluster = MockCluster::new(1).map_err(Error::kafka("start the embedded Kafka"))?;
        Ok(EmbeddedKafka { cluster })
    }

    pub fn connection(&self) -> KafkaConnection {
        KafkaConnection::new(self.cluster.bootstrap_servers())
    }

    /// Creates a topic; the mock cluster does not implement the admin API's CreateTopics.
    pub fn create_topic(&self, topic: &str, partitions: i32) -> Result<()> {
        self.cluster.create_topic(topic, partitions, 1).map_err(Error::kafka(format!("create topic {topic}")))
    }
}

/// Settings of the topic admin commands (`topics create|list`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    /// Whose topics to create.
    pub user_id: UserId,
    /// Kafka bootstrap servers (`host:port,...`).
    pub bootstrap_servers: Option<String>,
    /// Extra librdkafka properties (TLS, SASL, ...).
    pub kafka_properties: BTreeMap<String, String>,
    /// Partitions of a new topic. Default 1.
    pub partitions: i32,
    /// Replication factor of a new topic. Default 1.
    pub replication_factor: i32,
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            user_id: UserId::default(),
            bootstrap_servers: None,
            kafka_properties: BTreeMap::new(),
            partitions: 1,
            replication_factor: 1,
        }
    }
}

impl AdminConfig {
    pub fn kafka(&self) -> Result<KafkaConnection> {
        KafkaConnection::from_settings(self.bootstrap_servers.as_deref(), &self.kafka_properties)
    }
}

/// What `topics create` did with one topic.
#[derive(Debug, Clone, Serialize)]
pub struct TopicCreated {
    pub topic: String,
    pub created: bool,
    pub message: String,
}

/// Creates topics, treating "already exists" as success (so the command is idempotent).
pub async fn create_topics(
    connection: &KafkaConnection,
    topics: &[String],
    partitions: i32,
    replication: i32,
) -> Result<Vec<TopicCreated>> {
    if partitions < 1 {
        return Err(Error::Config(format!("partitions must be at least 1 (got {partitions})")));
    }
    if replication < 1 {
        return Err(Error::Config(format!("replication_factor must be at least 1 (got {replication})")));
    }
    let admin: AdminClient<DefaultClientContext> =
        connection.client_config().create().map_err(Error::kafka("create admin client"))?;
    let new_topics: Vec<NewTopic> =
        topics.iter().map(|t| NewTopic::new(t, partitions, TopicReplication::Fixed(replication))).collect();
    let options = AdminOptions::new().operation_timeout(Some(METADATA_TIMEOUT));
    let results = admin.create_topics(new_topics.iter(), &options).await.map_err(Error::kafka("create topics"))?;
    let mut out = Vec::new();
    for result in results {
        match result {
            Ok(topic) => out.push(TopicCreated { topic, created: true, message: "created".into() }),
            Err((topic, RDKafkaErrorCode::TopicAlreadyExists)) => {
                let existing = admin
                    .inner()
                    .fetch_metadata(Some(&topic), METADATA_TIMEOUT)
                    .ok()
                    .and_then(|m| m.topics().iter().find(|t| t.name() == topic).map(|t| t.partitions().len()));
                let message = match existing {
                    Some(n) if n as i32 != partitions => format!(
                        "already exists with {n} partition{}; left as it is (not changed to {partitions})",
                        if n == 1 { "" } else { "s" }
                    ),
                    Some(n) => format!("already exists with {n} partition{}", if n == 1 { "" } else { "s" }),
                    None => "already exists".into(),
                };
                out.push(TopicCreated { topic, created: false, message })
            }
            Err((topic, code)) => {
                return Err(Error::Config(format!("cannot create topic {topic}: {code}")));
            }
        }
    }
    Ok(out)
}

/// A topic as the broker describes it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TopicInfo {
    pub name: String,
    pub partitions: Vec<PartitionInfo>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PartitionInfo {
    pub partition: i32,
    pub leader: i32,
    pub replicas: Vec<i32>,
    pub in_sync_replicas: Vec<i32>,
}

/// Reads topic metadata (all topics, or one). Blocking: call from a blocking context.
pub fn fetch_topics(connection: &KafkaConnection, topic: Option<&str>) -> Result<Vec<TopicInfo>> {
    let consumer: BaseConsumer = connection.client_config().create().map_err(Error::kafka("create metadata client"))?;
    let metadata = consumer.fetch_metadata(topic, METADATA_TIMEOUT).map_err(Error::kafka("fetch metadata"))?;
    Ok(metadata
        .topics()
        .iter()
        .filter(|t| t.error().is_none())
        .map(|t| TopicInfo {
            name: t.name().to_string(),
            partitions: t
                .partitions()
                .iter()
                .map(|p| PartitionInfo {
                    partition: p.id(),
                    leader: p.leader(),
                    replicas: p.replicas().to_vec(),
                    in_sync_replicas: p.isr().to_vec(),
                })
                .collect(),
        })
        .collect())
}
