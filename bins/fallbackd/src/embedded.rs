//! The embedded default: safe to run with no configuration at all.
//!
//! Docroot `./fallback-data` (created), HTTP on 127.0.0.1:8080 only, tokens required in
//! both directions, a random token key kept in `<data>/.fallback/token.key` (the
//! reserved folder no request can reach), and a banner with tokens, a FASP URL and curl
//! commands that work as printed.

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use fallback_conf::Config;
use fallback_server::Service;
use fallback_token::{Key, Token};
use fallback_url::{Enc, FaspUrl};

/// The transfer user of the embedded default.
pub(crate) const USER: &str = "fallback";

pub(crate) struct Embedded {
    docroot: PathBuf,
    secret: String,
}

fn escape_xml(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

impl Embedded {
    /// Creates the data folder and the key if missing.
    pub(crate) fn prepare(data: &Path) -> anyhow::Result<Self> {
        std::fs::create_dir_all(data)
            .with_context(|| format!("cannot create the data folder {}", data.display()))?;
        let docroot = data
            .canonicalize()
            .with_context(|| format!("cannot resolve {}", data.display()))?;
        let dir = docroot.join(".fallback");
        std::fs::create_dir_all(&dir)?;
        let key_file = dir.join("token.key");
        let secret = match std::fs::read_to_string(&key_file) {
            Ok(s) if s.trim().len() >= 32 => s.trim().to_owned(),
            _ => {
                let mut b = [0u8; 32];
                getrandom::fill(&mut b).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
                let secret = hex::encode(b);
                let mut f = std::fs::OpenOptions::new()
                    .write(true)
                    .create(true)
                    .truncate(true)
                    .mode(0o600)
                    .open(&key_file)
                    .with_context(|| format!("cannot write {}", key_file.display()))?;
                f.write_all(secret.as_bytes())?;
                f.sync_all()?;
                tracing::info!(file = %key_file.display(), "generated a new token key");
                secret
            }
        };
        Ok(Embedded { docroot, secret })
    }

    /// The configuration it stands for, as an aspera.conf would write it.
    pub(crate) fn config(&self) -> anyhow::Result<Config> {
        let text = format!(
            r#"<CONF version="2">
  <http_server>
    <enable_http>true</enable_http>
    <http_port>8080</http_port>
    <enable_https>false</enable_https>
    <bind_address>127.0.0.1</bind_address>
  </http_server>
  <WEB HttpFallback="yes" HttpFallbackPort="8080" HttpsFallbackPort="8443" />
  <default>
    <authorization>
      <transfer><in><value>token</value></in><out><value>token</value></out></transfer>
      <token><encryption_key>{}</encryption_key></token>
    </authorization>
    <file_system><access><paths><path><absolute>{}</absolute></path></paths></access></file_system>
  </default>
</CONF>"#,
            escape_xml(&self.secret),
            escape_xml(&self.docroot.to_string_lossy())
        );
        Ok(Config::parse(&text)?.into_checked()?)
    }

    pub(crate) fn print_banner(&self, service: &Service) -> anyhow::Result<()> {
        let Some(addr) = service.http_addr() else {
            return Ok(());
        };
        let key = Key::from_settings(&service.state().config().defaults())?;
        let day = Duration::from_hours(24);
        let up = Token::upload(USER, "/").valid_for(day).issue(&key)?;
        let down = Token::download(USER, &["/"]).valid_for(day).issue(&key)?;
        let host = addr.ip().to_string();
        let url = FaspUrl::builder(&host)
            .user(USER)
            .path("/")
            .auth(false)
            .token(&down)
            .http_port(addr.port())
            .fallback(true)
            .enc(Enc::None)
            .build();
        let base = format!("http://{addr}/aspera/http");
        println!(
            "\nfallbackd is serving {docroot} (embedded default, no config file: HTTP on {addr} only)\n\
             \n\
             upload token (24 h):   {up}\n\
             download token (24 h): {down}\n\
             FASP URL:              {url}\n\
             \n\
             Try it, from another terminal in this folder:\n\
             \x20 curl -T README.md -H 'Authorization: Bearer {up}' {base}/files/README.md\n\
             \x20 curl -H 'Authorization: Bearer {down}' {base}/files/README.md\n\
             \x20 curl -H 'Authorization: Bearer {down}' -H 'Accept: application/json' {base}/files/\n\
             \n\
             Stop with Ctrl-C. For real deployments: fallbackd --config /opt/aspera/etc/aspera.conf\n",
            docroot = self.docroot.display(),
        );
        let _ = std::io::stdout().flush();
        Ok(())
    }
}
