//! `fallback`: the command line of the fallback project.
//!
//! Wiring only: parse arguments, call one library function, turn the outcome into an
//! exit code. Each subcommand group lives in its own module.

// A command line prints its results.
#![allow(clippy::print_stdout, clippy::print_stderr)]
// Doc comments on clap types are the `--help` text, shown verbatim: no Markdown.
#![allow(clippy::doc_markdown)]
// ...so <WEB>, <default> and [:port] are text there, not HTML or links for rustdoc.
#![allow(rustdoc::invalid_html_tags, rustdoc::broken_intra_doc_links)]
// Command-line flags are booleans by nature.
#![allow(clippy::struct_excessive_bools)]

/// `writeln!` into the command's output buffer (writing to a `String` cannot fail).
macro_rules! outln {
    ($out:expr, $($arg:tt)*) => {{
        let _ = writeln!($out, $($arg)*);
    }};
}

#[path = "../../../dist/assets.rs"]
mod assets;
mod config;
mod token;
mod transfer;
mod url;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// HTTP fallback for FASP-style file transfer: tokens, URLs, transfers and checks.
///
/// When a network blocks UDP or SSH, transfers still happen over plain HTTP(S), served
/// by fallbackd. This command checks configurations, issues tokens, builds FASP URLs,
/// moves files over HTTP fallback and diagnoses setups.
#[derive(Debug, Parser)]
#[command(name = "fallback", version, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check an aspera.conf and show the effective settings of a user.
    #[command(subcommand)]
    Config(config::ConfigCommand),
    /// Issue, inspect and verify transfer tokens (like astokengen).
    #[command(subcommand)]
    Token(token::TokenCommand),
    /// Build and explain FASP URLs (fasp://, faspe://).
    #[command(subcommand)]
    Url(url::UrlCommand),
    /// Upload files and directories over HTTP fallback.
    ///
    /// Checks the URL, probes the FASP SSH port, and falls back to HTTP(S) as the URL
    /// allows (each decision is printed). Resumes interrupted uploads, also after a
    /// restart of this command; retries network errors and 5xx with backoff; the
    /// server checks each file's SHA-256 before it appears.
    ///
    /// Exit status: 0 all files sent, 1 some failed, 2 local error, 3 the URL does not
    /// allow HTTP fallback (the message names the missing parameter).
    Upload(transfer::UploadArgs),
    /// Download a file or a directory tree over HTTP fallback.
    ///
    /// Resumes with Range (also after a restart), checks SHA-256 end to end, and gives
    /// a file its final name only once verified (meanwhile it is NAME.fallback-part).
    ///
    /// Exit status: 0 all files received, 1 some failed, 2 local error, 3 the URL does
    /// not allow HTTP fallback.
    Download(transfer::DownloadArgs),
    /// Run the HTTP fallback troubleshooting list against a FASP URL.
    ///
    /// URL has token / fallback=yes / httpport; FASP SSH port reachable; fallback port
    /// reachable; TLS certificate (fingerprint, names, expiry, trust); the server is
    /// fallbackd; the token is accepted for the URL's path (nothing is transferred);
    /// with --config, <WEB> agrees with <http_server>. Each line gives a verdict and a
    /// fix. Exit status: 0 when fallback would work, 1 otherwise.
    Doctor(transfer::DoctorArgs),
    /// Write the man pages (fallback.1 and one per subcommand) and shell completions
    /// (bash, zsh, fish) into DIR: what the Debian package installs, for hosts without
    /// it.
    GenerateAssets {
        /// Where to write them.
        dir: std::path::PathBuf,
    },
}

/// Exit codes shared by every subcommand.
pub(crate) mod exit {
    /// Success: nothing wrong found.
    pub(crate) const OK: u8 = 0;
    /// The command ran and found problems (for `config check`: at least one error).
    pub(crate) const FINDINGS: u8 = 1;
    /// The command could not run: bad arguments, unreadable file.
    pub(crate) const FAILURE: u8 = 2;
}

/// Writes a command's output; a closed pipe (`fallback ... | head`) is not an error.
pub(crate) fn write_stdout(text: &str) -> anyhow::Result<()> {
    use std::io::Write as _;
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(()),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Config(cmd) => config::run(&cmd),
        Command::Token(cmd) => token::run(&cmd),
        Command::Url(cmd) => url::run(&cmd),
        Command::Upload(a) => transfer::upload(&a),
        Command::Download(a) => transfer::download(&a),
        Command::Doctor(a) => transfer::doctor(&a),
        Command::GenerateAssets { dir } => {
            use clap::CommandFactory as _;
            assets::generate(&Cli::command(), "1", &dir, include_str!("man.roff"))
                .map(|()| exit::OK)
                .map_err(|e| anyhow::anyhow!("{}: {e}", dir.display()))
        }
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            eprintln!("fallback: error: {err:#}");
            ExitCode::from(exit::FAILURE)
        }
    }
}
