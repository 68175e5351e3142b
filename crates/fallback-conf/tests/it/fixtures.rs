//! The files under fixtures/conf: good ones parse clean, broken ones give exactly the
//! expected codes at the expected lines.

use fallback_conf::{Code, Config, Mode, Origin, TransferAuth};

use crate::{findings, fixture};

#[track_caller]
fn check_file(name: &str, expected: &[(Code, u32)]) {
    assert_eq!(findings(Config::load(&fixture(name))), expected, "{name}");
}

#[test]
fn good_fixtures_have_no_findings() {
    check_file("direct-mode.conf", &[]);
    check_file("proxy-mode.conf", &[]);
    check_file("multi-user.conf", &[]);
}

#[test]
fn direct_mode_is_the_articles_first_setup() {
    let conf = Config::load(&fixture("direct-mode.conf")).unwrap();
    let s = conf.server();
    assert_eq!(s.mode(), Mode::Direct);
    assert!(s.enable_http.value && s.enable_https.value);
    assert_eq!((s.http_port.value, s.https_port.value), (8080, 8443));
    let web = conf.web().unwrap();
    assert!(web.http_fallback.value);
    assert_eq!(web.https_fallback_port.value, 8443);
    let d = conf.defaults();
    assert_eq!(d.transfer_in.value, TransferAuth::Token);
    assert_eq!(
        d.token_key.value.as_ref().unwrap().expose(),
        "change-me-secret-key-for-http fallback"
    );
    assert_eq!(
        d.docroot.value.as_deref(),
        Some(std::path::Path::new("/srv/fallback/data"))
    );
}

#[test]
fn proxy_mode_binds_loopback_and_advertises_the_proxy_ports() {
    let conf = Config::load(&fixture("proxy-mode.conf")).unwrap();
    let s = conf.server();
    assert_eq!(s.mode(), Mode::Proxy);
    assert!(s.enable_http.value);
    assert!(!s.enable_https.value);
    let web = conf.web().unwrap();
    assert_eq!(
        (web.http_fallback_port.value, web.https_fallback_port.value),
        (80, 443)
    );
    // Values written in the file say so, with the line.
    assert_eq!(
        s.bind_address.origin,
        Origin::Global {
            pos: fallback_conf::Pos {
                line: 10,
                column: 5
            }
        }
    );
}

#[test]
fn bad_port() {
    check_file("broken/bad-port.conf", &[(Code::InvalidPort, 4)]);
}

#[test]
fn unclosed_tag_points_at_the_open_element() {
    check_file("broken/unclosed-tag.conf", &[(Code::UnclosedTag, 2)]);
}

#[test]
fn mismatched_tag_points_at_the_closing_tag() {
    check_file("broken/mismatched-tag.conf", &[(Code::MismatchedTag, 3)]);
}

#[test]
fn doctype_with_entities_is_refused() {
    check_file("broken/doctype-entity.conf", &[(Code::DoctypeRefused, 2)]);
}

#[test]
fn wrong_types() {
    check_file(
        "broken/wrong-types.conf",
        &[
            (Code::InvalidBool, 3),
            (Code::InvalidInteger, 5),
            (Code::InvalidValue, 9),
            (Code::InvalidValue, 12),
            (Code::InvalidInteger, 13),
        ],
    );
}

#[test]
fn semantic_problems() {
    check_file(
        "broken/semantic.conf",
        &[
            (Code::NoListener, 3),
            (Code::UnknownElement, 5),
            (Code::UnknownAttribute, 7),
            (Code::TokenKeyMissing, 10),
            (Code::DocrootNotAbsolute, 12),
        ],
    );
}

#[test]
fn web_ports_disagreeing_in_direct_mode_warn() {
    check_file(
        "broken/web-mismatch.conf",
        &[
            (Code::WebPortMismatch, 8),
            (Code::WebPortMismatch, 8),
            (Code::WeakTokenKey, 11),
        ],
    );
    // Warnings only: the file is usable.
    let conf = Config::load(&fixture("broken/web-mismatch.conf")).unwrap();
    assert!(conf.into_checked().is_ok());
}

#[test]
fn duplicates() {
    check_file(
        "broken/duplicates.conf",
        &[
            (Code::DuplicateElement, 5),
            (Code::DuplicateName, 12),
            (Code::MissingName, 13),
        ],
    );
    // The first value is kept.
    let conf = Config::load(&fixture("broken/duplicates.conf")).unwrap();
    assert_eq!(conf.server().http_port.value, 8080);
    assert!(conf.into_checked().is_err());
}

#[test]
fn missing_file_is_an_io_error_naming_the_file() {
    let err = Config::load(&fixture("no-such.conf")).unwrap_err();
    assert!(matches!(err, fallback_conf::Error::Io { .. }));
    assert!(err.to_string().contains("no-such.conf"), "{err}");
}
