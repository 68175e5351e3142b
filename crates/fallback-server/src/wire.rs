//! Header values the handlers read and write, shared by downloads, PUT and tus.

use std::time::SystemTime;

use axum::http::{HeaderMap, HeaderValue};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

/// An unsigned decimal header value: see [`fallback_http::parse_u64`].
pub(crate) fn header_u64(v: &HeaderValue) -> Option<u64> {
    fallback_http::parse_u64(v.to_str().ok()?)
}

/// An RFC 9110 HTTP date (`Sun, 06 Nov 1994 08:49:37 GMT`).
pub(crate) fn http_date(t: SystemTime) -> String {
    jiff::Timestamp::try_from(t)
        .ok()
        .and_then(|ts| {
            jiff::fmt::rfc2822::DateTimePrinter::new()
                .timestamp_to_rfc9110_string(&ts)
                .ok()
        })
        .unwrap_or_default()
}

/// `Repr-Digest: sha-256=:<base64>:` (RFC 9530) for a file's SHA-256.
pub(crate) fn insert_digest(h: &mut HeaderMap, sha256: &[u8; 32]) {
    let b64 = STANDARD.encode(sha256);
    if let Ok(v) = HeaderValue::from_str(&format!("sha-256=:{b64}:")) {
        h.insert("repr-digest", v);
    }
}

/// The SHA-256 in an RFC 9530 digest field (`Repr-Digest` or `Content-Digest`), its
/// lines joined as one dictionary (RFC 9110 §5.3); `None` when absent or when it names
/// other algorithms only. A malformed value is a 400.
pub(crate) fn sha256_field(
    h: &HeaderMap,
    name: &str,
) -> Result<Option<[u8; 32]>, crate::error::ApiError> {
    let mut lines = Vec::new();
    for v in h.get_all(name) {
        lines.push(
            v.to_str()
                .map_err(|_| crate::error::ApiError::BadRequest(format!("{name} is not ASCII")))?,
        );
    }
    if lines.is_empty() {
        return Ok(None);
    }
    fallback_http::sha256_member(&lines.join(","))
        .map_err(|e| crate::error::ApiError::BadRequest(format!("{name}: {e}")))
}

/// Refuses a request body with a content coding (RFC 9110 §8.4: 415): its bytes are
/// stored as they come, so a gzip body would be stored gzipped under the file's name.
pub(crate) fn identity_body(h: &HeaderMap) -> Result<(), crate::error::ApiError> {
    for v in h.get_all(axum::http::header::CONTENT_ENCODING) {
        let codings = v.to_str().unwrap_or("?");
        if codings
            .split(',')
            .any(|c| !c.trim().is_empty() && !c.trim().eq_ignore_ascii_case("identity"))
        {
            return Err(crate::error::ApiError::UnsupportedMediaType(format!(
                "Content-Encoding {codings} is not accepted: send the file's bytes as they are"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use super::http_date;

    #[test]
    fn dates() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_790_000_000);
        assert_eq!(http_date(t), "Mon, 21 Sep 2026 14:13:20 GMT");
        assert_eq!(
            http_date(SystemTime::UNIX_EPOCH),
            "Thu, 01 Jan 1970 00:00:00 GMT"
        );
    }
}
