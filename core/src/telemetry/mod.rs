//! Self-telemetry: what happened to every item, as counters kept beside the
//! flow and summed here into a [`Stats`] snapshot per signal; rendered for
//! Prometheus, every signal's with a `signal` label, by
//! [`write_prometheus`].
//!
//! Ring-side counters live with each ring (hence per CPU), the high-water
//! mark included, which the ring's consumer measures (see
//! [`crate::ring`]); export-side counters and histograms are written by
//! workers and by export completions, once per request, never per span.
//! Nothing here is on the recording path.
//!
//! Accounting is exact. Every span that reached the engine is in exactly
//! one of: `exported`, `dropped` (by reason), `in_flight` (taken from a
//! ring, its request not yet answered), `in_rings` or `spooled` (in the
//! disk spool, waiting to be sent); in an engine without an exporter,
//! spans taken out by [`Engine::drain_traces`](crate::Engine::drain_traces)
//! count as `drained_by_caller` instead. Spans an earlier engine left in
//! the spool join the count as `spool.restored`. In every snapshot,
//! `recorded + spool.restored == exported + dropped.total() + in_flight +
//! in_rings + spooled + drained_by_caller`.

mod histogram;
#[cfg(feature = "export")]
pub(crate) mod limiter;
mod prometheus;

pub use histogram::HistogramSnapshot;
pub use prometheus::{PROMETHEUS_CONTENT_TYPE, prometheus_text, write_prometheus};

use crate::ring::RingCounters;
#[cfg(feature = "export")]
use crate::ring::{SIGNALS, Signal};
use histogram::Histogram;
use std::sync::atomic::{AtomicU64, Ordering};
#[cfg(feature = "export")]
use std::time::Duration;

/// Upper bounds of [`ExportStats::duration_nanos`]: 100 µs to 30 s in
/// 1-2.5-5 steps. A collector on the same host answers in a few hundred
/// µs, one across a network in milliseconds to tens of milliseconds; the
/// seconds buckets tell slow answers from timeouts (10 s by default, which
/// land just above their timeout).
pub const EXPORT_DURATION_BOUNDS_NANOS: &[u64] = &[
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    500_000_000,
    1_000_000_000,
    2_500_000_000,
    5_000_000_000,
    10_000_000_000,
    30_000_000_000,
];

/// Upper bounds of [`ExportStats::batch_spans`]: powers of two, 1 to 8192.
/// A batch goes full (512 spans by default) or when the schedule delay
/// passes with fewer; doubling buckets show which, whatever the limit.
pub const BATCH_SPANS_BOUNDS: &[u64] = &[
    1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192,
];

/// Upper bounds of [`ExportStats::batch_bytes`]: powers of four, 256 bytes
/// to 16 MiB. Spans take from about a hundred bytes to a few KiB, and a
/// request at most 2 MiB by default (more only for a single larger span).
pub const BATCH_BYTES_BOUNDS: &[u64] = &[
    256,
    1 << 10,
    4 << 10,
    16 << 10,
    64 << 10,
    256 << 10,
    1 << 20,
    4 << 20,
    16 << 20,
];

/// Spans dropped, by reason.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Dropped {
    /// The CPU's ring was full: the exporter fell behind.
    pub ring_full: u64,
    /// The span was larger than half a ring.
    pub too_large: u64,
    /// `record_span` refused an all-zero trace or span id.
    pub invalid: u64,
    /// The write was abandoned because the encoding code panicked (a bug).
    pub aborted: u64,
    /// The receiver accepted the request but rejected these spans (OTLP
    /// partial success). For metrics the receiver reports data points,
    /// counted here as metrics, at most the request's.
    pub rejected: u64,
    /// Their request failed for good: a final error, or still failing
    /// when its deadline came (see [`ExportStats::failures`] for why).
    pub export_failed: u64,
    /// Their request was still unanswered when shutdown's deadline passed.
    pub shutdown: u64,
    /// Their request was waiting to be retried when the in-flight budget
    /// was full and newer spans were waiting: evicted, oldest first
    /// ([`Overflow::DropOldest`](crate::Overflow::DropOldest)). With a
    /// spool, evicted requests go there instead.
    pub evicted: u64,
    /// The spool was full: its oldest records were deleted to make room
    /// ([`Overflow::DropOldest`](crate::Overflow::DropOldest)), or the new
    /// request was refused ([`Overflow::DropNewest`](crate::Overflow::DropNewest)).
    pub spool_full: u64,
    /// A spool record was damaged (a torn write, a bad checksum) and its
    /// spans could not be read back; see [`SpoolStats`] for the bytes.
    pub spool_corrupt: u64,
}

