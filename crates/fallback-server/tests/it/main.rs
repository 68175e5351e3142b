//! The router in-process: requests through `tower::ServiceExt::oneshot` (no socket, no
//! process), and, where a real client needs a socket, served on 127.0.0.1 by the
//! embedding app's own `axum::serve`. The end-to-end suite (`bins/fallbackd/tests`)
//! keeps what needs the daemon: signals, TLS, listeners, proxies.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::missing_panics_doc)]

mod auth;
mod errors;
mod gateway;
mod nest;
mod ranges;
mod s3;
mod tus;

use std::path::PathBuf;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode};
use fallback_server::{AppState, Options};
use http_body_util::BodyExt as _;
use tower::ServiceExt as _;

pub use fallback_testkit::{download_token, make_file, sha256_file, upload_token};

/// A docroot in a temporary directory and the state of a service for it (the testkit's
/// configuration: tokens both ways, carol must encrypt).
#[derive(Debug)]
pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub state: AppState,
}

impl Default for Fixture {
    fn default() -> Fixture {
        Fixture::with(Options::default())
    }
}

impl Fixture {
    pub fn new() -> Fixture {
        Fixture::default()
    }

    pub fn with(options: Options) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let docroot = dir.path().join("data");
        std::fs::create_dir_all(&docroot).unwrap();
        let conf = fallback_testkit::config(&docroot);
        let state = AppState::new(conf, options).unwrap();
        Fixture { dir, state }
    }

    pub fn docroot(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// A file of `len` bytes at docroot-relative `rel`.
    pub fn file(&self, rel: &str, len: u64) -> PathBuf {
        let p = self.docroot().join(rel.trim_start_matches('/'));
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        make_file(&p, len, 7);
        p
    }

    pub fn router(&self) -> Router {
        fallback_server::router(self.state.clone())
    }
}

/// A response, read whole.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.text()))
    }
}

/// Sends `req` through `app` in-process.
pub async fn send(app: &Router, req: Request<Body>) -> Answer {
    let resp = app.clone().oneshot(req).await.unwrap();
    let (parts, body) = resp.into_parts();
    Answer {
        status: parts.status,
        headers: parts.headers,
        body: body.collect().await.unwrap().to_bytes().to_vec(),
    }
}

/// A request builder with `Host` set (HTTP/1.1 requires it) and, when given, a
/// bearer token.
pub fn req(method: &str, uri: &str, token: Option<&str>) -> axum::http::request::Builder {
    let b = Request::builder()
        .method(method)
        .uri(uri)
        .header("host", "localhost");
    match token {
        Some(t) => b.header("authorization", format!("Bearer {t}")),
        None => b,
    }
}
