//! Per-CPU rings: bounded, lock-free, multi-producer / single-consumer byte
//! rings of variable-length records.
//!
//! The design is the Linux BPF ring buffer's (reserve → write → commit, an
//! 8-byte header per record, a consumer that stops at the first record still
//! being written), made lock-free on the producer side.
//!
//! # Layout and ownership
//!
//! Positions are unbounded `u64` byte offsets; a position's place in memory is
//! `pos & mask`. Two cursors describe the ring:
//!
//! * `head` — the next position to reserve. Producers advance it with a CAS;
//!   whoever wins owns `[old head, new head)` until it commits.
//! * `tail` — the first position not yet released. Only the consumer writes
//!   it, after it has read and **zeroed** the released bytes.
//!
//! Every record starts at an 8-aligned position with a header of two `u32`
//! words: `state` (payload length and flags) and `meta` (record kind in the low
//! byte, a 24-bit tag above it — the instrumentation scope for spans). The
//! payload follows; the next record starts at the next 8-aligned position.
//! A record never wraps: when it would cross the end of memory, its producer
//! also reserves the bytes up to the end and commits them as a discarded
//! padding record.
//!
//! # Invariants
//!
//! 1. Every byte in `[head, tail + capacity)` is zero. The consumer zeroes
//!    what it releases before publishing the new `tail`, and memory starts
//!    zeroed. So a `state` word of zero means "nothing committed here yet",
//!    never stale bytes from an earlier lap — whatever a payload contained.
//! 2. A `state` word goes `0 → len|BUSY → len|READY` (or `len|READY|DISCARD`),
//!    each transition written by the record's owner; `READY` is published with
//!    Release after the payload and `meta`, and the consumer reads it with
//!    Acquire before reading either.
//! 3. The consumer never reads past the first record whose state lacks
//!    `READY`, and never past `tail + capacity` (the start of the oldest
//!    unreleased record).
//!
//! # Concurrent writers on one CPU
//!
//! A ring belongs to a CPU only as a locality hint: a thread can be preempted
//! between reserve and commit, and another thread on the same CPU then
//! reserves the next range; a thread can migrate mid-write and finish on
//! another CPU. Both are safe because reservation is a CAS on `head` (each
//! range has exactly one owner) and commit is per record. A preempted writer
//! only delays the consumer, which stops at its BUSY record; nobody waits.
//!
//! # Waking the consumer
//!
//! A consumer thread may sleep while its rings are quiet. It hangs a
//! [`Doorbell`] on each ring it drains ([`Ring::set_doorbell`]); a producer
//! whose commit leaves the ring at least `wake_bytes` full rings it, which
//! costs one compare per record and, only when the consumer is asleep, one
//! `unpark`. Producers never wait on it. A ring keeps the first doorbell hung
//! on it; only `Ring::reset_after_fork` takes it down, so that the workers
//! a forked child starts can hang theirs.
//!
//! # After fork()
//!
//! In a forked child only the forking thread runs: a record another thread
//! was writing stays BUSY forever, and the consumer would stop at it. The
//! child empties every ring before it starts new threads
//! (`Ring::reset_after_fork`, called from `crate::engine::fork`): it zeroes
//! `[tail, head)`, so invariant 1 holds again with `tail = head`, and the
//! records there stay the parent's to export.
//!
//! # Capacity
//!
//! A power of two between [`MIN_CAPACITY_BYTES`] and [`MAX_CAPACITY_BYTES`].
//! One record takes at most half the ring (header included), so an empty
//! ring accepts any record that is not too large wherever `head` stands.
//!
//! # High-water mark
//!
//! The most bytes the ring held is measured by the consumer, so producers
//! pay nothing for it. Only the consumer frees space: between two releases
//! `tail` stands still and `head` only grows, so the ring's occupancy only
//! grows, and its peak over that interval is its occupancy as the second
//! release ends it, `head - tail` read just before the new `tail` is
//! stored. The maximum of those, and of the occupancy now (for the interval
//! since the last release), is the high-water mark. It misses only what
//! producers reserve in the few instructions between that `head` load and
//! the `tail` store. A `Full` drop is not taken as "the ring reached
//! capacity": it only proves the ring held more than capacity less the
//! dropped record's stride and padding, up to half a ring short of full;
//! the next release measures the ring as the drop left it anyway.
#![allow(unsafe_code)]

pub use crate::signal::{SIGNALS, Signal};
use crate::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use crossbeam_utils::CachePadded;
use std::sync::Arc;
// The doorbell is not part of the loom models (a missed wake only delays,
// see `Doorbell::sleep`), so it uses std's atomics directly.
use std::sync::atomic as std_atomic;
use std::thread::Thread;
use std::time::Duration;

/// Bytes of the per-record header (`state` + `meta`).
pub const HEADER_BYTES: usize = 8;
/// Smallest ring: room for a few small records, and what loom models use.
pub const MIN_CAPACITY_BYTES: usize = 64;
/// Largest ring: record lengths must fit the 29-bit length field.
pub const MAX_CAPACITY_BYTES: usize = 1 << 30;

/// `state`: the record is committed and may be read (or skipped).
const READY: u32 = 1 << 31;
/// `state`: reserved, being written. Informational: readers test `READY`.
const BUSY: u32 = 1 << 30;
/// `state`: committed, but to be skipped (padding, or an aborted write).
const DISCARD: u32 = 1 << 29;
const LEN_MASK: u32 = DISCARD - 1;

/// What a record holds. Stored in the low byte of the header's `meta` word,
/// so every signal shares the same rings and the same mechanism.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
#[non_exhaustive]
pub enum RecordKind {
    /// A span, as an encoded `ScopeSpans.spans` field: key, length, and the
    /// OTLP `Span` message.
    Span = 1,
    /// A log record, as an encoded `ScopeLogs.log_records` field: key,
    /// length, and the OTLP `LogRecord` message.
    LogRecord = 2,
    /// A metric, as an encoded `ScopeMetrics.metrics` field: key, length,
    /// and the OTLP `Metric` message (its data points inside), which a
    /// collection encodes once.
    Metric = 3,
}

impl RecordKind {
    fn from_u8(v: u8) -> Option<Self> {
        match v {
            1 => Some(Self::Span),
            2 => Some(Self::LogRecord),
            3 => Some(Self::Metric),
            _ => None,
        }
    }
}

impl Signal {
    /// The kind of the records that carry this signal's items.
    pub fn record_kind(self) -> RecordKind {
        match self {
            Self::Traces => RecordKind::Span,
            Self::Logs => RecordKind::LogRecord,
            Self::Metrics => RecordKind::Metric,
        }
    }
}

/// Largest tag a record header can carry (24 bits).
pub const MAX_TAG: u32 = (1 << 24) - 1;

