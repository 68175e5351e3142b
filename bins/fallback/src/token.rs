//! `fallback token generate|inspect|verify`, modelled on astokengen.

use std::fmt::Write as _;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use anyhow::{Context as _, bail};
use clap::{ArgGroup, Args, Subcommand};
use fallback_conf::{Config, TransferAuth, UserSettings};
use fallback_token::{
    Access, Claims, Direction, Key, KeyRing, Token, VerifyError, VerifyOptions, envelope,
    inspect_unverified,
};

use crate::exit;

#[derive(Debug, Subcommand)]
pub(crate) enum TokenCommand {
    /// Issue a transfer token with the key of a user's aspera.conf settings.
    ///
    /// Like astokengen: an upload token names one destination directory (--up --dest),
    /// a download token the files and directories it may read (--down -p, repeatable,
    /// or --file-list). Paths are relative to the user's docroot: "/" is the docroot.
    /// The token is sealed (claims encrypted) when the user's encryption_type is set
    /// in the file, signed otherwise. Its lifetime defaults to the user's life_seconds.
    ///
    /// Example:
    ///   fallback token generate --config aspera.conf --user alice --up --dest /incoming --ttl 1h
    Generate(GenerateArgs),
    /// Make a new token key and print the <token> section that rotates to it.
    ///
    /// The new secret issues; the current one moves to <retired_keys> with an
    /// <accept_until> time, so its tokens keep working until then and no longer (on
    /// every instance, after a reload or a restart alike). Retired keys still within
    /// their time are kept; those past it are dropped. Nothing is written: replace the
    /// section's <token> in the file on every instance, reload each, then give the web
    /// apps that issue tokens the new secret. To revoke a key at once, remove it.
    ///
    /// Example:
    ///   fallback token rotate --config aspera.conf --keep 1d
    Rotate(RotateArgs),
    /// Show what a token says: form, key id, and for a signed token its claims.
    ///
    /// Without --config nothing is verified and a sealed token shows only its key id.
    /// With --config the token is opened and its signature checked (expired tokens are
    /// still shown, marked expired). TOKEN may be "-" to read it from standard input.
    Inspect(InspectArgs),
    /// Check a token as the server would, for one user, direction and path.
    ///
    /// Exit status: 0 the token allows the transfer, 1 it does not (the reason is
    /// printed), 2 the check could not run (unreadable config, no key). TOKEN may be
    /// "-" to read it from standard input, which keeps it out of the process list.
    ///
    /// Example:
    ///   fallback token verify "$TOKEN" --config aspera.conf --user alice --down -p /projects/a.txt
    Verify(VerifyArgs),
}

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("direction").required(true).args(["up", "down"])))]
pub(crate) struct GenerateArgs {
    /// The aspera.conf holding the token secret (authorization/token/encryption_key).
    #[arg(long, short = 'c', value_name = "FILE")]
    config: PathBuf,
    /// The transfer user the token is for.
    #[arg(long, short = 'u', value_name = "USER")]
    user: String,
    /// A group of the user, for the user's effective settings; repeatable (default:
    /// the groups the system knows for the user, as fallbackd finds them).
    #[arg(long, short = 'g', value_name = "GROUP")]
    group: Vec<String>,
    /// An upload token (astokengen --mode=send).
    #[arg(long, requires = "dest")]
    up: bool,
    /// A download token (astokengen --mode=recv).
    #[arg(long)]
    down: bool,
    /// Upload: the directory the bearer may write under.
    #[arg(long, value_name = "DIR", conflicts_with_all = ["path", "file_list"])]
    dest: Option<String>,
    /// Download: a file or directory the bearer may read; repeatable.
    #[arg(long = "path", short = 'p', value_name = "PATH")]
    path: Vec<String>,
    /// Download: a file with one path per line (blank lines and # comments ignored).
    #[arg(long, value_name = "FILE")]
    file_list: Option<PathBuf>,
    /// Lifetime, like 30m, 1h, 2h30m, 7d (default: the user's life_seconds).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    ttl: Option<Duration>,
    /// Name the key id instead of deriving it from the secret.
    #[arg(long, value_name = "ID")]
    key_id: Option<String>,
    /// Print the token and its claims as JSON.
    #[arg(long)]
    json: bool,
    /// Refuse a user that has no section of its own (nor a --group with one) in the
    /// file, instead of warning that <default> applies.
    #[arg(long)]
    strict: bool,
}

