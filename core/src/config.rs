//! Configuration values shared by the stages: span limits and ring sizing.
//!
//! Limits follow the OpenTelemetry specification's "Span Limits" with its
//! defaults (128 of each, no value length limit). The environment and file
//! sources of configuration build on these types.

/// How much of a span is kept, as the OpenTelemetry specification defines
/// span limits. What is cut is counted in the span's `dropped_*_count`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct SpanLimits {
    /// Attributes kept per span (`OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT`).
    pub max_attributes_per_span: u32,
    /// Events kept per span (`OTEL_SPAN_EVENT_COUNT_LIMIT`).
    pub max_events_per_span: u32,
    /// Links kept per span (`OTEL_SPAN_LINK_COUNT_LIMIT`).
    pub max_links_per_span: u32,
    /// Attributes kept per event (`OTEL_EVENT_ATTRIBUTE_COUNT_LIMIT`).
    pub max_attributes_per_event: u32,
    /// Attributes kept per link (`OTEL_LINK_ATTRIBUTE_COUNT_LIMIT`).
    pub max_attributes_per_link: u32,
    /// Longest string (in characters) or byte array (in bytes) an attribute
    /// value keeps; each element of an array separately. `None`: no limit
    /// (`OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT`).
    pub max_attribute_value_length: Option<u32>,
}

impl Default for SpanLimits {
    fn default() -> Self {
        Self {
            max_attributes_per_span: 128,
            max_events_per_span: 128,
            max_links_per_span: 128,
            max_attributes_per_event: 128,
            max_attributes_per_link: 128,
            max_attribute_value_length: None,
        }
    }
}

impl SpanLimits {
    /// The value length limit as a plain bound (`usize::MAX` for none).
    pub(crate) fn value_len(&self) -> usize {
        self.max_attribute_value_length
            .map_or(usize::MAX, |n| n as usize)
    }
}

/// Default ring size per CPU: 1 MiB holds ~3,000 spans of ~300 bytes, about
/// 30 ms of a saturated producer core at 100k spans/s, while a consumer is
/// meant to drain every few milliseconds. Rings are allocated zeroed, so memory the traffic
/// never reaches is never touched.
pub const DEFAULT_RING_BYTES_PER_CPU: usize = 1 << 20;
