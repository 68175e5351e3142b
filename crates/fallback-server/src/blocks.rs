//! Read-ahead blocks for downloads: anonymous memory mappings, a few per download,
//! reused while it runs and unmapped when the last one is dropped.
//!
//! Why not `Vec`: a block is filled on a blocking thread and freed on whichever runtime
//! thread hyper drops it on. The allocator keeps such cross-thread frees of large
//! blocks as free pages of the filling thread's heap until that thread allocates again;
//! a blocking thread that has gone idle (or exited) never does, so 64 readers that
//! stalled and were cut left hundreds of MiB resident. A mapping goes back to the OS
//! the moment its last handle drops, on any thread.

use std::sync::mpsc::{Receiver, Sender, channel};

use bytes::Bytes;
use memmap2::MmapMut;

/// One block: a mapping and how much of it holds data; goes home on drop.
struct Lease {
    map: Option<MmapMut>,
    len: usize,
    home: Sender<MmapMut>,
}

impl AsRef<[u8]> for Lease {
    fn as_ref(&self) -> &[u8] {
        self.map.as_ref().map_or(&[], |m| &m[..self.len])
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Some(m) = self.map.take() {
            // The download has ended when nobody is home: the mapping is unmapped here.
            let _ = self.home.send(m);
        }
    }
}

/// The blocks of one download: at most `max` exist at once.
pub(crate) struct Pool {
    size: usize,
    max: usize,
    made: usize,
    home: Sender<MmapMut>,
    back: Receiver<MmapMut>,
}

impl Pool {
    pub(crate) fn new(size: usize, max: usize) -> Self {
        let (home, back) = channel();
        Pool {
            size,
            max,
            made: 0,
            home,
            back,
        }
    }

    /// A free block: one that came back, a new one while fewer than `max` exist, else
    /// the next to come back (waiting at most `wait`; `None` if none did).
    pub(crate) fn take(
        &mut self,
        wait: Option<std::time::Duration>,
    ) -> std::io::Result<Option<MmapMut>> {
        if let Ok(m) = self.back.try_recv() {
            return Ok(Some(m));
        }
        if self.made < self.max {
            self.made += 1;
            return MmapMut::map_anon(self.size).map(Some);
        }
        Ok(match wait {
            Some(d) => self.back.recv_timeout(d).ok(),
            None => self.back.recv().ok(),
        })
    }

    /// `map`'s first `len` bytes as `Bytes`, the mapping returning here when dropped.
    pub(crate) fn share(&self, map: MmapMut, len: usize) -> Bytes {
        Bytes::from_owner(Lease {
            map: Some(map),
            len,
            home: self.home.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_are_reused_and_bounded() {
        let mut pool = Pool::new(4096, 2);
        let mut a = pool.take(None).unwrap().unwrap();
        a[..3].copy_from_slice(b"abc");
        let b = pool.take(None).unwrap().unwrap();
        let shared = pool.share(a, 3);
        assert_eq!(&shared[..], b"abc");
        // Both exist: the next waits for one to come back.
        assert!(
            pool.take(Some(std::time::Duration::ZERO))
                .unwrap()
                .is_none()
        );
        let clone = shared.clone();
        drop(shared);
        assert!(
            pool.take(Some(std::time::Duration::ZERO))
                .unwrap()
                .is_none()
        );
        drop(clone);
        assert!(pool.take(None).unwrap().is_some());
        drop(b);
    }
}
