//! `fallback token generate|inspect|verify`.

use assert_cmd::Command;
use predicates::prelude::*;

use crate::{fallback, fixture};

fn generate(args: &[&str]) -> String {
    let out = fallback()
        .args(["token", "generate", "--config"])
        .arg(fixture("multi-user.conf"))
        .args(args)
        .assert()
        .code(0)
        .get_output()
        .stdout
        .clone();
    String::from_utf8(out).unwrap().trim().to_owned()
}

fn verify(token: &str, args: &[&str]) -> assert_cmd::assert::Assert {
    fallback()
        .args(["token", "verify", "-", "--config"])
        .arg(fixture("multi-user.conf"))
        .args(args)
        .write_stdin(token)
        .assert()
}

#[test]
fn generate_then_verify_a_download() {
    let t = generate(&[
        "--user",
        "alice",
        "--down",
        "-p",
        "/projects",
        "-p",
        "/readme.txt",
    ]);
    assert!(t.starts_with("fbt1_"), "{t}");
    verify(
        &t,
        &["--user", "alice", "--down", "-p", "/projects/2026/a.bin"],
    )
    .code(0)
    .stdout(predicate::str::starts_with(
        "valid: download token for alice",
    ));
    verify(&t, &["--user", "alice", "--down", "-p", "/projects2"])
        .code(1)
        .stdout(predicate::str::contains("[path-not-covered]"));
    verify(&t, &["--user", "alice", "--up", "-p", "/projects/x"])
        .code(1)
        .stdout(predicate::str::contains("[wrong-direction]"));
    verify(&t, &["--user", "carol", "--down", "-p", "/projects"])
        .code(1)
        .stdout(predicate::str::contains("[wrong-user]"));
}

