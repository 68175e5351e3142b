//! `/health`, `/info`, `GET|HEAD|PUT /files/{path}`.

use std::io::{Read as _, Seek as _, SeekFrom};
use std::time::{Duration, Instant};

use axum::Json;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use fallback_engine::{Entry, EntryKind, Opened, RelPath};
use fallback_token::Direction;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use crate::auth::token_in_query;
use crate::body::{Start, log_end, pump};
use crate::error::ApiError;
use crate::store::Store;
use crate::wire::http_date;
use crate::{AppState, PROTOCOL, split_base};

const READ_BLOCK: usize = 1 << 20;
/// Files up to this size are read whole and answered from memory.
const SMALL_FILE: u64 = 64 * 1024;

/// What a download serves.
enum Source {
    /// Read already.
    Small(Bytes),
    /// Streamed by a reader thread.
    File(std::fs::File),
    /// Streamed from a bucket.
    Object(std::sync::Arc<fallback_s3::Bucket>),
    /// A directory: the manifest.
    Dir,
}

pub(crate) async fn health() -> &'static str {
    "ok\n"
}

pub(crate) async fn info(State(state): State<AppState>) -> impl IntoResponse {
    let o = state.options();
    Json(serde_json::json!({
        "service": "fallbackd",
        "version": env!("CARGO_PKG_VERSION"),
        "protocol": PROTOCOL,
        "tus": {
            "version": "1.0.0",
            "extensions": crate::tus::EXTENSIONS.split(',').collect::<Vec<_>>(),
            "max_size": o.max_upload_size,
            "checksum_algorithms": fallback_engine::CHECKSUM_ALGORITHMS.split(',').collect::<Vec<_>>(),
        },
        "limits": {
            "max_upload_size": o.max_upload_size,
            "manifest_entries": o.manifest_limit,
            "session_activity_timeout": o.activity_timeout.map_or(0, |d| d.as_secs()),
        },
    }))
}

/// The docroot-relative path of a `/files...` request, from the raw (still encoded)
/// URI path, decoded exactly once by the canonicaliser.
fn file_path(uri_path: &str) -> Result<(RelPath, bool), ApiError> {
    let (_, rest) = split_base(uri_path);
    let raw = rest.strip_prefix("/files").unwrap_or(rest);
    RelPath::parse_encoded_dir(raw).map_err(|e| ApiError::BadRequest(format!("bad path: {e}")))
}

/// RFC 6266 / 5987: an ASCII fallback without quotes or controls, and the UTF-8 name.
pub(crate) fn content_disposition(name: &str) -> HeaderValue {
    const ATTR: &AsciiSet = &NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'.')
        .remove(b'_')
        .remove(b'~');
    let ascii: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let v = format!(
        "attachment; filename=\"{ascii}\"; filename*=UTF-8''{}",
        utf8_percent_encode(name, ATTR)
    );
    HeaderValue::from_str(&v).unwrap_or_else(|_| HeaderValue::from_static("attachment"))
}

fn common_headers(h: &mut HeaderMap, query_token: bool) {
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if query_token {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        h.insert(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        );
    } else {
        h.insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static("private, no-cache"),
        );
    }
}

fn entry_headers(h: &mut HeaderMap, e: &Entry, name: &str) {
    if let Ok(v) = HeaderValue::from_str(&e.etag) {
        h.insert(header::ETAG, v);
    }
    if let Ok(v) = HeaderValue::from_str(&http_date(e.modified)) {
        h.insert(header::LAST_MODIFIED, v);
    }
    if let Some(d) = &e.sha256 {
        crate::wire::insert_digest(h, d);
    }
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    h.insert(header::CONTENT_DISPOSITION, content_disposition(name));
    h.insert("fallback-kind", HeaderValue::from_static("file"));
}

/// The byte range to send: `None` for the whole file.
fn wanted_range(headers: &HeaderMap, e: &Entry) -> Result<Option<(u64, u64)>, ApiError> {
    let Some(range) = headers.get(header::RANGE).and_then(|v| v.to_str().ok()) else {
        return Ok(None);
    };
    if let Some(cond) = headers.get(header::IF_RANGE).and_then(|v| v.to_str().ok()) {
        // Strong comparison only: an ETag, or the exact Last-Modified date.
        let matches = cond == e.etag || cond == http_date(e.modified);
        if !matches {
            return Ok(None);
        }
    }
    fallback_http::byte_range(range, e.size)
        .map_err(|_| ApiError::RangeNotSatisfiable { len: e.size })
}

