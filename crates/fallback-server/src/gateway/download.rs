//! Downloads: `POST /v1/download` turns a transfer spec into a short-lived capability,
//! `GET /v1/download/{id}` serves it: one file as `GET /files` would (Range,
//! `Content-Disposition`, digests), or several paths, a folder, or `zip_required` as
//! one zip streamed as it is made (stored, ZIP64 where sizes need it, no temporary copy).
//!
//! The id is what the browser SDK loads in an iframe, so it carries no
//! `Authorization`: the id is the capability. It holds a download token made with the
//! user's own key for exactly the paths asked for, valid for minutes (never past the
//! token it was made from), so any instance with the same aspera.conf serves it and
//! none can widen it: each path is checked against that token again when it is used.

use std::collections::HashSet;
use std::io::{Read as _, Write};

use axum::extract::{Path, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, Method, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use bytes::Bytes;
use fallback_engine::{EntryKind, RelPath};
use fallback_token::Direction;
use serde::{Deserialize, Serialize};

use super::{BASE, GwError, TransferSpec, spec_path};
use crate::AppState;
use crate::auth::Identity;
use crate::error::ApiError;
use crate::store::Store;

/// How long a download id lives (never past the token it was made from).
const TTL_SECS: u64 = 300;

/// Most paths one download names.
const MAX_PATHS: usize = 10_000;

/// The zip's bytes are sent in blocks of this size.
const BLOCK: usize = 1 << 20;

/// What a download id says: the token (none when downloads need none), the paths,
/// whether to zip, the zip's name.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Capability {
    #[serde(rename = "t", default, skip_serializing_if = "Option::is_none")]
    pub(crate) token: Option<String>,
    #[serde(rename = "p")]
    pub(crate) paths: Vec<String>,
    #[serde(rename = "z", default)]
    pub(crate) zip: bool,
    #[serde(rename = "n", default, skip_serializing_if = "Option::is_none")]
    pub(crate) name: Option<String>,
}

impl Capability {
    /// The id: base64url of the JSON (the token inside binds user, paths and lifetime).
    pub(crate) fn encode(&self) -> String {
        let json = serde_json::to_vec(self).unwrap_or_default();
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json)
    }

    /// The capability an id holds; anything else is not found.
    pub(crate) fn decode(id: &str) -> Result<Self, ApiError> {
        let unknown = || ApiError::NotFound {
            reason: "download id is not one this service made".to_owned(),
        };
        if id.len() > 64 << 10 {
            return Err(unknown());
        }
        let json = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(id.trim_end_matches('='))
            .map_err(|_| unknown())?;
        serde_json::from_slice(&json).map_err(|_| unknown())
    }

    /// A capability for `spec`'s paths, made for `id` (checked: each path is theirs to
    /// download and exists).
    pub(crate) async fn issue(
        state: &AppState,
        id: &Identity,
        spec: &TransferSpec,
    ) -> Result<Self, ApiError> {
        let paths = spec_paths(spec)?;
        for p in &paths {
            id.permit(Direction::Download, p)?;
            let e = id.storage.stat(p).await?;
            if e.kind == EntryKind::File {
                id.check_restrictions(p)?;
            }
        }
        let strings: Vec<String> = paths.iter().map(ToString::to_string).collect();
        let token = match &id.claims {
            None => None,
            Some(claims) => {
                Some(crate::links::short_download_token(state, id, claims, &strings, TTL_SECS)?.0)
            }
        };
        Ok(Capability {
            token,
            paths: strings,
            zip: spec.zip_required.unwrap_or(false),
            name: spec
                .download_name
                .as_deref()
                .map(str::trim)
                .filter(|n| !n.is_empty())
                .map(str::to_owned),
        })
    }
}

/// The docroot paths a download spec names: `source_root` joined with each source.
pub(crate) fn spec_paths(spec: &TransferSpec) -> Result<Vec<RelPath>, ApiError> {
    if spec.paths.is_empty() {
        return Err(ApiError::BadRequest(
            "transfer_spec.paths names nothing to download".to_owned(),
        ));
    }
    if spec.paths.len() > MAX_PATHS {
        return Err(ApiError::BadRequest(format!(
            "a download names at most {MAX_PATHS} paths"
        )));
    }
    let root = spec.source_root()?;
    spec.paths
        .iter()
        .map(|p| {
            let source = p.source.as_deref().ok_or_else(|| {
                ApiError::BadRequest("each of transfer_spec.paths needs a source".to_owned())
            })?;
            Ok(root.join(&spec_path(source, "source")?))
        })
        .collect()
}

