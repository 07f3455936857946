//! Draining: the worker threads, plain threads pinned to cores when asked,
//! each owning a set of every signal's rings. A worker drains its rings in
//! batches ([`super::batch`]), one signal's per request, frames
//! and compresses each request, and hands it to the transport on the
//! engine's own tokio runtime; it never waits on the application.
//!
//! # Sleeping and waking
//!
//! A worker with nothing due parks, hanging a [`Doorbell`] on its rings: a
//! producer that fills a ring past the wake level unparks it, and the
//! schedule delay bounds the sleep otherwise. An idle engine wakes each
//! worker once per schedule delay. A prompt signal (metrics, whose
//! records come in a burst per collection) is the exception: while its
//! rings are empty their wake level is any record, so the first record
//! of a burst wakes the worker and nothing polls for it in between (an
//! engine where nothing records metrics never wakes for them); once a
//! record waits, the level goes back up, so that the rest of the burst
//! wakes nobody, and the batch goes its delay after the first record.
//!
//! While spans flow (the last batch went because it was full), the worker
//! naps instead: it polls its rings every
//! [`NAP`] and moves the wake level up to half a ring, so that producers
//! ring only in a burst the naps cannot keep up with. An `unpark` from the
//! application thread is a futex syscall, and on a busy machine the woken
//! worker preempts the producer that woke it: measured here, ringing on
//! every refill put the 99.9th percentile of recording at ~13 µs, against
//! ~2 µs with naps. After [`IDLE_AFTER`] without spans the worker lowers
//! the wake level again and sleeps.
//!
//! # In flight
//!
//! A worker takes a send slot from the gate ([`super::deliver`]) before it
//! takes items from its rings, then frames, compresses and hands the
//! request over; what becomes of it is [`super::deliver`]'s.
//!
//! # Flush and stop
//!
//! `flush` bumps an epoch and wakes everyone; a worker that sees a new epoch
//! sends everything its rings hold, then acknowledges the epoch. The flush
//! returns when every worker has acknowledged and nothing is in flight.
//! `stop` makes workers send what they can without waiting and exit.
//!
//! # Telemetry and diagnostics
//!
//! Each request feeds the export histograms once: its size when sent, its
//! duration when answered (see [`ExportCounters`]). Diagnostics go through
//! `tracing`: failed requests and partial-success rejections at WARN, at
//! most one event per failure kind (and one for rejections) per
//! [`DIAGNOSTIC_INTERVAL`], the next one saying how many were held back,
//! so that a failing collector cannot flood the application's logs;
//! spans abandoned at shutdown at WARN, once per shutdown; workers starting
//! and stopping at DEBUG (once each per engine, so not limited). Messages
//! carry failure kinds, counts and error texts from the transport (library
//! errors, status codes, the receiver's own words), never header values.

use super::batch::{Batcher, Max, Pending};
use super::compress::Compressor;
use super::deliver::{Gate, GateState, InFlight, Shared, SpoolPause, SpoolQueue, WorkerSettings};
use super::frame::Catalog;
use super::spool::Spool;
use super::transport::{ExportRequest, Transport};
use crate::config::Overflow;
use crate::record::Recorder;
use crate::ring::{Doorbell, Ring, SIGNALS, Signal};
use crate::telemetry::limiter::{DIAGNOSTIC_INTERVAL, RateLimiter};
use crate::telemetry::{Dropped, ExportFailures, FailureKind, Settled, SignalCounters, Stats};
use bytes::{Bytes, BytesMut};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tokio::sync::Notify;

/// How long shutdown waits, past its deadline if need be, for the I/O
/// runtime to drop (and so count) the requests it abandons. Dropping a task
/// takes microseconds; this is slack for a loaded machine.
const ABANDON_GRACE: Duration = Duration::from_millis(100);

/// How often a worker polls its rings while spans flow. At ~1,000 wake-ups
/// a second it costs a few µs of CPU per ms; a 1 MiB ring takes longer
/// than that to fill to its wake level even from a producer recording
/// flat out.
const NAP: Duration = Duration::from_millis(1);

