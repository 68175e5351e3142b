//! Operating the daemon: --check-config, --version.

use std::process::Command;

use crate::fallbackd_bin;

fn fixture(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures/conf")
        .join(name)
}

fn check(conf: &std::path::Path) -> (i32, String) {
    let out = Command::new(fallbackd_bin())
        .arg("--check-config")
        .arg("--config")
        .arg(conf)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

#[test]
fn check_config_validates_like_nginx_t() {
    let here = tempfile::tempdir().unwrap();
    let (code, text) = check(&fallback_testkit::on_this_host(
        &fixture("multi-user.conf"),
        here.path(),
    ));
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("configuration is valid"), "{text}");

    let (code, text) = check(&fixture("broken/bad-port.conf"));
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("bad-port.conf:4:16"), "{text}");
    assert!(text.contains("configuration test failed"), "{text}");

    // A certificate that is not there: the daemon would not start, so the check fails.
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("tls.conf");
    std::fs::write(
        &conf,
        format!(
            "<CONF version=\"2\"><http_server><enable_https>true</enable_https>\
             <cert_file>{0}/missing.pem</cert_file><key_file>{0}/missing.key</key_file>\
             </http_server><default><file_system><access><paths><path><absolute>{0}</absolute>\
             </path></paths></access></file_system></default></CONF>",
            dir.path().display()
        ),
    )
    .unwrap();
    let (code, text) = check(&conf);
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("TLS"), "{text}");
}

#[test]
fn version_is_printed() {
    let out = Command::new(fallbackd_bin())
        .arg("--version")
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("fallbackd {}", env!("CARGO_PKG_VERSION"))
    );
}

mod signals {
    use std::io::Write as _;
    use std::time::Duration;

    use fallback_token::{Form, Key, Token};

    use crate::{
        SECRET, Server, bearer, config_text, curl, download_token, make_file, patch_head, raw,
        sha256_file, tus_create, tus_offset, tus_patch_rest, upload_token,
    };

    const ROTATED: &str = "the-rotated-secret-for-reload-tests-0123";

    fn get(server: &Server, token: &str) -> u16 {
        curl(
            &[
                "-H",
                &bearer(token),
                &format!("{}/files/f.txt", server.base(false)),
            ],
            None,
        )
        .status
    }

    fn hup_and_wait(server: &Server, message: &str) {
        server.signal("HUP");
        assert!(
            server.wait_for_log(Duration::from_secs(10), |v| v["message"]
                .as_str()
                .is_some_and(|m| m.starts_with(message))),
            "no {message:?} in the log"
        );
    }

    /// The testkit's configuration with `token` in place of its `<token>` section.
    fn with_token(docroot: &std::path::Path, token: &str) -> String {
        let text = config_text(docroot);
        let old = format!("<token><encryption_key>{SECRET}</encryption_key></token>");
        assert!(text.contains(&old));
        text.replace(&old, &format!("<token>{token}</token>"))
    }

