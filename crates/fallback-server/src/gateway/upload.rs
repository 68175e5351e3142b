//! WebSocket uploads, `GET /v1/upload` (base64 slices in JSON) and `GET /v2/upload`
//! (binary frames between two `slice_upload` JSON messages).
//!
//! The exchange, as IBM's SDK and aspera-cli drive it:
//! 1. `{"transfer_spec": {...}}` → `end upload` (the token is checked here).
//! 2. Per file, v1: `{"slice_upload": {name, size, slice, total_slices, data}}` per
//!    slice → `end upload`. v2: the `slice_upload` JSON without `data` → `end_slice_upload`,
//!    each binary frame → `end upload`, the same JSON again after the last frame →
//!    `end_slice_upload`.
//! 3. The client closes.
//!
//! Each file is a single-shot upload through the same pump as a PUT: staged, hashed,
//! published atomically at its final path. The acknowledgement of a file's last bytes
//! is sent only once the file is durable there: the SDK counts the transfer complete
//! on the last `end upload`. Anything wrong is `{"message", "code"}` then a close with
//! code 4000 + the HTTP status and a reason; a file cut off in the middle (close,
//! error, stall past the activity timeout) leaves nothing at its final path.

use std::time::Instant;

use axum::extract::State;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use fallback_engine::RelPath;
use fallback_token::Direction;
use serde::Deserialize;

use super::{Sink, TransferSpec, close_code, error_json, spec_path};
use crate::AppState;
use crate::auth::Identity;
use crate::error::ApiError;

/// The largest message taken: a v1 slice of the SDK's 64,000 bytes is about 86 KB of
/// JSON; apps may raise the slice size (to 1 MiB, 1.4 MB of base64), never past this.
/// With the queue of a file's writer ([`super::Sink`]), it bounds what one socket holds.
const MAX_MESSAGE: usize = 4 << 20;

/// Which upload protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Version {
    /// Base64 slices inside JSON.
    V1,
    /// Binary frames.
    V2,
}

pub(crate) async fn v1(state: State<AppState>, parts: Parts, ws: WebSocketUpgrade) -> Response {
    start(state, parts, ws, Version::V1)
}

pub(crate) async fn v2(state: State<AppState>, parts: Parts, ws: WebSocketUpgrade) -> Response {
    start(state, parts, ws, Version::V2)
}

fn start(
    State(state): State<AppState>,
    parts: Parts,
    ws: WebSocketUpgrade,
    version: Version,
) -> Response {
    // Browsers send any page's WebSocket anywhere: the origin is checked here.
    if let Err(e) = super::check_origin(&state, &parts) {
        return super::GwError(e).into_response();
    }
    ws.max_message_size(MAX_MESSAGE)
        .max_frame_size(MAX_MESSAGE)
        .on_upgrade(move |socket| async move {
            let mut session = Session {
                state,
                parts,
                version,
                sender: None,
                file: None,
                files: 0,
                bytes: 0,
            };
            session.run(socket).await;
        })
}

/// `slice_upload`: one slice (v1) or a file's opening or closing message (v2).
#[derive(Debug, Deserialize)]
#[allow(clippy::struct_field_names)] // The protocol's names.
struct Slice {
    name: String,
    size: u64,
    #[serde(default)]
    slice: u64,
    #[serde(default, rename = "fileIndex")]
    file_index: Option<u64>,
    #[serde(default)]
    data: Option<String>,
}

/// A client message, as JSON.
#[derive(Debug, Deserialize)]
struct ClientMessage {
    transfer_spec: Option<TransferSpec>,
    slice_upload: Option<Slice>,
}

/// Who sends, and where their files go.
struct Sender {
    id: Identity,
    spec: TransferSpec,
    /// `destination_root`, or the token's destination.
    dir: RelPath,
}

/// A file being received.
struct Incoming {
    name: String,
    index: Option<u64>,
    size: u64,
    received: u64,
    /// v1: the slice expected next.
    next_slice: u64,
    sink: Sink,
}

/// What a file's state is after a message.
enum FileState {
    /// Receiving bytes.
    Open(Box<Incoming>),
    /// v2: all bytes in and published, the closing JSON not yet seen.
    AwaitingClose { name: String, index: Option<u64> },
}

