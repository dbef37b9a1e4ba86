//! Shard leases: which `pinpipe stream` process reads which shard.
//!
//! A lease is a small JSON object per shard under `<lake>/stream/_leases/<stream>/<shard>.json`,
//! `{"owner", "counter", "renewed_at"}`, changed only by compare-and-swap: on S3 a conditional put
//! (`If-None-Match: *` to create, `If-Match: <etag>` to renew or take over), on a local lake an
//! exclusive file lock around read-compare-write. The holder renews every third of
//! `lease_duration` (the counter goes up, so the object changes); another process takes a lease
//! over when it has seen the object unchanged for `lease_duration` (its own clock, as KCL does:
//! no clock agreement is needed). Leases decide who works on a shard; they are not what keeps the
//! tables exact: every commit checks its shards' positions in the table itself.

use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload, UpdateVersion};
use serde::{Deserialize, Serialize};

use crate::config::AwsConfig;
use crate::error::{Error, Result};

/// One lease object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    /// The worker holding it; empty when released.
    pub owner: String,
    /// Bumped by every write, so a renewal always changes the object.
    pub counter: u64,
    /// When it was last written (informational: expiry is judged by observation, not clocks).
    pub renewed_at: String,
}

impl Lease {
    pub fn new(owner: &str, counter: u64) -> Self {
        Lease { owner: owner.to_string(), counter, renewed_at: chrono::Utc::now().to_rfc3339() }
    }
}

/// The version of a lease object a compare-and-swap is conditioned on.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Tag(String);

/// Where leases live.
#[derive(Clone)]
pub enum LeaseStore {
    /// S3 (or another store with conditional puts).
    Object { store: Arc<dyn ObjectStore>, prefix: ObjectPath, url: String },
    /// A local directory.
    Local { dir: PathBuf },
}

impl std::fmt::Debug for LeaseStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LeaseStore::Object { url, .. } => write!(f, "LeaseStore({url})"),
            LeaseStore::Local { dir } => write!(f, "LeaseStore({})", dir.display()),
        }
    }
}

impl LeaseStore {
    /// The lease store of a lake (`s3://...` or a local directory).
    pub async fn for_lake(lake: &str, aws: &AwsConfig) -> Result<Self> {
        let root = lake.trim_end_matches('/');
        if root.starts_with("s3://") || root.starts_with("s3a://") {
            let url = format!("{}/stream/_leases", root.replacen("s3a://", "s3://", 1));
            let (store, prefix) = crate::landing::object_store_of(&url, aws).await?;
            Ok(LeaseStore::Object { store, prefix, url })
        } else {
            let path = root.strip_prefix("file://").unwrap_or(root);
            let dir = PathBuf::from(path).join("stream").join("_leases");
            std::fs::create_dir_all(&dir).map_err(Error::io(format!("create directory {}", dir.display())))?;
            Ok(LeaseStore::Local { dir })
        }
    }

    fn object_path(prefix: &ObjectPath, key: &str) -> ObjectPath {
        ObjectPath::from(format!("{prefix}/{key}.json"))
    }

    /// The lease of `key` (`<stream>/<shard>`) and its tag, if it exists.
    pub async fn read(&self, key: &str) -> Result<Option<(Lease, Tag)>> {
        match self {
            LeaseStore::Object { store, prefix, .. } => {
                let path = Self::object_path(prefix, key);
                let got = match store.get(&path).await {
                    Ok(got) => got,
                    Err(object_store::Error::NotFound { .. }) => return Ok(None),
                    Err(e) => return Err(Error::store(format!("read lease {key}"))(e)),
                };
                let tag = got.meta.e_tag.clone().unwrap_or_default();
                let bytes = got.bytes().await.map_err(Error::store(format!("read lease {key}")))?;
                Ok(Some((parse(key, &bytes)?, Tag(tag))))
            }
            LeaseStore::Local { dir } => {
                let file = dir.join(format!("{key}.json"));
                let key = key.to_string();
                blocking(move || match std::fs::read(&file) {
                    Ok(bytes) => Ok(Some((parse(&key, &bytes)?, Tag(String::from_utf8_lossy(&bytes).into_owned())))),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                    Err(e) => Err(Error::io(format!("read lease {}", file.display()))(e)),
                })
                .await
            }
        }
    }

