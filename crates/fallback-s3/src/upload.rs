//! Resumable uploads into a bucket, from any instance: a multipart upload at the final
//! key, its state in `PREFIX/.fallback/uploads/<id>.info` (what the upload is, the
//! parts stored, the tail, the running SHA-256), the tail in `<id>.tail.<version>`, a
//! lease in `<id>.lock`. Nothing appears at the final key before
//! `CompleteMultipartUpload`, which runs only after the whole file's SHA-256 (computed
//! as the bytes arrive, carried across requests and instances in the state) matches
//! what the sender announced. Memory per request: one part buffer plus one chunk.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use fallback_engine::{
    ChunkChecksum, ChunkVerifier, Concat, Error, NewUpload, RESERVED, RelPath, UploadId,
    UploadInfo, concatenated_length,
};
use futures_util::{FutureExt as _, Stream, StreamExt as _};
use object_store::multipart::{MultipartStore as _, PartId};
use object_store::path::Path as Key;
use object_store::{ObjectStore as _, ObjectStoreExt as _, PutMode, PutOptions, PutPayload};
use serde::{Deserialize, Serialize};
use sha2::digest::common::hazmat::SerializableState as _;
use sha2::{Digest as _, Sha256};

use crate::parts::{Progress, Step, capacity, part_size, plan};
use crate::{Bucket, io};

/// How long a writer holds an upload without renewing its lease; a crashed holder's
/// lease is taken over after it.
pub const LEASE_SECS: u64 = 120;

/// The user metadata (`x-amz-meta-…`) that holds an object's SHA-256, hex, when the
/// sender announced it before the first byte.
pub const SHA256_META: &str = "fallback-sha256";

/// What an upload is and how far it got: its state object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadState {
    /// The upload's id (names its objects).
    pub id: String,
    /// Whose it is.
    pub user: String,
    /// Where the file goes, docroot-relative.
    pub dest: String,
    /// The declared length (`None`: deferred).
    pub length: Option<u64>,
    /// tus `Upload-Metadata`, decoded, in the order sent.
    pub metadata: Vec<(String, String)>,
    /// The whole file's SHA-256 the sender announced at creation, hex.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_sha256: Option<String>,
    /// Never replace an object at the destination (`If-None-Match: *`, or
    /// `overwrite` `deny`): checked at creation and again just before completing.
    #[serde(default)]
    pub no_replace: bool,
    /// A single-shot upload (HTTP PUT): forgotten once published, as nobody asks.
    #[serde(default)]
    pub single_shot: bool,
    /// Set once the object is published: its SHA-256, hex. The state then stays,
    /// answerable (a lost last answer is asked again), until it expires.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub done: Option<String>,
    /// A partial upload (tus concatenation): its bytes become the object `<id>.data`
    /// in the reserved area, never a file; a final upload assembles it with others.
    #[serde(default)]
    pub partial: bool,
    /// For a final upload, the partial uploads it was assembled from, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parts: Vec<String>,
    /// When it expires unless completed, Unix seconds.
    pub expires: u64,
    /// The multipart upload's id at the final key.
    pub multipart_id: String,
    /// The part size, fixed at creation.
    pub part_size: u64,
    /// Parts and tail stored.
    pub progress: Progress,
    /// The SHA-256 state over exactly the bytes stored, serialized, hex.
    pub sha256_state: String,
}

impl UploadState {
    /// Bytes received and stored.
    pub fn offset(&self) -> u64 {
        self.progress.offset()
    }

    /// The upload as the engine describes one (what the server answers about it).
    pub fn info(&self) -> Result<UploadInfo, Error> {
        Ok(UploadInfo {
            id: UploadId::parse(&self.id).ok_or(Error::UnknownUpload)?,
            user: self.user.clone(),
            dest: RelPath::parse(&self.dest).map_err(|_| Error::UnknownUpload)?,
            length: self.length,
            offset: self.offset(),
            metadata: self.metadata.clone(),
            expires_at: self.expires,
            concat: if self.partial {
                Concat::Partial
            } else if self.parts.is_empty() {
                Concat::None
            } else {
                Concat::Final
            },
            parts: self
                .parts
                .iter()
                .filter_map(|p| UploadId::parse(p))
                .collect(),
            done: self.done.is_some(),
            sha256: self.published_sha256(),
            single_shot: self.single_shot,
        })
    }

