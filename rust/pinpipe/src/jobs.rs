//! One entry point per job, shared by every front (the CLI, the Python module, the Airflow
//! operators): resolve the job's settings from [`Layers`], build what it needs, run it, return its
//! summary. A front only gathers what the user gave and presents the summary.

use std::future::Future;
use std::sync::Arc;

use deltalake::arrow::array::RecordBatch;
use deltalake::arrow::datatypes::SchemaRef;

use crate::batch::{run_batch, BatchSummary};
use crate::config::Layers;
use crate::demo::{run_demo, DemoConfig, DemoSummary};
use crate::emulate::LandingWriteSummary;
use crate::emulate::{emulate_batch, emulate_stream, write_landing, EmulateConfig, EmulateSummary, LandingWriteConfig};
use crate::error::Result;
use crate::kafka::{AdminConfig, TopicCreated, TopicInfo};
use crate::kinesis::admin::StreamChange;
use crate::kinesis::StreamInfo;
use crate::query::{QueryConfig, QueryTarget};
use crate::sink::{run_sink, SinkConfig, SinkSummary};
use crate::source::SourceConfig;
use crate::stream::StreamSummary;

/// `sink`: Kafka → landing zone, until `stop` completes (or caught up, with `until_caught_up`).
pub async fn sink(layers: &Layers, stop: impl Future<Output = ()>) -> Result<SinkSummary> {
    let config: SinkConfig = layers.resolve()?;
    let kafka = config.kafka()?;
    run_sink(config, &kafka, stop).await
}

/// `stream`: Kinesis → stream tables, until `stop` completes (or caught up, with
/// `until_caught_up`).
pub async fn stream(layers: &Layers, stop: impl Future<Output = ()>) -> Result<StreamSummary> {
    crate::stream::run_stream(layers.resolve()?, stop).await
}

/// `batch`: landing zone → clean tables → analytics tables (or one stage, with `only`).
pub async fn batch(layers: &Layers) -> Result<BatchSummary> {
    run_batch(layers.resolve()?).await
}

/// `emulate batch`: posts events to the gateway until `events` are sent or `stop` completes.
/// `events: 0` sends until stopped.
pub async fn emulate(layers: &Layers, stop: impl Future<Output = ()>) -> Result<EmulateSummary> {
    let mut config: EmulateConfig = layers.resolve()?;
    config.events = config.events.filter(|n| *n > 0);
    let source = Arc::new(config.source_config()?.build().await?);
    tracing::info!(source = %source.describe(), gateway = %config.gateway, "emulating");
    emulate_batch(config, source, stop).await
}

/// `emulate stream`: puts events to the gateway's Kinesis side until `events` are sent or `stop`
/// completes. `events: 0` sends until stopped.
pub async fn emulate_streaming(layers: &Layers, stop: impl Future<Output = ()>) -> Result<EmulateSummary> {
    let mut config: EmulateConfig = layers.resolve()?;
    config.events = config.events.filter(|n| *n > 0);
    let source = Arc::new(config.source_config()?.build().await?);
    tracing::info!(source = %source.describe(), gateway = %config.gateway, "emulating the streaming client");
    emulate_stream(config, source, stop).await
}

/// `emulate landing`: drawn events straight into a landing zone (no Kafka).
pub async fn emulate_landing(layers: &Layers) -> Result<(LandingWriteConfig, LandingWriteSummary)> {
    let config: LandingWriteConfig = layers.resolve()?;
    let source = SourceConfig::Synthetic { rows: config.rows, seed: 0 }.build().await?;
    let summary = write_landing(&config, &source).await?;
    Ok((config, summary))
}

/// `demo`: the whole pipeline in one process on embedded defaults.
pub async fn demo(layers: &Layers) -> Result<DemoSummary> {
    let config: DemoConfig = layers.resolve()?;
    run_demo(config).await
}

/// `query`: a named lake table, or SQL over all of them.
pub async fn query(layers: &Layers, target: &QueryTarget) -> Result<(SchemaRef, Vec<RecordBatch>)> {
    let config: QueryConfig = layers.resolve()?;
    crate::query::query(&config, target).await
}

/// `topics create`: the user's three topics (existing ones are left alone).
pub async fn topics_create(layers: &Layers) -> Result<Vec<TopicCreated>> {
    let config: AdminConfig = layers.resolve()?;
    let kafka = config.kafka()?;
    crate::kafka::create_topics(&kafka, &config.user_id.topics(), config.partitions, config.replication_factor).await
}

/// `topics list`: every topic with its partitions.
pub async fn topics_list(layers: &Layers) -> Result<Vec<TopicInfo>> {
    let config: AdminConfig = layers.resolve()?;
    let kafka = config.kafka()?;
    tokio::task::spawn_blocking(move || crate::kafka::fetch_topics(&kafka, None))
        .await
        .map_err(|e| crate::Error::Config(format!("topic listing stopped: {e}")))?
}

/// `streams create`: the user's three streams (existing ones are left alone), each `ACTIVE`.
pub async fn streams_create(layers: &Layers) -> Result<Vec<StreamChange>> {
    crate::kinesis::admin::create_streams(&layers.resolve()?).await
}

/// `streams list`: every stream of the account and region.
pub async fn streams_list(layers: &Layers) -> Result<Vec<String>> {
    crate::kinesis::admin::list_streams(&layers.resolve()?).await
}

/// `streams describe`: status and shards (with their parents) of each stream.
pub async fn streams_describe(layers: &Layers) -> Result<Vec<StreamInfo>> {
    crate::kinesis::admin::describe_streams(&layers.resolve()?).await
}

/// `streams delete`: deletes the streams and waits until they are gone.
pub async fn streams_delete(layers: &Layers) -> Result<Vec<StreamChange>> {
    crate::kinesis::admin::delete_streams(&layers.resolve()?).await
}

/// `streams read`: every record of the streams, oldest to tip, handed to `each`.
pub async fn streams_read(
    layers: &Layers,
    each: impl Fn(&str, &str, &crate::kinesis::ShardRecord) + Send + Sync + 'static,
) -> Result<crate::kinesis::admin::ReadSummary> {
    crate::kinesis::admin::read_streams(&layers.resolve()?, each).await
}

/// `mwaa deploy`: the DAG folder, `plugins.zip` and `requirements.txt` to the environment's bucket
/// (what changed only), then the environment updated to them.
pub async fn mwaa_deploy(layers: &Layers) -> Result<crate::mwaa::DeploySummary> {
    crate::mwaa::deploy(&layers.resolve()?).await
}

/// `mwaa trigger`: a run of the DAG through the environment's Airflow.
pub async fn mwaa_trigger(layers: &Layers) -> Result<crate::mwaa::TriggerSummary> {
    crate::mwaa::trigger(&layers.resolve()?).await
}

/// `mwaa status`: the environment's state and the DAG's recent runs.
pub async fn mwaa_status(layers: &Layers) -> Result<crate::mwaa::StatusSummary> {
    crate::mwaa::status(&layers.resolve()?).await
}
