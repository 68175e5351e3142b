//! Reading: stat, open, list, digests.

use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cap_std::ambient_authority;
use cap_std::fs::Dir;
use serde::Serialize;
use sha2::{Digest as _, Sha256};

use crate::digest::{hex, mtime_parts, record_digest, recorded_digest};
use crate::relpath::{RESERVED, RelPath};
use crate::resolve::{self, Ident, Missing, Resolved};
use crate::{Error, Result};

/// File or directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EntryKind {
    /// A regular file.
    File,
    /// A directory.
    Dir,
}

/// What a path is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// File or directory.
    pub kind: EntryKind,
    /// Size in bytes (0 for directories).
    pub size: u64,
    /// Last modification.
    pub modified: SystemTime,
    /// Strong validator: changes whenever the content may have changed.
    pub etag: String,
    /// SHA-256 of the content, when recorded and still valid.
    pub sha256: Option<[u8; 32]>,
}

/// A file opened for reading by [`Storage::open_read_small`].
#[derive(Debug)]
pub enum Opened {
    /// A small file, read whole.
    Small(std::sync::Arc<[u8]>, Entry),
    /// A larger file, open at its start.
    File(File, Entry),
}

/// One file of a directory manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ManifestEntry {
    /// Path relative to the listed directory, `/`-separated, no leading `/`.
    pub path: String,
    /// File or directory.
    pub kind: EntryKind,
    /// Size in bytes.
    pub size: u64,
    /// Modification time, Unix seconds.
    pub mtime: i64,
    /// SHA-256 hex, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
}

/// What a listing found at one name.
enum Walked {
    Dir(std::fs::Metadata),
    File(File, std::fs::Metadata),
}

/// One docroot.
#[derive(Debug)]
pub struct Storage {
    pub(crate) root: Dir,
    pub(crate) root_path: PathBuf,
    pub(crate) staging: Dir,
    /// Identity of the reserved directory, which no request path may pass through.
    pub(crate) reserved: Ident,
    /// Running digests of uploads being written by this process, keyed by id, valid
    /// for the offset stored with them.
    pub(crate) digests: Mutex<HashMap<String, (u64, Sha256)>>,
    /// Uploads in progress, id to user, as this process knows them: read from the
    /// staging area when first needed, kept up to date by this process's creations
    /// and completions, and read again exactly when a user reaches the limit or the
    /// sweep runs (other instances sharing the docroot change it too). Saves listing
    /// the staging area, finished uploads' records included, at every creation.
    pub(crate) in_progress: Mutex<Option<HashMap<String, String>>>,
    /// Uploads created with their first bytes in the same request (tus
    /// creation-with-upload) and not yet made durable, with when they were created:
    /// nobody has been told of them yet, so their creation costs no fsync unless they
    /// are answered unfinished ([`Storage::settle`]).
    pub(crate) deferred: Mutex<HashMap<String, std::time::Instant>>,
    /// Group commit per directory (device and inode) being synced now: requests that
    /// need the same directory durable at the same time share its fsyncs.
    pub(crate) groups: Mutex<HashMap<(u64, u64), std::sync::Arc<crate::group::GroupSync>>>,
    pub(crate) upload_ttl: Duration,
    /// The fault seam (tests only).
    pub(crate) faults: Option<std::sync::Arc<dyn crate::Faults>>,
    /// Small files read lately, kept while unchanged ([`Storage::open_read_small`]).
    pub(crate) small: crate::small::SmallFiles,
}

fn etag(meta: &std::fs::Metadata) -> String {
    let (s, ns) = mtime_parts(meta);
    let mut h = Sha256::new();
    h.update(meta.dev().to_le_bytes());
    h.update(meta.ino().to_le_bytes());
    h.update(meta.len().to_le_bytes());
    h.update(s.to_le_bytes());
    h.update(ns.to_le_bytes());
    format!("\"{}\"", hex(&h.finalize()[..12]))
}

fn entry(file: &File, meta: &std::fs::Metadata) -> Entry {
    let is_dir = meta.is_dir();
    Entry {
        kind: if is_dir {
            EntryKind::Dir
        } else {
            EntryKind::File
        },
        size: if is_dir { 0 } else { meta.len() },
        modified: meta.modified().unwrap_or(UNIX_EPOCH),
        etag: etag(meta),
        sha256: if is_dir {
            None
        } else {
            recorded_digest(file, meta)
        },
    }
}

