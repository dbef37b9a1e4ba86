//! The one configuration layer of every front (CLI, Python, Airflow).
//!
//! A job's settings are its config struct (`SinkConfig`, `BatchConfig`, ...), resolved here from
//! four layers, last wins:
//!
//! 1. the struct's documented defaults;
//! 2. the YAML file (`--config`, `config=`): one flat document whose keys are the long flags with
//!    underscores (`user_id`, `bootstrap_servers`, `kafka_properties`, `aws`, ...), shared by all
//!    jobs; a key no job knows is an error (a typo), a key another job uses is ignored;
//! 3. `PINPIPE_<KEY>` environment variables (`PINPIPE_FLUSH_SIZE=10`), for the job's own keys;
//! 4. what the front was given explicitly: flags, keyword arguments, operator fields.
//!
//! A front hands over only what the user gave ([`Layers`]); it never merges by hand.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use figment::providers::{Format, Serialized, Yaml};
use figment::value::{Dict, Map, Value};
use figment::{Figment, Metadata, Profile, Provider};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Prefix of every environment variable pinpipe reads.
pub const ENV_PREFIX: &str = "PINPIPE_";

/// Environment variables that are not job settings.
pub mod env {
    /// The YAML configuration file.
    pub const CONFIG: &str = "PINPIPE_CONFIG";
    /// A `tracing` filter for the log output (`info,pinpipe=debug`).
    pub const LOG: &str = "PINPIPE_LOG";
}

/// What a front was given: a configuration file, and the settings set explicitly (flags, keyword
/// arguments), as JSON values keyed like the file.
#[derive(Debug, Clone, Default)]
pub struct Layers {
    pub file: Option<PathBuf>,
    pub given: serde_json::Map<String, serde_json::Value>,
    /// Settings a front passes to every job alike (the CLI's shared flags, whose values may come
    /// from `PINPIPE_*` through clap): each applies to the jobs that have the key and is ignored
    /// by the others, so `PINPIPE_BOOTSTRAP_SERVERS` in the shell does not break `pinpipe batch`.
    pub shared: serde_json::Map<String, serde_json::Value>,
    /// Read `PINPIPE_*` variables (on by default; tests turn it off).
    pub no_env: bool,
}

impl Layers {
    pub fn new(file: Option<PathBuf>) -> Self {
        Layers { file, given: Default::default(), shared: Default::default(), no_env: false }
    }

    /// Sets one explicit setting (`None` leaves the key to the lower layers).
    pub fn set<V: Serialize>(&mut self, key: &str, value: Option<V>) -> &mut Self {
        if let Some(value) = value {
            let value = serde_json::to_value(value).expect("settings serialize to JSON");
            self.given.insert(key.to_string(), value);
        }
        self
    }

    /// Sets a setting shared by every job: applied to the jobs whose config has `key`, ignored by
    /// the rest (an explicit [`set`](Self::set) of the same key wins).
    pub fn set_shared<V: Serialize>(&mut self, key: &str, value: Option<V>) -> &mut Self {
        if let Some(value) = value {
            let value = serde_json::to_value(value).expect("settings serialize to JSON");
            self.shared.insert(key.to_string(), value);
        }
        self
    }

    /// Sets a flag only when it is on (an absent switch leaves the key to the lower layers).
    pub fn flag(&mut self, key: &str, on: bool) -> &mut Self {
        if on {
            self.given.insert(key.to_string(), serde_json::Value::Bool(true));
        }
        self
    }

    /// Resolves a job's config struct from the four layers.
    pub fn resolve<T: Settings>(&self) -> Result<T> {
        let keys = field_names::<T>();
        let mut figment = Figment::from(Serialized::defaults(T::default()));
        if let Some(path) = &self.file {
            figment = figment.merge(Only { inner: file_provider(path)?, keys: keys.clone() });
        }
        if !self.no_env {
            figment = figment.merge(EnvLayer { keys: keys.clone() });
        }
        let given: Dict = self
            .shared
            .iter()
            .filter(|(k, _)| keys.contains(&k.as_str()) && !self.given.contains_key(k.as_str()))
            .chain(self.given.iter())
            .map(|(k, v)| Ok((k.clone(), Value::serialize(v).map_err(|e| Error::Config(e.to_string()))?)))
            .collect::<Result<_>>()?;
        figment = figment.merge(Given(given));
        figment.extract_lossy::<T>().map_err(|e| Error::Config(describe(e)))
    }
}

