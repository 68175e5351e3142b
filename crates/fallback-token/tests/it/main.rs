//! Integration tests of fallback-token, through its public API only.

// Test helpers panic on purpose: a panic is how a failed expectation is reported.
#![allow(clippy::unwrap_used)]

mod props;
mod reasons;
mod vectors;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fallback_token::{Form, Key, KeyRing, VerifyOptions};

pub(crate) const SECRET: &str = "change-me-secret-key-for-http fallback";

pub(crate) fn key(form: Form) -> Key {
    Key::derive(SECRET, form).unwrap()
}

pub(crate) fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

/// Verification options at a fixed time with the default skew.
pub(crate) fn now(secs: u64) -> VerifyOptions {
    VerifyOptions {
        now: Some(at(secs)),
        ..VerifyOptions::default()
    }
}

pub(crate) fn ring(form: Form) -> KeyRing {
    KeyRing::from(key(form))
}

pub(crate) const FORMS: [Form; 4] = [
    Form::Signed,
    Form::SealedAes128,
    Form::SealedAes192,
    Form::SealedAes256,
];
