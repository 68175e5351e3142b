//! `fallbackd`: the HTTP fallback daemon. Wiring only: arguments, configuration, logs,
//! TLS provider, then `fallback_server::serve`.

// A daemon prints its start banner.
#![allow(clippy::print_stdout, clippy::print_stderr)]
// Doc comments on clap types are the `--help` text, shown verbatim: no Markdown.
#![allow(clippy::doc_markdown)]

#[path = "../../../dist/assets.rs"]
mod assets;
mod embedded;
mod syslog;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Parser, ValueEnum};
use fallback_conf::Config;
use fallback_server::{AppState, Listeners, Options, ServeOptions};

/// Serve HTTP fallback transfers: uploads and downloads over HTTP(S) for clients whose
/// network blocks FASP (UDP, SSH), authorized by transfer tokens and confined to each
/// user's docroot, as aspera.conf says.
///
/// Without --config it runs an embedded default that is safe to try: docroot
/// ./fallback-data, HTTP on 127.0.0.1:8080 only, a random token key kept in the data
/// folder; it prints ready tokens, a FASP URL and curl commands.
#[derive(Debug, Parser)]
#[command(name = "fallbackd", version)]
struct Args {
    /// The aspera.conf to serve (<http_server>, token keys, docroots).
    #[arg(long, short = 'c', value_name = "FILE", env = "FALLBACKD_CONFIG")]
    config: Option<PathBuf>,
    /// Data folder of the embedded default (used without --config).
    #[arg(long, value_name = "DIR", default_value = "fallback-data")]
    data: PathBuf,
    /// Listen address, overriding <http_server><bind_address>.
    #[arg(long, value_name = "ADDR")]
    bind: Option<String>,
    /// HTTP port, overriding <http_port> (0: any free port).
    #[arg(long, value_name = "PORT")]
    http_port: Option<u16>,
    /// HTTPS port, overriding <https_port> (0: any free port).
    #[arg(long, value_name = "PORT")]
    https_port: Option<u16>,
    /// A reverse proxy whose X-Forwarded-Proto / X-Forwarded-For are believed (proxy
    /// mode: Apache or nginx on 80/443 in front); repeatable. From anyone else these
    /// headers are ignored.
    #[arg(
        long,
        value_name = "IP",
        env = "FALLBACKD_TRUST_PROXY",
        value_delimiter = ','
    )]
    trust_proxy: Vec<std::net::IpAddr>,
    /// Let pages on ORIGIN (scheme://host[:port], or * for any) call the service from a
    /// browser (CORS: preflights answered, tus and digest headers exposed, never
    /// cookies); repeatable. Off by default: only same-origin pages can.
    #[arg(long, value_name = "ORIGIN", value_parser = fallback_server::parse_origin)]
    cors_origin: Vec<String>,
    /// Log format on standard error.
    #[arg(long, value_enum, default_value = "text")]
    log_format: LogFormat,
    /// Seconds given to transfers in flight after SIGTERM before connections are cut.
    #[arg(long, value_name = "SECONDS", default_value = "30")]
    drain_timeout: u64,
    /// Seconds a client has to send a request's headers, and that an idle keep-alive
    /// connection stays open waiting for the next request (slowloris protection).
    #[arg(long, value_name = "SECONDS", default_value = "30", value_parser = clap::value_parser!(u64).range(1..=3600))]
    header_timeout: u64,
    /// Check the configuration (the --config file: XML, settings, token keys, TLS
    /// certificate and key) and exit: 0 when it would start, 1 otherwise. Like nginx -t.
    #[arg(long)]
    check_config: bool,
    /// Also log to syslog, facility local2 (as the real product does), through this
    /// socket (default /dev/log).
    #[arg(long, value_name = "SOCKET", num_args = 0..=1, default_missing_value = "/dev/log")]
    syslog: Option<PathBuf>,
    /// Write man pages and shell completions into DIR and exit (packaging).
    #[arg(long, value_name = "DIR", hide = true)]
    generate_assets: Option<PathBuf>,
    /// Serve Prometheus metrics at http://ADDR/metrics (e.g. 127.0.0.1:9464; port 0
    /// picks one, logged). Off by default; keep it on a private address.
    #[arg(long, value_name = "ADDR")]
    metrics: Option<std::net::SocketAddr>,
    /// Seconds a client has to complete the TLS handshake.
    #[arg(long, value_name = "SECONDS", default_value = "15", value_parser = clap::value_parser!(u64).range(1..=3600))]
    handshake_timeout: u64,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