#[derive(Deserialize)]
struct CreateRequest {
    transfer_spec: TransferSpec,
}

/// `POST /v1/download`.
pub(crate) async fn create(
    State(state): State<AppState>,
    parts: Parts,
    body: Bytes,
) -> Result<Response, GwError> {
    super::check_origin(&state, &parts)?;
    let req: CreateRequest = super::parse_json(&body)?;
    let spec = req.transfer_spec;
    let id = state
        .identify_spec(&parts, &spec, Direction::Download)
        .await?;
    let cap = Capability::issue(&state, &id, &spec).await?;
    let encoded = cap.encode();
    tracing::info!(user = %id.user, client = %id.client, paths = cap.paths.len(), zip = cap.zip, "gateway download id made");
    let url = format!(
        "{}{BASE}/v1/download/{encoded}",
        crate::mount_prefix(&parts)
    );
    Ok(axum::Json(serde_json::json!({
        "transfer_spec_id": encoded,
        "url": url,
        "expires_in": TTL_SECS,
    }))
    .into_response())
}

/// `GET /v1/download/{id}`.
pub(crate) async fn fetch(
    State(state): State<AppState>,
    Path(cap): Path<String>,
    parts: Parts,
) -> Result<Response, GwError> {
    let cap = Capability::decode(&cap)?;
    serve(&state, &parts, cap).await.map_err(GwError)
}

/// Serves what `cap` names to the request `parts`.
pub(crate) async fn serve(
    state: &AppState,
    parts: &Parts,
    cap: Capability,
) -> Result<Response, ApiError> {
    let id = state
        .identify_token(parts, cap.token.clone(), Direction::Download)
        .await?;
    let mut paths = Vec::with_capacity(cap.paths.len());
    for p in &cap.paths {
        let rel = spec_path(p, "path")?;
        id.permit(Direction::Download, &rel)?;
        paths.push(rel);
    }
    let mut resp = if let [one] = paths.as_slice()
        && !cap.zip
        && id.storage.stat(one).await?.kind == EntryKind::File
    {
        one_file(state, parts, cap.token.as_deref(), one).await?
    } else {
        zip(state, &id, parts, &paths, cap.name.as_deref()).await?
    };
    // The URL is the capability: never cached, never sent on as a Referer.
    let h = resp.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    Ok(resp)
}

/// One file, answered exactly as `GET /files/{path}` answers it (Range, `If-Range`,
/// validators, digest, `Content-Disposition`).
async fn one_file(
    state: &AppState,
    parts: &Parts,
    token: Option<&str>,
    path: &RelPath,
) -> Result<Response, ApiError> {
    let mut uri = String::from("/files");
    for seg in path.segments() {
        uri.push('/');
        uri.extend(percent_encoding::utf8_percent_encode(
            seg,
            crate::files::SEGMENT,
        ));
    }
    let mut req = axum::http::Request::builder()
        .method(if parts.method == Method::HEAD {
            Method::HEAD
        } else {
            Method::GET
        })
        .uri(uri)
        .body(axum::body::Body::empty())
        .map_err(|e| ApiError::Internal(format!("download request: {e}")))?;
    *req.headers_mut() = parts.headers.clone();
    req.headers_mut().remove(header::AUTHORIZATION);
    if let Some(t) = token {
        let v = HeaderValue::from_str(&format!("Bearer {t}"))
            .map_err(|_| ApiError::Internal("token is not a header value".to_owned()))?;
        req.headers_mut().insert(header::AUTHORIZATION, v);
    }
    if let Some(t) = parts.extensions.get::<crate::Transport>() {
        req.extensions_mut().insert(*t);
    }
    crate::files::get_file(State(state.clone()), req).await
}

/// One member of a zip.
struct Member {
    /// Its name in the zip (`/`-separated; a folder's ends with `/`).
    name: String,
    /// The file (`None` for a folder).
    file: Option<RelPath>,
    size: u64,
    mtime: i64,
    etag: String,
}