impl Dropped {
    /// Each reason's name (as `/stats` and the Prometheus `reason` label
    /// write it) and count, in declaration order.
    pub fn by_reason(&self) -> [(&'static str, u64); 10] {
        [
            ("ring_full", self.ring_full),
            ("too_large", self.too_large),
            ("invalid", self.invalid),
            ("aborted", self.aborted),
            ("rejected", self.rejected),
            ("export_failed", self.export_failed),
            ("shutdown", self.shutdown),
            ("evicted", self.evicted),
            ("spool_full", self.spool_full),
            ("spool_corrupt", self.spool_corrupt),
        ]
    }

    /// All drops.
    pub fn total(&self) -> u64 {
        self.ring_full
            + self.too_large
            + self.invalid
            + self.aborted
            + self.rejected
            + self.export_failed
            + self.shutdown
            + self.evicted
            + self.spool_full
            + self.spool_corrupt
    }
}

/// Failed export requests, by kind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ExportFailures {
    /// No connection, connection lost, or the server said it is unavailable
    /// (gRPC `UNAVAILABLE`, HTTP 502/503/504).
    pub unavailable: u64,
    /// No answer within the export timeout (or gRPC `DEADLINE_EXCEEDED`).
    pub timeout: u64,
    /// The server asked the client to slow down (gRPC `RESOURCE_EXHAUSTED`,
    /// HTTP 429).
    pub throttled: u64,
    /// The server refused the request for good (bad data, unauthenticated,
    /// too large: gRPC `INVALID_ARGUMENT` and the like, HTTP 4xx).
    pub rejected: u64,
    /// The answer could not be understood.
    pub protocol: u64,
    /// Anything else (gRPC `INTERNAL`, HTTP 500, a local compression
    /// failure, …).
    pub other: u64,
    /// The TLS handshake failed: an unknown or expired server certificate,
    /// a name mismatch, a client certificate the server refused. A
    /// configuration problem that retrying will not mend.
    pub tls: u64,
}

impl ExportFailures {
    /// Each kind's name (as `/stats` and the Prometheus `kind` label write
    /// it) and count, in declaration order.
    pub fn by_kind(&self) -> [(&'static str, u64); 7] {
        [
            ("unavailable", self.unavailable),
            ("timeout", self.timeout),
            ("throttled", self.throttled),
            ("rejected", self.rejected),
            ("protocol", self.protocol),
            ("other", self.other),
            ("tls", self.tls),
        ]
    }

    /// All failed requests.
    pub fn total(&self) -> u64 {
        self.unavailable
            + self.timeout
            + self.throttled
            + self.rejected
            + self.protocol
            + self.other
            + self.tls
    }
}

/// What the exporter did, by request.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ExportStats {
    /// Requests sent (each counted once, however often it was retried).
    pub requests: u64,
    /// Attempts that sent a failed request again (see
    /// [`crate::export::transport::retry`]).
    pub retries: u64,
    /// Attempts that failed, by kind: a request retried twice before it
    /// went through counts two failures.
    pub failures: ExportFailures,
    /// Request bytes as framed, before compression (once per request).
    pub bytes_uncompressed: u64,
    /// Request bytes sent (after compression; gRPC's 5-byte message prefix
    /// not counted; once per request, retries not counted again).
    pub bytes_sent: u64,
    /// How long attempts took, from handing the request to the transport
    /// to its answer or failure (timeouts included, abandoned ones not),
    /// in nanoseconds; bounds [`EXPORT_DURATION_BOUNDS_NANOS`].
    pub duration_nanos: HistogramSnapshot,
    /// Spans per request sent; bounds [`BATCH_SPANS_BOUNDS`].
    pub batch_spans: HistogramSnapshot,
    /// Bytes per request sent, before compression; bounds
    /// [`BATCH_BYTES_BOUNDS`].
    pub batch_bytes: HistogramSnapshot,
    /// Bytes (as sent, compressed) of the requests in flight now: waiting
    /// for an answer or for a retry, or (with a spool) to be written to it.
    pub in_flight_bytes: u64,
    /// The most bytes in flight at once since the engine started (compare
    /// with `max_in_flight_bytes`).
    pub in_flight_bytes_high_water: u64,
    /// When a request last succeeded (partial successes included), in
    /// nanoseconds since the Unix epoch; 0 if none has.
    pub last_success_unix_nanos: u64,
    /// When a request last failed, in nanoseconds since the Unix epoch; 0
    /// if none has.
    pub last_failure_unix_nanos: u64,
    /// With several endpoints, each one's state, in the order configured
    /// (empty with one).
    #[cfg(feature = "export")]
    pub endpoints: Vec<EndpointStats>,
}

