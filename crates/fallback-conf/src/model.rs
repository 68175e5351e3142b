//! The typed mirror of an aspera.conf: every value as written, `None` where absent.

use std::fmt;
use std::str::FromStr;

use serde::{Serialize, Serializer};

/// How a transfer direction is authorized (`authorization/transfer/in|out/value`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TransferAuth {
    /// Transfers in this direction need no token.
    Allow,
    /// Transfers in this direction are refused.
    Deny,
    /// Transfers in this direction need a valid transfer token.
    Token,
}

/// Cipher used to make tokens (`authorization/token/encryption_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum TokenCipher {
    /// `aes-128` (the real product's default).
    #[serde(rename = "aes-128")]
    Aes128,
    /// `aes-192`.
    #[serde(rename = "aes-192")]
    Aes192,
    /// `aes-256`.
    #[serde(rename = "aes-256")]
    Aes256,
}

/// Hash of file names inside real tokens (`authorization/token/filename_hash`).
/// Versions of the product disagree on the default, so every value is accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum FilenameHash {
    /// `sha1`.
    #[serde(rename = "sha1")]
    Sha1,
    /// `md5`.
    #[serde(rename = "md5")]
    Md5,
    /// `sha-256`.
    #[serde(rename = "sha-256")]
    Sha256,
    /// `lzw`.
    #[serde(rename = "lzw")]
    Lzw,
}

/// In-transit cipher policy (`transfer/encryption/allowed_cipher`, `user_value`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum Cipher {
    /// `any`: the client chooses.
    #[serde(rename = "any")]
    Any,
    /// `none`: no encryption.
    #[serde(rename = "none")]
    None,
    /// `aes-128`.
    #[serde(rename = "aes-128")]
    Aes128,
    /// `aes-192`.
    #[serde(rename = "aes-192")]
    Aes192,
    /// `aes-256`.
    #[serde(rename = "aes-256")]
    Aes256,
    /// `aes-128-cfb`.
    #[serde(rename = "aes-128-cfb")]
    Aes128Cfb,
    /// `aes-192-cfb`.
    #[serde(rename = "aes-192-cfb")]
    Aes192Cfb,
    /// `aes-256-cfb`.
    #[serde(rename = "aes-256-cfb")]
    Aes256Cfb,
    /// `aes-128-gcm`.
    #[serde(rename = "aes-128-gcm")]
    Aes128Gcm,
    /// `aes-192-gcm`.
    #[serde(rename = "aes-192-gcm")]
    Aes192Gcm,
    /// `aes-256-gcm`.
    #[serde(rename = "aes-256-gcm")]
    Aes256Gcm,
}

impl Cipher {
    /// Whether this names a real cipher (not `any` or `none`).
    pub fn is_cipher(self) -> bool {
        !matches!(self, Cipher::Any | Cipher::None)
    }
}

/// Values that are written as one of a fixed list of words in aspera.conf.
pub(crate) trait Keyword: Sized + Copy + PartialEq + 'static {
    /// Every value with its canonical spelling first, then accepted aliases.
    const WORDS: &'static [(&'static str, Self)];
    /// What the element holds, for error messages.
    const WHAT: &'static str;

    fn as_str(self) -> &'static str {
        Self::WORDS
            .iter()
            .find(|(_, v)| *v == self)
            .map_or("", |(w, _)| w)
    }

    fn parse_word(s: &str) -> Option<Self> {
        Self::WORDS
            .iter()
            .find(|(w, _)| w.eq_ignore_ascii_case(s))
            .map(|(_, v)| *v)
    }

    /// The canonical spellings (aliases left out), for error messages.
    fn expected() -> String {
        let mut seen: Vec<(&str, Self)> = Vec::new();
        for &(w, v) in Self::WORDS {
            if !seen.iter().any(|(_, s)| *s == v) {
                seen.push((w, v));
            }
        }
        seen.iter().map(|(w, _)| *w).collect::<Vec<_>>().join(" | ")
    }
}

impl Keyword for TransferAuth {
    const WORDS: &'static [(&'static str, Self)] = &[
        ("allow", Self::Allow),
        ("deny", Self::Deny),
        ("token", Self::Token),
    ];
    const WHAT: &'static str = "transfer authorization";
}

impl Keyword for TokenCipher {
    const WORDS: &'static [(&'static str, Self)] = &[
        ("aes-128", Self::Aes128),
        ("aes-192", Self::Aes192),
        ("aes-256", Self::Aes256),
        ("aes128", Self::Aes128),
        ("aes192", Self::Aes192),
        ("aes256", Self::Aes256),
    ];
    const WHAT: &'static str = "token encryption type";
}

