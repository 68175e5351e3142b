//! Uploads in progress: created, appended to, completed atomically, terminated.

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read as _, Seek as _, SeekFrom, Write as _};

use cap_std::fs::{Dir, OpenOptions};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::digest::{hash_from_start, hex, record_digest, unhex32};
use crate::now_unix;
use crate::relpath::RelPath;
use crate::relpath::STAGING;
use crate::store::Storage;
use crate::{Error, Result, Step};

/// The chunk digests [`ChunkChecksum`] verifies, as tus `Tus-Checksum-Algorithm` lists
/// them.
pub const CHECKSUM_ALGORITHMS: &str = "sha1,md5,sha256";

/// The expected digest of one chunk (tus `Upload-Checksum`): the chunk is stored only
/// if its bytes have it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChunkChecksum {
    /// SHA-1 (tuspy's only algorithm).
    Sha1([u8; 20]),
    /// MD5.
    Md5([u8; 16]),
    /// SHA-256.
    Sha256([u8; 32]),
}

/// An upload's id: 128 random bits, 32 lowercase hex characters. Unguessable, and safe
/// as a file name because nothing else parses.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct UploadId(String);

impl UploadId {
    fn random() -> Result<Self> {
        let mut b = [0u8; 16];
        getrandom::fill(&mut b).map_err(|e| Error::Io(std::io::Error::other(e.to_string())))?;
        Ok(UploadId(hex(&b)))
    }

    /// Parses an id from a URL; anything but 32 lowercase hex characters is `None`.
    pub fn parse(s: &str) -> Option<Self> {
        (s.len() == 32 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
            .then(|| UploadId(s.to_owned()))
    }

    /// The id text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    fn part(&self) -> String {
        format!("{}.part", self.0)
    }

    fn state(&self) -> String {
        format!("{}.json", self.0)
    }

    fn tmp_state(&self) -> String {
        format!("{}.json.tmp", self.0)
    }

    /// The record of a finished upload: its state, renamed when the file was published.
    fn done(&self) -> String {
        format!("{}.done", self.0)
    }
}

/// Extended attribute on a finished upload's record: the SHA-256 (hex) of the file it
/// published.
const DONE_XATTR: &str = "user.fallback.done";

/// A staging file's path relative to the docroot, for [`Step`]s.
fn staged(name: &str) -> String {
    format!("{STAGING}/{name}")
}

/// A final path relative to the docroot, for [`Step`]s.
fn rel(p: &RelPath) -> String {
    p.to_string().trim_start_matches('/').to_owned()
}

impl std::fmt::Display for UploadId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// What to create.
#[derive(Debug, Clone)]
pub struct NewUpload {
    /// The owner: only requests for this user may touch the upload.
    pub user: String,
    /// Final path, beneath the docroot.
    pub dest: RelPath,
    /// Declared length; `None` for a single-shot upload whose end is the body's end.
    pub length: Option<u64>,
    /// Client metadata (tus `Upload-Metadata`), kept as given.
    pub metadata: Vec<(String, String)>,
    /// Expected SHA-256 of the whole file, checked before it becomes visible.
    pub expected_sha256: Option<[u8; 32]>,
    /// Never replace an existing file (HTTP `If-None-Match: *`): refused at creation if
    /// the destination exists, and the completing rename fails rather than overwrite
    /// one that appeared meanwhile.
    pub no_replace: bool,
    /// Modes of the published file and of directories made for it.
    pub modes: Modes,
}

/// The exact modes given to what an upload creates (aspera.conf `file_create_mode`,
/// `directory_create_mode` or their grant masks); `None`: what the umask leaves.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Modes {
    /// The published file's mode.
    pub file: Option<u32>,
    /// The mode of each directory created on the way to it.
    pub dir: Option<u32>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct State {
    version: u32,
    user: String,
    dest: String,
    length: Option<u64>,
    metadata: Vec<(String, String)>,
    expected_sha256: Option<String>,
    created_at: u64,
    expires_at: u64,
    #[serde(default)]
    no_replace: bool,
    #[serde(default)]
    concat: Concat,
    /// For a final upload, the partial uploads it was assembled from, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    parts: Vec<String>,
    /// A single-shot upload (HTTP PUT): not resumable, removed when its body breaks,
    /// and nobody asks about it once it is published. A typed field, never metadata a
    /// client could send. (States written before it existed read as resumable: at
    /// worst an old PUT's bytes wait for the sweep.)
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    single_shot: bool,
    /// Exact mode of the published file (states written before it: the umask's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    file_mode: Option<u32>,
    /// Exact mode of directories created for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    dir_mode: Option<u32>,
}

/// tus concatenation: what an upload is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Concat {
    /// An ordinary upload of one file.
    #[default]
    None,
    /// `Upload-Concat: partial`: bytes for a later final upload; never published alone.
    Partial,
    /// `Upload-Concat: final`: assembled from partial uploads; takes no PATCH.
    Final,
}

/// An upload in progress, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadInfo {
    /// Its id.
    pub id: UploadId,
    /// Its owner.
    pub user: String,
    /// Final path.
    pub dest: RelPath,
    /// Declared length (`None`: single shot, unknown).
    pub length: Option<u64>,
    /// Bytes received and stored so far.
    pub offset: u64,
    /// Client metadata.
    pub metadata: Vec<(String, String)>,
    /// Expiry, Unix seconds.
    pub expires_at: u64,
    /// Ordinary, partial or final (tus concatenation).
    pub concat: Concat,
    /// For a final upload, the partial uploads it was assembled from, in order.
    pub parts: Vec<UploadId>,
    /// The upload is finished: its file was published (or, for a partial, every byte
    /// is stored). A finished upload stays answerable until it expires.
    pub done: bool,
    /// For a finished upload, the SHA-256 of the file it published, when known.
    pub sha256: Option<[u8; 32]>,
    /// A single-shot upload (HTTP PUT): it cannot resume.
    pub single_shot: bool,
}

/// The length of a file assembled from partial uploads of `lengths` bytes, in order,
/// if it is at most `max`: the tus concatenation rule every store applies.
pub fn concatenated_length(
    lengths: impl IntoIterator<Item = u64>,
    max: Option<u64>,
) -> Result<u64> {
    let mut total: Option<u64> = None;
    for len in lengths {
        total = Some(total.unwrap_or(0).checked_add(len).ok_or(Error::Limit(
            "the partial uploads are too large together".to_owned(),
        ))?);
    }
    let total = total.ok_or(Error::NotConcatenable(
        "a final upload names no partial upload",
    ))?;
    if let Some(max) = max
        && total > max
    {
        return Err(Error::Limit(format!("uploads are limited to {max} bytes")));
    }
    Ok(total)
}

