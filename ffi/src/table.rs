//! A table of values addressed by generation-checked handles: how an open
//! span lives between C calls without a pointer that could dangle.
//!
//! A handle is a `u64`: the slot index in the high 24 bits, the slot's
//! generation in the low 40. Slots live in chunks of [`CHUNK_SLOTS`] that
//! are allocated on demand and never freed, so *any* `u64` a caller passes
//! — stale, freed twice, zero, garbage — is resolved safely: an index past
//! the allocated chunks or a generation that does not match is refused.
//!
//! # Slot states
//!
//! Each slot has one atomic `state` word, `generation << 2 | tag`:
//!
//! * `FREE` — holds nothing; `insert` may claim it.
//! * `OPEN` — holds a value; a handle with this generation names it.
//! * `BUSY` — one thread has it (claimed for `insert`, or locked by `with`
//!   or `remove`); it alone touches the value.
//!
//! Transitions: `FREE → BUSY → OPEN` (insert), `OPEN → BUSY → OPEN` (use),
//! `OPEN → BUSY → FREE` with the generation incremented (remove). Every
//! `→ BUSY` is a CAS with Acquire, every release a store with Release: the
//! pair orders the previous holder's writes to the value before the next
//! holder's reads. Nobody waits: a slot found `BUSY` by `with`/`remove`
//! means two threads use one handle at once, and is reported as such.
//!
//! # Finding a free slot
//!
//! Each thread starts at a slot hint of its own (the slot it last freed,
//! or a spread-out start) and tries at most [`SCAN_SLOTS`] slots; if all
//! are taken it allocates the next chunk (and, at the size limit, searches
//! every slot before reporting the table full). So a thread that begins and ends
//! spans reuses the same warm slot, threads rarely contend on a line, and
//! a full table grows instead of being searched end to end.
#![allow(unsafe_code)]

use std::cell::{Cell, UnsafeCell};
use std::sync::atomic::{AtomicPtr, AtomicU64, AtomicUsize, Ordering};

/// Slots per chunk.
pub(crate) const CHUNK_SLOTS: usize = 256;
/// Chunks at most: 1,048,576 slots, the 24 bits of a handle's index
/// (at ~200 bytes a span slot, 200 MiB if ever all allocated).
///
/// Under miri, 16: miri's borrow checker retags a `&Table` by walking
/// every `UnsafeCell` in it, so each method call would visit all 65,536
/// chunk pointers (seconds per call). Indices past the limit resolve as
/// stale either way, so the protocol under test is the same.
pub(crate) const MAX_CHUNKS: usize = if cfg!(miri) {
    16
} else {
    (1 << 24) / CHUNK_SLOTS
};
/// Slots a thread tries before it allocates a chunk.
const SCAN_SLOTS: usize = 64;

const FREE: u64 = 0;
const OPEN: u64 = 1;
const BUSY: u64 = 2;
const TAG_MASK: u64 = 3;
const GEN_BITS: u32 = 40;
const GEN_MASK: u64 = (1 << GEN_BITS) - 1;

/// Why a handle was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HandleError {
    /// No such slot, or not this generation: ended, freed, or never made.
    Stale,
    /// Another thread holds the slot right now.
    Busy,
    /// Every slot is taken and the table cannot grow.
    Full,
}

struct Slot<T> {
    state: AtomicU64,
    value: UnsafeCell<Option<T>>,
}

/// The table. `const`-constructible, so the span table is a `static`.
pub struct Table<T> {
    chunks: [AtomicPtr<Slot<T>>; MAX_CHUNKS],
    /// Chunks allocated so far (a prefix of `chunks`); only grows.
    len: AtomicUsize,
    /// Cap on `len`, below `MAX_CHUNKS` in tests.
    max_chunks: usize,
}

// SAFETY: a value is only touched by the one thread that moved its slot to
// BUSY (see the module docs), so sharing the table shares no `T` between
// threads at once; values move between threads, hence `T: Send`.
unsafe impl<T: Send> Sync for Table<T> {}

thread_local! {
    static HINT: Cell<usize> = const { Cell::new(usize::MAX) };
}

/// Spreads threads' first hints a chunk's worth of lines apart.
static NEXT_START: AtomicUsize = AtomicUsize::new(0);