fn init_logs(format: LogFormat, syslog: Option<&std::path::Path>) {
    use tracing_subscriber::Layer as _;
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    let filter = tracing_subscriber::EnvFilter::try_from_env("FALLBACKD_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colour only for a person at a terminal, and never with NO_COLOR (no-color.org):
    // a log file or a pipe gets plain text.
    let colour = std::io::IsTerminal::is_terminal(&std::io::stderr())
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let stderr = match format {
        LogFormat::Text => tracing_subscriber::fmt::layer()
            .with_ansi(colour)
            .with_writer(std::io::stderr)
            .boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .with_ansi(false)
            .flatten_event(true)
            .with_writer(std::io::stderr)
            .boxed(),
    };
    let mut failed = None;
    let syslog = syslog.and_then(|path| match syslog::Syslog::connect(path) {
        Ok(w) => Some(
            // syslog stamps the time itself.
            tracing_subscriber::fmt::layer()
                .without_time()
                .with_ansi(false)
                .with_target(false)
                .with_writer(w),
        ),
        Err(e) => {
            failed = Some(format!("{}: {e}", path.display()));
            None
        }
    });
    tracing_subscriber::registry()
        .with(filter)
        .with(stderr)
        .with(syslog)
        .init();
    if let Some(why) = failed {
        tracing::warn!("no syslog ({why}): logging to standard error only");
    }
}

async fn shutdown_signal() {
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

#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let args = Args::parse();
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    if args.check_config {
        return check_config(&args);
    }
    if let Some(dir) = &args.generate_assets {
        use clap::CommandFactory as _;
        return match assets::generate(&Args::command(), "8", dir) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("fallbackd: {}: {e}", dir.display());
                ExitCode::from(1)
            }
        };
    }
    init_logs(args.log_format, args.syslog.as_deref());
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("fallbackd: cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // Once: the log goes to standard error (and syslog, when asked).
            tracing::error!("{e:#}");
            ExitCode::from(1)
        }
    }
}

/// Loads `file` and runs the one check (`fallback_server::check`, the same as `fallback
/// config check`): the configuration when it has no error, else every error.
fn load_checked(
    file: &std::path::Path,
) -> anyhow::Result<(Config, Vec<fallback_conf::Diagnostic>)> {
    let conf = Config::load(file).with_context(|| format!("cannot read {}", file.display()))?;
    let findings = fallback_server::check(&conf);
    let errors: Vec<String> = findings
        .iter()
        .filter(|d| d.is_error())
        .map(ToString::to_string)
        .collect();
    if !errors.is_empty() {
        anyhow::bail!(
            "{} has {} error(s): {}; `fallback config check {}` lists them",
            file.display(),
            errors.len(),
            errors.join("; "),
            file.display()
        );
    }
    Ok((conf, findings))
}

/// SIGHUP: the configuration file read, checked and applied (token keys, per-user
/// settings, the TLS certificate); anything wrong and nothing changes.
fn reload(
    file: &std::path::Path,
    state: &AppState,
    cert: Option<&fallback_server::CertSlot>,
) -> anyhow::Result<AppState> {
    let (conf, _) = load_checked(file)?;
    let s = conf.server();
    let tls = match (cert, &s.cert_file.value, &s.key_file.value) {
        (Some(_), Some(c), Some(k)) => Some(fallback_server::TlsSource::Files {
            cert: c.clone(),
            key: k.clone(),
        }),
        _ => None,
    };
    let new = state.reloaded(conf)?;
    if let (Some(slot), Some(source)) = (cert, tls) {
        let fp = slot.reload(&source)?;
        tracing::info!(fingerprint = %fp, "TLS certificate reloaded");
    }
    Ok(new)
}

/// `--check-config`: the check `fallback config check` runs, plus what only the
/// daemon's host and flags can say (ports, the mode with --bind and --trust-proxy).
fn check_config(args: &Args) -> ExitCode {
    let Some(file) = &args.config else {
        println!("fallbackd: no --config: the embedded default needs no checking");
        return ExitCode::SUCCESS;
    };
    let shown = file.display();
    let conf = match Config::load(file) {
        Ok(c) => c,
        Err(e) => {
            for d in e.diagnostics() {
                eprintln!("{shown}:{d}");
            }
            eprintln!("fallbackd: {shown}: {e}");
            eprintln!("fallbackd: {shown}: configuration test failed");
            return ExitCode::from(1);
        }
    };
    let mut findings = fallback_server::check(&conf);
    findings.extend(fallback_server::port_findings(
        &conf,
        args.bind.as_deref(),
        args.http_port,
        args.https_port,
    ));
    findings.extend(fallback_server::mode_findings(
        &conf,
        args.bind.as_deref(),
        &args.trust_proxy,
    ));
    let errors = findings.iter().filter(|d| d.is_error()).count();
    for d in &findings {
        match d.pos {
            Some(_) => eprintln!("{shown}:{d}"),
            None => eprintln!("{shown}: {d}"),
        }
    }
    if errors > 0 {
        eprintln!("fallbackd: {shown}: configuration test failed ({errors} error(s))");
        return ExitCode::from(1);
    }
    let mode = fallback_server::served_mode(&conf, args.bind.as_deref(), &args.trust_proxy);
    if let Err(e) = AppState::new(conf, Options::default()) {
        eprintln!("fallbackd: {shown}: {e}");
        eprintln!("fallbackd: {shown}: configuration test failed");
        return ExitCode::from(1);
    }
    println!("fallbackd: {shown}: configuration is valid ({mode} mode)");
    ExitCode::SUCCESS
}

