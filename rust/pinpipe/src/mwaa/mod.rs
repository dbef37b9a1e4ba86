//! MWAA: deploy the DAG folder and the pinpipe wheel to an Amazon MWAA environment, trigger the
//! DAG and watch its runs — the steps the original project did by hand in the S3 and Airflow
//! consoles.
//!
//! - [`deploy`](deploy::deploy): `GetEnvironment` gives the bucket and the paths; the DAG files,
//!   `plugins.zip` (the wheels, installed offline) and `requirements.txt` are uploaded when they
//!   changed, then `UpdateEnvironment` points the environment at the new object versions and the
//!   deploy waits until it is `AVAILABLE` again.
//! - [`trigger`](airflow::trigger) and [`status`](airflow::status): the Airflow REST API through
//!   `InvokeRestApi`, or the Airflow CLI through `CreateCliToken` on environments too old for it.
//!
//! Every call uses the one AWS credential chain (`crate::aws`).

pub mod airflow;
pub mod bundle;
pub mod deploy;

use std::path::PathBuf;
use std::time::Duration;

use aws_sdk_mwaa::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_mwaa::types::Environment;
use serde::{Deserialize, Serialize};

use crate::config::{duration_secs, AwsConfig};
use crate::error::{Error, Result};
use crate::names::UserId;

pub use airflow::{status, trigger, DagRunInfo, StatusSummary, TaskState, TriggerSummary};
pub use deploy::{deploy, DeploySummary, FileAction, FilePlan};

/// Where MWAA unpacks `plugins.zip` on its schedulers, workers and web servers.
pub const PLUGINS_DIR: &str = "/usr/local/airflow/plugins";

/// `pinpipe mwaa deploy`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeployConfig {
    /// Name of the MWAA environment (required).
    pub environment: Option<String>,
    /// Local DAG folder, uploaded to the environment's DAG path [default: dags].
    pub dags: PathBuf,
    /// Wheels put into `plugins.zip`: the pinpipe wheel (required; `make wheel` builds the
    /// manylinux one), and any wheel of a dependency the environment does not have.
    pub wheels: Vec<PathBuf>,
    /// A pip constraints file (Airflow's for the environment's version, say) copied into
    /// `plugins.zip`, with the bundled wheels' pins replacing its lines for the same packages
    /// [default: the bundled wheels' pins alone].
    pub constraints: Option<PathBuf>,
    /// Print the plan (what would be uploaded, whether the environment would be updated) and
    /// change nothing.
    pub dry_run: bool,
    /// Return after `UpdateEnvironment` instead of waiting until the environment is `AVAILABLE`.
    pub no_wait: bool,
    /// Seconds between two `GetEnvironment` calls while waiting [default: 20].
    #[serde(with = "duration_secs")]
    pub poll_interval: Duration,
    /// Seconds to wait for the update before giving up (the update goes on) [default: 3600].
    #[serde(with = "duration_secs")]
    pub wait_timeout: Duration,
    /// Show the environment's state while waiting, on stderr.
    pub progress: bool,
    /// AWS settings (unset: the standard chain).
    pub aws: AwsConfig,
}

impl Default for DeployConfig {
    fn default() -> Self {
        DeployConfig {
            environment: None,
            dags: PathBuf::from("dags"),
            wheels: Vec::new(),
            constraints: None,
            dry_run: false,
            no_wait: false,
            poll_interval: Duration::from_secs(20),
            wait_timeout: Duration::from_secs(3600),
            progress: false,
            aws: AwsConfig::default(),
        }
    }
}

/// `pinpipe mwaa trigger`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TriggerConfig {
    /// Name of the MWAA environment (required).
    pub environment: Option<String>,
    /// 12-hex-digit user id: the DAG is `<uid>_dag` unless `dag` names another.
    pub user_id: UserId,
    /// DAG id [default: <user id>_dag].
    pub dag: Option<String>,
    /// The run's `conf`, a JSON object.
    pub conf: Option<serde_json::Value>,
    /// Follow the run to its end; a failed run is an error.
    pub wait: bool,
    /// Seconds between two looks at the run while waiting [default: 10].
    #[serde(with = "duration_secs")]
    pub poll_interval: Duration,
    /// Seconds to wait for the run before giving up (the run goes on) [default: 3600].
    #[serde(with = "duration_secs")]
    pub wait_timeout: Duration,
    /// Show the run's state while waiting, on stderr.
    pub progress: bool,
    /// AWS settings (unset: the standard chain).
    pub aws: AwsConfig,
}

