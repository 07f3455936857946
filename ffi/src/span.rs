//! Handle-based spans, for runtimes without an OpenTelemetry SDK of their
//! own: `otlpx_span_begin` → set attributes, events, links, status →
//! `otlpx_span_end`.
//!
//! An `otlpx_span` is a `uint64_t` naming a slot of the process-wide span
//! [`table`](crate::table): the open span lives there between calls,
//! detached from its tracer. The handle carries the slot's generation, so
//! a span that has ended (or any other number) is refused with
//! `OTLPX_STATUS_INVALID_HANDLE`, never mistaken for the slot's next span.
//!
//! A span may move between threads, but is used by one at a time: a call
//! on a span another thread is inside returns `OTLPX_STATUS_SPAN_BUSY`
//! without waiting. None of these calls blocks; once the thread is warm
//! (and the table has grown to the number of spans open at once), none
//! allocates.
//!
//! A span open when its process forks is open in both processes, and
//! would be recorded twice: end spans before forking.

use crate::convert::{context_of, slice_arg, str_arg, with_attribute_slice};
use crate::state::{TracerState, live_tracer, otlpx_tracer};
use crate::table::{HandleError, MAX_CHUNKS, Table};
use crate::types::{
    otlpx_attribute, otlpx_span_context, otlpx_span_kind, otlpx_span_options, otlpx_status_code,
};
use crate::{ffi_guard, otlpx_status};
use otlpx::{DetachedSpan, KeyValue, Span, SpanContext, SpanKind, Status};
use std::ffi::c_char;

/// An open span: a generation-checked number, 0 for none. See
/// `otlpx_span_begin`.
pub type otlpx_span = u64;

/// What a slot of the span table holds.
pub(crate) struct OpenSpan {
    /// `None` only while a call has it attached.
    span: Option<DetachedSpan>,
    tracer: *const TracerState,
}

// SAFETY: `tracer` points into a tracer handle that outlives the span
// (`otlpx_engine_free` drains an engine's spans before its tracers), and
// `TracerState` is `Sync`.
unsafe impl Send for OpenSpan {}

impl OpenSpan {
    /// The span's tracer, not borrowing `self` (the span is taken out and
    /// put back while the tracer is in use).
    pub(crate) fn tracer<'t>(&self) -> &'t TracerState {
        // SAFETY: see the `Send` impl: the tracer outlives the span, and
        // the span's caller holds its slot for the borrow's length.
        unsafe { &*self.tracer }
    }
}

/// Every open span of the process.
pub(crate) static SPANS: Table<OpenSpan> = Table::new(MAX_CHUNKS);

fn handle_status(e: HandleError) -> otlpx_status {
    match e {
        HandleError::Stale => otlpx_status::InvalidHandle,
        HandleError::Busy => otlpx_status::SpanBusy,
        HandleError::Full => otlpx_status::TooManySpans,
    }
}

pub(crate) fn span_kind(kind: u32) -> Result<SpanKind, otlpx_status> {
    use otlpx_span_kind as K;
    Ok(match kind {
        k if k == K::Unspecified as u32 || k == K::Internal as u32 => SpanKind::Internal,
        k if k == K::Server as u32 => SpanKind::Server,
        k if k == K::Client as u32 => SpanKind::Client,
        k if k == K::Producer as u32 => SpanKind::Producer,
        k if k == K::Consumer as u32 => SpanKind::Consumer,
        _ => return Err(otlpx_status::InvalidArgument),
    })
}

/// A status from its code and description.
pub(crate) fn status_of(code: u32, description: &str) -> Result<Status<'_>, otlpx_status> {
    Ok(match code {
        c if c == otlpx_status_code::Unset as u32 => Status::Unset,
        c if c == otlpx_status_code::Ok as u32 => Status::Ok,
        c if c == otlpx_status_code::Error as u32 => Status::error(description),
        _ => return Err(otlpx_status::InvalidArgument),
    })
}

