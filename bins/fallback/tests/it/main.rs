//! The `fallback` binary, run as a user would run it.

// Test helpers panic on purpose: a panic is how a failed expectation is reported.
#![allow(clippy::unwrap_used)]

mod config;
mod token;
mod transfer;
mod url;

use std::path::PathBuf;

pub(crate) fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures/conf")
        .join(name)
}

pub(crate) fn fallback() -> assert_cmd::Command {
    assert_cmd::Command::cargo_bin("fallback").unwrap()
}