/// How long a worker naps after its last full batch before it sleeps.
const IDLE_AFTER: Duration = Duration::from_millis(100);

/// The longest a worker sleeps while a prompt signal's rings are empty
/// (metrics; see `Policy::prompt`). Its first record rings the doorbell,
/// so this only bounds a ring that was missed: one committed in the
/// instant between the worker's last look and its announcing sleep, or
/// against a wake level not yet seen (see `Doorbell::sleep`). Long, so
/// that a signal nothing records costs no wake-up: an idle worker wakes
/// once per traces' or logs' delay (1 s by default) anyway.
const PROMPT_IDLE_WAIT: Duration = Duration::from_secs(5);

/// What became of the items (spans, log records) a flush waited for,
/// counted from its start to its end, every signal's together; from
/// [`Engine::flush`](crate::Engine::flush).
///
/// Items recorded while the flush ran may be counted in it too.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct FlushReport {
    /// Items the receiver acknowledged.
    pub delivered: u64,
    /// Items written to the spool, to be sent later.
    pub spooled: u64,
    /// Spans dropped on their way out, by reason: refused by the receiver
    /// (`rejected`), their request failed for good (`export_failed`),
    /// `evicted`, `spool_full`, `spool_corrupt`. Drops while recording
    /// (`ring_full`, `too_large`, `invalid`, `aborted`) befall spans that
    /// never reached a ring, so no flush waited for them: they stay 0
    /// here, and are in [`Stats::dropped`](crate::Stats).
    pub dropped: Dropped,
    /// Failed export attempts, by kind (retried or not): why spans were
    /// dropped, or why the flush took long.
    pub failures: ExportFailures,
}

impl FlushReport {
    /// The report of what happened between the snapshots `before` and
    /// `after`.
    pub(crate) fn between_all(before: &[Stats], after: &[Stats]) -> Self {
        before
            .iter()
            .zip(after)
            .map(|(b, a)| Self::between(b, a))
            .fold(Self::default(), |sum, r| {
                let (d, e) = (r.dropped, r.failures);
                let (sd, se) = (sum.dropped, sum.failures);
                Self {
                    delivered: sum.delivered + r.delivered,
                    spooled: sum.spooled + r.spooled,
                    dropped: Dropped {
                        rejected: sd.rejected + d.rejected,
                        export_failed: sd.export_failed + d.export_failed,
                        shutdown: sd.shutdown + d.shutdown,
                        evicted: sd.evicted + d.evicted,
                        spool_full: sd.spool_full + d.spool_full,
                        spool_corrupt: sd.spool_corrupt + d.spool_corrupt,
                        ..Dropped::default()
                    },
                    failures: ExportFailures {
                        unavailable: se.unavailable + e.unavailable,
                        timeout: se.timeout + e.timeout,
                        throttled: se.throttled + e.throttled,
                        rejected: se.rejected + e.rejected,
                        protocol: se.protocol + e.protocol,
                        other: se.other + e.other,
                        tls: se.tls + e.tls,
                    },
                }
            })
    }

    /// The report of one signal between the snapshots `before` and `after`.
    fn between(before: &Stats, after: &Stats) -> Self {
        let (b, a) = (&before.dropped, &after.dropped);
        let (bf, af) = (&before.export.failures, &after.export.failures);
        Self {
            delivered: after.exported - before.exported,
            spooled: after.spool.written - before.spool.written,
            dropped: Dropped {
                rejected: a.rejected - b.rejected,
                export_failed: a.export_failed - b.export_failed,
                shutdown: a.shutdown - b.shutdown,
                evicted: a.evicted - b.evicted,
                spool_full: a.spool_full - b.spool_full,
                spool_corrupt: a.spool_corrupt - b.spool_corrupt,
                ..Dropped::default()
            },
            failures: ExportFailures {
                unavailable: af.unavailable - bf.unavailable,
                timeout: af.timeout - bf.timeout,
                throttled: af.throttled - bf.throttled,
                rejected: af.rejected - bf.rejected,
                protocol: af.protocol - bf.protocol,
                other: af.other - bf.other,
                tls: af.tls - bf.tls,
            },
        }
    }
}

