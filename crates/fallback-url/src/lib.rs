//! FASP URLs: the links that tell a client where and how to transfer, and where to fall
//! back to HTTP(S) when FASP is blocked.
//!
//! `fasp://user@host:33001/path?token=...&fallback=yes&httpport=8443&enc=aes128`
//!
//! [`FaspUrl::parse`] reads `fasp://` and `faspe://` links, leniently where real links
//! are sloppy (raw spaces, raw `\` in `DOMAIN\user`, unencoded `=` padding in tokens) and
//! strictly where it matters (a port that is not a number is an error naming the
//! parameter). [`FaspUrl::builder`] writes them, and [`FaspUrlBuilder::fallback_for`]
//! applies the Connect Server's dir-listing rule: a user who must encrypt gets
//! `enc=<cipher>` and the `<WEB HttpsFallbackPort>`, others `enc=none` and
//! `HttpFallbackPort`, with `fallback=yes` when `<WEB HttpFallback="yes">`.
//! [`FaspUrl::http_base`] tells a client where the fallback service is.
//!
//! ```
//! use fallback_url::{Enc, FaspUrl};
//!
//! let url = FaspUrl::builder("files.example.com")
//!     .user("alice")
//!     .path("/projects/q4.pdf")
//!     .token("fbt1_AQEI...")
//!     .enc(Enc::Aes128)
//!     .fallback(true)
//!     .http_port(8443)
//!     .build();
//! let text = url.to_string();
//! assert_eq!(
//!     text,
//!     "fasp://alice@files.example.com:33001/projects/q4.pdf?token=fbt1_AQEI...&httpport=8443&fallback=yes&enc=aes128"
//! );
//! assert_eq!(FaspUrl::parse(&text)?, url);
//! assert_eq!(url.http_base()?.as_str(), "https://files.example.com:8443/aspera/https");
//! # Ok::<(), fallback_url::Error>(())
//! ```
#![warn(missing_docs)]

mod params;

use std::fmt;
use std::net::Ipv6Addr;

use fallback_conf::{UserSettings, WebSettings};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};
use serde::Serialize;

pub use params::{Enc, Params, Policy};

/// The SSH port our builder writes when none is given (Aspera servers listen on 33001).
pub const DEFAULT_BUILD_SSH_PORT: u16 = 33001;
/// The SSH port a URL without one means (the syntax's default).
pub const DEFAULT_URL_SSH_PORT: u16 = 22;

/// Why a URL could not be read or used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Not a URL at all, or not `fasp://` / `faspe://`.
    #[error("not a FASP URL: {0}")]
    NotFasp(String),
    /// The URL has no host.
    #[error("the URL has no host")]
    NoHost,
    /// The SSH port in the authority is not a port.
    #[error("the SSH port {0:?} is not a number from 1 to 65535")]
    InvalidSshPort(String),
    /// A known parameter with a value of the wrong type.
    #[error("parameter {name}={value:?}: {reason}")]
    InvalidParam {
        /// The parameter.
        name: String,
        /// Its value as written.
        value: String,
        /// What was expected.
        reason: String,
    },
    /// A known parameter given twice (ambiguous: which token, which port?).
    #[error("parameter {0} is given twice")]
    DuplicateParam(String),
    /// Percent-encoding that does not decode to UTF-8.
    #[error("{0} is not valid UTF-8 once percent-decoded")]
    NotUtf8(&'static str),
    /// A built URL that does not parse (an invalid host).
    #[error("cannot build a valid URL: {0}")]
    Build(String),
}

/// `fasp` (Connect links) or `faspe` (Faspex package links).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Scheme {
    /// `fasp://`
    Fasp,
    /// `faspe://`
    Faspe,
}

impl Scheme {
    /// The scheme name.
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Fasp => "fasp",
            Scheme::Faspe => "faspe",
        }
    }
}

/// A FASP URL, decoded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FaspUrl {
    /// `fasp` or `faspe`.
    pub scheme: Scheme,
    /// The transfer user, decoded (`DOMAIN\user` included).
    pub user: Option<String>,
    /// A password in the URL (rare; discouraged).
    pub password: Option<String>,
    /// Host name or address (IPv6 without brackets).
    pub host: String,
    /// The SSH port as written; see [`FaspUrl::ssh_port`].
    pub port: Option<u16>,
    /// The path, decoded; empty when the URL has none.
    pub path: String,
    /// Query parameters.
    pub params: Params,
}

