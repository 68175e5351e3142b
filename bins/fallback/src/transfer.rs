//! `fallback upload`, `fallback download`, `fallback doctor`.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::IsTerminal as _;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::Args;
use fallback_client::{Event, Events, Options, Retry, Session, Summary, Verdict};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::exit;

/// Options shared by upload and download.
#[derive(Debug, Args)]
pub(crate) struct TransferArgs {
    /// Use HTTP fallback even if the URL does not say fallback=yes (like ascp -y F).
    #[arg(long)]
    force_http: bool,
    /// Also trust the CA certificates in this PEM file (on top of the system roots), or
    /// the server's own self-signed certificate, as curl does.
    #[arg(long, value_name = "FILE")]
    cacert: Option<PathBuf>,
    /// Trust only a server whose public key has this SHA-256 (`sha256:BASE64`, as
    /// `fallback doctor URL` prints it; repeat for a key rotation). The system roots
    /// and --cacert are then not consulted: the key is the trust, as with SSH.
    #[arg(long, value_name = "sha256:BASE64", value_parser = fallback_client::parse_pin)]
    pin: Vec<fallback_client::Pin>,
    /// Accept any server certificate. DANGEROUS: anyone on the network path can read and
    /// change the transfer. For tests against self-signed servers only.
    #[arg(long)]
    insecure: bool,
    /// Files in flight at once.
    #[arg(long, value_name = "N", default_value = "4")]
    parallel: usize,
    /// Connections per large file (one TCP stream is the bottleneck on long, fast
    /// paths). Downloads fetch byte ranges at once: by default 4 for files of 256 MiB
    /// and more, 1 below. Uploads send files over 1 MiB as N partial uploads joined by
    /// the server (tus concatenation): only when asked, as the server then copies the
    /// partials into the file, which costs more than it saves on a short path.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u8).range(1..=16))]
    streams: Option<u8>,
    /// Attempts per file before giving up (network errors and 5xx are retried with
    /// exponential backoff and jitter; 4xx never).
    #[arg(long, value_name = "N", default_value = "10")]
    retries: u32,
    /// Longest wait between attempts, in seconds.
    #[arg(long, value_name = "SECONDS", default_value = "30")]
    max_retry_delay: u64,
    /// Where upload resume state is kept (default: $XDG_STATE_HOME/fallback).
    #[arg(long, value_name = "DIR")]
    state_dir: Option<PathBuf>,
    /// Most bytes per second per file, like 20M or 500k (default: the URL's targetrate,
    /// else unlimited).
    #[arg(long, value_name = "RATE", value_parser = parse_rate)]
    limit_rate: Option<u64>,
    /// Print one JSON object per event on standard output (the decision lines stay on
    /// standard error).
    #[arg(long)]
    json: bool,
    /// Print nothing but errors and the final summary: no decision or retry lines.
    /// Without -q they go to standard error, one line each, also when it is a log file
    /// or a pipe (progress bars only on a terminal).
    #[arg(long, short = 'q')]
    quiet: bool,
}

#[derive(Debug, Args)]
pub(crate) struct UploadArgs {
    /// The FASP URL (with token, fallback=yes and httpport); its path is the
    /// destination directory.
    url: String,
    /// Files and directories to send (directories keep their layout).
    #[arg(required = true)]
    sources: Vec<PathBuf>,
    #[command(flatten)]
    opts: TransferArgs,
}

#[derive(Debug, Args)]
pub(crate) struct DownloadArgs {
    /// The FASP URL; its path is the remote file or directory.
    url: String,
    /// Local destination: a directory (default: the current one) or a file name.
    #[arg(default_value = ".")]
    dest: PathBuf,
    #[command(flatten)]
    opts: TransferArgs,
}

#[derive(Debug, Args)]
pub(crate) struct DoctorArgs {
    /// The FASP URL to check.
    url: String,
    /// The server's aspera.conf, to check <WEB> against <http_server> and reach each
    /// s3:// docroot's bucket from this host (run it on the server's host for that).
    #[arg(long, short = 'c', value_name = "FILE")]
    config: Option<PathBuf>,
    /// Also trust the CA certificates in this PEM file.
    #[arg(long, value_name = "FILE")]
    cacert: Option<PathBuf>,
    /// Check trust as a client given these pins would (`sha256:BASE64`).
    #[arg(long, value_name = "sha256:BASE64", value_parser = fallback_client::parse_pin)]
    pin: Vec<fallback_client::Pin>,
    /// Print the checks as JSON.
    #[arg(long)]
    json: bool,
}