/// The members for `paths`: each file by its name, each folder with everything
/// beneath it that the docroot's restrictions let this user have.
async fn members(
    state: &AppState,
    id: &Identity,
    paths: &[RelPath],
) -> Result<Vec<Member>, ApiError> {
    let limit = state.options().manifest_limit;
    let mut out = Vec::new();
    let mut tops = HashSet::new();
    for p in paths {
        let e = id.storage.stat(p).await?;
        let base = p.file_name().unwrap_or("");
        // Two paths with the same last name: the second gets " (2)", ...
        let mut top = base.to_owned();
        let mut n = 2;
        while !top.is_empty() && !tops.insert(top.clone()) {
            top = format!("{base} ({n})");
            n += 1;
        }
        match e.kind {
            EntryKind::File => {
                id.check_restrictions(p)?;
                out.push(Member {
                    name: top,
                    file: Some(p.clone()),
                    size: e.size,
                    mtime: unix(e.modified),
                    etag: e.etag.clone(),
                });
            }
            EntryKind::Dir => {
                let prefix = if top.is_empty() {
                    String::new()
                } else {
                    out.push(Member {
                        name: format!("{top}/"),
                        file: None,
                        size: 0,
                        mtime: unix(e.modified),
                        etag: String::new(),
                    });
                    format!("{top}/")
                };
                let listed = id.storage.list(p, limit + 1, true).await?;
                if listed.len() > limit {
                    return Err(ApiError::TooLarge(format!(
                        "{p} holds more than {limit} entries: download it in parts"
                    )));
                }
                for m in listed {
                    let rel = RelPath::parse(&m.path).map_err(|e| {
                        ApiError::Internal(format!("listed name {:?}: {e}", m.path))
                    })?;
                    let full = p.join(&rel);
                    match m.kind {
                        EntryKind::Dir => out.push(Member {
                            name: format!("{prefix}{}/", m.path),
                            file: None,
                            size: 0,
                            mtime: m.mtime,
                            etag: String::new(),
                        }),
                        EntryKind::File if id.restriction_allows(&full) => {
                            // A bucket's listing gives no ETag: read the object's own.
                            let etag = match &id.storage {
                                Store::S3(_) => id.storage.stat(&full).await?.etag,
                                Store::Local(_) => String::new(),
                            };
                            out.push(Member {
                                name: format!("{prefix}{}", m.path),
                                file: Some(full),
                                size: m.size,
                                mtime: m.mtime,
                                etag,
                            });
                        }
                        EntryKind::File => {}
                    }
                }
            }
        }
    }
    Ok(out)
}

/// `paths` as one zip, streamed.
async fn zip(
    state: &AppState,
    id: &Identity,
    parts: &Parts,
    paths: &[RelPath],
    name: Option<&str>,
) -> Result<Response, ApiError> {
    let members = members(state, id, paths).await?;
    let files = members.iter().filter(|m| m.file.is_some()).count();
    let total: u64 = members.iter().map(|m| m.size).sum();
    let zip_name = match (name, paths) {
        (Some(n), _) => format!("{n}.zip"),
        (None, [one]) if !one.is_root() => {
            format!("{}.zip", one.file_name().unwrap_or("download"))
        }
        _ => "download.zip".to_owned(),
    };
    let mut resp = Response::new(axum::body::Body::empty());
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/zip"),
    );
    h.insert(
        header::CONTENT_DISPOSITION,
        crate::files::content_disposition(&zip_name),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if parts.method == Method::HEAD {
        return Ok(resp);
    }
    let log_path = match paths {
        [one] => one.clone(),
        _ => RelPath::root(),
    };
    tracing::info!(user = %id.user, client = %id.client, direction = "download", path = %log_path, paths = paths.len(), files, bytes = total, zip = %zip_name, "transfer start");
    let log = crate::files::DownloadLog::start(id, &log_path);
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(4);
    let store = id.storage.clone();
    let handle = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || {
        let mut out = Channel {
            tx: tx.clone(),
            buf: Vec::with_capacity(BLOCK),
            sent: 0,
        };
        let written = write_zip(&handle, &store, &members, &mut out);
        let result = written.and_then(|()| out.flush());
        match result {
            Ok(()) => log.end(out.sent, "ok"),
            Err(e) => {
                let outcome = if tx.is_closed() {
                    "client-gone"
                } else {
                    "read-error"
                };
                tracing::warn!(reason = %e, "zip download stopped");
                log.end(out.sent, outcome);
                // The body ends in an error, so the client sees a cut, never a short zip.
                let _ = tx.blocking_send(Err(e));
            }
        }
    });
    *resp.body_mut() =
        axum::body::Body::from_stream(futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx)));
    Ok(resp)
}