/// Who a download is for, to log its end.
pub(crate) struct DownloadLog {
    user: String,
    client: String,
    path: RelPath,
    started: Instant,
}

impl DownloadLog {
    /// A download begins (counted as an active transfer until [`DownloadLog::end`]).
    pub(crate) fn start(id: &crate::auth::Identity, path: &RelPath) -> Self {
        crate::stats::transfer_started("download");
        DownloadLog {
            user: id.user.clone(),
            client: id.client.clone(),
            path: path.clone(),
            started: Instant::now(),
        }
    }

    /// A download that streams: its start is logged, as its end will be.
    fn streaming(id: &crate::auth::Identity, path: &RelPath, len: u64, ranged: bool) -> Self {
        tracing::info!(
            user = %id.user,
            client = %id.client,
            direction = "download",
            path = %path,
            bytes = len,
            range = ranged,
            rate_cap_kbps = id.rate.map(|r| r / 125),
            "transfer start"
        );
        DownloadLog::start(id, path)
    }

    pub(crate) fn end(&self, sent: u64, outcome: &'static str) {
        crate::stats::bytes_sent(sent);
        crate::stats::transfer_ended("download", outcome);
        let elapsed = self.started.elapsed();
        // MB/s for people, rounded to 0.01: precision loss is irrelevant here.
        #[allow(clippy::cast_precision_loss)]
        let rate_mb_s = if elapsed.is_zero() {
            0.0
        } else {
            (sent as f64 / elapsed.as_secs_f64() / 1e4).round() / 100.0
        };
        // Strings and numbers as such: the JSON log records them without formatting
        // them first (the line was a tenth of a small GET's CPU).
        tracing::info!(
            user = self.user.as_str(),
            client = self.client.as_str(),
            direction = "download",
            path = %self.path,
            bytes = sent,
            duration_ms = u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX),
            rate_mb_s,
            outcome,
            "transfer end"
        );
    }
}

/// Blocks per download: read ahead of the socket, queued, and being written by hyper.
/// A download holds at most this many blocks of file data however slowly its reader
/// takes it, and gives them back to the OS when it ends or is cut.
const BLOCKS_PER_DOWNLOAD: usize = 4;

/// Read-ahead that downloads running at once get at full block size (4 downloads of
/// 4 x 1 MiB); each download starting while more run gets smaller blocks, so 64 at once
/// hold about 60 MiB, not 256.
const READ_AHEAD_BUDGET: usize = 16 << 20;

/// The smallest block a download gets however many run.
const MIN_READ_BLOCK: usize = 64 << 10;

/// Downloads streaming from mapped blocks now.
static STREAMING: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// One streaming download, counted in [`STREAMING`] while it lives.
struct Streaming;

impl Streaming {
    /// Counts a download in; returns it and its block size (1 MiB while few run, down
    /// to [`MIN_READ_BLOCK`] in 64 KiB steps as more do).
    fn start() -> (Streaming, usize) {
        let running = STREAMING.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        let block = (READ_AHEAD_BUDGET / BLOCKS_PER_DOWNLOAD / running)
            .clamp(MIN_READ_BLOCK, READ_BLOCK)
            & !(MIN_READ_BLOCK - 1);
        (Streaming, block)
    }
}

