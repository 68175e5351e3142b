//! HTTP as clients no one here wrote speak it: refusals they can read, half-closed
//! sockets, partial PUTs, method overrides.

use std::io::{Read as _, Write as _};
use std::net::{Shutdown, TcpStream};
use std::time::Duration;

use crate::{
    Server, bearer, curl, download_token, make_file, patch_head, raw, sha256_file, tus_create,
    tus_offset, upload_token,
};

/// Everything the server sends until it closes (or 30 s pass).
fn read_all(mut s: TcpStream) -> Vec<u8> {
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    out
}

/// `curl -C N -T file`: a PUT with `Content-Range`. RFC 9110 §14.5: a server that does
/// not do partial PUT answers 400, and stores nothing.
#[test]
fn a_partial_put_is_refused_and_stores_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let src = dir.path().join("big.bin");
    make_file(&src, 3 << 20, 1);
    let token = upload_token("alice", "/in");
    let url = format!("{}/files/in/big.bin", server.base(false));
    let got = curl(
        &[
            "-C",
            "1048576",
            "-T",
            src.to_str().unwrap(),
            "-H",
            &bearer(&token),
            &url,
        ],
        None,
    );
    assert_eq!(got.status, 400, "{got:?}");
    assert!(got.text().contains("Content-Range"), "{}", got.text());
    assert!(!server.docroot().join("in/big.bin").exists());
}

/// A PATCH at the wrong offset, 16 MiB long, from a client that writes its whole body
/// before reading (Node's http client, most scripts): it reads 409 and the real offset,
/// not a reset connection.
#[test]
fn a_refused_large_patch_is_read_to_the_end_and_answered() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let token = upload_token("alice", "/in");
    let len: u64 = 16 << 20;
    let url = tus_create(&server, &token, "wrong-offset.bin", len + 10);
    let path = url
        .split_once("/aspera")
        .map(|(_, p)| format!("/aspera{p}"))
        .unwrap();
    let head =
        patch_head(&server, &path, len, &token).replace("Upload-Offset: 0", "Upload-Offset: 5");
    let body = vec![7u8; usize::try_from(len).unwrap()];
    // `raw` writes every byte (it panics on a write error) and then reads the answer.
    let (resp, _s) = raw(server.http, &head, &body, body.len());
    let resp = resp.unwrap();
    assert!(resp.starts_with("HTTP/1.1 409"), "{resp}");
    assert!(
        resp.to_ascii_lowercase().contains("upload-offset: 0\r\n"),
        "{resp}"
    );
    assert_eq!(tus_offset(&url, &token), 0);

    // An expired token on a large PATCH: the status, too.
    let expired = fallback_token::Token::upload("alice", "/in")
        .issued_at(std::time::SystemTime::now() - Duration::from_secs(7200))
        .valid_for(Duration::from_secs(60))
        .issue(&crate::key())
        .unwrap();
    let head = patch_head(&server, &path, len, &expired);
    let (resp, _s) = raw(server.http, &head, &body, body.len());
    let resp = resp.unwrap();
    assert!(resp.starts_with("HTTP/1.1 401"), "{resp}");
}

/// tus-js-client's `overridePatchMethod`: POST with `X-HTTP-Method-Override: PATCH`
/// appends like a PATCH; `DELETE` terminates; anything else is 405.
#[test]
fn method_override_serves_patch_and_delete() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let token = upload_token("alice", "/in");
    let url = tus_create(&server, &token, "override.txt", 5);
    let post = |extra: &[&str], data: &str| {
        let mut args = vec!["-X", "POST", "-H", "Tus-Resumable: 1.0.0"];
        for e in extra {
            args.extend(["-H", e]);
        }
        let auth = bearer(&token);
        args.extend(["-H", &auth, "--data-binary", data, &url]);
        curl(&args, None)
    };
    let got = post(
        &[
            "X-HTTP-Method-Override: PATCH",
            "Content-Type: application/offset+octet-stream",
            "Upload-Offset: 0",
        ],
        "hel",
    );
    assert_eq!(got.status, 204, "{got:?}");
    assert_eq!(got.header("upload-offset").as_deref(), Some("3"));
    let got = post(&["X-HTTP-Method-Override: GET"], "");
    assert_eq!(got.status, 405, "{got:?}");
    let got = post(&[], "");
    assert_eq!(got.status, 405, "{got:?}");
    let got = post(&["X-HTTP-Method-Override: DELETE"], "");
    assert_eq!(got.status, 204, "{got:?}");
    let got = curl(
        &[
            "-I",
            "-H",
            "Tus-Resumable: 1.0.0",
            "-H",
            &bearer(&token),
            &url,
        ],
        None,
    );
    assert_eq!(got.status, 404, "{got:?}");
}

