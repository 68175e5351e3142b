//! The adversarial suite: requests that file servers keep getting wrong, sent raw to a
//! real fallbackd (a normal client would clean most of them up). Each case asserts its
//! exact status; after each, the server still serves, no file appeared or changed in
//! the docroot but the case's own, and at the end nothing outside the docroot was read
//! or written.
//!
//! The catalogue in `docs/security.md` is generated from this table
//! (`FALLBACK_BLESS=1 cargo nextest run -p fallbackd adversarial`), and the test fails
//! when the two disagree.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::{Duration, UNIX_EPOCH};

use fallback_token::{Form, Key, Token};

use crate::{Server, download_token, key, tus_create, upload_token};

/// What a case needs: where, and the credentials it abuses.
struct Ctx {
    addr: SocketAddr,
    /// Download token for the whole docroot.
    all: String,
    /// Download token for `/pub` only.
    pub_: String,
    /// Upload token for `/in`.
    up: String,
    /// Upload token of another user, for `/in`.
    bob_up: String,
    /// Download token of carol, who must encrypt.
    carol: String,
    expired: String,
    future: String,
    foreign: String,
    /// Path of an upload in progress (alice, 10 bytes, offset 0).
    upload: String,
}

struct Case {
    id: &'static str,
    area: &'static str,
    what: &'static str,
    /// The status, or 0 for "the connection is closed without a response".
    expect: u16,
    /// A file (relative to the docroot) the case legitimately creates or replaces.
    writes: Option<&'static str>,
    /// Text the response must not contain.
    hides: &'static [&'static str],
    /// Close the sending side after the request (a body that ends short).
    half_close: bool,
    req: fn(&Ctx) -> Vec<u8>,
}

fn req(method: &str, target: &str, headers: &[String], body: &[u8]) -> Vec<u8> {
    let mut out = format!("{method} {target} HTTP/1.1\r\nHost: 127.0.0.1\r\n");
    for h in headers {
        out.push_str(h);
        out.push_str("\r\n");
    }
    out.push_str("Connection: close\r\n\r\n");
    let mut out = out.into_bytes();
    out.extend_from_slice(body);
    out
}

fn auth(t: &str) -> String {
    format!("Authorization: Bearer {t}")
}

fn get(target: &str, token: &str) -> Vec<u8> {
    req("GET", target, &[auth(token)], b"")
}

fn get_range(range: &str, c: &Ctx) -> Vec<u8> {
    req(
        "GET",
        "/files/pub/a.txt",
        &[auth(&c.all), format!("Range: {range}")],
        b"",
    )
}

fn put(target: &str, token: &str, extra: &[String], body: &[u8]) -> Vec<u8> {
    let mut h = vec![auth(token), format!("Content-Length: {}", body.len())];
    h.extend_from_slice(extra);
    req("PUT", target, &h, body)
}

fn tus_post(c: &Ctx, extra: &[&str]) -> Vec<u8> {
    let mut h = vec![auth(&c.up), "Tus-Resumable: 1.0.0".to_owned()];
    h.extend(extra.iter().map(|s| (*s).to_owned()));
    req("POST", "/uploads", &h, b"")
}

fn patch(target: &str, token: &str, extra: &[&str], body: &[u8]) -> Vec<u8> {
    let mut h = vec![
        auth(token),
        "Tus-Resumable: 1.0.0".to_owned(),
        format!("Content-Length: {}", body.len()),
    ];
    h.extend(extra.iter().map(|s| (*s).to_owned()));
    req("PATCH", target, &h, body)
}

const OCTET: &str = "Content-Type: application/offset+octet-stream";

/// Raw bytes, for framing cases.
fn raw(text: &str) -> Vec<u8> {
    text.as_bytes().to_vec()
}