struct Session {
    state: AppState,
    parts: Parts,
    version: Version,
    sender: Option<Sender>,
    file: Option<FileState>,
    files: u64,
    bytes: u64,
}

/// What to answer a message with.
enum Reply {
    /// `end upload`.
    Data,
    /// `end_slice_upload`.
    Slice,
}

impl Session {
    async fn run(&mut self, mut socket: WebSocket) {
        let started = Instant::now();
        let activity = self.state.options().activity_timeout;
        let end: Result<(), ApiError> = loop {
            let next = match activity {
                Some(d) => match tokio::time::timeout(d, socket.recv()).await {
                    Ok(n) => n,
                    Err(_) => break Err(ApiError::Timeout),
                },
                None => socket.recv().await,
            };
            let msg = match next {
                None | Some(Ok(Message::Close(_))) => break Ok(()),
                // A client that goes without a closing handshake between files (IBM's
                // SDK closes 5 s after its last file; a page may be gone by then) has
                // ended its session; in the middle of a file it has cut it off.
                Some(Err(_)) if !matches!(self.file, Some(FileState::Open(_))) => break Ok(()),
                Some(Err(e)) => {
                    break Err(ApiError::BadRequest(format!("the WebSocket broke: {e}")));
                }
                Some(Ok(m)) => m,
            };
            // A frame that does not end its file is acknowledged before it is handed
            // on: the acknowledgement only asks for the next one (IBM's SDK sends
            // nothing until it comes), and the hand-off then overlaps the round trip.
            // The last frame's acknowledgement still waits for the file to be published.
            let early = matches!((&msg, &self.file), (Message::Binary(b), Some(FileState::Open(f)))
                if self.version == Version::V2 && f.received + (b.len() as u64) < f.size);
            if early
                && socket
                    .send(Message::Text("end upload".into()))
                    .await
                    .is_err()
            {
                break Err(ApiError::BadRequest(
                    "the WebSocket closed before an acknowledgement".to_owned(),
                ));
            }
            let reply = match msg {
                Message::Text(t) => self.text(t.as_str()).await,
                Message::Binary(b) => self.binary(b).await,
                Message::Ping(_) | Message::Pong(_) => continue,
                Message::Close(_) => break Ok(()),
            };
            let ack = match reply {
                Ok(_) if early => continue,
                Ok(Reply::Data) => "end upload",
                Ok(Reply::Slice) => "end_slice_upload",
                Err(e) => break Err(e),
            };
            if socket.send(Message::Text(ack.into())).await.is_err() {
                break Err(ApiError::BadRequest(
                    "the WebSocket closed before an acknowledgement".to_owned(),
                ));
            }
        };
        // A file cut off in the middle is dropped whole: nothing reaches its path.
        let cut = match self.file.take() {
            Some(FileState::Open(f)) => {
                let why = match &end {
                    Err(e) => e.reason(),
                    Ok(()) => "the client closed the WebSocket in the middle of a file".to_owned(),
                };
                self.abort(*f, why.clone()).await;
                Some(why)
            }
            _ => None,
        };
        let (user, client) = self.sender.as_ref().map_or(("-", "-".to_owned()), |s| {
            (s.id.user.as_str(), s.id.client.clone())
        });
        let duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        match (&end, cut) {
            (Ok(()), None) => {
                tracing::info!(
                    user,
                    client,
                    files = self.files,
                    bytes = self.bytes,
                    duration_ms,
                    outcome = "ok",
                    "gateway upload session end"
                );
            }
            (Ok(()), Some(reason)) => {
                tracing::info!(
                    user,
                    client,
                    files = self.files,
                    bytes = self.bytes,
                    duration_ms,
                    outcome = "failed",
                    reason,
                    "gateway upload session end"
                );
            }
            (Err(e), _) => {
                tracing::info!(user, client, files = self.files, bytes = self.bytes, duration_ms, outcome = "failed", reason = %e.reason(), "gateway upload session end");
                let status = e.status();
                let _ = socket
                    .send(Message::Text(error_json(e).to_string().into()))
                    .await;
                // A close reason is at most 123 bytes.
                let mut reason = e.public();
                while reason.len() > 123 {
                    reason.pop();
                }
                let _ = socket
                    .send(Message::Close(Some(CloseFrame {
                        code: close_code(status),
                        reason: reason.into(),
                    })))
                    .await;
            }
        }
    }

