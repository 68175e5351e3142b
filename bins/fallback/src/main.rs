//! `fallback`: the command line of the fallback project.
//!
//! Wiring only: parse arguments, call one library function, turn the outcome into an
//! exit code. Each subcommand group lives in its own module.

// A command line prints its results.
#![allow(clippy::print_stdout, clippy::print_stderr)]
// Doc comments on clap types are the `--help` text, shown verbatim: no Markdown.
#![allow(clippy::doc_markdown)]
// Command-line flags are booleans by nature.
#![allow(clippy::struct_excessive_bools)]

/// `writeln!` into the command's output buffer (writing to a `String` cannot fail).
macro_rules! outln {
    ($out:expr, $($arg:tt)*) => {{
        let _ = writeln!($out, $($arg)*);
    }};
}

mod config;
mod token;
mod url;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// HTTP fallback for FASP-style file transfer: tokens, URLs, transfers and checks.
///
/// When a network blocks UDP or SSH, transfers still happen over plain HTTP(S), served
/// by fallbackd. This command checks configurations, issues tokens and builds FASP URLs;
/// uploads, downloads and diagnosis come in later releases.
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
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            eprintln!("fallback: error: {err:#}");
            ExitCode::from(exit::FAILURE)
        }
    }
}
