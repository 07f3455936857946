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
//!
//! Tracers and loggers are handled by one piece of code, generic over the
//! core's scope type ([`Scope`]): what their handles hold
//! ([`ScopeState`]), the lookup that refuses a shut-down engine, and the
//! registry of an engine's scopes of one kind ([`Scopes`]).

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
/// Boxed: tracers and loggers point at the state, which must not move when
/// `free` takes it out of the handle (and may be kept, see
/// `otlpx_engine_free`).
pub(crate) type EngineHandle = Handle<Box<EngineState>, ENGINE_MAGIC>;

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
    tracers: Scopes<Tracer, TRACER_MAGIC>,
    /// The engine's loggers, likewise.
    loggers: Scopes<Logger, LOGGER_MAGIC>,
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
            tracers: Scopes::new(),
            loggers: Scopes::new(),
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

    /// The engine's tracer named `name` and `version`, made now if this is
    /// the first time it is asked for: the pointer `otlpx_engine_tracer`
    /// hands out.
    pub(crate) fn tracer(&self, name: &str, version: &str) -> *const otlpx_tracer {
        self.tracers.get(self, name, version).cast_const().cast()
    }

    /// The engine's logger named `name` and `version`, as
    /// [`tracer`](Self::tracer) for tracers.
    pub(crate) fn logger(&self, name: &str, version: &str) -> *const otlpx_logger {
        self.loggers.get(self, name, version).cast_const().cast()
    }

    /// Frees the engine's tracers, then its loggers: calls through them
    /// return `OTLPX_STATUS_INVALID_HANDLE` from then on.
    ///
    /// # Safety
    ///
    /// No call on any of them runs concurrently, and no span refers to a
    /// tracer any more (the engine's spans are drained first).
    pub(crate) unsafe fn free_scopes(&self) {
        // SAFETY: forwarded from the caller.
        unsafe {
            self.tracers.free_all();
            self.loggers.free_all();
        }
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

/// A core instrumentation scope a C handle holds: a `Tracer` or a
/// `Logger`. What tells the two apart here is all the registry, the
/// lookup and the counting of refused calls need.
pub(crate) trait Scope: Sized {
    /// The signal whose `calls_refused` counts the scope's refused calls.
    const SIGNAL: Signal;

    /// `engine`'s scope named `name` and `version`.
    fn of(engine: &Engine, name: &str, version: &str) -> Self;
}

impl Scope for Tracer {
    const SIGNAL: Signal = Signal::Traces;

    fn of(engine: &Engine, name: &str, version: &str) -> Self {
        engine.tracer(name, version)
    }
}

impl Scope for Logger {
    const SIGNAL: Signal = Signal::Logs;

    fn of(engine: &Engine, name: &str, version: &str) -> Self {
        engine.logger(name, version)
    }
}

/// What a tracer or logger handle holds.
pub(crate) struct ScopeState<S> {
    /// The core's tracer or logger.
    pub(crate) scope: S,
    /// The owning engine's boxed state: alive while the scope is (an
    /// engine frees its tracers and loggers before its state, or keeps
    /// them all).
    engine: *const EngineState,
}

/// What a tracer handle holds.
pub(crate) type TracerState = ScopeState<Tracer>;
/// What a logger handle holds.
pub(crate) type LoggerState = ScopeState<Logger>;
type TracerHandle = Handle<TracerState, TRACER_MAGIC>;
type LoggerHandle = Handle<LoggerState, LOGGER_MAGIC>;

// SAFETY: `engine` points into the engine's handle, which outlives the
// scope state (freed first) and is itself `Sync`; the scope moves with the
// state, so it must be `Send`.
unsafe impl<S: Send> Send for ScopeState<S> {}
// SAFETY: as above; the scope is shared with the state, so it must be
// `Sync`.
unsafe impl<S: Sync> Sync for ScopeState<S> {}

impl<S: Scope> ScopeState<S> {
    pub(crate) fn engine(&self) -> &EngineState {
        // SAFETY: see the field's doc: the engine state outlives this.
        unsafe { &*self.engine }
    }

    /// Counts a refused call in the scope's signal's stats, and returns its
    /// status.
    pub(crate) fn refuse(&self, status: otlpx_status) -> otlpx_status {
        self.engine().refuse(S::SIGNAL, status)
    }
}

/// The scope behind `ptr`, refusing one whose engine shut down.
///
/// # Safety
///
/// `ptr` is NULL or a handle from `Handle::into_raw` (of any handle
/// type: another is refused), and its engine is not freed concurrently.
unsafe fn live<'a, S: Scope, const MAGIC: u64>(
    ptr: *const Handle<ScopeState<S>, MAGIC>,
) -> Result<&'a ScopeState<S>, otlpx_status> {
    // SAFETY: forwarded from the caller.
    let s = unsafe { Handle::get(ptr)? };
    // Relaxed: a flag; spans and log records recorded just as shutdown
    // starts are kept in the rings and counted there, as the core
    // documents.
    if s.engine().shut_down.load(Ordering::Relaxed) {
        return Err(otlpx_status::ShutDown);
    }
    Ok(s)
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
    // SAFETY: forwarded from the caller; an `otlpx_tracer` pointer is a
    // tracer handle (`otlpx_engine_tracer`).
    unsafe { live(tracer.cast::<TracerHandle>()) }
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
    // SAFETY: forwarded from the caller; an `otlpx_logger` pointer is a
    // logger handle (`otlpx_engine_logger`).
    unsafe { live(logger.cast::<LoggerHandle>()) }
}