impl Default for ExportStats {
    /// Nothing sent; histograms empty over their bounds.
    fn default() -> Self {
        Self {
            requests: 0,
            retries: 0,
            failures: ExportFailures::default(),
            in_flight_bytes: 0,
            in_flight_bytes_high_water: 0,
            bytes_uncompressed: 0,
            bytes_sent: 0,
            duration_nanos: HistogramSnapshot::empty(EXPORT_DURATION_BOUNDS_NANOS),
            batch_spans: HistogramSnapshot::empty(BATCH_SPANS_BOUNDS),
            batch_bytes: HistogramSnapshot::empty(BATCH_BYTES_BOUNDS),
            last_success_unix_nanos: 0,
            last_failure_unix_nanos: 0,
            #[cfg(feature = "export")]
            endpoints: Vec::new(),
        }
    }
}

/// One endpoint's state, for [`Stats`] (several endpoints: the
/// transport's balancer keeps it).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct EndpointStats {
    /// The endpoint's URL.
    pub url: String,
    /// Whether requests go to it now (false: taken out after a failure,
    /// waiting to be probed, or being probed).
    pub up: bool,
    /// Attempts sent to it.
    pub requests: u64,
    /// Attempts to it that failed, of any kind (abandoned ones included).
    pub failures: u64,
    /// Times it was taken out.
    pub taken_out: u64,
}

/// One ring's memory, in a [`Stats`] snapshot.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RingStats {
    /// Bytes in use now (records, headers, padding).
    pub used_bytes: u64,
    /// The most bytes the ring has held at once (measured by its consumer,
    /// see [`crate::ring`]); between `used_bytes` and `capacity_bytes`.
    pub high_water_bytes: u64,
    /// The ring's size.
    pub capacity_bytes: u64,
}

/// The disk spool, in a [`Stats`] snapshot (all zero without one).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SpoolStats {
    /// Spans found in the spool when the engine started, left there by an
    /// earlier engine (damaged records' spans included when their count
    /// could be read; they are also in `dropped.spool_corrupt`).
    pub restored: u64,
    /// Spans this engine wrote to the spool.
    pub written: u64,
    /// Spans sent from the spool and acknowledged (also in `exported`).
    pub delivered: u64,
    /// Bytes of the spool's files now.
    pub bytes: u64,
    /// Damaged records found (at start, or when read back to be sent).
    pub corrupt_records: u64,
    /// Bytes of damaged records skipped.
    pub corrupt_bytes: u64,
}