impl Keyword for FilenameHash {
    const WORDS: &'static [(&'static str, Self)] = &[
        ("sha1", Self::Sha1),
        ("md5", Self::Md5),
        ("sha-256", Self::Sha256),
        ("lzw", Self::Lzw),
        ("sha256", Self::Sha256),
    ];
    const WHAT: &'static str = "file name hash";
}

impl Keyword for Cipher {
    const WORDS: &'static [(&'static str, Self)] = &[
        ("any", Self::Any),
        ("none", Self::None),
        ("aes-128", Self::Aes128),
        ("aes-192", Self::Aes192),
        ("aes-256", Self::Aes256),
        ("aes-128-cfb", Self::Aes128Cfb),
        ("aes-192-cfb", Self::Aes192Cfb),
        ("aes-256-cfb", Self::Aes256Cfb),
        ("aes-128-gcm", Self::Aes128Gcm),
        ("aes-192-gcm", Self::Aes192Gcm),
        ("aes-256-gcm", Self::Aes256Gcm),
        ("aes128", Self::Aes128),
        ("aes192", Self::Aes192),
        ("aes256", Self::Aes256),
    ];
    const WHAT: &'static str = "cipher";
}

macro_rules! keyword_traits {
    ($($t:ty),*) => {$(
        impl $t {
            /// The canonical aspera.conf spelling.
            pub fn as_str(self) -> &'static str {
                <Self as Keyword>::as_str(self)
            }
        }
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
        impl FromStr for $t {
            type Err = UnknownKeyword;
            fn from_str(s: &str) -> Result<Self, UnknownKeyword> {
                <Self as Keyword>::parse_word(s.trim()).ok_or_else(|| UnknownKeyword {
                    what: <Self as Keyword>::WHAT,
                    expected: <Self as Keyword>::expected(),
                    found: s.to_owned(),
                })
            }
        }
    )*};
}
/// Whether an upload may replace a file that exists (`file_system/overwrite`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Overwrite {
    /// Uploads replace existing files (the product's default).
    Allow,
    /// An upload never replaces a file that exists, whatever its permissions.
    Deny,
}

impl Keyword for Overwrite {
    const WORDS: &'static [(&'static str, Self)] = &[("allow", Self::Allow), ("deny", Self::Deny)];
    const WHAT: &'static str = "overwrite policy";
}

keyword_traits!(TransferAuth, TokenCipher, FilenameHash, Cipher, Overwrite);

/// A Unix permission mode (`file_create_mode`, grant masks), shown in octal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FileMode(pub u32);

impl fmt::Display for FileMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04o}", self.0)
    }
}

impl Serialize for FileMode {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// A docroot that applies only to clients from one address
/// (`<absolute peer_ip="ADDR">`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PeerDocroot {
    /// The client address it is for.
    pub peer_ip: std::net::IpAddr,
    /// The docroot, as written (`$(name)` and `$(home)` not yet substituted).
    pub path: String,
}

/// A word that is not one of a setting's allowed values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{found:?} is not a {what}; expected one of: {expected}")]
pub struct UnknownKeyword {
    what: &'static str,
    expected: String,
    found: String,
}

/// A secret (the token `encryption_key`): never printed, never serialized in clear.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself, for key derivation.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Length in characters, which is safe to show.
    pub fn char_len(&self) -> usize {
        self.0.chars().count()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret(<{} characters>)", self.char_len())
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<redacted, {} characters>", self.char_len())
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// A token key that no longer issues tokens but still verifies those it made, until
/// `accept_until` (fallback's own element, `authorization/token/retired_keys/key`): key
/// rotation as configuration, so every instance and every restart accepts exactly the
/// same tokens. Removing it revokes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RetiredKey {
    /// The old `encryption_key`.
    pub secret: Secret,
    /// Unix seconds from which its tokens are refused.
    pub accept_until: i64,
    /// `accept_until` as written.
    pub accept_until_text: String,
}

