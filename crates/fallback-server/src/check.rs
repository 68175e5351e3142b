//! The one configuration check: what `fallback config check` and `fallbackd
//! --check-config` both run, so the same file on the same host gets the same verdict.

use fallback_conf::{Code, Config, Diagnostic, Mode};

/// Every finding about `conf` on this host, in file order: the file's own (syntax,
/// values, settings that contradict each other, settings not applied over HTTP), the
/// host's (docroots exist, `$(name)` and `$(home)` docroots for the users written),
/// and TLS (the certificate and key load and belong together). The daemon adds only
/// whether its ports can be bound ([`port_findings`]).
pub fn check(conf: &Config) -> Vec<Diagnostic> {
    let mut out = conf.diagnostics().to_vec();
    out.extend(conf.host_findings());
    let s = conf.server();
    if s.enable_https.value
        && let (Some(cert), Some(key)) = (&s.cert_file.value, &s.key_file.value)
        && let Err(e) = crate::tls_acceptor(&crate::TlsSource::Files {
            cert: cert.clone(),
            key: key.clone(),
        })
    {
        out.push(Diagnostic::new(
            Code::TlsUnusable,
            s.cert_file.origin.pos(),
            "/CONF/http_server/cert_file",
            format!(
                "{e} (cert_file {}, key_file {}): fix the files or their permissions, or \
                 remove both elements for a generated self-signed certificate",
                cert.display(),
                key.display()
            ),
        ));
    }
    out.extend(bucket_findings(conf));
    out.sort_by_key(|d| (d.pos.is_none(), d.pos, std::cmp::Reverse(d.severity)));
    out
}

/// The engine's view of an `s3://` docroot.
pub fn s3_location(root: &fallback_conf::S3Root) -> fallback_s3::Location {
    fallback_s3::Location {
        endpoint: root.endpoint(),
        bucket: root.bucket.clone(),
        prefix: root.prefix.clone(),
        credentials: root.credentials.as_ref().map(|c| {
            (
                c.access_key_id.expose().to_owned(),
                c.secret_access_key.expose().to_owned(),
            )
        }),
        allow_http: root.allow_http,
        storage_class: root.storage_class.clone(),
        server_side_encryption: root.server_side_encryption.clone(),
        shown: root.to_string(),
    }
}

/// Each `s3://` docroot's bucket, checked over the network from this host (reachable,
/// credentials accepted, writable: [`fallback_s3::Bucket::check`]): a note
/// when usable, an error saying what to fix when not. On a thread of its own, so it
/// can be called from inside a runtime or outside one.
pub fn bucket_findings(conf: &Config) -> Vec<Diagnostic> {
    let roots = conf.s3_docroots();
    if roots.is_empty() {
        return Vec::new();
    }
    let checked = std::thread::scope(|s| {
        s.spawn(|| {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            Ok::<_, String>(rt.block_on(async {
                let mut out = Vec::new();
                for r in &roots {
                    let loc = s3_location(r);
                    let res = match fallback_s3::Bucket::connect(&loc) {
                        Ok(b) => b.check().await,
                        Err(e) => Err(e),
                    };
                    out.push(res.map_err(|e| e.to_string()));
                }
                out
            }))
        })
        .join()
        .unwrap_or_else(|_| Err("the bucket check panicked".to_owned()))
    });
    let at = "/CONF/*/file_system/access/paths/path/absolute";
    match checked {
        Err(e) => vec![Diagnostic::new(
            Code::BucketUnusable,
            None,
            at,
            format!("the buckets could not be checked: {e}"),
        )],
        Ok(results) => results
            .into_iter()
            .map(|r| match r {
                Ok(done) => Diagnostic::new(Code::BucketChecked, None, at, done),
                Err(why) => Diagnostic::new(
                    Code::BucketUnusable,
                    None,
                    at,
                    format!(
                        "{why}; fix the endpoint, the credentials (the URI's, or AWS_ACCESS_KEY_ID \
                         and AWS_SECRET_ACCESS_KEY, AWS_REGION) or the bucket policy \
                         (docs/operations.md lists the permissions)"
                    ),
                ),
            })
            .collect(),
    }
}

/// What `fallbackd --check-config` reports: [`check`], then what only the daemon's
/// host and flags can say: whether its ports can be bound ([`port_findings`]) and the
/// mode its address and trusted proxies make ([`mode_findings`]).
pub fn daemon_findings(
    conf: &Config,
    addrs: &crate::Addresses,
    trusted: &[std::net::IpAddr],
) -> Vec<Diagnostic> {
    let bind = addrs.bind.as_deref();
    let mut out = check(conf);
    out.extend(port_findings(conf, bind, addrs.http_port, addrs.https_port));
    out.extend(mode_findings(conf, bind, trusted));
    out
}