#[derive(Debug, Args)]
pub(crate) struct RotateArgs {
    /// The aspera.conf whose key to rotate.
    #[arg(long, short = 'c', value_name = "FILE")]
    config: PathBuf,
    /// Rotate the key of this user's section (default: the <default> section's).
    #[arg(long, short = 'u', value_name = "USER", conflicts_with = "group")]
    user: Option<String>,
    /// Rotate the key of this group's section.
    #[arg(long, short = 'g', value_name = "GROUP")]
    group: Option<String>,
    /// How long tokens made with the current key stay accepted, like 1h or 30d
    /// (default: the section's life_seconds, the longest a token it makes lives).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    keep: Option<Duration>,
}

#[derive(Debug, Args)]
pub(crate) struct InspectArgs {
    /// The token, or "-" to read it from standard input.
    token: String,
    /// An aspera.conf whose keys open sealed tokens and check signatures.
    #[arg(long, short = 'c', value_name = "FILE")]
    config: Option<PathBuf>,
    /// Print as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("direction").required(true).args(["up", "down"])))]
pub(crate) struct VerifyArgs {
    /// The token, or "-" to read it from standard input.
    token: String,
    /// The aspera.conf holding the token secrets.
    #[arg(long, short = 'c', value_name = "FILE")]
    config: PathBuf,
    /// The user the transfer is for.
    #[arg(long, short = 'u', value_name = "USER")]
    user: String,
    /// A group of the user, for the user's effective key; repeatable.
    #[arg(long, short = 'g', value_name = "GROUP")]
    group: Vec<String>,
    /// Check an upload.
    #[arg(long)]
    up: bool,
    /// Check a download.
    #[arg(long)]
    down: bool,
    /// The path the transfer touches (upload: the file written; download: the file read).
    #[arg(
        long = "path",
        short = 'p',
        visible_alias = "dest",
        value_name = "PATH"
    )]
    path: String,
    /// Clock skew tolerated, like 60s (default 60s).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "60s")]
    skew: Duration,
}

pub(crate) fn run(cmd: &TokenCommand) -> anyhow::Result<u8> {
    let mut out = String::new();
    let code = match cmd {
        TokenCommand::Generate(a) => generate(a, &mut out),
        TokenCommand::Inspect(a) => inspect(a, &mut out),
        TokenCommand::Verify(a) => verify(a, &mut out),
        TokenCommand::Rotate(a) => rotate(a, &mut out),
    }?;
    crate::write_stdout(&out)?;
    Ok(code)
}

