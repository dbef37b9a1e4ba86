use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use pinpipe::landing::{object_key, start_offset_of, Store};
use pinpipe::sink::{run_sink, SinkConfig};
use rdkafka::producer::{FutureProducer, FutureRecord};

use crate::cluster;

async fn produce(connection: &pinpipe::kafka::KafkaConnection, topic: &str, values: impl Iterator<Item = String>) {
    let producer: FutureProducer = connection.client_config().create().unwrap();
    for v in values {
        producer.send(FutureRecord::<(), _>::to(topic).payload(&v), Duration::from_secs(10)).await.unwrap();
    }
}

/// All lines of a partition, checking that its objects chain without gap or overlap.
async fn partition_lines(store: &Store, topic: &str, partition: i32) -> Vec<String> {
    let keys = store.list(&format!("topics/{topic}/partition={partition}")).await.unwrap();
    let mut by_start = BTreeMap::new();
    for k in keys {
        by_start.insert(start_offset_of(&k).unwrap(), k);
    }
    let mut lines = Vec::new();
    for (start, key) in by_start {
        assert_eq!(start as usize, lines.len(), "object {key} does not start where the previous one ended");
        let data = store.get(&key).await.unwrap();
        lines.extend(String::from_utf8(data.to_vec()).unwrap().lines().map(str::to_string));
    }
    lines
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sink_lands_every_record_once_even_over_objects_of_an_earlier_run() {
    let (_kafka, connection, uid) = cluster(1);
    let topic = uid.topic(pinpipe::model::Table::Pin);
    let values: Vec<String> = (0..100).map(|i| format!(r#"{{"index":{i}}}"#)).collect();
    produce(&connection, &topic, values.iter().cloned()).await;

    // An earlier run, killed before committing offsets, left objects with other boundaries.
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().to_str().unwrap()).await.unwrap();
    let lines = |r: std::ops::Range<usize>| Bytes::from(values[r].iter().map(|v| format!("{v}\n")).collect::<String>());
    store.put_new(&object_key(&topic, 0, 0), lines(0..7)).await.unwrap();
    store.put_new(&object_key(&topic, 0, 7), lines(7..40)).await.unwrap();

    let config = SinkConfig {
        user_id: uid.clone(),
        landing: dir.path().to_str().unwrap().to_string(),
        flush_size: 10,
        until_caught_up: true,
        ..Default::default()
    };
    let summary = run_sink(config.clone(), &connection, std::future::pending()).await.unwrap();
    // Reading resumes at the last landed object (offset 7): its 33 records are recognised, not rewritten.
    assert_eq!(summary.records_already_landed, 33);
    assert_eq!(summary.records_landed, 60);
    assert_eq!(partition_lines(&store, &topic, 0).await, values);

    // A rerun finds nothing new and writes nothing.
    let summary = run_sink(config, &connection, std::future::pending()).await.unwrap();
    assert_eq!(summary.records_landed, 0);
    assert_eq!(partition_lines(&store, &topic, 0).await, values);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sink_with_a_fresh_group_resumes_at_the_last_landed_object() {
    let (_kafka, connection, uid) = cluster(1);
    let topic = uid.topic(pinpipe::model::Table::User);
    let values: Vec<String> = (0..50).map(|i| format!(r#"{{"ind":{i}}}"#)).collect();
    produce(&connection, &topic, values.iter().cloned()).await;
    let dir = tempfile::tempdir().unwrap();
    let base = SinkConfig {
        user_id: uid.clone(),
        landing: dir.path().to_str().unwrap().to_string(),
        flush_size: 1,
        until_caught_up: true,
        ..Default::default()
    };
    let first =
        run_sink(SinkConfig { group_id: Some("g1".into()), ..base.clone() }, &connection, std::future::pending())
            .await
            .unwrap();
    assert_eq!((first.records_landed, first.objects_created), (50, 50));
    // Another group has no committed offsets: it resumes at the last landed object, recognises
    // it, and adds nothing.
    let second = run_sink(
        SinkConfig { group_id: Some("g2".into()), flush_size: 7, ..base },
        &connection,
        std::future::pending(),
    )
    .await
    .unwrap();
    assert_eq!(second.records_landed, 0);
    assert_eq!(second.records_already_landed, 1);
    let store = Store::open(dir.path().to_str().unwrap()).await.unwrap();
    assert_eq!(partition_lines(&store, &topic, 0).await, values);
}