/// A snapshot of one signal's counters: its items (spans, or log
/// records), rings and requests, as [`Engine::stats`](crate::Engine::stats)
/// (traces) and [`Engine::signal_stats`](crate::Engine::signal_stats)
/// return it. `config_warnings` and `spool.bytes` are engine-wide, the
/// same in every signal's snapshot; each damaged spool record is in
/// `spool.corrupt_records` and `spool.corrupt_bytes` of one signal's
/// (those found at start in the traces'), so the engine's are their sum.
///
/// ```
/// let engine = otlpx::Engine::builder().rings(2).export(false).build()?;
/// engine.tracer("demo", "").start("work").end();
/// let stats = engine.stats();
/// assert_eq!(stats.recorded, 1);
/// assert_eq!(stats.rings.len(), 2);
/// assert!(stats.prometheus_text().contains("otlpx_items_recorded_total{signal=\"traces\"} 1\n"));
/// # Ok::<(), otlpx::BuildError>(())
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Spans handed to the engine (sampled ones; unsampled spans record
    /// nothing).
    pub recorded: u64,
    /// Spans the receiver acknowledged (partial-success rejections are in
    /// `dropped.rejected` instead).
    pub exported: u64,
    /// Spans dropped, by reason.
    pub dropped: Dropped,
    /// Spans taken from the rings whose request is not yet answered.
    pub in_flight: u64,
    /// Spans committed to a ring and not yet taken out.
    pub in_rings: u64,
    /// Spans taken out by `drain_traces` callers (not by the exporter).
    pub drained_by_caller: u64,
    /// Spans in the disk spool, waiting to be sent (being sent included).
    pub spooled: u64,
    /// The disk spool's counters.
    pub spool: SpoolStats,
    /// Ring bytes in use (records, headers, padding), all CPUs.
    pub ring_bytes_used: u64,
    /// Each ring's memory, in CPU order.
    pub rings: Vec<RingStats>,
    /// Export requests, bytes and latencies.
    pub export: ExportStats,
    /// Configuration warnings at build: values without effect, and
    /// invalid environment values that were ignored (their text is in
    /// [`EffectiveConfig::warnings`](crate::config::EffectiveConfig::warnings)).
    pub config_warnings: u64,
}

/// Why a request failed, as [`ExportFailures`] counts it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum FailureKind {
    /// See [`ExportFailures::unavailable`].
    Unavailable,
    /// See [`ExportFailures::timeout`].
    Timeout,
    /// See [`ExportFailures::throttled`].
    Throttled,
    /// See [`ExportFailures::rejected`].
    Rejected,
    /// See [`ExportFailures::protocol`].
    Protocol,
    /// See [`ExportFailures::other`].
    Other,
    /// See [`ExportFailures::tls`].
    Tls,
}

/// How many [`FailureKind`]s there are.
pub(crate) const KINDS: usize = 7;

/// Export-side counters, shared by the workers and the export tasks of one
/// engine. All updates are per request.
///
/// A span is settled (exported, rejected, failed, abandoned) only after its
/// ring counted it drained, and every counter only grows; so a snapshot that
/// reads the settled counters before the rings' `drained` never sees more
/// settled than drained, and `in_flight` is their difference.
#[derive(Debug)]
pub(crate) struct ExportCounters {
    exported: AtomicU64,
    rejected: AtomicU64,
    failed: AtomicU64,
    shutdown: AtomicU64,
    evicted: AtomicU64,
    spool_full: AtomicU64,
    spool_corrupt: AtomicU64,
    /// Spans of requests from the rings settled, whichever way: what is
    /// drained and not settled is in flight.
    settled: AtomicU64,
    spool_restored: AtomicU64,
    spool_written: AtomicU64,
    /// Spans out of the spool, whichever way (`Unspooled`).
    spool_out: AtomicU64,
    spool_delivered: AtomicU64,
    spool_bytes: AtomicU64,
    spool_corrupt_records: AtomicU64,
    spool_corrupt_bytes: AtomicU64,
    in_flight_bytes: AtomicU64,
    in_flight_bytes_high_water: AtomicU64,
    requests: AtomicU64,
    retries: AtomicU64,
    failures: [AtomicU64; KINDS],
    bytes_uncompressed: AtomicU64,
    bytes_sent: AtomicU64,
    duration: Histogram,
    batch_spans: Histogram,
    batch_bytes: Histogram,
    /// Unix nanoseconds of the latest success and failure; 0: none yet.
    last_success: AtomicU64,
    last_failure: AtomicU64,
}

