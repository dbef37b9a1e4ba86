//! `pinpipe._core`: the Python face of the Rust core. It converts arguments (a JSON object of the
//! settings given, keyed like the configuration file) and results (the summary the CLI's `--json`
//! prints; query results as an Arrow C stream), and maps errors to `pinpipe.PinpipeError`
//! subclasses. Every job is the core's `pinpipe::jobs` function: no pipeline logic lives here.

mod errors;
mod logging;
mod runtime;

use std::ffi::OsString;
use std::path::PathBuf;

use pinpipe::config::Layers;
use pinpipe::deltalake::arrow::datatypes::SchemaRef;
use pinpipe::deltalake::arrow::ffi_stream::FFI_ArrowArrayStream;
use pinpipe::deltalake::arrow::record_batch::{RecordBatch, RecordBatchIterator};
use pinpipe::query::QueryTarget;
use pyo3::prelude::*;
use pyo3::types::PyCapsule;

use crate::runtime::{wait, wait_stoppable, Stop};

/// The layers of a call: the `config` file and the settings given, as a JSON object.
fn layers(config: Option<PathBuf>, settings: &str) -> PyResult<Layers> {
    let given: serde_json::Value = serde_json::from_str(settings)
        .map_err(|e| errors::ConfigError::new_err(format!("settings are not a JSON object: {e}")))?;
    let serde_json::Value::Object(given) = given else {
        return Err(errors::ConfigError::new_err("settings must be a JSON object"));
    };
    let mut layers = Layers::new(config);
    layers.given = given;
    Ok(layers)
}

fn to_json<T: serde::Serialize>(summary: &T) -> PyResult<String> {
    serde_json::to_string(summary).map_err(|e| errors::PinpipeError::new_err(format!("summary: {e}")))
}

/// Kafka → landing zone. Returns the summary as JSON text.
#[pyfunction]
#[pyo3(signature = (settings, config=None))]
fn sink(py: Python<'_>, settings: &str, config: Option<PathBuf>) -> PyResult<String> {
    let layers = layers(config, settings)?;
    let summary = wait_stoppable(py, |stop| async move { pinpipe::jobs::sink(&layers, stop.wait_owned()).await })?;
    to_json(&summary)
}

/// Landing zone → clean tables → analytics tables. Returns the summary as JSON text.
#[pyfunction]
#[pyo3(signature = (settings, config=None))]
fn batch(py: Python<'_>, settings: &str, config: Option<PathBuf>) -> PyResult<String> {
    let layers = layers(config, settings)?;
    let summary = wait(py, async move { pinpipe::jobs::batch(&layers).await }, Stop::Abort)?;
    to_json(&summary)
}

/// The batch emulator: posts events through the gateway. Returns the summary as JSON text.
#[pyfunction]
#[pyo3(signature = (settings, config=None))]
fn emulate(py: Python<'_>, settings: &str, config: Option<PathBuf>) -> PyResult<String> {
    let layers = layers(config, settings)?;
    let summary = wait_stoppable(py, |stop| async move { pinpipe::jobs::emulate(&layers, stop.wait_owned()).await })?;
    to_json(&summary)
}

/// The streaming emulator: puts events through the gateway's Kinesis side. Returns the summary
/// as JSON text.
#[pyfunction]
#[pyo3(signature = (settings, config=None))]
fn emulate_stream(py: Python<'_>, settings: &str, config: Option<PathBuf>) -> PyResult<String> {
    let layers = layers(config, settings)?;
    let summary =
        wait_stoppable(py, |stop| async move { pinpipe::jobs::emulate_streaming(&layers, stop.wait_owned()).await })?;
    to_json(&summary)
}

/// Kinesis → stream tables. Returns the summary as JSON text.
#[pyfunction]
#[pyo3(signature = (settings, config=None))]
fn stream(py: Python<'_>, settings: &str, config: Option<PathBuf>) -> PyResult<String> {
    let layers = layers(config, settings)?;
    let summary = wait_stoppable(py, |stop| async move { pinpipe::jobs::stream(&layers, stop.wait_owned()).await })?;
    to_json(&summary)
}

