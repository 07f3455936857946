//! `otlpx_engine` and `otlpx_tracer`: the engine's lifecycle, its tracers,
//! its statistics per signal, and the drain of a record-only engine.
//!
//! An engine is thread-safe; so is each tracer and logger, which the
//! engine owns. Freeing an engine first drops its open spans (their
//! handles go stale), then its tracers and loggers (their pointers go to
//! tombstones), then the engine, which shuts it down if
//! `otlpx_engine_shutdown` did not.

use crate::convert::str_arg;
use crate::span::SPANS;
use crate::state::{EngineHandle, EngineState, engine_state, signal_slot};
use crate::types::otlpx_signal;
use crate::{fail, ffi_guard, otlpx_status};
use otlpx::{Engine, FlushError, Signal};
use std::ffi::c_char;
use std::sync::atomic::Ordering;
use std::time::Duration;

// The handle types, where Rust callers have always found them.
pub use crate::state::{otlpx_engine, otlpx_tracer};

/// The signal an `otlpx_signal` number names.
fn signal_of(number: u32) -> Result<Signal, otlpx_status> {
    match number {
        n if n == otlpx_signal::Traces as u32 => Ok(Signal::Traces),
        n if n == otlpx_signal::Logs as u32 => Ok(Signal::Logs),
        _ => Err(otlpx_status::InvalidArgument),
    }
}

/// Builds an engine from `config`, which it consumes (frees) whether or
/// not the build succeeds. NULL `config` means the defaults, that is the
/// standard `OTEL_*` environment (and `OTLPX_CONFIG`).
///
/// # Errors
///
/// `OTLPX_STATUS_NULL_POINTER` if `out` is NULL;
/// `OTLPX_STATUS_INVALID_HANDLE` for a freed or consumed `config`;
/// `OTLPX_STATUS_CONFIG` for an invalid value and `OTLPX_STATUS_START_FAILED`
/// when the exporter cannot start, both explained by `otlpx_last_error`.
///
/// # Safety
///
/// `config` is NULL or from `otlpx_config_new`, used by no other thread;
/// `out` points to a writable `otlpx_engine *`. Thread-safe otherwise.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn otlpx_engine_new(
    config: *mut crate::config::otlpx_config,
    out: *mut *mut otlpx_engine,
) -> otlpx_status {
    ffi_guard! {
        // SAFETY: forwarded from the caller.
        let builder = unsafe { crate::config::take(config)? };
        if out.is_null() {
            return Err(otlpx_status::NullPointer);
        }
        let engine = builder.build().map_err(|e| match e {
            otlpx::BuildError::Config(e) => fail(otlpx_status::Config, c_names(&e)),
            _ => fail(otlpx_status::StartFailed, e),
        })?;
        let state = EngineState::new(engine);
        // SAFETY: checked non-NULL; the caller promises it is writable.
        unsafe { *out = EngineHandle::into_raw(Box::new(state)).cast() };
        Ok(())
    }
}

/// The setter a C caller used for each builder method, so that an error
/// names the call the caller wrote.
const C_SETTERS: [(&str, &str); 14] = [
    ("service_name", "otlpx_config_set_service_name"),
    ("endpoint", "otlpx_config_set_endpoint"),
    ("admin_address", "otlpx_config_set_admin_address"),
    ("header", "otlpx_config_add_header"),
    ("resource_attribute", "otlpx_config_add_resource_attribute"),
    ("protocol", "otlpx_config_set_protocol"),
    ("compression", "otlpx_config_set_compression"),
    ("export_timeout", "otlpx_config_set_export_timeout_ms"),
    ("schedule_delay", "otlpx_config_set_schedule_delay_ms"),
    ("max_batch_spans", "otlpx_config_set_max_batch_spans"),
    ("ring_bytes_per_cpu", "otlpx_config_set_ring_bytes_per_cpu"),
    ("disabled", "otlpx_config_set_disabled"),
    ("sampler", "otlpx_config_set_sampler"),
    ("config_toml", "otlpx_config_set_toml"),
];

/// A configuration error's message, naming the C setter for a value set
/// through one (the core names its Rust builder method).
fn c_names(e: &otlpx::config::ConfigError) -> String {
    if let otlpx::config::Source::Builder { method } = &e.origin
        && let Some((_, c)) = C_SETTERS.iter().find(|(m, _)| m == method)
    {
        return format!("{c}({:?}): {}", e.value, e.reason);
    }
    e.to_string()
}