impl Drop for Streaming {
    fn drop(&mut self) {
        STREAMING.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Downloads shorter than this read into ordinary heap buffers (one small block; a
/// mapping would cost more than the copy).
const MAPPED_FROM: u64 = 256 * 1024;

/// One block of `n` bytes of `file`, read into heap memory or a pooled mapping.
fn read_block(
    file: &mut std::fs::File,
    n: usize,
    pool: Option<&mut crate::blocks::Pool>,
    wait: Option<Duration>,
) -> Result<Option<Bytes>, std::io::Error> {
    let eof = || {
        std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "file shrank while being sent",
        )
    };
    let Some(pool) = pool else {
        // read_to_end fills spare capacity without zeroing it first (zeroing 1 MiB
        // per block showed up in profiles).
        let mut buf = Vec::with_capacity(n);
        return match file.take(n as u64).read_to_end(&mut buf)? {
            0 => Err(eof()),
            _ => Ok(Some(Bytes::from(buf))),
        };
    };
    // A reader that took none of the blocks out for the activity timeout: give up.
    let Some(mut map) = pool.take(wait)? else {
        return Ok(None);
    };
    let mut got = 0;
    while got < n {
        match file.read(&mut map[got..n]) {
            Ok(0) => break,
            Ok(k) => got += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    if got == 0 {
        return Err(eof());
    }
    Ok(Some(pool.share(map, got)))
}

/// What a path segment keeps unescaped in a link: RFC 3986 unreserved characters.
pub(crate) const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Streams `len` bytes from `file` at `start`, 1 MiB at a time, from a blocking
/// thread; a reader that stalls past `activity` is cut off.
/// Under a rate cap (`rate`, bytes per second) blocks are smaller and each waits its
/// turn, so the download's average never passes the cap.
fn stream_file(
    mut file: std::fs::File,
    start: u64,
    len: u64,
    activity: Option<Duration>,
    rate: Option<u64>,
    log: DownloadLog,
) -> Body {
    let (tx, mut rx) =
        tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(BLOCKS_PER_DOWNLOAD - 2);
    let handle = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || {
        if let Err(e) = file.seek(SeekFrom::Start(start)) {
            let _ = tx.blocking_send(Err(e));
            return;
        }
        let mapped = len >= MAPPED_FROM && rate.is_none();
        let (_streaming, full) = if mapped {
            let (s, b) = Streaming::start();
            (Some(s), b)
        } else {
            (None, READ_BLOCK)
        };
        let block = rate.map_or(full, |r| crate::pace::Pace::block(r, READ_BLOCK));
        let mut pace = rate.map(crate::pace::Pace::new);
        let mut pool = mapped.then(|| {
            crate::blocks::Pool::new(
                usize::try_from(len).unwrap_or(block).min(block),
                BLOCKS_PER_DOWNLOAD,
            )
        });
        let mut left = len;
        while left > 0 {
            let n = usize::try_from(left).unwrap_or(block).min(block);
            let chunk = match read_block(&mut file, n, pool.as_mut(), activity) {
                Ok(Some(b)) => {
                    left -= b.len() as u64;
                    Ok(b)
                }
                Ok(None) => {
                    log.end(len - left, "client-gone");
                    return;
                }
                Err(e) => Err(e),
            };
            let failed = chunk.is_err();
            if let (Some(p), Ok(b)) = (pace.as_mut(), &chunk) {
                let wait = p.after(b.len());
                if !wait.is_zero() {
                    std::thread::sleep(wait);
                }
            }
            let sent = match activity {
                Some(d) => handle
                    .block_on(tokio::time::timeout(d, tx.send(chunk)))
                    .is_ok_and(|r| r.is_ok()),
                None => tx.blocking_send(chunk).is_ok(),
            };
            if !sent || failed {
                let outcome = if failed { "read-error" } else { "client-gone" };
                log.end(len - left, outcome);
                return;
            }
        }
        log.end(len, "ok");
    });
    // A body that ends before `len` bytes is an error, never a shorter answer: hyper
    // then aborts the response (HTTP/1: closes the connection; HTTP/2: resets the
    // stream) instead of ending it as if complete.
    let mut sent: u64 = 0;
    Body::from_stream(futures_util::stream::poll_fn(move |cx| {
        match std::task::ready!(rx.poll_recv(cx)) {
            Some(Ok(b)) => {
                sent += b.len() as u64;
                std::task::Poll::Ready(Some(Ok(b)))
            }
            Some(Err(e)) => std::task::Poll::Ready(Some(Err(e))),
            None if sent < len => {
                sent = len;
                std::task::Poll::Ready(Some(Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "the download stopped before its end (a stalled reader)",
                ))))
            }
            None => std::task::Poll::Ready(None),
        }
    }))
}

/// Streams `len` bytes of an object as the bucket sends them (each GET's bytes flow
/// through as they arrive: memory stays flat); paced under a rate cap. A stream that
/// fails or ends short is an error, so the response is cut, never shorter. A reader
/// that takes nothing is cut by the connection's watchdog.
fn stream_object(
    stream: futures_util::stream::BoxStream<'static, Result<Bytes, fallback_engine::Error>>,
    len: u64,
    rate: Option<u64>,
    log: DownloadLog,
) -> Body {
    use futures_util::StreamExt as _;
    struct Sending {
        stream: futures_util::stream::BoxStream<'static, Result<Bytes, fallback_engine::Error>>,
        sent: u64,
        pace: Option<crate::pace::Pace>,
        log: Option<DownloadLog>,
    }
    impl Sending {
        fn end(&mut self, outcome: &'static str) {
            if let Some(log) = self.log.take() {
                log.end(self.sent, outcome);
            }
        }
    }
    impl Drop for Sending {
        fn drop(&mut self) {
            self.end("client-gone");
        }
    }
    let start = Sending {
        stream,
        sent: 0,
        pace: rate.map(crate::pace::Pace::new),
        log: Some(log),
    };
    let body = futures_util::stream::unfold(start, move |mut s| async move {
        match s.stream.next().await {
            Some(Ok(b)) => {
                s.sent += b.len() as u64;
                if s.sent >= len {
                    // The last bytes: hyper may not ask for the stream's end.
                    s.end("ok");
                }
                if let Some(p) = s.pace.as_mut() {
                    let wait = p.after(b.len());
                    if !wait.is_zero() {
                        tokio::time::sleep(wait).await;
                    }
                }
                Some((Ok(b), s))
            }
            Some(Err(e)) => {
                s.end("read-error");
                Some((Err(std::io::Error::other(e.to_string())), s))
            }
            None if s.sent < len => {
                s.end("read-error");
                let short = std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "the object ended before the length announced",
                );
                s.sent = len;
                Some((Err(short), s))
            }
            None => {
                s.end("ok");
                None
            }
        }
    });
    Body::from_stream(body)
}