impl UploadInfo {
    /// Whether a final upload of `user` may take this upload in: it is `user`'s, a
    /// partial upload, and finished.
    pub fn check_concatenable(&self, user: &str) -> Result<()> {
        if self.user != user {
            return Err(Error::NotOwner);
        }
        if self.concat != Concat::Partial {
            return Err(Error::NotConcatenable(
                "only partial uploads can be concatenated",
            ));
        }
        if self.length != Some(self.offset) {
            return Err(Error::NotConcatenable("a partial upload is not finished"));
        }
        Ok(())
    }
    /// The info of upload `id` from its state, at `offset`; `done` when finished, with
    /// the digest of what it published when known.
    fn of(
        id: &UploadId,
        state: State,
        offset: u64,
        done: bool,
        sha256: Option<[u8; 32]>,
    ) -> Result<Self> {
        Ok(UploadInfo {
            id: id.clone(),
            user: state.user,
            dest: RelPath::parse(&state.dest).map_err(|_| Error::UnknownUpload)?,
            length: state.length,
            offset,
            metadata: state.metadata,
            expires_at: state.expires_at,
            concat: state.concat,
            parts: state
                .parts
                .iter()
                .filter_map(|p| UploadId::parse(p))
                .collect(),
            done,
            sha256,
            single_shot: state.single_shot,
        })
    }
}

/// A file that became visible at its final path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Completed {
    /// Final path.
    pub path: RelPath,
    /// Size in bytes.
    pub size: u64,
    /// SHA-256 of the content.
    pub sha256: [u8; 32],
}

/// The result of an append.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppendOutcome {
    /// Bytes stored after this append.
    pub offset: u64,
    /// Set when this append completed the upload.
    pub completed: Option<Completed>,
}

/// Staging files that belong to no upload (left by a crash between creating the data
/// file and renaming the state in) are removed by the sweep once this old.
const ORPHAN_AGE: std::time::Duration = std::time::Duration::from_secs(3600);

/// Uploads in progress per user.
const MAX_UPLOADS_PER_USER: usize = 1000;

impl Storage {
    /// fsync of a directory (`rel_path` names it for the fault hook), so a rename or a
    /// new entry in it is durable. (A `Dir` handle is opened `O_PATH`, which cannot be
    /// synced: open the directory itself read-only.)
    ///
    /// Shared with every request that needs the same directory durable at the same
    /// time ([`crate::group`]): a tree's files published together into one folder cost
    /// one fsync of it per batch, not one each.
    fn sync_dir(&self, dir: &Dir, rel_path: &str) -> Result<()> {
        use std::os::unix::fs::MetadataExt as _;
        let d = dir.open(".").map_err(Error::io)?.into_std();
        let m = d.metadata().map_err(Error::io)?;
        let key = (m.dev(), m.ino());
        let group = self
            .groups
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .entry(key)
            .or_default()
            .clone();
        let r = group.sync(self, &d, || Step::SyncDir(rel_path.to_owned()));
        let mut groups = self
            .groups
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // Forgotten when nobody else uses it (the map, and this call, hold it).
        if std::sync::Arc::strong_count(&group) == 2 {
            groups.remove(&key);
        }
        r
    }

