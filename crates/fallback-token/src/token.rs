//! The token format (see docs/token-format.md): issue, decode, verify.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aes_gcm::aead::{Aead as _, Payload};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::Mac as _;
use serde::Serialize;

use crate::key::{Form, Key, KeyRing, Sealer};
use crate::path;
use crate::{Error, VerifyError};

/// Every token starts with this; the digit is the format version.
pub const PREFIX: &str = "fbt1_";
/// Format version carried in the first byte.
const VERSION: u8 = 1;
/// Longest token text accepted for decoding.
pub const MAX_TOKEN_CHARS: usize = 64 * 1024;
/// Most paths in one token.
pub const MAX_PATHS: usize = 1024;
/// Longest user name, in bytes.
pub const MAX_USER_BYTES: usize = 1024;
/// Default clock skew tolerance.
pub const DEFAULT_SKEW: Duration = Duration::from_mins(1);
/// Default longest lifetime a verifier accepts (and an issuer grants): 30 days.
pub const DEFAULT_MAX_LIFETIME: Duration = Duration::from_hours(30 * 24);
/// Default lifetime: aspera.conf `life_seconds`' built-in default.
pub const DEFAULT_LIFETIME: Duration = Duration::from_hours(24);

const MAC_LEN: usize = 32;
const SEAL_NONCE_LEN: usize = 12;
const SEAL_TAG_LEN: usize = 16;

/// What a token lets its bearer do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Write under the destination directory (aspera.conf `in`, astokengen `send`).
    Upload,
    /// Read the listed files and directories (aspera.conf `out`, astokengen `recv`).
    Download,
}

impl Direction {
    fn byte(self) -> u8 {
        match self {
            Direction::Upload => 1,
            Direction::Download => 2,
        }
    }
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Direction::Upload => "upload",
            Direction::Download => "download",
        })
    }
}

/// What a verified token says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Claims {
    /// The transfer user.
    pub user: String,
    /// Upload or download.
    pub direction: Direction,
    /// Normalised docroot-relative paths: the files and directories a download may
    /// read, or the one directory an upload may write under.
    pub paths: Vec<String>,
    /// Issued at, Unix seconds.
    pub issued_at: u64,
    /// Expires at, Unix seconds (not valid from this second on, skew aside).
    pub expires_at: u64,
    /// Id of the key that made the token.
    pub key_id: String,
    /// Random bytes that make each token unique.
    #[serde(serialize_with = "hex")]
    pub nonce: [u8; 16],
    /// Signed or sealed.
    pub form: Form,
}

fn hex<S: serde::Serializer>(bytes: &[u8; 16], s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&hex::encode(bytes))
}

/// A request to check a token against: who, which way, which path.
#[derive(Debug, Clone, Copy)]
pub struct Access<'a> {
    /// The user the request is for; `None` to accept the token's user.
    pub user: Option<&'a str>,
    /// The direction of the request.
    pub direction: Direction,
    /// The docroot-relative path the request touches.
    pub path: &'a str,
}

impl<'a> Access<'a> {
    /// An upload of `path` by `user`.
    pub fn upload(user: &'a str, path: &'a str) -> Self {
        Access {
            user: Some(user),
            direction: Direction::Upload,
            path,
        }
    }

    /// A download of `path` by `user`.
    pub fn download(user: &'a str, path: &'a str) -> Self {
        Access {
            user: Some(user),
            direction: Direction::Download,
            path,
        }
    }
}

impl Claims {
    /// Whether the token's paths cover `path` (normalised first; a path with `..` or
    /// control characters is never covered).
    pub fn covers(&self, path: &str) -> bool {
        match path::normalize(path) {
            Ok(p) => self.paths.iter().any(|scope| path::covers(scope, &p)),
            Err(_) => false,
        }
    }