/// Why a record was not written. Small and `Copy`: it is returned on the hot
/// path and never allocates.
#[derive(Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WriteError {
    /// The ring has no room: the consumer is behind. The record is dropped
    /// and counted.
    #[error("ring full")]
    Full,
    /// The record is larger than half the ring. Dropped and counted.
    #[error("record larger than the ring accepts")]
    TooLarge,
}

debug_as_display!(WriteError);

/// A capacity that is not a power of two in the accepted range.
#[derive(Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "ring capacity {bytes} bytes is not a power of two between {MIN_CAPACITY_BYTES} and {MAX_CAPACITY_BYTES}"
)]
pub struct CapacityError {
    /// The capacity asked for.
    pub bytes: usize,
}

debug_as_display!(CapacityError);

/// Producer-side cursor and counters, on one cache line of their own.
#[derive(Default)]
struct ProducerSide {
    head: AtomicU64,
    /// Records committed (not discarded). Incremented by the committing
    /// producer before its Release commit, so a consumer that has read a
    /// record also sees it counted here.
    committed: AtomicU64,
    dropped_full: AtomicU64,
    dropped_too_large: AtomicU64,
    /// Writes abandoned by a panicking writer closure: committed as DISCARD.
    dropped_aborted: AtomicU64,
}

/// Consumer-side cursor and counters, on their own cache line.
#[derive(Default)]
struct ConsumerSide {
    tail: AtomicU64,
    /// Records released by the consumer. Written only by the consumer.
    drained: AtomicU64,
    /// The most bytes in use seen at a release (see "High-water mark" in
    /// the module docs). Written only by the consumer. A statistic that no
    /// part of the protocol reads, so it stays out of the loom models (not
    /// measured there, and std's atomic, like `wake_bytes`): the `head`
    /// load it takes at each release more than tripled the models' run
    /// time (58 s to 197 s, measured) for nothing they check.
    high_water: std_atomic::AtomicU64,
}

/// One bounded MPSC ring of variable-length records. See the module docs for
/// the protocol.
///
/// ```
/// use otlpx::ring::{RecordKind, Ring};
///
/// let ring = Ring::with_capacity(4096)?;
/// ring.try_write(RecordKind::Span, 7, 5, |slot| slot.copy_from_slice(b"hello"))?;
///
/// let mut consumer = ring.try_consume().expect("no other consumer");
/// let batch = consumer.peek(usize::MAX, usize::MAX);
/// consumer.for_each(&batch, |record| {
///     assert_eq!((record.tag, record.payload), (7, &b"hello"[..]));
/// });
/// consumer.release(batch);
/// assert_eq!(ring.counters().drained, 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Ring {
    producer: CachePadded<ProducerSide>,
    consumer: CachePadded<ConsumerSide>,
    /// Set while a [`Consumer`] exists: the single-consumer guard.
    consuming: AtomicBool,
    mem: Memory,
    mask: u64,
    /// Fill level (bytes) at which a commit rings the doorbell; `u64::MAX`
    /// until one is set. Written by the consumer (`set_doorbell`,
    /// `set_wake_bytes`), read by every commit.
    wake_bytes: std_atomic::AtomicU64,
    /// The consumer's doorbell: null, or a pointer from `Arc::into_raw`
    /// whose reference the ring owns. Set once by `set_doorbell` (null to
    /// non-null, never changed while producers may read it), taken down
    /// only by `reset_after_fork` and `drop`, which no producer can race.
    doorbell: std_atomic::AtomicPtr<Doorbell>,
}

/// How a sleeping consumer is woken when its rings fill. See the module
/// docs; the consumer owns it and hangs it on its rings.
#[derive(Debug)]
pub struct Doorbell {
    /// True while the consumer is (about to be) parked. Written by the
    /// consumer to announce sleep and by whoever wakes it.
    sleeping: std_atomic::AtomicBool,
    thread: Thread,
}

impl Doorbell {
    /// A doorbell that wakes `thread` (the consumer's).
    pub fn new(thread: Thread) -> Self {
        Self {
            sleeping: std_atomic::AtomicBool::new(false),
            thread,
        }
    }

    /// Wakes the consumer if it sleeps. Called by producers.
    #[cold]
    pub fn ring(&self) {
        // Relaxed: the flag carries no data, the ring's Release commit does
        // (the consumer reads records with Acquire). Load before swap so a
        // burst of producers seeing an awake consumer only reads the line.
        if self.sleeping.load(std_atomic::Ordering::Relaxed)
            && self.sleeping.swap(false, std_atomic::Ordering::Relaxed)
        {
            self.thread.unpark();
        }
    }

    /// Parks the calling (consumer) thread for at most `timeout`, unless
    /// `idle()` — checked after announcing the sleep — says work arrived.
    ///
    /// A producer that committed just before the announcement may miss it
    /// and not ring: the next commit over the threshold rings, and the
    /// timeout bounds the delay if none comes. Wakes from other sources
    /// (`Thread::unpark`) end the sleep too.
    pub fn sleep(&self, timeout: Duration, idle: impl FnOnce() -> bool) {
        // Relaxed: see `ring`; a missed wake only delays, as documented.
        self.sleeping.store(true, std_atomic::Ordering::Relaxed);
        if idle() {
            std::thread::park_timeout(timeout);
        }
        // Relaxed: as above.
        self.sleeping.store(false, std_atomic::Ordering::Relaxed);
    }
}

/// A point-in-time view of one ring's counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RingCounters {
    /// Records committed to the ring.
    pub committed: u64,
    /// Records the consumer has released.
    pub drained: u64,
    /// Records dropped because the ring was full.
    pub dropped_full: u64,
    /// Records dropped because they were larger than the ring accepts.
    pub dropped_too_large: u64,
    /// Records abandoned because the code writing them panicked.
    pub dropped_aborted: u64,
    /// Bytes reserved and not yet released (headers and padding included).
    pub used_bytes: u64,
    /// The most bytes the ring has held at once (see the module docs); at
    /// least `used_bytes`, at most `capacity_bytes`.
    pub high_water_bytes: u64,
    /// The ring's size in bytes.
    pub capacity_bytes: u64,
}

impl RingCounters {
    /// Records committed and not yet drained.
    pub fn in_ring(&self) -> u64 {
        self.committed - self.drained
    }
}

#[inline]
fn stride_of(len: usize) -> u64 {
    ((HEADER_BYTES + len + 7) & !7) as u64
}

