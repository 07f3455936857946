//! Spool: a bounded on-disk queue for requests that could not be sent yet.
//!
//! Records are whole export requests, framed and compressed exactly as
//! they would go on the wire, so a spooled request is sent again without
//! being rebuilt. The engine appends a request here when it cannot be
//! delivered; a drainer takes records out oldest first, sends them, and
//! marks each one completed once delivered (or gives it back to be tried
//! again). What is in the directory outlives the process, `kill -9`
//! included: the next engine opened on it sends it.
//!
//! One engine at a time uses a directory (a second one gets
//! [`SpoolError::Locked`]). Its segment files together stay within the
//! configured bound; when a record does not fit, either whole segments of
//! the oldest records are deleted or the new record is refused.
//!
//! The byte format is documented in full in `spool/segment.rs`. In short
//! (little-endian): a segment opens with a 16-byte header (`OTLPXSPL`,
//! format version 1, 4 reserved bytes); each record is a 24-byte header
//! (magic `OXR1`, body length, items, signal, compression, a state byte,
//! a pad byte, the body's CRC-32, the header's CRC-32) then the body.
//!
//! # When the engine spools, and sends from the spool
//!
//! With a spool configured
//! ([`EngineBuilder::spool_dir`](crate::EngineBuilder::spool_dir)), a
//! request goes to the spool instead of being dropped when
//!
//! * it is still failing with retryable errors when its batch export
//!   timeout would pass (instead of `dropped.export_failed`; final errors,
//!   such as HTTP 400, are still dropped: sending them later would not
//!   help);
//! * it is evicted from the in-flight budget while waiting for a retry
//!   (instead of `dropped.evicted`);
//! * shutdown's deadline passes with it unanswered, or its spans still in
//!   the rings (instead of `dropped.shutdown`, or staying in the rings).
//!
//! A drainer task sends records oldest first, two at a time, one attempt
//! each: a record answered (or refused for good) is completed; one that
//! fails retryably is given back, and the drainer pauses for the retry
//! backoff (or the receiver's hint). The pause ends early when a live
//! request is answered (the receiver is back), unless the receiver asked
//! for it by throttling (`RESOURCE_EXHAUSTED`, HTTP 429). Spans in the spool are counted in
//! [`Stats::spooled`](crate::Stats::spooled) and
//! [`Stats::spool`](crate::Stats::spool); `flush` waits for the spool to
//! empty too. A `fork()`ed child exports without the spool: the parent
//! keeps it, and its lock. The child closes its copy of the lock file's
//! descriptor (`InheritedLock`), which would otherwise hold the lock for
//! as long as the child lives (a `flock` belongs to the open file, which
//! both processes share), so a later engine could not open the directory
//! once the parent's had shut down.
//!
//! # Layout and life of a record
//!
//! The directory holds `LOCK` and append-only segment files
//! `{seq:020}.spool`. `open` takes an exclusive advisory lock (`flock`) on
//! `LOCK`, writes `pid N` into it, scans the existing segments oldest
//! first, then creates a new segment (highest number seen + 1) to append
//! to: an old segment's tail may be torn, so it is never appended to.
//! The active segment is rotated (a new one created) when a record would
//! take it past `clamp(max_bytes / 8, 64 KiB, 64 MiB)`; a larger record
//! goes alone into a segment of its own.
//!
//! A record is Pending, then Claimed (handed to a sender; never handed out
//! again unless released), then Done (completed, or lost because it could
//! not be read back). Completion rewrites one state byte in place; a
//! segment, other than the active one, is deleted as soon as none of its
//! records is Pending or Claimed.
//!
//! # Invariants
//!
//! * One `Mutex` guards all state. Appends, completions and deletions
//!   from the index happen under it (the files of deleted segments are
//!   unlinked just after it is released); `claim` reads the record's bytes after dropping it,
//!   which is safe because a segment holding a Claimed record is never
//!   deleted (neither by `complete` nor by `drop_oldest`), and the reader
//!   holds its own `Arc` of the file.
//! * `disk_bytes` is the sum of the lengths of the segment files in the
//!   index; after an `Ok` append it is at most `max_bytes` (it can exceed
//!   it after `open` if an earlier engine ran with a larger bound, until
//!   appends drop or the drainer empties the old segments).
//! * A failed append leaves no record on disk that reads as valid: the
//!   segment is cut back to its former length, or, if even that fails, the
//!   next append starts a new segment (the torn bytes then fail their
//!   checksums when scanned).
//! * Damaged content never makes `open` fail or panic; it is skipped and
//!   counted in `Recovery`.
//!
//! # Durability
//!
//! `Spool::sync` `fdatasync`s the active segment and every segment rotated
//! away from since the last sync, and fsyncs the directory if a segment was
//! created since then (so a synced record's file survives a power cut).
//! `append` never syncs (an `fdatasync` of a full segment can take hundreds
//! of milliseconds, and `append` holds the lock): it says when a rotation
//! made a sync due (`Appended::sync_due`), and the engine's spool writer
//! thread syncs after it; shutdown syncs last. (The engine calls nothing
//! here from its I/O thread: file operations wait for the disk.) Syncs are
//! serialised, so a sync that returns has covered every rotation before
//! it. Completions and deletions are not synced: after a crash a completed
//! record may be sent again (delivery is at least once).
//!
//! A segment whose file header is damaged (or of another format version) is
//! renamed `….spool.corrupt`, kept for inspection and never touched again
//! (nor counted in `disk_bytes`). A segment shorter than its file header
//! holds nothing to keep and is deleted (counted as damage unless empty:
//! an empty one is a creation cut short).

