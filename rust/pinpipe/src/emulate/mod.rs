//! The posting emulators. `emulate_batch` does what the original batch emulator did: for each
//! event it draws a row number, reads that row of the three tables and posts each to its topic
//! through the gateway's REST-proxy API, one record per request. `emulate_stream` does what the
//! original streaming emulator did: the same draws and rows, each PUT to its Kinesis stream
//! through the gateway's Kinesis-proxy API.

use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::config::Secret;
use crate::error::{Error, Result};
use crate::model::Table;
use crate::names::UserId;
use crate::pyrandom::PyRandom;
use crate::source::Source;
use crate::source::SourceConfig;

mod landing;
pub use landing::{write_landing, LandingWriteConfig, LandingWriteSummary};

/// Configuration of an emulator run.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EmulateConfig {
    /// Base URL of the gateway. Default `http://127.0.0.1:8082`.
    pub gateway: String,
    /// Whose topics (or streams) to post to.
    pub user_id: UserId,
    /// Events to send; `None` sends until stopped. Default 1000.
    pub events: Option<u64>,
    /// Seed of the draws: with 100, rows come in the order the original emulator drew them.
    pub seed: u64,
    /// Largest row number drawn (the original drew `randint(0, 11000)`).
    pub max_row: u64,
    /// Send flat out instead of sleeping the drawn 0 or 1 s before each event.
    pub no_sleep: bool,
    /// Events in flight at once. Default 1 (the original's shape).
    pub concurrency: usize,
    /// Value of the `x-api-key` header, if the gateway wants one.
    pub api_key: Option<Secret>,
    /// Where rows come from: `synthetic` (default) or `mysql`.
    pub source: String,
    /// `db_creds.yaml` of the MySQL source. Default `db_creds.yaml`.
    pub db_creds: Option<PathBuf>,
    /// How long a request is retried (5xx, connection errors) before its event counts as failed.
    #[serde(with = "crate::config::duration_secs")]
    pub retry_for: Duration,
    /// Show a progress bar on stderr.
    pub progress: bool,
}

impl Default for EmulateConfig {
    fn default() -> Self {
        EmulateConfig {
            gateway: "http://127.0.0.1:8082".into(),
            user_id: UserId::default(),
            events: Some(1000),
            seed: 100,
            max_row: 11_000,
            no_sleep: false,
            concurrency: 1,
            api_key: None,
            source: "synthetic".into(),
            db_creds: None,
            retry_for: Duration::from_secs(300),
            progress: false,
        }
    }
}

/// What an emulator run did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct EmulateSummary {
    pub events_sent: u64,
    pub events_failed: u64,
    pub records_sent: u64,
    pub requests_retried: u64,
    pub elapsed_secs: f64,
    pub events_per_sec: f64,
    /// The first error that made an event fail, if any.
    pub first_error: Option<String>,
}

/// The draws of the original emulator: before each event `randrange(0, 2)` (seconds to sleep),
/// then `randint(0, max_row)` (the row), from CPython's generator seeded with `seed`.
pub struct Draws {
    rng: PyRandom,
    max_row: u64,
}

impl Draws {
    pub fn new(seed: u64, max_row: u64) -> Self {
        Draws { rng: PyRandom::new(seed), max_row }
    }

    /// (seconds to sleep, row number) of the next event.
    pub fn next_event(&mut self) -> (u64, u64) {
        let sleep = self.rng.randrange(0, 2) as u64;
        let row = self.rng.randint(0, self.max_row as i64) as u64;
        (sleep, row)
    }
}

#[derive(Default)]
struct Counters {
    sent: AtomicU64,
    failed: AtomicU64,
    records: AtomicU64,
    retried: AtomicU64,
}

impl EmulateConfig {
    /// The source these settings name.
    pub fn source_config(&self) -> Result<SourceConfig> {
        SourceConfig::from_name(&self.source, self.db_creds.clone())
    }
}

/// Which API of the gateway the emulator posts to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// `POST /topics/<uid>.<t>` with `{"records": [{"value": row}]}` (the batch emulator).
    Topics,
    /// `PUT /streams/streaming-<uid>-<t>/record` with `{"StreamName", "Data": row,
    /// "PartitionKey": "partition-1"}` (the streaming emulator).
    Streams,
}

/// One table's endpoint: where its records go and the stream name for the body.
struct Endpoint {
    table: Table,
    url: String,
    stream: String,
}

/// Runs the batch emulator until `config.events` are sent (or failed) or `stop` completes.
pub async fn emulate_batch(
    config: EmulateConfig,
    source: Arc<Source>,
    stop: impl Future<Output = ()>,
) -> Result<EmulateSummary> {
    emulate(config, source, Target::Topics, stop).await
}

/// Runs the streaming emulator until `config.events` are sent (or failed) or `stop` completes.
pub async fn emulate_stream(
    config: EmulateConfig,
    source: Arc<Source>,
    stop: impl Future<Output = ()>,
) -> Result<EmulateSummary> {
    emulate(config, source, Target::Streams, stop).await
}

