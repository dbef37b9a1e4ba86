//! `pinpipe mwaa deploy`: the DAG folder, `plugins.zip` and `requirements.txt` into the
//! environment's versioned bucket — only what changed — then `UpdateEnvironment` with the new
//! object versions, and a wait until MWAA has applied them (or says why it could not).

use std::path::Path;
use std::time::{Instant, SystemTime};

use aws_sdk_mwaa::types::{EnvironmentStatus, UpdateStatus};
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata};
use aws_sdk_s3::types::BucketVersioningStatus;
use md5::{Digest, Md5};
use serde::Serialize;

use super::bundle::{self, Wheel};
use super::{bucket_of_arn, mwaa_error, python_of, required_environment, DeployConfig, Mwaa, PLUGINS_DIR};
use crate::error::{Error, Result};

/// What deploy does with one file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FileAction {
    /// New or changed: uploaded (or, in a dry run, would be).
    Upload,
    /// The bucket holds the same bytes already.
    Unchanged,
}

/// One file of the deploy.
#[derive(Debug, Clone, Serialize)]
pub struct FilePlan {
    /// Key in the environment's bucket.
    pub key: String,
    pub action: FileAction,
    pub bytes: u64,
    /// The object version the environment is to use (none in a dry run's uploads).
    pub version_id: Option<String>,
}

/// What `deploy` did (or, with `dry_run`, would do).
#[derive(Debug, Clone, Serialize)]
pub struct DeploySummary {
    pub environment: String,
    pub bucket: String,
    pub airflow_version: String,
    pub dry_run: bool,
    pub files: Vec<FilePlan>,
    /// Files uploaded (in a dry run: to upload).
    pub uploaded: usize,
    /// Whether `UpdateEnvironment` was called (in a dry run: would be).
    pub updated: bool,
    /// The environment's status at the end.
    pub status: String,
    pub plugins_version: Option<String>,
    pub requirements_version: Option<String>,
    /// The pinpipe version the environment installs.
    pub pinpipe_version: String,
    pub warnings: Vec<String>,
}

