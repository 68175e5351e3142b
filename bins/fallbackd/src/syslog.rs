//! Logs to syslog (facility local2, as the real product uses), next to standard error:
//! each event becomes one RFC 3164 datagram `<PRI>TAG[PID]: message` on the syslog
//! socket (`/dev/log` by default); the tag is `fallbackd` unless `--syslog-tag` says
//! otherwise (`asperahttpd`, for rules and monitoring written for the real product).

use std::io;
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::sync::Arc;

use tracing::{Level, Metadata};
use tracing_subscriber::fmt::MakeWriter;

/// Facility local2 (18), shifted as the priority wants it.
const LOCAL2: u8 = 18 << 3;

/// Sends formatted events to a syslog socket.
#[derive(Debug, Clone)]
pub(crate) struct Syslog {
    socket: Arc<UnixDatagram>,
    pid: u32,
    tag: Arc<str>,
}

impl Syslog {
    /// Connects to the syslog socket at `path`; lines are tagged `tag`.
    pub(crate) fn connect(path: &Path, tag: &str) -> io::Result<Self> {
        let socket = UnixDatagram::unbound()?;
        socket.connect(path)?;
        Ok(Syslog {
            socket: Arc::new(socket),
            pid: std::process::id(),
            tag: Arc::from(tag),
        })
    }
}

/// One event's writer: buffers the formatted line, sends it as one datagram on drop.
#[derive(Debug)]
pub(crate) struct Line {
    syslog: Syslog,
    severity: u8,
    buf: Vec<u8>,
}

impl io::Write for Line {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for Line {
    fn drop(&mut self) {
        let text = String::from_utf8_lossy(&self.buf);
        let text = text.trim_end();
        if text.is_empty() {
            return;
        }
        let msg = format!(
            "<{}>{}[{}]: {text}",
            LOCAL2 | self.severity,
            self.syslog.tag,
            self.syslog.pid
        );
        // A syslog that is down must not stop the daemon: the line still went to stderr.
        let _ = self.syslog.socket.send(msg.as_bytes());
    }
}

fn severity(level: Level) -> u8 {
    match level {
        Level::ERROR => 3,
        Level::WARN => 4,
        Level::INFO => 6,
        Level::DEBUG | Level::TRACE => 7,
    }
}

impl<'a> MakeWriter<'a> for Syslog {
    type Writer = Line;

    fn make_writer(&'a self) -> Line {
        Line {
            syslog: self.clone(),
            severity: 6,
            buf: Vec::new(),
        }
    }

    fn make_writer_for(&'a self, meta: &Metadata<'_>) -> Line {
        Line {
            syslog: self.clone(),
            severity: severity(*meta.level()),
            buf: Vec::new(),
        }
    }
}

/// Checks a syslog tag as RFC 3164 writes it: 1 to 32 letters, digits, `-`, `_`, `.`.
pub(crate) fn parse_tag(s: &str) -> Result<String, String> {
    if s.is_empty()
        || s.len() > 32
        || !s
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Err(format!(
            "{s:?}: a syslog tag is 1 to 32 letters, digits, '-', '_' or '.'"
        ));
    }
    Ok(s.to_owned())
}