/// Runs `f` on the open span `span`, attached to its tracer; refusals are
/// counted on its engine.
fn with_span(
    span: otlpx_span,
    f: impl FnOnce(&mut Span<'_>, &TracerState) -> Result<(), otlpx_status>,
) -> Result<(), otlpx_status> {
    SPANS
        .with(span, |open| {
            let tracer = open.tracer();
            let detached = open.span.take().ok_or(otlpx_status::InvalidHandle)?;
            let mut live = detached.resume(&tracer.scope);
            let result = f(&mut live, tracer);
            open.span = Some(live.detach());
            result.map_err(|s| tracer.refuse(s))
        })
        .map_err(handle_status)?
}

/// Begins a span named `name` on `tracer`, and writes its handle to
/// `*out`. `options` may be NULL: a root span of kind `INTERNAL` starting
/// now. Whether it records is decided now, by the engine's sampler; an
/// unsampled span still has a handle and a context to propagate.
///
/// # Errors
///
/// `OTLPX_STATUS_NULL_POINTER`, `OTLPX_STATUS_INVALID_UTF8`,
/// `OTLPX_STATUS_INVALID_ARGUMENT` (unknown kind),
/// `OTLPX_STATUS_INVALID_HANDLE` (freed tracer, ended parent),
/// `OTLPX_STATUS_SPAN_BUSY` (parent in use by another thread),
/// `OTLPX_STATUS_SHUT_DOWN`, `OTLPX_STATUS_TOO_MANY_SPANS`.
///
/// # Safety
///
/// `tracer` is from `otlpx_engine_tracer`, its engine not freed
/// concurrently; `name` is `name_len` readable bytes (NULL if 0), borrowed
/// for the call; `options` is NULL or a readable `otlpx_span_options`
/// whose `parent_context` is NULL or readable; `out` points to a writable
/// `otlpx_span`. Thread-safe.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn otlpx_span_begin(
    tracer: *const otlpx_tracer,
    name: *const c_char,
    name_len: usize,
    options: *const otlpx_span_options,
    out: *mut otlpx_span,
) -> otlpx_status {
    ffi_guard! {
        // SAFETY: forwarded from the caller.
        let t = unsafe { live_tracer(tracer)? };
        let begin = || -> Result<otlpx_span, otlpx_status> {
            // SAFETY: forwarded from the caller.
            let name = unsafe { str_arg(name, name_len)? };
            if out.is_null() {
                return Err(otlpx_status::NullPointer);
            }
            // SAFETY: NULL or readable, the caller promises.
            let options = unsafe { options.as_ref() };
            let kind = span_kind(options.map_or(0, |o| o.kind))?;
            let parent: Option<SpanContext> = match options {
                Some(o) if o.parent_span != 0 => Some(
                    SPANS
                        .with(o.parent_span, |p| p.span.as_ref().map(|s| s.context().clone()))
                        .map_err(handle_status)?
                        .ok_or(otlpx_status::InvalidHandle)?,
                ),
                // SAFETY: NULL or readable, the caller promises; its trace
                // state as in `str_arg`.
                Some(o) => match unsafe { o.parent_context.as_ref() } {
                    // SAFETY: as above.
                    Some(c) => Some(unsafe { context_of(c)? }),
                    None => None,
                },
                None => None,
            };
            // The C caller names the parent or none: the Rust side's
            // current context (of whatever thread this is) plays no part.
            let mut builder = t.scope.span(name).kind(kind);
            builder = match &parent {
                Some(p) => builder.parent(p),
                None => builder.root(),
            };
            if let Some(start) = options.map(|o| o.start_time_unix_nano).filter(|&s| s != 0) {
                builder = builder.start_time_unix_nano(start);
            }
            let open = OpenSpan {
                span: Some(builder.start().detach()),
                tracer: t,
            };
            SPANS.insert(open).map_err(|(e, _)| handle_status(e))
        };
        let handle = begin().map_err(|s| t.refuse(s))?;
        // SAFETY: checked non-NULL in `begin`; the caller promises it is
        // writable.
        unsafe { *out = handle };
        Ok(())
    }
}

