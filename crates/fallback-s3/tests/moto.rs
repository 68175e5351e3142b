//! Object-storage docroots against moto's S3 server (a real S3 implementation no one
//! here wrote), on loopback.

// Test helpers panic on purpose: a panic is how a failed expectation is reported.
#![allow(clippy::unwrap_used)]

use fallback_s3::{AppendOptions, Bucket, CheckError, Location};
use fallback_testkit::Moto;

fn location(endpoint: &str, bucket: &str, prefix: &str) -> Location {
    Location {
        endpoint: Some(endpoint.to_owned()),
        bucket: bucket.to_owned(),
        prefix: prefix.to_owned(),
        credentials: Some((
            "AKIDFALLBACKTEST".to_owned(),
            "fallback-test-secret".to_owned(),
        )),
        allow_http: true,
        storage_class: None,
        server_side_encryption: None,
        shown: format!("s3://<redacted>@{endpoint}/{bucket}/{prefix}"),
    }
}

fn check(loc: &Location) -> Result<String, CheckError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(Bucket::connect(loc)?.check())
}

#[test]
fn a_usable_bucket_passes_the_check_and_keeps_no_probe() {
    let moto = Moto::start();
    moto.create_bucket("docroot");
    let loc = location(&moto.endpoint(), "docroot", "users/alice");
    let first = check(&loc).unwrap();
    assert!(first.contains("writable"), "{first}");
    // The probe is gone: the second check finds the docroot as empty as the first did.
    let second = check(&loc).unwrap();
    assert!(second.contains("(0 objects and 0 folders"), "{second}");
    assert!(!second.contains("fallback-test-secret"), "{second}");
    // With server-side encryption asked for, the probe is written with it.
    let sse = Location {
        server_side_encryption: Some("AES256".to_owned()),
        ..loc
    };
    check(&sse).unwrap();
}

#[test]
fn a_missing_bucket_is_named_as_missing() {
    let moto = Moto::start();
    let e = check(&location(&moto.endpoint(), "nobucket", "")).unwrap_err();
    assert!(matches!(e, CheckError::NoBucket(..)), "{e}");
    assert!(!e.to_string().contains("fallback-test-secret"), "{e}");
}

#[test]
fn a_closed_endpoint_is_unreachable_and_plain_http_needs_allowing() {
    // A port nothing listens on (bound, then released).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let e = check(&location(&format!("http://127.0.0.1:{port}"), "b", "")).unwrap_err();
    assert!(matches!(e, CheckError::Unreachable(..)), "{e}");

    let moto = Moto::start();
    moto.create_bucket("bkt");
    let plain = Location {
        allow_http: false,
        ..location(&moto.endpoint(), "bkt", "")
    };
    let e = check(&plain).unwrap_err();
    assert!(e.to_string().to_ascii_lowercase().contains("http"), "{e}");
}

