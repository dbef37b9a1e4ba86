//! The sink: Kafka → landing zone, exactly once.
//!
//! A consumer group reads the user's topics (`^<uid>\..*`, like the connector's `topics.regex`)
//! and writes objects in the Confluent S3-sink layout. Exactly once comes from the object names,
//! not from Kafka's committed offsets (which are only advisory here):
//! - an object is named by the offset of its first record and written create-only (S3
//!   conditional put, exclusive create on disk), so no object is ever overwritten;
//! - when the name is taken (a replay after a crash, or another group member that owned the
//!   partition before a rebalance), the existing object is read and its N records are taken as
//!   landed: the first N records read from that offset are skipped, whatever this run's file
//!   boundaries would have been (size, bytes and time triggers may differ between runs);
//! - on each (re)assignment reading moves to the start of the partition's last object, so a
//!   commit that lags behind the landing zone, lies inside an object, or is missing (a new group)
//!   still lines up with object boundaries, and nothing landed is read twice over.
//!
//! Offsets are committed to Kafka only after the object holding them is durable.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer};
use rdkafka::message::Message;
use rdkafka::topic_partition_list::TopicPartitionList;
use rdkafka::{ClientContext, Offset};
use serde::{Deserialize, Serialize};

use crate::config::AwsConfig;
use crate::error::{retrying, Error, Result};
use crate::kafka::{KafkaConnection, METADATA_TIMEOUT};
use crate::landing::{self, PutOutcome, Store};
use crate::names::UserId;

/// Configuration of the sink.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SinkConfig {
    /// Whose topics to read (`^<uid>\..*`).
    pub user_id: UserId,
    /// Kafka bootstrap servers (`host:port,...`).
    pub bootstrap_servers: Option<String>,
    /// Extra librdkafka properties (TLS, SASL, ...), passed through as given.
    pub kafka_properties: BTreeMap<String, String>,
    /// AWS access for an S3 landing zone.
    pub aws: AwsConfig,
    /// Landing zone: a local directory or `s3://bucket/prefix`. Default `landing`.
    pub landing: String,
    /// Consumer group. Default `pinpipe-sink-<uid>`.
    pub group_id: Option<String>,
    /// Records per object (the connector's `flush.size`; 1 reproduces the original). Default 1000.
    pub flush_size: usize,
    /// Bytes per object before it is written regardless of the record count. Default 16 MiB.
    pub flush_bytes: usize,
    /// Longest time a record waits in memory before its object is written. Default 10 s.
    #[serde(with = "crate::config::duration_secs")]
    pub flush_interval: Duration,
    /// Drain to the end offsets seen at start, write everything, and return (for schedulers).
    pub until_caught_up: bool,
    /// How long the landing zone may keep failing transiently (connection refused or reset, lost
    /// replies, 5xx) before the sink gives up; each write is retried with backoff until then.
    /// Default 120 s.
    #[serde(with = "crate::config::duration_secs")]
    pub retry_deadline: Duration,
}

impl SinkConfig {
    /// The Kafka connection of these settings.
    pub fn kafka(&self) -> Result<KafkaConnection> {
        KafkaConnection::from_settings(self.bootstrap_servers.as_deref(), &self.kafka_properties)
    }
}

impl Default for SinkConfig {
    fn default() -> Self {
        SinkConfig {
            user_id: UserId::default(),
            bootstrap_servers: None,
            kafka_properties: BTreeMap::new(),
            aws: AwsConfig::default(),
            landing: "landing".into(),
            group_id: None,
            flush_size: 1000,
            flush_bytes: 16 * 1024 * 1024,
            flush_interval: Duration::from_secs(10),
            until_caught_up: false,
            retry_deadline: Duration::from_secs(120),
        }
    }
}

/// What a sink run did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SinkSummary {
    /// Records written in objects this run created.
    pub records_landed: u64,
    /// Objects this run created.
    pub objects_created: u64,
    /// Records read again that an existing object already held (replays after a crash).
    pub records_already_landed: u64,
    /// Existing objects found where this run would have written.
    pub objects_found: u64,
    /// Landed records per topic, this run.
    pub records_by_topic: BTreeMap<String, u64>,
    pub elapsed_secs: f64,
    /// Seconds from start until the group first assigned partitions (the consumer-group join).
    pub assigned_after_secs: f64,
    /// Seconds from the first assignment to the end: the time spent consuming and writing.
    pub consume_secs: f64,
}

