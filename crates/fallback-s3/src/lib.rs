//! Object-storage docroots: the connection to a bucket, through `object_store`'s S3
//! client (request signing, retries, the AWS credential chain: nothing here signs by
//! hand).
//!
//! A [`Location`] is what an `s3://` docroot says; [`Bucket::connect`] builds the client
//! without touching the network, [`Bucket::check`] proves the bucket usable: reachable,
//! the credentials accepted, writable. Every key is built beneath the location's
//! prefix.

#![warn(missing_docs)]

use std::sync::Arc;

use object_store::aws::{AmazonS3, AmazonS3Builder, AmazonS3ConfigKey};
use object_store::path::Path as Key;
use object_store::{ObjectStore as _, ObjectStoreExt as _, PutPayload};

/// Where an object-storage docroot is: what an `s3://` URI in aspera.conf says, decoded.
#[derive(Clone, PartialEq, Eq)]
pub struct Location {
    /// `None` for AWS itself (`s3.amazonaws.com`: `AWS_ENDPOINT_URL` may still point
    /// elsewhere); else the S3-compatible endpoint, `http(s)://host[:port]`, addressed
    /// path-style.
    pub endpoint: Option<String>,
    /// The bucket.
    pub bucket: String,
    /// The key prefix of the docroot, `/`-separated, without leading or trailing `/`.
    pub prefix: String,
    /// Access key id and secret written in the URI; `None`: the AWS credential chain
    /// (environment, web identity, container, instance role).
    pub credentials: Option<(String, String)>,
    /// Whether the endpoint may be plain HTTP (also `AWS_ALLOW_HTTP=true`).
    pub allow_http: bool,
    /// The storage class of new objects.
    pub storage_class: Option<String>,
    /// `AES256` for S3-managed server-side encryption.
    pub server_side_encryption: Option<String>,
    /// How the location is shown (credentials redacted).
    pub shown: String,
}

impl std::fmt::Debug for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.shown)
    }
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.shown)
    }
}

/// A connected bucket (the client; connections are made on first use).
#[derive(Debug, Clone)]
pub struct Bucket {
    store: Arc<AmazonS3>,
    location: Location,
}

/// Why a bucket cannot be used, in words an operator can act on.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    /// The client could not be built from the location and the environment.
    #[error("{0}: the S3 client cannot be set up: {1}")]
    Setup(String, String),
    /// The endpoint did not answer, or not as S3.
    #[error("{0}: the bucket cannot be reached: {1}")]
    Unreachable(String, String),
    /// The credentials were refused, or do not grant the operation.
    #[error("{0}: the credentials were refused for {1}: {2}")]
    Refused(String, &'static str, String),
    /// No such bucket.
    #[error("{0}: no such bucket: {1}")]
    NoBucket(String, String),
}

impl Bucket {
    /// The client for `location`: the environment's AWS settings (`AWS_REGION`,
    /// `AWS_ENDPOINT_URL`, `AWS_ALLOW_HTTP`, credentials), then what the docroot
    /// writes. No network.
    pub fn connect(location: &Location) -> Result<Self, CheckError> {
        let setup = |e: String| CheckError::Setup(location.shown.clone(), e);
        // A few quick retries: a transient 5xx or reset is retried, a dead endpoint is
        // reported in seconds, not after object_store's default three minutes.
        let retry = object_store::RetryConfig {
            backoff: object_store::BackoffConfig::default(),
            max_retries: 4,
            retry_timeout: std::time::Duration::from_secs(30),
        };
        let mut b = AmazonS3Builder::from_env()
            .with_bucket_name(&location.bucket)
            .with_retry(retry);
        if std::env::var_os("AWS_REGION").is_none()
            && std::env::var_os("AWS_DEFAULT_REGION").is_none()
        {
            b = b.with_region("us-east-1");
        }
        if let Some(e) = &location.endpoint {
            b = b.with_endpoint(e).with_virtual_hosted_style_request(false);
        }
        if location.allow_http {
            b = b.with_allow_http(true);
        }
        if let Some((id, secret)) = &location.credentials {
            b = b.with_access_key_id(id).with_secret_access_key(secret);
        }
        if let Some(sse) = &location.server_side_encryption {
            let key = "aws_server_side_encryption"
                .parse::<AmazonS3ConfigKey>()
                .map_err(|e| setup(e.to_string()))?;
            b = b.with_config(key, sse);
        }
        let store = b.build().map_err(|e| setup(e.to_string()))?;
        Ok(Bucket {
            store: Arc::new(store),
            location: location.clone(),
        })
    }

