//! The fallback decision, in words.

use std::net::ToSocketAddrs as _;
use std::time::Duration;

use fallback_url::FaspUrl;
use futures_util::StreamExt as _;
use futures_util::future::BoxFuture;

use crate::http::build_client;
use crate::{Error, Event, Events, Options, Result};

/// A checked URL and an HTTP client ready to transfer.
#[derive(Clone)]
pub struct Session {
    pub(crate) url: FaspUrl,
    pub(crate) base: String,
    pub(crate) token: String,
    pub(crate) http: reqwest::Client,
    pub(crate) opts: Options,
    pub(crate) events: Events,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

/// Whether a TCP port answers within `timeout`: `Ok(())`, or why not in words.
/// Why a TCP port did not answer: the difference tells a server that is down from a
/// firewall that drops packets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Unreachable {
    /// Something answered "no": nothing listens there (a RST).
    Refused,
    /// Nothing answered within the time: packets are dropped on the way.
    Dropped(Duration),
    /// Anything else (no such host, no route).
    Other(String),
}

impl std::fmt::Display for Unreachable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unreachable::Refused => f.write_str("connection refused"),
            Unreachable::Dropped(t) => write!(f, "no answer within {} s", t.as_secs()),
            Unreachable::Other(why) => f.write_str(why),
        }
    }
}

pub(crate) async fn probe(host: &str, port: u16, timeout: Duration) -> Result<(), Unreachable> {
    let target = format!("{host}:{port}");
    let addrs: Vec<_> = tokio::task::spawn_blocking({
        let t = if host.contains(':') {
            format!("[{host}]:{port}")
        } else {
            target.clone()
        };
        move || t.to_socket_addrs().map(Iterator::collect::<Vec<_>>)
    })
    .await
    .map_err(|e| Unreachable::Other(e.to_string()))?
    .map_err(|e| Unreachable::Other(format!("cannot resolve {host}: {e}")))?;
    let Some(addr) = addrs.first() else {
        return Err(Unreachable::Other(format!("{host} has no address")));
    };
    match tokio::time::timeout(timeout, tokio::net::TcpStream::connect(addr)).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
            Err(Unreachable::Refused)
        }
        Ok(Err(e)) => Err(Unreachable::Other(e.to_string())),
        Err(_) => Err(Unreachable::Dropped(timeout)),
    }
}

