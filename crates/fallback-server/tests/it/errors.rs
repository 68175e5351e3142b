//! The error table: routes and methods the service does not have, and what every
//! refusal carries.

use axum::body::Body;
use axum::http::StatusCode;

use crate::{Fixture, download_token, req, send};

#[tokio::test]
async fn unknown_routes_and_methods() {
    let f = Fixture::new();
    f.file("a.txt", 1);
    let app = f.router();
    let token = download_token("alice", &["/"]);
    for (method, path, want) in [
        ("GET", "/nothing-here", StatusCode::NOT_FOUND),
        ("GET", "/aspera/httpx/files/a.txt", StatusCode::NOT_FOUND),
        ("DELETE", "/files/a.txt", StatusCode::METHOD_NOT_ALLOWED),
        ("POST", "/files/a.txt", StatusCode::METHOD_NOT_ALLOWED),
        ("GET", "/health", StatusCode::OK),
        ("GET", "/aspera/https/health", StatusCode::OK),
    ] {
        let got = send(
            &app,
            req(method, path, Some(&token)).body(Body::empty()).unwrap(),
        )
        .await;
        assert_eq!(got.status, want, "{method} {path}: {got:?}");
    }
    let all = download_token("alice", &["/"]);
    let missing = send(
        &app,
        req("GET", "/files/missing.txt", Some(&all))
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(
        missing.header("content-type"),
        Some("text/plain; charset=utf-8")
    );
    assert_eq!(missing.header("cache-control"), Some("no-store"));
    assert_eq!(missing.text(), "not found\n");
}

#[tokio::test]
async fn info_states_protocol_and_limits() {
    let f = Fixture::with(fallback_server::Options {
        max_upload_size: 12345,
        ..Default::default()
    });
    let got = send(
        &f.router(),
        req("GET", "/info", None).body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(got.status, StatusCode::OK);
    let v = got.json();
    assert_eq!(v["protocol"], "fallback/1");
    assert_eq!(v["tus"]["version"], "1.0.0");
    assert_eq!(v["limits"]["max_upload_size"], 12345);
}

#[tokio::test]
async fn http_1_1_needs_one_valid_host() {
    let f = Fixture::new();
    let app = f.router();
    let no_host = axum::http::Request::builder()
        .uri("/health")
        .version(axum::http::Version::HTTP_11)
        .body(Body::empty())
        .unwrap();
    assert_eq!(send(&app, no_host).await.status, StatusCode::BAD_REQUEST);
    let two = axum::http::Request::builder()
        .uri("/health")
        .header("host", "a")
        .header("host", "b")
        .body(Body::empty())
        .unwrap();
    assert_eq!(send(&app, two).await.status, StatusCode::BAD_REQUEST);
    let coded = req("PUT", "/files/x", Some(&crate::upload_token("alice", "/")))
        .header("transfer-encoding", "gzip, chunked")
        .body(Body::from("x"))
        .unwrap();
    assert_eq!(send(&app, coded).await.status, StatusCode::NOT_IMPLEMENTED);
    assert!(!f.docroot().join("x").exists());
}