#[allow(clippy::too_many_lines)]
fn cases() -> Vec<Case> {
    macro_rules! case {
        ($id:literal, $area:literal, $what:literal, $expect:literal, $req:expr) => {
            Case {
                id: $id,
                area: $area,
                what: $what,
                expect: $expect,
                writes: None,
                hides: &[],
                half_close: false,
                req: $req,
            }
        };
    }
    vec![
        // Paths.
        case!("P01", "paths", "`..` segment", 400, |c| get(
            "/files/pub/../private.txt",
            &c.all
        )),
        case!("P02", "paths", "percent-encoded `..`", 400, |c| get(
            "/files/pub/%2e%2e/private.txt",
            &c.all
        )),
        case!(
            "P03",
            "paths",
            "encoded `../` in one segment",
            400,
            |c| get("/files/pub/%2E%2E%2Fprivate.txt", &c.all)
        ),
        case!(
            "P04",
            "paths",
            "encoded absolute segment `%2Fetc%2Fpasswd`",
            400,
            |c| get("/files/%2fetc%2fpasswd", &c.all)
        ),
        case!("P05", "paths", "double-encoded `..` (`%252e`)", 400, |c| {
            get("/files/pub/%252e%252e/private.txt", &c.all)
        }),
        case!("P06", "paths", "backslash segments", 400, |c| get(
            "/files/pub%5C..%5Cprivate.txt",
            &c.all
        )),
        case!("P07", "paths", "NUL byte (`a.txt%00.jpg`)", 400, |c| get(
            "/files/pub/a.txt%00.jpg",
            &c.all
        )),
        case!("P08", "paths", "control character", 400, |c| get(
            "/files/pub/%0aa.txt",
            &c.all
        )),
        case!("P09", "paths", "drive letter `C:`", 400, |c| get(
            "/files/C:/windows",
            &c.all
        )),
        case!("P10", "paths", "overlong UTF-8 dots (`%c0%ae`)", 400, |c| {
            get("/files/%c0%ae%c0%ae/private.txt", &c.all)
        }),
        case!("P11", "paths", "empty segment (`//`)", 400, |c| get(
            "/files/pub//a.txt",
            &c.all
        )),
        case!("P12", "paths", "`.` segment", 400, |c| get(
            "/files/./pub/a.txt",
            &c.all
        )),
        case!("P13", "paths", "encoded `.` segment", 400, |c| get(
            "/files/pub/%2e/a.txt",
            &c.all
        )),
        case!("P14", "paths", "malformed percent-encoding", 400, |c| get(
            "/files/pub/%zz",
            &c.all
        )),
        case!("P15", "paths", "the staging area of uploads", 400, |c| get(
            "/files/.fallback/uploads/",
            &c.all
        )),
        case!(
            "P16",
            "paths",
            "symlink to a file outside the docroot",
            404,
            |c| get("/files/link-out", &c.all)
        ),
        case!(
            "P17",
            "paths",
            "through a symlinked directory outside",
            404,
            |c| get("/files/dirlink-out/secret.txt", &c.all)
        ),
        case!(
            "P18",
            "paths",
            "symlink inside the docroot is followed",
            200,
            |c| get("/files/pub/link-in", &c.all)
        ),
        Case {
            hides: &["secret", "outside"],
            ..case!(
                "P19",
                "paths",
                "listing shows no link target outside",
                200,
                |c| get("/files/", &c.all)
            )
        },
        case!(
            "P20",
            "paths",
            "upload through a symlinked directory outside",
            404,
            |c| put("/files/in/evil/x.txt", &c.up, &[], b"pwned")
        ),
        Case {
            writes: Some("in/trap.txt"),
            ..case!(
                "P21",
                "paths",
                "upload onto a symlink replaces the link, not its target",
                201,
                |c| put("/files/in/trap.txt", &c.up, &[], b"replaced")
            )
        },
        case!("P22", "paths", "path of 5,000 bytes", 400, |c| get(
            &format!("/files/{}", "a".repeat(5000)),
            &c.all
        )),
        case!("P23", "paths", "300 segments", 400, |c| get(
            &format!("/files{}", "/a".repeat(300)),
            &c.all
        )),
        case!(
            "P24",
            "paths",
            "token scope is by whole segments (`/pub` vs `/pub2`)",
            403,
            |c| get("/files/pub2/x.txt", &c.pub_)
        ),
        case!(
            "P25",
            "paths",
            "traversal in the access-check route",
            400,
            |c| get("/access/%2e%2e/private.txt?direction=down", &c.all)
        ),
        // Tokens.
        case!("T01", "tokens", "no token", 401, |_| req(
            "GET",
            "/files/pub/a.txt",
            &[],
            b""
        )),
        case!("T02", "tokens", "garbage token", 401, |_| get(
            "/files/pub/a.txt",
            "fbt1_AAAA"
        )),
        case!(
            "T03",
            "tokens",
            "token signed with another secret",
            401,
            |c| get("/files/pub/a.txt", &c.foreign)
        ),
        case!("T04", "tokens", "expired token", 401, |c| get(
            "/files/pub/a.txt",
            &c.expired
        )),
        case!("T05", "tokens", "token issued in the future", 401, |c| get(
            "/files/pub/a.txt",
            &c.future
        )),
        case!("T06", "tokens", "upload token used to download", 403, |c| {
            get("/files/in/x", &c.up)
        }),
        case!("T07", "tokens", "download token used to upload", 403, |c| {
            put("/files/pub/new.txt", &c.all, &[], b"x")
        }),
        case!(
            "T08",
            "tokens",
            "token cut short by one character",
            401,
            |c| get("/files/pub/a.txt", &c.all[..c.all.len() - 1])
        ),
        case!(
            "T09",
            "tokens",
            "one character of the token changed",
            401,
            |c| {
                let mut t = c.all.clone().into_bytes();
                let i = t.len() - 5;
                t[i] = if t[i] == b'A' { b'B' } else { b'A' };
                get("/files/pub/a.txt", &String::from_utf8(t).unwrap())
            }
        ),
        case!(
            "T10",
            "tokens",
            "token with base64 padding added",
            401,
            |c| get("/files/pub/a.txt", &format!("{}=", c.all))
        ),
        case!("T11", "tokens", "10,000-character token", 401, |_| get(
            "/files/pub/a.txt",
            &format!("fbt1_{}", "A".repeat(10_000))
        )),
        case!(
            "T12",
            "tokens",
            "Basic credentials instead of a token",
            401,
            |_| req(
                "GET",
                "/files/pub/a.txt",
                &["Authorization: Basic YWxpY2U6YWxpY2U=".to_owned()],
                b""
            )
        ),
        case!("T13", "tokens", "empty Bearer", 401, |_| req(
            "GET",
            "/files/pub/a.txt",
            &["Authorization: Bearer ".to_owned()],
            b""
        )),
        case!(
            "T14",
            "tokens",
            "token in the query string of an upload",
            401,
            |c| req(
                "PUT",
                &format!("/files/in/q.txt?token={}", c.up),
                &["Content-Length: 1".to_owned()],
                b"x"
            )
        ),
        case!(
            "T15",
            "tokens",
            "existing file outside the token's paths",
            403,
            |c| get("/files/private.txt", &c.pub_)
        ),
        case!(
            "T16",
            "tokens",
            "missing file outside the token's paths (same answer)",
            403,
            |c| get("/files/nothing.txt", &c.pub_)
        ),
        case!(
            "T17",
            "tokens",
            "another user's token on an upload in progress",
            404,
            |c| patch(&c.upload, &c.bob_up, &[OCTET, "Upload-Offset: 0"], b"x")
        ),
        // Transport and proxy headers.
        case!(
            "X01",
            "proxy headers",
            "user who must encrypt, over plain HTTP",
            403,
            |c| get("/files/pub/a.txt", &c.carol)
        ),
        case!(
            "X02",
            "proxy headers",
            "X-Forwarded-Proto: https from an untrusted peer",
            403,
            |c| req(
                "GET",
                "/files/pub/a.txt",
                &[auth(&c.carol), "X-Forwarded-Proto: https".to_owned()],
                b""
            )
        ),
        case!(
            "X03",
            "proxy headers",
            "Forwarded: proto=https from an untrusted peer",
            403,
            |c| req(
                "GET",
                "/files/pub/a.txt",
                &[
                    auth(&c.carol),
                    "Forwarded: for=1.2.3.4;proto=https".to_owned()
                ],
                b""
            )
        ),
        case!(
            "X04",
            "proxy headers",
            "X-Forwarded-For does not grant anything",
            401,
            |_| req(
                "GET",
                "/files/pub/a.txt",
                &["X-Forwarded-For: 127.0.0.1".to_owned()],
                b""
            )
        ),
        // HTTP framing.
        Case {
            writes: Some("in/h.txt"),
            hides: &["private"],
            ..case!(
                "H01",
                "framing",
                "Content-Length with Transfer-Encoding and a smuggled request after the chunked end: chunked wins, one response, connection closed (RFC 9112 6.3)",
                201,
                |c| raw(&format!(
                    "PUT /files/in/h.txt HTTP/1.1\r\nHost: x\r\n{}\r\nContent-Length: 40\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /files/private.txt HTTP/1.1\r\nHost: x\r\n{}\r\n\r\n",
                    auth(&c.up),
                    auth(&c.all)
                ))
            )
        },
        Case {
            writes: Some("in/h.txt"),
            hides: &["private"],
            ..case!(
                "H19",
                "framing",
                "Transfer-Encoding before Content-Length, same smuggling attempt",
                201,
                |c| raw(&format!(
                    "PUT /files/in/h.txt HTTP/1.1\r\nHost: x\r\n{}\r\nTransfer-Encoding: chunked\r\nContent-Length: 40\r\n\r\n0\r\n\r\nGET /files/private.txt HTTP/1.1\r\nHost: x\r\n{}\r\n\r\n",
                    auth(&c.up),
                    auth(&c.all)
                ))
            )
        },
        case!(
            "H02",
            "framing",
            "two different Content-Lengths",
            400,
            |c| raw(&format!(
                "PUT /files/in/h.txt HTTP/1.1\r\nHost: x\r\n{}\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
                auth(&c.up)
            ))
        ),
        case!("H03", "framing", "Content-Length: -1", 400, |c| raw(
            &format!(
                "PUT /files/in/h.txt HTTP/1.1\r\nHost: x\r\n{}\r\nContent-Length: -1\r\n\r\n",
                auth(&c.up)
            )
        )),
        case!("H04", "framing", "Content-Length: +3", 400, |c| raw(
            &format!(
                "PUT /files/in/h.txt HTTP/1.1\r\nHost: x\r\n{}\r\nContent-Length: +3\r\n\r\nabc",
                auth(&c.up)
            )
        )),
        case!("H05", "framing", "Content-Length of 20 digits", 400, |c| {
            raw(&format!(
                "PUT /files/in/h.txt HTTP/1.1\r\nHost: x\r\n{}\r\nContent-Length: 99999999999999999999\r\n\r\nabc",
                auth(&c.up)
            ))
        }),
        case!(
            "H06",
            "framing",
            "bare LF line endings (accepted as RFC 9112 2.2 allows: only an empty line ends the header block, so framing is unchanged)",
            200,
            |c| raw(&format!(
                "GET /files/pub/a.txt HTTP/1.1\nHost: x\n{}\nConnection: close\n\n",
                auth(&c.all)
            ))
        ),
        case!("H07", "framing", "70 KiB of headers", 431, |c| req(
            "GET",
            "/files/pub/a.txt",
            &[auth(&c.all), format!("X-Big: {}", "a".repeat(70 * 1024))],
            b""
        )),
        case!("H08", "framing", "200 headers", 431, |c| {
            let mut h: Vec<String> = (0..200).map(|i| format!("X-H{i}: v")).collect();
            h.push(auth(&c.all));
            req("GET", "/files/pub/a.txt", &h, b"")
        }),
        case!("H09", "framing", "obsolete line folding", 400, |c| raw(
            &format!(
                "GET /files/pub/a.txt HTTP/1.1\r\nHost: x\r\n{}\r\nX-Fold: a\r\n b\r\n\r\n",
                auth(&c.all)
            )
        )),
        case!("H10", "framing", "invalid method token", 400, |_| raw(
            "G@T /files/pub/a.txt HTTP/1.1\r\nHost: x\r\n\r\n"
        )),
        case!("H11", "framing", "invalid chunk size", 400, |c| raw(
            &format!(
                "PUT /files/in/h.txt HTTP/1.1\r\nHost: x\r\n{}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\nzz\r\nabc\r\n0\r\n\r\n",
                auth(&c.up)
            )
        )),
        case!(
            "H12",
            "framing",
            "chunk size overflowing 64 bits",
            400,
            |c| raw(&format!(
                "PUT /files/in/h.txt HTTP/1.1\r\nHost: x\r\n{}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\nfffffffffffffffffff\r\nabc\r\n0\r\n\r\n",
                auth(&c.up)
            ))
        ),
        case!(
            "H13",
            "framing",
            "Transfer-Encoding other than chunked",
            400,
            |c| raw(&format!(
                "PUT /files/in/h.txt HTTP/1.1\r\nHost: x\r\n{}\r\nTransfer-Encoding: gzip\r\n\r\nabc",
                auth(&c.up)
            ))
        ),
        case!(
            "H14",
            "framing",
            "space before a header's colon",
            400,
            |c| raw(&format!(
                "GET /files/pub/a.txt HTTP/1.1\r\nHost: x\r\n{}\r\nContent-Length : 0\r\n\r\n",
                auth(&c.all)
            ))
        ),
        case!("H15", "framing", "NUL in a header value", 400, |c| raw(
            &format!(
                "GET /files/pub/a.txt HTTP/1.1\r\nHost: x\r\n{}\r\nX-A: a\0b\r\n\r\n",
                auth(&c.all)
            )
        )),
        case!("H16", "framing", "unsupported method on files", 405, |c| {
            req("DELETE", "/files/pub/a.txt", &[auth(&c.all)], b"")
        }),
        case!(
            "H17",
            "framing",
            "Expect: 100-continue without a token is refused before the body",
            401,
            |_| req(
                "PUT",
                "/files/in/e.txt",
                &[
                    "Content-Length: 1000000".to_owned(),
                    "Expect: 100-continue".to_owned()
                ],
                b""
            )
        ),
        case!(
            "H18",
            "framing",
            "request target of 70 KiB (the request head is bounded to 64 KiB)",
            431,
            |c| get(&format!("/files/{}", "a".repeat(70 * 1024)), &c.all)
        ),
        // Ranges (pub/a.txt is 12 bytes).
        case!("R01", "ranges", "bytes=5-2 (end before start)", 416, |c| {
            get_range("bytes=5-2", c)
        }),
        case!("R02", "ranges", "bytes=-0 (empty suffix)", 416, |c| {
            get_range("bytes=-0", c)
        }),
        case!("R03", "ranges", "bytes=+1-2 (signed)", 416, |c| get_range(
            "bytes=+1-2",
            c
        )),
        case!("R04", "ranges", "bytes=abc", 416, |c| get_range(
            "bytes=abc",
            c
        )),
        case!("R05", "ranges", "start of 20 digits", 416, |c| get_range(
            "bytes=99999999999999999999-",
            c
        )),
        case!("R06", "ranges", "start at the file's length", 416, |c| {
            get_range("bytes=12-", c)
        }),
        case!("R07", "ranges", "start past 2^64", 416, |c| get_range(
            "bytes=18446744073709551616-",
            c
        )),
        case!("R08", "ranges", "1,000 ranges", 416, |c| get_range(
            &format!("bytes={}", vec!["0-0"; 1000].join(",")),
            c
        )),
        case!("R09", "ranges", "bytes=0-0", 206, |c| get_range(
            "bytes=0-0",
            c
        )),
        case!("R10", "ranges", "suffix bytes=-5", 206, |c| get_range(
            "bytes=-5", c
        )),
        case!(
            "R11",
            "ranges",
            "end past the file is clamped (bytes=0-2^64-1)",
            206,
            |c| get_range("bytes=0-18446744073709551615", c)
        ),
        case!("R12", "ranges", "unknown range unit is ignored", 200, |c| {
            get_range("items=0-1", c)
        }),
        case!(
            "R13",
            "ranges",
            "If-Range that does not match gives the whole file",
            200,
            |c| req(
                "GET",
                "/files/pub/a.txt",
                &[
                    auth(&c.all),
                    "Range: bytes=0-1".to_owned(),
                    "If-Range: \"nope\"".to_owned()
                ],
                b""
            )
        ),
        // Uploads.
        case!("U01", "uploads", "Upload-Length: -1", 400, |c| tus_post(
            c,
            &["Upload-Length: -1", "Upload-Metadata: filename eC5iaW4="]
        )),
        case!("U02", "uploads", "Upload-Length: +5", 400, |c| tus_post(
            c,
            &["Upload-Length: +5", "Upload-Metadata: filename eC5iaW4="]
        )),
        case!("U03", "uploads", "Upload-Length of 20 digits", 400, |c| {
            tus_post(
                c,
                &[
                    "Upload-Length: 99999999999999999999",
                    "Upload-Metadata: filename eC5iaW4=",
                ],
            )
        }),
        case!(
            "U04",
            "uploads",
            "Upload-Length over the size limit",
            413,
            |c| tus_post(
                c,
                &[
                    "Upload-Length: 9999999999999999999",
                    "Upload-Metadata: filename eC5iaW4="
                ]
            )
        ),
        case!("U05", "uploads", "no Upload-Length", 400, |c| tus_post(
            c,
            &["Upload-Metadata: filename eC5iaW4="]
        )),
        case!("U06", "uploads", "Upload-Defer-Length", 400, |c| tus_post(
            c,
            &[
                "Upload-Defer-Length: 1",
                "Upload-Metadata: filename eC5iaW4="
            ]
        )),
        case!("U07", "uploads", "metadata that is not base64", 400, |c| {
            tus_post(c, &["Upload-Length: 1", "Upload-Metadata: filename !!!"])
        }),
        case!(
            "U08",
            "uploads",
            "file name `../../etc/passwd` in metadata",
            400,
            |c| tus_post(
                c,
                &[
                    "Upload-Length: 1",
                    "Upload-Metadata: filename Li4vLi4vZXRjL3Bhc3N3ZA=="
                ]
            )
        ),
        case!("U09", "uploads", "no Tus-Resumable", 412, |c| req(
            "POST",
            "/uploads",
            &[auth(&c.up), "Upload-Length: 1".to_owned()],
            b""
        )),
        case!("U10", "uploads", "PATCH at the wrong offset", 409, |c| {
            patch(&c.upload, &c.up, &[OCTET, "Upload-Offset: 5"], b"x")
        }),
        case!(
            "U11",
            "uploads",
            "PATCH without the tus content type",
            415,
            |c| patch(&c.upload, &c.up, &["Upload-Offset: 0"], b"x")
        ),
        case!("U12", "uploads", "Upload-Offset: -1", 400, |c| patch(
            &c.upload,
            &c.up,
            &[OCTET, "Upload-Offset: -1"],
            b"x"
        )),
        case!(
            "U13",
            "uploads",
            "PATCH past the declared length",
            413,
            |c| patch(&c.upload, &c.up, &[OCTET, "Upload-Offset: 0"], &[b'x'; 20])
        ),
        case!("U14", "uploads", "PATCH of an unknown upload", 404, |c| {
            patch(
                "/uploads/0123456789abcdef0123456789abcdef",
                &c.up,
                &[OCTET, "Upload-Offset: 0"],
                b"x",
            )
        }),
        case!(
            "U15",
            "uploads",
            "upload id that is a path",
            404,
            |c| patch(
                "/uploads/..%2F..%2Fdata",
                &c.up,
                &[OCTET, "Upload-Offset: 0"],
                b"x"
            )
        ),
        case!("U16", "uploads", "chunk checksum mismatch", 460, |c| patch(
            &c.upload,
            &c.up,
            &[
                OCTET,
                "Upload-Offset: 0",
                "Upload-Checksum: sha256 47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="
            ],
            b"abc"
        )),
        case!(
            "U17",
            "uploads",
            "unsupported checksum algorithm",
            400,
            |c| patch(
                &c.upload,
                &c.up,
                &[OCTET, "Upload-Offset: 0", "Upload-Checksum: crc32 NSRBwg=="],
                b"abc"
            )
        ),
        case!("U18", "uploads", "PUT to a directory path", 409, |c| put(
            "/files/in/",
            &c.up,
            &[],
            b"x"
        )),
        case!(
            "U19",
            "uploads",
            "PUT outside the token's directory",
            403,
            |c| put("/files/pub/x.txt", &c.up, &[], b"x")
        ),
        case!("U20", "uploads", "PUT into the staging area", 400, |c| put(
            "/files/.fallback/uploads/x",
            &c.up,
            &[],
            b"x"
        )),
        case!(
            "U21",
            "uploads",
            "If-None-Match: * onto an existing file",
            412,
            |c| put(
                "/files/in/exists.txt",
                &c.up,
                &["If-None-Match: *".to_owned()],
                b"other"
            )
        ),
        case!(
            "U22",
            "uploads",
            "If-Match with a stale entity tag",
            412,
            |c| put(
                "/files/in/exists.txt",
                &c.up,
                &["If-Match: \"stale\"".to_owned()],
                b"other"
            )
        ),
        case!(
            "U23",
            "uploads",
            "terminating another user's upload",
            404,
            |c| req(
                "DELETE",
                &c.upload,
                &[auth(&c.bob_up), "Tus-Resumable: 1.0.0".to_owned()],
                b""
            )
        ),
        case!(
            "U24",
            "uploads",
            "HEAD of an upload with a download token",
            403,
            |c| req(
                "HEAD",
                &c.upload,
                &[auth(&c.all), "Tus-Resumable: 1.0.0".to_owned()],
                b""
            )
        ),
        Case {
            half_close: true,
            ..case!(
                "U25",
                "uploads",
                "PUT body shorter than its Content-Length, then the client closes",
                400,
                |c| {
                    let mut r = req(
                        "PUT",
                        "/files/in/short.txt",
                        &[auth(&c.up), "Content-Length: 100".to_owned()],
                        b"",
                    );
                    r.extend_from_slice(b"only this");
                    r
                }
            )
        },
    ]
}