impl Ring {
    /// Creates an empty ring of `capacity_bytes` (a power of two).
    ///
    /// # Errors
    ///
    /// [`CapacityError`] unless `capacity_bytes` is a power of two between
    /// [`MIN_CAPACITY_BYTES`] and [`MAX_CAPACITY_BYTES`].
    pub fn with_capacity(capacity_bytes: usize) -> Result<Self, CapacityError> {
        if !capacity_bytes.is_power_of_two()
            || !(MIN_CAPACITY_BYTES..=MAX_CAPACITY_BYTES).contains(&capacity_bytes)
        {
            return Err(CapacityError {
                bytes: capacity_bytes,
            });
        }
        Ok(Self {
            producer: CachePadded::new(ProducerSide::default()),
            consumer: CachePadded::new(ConsumerSide::default()),
            consuming: AtomicBool::new(false),
            mem: Memory::zeroed(capacity_bytes),
            mask: capacity_bytes as u64 - 1,
            wake_bytes: std_atomic::AtomicU64::new(u64::MAX),
            doorbell: std_atomic::AtomicPtr::new(std::ptr::null_mut()),
        })
    }

    /// Hangs the consumer's `doorbell` on this ring: a commit that leaves at
    /// least `wake_bytes` in use rings it. The first doorbell set stays;
    /// returns false if one was already set.
    pub fn set_doorbell(&self, doorbell: Arc<Doorbell>, wake_bytes: u64) -> bool {
        let raw = Arc::into_raw(doorbell).cast_mut();
        // Release: pairs with the Acquire load in `try_write`, which then
        // sees the `Doorbell` fully built. Relaxed on failure: nothing read.
        if self
            .doorbell
            .compare_exchange(
                std::ptr::null_mut(),
                raw,
                std_atomic::Ordering::Release,
                std_atomic::Ordering::Relaxed,
            )
            .is_err()
        {
            // SAFETY: `raw` came from `Arc::into_raw` just above and was not
            // published: this gives its reference back.
            drop(unsafe { Arc::from_raw(raw) });
            return false;
        }
        // Relaxed: a producer that reads the new threshold and not yet the
        // doorbell just does not ring this time; one that reads the old
        // threshold does not ring yet. A missed ring only delays (see
        // `Doorbell::sleep`).
        self.wake_bytes
            .store(wake_bytes.max(1), std_atomic::Ordering::Relaxed);
        true
    }

    /// Moves the fill level at which commits ring the doorbell (the
    /// consumer raises it while it polls on its own, lowers it before it
    /// sleeps).
    pub fn set_wake_bytes(&self, wake_bytes: u64) {
        // Relaxed: as in `set_doorbell`; a producer that reads the old
        // level rings once too many or too few, and the consumer's timed
        // sleep bounds the latter.
        self.wake_bytes
            .store(wake_bytes.max(1), std_atomic::Ordering::Relaxed);
    }

    /// The ring's size in bytes.
    pub fn capacity_bytes(&self) -> usize {
        self.mask as usize + 1
    }

    /// The largest payload one record may carry: half the ring, less the
    /// header.
    pub fn max_payload_bytes(&self) -> usize {
        self.capacity_bytes() / 2 - HEADER_BYTES
    }

    /// Reserves `len` bytes, lets `write` fill them, and commits the record.
    ///
    /// Never blocks, never allocates, never takes a lock: on a full ring the
    /// record is dropped and counted. `write` receives exactly `len` bytes
    /// (zeroed) and must not block; if it panics the record is committed as
    /// discarded, counted as aborted, and the panic continues.
    ///
    /// # Errors
    ///
    /// [`WriteError::Full`] when the consumer is too far behind,
    /// [`WriteError::TooLarge`] when `len` exceeds
    /// [`max_payload_bytes`](Self::max_payload_bytes). Both are counted.
    #[inline]
    pub fn try_write(
        &self,
        kind: RecordKind,
        tag: u32,
        len: usize,
        write: impl FnOnce(&mut [u8]),
    ) -> Result<(), WriteError> {
        debug_assert!(tag <= MAX_TAG, "tag {tag} does not fit 24 bits");
        let p = &*self.producer;
        if len > self.max_payload_bytes() {
            // Relaxed: a statistic; nothing is published through it.
            p.dropped_too_large.fetch_add(1, Ordering::Relaxed);
            return Err(WriteError::TooLarge);
        }
        let cap = self.mask + 1;
        let stride = stride_of(len);
        // Relaxed: a stale head only makes the CAS below fail and retry.
        let mut head = p.head.load(Ordering::Relaxed);
        let (pos, pad, tail) = loop {
            let off = head & self.mask;
            let pad = if off + stride > cap { cap - off } else { 0 };
            // Acquire: pairs with the Release store of `tail` in
            // `Consumer::release`, so the consumer's zeroing of the bytes we
            // are about to own happens-before our writes (invariant 1).
            let tail = self.consumer.tail.load(Ordering::Acquire);
            if tail > head {
                // Our `head` is stale: while we were preempted, others
                // reserved past it and the consumer released past that.
                // Judging fullness from it would drop a record spuriously.
                // Relaxed: as above.
                head = p.head.load(Ordering::Relaxed);
                continue;
            }
            if head - tail + pad + stride > cap {
                // Relaxed: a statistic.
                p.dropped_full.fetch_add(1, Ordering::Relaxed);
                return Err(WriteError::Full);
            }
            // Relaxed: the CAS only arbitrates ownership of the range;
            // nothing is published through `head` (the consumer never reads
            // it). Visibility of the zeroed bytes came from the tail load.
            match p.head.compare_exchange_weak(
                head,
                head + pad + stride,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => break (head, pad, tail),
                Err(now) => head = now,
            }
        };
        if pad != 0 {
            let off = (pos & self.mask) as usize;
            // Release: pairs with the Acquire load in `Consumer::scan`.
            self.mem.state(off).store(
                (pad as u32 - HEADER_BYTES as u32) | READY | DISCARD,
                Ordering::Release,
            );
        }
        let off = ((pos + pad) & self.mask) as usize;
        let len32 = len as u32; // len < 2^29: checked against max_payload_bytes.
        // Relaxed: BUSY only documents the state; readers test READY.
        self.mem.state(off).store(len32 | BUSY, Ordering::Relaxed);

        let abort = AbortOnUnwind {
            ring: self,
            off,
            len32,
        };
        self.mem.with_payload_mut(off + HEADER_BYTES, len, write);
        std::mem::forget(abort);

        // Relaxed: published by the Release store of the state below.
        self.mem
            .meta(off)
            .store(kind as u32 | (tag << 8), Ordering::Relaxed);
        // Relaxed: ordered before the Release commit, so a consumer that has
        // read this record (Acquire) also sees it counted.
        p.committed.fetch_add(1, Ordering::Relaxed);
        // Release: pairs with the Acquire load in `Consumer::scan`; publishes
        // the payload and `meta`.
        self.mem.state(off).store(len32 | READY, Ordering::Release);
        // Relaxed: a threshold; a stale one rings once too many or too few
        // (see `set_wake_bytes`).
        if pos + pad + stride - tail >= self.wake_bytes.load(std_atomic::Ordering::Relaxed) {
            // Acquire: pairs with the Release CAS in `set_doorbell` (what
            // `OnceLock::get` cost here before: one Acquire load).
            let bell = self.doorbell.load(std_atomic::Ordering::Acquire);
            // SAFETY: non-null, `bell` came from `Arc::into_raw` in
            // `set_doorbell`, and the ring keeps that reference until `drop`
            // or `reset_after_fork`, neither of which can run while a
            // producer uses `&self` (the latter's contract).
            if let Some(bell) = unsafe { bell.as_ref() } {
                bell.ring();
            }
        }
        Ok(())
    }

