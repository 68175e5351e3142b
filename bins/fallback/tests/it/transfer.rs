//! `fallback upload|download|doctor` against a real fallbackd.

use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};

use base64::Engine as _;
use fallback_testkit::{
    Server, download_token, fallback_bin, make_file, sha256_file, upload_token,
};
use sha2::Digest as _;

/// A FASP URL for the test server: HTTP (enc=none) on its port; SSH port 1 (closed).
fn url(server: &Server, path: &str, token: &str, extra: &str) -> String {
    format!(
        "fasp://alice@127.0.0.1:1{path}?auth=no&token={token}&httpport={}&fallback=yes&enc=none{extra}",
        server.http.port()
    )
}

fn cli(args: &[&str], state: &Path) -> Output {
    Command::new(fallback_bin())
        .args(args)
        .arg("--state-dir")
        .arg(state)
        .output()
        .unwrap()
}

fn spawn(args: &[&str], state: &Path) -> Child {
    Command::new(fallback_bin())
        .args(args)
        .arg("--state-dir")
        .arg(state)
        .arg("--json")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// Reads JSON events from `child` until one satisfies `until`; returns them all.
fn events_until(
    child: &mut Child,
    until: impl Fn(&serde_json::Value) -> bool,
) -> Vec<serde_json::Value> {
    let out = child.stdout.as_mut().unwrap();
    let mut seen = Vec::new();
    for line in BufReader::new(out).lines().map_while(Result::ok) {
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        let stop = until(&v);
        seen.push(v);
        if stop {
            break;
        }
    }
    seen
}

fn json_events(out: &Output) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// Bytes moved by the first file done, from the JSON events.
fn transferred(out: &Output) -> u64 {
    json_events(out)
        .into_iter()
        .find(|e| e["event"] == "file_done")
        .and_then(|e| e["transferred"].as_u64())
        .expect("a file_done event with transferred")
}

/// Fails with the first failed files and stderr when the command did not succeed.
fn assert_succeeded(out: &Output) {
    let failures: Vec<_> = json_events(out)
        .into_iter()
        .filter(|e| e["event"] == "file_failed")
        .take(3)
        .collect();
    assert!(
        out.status.success(),
        "{:?} {failures:?} {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

fn tree_digests(root: &Path) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
                out.push((rel, sha256_file(&p)));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn a_tree_of_a_thousand_files_and_some_large_ones_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let src = dir.path().join("tree");
    for i in 0..1000u64 {
        let d = src.join(format!("d{:02}", i % 10));
        std::fs::create_dir_all(&d).unwrap();
        make_file(&d.join(format!("f{i:04}.txt")), 100 + (i * 37) % 4000, i);
    }
    make_file(&src.join("big-1.bin"), 40 << 20, 1001);
    make_file(&src.join("d03/big-2.bin"), 25 << 20, 1002);
    make_file(&src.join("empty.bin"), 0, 1003);
    let state = dir.path().join("state");
    let up = url(&server, "/in", &upload_token("alice", "/in"), "");
    let out = cli(
        &[
            "upload",
            &up,
            src.to_str().unwrap(),
            "--parallel",
            "8",
            "--json",
        ],
        &state,
    );
    assert_succeeded(&out);
    let summary = json_events(&out)
        .into_iter()
        .find(|e| e["event"] == "summary")
        .unwrap();
    assert_eq!(summary["summary"]["files"], 1003);
    assert_eq!(
        tree_digests(&server.docroot().join("in/tree")),
        tree_digests(&src)
    );
    let down = url(&server, "/in/tree", &download_token("alice", &["/in"]), "");
    let dest = dir.path().join("back");
    let out = cli(
        &[
            "download",
            &down,
            dest.to_str().unwrap(),
            "--parallel",
            "8",
            "--json",
        ],
        &state,
    );
    assert_succeeded(&out);
    assert_eq!(tree_digests(&dest), tree_digests(&src));
    // Resume state is removed on success.
    assert_eq!(
        std::fs::read_dir(state.join("uploads")).map_or(0, Iterator::count),
        0
    );
}

#[test]
fn a_server_killed_mid_file_and_restarted_is_ridden_out_by_retries() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let (http, https) = (server.http.port(), server.https.port());
    let src = dir.path().join("long.bin");
    let size: u64 = 48 << 20;
    make_file(&src, size, 9);
    let state = dir.path().join("state");
    let up = url(&server, "/in", &upload_token("alice", "/in"), "");
    let mut child = spawn(
        &[
            "upload",
            &up,
            src.to_str().unwrap(),
            "--limit-rate",
            "16M",
            "--max-retry-delay",
            "1",
        ],
        &state,
    );
    events_until(&mut child, |e| {
        e["event"] == "progress" && e["done"].as_u64() > Some(size / 4)
    });
    server.kill9();
    // The client notices (a network error, then a retry with backoff); the server
    // comes back on the same ports while it waits.
    let noticed = events_until(&mut child, |e| e["event"] == "retry");
    assert!(noticed.iter().any(|e| e["event"] == "retry"), "{noticed:?}");
    let server = Server::start_on(dir.path(), http, https);
    let rest = events_until(&mut child, |e| e["event"] == "summary");
    let status = child.wait().unwrap();
    assert!(status.success(), "{rest:?}");
    assert_eq!(
        sha256_file(&server.docroot().join("in/long.bin")),
        sha256_file(&src)
    );
}

#[test]
fn a_client_killed_mid_transfer_resumes_when_started_again() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let src = dir.path().join("resume.bin");
    let size: u64 = 32 << 20;
    make_file(&src, size, 21);
    let state = dir.path().join("state");
    // Upload: killed at about a third, then run again.
    let up = url(&server, "/in", &upload_token("alice", "/in"), "");
    let mut child = spawn(
        &["upload", &up, src.to_str().unwrap(), "--limit-rate", "16M"],
        &state,
    );
    events_until(&mut child, |e| {
        e["event"] == "progress" && e["done"].as_u64() > Some(size / 3)
    });
    child.kill().unwrap();
    child.wait().unwrap();
    // At once: a server still finishing the cut request answers 423 or a stale
    // offset, which the client retries or corrects.
    let out = cli(&["upload", &up, src.to_str().unwrap(), "--json"], &state);
    assert_succeeded(&out);
    let sent = transferred(&out);
    assert!(
        sent < size && sent > 0,
        "sent {sent} of {size} the second time"
    );
    assert_eq!(
        sha256_file(&server.docroot().join("in/resume.bin")),
        sha256_file(&src)
    );
    // Download: the same.
    let down = url(
        &server,
        "/in/resume.bin",
        &download_token("alice", &["/in"]),
        "",
    );
    let dest = dir.path().join("copy.bin");
    let mut child = spawn(
        &[
            "download",
            &down,
            dest.to_str().unwrap(),
            "--limit-rate",
            "16M",
        ],
        &state,
    );
    events_until(&mut child, |e| {
        e["event"] == "progress" && e["done"].as_u64() > Some(size / 3)
    });
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(!dest.exists(), "a partial download sits at the final name");
    assert!(dir.path().join("copy.bin.fallback-part").exists());
    let out = cli(
        &["download", &down, dest.to_str().unwrap(), "--json"],
        &state,
    );
    assert_succeeded(&out);
    let got = transferred(&out);
    assert!(got < size, "received {got} of {size} the second time");
    assert_eq!(sha256_file(&dest), sha256_file(&src));
    assert!(!dir.path().join("copy.bin.fallback-part").exists());
}

