//! API v3, as `aspera-sdk-js` speaks it: plain HTTP, no WebSocket.
//!
//! - `POST /v3/upload`: a multipart form, the field `x-aspera-spec` (the transfer spec
//!   as JSON) first, then per file an optional `Content-Length` field (its size) and a
//!   `file` part, in the order of the spec's `paths` (the part's own file name is used
//!   when the spec has fewer paths). Each file streams into staging as it arrives and
//!   is published when its part ends; nothing is buffered whole.
//! - `GET /v3/download`: the spec in `X-Aspera-Spec` (base64 of its JSON); one file, or
//!   a zip like `/v1/download/{id}`.
//! - `POST /v3/presign`: `{transfer_spec, ...}` → `{signed_url}`, a short-lived URL for
//!   the browser's own download manager (the `/v1/download/{id}` capability).
//!
//! The token is the `Authorization: Bearer` header, or the spec's `token`.

use axum::extract::{Multipart, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use bytes::Bytes;
use fallback_engine::RelPath;
use fallback_token::Direction;
use serde::Deserialize;

use super::download::{Capability, serve};
use super::{BASE, GwError, Sink, TransferSpec, spec_path};
use crate::AppState;
use crate::auth::Identity;
use crate::error::ApiError;

/// The largest text field of an upload form (the spec, a size).
const MAX_FIELD: usize = 1 << 20;

/// The spec with the request's `Authorization` token in place of its own when given.
fn with_header_token(parts: &Parts, mut spec: TransferSpec) -> TransferSpec {
    let bearer = parts
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty());
    if let Some(b) = bearer {
        spec.token = Some(b.to_owned());
    }
    spec
}

/// A random id for `X-Request-Id`.
fn request_id() -> HeaderValue {
    let mut b = [0u8; 12];
    if getrandom::fill(&mut b).is_err() {
        return HeaderValue::from_static("-");
    }
    HeaderValue::from_str(&hex::encode(b)).unwrap_or_else(|_| HeaderValue::from_static("-"))
}

/// Reads a text field whole, bounded.
async fn text_field(field: &mut axum::extract::multipart::Field<'_>) -> Result<String, ApiError> {
    let mut out = Vec::new();
    while let Some(chunk) = field.chunk().await.map_err(|e| multipart_error(&e))? {
        out.extend_from_slice(&chunk);
        if out.len() > MAX_FIELD {
            return Err(ApiError::TooLarge(format!(
                "a form field is at most {MAX_FIELD} bytes"
            )));
        }
    }
    String::from_utf8(out).map_err(|_| ApiError::BadRequest("a form field is not UTF-8".to_owned()))
}

fn multipart_error(e: &axum::extract::multipart::MultipartError) -> ApiError {
    ApiError::BadRequest(format!("the multipart form broke off or is malformed: {e}"))
}

/// Most bytes of a refused upload's form read and thrown away, so that a client still
/// sending reads the refusal instead of a reset.
const DRAIN_LIMIT: u64 = 64 << 20;