/// `fallback token rotate`: a new secret, and the `<token>` section that rotates to it.
fn rotate(a: &RotateArgs, out: &mut String) -> anyhow::Result<u8> {
    let conf = load_config(&a.config)?;
    let (settings, section) = match (&a.user, &a.group) {
        (Some(u), _) => {
            if !conf.has_user(u) {
                bail!(
                    "user {u:?} has no section in {}: its key is the one of the section \
                     that applies to it (rotate that one: --group, or no option for \
                     <default>)",
                    a.config.display()
                );
            }
            (conf.user(u, &[]), format!("the <user> section of {u}"))
        }
        (None, Some(g)) => {
            if !conf.has_group(g) {
                bail!("group {g:?} has no section in {}", a.config.display());
            }
            (
                conf.user("", &[g.as_str()]),
                format!("the <group> section of {g}"),
            )
        }
        (None, None) => (conf.defaults(), "the <default> section".to_owned()),
    };
    let Some(current) = settings.token_key.value.as_ref() else {
        bail!(
            "{section} of {} has no encryption_key to rotate",
            a.config.display()
        );
    };
    let mut random = [0u8; 24];
    getrandom::fill(&mut random).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
    let secret = hex::encode(random);
    let now = jiff::Timestamp::from_second(jiff::Timestamp::now().as_second())
        .unwrap_or(jiff::Timestamp::UNIX_EPOCH);
    let keep = a
        .keep
        .unwrap_or(Duration::from_secs(settings.token_life_seconds.value));
    let keep = i64::try_from(keep.as_secs()).unwrap_or(i64::MAX);
    let until = jiff::Timestamp::from_second(now.as_second().saturating_add(keep))
        .unwrap_or(jiff::Timestamp::MAX);
    let escape = |s: &str| {
        s.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
    };
    outln!(
        out,
        "<!-- {section}: rotated {now}; the old key's tokens are accepted until {until} -->"
    );
    outln!(out, "<token>");
    outln!(out, "  <encryption_key>{secret}</encryption_key>");
    // The section's other token settings, when it writes them, stay as they are.
    if !matches!(settings.token_cipher.origin, fallback_conf::Origin::Builtin) {
        outln!(
            out,
            "  <encryption_type>{}</encryption_type>",
            settings.token_cipher.value
        );
    }
    if !matches!(
        settings.token_life_seconds.origin,
        fallback_conf::Origin::Builtin
    ) {
        outln!(
            out,
            "  <life_seconds>{}</life_seconds>",
            settings.token_life_seconds.value
        );
    }
    outln!(out, "  <retired_keys>");
    outln!(out, "    <key>");
    outln!(
        out,
        "      <encryption_key>{}</encryption_key>",
        escape(current.expose())
    );
    outln!(out, "      <accept_until>{until}</accept_until>");
    outln!(out, "    </key>");
    let now_s = now.as_second();
    for old in settings
        .retired_keys
        .value
        .iter()
        .filter(|k| k.accept_until > now_s)
    {
        outln!(out, "    <key>");
        outln!(
            out,
            "      <encryption_key>{}</encryption_key>",
            escape(old.secret.expose())
        );
        outln!(
            out,
            "      <accept_until>{}</accept_until>",
            escape(&old.accept_until_text)
        );
        outln!(out, "    </key>");
    }
    outln!(out, "  </retired_keys>");
    outln!(out, "</token>");
    eprintln!(
        "fallback: replace the <token> of {section} in {} with the above on every \
         instance, then `systemctl reload fallbackd` on each, then give the apps that \
         issue tokens the new encryption_key.",
        a.config.display()
    );
    Ok(exit::OK)
}

/// `30m`, `1h`, `2h30m`, `7d`, `PT1H`, or plain seconds.
pub(crate) fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    if let Ok(secs) = s.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    let span: jiff::Span = s
        .parse()
        .map_err(|e| format!("{s:?} is not a duration like 30m, 1h or 7d: {e}"))?;
    let d = span
        .to_duration(jiff::SpanRelativeTo::days_are_24_hours())
        .map_err(|e| format!("{s:?}: {e}"))?;
    Duration::try_from(d).map_err(|_| format!("{s:?} is negative"))
}

pub(crate) fn load_config(path: &Path) -> anyhow::Result<Config> {
    let conf = Config::load(path).with_context(|| format!("cannot use {}", path.display()))?;
    if let Some(e) = conf.diagnostics().iter().find(|d| d.is_error()) {
        bail!(
            "{} has errors (first: {e}); run `fallback config check {}`",
            path.display(),
            path.display()
        );
    }
    Ok(conf)
}

fn read_token(arg: &str) -> anyhow::Result<String> {
    if arg == "-" {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .context("cannot read the token from standard input")?;
        Ok(s.trim().to_owned())
    } else {
        Ok(arg.trim().to_owned())
    }
}

fn user_key(settings: &UserSettings, file: &Path) -> anyhow::Result<Key> {
    Key::from_settings(settings).with_context(|| format!("in {}", file.display()))
}

