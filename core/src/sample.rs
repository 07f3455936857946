//! Head sampling: whether a span starting now records anything.
//!
//! The samplers are the OpenTelemetry specification's built-in ones, named
//! as `OTEL_TRACES_SAMPLER` names them. A decision is made once, at span
//! start, from the parent's sampled flag and the trace id alone, so it
//! costs a branch or two and never allocates. An unsampled span records
//! nothing and is not counted: it never reaches a ring.
//!
//! `TraceIdRatioBased` keeps a trace when the trace id's last 8 bytes, read
//! big-endian and shifted down to 63 bits, fall under `ratio · 2^63`; every
//! service that samples the same trace at the same ratio makes the same
//! decision, and a lower ratio keeps a subset of what a higher one keeps.

pub use crate::config::Sampler;
use crate::context::{SpanContext, TraceId};

/// A [`Sampler`] compiled for the span-start path.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Decider {
    parent_based: bool,
    /// Root spans are sampled when the trace id's 63-bit draw is below
    /// this; `u64::MAX` keeps all, 0 none.
    threshold: u64,
}

impl Decider {
    /// Compiles `sampler`; a ratio outside 0..=1 is clamped (the config
    /// validator refuses such ratios before they get here).
    pub(crate) fn new(sampler: Sampler) -> Self {
        let of_ratio = |r: f64| {
            if r >= 1.0 {
                u64::MAX
            } else if r > 0.0 {
                // `as` saturates; r < 1 keeps the product under 2^63.
                (r * (1u64 << 63) as f64) as u64
            } else {
                0
            }
        };
        let (parent_based, threshold) = match sampler {
            Sampler::AlwaysOn => (false, u64::MAX),
            Sampler::AlwaysOff => (false, 0),
            Sampler::TraceIdRatio(r) => (false, of_ratio(r)),
            Sampler::ParentBasedAlwaysOn => (true, u64::MAX),
            Sampler::ParentBasedAlwaysOff => (true, 0),
            Sampler::ParentBasedTraceIdRatio(r) => (true, of_ratio(r)),
        };
        Self {
            parent_based,
            threshold,
        }
    }

    /// Whether a span of trace `trace_id`, child of `parent` if any, is
    /// sampled.
    #[inline]
    pub(crate) fn sampled(&self, parent: Option<&SpanContext>, trace_id: &TraceId) -> bool {
        if self.parent_based
            && let Some(p) = parent
        {
            return p.trace_flags.is_sampled();
        }
        match self.threshold {
            u64::MAX => true,
            0 => false,
            t => {
                let mut low = [0u8; 8];
                low.copy_from_slice(&trace_id.0[8..]);
                (u64::from_be_bytes(low) >> 1) < t
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::{SpanId, TraceFlags, TraceState};

    fn parent(sampled: bool) -> SpanContext {
        SpanContext {
            trace_id: TraceId([1; 16]),
            span_id: SpanId([1; 8]),
            trace_flags: if sampled {
                TraceFlags::SAMPLED
            } else {
                TraceFlags::NONE
            },
            is_remote: true,
            trace_state: TraceState::EMPTY,
        }
    }

    fn id(low: u64) -> TraceId {
        let mut b = [7u8; 16];
        b[8..].copy_from_slice(&low.to_be_bytes());
        TraceId(b)
    }

    #[test]
    fn parent_based_follows_the_parent_and_root_rule_applies_to_roots() {
        let on = Decider::new(Sampler::ParentBasedAlwaysOn);
        let off = Decider::new(Sampler::ParentBasedAlwaysOff);
        for d in [on, off] {
            assert!(d.sampled(Some(&parent(true)), &id(0)));
            assert!(!d.sampled(Some(&parent(false)), &id(0)));
        }
        assert!(on.sampled(None, &id(u64::MAX)));
        assert!(!off.sampled(None, &id(0)));
    }

    #[test]
    fn non_parent_based_ignores_the_parent() {
        assert!(Decider::new(Sampler::AlwaysOn).sampled(Some(&parent(false)), &id(1)));
        assert!(!Decider::new(Sampler::AlwaysOff).sampled(Some(&parent(true)), &id(1)));
    }

    #[test]
    fn ratio_keeps_about_its_fraction_and_is_monotonic() {
        let quarter = Decider::new(Sampler::TraceIdRatio(0.25));
        let half = Decider::new(Sampler::TraceIdRatio(0.5));
        let mut kept = 0;
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..100_000 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let q = quarter.sampled(None, &id(x));
            assert!(
                !q || half.sampled(None, &id(x)),
                "a lower ratio keeps a subset"
            );
            kept += usize::from(q);
        }
        assert!((24_000..26_000).contains(&kept), "kept {kept}");
        assert!(!quarter.sampled(None, &id(u64::MAX)));
        assert!(quarter.sampled(None, &id(0)));
        assert!(Decider::new(Sampler::TraceIdRatio(1.0)).sampled(None, &id(u64::MAX)));
        assert!(!Decider::new(Sampler::TraceIdRatio(0.0)).sampled(None, &id(0)));
        let pb = Decider::new(Sampler::ParentBasedTraceIdRatio(0.0));
        assert!(pb.sampled(Some(&parent(true)), &id(0)));
    }
}