impl Default for TriggerConfig {
    fn default() -> Self {
        TriggerConfig {
            environment: None,
            user_id: UserId::default(),
            dag: None,
            conf: None,
            wait: false,
            poll_interval: Duration::from_secs(10),
            wait_timeout: Duration::from_secs(3600),
            progress: false,
            aws: AwsConfig::default(),
        }
    }
}

/// `pinpipe mwaa status`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StatusConfig {
    /// Name of the MWAA environment (required).
    pub environment: Option<String>,
    /// 12-hex-digit user id: the DAG is `<uid>_dag` unless `dag` names another.
    pub user_id: UserId,
    /// DAG id [default: <user id>_dag].
    pub dag: Option<String>,
    /// How many of the DAG's most recent runs to show [default: 5].
    pub runs: u32,
    /// AWS settings (unset: the standard chain).
    pub aws: AwsConfig,
}

impl Default for StatusConfig {
    fn default() -> Self {
        StatusConfig { environment: None, user_id: UserId::default(), dag: None, runs: 5, aws: AwsConfig::default() }
    }
}

fn required_environment(environment: &Option<String>) -> Result<String> {
    match environment.as_deref().map(str::trim) {
        Some(name) if !name.is_empty() => Ok(name.to_string()),
        _ => Err(Error::Config("environment: the MWAA environment's name is required (--environment)".into())),
    }
}

/// An MWAA client for `aws`, and the region it talks to.
pub struct Mwaa {
    client: aws_sdk_mwaa::Client,
    region: String,
    /// The API is a local stand-in reached over plain HTTP (tests): so is the CLI endpoint.
    plain_http: bool,
}

impl Mwaa {
    pub async fn connect(aws: &AwsConfig) -> Self {
        let endpoint = aws.mwaa_endpoint();
        let sdk = aws.sdk_config(endpoint.clone()).await;
        let region = sdk.region().map(|r| r.to_string()).unwrap_or_else(|| "(no region)".into());
        let mut builder = aws_sdk_mwaa::config::Builder::from(&sdk);
        if let Some(authority) = endpoint.as_deref().and_then(authority_of) {
            builder = builder.interceptor(NoHostPrefix { authority });
        }
        let plain_http = endpoint.is_some_and(|e| e.starts_with("http://"));
        Mwaa { client: aws_sdk_mwaa::Client::from_conf(builder.build()), region, plain_http }
    }

    pub fn client(&self) -> &aws_sdk_mwaa::Client {
        &self.client
    }

    /// The environment, or a one-line error naming it (unknown, not allowed, ...).
    pub async fn environment(&self, name: &str) -> Result<Environment> {
        let out = self
            .client
            .get_environment()
            .name(name)
            .send()
            .await
            .map_err(|e| self.error(name, "read the environment", e))?;
        out.environment.ok_or_else(|| mwaa_error(name, "read the environment", "MWAA returned no environment".into()))
    }

    /// One line for a failed MWAA call: on which environment, what was done and why — the causes
    /// a user meets (unknown environment, no permission, a busy environment) in words.
    pub fn error<E>(
        &self,
        environment: &str,
        what: &str,
        error: SdkError<E, aws_sdk_mwaa::config::http::HttpResponse>,
    ) -> Error
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        let code = error.code().map(str::to_string);
        let message = error.message().map(str::to_string);
        let (what, text) = match code.as_deref() {
            Some("ResourceNotFoundException") => {
                ("", format!("no MWAA environment named {environment:?} in region {}", self.region))
            }
            Some("AccessDeniedException") => {
                (what, format!("not allowed ({})", message.as_deref().unwrap_or("access denied")))
            }
            Some(code) => (what, format!("{code}: {}", message.as_deref().unwrap_or("(no message)"))),
            None => (what, DisplayErrorContext(&error).to_string()),
        };
        mwaa_error(environment, what, text)
    }
}