pub(crate) async fn get_file(
    State(state): State<AppState>,
    req: Request,
) -> Result<Response, ApiError> {
    let (parts, _) = req.into_parts();
    let (path, trailing) = file_path(parts.uri.path())?;
    let id = state.identify(&parts, Direction::Download).await?;
    id.permit(Direction::Download, &path)?;
    let query_token = token_in_query(&parts);
    let p = &path;
    let opened: Result<(Source, Entry), fallback_engine::Error> = match &id.storage {
        // Opening, and reading a small file, happen right here: they are a few syscalls
        // on cached metadata, and a hop to a blocking thread would cost more than they
        // do (it halved small-file request rates). Large files stream from a reader
        // thread. Under a rate cap every file streams, paced; otherwise a small one is
        // answered from memory (kept while unchanged, see `Storage::open_read_small`).
        Store::Local(storage) => {
            let small = if id.rate.is_none() { SMALL_FILE } else { 0 };
            match storage.open_read_small(p, small) {
                Ok(Opened::Small(bytes, e)) => Ok((Source::Small(Bytes::from_owner(bytes)), e)),
                Ok(Opened::File(f, e)) => Ok((Source::File(f), e)),
                Err(fallback_engine::Error::WrongKind(_)) => {
                    storage.stat(p).map(|e| (Source::Dir, e))
                }
                Err(e) => Err(e),
            }
        }
        // An object is described by its HEAD and streamed by ranged GETs bound to its
        // ETag.
        Store::S3(bucket) => id.storage.stat(p).await.map(|e| {
            let source = match e.kind {
                EntryKind::Dir => Source::Dir,
                EntryKind::File => Source::Object(std::sync::Arc::clone(bucket)),
            };
            (source, e)
        }),
    };
    let (source, entry) = opened?;
    if matches!(source, Source::Dir) {
        id.may_browse()?;
        if wants_json(&parts.headers) {
            return manifest(&state, &id, &path, &parts.method, query_token).await;
        }
        if !trailing {
            return Ok(slash_redirect(&parts.uri));
        }
        return html_listing(&state, &id, &path, &parts, query_token).await;
    }
    debug_assert_eq!(entry.kind, EntryKind::File);
    id.check_restrictions(&path)?;
    let name = path.file_name().unwrap_or("download");
    if crate::precond::evaluate(&parts.headers, Some(&entry), true)?
        == crate::precond::Verdict::NotModified
    {
        let mut resp = StatusCode::NOT_MODIFIED.into_response();
        entry_headers(resp.headers_mut(), &entry, name);
        common_headers(resp.headers_mut(), query_token);
        return Ok(resp);
    }
    let range = wanted_range(&parts.headers, &entry)?;
    let (status, start, len) = match range {
        Some((a, b)) => (StatusCode::PARTIAL_CONTENT, a, b - a + 1),
        None => (StatusCode::OK, 0, entry.size),
    };
    let body = if parts.method == Method::HEAD {
        Body::empty()
    } else if let Source::Small(bytes) = source {
        let end = usize::try_from(start + len).unwrap_or(bytes.len());
        let start = usize::try_from(start).unwrap_or(0);
        // Answered from memory: one line for the whole transfer.
        DownloadLog::start(&id, &path).end(len, "ok");
        Body::from(bytes.slice(start..end))
    } else if let Source::File(file) = source {
        let log = DownloadLog::streaming(&id, &path, len, range.is_some());
        stream_file(
            file,
            start,
            len,
            state.options().activity_timeout,
            id.rate,
            log,
        )
    } else if let Source::Object(bucket) = source {
        let log = DownloadLog::streaming(&id, &path, len, range.is_some());
        let stream = bucket
            .read(&path, start..start + len, Some(&entry.etag))
            .await;
        match stream {
            Ok(stream) => stream_object(stream, len, id.rate, log),
            Err(e) => {
                log.end(0, "read-error");
                return Err(e.into());
            }
        }
    } else {
        Body::empty()
    };
    let mut resp = Response::new(body);
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    entry_headers(h, &entry, name);
    common_headers(h, query_token);
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    if status == StatusCode::PARTIAL_CONTENT
        && let Ok(v) =
            HeaderValue::from_str(&format!("bytes {start}-{}/{}", start + len - 1, entry.size))
    {
        h.insert(header::CONTENT_RANGE, v);
    }
    Ok(resp)
}

