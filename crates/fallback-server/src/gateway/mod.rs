//! IBM Aspera HTTP Gateway's API at `/aspera/http-gwy`, so web apps written against
//! IBM's JavaScript SDK (`@ibm-aspera/http-gateway-sdk-js`), aspera-cli's `httpgw`
//! transfers and `aspera-sdk-js`' v3 client work against fallbackd by changing one URL.
//! `docs/gateway.md` is the guide; the API as its clients use it is summarised there.
//!
//! | route | what |
//! |---|---|
//! | `GET /v1/info`, `GET /info` | name, version, endpoints |
//! | `GET /v1/upload`, `GET /v2/upload` | WebSocket uploads: base64 slices (v1), binary frames (v2) |
//! | `POST /v1/download`, `GET /v1/download/{id}` | a download capability, then the file or a zip |
//! | `POST /v3/upload`, `GET /v3/download`, `POST /v3/presign` | API v3: multipart uploads, downloads by header or signed URL |
//!
//! Everything goes through the service's own checks: the transfer spec's `token` is
//! verified as a Bearer token would be (user, direction, paths, the user's aspera.conf
//! settings), files are staged and published atomically exactly like a PUT, downloads
//! are the same reads as `GET /files`.

mod download;
mod upload;
mod v3;

use axum::Json;
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use fallback_engine::RelPath;
use fallback_token::Direction;
use serde::Deserialize;

use crate::AppState;
use crate::auth::Identity;
use crate::error::ApiError;

/// Where the Gateway API lives, under any base the service is mounted at.
pub(crate) const BASE: &str = "/aspera/http-gwy";

/// The Gateway version `/info` reports. IBM's SDK picks binary (v2) uploads from 2.3.0
/// on; aspera-sdk-js uses API v3 from 3 on.
pub(crate) const VERSION: &str = "3.0.0";

/// The routes, at [`BASE`].
pub(crate) fn routes() -> axum::Router<AppState> {
    axum::Router::new()
        .route(&format!("{BASE}/info"), get(info))
        .route(&format!("{BASE}/v1/info"), get(info))
        .route(&format!("{BASE}/v1/upload"), get(upload::v1))
        .route(&format!("{BASE}/v2/upload"), get(upload::v2))
        .route(&format!("{BASE}/v1/download"), post(download::create))
        .route(&format!("{BASE}/v1/download/{{id}}"), get(download::fetch))
        .route(
            &format!("{BASE}/v3/upload"),
            post(v3::upload).layer(axum::extract::DefaultBodyLimit::disable()),
        )
        .route(&format!("{BASE}/v3/download"), get(v3::download))
        .route(&format!("{BASE}/v3/presign"), post(v3::presign))
}

/// `GET /info`, `GET /v1/info`.
async fn info(parts: Parts) -> Json<serde_json::Value> {
    let base = format!("{}{BASE}", crate::mount_prefix(&parts));
    let endpoints: Vec<String> = [
        "/v1/info",
        "/v1/upload",
        "/v2/upload",
        "/v1/download",
        "/v3/upload",
        "/v3/download",
        "/v3/presign",
    ]
    .iter()
    .map(|e| format!("{base}{e}"))
    .collect();
    Json(serde_json::json!({
        "name": "fallbackd (IBM Aspera HTTP Gateway API)",
        "version": VERSION,
        "server": format!("fallbackd {}", env!("CARGO_PKG_VERSION")),
        "endpoints": endpoints,
        "upload_endpoint": [format!("{base}/v1/upload"), format!("{base}/v2/upload"), format!("{base}/v3/upload")],
        "download_endpoint": [format!("{base}/v1/download"), format!("{base}/v3/download")],
    }))
}

/// A transfer spec as Gateway clients send it: only what a transfer here uses is read,
/// the rest (`remote_host`, `tags`, `authentication`, ...) is ignored.
#[derive(Debug, Default, Deserialize, Clone)]
#[serde(default)]
pub(crate) struct TransferSpec {
    /// `send` (upload) or `receive` (download).
    pub(crate) direction: Option<String>,
    /// The transfer token, bare or as `Bearer ...`.
    pub(crate) token: Option<String>,
    /// The user the app says the token is for.
    pub(crate) remote_user: Option<String>,
    /// Uploads: the folder files go to; downloads: where the client saves them.
    pub(crate) destination_root: Option<String>,
    /// Downloads: the folder `paths` are relative to.
    pub(crate) source_root: Option<String>,
    /// The files.
    pub(crate) paths: Vec<SpecPath>,
    /// Downloads: one zip even for one file.
    pub(crate) zip_required: Option<bool>,
    /// Downloads: the zip's name (without `.zip`).
    pub(crate) download_name: Option<String>,
}

/// One of a transfer spec's `paths`.
#[derive(Debug, Default, Deserialize, Clone)]
#[serde(default)]
pub(crate) struct SpecPath {
    pub(crate) source: Option<String>,
    pub(crate) destination: Option<String>,
}

