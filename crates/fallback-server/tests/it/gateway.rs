//! The IBM HTTP Gateway API (`/aspera/http-gwy`): discovery, CORS and download ids
//! in-process; WebSocket uploads with tokio-tungstenite on a served router, message by
//! message, for the rules the SDK's happy path never reaches (a cut in the middle of a
//! file, the order of acknowledgements, Origin, malformed input).

use std::net::SocketAddr;
use std::time::Duration;

use base64::Engine as _;
use futures_util::{SinkExt as _, StreamExt as _};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;

use crate::{Fixture, download_token, req, send, sha256_file, upload_token};
use axum::body::Body;

pub(crate) type Ws = tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>;

/// Serves `f`'s router on 127.0.0.1 (the embedding app's own `axum::serve`).
async fn serve(f: &Fixture) -> SocketAddr {
    serve_app(f.router()).await
}

/// Serves `app` on 127.0.0.1.
pub(crate) async fn serve_app(app: axum::Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

/// Opens `/aspera/http-gwy/{version}/upload`, with `origin` if given.
pub(crate) async fn connect(
    addr: SocketAddr,
    version: &str,
    origin: Option<&str>,
) -> Result<Ws, tokio_tungstenite::tungstenite::Error> {
    let mut request = format!("ws://{addr}/aspera/http-gwy/{version}/upload")
        .into_client_request()
        .unwrap();
    if let Some(o) = origin {
        request.headers_mut().insert("origin", o.parse().unwrap());
    }
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    tokio_tungstenite::client_async(request, tcp)
        .await
        .map(|(ws, _)| ws)
}

/// The next text message (acks, errors); `None` once closed, with the close frame's
/// code and reason in `closed`.
pub(crate) async fn next_text(ws: &mut Ws, closed: &mut Option<(u16, String)>) -> Option<String> {
    loop {
        let next = tokio::time::timeout(Duration::from_secs(30), ws.next()).await;
        match next.expect("a message from the server within 30 s") {
            None | Some(Err(_)) => return None,
            Some(Ok(Message::Text(t))) => return Some(t.to_string()),
            Some(Ok(Message::Close(c))) => {
                *closed = c.map(|c| (u16::from(c.code), c.reason.to_string()));
                return None;
            }
            Some(Ok(_)) => {}
        }
    }
}

pub(crate) fn spec(token: &str) -> Message {
    Message::text(
        serde_json::json!({"transfer_spec": {
            "direction": "send", "remote_host": "localhost", "remote_user": "alice",
            "token": token, "destination_root": "/in",
            "paths": [{"source": "f.bin"}]
        }})
        .to_string(),
    )
}

pub(crate) fn slice(name: &str, size: u64, slice: u64, total: u64) -> Message {
    Message::text(
        serde_json::json!({"slice_upload": {
            "name": name, "type": "application/octet-stream", "size": size,
            "slice": slice, "total_slices": total, "fileIndex": 0
        }})
        .to_string(),
    )
}

fn staged_parts(f: &Fixture) -> usize {
    std::fs::read_dir(f.docroot().join(".fallback/uploads")).map_or(0, |d| {
        d.filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().ends_with(".part"))
            .count()
    })
}

/// The acknowledgement of a file's last frame comes only once the file is whole at its
/// path; the slice messages are acknowledged with `end_slice_upload`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v2_last_ack_means_the_file_is_at_its_path() {
    let f = Fixture::new();
    let addr = serve(&f).await;
    let mut ws = connect(addr, "v2", None).await.unwrap();
    let mut closed = None;
    ws.send(spec(&upload_token("alice", "/in"))).await.unwrap();
    assert_eq!(
        next_text(&mut ws, &mut closed).await.as_deref(),
        Some("end upload")
    );
    let data: Vec<u8> = (0..150_000u32).map(|i| (i % 251) as u8).collect();
    ws.send(slice("sub/f.bin", 150_000, 0, 3)).await.unwrap();
    assert_eq!(
        next_text(&mut ws, &mut closed).await.as_deref(),
        Some("end_slice_upload")
    );
    let target = f.docroot().join("in/sub/f.bin");
    for (i, chunk) in data.chunks(64_000).enumerate() {
        ws.send(Message::binary(chunk.to_vec())).await.unwrap();
        assert_eq!(
            next_text(&mut ws, &mut closed).await.as_deref(),
            Some("end upload")
        );
        if i < 2 {
            assert!(!target.exists(), "published before its last frame");
        }
    }
    // Acknowledged: it is there, whole, now.
    assert_eq!(std::fs::read(&target).unwrap(), data);
    ws.send(slice("sub/f.bin", 150_000, 2, 3)).await.unwrap();
    assert_eq!(
        next_text(&mut ws, &mut closed).await.as_deref(),
        Some("end_slice_upload")
    );
    ws.close(None).await.unwrap();
}

