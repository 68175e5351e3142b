//! `fallback url build|parse`.

use predicates::prelude::*;

use crate::{fallback, fixture};

fn build(args: &[&str]) -> String {
    let out = fallback()
        .args(["url", "build"])
        .args(args)
        .assert()
        .code(0)
        .get_output()
        .stdout
        .clone();
    String::from_utf8(out).unwrap().trim().to_owned()
}

#[test]
fn build_applies_the_dir_listing_rule() {
    let conf = fixture("multi-user.conf");
    let conf = conf.to_str().unwrap();
    let bob = build(&[
        "--host",
        "h.example.com",
        "-u",
        "bob",
        "-p",
        "/d",
        "-c",
        conf,
        "--web",
    ]);
    assert_eq!(
        bob,
        "fasp://bob@h.example.com:33001/d?httpport=8443&fallback=yes&enc=aes128"
    );
    let alice = build(&[
        "--host",
        "h.example.com",
        "-u",
        "alice",
        "-p",
        "/d",
        "-c",
        conf,
        "--web",
    ]);
    assert_eq!(
        alice,
        "fasp://alice@h.example.com:33001/d?httpport=8080&fallback=yes&enc=none"
    );
    // Explicit flags win over the rule.
    let forced = build(&[
        "--host",
        "h.example.com",
        "-u",
        "alice",
        "-c",
        conf,
        "--web",
        "--httpport",
        "9443",
        "--enc",
        "aes256",
    ]);
    assert!(
        forced.contains("httpport=9443") && forced.contains("enc=aes256"),
        "{forced}"
    );
}

/// --config alone applies the rule (it used to need --web as well); --no-web opts out.
#[test]
fn build_with_a_config_applies_the_rule_by_default() {
    let conf = fixture("multi-user.conf");
    let conf = conf.to_str().unwrap();
    let base = [
        "--host",
        "h.example.com",
        "-u",
        "bob",
        "-p",
        "/d",
        "-c",
        conf,
    ];
    assert_eq!(
        build(&base),
        "fasp://bob@h.example.com:33001/d?httpport=8443&fallback=yes&enc=aes128"
    );
    let mut off = base.to_vec();
    off.push("--no-web");
    assert_eq!(build(&off), "fasp://bob@h.example.com:33001/d");
}

#[test]
fn build_can_issue_the_token_for_the_path() {
    let conf = fixture("multi-user.conf");
    let url = build(&[
        "--host",
        "h",
        "-u",
        "alice",
        "-p",
        "/projects",
        "-c",
        conf.to_str().unwrap(),
        "--web",
        "--issue-token",
        "download",
        "--ttl",
        "15m",
        "--no-auth",
    ]);
    let token = url
        .split("token=")
        .nth(1)
        .unwrap()
        .split('&')
        .next()
        .unwrap()
        .to_owned();
    fallback()
        .args([
            "token",
            "verify",
            &token,
            "-u",
            "alice",
            "--down",
            "-p",
            "/projects/a",
            "--config",
        ])
        .arg(&conf)
        .assert()
        .code(0);
    fallback()
        .args(["url", "parse", "--check", &url])
        .assert()
        .code(0)
        .stdout(predicate::str::contains(
            "falls back to http://h:8080/aspera/http",
        ));
}

#[test]
fn parse_explains_and_warns() {
    fallback()
        .args([
            "url",
            "parse",
            "fasp://www.example.com:3277/shared/document.txt?policy=fixed",
        ])
        .assert()
        .code(0)
        .stdout(predicate::str::contains("rate policy"))
        .stdout(predicate::str::contains("no token"))
        .stdout(predicate::str::contains("fallback is not yes"))
        .stdout(predicate::str::contains("no httpport"));
    fallback()
        .args(["url", "parse", "--check", "fasp://h/x"])
        .assert()
        .code(1);
}

#[test]
fn parse_errors_name_the_parameter() {
    fallback()
        .args(["url", "parse", "fasp://h/x?httpport=abc"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("httpport"));
}

#[test]
fn parse_json_and_token_abbreviation() {
    let url =
        "fasp://h/x?token=fbt1_ABCDEFGHIJKLMNOPQRSTUVWXYZ&fallback=yes&httpport=8443&enc=aes128";
    fallback()
        .args(["url", "parse", url])
        .assert()
        .code(0)
        .stdout(predicate::str::contains("fbt1_ABCDEFG... (31 chars)"))
        .stdout(predicate::str::contains("QRSTUVWXYZ").not());
    let out = fallback()
        .args(["url", "parse", "--json", url])
        .assert()
        .code(0)
        .get_output()
        .stdout
        .clone();
    let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(v["http_base"], "https://h:8443/aspera/https");
    assert_eq!(v["parts"]["params"]["enc"], "aes128");
    assert_eq!(v["fallback_problems"], serde_json::json!([]));
}