fn generate(a: &GenerateArgs, out: &mut String) -> anyhow::Result<u8> {
    let conf = load_config(&a.config)?;
    // As fallbackd will see the user: groups and home directory from the system,
    // unless --group names the groups.
    let mut account = fallback_conf::Account::lookup(&a.user);
    if !a.group.is_empty() {
        account.groups.clone_from(&a.group);
    }
    let groups: Vec<&str> = account.groups.iter().map(String::as_str).collect();
    let settings = conf.account(&account);
    let sections: Vec<&str> = groups
        .iter()
        .copied()
        .filter(|g| conf.has_group(g))
        .collect();
    if !conf.has_user(&a.user) {
        let docroot = settings.docroot.value.as_ref().map_or_else(
            || "no docroot".to_owned(),
            |d| format!("docroot {d} ({})", settings.docroot.origin),
        );
        let applies = if sections.is_empty() {
            "the <default> section applies".to_owned()
        } else {
            format!("group {} applies, then <default>", sections.join(", "))
        };
        let msg = format!(
            "user {:?} has no section of its own in {}: {applies}; the token grants {docroot}",
            a.user,
            a.config.display()
        );
        if a.strict {
            bail!("{msg}. Refused (--strict): add a <user> section, or check the name");
        }
        eprintln!("warning: {msg}");
    }
    let mut key = user_key(&settings, &a.config)?;
    if let Some(id) = &a.key_id {
        key = key.with_id(id)?;
    }
    let direction = if a.up {
        Direction::Upload
    } else {
        Direction::Download
    };
    let policy = match direction {
        Direction::Upload => &settings.transfer_in,
        Direction::Download => &settings.transfer_out,
    };
    match policy.value {
        TransferAuth::Token => {}
        TransferAuth::Allow => eprintln!(
            "note: {direction}s for {} are \"allow\" ({}): the server does not require a token",
            a.user, policy.origin
        ),
        TransferAuth::Deny => eprintln!(
            "warning: {direction}s for {} are \"deny\" ({}): the server will refuse them \
             whatever the token says",
            a.user, policy.origin
        ),
    }
    let builder = if let Some(dest) = &a.dest {
        Token::upload(&a.user, dest)
    } else {
        let mut paths = a.path.clone();
        if let Some(list) = &a.file_list {
            let text = std::fs::read_to_string(list)
                .with_context(|| format!("cannot read --file-list {}", list.display()))?;
            paths.extend(
                text.lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty() && !l.starts_with('#'))
                    .map(str::to_owned),
            );
        }
        if paths.is_empty() {
            bail!("a download token needs at least one --path (or a --file-list)");
        }
        Token::download(&a.user, &paths)
    };
    let ttl = a
        .ttl
        .unwrap_or(Duration::from_secs(settings.token_life_seconds.value));
    let builder = builder.valid_for(ttl);
    let claims = builder.claims(&key)?;
    let token = builder.issue(&key)?;
    if a.json {
        let json = serde_json::json!({ "token": token, "claims": claims });
        outln!(out, "{}", serde_json::to_string_pretty(&json)?);
    } else {
        outln!(out, "{token}");
        eprintln!(
            "{} token for {} ({}), {}, key id {}, expires {}",
            claims.direction,
            claims.user,
            claims.paths.join(", "),
            claims.form,
            claims.key_id,
            when(claims.expires_at)
        );
    }
    Ok(exit::OK)
}

fn when(unix: u64) -> String {
    let ts = i64::try_from(unix)
        .ok()
        .and_then(|s| jiff::Timestamp::from_second(s).ok());
    ts.map_or_else(|| format!("{unix} (Unix seconds)"), |t| t.to_string())
}

fn describe(out: &mut String, c: &Claims, verified: bool, now: SystemTime) {
    outln!(out, "form        {}", c.form);
    outln!(out, "key id      {}", c.key_id);
    outln!(out, "user        {}", c.user);
    outln!(out, "direction   {}", c.direction);
    let label = match c.direction {
        Direction::Upload => "destination",
        Direction::Download => "paths",
    };
    for (i, p) in c.paths.iter().enumerate() {
        outln!(out, "{:<11} {p}", if i == 0 { label } else { "" });
    }
    outln!(out, "issued at   {}", when(c.issued_at));
    let left = c.remaining(now);
    let state = if left.is_zero() {
        "expired".to_owned()
    } else {
        format!("valid for {}", human(left))
    };
    outln!(out, "expires at  {} ({state})", when(c.expires_at));
    outln!(
        out,
        "signature   {}",
        if verified {
            "verified with the configured key"
        } else {
            "NOT verified (no --config given)"
        }
    );
}

