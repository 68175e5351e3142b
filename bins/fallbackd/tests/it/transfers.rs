//! Uploads and downloads that must arrive intact, interrupted or not.

use std::time::Instant;

use base64::Engine as _;

use crate::{
    Server, bearer, curl, download_token, hex, make_file, patch_head, raw, sha256_file, tus_create,
    tus_offset, tus_patch_rest, upload_token,
};

#[test]
fn put_then_get_of_every_size_over_http_and_https() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let up = upload_token("alice", "/in");
    let down = download_token("alice", &["/in"]);
    for (i, len) in [0u64, 1, 1 << 20, 300 << 20].into_iter().enumerate() {
        let src = dir.path().join(format!("src-{i}"));
        make_file(&src, len, i as u64);
        let want = sha256_file(&src);
        for https in [false, true] {
            let name = format!("f{i}-{https}.bin");
            let url = format!("{}/files/in/{name}", server.base(https));
            let put = curl(
                &["-T", src.to_str().unwrap(), "-H", &bearer(&up), &url],
                None,
            );
            assert_eq!(put.status, 201, "PUT {len} https={https}: {put:?}");
            let dst = dir.path().join(format!("dst-{i}-{https}"));
            let get = curl(&["-H", &bearer(&down), &url], Some(&dst));
            assert_eq!(get.status, 200, "GET {len}: {get:?}");
            assert_eq!(sha256_file(&dst), want, "{len} bytes, https={https}");
            // The digest is announced, and agrees.
            let announced = get.header("repr-digest").unwrap();
            let b64 = announced
                .trim_start_matches("sha-256=:")
                .trim_end_matches(':');
            let announced = hex(&base64::engine::general_purpose::STANDARD
                .decode(b64)
                .unwrap());
            assert_eq!(announced, want);
            assert_eq!(
                get.header("x-content-type-options").as_deref(),
                Some("nosniff")
            );
            std::fs::remove_file(&dst).unwrap();
        }
        std::fs::remove_file(&src).unwrap();
    }
}

#[test]
fn tus_upload_cut_at_half_resumes_from_the_offset_head_reports() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let up = upload_token("alice", "/in");
    let src = dir.path().join("big.bin");
    let len: u64 = 64 << 20;
    make_file(&src, len, 7);
    let url = tus_create(&server, &up, "big.bin", len);
    let path = url
        .split(&server.http.to_string())
        .nth(1)
        .unwrap()
        .to_owned();
    let data = std::fs::read(&src).unwrap();
    let half = data.len() / 2;
    let head = patch_head(&server, &path, len, &up);
    let (resp, sock) = raw(server.http, &head, &data, half);
    assert!(resp.is_none());
    drop(sock); // the connection drops mid-body
    // The server keeps what arrived; HEAD reports it once the writer has synced.
    fallback_testkit::wait_until("the server keeps the first half", || {
        tus_offset(&url, &up) > 0
    });
    let offset = tus_offset(&url, &up);
    assert!(
        offset > 0 && offset <= half as u64,
        "offset {offset} of {half} sent"
    );
    assert!(
        !server.docroot().join("in/big.bin").exists(),
        "visible before completion"
    );
    let got = tus_patch_rest(&url, &up, &src, offset);
    assert_eq!(got.status, 204, "{got:?}");
    assert_eq!(got.header("upload-offset").unwrap(), len.to_string());
    assert_eq!(
        sha256_file(&server.docroot().join("in/big.bin")),
        sha256_file(&src)
    );
    // Done: the upload answers as finished (offset = length, the digest), to its
    // user only.
    let after = curl(
        &["-I", "-H", "Tus-Resumable: 1.0.0", "-H", &bearer(&up), &url],
        None,
    );
    assert_eq!(after.status, 200, "{after:?}");
    assert_eq!(after.header("upload-offset"), Some(len.to_string()));
    assert_eq!(after.header("upload-length"), Some(len.to_string()));
    assert!(after.header("repr-digest").is_some(), "{after:?}");
    let bob = upload_token("bob", "/in");
    let other = curl(
        &[
            "-I",
            "-H",
            "Tus-Resumable: 1.0.0",
            "-H",
            &bearer(&bob),
            &url,
        ],
        None,
    );
    assert_eq!(other.status, 404, "{other:?}");
    // The last PATCH again (its answer lost): 204, nothing changes.
    let again = tus_patch_rest(&url, &up, &src, len);
    assert_eq!(again.status, 204, "{again:?}");
    assert_eq!(again.header("upload-offset"), Some(len.to_string()));
}