/// Each signal's [`ExportCounters`], by [`Signal::index`]: what became of
/// each signal's items, and its requests. The in-flight byte budget is one
/// for all signals, so the gate reads the sum ([`Self::in_flight_bytes`]).
#[derive(Debug, Default)]
#[cfg(feature = "export")]
pub(crate) struct SignalCounters([ExportCounters; SIGNALS]);

#[cfg(feature = "export")]
impl std::ops::Index<Signal> for SignalCounters {
    type Output = ExportCounters;

    #[inline]
    fn index(&self, signal: Signal) -> &ExportCounters {
        &self.0[signal.index()]
    }
}

#[cfg(feature = "export")]
impl SignalCounters {
    /// Bytes of requests in flight now, every signal's.
    pub(crate) fn in_flight_bytes(&self) -> u64 {
        self.0.iter().map(ExportCounters::in_flight_bytes).sum()
    }

    /// The spool (one for every signal) now takes `bytes` bytes: a gauge
    /// each signal's snapshot shows.
    pub(crate) fn spool_bytes(&self, bytes: u64) {
        for c in &self.0 {
            c.spool_bytes(bytes);
        }
    }

    /// Items in the spool, every signal's (see [`ExportCounters::spooled`]).
    pub(crate) fn spooled(&self) -> u64 {
        self.0.iter().map(ExportCounters::spooled).sum()
    }

    /// Items abandoned at shutdown so far, every signal's.
    pub(crate) fn abandoned(&self) -> u64 {
        self.0.iter().map(ExportCounters::abandoned).sum()
    }
}

impl Default for ExportCounters {
    fn default() -> Self {
        Self {
            exported: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            shutdown: AtomicU64::new(0),
            evicted: AtomicU64::new(0),
            spool_full: AtomicU64::new(0),
            spool_corrupt: AtomicU64::new(0),
            settled: AtomicU64::new(0),
            spool_restored: AtomicU64::new(0),
            spool_written: AtomicU64::new(0),
            spool_out: AtomicU64::new(0),
            spool_delivered: AtomicU64::new(0),
            spool_bytes: AtomicU64::new(0),
            spool_corrupt_records: AtomicU64::new(0),
            spool_corrupt_bytes: AtomicU64::new(0),
            in_flight_bytes: AtomicU64::new(0),
            in_flight_bytes_high_water: AtomicU64::new(0),
            requests: AtomicU64::new(0),
            retries: AtomicU64::new(0),
            failures: Default::default(),
            bytes_uncompressed: AtomicU64::new(0),
            bytes_sent: AtomicU64::new(0),
            duration: Histogram::new(EXPORT_DURATION_BOUNDS_NANOS),
            batch_spans: Histogram::new(BATCH_SPANS_BOUNDS),
            batch_bytes: Histogram::new(BATCH_BYTES_BOUNDS),
            last_success: AtomicU64::new(0),
            last_failure: AtomicU64::new(0),
        }
    }
}

/// Now, in nanoseconds since the Unix epoch (0 for a clock set before it).
#[cfg(feature = "export")]
pub(crate) fn unix_nanos_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// How one request ended, for [`ExportCounters::settle`].
#[cfg(feature = "export")]
#[derive(Clone, Copy, Debug)]
pub(crate) enum Settled {
    /// Answered with success: `rejected` of `spans` refused (partial success).
    Ok { rejected: u64 },
    /// Failed for good (its attempts counted by `attempt_failed`).
    Failed,
    /// Abandoned unanswered at shutdown.
    Shutdown,
    /// Evicted while waiting for a retry, to make room.
    Evicted,
    /// Written to the spool (after failing, being evicted, or at
    /// shutdown), to be sent later.
    Spooled,
    /// Refused by a full spool.
    SpoolFull,
}

/// How spans left the spool, for [`ExportCounters::unspooled`].
#[cfg(feature = "export")]
#[derive(Clone, Copy, Debug)]
pub(crate) enum Unspooled {
    /// Sent and answered: `rejected` refused (partial success).
    Delivered { rejected: u64 },
    /// Refused for good by the receiver (a final error).
    Failed,
    /// Deleted to make room for newer records.
    Full,
    /// Damaged on disk.
    Corrupt,
}