/// Installs the Prometheus recorder and serves `GET /metrics` on `addr`.
async fn serve_metrics(addr: std::net::SocketAddr, state: AppState) -> anyhow::Result<()> {
    use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Full("fallback_request_duration_seconds".to_owned()),
            &[
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
                60.0, 300.0,
            ],
        )?
        .install_recorder()
        .context("cannot install the metrics recorder")?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr} for metrics"))?;
    tracing::info!(addr = %listener.local_addr()?, "metrics listening");
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let (handle, state) = (handle.clone(), state.clone());
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
    Ok(())
}

async fn run(args: Args) -> anyhow::Result<()> {
    let (conf, embedded) = match &args.config {
        Some(file) => {
            let (conf, findings) = load_checked(file)?;
            for d in &findings {
                if d.severity == fallback_conf::Severity::Note {
                    tracing::info!(file = %file.display(), "{d}");
                } else {
                    tracing::warn!(file = %file.display(), "{d}");
                }
            }
            (conf, None)
        }
        None => {
            let e = embedded::Embedded::prepare(&args.data)?;
            (e.config()?, Some(e))
        }
    };
    let mut options = Options::from_config(&conf);
    options.trusted_proxies.clone_from(&args.trust_proxy);
    options.cors_origins.clone_from(&args.cors_origin);
    let mode = fallback_server::served_mode(&conf, args.bind.as_deref(), &args.trust_proxy);
    if embedded.is_none() {
        for d in fallback_server::mode_findings(&conf, args.bind.as_deref(), &args.trust_proxy) {
            tracing::warn!("{d}");
        }
        if let Some(file) = &args.config {
            tracing::info!(config = %file.display(), %mode, "configuration loaded");
        }
    }
    if !args.cors_origin.is_empty() {
        tracing::info!(origins = %args.cors_origin.join(" "), "CORS: pages on these origins may call the service from a browser");
    }
    if !args.trust_proxy.is_empty() {
        tracing::info!(
            proxies = %args.trust_proxy.iter().map(ToString::to_string).collect::<Vec<_>>().join(" "),
            "trusting X-Forwarded-* from these proxies");
    }
    let stall_timeout = options.activity_timeout;
    let state = AppState::new(conf, options)?;
    let listeners = Listeners::bind_with(
        &state,
        args.bind.as_deref(),
        args.http_port,
        args.https_port,
    )
    .await
    .context("cannot listen; another server may hold the port (use --http-port)")?;
    if listeners.http.is_none() && listeners.https.is_none() {
        anyhow::bail!("neither enable_http nor enable_https is true: nothing to serve");
    }
    if let Some(e) = &embedded {
        e.print_banner(&state, &listeners)?;
    }
    let sweeper = state.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_hours(1));
        loop {
            tick.tick().await;
            let s = sweeper.clone();
            if let Ok(n) = tokio::task::spawn_blocking(move || s.sweep_expired()).await
                && n > 0
            {
                tracing::info!(removed = n, "expired uploads removed");
            }
        }
    });
    if let Some(addr) = args.metrics {
        serve_metrics(addr, state.clone()).await?;
    }
    let app = fallback_server::SharedRouter::new(fallback_server::router(state.clone()));
    let cert = listeners.https.as_ref().map(|(_, tls)| tls.cert.clone());
    let mut hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        .context("cannot handle SIGHUP")?;
    let (reload_app, config_file) = (app.clone(), args.config.clone());
    tokio::spawn(async move {
        let mut state = state;
        while hangup.recv().await.is_some() {
            let Some(file) = &config_file else {
                tracing::info!("SIGHUP: nothing to reload (embedded default)");
                continue;
            };
            match reload(file, &state, cert.as_deref()) {
                Ok(new) => {
                    reload_app.replace(fallback_server::router(new.clone()));
                    state = new;
                    tracing::info!(config = %file.display(), "configuration reloaded: new requests use it; transfers in flight finish on the old one");
                }
                Err(e) => tracing::error!(
                    config = %file.display(),
                    "reload refused, the running configuration stays: {e:#}"
                ),
            }
        }
    });
    fallback_server::serve(
        app,
        listeners,
        shutdown_signal(),
        ServeOptions {
            drain_timeout: Duration::from_secs(args.drain_timeout),
            header_timeout: Duration::from_secs(args.header_timeout),
            handshake_timeout: Duration::from_secs(args.handshake_timeout),
            stall_timeout,
        },
    )
    .await?;
    tracing::info!("stopped");
    Ok(())
}
