//! One large file over several connections: its byte ranges fetched at once (`Range`
//! with `If-Match` its `ETag`, so every range is of the same version), written in
//! place in the part, and hashed in file order by a thread that follows the written
//! bytes (read back from the page cache, never held in memory). On a long fat network
//! one TCP stream is the bottleneck; several are not.
//!
//! Resume: the part's state names each range's progress, saved after the bytes it
//! counts were fdatasynced (every [`CHECKPOINT`] and when an attempt fails); a resumed
//! part is hashed again from its first byte, so a hole or a flipped byte in it is
//! caught by the whole-file digest like any other.

use std::os::unix::fs::FileExt as _;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};

use futures_util::StreamExt as _;
use sha2::{Digest as _, Sha256};

use crate::http::check;
use crate::state::{self, DownloadState};
use crate::upload::parse_repr_digest;
use crate::{Error, Event, Result, Session};

/// Progress is made durable and saved at least this often (bytes, whole file).
const CHECKPOINT: u64 = 64 << 20;
/// The hasher is woken at least this often per range (bytes).
const WAKE_EVERY: u64 = 1 << 20;

/// `[start, done, end)` of each range: the bytes `start..done` are in the part.
pub(crate) type Ranges = Vec<[u64; 3]>;

/// `size` bytes cut into `n` ranges of nearly equal length (none empty).
pub(crate) fn split(from: u64, size: u64, n: usize) -> Ranges {
    let len = size.saturating_sub(from);
    let n = (n.max(1) as u64).min(len.max(1));
    (0..n)
        .map(|i| {
            let a = from + len * i / n;
            let b = from + len * (i + 1) / n;
            [a, a, b]
        })
        .filter(|r| r[0] < r[2])
        .collect()
}

/// What the hashing thread follows: each range's written end.
struct Follow {
    done: Vec<AtomicU64>,
    stop: AtomicBool,
    lock: Mutex<()>,
    moved: Condvar,
}

impl Follow {
    fn wake(&self) {
        drop(self.lock.lock());
        self.moved.notify_all();
    }
}

/// Stops the hashing thread when the attempt ends in any way (an error, a panic, the
/// future dropped): a thread left waiting would hold up the runtime's shutdown.
struct StopOnDrop(Arc<Follow>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.stop.store(true, Ordering::Release);
        self.0.wake();
    }
}

/// Hashes `part` from byte 0 to the end of the last range, in order, waiting for each
/// range's bytes to be written.
fn hash_following(part: &Path, ranges: &Ranges, f: &Follow) -> Result<[u8; 32]> {
    let file = std::fs::File::open(part).map_err(Error::io(part))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut pos = 0u64;
    for (i, r) in ranges.iter().enumerate() {
        debug_assert_eq!(pos, r[0]);
        while pos < r[2] {
            let avail = {
                let mut g = f
                    .lock
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                loop {
                    let avail = f.done[i].load(Ordering::Acquire);
                    if avail > pos {
                        break avail;
                    }
                    if f.stop.load(Ordering::Acquire) {
                        return Err(Error::Protocol("the download stopped".to_owned()));
                    }
                    g = f
                        .moved
                        .wait(g)
                        .unwrap_or_else(std::sync::PoisonError::into_inner);
                }
            };
            let want = usize::try_from((avail - pos).min(buf.len() as u64)).unwrap_or(buf.len());
            let got = file
                .read_at(&mut buf[..want], pos)
                .map_err(Error::io(part))?;
            if got == 0 {
                return Err(Error::io(part)(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "the part is shorter than the bytes written to it",
                )));
            }
            h.update(&buf[..got]);
            pos += got as u64;
        }
    }
    Ok(h.finalize().into())
}

/// What the first answer said about the file.
pub(crate) struct Version {
    pub(crate) etag: String,
    pub(crate) size: u64,
    pub(crate) expected: Option<String>,
}

impl Version {
    /// What a GET's answer says of the file: its `ETag`, its whole length (from
    /// `Content-Range` when `partial`, else `Content-Length`) and its `Repr-Digest`.
    pub(crate) fn of(resp: &reqwest::Response, partial: bool) -> Result<Version> {
        let h = resp.headers();
        let header = |n: &str| h.get(n).and_then(|v| v.to_str().ok());
        let size = if partial {
            header("content-range").and_then(|v| v.rsplit('/').next()?.parse().ok())
        } else {
            resp.content_length()
        }
        .ok_or_else(|| Error::Protocol("the server gave no length for the file".to_owned()))?;
        Ok(Version {
            etag: header("etag").unwrap_or_default().to_owned(),
            size,
            expected: header("repr-digest").and_then(parse_repr_digest),
        })
    }
}