/// A bucket on moto with alice's docroot under `users/alice` and neighbours around it.
fn alice(moto: &Moto, rt: &tokio::runtime::Runtime) -> Bucket {
    use object_store::{ObjectStoreExt as _, PutPayload};
    moto.create_bucket("tree");
    let b = Bucket::connect(&location(&moto.endpoint(), "tree", "users/alice")).unwrap();
    rt.block_on(async {
        for (key, body) in [
            ("users/alice/a.txt", &b"0123456789abcdef"[..]),
            ("users/alice/docs/b.txt", b"b"),
            ("users/alice/docs/deep/c.bin", b"c"),
            ("users/alice/weird [1] #x.txt", b"w"),
            ("users/alice/.fallback/uploads/x.info", b"{}"),
            ("users/alice2/not-hers.txt", b"n"),
            ("users/bob/not-hers.txt", b"n"),
            ("outside.txt", b"o"),
        ] {
            b.store()
                .put(
                    &object_store::path::Path::parse(key).unwrap(),
                    PutPayload::from(body.to_vec()),
                )
                .await
                .unwrap();
        }
    });
    b
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn rel(p: &str) -> fallback_engine::RelPath {
    fallback_engine::RelPath::parse(p).unwrap()
}

#[test]
fn stat_and_ranged_reads_come_from_the_objects() {
    use fallback_engine::{EntryKind, Error};
    use futures_util::TryStreamExt as _;
    let moto = Moto::start();
    let rt = rt();
    let b = alice(&moto, &rt);
    rt.block_on(async {
        let e = b.stat(&rel("a.txt")).await.unwrap();
        assert_eq!((e.kind, e.size), (EntryKind::File, 16));
        assert!(
            e.etag.starts_with('"') && e.etag.ends_with('"') && e.etag.len() > 2,
            "{}",
            e.etag
        );
        assert_eq!(b.stat(&rel("docs")).await.unwrap().kind, EntryKind::Dir);
        assert_eq!(b.stat(&rel("/")).await.unwrap().kind, EntryKind::Dir);
        assert!(matches!(b.stat(&rel("nope")).await, Err(Error::NotFound)));
        assert!(matches!(b.stat(&rel("docs/b")).await, Err(Error::NotFound)));
        // The reserved area cannot even be named (RelPath refuses it).
        assert!(fallback_engine::RelPath::parse(".fallback/uploads/x.info").is_err());
        assert_eq!(b.stat(&rel("weird [1] #x.txt")).await.unwrap().size, 1);

        let read = |range, etag: Option<String>| {
            let b = b.clone();
            async move {
                let s = b.read(&rel("a.txt"), range, etag.as_deref()).await?;
                let chunks: Vec<bytes::Bytes> = s.try_collect().await?;
                Ok::<_, Error>(chunks.concat())
            }
        };
        assert_eq!(
            read(2..10, Some(e.etag.clone())).await.unwrap(),
            b"23456789"
        );
        assert_eq!(read(0..16, None).await.unwrap(), b"0123456789abcdef");
        assert_eq!(read(5..5, None).await.unwrap(), b"");
        // Another version than the one announced: refused, never mixed.
        assert!(read(0..16, Some("\"another\"".to_owned())).await.is_err());
    });
}

#[test]
fn listings_stay_beneath_the_prefix_and_out_of_the_reserved_area() {
    use fallback_engine::{EntryKind, Error};
    let moto = Moto::start();
    let rt = rt();
    let b = alice(&moto, &rt);
    rt.block_on(async {
        let top = b.list(&rel("/"), 100, false).await.unwrap();
        let names: Vec<(&str, EntryKind)> = top.iter().map(|e| (e.path.as_str(), e.kind)).collect();
        assert_eq!(
            names,
            [
                ("a.txt", EntryKind::File),
                ("docs", EntryKind::Dir),
                ("weird [1] #x.txt", EntryKind::File)
            ]
        );
        let all = b.list(&rel("/"), 100, true).await.unwrap();
        let paths: Vec<&str> = all.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "a.txt",
                "docs",
                "docs/b.txt",
                "docs/deep",
                "docs/deep/c.bin",
                "weird [1] #x.txt"
            ]
        );
        let docs = b.list(&rel("docs"), 100, true).await.unwrap();
        let paths: Vec<&str> = docs.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(paths, ["b.txt", "deep", "deep/c.bin"]);
        assert!(matches!(
            b.list(&rel("/"), 5, true).await,
            Err(Error::Limit(_))
        ));
        assert!(matches!(
            b.list(&rel("/"), 2, false).await,
            Err(Error::Limit(_))
        ));
        assert!(matches!(
            b.list(&rel("a.txt"), 10, false).await,
            Err(Error::WrongKind(_))
        ));
        assert!(matches!(
            b.list(&rel("nope"), 10, false).await,
            Err(Error::NotFound)
        ));
    });
}

#[test]
fn a_listing_longer_than_one_page_is_whole() {
    use futures_util::StreamExt as _;
    use object_store::{ObjectStoreExt as _, PutPayload};
    let moto = Moto::start();
    moto.create_bucket("pages");
    let rt = rt();
    let b = Bucket::connect(&location(&moto.endpoint(), "pages", "p")).unwrap();
    // ListObjectsV2 answers 1,000 keys a page.
    let n = 1_005;
    rt.block_on(async {
        futures_util::stream::iter(0..n)
            .for_each_concurrent(16, |i| {
                let b = b.clone();
                async move {
                    let key = object_store::path::Path::parse(format!("p/f{i:05}")).unwrap();
                    b.store()
                        .put(&key, PutPayload::from_static(b"x"))
                        .await
                        .unwrap();
                }
            })
            .await;
        let all = b.list(&rel("/"), 10_000, true).await.unwrap();
        assert_eq!(all.len(), n);
        let top = b.list(&rel("/"), 10_000, false).await.unwrap();
        assert_eq!(top.len(), n);
        assert_eq!(top.last().unwrap().path, format!("f{:05}", n - 1));
    });
}