/// Whether the client asks for the JSON manifest (`Accept` names `application/json`,
/// as the project's client and the web app send); anything else gets the HTML listing.
fn wants_json(h: &HeaderMap) -> bool {
    h.get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|m| {
            m.split(';')
                .next()
                .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json"))
        })
}

/// A directory asked for without its trailing slash: `301` to the slash form, as nginx
/// does, so relative links in the listing resolve beneath it. The `Location` is
/// relative (the last segment and a slash), so it holds behind any proxy rewrite.
fn slash_redirect(uri: &axum::http::Uri) -> Response {
    let last = uri.path().rsplit('/').next().unwrap_or_default();
    let target = match uri.query() {
        Some(q) => format!("{last}/?{q}"),
        None => format!("{last}/"),
    };
    let mut resp = StatusCode::MOVED_PERMANENTLY.into_response();
    if let Ok(v) = HeaderValue::from_str(&target) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// Text for HTML: `&`, `<`, `>`, `"` and `'` escaped.
fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The directory's own entries as a plain HTML page (browsers, `wget -r`, rclone's
/// http remote): one link per entry, directories ending in `/`, sizes in bytes and
/// modification times in UTC. Links carry `?token=` only when the request did.
async fn html_listing(
    state: &AppState,
    id: &crate::auth::Identity,
    dir: &RelPath,
    parts: &axum::http::request::Parts,
    query_token: bool,
) -> Result<Response, ApiError> {
    use std::fmt::Write as _;
    let limit = state.options().manifest_limit;
    let mut entries = id.storage.list(dir, limit, false).await?;
    restrict_entries(id, dir, &mut entries);
    let suffix = if query_token {
        parts
            .uri
            .query()
            .and_then(|q| q.split('&').find(|p| p.starts_with("token=")))
            .map(|t| format!("?{}", html_escape(t)))
            .unwrap_or_default()
    } else {
        String::new()
    };
    let title = html_escape(&format!("{}{}", dir, if dir.is_root() { "" } else { "/" }));
    let mut page = format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>Index of {title}</title>\n</head>\n<body>\n<h1>Index of {title}</h1>\n\
         <table>\n<thead><tr><th scope=\"col\">Name</th><th scope=\"col\">Size (bytes)</th>\
         <th scope=\"col\">Modified (UTC)</th></tr></thead>\n<tbody>\n"
    );
    if !dir.is_root() {
        let _ = writeln!(
            page,
            "<tr><td><a href=\"../{suffix}\">../</a> (parent)</td><td></td><td></td></tr>"
        );
    }
    for e in &entries {
        let is_dir = e.kind == EntryKind::Dir;
        let slash = if is_dir { "/" } else { "" };
        let href = utf8_percent_encode(&e.path, SEGMENT).to_string();
        let size = if is_dir {
            String::new()
        } else {
            e.size.to_string()
        };
        let when = jiff::Timestamp::from_second(e.mtime)
            .map(|t| t.strftime("%Y-%m-%d %H:%M:%S").to_string())
            .unwrap_or_default();
        let _ = writeln!(
            page,
            "<tr><td><a href=\"{href}{slash}{suffix}\">{}{slash}</a></td><td>{size}</td><td>{when}</td></tr>",
            html_escape(&e.path)
        );
    }
    page.push_str("</tbody>\n</table>\n</body>\n</html>\n");
    let len = page.len();
    let body = if parts.method == Method::HEAD {
        Body::empty()
    } else {
        Body::from(page)
    };
    let mut resp = Response::new(body);
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    // User data in a page: no scripts, no styles or images from anywhere.
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; base-uri 'none'; form-action 'none'"),
    );
    h.insert("fallback-kind", HeaderValue::from_static("dir"));
    h.insert(header::VARY, HeaderValue::from_static("Accept"));
    common_headers(h, query_token);
    Ok(resp)
}

