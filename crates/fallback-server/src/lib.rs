//! The HTTP fallback service: an axum [`Router`] a web app can nest, and the listeners
//! that serve it over HTTP and HTTPS.
//!
//! Routes (each also under `/aspera/http` and `/aspera/https`, so any proxy layout
//! works; the protocol is written up in `docs/protocol.md`):
//!
//! | route | what |
//! |---|---|
//! | `GET /health` | liveness, no auth |
//! | `GET /info` | version, protocol, limits |
//! | `GET\|HEAD /files/{path}` | download, with `Range`, `If-Range`, `ETag`, `Repr-Digest`; a directory gives a JSON manifest |
//! | `PUT /files/{path}` | single-shot upload (`curl -T`) |
//! | `POST /links/{path}` | a link token: one path, download only, minutes long |
//! | `GET /access/{path}?direction=` | would the token allow it (no transfer) |
//! | `OPTIONS\|POST /uploads`, `HEAD\|PATCH\|DELETE /uploads/{id}` | tus 1.0.0 resumable uploads |
//! | `/aspera/http-gwy/...` | IBM HTTP Gateway's API (v1/v2 WebSocket uploads, downloads, v3), `docs/gateway.md` |
//!
//! Every request but `/health`, `/info` and tus discovery is authorized by a transfer
//! token (`Authorization: Bearer`, or `?token=` on GET), verified against the user's
//! aspera.conf settings; paths are confined to the user's docroot.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use fallback_server::{Addresses, AppState, Options, Service};
//! let file = std::path::Path::new("/opt/aspera/etc/aspera.conf");
//! let loaded = fallback_server::load(file)?; // the one check: file, host, TLS
//! let state = AppState::new(loaded.config, Options::default())?;
//! // Nest it in your own app at any prefix...
//! let app = axum::Router::new().nest("/transfers", fallback_server::router(state.clone()));
//! # let _ = app;
//! // ...or serve it on the ports aspera.conf names, reloading on SIGHUP.
//! let service = Service::bind(state, &Addresses::default(), Some(file.to_owned())).await?;
//! service.reload_on_hangup()?;
//! service.serve(fallback_server::terminated(), Default::default()).await?;
//! # Ok(()) }
//! ```
//!
//! `docs/embedding.md` is the guide for web apps.
#![warn(missing_docs)]

mod auth;
mod blocks;
mod body;
mod check;
mod conn;
mod cors;
mod error;
mod files;
mod framing;
mod gateway;
mod links;
mod listen;
mod listing;
mod pace;
mod precond;
mod restrict;
mod service;
mod stats;
mod store;
mod tus;
mod wire;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::Router;
use axum::routing::{get, on};
use fallback_conf::{Config, Docroot};
use fallback_engine::Storage;
use fallback_token::KeyRing;

use crate::store::Store;

pub use check::{
    bucket_findings, check, daemon_findings, mode_findings, port_findings, s3_location, served_mode,
};
pub use cors::parse_origin;
pub use listen::{Listeners, ServeOptions, SharedRouter, serve};
pub(crate) use listen::{TlsSource, tls_acceptor};
pub use listing::{DirEntry, ListError};
pub use service::{Addresses, LoadError, Loaded, Service, load, terminated};

/// `docs/embedding.md`, whose example program is compiled here as a doc test.
#[cfg(doctest)]
#[doc = include_str!("../../../docs/embedding.md")]
pub struct EmbeddingGuide;

/// Protocol name and version reported by `/info`.
pub const PROTOCOL: &str = "fallback/1";

