//! The HTTP fallback client: what a transfer client does when FASP is blocked.
//!
//! [`Session::open`] checks a FASP URL (token, `fallback=yes`, `httpport`), probes the
//! FASP SSH port, and, since this client does not speak FASP itself, falls back to HTTP(S)
//! when the URL allows it (or when forced, like `ascp -y F`). Each decision is logged
//! in words and reported as an [`Event`]. [`Session::upload`] and
//! [`Session::download`] move files and whole trees through the server's resumable
//! protocol: several files at once, resuming after interruptions (also across client
//! restarts, from local state removed on success), retrying network errors and 5xx
//! with exponential backoff and jitter (never 4xx), and checking SHA-256 end to end.
//! A partial download never sits at its final name.
//!
//! [`doctor`] runs the article's troubleshooting list against a URL.
#![warn(missing_docs)]

mod commit;
mod decide;
mod digest;
mod doctor;
mod download;
mod http;
mod ranges;
mod state;
mod trust;
mod upload;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

pub use decide::Session;
pub use doctor::{Check, Verdict, doctor};
pub use trust::{Pin, parse_pin, pin_of, show_pin};

/// Why a transfer failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The FASP URL cannot be used for HTTP fallback; the message says which parameter
    /// to add or fix.
    #[error("{0}")]
    Url(String),
    /// The server answered with an error status.
    #[error("server answered {status}: {message}")]
    Http {
        /// HTTP status.
        status: u16,
        /// The server's short message.
        message: String,
    },
    /// Connecting or talking to the server failed.
    #[error("network: {0}")]
    Network(String),
    /// A local file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The data that arrived does not have the digest announced for it.
    #[error("{0}: SHA-256 mismatch; the copy was discarded")]
    DigestMismatch(String),
    /// The server said something this client does not understand.
    #[error("protocol: {0}")]
    Protocol(String),
    /// TLS setup (certificate files).
    #[error("TLS: {0}")]
    Tls(String),
}

impl Error {
    /// Whether trying again later may succeed: network errors, 5xx, the tus signals
    /// that a previous request is still finishing (408, 423), and bytes that arrived
    /// changed (a digest mismatch: the copy was discarded, a new one is fetched). Other
    /// 4xx never.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Network(_) | Error::DigestMismatch(_) => true,
            Error::Http { status, .. } => *status >= 500 || matches!(status, 408 | 423),
            _ => false,
        }
    }

    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io { path, source }
    }
}

/// A `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What happens during a transfer, for progress bars and JSON event lines.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Event {
    /// A decision, in words ("SSH port 33001 closed: FASP is blocked").
    Decision {
        /// The words.
        message: String,
    },
    /// The list of files is known.
    Plan {
        /// Number of files.
        files: usize,
        /// Total bytes.
        bytes: u64,
    },
    /// A file starts (or resumes).
    FileStart {
        /// Relative path.
        path: String,
        /// Size in bytes.
        size: u64,
        /// Bytes already there from an earlier attempt.
        resumed_from: u64,
    },
    /// Bytes moved.
    Progress {
        /// Relative path.
        path: String,
        /// Bytes of this file done so far.
        done: u64,
        /// Size of this file.
        size: u64,
    },
    /// Waiting before trying again.
    Retry {
        /// Relative path.
        path: String,
        /// Attempt number that failed (1-based).
        attempt: u32,
        /// Delay before the next one.
        delay_ms: u64,
        /// What failed.
        error: String,
    },
    /// A file arrived and its digest matched.
    FileDone {
        /// Relative path.
        path: String,
        /// Size.
        size: u64,
        /// Bytes actually sent or received by this run (less than `size` on resume).
        transferred: u64,
        /// SHA-256 hex.
        sha256: String,
    },
    /// A file failed for good.
    FileFailed {
        /// Relative path.
        path: String,
        /// Why.
        error: String,
    },
}

/// Receives [`Event`]s.
pub type Events = Arc<dyn Fn(&Event) + Send + Sync>;