    /// Checks direction, then user, then path.
    pub fn check(&self, access: &Access<'_>) -> Result<(), VerifyError> {
        if self.direction != access.direction {
            return Err(VerifyError::WrongDirection {
                token: self.direction,
                request: access.direction,
            });
        }
        if let Some(user) = access.user
            && user != self.user
        {
            return Err(VerifyError::WrongUser);
        }
        if !self.covers(access.path) {
            return Err(VerifyError::PathNotCovered);
        }
        Ok(())
    }

    /// Remaining validity at `now` (zero once expired).
    pub fn remaining(&self, now: SystemTime) -> Duration {
        Duration::from_secs(self.expires_at.saturating_sub(unix(now)))
    }
}

fn unix(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Builds a token; see the crate example.
#[derive(Debug, Clone)]
pub struct TokenBuilder {
    user: String,
    direction: Direction,
    paths: Vec<String>,
    lifetime: Duration,
    max_lifetime: Duration,
    issued_at: Option<SystemTime>,
    nonce: Option<[u8; 16]>,
    seal_nonce: Option<[u8; SEAL_NONCE_LEN]>,
}

/// Entry points for issuing tokens.
#[derive(Debug)]
pub struct Token;

impl Token {
    /// An upload token: `user` may write under directory `dest`.
    ///
    /// ```
    /// use fallback_token::{Form, Key, Token};
    /// let key = Key::derive("a-secret-of-at-least-twenty-chars", Form::Signed)?;
    /// let token = Token::upload("alice", "/incoming")
    ///     .valid_for(std::time::Duration::from_secs(900))
    ///     .issue(&key)?;
    /// assert!(token.starts_with("fbt1_"));
    /// # Ok::<(), fallback_token::Error>(())
    /// ```
    pub fn upload(user: &str, dest: &str) -> TokenBuilder {
        TokenBuilder::new(user, Direction::Upload, vec![dest.to_owned()])
    }

    /// A download token: `user` may read each of `paths` (files, or directories and
    /// everything under them).
    ///
    /// ```
    /// use fallback_token::{Access, Form, Key, KeyRing, Token};
    /// let key = Key::derive("a-secret-of-at-least-twenty-chars", Form::Signed)?;
    /// let token = Token::download("alice", &["/reports"]).issue(&key)?;
    /// let ring = KeyRing::from(key);
    /// assert!(ring.verify(&token, &Access::download("alice", "/reports/q3.pdf")).is_ok());
    /// assert!(ring.verify(&token, &Access::download("alice", "/reports2/x")).is_err());
    /// # Ok::<(), fallback_token::Error>(())
    /// ```
    pub fn download<S: AsRef<str>>(user: &str, paths: &[S]) -> TokenBuilder {
        TokenBuilder::new(
            user,
            Direction::Download,
            paths.iter().map(|p| p.as_ref().to_owned()).collect(),
        )
    }
}

impl TokenBuilder {
    fn new(user: &str, direction: Direction, paths: Vec<String>) -> Self {
        TokenBuilder {
            user: user.to_owned(),
            direction,
            paths,
            lifetime: DEFAULT_LIFETIME,
            max_lifetime: DEFAULT_MAX_LIFETIME,
            issued_at: None,
            nonce: None,
            seal_nonce: None,
        }
    }

    /// How long the token is valid (default: one day, aspera.conf's `life_seconds`
    /// default; use the user's effective `life_seconds`).
    #[must_use]
    pub fn valid_for(mut self, lifetime: Duration) -> Self {
        self.lifetime = lifetime;
        self
    }

    /// The longest lifetime this issuer grants (default 30 days).
    #[must_use]
    pub fn max_lifetime(mut self, max: Duration) -> Self {
        self.max_lifetime = max;
        self
    }

    /// Issue time (default: now). For tests and known-answer vectors.
    #[must_use]
    pub fn issued_at(mut self, at: SystemTime) -> Self {
        self.issued_at = Some(at);
        self
    }

    /// The token's random nonce (default: from the OS). For known-answer vectors only:
    /// a fixed nonce makes tokens predictable.
    #[must_use]
    pub fn nonce(mut self, nonce: [u8; 16]) -> Self {
        self.nonce = Some(nonce);
        self
    }

    /// The AES-GCM nonce of a sealed token (default: from the OS). For known-answer
    /// vectors only: reusing a nonce with one key breaks AES-GCM.
    #[must_use]
    pub fn seal_nonce(mut self, nonce: [u8; 12]) -> Self {
        self.seal_nonce = Some(nonce);
        self
    }

    /// The claims this builder would sign: user and paths checked and normalised.
    pub fn claims(&self, key: &Key) -> Result<Claims, Error> {
        if self.user.is_empty()
            || self.user.len() > MAX_USER_BYTES
            || self.user.chars().any(char::is_control)
        {
            return Err(Error::InvalidUser);
        }
        let mut paths = Vec::with_capacity(self.paths.len());
        for p in &self.paths {
            let n = path::normalize(p).map_err(|problem| Error::InvalidPath {
                path: p.clone(),
                problem,
            })?;
            paths.push(n);
        }
        paths.sort();
        paths.dedup();
        match (self.direction, paths.len()) {
            (_, 0) => return Err(Error::NoPaths),
            (Direction::Upload, n) if n > 1 => return Err(Error::UploadNeedsOneDestination),
            (_, n) if n > MAX_PATHS => return Err(Error::TooManyPaths(n)),
            _ => {}
        }
        let secs = self.lifetime.as_secs();
        if secs == 0 || self.lifetime > self.max_lifetime {
            return Err(Error::InvalidLifetime {
                requested: self.lifetime,
                max: self.max_lifetime,
            });
        }
        let issued_at = unix(self.issued_at.unwrap_or_else(SystemTime::now));
        let nonce = if let Some(n) = self.nonce {
            n
        } else {
            let mut n = [0u8; 16];
            getrandom::fill(&mut n).map_err(|e| Error::Random(e.to_string()))?;
            n
        };
        Ok(Claims {
            user: self.user.clone(),
            direction: self.direction,
            paths,
            issued_at,
            expires_at: issued_at.checked_add(secs).ok_or(Error::InvalidLifetime {
                requested: self.lifetime,
                max: self.max_lifetime,
            })?,
            key_id: key.id().to_owned(),
            nonce,
            form: key.form(),
        })
    }

    /// Issues the token text with `key`.
    pub fn issue(&self, key: &Key) -> Result<String, Error> {
        let claims = self.claims(key)?;
        encode(&claims, key, self.seal_nonce)
    }
}

fn put_str16(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&u16::try_from(s.len()).unwrap_or(u16::MAX).to_be_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn claims_bytes(c: &Claims) -> Vec<u8> {
    let mut out =
        Vec::with_capacity(64 + c.user.len() + c.paths.iter().map(|p| p.len() + 2).sum::<usize>());
    out.extend_from_slice(&c.issued_at.to_be_bytes());
    out.extend_from_slice(&c.expires_at.to_be_bytes());
    out.push(c.direction.byte());
    out.extend_from_slice(&c.nonce);
    put_str16(&mut out, &c.user);
    out.extend_from_slice(
        &u16::try_from(c.paths.len())
            .unwrap_or(u16::MAX)
            .to_be_bytes(),
    );
    for p in &c.paths {
        put_str16(&mut out, p);
    }
    out
}

fn header(key: &Key) -> Vec<u8> {
    let mut h = Vec::with_capacity(3 + key.id().len());
    h.push(VERSION);
    h.push(key.form().byte());
    h.push(u8::try_from(key.id().len()).unwrap_or(u8::MAX));
    h.extend_from_slice(key.id().as_bytes());
    h
}

/// Encodes already-checked claims with `key`.
fn encode(
    claims: &Claims,
    key: &Key,
    seal_nonce: Option<[u8; SEAL_NONCE_LEN]>,
) -> Result<String, Error> {
    let mut bytes = header(key);
    let body = claims_bytes(claims);
    match &key.sealer {
        None => {
            bytes.extend_from_slice(&body);
            let mut mac = key.mac.clone();
            mac.update(PREFIX.as_bytes());
            mac.update(&bytes);
            bytes.extend_from_slice(&mac.finalize().into_bytes());
        }
        Some(sealer) => {
            let nonce = if let Some(n) = seal_nonce {
                n
            } else {
                let mut n = [0u8; SEAL_NONCE_LEN];
                getrandom::fill(&mut n).map_err(|e| Error::Random(e.to_string()))?;
                n
            };
            let aad = [PREFIX.as_bytes(), &bytes].concat();
            let payload = Payload {
                msg: &body,
                aad: &aad,
            };
            let n = (&nonce).into();
            let ciphertext = match sealer {
                Sealer::Aes128(c) => c.encrypt(n, payload),
                Sealer::Aes192(c) => c.encrypt(n, payload),
                Sealer::Aes256(c) => c.encrypt(n, payload),
            }
            .map_err(|_| Error::Seal)?;
            bytes.extend_from_slice(&nonce);
            bytes.extend_from_slice(&ciphertext);
        }
    }
    let mut text = String::with_capacity(PREFIX.len() + bytes.len() * 4 / 3 + 4);
    text.push_str(PREFIX);
    URL_SAFE_NO_PAD.encode_string(&bytes, &mut text);
    Ok(text)
}

/// The parts of a token readable without any key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Envelope {
    /// Format version.
    pub version: u8,
    /// Signed or sealed.
    pub form: Form,
    /// The key id.
    pub key_id: String,
}

struct Raw {
    bytes: Vec<u8>,
    form: Form,
    /// End of the header (version, form, key id).
    header_end: usize,
}

impl Raw {
    fn key_id(&self) -> &str {
        // Checked to be ASCII when parsed.
        std::str::from_utf8(&self.bytes[3..self.header_end]).unwrap_or_default()
    }
}

fn parse_raw(token: &str) -> Result<Raw, VerifyError> {
    let token = token.trim();
    if token.len() > MAX_TOKEN_CHARS {
        return Err(VerifyError::Malformed("too long"));
    }
    let Some(b64) = token.strip_prefix(PREFIX) else {
        return Err(if token.starts_with("fbt") {
            VerifyError::UnsupportedVersion
        } else {
            VerifyError::Malformed("not a fallback token (no fbt1_ prefix)")
        });
    };
    // Strict: no padding, canonical trailing bits, URL-safe alphabet only.
    let bytes = URL_SAFE_NO_PAD
        .decode(b64)
        .map_err(|_| VerifyError::Malformed("not base64url"))?;
    if bytes.len() < 3 {
        return Err(VerifyError::Malformed("truncated"));
    }
    if bytes[0] != VERSION {
        return Err(VerifyError::UnsupportedVersion);
    }
    let form = Form::from_byte(bytes[1]).ok_or(VerifyError::Malformed("unknown form"))?;
    let kid_len = usize::from(bytes[2]);
    let header_end = 3 + kid_len;
    if kid_len == 0
        || kid_len > crate::key::MAX_KEY_ID_BYTES
        || bytes.len() < header_end
        || !bytes[3..header_end]
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'-' || *b == b'_')
    {
        return Err(VerifyError::Malformed("bad key id"));
    }
    Ok(Raw {
        bytes,
        form,
        header_end,
    })
}