    fn read_state(&self, id: &UploadId) -> Result<State> {
        let mut f = match self.staging.open(id.state()) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::UnknownUpload);
            }
            Err(e) => return Err(Error::io(e)),
        };
        let mut text = String::new();
        f.read_to_string(&mut text).map_err(Error::io)?;
        serde_json::from_str(&text)
            .map_err(|e| Error::Io(std::io::Error::other(format!("upload state {id}: {e}"))))
    }

    fn info(&self, id: &UploadId, state: State) -> Result<UploadInfo> {
        let offset = match self.staging.metadata(id.part()) {
            Ok(m) => m.len(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                // The data file was renamed into place, and then the record could not be
                // renamed (a failed directory fsync, a crash): the upload is finished.
                if state.single_shot {
                    let _ = self.remove_upload(id);
                    return Err(Error::UnknownUpload);
                }
                let _ = self.mark_done(id, None);
                return self.done_info(id, state, None);
            }
            Err(e) => return Err(Error::io(e)),
        };
        UploadInfo::of(id, state, offset, false, None)
    }

    /// What a finished upload reports: its whole length, and the digest of what it
    /// published (recorded on its record, else the one recorded on the file at its
    /// path while that file still has the upload's length).
    fn done_info(
        &self,
        id: &UploadId,
        state: State,
        sha256: Option<[u8; 32]>,
    ) -> Result<UploadInfo> {
        let dest = RelPath::parse(&state.dest).map_err(|_| Error::UnknownUpload)?;
        let length = state.length.unwrap_or(0);
        let sha256 = sha256.or_else(|| {
            if state.concat == Concat::Partial {
                return None;
            }
            let (f, e) = self.open_read(&dest).ok()?;
            drop(f);
            e.sha256.filter(|_| e.size == length)
        });
        UploadInfo::of(id, state, length, true, sha256)
    }

    /// Reads a finished upload's record and the digest recorded on it.
    fn read_done(&self, id: &UploadId) -> Result<(State, Option<[u8; 32]>)> {
        let mut f = match self.staging.open(id.done()) {
            Ok(f) => f.into_std(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::UnknownUpload);
            }
            Err(e) => return Err(Error::io(e)),
        };
        let mut text = String::new();
        f.read_to_string(&mut text).map_err(Error::io)?;
        let state: State = serde_json::from_str(&text)
            .map_err(|e| Error::Io(std::io::Error::other(format!("upload record {id}: {e}"))))?;
        let mut buf = [0u8; 64];
        let digest = rustix::fs::fgetxattr(&f, DONE_XATTR, &mut buf)
            .ok()
            .and_then(|n| std::str::from_utf8(&buf[..n]).ok().and_then(unhex32));
        Ok((state, digest))
    }

    /// Marks an upload finished: its state becomes its record (one rename), with the
    /// digest of what it published. The rename is not synced: its data file is gone from
    /// the staging area (published), and a state without its data file reads as
    /// finished ([`Storage::info`]) and is marked again, so a crash loses nothing.
    fn mark_done(&self, id: &UploadId, sha256: Option<&[u8; 32]>) -> Result<()> {
        if let Some(d) = sha256
            && let Ok(f) = self.staging.open(id.state())
        {
            // Best effort: without user xattrs the digest is read from the file itself.
            let _ = rustix::fs::fsetxattr(
                f.into_std(),
                DONE_XATTR,
                hex(d).as_bytes(),
                rustix::fs::XattrFlags::empty(),
            );
        }
        self.fault(|| Step::Rename(staged(&id.state()), staged(&id.done())))?;
        match self.staging.rename(id.state(), &self.staging, id.done()) {
            Ok(()) => {}
            // Marked meanwhile (a HEAD or the sweep saw the data file gone first).
            Err(e)
                if e.kind() == std::io::ErrorKind::NotFound && self.staging.exists(id.done()) => {}
            Err(e) => return Err(Error::io(e)),
        }
        self.track(id, None);
        if let Ok(mut d) = self.digests.lock() {
            d.remove(id.as_str());
        }
        Ok(())
    }

    /// Ids of every upload in the staging area.
    fn upload_ids(&self) -> Result<Vec<UploadId>> {
        Ok(self
            .staging
            .entries()
            .map_err(Error::io)?
            .flatten()
            .filter_map(|e| {
                e.file_name()
                    .to_str()
                    .and_then(|n| n.strip_suffix(".json"))
                    .and_then(UploadId::parse)
            })
            .collect())
    }

    /// How many uploads are in progress (staged, not yet completed or expired).
    pub fn upload_count(&self) -> Result<usize> {
        Ok(self.upload_ids()?.len())
    }

    /// Uploads in progress in the staging area, id to user.
    fn scan_in_progress(&self) -> Result<HashMap<String, String>> {
        Ok(self
            .upload_ids()?
            .into_iter()
            .filter_map(|id| {
                let user = self.read_state(&id).ok()?.user;
                Some((id.as_str().to_owned(), user))
            })
            .collect())
    }

    /// How many uploads `user` has in progress: from what this process knows, and
    /// counted exactly from the staging area before a refusal.
    fn uploads_of(&self, user: &str) -> Result<usize> {
        let mut known = self
            .in_progress
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let count = |m: &HashMap<String, String>| m.values().filter(|u| *u == user).count();
        if let Some(m) = known.as_ref()
            && count(m) < MAX_UPLOADS_PER_USER
        {
            return Ok(count(m));
        }
        let exact = self.scan_in_progress()?;
        let n = count(&exact);
        *known = Some(exact);
        Ok(n)
    }

    /// Keeps [`Storage::in_progress`] up to date (once it has been read).
    fn track(&self, id: &UploadId, user: Option<&str>) {
        let mut known = self
            .in_progress
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(m) = known.as_mut() {
            match user {
                Some(u) => {
                    m.insert(id.as_str().to_owned(), u.to_owned());
                }
                None => {
                    m.remove(id.as_str());
                }
            }
        }
    }

    /// Creates an upload: its state is durable before this returns.
    pub fn create_upload(&self, new: NewUpload) -> Result<UploadInfo> {
        self.create(new, Concat::None)
    }

    /// Creates an upload whose first bytes arrive in the same request (tus
    /// creation-with-upload). Nobody knows of it until that request is answered, so
    /// nothing is made durable yet: an append that completes it publishes it durably
    /// (the file's fsync, the rename, its directory's fsync: the creation costs no
    /// fsync of its own), and one that leaves it unfinished makes the creation durable
    /// before it reports the offset. Before answering with the upload's URL in any other
    /// way (an append that failed), call [`Storage::settle`]. An upload never answered
    /// is an orphan the sweep removes.
    ///
    /// Returns the writer of those first bytes (`chunk`: their expected digest, as for
    /// [`Storage::writer`]), at offset 0; its [`UploadWriter::info`] is the upload.
    pub fn create_with_body(
        &self,
        new: NewUpload,
        chunk: Option<ChunkChecksum>,
    ) -> Result<UploadWriter<'_>> {
        let (id, state, part) = self.create_files_of(new, Concat::None, &[], false, false)?;
        self.deferred
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(id.as_str().to_owned(), std::time::Instant::now());
        // Nobody else knows of it yet; locked all the same, like any writer.
        rustix::fs::flock(&part, rustix::fs::FlockOperation::NonBlockingLockExclusive)
            .map_err(|e| Error::Io(e.into()))?;
        let info = UploadInfo::of(&id, state.clone(), 0, false, None)?;
        Ok(UploadWriter::new(
            self,
            info,
            part,
            Sha256::new(),
            chunk,
            Some(state),
        ))
    }

    /// Makes the creation of an upload made by [`Storage::create_with_body`]
    /// durable (its data file, its state, their names), so it can be reported; nothing
    /// to do for any other upload, or once done.
    ///
    /// # Errors
    /// A failed fsync: the upload must not be reported (it is settled again at the
    /// next call).
    pub fn settle(&self, id: &UploadId) -> Result<()> {
        let mut deferred = self
            .deferred
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let Some(created) = deferred.remove(id.as_str()) else {
            return Ok(());
        };
        drop(deferred);
        let synced = (|| {
            for name in [id.part(), id.state()] {
                self.fault(|| Step::SyncFile(staged(&name)))?;
                let f = match self.staging.open(&name) {
                    Ok(f) => f,
                    // Completed or removed meanwhile: nothing left to settle.
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
                    Err(e) => return Err(Error::io(e)),
                };
                f.sync_all().map_err(Error::io)?;
            }
            self.sync_dir(&self.staging, STAGING)
        })();
        if synced.is_err() {
            self.deferred
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .insert(id.as_str().to_owned(), created);
        }
        synced
    }

    /// Creates a partial upload (tus `Upload-Concat: partial`) of `length` bytes for
    /// `user`: it is written like any upload but never published alone; a final upload
    /// ([`Storage::concatenate`]) assembles it with others.
    pub fn create_partial(
        &self,
        user: &str,
        length: u64,
        metadata: Vec<(String, String)>,
    ) -> Result<UploadInfo> {
        self.create(
            NewUpload {
                user: user.to_owned(),
                dest: RelPath::root(),
                length: Some(length),
                metadata,
                expected_sha256: None,
                no_replace: false,
                modes: Modes::default(),
            },
            Concat::Partial,
        )
    }

    fn create(&self, new: NewUpload, concat: Concat) -> Result<UploadInfo> {
        self.create_with_parts(new, concat, &[], false, true)
    }

    /// Creates an upload's files; `durable`: synced before this returns (for a creation
    /// answered before any bytes arrive); otherwise the first answer about it makes it
    /// durable (publication, or [`Storage::settle`]).
    fn create_with_parts(
        &self,
        new: NewUpload,
        concat: Concat,
        parts: &[UploadId],
        single_shot: bool,
        durable: bool,
    ) -> Result<UploadInfo> {
        let (id, state, part) = self.create_files_of(new, concat, parts, single_shot, durable)?;
        drop(part);
        self.info(&id, state)
    }

    /// [`Storage::create_with_parts`], giving the new upload's id, state and data file.
    fn create_files_of(
        &self,
        new: NewUpload,
        concat: Concat,
        parts: &[UploadId],
        single_shot: bool,
        durable: bool,
    ) -> Result<(UploadId, State, File)> {
        if concat != Concat::Partial && new.dest.is_root() {
            return Err(Error::WrongKind("the destination is the docroot itself"));
        }
        if concat != Concat::Partial {
            self.check_parent(&new.dest)?;
        }
        if new.no_replace && self.exists(&new.dest) {
            return Err(Error::Exists);
        }
        if self.uploads_of(&new.user)? >= MAX_UPLOADS_PER_USER {
            return Err(Error::Limit(format!(
                "{MAX_UPLOADS_PER_USER} uploads in progress already; finish or delete some"
            )));
        }
        let id = UploadId::random()?;
        let now = now_unix();
        let state = State {
            version: 1,
            user: new.user,
            dest: new.dest.to_string(),
            length: new.length,
            metadata: new.metadata,
            expected_sha256: new.expected_sha256.map(|d| hex(&d)),
            created_at: now,
            expires_at: now.saturating_add(self.upload_ttl.as_secs()),
            no_replace: new.no_replace,
            concat,
            parts: parts.iter().map(|p| p.as_str().to_owned()).collect(),
            single_shot,
            file_mode: new.modes.file,
            dir_mode: new.modes.dir,
        };
        let json = serde_json::to_vec(&state).map_err(|e| Error::Io(std::io::Error::other(e)))?;
        // Data file first (empty), then the state, written aside and renamed in.
        match self.create_files(&id, &json, durable) {
            Ok(part) => {
                self.track(&id, Some(&state.user));
                Ok((id, state, part))
            }
            Err(e) => {
                // Best effort: the sweep removes what this leaves (crash, full disk).
                for name in [id.part(), id.tmp_state(), id.state()] {
                    let _ = self.staging.remove_file(name);
                }
                Err(e)
            }
        }
    }

    /// Writes a new upload's data file (empty, returned open for reading and writing)
    /// and state.
    fn create_files(&self, id: &UploadId, json: &[u8], durable: bool) -> Result<File> {
        self.fault(|| Step::Create(staged(&id.part())))?;
        let part = self
            .staging
            .open_with(
                id.part(),
                OpenOptions::new().read(true).write(true).create_new(true),
            )
            .map_err(Error::io)?
            .into_std();
        if durable {
            self.fault(|| Step::SyncFile(staged(&id.part())))?;
            part.sync_all().map_err(Error::io)?;
        }
        // Written aside and renamed in when it is to be durable now (never a torn state
        // after a crash); written in place otherwise: nobody reads it before the upload
        // is answered, and one a crash tore is an orphan the sweep removes.
        let name = if durable { id.tmp_state() } else { id.state() };
        self.fault(|| Step::Create(staged(&name)))?;
        let mut f = self
            .staging
            .open_with(&name, OpenOptions::new().write(true).create_new(true))
            .map_err(Error::io)?;
        self.fault(|| Step::Write(staged(&name), json.len()))?;
        f.write_all(json).map_err(Error::io)?;
        if durable {
            self.fault(|| Step::SyncFile(staged(&name)))?;
            f.sync_all().map_err(Error::io)?;
            self.fault(|| Step::Rename(staged(&name), staged(&id.state())))?;
            self.staging
                .rename(&name, &self.staging, id.state())
                .map_err(Error::io)?;
            self.sync_dir(&self.staging, STAGING)?;
        }
        Ok(part)
    }

    /// An upload's state and offset, in progress or finished. Expired uploads are
    /// removed and reported unknown.
    pub fn upload(&self, id: &UploadId) -> Result<UploadInfo> {
        let state = match self.read_state(id) {
            Ok(state) => state,
            Err(Error::UnknownUpload) => {
                let (state, digest) = self.read_done(id)?;
                if now_unix() > state.expires_at {
                    self.remove_upload(id)?;
                    return Err(Error::UnknownUpload);
                }
                return self.done_info(id, state, digest);
            }
            Err(e) => return Err(e),
        };
        if now_unix() > state.expires_at {
            self.remove_upload(id)?;
            return Err(Error::UnknownUpload);
        }
        self.info(id, state)
    }

    /// Like [`Storage::upload`], but first waits up to `wait` for a writer of this
    /// upload (in any process) to finish, so the offset reported is not one that is
    /// still growing. After `wait` the current offset is reported anyway: a client that
    /// sends from a stale offset gets a mismatch, never a corrupt file.
    pub fn upload_settled(&self, id: &UploadId, wait: std::time::Duration) -> Result<UploadInfo> {
        let deadline = std::time::Instant::now() + wait;
        if let Ok(f) = self
            .staging
            .open(id.part())
            .map(cap_std::fs::File::into_std)
        {
            // Locked by a writer: wait; locked or failed otherwise: stop waiting.
            while rustix::fs::flock(&f, rustix::fs::FlockOperation::NonBlockingLockShared)
                == Err(rustix::io::Errno::WOULDBLOCK)
                && std::time::Instant::now() < deadline
            {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            // The shared lock is released when `f` closes, right after this read.
            drop(f);
        }
        let info = self.upload(id)?;
        if !info.done && info.concat != Concat::Partial && info.length == Some(info.offset) {
            // Every byte is here and durable, but the upload did not complete (a crash or
            // an error between the last fsync and the rename): complete it now, or the
            // client, seeing its whole length acknowledged, would never send again.
            self.complete_whole(&info)?;
            return Ok(self.reread(info));
        }
        Ok(info)
    }

    fn complete_whole(&self, info: &UploadInfo) -> Result<()> {
        let mut file = match self.lock_part(&info.id) {
            Ok(f) => f,
            // Someone is on it.
            Err(Error::Locked) => return Ok(()),
            Err(e) => return Err(e),
        };
        let h = hash_from_start(&mut file)?;
        let sealed = self.seal(&info.id, &file, h, None)?;
        self.publish(&info.id, sealed, &info.dest).map(|_| ())
    }

    /// A finished upload's info after [`Storage::upload_settled`] completed it.
    fn reread(&self, info: UploadInfo) -> UploadInfo {
        if info.done {
            return info;
        }
        self.upload(&info.id).unwrap_or(info)
    }

    fn remove_upload(&self, id: &UploadId) -> Result<()> {
        self.remove_files(id)?;
        self.sync_dir(&self.staging, STAGING)
    }

    /// Removes an upload's files from the staging area, not durably: for one whose
    /// state is harmless if it comes back (a published PUT's: see [`Storage::info`]).
    fn remove_files(&self, id: &UploadId) -> Result<()> {
        for name in [id.state(), id.part(), id.done()] {
            self.fault(|| Step::Remove(staged(&name)))?;
            match self.staging.remove_file(&name) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io(e)),
            }
        }
        self.track(id, None);
        if let Ok(mut d) = self.digests.lock() {
            d.remove(id.as_str());
        }
        self.deferred
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(id.as_str());
        Ok(())
    }

    /// Deletes an upload of `user` (tus termination).
    pub fn terminate(&self, id: &UploadId, user: &str) -> Result<()> {
        let info = self.upload(id)?;
        if info.user != user {
            return Err(Error::NotOwner);
        }
        // Wait for no writer: the lock is taken and released (a finished upload has no
        // data file left, only its record).
        if !info.done || info.concat == Concat::Partial {
            let part = self.lock_part(id)?;
            drop(part);
        }
        self.remove_upload(id)
    }

    /// Removes uploads past their expiry, and staging files of no upload (a crash
    /// between creating an upload's files) older than an hour; returns how many uploads.
    /// Only the staging area is ever touched.
    pub fn sweep_expired(&self) -> Result<usize> {
        // Read again from the staging area at the next creation: other instances
        // sharing it create and finish uploads too.
        *self
            .in_progress
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = None;
        self.deferred
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .retain(|_, created| created.elapsed() < ORPHAN_AGE);
        let mut expired = 0;
        for id in self.upload_ids()? {
            match self.upload(&id) {
                Err(Error::UnknownUpload) => expired += 1,
                Err(_) if self.is_orphan_state(&id) => {
                    self.remove_upload(&id)?;
                    expired += 1;
                }
                _ => {}
            }
        }
        let names: Vec<String> = self
            .staging
            .entries()
            .map_err(Error::io)?
            .flatten()
            .filter_map(|e| e.file_name().into_string().ok())
            .collect();
        // Records of finished uploads, past their expiry.
        for id in names
            .iter()
            .filter_map(|n| n.strip_suffix(".done").and_then(UploadId::parse))
        {
            if matches!(self.upload(&id), Err(Error::UnknownUpload)) {
                expired += 1;
            }
        }
        for name in &names {
            let stem = name
                .strip_suffix(".json.tmp")
                .or_else(|| name.strip_suffix(".part"));
            let orphan = stem
                .and_then(UploadId::parse)
                .is_some_and(|id| !names.contains(&id.state()) && self.older_than_orphan_age(name));
            if orphan {
                self.fault(|| Step::Remove(staged(name)))?;
                let _ = self.staging.remove_file(name);
            }
        }
        Ok(expired)
    }

    /// A staging file last changed more than [`ORPHAN_AGE`] ago.
    fn older_than_orphan_age(&self, name: &str) -> bool {
        self.staging
            .metadata(name)
            .and_then(|m| m.modified())
            .is_ok_and(|t| t.into_std().elapsed().is_ok_and(|age| age > ORPHAN_AGE))
    }

    /// A state that cannot be read back, older than [`ORPHAN_AGE`]: what a crash leaves
    /// of a creation never made durable (nobody was told of it: see
    /// [`Storage::create_with_body`]).
    fn is_orphan_state(&self, id: &UploadId) -> bool {
        self.older_than_orphan_age(&id.state())
            && self
                .staging
                .read_to_string(id.state())
                .is_ok_and(|text| serde_json::from_str::<State>(&text).is_err())
    }

    fn lock_part(&self, id: &UploadId) -> Result<File> {
        let f = self
            .staging
            .open_with(id.part(), OpenOptions::new().read(true).write(true))
            .map_err(|e| {
                if e.kind() == std::io::ErrorKind::NotFound {
                    Error::UnknownUpload
                } else {
                    Error::io(e)
                }
            })?
            .into_std();
        // One writer per upload, across processes sharing the storage.
        rustix::fs::flock(&f, rustix::fs::FlockOperation::NonBlockingLockExclusive).map_err(
            |e| {
                if e == rustix::io::Errno::WOULDBLOCK {
                    Error::Locked
                } else {
                    Error::Io(e.into())
                }
            },
        )?;
        Ok(f)
    }

    /// Starts appending to `id` at `offset` for `user`. `chunk` is the expected digest
    /// of exactly the bytes of this append (tus checksum extension).
    pub fn writer(
        &self,
        id: &UploadId,
        user: &str,
        offset: u64,
        chunk: Option<ChunkChecksum>,
    ) -> Result<UploadWriter<'_>> {
        let info = self.upload(id)?;
        if info.user != user {
            return Err(Error::NotOwner);
        }
        if info.done {
            return Err(Error::Finished);
        }
        if info.concat == Concat::Final {
            return Err(Error::WrongKind("a final upload takes no PATCH"));
        }
        let mut file = self.lock_part(id)?;
        // The offset under the lock is the truth.
        let actual = file.metadata().map_err(Error::io)?.len();
        if actual != offset {
            return Err(Error::OffsetMismatch { actual });
        }
        let cached = self
            .digests
            .lock()
            .ok()
            .and_then(|mut d| d.remove(id.as_str()))
            .filter(|(o, _)| *o == actual)
            .map(|(_, h)| h);
        let whole = if let Some(h) = cached {
            h
        } else if actual == 0 {
            Sha256::new()
        } else {
            // Recover the running digest from the stored bytes (after a restart, or
            // when another instance wrote the previous chunk).
            hash_from_start(&mut file)?
        };
        file.seek(SeekFrom::Start(actual)).map_err(Error::io)?;
        Ok(UploadWriter::new(
            self,
            UploadInfo {
                offset: actual,
                ..info
            },
            file,
            whole,
            chunk,
            None,
        ))
    }

    /// Starts a single-shot upload of `dest` (HTTP PUT): not resumable; if it does not
    /// finish, [`UploadWriter::abort`] removes it.
    pub fn put(
        &self,
        user: &str,
        dest: &RelPath,
        length: Option<u64>,
        expected_sha256: Option<[u8; 32]>,
        no_replace: bool,
        modes: Modes,
    ) -> Result<UploadWriter<'_>> {
        let info = self.create_with_parts(
            NewUpload {
                user: user.to_owned(),
                dest: dest.clone(),
                length,
                metadata: Vec::new(),
                expected_sha256,
                no_replace,
                modes,
            },
            Concat::None,
            &[],
            true,
            // Never answered before it is published or removed.
            false,
        )?;
        self.writer(&info.id, user, 0, None)
    }

    /// tus `Upload-Concat: final`: assembles the finished partial uploads `parts` of
    /// `new.user`, in order, into a new upload of `new.dest` and publishes it like any
    /// other (expected digest checked, fsync, rename, directory fsync); then removes the
    /// partials. The length is the partials' sum; `new.length`, when given, is the most
    /// it may be ([`Error::Limit`] past it, before anything is copied). Partials are
    /// locked while they are read and are left untouched if anything fails, so the same
    /// final can be asked for again. The bytes are copied by the kernel
    /// (`copy_file_range`: no pass through this process, and a reflink on file systems
    /// that share extents), then read once for the SHA-256 every published file gets.
    pub fn concatenate(
        &self,
        parts: &[UploadId],
        new: NewUpload,
    ) -> Result<(UploadInfo, Completed)> {
        let mut sources = Vec::with_capacity(parts.len());
        for id in parts {
            self.upload(id)?.check_concatenable(&new.user)?;
            // Held until the end: no other final consumes it meanwhile.
            let f = self.lock_part(id)?;
            let len = f.metadata().map_err(Error::io)?.len();
            sources.push((f, len));
        }
        let length = concatenated_length(sources.iter().map(|(_, len)| *len), new.length)?;
        let info = self.create_with_parts(
            NewUpload {
                length: Some(length),
                ..new
            },
            Concat::Final,
            parts,
            false,
            // Assembled and published, or removed, before this returns.
            false,
        )?;
        let result = self.assemble(&info, &mut sources);
        if result.is_err() {
            // The partials stay; the final's staging files go (or expire).
            let _ = self.remove_upload(&info.id);
        }
        let completed = result?;
        drop(sources);
        for id in parts {
            let _ = self.remove_upload(id);
        }
        let info = self.upload(&info.id).unwrap_or(UploadInfo {
            offset: length,
            done: true,
            sha256: Some(completed.sha256),
            ..info
        });
        Ok((info, completed))
    }

    fn assemble(&self, info: &UploadInfo, sources: &mut [(File, u64)]) -> Result<Completed> {
        let mut out = self.lock_part(&info.id)?;
        let part = staged(&info.id.part());
        for (src, len) in sources.iter_mut() {
            self.fault(|| Step::Write(part.clone(), usize::try_from(*len).unwrap_or(usize::MAX)))?;
            src.seek(SeekFrom::Start(0)).map_err(Error::io)?;
            // std's File-to-File copy is copy_file_range on Linux, with a fallback.
            let copied = std::io::copy(&mut (&*src).take(*len), &mut out).map_err(Error::io)?;
            if copied != *len {
                return Err(Error::Io(std::io::Error::other(
                    "a partial upload shrank while being read",
                )));
            }
        }
        let h = hash_from_start(&mut out)?;
        let sealed = self.seal(&info.id, &out, h, None)?;
        self.publish(&info.id, sealed, &info.dest)
    }

    /// The first half of publishing a complete upload: the digest checked against the
    /// one expected (a mismatch removes the upload), recorded on the file with its mode,
    /// and the file made durable (one fsync: data, size, mode, digest).
    fn seal(
        &self,
        id: &UploadId,
        file: &File,
        whole: Sha256,
        known: Option<State>,
    ) -> Result<Sealed> {
        let state = match known {
            Some(s) => s,
            None => self.read_state(id)?,
        };
        let sha256: [u8; 32] = whole.finalize().into();
        if let Some(expected) = state.expected_sha256.as_deref().and_then(unhex32)
            && expected != sha256
        {
            self.remove_upload(id)?;
            return Err(Error::ChecksumMismatch);
        }
        let size = file.metadata().map_err(Error::io)?.len();
        record_digest(file, &sha256);
        if let Some(mode) = state.file_mode {
            // Before the fsync, so the mode is as durable as the bytes.
            rustix::fs::fchmod(file, rustix::fs::Mode::from_raw_mode(mode))
                .map_err(|e| Error::io(e.into()))?;
        }
        self.fault(|| Step::SyncFile(staged(&id.part())))?;
        file.sync_all().map_err(Error::io)?;
        Ok(Sealed {
            state,
            sha256,
            size,
        })
    }

    /// The second half: the sealed file renamed to `dest` (never over a directory, nor
    /// over any file when the upload said so), the rename made durable, the upload
    /// marked finished.
    fn publish(&self, id: &UploadId, sealed: Sealed, dest: &RelPath) -> Result<Completed> {
        let Sealed {
            state,
            sha256,
            size,
        } = sealed;
        let parent = self.parent_dir(dest, state.dir_mode)?;
        let name = dest.file_name().ok_or(Error::WrongKind("no file name"))?;
        if parent.metadata(name).is_ok_and(|m| m.is_dir()) {
            return Err(Error::WrongKind("a directory is in the way"));
        }
        self.fault(|| Step::Rename(staged(&id.part()), rel(dest)))?;
        if state.no_replace {
            // Atomic: a file that appeared since the creation check is not replaced.
            match rustix::fs::renameat_with(
                &self.staging,
                id.part(),
                &parent,
                name,
                rustix::fs::RenameFlags::NOREPLACE,
            ) {
                Ok(()) => {}
                Err(rustix::io::Errno::EXIST) => {
                    self.remove_upload(id)?;
                    return Err(Error::Exists);
                }
                Err(e) => return Err(Error::io(e.into())),
            }
        } else {
            self.staging
                .rename(id.part(), &parent, name)
                .map_err(Error::io)?;
        }
        self.sync_dir(&parent, &rel(&dest.parent()))?;
        if state.single_shot {
            // Nobody can ask about a PUT afterwards.
            self.remove_files(id)?;
        } else {
            self.mark_done(id, Some(&sha256))?;
        }
        Ok(Completed {
            path: dest.clone(),
            size,
            sha256,
        })
    }
}

