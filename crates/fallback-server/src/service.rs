//! The running service: a configuration file loaded through the one check, listeners
//! bound, reloads, the sweeper of expired uploads and the metrics exporter. fallbackd
//! is this plus its command line; an app that runs the service itself uses it too.

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use fallback_conf::{Config, Diagnostic, Severity};

use crate::listen::CertSlot;
use crate::{AppState, Error, Listeners, ServeOptions, SharedRouter, TlsSource};

/// A configuration file that passed the check, with what the check said about it
/// (warnings and notes; errors refuse the file).
#[derive(Debug)]
#[non_exhaustive]
pub struct Loaded {
    /// The configuration.
    pub config: Config,
    /// Warnings and notes, in file order.
    pub findings: Vec<Diagnostic>,
}

impl Loaded {
    /// Logs each finding: warnings at `warn`, notes at `info`.
    pub fn log(&self, file: &Path) {
        for d in &self.findings {
            if d.severity == Severity::Note {
                tracing::info!(file = %file.display(), "{d}");
            } else {
                tracing::warn!(file = %file.display(), "{d}");
            }
        }
    }
}

/// Why a configuration file was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoadError {
    /// The file could not be read or is not usable XML.
    #[error("cannot read {}: {source}", file.display())]
    Read {
        /// The file.
        file: PathBuf,
        /// Why.
        #[source]
        source: fallback_conf::Error,
    },
    /// The check found errors.
    #[error(
        "{} has {} error(s): {}; `fallback config check {}` lists them",
        file.display(),
        errors.len(),
        errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "),
        file.display()
    )]
    Invalid {
        /// The file.
        file: PathBuf,
        /// The errors, in file order.
        errors: Vec<Diagnostic>,
    },
}

/// Reads `file` and runs the one check ([`crate::check`]: the file, docroots on this
/// host, the TLS certificate): the configuration when nothing is an error. Startup,
/// reload, `fallbackd --check-config` and `fallback config check` all decide with it.
///
/// ```
/// let dir = tempfile::tempdir()?;
/// let file = dir.path().join("aspera.conf");
/// std::fs::write(&file, "<CONF><http_server><http_port>not-a-port</http_port></http_server></CONF>")?;
/// let err = fallback_server::load(&file).unwrap_err();
/// assert!(err.to_string().contains("invalid-port"), "{err}");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn load(file: &Path) -> Result<Loaded, LoadError> {
    let config = Config::load(file).map_err(|source| LoadError::Read {
        file: file.to_owned(),
        source,
    })?;
    let (errors, findings): (Vec<_>, Vec<_>) = crate::check(&config)
        .into_iter()
        .partition(Diagnostic::is_error);
    if !errors.is_empty() {
        return Err(LoadError::Invalid {
            file: file.to_owned(),
            errors,
        });
    }
    Ok(Loaded { config, findings })
}

/// Where to listen, overriding `<http_server>` where given (port 0: any free port).
#[derive(Debug, Clone, Default)]
pub struct Addresses {
    /// Instead of `<bind_address>`.
    pub bind: Option<String>,
    /// Instead of `<http_port>`.
    pub http_port: Option<u16>,
    /// Instead of `<https_port>`.
    pub https_port: Option<u16>,
}

/// The service as a daemon runs it: state, listeners, and the file it reloads from.
/// Cloning gives another handle to the same service.
///
/// ```no_run
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// use fallback_server::{Addresses, AppState, Options, Service};
/// let file = std::path::Path::new("/opt/aspera/etc/aspera.conf");
/// let loaded = fallback_server::load(file)?;
/// loaded.log(file);
/// let state = AppState::new(loaded.config, Options::default())?;
/// let service = Service::bind(state, &Addresses::default(), Some(file.to_owned())).await?;
/// service.sweep_every(std::time::Duration::from_secs(3600));
/// service.reload_on_hangup()?;
/// service.serve(std::future::pending(), Default::default()).await?;
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct Service {
    inner: Arc<Shared>,
}

/// Makes the app served from a state: the service's router, or an app that nests it.
type MakeApp = Box<dyn Fn(AppState) -> axum::Router + Send + Sync>;

struct Shared {
    file: Option<PathBuf>,
    make_app: MakeApp,
    state: RwLock<AppState>,
    app: SharedRouter,
    cert: Option<Arc<CertSlot>>,
    listeners: std::sync::Mutex<Option<Listeners>>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Service")
            .field("file", &self.file)
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

impl Service {
    /// Binds the listeners `state`'s configuration enables, to serve
    /// [`crate::router`]. `file` is what [`Service::reload`] reads again (`None`: a
    /// configuration made in memory, which reload leaves as it is).
    pub async fn bind(
        state: AppState,
        addrs: &Addresses,
        file: Option<PathBuf>,
    ) -> Result<Service, Error> {
        Self::bind_app(state, addrs, file, crate::router).await
    }

    /// Like [`Service::bind`], serving the app `make_app` builds around a state (a web
    /// app that nests [`crate::router`] among its own routes); a reload builds it again
    /// from the new state.
    pub async fn bind_app(
        state: AppState,
        addrs: &Addresses,
        file: Option<PathBuf>,
        make_app: impl Fn(AppState) -> axum::Router + Send + Sync + 'static,
    ) -> Result<Service, Error> {
        let listeners = Listeners::bind_with(
            &state,
            addrs.bind.as_deref(),
            addrs.http_port,
            addrs.https_port,
        )
        .await?;
        if listeners.is_empty() {
            return Err(Error::NothingToServe);
        }
        let cert = listeners.cert_slot();
        Ok(Service {
            inner: Arc::new(Shared {
                file,
                app: SharedRouter::new(make_app(state.clone())),
                make_app: Box::new(make_app),
                state: RwLock::new(state),
                cert,
                listeners: std::sync::Mutex::new(Some(listeners)),
            }),
        })
    }