type RebalanceEvent = (bool, Vec<(String, i32)>);

/// Rebalance events, handed from librdkafka's callback to the sink loop.
#[derive(Default)]
struct SinkContext {
    /// (assigned or revoked, partitions)
    events: Mutex<Vec<RebalanceEvent>>,
}

impl ClientContext for SinkContext {}

impl ConsumerContext for SinkContext {
    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let (assigned, list) = match rebalance {
            Rebalance::Assign(list) => (true, *list),
            Rebalance::Revoke(list) => (false, *list),
            Rebalance::Error(e) => {
                tracing::warn!(error = %e, "rebalance error");
                return;
            }
        };
        let partitions = list.elements().iter().map(|e| (e.topic().to_string(), e.partition())).collect();
        self.events.lock().expect("rebalance events lock").push((assigned, partitions));
    }
}

#[derive(Debug)]
enum Phase {
    /// Assigned, nothing read yet.
    Fresh,
    /// Rewound to `target`; messages before it arrives are stale prefetches.
    Realigning {
        target: i64,
    },
    Running,
}

/// One assigned partition's buffer and position.
struct Partition {
    phase: Phase,
    data: Vec<u8>,
    /// Offset and end position in `data` of each buffered record.
    records: Vec<(i64, usize)>,
    first_at: Option<Instant>,
    /// Records still to drop because an existing object already holds them.
    skip: u64,
    /// Every offset below this is in the landing zone.
    covered: i64,
}

impl Partition {
    fn new(covered: i64) -> Self {
        Partition { phase: Phase::Fresh, data: Vec::new(), records: Vec::new(), first_at: None, skip: 0, covered }
    }
}

type Tp = (String, i32);

struct Sink {
    config: SinkConfig,
    consumer: StreamConsumer<SinkContext>,
    store: Store,
    partitions: HashMap<Tp, Partition>,
    /// End offsets to reach in `until_caught_up` mode.
    targets: HashMap<Tp, i64>,
    had_assignment: bool,
    started: Instant,
    summary: SinkSummary,
}

/// Runs the sink until `shutdown` completes (then writes what it holds) or, with
/// `until_caught_up`, until everything present at start is landed.
pub async fn run_sink(
    config: SinkConfig,
    kafka: &KafkaConnection,
    shutdown: impl Future<Output = ()>,
) -> Result<SinkSummary> {
    if config.flush_size == 0 {
        return Err(Error::Config("flush_size must be at least 1".into()));
    }
    let store = Store::open_with(&config.landing, &config.aws).await?;
    let group = config.group_id.clone().unwrap_or_else(|| format!("pinpipe-sink-{}", config.user_id));
    let consumer: StreamConsumer<SinkContext> = kafka
        .client_config()
        .set("group.id", &group)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("topic.metadata.refresh.interval.ms", "5000")
        .set("session.timeout.ms", "10000")
        .set("allow.auto.create.topics", "false")
        // A write riding out a landing-zone outage must not cost the group membership.
        .set("max.poll.interval.ms", max_poll_interval_ms(config.retry_deadline).to_string())
        .create_with_context(SinkContext::default())
        .map_err(Error::kafka("create consumer"))?;
    consumer.subscribe(&[&config.user_id.topic_regex()]).map_err(Error::kafka("subscribe"))?;
    let started = Instant::now();
    let mut sink = Sink {
        config,
        consumer,
        store,
        partitions: HashMap::new(),
        targets: HashMap::new(),
        had_assignment: false,
        started,
        summary: SinkSummary::default(),
    };
    if sink.config.until_caught_up {
        sink.targets = sink.end_offsets().await?;
        tracing::info!(partitions = sink.targets.len(), "draining to the end offsets seen at start");
    }
    tokio::pin!(shutdown);
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    loop {
        sink.apply_rebalances().await?;
        if sink.config.until_caught_up && sink.caught_up() {
            break;
        }
        tokio::select! {
            message = sink.consumer.recv() => {
                let (tp, offset, payload) = {
                    let message = match message {
                        Ok(m) => m,
                        Err(e) if is_fatal(&e) => return Err(Error::kafka("consume")(e)),
                        Err(e) => {
                            // Broker gone or restarting: librdkafka reconnects by itself.
                            tracing::warn!(error = %e, "consumer error; retrying");
                            tokio::time::sleep(Duration::from_millis(500)).await;
                            continue;
                        }
                    };
                    let tp = (message.topic().to_string(), message.partition());
                    (tp, message.offset(), message.payload().map(|p| p.to_vec()))
                };
                sink.apply_rebalances().await?;
                sink.handle(tp, offset, payload.as_deref()).await?;
            }
            _ = tick.tick() => sink.flush_due().await?,
            _ = &mut shutdown => {
                tracing::info!("shutting down: writing buffered records");
                break;
            }
        }
    }
    sink.flush_all().await?;
    sink.summary.elapsed_secs = started.elapsed().as_secs_f64();
    sink.summary.consume_secs = sink.summary.elapsed_secs - sink.summary.assigned_after_secs;
    Ok(sink.summary)
}