/// Why the service could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The token keys of the configuration could not be derived.
    #[error("token keys")]
    Keys(#[from] fallback_token::Error),
    /// A listener could not bind.
    #[error("cannot listen on {addr}")]
    Bind {
        /// The address.
        addr: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The certificate or key could not be loaded or generated.
    #[error("TLS: {0}")]
    Tls(String),
    /// Serving failed.
    #[error("serving")]
    Io(#[from] std::io::Error),
    /// A configuration file was refused (at start or on reload).
    #[error(transparent)]
    Config(#[from] service::LoadError),
    /// Neither `enable_http` nor `enable_https` is true.
    #[error("neither enable_http nor enable_https is true: nothing to serve")]
    NothingToServe,
    /// The metrics exporter could not start.
    #[error("metrics: {0}")]
    Metrics(String),
}

/// How a request reached us; set by the listeners. An embedding app may insert it too.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transport {
    /// Whether the request came over TLS.
    pub https: bool,
    /// The peer that connected (a proxy, in proxy mode).
    pub peer: Option<std::net::SocketAddr>,
}

/// Where the service reads the time for token lifetimes (verification, a token that
/// expires while its upload arrives, link lifetimes). The system clock by default; a
/// simulation or a test sets its own.
///
/// ```
/// use std::time::{Duration, SystemTime};
/// let later = fallback_server::Clock::from_fn(|| SystemTime::now() + Duration::from_secs(3600));
/// assert!(later.now() > SystemTime::now());
/// ```
#[derive(Clone)]
pub struct Clock(Arc<dyn Fn() -> std::time::SystemTime + Send + Sync>);

impl Clock {
    /// The system clock.
    pub fn system() -> Self {
        Clock(Arc::new(std::time::SystemTime::now))
    }

    /// A clock that reads `now`.
    pub fn from_fn(now: impl Fn() -> std::time::SystemTime + Send + Sync + 'static) -> Self {
        Clock(Arc::new(now))
    }

    /// The time now.
    pub fn now(&self) -> std::time::SystemTime {
        (self.0)()
    }

    /// The time now, Unix seconds.
    pub(crate) fn unix(&self) -> u64 {
        self.now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    }
}

impl Default for Clock {
    fn default() -> Self {
        Clock::system()
    }
}

impl std::fmt::Debug for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Clock")
    }
}

/// Tunables of the service.
#[derive(Debug, Clone)]
pub struct Options {
    /// A request body or client stalled longer than this is cut off (the upload stays
    /// resumable); `None`: never. Default: aspera.conf `session_activity_timeout`.
    pub activity_timeout: Option<Duration>,
    /// Uploads in progress expire after this long. Default 24 h.
    pub upload_ttl: Duration,
    /// Clock skew tolerated in tokens. Default 60 s.
    pub token_skew: Duration,
    /// Largest upload accepted, bytes. Default 1 TiB.
    pub max_upload_size: u64,
    /// Most entries in a directory manifest. Default 100,000.
    pub manifest_limit: usize,
    /// The HTTPS port to name when refusing plain HTTP to an encrypting user.
    pub https_port: Option<u16>,
    /// Transport assumed when a request carries no [`Transport`] (an embedding app that
    /// terminates TLS itself sets `true`).
    pub assume_https: bool,
    /// Proxies whose `X-Forwarded-Proto` and `X-Forwarded-For` are believed (proxy
    /// mode). From anyone else these headers are ignored.
    pub trusted_proxies: Vec<std::net::IpAddr>,
    /// Origins whose pages may call the service from a browser (CORS), such as
    /// `https://app.example.com`; `*` allows any. Empty (the default): no CORS headers,
    /// so browsers allow same-origin pages only. Credentials (cookies) are never
    /// allowed: the protocol's tokens ride in `Authorization`.
    pub cors_origins: Vec<String>,
    /// Where token lifetimes read the time. Default: the system clock.
    pub clock: Clock,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            activity_timeout: Some(Duration::from_secs(20)),
            upload_ttl: Duration::from_hours(24),
            token_skew: fallback_token::DEFAULT_SKEW,
            max_upload_size: 1 << 40,
            manifest_limit: 100_000,
            https_port: None,
            assume_https: false,
            trusted_proxies: Vec::new(),
            cors_origins: Vec::new(),
            clock: Clock::system(),
        }
    }
}

impl Options {
    /// Options taken from a configuration's `<http_server>` (activity timeout, HTTPS
    /// port), defaults elsewhere.
    pub fn from_config(conf: &Config) -> Self {
        let s = conf.server();
        Options {
            activity_timeout: match s.session_activity_timeout.value {
                0 => None,
                n => Some(Duration::from_secs(n)),
            },
            https_port: s.enable_https.value.then_some(s.https_port.value),
            ..Options::default()
        }
    }
}

