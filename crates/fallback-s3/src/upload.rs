//! Resumable uploads into a bucket, from any instance: a multipart upload at the final
//! key, its state in `PREFIX/.fallback/uploads/<id>.info` (what the upload is, the
//! parts stored, the tail, the running SHA-256), the tail in `<id>.tail.<version>`, a
//! lease in `<id>.lock`. Nothing appears at the final key before
//! `CompleteMultipartUpload`, which runs only after the whole file's SHA-256 (computed
//! as the bytes arrive, carried across requests and instances in the state) matches
//! what the sender announced. Memory per request: one part buffer plus one chunk.

use std::collections::BTreeMap;

use bytes::{Bytes, BytesMut};
use fallback_engine::{Error, RESERVED, RelPath};
use futures_util::{Stream, StreamExt as _};
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
    /// tus `Upload-Metadata`, decoded.
    pub metadata: BTreeMap<String, String>,
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

    fn hasher(&self) -> Result<Sha256, Error> {
        let bytes = hex::decode(&self.sha256_state).map_err(|_| corrupt("sha256_state"))?;
        let state = bytes
            .as_slice()
            .try_into()
            .map_err(|_| corrupt("sha256_state"))?;
        Sha256::deserialize(state).map_err(|_| corrupt("sha256_state"))
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

    /// Starts an upload of `length` bytes (`None`: declared later) to `dest` for
    /// `user`: a multipart upload at the final key and its state object. Nothing is
    /// visible at `dest`.
    pub async fn create_upload(
        &self,
        user: &str,
        dest: &RelPath,
        length: Option<u64>,
        metadata: BTreeMap<String, String>,
        ttl_secs: u64,
    ) -> Result<UploadState, Error> {
        if length.is_some_and(|l| l > capacity(Some(l))) {
            return Err(Error::Limit(
                "the upload is larger than an S3 object can be (5 TiB)".to_owned(),
            ));
        }
        let key = self.key_of(dest)?;
        let mut nonce = [0u8; 16];
        getrandom::fill(&mut nonce).map_err(|e| Error::Io(std::io::Error::other(e)))?;
        let id = hex::encode(nonce);
        let multipart_id = self
            .store
            .create_multipart(&key)
            .await
            .map_err(|e| io(&e))?;
        let state = UploadState {
            id,
            user: user.to_owned(),
            dest: dest.segments().join("/"),
            length,
            metadata,
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
    /// as a tail; each stored step is recorded before the next. If the bytes complete
    /// the upload, its SHA-256 is checked against `expected` (when given) and only then
    /// is the object completed at its final key. A body that fails midway keeps what
    /// was recorded (the offset a client resumes from).
    pub async fn append<S>(
        &self,
        id: &str,
        user: &str,
        offset: u64,
        body: S,
        expected: Option<[u8; 32]>,
    ) -> Result<Appended, Error>
    where
        S: Stream<Item = Result<Bytes, std::io::Error>> + Unpin,
    {
        let mut holder = [0u8; 8];
        getrandom::fill(&mut holder).map_err(|e| Error::Io(std::io::Error::other(e)))?;
        let holder = hex::encode(holder);
        let mut held = self.lease(id, &holder).await?;
        let r = self
            .append_leased(id, user, offset, body, expected, &mut held)
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
        expected: Option<[u8; 32]>,
        held: &mut Held,
    ) -> Result<Appended, Error>
    where
        S: Stream<Item = Result<Bytes, std::io::Error>> + Unpin,
    {
        let mut state = self.read_state(id).await?;
        if state.user != user {
            return Err(Error::NotOwner);
        }
        if state.offset() != offset {
            return Err(Error::OffsetMismatch {
                actual: state.offset(),
            });
        }
        if state.length == Some(offset) && offset > 0 {
            return Err(Error::Finished);
        }
        let dest = RelPath::parse(&state.dest).map_err(|_| corrupt("destination"))?;
        let key = self.key_of(&dest)?;
        let mut hasher = state.hasher()?;
        // The buffer starts with the tail (already hashed).
        let mut buf = BytesMut::new();
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
            buf.extend_from_slice(&chunk);
            // Full parts go as soon as they fill: one part buffer at most.
            while buf.len() as u64 >= state.part_size {
                let part = buf.split_to(usize::try_from(state.part_size).unwrap_or(usize::MAX));
                self.store_step(&key, &mut state, &mut hasher, &mut hashed, part, false)
                    .await?;
                self.renew(id, held).await?;
            }
        }
        let completes = failed.is_none() && state.length == Some(received);
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
                let is_tail = matches!(step, Step::Tail { .. });
                self.store_step(&key, &mut state, &mut hasher, &mut hashed, data, is_tail)
                    .await?;
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
        if expected.is_some_and(|e| e != sha) {
            // The bytes stored are not the sender's file: none are kept.
            self.abort(&state).await;
            return Err(Error::ChecksumMismatch);
        }
        if state.progress.parts.is_empty() {
            // An empty file: a multipart upload needs a part, a plain object does not.
            let _ = self.store.abort_multipart(&key, &state.multipart_id).await;
            let done = self
                .store
                .put(&key, PutPayload::default())
                .await
                .map_err(|e| io(&e))?;
            let etag = done.e_tag.unwrap_or_default();
            self.record_digest(&state.dest, &etag, &sha).await;
            self.forget(&state).await;
            return Ok(Appended {
                offset: 0,
                completed: Some((sha, etag)),
            });
        }
        let parts = state
            .progress
            .parts
            .iter()
            .map(|p| PartId {
                content_id: p.etag.clone(),
            })
            .collect();
        let done = self
            .store
            .complete_multipart(&key, &state.multipart_id, parts)
            .await
            .map_err(|e| io(&e))?;
        let etag = done.e_tag.unwrap_or_default();
        self.record_digest(&state.dest, &etag, &sha).await;
        self.forget(&state).await;
        Ok(Appended {
            offset: state.offset(),
            completed: Some((sha, etag)),
        })
    }

    /// Stores one step (a part, or the tail as a new tail object), then records it.
    async fn store_step(
        &self,
        key: &Key,
        state: &mut UploadState,
        hasher: &mut Sha256,
        hashed: &mut u64,
        data: BytesMut,
        is_tail: bool,
    ) -> Result<(), Error> {
        let data = data.freeze();
        let len = data.len() as u64;
        let start = state.progress.in_parts();
        // Hash only what is new: a prepended tail was hashed when it was stored.
        let skip = usize::try_from(hashed.saturating_sub(start)).unwrap_or(usize::MAX);
        if let Some(new) = data.get(skip..) {
            hasher.update(new);
        }
        *hashed = (*hashed).max(start + len);
        let old_tail = state.progress.tail;
        // Stored first, recorded after: a crash between leaves the last record valid.
        let (step, etag) = if is_tail {
            let key = self.upload_key(
                &state.id,
                &format!(".tail.{}", state.progress.tail_versions + 1),
            );
            self.store
                .put(&key, PutPayload::from(data))
                .await
                .map_err(|e| io(&e))?;
            (Step::Tail { len }, String::new())
        } else {
            let number = u32::try_from(state.progress.parts.len() + 1).unwrap_or(u32::MAX);
            let idx = usize::try_from(number - 1).unwrap_or(usize::MAX);
            let part = self
                .store
                .put_part(key, &state.multipart_id, idx, PutPayload::from(data))
                .await
                .map_err(|e| io(&e))?;
            (Step::Part { number, len }, part.content_id)
        };
        state.progress.apply(step, &etag);
        state.sha256_state = serialize(hasher);
        self.write_state(state, PutMode::Overwrite).await?;
        if let Some(t) = old_tail {
            self.delete_tail(&state.id, t.version).await;
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
        if v.get("etag")?.as_str()? != etag {
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
        if let Ok(Ok(key)) = RelPath::parse(&state.dest).map(|d| self.key_of(&d)) {
            let _ = self.store.abort_multipart(&key, &state.multipart_id).await;
        }
        self.forget(state).await;
    }

    async fn forget(&self, state: &UploadState) {
        if let Some(t) = state.progress.tail {
            self.delete_tail(&state.id, t.version).await;
        }
        let _ = self
            .store
            .delete(&self.upload_key(&state.id, ".info"))
            .await;
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
