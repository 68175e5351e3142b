//! `fallback config check|show`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::{Args, Subcommand};
use fallback_conf::{Config, Diagnostic, Error, Severity, Sourced, UserSettings};

use crate::exit;

#[derive(Debug, Subcommand)]
pub(crate) enum ConfigCommand {
    /// Validate an aspera.conf like a linter and list every finding.
    ///
    /// Runs the same check as `fallbackd --check-config` (which adds only whether its
    /// ports can be bound): the file itself, then this host (every docroot must exist
    /// here, $(name) and $(home) made for each user section; the TLS certificate and
    /// key must load and match). Each finding has a code, a line:column and the
    /// element path, for example:
    ///
    ///   aspera.conf:4:16: error[invalid-port]: "70000" is not a port ... (at /CONF/http_server/http_port)
    ///
    /// Every setting of the real product that HTTP fallback does not apply is named:
    /// a warning (not-applied) when it would change a transfer, a note
    /// (no-effect-over-http) when it only tunes FASP. Unknown elements are warnings,
    /// except where security settings live (authorization, encryption, file system
    /// access): there a misspelling is an error, since the setting would silently not
    /// apply.
    ///
    /// Exit status: 0 when there is no error (warnings allowed, unless
    /// --deny-warnings), 1 when there is at least one, 2 when the file cannot be read.
    Check(CheckArgs),
    /// Show the effective settings and where each value comes from.
    ///
    /// Without FILE, shows the built-in defaults (what an empty aspera.conf means).
    /// Precedence: user > groups (lower <precedence> first) > <default> > built-in
    /// default. With --user, the user's groups and home directory ($(home) in
    /// docroots) come from the system (NSS), as fallbackd finds them; --group names
    /// the groups instead. Secrets are never printed, only their length.
    Show(ShowArgs),
}

#[derive(Debug, Args)]
pub(crate) struct CheckArgs {
    /// The aspera.conf file to check.
    file: PathBuf,
    /// Print findings as JSON (one object with a "diagnostics" array).
    #[arg(long)]
    json: bool,
    /// Exit with status 1 on warnings too.
    #[arg(long)]
    deny_warnings: bool,
    /// Check the file alone, not this host: docroots and TLS files are not looked at
    /// (for a file written here for another server; check it there too).
    #[arg(long)]
    file_only: bool,
}

#[derive(Debug, Args)]
pub(crate) struct ShowArgs {
    /// The aspera.conf file to read; omit it to see the built-in defaults.
    file: Option<PathBuf>,
    /// Show the settings of this user (default: a user with no section of its own).
    #[arg(long, short = 'u', value_name = "USER")]
    user: Option<String>,
    /// A group the user belongs to; repeat for several.
    #[arg(long, short = 'g', value_name = "GROUP")]
    group: Vec<String>,
    /// Print as JSON.
    #[arg(long)]
    json: bool,
}

pub(crate) fn run(cmd: &ConfigCommand) -> anyhow::Result<u8> {
    let mut out = String::new();
    let code = match cmd {
        ConfigCommand::Check(args) => check(args, &mut out),
        ConfigCommand::Show(args) => show(args, &mut out),
    }?;
    crate::write_stdout(&out)?;
    Ok(code)
}

/// Loads the file; a syntax error is a finding (returned as `Err(diagnostic)`), an I/O
/// error is a failure.
fn load(file: &Path) -> anyhow::Result<Result<Config, Diagnostic>> {
    match Config::load(file) {
        Ok(conf) => Ok(Ok(conf)),
        Err(Error::Syntax(d)) => Ok(Err(d)),
        Err(e) => Err(e).with_context(|| format!("cannot check {}", file.display())),
    }
}

fn check(args: &CheckArgs, out: &mut String) -> anyhow::Result<u8> {
    let diagnostics = match load(&args.file)? {
        Ok(conf) if args.file_only => conf.diagnostics().to_vec(),
        Ok(conf) => {
            // The daemon's own check, host included (docroots, TLS files); the mode as
            // fallbackd started with the same FALLBACKD_TRUST_PROXY would see it.
            let mut all = fallback_server::check(&conf);
            all.extend(fallback_server::mode_findings(
                &conf,
                None,
                &trusted_from_env(),
            ));
            all
        }
        Err(d) => vec![d],
    };
    let count = |s: Severity| diagnostics.iter().filter(|d| d.severity == s).count();
    let (errors, warnings, notes) = (
        count(Severity::Error),
        count(Severity::Warning),
        count(Severity::Note),
    );
    if args.json {
        let json = serde_json::json!({
            "file": args.file,
            "errors": errors,
            "warnings": warnings,
            "notes": notes,
            "diagnostics": diagnostics,
        });
        outln!(out, "{}", serde_json::to_string_pretty(&json)?);
    } else {
        for d in &diagnostics {
            outln!(out, "{}", located(&args.file, d));
        }
        outln!(
            out,
            "{}: {errors} error{}, {warnings} warning{}, {notes} note{}",
            args.file.display(),
            plural(errors),
            plural(warnings),
            plural(notes)
        );
    }
    let fail = errors > 0 || (args.deny_warnings && warnings > 0);
    Ok(if fail { exit::FINDINGS } else { exit::OK })
}

