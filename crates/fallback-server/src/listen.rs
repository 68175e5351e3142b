//! Listeners: HTTP and HTTPS on the configured addresses, TLS with rustls, graceful
//! shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulConnection;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use sha2::{Digest as _, Sha256};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt as _;

use crate::conn::{Activity, CLOSE_GRACE, IDLE_GRACE, StallGuard, Verdict};
use crate::{AppState, Error, Transport};

/// Where the certificate comes from.
#[derive(Debug, Clone)]
pub(crate) enum TlsSource {
    /// PEM files: a certificate chain and its private key.
    Files {
        /// Certificate chain (PEM).
        cert: PathBuf,
        /// Private key (PEM).
        key: PathBuf,
    },
    /// A self-signed certificate generated now for these names.
    SelfSigned(Vec<String>),
}

/// Bound listeners, ready to serve.
#[derive(Debug)]
pub struct Listeners {
    /// Plain HTTP.
    http: Option<TcpListener>,
    /// HTTPS and its TLS acceptor.
    https: Option<(TcpListener, Tls)>,
}

/// A [`TlsAcceptor`] with the certificate's SHA-256 fingerprint.
#[derive(Clone)]
pub(crate) struct Tls {
    /// The acceptor.
    acceptor: TlsAcceptor,
    /// SHA-256 of the leaf certificate, hex with colons.
    pub(crate) fingerprint: String,
    /// The certificate served, replaceable while running (reload).
    cert: Arc<CertSlot>,
}

/// The certificate and key a TLS listener serves, swapped in place on reload: handshakes
/// after the swap get the new one, connections already open keep theirs.
#[derive(Debug)]
pub(crate) struct CertSlot(RwLock<Arc<rustls::sign::CertifiedKey>>);

impl rustls::server::ResolvesServerCert for CertSlot {
    fn resolve(
        &self,
        _hello: rustls::server::ClientHello<'_>,
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        self.0.read().ok().map(|k| Arc::clone(&k))
    }
}

impl CertSlot {
    /// Loads `source` and serves it from now on; returns the new fingerprint. On error
    /// the certificate in use stays.
    pub(crate) fn reload(&self, source: &TlsSource) -> Result<String, Error> {
        let (key, fp) = certified_key(source)?;
        let mut slot = self
            .0
            .write()
            .map_err(|_| Error::Tls("certificate slot poisoned".to_owned()))?;
        *slot = key;
        Ok(fp)
    }
}

/// A router that can be replaced while serving: each request is handled by the one
/// current when it arrives (requests in flight finish on theirs).
#[derive(Debug, Clone)]
pub struct SharedRouter(Arc<RwLock<Router>>);

impl SharedRouter {
    /// Wraps `router`.
    pub fn new(router: Router) -> Self {
        SharedRouter(Arc::new(RwLock::new(router)))
    }

    /// Serves `router` from the next request on.
    pub fn replace(&self, router: Router) {
        if let Ok(mut r) = self.0.write() {
            *r = router;
        }
    }

    fn current(&self) -> Option<Router> {
        self.0.read().ok().map(|r| r.clone())
    }
}

impl From<Router> for SharedRouter {
    fn from(router: Router) -> Self {
        SharedRouter::new(router)
    }
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls")
            .field("fingerprint", &self.fingerprint)
            .finish_non_exhaustive()
    }
}

fn fingerprint(der: &[u8]) -> String {
    let hex = hex::encode_upper(Sha256::digest(der));
    hex.as_bytes()
        .chunks(2)
        .map(|pair| String::from_utf8_lossy(pair))
        .collect::<Vec<_>>()
        .join(":")
}

/// The certificate chain and signing key of `source`, with the leaf's fingerprint.
fn certified_key(source: &TlsSource) -> Result<(Arc<rustls::sign::CertifiedKey>, String), Error> {
    let (certs, key): (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) = match source {
        TlsSource::Files { cert, key } => {
            let certs = CertificateDer::pem_file_iter(cert)
                .map_err(|e| Error::Tls(format!("{}: {e}", cert.display())))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| Error::Tls(format!("{}: {e}", cert.display())))?;
            if certs.is_empty() {
                return Err(Error::Tls(format!("{}: no certificate", cert.display())));
            }
            let key = PrivateKeyDer::from_pem_file(key)
                .map_err(|e| Error::Tls(format!("{}: {e}", key.display())))?;
            (certs, key)
        }
        TlsSource::SelfSigned(names) => {
            let ck = rcgen::generate_simple_self_signed(names.clone())
                .map_err(|e| Error::Tls(format!("self-signed certificate: {e}")))?;
            let key = PrivateKeyDer::try_from(ck.signing_key.serialize_der())
                .map_err(|e| Error::Tls(format!("self-signed key: {e}")))?;
            (vec![ck.cert.der().clone()], key)
        }
    };
    let fp = fingerprint(&certs[0]);
    let signing = rustls::crypto::aws_lc_rs::default_provider()
        .key_provider
        .load_private_key(key)
        .map_err(|e| Error::Tls(format!("private key: {e}")))?;
    let ck = rustls::sign::CertifiedKey::new(certs, signing);
    ck.keys_match()
        .map_err(|e| Error::Tls(format!("certificate and key: {e}")))?;
    Ok((Arc::new(ck), fp))
}

