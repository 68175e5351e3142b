//! Group commit of small downloaded files: the parts finished while one flush runs are
//! made durable together by the next (one `syncfs` for the batch instead of one
//! `fsync` per file, a journal commit each), then renamed to their names.
//!
//! The rule stays the one for every download: a file gets its final name only after
//! its bytes are on disk. A crash before the rename leaves a part, fetched again by the
//! next run; the directories the renames went into are synced once at the end of the
//! run (`download::sync_dirs`).

use std::io;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;

use crate::{Error, Result};

/// A part whose bytes are written and checked, waiting to be made durable and renamed.
struct Pending {
    file: std::fs::File,
    part: PathBuf,
    dest: PathBuf,
    done: oneshot::Sender<io::Result<()>>,
}

#[derive(Default)]
struct Queue {
    waiting: Vec<Pending>,
    /// A blocking thread is draining the queue.
    draining: bool,
}

/// Shared by the downloads of one run.
#[derive(Default)]
pub(crate) struct Committer {
    queue: Mutex<Queue>,
}

impl Committer {
    /// Makes `part` (written through `file`) durable and renames it to `dest`; returns
    /// once both are done, with the error of either.
    pub(crate) async fn commit(
        self: &Arc<Self>,
        file: std::fs::File,
        part: PathBuf,
        dest: PathBuf,
    ) -> Result<()> {
        let (done, finished) = oneshot::channel();
        let lead = {
            let mut q = self
                .queue
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            q.waiting.push(Pending {
                file,
                part,
                dest: dest.clone(),
                done,
            });
            !std::mem::replace(&mut q.draining, true)
        };
        if lead {
            let me = Arc::clone(self);
            tokio::task::spawn_blocking(move || me.drain());
        }
        match finished.await {
            Ok(r) => r.map_err(Error::io(&dest)),
            Err(_) => Err(Error::Protocol(
                "the commit of a downloaded file was abandoned".to_owned(),
            )),
        }
    }

    /// Flushes batches until no part is waiting: each batch is everything queued while
    /// the previous flush ran.
    fn drain(&self) {
        loop {
            let batch = {
                let mut q = self
                    .queue
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                if q.waiting.is_empty() {
                    q.draining = false;
                    return;
                }
                std::mem::take(&mut q.waiting)
            };
            let synced = flush(&batch);
            for p in batch {
                let r = match &synced {
                    Ok(()) => std::fs::rename(&p.part, &p.dest),
                    Err(e) => Err(io::Error::new(e.kind(), e.to_string())),
                };
                let _ = p.done.send(r);
            }
        }
    }
}

/// Makes the batch's bytes durable: one file is synced alone; several are synced with
/// one `syncfs` per file system they are on (Linux 5.8 and later report write-back
/// errors through it), elsewhere one by one.
fn flush(batch: &[Pending]) -> io::Result<()> {
    if batch.len() == 1 {
        return batch[0].file.sync_all();
    }
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::fs::MetadataExt as _;
        let mut devices = Vec::new();
        for p in batch {
            let dev = p.file.metadata()?.dev();
            if !devices.contains(&dev) {
                devices.push(dev);
                rustix::fs::syncfs(&p.file).map_err(io::Error::from)?;
            }
        }
        Ok(())
    }
    #[cfg(not(target_os = "linux"))]
    {
        batch.iter().try_for_each(|p| p.file.sync_all())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write as _;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_committed_part_gets_its_name_and_nothing_is_left() {
        let dir = tempfile::tempdir().unwrap();
        let c = Arc::new(Committer::default());
        let mut tasks = Vec::new();
        for i in 0..50 {
            let part = dir.path().join(format!("{i}.part"));
            let dest = dir.path().join(format!("{i}"));
            let mut f = std::fs::File::create(&part).unwrap();
            f.write_all(format!("file {i}").as_bytes()).unwrap();
            let c = Arc::clone(&c);
            tasks.push(tokio::spawn(async move { c.commit(f, part, dest).await }));
        }
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        for i in 0..50 {
            let got = std::fs::read_to_string(dir.path().join(format!("{i}"))).unwrap();
            assert_eq!(got, format!("file {i}"));
            assert!(!dir.path().join(format!("{i}.part")).exists());
        }
    }

    #[tokio::test]
    async fn a_failed_rename_is_that_files_error() {
        let dir = tempfile::tempdir().unwrap();
        let c = Arc::new(Committer::default());
        let part = dir.path().join("a.part");
        let f = std::fs::File::create(&part).unwrap();
        let dest = dir.path().join("missing-dir").join("a");
        let e = c.commit(f, part.clone(), dest).await.unwrap_err();
        assert!(e.to_string().contains("missing-dir"), "{e}");
        assert!(part.exists(), "the part stays for the next run");
    }
}
