//! Workers: plain threads, pinned to cores when asked, each owning a set of
//! rings. A worker drains its rings in batches ([`crate::batch`]), frames
//! and compresses each request, and hands it to the transport on the
//! engine's own tokio runtime; it never waits on the application.
//!
//! # Sleeping and waking
//!
//! A worker with nothing due parks, hanging a [`Doorbell`] on its rings: a
//! producer that fills a ring past the wake level unparks it, and the
//! schedule delay bounds the sleep otherwise. An idle engine wakes each
//! worker once per schedule delay.
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
//! A [`Gate`] bounds requests in flight across all workers, by count and
//! by bytes. A worker takes a slot before it takes spans from its rings,
//! so spans are only ever in a ring or in a request that is on its way
//! (sent, or waiting to be sent again: [`crate::transport::retry`]); while
//! the gate is closed the rings are the queue, and a full ring drops
//! (counted) rather than block a producer. A request waiting for a retry
//! keeps its slot; under [`Overflow::DropOldest`], a worker that finds the
//! gate closed while one of its rings is half full (so would soon drop new
//! spans) evicts the oldest such request, one at a time, so that in an
//! outage longer than the rings can absorb the newest spans are the ones
//! kept. Every request is settled exactly once in
//! [`ExportCounters`]: answered, failed, evicted, or abandoned at shutdown
//! (its task dropped).
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

use crate::batch::{Batcher, Max, Pending, Policy};
use crate::compress::Compressor;
use crate::config::Compression;
use crate::config::{Overflow, RetryPolicy};
use crate::encode::Catalog;
use crate::record::Recorder;
use crate::ring::{Doorbell, Ring};
use crate::ring::{SIGNALS, Signal};
use crate::spool::{Appended, Claimed, Record, Spool, SpoolError};
use crate::telemetry::limiter::{DIAGNOSTIC_INTERVAL, RateLimiter};
use crate::telemetry::{
    Dropped, ExportFailures, FailureKind, KINDS, Settled, SignalCounters, Stats, Unspooled,
};
use crate::transport::{ExportError, ExportRequest, Retry, Transport};
use bytes::{Bytes, BytesMut};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
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

/// Spooled requests in flight at once: enough to hide a round trip while
/// the spool drains after an outage, few enough that the spool adds at
/// most two requests' bytes to memory.
const SPOOL_WINDOW: usize = 2;

/// How often the spool drainer looks for records when nothing wakes it
/// (appends do): a backstop.
const SPOOL_IDLE: Duration = Duration::from_secs(1);

/// How the workers run; from the engine's configuration.
#[derive(Clone, Debug)]
pub(crate) struct WorkerSettings {
    pub(crate) workers: usize,
    /// Core ids to pin worker `i` to (`cores[i % len]`); empty: no pinning.
    pub(crate) cores: Vec<usize>,
    /// Each signal's batching, compression and time bounds, by
    /// [`Signal::index`].
    pub(crate) signals: [SignalSettings; SIGNALS],
    /// Which signals the workers send (the others' rings are left to
    /// `Engine::drain`), by [`Signal::index`].
    pub(crate) exported: [bool; SIGNALS],
    pub(crate) compression_level: Option<i32>,
    pub(crate) retry: RetryPolicy,
    pub(crate) max_in_flight: usize,
    pub(crate) max_in_flight_bytes: usize,
    pub(crate) overflow: Overflow,
}

impl WorkerSettings {
    /// The settings of `signal`.
    fn signal(&self, signal: Signal) -> &SignalSettings {
        &self.signals[signal.index()]
    }

    /// The signals the workers send.
    fn exported(&self) -> impl Iterator<Item = Signal> + Clone + '_ {
        Signal::ALL.into_iter().filter(|s| self.exported[s.index()])
    }
}

/// How one signal's requests are batched and sent.
#[derive(Clone, Copy, Debug)]
pub(crate) struct SignalSettings {
    pub(crate) policy: Policy,
    pub(crate) compression: Compression,
    /// Bound on one attempt.
    pub(crate) timeout: Duration,
    /// Bound on all attempts of a request, from its first.
    pub(crate) deadline: Duration,
}

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
    /// (`EngineBuilder::export(false)`, `OTEL_TRACES_EXPORTER=none`,
    /// disabled).
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

