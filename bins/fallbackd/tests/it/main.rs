//! fallbackd end to end: the real daemon on 127.0.0.1 ephemeral ports, real curl, a raw
//! socket client for interruptions, and an independent tus client (tuspy).

// Test helpers panic on purpose: a panic is how a failed expectation is reported.
#![allow(clippy::unwrap_used, clippy::print_stderr)]

mod adversarial;
mod concurrency;
mod conf_applied;
mod disk_full;
mod embedded;
mod gateway;
mod hardening;
mod js_clients;
mod metrics;
mod ops;
mod real_http;
mod refusals;
mod s3_clients;
mod slow_clients;
mod transfers;
mod tus_clients;

pub(crate) use adversarial::adversarial_send;
pub(crate) use fallback_testkit::*;
