//! IBM's HTTP Gateway SDK (`@ibm-aspera/http-gateway-sdk-js@7.7.4`, unmodified, from
//! npm: `bins/fallbackd/tests/clients`) against the real daemon, headless under node,
//! and the Gateway API's own rules (WebSocket cut mid-file, Origin, zip) with raw
//! clients.

use std::path::Path;
use std::process::Command;

use crate::{Server, download_token, make_file, sha256_file, upload_token};

/// Runs `node gateway.mjs ARGS` and returns its JSON line.
fn sdk(args: &[&str]) -> serde_json::Value {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients");
    assert!(
        dir.join("node_modules/@ibm-aspera/http-gateway-sdk-js")
            .exists(),
        "IBM's HTTP Gateway SDK is not installed: run `npm ci` in {} (cargo xtask ci does)",
        dir.display()
    );
    let mut cmd = Command::new("node");
    // Node 20 has WebSocket behind a flag; 22 has it always (and accepts the flag).
    cmd.current_dir(&dir)
        .arg("--experimental-websocket")
        .arg("gateway.mjs")
        .args(args);
    let out = cmd
        .output()
        .expect("node must be installed (apt-get install nodejs npm)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(line).unwrap_or_else(|e| {
        panic!(
            "node gateway.mjs {args:?}: {e}\nstdout: {stdout}\nstderr: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

fn gateway_url(server: &Server) -> String {
    format!("http://{}/aspera/http-gwy", server.http)
}

/// Several files and a folder's files (relative names), through the SDK's v2 (binary)
/// or v1 (base64) uploads; every file intact at its path.
fn upload_through_sdk(version: &str) {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let src = dir.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    // Sizes around the SDK's 64,000-byte slice: one byte, exactly one slice, a slice
    // and a byte, several MiB.
    let files = [
        ("one.bin", 1u64),
        ("slice.bin", 64_000),
        ("slice-and-a-byte.bin", 64_001),
        ("big.bin", (3 << 20) + 7),
        ("folder/a.bin", 100_000),
        ("folder/sub/b.bin", 5),
    ];
    let mut pairs = Vec::new();
    for (i, (name, size)) in files.iter().enumerate() {
        let path = src.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        make_file(&path, *size, i as u64 + 1);
        pairs.push(format!("{}={name}", path.display()));
    }
    let token = upload_token("alice", "/in");
    let url = gateway_url(&server);
    let mut args = vec!["upload", url.as_str(), version, &token, "/in"];
    args.extend(pairs.iter().map(String::as_str));
    let v = sdk(&args);
    assert_eq!(v["status"], "completed", "{v}");
    for (name, _) in files {
        assert_eq!(
            sha256_file(&server.docroot().join("in").join(name)),
            sha256_file(&src.join(name)),
            "{name}"
        );
    }
    // Nothing left in staging.
    let staging: Vec<_> = std::fs::read_dir(server.docroot().join(".fallback/uploads"))
        .map(|d| d.filter_map(Result::ok).map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(
        staging
            .iter()
            .all(|n| !n.to_string_lossy().ends_with(".part")),
        "{staging:?}"
    );
    assert!(
        server.wait_for_log(std::time::Duration::from_secs(30), |l| {
            l["message"] == "gateway upload session end" && l["outcome"] == "ok"
        })
    );
}

#[test]
fn sdk_v2_binary_upload_of_files_and_a_folder() {
    upload_through_sdk("v2");
}

#[test]
fn sdk_v1_base64_upload_of_files_and_a_folder() {
    upload_through_sdk("v1");
}

/// A bad token, and a download token used to upload: the SDK reports the transfer
/// failed, and nothing is written.
#[test]
fn sdk_upload_with_a_bad_or_download_token_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let src = dir.path().join("x.bin");
    make_file(&src, 70_000, 9);
    let pair = format!("{}=x.bin", src.display());
    let url = gateway_url(&server);
    for token in [
        "not-a-token".to_owned(),
        download_token("alice", &["/in"]),
        // Another user's claim made with a key that is not theirs is refused too.
        fallback_token::Token::upload("alice", "/in")
            .issue(
                &fallback_token::Key::derive(
                    "some-other-secret-0123456789abcdef",
                    fallback_token::Form::Signed,
                )
                .unwrap(),
            )
            .unwrap(),
    ] {
        let v = sdk(&["upload", &url, "v2", &token, "/in", &pair]);
        assert_eq!(v["status"], "failed", "{v}");
        let code = v["code"].as_u64().unwrap_or_default();
        assert!((4400..4500).contains(&code), "{v}");
        assert!(!server.docroot().join("in/x.bin").exists());
    }
}

/// Download of one file (its bytes, its name) and of several as a zip.
#[test]
fn sdk_downloads_a_file_and_a_zip() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let data = server.docroot();
    std::fs::create_dir_all(data.join("out/folder/sub")).unwrap();
    make_file(&data.join("out/report.bin"), (2 << 20) + 3, 1);
    make_file(&data.join("out/folder/a.bin"), 1000, 2);
    make_file(&data.join("out/folder/sub/b.bin"), 70_000, 3);
    make_file(&data.join("out/empty.bin"), 0, 0);
    let url = gateway_url(&server);
    let token = download_token("alice", &["/out"]);
    let saved = dir.path().join("report.bin");
    let v = sdk(&[
        "download",
        &url,
        &token,
        saved.to_str().unwrap(),
        "plain",
        "/out/report.bin",
    ]);
    assert_eq!(v["status"], 200, "{v}");
    assert_eq!(
        v["sha256"],
        sha256_file(&data.join("out/report.bin")),
        "{v}"
    );
    assert!(
        v["disposition"]
            .as_str()
            .unwrap_or_default()
            .contains("report.bin"),
        "{v}"
    );

    let zip = dir.path().join("several.zip");
    let v = sdk(&[
        "download",
        &url,
        &token,
        zip.to_str().unwrap(),
        "plain",
        "/out/report.bin",
        "/out/folder",
        "/out/empty.bin",
    ]);
    assert_eq!(v["status"], 200, "{v}");
    assert_eq!(v["type"], "application/zip", "{v}");
    let listed = unzip_sha256(&zip);
    let expect = [
        ("report.bin", "out/report.bin"),
        ("folder/a.bin", "out/folder/a.bin"),
        ("folder/sub/b.bin", "out/folder/sub/b.bin"),
        ("empty.bin", "out/empty.bin"),
    ];
    for (name, path) in expect {
        assert_eq!(
            listed.get(name),
            Some(&sha256_file(&data.join(path))),
            "{name} in {listed:?}"
        );
    }
    assert_eq!(listed.len(), expect.len(), "{listed:?}");
}

/// The members of a zip and the SHA-256 of each, read by Python's zipfile (which
/// checks each member's CRC as it reads).
pub(crate) fn unzip_sha256(zip: &Path) -> std::collections::BTreeMap<String, String> {
    let script = r"
import hashlib, json, sys, zipfile
z = zipfile.ZipFile(sys.argv[1])
assert z.testzip() is None
print(json.dumps({i.filename: hashlib.sha256(z.read(i)).hexdigest() for i in z.infolist() if not i.is_dir()}))
";
    let out = Command::new("python3")
        .args(["-c", script])
        .arg(zip)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "not a valid zip: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// API v3 from its public description: a multipart upload of files and a folder's
/// files (each streamed to staging, published whole), then the same files back by
/// `X-Aspera-Spec` and by a presigned URL.
#[test]
fn v3_upload_download_and_presign() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let url = gateway_url(&server);
    let src = dir.path().join("src");
    let files = [
        ("one.bin", 1u64),
        ("big.bin", (5 << 20) + 3),
        ("folder/sub/c.bin", 70_000),
    ];
    let mut pairs = Vec::new();
    for (i, (name, size)) in files.iter().enumerate() {
        let path = src.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        make_file(&path, *size, i as u64 + 10);
        pairs.push(format!("{}={name}", path.display()));
    }
    let token = upload_token("alice", "/in");
    let mut args = vec!["v3-upload", url.as_str(), &token, "/in"];
    args.extend(pairs.iter().map(String::as_str));
    let v = sdk(&args);
    assert_eq!(v["status"], 200, "{v}");
    assert_eq!(v["body"]["files"].as_array().map(Vec::len), Some(3), "{v}");
    for (name, _) in files {
        assert_eq!(
            sha256_file(&server.docroot().join("in").join(name)),
            sha256_file(&src.join(name)),
            "{name}"
        );
    }

    let token = download_token("alice", &["/in"]);
    let out = dir.path().join("got.bin");
    let v = sdk(&[
        "v3-download",
        &url,
        &token,
        out.to_str().unwrap(),
        "/in/big.bin",
    ]);
    assert_eq!(v["status"], 200, "{v}");
    assert_eq!(v["sha256"], sha256_file(&src.join("big.bin")), "{v}");
    // aspera-sdk-js cuts the name out of `attachment; filename="..."`.
    assert_eq!(v["disposition"], "attachment; filename=\"big.bin\"", "{v}");
    assert!(v["requestId"].is_string(), "{v}");
    assert_eq!(v["length"], ((5u64 << 20) + 3).to_string(), "{v}");

    let zip = dir.path().join("got.zip");
    let v = sdk(&[
        "v3-download",
        &url,
        &token,
        zip.to_str().unwrap(),
        "/in/one.bin",
        "/in/folder",
    ]);
    assert_eq!(v["status"], 200, "{v}");
    let listed = unzip_sha256(&zip);
    assert_eq!(
        listed.get("one.bin"),
        Some(&sha256_file(&src.join("one.bin")))
    );
    assert_eq!(
        listed.get("folder/sub/c.bin"),
        Some(&sha256_file(&src.join("folder/sub/c.bin")))
    );

    let v = sdk(&[
        "v3-presign",
        &url,
        &token,
        out.to_str().unwrap(),
        "/in/folder/sub/c.bin",
    ]);
    assert_eq!(v["status"], 200, "{v}");
    assert_eq!(
        v["sha256"],
        sha256_file(&src.join("folder/sub/c.bin")),
        "{v}"
    );
    assert!(
        v["signed"]
            .as_str()
            .unwrap()
            .starts_with(&format!("http://{}/aspera/http-gwy/", server.http)),
        "{v}"
    );
}

/// v3 refusals are `{message, code}` with the status, and write nothing.
#[test]
fn v3_refusals_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let url = gateway_url(&server);
    let src = dir.path().join("x.bin");
    make_file(&src, 1000, 1);
    let pair = format!("{}=x.bin", src.display());
    for (token, status) in [
        ("garbage".to_owned(), 401),
        (download_token("alice", &["/in"]), 403),
        (upload_token("alice", "/elsewhere"), 403),
    ] {
        let v = sdk(&["v3-upload", &url, &token, "/in", &pair]);
        assert_eq!(v["status"], status, "{v}");
        assert_eq!(v["body"]["code"], status, "{v}");
        assert!(v["body"]["message"].is_string(), "{v}");
        assert!(!server.docroot().join("in/x.bin").exists());
    }
}
