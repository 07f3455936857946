//! OS entropy: a leaf (see the architecture map), for the id generator's
//! seeds.
#![allow(unsafe_code)]

use std::hash::{BuildHasher, Hasher};

/// Eight bytes of fresh OS entropy (`getrandom(2)`, non-blocking), or,
/// where it fails or does not exist, a `RandomState` hash (fresh per call
/// but derived from keys a child inherits: callers mix in the pid).
pub(crate) fn os_entropy() -> u64 {
    #[cfg(all(target_os = "linux", not(miri)))]
    {
        let mut buf = [0u8; 8];
        // SAFETY: `buf` is valid for writes of `buf.len()` bytes.
        let n = unsafe { libc::getrandom(buf.as_mut_ptr().cast(), buf.len(), libc::GRND_NONBLOCK) };
        if n == buf.len() as isize {
            return u64::from_ne_bytes(buf);
        }
    }
    std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish()
}
