//! `pinpipe mwaa deploy|trigger|status`: flags in, the core's MWAA jobs, summaries out.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use pinpipe::config::Layers;
use pinpipe::mwaa::{DeploySummary, FileAction, StatusSummary};

use crate::{env, print, secs, Common};

#[derive(Subcommand)]
pub enum MwaaCommand {
    /// Upload the DAG folder and the pinpipe wheel (in plugins.zip, with a requirements.txt that
    /// installs it offline) to the environment's versioned bucket, then update the environment
    /// and wait until it is AVAILABLE. Unchanged files are not uploaded again.
    Deploy(DeployArgs),
    /// Start a run of the DAG (the Airflow REST API through InvokeRestApi; the Airflow CLI
    /// endpoint on environments too old for it) and print its run id.
    Trigger(TriggerArgs),
    /// The environment's state and the DAG's recent runs with the states of their tasks.
    Status(StatusArgs),
}

#[derive(Args)]
pub struct DeployArgs {
    /// Name of the MWAA environment.
    #[arg(long, env = env::ENVIRONMENT)]
    environment: Option<String>,
    /// Local DAG folder to upload [default: dags].
    #[arg(long)]
    dags: Option<PathBuf>,
    /// A wheel to put into plugins.zip (repeatable): the pinpipe wheel (`make wheel` builds the
    /// manylinux one), and the wheels of dependencies the environment lacks.
    #[arg(long = "wheel")]
    wheels: Vec<PathBuf>,
    /// A pip constraints file (Airflow's for the environment's version, say) to include, the
    /// bundled wheels' pins replacing its lines for the same packages.
    #[arg(long)]
    constraints: Option<PathBuf>,
    /// Print what would be uploaded and whether the environment would be updated; change nothing.
    #[arg(long)]
    dry_run: bool,
    /// Return once the update started instead of waiting until the environment is AVAILABLE.
    #[arg(long)]
    no_wait: bool,
    /// Seconds between looks at the environment while waiting [default: 20].
    #[arg(long)]
    poll_interval: Option<f64>,
    /// Seconds to wait for the update before giving up [default: 3600].
    #[arg(long)]
    wait_timeout: Option<f64>,
}

/// The environment and the DAG a command is about.
#[derive(Args)]
pub struct DagArgs {
    #[command(flatten)]
    common: Common,
    /// Name of the MWAA environment.
    #[arg(long, env = env::ENVIRONMENT)]
    environment: Option<String>,
    /// DAG id [default: <user id>_dag].
    #[arg(long)]
    dag: Option<String>,
}

impl DagArgs {
    fn apply(self, layers: &mut Layers) {
        self.common.apply(layers);
        layers.set("environment", self.environment).set("dag", self.dag);
    }
}

#[derive(Args)]
pub struct TriggerArgs {
    #[command(flatten)]
    target: DagArgs,
    /// The run's conf, a JSON object.
    #[arg(long)]
    conf: Option<String>,
    /// Follow the run to its end; exit non-zero if it failed.
    #[arg(long)]
    wait: bool,
    /// Seconds between looks at the run while waiting [default: 10].
    #[arg(long)]
    poll_interval: Option<f64>,
    /// Seconds to wait for the run before giving up [default: 3600].
    #[arg(long)]
    wait_timeout: Option<f64>,
}

#[derive(Args)]
pub struct StatusArgs {
    #[command(flatten)]
    target: DagArgs,
    /// How many of the most recent runs to show [default: 5].
    #[arg(long)]
    runs: Option<u32>,
}