/// A job's config struct: serde (with `deny_unknown_fields`) and documented defaults.
pub trait Settings: Serialize + DeserializeOwned + Default {}
impl<T: Serialize + DeserializeOwned + Default> Settings for T {}

/// Every key of the configuration file: the union of the jobs' settings.
pub fn file_keys() -> BTreeSet<&'static str> {
    let mut keys = BTreeSet::new();
    keys.extend(field_names::<crate::sink::SinkConfig>());
    keys.extend(field_names::<crate::batch::BatchConfig>());
    keys.extend(field_names::<crate::emulate::EmulateConfig>());
    keys.extend(field_names::<crate::emulate::LandingWriteConfig>());
    keys.extend(field_names::<crate::gateway::GatewayConfig>());
    keys.extend(field_names::<crate::demo::DemoConfig>());
    keys.extend(field_names::<crate::query::QueryConfig>());
    keys.extend(field_names::<crate::kafka::AdminConfig>());
    keys.extend(field_names::<crate::kinesis::admin::StreamsConfig>());
    keys.extend(field_names::<crate::stream::StreamConfig>());
    keys.extend(field_names::<crate::mwaa::DeployConfig>());
    keys.extend(field_names::<crate::mwaa::TriggerConfig>());
    keys.extend(field_names::<crate::mwaa::StatusConfig>());
    keys
}

/// Reads and checks the YAML file: it must exist, be a mapping, and hold only known keys.
fn file_provider(path: &Path) -> Result<figment::providers::Data<Yaml>> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::ReadFile { path: path.to_path_buf(), source })?;
    let doc: serde_yaml::Value = serde_yaml::from_str(&text)
        .map_err(|e| Error::ParseFile { path: path.to_path_buf(), message: e.to_string() })?;
    let known = file_keys();
    match &doc {
        serde_yaml::Value::Null => {}
        serde_yaml::Value::Mapping(map) => {
            for key in map.keys() {
                let key = key.as_str().unwrap_or_default();
                if !known.contains(key) {
                    let known: Vec<&str> = known.iter().copied().collect();
                    return Err(Error::ParseFile {
                        path: path.to_path_buf(),
                        message: format!("unknown key {key:?}; known keys: {}", known.join(", ")),
                    });
                }
            }
        }
        _ => {
            return Err(Error::ParseFile { path: path.to_path_buf(), message: "expected a mapping of settings".into() })
        }
    }
    Ok(Yaml::string(&text))
}

/// A provider narrowed to some keys (the file holds the keys of every job).
struct Only<P> {
    inner: P,
    keys: Vec<&'static str>,
}

impl<P: Provider> Provider for Only<P> {
    fn metadata(&self) -> Metadata {
        Metadata::named("configuration file")
    }

    fn data(&self) -> figment::Result<Map<Profile, Dict>> {
        let mut data = self.inner.data()?;
        for dict in data.values_mut() {
            dict.retain(|k, _| self.keys.contains(&k.as_str()));
        }
        Ok(data)
    }
}

/// The settings a front was given (flags, keyword arguments).
struct Given(Dict);

impl Provider for Given {
    fn metadata(&self) -> Metadata {
        Metadata::named("arguments")
    }

    fn data(&self) -> figment::Result<Map<Profile, Dict>> {
        Ok(Map::from([(Profile::Default, self.0.clone())]))
    }
}

/// `PINPIPE_<KEY>` for each of a job's keys, as text (converted to the field's type on extract).
struct EnvLayer {
    keys: Vec<&'static str>,
}

impl Provider for EnvLayer {
    fn metadata(&self) -> Metadata {
        Metadata::named("environment")
    }

