//! Scale past one machine's disks: two fallbackd instances behind Apache's balancer
//! that share nothing but a bucket (moto's S3 server on loopback), each in its own
//! directory.

use std::io::Write as _;
use std::path::Path;
use std::time::Duration;

use base64::Engine as _;
use fallback_e2e::{Kind, Proxy};
use fallback_testkit::{Moto, Server, bearer, curl, download_token, make_file, upload_token};
use sha2::Digest as _;

const SECRET: &str = "moto-e2e-secret";

/// An instance in its own directory, in proxy mode, on the bucket.
fn instance(dir: &Path, moto: &Moto, port: u16) -> Server {
    let docroot = format!(
        "s3://AKIDE2E:{SECRET}@{}/shared/users/$(name)?allow-http=true",
        moto.endpoint().trim_start_matches("http://")
    );
    Server::start_docroot(dir, &docroot, port, &["--trust-proxy", "127.0.0.1"])
}

/// The keys under `prefix` of bucket `shared`, as S3 lists them.
fn keys(moto: &Moto, prefix: &str) -> Vec<String> {
    let got = curl(
        &[&format!(
            "{}/shared?list-type=2&prefix={prefix}",
            moto.endpoint()
        )],
        None,
    );
    assert_eq!(got.status, 200, "{}", got.text());
    got.text()
        .split("<Key>")
        .skip(1)
        .filter_map(|k| k.split_once("</Key>").map(|(k, _)| k.to_owned()))
        .collect()
}

fn tus<'a>(extra: &[&'a str]) -> Vec<&'a str> {
    let mut v = vec!["-H", "Tus-Resumable: 1.0.0"];
    v.extend_from_slice(extra);
    v
}

/// Sends a PATCH of `total` bytes to `url` through raw TCP, but only the first `sent`
/// of them, then closes the connection: a client cut off mid-file.
fn cut_patch(port: u16, path: &str, token: &str, body: &[u8], total: usize) {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        s,
        "PATCH {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {token}\r\n\
         Tus-Resumable: 1.0.0\r\nContent-Type: application/offset+octet-stream\r\n\
         Upload-Offset: 0\r\nContent-Length: {total}\r\n\r\n"
    )
    .unwrap();
    s.write_all(body).unwrap();
    s.flush().unwrap();
    s.shutdown(std::net::Shutdown::Both).unwrap();
}

