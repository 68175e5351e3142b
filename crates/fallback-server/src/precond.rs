//! RFC 9110 §13 conditional requests: `If-Match`, `If-Unmodified-Since`,
//! `If-None-Match`, `If-Modified-Since`, evaluated in the order of §13.2.2 (`If-Range`
//! is the range's own business, in `files.rs`).

use std::time::{SystemTime, UNIX_EPOCH};

use axum::http::{HeaderMap, header};
use fallback_engine::Entry;
use fallback_http::{EntityTags, entity_tags};

use crate::auth::Identity;
use crate::error::ApiError;
use fallback_engine::RelPath;

/// What the preconditions decide.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Serve the request.
    Proceed,
    /// `304 Not Modified` (GET and HEAD only).
    NotModified,
}

/// An HTTP date in any of the three forms a recipient must accept (RFC 9110 §5.6.7):
/// IMF-fixdate, RFC 850, asctime. `None` for anything else (the header is then
/// ignored, as the RFC says).
pub(crate) fn parse_http_date(v: &str) -> Option<SystemTime> {
    let v = v.trim();
    let ts = jiff::fmt::rfc2822::DateTimeParser::new()
        .parse_timestamp(v)
        .ok()
        .or_else(|| {
            ["%A, %d-%b-%y %H:%M:%S GMT", "%a %b %e %H:%M:%S %Y"]
                .iter()
                .find_map(|f| {
                    jiff::fmt::strtime::parse(f, v)
                        .ok()?
                        .to_datetime()
                        .ok()?
                        .to_zoned_datetime(jiff::tz::TimeZone::UTC)
                        .ok()
                        .map(|z| z.timestamp())
                })
        })?;
    SystemTime::try_from(ts).ok()
}

/// A modification time at the one-second resolution of HTTP dates.
fn seconds(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

fn tags(h: &HeaderMap, name: &header::HeaderName) -> Result<Option<EntityTags>, ApiError> {
    let Some(v) = h.get(name) else {
        return Ok(None);
    };
    let v = v
        .to_str()
        .map_err(|_| ApiError::BadRequest(format!("{name} is not ASCII")))?;
    entity_tags(v)
        .map(Some)
        .map_err(|e| ApiError::BadRequest(format!("{name}: {e}")))
}

fn date(h: &HeaderMap, name: &header::HeaderName) -> Option<u64> {
    h.get(name)
        .and_then(|v| v.to_str().ok())
        .and_then(parse_http_date)
        .map(seconds)
}

/// Evaluates the preconditions of a request on `current` (the file there now; `None`
/// when there is none), `safe` for GET and HEAD. `Err(ApiError::Precondition)` is 412.
pub(crate) fn evaluate(
    h: &HeaderMap,
    current: Option<&Entry>,
    safe: bool,
) -> Result<Verdict, ApiError> {
    let failed = |which: &str| ApiError::PreconditionFailed(which.to_owned());
    // 1. If-Match (strong comparison); else 2. If-Unmodified-Since.
    if let Some(m) = tags(h, &header::IF_MATCH)? {
        let ok = current.is_some_and(|e| m.matches(&e.etag, true));
        if !ok {
            return Err(failed("If-Match"));
        }
    } else if let (Some(since), Some(e)) = (date(h, &header::IF_UNMODIFIED_SINCE), current)
        && seconds(e.modified) > since
    {
        return Err(failed("If-Unmodified-Since"));
    }
    // 3. If-None-Match (weak comparison); else 4. If-Modified-Since (GET/HEAD only).
    if let Some(m) = tags(h, &header::IF_NONE_MATCH)? {
        if current.is_some_and(|e| m.matches(&e.etag, false)) {
            return if safe {
                Ok(Verdict::NotModified)
            } else {
                Err(failed("If-None-Match"))
            };
        }
    } else if safe
        && let (Some(since), Some(e)) = (date(h, &header::IF_MODIFIED_SINCE), current)
        && seconds(e.modified) <= since
    {
        return Ok(Verdict::NotModified);
    }
    Ok(Verdict::Proceed)
}

/// The preconditions of an upload to `dest` (RFC 9110 §13.2.2, on the file there now),
/// checked before any byte is accepted; returns whether `If-None-Match: *` asks never
/// to replace a file, which the engine also holds atomically at the rename.
/// Checks an upload's preconditions (`If-Match`, `If-None-Match`,
/// `If-Unmodified-Since`) and the user's `overwrite` setting against what is at `dest`;
/// whether the upload must never replace a file (`If-None-Match: *`, or `overwrite`
/// `deny`: the final rename is then `RENAME_NOREPLACE`).
pub(crate) async fn upload(id: &Identity, h: &HeaderMap, dest: &RelPath) -> Result<bool, ApiError> {
    let storage = &id.storage;
    let conditional = [
        header::IF_MATCH,
        header::IF_NONE_MATCH,
        header::IF_UNMODIFIED_SINCE,
    ]
    .iter()
    .any(|n| h.contains_key(n));
    if conditional {
        let current = storage
            .stat(dest)
            .await
            .ok()
            .filter(|e| e.kind == fallback_engine::EntryKind::File);
        evaluate(h, current.as_ref(), false)?;
    }
    if id.overwrite_denied() {
        if storage.exists(dest).await? {
            return Err(ApiError::Conflict(format!(
                "{dest} exists, and this user's uploads may not replace files \
                 (aspera.conf <overwrite>deny</overwrite>): upload under another name"
            )));
        }
        return Ok(true);
    }
    Ok(h.get(header::IF_NONE_MATCH)
        .is_some_and(|v| v.as_bytes().trim_ascii() == b"*"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_three_date_forms() {
        let want = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(784_111_777);
        for v in [
            "Sun, 06 Nov 1994 08:49:37 GMT",
            "Sunday, 06-Nov-94 08:49:37 GMT",
            "Sun Nov  6 08:49:37 1994",
        ] {
            assert_eq!(parse_http_date(v), Some(want), "{v}");
        }
        for bad in ["", "yesterday", "Sun, 06 Nov 1994", "1994-11-06T08:49:37Z"] {
            assert_eq!(parse_http_date(bad), None, "{bad}");
        }
    }

    proptest::proptest! {
        #[test]
        fn dates_never_panic(v in "[ -~]{0,40}") {
            let _ = parse_http_date(&v);
        }
    }
}
