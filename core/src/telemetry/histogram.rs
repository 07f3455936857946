//! A lock-free histogram with fixed bucket bounds, for the export side's
//! latency and size distributions.
//!
//! One `AtomicU64` per bucket plus one for the sum, all updated with
//! Relaxed `fetch_add`: any thread records (the I/O thread, workers) and
//! any thread takes a snapshot (the admin endpoint, `Engine::stats`), with
//! no lock and no allocation after construction. Fixed bounds are what the
//! Prometheus text format needs anyway (cumulative `le` buckets).
//! hdrhistogram would give finer quantiles, but its `Histogram::record`
//! takes `&mut self`: sharing one between the I/O thread and scrapers
//! would need a lock or a copy per thread merged on read.
//!
//! Values are integers in the histogram's unit (nanoseconds, spans,
//! bytes). A snapshot derives the count from the buckets it read, so its
//! cumulative buckets always end at its count; the sum, read separately,
//! may be off by observations made while the snapshot was taken.

use std::sync::atomic::{AtomicU64, Ordering};

/// A histogram whose bucket bounds are fixed at construction.
#[derive(Debug)]
pub(crate) struct Histogram {
    bounds: &'static [u64],
    /// `counts[i]`: observations in `(bounds[i - 1], bounds[i]]`; the last
    /// one, observations above every bound.
    counts: Box<[AtomicU64]>,
    sum: AtomicU64,
}

impl Histogram {
    /// An empty histogram with these upper bounds (ascending).
    pub(crate) fn new(bounds: &'static [u64]) -> Self {
        debug_assert!(bounds.windows(2).all(|w| w[0] < w[1]), "ascending");
        Self {
            bounds,
            counts: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum: AtomicU64::new(0),
        }
    }

    /// Counts one observation of `value`.
    #[cfg_attr(not(feature = "export"), allow(dead_code))]
    pub(crate) fn record(&self, value: u64) {
        // The first bucket whose bound is at least `value`: Prometheus
        // buckets are "less than or equal".
        let i = self.bounds.partition_point(|&b| b < value);
        // Relaxed (both): statistics; nothing is published through them,
        // and a snapshot repairs what it could see torn (see the module
        // docs). The sum wraps after 2^64, some 580 years of nanoseconds.
        self.counts[i].fetch_add(1, Ordering::Relaxed);
        self.sum.fetch_add(value, Ordering::Relaxed);
    }

    /// The counts now.
    pub(crate) fn snapshot(&self) -> HistogramSnapshot {
        HistogramSnapshot {
            bounds: self.bounds,
            // Relaxed (all): statistics, see `record`.
            counts: self
                .counts
                .iter()
                .map(|c| c.load(Ordering::Relaxed))
                .collect(),
            sum: self.sum.load(Ordering::Relaxed),
        }
    }
}

/// A histogram's counts at one moment, in the histogram's unit.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct HistogramSnapshot {
    /// The buckets' upper bounds (inclusive), ascending; a last bucket
    /// above them all is implied.
    pub bounds: &'static [u64],
    /// Observations per bucket, not cumulative: `counts[i]` in
    /// `(bounds[i - 1], bounds[i]]`, the last entry above every bound.
    /// `bounds.len() + 1` entries.
    pub counts: Vec<u64>,
    /// The sum of the observations.
    pub sum: u64,
}

impl HistogramSnapshot {
    /// An empty snapshot over `bounds`.
    pub(crate) fn empty(bounds: &'static [u64]) -> Self {
        Self {
            bounds,
            counts: vec![0; bounds.len() + 1],
            sum: 0,
        }
    }

    /// Observations in all.
    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// The cumulative buckets, as Prometheus writes them: each upper bound
    /// (`None` for `+Inf`) with the observations at or below it.
    ///
    /// ```
    /// let s = otlpx::Stats::default();
    /// let buckets: Vec<_> = s.export.batch_spans.cumulative().collect();
    /// assert_eq!(buckets.last(), Some(&(None, 0)));
    /// ```
    pub fn cumulative(&self) -> impl Iterator<Item = (Option<u64>, u64)> + '_ {
        let bounds = self.bounds.iter().map(|&b| Some(b)).chain([None]);
        // A snapshot built by hand may have too few counts: missing ones
        // are zero.
        let counts = self.counts.iter().copied().chain(std::iter::repeat(0));
        bounds.zip(counts).scan(0u64, |total, (bound, n)| {
            *total = total.saturating_add(n);
            Some((bound, *total))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    static BOUNDS: &[u64] = &[10, 100, 1000];

    #[test]
    fn values_land_in_the_first_bucket_at_or_above_them() {
        let h = Histogram::new(BOUNDS);
        for v in [0, 10, 11, 100, 999, 1000, 1001, u64::MAX / 2] {
            h.record(v);
        }
        let s = h.snapshot();
        assert_eq!(s.counts, [2, 2, 2, 2]);
        assert_eq!(s.count(), 8);
        assert_eq!(s.sum, 10 + 11 + 100 + 999 + 1000 + 1001 + u64::MAX / 2);
        let cumulative: Vec<_> = s.cumulative().collect();
        assert_eq!(
            cumulative,
            [(Some(10), 2), (Some(100), 4), (Some(1000), 6), (None, 8)]
        );
    }

    #[test]
    fn empty_and_short_snapshots_are_all_zero() {
        let s = HistogramSnapshot::empty(BOUNDS);
        assert_eq!(s.count(), 0);
        assert!(s.cumulative().all(|(_, n)| n == 0));
        assert_eq!(s.cumulative().count(), 4);
        let short = HistogramSnapshot {
            counts: vec![1],
            ..HistogramSnapshot::empty(BOUNDS)
        };
        let last = short.cumulative().last();
        assert_eq!(last, Some((None, 1)));
    }

    #[test]
    fn concurrent_records_are_all_counted() {
        let h = Histogram::new(BOUNDS);
        let n = if cfg!(miri) { 50 } else { 10_000 };
        std::thread::scope(|s| {
            for t in 0..4u64 {
                let h = &h;
                s.spawn(move || {
                    for i in 0..n {
                        h.record((i * 7 + t) % 2000);
                    }
                });
            }
        });
        let s = h.snapshot();
        assert_eq!(s.count(), 4 * n);
        let expected: u64 = (0..4u64)
            .flat_map(|t| (0..n).map(move |i| (i * 7 + t) % 2000))
            .sum();
        assert_eq!(s.sum, expected);
    }
}
