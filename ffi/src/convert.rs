//! Checking what C hands us and viewing it as the core's borrowed types,
//! without copying a byte: strings, slices, attribute values, contexts.
//!
//! The core takes attributes as `&[KeyValue]`; C gives an array of
//! `otlpx_attribute`. The views are built in a per-thread [`Arena`] whose
//! vectors keep their capacity between calls, so a warm thread converts
//! without allocating.

use crate::otlpx_status;
use crate::types::{otlpx_attribute, otlpx_span_context, otlpx_str, otlpx_value_type};
use otlpx::{Event, KeyValue, Link, SpanContext, SpanId, TraceFlags, TraceId, TraceState, Value};
use std::cell::RefCell;
use std::ffi::c_char;
use std::sync::atomic::{AtomicU64, Ordering};

/// `len` elements at `ptr` as a slice; NULL is fine for an empty one.
///
/// # Safety
///
/// When `len > 0`, `ptr` must point to `len` initialised `T`s that stay
/// valid and unmodified for `'a`.
pub(crate) unsafe fn slice_arg<'a, T>(ptr: *const T, len: usize) -> Result<&'a [T], otlpx_status> {
    if len == 0 {
        return Ok(&[]);
    }
    if ptr.is_null() {
        return Err(otlpx_status::NullPointer);
    }
    if len > isize::MAX as usize / size_of::<T>().max(1) || !ptr.is_aligned() {
        return Err(otlpx_status::InvalidArgument);
    }
    // SAFETY: non-NULL and aligned (checked), the size fits `isize`
    // (checked); the caller promises `len` initialised elements living
    // for `'a`.
    Ok(unsafe { std::slice::from_raw_parts(ptr, len) })
}

/// A (pointer, length) byte string.
///
/// # Safety
///
/// As [`slice_arg`].
pub(crate) unsafe fn bytes_arg<'a>(
    ptr: *const c_char,
    len: usize,
) -> Result<&'a [u8], otlpx_status> {
    // SAFETY: forwarded from the caller.
    unsafe { slice_arg(ptr.cast::<u8>(), len) }
}

/// A (pointer, length) UTF-8 string.
///
/// # Safety
///
/// As [`slice_arg`].
pub(crate) unsafe fn str_arg<'a>(ptr: *const c_char, len: usize) -> Result<&'a str, otlpx_status> {
    // SAFETY: forwarded from the caller.
    let bytes = unsafe { bytes_arg(ptr, len)? };
    std::str::from_utf8(bytes).map_err(|_| otlpx_status::InvalidUtf8)
}

/// An `otlpx_str` as UTF-8.
///
/// # Safety
///
/// As [`slice_arg`], for `s.ptr` and `s.len`.
pub(crate) unsafe fn str_of<'a>(s: &otlpx_str) -> Result<&'a str, otlpx_status> {
    // SAFETY: forwarded from the caller.
    unsafe { str_arg(s.ptr, s.len) }
}

/// An `otlpx_str` as bytes.
///
/// # Safety
///
/// As [`slice_arg`], for `s.ptr` and `s.len`.
unsafe fn bytes_of<'a>(s: &otlpx_str) -> Result<&'a [u8], otlpx_status> {
    // SAFETY: forwarded from the caller.
    unsafe { bytes_arg(s.ptr, s.len) }
}

fn value_type(t: u32) -> Result<otlpx_value_type, otlpx_status> {
    use otlpx_value_type as T;
    Ok(match t {
        1 => T::String,
        2 => T::Bool,
        3 => T::Int,
        4 => T::Double,
        5 => T::Bytes,
        6 => T::StringArray,
        7 => T::BoolArray,
        8 => T::IntArray,
        9 => T::DoubleArray,
        10 => T::BytesArray,
        _ => return Err(otlpx_status::InvalidArgument),
    })
}

