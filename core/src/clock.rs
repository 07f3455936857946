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
//!
//! `minstant::Anchor::new` panics on a wall clock before 1970; the anchor is
//! only taken when the clock reads later than that.

use std::time::{SystemTime, UNIX_EPOCH};

/// Converts monotonic TSC readings to Unix nanoseconds.
pub(crate) struct Clock {
    /// `None` when the wall clock reads before 1970 (where `Anchor::new`
    /// would panic): timestamps then come from the OS clock, saturated at 0.
    #[cfg(not(miri))]
    anchor: Option<minstant::Anchor>,
}

impl Clock {
    pub(crate) fn new() -> Self {
        Self {
            #[cfg(not(miri))]
            anchor: (system_unix_nanos() > 0).then(minstant::Anchor::new),
        }
    }

    /// Now, in nanoseconds since the Unix epoch.
    #[inline]
    pub(crate) fn now_unix_nanos(&self) -> u64 {
        // One TSC read and one float multiply (no Duration division).
        #[cfg(not(miri))]
        if let Some(anchor) = &self.anchor {
            return minstant::Instant::now().as_unix_nanos(anchor);
        }
        // Miri cannot execute `rdtsc`.
        system_unix_nanos()
    }
}

fn system_unix_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}
