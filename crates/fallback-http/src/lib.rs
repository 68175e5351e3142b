//! The header values the transfer protocol reads, parsed strictly: byte ranges
//! (RFC 9110), entity-tag lists, tus `Upload-Metadata` and `Upload-Checksum`, unsigned
//! lengths and offsets, SHA-256 digests, `Host` (RFC 9112 §3.2) and transfer codings.
//! Pure functions of the text, with no HTTP stack under them, so the fuzzer reaches
//! them alone; the server (`fallback-server`) is their only user.
#![warn(missing_docs)]

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

/// Why a header value was refused; the message is for the client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HeaderError {
    /// `Upload-Metadata`: a value that is not base64.
    #[error("Upload-Metadata {0}: value is not base64")]
    MetadataBase64(String),
    /// `Upload-Metadata`: a value that is not UTF-8.
    #[error("Upload-Metadata {0}: value is not UTF-8")]
    MetadataUtf8(String),
    /// `Upload-Metadata`: an empty, repeated or malformed key.
    #[error("Upload-Metadata: bad or repeated key {0:?}")]
    MetadataKey(String),
    /// `Upload-Checksum` without `<algorithm> <base64>`.
    #[error("Upload-Checksum: write `<algorithm> <base64>`")]
    ChecksumForm,
    /// `Upload-Checksum`: a digest that is not base64.
    #[error("Upload-Checksum: bad base64")]
    ChecksumBase64,
    /// `Upload-Checksum`: a digest of the wrong size for its algorithm.
    #[error("Upload-Checksum: a {algorithm} digest is {bytes} bytes")]
    ChecksumSize {
        /// The algorithm named.
        algorithm: String,
        /// The size its digests have.
        bytes: usize,
    },
    /// `Upload-Checksum`: an algorithm not in [`CHECKSUM_ALGORITHMS`].
    #[error("Upload-Checksum: {0} is not supported ({CHECKSUM_ALGORITHMS} are)")]
    ChecksumAlgorithm(String),
    /// An entity-tag list that is not one (RFC 9110 §8.8.3).
    #[error("{0}")]
    EntityTags(&'static str),
    /// More than [`MAX_TAGS`] entity tags.
    #[error("more than {MAX_TAGS} entity tags")]
    TooManyTags,
    /// A SHA-256 that is neither 64 hex digits nor base64 of 32 bytes.
    #[error("sha256: {0}")]
    Sha256(&'static str),
    /// `Repr-Digest` / `Content-Digest` that is not an RFC 9530 dictionary, or whose
    /// `sha-256` member is not a 32-byte byte sequence.
    #[error("{0}: write `sha-256=:<base64 of 32 bytes>:` (RFC 9530)")]
    Digest(&'static str),
}

/// An unsigned decimal header value (`Content-Length`, `Upload-Length`,
/// `Upload-Offset`): digits only, no sign, no spaces, at most 19 digits, so it always
/// fits in a `u64`. Anything else is `None`.
pub fn parse_u64(s: &str) -> Option<u64> {
    if s.is_empty() || s.len() > 19 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// A position in a byte range: digits only (at most 40), saturating at `u64::MAX` (a
/// position past any file means the same as the largest one).
fn range_pos(s: &str) -> Option<u64> {
    if s.is_empty() || s.len() > 40 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(s.bytes().fold(0u64, |n, d| {
        n.saturating_mul(10).saturating_add(u64::from(d - b'0'))
    }))
}

/// A `Range` header that cannot be served: answer 416.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unsatisfiable;

/// Most ranges in one `Range` header; more is refused (416) rather than parsed.
pub const MAX_RANGES: usize = 100;

/// The one byte range to send of a file of `size` bytes, as inclusive `(first, last)`;
/// `Ok(None)` to send the whole file: another range unit (ignored, as RFC 9110 says),
/// several ranges (a server may ignore Range), or an empty file. A `bytes=` value that
/// does not parse (signs, junk, reversed, 20 digits, more than [`MAX_RANGES`]) or that
/// no byte of the file satisfies is [`Unsatisfiable`]: numbers from headers are never
/// guessed at.
///
/// # Errors
/// [`Unsatisfiable`], as above.
pub fn byte_range(value: &str, size: u64) -> Result<Option<(u64, u64)>, Unsatisfiable> {
    let Some(spec) = value
        .get(..6)
        .filter(|u| u.eq_ignore_ascii_case("bytes="))
        .and_then(|_| value.get(6..))
    else {
        return Ok(None);
    };
    let mut ranges = Vec::new();
    for part in spec.split(',') {
        let part = part.trim_matches([' ', '\t']);
        if ranges.len() == MAX_RANGES {
            return Err(Unsatisfiable);
        }
        let (first, last) = part.split_once('-').ok_or(Unsatisfiable)?;
        let range = if first.is_empty() {
            // Suffix: the last N bytes.
            let n = range_pos(last).ok_or(Unsatisfiable)?;
            if n == 0 {
                return Err(Unsatisfiable);
            }
            (size > 0).then(|| (size.saturating_sub(n), size - 1))
        } else {
            let start = range_pos(first).ok_or(Unsatisfiable)?;
            let end = if last.is_empty() {
                u64::MAX
            } else {
                range_pos(last).ok_or(Unsatisfiable)?
            };
            if end < start {
                return Err(Unsatisfiable);
            }
            (start < size).then(|| (start, end.min(size - 1)))
        };
        ranges.push(range);
    }
    if size == 0 {
        return Ok(None);
    }
    let usable: Vec<(u64, u64)> = ranges.into_iter().flatten().collect();
    match usable.as_slice() {
        [] => Err(Unsatisfiable),
        [one] => Ok(Some(*one)),
        _ => Ok(None),
    }
}

/// tus `Upload-Metadata`: `key base64,key base64,key` (a value is optional). Keys are
/// unique and non-empty; values decode to UTF-8.
///
/// # Errors
/// What is wrong, for the client.
pub fn upload_metadata(v: &str) -> Result<Vec<(String, String)>, HeaderError> {
    let mut out: Vec<(String, String)> = Vec::new();
    for pair in v.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let mut it = pair.split(' ');
        let key = it.next().unwrap_or_default();
        let value = match it.next() {
            None => String::new(),
            Some(b64) => {
                let bytes = STANDARD
                    .decode(b64)
                    .map_err(|_| HeaderError::MetadataBase64(key.to_owned()))?;
                String::from_utf8(bytes).map_err(|_| HeaderError::MetadataUtf8(key.to_owned()))?
            }
        };
        if key.is_empty() || it.next().is_some() || out.iter().any(|(k, _)| k == key) {
            return Err(HeaderError::MetadataKey(key.to_owned()));
        }
        out.push((key.to_owned(), value));
    }
    Ok(out)
}

/// tus `Upload-Checksum: <algorithm> <base64>`, the algorithm one of
/// [`CHECKSUM_ALGORITHMS`] (any case), the digest of its exact size.
///
/// # Errors
/// What is wrong, for the client.
pub fn upload_checksum(v: &str) -> Result<Checksum, HeaderError> {
    let (algo, b64) = v.split_once(' ').ok_or(HeaderError::ChecksumForm)?;
    let bytes = STANDARD
        .decode(b64.trim())
        .map_err(|_| HeaderError::ChecksumBase64)?;
    let size = |n: usize| HeaderError::ChecksumSize {
        algorithm: algo.to_owned(),
        bytes: n,
    };
    if algo.eq_ignore_ascii_case("sha256") {
        bytes.try_into().map(Checksum::Sha256).map_err(|_| size(32))
    } else if algo.eq_ignore_ascii_case("sha1") {
        bytes.try_into().map(Checksum::Sha1).map_err(|_| size(20))
    } else if algo.eq_ignore_ascii_case("md5") {
        bytes.try_into().map(Checksum::Md5).map_err(|_| size(16))
    } else {
        Err(HeaderError::ChecksumAlgorithm(algo.to_owned()))
    }
}

/// The algorithms [`upload_checksum`] reads, as `Tus-Checksum-Algorithm` lists them
/// (the engine verifies each).
pub const CHECKSUM_ALGORITHMS: &str = "sha1,md5,sha256";

/// The digest an `Upload-Checksum` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Checksum {
    /// SHA-1 (tuspy's only algorithm).
    Sha1([u8; 20]),
    /// MD5.
    Md5([u8; 16]),
    /// SHA-256.
    Sha256([u8; 32]),
}

/// An `If-Match` / `If-None-Match` value (RFC 9110 §13.1.1, §8.8.3): `*`, or a list of
/// entity tags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntityTags {
    /// `*`: any current representation.
    Any,
    /// The tags, each `(weak, opaque-tag with its quotes)`.
    List(Vec<(bool, String)>),
}