    /// Key acceptance is a function of the file and the clock: the same token through an
    /// instance reloaded to a file and one freshly started on it gets the same answer,
    /// before a rotation, after it (the old key retired with an end), and after the old
    /// key's revocation (removed from the file) or the end of its time.
    #[test]
    fn reloaded_and_restarted_instances_accept_exactly_the_same_tokens() {
        let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let a = Server::start(dir_a.path());
        std::fs::write(a.docroot().join("f.txt"), b"file").unwrap();
        let old = download_token("alice", &["/"]);
        let rotated = Key::derive(ROTATED, Form::Signed).unwrap();
        let new = Token::download("alice", &["/"]).issue(&rotated).unwrap();
        let stranger = Key::derive("never-configured-secret-0123456789", Form::Signed).unwrap();
        let stranger = Token::download("alice", &["/"]).issue(&stranger).unwrap();
        assert_eq!(get(&a, &old), 200);
        assert_eq!(get(&a, &new), 401, "not configured yet");

        // Each step: A reloads to the file, B starts fresh on it; both answer alike.
        let step = |b: &mut Option<Server>, token_section: &str, expect: [u16; 3], what: &str| {
            std::fs::write(
                dir_a.path().join("aspera.conf"),
                with_token(&a.docroot(), token_section),
            )
            .unwrap();
            hup_and_wait(&a, "configuration reloaded");
            *b = None;
            let file = dir_b.path().join("fixture.conf");
            std::fs::write(
                &file,
                with_token(std::path::Path::new("@DATA@"), token_section),
            )
            .unwrap();
            let fresh = Server::start_fixture_file(dir_b.path(), &file);
            std::fs::write(fresh.docroot().join("f.txt"), b"file").unwrap();
            for (token, want, name) in [
                (&old, expect[0], "old key"),
                (&new, expect[1], "new key"),
                (&stranger, expect[2], "a key never configured"),
            ] {
                assert_eq!(get(&a, token), want, "{what}: {name}, reloaded instance");
                assert_eq!(
                    get(&fresh, token),
                    want,
                    "{what}: {name}, restarted instance"
                );
            }
            *b = Some(fresh);
        };
        let mut b = None;
        let retired = |until: &str| {
            format!(
                "<encryption_key>{ROTATED}</encryption_key><retired_keys><key>\
                 <encryption_key>{SECRET}</encryption_key><accept_until>{until}</accept_until>\
                 </key></retired_keys>"
            )
        };
        // Rotated: the new key issues, the old one verifies until its end.
        step(
            &mut b,
            &retired("2999-01-01T00:00:00Z"),
            [200, 200, 401],
            "rotation",
        );
        // Revoked: the old key removed from the file.
        let only_new = format!("<encryption_key>{ROTATED}</encryption_key>");
        step(&mut b, &only_new, [401, 200, 401], "revocation");
        // Retired, but its time is over.
        step(
            &mut b,
            &retired("2020-01-01"),
            [401, 200, 401],
            "end of the old key's time",
        );

        // A broken file: refused, the running configuration stays.
        std::fs::write(
            dir_a.path().join("aspera.conf"),
            "<CONF version=\"2\"><http_server><http_port>99999</http_port>",
        )
        .unwrap();
        hup_and_wait(&a, "reload refused");
        assert_eq!(get(&a, &new), 200);
        assert_eq!(get(&a, &old), 401);
        assert!(
            a.log_values().iter().any(|v| v["reason"]
                .as_str()
                .is_some_and(|r| r.contains("key-retired"))),
            "a retired key's refusal is logged as such"
        );
    }

    #[test]
    fn a_transfer_in_flight_finishes_on_the_settings_it_started_with() {
        let dir = tempfile::tempdir().unwrap();
        let server = Server::start(dir.path());
        let token = upload_token("alice", "/in");
        let len = 2u64 << 20;
        let url = tus_create(&server, &token, "flight.bin", len);
        let path = url
            .split_once(&server.http.to_string())
            .unwrap()
            .1
            .to_owned();
        let data = vec![b'f'; 2 << 20];
        let head = patch_head(&server, &path, len, &token);
        let (none, mut s) = raw(
            server.http,
            &format!("{head}\r\nConnection: close"),
            &data,
            1 << 20,
        );
        assert!(none.is_none());
        // Uploads denied from now on.
        let text = config_text(&server.docroot()).replace(
            "<in><value>token</value></in>",
            "<in><value>deny</value></in>",
        );
        std::fs::write(dir.path().join("aspera.conf"), text).unwrap();
        hup_and_wait(&server, "configuration reloaded");
        s.write_all(&data[1 << 20..]).unwrap();
        let mut resp = String::new();
        std::io::Read::read_to_string(&mut s, &mut resp).unwrap();
        assert!(resp.starts_with("HTTP/1.1 204"), "{resp}");
        assert_eq!(
            std::fs::read(server.docroot().join("in/flight.bin")).unwrap(),
            data
        );
        // A new upload is refused by the new settings.
        let src = dir.path().join("x");
        std::fs::write(&src, b"x").unwrap();
        let put = curl(
            &[
                "-T",
                src.to_str().unwrap(),
                "-H",
                &bearer(&token),
                &format!("{}/files/in/x", server.base(false)),
            ],
            None,
        );
        assert_eq!(put.status, 403, "{put:?}");
    }

