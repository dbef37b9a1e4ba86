//! `demo`: the pipeline end to end on embedded defaults, in one process. Batch half: synthetic
//! source → emulator → gateway → in-process Kafka (librdkafka's mock cluster) → sink → local
//! landing zone → batch → Delta tables. Streaming half: the same source → streaming emulator →
//! the gateway's Kinesis side → an in-process Kinesis stand-in ([`crate::kinesis::standin`]) →
//! `stream` → Delta stream tables. Everything but the two stand-ins is the code that runs against
//! real Kafka and Kinesis.

use std::path::PathBuf;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::batch::{run_batch, BatchConfig, BatchSummary};
use crate::config::{AwsConfig, Secret};
use crate::emulate::{emulate_batch, emulate_stream, EmulateConfig, EmulateSummary};
use crate::error::Result;
use crate::gateway::GatewayConfig;
use crate::kafka::EmbeddedKafka;
use crate::kinesis::standin::StandIn;
use crate::names::UserId;
use crate::sink::{run_sink, SinkConfig, SinkSummary, StopSignal};
use crate::source::SourceConfig;
use crate::stream::{run_stream, StreamConfig, StreamSummary};

/// Configuration of a demo run.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DemoConfig {
    /// Whose resource names to use.
    pub user_id: UserId,
    /// Working directory; the landing zone goes in `<dir>/landing`, the lake in `<dir>/lake`,
    /// both replaced on every run (only in a directory the demo made). Default `pinpipe-demo`.
    pub dir: PathBuf,
    /// Events to send (flat out, no sleeps). Default 1000.
    pub events: u64,
    /// Seed of the emulator's draws. Default 100.
    pub seed: u64,
    /// Concurrent senders. Default 16.
    pub concurrency: usize,
    /// Records per landing object. Default 500.
    pub flush_size: usize,
    /// Partitions of each in-process topic. Default 1.
    pub partitions: i32,
    /// Shards of each in-process Kinesis stream. Default 2.
    pub shards: i32,
    /// Show progress bars on stderr.
    pub progress: bool,
    /// Objects decoded at once by the batch step. Default: the number of CPUs.
    pub batch_concurrency: Option<usize>,
}

impl Default for DemoConfig {
    fn default() -> Self {
        DemoConfig {
            user_id: UserId::default(),
            dir: PathBuf::from("pinpipe-demo"),
            events: 1000,
            seed: 100,
            concurrency: 16,
            flush_size: 500,
            partitions: 1,
            shards: 2,
            progress: false,
            batch_concurrency: None,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct DemoSummary {
    pub landing: String,
    pub emulate: EmulateSummary,
    pub sink: SinkSummary,
    pub batch: BatchSummary,
    /// The streaming half: the streaming emulator's run and the stream reader's.
    pub emulate_stream: EmulateSummary,
    pub stream: StreamSummary,
}

/// The file that marks a directory as the demo's own.
const MARKER: &str = ".pinpipe-demo";

/// Every demo run starts on new in-process Kafka and Kinesis, so what an earlier run left in
/// `dir` (whose landing objects would hold the offsets the new run reuses) is removed — but only
/// from a directory the demo made itself.
fn prepare_dir(dir: &std::path::Path) -> Result<()> {
    let io = |what: &str| crate::error::Error::io(format!("{what} {}", dir.display()));
    let ours = dir.join(MARKER).exists();
    for sub in ["landing", "lake"] {
        let path = dir.join(sub);
        if !path.exists() {
            continue;
        }
        if !ours {
            return Err(crate::error::Error::Config(format!(
                "{} already exists and was not made by pinpipe demo: give the demo another --dir",
                path.display()
            )));
        }
        std::fs::remove_dir_all(&path).map_err(io("clear the demo directory"))?;
    }
    std::fs::create_dir_all(dir).map_err(io("create"))?;
    std::fs::write(dir.join(MARKER), b"made by pinpipe demo; its landing and lake are replaced on every run\n")
        .map_err(io("mark"))?;
    Ok(())
}

pub async fn run_demo(config: DemoConfig) -> Result<DemoSummary> {
    prepare_dir(&config.dir)?;
    let kafka = EmbeddedKafka::start()?;
    for topic in config.user_id.topics() {
        kafka.create_topic(&topic, config.partitions)?;
    }
    let connection = kafka.connection();
    let kinesis = StandIn::start().await?;
    let aws = AwsConfig {
        access_key_id: Some("demo".into()),
        secret_access_key: Some(Secret::new("demo")),
        region: Some("us-east-1".into()),
        kinesis_endpoint_url: Some(kinesis.url()),
        ..Default::default()
    };
    let client = crate::kinesis::Kinesis::connect(&aws).await;
    for stream in config.user_id.streams() {
        client.create_stream(&stream, config.shards).await?;
    }
    let gateway = GatewayConfig {
        listen: ([127, 0, 0, 1], 0).into(),
        user_id: config.user_id.clone(),
        aws: aws.clone(),
        ..Default::default()
    }
    .build(&connection)
    .await?;
    let url = format!("http://{}", gateway.local_addr());
    let stop_gateway = StopSignal::default();
    let gateway_task = {
        let stop = stop_gateway.clone();
        tokio::spawn(gateway.serve(stop.wait_owned()))
    };

    let source = Arc::new(SourceConfig::default().build().await?);
    let emulator = EmulateConfig {
        gateway: url,
        user_id: config.user_id.clone(),
        events: Some(config.events),
        seed: config.seed,
        no_sleep: true,
        concurrency: config.concurrency,
        progress: config.progress,
        ..Default::default()
    };
    let emulate = emulate_batch(emulator.clone(), source.clone(), std::future::pending()).await?;
    let emulate_streaming = emulate_stream(emulator, source, std::future::pending()).await?;
    stop_gateway.stop();
    let _ = gateway_task.await;

    let landing = config.dir.join("landing");
    let sink = run_sink(
        SinkConfig {
            user_id: config.user_id.clone(),
            landing: landing.to_string_lossy().into_owned(),
            flush_size: config.flush_size,
            until_caught_up: true,
            ..Default::default()
        },
        &connection,
        std::future::pending(),
    )
    .await?;
    let defaults = BatchConfig::default();
    let batch = run_batch(BatchConfig {
        user_id: config.user_id.clone(),
        landing: landing.to_string_lossy().into_owned(),
        lake: config.dir.join("lake").to_string_lossy().into_owned(),
        full_refresh: false,
        concurrency: config.batch_concurrency.unwrap_or(defaults.concurrency),
        progress: config.progress,
        ..defaults
    })
    .await?;
    let stream = run_stream(
        StreamConfig {
            user_id: config.user_id.clone(),
            lake: config.dir.join("lake").to_string_lossy().into_owned(),
            until_caught_up: true,
            aws,
            ..Default::default()
        },
        std::future::pending(),
    )
    .await?;
    drop(kinesis);
    Ok(DemoSummary {
        landing: landing.to_string_lossy().into_owned(),
        emulate,
        sink,
        batch,
        emulate_stream: emulate_streaming,
        stream,
    })
}