#[test]
fn apache_two_instances_share_only_a_bucket_and_resume_each_others_uploads() {
    let moto = Moto::start();
    moto.create_bucket("shared");
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = instance(da.path(), &moto, 0);
    let b = instance(db.path(), &moto, 0);
    let (port_a, port_b) = (a.http.port(), b.http.port());
    let proxy = Proxy::start(Kind::Apache, &[port_a, port_b]);
    let work = tempfile::tempdir().unwrap();
    let src = work.path().join("big.bin");
    let size: usize = 40 << 20;
    make_file(&src, size as u64, 41);
    let file = std::fs::read(&src).unwrap();
    let digest = base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(&file));
    let up = upload_token("alice", "/in");
    let base = proxy.base(false);

    // Created through the balancer.
    let created = curl(
        &tus(&[
            "-X",
            "POST",
            "-H",
            &bearer(&up),
            "-H",
            &format!("Upload-Length: {size}"),
            "-H",
            "Upload-Metadata: filename YmlnLmJpbg==",
            &format!("{base}/uploads"),
        ]),
        None,
    );
    assert_eq!(created.status, 201, "{created:?}");
    let location = created.header("location").unwrap();
    let id = location.rsplit('/').next().unwrap().to_owned();
    let path = format!("/aspera/http/uploads/{id}");

    // Cut after 12 MiB, through the balancer: one instance takes it and keeps what came.
    let cut_at = 12 << 20;
    cut_patch(proxy.http_port, &path, &up, &file[..cut_at], size);
    let ended = |s: &Server| {
        s.log_values()
            .iter()
            .any(|v| v["message"] == "transfer end" && v["outcome"] == "failed")
    };
    fallback_testkit::wait_until("the cut PATCH ends on an instance", || {
        ended(&a) || ended(&b)
    });
    let first_is_a = ended(&a);
    let (first, second) = if first_is_a { (a, b) } else { (b, a) };
    let (first_dir, first_port) = if first_is_a {
        (da.path(), port_a)
    } else {
        (db.path(), port_b)
    };
    assert!(
        keys(&moto, "users/alice/in/").is_empty(),
        "nothing at the final key before completion"
    );

    // The instance that took the cut goes away; the other resumes from the bucket.
    first.kill9();
    let asked = curl(
        &tus(&["-I", "-H", &bearer(&up), &format!("{base}/uploads/{id}")]),
        None,
    );
    assert_eq!(asked.status, 200, "{asked:?}");
    let offset: usize = asked.header("upload-offset").unwrap().parse().unwrap();
    assert!(
        (8 << 20..=cut_at).contains(&offset),
        "the cut request's bytes are kept (a part and a tail): {offset}"
    );
    eprintln!("cut after {cut_at} bytes; the bucket kept {offset}");
    let rest = work.path().join("rest.bin");
    std::fs::write(&rest, &file[offset..]).unwrap();
    let done = curl(
        &tus(&[
            "-X",
            "PATCH",
            "-H",
            &bearer(&up),
            "-H",
            "Content-Type: application/offset+octet-stream",
            "-H",
            &format!("Upload-Offset: {offset}"),
            "-H",
            &format!("Repr-Digest: sha-256=:{digest}:"),
            "--data-binary",
            &format!("@{}", rest.display()),
            &format!("{base}/uploads/{id}"),
        ]),
        None,
    );
    assert_eq!(done.status, 204, "{done:?}");
    assert!(
        second.wait_for_log(Duration::from_secs(10), |v| v["message"]
            == "upload complete"),
        "the other instance completed it"
    );
    assert_eq!(keys(&moto, "users/alice/in/"), ["users/alice/in/big.bin"]);

    // The first comes back on its port: both instances, and the balancer, serve the
    // object whole, in ranges, and in manifests.
    let first = instance(first_dir, &moto, first_port);
    let down = download_token("alice", &["/in"]);
    let got = work.path().join("got.bin");
    for b in [proxy.base(false), first.base(false), second.base(false)] {
        let whole = curl(
            &["-H", &bearer(&down), &format!("{b}/files/in/big.bin")],
            Some(&got),
        );
        assert_eq!(whole.status, 200, "{b}: {whole:?}");
        assert_eq!(std::fs::read(&got).unwrap(), file, "{b}");
        assert_eq!(
            whole.header("repr-digest").as_deref(),
            Some(format!("sha-256=:{digest}:").as_str()),
            "{b}"
        );
        let part = curl(
            &[
                "-H",
                &bearer(&down),
                "-H",
                "Range: bytes=20000000-20999999",
                &format!("{b}/files/in/big.bin"),
            ],
            None,
        );
        assert_eq!(part.status, 206, "{b}: {part:?}");
        assert_eq!(part.body, file[20_000_000..21_000_000], "{b}");
        let manifest = curl(
            &[
                "-H",
                &bearer(&down),
                "-H",
                "Accept: application/json",
                &format!("{b}/files/in/"),
            ],
            None,
        );
        assert_eq!(manifest.status, 200, "{b}: {manifest:?}");
        let m: serde_json::Value = serde_json::from_slice(&manifest.body).unwrap();
        assert_eq!(m["entries"][0]["path"], "big.bin", "{b}: {m}");
        assert_eq!(m["entries"][0]["size"], size, "{b}: {m}");
    }
    for s in [&first, &second] {
        let log: String = s.log_values().iter().map(ToString::to_string).collect();
        assert!(!log.contains(SECRET), "the secret reached a log");
    }
    assert!(!proxy.access_log().contains("fbt1_"));
}
