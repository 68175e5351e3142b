//! `fallback config check|show`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::{Args, Subcommand};
use fallback_conf::{Config, Diagnostic, Error, Sourced, UserSettings};

use crate::exit;

#[derive(Debug, Subcommand)]
pub(crate) enum ConfigCommand {
    /// Validate an aspera.conf like a linter and list every finding.
    ///
    /// Each finding has a code, a line:column and the element path, for example:
    ///
    ///   aspera.conf:4:16: error[invalid-port]: "70000" is not a port ... (at /CONF/http_server/http_port)
    ///
    /// Unknown elements are warnings, never errors: real files carry many settings
    /// that HTTP fallback does not use. Exit status: 0 when there is no error
    /// (warnings allowed, unless --deny-warnings), 1 when there is at least one,
    /// 2 when the file cannot be read.
    Check(CheckArgs),
    /// Show the effective settings and where each value comes from.
    ///
    /// Without FILE, shows the built-in defaults (what an empty aspera.conf means).
    /// Precedence: user > groups (lower <precedence> first) > <default> > built-in
    /// default. Group membership comes from the system, so name the user's groups
    /// with --group. Secrets are never printed, only their length.
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
        Ok(conf) => conf.diagnostics().to_vec(),
        Err(d) => vec![d],
    };
    let errors = diagnostics.iter().filter(|d| d.is_error()).count();
    let warnings = diagnostics.len() - errors;
    if args.json {
        let json = serde_json::json!({
            "file": args.file,
            "errors": errors,
            "warnings": warnings,
            "diagnostics": diagnostics,
        });
        outln!(out, "{}", serde_json::to_string_pretty(&json)?);
    } else {
        for d in &diagnostics {
            outln!(out, "{}", located(&args.file, d));
        }
        outln!(
            out,
            "{}: {errors} error{}, {warnings} warning{}",
            args.file.display(),
            plural(errors),
            plural(warnings)
        );
    }
    let fail = errors > 0 || (args.deny_warnings && warnings > 0);
    Ok(if fail { exit::FINDINGS } else { exit::OK })
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
    let groups: Vec<&str> = args.group.iter().map(String::as_str).collect();
    let user = match &args.user {
        Some(u) => conf.user(u, &groups),
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
    t.row(
        "docroot",
        path(&u.docroot, "(none: transfers refused)"),
        &u.docroot.origin,
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
