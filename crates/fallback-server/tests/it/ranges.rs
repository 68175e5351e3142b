//! Downloads: ranges and the RFC 9110 preconditions, in the order of §13.2.2; PUT's
//! preconditions before the body.

use axum::body::Body;
use axum::http::StatusCode;

use crate::{Answer, Fixture, download_token, req, send, upload_token};

const LEN: u64 = 1000;

async fn get(f: &Fixture, headers: &[(&str, &str)]) -> Answer {
    let token = download_token("alice", &["/f.bin"]);
    let mut r = req("GET", "/files/f.bin", Some(&token));
    for (k, v) in headers {
        r = r.header(*k, *v);
    }
    send(&f.router(), r.body(Body::empty()).unwrap()).await
}

fn fixture() -> (Fixture, Vec<u8>) {
    let f = Fixture::new();
    let p = f.file("f.bin", LEN);
    let bytes = std::fs::read(p).unwrap();
    (f, bytes)
}

#[tokio::test]
async fn one_range_is_206_and_the_rest_follow_the_table() {
    let (f, bytes) = fixture();
    let whole = get(&f, &[]).await;
    assert_eq!(whole.status, StatusCode::OK);
    assert_eq!(whole.body, bytes);
    assert_eq!(whole.header("accept-ranges"), Some("bytes"));
    assert_eq!(whole.header("fallback-kind"), Some("file"));

    for (range, start, end) in [
        ("bytes=0-9", 0, 9),
        ("bytes=990-", 990, 999),
        ("bytes=-5", 995, 999),
        ("bytes=500-5000", 500, 999),
    ] {
        let got = get(&f, &[("range", range)]).await;
        assert_eq!(got.status, StatusCode::PARTIAL_CONTENT, "{range}");
        assert_eq!(
            got.header("content-range"),
            Some(format!("bytes {start}-{end}/{LEN}").as_str()),
            "{range}"
        );
        assert_eq!(got.body, bytes[start..=end], "{range}");
    }
    for range in ["bytes=5-2", "bytes=1000-", "bytes=+1-2", "bytes=abc"] {
        let got = get(&f, &[("range", range)]).await;
        assert_eq!(got.status, StatusCode::RANGE_NOT_SATISFIABLE, "{range}");
        assert_eq!(got.header("content-range"), Some("bytes */1000"), "{range}");
    }
    // Several ranges, or another unit: the whole file.
    for range in ["bytes=0-1,5-6", "items=0-1"] {
        let got = get(&f, &[("range", range)]).await;
        assert_eq!(got.status, StatusCode::OK, "{range}");
        assert_eq!(got.body.len() as u64, LEN, "{range}");
    }
}

#[tokio::test]
async fn if_range_gives_the_range_only_while_the_file_matches() {
    let (f, _) = fixture();
    let etag = get(&f, &[]).await.header("etag").unwrap().to_owned();
    let same = get(&f, &[("range", "bytes=0-9"), ("if-range", &etag)]).await;
    assert_eq!(same.status, StatusCode::PARTIAL_CONTENT);
    let changed = get(&f, &[("range", "bytes=0-9"), ("if-range", "\"other\"")]).await;
    assert_eq!(changed.status, StatusCode::OK);
    assert_eq!(changed.body.len() as u64, LEN);
}

