//! The transfer engine: files beneath a docroot, nothing else.
//!
//! A [`Storage`] holds a directory handle on one docroot. Every path is a [`RelPath`]
//! (the project's only path canonicaliser) resolved *beneath* that handle one component
//! at a time (`resolve.rs`: `O_NOFOLLOW` at each step, links expanded by hand, every
//! directory compared with the reserved one), so neither `..` nor a symlink can lead
//! outside or into the staging area, whichever operation asks (read, list, upload
//! target, rename target).
//!
//! Uploads in progress live under `<docroot>/.fallback/uploads` (same file system, never
//! addressable by requests): `<id>.json` holds what the upload is (user, destination,
//! length, metadata, expiry) and `<id>.part` the bytes received so far, so the offset is
//! the part file's length and survives a crash or a restart. A file appears at its final
//! path only when complete and verified: fsync the data, rename, fsync the directory.
//! Its SHA-256 is recorded in an extended attribute, checked against size and mtime, so
//! downloads can announce it. Memory per transfer is constant (1 MiB buffers).
//!
//! The engine is synchronous: callers run it on blocking threads.
#![warn(missing_docs)]

// The test seam is public only with the `faults` feature (the crash tests).
mod digest;
#[cfg_attr(not(feature = "faults"), allow(unreachable_pub))]
mod faults;
mod group;
mod relpath;
mod resolve;
mod small;
mod store;
mod upload;

#[cfg(feature = "faults")]
pub use faults::{Faults, Step};
#[cfg(not(feature = "faults"))]
pub(crate) use faults::{Faults, Step};
pub use relpath::{MAX_NAME_BYTES, MAX_PATH_BYTES, MAX_SEGMENTS, PathError, RESERVED, RelPath};
pub use store::{Entry, EntryKind, ManifestEntry, Opened, Storage};
pub use upload::{
    AppendOutcome, CHECKSUM_ALGORITHMS, ChunkChecksum, ChunkVerifier, Completed, Concat, Modes,
    NewUpload, UploadId, UploadInfo, UploadWriter, concatenated_length,
};

/// What went wrong in the engine. [`Error::kind`] tells the server which status to send.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The path does not exist (or leads outside the docroot, which is reported the same
    /// way so nothing outside can be probed).
    #[error("not found")]
    NotFound,
    /// A file where a directory is needed, or the reverse.
    #[error("{0}")]
    WrongKind(&'static str),
    /// The path leaves the docroot (a symlink pointing outside).
    #[error("path escapes the docroot")]
    Escapes,
    /// The path passes through the reserved staging directory (by a link inside the
    /// docroot): reported like a missing path.
    #[error("path reaches the reserved staging area")]
    Reserved,
    /// No such upload, or it expired.
    #[error("no such upload")]
    UnknownUpload,
    /// The upload belongs to another user.
    #[error("upload belongs to another user")]
    NotOwner,
    /// Another request is writing this upload right now.
    #[error("upload is locked by another request")]
    Locked,
    /// `Upload-Offset` does not match the bytes received.
    #[error("offset mismatch: the upload is at {actual}")]
    OffsetMismatch {
        /// Bytes actually received so far.
        actual: u64,
    },
    /// More bytes than the declared length.
    #[error("more data than the declared upload length")]
    TooLong,
    /// A chunk or the whole file did not match its checksum; the chunk was discarded.
    #[error("checksum mismatch")]
    ChecksumMismatch,
    /// The file system is full (ENOSPC or EDQUOT).
    #[error("no space left on the storage")]
    NoSpace,
    /// The destination exists and the upload may not replace it.
    #[error("the destination exists and may not be replaced")]
    Exists,
    /// The upload is finished: its file was published (or, for a partial upload, every
    /// byte is stored); it takes no more bytes.
    #[error("the upload is finished")]
    Finished,
    /// A final upload names a partial upload that is not finished, or an upload that
    /// is not partial.
    #[error("{0}")]
    NotConcatenable(&'static str),
    /// Limits (uploads in progress, sizes).
    #[error("{0}")]
    Limit(String),
    /// Any other I/O failure.
    #[error("storage error")]
    Io(#[source] std::io::Error),
    /// The storage did not answer, or asked to slow down (a bucket unreachable,
    /// throttling, or failing with 5xx past its retries): transient, try again later.
    /// Never produced for a local docroot.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
}

impl Error {
    /// Maps an I/O error: missing and escaping paths are `NotFound`-like, a full disk is
    /// `NoSpace`.
    pub(crate) fn io(e: std::io::Error) -> Self {
        use std::io::ErrorKind as K;
        match e.kind() {
            K::NotFound => Error::NotFound,
            K::StorageFull | K::QuotaExceeded => Error::NoSpace,
            K::PermissionDenied if e.raw_os_error().is_none() => Error::Escapes,
            _ => match e.raw_os_error().map(rustix::io::Errno::from_raw_os_error) {
                Some(rustix::io::Errno::NOSPC | rustix::io::Errno::DQUOT) => Error::NoSpace,
                // ELOOP and EXDEV: cap-std's answer to a path that would leave the root.
                Some(rustix::io::Errno::LOOP | rustix::io::Errno::XDEV) => Error::Escapes,
                _ => Error::Io(e),
            },
        }
    }

    /// A short stable name for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::NotFound => "not-found",
            Error::WrongKind(_) => "wrong-kind",
            Error::Escapes => "escapes",
            Error::Reserved => "reserved",
            Error::UnknownUpload => "unknown-upload",
            Error::NotOwner => "not-owner",
            Error::Locked => "locked",
            Error::OffsetMismatch { .. } => "offset-mismatch",
            Error::TooLong => "too-long",
            Error::ChecksumMismatch => "checksum-mismatch",
            Error::NoSpace => "no-space",
            Error::Exists => "exists",
            Error::Finished => "finished",
            Error::NotConcatenable(_) => "not-concatenable",
            Error::Limit(_) => "limit",
            Error::Io(_) => "io",
            Error::Unavailable(_) => "unavailable",
        }
    }
}

/// The current time as Unix seconds.
pub(crate) fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A `Result` with the engine's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