impl Session {
    /// Downloads `url` into `part` over `streams` connections: the ranges still to
    /// fetch of a kept part of this version, or all of them. Returns the version and
    /// the file's SHA-256 once every byte is in and synced.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn fetch_ranges(
        &self,
        rel: &str,
        url: &str,
        part: &Path,
        state_file: &Path,
        size_hint: u64,
        streams: usize,
        received: &mut u64,
    ) -> Result<(Version, [u8; 32])> {
        let kept = state::read::<DownloadState>(state_file).filter(|st| {
            st.url == url
                && !st.etag.is_empty()
                && !st.ranges.is_empty()
                && std::fs::metadata(part).is_ok_and(|m| m.len() == st.size)
        });
        let (version, mut ranges, first) = match kept {
            Some(st) => (
                Version {
                    etag: st.etag,
                    size: st.size,
                    expected: st.sha256,
                },
                st.ranges,
                None,
            ),
            None => {
                // The first range's answer names the version; the rest ask for it.
                let _ = std::fs::remove_file(part);
                let planned = split(0, size_hint, streams);
                let end0 = planned.first().map_or(size_hint, |r| r[2]);
                let resp = self
                    .send(
                        self.http
                            .get(url)
                            .header("Range", format!("bytes=0-{}", end0.max(1) - 1)),
                    )
                    .await?;
                let resp = check(resp).await?;
                let partial = resp.status() == reqwest::StatusCode::PARTIAL_CONTENT;
                let version = Version::of(&resp, partial)?;
                let size = version.size;
                // The whole file if the server ignored the range. (A server that names
                // no version gets its ranges without If-Match, and no resume state:
                // only the digest, if it announces one, ties them together.)
                let end0 = if partial { end0.min(size) } else { size };
                let mut ranges = vec![[0, 0, end0]];
                ranges.extend(split(end0, size, streams.saturating_sub(1)));
                let file = std::fs::OpenOptions::new()
                    .create(true)
                    .truncate(true)
                    .write(true)
                    .open(part)
                    .map_err(Error::io(part))?;
                file.set_len(size).map_err(Error::io(part))?;
                save(state_file, url, &version, &ranges)?;
                (version, ranges, Some(resp))
            }
        };
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(part)
            .map_err(Error::io(part))?;
        let have: u64 = ranges.iter().map(|r| r[1] - r[0]).sum();
        self.emit(&Event::FileStart {
            path: rel.to_owned(),
            size: version.size,
            resumed_from: have,
        });
        let follow = Arc::new(Follow {
            done: ranges.iter().map(|r| AtomicU64::new(r[1])).collect(),
            stop: AtomicBool::new(false),
            lock: Mutex::new(()),
            moved: Condvar::new(),
        });
        let _stop = StopOnDrop(Arc::clone(&follow));
        let hashed = {
            let (part, ranges, f) = (part.to_owned(), ranges.clone(), Arc::clone(&follow));
            tokio::task::spawn_blocking(move || hash_following(&part, &ranges, &f))
        };
        let shared = Shared {
            session: self,
            rel,
            url,
            part,
            state_file,
            bounds: ranges.iter().map(|r| [r[0], r[2]]).collect(),
            file: &file,
            follow: &follow,
            version: &version,
            moved: AtomicU64::new(have),
            shown: AtomicU64::new(have),
            received: AtomicU64::new(0),
            checkpoint: AtomicU64::new(have + CHECKPOINT),
            pacer: crate::Pacer::new(self.rate_limit()),
        };
        let mut first = first;
        let results = futures_util::future::join_all(
            ranges
                .iter()
                .enumerate()
                .filter(|(_, r)| r[1] < r[2])
                .map(|(i, r)| shared.range(i, *r, if i == 0 { first.take() } else { None }))
                .collect::<Vec<_>>(),
        )
        .await;
        *received += shared.received.load(Ordering::Relaxed);
        for (i, r) in ranges.iter_mut().enumerate() {
            r[1] = follow.done[i].load(Ordering::Acquire);
        }
        let failed = results.into_iter().find_map(std::result::Result::err);
        let synced = {
            let f = file.try_clone().map_err(Error::io(part))?;
            tokio::task::spawn_blocking(move || f.sync_data())
                .await
                .map_err(|e| Error::Protocol(e.to_string()))?
                .map_err(Error::io(part))
        };
        if let Some(e) = failed {
            follow.stop.store(true, Ordering::Release);
            follow.wake();
            if synced.is_ok() {
                // What a later attempt resumes: only bytes known to be on disk.
                let _ = save(state_file, url, &version, &ranges);
            }
            let _ = hashed.await;
            return Err(e);
        }
        synced?;
        let digest = hashed.await.map_err(|e| Error::Protocol(e.to_string()))??;
        Ok((version, digest))
    }
}

fn save(state_file: &Path, url: &str, v: &Version, ranges: &Ranges) -> Result<()> {
    state::write(
        state_file,
        &DownloadState {
            url: url.to_owned(),
            etag: v.etag.clone(),
            size: v.size,
            ranges: ranges.clone(),
            sha256: v.expected.clone(),
        },
    )
}