/// Bounds what is in flight: the requests being sent at once by count
/// (`max_in_flight`), everything held (being sent, waiting for a retry, or
/// for the spool writer) by bytes (`max_in_flight_bytes`). A request
/// waiting for a retry gives its send slot back: in an outage, requests
/// pile up in memory until the byte budget is full, not until a handful of
/// them wait. Also where flush waits, and where the oldest request waiting
/// for a retry is evicted to make room once the bytes are full (see
/// [`Overflow`]).
struct Gate {
    state: Mutex<GateState>,
    /// Wakes the worker threads waiting in `enter` (and flush).
    changed: Condvar,
    /// Wakes the retries waiting for a send slot (async, on the runtime).
    slot_freed: Notify,
    /// Bound on the requests being sent at once.
    max: usize,
    /// Bound on the bytes of requests held: a request may start while
    /// fewer are, so they stay under this plus one request.
    max_bytes: u64,
    /// Where the bytes in flight are counted (the one count, also each
    /// signal's `in_flight_bytes` gauge); the budget is every signal's.
    counters: Arc<SignalCounters>,
}

struct GateState {
    /// Requests being sent (an attempt under way, or about to be), each
    /// holding a send slot.
    sending: usize,
    /// Requests held, whatever they wait for: `sending`, waiting for a
    /// retry, or for a send slot after one. Flush waits for 0.
    held: usize,
    /// Requests waiting to be retried, oldest first: each wakes when its
    /// `Notify` fires and, finding itself gone from here, settles as
    /// evicted.
    retrying: VecDeque<Arc<Notify>>,
    /// Requests evicted that have not left yet: at most one eviction is
    /// under way, so a worker waiting for room evicts one request at a time.
    evicting: usize,
}

impl Gate {
    fn lock(&self) -> MutexGuard<'_, GateState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes a send slot for a new request, waiting while `max` requests
    /// are being sent or `max_bytes` bytes are held, until `give_up()`
    /// (checked at least every few ms) says to stop waiting. While the
    /// bytes are full, if `evict()` says so, evicts the oldest request
    /// waiting to be retried.
    fn enter(&self, give_up: impl Fn() -> bool, evict: impl Fn() -> bool) -> bool {
        let mut st = self.lock();
        loop {
            let bytes_full = self.counters.in_flight_bytes() >= self.max_bytes;
            if st.sending < self.max && !bytes_full {
                break;
            }
            if give_up() {
                return false;
            }
            // Only bytes are freed by an eviction: a request waiting for a
            // retry holds no send slot.
            if bytes_full
                && st.evicting == 0
                && evict()
                && let Some(victim) = st.retrying.pop_front()
            {
                st.evicting += 1;
                victim.notify_one();
            }
            st = self
                .changed
                .wait_timeout(st, Duration::from_millis(5))
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        st.sending += 1;
        st.held += 1;
        true
    }

    /// Counts `bytes` more in flight (once a request's size is known). No
    /// lock or wake-up: more bytes only keep waiters waiting.
    fn add_bytes(&self, signal: Signal, bytes: usize) {
        self.counters[signal].in_flight_bytes_changed(bytes as i64);
    }

    /// Uncounts `bytes` that outlived their slot (written to the spool).
    fn release_bytes(&self, signal: Signal, bytes: usize) {
        let st = self.lock();
        // Under the lock, before the wake-up: as in `leave`.
        self.counters[signal].in_flight_bytes_changed(-(bytes as i64));
        drop(st);
        self.changed.notify_all();
    }

    /// A request is settled: frees its bytes, and its send slot if it
    /// `sending` holds one.
    fn leave(&self, signal: Signal, bytes: usize, evicted: bool, sending: bool) {
        let mut st = self.lock();
        st.held -= 1;
        if sending {
            st.sending -= 1;
        }
        // Under the lock, before the wake-up: a waiter either sees the
        // bytes gone or is woken after they went.
        self.counters[signal].in_flight_bytes_changed(-(bytes as i64));
        if evicted {
            st.evicting -= 1;
        }
        drop(st);
        self.changed.notify_all();
        if sending {
            self.slot_freed.notify_waiters();
        }
    }

    /// Waits `wait` before a retry, evictable meanwhile, without a send
    /// slot (`*sending` goes false as the slot is given back); then takes
    /// one again (`*sending` true). False if the request was evicted
    /// (before or during the wait): then it holds no slot.
    async fn wait_to_retry(&self, wait: Duration, sending: &mut bool) -> bool {
        let wake = Arc::new(Notify::new());
        {
            let mut st = self.lock();
            st.retrying.push_back(Arc::clone(&wake));
            st.sending -= 1;
            *sending = false;
        }
        self.changed.notify_all();
        self.slot_freed.notify_waiters();
        // Either way: woken early (evicted) or not.
        let _ = tokio::time::timeout(wait, wake.notified()).await;
        // Decided under the lock: an eviction that raced the end of the
        // wait has already taken the request off the queue, and counts on
        // it leaving.
        {
            let mut st = self.lock();
            match st.retrying.iter().position(|w| Arc::ptr_eq(w, &wake)) {
                Some(i) => {
                    st.retrying.remove(i);
                }
                None => return false,
            }
        }
        // A send slot again; no longer evictable meanwhile (it is not in
        // `retrying`), and its bytes stay counted.
        loop {
            let freed = self.slot_freed.notified();
            {
                let mut st = self.lock();
                if st.sending < self.max {
                    st.sending += 1;
                    *sending = true;
                    return true;
                }
            }
            // Created before the check, `freed` catches a slot freed
            // after it (`notify_waiters` wakes every `Notified` already
            // created); the bound on the wait is a backstop.
            let _ = tokio::time::timeout(Duration::from_millis(50), freed).await;
        }
    }

    /// Wakes waiters to re-check their conditions.
    fn notify(&self) {
        drop(self.lock());
        self.changed.notify_all();
    }
}

/// Requests on their way to the spool, appended in order by the spool
/// writer thread ([`Shared::write_spool`]). A disk that stalls (a segment
/// created or synced, a file unlinked, a busy journal: hundreds of
/// milliseconds on a shared disk) then holds up neither the I/O thread nor
/// the in-flight slots the workers wait for: a request leaves its slot as
/// it enters this queue. Its bytes stay counted in the in-flight budget
/// until written, so the budget bounds this queue too: a disk slower than
/// what comes in makes the workers wait for bytes, as a slow receiver
/// does.
#[derive(Default)]
struct SpoolQueue {
    state: Mutex<SpoolQueueState>,
    changed: Condvar,
}

#[derive(Default)]
struct SpoolQueueState {
    jobs: VecDeque<SpoolJob>,
    /// The writer is appending a request it took off `jobs`.
    writing: bool,
    /// No more jobs: the writer ends once `jobs` is empty.
    closed: bool,
}

/// A request for the spool, and how it settles if the spool cannot take
/// it.
struct SpoolJob {
    request: ExportRequest,
    otherwise: Settled,
}

impl SpoolQueue {
    fn lock(&self) -> MutexGuard<'_, SpoolQueueState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues `job`; gives it back if the writer has stopped (shutdown).
    fn push(&self, job: SpoolJob) -> Result<(), SpoolJob> {
        let mut st = self.lock();
        if st.closed {
            return Err(job);
        }
        st.jobs.push_back(job);
        drop(st);
        self.changed.notify_one();
        Ok(())
    }