#[test]
fn the_fallback_decision() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let state = dir.path().join("state");
    let f = dir.path().join("x.txt");
    std::fs::write(&f, b"x").unwrap();
    let token = upload_token("alice", "/in");
    // SSH port closed: falls back, and says why.
    let ok = cli(
        &[
            "upload",
            &url(&server, "/in", &token, ""),
            f.to_str().unwrap(),
            "--json",
        ],
        &state,
    );
    assert!(ok.status.success());
    let words: Vec<String> = json_events(&ok)
        .iter()
        .filter(|e| e["event"] == "decision")
        .map(|e| e["message"].as_str().unwrap().to_owned())
        .collect();
    assert!(
        words
            .iter()
            .any(|w| w.contains("SSH port 1") && w.contains("not reachable")),
        "{words:?}"
    );
    assert!(
        words
            .iter()
            .any(|w| w.contains("fallback=yes: using HTTP fallback")),
        "{words:?}"
    );
    assert!(
        words.iter().any(|w| w.contains("enc=none: plain HTTP")),
        "{words:?}"
    );
    // fallback=no: refused, naming the parameter, exit 3.
    let no = url(&server, "/in", &token, "").replace("fallback=yes", "fallback=no");
    let out = cli(&["upload", &no, f.to_str().unwrap()], &state);
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("fallback=yes"));
    // --force-http goes anyway.
    let out = cli(
        &["upload", &no, f.to_str().unwrap(), "--force-http", "--json"],
        &state,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("--force-http"));
    // No token: refused before any connection.
    let out = cli(
        &[
            "upload",
            &no.replace(&format!("token={token}&"), ""),
            f.to_str().unwrap(),
        ],
        &state,
    );
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no token"));
}

