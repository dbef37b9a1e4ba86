//! The library's error type.

use std::path::PathBuf;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid configuration: {0}")]
    Config(String),

    #[error("cannot read {path}: {source}")]
    ReadFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("cannot parse {path}: {message}")]
    ParseFile { path: PathBuf, message: String },

    #[error("kafka: {context}: {source}")]
    Kafka {
        context: String,
        #[source]
        source: rdkafka::error::KafkaError,
    },

    #[error("object store: {context}: {source}")]
    ObjectStore {
        context: String,
        #[source]
        source: object_store::Error,
    },

    #[error("delta: {context}: {source}")]
    Delta {
        context: String,
        #[source]
        source: Box<deltalake::DeltaTableError>,
    },

    #[error("query: {context}: {source}")]
    DataFusion {
        context: String,
        #[source]
        source: Box<deltalake::datafusion::error::DataFusionError>,
    },

    #[error("database: {context}: {message}")]
    Database { context: String, message: String },

    #[error("http: {0}")]
    Http(String),

    #[error("source row {row} not found in table {table}")]
    RowNotFound { table: String, row: u64 },

    #[error("io: {context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },

    #[error("concurrent writers: {0}")]
    Conflict(String),

    #[error("interrupted")]
    Interrupted,
}

impl Error {
    pub fn kafka(context: impl Into<String>) -> impl FnOnce(rdkafka::error::KafkaError) -> Error {
        let context = context.into();
        move |source| Error::Kafka { context, source }
    }

    pub fn store(context: impl Into<String>) -> impl FnOnce(object_store::Error) -> Error {
        let context = context.into();
        move |source| Error::ObjectStore { context, source }
    }

    pub fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
        let context = context.into();
        move |source| Error::Io { context, source }
    }
}

impl Error {
    pub fn datafusion(
        context: impl Into<String>,
    ) -> impl FnOnce(deltalake::datafusion::error::DataFusionError) -> Error {
        let context = context.into();
        move |source| Error::DataFusion { context, source: Box::new(source) }
    }
}