mod segment;

use crate::ring::{SIGNALS, Signal};
use bytes::Bytes;
use segment::{FILE_HEADER_BYTES, RECORD_HEADER_BYTES, RecordHeader};
use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};

/// Lower bound on the segment size target: small segments would mean a
/// file creation and an fsync every few records.
const MIN_SEGMENT_BYTES: u64 = 64 * 1024;
/// Upper bound on the segment size target: space is reclaimed a segment
/// at a time, so a segment should stay a small part of the spool.
const MAX_SEGMENT_BYTES: u64 = 64 * 1024 * 1024;
/// The lock file's name in the spool directory.
const LOCK_FILE: &str = "LOCK";
/// How much of a lock file is read to name its holder.
const HOLDER_MAX_BYTES: u64 = 64;

/// Where and how big.
#[derive(Clone, Debug)]
pub(crate) struct SpoolSettings {
    /// The directory; created if missing.
    pub(crate) dir: PathBuf,
    /// Bound on the bytes of all segment files together.
    pub(crate) max_bytes: u64,
    /// When full: delete the oldest segments (true) or refuse the new
    /// record (false).
    pub(crate) drop_oldest: bool,
}

/// Item counts by signal: indexed by the signal a record's signal byte
/// names ([`signal_of`]).
pub(crate) type BySignal = [u64; SIGNALS];

/// The spool's number for a signal: the record header's signal byte.
/// Numbers are never reused; a spool written before metrics holds only 0
/// and 1, and reads as it did.
pub(crate) fn signal_code(signal: Signal) -> u8 {
    match signal {
        Signal::Traces => 0,
        Signal::Logs => 1,
        Signal::Metrics => 2,
    }
}

/// The signal of a spool's number; an unknown number (a later version's
/// signal) reads as traces, whose code it then fails to match
/// (`send_spooled` counts such a record as damaged). (A version before
/// metrics reads a metrics record, 2, that way too.)
pub(crate) fn signal_of(code: u8) -> Signal {
    match code {
        1 => Signal::Logs,
        2 => Signal::Metrics,
        _ => Signal::Traces,
    }
}

/// What `open` found in the directory.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Recovery {
    /// Intact records still to send, and their items.
    pub(crate) records: u64,
    pub(crate) items: u64,
    /// `items` by signal (see [`signal_of`]).
    pub(crate) items_by_signal: BySignal,
    /// Damaged records (bad checksum, torn tail, garbage between records).
    pub(crate) corrupt_records: u64,
    /// Items of damaged records whose header was intact (so the count is
    /// known); a damaged header's items cannot be known.
    pub(crate) corrupt_items: u64,
    /// `corrupt_items` by signal (see [`signal_of`]).
    pub(crate) corrupt_items_by_signal: BySignal,
    /// Bytes skipped as damaged.
    pub(crate) corrupt_bytes: u64,
}

/// What an `append` did besides writing the record.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Appended {
    /// Items of older pending records deleted to make room
    /// (`drop_oldest`).
    pub(crate) deleted: u64,
    /// `deleted` by signal (see [`signal_of`]).
    pub(crate) deleted_by_signal: BySignal,
    /// A segment was rotated away from unsynced: call [`Spool::sync`]
    /// soon, away from any thread that must not wait for the disk.
    pub(crate) sync_due: bool,
}

/// Names one record of the spool.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct RecordId {
    segment: u64,
    offset: u64,
}

/// A record taken out to be sent.
#[derive(Clone, Debug)]
pub(crate) struct Record {
    pub(crate) id: RecordId,
    pub(crate) signal: u8,
    pub(crate) compression: u8,
    pub(crate) items: u32,
    pub(crate) body: Bytes,
}

