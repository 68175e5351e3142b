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
use fallback_engine::{AppendOutcome, RelPath, Storage, UploadId, UploadWriter};
use futures_util::StreamExt as _;

use crate::AppState;
use crate::error::ApiError;

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

/// Streams `body` into the upload. Returns the new offset (and the completed file when
/// this completed it). A body that breaks off or stalls keeps what arrived (tus) or
/// removes the single-shot upload (PUT), and reports the failure. Under a rate cap
/// (`rate`, bytes per second) the body is read no faster than that: TCP then slows the
/// client down, and time spent waiting on the cap never counts as inactivity.
pub(crate) async fn pump(
    storage: Arc<Storage>,
    start: Start,
    body: Body,
    activity: Option<Duration>,
    max_bytes: u64,
    body_complete: bool,
    rate: Option<u64>,
) -> Result<AppendOutcome, ApiError> {
    let mut pace = rate.map(crate::pace::Pace::new);
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Msg>(32);
    let valid_until = start.valid_until();
    crate::stats::transfer_started("upload");
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
                        return Err(ApiError::Unauthorized {
                            reason: format!(
                                "token expired during the upload: {kept} bytes kept, file not completed"
                            ),
                        });
                    }
                    return Ok(w.finish(body_complete)?);
                }
            }
        }
    });
    let mut stream = body.into_data_stream();
    let mut total: u64 = 0;
    loop {
        let next = if let Some(d) = activity {
            if let Ok(n) = tokio::time::timeout(d, stream.next()).await {
                n
            } else {
                let _ = tx.send(Msg::Broken(ApiError::Timeout)).await;
                break;
            }
        } else {
            stream.next().await
        };
        match next {
            None => break,
            Some(Ok(bytes)) => {
                total += bytes.len() as u64;
                if let Some(p) = pace.as_mut() {
                    let wait = p.after(bytes.len());
                    if !wait.is_zero() {
                        tokio::time::sleep(wait).await;
                    }
                }
                if total > max_bytes {
                    let _ = tx
                        .send(Msg::Broken(ApiError::TooLarge(format!(
                            "uploads are limited to {max_bytes} bytes"
                        ))))
                        .await;
                    break;
                }
                if tx.send(Msg::Data(bytes)).await.is_err() {
                    // The writer stopped (it reports why).
                    break;
                }
            }
            Some(Err(e)) => {
                let _ = tx
                    .send(Msg::Broken(ApiError::BadRequest(format!(
                        "the request body broke off: {e}"
                    ))))
                    .await;
                break;
            }
        }
    }
    drop(tx);
    let outcome = writer
        .await
        .map_err(|e| ApiError::Internal(format!("writer task: {e}")))
        .and_then(|r| r);
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