/// A client that shuts down its sending side after the request still gets the whole
/// answer: a GET of a large file, and a final PATCH, which also logs its end.
#[test]
fn half_closed_clients_get_their_whole_answer_and_transfers_log_their_end() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let file = server.docroot().join("pub/large.bin");
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    let len: usize = 3 << 20;
    make_file(&file, len as u64, 9);
    let token = download_token("alice", &["/pub"]);
    let mut s = TcpStream::connect(server.http).unwrap();
    write!(
        s,
        "GET /files/pub/large.bin HTTP/1.1\r\nHost: x\r\n{}\r\nConnection: close\r\n\r\n",
        bearer(&token)
    )
    .unwrap();
    s.shutdown(Shutdown::Write).unwrap();
    let resp = read_all(s);
    assert!(
        resp.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&resp[..resp.len().min(300)])
    );
    let body_at = resp.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    assert_eq!(resp.len() - body_at, len, "a shorter answer");

    // The final PATCH of an upload, sent and half-closed.
    let up = upload_token("alice", "/in");
    let data = vec![3u8; 100_000];
    let url = tus_create(&server, &up, "half.bin", data.len() as u64);
    let path = url
        .split_once("/aspera")
        .map(|(_, p)| format!("/aspera{p}"))
        .unwrap();
    let mut s = TcpStream::connect(server.http).unwrap();
    write!(
        s,
        "{}\r\nConnection: close\r\n\r\n",
        patch_head(&server, &path, data.len() as u64, &up)
    )
    .unwrap();
    s.write_all(&data).unwrap();
    s.shutdown(Shutdown::Write).unwrap();
    let resp = String::from_utf8(read_all(s)).unwrap();
    assert!(resp.starts_with("HTTP/1.1 204"), "{resp}");
    assert_eq!(
        std::fs::read(server.docroot().join("in/half.bin")).unwrap(),
        data
    );
    assert!(
        server.wait_for_log(Duration::from_secs(10), |v| {
            v["message"] == "transfer end" && v["path"] == "/in/half.bin" && v["complete"] == true
        }),
        "the final PATCH logged no transfer end"
    );
    assert!(server.wait_for_log(Duration::from_secs(10), |v| {
        v["message"] == "upload complete" && v["path"] == "/in/half.bin"
    }));
}

/// The validators of a file now.
fn validators(url: &str, token: &str) -> (String, String) {
    let got = curl(&["-I", "-H", &bearer(token), url], None);
    assert_eq!(got.status, 200, "{got:?}");
    (
        got.header("etag").unwrap(),
        got.header("last-modified").unwrap(),
    )
}

/// An HTTP date `secs` seconds from `date`.
fn shifted(date: &str, secs: i64) -> String {
    let t = jiff::fmt::rfc2822::DateTimeParser::new()
        .parse_timestamp(date)
        .unwrap();
    let t = t
        .checked_add(jiff::SignedDuration::from_secs(secs))
        .unwrap();
    jiff::fmt::rfc2822::DateTimePrinter::new()
        .timestamp_to_rfc9110_string(&t)
        .unwrap()
}