/// Userinfo and query values: everything but unreserved characters is encoded.
const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');
/// Paths: as above, but `/` separates segments.
const PATH: &AsciiSet = &COMPONENT.remove(b'/');

fn decode(s: &str, what: &'static str) -> Result<String, Error> {
    percent_decode_str(s)
        .decode_utf8()
        .map(std::borrow::Cow::into_owned)
        .map_err(|_| Error::NotUtf8(what))
}

/// Makes real-world sloppiness parseable: raw spaces and backslashes are encoded.
fn tidy(input: &str) -> String {
    let input = input.trim();
    let mut out = String::with_capacity(input.len());
    for c in input.chars() {
        match c {
            ' ' => out.push_str("%20"),
            '\\' => out.push_str("%5C"),
            c => out.push(c),
        }
    }
    out
}

impl FaspUrl {
    /// A builder for `fasp://host`, SSH port 33001.
    pub fn builder(host: &str) -> FaspUrlBuilder {
        FaspUrlBuilder {
            url: FaspUrl {
                scheme: Scheme::Fasp,
                user: None,
                password: None,
                host: host.to_owned(),
                port: Some(DEFAULT_BUILD_SSH_PORT),
                path: String::new(),
                params: Params::default(),
            },
        }
    }

    /// Parses a `fasp://` or `faspe://` URL.
    pub fn parse(input: &str) -> Result<Self, Error> {
        let tidied = tidy(input);
        let (scheme, rest) = match tidied.split_once("://") {
            Some((s, rest)) if s.eq_ignore_ascii_case("fasp") => (Scheme::Fasp, rest),
            Some((s, rest)) if s.eq_ignore_ascii_case("faspe") => (Scheme::Faspe, rest),
            _ => {
                return Err(Error::NotFasp(
                    "expected fasp://... or faspe://...".to_owned(),
                ));
            }
        };
        // The query is taken raw and split by hand: `+` stays `+` (this is not a
        // form) and unencoded `=` padding in a value stays part of the value.
        let (before_query, query) = match rest.split_once('?') {
            Some((b, q)) => (b, Some(q)),
            None => (rest, None),
        };
        let before_query = before_query.split('#').next().unwrap_or_default();
        // The authority and path are checked by the url crate; the SSH port is read
        // by hand first so a bad one is reported as such.
        let authority_end = before_query.find('/').unwrap_or(before_query.len());
        let authority = &before_query[..authority_end];
        let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
        let port_text = match host_port.rfind("]:") {
            Some(i) => &host_port[i + 2..],
            None if host_port.starts_with('[') => "",
            None => host_port.rsplit_once(':').map_or("", |(_, p)| p),
        };
        let port_ok = port_text.bytes().all(|b| b.is_ascii_digit())
            && (port_text.is_empty() || matches!(port_text.parse::<u32>(), Ok(1..=65535)));
        if !port_ok {
            return Err(Error::InvalidSshPort(port_text.to_owned()));
        }
        // Only the authority goes through the url crate: it would resolve `.` and `..`
        // in the path, and the path is the server's to interpret, as written.
        let parsed = url::Url::parse(&format!("{}://{authority}", scheme.as_str())).map_err(
            |e| match e {
                url::ParseError::EmptyHost => Error::NoHost,
                other => Error::NotFasp(other.to_string()),
            },
        )?;
        let host = match parsed.host() {
            Some(url::Host::Ipv6(a)) => a.to_string(),
            Some(url::Host::Ipv4(a)) => a.to_string(),
            Some(url::Host::Domain(d)) => decode(d, "the host")?,
            None => return Err(Error::NoHost),
        };
        if host.is_empty() {
            return Err(Error::NoHost);
        }
        let port = parsed.port();
        let user = match parsed.username() {
            "" => None,
            u => Some(decode(u, "the user")?),
        };
        let password = parsed
            .password()
            .map(|p| decode(p, "the password"))
            .transpose()?;
        let path = decode(&before_query[authority_end..], "the path")?;
        let mut params = Params::default();
        if let Some(q) = query {
            let q = q.split('#').next().unwrap_or_default();
            let mut seen: Vec<String> = Vec::new();
            for pair in q.split('&').filter(|p| !p.is_empty()) {
                let (raw_name, raw_value) = pair.split_once('=').unwrap_or((pair, ""));
                let name = decode(raw_name, "a parameter name")?;
                let value = decode(raw_value, "a parameter value")?;
                if params::KNOWN.contains(&name.as_str()) {
                    if seen.contains(&name) {
                        return Err(Error::DuplicateParam(name));
                    }
                    seen.push(name.clone());
                }
                match params.set(&name, &value) {
                    Ok(true) => {}
                    Ok(false) => params.other.push((name, value)),
                    Err(reason) => {
                        return Err(Error::InvalidParam {
                            name,
                            value,
                            reason,
                        });
                    }
                }
            }
        }
        Ok(FaspUrl {
            scheme,
            user,
            password,
            host,
            port,
            path,
            params,
        })
    }