struct Inner {
    conf: Config,
    keys: Option<KeyRing>,
    options: Options,
    /// Open docroots, shared with the states that replace this one on reload.
    storages: Arc<RwLock<HashMap<PathBuf, Arc<Storage>>>>,
    /// Connected buckets (`s3://` docroots), by everything their URI says, likewise
    /// shared.
    buckets: Arc<RwLock<HashMap<String, Arc<fallback_s3::Bucket>>>>,
    /// The key id of every secret in the configuration (derived once, not per request).
    key_ids: HashMap<String, String>,
    /// System accounts (groups, home) per user, with when they were read and the
    /// settings this configuration gives them (resolved once, not per request).
    accounts: RwLock<HashMap<String, Arc<auth::Known>>>,
}

/// Shared state of the service: configuration, token keys, open docroots.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("options", &self.inner.options)
            .finish_non_exhaustive()
    }
}

impl AppState {
    /// State for a (checked) configuration: its token keys derived once, docroots
    /// opened on first use and shared by every request.
    ///
    /// ```
    /// let conf = fallback_conf::Config::parse(r#"<CONF>
    ///   <http_server><enable_http>true</enable_http><http_port>8080</http_port></http_server>
    ///   <default><file_system><access><paths><path><absolute>/srv/data</absolute>
    ///   </path></paths></access></file_system></default></CONF>"#)?.into_checked()?;
    /// let options = fallback_server::Options::from_config(&conf);
    /// let state = fallback_server::AppState::new(conf, options)?;
    /// assert!(state.keys().is_none()); // no token key in this file
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn new(conf: Config, options: Options) -> Result<Self, Error> {
        Ok(AppState {
            inner: Arc::new(Inner::build(conf, options)?),
        })
    }
}

impl Inner {
    fn build(conf: Config, options: Options) -> Result<Self, Error> {
        let keys = KeyRing::from_config(&conf).transpose()?;
        let doc = conf.document();
        let mut key_ids = HashMap::new();
        let sections = [&doc.default]
            .into_iter()
            .chain(doc.users.iter().map(|u| &u.settings))
            .chain(doc.groups.iter().map(|g| &g.settings));
        for layer in sections {
            let retired = layer.retired_keys.iter().flatten().map(|k| &k.secret);
            for secret in layer.token_key.iter().chain(retired) {
                let key =
                    fallback_token::Key::derive(secret.expose(), fallback_token::Form::Signed)?;
                key_ids.insert(secret.expose().to_owned(), key.id().to_owned());
            }
        }
        Ok(Inner {
            conf,
            keys,
            options,
            storages: Arc::new(RwLock::new(HashMap::new())),
            buckets: Arc::new(RwLock::new(HashMap::new())),
            key_ids,
            accounts: RwLock::new(HashMap::new()),
        })
    }
}

impl AppState {
    /// The state after a reload to `conf`: its settings and keys apply to requests from
    /// now on, while requests in flight finish on this one. Which tokens are accepted
    /// depends on `conf` and the clock alone, exactly as after a restart with it: a key
    /// rotated out verifies only while `conf` lists it under `retired_keys` (until its
    /// `accept_until`), and a key removed is refused from now on. Open docroots are kept.
    pub fn reloaded(&self, conf: Config) -> Result<Self, Error> {
        // What the file decides comes from the new file; the rest (set by the program)
        // stays.
        let from_file = Options::from_config(&conf);
        let options = Options {
            activity_timeout: from_file.activity_timeout,
            https_port: from_file.https_port,
            ..self.inner.options.clone()
        };
        let mut inner = Inner::build(conf, options)?;
        inner.storages = Arc::clone(&self.inner.storages);
        inner.buckets = Arc::clone(&self.inner.buckets);
        Ok(AppState {
            inner: Arc::new(inner),
        })
    }

    /// The configuration served.
    pub fn config(&self) -> &Config {
        &self.inner.conf
    }

    /// The token keys, if the configuration has any.
    pub fn keys(&self) -> Option<&KeyRing> {
        self.inner.keys.as_ref()
    }