    /// The next job, waiting for one; `None` once closed and empty.
    fn take(&self) -> Option<SpoolJob> {
        let mut st = self.lock();
        loop {
            if let Some(job) = st.jobs.pop_front() {
                st.writing = true;
                return Some(job);
            }
            if st.closed {
                return None;
            }
            st = self
                .changed
                .wait(st)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// The job taken last is written (and settled).
    fn done(&self) {
        self.lock().writing = false;
    }

    /// Nothing queued or being written.
    fn idle(&self) -> bool {
        let st = self.lock();
        st.jobs.is_empty() && !st.writing
    }

    /// Refuses new jobs; the writer ends after the queued ones.
    fn close(&self) {
        self.lock().closed = true;
        self.changed.notify_all();
    }
}

/// What workers and the engine share.
struct Shared {
    recorder: Arc<Recorder>,
    catalog: Arc<Catalog>,
    /// Each exported signal's transport (its endpoints, headers, TLS), by
    /// [`Signal::index`].
    transports: [Option<Arc<dyn Transport>>; SIGNALS],
    counters: Arc<SignalCounters>,
    runtime: tokio::runtime::Handle,
    settings: WorkerSettings,
    gate: Gate,
    /// Flush requests so far. Written by `flush`, read by workers.
    flush_epoch: AtomicU64,
    /// Per worker: the last flush epoch it completed.
    flushed: Box<[AtomicU64]>,
    stop: AtomicBool,
    last_error: Mutex<Option<String>>,
    /// Rate limits of the WARN diagnostics: one per failure kind.
    failure_log: [RateLimiter; KINDS],
    /// Rate limit of the partial-success WARN diagnostic.
    rejected_log: RateLimiter,
    /// Rate limits of the retry WARN diagnostics: one per failure kind.
    retry_log: [RateLimiter; KINDS],
    /// Rate limit of the eviction WARN diagnostic.
    evicted_log: RateLimiter,
    /// The disk spool, if configured; taken (and so unlocked) at shutdown.
    spool: Mutex<Option<Arc<Spool>>>,
    /// Wakes the spool drainer: something was appended.
    spool_appended: Notify,
    /// When the spool drainer may send again after a failed attempt.
    spool_resume: Mutex<SpoolPause>,
    /// Wakes a paused spool drainer: a live request was answered, so the
    /// receiver is back.
    spool_wake: Notify,
    /// Rate limit of the spool WARN diagnostics.
    spool_log: RateLimiter,
    /// Requests for the spool writer thread.
    spool_queue: SpoolQueue,
}

/// The spool drainer's pause after failed attempts.
#[derive(Clone, Copy, Debug)]
struct SpoolPause {
    /// When it may send again.
    until: Instant,
    /// Attempts failed in a row (the backoff's exponent).
    failures: u32,
    /// The receiver asked for the pause (throttling): a live request
    /// answered meanwhile does not end it.
    throttled: bool,
}

impl SpoolPause {
    fn none() -> Self {
        Self {
            until: Instant::now(),
            failures: 0,
            throttled: false,
        }
    }
}

/// How a request's delivery ended, before the spool has its say.
#[derive(Clone, Copy, Debug)]
enum Outcome {
    /// Answered with success; `rejected` refused (partial success).
    Answered { rejected: u64 },
    /// A final error: sending it again would not help.
    Final,
    /// Still failing with retryable errors when its deadline came.
    OutOfTime,
    /// Evicted while waiting for a retry, to make room.
    Evicted,
}

impl Shared {
    /// The rings of `signal` worker `index` of `workers` owns: `index`,
    /// `index + workers`, …
    fn rings_of(
        &self,
        signal: Signal,
        index: usize,
        workers: usize,
    ) -> impl Iterator<Item = &Ring> + Clone + '_ {
        self.recorder
            .rings(signal)
            .iter()
            .skip(index)
            .step_by(workers)
    }

    /// Keeps `message` as the last export error.
    fn note_error(&self, message: String) {
        *self
            .last_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(message);
    }

    /// The spool, while the engine runs with one.
    fn spool(&self) -> Option<Arc<Spool>> {
        self.spool
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Writes `request` to the spool: `Spooled` if it went there,
    /// `SpoolFull` if a full spool refused it, `otherwise` without a spool
    /// or when writing failed.
    fn to_spool(&self, request: &ExportRequest, otherwise: Settled) -> Settled {
        let Some(spool) = self.spool() else {
            return otherwise;
        };
        let appended = spool.append(
            signal_code(request.signal),
            compression_code(request.compression),
            u32::try_from(request.items).unwrap_or(u32::MAX),
            &request.body,
        );
        self.counters.spool_bytes(spool.disk_bytes());
        match appended {
            Ok(Appended {
                deleted,
                deleted_by_signal,
                sync_due,
            }) => {
                for signal in Signal::ALL {
                    let items = deleted_by_signal[signal.index()];
                    self.counters[signal].unspooled(items, Unspooled::Full);
                }
                if deleted > 0 {
                    self.warn_spool(
                        deleted,
                        "the spool was full: its oldest records were deleted",
                    );
                }
                if sync_due {
                    // Here, not on the I/O thread: see `write_spool`.
                    self.sync_spool(&spool);
                }
                self.spool_appended.notify_one();
                Settled::Spooled
            }
            Err(SpoolError::Full { .. }) => {
                self.warn_spool(
                    request.items as u64,
                    "the spool was full: a request that could not be delivered was dropped",
                );
                Settled::SpoolFull
            }
            Err(e) => {
                let message = e.to_string();
                self.warn_spool(request.items as u64, &message);
                self.note_error(message);
                otherwise
            }
        }
    }

    /// Syncs `spool` (a full segment's `fdatasync` can take hundreds of
    /// milliseconds), logging a failure.
    fn sync_spool(&self, spool: &Spool) {
        if let Err(e) = spool.sync() {
            // At most once a segment or a shutdown: not rate-limited.
            let error = e.to_string();
            tracing::warn!(
                error,
                "otlpx: the spool could not be synced to disk; its \
                 records are written, but may not survive a power cut"
            );
            self.note_error(error);
        }
    }

    /// The spool writer thread: appends the queued requests in order and
    /// settles them, syncing after each segment rotation. All of the
    /// spool's slow file operations (creating, syncing and deleting
    /// segments) happen here or on the drainer's blocking tasks, never on
    /// the I/O thread.
    fn write_spool(&self) {
        while let Some(job) = self.spool_queue.take() {
            let how = self.to_spool(&job.request, job.otherwise);
            let signal = job.request.signal;
            self.counters[signal].settle(job.request.items as u64, how);
            self.spool_queue.done();
            // Wakes workers waiting for bytes, and a flush waiting for the
            // queue to empty.
            self.gate.release_bytes(signal, job.request.body.len());
        }
    }

    /// Logs spans the spool lost or could not take, rate-limited.
    fn warn_spool(&self, spans: u64, what: &str) {
        let Some(suppressed) = self.spool_log.admit() else {
            return;
        };
        tracing::warn!(
            spans,
            what,
            suppressed,
            "otlpx: spool trouble; the spans were dropped \
             (`suppressed`: how many like it were held back since the last)"
        );
    }

    /// Sends what the spool holds, oldest first, [`SPOOL_WINDOW`] requests
    /// at a time, until the runtime stops. An attempt that fails for a
    /// reason sending later may mend gives its record back and pauses the
    /// drain for a backoff (the receiver's hint if it gave one).
    async fn drain_spool(self: Arc<Self>) {
        let window = Arc::new(tokio::sync::Semaphore::new(SPOOL_WINDOW));
        loop {
            // Acquire: pairs with the Release store in `shutdown`.
            if self.stop.load(Ordering::Acquire) {
                return;
            }
            let Some(spool) = self.spool() else {
                return;
            };
            if let Some(resume) = self.spool_paused_until() {
                // Paused until `resume`, or until a live request is
                // answered (then the pause is over: `resume_spool`).
                let _ = tokio::time::timeout_at(resume.into(), self.spool_wake.notified()).await;
                continue;
            }
            let Ok(permit) = Arc::clone(&window).acquire_owned().await else {
                return;
            };
            if self.spool_paused_until().is_some() {
                // An attempt failed while this waited for the window.
                continue;
            }
            let Some(claimed) = self.on_spool(&spool, Spool::claim).await else {
                return; // the runtime is stopping
            };
            match claimed {
                Claimed::Record(record) if self.spool_paused_until().is_some() => {
                    // An attempt failed while this read the record.
                    let id = record.id;
                    self.on_spool(&spool, move |spool| spool.release(id)).await;
                }
                Claimed::Record(record) => {
                    // Counted before anything else runs: a failure that
                    // pauses the drain (counted and paused without an
                    // await between) then never leaves an attempt out
                    // uncounted.
                    self.counters[signal_of(record.signal)].retried();
                    let shared = Arc::clone(&self);
                    tokio::spawn(async move {
                        shared.send_spooled(spool, record).await;
                        drop(permit);
                    });
                }
                Claimed::Lost { signal, items } => {
                    let counters = &self.counters[signal_of(signal)];
                    counters.corrupt(1, 0);
                    counters.unspooled(items, Unspooled::Corrupt);
                    self.warn_spool(items, "a spool record could not be read back");
                }
                Claimed::Empty => {
                    drop(permit);
                    drop(spool);
                    let _ = tokio::time::timeout(SPOOL_IDLE, self.spool_appended.notified()).await;
                }
            }
        }
    }

    /// When the spool drainer may send again, if that is still to come.
    fn spool_paused_until(&self) -> Option<Instant> {
        let until = self
            .spool_resume
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .until;
        (until > Instant::now()).then_some(until)
    }

    /// One attempt at a spooled request: completed if answered or refused
    /// for good, given back (and the drain paused) otherwise.
    async fn send_spooled(&self, spool: Arc<Spool>, record: Record) {
        let items = u64::from(record.items);
        let signal = signal_of(record.signal);
        let counters = &self.counters[signal];
        if signal_code(signal) != record.signal {
            // Checksummed, so written by a later version of otlpx with
            // signals this one cannot send.
            self.complete_spooled(&spool, record.id).await;
            counters.corrupt(1, record.body.len() as u64);
            counters.unspooled(items, Unspooled::Corrupt);
            return;
        }
        let request = ExportRequest::new(
            signal,
            record.body,
            compression_of(record.compression),
            record.items as usize,
        );

        let timeout = self.settings.signal(signal).timeout;
        let e = match self.attempt(request, timeout).await {
            Ok(rejected) => {
                self.resume_spool(true);
                self.complete_spooled(&spool, record.id).await;
                counters.unspooled(items, Unspooled::Delivered { rejected });
                return;
            }
            Err(e) => e,
        };
        if e.retry == Retry::Never {
            self.warn_failed(e.kind, items, &e.message);
            self.complete_spooled(&spool, record.id).await;
            counters.unspooled(items, Unspooled::Failed);
            return;
        }
        // The pause first, without an await since the failure was counted:
        // no other attempt starts meanwhile.
        {
            let mut pause = self
                .spool_resume
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            let random = u64::from_le_bytes(crate::SpanId::random().0);
            // Retries off still pace the spool: it is the retry queue of last
            // resort, so it backs off at the configured bound.
            let wait = RetryPolicy {
                enabled: true,
                ..self.settings.retry
            }
            .delay(e.retry, pause.failures, random)
            .unwrap_or(self.settings.retry.max);
            self.warn_retrying(e.kind, items, &e.message, wait);
            *pause = SpoolPause {
                until: Instant::now() + wait,
                failures: pause.failures.saturating_add(1),
                throttled: e.kind == FailureKind::Throttled,
            };
        }
        let id = record.id;
        self.on_spool(&spool, move |spool| spool.release(id)).await;
    }

    /// An attempt was answered, so the receiver is there: resets the spool
    /// drainer's backoff, and ends its pause (which would otherwise last up
    /// to the retry bound after the receiver came back), unless the
    /// receiver itself asked for the pause and the answer was to a live
    /// request (`spooled` false).
    fn resume_spool(&self, spooled: bool) {
        let mut pause = self
            .spool_resume
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if pause.failures > 0 && (spooled || !pause.throttled) {
            *pause = SpoolPause::none();
            drop(pause);
            self.spool_wake.notify_one();
        }
    }

    /// Marks a spooled record done.
    async fn complete_spooled(&self, spool: &Arc<Spool>, id: crate::spool::RecordId) {
        // Not run (the runtime is stopping), or failed: the record stays
        // on disk as pending, and an engine started later sends it again
        // (a duplicate, which at-least-once allows).
        if let Some(Err(e)) = self.on_spool(spool, move |spool| spool.complete(id)).await {
            self.note_error(e.to_string());
        }
    }

    /// Runs `f` on `spool` on a blocking thread, then refreshes the spool's
    /// size gauge. Never on the I/O thread: the spool's file operations
    /// wait for the disk, and its lock may be held by the writer thread
    /// while it creates a segment. `None`: the runtime is stopping, and
    /// `f` did not run.
    async fn on_spool<R: Send + 'static>(
        &self,
        spool: &Arc<Spool>,
        f: impl FnOnce(&Spool) -> R + Send + 'static,
    ) -> Option<R> {
        let spool = Arc::clone(spool);
        let (out, bytes) = tokio::task::spawn_blocking(move || {
            let out = f(&spool);
            (out, spool.disk_bytes())
        })
        .await
        .ok()?;
        self.counters.spool_bytes(bytes);
        Some(out)
    }

    /// Logs a request of `spans` spans given up, rate-limited per kind.
    fn warn_failed(&self, kind: FailureKind, spans: u64, error: &str) {
        let Some(suppressed) = self
            .failure_log
            .get(kind as usize)
            .and_then(RateLimiter::admit)
        else {
            return;
        };
        tracing::warn!(
            ?kind,
            spans,
            error,
            suppressed,
            "otlpx: an export request failed for good (not retryable, or \
             out of time) and its spans were dropped \
             (`suppressed`: how many like it were held back since the last)"
        );
    }

    /// Logs a request evicted while it waited for a retry, rate-limited.
    fn warn_evicted(&self, spans: u64) {
        let Some(suppressed) = self.evicted_log.admit() else {
            return;
        };
        tracing::warn!(
            spans,
            suppressed,
            "otlpx: the in-flight budget was full and newer spans were \
             waiting: the oldest request waiting for a retry was dropped \
             (`suppressed`: how many like it were held back since the last)"
        );
    }

    /// Logs an attempt that failed and will be retried after `wait`,
    /// rate-limited per kind.
    fn warn_retrying(&self, kind: FailureKind, spans: u64, error: &str, wait: Duration) {
        let Some(suppressed) = self
            .retry_log
            .get(kind as usize)
            .and_then(RateLimiter::admit)
        else {
            return;
        };
        tracing::warn!(
            ?kind,
            spans,
            error,
            ?wait,
            suppressed,
            "otlpx: an export attempt failed; retrying after `wait` \
             (`suppressed`: how many like it were held back since the last)"
        );
    }

    /// One attempt at `request`, bounded by `timeout`: the spans the
    /// receiver rejected (partial success, logged) if it answered; the
    /// error, counted and kept as the last one, if not.
    async fn attempt(&self, request: ExportRequest, timeout: Duration) -> Result<u64, ExportError> {
        let spans = request.items as u64;
        let counters = &self.counters[request.signal];
        let start = Instant::now();
        let outcome = match &self.transports[request.signal.index()] {
            Some(transport) => tokio::time::timeout(timeout, transport.export(request))
                .await
                .unwrap_or_else(|_| Err(crate::transport::timed_out(&**transport, timeout))),
            // A spooled request of a signal this engine does not export.
            None => Err(ExportError::new(
                FailureKind::Other,
                format!("{} are not exported by this engine", request.signal),
            )),
        };
        // Before settling: a flush that sees the request settled sees its
        // duration too.
        counters.answered_after(start.elapsed());
        let e = match outcome {
            Ok(response) => {
                if response.rejected > 0 {
                    self.warn_rejected(response.rejected, spans, &response.message);
                }
                return Ok(response.rejected);
            }
            Err(e) => e,
        };
        counters.attempt_failed(e.kind);
        self.note_error(e.to_string());
        Err(e)
    }

    /// Sends `request` until it is answered, fails for good, or its
    /// deadline would pass before the next attempt (see
    /// [`crate::transport::retry`]); every attempt sends the same bytes.
    ///
    /// `sending` says whether the request holds a send slot: it does while
    /// attempts run, and not while it waits for a retry.
    async fn deliver(&self, request: &ExportRequest, sending: &mut bool) -> Outcome {
        let settings = &self.settings;
        let signal = settings.signal(request.signal);
        let deadline = Instant::now() + signal.deadline;
        let spans = request.items as u64;
        let mut retries = 0;
        loop {
            let timeout = signal
                .timeout
                .min(deadline.saturating_duration_since(Instant::now()));
            let e = match self.attempt(request.clone(), timeout).await {
                Ok(rejected) => {
                    self.resume_spool(false);
                    return Outcome::Answered { rejected };
                }
                Err(e) => e,
            };
            let random = u64::from_le_bytes(crate::SpanId::random().0);
            // The next attempt must start before the deadline.
            let wait = settings
                .retry
                .delay(e.retry, retries, random)
                .filter(|&wait| Instant::now() + wait < deadline);
            let Some(wait) = wait else {
                let final_error = e.retry == Retry::Never;
                if final_error || self.spool().is_none() {
                    self.warn_failed(e.kind, spans, &e.message);
                }
                return if final_error {
                    Outcome::Final
                } else {
                    Outcome::OutOfTime
                };
            };
            self.warn_retrying(e.kind, spans, &e.message, wait);
            if !self.gate.wait_to_retry(wait, sending).await {
                if self.spool().is_none() {
                    self.warn_evicted(spans);
                }
                return Outcome::Evicted;
            }
            self.counters[request.signal].retried();
            retries += 1;
        }
    }

    /// Logs a partial success, rate-limited.
    fn warn_rejected(&self, rejected: u64, spans: u64, message: &str) {
        let Some(suppressed) = self.rejected_log.admit() else {
            return;
        };
        tracing::warn!(
            rejected,
            spans,
            message,
            suppressed,
            "otlpx: the receiver rejected spans of an export request \
             (`suppressed`: how many like it were held back since the last)"
        );
    }

    /// Warnings held back and not reported yet, taken (at shutdown).
    fn take_suppressed(&self) -> u64 {
        self.failure_log
            .iter()
            .chain(&self.retry_log)
            .chain([&self.rejected_log, &self.evicted_log, &self.spool_log])
            .map(RateLimiter::take_suppressed)
            .sum()
    }
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

/// Settles a request exactly once: with its outcome, or as abandoned if the
/// task is dropped first (to the spool, if there is one). Also frees its
/// gate slot and bytes.
struct InFlight {
    shared: Arc<Shared>,
    signal: Signal,
    spans: u64,
    bytes: usize,
    settled: bool,
    evicted: bool,
    /// Whether it holds a send slot (not while waiting for a retry).
    sending: bool,
    /// The request, once sent: what the spool keeps if it cannot be
    /// delivered.
    request: Option<ExportRequest>,
}

impl InFlight {
    fn settle(mut self, how: Settled) {
        self.shared.counters[self.signal].settle(self.spans, how);
        self.settled = true;
    }

    /// Settles the request by its outcome: failures that sending later may
    /// mend go to the spool, when there is one (through the spool writer,
    /// which settles them and uncounts their bytes; the slot is freed at
    /// once).
    fn finish(mut self, outcome: Outcome) {
        self.evicted = matches!(outcome, Outcome::Evicted);
        let otherwise = match outcome {
            Outcome::Answered { rejected } => return self.settle(Settled::Ok { rejected }),
            Outcome::Final => return self.settle(Settled::Failed),
            Outcome::OutOfTime => Settled::Failed,
            Outcome::Evicted => Settled::Evicted,
        };
        let Some(request) = self.request.take() else {
            return self.settle(otherwise);
        };
        if self.shared.spool().is_none() {
            return self.settle(otherwise);
        }
        match self
            .shared
            .spool_queue
            .push(SpoolJob { request, otherwise })
        {
            Ok(()) => {
                // The writer settles it and uncounts its bytes.
                self.settled = true;
                self.bytes = 0;
            }
            Err(job) => {
                let how = self.shared.to_spool(&job.request, job.otherwise);
                self.settle(how);
            }
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if !self.settled {
            let how = match self.request.take() {
                Some(request) => self.shared.to_spool(&request, Settled::Shutdown),
                None => Settled::Shutdown,
            };
            self.shared.counters[self.signal].settle(self.spans, how);
        }
        self.shared
            .gate
            .leave(self.signal, self.bytes, self.evicted, self.sending);
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
        for signal in settings.exported() {
            let policy = settings.signal(signal).policy;
            for ring in self.my_rings(signal) {
                ring.set_doorbell(Arc::clone(&doorbell), policy.wake_bytes(ring));
            }
        }
        // Per signal: when its rings were last seen empty (its oldest item
        // has waited at most since then).
        let mut last_empty = [Instant::now(); SIGNALS];
        // Starts asleep: the low wake level is set.
        let mut last_full = last_empty[0] - IDLE_AFTER;
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
                if pending.spans == 0 {
                    last_empty[i] = now;
                } else if policy.is_full(pending) {
                    last_full = now;
                }
                if due.is_none() && policy.due(pending, now - last_empty[i], flushing) {
                    due = Some(signal);
                }
                wait = wait.min(if pending.spans == 0 {
                    policy.delay
                } else {
                    policy.delay.saturating_sub(now - last_empty[i])
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
                    for ring in self.my_rings(signal) {
                        ring.set_wake_bytes(if busy {
                            ring.capacity_bytes() as u64 / 2
                        } else {
                            policy.wake_bytes(ring)
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

/// The spool's number for a signal.
fn signal_code(signal: Signal) -> u8 {
    match signal {
        Signal::Traces => 0,
        Signal::Logs => 1,
    }
}

/// The spool's number for a compression, and back.
fn compression_code(compression: Compression) -> u8 {
    match compression {
        Compression::None => 0,
        Compression::Gzip => 1,
        Compression::Zstd => 2,
    }
}

/// The signal of a spool's number; an unknown number (a later version's
/// signal) reads as traces, whose code it then fails to match
/// (`send_spooled` counts such a record as damaged).
fn signal_of(code: u8) -> Signal {
    match code {
        1 => Signal::Logs,
        _ => Signal::Traces,
    }
}

/// See [`compression_code`]; the spool's records are checksummed, so an
/// unknown number is a bug of a later version: sent as is, uncompressed.
fn compression_of(code: u8) -> Compression {
    match code {
        1 => Compression::Gzip,
        2 => Compression::Zstd,
        _ => Compression::None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(bytes: usize, items: usize) -> SpoolJob {
        SpoolJob {
            request: ExportRequest::new(
                Signal::Traces,
                Bytes::from(vec![0u8; bytes]),
                Compression::None,
                items,
            ),
            otherwise: Settled::Evicted,
        }
    }

    #[test]
    fn the_spool_queue_keeps_order_and_drains_after_close() {
        let queue = SpoolQueue::default();
        assert!(queue.idle());
        for items in 1..=3 {
            assert!(queue.push(job(300, items)).is_ok());
        }
        assert!(!queue.idle());
        let first = queue.take().expect("queued");
        assert_eq!(first.request.items, 1);
        assert!(!queue.idle(), "being written");
        queue.done();
        // Closed: no more jobs, but the queued ones are still handed out,
        // in order.
        queue.close();
        assert!(matches!(queue.push(job(1, 5)), Err(j) if j.request.items == 5));
        for items in 2..=3 {
            let j = queue.take().expect("queued before close");
            assert_eq!(j.request.items, items);
            assert!(!queue.idle());
            queue.done();
        }
        assert!(queue.take().is_none());
        assert!(queue.idle());
    }

    #[test]
    fn the_spool_writer_waits_for_work_and_ends_when_closed() {
        let queue = Arc::new(SpoolQueue::default());
        let writer = {
            let queue = Arc::clone(&queue);
            std::thread::spawn(move || {
                let mut seen = Vec::new();
                while let Some(j) = queue.take() {
                    seen.push(j.request.items);
                    queue.done();
                }
                seen
            })
        };
        for items in 1..=100 {
            assert!(queue.push(job(10, items)).is_ok());
        }
        queue.close();
        assert_eq!(writer.join().unwrap(), (1..=100).collect::<Vec<_>>());
        assert!(queue.idle());
    }
}