    /// The SSH port: as written, else 22 (the URL syntax's default).
    pub fn ssh_port(&self) -> u16 {
        self.port.unwrap_or(DEFAULT_URL_SSH_PORT)
    }

    /// Whether fallback transfers use HTTPS: `enc` is a cipher, or absent (clients
    /// encrypt by default).
    pub fn uses_https(&self) -> bool {
        self.params.enc.is_none_or(Enc::is_cipher)
    }

    /// The HTTP fallback port: `httpport`, else 443 for HTTPS and 80 for HTTP (the
    /// Connect default).
    pub fn http_port(&self) -> u16 {
        self.params
            .httpport
            .unwrap_or(if self.uses_https() { 443 } else { 80 })
    }

    /// Where a client goes for HTTP fallback: `https://host:PORT/aspera/https` when
    /// encrypting, `http://host:PORT/aspera/http` for `enc=none`.
    pub fn http_base(&self) -> Result<url::Url, Error> {
        let (scheme, prefix) = if self.uses_https() {
            ("https", "/aspera/https")
        } else {
            ("http", "/aspera/http")
        };
        let host = if self.host.parse::<Ipv6Addr>().is_ok() {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        url::Url::parse(&format!("{scheme}://{host}:{}{prefix}", self.http_port()))
            .map_err(|e| Error::Build(e.to_string()))
    }

    /// What a fallback client needs that this URL lacks, in the words of the
    /// article's troubleshooting step 2 ("does it contain token, fallback=yes,
    /// httpport?").
    pub fn fallback_problems(&self) -> Vec<&'static str> {
        let mut out = Vec::new();
        match self.params.token.as_deref() {
            None => out
                .push("no token: HTTP fallback requires a transfer token (without one the server answers 401)"),
            Some("") => out.push("the token is empty"),
            Some(_) => {}
        }
        if self.params.fallback != Some(true) {
            out.push("fallback is not yes: the client will not try HTTP when FASP is blocked");
        }
        if self.params.httpport.is_none() {
            out.push(
                "no httpport: the client will use 443 (cipher) or 80 (enc=none), which only \
                 works in proxy mode on standard ports",
            );
        }
        out
    }

    /// The decoded JSON of `tags64`, when present and valid.
    pub fn tags(&self) -> Option<serde_json::Value> {
        use base64::Engine as _;
        use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
        use base64::engine::{DecodePaddingMode, general_purpose};
        let lenient = GeneralPurposeConfig::new()
            .with_decode_padding_mode(DecodePaddingMode::Indifferent)
            .with_decode_allow_trailing_bits(true);
        let t = self.params.tags64.as_deref()?.trim();
        let bytes = GeneralPurpose::new(&base64::alphabet::STANDARD, lenient)
            .decode(t)
            .or_else(|_| GeneralPurpose::new(&base64::alphabet::URL_SAFE, lenient).decode(t))
            .ok()
            .or_else(|| general_purpose::STANDARD.decode(t).ok())?;
        serde_json::from_slice(&bytes).ok()
    }
}

impl fmt::Display for FaspUrl {
    /// The URL text, every component percent-encoded as needed.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://", self.scheme.as_str())?;
        if self.user.is_some() || self.password.is_some() {
            let user = self.user.as_deref().unwrap_or_default();
            write!(f, "{}", utf8_percent_encode(user, COMPONENT))?;
            if let Some(p) = &self.password {
                write!(f, ":{}", utf8_percent_encode(p, COMPONENT))?;
            }
            f.write_str("@")?;
        }
        if self.host.parse::<Ipv6Addr>().is_ok() {
            write!(f, "[{}]", self.host)?;
        } else {
            write!(f, "{}", utf8_percent_encode(&self.host, COMPONENT))?;
        }
        if let Some(p) = self.port {
            write!(f, ":{p}")?;
        }
        if !self.path.is_empty() && !self.path.starts_with('/') {
            f.write_str("/")?;
        }
        write!(f, "{}", utf8_percent_encode(&self.path, PATH))?;
        let pairs = self.params.pairs();
        for (i, (k, v)) in pairs.iter().enumerate() {
            f.write_str(if i == 0 { "?" } else { "&" })?;
            write!(
                f,
                "{}={}",
                utf8_percent_encode(k, COMPONENT),
                utf8_percent_encode(v, COMPONENT)
            )?;
        }
        Ok(())
    }
}