fn handle_of(index: usize, generation: u64) -> u64 {
    ((index as u64) << GEN_BITS) | (generation & GEN_MASK)
}

fn generation_of(state: u64) -> u64 {
    state >> 2
}

impl<T> Table<T> {
    /// An empty table of at most `max_chunks` chunks.
    pub const fn new(max_chunks: usize) -> Self {
        assert!(max_chunks <= MAX_CHUNKS);
        Self {
            chunks: [const { AtomicPtr::new(std::ptr::null_mut()) }; MAX_CHUNKS],
            len: AtomicUsize::new(0),
            max_chunks,
        }
    }

    fn slot(&self, index: usize) -> Option<&Slot<T>> {
        let chunk = index / CHUNK_SLOTS;
        if chunk >= MAX_CHUNKS {
            return None;
        }
        // Acquire: pairs with the Release CAS in `grow`, so the chunk's
        // initialised slots are visible.
        let base = self.chunks[chunk].load(Ordering::Acquire);
        if base.is_null() {
            return None;
        }
        // SAFETY: a non-NULL chunk pointer is a leaked allocation of
        // `CHUNK_SLOTS` initialised slots that is never freed, and the
        // offset is below `CHUNK_SLOTS`.
        Some(unsafe { &*base.add(index % CHUNK_SLOTS) })
    }

    /// Stores `value` in a free slot and returns its handle (never 0).
    ///
    /// # Errors
    ///
    /// [`HandleError::Full`] when every slot is taken and the table is at
    /// its size limit; `value` is handed back.
    pub fn insert(&self, value: T) -> Result<u64, (HandleError, T)> {
        let hint = HINT.try_with(Cell::get).unwrap_or(usize::MAX);
        let hint = if hint == usize::MAX {
            // Relaxed: only spreads start points; any value is correct.
            NEXT_START.fetch_add(CHUNK_SLOTS / 4 + 1, Ordering::Relaxed)
        } else {
            hint
        };
        // Acquire: pairs with the Release `fetch_max` in `grow`.
        let slots = self.len.load(Ordering::Acquire) * CHUNK_SLOTS;
        if slots > 0 {
            for i in 0..SCAN_SLOTS.min(slots) {
                let index = (hint + i) % slots;
                if let Some(state) = self.claim(index) {
                    return Ok(self.fill(index, state, value));
                }
            }
        }
        match self.grow() {
            Some(index) => {
                let state = self.claim(index);
                match state {
                    Some(state) => Ok(self.fill(index, state, value)),
                    // Another thread took the new chunk's first slot: scan
                    // again from it.
                    None => self.insert_from(index, value),
                }
            }
            // At the size limit: search every slot before saying full,
            // counted again (other threads may have grown the table to its
            // limit since `slots` was read: with `slots` 0, this found
            // nothing in a table with free slots).
            None => {
                // Acquire: as above.
                let slots = self.len.load(Ordering::Acquire) * CHUNK_SLOTS;
                match (0..slots)
                    .map(|i| (hint + i) % slots)
                    .find_map(|index| self.claim(index).map(|state| (index, state)))
                {
                    Some((index, state)) => Ok(self.fill(index, state, value)),
                    None => Err((HandleError::Full, value)),
                }
            }
        }
    }

    /// `insert`, scanning from `index` (after losing a race for a new
    /// chunk's first slot).
    fn insert_from(&self, index: usize, value: T) -> Result<u64, (HandleError, T)> {
        let _ = HINT.try_with(|h| h.set(index + 1));
        self.insert(value)
    }

    /// Moves slot `index` from FREE to BUSY; returns the state it had.
    fn claim(&self, index: usize) -> Option<u64> {
        let slot = self.slot(index)?;
        // Relaxed: a peek; the CAS below decides.
        let state = slot.state.load(Ordering::Relaxed);
        if state & TAG_MASK != FREE {
            return None;
        }
        // Acquire: pairs with the Release store that freed the slot, so
        // the last holder's writes (the value taken out) happened before.
        slot.state
            .compare_exchange(state, state | BUSY, Ordering::Acquire, Ordering::Relaxed)
            .ok()
    }