/// librdkafka's `max.poll.interval.ms` for a sink whose writes may retry for `deadline`.
fn max_poll_interval_ms(deadline: Duration) -> u64 {
    (deadline.as_millis() as u64).saturating_mul(2).saturating_add(60_000).clamp(300_000, 86_400_000)
}

/// Errors after which consuming cannot go on (everything else librdkafka recovers from).
fn is_fatal(e: &rdkafka::error::KafkaError) -> bool {
    use rdkafka::types::RDKafkaErrorCode::*;
    matches!(
        e.rdkafka_error_code(),
        Some(
            Fatal
                | Authentication
                | SaslAuthenticationFailed
                | TopicAuthorizationFailed
                | GroupAuthorizationFailed
                | InvalidGroupId
        )
    )
}

/// One landing-zone line for a record value. A JSON value lands as the producer sent it, byte
/// for byte, except that line breaks between its tokens become spaces (a JSON string cannot hold
/// a raw line break, so this never touches the data). Anything else — empty, blank, not JSON,
/// invalid UTF-8 — lands as [`landing::undecodable_line`], so that every record is exactly one
/// line and batch can dead-letter it with its exact bytes.
fn append_line(out: &mut Vec<u8>, payload: Option<&[u8]>) {
    match payload {
        None => out.extend_from_slice(b"null"),
        Some(p) if serde_json::from_slice::<serde::de::IgnoredAny>(p).is_ok() => {
            if p.iter().any(|b| *b == b'\n' || *b == b'\r') {
                out.extend(p.iter().map(|b| if *b == b'\n' || *b == b'\r' { b' ' } else { *b }));
            } else {
                out.extend_from_slice(p);
            }
        }
        Some(p) => landing::undecodable_line(out, p),
    }
    out.push(b'\n');
}

fn count_lines(data: &[u8]) -> u64 {
    let newlines = data.iter().filter(|b| **b == b'\n').count() as u64;
    if data.last().is_some_and(|b| *b != b'\n') {
        newlines + 1
    } else {
        newlines
    }
}

impl Sink {
    /// High watermarks of every partition of the user's topics.
    async fn end_offsets(&self) -> Result<HashMap<Tp, i64>> {
        let prefix = format!("{}.", self.config.user_id);
        let metadata = self.consumer.fetch_metadata(None, METADATA_TIMEOUT).map_err(Error::kafka("fetch metadata"))?;
        let mut out = HashMap::new();
        for topic in metadata.topics().iter().filter(|t| t.name().starts_with(&prefix)) {
            for p in topic.partitions() {
                let (_, high) = self
                    .consumer
                    .fetch_watermarks(topic.name(), p.id(), METADATA_TIMEOUT)
                    .map_err(Error::kafka(format!("end offset of {}/{}", topic.name(), p.id())))?;
                out.insert((topic.name().to_string(), p.id()), high);
            }
        }
        Ok(out)
    }

    fn caught_up(&self) -> bool {
        if !self.had_assignment && !self.targets.values().all(|h| *h == 0) {
            return false;
        }
        self.partitions.iter().all(|(tp, part)| {
            let target = self.targets.get(tp).copied().unwrap_or(0);
            part.covered >= target && part.records.is_empty() && part.skip == 0
        })
    }

