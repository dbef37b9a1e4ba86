//! The configuration file: one YAML document whose keys mirror the CLI flags (`user_id`,
//! `bootstrap_servers`, ...). Flags and `PINPIPE_*` environment variables override it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::{Error, Result};

/// Values read from the YAML configuration file. Every field is optional; unset fields fall back
/// to the flag, the environment variable, then the built-in default.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// 12-hex-digit user id from which every resource name derives.
    pub user_id: Option<String>,
    /// Kafka bootstrap servers; unset means the in-process Kafka of `demo`.
    pub bootstrap_servers: Option<String>,
    /// Extra librdkafka properties for every Kafka client (TLS, SASL, ...).
    #[serde(default)]
    pub kafka_properties: BTreeMap<String, String>,
    /// Base URL of the gateway the emulators post to.
    pub gateway: Option<String>,
    /// Address the gateway listens on.
    pub listen: Option<String>,
    /// The gateway's API key (`x-api-key`).
    pub api_key: Option<String>,
    /// Landing zone: a local directory or `s3://bucket/prefix`.
    pub landing: Option<String>,
    /// Lake root for the Delta tables: a local directory or `s3://bucket/prefix`.
    pub lake: Option<String>,
    /// Number of events the emulator sends.
    pub events: Option<u64>,
    /// Seed of the emulator's draws.
    pub seed: Option<u64>,
    /// Concurrent senders of the emulator.
    pub concurrency: Option<usize>,
    /// Send flat out instead of the original's 0-1 s sleeps.
    pub no_sleep: Option<bool>,
    /// Records per landing object.
    pub flush_size: Option<usize>,
    /// Source of rows: `synthetic` or `mysql`.
    pub source: Option<String>,
    /// Path of `db_creds.yaml` for the MySQL source.
    pub db_creds: Option<PathBuf>,
}

impl FileConfig {
    pub fn load(path: &Path) -> Result<Self> {
        let text =
            std::fs::read_to_string(path).map_err(|source| Error::ReadFile { path: path.to_path_buf(), source })?;
        serde_yaml::from_str(&text).map_err(|e| Error::ParseFile { path: path.to_path_buf(), message: e.to_string() })
    }
}

/// Serde helper: a `Duration` written as (fractional) seconds.
pub mod duration_secs {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(v: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(v.as_secs_f64())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let secs = f64::deserialize(d)?;
        Duration::try_from_secs_f64(secs).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_yaml_and_rejects_unknown_keys() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pinpipe.yaml");
        std::fs::write(&path, "user_id: 0123456789ab\nflush_size: 10\nkafka_properties:\n  security.protocol: SSL\n")
            .unwrap();
        let config = FileConfig::load(&path).unwrap();
        assert_eq!(config.user_id.as_deref(), Some("0123456789ab"));
        assert_eq!(config.flush_size, Some(10));
        assert_eq!(config.kafka_properties["security.protocol"], "SSL");
        std::fs::write(&path, "flush_sise: 10\n").unwrap();
        let err = FileConfig::load(&path).unwrap_err().to_string();
        assert!(err.contains("flush_sise"), "{err}");
    }
}
