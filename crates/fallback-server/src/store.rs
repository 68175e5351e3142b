//! The storage seam: what requests ask of a docroot, whatever holds it. A docroot on a
//! file system is fallback-engine's `Storage` (synchronous: cheap metadata calls run
//! inline, the rest on blocking threads); an `s3://` docroot is a fallback-s3 `Bucket`
//! (asynchronous, over the network). Handlers ask a [`Store`] and never match on it,
//! except where bytes move: a download's body (`files.rs`) and an upload's pump
//! (`body.rs`).
//!
//! The seam lives here, not in the engine, because the engine never reaches tokio or
//! an HTTP client, and the S3 client is both.

use std::sync::Arc;
use std::time::Duration;

use fallback_engine::{
    Completed, Entry, EntryKind, Error, ManifestEntry, NewUpload, RelPath, Storage, UploadId,
    UploadInfo,
};
use fallback_s3::Bucket;

use crate::error::ApiError;

/// One docroot.
#[derive(Debug, Clone)]
pub(crate) enum Store {
    /// A directory of this host.
    Local(Arc<Storage>),
    /// A bucket and prefix.
    S3(Arc<Bucket>),
}

/// Runs an engine call on a blocking thread.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, Error> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::Internal(format!("storage task: {e}")))?
        .map_err(ApiError::from)
}

impl Store {
    /// What docroot restrictions match a file's path against: the docroot's directory,
    /// or its bucket as `s3://HOST/BUCKET/PREFIX` (no credentials, no options), to
    /// which the file's docroot-relative path is appended.
    pub(crate) fn restriction_base(&self) -> String {
        match self {
            Store::Local(s) => s.docroot().to_string_lossy().into_owned(),
            Store::S3(b) => {
                let loc = b.location();
                let host = loc.endpoint.as_deref().map_or("s3.amazonaws.com", |e| {
                    e.split_once("://").map_or(e, |(_, h)| h)
                });
                let mut base = format!("s3://{host}/{}", loc.bucket);
                if !loc.prefix.is_empty() {
                    base.push('/');
                    base.push_str(&loc.prefix);
                }
                base
            }
        }
    }

    /// What is at `path` (a bucket's files carry their SHA-256 from the object's
    /// metadata, or from its digest record while the object keeps the `ETag` it was
    /// recorded for).
    pub(crate) async fn stat(&self, path: &RelPath) -> Result<Entry, Error> {
        match self {
            // A few syscalls on cached metadata: cheaper inline than on another thread.
            Store::Local(s) => s.stat(path),
            Store::S3(b) => {
                let mut e = b.stat(path).await?;
                if e.kind == EntryKind::File && e.sha256.is_none() {
                    e.sha256 = b.digest(path, &e.etag).await;
                }
                Ok(e)
            }
        }
    }

    /// Whether anything is at `path`.
    pub(crate) async fn exists(&self, path: &RelPath) -> Result<bool, ApiError> {
        match self {
            Store::Local(s) => Ok(s.exists(path)),
            Store::S3(b) => match b.stat(path).await {
                Ok(_) => Ok(true),
                Err(Error::NotFound) => Ok(false),
                Err(e) => Err(e.into()),
            },
        }
    }

    /// The entries beneath `dir`: its own (`recursive` false, a listing) or the whole
    /// tree (a manifest), at most `limit`.
    pub(crate) async fn list(
        &self,
        dir: &RelPath,
        limit: usize,
        recursive: bool,
    ) -> Result<Vec<ManifestEntry>, Error> {
        match self {
            Store::Local(s) => {
                let (s, d) = (Arc::clone(s), dir.clone());
                tokio::task::spawn_blocking(move || {
                    if recursive {
                        s.manifest(&d, limit)
                    } else {
                        s.list(&d, limit)
                    }
                })
                .await
                .map_err(|e| Error::Io(std::io::Error::other(e.to_string())))?
            }
            Store::S3(b) => b.list(dir, limit, recursive).await,
        }
    }

    /// Creates upload `new` (tus creation without a body), durable before it is
    /// answered.
    pub(crate) async fn create_upload(
        &self,
        new: NewUpload,
        ttl: Duration,
    ) -> Result<UploadInfo, ApiError> {
        match self {
            Store::Local(s) => {
                let s = Arc::clone(s);
                blocking(move || s.create_upload(new)).await
            }
            Store::S3(b) => Ok(b.create_upload(&new, false, ttl.as_secs()).await?.info()?),
        }
    }

