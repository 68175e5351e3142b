//! Downloads: a file or a whole tree, resumed with Range, verified before it gets its
//! final name.

use std::io::Write as _;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use futures_util::StreamExt as _;
use serde::Deserialize;
use tokio::sync::Semaphore;

use crate::commit::Committer;
use crate::digest::{Hasher, file_sha256};
use crate::http::check;
use crate::state::{self, DownloadState};
use crate::upload::parse_repr_digest;
use crate::{Error, Event, Result, Session, Summary, hex};

/// Suffix of a download in progress, next to its destination.
pub(crate) const PART_SUFFIX: &str = ".fallback-part";

#[derive(Debug, Deserialize)]
struct Manifest {
    entries: Vec<ManifestEntry>,
}

#[derive(Debug, Deserialize)]
struct ManifestEntry {
    path: String,
    kind: String,
    size: u64,
    sha256: Option<String>,
}

/// One file to fetch.
#[derive(Debug, Clone)]
struct Job {
    /// Docroot-relative remote path.
    remote: String,
    /// Display path.
    rel: String,
    local: PathBuf,
    size: u64,
    sha256: Option<String>,
}

/// A remote relative path made safe to join locally: normal components only.
fn safe_local(root: &Path, rel: &str) -> Result<PathBuf> {
    let p = Path::new(rel);
    if rel.is_empty()
        || rel.contains('\\')
        || !p.components().all(|c| matches!(c, Component::Normal(_)))
    {
        return Err(Error::Protocol(format!(
            "the server listed an unsafe path {rel:?}; refusing to write it"
        )));
    }
    Ok(root.join(p))
}

/// The directory `local` is in; `.` for a bare file name (whose `parent()` is empty).
fn parent_of(local: &Path) -> Option<PathBuf> {
    local.parent().map(|p| {
        if p.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            p.to_owned()
        }
    })
}

fn part_of(local: &Path) -> PathBuf {
    let mut s = local.as_os_str().to_owned();
    s.push(PART_SUFFIX);
    PathBuf::from(s)
}

pub(crate) fn state_of(part: &Path) -> PathBuf {
    let mut s = part.as_os_str().to_owned();
    s.push(".json");
    PathBuf::from(s)
}

impl Session {
    /// Downloads the URL's path (a file or a directory tree) into `dest`: a directory
    /// (created if missing), or, for a single file, a file name. Returns what was done;
    /// files that failed are listed in the summary, not as an error.
    pub async fn download(&self, dest: &Path) -> Result<Summary> {
        let remote = if self.url.path.is_empty() {
            "/".to_owned()
        } else {
            self.url.path.clone()
        };
        let head = self.retrying_head(&remote).await?;
        let jobs = if head.is_dir {
            let resp = self
                .send(
                    self.http
                        .get(format!("{}/", self.files_url(&remote)))
                        .header(reqwest::header::ACCEPT, "application/json"),
                )
                .await?;
            let m: Manifest = check(resp)
                .await?
                .json()
                .await
                .map_err(|e| Error::Protocol(format!("bad manifest: {e}")))?;
            std::fs::create_dir_all(dest).map_err(Error::io(dest))?;
            let mut jobs = Vec::new();
            for e in m.entries {
                let local = safe_local(dest, &e.path)?;
                if e.kind == "dir" {
                    std::fs::create_dir_all(&local).map_err(Error::io(&local))?;
                    continue;
                }
                jobs.push(Job {
                    remote: format!("{}/{}", remote.trim_end_matches('/'), e.path),
                    rel: e.path,
                    local,
                    size: e.size,
                    sha256: e.sha256,
                });
            }
            jobs
        } else {
            let name = remote.rsplit('/').next().unwrap_or("download").to_owned();
            let local = if dest.is_dir() {
                safe_local(dest, &name)?
            } else {
                dest.to_owned()
            };
            vec![Job {
                remote: remote.clone(),
                rel: name,
                local,
                size: head.size,
                sha256: head.sha256,
            }]
        };
        let ranged: Vec<u64> = jobs
            .iter()
            .filter(|j| j.size > SMALL_FILE && self.streams_for(j.size) > 1)
            .map(|j| j.size)
            .collect();
        if let Some(big) = ranged.iter().max() {
            self.emit(&Event::Decision {
                message: format!(
                    "{} large file(s), the largest {big} bytes: {} connections each, byte \
                     ranges fetched at once (--streams N to change; by default {} from {} MiB)",
                    ranged.len(),
                    self.streams_for(*big),
                    crate::DEFAULT_STREAMS,
                    crate::STREAMS_FROM >> 20,
                ),
            });
        }
        let dirs: std::collections::BTreeSet<PathBuf> =
            jobs.iter().filter_map(|j| parent_of(&j.local)).collect();
        // `parallel` requests at a time; a file whose bytes are in waits for its
        // group commit without holding a request slot, so several times as many files
        // are in flight.
        let run = Run {
            requests: Arc::new(Semaphore::new(self.opts.parallel.max(1))),
            committer: Arc::new(Committer::default()),
        };
        let summary = self
            .run_jobs(
                jobs,
                self.opts.parallel.max(1) * COMMIT_DEPTH,
                |j: &Job| (j.rel.clone(), j.size),
                |s, j: &Job| {
                    let run = run.clone();
                    Box::pin(async move { s.download_one(j, &run).await })
                },
            )
            .await;
        let dirs = tokio::task::spawn_blocking(move || sync_dirs(&dirs));
        dirs.await.map_err(|e| Error::Protocol(e.to_string()))??;
        Ok(summary)
    }

