//! Self-telemetry: what happened to every item, as counters kept beside the
//! flow and summed here into a [`Stats`] snapshot.
//!
//! Ring-side counters live with each ring (hence per CPU); export-side
//! counters are written by workers and by export completions, once per
//! request, never per span.
//!
//! Accounting is exact. Every span that reached the engine is in exactly
//! one of: `exported`, `dropped` (by reason), `in_flight` (taken from a
//! ring, its request not yet answered) or `in_rings`; in an engine without
//! an exporter, spans taken out by
//! [`Engine::drain_traces`](crate::Engine::drain_traces) count as
//! `drained_by_caller` instead. In every snapshot, `recorded == exported +
//! dropped.total() + in_flight + in_rings + drained_by_caller`.

use crate::ring::RingCounters;
use std::sync::atomic::{AtomicU64, Ordering};

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
    /// partial success).
    pub rejected: u64,
    /// Their request failed (see [`ExportStats::failures`] for why); retries
    /// are not attempted yet.
    pub export_failed: u64,
    /// Their request was still unanswered when shutdown's deadline passed.
    pub shutdown: u64,
}

impl Dropped {
    /// All drops.
    pub fn total(&self) -> u64 {
        self.ring_full
            + self.too_large
            + self.invalid
            + self.aborted
            + self.rejected
            + self.export_failed
            + self.shutdown
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
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ExportStats {
    /// Requests sent.
    pub requests: u64,
    /// Requests that failed, by kind.
    pub failures: ExportFailures,
    /// Request bytes as framed, before compression.
    pub bytes_uncompressed: u64,
    /// Request bytes sent (after compression; gRPC's 5-byte message prefix
    /// not counted).
    pub bytes_sent: u64,
}

/// A snapshot of the engine's counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
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
    /// Ring bytes in use (records, headers, padding), all CPUs.
    pub ring_bytes_used: u64,
    /// Export requests and bytes.
    pub export: ExportStats,
}

/// The request kinds [`ExportCounters::fail`] counts.
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

const KINDS: usize = 7;

/// Export-side counters, shared by the workers and the export tasks of one
/// engine. All updates are per request.
///
/// A span is settled (exported, rejected, failed, abandoned) only after its
/// ring counted it drained, and every counter only grows; so a snapshot that
/// reads the settled counters before the rings' `drained` never sees more
/// settled than drained, and `in_flight` is their difference.
#[derive(Debug, Default)]
pub(crate) struct ExportCounters {
    exported: AtomicU64,
    rejected: AtomicU64,
    failed: AtomicU64,
    shutdown: AtomicU64,
    requests: AtomicU64,
    failures: [AtomicU64; KINDS],
    bytes_uncompressed: AtomicU64,
    bytes_sent: AtomicU64,
}

/// How one request ended, for [`ExportCounters::settle`].
#[cfg(feature = "export")]
#[derive(Clone, Copy, Debug)]
pub(crate) enum Settled {
    /// Answered with success: `rejected` of `spans` refused (partial success).
    Ok { rejected: u64 },
    /// Failed.
    Failed(FailureKind),
    /// Abandoned unanswered at shutdown.
    Shutdown,
}

impl ExportCounters {
    /// A worker sent a request of these sizes.
    #[cfg(feature = "export")]
    pub(crate) fn sent(&self, uncompressed: usize, sent: usize) {
        // Relaxed (all): statistics.
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.bytes_uncompressed
            .fetch_add(uncompressed as u64, Ordering::Relaxed);
        self.bytes_sent.fetch_add(sent as u64, Ordering::Relaxed);
    }

    /// A request of `spans` spans ended.
    #[cfg(feature = "export")]
    pub(crate) fn settle(&self, spans: u64, how: Settled) {
        // Release (settled counters): pairs with the Acquire loads in
        // `snapshot`, which read them before the rings' counters.
        match how {
            Settled::Ok { rejected } => {
                let rejected = rejected.min(spans);
                self.rejected.fetch_add(rejected, Ordering::Release);
                self.exported.fetch_add(spans - rejected, Ordering::Release);
            }
            Settled::Failed(kind) => {
                // Relaxed: a statistic beside the span count.
                self.failures[kind as usize].fetch_add(1, Ordering::Relaxed);
                self.failed.fetch_add(spans, Ordering::Release);
            }
            Settled::Shutdown => {
                self.shutdown.fetch_add(spans, Ordering::Release);
            }
        }
    }

    /// Fills the export-side fields of `s` (not `in_flight`).
    fn snapshot(&self, s: &mut Stats) {
        // Acquire: pairs with the Release increments in `settle`.
        s.exported = self.exported.load(Ordering::Acquire);
        s.dropped.rejected = self.rejected.load(Ordering::Acquire);
        s.dropped.export_failed = self.failed.load(Ordering::Acquire);
        s.dropped.shutdown = self.shutdown.load(Ordering::Acquire);
        let f = |k: FailureKind| self.failures[k as usize].load(Ordering::Relaxed);
        s.export = ExportStats {
            // Relaxed: statistics.
            requests: self.requests.load(Ordering::Relaxed),
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
        };
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
        if let Some(export) = export {
            export.snapshot(&mut s);
        }
        s.dropped.invalid = dropped_invalid;
        let mut drained = 0;
        for r in rings {
            drained += r.drained;
            s.in_rings += r.in_ring();
            s.dropped.ring_full += r.dropped_full;
            s.dropped.too_large += r.dropped_too_large;
            s.dropped.aborted += r.dropped_aborted;
            s.ring_bytes_used += r.used_bytes;
        }
        let settled =
            s.exported + s.dropped.rejected + s.dropped.export_failed + s.dropped.shutdown;
        if export.is_some() {
            debug_assert!(drained >= settled, "settled before drained");
            s.in_flight = drained.saturating_sub(settled);
        } else {
            s.drained_by_caller = drained;
        }
        s.recorded =
            s.exported + s.dropped.total() + s.in_flight + s.in_rings + s.drained_by_caller;
        s
    }
}