#[test]
fn upload_tokens_name_one_destination() {
    let t = generate(&["-u", "alice", "--up", "--dest", "/incoming", "--ttl", "10m"]);
    verify(&t, &["-u", "alice", "--up", "-p", "/incoming/new.txt"]).code(0);
    fallback()
        .args(["token", "generate", "--config"])
        .arg(fixture("multi-user.conf"))
        .args(["-u", "alice", "--up"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--dest"));
}

#[test]
fn file_list_like_astokengen() {
    let dir = tempfile::tempdir().unwrap();
    let list = dir.path().join("list.txt");
    std::fs::write(&list, "# sources\n/a/one.txt\n\n/b\n").unwrap();
    let out = fallback()
        .args(["token", "generate", "--json", "--config"])
        .arg(fixture("multi-user.conf"))
        .args(["-u", "alice", "--down", "--file-list"])
        .arg(&list)
        .assert()
        .code(0)
        .get_output()
        .stdout
        .clone();
    let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(
        v["claims"]["paths"],
        serde_json::json!(["/a/one.txt", "/b"])
    );
    // Default lifetime: the user's effective life_seconds (3600 from <default>).
    let life =
        v["claims"]["expires_at"].as_u64().unwrap() - v["claims"]["issued_at"].as_u64().unwrap();
    assert_eq!(life, 3600);
}

#[test]
fn sealed_tokens_need_the_config_to_inspect() {
    // A file that sets encryption_type makes sealed tokens.
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("aspera.conf");
    std::fs::write(
        &conf,
        "<CONF><http_server><enable_https>true</enable_https></http_server><default>\
         <authorization><token><encryption_key>sealed-secret-0123456789</encryption_key>\
         <encryption_type>aes-256</encryption_type></token></authorization>\
         <file_system><access><paths><path><absolute>/srv</absolute></path></paths></access></file_system>\
         </default></CONF>",
    )
    .unwrap();
    let out = fallback()
        .args([
            "token",
            "generate",
            "-u",
            "zoe",
            "--down",
            "-p",
            "/secret-plans",
            "--config",
        ])
        .arg(&conf)
        .assert()
        .code(0)
        .get_output()
        .stdout
        .clone();
    let t = String::from_utf8(out).unwrap().trim().to_owned();
    fallback()
        .args(["token", "inspect", &t])
        .assert()
        .code(0)
        .stdout(predicate::str::contains("sealed (aes-256-gcm)"))
        .stdout(predicate::str::contains("secret-plans").not());
    fallback()
        .args(["token", "inspect", &t, "--config"])
        .arg(&conf)
        .assert()
        .code(0)
        .stdout(predicate::str::contains("/secret-plans"))
        .stdout(predicate::str::contains("verified with the configured key"));
}

#[test]
fn garbage_is_refused_with_exit_1() {
    Command::cargo_bin("fallback")
        .unwrap()
        .args(["token", "inspect", "not-a-token"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("no fbt1_ prefix"));
    verify("fbt1_AAAA", &["-u", "alice", "--down", "-p", "/x"])
        .code(1)
        .stdout(predicate::str::contains("invalid: "));
}

#[test]
fn no_key_configured_is_a_failure_that_says_what_to_set() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("aspera.conf");
    std::fs::write(
        &conf,
        "<CONF><http_server><enable_http>true</enable_http></http_server><default>\
         <file_system><access><paths><path><absolute>/srv</absolute></path></paths></access></file_system>\
         </default></CONF>",
    )
    .unwrap();
    fallback()
        .args([
            "token", "generate", "-u", "a", "--down", "-p", "/x", "--config",
        ])
        .arg(&conf)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("encryption_key"));
}

#[test]
fn ttl_accepts_human_durations() {
    for ttl in ["90", "30m", "1h", "2h30m", "7d"] {
        generate(&["-u", "alice", "--up", "--dest", "/in", "--ttl", ttl]);
    }
    fallback()
        .args([
            "token", "generate", "-u", "alice", "--up", "--dest", "/in", "--ttl", "soon",
            "--config",
        ])
        .arg(fixture("multi-user.conf"))
        .assert()
        .code(2)
        .stderr(predicate::str::contains("not a duration"));
}

/// A user with no section of its own gets `<default>`: said, with the docroot the
/// token then grants; `--strict` refuses.
#[test]
fn a_user_without_a_section_is_named_and_strict_refuses() {
    fallback()
        .args(["token", "generate", "--config"])
        .arg(fixture("multi-user.conf"))
        .args(["--user", "mallory", "--down", "-p", "/"])
        .assert()
        .code(0)
        .stdout(predicate::str::starts_with("fbt1_"))
        .stderr(
            predicate::str::contains("user \"mallory\" has no section of its own")
                .and(predicate::str::contains("the <default> section applies"))
                .and(predicate::str::contains("docroot ")),
        );
    fallback()
        .args(["token", "generate", "--strict", "--config"])
        .arg(fixture("multi-user.conf"))
        .args(["--user", "mallory", "--down", "-p", "/"])
        .assert()
        .failure()
        .stdout(predicate::str::is_empty())
        .stderr(predicate::str::contains("Refused (--strict)"));
    // A user with a section: no word about it, strict or not.
    fallback()
        .args(["token", "generate", "--strict", "--config"])
        .arg(fixture("multi-user.conf"))
        .args(["--user", "alice", "--down", "-p", "/"])
        .assert()
        .code(0)
        .stderr(predicate::str::contains("no section").not());
}

/// `token rotate` prints the `<token>` section of a rotation: pasted into the file, a
/// token of the old key still verifies (until its end), one of the new key verifies,
/// and after the old key is removed (revoked) its tokens are refused as "key-retired"
/// would be after its end: here, as an unknown key.
#[test]
fn rotate_prints_the_section_that_rotates_and_it_works() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("aspera.conf");
    let file = |token: &str| {
        format!(
            "<CONF version=\"2\"><http_server><enable_http>true</enable_http></http_server>\
             <default><authorization><token>{token}</token></authorization>\
             <file_system><access><paths><path><absolute>{}</absolute></path></paths>\
             </access></file_system></default></CONF>",
            dir.path().display()
        )
    };
    std::fs::write(
        &conf,
        file("<encryption_key>the-current-secret-of-32-characters</encryption_key>"),
    )
    .unwrap();
    let token_of = || {
        let out = fallback()
            .args([
                "token", "generate", "-u", "alice", "--down", "-p", "/", "--config",
            ])
            .arg(&conf)
            .assert()
            .code(0)
            .get_output()
            .stdout
            .clone();
        String::from_utf8(out).unwrap().trim().to_owned()
    };
    let check = |token: &str| {
        fallback()
            .args([
                "token", "verify", "-", "-u", "alice", "--down", "-p", "/x", "--config",
            ])
            .arg(&conf)
            .write_stdin(token.to_owned())
            .assert()
    };
    let old = token_of();
    let out = fallback()
        .args(["token", "rotate", "--keep", "1h", "--config"])
        .arg(&conf)
        .assert()
        .code(0)
        .stderr(predicate::str::contains("reload"))
        .get_output()
        .stdout
        .clone();
    let printed = String::from_utf8(out).unwrap();
    let section = &printed
        [printed.find("<token>").unwrap() + "<token>".len()..printed.find("</token>").unwrap()];
    assert!(section.contains("<retired_keys>"), "{printed}");
    assert!(section.contains("the-current-secret-of-32-characters"));
    std::fs::write(&conf, file(section)).unwrap();
    fallback()
        .args(["config", "check"])
        .arg(&conf)
        .assert()
        .code(0);
    let new = token_of();
    assert_ne!(old, new);
    check(&old).code(0);
    check(&new).code(0);
    // Revoked: the retired key removed.
    let start = section.find("<retired_keys>").unwrap();
    let end = section.find("</retired_keys>").unwrap() + "</retired_keys>".len();
    let only_new = format!("{}{}", &section[..start], &section[end..]);
    std::fs::write(&conf, file(&only_new)).unwrap();
    check(&old).code(1);
    check(&new).code(0);
}
