//! The client against the real router, served in-process on 127.0.0.1 with a layer in
//! front that can fail, cut or corrupt chosen requests: the fallback decision, resume,
//! retries and end-to-end verification, without a daemon.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse as _, Response};
use fallback_client::{Error, Event, Events, Options, Retry, Session};
use fallback_testkit::{download_token, make_file, sha256_file, upload_token};

/// What the layer in front of the router does to one request: pass it, answer 503, or
/// pass it with its response body's (or its request body's) first byte flipped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fault {
    Pass,
    Unavailable,
    FlipFirstByte,
    FlipFirstRequestByte,
    /// Passed with its `ETag` removed (a server that names no version).
    NoEtag,
}

/// `body` with its first byte flipped.
fn flipped(body: Body) -> Body {
    use futures_util::StreamExt as _;
    let mut first = true;
    Body::from_stream(body.into_data_stream().map(move |chunk| {
        let chunk = chunk?;
        if first && !chunk.is_empty() {
            first = false;
            let mut v = chunk.to_vec();
            v[0] ^= 0xff;
            return Ok::<_, axum::Error>(axum::body::Bytes::from(v));
        }
        Ok(chunk)
    }))
}

/// Decides a fault per request (method, path) and records what passed.
#[derive(Default)]
struct Script {
    rules: Vec<(String, String, Vec<Fault>)>,
    /// (method, path) of every request that reached the layer.
    seen: Vec<(String, String)>,
}