/// Not at a terminal (a log file, cron, CI): each decision is a line on standard
/// error, as the article's troubleshooting step 3 expects to find in client logs; -q
/// keeps them out. (Standard error is a pipe here, never a terminal.)
#[test]
fn decisions_are_logged_on_stderr_without_a_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let state = dir.path().join("state");
    let f = dir.path().join("x.txt");
    std::fs::write(&f, b"x").unwrap();
    let up = url(&server, "/in", &upload_token("alice", "/in"), "");
    let out = cli(&["upload", &up, f.to_str().unwrap()], &state);
    assert_succeeded(&out);
    let err = String::from_utf8_lossy(&out.stderr);
    for want in [
        "fallback: FASP SSH port 1 on 127.0.0.1 is not reachable",
        "fallback: the URL says fallback=yes: using HTTP fallback",
        "fallback: enc=none: plain HTTP, port",
        "fallback base http://127.0.0.1:",
    ] {
        assert!(err.contains(want), "{want:?} not in stderr:\n{err}");
    }
    // One line each, nothing but lines.
    assert!(err.lines().all(|l| l.starts_with("fallback: ")), "{err}");
    // With --json too (stdout is the JSON; the log stays on stderr).
    let out = cli(&["upload", &up, f.to_str().unwrap(), "--json"], &state);
    assert!(String::from_utf8_lossy(&out.stderr).contains("using HTTP fallback"));
    // -q: nothing but failures.
    let out = cli(&["upload", &up, f.to_str().unwrap(), "-q"], &state);
    assert_succeeded(&out);
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains("fallback: "),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A certificate made the usual way (`openssl req -x509`: self-signed, `CA:TRUE`) is
/// trusted with `--cacert` naming it, as curl does, and refused without.
#[test]
fn a_self_signed_server_certificate_is_trusted_with_cacert() {
    let dir = tempfile::tempdir().unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params =
        rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
            .unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let cert = params.self_signed(&key).unwrap();
    let (cert_pem, key_pem) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert_pem, cert.pem()).unwrap();
    std::fs::write(&key_pem, key.serialize_pem()).unwrap();
    let server = Server::start_custom(
        dir.path(),
        0,
        0,
        &format!(
            "<cert_file>{}</cert_file><key_file>{}</key_file>",
            cert_pem.display(),
            key_pem.display()
        ),
        &[],
    );
    std::fs::create_dir_all(server.docroot().join("pub")).unwrap();
    std::fs::write(server.docroot().join("pub/f.txt"), b"over tls").unwrap();
    let token = download_token("alice", &["/pub"]);
    let link = format!(
        "fasp://alice@127.0.0.1:1/pub/f.txt?token={token}&httpport={}&fallback=yes&enc=aes128",
        server.https.port()
    );
    let state = dir.path().join("state");
    let out_dir = dir.path().join("out");
    std::fs::create_dir_all(&out_dir).unwrap();
    let refused = cli(&["download", &link, out_dir.to_str().unwrap()], &state);
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("certificate"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    assert!(!out_dir.join("f.txt").exists());
    let trusted = cli(
        &[
            "download",
            &link,
            out_dir.to_str().unwrap(),
            "--cacert",
            cert_pem.to_str().unwrap(),
        ],
        &state,
    );
    assert_succeeded(&trusted);
    assert_eq!(std::fs::read(out_dir.join("f.txt")).unwrap(), b"over tls");
    // doctor agrees.
    let (code, text) = doctor(&link, &["--cacert", cert_pem.to_str().unwrap()]);
    assert!(text.contains("[ok  ] TLS trust"), "{code} {text}");

    // Or the key pinned, as doctor prints it: the SHA-256 of the public key.
    let pin = format!(
        "sha256:{}",
        base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(
            rcgen::PublicKeyData::subject_public_key_info(&key)
        ))
    );
    let (_, text) = doctor(&link, &[]);
    assert!(text.contains(&format!("key pin {pin}")), "{text}");
    std::fs::remove_file(out_dir.join("f.txt")).unwrap();
    let pinned = cli(
        &["download", &link, out_dir.to_str().unwrap(), "--pin", &pin],
        &state,
    );
    assert_succeeded(&pinned);
    assert_eq!(std::fs::read(out_dir.join("f.txt")).unwrap(), b"over tls");
    let (code, text) = doctor(&link, &["--pin", &pin]);
    assert!(text.contains("[ok  ] TLS trust"), "{code} {text}");
    // Another key's pin: refused, with the server's pin named, nothing written.
    std::fs::remove_file(out_dir.join("f.txt")).unwrap();
    let other = format!(
        "sha256:{}",
        base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(
            rcgen::PublicKeyData::subject_public_key_info(&rcgen::KeyPair::generate().unwrap())
        ))
    );
    let refused = cli(
        &[
            "download",
            &link,
            out_dir.to_str().unwrap(),
            "--pin",
            &other,
        ],
        &state,
    );
    assert!(!refused.status.success());
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(
        err.contains("matches no --pin") && err.contains(&pin),
        "{err}"
    );
    assert!(!out_dir.join("f.txt").exists());
    // A pin that is not one is refused before anything is sent.
    let bad = cli(
        &[
            "download",
            &link,
            out_dir.to_str().unwrap(),
            "--pin",
            "sha256:nope",
        ],
        &state,
    );
    assert_eq!(bad.status.code(), Some(2), "{bad:?}");
}