pub async fn deploy(config: &DeployConfig) -> Result<DeploySummary> {
    let name = required_environment(&config.environment)?;
    // Local inputs first: a missing wheel or folder fails before any call to AWS.
    let wheels = config.wheels.iter().map(|p| Wheel::from_path(p)).collect::<Result<Vec<_>>>()?;
    for wheel in &wheels {
        if !wheel.path.is_file() {
            return Err(Error::Config(format!("wheels: {} does not exist", wheel.path.display())));
        }
    }
    let user_constraints = match &config.constraints {
        Some(path) => {
            Some(std::fs::read_to_string(path).map_err(|source| Error::ReadFile { path: path.clone(), source })?)
        }
        None => None,
    };
    let dag_files = dag_files(&config.dags)?;
    let bundle = bundle::build(&wheels, user_constraints.as_deref(), PLUGINS_DIR)?;

    let mwaa = Mwaa::connect(&config.aws).await;
    let env = mwaa.environment(&name).await?;
    let status = env.status().map(|s| s.as_str().to_string()).unwrap_or_default();
    if !matches!(env.status(), Some(EnvironmentStatus::Available | EnvironmentStatus::UpdateFailed)) {
        return Err(mwaa_error(
            &name,
            "deploy",
            format!("the environment is {status}, not AVAILABLE: deploy again once it is (pinpipe mwaa status)"),
        ));
    }
    let airflow_version = env.airflow_version().unwrap_or_default().to_string();
    let mut warnings = Vec::new();
    match python_of(&airflow_version) {
        Some(python) => {
            if let Some(why) = bundle.wheels.iter().find_map(|w| w.incompatibility(python)) {
                return Err(Error::Config(format!("wheels: {why}")));
            }
        }
        None => warnings.push(format!(
            "Airflow {airflow_version}: not a version whose Python is known here; wheels not checked against it"
        )),
    }
    for wheel in bundle.wheels.iter().filter(|w| !w.is_portable()) {
        warnings.push(format!(
            "{} is tagged {}: it links this machine's libraries; `make wheel` builds the manylinux wheel MWAA's \
             Amazon Linux can load",
            wheel.file_name, wheel.platform
        ));
    }
    let bucket = env
        .source_bucket_arn()
        .and_then(bucket_of_arn)
        .ok_or_else(|| mwaa_error(&name, "deploy", "the environment names no source bucket".into()))?
        .to_string();
    let dag_prefix = env.dag_s3_path().unwrap_or("dags").trim_matches('/').to_string();
    let plugins_key = env.plugins_s3_path().unwrap_or("plugins.zip").trim_start_matches('/').to_string();
    let requirements_key = env.requirements_s3_path().unwrap_or("requirements.txt").trim_start_matches('/').to_string();

    let s3 = crate::landing::s3_client(&config.aws).await;
    let s3_error = |what: String, e: &dyn std::fmt::Display| mwaa_error(&name, "deploy", format!("{what}: {e}"));
    let versioned = match s3.get_bucket_versioning().bucket(&bucket).send().await {
        Ok(versioning) => versioning.status() == Some(&BucketVersioningStatus::Enabled),
        // An S3-compatible server may name the reply's root element otherwise (moto does); the
        // SDK then cannot parse it, but the status in it is still the answer.
        Err(e) if e.code().is_none() && e.raw_response().is_some() => e
            .raw_response()
            .and_then(|r| r.body().bytes())
            .is_some_and(|body| String::from_utf8_lossy(body).contains("<Status>Enabled</Status>")),
        Err(e) => return Err(s3_error(format!("read the versioning of bucket {bucket}"), &DisplayErrorContext(&e))),
    };
    if !versioned {
        return Err(mwaa_error(
            &name,
            "deploy",
            format!("bucket {bucket} is not versioned: MWAA reads plugins and requirements by object version (enable versioning on it)"),
        ));
    }

    let mut objects: Vec<(String, bytes::Bytes)> =
        dag_files.into_iter().map(|(rel, bytes)| (format!("{dag_prefix}/{rel}"), bytes.into())).collect();
    objects.push((plugins_key.clone(), bundle.plugins_zip.into()));
    objects.push((requirements_key.clone(), bundle.requirements.into()));

    let mut files = Vec::with_capacity(objects.len());
    for (key, bytes) in &objects {
        let md5 = hex(&Md5::digest(bytes));
        let head = s3.head_object().bucket(&bucket).key(key).send().await;
        let current = match head {
            Ok(head) => {
                let same = head.metadata().and_then(|m| m.get(MD5_META)).is_some_and(|m| *m == md5)
                    || head.e_tag().map(|t| t.trim_matches('"')) == Some(md5.as_str());
                same.then(|| head.version_id().map(str::to_string))
            }
            Err(e) if e.as_service_error().is_some_and(|s| s.is_not_found()) => None,
            Err(e) => return Err(s3_error(format!("read s3://{bucket}/{key}"), &DisplayErrorContext(&e))),
        };
        let (action, version_id) = match current {
            Some(version) => (FileAction::Unchanged, version),
            None if config.dry_run => (FileAction::Upload, None),
            None => {
                let put = s3
                    .put_object()
                    .bucket(&bucket)
                    .key(key)
                    .metadata(MD5_META, &md5)
                    .body(aws_sdk_s3::primitives::ByteStream::from(bytes.clone()))
                    .send()
                    .await
                    .map_err(|e| s3_error(format!("upload s3://{bucket}/{key}"), &DisplayErrorContext(&e)))?;
                tracing::info!(key = %key, bytes = bytes.len(), version = put.version_id().unwrap_or(""), "uploaded");
                (FileAction::Upload, put.version_id().map(str::to_string))
            }
        };
        files.push(FilePlan { key: key.clone(), action, bytes: bytes.len() as u64, version_id });
    }
    let version_of = |key: &str| files.iter().find(|f| f.key == key).and_then(|f| f.version_id.clone());
    let plugins_version = version_of(&plugins_key);
    let requirements_version = version_of(&requirements_key);
    let uploaded = files.iter().filter(|f| f.action == FileAction::Upload).count();
    let changed = |key: &str| files.iter().any(|f| f.key == key && f.action == FileAction::Upload);
    let updated = changed(&plugins_key)
        || changed(&requirements_key)
        || env.plugins_s3_path() != Some(plugins_key.as_str())
        || env.requirements_s3_path() != Some(requirements_key.as_str())
        || env.plugins_s3_object_version() != plugins_version.as_deref()
        || env.requirements_s3_object_version() != requirements_version.as_deref();
    let mut summary = DeploySummary {
        environment: name.clone(),
        bucket: bucket.clone(),
        airflow_version,
        dry_run: config.dry_run,
        files,
        uploaded,
        updated,
        status,
        plugins_version: plugins_version.clone(),
        requirements_version: requirements_version.clone(),
        pinpipe_version: bundle.pinpipe_version,
        warnings,
    };
    if config.dry_run || !updated {
        return Ok(summary);
    }
    let (Some(plugins_version), Some(requirements_version)) = (plugins_version, requirements_version) else {
        return Err(mwaa_error(
            &name,
            "deploy",
            format!("bucket {bucket} gave no object version: is versioning suspended?"),
        ));
    };
    let started = SystemTime::now();
    mwaa.client()
        .update_environment()
        .name(&name)
        .plugins_s3_path(&plugins_key)
        .plugins_s3_object_version(&plugins_version)
        .requirements_s3_path(&requirements_key)
        .requirements_s3_object_version(&requirements_version)
        .send()
        .await
        .map_err(|e| mwaa.error(&name, "update", e))?;
    tracing::info!(environment = %name, plugins = %plugins_version, requirements = %requirements_version, "environment update started");
    summary.status = if config.no_wait {
        "UPDATING".into()
    } else {
        wait_until_applied(&mwaa, &name, (&plugins_version, &requirements_version), started, config).await?
    };
    Ok(summary)
}

