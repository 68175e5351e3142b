//! Operating the daemon: --check-config, --version.

use std::process::Command;

use crate::fallbackd_bin;

fn fixture(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures/conf")
        .join(name)
}

fn check(conf: &std::path::Path) -> (i32, String) {
    let out = Command::new(fallbackd_bin())
        .arg("--check-config")
        .arg("--config")
        .arg(conf)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

#[test]
fn check_config_validates_like_nginx_t() {
    let (code, text) = check(&fixture("multi-user.conf"));
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("configuration is valid"), "{text}");

    let (code, text) = check(&fixture("broken/bad-port.conf"));
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("bad-port.conf:4:16"), "{text}");
    assert!(text.contains("configuration test failed"), "{text}");

    // A certificate that is not there: the daemon would not start, so the check fails.
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("tls.conf");
    std::fs::write(
        &conf,
        format!(
            "<CONF version=\"2\"><http_server><enable_https>true</enable_https>\
             <cert_file>{0}/missing.pem</cert_file><key_file>{0}/missing.key</key_file>\
             </http_server><default><file_system><access><paths><path><absolute>{0}</absolute>\
             </path></paths></access></file_system></default></CONF>",
            dir.path().display()
        ),
    )
    .unwrap();
    let (code, text) = check(&conf);
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("TLS"), "{text}");
}

#[test]
fn version_is_printed() {
    let out = Command::new(fallbackd_bin())
        .arg("--version")
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("fallbackd {}", env!("CARGO_PKG_VERSION"))
    );
}