pub async fn run(mut layers: Layers, command: MwaaCommand, json: bool) -> Result<()> {
    match command {
        MwaaCommand::Deploy(args) => {
            layers
                .set("environment", args.environment)
                .set("dags", args.dags)
                .flag("dry_run", args.dry_run)
                .flag("no_wait", args.no_wait)
                .set("constraints", args.constraints)
                .set("poll_interval", secs(args.poll_interval, "--poll-interval")?)
                .set("wait_timeout", secs(args.wait_timeout, "--wait-timeout")?)
                .flag("progress", !json);
            if !args.wheels.is_empty() {
                layers.set("wheels", Some(args.wheels));
            }
            let summary = pinpipe::jobs::mwaa_deploy(&layers).await?;
            print(json, &summary, deploy_text);
        }
        MwaaCommand::Trigger(args) => {
            args.target.apply(&mut layers);
            let conf: Option<serde_json::Value> =
                args.conf.as_deref().map(serde_json::from_str).transpose().context("--conf is not JSON")?;
            layers
                .set("conf", conf)
                .flag("wait", args.wait)
                .set("poll_interval", secs(args.poll_interval, "--poll-interval")?)
                .set("wait_timeout", secs(args.wait_timeout, "--wait-timeout")?)
                .flag("progress", !json);
            let summary = pinpipe::jobs::mwaa_trigger(&layers).await?;
            print(json, &summary, |s| {
                let mut text = format!(
                    "{}\ntriggered DAG {} on environment {} ({}, through the {})",
                    s.dag_run_id,
                    s.dag_id,
                    s.environment,
                    s.state,
                    if s.via == pinpipe::mwaa::airflow::Via::RestApi { "REST API" } else { "CLI endpoint" }
                );
                for w in &s.warnings {
                    text.push_str(&format!("\nwarning: {w}"));
                }
                text
            });
        }
        MwaaCommand::Status(args) => {
            args.target.apply(&mut layers);
            layers.set("runs", args.runs);
            let summary = pinpipe::jobs::mwaa_status(&layers).await?;
            print(json, &summary, status_text);
        }
    }
    Ok(())
}

fn deploy_text(s: &DeploySummary) -> String {
    let mut lines = vec![format!(
        "{}MWAA environment {} (Airflow {}), bucket {}, pinpipe {}",
        if s.dry_run { "dry run: " } else { "" },
        s.environment,
        s.airflow_version,
        s.bucket,
        s.pinpipe_version
    )];
    for f in &s.files {
        let action = match (f.action, s.dry_run) {
            (FileAction::Upload, true) => "to upload",
            (FileAction::Upload, false) => "uploaded",
            (FileAction::Unchanged, _) => "unchanged",
        };
        let version = f.version_id.as_deref().map(|v| format!("  version {v}")).unwrap_or_default();
        lines.push(format!("  {action:<10} {:<40} {:>10} bytes{version}", f.key, f.bytes));
    }
    lines.push(match (s.updated, s.dry_run) {
        (true, true) => "the environment would be updated to the new plugins.zip and requirements.txt".into(),
        (false, true) => "the environment would not be updated (plugins.zip and requirements.txt unchanged)".into(),
        (true, false) => format!("environment updated (plugins.zip and requirements.txt); now {}", s.status),
        (false, false) => format!("plugins.zip and requirements.txt unchanged: environment not updated ({})", s.status),
    });
    lines.extend(s.warnings.iter().map(|w| format!("warning: {w}")));
    lines.join("\n")
}

fn status_text(s: &StatusSummary) -> String {
    let mut lines = vec![format!("environment {}: {} (Airflow {})", s.environment, s.status, s.airflow_version)];
    if let Some(u) = &s.last_update {
        let mut line = format!("last update: {}", u.status.as_deref().unwrap_or("-"));
        if let Some(at) = &u.created_at {
            line.push_str(&format!(" at {at}"));
        }
        if let Some(e) = &u.error {
            line.push_str(&format!(" ({e})"));
        }
        lines.push(line);
    }
    if s.runs.is_empty() {
        lines.push(format!("DAG {}: no runs", s.dag_id));
        return lines.join("\n");
    }
    lines.push(format!("DAG {}, {} most recent runs:", s.dag_id, s.runs.len()));
    lines.push(format!("{:<44} {:<10} {:<27} {:<27} TASKS", "RUN ID", "STATE", "STARTED", "ENDED"));
    for r in &s.runs {
        let tasks = r
            .tasks
            .iter()
            .map(|t| format!("{}={}", t.task_id, t.state.as_deref().unwrap_or("none")))
            .collect::<Vec<_>>()
            .join(" ");
        lines.push(format!(
            "{:<44} {:<10} {:<27} {:<27} {}",
            r.dag_run_id,
            r.state,
            r.start_date.as_deref().unwrap_or("-"),
            r.end_date.as_deref().unwrap_or("-"),
            if tasks.is_empty() { "-".into() } else { tasks }
        ));
    }
    lines.join("\n")
}