/// RFC 9110 §13.2.2 on GET: each precondition, true and false, and the order in which
/// they are evaluated (If-Match before If-Unmodified-Since, If-None-Match before
/// If-Modified-Since, If-Range last).
#[test]
fn preconditions_on_get_follow_rfc_9110() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let file = server.docroot().join("pub/c.txt");
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    std::fs::write(&file, "conditional content\n").unwrap();
    let token = download_token("alice", &["/pub"]);
    let url = format!("{}/files/pub/c.txt", server.base(false));
    let (etag, lm) = validators(&url, &token);
    let weak = format!("W/{etag}");
    let (older, newer) = (shifted(&lm, -3600), shifted(&lm, 3600));
    let rows: Vec<(&str, Vec<String>, u16)> = vec![
        ("If-Match, matching", vec![format!("If-Match: {etag}")], 200),
        ("If-Match, other", vec!["If-Match: \"other\"".into()], 412),
        ("If-Match: *", vec!["If-Match: *".into()], 200),
        (
            "If-Match, weak (strong comparison)",
            vec![format!("If-Match: {weak}")],
            412,
        ),
        (
            "If-Match, in a list",
            vec![format!("If-Match: \"a\", {etag}")],
            200,
        ),
        (
            "If-Unmodified-Since, older",
            vec![format!("If-Unmodified-Since: {older}")],
            412,
        ),
        (
            "If-Unmodified-Since, exact",
            vec![format!("If-Unmodified-Since: {lm}")],
            200,
        ),
        (
            "If-Unmodified-Since, not a date",
            vec!["If-Unmodified-Since: soon".into()],
            200,
        ),
        (
            "If-Match true makes If-Unmodified-Since ignored",
            vec![
                format!("If-Match: {etag}"),
                format!("If-Unmodified-Since: {older}"),
            ],
            200,
        ),
        (
            "If-None-Match, matching",
            vec![format!("If-None-Match: {etag}")],
            304,
        ),
        (
            "If-None-Match, weak (weak comparison)",
            vec![format!("If-None-Match: {weak}")],
            304,
        ),
        ("If-None-Match: *", vec!["If-None-Match: *".into()], 304),
        (
            "If-None-Match, other",
            vec!["If-None-Match: \"other\"".into()],
            200,
        ),
        (
            "If-None-Match, malformed",
            vec!["If-None-Match: other".into()],
            400,
        ),
        (
            "If-Modified-Since, exact",
            vec![format!("If-Modified-Since: {lm}")],
            304,
        ),
        (
            "If-Modified-Since, newer",
            vec![format!("If-Modified-Since: {newer}")],
            304,
        ),
        (
            "If-Modified-Since, older",
            vec![format!("If-Modified-Since: {older}")],
            200,
        ),
        (
            "If-None-Match present makes If-Modified-Since ignored",
            vec![
                "If-None-Match: \"other\"".into(),
                format!("If-Modified-Since: {lm}"),
            ],
            200,
        ),
        (
            "If-Match false wins over If-None-Match",
            vec![
                "If-Match: \"other\"".into(),
                format!("If-None-Match: {etag}"),
            ],
            412,
        ),
        (
            "If-Range, matching",
            vec!["Range: bytes=0-3".into(), format!("If-Range: {etag}")],
            206,
        ),
        (
            "If-Range, other",
            vec!["Range: bytes=0-3".into(), "If-Range: \"x\"".into()],
            200,
        ),
        (
            "If-Range, weak",
            vec!["Range: bytes=0-3".into(), format!("If-Range: {weak}")],
            200,
        ),
        (
            "If-Range, exact date",
            vec!["Range: bytes=0-3".into(), format!("If-Range: {lm}")],
            206,
        ),
    ];
    let mut failures = Vec::new();
    for (what, headers, want) in &rows {
        let mut args: Vec<&str> = vec!["-H", "Authorization: placeholder"];
        let auth = bearer(&token);
        args[1] = &auth;
        for h in headers {
            args.extend(["-H", h]);
        }
        args.push(&url);
        let got = curl(&args, None);
        if got.status != *want {
            failures.push(format!("{what}: {} instead of {want}", got.status));
        }
        if got.status == 304
            && (got.header("etag").as_deref() != Some(etag.as_str()) || !got.body.is_empty())
        {
            failures.push(format!("{what}: a 304 without the ETag, or with a body"));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

/// A row of the PUT table: what, the headers from (`ETag`, `Last-Modified`), the status.
type Row = (&'static str, fn(&str, &str) -> Vec<String>, u16);

/// RFC 9110 §13.2.2 on PUT: a false precondition answers 412 and writes nothing.
#[test]
fn preconditions_on_put_follow_rfc_9110_and_a_failed_one_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let up = upload_token("alice", "/in");
    let down = download_token("alice", &["/in"]);
    let url = format!("{}/files/in/p.txt", server.base(false));
    let put = |headers: &[String], body: &str, target: &str| {
        let mut args = vec![
            "-X".to_owned(),
            "PUT".to_owned(),
            "-H".to_owned(),
            bearer(&up),
        ];
        for h in headers {
            args.extend(["-H".to_owned(), h.clone()]);
        }
        args.extend([
            "--data-binary".to_owned(),
            body.to_owned(),
            target.to_owned(),
        ]);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        curl(&args, None).status
    };
    assert_eq!(put(&[], "v0", &url), 201);
    let path = server.docroot().join("in/p.txt");
    let mut failures = Vec::new();
    let mut version = 0;
    let rows: [Row; 11] = [
        (
            "If-Match, other",
            |_, _| vec!["If-Match: \"other\"".into()],
            412,
        ),
        (
            "If-Match, matching",
            |e, _| vec![format!("If-Match: {e}")],
            201,
        ),
        (
            "If-Match, weak",
            |e, _| vec![format!("If-Match: W/{e}")],
            412,
        ),
        (
            "If-Match: * on a file that exists",
            |_, _| vec!["If-Match: *".into()],
            201,
        ),
        (
            "If-Unmodified-Since, older",
            |_, lm| vec![format!("If-Unmodified-Since: {}", shifted(lm, -3600))],
            412,
        ),
        (
            "If-Unmodified-Since, newer",
            |_, lm| vec![format!("If-Unmodified-Since: {}", shifted(lm, 3600))],
            201,
        ),
        (
            "If-None-Match, the current tag",
            |e, _| vec![format!("If-None-Match: {e}")],
            412,
        ),
        (
            "If-None-Match, weak current tag",
            |e, _| vec![format!("If-None-Match: W/{e}")],
            412,
        ),
        (
            "If-None-Match: * on a file that exists",
            |_, _| vec!["If-None-Match: *".into()],
            412,
        ),
        (
            "If-None-Match, another tag",
            |_, _| vec!["If-None-Match: \"other\"".into()],
            201,
        ),
        (
            "If-Modified-Since is for GET only",
            |_, lm| vec![format!("If-Modified-Since: {}", shifted(lm, 3600))],
            201,
        ),
    ];
    for (what, headers, want) in rows {
        let (etag, lm) = validators(&url, &down);
        let before = std::fs::read(&path).unwrap();
        // A new body each time, so a write always shows; new mtimes a second apart are
        // not needed: the ETag covers the nanoseconds.
        let body = format!("v{}", version + 1);
        let got = put(&headers(&etag, &lm), &body, &url);
        if got != want {
            failures.push(format!("{what}: {got} instead of {want}"));
        }
        let after = std::fs::read(&path).unwrap();
        if want == 412 && after != before {
            failures.push(format!("{what}: a failed precondition wrote the file"));
        }
        if got == 201 {
            version += 1;
        }
    }
    // If-Match on a file that is not there: 412, nothing created.
    let missing = format!("{}/files/in/missing.txt", server.base(false));
    for h in ["If-Match: *", "If-Match: \"x\""] {
        let got = put(&[h.to_owned()], "x", &missing);
        if got != 412 || server.docroot().join("in/missing.txt").exists() {
            failures.push(format!("{h} on a missing file: {got}, or it was created"));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

/// A small tree for the listing tests: `/pub/a.txt`, `/pub/odd name&<x>.txt`,
/// `/pub/sub/b.bin`.
fn tree(server: &Server) {
    let root = server.docroot().join("pub");
    std::fs::create_dir_all(root.join("sub")).unwrap();
    std::fs::write(root.join("a.txt"), "alpha\n").unwrap();
    std::fs::write(root.join("odd name&<x>.txt"), "odd\n").unwrap();
    make_file(&root.join("sub/b.bin"), 300_000, 8);
}

/// Without `Accept: application/json` a directory is an HTML page that links each
/// entry (names escaped, hrefs encoded); without its trailing slash it redirects to the
/// slash form. A query token rides in the links only when the request carried one.
#[test]
fn html_listing_links_each_entry_and_redirects_to_the_slash_form() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    tree(&server);
    let token = download_token("alice", &["/pub"]);
    let base = server.base(false);
    let got = curl(
        &["-H", &bearer(&token), &format!("{base}/files/pub/")],
        None,
    );
    assert_eq!(got.status, 200, "{got:?}");
    assert!(got.header("content-type").unwrap().starts_with("text/html"));
    let page = got.text();
    for want in [
        "<a href=\"a.txt\">a.txt</a>",
        "<a href=\"odd%20name%26%3Cx%3E.txt\">odd name&amp;&lt;x&gt;.txt</a>",
        "<a href=\"sub/\">sub/</a>",
        "<a href=\"../\">",
    ] {
        assert!(page.contains(want), "{want} not in {page}");
    }
    assert!(
        !page.contains(&token),
        "a token the request did not carry in the URL"
    );
    // JSON stays the API's answer.
    let got = curl(
        &[
            "-H",
            &bearer(&token),
            "-H",
            "Accept: application/json",
            &format!("{base}/files/pub/"),
        ],
        None,
    );
    let v: serde_json::Value = serde_json::from_slice(&got.body).unwrap();
    assert_eq!(v["files"], 3);
    // No trailing slash: 301 to the slash form, the query kept.
    let got = curl(&[&format!("{base}/files/pub?token={token}")], None);
    assert_eq!(got.status, 301, "{got:?}");
    assert_eq!(got.header("location"), Some(format!("pub/?token={token}")));
    // Followed, with the token in the query: the links carry it, the log does not.
    let got = curl(&["-L", &format!("{base}/files/pub?token={token}")], None);
    assert_eq!(got.status, 200, "{got:?}");
    assert!(
        got.text()
            .contains(&format!("<a href=\"sub/?token={token}\">"))
    );
    assert!(got.header("referrer-policy").is_some());
    // (The testkit fails the test if a token appears in fallbackd's log.)
}

/// rclone's http remote (a client no one here wrote) lists the tree with sizes and
/// times and copies it, with the token as a Bearer header.
#[test]
fn rclone_lists_and_copies_a_tree_over_an_http_remote() {
    let probe = std::process::Command::new("rclone").arg("version").output();
    assert!(
        probe.as_ref().is_ok_and(|o| o.status.success()),
        "this test needs rclone: apt-get install rclone (cargo xtask ci installs it)"
    );
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    tree(&server);
    let token = download_token("alice", &["/pub"]);
    let url = format!("{}/files/pub/", server.base(false));
    let rclone = |args: &[&str]| {
        let out = std::process::Command::new("rclone")
            .args(["--config", "/dev/null", "--http-url", &url])
            .arg("--http-headers")
            .arg(format!("Authorization,Bearer {token}"))
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "rclone {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let listing = rclone(&["lsl", ":http:"]);
    let mut lines: Vec<(String, String)> = listing
        .lines()
        .map(|l| {
            // "<size> <date> <time> <name>", the size right-aligned.
            let mut it = l.trim_start().splitn(4, ' ');
            let size = it.next().unwrap_or_default().to_owned();
            let name = it.nth(2).unwrap_or_default().to_owned();
            (name, size)
        })
        .collect();
    lines.sort();
    assert_eq!(
        lines,
        [
            ("a.txt".to_owned(), "6".to_owned()),
            ("odd name&<x>.txt".to_owned(), "4".to_owned()),
            ("sub/b.bin".to_owned(), "300000".to_owned()),
        ],
        "{listing}"
    );
    let out = dir.path().join("copied");
    rclone(&["copy", ":http:", out.to_str().unwrap()]);
    for f in ["a.txt", "odd name&<x>.txt", "sub/b.bin"] {
        assert_eq!(
            sha256_file(&out.join(f)),
            sha256_file(&server.docroot().join("pub").join(f)),
            "{f}"
        );
    }
}

/// CORS: off by default; with `--cors-origin`, preflights from that origin are answered
/// for the tus headers and the protocol's headers are exposed; another origin's
/// preflight is not, and credentials are never allowed.
#[test]
fn cors_preflights_answer_allowed_origins_only() {
    let preflight = |server: &Server, origin: &str| {
        curl(
            &[
                "-X",
                "OPTIONS",
                "-H",
                &format!("Origin: {origin}"),
                "-H",
                "Access-Control-Request-Method: PATCH",
                "-H",
                "Access-Control-Request-Headers: authorization, tus-resumable, upload-offset, content-type",
                &format!(
                    "{}/uploads/0123456789abcdef0123456789abcdef",
                    server.base(false)
                ),
            ],
            None,
        )
    };
    let dir = tempfile::tempdir().unwrap();
    let off = Server::start(dir.path());
    assert_eq!(
        preflight(&off, "http://app.test").header("access-control-allow-origin"),
        None
    );
    drop(off);
    let dir = tempfile::tempdir().unwrap();
    let on = Server::start_custom(dir.path(), 0, 0, "", &["--cors-origin", "http://app.test"]);
    let got = preflight(&on, "http://app.test");
    assert_eq!(
        got.header("access-control-allow-origin").as_deref(),
        Some("http://app.test"),
        "{got:?}"
    );
    let methods = got
        .header("access-control-allow-methods")
        .unwrap_or_default();
    assert!(methods.contains("PATCH"), "{methods}");
    let allowed = got
        .header("access-control-allow-headers")
        .unwrap_or_default()
        .to_ascii_lowercase();
    for h in [
        "authorization",
        "tus-resumable",
        "upload-offset",
        "content-type",
    ] {
        assert!(allowed.contains(h), "{h} not in {allowed}");
    }
    assert_eq!(got.header("access-control-allow-credentials"), None);
    let other = preflight(&on, "http://evil.test");
    assert_eq!(
        other.header("access-control-allow-origin"),
        None,
        "{other:?}"
    );
    // A simple request from the allowed origin exposes the protocol's headers.
    let token = download_token("alice", &["/"]);
    let got = curl(
        &[
            "-H",
            "Origin: http://app.test",
            "-H",
            &bearer(&token),
            &format!("{}/files/", on.base(false)),
        ],
        None,
    );
    let exposed = got
        .header("access-control-expose-headers")
        .unwrap_or_default()
        .to_ascii_lowercase();
    for h in [
        "location",
        "upload-offset",
        "repr-digest",
        "etag",
        "content-range",
    ] {
        assert!(exposed.contains(h), "{h} not in {exposed}");
    }
}

/// `wget -r` mirrors a tree from the HTML listings, with the token as a header.
#[test]
fn wget_mirrors_a_tree_from_the_html_listings() {
    let probe = std::process::Command::new("wget").arg("--version").output();
    assert!(
        probe.as_ref().is_ok_and(|o| o.status.success()),
        "this test needs wget: apt-get install wget (cargo xtask ci installs it)"
    );
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    tree(&server);
    let token = download_token("alice", &["/pub"]);
    let out = dir.path().join("mirror");
    let got = std::process::Command::new("wget")
        .args([
            "-q",
            "-r",
            "-np",
            "-nH",
            "--cut-dirs=4",
            "-R",
            "index.html*",
            "-P",
        ])
        .arg(&out)
        .arg("--header")
        .arg(bearer(&token))
        .arg(format!("{}/files/pub/", server.base(false)))
        .output()
        .unwrap();
    assert!(got.status.success(), "wget: {got:?}");
    for f in ["a.txt", "odd name&<x>.txt", "sub/b.bin"] {
        assert_eq!(
            sha256_file(&out.join(f)),
            sha256_file(&server.docroot().join("pub").join(f)),
            "{f}"
        );
    }
}
