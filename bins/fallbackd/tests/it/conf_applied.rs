//! aspera.conf settings as operators write them, applied over HTTP: each fixture under
//! `fixtures/conf/applied/` served by a real fallbackd, with PUT and tus alike.

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::time::Instant;

use crate::{
    Server, bearer, curl, download_token, make_file, sha256_file, tus_create, tus_offset,
    tus_patch_rest, tus_post, upload_token,
};

fn put(server: &Server, token: &str, path: &str, file: &Path, extra: &[&str]) -> crate::Got {
    let mut args = vec!["-H", "Expect:", "-T"];
    let f = file.display().to_string();
    args.push(&f);
    let h = bearer(token);
    args.extend(["-H", &h]);
    args.extend(extra);
    let url = format!("{}/files{path}", server.base(false));
    args.push(&url);
    curl(&args, None)
}

/// tus: create, then send the whole file in one PATCH; the PATCH's answer.
fn tus_upload(server: &Server, token: &str, name: &str, file: &Path) -> crate::Got {
    let len = std::fs::metadata(file).unwrap().len();
    let url = tus_create(server, token, name, len);
    tus_patch_rest(&url, token, file, 0)
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o7777
}

#[test]
fn name_docroots_put_each_user_in_their_own_folder() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    for d in ["users/alice", "users/bob", "users/peter", "branch/peter"] {
        std::fs::create_dir_all(data.join(d)).unwrap();
    }
    let server = Server::start_fixture(dir.path(), "applied/name-docroot.conf");
    let src = dir.path().join("src.bin");
    make_file(&src, 1000, 1);
    for user in ["alice", "bob"] {
        let got = put(&server, &upload_token(user, "/"), "/f.bin", &src, &[]);
        assert_eq!(got.status, 201, "{user}: {got:?}");
        assert_eq!(
            sha256_file(&data.join(format!("users/{user}/f.bin"))),
            sha256_file(&src)
        );
    }
    let got = tus_upload(&server, &upload_token("alice", "/"), "t.bin", &src);
    assert_eq!(got.status, 204, "{got:?}");
    assert!(data.join("users/alice/t.bin").is_file());
    // Paths stay docroot-relative: alice reads her own /f.bin, never bob's.
    std::fs::write(data.join("users/bob/only-bob.txt"), b"bob").unwrap();
    let got = curl(
        &[
            "-H",
            &bearer(&download_token("alice", &["/only-bob.txt"])),
            &format!("{}/files/only-bob.txt", server.base(false)),
        ],
        None,
    );
    assert_eq!(got.status, 404, "{got:?}");
    // A user with no folder yet: refused plainly (403, the operator must create it),
    // not a 500 a client would retry.
    let got = put(&server, &upload_token("carol", "/"), "/f.bin", &src, &[]);
    assert_eq!(got.status, 403, "{got:?}");
    assert!(
        String::from_utf8_lossy(&got.body).contains("docroot does not exist"),
        "{got:?}"
    );
    // A name that would climb out of the docroot never stands for $(name).
    let got = put(&server, &upload_token("..", "/"), "/f.bin", &src, &[]);
    assert_eq!(got.status, 403, "{got:?}");
    assert!(!data.join("f.bin").exists());
}

#[test]
fn peer_ip_docroots_follow_the_client_a_trusted_proxy_names() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    for d in ["users/peter", "branch/peter"] {
        std::fs::create_dir_all(data.join(d)).unwrap();
    }
    let server = Server::start_fixture_with(
        dir.path(),
        "applied/name-docroot.conf",
        &["--trust-proxy", "127.0.0.1"],
    );
    let src = dir.path().join("src.bin");
    make_file(&src, 100, 2);
    let token = upload_token("peter", "/");
    let got = put(
        &server,
        &token,
        "/a.bin",
        &src,
        &["-H", "X-Forwarded-For: 10.1.1.1"],
    );
    assert_eq!(got.status, 201, "{got:?}");
    assert!(data.join("branch/peter/a.bin").is_file());
    let got = put(
        &server,
        &token,
        "/b.bin",
        &src,
        &["-H", "X-Forwarded-For: 10.2.2.2"],
    );
    assert_eq!(got.status, 201, "{got:?}");
    assert!(data.join("users/peter/b.bin").is_file());
    assert!(!data.join("branch/peter/b.bin").exists());
}