/// Where the zip's bytes go: blocks of [`BLOCK`] into the response.
struct Channel {
    tx: tokio::sync::mpsc::Sender<Result<Bytes, std::io::Error>>,
    buf: Vec<u8>,
    sent: u64,
}

impl Write for Channel {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= BLOCK {
            self.flush()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let block = std::mem::replace(&mut self.buf, Vec::with_capacity(BLOCK));
        self.sent += block.len() as u64;
        self.tx
            .blocking_send(Ok(Bytes::from(block)))
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the client left"))
    }
}

/// The zip time of Unix seconds `t` (UTC; zip times have no zone), or the format's
/// earliest for times it cannot hold.
fn zip_time(t: i64) -> zip::DateTime {
    let dt = jiff::Timestamp::from_second(t)
        .ok()
        .map(|ts| jiff::tz::TimeZone::UTC.to_datetime(ts));
    dt.and_then(|z| {
        zip::DateTime::from_date_and_time(
            u16::try_from(z.year()).ok()?,
            u8::try_from(z.month()).ok()?,
            u8::try_from(z.day()).ok()?,
            u8::try_from(z.hour()).ok()?,
            u8::try_from(z.minute()).ok()?,
            u8::try_from(z.second()).ok()?,
        )
        .ok()
    })
    .unwrap_or_default()
}

/// Writes the zip of `members` into `out`, reading each file as it goes.
fn write_zip(
    handle: &tokio::runtime::Handle,
    store: &Store,
    members: &[Member],
    out: &mut Channel,
) -> std::io::Result<()> {
    let mut zip = zip::ZipWriter::new_stream(&mut *out);
    for m in members {
        let opts = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Stored)
            .last_modified_time(zip_time(m.mtime))
            .large_file(m.size >= u64::from(u32::MAX));
        let Some(path) = &m.file else {
            zip.add_directory(m.name.as_str(), opts.unix_permissions(0o755))
                .map_err(std::io::Error::other)?;
            continue;
        };
        zip.start_file(m.name.as_str(), opts.unix_permissions(0o644))
            .map_err(std::io::Error::other)?;
        let copied = copy_member(handle, store, path, m, &mut zip)?;
        if copied != m.size {
            return Err(std::io::Error::other(format!(
                "{path} changed while being zipped ({copied} bytes, {} listed)",
                m.size
            )));
        }
    }
    zip.finish().map_err(std::io::Error::other)?;
    Ok(())
}

/// Copies the file `path` (listed as `m`) into the zip; how many bytes.
fn copy_member(
    handle: &tokio::runtime::Handle,
    store: &Store,
    path: &RelPath,
    m: &Member,
    zip: &mut impl Write,
) -> std::io::Result<u64> {
    let mut copied: u64 = 0;
    match store {
        Store::Local(s) => {
            let (mut f, _) = s
                .open_read(path)
                .map_err(|e| std::io::Error::other(format!("{path}: {e}")))?;
            let mut buf = vec![0u8; BLOCK];
            // Never more than was listed: a file that grew is refused, not cut.
            loop {
                let n = f.read(&mut buf)?;
                if n == 0 {
                    break;
                }
                copied += n as u64;
                if copied > m.size {
                    break;
                }
                zip.write_all(&buf[..n])?;
            }
        }
        Store::S3(b) => {
            use futures_util::StreamExt as _;
            if m.size == 0 {
                return Ok(0);
            }
            let etag = (!m.etag.is_empty()).then_some(m.etag.as_str());
            let mut stream = handle
                .block_on(b.read(path, 0..m.size, etag))
                .map_err(|e| std::io::Error::other(format!("{path}: {e}")))?;
            while let Some(chunk) = handle.block_on(stream.next()) {
                let chunk = chunk.map_err(|e| std::io::Error::other(format!("{path}: {e}")))?;
                copied += chunk.len() as u64;
                if copied > m.size {
                    break;
                }
                zip.write_all(&chunk)?;
            }
        }
    }
    Ok(copied)
}

/// Unix seconds of `t` (0 before 1970).
fn unix(t: std::time::SystemTime) -> i64 {
    t.duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}