/// Builds an engine from the standard `OTEL_*` environment alone: the same
/// as `otlpx_engine_new(NULL, out)`.
///
/// # Errors
///
/// As `otlpx_engine_new`.
///
/// # Safety
///
/// `out` points to a writable `otlpx_engine *`. Thread-safe.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn otlpx_engine_from_env(out: *mut *mut otlpx_engine) -> otlpx_status {
    // SAFETY: forwarded from the caller; NULL config is allowed.
    unsafe { otlpx_engine_new(std::ptr::null_mut(), out) }
}

/// The tracer for instrumentation scope `name` (e.g. a library's name)
/// and `version` (may be empty). The same name and version give the same
/// tracer; it is owned by the engine and valid until `otlpx_engine_free`.
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
/// call; `out` points to a writable `const otlpx_tracer *`. Thread-safe.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn otlpx_engine_tracer(
    engine: *const otlpx_engine,
    name: *const c_char,
    name_len: usize,
    version: *const c_char,
    version_len: usize,
    out: *mut *const otlpx_tracer,
) -> otlpx_status {
    ffi_guard! {
        // SAFETY: forwarded from the caller.
        let state = unsafe { engine_state(engine)? };
        // SAFETY: forwarded from the caller.
        let (name, version) = unsafe { (str_arg(name, name_len)?, str_arg(version, version_len)?) };
        if out.is_null() {
            return Err(otlpx_status::NullPointer);
        }
        let tracer = state.tracer(name, version);
        // SAFETY: checked non-NULL; the caller promises it is writable.
        unsafe { *out = tracer };
        Ok(())
    }
}

fn flush_status(e: FlushError) -> otlpx_status {
    let status = match &e {
        FlushError::Dropped { .. } => otlpx_status::ExportFailed,
        FlushError::NotExporting => otlpx_status::NotExporting,
        _ => otlpx_status::Timeout,
    };
    fail(status, e)
}

/// Sends everything recorded so far, waiting at most `timeout_ms`
/// milliseconds. Blocks the calling thread (never call it on a hot path).
///
/// # Errors
///
/// `OTLPX_STATUS_EXPORT_FAILED` when spans it waited for were dropped (the
/// receiver refused them, or their requests failed for good; the others
/// were delivered); `OTLPX_STATUS_TIMEOUT` when spans were still in rings
/// or in flight at the deadline; `OTLPX_STATUS_NOT_EXPORTING` for an engine
/// without an exporter or after shutdown; `OTLPX_STATUS_NULL_POINTER`,
/// `OTLPX_STATUS_INVALID_HANDLE`.
///
/// # Safety
///
/// `engine` is from `otlpx_engine_new` and not freed concurrently.
/// Thread-safe.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn otlpx_engine_flush(
    engine: *const otlpx_engine,
    timeout_ms: u64,
) -> otlpx_status {
    ffi_guard! {
        // SAFETY: forwarded from the caller.
        let state = unsafe { engine_state(engine)? };
        state
            .engine
            .flush(Duration::from_millis(timeout_ms))
            .map(drop)
            .map_err(flush_status)
    }
}

/// Flushes for at most `timeout_ms` milliseconds, then stops the workers.
/// Spans recorded afterwards are refused with `OTLPX_STATUS_SHUT_DOWN`.
/// A second call does nothing. Blocks the calling thread.
///
/// # Errors
///
/// `OTLPX_STATUS_TIMEOUT` when spans were lost: dropped, or left in the
/// rings, because the flush did not finish (the engine is stopped all the
/// same; with a spool, what could not be sent is spooled, not lost, and
/// `otlpx_engine_stats` counts it in `spooled`); `OTLPX_STATUS_NULL_POINTER`,
/// `OTLPX_STATUS_INVALID_HANDLE`.
///
/// # Safety
///
/// `engine` is from `otlpx_engine_new` and not freed concurrently.
/// Thread-safe.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn otlpx_engine_shutdown(
    engine: *const otlpx_engine,
    timeout_ms: u64,
) -> otlpx_status {
    ffi_guard! {
        // SAFETY: forwarded from the caller.
        let state = unsafe { engine_state(engine)? };
        // Relaxed: see `live` in state.rs.
        state.shut_down.store(true, Ordering::Relaxed);
        state
            .engine
            .shutdown(Duration::from_millis(timeout_ms))
            .map(drop)
            .map_err(|e| fail(otlpx_status::Timeout, e))
    }
}