/// A complete upload whose file is durable and verified, not yet at its final path.
#[derive(Debug)]
struct Sealed {
    state: State,
    sha256: [u8; 32],
    size: u64,
}

/// The running digest of one chunk and what it must come to.
#[derive(Debug)]
enum ChunkHasher {
    Sha1(sha1::Sha1, [u8; 20]),
    Md5(md5::Md5, [u8; 16]),
    Sha256(Sha256, [u8; 32]),
}

impl ChunkHasher {
    fn new(expected: ChunkChecksum) -> Self {
        match expected {
            ChunkChecksum::Sha1(d) => ChunkHasher::Sha1(sha1::Sha1::new(), d),
            ChunkChecksum::Md5(d) => ChunkHasher::Md5(md5::Md5::new(), d),
            ChunkChecksum::Sha256(d) => ChunkHasher::Sha256(Sha256::new(), d),
        }
    }

    fn update(&mut self, data: &[u8]) {
        match self {
            ChunkHasher::Sha1(h, _) => h.update(data),
            ChunkHasher::Md5(h, _) => h.update(data),
            ChunkHasher::Sha256(h, _) => h.update(data),
        }
    }

    fn matches(self) -> bool {
        match self {
            ChunkHasher::Sha1(h, d) => <[u8; 20]>::from(h.finalize()) == d,
            ChunkHasher::Md5(h, d) => <[u8; 16]>::from(h.finalize()) == d,
            ChunkHasher::Sha256(h, d) => <[u8; 32]>::from(h.finalize()) == d,
        }
    }
}