fn human(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{}s", s / 60, s % 60),
        3600..86_400 => format!("{}h{}m", s / 3600, (s % 3600) / 60),
        _ => format!("{}d{}h", s / 86_400, (s % 86_400) / 3600),
    }
}

fn inspect(a: &InspectArgs, out: &mut String) -> anyhow::Result<u8> {
    let token = read_token(&a.token)?;
    let env = match envelope(&token) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("fallback: not a readable token: {e}");
            return Ok(exit::FINDINGS);
        }
    };
    let now = SystemTime::now();
    let (claims, verified) = match &a.config {
        Some(file) => {
            let conf = load_config(file)?;
            let Some(ring) = KeyRing::from_config(&conf) else {
                bail!("{} has no token encryption_key", file.display());
            };
            match ring?.open(&token) {
                Ok(c) => (Some(c), true),
                Err(e) => {
                    eprintln!(
                        "fallback: the token does not open with {}: {e}",
                        file.display()
                    );
                    return Ok(exit::FINDINGS);
                }
            }
        }
        None => match inspect_unverified(&token) {
            Ok(c) => (Some(c), false),
            Err(VerifyError::Sealed) => (None, false),
            Err(e) => {
                eprintln!("fallback: not a readable token: {e}");
                return Ok(exit::FINDINGS);
            }
        },
    };
    if a.json {
        let json = serde_json::json!({
            "envelope": env,
            "claims": claims,
            "verified": verified,
        });
        outln!(out, "{}", serde_json::to_string_pretty(&json)?);
        return Ok(exit::OK);
    }
    if let Some(c) = &claims {
        describe(out, c, verified, now);
    } else {
        outln!(out, "form        {}", env.form);
        outln!(out, "key id      {}", env.key_id);
        outln!(
            out,
            "claims      sealed: give --config with the aspera.conf holding the key to read them"
        );
    }
    Ok(exit::OK)
}

fn verify(a: &VerifyArgs, out: &mut String) -> anyhow::Result<u8> {
    let token = read_token(&a.token)?;
    let conf = load_config(&a.config)?;
    let Some(ring) = KeyRing::from_config(&conf) else {
        bail!("{} has no token encryption_key", a.config.display());
    };
    let ring = ring?;
    let direction = if a.up {
        Direction::Upload
    } else {
        Direction::Download
    };
    let access = Access {
        user: Some(&a.user),
        direction,
        path: &a.path,
    };
    let opts = VerifyOptions {
        skew: a.skew,
        ..VerifyOptions::default()
    };
    match ring.verify_with(&token, &access, &opts) {
        Ok(c) => {
            // The key that signed must be the one that applies to this user: a token
            // made with another user's secret is not this user's token.
            let groups: Vec<&str> = a.group.iter().map(String::as_str).collect();
            let settings = conf.user(&a.user, &groups);
            // ...or one of its retired keys (still within its time: decoding checked).
            let retired = Key::retired_from_settings(&settings).unwrap_or_default();
            if let Ok(k) = Key::from_settings(&settings)
                && k.id() != c.key_id
                && !retired.iter().any(|(r, _)| r.id() == c.key_id)
            {
                outln!(
                    out,
                    "invalid: made with key {} but user {}'s key is {}",
                    c.key_id,
                    a.user,
                    k.id()
                );
                return Ok(exit::FINDINGS);
            }
            outln!(
                out,
                "valid: {} token for {} covers {} ({} left)",
                c.direction,
                c.user,
                a.path,
                human(c.remaining(SystemTime::now()))
            );
            if let Some(until) = ring.retired_until(&c.key_id) {
                let until = jiff::Timestamp::from_second(until)
                    .map_or_else(|_| until.to_string(), |t| t.to_string());
                outln!(out, "note: made with a retired key, accepted until {until}");
            }
            Ok(exit::OK)
        }
        Err(e) => {
            outln!(out, "invalid: {e} [{}]", e.kind());
            Ok(exit::FINDINGS)
        }
    }
}