    fn data(&self) -> figment::Result<Map<Profile, Dict>> {
        let mut dict = Dict::new();
        for key in &self.keys {
            if let Ok(value) = std::env::var(env_name(key)) {
                dict.insert(key.to_string(), Value::from(value));
            }
        }
        Ok(Map::from([(Profile::Default, dict)]))
    }
}

/// The environment variable of a setting: `flush_size` → `PINPIPE_FLUSH_SIZE`.
pub fn env_name(key: &str) -> String {
    format!("{ENV_PREFIX}{}", key.to_ascii_uppercase())
}

/// One line naming the key and the layer it came from, without the value (it may be a secret).
fn describe(error: figment::Error) -> String {
    let mut parts = Vec::new();
    for e in error {
        let key = e.path.join(".");
        let kind = match &e.kind {
            figment::error::Kind::InvalidType(_, expected) => format!("expected {expected}"),
            figment::error::Kind::InvalidValue(_, expected) => format!("invalid value, expected {expected}"),
            other => other.to_string(),
        };
        let from = match &e.metadata {
            Some(m) if m.name == "environment" => format!(" (from {})", env_name(&key)),
            Some(m) if m.name == "configuration file" || m.name == "arguments" => format!(" (from the {})", m.name),
            Some(_) => " (from the defaults)".to_string(),
            None => String::new(),
        };
        parts.push(if key.is_empty() { format!("{kind}{from}") } else { format!("{key}: {kind}{from}") });
    }
    parts.join("; ")
}

/// The field names of a struct, read from its `Deserialize` impl.
pub fn field_names<T: DeserializeOwned>() -> Vec<&'static str> {
    struct Probe(Vec<&'static str>);
    impl<'de> serde::Deserializer<'de> for &mut Probe {
        type Error = serde::de::value::Error;
        fn deserialize_any<V: serde::de::Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
            Err(serde::de::Error::custom("probe"))
        }
        fn deserialize_struct<V: serde::de::Visitor<'de>>(
            self,
            _: &'static str,
            fields: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, Self::Error> {
            self.0.extend_from_slice(fields);
            Err(serde::de::Error::custom("probe"))
        }
        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf option unit
            unit_struct newtype_struct seq tuple tuple_struct map enum identifier ignored_any
        }
    }
    let mut probe = Probe(Vec::new());
    let _ = T::deserialize(&mut probe);
    probe.0
}

/// A secret setting (API key, AWS secret): never printed by `Debug`, kept out of summaries.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Secret(value.to_string())
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Secret(value)
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("\"***\"")
    }
}

/// How to reach AWS (S3 for the landing zone and the lake, Kinesis, MWAA). Every field unset: the
/// standard AWS environment and credential chain (`AWS_ACCESS_KEY_ID`, `AWS_PROFILE` and the
/// profiles of `~/.aws`, SSO, assume-role, web identity, IMDS; `AWS_REGION`, `AWS_ENDPOINT_URL`,
/// ...). Set fields win over it, so a scheduler can hand over a connection's credentials without
/// touching `os.environ`. Every client pinpipe builds takes its credentials from this one chain
/// (`crate::aws`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AwsConfig {
    /// Named profile of `~/.aws/config` and `~/.aws/credentials` (else `PINPIPE_AWS_PROFILE`, else
    /// `AWS_PROFILE`, else `default`).
    pub profile: Option<String>,
    /// Access key id.
    pub access_key_id: Option<String>,
    /// Secret access key.
    pub secret_access_key: Option<Secret>,
    /// Session token of temporary credentials.
    pub session_token: Option<Secret>,
    /// Region (`us-east-1`).
    pub region: Option<String>,
    /// Endpoint of an S3-compatible service (`http://127.0.0.1:15000`).
    pub endpoint_url: Option<String>,
    /// Endpoint of a Kinesis-compatible service (`http://127.0.0.1:14567`).
    pub kinesis_endpoint_url: Option<String>,
    /// Endpoint of the MWAA API (tests; none: the region's).
    pub mwaa_endpoint_url: Option<String>,
}

