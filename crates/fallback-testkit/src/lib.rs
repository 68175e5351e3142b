//! Test helpers shared by the end-to-end tests: start the real `fallbackd`, talk to it
//! with curl and raw sockets, make files, compute digests. Dev only: never a dependency
//! of shipped code.

// Helpers panic on purpose: a panic is how a failed expectation is reported.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::missing_panics_doc,
    clippy::print_stderr
)]

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use fallback_token::{Form, Key, Token};
use sha2::{Digest as _, Sha256};

pub const SECRET: &str = "integration-test-secret-0123456789";

pub fn key() -> Key {
    Key::derive(SECRET, Form::Signed).unwrap()
}

pub fn upload_token(user: &str, dest: &str) -> String {
    Token::upload(user, dest).issue(&key()).unwrap()
}

pub fn download_token(user: &str, paths: &[&str]) -> String {
    Token::download(user, paths).issue(&key()).unwrap()
}

/// Whether `text` holds a token: `fbt1_` and a run of token characters (a message
/// that names the prefix, "no fbt1_ prefix", holds none).
pub fn holds_token(text: &str) -> bool {
    text.match_indices("fbt1_").any(|(i, p)| {
        text[i + p.len()..]
            .chars()
            .take(16)
            .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_' || *c == '.')
            .count()
            == 16
    })
}

pub fn sha256_file(path: &Path) -> String {
    let mut f = std::fs::File::open(path).unwrap();
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    hex(&h.finalize())
}

pub fn hex(bytes: &[u8]) -> String {
    hex::encode(bytes)
}

