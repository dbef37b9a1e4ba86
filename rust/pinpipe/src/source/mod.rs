//! Sources of post events: the deterministic synthetic dataset (default) or a MySQL database
//! laid out like the original `pinterest_data` database.

pub mod mysql;
pub mod synthetic;
mod vocab;

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::model::Event;

pub use mysql::{DbCreds, MysqlSource};
pub use synthetic::{SyntheticConfig, SyntheticDataset};

/// Which source to read rows from.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "lowercase", tag = "kind")]
pub enum SourceConfig {
    /// The built-in synthetic dataset.
    Synthetic {
        /// Rows per table. Default 11,154 (as the original tables).
        rows: u64,
        /// Seed of the dataset (not of the emulator's draws).
        seed: u64,
    },
    /// A MySQL/MariaDB database described by a `db_creds.yaml` file.
    Mysql { db_creds: PathBuf },
}

impl Default for SourceConfig {
    fn default() -> Self {
        let d = SyntheticConfig::default();
        SourceConfig::Synthetic { rows: d.rows, seed: d.seed }
    }
}

impl SourceConfig {
    /// Builds a source by name (`synthetic` or `mysql`).
    pub fn from_name(name: &str, db_creds: Option<PathBuf>) -> Result<Self> {
        match name {
            "synthetic" => Ok(SourceConfig::default()),
            "mysql" => Ok(SourceConfig::Mysql { db_creds: db_creds.unwrap_or_else(|| PathBuf::from("db_creds.yaml")) }),
            other => Err(Error::Config(format!("unknown source {other:?}: use synthetic or mysql"))),
        }
    }

    pub async fn build(&self) -> Result<Source> {
        match self {
            SourceConfig::Synthetic { rows, seed } => {
                Ok(Source::Synthetic(SyntheticDataset::new(&SyntheticConfig { rows: *rows, seed: *seed })))
            }
            SourceConfig::Mysql { db_creds } => {
                let creds = DbCreds::load(db_creds)?;
                Ok(Source::Mysql(MysqlSource::connect(&creds).await?))
            }
        }
    }
}

/// An open source of events.
pub enum Source {
    Synthetic(SyntheticDataset),
    Mysql(MysqlSource),
}

impl Source {
    /// The event of row number `row` (pin, geo and user rows with that row number).
    pub async fn event(&self, row: u64) -> Result<Event> {
        match self {
            Source::Synthetic(d) => {
                d.rows(row).map(|r| r.to_event()).ok_or_else(|| Error::RowNotFound { table: "synthetic".into(), row })
            }
            Source::Mysql(m) => m.event(row).await,
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Source::Synthetic(d) => format!("synthetic dataset ({} rows)", d.len()),
            Source::Mysql(m) => format!("MySQL database {}", m.database()),
        }
    }
}