    /// Creates a partial upload (tus concatenation).
    pub(crate) async fn create_partial(
        &self,
        user: &str,
        length: u64,
        metadata: Vec<(String, String)>,
        ttl: Duration,
    ) -> Result<UploadInfo, ApiError> {
        match self {
            Store::Local(s) => {
                let (s, user) = (Arc::clone(s), user.to_owned());
                blocking(move || s.create_partial(&user, length, metadata)).await
            }
            Store::S3(b) => Ok(b
                .create_partial(user, length, metadata, ttl.as_secs())
                .await?
                .info()?),
        }
    }

    /// Assembles finished partial uploads into `new` and publishes it.
    pub(crate) async fn concatenate(
        &self,
        ids: Vec<UploadId>,
        new: NewUpload,
        ttl: Duration,
    ) -> Result<(UploadInfo, Completed), ApiError> {
        match self {
            Store::Local(s) => {
                let s = Arc::clone(s);
                blocking(move || s.concatenate(&ids, new)).await
            }
            Store::S3(b) => {
                let ids: Vec<String> = ids.iter().map(|i| i.as_str().to_owned()).collect();
                let (state, appended) = b.concatenate(&ids, &new, ttl.as_secs()).await?;
                let (sha256, _) = appended
                    .completed
                    .ok_or_else(|| ApiError::Internal("final upload not completed".to_owned()))?;
                let completed = Completed {
                    path: new.dest,
                    size: appended.offset,
                    sha256,
                };
                Ok((state.info()?, completed))
            }
        }
    }

    /// Upload `id`, once no request is writing it (waiting up to `wait` for one that
    /// is), so the offset reported is where a cut request's bytes ended.
    pub(crate) async fn upload_settled(
        &self,
        id: &UploadId,
        wait: Duration,
    ) -> Result<UploadInfo, ApiError> {
        match self {
            Store::Local(s) => {
                let (s, id) = (Arc::clone(s), id.clone());
                blocking(move || s.upload_settled(&id, wait)).await
            }
            Store::S3(b) => Ok(b.upload_settled(id.as_str(), wait).await?.info()?),
        }
    }

    /// The offset of upload `id` after its creation's body broke off, made durable
    /// first (its URL is about to be given out).
    pub(crate) async fn settled_offset(&self, id: &UploadId) -> Result<u64, ApiError> {
        match self {
            Store::Local(s) => {
                let (s, id) = (Arc::clone(s), id.clone());
                blocking(move || {
                    s.settle(&id)?;
                    Ok(s.upload(&id).map_or(0, |i| i.offset))
                })
                .await
            }
            // Every step a bucket records is durable when recorded.
            Store::S3(b) => Ok(b.upload(id.as_str()).await.map_or(0, |s| s.offset())),
        }
    }

    /// Completes an upload of no bytes (tus creation with `Upload-Length: 0`).
    pub(crate) async fn complete_empty(&self, id: &UploadId, user: &str) -> Result<(), ApiError> {
        match self {
            Store::Local(s) => {
                let (s, id, user) = (Arc::clone(s), id.clone(), user.to_owned());
                blocking(move || s.writer(&id, &user, 0, None)?.finish(false).map(drop)).await
            }
            Store::S3(b) => {
                let none = futures_util::stream::empty();
                b.append(
                    id.as_str(),
                    user,
                    0,
                    none,
                    fallback_s3::AppendOptions::default(),
                )
                .await?;
                Ok(())
            }
        }
    }

    /// Ends upload `id` of `user` without a file (tus termination).
    pub(crate) async fn terminate(&self, id: &UploadId, user: &str) -> Result<(), ApiError> {
        match self {
            Store::Local(s) => {
                let (s, id, user) = (Arc::clone(s), id.clone(), user.to_owned());
                blocking(move || s.terminate(&id, &user)).await
            }
            Store::S3(b) => Ok(b.terminate(id.as_str(), user).await?),
        }
    }

    /// Drops the expired uploads; how many.
    pub(crate) async fn sweep_expired(&self) -> Result<usize, ApiError> {
        match self {
            Store::Local(s) => {
                let s = Arc::clone(s);
                blocking(move || s.sweep_expired()).await
            }
            Store::S3(b) => {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs());
                Ok(b.sweep_expired(now).await?)
            }
        }
    }
}