/// How long `otlpx_engine_free` waits for a span another thread is using.
const FREE_PATIENCE: Duration = Duration::from_secs(1);
/// How long it then flushes an engine it must leak (see `otlpx_engine_free`).
const STUCK_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);

/// Frees an engine: drops its open spans (their handles then return
/// `OTLPX_STATUS_INVALID_HANDLE`), its tracers and loggers (likewise), and
/// the engine, shutting it down first (within the shutdown timeout,
/// `otlpx_config_set_shutdown_timeout_ms`, 5 s by default, plus ~100 ms to
/// abandon unanswered requests) unless `otlpx_engine_shutdown` did. NULL
/// is fine. Blocks while it shuts down.
///
/// The handle's memory is kept as a small tombstone, so that a late call
/// or a second free returns `OTLPX_STATUS_INVALID_HANDLE` rather than
/// touching freed memory.
///
/// # Errors
///
/// `OTLPX_STATUS_INVALID_HANDLE` if it was already freed.
///
/// # Safety
///
/// `engine` is NULL or from `otlpx_engine_new`; no other call on this
/// engine, its tracers, loggers or spans may run concurrently.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn otlpx_engine_free(engine: *mut otlpx_engine) -> otlpx_status {
    ffi_guard! {
        // SAFETY: forwarded from the caller.
        let Some(state) = (unsafe { EngineHandle::free(engine.cast())? }) else {
            return Ok(());
        };
        let (spans, stuck) = SPANS.drain_where(
            // The state is boxed: its address is the engine's identity, and
            // the span's tracer (alive until the loop below) points at it.
            |o| std::ptr::eq(o.tracer().engine(), &*state),
            FREE_PATIENCE,
        );
        drop(spans);
        if stuck == 0 {
            // SAFETY: the caller promises no call on the engine's tracers
            // and loggers runs concurrently, and no span refers to a tracer
            // any more (drained above).
            unsafe { state.free_scopes() };
            drop(state);
        } else {
            // A span is still held by a thread (a caller bug, or a thread
            // that died in a fork): its tracer is never freed under it, nor
            // is any other tracer or logger, nor the state they point at.
            // The engine is stopped and kept.
            let _ = state.engine.shutdown(STUCK_SHUTDOWN_TIMEOUT);
            std::mem::forget(state);
        }
        Ok(())
    }
}

/// An engine's counters for one signal, as `otlpx_engine_stats` (spans)
/// and `otlpx_engine_signal_stats` write them; the field docs say "spans",
/// and mean log records in the logs signal's. Fields are only ever
/// appended, so pass `sizeof(otlpx_stats)` as you compiled it.
///
/// `recorded == exported + dropped_* (all seven) + in_flight + in_rings`
/// in every snapshot.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct otlpx_stats {
    /// Spans recorded (sampled ones).
    pub recorded: u64,
    /// Spans the receiver acknowledged.
    pub exported: u64,
    /// Spans sent and not yet answered.
    pub in_flight: u64,
    /// Spans in the rings, not yet taken out.
    pub in_rings: u64,
    /// Dropped: the ring was full.
    pub dropped_ring_full: u64,
    /// Dropped: larger than half a ring.
    pub dropped_too_large: u64,
    /// Dropped: all-zero ids.
    pub dropped_invalid: u64,
    /// Dropped: abandoned mid-write by a panic.
    pub dropped_aborted: u64,
    /// Dropped: the receiver rejected them (partial success).
    pub dropped_rejected: u64,
    /// Dropped: their request failed for good (a final error, or still
    /// failing at the batch export timeout).
    pub dropped_export_failed: u64,
    /// Dropped: unanswered at shutdown.
    pub dropped_shutdown: u64,
    /// Export requests sent (each once, however often retried).
    pub export_requests: u64,
    /// Export attempts that failed (all kinds; retried or not).
    pub export_failures: u64,
    /// Request bytes before compression.
    pub export_bytes_uncompressed: u64,
    /// Request bytes sent.
    pub export_bytes_sent: u64,
    /// Ring bytes in use, all CPUs.
    pub ring_bytes_used: u64,
    /// Ring bytes in all, all CPUs.
    pub ring_bytes_capacity: u64,
    /// Attribute values truncated to the value length limit (spans only:
    /// log record values have no length limit yet, so 0 for logs).
    pub values_truncated: u64,
    /// Calls on this engine's tracers and open spans (for logs: on its
    /// loggers) refused for bad input (NULL, UTF-8, enum numbers, all-zero
    /// ids, a body too deep); the status said which. A stale or busy span
    /// handle names no engine, so is not counted.
    pub calls_refused: u64,
    /// Export attempts that sent a failed request again.
    pub export_retries: u64,
    /// Dropped: evicted while waiting for a retry, to make room for newer
    /// spans (the in-flight budget was full).
    pub dropped_evicted: u64,
    /// Bytes of requests in flight now (waiting for an answer or a retry).
    pub export_in_flight_bytes: u64,
    /// Spans in the disk spool, waiting to be sent.
    pub spooled: u64,
    /// Spans found in the spool at start, left by an earlier engine:
    /// `recorded + spool_restored == exported + dropped (all reasons) +
    /// in_flight + in_rings + spooled`.
    pub spool_restored: u64,
    /// Dropped: the spool was full.
    pub dropped_spool_full: u64,
    /// Dropped: a spool record was damaged.
    pub dropped_spool_corrupt: u64,
}

