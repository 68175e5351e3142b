//! Transfer tokens for HTTP fallback: issue them in a web app, verify them in the server.
//!
//! A token says who (`user`), which way (upload or download), where (the destination
//! directory of an upload, or the files and directories a download may read), and when
//! (issued at, expires at). It is text that starts with `fbt1_`, URL-safe without
//! padding. The claims are either *signed* (HMAC-SHA256, readable by the bearer) or
//! *sealed* (AES-GCM, unreadable without the key), as the aspera.conf
//! `authorization/token/encryption_type` asks. Keys are derived with HKDF from the
//! aspera.conf `encryption_key`, and each has an id so several can be active during a
//! rotation. The format is specified in `docs/token-format.md`.
//!
//! Issue an upload token for user `alice` under `/incoming`, valid one hour, with the key
//! of her effective settings, and verify it as the server would:
//!
//! ```
//! use std::time::Duration;
//! use fallback_conf::Config;
//! use fallback_token::{Access, Key, KeyRing, Token, VerifyError};
//!
//! let conf = Config::parse(r#"<CONF><default><authorization><token>
//!     <encryption_key>change-me-to-twenty-random-chars</encryption_key>
//!   </token></authorization></default></CONF>"#)?;
//! let key = Key::from_settings(&conf.user("alice", &[]))?;
//!
//! let token = Token::upload("alice", "/incoming")
//!     .valid_for(Duration::from_secs(3600))
//!     .issue(&key)?;
//! assert!(token.starts_with("fbt1_"));
//!
//! let ring = KeyRing::from(key);
//! let claims = ring.verify(&token, &Access::upload("alice", "/incoming/report.pdf"))?;
//! assert_eq!(claims.user, "alice");
//! assert_eq!(
//!     ring.verify(&token, &Access::upload("alice", "/incoming2/x")).unwrap_err(),
//!     VerifyError::PathNotCovered,
//! );
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![warn(missing_docs)]

mod key;
mod path;
mod token;

use std::time::Duration;

pub use key::{Form, Key, KeyRing, MAX_KEY_ID_BYTES, MIN_SECRET_CHARS};
pub use path::{MAX_PATH_BYTES, PathProblem, normalize};
pub use token::{
    Access, Claims, DEFAULT_LIFETIME, DEFAULT_MAX_LIFETIME, DEFAULT_SKEW, Direction, Envelope,
    MAX_PATHS, MAX_TOKEN_CHARS, MAX_USER_BYTES, PREFIX, Token, TokenBuilder, VerifyOptions,
    envelope, inspect_unverified,
};

/// Why a key could not be made or a token issued.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The secret is empty.
    #[error("the token secret is empty")]
    EmptySecret,
    /// No `<authorization><token><encryption_key>` applies to the user.
    #[error(
        "no token key applies to user {0:?}: set <authorization><token><encryption_key> \
         in <default> or in the user's or a group's section"
    )]
    NoKey(String),
    /// HKDF or the cipher refused the derived key (cannot happen with valid lengths).
    #[error("key derivation failed")]
    KeyDerivation,
    /// A key id outside 1-32 characters of `A-Z a-z 0-9 - _`.
    #[error("invalid key id {0:?}: use 1 to 32 characters from A-Z a-z 0-9 - _")]
    InvalidKeyId(String),
    /// Two keys with one id in a ring.
    #[error("key id {0:?} is already in the key ring")]
    DuplicateKeyId(String),
    /// Empty, too long, or with control characters.
    #[error("invalid user name: it must be 1 to 1024 bytes without control characters")]
    InvalidUser,
    /// A path that cannot go into a token.
    #[error("path {path:?} {problem}")]
    InvalidPath {
        /// The path as given.
        path: String,
        /// What is wrong with it.
        problem: PathProblem,
    },
    /// No path given.
    #[error("a token needs at least one path")]
    NoPaths,
    /// An upload names one destination directory.
    #[error("an upload token names exactly one destination directory")]
    UploadNeedsOneDestination,
    /// More than [`MAX_PATHS`].
    #[error("{0} paths; a token holds at most {MAX_PATHS} (give a directory instead)")]
    TooManyPaths(usize),
    /// Zero, or longer than the issuer's maximum.
    #[error("lifetime of {}s is not allowed: it must be 1 s to {}s", requested.as_secs(), max.as_secs())]
    InvalidLifetime {
        /// Requested lifetime.
        requested: Duration,
        /// Longest allowed.
        max: Duration,
    },
    /// The operating system's random source failed.
    #[error("no randomness available: {0}")]
    Random(String),
    /// The AEAD refused to seal (cannot happen with valid lengths).
    #[error("sealing the token failed")]
    Seal,
}