/// The running check of one chunk against its [`ChunkChecksum`], for a store that
/// is not this crate's (an object store verifies a tus chunk as it streams).
#[derive(Debug)]
pub struct ChunkVerifier(ChunkHasher);

impl ChunkVerifier {
    /// A verifier of bytes that must have `expected`.
    pub fn new(expected: ChunkChecksum) -> Self {
        ChunkVerifier(ChunkHasher::new(expected))
    }

    /// Takes the chunk's next bytes.
    pub fn update(&mut self, data: &[u8]) {
        self.0.update(data);
    }

    /// Whether the bytes taken have the expected digest.
    pub fn matches(self) -> bool {
        self.0.matches()
    }
}

/// An append's write buffer, at most.
const WRITE_BUF: usize = 1 << 20;

/// Full buffers an append has at most while its digests are computed on a thread of
/// their own: one filling, one being written, one being hashed.
const HASHED_BUFS: usize = 3;

/// What an append's digests come to: the whole upload's SHA-256 and the chunk's
/// checksum, if it has one.
type Sums = (Sha256, Option<ChunkHasher>);

/// The digests of an append, computed block by block as its buffer is flushed. A short
/// append hashes on the writer's thread; from its first full buffer on, a thread of its
/// own hashes each block while the writer's thread copies the next one into the page
/// cache (SHA-256 is a third of an upload's CPU, the copy another: overlapped they no
/// longer add up on one core). The blocks are shared, not copied, and come back to be
/// filled again, so an append holds at most [`HASHED_BUFS`] buffers.
#[derive(Debug)]
enum Digests {
    Here(Sums),
    Away {
        to: std::sync::mpsc::SyncSender<std::sync::Arc<Vec<u8>>>,
        back: std::sync::mpsc::Receiver<std::sync::Arc<Vec<u8>>>,
        thread: std::thread::JoinHandle<Option<Sums>>,
        /// Buffers made so far (the pool's size).
        made: usize,
    },
    /// Taken by [`Digests::take`], or lost with a failed thread.
    Gone,
}