/// What `claim` found.
#[derive(Debug)]
pub(crate) enum Claimed {
    /// The oldest record neither completed nor claimed.
    Record(Record),
    /// Nothing to claim.
    Empty,
    /// The oldest record could not be read back (I/O error, or damaged on
    /// disk since `open`); it is gone, with its `items`. Claim again.
    Lost {
        /// The record's signal byte.
        signal: u8,
        items: u64,
    },
}

/// Why the spool could not do something.
#[derive(thiserror::Error)]
#[non_exhaustive]
pub enum SpoolError {
    /// Another engine (process) holds the directory's lock.
    #[error("spool directory {dir} is in use by another engine ({holder})")]
    Locked {
        /// The directory.
        dir: PathBuf,
        /// Who holds it, as its lock file says (`pid N`), if known.
        holder: String,
    },
    /// The spool is full and the policy refused the record.
    #[error("the spool is full ({max_bytes} bytes)")]
    Full {
        /// The configured bound.
        max_bytes: u64,
    },
    /// A file operation failed.
    #[error("spool {what} {path}: {source}")]
    Io {
        /// What was being done (`open`, `write`, …).
        what: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

debug_as_display!(SpoolError);

/// A closure building [`SpoolError::Io`] for `map_err`.
fn io_error<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> SpoolError + 'a {
    move |source| SpoolError::Io {
        what,
        path: path.to_path_buf(),
        source,
    }
}

/// The spool of one engine; all methods take `&self` and may be called
/// from any thread.
#[derive(Debug)]
pub(crate) struct Spool {
    state: Mutex<State>,
    /// Held for the whole of a `sync` (never with `state`'s lock waited
    /// for inside it the other way round): one sync at a time, so one
    /// that returns covered the rotations a concurrent one had taken.
    syncing: Mutex<()>,
    /// The locked `LOCK` file; the lock lasts as long as this handle (in
    /// this process: see [`InheritedLock`]). Behind a mutex only so that a
    /// forked child can take the file out and close it; nothing else locks
    /// it.
    lock_file: Arc<Mutex<Option<File>>>,
}

/// A weak handle on a spool's lock file, kept outside the spool, for a
/// forked child to close its copy of the descriptor.
///
/// The child inherits the parent's descriptors, and a `flock` lasts until
/// every descriptor of the locked open file is closed: without this, the
/// lock would outlive the parent's spool for as long as the child lives.
/// The child cannot drop the spool (it leaks the parent's exporter, which
/// holds it), nor reach it through the worker's mutex (a thread lost at
/// the fork may hold that), so it closes the file through this handle.
#[derive(Debug)]
pub(crate) struct InheritedLock(Weak<Mutex<Option<File>>>);

impl InheritedLock {
    /// In a forked child: closes this process's copy of the spool's lock
    /// file, if the spool was still open at the fork (a spool closed
    /// before it left nothing to close). The parent's lock is untouched,
    /// and ends when the parent closes its spool.
    ///
    /// A fork at the very moment the parent drops its spool's last handle
    /// (an engine shutting down on another thread) can find the handle
    /// gone but the file not yet closed; the child then keeps its copy.
    pub(crate) fn close_in_child(&self) {
        let Some(lock_file) = self.0.upgrade() else {
            return;
        };
        // Never held by another thread: only this function locks it, and
        // only in a forked child, which has one thread.
        let file = lock_file
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        drop(file);
    }
}

/// Everything the mutex guards.
#[derive(Debug)]
struct State {
    dir: PathBuf,
    max_bytes: u64,
    drop_oldest: bool,
    segment_target_bytes: u64,
    /// Segments by sequence number; the active one included.
    segments: BTreeMap<u64, Segment>,
    /// The segment appended to (always the highest number).
    active: u64,
    /// Sum of `Segment::bytes`.
    disk_bytes: u64,
    /// Records (and their items) Pending or Claimed, all segments.
    live_records: u64,
    live_items: u64,
    /// Segments created so far, and how many of those creations the last
    /// directory fsync covered.
    dir_changes: u64,
    dir_synced: u64,
    /// The active segment's tail may hold a torn record (a failed append
    /// could not be cut back): append to a new segment.
    rotate_next: bool,
    /// Segments rotated away from and not yet synced (their files stay
    /// open here until `sync`, deleted or not).
    unsynced: Vec<(Arc<File>, PathBuf)>,
    /// Segment files dropped from the index, to delete once the lock is
    /// released (an unlink can wait on the file system's journal).
    doomed: Vec<PathBuf>,
}

/// One segment file and the index of its records.
#[derive(Debug)]
struct Segment {
    path: PathBuf,
    /// Opened lazily for recovered segments; shared with claim's reads.
    file: Option<Arc<File>>,
    /// Length of the file.
    bytes: u64,
    /// The pending records found or appended, by offset; Done ones stay
    /// (as tombstones) until the segment is deleted.
    entries: Vec<Entry>,
    /// How many entries are Pending, and Claimed.
    pending: usize,
    claimed: usize,
    /// Items of the Pending and Claimed entries.
    live_items: u64,
    /// No entry before this index is Pending (claim starts here).
    next_pending: usize,
}

#[derive(Clone, Copy, Debug)]
struct Entry {
    offset: u64,
    /// Header plus body.
    bytes: u64,
    items: u32,
    signal: u8,
    state: EntryState,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum EntryState {
    Pending,
    Claimed,
    Done,
}

impl Segment {
    fn new(path: PathBuf, file: Option<Arc<File>>, bytes: u64) -> Self {
        Self {
            path,
            file,
            bytes,
            entries: Vec::new(),
            pending: 0,
            claimed: 0,
            live_items: 0,
            next_pending: 0,
        }
    }

