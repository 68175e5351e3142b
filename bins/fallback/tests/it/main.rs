//! The `fallback` binary, run as a user would run it.

// Test helpers panic on purpose: a panic is how a failed expectation is reported.
#![allow(clippy::unwrap_used)]

mod config;