/// Sets attributes on an open span; a key set before gets the new value.
/// Past the engine's attribute count limit new keys are dropped and
/// counted in the span. `attributes` is read during the call only.
///
/// # Errors
///
/// `OTLPX_STATUS_INVALID_HANDLE`, `OTLPX_STATUS_SPAN_BUSY`,
/// `OTLPX_STATUS_NULL_POINTER`, `OTLPX_STATUS_INVALID_UTF8`,
/// `OTLPX_STATUS_INVALID_ARGUMENT`: then no attribute of the array is set.
///
/// # Safety
///
/// `attributes` is NULL (with `len` 0) or `len` readable attributes, their
/// pointers readable. The span's engine is not freed concurrently.
/// Thread-safe (one thread per span at a time).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn otlpx_span_set_attributes(
    span: otlpx_span,
    attributes: *const otlpx_attribute,
    len: usize,
) -> otlpx_status {
    ffi_guard! {
        with_span(span, |live, t| {
            // SAFETY: forwarded from the caller.
            unsafe {
                with_attributes(t, attributes, len, |kvs| {
                    for kv in kvs {
                        live.set_attribute(kv.key, kv.value);
                    }
                })
            }
        })
    }
}

/// Converts `len` attributes at `attributes` and runs `f` on them.
///
/// # Safety
///
/// As `otlpx_span_set_attributes`.
unsafe fn with_attributes(
    t: &TracerState,
    attributes: *const otlpx_attribute,
    len: usize,
    f: impl FnOnce(&[KeyValue<'_>]),
) -> Result<(), otlpx_status> {
    // SAFETY: forwarded from the caller.
    let attrs = unsafe { slice_arg(attributes, len)? };
    let limit = t.scope.span_limits().max_attribute_value_length;
    // SAFETY: forwarded from the caller.
    unsafe {
        with_attribute_slice(attrs, limit, &t.engine().values_truncated, |kvs| {
            f(kvs);
            Ok(())
        })
    }
}

/// Adds an event to an open span, at `time_unix_nano` (0: now).
///
/// # Errors
///
/// As `otlpx_span_set_attributes`; then no event is added.
///
/// # Safety
///
/// As `otlpx_span_set_attributes`; `name` is `name_len` readable bytes
/// (NULL if 0).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn otlpx_span_add_event(
    span: otlpx_span,
    name: *const c_char,
    name_len: usize,
    time_unix_nano: u64,
    attributes: *const otlpx_attribute,
    attributes_len: usize,
) -> otlpx_status {
    ffi_guard! {
        with_span(span, |live, t| {
            // SAFETY: forwarded from the caller.
            let name = unsafe { str_arg(name, name_len)? };
            // SAFETY: forwarded from the caller.
            unsafe {
                with_attributes(t, attributes, attributes_len, |kvs| {
                    if time_unix_nano == 0 {
                        live.add_event(name, kvs);
                    } else {
                        live.add_event_with_timestamp(name, time_unix_nano, kvs);
                    }
                })
            }
        })
    }
}

/// Adds a link from an open span to the span `context` names.
///
/// # Errors
///
/// As `otlpx_span_set_attributes`; then no link is added.
///
/// # Safety
///
/// As `otlpx_span_set_attributes`; `context` points to a readable
/// `otlpx_span_context`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn otlpx_span_add_link(
    span: otlpx_span,
    context: *const otlpx_span_context,
    attributes: *const otlpx_attribute,
    attributes_len: usize,
) -> otlpx_status {
    ffi_guard! {
        with_span(span, |live, t| {
            // SAFETY: NULL or readable, the caller promises.
            let c = unsafe { context.as_ref() }.ok_or(otlpx_status::NullPointer)?;
            // SAFETY: forwarded from the caller.
            let c = unsafe { context_of(c)? };
            // SAFETY: forwarded from the caller.
            unsafe { with_attributes(t, attributes, attributes_len, |kvs| live.add_link(&c, kvs)) }
        })
    }
}

/// Sets an open span's status (an `otlpx_status_code`) as the
/// specification orders it: `OK` is final, `UNSET` never overrides,
/// `ERROR` (with `description`) replaces `UNSET` or an earlier error.
///
/// # Errors
///
/// `OTLPX_STATUS_INVALID_HANDLE`, `OTLPX_STATUS_SPAN_BUSY`,
/// `OTLPX_STATUS_INVALID_ARGUMENT` (unknown code),
/// `OTLPX_STATUS_NULL_POINTER`, `OTLPX_STATUS_INVALID_UTF8`.
///
/// # Safety
///
/// `description` is `description_len` readable bytes (NULL if 0). The
/// span's engine is not freed concurrently. Thread-safe (one thread per
/// span at a time).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn otlpx_span_set_status(
    span: otlpx_span,
    code: u32,
    description: *const c_char,
    description_len: usize,
) -> otlpx_status {
    ffi_guard! {
        with_span(span, |live, _| {
            // SAFETY: forwarded from the caller.
            let description = unsafe { str_arg(description, description_len)? };
            live.set_status(status_of(code, description)?);
            Ok(())
        })
    }
}

