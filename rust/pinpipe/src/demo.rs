//! `demo`: the pipeline end to end on embedded defaults, in one process: synthetic source →
//! emulator → gateway → in-process Kafka → sink → local landing zone → batch → Delta tables.

use std::path::PathBuf;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::batch::{run_batch, BatchConfig, BatchSummary};
use crate::emulate::{emulate_batch, EmulateConfig, EmulateSummary};
use crate::error::Result;
use crate::gateway::GatewayConfig;
use crate::kafka::EmbeddedKafka;
use crate::names::UserId;
use crate::sink::{run_sink, SinkConfig, SinkSummary, StopSignal};
use crate::source::SourceConfig;

/// Configuration of a demo run.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DemoConfig {
    /// Whose resource names to use.
    pub user_id: UserId,
    /// Working directory; the landing zone goes in `<dir>/landing`, the lake in `<dir>/lake`.
    /// Default `pinpipe-demo`.
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
}

pub async fn run_demo(config: DemoConfig) -> Result<DemoSummary> {
    let kafka = EmbeddedKafka::start()?;
    for topic in config.user_id.topics() {
        kafka.create_topic(&topic, config.partitions)?;
    }
    let connection = kafka.connection();
    let gateway =
        GatewayConfig { listen: ([127, 0, 0, 1], 0).into(), user_id: config.user_id.clone(), ..Default::default() }
            .build(&connection)
            .await?;
    let url = format!("http://{}", gateway.local_addr());
    let stop_gateway = StopSignal::default();
    let gateway_task = {
        let stop = stop_gateway.clone();
        tokio::spawn(gateway.serve(stop.wait_owned()))
    };

    let source = Arc::new(SourceConfig::default().build().await?);
    let emulate = emulate_batch(
        EmulateConfig {
            gateway: url,
            user_id: config.user_id.clone(),
            events: Some(config.events),
            seed: config.seed,
            no_sleep: true,
            concurrency: config.concurrency,
            progress: config.progress,
            ..Default::default()
        },
        source,
        std::future::pending(),
    )
    .await?;
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
    Ok(DemoSummary { landing: landing.to_string_lossy().into_owned(), emulate, sink, batch })
}