    /// Connections for a file of `size` bytes: `--streams`, else by size (a rate
    /// limit caps the file's ranges together).
    fn streams_for(&self, size: u64) -> usize {
        match self.opts.streams {
            Some(n) => n.max(1),
            None if size >= crate::STREAMS_FROM => crate::DEFAULT_STREAMS,
            None => 1,
        }
    }

    async fn retrying_head(&self, remote: &str) -> Result<Head> {
        let mut attempt = 1;
        loop {
            match self.head(remote).await {
                Ok(h) => return Ok(h),
                Err(e) => {
                    if !self.backoff(remote, attempt, &e).await {
                        return Err(e);
                    }
                    attempt += 1;
                }
            }
        }
    }

    pub(crate) async fn head(&self, remote: &str) -> Result<Head> {
        let resp = self.send(self.http.head(self.files_url(remote))).await?;
        let resp = check(resp).await?;
        let h = resp.headers();
        let get = |n: &str| h.get(n).and_then(|v| v.to_str().ok()).map(str::to_owned);
        Ok(Head {
            is_dir: get("fallback-kind").as_deref() == Some("dir"),
            size: get("content-length")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0),
            sha256: get("repr-digest").as_deref().and_then(parse_repr_digest),
        })
    }

    /// Downloads one file; returns the bytes this run received.
    async fn download_one(&self, job: &Job, run: &Run) -> Result<u64> {
        if let Some(dir) = parent_of(&job.local) {
            std::fs::create_dir_all(&dir).map_err(Error::io(&dir))?;
        }
        let part = part_of(&job.local);
        let state_file = state_of(&part);
        let mut received = 0u64;
        let mut attempt = 1;
        loop {
            match self
                .download_attempt(job, run, &part, &state_file, &mut received)
                .await
            {
                Ok(()) => break,
                Err(e) => {
                    if !self.backoff(&job.rel, attempt, &e).await {
                        return Err(e);
                    }
                    attempt += 1;
                }
            }
        }
        Ok(received)
    }

    /// One attempt: a GET (ranged from the part's end, `If-Range` its `ETag`, when an
    /// earlier attempt left a part of this very file), written to the part and hashed
    /// as it arrives, fsynced, checked against the announced SHA-256, then renamed. No
    /// HEAD first: the GET's own headers say what the file is.
    async fn download_attempt(
        &self,
        job: &Job,
        run: &Run,
        part: &Path,
        state_file: &Path,
        received: &mut u64,
    ) -> Result<()> {
        let url = self.files_url(&job.remote);
        // A small file is fetched whole each attempt: no resume state to keep, and it
        // is hashed as it arrives without a thread of its own.
        let small = job.size <= SMALL_FILE;
        // Resume only a part of this URL whose ETag is known; otherwise start over.
        let kept = match (
            state::read::<DownloadState>(state_file),
            std::fs::metadata(part),
        ) {
            (Some(st), Ok(m))
                if !small
                    && st.url == url
                    && !st.etag.is_empty()
                    && st.ranges.is_empty()
                    && m.len() > 0 =>
            {
                Some((st.etag, m.len()))
            }
            _ => None,
        };
        let slot = run
            .requests
            .acquire()
            .await
            .map_err(|_| Error::Protocol("the run was stopped".to_owned()))?;
        let streams = self.streams_for(job.size);
        if !small && streams > 1 {
            let (version, digest) = self
                .fetch_ranges(
                    &job.rel, &url, part, state_file, job.size, streams, received,
                )
                .await?;
            drop(slot);
            let expected = version.expected.or_else(|| job.sha256.clone());
            return self
                .publish(
                    job,
                    part,
                    state_file,
                    version.size,
                    expected.as_deref(),
                    hex(&digest),
                    *received,
                    Durable::Already,
                    run,
                )
                .await;
        }
        let mut req = self.http.get(&url);
        if let Some((etag, have)) = &kept {
            req = req
                .header("Range", format!("bytes={have}-"))
                .header("If-Range", etag);
        }
        let resp = self.send(req).await?;
        if resp.status() == reqwest::StatusCode::RANGE_NOT_SATISFIABLE
            && let Some((_, have)) = &kept
        {
            // The part is whole already (its last answer was lost): verify it as is.
            let total = resp
                .headers()
                .get(reqwest::header::CONTENT_RANGE)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("bytes */"))
                .and_then(|v| v.parse::<u64>().ok());
            if total == Some(*have) {
                let expected = resp
                    .headers()
                    .get("repr-digest")
                    .and_then(|v| v.to_str().ok())
                    .and_then(parse_repr_digest)
                    .or_else(|| job.sha256.clone());
                drop(slot);
                let actual = hex(&file_sha256(part).await?);
                // Not known to be synced: the attempt that wrote it may have been cut.
                let file = std::fs::File::open(part).map_err(Error::io(part))?;
                return self
                    .publish(
                        job,
                        part,
                        state_file,
                        *have,
                        expected.as_deref(),
                        actual,
                        *received,
                        Durable::Commit(file),
                        run,
                    )
                    .await;
            }
            // Longer than the file: not a part of it.
            let _ = std::fs::remove_file(part);
            state::remove(state_file);
            return Err(Error::Http {
                status: 503,
                message: "the kept part is longer than the file; starting over".to_owned(),
            });
        }
        let resp = check(resp).await?;
        let resumed = resp.status() == reqwest::StatusCode::PARTIAL_CONTENT && kept.is_some();
        let crate::ranges::Version {
            etag,
            size,
            expected,
        } = crate::ranges::Version::of(&resp, resumed)?;
        let expected = expected.or_else(|| job.sha256.clone());
        let have = if resumed {
            kept.as_ref().map_or(0, |k| k.1)
        } else {
            0
        };
        if !resumed && !small {
            // This answer starts the file: what a later attempt may resume.
            state::write(
                state_file,
                &DownloadState {
                    url: url.clone(),
                    etag: etag.clone(),
                    size,
                    ranges: Vec::new(),
                    sha256: None,
                },
            )?;
        }
        self.emit(&Event::FileStart {
            path: job.rel.clone(),
            size,
            resumed_from: have,
        });
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(resumed)
            .write(true)
            .truncate(!resumed)
            .open(part)
            .map_err(Error::io(part))?;
        let mut done = have;
        // The digest is computed as the bytes arrive, on a blocking thread fed from the
        // receive loop (a resumed part's own bytes first, read once): no second read of
        // the file once it is whole.
        let mut hasher = if small && have == 0 {
            Hasher::inline()
        } else {
            Hasher::start(part, have)
        };
        let pacer = crate::Pacer::new(self.rate_limit());
        let mut flusher = if size > Flusher::EVERY {
            Some(Flusher::new(&file, part)?)
        } else {
            None
        };
        let mut stream = resp.bytes_stream();
        let mut shown = done;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| crate::http::network(&e))?;
            file.write_all(&chunk).map_err(Error::io(part))?;
            hasher.feed(chunk.clone()).await;
            done += chunk.len() as u64;
            *received += chunk.len() as u64;
            if let Some(f) = &mut flusher {
                f.wrote(done);
            }
            pacer.pace(done - have).await;
            if done - shown >= PROGRESS_EVERY || done == size {
                shown = done;
                self.emit(&Event::Progress {
                    path: job.rel.clone(),
                    done,
                    size,
                });
            }
        }
        drop(slot);
        if done != size {
            return Err(Error::Network(format!(
                "{}: got {done} of {size} bytes",
                job.rel
            )));
        }
        let durable = if small {
            // Synced with the other small files of its batch, after the digest check.
            Durable::Commit(file)
        } else {
            if let Some(f) = flusher {
                f.finish().await?;
            }
            let f = file;
            tokio::task::spawn_blocking(move || f.sync_all())
                .await
                .map_err(|e| Error::Protocol(e.to_string()))?
                .map_err(Error::io(part))?;
            Durable::Already
        };
        let actual = hex(&hasher.finish().await?);
        self.publish(
            job,
            part,
            state_file,
            size,
            expected.as_deref(),
            actual,
            *received,
            durable,
            run,
        )
        .await
    }

    /// The part is whole: checked against `expected`, made durable if it is not yet
    /// (with its commit batch), renamed to its name. The parent directory is synced
    /// once for the whole run ([`Session::download`]).
    #[allow(clippy::too_many_arguments)]
    async fn publish(
        &self,
        job: &Job,
        part: &Path,
        state_file: &Path,
        size: u64,
        expected: Option<&str>,
        actual: String,
        received: u64,
        durable: Durable,
        run: &Run,
    ) -> Result<()> {
        if let Some(exp) = expected
            && exp != actual
        {
            let _ = std::fs::remove_file(part);
            state::remove(state_file);
            return Err(Error::DigestMismatch(job.rel.clone()));
        }
        if expected.is_none() {
            tracing::warn!(path = %job.rel, "the server announced no SHA-256: not verified end to end");
        }
        match durable {
            Durable::Already => {
                std::fs::rename(part, &job.local).map_err(Error::io(&job.local))?;
            }
            Durable::Commit(file) => {
                run.committer
                    .commit(file, part.to_owned(), job.local.clone())
                    .await?;
            }
        }
        state::remove(state_file);
        self.emit(&Event::FileDone {
            path: job.rel.clone(),
            size,
            transferred: received,
            sha256: actual,
        });
        Ok(())
    }
}