    #[test]
    fn sigterm_during_an_upload_leaves_it_resumable() {
        let dir = tempfile::tempdir().unwrap();
        let mut server = Server::start_custom(dir.path(), 0, 0, "", &["--drain-timeout", "1"]);
        let token = upload_token("alice", "/in");
        let len = 8u64 << 20;
        let src = dir.path().join("src.bin");
        make_file(&src, len, 5);
        let data = std::fs::read(&src).unwrap();
        let url = tus_create(&server, &token, "term.bin", len);
        let path = url
            .split_once(&server.http.to_string())
            .unwrap()
            .1
            .to_owned();
        let head = patch_head(&server, &path, len, &token);
        let (none, _held) = raw(server.http, &head, &data, 3 << 20);
        assert!(none.is_none());
        // SIGTERM while the transfer is in flight: its bytes are arriving.
        let id = path.rsplit('/').next().unwrap();
        fallback_testkit::wait_for_part_bytes(&server.docroot(), id);
        server.signal("TERM");
        let status = server
            .wait_exit(Duration::from_secs(15))
            .expect("fallbackd did not stop");
        assert!(status.success(), "{status:?}");
        assert!(!server.docroot().join("in/term.bin").exists());
        // Restarted where clients expect it: the upload resumes from what was kept.
        let (http, https) = (server.http.port(), server.https.port());
        drop(server);
        let server = Server::start_on(dir.path(), http, https);
        let offset = tus_offset(&url, &token);
        assert!(offset > 0 && offset <= 3 << 20, "offset {offset}");
        let got = tus_patch_rest(&url, &token, &src, offset);
        assert_eq!(got.status, 204, "{got:?}");
        assert_eq!(
            sha256_file(&server.docroot().join("in/term.bin")),
            sha256_file(&src)
        );
    }
}

#[test]
fn syslog_gets_local2_messages() {
    use std::os::unix::net::UnixDatagram;
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("log.sock");
    let listener = UnixDatagram::bind(&sock).unwrap();
    listener
        .set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    let server =
        crate::Server::start_custom(dir.path(), 0, 0, "", &["--syslog", sock.to_str().unwrap()]);
    let mut buf = vec![0u8; 4096];
    let mut seen = Vec::new();
    while !seen.iter().any(|m: &String| m.contains("listening")) {
        let n = listener
            .recv(&mut buf)
            .expect("no syslog message within 10 s");
        seen.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
    let pid = server.pid();
    // local2 (18) * 8 + informational (6) = 150.
    let line = seen.iter().find(|m| m.contains("listening")).unwrap();
    assert!(
        line.starts_with(&format!("<150>fallbackd[{pid}]: ")),
        "{line}"
    );
    assert!(!line.contains("fbt1_"));
    drop(server);

    // The real product's name, for rsyslog rules and monitoring keyed on it.
    let other = tempfile::tempdir().unwrap();
    let server = crate::Server::start_custom(
        other.path(),
        0,
        0,
        "",
        &[
            "--syslog",
            sock.to_str().unwrap(),
            "--syslog-tag",
            "asperahttpd",
        ],
    );
    let pid = server.pid();
    let want = format!("asperahttpd[{pid}]: ");
    loop {
        let n = listener
            .recv(&mut buf)
            .expect("no syslog message within 10 s");
        let m = String::from_utf8_lossy(&buf[..n]).into_owned();
        if m.contains("listening") && m.starts_with(&format!("<150>{want}")) {
            break;
        }
    }
}

#[test]
fn sighup_swaps_the_tls_certificate() {
    use std::time::Duration;
    let dir = tempfile::tempdir().unwrap();
    // Writes a new certificate and key; returns the certificate's DER, hex.
    let write_cert = |name: &str| {
        let ck = rcgen::generate_simple_self_signed(vec![name.to_owned()]).unwrap();
        std::fs::write(dir.path().join("cert.pem"), ck.cert.pem()).unwrap();
        std::fs::write(dir.path().join("key.pem"), ck.signing_key.serialize_pem()).unwrap();
        crate::hex(ck.cert.der())
    };
    // The certificate a client is served, DER hex (Python's ssl, no verification).
    let served = |server: &crate::Server| {
        let script = format!(
            "import ssl; print(ssl.PEM_cert_to_DER_cert(ssl.get_server_certificate(('127.0.0.1', {}))).hex())",
            server.https.port()
        );
        let out = Command::new("python3")
            .args(["-c", &script])
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };
    let alpha = write_cert("alpha.test");
    let extra = format!(
        "<cert_file>{0}/cert.pem</cert_file><key_file>{0}/key.pem</key_file>",
        dir.path().display()
    );
    let server = crate::Server::start_custom(dir.path(), 0, 0, &extra, &[]);
    assert_eq!(served(&server), alpha);
    let beta = write_cert("beta.test");
    server.signal("HUP");
    assert!(
        server.wait_for_log(Duration::from_secs(10), |v| v["message"]
            == "TLS certificate reloaded")
    );
    assert_eq!(served(&server), beta);
}

/// A configuration serving `root` on a free port, for `--check-config`.
fn conf_with_root(dir: &std::path::Path, root: &str) -> std::path::PathBuf {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let conf = dir.join("s3.conf");
    std::fs::write(
        &conf,
        format!(
            "<CONF version=\"2\"><http_server><enable_http>true</enable_http>\
             <http_port>{port}</http_port><bind_address>127.0.0.1</bind_address></http_server>\
             <default><file_system><access><paths><path><absolute>{root}</absolute>\
             </path></paths></access></file_system></default></CONF>"
        ),
    )
    .unwrap();
    conf
}

#[test]
fn check_config_checks_s3_buckets_without_showing_credentials() {
    let moto = fallback_testkit::Moto::start();
    moto.create_bucket("docroot");
    let dir = tempfile::tempdir().unwrap();
    let port = moto.endpoint().rsplit(':').next().unwrap().to_owned();
    let root = |bucket: &str| {
        format!(
            "s3://AKIDFALLBACK:se%2FcretXYZ@127.0.0.1:{port}/{bucket}/users/$(name)?allow-http=true"
        )
    };
    let (code, text) = check(&conf_with_root(dir.path(), &root("docroot")));
    assert_eq!(code, 0, "{text}");
    assert!(
        text.contains("bucket-checked") && text.contains("writable"),
        "{text}"
    );
    assert!(
        !text.contains("se/cretXYZ") && !text.contains("AKIDFALLBACK"),
        "{text}"
    );

    let (code, text) = check(&conf_with_root(dir.path(), &root("nosuchbucket")));
    assert_eq!(code, 1, "{text}");
    assert!(
        text.contains("bucket-unusable") && text.contains("no such bucket"),
        "{text}"
    );
    assert!(
        !text.contains("se/cretXYZ") && !text.contains("AKIDFALLBACK"),
        "{text}"
    );

    // Plain HTTP without allow-http: refused, and it says so.
    let https_only = root("docroot").replace("?allow-http=true", "");
    let (code, text) = check(&conf_with_root(dir.path(), &https_only));
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("bucket-unusable"), "{text}");
}

