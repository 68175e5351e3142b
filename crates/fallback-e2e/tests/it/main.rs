//! Proxy mode, for real: Apache (as in the article) and nginx in front of fallbackd
//! instances that share storage and key. Run by `cargo xtask e2e`, which installs the
//! proxies.

// Test helpers panic on purpose: a panic is how a failed expectation is reported.
#![allow(clippy::unwrap_used)]

mod gateway;
mod s3;

use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use fallback_e2e::{Kind, Proxy};
use fallback_testkit::{
    Server, bearer, curl, download_token, fallback_bin, make_file, sha256_file, upload_token,
};

/// fallbackd in proxy mode: loopback only, believing the proxy's X-Forwarded-* headers.
fn backend(dir: &Path) -> Server {
    Server::start_custom(dir, 0, 0, "", &["--trust-proxy", "127.0.0.1"])
}

fn fasp(proxy: &Proxy, https: bool, path: &str, token: &str) -> String {
    let (port, enc) = if https {
        (proxy.https_port, "aes128")
    } else {
        (proxy.http_port, "none")
    };
    format!(
        "fasp://alice@127.0.0.1:1{path}?auth=no&token={token}&httpport={port}&fallback=yes&enc={enc}"
    )
}

fn cli(args: &[&str], proxy: &Proxy, state: &Path) -> Output {
    Command::new(fallback_bin())
        .args(args)
        .arg("--cacert")
        .arg(&proxy.certs.ca)
        .arg("--state-dir")
        .arg(state)
        .output()
        .unwrap()
}

