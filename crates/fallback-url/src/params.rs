//! Typed query parameters of a FASP URL.

use std::fmt;
use std::str::FromStr;

use fallback_conf::Cipher;
use serde::Serialize;

/// Rate policy (`policy=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Policy {
    /// Fixed rate.
    Fixed,
    /// High priority adaptive.
    High,
    /// Fair adaptive.
    Fair,
    /// Low priority adaptive.
    Low,
}

impl Policy {
    /// The spelling in URLs.
    pub fn as_str(self) -> &'static str {
        match self {
            Policy::Fixed => "fixed",
            Policy::High => "high",
            Policy::Fair => "fair",
            Policy::Low => "low",
        }
    }
}

impl FromStr for Policy {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        Ok(match s.to_ascii_lowercase().as_str() {
            "fixed" => Policy::Fixed,
            "high" => Policy::High,
            "fair" => Policy::Fair,
            "low" => Policy::Low,
            _ => return Err(()),
        })
    }
}

/// In-transit encryption (`enc=`): `none` or a cipher. Decides HTTP vs HTTPS fallback.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum Enc {
    /// `none`: no encryption, HTTP fallback.
    #[serde(rename = "none")]
    None,
    /// `aes128`.
    #[serde(rename = "aes128")]
    Aes128,
    /// `aes192`.
    #[serde(rename = "aes192")]
    Aes192,
    /// `aes256`.
    #[serde(rename = "aes256")]
    Aes256,
    /// `aes128cfb`.
    #[serde(rename = "aes128cfb")]
    Aes128Cfb,
    /// `aes192cfb`.
    #[serde(rename = "aes192cfb")]
    Aes192Cfb,
    /// `aes256cfb`.
    #[serde(rename = "aes256cfb")]
    Aes256Cfb,
    /// `aes128gcm`.
    #[serde(rename = "aes128gcm")]
    Aes128Gcm,
    /// `aes192gcm`.
    #[serde(rename = "aes192gcm")]
    Aes192Gcm,
    /// `aes256gcm`.
    #[serde(rename = "aes256gcm")]
    Aes256Gcm,
}

const ENC_WORDS: &[(&str, Enc)] = &[
    ("none", Enc::None),
    ("aes128", Enc::Aes128),
    ("aes192", Enc::Aes192),
    ("aes256", Enc::Aes256),
    ("aes128cfb", Enc::Aes128Cfb),
    ("aes192cfb", Enc::Aes192Cfb),
    ("aes256cfb", Enc::Aes256Cfb),
    ("aes128gcm", Enc::Aes128Gcm),
    ("aes192gcm", Enc::Aes192Gcm),
    ("aes256gcm", Enc::Aes256Gcm),
];

impl Enc {
    /// The spelling in URLs (`aes128`, `none`).
    pub fn as_str(self) -> &'static str {
        ENC_WORDS
            .iter()
            .find(|(_, e)| *e == self)
            .map_or("none", |(w, _)| w)
    }

    /// Whether this is a cipher (HTTPS fallback) rather than `none` (HTTP).
    pub fn is_cipher(self) -> bool {
        self != Enc::None
    }

    /// The transfer-spec / aspera.conf spelling (`aes-128`, `aes-128-gcm`, `none`).
    pub fn cipher_name(self) -> &'static str {
        match self {
            Enc::None => "none",
            Enc::Aes128 => "aes-128",
            Enc::Aes192 => "aes-192",
            Enc::Aes256 => "aes-256",
            Enc::Aes128Cfb => "aes-128-cfb",
            Enc::Aes192Cfb => "aes-192-cfb",
            Enc::Aes256Cfb => "aes-256-cfb",
            Enc::Aes128Gcm => "aes-128-gcm",
            Enc::Aes192Gcm => "aes-192-gcm",
            Enc::Aes256Gcm => "aes-256-gcm",
        }
    }

    /// The `enc` for an aspera.conf cipher; `any` becomes `None` (nothing required).
    pub fn from_cipher(c: Cipher) -> Option<Enc> {
        Some(match c {
            Cipher::Any => return None,
            Cipher::None => Enc::None,
            Cipher::Aes128 => Enc::Aes128,
            Cipher::Aes192 => Enc::Aes192,
            Cipher::Aes256 => Enc::Aes256,
            Cipher::Aes128Cfb => Enc::Aes128Cfb,
            Cipher::Aes192Cfb => Enc::Aes192Cfb,
            Cipher::Aes256Cfb => Enc::Aes256Cfb,
            Cipher::Aes128Gcm => Enc::Aes128Gcm,
            Cipher::Aes192Gcm => Enc::Aes192Gcm,
            Cipher::Aes256Gcm => Enc::Aes256Gcm,
        })
    }
}

impl FromStr for Enc {
    type Err = ();
    /// Accepts the URL spelling and the hyphenated one (`aes-128-gcm`).
    fn from_str(s: &str) -> Result<Self, ()> {
        let squashed: String = s.chars().filter(|c| *c != '-').collect();
        ENC_WORDS
            .iter()
            .find(|(w, _)| w.eq_ignore_ascii_case(&squashed))
            .map(|(_, e)| *e)
            .ok_or(())
    }
}

