//! The dir-listing rule over the multi-user fixture.

use fallback_conf::Config;
use fallback_url::{Enc, FaspUrl};

use crate::fixtures;

fn conf() -> Config {
    Config::load(&fixtures().join("conf/multi-user.conf")).unwrap()
}

#[test]
fn an_encrypting_user_gets_the_https_port() {
    let c = conf();
    let web = c.web().unwrap();
    let url = FaspUrl::builder("files.example.com")
        .user("bob")
        .path("/data")
        .fallback_for(&c.user("bob", &[]), &web)
        .build();
    assert_eq!(url.params.enc, Some(Enc::Aes128));
    assert_eq!(url.params.httpport, Some(8443));
    assert_eq!(url.params.fallback, Some(true));
    assert_eq!(
        url.http_base().unwrap().as_str(),
        "https://files.example.com:8443/aspera/https"
    );
    // Through a group that requires aes-256.
    let admin = FaspUrl::builder("h")
        .fallback_for(&c.user("dave", &["admins"]), &web)
        .build();
    assert_eq!(admin.params.enc, Some(Enc::Aes256));
    assert_eq!(admin.params.httpport, Some(8443));
}

#[test]
fn a_user_who_need_not_encrypt_gets_the_http_port() {
    let c = conf();
    let url = FaspUrl::builder("files.example.com")
        .user("alice")
        .fallback_for(&c.user("alice", &[]), &c.web().unwrap())
        .build();
    assert_eq!(url.params.enc, Some(Enc::None));
    assert_eq!(url.params.httpport, Some(8080));
    assert_eq!(
        url.http_base().unwrap().as_str(),
        "http://files.example.com:8080/aspera/http"
    );
    assert!(url.to_string().contains("fallback=yes&enc=none"), "{url}");
}

#[test]
fn http_fallback_no_gives_no_fallback_parameters() {
    let text = std::fs::read_to_string(fixtures().join("conf/multi-user.conf"))
        .unwrap()
        .replace("HttpFallback=\"yes\"", "HttpFallback=\"no\"");
    let c = Config::parse(&text).unwrap();
    let url = FaspUrl::builder("h")
        .fallback_for(&c.user("bob", &[]), &c.web().unwrap())
        .build();
    assert_eq!(url.params.fallback, None);
    assert_eq!(url.params.httpport, None);
    assert!(!url.to_string().contains("fallback"), "{url}");
    // Encryption still applies to the FASP transfer itself.
    assert_eq!(url.params.enc, Some(Enc::Aes128));
}

#[test]
fn proxy_mode_advertises_the_proxy_ports() {
    let c = Config::load(&fixtures().join("conf/proxy-mode.conf")).unwrap();
    let url = FaspUrl::builder("www.example.com")
        .fallback_for(&c.defaults(), &c.web().unwrap())
        .build();
    assert_eq!(url.params.httpport, Some(80));
    assert_eq!(
        url.http_base().unwrap().as_str(),
        "http://www.example.com/aspera/http"
    );
}