    /// The state serving new requests.
    pub fn state(&self) -> AppState {
        match self.inner.state.read() {
            Ok(s) => s.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// The bound HTTP address, until [`Service::serve`] takes the listeners.
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.with_listeners(Listeners::http_addr)
    }

    /// The bound HTTPS address, until [`Service::serve`] takes the listeners.
    pub fn https_addr(&self) -> Option<SocketAddr> {
        self.with_listeners(Listeners::https_addr)
    }

    /// The SHA-256 fingerprint of the certificate served on HTTPS, hex with colons.
    pub fn fingerprint(&self) -> Option<String> {
        self.with_listeners(|l| l.fingerprint().map(str::to_owned))
    }

    fn with_listeners<T>(&self, f: impl Fn(&Listeners) -> Option<T>) -> Option<T> {
        self.inner.listeners.lock().ok()?.as_ref().and_then(f)
    }

    /// Reads the file again and applies it: the same check as at start, then token keys,
    /// per-user settings and the TLS certificate change for new requests; requests in
    /// flight finish on the old configuration. Anything wrong and nothing changes.
    pub fn reload(&self) -> Result<(), Error> {
        let Some(file) = &self.inner.file else {
            tracing::info!("reload: nothing to reload (no configuration file)");
            return Ok(());
        };
        let loaded = load(file)?;
        let s = loaded.config.server();
        let source = match (&s.cert_file.value, &s.key_file.value) {
            (Some(cert), Some(key)) => Some(TlsSource::Files {
                cert: cert.clone(),
                key: key.clone(),
            }),
            _ => None,
        };
        let new = self.state().reloaded(loaded.config)?;
        if let (Some(slot), Some(source)) = (&self.inner.cert, source) {
            let fp = slot.reload(&source)?;
            tracing::info!(fingerprint = %fp, "TLS certificate reloaded");
        }
        self.inner.app.replace((self.inner.make_app)(new.clone()));
        if let Ok(mut s) = self.inner.state.write() {
            *s = new;
        }
        tracing::info!(config = %file.display(), "configuration reloaded: new requests use it; transfers in flight finish on the old one");
        Ok(())
    }

    /// Reloads on every SIGHUP; a refused reload is logged and the running
    /// configuration stays.
    pub fn reload_on_hangup(&self) -> Result<(), Error> {
        let mut hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
        let service = self.clone();
        tokio::spawn(async move {
            while hangup.recv().await.is_some() {
                let s = service.clone();
                let done = tokio::task::spawn_blocking(move || s.reload()).await;
                match done {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => tracing::error!(
                        "reload refused, the running configuration stays: {}",
                        crate::error::chain(&e)
                    ),
                    Err(e) => tracing::error!("reload failed: {e}"),
                }
            }
        });
        Ok(())
    }

    /// Removes expired uploads every `period`, in every docroot opened so far.
    pub fn sweep_every(&self, period: Duration) {
        let service = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(period);
            loop {
                tick.tick().await;
                let state = service.state();
                let n = state.sweep_expired().await;
                if n > 0 {
                    tracing::info!(removed = n, "expired uploads removed");
                }
            }
        });
    }

    /// Serves Prometheus metrics at `http://ADDR/metrics` (keep `addr` private) and
    /// returns the bound address. Installs the process's metrics recorder: once per
    /// process.
    #[cfg(feature = "prometheus")]
    pub async fn serve_metrics(&self, addr: SocketAddr) -> Result<SocketAddr, Error> {
        use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};
        let handle = PrometheusBuilder::new()
            .set_buckets_for_metric(
                Matcher::Full("fallback_request_duration_seconds".to_owned()),
                &[
                    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
                    30.0, 60.0, 300.0,
                ],
            )
            .and_then(PrometheusBuilder::install_recorder)
            .map_err(|e| Error::Metrics(e.to_string()))?;
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| Error::Bind {
                addr: addr.to_string(),
                source,
            })?;
        let bound = listener.local_addr()?;
        tracing::info!(addr = %bound, "metrics listening");
        let service = self.clone();
        let app = axum::Router::new().route(
            "/metrics",
            axum::routing::get(move || {
                let (handle, state) = (handle.clone(), service.state());
                async move {
                    let _ = tokio::task::spawn_blocking(move || state.refresh_metrics()).await;
                    (
                        [(
                            axum::http::header::CONTENT_TYPE,
                            "text/plain; version=0.0.4; charset=utf-8",
                        )],
                        handle.render(),
                    )
                }
            }),
        );
        tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::error!(error = %e, "metrics listener stopped");
            }
        });
        Ok(bound)
    }

    /// Serves until `shutdown` resolves, then drains ([`crate::serve`]). Reloads keep
    /// applying while it runs.
    pub async fn serve(
        self,
        shutdown: impl Future<Output = ()> + Send,
        opts: ServeOptions,
    ) -> Result<(), Error> {
        let listeners = self
            .inner
            .listeners
            .lock()
            .ok()
            .and_then(|mut l| l.take())
            .ok_or(Error::NothingToServe)?;
        crate::serve(self.inner.app.clone(), listeners, shutdown, opts).await
    }
}

/// Resolves at SIGTERM or SIGINT (Ctrl-C), logging which: the usual shutdown future
/// for [`Service::serve`].
pub async fn terminated() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        () = term => tracing::info!("SIGTERM received"),
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received"),
    }
}
