//! Hardening, round 2 (issue 16), each case against a real fallbackd: the staging area
//! through links, stalled readers, HTTP/2 slowloris over h2c and TLS, names past the
//! file system's limits, special files, RFC 9112 framing, manifests under a low file
//! descriptor limit, the upload kind, SIGTERM with an idle HTTPS connection, plain logs.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::FileTypeExt as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::{Server, bearer, curl, download_token, raw, tus_create, tus_offset, upload_token};

/// Reads until the peer closes (EOF or reset) or `limit` passes; whether it closed.
fn closed_within(s: &mut impl std::io::Read, limit: Duration) -> bool {
    let start = Instant::now();
    let mut buf = vec![0u8; 65536];
    while start.elapsed() < limit {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return true,
        }
    }
    false
}

fn head_of(addr: SocketAddr, head: &str) -> String {
    let (resp, _s) = raw(addr, head, b"", 0);
    resp.unwrap_or_default()
}

// 1. The staging area through an operator's `current -> .` link.
#[test]
fn the_staging_area_is_out_of_reach_through_links() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    std::os::unix::fs::symlink(".", server.docroot().join("current")).unwrap();
    // Another user's upload in progress.
    let bob = upload_token("bob", "/bob");
    let url = tus_create(&server, &bob, "secret.bin", 100);
    let id = url.rsplit('/').next().unwrap().to_owned();
    let base = server.base(false);
    let down = download_token("alice", &["/"]);
    for path in [
        "current/.fallback/uploads/".to_owned(),
        "current/.fallback/".to_owned(),
        format!("current/.fallback/uploads/{id}.json"),
        format!("current/.fallback/uploads/{id}.part"),
    ] {
        let got = curl(
            &[
                "-H",
                &bearer(&down),
                "-H",
                "Accept: application/json",
                &format!("{base}/files/{path}"),
            ],
            None,
        );
        assert_eq!(got.status, 404, "GET {path}: {got:?}");
        assert!(
            !got.text().contains(&id),
            "GET {path} leaked {}",
            got.text()
        );
    }
    // The listing of the link itself leaves the staging area out.
    let got = curl(
        &[
            "-H",
            &bearer(&down),
            "-H",
            "Accept: application/json",
            &format!("{base}/files/current/"),
        ],
        None,
    );
    assert_eq!(got.status, 200, "{got:?}");
    assert!(!got.text().contains(".fallback"), "{}", got.text());
    // Writes: a PUT into it and a tus upload whose destination is another's part file.
    let up = upload_token("alice", "/");
    let src = dir.path().join("planted");
    std::fs::write(&src, b"planted").unwrap();
    let got = curl(
        &[
            "-T",
            src.to_str().unwrap(),
            "-H",
            &bearer(&up),
            &format!("{base}/files/current/.fallback/uploads/planted"),
        ],
        None,
    );
    assert_eq!(got.status, 404, "{got:?}");
    let got = curl(
        &[
            "-X",
            "POST",
            "-H",
            &bearer(&up),
            "-H",
            "Tus-Resumable: 1.0.0",
            "-H",
            "Upload-Length: 7",
            "-H",
            &format!(
                "Upload-Metadata: filename {}",
                base64_of(&format!("current/.fallback/uploads/{id}.part"))
            ),
            &format!("{base}/uploads"),
        ],
        None,
    );
    assert_eq!(got.status, 404, "{got:?}");
    let staging = server.docroot().join(".fallback/uploads");
    assert!(!staging.join("planted").exists());
    assert_eq!(
        std::fs::metadata(staging.join(format!("{id}.part")))
            .unwrap()
            .len(),
        0
    );
    assert_eq!(tus_offset(&url, &bob), 0);
}

fn base64_of(s: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(s)
}

/// fallbackd's resident memory, in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// Established TCP connections whose local port is `port` (the server's side).
fn established_on(port: u16) -> usize {
    let mut n = 0;
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let text = std::fs::read_to_string(table).unwrap_or_default();
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() > 3
                && f[3] == "01"
                && f[1]
                    .rsplit(':')
                    .next()
                    .and_then(|p| u16::from_str_radix(p, 16).ok())
                    == Some(port)
            {
                n += 1;
            }
        }
    }
    n
}