    /// Empties the ring in a forked child, as if new: zeroes the bytes of
    /// `[tail, head)` (records committed or half-written by the parent's
    /// threads, which the parent exports), sets `tail = head`, frees the
    /// consumer guard a dead consumer held, zeroes the counters, and takes
    /// the doorbell down (the thread it wakes does not exist here) so that
    /// a new consumer can hang its own.
    ///
    /// # Safety
    ///
    /// No other thread may use the ring during the call, nor hold a
    /// [`Consumer`] of it (in a forked child, before it starts threads:
    /// every other thread of the parent is gone there). Threads started
    /// afterwards see the reset through their spawn.
    pub(crate) unsafe fn reset_after_fork(&self) {
        // Relaxed (all loads and stores here): by the contract this thread
        // is the ring's only user, and threads that use it later are
        // spawned after this returns, which orders these writes first.
        let relaxed = Ordering::Relaxed;
        let head = self.producer.head.load(relaxed);
        let tail = self.consumer.tail.load(relaxed);
        let cap = self.mask + 1;
        // Producers reserve at most `capacity` past a `tail` they read, and
        // the consumer never releases past `head`.
        debug_assert!(
            tail <= head && head - tail <= cap,
            "tail {tail} head {head}"
        );
        let n = head.saturating_sub(tail).min(cap) as usize;
        let from = (tail & self.mask) as usize;
        let first = n.min(cap as usize - from);
        // Invariant 1 held for `[head, tail + capacity)`; these two zero the
        // rest, so every byte is zero and it holds for `tail = head`.
        self.mem.zero(from, first);
        self.mem.zero(0, n - first);
        self.consumer.tail.store(head, relaxed);
        self.consumer.drained.store(0, relaxed);
        self.consumer
            .high_water
            .store(0, std_atomic::Ordering::Relaxed);
        let p = &*self.producer;
        for counter in [
            &p.committed,
            &p.dropped_full,
            &p.dropped_too_large,
            &p.dropped_aborted,
        ] {
            counter.store(0, relaxed);
        }
        self.consuming.store(false, relaxed);
        // Relaxed (both): as above.
        self.wake_bytes
            .store(u64::MAX, std_atomic::Ordering::Relaxed);
        let bell = self
            .doorbell
            .swap(std::ptr::null_mut(), std_atomic::Ordering::Relaxed);
        if !bell.is_null() {
            // SAFETY: from `Arc::into_raw` in `set_doorbell`, owned by the
            // ring, and no producer can be using it (the contract).
            drop(unsafe { Arc::from_raw(bell) });
        }
    }

    /// Takes the consumer side, if nobody holds it.
    ///
    /// The ring has a single consumer at a time; a second caller gets `None`
    /// until the first [`Consumer`] is dropped.
    pub fn try_consume(&self) -> Option<Consumer<'_>> {
        // Acquire: pairs with the Release store in `Consumer::drop`, so this
        // consumer sees everything the previous one did (its tail, zeroing).
        self.consuming
            .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
            .ok()?;
        // Relaxed: only consumers write `tail`, and the guard above ordered
        // the previous consumer's writes before us.
        let tail = self.consumer.tail.load(Ordering::Relaxed);
        Some(Consumer { ring: self, tail })
    }

    /// A snapshot of the ring's counters.
    ///
    /// Counters are read one by one while producers run; `drained` is read
    /// first, so `committed >= drained` always holds in the snapshot.
    pub fn counters(&self) -> RingCounters {
        // Acquire: pairs with the Release store in `Consumer::release`; every
        // record counted as drained was committed, and its `committed`
        // increment happens-before, so the loads below see it.
        let drained = self.consumer.drained.load(Ordering::Acquire);
        let tail = self.consumer.tail.load(Ordering::Acquire);
        let p = &*self.producer;
        // Relaxed (all five): statistics, and `committed` already ordered by
        // the Acquire above.
        let committed = p.committed.load(Ordering::Relaxed);
        let head = p.head.load(Ordering::Relaxed);
        let capacity = self.mask + 1;
        // `head` is read after `tail`: if the consumer released and
        // producers refilled in between, the difference counts the released
        // bytes twice. The ring never holds more than its capacity.
        let used_bytes = head.saturating_sub(tail).min(capacity);
        // Relaxed: a statistic, written only by the consumer.
        let high_water = self.consumer.high_water.load(std_atomic::Ordering::Relaxed);
        RingCounters {
            committed,
            drained,
            dropped_full: p.dropped_full.load(Ordering::Relaxed),
            dropped_too_large: p.dropped_too_large.load(Ordering::Relaxed),
            dropped_aborted: p.dropped_aborted.load(Ordering::Relaxed),
            used_bytes,
            high_water_bytes: high_water.max(used_bytes),
            capacity_bytes: capacity,
        }
    }
}

impl Drop for Ring {
    fn drop(&mut self) {
        let bell = *self.doorbell.get_mut();
        if !bell.is_null() {
            // SAFETY: from `Arc::into_raw` in `set_doorbell` and owned by the
            // ring, which nobody else can use any more (`&mut self`).
            drop(unsafe { Arc::from_raw(bell) });
        }
    }
}

/// Commits a reservation as discarded if the writer closure unwinds, so the
/// consumer is never stuck behind a record that will never be committed.
struct AbortOnUnwind<'r> {
    ring: &'r Ring,
    off: usize,
    len32: u32,
}

impl Drop for AbortOnUnwind<'_> {
    fn drop(&mut self) {
        let p = &*self.ring.producer;
        // Relaxed: a statistic.
        p.dropped_aborted.fetch_add(1, Ordering::Relaxed);
        // Release: pairs with the Acquire load in `Consumer::scan`.
        self.ring
            .mem
            .state(self.off)
            .store(self.len32 | READY | DISCARD, Ordering::Release);
    }
}

