//! Fork safety: an engine built before `fork()` keeps working in the child,
//! with nothing for the application to do (pre-fork servers such as
//! gunicorn, Puma, PHP-FPM and Apache build it in a parent, then fork).
//!
//! In a child only the thread that called `fork()` exists. The engine's
//! workers and I/O runtime are gone; a lock a dead thread held stays
//! locked; a ring record a dead thread was writing stays BUSY, and the
//! consumer stops at it forever; and the forking thread's id generator
//! has the parent's state, so both processes would draw the same ids.
//!
//! # Protocol
//!
//! The first [`register`] of an engine that is not disabled installs three
//! handlers with `pthread_atfork`, once (a `std::sync::Once`). Every engine
//! built registers a `Weak` handle in a process-wide registry; dead ones
//! are skipped (and pruned at the next registration).
//!
//! * **prepare** (parent, before `fork()`): locks the registry, then, for
//!   each live engine, the locks a child will need: the export slot, the
//!   drain batcher, and the scope catalog for writing (a worker holding it
//!   for reading would make `register` deadlock in the child). Each is a
//!   lock whose holders never wait for anything else while holding it,
//!   and they are taken in the order the rest of the code takes them
//!   (batcher before scopes), so prepare waits at most for the holders to
//!   finish. The std guards stay in a thread-local until the next handler:
//!   the thread that runs prepare runs parent or child too (it is the one
//!   that survives in the child), so each guard is released on the thread
//!   that took it, as std requires. They borrow engines that the
//!   registry's `Weak`s are upgraded to; the `Arc`s are kept beside them
//!   and dropped after them.
//! * **parent** (parent, after `fork()`): drops the guards. Nothing else
//!   changes; the parent is unaffected.
//! * **child** (child, after `fork()`, one thread): reseeds this thread's
//!   id generator (`context::reseed_after_fork`); empties every live
//!   engine's rings (`Ring::reset_after_fork`: the records in them are the
//!   parent's, which exports them, so the child never sends them again);
//!   then per engine zeroes its other counters, closes its copy of the
//!   parent's spool lock file (the parent keeps the spool; the child's
//!   copy would keep the directory locked while the child lives), leaks
//!   (`mem::forget`, never drops) the parent's exporter, workers, runtime
//!   and admin server, whose drops would join threads that do not exist
//!   here or take locks dead threads hold, and starts a new exporter: a new
//!   runtime, a new transport built again from the stored
//!   configuration (the parent's connections and TLS state are never
//!   touched; a custom `Transport` given to the builder is reused), new
//!   workers and counters. Then it drops the guards. An engine shut down
//!   before the fork stays shut down; a disabled or exporter-less engine
//!   only has its rings emptied; an exporter that cannot start (a thread
//!   that cannot spawn) leaves the engine exporter-less, with the reason
//!   in `Engine::last_export_error` and a WARN.
//!
//! Why this is safe: glibc runs the prepare handlers before it takes its
//! own allocator locks and re-initialises them in the child before the
//! child handlers run, so `malloc` works in all three handlers (an
//! allocator with handlers of its own, such as jemalloc, registers them
//! at its first use, before ours: its prepare runs after ours and its
//! child handler before), and `pthread_create` works in the child (gRPC
//! core restarts its threads in its own child handler likewise). Unlocking a lock in the child is a
//! store and at most a futex wake of nobody. The rings are reset before
//! any engine's new threads exist, as `reset_after_fork` requires.
//!
//! # Order and limits
//!
//! Child handlers run in the order they were registered and prepare
//! handlers in reverse. Ours are registered at the first engine's build,
//! so usually after the runtime's and libraries' own: a child handler
//! registered earlier that records spans writes them into rings not yet
//! emptied (they are lost, not duplicated), and a prepare handler
//! registered later runs before ours. Only `fork()` runs the handlers
//! (`vfork`, `posix_spawn` and raw `clone` do not, and need none); a child
//! that goes on to `exec` pays for an exporter start it never uses.
//! `fork()` from a signal handler, or while the forking thread itself
//! holds one of the locks above (from inside a custom transport, say), is
//! not supported. The child keeps a copy of the admin server's listening
//! socket (never accepted on) for as long as it lives.
#![allow(unsafe_code)]

