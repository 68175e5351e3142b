//! CORS for pages on other origins (a web app on `https://app.example.com` sending to
//! `https://files.example.com:8443`): off unless origins are configured; preflights for
//! the tus and download methods and headers; the protocol's response headers exposed;
//! never credentials.

use std::time::Duration;

use axum::http::{HeaderName, HeaderValue, Method};
use tower_http::cors::{AllowOrigin, CorsLayer};

/// Request headers a page may send.
const ALLOW_HEADERS: &[&str] = &[
    "authorization",
    "content-type",
    "tus-resumable",
    "upload-length",
    "upload-offset",
    "upload-metadata",
    "upload-checksum",
    "upload-concat",
    "upload-defer-length",
    "x-http-method-override",
    "x-requested-with",
    "range",
    "if-match",
    "if-none-match",
    "if-range",
    "if-modified-since",
    "if-unmodified-since",
    // IBM HTTP Gateway API v3 (aspera-sdk-js).
    "x-aspera-spec",
    "x-aspera-accesskey",
];

/// Response headers a page may read.
const EXPOSE_HEADERS: &[&str] = &[
    "location",
    "upload-offset",
    "upload-length",
    "upload-expires",
    "upload-concat",
    "tus-resumable",
    "tus-version",
    "tus-extension",
    "tus-max-size",
    "tus-checksum-algorithm",
    "repr-digest",
    "etag",
    "last-modified",
    "content-range",
    "content-disposition",
    "fallback-kind",
    // IBM HTTP Gateway API v3 reads these.
    "x-request-id",
    "content-length",
];

/// Checks an origin as an operator writes it: `*`, or `scheme://host[:port]` with
/// `http` or `https` and nothing after the authority. Returns it normalised (no
/// trailing slash, lowercase scheme and host).
pub fn parse_origin(s: &str) -> Result<String, String> {
    if s == "*" {
        return Ok(s.to_owned());
    }
    let lower = s.trim_end_matches('/').to_ascii_lowercase();
    let (scheme, rest) = lower
        .split_once("://")
        .ok_or_else(|| format!("{s:?} is not an origin: write scheme://host[:port]"))?;
    if scheme != "http" && scheme != "https" {
        return Err(format!("{s:?}: an origin's scheme is http or https"));
    }
    if rest.is_empty() || rest.contains(['/', '?', '#', '@', ' ']) {
        return Err(format!(
            "{s:?} is not an origin: scheme://host[:port] only, no path, query or user"
        ));
    }
    HeaderValue::from_str(&lower).map_err(|_| format!("{s:?} is not a valid origin"))?;
    Ok(lower)
}

/// The CORS layer for `origins`, or `None` when there are none.
pub(crate) fn layer(origins: &[String]) -> Option<CorsLayer> {
    if origins.is_empty() {
        return None;
    }
    let allow = if origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(origins.iter().filter_map(|o| HeaderValue::from_str(o).ok()))
    };
    let names = |list: &[&'static str]| -> Vec<HeaderName> {
        list.iter().map(|n| HeaderName::from_static(n)).collect()
    };
    Some(
        CorsLayer::new()
            .allow_origin(allow)
            .allow_methods([
                Method::GET,
                Method::HEAD,
                Method::PUT,
                Method::POST,
                Method::PATCH,
                Method::DELETE,
                Method::OPTIONS,
            ])
            .allow_headers(names(ALLOW_HEADERS))
            .expose_headers(names(EXPOSE_HEADERS))
            .allow_credentials(false)
            .max_age(Duration::from_secs(86400)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins() {
        assert_eq!(
            parse_origin("https://App.Example.com/").unwrap(),
            "https://app.example.com"
        );
        assert_eq!(
            parse_origin("http://127.0.0.1:8090").unwrap(),
            "http://127.0.0.1:8090"
        );
        assert_eq!(parse_origin("*").unwrap(), "*");
        for bad in [
            "app.example.com",
            "ftp://x",
            "https://x/path",
            "https://",
            "https://u@x",
        ] {
            assert!(parse_origin(bad).is_err(), "{bad}");
        }
    }
}