/// A span context from C.
///
/// # Safety
///
/// `c.trace_state` as in [`slice_arg`].
pub(crate) unsafe fn context_of(c: &otlpx_span_context) -> Result<SpanContext, otlpx_status> {
    // SAFETY: forwarded from the caller.
    let state = unsafe { str_of(&c.trace_state)? };
    Ok(SpanContext {
        trace_id: TraceId(c.trace_id),
        span_id: SpanId(c.span_id),
        trace_flags: TraceFlags(c.trace_flags),
        is_remote: c.is_remote != 0,
        trace_state: if state.is_empty() {
            TraceState::EMPTY
        } else {
            // Allocates: a parent or link with a trace state is the rare
            // case, and the core keeps the state shared.
            TraceState::from_header(state)
        },
    })
}

/// A link from C, borrowing `c`'s trace state.
///
/// # Safety
///
/// `c.trace_state` as in [`slice_arg`].
unsafe fn link_of<'a>(
    c: &'a otlpx_span_context,
    attributes: &'a [KeyValue<'a>],
    dropped: u32,
) -> Result<Link<'a>, otlpx_status> {
    Ok(Link {
        trace_id: TraceId(c.trace_id),
        span_id: SpanId(c.span_id),
        trace_flags: TraceFlags(c.trace_flags),
        // SAFETY: forwarded from the caller.
        trace_state: unsafe { str_of(&c.trace_state)? },
        is_remote: c.is_remote != 0,
        attributes,
        dropped_attributes_count: dropped,
    })
}

/// How many of `value`'s strings or byte strings the core will truncate to
/// `limit` (characters for strings, bytes otherwise). Looks at characters
/// only for values longer than the limit in bytes, so the common case
/// costs a compare.
pub(crate) fn truncations(value: &Value<'_>, limit: Option<u32>) -> u64 {
    let Some(limit) = limit.map(|l| l as usize) else {
        return 0;
    };
    let long_str = |s: &str| s.len() > limit && s.chars().nth(limit).is_some();
    match value {
        Value::Str(s) => u64::from(long_str(s)),
        Value::Bytes(b) => u64::from(b.len() > limit),
        Value::StrArray(a) => a.iter().filter(|s| long_str(s)).count() as u64,
        Value::BytesArray(a) => a.iter().filter(|b| b.len() > limit).count() as u64,
        _ => 0,
    }
}

/// Reusable vectors for the views of one call; see the module docs. Kept
/// empty between calls, labelled `'static` only for storage: each call
/// re-types them to its own borrows ([`relabel`]).
#[derive(Default)]
struct Arena {
    kvs: Vec<KeyValue<'static>>,
    strs: Vec<&'static str>,
    bytes: Vec<&'static [u8]>,
    events: Vec<Event<'static>>,
    links: Vec<Link<'static>>,
    groups: Vec<&'static [otlpx_attribute]>,
}

thread_local! {
    static ARENA: RefCell<Arena> = RefCell::default();
}

/// The same empty vector's allocation, re-typed: `T` and `U` differ only
/// in lifetimes here.
fn relabel<T, U>(v: Vec<T>) -> Vec<U> {
    const {
        assert!(size_of::<T>() == size_of::<U>() && align_of::<T>() == align_of::<U>());
    }
    let mut v = std::mem::ManuallyDrop::new(v);
    // SAFETY: length 0, so no element of either type exists; the
    // allocation was made for `capacity` elements of a type with the same
    // size and alignment as `U` (asserted above), which is all
    // `from_raw_parts` requires of it.
    unsafe {
        v.set_len(0);
        Vec::from_raw_parts(v.as_mut_ptr().cast::<U>(), 0, v.capacity())
    }
}