/// One committed record, as the consumer sees it.
#[derive(Clone, Copy, Debug)]
pub struct Record<'a> {
    /// What the record holds; `None` for a kind this build does not know.
    pub kind: Option<RecordKind>,
    /// The 24-bit tag the producer gave (the scope, for spans).
    pub tag: u32,
    /// The payload bytes, exactly as written.
    pub payload: &'a [u8],
}

/// The consumer side of a ring; at most one exists per ring at a time.
pub struct Consumer<'r> {
    ring: &'r Ring,
    /// Our copy of `tail`: only the consumer writes it.
    tail: u64,
}

/// A run of committed records, read but not yet released: they stay in ring
/// memory (no copy) until [`Consumer::release`].
#[derive(Clone, Copy, Debug)]
pub struct Batch {
    start: u64,
    end: u64,
    records: usize,
    payload_bytes: usize,
    /// The tag every record shares; `None` when empty or mixed.
    tag: Option<u32>,
    mixed: bool,
    /// The kind byte every record shares; `None` when empty or mixed.
    kind: Option<u8>,
    mixed_kinds: bool,
}

impl Batch {
    /// Records in the batch (padding and discarded writes not counted).
    pub fn len(&self) -> usize {
        self.records
    }

    /// Whether the batch holds no records.
    pub fn is_empty(&self) -> bool {
        self.records == 0
    }

    /// Total payload bytes of the batch's records.
    pub fn payload_bytes(&self) -> usize {
        self.payload_bytes
    }

    /// The tag all the batch's records carry, if they share one.
    pub fn single_tag(&self) -> Option<u32> {
        if self.mixed { None } else { self.tag }
    }

    /// Whether every record of the batch is of `kind` (an empty batch is).
    pub fn all_of_kind(&self, kind: RecordKind) -> bool {
        !self.mixed_kinds && self.kind.is_none_or(|k| k == kind as u8)
    }
}

impl<'r> Consumer<'r> {
    /// Finds the committed records after `tail`, up to the first record still
    /// being written, at most `max_records` of them and (past the first) at
    /// most `max_payload_bytes` of payload. Releases nothing.
    pub fn peek(&self, max_records: usize, max_payload_bytes: usize) -> Batch {
        let mut batch = Batch {
            start: self.tail,
            end: self.tail,
            records: 0,
            payload_bytes: 0,
            tag: None,
            mixed: false,
            kind: None,
            mixed_kinds: false,
        };
        self.scan(self.tail, |pos, state| {
            let len = (state & LEN_MASK) as usize;
            if state & DISCARD == 0 {
                if batch.records == max_records
                    || (batch.records > 0 && batch.payload_bytes + len > max_payload_bytes)
                {
                    return false;
                }
                batch.records += 1;
                batch.payload_bytes += len;
                let off = (pos & self.ring.mask) as usize;
                // Relaxed: ordered by the Acquire state load in `scan`.
                let meta = self.ring.mem.meta(off).load(Ordering::Relaxed);
                let (tag, kind) = (meta >> 8, meta as u8);
                match batch.tag {
                    None => batch.tag = Some(tag),
                    Some(t) if t != tag => batch.mixed = true,
                    Some(_) => {}
                }
                match batch.kind {
                    None => batch.kind = Some(kind),
                    Some(k) if k != kind => batch.mixed_kinds = true,
                    Some(_) => {}
                }
            }
            batch.end = pos + stride_of(len);
            true
        });
        batch
    }

    /// Calls `f` for each record of `batch`, in commit order within the ring.
    /// Padding and discarded records are skipped.
    pub fn for_each(&self, batch: &Batch, mut f: impl FnMut(Record<'_>)) {
        debug_assert_eq!(batch.start, self.tail, "batch from another consumer");
        self.scan(batch.start, |pos, state| {
            if pos >= batch.end {
                return false;
            }
            if state & DISCARD == 0 {
                let off = (pos & self.ring.mask) as usize;
                let len = (state & LEN_MASK) as usize;
                // Relaxed: ordered by the Acquire state load in `scan`.
                let meta = self.ring.mem.meta(off).load(Ordering::Relaxed);
                self.ring
                    .mem
                    .with_payload(off + HEADER_BYTES, len, |payload| {
                        f(Record {
                            kind: RecordKind::from_u8(meta as u8),
                            tag: meta >> 8,
                            payload,
                        })
                    });
            }
            true
        });
    }

    /// Walks committed records from `pos`, calling `step(pos, state)` until
    /// it returns false, a record is not READY, or the walk would reach the
    /// oldest unreleased byte again (invariant 3).
    fn scan(&self, mut pos: u64, mut step: impl FnMut(u64, u32) -> bool) {
        let limit = self.tail + self.ring.mask + 1;
        while pos < limit {
            let off = (pos & self.ring.mask) as usize;
            // Acquire: pairs with the Release commit in `Ring::try_write`
            // (and its padding / abort stores): the payload and `meta` of a
            // READY record are visible.
            let state = self.ring.mem.state(off).load(Ordering::Acquire);
            if state & READY == 0 || !step(pos, state) {
                return;
            }
            pos += stride_of((state & LEN_MASK) as usize);
        }
    }

    /// Releases `batch` (which must be the oldest unreleased one): zeroes its
    /// bytes and hands them back to producers.
    ///
    /// # Panics
    ///
    /// If `batch` does not start at the oldest unreleased record, i.e. it
    /// came from another consumer or a later `peek` is released before an
    /// earlier one. Releasing out of order would hand live records back to
    /// producers, so this is checked in every build.
    pub fn release(&mut self, batch: Batch) {
        assert_eq!(batch.start, self.tail, "batches are released in order");
        let cap = (self.ring.mask + 1) as usize;
        let from = (batch.start & self.ring.mask) as usize;
        let n = (batch.end - batch.start) as usize;
        let first = n.min(cap - from);
        self.ring.mem.zero(from, first);
        self.ring.mem.zero(0, n - first);
        self.tail = batch.end;
        // Before `tail` moves (see `note_high_water`).
        #[cfg(not(loom))]
        self.note_high_water(batch.start);
        let c = &*self.ring.consumer;
        // Relaxed: only this consumer writes `drained`.
        let drained = c.drained.load(Ordering::Relaxed) + batch.records as u64;
        // Release: pairs with the Acquire load in `Ring::counters`.
        c.drained.store(drained, Ordering::Release);
        // Release: pairs with the Acquire load in `Ring::try_write`; the
        // zeroing above happens-before any producer reuses these bytes.
        c.tail.store(batch.end, Ordering::Release);
    }

    /// Records the occupancy that the release of the batch starting at
    /// `start` ends: the peak since the last release (see "High-water
    /// mark" in the module docs). Called before `tail` moves from `start`.
    #[cfg(not(loom))]
    fn note_high_water(&self, start: u64) {
        // Relaxed: a statistic. It cannot be older than the end of the
        // batch: the records up to there were read through Acquire loads
        // of states their producers stored after moving `head` past them.
        // Nor more than a ring ahead of `start`: producers only move `head`
        // to at most a `tail` they read plus capacity.
        let head = self.ring.producer.head.load(Ordering::Relaxed);
        let used = head.saturating_sub(start);
        let c = &*self.ring.consumer;
        // Relaxed (both): only the consumer writes `high_water`; consumers
        // follow each other through the `consuming` guard's Release/Acquire.
        if used > c.high_water.load(std_atomic::Ordering::Relaxed) {
            c.high_water.store(used, std_atomic::Ordering::Relaxed);
        }
    }
}

impl Drop for Consumer<'_> {
    fn drop(&mut self) {
        // Release: pairs with the Acquire CAS in `Ring::try_consume`.
        self.ring.consuming.store(false, Ordering::Release);
    }
}