    fn live(&self) -> usize {
        self.pending + self.claimed
    }

    /// The file, opened (read and write) if it is not yet.
    fn file(&mut self) -> Result<Arc<File>, SpoolError> {
        if let Some(file) = &self.file {
            return Ok(Arc::clone(file));
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&self.path)
            .map_err(io_error("open", &self.path))?;
        let file = Arc::new(file);
        self.file = Some(Arc::clone(&file));
        Ok(file)
    }

    /// The index of the entry at `offset`.
    fn find(&self, offset: u64) -> Option<usize> {
        self.entries
            .binary_search_by_key(&offset, |e| e.offset)
            .ok()
    }

    /// Moves entry `idx` to `to` (Done is final); returns its items if it
    /// thereby stopped being live.
    fn set_state(&mut self, idx: usize, to: EntryState) -> Option<u32> {
        let entry = self.entries.get_mut(idx)?;
        if entry.state == to || entry.state == EntryState::Done {
            return None;
        }
        match entry.state {
            EntryState::Pending => self.pending -= 1,
            EntryState::Claimed => self.claimed -= 1,
            EntryState::Done => {}
        }
        entry.state = to;
        match to {
            EntryState::Pending => {
                self.pending += 1;
                self.next_pending = self.next_pending.min(idx);
                None
            }
            EntryState::Claimed => {
                self.claimed += 1;
                None
            }
            EntryState::Done => {
                self.live_items -= u64::from(entry.items);
                Some(entry.items)
            }
        }
    }
}

impl Spool {
    /// Locks `settings.dir` (creating it), reads what earlier engines left
    /// in it, and opens a new segment to append to.
    pub(crate) fn open(settings: &SpoolSettings) -> Result<(Self, Recovery), SpoolError> {
        let dir = settings.dir.clone();
        fs::create_dir_all(&dir).map_err(io_error("create", &dir))?;
        let lock = lock_dir(&dir)?;

        let mut recovery = Recovery::default();
        let Listing {
            segments: found,
            highest,
        } = list_segments(&dir)?;
        let mut segments = BTreeMap::new();
        for (seq, path) in found {
            if let Some(segment) = recover_segment(path, &mut recovery)? {
                segments.insert(seq, segment);
            }
        }
        let active = match highest {
            None => 1,
            Some(seq) => seq.checked_add(1).ok_or_else(|| SpoolError::Io {
                what: "number a segment in",
                path: dir.clone(),
                source: io::Error::other("segment numbers exhausted"),
            })?,
        };
        let active_segment = create_segment(&dir, active)?;
        segments.insert(active, active_segment);

        let disk_bytes = segments.values().map(|s| s.bytes).sum();
        let state = State {
            segment_target_bytes: (settings.max_bytes / 8)
                .clamp(MIN_SEGMENT_BYTES, MAX_SEGMENT_BYTES),
            dir,
            max_bytes: settings.max_bytes,
            drop_oldest: settings.drop_oldest,
            segments,
            active,
            disk_bytes,
            live_records: recovery.records,
            live_items: recovery.items,
            dir_changes: 1,
            dir_synced: 0,
            rotate_next: false,
            unsynced: Vec::new(),
            doomed: Vec::new(),
        };
        let spool = Self {
            state: Mutex::new(state),
            syncing: Mutex::new(()),
            lock_file: Arc::new(Mutex::new(Some(lock))),
        };
        Ok((spool, recovery))
    }

