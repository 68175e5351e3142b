//! The HTTP client, request helpers and the retry loop.

use reqwest::{RequestBuilder, Response};

use crate::{Error, Event, Options, Result, Session};

pub(crate) fn build_client(opts: &Options) -> Result<reqwest::Client> {
    // HTTP/1.1 only: each stream of a ranged transfer and each file of a parallel tree
    // gets a TCP connection of its own (HTTP/2 would multiplex them all onto one), and
    // bulk bytes through TLS cost less on it (an HTTP/2 DATA frame is 16 KiB plus a
    // header: two TLS records each).
    let mut b = reqwest::Client::builder()
        .http1_only()
        .connect_timeout(opts.connect_timeout)
        .tcp_nodelay(true)
        .user_agent(concat!("fallback/", env!("CARGO_PKG_VERSION")));
    if opts.insecure && !opts.pins.is_empty() {
        return Err(Error::Tls(
            "--insecure and --pin contradict each other: a pin is checked, --insecure \
             checks nothing; drop --insecure"
                .to_owned(),
        ));
    }
    if opts.insecure {
        b = b.tls_danger_accept_invalid_certs(true);
    } else if opts.cacert.is_some() || !opts.pins.is_empty() {
        b = b.tls_backend_preconfigured(crate::trust::client_config(
            opts.cacert.as_deref(),
            &opts.pins,
        )?);
    }
    b.build()
        .map_err(|e| Error::Tls(format!("cannot build the HTTP client: {e}")))
}

/// The whole chain of a reqwest error, in words: a TLS refusal (the certificate, the
/// handshake) is [`Error::Tls`], which trying again cannot fix; the rest is
/// [`Error::Network`].
pub(crate) fn network(e: &reqwest::Error) -> Error {
    let mut msg = e.to_string();
    let mut tls = false;
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        let inner = s
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            .map(|i| i as &(dyn std::error::Error + 'static));
        // By type where the chain keeps it, else by rustls's own words (the connector
        // may rebox the error).
        tls |= s.is::<rustls::Error>()
            || inner.is_some_and(<dyn std::error::Error>::is::<rustls::Error>)
            || s.to_string().starts_with("invalid peer certificate");
        src = s.source();
    }
    if tls && msg.contains("matches no --pin") {
        Error::Tls(format!(
            "{msg} (the server's key changed, or this is not the server pinned: check with \
             its operator before pinning the new key)"
        ))
    } else if tls {
        Error::Tls(format!(
            "{msg} (trust the server's CA or its self-signed certificate with --cacert FILE, \
             or pin its key with --pin, which `fallback doctor` prints)"
        ))
    } else {
        Error::Network(msg)
    }
}

/// `Ok(resp)` for a success status, else the status and the server's message.
pub(crate) async fn check(resp: Response) -> Result<Response> {
    let status = resp.status();
    if status.is_success() || status == reqwest::StatusCode::NOT_MODIFIED {
        return Ok(resp);
    }
    let text = resp.text().await.unwrap_or_default();
    let said = text.lines().next().unwrap_or("").trim();
    Err(Error::Http {
        status: status.as_u16(),
        message: if said.is_empty() {
            unexplained(status).to_owned()
        } else {
            said.to_owned()
        },
    })
}

/// What a refusal means when the server sent no words (an answer to HEAD has no body).
fn unexplained(status: reqwest::StatusCode) -> &'static str {
    match status.as_u16() {
        401 => {
            "missing or invalid token: it expired, or was made with another key or for another user"
        }
        403 => {
            "not allowed: the path is outside the token, the token is for the other direction, or the user's settings refuse it"
        }
        404 => "not found",
        _ => status.canonical_reason().unwrap_or("no reason given"),
    }
}

/// Unreserved characters stay; everything else in a path segment is %XX.
const SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Percent-encodes each segment of a docroot-relative path for a URL.
pub(crate) fn encode_path(path: &str) -> String {
    path.split('/')
        .filter(|s| !s.is_empty())
        .map(|s| percent_encoding::utf8_percent_encode(s, SEGMENT).to_string())
        .collect::<Vec<_>>()
        .join("/")
}

impl Session {
    /// `{base}/files/{path}` with the path encoded segment by segment.
    pub(crate) fn files_url(&self, path: &str) -> String {
        format!("{}/files/{}", self.base, encode_path(path))
    }

    pub(crate) fn authed(&self, r: RequestBuilder) -> RequestBuilder {
        r.bearer_auth(&self.token)
    }

    /// Sends, mapping transport failures to [`Error::Network`].
    pub(crate) async fn send(&self, r: RequestBuilder) -> Result<Response> {
        self.authed(r).send().await.map_err(|e| network(&e))
    }

    /// Whether failed attempt `attempt` may be retried; if so, says so and waits with
    /// backoff and jitter first.
    pub(crate) async fn backoff(&self, rel: &str, attempt: u32, e: &Error) -> bool {
        if !e.is_retryable() || attempt >= self.opts.retry.attempts {
            return false;
        }
        let delay = self.opts.retry.delay(attempt);
        tracing::warn!(path = rel, attempt, delay_ms = delay.as_millis(), error = %e, "retrying");
        self.emit(&Event::Retry {
            path: rel.to_owned(),
            attempt,
            delay_ms: u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
            error: e.to_string(),
        });
        tokio::time::sleep(delay).await;
        true
    }
}