    /// The published object's SHA-256, once done.
    pub fn published_sha256(&self) -> Option<[u8; 32]> {
        hex::decode(self.done.as_deref()?).ok()?.try_into().ok()
    }

    fn hasher(&self) -> Result<Sha256, Error> {
        let bytes = hex::decode(&self.sha256_state).map_err(|_| corrupt("sha256_state"))?;
        let state = bytes
            .as_slice()
            .try_into()
            .map_err(|_| corrupt("sha256_state"))?;
        Sha256::deserialize(state).map_err(|_| corrupt("sha256_state"))
    }
}

/// How an append may end.
#[derive(Default, Clone, Copy)]
pub struct AppendOptions<'a> {
    /// The whole file's SHA-256 (`Repr-Digest` of the request that completes it).
    pub expected: Option<[u8; 32]>,
    /// The checksum of this request's bytes (tus `Upload-Checksum`): they are
    /// recorded only if it matches, else the upload stays where it was.
    pub chunk: Option<ChunkChecksum>,
    /// The body's clean end is the file's end (a single-shot upload of unknown
    /// length).
    pub finish: bool,
    /// Asked just before the object is completed; `false` (the token expired while
    /// the bytes arrived) keeps every byte, as a tail, and leaves the upload open.
    pub may_complete: Option<&'a (dyn Fn() -> bool + Send + Sync)>,
}

impl std::fmt::Debug for AppendOptions<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppendOptions")
            .field("expected", &self.expected.map(hex::encode))
            .field("chunk", &self.chunk)
            .field("finish", &self.finish)
            .finish_non_exhaustive()
    }
}

/// What an append came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Appended {
    /// Bytes stored now.
    pub offset: u64,
    /// The whole file's SHA-256 and its object's `ETag`, when this append completed it.
    pub completed: Option<([u8; 32], String)>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Lease {
    holder: String,
    until: u64,
}

/// A step on its way to the bucket.
struct Pending {
    step: Step,
    /// The whole file's hash state once this step's bytes are in.
    sha256_state: String,
    /// Stores it; the part's `ETag` (empty for a tail).
    upload: tokio::task::JoinHandle<Result<String, object_store::Error>>,
}

/// One step's bytes for `store_step`: a part or the tail; `record`: write the state
/// after it (else the caller records the steps together).
struct StepData {
    data: BytesMut,
    is_tail: bool,
    record: bool,
}

/// An `ETag` quoted, as S3 sends it (some stores send it bare).
pub(crate) fn quoted(tag: &str) -> String {
    if tag.starts_with('"') {
        tag.to_owned()
    } else {
        format!("\"{tag}\"")
    }
}

/// A lease this request holds: renewed (by its `ETag`) as the request goes on, so a
/// long upload keeps it and a takeover is noticed.
struct Held {
    holder: String,
    e_tag: Option<String>,
    since: std::time::Instant,
}

