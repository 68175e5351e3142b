//! Uploads: files and trees through tus, resumable across retries and restarts.

use std::io::{Read as _, Seek as _, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use sha2::{Digest as _, Sha256};

use crate::digest::{Hasher, file_sha256};
use crate::http::check;
use crate::state::{self, UploadState};
use crate::{Error, Event, Result, Session, Summary, hex};

/// One file to send.
#[derive(Debug, Clone)]
pub(crate) struct Job {
    pub(crate) local: PathBuf,
    /// `/`-separated path relative to the remote directory.
    pub(crate) rel: String,
    pub(crate) size: u64,
}

fn walk(dir: &Path, prefix: &str, out: &mut Vec<Job>) -> Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .map_err(Error::io(dir))?
        .collect::<std::result::Result<_, _>>()
        .map_err(Error::io(dir))?;
    entries.sort_by_key(std::fs::DirEntry::file_name);
    for e in entries {
        let name = e.file_name();
        let Some(name) = name.to_str() else {
            return Err(Error::Url(format!(
                "{}: file names must be UTF-8 to be sent",
                e.path().display()
            )));
        };
        let rel = format!("{prefix}/{name}");
        let meta = std::fs::metadata(e.path()).map_err(Error::io(e.path()))?;
        if meta.is_dir() {
            walk(&e.path(), &rel, out)?;
        } else if meta.is_file() {
            out.push(Job {
                local: e.path(),
                rel,
                size: meta.len(),
            });
        }
    }
    Ok(())
}

/// The files of `sources`: a file is sent under its name, a directory with its layout.
pub(crate) fn collect(sources: &[PathBuf]) -> Result<Vec<Job>> {
    let mut jobs = Vec::new();
    for s in sources {
        let meta = std::fs::metadata(s).map_err(Error::io(s))?;
        let name = s
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| Error::Url(format!("{}: no usable file name", s.display())))?
            .to_owned();
        if meta.is_dir() {
            walk(s, &name, &mut jobs)?;
        } else {
            jobs.push(Job {
                local: s.clone(),
                rel: name,
                size: meta.len(),
            });
        }
    }
    Ok(jobs)
}

impl Session {
    /// Uploads files and directory trees into the URL's path (the upload token's
    /// directory, or beneath it). Returns what was done; files that failed are listed
    /// in the summary, not as an error.
    pub async fn upload(&self, sources: &[PathBuf]) -> Result<Summary> {
        let jobs = collect(sources)?;
        Ok(self
            .run_jobs(
                jobs,
                self.opts.parallel,
                |j: &Job| (j.rel.clone(), j.size),
                |s, j| Box::pin(s.upload_one(j)),
            )
            .await)
    }

    /// Bytes per second: `--limit-rate`, else the URL's `targetrate` (kbps).
    pub(crate) fn rate_limit(&self) -> Option<u64> {
        self.opts.rate_limit.or_else(|| {
            self.url
                .params
                .targetrate
                .map(|kbps| kbps.saturating_mul(125))
        })
    }

    fn remote_dest(&self, rel: &str) -> String {
        let dir = self.url.path.trim_end_matches('/');
        format!("{dir}/{rel}")
    }

