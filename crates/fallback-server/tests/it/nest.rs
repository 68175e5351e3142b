//! The router nested in a web app at any depth: every URL it hands out (tus
//! `Location`, `Upload-Concat`, the slash redirect, listing links) leads back through
//! the mount point. tus-js-client, which follows `Location` as given, proves it.

use axum::Router;
use axum::body::Body;
use axum::http::StatusCode;

use crate::{Fixture, download_token, make_file, req, send, sha256_file, upload_token};

/// An app with its own route at `/` and the service nested at two depths.
fn app(f: &Fixture) -> Router {
    Router::new()
        .route("/", axum::routing::get(|| async { "the app's own page" }))
        .nest("/transfers", f.router())
        .nest("/apps/v1/transfers", f.router())
}

/// Runs tus-js-client's `parallelUploads` (partial uploads, then a final
/// concatenation that names the partials by the URLs the server gave).
fn tus_js_parallel(endpoint: &str, token: &str, file: &std::path::Path, name: &str) -> String {
    let v = fallback_testkit::tus_js(&[
        "parallel",
        endpoint,
        token,
        file.to_str().unwrap(),
        name,
        "2",
    ]);
    v["url"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nested_at_two_depths_tus_js_client_uploads_and_urls_lead_back() {
    let f = Fixture::new();
    std::fs::create_dir_all(f.docroot().join("in")).unwrap();
    let app = app(&f);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let served = app.clone();
    let server = tokio::spawn(async move { axum::serve(listener, served).await });

    let src = f.dir.path().join("src.bin");
    make_file(&src, 3 << 20, 5);
    let token = upload_token("alice", "/in");
    for (mount, name) in [
        ("/transfers", "one.bin"),
        ("/apps/v1/transfers/aspera/http", "two.bin"),
    ] {
        let endpoint = format!("http://{addr}{mount}/uploads");
        let (t, s) = (token.clone(), src.clone());
        let name_owned = name.to_owned();
        let url =
            tokio::task::spawn_blocking(move || tus_js_parallel(&endpoint, &t, &s, &name_owned))
                .await
                .unwrap();
        assert_eq!(
            sha256_file(&f.docroot().join("in").join(name)),
            sha256_file(&src),
            "{name} through {mount}"
        );
        // The final upload's URL, and the partials it names, are under the mount.
        let path = url.strip_prefix(&format!("http://{addr}")).unwrap_or(&url);
        assert!(path.starts_with(&format!("{mount}/uploads/")), "{url}");
        let head = send(
            &app,
            req("HEAD", path, Some(&token))
                .header("tus-resumable", "1.0.0")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
        assert_eq!(head.status, StatusCode::OK, "{head:?}");
        let concat = head.header("upload-concat").unwrap();
        let parts: Vec<&str> = concat.strip_prefix("final;").unwrap().split(' ').collect();
        assert_eq!(parts.len(), 2, "{concat}");
        for p in parts {
            assert!(p.starts_with(&format!("{mount}/uploads/")), "{concat}");
        }
    }

    // Downloads and listings through the mount point; the app's own route untouched.
    let down = download_token("alice", &["/in"]);
    let got = send(
        &app,
        req("GET", "/apps/v1/transfers/files/in/one.bin", Some(&down))
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(got.status, StatusCode::OK);
    assert_eq!(got.body.len(), 3 << 20);
    let redirect = send(
        &app,
        req("GET", "/transfers/files/in", Some(&down))
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(redirect.status, StatusCode::MOVED_PERMANENTLY);
    assert_eq!(redirect.header("location"), Some("in/"));
    let listing = send(
        &app,
        req("GET", "/transfers/files/in/", Some(&down))
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(listing.status, StatusCode::OK);
    assert!(
        listing.text().contains("href=\"one.bin\""),
        "{}",
        listing.text()
    );
    let own = send(&app, req("GET", "/", None).body(Body::empty()).unwrap()).await;
    assert_eq!(own.text(), "the app's own page");
    server.abort();
}
