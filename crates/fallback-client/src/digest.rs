//! SHA-256 computed beside a transfer, on a blocking thread, so hashing never holds up
//! the bytes on the wire and no file is read twice.

use std::io::Read as _;
use std::path::Path;

use bytes::Bytes;
use sha2::{Digest as _, Sha256};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::{Error, Result};

/// A digest in the making: [`Hasher::feed`] takes the chunks in file order, and
/// [`Hasher::finish`] gives the SHA-256 once the feed is dropped.
pub(crate) struct Hasher {
    feed: mpsc::Sender<Bytes>,
    hashed: JoinHandle<Result<[u8; 32]>>,
}

impl Hasher {
    /// Starts hashing: first the first `prefix` bytes of `file` (what an earlier attempt
    /// already moved), read on the hashing thread, then every chunk fed. At most
    /// `queue` chunks wait in between; a full queue holds the sender back.
    pub(crate) fn start(file: &Path, prefix: u64, queue: usize) -> Hasher {
        let (feed, mut chunks) = mpsc::channel::<Bytes>(queue.max(1));
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
            while let Some(chunk) = chunks.blocking_recv() {
                h.update(&chunk);
            }
            Ok(h.finalize().into())
        });
        Hasher { feed, hashed }
    }

    /// A handle that feeds this hasher (for a reader on another thread).
    pub(crate) fn feeder(&self) -> mpsc::Sender<Bytes> {
        self.feed.clone()
    }

    /// Adds `chunk`. If the hasher already failed, its error comes from `finish`.
    pub(crate) async fn feed(&self, chunk: Bytes) {
        let _ = self.feed.send(chunk).await;
    }

    /// The SHA-256 of everything hashed, once every feeder is dropped.
    pub(crate) async fn finish(self) -> Result<[u8; 32]> {
        drop(self.feed);
        self.hashed
            .await
            .map_err(|e| Error::Protocol(format!("hashing stopped: {e}")))?
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