/// Metadata key holding an object's MD5 (its ETag is not one under SSE-KMS or multipart uploads).
const MD5_META: &str = "pinpipe-md5";

/// Polls the environment until it runs the given plugins and requirements versions; an update
/// MWAA reports failed is an error carrying MWAA's reason.
async fn wait_until_applied(
    mwaa: &Mwaa,
    name: &str,
    (plugins, requirements): (&str, &str),
    started: SystemTime,
    config: &DeployConfig,
) -> Result<String> {
    let started_secs = aws_sdk_mwaa::primitives::DateTime::from(started).secs() - 1;
    let begin = Instant::now();
    let bar = super::spinner(config.progress);
    loop {
        let env = mwaa.environment(name).await?;
        let status = env.status().map(|s| s.as_str().to_string()).unwrap_or_default();
        bar.set_message(format!("environment {name}: {status} ({} s)", begin.elapsed().as_secs()));
        let applied = env.plugins_s3_object_version() == Some(plugins)
            && env.requirements_s3_object_version() == Some(requirements);
        let settled = matches!(env.status(), Some(EnvironmentStatus::Available | EnvironmentStatus::UpdateFailed));
        if applied && env.status() == Some(&EnvironmentStatus::Available) {
            bar.finish_and_clear();
            return Ok(status);
        }
        let failed = env.last_update().filter(|u| {
            u.status() == Some(&UpdateStatus::Failed) && u.created_at().is_none_or(|t| t.secs() >= started_secs)
        });
        if let (true, Some(update)) = (settled, failed) {
            bar.finish_and_clear();
            let (code, message) = update
                .error()
                .map(|e| (e.error_code().unwrap_or("UNKNOWN"), e.error_message().unwrap_or("no reason given")))
                .unwrap_or(("UNKNOWN", "no reason given"));
            return Err(mwaa_error(
                name,
                "update",
                format!("MWAA could not apply the update ({status}): {code}: {message}"),
            ));
        }
        if matches!(
            env.status(),
            Some(
                EnvironmentStatus::CreateFailed
                    | EnvironmentStatus::Unavailable
                    | EnvironmentStatus::Deleting
                    | EnvironmentStatus::Deleted
            )
        ) {
            bar.finish_and_clear();
            return Err(mwaa_error(name, "update", format!("the environment became {status}")));
        }
        if begin.elapsed() >= config.wait_timeout {
            bar.finish_and_clear();
            return Err(mwaa_error(
                name,
                "update",
                format!(
                    "still {status} after {} s (wait_timeout); the update goes on: pinpipe mwaa status --environment {name}",
                    begin.elapsed().as_secs()
                ),
            ));
        }
        tokio::time::sleep(config.poll_interval).await;
    }
}

/// The files of the DAG folder, as (path relative to it with `/`, bytes), sorted; caches and
/// hidden files left out.
fn dag_files(dir: &Path) -> Result<Vec<(String, Vec<u8>)>> {
    if !dir.is_dir() {
        return Err(Error::Config(format!("dags: {} is not a folder", dir.display())));
    }
    let mut out = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(folder) = pending.pop() {
        let entries = std::fs::read_dir(&folder).map_err(Error::io(format!("list {}", folder.display())))?;
        for entry in entries {
            let entry = entry.map_err(Error::io(format!("list {}", folder.display())))?;
            let path = entry.path();
            let file_name = entry.file_name().to_string_lossy().to_string();
            if file_name.starts_with('.') || file_name == "__pycache__" || file_name.ends_with(".pyc") {
                continue;
            }
            if path.is_dir() {
                pending.push(path);
            } else {
                let rel = path.strip_prefix(dir).unwrap_or(&path);
                let rel = rel.components().map(|c| c.as_os_str().to_string_lossy()).collect::<Vec<_>>().join("/");
                let bytes = std::fs::read(&path).map_err(Error::io(format!("read {}", path.display())))?;
                out.push((rel, bytes));
            }
        }
    }
    out.sort();
    Ok(out)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dag_folder_leaves_caches_out() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a_dag.py"), "x").unwrap();
        std::fs::create_dir_all(dir.path().join("__pycache__")).unwrap();
        std::fs::write(dir.path().join("__pycache__/a_dag.cpython-311.pyc"), "x").unwrap();
        std::fs::create_dir_all(dir.path().join("lib")).unwrap();
        std::fs::write(dir.path().join("lib/helpers.py"), "y").unwrap();
        std::fs::write(dir.path().join(".hidden"), "z").unwrap();
        let files: Vec<String> = dag_files(dir.path()).unwrap().into_iter().map(|(k, _)| k).collect();
        assert_eq!(files, vec!["a_dag.py", "lib/helpers.py"]);
        assert!(dag_files(&dir.path().join("missing")).is_err());
    }
}