    /// The key id derived from `secret`, if it is one of the configuration's.
    pub(crate) fn key_id_of(&self, secret: &str) -> Option<&str> {
        self.inner.key_ids.get(secret).map(String::as_str)
    }

    /// The options.
    pub fn options(&self) -> &Options {
        &self.inner.options
    }

    /// The storage of `docroot`, opened (or, for a bucket, connected) once and shared
    /// by every request and by [`AppState::list`].
    pub(crate) fn open_docroot(&self, docroot: &Docroot) -> Result<Store, fallback_engine::Error> {
        let poisoned = || fallback_engine::Error::Io(std::io::Error::other("storage map poisoned"));
        let docroot = match docroot {
            Docroot::Local(p) => p.as_path(),
            Docroot::S3(r) => {
                let location = check::s3_location(r);
                // Every field, credentials included (this key is never shown): two
                // docroots that differ in any of them are two clients.
                let key = format!(
                    "{:?}|{}|{}|{:?}|{}|{:?}|{:?}",
                    location.endpoint,
                    location.bucket,
                    location.prefix,
                    location.credentials,
                    location.allow_http,
                    location.storage_class,
                    location.server_side_encryption
                );
                if let Some(b) = self
                    .inner
                    .buckets
                    .read()
                    .ok()
                    .and_then(|m| m.get(&key).cloned())
                {
                    return Ok(Store::S3(b));
                }
                let bucket = fallback_s3::Bucket::connect(&location).map_err(|e| {
                    fallback_engine::Error::Io(std::io::Error::other(e.to_string()))
                })?;
                let mut map = self.inner.buckets.write().map_err(|_| poisoned())?;
                return Ok(Store::S3(Arc::clone(
                    map.entry(key).or_insert_with(|| Arc::new(bucket)),
                )));
            }
        };
        if let Some(s) = self
            .inner
            .storages
            .read()
            .ok()
            .and_then(|m| m.get(docroot).cloned())
        {
            return Ok(Store::Local(s));
        }
        let opened = Arc::new(Storage::open(docroot, self.inner.options.upload_ttl)?);
        let mut map = self.inner.storages.write().map_err(|_| poisoned())?;
        Ok(Store::Local(Arc::clone(
            map.entry(docroot.to_owned()).or_insert(opened),
        )))
    }

    fn storage(&self, docroot: &Docroot) -> Result<Store, error::ApiError> {
        self.open_docroot(docroot).map_err(|e| match e {
            // Not the client's to retry: the operator must create it (a per-user
            // docroot such as /srv/$(name) for a user who has none yet).
            fallback_engine::Error::NotFound | fallback_engine::Error::WrongKind(_) => {
                error::ApiError::Forbidden {
                    public: "this user's docroot does not exist on the server; the \
                             administrator must create it"
                        .to_owned(),
                    reason: format!("docroot {docroot} does not exist or is not a directory"),
                }
            }
            e => error::ApiError::Internal(format!("docroot {docroot}: {e}")),
        })
    }

    /// Every docroot opened so far.
    fn open_storages(&self) -> Vec<Store> {
        let local = self.inner.storages.read().map(|m| {
            m.values()
                .map(|s| Store::Local(Arc::clone(s)))
                .collect::<Vec<_>>()
        });
        let buckets = self.inner.buckets.read().map(|m| {
            m.values()
                .map(|b| Store::S3(Arc::clone(b)))
                .collect::<Vec<_>>()
        });
        local
            .unwrap_or_default()
            .into_iter()
            .chain(buckets.unwrap_or_default())
            .collect()
    }

    /// Updates the gauges that are read rather than counted (uploads in progress in
    /// every local docroot opened so far; a bucket's are not counted, as that would
    /// list them on every scrape). A metrics exporter calls it before a scrape; it
    /// blocks on the file system, so call it from a blocking thread.
    pub fn refresh_metrics(&self) {
        let n = self
            .open_storages()
            .iter()
            .map(|s| match s {
                Store::Local(s) => s.upload_count().unwrap_or(0),
                Store::S3(_) => 0,
            })
            .sum();
        stats::set_uploads_in_progress(n);
    }