// 2. 64 clients that never read a 512 MiB download.
#[test]
fn stalled_readers_are_cut_and_their_memory_freed() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let f = std::fs::File::create(server.docroot().join("big.bin")).unwrap();
    f.set_len(512 << 20).unwrap();
    drop(f);
    let token = download_token("alice", &["/big.bin"]);
    let mut clients = Vec::new();
    let start = Instant::now();
    for _ in 0..64 {
        let s = TcpStream::connect(server.http).unwrap();
        // A reader that takes the first bytes and then nothing at all.
        write!(
            &s,
            "GET /files/big.bin HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\r\n"
        )
        .unwrap();
        clients.push(s);
    }
    // session_activity_timeout is 5 s in the test configuration.
    let cut = server.wait_for_log(Duration::from_secs(60), |_| {
        server
            .log_values()
            .iter()
            .filter(|v| {
                v["message"]
                    .as_str()
                    .is_some_and(|m| m.starts_with("stalled reader cut"))
            })
            .count()
            >= 64
    });
    let took = start.elapsed();
    assert!(cut, "not every stalled reader was cut");
    // Every server-side socket closed.
    let port = server.http.port();
    assert!(
        (0..200).any(|_| {
            if established_on(port) == 0 {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
            false
        }),
        "{} connections still established",
        established_on(port)
    );
    let stalled = rss_kib(server.pid());
    drop(clients);
    // Ordinary work goes on: a download that reads every byte.
    let got = curl(
        &[
            "-H",
            &bearer(&token),
            "-r",
            "0-33554431",
            "-o",
            "/dev/null",
            &format!("{}/files/big.bin", server.base(false)),
        ],
        None,
    );
    assert_eq!(got.status, 206);
    // The blocks those downloads had queued are unmapped with their connections; the
    // allocator hands back the rest once the reading threads end (the runtime retires
    // idle blocking threads after 10 s).
    let mut after = stalled;
    for _ in 0..300 {
        after = rss_kib(server.pid());
        if after < 64 * 1024 {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    eprintln!(
        "64 stalled readers: cut after {took:?}; RSS {stalled} KiB at the cut, {after} KiB after {:?}",
        start.elapsed()
    );
    assert!(after < 64 * 1024, "RSS {after} KiB after the cut");
    // The server still serves.
    assert_eq!(
        curl(
            &[
                "-H",
                &bearer(&token),
                "-r",
                "0-9",
                &format!("{}/files/big.bin", server.base(false))
            ],
            None
        )
        .status,
        206
    );
}

/// An HTTP/2 client preface and an empty SETTINGS frame.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00";
/// A HEADERS frame on stream 1 without `END_HEADERS`: `:method GET`, `:scheme http`,
/// `:path /` (HPACK static table), and no CONTINUATION ever.
const H2_OPEN_HEADERS: &[u8] = b"\x00\x00\x03\x01\x00\x00\x00\x00\x01\x82\x86\x84";

fn h2_slowloris(mut s: impl std::io::Read + std::io::Write, header_block: bool) -> bool {
    s.write_all(H2_PREFACE).unwrap();
    if header_block {
        s.write_all(H2_OPEN_HEADERS).unwrap();
    }
    s.flush().unwrap();
    // Header timeout 2 s, then a GOAWAY and the close.
    closed_within(&mut s, Duration::from_secs(20))
}

// 3. HTTP/2 slowloris, h2c prior knowledge and h2 over TLS.
#[test]
fn http2_connections_without_requests_are_cut() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_custom(dir.path(), 0, 0, "", &["--header-timeout", "2"]);
    for header_block in [false, true] {
        let start = Instant::now();
        let s = TcpStream::connect(server.http).unwrap();
        s.set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        assert!(
            h2_slowloris(s, header_block),
            "h2c (header block: {header_block}) not cut"
        );
        eprintln!(
            "h2c, header block {header_block}: cut after {:?}",
            start.elapsed()
        );

        let start = Instant::now();
        let tls = tls_h2(server.https);
        assert_eq!(tls.conn.alpn_protocol(), Some(&b"h2"[..]));
        assert!(
            h2_slowloris(tls, header_block),
            "h2 over TLS (header block: {header_block}) not cut"
        );
        eprintln!(
            "h2 over TLS, header block {header_block}: cut after {:?}",
            start.elapsed()
        );
    }
    // A real HTTP/2 client is served as before.
    let token = download_token("alice", &["/"]);
    std::fs::write(server.docroot().join("a.txt"), b"hello").unwrap();
    let got = curl(
        &[
            "--http2-prior-knowledge",
            "-H",
            &bearer(&token),
            &format!("{}/files/a.txt", server.base(false)),
        ],
        None,
    );
    assert_eq!((got.status, got.text().as_str()), (200, "hello"));
    // An idle HTTP/1.1 keep-alive connection: cut after the same timeout.
    let mut s = TcpStream::connect(server.http).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    write!(
        s,
        "GET /files/a.txt HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\r\n"
    )
    .unwrap();
    assert!(
        closed_within(&mut s, Duration::from_secs(20)),
        "idle HTTP/1.1 connection not cut"
    );
}

/// A TLS client that accepts any certificate (the server's is self-signed).
#[derive(Debug)]
struct AnyCert(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyCert {
    fn verify_server_cert(
        &self,
        _: &rustls::pki_types::CertificateDer<'_>,
        _: &[rustls::pki_types::CertificateDer<'_>],
        _: &rustls::pki_types::ServerName<'_>,
        _: &[u8],
        _: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

fn tls_with_alpn(
    addr: SocketAddr,
    alpn: &[u8],
) -> rustls::StreamOwned<rustls::ClientConnection, TcpStream> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCert(provider)))
        .with_no_client_auth();
    config.alpn_protocols = vec![alpn.to_vec()];
    let conn =
        rustls::ClientConnection::new(Arc::new(config), "localhost".try_into().unwrap()).unwrap();
    let tcp = TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let mut s = rustls::StreamOwned::new(conn, tcp);
    while s.conn.is_handshaking() {
        s.conn.complete_io(&mut s.sock).unwrap();
    }
    s
}

fn tls_h2(addr: SocketAddr) -> rustls::StreamOwned<rustls::ClientConnection, TcpStream> {
    tls_with_alpn(addr, b"h2")
}

// 4. A name over 255 bytes: 400 before the body.
#[test]
fn names_past_the_file_system_limit_are_refused_before_the_body() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let token = upload_token("alice", "/");
    let long = "n".repeat(256);
    // The head only: a server that waited for the 1 GiB body would never answer.
    let resp = head_of(
        server.http,
        &format!(
            "PUT /files/{long} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nContent-Length: 1073741824"
        ),
    );
    assert!(resp.starts_with("HTTP/1.1 400"), "{resp}");
    assert!(resp.contains("255"), "{resp}");
    // tus: refused at creation, nothing staged.
    let got = curl(
        &[
            "-X",
            "POST",
            "-H",
            &bearer(&token),
            "-H",
            "Tus-Resumable: 1.0.0",
            "-H",
            "Upload-Length: 10",
            "-H",
            &format!("Upload-Metadata: filename {}", base64_of(&long)),
            &format!("{}/uploads", server.base(false)),
        ],
        None,
    );
    assert_eq!(got.status, 400, "{got:?}");
    let staged = std::fs::read_dir(server.docroot().join(".fallback/uploads"))
        .unwrap()
        .count();
    assert_eq!(staged, 0);
    // 255 bytes is fine.
    let ok = "n".repeat(255);
    let src = dir.path().join("src");
    std::fs::write(&src, b"x").unwrap();
    let got = curl(
        &[
            "-T",
            src.to_str().unwrap(),
            "-H",
            &bearer(&token),
            &format!("{}/files/{ok}", server.base(false)),
        ],
        None,
    );
    assert_eq!(got.status, 201, "{got:?}");
}

// 5. A Unix socket (and a FIFO) in the docroot: 404, never listed.
#[test]
fn special_files_are_not_found() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let _sock = std::os::unix::net::UnixListener::bind(server.docroot().join("sock")).unwrap();
    let fifo = server.docroot().join("fifo");
    assert!(
        std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    std::fs::write(server.docroot().join("file"), b"x").unwrap();
    let token = download_token("alice", &["/"]);
    for name in ["sock", "fifo"] {
        let got = curl(
            &[
                "-H",
                &bearer(&token),
                &format!("{}/files/{name}", server.base(false)),
            ],
            None,
        );
        assert_eq!(got.status, 404, "{name}: {got:?}");
        let got = curl(
            &[
                "-I",
                "-H",
                &bearer(&token),
                &format!("{}/files/{name}", server.base(false)),
            ],
            None,
        );
        assert_eq!(got.status, 404, "HEAD {name}: {got:?}");
    }
    // Never written either: an upload onto one is refused before its body.
    let up = upload_token("alice", "/");
    let src = dir.path().join("src");
    std::fs::write(&src, b"x").unwrap();
    for name in ["sock", "fifo"] {
        let url = format!("{}/files/{name}", server.base(false));
        let got = curl(
            &["-T", src.to_str().unwrap(), "-H", &bearer(&up), &url],
            None,
        );
        assert_eq!(got.status, 409, "PUT {name}: {}", got.status);
    }
    assert!(
        std::fs::symlink_metadata(&fifo)
            .unwrap()
            .file_type()
            .is_fifo()
    );
    let got = curl(
        &[
            "-H",
            &bearer(&token),
            "-H",
            "Accept: application/json",
            &format!("{}/files/", server.base(false)),
        ],
        None,
    );
    assert_eq!(got.status, 200);
    assert!(
        got.text().contains("\"file\"")
            && !got.text().contains("sock")
            && !got.text().contains("fifo"),
        "{}",
        got.text()
    );
}

// 6 and 7. RFC 9112 framing: Host rules, transfer codings.
#[test]
fn framing_rules_of_rfc_9112() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let token = download_token("alice", &["/"]);
    std::fs::write(server.docroot().join("a.txt"), b"a").unwrap();
    let auth = format!("Authorization: Bearer {token}");
    for (what, head) in [
        ("no Host", format!("GET /files/a.txt HTTP/1.1\r\n{auth}")),
        (
            "two Host lines",
            format!("GET /files/a.txt HTTP/1.1\r\nHost: a\r\nHost: b\r\n{auth}"),
        ),
        (
            "invalid Host",
            format!("GET /files/a.txt HTTP/1.1\r\nHost: a b/c\r\n{auth}"),
        ),
        (
            "credentials in Host",
            format!("GET /files/a.txt HTTP/1.1\r\nHost: u@a\r\n{auth}"),
        ),
    ] {
        let resp = head_of(server.http, &head);
        assert!(resp.starts_with("HTTP/1.1 400"), "{what}: {resp}");
    }
    // HTTP/1.0 may leave Host out.
    let resp = head_of(server.http, &format!("GET /files/a.txt HTTP/1.0\r\n{auth}"));
    assert!(
        resp.starts_with("HTTP/1.1 200") || resp.starts_with("HTTP/1.0 200"),
        "{resp}"
    );

    let up = upload_token("alice", "/in");
    let body = b"5\r\nhello\r\n0\r\n\r\n";
    let (resp, _s) = raw(
        server.http,
        &format!(
            "PUT /files/in/g.txt HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {up}\r\nTransfer-Encoding: gzip, chunked"
        ),
        body,
        body.len(),
    );
    let resp = resp.unwrap();
    assert!(resp.starts_with("HTTP/1.1 501"), "{resp}");
    assert!(!server.docroot().join("in/g.txt").exists());
    let (resp, _s) = raw(
        server.http,
        &format!(
            "PUT /files/in/g.txt HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {up}\r\nTransfer-Encoding: chunked"
        ),
        body,
        body.len(),
    );
    assert!(resp.unwrap().starts_with("HTTP/1.1 201"));
    assert_eq!(
        std::fs::read(server.docroot().join("in/g.txt")).unwrap(),
        b"hello"
    );
}

