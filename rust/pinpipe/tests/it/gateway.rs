use std::time::Duration;

use pinpipe::gateway::GatewayConfig;
use pinpipe::sink::StopSignal;
use serde_json::{json, Value};

use crate::cluster;

async fn post(client: &reqwest::Client, url: &str, content_type: &str, body: &str) -> (u16, Value) {
    let response = client.post(url).header("Content-Type", content_type).body(body.to_string()).send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn produce_replies_with_offsets_in_request_order_and_documented_errors() {
    let (_kafka, connection, uid) = cluster(2);
    let gateway = GatewayConfig { listen: ([127, 0, 0, 1], 0).into(), user_id: uid.clone(), ..Default::default() }
        .build(&connection)
        .await
        .unwrap();
    let base = format!("http://{}", gateway.local_addr());
    let stop = StopSignal::default();
    let task = {
        let stop = stop.clone();
        tokio::spawn(gateway.serve(async move { stop.wait().await }))
    };
    let client = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap();
    let url = format!("{base}/topics/{}", uid.topic(pinpipe::model::Table::Pin));
    let json_v2 = "application/vnd.kafka.json.v2+json";

    let body = json!({"records": [
        {"value": {"index": 1}, "partition": 1},
        {"value": {"index": 2}, "partition": 1},
        {"value": {"index": 3}, "partition": 0}
    ]});
    let (status, reply) = post(&client, &url, json_v2, &body.to_string()).await;
    assert_eq!(status, 200, "{reply}");
    let offsets = reply["offsets"].as_array().unwrap();
    assert_eq!(offsets.len(), 3);
    assert_eq!((offsets[0]["partition"].as_i64(), offsets[0]["offset"].as_i64()), (Some(1), Some(0)));
    assert_eq!((offsets[1]["partition"].as_i64(), offsets[1]["offset"].as_i64()), (Some(1), Some(1)));
    assert_eq!((offsets[2]["partition"].as_i64(), offsets[2]["offset"].as_i64()), (Some(0), Some(0)));
    assert_eq!(reply["value_schema_id"], Value::Null);

    let (status, reply) =
        post(&client, &url, "application/vnd.kafka.binary.v2+json", r#"{"records":[{"value":"aGk="}]}"#).await;
    assert_eq!(status, 200, "{reply}");

    let cases: Vec<(String, &str, &str, u16, u64)> = vec![
        (url.clone(), json_v2, "{oops", 400, 400),
        (url.clone(), "text/plain", r#"{"records":[{"value":1}]}"#, 415, 415),
        (url.clone(), json_v2, r#"{"records":[]}"#, 422, 42206),
        (url.clone(), json_v2, r#"{"records":[{"value":1,"partition":7}]}"#, 404, 40402),
        (format!("{base}/topics/other.topic"), json_v2, r#"{"records":[{"value":1}]}"#, 403, 40301),
        (format!("{base}/topics/a%2F..%2Fb"), json_v2, r#"{"records":[{"value":1}]}"#, 404, 40401),
    ];
    for (target, content_type, body, want_status, want_code) in cases {
        let (status, reply) = post(&client, &target, content_type, body).await;
        assert_eq!((status, reply["error_code"].as_u64()), (want_status, Some(want_code)), "{target} {body}: {reply}");
        assert!(reply["message"].as_str().is_some_and(|m| !m.is_empty()));
    }

    let big = format!(r#"{{"records":[{{"value":"{}"}}]}}"#, "x".repeat(pinpipe::gateway::DEFAULT_MAX_BODY_BYTES));
    let (status, reply) = post(&client, &url, json_v2, &big).await;
    assert_eq!((status, reply["error_code"].as_u64()), (413, Some(413)));

    let topics: Value = client.get(format!("{base}/topics")).send().await.unwrap().json().await.unwrap();
    let mut want = uid.topics();
    want.sort();
    assert_eq!(topics, json!(want));

    let metrics = client.get(format!("{base}/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("pinpipe_gateway_records_total{outcome=\"acknowledged\"} 4"), "{metrics}");

    stop.stop();
    let summary = task.await.unwrap().unwrap();
    assert_eq!(summary.records_acknowledged, 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_key_is_enforced() {
    let (_kafka, connection, uid) = cluster(1);
    let gateway = GatewayConfig {
        listen: ([127, 0, 0, 1], 0).into(),
        user_id: uid.clone(),
        api_key: Some("k-123".into()),
        ..Default::default()
    }
    .build(&connection)
    .await
    .unwrap();
    let base = format!("http://{}", gateway.local_addr());
    let stop = StopSignal::default();
    let task = {
        let stop = stop.clone();
        tokio::spawn(gateway.serve(async move { stop.wait().await }))
    };
    let client = reqwest::Client::new();
    let url = format!("{base}/topics/{}", uid.topic(pinpipe::model::Table::Geo));
    for key in [None, Some("wrong")] {
        let mut request =
            client.post(&url).header("Content-Type", "application/json").body(r#"{"records":[{"value":1}]}"#);
        if let Some(k) = key {
            request = request.header("x-api-key", k);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status().as_u16(), 403);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error_code"], 40301);
    }
    let response = client
        .post(&url)
        .header("Content-Type", "application/json")
        .header("x-api-key", "k-123")
        .body(r#"{"records":[{"value":1}]}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    stop.stop();
    task.await.unwrap().unwrap();
}
