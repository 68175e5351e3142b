//! `--metrics`: a scrape after transfers shows the counters moved by the right amounts.

use std::collections::HashMap;
use std::time::Duration;

use crate::{Server, bearer, curl, download_token, upload_token};

/// `name{labels}` -> value, from the Prometheus text format.
fn scrape(addr: &str) -> HashMap<String, f64> {
    let got = curl(&[&format!("http://{addr}/metrics")], None);
    assert_eq!(got.status, 200);
    got.text()
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| {
            let (k, v) = l.rsplit_once(' ')?;
            Some((k.to_owned(), v.parse().ok()?))
        })
        .collect()
}

fn delta(before: &HashMap<String, f64>, after: &HashMap<String, f64>, key: &str) -> f64 {
    after.get(key).copied().unwrap_or(0.0) - before.get(key).copied().unwrap_or(0.0)
}

#[test]
// Counters are whole numbers, exact in an f64.
#[allow(clippy::float_cmp)]
fn a_scrape_after_transfers_shows_the_right_counts() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_custom(dir.path(), 0, 0, "", &["--metrics", "127.0.0.1:0"]);
    assert!(
        server.wait_for_log(Duration::from_secs(10), |v| v["message"]
            == "metrics listening")
    );
    let addr = server
        .log_values()
        .into_iter()
        .find(|v| v["message"] == "metrics listening")
        .and_then(|v| v["addr"].as_str().map(str::to_owned))
        .unwrap();
    let before = scrape(&addr);

    let src = dir.path().join("src.bin");
    std::fs::write(&src, vec![7u8; 1000]).unwrap();
    let url = format!("{}/files/in/m.bin", server.base(false));
    let put = curl(
        &[
            "-T",
            src.to_str().unwrap(),
            "-H",
            &bearer(&upload_token("alice", "/in")),
            &url,
        ],
        None,
    );
    assert_eq!(put.status, 201);
    let get = curl(
        &["-H", &bearer(&download_token("alice", &["/in"])), &url],
        None,
    );
    assert_eq!(get.status, 200);
    assert_eq!(get.body.len(), 1000);
    let bad = curl(&["-H", &bearer("fbt1_AAAA"), &url], None);
    assert_eq!(bad.status, 401);
    let none = curl(&[&url], None);
    assert_eq!(none.status, 401);

    let after = scrape(&addr);
    let d = |k: &str| delta(&before, &after, k);
    assert_eq!(d("fallback_bytes_received_total"), 1000.0);
    assert_eq!(d("fallback_bytes_sent_total"), 1000.0);
    assert_eq!(
        d(r#"fallback_transfers_started_total{direction="upload"}"#),
        1.0
    );
    assert_eq!(
        d(r#"fallback_transfers_started_total{direction="download"}"#),
        1.0
    );
    assert_eq!(
        d(r#"fallback_transfers_ended_total{direction="upload",outcome="ok"}"#),
        1.0
    );
    assert_eq!(
        d(r#"fallback_transfers_ended_total{direction="download",outcome="ok"}"#),
        1.0
    );
    assert_eq!(d("fallback_uploads_completed_total"), 1.0);
    assert_eq!(
        after[r#"fallback_transfers_active{direction="download"}"#],
        0.0
    );
    assert_eq!(
        after[r#"fallback_transfers_active{direction="upload"}"#],
        0.0
    );
    assert_eq!(d(r#"fallback_token_refusals_total{reason="missing"}"#), 1.0);
    let refused: f64 = after
        .iter()
        .filter(|(k, _)| k.starts_with("fallback_token_refusals_total"))
        .map(|(k, v)| v - before.get(k).copied().unwrap_or(0.0))
        .sum();
    assert_eq!(refused, 2.0, "{after:?}");
    assert_eq!(
        d(r#"fallback_responses_total{route="/files",status="201"}"#),
        1.0
    );
    assert_eq!(
        d(r#"fallback_responses_total{route="/files",status="401"}"#),
        2.0
    );
    assert_eq!(
        d(r#"fallback_request_duration_seconds_count{route="/files"}"#),
        4.0
    );
    assert!(after.contains_key("fallback_uploads_in_progress"));
}