impl Digests {
    fn hash_here(sums: &mut Sums, block: &[u8]) {
        sums.0.update(block);
        if let Some(h) = &mut sums.1 {
            h.update(block);
        }
    }

    /// Moves the hashing to a thread of its own; stays here if none can be made.
    fn go_away(&mut self) {
        if !matches!(self, Digests::Here(_)) {
            return;
        }
        let (to, rx) = std::sync::mpsc::sync_channel::<std::sync::Arc<Vec<u8>>>(HASHED_BUFS);
        let (tx, back) = std::sync::mpsc::sync_channel(HASHED_BUFS);
        // The sums go to the thread once it exists: they stay here if it cannot be made.
        let (give, sums_rx) = std::sync::mpsc::sync_channel::<Sums>(1);
        let spawned = std::thread::Builder::new()
            .name("upload-hash".to_owned())
            .spawn(move || {
                let mut sums = sums_rx.recv().ok()?;
                for block in rx {
                    Digests::hash_here(&mut sums, &block);
                    // The writer may be gone already: the block is then just dropped.
                    let _ = tx.send(block);
                }
                Some(sums)
            });
        let Ok(thread) = spawned else {
            return;
        };
        let Digests::Here(sums) = std::mem::replace(self, Digests::Gone) else {
            return;
        };
        // The thread waits for them: this cannot fail while it lives.
        if give.send(sums).is_ok() {
            *self = Digests::Away {
                to,
                back,
                thread,
                made: 0,
            };
        }
    }