/// Why a token was refused. The server answers the client with a short, safe message
/// per status and logs this precise reason; it never reveals it to the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// Not a token of this format (bad prefix, encoding, lengths, trailing bytes).
    #[error("malformed token: {0}")]
    Malformed(&'static str),
    /// A token of another format version.
    #[error("unsupported token version")]
    UnsupportedVersion,
    /// No key in the ring has the token's key id.
    #[error("unknown key id")]
    UnknownKey,
    /// The token's key was rotated out and its tokens are accepted no longer
    /// (`retired_keys/key/accept_until` has passed).
    #[error("the token's key is retired")]
    KeyRetired,
    /// The key exists but is configured for another form (signed vs sealed, cipher).
    #[error("token is {token} but its key makes {key} tokens")]
    FormMismatch {
        /// The form the key makes.
        key: Form,
        /// The form the token claims.
        token: Form,
    },
    /// The signature or seal does not match: altered, or made with another secret.
    #[error("bad signature")]
    BadSignature,
    /// Sealed: the claims cannot be read without the key.
    #[error("the token is sealed; its claims need the key")]
    Sealed,
    /// Past its expiry (plus skew).
    #[error("token expired")]
    Expired,
    /// Issued in the future (beyond the skew).
    #[error("token not yet valid")]
    NotYetValid,
    /// Lifetime longer than the verifier accepts.
    #[error("token lifetime exceeds the maximum")]
    LifetimeTooLong,
    /// Upload token used for a download, or the reverse.
    #[error("token is for {token}, request is a {request}")]
    WrongDirection {
        /// What the token allows.
        token: Direction,
        /// What was asked.
        request: Direction,
    },
    /// The token belongs to another user.
    #[error("token is for another user")]
    WrongUser,
    /// The path is outside the token's paths.
    #[error("path not covered by the token")]
    PathNotCovered,
}

impl VerifyError {
    /// A stable short name for logs and metrics (`bad-signature`).
    pub fn kind(&self) -> &'static str {
        match self {
            VerifyError::Malformed(_) => "malformed",
            VerifyError::UnsupportedVersion => "unsupported-version",
            VerifyError::UnknownKey => "unknown-key",
            VerifyError::KeyRetired => "key-retired",
            VerifyError::FormMismatch { .. } => "form-mismatch",
            VerifyError::BadSignature => "bad-signature",
            VerifyError::Sealed => "sealed",
            VerifyError::Expired => "expired",
            VerifyError::NotYetValid => "not-yet-valid",
            VerifyError::LifetimeTooLong => "lifetime-too-long",
            VerifyError::WrongDirection { .. } => "wrong-direction",
            VerifyError::WrongUser => "wrong-user",
            VerifyError::PathNotCovered => "path-not-covered",
        }
    }

    /// Whether the request was authenticated but not allowed (HTTP 403), as opposed to
    /// not authenticated at all (HTTP 401).
    pub fn is_forbidden(&self) -> bool {
        matches!(
            self,
            VerifyError::WrongDirection { .. }
                | VerifyError::WrongUser
                | VerifyError::PathNotCovered
        )
    }
}