/// The descriptor limit that leaves a process exactly `k` free descriptor numbers
/// (the limit bounds numbers, and new descriptors take the lowest free one).
fn room(pid: u32, k: usize) -> usize {
    let open: std::collections::BTreeSet<usize> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    let (mut free, mut n) = (0, 0);
    while free < k || open.contains(&n) {
        if !open.contains(&n) {
            free += 1;
        }
        n += 1;
    }
    n
}

fn set_nofile(pid: u32, n: usize) {
    let st = std::process::Command::new("prlimit")
        // The soft limit only: the hard one could not be raised back without
        // CAP_SYS_RESOURCE.
        .args(["--pid", &pid.to_string(), &format!("--nofile={n}:")])
        .status()
        .unwrap();
    assert!(st.success());
}

// 8. Manifests of many folders under a low descriptor limit: whole, or a loud failure.
#[test]
fn manifests_are_whole_or_fail_loudly() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    for i in 0..600 {
        let d = server.docroot().join(format!("tree/d{i:03}"));
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("f"), b"x").unwrap();
    }
    let token = download_token("alice", &["/"]);
    let url = format!("{}/files/tree/", server.base(false));
    // Room for a few connections and handles, far fewer than 600: the walk used to hold
    // one handle per folder still to list, and left out those it could not open.
    set_nofile(server.pid(), room(server.pid(), 32));
    let got = curl(
        &[
            "-H",
            &bearer(&token),
            "-H",
            "Accept: application/json",
            &url,
        ],
        None,
    );
    assert_eq!(got.status, 200, "{}", got.status);
    let m: serde_json::Value = serde_json::from_str(&got.text()).unwrap();
    let entries = m["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 1200, "a listing cut short");
    // The client downloads all of it, under the same limit.
    let out = dir.path().join("out");
    let got = download(&server, &token, &out, dir.path());
    assert!(
        got.status.success(),
        "{}",
        String::from_utf8_lossy(&got.stderr)
    );
    assert_eq!(std::fs::read_dir(&out).unwrap().count(), 600);
    // So low that only the connection fits: a 500 with the reason in the log, never a
    // shorter 200.
    set_nofile(server.pid(), room(server.pid(), 1));
    let got = curl(
        &[
            "-H",
            &bearer(&token),
            "-H",
            "Accept: application/json",
            &url,
        ],
        None,
    );
    set_nofile(server.pid(), 4096);
    // The client, so starved a server: a failed transfer, never a success.
    set_nofile(server.pid(), room(server.pid(), 2));
    let client = download(&server, &token, &dir.path().join("starved"), dir.path());
    set_nofile(server.pid(), 4096);
    assert!(!client.status.success(), "the client reported success");
    assert!(String::from_utf8_lossy(&client.stderr).contains("500"));
    assert_eq!(got.status, 500, "{}", got.status);
    assert!(server.wait_for_log(Duration::from_secs(10), |v| v["status"] == 500));
}