/// Builds a [`FaspUrl`]; see [`FaspUrl::builder`].
#[derive(Debug, Clone)]
#[must_use]
pub struct FaspUrlBuilder {
    url: FaspUrl,
}

impl FaspUrlBuilder {
    /// `faspe://` instead of `fasp://`.
    pub fn scheme(mut self, scheme: Scheme) -> Self {
        self.url.scheme = scheme;
        self
    }

    /// The transfer user.
    pub fn user(mut self, user: &str) -> Self {
        self.url.user = Some(user.to_owned());
        self
    }

    /// The SSH port (default 33001).
    pub fn ssh_port(mut self, port: u16) -> Self {
        self.url.port = Some(port);
        self
    }

    /// The path (a file or directory, relative to the user's docroot).
    pub fn path(mut self, path: &str) -> Self {
        self.url.path = if path.is_empty() || path.starts_with('/') {
            path.to_owned()
        } else {
            format!("/{path}")
        };
        self
    }

    /// The transfer token.
    pub fn token(mut self, token: &str) -> Self {
        self.url.params.token = Some(token.to_owned());
        self
    }

    /// `auth=`: `false` to tell the client not to prompt for credentials.
    pub fn auth(mut self, auth: bool) -> Self {
        self.url.params.auth = Some(auth);
        self
    }

    /// `fallback=yes|no`.
    pub fn fallback(mut self, fallback: bool) -> Self {
        self.url.params.fallback = Some(fallback);
        self
    }

    /// `httpport=`.
    pub fn http_port(mut self, port: u16) -> Self {
        self.url.params.httpport = Some(port);
        self
    }

    /// `enc=`.
    pub fn enc(mut self, enc: Enc) -> Self {
        self.url.params.enc = Some(enc);
        self
    }

    /// Any other parameter, typed fields included, as it would be parsed.
    pub fn param(mut self, name: &str, value: &str) -> Result<Self, Error> {
        match self.url.params.set(name, value) {
            Ok(true) => Ok(self),
            Ok(false) => {
                self.url
                    .params
                    .other
                    .push((name.to_owned(), value.to_owned()));
                Ok(self)
            }
            Err(reason) => Err(Error::InvalidParam {
                name: name.to_owned(),
                value: value.to_owned(),
                reason,
            }),
        }
    }

    /// The Connect Server dir-listing rule, for `user`'s effective settings and the
    /// `<WEB>` element: a user who must encrypt gets `enc=<cipher>` and
    /// `httpport=<HttpsFallbackPort>`, others `enc=none` and
    /// `httpport=<HttpFallbackPort>`; `fallback=yes` when `HttpFallback="yes"`, and no
    /// fallback parameters at all otherwise. The SSH port is `<WEB SshPort>`.
    ///
    /// ```
    /// let conf = fallback_conf::Config::parse(r#"<CONF>
    ///   <WEB HttpFallback="yes" HttpFallbackPort="8080" HttpsFallbackPort="8443"/>
    /// </CONF>"#)?;
    /// let url = fallback_url::FaspUrl::builder("files.example.com")
    ///     .user("alice")
    ///     .path("/reports/q3.pdf")
    ///     .token("fbt1_example")
    ///     .fallback_for(&conf.user("alice", &[]), &conf.web().expect("a <WEB> element"))
    ///     .build();
    /// assert_eq!(url.params.fallback, Some(true));
    /// assert_eq!(url.params.httpport, Some(8080));
    /// assert!(url.to_string().starts_with("fasp://alice@files.example.com:33001/reports/q3.pdf?"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn fallback_for(mut self, user: &UserSettings, web: &WebSettings) -> Self {
        let enc = user
            .required_cipher()
            .and_then(Enc::from_cipher)
            .unwrap_or(Enc::None);
        self.url.params.enc = Some(enc);
        self.url.port = Some(web.ssh_port.value);
        if web.http_fallback.value {
            self.url.params.fallback = Some(true);
            self.url.params.httpport = Some(if enc.is_cipher() {
                web.https_fallback_port.value
            } else {
                web.http_fallback_port.value
            });
        } else {
            self.url.params.fallback = None;
            self.url.params.httpport = None;
        }
        self
    }

    /// The URL.
    pub fn build(self) -> FaspUrl {
        self.url
    }
}