    /// An empty buffer of `capacity` for the next block: one the hashing thread is
    /// done with when the pool is full (waiting for it if need be), a new one otherwise.
    fn empty(&mut self, capacity: usize) -> Result<Vec<u8>> {
        if let Digests::Away { back, made, .. } = self {
            let reused = if *made >= HASHED_BUFS {
                Some(back.recv().map_err(|_| hash_thread_lost())?)
            } else {
                back.try_recv().ok()
            };
            if let Some(block) = reused {
                // The writer's handle was dropped before it asked: this is the last.
                if let Ok(mut v) = std::sync::Arc::try_unwrap(block) {
                    v.clear();
                    return Ok(v);
                }
            } else {
                *made += 1;
            }
        }
        Ok(Vec::with_capacity(capacity))
    }

    /// The sums of every block hashed (waiting for the hashing thread to end).
    fn take(&mut self) -> Result<Sums> {
        match std::mem::replace(self, Digests::Gone) {
            Digests::Here(sums) => Ok(sums),
            Digests::Away { to, thread, .. } => {
                drop(to);
                thread.join().ok().flatten().ok_or_else(hash_thread_lost)
            }
            Digests::Gone => Err(hash_thread_lost()),
        }
    }
}

fn hash_thread_lost() -> Error {
    Error::io(std::io::Error::other(
        "the upload's hashing thread ended early",
    ))
}

/// Bytes written between two early write-backs of a long append.
const EARLY_SYNC_EVERY: u64 = 64 << 20;

/// Write-back started early, so the fdatasync before an offset is reported (or the
/// seal's fsync) finds little left to write: every [`EARLY_SYNC_EVERY`] bytes a
/// thread of its own fdatasyncs the file (one at a time) while the append goes on.
/// Nothing is acknowledged by it; its error, if any, fails the append's own sync (the
/// kernel reports a write-back error once per open file, and this thread shares the
/// append's).
#[derive(Debug, Default)]
struct EarlySync {
    since: u64,
    running: Option<std::thread::JoinHandle<std::io::Result<()>>>,
    failed: Option<std::io::Error>,
}

impl EarlySync {
    /// Counts `n` bytes written to `file` (`part`, for the fault seam); starts a
    /// write-back when enough are.
    fn wrote(
        &mut self,
        file: &File,
        n: usize,
        faults: Option<&std::sync::Arc<dyn crate::Faults>>,
        part: impl FnOnce() -> String,
    ) {
        self.since += n as u64;
        if self.since < EARLY_SYNC_EVERY {
            return;
        }
        if self.running.as_ref().is_some_and(|h| !h.is_finished()) {
            return;
        }
        self.collect();
        let Ok(f) = file.try_clone() else {
            return;
        };
        self.since = 0;
        let faults = faults.map(std::sync::Arc::clone);
        let step = Step::SyncFile(part());
        self.running = std::thread::Builder::new()
            .name("early-sync".to_owned())
            .spawn(move || {
                if let Some(faults) = faults {
                    faults.before(&step)?;
                }
                f.sync_data()
            })
            .ok();
    }

    /// Waits for the write-back running, if any, and keeps its error.
    fn collect(&mut self) {
        if let Some(h) = self.running.take() {
            match h.join() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => self.failed = Some(e),
                Err(_) => self.failed = Some(std::io::Error::other("early write-back panicked")),
            }
        }
    }

    /// Waits for the write-back running; the error of any that failed.
    fn settle(&mut self) -> Result<()> {
        self.collect();
        match self.failed.take() {
            Some(e) => Err(Error::io(e)),
            None => Ok(()),
        }
    }
}

/// Appends bytes to one upload; holds its lock. Memory: one buffer of up to 1 MiB, no
/// larger than what can still arrive; a long append, whose blocks are hashed on a
/// thread of their own, holds up to three of them (3 MiB).
#[derive(Debug)]
pub struct UploadWriter<'a> {
    storage: &'a Storage,
    info: UploadInfo,
    file: File,
    start: u64,
    digests: Digests,
    /// Whether this append carries a chunk checksum (tus `Upload-Checksum`).
    checksummed: bool,
    /// The whole upload's SHA-256 as this append's sender gave it (RFC 9530
    /// `Repr-Digest`), checked if this append completes the upload.
    expected_whole: Option<[u8; 32]>,
    buf: Vec<u8>,
    /// The upload's state, when this writer made it (read again when needed otherwise).
    state: Option<State>,
    early: EarlySync,
}

impl<'a> UploadWriter<'a> {
    /// A writer of `info` from its offset, `file` locked and positioned there.
    fn new(
        storage: &'a Storage,
        info: UploadInfo,
        file: File,
        whole: Sha256,
        chunk: Option<ChunkChecksum>,
        state: Option<State>,
    ) -> Self {
        // No bigger than what can still arrive (a small file's upload is small).
        let buf = info.length.map_or(WRITE_BUF, |l| {
            usize::try_from(l.saturating_sub(info.offset)).map_or(WRITE_BUF, |n| n.min(WRITE_BUF))
        });
        UploadWriter {
            storage,
            start: info.offset,
            info,
            file,
            checksummed: chunk.is_some(),
            digests: Digests::Here((whole, chunk.map(ChunkHasher::new))),
            expected_whole: None,
            buf: Vec::with_capacity(buf),
            state,
            early: EarlySync::default(),
        }
    }
}