/// The settings that may appear in `<default>`, in a `<user>` or in a `<group>`.
/// `None` means "not written here": the next level down decides.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Layer {
    /// `authorization/transfer/in/value`: uploads to the server.
    pub transfer_in: Option<TransferAuth>,
    /// `authorization/transfer/out/value`: downloads from the server.
    pub transfer_out: Option<TransferAuth>,
    /// `authorization/token/encryption_key`: the token secret.
    pub token_key: Option<Secret>,
    /// `authorization/token/retired_keys/key`: keys rotated out, still verifying until
    /// their time.
    pub retired_keys: Option<Vec<RetiredKey>>,
    /// `authorization/token/encryption_type`.
    pub token_cipher: Option<TokenCipher>,
    /// `authorization/token/life_seconds`.
    pub token_life_seconds: Option<u64>,
    /// `authorization/token/filename_hash`.
    pub filename_hash: Option<FilenameHash>,
    /// `file_system/access/paths/path/absolute`: the docroot, as written (`$(name)`
    /// and `$(home)` not yet substituted).
    pub docroot: Option<String>,
    /// `file_system/access/paths/path/absolute` with a `peer_ip` attribute: docroots
    /// for clients from one address, in file order. A section that has these or
    /// [`Layer::docroot`] decides the docroot as a whole.
    pub peer_docroots: Vec<PeerDocroot>,
    /// `file_system/access/paths/path/restrictions/restriction`: path rules, in order.
    pub restrictions: Option<Vec<String>>,
    /// `file_system/overwrite`.
    pub overwrite: Option<Overwrite>,
    /// `file_system/file_create_mode`: the exact mode of created files.
    pub file_create_mode: Option<FileMode>,
    /// `file_system/file_create_grant_mask`: the mode of created files when
    /// `file_create_mode` is not set (HTTP carries no source mode to OR it with).
    pub file_create_grant_mask: Option<FileMode>,
    /// `file_system/directory_create_mode`: the exact mode of created directories.
    pub directory_create_mode: Option<FileMode>,
    /// `file_system/directory_create_grant_mask`: the mode of created directories when
    /// `directory_create_mode` is not set.
    pub directory_create_grant_mask: Option<FileMode>,
    /// `transfer/in/bandwidth/flow/target_rate/cap`, kbps; `Some(None)` is `Unlimited`.
    pub in_rate_cap: Option<Option<u64>>,
    /// `transfer/out/bandwidth/flow/target_rate/cap`, kbps; `Some(None)` is `Unlimited`.
    pub out_rate_cap: Option<Option<u64>>,
    /// `file_system/access/paths/path/read_allowed`.
    pub read_allowed: Option<bool>,
    /// `file_system/access/paths/path/write_allowed`.
    pub write_allowed: Option<bool>,
    /// `file_system/access/paths/path/dir_allowed`.
    pub dir_allowed: Option<bool>,
    /// `transfer/encryption/allowed_cipher`.
    pub allowed_cipher: Option<Cipher>,
    /// `transfer/encryption/user_value`.
    pub user_value: Option<Cipher>,
}

/// `<http_server>`, as written.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HttpServer {
    /// `enable_http`.
    pub enable_http: Option<bool>,
    /// `http_port`.
    pub http_port: Option<u16>,
    /// `enable_https`.
    pub enable_https: Option<bool>,
    /// `https_port`.
    pub https_port: Option<u16>,
    /// `bind_address`.
    pub bind_address: Option<String>,
    /// `cert_file`.
    pub cert_file: Option<String>,
    /// `key_file`.
    pub key_file: Option<String>,
    /// `restartable_transfers`.
    pub restartable_transfers: Option<bool>,
    /// `session_activity_timeout`, in seconds (0 = never).
    pub session_activity_timeout: Option<u64>,
    /// `listen_backlog`.
    pub listen_backlog: Option<u32>,
    /// `persistent_connection` (undocumented in the product; kept for completeness).
    pub persistent_connection: Option<bool>,
    /// `mgmt_address` (undocumented in the product; kept for completeness).
    pub mgmt_address: Option<String>,
}

/// The Connect Server `<WEB .../>` element: what is advertised to clients.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Web {
    /// `HttpFallback`.
    pub http_fallback: Option<bool>,
    /// `HttpFallbackPort`.
    pub http_fallback_port: Option<u16>,
    /// `HttpsFallbackPort`.
    pub https_fallback_port: Option<u16>,
    /// `SshPort`.
    pub ssh_port: Option<u16>,
    /// `UdpPort`.
    pub udp_port: Option<u16>,
}

/// A `<user>` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// `<name>`.
    pub name: String,
    /// The settings written in the section.
    pub settings: Layer,
}

/// A `<group>` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    /// `<name>`.
    pub name: String,
    /// `<precedence>`: among the groups of a user, the lowest number wins. Absent means 0.
    pub precedence: Option<u32>,
    /// The settings written in the section.
    pub settings: Layer,
}

/// Everything fallback reads from an aspera.conf, as written.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Document {
    /// `<http_server>`.
    pub http_server: HttpServer,
    /// `<WEB>`, when present.
    pub web: Option<Web>,
    /// `<default>`.
    pub default: Layer,
    /// Users of every realm, in file order.
    pub users: Vec<User>,
    /// Groups of every realm, in file order.
    pub groups: Vec<Group>,
}