impl Session {
    /// Checks `url`, probes FASP, decides on HTTP fallback and prepares the client.
    /// Every step is reported as an [`Event::Decision`] and logged.
    pub async fn open(url: &str, opts: Options, events: Events) -> Result<Session> {
        let say = |m: String| {
            tracing::info!("{m}");
            events(&Event::Decision { message: m });
        };
        let url = FaspUrl::parse(url).map_err(|e| Error::Url(format!("bad FASP URL: {e}")))?;
        say(format!(
            "FASP URL for {}@{}, path {:?}, SSH port {}",
            url.user.as_deref().unwrap_or("(no user)"),
            url.host,
            if url.path.is_empty() { "/" } else { &url.path },
            url.ssh_port()
        ));
        let token = match url.params.token.as_deref() {
            Some(t) if !t.is_empty() => t.to_owned(),
            _ => {
                return Err(Error::Url(
                    "the URL has no token: HTTP fallback requires a transfer token \
                     (add token=... to the URL; without it the server answers 401)"
                        .to_owned(),
                ));
            }
        };
        if let (Ok(claims), Some(named)) = (
            fallback_token::inspect_unverified(&token),
            url.user.as_deref(),
        ) && claims.user != named
        {
            say(format!(
                "warning: the token is for user {:?}, not {named:?} as the URL says: over \
                 HTTP the server acts as {:?}",
                claims.user, claims.user
            ));
        }
        match probe(&url.host, url.ssh_port(), opts.ssh_probe_timeout).await {
            Ok(()) => say(format!(
                "FASP SSH port {} on {} is reachable, but this client does not speak FASP",
                url.ssh_port(),
                url.host
            )),
            Err(why) => say(format!(
                "FASP SSH port {} on {} is not reachable ({why}): FASP is blocked from here",
                url.ssh_port(),
                url.host
            )),
        }
        match url.params.fallback {
            Some(true) => say("the URL says fallback=yes: using HTTP fallback".to_owned()),
            other if opts.force_http => say(format!(
                "--force-http: using HTTP fallback although the URL says {}",
                match other {
                    Some(false) => "fallback=no",
                    _ => "nothing about fallback",
                }
            )),
            Some(false) => {
                return Err(Error::Url(
                    "the URL says fallback=no: HTTP fallback is not allowed; the link must \
                     carry fallback=yes (or use --force-http to try anyway)"
                        .to_owned(),
                ));
            }
            None => {
                return Err(Error::Url(
                    "the URL has no fallback parameter: HTTP fallback is not allowed; add \
                     fallback=yes to the URL (or use --force-http to try anyway)"
                        .to_owned(),
                ));
            }
        }
        let base = url
            .http_base()
            .map_err(|e| Error::Url(e.to_string()))?
            .to_string();
        let scheme_why = match url.params.enc {
            Some(e) if e.is_cipher() => format!("enc={e}: HTTPS"),
            Some(_) => "enc=none: plain HTTP".to_owned(),
            None => "no enc parameter: HTTPS (clients encrypt by default)".to_owned(),
        };
        let port_why = match url.params.httpport {
            Some(p) => format!("port {p} from httpport"),
            None => format!(
                "no httpport: port {} (the default for {})",
                url.http_port(),
                if url.uses_https() { "HTTPS" } else { "HTTP" }
            ),
        };
        say(format!("{scheme_why}, {port_why}: fallback base {base}"));
        if opts.insecure {
            say(
                "--insecure: the server certificate is NOT checked; anyone on the network \
                 path can read and change this transfer"
                    .to_owned(),
            );
        }
        let http = build_client(&opts)?;
        Ok(Session {
            url,
            base: base.trim_end_matches('/').to_owned(),
            token,
            http,
            opts,
            events,
        })
    }

    /// The fallback base URL (`https://host:port/aspera/https`).
    pub fn base(&self) -> &str {
        &self.base
    }

    /// The FASP URL.
    pub fn url(&self) -> &FaspUrl {
        &self.url
    }

    pub(crate) fn emit(&self, e: &Event) {
        (self.events)(e);
    }

    /// Runs a transfer plan: announces it, moves each file with `each` (at most
    /// `in_flight` at once) and totals the outcomes. `label` gives a job's path and size.
    pub(crate) async fn run_jobs<J>(
        &self,
        jobs: Vec<J>,
        in_flight: usize,
        label: impl Fn(&J) -> (String, u64),
        each: impl for<'a> Fn(&'a Self, &'a J) -> BoxFuture<'a, Result<u64>>,
    ) -> crate::Summary {
        self.emit(&Event::Plan {
            files: jobs.len(),
            bytes: jobs.iter().map(|j| label(j).1).sum(),
        });
        let each = &each;
        let results: Vec<(J, Result<u64>)> = futures_util::stream::iter(jobs)
            .map(|job| async move {
                let r = each(self, &job).await;
                (job, r)
            })
            .buffer_unordered(in_flight.max(1))
            .collect()
            .await;
        self.summarize(results.into_iter().map(|(j, r)| {
            let (path, size) = label(&j);
            (path, size, r)
        }))
    }

    /// Totals of per-file outcomes `(path, size, bytes moved or error)`; each failure is
    /// reported as an event and listed.
    fn summarize(
        &self,
        results: impl Iterator<Item = (String, u64, Result<u64>)>,
    ) -> crate::Summary {
        let mut summary = crate::Summary::default();
        for (path, size, r) in results {
            match r {
                Ok(moved) => {
                    summary.files += 1;
                    summary.bytes += size;
                    summary.transferred += moved;
                }
                Err(e) => {
                    self.emit(&Event::FileFailed {
                        path: path.clone(),
                        error: e.to_string(),
                    });
                    summary.failed.push((path, e.to_string()));
                }
            }
        }
        summary
    }
}
