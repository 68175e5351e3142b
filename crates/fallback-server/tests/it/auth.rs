//! Who may do what: the token checks and the user's settings, one request each.

use std::time::{Duration, SystemTime};

use axum::body::Body;
use axum::http::StatusCode;
use fallback_server::Transport;
use fallback_token::{Form, Key, Token};

use crate::{Fixture, req, send};

fn key() -> Key {
    fallback_testkit::key()
}

async fn get(f: &Fixture, path: &str, token: Option<&str>) -> crate::Answer {
    send(
        &f.router(),
        req("GET", path, token).body(Body::empty()).unwrap(),
    )
    .await
}

#[tokio::test]
async fn a_download_needs_a_valid_token_of_the_users_key() {
    let f = Fixture::new();
    f.file("a.txt", 10);
    let good = Token::download("alice", &["/a.txt"]).issue(&key()).unwrap();
    assert_eq!(
        get(&f, "/files/a.txt", Some(&good)).await.status,
        StatusCode::OK
    );

    let other = Key::derive("another-secret-of-enough-length-0123", Form::Signed).unwrap();
    let hour = Duration::from_secs(3600);
    let now = SystemTime::now();
    let refused = [
        ("no token", None),
        ("not a token", Some("garbage".to_owned())),
        (
            "another key",
            Some(Token::download("alice", &["/a.txt"]).issue(&other).unwrap()),
        ),
        (
            "expired an hour ago",
            Some(
                Token::download("alice", &["/a.txt"])
                    .issued_at(now - 2 * hour)
                    .valid_for(hour)
                    .issue(&key())
                    .unwrap(),
            ),
        ),
        (
            "valid only from tomorrow",
            Some(
                Token::download("alice", &["/a.txt"])
                    .issued_at(now + 24 * hour)
                    .valid_for(hour)
                    .issue(&key())
                    .unwrap(),
            ),
        ),
        ("a truncated token", Some(good[..good.len() - 3].to_owned())),
    ];
    for (what, token) in refused {
        let got = get(&f, "/files/a.txt", token.as_deref()).await;
        assert_eq!(got.status, StatusCode::UNAUTHORIZED, "{what}: {got:?}");
        assert_eq!(
            got.header("www-authenticate"),
            Some("Bearer realm=\"fallback\""),
            "{what}"
        );
        assert_eq!(got.text(), "missing or invalid token\n", "{what}");
    }
}

#[tokio::test]
async fn direction_and_path_are_the_tokens() {
    let f = Fixture::new();
    f.file("a.txt", 10);
    f.file("b.txt", 10);
    let up = Token::upload("alice", "/").issue(&key()).unwrap();
    let a_only = Token::download("alice", &["/a.txt"]).issue(&key()).unwrap();
    // Wrong direction, another file, a file that does not exist: all 403, the same
    // answer whether or not the path exists.
    for (token, path) in [
        (&up, "/files/a.txt"),
        (&a_only, "/files/b.txt"),
        (&a_only, "/files/missing.txt"),
        (&a_only, "/files/a.txt.bak"),
    ] {
        let got = get(&f, path, Some(token)).await;
        assert_eq!(got.status, StatusCode::FORBIDDEN, "{path}: {got:?}");
    }
    let folder = Token::download("alice", &["/d"]).issue(&key()).unwrap();
    f.file("d/in.txt", 3);
    f.file("dd/out.txt", 3);
    assert_eq!(
        get(&f, "/files/d/in.txt", Some(&folder)).await.status,
        StatusCode::OK
    );
    // Coverage is by whole segments: /d does not cover /dd.
    assert_eq!(
        get(&f, "/files/dd/out.txt", Some(&folder)).await.status,
        StatusCode::FORBIDDEN
    );
}

#[tokio::test]
async fn a_user_who_must_encrypt_is_refused_on_plain_http_only() {
    let f = Fixture::with(fallback_server::Options {
        https_port: Some(8443),
        ..Default::default()
    });
    f.file("c.txt", 4);
    let token = Token::download("carol", &["/c.txt"]).issue(&key()).unwrap();
    let plain = get(&f, "/files/c.txt", Some(&token)).await;
    assert_eq!(plain.status, StatusCode::FORBIDDEN);
    assert!(plain.text().contains("8443"), "{}", plain.text());
    let tls = send(
        &f.router(),
        req("GET", "/files/c.txt", Some(&token))
            .extension(Transport {
                https: true,
                peer: None,
            })
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(tls.status, StatusCode::OK);
}

#[tokio::test]
async fn a_query_token_works_for_get_only_and_is_never_cached() {
    let f = Fixture::new();
    f.file("a.txt", 10);
    let token = Token::download("alice", &["/a.txt"]).issue(&key()).unwrap();
    let got = get(&f, &format!("/files/a.txt?token={token}"), None).await;
    assert_eq!(got.status, StatusCode::OK);
    assert_eq!(got.header("cache-control"), Some("no-store"));
    assert_eq!(got.header("referrer-policy"), Some("no-referrer"));
    let up = Token::upload("alice", "/").issue(&key()).unwrap();
    let put = send(
        &f.router(),
        req("PUT", &format!("/files/new.txt?token={up}"), None)
            .body(Body::from("x"))
            .unwrap(),
    )
    .await;
    assert_eq!(put.status, StatusCode::UNAUTHORIZED);
    assert!(!f.docroot().join("new.txt").exists());
}

#[tokio::test]
async fn bad_paths_are_400_and_the_staging_area_unreachable() {
    let f = Fixture::new();
    f.file("a.txt", 1);
    let all = Token::download("alice", &["/"]).issue(&key()).unwrap();
    for path in [
        "/files/%2e%2e/etc/passwd",
        "/files/a/../a.txt",
        "/files/a%5cb",
        "/files/a%00b",
        "/files/%25zz",
        "/files/a:b",
    ] {
        let got = get(&f, path, Some(&all)).await;
        assert_eq!(got.status, StatusCode::BAD_REQUEST, "{path}: {got:?}");
    }
    let staged = get(&f, "/files/.fallback/uploads/", Some(&all)).await;
    assert!(
        matches!(
            staged.status,
            StatusCode::BAD_REQUEST | StatusCode::NOT_FOUND
        ),
        "{staged:?}"
    );
}

#[tokio::test]
async fn access_answers_like_the_transfer_would() {
    let f = Fixture::new();
    f.file("a.txt", 1);
    let down = Token::download("alice", &["/a.txt"]).issue(&key()).unwrap();
    let ask = |path: &'static str| {
        let (f, t) = (&f, down.clone());
        async move { get(f, path, Some(&t)).await.status }
    };
    assert_eq!(
        ask("/access/a.txt?direction=download").await,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        ask("/access/a.txt?direction=upload").await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        ask("/access/b.txt?direction=download").await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(ask("/access/a.txt").await, StatusCode::BAD_REQUEST);
}