fn corrupt(what: &str) -> Error {
    Error::Io(std::io::Error::other(format!(
        "the upload's state object has an unreadable {what}"
    )))
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn serialize(h: &Sha256) -> String {
    hex::encode(h.serialize())
}

impl Bucket {
    fn upload_key(&self, id: &str, suffix: &str) -> Key {
        self.key(&format!("{RESERVED}/uploads/{id}{suffix}"))
    }

    /// Starts upload `new` (its length `None`: a single-shot upload whose body's end
    /// is the file's end): a multipart upload at the final key and its state object.
    /// Nothing is visible at the destination. `single_shot`: an HTTP PUT, forgotten
    /// once published. Modes do not apply to objects.
    pub async fn create_upload(
        &self,
        new: &NewUpload,
        single_shot: bool,
        ttl_secs: u64,
    ) -> Result<UploadState, Error> {
        self.create(new, single_shot, false, ttl_secs).await
    }

    /// Starts a partial upload of `length` bytes for `user` (tus `Upload-Concat:
    /// partial`): written like any upload, into the reserved area, never published
    /// alone; [`Bucket::concatenate`] assembles it with others.
    pub async fn create_partial(
        &self,
        user: &str,
        length: u64,
        metadata: Vec<(String, String)>,
        ttl_secs: u64,
    ) -> Result<UploadState, Error> {
        let new = NewUpload {
            user: user.to_owned(),
            dest: RelPath::root(),
            length: Some(length),
            metadata,
            expected_sha256: None,
            no_replace: false,
            modes: fallback_engine::Modes::default(),
        };
        self.create(&new, false, true, ttl_secs).await
    }

    async fn create(
        &self,
        new: &NewUpload,
        single_shot: bool,
        partial: bool,
        ttl_secs: u64,
    ) -> Result<UploadState, Error> {
        let length = new.length;
        if length.is_some_and(|l| l > capacity(Some(l))) {
            return Err(Error::Limit(
                "the upload is larger than an S3 object can be (5 TiB)".to_owned(),
            ));
        }
        let mut nonce = [0u8; 16];
        getrandom::fill(&mut nonce).map_err(|e| Error::Io(std::io::Error::other(e)))?;
        let id = hex::encode(nonce);
        let key = if partial {
            self.upload_key(&id, ".data")
        } else {
            self.key_of(&new.dest)?
        };
        if new.no_replace && self.object_exists(&key).await? {
            return Err(Error::Exists);
        }
        // The object's attributes are set here, once: the storage class, and the
        // SHA-256 when the sender announced it (S3 cannot add metadata to an object
        // afterwards without copying it; digests learnt later live in digest records).
        let mut attributes = self.attributes();
        if let Some(sha) = new.expected_sha256 {
            attributes.insert(
                object_store::Attribute::Metadata(SHA256_META.into()),
                hex::encode(sha).into(),
            );
        }
        let opts = object_store::PutMultipartOptions {
            attributes,
            ..object_store::PutMultipartOptions::default()
        };
        let multipart_id = self
            .store
            .create_multipart_opts(&key, opts)
            .await
            .map_err(|e| io(&e))?;
        let state = UploadState {
            id,
            user: new.user.clone(),
            dest: new.dest.segments().join("/"),
            length,
            metadata: new.metadata.clone(),
            expected_sha256: new.expected_sha256.map(hex::encode),
            no_replace: new.no_replace,
            single_shot,
            done: None,
            partial,
            parts: Vec::new(),
            expires: now() + ttl_secs,
            multipart_id,
            part_size: part_size(length),
            progress: Progress::default(),
            sha256_state: serialize(&Sha256::new()),
        };
        self.write_state(&state, PutMode::Create).await?;
        Ok(state)
    }

    /// The state of upload `id`, as any instance last recorded it.
    pub async fn upload(&self, id: &str) -> Result<UploadState, Error> {
        self.read_state(id).await
    }

    /// The state of upload `id` once no request is writing it (its lease free or
    /// lapsed), waiting up to `wait` for one that is: what a client resuming after a
    /// cut asks, so the offset it gets is where the cut request's bytes ended.
    pub async fn upload_settled(
        &self,
        id: &str,
        wait: std::time::Duration,
    ) -> Result<UploadState, Error> {
        let until = std::time::Instant::now() + wait;
        let key = self.upload_key(id, ".lock");
        let mut pause = std::time::Duration::from_millis(10);
        while std::time::Instant::now() < until {
            let held = match self.store.get(&key).await {
                Ok(got) => got
                    .bytes()
                    .await
                    .ok()
                    .and_then(|b| serde_json::from_slice::<Lease>(&b).ok())
                    .is_some_and(|l| l.until > now()),
                Err(_) => false,
            };
            if !held {
                break;
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(std::time::Duration::from_millis(200));
        }
        self.read_state(id).await
    }

    async fn object_exists(&self, key: &Key) -> Result<bool, Error> {
        match self.store.head(key).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(io(&e)),
        }
    }

    async fn read_state(&self, id: &str) -> Result<UploadState, Error> {
        let got = match self.store.get(&self.upload_key(id, ".info")).await {
            Ok(g) => g,
            Err(object_store::Error::NotFound { .. }) => return Err(Error::UnknownUpload),
            Err(e) => return Err(io(&e)),
        };
        let bytes = got.bytes().await.map_err(|e| io(&e))?;
        serde_json::from_slice(&bytes).map_err(|_| corrupt("JSON document"))
    }

    async fn write_state(&self, state: &UploadState, mode: PutMode) -> Result<(), Error> {
        let body = serde_json::to_vec(state).map_err(|_| corrupt("JSON document"))?;
        let opts = PutOptions {
            mode,
            ..PutOptions::default()
        };
        self.store
            .put_opts(&self.upload_key(&state.id, ".info"), body.into(), opts)
            .await
            .map_err(|e| io(&e))?;
        Ok(())
    }

    /// Takes the upload's lease for `holder`: free, or expired (a crashed holder's).
    /// Another live holder: `Error::Locked`.
    async fn lease(&self, id: &str, holder: &str) -> Result<Held, Error> {
        let key = self.upload_key(id, ".lock");
        let held = |r: object_store::PutResult| Held {
            holder: holder.to_owned(),
            e_tag: r.e_tag,
            since: std::time::Instant::now(),
        };
        let body = |until| {
            serde_json::to_vec(&Lease {
                holder: holder.to_owned(),
                until,
            })
            .map(PutPayload::from)
            .map_err(|_| corrupt("lease"))
        };
        let create = PutOptions {
            mode: PutMode::Create,
            ..PutOptions::default()
        };
        match self
            .store
            .put_opts(&key, body(now() + LEASE_SECS)?, create)
            .await
        {
            Ok(r) => return Ok(held(r)),
            Err(object_store::Error::AlreadyExists { .. }) => {}
            Err(e) => return Err(io(&e)),
        }
        // Held: by someone alive, or left by a crash.
        let got = self.store.get(&key).await.map_err(|e| io(&e))?;
        let version = object_store::UpdateVersion {
            e_tag: got.meta.e_tag.clone(),
            version: got.meta.version.clone(),
        };
        let other: Lease = serde_json::from_slice(&got.bytes().await.map_err(|e| io(&e))?)
            .map_err(|_| corrupt("lease"))?;
        if other.until > now() && other.holder != holder {
            return Err(Error::Locked);
        }
        let update = PutOptions {
            mode: PutMode::Update(version),
            ..PutOptions::default()
        };
        match self
            .store
            .put_opts(&key, body(now() + LEASE_SECS)?, update)
            .await
        {
            Ok(r) => Ok(held(r)),
            // Someone else took it over first.
            Err(object_store::Error::Precondition { .. }) => Err(Error::Locked),
            Err(e) => Err(io(&e)),
        }
    }

    /// Renews `held` once half its lease is gone; a lease taken over meanwhile (this
    /// writer stalled past it) stops the request with `Error::Locked`.
    async fn renew(&self, id: &str, held: &mut Held) -> Result<(), Error> {
        if held.since.elapsed() < std::time::Duration::from_secs(LEASE_SECS / 2) {
            return Ok(());
        }
        let body = serde_json::to_vec(&Lease {
            holder: held.holder.clone(),
            until: now() + LEASE_SECS,
        })
        .map_err(|_| corrupt("lease"))?;
        let opts = PutOptions {
            mode: PutMode::Update(object_store::UpdateVersion {
                e_tag: held.e_tag.clone(),
                version: None,
            }),
            ..PutOptions::default()
        };
        match self
            .store
            .put_opts(&self.upload_key(id, ".lock"), body.into(), opts)
            .await
        {
            Ok(r) => {
                held.e_tag = r.e_tag;
                held.since = std::time::Instant::now();
                Ok(())
            }
            Err(
                object_store::Error::Precondition { .. } | object_store::Error::NotFound { .. },
            ) => Err(Error::Locked),
            Err(e) => Err(io(&e)),
        }
    }

    async fn release(&self, id: &str) {
        let _ = self.store.delete(&self.upload_key(id, ".lock")).await;
    }

    /// Appends `body` to upload `id` at `offset` (which must be where it is) for
    /// `user`, under the upload's lease: full parts are stored as they fill, the rest
    /// as a tail; each stored step is recorded before the next (with a chunk checksum:
    /// all of them at the end, once the chunk proved intact). If the bytes complete
    /// the upload, its SHA-256 is checked against what the sender announced, and only
    /// then is the object completed at its final key. A body that fails midway keeps
    /// what was recorded (the offset a client resumes from).
    pub async fn append<S>(
        &self,
        id: &str,
        user: &str,
        offset: u64,
        body: S,
        opts: AppendOptions<'_>,
    ) -> Result<Appended, Error>
    where
        S: Stream<Item = Result<Bytes, std::io::Error>> + Unpin,
    {
        let mut holder = [0u8; 8];
        getrandom::fill(&mut holder).map_err(|e| Error::Io(std::io::Error::other(e)))?;
        let holder = hex::encode(holder);
        let mut held = self.lease(id, &holder).await?;
        let r = self
            .append_leased(id, user, offset, body, opts, &mut held)
            .await;
        // A lease lost to a takeover is not ours to delete.
        if !matches!(r, Err(Error::Locked)) {
            self.release(id).await;
        }
        r
    }

    async fn append_leased<S>(
        &self,
        id: &str,
        user: &str,
        offset: u64,
        mut body: S,
        opts: AppendOptions<'_>,
        held: &mut Held,
    ) -> Result<Appended, Error>
    where
        S: Stream<Item = Result<Bytes, std::io::Error>> + Unpin,
    {
        let mut state = self.read_state(id).await?;
        if state.user != user {
            return Err(Error::NotOwner);
        }
        if state.done.is_some() {
            return Err(Error::Finished);
        }
        if state.offset() != offset {
            return Err(Error::OffsetMismatch {
                actual: state.offset(),
            });
        }
        let key = self.object_key(&state)?;
        let mut hasher = state.hasher()?;
        // With a chunk checksum nothing is recorded until the chunk proved intact: a
        // chunk that fails leaves the upload exactly where it was (parts stored for it
        // are replaced by the next attempt's, which take the same numbers).
        let mut verify = opts.chunk.map(ChunkVerifier::new);
        let record = verify.is_none();
        let first_tail = state.progress.tail;
        // The buffer starts with the tail (already hashed).
        let mut buf = BytesMut::new();
        if state
            .length
            .is_none_or(|l| l.saturating_sub(offset) >= state.part_size)
        {
            buf.reserve(usize::try_from(state.part_size).unwrap_or(0));
        }
        let mut hashed = state.progress.offset();
        if let Some(t) = state.progress.tail {
            let tail = self
                .store
                .get(&self.upload_key(id, &format!(".tail.{}", t.version)))
                .await
                .map_err(|e| io(&e))?
                .bytes()
                .await
                .map_err(|e| io(&e))?;
            if tail.len() as u64 != t.size {
                return Err(corrupt("tail"));
            }
            buf.extend_from_slice(&tail);
        }
        let limit = state.length.unwrap_or(capacity(None));
        let mut received = offset;
        let mut failed = None;
        // One full part is sent while the next one fills from the body: two part
        // buffers at most, and the body keeps flowing while S3 takes a part.
        let mut sending: Option<Pending> = None;
        loop {
            let chunk = match body.next().await {
                None => break,
                Some(Ok(c)) => c,
                Some(Err(e)) => {
                    failed = Some(Error::Io(e));
                    break;
                }
            };
            if received + chunk.len() as u64 > limit {
                failed = Some(Error::TooLong);
                break;
            }
            received += chunk.len() as u64;
            if let Some(v) = verify.as_mut() {
                v.update(&chunk);
            }
            buf.extend_from_slice(&chunk);
            // Full parts go as soon as they fill, each once the one before is stored.
            while buf.len() as u64 >= state.part_size {
                let size = usize::try_from(state.part_size).unwrap_or(usize::MAX);
                let part = buf.split_to(size);
                // The next part's room at once, not grown chunk by chunk (the part
                // split off keeps the old allocation until S3 has it).
                buf.reserve(size);
                if let Some(p) = sending.take() {
                    self.finish_step(&mut state, p, record).await?;
                }
                let step = StepData {
                    data: part,
                    is_tail: false,
                    record,
                };
                sending = Some(self.start_step(&key, &state, &mut hasher, &mut hashed, step));
                self.renew(id, held).await?;
            }
        }
        // The part on its way is stored (and recorded) whatever ended the body: its
        // bytes were received.
        if let Some(p) = sending.take() {
            self.finish_step(&mut state, p, record).await?;
        }
        if !record {
            if let Some(e) = failed {
                // A chunk cut short cannot match its checksum: none of it is kept.
                return Err(e);
            }
            if !verify.take().is_some_and(ChunkVerifier::matches) {
                return Err(Error::ChecksumMismatch);
            }
        }
        if failed.is_none() && state.length.is_none() && opts.finish {
            state.length = Some(received);
        }
        let complete_len = failed.is_none() && state.length == Some(received);
        let completes = complete_len && opts.may_complete.is_none_or(|f| f());
        // What is left: the last part, or a new tail (a failed body keeps what came).
        if !buf.is_empty() || completes {
            let steps = plan(
                &state.progress,
                buf.len() as u64,
                state.part_size,
                completes,
            )
            .map_err(|e| Error::Limit(e.to_string()))?;
            for step in steps {
                let len = match step {
                    Step::Part { len, .. } | Step::Tail { len } => len,
                };
                let data = buf.split_to(usize::try_from(len).unwrap_or(usize::MAX));
                let step = StepData {
                    data,
                    is_tail: matches!(step, Step::Tail { .. }),
                    record,
                };
                self.store_step(&key, &mut state, &mut hasher, &mut hashed, step)
                    .await?;
            }
        }
        if !record {
            // The chunk is intact: everything it stored is recorded at once.
            self.write_state(&state, PutMode::Overwrite).await?;
            if let Some(t) = first_tail
                && state.progress.tail != first_tail
            {
                self.delete_tail(&state.id, t.version).await;
            }
        }
        if let Some(e) = failed {
            return Err(e);
        }
        if !completes {
            return Ok(Appended {
                offset: state.offset(),
                completed: None,
            });
        }
        let sha: [u8; 32] = hasher.finalize().into();
        let announced = state
            .expected_sha256
            .as_deref()
            .and_then(|h| hex::decode(h).ok());
        if opts.expected.is_some_and(|e| e != sha)
            || announced.is_some_and(|e| e.as_slice() != sha.as_slice())
        {
            // The bytes stored are not the sender's file: none are kept.
            self.abort(&state).await;
            return Err(Error::ChecksumMismatch);
        }
        if state.no_replace && self.object_exists(&key).await? {
            // One appeared since the upload began. (S3 cannot complete a multipart
            // upload only if the key is free; this check narrows the race to the
            // completion call itself.)
            self.abort(&state).await;
            return Err(Error::Exists);
        }
        let etag = if state.progress.parts.is_empty() {
            // An empty file: a multipart upload needs a part, a plain object does not.
            let _ = self.store.abort_multipart(&key, &state.multipart_id).await;
            let opts = PutOptions {
                attributes: self.attributes(),
                ..PutOptions::default()
            };
            self.store
                .put_opts(&key, PutPayload::default(), opts)
                .await
                .map_err(|e| io(&e))?
                .e_tag
        } else {
            let parts = state
                .progress
                .parts
                .iter()
                .map(|p| PartId {
                    content_id: p.etag.clone(),
                })
                .collect();
            self.store
                .complete_multipart(&key, &state.multipart_id, parts)
                .await
                .map_err(|e| io(&e))?
                .e_tag
        };
        let etag = quoted(etag.as_deref().unwrap_or_default());
        if !state.partial {
            self.record_digest(&state.dest, &etag, &sha).await;
        }
        self.published(&mut state, &sha).await;
        Ok(Appended {
            offset: state.offset(),
            completed: Some((sha, etag)),
        })
    }

    /// What is kept of an upload whose object was published: nothing for a
    /// single-shot one; else its state, marked done, until it expires.
    async fn published(&self, state: &mut UploadState, sha: &[u8; 32]) {
        if state.single_shot {
            self.forget(state).await;
            return;
        }
        if let Some(t) = state.progress.tail.take() {
            self.delete_tail(&state.id, t.version).await;
        }
        state.done = Some(hex::encode(sha));
        let _ = self.write_state(state, PutMode::Overwrite).await;
    }

    /// Stores one step (a part, or the tail as a new tail object), then records it.
    async fn store_step(
        &self,
        key: &Key,
        state: &mut UploadState,
        hasher: &mut Sha256,
        hashed: &mut u64,
        step: StepData,
    ) -> Result<(), Error> {
        let record = step.record;
        let p = self.start_step(key, state, hasher, hashed, step);
        self.finish_step(state, p, record).await
    }

    /// Hashes what is new in one step and starts storing it, on a task of its own:
    /// the next step's bytes can arrive meanwhile. [`Bucket::finish_step`] records
    /// it; nothing else may be stored in between.
    fn start_step(
        &self,
        key: &Key,
        state: &UploadState,
        hasher: &mut Sha256,
        hashed: &mut u64,
        step: StepData,
    ) -> Pending {
        let StepData { data, is_tail, .. } = step;
        let data = data.freeze();
        let len = data.len() as u64;
        let start = state.progress.in_parts();
        // Hash only what is new: a prepended tail was hashed when it was stored.
        let skip = usize::try_from(hashed.saturating_sub(start)).unwrap_or(usize::MAX);
        if let Some(new) = data.get(skip..) {
            hasher.update(new);
        }
        *hashed = (*hashed).max(start + len);
        let store = Arc::clone(&self.store);
        let (step, upload) = if is_tail {
            let key = self.upload_key(
                &state.id,
                &format!(".tail.{}", state.progress.tail_versions + 1),
            );
            let upload = tokio::spawn(async move {
                store
                    .put(&key, PutPayload::from(data))
                    .await
                    .map(|_| String::new())
            });
            (Step::Tail { len }, upload)
        } else {
            let number = u32::try_from(state.progress.parts.len() + 1).unwrap_or(u32::MAX);
            let idx = usize::try_from(number - 1).unwrap_or(usize::MAX);
            let (key, multipart_id) = (key.clone(), state.multipart_id.clone());
            let upload = tokio::spawn(async move {
                store
                    .put_part(&key, &multipart_id, idx, PutPayload::from(data))
                    .await
                    .map(|p| p.content_id)
            });
            (Step::Part { number, len }, upload)
        };
        Pending {
            step,
            sha256_state: serialize(hasher),
            upload,
        }
    }

    /// Waits for a step started by [`Bucket::start_step`] to be stored, then records
    /// it (`record`; else the caller records the steps together). Stored first,
    /// recorded after: a crash between leaves the last record valid.
    async fn finish_step(
        &self,
        state: &mut UploadState,
        p: Pending,
        record: bool,
    ) -> Result<(), Error> {
        let etag = p
            .upload
            .await
            .map_err(|e| Error::Io(std::io::Error::other(e.to_string())))?
            .map_err(|e| io(&e))?;
        let old_tail = state.progress.tail;
        state.progress.apply(p.step, &etag);
        state.sha256_state = p.sha256_state;
        if record {
            self.write_state(state, PutMode::Overwrite).await?;
            if let Some(t) = old_tail {
                self.delete_tail(&state.id, t.version).await;
            }
        }
        Ok(())
    }

    async fn delete_tail(&self, id: &str, version: u32) {
        let _ = self
            .store
            .delete(&self.upload_key(id, &format!(".tail.{version}")))
            .await;
    }

    /// The digest record of the object at `dest`: its SHA-256, valid while the object
    /// keeps `etag`.
    async fn record_digest(&self, dest: &str, etag: &str, sha: &[u8; 32]) {
        let name = hex::encode(Sha256::digest(dest.as_bytes()));
        let record = serde_json::json!({
            "dest": dest,
            "etag": etag,
            "sha256": hex::encode(sha),
        });
        let _ = self
            .store
            .put(
                &self.key(&format!("{RESERVED}/digests/{name}.json")),
                PutPayload::from(record.to_string().into_bytes()),
            )
            .await;
    }

    /// The recorded SHA-256 of the object at `rel`, if its record matches `etag`.
    pub async fn digest(&self, rel: &RelPath, etag: &str) -> Option<[u8; 32]> {
        let name = hex::encode(Sha256::digest(rel.segments().join("/").as_bytes()));
        let got = self
            .store
            .get(&self.key(&format!("{RESERVED}/digests/{name}.json")))
            .await
            .ok()?;
        let v: serde_json::Value = serde_json::from_slice(&got.bytes().await.ok()?).ok()?;
        if quoted(v.get("etag")?.as_str()?) != quoted(etag) {
            return None;
        }
        hex::decode(v.get("sha256")?.as_str()?)
            .ok()?
            .try_into()
            .ok()
    }

    /// Drops an upload that will not complete: the multipart upload (its parts), the
    /// tail and the state.
    async fn abort(&self, state: &UploadState) {
        if let Ok(key) = self.object_key(state) {
            let _ = self.store.abort_multipart(&key, &state.multipart_id).await;
        }
        self.forget(state).await;
    }

    /// Where an upload's object is made: its destination, or for a partial upload
    /// `<id>.data` in the reserved area.
    fn object_key(&self, state: &UploadState) -> Result<Key, Error> {
        if state.partial {
            return Ok(self.upload_key(&state.id, ".data"));
        }
        let dest = RelPath::parse(&state.dest).map_err(|_| corrupt("destination"))?;
        self.key_of(&dest)
    }

    async fn forget(&self, state: &UploadState) {
        if let Some(t) = state.progress.tail {
            self.delete_tail(&state.id, t.version).await;
        }
        if state.partial {
            let _ = self
                .store
                .delete(&self.upload_key(&state.id, ".data"))
                .await;
        }
        let _ = self
            .store
            .delete(&self.upload_key(&state.id, ".info"))
            .await;
    }

    /// Assembles the finished partial uploads `ids` of `new.user`, in order, into
    /// upload `new` (its length: the most the whole may be) and publishes it like any
    /// upload: the parts' bytes are read back and written once more (S3's part copy
    /// is not in `object_store`), the whole file hashed and checked against what the
    /// sender announced before the object appears. The partials are then dropped.
    pub async fn concatenate(
        &self,
        ids: &[String],
        new: &NewUpload,
        ttl_secs: u64,
    ) -> Result<(UploadState, Appended), Error> {
        use futures_util::TryStreamExt as _;
        let mut partials = Vec::with_capacity(ids.len());
        for id in ids {
            let p = self.read_state(id).await?;
            p.info()?.check_concatenable(&new.user)?;
            // Every byte stored is not enough here: the partial's object must exist.
            if p.done.is_none() {
                return Err(Error::NotConcatenable("a partial upload is not finished"));
            }
            partials.push(p);
        }
        let length = concatenated_length(partials.iter().map(UploadState::offset), new.length)?;
        let whole = NewUpload {
            length: Some(length),
            ..new.clone()
        };
        let mut state = self.create(&whole, false, false, ttl_secs).await?;
        state.parts = ids.to_vec();
        self.write_state(&state, PutMode::Overwrite).await?;
        // Each partial's object, opened when its turn comes.
        let keys: Vec<Key> = partials
            .iter()
            .map(|p| self.upload_key(&p.id, ".data"))
            .collect();
        let store = Arc::clone(&self.store);
        let failed = |e: object_store::Error| std::io::Error::other(crate::summary(&e.to_string()));
        let body = futures_util::stream::iter(keys)
            .then(move |key| {
                let store = Arc::clone(&store);
                // Boxed: the stream then has one concrete, 'static type.
                async move {
                    let got = store.get(&key).await.map_err(failed)?;
                    Ok::<_, std::io::Error>(got.into_stream().map_err(failed).boxed())
                }
                .boxed()
            })
            .try_flatten()
            .boxed();
        let appended = self
            .append(&state.id, &new.user, 0, body, AppendOptions::default())
            .await;
        let appended = match appended {
            Ok(a) => a,
            Err(e) => {
                // The partials stay; the final goes.
                if let Ok(s) = self.read_state(&state.id).await {
                    self.abort(&s).await;
                }
                return Err(e);
            }
        };
        for p in &partials {
            self.forget(p).await;
        }
        let state = self.read_state(&state.id).await.unwrap_or(state);
        Ok((state, appended))
    }

    /// Ends upload `id` of `user` without a file (tus termination).
    pub async fn terminate(&self, id: &str, user: &str) -> Result<(), Error> {
        let state = self.read_state(id).await?;
        if state.user != user {
            return Err(Error::NotOwner);
        }
        self.abort(&state).await;
        Ok(())
    }

    /// Drops every upload expired by `now` (Unix seconds), wherever it was created:
    /// the state objects say when. Returns how many.
    pub async fn sweep_expired(&self, now: u64) -> Result<usize, Error> {
        use futures_util::TryStreamExt as _;
        let dir = self.key(&format!("{RESERVED}/uploads"));
        let mut listed = self.store.list(Some(&dir));
        let mut expired = Vec::new();
        while let Some(meta) = listed.try_next().await.map_err(|e| io(&e))? {
            let Some(name) = meta.location.filename() else {
                continue;
            };
            if let Some(id) = name.strip_suffix(".info") {
                expired.push(id.to_owned());
            }
        }
        let mut n = 0;
        for id in expired {
            if let Ok(state) = self.read_state(&id).await
                && state.expires <= now
            {
                self.abort(&state).await;
                n += 1;
            }
        }
        Ok(n)
    }
}
