//! Keys: derived from the aspera.conf secret with HKDF, one key id each, kept in a ring
//! for rotation.

use std::fmt;

use aes_gcm::aead::KeyInit as _;
use aes_gcm::aes::{Aes128, Aes192, Aes256};
use aes_gcm::{AesGcm, aead::consts::U12};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use fallback_conf::{Config, Origin, TokenCipher, UserSettings};
use hkdf::Hkdf;
use hmac::Hmac;
use sha2::Sha256;

use crate::Error;

pub(crate) type HmacSha256 = Hmac<Sha256>;

/// HKDF salt: separates this format's keys from any other use of the same secret.
pub(crate) const HKDF_SALT: &[u8] = b"fallback-token v1";
const INFO_MAC: &[u8] = b"fbt1 mac hmac-sha256";
const INFO_KID: &[u8] = b"fbt1 key id";

/// Secrets shorter than this work but are weak; aspera.conf validation warns about them.
pub const MIN_SECRET_CHARS: usize = 20;
/// Longest key id.
pub const MAX_KEY_ID_BYTES: usize = 32;

/// How tokens made with a key protect their claims.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Form {
    /// Claims readable by the bearer, authenticated with HMAC-SHA256.
    Signed,
    /// Claims encrypted and authenticated with AES-128-GCM.
    SealedAes128,
    /// Claims encrypted and authenticated with AES-192-GCM.
    SealedAes192,
    /// Claims encrypted and authenticated with AES-256-GCM.
    SealedAes256,
}

impl Form {
    pub(crate) fn byte(self) -> u8 {
        match self {
            Form::Signed => 1,
            Form::SealedAes128 => 2,
            Form::SealedAes192 => 3,
            Form::SealedAes256 => 4,
        }
    }

    pub(crate) fn from_byte(b: u8) -> Option<Self> {
        Some(match b {
            1 => Form::Signed,
            2 => Form::SealedAes128,
            3 => Form::SealedAes192,
            4 => Form::SealedAes256,
            _ => return None,
        })
    }

    /// Whether the claims are encrypted.
    pub fn is_sealed(self) -> bool {
        self != Form::Signed
    }

    fn seal_info(self) -> (&'static [u8], usize) {
        match self {
            Form::Signed => (b"", 0),
            Form::SealedAes128 => (b"fbt1 seal aes-128-gcm", 16),
            Form::SealedAes192 => (b"fbt1 seal aes-192-gcm", 24),
            Form::SealedAes256 => (b"fbt1 seal aes-256-gcm", 32),
        }
    }
}

impl From<TokenCipher> for Form {
    fn from(c: TokenCipher) -> Self {
        match c {
            TokenCipher::Aes128 => Form::SealedAes128,
            TokenCipher::Aes192 => Form::SealedAes192,
            TokenCipher::Aes256 => Form::SealedAes256,
        }
    }
}

impl fmt::Display for Form {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Form::Signed => "signed (hmac-sha256)",
            Form::SealedAes128 => "sealed (aes-128-gcm)",
            Form::SealedAes192 => "sealed (aes-192-gcm)",
            Form::SealedAes256 => "sealed (aes-256-gcm)",
        })
    }
}

#[derive(Clone)]
pub(crate) enum Sealer {
    Aes128(AesGcm<Aes128, U12>),
    Aes192(AesGcm<Aes192, U12>),
    Aes256(AesGcm<Aes256, U12>),
}

/// A token key: an id, a MAC key and, for sealed tokens, an AEAD key, all derived from
/// one secret. Cloning is cheap enough to do per request; the secret is not kept.
#[derive(Clone)]
pub struct Key {
    id: String,
    form: Form,
    /// Keyed once; each use clones the state (no per-token key schedule).
    pub(crate) mac: HmacSha256,
    pub(crate) sealer: Option<Sealer>,
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Key")
            .field("id", &self.id)
            .field("form", &self.form)
            .finish_non_exhaustive()
    }
}

fn valid_key_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_KEY_ID_BYTES
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

