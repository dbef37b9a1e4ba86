//! The landing zone: an object store (local directory or S3) laid out exactly as the Confluent S3
//! sink connector lays it out (`DefaultPartitioner`, `JsonFormat`):
//! `topics/<topic>/partition=<p>/<topic>+<p>+<start offset, 10 digits>.json`, one JSON value per line.

use std::sync::Arc;

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};

use crate::config::AwsConfig;
use crate::error::{Error, Result};

/// An opened object store with a key prefix: used for the landing zone and (later) the lake.
#[derive(Clone)]
pub struct Store {
    store: Arc<dyn ObjectStore>,
    prefix: ObjectPath,
    url: String,
}

/// What a create-only put found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PutOutcome {
    Created,
    AlreadyExists,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("url", &self.url).finish()
    }
}

impl Store {
    /// Opens `s3://bucket/prefix` (credentials and endpoint from the standard AWS environment and
    /// credential chain, `AWS_ENDPOINT_URL` and `~/.aws` profiles included) or a local directory,
    /// created if missing.
    pub async fn open(url: &str) -> Result<Self> {
        Self::open_with(url, &AwsConfig::default()).await
    }

    /// Opens a store with explicit AWS settings; unset ones come from the standard environment.
    pub async fn open_with(url: &str, aws: &AwsConfig) -> Result<Self> {
        if url.starts_with("s3://") {
            let (store, prefix) = object_store_of(url, aws).await?;
            Ok(Store { store, prefix, url: url.to_string() })
        } else {
            let path = url.strip_prefix("file://").unwrap_or(url);
            std::fs::create_dir_all(path).map_err(Error::io(format!("create directory {path}")))?;
            let store = LocalFileSystem::new_with_prefix(path).map_err(Error::store(format!("open {path}")))?;
            Ok(Store { store: Arc::new(store), prefix: ObjectPath::default(), url: url.to_string() })
        }
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    fn full(&self, key: &str) -> ObjectPath {
        if self.prefix.as_ref().is_empty() {
            ObjectPath::from(key)
        } else {
            ObjectPath::from(format!("{}/{key}", self.prefix))
        }
    }

    /// Writes an object only if no object has that key (S3 `If-None-Match: *`; an exclusive
    /// create on a local disk).
    pub async fn put_new(&self, key: &str, data: Bytes) -> Result<PutOutcome> {
        let options = PutOptions { mode: PutMode::Create, ..Default::default() };
        match self.store.put_opts(&self.full(key), PutPayload::from_bytes(data), options).await {
            Ok(_) => Ok(PutOutcome::Created),
            Err(object_store::Error::AlreadyExists { .. }) | Err(object_store::Error::Precondition { .. }) => {
                Ok(PutOutcome::AlreadyExists)
            }
            Err(e) => Err(Error::ObjectStore { context: format!("put {key}"), source: e }),
        }
    }

    pub async fn get(&self, key: &str) -> Result<Bytes> {
        let result = self.store.get(&self.full(key)).await.map_err(Error::store(format!("get {key}")))?;
        result.bytes().await.map_err(Error::store(format!("read {key}")))
    }

    /// Keys (relative to the store's prefix) under `dir`, sorted.
    pub async fn list(&self, dir: &str) -> Result<Vec<String>> {
        self.list_after(dir, None).await
    }

    /// Keys under `dir` that sort after the key `after` (all of them with `None`), sorted. S3
    /// lists only those (`start-after`); a local directory skips looking at the others' files.
    pub async fn list_after(&self, dir: &str, after: Option<&str>) -> Result<Vec<String>> {
        let base = self.full(dir);
        let strip = if self.prefix.as_ref().is_empty() { 0 } else { self.prefix.as_ref().len() + 1 };
        let listing = match after {
            Some(key) => self.store.list_with_offset(Some(&base), &self.full(key)),
            None => self.store.list(Some(&base)),
        };
        let mut keys: Vec<String> = listing
            .map_ok(|meta| meta.location.as_ref()[strip..].to_string())
            .try_collect()
            .await
            .map_err(Error::store(format!("list {dir}")))?;
        keys.sort();
        Ok(keys)
    }

    /// Names of the folders directly under `dir`, sorted.
    pub async fn folders(&self, dir: &str) -> Result<Vec<String>> {
        let listed =
            self.store.list_with_delimiter(Some(&self.full(dir))).await.map_err(Error::store(format!("list {dir}")))?;
        let mut names: Vec<String> =
            listed.common_prefixes.iter().filter_map(|p| p.filename().map(str::to_string)).collect();
        names.sort();
        Ok(names)
    }
}

/// The S3 object store of `s3://bucket/prefix` (at the bucket's root) and the prefix: endpoint,
/// region and credentials from `aws` and the one AWS credential chain (`crate::aws`).
pub async fn object_store_of(url: &str, aws: &AwsConfig) -> Result<(Arc<dyn ObjectStore>, ObjectPath)> {
    let (bucket, prefix) =
        crate::aws::split_s3_url(url).ok_or_else(|| Error::Config(format!("{url:?} is not an s3:// URL")))?;
    if bucket.is_empty() {
        return Err(Error::Config(format!("no bucket in {url:?}")));
    }
    Ok((crate::aws::s3_store(bucket, aws).await?, ObjectPath::from(prefix)))
}

/// Aborts the S3 multipart uploads under `url` (`s3://bucket/prefix`) that were initiated in
/// `started` and never completed: the parts a failed or killed write leaves behind (a writer that
/// fails at the completion step, or is killed, cannot abort its own upload). Returns how many were
/// aborted; a local `url` has none.
pub async fn abort_incomplete_uploads(
    url: &str,
    aws: &AwsConfig,
    started: impl std::ops::RangeBounds<std::time::SystemTime>,
) -> Result<u64> {
    let Some((bucket, prefix)) = crate::aws::split_s3_url(url) else {
        return Ok(0);
    };
    let client = s3_client(aws).await;
    let what = || format!("list incomplete uploads in {url}");
    let mut aborted = 0;
    let mut key_marker: Option<String> = None;
    let mut id_marker: Option<String> = None;
    loop {
        let page = client
            .list_multipart_uploads()
            .bucket(bucket)
            .prefix(prefix)
            .set_key_marker(key_marker.take())
            .set_upload_id_marker(id_marker.take())
            .send()
            .await
            .map_err(|e| Error::Http(format!("{}: {}", what(), aws_sdk_s3::error::DisplayErrorContext(&e))))?;
        for upload in page.uploads() {
            let initiated = upload.initiated().and_then(|t| std::time::SystemTime::try_from(*t).ok());
            if !initiated.is_some_and(|t| started.contains(&t)) {
                continue;
            }
            let (Some(key), Some(id)) = (upload.key(), upload.upload_id()) else { continue };
            match client.abort_multipart_upload().bucket(bucket).key(key).upload_id(id).send().await {
                Ok(_) => {
                    aborted += 1;
                    tracing::info!(key, "aborted an incomplete multipart upload");
                }
                Err(e) => {
                    tracing::warn!(key, error = %aws_sdk_s3::error::DisplayErrorContext(&e), "cannot abort an incomplete multipart upload")
                }
            }
        }
        if page.is_truncated() != Some(true) {
            return Ok(aborted);
        }
        key_marker = page.next_key_marker().map(str::to_string);
        id_marker = page.next_upload_id_marker().map(str::to_string);
    }
}

/// An S3 client for these settings: aws-config's default chain, with this config's explicit
/// values on top; path-style addressing when an endpoint is set (local S3 servers).
pub(crate) async fn s3_client(aws: &AwsConfig) -> aws_sdk_s3::Client {
    let shared = aws.sdk_config(aws.endpoint()).await;
    let config = aws_sdk_s3::config::Builder::from(&shared).force_path_style(aws.endpoint().is_some()).build();
    aws_sdk_s3::Client::from_conf(config)
}

/// The one key of the line that stands for a record value that is not JSON.
pub const UNDECODABLE_KEY: &str = "_pinpipe_undecodable_value_base64";

/// Writes the landing line of a record value that is not one JSON text (empty, blank, not JSON,
/// or not UTF-8): `{"_pinpipe_undecodable_value_base64": "<the value's bytes, base64>"}`. The
/// value keeps its exact bytes and the landing zone stays one JSON value per line; batch turns
/// the line into a dead letter holding the original bytes.
pub fn undecodable_line(out: &mut Vec<u8>, value: &[u8]) {
    use base64::Engine;
    out.extend_from_slice(b"{\"");
    out.extend_from_slice(UNDECODABLE_KEY.as_bytes());
    out.extend_from_slice(b"\":\"");
    out.extend_from_slice(base64::engine::general_purpose::STANDARD.encode(value).as_bytes());
    out.extend_from_slice(b"\"}");
}

/// The original bytes of a line written by [`undecodable_line`], if it is one.
pub fn parse_undecodable_line(line: &[u8]) -> Option<Vec<u8>> {
    use base64::Engine;
    let line = line.trim_ascii();
    if !line.starts_with(b"{\"_pinpipe_undecodable") {
        return None;
    }
    let map: std::collections::HashMap<String, String> = serde_json::from_slice(line).ok()?;
    if map.len() != 1 {
        return None;
    }
    base64::engine::general_purpose::STANDARD.decode(map.get(UNDECODABLE_KEY)?).ok()
}

/// Folder of one topic partition: `topics/<topic>/partition=<p>`.
pub fn partition_dir(topic: &str, partition: i32) -> String {
    format!("topics/{topic}/partition={partition}")
}

/// Key of the object whose first record has `start_offset`.
pub fn object_key(topic: &str, partition: i32, start_offset: i64) -> String {
    format!("{}/{topic}+{partition}+{start_offset:010}.json", partition_dir(topic, partition))
}

/// The start offset named by an object key of the layout, if it is one.
pub fn start_offset_of(key: &str) -> Option<i64> {
    let name = key.rsplit('/').next()?.strip_suffix(".json")?;
    name.rsplit('+').next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_match_the_connector_layout() {
        assert_eq!(
            object_key("0eaf46a0829f.pin", 0, 42),
            "topics/0eaf46a0829f.pin/partition=0/0eaf46a0829f.pin+0+0000000042.json"
        );
        assert_eq!(start_offset_of(&object_key("a.b", 3, 1234567890)), Some(1234567890));
        assert_eq!(start_offset_of("topics/a/partition=0/readme.txt"), None);
    }

    #[tokio::test]
    async fn create_only_puts_never_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().to_str().unwrap()).await.unwrap();
        let key = object_key("t", 0, 0);
        assert_eq!(store.put_new(&key, Bytes::from_static(b"1\n")).await.unwrap(), PutOutcome::Created);
        assert_eq!(store.put_new(&key, Bytes::from_static(b"2\n")).await.unwrap(), PutOutcome::AlreadyExists);
        assert_eq!(store.get(&key).await.unwrap(), Bytes::from_static(b"1\n"));
        assert_eq!(store.list("topics/t").await.unwrap(), vec![key]);
    }
}