/// The environment variable naming the AWS profile for pinpipe alone (`AWS_PROFILE` names it for
/// every AWS tool).
pub const AWS_PROFILE_ENV: &str = "PINPIPE_AWS_PROFILE";

impl AwsConfig {
    /// The endpoint: this config's, else `AWS_ENDPOINT_URL_S3`, else `AWS_ENDPOINT_URL`.
    pub fn endpoint(&self) -> Option<String> {
        self.endpoint_url
            .clone()
            .or_else(|| std::env::var("AWS_ENDPOINT_URL_S3").ok())
            .or_else(|| std::env::var("AWS_ENDPOINT_URL").ok())
    }

    /// The Kinesis endpoint: `kinesis_endpoint_url`, else `AWS_ENDPOINT_URL_KINESIS`, else
    /// `endpoint_url`, else `AWS_ENDPOINT_URL` (none: the region's AWS endpoint).
    pub fn kinesis_endpoint(&self) -> Option<String> {
        self.kinesis_endpoint_url
            .clone()
            .or_else(|| std::env::var("AWS_ENDPOINT_URL_KINESIS").ok())
            .or_else(|| self.endpoint_url.clone())
            .or_else(|| std::env::var("AWS_ENDPOINT_URL").ok())
    }

    /// The MWAA endpoint: `mwaa_endpoint_url`, else `AWS_ENDPOINT_URL_MWAA`, else
    /// `AWS_ENDPOINT_URL` (none: the region's AWS endpoint).
    pub fn mwaa_endpoint(&self) -> Option<String> {
        self.mwaa_endpoint_url
            .clone()
            .or_else(|| std::env::var("AWS_ENDPOINT_URL_MWAA").ok())
            .or_else(|| std::env::var("AWS_ENDPOINT_URL").ok())
    }

    /// The profile: this config's, else `PINPIPE_AWS_PROFILE` (none: aws-config's own choice,
    /// `AWS_PROFILE` or `default`).
    pub fn profile(&self) -> Option<String> {
        self.profile.clone().or_else(|| std::env::var(AWS_PROFILE_ENV).ok().filter(|p| !p.is_empty()))
    }

    /// The AWS SDK configuration of these settings, for a service at `endpoint` (none: the
    /// region's AWS endpoint): aws-config's default chain (environment, profiles, SSO, web
    /// identity, IMDS) for the profile chosen, with this config's explicit region and keys on top.
    /// Every SDK client of pinpipe (S3, Kinesis, MWAA) and every object store
    /// ([`crate::aws::s3_store`]) is built from it.
    pub async fn sdk_config(&self, endpoint: Option<String>) -> aws_config::SdkConfig {
        let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest());
        if let Some(profile) = self.profile() {
            loader = loader.profile_name(profile);
        }
        if let Some(region) = self.region() {
            loader = loader.region(aws_config::Region::new(region));
        }
        if let Some(endpoint) = endpoint {
            loader = loader.endpoint_url(endpoint);
        }
        if let (Some(key), Some(secret)) = (&self.access_key_id, &self.secret_access_key) {
            loader = loader.credentials_provider(aws_sdk_s3::config::Credentials::new(
                key,
                secret.expose(),
                self.session_token.as_ref().map(|t| t.expose().to_string()),
                None,
                "pinpipe",
            ));
        }
        loader.load().await
    }

    /// The region: this config's, else `AWS_REGION`, else `AWS_DEFAULT_REGION` (none: the
    /// profile's, through [`sdk_config`](Self::sdk_config)).
    pub fn region(&self) -> Option<String> {
        self.region
            .clone()
            .or_else(|| std::env::var("AWS_REGION").ok())
            .or_else(|| std::env::var("AWS_DEFAULT_REGION").ok())
    }
}

