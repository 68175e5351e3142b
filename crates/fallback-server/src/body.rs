//! Request bodies into the engine: the async side reads frames (with the activity
//! timeout), one blocking thread per upload writes them in 1 MiB blocks.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, HttpBody};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse as _, Response};
use bytes::Bytes;
use fallback_engine::{AppendOutcome, Completed, RelPath, Storage, UploadId, UploadWriter};
use futures_util::StreamExt as _;

use crate::AppState;
use crate::error::ApiError;
use crate::store::Store;

/// Most bytes of a refused request's body read and thrown away so that the client,
/// still writing, reads the refusal instead of a reset (`write EPIPE`).
const DRAIN_LIMIT: u64 = 64 << 20;

/// A request body handed to the handler that is taken out of `slot` only when the
/// handler first reads it: a body the handler never touched (a refusal before the body)
/// is still in the slot afterwards, for [`edge`] to drain.
struct Lazy {
    slot: Arc<Mutex<Option<Body>>>,
    taken: Option<Body>,
    hint: hyper::body::SizeHint,
}

impl HttpBody for Lazy {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Bytes>, axum::Error>>> {
        if self.taken.is_none() {
            let body = self.slot.lock().ok().and_then(|mut s| s.take());
            match body {
                Some(b) => self.taken = Some(b),
                None => return Poll::Ready(None),
            }
        }
        match &mut self.taken {
            Some(b) => Pin::new(b).poll_frame(cx),
            None => Poll::Ready(None),
        }
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.hint
    }
}

/// Reads and discards `body` up to [`DRAIN_LIMIT`] bytes within `limit`; whether it
/// ended cleanly (the connection can then be kept).
async fn drain(body: Body, limit: Duration) -> bool {
    let mut stream = body.into_data_stream();
    let read_all = async {
        let mut n: u64 = 0;
        while let Some(chunk) = stream.next().await {
            match chunk {
                Ok(b) => {
                    n += b.len() as u64;
                    if n > DRAIN_LIMIT {
                        return false;
                    }
                }
                Err(_) => return false,
            }
        }
        true
    };
    tokio::time::timeout(limit, read_all).await.unwrap_or(false)
}

/// Middleware around every request that carries a body (uploads):
/// - the handler runs in its own task, so a client that goes away (or half-closes its
///   socket) cannot cut it short: a final PATCH completes *and* logs its end;
/// - a body the handler refused without reading (wrong offset, expired token) is read
///   and discarded, bounded by [`DRAIN_LIMIT`] and the activity timeout, before the
///   answer goes out, so a client that writes its whole body first still reads the
///   status. Past the bound the connection is closed after the answer. A client that
///   sent `Expect: 100-continue` was never asked for the body and is not drained.
pub(crate) async fn edge(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let h = req.headers();
    let has_body = h.contains_key(header::TRANSFER_ENCODING)
        || h.get(header::CONTENT_LENGTH)
            .and_then(crate::wire::header_u64)
            .is_some_and(|n| n > 0);
    if !has_body {
        return next.run(req).await;
    }
    let expects_continue = h.contains_key(header::EXPECT);
    let (parts, body) = req.into_parts();
    let hint = body.size_hint();
    let slot = Arc::new(Mutex::new(Some(body)));
    let lazy = Lazy {
        slot: Arc::clone(&slot),
        taken: None,
        hint,
    };
    let req = Request::from_parts(parts, Body::new(lazy));
    let mut resp = match tokio::spawn(next.run(req)).await {
        Ok(r) => r,
        Err(e) => ApiError::Internal(format!("request handler: {e}")).into_response(),
    };
    let untouched = slot.lock().ok().and_then(|mut s| s.take());
    if let Some(body) = untouched {
        let limit = state
            .options()
            .activity_timeout
            .unwrap_or(Duration::from_secs(20));
        if expects_continue || !drain(body, limit).await {
            resp.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
    }
    resp
}

/// Which writer to open.
pub(crate) enum Start {
    /// tus creation-with-upload: the upload is created where its first bytes are
    /// written (one task, no second reading of what was just made); `created` gets it.
    Create {
        new: fallback_engine::NewUpload,
        chunk: Option<fallback_engine::ChunkChecksum>,
        valid_until: Option<crate::auth::Deadline>,
        created: Arc<std::sync::OnceLock<fallback_engine::UploadInfo>>,
    },
    /// tus PATCH (or creation-with-upload): append at `offset`.
    Append {
        id: UploadId,
        /// Where the upload publishes its file (the root for a partial upload).
        dest: RelPath,
        user: String,
        offset: u64,
        chunk: Option<fallback_engine::ChunkChecksum>,
        /// The whole upload's SHA-256 (`Repr-Digest`), checked if this completes it.
        whole: Option<[u8; 32]>,
        /// The token's end: re-checked before completing.
        valid_until: Option<crate::auth::Deadline>,
    },
    /// PUT: a single-shot upload.
    Put {
        user: String,
        dest: RelPath,
        length: Option<u64>,
        /// The file's SHA-256 (`Repr-Digest` or `Content-Digest`), checked before it
        /// is published.
        expected: Option<[u8; 32]>,
        valid_until: Option<crate::auth::Deadline>,
        /// `If-None-Match: *`, or `overwrite` `deny`.
        no_replace: bool,
        /// Modes of the file and of the directories made for it.
        modes: fallback_engine::Modes,
    },
}

impl Start {
    fn valid_until(&self) -> Option<crate::auth::Deadline> {
        match self {
            Start::Append { valid_until, .. }
            | Start::Put { valid_until, .. }
            | Start::Create { valid_until, .. } => valid_until.clone(),
        }
    }
}

enum Msg {
    Data(Bytes),
    Broken(ApiError),
}

fn open(storage: &Storage, start: Start) -> Result<UploadWriter<'_>, ApiError> {
    Ok(match start {
        Start::Create {
            new,
            chunk,
            created,
            ..
        } => {
            let w = storage.create_with_body(new, chunk)?;
            let _ = created.set(w.info().clone());
            w
        }
        Start::Append {
            id,
            user,
            offset,
            chunk,
            whole,
            ..
        } => {
            let mut w = storage.writer(&id, &user, offset, chunk)?;
            if let Some(d) = whole {
                w.expect_sha256(d);
            }
            w
        }
        Start::Put {
            user,
            dest,
            length,
            expected,
            no_replace,
            modes,
            ..
        } => storage.put(&user, &dest, length, expected, no_replace, modes)?,
    })
}

