//! The lines of a landing zone, read into memory, parsed by sonic-rs and simd-json on every core:
//! the floor `pinpipe decode` is measured against. Prints one JSON object: per parser, the best
//! time of ROUNDS.
//!
//!     parse-floor LANDING [UID] [ROUNDS]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

fn load(landing: &std::path::Path, uid: &str) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for table in ["pin", "geo", "user"] {
        let dir = landing.join(format!("topics/{uid}.{table}/partition=0"));
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for entry in entries.flatten() {
            out.push(std::fs::read(entry.path()).unwrap());
        }
    }
    out
}

/// The non-blank lines of an object, cut where memchr finds line breaks (as pinpipe's decoder
/// cuts them: a byte-by-byte split would make the floors slower than they are).
fn lines(data: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut begin = 0;
    std::iter::from_fn(move || loop {
        if begin > data.len() {
            return None;
        }
        let end = memchr::memchr(b'\n', &data[begin..]).map_or(data.len(), |i| begin + i);
        let line = &data[begin..end];
        begin = end + 1;
        if !line.trim_ascii().is_empty() {
            return Some(line);
        }
    })
}

fn timed(objects: &[Vec<u8>], threads: usize, work: &(dyn Fn(&[u8]) -> usize + Sync)) -> f64 {
    let next = AtomicUsize::new(0);
    let t0 = Instant::now();
    let total: usize = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    let mut sum = 0;
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(o) = objects.get(i) else { break sum };
                        sum += work(o);
                    }
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).sum()
    });
    assert!(total > 0, "nothing parsed");
    t0.elapsed().as_secs_f64()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let landing = std::path::PathBuf::from(args.get(1).expect("usage: parse-floor LANDING [UID] [ROUNDS]"));
    let uid = args.get(2).map(String::as_str).unwrap_or("0eaf46a0829f");
    let rounds: usize = args.get(3).and_then(|r| r.parse().ok()).unwrap_or(3);
    let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
    let objects = load(&landing, uid);
    let sonic = |data: &[u8]| -> usize {
        use sonic_rs::JsonContainerTrait;
        lines(data)
            .map(|l| sonic_rs::from_slice::<sonic_rs::Value>(l).map_or(0, |v| v.as_object().map_or(0, |o| o.len())))
            .sum()
    };
    let simd = |data: &[u8]| -> usize {
        use simd_json::prelude::*;
        // simd-json parses in place: each line is copied into a scratch buffer first.
        let mut scratch = Vec::new();
        lines(data)
            .map(|l| {
                scratch.clear();
                scratch.extend_from_slice(l);
                simd_json::to_borrowed_value(&mut scratch).map_or(0, |v| v.as_object().map_or(0, |o| o.len()))
            })
            .sum()
    };
    let best = |work: &(dyn Fn(&[u8]) -> usize + Sync)| {
        (0..rounds).map(|_| timed(&objects, threads, work)).fold(f64::INFINITY, f64::min)
    };
    let result = format!(
        "{{\"threads\": {threads}, \"sonic_rs_value_secs\": {:.4}, \"simd_json_value_secs\": {:.4}}}",
        best(&sonic),
        best(&simd)
    );
    println!("{result}");
}