/// What one download run shares: its request slots and its group commit.
#[derive(Clone)]
struct Run {
    requests: Arc<Semaphore>,
    committer: Arc<Committer>,
}

/// Files in flight per request slot: the ones past their request wait for their batch.
const COMMIT_DEPTH: usize = 8;

/// Whether a checked part still has to reach the disk before its rename.
enum Durable {
    /// Synced already (a large file, after its last byte).
    Already,
    /// Not synced (a small file, or a kept part verified as is): synced through this
    /// handle with its batch.
    Commit(std::fs::File),
}

/// fsync of each directory files were renamed into, once each: the renames are
/// durable when the run reports success.
fn sync_dirs(dirs: &std::collections::BTreeSet<PathBuf>) -> Result<()> {
    for d in dirs {
        std::fs::File::open(d)
            .and_then(|f| f.sync_all())
            .map_err(Error::io(d))?;
    }
    Ok(())
}

/// Files up to this size are fetched whole on each attempt, hashed inline.
const SMALL_FILE: u64 = 1 << 20;

/// Bytes between two progress events.
pub(crate) const PROGRESS_EVERY: u64 = 1 << 20;

/// Starts write-back while a download arrives: every [`Flusher::EVERY`] bytes an
/// fdatasync on a blocking thread (one at a time), so the bytes go to disk as they come
/// and the fsync before the rename finds little left to write. The descriptor is shared
/// with the writer, so an error one of these syncs sees is kept and reported: the
/// kernel reports it once per open file.
struct Flusher {
    file: std::fs::File,
    path: PathBuf,
    next: u64,
    running: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
    failed: Option<std::io::Error>,
}

