//! Integration tests of the core against the in-process Kafka (librdkafka's mock cluster).
//! The same behaviour is tested against a real broker by the end-to-end suite in `tests/`.

mod batch;
mod gateway;
mod sink;

use pinpipe::kafka::{EmbeddedKafka, KafkaConnection};
use pinpipe::names::UserId;

/// An embedded cluster with the three topics of a fresh user id.
pub fn cluster(partitions: i32) -> (EmbeddedKafka, KafkaConnection, UserId) {
    let kafka = EmbeddedKafka::start().expect("embedded kafka starts");
    let uid = UserId::new("0123456789ab").unwrap();
    for topic in uid.topics() {
        kafka.create_topic(&topic, partitions).unwrap();
    }
    let connection = kafka.connection();
    (kafka, connection, uid)
}
