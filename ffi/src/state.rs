//! What the engine, tracer and logger handles are and hold, and how a call
//! finds it: the state the front doors (`span`, `record`, `logs`) read,
//! and `engine`, above them, builds, reports on and frees.
//!
//! An engine's state is boxed and owns the engine's tracers and loggers,
//! which point back at it: the state outlives them, because
//! `otlpx_engine_free` frees an engine's open spans first, then its
//! tracers and loggers, then the state (or, with a span still held by a
//! thread, keeps them all). A tracer or logger found through its handle is
//! refused once its engine is shut down.

use crate::handle::Handle;
use crate::otlpx_status;
use bytes::BytesMut;
use otlpx::{Engine, Logger, Signal, Tracer};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// An otlpx engine (opaque): rings, workers and exporter. Create with
/// `otlpx_engine_new`, free with `otlpx_engine_free`. Thread-safe.
pub struct otlpx_engine {
    _private: [u8; 0],
}

/// An instrumentation scope of an engine (opaque), from
/// `otlpx_engine_tracer`. Owned by its engine: valid until
/// `otlpx_engine_free`, after which calls through it return
/// `OTLPX_STATUS_INVALID_HANDLE`. Thread-safe.
pub struct otlpx_tracer {
    _private: [u8; 0],
}

/// An instrumentation scope of an engine that emits log records (opaque),
/// from `otlpx_engine_logger`. Owned by its engine, as a tracer is: valid
/// until `otlpx_engine_free`, after which calls through it return
/// `OTLPX_STATUS_INVALID_HANDLE` (there is no `otlpx_logger_free`: the
/// same name and version give every caller the same logger). Thread-safe.
pub struct otlpx_logger {
    _private: [u8; 0],
}

const ENGINE_MAGIC: u64 = 0x6f74_6c70_785f_656e;
const TRACER_MAGIC: u64 = 0x6f74_6c70_785f_7472;
const LOGGER_MAGIC: u64 = 0x6f74_6c70_785f_6c67;
/// Boxed: tracers point at the state, which must not move when `free`
/// takes it out of the handle (and may be kept, see `otlpx_engine_free`).
pub(crate) type EngineHandle = Handle<Box<EngineState>, ENGINE_MAGIC>;
pub(crate) type TracerHandle = Handle<TracerState, TRACER_MAGIC>;
pub(crate) type LoggerHandle = Handle<LoggerState, LOGGER_MAGIC>;

/// What an engine handle holds.
pub(crate) struct EngineState {
    pub(crate) engine: Engine,
    /// Set by `otlpx_engine_shutdown`: record calls are refused after it.
    pub(crate) shut_down: AtomicBool,
    /// Span attribute values truncated to the value length limit.
    pub(crate) values_truncated: AtomicU64,
    /// Calls refused for bad input, by signal ([`signal_slot`]): on this
    /// engine's tracers and live spans (not calls with a stale span
    /// handle: their engine is unknown), and on its loggers.
    calls_refused: [AtomicU64; 2],
    /// The engine's tracers, by (name, version), each made once.
    pub(crate) tracers: Mutex<Vec<(String, String, TracerPtr)>>,
    /// The engine's loggers, likewise.
    pub(crate) loggers: Mutex<Vec<(String, String, LoggerPtr)>>,
    /// What `otlpx_engine_drain` framed, by signal, kept while the caller's
    /// buffer is too small for it.
    pub(crate) drained: Mutex<[Drained; 2]>,
}

/// A request `otlpx_engine_drain` framed, with its buffer (reused).
#[derive(Default)]
pub(crate) struct Drained {
    pub(crate) buf: BytesMut,
    pub(crate) items: usize,
    /// Framed but not yet handed over: the next drain of the signal
    /// returns it before taking anything from the rings.
    pub(crate) pending: bool,
}

impl EngineState {
    /// The state of a new engine: running, nothing counted, no tracers or
    /// loggers yet.
    pub(crate) fn new(engine: Engine) -> Self {
        Self {
            engine,
            shut_down: AtomicBool::new(false),
            values_truncated: AtomicU64::new(0),
            calls_refused: [AtomicU64::new(0), AtomicU64::new(0)],
            tracers: Mutex::new(Vec::new()),
            loggers: Mutex::new(Vec::new()),
            drained: Mutex::default(),
        }
    }

    /// Counts a call refused for bad input on `signal`'s front door, and
    /// returns its status; drops the core counts itself (a full ring, a
    /// record too large) and a shut-down engine are not bad input.
    pub(crate) fn refuse(&self, signal: Signal, status: otlpx_status) -> otlpx_status {
        if !matches!(
            status,
            otlpx_status::RingFull | otlpx_status::TooLarge | otlpx_status::ShutDown
        ) {
            // Relaxed: a statistic.
            self.calls_refused[signal_slot(signal)].fetch_add(1, Ordering::Relaxed);
        }
        status
    }