impl Flusher {
    const EVERY: u64 = 64 << 20;

    fn new(file: &std::fs::File, path: &Path) -> Result<Flusher> {
        Ok(Flusher {
            file: file.try_clone().map_err(Error::io(path))?,
            path: path.to_owned(),
            next: Self::EVERY,
            running: None,
            failed: None,
        })
    }

    fn wrote(&mut self, total: u64) {
        if total < self.next || self.running.as_ref().is_some_and(|r| !r.is_finished()) {
            return;
        }
        self.next = total + Self::EVERY;
        if let Some(done) = self.running.take() {
            // Finished: its result is ready without waiting.
            let r = futures_util::FutureExt::now_or_never(done);
            if let Some(Ok(Err(e))) = r {
                self.failed.get_or_insert(e);
            }
        }
        if let Ok(f) = self.file.try_clone() {
            self.running = Some(tokio::task::spawn_blocking(move || f.sync_data()));
        }
    }

    /// Waits for the sync in flight; the first error any of them met.
    async fn finish(mut self) -> Result<()> {
        if let Some(r) = self.running.take()
            && let Ok(Err(e)) = r.await
        {
            self.failed.get_or_insert(e);
        }
        match self.failed {
            Some(e) => Err(Error::Io {
                path: self.path,
                source: e,
            }),
            None => Ok(()),
        }
    }
}

/// What `HEAD /files/...` says.
#[derive(Debug, Clone)]
pub(crate) struct Head {
    pub(crate) is_dir: bool,
    pub(crate) size: u64,
    pub(crate) sha256: Option<String>,
}