    /// Removes expired uploads in every docroot opened so far, buckets included
    /// (whichever instance created them); returns how many.
    pub async fn sweep_expired(&self) -> usize {
        let mut n = 0;
        for s in self.open_storages() {
            match s.sweep_expired().await {
                Ok(k) => n += k,
                Err(e) => tracing::warn!(reason = %e.reason(), "sweeping expired uploads"),
            }
        }
        n
    }
}

/// The routes of one base path.
fn routes(prefix: &str) -> Router<AppState> {
    Router::new()
        .route(&format!("{prefix}/health"), get(files::health))
        .route(&format!("{prefix}/info"), get(files::info))
        .route(&format!("{prefix}/access/{{*path}}"), get(files::access))
        .route(&format!("{prefix}/access/"), get(files::access))
        .route(
            &format!("{prefix}/files"),
            get(files::get_file).head(files::get_file),
        )
        .route(
            &format!("{prefix}/files/"),
            get(files::get_file).head(files::get_file),
        )
        .route(
            &format!("{prefix}/files/{{*path}}"),
            get(files::get_file)
                .head(files::get_file)
                .put(files::put_file),
        )
        .route(
            &format!("{prefix}/links/{{*path}}"),
            axum::routing::post(links::create),
        )
        .route(
            &format!("{prefix}/uploads"),
            on(axum::routing::MethodFilter::OPTIONS, tus::options).post(tus::create),
        )
        .route(
            &format!("{prefix}/uploads/{{id}}"),
            on(axum::routing::MethodFilter::OPTIONS, tus::options)
                .head(tus::head)
                .patch(tus::patch)
                .delete(tus::delete)
                .post(tus::method_override),
        )
}

/// The service's router: every route at `/`, `/aspera/http` and `/aspera/https`,
/// under whatever prefix an app nests it at.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use tower::ServiceExt as _;
/// let conf = fallback_conf::Config::parse(r#"<CONF>
///   <http_server><enable_http>true</enable_http></http_server>
///   <default><file_system><access><paths><path><absolute>/srv/data</absolute>
///   </path></paths></access></file_system></default></CONF>"#)?.into_checked()?;
/// let state = fallback_server::AppState::new(conf, Default::default())?;
/// let app = axum::Router::new().nest("/transfers", fallback_server::router(state));
/// let req = axum::http::Request::get("/transfers/health")
///     .header("host", "localhost")
///     .body(axum::body::Body::empty())?;
/// assert_eq!(app.oneshot(req).await?.status(), 200);
/// # Ok(()) }
/// ```
pub fn router(state: AppState) -> Router {
    let cors = cors::layer(&state.options().cors_origins);
    let r = Router::new()
        .merge(routes(""))
        .merge(routes("/aspera/http"))
        .merge(routes("/aspera/https"))
        .merge(gateway::routes())
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            body::edge,
        ))
        .route_layer(axum::middleware::from_fn(stats::track))
        .layer(axum::middleware::from_fn(framing::check))
        .with_state(state);
    match cors {
        Some(c) => r.layer(c),
        None => r,
    }
}

/// The path the router is mounted under: what an enclosing `Router::nest` stripped
/// from the request path (`/transfers` for a request to `/transfers/uploads` routed as
/// `/uploads`); empty when the router is not nested. Every URL the service hands out
/// (tus `Location`, `Upload-Concat`) starts with it, so it works at any mount point.
pub(crate) fn mount_prefix(parts: &axum::http::request::Parts) -> &str {
    let inner = parts.uri.path();
    parts
        .extensions
        .get::<axum::extract::OriginalUri>()
        .and_then(|o| o.path().strip_suffix(inner))
        .unwrap_or_default()
}

/// Splits a request path into its base (`""`, `/aspera/http`, `/aspera/https`) and the
/// rest (`/files/...`, `/uploads/...`).
pub(crate) fn split_base(path: &str) -> (&'static str, &str) {
    for base in ["/aspera/https", "/aspera/http"] {
        if let Some(rest) = path.strip_prefix(base)
            && (rest.is_empty() || rest.starts_with('/'))
        {
            return (base, rest);
        }
    }
    ("", path)
}