impl Key {
    /// Derives a key from a secret (aspera.conf `authorization/token/encryption_key`).
    /// `form` chooses signed or sealed tokens. The key id is derived from the secret too,
    /// so every server given the same secret computes the same id.
    pub fn derive(secret: &str, form: Form) -> Result<Self, Error> {
        if secret.is_empty() {
            return Err(Error::EmptySecret);
        }
        let hk = Hkdf::<Sha256>::new(Some(HKDF_SALT), secret.as_bytes());
        let mut mac_key = [0u8; 32];
        let mut kid = [0u8; 6];
        let mut seal_key = [0u8; 32];
        hk.expand(INFO_MAC, &mut mac_key)
            .and_then(|()| hk.expand(INFO_KID, &mut kid))
            .map_err(|_| Error::KeyDerivation)?;
        let (info, len) = form.seal_info();
        if len > 0 {
            hk.expand(info, &mut seal_key[..len])
                .map_err(|_| Error::KeyDerivation)?;
        }
        let sealer = match form {
            Form::Signed => None,
            Form::SealedAes128 => AesGcm::new_from_slice(&seal_key[..16])
                .ok()
                .map(Sealer::Aes128),
            Form::SealedAes192 => AesGcm::new_from_slice(&seal_key[..24])
                .ok()
                .map(Sealer::Aes192),
            Form::SealedAes256 => AesGcm::new_from_slice(&seal_key[..32])
                .ok()
                .map(Sealer::Aes256),
        };
        if form.is_sealed() && sealer.is_none() {
            return Err(Error::KeyDerivation);
        }
        Ok(Key {
            id: URL_SAFE_NO_PAD.encode(kid),
            form,
            mac: HmacSha256::new_from_slice(&mac_key).map_err(|_| Error::KeyDerivation)?,
            sealer,
        })
    }

    /// Replaces the derived key id, for operators who name their keys (`2026-11`).
    /// 1 to 32 characters from `A-Z a-z 0-9 - _`.
    pub fn with_id(mut self, id: &str) -> Result<Self, Error> {
        if !valid_key_id(id) {
            return Err(Error::InvalidKeyId(id.to_owned()));
        }
        id.clone_into(&mut self.id);
        Ok(self)
    }

    /// The key of a user's effective settings: their `encryption_key`, sealed with
    /// `encryption_type` when the file sets one (the built-in default alone gives signed
    /// tokens). [`Error::NoKey`] when no secret applies to the user.
    ///
    /// ```
    /// let conf = fallback_conf::Config::parse(r#"<CONF><aaa><realms><realm><users>
    ///   <user><name>alice</name><authorization><token>
    ///     <encryption_key>alices-secret-of-twenty-chars</encryption_key>
    ///   </token></authorization></user></users></realm></realms></aaa></CONF>"#)?;
    /// assert!(fallback_token::Key::from_settings(&conf.user("alice", &[])).is_ok());
    /// assert!(matches!(
    ///     fallback_token::Key::from_settings(&conf.user("bob", &[])),
    ///     Err(fallback_token::Error::NoKey(user)) if user == "bob"
    /// ));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn from_settings(settings: &UserSettings) -> Result<Self, Error> {
        let secret = settings
            .token_key
            .value
            .as_ref()
            .ok_or_else(|| Error::NoKey(settings.user.clone()))?;
        let form = match settings.token_cipher.origin {
            Origin::Builtin => Form::Signed,
            _ => Form::from(settings.token_cipher.value),
        };
        Key::derive(secret.expose(), form)
    }

    /// The keys `settings` retired (`authorization/token/retired_keys`), which verify
    /// but never issue, each with the Unix second from which its tokens are refused.
    /// They take the form the settings give the current key.
    pub fn retired_from_settings(settings: &UserSettings) -> Result<Vec<(Self, i64)>, Error> {
        let form = match settings.token_cipher.origin {
            Origin::Builtin => Form::Signed,
            _ => Form::from(settings.token_cipher.value),
        };
        settings
            .retired_keys
            .value
            .iter()
            .map(|k| Ok((Key::derive(k.secret.expose(), form)?, k.accept_until)))
            .collect()
    }

    /// The key id carried in the clear by every token made with this key.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Signed or sealed, and with which cipher.
    pub fn form(&self) -> Form {
        self.form
    }
}