use super::{ForkLocks, Inner};
use std::cell::RefCell;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};

/// Every engine built in this process that may still be alive.
#[cfg(not(loom))]
static ENGINES: Mutex<Vec<Weak<Inner>>> = Mutex::new(Vec::new());

thread_local! {
    /// What `prepare` took, kept on the forking thread until `parent` or
    /// `child` releases it.
    static HELD: RefCell<Option<Held>> = const { RefCell::new(None) };
}

/// The locks held across one `fork()`.
struct Held {
    engines: Vec<HeldEngine>,
    registry: MutexGuard<'static, Vec<Weak<Inner>>>,
}

/// One engine's locks and the handle that keeps what they borrow alive.
struct HeldEngine {
    /// Declared before `inner` (fields drop in declaration order), and
    /// released before it wherever this is taken apart.
    locks: ForkLocks<'static>,
    inner: Arc<Inner>,
}

impl HeldEngine {
    fn lock(inner: Arc<Inner>) -> Self {
        // SAFETY: `Inner` lives on the heap, where moving the `Arc` does
        // not move it, and `inner` keeps it alive: this struct holds both,
        // and `locks` (the only borrower) is released before `inner`, by
        // field order and in `parent` and `child`, which take it apart.
        let this: &'static Inner = unsafe { &*Arc::as_ptr(&inner) };
        Self {
            locks: this.lock_for_fork(),
            inner,
        }
    }
}

fn registry() -> MutexGuard<'static, Vec<Weak<Inner>>> {
    #[cfg(not(loom))]
    let engines = &ENGINES;
    // Under loom an engine is not `Sync` (its rings hold loom cells), so
    // it cannot sit in a `static`: each thread keeps a registry of its own
    // there (the models build no engine anyway).
    #[cfg(loom)]
    let engines: &'static Mutex<Vec<Weak<Inner>>> = {
        thread_local! {
            static ENGINES: &'static Mutex<Vec<Weak<Inner>>> = Box::leak(Box::default());
        }
        ENGINES.with(|engines| *engines)
    };
    engines.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Adds a newly built engine to the registry; the first engine that is
/// not disabled installs the fork handlers.
pub(crate) fn register(inner: &Arc<Inner>, disabled: bool) {
    if !disabled {
        install_handlers();
    }
    let mut engines = registry();
    engines.retain(|engine| engine.strong_count() > 0);
    engines.push(Arc::downgrade(inner));
}

/// Installs the handlers, once per process. Not under miri, which has no
/// `fork()` (the handlers' bodies are tested without it).
fn install_handlers() {
    #[cfg(all(unix, not(miri)))]
    {
        static HANDLERS: std::sync::Once = std::sync::Once::new();
        HANDLERS.call_once(|| {
            // SAFETY: three `extern "C" fn()` as `pthread_atfork` expects,
            // alive as long as this code is mapped (glibc unregisters a
            // shared object's handlers when it is unloaded). Called outside
            // the registry's lock: glibc serialises this call with the
            // running of handlers.
            let rc =
                unsafe { libc::pthread_atfork(Some(on_prepare), Some(on_parent), Some(on_child)) };
            #[cfg(feature = "export")]
            if rc != 0 {
                tracing::warn!(
                    target: "otlpx",
                    rc,
                    "otlpx: pthread_atfork failed; engines will not work in forked children"
                );
            }
            #[cfg(not(feature = "export"))]
            let _ = rc;
        });
    }
}

#[cfg(all(unix, not(miri)))]
extern "C" fn on_prepare() {
    // A panic (a bug) must not unwind into libc; `catch_unwind` also keeps
    // the process alive past it.
    let _ = std::panic::catch_unwind(prepare);
}