#[tokio::test]
async fn preconditions_in_rfc_order() {
    let (f, _) = fixture();
    let first = get(&f, &[]).await;
    let etag = first.header("etag").unwrap().to_owned();
    let modified = first.header("last-modified").unwrap().to_owned();
    let weak = format!("W/{etag}");
    let listed = format!("\"x\", {etag}");
    let cases: [(&[(&str, &str)], StatusCode); 9] = [
        (&[("if-none-match", &etag)], StatusCode::NOT_MODIFIED),
        (&[("if-none-match", &weak)], StatusCode::NOT_MODIFIED),
        (&[("if-none-match", &listed)], StatusCode::NOT_MODIFIED),
        (&[("if-match", "\"x\"")], StatusCode::PRECONDITION_FAILED),
        (&[("if-match", "*")], StatusCode::OK),
        (&[("if-match", &weak)], StatusCode::PRECONDITION_FAILED),
        (
            &[("if-modified-since", &modified)],
            StatusCode::NOT_MODIFIED,
        ),
        (
            &[("if-unmodified-since", "Sun, 06 Nov 1994 08:49:37 GMT")],
            StatusCode::PRECONDITION_FAILED,
        ),
        // If-Match decides before If-Unmodified-Since is looked at (§13.2.2).
        (
            &[
                ("if-match", &etag),
                ("if-unmodified-since", "Sun, 06 Nov 1994 08:49:37 GMT"),
            ],
            StatusCode::OK,
        ),
    ];
    for (headers, want) in cases {
        let got = get(&f, headers).await;
        assert_eq!(got.status, want, "{headers:?}");
        if want == StatusCode::NOT_MODIFIED {
            assert!(got.body.is_empty());
            assert_eq!(got.header("etag"), Some(etag.as_str()));
        }
    }
    // `*` stands alone (RFC 9110 §13.1.2); an unquoted tag is not one.
    for bad in ["not-a-tag", "\"x\", *"] {
        let got = get(&f, &[("if-none-match", bad)]).await;
        assert_eq!(got.status, StatusCode::BAD_REQUEST, "{bad}");
    }
    // A path the token does not cover answers 403 whatever the preconditions.
    let token = download_token("alice", &["/other"]);
    let refused = send(
        &f.router(),
        req("GET", "/files/f.bin", Some(&token))
            .header("if-none-match", "*")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn head_is_get_without_the_body() {
    let (f, _) = fixture();
    let token = download_token("alice", &["/f.bin"]);
    let got = send(
        &f.router(),
        req("HEAD", "/files/f.bin", Some(&token))
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(got.status, StatusCode::OK);
    assert_eq!(got.header("content-length"), Some("1000"));
    assert!(got.body.is_empty());
}

async fn put(f: &Fixture, path: &str, headers: &[(&str, &str)], body: &'static [u8]) -> Answer {
    let token = upload_token("alice", "/");
    let mut r = req("PUT", path, Some(&token));
    for (k, v) in headers {
        r = r.header(*k, *v);
    }
    send(&f.router(), r.body(Body::from(body)).unwrap()).await
}

#[tokio::test]
async fn put_stores_whole_files_and_its_preconditions_hold_before_the_body() {
    let (f, bytes) = fixture();
    let made = put(&f, "/files/sub/new.txt", &[], b"hello").await;
    assert_eq!(made.status, StatusCode::CREATED, "{made:?}");
    // sha-256 of "hello".
    assert_eq!(
        made.header("repr-digest"),
        Some("sha-256=:LPJNul+wow4m6DsqxbninhsWHlwfp0JecwQzYpOLmCQ=:")
    );
    assert_eq!(
        std::fs::read(f.docroot().join("sub/new.txt")).unwrap(),
        b"hello"
    );
    for (headers, what) in [
        (
            &[("if-none-match", "*")][..],
            "If-None-Match: * on a file that exists",
        ),
        (&[("if-match", "\"nope\"")][..], "If-Match with another tag"),
    ] {
        let got = put(&f, "/files/f.bin", headers, b"replaced").await;
        assert_eq!(got.status, StatusCode::PRECONDITION_FAILED, "{what}");
    }
    let partial = put(
        &f,
        "/files/f.bin",
        &[("content-range", "bytes 0-1/2")],
        b"xy",
    )
    .await;
    assert_eq!(partial.status, StatusCode::BAD_REQUEST);
    let dir = put(&f, "/files/sub/", &[], b"x").await;
    assert_eq!(dir.status, StatusCode::CONFLICT);
    // Nothing of the refused PUTs reached the file.
    assert_eq!(std::fs::read(f.docroot().join("f.bin")).unwrap(), bytes);
}

/// A small file is answered from memory while unchanged; rewritten in place (same size,
/// its mtime put back, so only its ctime tells), the next GET has the new bytes.
#[tokio::test]
async fn a_small_file_rewritten_in_place_is_served_new() {
    let (f, _) = fixture();
    let path = f.docroot().join("f.bin");
    let first = get(&f, &[]).await;
    let again = get(&f, &[]).await;
    assert_eq!(first.body, again.body);
    let mtime = std::fs::metadata(&path).unwrap().modified().unwrap();
    let new_body = vec![b'n'; usize::try_from(LEN).unwrap()];
    {
        use std::io::Write as _;
        let mut w = std::fs::File::options().write(true).open(&path).unwrap();
        w.write_all(&new_body).unwrap();
        w.set_modified(mtime).unwrap();
    }
    let after = get(&f, &[]).await;
    assert_eq!(after.status, StatusCode::OK);
    assert_eq!(after.body, new_body);
}
