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