/// Runs `node tus.mjs ARGS` (tus-js-client and Node's http client, from npm:
/// `bins/fallbackd/tests/clients`, installed by `cargo xtask ci` with `npm ci`) and
/// returns the JSON line it prints; panics with its output if it fails.
pub fn tus_js(args: &[&str]) -> serde_json::Value {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../bins/fallbackd/tests/clients");
    assert!(
        dir.join("node_modules/tus-js-client").exists(),
        "tus-js-client is not installed: run `npm ci` in {} (cargo xtask ci does)",
        dir.display()
    );
    let out = Command::new("node")
        .current_dir(&dir)
        .arg("tus.mjs")
        .args(args)
        .output()
        .expect("node must be installed (apt-get install nodejs npm)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.lines().last().unwrap_or_default();
    let v: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| {
        panic!(
            "node tus.mjs {args:?}: {e}\nstdout: {stdout}\nstderr: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    assert!(
        out.status.success(),
        "node tus.mjs {args:?}: {v}\nstderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    v
}

/// The part file of upload `id` (its bytes so far) in `docroot`'s staging area.
pub fn part_file(docroot: &Path, id: &str) -> PathBuf {
    docroot.join(format!(".fallback/uploads/{id}.part"))
}

/// Waits until the bytes of upload `id` start reaching its part file: the request
/// writing them is under way (and holds the upload).
pub fn wait_for_part_bytes(docroot: &Path, id: &str) {
    let part = part_file(docroot, id);
    wait_until("the upload's bytes reach its part file", || {
        std::fs::metadata(&part).is_ok_and(|m| m.len() > 0)
    });
}

/// Waits until `cond` holds: an event the test can observe (a file grew, a port
/// closed), checked every 10 ms; panics naming `what` after 60 s. Never a fixed sleep.
pub fn wait_until(what: &str, cond: impl Fn() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !cond() {
        assert!(std::time::Instant::now() < deadline, "waited 60 s: {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A file of `len` pseudo-random bytes (fast, deterministic per seed).
pub fn make_file(path: &Path, len: u64, seed: u64) {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut x = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
    let mut left = len;
    let mut block = vec![0u8; 1 << 16];
    while left > 0 {
        for chunk in block.chunks_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let b = x.to_le_bytes();
            chunk.copy_from_slice(&b[..chunk.len()]);
        }
        let n = usize::try_from(left.min(block.len() as u64)).unwrap();
        f.write_all(&block[..n]).unwrap();
        left -= n as u64;
    }
    f.flush().unwrap();
}

/// The test configuration: tokens required both ways, docroot `<dir>/data`, user
/// carol must encrypt.
pub fn config_text(docroot: &Path) -> String {
    config_text_with(docroot, "")
}

/// [`config_text`] parsed and checked, for in-process tests of the router and client.
pub fn config(docroot: &Path) -> fallback_conf::Config {
    fallback_conf::Config::parse(&config_text(docroot))
        .unwrap()
        .into_checked()
        .unwrap()
}

/// [`config_text`] with `extra` elements inside `<http_server>` (certificates...).
pub fn config_text_with(docroot: &Path, extra: &str) -> String {
    format!(
        r#"<CONF version="2">
  <http_server>
    <enable_http>true</enable_http>
    <enable_https>true</enable_https>
    <bind_address>127.0.0.1</bind_address>
    <session_activity_timeout>5</session_activity_timeout>
    {extra}
  </http_server>
  <default>
    <authorization>
      <transfer><in><value>token</value></in><out><value>token</value></out></transfer>
      <token><encryption_key>{SECRET}</encryption_key></token>
    </authorization>
    <file_system><access><paths><path><absolute>{}</absolute></path></paths></access></file_system>
  </default>
  <aaa><realms><realm><users>
    <user><name>carol</name>
      <transfer><encryption><allowed_cipher>aes-128</allowed_cipher></encryption></transfer>
    </user>
  </users></realm></realms></aaa>
</CONF>
"#,
        docroot.display()
    )
}

/// A copy of the aspera.conf `fixture`, in `dir`, made true on this host: `/srv/…`
/// paths moved under `dir/srv/…` and created (each `<absolute>` without `$(`), and the
/// certificate and key under `/etc/fallback/tls/` made under `dir/tls/` (self-signed,
/// for localhost). Line and column numbers of what follows a path may shift; the lines
/// do not.
pub fn on_this_host(fixture: &Path, dir: &Path) -> PathBuf {
    let text = std::fs::read_to_string(fixture).expect("fixture");
    let d = dir.display();
    let text = text
        .replace("/srv/", &format!("{d}/srv/"))
        .replace("/etc/fallback/tls/", &format!("{d}/tls/"));
    for chunk in text
        .split("</absolute>")
        .filter(|c| c.contains("<absolute"))
    {
        let value = chunk.rsplit_once('>').map_or("", |(_, v)| v.trim());
        if value.starts_with('/') && !value.contains("$(") {
            std::fs::create_dir_all(value).expect("docroot");
        }
    }
    if text.contains(&format!("{d}/tls/")) {
        let tls = dir.join("tls");
        std::fs::create_dir_all(&tls).expect("tls dir");
        let key = rcgen::KeyPair::generate().expect("key");
        let cert = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
            .expect("params")
            .self_signed(&key)
            .expect("cert");
        std::fs::write(tls.join("cert.pem"), cert.pem()).expect("cert.pem");
        std::fs::write(tls.join("key.pem"), key.serialize_pem()).expect("key.pem");
    }
    let out = dir.join(fixture.file_name().expect("a file"));
    std::fs::write(&out, text).expect("copy");
    out
}

/// The `fallbackd` binary: `$FALLBACKD_BIN`, else next to the test executable's
/// target directory (cargo builds every binary of the workspace before its tests).
pub fn fallbackd_bin() -> PathBuf {
    sibling_bin("FALLBACKD_BIN", "fallbackd")
}

/// The `fallback` CLI binary, found like [`fallbackd_bin`].
pub fn fallback_bin() -> PathBuf {
    sibling_bin("FALLBACK_BIN", "fallback")
}

fn sibling_bin(var: &str, name: &str) -> PathBuf {
    if let Some(p) = std::env::var_os(var) {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().unwrap();
    // target/<profile>/deps/<test> -> target/<profile>/<name>
    let dir = exe.parent().and_then(Path::parent).unwrap();
    let bin = dir.join(name);
    assert!(
        bin.exists(),
        "{} is not built: run `cargo build --workspace` (or set {var})",
        bin.display()
    );
    bin
}

/// A running fallbackd, killed on drop.
#[derive(Debug)]
pub struct Server {
    child: Child,
    /// Every JSON log line so far (read from the pipe).
    log: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    /// Where the log goes instead, for [`Server::start_logging_to_file`].
    log_file: Option<PathBuf>,
    pub http: SocketAddr,
    pub https: SocketAddr,
    pub dir: PathBuf,
}

impl Server {
    /// Starts fallbackd with the test configuration in `dir` (docroot `dir/data`), on
    /// ephemeral ports.
    pub fn start(dir: &Path) -> Server {
        Self::start_on(dir, 0, 0)
    }

    /// Like [`Server::start`], on given ports (to restart a server where clients expect
    /// it).
    pub fn start_on(dir: &Path, http_port: u16, https_port: u16) -> Server {
        Self::start_custom(dir, http_port, https_port, "", &[])
    }

    /// Like [`Server::start_on`], with `extra` elements in `<http_server>`.
    /// `extra` goes inside `<http_server>`, `args` onto fallbackd's command line.
    pub fn start_custom(
        dir: &Path,
        http_port: u16,
        https_port: u16,
        extra: &str,
        args: &[&str],
    ) -> Server {
        let text = config_text_with(&dir.join("data"), extra);
        Self::spawn(dir, http_port, https_port, text, args, false)
    }

    /// A server whose default docroot is `docroot` as aspera.conf writes it (an
    /// `s3://` URI, say), on `http_port` (0: any), with `args` on its command line.
    pub fn start_docroot(dir: &Path, docroot: &str, http_port: u16, args: &[&str]) -> Server {
        let text = config_text_with(Path::new(docroot), "");
        Self::spawn(dir, http_port, 0, text, args, false)
    }

    /// A server on the aspera.conf fixture `fixtures/conf/<name>`, with `@DATA@` in it
    /// replaced by `dir/data` (created) and `@SECRET@` by [`SECRET`]. The fixture must
    /// enable both listeners (ports are chosen here).
    pub fn start_fixture(dir: &Path, name: &str) -> Server {
        Self::start_fixture_with(dir, name, &[])
    }

    /// [`Server::start_fixture`] with `args` on fallbackd's command line.
    pub fn start_fixture_with(dir: &Path, name: &str, args: &[&str]) -> Server {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../fixtures/conf")
            .join(name);
        Self::start_fixture_file_with(dir, &path, args)
    }

    /// [`Server::start_fixture`] for an aspera.conf at `path` (a fixture a test
    /// changed), with the same `@DATA@` and `@SECRET@` replacements.
    pub fn start_fixture_file(dir: &Path, path: &Path) -> Server {
        Self::start_fixture_file_with(dir, path, &[])
    }

    fn start_fixture_file_with(dir: &Path, path: &Path, args: &[&str]) -> Server {
        let text = std::fs::read_to_string(path)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
            .replace("@DATA@", &dir.join("data").display().to_string())
            .replace("@SECRET@", SECRET);
        Self::spawn(dir, 0, 0, text, args, false)
    }

    /// Like [`Server::start`], with the log written to `dir/fallbackd.log` the way a web
    /// server writes its access log, instead of a pipe this process reads: benchmarks
    /// then do not take CPU from the server to read its log.
    pub fn start_logging_to_file(dir: &Path) -> Server {
        let text = config_text(&dir.join("data"));
        Self::spawn(dir, 0, 0, text, &[], true)
    }

    fn spawn(
        dir: &Path,
        http_port: u16,
        https_port: u16,
        conf_text: String,
        args: &[&str],
        to_file: bool,
    ) -> Server {
        let docroot = dir.join("data");
        std::fs::create_dir_all(&docroot).unwrap();
        let conf = dir.join("aspera.conf");
        std::fs::write(&conf, conf_text).unwrap();
        let log_file = to_file.then(|| dir.join("fallbackd.log"));
        let stderr = match &log_file {
            Some(f) => Stdio::from(std::fs::File::create(f).unwrap()),
            None => Stdio::piped(),
        };
        let mut child = Command::new(fallbackd_bin())
            .arg("--config")
            .arg(&conf)
            .args(["--http-port", &http_port.to_string()])
            .args(["--https-port", &https_port.to_string()])
            .args(["--log-format", "json"])
            .args(args)
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .unwrap();
        let (tx, rx) = mpsc::channel();
        let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let listening = move |line: &str, tx: &mpsc::Sender<_>| {
            if line.contains("\"listening\"")
                && let Ok(v) = serde_json::from_str::<serde_json::Value>(line)
                && v["message"] == "listening"
            {
                let _ = tx.send((
                    v["scheme"].as_str().unwrap_or_default().to_owned(),
                    v["addr"].as_str().unwrap_or_default().parse::<SocketAddr>(),
                ));
            }
        };
        if let Some(stderr) = child.stderr.take() {
            let log2 = log.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    if std::env::var_os("FALLBACK_TEST_LOG").is_some() {
                        eprintln!("fallbackd: {line}");
                    }
                    // Tokens never appear in logs.
                    assert!(!holds_token(&line), "a token reached the log: {line}");
                    // Lines are kept raw and parsed when asked for: parsing each one
                    // here would take CPU from the server under load (benchmarks).
                    listening(&line, &tx);
                    log2.lock().unwrap().push(line);
                }
            });
        } else if let Some(f) = log_file.clone() {
            // Read the file until both listeners are announced, then stop.
            std::thread::spawn(move || {
                for _ in 0..400 {
                    let text = std::fs::read_to_string(&f).unwrap_or_default();
                    let mut found = 0;
                    for line in text.lines() {
                        if line.contains("\"listening\"") {
                            found += 1;
                        }
                    }
                    if found >= 2 {
                        text.lines().for_each(|l| listening(l, &tx));
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
            });
        }
        let (mut http, mut https) = (None, None);
        while http.is_none() || https.is_none() {
            let (scheme, addr) = rx
                .recv_timeout(Duration::from_secs(20))
                .expect("fallbackd did not start listening within 20 s");
            match scheme.as_str() {
                "http" => http = Some(addr.unwrap()),
                _ => https = Some(addr.unwrap()),
            }
        }
        Server {
            child,
            log,
            log_file,
            http: http.unwrap(),
            https: https.unwrap(),
            dir: dir.to_owned(),
        }
    }

    /// Every JSON log line so far, parsed.
    pub fn log_values(&self) -> Vec<serde_json::Value> {
        let lines = match &self.log_file {
            Some(f) => std::fs::read_to_string(f)
                .unwrap_or_default()
                .lines()
                .map(str::to_owned)
                .collect(),
            None => self.log.lock().unwrap().clone(),
        };
        lines
            .iter()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// Waits up to `limit` for a log line matching `pred` (lines reach the log a little
    /// after the response that follows them).
    pub fn wait_for_log(&self, limit: Duration, pred: impl Fn(&serde_json::Value) -> bool) -> bool {
        let deadline = std::time::Instant::now() + limit;
        loop {
            if self.log_values().iter().any(&pred) {
                return true;
            }
            if std::time::Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Whether a log line with `message` has been seen.
    pub fn logged(&self, message: &str) -> bool {
        self.log_values().iter().any(|v| v["message"] == message)
    }

    pub fn docroot(&self) -> PathBuf {
        self.dir.join("data")
    }

    pub fn base(&self, https: bool) -> String {
        if https {
            format!("https://{}/aspera/https", self.https)
        } else {
            format!("http://{}/aspera/http", self.http)
        }
    }

    /// The daemon's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends a signal (`HUP`, `TERM`...) to the daemon.
    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        assert!(ok.success(), "kill -{sig} failed");
    }

    /// Waits up to `limit` for the daemon to exit; its status, or `None` if it still runs.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let deadline = std::time::Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            if std::time::Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGKILL: no cleanup, no flush.
    pub fn kill9(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What curl got.
#[derive(Debug)]
pub struct Got {
    pub status: u16,
    pub headers: String,
    pub body: Vec<u8>,
}

impl Got {
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_owned())
        })
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Runs curl (insecure TLS: the server's certificate is self-signed) with `args`;
/// the body goes to `out` when given.
pub fn curl(args: &[&str], out: Option<&Path>) -> Got {
    let tmp = tempfile::tempdir().unwrap();
    let headers = tmp.path().join("headers");
    let body = out.map_or_else(|| tmp.path().join("body"), Path::to_path_buf);
    let output = Command::new("curl")
        .args(["-sS", "-k", "--max-time", "120", "-D"])
        .arg(&headers)
        .arg("-o")
        .arg(&body)
        .args(["-w", "%{http_code}"])
        .args(args)
        .output()
        .expect("curl must be installed (apt-get install curl)");
    let status = String::from_utf8_lossy(&output.stdout)
        .trim()
        .parse()
        .unwrap_or(0);
    Got {
        status,
        headers: std::fs::read_to_string(&headers).unwrap_or_default(),
        body: if out.is_some() {
            Vec::new()
        } else {
            std::fs::read(&body).unwrap_or_default()
        },
    }
}

pub fn bearer(token: &str) -> String {
    format!("Authorization: Bearer {token}")
}

/// Sends a raw HTTP/1.1 request: `head` (without the final blank line) and the first
/// `send` bytes of `body`; then closes (`close`) or leaves the socket open and returns
/// it. Reads the response when everything was sent.
pub fn raw(addr: SocketAddr, head: &str, body: &[u8], send: usize) -> (Option<String>, TcpStream) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s.write_all(format!("{head}\r\n\r\n").as_bytes()).unwrap();
    let n = send.min(body.len());
    for chunk in body[..n].chunks(64 * 1024) {
        s.write_all(chunk).unwrap();
    }
    s.flush().unwrap();
    if n < body.len() {
        return (None, s);
    }
    let mut resp = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(k) => {
                resp.extend_from_slice(&buf[..k]);
                if resp.windows(4).any(|w| w == b"\r\n\r\n") {
                    break;
                }
            }
        }
    }
    (Some(String::from_utf8_lossy(&resp).into_owned()), s)
}

/// The head of a raw tus PATCH of `len` bytes from offset 0 to `upload_path`, for
/// [`raw`] (which adds the blank line).
pub fn patch_head(server: &Server, upload_path: &str, len: u64, token: &str) -> String {
    format!(
        "PATCH {upload_path} HTTP/1.1\r\nHost: {}\r\nTus-Resumable: 1.0.0\r\n\
         Content-Type: application/offset+octet-stream\r\nUpload-Offset: 0\r\n\
         Content-Length: {len}\r\n{}",
        server.http,
        bearer(token)
    )
}

/// tus creation (`POST /uploads`, metadata `filename`), answered as is.
pub fn tus_post(server: &Server, token: &str, name: &str, len: u64) -> Got {
    use base64::Engine as _;
    let meta = format!(
        "filename {}",
        base64::engine::general_purpose::STANDARD.encode(name)
    );
    curl(
        &[
            "-X",
            "POST",
            "-H",
            "Tus-Resumable: 1.0.0",
            "-H",
            &format!("Upload-Length: {len}"),
            "-H",
            &format!("Upload-Metadata: {meta}"),
            "-H",
            &bearer(token),
            &format!("{}/uploads", server.base(false)),
        ],
        None,
    )
}

/// A tus upload created with [`tus_post`]; its absolute URL.
pub fn tus_create(server: &Server, token: &str, name: &str, len: u64) -> String {
    let got = tus_post(server, token, name, len);
    assert_eq!(got.status, 201, "{got:?}");
    let loc = got.header("location").unwrap();
    assert!(loc.starts_with("/aspera/http/uploads/"), "{loc}");
    format!("http://{}{loc}", server.http)
}

pub fn tus_offset(url: &str, token: &str) -> u64 {
    let got = curl(
        &[
            "-I",
            "-H",
            "Tus-Resumable: 1.0.0",
            "-H",
            &bearer(token),
            url,
        ],
        None,
    );
    assert_eq!(got.status, 200, "{got:?}");
    got.header("upload-offset").unwrap().parse().unwrap()
}

/// Sends the rest of `file`, from `offset`, in one tus PATCH with curl.
pub fn tus_patch_rest(url: &str, token: &str, file: &Path, offset: u64) -> Got {
    let rest = file.with_extension("rest");
    let data = std::fs::read(file).unwrap();
    std::fs::write(&rest, &data[usize::try_from(offset).unwrap()..]).unwrap();
    let got = curl(
        &[
            "-X",
            "PATCH",
            "-H",
            "Tus-Resumable: 1.0.0",
            "-H",
            "Content-Type: application/offset+octet-stream",
            "-H",
            &format!("Upload-Offset: {offset}"),
            "-H",
            &bearer(token),
            "--data-binary",
            &format!("@{}", rest.display()),
            url,
        ],
        None,
    );
    std::fs::remove_file(&rest).unwrap();
    got
}

/// moto's S3 server (`pip install "moto[server]"`), a real S3 implementation no one
/// here wrote, on a loopback port of its own; killed on drop. Its state is in memory.
#[derive(Debug)]
pub struct Moto {
    child: std::sync::Mutex<std::process::Child>,
    port: u16,
    _logs: tempfile::TempDir,
}

impl Moto {
    /// Starts `moto_server` and waits until it accepts connections.
    pub fn start() -> Moto {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free loopback port");
        let logs = tempfile::tempdir().unwrap();
        let log = std::fs::File::create(logs.path().join("moto.log")).unwrap();
        let args = ["-H", "127.0.0.1", "-p", &port.to_string()];
        // The script pip installs, or the module when the script is not on PATH.
        let child = std::process::Command::new("moto_server")
            .args(args)
            .stdout(log.try_clone().unwrap())
            .stderr(log.try_clone().unwrap())
            .spawn()
            .or_else(|_| {
                std::process::Command::new("python3")
                    .args(["-m", "moto.server"])
                    .args(args)
                    .stdout(log.try_clone().unwrap())
                    .stderr(log)
                    .spawn()
            })
            .unwrap_or_else(|e| {
                panic!(
                    "this test needs moto's S3 server: python3 -m pip install \"moto[server]\" \
                     (.ci/run installs it): {e}"
                )
            });
        let moto = Moto {
            child: std::sync::Mutex::new(child),
            port,
            _logs: logs,
        };
        wait_until("moto_server accepts connections", || {
            let exited = moto
                .child
                .lock()
                .is_ok_and(|mut c| c.try_wait().ok().flatten().is_some());
            assert!(!exited, "moto_server exited before it listened");
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        moto
    }

    /// The endpoint, `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Creates `bucket` (moto does not check signatures by default).
    pub fn create_bucket(&self, bucket: &str) {
        use std::io::{Read as _, Write as _};
        let mut s = std::net::TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        write!(
            s,
            "PUT /{bucket} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Length: 0\r\n\
             Connection: close\r\n\r\n",
            self.port
        )
        .unwrap();
        let mut answer = String::new();
        s.read_to_string(&mut answer).unwrap();
        assert!(
            answer.starts_with("HTTP/1.1 200"),
            "creating {bucket}: {answer}"
        );
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        if let Ok(c) = self.child.get_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
