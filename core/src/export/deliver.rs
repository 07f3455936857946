//! Delivery: what becomes of a framed request once a worker has built it.
//! A [`Gate`] bounds what is in flight; each request is sent on the
//! engine's own tokio runtime, retried per the OTLP specification
//! ([`crate::export::transport::retry`]), balanced and failed over by its
//! signal's transport, and, when it cannot be delivered, handed to the
//! spool writer thread ([`Shared::write_spool`]); the spool drainer sends
//! spooled requests back out. Every request is settled exactly once in
//! its signal's [`ExportCounters`](crate::telemetry::ExportCounters):
//! answered, failed, evicted, spooled, or abandoned at shutdown (its task
//! dropped, [`InFlight`]'s drop).
//!
//! # In flight
//!
//! A [`Gate`] bounds the requests being sent at once by count
//! (`max_in_flight`) and everything held (being sent, waiting for a
//! retry, waiting for the spool writer) by bytes (`max_in_flight_bytes`).
//! A worker takes a send slot before it takes items from its rings, so
//! items are only ever in a ring or in a request on its way; while the
//! gate is closed the rings are the queue, and a full ring drops (counted)
//! rather than block a producer. A request waiting for a retry gives its
//! send slot back and keeps its bytes: an outage fills memory, up to the
//! budget, before anything is lost. Once the bytes are full, under
//! [`Overflow::DropOldest`], a worker whose rings are half full (so would
//! soon drop new items) evicts the oldest request waiting for a retry, one
//! at a time, so that in an outage longer than the budget can absorb the
//! newest items are the ones kept.
//!
//! # Diagnostics
//!
//! Through `tracing`: failed requests and partial-success rejections at
//! WARN, at most one event per failure kind (and one for rejections) per
//! [`DIAGNOSTIC_INTERVAL`](crate::telemetry::limiter::DIAGNOSTIC_INTERVAL), the next one saying how many were held back,
//! so that a failing collector cannot flood the application's logs.
//! Messages carry failure kinds, counts and error texts from the transport
//! (library errors, status codes, the receiver's own words), never header
//! values.

use crate::config::{Compression, Overflow, RetryPolicy};
use crate::export::batch::Policy;
use crate::export::frame::Catalog;
use crate::export::spool::{Appended, Claimed, Record, Spool, SpoolError, signal_code, signal_of};
use crate::export::transport::{ExportError, ExportRequest, Retry, Transport};
use crate::record::Recorder;
use crate::ring::{Ring, SIGNALS, Signal};
use crate::telemetry::limiter::RateLimiter;
use crate::telemetry::{FailureKind, KINDS, Settled, SignalCounters, Unspooled};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};
use tokio::sync::Notify;

/// Spooled requests in flight at once: enough to hide a round trip while
/// the spool drains after an outage, few enough that the spool adds at
/// most two requests' bytes to memory.
pub(crate) const SPOOL_WINDOW: usize = 2;

/// How often the spool drainer looks for records when nothing wakes it
/// (appends do): a backstop.
pub(crate) const SPOOL_IDLE: Duration = Duration::from_secs(1);

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
    pub(crate) fn signal(&self, signal: Signal) -> &SignalSettings {
        &self.signals[signal.index()]
    }

    /// The signals the workers send.
    pub(crate) fn exported(&self) -> impl Iterator<Item = Signal> + Clone + '_ {
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

/// Bounds what is in flight: the requests being sent at once by count
/// (`max_in_flight`), everything held (being sent, waiting for a retry, or
/// for the spool writer) by bytes (`max_in_flight_bytes`). A request
/// waiting for a retry gives its send slot back: in an outage, requests
/// pile up in memory until the byte budget is full, not until a handful of
/// them wait. Also where flush waits, and where the oldest request waiting
/// for a retry is evicted to make room once the bytes are full (see
/// [`Overflow`]).
pub(crate) struct Gate {
    pub(crate) state: Mutex<GateState>,
    /// Wakes the worker threads waiting in `enter` (and flush).
    pub(crate) changed: Condvar,
    /// Wakes the retries waiting for a send slot (async, on the runtime).
    pub(crate) slot_freed: Notify,
    /// Bound on the requests being sent at once.
    pub(crate) max: usize,
    /// Bound on the bytes of requests held: a request may start while
    /// fewer are, so they stay under this plus one request.
    pub(crate) max_bytes: u64,
    /// Where the bytes in flight are counted (the one count, also each
    /// signal's `in_flight_bytes` gauge); the budget is every signal's.
    pub(crate) counters: Arc<SignalCounters>,
}