    /// Puts `value` in claimed slot `index` and opens it.
    fn fill(&self, index: usize, state: u64, value: T) -> u64 {
        let slot = self.slot(index).expect("claimed slots exist");
        // SAFETY: this thread moved the slot to BUSY, so it alone touches
        // the value (module docs).
        unsafe { *slot.value.get() = Some(value) };
        let _ = HINT.try_with(|h| h.set(index));
        // Release: pairs with the Acquire CAS of the next `with`/`remove`.
        slot.state
            .store((state & !TAG_MASK) | OPEN, Ordering::Release);
        handle_of(index, generation_of(state))
    }

    /// Allocates the next chunk; returns its first slot's index.
    fn grow(&self) -> Option<usize> {
        loop {
            // Acquire: as in `insert`.
            let n = self.len.load(Ordering::Acquire);
            if n >= self.max_chunks {
                return None;
            }
            let fresh: Box<[Slot<T>]> = (0..CHUNK_SLOTS)
                .map(|_| Slot {
                    // Generation 1: no handle is ever 0.
                    state: AtomicU64::new(1 << 2 | FREE),
                    value: UnsafeCell::new(None),
                })
                .collect();
            let fresh = Box::into_raw(fresh).cast::<Slot<T>>();
            // Release: publishes the initialised slots to the Acquire loads
            // in `slot`. Acquire on failure: we then read the winner's.
            match self.chunks[n].compare_exchange(
                std::ptr::null_mut(),
                fresh,
                Ordering::Release,
                Ordering::Acquire,
            ) {
                Ok(_) => {
                    // Release: pairs with the Acquire loads of `len`.
                    self.len.fetch_max(n + 1, Ordering::Release);
                    return Some(n * CHUNK_SLOTS);
                }
                Err(_) => {
                    // SAFETY: `fresh` came from `Box::into_raw` of a boxed
                    // slice of `CHUNK_SLOTS` slots just above and was never
                    // shared (the CAS failed).
                    drop(unsafe {
                        Box::from_raw(std::ptr::slice_from_raw_parts_mut(fresh, CHUNK_SLOTS))
                    });
                    // Someone else grew it: make `len` cover it and retry.
                    // Release: as above.
                    self.len.fetch_max(n + 1, Ordering::Release);
                }
            }
        }
    }

    /// Locks the slot `handle` names: OPEN with its generation → BUSY.
    fn lock(&self, handle: u64) -> Result<(&Slot<T>, u64), HandleError> {
        let index = (handle >> GEN_BITS) as usize;
        let slot = self.slot(index).ok_or(HandleError::Stale)?;
        // Relaxed: a peek; the CAS below decides.
        let state = slot.state.load(Ordering::Relaxed);
        if generation_of(state) & GEN_MASK != handle & GEN_MASK {
            return Err(HandleError::Stale);
        }
        match state & TAG_MASK {
            OPEN => {}
            BUSY => return Err(HandleError::Busy),
            _ => return Err(HandleError::Stale),
        }
        // Acquire: pairs with the Release store of the previous holder.
        match slot.state.compare_exchange(
            state,
            (state & !TAG_MASK) | BUSY,
            Ordering::Acquire,
            Ordering::Relaxed,
        ) {
            Ok(_) => Ok((slot, state)),
            Err(now) if generation_of(now) == generation_of(state) => Err(HandleError::Busy),
            Err(_) => Err(HandleError::Stale),
        }
    }