impl fmt::Display for Enc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Every query parameter seen in real FASP URLs, typed; others kept in order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Params {
    /// `auth`: prompt for credentials (`yes`, the default) or not.
    pub auth: Option<bool>,
    /// `token`: the transfer token (ascp `-W`).
    pub token: Option<String>,
    /// `cookie`: an opaque cookie passed to the transfer.
    pub cookie: Option<String>,
    /// `sshfp`: the server's SSH host key fingerprint.
    pub sshfp: Option<String>,
    /// `port`: the FASP UDP port.
    pub port: Option<u16>,
    /// `httpport`: the HTTP fallback port (HTTPS when `enc` is a cipher).
    pub httpport: Option<u16>,
    /// `fallback`: whether HTTP fallback may be used.
    pub fallback: Option<bool>,
    /// `policy`: rate policy.
    pub policy: Option<Policy>,
    /// `targetrate`: target rate in kbps.
    pub targetrate: Option<u64>,
    /// `minrate`: minimum rate in kbps.
    pub minrate: Option<u64>,
    /// `bwcap`: bandwidth cap in kbps.
    pub bwcap: Option<u64>,
    /// `enc`: in-transit encryption.
    pub enc: Option<Enc>,
    /// `tags64`: base64 of a JSON object of transfer tags.
    pub tags64: Option<String>,
    /// `createpath`: create the destination path.
    pub createpath: Option<bool>,
    /// `lockpolicy`: the user may not change the policy.
    pub lockpolicy: Option<bool>,
    /// `lockminrate`: the user may not change the minimum rate.
    pub lockminrate: Option<bool>,
    /// `v`: URL version.
    pub v: Option<u32>,
    /// Parameters not listed above, in the order they appeared.
    pub other: Vec<(String, String)>,
}

/// Parameter names in the order they are written.
pub(crate) const KNOWN: &[&str] = &[
    "auth",
    "token",
    "cookie",
    "sshfp",
    "port",
    "httpport",
    "fallback",
    "policy",
    "targetrate",
    "minrate",
    "bwcap",
    "enc",
    "tags64",
    "createpath",
    "lockpolicy",
    "lockminrate",
    "v",
];

/// What is wrong with a parameter value.
pub(crate) type ValueError = String;

fn parse_bool(v: &str) -> Result<bool, ValueError> {
    match v.to_ascii_lowercase().as_str() {
        "yes" | "true" | "1" | "y" => Ok(true),
        "no" | "false" | "0" | "n" => Ok(false),
        _ => Err("expected yes or no".to_owned()),
    }
}

fn parse_num<T: FromStr>(v: &str, what: &str) -> Result<T, ValueError> {
    if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("expected {what}"));
    }
    v.parse().map_err(|_| format!("expected {what}"))
}

fn parse_port(v: &str) -> Result<u16, ValueError> {
    match parse_num::<u32>(v, "a port number from 1 to 65535")? {
        p @ 1..=65535 => Ok(u16::try_from(p).unwrap_or(u16::MAX)),
        _ => Err("expected a port number from 1 to 65535".to_owned()),
    }
}

impl Params {
    /// Sets a known parameter from its decoded value; `Ok(false)` when `name` is not
    /// a known parameter.
    pub(crate) fn set(&mut self, name: &str, v: &str) -> Result<bool, ValueError> {
        match name {
            "auth" => self.auth = Some(parse_bool(v)?),
            "token" => self.token = Some(v.to_owned()),
            "cookie" => self.cookie = Some(v.to_owned()),
            "sshfp" => self.sshfp = Some(v.to_owned()),
            "port" => self.port = Some(parse_port(v)?),
            "httpport" => self.httpport = Some(parse_port(v)?),
            "fallback" => self.fallback = Some(parse_bool(v)?),
            "policy" => {
                self.policy = Some(
                    v.parse()
                        .map_err(|()| "expected fixed, high, fair or low")?,
                );
            }
            "targetrate" => self.targetrate = Some(parse_num(v, "a rate in kbps")?),
            "minrate" => self.minrate = Some(parse_num(v, "a rate in kbps")?),
            "bwcap" => self.bwcap = Some(parse_num(v, "a rate in kbps")?),
            "enc" => {
                self.enc = Some(v.parse().map_err(
                    |()| "expected none or a cipher (aes128, aes192, aes256, aes128gcm, ...)",
                )?);
            }
            "tags64" => self.tags64 = Some(v.to_owned()),
            "createpath" => self.createpath = Some(parse_bool(v)?),
            "lockpolicy" => self.lockpolicy = Some(parse_bool(v)?),
            "lockminrate" => self.lockminrate = Some(parse_bool(v)?),
            "v" => self.v = Some(parse_num(v, "a version number")?),
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// `(name, value)` of every parameter set, known ones first in a fixed order, then
    /// the others in their order.
    pub fn pairs(&self) -> Vec<(String, String)> {
        let yes_no = |b: bool| if b { "yes" } else { "no" }.to_owned();
        let mut out: Vec<(String, String)> = Vec::new();
        let mut push = |name: &str, v: Option<String>| {
            if let Some(v) = v {
                out.push((name.to_owned(), v));
            }
        };
        push("auth", self.auth.map(yes_no));
        push("token", self.token.clone());
        push("cookie", self.cookie.clone());
        push("sshfp", self.sshfp.clone());
        push("port", self.port.map(|p| p.to_string()));
        push("httpport", self.httpport.map(|p| p.to_string()));
        push("fallback", self.fallback.map(yes_no));
        push("policy", self.policy.map(|p| p.as_str().to_owned()));
        push("targetrate", self.targetrate.map(|n| n.to_string()));
        push("minrate", self.minrate.map(|n| n.to_string()));
        push("bwcap", self.bwcap.map(|n| n.to_string()));
        push("enc", self.enc.map(|e| e.as_str().to_owned()));
        push("tags64", self.tags64.clone());
        push("createpath", self.createpath.map(yes_no));
        push("lockpolicy", self.lockpolicy.map(yes_no));
        push("lockminrate", self.lockminrate.map(yes_no));
        push("v", self.v.map(|n| n.to_string()));
        out.extend(self.other.iter().cloned());
        out
    }
}