/// Converts the attribute arrays `groups` pushes (one per span, event or
/// link, in order) and runs `f` on the result: all attributes, group after
/// group, and two empty vectors for events and links to borrow them.
///
/// # Errors
///
/// The first conversion error (`f` is then not run), or `f`'s.
///
/// # Safety
///
/// Every pointer in every attribute as in [`slice_arg`].
pub(crate) unsafe fn with_attributes<'g, R>(
    groups: impl FnOnce(&mut Vec<&'g [otlpx_attribute]>) -> Result<(), otlpx_status>,
    limit: Option<u32>,
    truncated: &AtomicU64,
    f: impl for<'b> FnOnce(
        &'b [KeyValue<'b>],
        &mut Vec<Event<'b>>,
        &mut Vec<Link<'b>>,
    ) -> Result<R, otlpx_status>,
) -> Result<R, otlpx_status> {
    let mut arena = ARENA
        .try_with(|a| a.try_borrow_mut().map(|mut a| std::mem::take(&mut *a)).ok())
        .ok()
        .flatten()
        // Thread teardown (or re-entry, which cannot happen): a fresh one.
        .unwrap_or_default();
    let mut g: Vec<&'g [otlpx_attribute]> = relabel(std::mem::take(&mut arena.groups));
    let mut strs: Vec<&str> = relabel(std::mem::take(&mut arena.strs));
    let mut bytes: Vec<&[u8]> = relabel(std::mem::take(&mut arena.bytes));
    let mut kvs: Vec<KeyValue<'_>> = relabel(std::mem::take(&mut arena.kvs));
    let mut events: Vec<Event<'_>> = relabel(std::mem::take(&mut arena.events));
    let mut links: Vec<Link<'_>> = relabel(std::mem::take(&mut arena.links));
    let result = groups(&mut g).and_then(|()| {
        // SAFETY: forwarded from the caller.
        unsafe { elements_into(&g, &mut strs, &mut bytes)? };
        // SAFETY: forwarded from the caller.
        let cut = unsafe { values_into(&g, &strs, &bytes, &mut kvs, limit)? };
        let result = f(&kvs, &mut events, &mut links)?;
        if cut != 0 {
            // Relaxed: a statistic. Counted only once `f` took the values:
            // a refused span's values were never truncated into anything.
            truncated.fetch_add(cut, Ordering::Relaxed);
        }
        Ok(result)
    });
    arena.links = relabel(links);
    arena.events = relabel(events);
    arena.kvs = relabel(kvs);
    arena.bytes = relabel(bytes);
    arena.strs = relabel(strs);
    arena.groups = relabel(g);
    let _ = ARENA.try_with(|a| {
        if let Ok(mut a) = a.try_borrow_mut() {
            *a = arena;
        }
    });
    result
}

