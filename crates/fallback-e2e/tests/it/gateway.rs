//! IBM's HTTP Gateway SDK (unmodified, under node: `bins/fallbackd/tests/clients`)
//! through Apache and nginx over HTTPS, to two fallbackd sharing the docroot and key:
//! the WebSocket uploads pass the proxy's upgrade, and a download id made on one
//! instance is served by whichever the balancer picks.

use std::path::Path;
use std::process::Command;

use fallback_e2e::{Kind, Proxy};
use fallback_testkit::{download_token, make_file, sha256_file, upload_token};

/// Runs `node gateway.mjs ARGS` trusting the proxy's CA; its JSON line.
fn sdk(proxy: &Proxy, args: &[&str]) -> serde_json::Value {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../bins/fallbackd/tests/clients");
    assert!(
        dir.join("node_modules/@ibm-aspera/http-gateway-sdk-js")
            .exists(),
        "IBM's HTTP Gateway SDK is not installed: run `npm ci` in {} (cargo xtask e2e does)",
        dir.display()
    );
    let out = Command::new("node")
        .current_dir(&dir)
        .env("NODE_EXTRA_CA_CERTS", &proxy.certs.ca)
        .args(["--experimental-websocket", "gateway.mjs"])
        .args(args)
        .output()
        .expect("node must be installed");
    let stdout = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(stdout.lines().last().unwrap_or_default()).unwrap_or_else(|e| {
        panic!(
            "node gateway.mjs {args:?}: {e}\n{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

fn sdk_through(kind: Kind) {
    let dir = tempfile::tempdir().unwrap();
    let a = crate::backend(dir.path());
    let b = crate::backend(dir.path());
    let proxy = Proxy::start(kind, &[a.http.port(), b.http.port()]);
    let url = format!("https://127.0.0.1:{}/aspera/http-gwy", proxy.https_port);
    let src = dir.path().join("src");
    let files = [("a.bin", (2u64 << 20) + 1), ("album/b.bin", 64_000)];
    let mut pairs = Vec::new();
    for (i, (name, size)) in files.iter().enumerate() {
        let p = src.join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        make_file(&p, *size, i as u64 + 3);
        pairs.push(format!("{}={name}", p.display()));
    }
    let token = upload_token("alice", "/in");
    let mut args = vec!["upload", url.as_str(), "v2", &token, "/in"];
    args.extend(pairs.iter().map(String::as_str));
    let v = sdk(&proxy, &args);
    assert_eq!(
        v["status"],
        "completed",
        "{kind:?}: {v}; /v1/info: {}",
        sdk(&proxy, &["probe", &url])
    );
    let data = dir.path().join("data");
    for (name, _) in files {
        assert_eq!(
            sha256_file(&data.join("in").join(name)),
            sha256_file(&src.join(name)),
            "{kind:?}: {name}"
        );
    }
    // Each download: an id made by whichever instance the balancer picks, the bytes
    // sent by whichever it picks next (the id holds all an instance needs).
    let down = download_token("alice", &["/in"]);
    for _ in 0..2 {
        let out = dir.path().join("a.bin");
        let v = sdk(
            &proxy,
            &[
                "download",
                &url,
                &down,
                out.to_str().unwrap(),
                "plain",
                "/in/a.bin",
            ],
        );
        assert_eq!(v["status"], 200, "{kind:?}: {v}");
        assert_eq!(
            v["sha256"],
            sha256_file(&src.join("a.bin")),
            "{kind:?}: {v}"
        );
    }
    let zip = dir.path().join("all.zip");
    let v = sdk(
        &proxy,
        &["download", &url, &down, zip.to_str().unwrap(), "zip", "/in"],
    );
    assert_eq!(v["status"], 200, "{kind:?}: {v}");
    let check = Command::new("python3")
        .args(["-c", "import sys, zipfile; z = zipfile.ZipFile(sys.argv[1]); assert z.testzip() is None; print(sorted(i.filename for i in z.infolist() if not i.is_dir()))"])
        .arg(&zip)
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&check.stdout).trim(),
        "['in/a.bin', 'in/album/b.bin']",
        "{kind:?}"
    );
    // Three ids were made (two plain downloads and the zip), wherever the balancer
    // sent each POST: the instances' logs together hold exactly three.
    let made = |s: &fallback_testkit::Server| {
        s.log_values()
            .iter()
            .filter(|v| v["message"] == "gateway download id made")
            .count()
    };
    assert_eq!(made(&a) + made(&b), 3, "{kind:?}");
}

#[test]
fn apache_passes_ibm_gateway_sdk_uploads_and_downloads() {
    sdk_through(Kind::Apache);
}

#[test]
fn nginx_passes_ibm_gateway_sdk_uploads_and_downloads() {
    sdk_through(Kind::Nginx);
}
