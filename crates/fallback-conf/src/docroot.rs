//! Docroots: a local directory, or an object-storage URI as the real product writes it.
//!
//! The product accepts, in `<absolute>`,
//! `s3://[ACCESS_ID:SECRET@]HOST[:PORT]/BUCKET[/PREFIX][?storage-class=…&server-side-encryption=AES256]`
//! with every part URL-encoded. `s3.amazonaws.com` is AWS; any other host is an
//! S3-compatible endpoint. Without credentials in the URI, the standard AWS chain
//! applies (environment, profile, instance role). Credentials are never shown: the
//! [`Display`](std::fmt::Display) form of a docroot, what logs, errors and `config show`
//! print, replaces them with `<redacted>`.

use std::fmt;
use std::path::{Path, PathBuf};

use percent_encoding::percent_decode_str;

use crate::Secret;

/// Where a user's files are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Docroot {
    /// A directory on this host (absolute).
    Local(PathBuf),
    /// A bucket (and key prefix) in S3 or an S3-compatible store.
    S3(S3Root),
}

impl Docroot {
    /// The directory, for a local docroot.
    pub fn as_local(&self) -> Option<&Path> {
        match self {
            Docroot::Local(p) => Some(p),
            Docroot::S3(_) => None,
        }
    }

    /// The bucket, for an object-storage docroot.
    pub fn as_s3(&self) -> Option<&S3Root> {
        match self {
            Docroot::S3(s) => Some(s),
            Docroot::Local(_) => None,
        }
    }
}

impl From<PathBuf> for Docroot {
    fn from(p: PathBuf) -> Self {
        Docroot::Local(p)
    }
}

impl fmt::Display for Docroot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Docroot::Local(p) => write!(f, "{}", p.display()),
            Docroot::S3(s) => s.fmt(f),
        }
    }
}

impl serde::Serialize for Docroot {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// The host that means AWS itself (virtual regions are chosen by `AWS_REGION`).
pub const AWS_HOST: &str = "s3.amazonaws.com";

/// Credentials written in an `s3://` docroot.
#[derive(Clone, PartialEq, Eq)]
pub struct S3Credentials {
    /// The access key id.
    pub access_key_id: Secret,
    /// The secret access key.
    pub secret_access_key: Secret,
}

impl fmt::Debug for S3Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("S3Credentials(<redacted>)")
    }
}

/// An `s3://` docroot, parsed and decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Root {
    /// The endpoint's host name or address (IPv6 without brackets).
    pub host: String,
    /// The endpoint's port, when written.
    pub port: Option<u16>,
    /// The bucket.
    pub bucket: String,
    /// The key prefix under which the docroot lives, decoded, its segments joined by
    /// `/`, without a leading or trailing `/`; empty for the whole bucket. It may still
    /// hold `$(name)` until [`S3Root::for_user`].
    pub prefix: String,
    /// Credentials written in the URI; `None`: the standard AWS chain.
    pub credentials: Option<S3Credentials>,
    /// `?storage-class=`: the class new objects are stored in.
    pub storage_class: Option<String>,
    /// `?server-side-encryption=`: `AES256` (S3-managed keys) when asked.
    pub server_side_encryption: Option<String>,
    /// `?allow-http=true`: the endpoint is plain HTTP (only when asked, here or with
    /// `AWS_ALLOW_HTTP=true`).
    pub allow_http: bool,
}

/// The storage classes S3 documents for `x-amz-storage-class`.
pub const STORAGE_CLASSES: &[&str] = &[
    "STANDARD",
    "REDUCED_REDUNDANCY",
    "STANDARD_IA",
    "ONEZONE_IA",
    "INTELLIGENT_TIERING",
    "GLACIER",
    "DEEP_ARCHIVE",
    "GLACIER_IR",
    "EXPRESS_ONEZONE",
];

