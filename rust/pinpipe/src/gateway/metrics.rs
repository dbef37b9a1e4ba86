//! Prometheus counters of the gateway, rendered in the text exposition format.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds (seconds) of the request-duration histogram buckets.
const BUCKETS: [f64; 12] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0];

/// HTTP statuses counted separately; others fall in "other".
const STATUSES: [u16; 11] = [200, 400, 403, 404, 406, 413, 415, 422, 500, 503, 0];

#[derive(Default)]
pub struct Metrics {
    requests: [AtomicU64; STATUSES.len()],
    records_produced: AtomicU64,
    records_failed: AtomicU64,
    bytes_in: AtomicU64,
    duration_buckets: [AtomicU64; BUCKETS.len()],
    duration_count: AtomicU64,
    duration_sum_micros: AtomicU64,
}

impl Metrics {
    pub fn record_request(&self, status: u16, elapsed: Duration, body_bytes: usize) {
        let slot = STATUSES.iter().position(|s| *s == status).unwrap_or(STATUSES.len() - 1);
        self.requests[slot].fetch_add(1, Ordering::Relaxed);
        self.bytes_in.fetch_add(body_bytes as u64, Ordering::Relaxed);
        let secs = elapsed.as_secs_f64();
        for (i, bound) in BUCKETS.iter().enumerate() {
            if secs <= *bound {
                self.duration_buckets[i].fetch_add(1, Ordering::Relaxed);
            }
        }
        self.duration_count.fetch_add(1, Ordering::Relaxed);
        self.duration_sum_micros.fetch_add(elapsed.as_micros() as u64, Ordering::Relaxed);
    }

    pub fn record_produced(&self, ok: u64, failed: u64) {
        self.records_produced.fetch_add(ok, Ordering::Relaxed);
        self.records_failed.fetch_add(failed, Ordering::Relaxed);
    }

    pub fn records_produced(&self) -> u64 {
        self.records_produced.load(Ordering::Relaxed)
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        out.push_str("# HELP pinpipe_gateway_requests_total Produce requests by HTTP status.\n");
        out.push_str("# TYPE pinpipe_gateway_requests_total counter\n");
        for (i, status) in STATUSES.iter().enumerate() {
            let label = if *status == 0 { "other".to_string() } else { status.to_string() };
            let _ = writeln!(out, "pinpipe_gateway_requests_total{{status=\"{label}\"}} {}", load(&self.requests[i]));
        }
        out.push_str("# HELP pinpipe_gateway_records_total Records by outcome.\n");
        out.push_str("# TYPE pinpipe_gateway_records_total counter\n");
        let _ =
            writeln!(out, "pinpipe_gateway_records_total{{outcome=\"acknowledged\"}} {}", load(&self.records_produced));
        let _ = writeln!(out, "pinpipe_gateway_records_total{{outcome=\"failed\"}} {}", load(&self.records_failed));
        out.push_str("# HELP pinpipe_gateway_request_bytes_total Bytes of produce request bodies.\n");
        out.push_str("# TYPE pinpipe_gateway_request_bytes_total counter\n");
        let _ = writeln!(out, "pinpipe_gateway_request_bytes_total {}", load(&self.bytes_in));
        out.push_str("# HELP pinpipe_gateway_request_duration_seconds Produce request latency.\n");
        out.push_str("# TYPE pinpipe_gateway_request_duration_seconds histogram\n");
        for (i, bound) in BUCKETS.iter().enumerate() {
            let _ = writeln!(
                out,
                "pinpipe_gateway_request_duration_seconds_bucket{{le=\"{bound}\"}} {}",
                load(&self.duration_buckets[i])
            );
        }
        let count = load(&self.duration_count);
        let _ = writeln!(out, "pinpipe_gateway_request_duration_seconds_bucket{{le=\"+Inf\"}} {count}");
        let _ = writeln!(
            out,
            "pinpipe_gateway_request_duration_seconds_sum {}",
            load(&self.duration_sum_micros) as f64 / 1e6
        );
        let _ = writeln!(out, "pinpipe_gateway_request_duration_seconds_count {count}");
        out
    }
}
