//! `fallback url build|parse`.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::{Args, Subcommand, ValueEnum};
use fallback_token::{Key, Token};
use fallback_url::{Enc, FaspUrl, Scheme};

use crate::exit;

#[derive(Debug, Subcommand)]
pub(crate) enum UrlCommand {
    /// Build a FASP URL, as a Connect Server dir-listing or a custom web app would.
    ///
    /// With --config, enc and httpport follow the dir-listing rule (--no-web: not): a user
    /// whose transfers must be encrypted gets enc=<cipher> and <WEB HttpsFallbackPort>,
    /// others enc=none and <WEB HttpFallbackPort>; fallback=yes when <WEB
    /// HttpFallback="yes">; the SSH port is <WEB SshPort>. Explicit --enc, --httpport
    /// and --fallback override the rule. --issue-token adds a token for --path made
    /// with the user's key.
    ///
    /// Example:
    ///   fallback url build --host files.example.com --user alice --path /projects \
    ///       --config aspera.conf --issue-token download --ttl 1h
    Build(BuildArgs),
    /// Explain a FASP URL parameter by parameter, and say what HTTP fallback lacks.
    ///
    /// Warns when the token is missing, fallback is not yes or httpport is missing (the
    /// article's troubleshooting step 2), and says where a client falls back to.
    /// Exit status: 0 parsed (1 with --check when there is a warning), 1 not a valid
    /// FASP URL.
    Parse(ParseArgs),
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum TokenDirection {
    Upload,
    Download,
}

#[derive(Debug, Args)]
pub(crate) struct BuildArgs {
    /// Host name or address of the transfer server.
    #[arg(long)]
    host: String,
    /// Transfer user (DOMAIN\user works).
    #[arg(long, short = 'u')]
    user: Option<String>,
    /// File or directory, relative to the user's docroot.
    #[arg(long, short = 'p', default_value = "")]
    path: String,
    /// Transfer token to put in the URL.
    #[arg(long, conflicts_with = "issue_token")]
    token: Option<String>,
    /// SSH port (default 33001, or <WEB SshPort> with --config).
    #[arg(long)]
    ssh_port: Option<u16>,
    /// aspera.conf with the user's settings: the dir-listing rule with its <WEB>
    /// element, and the key for --issue-token. The user's groups and home come from
    /// the system (as fallbackd finds them) unless --group is given.
    #[arg(long, short = 'c', value_name = "FILE")]
    config: Option<PathBuf>,
    /// A group of the user; repeatable.
    #[arg(long, short = 'g', value_name = "GROUP")]
    group: Vec<String>,
    /// Require the dir-listing rule: an error when --config has no <WEB> element
    /// (the rule applies with --config by default; this makes its absence fatal).
    #[arg(long, requires = "config", conflicts_with = "no_web")]
    web: bool,
    /// Do not apply the dir-listing rule even with --config (only --enc, --httpport and
    /// --fallback set those parameters).
    #[arg(long)]
    no_web: bool,
    /// Issue a token for --path with the user's key from --config.
    #[arg(long, value_enum, requires_all = ["config", "user"])]
    issue_token: Option<TokenDirection>,
    /// Lifetime of an issued token, like 1h (default: the user's life_seconds).
    #[arg(long, value_parser = crate::token::parse_duration, requires = "issue_token")]
    ttl: Option<Duration>,
    /// enc=: none, aes128, aes192, aes256, aes128gcm, ...
    #[arg(long, value_parser = parse_enc)]
    enc: Option<Enc>,
    /// httpport=.
    #[arg(long)]
    httpport: Option<u16>,
    /// fallback=yes|no.
    #[arg(long, value_parser = parse_yes_no)]
    fallback: Option<bool>,
    /// auth=no (do not prompt for credentials; usual with tokens).
    #[arg(long)]
    no_auth: bool,
    /// Any other parameter, NAME=VALUE; repeatable.
    #[arg(long = "param", value_name = "NAME=VALUE")]
    params: Vec<String>,
    /// faspe:// (Faspex package link) instead of fasp://.
    #[arg(long)]
    faspe: bool,
    /// Print the URL, its parts and the fallback base as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct ParseArgs {
    /// The URL (quote it: it contains & and ?).
    url: String,
    /// Print as JSON.
    #[arg(long)]
    json: bool,
    /// Exit with status 1 when HTTP fallback would not work (a warning).
    #[arg(long)]
    check: bool,
    /// Print the token in full instead of its first characters.
    #[arg(long)]
    show_token: bool,
}

fn parse_enc(s: &str) -> Result<Enc, String> {
    s.parse()
        .map_err(|()| format!("{s:?}: expected none, aes128, aes192, aes256, aes128gcm, ..."))
}

fn parse_yes_no(s: &str) -> Result<bool, String> {
    match s {
        "yes" | "true" => Ok(true),
        "no" | "false" => Ok(false),
        _ => Err(format!("{s:?}: expected yes or no")),
    }
}

pub(crate) fn run(cmd: &UrlCommand) -> anyhow::Result<u8> {
    let mut out = String::new();
    let code = match cmd {
        UrlCommand::Build(a) => build(a, &mut out),
        UrlCommand::Parse(a) => parse(a, &mut out),
    }?;
    crate::write_stdout(&out)?;
    Ok(code)
}

fn build(a: &BuildArgs, out: &mut String) -> anyhow::Result<u8> {
    let mut b = FaspUrl::builder(&a.host).path(&a.path);
    if a.faspe {
        b = b.scheme(Scheme::Faspe);
    }
    if let Some(u) = &a.user {
        b = b.user(u);
    }
    let conf = a
        .config
        .as_deref()
        .map(crate::token::load_config)
        .transpose()?;
    // As fallbackd will see the user: groups and home from the system, unless --group.
    let settings = conf.as_ref().map(|c| {
        let mut account = fallback_conf::Account::lookup(a.user.as_deref().unwrap_or_default());
        if !a.group.is_empty() {
            account.groups.clone_from(&a.group);
        }
        c.account(&account)
    });
    if let (Some(c), Some(s), Some(file)) = (&conf, &settings, &a.config)
        && !a.no_web
    {
        match c.web() {
            Some(web) => b = b.fallback_for(s, &web),
            None if a.web => bail!(
                "{} has no <WEB> element; give --enc, --httpport and --fallback yourself",
                file.display()
            ),
            None => eprintln!(
                "fallback: {} has no <WEB> element: the dir-listing rule does not apply \
                 (give --enc, --httpport and --fallback)",
                file.display()
            ),
        }
    }
    if let Some(p) = a.ssh_port {
        b = b.ssh_port(p);
    }
    if let Some(e) = a.enc {
        b = b.enc(e);
    }
    if let Some(p) = a.httpport {
        b = b.http_port(p);
    }
    if let Some(f) = a.fallback {
        b = b.fallback(f);
    }
    if a.no_auth {
        b = b.auth(false);
    }
    for p in &a.params {
        let Some((k, v)) = p.split_once('=') else {
            bail!("--param {p:?}: write NAME=VALUE");
        };
        b = b.param(k, v)?;
    }
    if let Some(t) = &a.token {
        b = b.token(t);
    }
    if let (Some(dir), Some(s)) = (a.issue_token, &settings) {
        let key = Key::from_settings(s)?;
        let user = a.user.as_deref().unwrap_or_default();
        let path = if a.path.is_empty() { "/" } else { &a.path };
        let builder = match dir {
            TokenDirection::Upload => Token::upload(user, path),
            TokenDirection::Download => Token::download(user, &[path]),
        };
        let ttl = a
            .ttl
            .unwrap_or(Duration::from_secs(s.token_life_seconds.value));
        b = b.token(&builder.valid_for(ttl).issue(&key)?);
    }
    let url = b.build();
    let text = url.to_string();
    // What we write, we must read back identically.
    let back = FaspUrl::parse(&text).context("the built URL does not parse back")?;
    if back != url {
        bail!("the built URL does not parse back to the same parts: {text}");
    }
    if a.json {
        let json = serde_json::json!({
            "url": text,
            "parts": url,
            "http_base": url.http_base().ok().map(|u| u.to_string()),
            "fallback_problems": url.fallback_problems(),
        });
        outln!(out, "{}", serde_json::to_string_pretty(&json)?);
    } else {
        outln!(out, "{text}");
        for p in url.fallback_problems() {
            eprintln!("warning: {p}");
        }
    }
    Ok(exit::OK)
}

fn yes_no(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}

fn parse(a: &ParseArgs, out: &mut String) -> anyhow::Result<u8> {
    let url = match FaspUrl::parse(&a.url) {
        Ok(u) => u,
        Err(e) => {
            eprintln!("fallback: not a valid FASP URL: {e}");
            return Ok(exit::FINDINGS);
        }
    };
    let problems = url.fallback_problems();
    let base = url.http_base().ok().map(|u| u.to_string());
    if a.json {
        let json = serde_json::json!({
            "parts": url,
            "ssh_port": url.ssh_port(),
            "http_base": base,
            "tags": url.tags(),
            "fallback_problems": problems,
        });
        outln!(out, "{}", serde_json::to_string_pretty(&json)?);
    } else {
        explain(&url, a.show_token, out);
        match &base {
            Some(b) if url.params.fallback == Some(true) => {
                outln!(
                    out,
                    "\n=> when FASP is blocked, the client falls back to {b}"
                );
            }
            _ => outln!(
                out,
                "\n=> no HTTP fallback: the URL does not say fallback=yes"
            ),
        }
        if !problems.is_empty() {
            outln!(out, "\nwarnings:");
            for p in &problems {
                outln!(out, "  - {p}");
            }
        }
    }
    Ok(if a.check && !problems.is_empty() {
        exit::FINDINGS
    } else {
        exit::OK
    })
}

fn explain(url: &FaspUrl, show_token: bool, out: &mut String) {
    let mut row = |name: &str, value: &str, meaning: &str| {
        outln!(out, "{name:<12} {value:<28} {meaning}");
    };
    let scheme = match url.scheme {
        Scheme::Fasp => "fasp (a Connect link)",
        Scheme::Faspe => "faspe (a Faspex package link)",
    };
    row("scheme", url.scheme.as_str(), scheme);
    if let Some(u) = &url.user {
        row("user", u, "transfer user");
    }
    row("host", &url.host, "transfer server");
    let ssh = match url.port {
        Some(p) => format!("{p}"),
        None => format!("{} (not given)", url.ssh_port()),
    };
    row(
        "ssh port",
        &ssh,
        "FASP session setup, TCP (fails when SSH is blocked)",
    );
    row(
        "path",
        if url.path.is_empty() {
            "(none)"
        } else {
            &url.path
        },
        "file or directory, relative to the user's docroot",
    );
    let p = &url.params;
    if let Some(v) = p.auth {
        row(
            "auth",
            yes_no(v),
            if v {
                "prompt for credentials"
            } else {
                "do not prompt for credentials"
            },
        );
    }
    if let Some(t) = &p.token {
        let shown = if show_token || t.chars().count() <= 16 {
            t.clone()
        } else {
            format!(
                "{}... ({} chars)",
                t.chars().take(12).collect::<String>(),
                t.chars().count()
            )
        };
        row(
            "token",
            &shown,
            "transfer token: authorizes the transfer, FASP and HTTP alike",
        );
    }
    if let Some(c) = &p.cookie {
        row("cookie", c, "opaque cookie passed along with the transfer");
    }
    if let Some(f) = &p.sshfp {
        row("sshfp", f, "expected SSH host key fingerprint");
    }
    if let Some(v) = p.port {
        row("port", &v.to_string(), "FASP data port, UDP");
    }
    if let Some(v) = p.httpport {
        let kind = if url.uses_https() { "HTTPS" } else { "HTTP" };
        row(
            "httpport",
            &v.to_string(),
            &format!("HTTP fallback port ({kind}, from enc)"),
        );
    }
    if let Some(v) = p.fallback {
        row(
            "fallback",
            yes_no(v),
            if v {
                "HTTP fallback allowed when FASP is blocked"
            } else {
                "no HTTP fallback"
            },
        );
    }
    if let Some(v) = p.policy {
        row("policy", v.as_str(), "rate policy");
    }
    for (name, v, what) in [
        ("targetrate", p.targetrate, "target rate, kbps"),
        ("minrate", p.minrate, "minimum rate, kbps"),
        ("bwcap", p.bwcap, "bandwidth cap, kbps"),
    ] {
        if let Some(v) = v {
            row(name, &v.to_string(), what);
        }
    }
    if let Some(e) = p.enc {
        let meaning = if e.is_cipher() {
            format!("encrypt with {}: HTTPS fallback", e.cipher_name())
        } else {
            "no encryption: plain HTTP fallback".to_owned()
        };
        row("enc", e.as_str(), &meaning);
    }
    if let Some(t) = &p.tags64 {
        let decoded = url
            .tags()
            .map_or_else(|| "not valid base64 JSON".to_owned(), |v| v.to_string());
        row(
            "tags64",
            &format!("({} chars)", t.len()),
            &format!("transfer tags: {decoded}"),
        );
    }
    for (name, v, what) in [
        ("createpath", p.createpath, "create the destination path"),
        ("lockpolicy", p.lockpolicy, "policy locked for the user"),
        (
            "lockminrate",
            p.lockminrate,
            "minimum rate locked for the user",
        ),
    ] {
        if let Some(v) = v {
            row(name, yes_no(v), what);
        }
    }
    if let Some(v) = p.v {
        row("v", &v.to_string(), "URL version");
    }
    for (k, v) in &p.other {
        row(k, v, "(not a known parameter; kept as is)");
    }
}