/// Writes the engine's span counters to `out`: the first `out_size` bytes
/// of an `otlpx_stats` (pass `sizeof(otlpx_stats)`), so a caller built
/// against an older header still gets the fields it knows. The same as
/// `otlpx_engine_signal_stats(engine, OTLPX_SIGNAL_TRACES, out, out_size)`.
///
/// # Errors
///
/// `OTLPX_STATUS_NULL_POINTER`, `OTLPX_STATUS_INVALID_HANDLE`.
///
/// # Safety
///
/// `engine` is from `otlpx_engine_new` and not freed concurrently; `out`
/// points to `out_size` writable bytes. Thread-safe.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn otlpx_engine_stats(
    engine: *const otlpx_engine,
    out: *mut otlpx_stats,
    out_size: usize,
) -> otlpx_status {
    ffi_guard! {
        // SAFETY: forwarded from the caller.
        unsafe { write_stats(engine, Signal::Traces, out, out_size) }
    }
}

/// Writes the engine's counters for `signal` (an `otlpx_signal`) to `out`,
/// as `otlpx_engine_stats` does for spans. Each signal keeps its own
/// accounting: its own rings, batches, requests and drops.
///
/// # Errors
///
/// `OTLPX_STATUS_NULL_POINTER`, `OTLPX_STATUS_INVALID_HANDLE`,
/// `OTLPX_STATUS_INVALID_ARGUMENT` (unknown signal).
///
/// # Safety
///
/// As `otlpx_engine_stats`. Thread-safe.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn otlpx_engine_signal_stats(
    engine: *const otlpx_engine,
    signal: u32,
    out: *mut otlpx_stats,
    out_size: usize,
) -> otlpx_status {
    ffi_guard! {
        let signal = signal_of(signal)?;
        // SAFETY: forwarded from the caller.
        unsafe { write_stats(engine, signal, out, out_size) }
    }
}

/// The body of `otlpx_engine_signal_stats`.
///
/// # Safety
///
/// As `otlpx_engine_stats`.
unsafe fn write_stats(
    engine: *const otlpx_engine,
    signal: Signal,
    out: *mut otlpx_stats,
    out_size: usize,
) -> Result<(), otlpx_status> {
    // SAFETY: forwarded from the caller.
    let state = unsafe { engine_state(engine)? };
    if out.is_null() {
        return Err(otlpx_status::NullPointer);
    }
    let s = state.engine.signal_stats(signal);
    let d = &s.dropped;
    let stats = otlpx_stats {
        recorded: s.recorded,
        exported: s.exported,
        in_flight: s.in_flight,
        in_rings: s.in_rings,
        dropped_ring_full: d.ring_full,
        dropped_too_large: d.too_large,
        dropped_invalid: d.invalid,
        dropped_aborted: d.aborted,
        dropped_rejected: d.rejected,
        dropped_export_failed: d.export_failed,
        dropped_shutdown: d.shutdown,
        export_requests: s.export.requests,
        export_failures: s.export.failures.total(),
        export_bytes_uncompressed: s.export.bytes_uncompressed,
        export_bytes_sent: s.export.bytes_sent,
        ring_bytes_used: s.ring_bytes_used,
        ring_bytes_capacity: s.rings.iter().map(|r| r.capacity_bytes).sum(),
        // Relaxed (both): statistics.
        values_truncated: match signal {
            Signal::Traces => state.values_truncated.load(Ordering::Relaxed),
            _ => 0,
        },
        calls_refused: state.calls_refused(signal),
        export_retries: s.export.retries,
        dropped_evicted: s.dropped.evicted,
        export_in_flight_bytes: s.export.in_flight_bytes,
        spooled: s.spooled,
        spool_restored: s.spool.restored,
        dropped_spool_full: s.dropped.spool_full,
        dropped_spool_corrupt: s.dropped.spool_corrupt,
    };
    let n = out_size.min(size_of::<otlpx_stats>());
    // SAFETY: `out` is non-NULL (checked) and the caller promises
    // `out_size` writable bytes; `n <= out_size`, and a local cannot
    // overlap the caller's buffer.
    unsafe {
        std::ptr::copy_nonoverlapping(std::ptr::from_ref(&stats).cast::<u8>(), out.cast::<u8>(), n);
    }
    Ok(())
}