/// How a request body may flow: the activity timeout, the size limit, the rate cap
/// (bytes per second) and how long a new upload lives unfinished.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Flow {
    pub(crate) activity: Option<Duration>,
    pub(crate) max_bytes: u64,
    pub(crate) rate: Option<u64>,
    pub(crate) upload_ttl: Duration,
}

impl Flow {
    /// The service's limits, at `rate`.
    pub(crate) fn new(options: &crate::Options, rate: Option<u64>) -> Self {
        Flow {
            activity: options.activity_timeout,
            max_bytes: options.max_upload_size,
            rate,
            upload_ttl: options.upload_ttl,
        }
    }
}

/// Streams `body` into the upload. Returns the new offset (and the completed file when
/// this completed it). A body that breaks off or stalls keeps what arrived (tus) or
/// removes the single-shot upload (PUT), and reports the failure. Under a rate cap
/// the body is read no faster than that: TCP then slows the client down, and time
/// spent waiting on the cap never counts as inactivity. `body_complete`: the body's
/// clean end is the file's end (a PUT).
pub(crate) async fn pump(
    store: Store,
    start: Start,
    body: Body,
    flow: Flow,
    body_complete: bool,
) -> Result<AppendOutcome, ApiError> {
    crate::stats::transfer_started("upload");
    let (outcome, total) = match store {
        Store::Local(s) => pump_local(s, start, body, flow, body_complete).await,
        Store::S3(b) => pump_bucket(&b, start, body, flow, body_complete).await,
    };
    crate::stats::bytes_received(total);
    match &outcome {
        Ok(o) => {
            crate::stats::transfer_ended("upload", "ok");
            if o.completed.is_some() {
                crate::stats::upload_completed();
            }
        }
        Err(_) => crate::stats::transfer_ended("upload", "failed"),
    }
    outcome
}

/// The next bytes of a request body under `flow`: `Ok(None)` at its clean end, the
/// refusal when it stalls, grows past the limit or breaks off. Waits out the rate cap.
async fn next_bytes(
    stream: &mut axum::body::BodyDataStream,
    flow: &Flow,
    pace: &mut Option<crate::pace::Pace>,
    total: &mut u64,
) -> Result<Option<Bytes>, ApiError> {
    let next = match flow.activity {
        Some(d) => tokio::time::timeout(d, stream.next())
            .await
            .map_err(|_| ApiError::Timeout)?,
        None => stream.next().await,
    };
    match next {
        None => Ok(None),
        Some(Ok(bytes)) => {
            *total += bytes.len() as u64;
            if let Some(p) = pace.as_mut() {
                let wait = p.after(bytes.len());
                if !wait.is_zero() {
                    tokio::time::sleep(wait).await;
                }
            }
            if *total > flow.max_bytes {
                return Err(ApiError::TooLarge(format!(
                    "uploads are limited to {} bytes",
                    flow.max_bytes
                )));
            }
            Ok(Some(bytes))
        }
        Some(Err(e)) => Err(ApiError::BadRequest(format!(
            "the request body broke off: {e}"
        ))),
    }
}