/// What the ranges of one file share (they run on one task, so the counters only need
/// to be shareable, not ordered).
struct Shared<'a> {
    session: &'a Session,
    rel: &'a str,
    url: &'a str,
    part: &'a Path,
    state_file: &'a Path,
    /// `[start, end)` of each range.
    bounds: Vec<[u64; 2]>,
    file: &'a std::fs::File,
    follow: &'a Follow,
    version: &'a Version,
    /// Bytes of the file in the part.
    moved: AtomicU64,
    shown: AtomicU64,
    /// Bytes received by this attempt.
    received: AtomicU64,
    /// `moved` at which progress is next made durable and saved.
    checkpoint: AtomicU64,
    pacer: crate::Pacer,
}

impl Shared<'_> {
    /// Fetches range `i` from its `done` to its end, with `first` the answer already
    /// asked for it.
    async fn range(&self, i: usize, r: [u64; 3], first: Option<reqwest::Response>) -> Result<()> {
        let [_, mut done, end] = r;
        let resp = match first {
            Some(resp) => resp,
            None => {
                let mut req = self
                    .session
                    .http
                    .get(self.url)
                    .header("Range", format!("bytes={done}-{}", end - 1));
                if !self.version.etag.is_empty() {
                    req = req.header("If-Match", &self.version.etag);
                }
                let resp = self.session.send(req).await?;
                if resp.status() == reqwest::StatusCode::PRECONDITION_FAILED {
                    // Changed on the server: this part is of no use.
                    let _ = std::fs::remove_file(self.part);
                    return Err(Error::Http {
                        status: 503,
                        message: "the file changed on the server; starting over".to_owned(),
                    });
                }
                let resp = check(resp).await?;
                let from = resp
                    .headers()
                    .get(reqwest::header::CONTENT_RANGE)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.strip_prefix("bytes "))
                    .and_then(|v| v.split('-').next()?.parse::<u64>().ok());
                if resp.status() != reqwest::StatusCode::PARTIAL_CONTENT || from != Some(done) {
                    return Err(Error::Protocol(format!(
                        "{}: asked for bytes {done}-{}, the server answered otherwise",
                        self.rel,
                        end - 1
                    )));
                }
                resp
            }
        };
        let mut stream = resp.bytes_stream();
        let mut woke = done;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| crate::http::network(&e))?;
            let room = usize::try_from(end - done).unwrap_or(usize::MAX);
            if chunk.len() > room {
                return Err(Error::Protocol(format!(
                    "{}: the server sent more than the range asked",
                    self.rel
                )));
            }
            self.file
                .write_all_at(&chunk, done)
                .map_err(Error::io(self.part))?;
            done += chunk.len() as u64;
            self.follow.done[i].store(done, Ordering::Release);
            if done - woke >= WAKE_EVERY || done == end {
                woke = done;
                self.follow.wake();
            }
            let n = chunk.len() as u64;
            self.received.fetch_add(n, Ordering::Relaxed);
            self.moved.fetch_add(n, Ordering::Relaxed);
            self.after_chunk().await?;
        }
        if done != end {
            return Err(Error::Network(format!(
                "{}: got {} of bytes {}-{}",
                self.rel,
                done - r[1],
                r[1],
                end - 1
            )));
        }
        Ok(())
    }
}

impl Shared<'_> {
    /// Pacing, progress and checkpoints, after each chunk.
    async fn after_chunk(&self) -> Result<()> {
        self.pacer.pace(self.received.load(Ordering::Relaxed)).await;
        // After the pacing: the other ranges moved on meanwhile.
        let moved = self.moved.load(Ordering::Relaxed);
        if moved.saturating_sub(self.shown.load(Ordering::Relaxed))
            >= crate::download::PROGRESS_EVERY
            || moved == self.version.size
        {
            self.shown.store(moved, Ordering::Relaxed);
            self.session.emit(&Event::Progress {
                path: self.rel.to_owned(),
                done: moved,
                size: self.version.size,
            });
        }
        if moved >= self.checkpoint.load(Ordering::Relaxed) {
            self.checkpoint.store(moved + CHECKPOINT, Ordering::Relaxed);
            // Taken before the sync: saved only once the bytes it counts are on disk.
            let ranges: Ranges = self
                .follow
                .done
                .iter()
                .zip(&self.bounds)
                .map(|(d, [a, b])| [*a, d.load(Ordering::Acquire), *b])
                .collect();
            let f = self.file.try_clone().map_err(Error::io(self.part))?;
            let synced = tokio::task::spawn_blocking(move || f.sync_data())
                .await
                .map_err(|e| Error::Protocol(e.to_string()))?;
            if synced.is_ok() {
                save(self.state_file, self.url, self.version, &ranges)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_cover_the_file_once_in_order() {
        for size in [0u64, 1, 2, 3, 7, 1000, 1 << 30, (1 << 30) + 3] {
            for n in 1..6 {
                let r = split(0, size, n);
                assert!(r.len() <= n);
                let mut pos = 0;
                for [a, d, b] in &r {
                    assert_eq!((*a, *d), (pos, pos));
                    assert!(a < b);
                    pos = *b;
                }
                assert_eq!(pos, size, "size {size} in {n}");
            }
        }
        assert_eq!(split(10, 20, 2), vec![[10, 10, 15], [15, 15, 20]]);
        assert!(split(20, 20, 3).is_empty());
    }
}
