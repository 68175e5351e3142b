//! SHA-256 computed beside a transfer, on a blocking thread, so hashing never holds up
//! the bytes on the wire and no file is read twice.

use std::io::Read as _;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use sha2::{Digest as _, Sha256};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio::task::JoinHandle;

use crate::{Error, Result};

/// Bytes that may wait for the hasher; past them the sender waits (memory stays flat
/// whatever the file's size or the network's chunking).
const QUEUE_BYTES: usize = 8 << 20;
/// The budget's unit.
const UNIT: usize = 64 << 10;

/// A digest in the making: chunks fed in file order (by [`Hasher::feed`] or a
/// [`Feed`] on another thread), the SHA-256 from [`Hasher::finish`].
pub(crate) enum Hasher {
    /// On a blocking thread.
    Beside {
        feed: Feed,
        hashed: JoinHandle<Result<[u8; 32]>>,
    },
    /// In the caller, for small files, where a thread costs more than the hashing.
    Inline(Sha256),
}

/// Sends chunks to a [`Hasher`], waiting while [`QUEUE_BYTES`] are queued.
#[derive(Clone)]
pub(crate) struct Feed {
    tx: mpsc::UnboundedSender<(Bytes, OwnedSemaphorePermit)>,
    budget: Arc<Semaphore>,
}

impl Feed {
    /// Queues `chunk`; false once the hasher is gone (it failed: `finish` says why).
    pub(crate) async fn send(&self, chunk: Bytes) -> bool {
        let total = QUEUE_BYTES / UNIT;
        let units = chunk.len().div_ceil(UNIT).clamp(1, total);
        let Ok(permit) = Arc::clone(&self.budget)
            .acquire_many_owned(u32::try_from(units).unwrap_or(1))
            .await
        else {
            return false;
        };
        self.tx.send((chunk, permit)).is_ok()
    }

    /// [`Feed::send`] from a blocking thread.
    pub(crate) fn blocking_send(&self, chunk: Bytes) -> bool {
        tokio::runtime::Handle::current().block_on(self.send(chunk))
    }
}

impl Hasher {
    /// Starts hashing: first the first `prefix` bytes of `file` (what an earlier attempt
    /// already moved), read on the hashing thread, then every chunk fed.
    pub(crate) fn start(file: &Path, prefix: u64) -> Hasher {
        let (tx, mut chunks) = mpsc::unbounded_channel::<(Bytes, OwnedSemaphorePermit)>();
        let file = file.to_owned();
        let hashed = tokio::task::spawn_blocking(move || {
            let mut h = Sha256::new();
            if prefix > 0 {
                let f = std::fs::File::open(&file).map_err(Error::io(&file))?;
                let got = update_from(&mut h, f.take(prefix)).map_err(Error::io(&file))?;
                if got != prefix {
                    return Err(Error::Io {
                        path: file,
                        source: std::io::Error::new(
                            std::io::ErrorKind::UnexpectedEof,
                            "the file is shorter than the bytes already moved",
                        ),
                    });
                }
            }
            // Each chunk's permit goes back once it is hashed.
            while let Some((chunk, _permit)) = chunks.blocking_recv() {
                h.update(&chunk);
            }
            Ok(h.finalize().into())
        });
        let budget = Arc::new(Semaphore::new(QUEUE_BYTES / UNIT));
        Hasher::Beside {
            feed: Feed { tx, budget },
            hashed,
        }
    }

    /// Hashes in the caller, from the first byte: for a small file, fetched whole.
    pub(crate) fn inline() -> Hasher {
        Hasher::Inline(Sha256::new())
    }

    /// A handle that feeds this hasher from another thread (`None` when inline).
    pub(crate) fn feeder(&self) -> Option<Feed> {
        match self {
            Hasher::Beside { feed, .. } => Some(feed.clone()),
            Hasher::Inline(_) => None,
        }
    }

    /// Adds `chunk`. If the hasher already failed, its error comes from `finish`.
    pub(crate) async fn feed(&mut self, chunk: Bytes) {
        match self {
            Hasher::Beside { feed, .. } => {
                feed.send(chunk).await;
            }
            Hasher::Inline(h) => h.update(&chunk),
        }
    }

    /// The SHA-256 of everything hashed, once every feeder is dropped.
    pub(crate) async fn finish(self) -> Result<[u8; 32]> {
        match self {
            Hasher::Beside { feed, hashed } => {
                drop(feed);
                hashed
                    .await
                    .map_err(|e| Error::Protocol(format!("hashing stopped: {e}")))?
            }
            Hasher::Inline(h) => Ok(h.finalize().into()),
        }
    }
}

/// Hashes all of `r` into `h`; returns the bytes read.
fn update_from(h: &mut Sha256, mut r: impl std::io::Read) -> std::io::Result<u64> {
    let mut buf = vec![0u8; 1 << 20];
    let mut n = 0u64;
    loop {
        match r.read(&mut buf) {
            Ok(0) => return Ok(n),
            Ok(k) => {
                h.update(&buf[..k]);
                n += k as u64;
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// The SHA-256 of a whole file, on a blocking thread.
pub(crate) async fn file_sha256(path: &Path) -> Result<[u8; 32]> {
    let path = path.to_owned();
    tokio::task::spawn_blocking(move || {
        let f = std::fs::File::open(&path).map_err(Error::io(&path))?;
        let mut h = Sha256::new();
        update_from(&mut h, f).map_err(Error::io(&path))?;
        Ok(h.finalize().into())
    })
    .await
    .map_err(|e| Error::Protocol(format!("hashing stopped: {e}")))?
}
