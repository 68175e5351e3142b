//! Real reverse proxies for the end-to-end suite: Apache or nginx, configured with
//! what `fallbackd --print-proxy-config` prints, unchanged, inside the test servers of
//! `fixtures/apache` and `fixtures/nginx`, on ephemeral loopback ports, stopped on
//! drop. Dev only.

// Helpers panic on purpose: a panic is how a failed expectation is reported.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::missing_panics_doc)]

use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Which proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Debian's apache2, as in the article.
    Apache,
    /// Debian's nginx.
    Nginx,
}

impl Kind {
    fn binary(self) -> &'static str {
        match self {
            Kind::Apache => "/usr/sbin/apache2",
            Kind::Nginx => "/usr/sbin/nginx",
        }
    }
}

/// The repository's `fixtures` directory.
pub fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures")
}

/// A free loopback port (bound and released: a short race, fine for tests).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn world_readable(p: &Path) {
    let mode = if p.is_dir() { 0o755 } else { 0o644 };
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// A test CA and a certificate for 127.0.0.1 and localhost signed by it.
#[derive(Debug)]
pub struct Certs {
    /// CA certificate (PEM): what clients pass as `--cacert`.
    pub ca: PathBuf,
    /// Server certificate (PEM).
    pub cert: PathBuf,
    /// Server key (PEM).
    pub key: PathBuf,
}

impl Certs {
    /// Writes a fresh CA and server certificate into `dir`.
    pub fn make(dir: &Path) -> Certs {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        // Distinct names: OpenSSL (curl, node) takes a leaf whose subject is its issuer's
        // for a self-signed certificate and refuses it (rcgen names both alike).
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "fallback e2e test CA");
        let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let mut leaf =
            rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
                .unwrap();
        leaf.distinguished_name
            .push(rcgen::DnType::CommonName, "127.0.0.1");
        let cert = leaf.signed_by(&key, &ca).unwrap();
        let c = Certs {
            ca: dir.join("ca.pem"),
            cert: dir.join("server.pem"),
            key: dir.join("server.key"),
        };
        std::fs::write(&c.ca, ca.pem()).unwrap();
        std::fs::write(&c.cert, cert.pem()).unwrap();
        std::fs::write(&c.key, key.serialize_pem()).unwrap();
        for p in [&c.ca, &c.cert, &c.key] {
            world_readable(p);
        }
        c
    }
}

