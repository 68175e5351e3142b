//! The bookkeeping of a resumable upload kept as an S3 multipart upload, as tusd's S3
//! store does it: the bytes received so far are the stored parts plus a *tail* shorter
//! than a part, kept as an object of its own until the next request prepends it
//! (tusd keeps only what is under S3's 5 MiB minimum there; keeping up to a whole part
//! makes every part but the last the same size, so the part count stays within S3's
//! 10,000 however a client cuts its requests). Pure: the writer asks [`plan`] what to store, stores it, then records
//! each step with [`Progress::apply`]; a crash between storing and recording leaves
//! the last recorded [`Progress`], which is always a valid state to resume from (a part
//! stored but not recorded is stored again under the same number, which replaces it).

use serde::{Deserialize, Serialize};

/// S3's smallest part (every part but the last).
pub const MIN_PART: u64 = 5 << 20;
/// S3's most parts in one upload.
pub const MAX_PARTS: u64 = 10_000;
/// S3's largest object.
pub const MAX_OBJECT: u64 = 5 << 40;
/// The part size preferred: what an upload holds in memory at most (one part buffer).
pub const PART: u64 = 8 << 20;

/// The part size for an upload of `length` (`None`: not declared yet, tus
/// `Upload-Defer-Length`): [`PART`], or larger when the length needs it to fit in
/// [`MAX_PARTS`] (rounded up to a MiB). A deferred upload uses [`PART`], so it can hold
/// `PART * MAX_PARTS` (78 GiB) at most.
pub fn part_size(length: Option<u64>) -> u64 {
    match length {
        Some(l) => {
            let needed = l.div_ceil(MAX_PARTS).div_ceil(1 << 20) << 20;
            needed.max(PART)
        }
        None => PART,
    }
}

/// The most bytes an upload of `length` may hold with its part size.
pub fn capacity(length: Option<u64>) -> u64 {
    (part_size(length) * MAX_PARTS).min(MAX_OBJECT)
}

/// One stored part.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Part {
    /// Its number, from 1.
    pub number: u32,
    /// Its size.
    pub size: u64,
    /// Its `ETag`, as `UploadPart` answered (what `CompleteMultipartUpload` lists).
    pub etag: String,
}

/// The tail: the last bytes received, fewer than a part, in an object of their own. Each new tail is a new object (its `version` in the name), recorded before the
/// previous one is deleted, so the recorded one always exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tail {
    /// Which tail object (the name's suffix).
    pub version: u32,
    /// Its size, below the upload's part size.
    pub size: u64,
}

/// What is stored of one upload, as recorded in its state object.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    /// The parts stored, numbered 1, 2, ... in order.
    pub parts: Vec<Part>,
    /// The tail, if the bytes after the last part are not in a part yet.
    pub tail: Option<Tail>,
    /// The last tail version used (the next is one more).
    pub tail_versions: u32,
}

/// One thing to store, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// The next `len` bytes of the buffer as part `number`.
    Part {
        /// The part's number.
        number: u32,
        /// Its size.
        len: u64,
    },
    /// The remaining `len` bytes as a new tail object.
    Tail {
        /// Its size.
        len: u64,
    },
}

/// Why bytes cannot be stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// More parts than S3 allows: the upload holds [`capacity`] bytes at most.
    #[error("the upload would need more than {MAX_PARTS} parts")]
    TooManyParts,
}

impl Progress {
    /// The bytes received and stored: the parts and the tail.
    pub fn offset(&self) -> u64 {
        self.parts.iter().map(|p| p.size).sum::<u64>() + self.tail.map_or(0, |t| t.size)
    }

    /// The bytes in parts (where a prepended tail starts).
    pub fn in_parts(&self) -> u64 {
        self.parts.iter().map(|p| p.size).sum()
    }

    /// Records a step stored: a part (which took in the tail, if any: a tail is
    /// shorter than a part), or a new tail (replacing the old one, which the caller
    /// then deletes). `etag` is the stored part's.
    pub fn apply(&mut self, step: Step, etag: &str) {
        match step {
            Step::Part { number, len } => {
                self.parts.push(Part {
                    number,
                    size: len,
                    etag: etag.to_owned(),
                });
                self.tail = None;
            }
            Step::Tail { len } => {
                self.tail_versions += 1;
                self.tail = Some(Tail {
                    version: self.tail_versions,
                    size: len,
                });
            }
        }
    }
}

/// What to store of a buffer of `buffered` bytes (the tail, if any, then what this
/// request brought) at the end of a request, for an upload whose part size is
/// `part_size`: full parts first; then the rest, if `completes` (the upload's last
/// bytes), as the last part, else as a new tail. Every part but the last is exactly
/// `part_size`, so an upload of the length [`part_size`] was chosen for never needs
/// more than [`MAX_PARTS`], however its requests cut it; the tail (shorter than a
/// part) is one part buffer, the memory an upload holds.
///
/// The steps cut the buffer in order; the first part, if any, starts with the tail.
pub fn plan(
    progress: &Progress,
    buffered: u64,
    part_size: u64,
    completes: bool,
) -> Result<Vec<Step>, PlanError> {
    let part_size = part_size.max(MIN_PART);
    let mut steps = Vec::new();
    if !completes && buffered == progress.tail.map_or(0, |t| t.size) {
        return Ok(steps); // nothing new: the tail stays as it is
    }
    let mut number = u64::try_from(progress.parts.len()).unwrap_or(u64::MAX);
    let mut part = |len: u64, steps: &mut Vec<Step>| {
        number = number.saturating_add(1);
        let Some(n) = u32::try_from(number).ok().filter(|_| number <= MAX_PARTS) else {
            return Err(PlanError::TooManyParts);
        };
        steps.push(Step::Part { number: n, len });
        Ok(())
    };
    let mut left = buffered;
    while left >= part_size {
        part(part_size, &mut steps)?;
        left -= part_size;
    }
    if left > 0 {
        if completes {
            part(left, &mut steps)?;
        } else {
            steps.push(Step::Tail { len: left });
        }
    }
    Ok(steps)
}