    /// Uploads one file; returns the bytes this run sent.
    async fn upload_one(&self, job: &Job) -> Result<u64> {
        let dest = self.remote_dest(&job.rel);
        if job.size <= SMALL {
            let mut attempt = 1;
            let sha256 = loop {
                match self.upload_small(job, &dest).await {
                    Ok(d) => break d,
                    Err(e) => {
                        if !self.backoff(&job.rel, attempt, &e).await {
                            return Err(e);
                        }
                        attempt += 1;
                    }
                }
            };
            self.emit(&Event::FileDone {
                path: job.rel.clone(),
                size: job.size,
                transferred: job.size,
                sha256,
            });
            return Ok(job.size);
        }
        let meta = std::fs::metadata(&job.local).map_err(Error::io(&job.local))?;
        let state_dir = self
            .opts
            .state_dir
            .clone()
            .unwrap_or_else(state::default_state_dir);
        let state_file = state::upload_state_path(&state_dir, &self.base, &dest, &job.local, &meta);
        let mut known: Option<UploadState> = state::read(&state_file);
        let mut first_offset: Option<u64> = None;
        let mut attempt = 1;
        let streams = self.upload_streams_for(job.size);
        if streams > 1 {
            self.emit(&Event::Decision {
                message: format!(
                    "{}: {} bytes as {streams} partial uploads sent at once, joined by the \
                     server (tus concatenation; --streams 1 sends one)",
                    job.rel, job.size
                ),
            });
        }
        let sha256 = loop {
            let r = if streams > 1 {
                self.upload_ranged(
                    job,
                    &dest,
                    &state_file,
                    &mut known,
                    &mut first_offset,
                    streams,
                )
                .await
            } else {
                self.upload_attempt(job, &dest, &state_file, &mut known, &mut first_offset)
                    .await
            };
            match r {
                Ok(v) => break v,
                Err(e) => {
                    if !self.backoff(&job.rel, attempt, &e).await {
                        return Err(e);
                    }
                    attempt += 1;
                }
            }
        };
        state::remove(&state_file);
        let transferred = job.size - first_offset.unwrap_or(0).min(job.size);
        self.emit(&Event::FileDone {
            path: job.rel.clone(),
            size: job.size,
            transferred,
            sha256,
        });
        Ok(transferred)
    }

    /// A small file in one request: read and hashed first, then sent with its creation
    /// (tus creation-with-upload) with its digest, which the server checks before the
    /// file appears. A server that kept fewer bytes than sent gets the rest by PATCH.
    async fn upload_small(&self, job: &Job, dest: &str) -> Result<String> {
        let path = job.local.clone();
        let data = tokio::task::spawn_blocking(move || std::fs::read(&path))
            .await
            .map_err(|e| Error::Protocol(e.to_string()))?
            .map_err(Error::io(&job.local))?;
        let data = Bytes::from(data);
        let digest: [u8; 32] = Sha256::digest(&data).into();
        let size = data.len() as u64;
        self.emit(&Event::FileStart {
            path: job.rel.clone(),
            size,
            resumed_from: 0,
        });
        let resp = self
            .send(
                self.creation(dest, size, Some(&digest))
                    .header("Repr-Digest", repr_digest(&digest))
                    .header("Content-Type", OFFSET_OCTET_STREAM)
                    .body(data.clone()),
            )
            .await?;
        let resp = check(resp).await.map_err(|e| mismatch(e, &job.rel))?;
        let (offset, announced) = offset_and_digest(&resp)?;
        let announced = if offset < size {
            let url = self.location(&resp)?;
            let at = usize::try_from(offset).unwrap_or(0);
            self.patch_bytes(job, &url, offset, data.slice(at..), &digest)
                .await?
        } else {
            announced
        };
        self.emit(&Event::Progress {
            path: job.rel.clone(),
            done: size,
            size,
        });
        verified(&job.rel, &digest, announced)
    }

    /// One attempt at a larger file: create the upload if there is none yet, else ask
    /// for its offset; send the rest while hashing it (and, on a resume, the bytes
    /// already sent, read again locally), all but the last bytes in one PATCH; then the
    /// last bytes in a PATCH that carries the whole file's digest (`Repr-Digest`), which
    /// the server checks before the file appears. Returns the digest (hex).
    async fn upload_attempt(
        &self,
        job: &Job,
        dest: &str,
        state_file: &Path,
        known: &mut Option<UploadState>,
        first_offset: &mut Option<u64>,
    ) -> Result<String> {
        let (st, offset, done_digest) =
            if let Some(st) = known.clone().filter(|s| s.partials.is_empty()) {
                let (o, d) = self.kept_offset(&st.upload_url, state_file, known).await?;
                (st, o, d)
            } else {
                let resp = self.send(self.creation(dest, job.size, None)).await?;
                let resp = check(resp).await?;
                let st = UploadState {
                    upload_url: self.location(&resp)?,
                    partials: Vec::new(),
                };
                state::write(state_file, &st)?;
                *known = Some(st.clone());
                (st, 0, None)
            };
        first_offset.get_or_insert(offset);
        self.emit(&Event::FileStart {
            path: job.rel.clone(),
            size: job.size,
            resumed_from: offset,
        });
        if offset >= job.size {
            // Complete already (an earlier attempt's answer was lost): the server's
            // digest must be this file's.
            let digest = file_sha256(&job.local).await?;
            return verified(&job.rel, &digest, done_digest);
        }
        let mut hasher = Hasher::start(&job.local, offset);
        let split = job.size - TAIL.min(job.size - offset);
        if split > offset {
            let at = self
                .patch_stream(job, &st.upload_url, offset, split, &hasher)
                .await?;
            if at != split {
                return Err(Error::Http {
                    status: 503,
                    message: format!("the server stored {at} of {} bytes", job.size),
                });
            }
        }
        let tail = read_at(&job.local, split, job.size - split).await?;
        hasher.feed(tail.clone()).await;
        let digest = hasher.finish().await?;
        let announced = match self
            .patch_bytes(job, &st.upload_url, split, tail, &digest)
            .await
        {
            Err(Error::DigestMismatch(p)) => {
                // The server removed the upload: the next attempt starts afresh.
                state::remove(state_file);
                *known = None;
                return Err(Error::DigestMismatch(p));
            }
            other => other?,
        };
        verified(&job.rel, &digest, announced)
    }

