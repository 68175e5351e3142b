//! `fallback doctor`: the article's troubleshooting list, automated. Each check gives a
//! verdict and, when something is wrong, the fix.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use fallback_conf::{Code, Config};
use fallback_url::FaspUrl;
use serde::Serialize;

use crate::decide::{Unreachable, probe};
use crate::http::{build_client, encode_path, network};
use crate::{Error, Options};

/// How a check went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// Fine.
    Pass,
    /// Worth knowing; fallback can still work.
    Info,
    /// Fallback works, but something is off.
    Warn,
    /// Fallback will not work until this is fixed.
    Fail,
}

/// One line of the report.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// What was checked.
    pub name: String,
    /// The verdict.
    pub verdict: Verdict,
    /// What was found.
    pub detail: String,
    /// What to do, when something is wrong.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

fn check(name: &str, verdict: Verdict, detail: impl Into<String>, fix: Option<&str>) -> Check {
    Check {
        name: name.to_owned(),
        verdict,
        detail: detail.into(),
        fix: fix.map(str::to_owned),
    }
}

/// Runs every check against `url` (and, with `config`, the server's aspera.conf).
/// Fallback would work when no check fails.
pub async fn doctor(url: &str, config: Option<&Config>, opts: &Options) -> Vec<Check> {
    let mut out = Vec::new();
    let url = match FaspUrl::parse(url) {
        Ok(u) => u,
        Err(e) => {
            out.push(check(
                "FASP URL",
                Verdict::Fail,
                format!("not a valid FASP URL: {e}"),
                Some("copy the whole link from the web page (view its source if needed)"),
            ));
            return out;
        }
    };
    url_checks(&url, &mut out);
    match probe(&url.host, url.ssh_port(), opts.ssh_probe_timeout).await {
        Ok(()) => out.push(check(
            "FASP SSH port",
            Verdict::Info,
            format!(
                "{}:{} answers: FASP may work from here",
                url.host,
                url.ssh_port()
            ),
            None,
        )),
        Err(why) => out.push(check(
            "FASP SSH port",
            Verdict::Info,
            format!(
                "{}:{} does not answer ({why}): FASP is blocked from here, so transfers \
                 need HTTP fallback",
                url.host,
                url.ssh_port()
            ),
            None,
        )),
    }
    let port = url.http_port();
    if let Err(why) = probe(&url.host, port, opts.connect_timeout).await {
        let fix = match why {
            Unreachable::Refused => {
                "nothing listens there: start fallbackd (enable_http/enable_https in \
                 <http_server>), and check that httpport names the port it (or the proxy) \
                 listens on"
            }
            Unreachable::Dropped(_) => {
                "packets to that port are dropped on the way (a firewall, here or at the \
                 server): open the port, or serve fallback through the web server on 443 \
                 (proxy mode) and put that port in httpport"
            }
            Unreachable::Other(_) => {
                "check the host name and the network route to it, then that fallbackd \
                 listens on httpport"
            }
        };
        out.push(check(
            "fallback port",
            Verdict::Fail,
            format!("{}:{port} does not answer ({why})", url.host),
            Some(fix),
        ));
        config_checks(&url, config, &mut out);
        return out;
    }
    out.push(check(
        "fallback port",
        Verdict::Pass,
        format!("{}:{port} answers", url.host),
        None,
    ));
    if url.uses_https() {
        tls_checks(&url, opts, &mut out).await;
    }
    server_checks(&url, opts, &mut out).await;
    config_checks(&url, config, &mut out);
    out
}

/// A signed token names its user in the clear: over HTTP the server acts as that user,
/// whatever user the URL names, so a different one is a link that moves someone
/// else's files. (A sealed token cannot be read here; the server checks it.)
fn token_user_mismatch(url: &FaspUrl, token: &str) -> Option<Check> {
    let claims = fallback_token::inspect_unverified(token).ok()?;
    let url_user = url.user.as_deref()?;
    if claims.user == url_user {
        return Some(check(
            "token user",
            Verdict::Pass,
            format!("the token is for {url_user}, the user the URL names"),
            None,
        ));
    }
    Some(check(
        "token user",
        Verdict::Fail,
        format!(
            "the token is for user {:?} but the URL names {url_user:?}: over HTTP the \
             server acts as the token's user, so this link would move {:?}'s files",
            claims.user, claims.user
        ),
        Some("issue the token for the user the URL names (or fix the URL's user)"),
    ))
}