    /// The location.
    pub fn location(&self) -> &Location {
        &self.location
    }

    /// The key of `rel` (a docroot-relative path, `/`-separated) beneath the prefix.
    pub fn key(&self, rel: &str) -> Key {
        let rel = rel.trim_matches('/');
        match (self.location.prefix.is_empty(), rel.is_empty()) {
            (true, _) => Key::from(rel),
            (false, true) => Key::from(self.location.prefix.as_str()),
            (false, false) => Key::from(format!("{}/{rel}", self.location.prefix)),
        }
    }

    /// Proves the bucket usable: lists the prefix (reachable, credentials accepted,
    /// the bucket exists), then writes and deletes a probe object under
    /// `PREFIX/.fallback/` (writable). Returns what it did, for the operator.
    pub async fn check(&self) -> Result<String, CheckError> {
        let shown = || self.location.shown.clone();
        let prefix = self.key("");
        let listed = self
            .store
            .list_with_delimiter(Some(&prefix))
            .await
            .map_err(|e| classify(shown(), "listing", &e))?;
        let mut nonce = [0u8; 8];
        getrandom::fill(&mut nonce).map_err(|e| CheckError::Setup(shown(), e.to_string()))?;
        let probe = self.key(&format!(
            "{}/check-{}",
            fallback_engine::RESERVED,
            hex::encode(nonce)
        ));
        self.store
            .put(&probe, PutPayload::from_static(b"fallback bucket check\n"))
            .await
            .map_err(|e| classify(shown(), "writing", &e))?;
        self.store
            .delete(&probe)
            .await
            .map_err(|e| classify(shown(), "deleting", &e))?;
        Ok(format!(
            "{}: reachable, credentials accepted, writable ({} objects and {} folders at \
             the top of the docroot)",
            self.location.shown,
            listed.objects.len(),
            listed.common_prefixes.len()
        ))
    }
}

/// An S3 error in one line: the service's `<Code>` and `<Message>` when it sent them
/// (`object_store`'s text carries the whole XML body), else the client's words.
fn summary(text: &str) -> String {
    let between = |open: &str, close: &str| {
        let start = text.find(open)? + open.len();
        let len = text[start..].find(close)?;
        Some(text[start..start + len].to_owned())
    };
    match (
        between("<Code>", "</Code>"),
        between("<Message>", "</Message>"),
    ) {
        (Some(code), Some(msg)) => format!("{code}: {msg}"),
        (Some(code), None) => code,
        _ => {
            let line = text.lines().next().unwrap_or_default();
            line.chars().take(400).collect()
        }
    }
}

fn classify(shown: String, what: &'static str, e: &object_store::Error) -> CheckError {
    let full = e.to_string();
    let text = summary(&full);
    match e {
        object_store::Error::PermissionDenied { .. }
        | object_store::Error::Unauthenticated { .. } => CheckError::Refused(shown, what, text),
        object_store::Error::NotFound { .. } => CheckError::NoBucket(shown, text),
        _ if full.contains("NoSuchBucket") => CheckError::NoBucket(shown, text),
        _ if full.contains("InvalidAccessKeyId")
            || full.contains("SignatureDoesNotMatch")
            || full.contains("AccessDenied")
            || full.contains("403 Forbidden") =>
        {
            CheckError::Refused(shown, what, text)
        }
        _ => CheckError::Unreachable(shown, text),
    }
}