    /// A handle on the lock file for a forked child to close its copy of
    /// it; see [`InheritedLock`].
    pub(crate) fn inherited_lock(&self) -> InheritedLock {
        InheritedLock(Arc::downgrade(&self.lock_file))
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Releases the lock, then deletes the segment files dropped under it.
    fn unlock(state: MutexGuard<'_, State>) {
        let mut state = state;
        let doomed = std::mem::take(&mut state.doomed);
        drop(state);
        for path in doomed {
            // One that cannot be deleted is found again by the next `open`
            // (see `remove_segment`).
            let _ = fs::remove_file(path);
        }
    }

    /// Appends one record (without syncing it; see [`Appended`]).
    pub(crate) fn append(
        &self,
        signal: u8,
        compression: u8,
        items: u32,
        body: &[u8],
    ) -> Result<Appended, SpoolError> {
        let mut state = self.lock();
        let full = SpoolError::Full {
            max_bytes: state.max_bytes,
        };
        let Some(body_len) = u32::try_from(body.len())
            .ok()
            .filter(|&n| n <= segment::MAX_BODY_BYTES)
        else {
            return Err(full);
        };
        let header = RecordHeader::new(signal, compression, items, body_len, body);
        let Some(rotate) = state.plan(header.record_bytes()) else {
            return Err(full);
        };
        if rotate {
            state.rotate()?;
        }
        state.write_record(&header, body)?;
        let sync_due = rotate && !state.unsynced.is_empty();
        let mut dropped = BySignal::default();
        if state.drop_oldest {
            while state.disk_bytes > state.max_bytes {
                let active = state.active;
                let Some(oldest) = state
                    .segments
                    .iter()
                    .find(|&(&seq, s)| seq != active && s.claimed == 0)
                    .map(|(&seq, _)| seq)
                else {
                    break; // `plan` saw to it that this is not reached
                };
                let removed = state.remove_segment(oldest);
                for (d, r) in dropped.iter_mut().zip(removed) {
                    *d += r;
                }
            }
        }
        Self::unlock(state);
        Ok(Appended {
            deleted: dropped.iter().sum(),
            deleted_by_signal: dropped,
            sync_due,
        })
    }

    /// Takes the oldest record neither completed nor claimed.
    pub(crate) fn claim(&self) -> Claimed {
        let (id, entry, file) = {
            let mut state = self.lock();
            let Some((seq, idx)) = state.first_pending() else {
                return Claimed::Empty;
            };
            let Some(segment) = state.segments.get_mut(&seq) else {
                return Claimed::Empty; // `first_pending` found it there
            };
            let Some(&entry) = segment.entries.get(idx) else {
                return Claimed::Empty; // `first_pending` found it there
            };
            let id = RecordId {
                segment: seq,
                offset: entry.offset,
            };
            match segment.file() {
                Ok(file) => {
                    segment.set_state(idx, EntryState::Claimed);
                    (id, entry, file)
                }
                Err(_) => {
                    state.finish(id);
                    Self::unlock(state);
                    return Claimed::Lost {
                        signal: entry.signal,
                        items: u64::from(entry.items),
                    };
                }
            }
        };
        // Read without the lock: the segment cannot be deleted while this
        // record is Claimed.
        match segment::read_record(&file, entry.offset, entry.bytes) {
            Ok((header, body)) => Claimed::Record(Record {
                id,
                signal: header.signal,
                compression: header.compression,
                items: header.items,
                body,
            }),
            Err(_) => {
                let mut state = self.lock();
                // Best effort: a later `open` skips it instead of counting
                // it as damaged again.
                let _ = file.write_all_at(
                    &[segment::STATE_COMPLETED],
                    entry.offset + segment::STATE_OFFSET,
                );
                state.finish(id);
                Self::unlock(state);
                Claimed::Lost {
                    signal: entry.signal,
                    items: u64::from(entry.items),
                }
            }
        }
    }

    /// Gives a claimed record back (not delivered; to be claimed again,
    /// oldest first).
    pub(crate) fn release(&self, id: RecordId) {
        let mut state = self.lock();
        if let Some(segment) = state.segments.get_mut(&id.segment)
            && let Some(idx) = segment.find(id.offset)
            && segment.entries[idx].state == EntryState::Claimed
        {
            segment.set_state(idx, EntryState::Pending);
        }
    }

    /// A claimed record is finished with (delivered, or dropped for good):
    /// marked so on disk; its segment deleted once all its records are.
    ///
    /// # Errors
    ///
    /// `Io` when the state byte could not be written; the record is
    /// finished with in memory all the same (it may be sent again after a
    /// restart).
    pub(crate) fn complete(&self, id: RecordId) -> Result<(), SpoolError> {
        let mut state = self.lock();
        let Some(segment) = state.segments.get_mut(&id.segment) else {
            return Ok(());
        };
        let Some(idx) = segment.find(id.offset) else {
            return Ok(());
        };
        if segment.entries[idx].state == EntryState::Done {
            return Ok(());
        }
        let written = segment.file().and_then(|file| {
            file.write_all_at(
                &[segment::STATE_COMPLETED],
                id.offset + segment::STATE_OFFSET,
            )
            .map_err(io_error("complete a record in", &segment.path))
        });
        state.finish(id);
        Self::unlock(state);
        written
    }

    /// Records and items not completed (claimed ones included).
    #[cfg(test)]
    pub(crate) fn pending(&self) -> (u64, u64) {
        let state = self.lock();
        (state.live_records, state.live_items)
    }

    /// Bytes of all segment files.
    pub(crate) fn disk_bytes(&self) -> u64 {
        self.lock().disk_bytes
    }

    /// Flushes appended records to the disk (fsync): the segments rotated
    /// away from since the last sync, the active one, and the directory.
    /// May take long (a full segment's writeback); appends, claims and
    /// completions go on meanwhile.
    ///
    /// # Errors
    ///
    /// `Io` for the first file that could not be synced (the others are
    /// synced all the same).
    pub(crate) fn sync(&self) -> Result<(), SpoolError> {
        let _one_at_a_time = self.syncing.lock().unwrap_or_else(PoisonError::into_inner);
        let (mut files, dir) = {
            let mut state = self.lock();
            let dir = (state.dir_changes != state.dir_synced)
                .then(|| (state.dir.clone(), state.dir_changes));
            let mut files = std::mem::take(&mut state.unsynced);
            let active = state.active;
            if let Some(segment) = state.segments.get_mut(&active) {
                files.push((segment.file()?, segment.path.clone()));
            }
            (files, dir)
        };
        // fsync without the state lock: appends go on meanwhile.
        let mut result = Ok(());
        for (file, path) in files.drain(..) {
            if let Err(e) = file.sync_data() {
                result = result.and(Err(io_error("sync", &path)(e)));
            }
        }
        if let Some((dir, changes)) = dir {
            match File::open(&dir).and_then(|d| d.sync_all()) {
                Ok(()) => {
                    let mut state = self.lock();
                    state.dir_synced = state.dir_synced.max(changes);
                }
                Err(e) => result = result.and(Err(io_error("sync", &dir)(e))),
            }
        }
        result
    }
}

impl Drop for Spool {
    /// Deletes what a failed `append` doomed and left (the next call would
    /// have).
    fn drop(&mut self) {
        Self::unlock(self.lock());
    }
}

impl State {
    /// Whether a record of `bytes` fits, and if so whether the active
    /// segment must be rotated first. With `drop_oldest`, a record fits if
    /// deleting every segment that may be deleted (not the active one, no
    /// Claimed record) makes room; if the active segment would not be
    /// rotated anyway, rotating it so that it can be deleted too is tried
    /// last (it matters when `max_bytes` is a few segments or less).
    fn plan(&self, bytes: u64) -> Option<bool> {
        let active = self.segments.get(&self.active)?;
        let natural = self.rotate_next
            || (!active.entries.is_empty()
                && active.bytes.saturating_add(bytes) > self.segment_target_bytes);
        let others: u64 = self
            .segments
            .iter()
            .filter(|&(&seq, s)| seq != self.active && s.claimed == 0)
            .map(|(_, s)| s.bytes)
            .sum();
        let after = |rotate: bool, drop: bool| {
            let mut after = self.disk_bytes.saturating_add(bytes);
            if rotate {
                after = after.saturating_add(FILE_HEADER_BYTES);
                if active.live() == 0 || (drop && active.claimed == 0) {
                    after = after.saturating_sub(active.bytes);
                }
            }
            if drop {
                after = after.saturating_sub(others);
            }
            after
        };
        if after(natural, false) <= self.max_bytes {
            Some(natural)
        } else if !self.drop_oldest {
            None
        } else if after(natural, true) <= self.max_bytes {
            Some(natural)
        } else if !natural && after(true, true) <= self.max_bytes {
            Some(true)
        } else {
            None
        }
    }