#[test]
fn overwrite_deny_never_replaces_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_fixture(dir.path(), "applied/overwrite-deny.conf");
    let data = dir.path().join("data");
    let (first, second) = (dir.path().join("1.bin"), dir.path().join("2.bin"));
    make_file(&first, 5000, 1);
    make_file(&second, 7000, 2);
    let token = upload_token("alice", "/");
    assert_eq!(put(&server, &token, "/f.bin", &first, &[]).status, 201);
    let got = put(&server, &token, "/f.bin", &second, &[]);
    assert_eq!(got.status, 409, "{got:?}");
    assert!(
        String::from_utf8_lossy(&got.body).contains("may not replace"),
        "{got:?}"
    );
    let got = tus_post(&server, &token, "f.bin", 7000);
    assert_eq!(got.status, 409, "{got:?}");
    assert_eq!(sha256_file(&data.join("f.bin")), sha256_file(&first));
    // New names are fine, over tus too.
    assert_eq!(tus_upload(&server, &token, "g.bin", &second).status, 204);
    assert_eq!(sha256_file(&data.join("g.bin")), sha256_file(&second));
    // A file that appears while a tus upload is in progress is not replaced either.
    let url = tus_create(&server, &token, "late.bin", 7000);
    std::fs::write(data.join("late.bin"), b"appeared meanwhile").unwrap();
    let got = tus_patch_rest(&url, &token, &second, 0);
    assert!(got.status >= 400, "{got:?}");
    assert_eq!(
        std::fs::read(data.join("late.bin")).unwrap(),
        b"appeared meanwhile"
    );
}

#[test]
fn create_modes_and_grant_masks_are_the_modes_given() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_fixture(dir.path(), "applied/create-modes.conf");
    let data = dir.path().join("data");
    let src = dir.path().join("src.bin");
    make_file(&src, 300, 3);
    // exact: file_create_mode 0640, directory_create_mode 2750, whatever the umask.
    let got = put(
        &server,
        &upload_token("exact", "/"),
        "/e/sub/f.bin",
        &src,
        &[],
    );
    assert_eq!(got.status, 201, "{got:?}");
    assert_eq!(mode(&data.join("e/sub/f.bin")), 0o640);
    assert_eq!(mode(&data.join("e")), 0o2750);
    assert_eq!(mode(&data.join("e/sub")), 0o2750);
    let got = tus_upload(&server, &upload_token("exact", "/t"), "x/f.bin", &src);
    assert_eq!(got.status, 204, "{got:?}");
    assert_eq!(mode(&data.join("t/x/f.bin")), 0o640);
    assert_eq!(mode(&data.join("t/x")), 0o2750);
    // Everyone else: the grant masks, 600 and 700.
    let got = put(&server, &upload_token("alice", "/"), "/m/f.bin", &src, &[]);
    assert_eq!(got.status, 201, "{got:?}");
    assert_eq!(mode(&data.join("m/f.bin")), 0o600);
    assert_eq!(mode(&data.join("m")), 0o700);
    let got = tus_upload(&server, &upload_token("alice", "/"), "n/f.bin", &src);
    assert_eq!(got.status, 204, "{got:?}");
    assert_eq!(mode(&data.join("n/f.bin")), 0o600);
    assert_eq!(mode(&data.join("n")), 0o700);
}

/// Seconds `f` takes.
fn timed(f: impl FnOnce() -> crate::Got) -> (f64, crate::Got) {
    let t = Instant::now();
    let got = f();
    (t.elapsed().as_secs_f64(), got)
}