    async fn text(&mut self, text: &str) -> Result<Reply, ApiError> {
        let msg: ClientMessage = serde_json::from_str(text).map_err(|e| {
            ApiError::BadRequest(format!(
                "a text message must be {{\"transfer_spec\"}} or {{\"slice_upload\"}} JSON: {e}"
            ))
        })?;
        if let Some(spec) = msg.transfer_spec {
            if self.sender.is_some() {
                return Err(ApiError::BadRequest(
                    "one transfer_spec per WebSocket".to_owned(),
                ));
            }
            let id = self
                .state
                .identify_spec(&self.parts, &spec, Direction::Upload)
                .await?;
            let token_dir = id.upload_root()?;
            let dir = match spec.destination_root.as_deref() {
                Some(d) if !d.trim().is_empty() => spec_path(d, "destination_root")?,
                _ => token_dir,
            };
            tracing::info!(user = %id.user, client = %id.client, dir = %dir, version = ?self.version, "gateway upload session start");
            self.sender = Some(Sender { id, spec, dir });
            return Ok(Reply::Data);
        }
        let Some(slice) = msg.slice_upload else {
            return Err(ApiError::BadRequest(
                "a text message must hold transfer_spec or slice_upload".to_owned(),
            ));
        };
        if self.sender.is_none() {
            return Err(ApiError::BadRequest(
                "the transfer_spec comes first".to_owned(),
            ));
        }
        match self.version {
            Version::V1 => self.v1_slice(slice).await,
            Version::V2 => self.v2_marker(&slice).await,
        }
    }

    /// v1: a slice with its data in base64.
    async fn v1_slice(&mut self, slice: Slice) -> Result<Reply, ApiError> {
        use base64::Engine as _;
        let data = slice.data.as_deref().ok_or_else(|| {
            ApiError::BadRequest("a v1 slice_upload carries its bytes in data".to_owned())
        })?;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(data.trim())
            .map_err(|e| ApiError::BadRequest(format!("slice data is not base64: {e}")))?;
        match self.file.take() {
            Some(FileState::Open(f)) => {
                if f.name != slice.name || slice.slice != f.next_slice {
                    let why = format!(
                        "expected slice {} of {:?}, got slice {} of {:?}",
                        f.next_slice, f.name, slice.slice, slice.name
                    );
                    self.abort(*f, why.clone()).await;
                    return Err(ApiError::BadRequest(why));
                }
                self.file = Some(FileState::Open(f));
            }
            Some(FileState::AwaitingClose { .. }) | None => self.open(&slice).await?,
        }
        if let Some(FileState::Open(f)) = self.file.as_mut() {
            f.next_slice += 1;
        }
        self.data(Bytes::from(bytes)).await
    }

    /// v2: a file's opening or closing JSON.
    async fn v2_marker(&mut self, slice: &Slice) -> Result<Reply, ApiError> {
        if slice.data.is_some() {
            return Err(ApiError::BadRequest(
                "v2 sends slices as binary frames: use /v1/upload for base64 data".to_owned(),
            ));
        }
        match self.file.take() {
            Some(FileState::AwaitingClose { name, index })
                if name == slice.name && index == slice.file_index =>
            {
                Ok(Reply::Slice)
            }
            Some(FileState::Open(f)) => {
                let why = format!(
                    "slice_upload for {:?} while {:?} has {} of {} bytes",
                    slice.name, f.name, f.received, f.size
                );
                self.abort(*f, why.clone()).await;
                Err(ApiError::BadRequest(why))
            }
            // The next file (a client that sends no closing message).
            Some(FileState::AwaitingClose { .. }) | None => {
                self.open(slice).await?;
                if slice.size == 0
                    && let Some(FileState::Open(f)) = self.file.take()
                {
                    // No frame will come: the empty file is complete now.
                    self.finish(*f).await?;
                    self.file = Some(FileState::AwaitingClose {
                        name: slice.name.clone(),
                        index: slice.file_index,
                    });
                }
                Ok(Reply::Slice)
            }
        }
    }

    /// v2: a binary frame of the open file.
    async fn binary(&mut self, bytes: Bytes) -> Result<Reply, ApiError> {
        if self.version == Version::V1 {
            return Err(ApiError::BadRequest(
                "v1 takes base64 slices in JSON: use /v2/upload for binary frames".to_owned(),
            ));
        }
        if !matches!(self.file, Some(FileState::Open(_))) {
            return Err(ApiError::BadRequest(
                "a binary frame before its file's slice_upload message".to_owned(),
            ));
        }
        self.data(bytes).await
    }