/// Whether the listeners `conf` enables can be bound here (at `bind`, or the file's
/// `bind_address`): a warning each one that cannot, since a running fallbackd holds
/// its own ports while a new file is checked before a reload.
/// `http` and `https` override the file's ports (0: any free port, not checked).
pub fn port_findings(
    conf: &Config,
    bind: Option<&str>,
    http: Option<u16>,
    https: Option<u16>,
) -> Vec<Diagnostic> {
    let s = conf.server();
    let addr = bind.unwrap_or(&s.bind_address.value).trim();
    let host = addr.trim_start_matches('[').trim_end_matches(']');
    let mut out = Vec::new();
    for (on, port, what, key) in [
        (
            s.enable_http.value,
            http.unwrap_or(s.http_port.value),
            "HTTP",
            "http_port",
        ),
        (
            s.enable_https.value,
            https.unwrap_or(s.https_port.value),
            "HTTPS",
            "https_port",
        ),
    ] {
        if !on || port == 0 {
            continue;
        }
        let target = if host.contains(':') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        };
        if let Err(e) = std::net::TcpListener::bind(&target) {
            let origin = if key == "http_port" {
                &s.http_port.origin
            } else {
                &s.https_port.origin
            };
            out.push(Diagnostic::new(
                Code::PortUnavailable,
                origin.pos(),
                format!("/CONF/http_server/{key}"),
                format!(
                    "the {what} port {target} cannot be bound on this host ({e}): fine if \
                     it is this fallbackd's own, checked before a reload; otherwise the \
                     daemon would not start (another server holds it, or ports below 1024 \
                     need privilege)"
                ),
            ));
        }
    }
    out
}

/// How clients reach the service: proxy mode when it listens on loopback, both when
/// it listens on other interfaces and trusts a proxy too, direct otherwise.
pub fn served_mode(conf: &Config, bind: Option<&str>, trusted: &[std::net::IpAddr]) -> Mode {
    let s = conf.server();
    match fallback_conf::mode_of(bind.unwrap_or(&s.bind_address.value)) {
        Mode::Direct if !trusted.is_empty() => Mode::Both,
        m => m,
    }
}

/// What users who must encrypt (an `allowed_cipher` or `user_value` naming a cipher)
/// meet in this deployment, said exactly: a warning when some are refused.
pub fn mode_findings(
    conf: &Config,
    bind: Option<&str>,
    trusted: &[std::net::IpAddr],
) -> Vec<Diagnostic> {
    let doc = conf.document();
    let encrypting = std::iter::once(conf.defaults())
        .chain(doc.users.iter().map(|u| conf.user(&u.name, &[])))
        .chain(doc.groups.iter().map(|g| conf.user("", &[g.name.as_str()])))
        .any(|u| u.must_encrypt());
    if !encrypting {
        return Vec::new();
    }
    let s = conf.server();
    let (http, https) = (s.enable_http.value, s.enable_https.value);
    let mode = served_mode(conf, bind, trusted);
    let say = |msg: String| {
        vec![Diagnostic::new(
            Code::ModeNotice,
            None,
            "/CONF/http_server",
            msg,
        )]
    };
    let (hp, sp) = (s.http_port.value, s.https_port.value);
    if !trusted.is_empty() {
        // The proxy's X-Forwarded-Proto is believed: HTTPS to the proxy counts.
        return Vec::new();
    }
    match (mode, http, https) {
        (Mode::Proxy, true, true) => say(format!(
            "{mode} mode: users who must encrypt are served only through the HTTPS \
             listener (the proxy forwarding /aspera/https to https://127.0.0.1:{sp}); \
             through the HTTP listener ({hp}) they are refused with 403, because without \
             --trust-proxy the proxy's X-Forwarded-Proto is not believed"
        )),
        (Mode::Proxy, true, false) => say(format!(
            "{mode} mode with HTTP only: users who must encrypt are refused with 403 \
             unless fallbackd trusts the proxy (--trust-proxy 127.0.0.1), whose \
             X-Forwarded-Proto: https then says the client used HTTPS; or enable_https"
        )),
        (_, true, false) => say(format!(
            "{mode} mode with HTTP only: users who must encrypt are refused with 403 \
             (HTTPS fallback only); set <enable_https>true</enable_https>"
        )),
        // HTTPS only: every user can be served on it.
        _ => Vec::new(),
    }
}