/// One ring per CPU. A producer writes to the ring of the CPU it runs on,
/// so producers on different CPUs never share a cache line.
pub struct Rings {
    rings: Box<[Ring]>,
}

impl Rings {
    /// `count` rings of `capacity_bytes` each.
    ///
    /// # Errors
    ///
    /// [`CapacityError`] for a capacity [`Ring::with_capacity`] refuses.
    pub fn new(count: usize, capacity_bytes: usize) -> Result<Self, CapacityError> {
        let rings = (0..count.max(1))
            .map(|_| Ring::with_capacity(capacity_bytes))
            .collect::<Result<_, _>>()?;
        Ok(Self { rings })
    }

    /// How many rings a process on this machine wants: one per configured
    /// CPU (CPU numbers from `sched_getcpu` range over all of them, not just
    /// those in this process's affinity mask).
    pub fn default_count() -> usize {
        #[cfg(all(target_os = "linux", not(miri)))]
        {
            // SAFETY: sysconf has no preconditions.
            let n = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_CONF) };
            if n > 0 {
                return n as usize;
            }
        }
        std::thread::available_parallelism().map_or(1, |n| n.get())
    }

    /// The ring of the CPU this thread runs on now.
    #[inline]
    pub fn local(&self) -> &Ring {
        let cpu = current_cpu();
        // The common case avoids a division: CPU numbers are below the count.
        let i = if cpu < self.rings.len() {
            cpu
        } else {
            cpu % self.rings.len()
        };
        &self.rings[i]
    }

    /// All rings, in CPU order.
    pub fn iter(&self) -> std::slice::Iter<'_, Ring> {
        self.rings.iter()
    }

    /// Rings in the set.
    pub fn len(&self) -> usize {
        self.rings.len()
    }

    /// Always false: a set has at least one ring.
    pub fn is_empty(&self) -> bool {
        self.rings.is_empty()
    }

    /// The largest record payload every ring accepts.
    pub fn max_payload_bytes(&self) -> usize {
        self.rings[0].max_payload_bytes()
    }

    /// Empties every ring in a forked child ([`Ring::reset_after_fork`]).
    ///
    /// # Safety
    ///
    /// As for [`Ring::reset_after_fork`], for every ring of the set.
    pub(crate) unsafe fn reset_after_fork(&self) {
        for ring in self.iter() {
            // SAFETY: the caller's contract covers every ring of the set.
            unsafe { ring.reset_after_fork() }
        }
    }
}

/// The CPU this thread runs on: `sched_getcpu` (a few ns: glibc reads it
/// from the rseq area), else a per-thread number so threads still spread.
#[inline]
fn current_cpu() -> usize {
    #[cfg(all(target_os = "linux", not(miri), not(loom)))]
    {
        // SAFETY: sched_getcpu has no preconditions; -1 means unsupported.
        let cpu = unsafe { libc::sched_getcpu() };
        if cpu >= 0 {
            return cpu as usize;
        }
    }
    thread_slot()
}

fn thread_slot() -> usize {
    use std_atomic::AtomicUsize;
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        // Relaxed: any distinct-ish number will do.
        static SLOT: usize = NEXT.fetch_add(1, std_atomic::Ordering::Relaxed);
    }
    SLOT.try_with(|s| *s).unwrap_or(0)
}

// ---------------------------------------------------------------------------
// Ring memory. The real one is a single zeroed allocation whose header words
// are accessed as atomics in place; under loom the header words are loom
// atomics and the payload bytes loom cells, so the model checker sees every
// access the protocol makes.

#[cfg(not(loom))]
use real_memory::Memory;

#[cfg(loom)]
use loom_memory::Memory;

#[cfg(not(loom))]
mod real_memory {
    use super::{AtomicU32, HEADER_BYTES};
    use std::alloc::{self, Layout};
    use std::ptr::NonNull;

    /// Cache-line alignment: records are 8-aligned within it, and the first
    /// record does not share a line with anything else.
    const ALIGN_BYTES: usize = 64;

    pub(super) struct Memory {
        ptr: NonNull<u8>,
        len: usize,
    }

    // SAFETY: `Memory` is a raw byte buffer. Every access goes through the
    // methods below, whose callers (the ring protocol) give each byte range
    // one writer at a time and order readers after writers with the
    // Release/Acquire pairs documented in `ring`.
    unsafe impl Send for Memory {}
    // SAFETY: as for `Send`.
    unsafe impl Sync for Memory {}

    impl Memory {
        pub(super) fn zeroed(len: usize) -> Self {
            let layout = Layout::from_size_align(len, ALIGN_BYTES).expect("checked capacity");
            // SAFETY: `layout` has a non-zero size (len >= MIN_CAPACITY_BYTES).
            let raw = unsafe { alloc::alloc_zeroed(layout) };
            let Some(ptr) = NonNull::new(raw) else {
                alloc::handle_alloc_error(layout)
            };
            Self { ptr, len }
        }

        fn word(&self, off: usize) -> &AtomicU32 {
            debug_assert!(off.is_multiple_of(4) && off + 4 <= self.len);
            // SAFETY: `off` is 4-aligned and in bounds (callers pass an
            // 8-aligned record offset, plus 0 or 4), the allocation is
            // 64-aligned, and header words are only accessed atomically
            // while other threads may touch them; the consumer's plain
            // zeroing happens-before any later atomic access (invariant 1).
            unsafe { AtomicU32::from_ptr(self.ptr.as_ptr().add(off).cast::<u32>()) }
        }

        pub(super) fn state(&self, off: usize) -> &AtomicU32 {
            self.word(off)
        }