impl Storage {
    /// Opens the docroot at `docroot` (which must exist) and its staging area (created
    /// if missing). Uploads in progress expire after `upload_ttl` without completing.
    pub fn open(docroot: &Path, upload_ttl: Duration) -> Result<Self> {
        let root = Dir::open_ambient_dir(docroot, ambient_authority()).map_err(Error::io)?;
        let staging_rel = Path::new(RESERVED).join("uploads");
        root.create_dir_all(&staging_rel).map_err(Error::io)?;
        let staging = root.open_dir(&staging_rel).map_err(Error::io)?;
        let reserved = resolve::ident(&root.open_dir(RESERVED).map_err(Error::io)?)?;
        Ok(Storage {
            root,
            root_path: docroot.to_owned(),
            staging,
            reserved,
            digests: Mutex::new(HashMap::new()),
            in_progress: Mutex::new(None),
            deferred: Mutex::new(HashMap::new()),
            groups: Mutex::new(HashMap::new()),
            upload_ttl,
            faults: None,
            small: crate::small::SmallFiles::default(),
        })
    }

    /// Installs a fault hook told of every step that changes the disk (tests: fail the
    /// Nth step, simulate a crash). See [`crate::Faults`].
    #[must_use]
    #[cfg(feature = "faults")]
    pub fn with_faults(mut self, faults: std::sync::Arc<dyn crate::Faults>) -> Self {
        self.faults = Some(faults);
        self
    }

    /// Announces a step to the fault hook, if any; its error fails the step.
    #[inline]
    pub(crate) fn fault(&self, step: impl FnOnce() -> crate::Step) -> Result<()> {
        match &self.faults {
            None => Ok(()),
            Some(f) => f.before(&step()).map_err(Error::io),
        }
    }

    /// The docroot this storage serves.
    pub fn docroot(&self) -> &Path {
        &self.root_path
    }