/// Takes up to `max_items` of `signal`'s items (an `otlpx_signal`) out of
/// the rings of an engine that does not export
/// (`otlpx_config_set_export(c, 0)`), frames them as one OTLP
/// `ExportTraceServiceRequest` or `ExportLogsServiceRequest` (protobuf
/// bytes, as sent to a receiver), copies it to `buf`, and writes its
/// length to `*out_len` and how many items it holds to `*out_items`. For
/// callers that send the bytes themselves, and for tests. With nothing to
/// take, or for an exporting engine (its workers own the rings), both are
/// 0.
///
/// Not a hot-path call: it takes the engine's drain lock and copies the
/// items. Call it until `*out_items` is 0 to empty the rings.
///
/// # Errors
///
/// `OTLPX_STATUS_BUFFER_TOO_SMALL`: the request did not fit in `capacity`
/// bytes; nothing was copied, `*out_len` says how many bytes it needs, and
/// the engine keeps it: the next call for this signal returns it (and
/// takes nothing more). Pass `capacity` 0 (and `buf` NULL) to learn the
/// size. `OTLPX_STATUS_NULL_POINTER`, `OTLPX_STATUS_INVALID_HANDLE`,
/// `OTLPX_STATUS_INVALID_ARGUMENT` (unknown signal).
///
/// # Safety
///
/// `engine` is from `otlpx_engine_new` and not freed concurrently; `buf`
/// points to `capacity` writable bytes (NULL if 0); `out_len` and
/// `out_items` to a writable `size_t` each. Thread-safe: concurrent
/// drains take turns.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn otlpx_engine_drain(
    engine: *const otlpx_engine,
    signal: u32,
    max_items: usize,
    buf: *mut u8,
    capacity: usize,
    out_len: *mut usize,
    out_items: *mut usize,
) -> otlpx_status {
    ffi_guard! {
        // SAFETY: forwarded from the caller.
        let state = unsafe { engine_state(engine)? };
        let signal = signal_of(signal)?;
        if out_len.is_null() || out_items.is_null() || (buf.is_null() && capacity != 0) {
            return Err(otlpx_status::NullPointer);
        }
        let mut drained = state.drained.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let d = &mut drained[signal_slot(signal)];
        if !d.pending {
            d.items = state.engine.drain(signal, &mut d.buf, max_items);
            d.pending = d.items != 0;
        }
        let len = if d.pending { d.buf.len() } else { 0 };
        if len > capacity {
            // SAFETY: checked non-NULL; the caller promises it is writable.
            unsafe { *out_len = len };
            return Err(otlpx_status::BufferTooSmall);
        }
        if len != 0 {
            // SAFETY: `buf` is non-NULL (`capacity >= len > 0`, checked) and
            // the caller promises `capacity` writable bytes; the engine's
            // buffer cannot overlap the caller's.
            unsafe { std::ptr::copy_nonoverlapping(d.buf.as_ptr(), buf, len) };
        }
        let items = if d.pending { d.items } else { 0 };
        d.pending = false;
        // SAFETY: checked non-NULL; the caller promises they are writable.
        unsafe {
            *out_len = len;
            *out_items = items;
        }
        Ok(())
    }
}

/// The core engine behind a C handle, for Rust benches and tests that
/// drive the C ABI and need the core's view (e.g. `drain_traces`). Not part
/// of the C ABI.
///
/// # Safety
///
/// `engine` is NULL or from `otlpx_engine_new`, and is not freed while the
/// returned reference is in use.
#[doc(hidden)]
pub unsafe fn core_engine<'a>(engine: *const otlpx_engine) -> Option<&'a Engine> {
    // SAFETY: forwarded from the caller.
    unsafe { engine_state(engine) }.ok().map(|s| &s.engine)
}
