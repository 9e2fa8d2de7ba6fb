//! Time, read in one place. Code with time-based rules (throttles, expiry, schedules) takes a
//! [`Clock`] (or a `now` passed in) so tests can move time by hand instead of sleeping.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Seconds since the Unix epoch.
pub fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A source of "now": wall-clock Unix seconds (expiry, schedules, audit times) and a
/// monotonic instant (throttle delays).
pub trait Clock: Send + Sync + std::fmt::Debug {
    fn now_secs(&self) -> u64;
    fn monotonic(&self) -> Instant;
}

/// The system's wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_secs(&self) -> u64 {
        now_secs()
    }
    fn monotonic(&self) -> Instant {
        Instant::now()
    }
}

/// A clock that only moves when told to: for tests of time-based rules without sleeping.
/// Clones share the same time.
#[derive(Debug, Clone)]
pub struct ManualClock {
    unix: Arc<AtomicU64>,
    /// Milliseconds moved since `base`.
    moved_ms: Arc<AtomicU64>,
    base: Instant,
}

impl ManualClock {
    /// Stands still at `unix_secs` until moved.
    pub fn at(unix_secs: u64) -> ManualClock {
        ManualClock {
            unix: Arc::new(AtomicU64::new(unix_secs)),
            moved_ms: Arc::new(AtomicU64::new(0)),
            base: Instant::now(),
        }
    }
    /// Moves both the wall clock and the monotonic clock forward.
    pub fn advance(&self, by: Duration) {
        let ms = u64::try_from(by.as_millis()).unwrap_or(u64::MAX);
        self.moved_ms.fetch_add(ms, Ordering::SeqCst);
        self.unix.fetch_add(by.as_secs(), Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_secs(&self) -> u64 {
        self.unix.load(Ordering::SeqCst)
    }
    fn monotonic(&self) -> Instant {
        self.base + Duration::from_millis(self.moved_ms.load(Ordering::SeqCst))
    }
}

/// The clock most code uses: shared, cheap to clone.
pub type SharedClock = Arc<dyn Clock>;

/// The system clock as a [`SharedClock`].
pub fn system() -> SharedClock {
    Arc::new(SystemClock)
}
