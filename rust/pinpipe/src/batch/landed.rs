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

/// The partition folders of a topic's landing folder (`partition=<p>`), with their partitions.
pub async fn partition_folders(store: &Store, topic: &str) -> Result<Vec<(String, i32)>> {
    Ok(store
        .folders(&format!("topics/{topic}"))
        .await?
        .into_iter()
        .filter_map(|folder| {
            let partition = folder.strip_prefix("partition=")?.parse().ok()?;
            Some((folder, partition))
        })
        .collect())
}

/// Where a listing of a topic resumes: its partition folders (from [`partition_folders`]) and,
/// per partition, the start offset of the last object already read.
pub struct Resume<'a> {
    pub folders: &'a [(String, i32)],
    pub after: &'a BTreeMap<i32, i64>,
}

/// The objects of a topic, by partition, sorted by start offset. With `resume`, every partition
/// folder has an entry, empty when it holds nothing to read, and a partition with a position
/// yields only the objects that start after it (the listing skips the others), the rest all of
/// theirs. Keys that do not follow the layout are ignored.
pub async fn list_objects(
    store: &Store,
    topic: &str,
    resume: Option<Resume<'_>>,
) -> Result<BTreeMap<i32, Vec<Object>>> {
    let mut out: BTreeMap<i32, Vec<Object>> = BTreeMap::new();
    let dir = format!("topics/{topic}");
    let mut keys = Vec::new();
    let after = resume.as_ref().map(|r| r.after);
    match &resume {
        None => keys = store.list(&dir).await?,
        Some(resume) => {
            for &(ref folder, partition) in resume.folders {
                out.insert(partition, Vec::new());
                let from = resume
                    .after
                    .get(&partition)
                    .filter(|start| (0..MAX_PADDED).contains(*start))
                    .map(|start| crate::landing::object_key(topic, partition, *start));
                keys.extend(store.list_after(&format!("{dir}/{folder}"), from.as_deref()).await?);
            }
        }
    }
    for key in keys {
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
        if after.and_then(|a| a.get(&partition)).is_some_and(|done| start <= *done) {
            continue;
        }
        out.entry(partition).or_default().push(Object { key, partition, start });
    }
    for objects in out.values_mut() {
        objects.sort_by_key(|o| o.start);
    }
    Ok(out)
}

/// Start offsets below this are written with the layout's 10 digits, so their keys sort as the
/// offsets do; a listing from a larger one lists the whole partition.
const MAX_PADDED: i64 = 10_000_000_000;

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

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::landing::object_key;

    fn starts(listed: &BTreeMap<i32, Vec<Object>>) -> Vec<(i32, Vec<i64>)> {
        listed.iter().map(|(p, objects)| (*p, objects.iter().map(|o| o.start).collect())).collect()
    }

    #[tokio::test]
    async fn a_listing_after_positions_yields_only_later_objects_of_those_partitions() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().to_str().unwrap()).await.unwrap();
        for (partition, start) in [(0, 0), (0, 5), (0, 9), (0, 12_345), (1, 0), (1, 3), (2, 7)] {
            store.put_new(&object_key("t", partition, start), Bytes::from_static(b"{}\n")).await.unwrap();
        }
        // Not of the layout, or of another topic's name: never listed.
        store.put_new("topics/t/partition=0/readme.txt", Bytes::from_static(b"x")).await.unwrap();
        store.put_new("topics/t/partition=0/u+0+0000000099.json", Bytes::from_static(b"{}\n")).await.unwrap();

        let all = list_objects(&store, "t", None).await.unwrap();
        assert_eq!(starts(&all), vec![(0, vec![0, 5, 9, 12_345]), (1, vec![0, 3]), (2, vec![7])]);

        // Partition 0 read up to the object at 5, partition 1 up to its last; 2 not yet read.
        let folders = partition_folders(&store, "t").await.unwrap();
        assert_eq!(folders.iter().map(|(_, p)| *p).collect::<Vec<_>>(), vec![0, 1, 2]);
        let after = BTreeMap::from([(0, 5), (1, 3)]);
        let listed = list_objects(&store, "t", Some(Resume { folders: &folders, after: &after })).await.unwrap();
        assert_eq!(starts(&listed), vec![(0, vec![9, 12_345]), (1, vec![]), (2, vec![7])]);
        assert_eq!(listed[&0][0].key, object_key("t", 0, 9));

        // A position between objects, or past the layout's ten digits, still lists exactly the
        // objects that start after it.
        let after = BTreeMap::from([(0, 10), (2, 20_000_000_000)]);
        let listed = list_objects(&store, "t", Some(Resume { folders: &folders, after: &after })).await.unwrap();
        assert_eq!(starts(&listed), vec![(0, vec![12_345]), (1, vec![0, 3]), (2, vec![])]);
    }
}