    /// Connections for uploading a file of `size` bytes: `--streams` (the default is
    /// one: the server copies the partials into the file when it joins them, which
    /// costs more than one stream on a short path).
    fn upload_streams_for(&self, size: u64) -> usize {
        match self.opts.streams {
            Some(n) if size > SMALL => n.max(1),
            _ => 1,
        }
    }

    /// One attempt at a large file as partial uploads sent at once (tus concatenation):
    /// the partials are created (or, on a resume, asked for their offsets), each sends
    /// its range of the file, the whole file is hashed beside them (read again locally,
    /// on its own thread), then a final upload joins them with the whole file's digest,
    /// which the server checks before the file appears. Returns the digest (hex).
    async fn upload_ranged(
        &self,
        job: &Job,
        dest: &str,
        state_file: &Path,
        known: &mut Option<UploadState>,
        first_offset: &mut Option<u64>,
        streams: usize,
    ) -> Result<String> {
        let st = match known.clone().filter(|s| !s.partials.is_empty()) {
            Some(st) => st,
            None => {
                let ranges = crate::ranges::split(0, job.size, streams);
                let mut partials = Vec::new();
                for r in &ranges {
                    let resp = self
                        .send(
                            self.http
                                .post(format!("{}/uploads", self.base))
                                .header("Tus-Resumable", "1.0.0")
                                .header("Upload-Concat", "partial")
                                .header("Upload-Length", r[2] - r[0]),
                        )
                        .await?;
                    partials.push((self.location(&check(resp).await?)?, [r[0], r[2]]));
                }
                let st = UploadState {
                    upload_url: String::new(),
                    partials,
                };
                state::write(state_file, &st)?;
                *known = Some(st.clone());
                st
            }
        };
        let mut offsets = Vec::new();
        for (url, _) in &st.partials {
            offsets.push(self.kept_offset(url, state_file, known).await?.0);
        }
        let have: u64 = offsets.iter().sum();
        first_offset.get_or_insert(have);
        self.emit(&Event::FileStart {
            path: job.rel.clone(),
            size: job.size,
            resumed_from: have,
        });
        // The whole file, read and hashed on its own thread while the ranges go.
        let hasher = Hasher::start(&job.local, job.size);
        let moved = Arc::new(std::sync::atomic::AtomicU64::new(have));
        let sent = futures_util::future::join_all(
            st.partials
                .iter()
                .zip(&offsets)
                .filter(|((_, [a, b]), o)| a + **o < *b)
                .map(|((url, [a, b]), o)| self.patch_partial(job, url, *o, *a, *b, &moved)),
        )
        .await;
        if let Some(e) = sent.into_iter().find_map(std::result::Result::err) {
            return Err(e);
        }
        let digest = hasher.finish().await?;
        let urls: Vec<&str> = st.partials.iter().map(|(u, _)| u.as_str()).collect();
        let resp = self
            .send(
                self.http
                    .post(format!("{}/uploads", self.base))
                    .header("Tus-Resumable", "1.0.0")
                    .header("Upload-Concat", format!("final;{}", urls.join(" ")))
                    .header("Upload-Metadata", metadata(dest, Some(&digest)))
                    .header("Repr-Digest", repr_digest(&digest)),
            )
            .await?;
        let announced = match check(resp).await.map_err(|e| mismatch(e, &job.rel)) {
            Err(Error::DigestMismatch(p)) => {
                // The server removed what it joined: the next attempt starts afresh.
                state::remove(state_file);
                *known = None;
                return Err(Error::DigestMismatch(p));
            }
            Err(e) => return Err(e),
            Ok(resp) => offset_and_digest(&resp)?.1,
        };
        verified(&job.rel, &digest, announced)
    }

