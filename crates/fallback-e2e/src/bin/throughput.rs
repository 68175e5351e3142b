//! A 1 GiB download through Apache (proxying to fallbackd) against Apache serving the
//! same file as a static file, alternating runs, median of 5 each. Prints the ratio.

// A measuring tool prints; a failure is a panic with the reason.
#![allow(clippy::print_stdout, clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;
use std::time::Instant;

use fallback_e2e::{Kind, Proxy};
use fallback_testkit::{Server, download_token, make_file};

fn curl_seconds(args: &[&str]) -> f64 {
    let start = Instant::now();
    let out = Command::new("curl")
        .args(["-sS", "--fail", "-o", "/dev/null"])
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    start.elapsed().as_secs_f64()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let size: u64 = 1 << 30;
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_custom(dir.path(), 0, 0, "", &["--trust-proxy", "127.0.0.1"]);
    let proxy = Proxy::start(Kind::Apache, &[server.http.port()]);
    let file = server.docroot().join("big.bin");
    make_file(&file, size, 1);
    std::fs::hard_link(&file, proxy.static_dir.join("big.bin")).unwrap_or_else(|_| {
        std::fs::copy(&file, proxy.static_dir.join("big.bin")).unwrap();
    });
    let token = download_token("alice", &["/big.bin"]);
    let auth = format!("Authorization: Bearer {token}");
    let via_fallback = format!("{}/files/big.bin", proxy.base(false));
    let via_static = format!("http://127.0.0.1:{}/static/big.bin", proxy.http_port);
    // Warm the page cache once.
    curl_seconds(&[&via_static]);
    let (mut ours, mut peer) = (Vec::new(), Vec::new());
    for _ in 0..5 {
        ours.push(curl_seconds(&["-H", &auth, &via_fallback]));
        peer.push(curl_seconds(&[&via_static]));
    }
    #[allow(clippy::cast_precision_loss)]
    let gbs = |s: f64| size as f64 / s / 1e9;
    let (o, p) = (median(ours), median(peer));
    println!(
        "1 GiB download over loopback, curl client, median of 5 alternating runs:\n  \
         through Apache -> fallbackd: {:.2} GB/s\n  \
         Apache static file:          {:.2} GB/s\n  \
         ratio: {:.2}",
        gbs(o),
        gbs(p),
        p / o
    );
}