    /// Calls refused for bad input on `signal`'s front door so far.
    pub(crate) fn calls_refused(&self, signal: Signal) -> u64 {
        // Relaxed: a statistic.
        self.calls_refused[signal_slot(signal)].load(Ordering::Relaxed)
    }
}

/// A signal's place in the per-signal arrays.
pub(crate) fn signal_slot(signal: Signal) -> usize {
    match signal {
        Signal::Logs => 1,
        _ => 0,
    }
}

/// The engine state behind `engine`.
///
/// # Safety
///
/// `engine` is NULL or from `otlpx_engine_new`, not freed concurrently.
pub(crate) unsafe fn engine_state<'a>(
    engine: *const otlpx_engine,
) -> Result<&'a EngineState, otlpx_status> {
    // SAFETY: forwarded from the caller.
    unsafe { EngineHandle::get(engine.cast()) }.map(|b| &**b)
}

/// A tracer handle the engine owns.
pub(crate) struct TracerPtr(pub(crate) *mut TracerHandle);
// SAFETY: the pointer is only dereferenced through `Handle`'s checked
// accessors, and a `TracerHandle` is `Sync`.
unsafe impl Send for TracerPtr {}

/// What a tracer handle holds.
pub(crate) struct TracerState {
    pub(crate) tracer: Tracer,
    /// The owning engine's boxed state: alive while the tracer is (an
    /// engine frees its tracers before its state, or keeps both).
    pub(crate) engine: *const EngineState,
}

// SAFETY: `engine` points into the engine's handle, which outlives the
// tracer state (freed first) and is itself `Sync`.
unsafe impl Send for TracerState {}
// SAFETY: as above; `Tracer` is `Sync`.
unsafe impl Sync for TracerState {}

impl TracerState {
    pub(crate) fn engine(&self) -> &EngineState {
        // SAFETY: see the field's doc: the engine state outlives this.
        unsafe { &*self.engine }
    }

    /// Counts a refused call, and returns its status.
    pub(crate) fn refuse(&self, status: otlpx_status) -> otlpx_status {
        self.engine().refuse(Signal::Traces, status)
    }
}

/// The tracer behind `tracer`, refusing one whose engine shut down.
///
/// # Safety
///
/// `tracer` is NULL or from `otlpx_engine_tracer`, and its engine is not
/// freed concurrently.
pub(crate) unsafe fn live_tracer<'a>(
    tracer: *const otlpx_tracer,
) -> Result<&'a TracerState, otlpx_status> {
    // SAFETY: forwarded from the caller.
    let t = unsafe { TracerHandle::get(tracer.cast())? };
    // Relaxed: a flag; spans recorded just as shutdown starts are kept in
    // the rings and counted there, as the core documents.
    if t.engine().shut_down.load(Ordering::Relaxed) {
        return Err(otlpx_status::ShutDown);
    }
    Ok(t)
}

/// A logger handle the engine owns.
pub(crate) struct LoggerPtr(pub(crate) *mut LoggerHandle);
// SAFETY: the pointer is only dereferenced through `Handle`'s checked
// accessors, and a `LoggerHandle` is `Sync`.
unsafe impl Send for LoggerPtr {}

/// What a logger handle holds.
pub(crate) struct LoggerState {
    pub(crate) logger: Logger,
    /// The owning engine's boxed state: alive while the logger is (an
    /// engine frees its loggers before its state, or keeps both).
    pub(crate) engine: *const EngineState,
}

// SAFETY: `engine` points into the engine's handle, which outlives the
// logger state (freed first) and is itself `Sync`.
unsafe impl Send for LoggerState {}
// SAFETY: as above; `Logger` is `Sync`.
unsafe impl Sync for LoggerState {}

impl LoggerState {
    fn engine(&self) -> &EngineState {
        // SAFETY: see the field's doc: the engine state outlives this.
        unsafe { &*self.engine }
    }

    /// Counts a refused call in the logs signal's stats, and returns its
    /// status.
    pub(crate) fn refuse(&self, status: otlpx_status) -> otlpx_status {
        self.engine().refuse(Signal::Logs, status)
    }
}

/// The logger behind `logger`, refusing one whose engine shut down.
///
/// # Safety
///
/// `logger` is NULL or from `otlpx_engine_logger`, and its engine is not
/// freed concurrently.
pub(crate) unsafe fn live_logger<'a>(
    logger: *const otlpx_logger,
) -> Result<&'a LoggerState, otlpx_status> {
    // SAFETY: forwarded from the caller.
    let l = unsafe { LoggerHandle::get(logger.cast())? };
    // Relaxed: a flag, as in `live_tracer`.
    if l.engine().shut_down.load(Ordering::Relaxed) {
        return Err(otlpx_status::ShutDown);
    }
    Ok(l)
}