/// The upload lock rests on conditional writes (`If-None-Match: *` to take a free
/// lock, `If-Match` to take over an expired one): the S3 server must honour both.
#[test]
fn conditional_writes_refuse_a_taken_name_and_a_stale_etag() {
    use object_store::{ObjectStore as _, PutMode, PutOptions, PutPayload, UpdateVersion};
    let moto = Moto::start();
    moto.create_bucket("locks");
    let rt = rt();
    let b = Bucket::connect(&location(&moto.endpoint(), "locks", "")).unwrap();
    rt.block_on(async {
        let key = object_store::path::Path::parse("x.lock").unwrap();
        let create = || PutOptions {
            mode: PutMode::Create,
            ..PutOptions::default()
        };
        let first = b
            .store()
            .put_opts(&key, PutPayload::from_static(b"a"), create())
            .await
            .unwrap();
        let again = b
            .store()
            .put_opts(&key, PutPayload::from_static(b"b"), create())
            .await;
        assert!(
            matches!(again, Err(object_store::Error::AlreadyExists { .. })),
            "{again:?}"
        );
        let update = |e_tag: Option<String>| PutOptions {
            mode: PutMode::Update(UpdateVersion {
                e_tag,
                version: None,
            }),
            ..PutOptions::default()
        };
        let stale = b
            .store()
            .put_opts(
                &key,
                PutPayload::from_static(b"c"),
                update(Some("\"stale\"".into())),
            )
            .await;
        assert!(
            matches!(stale, Err(object_store::Error::Precondition { .. })),
            "{stale:?}"
        );
        b.store()
            .put_opts(&key, PutPayload::from_static(b"d"), update(first.e_tag))
            .await
            .unwrap();
    });
}

/// `n` bytes that do not repeat in part-sized blocks.
fn data(n: usize) -> Vec<u8> {
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

fn new(user: &str, dest: &str, length: Option<u64>) -> fallback_engine::NewUpload {
    fallback_engine::NewUpload {
        user: user.to_owned(),
        dest: rel(dest),
        length,
        metadata: Vec::new(),
        expected_sha256: None,
        no_replace: false,
        modes: fallback_engine::Modes::default(),
    }
}

fn expect(sha: [u8; 32]) -> AppendOptions<'static> {
    AppendOptions {
        expected: Some(sha),
        ..AppendOptions::default()
    }
}

fn sha(b: &[u8]) -> [u8; 32] {
    use sha2::Digest as _;
    sha2::Sha256::digest(b).into()
}

/// A body of `chunks` (64 KiB pieces of `bytes`), then, if `cut`, an error: the
/// connection lost midway.
fn body(
    bytes: &[u8],
    cut: bool,
) -> impl futures_util::Stream<Item = Result<bytes::Bytes, std::io::Error>> + Unpin + use<> {
    let mut items: Vec<Result<bytes::Bytes, std::io::Error>> = bytes
        .chunks(64 << 10)
        .map(|c| Ok(bytes::Bytes::copy_from_slice(c)))
        .collect();
    if cut {
        items.push(Err(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "the client went away",
        )));
    }
    futures_util::stream::iter(items)
}

async fn object(b: &Bucket, key: &str) -> Option<Vec<u8>> {
    use object_store::ObjectStoreExt as _;
    let got = b
        .store()
        .get(&object_store::path::Path::parse(key).unwrap())
        .await
        .ok()?;
    Some(got.bytes().await.unwrap().to_vec())
}