/// [`pump`] into a docroot on this host: one blocking thread writes what the async
/// side reads.
async fn pump_local(
    storage: Arc<Storage>,
    start: Start,
    body: Body,
    flow: Flow,
    body_complete: bool,
) -> (Result<AppendOutcome, ApiError>, u64) {
    let mut pace = flow.rate.map(crate::pace::Pace::new);
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Msg>(32);
    let valid_until = start.valid_until();
    let writer = tokio::task::spawn_blocking(move || {
        let mut w = open(&storage, start)?;
        loop {
            match rx.blocking_recv() {
                Some(Msg::Data(b)) => {
                    if let Err(e) = w.write(&b) {
                        return Err(e.into());
                    }
                }
                Some(Msg::Broken(reason)) => {
                    let kept = w.abort()?;
                    tracing::info!(offset = kept, "body broke off; received bytes kept");
                    return Err(reason);
                }
                None => {
                    let completes = match w.info().length {
                        Some(l) => w.offset() == l,
                        None => body_complete,
                    };
                    if completes
                        && valid_until
                            .as_ref()
                            .is_some_and(crate::auth::Deadline::passed)
                    {
                        // The token expired while the body was arriving: the scope is
                        // re-checked before a file is completed. Bytes are kept (tus); a
                        // request with a valid token completes the file.
                        let kept = w.abort()?;
                        return Err(expired_during(kept));
                    }
                    return Ok(w.finish(body_complete)?);
                }
            }
        }
    });
    let mut stream = body.into_data_stream();
    let mut total: u64 = 0;
    loop {
        match next_bytes(&mut stream, &flow, &mut pace, &mut total).await {
            Ok(None) => break,
            Ok(Some(bytes)) => {
                if tx.send(Msg::Data(bytes)).await.is_err() {
                    // The writer stopped (it reports why).
                    break;
                }
            }
            Err(reason) => {
                let _ = tx.send(Msg::Broken(reason)).await;
                break;
            }
        }
    }
    drop(tx);
    let outcome = writer
        .await
        .map_err(|e| ApiError::Internal(format!("writer task: {e}")))
        .and_then(|r| r);
    (outcome, total)
}

fn expired_during(kept: u64) -> ApiError {
    ApiError::Unauthorized {
        reason: format!("token expired during the upload: {kept} bytes kept, file not completed"),
    }
}

/// [`pump`] into a bucket: the body is read as the bucket's append takes it (one part
/// buffered at most, [`fallback_s3::AppendOptions`]); a refusal of the body (stall,
/// size, break) is what the request answers, after what was recorded is kept.
async fn pump_bucket(
    bucket: &fallback_s3::Bucket,
    start: Start,
    body: Body,
    flow: Flow,
    body_complete: bool,
) -> (Result<AppendOutcome, ApiError>, u64) {
    let total = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let broken: Arc<Mutex<Option<ApiError>>> = Arc::new(Mutex::new(None));
    let feed = {
        let (total, broken) = (Arc::clone(&total), Arc::clone(&broken));
        let pace = flow.rate.map(crate::pace::Pace::new);
        let state = (body.into_data_stream(), pace, 0u64, false);
        futures_util::stream::unfold(state, move |(mut stream, mut pace, mut n, done)| {
            let (total, broken) = (Arc::clone(&total), Arc::clone(&broken));
            async move {
                if done {
                    return None;
                }
                let got = next_bytes(&mut stream, &flow, &mut pace, &mut n).await;
                total.store(n, std::sync::atomic::Ordering::Relaxed);
                match got {
                    Ok(Some(b)) => Some((Ok(b), (stream, pace, n, false))),
                    Ok(None) => None,
                    Err(reason) => {
                        let why = std::io::Error::other(reason.reason());
                        if let Ok(mut slot) = broken.lock() {
                            *slot = Some(reason);
                        }
                        Some((Err(why), (stream, pace, n, true)))
                    }
                }
            }
        })
    };
    let feed = Box::pin(feed);
    let outcome = append_bucket(bucket, start, feed, flow, body_complete).await;
    // The body's own refusal, when it was the cause, is the answer.
    let outcome = match (outcome, broken.lock().ok().and_then(|mut b| b.take())) {
        (Err(_), Some(reason)) => Err(reason),
        (o, _) => o,
    };
    (outcome, total.load(std::sync::atomic::Ordering::Relaxed))
}

