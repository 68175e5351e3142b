//! The same routes on an `s3://` docroot, against moto's S3 server on loopback: every
//! status and header rule that holds on a disk holds on a bucket, and the bytes of an
//! upload appear at their key only whole and verified.

use axum::Router;
use axum::body::Body;
use axum::http::StatusCode;
use base64::Engine as _;
use fallback_server::{AppState, Options};
use fallback_testkit::Moto;
use sha2::Digest as _;

use crate::{Answer, download_token, req, send, upload_token};

/// A service whose default docroot is `bucket/data` on a fresh moto server.
struct Bucketed {
    moto: Moto,
    state: AppState,
}

impl Bucketed {
    fn new() -> Bucketed {
        let moto = Moto::start();
        moto.create_bucket("docs");
        let uri = format!(
            "s3://test:secret@{}/docs/data?allow-http=true",
            moto.endpoint().trim_start_matches("http://")
        );
        let conf = fallback_testkit::config(std::path::Path::new(&uri));
        let state = AppState::new(conf, Options::default()).unwrap();
        Bucketed { moto, state }
    }

    fn router(&self) -> Router {
        fallback_server::router(self.state.clone())
    }

    /// The object at `key` of the bucket, straight from S3 (not through the service).
    async fn object(&self, key: &str) -> Option<Vec<u8>> {
        use futures_util::TryStreamExt as _;
        let whole = fallback_s3::Bucket::connect(&fallback_s3::Location {
            endpoint: Some(self.moto.endpoint()),
            bucket: "docs".to_owned(),
            prefix: String::new(),
            credentials: Some(("test".to_owned(), "secret".to_owned())),
            allow_http: true,
            storage_class: None,
            server_side_encryption: None,
            shown: "the test bucket".to_owned(),
        })
        .unwrap();
        let rel = fallback_engine::RelPath::parse(key).unwrap();
        let e = whole.stat(&rel).await.ok()?;
        assert_eq!(e.kind, fallback_engine::EntryKind::File, "{key}");
        let chunks: Vec<bytes::Bytes> = whole
            .read(&rel, 0..e.size, None)
            .await
            .unwrap()
            .try_collect()
            .await
            .unwrap();
        Some(chunks.concat())
    }
}

fn data(n: usize, seed: u8) -> Vec<u8> {
    (0..n)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

fn sha_b64(b: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(b))
}