/// The keys a verifier accepts, looked up by key id. The first key issues new tokens;
/// the others still verify theirs (rotation: add the new key first, drop the old one
/// once its tokens have expired).
#[derive(Debug, Clone)]
pub struct KeyRing {
    keys: Vec<Key>,
    /// Retired keys (by id): the Unix second from which their tokens are refused.
    retired: std::collections::HashMap<String, i64>,
}

impl From<Key> for KeyRing {
    fn from(key: Key) -> Self {
        KeyRing {
            keys: vec![key],
            retired: std::collections::HashMap::new(),
        }
    }
}

impl KeyRing {
    /// A ring with `primary` as the issuing key.
    pub fn new(primary: Key) -> Self {
        primary.into()
    }

    /// Adds a key that verifies but does not issue. A key with an id already in the
    /// ring replaces nothing and is refused.
    pub fn add(&mut self, key: Key) -> Result<&mut Self, Error> {
        if self.get(key.id()).is_some() {
            return Err(Error::DuplicateKeyId(key.id));
        }
        self.keys.push(key);
        Ok(self)
    }

    /// Adds a retired key: it verifies the tokens it made until `accept_until` (Unix
    /// seconds), then [`KeyRing::decode`] refuses them (`KeyRetired`). A key already in
    /// the ring as a current key stays current.
    pub fn add_retired(&mut self, key: Key, accept_until: i64) -> &mut Self {
        if self.get(key.id()).is_none() {
            self.retired.insert(key.id.clone(), accept_until);
            self.keys.push(key);
        } else if let Some(until) = self.retired.get_mut(key.id()) {
            // The same old key retired in two sections: the later end.
            *until = (*until).max(accept_until);
        }
        self
    }

    /// When the tokens of key `id` stop being accepted (Unix seconds); `None` for a
    /// current key (or one not in the ring).
    pub fn retired_until(&self, id: &str) -> Option<i64> {
        self.retired.get(id).copied()
    }

    /// Every distinct secret in an aspera.conf (in `<default>`, users and groups), each
    /// with the form its section sets, then every retired key with its end. The
    /// `<default>` key, when there is one, issues. `None` when the file has no secret
    /// at all. Which tokens a ring accepts depends only on the file and the clock.
    pub fn from_config(conf: &Config) -> Option<Result<Self, Error>> {
        let doc = conf.document();
        let mut settings = vec![conf.defaults()];
        settings.extend(doc.users.iter().map(|u| conf.user(&u.name, &[])));
        settings.extend(doc.groups.iter().map(|g| conf.user("", &[g.name.as_str()])));
        let mut ring: Option<KeyRing> = None;
        for s in &settings {
            let key = match Key::from_settings(s) {
                Ok(k) => k,
                Err(Error::NoKey(_)) => continue,
                Err(e) => return Some(Err(e)),
            };
            match &mut ring {
                None => ring = Some(KeyRing::new(key)),
                Some(r) => {
                    if r.get(key.id()).is_none() {
                        r.keys.push(key);
                    }
                }
            }
        }
        for s in &settings {
            let retired = match Key::retired_from_settings(s) {
                Ok(r) => r,
                Err(e) => return Some(Err(e)),
            };
            for (key, until) in retired {
                if let Some(r) = &mut ring {
                    r.add_retired(key, until);
                }
            }
        }
        ring.map(Ok)
    }

    /// The issuing key.
    pub fn primary(&self) -> &Key {
        &self.keys[0]
    }

    /// The key with id `id`.
    pub fn get(&self, id: &str) -> Option<&Key> {
        self.keys.iter().find(|k| k.id == id)
    }

    /// Every key, the issuing one first.
    pub fn keys(&self) -> &[Key] {
        &self.keys
    }
}
