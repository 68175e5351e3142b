//! One connection's life: the limits hyper does not enforce on its own.
//!
//! - **Idle** (HTTP/1 keep-alive and HTTP/2 alike): a connection with no request in
//!   flight for the header timeout is closed (HTTP/2: GOAWAY first). On HTTP/2 this is
//!   also the header-block timeout: a stream whose HEADERS never ends (no
//!   `END_HEADERS`), or a connection that sent only its preface and SETTINGS, has no
//!   request in flight, so it is cut like an idle one.
//! - **Stalled readers**: a response body that has handed hyper a chunk which hyper has
//!   not come back for within the stall limit means the peer accepts no bytes (a full
//!   socket on HTTP/1, an unopened flow-control window on HTTP/2). The connection is
//!   cut and every buffer it held freed.
//! - **Stalled writes** at the socket ([`StallGuard`]): a write that stays pending for
//!   the stall limit fails, which ends the connection (the tail of a response still in
//!   hyper's buffer, a TLS record).
//!
//! An idle connection is told to close (HTTP/2: GOAWAY) and dropped [`IDLE_GRACE`]
//! later; on shutdown, connections get the drain timeout, then [`CLOSE_GRACE`].

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use bytes::Bytes;
use hyper::body::{Frame, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// Time connections still open when the drain timeout passes have to go.
pub(crate) const CLOSE_GRACE: Duration = Duration::from_secs(5);

/// Time an idle connection has, once told to close (HTTP/2: GOAWAY), before it is
/// dropped: enough to write the GOAWAY, so the close comes within the header timeout.
pub(crate) const IDLE_GRACE: Duration = Duration::from_millis(250);

/// What one connection is doing, shared by its requests and its watchdog.
#[derive(Debug)]
pub(crate) struct Activity {
    start: Instant,
    in_flight: AtomicUsize,
    /// When the connection last became idle (ms since `start`). The watchdog needs no
    /// wake-up when a request ends: it looks at its deadline, and a connection that
    /// went idle meanwhile gets a deadline counted from here.
    idle_since: AtomicU64,
    bodies: Mutex<Vec<Weak<Stamp>>>,
}

/// One response body's state: since when (ms since the connection's start, plus one)
/// it has been waiting for hyper to come back for more; 0 when it is not.
#[derive(Debug, Default)]
struct Stamp(AtomicU64);

/// What the watchdog found.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Keep going; look again at this instant.
    Wait(Instant),
    /// No request in flight for the idle limit.
    Idle,
    /// A response has waited for its reader for the stall limit.
    Stalled,
}

impl Activity {
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(Activity {
            start: Instant::now(),
            in_flight: AtomicUsize::new(0),
            idle_since: AtomicU64::new(0),
            bodies: Mutex::new(Vec::new()),
        })
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn at(&self, ms: u64) -> Instant {
        self.start + Duration::from_millis(ms)
    }

    /// A request arrived: held until its response body is gone.
    pub(crate) fn begin(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        InFlight(Arc::clone(self))
    }

    /// Whether the connection should be closed now, given the limits.
    pub(crate) fn check(&self, idle: Duration, stall: Option<Duration>) -> Verdict {
        let now = self.now_ms();
        let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        let mut next = now.saturating_add(ms(idle));
        if self.in_flight.load(Ordering::SeqCst) == 0 {
            let since = self.idle_since.load(Ordering::SeqCst);
            let due = since.saturating_add(ms(idle));
            if now >= due {
                return Verdict::Idle;
            }
            next = next.min(due);
        }
        if let Some(stall) = stall {
            let bodies = self
                .bodies
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            next = next.min(now.saturating_add(ms(stall)));
            for b in bodies.iter().filter_map(Weak::upgrade) {
                let waiting = b.0.load(Ordering::SeqCst);
                if waiting == 0 {
                    continue;
                }
                let due = (waiting - 1).saturating_add(ms(stall));
                if now >= due {
                    return Verdict::Stalled;
                }
                next = next.min(due);
            }
        }
        Verdict::Wait(self.at(next))
    }

    /// `body`, watched for a reader that stops accepting bytes.
    pub(crate) fn track(self: &Arc<Self>, body: Body, guard: InFlight) -> Body {
        let stamp = Arc::new(Stamp::default());
        let mut bodies = self
            .bodies
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // Pruned here, not only when the watchdog looks: a keep-alive connection
        // serving thousands of requests between two looks would otherwise keep a dead
        // entry for each. What is left is the bodies alive now (one on HTTP/1, at most
        // the concurrent streams on HTTP/2).
        bodies.retain(|w| w.strong_count() > 0);
        bodies.push(Arc::downgrade(&stamp));
        drop(bodies);
        Body::new(Tracked {
            inner: body,
            stamp,
            guard,
        })
    }
}