/// Sends `bytes` on a fresh connection (and half-closes it after them with
/// `half_close`), returns the status (0: closed without a response) and the response.
fn send(addr: SocketAddr, bytes: &[u8], half_close: bool) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    // The server may answer and close before reading everything: not an error here.
    let _ = s.write_all(bytes);
    if half_close {
        let _ = s.shutdown(std::net::Shutdown::Write);
    }
    let mut resp = Vec::new();
    let _ = s.read_to_end(&mut resp);
    let text = String::from_utf8_lossy(&resp).into_owned();
    let status = text
        .strip_prefix("HTTP/1.1 ")
        .and_then(|r| r.get(..3))
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, text)
}

/// A health check on a fresh connection (for other test modules).
pub(crate) fn adversarial_send(addr: SocketAddr) -> (u16, String) {
    send(addr, &req("GET", "/health", &[], b""), false)
}

/// Every regular file under `dir` (not following links) with its content, except the
/// staging area.
fn snapshot(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![(dir.to_owned(), String::new())];
    while let Some((d, prefix)) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let name = e.file_name().into_string().unwrap();
            let rel = if prefix.is_empty() {
                name.clone()
            } else {
                format!("{prefix}/{name}")
            };
            let t = e.file_type().unwrap();
            if t.is_dir() && rel != ".fallback" {
                stack.push((e.path(), rel));
            } else if t.is_file() {
                out.insert(rel, std::fs::read(e.path()).unwrap());
            }
        }
    }
    out
}

