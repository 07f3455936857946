//! `otlpx_logger`: the logs front door. A logger is an instrumentation
//! scope of an engine, owned by it as a tracer is; `otlpx_logger_emit`
//! hands it one whole `otlpx_log_record` per call, viewed as the core's
//! `LogRecord` (borrowing every string and array; attributes converted in
//! the per-thread arena, the body in its own) and encoded straight into
//! the logs ring of the calling CPU. From there log records travel the
//! pipeline spans do, to the same endpoint, with the same protocol and
//! compression, in their own requests.
//!
//! The C side has no current span: a record correlates with the trace
//! context it carries, or with none, never with whatever the calling
//! thread's Rust side has attached.

use crate::convert::{slice_arg, str_arg, str_of, with_attribute_slice, with_body};
use crate::state::{engine_state, live_logger, otlpx_engine};
use crate::types::otlpx_log_record;
use crate::{ffi_guard, otlpx_status};
use otlpx::logs::{LogRecord, Severity};
use otlpx::{Logger, SpanContext, SpanId, TraceFlags, TraceId, TraceState};
use std::ffi::c_char;
use std::sync::atomic::AtomicU64;

// The logger handle and the body limits, where Rust callers have always
// found them.
pub use crate::state::otlpx_logger;
pub use crate::types::{OTLPX_MAX_BODY_DEPTH, OTLPX_MAX_BODY_VALUES};

/// The logger for instrumentation scope `name` (e.g. a library's or a
/// logging framework's logger name) and `version` (may be empty). The
/// same name and version give the same logger; it is owned by the engine
/// and valid until `otlpx_engine_free`.
///
/// # Errors
///
/// `OTLPX_STATUS_NULL_POINTER`, `OTLPX_STATUS_INVALID_UTF8`,
/// `OTLPX_STATUS_INVALID_HANDLE`.
///
/// # Safety
///
/// `engine` is from `otlpx_engine_new` and not freed concurrently; the
/// strings are readable for their lengths (NULL if 0), borrowed for the
/// call; `out` points to a writable `const otlpx_logger *`. Thread-safe.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn otlpx_engine_logger(
    engine: *const otlpx_engine,
    name: *const c_char,
    name_len: usize,
    version: *const c_char,
    version_len: usize,
    out: *mut *const otlpx_logger,
) -> otlpx_status {
    ffi_guard! {
        // SAFETY: forwarded from the caller.
        let state = unsafe { engine_state(engine)? };
        // SAFETY: forwarded from the caller.
        let (name, version) = unsafe { (str_arg(name, name_len)?, str_arg(version, version_len)?) };
        if out.is_null() {
            return Err(otlpx_status::NullPointer);
        }
        let logger = state.logger(name, version);
        // SAFETY: checked non-NULL; the caller promises it is writable.
        unsafe { *out = logger };
        Ok(())
    }
}

/// Whether a record of `severity_number` would be emitted: the engine is
/// enabled and not shut down, and the severity is unspecified (0) or at
/// least the engine's minimum. A load and a compare: check it before
/// building a costly record. Returns false for a NULL or freed logger and
/// for a number past 24, rather than a status.
///
/// # Safety
///
/// `logger` is NULL or from `otlpx_engine_logger`, its engine not freed
/// concurrently. Thread-safe; never blocks.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn otlpx_logger_enabled(
    logger: *const otlpx_logger,
    severity_number: u32,
) -> bool {
    ffi_guard! { or false;
        // SAFETY: forwarded from the caller.
        let Ok(l) = (unsafe { live_logger(logger) }) else {
            return false;
        };
        severity(severity_number).is_ok_and(|s| l.scope.enabled(s))
    }
}