/// Reads what a token says about itself without checking it: version, form, key id.
pub fn envelope(token: &str) -> Result<Envelope, VerifyError> {
    let raw = parse_raw(token)?;
    Ok(Envelope {
        version: VERSION,
        form: raw.form,
        key_id: raw.key_id().to_owned(),
    })
}

/// Decodes the claims of a *signed* token without checking its signature, for
/// inspection only (`fallback token inspect`). Never authorize anything with this.
pub fn inspect_unverified(token: &str) -> Result<Claims, VerifyError> {
    let raw = parse_raw(token)?;
    if raw.form.is_sealed() {
        return Err(VerifyError::Sealed);
    }
    let end = raw
        .bytes
        .len()
        .checked_sub(MAC_LEN)
        .filter(|&e| e >= raw.header_end)
        .ok_or(VerifyError::Malformed("truncated"))?;
    parse_claims(&raw.bytes[raw.header_end..end], &raw)
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], VerifyError> {
        if self.0.len() < n {
            return Err(VerifyError::Malformed("truncated claims"));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn u16(&mut self) -> Result<usize, VerifyError> {
        let b = self.take(2)?;
        Ok(usize::from(u16::from_be_bytes([b[0], b[1]])))
    }

    fn u64(&mut self) -> Result<u64, VerifyError> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_be_bytes(a))
    }

    fn str16(&mut self, max: usize) -> Result<&'a str, VerifyError> {
        let n = self.u16()?;
        if n == 0 || n > max {
            return Err(VerifyError::Malformed("bad string length"));
        }
        std::str::from_utf8(self.take(n)?).map_err(|_| VerifyError::Malformed("not UTF-8"))
    }
}

