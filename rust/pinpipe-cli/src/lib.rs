//! The `pinpipe` command: parses flags, hands what the user gave to the core's job functions
//! (which resolve it with the environment, the config file and the defaults), and prints their
//! summaries. No pipeline logic lives here. The same code serves the Rust binary and the
//! `pinpipe` command of the Python wheel.

mod env;
mod mwaa;

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use pinpipe::batch::Stage;
use pinpipe::config::Layers;
use serde::Serialize;

/// pinpipe: the Pinterest data pipeline with a Rust core.
#[derive(Parser)]
#[command(name = "pinpipe", version, about, propagate_version = true)]
struct Cli {
    /// YAML configuration file; its keys mirror the long flags (user_id, bootstrap_servers, ...).
    #[arg(long, global = true, env = env::CONFIG)]
    config: Option<PathBuf>,
    /// Print summaries as JSON on stdout.
    #[arg(long, global = true)]
    json: bool,
    /// AWS profile (of ~/.aws/config and ~/.aws/credentials) for every AWS call: S3, Kinesis, MWAA.
    #[arg(long, global = true, env = env::AWS_PROFILE)]
    aws_profile: Option<String>,
    /// More log output on stderr (-v debug, -vv trace); PINPIPE_LOG takes a full filter.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the pipeline end to end on embedded defaults (no broker or cloud needed).
    Demo(DemoArgs),
    /// Serve the HTTP front: the Kafka REST Proxy v2 produce API and the Kinesis-proxy API.
    Gateway(GatewayArgs),
    /// Post events the way the original emulators did.
    #[command(subcommand)]
    Emulate(EmulateCommand),
    /// Kafka admin for the user's three topics.
    #[command(subcommand)]
    Topics(TopicsCommand),
    /// Kinesis admin for the user's three streams.
    #[command(subcommand)]
    Streams(StreamsCommand),
    /// Land Kafka records in the landing zone (Confluent S3-sink layout), exactly once.
    Sink(SinkArgs),
    /// Landing zone -> clean Delta tables -> analytics tables (incremental, exactly once).
    Batch(BatchArgs),
    /// Kinesis streams -> stream Delta tables, exactly once (daemon, or --until-caught-up).
    Stream(StreamArgs),
    /// Print a lake table, or run SQL over every lake table.
    Query(QueryArgs),
    /// Source database tools.
    #[command(subcommand)]
    Source(SourceCommand),
    /// Deploy to, trigger and watch an Amazon MWAA environment.
    #[command(subcommand)]
    Mwaa(mwaa::MwaaCommand),
}

#[derive(Args)]
struct BatchArgs {
    #[command(flatten)]
    common: Common,
    /// Landing zone: a local directory or s3://bucket/prefix.
    #[arg(long, env = env::LANDING)]
    landing: Option<String>,
    /// Lake root for the Delta tables: a local directory or s3://bucket/prefix.
    #[arg(long, env = env::LAKE)]
    lake: Option<String>,
    /// Rebuild every table from all landed objects.
    #[arg(long)]
    full_refresh: bool,
    /// Run one stage: clean (landing -> raw and clean tables) or analytics (clean -> analytics).
    #[arg(long, value_parser = ["clean", "analytics"])]
    only: Option<String>,
    /// Landing objects read and decoded at once.
    #[arg(long, env = env::CONCURRENCY)]
    concurrency: Option<usize>,
    /// Seconds the run is retried after transient storage failures before it fails [default: 120].
    #[arg(long)]
    retry_deadline: Option<f64>,
    /// Incomplete multipart uploads under the lake older than this many seconds are aborted at
    /// the start of the run (leftovers of a killed run) [default: 86400].
    #[arg(long)]
    abandoned_upload_age: Option<f64>,
    /// Do not compact small files at the end of the run.
    #[arg(long)]
    no_compact: bool,
    /// Small files a table must have before the run compacts it [default: 10].
    #[arg(long)]
    compact_min_files: Option<usize>,
    /// Do not vacuum (delete files no recent table version references) at the end of the run.
    #[arg(long)]
    no_vacuum: bool,
    /// Seconds replaced files are kept for readers and time travel before vacuum deletes them
    /// [default: 604800, 7 days].
    #[arg(long)]
    vacuum_retention: Option<f64>,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
}