        pub(super) fn meta(&self, off: usize) -> &AtomicU32 {
            self.word(off + 4)
        }

        pub(super) fn with_payload_mut(&self, off: usize, len: usize, f: impl FnOnce(&mut [u8])) {
            debug_assert!(off >= HEADER_BYTES && off + len <= self.len);
            // SAFETY: in bounds (a record never wraps and fits the ring); the
            // calling producer owns `[off, off + len)` exclusively from its
            // successful CAS until its commit, and nobody reads it before the
            // commit.
            let bytes = unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr().add(off), len) };
            f(bytes);
        }

        pub(super) fn with_payload<R>(
            &self,
            off: usize,
            len: usize,
            f: impl FnOnce(&[u8]) -> R,
        ) -> R {
            debug_assert!(off >= HEADER_BYTES && off + len <= self.len);
            // SAFETY: in bounds; the record is committed (its READY state was
            // read with Acquire) and not yet released, so no producer writes
            // these bytes while the slice lives.
            let bytes = unsafe { std::slice::from_raw_parts(self.ptr.as_ptr().add(off), len) };
            f(bytes)
        }

        pub(super) fn zero(&self, off: usize, len: usize) {
            debug_assert!(off + len <= self.len);
            // SAFETY: in bounds; the consumer calls this on bytes it has read
            // and not yet released, which no producer may touch until the
            // Release store of `tail` that follows.
            unsafe { std::ptr::write_bytes(self.ptr.as_ptr().add(off), 0, len) }
        }
    }

    impl Drop for Memory {
        fn drop(&mut self) {
            let layout = Layout::from_size_align(self.len, ALIGN_BYTES).expect("checked capacity");
            // SAFETY: allocated in `zeroed` with this very layout.
            unsafe { alloc::dealloc(self.ptr.as_ptr(), layout) }
        }
    }
}

#[cfg(loom)]
mod loom_memory {
    use super::AtomicU32;
    use loom::cell::UnsafeCell;

    /// Header words as loom atomics (one `state`, one `meta` per 8 bytes),
    /// payload bytes as loom cells: loom then checks that every payload read
    /// is ordered after its write and every reuse after the zeroing.
    pub(super) struct Memory {
        words: Vec<AtomicU32>,
        bytes: Vec<UnsafeCell<u8>>,
    }

    impl Memory {
        pub(super) fn zeroed(len: usize) -> Self {
            Self {
                words: (0..len / 4).map(|_| AtomicU32::new(0)).collect(),
                bytes: (0..len).map(|_| UnsafeCell::new(0)).collect(),
            }
        }

        pub(super) fn state(&self, off: usize) -> &AtomicU32 {
            &self.words[off / 4]
        }

        pub(super) fn meta(&self, off: usize) -> &AtomicU32 {
            &self.words[off / 4 + 1]
        }

        pub(super) fn with_payload_mut(&self, off: usize, len: usize, f: impl FnOnce(&mut [u8])) {
            let mut tmp = vec![0u8; len];
            f(&mut tmp);
            for (i, b) in tmp.into_iter().enumerate() {
                // SAFETY: loom checks the exclusivity this relies on.
                self.bytes[off + i].with_mut(|p| unsafe { *p = b });
            }
        }

        pub(super) fn with_payload<R>(
            &self,
            off: usize,
            len: usize,
            f: impl FnOnce(&[u8]) -> R,
        ) -> R {
            let tmp: Vec<u8> = (off..off + len)
                // SAFETY: loom checks the ordering this relies on.
                .map(|i| self.bytes[i].with(|p| unsafe { *p }))
                .collect();
            f(&tmp)
        }