    /// Starts a new active segment; deletes the old one if nothing in it
    /// is live, or else keeps it to be synced by the next `sync`.
    fn rotate(&mut self) -> Result<(), SpoolError> {
        let old = self.active;
        let seq = old.checked_add(1).ok_or_else(|| SpoolError::Io {
            what: "number a segment in",
            path: self.dir.clone(),
            source: io::Error::other("segment numbers exhausted"),
        })?;
        let segment = create_segment(&self.dir, seq)?;
        self.disk_bytes += segment.bytes;
        self.segments.insert(seq, segment);
        self.active = seq;
        self.dir_changes += 1;
        self.rotate_next = false;
        if let Some(segment) = self.segments.get_mut(&old) {
            if segment.live() == 0 {
                self.remove_segment(old);
            } else if let Some(file) = segment.file.take() {
                // Reopened if claimed from; synced by the next `sync`.
                self.unsynced.push((file, segment.path.clone()));
            }
        }
        Ok(())
    }

    /// Appends header and body to the active segment in one write.
    fn write_record(&mut self, header: &RecordHeader, body: &[u8]) -> Result<(), SpoolError> {
        let bytes = header.record_bytes();
        let Some(segment) = self.segments.get_mut(&self.active) else {
            return Ok(()); // the active segment is always in the index
        };
        let file = segment.file()?;
        let offset = segment.bytes;
        let mut buf = Vec::with_capacity(RECORD_HEADER_BYTES + body.len());
        buf.extend_from_slice(&header.encode());
        buf.extend_from_slice(body);
        if let Err(source) = file.write_all_at(&buf, offset) {
            if file.set_len(offset).is_err() {
                // Part of the record may remain: count it, and append no
                // more after it.
                segment.bytes += bytes;
                self.disk_bytes += bytes;
                self.rotate_next = true;
            }
            return Err(SpoolError::Io {
                what: "write",
                path: segment.path.clone(),
                source,
            });
        }
        segment.entries.push(Entry {
            offset,
            bytes,
            items: header.items,
            signal: header.signal,
            state: EntryState::Pending,
        });
        segment.pending += 1;
        segment.live_items += u64::from(header.items);
        segment.bytes += bytes;
        self.disk_bytes += bytes;
        self.live_records += 1;
        self.live_items += u64::from(header.items);
        Ok(())
    }

