//! The recording layer under every signal's front door: the [`Recorder`]
//! an engine's tracers, loggers, metrics writes and export workers share,
//! and [`RecordError`], why an item was not recorded.
//!
//! An engine builds one recorder and shares it (an `Arc`): each signal's
//! per-CPU rings, by [`Signal::index`], the clock, the span and log
//! limits, the sampler, and which signals are off. Nothing in it changes
//! after the build but what the rings hold and the `dropped_invalid`
//! statistic. The front doors (`trace`, `logs`, `metrics`) stand on this
//! module and import it; it imports none of them.

use crate::clock::Clock;
use crate::config::SpanLimits;
use crate::ring::{Rings, SIGNALS, Signal, WriteError};
use std::sync::atomic::AtomicU64;

/// Why a span was not recorded. Small and `Copy`; the drop is also counted
/// in [`Stats`](crate::Stats).
#[derive(Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RecordError {
    /// This CPU's ring is full: the exporter is behind.
    #[error("ring full: span dropped")]
    RingFull,
    /// The encoded span is larger than half a ring.
    #[error("span too large for the ring: dropped")]
    TooLarge,
    /// The span's trace id or span id is all zeros.
    #[error("span has an all-zero trace id or span id")]
    InvalidIds,
}

debug_as_display!(RecordError);

impl From<WriteError> for RecordError {
    fn from(e: WriteError) -> Self {
        match e {
            WriteError::Full => Self::RingFull,
            WriteError::TooLarge => Self::TooLarge,
        }
    }
}

/// The producer-side state every tracer of an engine shares.
pub(crate) struct Recorder {
    /// Each signal's rings, by [`Signal::index`].
    pub(crate) signal_rings: [Rings; SIGNALS],
    pub(crate) limits: SpanLimits,
    pub(crate) clock: Clock,
    /// Spans refused by `record_span` for invalid ids (an error path only).
    pub(crate) dropped_invalid: AtomicU64,
    pub(crate) sampler: crate::sample::Decider,
    /// Per signal, by [`Signal::index`]: its items are no-ops, recorded
    /// nowhere and counted nowhere. The engine is disabled
    /// (`OTEL_SDK_DISABLED`), or it exports other signals but not this one
    /// (`OTEL_LOGS_EXPORTER=none` beside exported traces), where the
    /// signal's items would only fill its rings and drop there. (An engine
    /// exporting nothing records every signal, for `Engine::drain`.)
    pub(crate) off: [bool; SIGNALS],
    /// What a log record keeps.
    pub(crate) log_limits: crate::config::LogLimits,
    /// Log records below this `SeverityNumber` (and not unspecified) are
    /// filtered out; 0 lets every record through.
    pub(crate) log_min_severity: u8,
}

impl Recorder {
    /// Whether `signal`'s items are no-ops (see [`Recorder::off`]).
    #[inline(always)]
    pub(crate) fn is_off(&self, signal: Signal) -> bool {
        self.off[signal.index()]
    }

    /// The rings of `signal`.
    #[inline]
    pub(crate) fn rings(&self, signal: Signal) -> &Rings {
        &self.signal_rings[signal.index()]
    }

    /// Every ring of every signal (for the fork handlers).
    pub(crate) fn all_rings(&self) -> impl Iterator<Item = &Rings> {
        self.signal_rings.iter()
    }
}
