//! Each refusal with its status, and nothing leaked.

use crate::{Server, bearer, curl, download_token, tus_create, upload_token};

#[test]
fn refusals_have_the_right_status() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    std::fs::create_dir_all(server.docroot().join("pub")).unwrap();
    std::fs::write(server.docroot().join("pub/f.txt"), b"public").unwrap();
    std::fs::write(server.docroot().join("private.txt"), b"private").unwrap();
    let base = server.base(false);
    let file = format!("{base}/files/pub/f.txt");
    let down = download_token("alice", &["/pub"]);
    let get = |token: Option<&str>, url: &str| {
        let mut args = vec![];
        let h;
        if let Some(t) = token {
            h = bearer(t);
            args.extend(["-H", h.as_str()]);
        }
        args.push(url);
        curl(&args, None)
    };

    // The token matrix (none, garbage, another key, expired, wrong direction, outside
    // the token) is tested in-process (crates/fallback-server/tests/it/auth.rs); here,
    // once through the daemon, and then what needs real request lines.
    let no = get(None, &file);
    assert_eq!(no.status, 401);
    assert!(no.header("www-authenticate").unwrap().starts_with("Bearer"));
    assert_eq!(
        get(Some(&down), &format!("{base}/files/private.txt")).status,
        403
    );
    // Traversal, plain and encoded, and double-encoded.
    let all = download_token("alice", &["/"]);
    for evil in [
        "/files/pub/../private.txt",
        "/files/pub/%2e%2e/private.txt",
        "/files/pub/%2E%2E%2Fprivate.txt",
        "/files/%2fetc%2fpasswd",
        "/files/pub/%252e%252e/private.txt",
        "/files/pub%5C..%5Cprivate.txt",
        "/files/.fallback/token.key",
    ] {
        let got = curl(
            &[
                "--path-as-is",
                "-H",
                &bearer(&all),
                &format!("{base}{evil}"),
            ],
            None,
        );
        assert!(
            matches!(got.status, 400 | 403 | 404),
            "{evil}: {} {}",
            got.status,
            got.text()
        );
        assert!(!got.text().contains("private"), "{evil} leaked");
    }
    // A symlink out of the docroot is not followed.
    let outside = dir.path().join("outside.txt");
    std::fs::write(&outside, b"outside secret").unwrap();
    std::os::unix::fs::symlink(&outside, server.docroot().join("pub/escape")).unwrap();
    let esc = get(Some(&all), &format!("{base}/files/pub/escape"));
    assert_eq!(esc.status, 404, "{esc:?}");
    assert!(!esc.text().contains("outside secret"));
    // An upload can't be planted through it either.
    let up = upload_token("alice", "/");
    std::os::unix::fs::symlink(dir.path(), server.docroot().join("dirlink")).unwrap();
    let src = dir.path().join("plant");
    std::fs::write(&src, b"x").unwrap();
    let planted = curl(
        &[
            "-T",
            src.to_str().unwrap(),
            "-H",
            &bearer(&up),
            &format!("{base}/files/dirlink/planted"),
        ],
        None,
    );
    assert!(planted.status >= 400, "{planted:?}");
    assert!(!dir.path().join("planted").exists());
    // Plain HTTP for a user who must encrypt: 403 naming HTTPS; HTTPS works.
    let carol = download_token("carol", &["/pub"]);
    let plain = get(Some(&carol), &file);
    assert_eq!(plain.status, 403);
    assert!(plain.text().contains("HTTPS"), "{}", plain.text());
    let tls = get(
        Some(&carol),
        &format!("{}/files/pub/f.txt", server.base(true)),
    );
    assert_eq!((tls.status, tls.text().as_str()), (200, "public"));
    // Another user's upload is not reachable.
    let url = tus_create(&server, &up, "mine.bin", 10);
    let bob = upload_token("bob", "/");
    let head = curl(
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
    assert_eq!(head.status, 404);
    // A token in the query is refused for anything but GET/HEAD.
    let put = curl(
        &[
            "-T",
            src.to_str().unwrap(),
            &format!("{base}/files/q.txt?token={up}"),
        ],
        None,
    );
    assert_eq!(put.status, 401);
    // Bad tus headers.
    let neg = curl(
        &[
            "-X",
            "POST",
            "-H",
            "Tus-Resumable: 1.0.0",
            "-H",
            "Upload-Length: -1",
            "-H",
            &bearer(&up),
            &format!("{base}/uploads"),
        ],
        None,
    );
    assert_eq!(neg.status, 400);
    let old_tus = curl(
        &[
            "-X",
            "POST",
            "-H",
            "Tus-Resumable: 0.2.2",
            "-H",
            "Upload-Length: 1",
            "-H",
            &bearer(&up),
            &format!("{base}/uploads"),
        ],
        None,
    );
    assert_eq!(old_tus.status, 412);
}