/// Kinesis admin of the user's streams: `action` is create, list, describe or delete. Returns
/// the result as JSON text.
#[pyfunction]
#[pyo3(signature = (action, settings, config=None))]
fn streams(py: Python<'_>, action: &str, settings: &str, config: Option<PathBuf>) -> PyResult<String> {
    let layers = layers(config, settings)?;
    match action {
        "create" => to_json(&wait(py, async move { pinpipe::jobs::streams_create(&layers).await }, Stop::Abort)?),
        "list" => to_json(&wait(py, async move { pinpipe::jobs::streams_list(&layers).await }, Stop::Abort)?),
        "describe" => to_json(&wait(py, async move { pinpipe::jobs::streams_describe(&layers).await }, Stop::Abort)?),
        "delete" => to_json(&wait(py, async move { pinpipe::jobs::streams_delete(&layers).await }, Stop::Abort)?),
        other => Err(errors::ConfigError::new_err(format!(
            "unknown streams action {other:?}: use create, list, describe or delete"
        ))),
    }
}

/// MWAA: `action` is deploy, trigger or status. Returns the summary as JSON text.
#[pyfunction]
#[pyo3(signature = (action, settings, config=None))]
fn mwaa(py: Python<'_>, action: &str, settings: &str, config: Option<PathBuf>) -> PyResult<String> {
    let layers = layers(config, settings)?;
    match action {
        "deploy" => to_json(&wait(py, async move { pinpipe::jobs::mwaa_deploy(&layers).await }, Stop::Abort)?),
        "trigger" => to_json(&wait(py, async move { pinpipe::jobs::mwaa_trigger(&layers).await }, Stop::Abort)?),
        "status" => to_json(&wait(py, async move { pinpipe::jobs::mwaa_status(&layers).await }, Stop::Abort)?),
        other => {
            Err(errors::ConfigError::new_err(format!("unknown mwaa action {other:?}: use deploy, trigger or status")))
        }
    }
}

/// Drawn events written straight into a landing zone. Returns the summary as JSON text.
#[pyfunction]
#[pyo3(signature = (settings, config=None))]
fn emulate_landing(py: Python<'_>, settings: &str, config: Option<PathBuf>) -> PyResult<String> {
    let layers = layers(config, settings)?;
    let (_, summary) = wait(py, async move { pinpipe::jobs::emulate_landing(&layers).await }, Stop::Abort)?;
    to_json(&summary)
}

/// The whole pipeline on embedded defaults. Returns the summary as JSON text.
#[pyfunction]
#[pyo3(signature = (settings, config=None))]
fn demo(py: Python<'_>, settings: &str, config: Option<PathBuf>) -> PyResult<String> {
    let layers = layers(config, settings)?;
    // The in-process Kafka of the demo is not `Send`: the demo runs on a blocking thread of its own.
    let job = async move {
        let handle = tokio::runtime::Handle::current();
        tokio::task::spawn_blocking(move || handle.block_on(pinpipe::jobs::demo(&layers)))
            .await
            .unwrap_or_else(|e| Err(pinpipe::Error::Config(format!("demo stopped: {e}"))))
    };
    let summary = wait(py, job, Stop::Abort)?;
    to_json(&summary)
}

/// Creates the user's three topics. Returns what was done as JSON text.
#[pyfunction]
#[pyo3(signature = (settings, config=None))]
fn topics_create(py: Python<'_>, settings: &str, config: Option<PathBuf>) -> PyResult<String> {
    let layers = layers(config, settings)?;
    let created = wait(py, async move { pinpipe::jobs::topics_create(&layers).await }, Stop::Abort)?;
    to_json(&created)
}

/// A query result: an Arrow stream exported through the Arrow PyCapsule interface.
#[pyclass(module = "pinpipe._core", frozen)]
struct ArrowStream {
    data: std::sync::Mutex<Option<(SchemaRef, Vec<RecordBatch>)>>,
}