/// An MWAA error: `environment <name>: <what>: <message>` (`what` may be empty).
pub(crate) fn mwaa_error(environment: &str, what: &str, message: String) -> Error {
    let message = if what.is_empty() { message } else { format!("{what}: {message}") };
    Error::Mwaa { context: format!("environment {environment}"), message }
}

/// `host[:port]` of an endpoint URL.
fn authority_of(endpoint: &str) -> Option<String> {
    let url = url::Url::parse(endpoint).ok()?;
    let host = url.host_str()?;
    Some(match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_string(),
    })
}

/// MWAA's operations prefix the endpoint's host with `api.` or `env.`; a custom endpoint (a VPC
/// endpoint, a local stand-in) is used as given, as botocore's `inject_host_prefix=False` does.
#[derive(Debug)]
struct NoHostPrefix {
    authority: String,
}

impl aws_sdk_mwaa::config::Intercept for NoHostPrefix {
    fn name(&self) -> &'static str {
        "NoHostPrefix"
    }

    fn modify_before_signing(
        &self,
        context: &mut aws_sdk_mwaa::config::interceptors::BeforeTransmitInterceptorContextMut<'_>,
        _components: &aws_sdk_mwaa::config::RuntimeComponents,
        _cfg: &mut aws_sdk_mwaa::config::ConfigBag,
    ) -> std::result::Result<(), Box<dyn std::error::Error + Send + Sync>> {
        let request = context.request_mut();
        let uri = request.uri().to_string();
        for prefix in ["api.", "env."] {
            let prefixed = format!("://{prefix}{}", self.authority);
            if uri.contains(&prefixed) {
                request.set_uri(uri.replacen(&prefixed, &format!("://{}", self.authority), 1))?;
                break;
            }
        }
        Ok(())
    }
}

/// A spinner on stderr with a message, or nothing when `on` is false.
fn spinner(on: bool) -> indicatif::ProgressBar {
    if !on {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new_spinner();
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

/// The Python version MWAA runs an Airflow version on (`None`: not known here).
pub fn python_of(airflow_version: &str) -> Option<(u32, u32)> {
    let mut parts = airflow_version.split('.').map(|p| p.parse::<u32>().ok());
    match (parts.next()??, parts.next()??) {
        (3, _) => Some((3, 12)),
        (2, 7..=11) => Some((3, 11)),
        (2, 4..=6) => Some((3, 10)),
        (2, 0..=2) => Some((3, 7)),
        _ => None,
    }
}

/// Whether an Airflow version has the REST API through `InvokeRestApi` (2.4.3 and later).
pub fn has_invoke_rest_api(airflow_version: &str) -> bool {
    let v: Vec<u32> = airflow_version.split('.').map(|p| p.parse().unwrap_or(0)).collect();
    let get = |i: usize| v.get(i).copied().unwrap_or(0);
    (get(0), get(1), get(2)) >= (2, 4, 3)
}

/// The bucket name of an S3 bucket ARN (`arn:aws:s3:::name`).
pub fn bucket_of_arn(arn: &str) -> Option<&str> {
    arn.rsplit_once(":::").map(|(_, name)| name).filter(|n| !n.is_empty() && !n.contains('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_map_to_what_mwaa_runs() {
        assert_eq!(python_of("2.10.3"), Some((3, 11)));
        assert_eq!(python_of("3.0.6"), Some((3, 12)));
        assert_eq!(python_of("2.5.1"), Some((3, 10)));
        assert_eq!(python_of("nonsense"), None);
        assert!(has_invoke_rest_api("2.4.3") && has_invoke_rest_api("3.0.6") && !has_invoke_rest_api("2.2.2"));
        assert_eq!(bucket_of_arn("arn:aws:s3:::user-0eaf46a0829f-bucket"), Some("user-0eaf46a0829f-bucket"));
        assert_eq!(bucket_of_arn("arn:aws:s3:::"), None);
        assert_eq!(authority_of("http://127.0.0.1:8080/"), Some("127.0.0.1:8080".into()));
    }
}