fn print_proxy(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(fallbackd_bin())
        .arg("--print-proxy-config")
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `--print-proxy-config` takes the members from the configuration's HTTP listener
/// (a wildcard bind reached on the loopback) and the timeouts from its
/// `session_activity_timeout`; refuses what a proxy cannot reach. The e2e suite runs
/// Apache and nginx with what it prints (`crates/fallback-e2e`).
#[test]
fn print_proxy_config_follows_the_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let conf = |http: bool, extra: &str| {
        let path = dir.path().join("aspera.conf");
        std::fs::write(
            &path,
            format!(
                "<CONF version=\"2\"><http_server><enable_http>{http}</enable_http>\
                 <http_port>8123</http_port><session_activity_timeout>42</session_activity_timeout>\
                 {extra}</http_server><default><file_system><access><paths><path>\
                 <absolute>{}</absolute></path></paths></access></file_system></default></CONF>",
                dir.path().display()
            ),
        )
        .unwrap();
        path.to_str().unwrap().to_owned()
    };
    let file = conf(true, "<bind_address>0.0.0.0</bind_address>");
    let (code, apache, err) = print_proxy(&["apache", "--config", &file]);
    assert_eq!(code, 0, "{err}");
    assert!(
        apache.contains("BalancerMember http://127.0.0.1:8123 retry=1 upgrade=websocket"),
        "{apache}"
    );
    assert!(apache.contains("ProxyTimeout 342"), "{apache}");
    assert!(
        apache.contains("ProxyPass        /aspera/http-gwy"),
        "{apache}"
    );
    assert!(!apache.contains('@'), "a placeholder is left: {apache}");
    // The token never reaches the proxy's log: paths only.
    let format = apache
        .lines()
        .find(|l| l.starts_with("LogFormat"))
        .unwrap_or_default();
    assert!(
        format.contains("%U") && !format.contains("%r") && !format.contains("%q"),
        "{format}"
    );
    let (code, nginx, _) = print_proxy(&[
        "nginx",
        "--config",
        &file,
        "--proxy-member",
        "10.0.0.7:8123",
    ]);
    assert_eq!(code, 0);
    assert!(
        nginx.contains("server 10.0.0.7:8123 max_fails=1"),
        "{nginx}"
    );
    assert!(!nginx.contains("127.0.0.1:8123"), "{nginx}");
    let format: String = nginx
        .lines()
        .skip_while(|l| !l.starts_with("log_format"))
        .take(2)
        .collect();
    assert!(
        format.contains("$uri") && !format.contains("$request ") && !format.contains("$args"),
        "{format}"
    );
    let (code, location, _) = print_proxy(&["nginx-location", "--config", &file]);
    assert_eq!(code, 0);
    assert!(
        location.contains("proxy_request_buffering off;"),
        "{location}"
    );
    assert!(location.contains("proxy_read_timeout 342s;"), "{location}");

    // No HTTP listener: the proxy could not reach it.
    let file = conf(false, "<enable_https>true</enable_https>");
    let (code, out, err) = print_proxy(&["nginx", "--config", &file]);
    assert_eq!(code, 1, "{out}");
    assert!(err.contains("enable_http"), "{err}");
    // A member that is not HOST:PORT.
    let (code, _, err) = print_proxy(&["apache", "--proxy-member", "backend"]);
    assert_eq!(code, 1);
    assert!(err.contains("HOST:PORT"), "{err}");
}