/// The proxies fallbackd trusts when started with the same environment
/// (`FALLBACKD_TRUST_PROXY`, comma separated).
fn trusted_from_env() -> Vec<std::net::IpAddr> {
    std::env::var("FALLBACKD_TRUST_PROXY")
        .unwrap_or_default()
        .split(',')
        .filter_map(|a| a.trim().parse().ok())
        .collect()
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

fn located(file: &Path, d: &Diagnostic) -> String {
    match d.pos {
        Some(_) => format!("{}:{d}", file.display()),
        None => format!("{}: {d}", file.display()),
    }
}

fn show(args: &ShowArgs, out: &mut String) -> anyhow::Result<u8> {
    let builtin = PathBuf::from("(built-in defaults)");
    let file = args.file.as_ref().unwrap_or(&builtin);
    let conf = match &args.file {
        None => Config::builtin(),
        Some(f) => match load(f)? {
            Ok(conf) => conf,
            Err(d) => {
                eprintln!("{}", located(f, &d));
                return Ok(exit::FINDINGS);
            }
        },
    };
    let account = args.user.as_ref().map(|u| {
        let mut a = fallback_conf::Account::lookup(u);
        if !args.group.is_empty() {
            a.groups.clone_from(&args.group);
        }
        a
    });
    let groups: Vec<&str> = account
        .as_ref()
        .map(|a| a.groups.iter().map(String::as_str).collect())
        .unwrap_or_default();
    let user = match &account {
        Some(a) => conf.account(a),
        None => conf.defaults(),
    };
    let server = conf.server();
    let web = conf.web();
    let errors = conf.diagnostics().iter().filter(|d| d.is_error()).count();
    if args.json {
        let json = serde_json::json!({
            "file": args.file,
            "mode": server.mode(),
            "http_server": server,
            "web": web,
            "user": user,
            "required_cipher": user.required_cipher(),
            "diagnostics": conf.diagnostics(),
        });
        outln!(out, "{}", serde_json::to_string_pretty(&json)?);
        return Ok(exit::OK);
    }
    let mut t = Table::default();
    outln!(out, "{} ({} mode)", file.display(), server.mode());
    outln!(out, "\n<http_server>");
    t.row(
        "enable_http",
        v(&server.enable_http),
        &server.enable_http.origin,
    );
    t.row("http_port", v(&server.http_port), &server.http_port.origin);
    t.row(
        "enable_https",
        v(&server.enable_https),
        &server.enable_https.origin,
    );
    t.row(
        "https_port",
        v(&server.https_port),
        &server.https_port.origin,
    );
    t.row(
        "bind_address",
        v(&server.bind_address),
        &server.bind_address.origin,
    );
    t.row(
        "cert_file",
        path(&server.cert_file, "(generated, self-signed)"),
        &server.cert_file.origin,
    );
    t.row(
        "key_file",
        path(&server.key_file, "(generated)"),
        &server.key_file.origin,
    );
    t.row(
        "restartable_transfers",
        v(&server.restartable_transfers),
        &server.restartable_transfers.origin,
    );
    t.row(
        "session_activity_timeout",
        format!("{} s", server.session_activity_timeout.value),
        &server.session_activity_timeout.origin,
    );
    t.row(
        "listen_backlog",
        v(&server.listen_backlog),
        &server.listen_backlog.origin,
    );
    t.print(out);
    match &web {
        Some(w) => {
            let mut t = Table::default();
            outln!(out, "\n<WEB>");
            t.row(
                "HttpFallback",
                yes_no(w.http_fallback.value),
                &w.http_fallback.origin,
            );
            t.row(
                "HttpFallbackPort",
                v(&w.http_fallback_port),
                &w.http_fallback_port.origin,
            );
            t.row(
                "HttpsFallbackPort",
                v(&w.https_fallback_port),
                &w.https_fallback_port.origin,
            );
            t.row("SshPort", v(&w.ssh_port), &w.ssh_port.origin);
            t.row("UdpPort", v(&w.udp_port), &w.udp_port.origin);
            t.print(out);
        }
        None => outln!(
            out,
            "\n<WEB>: absent (no Connect Server settings in this file)"
        ),
    }
    print_user(out, &user, &groups);
    if errors > 0 {
        outln!(
            out,
            "\nthe file has {errors} error{}; run `fallback config check {}`",
            plural(errors),
            file.display()
        );
    }
    Ok(exit::OK)
}

fn print_user(out: &mut String, u: &UserSettings, groups: &[&str]) {
    let mut t = Table::default();
    if u.user.is_empty() {
        outln!(out, "\nsettings of a user with no section of their own");
    } else if groups.is_empty() {
        outln!(out, "\nsettings of user {}", u.user);
    } else {
        outln!(
            out,
            "\nsettings of user {} (groups: {})",
            u.user,
            groups.join(", ")
        );
    }
    t.row(
        "transfer in (uploads)",
        v(&u.transfer_in),
        &u.transfer_in.origin,
    );
    t.row(
        "transfer out (downloads)",
        v(&u.transfer_out),
        &u.transfer_out.origin,
    );
    let key = u
        .token_key
        .value
        .as_ref()
        .map_or_else(|| "(none)".to_owned(), ToString::to_string);
    t.row("token encryption_key", key, &u.token_key.origin);
    t.row(
        "token encryption_type",
        v(&u.token_cipher),
        &u.token_cipher.origin,
    );
    t.row(
        "token life_seconds",
        v(&u.token_life_seconds),
        &u.token_life_seconds.origin,
    );
    let none = u.docroot_problem.as_ref().map_or_else(
        || "(none: transfers refused)".to_owned(),
        |why| format!("(none: {why})"),
    );
    let root = u
        .docroot
        .value
        .as_ref()
        .map_or_else(|| none.clone(), ToString::to_string);
    t.row("docroot", root, &u.docroot.origin);
    if let Some(w) = &u.docroot_written {
        t.row("  as written", w, &u.docroot.origin);
    }
    for (ip, d) in &u.peer_docroots {
        t.row(&format!("  for peer {ip}"), d, &u.docroot.origin);
    }
    if !u.restrictions.value.is_empty() {
        t.row(
            "restrictions",
            u.restrictions.value.join(" "),
            &u.restrictions.origin,
        );
    }
    t.row("overwrite", v(&u.overwrite), &u.overwrite.origin);
    t.row(
        "file mode",
        format!("{:04o}", u.file_mode()),
        match &u.file_create_mode.value {
            Some(_) => &u.file_create_mode.origin,
            None => &u.file_create_grant_mask.origin,
        },
    );
    t.row(
        "directory mode",
        format!("{:04o}", u.dir_mode()),
        match &u.directory_create_mode.value {
            Some(_) => &u.directory_create_mode.origin,
            None => &u.directory_create_grant_mask.origin,
        },
    );
    let cap = |c: &Sourced<Option<u64>>| {
        c.value
            .map_or_else(|| "Unlimited".to_owned(), |k| format!("{k} kbps"))
    };
    t.row(
        "upload rate cap",
        cap(&u.in_rate_cap),
        &u.in_rate_cap.origin,
    );
    t.row(
        "download rate cap",
        cap(&u.out_rate_cap),
        &u.out_rate_cap.origin,
    );
    t.row("read_allowed", v(&u.read_allowed), &u.read_allowed.origin);
    t.row(
        "write_allowed",
        v(&u.write_allowed),
        &u.write_allowed.origin,
    );
    t.row("dir_allowed", v(&u.dir_allowed), &u.dir_allowed.origin);
    t.row(
        "allowed_cipher",
        v(&u.allowed_cipher),
        &u.allowed_cipher.origin,
    );
    t.row("user_value", v(&u.user_value), &u.user_value.origin);
    t.print(out);
    match u.required_cipher() {
        Some(c) => outln!(
            out,
            "  => transfers must be encrypted ({c}): HTTPS fallback only"
        ),
        None => outln!(
            out,
            "  => transfers need not be encrypted: HTTP or HTTPS fallback"
        ),
    }
}

/// Rows of `name  value  origin`, printed as one block.
#[derive(Debug, Default)]
struct Table(String);

impl Table {
    fn row(&mut self, name: &str, value: impl std::fmt::Display, origin: &dyn std::fmt::Display) {
        let value = value.to_string();
        let _ = writeln!(self.0, "  {name:<26} {value:<34} {origin}");
    }

    fn print(self, out: &mut String) {
        out.push_str(&self.0);
    }
}

fn v<T: std::fmt::Display>(s: &Sourced<T>) -> String {
    s.value.to_string()
}

fn yes_no(b: bool) -> String {
    if b { "yes" } else { "no" }.to_owned()
}

fn path(s: &Sourced<Option<PathBuf>>, none: &str) -> String {
    s.value
        .as_ref()
        .map_or_else(|| none.to_owned(), |p| p.display().to_string())
}