/// Renames an open span.
///
/// # Errors
///
/// `OTLPX_STATUS_INVALID_HANDLE`, `OTLPX_STATUS_SPAN_BUSY`,
/// `OTLPX_STATUS_NULL_POINTER`, `OTLPX_STATUS_INVALID_UTF8`.
///
/// # Safety
///
/// As `otlpx_span_set_status`, for `name`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn otlpx_span_update_name(
    span: otlpx_span,
    name: *const c_char,
    name_len: usize,
) -> otlpx_status {
    ffi_guard! {
        with_span(span, |live, _| {
            // SAFETY: forwarded from the caller.
            live.update_name(unsafe { str_arg(name, name_len)? });
            Ok(())
        })
    }
}

/// Writes an open span's context to `*out`, to propagate it (e.g. as
/// `traceparent`) or to parent spans elsewhere. `out->trace_state` points
/// into the span: valid until the span ends.
///
/// # Errors
///
/// `OTLPX_STATUS_INVALID_HANDLE`, `OTLPX_STATUS_SPAN_BUSY`,
/// `OTLPX_STATUS_NULL_POINTER`.
///
/// # Safety
///
/// `out` points to a writable `otlpx_span_context`. Thread-safe (one
/// thread per span at a time).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn otlpx_span_get_context(
    span: otlpx_span,
    out: *mut otlpx_span_context,
) -> otlpx_status {
    ffi_guard! {
        if out.is_null() {
            return Err(otlpx_status::NullPointer);
        }
        with_span(span, |live, _| {
            let c = live.context();
            let state = c.trace_state.as_str();
            let context = otlpx_span_context {
                trace_id: c.trace_id.0,
                span_id: c.span_id.0,
                trace_flags: c.trace_flags.0,
                is_remote: u8::from(c.is_remote),
                trace_state: crate::types::otlpx_str {
                    ptr: state.as_ptr().cast(),
                    len: state.len(),
                },
            };
            // SAFETY: checked non-NULL; the caller promises it is writable.
            unsafe { *out = context };
            Ok(())
        })
    }
}

/// Ends an open span at `end_time_unix_nano` (0: now) and records it; the
/// handle is stale from then on, whatever the status.
///
/// # Errors
///
/// `OTLPX_STATUS_RING_FULL` / `OTLPX_STATUS_TOO_LARGE`: the span was
/// dropped and counted. `OTLPX_STATUS_SHUT_DOWN`: the engine was shut
/// down, the span not recorded. `OTLPX_STATUS_INVALID_HANDLE` (ended
/// twice, or never begun), `OTLPX_STATUS_SPAN_BUSY` (another thread is
/// inside a call on it: the span stays open).
///
/// # Safety
///
/// The span's engine is not freed concurrently. Thread-safe (one thread
/// per span at a time).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn otlpx_span_end(span: otlpx_span, end_time_unix_nano: u64) -> otlpx_status {
    ffi_guard! {
        SPANS
            .remove_with(span, |open| {
                let t = open.tracer();
                let detached = open.span.ok_or(otlpx_status::InvalidHandle)?;
                // Relaxed: see `live` in state.rs.
                if t.engine().shut_down.load(std::sync::atomic::Ordering::Relaxed) {
                    return Err(otlpx_status::ShutDown);
                }
                let end = Some(end_time_unix_nano).filter(|&e| e != 0);
                detached
                    .resume(&t.scope)
                    .end_checked(end)
                    .map_err(|e| t.refuse(e.into()))
            })
            .map_err(handle_status)?
    }
}

/// Ends an open span without recording it (e.g. on an error path that
/// should leave no trace); the handle is stale from then on.
///
/// # Errors
///
/// `OTLPX_STATUS_INVALID_HANDLE`, `OTLPX_STATUS_SPAN_BUSY`.
///
/// # Safety
///
/// As `otlpx_span_end`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn otlpx_span_discard(span: otlpx_span) -> otlpx_status {
    ffi_guard! {
        SPANS.remove(span).map(drop).map_err(handle_status)
    }
}