async fn put(app: &Router, path: &str, token: &str, body: &[u8]) -> Answer {
    send(
        app,
        req("PUT", &format!("/files/{path}"), Some(token))
            .header("content-length", body.len().to_string())
            .body(Body::from(body.to_vec()))
            .unwrap(),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bucket_serves_puts_downloads_ranges_and_listings_like_a_disk() {
    let b = Bucketed::new();
    let app = b.router();
    let up = upload_token("alice", "/in");
    let file = data(300_000, 1);
    let got = put(&app, "in/a%20b.bin", &up, &file).await;
    assert_eq!(got.status, StatusCode::CREATED, "{}", got.text());
    assert_eq!(
        got.header("repr-digest").unwrap(),
        format!("sha-256=:{}:", sha_b64(&file))
    );
    assert_eq!(b.object("data/in/a b.bin").await.unwrap(), file);
    put(&app, "in/sub/c.txt", &up, b"hello\n").await;

    let down = download_token("alice", &["/in"]);
    let whole = send(
        &app,
        req("GET", "/files/in/a%20b.bin", Some(&down))
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(whole.status, StatusCode::OK);
    assert_eq!(whole.body, file);
    assert_eq!(whole.header("content-length"), Some("300000"));
    assert_eq!(whole.header("accept-ranges"), Some("bytes"));
    assert_eq!(
        whole.header("repr-digest").unwrap(),
        format!("sha-256=:{}:", sha_b64(&file)),
        "the digest recorded at upload"
    );
    let etag = whole.header("etag").unwrap().to_owned();
    assert!(etag.starts_with('"'), "{etag}");
    assert!(whole.header("last-modified").is_some());

    let part = send(
        &app,
        req("GET", "/files/in/a%20b.bin", Some(&down))
            .header("range", "bytes=1000-1999")
            .header("if-range", &etag)
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(part.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(part.body, file[1000..2000]);
    assert_eq!(part.header("content-range"), Some("bytes 1000-1999/300000"));

    let stale = send(
        &app,
        req("GET", "/files/in/a%20b.bin", Some(&down))
            .header("range", "bytes=0-9")
            .header("if-range", "\"other\"")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(stale.status, StatusCode::OK, "a changed file comes whole");
    let past = send(
        &app,
        req("GET", "/files/in/a%20b.bin", Some(&down))
            .header("range", "bytes=300000-")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(past.status, StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(past.header("content-range"), Some("bytes */300000"));
    let same = send(
        &app,
        req("GET", "/files/in/a%20b.bin", Some(&down))
            .header("if-none-match", &etag)
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(same.status, StatusCode::NOT_MODIFIED);
    let head = send(
        &app,
        req("HEAD", "/files/in/sub/c.txt", Some(&down))
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(head.status, StatusCode::OK);
    assert_eq!(head.header("content-length"), Some("6"));
    assert!(head.body.is_empty());

    let manifest = send(
        &app,
        req("GET", "/files/in/", Some(&down))
            .header("accept", "application/json")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(manifest.status, StatusCode::OK, "{}", manifest.text());
    let m = manifest.json();
    let paths: Vec<&str> = m["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["path"].as_str().unwrap())
        .collect();
    assert_eq!(paths, ["a b.bin", "sub", "sub/c.txt"]);
    assert_eq!(m["files"], 2);
    assert_eq!(m["bytes"], 300_006);
    let page = send(
        &app,
        req("GET", "/files/in/", Some(&down))
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        page.text().contains("href=\"a%20b.bin\""),
        "{}",
        page.text()
    );
    assert!(page.text().contains("href=\"sub/\""), "{}", page.text());
    let redirect = send(
        &app,
        req("GET", "/files/in/sub", Some(&down))
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(redirect.status, StatusCode::MOVED_PERMANENTLY);

    // Refusals: outside the token, missing, the reserved area, the wrong direction.
    put(&app, "out/x.txt", &upload_token("alice", "/out"), b"x").await;
    let outside = send(
        &app,
        req("GET", "/files/out/x.txt", Some(&down))
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(outside.status, StatusCode::FORBIDDEN);
    let missing = send(
        &app,
        req("GET", "/files/in/nothing", Some(&down))
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    let root = download_token("alice", &["/"]);
    let reserved = send(
        &app,
        req("GET", "/files/.fallback/", Some(&root))
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(
        reserved.status,
        StatusCode::BAD_REQUEST,
        "{}",
        reserved.text()
    );
    let listed = send(
        &app,
        req("GET", "/files/", Some(&root))
            .header("accept", "application/json")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert!(!listed.text().contains(".fallback"), "{}", listed.text());
    let wrong = put(&app, "in/y.txt", &down, b"y").await;
    assert_eq!(wrong.status, StatusCode::FORBIDDEN);
    assert!(b.object("data/in/y.txt").await.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_put_to_a_bucket_is_verified_and_respects_if_none_match() {
    let b = Bucketed::new();
    let app = b.router();
    let up = upload_token("alice", "/in");
    let file = data(70_000, 2);
    let bad = send(
        &app,
        req("PUT", "/files/in/f.bin", Some(&up))
            .header("repr-digest", format!("sha-256=:{}:", sha_b64(b"not it")))
            .body(Body::from(file.clone()))
            .unwrap(),
    )
    .await;
    assert_eq!(bad.status.as_u16(), 460, "{}", bad.text());
    assert!(
        b.object("data/in/f.bin").await.is_none(),
        "nothing at the key"
    );
    let good = send(
        &app,
        req("PUT", "/files/in/f.bin", Some(&up))
            .header("repr-digest", format!("sha-256=:{}:", sha_b64(&file)))
            .body(Body::from(file.clone()))
            .unwrap(),
    )
    .await;
    assert_eq!(good.status, StatusCode::CREATED, "{}", good.text());
    let again = send(
        &app,
        req("PUT", "/files/in/f.bin", Some(&up))
            .header("if-none-match", "*")
            .body(Body::from(b"other".to_vec()))
            .unwrap(),
    )
    .await;
    assert_eq!(again.status, StatusCode::PRECONDITION_FAILED);
    assert_eq!(b.object("data/in/f.bin").await.unwrap(), file);
    // A body that breaks off leaves nothing: a PUT never resumes.
    let broken = futures_util::stream::iter(vec![
        Ok::<_, std::io::Error>(bytes::Bytes::from(vec![1u8; 1000])),
        Err(std::io::Error::other("cut")),
    ]);
    let cut = send(
        &app,
        req("PUT", "/files/in/cut.bin", Some(&up))
            .body(Body::from_stream(broken))
            .unwrap(),
    )
    .await;
    assert_eq!(cut.status, StatusCode::BAD_REQUEST, "{}", cut.text());
    assert!(b.object("data/in/cut.bin").await.is_none());
}

fn b64(s: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

async fn tus(
    app: &Router,
    method: &str,
    url: &str,
    token: &str,
    headers: &[(&str, String)],
    body: Body,
) -> Answer {
    let mut r = req(method, url, Some(token)).header("tus-resumable", "1.0.0");
    for (k, v) in headers {
        r = r.header(*k, v);
    }
    send(app, r.body(body).unwrap()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tus_on_a_bucket_resumes_after_a_cut_and_publishes_only_when_whole() {
    let b = Bucketed::new();
    let app = b.router();
    let up = upload_token("alice", "/in");
    // Larger than a part (8 MiB), so parts and a tail are both exercised.
    let file = data(19 << 20, 3);
    let created = tus(
        &app,
        "POST",
        "/uploads",
        &up,
        &[
            ("upload-length", file.len().to_string()),
            ("upload-metadata", format!("filename {}", b64(b"big.bin"))),
        ],
        Body::empty(),
    )
    .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text());
    let url = created.header("location").unwrap().to_owned();
    assert!(created.header("upload-expires").is_some());
    let patch_headers = |offset: usize| {
        vec![
            ("content-type", "application/offset+octet-stream".to_owned()),
            ("upload-offset", offset.to_string()),
        ]
    };
    // A PATCH whose body breaks off after 10 MiB: what arrived is kept.
    let cut_at = 10 << 20;
    let first = futures_util::stream::iter(vec![
        Ok::<_, std::io::Error>(bytes::Bytes::from(file[..cut_at].to_vec())),
        Err(std::io::Error::other("connection reset")),
    ]);
    let cut = tus(
        &app,
        "PATCH",
        &url,
        &up,
        &patch_headers(0),
        Body::from_stream(first),
    )
    .await;
    assert_eq!(cut.status, StatusCode::BAD_REQUEST, "{}", cut.text());
    let asked = tus(&app, "HEAD", &url, &up, &[], Body::empty()).await;
    assert_eq!(asked.status, StatusCode::OK);
    assert_eq!(
        asked.header("upload-offset"),
        Some(cut_at.to_string().as_str())
    );
    assert_eq!(
        asked.header("upload-length"),
        Some(file.len().to_string().as_str())
    );
    assert!(
        b.object("data/in/big.bin").await.is_none(),
        "nothing at the key yet"
    );

    let wrong = tus(
        &app,
        "PATCH",
        &url,
        &up,
        &patch_headers(5),
        Body::from(vec![0u8; 3]),
    )
    .await;
    assert_eq!(wrong.status, StatusCode::CONFLICT);
    assert_eq!(
        wrong.header("upload-offset"),
        Some(cut_at.to_string().as_str())
    );
    let mut bad_sum = patch_headers(cut_at);
    bad_sum.push(("upload-checksum", format!("sha256 {}", sha_b64(b"x"))));
    let refused = tus(
        &app,
        "PATCH",
        &url,
        &up,
        &bad_sum,
        Body::from(file[cut_at..cut_at + 1000].to_vec()),
    )
    .await;
    assert_eq!(refused.status.as_u16(), 460);
    let asked = tus(&app, "HEAD", &url, &up, &[], Body::empty()).await;
    assert_eq!(
        asked.header("upload-offset"),
        Some(cut_at.to_string().as_str()),
        "a failed chunk moves nothing"
    );
    let other = tus(
        &app,
        "HEAD",
        &url,
        &upload_token("bob", "/in"),
        &[],
        Body::empty(),
    )
    .await;
    assert_eq!(other.status, StatusCode::NOT_FOUND, "another user's upload");

    let mut last = patch_headers(cut_at);
    last.push(("repr-digest", format!("sha-256=:{}:", sha_b64(&file))));
    let done = tus(
        &app,
        "PATCH",
        &url,
        &up,
        &last,
        Body::from(file[cut_at..].to_vec()),
    )
    .await;
    assert_eq!(done.status, StatusCode::NO_CONTENT, "{}", done.text());
    assert_eq!(
        done.header("upload-offset"),
        Some(file.len().to_string().as_str())
    );
    assert_eq!(
        done.header("repr-digest").unwrap(),
        format!("sha-256=:{}:", sha_b64(&file))
    );
    assert_eq!(b.object("data/in/big.bin").await.unwrap(), file);
    // The last answer lost: asking again says it is done.
    let again = tus(&app, "HEAD", &url, &up, &[], Body::empty()).await;
    assert_eq!(
        again.header("upload-offset"),
        Some(file.len().to_string().as_str())
    );
    let extra = tus(
        &app,
        "PATCH",
        &url,
        &up,
        &patch_headers(file.len()),
        Body::from(vec![1u8]),
    )
    .await;
    assert_eq!(extra.status, StatusCode::PAYLOAD_TOO_LARGE);

    // Creation with upload, then termination.
    let with_body = tus(
        &app,
        "POST",
        "/uploads",
        &up,
        &[
            ("upload-length", "100".to_owned()),
            ("upload-metadata", format!("filename {}", b64(b"small.bin"))),
            ("content-type", "application/offset+octet-stream".to_owned()),
        ],
        Body::from(vec![9u8; 40]),
    )
    .await;
    assert_eq!(
        with_body.status,
        StatusCode::CREATED,
        "{}",
        with_body.text()
    );
    assert_eq!(with_body.header("upload-offset"), Some("40"));
    let url2 = with_body.header("location").unwrap().to_owned();
    let gone = tus(&app, "DELETE", &url2, &up, &[], Body::empty()).await;
    assert_eq!(gone.status, StatusCode::NO_CONTENT);
    let asked = tus(&app, "HEAD", &url2, &up, &[], Body::empty()).await;
    assert_eq!(asked.status, StatusCode::NOT_FOUND);
    assert!(b.object("data/in/small.bin").await.is_none());

    // An empty file completes at creation.
    let empty = tus(
        &app,
        "POST",
        "/uploads",
        &up,
        &[
            ("upload-length", "0".to_owned()),
            ("upload-metadata", format!("filename {}", b64(b"empty"))),
        ],
        Body::empty(),
    )
    .await;
    assert_eq!(empty.status, StatusCode::CREATED, "{}", empty.text());
    assert_eq!(b.object("data/in/empty").await.unwrap(), b"");

    // Concatenation: two partial uploads, then a final that names them.
    let halves = [data(3 << 20, 4), data((2 << 20) + 5, 5)];
    let mut urls = Vec::new();
    for half in &halves {
        let p = tus(
            &app,
            "POST",
            "/uploads",
            &up,
            &[
                ("upload-length", half.len().to_string()),
                ("upload-concat", "partial".to_owned()),
            ],
            Body::empty(),
        )
        .await;
        assert_eq!(p.status, StatusCode::CREATED, "{}", p.text());
        let url = p.header("location").unwrap().to_owned();
        let early = tus(
            &app,
            "POST",
            "/uploads",
            &up,
            &[
                ("upload-concat", format!("final;{url}")),
                ("upload-metadata", format!("filename {}", b64(b"early.bin"))),
            ],
            Body::empty(),
        )
        .await;
        assert_eq!(
            early.status,
            StatusCode::BAD_REQUEST,
            "an unfinished partial"
        );
        let done = tus(
            &app,
            "PATCH",
            &url,
            &up,
            &patch_headers(0),
            Body::from(half.clone()),
        )
        .await;
        assert_eq!(done.status, StatusCode::NO_CONTENT, "{}", done.text());
        let asked = tus(&app, "HEAD", &url, &up, &[], Body::empty()).await;
        assert_eq!(asked.header("upload-concat"), Some("partial"));
        urls.push(url);
    }
    let theirs = tus(
        &app,
        "POST",
        "/uploads",
        &upload_token("bob", "/in"),
        &[
            ("upload-concat", format!("final;{} {}", urls[0], urls[1])),
            (
                "upload-metadata",
                format!("filename {}", b64(b"stolen.bin")),
            ),
        ],
        Body::empty(),
    )
    .await;
    assert_eq!(
        theirs.status,
        StatusCode::NOT_FOUND,
        "another user's partials"
    );
    assert!(b.object("data/in/stolen.bin").await.is_none());
    let whole = [halves[0].clone(), halves[1].clone()].concat();
    let fin = tus(
        &app,
        "POST",
        "/uploads",
        &up,
        &[
            ("upload-concat", format!("final;{} {}", urls[0], urls[1])),
            (
                "upload-metadata",
                format!("filename {}", b64(b"joined.bin")),
            ),
        ],
        Body::empty(),
    )
    .await;
    assert_eq!(fin.status, StatusCode::CREATED, "{}", fin.text());
    assert_eq!(
        fin.header("repr-digest").unwrap(),
        format!("sha-256=:{}:", sha_b64(&whole))
    );
    assert_eq!(b.object("data/in/joined.bin").await.unwrap(), whole);
    let final_url = fin.header("location").unwrap().to_owned();
    let asked = tus(&app, "HEAD", &final_url, &up, &[], Body::empty()).await;
    assert_eq!(
        asked.header("upload-concat"),
        Some(format!("final;{} {}", urls[0], urls[1]).as_str())
    );
    // The partials are consumed: their bytes are gone from the bucket.
    for url in &urls {
        let gone = tus(&app, "HEAD", url, &up, &[], Body::empty()).await;
        assert_eq!(gone.status, StatusCode::NOT_FOUND);
    }
    let id = urls[0].rsplit('/').next().unwrap();
    assert!(
        b.object(&format!("data/.fallback/uploads/{id}.data"))
            .await
            .is_none()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bucket_that_stops_answering_is_503_with_retry_after() {
    let Bucketed { moto, state } = Bucketed::new();
    let app = fallback_server::router(state);
    let up = upload_token("alice", "/in");
    assert_eq!(
        put(&app, "in/a.txt", &up, b"abc").await.status,
        StatusCode::CREATED
    );
    drop(moto);
    let down = download_token("alice", &["/in"]);
    let get = send(
        &app,
        req("GET", "/files/in/a.txt", Some(&down))
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(
        get.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        get.text()
    );
    assert_eq!(get.header("retry-after"), Some("5"));
    let again = put(&app, "in/b.txt", &up, b"def").await;
    assert_eq!(
        again.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        again.text()
    );
    let created = tus(
        &app,
        "POST",
        "/uploads",
        &up,
        &[
            ("upload-length", "3".to_owned()),
            ("upload-metadata", format!("filename {}", b64(b"c.txt"))),
        ],
        Body::empty(),
    )
    .await;
    assert_eq!(
        created.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        created.text()
    );
}

/// The IBM HTTP Gateway API on a bucket: a v2 WebSocket upload (a file and a folder's
/// file) lands whole at its keys, acknowledged only then; a zip of the folder and the
/// file streams the objects back intact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_upload_and_zip_on_a_bucket() {
    use crate::gateway::{connect, download_id, next_text, serve_app, slice, spec};
    use futures_util::SinkExt as _;
    use tokio_tungstenite::tungstenite::Message;
    let b = Bucketed::new();
    let addr = serve_app(b.router()).await;
    let mut ws = connect(addr, "v2", None).await.unwrap();
    let mut closed = None;
    ws.send(spec(&upload_token("alice", "/in"))).await.unwrap();
    assert_eq!(
        next_text(&mut ws, &mut closed).await.as_deref(),
        Some("end upload")
    );
    let a: Vec<u8> = (0..150_000u32).map(|i| (i % 253) as u8).collect();
    let c: Vec<u8> = vec![9u8; 70_000];
    for (name, data) in [("a.bin", &a), ("folder/c.bin", &c)] {
        let total = data.len().div_ceil(64_000) as u64;
        ws.send(slice(name, data.len() as u64, 0, total))
            .await
            .unwrap();
        assert_eq!(
            next_text(&mut ws, &mut closed).await.as_deref(),
            Some("end_slice_upload")
        );
        for chunk in data.chunks(64_000) {
            ws.send(Message::binary(chunk.to_vec())).await.unwrap();
            assert_eq!(
                next_text(&mut ws, &mut closed).await.as_deref(),
                Some("end upload")
            );
        }
        // Acknowledged: the object is there, whole.
        assert_eq!(
            b.object(&format!("data/in/{name}")).await.as_ref(),
            Some(data)
        );
        ws.send(slice(name, data.len() as u64, total - 1, total))
            .await
            .unwrap();
        assert_eq!(
            next_text(&mut ws, &mut closed).await.as_deref(),
            Some("end_slice_upload")
        );
    }
    ws.close(None).await.unwrap();

    let app = b.router();
    let token = download_token("alice", &["/in"]);
    let answer = download_id(&app, &token, &["/in/a.bin", "/in/folder"], false).await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    let id = answer.json()["transfer_spec_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let got = send(
        &app,
        req("GET", &format!("/aspera/http-gwy/v1/download/{id}"), None)
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(got.status, StatusCode::OK);
    assert_eq!(
        crate::gateway::zip_listing(&got.body),
        ["a.bin 150000", "folder/ 0", "folder/c.bin 70000"]
    );
}
