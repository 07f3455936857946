//! One-call recording of a span another SDK already built: how an existing
//! OpenTelemetry SDK's span processor hands its spans to otlpx.
//!
//! The C struct is viewed as the core's `FinishedSpan` (borrowing every
//! string and array, converting attributes in the per-thread arena) and
//! encoded straight into the ring: no copy of the span is kept.

use crate::convert::{events_into, links_into, slice_arg, str_of, with_attributes};
use crate::span::{span_kind, status_of};
use crate::state::{live_tracer, otlpx_tracer};
use crate::types::otlpx_finished_span;
use crate::{ffi_guard, otlpx_status};
use otlpx::{FinishedSpan, SpanId, TraceFlags, TraceId, Tracer};
use std::sync::atomic::AtomicU64;

/// Records a finished span described by `span`, read during the call only.
///
/// Limits apply as to spans begun here: attributes, events and links past
/// the engine's count limits are dropped and counted in the span, values
/// past the length limit truncated and counted in
/// `otlpx_stats.values_truncated`.
///
/// # Errors
///
/// `OTLPX_STATUS_RING_FULL` / `OTLPX_STATUS_TOO_LARGE`: dropped and counted.
/// `OTLPX_STATUS_INVALID_ARGUMENT`: all-zero trace or span id (dropped and
/// counted as `dropped_invalid`), unknown kind, status code or value type.
/// `OTLPX_STATUS_NULL_POINTER`, `OTLPX_STATUS_INVALID_UTF8`,
/// `OTLPX_STATUS_INVALID_HANDLE` (freed tracer), `OTLPX_STATUS_SHUT_DOWN`.
/// On any error the span is not exported. The three drops named above are
/// counted (in `recorded` and their `dropped_*`, so the stats still add
/// up); a span refused for bad input before it reached the engine is only
/// counted in `calls_refused`.
///
/// # Safety
///
/// `tracer` is from `otlpx_engine_tracer`, its engine not freed
/// concurrently; `span` points to a readable `otlpx_finished_span` whose
/// every pointer is NULL (with length 0) or readable for its length.
/// Thread-safe; never blocks; allocates nothing once the thread is warm.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn otlpx_tracer_record_span(
    tracer: *const otlpx_tracer,
    span: *const otlpx_finished_span,
) -> otlpx_status {
    ffi_guard! {
        // SAFETY: forwarded from the caller.
        let t = unsafe { live_tracer(tracer)? };
        // SAFETY: NULL or readable, the caller promises.
        let span = unsafe { span.as_ref() }.ok_or_else(|| t.refuse(otlpx_status::NullPointer))?;
        let limit = t.scope.span_limits().max_attribute_value_length;
        // SAFETY: forwarded from the caller.
        unsafe { record(&t.scope, span, limit, &t.engine().values_truncated) }
            .map_err(|s| t.refuse(s))
    }
}

/// The body of `otlpx_tracer_record_span`.
///
/// # Safety
///
/// As `otlpx_tracer_record_span`, for `span`.
unsafe fn record(
    tracer: &Tracer,
    span: &otlpx_finished_span,
    limit: Option<u32>,
    truncated: &AtomicU64,
) -> Result<(), otlpx_status> {
    // SAFETY: forwarded from the caller (here and below).
    let attributes = unsafe { slice_arg(span.attributes, span.attributes_len)? };
    // SAFETY: as above.
    let events = unsafe { slice_arg(span.events, span.events_len)? };
    // SAFETY: as above.
    let links = unsafe { slice_arg(span.links, span.links_len)? };
    // SAFETY: as above.
    let (name, trace_state, message) = unsafe {
        (
            str_of(&span.name)?,
            str_of(&span.trace_state)?,
            str_of(&span.status_message)?,
        )
    };
    let kind = span_kind(span.kind)?;
    let status = status_of(span.status_code, message)?;
    let groups = |g: &mut Vec<&[crate::types::otlpx_attribute]>| {
        g.push(attributes);
        for e in events {
            // SAFETY: as above.
            g.push(unsafe { slice_arg(e.attributes, e.attributes_len)? });
        }
        for l in links {
            // SAFETY: as above.
            g.push(unsafe { slice_arg(l.attributes, l.attributes_len)? });
        }
        Ok(())
    };
    // SAFETY: as above, for the whole block: the closure runs inside it.
    unsafe {
        with_attributes(groups, limit, truncated, |kvs, ev, lk| {
            let at = events_into(events, kvs, attributes.len(), ev)?;
            links_into(links, kvs, at, lk)?;
            let parent = SpanId(span.parent_span_id);
            tracer
                .record_span(&FinishedSpan {
                    trace_id: TraceId(span.trace_id),
                    span_id: SpanId(span.span_id),
                    trace_flags: TraceFlags(span.trace_flags),
                    trace_state,
                    parent_span_id: parent.is_valid().then_some(parent),
                    parent_is_remote: span.parent_is_remote != 0,
                    name,
                    kind,
                    start_time_unix_nano: span.start_time_unix_nano,
                    end_time_unix_nano: span.end_time_unix_nano,
                    attributes: &kvs[..attributes.len()],
                    events: ev,
                    links: lk,
                    status,
                    dropped_attributes_count: span.dropped_attributes_count,
                    dropped_events_count: span.dropped_events_count,
                    dropped_links_count: span.dropped_links_count,
                })
                .map_err(otlpx_status::from)
        })
    }
}
