//! The core's `tracing` events, forwarded to Python's `logging` (logger `pinpipe` and its children:
//! `pinpipe::sink` logs as `pinpipe.sink`), so they show in an Airflow task log. Nothing is
//! installed until `init_logging` is called (by the user, or by an operator).

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::OnceLock;

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Metadata, Subscriber};
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::prelude::*;

/// Most verbose level forwarded for pinpipe's own events (other crates: warnings and errors).
static MAX_LEVEL: AtomicU8 = AtomicU8::new(3);
static INSTALLED: OnceLock<()> = OnceLock::new();
static GET_LOGGER: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

fn rank(level: &Level) -> u8 {
    match *level {
        Level::ERROR => 1,
        Level::WARN => 2,
        Level::INFO => 3,
        Level::DEBUG => 4,
        Level::TRACE => 5,
    }
}

fn python_level(level: &Level) -> i32 {
    match *level {
        Level::ERROR => 40,
        Level::WARN => 30,
        Level::INFO => 20,
        Level::DEBUG => 10,
        Level::TRACE => 5,
    }
}

struct PythonLogging;

impl<S: Subscriber> Layer<S> for PythonLogging {
    fn enabled(&self, metadata: &Metadata<'_>, _: Context<'_, S>) -> bool {
        let max = if metadata.target().starts_with("pinpipe") {
            MAX_LEVEL.load(Ordering::Relaxed)
        } else if metadata.target().starts_with(pinpipe::QUIET_LOG_TARGET) {
            1
        } else {
            2
        };
        rank(metadata.level()) <= max
    }

    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        let meta = event.metadata();
        let mut fields = Fields::default();
        event.record(&mut fields);
        let logger = match meta.target().strip_prefix("pinpipe") {
            Some(rest) => format!("pinpipe{}", rest.replace("::", ".")),
            None => format!("pinpipe.{}", meta.target().split("::").next().unwrap_or("deps")),
        };
        let level = python_level(meta.level());
        // The interpreter may be finalizing (a worker thread logging at exit): then drop the event.
        let _ = Python::try_attach(|py| -> PyResult<()> {
            let get_logger = GET_LOGGER
                .get_or_try_init(py, || Ok::<_, PyErr>(py.import("logging")?.getattr("getLogger")?.unbind()))?;
            let logger = get_logger.bind(py).call1((logger,))?;
            if logger.call_method1("isEnabledFor", (level,))?.is_truthy()? {
                // The record names the Rust source line, so a log shows `{sink.rs:250}`, not logging's.
                let file = meta.file().unwrap_or("<rust>");
                let line = meta.line().unwrap_or(0);
                let args = pyo3::types::PyTuple::empty(py);
                let record = logger.call_method1(
                    "makeRecord",
                    (logger.getattr("name")?, level, file, line, fields.text(), args, py.None()),
                )?;
                logger.call_method1("handle", (record,))?;
            }
            Ok(())
        });
    }
}

/// The event's message followed by its fields as `key=value`.
#[derive(Default)]
struct Fields {
    message: String,
    rest: String,
}

impl Fields {
    fn text(self) -> String {
        if self.rest.is_empty() {
            self.message
        } else {
            format!("{}{}", self.message, self.rest)
        }
    }
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message.push_str(value);
        } else {
            let _ = write!(self.rest, " {}={}", field.name(), value);
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.message, "{value:?}");
        } else {
            let _ = write!(self.rest, " {}={:?}", field.name(), value);
        }
    }
}

/// Forwards the core's events at `level` and above to Python's `logging` (installed once per
/// process; later calls change the level).
#[pyfunction]
#[pyo3(signature = (level="INFO"))]
pub fn init_logging(level: &str) -> PyResult<()> {
    let rank = match level.to_ascii_uppercase().as_str() {
        "ERROR" | "CRITICAL" => 1,
        "WARN" | "WARNING" => 2,
        "INFO" => 3,
        "DEBUG" => 4,
        "TRACE" | "NOTSET" => 5,
        other => {
            return Err(crate::errors::ConfigError::new_err(format!(
                "unknown log level {other:?}: use ERROR, WARNING, INFO, DEBUG or TRACE"
            )))
        }
    };
    MAX_LEVEL.store(rank, Ordering::Relaxed);
    INSTALLED.get_or_init(|| {
        // Another subscriber already installed (by the embedding program) stays in charge.
        let _ = tracing_subscriber::registry().with(PythonLogging).try_init();
    });
    Ok(())
}