/// The text `man` shows for the page `page` of `dir/man`, with what groff said about it.
fn man(dir: &std::path::Path, page: &str) -> (String, String) {
    let out = Command::new("man")
        .env("MANWIDTH", "100")
        .arg("--warnings")
        .arg("-l")
        .arg(dir.join("man").join(page))
        .output()
        .expect("man must be installed (apt-get install man-db; cargo xtask ci does)");
    assert!(out.status.success(), "man -l {page}");
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The man pages teach what `--help` cannot: fallbackd(8) has the article's two
/// deployments, signals, files, exit status, environment and examples; fallback(1)
/// each subcommand's exit status and examples; both point to the aspera.conf reference.
/// They are what `--generate-assets` writes (and the package installs).
#[test]
fn man_pages_have_the_operators_sections() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(fallbackd_bin())
        .arg("--generate-assets")
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (page, warnings) = man(dir.path(), "fallbackd.8");
    for heading in [
        "NAME",
        "SYNOPSIS",
        "DESCRIPTION",
        "OPTIONS",
        "DEPLOYMENTS",
        "SIGNALS",
        "FILES",
        "EXIT STATUS",
        "ENVIRONMENT",
        "EXAMPLES",
        "SEE ALSO",
    ] {
        assert!(
            page.lines().any(|l| l == heading),
            "fallbackd(8) has no {heading} section:\n{page}"
        );
    }
    for needle in [
        "SIGHUP",
        "SIGTERM",
        "Direct mode",
        "Indirect (proxy) mode",
        "--print-proxy-config",
        "FALLBACKD_CONFIG",
        "docs/configuration.md",
    ] {
        assert!(
            page.contains(needle),
            "fallbackd(8) does not mention {needle}"
        );
    }
    assert!(!warnings.contains("warning"), "{warnings}");

    let out = Command::new(crate::fallback_bin())
        .arg("generate-assets")
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (page, warnings) = man(dir.path(), "fallback.1");
    for heading in [
        "EXIT STATUS",
        "ENVIRONMENT",
        "FILES",
        "EXAMPLES",
        "SEE ALSO",
    ] {
        assert!(
            page.lines().any(|l| l == heading),
            "fallback(1) has no {heading} section:\n{page}"
        );
    }
    for sub in [
        "config check",
        "token verify",
        "url parse",
        "upload",
        "doctor",
    ] {
        assert!(
            page.contains(sub),
            "fallback(1) says nothing of {sub}'s exit status"
        );
    }
    assert!(page.contains("docs/configuration.md"));
    assert!(!warnings.contains("warning"), "{warnings}");
    // Each subcommand has its own page.
    assert!(dir.path().join("man/fallback-token-verify.1").exists());
}
