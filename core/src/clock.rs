//! Wall-clock timestamps for spans, cheaply.
//!
//! `clock_gettime(CLOCK_REALTIME)` costs ~22 ns on the machines we measure on,
//! and a span needs two timestamps. The clock instead reads the TSC through
//! `minstant` (~10 ns; it falls back to the OS clock where the TSC is not
//! stable) and converts to Unix nanoseconds from an anchor taken when the
//! engine is built: `unix = anchor_unix + (now - anchor_instant)`.
//!
//! The anchor does not follow later wall-clock steps (NTP slews, manual
//! changes); durations stay exact, the absolute time can drift by what the
//! wall clock was adjusted since the engine started.

use std::time::{SystemTime, UNIX_EPOCH};

/// Converts monotonic TSC readings to Unix nanoseconds.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Clock {
    unix_nanos: u64,
    #[cfg(not(miri))]
    instant: minstant::Instant,
}

impl Clock {
    pub(crate) fn new() -> Self {
        Self {
            // A clock before 1970 is reported as 0 rather than panicking.
            unix_nanos: system_unix_nanos(),
            #[cfg(not(miri))]
            instant: minstant::Instant::now(),
        }
    }

    /// Now, in nanoseconds since the Unix epoch.
    #[inline]
    pub(crate) fn now_unix_nanos(&self) -> u64 {
        #[cfg(not(miri))]
        {
            let since = minstant::Instant::now().saturating_duration_since(self.instant);
            self.unix_nanos + since.as_nanos() as u64
        }
        #[cfg(miri)]
        {
            // Miri cannot execute `rdtsc`.
            let _ = self.unix_nanos;
            system_unix_nanos()
        }
    }
}

fn system_unix_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}
