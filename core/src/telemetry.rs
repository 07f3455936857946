//! Self-telemetry: what happened to every item, as counters kept beside the
//! flow (per ring, hence per CPU, padded apart from other CPUs' counters)
//! and summed here into a [`Stats`] snapshot.
//!
//! Accounting is exact: every span that reached the engine is counted once
//! as `drained`, `dropped` (by reason) or `in_rings`, and
//! `recorded == drained + dropped.total() + in_rings` holds in every snapshot.

use crate::ring::RingCounters;

/// Spans dropped, by reason.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Dropped {
    /// The CPU's ring was full: the exporter fell behind.
    pub ring_full: u64,
    /// The span was larger than half a ring.
    pub too_large: u64,
    /// `record_span` refused an all-zero trace or span id.
    pub invalid: u64,
    /// The write was abandoned because the encoding code panicked (a bug).
    pub aborted: u64,
}

impl Dropped {
    /// All drops.
    pub fn total(&self) -> u64 {
        self.ring_full + self.too_large + self.invalid + self.aborted
    }
}

/// A snapshot of the engine's counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Spans handed to the engine (sampled ones; unsampled spans record
    /// nothing).
    pub recorded: u64,
    /// Spans taken out of the rings by a consumer.
    pub drained: u64,
    /// Spans dropped, by reason.
    pub dropped: Dropped,
    /// Spans committed to a ring and not yet drained.
    pub in_rings: u64,
    /// Ring bytes in use (records, headers, padding), all CPUs.
    pub ring_bytes_used: u64,
}

impl Stats {
    /// Sums per-ring counters, plus drops counted outside the rings.
    pub(crate) fn collect(rings: impl Iterator<Item = RingCounters>, dropped_invalid: u64) -> Self {
        let mut s = Self {
            dropped: Dropped {
                invalid: dropped_invalid,
                ..Dropped::default()
            },
            ..Self::default()
        };
        for r in rings {
            s.drained += r.drained;
            s.in_rings += r.in_ring();
            s.dropped.ring_full += r.dropped_full;
            s.dropped.too_large += r.dropped_too_large;
            s.dropped.aborted += r.dropped_aborted;
            s.ring_bytes_used += r.used_bytes;
        }
        s.recorded = s.drained + s.in_rings + s.dropped.total();
        s
    }
}