#[test]
fn rate_caps_slow_transfers_down_and_resume_still_works() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_fixture(dir.path(), "applied/rate-caps.conf");
    let data = dir.path().join("data");
    // 2 MB under a cap of 8000 kbps (1 MB/s) takes about 2 s: twice the fixture's
    // one-second activity timeout, which waiting on the cap must not trip.
    let src = dir.path().join("src.bin");
    make_file(&src, 2_000_000, 4);
    let want = sha256_file(&src);
    let (slow, fast) = (upload_token("slow", "/"), upload_token("fast", "/"));
    // The cap is a floor on the time, whatever the machine: 2 MB at 1 MB/s cannot take
    // less than about 2 s (a slow machine only takes longer). Which user got which cap
    // is in the log, checked below.
    let floor = 1.8;

    let got = put(&server, &fast, "/fast.bin", &src, &[]);
    assert_eq!(got.status, 201, "{got:?}");
    let (capped, got) = timed(|| put(&server, &slow, "/slow.bin", &src, &[]));
    assert_eq!(got.status, 201, "{got:?}");
    assert_eq!(sha256_file(&data.join("slow.bin")), want);
    assert!(
        capped >= floor,
        "PUT: capped at 1 MB/s, 2 MB took {capped:.3} s"
    );

    let got = tus_upload(&server, &fast, "fast-tus.bin", &src);
    assert_eq!(got.status, 204, "{got:?}");
    // Capped tus, resumed: half, then the rest, under the cap both times.
    let half = dir.path().join("half.bin");
    std::fs::write(&half, &std::fs::read(&src).unwrap()[..1_000_000]).unwrap();
    let (capped, got) = timed(|| {
        let url = tus_create(&server, &slow, "slow-tus.bin", 2_000_000);
        let first = tus_patch_rest(&url, &slow, &half, 0);
        assert_eq!(first.status, 204, "{first:?}");
        let offset = tus_offset(&url, &slow);
        assert_eq!(offset, 1_000_000);
        tus_patch_rest(&url, &slow, &src, offset)
    });
    assert_eq!(got.status, 204, "{got:?}");
    assert_eq!(sha256_file(&data.join("slow-tus.bin")), want);
    assert!(
        capped >= floor,
        "tus: capped at 1 MB/s, 2 MB took {capped:.3} s"
    );

    // Downloads: the out cap.
    let get = |user: &str, out: &Path| {
        curl(
            &[
                "-H",
                &bearer(&download_token(user, &["/fast.bin"])),
                &format!("{}/files/fast.bin", server.base(false)),
            ],
            Some(out),
        )
    };
    let (o1, o2) = (dir.path().join("o1"), dir.path().join("o2"));
    let got = get("fast", &o1);
    assert_eq!(got.status, 200, "{got:?}");
    let (capped, got) = timed(|| get("slow", &o2));
    assert_eq!(got.status, 200, "{got:?}");
    assert_eq!(sha256_file(&o2), want);
    assert!(
        capped >= floor,
        "download: capped at 1 MB/s, 2 MB took {capped:.3} s"
    );
    // The log says which cap applied.
    assert!(
        server
            .log_values()
            .iter()
            .any(|v| v["user"] == "slow" && v["rate_cap_kbps"] == 8000),
        "no transfer start line names the cap"
    );
}

#[test]
fn read_write_and_dir_allowed_and_restrictions_are_enforced() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_fixture(dir.path(), "applied/permissions.conf");
    let data = dir.path().join("data");
    std::fs::create_dir_all(data.join("private")).unwrap();
    std::fs::create_dir_all(data.join("pub")).unwrap();
    std::fs::write(data.join("pub/a.txt"), b"a").unwrap();
    std::fs::write(data.join("pub/tool.exe"), b"MZ").unwrap();
    std::fs::write(data.join("private/p.txt"), b"p").unwrap();
    let src = dir.path().join("src.txt");
    std::fs::write(&src, b"hello").unwrap();
    let get = |user: &str, path: &str, accept: Option<&str>| {
        let mut args = vec!["-H".to_owned(), bearer(&download_token(user, &["/"]))];
        if let Some(a) = accept {
            args.extend(["-H".to_owned(), format!("Accept: {a}")]);
        }
        args.push(format!("{}/files{path}", server.base(false)));
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        curl(&refs, None)
    };
    // write_allowed false: reader cannot upload, by PUT or tus.
    let got = put(&server, &upload_token("reader", "/"), "/r.txt", &src, &[]);
    assert_eq!(got.status, 403, "{got:?}");
    assert_eq!(
        tus_post(&server, &upload_token("reader", "/"), "r.txt", 5).status,
        403
    );
    assert!(!data.join("r.txt").exists());
    // read_allowed false: writer uploads but cannot download.
    assert_eq!(
        put(&server, &upload_token("writer", "/"), "/w.txt", &src, &[]).status,
        201
    );
    assert_eq!(get("writer", "/w.txt", None).status, 403);
    assert_eq!(get("reader", "/w.txt", None).status, 200);
    // dir_allowed false: no manifest, no HTML listing; files still download.
    assert_eq!(get("reader", "/pub/", None).status, 403);
    assert_eq!(get("reader", "/pub", Some("application/json")).status, 403);
    assert_eq!(get("reader", "/pub/a.txt", None).status, 200);
    // Restrictions: !*.exe and the private folder, for downloads and uploads alike.
    assert_eq!(get("reader", "/pub/tool.exe", None).status, 403);
    assert_eq!(get("reader", "/private/p.txt", None).status, 403);
    let up = upload_token("writer", "/");
    assert_eq!(put(&server, &up, "/pub/new.exe", &src, &[]).status, 403);
    assert_eq!(tus_post(&server, &up, "private/x.txt", 5).status, 403);
    assert_eq!(tus_post(&server, &up, "pub/ok.txt", 5).status, 201);
    assert!(!data.join("pub/new.exe").exists());
}