    /// Sends bytes `a + offset..b` of the file to the partial upload `url` (which
    /// holds bytes `a..b`) in one PATCH; `moved` counts the file's bytes sent.
    async fn patch_partial(
        &self,
        job: &Job,
        url: &str,
        offset: u64,
        a: u64,
        b: u64,
        moved: &Arc<std::sync::atomic::AtomicU64>,
    ) -> Result<()> {
        use std::sync::atomic::Ordering;
        // One chunk queued per partial: memory stays a few MiB per stream.
        let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<Bytes>>(1);
        {
            let path = job.local.clone();
            tokio::task::spawn_blocking(move || read_range(&path, a + offset, b, &tx, None));
        }
        let events = self.events.clone();
        let rel = job.rel.clone();
        let size = job.size;
        let moved = Arc::clone(moved);
        let body = futures_util::stream::unfold(rx, move |mut rx| {
            let (events, rel, moved) = (events.clone(), rel.clone(), Arc::clone(&moved));
            async move {
                let chunk = rx.recv().await?;
                let n = chunk.as_ref().map_or(0, |c| c.len() as u64);
                let done = moved.fetch_add(n, Ordering::Relaxed) + n;
                events(&Event::Progress {
                    path: rel,
                    done,
                    size,
                });
                Some((chunk, rx))
            }
        });
        let resp = self
            .send(
                self.patch_request(url, offset, b - a - offset)
                    .body(reqwest::Body::wrap_stream(body)),
            )
            .await?;
        let (at, _) = patched(resp).await?;
        if at != b - a {
            return Err(Error::Http {
                status: 503,
                message: format!("a partial upload stored {at} of {} bytes", b - a),
            });
        }
        Ok(())
    }

    /// `POST /uploads` for `dest`: the request, to which a body may be added.
    fn creation(
        &self,
        dest: &str,
        size: u64,
        digest: Option<&[u8; 32]>,
    ) -> reqwest::RequestBuilder {
        self.http
            .post(format!("{}/uploads", self.base))
            .header("Tus-Resumable", "1.0.0")
            .header("Upload-Length", size)
            .header("Upload-Metadata", metadata(dest, digest))
    }

