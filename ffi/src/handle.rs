//! Pointer handles that fail cleanly after they are freed.
//!
//! A [`Handle<T>`] is a leaked box holding a magic word and the value. Free
//! takes the value out and turns the magic word into a tombstone, but the
//! box itself (a few dozen bytes) is never deallocated: a later call, or a
//! second free, through the same pointer reads the tombstone and is
//! refused with `OTLPX_STATUS_INVALID_HANDLE` instead of touching freed
//! memory. The magic word also differs per handle type, so an engine
//! pointer passed where a tracer is expected is refused too.
//!
//! What this cannot catch, and the docs say so: a pointer that never came
//! from otlpx, and a free racing with another call on the same handle (as
//! with `free()` itself, the caller must order them).
#![allow(unsafe_code)]

use crate::otlpx_status;
use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicU64, Ordering};

/// The tombstone: the value was taken out.
const FREED: u64 = 0xdead_0f7c_dead_0f7c;

/// Every tombstone's address. Nothing reads it: it keeps the tombstones
/// reachable, so leak checkers (LeakSanitizer, valgrind) do not report
/// what is kept on purpose.
static TOMBSTONES: std::sync::Mutex<Vec<usize>> = std::sync::Mutex::new(Vec::new());

/// A value behind a pointer C holds. `repr(C)`: the magic word is first in
/// every handle type, so reading it through a pointer of another handle
/// type reads a magic word too.
#[repr(C)]
pub(crate) struct Handle<T, const MAGIC: u64> {
    magic: AtomicU64,
    value: UnsafeCell<Option<T>>,
}

impl<T, const MAGIC: u64> Handle<T, MAGIC> {
    /// A new handle holding `value`, as the pointer C will hold.
    pub(crate) fn into_raw(value: T) -> *mut Self {
        Box::into_raw(Box::new(Self {
            magic: AtomicU64::new(MAGIC),
            value: UnsafeCell::new(Some(value)),
        }))
    }

    /// The value behind `ptr`.
    ///
    /// # Errors
    ///
    /// `NullPointer` for NULL, `InvalidHandle` for a freed handle or one of
    /// another type.
    ///
    /// # Safety
    ///
    /// `ptr` is NULL or came from [`into_raw`](Self::into_raw) of some
    /// handle type, and no [`free`](Self::free) of it runs concurrently.
    pub(crate) unsafe fn get<'a>(ptr: *const Self) -> Result<&'a T, otlpx_status> {
        if ptr.is_null() {
            return Err(otlpx_status::NullPointer);
        }
        // SAFETY: handles are never deallocated, so `ptr` (from `into_raw`,
        // the caller promises) points to a live box; its first field is the
        // magic word whatever the handle type (`repr(C)`).
        let magic = unsafe { &*ptr.cast::<AtomicU64>() };
        // Acquire: pairs with the Release in `free`, and with the box's
        // publication to this thread (however C passed the pointer).
        if magic.load(Ordering::Acquire) != MAGIC {
            return Err(otlpx_status::InvalidHandle);
        }
        // SAFETY: the magic matches, so `ptr` is a `Self` holding its value;
        // the value is only taken out by `free`, which the caller promises
        // does not run concurrently.
        unsafe { (*(*ptr).value.get()).as_ref() }.ok_or(otlpx_status::InvalidHandle)
    }

    /// Takes the value out and leaves the tombstone. NULL is `Ok(None)`.
    ///
    /// # Errors
    ///
    /// `InvalidHandle` for a handle already freed (or of another type).
    ///
    /// # Safety
    ///
    /// As [`get`](Self::get); no reference from `get` may still be in use.
    pub(crate) unsafe fn free(ptr: *mut Self) -> Result<Option<T>, otlpx_status> {
        if ptr.is_null() {
            return Ok(None);
        }
        // SAFETY: as in `get`.
        let magic = unsafe { &*ptr.cast::<AtomicU64>() };
        // AcqRel: the winner of two racing frees alone takes the value
        // (Acquire: sees the value as `into_raw` left it; Release: pairs
        // with the Acquire in `get`).
        magic
            .compare_exchange(MAGIC, FREED, Ordering::AcqRel, Ordering::Relaxed)
            .map_err(|_| otlpx_status::InvalidHandle)?;
        TOMBSTONES
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(ptr as usize);
        // SAFETY: this call won the CAS, so it alone takes the value, and
        // the caller promises no `get` reference is in use.
        Ok(unsafe { (*(*ptr).value.get()).take() })
    }
}

// SAFETY: the value is shared by reference between the threads holding the
// pointer (so `T: Sync`), and moved out by one of them (so `T: Send`).
unsafe impl<T: Send + Sync, const MAGIC: u64> Sync for Handle<T, MAGIC> {}

#[cfg(test)]
mod tests {
    use super::*;

    type A = Handle<String, 0xa>;
    type B = Handle<String, 0xb>;

    #[test]
    fn freed_and_foreign_handles_are_refused() {
        let a = A::into_raw("a".to_owned());
        let b = B::into_raw("b".to_owned());
        // SAFETY: the pointers come from `into_raw`; nothing is
        // concurrent.
        unsafe {
            assert_eq!(A::get(a).map(String::as_str), Ok("a"));
            assert_eq!(A::get(b.cast()).err(), Some(otlpx_status::InvalidHandle));
            assert_eq!(
                A::get(std::ptr::null()).err(),
                Some(otlpx_status::NullPointer)
            );
            assert_eq!(A::free(a), Ok(Some("a".to_owned())));
            assert_eq!(A::get(a).err(), Some(otlpx_status::InvalidHandle));
            assert_eq!(A::free(a), Err(otlpx_status::InvalidHandle));
            assert_eq!(A::free(std::ptr::null_mut()), Ok(None));
            assert_eq!(B::free(b), Ok(Some("b".to_owned())));
            // The tombstones are kept by design; free them for miri.
            TOMBSTONES
                .lock()
                .unwrap()
                .retain(|&t| t != a as usize && t != b as usize);
            drop(Box::from_raw(a));
            drop(Box::from_raw(b));
        }
    }
}