    async fn apply_rebalances(&mut self) -> Result<()> {
        let events = std::mem::take(&mut *self.consumer.context().events.lock().expect("rebalance events lock"));
        for (assigned, list) in events {
            if assigned {
                if !self.had_assignment {
                    self.summary.assigned_after_secs = self.started.elapsed().as_secs_f64();
                }
                self.had_assignment = true;
                let mut tpl = TopicPartitionList::new();
                for (t, p) in &list {
                    tpl.add_partition(t, *p);
                }
                // Committed offsets only speed up the caught-up check; the landing zone decides
                // where reading resumes, so a broker that cannot answer now is no reason to stop.
                let committed = match self.consumer.committed_offsets(tpl, METADATA_TIMEOUT) {
                    Ok(c) => Some(c),
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot read committed offsets; resuming from the landing zone");
                        None
                    }
                };
                for (t, p) in list {
                    let mut covered = match committed.as_ref().and_then(|c| c.find_partition(&t, p)).map(|e| e.offset())
                    {
                        Some(Offset::Offset(o)) => o,
                        _ => 0,
                    };
                    if let Ok((low, _)) = self.consumer.fetch_watermarks(&t, p, METADATA_TIMEOUT) {
                        covered = covered.max(low);
                    }
                    tracing::info!(topic = %t, partition = p, committed = covered, "partition assigned");
                    self.partitions.insert((t, p), Partition::new(covered));
                }
            } else {
                for tp in list {
                    if let Some(part) = self.partitions.remove(&tp) {
                        tracing::info!(topic = %tp.0, partition = tp.1, dropped = part.records.len(), "partition revoked");
                    }
                }
            }
        }
        Ok(())
    }

    async fn handle(&mut self, tp: Tp, offset: i64, payload: Option<&[u8]>) -> Result<()> {
        let Some(part) = self.partitions.get_mut(&tp) else {
            return Ok(()); // revoked meanwhile: the new owner reads it again
        };
        match part.phase {
            Phase::Fresh => {
                let start = self.last_object_start(&tp).await?;
                let part = self.partitions.get_mut(&tp).expect("partition present");
                match start {
                    Some(s) if s != offset => {
                        tracing::info!(topic = %tp.0, partition = tp.1, from = offset, to = s, "moving to the start of the last landed object");
                        match self.consumer.seek(&tp.0, tp.1, Offset::Offset(s), METADATA_TIMEOUT) {
                            Ok(()) => part.phase = Phase::Realigning { target: s },
                            // Stay fresh: the next message tries again.
                            Err(e) => tracing::warn!(error = %e, "seek failed; retrying on the next message"),
                        }
                        return Ok(());
                    }
                    _ => part.phase = Phase::Running,
                }
            }
            Phase::Realigning { target } => {
                if offset != target {
                    return Ok(());
                }
                part.phase = Phase::Running;
            }
            Phase::Running => {}
        }
        let part = self.partitions.get_mut(&tp).expect("partition present");
        if part.skip > 0 {
            part.skip -= 1;
            self.summary.records_already_landed += 1;
            if part.skip == 0 {
                part.covered = offset + 1;
                self.commit(&tp, offset + 1);
            }
            return Ok(());
        }
        append_line(&mut part.data, payload);
        part.records.push((offset, part.data.len()));
        part.first_at.get_or_insert_with(Instant::now);
        let full = part.records.len() >= self.config.flush_size || part.data.len() >= self.config.flush_bytes;
        let at_target = self.config.until_caught_up && self.targets.get(&tp).is_some_and(|high| offset + 1 >= *high);
        if full || at_target {
            self.flush(&tp).await?;
        }
        Ok(())
    }

    /// Start offset of the partition's last landed object. Objects of a partition always chain
    /// without gaps, so every record before it is landed: reading resumes there (and the object
    /// itself is recognised and skipped), whether Kafka's committed offset lags behind, lies
    /// inside an object, or is missing (a new consumer group).
    async fn last_object_start(&self, tp: &Tp) -> Result<Option<i64>> {
        let dir = landing::partition_dir(&tp.0, tp.1);
        let store = &self.store;
        let keys = retrying(&format!("list {dir}"), self.config.retry_deadline, || store.list(&dir)).await?;
        Ok(keys.iter().filter_map(|k| landing::start_offset_of(k)).max())
    }

    async fn flush_due(&mut self) -> Result<()> {
        let due: Vec<Tp> = self
            .partitions
            .iter()
            .filter(|(_, p)| p.first_at.is_some_and(|t| t.elapsed() >= self.config.flush_interval))
            .map(|(tp, _)| tp.clone())
            .collect();
        for tp in due {
            self.flush(&tp).await?;
        }
        Ok(())
    }

    async fn flush_all(&mut self) -> Result<()> {
        let all: Vec<Tp> = self.partitions.keys().cloned().collect();
        for tp in all {
            self.flush(&tp).await?;
        }
        Ok(())
    }

    /// Writes the partition's buffer as one object (or resolves it against existing objects).
    async fn flush(&mut self, tp: &Tp) -> Result<()> {
        loop {
            let part = self.partitions.get_mut(tp).expect("partition present");
            let Some(&(start, _)) = part.records.first() else {
                part.first_at = None;
                return Ok(());
            };
            let (last, _) = *part.records.last().expect("non-empty");
            let key = landing::object_key(&tp.0, tp.1, start);
            let data = Bytes::from(std::mem::take(&mut part.data));
            let records = std::mem::take(&mut part.records);
            part.first_at = None;
            let n = records.len() as u64;
            let store = &self.store;
            // Create-only: a retry after a lost reply finds the object and counts it as landed.
            let what = format!("put {key}");
            match retrying(&what, self.config.retry_deadline, || store.put_new(&key, data.clone())).await? {
                PutOutcome::Created => {
                    self.summary.records_landed += n;
                    self.summary.objects_created += 1;
                    *self.summary.records_by_topic.entry(tp.0.clone()).or_default() += n;
                    let part = self.partitions.get_mut(tp).expect("partition present");
                    part.covered = last + 1;
                    self.commit(tp, last + 1);
                    return Ok(());
                }
                PutOutcome::AlreadyExists => {
                    let store = &self.store;
                    let body = retrying(&format!("get {key}"), self.config.retry_deadline, || store.get(&key)).await?;
                    let existing = count_lines(&body);
                    self.summary.objects_found += 1;
                    tracing::info!(key = %key, records = existing, "object already landed; skipping its records");
                    let part = self.partitions.get_mut(tp).expect("partition present");
                    if existing >= n {
                        self.summary.records_already_landed += n;
                        part.skip = existing - n;
                        if part.skip == 0 {
                            part.covered = last + 1;
                            self.commit(tp, last + 1);
                        }
                        return Ok(());
                    }
                    // Keep the records past the existing object and write them at their own offset.
                    self.summary.records_already_landed += existing;
                    let cut = records[existing as usize - 1].1;
                    part.data = data[cut..].to_vec();
                    part.records = records[existing as usize..].iter().map(|(o, end)| (*o, end - cut)).collect();
                    part.first_at = Some(Instant::now());
                }
            }
        }
    }

    fn commit(&self, tp: &Tp, next: i64) {
        let mut tpl = TopicPartitionList::new();
        if tpl.add_partition_offset(&tp.0, tp.1, Offset::Offset(next)).is_ok() {
            if let Err(e) = self.consumer.commit(&tpl, CommitMode::Async) {
                tracing::warn!(topic = %tp.0, partition = tp.1, error = %e, "offset commit failed (the landing zone stays authoritative)");
            }
        }
    }
}

