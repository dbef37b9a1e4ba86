//! Baselines for `scripts/bench.sh`: a direct rdkafka producer (the ceiling of the gateway) and a
//! bare consumer (the ceiling of the sink), with the same client settings the pipeline uses.
//!
//! `bench_kafka produce <bootstrap> <topic> <records> <value bytes>` prints records/s.
//! `bench_kafka consume <bootstrap> <topic>` reads the topic from the start to its end offsets and
//! prints records/s.

use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("produce") => produce(&args[2], &args[3], args[4].parse().unwrap(), args[5].parse().unwrap()).await,
        Some("consume") => consume(&args[2], &args[3]).await,
        _ => {
            eprintln!("usage: bench_kafka produce BOOTSTRAP TOPIC RECORDS BYTES | consume BOOTSTRAP TOPIC");
            std::process::exit(2);
        }
    }
}

async fn produce(bootstrap: &str, topic: &str, records: usize, bytes: usize) {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "2")
        .set("queue.buffering.max.messages", "1000000")
        .create()
        .expect("producer");
    let value = format!("{{\"index\":1,\"pad\":\"{}\"}}", "x".repeat(bytes.saturating_sub(22)));
    let started = Instant::now();
    let mut pending = Vec::with_capacity(records);
    for _ in 0..records {
        loop {
            match producer.send_result(FutureRecord::<(), _>::to(topic).payload(value.as_bytes())) {
                Ok(f) => {
                    pending.push(f);
                    break;
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(1)).await,
            }
        }
    }
    let mut failed = 0;
    for f in pending {
        if !matches!(f.await, Ok(Ok(_))) {
            failed += 1;
        }
    }
    producer.flush(Duration::from_secs(30)).ok();
    let secs = started.elapsed().as_secs_f64();
    println!(
        "{{\"records\": {records}, \"failed\": {failed}, \"secs\": {secs:.3}, \"records_per_sec\": {:.0}}}",
        records as f64 / secs
    );
}

async fn consume(bootstrap: &str, topic: &str) {
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", format!("bench-bare-{}", std::process::id()))
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let metadata = consumer.fetch_metadata(Some(topic), Duration::from_secs(10)).expect("metadata");
    let partitions: Vec<i32> = metadata.topics()[0].partitions().iter().map(|p| p.id()).collect();
    let mut tpl = TopicPartitionList::new();
    let mut total = 0i64;
    for p in &partitions {
        let (low, high) = consumer.fetch_watermarks(topic, *p, Duration::from_secs(10)).expect("watermarks");
        total += high - low;
        tpl.add_partition_offset(topic, *p, Offset::Beginning).unwrap();
    }
    let started = Instant::now();
    consumer.assign(&tpl).expect("assign");
    let mut seen = 0i64;
    let mut bytes = 0usize;
    while seen < total {
        let m = consumer.recv().await.expect("message");
        bytes += m.payload().map(|p| p.len()).unwrap_or(0);
        seen += 1;
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "{{\"records\": {seen}, \"bytes\": {bytes}, \"secs\": {secs:.3}, \"records_per_sec\": {:.0}}}",
        seen as f64 / secs
    );
}
