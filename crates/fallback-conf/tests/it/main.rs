//! Integration tests of fallback-conf, through its public API only.

// Test helpers panic on purpose: a panic is how a failed expectation is reported.
#![allow(clippy::unwrap_used)]

mod applied;
mod fixtures;
mod precedence;
mod props;
mod syntax;

use std::path::PathBuf;

use fallback_conf::{Code, Config, Error};

pub(crate) fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures/conf")
        .join(name)
}

/// Every finding of `text` as `(code, line)`, in file order; a fatal error is the
/// only finding.
pub(crate) fn findings(result: Result<Config, Error>) -> Vec<(Code, u32)> {
    match result {
        Ok(conf) => conf
            .diagnostics()
            .iter()
            .map(|d| (d.code, d.pos.map_or(0, |p| p.line)))
            .collect(),
        Err(Error::Syntax(d)) => vec![(d.code, d.pos.map_or(0, |p| p.line))],
        Err(e) => panic!("unexpected error: {e}"),
    }
}

/// Checks that `text` gives exactly `expected` findings.
#[track_caller]
pub(crate) fn check(text: &str, expected: &[(Code, u32)]) {
    assert_eq!(findings(Config::parse(text)), expected, "for:\n{text}");
}

/// A minimal valid file around `inner` (placed inside `<CONF>`).
pub(crate) fn conf(inner: &str) -> String {
    format!(
        "<CONF>\n<http_server><enable_http>true</enable_http></http_server>\n\
         <default><file_system><access><paths><path><absolute>/srv</absolute></path></paths></access></file_system></default>\n\
         {inner}\n</CONF>\n"
    )
}
