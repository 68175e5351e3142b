//! Small inline documents, one behaviour each.

use fallback_conf::{Code, Config, MAX_DEPTH};

use crate::{check, conf};

#[test]
fn a_minimal_file_is_clean() {
    check(&conf(""), &[]);
}

#[test]
fn unknown_entities_are_refused_and_known_ones_decoded() {
    check(
        "<CONF>\n<http_server><bind_address>&foo;</bind_address></http_server></CONF>",
        &[(Code::UnknownEntity, 2)],
    );
    let c = Config::parse(&conf("<WEB HttpFallback=\"&#x79;es\" />\n<http_server/>")).unwrap();
    assert!(c.web().unwrap().http_fallback.value);
    let c = Config::parse(
        "<CONF><http_server><enable_http>true</enable_http>\
         <bind_address> &#49;27.0.0.1 </bind_address></http_server>\
         <default><file_system><access><paths><path><absolute>/a&amp;b</absolute></path></paths></access></file_system></default></CONF>",
    )
    .unwrap();
    assert_eq!(c.server().bind_address.value, "127.0.0.1");
    assert_eq!(
        c.defaults().docroot.value.unwrap(),
        fallback_conf::Docroot::Local("/a&b".into())
    );
}

#[test]
fn entity_declarations_never_expand() {
    // A billion-laughs attempt is refused at the DOCTYPE, before any expansion.
    let bomb = "<?xml version=\"1.0\"?>\n<!DOCTYPE lolz [<!ENTITY lol \"lol\">\
                <!ENTITY lol2 \"&lol;&lol;&lol;&lol;&lol;\">]>\n<CONF>&lol2;</CONF>";
    check(bomb, &[(Code::DoctypeRefused, 2)]);
}

#[test]
fn the_root_must_be_conf() {
    check("<conf/>", &[(Code::NotAsperaConf, 1)]);
    check("", &[(Code::NotAsperaConf, 1)]);
    check("<CONF/>\n<CONF/>", &[(Code::XmlSyntax, 2)]);
    check("<CONF/>\ntrailing", &[(Code::XmlSyntax, 2)]);
}

#[test]
fn truncated_files_name_the_open_element() {
    check(
        "<CONF>\n  <default>\n    <authorization>",
        &[(Code::UnclosedTag, 3)],
    );
}

#[test]
fn nesting_is_bounded() {
    let deep = format!(
        "<CONF>{}{}</CONF>",
        "<x>".repeat(MAX_DEPTH + 5),
        "</x>".repeat(MAX_DEPTH + 5)
    );
    check(&deep, &[(Code::TooDeep, 1)]);
}

#[test]
fn non_utf8_is_a_clear_error() {
    let err = Config::parse_bytes(b"<CONF>\n<x>\xff</x></CONF>").unwrap_err();
    assert_eq!(err.diagnostics()[0].code, Code::NotUtf8);
    assert_eq!(err.diagnostics()[0].pos.unwrap().line, 2);
}

#[test]
fn booleans_accept_the_spellings_real_files_use() {
    for (word, expected) in [
        ("true", true),
        ("TRUE", true),
        ("yes", true),
        ("1", true),
        ("false", false),
        ("no", false),
        ("0", false),
    ] {
        let c = Config::parse(&format!(
            "<CONF><http_server><enable_http>true</enable_http><enable_https>{word}</enable_https></http_server></CONF>"
        ))
        .unwrap();
        assert_eq!(c.server().enable_https.value, expected, "{word}");
    }
}

#[test]
fn as_null_and_empty_mean_unset() {
    let c = Config::parse(&conf(
        "<aaa><realms><realm><users><user><name>u</name>\
         <authorization><token><life_seconds>AS_NULL</life_seconds></token></authorization>\
         </user></users></realm></realms></aaa>",
    ))
    .unwrap();
    assert_eq!(c.user("u", &[]).token_life_seconds.value, 86_400);
    assert!(!c.has_errors());
}

#[test]
fn unknown_elements_warn_once_per_subtree_with_a_hint() {
    check(
        &conf("<WEB HttpFallback=\"yes\" HttpFallbackPrt=\"80\"/>\n<fancy><a><b/></a></fancy>"),
        &[(Code::UnknownAttribute, 4), (Code::UnknownElement, 5)],
    );
    let c = Config::parse(&conf("<WEB HttpFallbackPrt=\"80\"/>")).unwrap();
    assert!(
        c.diagnostics()[0]
            .message
            .contains("did you mean HttpFallbackPort")
    );
    // Real product sections that fallback does not use are accepted silently.
    check(
        &conf("<central_server><port>40001</port></central_server><database/>"),
        &[],
    );
}

