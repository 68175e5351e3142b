//! Uploads and downloads through faults: 5xx retried, bodies cut and resumed from the
//! server's offset, corrupted bytes caught by the digest, 4xx never retried.

use crate::*;

async fn session(s: &Served, path: &str, token: &str) -> (Session, Arc<Mutex<Vec<Event>>>) {
    let (events, log) = recorder();
    let session = Session::open(
        &s.url(path, token, "&fallback=yes"),
        options(s.dir.path()),
        events,
    )
    .await
    .unwrap();
    (session, log)
}

/// Recorded events that, at the first retry, flip byte 1000 of `part` (a kept part the
/// next attempt resumes); the flag says it happened.
type Log = Arc<Mutex<Vec<Event>>>;

fn flipping_at_first_retry(part: &Path) -> (Events, Log, Arc<Mutex<bool>>) {
    let flipped = Arc::new(Mutex::new(false));
    let (events, log) = recorder();
    let (p, f) = (part.to_owned(), Arc::clone(&flipped));
    let events: Events = Arc::new(move |e: &Event| {
        if matches!(e, Event::Retry { .. }) && !*f.lock().unwrap() {
            let mut bytes = std::fs::read(&p).unwrap();
            assert!(bytes.len() > 1000, "nothing kept before the cut");
            bytes[1000] ^= 0x01;
            std::fs::write(&p, bytes).unwrap();
            *f.lock().unwrap() = true;
        }
        events(e);
    });
    (events, log, flipped)
}

fn retries(log: &Mutex<Vec<Event>>) -> usize {
    log.lock()
        .unwrap()
        .iter()
        .filter(|e| matches!(e, Event::Retry { .. }))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_cut_mid_body_resumes_from_the_servers_offset() {
    let s = Served::start().await;
    let src = s.dir.path().join("big.bin");
    let size: u64 = 8 << 20;
    make_file(&src, size, 3);
    // The first connection is cut after 3 MiB, in the middle of the body; then a HEAD
    // answers 503 once.
    s.cut_next_connection_after(3 << 20);
    s.on("HEAD", "/uploads/", &[Fault::Unavailable]);
    let (session, log) = session(&s, "/in", &upload_token("alice", "/in")).await;
    let summary = session.upload(std::slice::from_ref(&src)).await.unwrap();
    assert_eq!(summary.files, 1, "{summary:?}");
    assert!(summary.failed.is_empty(), "{summary:?}");
    assert_eq!(
        sha256_file(&s.docroot().join("in/big.bin")),
        sha256_file(&src)
    );
    assert!(retries(&log) >= 2, "{:?}", log.lock().unwrap());
    // Resumed, not restarted: what the cut request stored was not sent again.
    let resumed = log.lock().unwrap().iter().find_map(|e| match e {
        Event::FileStart { resumed_from, .. } if *resumed_from > 0 => Some(*resumed_from),
        _ => None,
    });
    let stored = resumed.expect("a FileStart that resumes");
    assert!(stored > 0 && stored <= 3 << 20, "{stored}");
    assert!(summary.transferred < size + (3 << 20), "{summary:?}");
}

/// The client hashes while it sends and gives the digest with the last bytes
/// (`Repr-Digest`): bytes changed on the way (the first byte of the first PATCH, or of
/// a small file's one request) make the server refuse the file, which never appears at
/// its name, and the client starts the upload again; changed on every attempt, the
/// upload fails for good, still with nothing at the name and nothing left staged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_whose_bytes_change_on_the_way_never_appears() {
    let s = Served::start().await;
    let token = upload_token("alice", "/");
    let big = s.dir.path().join("big.bin");
    make_file(&big, 3 << 20, 8);
    let small = s.dir.path().join("small.bin");
    make_file(&small, 4096, 9);
    let staged = || {
        std::fs::read_dir(s.docroot().join(".fallback/uploads")).map_or(0, |d| {
            d.filter(|e| {
                e.as_ref()
                    .is_ok_and(|e| !e.file_name().to_string_lossy().ends_with(".done"))
            })
            .count()
        })
    };

    // Every attempt corrupted.
    s.on("PATCH", "/uploads/", &[Fault::FlipFirstRequestByte; 16]);
    s.on("POST", "/uploads", &[Fault::FlipFirstRequestByte; 16]);
    let (first, _) = session(&s, "/", &token).await;
    let summary = first.upload(&[big.clone(), small.clone()]).await.unwrap();
    assert_eq!(summary.failed.len(), 2, "{summary:?}");
    for (_, why) in &summary.failed {
        assert!(why.contains("SHA-256 mismatch"), "{summary:?}");
    }
    assert!(!s.docroot().join("big.bin").exists());
    assert!(!s.docroot().join("small.bin").exists());
    assert_eq!(staged(), 0, "an upload refused for its digest is removed");

    // Only the first attempt corrupted: the second lands, whole.
    s.script.lock().unwrap().rules.clear();
    for (src, method) in [(&big, "PATCH"), (&small, "POST")] {
        s.on(method, "/uploads", &[Fault::FlipFirstRequestByte]);
        let (again, log) = session(&s, "/", &token).await;
        let summary = again.upload(std::slice::from_ref(src)).await.unwrap();
        assert!(summary.failed.is_empty(), "{summary:?}");
        let name = src.file_name().unwrap();
        assert_eq!(sha256_file(&s.docroot().join(name)), sha256_file(src));
        assert_eq!(retries(&log), 1, "{:?}", log.lock().unwrap());
    }
}