/// Most entity tags read from one header.
pub const MAX_TAGS: usize = 100;

impl EntityTags {
    /// Whether `etag` (a strong tag with its quotes, as the server sends it) is in the
    /// list: `strong` comparison never matches a weak tag; weak comparison compares the
    /// opaque tags only.
    pub fn matches(&self, etag: &str, strong: bool) -> bool {
        match self {
            EntityTags::Any => true,
            EntityTags::List(tags) => tags
                .iter()
                .any(|(weak, tag)| tag == etag && !(strong && *weak)),
        }
    }
}

/// Parses `*` or `#entity-tag` (`"x"`, `W/"x"`, separated by commas and optional
/// spaces; a tag is any visible characters but `"`).
///
/// # Errors
/// What is wrong, for the client.
pub fn entity_tags(v: &str) -> Result<EntityTags, HeaderError> {
    let v = v.trim_matches([' ', '\t']);
    if v == "*" {
        return Ok(EntityTags::Any);
    }
    let mut tags = Vec::new();
    let mut rest = v;
    loop {
        rest = rest.trim_start_matches([' ', '\t']);
        let (weak, r) = match rest.strip_prefix("W/") {
            Some(r) => (true, r),
            None => (false, rest),
        };
        let r = r.strip_prefix('"').ok_or(HeaderError::EntityTags(
            "entity tags are quoted: \"tag\" or W/\"tag\"",
        ))?;
        let end = r.find('"').ok_or(HeaderError::EntityTags(
            "an entity tag lacks its closing quote",
        ))?;
        let opaque = &r[..end];
        if !opaque
            .bytes()
            .all(|b| b == 0x21 || (0x23..=0x7e).contains(&b) || b >= 0x80)
        {
            return Err(HeaderError::EntityTags(
                "an entity tag holds a character it may not",
            ));
        }
        tags.push((weak, format!("\"{opaque}\"")));
        if tags.len() > MAX_TAGS {
            return Err(HeaderError::TooManyTags);
        }
        rest = r[end + 1..].trim_start_matches([' ', '\t']);
        match rest.strip_prefix(',') {
            Some(r) => rest = r,
            None if rest.is_empty() => return Ok(EntityTags::List(tags)),
            None => {
                return Err(HeaderError::EntityTags(
                    "entity tags are separated by commas",
                ));
            }
        }
        if rest.trim_matches([' ', '\t']).is_empty() {
            return Ok(EntityTags::List(tags));
        }
    }
}