/// A shared stop signal for a running sink (and other daemons).
#[derive(Clone, Default)]
pub struct StopSignal(Arc<tokio::sync::Notify>);

impl StopSignal {
    pub fn stop(&self) {
        self.0.notify_waiters();
        self.0.notify_one();
    }

    pub async fn wait(&self) {
        self.0.notified().await
    }

    /// [`wait`](Self::wait) as a future that owns its signal (to hand to a job as its stop).
    pub async fn wait_owned(self) {
        self.wait().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_stay_one_per_record() {
        let mut out = Vec::new();
        append_line(&mut out, Some(br#"{"a":1}"#));
        append_line(&mut out, Some(b"{\n\"b\": 2\n}"));
        append_line(&mut out, None);
        append_line(&mut out, Some(b"not\njson"));
        append_line(&mut out, Some(b""));
        append_line(&mut out, Some(b"  \t"));
        append_line(&mut out, Some(&[0xff, b'\n']));
        append_line(&mut out, Some(br#"[1.0000000000000001, 123456789012345678901]"#));
        let text = String::from_utf8(out.clone()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[..3], [r#"{"a":1}"#, "{ \"b\": 2 }", "null"]);
        assert_eq!(lines[7], "[1.0000000000000001, 123456789012345678901]");
        assert_eq!(count_lines(&out), 8);
        for (line, value) in lines[3..7].iter().zip([&b"not\njson"[..], b"", b"  \t", &[0xff, b'\n']]) {
            assert_eq!(landing::parse_undecodable_line(line.as_bytes()).as_deref(), Some(value), "{line}");
        }
        assert_eq!(count_lines(b"a\nb"), 2);
        assert_eq!(count_lines(b""), 0);
    }
}
