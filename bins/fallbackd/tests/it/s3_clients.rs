//! Clients no one here wrote, against fallbackd on an `s3://` docroot (moto's S3 server
//! on loopback): tuspy with chunk checksums, tus-js-client (method override, a lost
//! last answer, parallel uploads), rclone reading the HTML listings, and the project's
//! own CLI (with `--streams`, which concatenates too). Each
//! file is checked whole, by SHA-256, through a download.

use std::path::Path;
use std::process::Command;

use fallback_testkit::Moto;

use crate::{Server, bearer, curl, download_token, make_file, sha256_file, upload_token};

/// fallbackd in `dir` on bucket `clients`'s prefix `users/$(name)`.
fn on_bucket(dir: &Path, moto: &Moto) -> Server {
    moto.create_bucket("clients");
    let docroot = format!(
        "s3://AKIDCLIENTS:clients-secret@{}/clients/users/$(name)?allow-http=true",
        moto.endpoint().trim_start_matches("http://")
    );
    Server::start_docroot(dir, &docroot, 0, &[])
}

/// The file at docroot path `rel`, downloaded whole through the server.
fn downloaded(server: &Server, rel: &str, into: &Path) -> String {
    let token = download_token("alice", &["/"]);
    let got = curl(
        &[
            "-H",
            &bearer(&token),
            &format!("{}/files/{rel}", server.base(false)),
        ],
        Some(into),
    );
    assert_eq!(got.status, 200, "{rel}: {got:?}");
    // Its end is logged as such, whole (hyper stops asking once the length is sent).
    let size = std::fs::metadata(into).unwrap().len();
    assert!(
        server.wait_for_log(std::time::Duration::from_secs(10), |v| {
            v["message"] == "transfer end"
                && v["direction"] == "download"
                && v["path"] == format!("/{rel}")
                && v["outcome"] == "ok"
                && v["bytes"] == size
        }),
        "no whole download of /{rel} in the log"
    );
    sha256_file(into)
}

#[test]
fn tus_clients_and_rclone_on_a_bucket_docroot() {
    let moto = Moto::start();
    let dir = tempfile::tempdir().unwrap();
    let server = on_bucket(dir.path(), &moto);
    let token = upload_token("alice", "/in");
    let endpoint = format!("{}/uploads", server.base(false));
    let got = dir.path().join("got.bin");

    // tuspy: 1 MiB chunks, each with its sha1, over 8 MiB parts: every PATCH takes in
    // the tail the one before left.
    let src = dir.path().join("tuspy.bin");
    make_file(&src, (10 << 20) + 7, 1);
    let script = r#"
import sys
from tusclient import client
c = client.TusClient(sys.argv[1], headers={"Authorization": "Bearer " + sys.argv[2]})
u = c.uploader(sys.argv[3], chunk_size=1024 * 1024, upload_checksum=True,
               metadata={"filename": "tuspy.bin"})
u.upload()
print(u.offset)
"#;
    crate::tus_clients::tuspy(&server, &token, script, &[&src]);
    assert_eq!(downloaded(&server, "in/tuspy.bin", &got), sha256_file(&src));

    // tus-js-client, PATCH sent as POST with X-HTTP-Method-Override.
    let src = dir.path().join("js.bin");
    make_file(&src, (9 << 20) + 1, 2);
    fallback_testkit::tus_js(&[
        "override",
        &endpoint,
        &token,
        src.to_str().unwrap(),
        "js.bin",
    ]);
    assert_eq!(downloaded(&server, "in/js.bin", &got), sha256_file(&src));

    // tus-js-client whose completing PATCH's answer is lost: it asks, learns the
    // upload is finished (the bucket keeps its state, marked done) and sends nothing.
    let len: u64 = 6 << 20;
    let src = dir.path().join("lost.bin");
    make_file(&src, len, 3);
    let v = fallback_testkit::tus_js(&[
        "lost-final",
        &endpoint,
        &token,
        src.to_str().unwrap(),
        "lost.bin",
    ]);
    assert_eq!(v["dropped"], 1, "{v}");
    assert_eq!(v["patchBytes"].as_u64(), Some(len), "sent again: {v}");
    assert_eq!(downloaded(&server, "in/lost.bin", &got), sha256_file(&src));

    // tus-js-client's parallelUploads: four partial uploads, then a final one that
    // names them; the bucket assembles them into one object.
    let src = dir.path().join("parallel.bin");
    make_file(&src, (20 << 20) + 3, 4);
    let v = fallback_testkit::tus_js(&[
        "parallel",
        &endpoint,
        &token,
        src.to_str().unwrap(),
        "parallel.bin",
        "4",
    ]);
    assert!(v["url"].is_string(), "{v}");
    assert_eq!(
        downloaded(&server, "in/parallel.bin", &got),
        sha256_file(&src)
    );

    // rclone's http remote reads the HTML listing of the bucket's folder and copies
    // the tree through ranged-capable GETs.
    let down = download_token("alice", &["/in"]);
    let copied = dir.path().join("copied");
    let out = Command::new("rclone")
        .args(["--config", "/dev/null", "--http-url"])
        .arg(format!("{}/files/in/", server.base(false)))
        .arg("--http-headers")
        .arg(format!("Authorization,Bearer {down}"))
        .args(["copy", ":http:"])
        .arg(&copied)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "rclone (apt-get install rclone): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    for f in ["tuspy.bin", "js.bin", "lost.bin", "parallel.bin"] {
        assert_eq!(
            sha256_file(&copied.join(f)),
            sha256_file(&dir.path().join(f)),
            "{f}"
        );
    }
    // The upload's bookkeeping never shows: only the three files were copied.
    let mut names: Vec<String> = std::fs::read_dir(&copied)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["js.bin", "lost.bin", "parallel.bin", "tuspy.bin"]);
    let logs: String = server
        .log_values()
        .iter()
        .map(ToString::to_string)
        .collect();
    assert!(!logs.contains("clients-secret"), "the secret reached a log");
}

#[test]
fn the_cli_moves_a_tree_to_and_from_a_bucket_docroot() {
    let moto = Moto::start();
    let dir = tempfile::tempdir().unwrap();
    let server = on_bucket(dir.path(), &moto);
    let tree = dir.path().join("tree");
    std::fs::create_dir_all(tree.join("sub")).unwrap();
    make_file(&tree.join("big.bin"), (20 << 20) + 3, 4);
    make_file(&tree.join("sub/small.txt"), 300, 5);
    make_file(&tree.join("empty.bin"), 0, 6);
    let up = upload_token("alice", "/in");
    let port = server.http.port();
    let url = |path: &str, token: &str| {
        format!(
            "fasp://alice@127.0.0.1:1{path}?token={token}&httpport={port}&fallback=yes&enc=none"
        )
    };
    let state = dir.path().join("state");
    let run = |args: &[&str]| {
        let out = Command::new(fallback_testkit::fallback_bin())
            .args(args)
            .arg("--state-dir")
            .arg(&state)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "fallback {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(&[
        "upload",
        &url("/in", &up),
        tree.to_str().unwrap(),
        "--streams",
        "3",
    ]);
    let down = download_token("alice", &["/in"]);
    let back = dir.path().join("back");
    run(&["download", &url("/in/tree", &down), back.to_str().unwrap()]);
    for f in ["big.bin", "sub/small.txt", "empty.bin"] {
        assert_eq!(
            sha256_file(&back.join(f)),
            sha256_file(&tree.join(f)),
            "{f}"
        );
    }
}