/// `name count, name count` for the non-zero counts of `counts`; `none` if
/// all are zero.
fn non_zero(counts: &[(&'static str, u64)]) -> String {
    let parts: Vec<String> = counts
        .iter()
        .filter(|(_, n)| *n > 0)
        .map(|(name, n)| format!("{name} {n}"))
        .collect();
    if parts.is_empty() {
        "none".to_owned()
    } else {
        parts.join(", ")
    }
}

/// Why a flush did not deliver everything it waited for.
#[derive(Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FlushError {
    /// Spans it waited for were dropped (the receiver refused them, or
    /// their requests failed for good); the rest were delivered or spooled.
    #[error(
        "flush: {} spans dropped ({}); failed export attempts: {}{}",
        report.dropped.total(),
        non_zero(&report.dropped.by_reason()),
        non_zero(&report.failures.by_kind()),
        last_error.as_deref().map(|e| format!("; last error: {e}")).unwrap_or_default()
    )]
    Dropped {
        /// What became of the spans (boxed: it is a few dozen counters).
        report: Box<FlushReport>,
        /// The most recent export error, as
        /// [`Engine::last_export_error`](crate::Engine::last_export_error)
        /// says it.
        last_error: Option<String>,
    },
    /// The deadline passed with spans still in rings, in flight or in the
    /// spool (they stay counted there, and go on their way).
    #[error(
        "flush timed out with spans still in rings, in flight or in the spool \
         ({} delivered, {} dropped; failed export attempts: {}{})",
        report.delivered,
        report.dropped.total(),
        non_zero(&report.failures.by_kind()),
        last_error.as_deref().map(|e| format!("; last error: {e}")).unwrap_or_default()
    )]
    Timeout {
        /// What became of the spans that did get somewhere.
        report: Box<FlushReport>,
        /// The most recent export error, if any.
        last_error: Option<String>,
    },
    /// The engine was shut down, or never had an exporter
    /// (`EngineBuilder::export(false)`, every signal's
    /// `OTEL_*_EXPORTER=none`, disabled).
    #[error("the engine is not exporting (shut down, or built with export off)")]
    NotExporting,
}

debug_as_display!(FlushError, ShutdownError);

/// Why [`Workers::flush`] returned before everything was delivered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Unflushed {
    /// The deadline passed first.
    Timeout,
    /// The workers were stopped.
    Stopped,
}

/// What [`Engine::shutdown`](crate::Engine::shutdown) did with the spans
/// it found on their way (in the rings, in flight, in the spool), counted
/// from its start to its end.
///
/// ```
/// # use std::time::Duration;
/// let engine = otlpx::Engine::builder().endpoint("http://127.0.0.1:1").build()?;
/// engine.tracer("demo", "").start("work").end();
/// // Nothing listens on port 1: the span cannot be delivered in time.
/// let report = match engine.shutdown(Duration::from_millis(200)) {
///     Ok(report) => report,
///     Err(e) => e.report,
/// };
/// assert_eq!(report.delivered + report.spooled + report.dropped + report.in_rings, 1);
/// # Ok::<(), otlpx::BuildError>(())
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ShutdownReport {
    /// Items (spans, log records) the receiver acknowledged during the
    /// shutdown, every signal's.
    pub delivered: u64,
    /// Items written to the spool during the shutdown, for a later engine
    /// to send.
    pub spooled: u64,
    /// Items dropped during the shutdown, for any reason (abandoned
    /// unanswered, refused, …: [`Stats::dropped`](crate::Stats) of each
    /// signal says which).
    pub dropped: u64,
    /// Items left in the rings, never sent: recorded while the engine
    /// stopped, or found there with no room to send them and no spool.
    pub in_rings: u64,
    /// Items in the spool at the end, earlier engines' included: what the
    /// next engine on the same directory will send first.
    pub spool_pending: u64,
    /// Whether everything was delivered before the deadline (the flush
    /// completed), the spool emptied included.
    pub flushed: bool,
}