    /// Runs `f` on the value `handle` names.
    ///
    /// # Errors
    ///
    /// [`HandleError::Stale`] for a handle that names nothing now;
    /// [`HandleError::Busy`] when another thread holds it.
    pub fn with<R>(&self, handle: u64, f: impl FnOnce(&mut T) -> R) -> Result<R, HandleError> {
        let (slot, state) = self.lock(handle)?;
        /// Re-opens the slot even if `f` panics.
        struct Unlock<'s>(&'s AtomicU64, u64);
        impl Drop for Unlock<'_> {
            fn drop(&mut self) {
                // Release: pairs with the Acquire CAS of the next holder.
                self.0.store(self.1, Ordering::Release);
            }
        }
        let _unlock = Unlock(&slot.state, state);
        // SAFETY: this thread moved the slot to BUSY, so it alone touches
        // the value; an OPEN slot always holds one.
        let value = unsafe { (*slot.value.get()).as_mut() }.expect("an open slot holds a value");
        Ok(f(value))
    }

    /// Takes the value `handle` names out, and frees the slot: the handle
    /// (and any copy of it) is stale from now on.
    ///
    /// # Errors
    ///
    /// As [`with`](Self::with).
    pub fn remove(&self, handle: u64) -> Result<T, HandleError> {
        let (slot, state) = self.lock(handle)?;
        // SAFETY: this thread moved the slot to BUSY (see `with`).
        let value = unsafe { (*slot.value.get()).take() };
        self.release(handle, slot, state);
        Ok(value.expect("an open slot holds a value"))
    }

    /// Runs `f` on the value `handle` names, then frees the slot: `f` runs
    /// while no other thread can reach the value (the span end records
    /// while its tracer is known alive).
    ///
    /// # Errors
    ///
    /// As [`with`](Self::with).
    pub fn remove_with<R>(&self, handle: u64, f: impl FnOnce(T) -> R) -> Result<R, HandleError> {
        let (slot, state) = self.lock(handle)?;
        /// Frees the slot even if `f` panics.
        struct Free<'t, T>(&'t Table<T>, u64, &'t Slot<T>, u64);
        impl<T> Drop for Free<'_, T> {
            fn drop(&mut self) {
                self.0.release(self.1, self.2, self.3);
            }
        }
        let _free = Free(self, handle, slot, state);
        // SAFETY: this thread moved the slot to BUSY (see `with`).
        let value = unsafe { (*slot.value.get()).take() }.expect("an open slot holds a value");
        Ok(f(value))
    }

    /// BUSY → FREE with the next generation (skipping 0).
    fn release(&self, handle: u64, slot: &Slot<T>, state: u64) {
        let mut generation = (generation_of(state) + 1) & GEN_MASK;
        if generation == 0 {
            generation = 1;
        }
        let _ = HINT.try_with(|h| h.set((handle >> GEN_BITS) as usize));
        // Release: pairs with the Acquire CAS in `claim`.
        slot.state.store(generation << 2 | FREE, Ordering::Release);
    }

    /// Removes every value for which `doomed` says yes, waiting (yielding)
    /// for slots another thread holds, up to `patience` each; returns the
    /// values removed and how many slots stayed BUSY past the patience.
    /// For freeing an engine: its open spans must go before its tracers.
    pub fn drain_where(
        &self,
        mut doomed: impl FnMut(&T) -> bool,
        patience: std::time::Duration,
    ) -> (Vec<T>, usize) {
        let mut out = Vec::new();
        let mut stuck = 0;
        // Acquire: as in `insert`.
        let slots = self.len.load(Ordering::Acquire) * CHUNK_SLOTS;
        for index in 0..slots {
            let Some(slot) = self.slot(index) else {
                continue;
            };
            let deadline = std::time::Instant::now() + patience;
            loop {
                // Relaxed: a peek; `lock` decides.
                let state = slot.state.load(Ordering::Relaxed);
                let handle = handle_of(index, generation_of(state));
                match state & TAG_MASK {
                    FREE => break,
                    OPEN => match self.lock(handle) {
                        Ok((slot, state)) => {
                            // SAFETY: locked by this thread (see `with`).
                            let value = unsafe { &mut *slot.value.get() };
                            if value.as_ref().is_some_and(&mut doomed) {
                                out.extend(value.take());
                                self.release(handle, slot, state);
                            } else {
                                // Release: as in `with`.
                                slot.state.store(state, Ordering::Release);
                            }
                            break;
                        }
                        Err(_) => continue,
                    },
                    _ => {
                        if std::time::Instant::now() >= deadline {
                            stuck += 1;
                            break;
                        }
                        std::thread::yield_now();
                    }
                }
            }
        }
        (out, stuck)
    }
}

