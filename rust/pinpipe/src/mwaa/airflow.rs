//! `pinpipe mwaa trigger` and `status`: the environment's Airflow through the Airflow REST API
//! (`InvokeRestApi`: MWAA signs nothing but the AWS request, and passes the call to the web
//! server), or, on environments too old for it (before Airflow 2.4.3, or not updated since
//! `InvokeRestApi` came), through the Airflow CLI endpoint with a `CreateCliToken` token.

use std::time::Instant;

use aws_sdk_mwaa::operation::invoke_rest_api::InvokeRestApiError;
use aws_sdk_mwaa::types::RestApiMethod;
use aws_smithy_types::{Document, Number};
use serde::Serialize;
use serde_json::{json, Value};

use super::{has_invoke_rest_api, mwaa_error, required_environment, Mwaa, StatusConfig, TriggerConfig};
use crate::error::{Error, Result};

/// How pinpipe reached the environment's Airflow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Via {
    /// `InvokeRestApi`.
    RestApi,
    /// `CreateCliToken` and the Airflow CLI endpoint.
    Cli,
}

#[derive(Debug, Clone, Serialize)]
pub struct TriggerSummary {
    pub environment: String,
    pub dag_id: String,
    pub dag_run_id: String,
    /// The run's state when the command returned (with `wait`: its final state).
    pub state: String,
    pub via: Via,
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TaskState {
    pub task_id: String,
    pub state: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct DagRunInfo {
    pub dag_run_id: String,
    pub state: String,
    pub logical_date: Option<String>,
    pub start_date: Option<String>,
    pub end_date: Option<String>,
    pub tasks: Vec<TaskState>,
}

#[derive(Debug, Clone, Serialize)]
pub struct LastUpdateInfo {
    pub status: Option<String>,
    pub created_at: Option<String>,
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct StatusSummary {
    pub environment: String,
    pub status: String,
    pub airflow_version: String,
    pub webserver_url: Option<String>,
    pub last_update: Option<LastUpdateInfo>,
    pub dag_id: String,
    pub via: Via,
    /// The DAG's most recent runs, newest first.
    pub runs: Vec<DagRunInfo>,
}

/// An environment's Airflow.
struct EnvAirflow<'a> {
    mwaa: &'a Mwaa,
    name: String,
    airflow_major: u32,
    /// `InvokeRestApi` may be tried (it is known to be missing before Airflow 2.4.3).
    rest: bool,
    /// The CLI endpoint's URL and token, kept while the token is fresh (MWAA's last 60 s), and
    /// the HTTP client that calls it: a run of CLI commands asks for one token, not one each.
    cli_session: tokio::sync::Mutex<Option<(Instant, String, String)>>,
    http: reqwest::Client,
}

/// How long a CLI token is used before a new one is asked for.
const CLI_TOKEN_REUSE: std::time::Duration = std::time::Duration::from_secs(45);

/// What Airflow answered through `InvokeRestApi`.
enum Reply {
    Ok(Value),
    /// An Airflow error status and its body.
    Failed(i32, Value),
}

impl<'a> EnvAirflow<'a> {
    async fn open(mwaa: &'a Mwaa, name: &str) -> Result<(Self, aws_sdk_mwaa::types::Environment)> {
        let env = mwaa.environment(name).await?;
        let version = env.airflow_version().unwrap_or_default();
        let airflow_major = version.split('.').next().and_then(|m| m.parse().ok()).unwrap_or(2);
        let api = EnvAirflow {
            mwaa,
            name: name.to_string(),
            airflow_major,
            rest: has_invoke_rest_api(version),
            cli_session: tokio::sync::Mutex::new(None),
            http: reqwest::Client::new(),
        };
        Ok((api, env))
    }

    /// One Airflow REST API call; `None` when the environment does not offer `InvokeRestApi`.
    async fn rest(
        &self,
        method: RestApiMethod,
        path: &str,
        query: Option<Value>,
        body: Option<Value>,
    ) -> Result<Option<Reply>> {
        if !self.rest {
            return Ok(None);
        }
        let mut request = self.mwaa.client().invoke_rest_api().name(&self.name).path(path).method(method.clone());
        if let Some(query) = query {
            request = request.query_parameters(to_document(&query));
        }
        if let Some(body) = body {
            request = request.body(to_document(&body));
        }
        match request.send().await {
            Ok(out) => Ok(Some(Reply::Ok(out.rest_api_response().map(from_document).unwrap_or(Value::Null)))),
            Err(e) => match e.as_service_error() {
                Some(InvokeRestApiError::RestApiClientException(x)) => Ok(Some(Reply::Failed(
                    x.rest_api_status_code().unwrap_or(400),
                    x.rest_api_response().map(from_document).unwrap_or(Value::Null),
                ))),
                Some(InvokeRestApiError::RestApiServerException(x)) => Ok(Some(Reply::Failed(
                    x.rest_api_status_code().unwrap_or(500),
                    x.rest_api_response().map(from_document).unwrap_or(Value::Null),
                ))),
                Some(InvokeRestApiError::ValidationException(v))
                    if v.message().is_some_and(|m| m.contains("InvokeRestApi")) =>
                {
                    tracing::info!(environment = %self.name, "InvokeRestApi is not available: using the Airflow CLI endpoint");
                    Ok(None)
                }
                _ => Err(self.mwaa.error(
                    &self.name,
                    &format!("call the Airflow REST API ({} {path})", method.as_str()),
                    e,
                )),
            },
        }
    }

    /// One Airflow CLI command through the CLI endpoint: its stdout and stderr.
    async fn cli(&self, command: &str) -> Result<(String, String)> {
        let (url, token) = self.cli_token().await?;
        let reply = self
            .http
            .post(&url)
            .bearer_auth(token)
            .header("Content-Type", "text/plain")
            .body(command.to_string())
            .send()
            .await
            .map_err(|e| self.failed("run an Airflow CLI command", format!("{url}: {e}")))?;
        let status = reply.status();
        let text = reply.text().await.unwrap_or_default();
        if !status.is_success() {
            return Err(self.failed(
                "run an Airflow CLI command",
                format!("the CLI endpoint answered {status}: {}", first_line(&text)),
            ));
        }
        let body: Value = serde_json::from_str(&text).map_err(|e| {
            self.failed("run an Airflow CLI command", format!("the CLI endpoint's reply is not JSON: {e}"))
        })?;
        let decode = |key: &str| -> Result<String> {
            use base64::Engine;
            let raw = body.get(key).and_then(Value::as_str).unwrap_or_default();
            let bytes = base64::engine::general_purpose::STANDARD.decode(raw).map_err(|e| {
                self.failed("run an Airflow CLI command", format!("the CLI endpoint's {key} is not base64: {e}"))
            })?;
            Ok(String::from_utf8_lossy(&bytes).into_owned())
        };
        let (stdout, stderr) = (decode("stdout")?, decode("stderr")?);
        tracing::debug!(command, stdout = %stdout, stderr = %stderr, "Airflow CLI");
        Ok((stdout, stderr))
    }

    /// The CLI endpoint's URL and a fresh token (`CreateCliToken`, reused for a while).
    async fn cli_token(&self) -> Result<(String, String)> {
        let mut session = self.cli_session.lock().await;
        if let Some((at, url, token)) = session.as_ref() {
            if at.elapsed() < CLI_TOKEN_REUSE {
                return Ok((url.clone(), token.clone()));
            }
        }
        let at = Instant::now();
        let out = self
            .mwaa
            .client()
            .create_cli_token()
            .name(&self.name)
            .send()
            .await
            .map_err(|e| self.mwaa.error(&self.name, "get an Airflow CLI token", e))?;
        let scheme = if self.mwaa.plain_http { "http" } else { "https" };
        let url = format!("{scheme}://{}/aws_mwaa/cli", out.web_server_hostname().unwrap_or_default());
        let token = out.cli_token().unwrap_or_default().to_string();
        *session = Some((at, url.clone(), token.clone()));
        Ok((url, token))
    }

    fn failed(&self, what: &str, message: String) -> Error {
        mwaa_error(&self.name, what, message)
    }

    fn unknown_dag(&self, dag: &str) -> Error {
        self.failed(
            "find the DAG",
            format!(
                "Airflow knows no DAG {dag:?} (is its file deployed and free of import errors? pinpipe mwaa deploy)"
            ),
        )
    }

    /// An Airflow error status as an error.
    fn airflow_error(&self, what: &str, dag: &str, status: i32, body: &Value) -> Error {
        if status == 404 {
            return self.unknown_dag(dag);
        }
        let detail = body
            .get("detail")
            .or_else(|| body.get("title"))
            .map(|d| d.as_str().map(str::to_string).unwrap_or_else(|| d.to_string()))
            .unwrap_or_else(|| body.to_string());
        self.failed(what, format!("Airflow answered {status}: {detail}"))
    }

    /// A run's state (`None`: the run is not listed).
    async fn run_state(&self, via: Via, dag: &str, run_id: &str) -> Result<Option<String>> {
        if via == Via::RestApi {
            let path = format!("/dags/{}/dagRuns/{}", segment(dag), segment(run_id));
            return match self.rest(RestApiMethod::Get, &path, None, None).await? {
                Some(Reply::Ok(run)) => Ok(run.get("state").and_then(Value::as_str).map(str::to_string)),
                Some(Reply::Failed(404, _)) => Ok(None),
                Some(Reply::Failed(status, body)) => Err(self.airflow_error("read the run", dag, status, &body)),
                None => Err(self.failed("read the run", "InvokeRestApi went away".into())),
            };
        }
        let runs = self.cli_runs(dag).await?;
        Ok(runs.into_iter().find(|r| r.dag_run_id == run_id).map(|r| r.state))
    }

    async fn cli_runs(&self, dag: &str) -> Result<Vec<DagRunInfo>> {
        // Airflow 3 takes the DAG id as an argument, Airflow 2 as `-d`.
        let flag = if self.airflow_major >= 3 { "" } else { "-d " };
        let (stdout, stderr) = self.cli(&format!("dags list-runs {flag}{} -o json", quote(dag))).await?;
        let Some(list) = json_in(&stdout).and_then(|v| v.as_array().cloned()) else {
            if names_unknown_dag(&stderr) || names_unknown_dag(&stdout) {
                return Err(self.unknown_dag(dag));
            }
            return Err(
                self.failed("list the DAG's runs", format!("the CLI printed no run list: {}", last_line(&stderr)))
            );
        };
        Ok(list
            .iter()
            .map(|r| DagRunInfo {
                dag_run_id: text(r, "run_id").unwrap_or_default(),
                state: text(r, "state").unwrap_or_default(),
                logical_date: text(r, "logical_date")
                    .filter(|d| !d.is_empty())
                    .or_else(|| text(r, "execution_date"))
                    .or_else(|| text(r, "run_after")),
                start_date: text(r, "start_date"),
                end_date: text(r, "end_date"),
                tasks: Vec::new(),
            })
            .collect())
    }
}

/// `pinpipe mwaa trigger`: starts a run of the DAG and returns its id (with `wait`, once it ended;
/// a failed run is an error).
pub async fn trigger(config: &TriggerConfig) -> Result<TriggerSummary> {
    let name = required_environment(&config.environment)?;
    let dag = config.dag.clone().unwrap_or_else(|| config.user_id.dag_id());
    let conf = match &config.conf {
        None | Some(Value::Null) => json!({}),
        Some(Value::Object(map)) => Value::Object(map.clone()),
        Some(_) => return Err(Error::Config("conf: a DAG run's conf must be a JSON object".into())),
    };
    let mwaa = Mwaa::connect(&config.aws).await;
    let (api, _) = EnvAirflow::open(&mwaa, &name).await?;
    let mut warnings = Vec::new();
    let mut outcome = None;
    if let Some(reply) = api.rest(RestApiMethod::Get, &format!("/dags/{}", segment(&dag)), None, None).await? {
        match reply {
            Reply::Failed(status, body) => return Err(api.airflow_error("trigger the DAG", &dag, status, &body)),
            Reply::Ok(info) => {
                if info.get("is_paused").and_then(Value::as_bool) == Some(true) {
                    warnings.push(format!("DAG {dag} is paused: the run waits in the queue until the DAG is unpaused"));
                }
            }
        }
        let body =
            if api.airflow_major >= 3 { json!({"logical_date": null, "conf": conf}) } else { json!({"conf": conf}) };
        match api.rest(RestApiMethod::Post, &format!("/dags/{}/dagRuns", segment(&dag)), None, Some(body)).await? {
            Some(Reply::Ok(run)) => {
                let id = text(&run, "dag_run_id")
                    .ok_or_else(|| api.failed("trigger the DAG", "Airflow returned no run id".into()))?;
                outcome = Some((id, text(&run, "state").unwrap_or_else(|| "queued".into()), Via::RestApi));
            }
            Some(Reply::Failed(status, body)) => return Err(api.airflow_error("trigger the DAG", &dag, status, &body)),
            None => {}
        }
    }
    let (dag_run_id, mut state, via) = match outcome {
        Some(outcome) => outcome,
        None => {
            let run_id = format!("pinpipe__{}", chrono::Utc::now().format("%Y%m%dT%H%M%S%6f"));
            let command = format!("dags trigger {} -r {} -c {}", quote(&dag), quote(&run_id), quote(&conf.to_string()));
            let (stdout, stderr) = api.cli(&command).await?;
            if names_unknown_dag(&stdout) || names_unknown_dag(&stderr) {
                return Err(api.unknown_dag(&dag));
            }
            // The CLI's table wraps with the terminal's width: the run list says whether it started.
            if !api.cli_runs(&dag).await?.iter().any(|r| r.dag_run_id == run_id) {
                return Err(api.failed(
                    "trigger the DAG",
                    format!("the Airflow CLI did not start a run: {}", last_line(&stderr)),
                ));
            }
            (run_id, "queued".to_string(), Via::Cli)
        }
    };
    tracing::info!(environment = %name, dag = %dag, run = %dag_run_id, "triggered");
    if config.wait {
        let begin = Instant::now();
        let bar = super::spinner(config.progress);
        loop {
            bar.set_message(format!("{dag} {dag_run_id}: {state} ({} s)", begin.elapsed().as_secs()));
            if matches!(state.as_str(), "success" | "failed") {
                break;
            }
            if begin.elapsed() >= config.wait_timeout {
                bar.finish_and_clear();
                return Err(api.failed(
                    "wait for the run",
                    format!("run {dag_run_id} is still {state} after {} s (wait_timeout)", begin.elapsed().as_secs()),
                ));
            }
            tokio::time::sleep(config.poll_interval).await;
            state = api.run_state(via, &dag, &dag_run_id).await?.unwrap_or(state);
        }
        bar.finish_and_clear();
        if state == "failed" {
            return Err(api.failed("run the DAG", format!("run {dag_run_id} of {dag} failed (pinpipe mwaa status)")));
        }
    }
    Ok(TriggerSummary { environment: name, dag_id: dag, dag_run_id, state, via, warnings })
}

/// `pinpipe mwaa status`: the environment's state and the DAG's recent runs with their tasks.
pub async fn status(config: &StatusConfig) -> Result<StatusSummary> {
    let name = required_environment(&config.environment)?;
    let dag = config.dag.clone().unwrap_or_else(|| config.user_id.dag_id());
    let mwaa = Mwaa::connect(&config.aws).await;
    let (api, env) = EnvAirflow::open(&mwaa, &name).await?;
    let limit = config.runs.max(1);
    let order = if api.airflow_major >= 3 { "-run_after" } else { "-execution_date" };
    let runs_path = format!("/dags/{}/dagRuns", segment(&dag));
    let query = json!({"limit": limit, "order_by": order});
    let (runs, via) = match api.rest(RestApiMethod::Get, &runs_path, Some(query), None).await? {
        Some(Reply::Ok(body)) => {
            let mut runs = Vec::new();
            for r in body.get("dag_runs").and_then(Value::as_array).cloned().unwrap_or_default() {
                let id = text(&r, "dag_run_id").unwrap_or_default();
                let path = format!("{runs_path}/{}/taskInstances", segment(&id));
                let tasks = match api.rest(RestApiMethod::Get, &path, None, None).await? {
                    Some(Reply::Ok(t)) => task_states(t.get("task_instances")),
                    _ => Vec::new(),
                };
                runs.push(DagRunInfo {
                    state: text(&r, "state").unwrap_or_default(),
                    logical_date: text(&r, "logical_date"),
                    start_date: text(&r, "start_date"),
                    end_date: text(&r, "end_date"),
                    dag_run_id: id,
                    tasks,
                });
            }
            (runs, Via::RestApi)
        }
        Some(Reply::Failed(status, body)) => return Err(api.airflow_error("read the DAG's runs", &dag, status, &body)),
        None => {
            let mut runs = api.cli_runs(&dag).await?;
            runs.sort_by(|a, b| b.logical_date.cmp(&a.logical_date));
            runs.truncate(limit as usize);
            for run in &mut runs {
                let command = format!("tasks states-for-dag-run {} {} -o json", quote(&dag), quote(&run.dag_run_id));
                let (stdout, _) = api.cli(&command).await?;
                run.tasks = task_states(json_in(&stdout).as_ref());
            }
            (runs, Via::Cli)
        }
    };
    let last_update = env.last_update().map(|u| LastUpdateInfo {
        status: u.status().map(|s| s.as_str().to_string()),
        created_at: u.created_at().and_then(|t| t.fmt(aws_smithy_types::date_time::Format::DateTime).ok()),
        error: u
            .error()
            .map(|e| format!("{}: {}", e.error_code().unwrap_or("UNKNOWN"), e.error_message().unwrap_or(""))),
    });
    Ok(StatusSummary {
        environment: name,
        status: env.status().map(|s| s.as_str().to_string()).unwrap_or_default(),
        airflow_version: env.airflow_version().unwrap_or_default().to_string(),
        webserver_url: env.webserver_url().map(str::to_string),
        last_update,
        dag_id: dag,
        via,
        runs,
    })
}

fn task_states(list: Option<&Value>) -> Vec<TaskState> {
    let mut tasks: Vec<TaskState> = list
        .and_then(Value::as_array)
        .map(|l| {
            l.iter()
                .map(|t| TaskState { task_id: text(t, "task_id").unwrap_or_default(), state: text(t, "state") })
                .collect()
        })
        .unwrap_or_default();
    tasks.sort_by(|a, b| a.task_id.cmp(&b.task_id));
    tasks
}

/// Whether Airflow's CLI output says the DAG is unknown (2.x: "Dag id X not found", DagNotFound;
/// 3.x: "DAG: X does not exist in 'dag' table").
fn names_unknown_dag(out: &str) -> bool {
    out.contains("not found") || out.contains("DagNotFound") || out.contains("does not exist in 'dag' table")
}

fn text(v: &Value, key: &str) -> Option<String> {
    v.get(key).and_then(Value::as_str).map(str::to_string)
}

/// The JSON array or object a CLI printed: the first line starting one that parses (log and
/// warning lines may come before it, some of them starting with `[`).
fn json_in(out: &str) -> Option<Value> {
    let mut offset = 0;
    for line in out.split_inclusive('\n') {
        let start = offset + (line.len() - line.trim_start().len());
        offset += line.len();
        if !line.trim_start().starts_with(['[', '{']) {
            continue;
        }
        if let Some(Ok(value)) = serde_json::Deserializer::from_str(&out[start..]).into_iter::<Value>().next() {
            return Some(value);
        }
    }
    None
}

fn first_line(text: &str) -> &str {
    text.lines().find(|l| !l.trim().is_empty()).unwrap_or("").trim()
}

fn last_line(text: &str) -> &str {
    text.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("(no output)").trim()
}

/// A word for the Airflow CLI command line (split like a shell does).
fn quote(word: &str) -> String {
    if !word.is_empty() && word.bytes().all(|b| b.is_ascii_alphanumeric() || b"_-.:+/@=,".contains(&b)) {
        return word.to_string();
    }
    format!("'{}'", word.replace('\'', r"'\''"))
}

/// A URL path segment, percent-encoded (run ids hold `+` and `:`).
fn segment(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn to_document(value: &Value) -> Document {
    match value {
        Value::Null => Document::Null,
        Value::Bool(b) => Document::Bool(*b),
        Value::Number(n) => Document::Number(if let Some(u) = n.as_u64() {
            Number::PosInt(u)
        } else if let Some(i) = n.as_i64() {
            Number::NegInt(i)
        } else {
            Number::Float(n.as_f64().unwrap_or(0.0))
        }),
        Value::String(s) => Document::String(s.clone()),
        Value::Array(a) => Document::Array(a.iter().map(to_document).collect()),
        Value::Object(o) => Document::Object(o.iter().map(|(k, v)| (k.clone(), to_document(v))).collect()),
    }
}

fn from_document(document: &Document) -> Value {
    match document {
        Document::Null => Value::Null,
        Document::Bool(b) => Value::Bool(*b),
        Document::Number(Number::PosInt(u)) => json!(u),
        Document::Number(Number::NegInt(i)) => json!(i),
        Document::Number(Number::Float(f)) => json!(f),
        Document::String(s) => Value::String(s.clone()),
        Document::Array(a) => Value::Array(a.iter().map(from_document).collect()),
        Document::Object(o) => Value::Object(o.iter().map(|(k, v)| (k.clone(), from_document(v))).collect()),
        #[allow(unreachable_patterns)]
        _ => Value::Null,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_round_trip() {
        let v = json!({"conf": {"a": [1, -2, 2.5, "x", null, true]}, "logical_date": null});
        assert_eq!(from_document(&to_document(&v)), v);
    }

    #[test]
    fn cli_words_and_path_segments_are_quoted() {
        assert_eq!(quote("0eaf46a0829f_dag"), "0eaf46a0829f_dag");
        assert_eq!(quote(r#"{"a": "it's"}"#), r#"'{"a": "it'\''s"}'"#);
        assert_eq!(segment("manual__2026-12-07T00:00:00+00:00"), "manual__2026-12-07T00%3A00%3A00%2B00%3A00");
        assert_eq!(json_in("INFO loading\n[{\"run_id\": \"r\"}]\n").unwrap()[0]["run_id"], "r");
        let logged = "2026-12-07T03:16:43Z [warning  ] graphviz\n[2026-12-07 03:16:43] {cli.py} INFO\n[]\n";
        assert_eq!(json_in(logged), Some(json!([])));
        assert_eq!(json_in("no json here [x"), None);
    }
}