#[test]
fn an_upload_cut_on_one_instance_resumes_on_another_and_appears_only_when_whole() {
    use fallback_engine::Error;
    let moto = Moto::start();
    moto.create_bucket("uploads");
    let rt = rt();
    let loc = location(&moto.endpoint(), "uploads", "users/alice");
    // Two instances: nothing shared but the bucket.
    let a = Bucket::connect(&loc).unwrap();
    let b = Bucket::connect(&loc).unwrap();
    let file = data(40 << 20);
    rt.block_on(async {
        let dest = rel("in/big.bin");
        let up = a
            .create_upload(
                &new("alice", "in/big.bin", Some(file.len() as u64)),
                false,
                3600,
            )
            .await
            .unwrap();
        // 12 MiB arrive, then the connection drops.
        let r = a
            .append(
                &up.id,
                "alice",
                0,
                body(&file[..12 << 20], true),
                expect(sha(&file)),
            )
            .await;
        assert!(matches!(r, Err(Error::Io(_))), "{r:?}");
        assert!(
            object(&a, "users/alice/in/big.bin").await.is_none(),
            "visible before completion"
        );
        // The other instance sees where it got: one 8 MiB part and a 4 MiB tail.
        let seen = b.upload(&up.id).await.unwrap();
        assert_eq!(seen.offset(), 12 << 20);
        assert_eq!(seen.progress.parts.len(), 1);
        assert_eq!(seen.progress.tail.map(|t| t.size), Some(4 << 20));
        // A wrong offset is refused with the right one.
        let r = b
            .append(
                &up.id,
                "alice",
                1,
                body(b"x", false),
                AppendOptions::default(),
            )
            .await;
        assert!(
            matches!(r, Err(Error::OffsetMismatch { actual }) if actual == 12 << 20),
            "{r:?}"
        );
        // Someone else's upload is not theirs to write.
        let r = b
            .append(
                &up.id,
                "mallory",
                12 << 20,
                body(b"x", false),
                AppendOptions::default(),
            )
            .await;
        assert!(matches!(r, Err(Error::NotOwner)), "{r:?}");
        // The rest, from the other instance, with the whole file's SHA-256.
        let done = b
            .append(
                &up.id,
                "alice",
                12 << 20,
                body(&file[12 << 20..], false),
                expect(sha(&file)),
            )
            .await
            .unwrap();
        assert_eq!(done.offset, file.len() as u64);
        let (digest, etag) = done.completed.unwrap();
        assert_eq!(digest, sha(&file));
        assert_eq!(object(&a, "users/alice/in/big.bin").await.unwrap(), file);
        // Downloads can announce the digest while the object keeps its ETag.
        let entry = a.stat(&dest).await.unwrap();
        assert_eq!(entry.etag, etag);
        assert_eq!(a.digest(&dest, &entry.etag).await, Some(sha(&file)));
        assert_eq!(a.digest(&dest, "\"other\"").await, None);
        // The state stays, done (a lost last answer is asked again); the tail and
        // lease are gone.
        let after = b.upload(&up.id).await.unwrap();
        assert_eq!(after.published_sha256(), Some(sha(&file)));
        assert_eq!(after.offset(), file.len() as u64);
        assert!(after.progress.tail.is_none());
        let r = b
            .append(
                &up.id,
                "alice",
                after.offset(),
                body(b"", false),
                AppendOptions::default(),
            )
            .await;
        assert!(matches!(r, Err(Error::Finished)), "{r:?}");
        let left = a.list(&rel("/"), 100, true).await.unwrap();
        assert_eq!(left.len(), 2, "{left:?}"); // in, in/big.bin
    });
}

#[test]
fn a_file_that_is_not_the_senders_is_never_completed() {
    use fallback_engine::Error;
    let moto = Moto::start();
    moto.create_bucket("bad");
    let rt = rt();
    let b = Bucket::connect(&location(&moto.endpoint(), "bad", "")).unwrap();
    let file = data(9 << 20);
    rt.block_on(async {
        let up = b
            .create_upload(&new("u", "f.bin", Some(file.len() as u64)), false, 60)
            .await
            .unwrap();
        let r = b
            .append(&up.id, "u", 0, body(&file, false), expect([7u8; 32]))
            .await;
        assert!(matches!(r, Err(Error::ChecksumMismatch)), "{r:?}");
        assert!(object(&b, "f.bin").await.is_none());
        assert!(matches!(b.upload(&up.id).await, Err(Error::UnknownUpload)));
        // An empty file completes as a plain object.
        let empty = b
            .create_upload(&new("u", "empty", Some(0)), false, 60)
            .await
            .unwrap();
        let done = b
            .append(
                &empty.id,
                "u",
                0,
                body(b"", false),
                AppendOptions::default(),
            )
            .await
            .unwrap();
        assert_eq!(done.completed.unwrap().0, sha(b""));
        assert_eq!(object(&b, "empty").await.unwrap(), b"");
        // Expired uploads are swept, wherever they were made.
        let old = b
            .create_upload(&new("u", "old", Some(10)), false, 0)
            .await
            .unwrap();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        assert_eq!(b.sweep_expired(now + 1).await.unwrap(), 1);
        assert!(matches!(b.upload(&old.id).await, Err(Error::UnknownUpload)));
    });
}

