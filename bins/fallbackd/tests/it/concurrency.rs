//! Uploads racing each other, and a token running out during an upload.

use std::io::{Read as _, Write as _};

use crate::{
    Server, bearer, curl, make_file, patch_head, raw, sha256_file, tus_create, tus_patch_rest,
    upload_token,
};

fn upload_path(server: &Server, url: &str) -> String {
    url.split_once(&server.http.to_string())
        .unwrap()
        .1
        .to_owned()
}

/// Reads one response from a socket until the server closes it or 30 s pass.
fn response(mut s: std::net::TcpStream) -> String {
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

#[test]
fn a_second_patch_while_one_runs_is_refused_and_bytes_never_interleave() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let token = upload_token("alice", "/in");
    let len = 4u64 << 20;
    let url = tus_create(&server, &token, "c.bin", len);
    let a = vec![b'a'; 4 << 20];
    let head = patch_head(&server, &upload_path(&server, &url), len, &token);
    // The first PATCH sends half its body and waits.
    let (none, mut first) = raw(
        server.http,
        &format!("{head}\r\nConnection: close"),
        &a,
        2 << 20,
    );
    assert!(none.is_none());
    // The first PATCH holds the upload once its bytes reach the part file.
    let id = url.rsplit('/').next().unwrap();
    fallback_testkit::wait_for_part_bytes(&server.docroot(), id);
    // A second one, from the same offset, with other bytes.
    let src_b = dir.path().join("b.bin");
    std::fs::write(&src_b, vec![b'b'; 4 << 20]).unwrap();
    // Refused: 409 (the offset has moved on) or 423 (locked by the first).
    let second = tus_patch_rest(&url, &token, &src_b, 0);
    assert!(matches!(second.status, 409 | 423), "{second:?}");
    // The first finishes and wins, whole.
    first.write_all(&a[2 << 20..]).unwrap();
    let resp = response(first);
    assert!(resp.starts_with("HTTP/1.1 204"), "{resp}");
    let got = std::fs::read(server.docroot().join("in/c.bin")).unwrap();
    assert!(got == a, "the file is not the first upload's bytes");
}

#[test]
fn uploads_racing_to_one_path_leave_one_of_them_whole() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let token = upload_token("alice", "/in");
    let len = 8u64 << 20;
    let srcs: Vec<_> = (0..2)
        .map(|i| {
            let p = dir.path().join(format!("src-{i}"));
            make_file(&p, len, 10 + i);
            p
        })
        .collect();
    let sums: Vec<String> = srcs.iter().map(|p| sha256_file(p)).collect();
    for round in 0..3 {
        let urls: Vec<String> = (0..2)
            .map(|_| tus_create(&server, &token, "same.bin", len))
            .collect();
        std::thread::scope(|s| {
            for (url, src) in urls.iter().zip(&srcs) {
                let token = &token;
                s.spawn(move || {
                    let got = tus_patch_rest(url, token, src, 0);
                    assert_eq!(got.status, 204, "round {round}: {got:?}");
                });
            }
        });
        let got = sha256_file(&server.docroot().join("in/same.bin"));
        assert!(
            sums.contains(&got),
            "round {round}: a blend of the two uploads"
        );
    }
}

#[test]
fn if_none_match_star_never_overwrites_over_http() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let token = upload_token("alice", "/in");
    let url = format!("{}/files/in/once.txt", server.base(false));
    let src = dir.path().join("v1");
    std::fs::write(&src, b"version 1").unwrap();
    let put = |file: &std::path::Path| {
        curl(
            &[
                "-T",
                file.to_str().unwrap(),
                "-H",
                "If-None-Match: *",
                "-H",
                &bearer(&token),
                &url,
            ],
            None,
        )
    };
    assert_eq!(put(&src).status, 201);
    std::fs::write(&src, b"version 2").unwrap();
    let again = put(&src);
    assert_eq!(again.status, 412, "{again:?}");
    assert_eq!(
        std::fs::read(server.docroot().join("in/once.txt")).unwrap(),
        b"version 1"
    );
    // tus creation with the same condition is refused before any byte.
    let created = curl(
        &[
            "-X",
            "POST",
            "-H",
            "Tus-Resumable: 1.0.0",
            "-H",
            "Upload-Length: 3",
            "-H",
            "Upload-Metadata: filename b25jZS50eHQ=",
            "-H",
            "If-None-Match: *",
            "-H",
            &bearer(&token),
            &format!("{}/uploads", server.base(false)),
        ],
        None,
    );
    assert_eq!(created.status, 412, "{created:?}");
}
