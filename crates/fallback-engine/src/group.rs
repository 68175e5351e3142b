//! Group commit of one directory: requests that need its entries durable at the same
//! time (files published into it) share one `fsync`. While one runs, every caller that
//! arrives waits for the next, which one of them runs for all. What is durable, and
//! when a caller is told so, is exactly what its own `fsync` would give: the one that
//! answers it starts after its rename. (One `syncfs` for a batch of files was measured
//! too: its cost grows with every inode the file system has cached, so on a docroot
//! that shares its file system it costs more than the fsyncs it saves.)

use std::fs::File;
use std::io;
use std::sync::{Condvar, Mutex, PoisonError};

use crate::{Error, Result, Step};

/// One directory's group commit.
#[derive(Debug, Default)]
pub(crate) struct GroupSync {
    st: Mutex<Gens>,
    done: Condvar,
}

#[derive(Debug, Default)]
struct Gens {
    /// fsyncs started and finished so far (the n-th is fsync `n`).
    started: u64,
    finished: u64,
    /// The last flush that failed (0: none). A caller fails if it or a later flush
    /// failed by the time it looks: never told durable wrongly, at worst told of a
    /// failure once more (the caller then keeps nothing of what it wrote, as after
    /// any failed fsync).
    failed: u64,
}

impl GroupSync {
    /// Makes the directory `dir` durable (`step` names it for the fault hook): its
    /// entries as they were when this was called, or later.
    pub(crate) fn sync(
        &self,
        storage: &crate::Storage,
        dir: &File,
        step: impl FnOnce() -> Step,
    ) -> Result<()> {
        let mut st = self.st.lock().unwrap_or_else(PoisonError::into_inner);
        // A flush running now may have started before these writes: the next one.
        let mine = st.started + 1;
        loop {
            if st.finished >= mine {
                return if st.failed >= mine {
                    Err(Error::Io(io::Error::other(
                        "an fsync of the directory failed",
                    )))
                } else {
                    Ok(())
                };
            }
            if st.started < mine && st.started == st.finished {
                // No flush runs, and none has started for this batch: lead it.
                st.started = mine;
                drop(st);
                let r = storage
                    .fault(step)
                    .and_then(|()| dir.sync_all().map_err(Error::io));
                st = self.st.lock().unwrap_or_else(PoisonError::into_inner);
                st.finished = mine;
                if r.is_err() {
                    st.failed = mine;
                }
                self.done.notify_all();
                return r;
            }
            st = self.done.wait(st).unwrap_or_else(PoisonError::into_inner);
        }
    }
}
