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