impl ExportCounters {
    /// A worker sent a request of `spans` spans and these sizes.
    #[cfg(feature = "export")]
    pub(crate) fn sent(&self, spans: usize, uncompressed: usize, sent: usize) {
        // Relaxed (all): statistics.
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.bytes_uncompressed
            .fetch_add(uncompressed as u64, Ordering::Relaxed);
        self.bytes_sent.fetch_add(sent as u64, Ordering::Relaxed);
        self.batch_spans.record(spans as u64);
        self.batch_bytes.record(uncompressed as u64);
    }

    /// A request was answered, or failed, `elapsed` after it was handed to
    /// the transport. Called before the request is settled, so that a flush
    /// that saw it settled also sees its duration.
    #[cfg(feature = "export")]
    pub(crate) fn answered_after(&self, elapsed: Duration) {
        self.duration
            .record(u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX));
    }

    /// An attempt to send a request failed (the request may be retried).
    #[cfg(feature = "export")]
    pub(crate) fn attempt_failed(&self, kind: FailureKind) {
        // Relaxed (both): statistics; `fetch_max` as in `settle`.
        self.failures[kind as usize].fetch_add(1, Ordering::Relaxed);
        self.last_failure
            .fetch_max(unix_nanos_now(), Ordering::Relaxed);
    }

    /// The bytes of requests in flight changed by `delta`.
    #[cfg(feature = "export")]
    pub(crate) fn in_flight_bytes_changed(&self, delta: i64) {
        // Relaxed (both): a gauge and its high-water mark, statistics.
        let now = self
            .in_flight_bytes
            .fetch_add(delta as u64, Ordering::Relaxed)
            .wrapping_add(delta as u64);
        self.in_flight_bytes_high_water
            .fetch_max(now, Ordering::Relaxed);
    }

    /// Bytes of requests in flight now.
    #[cfg(feature = "export")]
    pub(crate) fn in_flight_bytes(&self) -> u64 {
        // Relaxed: the gate reads it under its lock, which it also holds
        // when bytes leave (so a waiter cannot miss a decrease); increases
        // need no ordering, they only keep waiters waiting.
        self.in_flight_bytes.load(Ordering::Relaxed)
    }

    /// A failed request is being sent again.
    #[cfg(feature = "export")]
    pub(crate) fn retried(&self) {
        // Relaxed: a statistic.
        self.retries.fetch_add(1, Ordering::Relaxed);
    }

    /// Spans abandoned at shutdown so far.
    #[cfg(feature = "export")]
    pub(crate) fn abandoned(&self) -> u64 {
        // Relaxed: read for a log message after the abandoning is over.
        self.shutdown.load(Ordering::Relaxed)
    }

    /// A request of `spans` spans ended.
    #[cfg(feature = "export")]
    pub(crate) fn settle(&self, spans: u64, how: Settled) {
        // Release (settled counters): pairs with the Acquire loads in
        // `snapshot`, which read them before the rings' counters.
        match how {
            Settled::Ok { rejected } => {
                self.answered(spans, rejected);
            }
            Settled::Failed => {
                // Its failed attempts are counted by `attempt_failed`.
                self.failed.fetch_add(spans, Ordering::Release);
            }
            Settled::Shutdown => {
                self.shutdown.fetch_add(spans, Ordering::Release);
            }
            Settled::Evicted => {
                self.evicted.fetch_add(spans, Ordering::Release);
            }
            Settled::Spooled => {
                self.spool_written.fetch_add(spans, Ordering::Release);
            }
            Settled::SpoolFull => {
                self.spool_full.fetch_add(spans, Ordering::Release);
            }
        }
        // Release: pairs with the Acquire load in `snapshot`; after the
        // outcome's counter, so a snapshot that counts the spans settled
        // also counts where they went.
        self.settled.fetch_add(spans, Ordering::Release);
    }

    /// A request of `spans` spans was answered with success, `rejected` of
    /// them refused; returns the spans exported.
    #[cfg(feature = "export")]
    fn answered(&self, spans: u64, rejected: u64) -> u64 {
        let rejected = rejected.min(spans);
        // Release (both): pair with the Acquire loads in `snapshot`.
        self.rejected.fetch_add(rejected, Ordering::Release);
        self.exported.fetch_add(spans - rejected, Ordering::Release);
        // Relaxed: a statistic; `fetch_max` so that a request that ends
        // late never moves the time back.
        self.last_success
            .fetch_max(unix_nanos_now(), Ordering::Relaxed);
        spans - rejected
    }

    /// The spool held `spans` spans (in `records` records, `bytes` bytes)
    /// when the engine started, of which `corrupt` were damaged, in
    /// `corrupt_records` records and `corrupt_bytes` bytes.
    #[cfg(feature = "export")]
    pub(crate) fn restored(&self, spans: u64, bytes: u64, corrupt: (u64, u64, u64)) {
        let (corrupt_spans, corrupt_records, corrupt_bytes) = corrupt;
        // Release: pairs with the Acquire loads in `snapshot` (before any
        // span of them can leave the spool).
        self.spool_restored
            .fetch_add(spans + corrupt_spans, Ordering::Release);
        self.spool_bytes.store(bytes, Ordering::Relaxed);
        self.corrupt(corrupt_records, corrupt_bytes);
        self.unspooled(corrupt_spans, Unspooled::Corrupt);
    }

    /// Damaged spool records found.
    #[cfg(feature = "export")]
    pub(crate) fn corrupt(&self, records: u64, bytes: u64) {
        // Relaxed (both): statistics.
        self.spool_corrupt_records
            .fetch_add(records, Ordering::Relaxed);
        self.spool_corrupt_bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    /// The spool's files now take `bytes` bytes.
    #[cfg(feature = "export")]
    pub(crate) fn spool_bytes(&self, bytes: u64) {
        // Relaxed: a gauge.
        self.spool_bytes.store(bytes, Ordering::Relaxed);
    }

    /// `spans` spans left the spool, `how`.
    #[cfg(feature = "export")]
    pub(crate) fn unspooled(&self, spans: u64, how: Unspooled) {
        if spans == 0 {
            return;
        }
        // Release (all): pair with the Acquire loads in `snapshot`; the
        // outcome first, then `spool_out`, read in the opposite order.
        match how {
            Unspooled::Delivered { rejected } => {
                let exported = self.answered(spans, rejected);
                self.spool_delivered.fetch_add(exported, Ordering::Release);
            }
            Unspooled::Failed => {
                self.failed.fetch_add(spans, Ordering::Release);
            }
            Unspooled::Full => {
                self.spool_full.fetch_add(spans, Ordering::Release);
            }
            Unspooled::Corrupt => {
                self.spool_corrupt.fetch_add(spans, Ordering::Release);
            }
        }
        self.spool_out.fetch_add(spans, Ordering::Release);
    }

    /// Spans in the spool, as [`Stats::spooled`] counts them: gone from
    /// it only once counted out. Never low while a span leaves the spool
    /// meanwhile.
    #[cfg(feature = "export")]
    pub(crate) fn spooled(&self) -> u64 {
        // Acquire (all): pair with the Release increments in `unspooled`,
        // `settle` and `restored`. `spool_out` first: a span counted out
        // after this load is still counted in.
        let out = self.spool_out.load(Ordering::Acquire);
        let restored = self.spool_restored.load(Ordering::Acquire);
        (restored + self.spool_written.load(Ordering::Acquire)).saturating_sub(out)
    }

    /// Fills the export-side fields of `s` (not `in_flight`); returns the
    /// spans settled (see `settled`).
    fn snapshot(&self, s: &mut Stats) -> u64 {
        // Acquire (all): pair with the Release increments in `settle`,
        // `unspooled` and `restored`. The totals (`settled`, `spool_out`)
        // first, the outcomes after: every span a total counts is then in
        // an outcome too. A span settling meanwhile may be seen in its
        // outcome only: `recorded` then reads one request high, for a
        // moment.
        let settled = self.settled.load(Ordering::Acquire);
        let spool_out = self.spool_out.load(Ordering::Acquire);
        let restored = self.spool_restored.load(Ordering::Acquire);
        s.exported = self.exported.load(Ordering::Acquire);
        s.dropped.rejected = self.rejected.load(Ordering::Acquire);
        s.dropped.export_failed = self.failed.load(Ordering::Acquire);
        s.dropped.shutdown = self.shutdown.load(Ordering::Acquire);
        s.dropped.evicted = self.evicted.load(Ordering::Acquire);
        s.dropped.spool_full = self.spool_full.load(Ordering::Acquire);
        s.dropped.spool_corrupt = self.spool_corrupt.load(Ordering::Acquire);
        let written = self.spool_written.load(Ordering::Acquire);
        s.spooled = (restored + written).saturating_sub(spool_out);
        s.spool = SpoolStats {
            restored,
            written,
            delivered: self.spool_delivered.load(Ordering::Acquire),
            // Relaxed (three): statistics.
            bytes: self.spool_bytes.load(Ordering::Relaxed),
            corrupt_records: self.spool_corrupt_records.load(Ordering::Relaxed),
            corrupt_bytes: self.spool_corrupt_bytes.load(Ordering::Relaxed),
        };
        let f = |k: FailureKind| self.failures[k as usize].load(Ordering::Relaxed);
        s.export = ExportStats {
            // Relaxed: statistics.
            requests: self.requests.load(Ordering::Relaxed),
            retries: self.retries.load(Ordering::Relaxed),
            in_flight_bytes: self.in_flight_bytes.load(Ordering::Relaxed),
            in_flight_bytes_high_water: self.in_flight_bytes_high_water.load(Ordering::Relaxed),
            failures: ExportFailures {
                unavailable: f(FailureKind::Unavailable),
                timeout: f(FailureKind::Timeout),
                throttled: f(FailureKind::Throttled),
                rejected: f(FailureKind::Rejected),
                protocol: f(FailureKind::Protocol),
                other: f(FailureKind::Other),
                tls: f(FailureKind::Tls),
            },
            bytes_uncompressed: self.bytes_uncompressed.load(Ordering::Relaxed),
            bytes_sent: self.bytes_sent.load(Ordering::Relaxed),
            duration_nanos: self.duration.snapshot(),
            batch_spans: self.batch_spans.snapshot(),
            batch_bytes: self.batch_bytes.snapshot(),
            last_success_unix_nanos: self.last_success.load(Ordering::Relaxed),
            last_failure_unix_nanos: self.last_failure.load(Ordering::Relaxed),
            #[cfg(feature = "export")]
            endpoints: Vec::new(),
        };
        settled
    }
}