fn url_checks(url: &FaspUrl, out: &mut Vec<Check>) {
    match url.params.token.as_deref() {
        Some(t) if !t.is_empty() => {
            out.push(check("token", Verdict::Pass, "present", None));
            if let Some(c) = token_user_mismatch(url, t) {
                out.push(c);
            }
        }
        _ => out.push(check(
            "token",
            Verdict::Fail,
            "the URL has no token",
            Some("issue a transfer token for this path and user and add token=... (HTTP fallback refuses requests without one)"),
        )),
    }
    if url.params.fallback == Some(true) {
        out.push(check("fallback=yes", Verdict::Pass, "present", None));
    } else {
        out.push(check(
            "fallback=yes",
            Verdict::Fail,
            "the URL does not say fallback=yes, so clients will not fall back",
            Some("add fallback=yes; on a Connect Server set <WEB HttpFallback=\"yes\">"),
        ));
    }
    match url.params.httpport {
        Some(p) => out.push(check(
            "httpport",
            Verdict::Pass,
            format!(
                "{p} ({}, from enc={})",
                if url.uses_https() { "HTTPS" } else { "HTTP" },
                url.params.enc.map_or("(absent)".to_owned(), |e| e.to_string())
            ),
            None,
        )),
        None => out.push(check(
            "httpport",
            Verdict::Warn,
            format!("absent: clients will use {}", url.http_port()),
            Some("add httpport=<HttpsFallbackPort> for encrypting users, <HttpFallbackPort> for enc=none"),
        )),
    }
}

/// A verifier that accepts any certificate: used only to read the certificate for the
/// report. The verdict comes from a normal client.
#[derive(Debug)]
struct ReadOnly(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for ReadOnly {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// The server's certificate, read without judging it.
async fn peer_certificate(host: &str, port: u16) -> Result<Vec<u8>, String> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(ReadOnly(provider)))
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::time::timeout(
        Duration::from_secs(10),
        tokio::net::TcpStream::connect((host, port)),
    )
    .await
    .map_err(|_| "connect timed out".to_owned())?
    .map_err(|e| e.to_string())?;
    let name = rustls::pki_types::ServerName::try_from(host.to_owned())
        .map_err(|e| format!("{host}: {e}"))?;
    let tls = tokio::time::timeout(Duration::from_secs(10), connector.connect(name, tcp))
        .await
        .map_err(|_| "TLS handshake timed out".to_owned())?
        .map_err(|e| format!("TLS handshake failed: {e}"))?;
    tls.get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
        .map(|c| c.to_vec())
        .ok_or_else(|| "the server sent no certificate".to_owned())
}

async fn tls_checks(url: &FaspUrl, opts: &Options, out: &mut Vec<Check>) {
    let port = url.http_port();
    match peer_certificate(&url.host, port).await {
        Err(e) => out.push(check(
            "TLS",
            Verdict::Fail,
            e,
            Some("the port does not speak TLS: enc asks for HTTPS; use the HTTPS port (HttpsFallbackPort) or enc=none with the HTTP port"),
        )),
        Ok(der) => {
            use sha2::Digest as _;
            let hex = hex::encode_upper(sha2::Sha256::digest(&der));
            let fp: Vec<&str> = (0..hex.len())
                .step_by(2)
                .filter_map(|i| hex.get(i..i + 2))
                .collect();
            let mut detail = format!("certificate SHA-256 {}", fp.join(":"));
            if let Some(pin) = crate::trust::pin_of(&der) {
                let _ = write!(detail, "; key pin {} (for --pin)", crate::trust::show_pin(&pin));
            }
            if let Ok((_, cert)) = x509_parser::parse_x509_certificate(&der) {
                let names: Vec<String> = cert
                    .subject_alternative_name()
                    .ok()
                    .flatten()
                    .map(|san| san.value.general_names.iter().map(ToString::to_string).collect())
                    .unwrap_or_default();
                let _ = write!(
                    detail,
                    "; names {}; valid until {}",
                    if names.is_empty() { "(none)".to_owned() } else { names.join(", ") },
                    cert.validity().not_after
                );
            }
            out.push(check("TLS certificate", Verdict::Info, detail, None));
        }
    }
    // The verdict: does a normal client (system roots, --cacert) accept it?
    let client = match build_client(&Options {
        insecure: false,
        ..opts.clone()
    }) {
        Ok(c) => c,
        Err(e) => {
            out.push(check(
                "TLS trust",
                Verdict::Fail,
                e.to_string(),
                Some("check the --cacert file"),
            ));
            return;
        }
    };
    let base = url.http_base().map(|u| u.to_string()).unwrap_or_default();
    match client
        .get(format!("{}/health", base.trim_end_matches('/')))
        .send()
        .await
    {
        Ok(_) => out.push(check(
            "TLS trust",
            Verdict::Pass,
            "certificate accepted",
            None,
        )),
        Err(e) => {
            let msg = network(&e).to_string();
            // The certificate's own problem first (rustls's words), then the fix.
            let fix = if msg.contains("NotValidForName") || msg.contains("not valid for name") {
                "the certificate does not name this host: reissue it for the host in the URL \
                 (a DNS name or an IP address in subjectAltName)"
            } else if msg.contains("Expired") || msg.contains("expired") {
                "the certificate has expired: renew it"
            } else if msg.contains("CaUsedAsEndEntity") {
                "the server presents a self-signed CA certificate (openssl req -x509 makes \
                 one): give clients exactly that file with --cacert, or its key pin (above) \
                 with --pin, or issue the server a certificate from a CA (public, or your \
                 own given with --cacert)"
            } else if msg.contains("UnknownIssuer") || msg.contains("unknown issuer") {
                "the certificate is from a private CA or self-signed: give clients the CA \
                 (or the certificate) with --cacert, or its key pin (above) with --pin, or \
                 install one from a public CA in cert_file/key_file"
            } else {
                "check cert_file/key_file on the server"
            };
            out.push(check("TLS trust", Verdict::Fail, msg, Some(fix)));
        }
    }
}