/// `POST /v3/upload`.
pub(crate) async fn upload(
    State(state): State<AppState>,
    parts: Parts,
    mut form: Multipart,
) -> Response {
    match receive(&state, &parts, &mut form).await {
        Ok(r) => r,
        Err(e) => {
            let limit = state
                .options()
                .activity_timeout
                .unwrap_or(std::time::Duration::from_secs(20));
            let drained = tokio::time::timeout(limit, drain(&mut form))
                .await
                .unwrap_or(false);
            let mut resp = e.into_response();
            if !drained {
                resp.headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            resp
        }
    }
}

/// Reads the rest of a form up to [`DRAIN_LIMIT`]; whether it ended cleanly.
async fn drain(form: &mut Multipart) -> bool {
    let mut n: u64 = 0;
    loop {
        match form.next_field().await {
            Ok(None) => return true,
            Err(_) => return false,
            Ok(Some(mut field)) => loop {
                match field.chunk().await {
                    Ok(Some(c)) => {
                        n += c.len() as u64;
                        if n > DRAIN_LIMIT {
                            return false;
                        }
                    }
                    Ok(None) => break,
                    Err(_) => return false,
                }
            },
        }
    }
}

/// The upload itself: fields in order, each file streamed to its writer.
async fn receive(
    state: &AppState,
    parts: &Parts,
    form: &mut Multipart,
) -> Result<Response, GwError> {
    super::check_origin(state, parts)?;
    let mut who: Option<(Identity, TransferSpec, RelPath)> = None;
    let mut size: Option<u64> = None;
    let mut index = 0usize;
    let mut stored = Vec::new();
    let mut bytes_in: u64 = 0;
    while let Some(mut field) = form.next_field().await.map_err(|e| multipart_error(&e))? {
        let name = field.name().unwrap_or_default().to_ascii_lowercase();
        match name.as_str() {
            "x-aspera-spec" => {
                if who.is_some() {
                    return Err(
                        ApiError::BadRequest("one x-aspera-spec per upload".to_owned()).into(),
                    );
                }
                let text = text_field(&mut field).await?;
                let spec: TransferSpec = super::parse_json(text.as_bytes())?;
                let spec = with_header_token(parts, spec);
                let id = state.identify_spec(parts, &spec, Direction::Upload).await?;
                let token_dir = id.upload_root()?;
                let dir = match spec.destination_root.as_deref() {
                    Some(d) if !d.trim().is_empty() => spec_path(d, "destination_root")?,
                    _ => token_dir,
                };
                tracing::info!(user = %id.user, client = %id.client, dir = %dir, "gateway v3 upload start");
                who = Some((id, spec, dir));
            }
            "content-length" => {
                let text = text_field(&mut field).await?;
                size = Some(fallback_http::parse_u64(text.trim()).ok_or_else(|| {
                    ApiError::BadRequest(format!("Content-Length field {text:?} is not a size"))
                })?);
            }
            "file" => {
                let Some((id, spec, dir)) = &who else {
                    return Err(ApiError::BadRequest(
                        "x-aspera-spec comes before the files".to_owned(),
                    )
                    .into());
                };
                let part_name = field.file_name().map(str::to_owned);
                let path = spec.paths.get(index);
                index += 1;
                let source = path
                    .and_then(|p| p.source.clone())
                    .or(part_name)
                    .ok_or_else(|| ApiError::BadRequest("a file part without a name".to_owned()))?;
                let rel = RelPath::parse(&source)
                    .map_err(|e| ApiError::BadRequest(format!("file name {source:?}: {e}")))?;
                let dest = match path.and_then(|p| p.destination.as_deref()).map(str::trim) {
                    Some(d) if !d.is_empty() && d != "." && d != "/" => {
                        dir.join(&spec_path(d, "destination")?)
                    }
                    _ => dir.join(&rel),
                };
                let mut sink = Sink::open(state, id, dest, size.take()).await?;
                loop {
                    match field.chunk().await {
                        Ok(Some(chunk)) => {
                            bytes_in += chunk.len() as u64;
                            if !sink.send(chunk).await {
                                return Err(sink.stopped(id).await.into());
                            }
                        }
                        Ok(None) => break,
                        Err(e) => {
                            let err = multipart_error(&e);
                            sink.abort(id, err.reason()).await;
                            return Err(err.into());
                        }
                    }
                }
                let done = sink.finish(id).await?;
                stored.push(serde_json::json!({
                    "path": done.path.to_string(),
                    "size": done.size,
                    "sha256": hex::encode(done.sha256),
                }));
            }
            // Other fields (an app's own) are read past.
            _ => {
                while field
                    .chunk()
                    .await
                    .map_err(|e| multipart_error(&e))?
                    .is_some()
                {}
            }
        }
    }
    if who.is_none() {
        return Err(ApiError::BadRequest("the form has no x-aspera-spec field".to_owned()).into());
    }
    let mut resp = axum::Json(serde_json::json!({
        "status": "completed",
        "files": stored,
        "bytes": bytes_in,
    }))
    .into_response();
    resp.headers_mut().insert("x-request-id", request_id());
    Ok(resp)
}

/// The spec of `X-Aspera-Spec`: base64 (standard or URL-safe) of its JSON.
fn header_spec(parts: &Parts) -> Result<TransferSpec, ApiError> {
    let raw = parts
        .headers
        .get("x-aspera-spec")
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| ApiError::BadRequest("X-Aspera-Spec is missing".to_owned()))?
        .trim();
    let json = base64::engine::general_purpose::STANDARD
        .decode(raw)
        .or_else(|_| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(raw.trim_end_matches('='))
        })
        .map_err(|_| ApiError::BadRequest("X-Aspera-Spec is not base64".to_owned()))?;
    super::parse_json(&json)
}

/// `GET /v3/download`.
pub(crate) async fn download(
    State(state): State<AppState>,
    parts: Parts,
) -> Result<Response, GwError> {
    super::check_origin(&state, &parts)?;
    let spec = with_header_token(&parts, header_spec(&parts)?);
    let id = state
        .identify_spec(&parts, &spec, Direction::Download)
        .await?;
    let cap = Capability::issue(&state, &id, &spec).await?;
    let mut resp = serve(&state, &parts, cap).await?;
    let h = resp.headers_mut();
    // aspera-sdk-js reads the name by cutting `attachment; filename="` and `"` from
    // the header: it gets the plain form.
    let simple = h
        .get(header::CONTENT_DISPOSITION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').nth(1))
        .map(|f| f.trim().to_owned());
    if let Some(f) = simple.filter(|f| f.starts_with("filename=\""))
        && let Ok(v) = HeaderValue::from_str(&format!("attachment; {f}"))
    {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    h.insert("x-request-id", request_id());
    Ok(resp)
}

#[derive(Deserialize)]
struct PresignRequest {
    transfer_spec: TransferSpec,
    #[serde(default)]
    method: Option<String>,
    #[serde(default)]
    protocol: Option<String>,
}

/// `POST /v3/presign`.
pub(crate) async fn presign(
    State(state): State<AppState>,
    parts: Parts,
    body: Bytes,
) -> Result<Response, GwError> {
    super::check_origin(&state, &parts)?;
    let req: PresignRequest = super::parse_json(&body)?;
    if req
        .method
        .as_deref()
        .is_some_and(|m| !m.eq_ignore_ascii_case("GET"))
    {
        return Err(ApiError::BadRequest("presigned URLs are for GET only".to_owned()).into());
    }
    let spec = with_header_token(&parts, req.transfer_spec);
    let id = state
        .identify_spec(&parts, &spec, Direction::Download)
        .await?;
    let cap = Capability::issue(&state, &id, &spec).await?;
    // The URL names the host the request came to (never one the body names).
    let host = parts
        .headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .ok_or_else(|| ApiError::BadRequest("the request has no Host".to_owned()))?;
    let (https, _) = state.transport(&parts);
    let scheme = match req.protocol.as_deref() {
        Some("https") => "https",
        Some("http") => "http",
        _ if https => "https",
        _ => "http",
    };
    let url = format!(
        "{scheme}://{host}{}{BASE}/v1/download/{}",
        crate::mount_prefix(&parts),
        cap.encode()
    );
    tracing::info!(user = %id.user, client = %id.client, paths = cap.paths.len(), "gateway presigned URL made");
    let mut resp = axum::Json(serde_json::json!({ "signed_url": url })).into_response();
    resp.headers_mut().insert("x-request-id", request_id());
    Ok(resp)
}
