//! Core errors as a small exception hierarchy under `pinpipe.PinpipeError`. Messages are the
//! core's own, which never carry a secret (passwords and keys are `Secret`s and never printed).

use pinpipe::Error;
use pyo3::create_exception;
use pyo3::exceptions::{PyException, PyKeyboardInterrupt};
use pyo3::prelude::*;

create_exception!(pinpipe, PinpipeError, PyException, "Base class of every pinpipe error.");
create_exception!(pinpipe, ConfigError, PinpipeError, "A setting is missing, unknown or invalid.");
create_exception!(pinpipe, SourceError, PinpipeError, "The source database could not be read.");
create_exception!(pinpipe, BrokerError, PinpipeError, "Kafka, Kinesis or the gateway failed or could not be reached.");
create_exception!(pinpipe, StorageError, PinpipeError, "The landing zone or the lake could not be read or written.");
create_exception!(pinpipe, DataError, PinpipeError, "A query or a table's data could not be processed.");
create_exception!(
    pinpipe,
    MwaaError,
    PinpipeError,
    "MWAA, or the Airflow of an MWAA environment, refused or failed a request."
);

/// The Python exception of a core error.
pub fn to_py(error: Error) -> PyErr {
    let message = error.one_line();
    match error {
        Error::Config(_) | Error::ReadFile { .. } | Error::ParseFile { .. } => ConfigError::new_err(message),
        Error::Database { .. } | Error::RowNotFound { .. } => SourceError::new_err(message),
        Error::Kafka { .. } | Error::Kinesis { .. } | Error::Http(_) => BrokerError::new_err(message),
        Error::ObjectStore { .. } | Error::Delta { .. } | Error::Io { .. } | Error::Conflict(_) => {
            StorageError::new_err(message)
        }
        Error::DataFusion { .. } => DataError::new_err(message),
        Error::Mwaa { .. } => MwaaError::new_err(message),
        Error::Interrupted => PyKeyboardInterrupt::new_err(message),
        Error::Retries { .. } => StorageError::new_err(message),
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("PinpipeError", py.get_type::<PinpipeError>())?;
    m.add("ConfigError", py.get_type::<ConfigError>())?;
    m.add("SourceError", py.get_type::<SourceError>())?;
    m.add("BrokerError", py.get_type::<BrokerError>())?;
    m.add("StorageError", py.get_type::<StorageError>())?;
    m.add("DataError", py.get_type::<DataError>())?;
    m.add("MwaaError", py.get_type::<MwaaError>())?;
    Ok(())
}
