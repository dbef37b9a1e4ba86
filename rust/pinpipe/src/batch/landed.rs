//! Reading the landing zone: which objects a topic has, and decoding them in parallel.

use std::collections::BTreeMap;

use futures::StreamExt;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::clean::decode::{decode_object, Decoded};
use crate::error::{Error, Result};
use crate::landing::{start_offset_of, Store};
use crate::model::Table;

/// A landing object: its key, partition and the offset of its first record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Object {
    pub key: String,
    pub partition: i32,
    pub start: i64,
}

/// The objects of a topic, by partition, sorted by start offset. Keys that do not follow the
/// layout are ignored.
pub async fn list_objects(store: &Store, topic: &str) -> Result<BTreeMap<i32, Vec<Object>>> {
    let mut out: BTreeMap<i32, Vec<Object>> = BTreeMap::new();
    for key in store.list(&format!("topics/{topic}")).await? {
        let Some(start) = start_offset_of(&key) else { continue };
        let Some(partition) =
            key.split('/').find_map(|part| part.strip_prefix("partition=")).and_then(|p| p.parse::<i32>().ok())
        else {
            continue;
        };
        let name = key.rsplit('/').next().unwrap_or("");
        if !name.starts_with(&format!("{topic}+{partition}+")) {
            continue;
        }
        out.entry(partition).or_default().push(Object { key, partition, start });
    }
    for objects in out.values_mut() {
        objects.sort_by_key(|o| o.start);
    }
    Ok(out)
}

/// Reads and decodes objects, `concurrency` at a time, yielding them in the order given.
pub fn decode_stream<'a>(
    store: &'a Store,
    table: Table,
    objects: Vec<Object>,
    concurrency: usize,
    progress: bool,
) -> impl futures::Stream<Item = Result<(Object, Decoded)>> + 'a {
    let bar = if progress && !objects.is_empty() {
        let bar = ProgressBar::new(objects.len() as u64);
        bar.set_draw_target(ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template(&format!(
                "{{spinner}} reading {table} objects {{pos}}/{{len}} [{{elapsed_precise}}] {{wide_bar}}"
            ))
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar
    } else {
        ProgressBar::hidden()
    };
    let total = objects.len() as u64;
    futures::stream::iter(objects)
        .map(move |object| {
            let bar = bar.clone();
            async move {
                let data = store.get(&object.key).await?;
                let (partition, start) = (object.partition, object.start);
                let decoded = tokio::task::spawn_blocking(move || decode_object(table, &data, partition, start))
                    .await
                    .map_err(|e| Error::Io { context: "decode task".into(), source: std::io::Error::other(e) })?;
                bar.inc(1);
                if bar.position() == total {
                    bar.finish_and_clear();
                }
                Ok::<_, Error>((object, decoded))
            }
        })
        .buffered(concurrency)
}