impl TransferSpec {
    /// The token, without a `Bearer ` prefix (the SDK sends it bare in uploads and
    /// with the prefix in downloads).
    fn bare_token(&self) -> Option<String> {
        let t = self.token.as_deref()?.trim();
        let bare = match t.split_once(' ') {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("bearer") => rest.trim(),
            _ => t,
        };
        (!bare.is_empty()).then(|| bare.to_owned())
    }

    /// Refuses a spec whose `direction` says the other way.
    fn check_direction(&self, direction: Direction) -> Result<(), ApiError> {
        let expected = match direction {
            Direction::Upload => "send",
            Direction::Download => "receive",
        };
        match self.direction.as_deref() {
            None => Ok(()),
            Some(d) if d.eq_ignore_ascii_case(expected) => Ok(()),
            Some(d) => Err(ApiError::BadRequest(format!(
                "transfer_spec.direction is {d:?}; this endpoint takes {expected:?}"
            ))),
        }
    }

    /// The folder `source_root` names (the docroot when absent).
    fn source_root(&self) -> Result<RelPath, ApiError> {
        spec_path(self.source_root.as_deref().unwrap_or("/"), "source_root")
    }
}

/// A path of a transfer spec, docroot-relative (`/`, `.` and an empty path are the docroot).
fn spec_path(p: &str, what: &str) -> Result<RelPath, ApiError> {
    let p = p.trim();
    if p.is_empty() || p == "." {
        return Ok(RelPath::root());
    }
    RelPath::parse(p).map_err(|e| ApiError::BadRequest(format!("{what} {p:?}: {e}")))
}

impl AppState {
    /// Who sends `spec`, checked like a Bearer token for `direction`; `remote_user`,
    /// when given, must be the token's user.
    pub(crate) async fn identify_spec(
        &self,
        parts: &Parts,
        spec: &TransferSpec,
        direction: Direction,
    ) -> Result<Identity, ApiError> {
        spec.check_direction(direction)?;
        let id = self
            .identify_token(parts, spec.bare_token(), direction)
            .await?;
        if let (Some(asked), Some(claims)) = (spec.remote_user.as_deref(), &id.claims)
            && !asked.is_empty()
            && asked != claims.user
        {
            return Err(ApiError::Forbidden {
                public: "transfer_spec.remote_user is not the token's user".to_owned(),
                reason: format!("remote_user {asked:?} with a token for {:?}", claims.user),
            });
        }
        Ok(id)
    }
}

/// Whether a browser page at the request's `Origin` may use the API: no `Origin` (not
/// a browser), the same origin, or one of the configured CORS origins. `WebSocket`s
/// are not covered by CORS, so the upload endpoints check this themselves.
pub(crate) fn origin_allowed(parts: &Parts, origins: &[String]) -> bool {
    let Some(origin) = parts.headers.get(header::ORIGIN) else {
        return true;
    };
    let Ok(origin) = origin.to_str() else {
        return false;
    };
    let origin = origin.trim_end_matches('/').to_ascii_lowercase();
    if origins.iter().any(|o| o == "*" || *o == origin) {
        return true;
    }
    // Same origin: the page's host:port is the one the request was sent to.
    let host = parts
        .headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| {
            parts
                .uri
                .authority()
                .map(axum::http::uri::Authority::as_str)
        });
    let page = origin.split_once("://").map(|(_, h)| h);
    matches!((page, host), (Some(p), Some(h)) if p.eq_ignore_ascii_case(h))
}

/// A refusal as the Gateway's clients read it: `{"message", "code"}` with the status.
pub(crate) struct GwError(pub(crate) ApiError);

impl From<ApiError> for GwError {
    fn from(e: ApiError) -> Self {
        GwError(e)
    }
}

impl IntoResponse for GwError {
    fn into_response(self) -> Response {
        let e = self.0;
        let status = e.status();
        let body = error_json(&e);
        // The service's own answer carries the logging and its headers (Retry-After,
        // WWW-Authenticate); only the body becomes JSON.
        let mut resp = e.into_response();
        let h = resp.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        h.remove(header::CONTENT_LENGTH);
        *resp.body_mut() = axum::body::Body::from(body.to_string());
        *resp.status_mut() = status;
        resp
    }
}

/// `{"message", "code"}` for `e`.
pub(crate) fn error_json(e: &ApiError) -> serde_json::Value {
    serde_json::json!({
        "message": e.public(),
        "description": e.public(),
        "code": e.status().as_u16(),
    })
}

/// The JSON body of a Gateway POST, refused with a clear message when it is not.
pub(crate) fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| {
        ApiError::BadRequest(format!("the request body is not the JSON expected: {e}"))
    })
}

/// Refuses a cross-origin request from a page whose origin is not allowed.
pub(crate) fn check_origin(state: &AppState, parts: &Parts) -> Result<(), ApiError> {
    if origin_allowed(parts, &state.options().cors_origins) {
        return Ok(());
    }
    Err(ApiError::Forbidden {
        public: "this page's origin may not use the gateway (see --cors-origin)".to_owned(),
        reason: format!(
            "gateway request from origin {:?}, not allowed",
            parts.headers.get(header::ORIGIN)
        ),
    })
}