fn set_times(path: &Path, atime: &str, mtime: &str) {
    for (flag, t) in [("-a", atime), ("-m", mtime)] {
        let ok = std::process::Command::new("touch")
            .args([flag, "-d", t])
            .arg(path)
            .status()
            .unwrap();
        assert!(ok.success());
    }
}

fn atime(path: &Path) -> i64 {
    use std::os::unix::fs::MetadataExt as _;
    std::fs::metadata(path).unwrap().atime()
}

#[test]
#[allow(clippy::too_many_lines)]
fn adversarial_requests_get_their_exact_status_and_touch_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let root = server.docroot();
    let outside = dir.path().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("secret.txt"), b"outside secret").unwrap();
    for d in ["pub", "in"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    std::fs::write(root.join("pub/a.txt"), b"hello world\n").unwrap();
    std::fs::write(root.join("private.txt"), b"private").unwrap();
    std::fs::write(root.join("in/exists.txt"), b"first").unwrap();
    let link = |target: &str, at: &str| std::os::unix::fs::symlink(target, root.join(at)).unwrap();
    link("../outside/secret.txt", "link-out");
    link("../outside", "dirlink-out");
    link("a.txt", "pub/link-in");
    link("../../outside", "in/evil");
    link("../../outside/secret.txt", "in/trap.txt");
    // Reads of the outside file would move its access time (relatime updates it when it
    // is older than the modification time); checked on a twin first.
    let secret = outside.join("secret.txt");
    let twin = dir.path().join("twin.txt");
    std::fs::write(&twin, b"twin").unwrap();
    set_times(&twin, "@1000000000", "@1100000000");
    let _ = std::fs::read(&twin).unwrap();
    let atime_works = atime(&twin) != 1_000_000_000;
    if !atime_works {
        eprintln!(
            "NOTE: this file system does not update access times; the no-read check is skipped"
        );
    }

    let upload = tus_create(&server, &upload_token("alice", "/in"), "pending.bin", 10);
    let upload = upload
        .split_once(&server.http.to_string())
        .unwrap()
        .1
        .trim_start_matches("/aspera/http")
        .to_owned();
    let foreign = Key::derive("some-other-secret-0123456789", Form::Signed).unwrap();
    let c = Ctx {
        addr: server.http,
        all: download_token("alice", &["/"]),
        pub_: download_token("alice", &["/pub"]),
        up: upload_token("alice", "/in"),
        bob_up: upload_token("bob", "/in"),
        carol: download_token("carol", &["/"]),
        expired: Token::download("alice", &["/"])
            .issued_at(UNIX_EPOCH + Duration::from_secs(1_000_000_000))
            .issue(&key())
            .unwrap(),
        future: Token::download("alice", &["/"])
            .issued_at(std::time::SystemTime::now() + Duration::from_hours(2))
            .issue(&key())
            .unwrap(),
        foreign: Token::download("alice", &["/"]).issue(&foreign).unwrap(),
        upload,
    };

    let cases = cases();
    let mut ids = std::collections::HashSet::new();
    let mut expected_files = snapshot(&root);
    let outside_before = snapshot(&outside);
    // (After the snapshot, which reads it.)
    set_times(&secret, "@1000000000", "@1100000000");
    let mut failures = Vec::new();
    for case in &cases {
        assert!(ids.insert(case.id), "duplicate case id {}", case.id);
        let started = std::time::Instant::now();
        let (status, text) = send(c.addr, &(case.req)(&c), case.half_close);
        if started.elapsed() > Duration::from_secs(2) {
            eprintln!("{}: {:?}", case.id, started.elapsed());
        }
        if status != case.expect {
            let first = text.lines().take(12).collect::<Vec<_>>().join(" | ");
            failures.push(format!(
                "{} {}: got {status}, expected {}: {first}",
                case.id, case.what, case.expect
            ));
        }
        let responses = text.matches("HTTP/1.1 ").count();
        if responses > 1 {
            failures.push(format!(
                "{} {}: {responses} responses to one request",
                case.id, case.what
            ));
        }
        for h in case.hides {
            if text.contains(h) {
                failures.push(format!("{} {}: response shows {h:?}", case.id, case.what));
            }
        }
        // Still serving.
        let (health, htext) = send(c.addr, &req("GET", "/health", &[], b""), false);
        assert_eq!(
            health, 200,
            "{}: the server stopped serving: {htext}",
            case.id
        );
        // No partial or stray file, nothing changed but what the case may write.
        let now = snapshot(&root);
        if let Some(w) = case.writes
            && let Some(v) = now.get(w)
        {
            expected_files.insert(w.to_owned(), v.clone());
        }
        if now != expected_files {
            let added: Vec<_> = now
                .keys()
                .filter(|k| expected_files.get(*k) != now.get(*k))
                .collect();
            let gone: Vec<_> = expected_files
                .keys()
                .filter(|k| !now.contains_key(*k))
                .collect();
            failures.push(format!(
                "{} {}: docroot changed: new or changed {added:?}, gone {gone:?}",
                case.id, case.what
            ));
            expected_files = now;
        }
    }
    // The upload in progress was not advanced by any of the refused PATCHes.
    let (_, head) = send(
        c.addr,
        &req(
            "HEAD",
            &c.upload,
            &[auth(&c.up), "Tus-Resumable: 1.0.0".to_owned()],
            b"",
        ),
        false,
    );
    assert!(
        head.to_ascii_lowercase().contains("upload-offset: 0\r\n"),
        "the pending upload moved: {head}"
    );
    // Nothing outside the docroot was read, or written.
    if atime_works {
        assert_eq!(
            atime(&secret),
            1_000_000_000,
            "a file outside the docroot was read"
        );
    }
    assert_eq!(
        snapshot(&outside),
        outside_before,
        "outside the docroot changed"
    );
    assert!(
        failures.is_empty(),
        "{} case(s) failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(cases.len() >= 60);

    // The catalogue in docs/security.md is this table.
    check_catalogue(&cases);
}

const BEGIN: &str =
    "<!-- adversarial catalogue: generated from bins/fallbackd/tests/it/adversarial.rs -->";
const END: &str = "<!-- end of adversarial catalogue -->";

fn check_catalogue(cases: &[Case]) {
    let mut table = format!("{BEGIN}\n\n| id | area | request | expected |\n|---|---|---|---|\n");
    for c in cases {
        let expect = match c.expect {
            0 => "connection closed".to_owned(),
            n => n.to_string(),
        };
        let _ = writeln!(table, "| {} | {} | {} | {expect} |", c.id, c.area, c.what);
    }
    table.push('\n');
    table.push_str(END);
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/security.md");
    let doc = std::fs::read_to_string(&path).unwrap_or_default();
    let current = match (doc.find(BEGIN), doc.find(END)) {
        (Some(b), Some(e)) => &doc[b..e + END.len()],
        _ => "",
    };
    if current == table {
        return;
    }
    if std::env::var_os("FALLBACK_BLESS").is_some() {
        let new = if current.is_empty() {
            format!("{doc}\n{table}\n")
        } else {
            doc.replace(current, &table)
        };
        std::fs::write(&path, new).unwrap();
        return;
    }
    panic!(
        "docs/security.md's catalogue differs from the cases: regenerate with \
         FALLBACK_BLESS=1 cargo nextest run -p fallbackd adversarial"
    );
}