#[derive(Args)]
struct StreamArgs {
    #[command(flatten)]
    common: Common,
    /// Lake root for the Delta tables: a local directory or s3://bucket/prefix.
    #[arg(long, env = env::LAKE)]
    lake: Option<String>,
    /// Where a shard with no position in its table starts: trim-horizon, latest or an RFC 3339
    /// time [default: trim-horizon].
    #[arg(long)]
    start: Option<String>,
    /// Read to the ends seen at start, commit, then exit with a summary.
    #[arg(long)]
    until_caught_up: bool,
    /// Seconds between commits (the micro-batch length) [default: 0.5].
    #[arg(long)]
    commit_interval: Option<f64>,
    /// Records gathered that trigger a commit early [default: 50000].
    #[arg(long)]
    max_batch_records: Option<usize>,
    /// Seconds between GetRecords calls on a shard at its tip [default: 0.2].
    #[arg(long)]
    poll_interval: Option<f64>,
    /// Seconds after which a lease nobody renews is taken over [default: 10].
    #[arg(long)]
    lease_duration: Option<f64>,
    /// Name of this reader in the shard leases [default: host-pid-random].
    #[arg(long)]
    worker_id: Option<String>,
    /// With --until-caught-up: seconds Kinesis may stay unreachable before the run fails [default: 120].
    #[arg(long)]
    retry_deadline: Option<f64>,
}

#[derive(Args)]
struct QueryArgs {
    #[command(flatten)]
    common: Common,
    /// Table to print: pin, geo, user, an analytics table, _dead_letters, _quality, a stream
    /// table (<uid>_pin_table, ...), _stream_dead_letters.
    #[arg(required_unless_present_any = ["sql", "list"], conflicts_with = "sql")]
    name: Option<String>,
    /// SQL to run; every lake table is registered by name.
    #[arg(long)]
    sql: Option<String>,
    /// List the table names.
    #[arg(long)]
    list: bool,
    /// Lake root: a local directory or s3://bucket/prefix.
    #[arg(long, env = env::LAKE)]
    lake: Option<String>,
}

#[derive(Args, Clone)]
struct Common {
    /// 12-hex-digit user id; every topic, bucket and stream name derives from it.
    #[arg(long, env = env::USER_ID)]
    user_id: Option<String>,
    /// Kafka bootstrap servers (host:port,...).
    #[arg(long, env = env::BOOTSTRAP_SERVERS)]
    bootstrap_servers: Option<String>,
}

#[derive(Args)]
struct DemoArgs {
    #[command(flatten)]
    common: Common,
    /// Events to send.
    #[arg(long, env = env::EVENTS)]
    events: Option<u64>,
    /// Seed of the emulator's draws.
    #[arg(long, env = env::SEED)]
    seed: Option<u64>,
    /// Concurrent senders.
    #[arg(long, env = env::CONCURRENCY)]
    concurrency: Option<usize>,
    /// Records per landing object.
    #[arg(long, env = env::FLUSH_SIZE)]
    flush_size: Option<usize>,
    /// Landing objects read and decoded at once by the batch step.
    #[arg(long, hide = true)]
    batch_concurrency: Option<usize>,
    /// Working directory of the demo (landing zone and tables go under it) [default: pinpipe-demo].
    #[arg(long)]
    dir: Option<PathBuf>,
}