    /// The upload URL of a creation answer (`Location`, a path on the same origin).
    fn location(&self, resp: &reqwest::Response) -> Result<String> {
        let loc = resp
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| Error::Protocol("no Location in the creation answer".to_owned()))?;
        let origin = self
            .base
            .split("/aspera/")
            .next()
            .unwrap_or(&self.base)
            .to_owned();
        Ok(if loc.starts_with('/') {
            format!("{origin}{loc}")
        } else {
            loc.to_owned()
        })
    }

    /// [`Session::offset`] of an upload the resume state names; one that expired or
    /// was removed on the server forgets the state and is retried from scratch.
    async fn kept_offset(
        &self,
        upload_url: &str,
        state_file: &Path,
        known: &mut Option<UploadState>,
    ) -> Result<(u64, Option<String>)> {
        match self.offset(upload_url).await {
            Err(Error::Http {
                status: 404 | 410, ..
            }) => {
                state::remove(state_file);
                *known = None;
                Err(Error::Http {
                    status: 503,
                    message: "the upload is gone on the server; starting over".to_owned(),
                })
            }
            other => other,
        }
    }

    /// `HEAD` of an upload: its offset, and its digest when it is complete.
    async fn offset(&self, upload_url: &str) -> Result<(u64, Option<String>)> {
        let resp = self
            .send(self.http.head(upload_url).header("Tus-Resumable", "1.0.0"))
            .await?;
        offset_and_digest(&check(resp).await?)
    }

    fn patch_request(&self, upload_url: &str, offset: u64, len: u64) -> reqwest::RequestBuilder {
        self.http
            .patch(upload_url)
            .header("Tus-Resumable", "1.0.0")
            .header("Content-Type", OFFSET_OCTET_STREAM)
            .header("Upload-Offset", offset)
            .header("Content-Length", len)
    }

    /// Sends bytes `offset..end` of the file in one PATCH, read on a blocking thread
    /// and fed to `hasher` as they go; returns the new offset.
    async fn patch_stream(
        &self,
        job: &Job,
        upload_url: &str,
        offset: u64,
        end: u64,
        hasher: &Hasher,
    ) -> Result<u64> {
        let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<Bytes>>(4);
        {
            // It stops at the end, or once the body is dropped (the request ended).
            let path = job.local.clone();
            let feed = hasher.feeder().ok_or_else(|| {
                Error::Protocol("a streamed upload needs a hashing thread".to_owned())
            })?;
            tokio::task::spawn_blocking(move || read_range(&path, offset, end, &tx, Some(&feed)));
        }
        let events = self.events.clone();
        let rel = job.rel.clone();
        let size = job.size;
        let pacer = Arc::new(crate::Pacer::new(self.rate_limit()));
        let body = futures_util::stream::unfold((rx, offset), move |(mut rx, done)| {
            let events = events.clone();
            let rel = rel.clone();
            let pacer = pacer.clone();
            async move {
                let chunk = rx.recv().await?;
                let done = done + chunk.as_ref().map_or(0, |c| c.len() as u64);
                pacer.pace(done - offset).await;
                events(&Event::Progress {
                    path: rel,
                    done,
                    size,
                });
                Some((chunk, (rx, done)))
            }
        });
        let resp = self
            .send(
                self.patch_request(upload_url, offset, end - offset)
                    .body(reqwest::Body::wrap_stream(body)),
            )
            .await?;
        let (at, _) = patched(resp).await?;
        Ok(at)
    }

    /// Sends `data` at `offset` in one PATCH that carries the whole file's digest,
    /// checked by the server if this completes the upload; returns the server's digest.
    async fn patch_bytes(
        &self,
        job: &Job,
        upload_url: &str,
        offset: u64,
        data: Bytes,
        digest: &[u8; 32],
    ) -> Result<Option<String>> {
        let end = offset + data.len() as u64;
        let resp = self
            .send(
                self.patch_request(upload_url, offset, data.len() as u64)
                    .header("Repr-Digest", repr_digest(digest))
                    .body(data),
            )
            .await?;
        let (at, announced) = patched(resp).await.map_err(|e| mismatch(e, &job.rel))?;
        if at < job.size || at != end {
            return Err(Error::Http {
                status: 503,
                message: format!("the server stored {at} of {} bytes", job.size),
            });
        }
        self.emit(&Event::Progress {
            path: job.rel.clone(),
            done: at,
            size: job.size,
        });
        Ok(announced)
    }
}

/// Files up to this size go in one request (read whole, hashed, then sent with their
/// creation): most of a tree of small files costs one round trip per file.
const SMALL: u64 = 1 << 20;
/// The last bytes of a larger file go in a PATCH of their own, with the whole file's
/// digest, known by then.
const TAIL: u64 = 64 << 10;
/// Bytes per read when sending.
const CHUNK: u64 = 1 << 20;
const OFFSET_OCTET_STREAM: &str = "application/offset+octet-stream";

/// `sha-256=:<base64>:` (RFC 9530).
fn repr_digest(d: &[u8; 32]) -> String {
    format!("sha-256=:{}:", STANDARD.encode(d))
}

/// A 460 (the server's digest check failed: it kept nothing) is a digest mismatch,
/// which a new attempt may cure.
/// `Upload-Metadata` naming `dest` (and its digest, when known).
fn metadata(dest: &str, digest: Option<&[u8; 32]>) -> String {
    let mut meta = format!(
        "dest {},filename {}",
        STANDARD.encode(dest),
        STANDARD.encode(dest.rsplit('/').next().unwrap_or(dest)),
    );
    if let Some(d) = digest {
        meta.push_str(",sha256 ");
        meta.push_str(&STANDARD.encode(hex(d)));
    }
    meta
}