        pub(super) fn zero(&self, off: usize, len: usize) {
            for i in off..off + len {
                // SAFETY: loom checks the exclusivity this relies on.
                self.bytes[i].with_mut(|p| unsafe { *p = 0 });
            }
            // Header words live at 8-aligned offsets; clear both words of
            // each header slot in the range. Relaxed: published by the
            // Release store of `tail`, like the real memory's plain writes.
            for w in (off / 4)..((off + len) / 4) {
                self.words[w].store(0, std::sync::atomic::Ordering::Relaxed);
            }
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    fn write(ring: &Ring, n: usize) {
        for _ in 0..n {
            // 100-byte payloads: 112-byte strides.
            ring.try_write(RecordKind::Span, 1, 100, |b| b.fill(1))
                .unwrap();
        }
    }

    fn drain(ring: &Ring, max: usize) {
        let mut c = ring.try_consume().unwrap();
        let batch = c.peek(max, usize::MAX);
        c.release(batch);
    }

    #[test]
    fn high_water_is_the_peak_occupancy_across_drains() {
        let ring = Ring::with_capacity(4096).unwrap();
        assert_eq!(ring.counters().high_water_bytes, 0);
        write(&ring, 3);
        let c = ring.counters();
        assert_eq!((c.used_bytes, c.high_water_bytes), (336, 336));
        assert_eq!(c.capacity_bytes, 4096);
        drain(&ring, usize::MAX);
        let c = ring.counters();
        assert_eq!(
            (c.used_bytes, c.high_water_bytes),
            (0, 336),
            "kept past the drain"
        );
        write(&ring, 1);
        assert_eq!(ring.counters().high_water_bytes, 336, "below the peak");
        write(&ring, 5);
        assert_eq!(ring.counters().high_water_bytes, 672, "the occupancy now");
        // A partial drain measures the whole occupancy, not the batch.
        drain(&ring, 1);
        write(&ring, 2);
        drain(&ring, usize::MAX);
        let c = ring.counters();
        assert_eq!((c.used_bytes, c.high_water_bytes), (0, 672 - 112 + 224));
    }

    /// What a producer that died mid-write leaves: its range reserved and
    /// its record BUSY, half its payload written.
    fn abandon(ring: &Ring, len: usize) {
        let head = ring.producer.head.load(Ordering::Relaxed);
        let off = (head & ring.mask) as usize;
        assert!(
            off as u64 + stride_of(len) <= ring.mask + 1,
            "no padding here"
        );
        ring.producer
            .head
            .store(head + stride_of(len), Ordering::Relaxed);
        ring.mem
            .state(off)
            .store(len as u32 | BUSY, Ordering::Relaxed);
        ring.mem
            .with_payload_mut(off + HEADER_BYTES, len / 2, |b| b.fill(0xab));
    }

    /// Every byte of the ring's memory.
    fn all_zero(ring: &Ring) -> bool {
        let cap = ring.capacity_bytes();
        ring.mem.state(0).load(Ordering::Relaxed) == 0
            && ring.mem.meta(0).load(Ordering::Relaxed) == 0
            && ring
                .mem
                .with_payload(HEADER_BYTES, cap - HEADER_BYTES, |b| {
                    b.iter().all(|&x| x == 0)
                })
    }

    #[test]
    fn reset_after_fork_empties_the_ring_and_zeroes_its_bytes_and_counters() {
        let ring = Ring::with_capacity(1024).unwrap();
        // 8 strides of 112 and a drain: `tail` = 896, so what follows wraps.
        write(&ring, 8);
        drain(&ring, usize::MAX);
        // At 896 a committed record; at 1008 padding, and at 1024 (offset
        // 0) another; then a writer that died mid-write; then three more
        // committed, which the consumer cannot reach past the BUSY one.
        write(&ring, 2);
        abandon(&ring, 100);
        write(&ring, 3);
        assert_eq!(
            ring.try_write(RecordKind::Span, 1, 1000, |_| {}),
            Err(WriteError::TooLarge)
        );
        assert_eq!(
            ring.try_write(RecordKind::Span, 1, 500, |_| {}),
            Err(WriteError::Full)
        );
        let stuck = ring.try_consume().unwrap();
        assert_eq!(stuck.peek(usize::MAX, usize::MAX).len(), 2, "stops at BUSY");
        // A consumer on a thread that is gone: its guard stays taken.
        std::mem::forget(stuck);
        assert!(ring.try_consume().is_none());
        let bell = Arc::new(Doorbell::new(std::thread::current()));
        assert!(ring.set_doorbell(Arc::clone(&bell), 64));
        assert!(!ring.set_doorbell(Arc::clone(&bell), 64), "set once");
        let c = ring.counters();
        assert_eq!((c.committed, c.drained), (13, 8));
        assert_eq!((c.dropped_full, c.dropped_too_large), (1, 1));
        assert!(!all_zero(&ring));

        // SAFETY: this test is the ring's only user.
        unsafe { ring.reset_after_fork() };

        assert!(all_zero(&ring), "invariant 1 over the whole ring");
        assert_eq!(
            ring.counters(),
            RingCounters {
                capacity_bytes: 1024,
                ..RingCounters::default()
            }
        );
        assert_eq!(
            ring.wake_bytes.load(std_atomic::Ordering::Relaxed),
            u64::MAX
        );
        assert_eq!(Arc::strong_count(&bell), 1, "the old doorbell let go");
        assert!(ring.set_doorbell(bell, 64), "a new consumer hangs its own");
        // New records go in, and the consumer sees only them.
        for tag in 1..=9 {
            ring.try_write(RecordKind::Span, tag, 100, |b| b.fill(tag as u8))
                .unwrap();
        }
        let mut c = ring.try_consume().expect("the guard was freed");
        let batch = c.peek(usize::MAX, usize::MAX);
        let mut tags = Vec::new();
        c.for_each(&batch, |r| {
            assert!(r.payload.iter().all(|&b| b == r.tag as u8));
            tags.push(r.tag);
        });
        c.release(batch);
        drop(c);
        assert_eq!(tags, (1..=9).collect::<Vec<_>>());
        let c = ring.counters();
        assert_eq!((c.committed, c.drained, c.used_bytes), (9, 9, 0));
        assert!(all_zero(&ring));
    }

    #[test]
    fn high_water_of_a_full_ring_is_at_most_its_capacity() {
        let ring = Ring::with_capacity(1024).unwrap();
        // 9 strides of 112 fill 1008 bytes; the 10th does not fit.
        write(&ring, 9);
        assert_eq!(
            ring.try_write(RecordKind::Span, 1, 100, |_| {}),
            Err(WriteError::Full)
        );
        drain(&ring, usize::MAX);
        let c = ring.counters();
        assert_eq!((c.high_water_bytes, c.dropped_full), (1008, 1));
        assert!(c.high_water_bytes <= c.capacity_bytes);
    }
}

/// Loom models of the protocol: `RUSTFLAGS="--cfg loom -C overflow-checks=on" cargo test -p otlpx
/// --release --lib loom`. Rings are 64 bytes (the minimum) so that a
/// handful of records exercise full rings, padding and reuse of zeroed
/// bytes, while the state space stays small enough to explore.
#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;
    use loom::sync::Arc;
    use loom::thread;

    /// Drains what is committed, checking each payload is its tag repeated.
    fn drain(ring: &Ring, seen: &mut Vec<u32>) {
        if let Some(mut c) = ring.try_consume() {
            let batch = c.peek(usize::MAX, usize::MAX);
            c.for_each(&batch, |r| {
                assert!(r.payload.iter().all(|&b| b == r.tag as u8), "torn record");
                seen.push(r.tag);
            });
            c.release(batch);
        }
    }

    #[test]
    fn loom_two_producers_one_consumer() {
        loom::model(|| {
            let ring = Arc::new(Ring::with_capacity(64).unwrap());
            let producers: Vec<_> = (1..=2u32)
                .map(|p| {
                    let ring = Arc::clone(&ring);
                    // Different sizes (strides 16 and 24): a producer with
                    // a stale `head` can then find `tail` past it.
                    thread::spawn(move || {
                        let len = 8 * p as usize;
                        ring.try_write(RecordKind::Span, p, len, |b| b.fill(p as u8))
                            .is_ok()
                    })
                })
                .collect();
            let mut seen = Vec::new();
            drain(&ring, &mut seen);
            // 16 + 24 bytes always fit a 64-byte ring: a `Full` here
            // would be a spurious drop (e.g. from a stale `head`).
            for h in producers {
                assert!(h.join().unwrap(), "spurious Full");
            }
            drain(&ring, &mut seen);
            seen.sort_unstable();
            assert_eq!(seen, [1, 2]);
            let c = ring.counters();
            assert_eq!((c.committed, c.drained, c.dropped_full), (2, 2, 0));
        });
    }

    #[test]
    fn loom_wrap_with_padding_while_consuming() {
        // 16-byte payloads take 24-byte strides in a 64-byte ring: the third
        // record needs padding at the end and the first record's bytes back.
        loom::model(|| {
            let ring = Arc::new(Ring::with_capacity(64).unwrap());
            let producer = {
                let ring = Arc::clone(&ring);
                thread::spawn(move || {
                    (1..=3u32)
                        .filter(|&t| {
                            ring.try_write(RecordKind::Span, t, 16, |b| b.fill(t as u8))
                                .is_ok()
                        })
                        .count()
                })
            };
            let mut seen = Vec::new();
            drain(&ring, &mut seen);
            let written = producer.join().unwrap();
            drain(&ring, &mut seen);
            assert_eq!(seen.len(), written);
            assert!(
                seen.windows(2).all(|w| w[0] < w[1]),
                "one producer's records stay in order"
            );
            assert_eq!(ring.counters().used_bytes, 0);
        });
    }
}