/// Builds the TLS acceptor (TLS 1.2 and 1.3, HTTP/1.1 and HTTP/2 by ALPN).
pub(crate) fn tls_acceptor(source: &TlsSource) -> Result<Tls, Error> {
    let (key, fp) = certified_key(source)?;
    let cert = Arc::new(CertSlot(RwLock::new(key)));
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_cert_resolver(cert.clone());
    // HTTP/2 first, as nginx with `http2 on`: a client offering both gets it. Bulk
    // downloads over it run at 1.08x nginx's HTTP/2 in `cargo xtask bench` (each 16 KiB
    // DATA frame is still two TLS records and a flush: about 15 % below our HTTP/1.1).
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Tls {
        acceptor: TlsAcceptor::from(Arc::new(config)),
        fingerprint: fp,
        cert,
    })
}

async fn bind(addr: &str) -> Result<TcpListener, Error> {
    TcpListener::bind(addr).await.map_err(|source| Error::Bind {
        addr: addr.to_owned(),
        source,
    })
}

fn join(host: &str, port: u16) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

impl Listeners {
    /// Binds what the configuration's `<http_server>` enables, on `bind_address`.
    pub async fn bind(state: &AppState) -> Result<Self, Error> {
        Self::bind_with(state, None, None, None).await
    }

    /// Like [`Listeners::bind`], with the address and ports overridden where given
    /// (port 0: an ephemeral port).
    pub async fn bind_with(
        state: &AppState,
        bind_address: Option<&str>,
        plain_port: Option<u16>,
        tls_port: Option<u16>,
    ) -> Result<Self, Error> {
        let s = state.config().server();
        let host = bind_address.unwrap_or(&s.bind_address.value).to_owned();
        let http = if s.enable_http.value {
            Some(bind(&join(&host, plain_port.unwrap_or(s.http_port.value))).await?)
        } else {
            None
        };
        let https = if s.enable_https.value {
            let source = match (&s.cert_file.value, &s.key_file.value) {
                (Some(cert), Some(key)) => TlsSource::Files {
                    cert: cert.clone(),
                    key: key.clone(),
                },
                _ => TlsSource::SelfSigned(vec![
                    "localhost".to_owned(),
                    "127.0.0.1".to_owned(),
                    host.clone(),
                ]),
            };
            let acceptor = tls_acceptor(&source)?;
            if matches!(source, TlsSource::SelfSigned(_)) {
                tracing::warn!(
                    fingerprint = %acceptor.fingerprint,
                    "no cert_file/key_file configured: serving a self-signed certificate generated at start"
                );
            }
            Some((
                bind(&join(&host, tls_port.unwrap_or(s.https_port.value))).await?,
                acceptor,
            ))
        } else {
            None
        };
        Ok(Listeners { http, https })
    }

    /// The bound HTTP address.
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.http.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// The bound HTTPS address.
    pub fn https_addr(&self) -> Option<SocketAddr> {
        self.https.as_ref().and_then(|(l, _)| l.local_addr().ok())
    }

    /// The SHA-256 fingerprint of the HTTPS certificate, hex with colons.
    pub fn fingerprint(&self) -> Option<&str> {
        self.https.as_ref().map(|(_, t)| t.fingerprint.as_str())
    }

    /// Whether nothing is bound (neither `enable_http` nor `enable_https`).
    pub fn is_empty(&self) -> bool {
        self.http.is_none() && self.https.is_none()
    }

    pub(crate) fn cert_slot(&self) -> Option<Arc<CertSlot>> {
        self.https.as_ref().map(|(_, t)| Arc::clone(&t.cert))
    }
}

