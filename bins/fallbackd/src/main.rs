//! `fallbackd`: the HTTP fallback daemon. Wiring only: arguments, logs, the TLS
//! provider, then `fallback_server::Service` (load, check, reload, sweep, metrics,
//! serve).

// A daemon prints its start banner.
#![allow(clippy::print_stdout, clippy::print_stderr)]
// Doc comments on clap types are the `--help` text, shown verbatim: <WEB> and [:port]
// are text there, not HTML or links for rustdoc.
#![allow(rustdoc::invalid_html_tags, rustdoc::broken_intra_doc_links)]

mod args;
#[path = "../../../dist/assets.rs"]
mod assets;
mod embedded;
mod logs;
mod proxy;
mod syslog;

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser as _;
use fallback_conf::Config;
use fallback_server::{AppState, Options, ServeOptions, Service};

use crate::args::Args;

#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let args = Args::parse();
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    if args.check_config {
        return check_config(&args);
    }
    if let Some(kind) = args.print_proxy_config {
        return proxy::print(&args, kind);
    }
    if let Some(dir) = &args.generate_assets {
        use clap::CommandFactory as _;
        return match assets::generate(&Args::command(), "8", dir, include_str!("man.roff")) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("fallbackd: {}: {e}", dir.display());
                ExitCode::from(1)
            }
        };
    }
    let _logs = logs::init_logs(args.log_format, args.syslog.as_deref(), &args.syslog_tag);
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

/// `--check-config`: the check `fallback config check` runs, plus what only the
/// daemon's host and flags can say (ports, the mode with --bind and --trust-proxy).
fn check_config(args: &Args) -> ExitCode {
    let Some(file) = &args.config else {
        println!("fallbackd: no --config: the embedded default needs no checking");
        return ExitCode::SUCCESS;
    };
    let shown = file.display();
    let failed = |why: &dyn std::fmt::Display| {
        eprintln!("fallbackd: {shown}: {why}");
        eprintln!("fallbackd: {shown}: configuration test failed");
        ExitCode::from(1)
    };
    let conf = match Config::load(file) {
        Ok(c) => c,
        Err(e) => {
            for d in e.diagnostics() {
                eprintln!("{shown}:{d}");
            }
            return failed(&e);
        }
    };
    let findings = fallback_server::daemon_findings(&conf, &args.addresses(), &args.trust_proxy);
    for d in &findings {
        match d.pos {
            Some(_) => eprintln!("{shown}:{d}"),
            None => eprintln!("{shown}: {d}"),
        }
    }
    let errors = findings.iter().filter(|d| d.is_error()).count();
    if errors > 0 {
        return failed(&format!("{errors} error(s)"));
    }
    let mode = fallback_server::served_mode(&conf, args.bind.as_deref(), &args.trust_proxy);
    if let Err(e) = AppState::new(conf, Options::default()) {
        return failed(&e);
    }
    println!("fallbackd: {shown}: configuration is valid ({mode} mode)");
    ExitCode::SUCCESS
}

async fn run(args: Args) -> anyhow::Result<()> {
    let (conf, embedded) = match &args.config {
        Some(file) => {
            let loaded = fallback_server::load(file)?;
            loaded.log(file);
            (loaded.config, None)
        }
        None => {
            let e = embedded::Embedded::prepare(&args.data)?;
            (e.config()?, Some(e))
        }
    };
    let mut options = Options::from_config(&conf);
    options.trusted_proxies.clone_from(&args.trust_proxy);
    options.cors_origins.clone_from(&args.cors_origin);
    if let Some(file) = &args.config {
        for d in fallback_server::mode_findings(&conf, args.bind.as_deref(), &args.trust_proxy) {
            tracing::warn!("{d}");
        }
        let mode = fallback_server::served_mode(&conf, args.bind.as_deref(), &args.trust_proxy);
        tracing::info!(config = %file.display(), %mode, "configuration loaded");
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
    let service = Service::bind(state, &args.addresses(), args.config.clone())
        .await
        .context("cannot listen; another server may hold the port (use --http-port)")?;
    if let Some(e) = &embedded {
        e.print_banner(&service)?;
    }
    service.sweep_every(Duration::from_hours(1));
    if let Some(addr) = args.metrics {
        service.serve_metrics(addr).await?;
    }
    service.reload_on_hangup()?;
    let opts = ServeOptions {
        drain_timeout: Duration::from_secs(args.drain_timeout),
        header_timeout: Duration::from_secs(args.header_timeout),
        handshake_timeout: Duration::from_secs(args.handshake_timeout),
        stall_timeout,
    };
    service.serve(fallback_server::terminated(), opts).await?;
    tracing::info!("stopped");
    Ok(())
}
