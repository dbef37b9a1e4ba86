//! One AWS credential chain for everything pinpipe talks to: the SDK clients (S3, Kinesis, MWAA)
//! are built from [`AwsConfig::sdk_config`], and the object stores (the landing zone, the lake's
//! Delta tables, the stream leases) get their credentials from the same provider through
//! [`ChainCredentials`]. So a profile in `~/.aws` (`AWS_PROFILE`, `--aws-profile`,
//! `PINPIPE_AWS_PROFILE`), SSO, assume-role, web identity or IMDS reach every part alike, and an
//! endpoint (`AWS_ENDPOINT_URL`) changes where requests go, never where credentials come from.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use object_store::aws::{AmazonS3Builder, AwsCredential};
use object_store::{CredentialProvider, ObjectStore};

use crate::config::AwsConfig;
use crate::error::{Error, Result};

/// Temporary credentials are renewed this long before they expire, so no request is signed with
/// credentials that lapse on the way.
const RENEW_BEFORE_EXPIRY: Duration = Duration::from_secs(300);

/// The SDK's credential provider as an `object_store` credential provider, with a cache: the
/// chain is asked once, and again only when the credentials it gave are about to expire.
pub struct ChainCredentials {
    provider: SharedCredentialsProvider,
    cached: tokio::sync::Mutex<Option<(Arc<AwsCredential>, Option<SystemTime>)>>,
}

impl ChainCredentials {
    pub fn new(provider: SharedCredentialsProvider) -> Self {
        ChainCredentials { provider, cached: tokio::sync::Mutex::new(None) }
    }
}

impl std::fmt::Debug for ChainCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ChainCredentials")
    }
}

#[async_trait::async_trait]
impl CredentialProvider for ChainCredentials {
    type Credential = AwsCredential;

    async fn get_credential(&self) -> object_store::Result<Arc<AwsCredential>> {
        let mut cached = self.cached.lock().await;
        if let Some((credential, expiry)) = cached.as_ref() {
            if expiry.is_none_or(|at| at > SystemTime::now() + RENEW_BEFORE_EXPIRY) {
                return Ok(credential.clone());
            }
        }
        let credentials = self.provider.provide_credentials().await.map_err(|e| object_store::Error::Generic {
            store: "S3",
            source: format!("no AWS credentials: {}", aws_sdk_s3::error::DisplayErrorContext(&e)).into(),
        })?;
        let credential = Arc::new(AwsCredential {
            key_id: credentials.access_key_id().to_string(),
            secret_key: credentials.secret_access_key().to_string(),
            token: credentials.session_token().map(str::to_string),
        });
        *cached = Some((credential.clone(), credentials.expiry()));
        Ok(credential)
    }
}

/// The object store of an S3 bucket, at its root: endpoint and region from `aws` (a profile's
/// region included), credentials from the one chain. Other object-store settings may come from
/// the standard `AWS_*` variables that `object_store` reads (`AWS_ALLOW_HTTP`, ...).
pub async fn s3_store(bucket: &str, aws: &AwsConfig) -> Result<Arc<dyn ObjectStore>> {
    if bucket.is_empty() {
        return Err(Error::Config("no bucket in the S3 URL".into()));
    }
    let endpoint = aws.endpoint();
    let sdk = aws.sdk_config(endpoint.clone()).await;
    let mut builder = AmazonS3Builder::from_env().with_bucket_name(bucket);
    if let Some(endpoint) = endpoint {
        builder = builder.with_allow_http(endpoint.starts_with("http://")).with_endpoint(endpoint);
    }
    if let Some(region) = sdk.region() {
        builder = builder.with_region(region.as_ref());
    }
    if let Some(provider) = sdk.credentials_provider() {
        builder = builder.with_credentials(Arc::new(ChainCredentials::new(provider)));
    }
    let store = builder.build().map_err(Error::store(format!("open s3://{bucket}")))?;
    Ok(Arc::new(store))
}

/// `s3://bucket/prefix` (or `s3a://`) split into the bucket and the prefix without slashes at
/// its ends; `None` for any other URL.
pub fn split_s3_url(url: &str) -> Option<(&str, &str)> {
    let rest = url.strip_prefix("s3://").or_else(|| url.strip_prefix("s3a://"))?;
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    Some((bucket, prefix.trim_matches('/')))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Counting(std::sync::atomic::AtomicU32, Option<SystemTime>);

    impl ProvideCredentials for Counting {
        fn provide_credentials<'a>(&'a self) -> aws_credential_types::provider::future::ProvideCredentials<'a>
        where
            Self: 'a,
        {
            let n = self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            aws_credential_types::provider::future::ProvideCredentials::ready(Ok(
                aws_credential_types::Credentials::new(format!("key{n}"), "secret", None, self.1, "test"),
            ))
        }
    }

    #[tokio::test]
    async fn the_chain_is_asked_again_only_near_expiry() {
        let credentials = ChainCredentials::new(SharedCredentialsProvider::new(Counting(Default::default(), None)));
        assert_eq!(credentials.get_credential().await.unwrap().key_id, "key0");
        assert_eq!(credentials.get_credential().await.unwrap().key_id, "key0", "cached");
        let expiring = Counting(Default::default(), Some(SystemTime::now() + Duration::from_secs(60)));
        let credentials = ChainCredentials::new(SharedCredentialsProvider::new(expiring));
        assert_eq!(credentials.get_credential().await.unwrap().key_id, "key0");
        assert_eq!(credentials.get_credential().await.unwrap().key_id, "key1", "renewed before it expires");
        assert!(!format!("{credentials:?}").contains("secret"));
    }

    #[test]
    fn s3_urls_split_into_bucket_and_prefix() {
        assert_eq!(split_s3_url("s3://b/lake/"), Some(("b", "lake")));
        assert_eq!(split_s3_url("s3a://b"), Some(("b", "")));
        assert_eq!(split_s3_url("/tmp/lake"), None);
    }
}