impl S3Root {
    /// Parses an `s3://` URI. Errors never quote the credentials.
    ///
    /// ```
    /// use fallback_conf::S3Root;
    ///
    /// let r = S3Root::parse("s3://AKID:se%2Fcret@s3.amazonaws.com/bucket/users/$(name)?storage-class=STANDARD")?;
    /// assert_eq!(r.bucket, "bucket");
    /// assert_eq!(r.prefix, "users/$(name)");
    /// assert_eq!(r.credentials.as_ref().unwrap().secret_access_key.expose(), "se/cret");
    /// assert!(r.is_aws());
    /// assert_eq!(r.to_string(), "s3://<redacted>@s3.amazonaws.com/bucket/users/$(name)?storage-class=STANDARD");
    /// # Ok::<(), String>(())
    /// ```
    pub fn parse(uri: &str) -> Result<Self, String> {
        let Some(rest) = uri.strip_prefix("s3://") else {
            return Err("an object-storage docroot starts with s3:// (lower case)".to_owned());
        };
        // Nothing of the URI is quoted back in errors: a mistyped one (a secret's `/`
        // or `?` left unencoded, a missing `@`) would put the credentials anywhere.
        // The authority ends at the first `/` or `?`; its user information at its
        // last `@`, and no `@` may follow.
        let end = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(end);
        if tail.contains('@') {
            return Err(
                "an s3:// docroot with an @ after the host: URL-encode `/`, `?` and `@` in \
                 the credentials (%2F, %3F, %40) and in the path"
                    .to_owned(),
            );
        }
        let (path, query) = tail.split_once('?').unwrap_or((tail, ""));
        let (userinfo, hostport) = match authority.rfind('@') {
            Some(at) => (Some(&authority[..at]), &authority[at + 1..]),
            None => (None, authority),
        };
        let credentials = userinfo.map(parse_userinfo).transpose()?;
        let (host, port) = parse_hostport(hostport)?;
        let mut segments = path.split('/').filter(|s| !s.is_empty());
        let bucket = decode(segments.next().unwrap_or(""), "bucket")?;
        if bucket.is_empty() {
            return Err(
                "the s3:// docroot names no bucket: write s3://HOST/BUCKET[/PREFIX]".to_owned(),
            );
        }
        check_bucket(&bucket)?;
        let mut prefix = Vec::new();
        for s in segments {
            let seg = decode(s, "key prefix")?;
            if seg == "." || seg == ".." {
                return Err(
                    "the s3:// docroot's key prefix has a `.` or `..` segment; write the \
                     prefix without it"
                        .to_owned(),
                );
            }
            if seg.contains('/') || seg.chars().any(char::is_control) {
                return Err(
                    "the s3:// docroot's key prefix has an encoded `/` or a control \
                     character in one segment; write segments as plain names"
                        .to_owned(),
                );
            }
            prefix.push(seg);
        }
        let mut root = S3Root {
            host,
            port,
            bucket,
            prefix: prefix.join("/"),
            credentials,
            storage_class: None,
            server_side_encryption: None,
            allow_http: false,
        };
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let v = decode(v, "query value")?;
            match k {
                "storage-class" => {
                    if !STORAGE_CLASSES.contains(&v.as_str()) {
                        return Err(format!(
                            "the s3:// docroot's storage-class is not an S3 storage class; \
                             expected one of: {}",
                            STORAGE_CLASSES.join(", ")
                        ));
                    }
                    root.storage_class = Some(v);
                }
                "server-side-encryption" => {
                    if v != "AES256" {
                        return Err(
                            "the s3:// docroot's server-side-encryption is not AES256, the one \
                             the product documents (S3-managed keys)"
                                .to_owned(),
                        );
                    }
                    root.server_side_encryption = Some(v);
                }
                "allow-http" => {
                    root.allow_http = match v.as_str() {
                        "true" => true,
                        "false" => false,
                        _ => {
                            return Err("the s3:// docroot's allow-http is neither true nor false"
                                .to_owned());
                        }
                    };
                }
                _ => {
                    return Err(
                        "the s3:// docroot has an option fallback does not know; known: \
                         storage-class, server-side-encryption, allow-http"
                            .to_owned(),
                    );
                }
            }
        }
        Ok(root)
    }

    /// Whether this is AWS itself (`s3.amazonaws.com`), not an S3-compatible endpoint.
    pub fn is_aws(&self) -> bool {
        self.host.eq_ignore_ascii_case(AWS_HOST) && self.port.is_none()
    }

    /// The endpoint URL for an S3-compatible store (`None` for AWS itself): `https`,
    /// or `http` when [`S3Root::allow_http`] is set.
    pub fn endpoint(&self) -> Option<String> {
        if self.is_aws() {
            return None;
        }
        let scheme = if self.allow_http { "http" } else { "https" };
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        Some(match self.port {
            Some(p) => format!("{scheme}://{host}:{p}"),
            None => format!("{scheme}://{host}"),
        })
    }

    /// This docroot for `user`: `$(name)` in the prefix becomes the user's name, which
    /// must be one plain name (so it cannot reach another user's keys).
    pub fn for_user(&self, user: &str) -> Result<Self, String> {
        if !self.prefix.contains("$(") {
            return Ok(self.clone());
        }
        let mut out = self.clone();
        let segs = self
            .prefix
            .split('/')
            .map(|seg| {
                if seg.contains("$(home)") {
                    return Err(format!(
                        "{self} uses $(home), which has no meaning in an s3:// docroot \
                         (a bucket has no home directories): use $(name)"
                    ));
                }
                let s = crate::resolve::substitute(seg, user, None)?;
                Ok(s.to_string_lossy().into_owned())
            })
            .collect::<Result<Vec<_>, String>>()?;
        out.prefix = segs.join("/");
        Ok(out)
    }
}