fn parse_rate(s: &str) -> Result<u64, String> {
    let (num, mult) = match s.trim().char_indices().last() {
        Some((i, 'k' | 'K')) => (&s[..i], 1_000),
        Some((i, 'm' | 'M')) => (&s[..i], 1_000_000),
        Some((i, 'g' | 'G')) => (&s[..i], 1_000_000_000),
        _ => (s, 1),
    };
    num.trim()
        .parse::<u64>()
        .ok()
        .filter(|n| *n > 0)
        .map(|n| n * mult)
        .ok_or_else(|| format!("{s:?}: write bytes per second, like 500k or 20M"))
}

fn options(a: &TransferArgs) -> Options {
    Options {
        force_http: a.force_http,
        cacert: a.cacert.clone(),
        pins: a.pin.clone(),
        insecure: a.insecure,
        parallel: a.parallel.max(1),
        streams: a.streams.map(usize::from),
        retry: Retry {
            attempts: a.retries.max(1),
            max: Duration::from_secs(a.max_retry_delay.max(1)),
            ..Retry::default()
        },
        state_dir: a.state_dir.clone(),
        rate_limit: a.limit_rate,
        ..Options::default()
    }
}

/// One line on standard error for what a log must show whatever the output is (a
/// file, cron, CI): the decisions, retries and failures. `None` for the rest.
fn log_line(e: &Event) -> Option<String> {
    match e {
        Event::Decision { message } => Some(format!("fallback: {message}")),
        Event::Retry {
            path,
            attempt,
            delay_ms,
            error,
        } => Some(format!(
            "fallback: {path}: attempt {attempt} failed ({error}); retrying in {}.{} s",
            delay_ms / 1000,
            (delay_ms % 1000) / 100
        )),
        Event::FileFailed { path, error } => Some(format!("fallback: failed: {path}: {error}")),
        _ => None,
    }
}

/// Renders events: progress bars on a terminal; otherwise (a log file, a pipe, cron)
/// one line per decision, retry and failure on standard error, and with --json one JSON
/// object per event on standard output as well. -q: failures only.
fn renderer(a: &TransferArgs) -> Events {
    let quiet = a.quiet;
    let lines = move |e: &Event| {
        if let Some(line) = log_line(e)
            && (!quiet || matches!(e, Event::FileFailed { .. }))
        {
            eprintln!("{line}");
        }
    };
    if a.json {
        return Arc::new(move |e: &Event| {
            lines(e);
            if let Ok(line) = serde_json::to_string(e) {
                let _ = crate::write_stdout(&format!("{line}\n"));
            }
        });
    }
    let tty = std::io::stderr().is_terminal();
    if a.quiet || !tty {
        return Arc::new(lines);
    }
    let mp = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
    let style = ProgressStyle::with_template(
        "{msg:30!} [{bar:30}] {bytes:>10}/{total_bytes:<10} {bytes_per_sec:>12} {eta:>4}",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar())
    .progress_chars("=> ");
    let total = mp.add(ProgressBar::new(0));
    total.set_style(style.clone());
    total.set_message("total");
    let bars: Mutex<HashMap<String, (ProgressBar, u64)>> = Mutex::new(HashMap::new());
    Arc::new(move |e: &Event| match e {
        Event::Decision { message } => {
            let _ = mp.println(format!("· {message}"));
        }
        Event::Plan { files, bytes } => {
            total.set_length(*bytes);
            total.set_message(format!("total ({files} files)"));
        }
        Event::FileStart {
            path,
            size,
            resumed_from,
        } => {
            let mut b = bars
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let (bar, last) = b.entry(path.clone()).or_insert_with(|| {
                let bar = mp.insert_before(&total, ProgressBar::new(*size));
                bar.set_style(style.clone());
                bar.set_message(path.clone());
                (bar, 0)
            });
            if *resumed_from > *last {
                total.inc(resumed_from - *last);
            }
            *last = *resumed_from;
            bar.set_position(*resumed_from);
        }
        Event::Progress { path, done, .. } => {
            let mut b = bars
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if let Some((bar, last)) = b.get_mut(path) {
                total.inc(done.saturating_sub(*last));
                *last = *done;
                bar.set_position(*done);
            }
        }
        Event::Retry {
            path,
            attempt,
            delay_ms,
            error,
        } => {
            let _ = mp.println(format!(
                "! {path}: attempt {attempt} failed ({error}); retrying in {}.{} s",
                delay_ms / 1000,
                (delay_ms % 1000) / 100
            ));
        }
        Event::FileDone { path, .. } => {
            let b = bars
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if let Some((bar, _)) = b.get(path) {
                bar.finish_and_clear();
            }
        }
        Event::FileFailed { path, error } => {
            let _ = mp.println(format!("✗ {path}: {error}"));
        }
        _ => {}
    })
}