/// Puts a file of `len` bytes at docroot `/f.bin` through the service, so the server
/// knows its SHA-256 (`Repr-Digest`).
async fn uploaded(s: &Served, len: u64, seed: u64) -> PathBuf {
    let src = s.dir.path().join("f.bin");
    make_file(&src, len, seed);
    let (up, _) = session(s, "/", &upload_token("alice", "/")).await;
    let done = up.upload(std::slice::from_ref(&src)).await.unwrap();
    assert_eq!(done.files, 1, "{done:?}");
    src
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_download_whose_bytes_change_on_the_way_is_discarded() {
    let s = Served::start().await;
    uploaded(&s, 1 << 20, 4).await;
    let token = download_token("alice", &["/f.bin"]);
    // Every attempt is corrupted: the digest never matches.
    s.on("GET", "/files/f.bin", &[Fault::FlipFirstByte; 8]);
    let (session, _) = session(&s, "/f.bin", &token).await;
    let out = s.dir.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    let result = session.download(&out).await;
    let failed = match result {
        Ok(summary) => summary.failed,
        Err(e) => vec![(String::new(), e.to_string())],
    };
    assert!(
        failed
            .iter()
            .any(|(_, why)| why.contains("SHA-256 mismatch")),
        "{failed:?}"
    );
    // Nothing at the final name, no partial left claiming to be the file.
    assert!(!out.join("f.bin").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupted_attempt_is_retried_and_the_download_lands_whole() {
    let s = Served::start().await;
    let src = uploaded(&s, 1 << 20, 5).await;
    let token = download_token("alice", &["/f.bin"]);
    s.on(
        "GET",
        "/files/f.bin",
        &[Fault::FlipFirstByte, Fault::Unavailable],
    );
    let (session, log) = session(&s, "/f.bin", &token).await;
    let out = s.dir.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    let summary = session.download(&out).await.unwrap();
    assert!(summary.failed.is_empty(), "{summary:?}");
    assert_eq!(sha256_file(&out.join("f.bin")), sha256_file(&src));
    assert!(retries(&log) >= 2, "{:?}", log.lock().unwrap());
}

#[tokio::test]
async fn a_refusal_is_final_and_explained() {
    let s = Served::start().await;
    make_file(&s.docroot().join("f.bin"), 10, 6);
    // A token for another path: 403, never retried.
    let token = download_token("alice", &["/other"]);
    let (session, log) = session(&s, "/f.bin", &token).await;
    let out = s.dir.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    let err = match session.download(&out).await {
        Ok(summary) => summary
            .failed
            .first()
            .map(|(_, w)| w.clone())
            .unwrap_or_default(),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("403"), "{err}");
    // With its reason, whether the refused request had a body (GET) or not (HEAD).
    let reason = err.split("403: ").nth(1).unwrap_or_default();
    assert!(reason.len() > 10, "no reason given: {err:?}");
    assert_eq!(retries(&log), 0);
    assert!(!out.join("f.bin").exists());
}

/// A download cut mid-file resumes from its part; a byte flipped in that part between
/// the attempts (the disk, or another program) is caught by the digest computed as the
/// bytes arrive (the part's own bytes hashed first), and the file is fetched again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resumed_download_still_verifies_the_bytes_it_kept() {
    let s = Served::start().await;
    let src = uploaded(&s, 8 << 20, 7).await;
    let token = download_token("alice", &["/f.bin"]);
    let out = s.dir.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    let part = out.join("f.bin.fallback-part");
    // At the first retry (the cut), corrupt one stored byte.
    let (events, log, flipped) = flipping_at_first_retry(&part);
    let session = Session::open(
        &s.url("/f.bin", &token, "&fallback=yes"),
        options(s.dir.path()),
        events,
    )
    .await
    .unwrap();
    s.cut_next_connection_after_download(3 << 20);
    let summary = session.download(&out).await.unwrap();
    assert!(summary.failed.is_empty(), "{summary:?}");
    assert!(*flipped.lock().unwrap(), "the download was never cut");
    assert_eq!(sha256_file(&out.join("f.bin")), sha256_file(&src));
    let log = log.lock().unwrap();
    // It resumed (from the kept part), the digest caught the flipped byte, and the
    // file was fetched again.
    assert!(
        log.iter()
            .any(|e| matches!(e, Event::FileStart { resumed_from, .. } if *resumed_from > 0)),
        "{log:?}"
    );
    assert!(
        log.iter()
            .any(|e| matches!(e, Event::Retry { error, .. } if error.contains("SHA-256 mismatch"))),
        "{log:?}"
    );
}

/// Options asking for `n` connections per large file.
fn streams(dir: &Path, n: usize) -> Options {
    Options {
        streams: Some(n),
        ..options(dir)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_download_over_several_connections_lands_whole() {
    let s = Served::start().await;
    let src = uploaded(&s, (8 << 20) + 3, 8).await;
    let token = download_token("alice", &["/f.bin"]);
    let (events, log) = recorder();
    let session = Session::open(
        &s.url("/f.bin", &token, "&fallback=yes"),
        streams(s.dir.path(), 4),
        events,
    )
    .await
    .unwrap();
    let out = s.dir.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    let summary = session.download(&out).await.unwrap();
    assert!(summary.failed.is_empty(), "{summary:?}");
    assert_eq!(sha256_file(&out.join("f.bin")), sha256_file(&src));
    assert!(s.seen("GET") >= 4, "one GET per range");
    let log = log.lock().unwrap();
    assert!(
        log.iter().any(|e| matches!(e, Event::Decision { message }
            if message.contains("4 connections each"))),
        "{log:?}"
    );
    assert!(!out.join("f.bin.fallback-part").exists());
}

/// A range cut mid-way: the other ranges finish, the attempt saves what is on disk, the
/// next attempt fetches only what is missing, and the whole file is still hashed from
/// its first byte: a byte flipped in the kept part is caught and the file fetched again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ranged_download_cut_resumes_its_ranges_and_still_verifies() {
    let s = Served::start().await;
    let src = uploaded(&s, 8 << 20, 9).await;
    let token = download_token("alice", &["/f.bin"]);
    let out = s.dir.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    let part = out.join("f.bin.fallback-part");
    // At the first retry (the cut), corrupt one stored byte.
    let (events, log, flipped) = flipping_at_first_retry(&part);
    let session = Session::open(
        &s.url("/f.bin", &token, "&fallback=yes"),
        streams(s.dir.path(), 4),
        events,
    )
    .await
    .unwrap();
    // The first connection carries the first range (2 MiB): cut after 1 MiB of it.
    s.cut_next_connection_after_download(1 << 20);
    let summary = session.download(&out).await.unwrap();
    assert!(summary.failed.is_empty(), "{summary:?}");
    assert!(*flipped.lock().unwrap(), "the download was never cut");
    assert_eq!(sha256_file(&out.join("f.bin")), sha256_file(&src));
    let log = log.lock().unwrap();
    let resumed: Vec<u64> = log
        .iter()
        .filter_map(|e| match e {
            Event::FileStart { resumed_from, .. } => Some(*resumed_from),
            _ => None,
        })
        .collect();
    // Fresh, then resumed with the three whole ranges and part of the first kept,
    // then (the flipped byte caught) fresh again.
    assert!(resumed.len() >= 3, "{log:?}");
    assert_eq!(resumed[0], 0);
    assert!(resumed[1] >= 6 << 20 && resumed[1] < 8 << 20, "{resumed:?}");
    assert!(
        log.iter()
            .any(|e| matches!(e, Event::Retry { error, .. } if error.contains("SHA-256 mismatch"))),
        "{log:?}"
    );
    assert!(!part.exists());
}

async fn upload_session(s: &Served, n: usize) -> (Session, Arc<Mutex<Vec<Event>>>) {
    let (events, log) = recorder();
    let session = Session::open(
        &s.url("/in", &upload_token("alice", "/in"), "&fallback=yes"),
        streams(s.dir.path(), n),
        events,
    )
    .await
    .unwrap();
    (session, log)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_upload_as_partial_uploads_lands_whole() {
    let s = Served::start().await;
    let src = s.dir.path().join("big.bin");
    make_file(&src, (8 << 20) + 3, 10);
    let (session, log) = upload_session(&s, 4).await;
    let summary = session.upload(std::slice::from_ref(&src)).await.unwrap();
    assert!(summary.failed.is_empty(), "{summary:?}");
    assert_eq!(
        sha256_file(&s.docroot().join("in/big.bin")),
        sha256_file(&src)
    );
    // Four partial creations and the final one; one PATCH per partial.
    assert_eq!(s.seen("POST"), 5);
    assert_eq!(s.seen("PATCH"), 4);
    let log = log.lock().unwrap();
    assert!(
        log.iter().any(|e| matches!(e, Event::Decision { message }
            if message.contains("4 partial uploads"))),
        "{log:?}"
    );
}

/// A partial upload cut mid-body: the next attempt asks each partial for its offset and
/// sends only what is missing; the final upload joins them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_partial_upload_resumes_from_its_offset() {
    let s = Served::start().await;
    let src = s.dir.path().join("big.bin");
    let size: u64 = 8 << 20;
    make_file(&src, size, 11);
    s.cut_next_connection_after(1 << 20);
    let (session, log) = upload_session(&s, 4).await;
    let summary = session.upload(std::slice::from_ref(&src)).await.unwrap();
    assert!(summary.failed.is_empty(), "{summary:?}");
    assert_eq!(
        sha256_file(&s.docroot().join("in/big.bin")),
        sha256_file(&src)
    );
    let log = log.lock().unwrap();
    let resumed: Vec<u64> = log
        .iter()
        .filter_map(|e| match e {
            Event::FileStart { resumed_from, .. } => Some(*resumed_from),
            _ => None,
        })
        .collect();
    assert!(resumed.len() >= 2 && resumed[0] == 0, "{resumed:?}");
    assert!(resumed[1] > 0, "not resumed: {resumed:?}");
    // Each partial sent once, the cut one resumed: 4 partials + 1 resumed PATCH.
    assert_eq!(s.seen("PATCH"), 5);
}

/// Bytes changed on the way in a partial: the final upload's digest does not match,
/// the server publishes nothing, and the client starts the file again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partial_whose_bytes_change_on_the_way_is_caught_by_the_final_digest() {
    let s = Served::start().await;
    let src = s.dir.path().join("big.bin");
    make_file(&src, 8 << 20, 12);
    s.on("PATCH", "/uploads/", &[Fault::FlipFirstRequestByte]);
    let (session, log) = upload_session(&s, 4).await;
    let summary = session.upload(std::slice::from_ref(&src)).await.unwrap();
    assert!(summary.failed.is_empty(), "{summary:?}");
    assert_eq!(
        sha256_file(&s.docroot().join("in/big.bin")),
        sha256_file(&src)
    );
    assert_eq!(retries(&log), 1, "{:?}", log.lock().unwrap());
    let log = log.lock().unwrap();
    assert!(
        log.iter()
            .any(|e| matches!(e, Event::Retry { error, .. } if error.contains("SHA-256 mismatch"))),
        "{log:?}"
    );
}

/// A server that names no version (no `ETag`): the ranges go without `If-Match` and the
/// file still lands whole, checked against the announced digest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ranges_from_a_server_without_etags_still_land_whole() {
    let s = Served::start().await;
    let src = uploaded(&s, 8 << 20, 13).await;
    let token = download_token("alice", &["/f.bin"]);
    s.on("GET", "/files/f.bin", &[Fault::NoEtag; 8]);
    let (events, _) = recorder();
    let session = Session::open(
        &s.url("/f.bin", &token, "&fallback=yes"),
        streams(s.dir.path(), 4),
        events,
    )
    .await
    .unwrap();
    let out = s.dir.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    let summary = session.download(&out).await.unwrap();
    assert!(summary.failed.is_empty(), "{summary:?}");
    assert_eq!(sha256_file(&out.join("f.bin")), sha256_file(&src));
    assert_eq!(s.seen("GET"), 4, "one GET per range, none repeated");
}