#[cfg(all(unix, not(miri)))]
extern "C" fn on_parent() {
    let _ = std::panic::catch_unwind(parent);
}

#[cfg(all(unix, not(miri)))]
extern "C" fn on_child() {
    let _ = std::panic::catch_unwind(child);
}

/// Before `fork()`: takes the registry and every live engine's locks.
fn prepare() {
    let registry = registry();
    let engines = registry
        .iter()
        .filter_map(Weak::upgrade)
        .map(HeldEngine::lock)
        .collect();
    let held = Held { engines, registry };
    // Fails only when `fork()` is called from a thread-local destructor:
    // the guards then drop at once, and the child gets no guarantee.
    let _ = HELD.try_with(move |h| *h.borrow_mut() = Some(held));
}

fn take_held() -> Option<Held> {
    HELD.try_with(|h| h.borrow_mut().take()).ok().flatten()
}

/// After `fork()`, in the parent: releases everything `prepare` took.
fn parent() {
    let Some(Held { engines, registry }) = take_held() else {
        return;
    };
    let mut handles = Vec::with_capacity(engines.len());
    for HeldEngine { locks, inner } in engines {
        drop(locks);
        handles.push(inner);
    }
    drop(registry);
    // Last, with no lock held: if every other handle of an engine went
    // away meanwhile, this shuts it down, as any last drop does.
    drop(handles);
}

/// After `fork()`, in the child: reseeds the id generator, empties the
/// rings, restarts the exporters, and releases everything `prepare` took.
/// (Miri has no `fork()`, so nothing calls it there.)
#[cfg_attr(miri, allow(dead_code))]
fn child() {
    crate::context::reseed_after_fork();
    let Some(Held { engines, registry }) = take_held() else {
        return;
    };
    for engine in &engines {
        for rings in engine.locks.rings() {
            // SAFETY: only this thread exists in the child, and no engine
            // has started a thread yet (that comes below). This thread
            // holds no `Consumer` (it is in `fork()`, not in a drain) and
            // writes no record (fork() from a signal handler is not
            // supported).
            unsafe { rings.reset_after_fork() };
        }
    }
    let mut handles = Vec::with_capacity(engines.len());
    for HeldEngine { locks, inner } in engines {
        locks.restart_in_child();
        handles.push(inner);
    }
    drop(registry);
    drop(handles);
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::Engine;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Duration;

    /// The prepare handler holds an engine's scope lock (registering a
    /// tracer waits) until the parent handler releases it; the handlers
    /// leave nothing behind.
    #[test]
    fn prepare_holds_the_locks_until_parent_releases_them() {
        let engine = Engine::builder()
            .environment(Vec::<(String, String)>::new())
            .export(false)
            .service_name("fork")
            .rings(1)
            .build()
            .unwrap();
        assert!(
            registry()
                .iter()
                .any(|w| w.as_ptr() == Arc::as_ptr(&engine.inner))
        );
        prepare();
        let done = AtomicBool::new(false);
        std::thread::scope(|s| {
            s.spawn(|| {
                let _ = engine.tracer("registered-while-forking", "");
                // Relaxed: read after the join below.
                done.store(true, Ordering::Relaxed);
            });
            std::thread::sleep(Duration::from_millis(if cfg!(miri) { 5 } else { 50 }));
            // Relaxed: a flag polled in a test.
            assert!(!done.load(Ordering::Relaxed), "registered past the lock");
            parent();
        });
        assert!(done.load(Ordering::Relaxed));
        assert!(take_held().is_none());
        // The registry is free again, and a dead engine is pruned.
        let weak = Arc::downgrade(&engine.inner);
        drop(engine);
        let other = Engine::builder()
            .environment(Vec::<(String, String)>::new())
            .export(false)
            .service_name("fork")
            .rings(1)
            .build()
            .unwrap();
        assert!(registry().iter().all(|w| !w.ptr_eq(&weak)));
        drop(other);
    }
}
