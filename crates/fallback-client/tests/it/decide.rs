//! The fallback decision: what the URL allows, in words, before any transfer.

use crate::*;

fn decisions(log: &Mutex<Vec<Event>>) -> Vec<String> {
    log.lock()
        .unwrap()
        .iter()
        .filter_map(|e| match e {
            Event::Decision { message } => Some(message.clone()),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn fallback_yes_opens_the_http_base_and_says_why() {
    let s = Served::start().await;
    let token = download_token("alice", &["/"]);
    let (events, log) = recorder();
    let session = Session::open(
        &s.url("/", &token, "&fallback=yes"),
        options(s.dir.path()),
        events,
    )
    .await
    .unwrap();
    assert_eq!(
        session.base(),
        format!("http://127.0.0.1:{}/aspera/http", s.addr.port())
    );
    let said = decisions(&log).join("\n");
    assert!(
        said.contains("FASP SSH port 1 on 127.0.0.1 is not reachable"),
        "{said}"
    );
    assert!(said.contains("fallback=yes: using HTTP fallback"), "{said}");
    assert!(said.contains("enc=none: plain HTTP"), "{said}");
}

#[tokio::test]
async fn a_url_that_does_not_allow_fallback_is_refused_unless_forced() {
    let s = Served::start().await;
    let token = download_token("alice", &["/"]);
    for extra in ["&fallback=no", ""] {
        let (events, _) = recorder();
        let err = Session::open(&s.url("/", &token, extra), options(s.dir.path()), events)
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Url(_)), "{extra}: {err}");
        assert!(err.to_string().contains("--force-http"), "{err}");
    }
    let (events, log) = recorder();
    let forced = Options {
        force_http: true,
        ..options(s.dir.path())
    };
    Session::open(&s.url("/", &token, "&fallback=no"), forced, events)
        .await
        .unwrap();
    assert!(
        decisions(&log)
            .iter()
            .any(|m| m.starts_with("--force-http"))
    );
    // No token: nothing to authorize HTTP fallback with.
    let (events, _) = recorder();
    let err = Session::open(
        &s.url("/", "", "&fallback=yes"),
        options(s.dir.path()),
        events,
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("no token"), "{err}");
    // Nothing reached the server.
    assert_eq!(s.seen("GET") + s.seen("POST") + s.seen("HEAD"), 0);
}