#[test]
fn a_live_writer_holds_the_upload_against_a_second_one() {
    use fallback_engine::Error;
    use object_store::ObjectStoreExt as _;
    let moto = Moto::start();
    moto.create_bucket("lease");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let loc = location(&moto.endpoint(), "lease", "");
    let a = Bucket::connect(&loc).unwrap();
    let b = Bucket::connect(&loc).unwrap();
    rt.block_on(async {
        let up = a
            .create_upload(&new("u", "f", Some(3)), false, 60)
            .await
            .unwrap();
        // The first writer's body stays open until the test sends the rest.
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<bytes::Bytes, std::io::Error>>(1);
        let stream = futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|item| (item, rx))
        });
        let id = up.id.clone();
        let first = tokio::spawn(async move {
            a.append(&id, "u", 0, Box::pin(stream), AppendOptions::default())
                .await
        });
        tx.send(Ok(bytes::Bytes::from_static(b"ab"))).await.unwrap();
        // Wait for the event: the lease object exists.
        let lock =
            object_store::path::Path::parse(format!(".fallback/uploads/{}.lock", up.id)).unwrap();
        while b.store().head(&lock).await.is_err() {
            tokio::task::yield_now().await;
        }
        let second = b
            .append(
                &up.id,
                "u",
                0,
                body(b"abc", false),
                AppendOptions::default(),
            )
            .await;
        assert!(matches!(second, Err(Error::Locked)), "{second:?}");
        tx.send(Ok(bytes::Bytes::from_static(b"c"))).await.unwrap();
        drop(tx);
        let done = first.await.unwrap().unwrap();
        assert_eq!(done.offset, 3);
        assert!(
            b.store().head(&lock).await.is_err(),
            "the lease is released"
        );
    });
}

#[test]
fn a_chunk_that_fails_its_checksum_leaves_the_upload_where_it_was() {
    use fallback_engine::{ChunkChecksum, Error};
    let moto = Moto::start();
    moto.create_bucket("chunks");
    let rt = rt();
    let b = Bucket::connect(&location(&moto.endpoint(), "chunks", "p")).unwrap();
    let file = data(20 << 20);
    rt.block_on(async {
        let up = b
            .create_upload(&new("u", "f.bin", Some(file.len() as u64)), false, 60)
            .await
            .unwrap();
        // 3 MiB kept as a tail.
        b.append(
            &up.id,
            "u",
            0,
            body(&file[..3 << 20], false),
            AppendOptions::default(),
        )
        .await
        .unwrap();
        // A 10 MiB chunk (a full part stored on the way) whose checksum is wrong.
        let chunk = &file[3 << 20..13 << 20];
        let wrong = AppendOptions {
            chunk: Some(ChunkChecksum::Sha256([1; 32])),
            ..AppendOptions::default()
        };
        let r = b
            .append(&up.id, "u", 3 << 20, body(chunk, false), wrong)
            .await;
        assert!(matches!(r, Err(Error::ChecksumMismatch)), "{r:?}");
        let seen = b.upload(&up.id).await.unwrap();
        assert_eq!(seen.offset(), 3 << 20, "the chunk is not kept");
        assert!(seen.progress.parts.is_empty());
        // The same chunk with its right checksum, cut: nothing of it is kept either.
        let right = AppendOptions {
            chunk: Some(ChunkChecksum::Sha256(sha(chunk))),
            ..AppendOptions::default()
        };
        let r = b
            .append(&up.id, "u", 3 << 20, body(chunk, true), right)
            .await;
        assert!(matches!(r, Err(Error::Io(_))), "{r:?}");
        assert_eq!(b.upload(&up.id).await.unwrap().offset(), 3 << 20);
        // Intact, it is recorded whole.
        let got = b
            .append(&up.id, "u", 3 << 20, body(chunk, false), right)
            .await
            .unwrap();
        assert_eq!(got.offset, 13 << 20);
        // A token that expired while the last bytes came keeps them, uncompleted;
        // an empty request completes the file.
        let no = || false;
        let held = AppendOptions {
            may_complete: Some(&no),
            ..AppendOptions::default()
        };
        let got = b
            .append(&up.id, "u", 13 << 20, body(&file[13 << 20..], false), held)
            .await
            .unwrap();
        assert_eq!((got.offset, got.completed), (file.len() as u64, None));
        assert!(object(&b, "p/f.bin").await.is_none());
        let done = b
            .append(
                &up.id,
                "u",
                file.len() as u64,
                body(b"", false),
                expect(sha(&file)),
            )
            .await
            .unwrap();
        assert_eq!(done.completed.unwrap().0, sha(&file));
        assert_eq!(object(&b, "p/f.bin").await.unwrap(), file);
    });
}