impl Stats {
    /// Sums per-ring counters, drops counted outside the rings, and the
    /// export side when the engine exports (then only its workers drain).
    ///
    /// Reads the export side first, then the rings (see [`ExportCounters`]).
    pub(crate) fn collect(
        rings: impl Iterator<Item = RingCounters>,
        dropped_invalid: u64,
        export: Option<&ExportCounters>,
    ) -> Self {
        let mut s = Self::default();
        let settled = export.map_or(0, |export| export.snapshot(&mut s));
        s.dropped.invalid = dropped_invalid;
        let mut drained = 0;
        for r in rings {
            drained += r.drained;
            s.in_rings += r.in_ring();
            s.dropped.ring_full += r.dropped_full;
            s.dropped.too_large += r.dropped_too_large;
            s.dropped.aborted += r.dropped_aborted;
            s.ring_bytes_used += r.used_bytes;
            s.rings.push(RingStats {
                used_bytes: r.used_bytes,
                high_water_bytes: r.high_water_bytes,
                capacity_bytes: r.capacity_bytes,
            });
        }
        if export.is_some() {
            debug_assert!(drained >= settled, "settled before drained");
            s.in_flight = drained.saturating_sub(settled);
        } else {
            s.drained_by_caller = drained;
        }
        s.recorded = (s.exported
            + s.dropped.total()
            + s.in_flight
            + s.in_rings
            + s.spooled
            + s.drained_by_caller)
            .saturating_sub(s.spool.restored);
        s
    }
}
