//! The tus 1.0.0 state machine, one request at a time: creation, offsets, checksums,
//! completion, termination, and the refusals of each step.

use axum::Router;
use axum::body::Body;
use axum::http::StatusCode;
use base64::Engine as _;

use crate::{Answer, Fixture, req, send, upload_token};

fn b64(s: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

async fn create(app: &Router, token: &str, name: &str, len: u64) -> Answer {
    send(
        app,
        req("POST", "/uploads", Some(token))
            .header("tus-resumable", "1.0.0")
            .header("upload-length", len.to_string())
            .header(
                "upload-metadata",
                format!("filename {}", b64(name.as_bytes())),
            )
            .body(Body::empty())
            .unwrap(),
    )
    .await
}

async fn patch(app: &Router, url: &str, token: &str, offset: u64, body: &[u8]) -> Answer {
    send(
        app,
        req("PATCH", url, Some(token))
            .header("tus-resumable", "1.0.0")
            .header("content-type", "application/offset+octet-stream")
            .header("upload-offset", offset.to_string())
            .body(Body::from(body.to_vec()))
            .unwrap(),
    )
    .await
}

async fn head(app: &Router, url: &str, token: &str) -> Answer {
    send(
        app,
        req("HEAD", url, Some(token))
            .header("tus-resumable", "1.0.0")
            .body(Body::empty())
            .unwrap(),
    )
    .await
}

#[tokio::test]
async fn discovery_names_version_extensions_and_limits() {
    let f = Fixture::new();
    let got = send(
        &f.router(),
        req("OPTIONS", "/uploads", None)
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(got.status, StatusCode::NO_CONTENT);
    assert_eq!(got.header("tus-version"), Some("1.0.0"));
    let ext = got.header("tus-extension").unwrap();
    for e in [
        "creation",
        "creation-with-upload",
        "checksum",
        "termination",
        "expiration",
        "concatenation",
    ] {
        assert!(ext.split(',').any(|x| x == e), "{ext}");
    }
    assert_eq!(
        got.header("tus-max-size"),
        Some((1u64 << 40).to_string().as_str())
    );
    assert!(
        got.header("tus-checksum-algorithm")
            .unwrap()
            .contains("sha256")
    );
}

#[tokio::test]
async fn an_upload_from_creation_to_its_file() {
    let f = Fixture::new();
    let app = f.router();
    let token = upload_token("alice", "/in");
    let made = create(&app, &token, "notes.txt", 11).await;
    assert_eq!(made.status, StatusCode::CREATED, "{made:?}");
    assert_eq!(made.header("upload-offset"), Some("0"));
    assert!(made.header("upload-expires").is_some());
    let url = made.header("location").unwrap().to_owned();
    assert!(url.starts_with("/uploads/"), "{url}");

    let at0 = head(&app, &url, &token).await;
    assert_eq!(at0.status, StatusCode::OK);
    assert_eq!(at0.header("upload-offset"), Some("0"));
    assert_eq!(at0.header("upload-length"), Some("11"));
    assert_eq!(at0.header("cache-control"), Some("no-store"));

    // Refusals leave the offset where it is.
    let wrong_offset = patch(&app, &url, &token, 3, b"lo").await;
    assert_eq!(wrong_offset.status, StatusCode::CONFLICT);
    assert_eq!(wrong_offset.header("upload-offset"), Some("0"));
    let wrong_type = send(
        &app,
        req("PATCH", &url, Some(&token))
            .header("tus-resumable", "1.0.0")
            .header("content-type", "text/plain")
            .header("upload-offset", "0")
            .body(Body::from("hello"))
            .unwrap(),
    )
    .await;
    assert_eq!(wrong_type.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let no_version = send(
        &app,
        req("PATCH", &url, Some(&token))
            .header("content-type", "application/offset+octet-stream")
            .header("upload-offset", "0")
            .body(Body::from("hello"))
            .unwrap(),
    )
    .await;
    assert_eq!(no_version.status, StatusCode::PRECONDITION_FAILED);
    assert_eq!(no_version.header("tus-version"), Some("1.0.0"));
    let bad_sum = send(
        &app,
        req("PATCH", &url, Some(&token))
            .header("tus-resumable", "1.0.0")
            .header("content-type", "application/offset+octet-stream")
            .header("upload-offset", "0")
            .header("upload-checksum", format!("sha256 {}", b64(&[0u8; 32])))
            .body(Body::from("hello"))
            .unwrap(),
    )
    .await;
    assert_eq!(bad_sum.status.as_u16(), 460);
    assert_eq!(
        head(&app, &url, &token).await.header("upload-offset"),
        Some("0")
    );
    assert!(!f.docroot().join("in/notes.txt").exists());

    let first = patch(&app, &url, &token, 0, b"hello").await;
    assert_eq!(first.status, StatusCode::NO_CONTENT);
    assert_eq!(first.header("upload-offset"), Some("5"));
    assert!(
        !f.docroot().join("in/notes.txt").exists(),
        "visible before complete"
    );
    let last = patch(&app, &url, &token, 5, b" world").await;
    assert_eq!(last.status, StatusCode::NO_CONTENT);
    assert_eq!(last.header("upload-offset"), Some("11"));
    assert_eq!(
        std::fs::read(f.docroot().join("in/notes.txt")).unwrap(),
        b"hello world"
    );
    // Finished: HEAD says so; the last PATCH again (its answer lost) is acknowledged;
    // more bytes are refused, even without a Content-Length (as HTTP/2 may send them),
    // never acknowledged and dropped.
    let done = head(&app, &url, &token).await;
    assert_eq!(done.status, StatusCode::OK);
    assert_eq!(done.header("upload-offset"), Some("11"));
    let again = patch(&app, &url, &token, 5, b" world").await;
    assert_eq!(again.status, StatusCode::CONFLICT, "{again:?}");
    assert_eq!(again.header("upload-offset"), Some("11"));
    let empty = patch(&app, &url, &token, 11, b"").await;
    assert_eq!(empty.status, StatusCode::NO_CONTENT);
    let more = patch(&app, &url, &token, 11, b"!").await;
    assert_eq!(more.status, StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test]
async fn creation_with_upload_and_a_whole_file_digest() {
    let f = Fixture::new();
    let app = f.router();
    let token = upload_token("alice", "/");
    let made = create_digested(&app, &token, "abc.txt", &hex_sha256(b"abc"), b"abc").await;
    assert_eq!(made.status, StatusCode::CREATED, "{made:?}");
    assert_eq!(made.header("upload-offset"), Some("3"));
    assert_eq!(std::fs::read(f.docroot().join("abc.txt")).unwrap(), b"abc");

    // A whole-file digest that does not match: 460 at the last byte, no file.
    let made = create_digested(&app, &token, "bad.txt", &hex_sha256(b"abd"), b"").await;
    let url = made.header("location").unwrap().to_owned();
    let last = patch(&app, &url, &token, 0, b"abc").await;
    assert_eq!(last.status.as_u16(), 460, "{last:?}");
    assert!(!f.docroot().join("bad.txt").exists());
}

/// A creation-with-upload whose body is only part of the file is answered with its
/// URL and what was kept (the creation is then made durable), and resumes there; one
/// whose chunk checksum fails keeps nothing and publishes nothing.
#[tokio::test]
async fn creation_with_part_of_the_file_resumes_from_its_answer() {
    let f = Fixture::new();
    let app = f.router();
    let token = upload_token("alice", "/");
    let made = create_digested(&app, &token, "part.txt", &hex_sha256(b"abc"), b"ab").await;
    assert_eq!(made.status, StatusCode::CREATED, "{made:?}");
    assert_eq!(made.header("upload-offset"), Some("2"));
    assert!(!f.docroot().join("part.txt").exists());
    let url = made.header("location").unwrap().to_owned();
    let asked = head(&app, &url, &token).await;
    assert_eq!(asked.header("upload-offset"), Some("2"), "{asked:?}");
    let last = patch(&app, &url, &token, 2, b"c").await;
    assert_eq!(last.status, StatusCode::NO_CONTENT, "{last:?}");
    assert_eq!(std::fs::read(f.docroot().join("part.txt")).unwrap(), b"abc");

    let sha1_of_other = "sha1 ".to_owned() + &b64(&[0u8; 20]);
    let r = req("POST", "/uploads", Some(&token))
        .header("tus-resumable", "1.0.0")
        .header("upload-length", "3")
        .header("upload-metadata", format!("filename {}", b64(b"sum.txt")))
        .header("upload-checksum", sha1_of_other)
        .header("content-type", "application/offset+octet-stream");
    let refused = send(&app, r.body(Body::from(&b"abc"[..])).unwrap()).await;
    assert_eq!(refused.status.as_u16(), 460, "{refused:?}");
    assert!(!f.docroot().join("sum.txt").exists());
    // Never answered with its URL: removed, not left in progress until it expires.
    let in_progress = std::fs::read_dir(f.docroot().join(".fallback/uploads"))
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".json"))
        .count();
    assert_eq!(in_progress, 0);
}

/// A PATCH with extra headers.
async fn patch_with(
    app: &Router,
    url: &str,
    token: &str,
    offset: u64,
    body: &[u8],
    extra: &[(&str, String)],
) -> Answer {
    let mut r = req("PATCH", url, Some(token))
        .header("tus-resumable", "1.0.0")
        .header("content-type", "application/offset+octet-stream")
        .header("upload-offset", offset.to_string());
    for (k, v) in extra {
        r = r.header(*k, v);
    }
    send(app, r.body(Body::from(body.to_vec())).unwrap()).await
}

fn rfc9530(b: &[u8]) -> String {
    use sha2::Digest as _;
    format!("sha-256=:{}:", b64(&sha2::Sha256::digest(b)))
}

/// RFC 9530 digests: `Repr-Digest` on the PATCH that completes an upload is the whole
/// file's digest (a client that hashes while sending knows it only then): a wrong one
/// removes the upload and publishes nothing; on a PATCH that does not complete, it is
/// not checked. `Content-Digest` on a PATCH is that chunk's digest, like
/// Upload-Checksum. On a creation, `Repr-Digest` is the expected digest, kept.
#[tokio::test]
async fn rfc_9530_digests_on_patch_and_creation() {
    let f = Fixture::new();
    let app = f.router();
    let token = upload_token("alice", "/");
    let repr = |b: &[u8]| vec![("repr-digest", rfc9530(b))];

    // Right digest on the last PATCH (a wrong one on an earlier PATCH is not checked).
    let url = create(&app, &token, "good.bin", 6)
        .await
        .header("location")
        .unwrap()
        .to_owned();
    let first = patch_with(&app, &url, &token, 0, b"abc", &repr(b"nonsense")).await;
    assert_eq!(first.status, StatusCode::NO_CONTENT, "{first:?}");
    let last = patch_with(&app, &url, &token, 3, b"def", &repr(b"abcdef")).await;
    assert_eq!(last.status, StatusCode::NO_CONTENT, "{last:?}");
    assert_eq!(
        last.header("repr-digest"),
        Some(rfc9530(b"abcdef").as_str())
    );
    assert_eq!(
        std::fs::read(f.docroot().join("good.bin")).unwrap(),
        b"abcdef"
    );

    // Wrong digest on the last PATCH: 460, the upload is gone, no file.
    let url = create(&app, &token, "bad.bin", 6)
        .await
        .header("location")
        .unwrap()
        .to_owned();
    assert_eq!(
        patch(&app, &url, &token, 0, b"abc").await.status,
        StatusCode::NO_CONTENT
    );
    let last = patch_with(&app, &url, &token, 3, b"deX", &repr(b"abcdef")).await;
    assert_eq!(last.status.as_u16(), 460, "{last:?}");
    assert!(!f.docroot().join("bad.bin").exists());
    assert_eq!(head(&app, &url, &token).await.status, StatusCode::NOT_FOUND);

    // Content-Digest is the chunk's: a wrong one keeps nothing of the chunk.
    let url = create(&app, &token, "chunk.bin", 6)
        .await
        .header("location")
        .unwrap()
        .to_owned();
    let bad = patch_with(
        &app,
        &url,
        &token,
        0,
        b"abc",
        &[("content-digest", rfc9530(b"abd"))],
    )
    .await;
    assert_eq!(bad.status.as_u16(), 460, "{bad:?}");
    assert_eq!(
        head(&app, &url, &token).await.header("upload-offset"),
        Some("0")
    );
    let good = patch_with(
        &app,
        &url,
        &token,
        0,
        b"abc",
        &[("content-digest", rfc9530(b"abc"))],
    )
    .await;
    assert_eq!(good.header("upload-offset"), Some("3"), "{good:?}");
    let both = patch_with(
        &app,
        &url,
        &token,
        3,
        b"def",
        &[
            ("content-digest", rfc9530(b"def")),
            ("upload-checksum", format!("sha256 {}", b64(&[0u8; 32]))),
        ],
    )
    .await;
    assert_eq!(both.status, StatusCode::BAD_REQUEST, "{both:?}");

    // Malformed digests and content codings are refused before any byte is kept.
    for (k, v, status) in [
        ("repr-digest", "sha-256=abc".to_owned(), 400),
        ("content-digest", "sha-256=:AAAA:".to_owned(), 400),
        ("content-encoding", "gzip".to_owned(), 415),
    ] {
        let got = patch_with(&app, &url, &token, 3, b"def", &[(k, v.clone())]).await;
        assert_eq!(got.status.as_u16(), status, "{k}: {v}: {got:?}");
        assert_eq!(
            head(&app, &url, &token).await.header("upload-offset"),
            Some("3")
        );
    }

    // Repr-Digest on the creation is the expected digest of the whole upload.
    let made = send(
        &app,
        req("POST", "/uploads", Some(&token))
            .header("tus-resumable", "1.0.0")
            .header("upload-length", "3")
            .header(
                "upload-metadata",
                format!("filename {}", b64(b"created.bin")),
            )
            .header("repr-digest", rfc9530(b"xyz"))
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    let url = made.header("location").unwrap().to_owned();
    assert_eq!(
        patch(&app, &url, &token, 0, b"xyZ").await.status.as_u16(),
        460
    );
    assert!(!f.docroot().join("created.bin").exists());
}

/// A PUT's `Repr-Digest` or `Content-Digest` is checked before the file appears; a body
/// with a content coding is refused (it would be stored coded).
#[tokio::test]
async fn put_checks_rfc_9530_digests() {
    let f = Fixture::new();
    let app = f.router();
    let token = upload_token("alice", "/");
    let put = |name: &str, body: &'static [u8], extra: Vec<(&'static str, String)>| {
        let mut r = req("PUT", &format!("/files/{name}"), Some(&token));
        for (k, v) in extra {
            r = r.header(k, v);
        }
        send(&app, r.body(Body::from(body)).unwrap())
    };
    for h in ["repr-digest", "content-digest"] {
        let got = put("wrong.bin", b"abc", vec![(h, rfc9530(b"abd"))]).await;
        assert_eq!(got.status.as_u16(), 460, "{h}: {got:?}");
        assert!(!f.docroot().join("wrong.bin").exists());
        let got = put("right.bin", b"abc", vec![(h, rfc9530(b"abc"))]).await;
        assert_eq!(got.status, StatusCode::CREATED, "{h}: {got:?}");
    }
    let got = put(
        "both.bin",
        b"abc",
        vec![
            ("repr-digest", rfc9530(b"abc")),
            ("content-digest", rfc9530(b"abd")),
        ],
    )
    .await;
    assert_eq!(got.status, StatusCode::BAD_REQUEST, "{got:?}");
    let got = put(
        "gz.bin",
        b"abc",
        vec![("content-encoding", "gzip".to_owned())],
    )
    .await;
    assert_eq!(got.status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{got:?}");
    assert!(!f.docroot().join("gz.bin").exists() && !f.docroot().join("both.bin").exists());
}

/// `POST /uploads` of a 3-byte file named `name` with metadata `sha256`, and `first`
/// as the first chunk (creation-with-upload) when not empty.
async fn create_digested(
    app: &Router,
    token: &str,
    name: &str,
    sha256: &str,
    first: &'static [u8],
) -> Answer {
    let mut r = req("POST", "/uploads", Some(token))
        .header("tus-resumable", "1.0.0")
        .header("upload-length", "3")
        .header(
            "upload-metadata",
            format!(
                "filename {},sha256 {}",
                b64(name.as_bytes()),
                b64(sha256.as_bytes())
            ),
        );
    if !first.is_empty() {
        r = r.header("content-type", "application/offset+octet-stream");
    }
    send(app, r.body(Body::from(first)).unwrap()).await
}

fn hex_sha256(b: &[u8]) -> String {
    use sha2::Digest as _;
    fallback_testkit::hex(&sha2::Sha256::digest(b))
}

#[tokio::test]
async fn creation_refusals() {
    let f = Fixture::with(fallback_server::Options {
        max_upload_size: 1000,
        ..Default::default()
    });
    let app = f.router();
    let token = upload_token("alice", "/in");
    let too_big = create(&app, &token, "big.bin", 1001).await;
    assert_eq!(too_big.status, StatusCode::PAYLOAD_TOO_LARGE);
    let no_length = send(
        &app,
        req("POST", "/uploads", Some(&token))
            .header("tus-resumable", "1.0.0")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(no_length.status, StatusCode::BAD_REQUEST);
    let outside = send(
        &app,
        req("POST", "/uploads", Some(&token))
            .header("tus-resumable", "1.0.0")
            .header("upload-length", "1")
            .header("upload-metadata", format!("dest {}", b64(b"/elsewhere/x")))
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(outside.status, StatusCode::FORBIDDEN);
    let download = crate::download_token("alice", &["/in"]);
    assert_eq!(
        create(&app, &download, "x", 1).await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        create(&app, "nope", "x", 1).await.status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn termination_and_other_users_uploads() {
    let f = Fixture::new();
    let app = f.router();
    let alice = upload_token("alice", "/");
    let url = create(&app, &alice, "t.bin", 10)
        .await
        .header("location")
        .unwrap()
        .to_owned();
    assert_eq!(
        patch(&app, &url, &alice, 0, b"12345").await.status,
        StatusCode::NO_CONTENT
    );
    // Another user cannot see, write or end it.
    let bob = upload_token("bob", "/");
    assert_eq!(head(&app, &url, &bob).await.status, StatusCode::NOT_FOUND);
    assert_eq!(
        patch(&app, &url, &bob, 5, b"x").await.status,
        StatusCode::NOT_FOUND
    );
    let del = |token: String| {
        let (app, url) = (app.clone(), url.clone());
        async move {
            send(
                &app,
                req("DELETE", &url, Some(&token))
                    .header("tus-resumable", "1.0.0")
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .status
        }
    };
    assert_eq!(del(bob.clone()).await, StatusCode::NOT_FOUND);
    assert_eq!(del(alice.clone()).await, StatusCode::NO_CONTENT);
    assert_eq!(head(&app, &url, &alice).await.status, StatusCode::NOT_FOUND);
    assert!(!f.docroot().join("t.bin").exists());
    // An id that is not one.
    assert_eq!(
        head(&app, "/uploads/not-an-id", &alice).await.status,
        StatusCode::NOT_FOUND
    );
}

/// The service's clock is injected: the token expires between two chunks of one PATCH
/// because the clock jumps when the server asks for the second chunk (an event, not a
/// wait). The bytes are kept, the file is not completed; a valid token completes it.
#[tokio::test]
async fn a_token_that_expires_while_its_body_arrives_completes_nothing() {
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, SystemTime};

    let now = Arc::new(Mutex::new(SystemTime::now()));
    let t = Arc::clone(&now);
    let f = Fixture::with(fallback_server::Options {
        clock: fallback_server::Clock::from_fn(move || *t.lock().unwrap()),
        ..Default::default()
    });
    let app = f.router();
    let issue = |at: SystemTime| {
        fallback_token::Token::upload("alice", "/in")
            .issued_at(at)
            .valid_for(Duration::from_secs(60))
            .issue(&fallback_testkit::key())
            .unwrap()
    };
    let token = issue(*now.lock().unwrap());
    let url = create(&app, &token, "late.bin", 8)
        .await
        .header("location")
        .unwrap()
        .to_owned();
    let jump = Arc::clone(&now);
    let chunks = futures_util::stream::unfold(0, move |n| {
        let jump = Arc::clone(&jump);
        async move {
            match n {
                0 => Some((
                    Ok::<_, std::io::Error>(bytes::Bytes::from_static(b"1234")),
                    1,
                )),
                1 => {
                    // Two hours pass: past the token's end and the 60 s skew.
                    *jump.lock().unwrap() += Duration::from_secs(7200);
                    Some((Ok(bytes::Bytes::from_static(b"5678")), 2))
                }
                _ => None,
            }
        }
    });
    let got = send(
        &app,
        req("PATCH", &url, Some(&token))
            .header("tus-resumable", "1.0.0")
            .header("content-type", "application/offset+octet-stream")
            .header("upload-offset", "0")
            .body(Body::from_stream(chunks))
            .unwrap(),
    )
    .await;
    assert_eq!(got.status, StatusCode::UNAUTHORIZED, "{got:?}");
    assert!(!f.docroot().join("in/late.bin").exists());
    // The old token is refused now; a fresh one finds every byte and completes.
    assert_eq!(
        head(&app, &url, &token).await.status,
        StatusCode::UNAUTHORIZED
    );
    let fresh = issue(*now.lock().unwrap());
    let done = head(&app, &url, &fresh).await;
    assert_eq!(done.header("upload-offset"), Some("8"), "{done:?}");
    assert_eq!(
        std::fs::read(f.docroot().join("in/late.bin")).unwrap(),
        b"12345678"
    );
}