impl fmt::Display for S3Root {
    /// The URI with credentials redacted and parts re-encoded where needed.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use percent_encoding::{AsciiSet, CONTROLS, utf8_percent_encode};
        const PART: &AsciiSet = &CONTROLS
            .add(b' ')
            .add(b'/')
            .add(b'?')
            .add(b'#')
            .add(b'%')
            .add(b'@')
            .add(b'&');
        f.write_str("s3://")?;
        if self.credentials.is_some() {
            f.write_str("<redacted>@")?;
        }
        if self.host.contains(':') {
            write!(f, "[{}]", self.host)?;
        } else {
            f.write_str(&self.host)?;
        }
        if let Some(p) = self.port {
            write!(f, ":{p}")?;
        }
        write!(f, "/{}", utf8_percent_encode(&self.bucket, PART))?;
        for seg in self.prefix.split('/').filter(|s| !s.is_empty()) {
            write!(f, "/{}", utf8_percent_encode(seg, PART))?;
        }
        let mut sep = '?';
        if let Some(c) = &self.storage_class {
            write!(f, "{sep}storage-class={c}")?;
            sep = '&';
        }
        if let Some(e) = &self.server_side_encryption {
            write!(f, "{sep}server-side-encryption={e}")?;
            sep = '&';
        }
        if self.allow_http {
            write!(f, "{sep}allow-http=true")?;
        }
        Ok(())
    }
}

fn decode(s: &str, what: &str) -> Result<String, String> {
    percent_decode_str(s)
        .decode_utf8()
        .map(std::borrow::Cow::into_owned)
        .map_err(|_| format!("the s3:// docroot's {what} is not UTF-8 once decoded"))
}

fn parse_userinfo(info: &str) -> Result<S3Credentials, String> {
    // Nothing of the user information is ever quoted back.
    let Some((id, secret)) = info.split_once(':') else {
        return Err(
            "the s3:// docroot's credentials have no `:`: write ACCESS_ID:SECRET@ (URL-encoded), \
             or leave them out to use the AWS credential chain"
                .to_owned(),
        );
    };
    let id = decode(id, "access id")?;
    let secret = decode(secret, "secret")?;
    if id.is_empty() || secret.is_empty() {
        return Err(
            "the s3:// docroot's access id or secret is empty: write both, or leave the \
             credentials out to use the AWS credential chain"
                .to_owned(),
        );
    }
    Ok(S3Credentials {
        access_key_id: Secret::new(id),
        secret_access_key: Secret::new(secret),
    })
}