    /// Resolves `path` beneath the docroot, one component at a time (see
    /// [`crate::resolve`]): never through the reserved directory.
    pub(crate) fn resolve(
        &self,
        path: &RelPath,
        follow_last: bool,
        missing: Missing,
    ) -> Result<Resolved<'_>> {
        resolve::resolve(&self.root, self.reserved, path, follow_last, missing)
    }

    fn open_file(&self, path: &RelPath) -> Result<(File, std::fs::Metadata)> {
        let r = self.resolve(path, true, Missing::NotFound)?;
        resolve::open_read(r, self.reserved)
    }

    fn open_dir(&self, path: &RelPath) -> Result<Dir> {
        let r = self.resolve(path, true, Missing::NotFound)?;
        resolve::open_dir(r, self.reserved)
    }

    /// Whether anything (file, directory, even a dangling link) is at `path`.
    pub fn exists(&self, path: &RelPath) -> bool {
        match self.resolve(path, false, Missing::NotFound) {
            Ok(r) => r
                .name
                .as_deref()
                .is_none_or(|name| r.dir().symlink_metadata(name).is_ok()),
            Err(_) => false,
        }
    }

    /// What `path` is.
    pub fn stat(&self, path: &RelPath) -> Result<Entry> {
        let (f, meta) = self.open_file(path)?;
        if !meta.is_dir() && !meta.is_file() {
            return Err(Error::NotFound);
        }
        Ok(entry(&f, &meta))
    }

    /// Opens a regular file for reading, with what it is. The returned file stays the
    /// same object even if the path is replaced meanwhile.
    pub fn open_read(&self, path: &RelPath) -> Result<(File, Entry)> {
        let (f, meta) = self.open_file(path)?;
        if meta.is_dir() {
            return Err(Error::WrongKind("is a directory"));
        }
        if !meta.is_file() {
            return Err(Error::NotFound);
        }
        let e = entry(&f, &meta);
        Ok((f, e))
    }

    /// Opens `path` for reading like [`Storage::open_read`]; a file of at most `small`
    /// bytes comes read whole, from memory when the path's `lstat` shows the same file
    /// as when it was last read (device, inode, size, mtime and ctime), so a GET of a
    /// small file that has not changed costs one `lstat` after the path's resolution.
    /// At most 16 MiB and 4,096 files are held per docroot, 64 MiB for all together.
    pub fn open_read_small(&self, path: &RelPath, small: u64) -> Result<Opened> {
        let r = self.resolve(path, true, Missing::NotFound)?;
        let stamp = r
            .stat
            .as_ref()
            .filter(|st| {
                rustix::fs::FileType::from_raw_mode(st.st_mode) == rustix::fs::FileType::RegularFile
                    && u64::try_from(st.st_size).is_ok_and(|n| n <= small)
            })
            .map(crate::small::Stamp::of);
        if let Some(stamp) = &stamp
            && let Some((bytes, entry)) = self.small.get(path, stamp)
        {
            return Ok(Opened::Small(bytes, entry));
        }
        let (f, meta) = resolve::open_read(r, self.reserved)?;
        if meta.is_dir() {
            return Err(Error::WrongKind("is a directory"));
        }
        if !meta.is_file() {
            return Err(Error::NotFound);
        }
        let e = entry(&f, &meta);
        if e.size > small {
            return Ok(Opened::File(f, e));
        }
        let mut buf = Vec::with_capacity(usize::try_from(e.size).unwrap_or(0));
        // Through `take`: exactly the size the stat said, in one `read`, with no size
        // probe (`File::read_to_end` adds a statx, an lseek and a read of the end).
        std::io::Read::read_to_end(&mut std::io::Read::take(&f, e.size), &mut buf)
            .map_err(Error::io)?;
        if buf.len() as u64 != e.size {
            return Err(Error::io(std::io::Error::other(
                "file changed while being read",
            )));
        }
        let bytes: std::sync::Arc<[u8]> = buf.into();
        // Held only when the file read is the one the path's lstat saw.
        if let Some(stamp) = stamp
            && crate::small::Stamp::of_meta(&meta) == stamp
        {
            self.small
                .put(path, stamp, std::sync::Arc::clone(&bytes), e.clone());
        }
        Ok(Opened::Small(bytes, e))
    }

    /// Computes (and records) the SHA-256 of a file: for files written by other means.
    pub fn digest(&self, path: &RelPath) -> Result<[u8; 32]> {
        let (mut f, e) = self.open_read(path)?;
        if let Some(d) = e.sha256 {
            return Ok(d);
        }
        let d: [u8; 32] = crate::digest::hash_from_start(&mut f)?.finalize().into();
        record_digest(&f, &d);
        Ok(d)
    }

    /// Every file and directory beneath `dir`, depth first, sorted by path, at most
    /// `limit` entries (then `Error::Limit`). Symlinks are followed only where they stay
    /// inside the docroot; others are left out, target unrevealed. The reserved staging
    /// directory never appears.
    pub fn manifest(&self, dir: &RelPath, limit: usize) -> Result<Vec<ManifestEntry>> {
        self.walk(dir, limit, 64)
    }

    /// The entries of `dir` itself (not below), sorted by name, at most `limit`; the
    /// same rules as [`Storage::manifest`].
    pub fn list(&self, dir: &RelPath, limit: usize) -> Result<Vec<ManifestEntry>> {
        self.walk(dir, limit, 0)
    }

    /// Depth first, one directory handle open at a time (plus those [`Storage::resolve`]
    /// holds while it opens the next): a docroot of many folders cannot exhaust file
    /// descriptors, and a directory that cannot be read fails the whole listing rather
    /// than leaving it silently short.
    fn walk(&self, dir: &RelPath, limit: usize, max_depth: u32) -> Result<Vec<ManifestEntry>> {
        let mut out = Vec::new();
        // Directories still to list: their path below `dir` and their depth.
        let mut pending: Vec<(String, u32)> = vec![(String::new(), 0)];
        while let Some((prefix, depth)) = pending.pop() {
            let here = if prefix.is_empty() {
                dir.clone()
            } else {
                dir.join(&RelPath::parse(&prefix).map_err(|_| Error::NotFound)?)
            };
            let d = match self.open_dir(&here) {
                Ok(d) => d,
                // Removed since it was listed: it is simply not there any more.
                Err(Error::NotFound) if !prefix.is_empty() => continue,
                Err(e) => return Err(e),
            };
            let mut names: Vec<String> = Vec::new();
            for e in d.entries().map_err(Error::io)? {
                let e = e.map_err(Error::io)?;
                // Names a request could not address are not listed either.
                if let Ok(name) = e.file_name().into_string()
                    && RelPath::parse(&name).is_ok()
                    && !name.contains('/')
                {
                    names.push(name);
                }
            }
            names.sort();
            for name in names {
                let rel = if prefix.is_empty() {
                    name.clone()
                } else {
                    format!("{prefix}/{name}")
                };
                let Some(found) = self.walk_entry(&d, &here, &name)? else {
                    continue;
                };
                match found {
                    Walked::Dir(meta) => {
                        out.push(ManifestEntry {
                            path: rel.clone(),
                            kind: EntryKind::Dir,
                            size: 0,
                            mtime: meta.mtime(),
                            sha256: None,
                        });
                        if depth < max_depth {
                            pending.push((rel, depth + 1));
                        }
                    }
                    Walked::File(f, meta) => out.push(ManifestEntry {
                        path: rel,
                        kind: EntryKind::File,
                        size: meta.len(),
                        mtime: meta.mtime(),
                        sha256: recorded_digest(&f, &meta).map(|d| hex(&d)),
                    }),
                }
                if out.len() > limit {
                    return Err(Error::Limit(format!(
                        "more than {limit} entries; list a subdirectory"
                    )));
                }
            }
        }
        out.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(out)
    }

    /// One entry of a listed directory `d` (at `here`): `None` for what a listing leaves
    /// out (special files, links leading outside the docroot or into the reserved
    /// directory, dangling links, entries removed meanwhile).
    fn walk_entry(&self, d: &Dir, here: &RelPath, name: &str) -> Result<Option<Walked>> {
        let (file, meta) = match resolve::open_read_at(d, name.as_ref(), None, self.reserved) {
            Ok(f) => f,
            Err(Error::NotFound) if d.symlink_metadata(name).is_ok_and(|m| m.is_symlink()) => {
                // A link: followed from the docroot, like a request for it would be.
                let path = here.join(&RelPath::parse(name).map_err(|_| Error::NotFound)?);
                match self.open_file(&path) {
                    Ok(f) => f,
                    Err(
                        Error::NotFound | Error::Escapes | Error::Reserved | Error::WrongKind(_),
                    ) => return Ok(None),
                    Err(e) => return Err(e),
                }
            }
            Err(Error::NotFound | Error::Reserved) => return Ok(None),
            Err(e) => return Err(e),
        };
        Ok(Some(if meta.is_dir() {
            Walked::Dir(meta)
        } else {
            Walked::File(file, meta)
        }))
    }

    /// Refuses a destination whose existing leading part leaves the docroot (a symlink
    /// pointing outside), passes through the reserved directory or is not a directory,
    /// before any byte is accepted for it.
    pub(crate) fn check_parent(&self, path: &RelPath) -> Result<()> {
        let r = self.resolve(&path.parent(), true, Missing::Stop)?;
        let parent = match r.name.as_deref() {
            Some(name) if r.dir().symlink_metadata(name).is_err() => return Ok(()),
            Some(_) => resolve::open_dir(r, self.reserved).map_err(|e| match e {
                Error::WrongKind(_) => Error::WrongKind("a file is in the way of the destination"),
                e => e,
            })?,
            None => r.into_dir()?,
        };
        // The destination itself may not be the reserved directory either, nor a
        // special file (a socket, FIFO or device is never opened, nor replaced).
        let name = path.file_name().unwrap_or_default();
        if let Ok(m) = parent.symlink_metadata(name) {
            let ft = m.file_type();
            if m.is_dir()
                && resolve::open_dir_at(&parent, name.as_ref(), self.reserved)
                    .is_err_and(|e| matches!(e, Error::Reserved))
            {
                return Err(Error::Reserved);
            }
            if !(ft.is_dir() || ft.is_file() || ft.is_symlink()) {
                return Err(Error::WrongKind(
                    "a special file (socket, FIFO, device) is in the way",
                ));
            }
        }
        Ok(())
    }

    /// Opens the directory holding `path`'s final location, creating it beneath the
    /// root if needed (never through the reserved directory).
    pub(crate) fn parent_dir(&self, path: &RelPath, dir_mode: Option<u32>) -> Result<Dir> {
        let r = self.resolve(&path.parent(), true, Missing::Create(dir_mode))?;
        if let Some(name) = r.name.as_deref() {
            match rustix::fs::mkdirat(r.dir(), name, rustix::fs::Mode::from_raw_mode(0o777)) {
                Ok(()) => {
                    resolve::set_dir_mode(r.dir(), name, dir_mode, self.reserved)?;
                    resolve::sync_entries(r.dir())?;
                }
                Err(rustix::io::Errno::EXIST) => {}
                Err(e) => return Err(Error::io(e.into())),
            }
        }
        resolve::open_dir(r, self.reserved)
    }
}