/// A WebSocket cut in the middle of a file (the TCP connection dropped, or a close
/// frame) leaves nothing at the final path and nothing staged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_in_the_middle_of_a_file_leaves_nothing() {
    for with_close_frame in [false, true] {
        let f = Fixture::new();
        let addr = serve(&f).await;
        let mut ws = connect(addr, "v2", None).await.unwrap();
        let mut closed = None;
        ws.send(spec(&upload_token("alice", "/in"))).await.unwrap();
        next_text(&mut ws, &mut closed).await;
        ws.send(slice("f.bin", 1_000_000, 0, 16)).await.unwrap();
        next_text(&mut ws, &mut closed).await;
        for _ in 0..3 {
            ws.send(Message::binary(vec![7u8; 64_000])).await.unwrap();
            assert_eq!(
                next_text(&mut ws, &mut closed).await.as_deref(),
                Some("end upload")
            );
        }
        fallback_testkit::wait_until("the bytes are staged", || staged_parts(&f) == 1);
        if with_close_frame {
            ws.close(None).await.unwrap();
        }
        drop(ws);
        fallback_testkit::wait_until("the cut file's staged bytes go", || staged_parts(&f) == 0);
        assert!(!f.docroot().join("in/f.bin").exists());
    }
}

/// Wrong input gets `{"message","code"}` then a 4xxx close with a reason, and writes
/// nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protocol_errors_close_with_a_code_and_write_nothing() {
    let f = Fixture::new();
    let addr = serve(&f).await;
    let token = upload_token("alice", "/in");
    let cases: Vec<(&str, Vec<Message>, u16)> = vec![
        // A slice before the transfer spec.
        ("v2", vec![slice("f.bin", 3, 0, 1)], 4400),
        // A token for downloads.
        ("v2", vec![spec(&download_token("alice", &["/in"]))], 4403),
        // No token where one is required.
        ("v2", vec![spec("")], 4401),
        // More bytes than announced.
        (
            "v2",
            vec![
                spec(&token),
                slice("f.bin", 3, 0, 1),
                Message::binary(vec![1u8; 4]),
            ],
            4400,
        ),
        // A name that climbs out.
        ("v2", vec![spec(&token), slice("../f.bin", 3, 0, 1)], 4400),
        // Outside the token's folder.
        (
            "v2",
            vec![spec(&token), slice("x", 3, 0, 1)]
                .into_iter()
                .map(|m| match m {
                    Message::Text(t) if t.contains("transfer_spec") => {
                        Message::text(t.replace("\"/in\"", "\"/elsewhere\""))
                    }
                    m => m,
                })
                .collect(),
            4403,
        ),
        // Binary frames on v1.
        (
            "v1",
            vec![spec(&token), Message::binary(vec![1u8; 4])],
            4400,
        ),
        // Garbage.
        ("v1", vec![Message::text("{not json")], 4400),
    ];
    for (version, messages, code) in cases {
        let mut ws = connect(addr, version, None).await.unwrap();
        let mut closed = None;
        let mut texts = Vec::new();
        for m in messages {
            if ws.send(m).await.is_err() {
                break;
            }
        }
        while let Some(t) = next_text(&mut ws, &mut closed).await {
            texts.push(t);
        }
        let (got, reason) = closed
            .clone()
            .unwrap_or_else(|| panic!("no close frame: {texts:?}"));
        assert_eq!(got, code, "{texts:?} {reason}");
        assert!(!reason.is_empty());
        let error: serde_json::Value = serde_json::from_str(texts.last().unwrap()).unwrap();
        assert_eq!(
            error["code"].as_u64(),
            Some(u64::from(code - 4000)),
            "{error}"
        );
        assert!(error["message"].as_str().is_some_and(|m| !m.is_empty()));
        assert!(!f.docroot().join("in/f.bin").exists());
    }
    fallback_testkit::wait_until("nothing staged", || staged_parts(&f) == 0);
}