/// `StatusCode` → the WebSocket close code the Gateway's errors use (4000 + status).
pub(crate) fn close_code(status: StatusCode) -> u16 {
    4000 + status.as_u16().clamp(100, 599)
}

/// One file arriving through the Gateway API (a WebSocket's slices, a multipart part):
/// its bytes go through a queue into the same pump as a PUT, so it is staged, hashed
/// and published atomically, and a file cut off leaves nothing at its path.
pub(crate) struct Sink {
    dest: RelPath,
    /// The length announced, if any.
    size: Option<u64>,
    /// Bytes handed to the writer.
    sent: u64,
    tx: tokio::sync::mpsc::Sender<Result<bytes::Bytes, std::io::Error>>,
    writer: tokio::task::JoinHandle<Result<fallback_engine::AppendOutcome, ApiError>>,
    started: std::time::Instant,
}

/// Messages in flight between a Gateway client and a file's writer.
const SINK_QUEUE: usize = 16;

impl Sink {
    /// Checks that `id` may write `dest` (token, restrictions, size, `overwrite`) and
    /// starts its writer. `size`: the length announced, if any (else the file ends
    /// where its bytes end).
    pub(crate) async fn open(
        state: &AppState,
        id: &Identity,
        dest: RelPath,
        size: Option<u64>,
    ) -> Result<Sink, ApiError> {
        if dest.is_root() {
            return Err(ApiError::BadRequest("a file needs a name".to_owned()));
        }
        id.permit(Direction::Upload, &dest)?;
        id.check_restrictions(&dest)?;
        let options = state.options();
        if size.is_some_and(|s| s > options.max_upload_size) {
            return Err(ApiError::TooLarge(format!(
                "uploads are limited to {} bytes",
                options.max_upload_size
            )));
        }
        let no_replace = crate::precond::upload(id, &axum::http::HeaderMap::new(), &dest).await?;
        tracing::info!(user = %id.user, client = %id.client, direction = "upload", path = %dest, bytes = size, rate_cap_kbps = id.rate.map(|r| r / 125), via = "gateway", "transfer start");
        let (tx, mut rx) = tokio::sync::mpsc::channel(SINK_QUEUE);
        let body = axum::body::Body::from_stream(futures_util::stream::poll_fn(move |cx| {
            rx.poll_recv(cx)
        }));
        let writer = tokio::spawn(crate::body::pump(
            id.storage.clone(),
            crate::body::Start::Put {
                user: id.user.clone(),
                dest: dest.clone(),
                length: size,
                expected: None,
                valid_until: id.deadline(options),
                no_replace,
                modes: id.modes(),
            },
            body,
            crate::body::Flow::new(options, id.rate),
            true,
        ));
        Ok(Sink {
            dest,
            size,
            sent: 0,
            tx,
            writer,
            started: std::time::Instant::now(),
        })
    }

    /// Hands the writer more bytes; `false` when it has stopped ([`Sink::stopped`]
    /// then says why).
    pub(crate) async fn send(&mut self, bytes: bytes::Bytes) -> bool {
        self.sent += bytes.len() as u64;
        self.tx.send(Ok(bytes)).await.is_ok()
    }

    /// Why the writer stopped before its file's end.
    pub(crate) async fn stopped(self, id: &Identity) -> ApiError {
        match self.join(id).await {
            Err(e) => e,
            Ok(_) => ApiError::Internal("the file's writer ended early".to_owned()),
        }
    }

    /// Ends the file with the bytes sent: published and durable when this returns Ok;
    /// a file shorter than announced is dropped. Logs the transfer's end either way.
    pub(crate) async fn finish(
        self,
        id: &Identity,
    ) -> Result<fallback_engine::Completed, ApiError> {
        if let Some(size) = self.size
            && self.sent != size
        {
            let why = format!(
                "{} ended after {} of the {size} bytes announced",
                self.dest, self.sent
            );
            self.abort(id, why.clone()).await;
            return Err(ApiError::BadRequest(why));
        }
        self.join(id).await
    }

    /// Lets the writer end with what it has, and waits for its outcome.
    async fn join(self, id: &Identity) -> Result<fallback_engine::Completed, ApiError> {
        let Sink {
            dest,
            tx,
            writer,
            started,
            ..
        } = self;
        drop(tx);
        let outcome = writer
            .await
            .map_err(|e| ApiError::Internal(format!("the file's writer: {e}")))
            .and_then(|r| r);
        crate::body::log_end(id, "upload", &dest, started, &outcome);
        outcome?
            .completed
            .ok_or_else(|| ApiError::Internal(format!("{dest} was not completed")))
    }

    /// Drops a file cut off: its staged bytes go, nothing is published (the pump
    /// removes a single-shot upload whose body breaks off).
    pub(crate) async fn abort(self, id: &Identity, why: String) {
        let _ = self.tx.send(Err(std::io::Error::other(why))).await;
        let _ = self.join(id).await;
    }
}