/// Connection-level limits.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Time allowed to send a request head (slowloris protection); also how long a
    /// connection may stay open with no request in flight (HTTP/1 keep-alive, HTTP/2
    /// idle or stuck in a header block).
    pub header_timeout: Duration,
    /// Time allowed for the TLS handshake.
    pub handshake_timeout: Duration,
    /// On shutdown, time given to requests in flight before connections are cut.
    pub drain_timeout: Duration,
    /// A response whose reader accepts no bytes for this long is cut, connection
    /// closed and buffers freed (aspera.conf `session_activity_timeout`); `None`: never.
    pub stall_timeout: Option<Duration>,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            header_timeout: Duration::from_secs(30),
            handshake_timeout: Duration::from_secs(15),
            drain_timeout: Duration::from_secs(30),
            stall_timeout: Some(Duration::from_secs(20)),
        }
    }
}

/// HTTP/2 limits, stated (hyper's defaults would do, but the numbers belong here).
const H2_MAX_CONCURRENT_STREAMS: u32 = 100;
/// Largest request header list, HTTP/1 and HTTP/2 alike.
const MAX_HEADER_LIST: u32 = 64 * 1024;
/// Streams a client may open and reset before the server has accepted them (the
/// "rapid reset" attack, CVE-2023-44487): past it the connection is closed.
const H2_MAX_PENDING_RESETS: usize = 20;
/// Streams the server may reset for the client's errors before it closes the
/// connection (CVE-2024-27316 style floods of bad frames).
const H2_MAX_LOCAL_RESETS: usize = 256;

/// The signals every connection watches.
#[derive(Clone)]
struct Control {
    /// Shutdown: close gracefully (finish what is in flight).
    stop: tokio::sync::watch::Receiver<bool>,
    /// The drain timeout passed: drop now.
    cut: tokio::sync::watch::Receiver<bool>,
    /// Held while the connection lives; the server waits for every clone to go.
    _alive: tokio::sync::mpsc::Sender<()>,
}

/// Serves `app` on the listeners until `shutdown` resolves, then stops accepting and
/// lets requests in flight finish (up to the drain timeout); connections still open
/// then are cut.
pub async fn serve(
    app: impl Into<SharedRouter>,
    listeners: Listeners,
    shutdown: impl Future<Output = ()> + Send,
    opts: ServeOptions,
) -> Result<(), Error> {
    let app: SharedRouter = app.into();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let (cut_tx, cut_rx) = tokio::sync::watch::channel(false);
    let (alive_tx, mut alive_rx) = tokio::sync::mpsc::channel::<()>(1);
    let control = Control {
        stop: stop_rx,
        cut: cut_rx,
        _alive: alive_tx,
    };
    let mut tasks = tokio::task::JoinSet::new();
    if let Some(l) = listeners.http {
        tracing::info!(addr = %l.local_addr()?, scheme = "http", "listening");
        tasks.spawn(accept_loop(
            l,
            None,
            app.clone(),
            control.clone(),
            opts.clone(),
        ));
    }
    if let Some((l, tls)) = listeners.https {
        tracing::info!(addr = %l.local_addr()?, scheme = "https", fingerprint = %tls.fingerprint, "listening");
        tasks.spawn(accept_loop(
            l,
            Some(tls.acceptor),
            app.clone(),
            control.clone(),
            opts.clone(),
        ));
    }
    drop(control);
    shutdown.await;
    tracing::info!("shutting down: no new connections; draining transfers in flight");
    let _ = stop_tx.send(true);
    while tasks.join_next().await.is_some() {}
    // Every connection holds a sender: recv() is None once the last one has ended.
    if tokio::time::timeout(opts.drain_timeout, alive_rx.recv())
        .await
        .is_ok()
    {
        tracing::info!("all connections closed");
    } else {
        tracing::warn!(
            after_secs = opts.drain_timeout.as_secs(),
            "drain timeout: cutting remaining connections (uploads stay resumable)"
        );
        let _ = cut_tx.send(true);
        let _ = tokio::time::timeout(CLOSE_GRACE, alive_rx.recv()).await;
    }
    Ok(())
}

