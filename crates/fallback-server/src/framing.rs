//! Message framing rules hyper leaves to the application (RFC 9112), checked before
//! routing, authentication or any body byte:
//!
//! - §3.2: an HTTP/1.1 request without `Host`, any request with more than one `Host`
//!   line, or with an invalid `Host` value: 400.
//! - §6.1: a transfer coding other than `chunked` (`gzip, chunked`): 501, because the
//!   body would otherwise be stored still encoded; `chunked` not last, or twice: 400.
//!
//! Either way the connection is closed after the answer: the rest of the stream cannot
//! be trusted to be framed as the peer thinks.

use axum::extract::Request;
use axum::http::{HeaderValue, Version, header};
use axum::middleware::Next;
use axum::response::{IntoResponse as _, Response};
use fallback_http::{TransferCoding, transfer_coding, valid_host};

use crate::error::ApiError;

fn refusal(req: &Request) -> Option<ApiError> {
    let h = req.headers();
    let hosts: Vec<&HeaderValue> = h.get_all(header::HOST).iter().collect();
    let http1 = matches!(req.version(), Version::HTTP_10 | Version::HTTP_11);
    match hosts.as_slice() {
        [] if req.version() == Version::HTTP_11 => {
            return Some(ApiError::BadRequest(
                "an HTTP/1.1 request needs a Host header (RFC 9112 §3.2)".to_owned(),
            ));
        }
        [] => {}
        [one] => {
            if !valid_host(one.as_bytes()) {
                return Some(ApiError::BadRequest(
                    "the Host header is not a valid host[:port] (RFC 9112 §3.2)".to_owned(),
                ));
            }
        }
        _ => {
            return Some(ApiError::BadRequest(
                "more than one Host header (RFC 9112 §3.2)".to_owned(),
            ));
        }
    }
    if http1 && h.contains_key(header::TRANSFER_ENCODING) {
        if req.version() == Version::HTTP_10 {
            return Some(ApiError::BadRequest(
                "Transfer-Encoding in an HTTP/1.0 request (RFC 9112 §6.1)".to_owned(),
            ));
        }
        match transfer_coding(
            h.get_all(header::TRANSFER_ENCODING)
                .iter()
                .map(HeaderValue::as_bytes),
        ) {
            TransferCoding::Chunked => {}
            TransferCoding::Unsupported(c) => {
                return Some(ApiError::NotImplemented(format!(
                    "transfer coding {c:?} is not supported: send the body as it is, or chunked"
                )));
            }
            TransferCoding::Invalid => {
                return Some(ApiError::BadRequest(
                    "Transfer-Encoding must end with chunked, once (RFC 9112 §6.1)".to_owned(),
                ));
            }
        }
    }
    None
}

/// The middleware: refuses what [`refusal`] finds, with `Connection: close`.
pub(crate) async fn check(req: Request, next: Next) -> Response {
    match refusal(&req) {
        None => next.run(req).await,
        Some(e) => {
            tracing::info!(
                method = %req.method(),
                status = e.status().as_u16(),
                reason = %e.reason(),
                "request refused before routing"
            );
            let mut resp = e.into_response();
            resp.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
            resp
        }
    }
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::StatusCode;
    use tower::ServiceExt as _;

    fn app() -> axum::Router {
        axum::Router::new()
            .route("/", axum::routing::any(|| async { "ok" }))
            .layer(axum::middleware::from_fn(super::check))
    }

    async fn status(req: axum::http::Request<Body>) -> StatusCode {
        app().oneshot(req).await.unwrap().status()
    }

    fn req(version: axum::http::Version, headers: &[(&str, &str)]) -> axum::http::Request<Body> {
        let mut b = axum::http::Request::builder()
            .uri("/")
            .method("PUT")
            .version(version);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(Body::empty()).unwrap()
    }

    #[tokio::test]
    async fn host_rules() {
        use axum::http::Version as V;
        assert_eq!(
            status(req(V::HTTP_11, &[("host", "a.example:8080")])).await,
            StatusCode::OK
        );
        assert_eq!(
            status(req(V::HTTP_11, &[("host", "[::1]:80")])).await,
            StatusCode::OK
        );
        assert_eq!(status(req(V::HTTP_10, &[])).await, StatusCode::OK);
        assert_eq!(status(req(V::HTTP_11, &[])).await, StatusCode::BAD_REQUEST);
        assert_eq!(
            status(req(V::HTTP_11, &[("host", "a"), ("host", "b")])).await,
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            status(req(V::HTTP_11, &[("host", "a b")])).await,
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            status(req(V::HTTP_11, &[("host", "u@a")])).await,
            StatusCode::BAD_REQUEST
        );
        // HTTP/2 carries :authority; Host may be absent.
        assert_eq!(status(req(V::HTTP_2, &[])).await, StatusCode::OK);
    }

    #[tokio::test]
    async fn transfer_codings() {
        use axum::http::Version as V;
        let h = |te: &'static str| req(V::HTTP_11, &[("host", "a"), ("transfer-encoding", te)]);
        assert_eq!(status(h("chunked")).await, StatusCode::OK);
        assert_eq!(
            status(h("gzip, chunked")).await,
            StatusCode::NOT_IMPLEMENTED
        );
        assert_eq!(status(h("chunked, gzip")).await, StatusCode::BAD_REQUEST);
        assert_eq!(status(h("chunked, chunked")).await, StatusCode::BAD_REQUEST);
        let resp = app().oneshot(h("gzip, chunked")).await.unwrap();
        assert_eq!(resp.headers()["connection"], "close");
    }
}
