//! tus 1.0.0 at `/uploads`: core, creation, creation-with-upload, checksum (sha1, md5,
//! sha256),
//! termination, expiration.

use std::time::Instant;

use axum::extract::{Path, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use fallback_engine::{CHECKSUM_ALGORITHMS, ChunkChecksum};
use fallback_engine::{Concat, NewUpload, RelPath, UploadId, UploadInfo};
use fallback_token::Direction;

use crate::auth::Identity;
use crate::body::log_end;
use crate::body::{Start, pump};
use crate::error::ApiError;
use crate::{AppState, split_base};

pub(crate) const EXTENSIONS: &str =
    "creation,creation-with-upload,checksum,termination,expiration,concatenation";
const OFFSET_OCTET_STREAM: &str = "application/offset+octet-stream";

fn tus_headers(h: &mut HeaderMap) {
    h.insert("tus-resumable", HeaderValue::from_static("1.0.0"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
}

fn with_tus(mut resp: Response) -> Response {
    tus_headers(resp.headers_mut());
    resp
}

fn require_tus(h: &HeaderMap) -> Result<(), ApiError> {
    match h.get("tus-resumable").and_then(|v| v.to_str().ok()) {
        Some("1.0.0") => Ok(()),
        _ => Err(ApiError::TusVersion),
    }
}

fn tus_error(e: ApiError) -> Response {
    let mut resp = e.into_response();
    tus_headers(resp.headers_mut());
    resp.headers_mut()
        .insert("tus-version", HeaderValue::from_static("1.0.0"));
    resp
}

/// Parses `Upload-Metadata` (see [`fallback_http::upload_metadata`]).
fn metadata(h: &HeaderMap) -> Result<Vec<(String, String)>, ApiError> {
    let Some(v) = h.get("upload-metadata") else {
        return Ok(Vec::new());
    };
    let v = v
        .to_str()
        .map_err(|_| ApiError::BadRequest("Upload-Metadata is not ASCII".to_owned()))?;
    fallback_http::upload_metadata(v).map_err(|e| ApiError::BadRequest(e.to_string()))
}

/// `Upload-Checksum: <sha1|md5|sha256> <base64>`, or RFC 9530 `Content-Digest` with
/// `sha-256` (the digest of this request's bytes, which is what a PATCH's content is).
/// Both at once: refused, as the server checks one.
fn chunk_checksum(h: &HeaderMap) -> Result<Option<ChunkChecksum>, ApiError> {
    crate::wire::identity_body(h)?;
    let content = crate::wire::sha256_field(h, "content-digest")?;
    let Some(v) = h.get("upload-checksum") else {
        return Ok(content.map(ChunkChecksum::Sha256));
    };
    if content.is_some() {
        return Err(ApiError::BadRequest(
            "send Upload-Checksum or Content-Digest, not both".to_owned(),
        ));
    }
    let parsed = fallback_http::upload_checksum(v.to_str().unwrap_or_default())
        .map_err(|e| ApiError::BadRequest(e.to_string()))?;
    Ok(Some(match parsed {
        fallback_http::Checksum::Sha1(d) => ChunkChecksum::Sha1(d),
        fallback_http::Checksum::Md5(d) => ChunkChecksum::Md5(d),
        fallback_http::Checksum::Sha256(d) => ChunkChecksum::Sha256(d),
    }))
}

/// The expected SHA-256 of the whole file, from metadata `sha256` (hex or base64) or
/// from the creation request's RFC 9530 `Repr-Digest` (which describes the whole
/// upload); both given and different: refused.
fn expected_digest(meta: &[(String, String)], h: &HeaderMap) -> Result<Option<[u8; 32]>, ApiError> {
    let repr = crate::wire::sha256_field(h, "repr-digest")?;
    let Some((_, v)) = meta.iter().find(|(k, _)| k == "sha256") else {
        return Ok(repr);
    };
    let m = fallback_http::sha256_digest(v)
        .map_err(|e| ApiError::BadRequest(format!("metadata {e}")))?;
    if repr.is_some_and(|r| r != m) {
        return Err(ApiError::BadRequest(
            "Repr-Digest and metadata sha256 differ".to_owned(),
        ));
    }
    Ok(Some(m))
}

/// What `Upload-Concat` asks for.
#[derive(Debug, PartialEq, Eq)]
enum ConcatRequest {
    None,
    Partial,
    Final(Vec<UploadId>),
}

/// Most partial uploads one final may name.
const MAX_PARTS: usize = 1000;

/// Parses `Upload-Concat: partial` or `final;<url> <url> ...` (absolute URLs or paths,
/// each ending in `/uploads/<id>`).
fn concat_request(h: &HeaderMap) -> Result<ConcatRequest, ApiError> {
    let Some(v) = h.get("upload-concat") else {
        return Ok(ConcatRequest::None);
    };
    let bad = |m: &str| ApiError::BadRequest(format!("Upload-Concat: {m}"));
    let v = v.to_str().map_err(|_| bad("not ASCII"))?.trim();
    if v == "partial" {
        return Ok(ConcatRequest::Partial);
    }
    let Some(urls) = v.strip_prefix("final;") else {
        return Err(bad(
            "write `partial` or `final;<upload URL> <upload URL> ...`",
        ));
    };
    let mut ids = Vec::new();
    for url in urls.split_ascii_whitespace() {
        let path = url.split(['?', '#']).next().unwrap_or_default();
        let id = path
            .rsplit_once("/uploads/")
            .and_then(|(_, id)| UploadId::parse(id))
            .ok_or_else(|| bad(&format!("{url:?} is not an upload URL of this server")))?;
        ids.push(id);
    }
    if ids.is_empty() || ids.len() > MAX_PARTS {
        return Err(bad(&format!(
            "a final upload names 1 to {MAX_PARTS} partial uploads"
        )));
    }
    Ok(ConcatRequest::Final(ids))
}

fn expires(info: &UploadInfo) -> Option<HeaderValue> {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(info.expires_at);
    HeaderValue::from_str(&crate::wire::http_date(t)).ok()
}

pub(crate) async fn options(State(state): State<AppState>) -> Response {
    let mut resp = StatusCode::NO_CONTENT.into_response();
    let h = resp.headers_mut();
    tus_headers(h);
    h.insert(
        "tus-max-size",
        HeaderValue::from(state.options().max_upload_size),
    );
    h.insert("tus-version", HeaderValue::from_static("1.0.0"));
    h.insert("tus-extension", HeaderValue::from_static(EXTENSIONS));
    h.insert(
        "tus-checksum-algorithm",
        HeaderValue::from_static(CHECKSUM_ALGORITHMS),
    );
    resp
}

/// The URL path of upload `id`, under the base and mount point the request came by.
fn location(parts: &Parts, id: &UploadId) -> String {
    let (base, _) = split_base(parts.uri.path());
    format!("{}{base}/uploads/{id}", crate::mount_prefix(parts))
}

/// The destination of a new upload: metadata `dest` (docroot-relative; it must lie under
/// the token's directory), else the token's directory joined with metadata `path` (or
/// `filename`).
fn destination(id: &Identity, meta: &[(String, String)]) -> Result<RelPath, ApiError> {
    let root = id.upload_root()?;
    if let Some((_, dest)) = meta.iter().find(|(k, _)| k == "dest") {
        let dest = RelPath::parse(dest)
            .map_err(|e| ApiError::BadRequest(format!("metadata dest: {e}")))?;
        if dest.is_root() {
            return Err(ApiError::BadRequest(
                "metadata dest names no file".to_owned(),
            ));
        }
        return Ok(dest);
    }
    let rel = meta
        .iter()
        .find(|(k, _)| k == "path")
        .or_else(|| meta.iter().find(|(k, _)| k == "filename"))
        .map(|(_, v)| v.as_str())
        .ok_or_else(|| {
            ApiError::BadRequest(
                "Upload-Metadata needs `filename` or `path` (the destination, relative to the token's directory)"
                    .to_owned(),
            )
        })?;
    let rel =
        RelPath::parse(rel).map_err(|e| ApiError::BadRequest(format!("metadata path: {e}")))?;
    if rel.is_root() {
        return Err(ApiError::BadRequest(
            "metadata path names no file".to_owned(),
        ));
    }
    Ok(root.join(&rel))
}

/// Receives a creation's body into its upload; when it started, and how it ended.
async fn receive(
    state: &AppState,
    id: &Identity,
    start: Start,
    body: axum::body::Body,
) -> (Instant, Result<fallback_engine::AppendOutcome, ApiError>) {
    let started = Instant::now();
    let flow = crate::body::Flow::new(state.options(), id.rate);
    let outcome = pump(id.storage.clone(), start, body, flow, false).await;
    (started, outcome)
}

/// A creation that carries the upload's first bytes (tus creation-with-upload).
fn has_body(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes() == OFFSET_OCTET_STREAM.as_bytes())
}

pub(crate) async fn create(State(state): State<AppState>, req: Request) -> Response {
    create_inner(state, req).await.unwrap_or_else(tus_error)
}

async fn create_inner(state: AppState, req: Request) -> Result<Response, ApiError> {
    let (parts, body) = req.into_parts();
    require_tus(&parts.headers)?;
    let id = state.identify(&parts, Direction::Upload).await?;
    let concat = concat_request(&parts.headers)?;
    if let ConcatRequest::Final(ids) = concat {
        return create_final(&state, &parts, &id, ids).await;
    }
    let length = match parts.headers.get("upload-length") {
        Some(v) => crate::wire::header_u64(v).ok_or_else(|| {
            ApiError::BadRequest("Upload-Length must be a non-negative integer".to_owned())
        })?,
        None if parts.headers.contains_key("upload-defer-length") => {
            return Err(ApiError::BadRequest(
                "Upload-Defer-Length is not supported: give Upload-Length".to_owned(),
            ));
        }
        None => return Err(ApiError::BadRequest("Upload-Length is required".to_owned())),
    };
    let max = state.options().max_upload_size;
    if length > max {
        return Err(ApiError::TooLarge(format!(
            "uploads are limited to {max} bytes"
        )));
    }
    let meta = metadata(&parts.headers)?;
    let storage = id.storage.clone();
    let with_body = has_body(&parts.headers) && length > 0;
    let chunk = chunk_checksum(&parts.headers)?;
    let valid_until = id.deadline(state.options());
    // With the upload's first bytes (creation-with-upload), the upload is created by the
    // task that writes them, and made durable by the first answer about it
    // (publication, or the offset), not on its own.
    let (info, dest, outcome) = if concat == ConcatRequest::Partial {
        // Bytes for a later final upload: no destination yet (it is the final's), but
        // only a token that may upload somewhere makes one.
        id.upload_root()?;
        let info = storage
            .create_partial(&id.user, length, meta, state.options().upload_ttl)
            .await?;
        let outcome = if with_body {
            let start = Start::Append {
                id: info.id.clone(),
                dest: RelPath::root(),
                user: id.user.clone(),
                offset: 0,
                chunk,
                whole: None,
                valid_until,
            };
            Some(receive(&state, &id, start, body).await)
        } else {
            None
        };
        (info, RelPath::root(), outcome)
    } else {
        let dest = destination(&id, &meta)?;
        id.permit(Direction::Upload, &dest)?;
        id.check_restrictions(&dest)?;
        let expected = expected_digest(&meta, &parts.headers)?;
        let new = NewUpload {
            user: id.user.clone(),
            dest: dest.clone(),
            length: Some(length),
            metadata: meta,
            expected_sha256: expected,
            no_replace: crate::precond::upload(&id, &parts.headers, &dest).await?,
            modes: id.modes(),
        };
        if with_body {
            let created = std::sync::Arc::new(std::sync::OnceLock::new());
            let start = Start::Create {
                new,
                chunk,
                valid_until,
                created: std::sync::Arc::clone(&created),
            };
            let outcome = receive(&state, &id, start, body).await;
            let Some(info) = created.get().cloned() else {
                // Not created: nothing to report but why.
                return Err(outcome
                    .1
                    .err()
                    .unwrap_or_else(|| ApiError::Internal("upload not created".to_owned())));
            };
            (info, dest, Some(outcome))
        } else {
            let info = storage
                .create_upload(new, state.options().upload_ttl)
                .await?;
            (info, dest, None)
        }
    };
    tracing::info!(user = %id.user, client = %id.client, direction = "upload", path = %dest, bytes = length, upload = %info.id, partial = (info.concat == Concat::Partial), "upload created");
    let loc = location(&parts, &info.id);
    let mut offset = 0;
    if let Some((started, outcome)) = outcome {
        log_end(&id, "upload", &dest, started, &outcome);
        match outcome {
            Ok(o) => offset = o.offset,
            // The upload exists: report it with what was kept, so the client resumes.
            Err(ApiError::Timeout | ApiError::BadRequest(_)) => {
                offset = id.storage.settled_offset(&info.id).await?;
            }
            Err(e) => {
                // Refused (a failed checksum, a storage error...) and never answered
                // with its URL: nobody can resume it, so it does not wait for its
                // expiry counting against the user's uploads in progress.
                let _ = id.storage.terminate(&info.id, &id.user).await;
                return Err(e);
            }
        }
    } else if length == 0 {
        // An empty file completes at creation.
        id.storage.complete_empty(&info.id, &id.user).await?;
    }
    let mut resp = StatusCode::CREATED.into_response();
    let h = resp.headers_mut();
    tus_headers(h);
    if let Ok(v) = HeaderValue::from_str(&loc) {
        h.insert(header::LOCATION, v);
    }
    h.insert("upload-offset", HeaderValue::from(offset));
    if let Some(v) = expires(&info) {
        h.insert("upload-expires", v);
    }
    Ok(resp)
}

/// `POST /uploads` with `Upload-Concat: final;...`: assembles the named partial uploads
/// of this user into the destination named by the metadata, verified and published like
/// any upload, before answering.
async fn create_final(
    state: &AppState,
    parts: &Parts,
    id: &Identity,
    ids: Vec<UploadId>,
) -> Result<Response, ApiError> {
    if parts.headers.contains_key("upload-length") {
        return Err(ApiError::BadRequest(
            "a final upload has no Upload-Length: its length is the partial uploads' sum"
                .to_owned(),
        ));
    }
    let meta = metadata(&parts.headers)?;
    let dest = destination(id, &meta)?;
    id.permit(Direction::Upload, &dest)?;
    id.check_restrictions(&dest)?;
    let new = NewUpload {
        user: id.user.clone(),
        dest: dest.clone(),
        // The size limit holds for the whole file too.
        length: Some(state.options().max_upload_size),
        expected_sha256: expected_digest(&meta, &parts.headers)?,
        metadata: meta,
        no_replace: crate::precond::upload(id, &parts.headers, &dest).await?,
        modes: id.modes(),
    };
    let started = Instant::now();
    let n = ids.len();
    let (info, done) = id
        .storage
        .concatenate(ids, new, state.options().upload_ttl)
        .await?;
    tracing::info!(
        user = %id.user,
        client = %id.client,
        direction = "upload",
        path = %done.path,
        bytes = done.size,
        upload = %info.id,
        partials = n,
        duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        "upload complete"
    );
    let mut resp = StatusCode::CREATED.into_response();
    let h = resp.headers_mut();
    tus_headers(h);
    if let Ok(v) = HeaderValue::from_str(&location(parts, &info.id)) {
        h.insert(header::LOCATION, v);
    }
    h.insert("upload-offset", HeaderValue::from(done.size));
    h.insert("upload-length", HeaderValue::from(done.size));
    crate::wire::insert_digest(h, &done.sha256);
    if let Some(v) = expires(&info) {
        h.insert("upload-expires", v);
    }
    Ok(resp)
}

/// Identifies the requester and loads their upload `id`, checking ownership and that
/// the token still covers its destination.
async fn owned_upload(
    state: &AppState,
    parts: &Parts,
    id: &str,
    settle: bool,
) -> Result<(Identity, UploadInfo), ApiError> {
    require_tus(&parts.headers)?;
    let who = state.identify(parts, Direction::Upload).await?;
    let uid = UploadId::parse(id).ok_or(ApiError::NotFound {
        reason: "malformed upload id".to_owned(),
    })?;
    // HEAD waits for a writer still draining a broken body, so the offset it reports
    // is final (bounded by the activity timeout, 10 s at most).
    let wait = if settle {
        state
            .options()
            .activity_timeout
            .unwrap_or(std::time::Duration::from_secs(10))
            .min(std::time::Duration::from_secs(10))
    } else {
        std::time::Duration::ZERO
    };
    let info = who.storage.upload_settled(&uid, wait).await?;
    if info.user != who.user {
        return Err(ApiError::NotFound {
            reason: format!("upload {} belongs to another user", info.id),
        });
    }
    if info.concat == Concat::Partial {
        who.upload_root()?;
    } else {
        who.permit(Direction::Upload, &info.dest)?;
    }
    Ok((who, info))
}

pub(crate) async fn head(
    State(state): State<AppState>,
    Path(id): Path<String>,
    req: Request,
) -> Response {
    let (parts, _) = req.into_parts();
    match owned_upload(&state, &parts, &id, true).await {
        Ok((_, info)) => {
            let mut resp = StatusCode::OK.into_response();
            let h = resp.headers_mut();
            tus_headers(h);
            h.insert("upload-offset", HeaderValue::from(info.offset));
            if let Some(l) = info.length {
                h.insert("upload-length", HeaderValue::from(l));
            }
            if let Some(v) = expires(&info) {
                h.insert("upload-expires", v);
            }
            if let Some(d) = &info.sha256 {
                crate::wire::insert_digest(h, d);
            }
            match info.concat {
                Concat::Partial => {
                    h.insert("upload-concat", HeaderValue::from_static("partial"));
                }
                Concat::Final => {
                    let urls: Vec<String> =
                        info.parts.iter().map(|p| location(&parts, p)).collect();
                    if let Ok(v) = HeaderValue::from_str(&format!("final;{}", urls.join(" "))) {
                        h.insert("upload-concat", v);
                    }
                }
                Concat::None => {}
            }
            resp
        }
        Err(e) => tus_error(e),
    }
}

/// Whether `body` carries no byte: its size when known, else its frames up to the
/// first byte.
async fn body_is_empty(mut body: axum::body::Body) -> bool {
    use http_body_util::BodyExt as _;
    if let Some(n) = axum::body::HttpBody::size_hint(&body).exact() {
        return n == 0;
    }
    loop {
        match body.frame().await {
            None => return true,
            Some(Ok(f)) => {
                if f.data_ref().is_some_and(|d| !d.is_empty()) {
                    return false;
                }
            }
            Some(Err(_)) => return false,
        }
    }
}

pub(crate) async fn patch(
    State(state): State<AppState>,
    Path(id): Path<String>,
    req: Request,
) -> Response {
    let (parts, body) = req.into_parts();
    let result = async {
        let (who, info) = owned_upload(&state, &parts, &id, false).await?;
        let ct = parts.headers.get(header::CONTENT_TYPE).map(HeaderValue::as_bytes);
        if ct != Some(OFFSET_OCTET_STREAM.as_bytes()) {
            return Err(ApiError::UnsupportedMediaType(
                "Content-Type must be application/offset+octet-stream".to_owned(),
            ));
        }
        let offset = parts
            .headers
            .get("upload-offset")
            .and_then(crate::wire::header_u64)
            .ok_or_else(|| ApiError::BadRequest("Upload-Offset must be a non-negative integer".to_owned()))?;
        if info.concat == Concat::Final {
            return Err(ApiError::Forbidden {
                public: "a final upload takes no PATCH".to_owned(),
                reason: format!("PATCH of final upload {}", info.id),
            });
        }
        if offset != info.offset {
            return Err(ApiError::OffsetMismatch { actual: info.offset });
        }
        let body_len = parts.headers.get(header::CONTENT_LENGTH).and_then(crate::wire::header_u64);
        if info.done {
            // The last PATCH again (its answer was lost): it is done; say so.
            // Without a Content-Length (HTTP/2 may send none, HTTP/1.1 chunked), look
            // at the body itself: bytes sent to a finished upload are refused, never
            // acknowledged and dropped.
            let empty = match body_len {
                Some(n) => n == 0,
                None => body_is_empty(body).await,
            };
            if !empty {
                return Err(ApiError::TooLarge("the upload is finished: it takes no more bytes".to_owned()));
            }
            let mut resp = StatusCode::NO_CONTENT.into_response();
            let h = resp.headers_mut();
            h.insert("upload-offset", HeaderValue::from(info.offset));
            if let Some(d) = &info.sha256 {
                crate::wire::insert_digest(h, d);
            }
            return Ok(with_tus(resp));
        }
        if let (Some(cl), Some(len)) = (parts.headers.get(header::CONTENT_LENGTH).and_then(crate::wire::header_u64), info.length)
            && offset.saturating_add(cl) > len
        {
            return Err(ApiError::TooLarge("more data than the upload's length".to_owned()));
        }
        let started = Instant::now();
        tracing::info!(
            user = %who.user,
            client = %who.client,
            direction = "upload",
            path = %info.dest,
            upload = %info.id,
            offset,
            "transfer start"
        );
        let outcome = pump(
            who.storage.clone(),
            Start::Append {
                id: info.id.clone(),
                dest: info.dest.clone(),
                user: who.user.clone(),
                offset,
                chunk: chunk_checksum(&parts.headers)?,
                whole: crate::wire::sha256_field(&parts.headers, "repr-digest")?,
                valid_until: who.deadline(state.options()),
            },
            body,
            crate::body::Flow::new(state.options(), who.rate),
            false,
        )
        .await;
        log_end(&who, "upload", &info.dest, started, &outcome);
        let o = outcome?;
        let mut resp = StatusCode::NO_CONTENT.into_response();
        let h = resp.headers_mut();
        h.insert("upload-offset", HeaderValue::from(o.offset));
        if let Some(v) = expires(&info) {
            h.insert("upload-expires", v);
        }
        if let Some(done) = &o.completed {
            crate::wire::insert_digest(h, &done.sha256);
            tracing::info!(user = %who.user, path = %done.path, bytes = done.size, "upload complete");
        }
        Ok(with_tus(resp))
    }
    .await;
    result.unwrap_or_else(tus_error)
}

/// `POST /uploads/{id}` with `X-HTTP-Method-Override: PATCH` or `DELETE` (tus-js-client's
/// `overridePatchMethod`, for proxies that block those methods): served as that method.
pub(crate) async fn method_override(
    state: State<AppState>,
    id: Path<String>,
    mut req: Request,
) -> Response {
    let wanted = req
        .headers()
        .get("x-http-method-override")
        .map(|v| v.as_bytes().trim_ascii().to_ascii_uppercase());
    match wanted.as_deref() {
        Some(b"PATCH") => {
            *req.method_mut() = axum::http::Method::PATCH;
            patch(state, id, req).await
        }
        Some(b"DELETE") => {
            *req.method_mut() = axum::http::Method::DELETE;
            delete(state, id, req).await
        }
        _ => tus_error(ApiError::MethodNotAllowed(
            "POST to an upload needs X-HTTP-Method-Override: PATCH or DELETE".to_owned(),
        )),
    }
}

pub(crate) async fn delete(
    State(state): State<AppState>,
    Path(id): Path<String>,
    req: Request,
) -> Response {
    let (parts, _) = req.into_parts();
    let result = async {
        let (who, info) = owned_upload(&state, &parts, &id, false).await?;
        who.storage.terminate(&info.id, &who.user).await?;
        tracing::info!(user = %who.user, path = %info.dest, upload = %info.id, "upload terminated");
        Ok(with_tus(StatusCode::NO_CONTENT.into_response()))
    }
    .await;
    result.unwrap_or_else(tus_error)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn numbers_are_unsigned_and_bounded() {
        let n = |s: &str| crate::wire::header_u64(&HeaderValue::from_str(s).unwrap());
        assert_eq!(n("0"), Some(0));
        assert_eq!(n("1234"), Some(1234));
        for bad in [
            "-1",
            "+5",
            "",
            " 5",
            "5 ",
            "1e3",
            "0x10",
            "99999999999999999999",
        ] {
            assert_eq!(n(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn metadata_pairs() {
        let h = headers(&[(
            "upload-metadata",
            "filename d29ybGQ=,is_confidential,path YS9i",
        )]);
        assert_eq!(
            metadata(&h).unwrap(),
            [
                ("filename".to_owned(), "world".to_owned()),
                ("is_confidential".to_owned(), String::new()),
                ("path".to_owned(), "a/b".to_owned()),
            ]
        );
        for bad in ["filename !!!", "a YQ==,a YQ==", "k v w", "a YQ==,,a"] {
            let h = headers(&[("upload-metadata", bad)]);
            assert!(metadata(&h).is_err(), "{bad:?}");
        }
        // Space around a pair is not part of it: a key without a value.
        let h = headers(&[("upload-metadata", " x")]);
        assert_eq!(metadata(&h).unwrap(), [("x".to_owned(), String::new())]);
    }

    #[test]
    fn checksums() {
        let h = headers(&[("upload-checksum", "md5 AAAA")]);
        assert!(chunk_checksum(&h).is_err());
        let h = headers(&[("upload-checksum", "sha1 2jmj7l5rSw0yVb/vlWAYkK/YBwk=")]);
        assert!(matches!(
            chunk_checksum(&h),
            Ok(Some(ChunkChecksum::Sha1(_)))
        ));
        let h = headers(&[(
            "upload-checksum",
            "sha256 LCa0a2j/xo/5m0U8HTBBNBNCLXBkg7+g+YpeiGJm564=",
        )]);
        assert!(matches!(
            chunk_checksum(&h),
            Ok(Some(ChunkChecksum::Sha256(d))) if d[0] == 0x2c && d[31] == 0xae
        ));
    }

    proptest! {
        #[test]
        fn metadata_never_panics(v in "[ -~]{0,200}") {
            if let Ok(hv) = HeaderValue::from_str(&v) {
                let mut h = HeaderMap::new();
                h.insert("upload-metadata", hv.clone());
                let _ = metadata(&h);
                h.insert("upload-checksum", hv.clone());
                let _ = chunk_checksum(&h);
                let _ = crate::wire::header_u64(&hv);
            }
        }
    }
}
