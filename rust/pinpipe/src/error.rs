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

    #[error("kinesis: {context}: {message}")]
    Kinesis { context: String, fault: crate::kinesis::Fault, message: String },

    #[error("database: {context}: {message}")]
    Database { context: String, message: String },

    #[error("http: {0}")]
    Http(String),

    /// MWAA, or the Airflow of an MWAA environment, refused or failed a request.
    #[error("mwaa: {context}: {message}")]
    Mwaa { context: String, message: String },

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

    /// A transient failure that outlasted the retry deadline.
    #[error("{context}: still failing after {secs:.0} s of retries (retry_deadline): {source}")]
    Retries {
        context: String,
        secs: f64,
        #[source]
        source: Box<Error>,
    },
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
    /// Whether trying again later may succeed: the object store or the network failed on the
    /// way (connection refused or reset, a timeout, a 5xx), as opposed to a missing object, a
    /// refused permission, a full disk or bad data.
    pub fn is_transient(&self) -> bool {
        if matches!(self, Error::Retries { .. } | Error::Config(_) | Error::Interrupted) {
            return false;
        }
        if let Error::Kinesis { fault, .. } = self {
            return fault.is_transient();
        }
        let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(self);
        while let Some(c) = cause {
            if let Some(e) = c.downcast_ref::<object_store::Error>() {
                use object_store::Error as S;
                return match e {
                    S::NotFound { .. }
                    | S::AlreadyExists { .. }
                    | S::Precondition { .. }
                    | S::NotModified { .. }
                    | S::InvalidPath { .. }
                    | S::NotSupported { .. }
                    | S::NotImplemented { .. }
                    | S::PermissionDenied { .. }
                    | S::Unauthenticated { .. }
                    | S::UnknownConfigurationKey { .. } => false,
                    // A local disk's own error says more than the wrapper.
                    S::Generic { source, .. } if source.downcast_ref::<std::io::Error>().is_some() => {
                        source.downcast_ref::<std::io::Error>().is_some_and(io_transient)
                    }
                    _ => true,
                };
            }
            if let Some(e) = c.downcast_ref::<std::io::Error>() {
                return io_transient(e);
            }
            cause = c.source();
        }
        false
    }

    pub fn datafusion(
        context: impl Into<String>,
    ) -> impl FnOnce(deltalake::datafusion::error::DataFusionError) -> Error {
        let context = context.into();
        move |source| Error::DataFusion { context, source: Box::new(source) }
    }
}

fn io_transient(e: &std::io::Error) -> bool {
    use std::io::ErrorKind as K;
    matches!(
        e.kind(),
        K::ConnectionRefused
            | K::ConnectionReset
            | K::ConnectionAborted
            | K::NotConnected
            | K::BrokenPipe
            | K::TimedOut
            | K::Interrupted
            | K::UnexpectedEof
            | K::WouldBlock
    )
}

/// Runs `op` until it succeeds, fails for good, or keeps failing transiently (see
/// [`Error::is_transient`]) for longer than `deadline`; waits between attempts with exponential
/// backoff (100 ms doubling to 5 s). Safe only for operations that can be repeated.
pub async fn retrying<T, F, Fut>(context: &str, deadline: std::time::Duration, mut op: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T>>,
{
    let started = std::time::Instant::now();
    let mut delay = std::time::Duration::from_millis(100);
    let mut failures = 0u32;
    loop {
        match op().await {
            Ok(v) => {
                if failures > 0 {
                    tracing::info!(what = context, failures, "recovered after retries");
                }
                return Ok(v);
            }
            Err(e) if e.is_transient() => {
                if started.elapsed() + delay > deadline {
                    return Err(Error::Retries {
                        context: context.to_string(),
                        secs: started.elapsed().as_secs_f64(),
                        source: Box::new(e),
                    });
                }
                failures += 1;
                if failures.is_power_of_two() {
                    tracing::warn!(what = context, failures, error = %e.one_line(), retry_in_ms = delay.as_millis() as u64, "transient failure; retrying");
                }
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(std::time::Duration::from_secs(5));
            }
            Err(e) => return Err(e),
        }
    }
}

/// A message without the stack backtrace some libraries embed in it (with `RUST_BACKTRACE` set):
/// frame lines (`  12: crate::fn`, `at src/x.rs:1:2`) are dropped, the rest joined on one line.
fn without_backtrace(text: &str) -> String {
    if !text.contains('\n') {
        return text.to_string();
    }
    let is_frame = |line: &str| {
        let t = line.trim_start();
        t.starts_with("at ")
            || t.split_once(": ").is_some_and(|(n, _)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
    };
    let mut out = String::new();
    for line in text.lines() {
        // A frame line can carry the message's tail after the last frame: `...S:81:0: Json error`.
        let kept = if is_frame(line) {
            match line.rfind(": ") {
                Some(i) if line.trim_start().starts_with("at ") && !line[i + 2..].contains(".rs") => &line[i + 2..],
                _ => "",
            }
        } else {
            line
        };
        let kept = kept.trim();
        if !kept.is_empty() {
            if !out.is_empty() {
                out.push(' ');
            }
            out.push_str(kept);
        }
    }
    out
}

/// An error and its causes on one line, each cause once. Layers often print their cause inside
/// their own message as well as returning it as `source()`; walking the chain naively repeats it
/// (`No such file (os error 2): No such file (os error 2)`). Each layer contributes only what its
/// message adds to its cause's.
pub fn one_line(error: &(dyn std::error::Error + 'static)) -> String {
    let mut texts = vec![without_backtrace(&error.to_string())];
    let mut cause = error.source();
    while let Some(c) = cause {
        texts.push(without_backtrace(&c.to_string()));
        cause = c.source();
    }
    let mut parts: Vec<String> = Vec::new();
    for (i, text) in texts.iter().enumerate() {
        let mut own = text.clone();
        // What the next layers say is printed by them; keep this layer's words only.
        for inner in &texts[i + 1..] {
            if !inner.is_empty() && own.contains(inner.as_str()) {
                own = own.replacen(inner.as_str(), "", 1);
            }
        }
        let own = own.trim().trim_end_matches([':', ',', ' ']).trim_start_matches([':', ',', ' ']).trim();
        if own.is_empty() || parts.iter().any(|p| p.contains(own)) {
            continue;
        }
        parts.push(own.to_string());
    }
    let mut line = parts.join(": ");
    // Some layers print the same cause twice in one message: drop repeated `: x` segments.
    let mut seen: Vec<&str> = Vec::new();
    let mut out = String::with_capacity(line.len());
    for segment in line.split(": ") {
        if seen.contains(&segment) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(segment);
        seen.push(segment);
    }
    line = out;
    line
}

impl Error {
    /// This error and its causes on one line, each cause once (see [`one_line`]).
    pub fn one_line(&self) -> String {
        one_line(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_says_each_cause_once() {
        let e =
            Error::Io { context: "read landing/x".into(), source: std::io::Error::from(std::io::ErrorKind::NotFound) };
        let line = e.one_line();
        assert_eq!(line.matches("not found").count(), 1, "{line}");
        assert!(line.starts_with("io: read landing/x"), "{line}");
        let e = Error::Config("flush_size must be at least 1".into());
        assert_eq!(e.one_line(), "invalid configuration: flush_size must be at least 1");
    }
}