#[test]
fn download_resumes_with_range_and_curl_continue() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let len: u64 = 10 << 20;
    make_file(&server.docroot().join("movie.bin"), len, 3);
    let want = sha256_file(&server.docroot().join("movie.bin"));
    let down = download_token("alice", &["/movie.bin"]);
    let url = format!("{}/files/movie.bin", server.base(false));
    // A partial local copy, as an interrupted download leaves it.
    let local = dir.path().join("movie.part");
    let all = std::fs::read(server.docroot().join("movie.bin")).unwrap();
    std::fs::write(&local, &all[..3_000_001]).unwrap();
    let got = curl(&["-C", "-", "-H", &bearer(&down), &url], Some(&local));
    assert_eq!(got.status, 206, "{got:?}");
    assert_eq!(
        got.header("content-range").unwrap(),
        format!("bytes 3000001-{}/{len}", len - 1)
    );
    assert_eq!(sha256_file(&local), want);
    // If-Range with a stale validator gets the whole file.
    let whole = curl(
        &[
            "-r",
            "0-9",
            "-H",
            "If-Range: \"stale\"",
            "-H",
            &bearer(&down),
            &url,
        ],
        Some(&dir.path().join("whole")),
    );
    assert_eq!(whole.status, 200);
    // Beyond the end: 416 with the length.
    let beyond = curl(&["-r", "99999999-", "-H", &bearer(&down), &url], None);
    assert_eq!(beyond.status, 416);
    assert_eq!(
        beyond.header("content-range").unwrap(),
        format!("bytes */{len}")
    );
    let reversed = curl(
        &["-H", "Range: bytes=5-2", "-H", &bearer(&down), &url],
        None,
    );
    assert_eq!(reversed.status, 416);
}

#[test]
fn sigkill_mid_upload_then_restart_and_resume() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let up = upload_token("alice", "/in");
    let src = dir.path().join("crash.bin");
    let len: u64 = 32 << 20;
    make_file(&src, len, 11);
    let url = tus_create(&server, &up, "crash.bin", len);
    let id = url.rsplit('/').next().unwrap().to_owned();
    let data = std::fs::read(&src).unwrap();
    let head = patch_head(&server, &format!("/aspera/http/uploads/{id}"), len, &up);
    let (_, sock) = raw(server.http, &head, &data, 20 << 20);
    // Killed while the bytes are being written: some have reached the part file.
    fallback_testkit::wait_for_part_bytes(&server.docroot(), &id);
    let final_path = server.docroot().join("in/crash.bin");
    assert!(!final_path.exists());
    server.kill9();
    drop(sock);
    assert!(!final_path.exists(), "visible after a crash");
    // A new process on the same storage picks the upload up where the bytes stop.
    let server = Server::start(dir.path());
    let url = format!("{}/uploads/{id}", server.base(false));
    let offset = tus_offset(&url, &up);
    assert!(offset <= 20 << 20, "offset {offset}");
    let got = tus_patch_rest(&url, &up, &src, offset);
    assert_eq!(got.status, 204, "{got:?}");
    assert_eq!(sha256_file(&final_path), sha256_file(&src));
}

#[test]
fn tus_creation_with_upload_and_checksum() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let up = upload_token("alice", "/in");
    let body = dir.path().join("small");
    std::fs::write(&body, b"creation-with-upload").unwrap();
    let meta = format!(
        "path {}",
        base64::engine::general_purpose::STANDARD.encode("deep/er/small.txt")
    );
    let got = curl(
        &[
            "-X",
            "POST",
            "-H",
            "Tus-Resumable: 1.0.0",
            "-H",
            "Upload-Length: 20",
            "-H",
            &format!("Upload-Metadata: {meta}"),
            "-H",
            "Content-Type: application/offset+octet-stream",
            "-H",
            &bearer(&up),
            "--data-binary",
            &format!("@{}", body.display()),
            &format!("{}/uploads", server.base(true)),
        ],
        None,
    );
    assert_eq!(got.status, 201, "{got:?}");
    assert_eq!(got.header("upload-offset").as_deref(), Some("20"));
    assert!(
        got.header("location")
            .unwrap()
            .starts_with("/aspera/https/uploads/")
    );
    assert_eq!(
        std::fs::read(server.docroot().join("in/deep/er/small.txt")).unwrap(),
        b"creation-with-upload"
    );
    // A chunk whose checksum does not match is refused with 460 and not kept.
    let url = tus_create(&server, &up, "sum.txt", 5);
    let bad = curl(
        &[
            "-X",
            "PATCH",
            "-H",
            "Tus-Resumable: 1.0.0",
            "-H",
            "Content-Type: application/offset+octet-stream",
            "-H",
            "Upload-Offset: 0",
            "-H",
            "Upload-Checksum: sha256 AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
            "-H",
            &bearer(&up),
            "--data-binary",
            "hello",
            &url,
        ],
        None,
    );
    assert_eq!(bad.status, 460, "{bad:?}");
    assert_eq!(tus_offset(&url, &up), 0);
    // Termination.
    let del = curl(
        &[
            "-X",
            "DELETE",
            "-H",
            "Tus-Resumable: 1.0.0",
            "-H",
            &bearer(&up),
            &url,
        ],
        None,
    );
    assert_eq!(del.status, 204);
    // Discovery without a token.
    let opt = curl(
        &["-X", "OPTIONS", &format!("{}/uploads", server.base(false))],
        None,
    );
    assert_eq!(opt.status, 204);
    assert!(opt.header("tus-extension").unwrap().contains("checksum"));
}