#[derive(Args)]
struct GatewayArgs {
    #[command(flatten)]
    common: Common,
    /// Address to listen on.
    #[arg(long, env = env::LISTEN)]
    listen: Option<SocketAddr>,
    /// Require this value in the x-api-key header.
    #[arg(long, env = env::API_KEY, hide_env_values = true)]
    api_key: Option<String>,
    /// Topic the API may write to (repeatable; default: the user's three topics; * for any).
    #[arg(long = "allow-topic")]
    allow_topics: Vec<String>,
    /// Kinesis stream the API may use (repeatable; default: the user's three streams; * for any).
    #[arg(long = "allow-stream")]
    allow_streams: Vec<String>,
    /// Largest accepted request body, in bytes.
    #[arg(long)]
    max_body_bytes: Option<usize>,
    /// Seconds a record may wait for the broker's acknowledgement before the request fails (503).
    #[arg(long)]
    produce_timeout: Option<f64>,
    /// Most connections open at once; at the limit the longest-idle one is closed [default: 512].
    #[arg(long)]
    max_connections: Option<usize>,
    /// Seconds a connection may stay without sending a complete request head [default: 30].
    #[arg(long)]
    idle_timeout: Option<f64>,
    /// Seconds a request body may take to arrive [default: 30].
    #[arg(long)]
    body_timeout: Option<f64>,
}

#[derive(Subcommand)]
enum EmulateCommand {
    /// Post pin, geo and user rows to the gateway's REST-proxy API, one event at a time.
    Batch(EmulateArgs),
    /// Put pin, geo and user rows to the gateway's Kinesis-proxy API, one event at a time.
    Stream(EmulateArgs),
    /// Write drawn events straight into a landing zone (no Kafka): for benchmarks and backfills.
    Landing(LandingArgs),
}

#[derive(Args)]
struct LandingArgs {
    #[command(flatten)]
    common: Common,
    /// Landing zone: a local directory or s3://bucket/prefix.
    #[arg(long, env = env::LANDING)]
    landing: Option<String>,
    /// Events to write.
    #[arg(long, env = env::EVENTS)]
    events: Option<u64>,
    /// Seed of the draws.
    #[arg(long, env = env::SEED)]
    seed: Option<u64>,
    /// Records per object.
    #[arg(long, env = env::FLUSH_SIZE)]
    flush_size: Option<usize>,
    /// Rows of the synthetic dataset (rows drawn are 0..=min(11000, rows - 1)) [default: 11154].
    #[arg(long)]
    rows: Option<u64>,
    /// Offset of the first record, to add a later day after an earlier one [default: 0].
    #[arg(long)]
    start_offset: Option<u64>,
}

#[derive(Args)]
struct EmulateArgs {
    #[command(flatten)]
    common: Common,
    /// Base URL of the gateway.
    #[arg(long, env = env::GATEWAY)]
    gateway: Option<String>,
    /// Events to send (0: until interrupted).
    #[arg(long, env = env::EVENTS)]
    events: Option<u64>,
    /// Seed of the draws (100 reproduces the original emulator's rows).
    #[arg(long, env = env::SEED)]
    seed: Option<u64>,
    /// Send flat out instead of sleeping 0-1 s before each event.
    #[arg(long, env = env::NO_SLEEP)]
    no_sleep: bool,
    /// Events in flight at once.
    #[arg(long, env = env::CONCURRENCY)]
    concurrency: Option<usize>,
    /// Where rows come from: synthetic or mysql.
    #[arg(long, env = env::SOURCE)]
    source: Option<String>,
    /// db_creds.yaml of the MySQL source.
    #[arg(long, env = env::DB_CREDS)]
    db_creds: Option<PathBuf>,
    /// Value of the x-api-key header.
    #[arg(long, env = env::API_KEY, hide_env_values = true)]
    api_key: Option<String>,
    /// Seconds to keep retrying a failing request before the event counts as failed.
    #[arg(long)]
    retry_for: Option<f64>,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
}

#[derive(Args, Clone)]
struct StreamsArgs {
    #[command(flatten)]
    common: Common,
    /// Stream to act on instead of the user's three (repeatable).
    #[arg(long = "stream")]
    streams: Vec<String>,
}

