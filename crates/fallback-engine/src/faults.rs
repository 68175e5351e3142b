//! The storage fault seam: every step that changes what is on disk (create, write,
//! truncate, fsync, rename, remove, directory fsync) is announced to an optional
//! [`Faults`] hook before it runs, and the hook may fail it. Tests use it to fail the
//! Nth step with `EIO` or `ENOSPC`, or to "crash" (fail every step from the Nth on and
//! then forget what was not made durable); production storage has no hook and pays one
//! branch per step.

/// One step that changes the disk. Paths are relative to the docroot, `/`-separated
/// (the staging area is `.fallback/uploads/...`); `""` is the docroot itself.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Step {
    /// A new, empty file.
    Create(String),
    /// Bytes written at the end of a file.
    Write(String, usize),
    /// A file cut to a length.
    SetLen(String, u64),
    /// fsync (or fdatasync) of a file: its content becomes durable.
    SyncFile(String),
    /// A rename (from, to): visible at once, durable once both directories are synced.
    Rename(String, String),
    /// A file removed.
    Remove(String),
    /// fsync of a directory: its entries become durable.
    SyncDir(String),
}

/// A hook told of each [`Step`] before it runs; an error fails the step (the engine
/// maps it like any I/O error: `ENOSPC` is [`crate::Error::NoSpace`]).
pub trait Faults: Send + Sync + std::fmt::Debug {
    /// Called before `step` runs.
    ///
    /// # Errors
    /// The error the step fails with instead of running.
    fn before(&self, step: &Step) -> std::io::Result<()>;
}