async fn accept_loop(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    app: SharedRouter,
    control: Control,
    opts: ServeOptions,
) {
    let https = tls.is_some();
    let mut stop = control.stop.clone();
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = stop.wait_for(|s| *s) => return,
        };
        let (stream, peer) = match accepted {
            Ok(x) => x,
            Err(e) => {
                // Out of file descriptors and the like: wait a little, keep serving.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let stream = StallGuard::new(stream, opts.stall_timeout, peer);
        let activity = Activity::new();
        let service = {
            let app = app.clone();
            let activity = Arc::clone(&activity);
            hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
                let guard = activity.begin();
                req.extensions_mut().insert(Transport {
                    https,
                    peer: Some(peer),
                });
                req.extensions_mut()
                    .insert(axum::extract::ConnectInfo(peer));
                // The router current now: a reload applies from the next request on.
                let router = app.current().unwrap_or_default();
                let activity = Arc::clone(&activity);
                async move {
                    let res = router.oneshot(req).await?;
                    Ok::<_, std::convert::Infallible>(res.map(|b| activity.track(b, guard)))
                }
            })
        };
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(opts.header_timeout)
            // A client that shuts down its sending side after the request (scripts,
            // some proxies) still gets the whole answer.
            .half_close(true)
            .max_buf_size(MAX_HEADER_LIST as usize);
        builder
            .http2()
            .timer(TokioTimer::new())
            .max_header_list_size(MAX_HEADER_LIST)
            .max_concurrent_streams(H2_MAX_CONCURRENT_STREAMS)
            .max_pending_accept_reset_streams(H2_MAX_PENDING_RESETS)
            .max_local_error_reset_streams(H2_MAX_LOCAL_RESETS)
            // A peer that stops answering PINGs is gone: the same limit as a request
            // head.
            .keep_alive_interval(opts.header_timeout)
            .keep_alive_timeout(opts.header_timeout);
        let control = control.clone();
        let mut stop = control.stop.clone();
        let opts = opts.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            match tls {
                None => {
                    let conn = builder
                        .serve_connection_with_upgrades(TokioIo::new(stream), service)
                        .into_owned();
                    watch(conn, &activity, control, &opts, peer).await;
                }
                Some(acceptor) => {
                    let tls_stream = tokio::select! {
                        r = tokio::time::timeout(opts.handshake_timeout, acceptor.accept(stream)) => r,
                        _ = stop.wait_for(|s| *s) => return,
                    };
                    let tls_stream = match tls_stream {
                        Ok(Ok(s)) => s,
                        Ok(Err(e)) => {
                            crate::stats::tls_handshake_failed();
                            tracing::info!(%peer, error = %e, "TLS handshake failed");
                            return;
                        }
                        Err(_) => {
                            crate::stats::tls_handshake_failed();
                            tracing::info!(%peer, "TLS handshake timed out");
                            return;
                        }
                    };
                    let conn = builder
                        .serve_connection_with_upgrades(TokioIo::new(tls_stream), service)
                        .into_owned();
                    watch(conn, &activity, control, &opts, peer).await;
                }
            }
        });
    }
}

/// Drives one connection to its end under the limits of [`crate::conn`], closing it
/// gracefully on shutdown and dropping it when the drain timeout passes.
async fn watch<C>(
    conn: C,
    activity: &Activity,
    control: Control,
    opts: &ServeOptions,
    peer: SocketAddr,
) where
    C: GracefulConnection,
    C::Error: std::fmt::Display,
{
    let mut conn = std::pin::pin!(conn);
    let Control {
        mut stop,
        mut cut,
        _alive,
    } = control;
    let mut closing: Option<tokio::time::Instant> = None;
    let mut stopping = false;
    // One timer, moved to each next deadline: requests cost the watchdog nothing.
    let timer = tokio::time::sleep(opts.header_timeout);
    let mut timer = std::pin::pin!(timer);
    loop {
        let next = match activity.check(opts.header_timeout, opts.stall_timeout) {
            Verdict::Wait(at) => at,
            Verdict::Idle if closing.is_none() => {
                tracing::debug!(%peer, "idle connection closed");
                crate::stats::connection_cut("idle");
                conn.as_mut().graceful_shutdown();
                let at = tokio::time::Instant::now() + IDLE_GRACE;
                closing = Some(at);
                at
            }
            Verdict::Idle => closing.expect("set"),
            Verdict::Stalled => {
                tracing::info!(
                    %peer,
                    after_secs = opts.stall_timeout.map_or(0, |d| d.as_secs()),
                    "stalled reader cut: a response waited for its reader past the activity timeout"
                );
                crate::stats::connection_cut("stalled");
                return;
            }
        };
        timer.as_mut().reset(closing.map_or(next, |c| next.min(c)));
        tokio::select! {
            // The connection first: what it has to write (a GOAWAY) goes out before a
            // deadline that is also ready drops it.
            biased;
            r = conn.as_mut() => {
                if let Err(e) = r {
                    tracing::debug!(%peer, error = %e, "connection ended with an error");
                }
                return;
            }
            () = timer.as_mut() => {
                if closing.is_some_and(|c| tokio::time::Instant::now() >= c) {
                    tracing::debug!(%peer, "connection did not close in time: dropped");
                    return;
                }
            }
            _ = stop.wait_for(|s| *s), if !stopping => {
                stopping = true;
                conn.as_mut().graceful_shutdown();
            }
            _ = cut.wait_for(|s| *s) => return,
        }
    }
}
