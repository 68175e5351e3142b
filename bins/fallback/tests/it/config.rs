//! `fallback config check|show`.

use predicates::prelude::*;

use crate::{fallback, fixture};

#[test]
fn check_passes_a_good_file_with_exit_0() {
    // The file made true here: its docroot exists, its certificate loads.
    let dir = tempfile::tempdir().unwrap();
    let here = fallback_testkit::on_this_host(&fixture("direct-mode.conf"), dir.path());
    fallback()
        .args(["config", "check"])
        .arg(&here)
        .assert()
        .code(0)
        .stdout(predicate::str::contains("0 errors, 0 warnings"));
}

#[test]
fn check_looks_at_this_host_unless_told_file_only() {
    // As written, the fixture names /srv/fallback/data and a certificate under
    // /etc/fallback: neither exists here, and clients would be refused.
    let file = fixture("direct-mode.conf");
    fallback()
        .args(["config", "check"])
        .arg(&file)
        .assert()
        .code(1)
        .stdout(predicate::str::contains("error[docroot-not-found]"))
        .stdout(predicate::str::contains("error[tls-unusable]"));
    fallback()
        .args(["config", "check", "--file-only"])
        .arg(&file)
        .assert()
        .code(0)
        .stdout(predicate::str::contains("0 errors, 0 warnings"));
}

#[test]
fn check_lists_findings_like_a_linter_and_exits_1() {
    fallback()
        .args(["config", "check", "--file-only"])
        .arg(fixture("broken/bad-port.conf"))
        .assert()
        .code(1)
        .stdout(predicate::str::contains(
            "bad-port.conf:4:16: error[invalid-port]",
        ))
        .stdout(predicate::str::contains("(at /CONF/http_server/http_port)"))
        .stdout(predicate::str::contains("1 error, 0 warnings"));
}

#[test]
fn check_reports_syntax_errors_as_findings() {
    fallback()
        .args(["config", "check"])
        .arg(fixture("broken/doctype-entity.conf"))
        .assert()
        .code(1)
        .stdout(predicate::str::contains("2:1: error[doctype-refused]"));
}

#[test]
fn warnings_pass_unless_denied() {
    let file = fixture("broken/web-mismatch.conf");
    fallback()
        .args(["config", "check", "--file-only"])
        .arg(&file)
        .assert()
        .code(0)
        .stdout(predicate::str::contains("warning[web-port-mismatch]"));
    fallback()
        .args(["config", "check", "--file-only", "--deny-warnings"])
        .arg(&file)
        .assert()
        .code(1);
}

#[test]
fn check_json_is_machine_readable() {
    let out = fallback()
        .args(["config", "check", "--json", "--file-only"])
        .arg(fixture("broken/wrong-types.conf"))
        .assert()
        .code(1)
        .get_output()
        .stdout
        .clone();
    let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(v["errors"], 5);
    assert_eq!(v["diagnostics"][0]["code"], "invalid-bool");
    assert_eq!(v["diagnostics"][0]["pos"]["line"], 3);
    assert_eq!(v["diagnostics"][0]["severity"], "error");
}

#[test]
fn unreadable_file_exits_2_and_names_it() {
    fallback()
        .args(["config", "check", "/nonexistent/aspera.conf"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("/nonexistent/aspera.conf"));
}

#[test]
fn show_explains_where_each_value_comes_from() {
    fallback()
        .args(["config", "show"])
        .arg(fixture("multi-user.conf"))
        .args(["--user", "bob", "--group", "staff"])
        .assert()
        .code(0)
        .stdout(predicate::str::contains(
            "settings of user bob (groups: staff)",
        ))
        .stdout(predicate::str::is_match(r"token life_seconds\s+600\s+user bob, line 38").unwrap())
        .stdout(
            predicate::str::is_match(
                r"docroot\s+/srv/staff\s+group staff \(precedence 1\), line 51",
            )
            .unwrap(),
        )
        .stdout(predicate::str::contains("HTTPS fallback only"))
        // The secret itself never appears.
        .stdout(predicate::str::contains("default-secret").not());
}

#[test]
fn show_json_never_reveals_the_secret() {
    let out = fallback()
        .args(["config", "show", "--json", "-u", "alice"])
        .arg(fixture("multi-user.conf"))
        .assert()
        .code(0)
        .get_output()
        .stdout
        .clone();
    let text = String::from_utf8(out).unwrap();
    assert!(!text.contains("default-secret"), "{text}");
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["user"]["docroot"]["value"], "/srv/alice");
    assert_eq!(v["user"]["docroot"]["origin"]["from"], "user");
    assert_eq!(v["mode"], "direct");
}

#[test]
fn show_without_a_file_lists_the_builtin_defaults() {
    fallback()
        .args(["config", "show"])
        .assert()
        .code(0)
        .stdout(predicate::str::is_match(r"http_port\s+8080\s+built-in default").unwrap())
        .stdout(predicate::str::contains("(none: transfers refused)"));
}

#[test]
fn help_teaches() {
    fallback()
        .args(["config", "check", "--help"])
        .assert()
        .code(0)
        .stdout(predicate::str::contains("Exit status"));
}

#[test]
fn show_makes_the_users_docroot_and_lists_what_applies() {
    fallback()
        .args(["config", "show"])
        .arg(fixture("applied/name-docroot.conf"))
        .args(["--user", "alice"])
        .assert()
        .code(0)
        .stdout(predicate::str::is_match(r"docroot\s+@DATA@/users/alice\s+<default>").unwrap())
        .stdout(predicate::str::contains("as written"))
        .stdout(predicate::str::contains("@DATA@/users/$(name)"))
        .stdout(predicate::str::is_match(r"overwrite\s+allow\s+built-in default").unwrap())
        .stdout(predicate::str::is_match(r"file mode\s+0644").unwrap())
        .stdout(predicate::str::is_match(r"upload rate cap\s+Unlimited").unwrap());
    fallback()
        .args(["config", "show"])
        .arg(fixture("applied/name-docroot.conf"))
        .args(["--user", "peter"])
        .assert()
        .code(0)
        .stdout(predicate::str::is_match(r"for peer 10\.1\.1\.1\s+@DATA@/branch/peter").unwrap());
    fallback()
        .args(["config", "show"])
        .arg(fixture("applied/rate-caps.conf"))
        .args(["--user", "slow"])
        .assert()
        .code(0)
        .stdout(predicate::str::is_match(r"download rate cap\s+8000 kbps\s+user slow").unwrap());
}