async fn emulate(
    config: EmulateConfig,
    source: Arc<Source>,
    target: Target,
    stop: impl Future<Output = ()>,
) -> Result<EmulateSummary> {
    if config.concurrency == 0 {
        return Err(Error::Config("concurrency must be at least 1".into()));
    }
    let base = config.gateway.trim_end_matches('/').to_string();
    if !(base.starts_with("http://") || base.starts_with("https://")) {
        return Err(Error::Config(format!("gateway must be an http(s) URL, got {base:?}")));
    }
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(config.concurrency.max(8))
        .timeout(Duration::from_secs(60))
        .build()
        .map_err(|e| Error::Http(format!("create HTTP client: {e}")))?;
    let urls: Vec<Endpoint> = Table::ALL
        .iter()
        .map(|t| {
            let stream = config.user_id.stream(*t);
            let url = match target {
                Target::Topics => format!("{base}/topics/{}", config.user_id.topic(*t)),
                Target::Streams => format!("{base}/streams/{stream}/record"),
            };
            Endpoint { table: *t, url, stream }
        })
        .collect();
    let draws = Arc::new(Mutex::new((Draws::new(config.seed, config.max_row), 0u64)));
    let counters = Arc::new(Counters::default());
    let first_error = Arc::new(Mutex::new(None::<String>));
    let bar = progress_bar(&config);
    let started = Instant::now();
    let config = Arc::new(config);
    let urls = Arc::new(urls);

    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..config.concurrency {
        let (config, urls, draws, counters, first_error, bar, client, source) = (
            config.clone(),
            urls.clone(),
            draws.clone(),
            counters.clone(),
            first_error.clone(),
            bar.clone(),
            client.clone(),
            source.clone(),
        );
        workers.spawn(async move {
            loop {
                let next = {
                    let mut guard = draws.lock().expect("draws lock");
                    if config.events.is_some_and(|n| guard.1 >= n) {
                        None
                    } else {
                        guard.1 += 1;
                        Some(guard.0.next_event())
                    }
                };
                let Some((sleep, row)) = next else { break };
                if !config.no_sleep && sleep > 0 {
                    tokio::time::sleep(Duration::from_secs(sleep)).await;
                }
                match send_event(&client, &config, target, &urls, &source, row, &counters).await {
                    Ok(()) => {
                        counters.sent.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => {
                        counters.failed.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(row, error = %e, "event failed");
                        first_error.lock().expect("error lock").get_or_insert_with(|| e.to_string());
                    }
                }
                bar.inc(1);
            }
        });
    }
    tokio::pin!(stop);
    let stopped = tokio::select! {
        _ = async { while workers.join_next().await.is_some() {} } => false,
        _ = &mut stop => true,
    };
    if stopped {
        workers.abort_all();
        while workers.join_next().await.is_some() {}
    }
    bar.finish_and_clear();
    let elapsed = started.elapsed().as_secs_f64();
    let sent = counters.sent.load(Ordering::Relaxed);
    let summary = EmulateSummary {
        events_sent: sent,
        events_failed: counters.failed.load(Ordering::Relaxed),
        records_sent: counters.records.load(Ordering::Relaxed),
        requests_retried: counters.retried.load(Ordering::Relaxed),
        elapsed_secs: elapsed,
        events_per_sec: if elapsed > 0.0 { sent as f64 / elapsed } else { 0.0 },
        first_error: first_error.lock().expect("error lock").clone(),
    };
    Ok(summary)
}

fn progress_bar(config: &EmulateConfig) -> ProgressBar {
    if !config.progress {
        return ProgressBar::hidden();
    }
    let bar = match config.events {
        Some(n) => ProgressBar::new(n),
        None => ProgressBar::new_spinner(),
    };
    bar.set_draw_target(ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template("{spinner} {pos}/{len} events [{elapsed_precise}] {per_sec} {wide_bar}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar
}

async fn send_event(
    client: &reqwest::Client,
    config: &EmulateConfig,
    target: Target,
    endpoints: &[Endpoint],
    source: &Source,
    row: u64,
    counters: &Counters,
) -> Result<()> {
    let event = source.event(row).await?;
    for endpoint in endpoints {
        let row = event.get(endpoint.table);
        let body = match target {
            Target::Topics => json!({"records": [{"value": row}]}),
            Target::Streams => json!({"StreamName": endpoint.stream, "Data": row, "PartitionKey": "partition-1"}),
        };
        let body = serde_json::to_vec(&body).expect("event serializes");
        post_with_retry(client, config, target, &endpoint.url, body, counters).await?;
        counters.records.fetch_add(1, Ordering::Relaxed);
    }
    Ok(())
}

/// Sends one request, retrying 5xx answers and connection errors with exponential backoff for up
/// to `retry_for`. A 4xx answer is final.
async fn post_with_retry(
    client: &reqwest::Client,
    config: &EmulateConfig,
    target: Target,
    url: &str,
    body: Vec<u8>,
    counters: &Counters,
) -> Result<()> {
    let deadline = Instant::now() + config.retry_for;
    let mut backoff = Duration::from_millis(100);
    loop {
        let mut request = match target {
            Target::Topics => client.post(url).header("Content-Type", "application/vnd.kafka.json.v2+json"),
            Target::Streams => client.put(url).header("Content-Type", "application/json"),
        }
        .body(body.clone());
        if let Some(key) = &config.api_key {
            request = request.header("x-api-key", key.expose());
        }
        let problem = match request.send().await {
            Ok(response) if response.status().is_success() => return Ok(()),
            Ok(response) => {
                let status = response.status();
                let text = response.text().await.unwrap_or_default();
                if status.is_client_error() {
                    return Err(Error::Http(format!("{url} answered {status}: {text}")));
                }
                format!("{url} answered {status}: {text}")
            }
            Err(e) => format!("{url}: {e}"),
        };
        if Instant::now() + backoff > deadline {
            return Err(Error::Http(format!("gave up after {:?}: {problem}", config.retry_for)));
        }
        tracing::debug!(problem = %problem, ?backoff, "retrying");
        counters.retried.fetch_add(1, Ordering::Relaxed);
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_follow_the_original_emulator() {
        let mut draws = Draws::new(100, 11_000);
        let rows: Vec<u64> = (0..8).map(|_| draws.next_event().1).collect();
        assert_eq!(rows, [7528, 2863, 5730, 8304, 8731, 1313, 4315, 10794]);
    }
}
