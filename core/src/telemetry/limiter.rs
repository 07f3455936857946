//! A lock-free rate limiter for diagnostics, so that a failing collector
//! cannot flood the application's logs: at most one event per interval
//! passes, and the next one that passes says how many were held back.
//!
//! Two atomics: the earliest time (nanoseconds since the limiter was made)
//! at which the next event may pass, and the count of events held back
//! since the last one passed. Among threads racing at the same moment, the
//! one whose compare-exchange moves that time forward passes; the others
//! are counted.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How often each kind of diagnostic may be logged.
pub(crate) const DIAGNOSTIC_INTERVAL: Duration = Duration::from_secs(10);

/// Lets one event through per interval.
#[derive(Debug)]
pub(crate) struct RateLimiter {
    origin: Instant,
    interval_nanos: u64,
    /// Nanoseconds since `origin` before which events are held back.
    next: AtomicU64,
    /// Events held back since the last one passed.
    suppressed: AtomicU64,
}

impl RateLimiter {
    /// A limiter passing one event per `interval`; the first passes.
    pub(crate) fn new(interval: Duration) -> Self {
        Self {
            origin: Instant::now(),
            interval_nanos: u64::try_from(interval.as_nanos()).unwrap_or(u64::MAX),
            next: AtomicU64::new(0),
            suppressed: AtomicU64::new(0),
        }
    }

    /// Whether an event happening now may be logged: if so, how many were
    /// held back since the last one logged.
    pub(crate) fn admit(&self) -> Option<u64> {
        let now = Instant::now().saturating_duration_since(self.origin);
        self.admit_at(u64::try_from(now.as_nanos()).unwrap_or(u64::MAX))
    }

    /// [`admit`](Self::admit) for an event at `now` nanoseconds after the
    /// limiter was made.
    pub(crate) fn admit_at(&self, now: u64) -> Option<u64> {
        // Relaxed (all): the limiter only decides whether to log; no data
        // is published through it. The compare-exchange alone arbitrates
        // between racing threads, and a count added just as another thread
        // takes the total is reported with the next event instead.
        let next = self.next.load(Ordering::Relaxed);
        if now >= next
            && self
                .next
                .compare_exchange(
                    next,
                    now.saturating_add(self.interval_nanos),
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                )
                .is_ok()
        {
            return Some(self.suppressed.swap(0, Ordering::Relaxed));
        }
        self.suppressed.fetch_add(1, Ordering::Relaxed);
        None
    }

    /// Takes the count of events held back and not reported yet (to report
    /// them when nothing more will come, at shutdown).
    pub(crate) fn take_suppressed(&self) -> u64 {
        // Relaxed: as in `admit_at`.
        self.suppressed.swap(0, Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: u64 = 1_000_000_000;

    #[test]
    fn one_event_per_interval_then_the_count_held_back() {
        let l = RateLimiter::new(Duration::from_secs(10));
        assert_eq!(l.admit_at(0), Some(0), "the first passes");
        for t in 1..=5 {
            assert_eq!(l.admit_at(t * SECOND), None);
        }
        assert_eq!(
            l.admit_at(10 * SECOND - 1),
            None,
            "just before the interval"
        );
        assert_eq!(
            l.admit_at(10 * SECOND),
            Some(6),
            "reports the six held back"
        );
        assert_eq!(l.admit_at(11 * SECOND), None);
        assert_eq!(l.take_suppressed(), 1);
        assert_eq!(l.take_suppressed(), 0);
        assert_eq!(l.admit_at(100 * SECOND), Some(0));
    }

    #[test]
    fn racing_threads_let_exactly_one_through() {
        let l = RateLimiter::new(Duration::from_secs(3600));
        let passed = std::sync::atomic::AtomicU64::new(0);
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for _ in 0..1000 {
                        if l.admit().is_some() {
                            passed.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                });
            }
        });
        assert_eq!(passed.load(Ordering::Relaxed), 1);
        assert_eq!(l.take_suppressed(), 3999);
    }

    #[test]
    fn a_huge_interval_never_overflows() {
        let l = RateLimiter::new(Duration::MAX);
        assert_eq!(l.admit_at(5), Some(0));
        assert_eq!(l.admit_at(u64::MAX - 1), None);
    }
}
