//! Local resume state: small JSON files, written atomically, removed on success.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::{Error, Result, hex};

/// Where an upload in progress is, so a restarted client resumes it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct UploadState {
    /// The tus upload URL (empty for a file sent as partial uploads).
    pub(crate) upload_url: String,
    /// A file sent as partial uploads: each one's URL and the file's bytes `[a, b)` it
    /// holds.
    #[serde(default)]
    pub(crate) partials: Vec<(String, [u64; 2])>,
}

/// What a partial download is a part of, so a restarted client resumes it only if the
/// remote file is still the same.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct DownloadState {
    pub(crate) url: String,
    pub(crate) etag: String,
    pub(crate) size: u64,
    /// A part fetched in byte ranges at once: `[start, done, end)` of each (empty: the
    /// part is the file's first bytes, in one piece).
    #[serde(default)]
    pub(crate) ranges: crate::ranges::Ranges,
    /// The SHA-256 the server announced (hex), for a ranged part.
    #[serde(default)]
    pub(crate) sha256: Option<String>,
}

pub(crate) fn default_state_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("XDG_STATE_HOME").filter(|d| !d.is_empty()) {
        return PathBuf::from(d).join("fallback");
    }
    if let Some(h) = std::env::var_os("HOME").filter(|d| !d.is_empty()) {
        return PathBuf::from(h).join(".local/state/fallback");
    }
    std::env::temp_dir().join("fallback-state")
}

/// The state file of uploading `source` (as it is now: size, mtime) to `dest` at `base`.
pub(crate) fn upload_state_path(
    dir: &Path,
    base: &str,
    dest: &str,
    source: &Path,
    meta: &std::fs::Metadata,
) -> PathBuf {
    use std::os::unix::fs::MetadataExt as _;
    let mut h = Sha256::new();
    for part in [
        base.as_bytes(),
        dest.as_bytes(),
        source.as_os_str().as_encoded_bytes(),
    ] {
        h.update((part.len() as u64).to_le_bytes());
        h.update(part);
    }
    h.update(meta.len().to_le_bytes());
    h.update(meta.mtime().to_le_bytes());
    h.update(meta.mtime_nsec().to_le_bytes());
    dir.join("uploads")
        .join(format!("{}.json", hex(&h.finalize()[..16])))
}

pub(crate) fn read<T: for<'de> Deserialize<'de>>(path: &Path) -> Option<T> {
    let text = std::fs::read(path).ok()?;
    serde_json::from_slice(&text).ok()
}

pub(crate) fn write<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(Error::io(dir))?;
    }
    let tmp = path.with_extension("tmp");
    let json = serde_json::to_vec(value).map_err(|e| Error::Protocol(e.to_string()))?;
    std::fs::write(&tmp, json).map_err(Error::io(&tmp))?;
    std::fs::rename(&tmp, path).map_err(Error::io(path))
}

pub(crate) fn remove(path: &Path) {
    let _ = std::fs::remove_file(path);
}