fn parse_claims(body: &[u8], raw: &Raw) -> Result<Claims, VerifyError> {
    let mut r = Reader(body);
    let issued_at = r.u64()?;
    let expires_at = r.u64()?;
    let direction = match r.take(1)?[0] {
        1 => Direction::Upload,
        2 => Direction::Download,
        _ => return Err(VerifyError::Malformed("unknown direction")),
    };
    let mut nonce = [0u8; 16];
    nonce.copy_from_slice(r.take(16)?);
    let user = r.str16(MAX_USER_BYTES)?;
    if user.chars().any(char::is_control) {
        return Err(VerifyError::Malformed("control character in user"));
    }
    let count = r.u16()?;
    if count == 0 || count > MAX_PATHS || (direction == Direction::Upload && count != 1) {
        return Err(VerifyError::Malformed("bad path count"));
    }
    let mut paths = Vec::with_capacity(count);
    for _ in 0..count {
        let p = r.str16(path::MAX_PATH_BYTES)?;
        if !path::is_normal(p) {
            return Err(VerifyError::Malformed("path not in normal form"));
        }
        paths.push(p.to_owned());
    }
    if !r.0.is_empty() {
        return Err(VerifyError::Malformed("trailing bytes"));
    }
    Ok(Claims {
        user: user.to_owned(),
        direction,
        paths,
        issued_at,
        expires_at,
        key_id: raw.key_id().to_owned(),
        nonce,
        form: raw.form,
    })
}