async fn server_checks(url: &FaspUrl, opts: &Options, out: &mut Vec<Check>) {
    let Ok(client) = build_client(opts) else {
        return;
    };
    let base = url
        .http_base()
        .map(|u| u.to_string().trim_end_matches('/').to_owned())
        .unwrap_or_default();
    let info = client.get(format!("{base}/info")).send().await;
    match info {
        Ok(r) if r.status().is_success() => {
            let v: serde_json::Value = r.json().await.unwrap_or_default();
            if v["protocol"] == "fallback/1" {
                out.push(check(
                    "server",
                    Verdict::Pass,
                    format!(
                        "fallbackd {} answers at {base}",
                        v["version"].as_str().unwrap_or("?")
                    ),
                    None,
                ));
            } else {
                out.push(check(
                    "server",
                    Verdict::Fail,
                    format!("{base}/info answers, but not as fallbackd"),
                    Some("something else listens here: point httpport (or the proxy's /aspera/http(s) location) at fallbackd"),
                ));
                return;
            }
        }
        Ok(r) => {
            out.push(check(
                "server",
                Verdict::Fail,
                format!("{base}/info answered {}", r.status()),
                Some("the proxy must forward /aspera/http and /aspera/https to fallbackd"),
            ));
            return;
        }
        Err(e) if !url.uses_https() || !network(&e).to_string().contains("certificate") => {
            out.push(check(
                "server",
                Verdict::Fail,
                network(&e).to_string(),
                Some("check that fallbackd runs and that the scheme matches: enc=none needs the HTTP port, a cipher the HTTPS port"),
            ));
            return;
        }
        Err(_) => return,
    }
    let Some(token) = url.params.token.as_deref().filter(|t| !t.is_empty()) else {
        return;
    };
    let path = if url.path.is_empty() { "/" } else { &url.path };
    let mut refusals = Vec::new();
    for direction in ["download", "upload"] {
        let r = client
            .get(format!(
                "{base}/access/{}?direction={direction}",
                encode_path(path)
            ))
            .bearer_auth(token)
            .send()
            .await;
        match r {
            Ok(r) if r.status().as_u16() == 204 => {
                out.push(check(
                    "token",
                    Verdict::Pass,
                    format!("accepted for {direction} of {path}"),
                    None,
                ));
                return;
            }
            Ok(r) => {
                let status = r.status().as_u16();
                let body = r.text().await.unwrap_or_default();
                refusals.push((status, body.trim().to_owned()));
            }
            Err(e) => refusals.push((0, network(&e).to_string())),
        }
    }
    let (status, body) = refusals.first().cloned().unwrap_or_default();
    let fix = match status {
        401 => {
            "the token is expired, malformed, or made with another key: issue a new one with the server's encryption_key"
        }
        403 => {
            "the token does not cover this path or this user may not transfer: issue a token for the URL's path (or set allow/token for the user)"
        }
        _ => "check the server logs for the precise reason",
    };
    out.push(check(
        "token",
        Verdict::Fail,
        format!("refused ({status}: {body})"),
        Some(fix),
    ));
}

fn config_checks(url: &FaspUrl, config: Option<&Config>, out: &mut Vec<Check>) {
    let Some(conf) = config else { return };
    let mismatches: Vec<String> = conf
        .diagnostics()
        .iter()
        .filter(|d| d.code == Code::WebPortMismatch)
        .map(|d| d.message.clone())
        .collect();
    if mismatches.is_empty() {
        out.push(check(
            "<WEB> vs <http_server>",
            Verdict::Pass,
            format!("ports agree ({} mode)", conf.server().mode()),
            None,
        ));
    } else {
        for m in mismatches {
            out.push(check(
                "<WEB> vs <http_server>",
                Verdict::Fail,
                m,
                Some("in direct mode set <WEB HttpFallbackPort/HttpsFallbackPort> to http_port/https_port"),
            ));
        }
    }
    if let (Some(web), Some(p)) = (conf.web(), url.params.httpport) {
        let expected = if url.uses_https() {
            web.https_fallback_port.value
        } else {
            web.http_fallback_port.value
        };
        if p != expected {
            out.push(check(
                "httpport vs <WEB>",
                Verdict::Warn,
                format!("the URL says httpport={p}, <WEB> advertises {expected}"),
                Some("regenerate the link (the dir-listing rule picks the port from the user's encryption)"),
            ));
        }
    }
}

impl From<Error> for Check {
    fn from(e: Error) -> Self {
        check("client", Verdict::Fail, e.to_string(), None)
    }
}
