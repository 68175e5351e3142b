//! Every refusal and failure, and the one table that maps them to HTTP.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// A request that cannot be served. The client sees a short, safe message; the log
/// gets [`ApiError::reason`], which may name precise causes (never a token).
#[derive(Debug)]
pub(crate) enum ApiError {
    /// Malformed request (bad header, bad path, bad metadata).
    BadRequest(String),
    /// No token, or a token that does not verify.
    Unauthorized { reason: String },
    /// Authenticated but not allowed; `public` is safe to show.
    Forbidden { public: String, reason: String },
    /// Nothing there (or not for this user).
    NotFound { reason: String },
    /// Wrong method for the resource (a directory uploaded to).
    Conflict(String),
    /// A method the resource does not take.
    MethodNotAllowed(String),
    /// tus: the offset in the request is not the upload's offset.
    OffsetMismatch { actual: u64 },
    /// Another request writes this upload.
    Locked,
    /// Body larger than allowed or than the upload.
    TooLarge(String),
    /// tus PATCH without `application/offset+octet-stream`, or a body with a content
    /// coding (the message says which).
    UnsupportedMediaType(String),
    /// `Tus-Resumable` missing or another version.
    TusVersion,
    /// `If-None-Match: *` and the destination exists.
    Exists,
    /// An RFC 9110 precondition (named) is false.
    PreconditionFailed(String),
    /// tus checksum extension: the chunk (or the file) does not match.
    ChecksumMismatch,
    /// Range outside the file.
    RangeNotSatisfiable { len: u64 },
    /// The client stalled past `session_activity_timeout`.
    Timeout,
    /// Disk full.
    NoSpace,
    /// The storage (a bucket) did not answer or asked to slow down: retry later.
    Unavailable,
    /// A request feature the server does not do (a transfer coding other than
    /// `chunked`).
    NotImplemented(String),
    /// Anything else; details in the log only.
    Internal(String),
}

impl ApiError {
    pub(crate) fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized { .. } => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden { .. } => StatusCode::FORBIDDEN,
            ApiError::NotFound { .. } => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) | ApiError::OffsetMismatch { .. } => StatusCode::CONFLICT,
            ApiError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Locked => StatusCode::LOCKED,
            ApiError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::TusVersion | ApiError::Exists | ApiError::PreconditionFailed(_) => {
                StatusCode::PRECONDITION_FAILED
            }
            // tus checksum extension: 460 Checksum Mismatch.
            ApiError::ChecksumMismatch => {
                StatusCode::from_u16(460).unwrap_or(StatusCode::BAD_REQUEST)
            }
            ApiError::RangeNotSatisfiable { .. } => StatusCode::RANGE_NOT_SATISFIABLE,
            ApiError::Timeout => StatusCode::REQUEST_TIMEOUT,
            ApiError::NoSpace => StatusCode::INSUFFICIENT_STORAGE,
            ApiError::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::NotImplemented(_) => StatusCode::NOT_IMPLEMENTED,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub(crate) fn public(&self) -> String {
        match self {
            ApiError::BadRequest(m)
            | ApiError::Conflict(m)
            | ApiError::TooLarge(m)
            | ApiError::NotImplemented(m)
            | ApiError::UnsupportedMediaType(m)
            | ApiError::MethodNotAllowed(m) => m.clone(),
            ApiError::Unauthorized { .. } => "missing or invalid token".to_owned(),
            ApiError::Forbidden { public, .. } => public.clone(),
            ApiError::NotFound { .. } => "not found".to_owned(),
            ApiError::OffsetMismatch { actual } => {
                format!("offset mismatch: the upload is at {actual}")
            }
            ApiError::Locked => "the upload is being written by another request".to_owned(),
            ApiError::TusVersion => "Tus-Resumable 1.0.0 is required".to_owned(),
            ApiError::Exists => {
                "the destination exists and If-None-Match: * forbids replacing it".to_owned()
            }
            ApiError::PreconditionFailed(which) => format!("precondition failed: {which}"),
            ApiError::ChecksumMismatch => "checksum mismatch".to_owned(),
            ApiError::RangeNotSatisfiable { .. } => "range not satisfiable".to_owned(),
            ApiError::Timeout => "the client stopped sending".to_owned(),
            ApiError::NoSpace => {
                "insufficient storage: the server's disk is full. Bytes acknowledged before \
                 this request are kept; resume from Upload-Offset once space is freed"
                    .to_owned()
            }
            ApiError::Unavailable => {
                "the storage is unavailable for now; bytes acknowledged before are kept: \
                 retry shortly"
                    .to_owned()
            }
            ApiError::Internal(_) => "internal error".to_owned(),
        }
    }

    /// The precise reason, for the log.
    pub(crate) fn reason(&self) -> String {
        match self {
            ApiError::Unauthorized { reason }
            | ApiError::Forbidden { reason, .. }
            | ApiError::NotFound { reason } => reason.clone(),
            ApiError::Internal(m) => m.clone(),
            other => other.public(),
        }
    }
}