/// v1: base64 slices, each acknowledged; a slice out of order is refused and the
/// file dropped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v1_slices_in_order_or_refused() {
    let f = Fixture::new();
    let addr = serve(&f).await;
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    let v1 = |name: &str, size: u64, n: u64, data: &[u8]| {
        Message::text(
            serde_json::json!({"slice_upload": {"name": name, "size": size, "slice": n,
                "total_slices": 2, "fileIndex": 0, "data": b64(data)}})
            .to_string(),
        )
    };
    let mut ws = connect(addr, "v1", None).await.unwrap();
    let mut closed = None;
    ws.send(spec(&upload_token("alice", "/in"))).await.unwrap();
    next_text(&mut ws, &mut closed).await;
    ws.send(v1("a.txt", 11, 0, b"hello ")).await.unwrap();
    assert_eq!(
        next_text(&mut ws, &mut closed).await.as_deref(),
        Some("end upload")
    );
    ws.send(v1("a.txt", 11, 1, b"world")).await.unwrap();
    assert_eq!(
        next_text(&mut ws, &mut closed).await.as_deref(),
        Some("end upload")
    );
    assert_eq!(
        std::fs::read(f.docroot().join("in/a.txt")).unwrap(),
        b"hello world"
    );
    // Slice 1 before slice 0 of the next file.
    ws.send(v1("b.txt", 11, 0, b"hello ")).await.unwrap();
    next_text(&mut ws, &mut closed).await;
    ws.send(v1("b.txt", 11, 0, b"hello ")).await.unwrap();
    while next_text(&mut ws, &mut closed).await.is_some() {}
    assert_eq!(closed.map(|c| c.0), Some(4400));
    assert!(!f.docroot().join("in/b.txt").exists());
}

/// `WebSocket`s bypass CORS: the upload endpoints check `Origin` themselves (same
/// origin, or one configured).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_origin_is_checked() {
    let f = Fixture::with(fallback_server::Options {
        cors_origins: vec!["https://app.example.com".to_owned()],
        ..Default::default()
    });
    let addr = serve(&f).await;
    assert!(
        connect(addr, "v2", Some("https://evil.example.com"))
            .await
            .is_err()
    );
    assert!(
        connect(addr, "v2", Some("https://app.example.com"))
            .await
            .is_ok()
    );
    assert!(
        connect(addr, "v2", Some(&format!("http://{addr}")))
            .await
            .is_ok()
    );
    assert!(connect(addr, "v2", None).await.is_ok());
}

/// `/info` and `/v1/info` say a version the SDK reads as binary uploads, and where the
/// endpoints are under the mount point.
#[tokio::test]
async fn info_names_version_and_endpoints() {
    let f = Fixture::new();
    let app = axum::Router::new().nest("/apps/files", f.router());
    for path in [
        "/apps/files/aspera/http-gwy/v1/info",
        "/apps/files/aspera/http-gwy/info",
    ] {
        let a = send(&app, req("GET", path, None).body(Body::empty()).unwrap()).await;
        assert_eq!(a.status, 200);
        let v = a.json();
        let version: Vec<u64> = v["version"]
            .as_str()
            .unwrap()
            .split('.')
            .map(|n| n.parse().unwrap())
            .collect();
        assert!(version >= vec![2, 3, 0], "{v}");
        let endpoints = v["endpoints"].to_string();
        assert!(
            endpoints.contains("/apps/files/aspera/http-gwy/v2/upload"),
            "{v}"
        );
        assert!(
            v["download_endpoint"].to_string().contains("/v1/download"),
            "{v}"
        );
    }
}