fn parse_hostport(hp: &str) -> Result<(String, Option<u16>), String> {
    let (host, port) = if let Some(v6) = hp.strip_prefix('[') {
        let Some((h, after)) = v6.split_once(']') else {
            return Err("the s3:// docroot's host opens [ without closing it".to_owned());
        };
        if h.parse::<std::net::Ipv6Addr>().is_err() {
            return Err("the s3:// docroot's [host] is not an IPv6 address".to_owned());
        }
        match after {
            "" => (h, None),
            p => match p.strip_prefix(':') {
                Some(p) => (h, Some(p)),
                None => {
                    return Err(
                        "the s3:// docroot has something other than :PORT after its \
                                [host]"
                            .to_owned(),
                    );
                }
            },
        }
    } else {
        match hp.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (hp, None),
        }
    };
    // Only a bracketed IPv6 address has `:` in it.
    let v6 = hp.starts_with('[');
    if host.is_empty()
        || !host.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_') || (v6 && b == b':')
        })
    {
        return Err(
            "the s3:// docroot's host is not a host name or address (only a bracketed IPv6 \
             address has `:`; credentials go before an `@`)"
                .to_owned(),
        );
    }
    let port = match port {
        None => None,
        Some(p) => match p.parse::<u16>() {
            Ok(n) if n > 0 => Some(n),
            _ => {
                return Err(
                    "the s3:// docroot's port is not a number from 1 to 65535 (credentials \
                     go before an `@`, their `/` encoded as %2F)"
                        .to_owned(),
                );
            }
        },
    };
    Ok((host.to_owned(), port))
}

fn check_bucket(b: &str) -> Result<(), String> {
    // S3's rules (3 to 63 of a-z 0-9 . -), widened to the legacy names some stores
    // still serve (upper case, `_`, up to 255).
    if b.len() > 255
        || !b
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'-' | b'_'))
    {
        return Err(
            "the s3:// docroot's bucket is not a bucket name (letters, digits, `.`, `-` and \
             `_`)"
                .to_owned(),
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_and_options() {
        let r = S3Root::parse(
            "s3://127.0.0.1:9000/b/p/q?allow-http=true&server-side-encryption=AES256",
        )
        .unwrap();
        assert_eq!(r.endpoint().as_deref(), Some("http://127.0.0.1:9000"));
        assert_eq!(r.prefix, "p/q");
        assert!(r.credentials.is_none());
        assert_eq!(
            r.to_string(),
            "s3://127.0.0.1:9000/b/p/q?server-side-encryption=AES256&allow-http=true"
        );
        let v6 = S3Root::parse("s3://[::1]:9000/b").unwrap();
        assert_eq!(v6.host, "::1");
        assert_eq!(v6.endpoint().as_deref(), Some("https://[::1]:9000"));
    }

    #[test]
    fn errors_never_quote_credentials() {
        for bad in [
            "s3://AKIDXX:SeCrEtXX@host:notaport/b",
            "s3://AKIDXX:Se/CrEtXX@host/b",
            "s3://AKIDXXSeCrEtXX@host/b",
            "s3://AKIDXX:SeCrEtXX@host/",
            "s3://AKIDXX:SeCrEtXX@host/b?x=1",
            "s3://AKIDXX:SeCrEtXX@ho st/b",
            "s3://AKIDXX:%ffSeCrEtXX@host/b",
        ] {
            let e = S3Root::parse(bad).unwrap_err();
            assert!(!e.contains("SeCrEt") && !e.contains("AKID"), "{bad}: {e}");
        }
    }

    #[test]
    fn the_user_name_stays_one_segment() {
        let r = S3Root::parse("s3://h/b/home/$(name)/files").unwrap();
        assert_eq!(r.for_user("alice").unwrap().prefix, "home/alice/files");
        for bad in ["..", ".", "a/b", ""] {
            assert!(r.for_user(bad).is_err(), "{bad:?}");
        }
        let home = S3Root::parse("s3://h/b/$(home)").unwrap();
        assert!(home.for_user("alice").unwrap_err().contains("s3://"));
    }
}