fn mismatch(e: Error, rel: &str) -> Error {
    match e {
        Error::Http { status: 460, .. } => Error::DigestMismatch(rel.to_owned()),
        e => e,
    }
}

/// The server's digest, when it gave one, must be ours; returns ours (hex).
fn verified(rel: &str, ours: &[u8; 32], announced: Option<String>) -> Result<String> {
    let ours = hex(ours);
    match announced {
        Some(a) if a != ours => Err(Error::DigestMismatch(rel.to_owned())),
        _ => Ok(ours),
    }
}

/// `Upload-Offset` and, when present, `Repr-Digest` (hex) of a tus answer.
fn offset_and_digest(resp: &reqwest::Response) -> Result<(u64, Option<String>)> {
    let h = resp.headers();
    let offset = h
        .get("upload-offset")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| Error::Protocol("no Upload-Offset".to_owned()))?;
    let digest = h
        .get("repr-digest")
        .and_then(|v| v.to_str().ok())
        .and_then(parse_repr_digest);
    Ok((offset, digest))
}

/// A PATCH answer: the new offset and the digest, or why not.
async fn patched(resp: reqwest::Response) -> Result<(u64, Option<String>)> {
    match check(resp).await {
        // Someone else moved the offset (an earlier attempt's bytes landed): resync.
        Err(Error::Http { status: 409, .. }) => Err(Error::Http {
            status: 503,
            message: "offset moved; resynchronising".to_owned(),
        }),
        Err(e) => Err(e),
        Ok(resp) => offset_and_digest(&resp),
    }
}

/// Reads `len` bytes of `path` at `at`.
async fn read_at(path: &Path, at: u64, len: u64) -> Result<Bytes> {
    let path = path.to_owned();
    tokio::task::spawn_blocking(move || {
        let mut f = std::fs::File::open(&path).map_err(Error::io(&path))?;
        f.seek(SeekFrom::Start(at)).map_err(Error::io(&path))?;
        let mut buf = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
        f.take(len)
            .read_to_end(&mut buf)
            .map_err(Error::io(&path))?;
        if (buf.len() as u64) < len {
            return Err(Error::Io {
                path,
                source: shrank(),
            });
        }
        Ok(Bytes::from(buf))
    })
    .await
    .map_err(|e| Error::Protocol(e.to_string()))?
}

fn shrank() -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::UnexpectedEof,
        "the file shrank while being sent",
    )
}

/// Reads `from..to` of `path` in chunks, each sent to the body and to the hasher;
/// stops when either is gone. A read error goes to the body, which fails the request.
fn read_range(
    path: &Path,
    from: u64,
    to: u64,
    body: &tokio::sync::mpsc::Sender<std::io::Result<Bytes>>,
    feed: Option<&crate::digest::Feed>,
) {
    let opened = std::fs::File::open(path).and_then(|mut f| {
        f.seek(SeekFrom::Start(from))?;
        Ok(f)
    });
    let mut f = match opened {
        Ok(f) => f,
        Err(e) => {
            let _ = body.blocking_send(Err(e));
            return;
        }
    };
    let mut at = from;
    while at < to {
        let want = CHUNK.min(to - at);
        let mut buf = Vec::with_capacity(usize::try_from(want).unwrap_or(0));
        match (&mut f).take(want).read_to_end(&mut buf) {
            Ok(0) => {
                let _ = body.blocking_send(Err(shrank()));
                return;
            }
            Ok(n) => {
                at += n as u64;
                let chunk = Bytes::from(buf);
                if feed.is_some_and(|f| !f.blocking_send(chunk.clone()))
                    || body.blocking_send(Ok(chunk)).is_err()
                {
                    return;
                }
            }
            Err(e) => {
                let _ = body.blocking_send(Err(e));
                return;
            }
        }
    }
}

/// `sha-256=:<base64>:` to hex.
pub(crate) fn parse_repr_digest(v: &str) -> Option<String> {
    v.split(',').find_map(|item| {
        let b64 = item.trim().strip_prefix("sha-256=:")?.strip_suffix(':')?;
        let bytes = STANDARD.decode(b64).ok()?;
        (bytes.len() == 32).then(|| hex(&bytes))
    })
}
