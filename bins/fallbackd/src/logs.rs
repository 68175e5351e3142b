//! Logs: standard error (text or JSON), and syslog when asked.

use crate::args::LogFormat;
use crate::syslog;

pub(crate) fn init_logs(format: LogFormat, syslog: Option<&std::path::Path>) {
    use tracing_subscriber::Layer as _;
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    let filter = tracing_subscriber::EnvFilter::try_from_env("FALLBACKD_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colour only for a person at a terminal, and never with NO_COLOR (no-color.org):
    // a log file or a pipe gets plain text.
    let colour = std::io::IsTerminal::is_terminal(&std::io::stderr())
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let stderr = match format {
        LogFormat::Text => tracing_subscriber::fmt::layer()
            .with_ansi(colour)
            .with_writer(std::io::stderr)
            .boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .with_ansi(false)
            .flatten_event(true)
            .with_writer(std::io::stderr)
            .boxed(),
    };
    let mut failed = None;
    let syslog = syslog.and_then(|path| match syslog::Syslog::connect(path) {
        Ok(w) => Some(
            // syslog stamps the time itself.
            tracing_subscriber::fmt::layer()
                .without_time()
                .with_ansi(false)
                .with_target(false)
                .with_writer(w),
        ),
        Err(e) => {
            failed = Some(format!("{}: {e}", path.display()));
            None
        }
    });
    tracing_subscriber::registry()
        .with(filter)
        .with(stderr)
        .with(syslog)
        .init();
    if let Some(why) = failed {
        tracing::warn!("no syslog ({why}): logging to standard error only");
    }
}