/// `fallback download` of `/tree` into `out` (bounded: `timeout 120`).
fn download(
    server: &Server,
    token: &str,
    out: &std::path::Path,
    state: &std::path::Path,
) -> std::process::Output {
    std::process::Command::new("timeout")
        .arg("120")
        .arg(crate::fallback_bin())
        .arg("download")
        .arg(format!(
            "fasp://alice@127.0.0.1:1/tree?auth=no&token={token}&httpport={}&fallback=yes&enc=none",
            server.http.port()
        ))
        .arg(out)
        // 5xx are retried: a few quick attempts are enough here.
        .args(["--retries", "2", "--max-retry-delay", "1"])
        .env("XDG_STATE_HOME", state.join("state"))
        .output()
        .unwrap()
}

// 9. The upload kind is not client metadata.
#[test]
fn a_tus_client_cannot_claim_the_single_shot_kind() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let token = upload_token("alice", "/in");
    let got = curl(
        &[
            "-X",
            "POST",
            "-H",
            &bearer(&token),
            "-H",
            "Tus-Resumable: 1.0.0",
            "-H",
            "Upload-Length: 1000000",
            "-H",
            &format!(
                "Upload-Metadata: filename {},single-shot",
                base64_of("k.bin")
            ),
            &format!("{}/uploads", server.base(false)),
        ],
        None,
    );
    assert_eq!(got.status, 201, "{got:?}");
    let path = got.header("location").unwrap();
    let url = format!("http://{}{path}", server.http);
    // A PATCH whose body breaks off after 4 KiB.
    let head = crate::patch_head(&server, &path, 1_000_000, &token);
    let (_, s) = raw(server.http, &head, &vec![1u8; 1_000_000], 4096);
    drop(s);
    assert!(server.wait_for_log(Duration::from_secs(30), |v| v["message"] == "transfer end"));
    // Still there, resumable.
    assert!(tus_offset(&url, &token) <= 4096);
}