/// Leaves out of a listing the files the docroot restrictions refuse this user, so a
/// directory download fetches only what it may.
fn restrict_entries(
    id: &crate::auth::Identity,
    dir: &RelPath,
    entries: &mut Vec<fallback_engine::ManifestEntry>,
) {
    let rules = &id.settings.restrictions.value;
    if !rules.is_empty() {
        crate::restrict::retain_allowed(rules, &id.storage.restriction_base(), dir, entries);
    }
}

async fn manifest(
    state: &AppState,
    id: &crate::auth::Identity,
    dir: &RelPath,
    method: &Method,
    query_token: bool,
) -> Result<Response, ApiError> {
    let limit = state.options().manifest_limit;
    let mut entries = id.storage.list(dir, limit, true).await?;
    restrict_entries(id, dir, &mut entries);
    let files = entries.iter().filter(|e| e.kind == EntryKind::File).count();
    let bytes: u64 = entries.iter().map(|e| e.size).sum();
    let json = serde_json::json!({
        "path": dir.to_string(),
        "files": files,
        "bytes": bytes,
        "entries": entries,
    });
    let mut resp = if *method == Method::HEAD {
        let mut r = StatusCode::OK.into_response();
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        r
    } else {
        Json(json).into_response()
    };
    resp.headers_mut()
        .insert("fallback-kind", HeaderValue::from_static("dir"));
    resp.headers_mut()
        .insert(header::VARY, HeaderValue::from_static("Accept"));
    common_headers(resp.headers_mut(), query_token);
    Ok(resp)
}