async fn append_bucket<S>(
    bucket: &fallback_s3::Bucket,
    start: Start,
    feed: S,
    flow: Flow,
    body_complete: bool,
) -> Result<AppendOutcome, ApiError>
where
    S: futures_util::Stream<Item = Result<Bytes, std::io::Error>> + Unpin,
{
    let valid_until = start.valid_until();
    // The token is re-checked before an object is completed; an expired one keeps the
    // bytes (resumable) and completes nothing.
    let expired = std::sync::atomic::AtomicBool::new(false);
    let may_complete = || {
        let ok = !valid_until
            .as_ref()
            .is_some_and(crate::auth::Deadline::passed);
        expired.store(!ok, std::sync::atomic::Ordering::Relaxed);
        ok
    };
    let mut opts = fallback_s3::AppendOptions {
        may_complete: Some(&may_complete),
        ..fallback_s3::AppendOptions::default()
    };
    let (id, user, dest, single_shot, offset) = match start {
        Start::Create {
            new,
            chunk,
            created,
            ..
        } => {
            let state = bucket
                .create_upload(&new, false, flow.upload_ttl.as_secs())
                .await?;
            let info = state.info()?;
            let _ = created.set(info);
            opts.chunk = chunk;
            (state.id, new.user, new.dest, false, 0)
        }
        Start::Append {
            id,
            dest,
            user,
            offset,
            chunk,
            whole,
            ..
        } => {
            opts.chunk = chunk;
            opts.expected = whole;
            (id.as_str().to_owned(), user, dest, false, offset)
        }
        Start::Put {
            user,
            dest,
            length,
            expected,
            no_replace,
            ..
        } => {
            let new = fallback_engine::NewUpload {
                user: user.clone(),
                dest: dest.clone(),
                length,
                metadata: Vec::new(),
                expected_sha256: expected,
                no_replace,
                modes: fallback_engine::Modes::default(),
            };
            let state = bucket
                .create_upload(&new, true, flow.upload_ttl.as_secs())
                .await?;
            opts.finish = body_complete;
            (state.id, user, dest, true, 0)
        }
    };
    let appended = bucket.append(&id, &user, offset, feed, opts).await;
    let result = match appended {
        Ok(a) => match a.completed {
            Some((sha256, _)) => Ok(AppendOutcome {
                offset: a.offset,
                completed: Some(Completed {
                    path: dest,
                    size: a.offset,
                    sha256,
                }),
            }),
            None if expired.load(std::sync::atomic::Ordering::Relaxed) => {
                Err(expired_during(a.offset))
            }
            None if single_shot => Err(ApiError::Internal(
                "single-shot upload did not complete".to_owned(),
            )),
            None => Ok(AppendOutcome {
                offset: a.offset,
                completed: None,
            }),
        },
        Err(e) => Err(e.into()),
    };
    if single_shot && result.is_err() {
        // A PUT never resumes: nothing of it stays.
        let _ = bucket.terminate(&id, &user).await;
    }
    result
}
/// One log line per transfer end: user, direction, path, bytes, duration, rate, outcome.
pub(crate) fn log_end(
    who: &crate::auth::Identity,
    direction: &str,
    path: &fallback_engine::RelPath,
    started: std::time::Instant,
    outcome: &Result<fallback_engine::AppendOutcome, ApiError>,
) {
    let elapsed = started.elapsed();
    let duration_ms = u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX);
    let (user, client) = (who.user.as_str(), who.client.as_str());
    match outcome {
        Ok(o) => {
            // MB/s for people, rounded to 0.01: precision loss is irrelevant here.
            #[allow(clippy::cast_precision_loss)]
            let rate_mb_s = if elapsed.is_zero() {
                0.0
            } else {
                (o.offset as f64 / elapsed.as_secs_f64() / 1e4).round() / 100.0
            };
            tracing::info!(
                user,
                client,
                direction,
                path = %path,
                offset = o.offset,
                complete = o.completed.is_some(),
                duration_ms,
                rate_mb_s,
                outcome = "ok",
                "transfer end"
            );
        }
        Err(e) => tracing::info!(
            user,
            client,
            direction,
            path = %path,
            duration_ms,
            outcome = "failed",
            reason = %e.reason(),
            "transfer end"
        ),
    }
}