    /// The oldest Pending record, as (segment, index).
    fn first_pending(&mut self) -> Option<(u64, usize)> {
        for (&seq, segment) in &mut self.segments {
            if segment.pending == 0 {
                continue;
            }
            while let Some(entry) = segment.entries.get(segment.next_pending) {
                if entry.state == EntryState::Pending {
                    return Some((seq, segment.next_pending));
                }
                segment.next_pending += 1;
            }
        }
        None
    }

    /// Marks record `id` Done; deletes its segment if that leaves nothing
    /// live in it and it is not the active one.
    fn finish(&mut self, id: RecordId) {
        let Some(segment) = self.segments.get_mut(&id.segment) else {
            return;
        };
        let Some(idx) = segment.find(id.offset) else {
            return;
        };
        if let Some(items) = segment.set_state(idx, EntryState::Done) {
            self.live_records -= 1;
            self.live_items -= u64::from(items);
        }
        if segment.live() == 0 && id.segment != self.active {
            self.remove_segment(id.segment);
        }
    }

    /// Drops segment `seq` from the index, its file to be deleted when the
    /// lock is released ([`Spool::unlock`]); returns the items of its live
    /// records, which are thereby lost.
    ///
    /// A file that cannot be deleted is forgotten all the same: the next
    /// `open` finds it again (completed records stay skipped; records
    /// dropped for room come back, to be sent late rather than never).
    fn remove_segment(&mut self, seq: u64) -> BySignal {
        let mut removed = BySignal::default();
        let Some(segment) = self.segments.remove(&seq) else {
            return removed;
        };
        self.disk_bytes -= segment.bytes;
        self.live_records -= segment.live() as u64;
        self.live_items -= segment.live_items;
        for entry in segment
            .entries
            .iter()
            .filter(|e| e.state != EntryState::Done)
        {
            removed[signal_of(entry.signal).index()] += u64::from(entry.items);
        }
        debug_assert_eq!(removed.iter().sum::<u64>(), segment.live_items);
        self.doomed.push(segment.path);
        removed
    }
}

/// Creates (or opens) `dir/LOCK`, locks it exclusively without waiting,
/// and writes `pid N` into it.
fn lock_dir(dir: &Path) -> Result<File, SpoolError> {
    let path = dir.join(LOCK_FILE);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false) // the holder's pid is read before locking
        .open(&path)
        .map_err(io_error("open", &path))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            let mut holder = Vec::new();
            let _ = (&file).take(HOLDER_MAX_BYTES).read_to_end(&mut holder);
            let holder = String::from_utf8_lossy(&holder).trim().to_owned();
            return Err(SpoolError::Locked {
                dir: dir.to_path_buf(),
                holder: if holder.is_empty() {
                    "holder unknown".to_owned()
                } else {
                    holder
                },
            });
        }
        Err(TryLockError::Error(source)) => {
            return Err(SpoolError::Io {
                what: "lock",
                path,
                source,
            });
        }
    }
    let pid = format!("pid {}\n", std::process::id());
    file.set_len(0)
        .and_then(|()| file.write_all_at(pid.as_bytes(), 0))
        .map_err(io_error("write", &path))?;
    Ok(file)
}

