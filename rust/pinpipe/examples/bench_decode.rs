//! Decode against the parse floor: the lines of a landing zone (read into memory first) parsed by
//! the fastest bare JSON parsers available, multi-threaded, and decoded by pinpipe's decoder into
//! raw Arrow batches, on the same threads. Prints each time and its ratio to the fastest floor.
//!
//!     cargo run --release -p pinpipe --example bench_decode -- LANDING [UID] [ROUNDS] [ONLY]
//!
//! ONLY (a word of a contender's name, `pinpipe`) runs that contender alone, for a profiler.
//!
//! The SIMD parsers (sonic-rs, simd-json) are measured by `scripts/bench/parse-floor`, a separate
//! crate, so their dependencies do not change this workspace's build.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use pinpipe::clean::decode::decode_object;
use pinpipe::model::Table;

/// One landing object: its table, partition, start offset and bytes.
struct Object {
    table: Table,
    start: i64,
    data: Vec<u8>,
}

fn load(landing: &std::path::Path, uid: &str) -> Vec<Object> {
    let mut out = Vec::new();
    for table in Table::ALL {
        let dir = landing.join(format!("topics/{uid}.{}/partition=0", table.suffix()));
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().to_string();
            let Some(start) = pinpipe::landing::start_offset_of(&name) else { continue };
            out.push(Object { table, start, data: std::fs::read(entry.path()).unwrap() });
        }
    }
    out
}

/// Runs `work` over every object on `threads` threads; returns the seconds and the sum of what
/// `work` returned (so nothing is optimised away).
fn timed(objects: &[Object], threads: usize, work: impl Fn(&Object) -> usize + Sync) -> (f64, usize) {
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
    (t0.elapsed().as_secs_f64(), total)
}

/// The table's columns, every one as text (the bare parse does not type values).
fn text_schema(table: Table) -> deltalake::arrow::datatypes::SchemaRef {
    use deltalake::arrow::datatypes::{DataType, Field, Schema};
    let fields: Vec<Field> =
        pinpipe::clean::raw::raw_columns(table).iter().map(|c| Field::new(c.name, DataType::Utf8, true)).collect();
    std::sync::Arc::new(Schema::new(fields))
}

/// The non-blank lines of an object, cut where memchr finds line breaks (as the decoder cuts
/// them: a byte-by-byte split would make the floors slower than they are).
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

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let landing = std::path::PathBuf::from(args.get(1).expect("usage: bench_decode LANDING [UID] [ROUNDS]"));
    let uid = args.get(2).map(String::as_str).unwrap_or("0eaf46a0829f");
    let rounds: usize = args.get(3).and_then(|r| r.parse().ok()).unwrap_or(3);
    let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
    let objects = load(&landing, uid);
    let bytes: usize = objects.iter().map(|o| o.data.len()).sum();
    let records: usize = objects.iter().map(|o| lines(&o.data).count()).sum();
    println!(
        "{} objects, {records} lines, {:.1} MiB, {threads} threads, best of {rounds} rounds",
        objects.len(),
        bytes as f64 / 1048576.0
    );

    type Work<'a> = Box<dyn Fn(&Object) -> usize + Sync + 'a>;
    let mut contenders: Vec<(&str, Work)> = Vec::new();
    contenders.push((
        "arrow-json tape decoder (bare parse into Arrow)",
        Box::new(|o: &Object| {
            let mut decoder = deltalake::arrow::json::ReaderBuilder::new(text_schema(o.table))
                .with_coerce_primitive(true)
                .with_batch_size(1 << 20)
                .build_decoder()
                .expect("decoder");
            let mut rest: &[u8] = &o.data;
            while !rest.is_empty() {
                let n = decoder.decode(rest).expect("landed JSON");
                if n == 0 {
                    break;
                }
                rest = &rest[n..];
            }
            decoder.flush().ok().flatten().map_or(0, |b| b.num_rows())
        }),
    ));
    contenders.push((
        "serde_json IgnoredAny (validate only)",
        Box::new(|o: &Object| {
            lines(&o.data).map(|l| usize::from(serde_json::from_slice::<serde::de::IgnoredAny>(l).is_ok())).sum()
        }),
    ));
    let mut floors = contenders.len();
    contenders.push((
        "pinpipe decode (parse, coerce, Arrow, null counts)",
        Box::new(|o: &Object| decode_object(o.table, &o.data, 0, o.start).batch.num_rows()),
    ));
    if let Some(only) = args.get(4) {
        contenders.retain(|(name, _)| name.contains(only.as_str()));
        floors = contenders.len();
    }
    let mut results = Vec::new();
    for (name, work) in &contenders {
        let best = (0..rounds).map(|_| timed(&objects, threads, work).0).fold(f64::INFINITY, f64::min);
        results.push((*name, best));
    }
    let floor = results[..floors].iter().map(|(_, s)| *s).fold(f64::INFINITY, f64::min);
    println!("{:<46}{:>9}{:>14}{:>10}", "", "secs", "lines/s", "x floor");
    for (name, secs) in &results {
        println!("{name:<46}{secs:>9.3}{:>14.0}{:>10.2}", records as f64 / secs, secs / floor);
    }
}