fn ok(out: &Output) {
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The article's layout, both schemes, the project's CLI and plain curl.
fn transfers_through(kind: Kind) {
    let dir = tempfile::tempdir().unwrap();
    let a = backend(dir.path());
    let b = backend(dir.path());
    let proxy = Proxy::start(kind, &[a.http.port(), b.http.port()]);
    let ca = proxy.certs.ca.to_str().unwrap().to_owned();
    let src = dir.path().join("src.bin");
    make_file(&src, 20 << 20, 77);
    let want = sha256_file(&src);
    let up = upload_token("alice", "/in");
    let down = download_token("alice", &["/in"]);

    // curl: PUT over HTTP, GET over HTTPS (the proxy terminates TLS).
    let put = curl(
        &[
            "-T",
            src.to_str().unwrap(),
            "-H",
            &bearer(&up),
            &format!("{}/files/in/curl.bin", proxy.base(false)),
        ],
        None,
    );
    assert_eq!(put.status, 201, "{put:?}");
    let got = dir.path().join("got-curl.bin");
    let get = curl(
        &[
            "--cacert",
            &ca,
            "-H",
            &bearer(&down),
            &format!("{}/files/in/curl.bin", proxy.base(true)),
        ],
        Some(&got),
    );
    assert_eq!(get.status, 200, "{get:?}");
    assert_eq!(sha256_file(&got), want);

    // The CLI: upload over HTTPS (enc=aes128), download over HTTP (enc=none).
    let state = dir.path().join("state");
    ok(&cli(
        &[
            "upload",
            &fasp(&proxy, true, "/in", &up),
            src.to_str().unwrap(),
        ],
        &proxy,
        &state,
    ));
    assert_eq!(sha256_file(&a.docroot().join("in/src.bin")), want);
    let back = dir.path().join("got-cli.bin");
    ok(&cli(
        &[
            "download",
            &fasp(&proxy, false, "/in/src.bin", &down),
            back.to_str().unwrap(),
        ],
        &proxy,
        &state,
    ));
    assert_eq!(sha256_file(&back), want);

    // A user who must encrypt: accepted through /aspera/https, refused through
    // /aspera/http, where the proxy tells fallbackd the client spoke plain HTTP.
    std::fs::write(a.docroot().join("in/c.txt"), b"carol").unwrap();
    let carol = download_token("carol", &["/in"]);
    let tls = curl(
        &[
            "--cacert",
            &ca,
            "-H",
            &bearer(&carol),
            &format!("{}/files/in/c.txt", proxy.base(true)),
        ],
        None,
    );
    assert_eq!((tls.status, tls.text().as_str()), (200, "carol"));
    let plain = curl(
        &[
            "-H",
            &bearer(&carol),
            &format!("{}/files/in/c.txt", proxy.base(false)),
        ],
        None,
    );
    assert_eq!(plain.status, 403, "{plain:?}");

    // The real client address reaches the log; tokens reach no log.
    let tagged = curl(
        &[
            "-H",
            &bearer(&down),
            "-H",
            "X-Forwarded-For: 203.0.113.9",
            &format!("{}/files/in/c.txt", proxy.base(false)),
        ],
        None,
    );
    assert_eq!(tagged.status, 200);
    // Either instance may have served it; its log line arrives through a pipe.
    let deadline = Instant::now() + Duration::from_secs(5);
    let seen = loop {
        let found = [&a, &b]
            .iter()
            .any(|s| s.log_values().iter().any(|v| v["client"] == "203.0.113.9"));
        if found || Instant::now() > deadline {
            break found;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(seen, "the forwarded client address was not logged");
    assert!(
        !proxy.access_log().contains("fbt1_"),
        "a token reached the proxy's access log"
    );
}

/// Kill the instance serving an upload at about half; the client's retry goes through
/// the other instance (same storage, same key) and completes.
fn failover_through(kind: Kind) {
    let dir = tempfile::tempdir().unwrap();
    let a = backend(dir.path());
    let b = backend(dir.path());
    let proxy = Proxy::start(kind, &[a.http.port(), b.http.port()]);
    let src = dir.path().join("long.bin");
    let size: u64 = 48 << 20;
    make_file(&src, size, 78);
    let up = upload_token("alice", "/in");
    let mut child = Command::new(fallback_bin())
        .args([
            "upload",
            &fasp(&proxy, false, "/in", &up),
            src.to_str().unwrap(),
        ])
        .args([
            "--limit-rate",
            "16M",
            "--max-retry-delay",
            "1",
            "--json",
            "--state-dir",
        ])
        .arg(dir.path().join("state"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut events = Vec::new();
    for line in lines.by_ref().map_while(Result::ok) {
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        let half = v["event"] == "progress" && v["done"].as_u64() > Some(size / 2);
        events.push(v);
        if half {
            break;
        }
    }
    let serving_a = a.logged("transfer start");
    let serving_b = b.logged("transfer start");
    assert!(
        serving_a ^ serving_b,
        "exactly one instance should be serving the upload"
    );
    let (victim, survivor) = if serving_a { (a, b) } else { (b, a) };
    victim.kill9();
    for line in lines.map_while(Result::ok) {
        events.push(serde_json::from_str(&line).unwrap());
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "the upload did not finish");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{events:?}");
    assert!(
        events.iter().any(|e| e["event"] == "retry"),
        "no retry: {events:?}"
    );
    assert_eq!(
        sha256_file(&survivor.docroot().join("in/long.bin")),
        sha256_file(&src)
    );
    assert!(
        survivor.wait_for_log(Duration::from_secs(5), |v| v["message"]
            == "upload complete"),
        "the survivor did not complete it"
    );
}

#[test]
fn apache_transfers() {
    transfers_through(Kind::Apache);
}

#[test]
fn apache_failover() {
    failover_through(Kind::Apache);
}

#[test]
fn nginx_transfers() {
    transfers_through(Kind::Nginx);
}

#[test]
fn nginx_failover() {
    failover_through(Kind::Nginx);
}

/// A proxy writes the request line of a failed upstream request, query string included,
/// to its error log (nginx: `request: "GET ...?token=..."`; its access log, with the
/// shipped format, has no query). What can land there is a link token: the full token
/// made it in `Authorization`, which no log records, and the link reads one file for
/// minutes.
fn error_logs_hold_only_link_tokens(kind: Kind) {
    let dir = tempfile::tempdir().unwrap();
    let a = backend(dir.path());
    let proxy = Proxy::start(kind, &[a.http.port()]);
    std::fs::write(a.docroot().join("report.pdf"), b"%PDF").unwrap();
    let full = download_token("alice", &["/"]);
    let got = curl(
        &[
            "-X",
            "POST",
            "-H",
            &bearer(&full),
            &format!("{}/links/report.pdf", proxy.base(false)),
        ],
        None,
    );
    assert_eq!(got.status, 200, "{}", got.text());
    let v: serde_json::Value = serde_json::from_str(&got.text()).unwrap();
    let link = format!(
        "http://127.0.0.1:{}{}",
        proxy.http_port,
        v["url"].as_str().unwrap()
    );
    let token = v["token"].as_str().unwrap().to_owned();
    assert_eq!(curl(&[&link], None).status, 200);
    // The backend goes away: the proxy logs the failed request.
    a.kill9();
    let got = curl(&[&link], None);
    assert!(got.status >= 500, "{}", got.status);
    let log = proxy.error_log();
    if kind == Kind::Nginx {
        assert!(
            log.contains(&token),
            "nginx no longer logs the request line:\n{log}"
        );
    }
    assert!(
        !log.contains(&full),
        "the full token reached the error log:\n{log}"
    );
    assert!(
        !proxy.access_log().contains(&token),
        "the access log holds a token"
    );
    let claims = Command::new(fallback_bin())
        .args(["token", "inspect", &token])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&claims.stdout);
    assert!(
        text.contains("download") && text.contains("/report.pdf"),
        "{text}"
    );
    assert!(v["ttl_secs"].as_u64().unwrap() <= 300, "{v}");
}

#[test]
fn nginx_error_log_holds_only_link_tokens() {
    error_logs_hold_only_link_tokens(Kind::Nginx);
}

#[test]
fn apache_error_log_holds_only_link_tokens() {
    error_logs_hold_only_link_tokens(Kind::Apache);
}