/// `fallbackd --print-proxy-config KIND` for the instances on `backends` (loopback
/// ports), as an operator runs it; panics with its error when it fails.
pub fn printed_proxy_config(kind: &str, backends: &[u16]) -> String {
    let mut c = Command::new(fallback_testkit::fallbackd_bin());
    c.args(["--print-proxy-config", kind]);
    for p in backends {
        c.args(["--proxy-member", &format!("127.0.0.1:{p}")]);
    }
    let out = c
        .output()
        .expect("fallbackd must be built (cargo build --workspace --bins)");
    assert!(
        out.status.success(),
        "fallbackd --print-proxy-config {kind}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// A running proxy in front of some fallbackd instances.
#[derive(Debug)]
pub struct Proxy {
    kind: Kind,
    child: Child,
    run: tempfile::TempDir,
    /// Plain HTTP port (`/aspera/http`).
    pub http_port: u16,
    /// HTTPS port (`/aspera/https`).
    pub https_port: u16,
    /// nginx only: an HTTPS port offering HTTP/2 first (ALPN), serving `/static/`.
    pub h2_port: u16,
    /// Worker processes, when set (`None`: the template's default).
    pub workers: Option<usize>,
    /// TLS material; `certs.ca` is the client's `--cacert`.
    pub certs: Certs,
    /// Directory served as `/static/` (the throughput peer).
    pub static_dir: PathBuf,
}

fn fill(template: &str, pairs: &[(&str, String)]) -> String {
    pairs
        .iter()
        .fold(template.to_owned(), |t, (k, v)| t.replace(k, v))
}

impl Proxy {
    /// Whether the proxy is installed (`cargo xtask e2e` installs it with apt).
    pub fn available(kind: Kind) -> bool {
        Path::new(kind.binary()).exists()
    }

    /// Starts `kind` in front of fallbackd instances on `backends` (HTTP ports), with
    /// 2 worker processes for nginx and Apache's default processes.
    pub fn start(kind: Kind, backends: &[u16]) -> Proxy {
        Self::start_with(kind, backends, None)
    }

    /// Like [`Proxy::start`], with `workers` worker processes (Apache: event MPM
    /// processes of 64 threads each, so 64 connections fit in one).
    pub fn start_with(kind: Kind, backends: &[u16], workers: Option<usize>) -> Proxy {
        assert!(
            Self::available(kind),
            "{} is not installed: run `cargo xtask e2e`, which installs apache2 and nginx",
            kind.binary()
        );
        let run = tempfile::tempdir().unwrap();
        let dir = run.path().to_owned();
        world_readable(&dir);
        let static_dir = dir.join("static");
        std::fs::create_dir_all(static_dir.join("dav")).unwrap();
        world_readable(&static_dir);
        // Workers run as www-data when started by root: let them write the DAV folder.
        std::fs::set_permissions(
            static_dir.join("dav"),
            std::fs::Permissions::from_mode(0o777),
        )
        .unwrap();
        let certs = Certs::make(&dir);
        let (http_port, https_port, h2_port) = (free_port(), free_port(), free_port());
        let root = is_root();
        let common = vec![
            ("@RUN_DIR@", dir.display().to_string()),
            ("@HTTP_PORT@", http_port.to_string()),
            ("@HTTPS_PORT@", https_port.to_string()),
            ("@H2_PORT@", h2_port.to_string()),
            ("@WORKERS@", workers.unwrap_or(2).to_string()),
            (
                "@MPM@",
                workers.map_or_else(String::new, |n| {
                    format!(
                        "StartServers {n}\nServerLimit {n}\nThreadsPerChild 64\n\
                         ThreadLimit 64\nMaxRequestWorkers {}\nMinSpareThreads 1\n\
                         MaxSpareThreads {}",
                        n * 64,
                        n * 64
                    )
                }),
            ),
            ("@CERT@", certs.cert.display().to_string()),
            ("@KEY@", certs.key.display().to_string()),
            ("@STATIC_DIR@", static_dir.display().to_string()),
            ("@FIXTURES@", fixtures().display().to_string()),
        ];
        let read = |p: &str| std::fs::read_to_string(fixtures().join(p)).unwrap();
        let mut cmd = match kind {
            Kind::Apache => {
                // Exactly what an operator gets from fallbackd.
                let snippet = printed_proxy_config("apache", backends);
                let snippet_path = dir.join("fallback.conf");
                std::fs::write(&snippet_path, snippet).unwrap();
                let mut pairs = common.clone();
                pairs.push(("@FALLBACK_CONF@", snippet_path.display().to_string()));
                pairs.push((
                    "@USER@",
                    if root {
                        "User #33\nGroup #33".into()
                    } else {
                        String::new()
                    },
                ));
                let conf = dir.join("httpd.conf");
                std::fs::write(&conf, fill(&read("apache/test-httpd.conf.in"), &pairs)).unwrap();
                let mut c = Command::new(kind.binary());
                c.arg("-f").arg(&conf).arg("-DFOREGROUND");
                c
            }
            Kind::Nginx => {
                // Exactly what an operator gets from fallbackd.
                std::fs::write(
                    dir.join("fallback.conf"),
                    printed_proxy_config("nginx", backends),
                )
                .unwrap();
                std::fs::write(
                    dir.join("fallback-location.conf"),
                    printed_proxy_config("nginx-location", backends),
                )
                .unwrap();
                let mut pairs = common.clone();
                pairs.push((
                    "@USER@",
                    if root {
                        "user www-data;".into()
                    } else {
                        String::new()
                    },
                ));
                let conf = dir.join("nginx.conf");
                std::fs::write(&conf, fill(&read("nginx/test-nginx.conf.in"), &pairs)).unwrap();
                let mut c = Command::new(kind.binary());
                c.arg("-c").arg(&conf).arg("-p").arg(&dir);
                c
            }
        };
        let mut child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if std::net::TcpStream::connect(("127.0.0.1", https_port)).is_ok()
                && std::net::TcpStream::connect(("127.0.0.1", http_port)).is_ok()
            {
                break;
            }
            if let Some(status) = child.try_wait().unwrap() {
                let log = std::fs::read_to_string(dir.join("error.log")).unwrap_or_default();
                let mut err = String::new();
                if let Some(mut e) = child.stderr.take() {
                    use std::io::Read as _;
                    let _ = e.read_to_string(&mut err);
                }
                panic!("{kind:?} exited ({status}) at start:\n{err}\n{log}");
            }
            assert!(
                Instant::now() < deadline,
                "{kind:?} did not start listening"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Proxy {
            kind,
            child,
            run,
            http_port,
            https_port,
            h2_port,
            workers,
            certs,
            static_dir,
        }
    }

    /// The base URL of `/aspera/http` or `/aspera/https`.
    pub fn base(&self, https: bool) -> String {
        if https {
            format!("https://127.0.0.1:{}/aspera/https", self.https_port)
        } else {
            format!("http://127.0.0.1:{}/aspera/http", self.http_port)
        }
    }

    /// The proxy's access log so far.
    pub fn access_log(&self) -> String {
        std::fs::read_to_string(self.run.path().join("access.log")).unwrap_or_default()
    }

    /// The proxy's error log so far.
    pub fn error_log(&self) -> String {
        std::fs::read_to_string(self.run.path().join("error.log")).unwrap_or_default()
    }

    /// The master process: its workers are its children.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Which proxy this is.
    pub fn kind(&self) -> Kind {
        self.kind
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        // SIGTERM lets the master stop its workers; SIGKILL if it lingers.
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