#[test]
fn ports_out_of_range_or_signed_are_refused() {
    for bad in [
        "0",
        "65536",
        "-1",
        "+80",
        "8080a",
        "99999999999999999999999",
    ] {
        let text = format!(
            "<CONF>\n<http_server><enable_http>true</enable_http>\
             <http_port>{bad}</http_port></http_server></CONF>"
        );
        let c = Config::parse(&text).unwrap();
        assert_eq!(c.diagnostics()[0].code, Code::InvalidPort, "{bad}");
        assert_eq!(
            c.server().http_port.value,
            8080,
            "falls back to the default"
        );
    }
}

#[test]
fn life_seconds_zero_is_refused() {
    check(
        &conf(
            "<aaa><realms><realm><users><user><name>u</name>\n<authorization><token><life_seconds>0</life_seconds></token></authorization></user></users></realm></realms></aaa>",
        ),
        &[(Code::InvalidInteger, 5)],
    );
}

#[test]
fn http_and_https_on_one_port_conflict() {
    check(
        "<CONF>\n<http_server><enable_http>true</enable_http><enable_https>true</enable_https>\n\
         <http_port>9000</http_port><https_port>9000</https_port></http_server>\
         <default><file_system><access><paths><path><absolute>/srv</absolute></path></paths></access></file_system></default></CONF>",
        &[(Code::PortConflict, 3)],
    );
}

#[test]
fn cert_without_key() {
    check(
        "<CONF><http_server><enable_https>true</enable_https>\n<cert_file>/c.pem</cert_file></http_server>\
         <default><file_system><access><paths><path><absolute>/srv</absolute></path></paths></access></file_system></default></CONF>",
        &[(Code::CertWithoutKey, 2)],
    );
}

#[test]
fn no_docroot_anywhere_is_an_error_without_position() {
    check(
        "<CONF><http_server><enable_http>true</enable_http></http_server></CONF>",
        &[(Code::DocrootMissing, 0)],
    );
}

#[test]
fn a_user_without_docroot_when_others_have_one() {
    check(
        "<CONF><http_server><enable_http>true</enable_http></http_server>\n<aaa><realms><realm><users>\n\
         <user><name>a</name><file_system><access><paths><path><absolute>/a</absolute></path></paths></access></file_system></user>\n\
         <user><name>b</name></user>\n</users></realm></realms></aaa></CONF>",
        &[(Code::DocrootMissing, 4)],
    );
}

#[test]
fn token_required_in_a_user_section_without_any_key() {
    check(
        &conf(
            "<aaa><realms><realm><users><user><name>t</name>\n<authorization><transfer><out><value>token</value></out></transfer></authorization>\n</user></users></realm></realms></aaa>",
        ),
        &[(Code::TokenKeyMissing, 5)],
    );
    // A key in <default> satisfies it.
    check(
        "<CONF><http_server><enable_http>true</enable_http></http_server>\
         <default><authorization><token><encryption_key>0123456789abcdefghijkl</encryption_key></token></authorization>\
         <file_system><access><paths><path><absolute>/srv</absolute></path></paths></access></file_system></default>\
         <aaa><realms><realm><users><user><name>t</name>\n<authorization><transfer><out><value>token</value></out></transfer></authorization>\n</user></users></realm></realms></aaa></CONF>",
        &[],
    );
}

#[test]
fn second_path_is_not_a_second_docroot() {
    check(
        "<CONF><http_server><enable_http>true</enable_http></http_server>\n<default><file_system><access><paths>\n\
         <path><absolute>/one</absolute></path>\n<path><absolute>/two</absolute></path>\n\
         </paths></access></file_system></default></CONF>",
        &[(Code::ExtraDocroot, 4)],
    );
}

#[test]
fn web_ports_are_checked_in_direct_mode_only() {
    let text = |bind: &str| {
        format!(
            "<CONF><http_server><enable_http>true</enable_http><bind_address>{bind}</bind_address></http_server>\n\
             <WEB HttpFallback=\"yes\" HttpFallbackPort=\"80\" HttpsFallbackPort=\"443\"/>\
             <default><file_system><access><paths><path><absolute>/srv</absolute></path></paths></access></file_system></default></CONF>"
        )
    };
    check(&text("0.0.0.0"), &[(Code::WebPortMismatch, 2)]);
    for loopback in ["127.0.0.1", "::1", "localhost", "[::1]"] {
        check(&text(loopback), &[]);
    }
}

#[test]
fn files_over_the_size_bound_are_refused_before_reading() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("huge.conf");
    let f = std::fs::File::create(&path).unwrap();
    // Sparse: the size is what is checked, before any byte is read.
    f.set_len(fallback_conf::MAX_BYTES as u64 + 1).unwrap();
    let err = Config::load(&path).unwrap_err();
    assert!(err.to_string().contains("limit"), "{err}");
    match err {
        fallback_conf::Error::Syntax(d) => assert_eq!(d.code, Code::TooLarge),
        other => panic!("{other:?}"),
    }
    let text = format!("<CONF>{}</CONF>", " ".repeat(fallback_conf::MAX_BYTES));
    assert!(Config::parse(&text).is_err());
}