/// How strictly to check time.
#[derive(Debug, Clone, Copy)]
pub struct VerifyOptions {
    /// The current time (default: the system clock).
    pub now: Option<SystemTime>,
    /// Clock skew tolerated in both directions (default 60 s).
    pub skew: Duration,
    /// Longest lifetime accepted (default 30 days).
    pub max_lifetime: Duration,
}

impl Default for VerifyOptions {
    fn default() -> Self {
        VerifyOptions {
            now: None,
            skew: DEFAULT_SKEW,
            max_lifetime: DEFAULT_MAX_LIFETIME,
        }
    }
}

impl KeyRing {
    /// Checks a token's integrity and time: version, key id, signature (constant time)
    /// or seal, then not-before and expiry with the skew. Claims are parsed only after
    /// the signature checks. Use [`Claims::check`] (or [`KeyRing::verify`]) for
    /// direction, user and path.
    pub fn decode(&self, token: &str, opts: &VerifyOptions) -> Result<Claims, VerifyError> {
        let claims = self.open(token)?;
        check_time(&claims, opts)?;
        // A retired key's tokens are refused from its end on, whatever their own expiry.
        if let Some(until) = self.retired_until(&claims.key_id) {
            let now = opts.now.unwrap_or_else(SystemTime::now);
            let now = now
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
            if now >= until {
                return Err(VerifyError::KeyRetired);
            }
        }
        Ok(claims)
    }