impl From<fallback_engine::Error> for ApiError {
    fn from(e: fallback_engine::Error) -> Self {
        use fallback_engine::Error as E;
        match e {
            E::NotFound | E::Escapes | E::Reserved => ApiError::NotFound {
                reason: format!("storage: {}", e.kind()),
            },
            E::UnknownUpload | E::NotOwner => ApiError::NotFound {
                reason: format!("upload: {}", e.kind()),
            },
            E::WrongKind(m) => ApiError::Conflict(m.to_owned()),
            E::Locked => ApiError::Locked,
            E::Exists => ApiError::Exists,
            E::OffsetMismatch { actual } => ApiError::OffsetMismatch { actual },
            E::TooLong => ApiError::TooLarge("more data than the upload's length".to_owned()),
            E::ChecksumMismatch => ApiError::ChecksumMismatch,
            E::NoSpace => {
                crate::stats::storage_error(e.kind());
                ApiError::NoSpace
            }
            E::Finished => ApiError::Conflict("the upload is finished".to_owned()),
            E::NotConcatenable(m) => ApiError::BadRequest(m.to_owned()),
            E::Unavailable(why) => {
                crate::stats::storage_error("unavailable");
                tracing::warn!(reason = %why, "storage unavailable");
                ApiError::Unavailable
            }
            E::Limit(m) => ApiError::Forbidden {
                public: m.clone(),
                reason: m,
            },
            other => {
                crate::stats::storage_error(other.kind());
                ApiError::Internal(format!("{other}: {:?}", std::error::Error::source(&other)))
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() {
            tracing::error!(status = status.as_u16(), reason = %self.reason(), "request failed");
        } else {
            tracing::info!(status = status.as_u16(), reason = %self.reason(), "request refused");
        }
        let mut resp = (status, format!("{}\n", self.public())).into_response();
        let h = resp.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        match &self {
            ApiError::MethodNotAllowed(_) => {
                h.insert(
                    header::ALLOW,
                    HeaderValue::from_static("OPTIONS, HEAD, PATCH, DELETE"),
                );
            }
            ApiError::Unauthorized { .. } => {
                h.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"fallback\""),
                );
            }
            ApiError::Unavailable => {
                h.insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
            }
            ApiError::RangeNotSatisfiable { len } => {
                if let Ok(v) = HeaderValue::from_str(&format!("bytes */{len}")) {
                    h.insert(header::CONTENT_RANGE, v);
                }
            }
            ApiError::OffsetMismatch { actual } => {
                if let Ok(v) = HeaderValue::from_str(&actual.to_string()) {
                    h.insert("upload-offset", v);
                }
            }
            _ => {}
        }
        resp
    }
}

/// An error and its causes, `: `-separated (as anyhow's `{:#}` shows them).
pub(crate) fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cause = c.source();
    }
    s
}