/// Retry policy: exponential backoff with jitter (each delay random in its upper half).
#[derive(Debug, Clone, Copy)]
pub struct Retry {
    /// Attempts per file, the first included.
    pub attempts: u32,
    /// Delay after the first failure (doubled each time, then jittered).
    pub base: Duration,
    /// Longest delay.
    pub max: Duration,
}

impl Default for Retry {
    fn default() -> Self {
        Retry {
            attempts: 10,
            base: Duration::from_millis(500),
            max: Duration::from_secs(30),
        }
    }
}

impl Retry {
    /// The delay after failed attempt `n` (1-based): random in [d/2, d] with
    /// d = min(max, base * 2^(n-1)).
    pub fn delay(&self, n: u32) -> Duration {
        let exp = self
            .base
            .saturating_mul(1u32 << n.saturating_sub(1).min(20))
            .min(self.max);
        let mut b = [0u8; 8];
        let _ = getrandom::fill(&mut b);
        let frac = u32::try_from(u64::from_le_bytes(b) % 1000).unwrap_or(0);
        let half = exp / 2;
        half + exp.saturating_sub(half) * frac / 1000
    }
}

/// How the client behaves.
#[derive(Debug, Clone)]
pub struct Options {
    /// Use HTTP fallback even if the URL does not say `fallback=yes` (`ascp -y F`).
    pub force_http: bool,
    /// Time allowed to connect to the FASP SSH port when probing it.
    pub ssh_probe_timeout: Duration,
    /// Extra trusted CA certificates (PEM), on top of the system roots.
    pub cacert: Option<PathBuf>,
    /// Accept any server certificate. Dangerous: anyone on the path can read and alter
    /// the transfer.
    pub insecure: bool,
    /// Trust only servers whose public key has one of these SHA-256s (see
    /// [`parse_pin`]); the system roots and `cacert` are then not consulted.
    pub pins: Vec<Pin>,
    /// Files in flight at once.
    pub parallel: usize,
    /// Connections per large file (byte ranges down); `None`: by size, 4 from
    /// [`STREAMS_FROM`] bytes, else 1.
    pub streams: Option<usize>,
    /// Retry policy.
    pub retry: Retry,
    /// Where upload resume state lives (default `$XDG_STATE_HOME/fallback`, else
    /// `~/.local/state/fallback`).
    pub state_dir: Option<PathBuf>,
    /// Time allowed to connect to the fallback port.
    pub connect_timeout: Duration,
    /// Most bytes per second per file (a FASP URL's `targetrate`, or `--limit-rate`);
    /// `None`: as fast as TCP goes.
    pub rate_limit: Option<u64>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            force_http: false,
            ssh_probe_timeout: Duration::from_secs(3),
            cacert: None,
            insecure: false,
            pins: Vec::new(),
            parallel: 4,
            streams: None,
            retry: Retry::default(),
            state_dir: None,
            connect_timeout: Duration::from_secs(10),
            rate_limit: None,
        }
    }
}

/// What a transfer did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Summary {
    /// Files completed.
    pub files: usize,
    /// Bytes in those files.
    pub bytes: u64,
    /// Bytes actually moved by this run.
    pub transferred: u64,
    /// Files that failed, with why.
    pub failed: Vec<(String, String)>,
}

/// Files this large are downloaded over several connections by default.
pub const STREAMS_FROM: u64 = 256 << 20;
/// Connections per file from [`STREAMS_FROM`] bytes, by default.
pub const DEFAULT_STREAMS: usize = 4;

/// Keeps a transfer at or under a rate: call `pace(bytes_so_far)` after each chunk.
#[derive(Debug)]
pub(crate) struct Pacer {
    rate: Option<u64>,
    start: std::time::Instant,
}

impl Pacer {
    pub(crate) fn new(rate: Option<u64>) -> Self {
        Pacer {
            rate: rate.filter(|r| *r > 0),
            start: std::time::Instant::now(),
        }
    }

    pub(crate) async fn pace(&self, done: u64) {
        let Some(rate) = self.rate else { return };
        let due = Duration::from_micros(done.saturating_mul(1_000_000) / rate);
        let elapsed = self.start.elapsed();
        if due > elapsed {
            tokio::time::sleep(due.saturating_sub(elapsed)).await;
        }
    }
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    hex::encode(bytes)
}