/// A SHA-256 given as 64 hex digits or as base64 (metadata `sha256`).
///
/// # Errors
/// What is wrong, for the client.
pub fn sha256_digest(v: &str) -> Result<[u8; 32], HeaderError> {
    let bytes: Vec<u8> = if v.len() == 64 && v.bytes().all(|b| b.is_ascii_hexdigit()) {
        hex::decode(v).map_err(|_| HeaderError::Sha256("bad hex"))?
    } else {
        STANDARD
            .decode(v)
            .map_err(|_| HeaderError::Sha256("hex or base64"))?
    };
    bytes
        .try_into()
        .map_err(|_| HeaderError::Sha256("not 32 bytes"))
}

/// The `sha-256` member of an RFC 9530 `Repr-Digest` or `Content-Digest` value (a
/// structured-field dictionary, RFC 8941: `sha-256=:<base64>:, sha-512=:…:`), or `None`
/// when the sender gave other algorithms only (a recipient may ignore those). Members
/// may carry parameters; a repeated key counts as its last value (RFC 8941 §4.2.2).
///
/// # Errors
/// A value that is not such a dictionary, or a `sha-256` that is not 32 bytes.
pub fn sha256_member(v: &str) -> Result<Option<[u8; 32]>, HeaderError> {
    const WHAT: &str = "digest";
    let bad = || HeaderError::Digest(WHAT);
    let mut found = None;
    if v.trim_matches([' ', '\t']).is_empty() {
        return Err(bad());
    }
    // Base64 byte sequences hold no comma, so members split on commas.
    for member in v.split(',') {
        let member = member.trim_matches([' ', '\t']);
        let (key, rest) = member.split_once('=').ok_or_else(bad)?;
        let key_ok = key
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_lowercase() || b == b'*')
            && key
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_-.*".contains(&b));
        let value = rest.strip_prefix(':').ok_or_else(bad)?;
        let (b64, params) = value.split_once(':').ok_or_else(bad)?;
        if !key_ok || !(params.is_empty() || params.starts_with(';')) {
            return Err(bad());
        }
        let bytes = STANDARD.decode(b64).map_err(|_| bad())?;
        if key == "sha-256" {
            found = Some(bytes.try_into().map_err(|_| bad())?);
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_dictionaries() {
        let d = STANDARD.encode([7u8; 32]);
        let other = STANDARD.encode([1u8; 64]);
        assert_eq!(sha256_member(&format!("sha-256=:{d}:")), Ok(Some([7; 32])));
        assert_eq!(
            sha256_member(&format!("sha-512=:{other}:,  sha-256=:{d}:;x=1")),
            Ok(Some([7; 32]))
        );
        assert_eq!(sha256_member(&format!("sha-512=:{other}:")), Ok(None));
        for bad in [
            "",
            "sha-256",
            "sha-256=abc",
            "sha-256=:AAAA:",
            "sha-256=:not base64:",
            "SHA-256=:AAAA:",
            "sha-256=:AAAA",
            "sha-256=:AAAA:x",
        ] {
            assert!(sha256_member(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn ranges() {
        let r = |v: &str| byte_range(v, 12);
        assert_eq!(r("bytes=0-0"), Ok(Some((0, 0))));
        assert_eq!(r("bytes=-5"), Ok(Some((7, 11))));
        assert_eq!(r("bytes=-50"), Ok(Some((0, 11))));
        assert_eq!(r("bytes=3-"), Ok(Some((3, 11))));
        assert_eq!(r("bytes=0-18446744073709551615"), Ok(Some((0, 11))));
        assert_eq!(r("bytes=0-99999999999999999999999"), Ok(Some((0, 11))));
        assert_eq!(r("BYTES=1-2"), Ok(Some((1, 2))));
        assert_eq!(r("bytes=0-1,3-4"), Ok(None));
        assert_eq!(r("bytes=0-1, 20-30"), Ok(Some((0, 1))));
        assert_eq!(r("items=0-1"), Ok(None));
        assert_eq!(r(""), Ok(None));
        for bad in [
            "bytes=5-2",
            "bytes=-0",
            "bytes=+1-2",
            "bytes=abc",
            "bytes=",
            "bytes=-",
            "bytes=1-2-3",
            "bytes=12-",
            "bytes=99999999999999999999-",
            "bytes=18446744073709551616-",
            "bytes= 1 - 2",
            &format!("bytes={}-", "9".repeat(41)),
        ] {
            assert_eq!(r(bad), Err(Unsatisfiable), "{bad}");
        }
        let many = format!("bytes={}", vec!["0-0"; MAX_RANGES + 1].join(","));
        assert_eq!(r(&many), Err(Unsatisfiable));
        assert_eq!(byte_range("bytes=0-5", 0), Ok(None));
        assert_eq!(byte_range("bytes=-5", 0), Ok(None));
    }

    #[test]
    fn numbers() {
        assert_eq!(parse_u64("0"), Some(0));
        assert_eq!(
            parse_u64("9999999999999999999"),
            Some(9_999_999_999_999_999_999)
        );
        for bad in [
            "",
            "-1",
            "+5",
            " 5",
            "5 ",
            "18446744073709551615",
            "1e3",
            "0x10",
        ] {
            assert_eq!(parse_u64(bad), None, "{bad}");
        }
    }

    #[test]
    fn metadata_and_checksums() {
        assert_eq!(
            upload_metadata("filename d29ybGQ=,is_confidential,path YS9i").unwrap(),
            [
                ("filename".to_owned(), "world".to_owned()),
                ("is_confidential".to_owned(), String::new()),
                ("path".to_owned(), "a/b".to_owned())
            ]
        );
        for bad in [
            "filename !!!",
            "a YQ==,a YQ==",
            "k v w",
            "k /w==",
            "a  YQ==",
        ] {
            assert!(upload_metadata(bad).is_err(), "{bad}");
        }
        let d = [7u8; 32];
        let b64 = STANDARD.encode(d);
        assert_eq!(
            upload_checksum(&format!("sha256 {b64}")),
            Ok(Checksum::Sha256(d))
        );
        assert_eq!(
            upload_checksum(&format!("SHA256 {b64}")),
            Ok(Checksum::Sha256(d))
        );
        // A 32-byte digest is no md5 or sha1; the sizes are checked per algorithm.
        assert!(upload_checksum(&format!("md5 {b64}")).is_err());
        assert!(upload_checksum(&format!("sha1 {b64}")).is_err());
        assert_eq!(
            upload_checksum("sha1 2jmj7l5rSw0yVb/vlWAYkK/YBwk="),
            Ok(Checksum::Sha1([
                0xda, 0x39, 0xa3, 0xee, 0x5e, 0x6b, 0x4b, 0x0d, 0x32, 0x55, 0xbf, 0xef, 0x95, 0x60,
                0x18, 0x90, 0xaf, 0xd8, 0x07, 0x09
            ]))
        );
        assert!(matches!(
            upload_checksum("md5 1B2M2Y8AsgTpgAmY7PhCfg=="),
            Ok(Checksum::Md5(_))
        ));
        assert!(upload_checksum("crc32 AAAAAA==").is_err());
        assert!(upload_checksum("sha256 AAAA").is_err());
        assert!(upload_checksum("sha256").is_err());
        assert_eq!(sha256_digest(&"07".repeat(32)), Ok(d));
        assert_eq!(sha256_digest(&b64), Ok(d));
        assert!(sha256_digest("zz").is_err());
    }

    #[test]
    fn entity_tag_lists() {
        let tag = "\"abc\"";
        assert_eq!(entity_tags("*"), Ok(EntityTags::Any));
        let l = entity_tags("W/\"abc\", \"x,y\"").unwrap();
        assert!(l.matches(tag, false));
        assert!(
            !l.matches(tag, true),
            "strong comparison never matches a weak tag"
        );
        assert!(l.matches("\"x,y\"", true));
        assert!(entity_tags("\"abc\"").unwrap().matches(tag, true));
        assert!(!entity_tags("\"abd\"").unwrap().matches(tag, false));
        for bad in ["abc", "\"abc", "W/abc", "\"a\" \"b\"", "", "\"a b\""] {
            assert!(entity_tags(bad).is_err(), "{bad:?}");
        }
    }

    proptest::proptest! {
        #[test]
        fn entity_tags_never_panic_and_round_trip(v in "[ -~]{0,80}") {
            if let Ok(EntityTags::List(tags)) = entity_tags(&v) {
                let text: Vec<String> = tags
                    .iter()
                    .map(|(w, t)| format!("{}{t}", if *w { "W/" } else { "" }))
                    .collect();
                proptest::prop_assert_eq!(
                    entity_tags(&text.join(", ")),
                    Ok(EntityTags::List(tags))
                );
            }
        }
    }
}

/// Whether `v` is a valid `Host` field value (RFC 9110 §7.2, RFC 3986 §3.2.2):
/// `uri-host [ ":" port ]`, where the host is an IP literal in brackets, or a reg-name
/// (unreserved, sub-delims, percent-encoded octets; IPv4 addresses are reg-names
/// syntactically), and the port is digits. Empty is valid (RFC 9112 §3.2: the target
/// had no authority).
pub fn valid_host(v: &[u8]) -> bool {
    let (host, port) = if v.first() == Some(&b'[') {
        let Some(end) = v.iter().position(|&b| b == b']') else {
            return false;
        };
        let literal = &v[1..end];
        let ok = !literal.is_empty()
            && literal
                .iter()
                .all(|b| b.is_ascii_hexdigit() || matches!(b, b':' | b'.'))
            && literal.contains(&b':');
        // IPvFuture (`v1.x`) is so rare that refusing it is the safer choice.
        if !ok {
            return false;
        }
        match &v[end + 1..] {
            [] => return true,
            [b':', port @ ..] => (&v[..0], port),
            _ => return false,
        }
    } else {
        match v.iter().rposition(|&b| b == b':') {
            Some(i) => (&v[..i], &v[i + 1..]),
            None => (v, &v[v.len()..]),
        }
    };
    if !port.iter().all(u8::is_ascii_digit) {
        return false;
    }
    let mut i = 0;
    while i < host.len() {
        let b = host[i];
        if b == b'%' {
            if !(host.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
                && host.get(i + 2).is_some_and(u8::is_ascii_hexdigit))
            {
                return false;
            }
            i += 3;
            continue;
        }
        let unreserved = b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~');
        let sub_delim = matches!(
            b,
            b'!' | b'$' | b'&' | b'\'' | b'(' | b')' | b'*' | b'+' | b',' | b';' | b'='
        );
        if !(unreserved || sub_delim) {
            return false;
        }
        i += 1;
    }
    true
}

/// What a request's `Transfer-Encoding` field lines ask for (RFC 9112 §6.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransferCoding {
    /// `chunked` alone: the one coding the server decodes.
    Chunked,
    /// A coding other than `chunked` (named, lowercase): 501, nothing stored.
    Unsupported(String),
    /// Not a well-formed list, or `chunked` not last, or given twice: 400.
    Invalid,
}

/// Reads the `Transfer-Encoding` field lines of a request, joined as one list.
pub fn transfer_coding<'a>(lines: impl IntoIterator<Item = &'a [u8]>) -> TransferCoding {
    let mut codings: Vec<String> = Vec::new();
    for line in lines {
        let Ok(text) = std::str::from_utf8(line) else {
            return TransferCoding::Invalid;
        };
        for item in text.split(',') {
            let item = item.trim_matches([' ', '\t']);
            if item.is_empty() {
                continue;
            }
            // A coding may carry parameters (`;q=`); its name is what matters.
            let name = item
                .split(';')
                .next()
                .unwrap_or("")
                .trim_matches([' ', '\t']);
            if name.is_empty()
                || !name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
            {
                return TransferCoding::Invalid;
            }
            codings.push(name.to_ascii_lowercase());
        }
    }
    match codings.as_slice() {
        [] => TransferCoding::Invalid,
        [only] if only == "chunked" => TransferCoding::Chunked,
        [.., last] if last != "chunked" => TransferCoding::Invalid,
        all => match all.iter().find(|c| *c != "chunked") {
            Some(other) => TransferCoding::Unsupported(other.clone()),
            // `chunked, chunked`: applied twice (RFC 9112 §7: MUST NOT).
            None => TransferCoding::Invalid,
        },
    }
}