/// `fallback config check` and `fallbackd --check-config` on the same file: the exit
/// status (0 or 1) and the error codes.
fn both_verdicts(file: &Path) -> [(i32, Vec<String>); 2] {
    let cli = std::process::Command::new(crate::fallback_bin())
        .args(["config", "check", "--json"])
        .arg(file)
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&cli.stdout).unwrap();
    let mut cli_codes: Vec<String> = v["diagnostics"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["severity"] == "error")
        .map(|d| d["code"].as_str().unwrap().to_owned())
        .collect();
    let daemon = std::process::Command::new(crate::fallbackd_bin())
        .arg("--check-config")
        .arg("--config")
        .arg(file)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&daemon.stderr);
    let mut daemon_codes: Vec<String> = text
        .match_indices("error[")
        .map(|(i, _)| {
            let rest = &text[i + 6..];
            rest[..rest.find(']').unwrap()].to_owned()
        })
        .collect();
    cli_codes.sort();
    daemon_codes.sort();
    [
        (cli.status.code().unwrap(), cli_codes),
        (daemon.status.code().unwrap(), daemon_codes),
    ]
}

#[test]
fn both_checkers_give_the_same_verdict_on_the_same_file() {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/conf");
    for (name, must) in [
        ("broken/missing-cert.conf", "tls-unusable"),
        ("broken/missing-docroot.conf", "docroot-not-found"),
        ("broken/security-typo.conf", "unknown-security-element"),
        ("broken/bad-port.conf", "invalid-port"),
        ("broken/semantic.conf", "docroot-not-absolute"),
    ] {
        let [cli, daemon] = both_verdicts(&fixtures.join(name));
        assert_eq!(cli, daemon, "{name}: config check vs --check-config");
        assert_eq!(cli.0, 1, "{name}");
        assert!(cli.1.iter().any(|c| c == must), "{name}: {cli:?}");
    }
    // The missing-docroot file names both: the fixed one and alice's $(name) folder.
    let [cli, _] = both_verdicts(&fixtures.join("broken/missing-docroot.conf"));
    assert_eq!(cli.1, ["docroot-not-found", "docroot-not-found"]);
    // And a good file made true here passes both.
    let dir = tempfile::tempdir().unwrap();
    let here = fallback_testkit::on_this_host(&fixtures.join("direct-mode.conf"), dir.path());
    let [cli, daemon] = both_verdicts(&here);
    assert_eq!(cli, (0, vec![]));
    assert_eq!(daemon, (0, vec![]));
}

#[test]
fn the_mode_and_its_warning_say_what_an_encrypting_user_meets() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let conf = dir.path().join("aspera.conf");
    // carol must encrypt; loopback, both listeners (testkit's own configuration).
    std::fs::write(&conf, crate::config_text(&data)).unwrap();
    let run = |args: &[&str]| {
        let out = std::process::Command::new(crate::fallbackd_bin())
            .args([
                "--check-config",
                "--http-port",
                "0",
                "--https-port",
                "0",
                "--config",
            ])
            .arg(&conf)
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    };
    let text = run(&[]);
    assert!(text.contains("valid (proxy mode)"), "{text}");
    assert!(text.contains("warning[mode]"), "{text}");
    assert!(
        text.contains("served only through the HTTPS listener"),
        "{text}"
    );
    // With the proxy trusted, its X-Forwarded-Proto counts: nothing to warn about.
    let text = run(&["--trust-proxy", "127.0.0.1"]);
    assert!(!text.contains("warning[mode]"), "{text}");
    // Reachable directly and through a trusted proxy.
    let text = run(&["--bind", "0.0.0.0", "--trust-proxy", "127.0.0.1"]);
    assert!(text.contains("valid (direct and proxy mode)"), "{text}");
    // HTTP only, direct: the encrypting user is refused, and it says so.
    std::fs::write(
        &conf,
        crate::config_text(&data).replace(
            "<enable_https>true</enable_https>",
            "<enable_https>false</enable_https>",
        ),
    )
    .unwrap();
    let text = run(&["--bind", "0.0.0.0"]);
    assert!(text.contains("refused with 403"), "{text}");
}
