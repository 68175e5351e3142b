//! SHA-256 records: a file's digest kept in an extended attribute, valid while the
//! file's size and mtime hold, and the hashing helpers the store and uploads share.

use std::fs::File;
use std::io::{Read as _, Seek as _, SeekFrom};
use std::os::unix::fs::MetadataExt as _;

use sha2::{Digest as _, Sha256};

use crate::{Error, Result};

/// Extended attribute holding a file's SHA-256 with the size and mtime it was computed
/// for: `v1 <hex sha256> <size> <mtime secs>.<nanos>`.
const DIGEST_XATTR: &str = "user.fallback.sha256";

pub(crate) fn hex(bytes: &[u8]) -> String {
    hex::encode(bytes)
}

pub(crate) fn unhex32(s: &str) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(s, &mut out).ok()?;
    Some(out)
}

pub(crate) fn mtime_parts(meta: &std::fs::Metadata) -> (i64, i64) {
    (meta.mtime(), meta.mtime_nsec())
}

/// Records `sha256` on an open file, for its current size and mtime. File systems
/// without user extended attributes simply do not record it.
pub(crate) fn record_digest(file: &File, sha256: &[u8; 32]) {
    let Ok(meta) = file.metadata() else { return };
    let (s, ns) = mtime_parts(&meta);
    let value = format!("v1 {} {} {s}.{ns}", hex(sha256), meta.len());
    let _ = rustix::fs::fsetxattr(
        file,
        DIGEST_XATTR,
        value.as_bytes(),
        rustix::fs::XattrFlags::empty(),
    );
}

/// The recorded SHA-256 of an open file, if it is still valid for its size and mtime.
pub(crate) fn recorded_digest(file: &File, meta: &std::fs::Metadata) -> Option<[u8; 32]> {
    let mut buf = [0u8; 160];
    let n = rustix::fs::fgetxattr(file, DIGEST_XATTR, &mut buf).ok()?;
    let text = std::str::from_utf8(&buf[..n]).ok()?;
    let mut parts = text.split(' ');
    if parts.next()? != "v1" {
        return None;
    }
    let digest = unhex32(parts.next()?)?;
    let size: u64 = parts.next()?.parse().ok()?;
    let (s, ns) = mtime_parts(meta);
    (size == meta.len() && parts.next()? == format!("{s}.{ns}")).then_some(digest)
}

/// The SHA-256 state of a file's whole content (read from its start, 1 MiB at a time).
pub(crate) fn hash_from_start(file: &mut File) -> Result<Sha256> {
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    file.seek(SeekFrom::Start(0)).map_err(Error::io)?;
    loop {
        let n = file.read(&mut buf).map_err(Error::io)?;
        if n == 0 {
            return Ok(h);
        }
        h.update(&buf[..n]);
    }
}