#[test]
fn a_single_shot_upload_ends_with_its_body_and_never_replaces_when_told() {
    use fallback_engine::Error;
    let moto = Moto::start();
    moto.create_bucket("puts");
    let rt = rt();
    let b = Bucket::connect(&location(&moto.endpoint(), "puts", "")).unwrap();
    let file = data(6 << 20);
    rt.block_on(async {
        // Length unknown (a chunked PUT): the body's clean end is the file's.
        let up = b
            .create_upload(&new("u", "a/put.bin", None), true, 60)
            .await
            .unwrap();
        let finish = AppendOptions {
            finish: true,
            ..AppendOptions::default()
        };
        let done = b
            .append(&up.id, "u", 0, body(&file, false), finish)
            .await
            .unwrap();
        assert_eq!(done.offset, file.len() as u64);
        assert_eq!(object(&b, "a/put.bin").await.unwrap(), file);
        // A single-shot upload leaves no state behind.
        assert!(matches!(b.upload(&up.id).await, Err(Error::UnknownUpload)));
        // `no_replace`: refused at creation when the object exists...
        let mut keep = new("u", "a/put.bin", Some(3));
        keep.no_replace = true;
        let r = b.create_upload(&keep, true, 60).await;
        assert!(matches!(r, Err(Error::Exists)), "{r:?}");
        // ...and at completion when one appeared meanwhile.
        keep.dest = rel("a/late.bin");
        let up = b.create_upload(&keep, false, 60).await.unwrap();
        b.append(&up.id, "u", 0, body(b"ab", false), AppendOptions::default())
            .await
            .unwrap();
        {
            use object_store::ObjectStoreExt as _;
            let key = object_store::path::Path::parse("a/late.bin").unwrap();
            b.store()
                .put(&key, b"theirs".to_vec().into())
                .await
                .unwrap();
        }
        let r = b
            .append(&up.id, "u", 2, body(b"c", false), AppendOptions::default())
            .await;
        assert!(matches!(r, Err(Error::Exists)), "{r:?}");
        assert_eq!(object(&b, "a/late.bin").await.unwrap(), b"theirs");
    });
}