/// [`with_attributes`] for one array of attributes.
///
/// # Safety
///
/// As [`with_attributes`].
pub(crate) unsafe fn with_attribute_slice<R>(
    attributes: &[otlpx_attribute],
    limit: Option<u32>,
    truncated: &AtomicU64,
    f: impl FnOnce(&[KeyValue<'_>]) -> Result<R, otlpx_status>,
) -> Result<R, otlpx_status> {
    // SAFETY: forwarded from the caller.
    unsafe {
        with_attributes(
            |g| {
                g.push(attributes);
                Ok(())
            },
            limit,
            truncated,
            |kvs, _, _| f(kvs),
        )
    }
}

/// The first pass: every string and byte-string array element, viewed.
///
/// # Safety
///
/// As [`with_attributes`].
unsafe fn elements_into<'a>(
    groups: &[&'a [otlpx_attribute]],
    strs: &mut Vec<&'a str>,
    bytes: &mut Vec<&'a [u8]>,
) -> Result<(), otlpx_status> {
    for a in groups.iter().flat_map(|g| g.iter()) {
        match value_type(a.r#type)? {
            otlpx_value_type::StringArray => {
                // SAFETY: forwarded from the caller.
                let elems = unsafe { slice_arg::<'a>(a.array.cast::<otlpx_str>(), a.array_len)? };
                for e in elems {
                    // SAFETY: forwarded from the caller.
                    strs.push(unsafe { str_of(e)? });
                }
            }
            otlpx_value_type::BytesArray => {
                // SAFETY: forwarded from the caller.
                let elems = unsafe { slice_arg::<'a>(a.array.cast::<otlpx_str>(), a.array_len)? };
                for e in elems {
                    // SAFETY: forwarded from the caller.
                    bytes.push(unsafe { bytes_of(e)? });
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// The second pass: every attribute as a `KeyValue`, arrays of strings and
/// byte strings borrowing the first pass's views in order. Returns how
/// many values the core will truncate.
///
/// # Safety
///
/// As [`with_attributes`].
unsafe fn values_into<'a>(
    groups: &[&'a [otlpx_attribute]],
    strs: &'a [&'a str],
    bytes: &'a [&'a [u8]],
    kvs: &mut Vec<KeyValue<'a>>,
    limit: Option<u32>,
) -> Result<u64, otlpx_status> {
    let (mut s, mut b, mut cut) = (0, 0, 0);
    for a in groups.iter().flat_map(|g| g.iter()) {
        // SAFETY: forwarded from the caller.
        let key = unsafe { str_of(&a.key)? };
        let value = match value_type(a.r#type)? {
            // SAFETY: forwarded from the caller.
            otlpx_value_type::String => Value::Str(unsafe { str_of(&a.string)? }),
            // SAFETY: forwarded from the caller.
            otlpx_value_type::Bytes => Value::Bytes(unsafe { bytes_of(&a.string)? }),
            otlpx_value_type::Bool => Value::Bool(a.int_value != 0),
            otlpx_value_type::Int => Value::I64(a.int_value),
            otlpx_value_type::Double => Value::F64(a.double_value),
            otlpx_value_type::IntArray => {
                // SAFETY: forwarded from the caller.
                Value::I64Array(unsafe { slice_arg(a.array.cast::<i64>(), a.array_len)? })
            }
            otlpx_value_type::DoubleArray => {
                // SAFETY: forwarded from the caller.
                Value::F64Array(unsafe { slice_arg(a.array.cast::<f64>(), a.array_len)? })
            }
            otlpx_value_type::BoolArray => {
                // SAFETY: forwarded from the caller.
                let raw = unsafe { slice_arg::<u8>(a.array.cast::<u8>(), a.array_len)? };
                if raw.iter().any(|&v| v > 1) {
                    return Err(otlpx_status::InvalidArgument);
                }
                // SAFETY: every byte is 0 or 1 (checked), the valid `bool`
                // values, and `bool` has the size and alignment of `u8`.
                Value::BoolArray(unsafe { &*(std::ptr::from_ref::<[u8]>(raw) as *const [bool]) })
            }
            otlpx_value_type::StringArray => {
                let v = &strs[s..s + a.array_len];
                s += a.array_len;
                Value::StrArray(v)
            }
            otlpx_value_type::BytesArray => {
                let v = &bytes[b..b + a.array_len];
                b += a.array_len;
                Value::BytesArray(v)
            }
        };
        cut += truncations(&value, limit);
        kvs.push(KeyValue { key, value });
    }
    Ok(cut)
}

/// Converts events, each borrowing its slice of `kvs` (which must hold
/// `span_attrs` attributes, then each event's, in order).
///
/// # Safety
///
/// `e.name` of each event as in [`slice_arg`].
pub(crate) unsafe fn events_into<'a>(
    c_events: &'a [crate::types::otlpx_event],
    kvs: &'a [KeyValue<'a>],
    mut at: usize,
    out: &mut Vec<Event<'a>>,
) -> Result<usize, otlpx_status> {
    for e in c_events {
        let attributes = &kvs[at..at + e.attributes_len];
        at += e.attributes_len;
        out.push(Event {
            // SAFETY: forwarded from the caller.
            name: unsafe { str_of(&e.name)? },
            time_unix_nano: e.time_unix_nano,
            attributes,
            dropped_attributes_count: e.dropped_attributes_count,
        });
    }
    Ok(at)
}

/// Converts links, as [`events_into`] does events.
///
/// # Safety
///
/// Each link's trace state as in [`slice_arg`].
pub(crate) unsafe fn links_into<'a>(
    c_links: &'a [crate::types::otlpx_link],
    kvs: &'a [KeyValue<'a>],
    mut at: usize,
    out: &mut Vec<Link<'a>>,
) -> Result<(), otlpx_status> {
    for l in c_links {
        let attributes = &kvs[at..at + l.attributes_len];
        at += l.attributes_len;
        // SAFETY: forwarded from the caller.
        out.push(unsafe { link_of(&l.context, attributes, l.dropped_attributes_count)? });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(text: &str) -> otlpx_str {
        otlpx_str {
            ptr: text.as_ptr().cast(),
            len: text.len(),
        }
    }

    fn attr(key: &str, t: otlpx_value_type) -> otlpx_attribute {
        otlpx_attribute {
            key: s(key),
            r#type: t as u32,
            string: otlpx_str {
                ptr: std::ptr::null(),
                len: 0,
            },
            int_value: 0,
            double_value: 0.0,
            array: std::ptr::null(),
            array_len: 0,
        }
    }

    #[test]
    fn strings_are_checked_and_never_read_past_their_length() {
        // SAFETY: the pointers are to live buffers of the lengths given.
        unsafe {
            assert_eq!(str_arg(std::ptr::null(), 0), Ok(""));
            assert_eq!(str_arg(std::ptr::null(), 3), Err(otlpx_status::NullPointer));
            let bad = [b'o', 0xff, b'k'];
            assert_eq!(
                str_arg(bad.as_ptr().cast(), 3),
                Err(otlpx_status::InvalidUtf8)
            );
            assert_eq!(str_arg(bad.as_ptr().cast(), 1), Ok("o"));
            assert_eq!(
                str_arg(bad.as_ptr().cast(), usize::MAX),
                Err(otlpx_status::InvalidArgument)
            );
        }
    }

    #[test]
    fn attributes_of_every_type_convert_and_bad_ones_are_refused() {
        let strs = [s("a"), s("bb")];
        let ints = [1_i64, 2];
        let bools = [0_u8, 1];
        let mut a_str = attr("s", otlpx_value_type::String);
        a_str.string = s("hello world");
        let mut a_int = attr("i", otlpx_value_type::Int);
        a_int.int_value = -7;
        let mut a_sa = attr("sa", otlpx_value_type::StringArray);
        a_sa.array = strs.as_ptr().cast();
        a_sa.array_len = 2;
        let mut a_ia = attr("ia", otlpx_value_type::IntArray);
        a_ia.array = ints.as_ptr().cast();
        a_ia.array_len = 2;
        let mut a_ba = attr("ba", otlpx_value_type::BoolArray);
        a_ba.array = bools.as_ptr().cast();
        a_ba.array_len = 2;
        let attrs = [a_str, a_int, a_sa, a_ia, a_ba];
        let truncated = AtomicU64::new(0);
        // SAFETY: every pointer above is live for the call.
        unsafe {
            with_attribute_slice(&attrs, Some(5), &truncated, |kvs| {
                assert_eq!(kvs[0].value, Value::Str("hello world"));
                assert_eq!(kvs[1].value, Value::I64(-7));
                assert_eq!(kvs[2].value, Value::StrArray(&["a", "bb"]));
                assert_eq!(kvs[3].value, Value::I64Array(&[1, 2]));
                assert_eq!(kvs[4].value, Value::BoolArray(&[false, true]));
                Ok(())
            })
        }
        .unwrap();
        assert_eq!(
            truncated.load(Ordering::Relaxed),
            1,
            "only 'hello world' is over 5"
        );

        let mut wrong = attr("w", otlpx_value_type::String);
        wrong.r#type = 99;
        let bad_bools = [2_u8];
        let mut a_bad_bool = attr("b", otlpx_value_type::BoolArray);
        a_bad_bool.array = bad_bools.as_ptr().cast();
        a_bad_bool.array_len = 1;
        let mut null_array = attr("n", otlpx_value_type::IntArray);
        null_array.array_len = 3;
        for (bad, want) in [
            (wrong, otlpx_status::InvalidArgument),
            (a_bad_bool, otlpx_status::InvalidArgument),
            (null_array, otlpx_status::NullPointer),
        ] {
            // SAFETY: as above.
            let got = unsafe { with_attribute_slice(&[bad], None, &truncated, |_| Ok(())) };
            assert_eq!(got, Err(want));
        }
    }

    #[test]
    fn a_warm_arena_keeps_its_capacity() {
        let attrs = [attr("k", otlpx_value_type::Int); 16];
        let truncated = AtomicU64::new(0);
        let cap = || {
            // SAFETY: as above.
            unsafe { with_attribute_slice(&attrs, None, &truncated, |kvs| Ok(kvs.len())) }.unwrap();
            ARENA.with(|a| {
                let a = a.borrow();
                assert!(a.kvs.is_empty(), "kept empty between calls");
                (a.kvs.capacity(), a.kvs.as_ptr())
            })
        };
        let first = cap();
        assert!(first.0 >= 16);
        assert_eq!(cap(), first, "the same allocation, reused");
    }
}
