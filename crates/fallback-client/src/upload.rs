//! Uploads: files and trees through tus, resumable across retries and restarts.

use std::io::Read as _;
use std::path::{Path, PathBuf};

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use sha2::{Digest as _, Sha256};
use tokio::io::{AsyncReadExt as _, AsyncSeekExt as _};

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

fn sha256_of(path: &Path) -> Result<[u8; 32]> {
    let mut f = std::fs::File::open(path).map_err(Error::io(path))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(Error::io(path))?;
        if n == 0 {
            return Ok(h.finalize().into());
        }
        h.update(&buf[..n]);
    }
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
        let meta = std::fs::metadata(&job.local).map_err(Error::io(&job.local))?;
        let dest = self.remote_dest(&job.rel);
        let state_dir = self
            .opts
            .state_dir
            .clone()
            .unwrap_or_else(state::default_state_dir);
        let state_file = state::upload_state_path(&state_dir, &self.base, &dest, &job.local, &meta);
        let mut known: Option<UploadState> = state::read(&state_file);
        let mut first_offset: Option<u64> = None;
        let mut attempt = 1;
        let (st, announced) = loop {
            let r = self
                .upload_attempt(job, &dest, &state_file, &mut known, &mut first_offset)
                .await;
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
        if let Some(announced) = announced
            && announced != st.sha256
        {
            return Err(Error::DigestMismatch(job.rel.clone()));
        }
        state::remove(&state_file);
        let transferred = job.size - first_offset.unwrap_or(0).min(job.size);
        self.emit(&Event::FileDone {
            path: job.rel.clone(),
            size: job.size,
            transferred,
            sha256: st.sha256.clone(),
        });
        Ok(transferred)
    }

    /// One attempt: create the upload if there is none yet (hashing the file first, so
    /// the server checks the whole file before it becomes visible), ask for its offset,
    /// send the rest.
    async fn upload_attempt(
        &self,
        job: &Job,
        dest: &str,
        state_file: &Path,
        known: &mut Option<UploadState>,
        first_offset: &mut Option<u64>,
    ) -> Result<(UploadState, Option<String>)> {
        let st = if let Some(st) = known.clone() {
            st
        } else {
            let path = job.local.clone();
            let digest = tokio::task::spawn_blocking(move || sha256_of(&path))
                .await
                .map_err(|e| Error::Protocol(e.to_string()))??;
            let url = self.create(dest, job.size, &digest).await?;
            let st = UploadState {
                upload_url: url,
                sha256: hex(&digest),
            };
            if job.size == 0 {
                // An empty file is complete at creation.
                first_offset.get_or_insert(0);
                return Ok((st, None));
            }
            state::write(state_file, &st)?;
            *known = Some(st.clone());
            st
        };
        let offset = match self.offset(&st.upload_url).await {
            Ok(o) => o,
            Err(Error::Http {
                status: 404 | 410, ..
            }) => {
                // Expired or removed on the server: start over.
                state::remove(state_file);
                *known = None;
                return Err(Error::Http {
                    status: 503,
                    message: "the upload is gone on the server; starting over".to_owned(),
                });
            }
            Err(e) => return Err(e),
        };
        first_offset.get_or_insert(offset);
        self.emit(&Event::FileStart {
            path: job.rel.clone(),
            size: job.size,
            resumed_from: offset,
        });
        let done = if offset < job.size {
            self.patch(job, &st.upload_url, offset).await?
        } else {
            None
        };
        Ok((st, done))
    }

    async fn create(&self, dest: &str, size: u64, digest: &[u8; 32]) -> Result<String> {
        let meta = format!(
            "dest {},filename {},sha256 {}",
            STANDARD.encode(dest),
            STANDARD.encode(dest.rsplit('/').next().unwrap_or(dest)),
            STANDARD.encode(hex(digest))
        );
        let resp = self
            .send(
                self.http
                    .post(format!("{}/uploads", self.base))
                    .header("Tus-Resumable", "1.0.0")
                    .header("Upload-Length", size)
                    .header("Upload-Metadata", meta),
            )
            .await?;
        let resp = check(resp).await?;
        let loc = resp
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| Error::Protocol("no Location in the creation answer".to_owned()))?;
        // Location is a path on the same origin.
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

    async fn offset(&self, upload_url: &str) -> Result<u64> {
        let resp = self
            .send(self.http.head(upload_url).header("Tus-Resumable", "1.0.0"))
            .await?;
        let resp = check(resp).await?;
        resp.headers()
            .get("upload-offset")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| Error::Protocol("no Upload-Offset".to_owned()))
    }

    /// Sends the file from `offset` to the end in one PATCH; returns the server's
    /// digest (hex) when this completed the upload.
    async fn patch(&self, job: &Job, upload_url: &str, offset: u64) -> Result<Option<String>> {
        let mut file = tokio::fs::File::open(&job.local)
            .await
            .map_err(Error::io(&job.local))?;
        file.seek(std::io::SeekFrom::Start(offset))
            .await
            .map_err(Error::io(&job.local))?;
        let len = job.size - offset;
        let events = self.events.clone();
        let rel = job.rel.clone();
        let size = job.size;
        let pacer = Arc::new(crate::Pacer::new(self.rate_limit()));
        let stream = futures_util::stream::unfold(
            (file, offset, vec![0u8; 1 << 20]),
            move |(mut f, done, mut buf)| {
                let events = events.clone();
                let rel = rel.clone();
                let pacer = pacer.clone();
                async move {
                    if done >= size {
                        return None;
                    }
                    match f.read(&mut buf).await {
                        Ok(0) => Some((
                            Err(std::io::Error::new(
                                std::io::ErrorKind::UnexpectedEof,
                                "the file shrank while being sent",
                            )),
                            (f, size, buf),
                        )),
                        Ok(n) => {
                            let chunk = Bytes::copy_from_slice(&buf[..n]);
                            let done = done + n as u64;
                            pacer.pace(done - offset).await;
                            events(&Event::Progress {
                                path: rel.clone(),
                                done,
                                size,
                            });
                            Some((Ok(chunk), (f, done, buf)))
                        }
                        Err(e) => Some((Err(e), (f, size, buf))),
                    }
                }
            },
        );
        let resp = self
            .send(
                self.http
                    .patch(upload_url)
                    .header("Tus-Resumable", "1.0.0")
                    .header("Content-Type", "application/offset+octet-stream")
                    .header("Upload-Offset", offset)
                    .header("Content-Length", len)
                    .body(reqwest::Body::wrap_stream(stream)),
            )
            .await?;
        let resp = match check(resp).await {
            // Someone else moved the offset (an earlier attempt's bytes landed): resync.
            Err(Error::Http { status: 409, .. }) => {
                return Err(Error::Http {
                    status: 503,
                    message: "offset moved; resynchronising".to_owned(),
                });
            }
            other => other?,
        };
        let new_offset: u64 = resp
            .headers()
            .get("upload-offset")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| Error::Protocol("no Upload-Offset".to_owned()))?;
        if new_offset < job.size {
            return Err(Error::Http {
                status: 503,
                message: format!("the server stored {new_offset} of {} bytes", job.size),
            });
        }
        Ok(resp
            .headers()
            .get("repr-digest")
            .and_then(|v| v.to_str().ok())
            .and_then(parse_repr_digest))
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