#[derive(Subcommand)]
enum StreamsCommand {
    /// Create the three streams (existing ones are left alone) and wait until they are ACTIVE.
    Create {
        #[command(flatten)]
        args: StreamsArgs,
        /// Shards of each new stream [default: 1].
        #[arg(long, value_parser = clap::value_parser!(i32).range(1..))]
        shards: Option<i32>,
    },
    /// List every stream of the account and region.
    List {
        #[command(flatten)]
        common: Common,
    },
    /// Status and shards of the streams, with each shard's parents and sequence range.
    Describe {
        #[command(flatten)]
        args: StreamsArgs,
    },
    /// Delete the streams and wait until they are gone.
    Delete {
        #[command(flatten)]
        args: StreamsArgs,
    },
    /// Read every record of the streams (oldest to tip) with a bare GetRecords loop per shard and
    /// print them as JSON lines (stream, shard_id, sequence_number, partition_key, data).
    Read {
        #[command(flatten)]
        args: StreamsArgs,
        /// Print only the summary (records, records/s).
        #[arg(long)]
        count: bool,
    },
}

#[derive(Subcommand)]
enum TopicsCommand {
    /// Create the three topics (existing ones are left alone).
    Create {
        #[command(flatten)]
        common: Common,
        /// Partitions of each new topic [default: 1].
        #[arg(long, value_parser = clap::value_parser!(i32).range(1..))]
        partitions: Option<i32>,
        /// Replication factor of each new topic [default: 1].
        #[arg(long, value_parser = clap::value_parser!(i32).range(1..))]
        replication_factor: Option<i32>,
    },
    /// List topics with their partitions.
    List {
        #[command(flatten)]
        common: Common,
    },
}

#[derive(Args)]
struct SinkArgs {
    #[command(flatten)]
    common: Common,
    /// Landing zone: a local directory or s3://bucket/prefix.
    #[arg(long, env = env::LANDING)]
    landing: Option<String>,
    /// Records per object (1 reproduces the original connector).
    #[arg(long, env = env::FLUSH_SIZE)]
    flush_size: Option<usize>,
    /// Bytes per object before it is written regardless of the record count.
    #[arg(long)]
    flush_bytes: Option<usize>,
    /// Seconds a record may wait in memory before its object is written.
    #[arg(long)]
    flush_interval: Option<f64>,
    /// Drain to the end offsets seen at start, then exit.
    #[arg(long)]
    until_caught_up: bool,
    /// Consumer group (default pinpipe-sink-<user id>).
    #[arg(long)]
    group_id: Option<String>,
    /// Seconds a landing-zone write keeps being retried through transient failures before the
    /// sink gives up [default: 120].
    #[arg(long)]
    retry_deadline: Option<f64>,
}

#[derive(Subcommand)]
enum SourceCommand {
    /// Create the pinterest_data database and load the synthetic dataset into it.
    LoadMysql {
        /// db_creds.yaml (HOST, USER, PASSWORD, DATABASE, PORT).
        #[arg(long, env = env::DB_CREDS)]
        db_creds: Option<PathBuf>,
        /// Rows per table.
        #[arg(long, default_value_t = 11_154)]
        rows: u64,
        /// Seed of the synthetic dataset.
        #[arg(long, default_value_t = 0)]
        dataset_seed: u64,
    },
}

/// Completes on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("install SIGTERM handler");
        tokio::select! { _ = ctrl_c => {}, _ = term.recv() => {} }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

fn print<T: Serialize>(json: bool, summary: &T, text: impl FnOnce(&T) -> String) {
    if json {
        println!("{}", serde_json::to_string_pretty(summary).expect("summary serializes"));
    } else {
        println!("{}", text(summary));
    }
}