/// The segments of a directory.
struct Listing {
    /// Segment numbers and paths, oldest first.
    segments: Vec<(u64, PathBuf)>,
    /// The highest segment number seen, set-aside `.corrupt` ones included
    /// (so that no new segment takes their name).
    highest: Option<u64>,
}

/// The segments in `dir`.
fn list_segments(dir: &Path) -> Result<Listing, SpoolError> {
    let mut found = Vec::new();
    let mut highest = None;
    for entry in fs::read_dir(dir).map_err(io_error("list", dir))? {
        let entry = entry.map_err(io_error("list", dir))?;
        let name = entry.file_name();
        let Some((seq, corrupt)) = name.to_str().and_then(segment::parse_segment_name) else {
            continue;
        };
        highest = highest.max(Some(seq));
        let is_file = entry.file_type().is_ok_and(|t| t.is_file());
        if !corrupt && is_file {
            found.push((seq, entry.path()));
        }
    }
    found.sort_unstable_by_key(|&(seq, _)| seq);
    Ok(Listing {
        segments: found,
        highest,
    })
}

/// Scans one segment left by an earlier engine, adding what it finds to
/// `recovery`; the segment if it still holds something to send (otherwise
/// its file is deleted, or renamed aside if its file header is damaged).
fn recover_segment(path: PathBuf, recovery: &mut Recovery) -> Result<Option<Segment>, SpoolError> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .map_err(io_error("open", &path))?;
    let len = file.metadata().map_err(io_error("open", &path))?.len();
    if len < FILE_HEADER_BYTES {
        // Empty: its creation was interrupted before the header was
        // written. Shorter than a header: damaged, with nothing to keep.
        if len > 0 {
            recovery.corrupt_records += 1;
            recovery.corrupt_bytes += len;
        }
        let _ = fs::remove_file(&path);
        return Ok(None);
    }
    let mut head = [0u8; FILE_HEADER_BYTES as usize];
    if file.read_exact_at(&mut head, 0).is_err() || !segment::file_header_ok(&head) {
        recovery.corrupt_records += 1;
        recovery.corrupt_bytes += len;
        let mut aside = path.clone().into_os_string();
        aside.push(segment::CORRUPT_SUFFIX);
        let _ = fs::rename(&path, aside);
        return Ok(None);
    }
    let scan = segment::scan(&file, len);
    recovery.corrupt_records += scan.corrupt_records;
    recovery.corrupt_items += scan.corrupt_items.iter().sum::<u64>();
    for (r, c) in recovery
        .corrupt_items_by_signal
        .iter_mut()
        .zip(scan.corrupt_items)
    {
        *r += c;
    }
    recovery.corrupt_bytes += scan.corrupt_bytes;
    if scan.pending.is_empty() {
        let _ = fs::remove_file(&path);
        return Ok(None);
    }
    let mut segment = Segment::new(path, None, len);
    for found in scan.pending {
        segment.entries.push(Entry {
            offset: found.offset,
            bytes: found.bytes,
            items: found.items,
            signal: found.signal,
            state: EntryState::Pending,
        });
        segment.live_items += u64::from(found.items);
        recovery.items_by_signal[signal_of(found.signal).index()] += u64::from(found.items);
    }
    segment.pending = segment.entries.len();
    recovery.records += segment.pending as u64;
    recovery.items += segment.live_items;
    Ok(Some(segment))
}

/// Creates segment `seq` in `dir` with its file header.
fn create_segment(dir: &Path, seq: u64) -> Result<Segment, SpoolError> {
    let path = dir.join(segment::segment_name(seq));
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&path)
        .map_err(io_error("create", &path))?;
    if let Err(source) = file.write_all_at(&segment::file_header(), 0) {
        let _ = fs::remove_file(&path);
        return Err(SpoolError::Io {
            what: "write",
            path,
            source,
        });
    }
    Ok(Segment::new(path, Some(Arc::new(file)), FILE_HEADER_BYTES))
}

#[cfg(test)]
mod tests;