fn doctor(url: &str, extra: &[&str]) -> (i32, String) {
    let out = Command::new(fallback_bin())
        .args(["doctor", url])
        .args(extra)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn doctor_names_each_broken_setup() {
    let dir = tempfile::tempdir().unwrap();
    // A CA and a certificate for another name, for the mismatch case.
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).unwrap();
    let srv_key = rcgen::KeyPair::generate().unwrap();
    let srv = rcgen::CertificateParams::new(vec!["fallback.test".to_owned()])
        .unwrap()
        .signed_by(&srv_key, &ca)
        .unwrap();
    let (ca_pem, cert, key) = (
        dir.path().join("ca.pem"),
        dir.path().join("cert.pem"),
        dir.path().join("key.pem"),
    );
    std::fs::write(&ca_pem, ca.pem()).unwrap();
    std::fs::write(&cert, srv.pem()).unwrap();
    std::fs::write(&key, srv_key.serialize_pem()).unwrap();
    let server = Server::start_custom(
        dir.path(),
        0,
        0,
        &format!(
            "<cert_file>{}</cert_file><key_file>{}</key_file>",
            cert.display(),
            key.display()
        ),
        &[],
    );
    std::fs::create_dir_all(server.docroot().join("pub")).unwrap();
    let token = download_token("alice", &["/pub"]);
    let healthy = url(&server, "/pub", &token, "");
    let (code, text) = doctor(&healthy, &[]);
    assert_eq!(code, 0, "{text}");
    assert!(
        text.contains("[ok  ] token: accepted for download of /pub"),
        "{text}"
    );

    assert!(
        text.contains("[ok  ] token user: the token is for alice"),
        "{text}"
    );
    // The URL names bob, the token alice: the server would act as alice.
    let (code, text) = doctor(&healthy.replace("fasp://alice@", "fasp://bob@"), &[]);
    assert_eq!(code, 1, "{text}");
    assert!(
        text.contains(
            "[FAIL] token user: the token is for user \"alice\" but the URL names \"bob\""
        ),
        "{text}"
    );

    let (code, text) = doctor(&url(&server, "/pub", "fbt1_AAAA", ""), &[]);
    assert_eq!(code, 1);
    assert!(text.contains("[FAIL] token: refused (401"), "{text}");
    let (code, text) = doctor(&healthy.replace("&fallback=yes", ""), &[]);
    assert_eq!(code, 1);
    assert!(text.contains("[FAIL] fallback=yes"), "{text}");
    let wrong_port = healthy.replace(&format!("httpport={}", server.http.port()), "httpport=1");
    let (code, text) = doctor(&wrong_port, &[]);
    assert_eq!(code, 1);
    assert!(
        text.contains("[FAIL] fallback port: 127.0.0.1:1 does not answer"),
        "{text}"
    );
    // HTTPS with a certificate for another name, trusted CA: the name is the problem.
    let tls = format!(
        "fasp://alice@127.0.0.1:1/pub?token={token}&httpport={}&fallback=yes&enc=aes128",
        server.https.port()
    );
    let (code, text) = doctor(&tls, &["--cacert", ca_pem.to_str().unwrap()]);
    assert_eq!(code, 1, "{text}");
    assert!(
        text.contains("names DNSName(fallback.test)") || text.contains("fallback.test"),
        "{text}"
    );
    assert!(text.contains("[FAIL] TLS trust"), "{text}");
    assert!(text.contains("does not name this host"), "{text}");
    // Server down.
    drop(server);
    let (code, text) = doctor(&healthy, &[]);
    assert_eq!(code, 1);
    assert!(text.contains("[FAIL] fallback port"), "{text}");
}

