//! Rate caps (aspera.conf `transfer/in|out/bandwidth/flow/target_rate/cap`): one
//! transfer's bytes paced so their average since its start stays under the cap.

use std::time::{Duration, Instant};

/// The pace of one transfer (one request): how long to wait after each block.
#[derive(Debug)]
pub(crate) struct Pace {
    bytes_per_sec: u64,
    start: Instant,
    moved: u64,
}

impl Pace {
    /// A pace of `bytes_per_sec` (at least 1), starting now.
    pub(crate) fn new(bytes_per_sec: u64) -> Self {
        Pace {
            bytes_per_sec: bytes_per_sec.max(1),
            start: Instant::now(),
            moved: 0,
        }
    }

    /// After `n` more bytes, how long to wait so that the bytes moved so far took at
    /// least as long as the cap allows (the first block goes at once).
    pub(crate) fn after(&mut self, n: usize) -> Duration {
        let elapsed = self.start.elapsed();
        self.after_elapsed(n, elapsed)
    }

    /// [`Pace::after`] when `elapsed` has passed since the start.
    fn after_elapsed(&mut self, n: usize, elapsed: Duration) -> Duration {
        self.moved = self.moved.saturating_add(n as u64);
        let secs = self.moved / self.bytes_per_sec;
        let rem = self.moved % self.bytes_per_sec;
        let nanos = u128::from(rem) * 1_000_000_000 / u128::from(self.bytes_per_sec);
        let due = Duration::from_secs(secs)
            + Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX));
        due.saturating_sub(elapsed)
    }

    /// A block size that keeps a paced transfer smooth: about a tenth of a second of
    /// bytes, between 16 KiB and `max`.
    pub(crate) fn block(bytes_per_sec: u64, max: usize) -> usize {
        usize::try_from(bytes_per_sec / 10)
            .unwrap_or(max)
            .clamp(16 << 10, max.max(16 << 10))
    }
}

#[cfg(test)]
mod tests {
    use super::Pace;
    use std::time::Duration;

    #[test]
    fn the_wait_makes_up_the_time_the_bytes_are_due() {
        let mut p = Pace::new(1000);
        // 2,500 bytes at 1,000 bytes/s are due at 2.5 s; 0.1 s has passed.
        assert_eq!(
            p.after_elapsed(2500, Duration::from_millis(100)),
            Duration::from_millis(2400)
        );
        // 500 more are due at 3 s; past it already: no wait.
        assert_eq!(p.after_elapsed(500, Duration::from_secs(4)), Duration::ZERO);
        assert_eq!(Pace::block(1000, 1 << 20), 16 << 10);
        assert_eq!(Pace::block(100 << 20, 1 << 20), 1 << 20);
    }
}