impl UploadWriter<'_> {
    /// Expects the whole upload (every byte from offset 0, not only this append's) to
    /// have this SHA-256 if this append completes it; if it does not, the upload and
    /// its bytes are removed ([`Error::ChecksumMismatch`]) and nothing is published.
    /// For a sender that hashes while it sends and knows the digest only at its last
    /// request (RFC 9530 `Repr-Digest` on the last PATCH). An append that leaves the
    /// upload unfinished does not check it.
    pub fn expect_sha256(&mut self, digest: [u8; 32]) {
        self.expected_whole = Some(digest);
    }

    /// The upload being written.
    pub fn info(&self) -> &UploadInfo {
        &self.info
    }

    /// Bytes stored or buffered so far.
    pub fn offset(&self) -> u64 {
        self.info.offset
    }

    fn part(&self) -> String {
        staged(&self.info.id.part())
    }

    fn write_file(&mut self, data: &[u8]) -> Result<()> {
        self.storage
            .fault(|| Step::Write(self.part(), data.len()))?;
        self.file.write_all(data).map_err(Error::io)?;
        let id = &self.info.id;
        self.early
            .wrote(&self.file, data.len(), self.storage.faults.as_ref(), || {
                staged(&id.part())
            });
        Ok(())
    }

    /// Hashes and writes the buffered block. From the first full buffer of a long
    /// append on, the hash runs on its own thread while this one writes.
    fn flush_buf(&mut self) -> Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        if self.buf.len() == WRITE_BUF {
            self.digests.go_away();
        }
        match &mut self.digests {
            Digests::Here(sums) => {
                Digests::hash_here(sums, &self.buf);
                let buf = std::mem::take(&mut self.buf);
                let r = self.write_file(&buf);
                self.buf = buf;
                self.buf.clear();
                r
            }
            Digests::Away { to, .. } => {
                let block = std::sync::Arc::new(std::mem::take(&mut self.buf));
                to.send(std::sync::Arc::clone(&block))
                    .map_err(|_| hash_thread_lost())?;
                let r = self.write_file(&block);
                drop(block);
                self.buf = self.digests.empty(WRITE_BUF)?;
                r
            }
            Digests::Gone => Err(hash_thread_lost()),
        }
    }

    /// fdatasync of the data. On failure the append is cut back to where it started:
    /// bytes whose fsync failed are never acknowledged, and the fsync is not retried
    /// into a success (after a failed fsync the kernel may have dropped them).
    fn sync(&mut self) -> Result<()> {
        let synced = self.early.settle().and_then(|()| {
            self.storage
                .fault(|| Step::SyncFile(self.part()))
                .and_then(|()| self.file.sync_data().map_err(Error::io))
        });
        if let Err(e) = synced {
            let _ = self.discard();
            return Err(e);
        }
        Ok(())
    }

    /// Appends `data`. Refuses (and keeps nothing of this append) past the declared
    /// length. A storage error (full disk...) also drops this append's bytes, so the
    /// offset stays the last one acknowledged.
    pub fn write(&mut self, data: &[u8]) -> Result<()> {
        let r = self.append(data);
        if let Err(e) = r {
            if !matches!(e, Error::TooLong) {
                let _ = self.discard();
            }
            return Err(e);
        }
        Ok(())
    }

    fn append(&mut self, data: &[u8]) -> Result<()> {
        let end = self.info.offset + data.len() as u64;
        if self.info.length.is_some_and(|l| end > l) {
            self.discard()?;
            return Err(Error::TooLong);
        }
        self.info.offset = end;
        let mut rest = data;
        while !rest.is_empty() {
            let room = self.buf.capacity() - self.buf.len();
            if room == 0 && self.buf.is_empty() {
                // Sized for an upload with nothing left to arrive; more did (refused
                // above when the length is known).
                self.buf.reserve(WRITE_BUF);
                continue;
            }
            if room == 0 {
                self.flush_buf()?;
                continue;
            }
            let (now, later) = rest.split_at(room.min(rest.len()));
            self.buf.extend_from_slice(now);
            rest = later;
        }
        Ok(())
    }

    /// Drops every byte of this append (checksum failure, length exceeded).
    fn discard(&mut self) -> Result<()> {
        // Its result no longer matters: what it wrote back is cut off.
        let _ = self.early.settle();
        self.buf.clear();
        self.info.offset = self.start;
        self.storage
            .fault(|| Step::SetLen(self.part(), self.start))?;
        self.file.set_len(self.start).map_err(Error::io)?;
        self.storage.fault(|| Step::SyncFile(self.part()))?;
        self.file.sync_data().map_err(Error::io)?;
        // The running digest now covers bytes that are gone: forget it.
        if let Ok(mut d) = self.storage.digests.lock() {
            d.remove(self.info.id.as_str());
        }
        Ok(())
    }

    /// Ends the append: the bytes are made durable (fdatasync) before the new offset is
    /// reported. Completes the upload when the declared length is reached, or, with
    /// `body_complete`, when a single-shot upload's body ended.
    pub fn finish(mut self, body_complete: bool) -> Result<AppendOutcome> {
        let (whole, chunk) = match self.flush_buf().and_then(|()| self.digests.take()) {
            Ok(sums) => sums,
            Err(e) => {
                let _ = self.discard();
                return Err(e);
            }
        };
        if let Some(h) = chunk
            && !h.matches()
        {
            self.discard()?;
            return Err(Error::ChecksumMismatch);
        }
        let offset = self.info.offset;
        let done = match self.info.length {
            Some(l) => offset == l,
            None => body_complete,
        };
        if done
            && let Some(expected) = self.expected_whole
            && <[u8; 32]>::from(whole.clone().finalize()) != expected
        {
            // The bytes stored are not the file the sender has: none of them can be
            // trusted, so none are kept.
            self.storage.remove_upload(&self.info.id)?;
            return Err(Error::ChecksumMismatch);
        }
        if done && self.info.concat != Concat::Partial {
            // An early write-back that failed fails the seal's fsync as well.
            if let Err(e) = self.early.settle() {
                let _ = self.discard();
                return Err(e);
            }
            // The seal's fsync makes these bytes durable with the file.
            let sealed =
                match self
                    .storage
                    .seal(&self.info.id, &self.file, whole, self.state.take())
                {
                    Ok(s) => s,
                    Err(Error::ChecksumMismatch) => return Err(Error::ChecksumMismatch),
                    Err(e) => {
                        // As in `sync`: bytes whose fsync failed are never acknowledged.
                        let _ = self.discard();
                        return Err(e);
                    }
                };
            let completed = self
                .storage
                .publish(&self.info.id, sealed, &self.info.dest)?;
            return Ok(AppendOutcome {
                offset,
                completed: Some(completed),
            });
        }
        self.sync()?;
        self.storage.settle(&self.info.id)?;
        if let Ok(mut d) = self.storage.digests.lock() {
            d.insert(self.info.id.as_str().to_owned(), (offset, whole));
        }
        Ok(AppendOutcome {
            offset,
            completed: None,
        })
    }

    /// Keeps what was received (flushed and synced) and ends the append, for a body that
    /// broke off. Single-shot uploads cannot resume, so they are removed instead.
    pub fn abort(mut self) -> Result<u64> {
        if self.info.length.is_none() || self.info.single_shot {
            let id = self.info.id.clone();
            drop(self.file);
            self.storage.remove_upload(&id)?;
            return Ok(0);
        }
        if self.checksummed {
            // A checksummed append that did not arrive whole cannot be verified.
            self.discard()?;
            self.storage.settle(&self.info.id)?;
            return Ok(self.start);
        }
        let (whole, _) = match self.flush_buf().and_then(|()| self.digests.take()) {
            Ok(sums) => sums,
            Err(e) => {
                let _ = self.discard();
                return Err(e);
            }
        };
        self.sync()?;
        self.storage.settle(&self.info.id)?;
        if let Ok(mut d) = self.storage.digests.lock() {
            d.insert(self.info.id.as_str().to_owned(), (self.info.offset, whole));
        }
        Ok(self.info.offset)
    }
}
