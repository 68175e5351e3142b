//! The command line.

// Doc comments on clap types are the `--help` text, shown verbatim: no Markdown.
#![allow(clippy::doc_markdown)]

use std::path::PathBuf;

use clap::{Parser, ValueEnum};
use fallback_server::Addresses;

/// Serve HTTP fallback transfers: uploads and downloads over HTTP(S) for clients whose
/// network blocks FASP (UDP, SSH), authorized by transfer tokens and confined to each
/// user's docroot, as aspera.conf says.
///
/// Without --config it runs an embedded default that is safe to try: docroot
/// ./fallback-data, HTTP on 127.0.0.1:8080 only, a random token key kept in the data
/// folder; it prints ready tokens, a FASP URL and curl commands.
#[derive(Debug, Parser)]
#[command(name = "fallbackd", version)]
pub(crate) struct Args {
    /// The aspera.conf to serve (<http_server>, token keys, docroots).
    #[arg(long, short = 'c', value_name = "FILE", env = "FALLBACKD_CONFIG")]
    pub(crate) config: Option<PathBuf>,
    /// Data folder of the embedded default (used without --config).
    #[arg(long, value_name = "DIR", default_value = "fallback-data")]
    pub(crate) data: PathBuf,
    /// Listen address, overriding <http_server><bind_address>.
    #[arg(long, value_name = "ADDR")]
    pub(crate) bind: Option<String>,
    /// HTTP port, overriding <http_port> (0: any free port).
    #[arg(long, value_name = "PORT")]
    pub(crate) http_port: Option<u16>,
    /// HTTPS port, overriding <https_port> (0: any free port).
    #[arg(long, value_name = "PORT")]
    pub(crate) https_port: Option<u16>,
    /// A reverse proxy whose X-Forwarded-Proto / X-Forwarded-For are believed (proxy
    /// mode: Apache or nginx on 80/443 in front); repeatable. From anyone else these
    /// headers are ignored.
    #[arg(
        long,
        value_name = "IP",
        env = "FALLBACKD_TRUST_PROXY",
        value_delimiter = ','
    )]
    pub(crate) trust_proxy: Vec<std::net::IpAddr>,
    /// Let pages on ORIGIN (scheme://host[:port], or * for any) call the service from a
    /// browser (CORS: preflights answered, tus and digest headers exposed, never
    /// cookies), the IBM HTTP Gateway API's WebSocket uploads included; repeatable. Off
    /// by default: only same-origin pages can.
    #[arg(long, value_name = "ORIGIN", value_parser = fallback_server::parse_origin)]
    pub(crate) cors_origin: Vec<String>,
    /// Log format on standard error.
    #[arg(long, value_enum, default_value = "text")]
    pub(crate) log_format: LogFormat,
    /// Seconds given to transfers in flight after SIGTERM before connections are cut.
    #[arg(long, value_name = "SECONDS", default_value = "30")]
    pub(crate) drain_timeout: u64,
    /// Seconds a client has to send a request's headers, and that an idle keep-alive
    /// connection stays open waiting for the next request (slowloris protection).
    #[arg(long, value_name = "SECONDS", default_value = "30", value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub(crate) header_timeout: u64,
    /// Check the configuration (the --config file: XML, settings, token keys, TLS
    /// certificate and key) and exit: 0 when it would start, 1 otherwise. Like nginx -t.
    #[arg(long)]
    pub(crate) check_config: bool,
    /// Also log to syslog, facility local2 (as the real product does), through this
    /// socket (default /dev/log).
    #[arg(long, value_name = "SOCKET", num_args = 0..=1, default_missing_value = "/dev/log")]
    pub(crate) syslog: Option<PathBuf>,
    /// The tag of the syslog lines (their program name): fallbackd, or asperahttpd to
    /// keep rsyslog rules and monitoring written for the real product's HTTP fallback
    /// server.
    #[arg(long, value_name = "NAME", default_value = "fallbackd", value_parser = crate::syslog::parse_tag)]
    pub(crate) syslog_tag: String,
    /// Write the man pages (fallbackd.8) and shell completions (bash, zsh, fish) into
    /// DIR and exit: what the Debian package installs, for hosts without it.
    #[arg(long, value_name = "DIR")]
    pub(crate) generate_assets: Option<PathBuf>,
    /// Serve Prometheus metrics at http://ADDR/metrics (e.g. 127.0.0.1:9464; port 0
    /// picks one, logged). Off by default; keep it on a private address.
    #[arg(long, value_name = "ADDR")]
    pub(crate) metrics: Option<std::net::SocketAddr>,
    /// Print a reverse proxy's configuration for this instance and exit, to use as is:
    /// apache (an include file for the port-80 and port-443 virtual hosts), nginx (for
    /// the http block) or nginx-location (for location /aspera/). Balancer members are
    /// this instance's HTTP listener, or the --proxy-member addresses; timeouts follow
    /// session_activity_timeout.
    #[arg(long, value_name = "PROXY")]
    pub(crate) print_proxy_config: Option<crate::proxy::ProxyKind>,
    /// A balancer member for --print-proxy-config, HOST:PORT (each fallbackd instance's
    /// HTTP listener); repeatable. Default: this instance's own listener.
    #[arg(long, value_name = "HOST:PORT", requires = "print_proxy_config")]
    pub(crate) proxy_member: Vec<String>,
    /// Seconds a client has to complete the TLS handshake.
    #[arg(long, value_name = "SECONDS", default_value = "15", value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub(crate) handshake_timeout: u64,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum LogFormat {
    Text,
    Json,
}

impl Args {
    pub(crate) fn addresses(&self) -> Addresses {
        Addresses {
            bind: self.bind.clone(),
            http_port: self.http_port,
            https_port: self.https_port,
        }
    }
}