#[test]
fn directory_manifest_and_health() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    std::fs::create_dir_all(server.docroot().join("tree/sub")).unwrap();
    std::fs::write(server.docroot().join("tree/a.txt"), b"a").unwrap();
    std::fs::write(server.docroot().join("tree/sub/b.txt"), b"bb").unwrap();
    let down = download_token("alice", &["/tree"]);
    let got = curl(
        &[
            "-H",
            &bearer(&down),
            "-H",
            "Accept: application/json",
            &format!("{}/files/tree/", server.base(false)),
        ],
        None,
    );
    assert_eq!(got.status, 200, "{got:?}");
    let v: serde_json::Value = serde_json::from_slice(&got.body).unwrap();
    let paths: Vec<&str> = v["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["path"].as_str().unwrap())
        .collect();
    assert_eq!(paths, ["a.txt", "sub", "sub/b.txt"]);
    assert_eq!(v["bytes"], 3);
    for base in ["", "/aspera/http"] {
        let h = curl(&[&format!("http://{}{base}/health", server.http)], None);
        assert_eq!((h.status, h.text().as_str()), (200, "ok\n"));
    }
    let info = curl(&[&format!("{}/info", server.base(true))], None);
    assert!(info.text().contains("\"protocol\":\"fallback/1\""));
    // A token in the query works for GET (browser links), and the answer is not cached.
    let q = curl(
        &[&format!(
            "{}/files/tree/a.txt?token={down}",
            server.base(false)
        )],
        None,
    );
    assert_eq!((q.status, q.text().as_str()), (200, "a"));
    assert_eq!(q.header("cache-control").as_deref(), Some("no-store"));
    assert_eq!(q.header("referrer-policy").as_deref(), Some("no-referrer"));
}

#[test]
fn a_stalled_body_is_cut_after_the_activity_timeout_and_stays_resumable() {
    use std::io::Read as _;
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path()); // session_activity_timeout 5 s
    let up = upload_token("alice", "/in");
    let len: u64 = 4 << 20;
    let src = dir.path().join("stall.bin");
    make_file(&src, len, 5);
    let url = tus_create(&server, &up, "stall.bin", len);
    let path = url
        .split(&server.http.to_string())
        .nth(1)
        .unwrap()
        .to_owned();
    let data = std::fs::read(&src).unwrap();
    let head = patch_head(&server, &path, len, &up);
    let started = Instant::now();
    let (_, mut sock) = raw(server.http, &head, &data, 1 << 20);
    // The client goes silent but keeps the connection: the server answers 408 on its own.
    let mut resp = String::new();
    let _ = sock.read_to_string(&mut resp);
    assert!(resp.starts_with("HTTP/1.1 408"), "{resp}");
    eprintln!("stalled body answered 408 after {:?}", started.elapsed());
    assert_eq!(tus_offset(&url, &up), 1 << 20);
    let got = tus_patch_rest(&url, &up, &src, 1 << 20);
    assert_eq!(got.status, 204, "{got:?}");
    assert_eq!(
        sha256_file(&server.docroot().join("in/stall.bin")),
        sha256_file(&src)
    );
}

/// Over TLS a client offering both protocols gets HTTP/2 (as from nginx with `http2 on`);
/// one offering only http/1.1 gets HTTP/1.1; both move the file whole.
#[test]
fn https_prefers_h2_and_still_speaks_http1() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let src = dir.path().join("data/h.bin");
    make_file(&src, 3 << 20, 7);
    let want = sha256_file(&src);
    let down = download_token("alice", &["/h.bin"]);
    let url = format!("{}/files/h.bin", server.base(true));
    for (flags, version) in [(&["--http2"][..], "2"), (&["--http1.1"][..], "1.1")] {
        let dst = dir.path().join("got");
        let out = std::process::Command::new("curl")
            .args(["-sS", "-k", "--fail", "-o"])
            .arg(&dst)
            .args(["-w", "%{http_version}", "-H", &bearer(&down)])
            .args(flags)
            .arg(&url)
            .output()
            .unwrap();
        assert!(out.status.success(), "{flags:?}: {out:?}");
        assert_eq!(String::from_utf8_lossy(&out.stdout), version, "{flags:?}");
        assert_eq!(sha256_file(&dst), want, "{flags:?}");
    }
    // An h2-only client (curl always offers http/1.1 too): Python's ssl offers just "h2",
    // sends the connection preface and reads the server's first frame, a SETTINGS frame.
    let port = server.https.port();
    let script = format!(
        r#"
import socket, ssl
c = ssl.create_default_context(); c.check_hostname = False; c.verify_mode = ssl.CERT_NONE
c.set_alpn_protocols(["h2"])
s = c.wrap_socket(socket.create_connection(("127.0.0.1", {port})), server_hostname="localhost")
s.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes([0, 0, 0, 4, 0, 0, 0, 0, 0]))
h = s.recv(9)
print(s.selected_alpn_protocol(), h[3])
"#
    );
    let out = std::process::Command::new("python3")
        .args(["-c", &script])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "h2 4");
}
