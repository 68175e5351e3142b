//! The files under fixtures/conf: good ones parse clean, broken ones give exactly the
//! expected codes at the expected lines.

use fallback_conf::{Code, Config, Docroot, Mode, Origin, TransferAuth};

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
        d.docroot.value.as_ref().and_then(Docroot::as_local),
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

#[test]
fn every_setting_not_applied_over_http_is_named_with_why() {
    let conf = Config::load(&fixture("not-applied.conf")).unwrap();
    let named = |code: Code| -> Vec<String> {
        conf.diagnostics()
            .iter()
            .filter(|d| d.code == code)
            .map(|d| {
                let el = d.path.rsplit('/').next().unwrap_or_default().to_owned();
                assert!(d.message.contains("because"), "{d}");
                el
            })
            .collect()
    };
    let not_applied = named(Code::NotApplied);
    for el in [
        "external_provider",
        "dynamic_key",
        "key_file",
        "filter",
        "filters",
        "resume_suffix",
        "partial_file_suffix",
        "pre_calculate_job_size",
        "preserve_attributes",
        "symbolic_links",
        "replace_illegal_chars",
        "file_checksum",
        "file_manifest",
        "fips_mode",
        "content_protection_required",
        "content_protection_secret",
        "aggregate",
        "validation_threshold_kb",
        "lua_session_start_script",
    ] {
        assert!(
            not_applied.iter().any(|n| n == el),
            "{el} not reported: {not_applied:?}"
        );
    }
    let no_effect = named(Code::NoEffectOverHttp);
    for el in [
        "show_as",
        "description",
        "read_block_size",
        "storage_rc",
        "strict_allowed_cipher",
        "default",
        "lock",
        "policy",
        "protocol_options",
        "multi_session_threshold_default",
    ] {
        assert!(
            no_effect.iter().any(|n| n == el),
            "{el} not noted: {no_effect:?}"
        );
    }
    // Known, so never "unknown"; and nothing here is an error.
    assert!(
        conf.diagnostics()
            .iter()
            .all(|d| d.code != Code::UnknownElement && !d.is_error()),
        "{:?}",
        conf.diagnostics()
    );
    // The filters finding says what the product does and what to use instead.
    let filters = conf
        .diagnostics()
        .iter()
        .find(|d| d.path.ends_with("/filters"))
        .unwrap();
    assert!(filters.message.contains("acts as a client"), "{filters}");
    assert!(filters.message.contains("restrictions"), "{filters}");
}

#[test]
fn off_values_of_unapplied_settings_are_not_reported() {
    let conf = Config::parse(
        r"<CONF><http_server><enable_http>true</enable_http></http_server><default>
        <file_system><access><paths><path><absolute>/d</absolute></path></paths></access>
          <pre_calculate_job_size>no</pre_calculate_job_size></file_system>
        <transfer><encryption><content_protection_required>false</content_protection_required>
          <fips_mode>no</fips_mode></encryption>
          <in><bandwidth><aggregate><trunk_id>AS_NULL</trunk_id></aggregate></bandwidth></in>
        </transfer></default></CONF>",
    )
    .unwrap();
    assert!(conf.diagnostics().is_empty(), "{:?}", conf.diagnostics());
}
