//! Logs: standard error (text or JSON), and syslog when asked.

use crate::args::LogFormat;
use crate::syslog;

/// Starts logging; lines reach standard error until the returned guard is dropped
/// (which writes what is still queued).
#[must_use = "dropping the guard stops the log writer"]
pub(crate) fn init_logs(
    format: LogFormat,
    syslog: Option<&std::path::Path>,
    tag: &str,
) -> LogGuard {
    use tracing_subscriber::Layer as _;
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    let filter = tracing_subscriber::EnvFilter::try_from_env("FALLBACKD_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colour only for a person at a terminal, and never with NO_COLOR (no-color.org):
    // a log file or a pipe gets plain text.
    let colour = std::io::IsTerminal::is_terminal(&std::io::stderr())
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let (writer, guard) = Batched::start(std::io::stderr());
    let stderr = match format {
        LogFormat::Text => tracing_subscriber::fmt::layer()
            .with_ansi(colour)
            .with_writer(writer)
            .boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .with_ansi(false)
            .flatten_event(true)
            .with_writer(writer)
            .boxed(),
    };
    let mut failed = None;
    let syslog = syslog.and_then(|path| match syslog::Syslog::connect(path, tag) {
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
    guard
}

/// Most bytes of log lines queued for the writer thread; past it, loggers wait for the
/// writer (a log pipe nobody reads slows the server down, it never loses lines or
/// grows memory without bound).
const QUEUE_BOUND: usize = 1 << 20;

/// How long the writer, woken by a line, waits for more before writing: a line reaches
/// the log at most this late, and the writer wakes at most this often.
const GATHER: std::time::Duration = std::time::Duration::from_millis(1);

/// A batch this large is written without waiting for more.
const GATHER_BYTES: usize = 64 * 1024;

/// A log destination written by a thread of its own. A line is appended to a queue on
/// the thread that logs it (one per request under load); the writer thread writes
/// everything that arrived while it wrote the previous batch in one `write`. Under
/// load that is one syscall for many requests instead of one per request, off the
/// request's path, and at most one wake-up of the writer per [`GATHER`].
#[derive(Clone)]
pub(crate) struct Batched(std::sync::Arc<Queue>);

struct Queue {
    state: std::sync::Mutex<QueueState>,
    /// The writer waits here for lines.
    lines: std::sync::Condvar,
    /// Loggers wait here for room (the queue at its bound).
    room: std::sync::Condvar,
}

#[derive(Default)]
struct QueueState {
    buf: Vec<u8>,
    /// The writer is waiting for lines (so a logger must wake it).
    idle: bool,
    /// No more lines: the writer writes what is queued and ends.
    closed: bool,
}

/// Ends the writer thread after it has written every queued line.
pub(crate) struct LogGuard {
    queue: Batched,
    writer: Option<std::thread::JoinHandle<()>>,
}

impl Drop for LogGuard {
    fn drop(&mut self) {
        if let Ok(mut st) = self.queue.0.state.lock() {
            st.closed = true;
        }
        self.queue.0.lines.notify_one();
        if let Some(w) = self.writer.take() {
            let _ = w.join();
        }
    }
}

impl Batched {
    /// A queue written to `out` by a new thread.
    pub(crate) fn start(out: impl std::io::Write + Send + 'static) -> (Batched, LogGuard) {
        let queue = Batched(std::sync::Arc::new(Queue {
            state: std::sync::Mutex::new(QueueState::default()),
            lines: std::sync::Condvar::new(),
            room: std::sync::Condvar::new(),
        }));
        let q = queue.clone();
        let writer = std::thread::Builder::new()
            .name("log-writer".to_owned())
            .spawn(move || q.write_all_to(out))
            .ok();
        if writer.is_none() {
            // No thread: loggers would wait forever; write in place instead.
            if let Ok(mut st) = queue.0.state.lock() {
                st.closed = true;
            }
        }
        (queue.clone(), LogGuard { queue, writer })
    }

    fn write_all_to(&self, mut out: impl std::io::Write) {
        let mut batch = Vec::new();
        loop {
            {
                let Ok(mut st) = self.0.state.lock() else {
                    return;
                };
                while st.buf.is_empty() && !st.closed {
                    st.idle = true;
                    st = match self.0.lines.wait(st) {
                        Ok(st) => st,
                        Err(_) => return,
                    };
                }
                st.idle = false;
                if st.buf.is_empty() {
                    return;
                }
                if !st.closed && st.buf.len() < GATHER_BYTES {
                    // Woken by a first line: let the lines that follow it join the
                    // batch (loggers do not wake a writer that is not idle).
                    drop(st);
                    std::thread::sleep(GATHER);
                    let Ok(again) = self.0.state.lock() else {
                        return;
                    };
                    st = again;
                }
                std::mem::swap(&mut st.buf, &mut batch);
            }
            self.0.room.notify_all();
            // A failed write (a closed pipe) drops the batch, as a direct write would.
            let _ = out.write_all(&batch).and_then(|()| out.flush());
            batch.clear();
            // Keep one batch's worth of capacity, not the largest burst's.
            batch.shrink_to(QUEUE_BOUND);
        }
    }

    fn push(&self, line: &[u8]) -> std::io::Result<()> {
        let mut st = self
            .0
            .state
            .lock()
            .map_err(|_| std::io::Error::other("log queue poisoned"))?;
        loop {
            if st.closed {
                // The writer has ended (or never started): write directly.
                drop(st);
                return std::io::Write::write_all(&mut std::io::stderr(), line);
            }
            if st.buf.len() < QUEUE_BOUND {
                break;
            }
            st = self
                .0
                .room
                .wait(st)
                .map_err(|_| std::io::Error::other("log queue poisoned"))?;
        }
        st.buf.extend_from_slice(line);
        let wake = std::mem::take(&mut st.idle);
        drop(st);
        if wake {
            self.0.lines.notify_one();
        }
        Ok(())
    }
}

impl std::io::Write for Batched {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.push(buf)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Batched {
    type Writer = Batched;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;
    use std::sync::{Arc, Mutex};

    use super::*;

    /// A writer that records what it is given, one entry per `write_all`.
    #[derive(Clone, Default)]
    struct Record(Arc<Mutex<Vec<Vec<u8>>>>);

    impl std::io::Write for Record {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().push(buf.to_vec());
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn every_line_is_written_once_in_order_by_the_time_the_guard_is_dropped() {
        let out = Record::default();
        let (w, guard) = Batched::start(out.clone());
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let mut w = w.clone();
                std::thread::spawn(move || {
                    for i in 0..5000 {
                        w.write_all(format!("{t} {i:05} {}\n", "x".repeat(i % 300)).as_bytes())
                            .unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        drop(guard);
        let all: Vec<u8> = out.0.lock().unwrap().concat();
        let text = String::from_utf8(all).unwrap();
        let mut next = [0usize; 4];
        for line in text.lines() {
            let mut f = line.split(' ');
            let t: usize = f.next().unwrap().parse().unwrap();
            let i: usize = f.next().unwrap().parse().unwrap();
            assert_eq!(
                i, next[t],
                "thread {t}'s lines in order, none lost or doubled"
            );
            assert_eq!(f.next().unwrap().len(), i % 300, "line {t} {i} whole");
            next[t] += 1;
        }
        assert_eq!(next, [5000; 4]);
    }

    #[test]
    fn lines_are_batched_when_they_arrive_faster_than_they_are_written() {
        /// A writer whose first write waits until told to go on.
        #[derive(Clone)]
        struct Gate(Record, Arc<std::sync::Barrier>, Arc<std::sync::Barrier>);
        impl std::io::Write for Gate {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                if self.0.0.lock().unwrap().is_empty() {
                    self.1.wait(); // the writer is busy with its first batch
                    self.2.wait(); // ... until the test has queued more
                }
                self.0.write(buf)
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let out = Record::default();
        let (busy, go) = (
            Arc::new(std::sync::Barrier::new(2)),
            Arc::new(std::sync::Barrier::new(2)),
        );
        let (mut w, guard) = Batched::start(Gate(out.clone(), Arc::clone(&busy), Arc::clone(&go)));
        w.write_all(b"first\n").unwrap();
        busy.wait();
        for i in 0..100 {
            w.write_all(format!("line {i}\n").as_bytes()).unwrap();
        }
        go.wait();
        drop(guard);
        let writes = out.0.lock().unwrap().clone();
        assert_eq!(writes.len(), 2, "the first line, then one batch of 100");
        let text = String::from_utf8(writes[1].clone()).unwrap();
        assert_eq!(text.lines().count(), 100);
    }

    #[test]
    fn a_full_queue_makes_loggers_wait_and_loses_nothing() {
        let out = Record::default();
        let (w, guard) = Batched::start(out.clone());
        let line = vec![b'y'; 64 * 1024 - 1];
        let mut w2 = w.clone();
        let total = 64; // 4 MiB through a 1 MiB queue
        let t = std::thread::spawn(move || {
            for _ in 0..total {
                w2.write_all(&line).unwrap();
                w2.write_all(b"\n").unwrap();
            }
        });
        t.join().unwrap();
        drop(guard);
        let all: Vec<u8> = out.0.lock().unwrap().concat();
        assert_eq!(all.len(), total * 64 * 1024);
    }
}
