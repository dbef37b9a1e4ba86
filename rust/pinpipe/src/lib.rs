//! pinpipe core: every part of the pipeline as a library function that takes a config struct and
//! returns a summary. The CLI and the Python extension only build configs and print summaries.

pub mod analytics;
pub mod batch;
pub mod clean;
pub mod config;
pub mod delta;
pub mod demo;
pub mod emulate;
pub mod error;
pub mod gateway;
pub mod jobs;
pub mod kafka;
pub mod landing;
pub mod model;
pub mod names;
pub mod pyrandom;
pub mod query;
pub mod sink;
pub mod source;

/// The Delta Lake, Arrow and DataFusion crates the core is built on, for the fronts.
pub use deltalake;
pub use error::{Error, Result};