/// The router on 127.0.0.1 behind a TCP relay (the address clients get) that can cut
/// a connection as a network does.
struct Served {
    dir: tempfile::TempDir,
    addr: SocketAddr,
    script: Arc<Mutex<Script>>,
    /// Bytes the next connection may carry from the client before the relay cuts it
    /// (0: no cut).
    cut: Arc<std::sync::atomic::AtomicUsize>,
    /// The same, for bytes from the server.
    cut_down: Arc<std::sync::atomic::AtomicUsize>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Served {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// Relays connections to `upstream`. While a cut is set, every connection counts the
/// bytes it carries from the client (`cut`) or from the server (`cut_down`); the first
/// to carry that many is closed (both ways) and the cut is spent, so the one cut is the
/// one that moved the bytes, whichever connection the client's pool chose for them.
async fn relay(
    listener: tokio::net::TcpListener,
    upstream: SocketAddr,
    cut: Arc<std::sync::atomic::AtomicUsize>,
    cut_down: Arc<std::sync::atomic::AtomicUsize>,
) {
    use std::sync::atomic::Ordering::SeqCst;
    while let Ok((mut client, _)) = listener.accept().await {
        let (cut, cut_down) = (Arc::clone(&cut), Arc::clone(&cut_down));
        tokio::spawn(async move {
            let Ok(mut server) = tokio::net::TcpStream::connect(upstream).await else {
                return;
            };
            if cut.load(SeqCst) == 0 && cut_down.load(SeqCst) == 0 {
                let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                return;
            }
            let (mut cr, mut cw) = client.split();
            let (mut sr, mut sw) = server.split();
            // The cut: when either direction spends the armed budget, both end.
            tokio::select! {
                () = pass(&mut cr, &mut sw, &cut) => {}
                () = pass(&mut sr, &mut cw, &cut_down) => {}
            }
        });
    }
}

/// Copies `from` to `to`; once it carried the bytes `armed` holds (read at the start;
/// 0: no cut), it ends if it is the first to get there (it then disarms the cut), else
/// goes on unlimited.
async fn pass(
    from: &mut (impl tokio::io::AsyncRead + Unpin),
    to: &mut (impl tokio::io::AsyncWrite + Unpin),
    armed: &std::sync::atomic::AtomicUsize,
) {
    use std::sync::atomic::Ordering::SeqCst;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let budget = armed.load(SeqCst);
    let mut carried = 0usize;
    let mut buf = vec![0u8; 64 << 10];
    loop {
        let room = if budget == 0 || carried >= budget {
            buf.len()
        } else {
            (budget - carried).min(buf.len())
        };
        let n = match from.read(&mut buf[..room]).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
        let before = carried;
        carried += n;
        if budget > 0
            && before < budget
            && carried >= budget
            && armed.compare_exchange(budget, 0, SeqCst, SeqCst).is_ok()
        {
            return;
        }
    }
}

impl Served {
    async fn start() -> Served {
        let dir = tempfile::tempdir().unwrap();
        let docroot = dir.path().join("data");
        std::fs::create_dir_all(&docroot).unwrap();
        let conf = fallback_testkit::config(&docroot);
        let state =
            fallback_server::AppState::new(conf, fallback_server::Options::default()).unwrap();
        let script = Arc::new(Mutex::new(Script::default()));
        let s = Arc::clone(&script);
        let app =
            Router::new()
                .merge(fallback_server::router(state))
                .layer(axum::middleware::from_fn(
                    move |req: Request, next: Next| {
                        let s = Arc::clone(&s);
                        async move { layer(&s, req, next).await }
                    },
                ));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let upstream = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        let front = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = front.local_addr().unwrap();
        let cut = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let cut_down = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let relay = tokio::spawn(relay(
            front,
            upstream,
            Arc::clone(&cut),
            Arc::clone(&cut_down),
        ));
        Served {
            dir,
            addr,
            script,
            cut,
            cut_down,
            tasks: vec![server, relay],
        }
    }

    fn docroot(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The next `faults` of requests `method` to paths containing `path`.
    fn on(&self, method: &str, path: &str, faults: &[Fault]) {
        self.script.lock().unwrap().rules.push((
            method.to_owned(),
            path.to_owned(),
            faults.to_vec(),
        ));
    }

    /// Cuts the next connection after it carried `bytes` from the client.
    fn cut_next_connection_after(&self, bytes: usize) {
        self.cut.store(bytes, std::sync::atomic::Ordering::SeqCst);
    }

    /// Cuts the next connection after it carried `bytes` from the server.
    fn cut_next_connection_after_download(&self, bytes: usize) {
        self.cut_down
            .store(bytes, std::sync::atomic::Ordering::SeqCst);
    }

    fn seen(&self, method: &str) -> usize {
        self.script
            .lock()
            .unwrap()
            .seen
            .iter()
            .filter(|(m, _)| m == method)
            .count()
    }

    fn url(&self, path: &str, token: &str, extra: &str) -> String {
        format!(
            "fasp://alice@127.0.0.1:1{path}?auth=no&token={token}&httpport={}&enc=none{extra}",
            self.addr.port()
        )
    }
}

async fn layer(script: &Mutex<Script>, req: Request, next: Next) -> Response {
    let (method, path) = (req.method().to_string(), req.uri().path().to_owned());
    let fault = {
        let mut s = script.lock().unwrap();
        s.seen.push((method.clone(), path.clone()));
        s.rules
            .iter_mut()
            .find(|(m, p, f)| *m == method && path.contains(p.as_str()) && !f.is_empty())
            .map_or(Fault::Pass, |(_, _, f)| f.remove(0))
    };
    match fault {
        Fault::Pass => next.run(req).await,
        Fault::Unavailable => StatusCode::SERVICE_UNAVAILABLE.into_response(),
        Fault::FlipFirstByte => {
            let (parts, body) = next.run(req).await.into_parts();
            Response::from_parts(parts, flipped(body))
        }
        Fault::NoEtag => {
            let mut resp = next.run(req).await;
            resp.headers_mut().remove(axum::http::header::ETAG);
            resp
        }
        Fault::FlipFirstRequestByte => {
            let (parts, body) = req.into_parts();
            next.run(Request::from_parts(parts, flipped(body))).await
        }
    }
}

/// Options for tests: quick retries, state in `dir`.
fn options(dir: &Path) -> Options {
    Options {
        retry: Retry {
            attempts: 4,
            base: Duration::from_millis(1),
            max: Duration::from_millis(5),
        },
        state_dir: Some(dir.join("client-state")),
        ..Options::default()
    }
}

/// Collects the events.
fn recorder() -> (Events, Arc<Mutex<Vec<Event>>>) {
    let log = Arc::new(Mutex::new(Vec::new()));
    let l = Arc::clone(&log);
    (
        Arc::new(move |e: &Event| l.lock().unwrap().push(e.clone())),
        log,
    )
}

mod decide;
mod doctor;
mod transfer;