/// Emits the log record `record`, read during the call only.
///
/// A record below the engine's minimum severity, or emitted to a disabled
/// engine, is filtered: `OTLPX_STATUS_OK`, counted nowhere, and nothing
/// past its severity number is read. Attributes past the engine's log
/// attribute count limit are dropped and counted in the record.
///
/// # Errors
///
/// `OTLPX_STATUS_RING_FULL` / `OTLPX_STATUS_TOO_LARGE`: dropped and
/// counted (`otlpx_engine_signal_stats` for `OTLPX_SIGNAL_LOGS`).
/// `OTLPX_STATUS_INVALID_ARGUMENT`: a severity number past 24; an unknown
/// value type (or `ARRAY` / `MAP` in an attribute, or type 0 inside a
/// body's array or map); a body nested deeper than
/// `OTLPX_MAX_BODY_DEPTH` or holding more than `OTLPX_MAX_BODY_VALUES`
/// values; a bool array byte other than 0 or 1; `has_span_context` set
/// with an all-zero trace or span id; a length past `PTRDIFF_MAX`.
/// `OTLPX_STATUS_NULL_POINTER` (`record`, or a pointer with a non-zero
/// length), `OTLPX_STATUS_INVALID_UTF8` (severity text, event name, a key
/// or string value), `OTLPX_STATUS_INVALID_HANDLE` (freed logger),
/// `OTLPX_STATUS_SHUT_DOWN`. On any error the record is not exported;
/// those refused for bad input are counted in the logs signal's
/// `calls_refused` (a freed or NULL logger names no engine to count in).
///
/// # Safety
///
/// `logger` is from `otlpx_engine_logger`, its engine not freed
/// concurrently; `record` points to a readable `otlpx_log_record` whose
/// every pointer, and every pointer of every value nested in its body, is
/// NULL (with length 0) or readable for its length. Thread-safe; never
/// blocks; allocates nothing once the thread is warm.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn otlpx_logger_emit(
    logger: *const otlpx_logger,
    record: *const otlpx_log_record,
) -> otlpx_status {
    ffi_guard! {
        // SAFETY: forwarded from the caller.
        let l = unsafe { live_logger(logger)? };
        // SAFETY: NULL or readable, the caller promises.
        let record = unsafe { record.as_ref() }.ok_or_else(|| l.refuse(otlpx_status::NullPointer))?;
        // SAFETY: forwarded from the caller.
        unsafe { emit(&l.scope, record) }.map_err(|s| l.refuse(s))
    }
}

/// The severity numbered `n`.
fn severity(n: u32) -> Result<Severity, otlpx_status> {
    u8::try_from(n)
        .ok()
        .and_then(Severity::new)
        .ok_or(otlpx_status::InvalidArgument)
}

/// The body of `otlpx_logger_emit`.
///
/// # Safety
///
/// As `otlpx_logger_emit`, for `r`.
unsafe fn emit(logger: &Logger, r: &otlpx_log_record) -> Result<(), otlpx_status> {
    let severity = severity(r.severity_number)?;
    if !logger.enabled(severity) {
        return Ok(());
    }
    // SAFETY: forwarded from the caller (here and below).
    let (text, event_name) = unsafe { (str_of(&r.severity_text)?, str_of(&r.event_name)?) };
    // SAFETY: as above.
    let attributes = unsafe { slice_arg(r.attributes, r.attributes_len)? };
    let context = if r.has_span_context != 0 {
        let c = SpanContext {
            trace_id: TraceId(r.trace_id),
            span_id: SpanId(r.span_id),
            trace_flags: TraceFlags(r.trace_flags),
            is_remote: false,
            trace_state: TraceState::EMPTY,
        };
        if !c.is_valid() {
            return Err(otlpx_status::InvalidArgument);
        }
        Some(c)
    } else {
        None
    };
    // Log records have no value length limit (yet): nothing is truncated,
    // so nothing is counted here.
    let unused = AtomicU64::new(0);
    // SAFETY: as above, for the whole block: the closures run inside it.
    unsafe {
        with_attribute_slice(attributes, None, &unused, |kvs| {
            with_body(&r.body, |body| {
                let mut record = LogRecord::new(severity)
                    .attributes(kvs)
                    .event_name(event_name);
                if let Some(body) = body {
                    record = record.body(body);
                }
                if !text.is_empty() {
                    record = record.severity_text(text);
                }
                if r.time_unix_nano != 0 {
                    record = record.timestamp(r.time_unix_nano);
                }
                if r.observed_time_unix_nano != 0 {
                    record = record.observed_timestamp(r.observed_time_unix_nano);
                }
                record = match &context {
                    Some(c) => record.span_context(c),
                    None => record.without_span_context(),
                };
                logger.try_emit(&record).map_err(otlpx_status::from)
            })
        })
    }
}
