//! Object-storage docroots: the connection to a bucket, through `object_store`'s S3
//! client (request signing, retries, the AWS credential chain: nothing here signs by
//! hand).
//!
//! A [`Location`] is what an `s3://` docroot says; [`Bucket::connect`] builds the client
//! without touching the network, [`Bucket::check`] proves the bucket usable: reachable,
//! the credentials accepted, writable. Every key is built beneath the location's
//! prefix.

#![warn(missing_docs)]

pub mod parts;
mod upload;

pub use upload::{AppendOptions, Appended, LEASE_SECS, SHA256_META, UploadState};

use std::sync::Arc;

use fallback_engine::{Entry, EntryKind, Error, ManifestEntry, RESERVED, RelPath};
use futures_util::stream::BoxStream;
use object_store::aws::{AmazonS3, AmazonS3Builder, AmazonS3ConfigKey};
use object_store::path::Path as Key;
use object_store::{
    GetOptions, GetRange, ObjectMeta, ObjectStore as _, ObjectStoreExt as _, PutPayload,
};

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
    /// The store ignores conditional writes (`If-None-Match: *`, `If-Match`), which
    /// keep one writer per upload across instances.
    #[error(
        "{0}: this store does not honour conditional writes (PUT with If-None-Match: * or a \
         stale If-Match succeeded), which fallbackd needs to keep one writer per upload \
         across instances: use a store that does (AWS S3 and MinIO do)"
    )]
    NoConditionalWrites(String),
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
        // Over HTTPS, TLS already protects the bytes in transit: the body is not
        // hashed a second time for the signature (UNSIGNED-PAYLOAD, as the AWS SDKs do
        // over HTTPS). Over plain HTTP (a local test store) it is signed.
        let endpoint = location
            .endpoint
            .clone()
            .or_else(|| std::env::var("AWS_ENDPOINT_URL").ok());
        if endpoint.is_none_or(|e| e.starts_with("https://")) {
            b = b.with_unsigned_payload(true);
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
        // object_store's default cuts every request at 30 s, body included: a
        // download streamed to a slow client, or the CompleteMultipartUpload of a large
        // object (S3 may take minutes), would fail. A request fails instead after 60 s
        // without a byte, or an hour in all (a download then resumes where it was,
        // bound to the object's ETag).
        for (key, value) in [("read_timeout", "60s"), ("timeout", "1h")] {
            let key = key
                .parse::<AmazonS3ConfigKey>()
                .map_err(|e| setup(e.to_string()))?;
            b = b.with_config(key, value);
        }
        let store = b.build().map_err(|e| setup(e.to_string()))?;
        Ok(Bucket {
            store: Arc::new(store),
            location: location.clone(),
        })
    }

    /// The attributes every object this docroot writes gets: its storage class.
    fn attributes(&self) -> object_store::Attributes {
        let mut a = object_store::Attributes::new();
        if let Some(class) = &self.location.storage_class {
            a.insert(object_store::Attribute::StorageClass, class.clone().into());
        }
        a
    }

    /// The location.
    pub fn location(&self) -> &Location {
        &self.location
    }

    /// The client, for tools and tests that need calls this crate does not make.
    pub fn store(&self) -> &Arc<AmazonS3> {
        &self.store
    }

    /// The key of `rel` (docroot-relative, `/`-separated, already canonical) beneath
    /// the prefix, as written: names are not re-encoded (a file `a [1].txt` is the key
    /// `PREFIX/a [1].txt`, as other S3 tools see it).
    fn key(&self, rel: &str) -> Key {
        let rel = rel.trim_matches('/');
        let raw = match (self.location.prefix.is_empty(), rel.is_empty()) {
            (true, _) => rel.to_owned(),
            (false, true) => self.location.prefix.clone(),
            (false, false) => format!("{}/{rel}", self.location.prefix),
        };
        // Both halves are canonical (no empty, dot or control segments), so this
        // parses; should it not, the encoded form still stays beneath the prefix.
        Key::parse(&raw).unwrap_or_else(|_| Key::from(raw.as_str()))
    }

    /// The key of a request path; the reserved `.fallback` area is not reachable.
    pub fn key_of(&self, rel: &RelPath) -> Result<Key, Error> {
        if rel.segments().first().is_some_and(|s| s == RESERVED) {
            return Err(Error::Reserved);
        }
        Ok(self.key(&rel.segments().join("/")))
    }

    /// The docroot-relative path of `key`, if it is beneath `base` (a key of this
    /// bucket) and names something a request may reach.
    fn rel_below(base: &Key, key: &Key) -> Option<String> {
        let parts: Vec<String> = key
            .prefix_match(base)?
            .map(|p| p.as_ref().to_owned())
            .collect();
        if parts.is_empty() || parts.iter().any(String::is_empty) {
            return None;
        }
        let rel = parts.join("/");
        // Names other tools wrote that no request could name are left out.
        let canon = RelPath::parse(&rel).ok()?;
        (canon.segments().join("/") == rel).then_some(rel)
    }

    /// What `rel` is: an object (a file), or a folder (a prefix some key is under;
    /// the docroot itself always is one). `ETag` and `Last-Modified` come from the
    /// object, the SHA-256 from its metadata when the sender announced it at creation
    /// (else [`Bucket::digest`] may know it).
    pub async fn stat(&self, rel: &RelPath) -> Result<Entry, Error> {
        let key = self.key_of(rel)?;
        let mut folder = None;
        if !rel.is_root() {
            let head = GetOptions {
                head: true,
                ..GetOptions::default()
            };
            match self.store.get_opts(&key, head).await {
                Ok(got) => {
                    let mut e = file_entry(&got.meta);
                    // The SHA-256 the sender announced, checked before completion.
                    e.sha256 = got
                        .attributes
                        .get(&object_store::Attribute::Metadata(SHA256_META.into()))
                        .and_then(|v| hex::decode(v.as_ref()).ok())
                        .and_then(|b| b.try_into().ok());
                    return Ok(e);
                }
                Err(object_store::Error::NotFound { .. }) => {}
                // Some stores fail a HEAD of a name that is also a folder (s3s-fs,
                // which keeps keys as files, answers 500): a folder is still a folder.
                Err(e) => {
                    if !self.is_folder(&key).await.unwrap_or(false) {
                        return Err(io(&e));
                    }
                    folder = Some(true);
                }
            }
        }
        let folder = match folder {
            Some(f) => f,
            None => rel.is_root() || self.is_folder(&key).await?,
        };
        if folder {
            return Ok(Entry {
                kind: EntryKind::Dir,
                size: 0,
                modified: std::time::UNIX_EPOCH,
                etag: format!("\"dir-{}\"", hex::encode(key.as_ref().as_bytes())),
                sha256: None,
            });
        }
        Err(Error::NotFound)
    }

    async fn is_folder(&self, key: &Key) -> Result<bool, Error> {
        let listed = self
            .store
            .list_with_delimiter(Some(key))
            .await
            .map_err(|e| io(&e))?;
        Ok(!listed.objects.is_empty() || !listed.common_prefixes.is_empty())
    }

    /// The bytes `range` of the file at `rel`, streamed as S3 sends them (flat
    /// memory). With `etag`, only while the object still has it: a file replaced
    /// mid-download fails instead of mixing two versions.
    pub async fn read(
        &self,
        rel: &RelPath,
        range: std::ops::Range<u64>,
        etag: Option<&str>,
    ) -> Result<BoxStream<'static, Result<bytes::Bytes, Error>>, Error> {
        use futures_util::StreamExt as _;
        let key = self.key_of(rel)?;
        if range.start >= range.end {
            return Ok(futures_util::stream::empty().boxed());
        }
        let opts = GetOptions {
            range: Some(GetRange::Bounded(range)),
            if_match: etag.map(str::to_owned),
            ..GetOptions::default()
        };
        let got = self.store.get_opts(&key, opts).await.map_err(|e| io(&e))?;
        Ok(got.into_stream().map(|r| r.map_err(|e| io(&e))).boxed())
    }

    /// The files and folders beneath `dir` (`recursive`: the whole tree, as a manifest;
    /// else its own entries, as a listing), sorted by path, at most `limit` entries
    /// (then `Error::Limit`). The reserved area and keys no request could name never
    /// appear; listing pages are followed (`ListObjectsV2` continuation tokens).
    pub async fn list(
        &self,
        dir: &RelPath,
        limit: usize,
        recursive: bool,
    ) -> Result<Vec<ManifestEntry>, Error> {
        use futures_util::TryStreamExt as _;
        let base = self.key_of(dir)?;
        let reserved = self.key(RESERVED);
        let too_many = || Error::Limit(format!("more than {limit} entries beneath /{dir}"));
        let mut out = Vec::new();
        let mut folders = std::collections::BTreeSet::new();
        if recursive {
            let mut objects = self.store.list(Some(&base));
            while let Some(meta) = objects.try_next().await.map_err(|e| io(&e))? {
                if meta.location.prefix_matches(&reserved) && dir.is_root() {
                    continue;
                }
                let Some(rel) = Self::rel_below(&base, &meta.location) else {
                    continue;
                };
                // Every folder on the way is an entry of its own, as on a disk.
                let mut at = 0;
                while let Some(i) = rel[at..].find('/') {
                    folders.insert(rel[..at + i].to_owned());
                    at += i + 1;
                }
                out.push(manifest_file(rel, &meta));
                if out.len() + folders.len() > limit {
                    return Err(too_many());
                }
            }
        } else {
            let listed = self
                .store
                .list_with_delimiter(Some(&base))
                .await
                .map_err(|e| io(&e))?;
            for p in &listed.common_prefixes {
                if p == &reserved {
                    continue;
                }
                if let Some(rel) = Self::rel_below(&base, p) {
                    folders.insert(rel);
                }
            }
            for meta in &listed.objects {
                if let Some(rel) = Self::rel_below(&base, &meta.location) {
                    out.push(manifest_file(rel, meta));
                }
            }
            if out.len() + folders.len() > limit {
                return Err(too_many());
            }
        }
        if out.is_empty() && folders.is_empty() && !dir.is_root() {
            // A prefix nothing is under is no folder; an object there is a file.
            return Err(match self.store.head(&base).await {
                Ok(_) => Error::WrongKind("not a directory"),
                Err(_) => Error::NotFound,
            });
        }
        // A folder that is also an object (a console's `name/` marker) is a folder.
        out.retain(|e| !folders.contains(&e.path));
        out.extend(folders.into_iter().map(|path| ManifestEntry {
            path,
            kind: EntryKind::Dir,
            size: 0,
            mtime: 0,
            sha256: None,
        }));
        out.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(out)
    }

    /// Proves the bucket usable: lists the prefix (reachable, credentials accepted,
    /// the bucket exists), then writes a probe object under `PREFIX/.fallback/`
    /// (writable), writes it again conditionally (both must be refused: the store
    /// honours the conditional writes leases need) and deletes it. Returns what it
    /// did, for the operator.
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
        let probe = self.key(&format!("{RESERVED}/check-{}", hex::encode(nonce)));
        let create = || object_store::PutOptions {
            mode: object_store::PutMode::Create,
            ..object_store::PutOptions::default()
        };
        self.store
            .put_opts(
                &probe,
                PutPayload::from_static(b"fallback bucket check\n"),
                create(),
            )
            .await
            .map_err(|e| classify(shown(), "writing", &e))?;
        // One writer per upload across instances rests on conditional writes: a store
        // that ignores `If-None-Match: *` or a stale `If-Match` cannot hold a lease.
        let again = self
            .store
            .put_opts(&probe, PutPayload::from_static(b"again\n"), create())
            .await;
        let stale = object_store::PutOptions {
            mode: object_store::PutMode::Update(object_store::UpdateVersion {
                e_tag: Some("\"fallback-stale-etag\"".to_owned()),
                version: None,
            }),
            ..object_store::PutOptions::default()
        };
        let updated = self
            .store
            .put_opts(&probe, PutPayload::from_static(b"stale\n"), stale)
            .await;
        self.store
            .delete(&probe)
            .await
            .map_err(|e| classify(shown(), "deleting", &e))?;
        let refused_create = matches!(again, Err(object_store::Error::AlreadyExists { .. }));
        let refused_update = matches!(
            updated,
            Err(object_store::Error::Precondition { .. } | object_store::Error::NotFound { .. })
        );
        if !(refused_create && refused_update) {
            return Err(CheckError::NoConditionalWrites(shown()));
        }
        Ok(format!(
            "{}: reachable, credentials accepted, writable, conditional writes honoured \
             ({} objects and {} folders at the top of the docroot)",
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

/// An S3 failure as the engine's error: a missing object is `NotFound`; a store that
/// did not answer, asked to slow down or failed with 5xx (past the client's retries)
/// is `Unavailable` (transient); the rest I/O, with the service's code and message.
fn io(e: &object_store::Error) -> Error {
    match e {
        object_store::Error::NotFound { .. } => Error::NotFound,
        _ => {
            let full = e.to_string();
            let text = summary(&full);
            if transient(&full) {
                Error::Unavailable(text)
            } else {
                Error::Io(std::io::Error::other(text))
            }
        }
    }
}

/// Whether an S3 failure is the store's passing state rather than the request's
/// fault: no connection, a timeout, throttling, or a 5xx answer.
fn transient(full: &str) -> bool {
    [
        "error sending request",
        "error trying to connect",
        "Connection refused",
        "timed out",
        "SlowDown",
        "ServiceUnavailable",
        "InternalError",
        "Server returned non-2xx status code: 5",
        "status 500",
        "status 502",
        "status 503",
        "status 504",
    ]
    .iter()
    .any(|m| full.contains(m))
}

/// An object's `ETag` as a strong validator (quoted, as S3 sends it; quoted here when a
/// store sends it bare).
fn etag_of(meta: &ObjectMeta) -> String {
    match meta.e_tag.as_deref() {
        Some(t) => upload::quoted(t),
        // No ETag: size and time stand in (weak in spirit, but changes when they do).
        None => format!(
            "\"{}-{}\"",
            meta.size,
            meta.last_modified.timestamp_nanos_opt().unwrap_or_default()
        ),
    }
}

fn file_entry(meta: &ObjectMeta) -> Entry {
    Entry {
        kind: EntryKind::File,
        size: meta.size,
        modified: std::time::SystemTime::from(meta.last_modified),
        etag: etag_of(meta),
        sha256: None,
    }
}

fn manifest_file(path: String, meta: &ObjectMeta) -> ManifestEntry {
    ManifestEntry {
        path,
        kind: EntryKind::File,
        size: meta.size,
        mtime: meta.last_modified.timestamp(),
        sha256: None,
    }
}
