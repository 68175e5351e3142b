//! tus-js-client and Node's http client (from npm: `bins/fallbackd/tests/clients`,
//! installed by `cargo xtask ci` with `npm ci`) against the real daemon.

use crate::{Server, make_file, sha256_file, tus_create, upload_token};

/// Runs `node tus.mjs ARGS` and returns its JSON line.
fn node(args: &[&str]) -> serde_json::Value {
    fallback_testkit::tus_js(args)
}

/// `parallelUploads: 4` of a 24 MiB file over an existing good file: four partial
/// uploads and a final concatenation; the file appears whole, never a quarter of it.
#[test]
fn tus_js_client_parallel_uploads_concatenate_intact() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let existing = server.docroot().join("in/big.bin");
    std::fs::create_dir_all(existing.parent().unwrap()).unwrap();
    make_file(&existing, 1 << 20, 1);
    let src = dir.path().join("big.bin");
    make_file(&src, 24 << 20, 2);
    let token = upload_token("alice", "/in");
    let endpoint = format!("{}/uploads", server.base(false));
    let v = node(&[
        "parallel",
        &endpoint,
        &token,
        src.to_str().unwrap(),
        "big.bin",
        "4",
    ]);
    let url = v["url"].as_str().unwrap_or_else(|| panic!("{v}"));
    assert_eq!(sha256_file(&existing), sha256_file(&src));
    // The final upload answers as finished and names its four partials.
    let got = crate::curl(
        &[
            "-I",
            "-H",
            "Tus-Resumable: 1.0.0",
            "-H",
            &crate::bearer(&token),
            url,
        ],
        None,
    );
    assert_eq!(got.status, 200, "{got:?}");
    assert_eq!(got.header("upload-offset"), Some((24u64 << 20).to_string()));
    let concat = got.header("upload-concat").unwrap_or_default();
    assert!(concat.starts_with("final;"), "{concat}");
    assert_eq!(concat.matches("/uploads/").count(), 4, "{concat}");
    // The partials were consumed; only records of finished uploads remain.
    let staging = server.docroot().join(".fallback/uploads");
    let parts: Vec<_> = std::fs::read_dir(staging)
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| {
            let ext = std::path::Path::new(n).extension();
            ext.is_some_and(|x| x == "part" || x == "json")
        })
        .collect();
    assert_eq!(parts, Vec::<String>::new());
}

/// `overridePatchMethod: true`: every chunk is a POST with `X-HTTP-Method-Override`.
#[test]
fn tus_js_client_override_patch_method() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let src = dir.path().join("o.bin");
    make_file(&src, (3 << 20) + 5, 3);
    let token = upload_token("alice", "/in");
    let endpoint = format!("{}/uploads", server.base(false));
    node(&[
        "override",
        &endpoint,
        &token,
        src.to_str().unwrap(),
        "o.bin",
    ]);
    assert_eq!(
        sha256_file(&server.docroot().join("in/o.bin")),
        sha256_file(&src)
    );
}

/// The answer to the completing PATCH is lost (a proxy in between drops it): the
/// client asks with HEAD, learns the upload is finished, and does not send it again.
#[test]
fn tus_js_client_finishes_without_resending_when_the_last_answer_is_lost() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let len: u64 = 6 << 20;
    let src = dir.path().join("lost.bin");
    make_file(&src, len, 4);
    let token = upload_token("alice", "/in");
    let endpoint = format!("{}/uploads", server.base(false));
    let v = node(&[
        "lost-final",
        &endpoint,
        &token,
        src.to_str().unwrap(),
        "lost.bin",
    ]);
    assert_eq!(v["dropped"], 1, "{v}");
    assert!(v["heads"].as_u64().unwrap() >= 1, "{v}");
    assert_eq!(
        v["patchBytes"].as_u64(),
        Some(len),
        "the file was sent again: {v}"
    );
    assert_eq!(
        sha256_file(&server.docroot().join("in/lost.bin")),
        sha256_file(&src)
    );
}

/// A PATCH of 16 MiB at the wrong offset, from Node's http client (which writes the
/// whole body before it reads): it sees 409 and the real offset, not `write EPIPE`.
#[test]
fn node_http_sees_409_for_a_large_wrong_offset_patch() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let token = upload_token("alice", "/in");
    let url = tus_create(&server, &token, "w.bin", 32 << 20);
    let v = node(&["wrong-offset", &url, &token, &(16u64 << 20).to_string()]);
    assert_eq!(v["status"], 409, "{v}");
    assert_eq!(v["offset"], "0", "{v}");
}
