//! Object-storage docroots against moto's S3 server (a real S3 implementation no one
//! here wrote), on loopback.

// Test helpers panic on purpose: a panic is how a failed expectation is reported.
#![allow(clippy::unwrap_used)]

use fallback_s3::{Bucket, CheckError, Location};
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