fn report(summary: &Summary, json: bool, verb: &str) -> u8 {
    if json {
        let line = serde_json::json!({"event": "summary", "summary": summary});
        let _ = crate::write_stdout(&format!("{line}\n"));
    } else {
        let _ = crate::write_stdout(&format!(
            "{verb} {} file(s), {} bytes ({} bytes moved by this run){}\n",
            summary.files,
            summary.bytes,
            summary.transferred,
            if summary.failed.is_empty() {
                String::new()
            } else {
                format!("; {} failed", summary.failed.len())
            }
        ));
    }
    if summary.failed.is_empty() {
        exit::OK
    } else {
        exit::FINDINGS
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

/// Exit status when HTTP fallback cannot even start (bad URL, fallback not allowed).
pub(crate) const NO_FALLBACK: u8 = 3;

fn open(url: &str, a: &TransferArgs, rt: &tokio::runtime::Runtime) -> Result<Session, u8> {
    let events = renderer(a);
    match rt.block_on(Session::open(url, options(a), events)) {
        Ok(s) => Ok(s),
        Err(e) => {
            eprintln!("fallback: {e}");
            Err(NO_FALLBACK)
        }
    }
}

pub(crate) fn upload(a: &UploadArgs) -> anyhow::Result<u8> {
    let rt = runtime()?;
    let session = match open(&a.url, &a.opts, &rt) {
        Ok(s) => s,
        Err(code) => return Ok(code),
    };
    match rt.block_on(session.upload(&a.sources)) {
        Ok(s) => Ok(report(&s, a.opts.json, "uploaded")),
        Err(e) => {
            eprintln!("fallback: {e}");
            Ok(if e.is_retryable() {
                exit::FINDINGS
            } else {
                exit::FAILURE
            })
        }
    }
}

pub(crate) fn download(a: &DownloadArgs) -> anyhow::Result<u8> {
    let rt = runtime()?;
    let session = match open(&a.url, &a.opts, &rt) {
        Ok(s) => s,
        Err(code) => return Ok(code),
    };
    match rt.block_on(session.download(&a.dest)) {
        Ok(s) => Ok(report(&s, a.opts.json, "downloaded")),
        Err(e) => {
            eprintln!("fallback: {e}");
            Ok(exit::FINDINGS)
        }
    }
}

pub(crate) fn doctor(a: &DoctorArgs) -> anyhow::Result<u8> {
    let rt = runtime()?;
    let conf = a
        .config
        .as_deref()
        .map(crate::token::load_config)
        .transpose()?;
    let opts = Options {
        cacert: a.cacert.clone(),
        pins: a.pin.clone(),
        ssh_probe_timeout: Duration::from_secs(2),
        connect_timeout: Duration::from_secs(5),
        ..Options::default()
    };
    let mut checks = rt.block_on(fallback_client::doctor(&a.url, conf.as_ref(), &opts));
    // The server's object-storage docroots, reached from here: the bucket must be
    // reachable with the credentials it would use and writable.
    if let Some(conf) = &conf {
        for d in fallback_server::bucket_findings(conf) {
            let ok = !d.is_error();
            checks.push(fallback_client::Check {
                name: "bucket".to_owned(),
                verdict: if ok { Verdict::Pass } else { Verdict::Fail },
                detail: d.message.clone(),
                fix: (!ok).then(|| {
                    "run this on the server's host (its credentials and network), and see \
                     docs/operations.md, \"Object-storage docroots\""
                        .to_owned()
                }),
            });
        }
    }
    let failed = checks.iter().any(|c| c.verdict == Verdict::Fail);
    let mut out = String::new();
    if a.json {
        out = serde_json::to_string_pretty(&serde_json::json!({
            "fallback_works": !failed,
            "checks": checks,
        }))? + "\n";
    } else {
        for c in &checks {
            let mark = match c.verdict {
                Verdict::Pass => "ok  ",
                Verdict::Info => "info",
                Verdict::Warn => "warn",
                Verdict::Fail => "FAIL",
            };
            outln!(out, "[{mark}] {}: {}", c.name, c.detail);
            if let Some(fix) = &c.fix {
                outln!(out, "       fix: {fix}");
            }
        }
        out.push_str(if failed {
            "\nHTTP fallback will not work until the FAIL lines are fixed.\n"
        } else {
            "\nHTTP fallback should work.\n"
        });
    }
    crate::write_stdout(&out)?;
    Ok(if failed { exit::FINDINGS } else { exit::OK })
}