pub(crate) struct GateState {
    /// Requests being sent (an attempt under way, or about to be), each
    /// holding a send slot.
    pub(crate) sending: usize,
    /// Requests held, whatever they wait for: `sending`, waiting for a
    /// retry, or for a send slot after one. Flush waits for 0.
    pub(crate) held: usize,
    /// Requests waiting to be retried, oldest first: each wakes when its
    /// `Notify` fires and, finding itself gone from here, settles as
    /// evicted.
    pub(crate) retrying: VecDeque<Arc<Notify>>,
    /// Requests evicted that have not left yet: at most one eviction is
    /// under way, so a worker waiting for room evicts one request at a time.
    pub(crate) evicting: usize,
}

impl Gate {
    pub(crate) fn lock(&self) -> MutexGuard<'_, GateState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes a send slot for a new request, waiting while `max` requests
    /// are being sent or `max_bytes` bytes are held, until `give_up()`
    /// (checked at least every few ms) says to stop waiting. While the
    /// bytes are full, if `evict()` says so, evicts the oldest request
    /// waiting to be retried.
    pub(crate) fn enter(&self, give_up: impl Fn() -> bool, evict: impl Fn() -> bool) -> bool {
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
    pub(crate) fn add_bytes(&self, signal: Signal, bytes: usize) {
        self.counters[signal].in_flight_bytes_changed(bytes as i64);
    }

    /// Uncounts `bytes` that outlived their slot (written to the spool).
    pub(crate) fn release_bytes(&self, signal: Signal, bytes: usize) {
        let st = self.lock();
        // Under the lock, before the wake-up: as in `leave`.
        self.counters[signal].in_flight_bytes_changed(-(bytes as i64));
        drop(st);
        self.changed.notify_all();
    }

    /// A request is settled: frees its bytes, and its send slot if it
    /// `sending` holds one.
    pub(crate) fn leave(&self, signal: Signal, bytes: usize, evicted: bool, sending: bool) {
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
    pub(crate) async fn wait_to_retry(&self, wait: Duration, sending: &mut bool) -> bool {
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
    pub(crate) fn notify(&self) {
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
pub(crate) struct SpoolQueue {
    pub(crate) state: Mutex<SpoolQueueState>,
    pub(crate) changed: Condvar,
}

#[derive(Default)]
pub(crate) struct SpoolQueueState {
    pub(crate) jobs: VecDeque<SpoolJob>,
    /// The writer is appending a request it took off `jobs`.
    pub(crate) writing: bool,
    /// No more jobs: the writer ends once `jobs` is empty.
    pub(crate) closed: bool,
}

/// A request for the spool, and how it settles if the spool cannot take
/// it.
pub(crate) struct SpoolJob {
    pub(crate) request: ExportRequest,
    pub(crate) otherwise: Settled,
}

impl SpoolQueue {
    pub(crate) fn lock(&self) -> MutexGuard<'_, SpoolQueueState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues `job`; gives it back if the writer has stopped (shutdown).
    pub(crate) fn push(&self, job: SpoolJob) -> Result<(), SpoolJob> {
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
    pub(crate) fn take(&self) -> Option<SpoolJob> {
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
    pub(crate) fn done(&self) {
        self.lock().writing = false;
    }

    /// Nothing queued or being written.
    pub(crate) fn idle(&self) -> bool {
        let st = self.lock();
        st.jobs.is_empty() && !st.writing
    }

    /// Refuses new jobs; the writer ends after the queued ones.
    pub(crate) fn close(&self) {
        self.lock().closed = true;
        self.changed.notify_all();
    }
}

/// What workers and the engine share.
pub(crate) struct Shared {
    pub(crate) recorder: Arc<Recorder>,
    pub(crate) catalog: Arc<Catalog>,
    /// Each exported signal's transport (its endpoints, headers, TLS), by
    /// [`Signal::index`].
    pub(crate) transports: [Option<Arc<dyn Transport>>; SIGNALS],
    pub(crate) counters: Arc<SignalCounters>,
    pub(crate) runtime: tokio::runtime::Handle,
    pub(crate) settings: WorkerSettings,
    pub(crate) gate: Gate,
    /// Flush requests so far. Written by `flush`, read by workers.
    pub(crate) flush_epoch: AtomicU64,
    /// Per worker: the last flush epoch it completed.
    pub(crate) flushed: Box<[AtomicU64]>,
    pub(crate) stop: AtomicBool,
    pub(crate) last_error: Mutex<Option<String>>,
    /// Rate limits of the WARN diagnostics: one per failure kind.
    pub(crate) failure_log: [RateLimiter; KINDS],
    /// Rate limit of the partial-success WARN diagnostic.
    pub(crate) rejected_log: RateLimiter,
    /// Rate limits of the retry WARN diagnostics: one per failure kind.
    pub(crate) retry_log: [RateLimiter; KINDS],
    /// Rate limit of the eviction WARN diagnostic.
    pub(crate) evicted_log: RateLimiter,
    /// The disk spool, if configured; taken (and so unlocked) at shutdown.
    pub(crate) spool: Mutex<Option<Arc<Spool>>>,
    /// Wakes the spool drainer: something was appended.
    pub(crate) spool_appended: Notify,
    /// When the spool drainer may send again after a failed attempt.
    pub(crate) spool_resume: Mutex<SpoolPause>,
    /// Wakes a paused spool drainer: a live request was answered, so the
    /// receiver is back.
    pub(crate) spool_wake: Notify,
    /// Rate limit of the spool WARN diagnostics.
    pub(crate) spool_log: RateLimiter,
    /// Requests for the spool writer thread.
    pub(crate) spool_queue: SpoolQueue,
}

/// The spool drainer's pause after failed attempts.
#[derive(Clone, Copy, Debug)]
pub(crate) struct SpoolPause {
    /// When it may send again.
    pub(crate) until: Instant,
    /// Attempts failed in a row (the backoff's exponent).
    pub(crate) failures: u32,
    /// The receiver asked for the pause (throttling): a live request
    /// answered meanwhile does not end it.
    pub(crate) throttled: bool,
}

impl SpoolPause {
    pub(crate) fn none() -> Self {
        Self {
            until: Instant::now(),
            failures: 0,
            throttled: false,
        }
    }
}

/// How a request's delivery ended, before the spool has its say.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Outcome {
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
    pub(crate) fn rings_of(
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
    pub(crate) fn note_error(&self, message: String) {
        *self
            .last_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(message);
    }

    /// The spool, while the engine runs with one.
    pub(crate) fn spool(&self) -> Option<Arc<Spool>> {
        self.spool
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Writes `request` to the spool: `Spooled` if it went there,
    /// `SpoolFull` if a full spool refused it, `otherwise` without a spool
    /// or when writing failed.
    pub(crate) fn to_spool(&self, request: &ExportRequest, otherwise: Settled) -> Settled {
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
    pub(crate) fn sync_spool(&self, spool: &Spool) {
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
    pub(crate) fn write_spool(&self) {
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
    pub(crate) fn warn_spool(&self, spans: u64, what: &str) {
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
    pub(crate) async fn drain_spool(self: Arc<Self>) {
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
    pub(crate) fn spool_paused_until(&self) -> Option<Instant> {
        let until = self
            .spool_resume
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .until;
        (until > Instant::now()).then_some(until)
    }

    /// One attempt at a spooled request: completed if answered or refused
    /// for good, given back (and the drain paused) otherwise.
    pub(crate) async fn send_spooled(&self, spool: Arc<Spool>, record: Record) {
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
    pub(crate) fn resume_spool(&self, spooled: bool) {
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
    pub(crate) async fn complete_spooled(
        &self,
        spool: &Arc<Spool>,
        id: crate::export::spool::RecordId,
    ) {
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
    pub(crate) async fn on_spool<R: Send + 'static>(
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
    pub(crate) fn warn_failed(&self, kind: FailureKind, spans: u64, error: &str) {
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
    pub(crate) fn warn_evicted(&self, spans: u64) {
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
    pub(crate) fn warn_retrying(&self, kind: FailureKind, spans: u64, error: &str, wait: Duration) {
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
    pub(crate) async fn attempt(
        &self,
        request: ExportRequest,
        timeout: Duration,
    ) -> Result<u64, ExportError> {
        let spans = request.items as u64;
        let counters = &self.counters[request.signal];
        let start = Instant::now();
        let outcome = match &self.transports[request.signal.index()] {
            Some(transport) => tokio::time::timeout(timeout, transport.export(request))
                .await
                .unwrap_or_else(|_| {
                    Err(crate::export::transport::timed_out(&**transport, timeout))
                }),
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
    /// [`crate::export::transport::retry`]); every attempt sends the same bytes.
    ///
    /// `sending` says whether the request holds a send slot: it does while
    /// attempts run, and not while it waits for a retry.
    pub(crate) async fn deliver(&self, request: &ExportRequest, sending: &mut bool) -> Outcome {
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
    pub(crate) fn warn_rejected(&self, rejected: u64, spans: u64, message: &str) {
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
    pub(crate) fn take_suppressed(&self) -> u64 {
        self.failure_log
            .iter()
            .chain(&self.retry_log)
            .chain([&self.rejected_log, &self.evicted_log, &self.spool_log])
            .map(RateLimiter::take_suppressed)
            .sum()
    }
}

/// Settles a request exactly once: with its outcome, or as abandoned if the
/// task is dropped first (to the spool, if there is one). Also frees its
/// gate slot and bytes.
pub(crate) struct InFlight {
    pub(crate) shared: Arc<Shared>,
    pub(crate) signal: Signal,
    pub(crate) spans: u64,
    pub(crate) bytes: usize,
    pub(crate) settled: bool,
    pub(crate) evicted: bool,
    /// Whether it holds a send slot (not while waiting for a retry).
    pub(crate) sending: bool,
    /// The request, once sent: what the spool keeps if it cannot be
    /// delivered.
    pub(crate) request: Option<ExportRequest>,
}

impl InFlight {
    pub(crate) fn settle(mut self, how: Settled) {
        self.shared.counters[self.signal].settle(self.spans, how);
        self.settled = true;
    }

    /// Settles the request by its outcome: failures that sending later may
    /// mend go to the spool, when there is one (through the spool writer,
    /// which settles them and uncounts their bytes; the slot is freed at
    /// once).
    pub(crate) fn finish(mut self, outcome: Outcome) {
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

/// The spool's number for a compression, and back.
pub(crate) fn compression_code(compression: Compression) -> u8 {
    match compression {
        Compression::None => 0,
        Compression::Gzip => 1,
        Compression::Zstd => 2,
    }
}

/// See [`compression_code`]; the spool's records are checksummed, so an
/// unknown number is a bug of a later version: sent as is, uncompressed.
pub(crate) fn compression_of(code: u8) -> Compression {
    match code {
        1 => Compression::Gzip,
        2 => Compression::Zstd,
        _ => Compression::None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

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
    fn spool_signal_codes_are_stable_and_round_trip() {
        // On disk: never renumbered, so every spool stays readable.
        assert_eq!(Signal::ALL.map(signal_code), [0, 1, 2]);
        for signal in Signal::ALL {
            assert_eq!(signal_of(signal_code(signal)), signal);
        }
        // A later version's signal reads as traces, and fails its code.
        assert_ne!(signal_code(signal_of(9)), 9);
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