/// An engine's scopes of one kind, its tracers or its loggers: one handle
/// per (name, version), made the first time it is asked for, owned by the
/// engine, and freed with it ([`EngineState::free_scopes`]).
///
/// Thread-safe: a mutex guards the list, so threads asking at once for the
/// same new scope get the same handle. Not a hot path: a caller asks for a
/// scope once and keeps the pointer.
pub(crate) struct Scopes<S, const MAGIC: u64> {
    handles: Mutex<Vec<(String, String, ScopePtr<S, MAGIC>)>>,
}

/// A scope handle its engine owns.
struct ScopePtr<S, const MAGIC: u64>(*mut Handle<ScopeState<S>, MAGIC>);
// SAFETY: the pointer is only dereferenced through `Handle`'s checked
// accessors, and the handle is `Sync` (its `ScopeState<S>` is `Send` and
// `Sync`, given these bounds).
unsafe impl<S: Send + Sync, const MAGIC: u64> Send for ScopePtr<S, MAGIC> {}

impl<S: Scope, const MAGIC: u64> Scopes<S, MAGIC> {
    fn new() -> Self {
        Self {
            handles: Mutex::new(Vec::new()),
        }
    }

    /// The handle of `engine`'s scope named `name` and `version`, made
    /// now if this is the first time it is asked for. `engine` is the
    /// state that holds `self` (its methods are the only callers).
    fn get(
        &self,
        engine: &EngineState,
        name: &str,
        version: &str,
    ) -> *mut Handle<ScopeState<S>, MAGIC> {
        let mut handles = self
            .handles
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((_, _, p)) = handles.iter().find(|(n, v, _)| n == name && v == version) {
            return p.0;
        }
        let p = Handle::into_raw(ScopeState {
            scope: S::of(&engine.engine, name, version),
            engine,
        });
        handles.push((name.to_owned(), version.to_owned(), ScopePtr(p)));
        p
    }