    /// Starts receiving the file `slice` announces.
    async fn open(&mut self, slice: &Slice) -> Result<(), ApiError> {
        let Some(sender) = &self.sender else {
            return Err(ApiError::BadRequest(
                "the transfer_spec comes first".to_owned(),
            ));
        };
        if self.version == Version::V1 && slice.slice != 0 {
            return Err(ApiError::BadRequest(format!(
                "{:?} starts at slice {}, not 0",
                slice.name, slice.slice
            )));
        }
        let dest = destination(sender, &slice.name)?;
        let sink = Sink::open(&self.state, &sender.id, dest, Some(slice.size)).await?;
        self.file = Some(FileState::Open(Box::new(Incoming {
            name: slice.name.clone(),
            index: slice.file_index,
            size: slice.size,
            received: 0,
            next_slice: 0,
            sink,
        })));
        Ok(())
    }

    /// Bytes of the open file; completes it when they are its last.
    async fn data(&mut self, bytes: Bytes) -> Result<Reply, ApiError> {
        let Some(FileState::Open(mut f)) = self.file.take() else {
            return Err(ApiError::BadRequest("bytes outside a file".to_owned()));
        };
        let n = bytes.len() as u64;
        if f.received + n > f.size {
            let why = format!("{:?} announced {} bytes and sent more", f.name, f.size);
            self.abort(*f, why.clone()).await;
            return Err(ApiError::BadRequest(why));
        }
        f.received += n;
        self.bytes += n;
        if !f.sink.send(bytes).await {
            return Err(match &self.sender {
                Some(s) => f.sink.stopped(&s.id).await,
                None => ApiError::Internal("a file without a sender".to_owned()),
            });
        }
        if f.received < f.size {
            self.file = Some(FileState::Open(f));
            return Ok(Reply::Data);
        }
        let (name, index) = (f.name.clone(), f.index);
        self.finish(*f).await?;
        if self.version == Version::V2 {
            self.file = Some(FileState::AwaitingClose { name, index });
        }
        Ok(Reply::Data)
    }

    /// Ends a file whose bytes are all in: published and durable when this returns.
    async fn finish(&mut self, f: Incoming) -> Result<(), ApiError> {
        let Some(s) = &self.sender else {
            return Err(ApiError::Internal("a file without a sender".to_owned()));
        };
        f.sink.finish(&s.id).await?;
        self.files += 1;
        Ok(())
    }

    /// Drops a file cut off in the middle: its staged bytes go, nothing is published.
    async fn abort(&mut self, f: Incoming, why: String) {
        if let Some(s) = &self.sender {
            f.sink.abort(&s.id, why).await;
        }
    }
}

/// Where a file named `name` (a relative path for a folder's files) goes:
/// `destination_root`, then the path's `destination` when the spec gives one for
/// that source (a folder when several sources share it, else the file's new name),
/// else the name.
fn destination(sender: &Sender, name: &str) -> Result<RelPath, ApiError> {
    let rel = RelPath::parse(name)
        .map_err(|e| ApiError::BadRequest(format!("file name {name:?}: {e}")))?;
    if rel.is_root() {
        return Err(ApiError::BadRequest("a file needs a name".to_owned()));
    }
    let paths = &sender.spec.paths;
    let named = paths
        .iter()
        .find(|p| p.source.as_deref() == Some(name))
        .and_then(|p| p.destination.as_deref())
        .map(str::trim)
        .filter(|d| !d.is_empty() && *d != "." && *d != "/");
    let dest = match named {
        None => sender.dir.join(&rel),
        Some(d) => {
            let d_rel = spec_path(d, "destination")?;
            let shared = paths
                .iter()
                .filter(|p| p.destination.as_deref().map(str::trim) == Some(d))
                .count();
            if shared > 1 || d.ends_with('/') {
                sender.dir.join(&d_rel).join(&rel)
            } else {
                sender.dir.join(&d_rel)
            }
        }
    };
    if dest.is_root() {
        return Err(ApiError::BadRequest(format!("{name:?} names no file")));
    }
    Ok(dest)
}