fn init_logging(verbose: u8) {
    let quiet = format!("{}=error", pinpipe::QUIET_LOG_TARGET);
    let filter = match std::env::var(env::LOG) {
        // A filter that says nothing of delta-rs keeps its per-merge warning quiet too.
        Ok(filter) if !filter.contains("deltalake") => format!("{filter},{quiet}"),
        Ok(filter) => filter,
        Err(_) => match verbose {
            0 => format!("warn,pinpipe=info,{quiet}"),
            1 => format!("info,pinpipe=debug,{quiet}"),
            _ => "debug,pinpipe=trace".to_string(),
        },
    };
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
}

/// Runs the CLI on `args` (the program name first) and returns the process exit status.
pub fn main_with(args: impl IntoIterator<Item = OsString>) -> i32 {
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { 2 } else { 0 };
        }
    };
    init_logging(cli.verbose);
    pinpipe::install_panic_filter();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return 1;
        }
    };
    let result = runtime.block_on(run(cli));
    // Background work (a gateway's connections, a client's retries) must not keep the process up.
    runtime.shutdown_background();
    match result {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("error: {}", pinpipe::error::one_line(e.as_ref()));
            1
        }
    }
}

async fn run(cli: Cli) -> Result<()> {
    let mut base = Layers::new(cli.config.clone());
    base.set_shared("aws", cli.aws_profile.as_ref().map(|p| serde_json::json!({ "profile": p })));
    let json = cli.json;
    match cli.command {
        Command::Demo(args) => commands::demo(base, args, json).await,
        Command::Gateway(args) => commands::gateway(base, args, json).await,
        Command::Emulate(EmulateCommand::Batch(args)) => commands::emulate(base, args, false, json).await,
        Command::Emulate(EmulateCommand::Stream(args)) => commands::emulate(base, args, true, json).await,
        Command::Emulate(EmulateCommand::Landing(args)) => commands::emulate_landing(base, args, json).await,
        Command::Topics(cmd) => commands::topics(base, cmd, json).await,
        Command::Streams(cmd) => commands::streams(base, cmd, json).await,
        Command::Sink(args) => commands::sink(base, args, json).await,
        Command::Batch(args) => commands::batch(base, args, json).await,
        Command::Stream(args) => commands::stream(base, args, json).await,
        Command::Query(args) => commands::query(base, args, json).await,
        Command::Mwaa(command) => mwaa::run(base, command, json).await,
        Command::Source(SourceCommand::LoadMysql { db_creds, rows, dataset_seed }) => {
            let path = match db_creds {
                Some(path) => path,
                None => {
                    let config: pinpipe::emulate::EmulateConfig = base.resolve()?;
                    config.db_creds.unwrap_or_else(|| PathBuf::from("db_creds.yaml"))
                }
            };
            let creds = pinpipe::source::DbCreds::load(&path)?;
            let dataset =
                pinpipe::source::SyntheticDataset::new(&pinpipe::source::SyntheticConfig { rows, seed: dataset_seed });
            let summary = pinpipe::source::mysql::load_mysql(&creds, &dataset).await?;
            print(json, &summary, |s| {
                format!("loaded {} rows into each table of database {}", s.rows_per_table, s.database)
            });
            Ok(())
        }
    }
}

impl Common {
    /// Adds the flags given to `layers`.
    fn apply(&self, layers: &mut Layers) {
        layers
            .set_shared("user_id", self.user_id.clone())
            .set_shared("bootstrap_servers", self.bootstrap_servers.clone());
    }
}

/// Seconds given on the command line, checked (the core takes them as numbers).
fn secs(v: Option<f64>, what: &str) -> Result<Option<f64>> {
    match v {
        Some(s) if !(s.is_finite() && s >= 0.0) => anyhow::bail!("{what} must be a non-negative number of seconds"),
        other => Ok(other),
    }
}

fn stage(only: Option<String>) -> Result<Option<Stage>> {
    only.map(|s| s.parse::<Stage>()).transpose().context("--only")
}

mod commands;