#[test]
fn the_storage_class_and_the_announced_digest_go_with_the_object() {
    let moto = Moto::start();
    moto.create_bucket("classes");
    let rt = rt();
    let loc = Location {
        storage_class: Some("STANDARD_IA".to_owned()),
        ..location(&moto.endpoint(), "classes", "p")
    };
    let b = Bucket::connect(&loc).unwrap();
    let file = data(9 << 20);
    rt.block_on(async {
        let mut announced = new("u", "f.bin", Some(file.len() as u64));
        announced.expected_sha256 = Some(sha(&file));
        let up = b.create_upload(&announced, false, 60).await.unwrap();
        let done = b
            .append(&up.id, "u", 0, body(&file, false), AppendOptions::default())
            .await
            .unwrap();
        assert!(done.completed.is_some());
        let empty = b
            .create_upload(&new("u", "e", Some(0)), false, 60)
            .await
            .unwrap();
        b.append(
            &empty.id,
            "u",
            0,
            body(b"", false),
            AppendOptions::default(),
        )
        .await
        .unwrap();
        // The digest comes back from the object itself (its metadata), not a record.
        let e = b.stat(&rel("f.bin")).await.unwrap();
        assert_eq!(e.sha256, Some(sha(&file)));
        assert_eq!(b.stat(&rel("e")).await.unwrap().sha256, None);
    });
    // The class, as S3 lists it.
    let listing = std::process::Command::new("curl")
        .args([
            "-s",
            &format!("{}/classes?list-type=2&prefix=p/", moto.endpoint()),
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&listing.stdout);
    for key in ["p/f.bin", "p/e"] {
        let at = text
            .find(&format!("<Key>{key}</Key>"))
            .unwrap_or_else(|| panic!("{key} in {text}"));
        let entry = &text[at..text[at..]
            .find("</Contents>")
            .map_or(text.len(), |e| at + e)];
        assert!(
            entry.contains("<StorageClass>STANDARD_IA</StorageClass>"),
            "{entry}"
        );
    }
}

/// What a relay in front of moto changes.
#[derive(Clone, Copy)]
enum Quirk {
    /// Drops the `If-None-Match` and `If-Match` request headers: a store that ignores
    /// conditional writes.
    NoConditions,
    /// Answers every HEAD with 500, as s3s-fs does for a name that is also a folder.
    FailedHeads,
}

/// moto behind a relay with `quirk`. Returns the relay's endpoint.
fn relay(upstream: u16, quirk: Quirk) -> String {
    use std::io::{BufRead as _, BufReader, Read as _, Write as _};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for client in listener.incoming().map_while(Result::ok) {
            let server = std::net::TcpStream::connect(("127.0.0.1", upstream)).unwrap();
            let (mut back, mut to_client) =
                (server.try_clone().unwrap(), client.try_clone().unwrap());
            let mut answer = client.try_clone().unwrap();
            std::thread::spawn(move || std::io::copy(&mut back, &mut to_client));
            let mut server = server;
            std::thread::spawn(move || {
                let mut reader = BufReader::new(client);
                loop {
                    let mut head = Vec::new();
                    let mut length = 0usize;
                    loop {
                        let mut line = String::new();
                        if reader.read_line(&mut line).unwrap_or(0) == 0 {
                            return;
                        }
                        let lower = line.to_ascii_lowercase();
                        if let Some(v) = lower.strip_prefix("content-length:") {
                            length = v.trim().parse().unwrap_or(0);
                        }
                        let end = line == "\r\n";
                        let dropped = matches!(quirk, Quirk::NoConditions)
                            && (lower.starts_with("if-none-match:")
                                || lower.starts_with("if-match:"));
                        if !dropped {
                            head.extend_from_slice(line.as_bytes());
                        }
                        if end {
                            break;
                        }
                    }
                    let mut body = vec![0u8; length];
                    if matches!(quirk, Quirk::FailedHeads) && head.starts_with(b"HEAD ") {
                        let _ = answer.write_all(
                            b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n",
                        );
                        continue;
                    }
                    if reader.read_exact(&mut body).is_err()
                        || server.write_all(&head).is_err()
                        || server.write_all(&body).is_err()
                    {
                        return;
                    }
                }
            });
        }
    });
    format!("http://127.0.0.1:{port}")
}

#[test]
fn a_store_that_ignores_conditional_writes_is_refused_by_the_check() {
    let moto = Moto::start();
    moto.create_bucket("naive");
    let port: u16 = moto.endpoint().rsplit(':').next().unwrap().parse().unwrap();
    let relay = relay(port, Quirk::NoConditions);
    // Through the relay the bucket is reachable and writable, but cannot hold a lease.
    let e = check(&location(&relay, "naive", "p")).unwrap_err();
    assert!(matches!(e, CheckError::NoConditionalWrites(..)), "{e}");
    assert!(e.to_string().contains("conditional writes"), "{e}");
    assert!(!e.to_string().contains("fallback-test-secret"), "{e}");
    // The same bucket, straight: usable.
    check(&location(&moto.endpoint(), "naive", "p")).unwrap();
}

#[test]
fn a_folder_whose_head_fails_is_still_a_folder() {
    let moto = Moto::start();
    moto.create_bucket("heads");
    let rt = rt();
    let port: u16 = moto.endpoint().rsplit(':').next().unwrap().parse().unwrap();
    let direct = Bucket::connect(&location(&moto.endpoint(), "heads", "p")).unwrap();
    let quirky =
        Bucket::connect(&location(&relay(port, Quirk::FailedHeads), "heads", "p")).unwrap();
    rt.block_on(async {
        let up = direct
            .create_upload(&new("u", "dir/f.txt", Some(3)), false, 60)
            .await
            .unwrap();
        direct
            .append(
                &up.id,
                "u",
                0,
                body(b"abc", false),
                AppendOptions::default(),
            )
            .await
            .unwrap();
        let e = quirky.stat(&rel("dir")).await.unwrap();
        assert_eq!(e.kind, fallback_engine::EntryKind::Dir);
        // A name that is no folder: the failed HEAD is the answer (the store's 5xx:
        // unavailable for now), never "missing".
        let r = quirky.stat(&rel("dir/f.txt")).await;
        assert!(
            matches!(r, Err(fallback_engine::Error::Unavailable(_))),
            "{r:?}"
        );
    });
}