// 10. SIGTERM with an idle HTTPS keep-alive connection: a drain, exit 0.
#[test]
fn sigterm_drains_with_an_idle_https_connection() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path());
    std::fs::write(server.docroot().join("a.txt"), b"hello").unwrap();
    let token = download_token("alice", &["/"]);
    let mut s = tls_with_alpn(server.https, b"http/1.1");
    write!(
        s,
        "GET /files/a.txt HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\r\n"
    )
    .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !got.ends_with(b"hello") {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(e) => panic!("{e}"),
        }
    }
    assert!(got.starts_with(b"HTTP/1.1 200"));
    // The connection stays open, idle, kept alive.
    server.signal("TERM");
    let status = server
        .wait_exit(Duration::from_secs(30))
        .expect("fallbackd did not exit");
    assert!(status.success(), "{status:?}");
    let log = server.log_values();
    assert!(
        log.iter().any(|v| v["message"] == "all connections closed"),
        "{log:?}"
    );
    let errors: Vec<_> = log.iter().filter(|v| v["level"] == "ERROR").collect();
    assert!(errors.is_empty(), "{errors:?}");
    drop(s);
}

// 11. A log written to a file: no colour, plain fields.
#[test]
fn logs_in_a_file_are_plain() {
    let dir = tempfile::tempdir().unwrap();
    let docroot = dir.path().join("data");
    std::fs::create_dir_all(&docroot).unwrap();
    let conf = dir.path().join("aspera.conf");
    std::fs::write(&conf, crate::config_text(&docroot)).unwrap();
    let log = dir.path().join("fallbackd.log");
    let mut child = std::process::Command::new(crate::fallbackd_bin())
        .arg("--config")
        .arg(&conf)
        .args([
            "--http-port",
            "0",
            "--https-port",
            "0",
            "--log-format",
            "text",
        ])
        .env_remove("NO_COLOR")
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let mut addr = None;
    for _ in 0..400 {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if let Some(a) = text
            .lines()
            .find(|l| {
                l.contains("listening") && l.contains("scheme=\"http\"")
                    || l.contains("listening") && l.contains("scheme=http")
            })
            .and_then(|l| l.split("addr=").nth(1))
            .and_then(|a| a.split_whitespace().next())
            .and_then(|a| a.parse::<SocketAddr>().ok())
        {
            addr = Some(a);
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let addr = addr.expect("no listening line");
    let token = upload_token("alice", "/in");
    let (resp, _s) = raw(
        addr,
        &format!(
            "PUT /files/in/x HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nContent-Length: 3"
        ),
        b"abc",
        3,
    );
    assert!(resp.unwrap().starts_with("HTTP/1.1 201"));
    let _ = child.kill();
    let _ = child.wait();
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(!text.contains('\x1b'), "ANSI codes in a log file:\n{text}");
    assert!(text.contains("bytes=3"), "{text}");
    assert!(!text.contains("Some("), "{text}");
}

// 13. Links for browsers and wget: what a URL carries grants little.
#[test]
fn link_tokens_grant_one_path_for_minutes() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    std::fs::write(server.docroot().join("a.txt"), b"hello").unwrap();
    std::fs::write(server.docroot().join("b.txt"), b"other").unwrap();
    let full = download_token("alice", &["/"]);
    let base = server.base(false);
    let got = curl(
        &[
            "-X",
            "POST",
            "-H",
            &bearer(&full),
            &format!("{base}/links/a.txt?ttl=86400"),
        ],
        None,
    );
    assert_eq!(got.status, 200, "{got:?}");
    let v: serde_json::Value = serde_json::from_str(&got.text()).unwrap();
    assert!(v["ttl_secs"].as_u64().unwrap() <= 3600, "{v}");
    let link = v["url"].as_str().unwrap();
    assert!(
        link.starts_with("/aspera/http/files/a.txt?token="),
        "{link}"
    );
    let token = v["token"].as_str().unwrap();
    // The link works for its file, with wget as a browser would follow it.
    let out = dir.path().join("a.txt");
    let st = std::process::Command::new("wget")
        .args(["-q", "-O"])
        .arg(&out)
        .arg(format!("http://{}{link}", server.http))
        .status()
        .unwrap();
    assert!(st.success());
    assert_eq!(std::fs::read(&out).unwrap(), b"hello");
    // And for nothing else: another file, an upload, making more links.
    let got = curl(&[&format!("{base}/files/b.txt?token={token}")], None);
    assert_eq!(got.status, 403);
    let src = dir.path().join("src");
    std::fs::write(&src, b"x").unwrap();
    let got = curl(
        &[
            "-T",
            src.to_str().unwrap(),
            "-H",
            &bearer(token),
            &format!("{base}/files/a.txt"),
        ],
        None,
    );
    assert_eq!(got.status, 403);
    let got = curl(
        &["-X", "POST", &format!("{base}/links/a.txt?token={token}")],
        None,
    );
    assert_eq!(got.status, 401);
    // A token that may not read the path cannot make a link to it.
    let narrow = download_token("alice", &["/b.txt"]);
    let got = curl(
        &[
            "-X",
            "POST",
            "-H",
            &bearer(&narrow),
            &format!("{base}/links/a.txt"),
        ],
        None,
    );
    assert_eq!(got.status, 403);
    // Its claims: download, the one path, minutes.
    let inspect = std::process::Command::new(crate::fallback_bin())
        .args(["token", "inspect", token])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&inspect.stdout);
    assert!(
        text.contains("download") && text.contains("/a.txt") && !text.contains("/b.txt"),
        "{text}"
    );
}