impl<T> Drop for Table<T> {
    fn drop(&mut self) {
        for chunk in &mut self.chunks {
            let base = *chunk.get_mut();
            if !base.is_null() {
                // SAFETY: a non-NULL chunk came from `Box::into_raw` of a
                // boxed slice of `CHUNK_SLOTS` slots in `grow`; `&mut self`
                // means no handle is in use.
                drop(unsafe {
                    Box::from_raw(std::ptr::slice_from_raw_parts_mut(base, CHUNK_SLOTS))
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn a_handle_names_its_value_until_removed_and_never_again() {
        let t = Table::<String>::new(2);
        let a = t.insert("a".to_owned()).unwrap();
        let b = t.insert("b".to_owned()).unwrap();
        assert_ne!(a, 0);
        assert_ne!(a, b);
        assert_eq!(t.with(a, |v| v.clone()), Ok("a".to_owned()));
        t.with(b, |v| v.push('!')).unwrap();
        assert_eq!(t.remove(b), Ok("b!".to_owned()));
        // Double remove, use after remove: stale, however the slot is reused.
        assert_eq!(t.remove(b), Err(HandleError::Stale));
        let c = t.insert("c".to_owned()).unwrap();
        assert_eq!(
            c >> GEN_BITS,
            b >> GEN_BITS,
            "the freed slot is reused first"
        );
        assert_eq!(t.with(b, |_| ()), Err(HandleError::Stale));
        assert_eq!(t.with(c, |v| v.clone()), Ok("c".to_owned()));
        // Garbage handles resolve safely.
        for h in [
            0,
            u64::MAX,
            1 << 63,
            (3 * CHUNK_SLOTS as u64) << GEN_BITS | 1,
        ] {
            assert_eq!(t.with(h, |_| ()), Err(HandleError::Stale), "{h:#x}");
        }
        drop((t.remove(a), t.remove(c)));
    }

    #[test]
    fn a_slot_in_use_is_busy_not_waited_for() {
        let t = Table::<u32>::new(1);
        let h = t.insert(1).unwrap();
        t.with(h, |_| {
            assert_eq!(t.with(h, |_| ()), Err(HandleError::Busy));
            assert_eq!(t.remove(h), Err(HandleError::Busy));
        })
        .unwrap();
        assert_eq!(t.remove(h), Ok(1));
    }

    #[test]
    fn the_table_grows_to_its_limit_then_says_full() {
        let t = Table::<usize>::new(2);
        let n = if cfg!(miri) {
            CHUNK_SLOTS + 8
        } else {
            2 * CHUNK_SLOTS
        };
        let handles: Vec<u64> = (0..n).map(|i| t.insert(i).unwrap()).collect();
        if !cfg!(miri) {
            assert_eq!(t.insert(7).map_err(|e| e.0), Err(HandleError::Full));
        }
        for (i, h) in handles.iter().enumerate() {
            assert_eq!(t.remove(*h), Ok(i));
        }
        assert!(t.insert(7).is_ok());
    }

    #[test]
    fn drain_where_takes_only_the_doomed() {
        let t = Table::<u32>::new(1);
        let hs: Vec<u64> = (0..10).map(|i| t.insert(i).unwrap()).collect();
        let (gone, stuck) = t.drain_where(|v| v % 2 == 0, std::time::Duration::ZERO);
        assert_eq!((gone.len(), stuck), (5, 0));
        for (i, h) in hs.iter().enumerate() {
            assert_eq!(t.with(*h, |_| ()).is_ok(), i % 2 == 1);
        }
    }

    /// Many threads inserting, using and removing at once: every value
    /// comes out exactly once, and each handle's value is its own.
    #[test]
    fn stress_threads_share_the_table() {
        let t = Arc::new(Table::<(usize, u64)>::new(4));
        // Under miri, enough to reach the batch-removal branch below.
        let per = if cfg!(miri) { 400 } else { 20_000 };
        let threads: Vec<_> = (0..4)
            .map(|id| {
                let t = Arc::clone(&t);
                std::thread::spawn(move || {
                    let mut open = Vec::new();
                    for i in 0..per as u64 {
                        open.push(t.insert((id, i)).unwrap());
                        if i % 3 == 0 {
                            let h = open.swap_remove((i as usize * 7) % open.len());
                            t.with(h, |v| assert_eq!(v.0, id)).unwrap();
                            assert_eq!(t.remove(h).unwrap().0, id);
                            assert_eq!(t.remove(h), Err(HandleError::Stale));
                        }
                        if open.len() > 200 {
                            for h in open.drain(..100) {
                                assert_eq!(t.remove(h).unwrap().0, id);
                            }
                        }
                    }
                    for h in open {
                        assert_eq!(t.remove(h).unwrap().0, id);
                    }
                })
            })
            .collect();
        for th in threads {
            th.join().unwrap();
        }
        let (left, stuck) = t.drain_where(|_| true, std::time::Duration::ZERO);
        assert_eq!((left.len(), stuck), (0, 0));
    }
}