/// A download over several connections (byte ranges), killed after its first
/// checkpoint, resumes those ranges when run again; into a bare file name in the
/// current directory (whose parent is "").
#[test]
fn a_ranged_download_killed_resumes_its_ranges_when_started_again() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let size: u64 = 160 << 20;
    make_file(&server.docroot().join("big.bin"), size, 22);
    let state = dir.path().join("state");
    let down = url(&server, "/big.bin", &download_token("alice", &["/"]), "");
    let run = |extra: &[&str]| {
        let mut c = Command::new(fallback_bin());
        c.current_dir(dir.path())
            .args(["download", &down, "copy.bin", "--streams", "4", "--json"])
            .args(extra)
            .arg("--state-dir")
            .arg(&state);
        c
    };
    let mut child = run(&["--limit-rate", "64M"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Past the first checkpoint (64 MiB, fdatasynced, then saved).
    events_until(&mut child, |e| {
        e["event"] == "progress" && e["done"].as_u64() > Some(100 << 20)
    });
    child.kill().unwrap();
    child.wait().unwrap();
    let dest = dir.path().join("copy.bin");
    assert!(!dest.exists(), "a partial download sits at the final name");
    assert!(dir.path().join("copy.bin.fallback-part").exists());
    let out = run(&[]).output().unwrap();
    assert_succeeded(&out);
    let got = transferred(&out);
    assert!(
        got <= size - (64 << 20),
        "received {got} of {size} the second time"
    );
    assert_eq!(
        sha256_file(&dest),
        sha256_file(&server.docroot().join("big.bin"))
    );
    assert!(!dir.path().join("copy.bin.fallback-part").exists());
    // The decision is in the log.
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("4 connections each"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `doctor --config` with an `s3://` docroot reaches the bucket from this host.
#[test]
fn doctor_checks_the_buckets_of_the_servers_conf() {
    let moto = fallback_testkit::Moto::start();
    moto.create_bucket("doctor-ok");
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    std::fs::create_dir_all(server.docroot().join("pub")).unwrap();
    let token = download_token("alice", &["/pub"]);
    let target = url(&server, "/pub", &token, "");
    let port = moto.endpoint().rsplit(':').next().unwrap().to_owned();
    let conf = |bucket: &str| {
        let p = dir.path().join(format!("{bucket}.conf"));
        std::fs::write(
            &p,
            format!(
                "<CONF><http_server><enable_http>true</enable_http></http_server><default>\
                 <file_system><access><paths><path><absolute>\
                 s3://AKIDDOCTOR:doctor-secret@127.0.0.1:{port}/{bucket}/d?allow-http=true\
                 </absolute></path></paths></access></file_system></default></CONF>"
            ),
        )
        .unwrap();
        p
    };
    let ok = conf("doctor-ok");
    let (_, text) = doctor(&target, &["--config", ok.to_str().unwrap()]);
    assert!(
        text.contains("[ok  ] bucket: s3://<redacted>@127.0.0.1:"),
        "{text}"
    );
    assert!(text.contains("writable"), "{text}");
    let missing = conf("doctor-missing");
    let (code, text) = doctor(&target, &["--config", missing.to_str().unwrap()]);
    assert_eq!(code, 1, "{text}");
    assert!(
        text.contains("[FAIL] bucket:") && text.contains("no such bucket"),
        "{text}"
    );
    assert!(
        !text.contains("doctor-secret") && !text.contains("AKIDDOCTOR"),
        "{text}"
    );
}