/// `GET /access/{path}?direction=upload|download`: whether the token allows that
/// transfer, without transferring (for `fallback doctor`). 204, or the refusal a real
/// request would get.
pub(crate) async fn access(
    State(state): State<AppState>,
    req: Request,
) -> Result<Response, ApiError> {
    let (parts, _) = req.into_parts();
    let (_, rest) = split_base(parts.uri.path());
    let raw = rest.strip_prefix("/access").unwrap_or(rest);
    let (path, _) = RelPath::parse_encoded_dir(raw)
        .map_err(|e| ApiError::BadRequest(format!("bad path: {e}")))?;
    let direction = match parts
        .uri
        .query()
        .and_then(|q| q.split('&').find_map(|p| p.strip_prefix("direction=")))
    {
        Some("upload") => Direction::Upload,
        Some("download") => Direction::Download,
        _ => {
            return Err(ApiError::BadRequest(
                "give ?direction=upload or ?direction=download".to_owned(),
            ));
        }
    };
    let id = state.identify(&parts, direction).await?;
    if direction == Direction::Upload {
        id.upload_root()?;
    }
    id.permit(direction, &path)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub(crate) async fn put_file(
    State(state): State<AppState>,
    req: Request,
) -> Result<Response, ApiError> {
    let (parts, body) = req.into_parts();
    let (path, trailing) = file_path(parts.uri.path())?;
    if trailing || path.is_root() {
        return Err(ApiError::Conflict(
            "PUT needs a file path, not a directory".to_owned(),
        ));
    }
    let id = state.identify(&parts, Direction::Upload).await?;
    id.upload_root()?;
    id.permit(Direction::Upload, &path)?;
    id.check_restrictions(&path)?;
    crate::wire::identity_body(&parts.headers)?;
    if parts.headers.contains_key(header::CONTENT_RANGE) {
        // RFC 9110 §14.5: a server that does not do partial PUT must refuse one, or it
        // would store the tail as the whole file (curl -C N -T).
        return Err(ApiError::BadRequest(
            "PUT with Content-Range (a partial PUT) is not supported: send the whole file, \
             or resume with tus at /uploads"
                .to_owned(),
        ));
    }
    let length = match parts.headers.get(header::CONTENT_LENGTH) {
        None => None,
        Some(v) => Some(crate::wire::header_u64(v).ok_or_else(|| {
            ApiError::BadRequest("Content-Length must be a non-negative integer".to_owned())
        })?),
    };
    let max = state.options().max_upload_size;
    if length.is_some_and(|l| l > max) {
        return Err(ApiError::TooLarge(format!(
            "uploads are limited to {max} bytes"
        )));
    }
    let started = Instant::now();
    tracing::info!(user = %id.user, client = %id.client, direction = "upload", path = %path, bytes = length, rate_cap_kbps = id.rate.map(|r| r / 125), "transfer start");
    let outcome = pump(
        id.storage.clone(),
        Start::Put {
            user: id.user.clone(),
            dest: path.clone(),
            length,
            expected: put_digest(&parts.headers)?,
            valid_until: id.deadline(state.options()),
            no_replace: crate::precond::upload(&id, &parts.headers, &path).await?,
            modes: id.modes(),
        },
        body,
        crate::body::Flow::new(state.options(), id.rate),
        true,
    )
    .await;
    log_end(&id, "upload", &path, started, &outcome);
    let outcome = outcome?;
    let done = outcome
        .completed
        .ok_or_else(|| ApiError::Internal("single-shot upload did not complete".to_owned()))?;
    let mut resp = (StatusCode::CREATED, format!("stored {} bytes\n", done.size)).into_response();
    crate::wire::insert_digest(resp.headers_mut(), &done.sha256);
    Ok(resp)
}

/// The SHA-256 a PUT announces for its file: `Repr-Digest`, or `Content-Digest` (the
/// same thing for a body without a content coding, which is all a PUT here takes).
/// Both given and different: refused, as one of them is wrong.
fn put_digest(h: &axum::http::HeaderMap) -> Result<Option<[u8; 32]>, ApiError> {
    let repr = crate::wire::sha256_field(h, "repr-digest")?;
    let content = crate::wire::sha256_field(h, "content-digest")?;
    match (repr, content) {
        (Some(a), Some(b)) if a != b => Err(ApiError::BadRequest(
            "Repr-Digest and Content-Digest differ".to_owned(),
        )),
        (a, b) => Ok(a.or(b)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_ahead_shrinks_as_downloads_pile_up_and_comes_back() {
        let before = STREAMING.load(std::sync::atomic::Ordering::Relaxed);
        let started: Vec<(Streaming, usize)> = (0..64).map(|_| Streaming::start()).collect();
        let blocks: Vec<usize> = started.iter().map(|(_, b)| *b).collect();
        if before == 0 {
            assert_eq!(blocks[..4], [READ_BLOCK; 4], "the first few at full size");
        }
        assert!(blocks.windows(2).all(|w| w[0] >= w[1]), "{blocks:?}");
        assert!(
            blocks
                .iter()
                .all(|b| b % MIN_READ_BLOCK == 0 && *b >= MIN_READ_BLOCK)
        );
        let held: usize = blocks.iter().map(|b| b * BLOCKS_PER_DOWNLOAD).sum();
        assert!(held <= 64 << 20, "64 downloads may hold {} MiB", held >> 20);
        drop(started);
        assert_eq!(STREAMING.load(std::sync::atomic::Ordering::Relaxed), before);
        assert_eq!(Streaming::start().1, READ_BLOCK);
    }

    #[test]
    fn dispositions_are_safe() {
        let v = content_disposition("a\"b\r\nc é.txt");
        let s = v.to_str().unwrap();
        assert!(!s.contains('\r') && !s.contains('\n'));
        assert!(
            s.starts_with("attachment; filename=\"a_b__c _.txt\""),
            "{s}"
        );
        assert!(
            s.contains("filename*=UTF-8''a%22b%0D%0Ac%20%C3%A9.txt"),
            "{s}"
        );
    }
}