/// A shutdown that lost spans: some were dropped or left in the rings
/// (spooled ones are not lost). The report says how many.
#[derive(Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "shutdown could not deliver or spool every span: {} dropped, {} left in the rings \
     ({} delivered, {} spooled)",
    report.dropped,
    report.in_rings,
    report.delivered,
    report.spooled
)]
#[non_exhaustive]
pub struct ShutdownError {
    /// What the shutdown did.
    pub report: ShutdownReport,
}

/// The running workers and their runtime; owned by the engine.
pub(crate) struct Workers {
    shared: Arc<Shared>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    /// The spool writer thread, with a spool.
    spool_writer: Mutex<Option<JoinHandle<()>>>,
    runtime: Mutex<Option<tokio::runtime::Runtime>>,
}

/// What a worker thread reports once it has started.
pub(crate) struct Started {
    /// The core it is pinned to, if any.
    pub(crate) pinned: Option<usize>,
}

impl Workers {
    /// Starts `settings.workers` threads draining `recorder`'s rings into
    /// `transport` (built by `make_transport` inside the runtime).
    ///
    /// # Errors
    ///
    /// A message when the runtime, the transport or a thread cannot start.
    ///
    /// The compression level must already be valid (the engine checks it,
    /// naming the setting, before it calls this).
    pub(crate) fn start(
        recorder: Arc<Recorder>,
        catalog: Arc<Catalog>,
        counters: Arc<SignalCounters>,
        settings: WorkerSettings,
        spool: Option<Spool>,
        make_transports: impl FnOnce() -> Result<[Option<Arc<dyn Transport>>; SIGNALS], String>,
    ) -> Result<(Self, Vec<Started>), String> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("otlpx-io")
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start the I/O runtime: {e}"))?;
        let transports = {
            let _entered = runtime.enter();
            make_transports()?
        };
        let workers = settings
            .workers
            .clamp(1, recorder.rings(Signal::Traces).len());
        let shared = Arc::new(Shared {
            gate: Gate {
                state: Mutex::new(GateState {
                    sending: 0,
                    held: 0,
                    retrying: VecDeque::new(),
                    evicting: 0,
                }),
                changed: Condvar::new(),
                slot_freed: Notify::new(),
                max: settings.max_in_flight.max(1),
                max_bytes: settings.max_in_flight_bytes.max(1) as u64,
                counters: Arc::clone(&counters),
            },
            runtime: runtime.handle().clone(),
            recorder,
            catalog,
            transports,
            counters,
            settings,
            flush_epoch: AtomicU64::new(0),
            flushed: (0..workers).map(|_| AtomicU64::new(0)).collect(),
            stop: AtomicBool::new(false),
            last_error: Mutex::new(None),
            failure_log: std::array::from_fn(|_| RateLimiter::new(DIAGNOSTIC_INTERVAL)),
            rejected_log: RateLimiter::new(DIAGNOSTIC_INTERVAL),
            retry_log: std::array::from_fn(|_| RateLimiter::new(DIAGNOSTIC_INTERVAL)),
            evicted_log: RateLimiter::new(DIAGNOSTIC_INTERVAL),
            spool: Mutex::new(spool.map(Arc::new)),
            spool_appended: Notify::new(),
            spool_resume: Mutex::new(SpoolPause::none()),
            spool_wake: Notify::new(),
            spool_log: RateLimiter::new(DIAGNOSTIC_INTERVAL),
            spool_queue: SpoolQueue::default(),
        });
        let mut spool_writer = None;
        if shared.spool().is_some() {
            let mine = Arc::clone(&shared);
            let spawned = std::thread::Builder::new()
                .name("otlpx-spool".into())
                .spawn(move || mine.write_spool());
            spool_writer =
                Some(spawned.map_err(|e| format!("cannot start the spool thread: {e}"))?);
            runtime.spawn(Arc::clone(&shared).drain_spool());
        }
        let (tx, rx) = std::sync::mpsc::channel();
        let mut threads = Vec::with_capacity(workers);
        for index in 0..workers {
            let mine = Arc::clone(&shared);
            let tx = tx.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("otlpx-worker-{index}"))
                .spawn(move || Worker::new(mine, index, workers).run(&tx));
            match spawned {
                Ok(t) => threads.push(t),
                Err(e) => {
                    shared.spool_queue.close();
                    shared.stop.store(true, Ordering::Release);
                    for t in &threads {
                        t.thread().unpark();
                    }
                    return Err(format!("cannot start worker thread {index}: {e}"));
                }
            }
        }
        drop(tx);
        let started = rx.iter().take(workers).collect();
        Ok((
            Self {
                shared,
                threads: Mutex::new(threads),
                spool_writer: Mutex::new(spool_writer),
                runtime: Mutex::new(Some(runtime)),
            },
            started,
        ))
    }

    /// Whether the workers send `signal`.
    pub(crate) fn exports(&self, signal: Signal) -> bool {
        self.shared.settings.exported[signal.index()]
    }

    fn wake_all(&self) {
        for t in self
            .threads
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
        {
            t.thread().unpark();
        }
    }

    /// Sends everything recorded before the call and waits for the answers
    /// (and, with a spool, for the spool to empty), until `deadline`.
    pub(crate) fn flush(&self, deadline: Instant) -> Result<(), Unflushed> {
        let s = &*self.shared;
        // Acquire: pairs with the Release store in `shutdown`.
        if s.stop.load(Ordering::Acquire) {
            return Err(Unflushed::Stopped);
        }
        // Release: pairs with the Acquire load in `Worker::run`; spans
        // recorded before this call (committed with Release, seen by this
        // thread) are visible to the worker that acknowledges the epoch.
        let epoch = s.flush_epoch.fetch_add(1, Ordering::AcqRel) + 1;
        self.wake_all();
        let mut st = s.gate.lock();
        loop {
            // Acquire: pairs with the Release store of an acknowledgement;
            // the requests that flush sent are counted in `held` by then.
            let acked = s.flushed.iter().all(|f| f.load(Ordering::Acquire) >= epoch);
            // The spool's count as the counters keep it, not the spool's
            // own: a record leaves the spool just before it is counted
            // out, and a flush that returns must see it in `stats()`.
            if acked && st.held == 0 && s.spool_queue.idle() && s.counters.spooled() == 0 {
                return Ok(());
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(Unflushed::Timeout);
            }
            st = s
                .gate
                .changed
                .wait_timeout(st, (deadline - now).min(Duration::from_millis(50)))
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    /// Flushes until `deadline`, then stops the workers and the runtime;
    /// requests still unanswered are abandoned and counted as dropped
    /// (`shutdown`). Idempotent.
    pub(crate) fn shutdown(&self, deadline: Instant) -> Result<(), Unflushed> {
        let Some(runtime) = self
            .runtime
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        else {
            return Ok(());
        };
        let abandoned_before = self.shared.counters.abandoned();
        let flushed = self.flush(deadline);
        // Release: pairs with the Acquire loads in workers and `flush`.
        self.shared.stop.store(true, Ordering::Release);
        self.wake_all();
        self.shared.gate.notify();
        let threads =
            std::mem::take(&mut *self.threads.lock().unwrap_or_else(PoisonError::into_inner));
        for t in threads {
            // A worker only panics on a bug; its spans stay counted where
            // they were (rings or in flight), so carry on shutting down.
            let _ = t.join();
        }
        // Dropping the runtime drops unfinished export tasks, which settles
        // them as abandoned. Done on a thread of its own: a runtime cannot
        // be dropped from inside an async context, where a caller may be.
        // The runtime's thread drops the tasks as it exits: give it a
        // moment even when the deadline has passed, so that what it
        // abandons is counted before we return.
        let grace = deadline
            .saturating_duration_since(Instant::now())
            .max(ABANDON_GRACE);
        let _ = std::thread::Builder::new()
            .name("otlpx-shutdown".into())
            .spawn(move || runtime.shutdown_timeout(grace))
            .map(JoinHandle::join);
        // Once per shutdown (this runs once): not rate-limited.
        let abandoned = self
            .shared
            .counters
            .abandoned()
            .saturating_sub(abandoned_before);
        if abandoned > 0 {
            tracing::warn!(
                spans = abandoned,
                "otlpx: shutdown abandoned export requests still unanswered \
                 at its deadline; their spans were dropped"
            );
        }
        // The export tasks are gone: the writer ends once it has written
        // what they queued.
        self.shared.spool_queue.close();
        let writer = self
            .spool_writer
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(writer) = writer {
            // It only panics on a bug; what it had not written stays
            // counted in flight.
            let _ = writer.join();
        }
        // Unlocks the directory for a later engine (the drainer's tasks,
        // which held it too, went with the runtime).
        let spool = self
            .shared
            .spool
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(spool) = spool {
            self.shared.sync_spool(&spool);
            self.shared.counters.spool_bytes(spool.disk_bytes());
        }
        let suppressed = self.shared.take_suppressed();
        if suppressed > 0 {
            tracing::warn!(
                suppressed,
                "otlpx: export warnings held back by the rate limit and not \
                 reported before shutdown"
            );
        }
        flushed
    }

    /// The last export error, for diagnostics.
    pub(crate) fn last_error(&self) -> Option<String> {
        self.shared
            .last_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// Logs a worker's stop when dropped.
struct LogStop(usize);

impl Drop for LogStop {
    fn drop(&mut self) {
        tracing::debug!(worker = self.0, "otlpx: export worker stopped");
    }
}

/// One worker thread's state.
struct Worker {
    shared: Arc<Shared>,
    index: usize,
    /// Worker `index` of `workers` owns rings `index`, `index + workers`, …
    /// of every signal.
    workers: usize,
    batcher: Batcher,
    /// Each signal's compressor, by [`Signal::index`].
    compressors: [Compressor; SIGNALS],
    frame: BytesMut,
}

impl Worker {
    fn new(shared: Arc<Shared>, index: usize, workers: usize) -> Self {
        let compressors = Signal::ALL.map(|signal| {
            Compressor::new(
                shared.settings.signal(signal).compression,
                shared.settings.compression_level,
            )
            .expect("level validated by the engine before Workers::start")
        });
        Self {
            shared,
            index,
            workers,
            batcher: Batcher::default(),
            compressors,
            frame: BytesMut::new(),
        }
    }

    fn my_rings(&self, signal: Signal) -> impl Iterator<Item = &Ring> + Clone + '_ {
        self.shared.rings_of(signal, self.index, self.workers)
    }

    /// Every ring this worker drains, every exported signal's.
    fn all_my_rings(&self) -> impl Iterator<Item = &Ring> + '_ {
        self.shared
            .settings
            .exported()
            .flat_map(move |signal| self.my_rings(signal))
    }

    fn pending(&self, signal: Signal) -> Pending {
        Pending::of(
            self.my_rings(signal),
            &self.shared.settings.signal(signal).policy,
        )
    }

    fn run(mut self, started: &std::sync::mpsc::Sender<Started>) {
        let pinned = self.pin();
        let _ = started.send(Started { pinned });
        tracing::debug!(
            worker = self.index,
            pinned,
            rings = self.all_my_rings().count(),
            "otlpx: export worker started"
        );
        // Logs the stop however `run` ends (a panic included).
        let _stopped = LogStop(self.index);
        let doorbell = Arc::new(Doorbell::new(std::thread::current()));
        let shared = Arc::clone(&self.shared);
        let settings = &shared.settings;
        // Per signal: whether its rings were empty at the last look (the
        // rings start so; if not, the first look sets the level again).
        let mut empty = [true; SIGNALS];
        for signal in settings.exported() {
            let policy = settings.signal(signal).policy;
            for ring in self.my_rings(signal) {
                ring.set_doorbell(Arc::clone(&doorbell), policy.sleep_wake_bytes(ring, true));
            }
        }
        // Per signal: since when its oldest item has waited at most. When
        // its rings were last seen empty; for a prompt signal, when its
        // first record was seen, which woke the worker as it came.
        let mut since = [Instant::now(); SIGNALS];
        // Starts asleep: the low wake level is set.
        let mut last_full = since[0] - IDLE_AFTER;
        let mut napping = false;
        let mut acked = 0;
        loop {
            // Acquire (both): pair with the Release stores in `flush` and
            // `shutdown`.
            let stop = self.shared.stop.load(Ordering::Acquire);
            let epoch = self.shared.flush_epoch.load(Ordering::Acquire);
            let flushing = epoch > acked || stop;
            let now = Instant::now();
            // The signal whose batch is due, if any; and how long until
            // the next one may be.
            let mut due = None;
            let mut wait = Duration::MAX;
            for signal in settings.exported() {
                let policy = settings.signal(signal).policy;
                let pending = self.pending(signal);
                let i = signal.index();
                let is_empty = pending.spans == 0;
                if is_empty || (policy.prompt && empty[i]) {
                    since[i] = now;
                }
                if policy.prompt && is_empty != empty[i] && !napping {
                    // Any record wakes the worker while none waits; the
                    // usual level once one does (see `Policy::prompt`).
                    for ring in self.my_rings(signal) {
                        ring.set_wake_bytes(policy.sleep_wake_bytes(ring, is_empty));
                    }
                }
                empty[i] = is_empty;
                if !is_empty && policy.is_full(pending) {
                    last_full = now;
                }
                if due.is_none() && policy.due(pending, now - since[i], flushing) {
                    due = Some(signal);
                }
                wait = wait.min(if !is_empty {
                    policy.delay.saturating_sub(now - since[i])
                } else if policy.prompt {
                    PROMPT_IDLE_WAIT
                } else {
                    policy.delay
                });
            }
            if let Some(signal) = due {
                if !self.send_one(signal, stop) {
                    if stop {
                        self.spool_rest();
                        return;
                    }
                    // Counted committed but not yet visible: a moment.
                    std::thread::yield_now();
                }
                continue;
            }
            if epoch > acked {
                acked = epoch;
                // Release: pairs with the Acquire load in `flush`.
                self.shared.flushed[self.index].store(epoch, Ordering::Release);
                self.shared.gate.notify();
            }
            if stop {
                self.spool_rest();
                return;
            }
            let busy = now - last_full < IDLE_AFTER;
            if busy != napping {
                napping = busy;
                for signal in settings.exported() {
                    let policy = settings.signal(signal).policy;
                    let empty = empty[signal.index()];
                    for ring in self.my_rings(signal) {
                        ring.set_wake_bytes(if busy {
                            ring.capacity_bytes() as u64 / 2
                        } else {
                            policy.sleep_wake_bytes(ring, empty)
                        });
                    }
                }
            }
            if napping {
                wait = wait.min(NAP);
            }
            doorbell.sleep(wait, || {
                // Relaxed: re-checked with Acquire at the top of the loop.
                shared.flush_epoch.load(Ordering::Relaxed) == acked
                    && !shared.stop.load(Ordering::Relaxed)
                    // A prompt signal's first record may have come since
                    // the look above, before the sleep was announced, and
                    // not rung: look again (a ring missed even so waits
                    // at most `PROMPT_IDLE_WAIT`).
                    && settings.exported().all(|signal| {
                        !settings.signal(signal).policy.prompt
                            || !empty[signal.index()]
                            || self.pending(signal).spans == 0
                    })
            });
        }
    }

    /// Pins this thread per the settings; the core, if pinned.
    fn pin(&self) -> Option<usize> {
        let cores = &self.shared.settings.cores;
        if cores.is_empty() {
            return None;
        }
        let core = cores[self.index % cores.len()];
        core_affinity::set_for_current(core_affinity::CoreId { id: core }).then_some(core)
    }

    /// Takes one batch of `signal` and sends it. False if nothing was taken
    /// (nothing visible yet, or stopping with the gate closed).
    fn send_one(&mut self, signal: Signal, stop: bool) -> bool {
        let shared = Arc::clone(&self.shared);
        // Take the slot before the items: items are in a ring or on their
        // way, never held by a waiting worker. A stopping worker waits for
        // nothing.
        // Drop oldest: with no room, and a ring half full (it would soon
        // drop new items), the oldest request waiting for a retry goes.
        // Below that the rings hold the items: an outage they can absorb
        // loses nothing.
        let evict = || {
            shared.settings.overflow == Overflow::DropOldest
                && shared
                    .settings
                    .exported()
                    .flat_map(|s| shared.rings_of(s, self.index, self.workers))
                    .any(|ring| 2 * ring.counters().used_bytes >= ring.capacity_bytes() as u64)
        };
        if !shared
            .gate
            .enter(|| stop || shared.stop.load(Ordering::Acquire), evict)
        {
            return false;
        }
        let mut in_flight = InFlight {
            shared: Arc::clone(&shared),
            signal,
            spans: 0,
            bytes: 0,
            settled: true,
            evicted: false,
            sending: true,
            request: None,
        };
        let items = self.take(signal);
        if items == 0 {
            return false;
        }
        in_flight.spans = items as u64;
        in_flight.settled = false;
        let uncompressed = self.frame.len();
        let body = match self.body(signal, items) {
            Ok(body) => body,
            Err(e) => {
                shared.note_error(e);
                shared.counters[signal].attempt_failed(FailureKind::Other);
                in_flight.settle(Settled::Failed);
                return true;
            }
        };
        shared.counters[signal].sent(items, uncompressed, body.len());
        in_flight.bytes = body.len();
        shared.gate.add_bytes(signal, body.len());
        let compression = shared.settings.signal(signal).compression;
        let request = ExportRequest::new(signal, body, compression, items);
        in_flight.request = Some(request.clone());
        shared.runtime.spawn(async move {
            let shared = Arc::clone(&in_flight.shared);
            let outcome = shared.deliver(&request, &mut in_flight.sending).await;
            in_flight.finish(outcome);
        });
        true
    }

    /// Frames one batch of `signal` from this worker's rings into
    /// `self.frame`; the items framed. Records of another signal found
    /// there (a bug upstream) are settled as failed, with a message.
    fn take(&mut self, signal: Signal) -> usize {
        let shared = &self.shared;
        let policy = shared.settings.signal(signal).policy;
        let items = self.batcher.take(
            signal,
            shared.rings_of(signal, self.index, self.workers),
            &shared.catalog,
            Max {
                items: policy.max_spans,
                bytes: policy.max_bytes,
            },
            &mut self.frame,
            true,
        );
        let foreign = self.batcher.take_foreign();
        if foreign > 0 {
            shared.counters[signal].settle(foreign as u64, Settled::Failed);
            shared.note_error(format!(
                "{foreign} records of another signal were found in the {signal} rings \
                 and dropped (a bug in otlpx)"
            ));
        }
        items
    }

    /// The request body of the `items` items of `signal` framed in
    /// `self.frame`, compressed as configured; a compression failure is
    /// logged and returned.
    fn body(&mut self, signal: Signal, items: usize) -> Result<Bytes, String> {
        let compressor = &mut self.compressors[signal.index()];
        if compressor.is_identity() {
            return Ok(self.frame.split().freeze());
        }
        let mut out = Vec::new();
        match compressor.compress(&self.frame, &mut out) {
            Ok(()) => Ok(Bytes::from(out)),
            Err(e) => {
                self.shared
                    .warn_failed(FailureKind::Other, items as u64, &e);
                Err(e)
            }
        }
    }

    /// At stop, with the gate closed: writes what the rings hold to the
    /// spool, request by request, without sending it.
    fn spool_rest(&mut self) {
        let shared = Arc::clone(&self.shared);
        if shared.spool().is_none() {
            return;
        }
        for signal in shared.settings.exported() {
            loop {
                let items = self.take(signal);
                if items == 0 {
                    break;
                }
                let counters = &shared.counters[signal];
                let Ok(body) = self.body(signal, items) else {
                    counters.settle(items as u64, Settled::Shutdown);
                    continue;
                };
                let compression = shared.settings.signal(signal).compression;
                let request = ExportRequest::new(signal, body, compression, items);
                let how = shared.to_spool(&request, Settled::Shutdown);
                counters.settle(items as u64, how);
            }
        }
    }
}
