//! One shard's reader: GetRecords in a loop, pages handed to the stream job over a channel.

use std::time::Duration;

use tokio::sync::mpsc;

use crate::error::Error;
use crate::kinesis::{Fault, Kinesis, ShardRecord, StartAt};

/// What a shard reader reports.
#[derive(Debug)]
pub enum Event {
    /// A page of records (possibly empty); `caught_up`: the reader is at the shard's tip.
    Records { key: String, generation: u64, records: Vec<ShardRecord>, caught_up: bool },
    /// The shard is closed and every record of it has been handed over.
    End { key: String, generation: u64 },
    /// The reader gave up.
    Failed { key: String, generation: u64, error: Error },
}

/// How a reader paces and retries.
#[derive(Debug, Clone)]
pub struct Pacing {
    /// Pause between GetRecords calls at the shard's tip (Kinesis allows 5 per shard per second).
    pub poll_interval: Duration,
    /// Records per GetRecords call (at most 10,000).
    pub limit: i32,
    /// How long transient failures are retried before the reader gives up (`None`: forever).
    pub give_up_after: Option<Duration>,
}

/// Reads shard `shard_id` of `stream` from `start` until it ends or the task is aborted.
pub async fn read_shard(
    kinesis: Kinesis,
    stream: String,
    shard_id: String,
    start: StartAt,
    generation: u64,
    pacing: Pacing,
    tx: mpsc::Sender<Event>,
) {
    let key = format!("{stream}/{shard_id}");
    let mut last: Option<String> = None;
    let mut backoff = Backoff::new(pacing.give_up_after);
    let mut iterator: Option<String> = None;
    loop {
        let it = match iterator.take() {
            Some(it) => it,
            None => {
                let from = match &last {
                    Some(seq) => StartAt::AfterSequence(seq.clone()),
                    None => start.clone(),
                };
                match kinesis.shard_iterator(&stream, &shard_id, &from).await {
                    Ok(it) => it,
                    Err(e) => match backoff.wait(&key, e).await {
                        Ok(()) => continue,
                        Err(error) => {
                            let _ = tx.send(Event::Failed { key, generation, error }).await;
                            return;
                        }
                    },
                }
            }
        };
        match kinesis.get_records(&it, Some(pacing.limit)).await {
            Ok(page) => {
                backoff.reset();
                let empty = page.records.is_empty();
                if let Some(r) = page.records.last() {
                    last = Some(r.sequence_number.clone());
                }
                // At the tip: an empty page that is not behind. (A full page with MillisBehindLatest
                // 0 is not enough: emulators compute it from arrival times, and a burst of puts
                // arrives "at once".)
                let caught_up = empty && page.millis_behind_latest.is_none_or(|ms| ms == 0);
                let partial = page.records.len() < pacing.limit.max(1) as usize;
                let done = page.next_iterator.is_none();
                if !empty || caught_up || done {
                    let event = Event::Records { key: key.clone(), generation, records: page.records, caught_up };
                    if tx.send(event).await.is_err() {
                        return;
                    }
                }
                match page.next_iterator {
                    None => {
                        let _ = tx.send(Event::End { key, generation }).await;
                        return;
                    }
                    Some(next) => iterator = Some(next),
                }
                // Pause at the tip (Kinesis allows 5 calls per shard per second); a full page means
                // more is waiting.
                if empty || (partial && page.millis_behind_latest.is_none_or(|ms| ms == 0)) {
                    tokio::time::sleep(pacing.poll_interval).await;
                }
            }
            Err(Error::Kinesis { fault: Fault::ExpiredIterator, .. }) => {
                tracing::debug!(shard = %key, "shard iterator expired; getting a new one");
            }
            Err(e) => {
                if let Err(error) = backoff.wait(&key, e).await {
                    let _ = tx.send(Event::Failed { key, generation, error }).await;
                    return;
                }
                // The iterator may have expired meanwhile; start again from the last record seen.
            }
        }
    }
}

/// Exponential backoff over transient failures, up to a deadline.
struct Backoff {
    delay: Duration,
    since: Option<tokio::time::Instant>,
    give_up_after: Option<Duration>,
    warned: bool,
}

impl Backoff {
    fn new(give_up_after: Option<Duration>) -> Self {
        Backoff { delay: Duration::from_millis(100), since: None, give_up_after, warned: false }
    }

    fn reset(&mut self) {
        if self.warned {
            tracing::info!("Kinesis answers again");
        }
        *self = Backoff::new(self.give_up_after);
    }

    /// Sleeps before the next try after a transient error; returns the error if it is not
    /// transient or has lasted past the deadline.
    async fn wait(&mut self, key: &str, error: Error) -> Result<(), Error> {
        if !error.is_transient() {
            return Err(error);
        }
        let since = *self.since.get_or_insert_with(tokio::time::Instant::now);
        if let Some(limit) = self.give_up_after {
            if since.elapsed() >= limit {
                return Err(Error::Retries {
                    context: format!("read shard {key}"),
                    secs: limit.as_secs_f64(),
                    source: Box::new(error),
                });
            }
        }
        if !self.warned && since.elapsed() >= Duration::from_secs(2) {
            tracing::warn!(shard = key, error = %error, "Kinesis is throttling or unreachable; backing off");
            self.warned = true;
        } else {
            tracing::debug!(shard = key, error = %error, delay = ?self.delay, "backing off");
        }
        tokio::time::sleep(self.delay).await;
        self.delay = (self.delay * 2).min(Duration::from_secs(5));
        Ok(())
    }
}
