//! pinpipe core: every part of the pipeline as a library function that takes a config struct and
//! returns a summary. The CLI and the Python extension only build configs and print summaries.

pub mod analytics;
pub mod aws;
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
pub mod kinesis;
pub mod landing;
pub mod model;
pub mod mwaa;
pub mod names;
pub mod pyrandom;
pub mod query;
pub mod sink;
pub mod source;
pub mod stream;

/// The Delta Lake, Arrow and DataFusion crates the core is built on, for the fronts.
pub use deltalake;
pub use error::{Error, Result};

/// Keeps panics that a dependency raises and catches itself out of the user's terminal: delta-rs
/// calls `object_store`'s `BufWriter::abort` after a failed upload (a full disk, say) and catches
/// the "Already shut down" panic that abort raises by design, but the default hook has printed a
/// backtrace by then, ahead of the real error. Those are logged at debug level; every other panic
/// goes to the hook that was installed before. Call once, from a front's entry point.
pub fn install_panic_filter() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let message = info
                .payload()
                .downcast_ref::<&str>()
                .copied()
                .or_else(|| info.payload().downcast_ref::<String>().map(String::as_str));
            let caught_by_delta = message == Some("Already shut down")
                && info
                    .location()
                    .is_some_and(|l| l.file().contains("object_store") && l.file().ends_with("buffered.rs"));
            if caught_by_delta {
                tracing::debug!("upload writer aborted after a failed upload (caught panic in object_store)");
                return;
            }
            previous(info)
        }));
    });
}

/// Log target of a dependency kept to errors by every front: delta-rs MERGE warns, on every
/// merge, about a metric it derives instead.
pub const QUIET_LOG_TARGET: &str = "deltalake_core::operations::merge";