/// Serde helper: a `Duration` written as (fractional) seconds.
pub mod duration_secs {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(v: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(v.as_secs_f64())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let secs = f64::deserialize(d)?;
        Duration::try_from_secs_f64(secs).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sink::SinkConfig;

    #[test]
    fn layers_resolve_in_order_default_file_env_given() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pinpipe.yaml");
        std::fs::write(
            &path,
            "user_id: 0123456789ab\nflush_size: 10\nlake: lake-from-file\nkafka_properties:\n  security.protocol: SSL\n",
        )
        .unwrap();
        let mut layers = Layers::new(Some(path.clone()));
        layers.no_env = true;
        let c: SinkConfig = layers.resolve().unwrap();
        assert_eq!(c.user_id.as_str(), "0123456789ab");
        assert_eq!(c.flush_size, 10);
        assert_eq!(c.kafka_properties["security.protocol"], "SSL");
        assert_eq!(c.landing, SinkConfig::default().landing, "unset keys keep the default");
        layers.set("flush_size", Some(3));
        let c: SinkConfig = layers.resolve().unwrap();
        assert_eq!(c.flush_size, 3, "given beats the file");
    }

    #[test]
    fn the_environment_sits_between_the_file_and_the_arguments() {
        // nextest runs each test in its own process: the variable does not leak into others.
        std::env::set_var("PINPIPE_FLUSH_SIZE", "7");
        std::env::set_var("PINPIPE_UNTIL_CAUGHT_UP", "true");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pinpipe.yaml");
        std::fs::write(&path, "flush_size: 10\nlanding: from-file\n").unwrap();
        let mut layers = Layers::new(Some(path));
        let c: SinkConfig = layers.resolve().unwrap();
        assert_eq!((c.flush_size, c.until_caught_up, c.landing.as_str()), (7, true, "from-file"));
        layers.set("flush_size", Some(3));
        assert_eq!(layers.resolve::<SinkConfig>().unwrap().flush_size, 3);
        std::env::set_var("PINPIPE_FLUSH_SIZE", "seven");
        let err = Layers::default().resolve::<SinkConfig>().unwrap_err().to_string();
        assert!(err.contains("PINPIPE_FLUSH_SIZE") && !err.contains("seven"), "{err}");
    }

    #[test]
    fn unknown_keys_and_bad_values_name_their_source() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pinpipe.yaml");
        std::fs::write(&path, "flush_sise: 10\n").unwrap();
        let err = Layers::new(Some(path.clone())).resolve::<SinkConfig>().unwrap_err().to_string();
        assert!(err.contains("flush_sise"), "{err}");
        std::fs::write(&path, "flush_size: many\n").unwrap();
        let mut layers = Layers::new(Some(path));
        layers.no_env = true;
        let err = layers.resolve::<SinkConfig>().unwrap_err().to_string();
        assert!(err.contains("flush_size") && err.contains("configuration file"), "{err}");
        let mut given = Layers { no_env: true, ..Default::default() };
        given.set("flush_sise", Some(1));
        let err = given.resolve::<SinkConfig>().unwrap_err().to_string();
        assert!(err.contains("flush_sise"), "{err}");
        let err = Layers::new(Some("/nonexistent/pinpipe.yaml".into())).resolve::<SinkConfig>().unwrap_err();
        assert!(err.to_string().contains("/nonexistent/pinpipe.yaml"), "{err}");
    }

    #[test]
    fn secrets_stay_out_of_debug_and_errors() {
        let aws = AwsConfig { secret_access_key: Some(Secret::new("hunter2-secret")), ..Default::default() };
        assert!(!format!("{aws:?}").contains("hunter2"));
        let mut layers = Layers { no_env: true, ..Default::default() };
        layers.set("aws", Some(serde_json::json!({"secret_access_key": ["hunter2-secret"]})));
        let err = layers.resolve::<SinkConfig>().unwrap_err().to_string();
        assert!(!err.contains("hunter2") && err.contains("aws.secret_access_key"), "{err}");
    }

    #[test]
    fn every_job_lists_its_keys() {
        let keys = field_names::<SinkConfig>();
        assert!(keys.contains(&"flush_size") && keys.contains(&"user_id") && keys.contains(&"aws"), "{keys:?}");
        assert!(file_keys().contains("gateway"));
    }
}
