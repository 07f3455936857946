//! The telemetry signals: which of OpenTelemetry's kinds of data an item
//! is. A leaf: the front doors, the rings, the export stages and the
//! configuration all name signals, so the type lives below them all.

/// The telemetry signal an item belongs to. Each signal has its own set of
/// rings (so that a flood of one never drops another's items, and each
/// keeps its own batch delay), its own batches and its own requests;
/// everything from the rings down is the same code, and a record's header
/// says which kind it is (`Signal::record_kind`), which the framer checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Signal {
    /// Spans: `ExportTraceServiceRequest`.
    Traces = 0,
    /// Log records: `ExportLogsServiceRequest`.
    Logs = 1,
    /// Metrics: `ExportMetricsServiceRequest`. The pipeline carries them
    /// (rings, batching, export, spool, accounting); the API that records
    /// them (instruments, aggregation, collection) is not built yet.
    Metrics = 2,
}

/// How many [`Signal`]s there are.
pub const SIGNALS: usize = 3;

impl Signal {
    /// Every signal, in index order.
    pub const ALL: [Self; SIGNALS] = [Self::Traces, Self::Logs, Self::Metrics];

    /// The signal's name as OpenTelemetry writes it: `traces`, `logs`,
    /// `metrics`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Traces => "traces",
            Self::Logs => "logs",
            Self::Metrics => "metrics",
        }
    }

    /// The signal's place in per-signal arrays.
    #[inline]
    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

impl std::fmt::Display for Signal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indexes_follow_all() {
        for (i, signal) in Signal::ALL.into_iter().enumerate() {
            assert_eq!(signal.index(), i);
        }
        assert_eq!(Signal::Metrics.index(), 2);
        assert_eq!(Signal::Metrics.name(), "metrics");
    }
}