    /// Checks a token's integrity only (version, key id, signature or seal) and returns
    /// its claims, expired or not. For inspection; authorize with [`KeyRing::verify`].
    pub fn open(&self, token: &str) -> Result<Claims, VerifyError> {
        let raw = parse_raw(token)?;
        let key = self.get(raw.key_id()).ok_or(VerifyError::UnknownKey)?;
        if key.form() != raw.form {
            return Err(VerifyError::FormMismatch {
                key: key.form(),
                token: raw.form,
            });
        }
        let claims = match &key.sealer {
            None => {
                let end = raw
                    .bytes
                    .len()
                    .checked_sub(MAC_LEN)
                    .filter(|&e| e >= raw.header_end)
                    .ok_or(VerifyError::Malformed("truncated"))?;
                let mut mac = key.mac.clone();
                mac.update(PREFIX.as_bytes());
                mac.update(&raw.bytes[..end]);
                mac.verify_slice(&raw.bytes[end..])
                    .map_err(|_| VerifyError::BadSignature)?;
                parse_claims(&raw.bytes[raw.header_end..end], &raw)?
            }
            Some(sealer) => {
                let body = &raw.bytes[raw.header_end..];
                if body.len() < SEAL_NONCE_LEN + SEAL_TAG_LEN {
                    return Err(VerifyError::Malformed("truncated"));
                }
                let (nonce, ciphertext) = body.split_at(SEAL_NONCE_LEN);
                let aad = [PREFIX.as_bytes(), &raw.bytes[..raw.header_end]].concat();
                let payload = Payload {
                    msg: ciphertext,
                    aad: &aad,
                };
                let n: &[u8; SEAL_NONCE_LEN] = nonce
                    .try_into()
                    .map_err(|_| VerifyError::Malformed("truncated"))?;
                let n = n.into();
                let plain = match sealer {
                    Sealer::Aes128(c) => c.decrypt(n, payload),
                    Sealer::Aes192(c) => c.decrypt(n, payload),
                    Sealer::Aes256(c) => c.decrypt(n, payload),
                }
                .map_err(|_| VerifyError::BadSignature)?;
                parse_claims(&plain, &raw)?
            }
        };
        Ok(claims)
    }

    /// [`KeyRing::decode`], then [`Claims::check`] against `access`.
    pub fn verify(&self, token: &str, access: &Access<'_>) -> Result<Claims, VerifyError> {
        self.verify_with(token, access, &VerifyOptions::default())
    }

    /// [`KeyRing::verify`] with explicit time options.
    pub fn verify_with(
        &self,
        token: &str,
        access: &Access<'_>,
        opts: &VerifyOptions,
    ) -> Result<Claims, VerifyError> {
        let claims = self.decode(token, opts)?;
        claims.check(access)?;
        Ok(claims)
    }
}

fn check_time(c: &Claims, opts: &VerifyOptions) -> Result<(), VerifyError> {
    if c.expires_at <= c.issued_at {
        return Err(VerifyError::Malformed("expires before it is issued"));
    }
    if c.expires_at - c.issued_at > opts.max_lifetime.as_secs() {
        return Err(VerifyError::LifetimeTooLong);
    }
    let now = unix(opts.now.unwrap_or_else(SystemTime::now));
    let skew = opts.skew.as_secs();
    if now.saturating_add(skew) < c.issued_at {
        return Err(VerifyError::NotYetValid);
    }
    if now >= c.expires_at.saturating_add(skew) {
        return Err(VerifyError::Expired);
    }
    Ok(())
}