    /// Frees every handle made so far (calls through them return
    /// `OTLPX_STATUS_INVALID_HANDLE` from then on), and empties the list.
    ///
    /// # Safety
    ///
    /// No call through any of the handles runs concurrently, and nothing
    /// refers to their states any more (`otlpx_engine_free` drains the
    /// engine's spans, which point at their tracers, first).
    unsafe fn free_all(&self) {
        let handles = std::mem::take(
            &mut *self
                .handles
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        for (_, _, ptr) in handles {
            // SAFETY: from `Handle::into_raw` in `get`; the caller promises
            // no call on it runs concurrently and nothing refers to it.
            drop(unsafe { Handle::free(ptr.0) });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A record-only engine's state, whatever the environment says.
    fn state() -> Box<EngineState> {
        let engine = Engine::builder()
            .environment(std::iter::empty::<(String, String)>())
            .export(false)
            .rings(1)
            .build()
            .unwrap();
        Box::new(EngineState::new(engine))
    }

    #[test]
    fn a_scope_is_made_once_per_name_and_version_and_freed_with_its_engine() {
        let state = state();
        let t = state.tracer("lib", "1");
        assert_eq!(state.tracer("lib", "1"), t);
        assert_ne!(state.tracer("lib", "2"), t);
        let l = state.logger("lib", "1");
        assert_eq!(state.logger("lib", "1"), l);
        // SAFETY: for the whole block: the pointers come from the state's
        // registries; nothing runs concurrently, and no span exists.
        unsafe {
            let tracer = live_tracer(t).unwrap();
            assert!(std::ptr::eq(tracer.engine(), &*state));
            // A logger is not a tracer, nor the other way round.
            assert_eq!(
                live_tracer(l.cast()).err(),
                Some(otlpx_status::InvalidHandle)
            );
            assert_eq!(
                live_logger(t.cast()).err(),
                Some(otlpx_status::InvalidHandle)
            );
            assert_eq!(
                live_logger(std::ptr::null()).err(),
                Some(otlpx_status::NullPointer)
            );
            state.free_scopes();
            assert_eq!(live_tracer(t).err(), Some(otlpx_status::InvalidHandle));
            assert_eq!(live_logger(l).err(), Some(otlpx_status::InvalidHandle));
        }
        // Emptied: asking again makes a new scope.
        let again = state.logger("lib", "1");
        // SAFETY: as above.
        unsafe {
            assert!(live_logger(again).is_ok());
            state.free_scopes();
        }
    }

    #[test]
    fn refusals_count_in_their_signal_and_a_shut_down_engine_refuses() {
        let state = state();
        let (t, l) = (state.tracer("lib", ""), state.logger("lib", ""));
        // SAFETY: for the whole block, as in the test above.
        unsafe {
            let logger = live_logger(l).unwrap();
            assert_eq!(
                logger.refuse(otlpx_status::InvalidArgument),
                otlpx_status::InvalidArgument
            );
            // Drops the core counts, and a shut-down engine, are not bad input.
            logger.refuse(otlpx_status::RingFull);
            logger.refuse(otlpx_status::ShutDown);
            live_tracer(t).unwrap().refuse(otlpx_status::NullPointer);
            live_tracer(t).unwrap().refuse(otlpx_status::NullPointer);
            assert_eq!(state.calls_refused(Signal::Logs), 1);
            assert_eq!(state.calls_refused(Signal::Traces), 2);
            state.shut_down.store(true, Ordering::Relaxed);
            assert_eq!(live_tracer(t).err(), Some(otlpx_status::ShutDown));
            assert_eq!(live_logger(l).err(), Some(otlpx_status::ShutDown));
            state.free_scopes();
        }
    }

    #[test]
    fn threads_asking_at_once_for_a_new_scope_get_one_handle() {
        let state = state();
        let handles: Vec<usize> = std::thread::scope(|s| {
            let asks: Vec<_> = (0..4)
                .map(|_| s.spawn(|| state.tracer("racy", "1") as usize))
                .collect();
            asks.into_iter().map(|a| a.join().unwrap()).collect()
        });
        assert!(handles.iter().all(|&h| h == handles[0]), "{handles:?}");
        // SAFETY: the threads are done; no span exists.
        unsafe { state.free_scopes() };
    }
}