/// A cross-origin page's preflight for the JSON POST is answered for configured
/// origins only.
#[tokio::test]
async fn cors_preflight_for_the_json_endpoints() {
    let f = Fixture::with(fallback_server::Options {
        cors_origins: vec!["https://app.example.com".to_owned()],
        ..Default::default()
    });
    let app = f.router();
    for (origin, allowed) in [
        ("https://app.example.com", true),
        ("https://evil.example", false),
    ] {
        let a = send(
            &app,
            req("OPTIONS", "/aspera/http-gwy/v1/download", None)
                .header("origin", origin)
                .header("access-control-request-method", "POST")
                .header("access-control-request-headers", "content-type")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
        assert_eq!(
            a.header("access-control-allow-origin") == Some(origin),
            allowed,
            "{origin}: {:?}",
            a.headers
        );
    }
}

/// Asks for a download id for `paths`; the answer.
pub(crate) async fn download_id(
    app: &axum::Router,
    token: &str,
    paths: &[&str],
    zip: bool,
) -> crate::Answer {
    let body = serde_json::json!({"transfer_spec": {
        "direction": "receive", "remote_host": "localhost", "token": format!("Bearer {token}"),
        "paths": paths.iter().map(|p| serde_json::json!({"source": p})).collect::<Vec<_>>(),
        "zip_required": zip,
    }});
    send(
        app,
        req("POST", "/aspera/http-gwy/v1/download", None)
            .header("content-type", "application/json")
            .body(Body::from(body.to_string()))
            .unwrap(),
    )
    .await
}

/// The download id serves what it names, with ranges; tampered, it widens nothing;
/// it expires in minutes.
#[tokio::test]
async fn download_ids_are_bound_and_short_lived() {
    let offset = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let o = std::sync::Arc::clone(&offset);
    let f = Fixture::with(fallback_server::Options {
        clock: fallback_server::Clock::from_fn(move || {
            std::time::SystemTime::now()
                + Duration::from_secs(o.load(std::sync::atomic::Ordering::Relaxed))
        }),
        ..Default::default()
    });
    f.file("out/a.bin", 100_000);
    f.file("secret/b.bin", 10);
    let app = f.router();
    let token = download_token("alice", &["/out"]);
    let a = download_id(&app, &token, &["/out/a.bin"], false).await;
    assert_eq!(a.status, 200, "{}", a.text());
    let v = a.json();
    let id = v["transfer_spec_id"].as_str().unwrap().to_owned();
    assert!(
        v["url"]
            .as_str()
            .unwrap()
            .ends_with(&format!("/v1/download/{id}"))
    );
    let url = format!("/aspera/http-gwy/v1/download/{id}");
    let got = send(
        &app,
        req("GET", &url, None)
            .header("range", "bytes=10-19")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(got.status, 206);
    assert_eq!(got.body.len(), 10);
    let whole = send(&app, req("GET", &url, None).body(Body::empty()).unwrap()).await;
    assert_eq!(whole.status, 200);
    assert_eq!(
        fallback_testkit::hex(&<sha2::Sha256 as sha2::Digest>::digest(&whole.body)),
        sha256_file(&f.docroot().join("out/a.bin"))
    );
    assert!(
        whole
            .header("content-disposition")
            .unwrap()
            .contains("a.bin")
    );
    // The URL is the capability.
    assert_eq!(whole.header("cache-control"), Some("no-store"));
    assert_eq!(whole.header("referrer-policy"), Some("no-referrer"));

    // Outside the token: refused at creation.
    let a = download_id(&app, &token, &["/secret/b.bin"], false).await;
    assert_eq!(a.status, 403, "{}", a.text());
    assert!(a.json()["message"].is_string());
    // A tampered id naming another path: refused when used.
    let json = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(&id)
        .unwrap();
    let mut cap: serde_json::Value = serde_json::from_slice(&json).unwrap();
    cap["p"] = serde_json::json!(["/secret/b.bin"]);
    let forged = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(cap.to_string());
    let got = send(
        &app,
        req(
            "GET",
            &format!("/aspera/http-gwy/v1/download/{forged}"),
            None,
        )
        .body(Body::empty())
        .unwrap(),
    )
    .await;
    assert_eq!(got.status, 403, "{}", got.text());
    // Garbage: not found.
    let got = send(
        &app,
        req("GET", "/aspera/http-gwy/v1/download/nonsense", None)
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(got.status, 404);
    // Ten minutes later the id is dead, though the token it came from lives on.
    offset.store(600, std::sync::atomic::Ordering::Relaxed);
    let got = send(&app, req("GET", &url, None).body(Body::empty()).unwrap()).await;
    assert_eq!(got.status, 401, "{}", got.text());
}

/// Several paths as one zip: every member intact (CRC checked by the reader), a
/// folder's tree inside it, names never clashing.
#[tokio::test]
async fn zip_of_files_and_a_folder() {
    let f = Fixture::new();
    f.file("out/x/a.bin", 300_000);
    f.file("out/x/deep/b.bin", 1);
    f.file("out/y/a.bin", 5);
    std::fs::create_dir_all(f.docroot().join("out/x/empty")).unwrap();
    let app = f.router();
    let token = download_token("alice", &["/out"]);
    let a = download_id(
        &app,
        &token,
        &["/out/x", "/out/x/a.bin", "/out/y/a.bin"],
        false,
    )
    .await;
    let id = a.json()["transfer_spec_id"].as_str().unwrap().to_owned();
    let got = send(
        &app,
        req("GET", &format!("/aspera/http-gwy/v1/download/{id}"), None)
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(got.status, 200);
    assert_eq!(got.header("content-type"), Some("application/zip"));
    let listing = zip_listing(&got.body);
    assert_eq!(
        listing,
        vec![
            "a.bin (2) 5",
            "a.bin 300000",
            "x/ 0",
            "x/a.bin 300000",
            "x/deep/ 0",
            "x/deep/b.bin 1",
            "x/empty/ 0"
        ],
        "{listing:?}"
    );
}

/// A v3 multipart upload whose body breaks off in the middle of a file: refused, and
/// nothing at the final path or in staging; the file before it is whole.
#[tokio::test]
async fn v3_upload_cut_mid_file_leaves_nothing() {
    let f = Fixture::new();
    let app = f.router();
    let spec = serde_json::json!({"direction": "send", "remote_host": "h",
        "destination_root": "/in", "paths": [{"source": "whole.bin"}, {"source": "cut.bin"}]});
    let head = format!(
        "--XyZ\r\nContent-Disposition: form-data; name=\"x-aspera-spec\"\r\n\r\n{spec}\r\n\
         --XyZ\r\nContent-Disposition: form-data; name=\"Content-Length\"\r\n\r\n5\r\n\
         --XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"whole.bin\"\r\n\
         Content-Type: application/octet-stream\r\n\r\nhello\r\n\
         --XyZ\r\nContent-Disposition: form-data; name=\"Content-Length\"\r\n\r\n1000000\r\n\
         --XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"cut.bin\"\r\n\
         Content-Type: application/octet-stream\r\n\r\n"
    );
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Result<bytes::Bytes, std::io::Error>>(4);
    let body = Body::from_stream(futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx)));
    let request = req(
        "POST",
        "/aspera/http-gwy/v3/upload",
        Some(&upload_token("alice", "/in")),
    )
    .header("content-type", "multipart/form-data; boundary=XyZ")
    .header("transfer-encoding", "chunked")
    .body(body)
    .unwrap();
    let answer = tokio::spawn(async move { send(&app, request).await });
    tx.send(Ok(bytes::Bytes::from(head))).await.unwrap();
    tx.send(Ok(bytes::Bytes::from(vec![1u8; 300_000])))
        .await
        .unwrap();
    // The first file is published and the second one's bytes are staged: then the
    // connection breaks.
    let docroot = f.docroot();
    tokio::task::spawn_blocking({
        let f_parts = docroot.clone();
        move || {
            fallback_testkit::wait_until("the first file, and the second one staged", || {
                f_parts.join("in/whole.bin").exists()
                    && std::fs::read_dir(f_parts.join(".fallback/uploads")).is_ok_and(|d| {
                        d.filter_map(Result::ok)
                            .any(|e| e.file_name().to_string_lossy().ends_with(".part"))
                    })
            });
        }
    })
    .await
    .unwrap();
    tx.send(Err(std::io::Error::other("connection reset")))
        .await
        .unwrap();
    drop(tx);
    let a = answer.await.unwrap();
    assert_eq!(a.status, 400, "{}", a.text());
    assert!(a.json()["message"].is_string());
    assert_eq!(
        std::fs::read(f.docroot().join("in/whole.bin")).unwrap(),
        b"hello"
    );
    assert!(!f.docroot().join("in/cut.bin").exists());
    assert_eq!(staged_parts(&f), 0);
}

/// `remote_user` must be the token's user, and the spec's direction this endpoint's.
#[tokio::test]
async fn spec_user_and_direction_are_checked() {
    let f = Fixture::new();
    f.file("out/a.bin", 10);
    let app = f.router();
    let token = download_token("alice", &["/out"]);
    for (extra, status) in [
        (serde_json::json!({"remote_user": "bob"}), 403),
        (serde_json::json!({"direction": "send"}), 400),
        (serde_json::json!({"remote_user": "alice"}), 200),
    ] {
        let mut spec = serde_json::json!({"direction": "receive", "remote_host": "h",
            "token": token, "paths": [{"source": "/out/a.bin"}]});
        for (k, v) in extra.as_object().unwrap() {
            spec[k] = v.clone();
        }
        let a = send(
            &app,
            req("POST", "/aspera/http-gwy/v1/download", None)
                .header("content-type", "application/json")
                .body(Body::from(
                    serde_json::json!({"transfer_spec": spec}).to_string(),
                ))
                .unwrap(),
        )
        .await;
        assert_eq!(a.status, status, "{extra}: {}", a.text());
    }
}

/// A file that shrinks while it is being zipped: the body ends in an error, never a
/// zip that looks whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_changing_under_a_zip_cuts_the_body() {
    use http_body_util::BodyExt as _;
    use tower::ServiceExt as _;
    let f = Fixture::new();
    let path = f.file("out/big.bin", 24 << 20);
    let app = f.router();
    let token = download_token("alice", &["/out"]);
    let a = download_id(&app, &token, &["/out/big.bin"], true).await;
    let id = a.json()["transfer_spec_id"].as_str().unwrap().to_owned();
    let resp = app
        .clone()
        .oneshot(
            req("GET", &format!("/aspera/http-gwy/v1/download/{id}"), None)
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let mut body = resp.into_body();
    // The first block is out: the file is cut short under the zip writer.
    let first = body.frame().await.unwrap().unwrap();
    assert!(first.data_ref().is_some_and(|d| !d.is_empty()));
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(1 << 20)
        .unwrap();
    let mut failed = false;
    while let Some(frame) = body.frame().await {
        if frame.is_err() {
            failed = true;
            break;
        }
    }
    assert!(failed, "the zip ended as if whole");
}

/// The members of the zip `bytes` as `name size`, sorted, read by Python's zipfile, which
/// checks every member's CRC first.
pub(crate) fn zip_listing(bytes: &[u8]) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("got.zip");
    std::fs::write(&path, bytes).unwrap();
    let out = std::process::Command::new("python3")
        .args([
            "-c",
            "import sys, zipfile; z = zipfile.ZipFile(sys.argv[1]); assert z.testzip() is None; \
             print('\\n'.join(sorted(i.filename + ' ' + str(i.file_size) for i in z.infolist())))",
        ])
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "not a valid zip: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}