#[pymethods]
impl ArrowStream {
    /// Hands the batches over as an `ArrowArrayStream` capsule (once).
    #[pyo3(signature = (requested_schema=None))]
    fn __arrow_c_stream__<'py>(
        &self,
        py: Python<'py>,
        requested_schema: Option<Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyCapsule>> {
        let _ = requested_schema;
        let taken = self.data.lock().map_err(|_| errors::PinpipeError::new_err("stream lock poisoned"))?.take();
        let Some((schema, batches)) = taken else {
            return Err(errors::PinpipeError::new_err("this query result was already consumed"));
        };
        let reader = RecordBatchIterator::new(batches.into_iter().map(Ok), schema);
        let stream = FFI_ArrowArrayStream::new(Box::new(reader));
        PyCapsule::new_with_value(py, stream, c"arrow_array_stream")
    }
}

/// Reads a named lake table, or runs SQL over all of them, into an Arrow stream.
#[pyfunction]
#[pyo3(signature = (settings, name=None, sql=None, config=None))]
fn query(
    py: Python<'_>,
    settings: &str,
    name: Option<String>,
    sql: Option<String>,
    config: Option<PathBuf>,
) -> PyResult<ArrowStream> {
    let target = match (name, sql) {
        (Some(_), Some(_)) => return Err(errors::ConfigError::new_err("give a table name or sql, not both")),
        (Some(name), None) => QueryTarget::Table(name),
        (None, Some(sql)) => QueryTarget::Sql(sql),
        (None, None) => return Err(errors::ConfigError::new_err("give a table name or sql")),
    };
    let layers = layers(config, settings)?;
    let result = wait(py, async move { pinpipe::jobs::query(&layers, &target).await }, Stop::Abort)?;
    Ok(ArrowStream { data: std::sync::Mutex::new(Some(result)) })
}

/// Every table `query` knows, as JSON text (`[{"name", "path"}]`).
#[pyfunction]
fn lake_tables() -> PyResult<String> {
    to_json(&pinpipe::query::lake_tables())
}

/// Stops every job running in this process (from any thread): the sink and the emulator finish
/// the work in hand and return, other jobs stop at once.
#[pyfunction]
fn stop_running() {
    runtime::stop_running();
}

/// The `pinpipe` command line (the same code as the Rust binary). Returns its exit status.
#[pyfunction]
fn cli_main(py: Python<'_>, argv: Vec<String>) -> i32 {
    let args: Vec<OsString> = argv.into_iter().map(OsString::from).collect();
    py.detach(move || pinpipe_cli::main_with(args))
}

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    pinpipe::install_panic_filter();
    m.add_function(wrap_pyfunction!(sink, m)?)?;
    m.add_function(wrap_pyfunction!(batch, m)?)?;
    m.add_function(wrap_pyfunction!(emulate, m)?)?;
    m.add_function(wrap_pyfunction!(emulate_landing, m)?)?;
    m.add_function(wrap_pyfunction!(emulate_stream, m)?)?;
    m.add_function(wrap_pyfunction!(stream, m)?)?;
    m.add_function(wrap_pyfunction!(streams, m)?)?;
    m.add_function(wrap_pyfunction!(mwaa, m)?)?;
    m.add_function(wrap_pyfunction!(demo, m)?)?;
    m.add_function(wrap_pyfunction!(topics_create, m)?)?;
    m.add_function(wrap_pyfunction!(query, m)?)?;
    m.add_function(wrap_pyfunction!(lake_tables, m)?)?;
    m.add_function(wrap_pyfunction!(cli_main, m)?)?;
    m.add_function(wrap_pyfunction!(stop_running, m)?)?;
    m.add_function(wrap_pyfunction!(logging::init_logging, m)?)?;
    m.add_class::<ArrowStream>()?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    errors::register(m)?;
    Ok(())
}