/// One HTTP/2 frame.
fn h2_frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = u32::try_from(payload.len()).unwrap().to_be_bytes();
    let mut f = vec![len[1], len[2], len[3], kind, flags];
    f.extend_from_slice(&stream.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// Reads frames until the peer closes or `limit` passes: (type, payload) of each.
fn h2_frames(s: &mut TcpStream, limit: Duration) -> Vec<(u8, Vec<u8>)> {
    let start = Instant::now();
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; 65536];
    while start.elapsed() < limit {
        match s.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                // Frames arrived and the peer has gone quiet: enough.
                if buf.len() >= 9 && start.elapsed() > Duration::from_secs(2) {
                    break;
                }
            }
            Err(_) => break,
        }
    }
    let mut frames = Vec::new();
    let mut at = 0;
    while at + 9 <= buf.len() {
        let len =
            usize::from(buf[at]) << 16 | usize::from(buf[at + 1]) << 8 | usize::from(buf[at + 2]);
        if at + 9 + len > buf.len() {
            break;
        }
        frames.push((buf[at + 3], buf[at + 9..at + 9 + len].to_vec()));
        at += 9 + len;
    }
    frames
}

// 3 (limits). HTTP/2's stated limits: advertised, and a rapid-reset flood
// (CVE-2023-44487) ends its connection while the server goes on serving.
#[test]
fn http2_limits_are_advertised_and_rapid_resets_refused() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let mut s = TcpStream::connect(server.http).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    s.write_all(H2_PREFACE).unwrap();
    let frames = h2_frames(&mut s, Duration::from_secs(3));
    let settings = frames
        .iter()
        .find(|(t, _)| *t == 4)
        .expect("no SETTINGS from the server");
    let value = |id: u16| {
        settings.1.chunks(6).find_map(|c| {
            (u16::from_be_bytes([c[0], c[1]]) == id)
                .then(|| u32::from_be_bytes([c[2], c[3], c[4], c[5]]))
        })
    };
    assert_eq!(value(3), Some(100), "SETTINGS_MAX_CONCURRENT_STREAMS");
    assert_eq!(value(6), Some(64 * 1024), "SETTINGS_MAX_HEADER_LIST_SIZE");

    // HEADERS (GET /health, END_STREAM | END_HEADERS) then RST_STREAM(CANCEL), 1,000
    // times in one burst.
    let mut s = TcpStream::connect(server.http).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let mut burst = H2_PREFACE.to_vec();
    let block = b"\x82\x86\x04\x07/health\x01\x01x";
    for i in 0..1000u32 {
        let id = 2 * i + 1;
        burst.extend(h2_frame(1, 0x05, id, block));
        burst.extend(h2_frame(3, 0, id, &8u32.to_be_bytes()));
    }
    let _ = s.write_all(&burst);
    let frames = h2_frames(&mut s, Duration::from_secs(10));
    let goaway = frames.iter().find(|(t, _)| *t == 7);
    let code = goaway.map(|(_, p)| u32::from_be_bytes([p[4], p[5], p[6], p[7]]));
    // ENHANCE_YOUR_CALM.
    assert_eq!(
        code,
        Some(0xb),
        "no GOAWAY(ENHANCE_YOUR_CALM) after {} frames",
        frames.len()
    );
    assert_eq!(
        curl(&[&format!("{}/health", server.base(false))], None).status,
        200
    );
}

// 10 (errors). An error is printed once: a port already taken.
#[test]
fn a_start_error_is_printed_once() {
    let dir = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let docroot = dir.path().join("data");
    std::fs::create_dir_all(&docroot).unwrap();
    let conf = dir.path().join("aspera.conf");
    std::fs::write(&conf, crate::config_text(&docroot)).unwrap();
    let out = std::process::Command::new(crate::fallbackd_bin())
        .arg("--config")
        .arg(&conf)
        .args(["--http-port", &port.to_string(), "--https-port", "0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.matches("Address already in use").count(), 1, "{err}");
    assert_eq!(err.matches("cannot listen on").count(), 1, "{err}");
}
