//! Request bodies into the engine: the async side reads frames (with the activity
//! timeout), one blocking thread per upload writes them in 1 MiB blocks.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use bytes::Bytes;
use fallback_engine::{AppendOutcome, RelPath, Storage, UploadId, UploadWriter};
use futures_util::StreamExt as _;

use crate::error::ApiError;

/// Which writer to open.
pub(crate) enum Start {
    /// tus PATCH (or creation-with-upload): append at `offset`.
    Append {
        id: UploadId,
        user: String,
        offset: u64,
        chunk_sha256: Option<[u8; 32]>,
        /// The token's end (Unix seconds, skew included): re-checked before completing.
        valid_until: Option<u64>,
    },
    /// PUT: a single-shot upload.
    Put {
        user: String,
        dest: RelPath,
        length: Option<u64>,
        valid_until: Option<u64>,
        /// `If-None-Match: *`.
        no_replace: bool,
    },
}

impl Start {
    fn valid_until(&self) -> Option<u64> {
        match self {
            Start::Append { valid_until, .. } | Start::Put { valid_until, .. } => *valid_until,
        }
    }
}

enum Msg {
    Data(Bytes),
    Broken(ApiError),
}

fn open(storage: &Storage, start: Start) -> Result<UploadWriter<'_>, ApiError> {
    Ok(match start {
        Start::Append {
            id,
            user,
            offset,
            chunk_sha256,
            ..
        } => storage.writer(&id, &user, offset, chunk_sha256)?,
        Start::Put {
            user,
            dest,
            length,
            no_replace,
            ..
        } => storage.put(&user, &dest, length, None, no_replace)?,
    })
}

/// Streams `body` into the upload. Returns the new offset (and the completed file when
/// this completed it). A body that breaks off or stalls keeps what arrived (tus) or
/// removes the single-shot upload (PUT), and reports the failure.
pub(crate) async fn pump(
    storage: Arc<Storage>,
    start: Start,
    body: Body,
    activity: Option<Duration>,
    max_bytes: u64,
    body_complete: bool,
) -> Result<AppendOutcome, ApiError> {
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
                    let now = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map_or(0, |d| d.as_secs());
                    if completes && valid_until.is_some_and(|t| now >= t) {
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