/// A request in flight on a connection.
#[derive(Debug)]
pub(crate) struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        let a = &self.0;
        if a.in_flight.fetch_sub(1, Ordering::SeqCst) == 1 {
            a.idle_since.store(a.now_ms(), Ordering::SeqCst);
        }
    }
}

/// A response body that stamps when it waits on hyper.
struct Tracked {
    inner: Body,
    stamp: Arc<Stamp>,
    guard: InFlight,
}

impl hyper::body::Body for Tracked {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        let waiting = match &polled {
            // Hyper has a chunk; it is its turn (and the reader's) to come back.
            Poll::Ready(Some(Ok(_))) => self.guard.0.now_ms().saturating_add(1),
            // Our turn (the file is being read), or finished.
            _ => 0,
        };
        self.stamp.0.store(waiting, Ordering::SeqCst);
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A socket whose writes may not stay pending longer than a limit: a peer that accepts
/// no bytes fails the write (`TimedOut`) and so ends the connection.
pub(crate) struct StallGuard<S> {
    inner: S,
    limit: Option<Duration>,
    timer: Option<Pin<Box<Sleep>>>,
    peer: std::net::SocketAddr,
}

impl<S> StallGuard<S> {
    pub(crate) fn new(inner: S, limit: Option<Duration>, peer: std::net::SocketAddr) -> Self {
        StallGuard {
            inner,
            limit,
            timer: None,
            peer,
        }
    }

    /// After a pending write: `Pending` while within the limit, an error past it.
    fn pending<T>(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<T>> {
        let Some(limit) = self.limit else {
            return Poll::Pending;
        };
        let timer = self
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        match timer.as_mut().poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(()) => {
                tracing::info!(
                    peer = %self.peer,
                    after_secs = limit.as_secs(),
                    "stalled reader cut: the peer accepted no bytes"
                );
                crate::stats::connection_cut("stalled");
                Poll::Ready(Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "the peer accepted no bytes within the activity timeout",
                )))
            }
        }
    }

    fn progress<T>(
        &mut self,
        r: Poll<std::io::Result<T>>,
        cx: &mut Context<'_>,
    ) -> Poll<std::io::Result<T>> {
        match r {
            Poll::Pending => self.pending(cx),
            r @ Poll::Ready(_) => {
                self.timer = None;
                r
            }
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for StallGuard<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for StallGuard<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.progress(r, cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.progress(r, cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let r = Pin::new(&mut self.inner).poll_flush(cx);
        self.progress(r, cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let r = Pin::new(&mut self.inner).poll_shutdown(cx);
        self.progress(r, cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn idle_is_reported_after_the_limit_and_not_while_a_request_is_in_flight() {
        let a = Activity::new();
        let idle = Duration::from_secs(10);
        assert!(matches!(a.check(idle, None), Verdict::Wait(_)));
        let g = a.begin();
        tokio::time::advance(Duration::from_secs(11)).await;
        assert!(matches!(a.check(idle, None), Verdict::Wait(_)));
        drop(g);
        assert!(matches!(a.check(idle, None), Verdict::Wait(_)));
        tokio::time::advance(Duration::from_secs(10)).await;
        assert_eq!(a.check(idle, None), Verdict::Idle);
    }

    #[tokio::test]
    async fn finished_bodies_leave_no_entry_behind() {
        let a = Activity::new();
        for _ in 0..1000 {
            let g = a.begin();
            drop(a.track(Body::empty(), g));
        }
        let n = a.bodies.lock().unwrap().len();
        assert!(n <= 1, "{n} entries kept for finished bodies");
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_waiting_on_its_reader_is_stalled_after_the_limit() {
        use http_body_util::BodyExt as _;
        let a = Activity::new();
        let g = a.begin();
        let body = Body::from_stream(futures_util::stream::iter(
            (0..3).map(|_| Ok::<_, std::io::Error>(Bytes::from_static(b"x"))),
        ));
        let mut body = a.track(body, g);
        let stall = Some(Duration::from_secs(5));
        let idle = Duration::from_secs(60);
        body.frame().await.unwrap().unwrap();
        tokio::time::advance(Duration::from_secs(4)).await;
        assert!(matches!(a.check(idle, stall), Verdict::Wait(_)));
        // Hyper came back: the clock restarts.
        body.frame().await.unwrap().unwrap();
        tokio::time::advance(Duration::from_secs(4)).await;
        assert!(matches!(a.check(idle, stall), Verdict::Wait(_)));
        tokio::time::advance(Duration::from_secs(2)).await;
        assert_eq!(a.check(idle, stall), Verdict::Stalled);
        drop(body);
        assert!(matches!(a.check(idle, stall), Verdict::Wait(_)));
    }
}