    /// Writes `lease` if the object is still at `expected` (`None`: only if it does not exist).
    /// Returns the new tag, or `None` if another writer changed it first.
    pub async fn swap(&self, key: &str, lease: &Lease, expected: Option<&Tag>) -> Result<Option<Tag>> {
        let body = serde_json::to_vec(lease).expect("a lease serializes");
        match self {
            LeaseStore::Object { store, prefix, .. } => {
                let path = Self::object_path(prefix, key);
                let mode = match expected {
                    None => PutMode::Create,
                    Some(tag) => PutMode::Update(UpdateVersion { e_tag: Some(tag.0.clone()), version: None }),
                };
                let options = PutOptions { mode, ..Default::default() };
                match store.put_opts(&path, PutPayload::from_bytes(Bytes::from(body)), options).await {
                    Ok(done) => Ok(Some(Tag(done.e_tag.unwrap_or_default()))),
                    Err(object_store::Error::AlreadyExists { .. })
                    | Err(object_store::Error::Precondition { .. })
                    | Err(object_store::Error::NotFound { .. }) => Ok(None),
                    Err(e) => Err(Error::store(format!("write lease {key}"))(e)),
                }
            }
            LeaseStore::Local { dir } => {
                let dir = dir.clone();
                let key = key.to_string();
                let expected = expected.cloned();
                blocking(move || local_swap(&dir, &key, &body, expected.as_ref())).await
            }
        }
    }
}

fn parse(key: &str, bytes: &[u8]) -> Result<Lease> {
    serde_json::from_slice(bytes).map_err(|e| Error::Conflict(format!("lease {key} is not a lease object: {e}")))
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f).await.map_err(|e| Error::Config(format!("lease task stopped: {e}")))?
}

/// Compare-and-swap on a local file, under an exclusive lock of the lease directory.
fn local_swap(dir: &std::path::Path, key: &str, body: &[u8], expected: Option<&Tag>) -> Result<Option<Tag>> {
    let file = dir.join(format!("{key}.json"));
    if let Some(parent) = file.parent() {
        std::fs::create_dir_all(parent).map_err(Error::io(format!("create directory {}", parent.display())))?;
    }
    let lock_path = dir.join(".lock");
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(Error::io(format!("open {}", lock_path.display())))?;
    lock.lock().map_err(Error::io(format!("lock {}", lock_path.display())))?;
    let current = match std::fs::read(&file) {
        Ok(bytes) => Some(String::from_utf8_lossy(&bytes).into_owned()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(Error::io(format!("read lease {}", file.display()))(e)),
    };
    let matches = match (expected, &current) {
        (None, None) => true,
        (Some(tag), Some(now)) => tag.0 == *now,
        _ => false,
    };
    if !matches {
        return Ok(None);
    }
    let tmp = file.with_extension("json.tmp");
    std::fs::write(&tmp, body).map_err(Error::io(format!("write lease {}", tmp.display())))?;
    std::fs::rename(&tmp, &file).map_err(Error::io(format!("write lease {}", file.display())))?;
    // The lock is released when `lock` is dropped.
    Ok(Some(Tag(String::from_utf8_lossy(body).into_owned())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn local_leases_swap_only_from_the_version_seen() {
        let dir = tempfile::tempdir().unwrap();
        let store = LeaseStore::for_lake(dir.path().to_str().unwrap(), &AwsConfig::default()).await.unwrap();
        let key = "streaming-x-pin/shardId-000000000000";
        assert!(store.read(key).await.unwrap().is_none());
        let t1 = store.swap(key, &Lease::new("a", 1), None).await.unwrap().expect("created");
        assert!(store.swap(key, &Lease::new("b", 1), None).await.unwrap().is_none(), "create-only");
        let t2 = store.swap(key, &Lease::new("a", 2), Some(&t1)).await.unwrap().expect("renewed");
        assert!(store.swap(key, &Lease::new("b", 2), Some(&t1)).await.unwrap().is_none(), "stale tag");
        let (lease, tag) = store.read(key).await.unwrap().unwrap();
        assert_eq!((lease.owner.as_str(), lease.counter, tag), ("a", 2, t2));
    }
}
