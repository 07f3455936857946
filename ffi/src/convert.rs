//! Checking what C hands us and viewing it as the core's borrowed types,
//! without copying a byte: strings, slices, attribute values, contexts,
//! log bodies.
//!
//! The core takes attributes as `&[KeyValue]`; C gives an array of
//! `otlpx_attribute`. The views are built in a per-thread [`Arena`] whose
//! vectors keep their capacity between calls, so a warm thread converts
//! without allocating. A log body (`otlpx_any_value`, nested arrays and
//! maps) becomes a tree of `AnyValue`s the same way, in a per-thread
//! [`BodyArena`], without recursing on the caller's data.

use crate::otlpx_status;
use crate::types::{
    otlpx_any_key_value, otlpx_any_value, otlpx_attribute, otlpx_span_context, otlpx_str,
    otlpx_value_type,
};
use otlpx::logs::AnyValue;
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

/// The type of a value nested in a log body: any attribute type, or the
/// two a body adds.
fn any_value_type(t: u32) -> Result<otlpx_value_type, otlpx_status> {
    match t {
        11 => Ok(otlpx_value_type::Array),
        12 => Ok(otlpx_value_type::Map),
        t => value_type(t),
    }
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
        // SAFETY: forwarded from the caller.
        unsafe { push_elements(value_type(a.r#type)?, a.array, a.array_len, strs, bytes)? };
    }
    Ok(())
}

/// Views the elements of a string or byte-string array value (other types
/// have none to view) at the end of `strs` or `bytes`.
///
/// # Safety
///
/// `array` as in [`slice_arg`], for `len` `otlpx_str`s when `t` is one of
/// those array types, each of them as in [`slice_arg`].
unsafe fn push_elements<'a>(
    t: otlpx_value_type,
    array: *const std::ffi::c_void,
    len: usize,
    strs: &mut Vec<&'a str>,
    bytes: &mut Vec<&'a [u8]>,
) -> Result<(), otlpx_status> {
    match t {
        otlpx_value_type::StringArray => {
            // SAFETY: forwarded from the caller.
            let elems = unsafe { slice_arg::<'a>(array.cast::<otlpx_str>(), len)? };
            for e in elems {
                // SAFETY: forwarded from the caller.
                strs.push(unsafe { str_of(e)? });
            }
        }
        otlpx_value_type::BytesArray => {
            // SAFETY: forwarded from the caller.
            let elems = unsafe { slice_arg::<'a>(array.cast::<otlpx_str>(), len)? };
            for e in elems {
                // SAFETY: forwarded from the caller.
                bytes.push(unsafe { bytes_of(e)? });
            }
        }
        _ => {}
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
        let t = value_type(a.r#type)?;
        let (elem_strs, elem_bytes) = match t {
            otlpx_value_type::StringArray => {
                s += a.array_len;
                (&strs[s - a.array_len..s], &[][..])
            }
            otlpx_value_type::BytesArray => {
                b += a.array_len;
                (&[][..], &bytes[b - a.array_len..b])
            }
            _ => (&[][..], &[][..]),
        };
        // SAFETY: forwarded from the caller.
        let value = unsafe {
            plain_value(
                t,
                &a.string,
                a.int_value,
                a.double_value,
                a.array,
                a.array_len,
                elem_strs,
                elem_bytes,
            )?
        };
        cut += truncations(&value, limit);
        kvs.push(KeyValue { key, value });
    }
    Ok(cut)
}

/// A value of one of the plain types (every type but `ARRAY` and `MAP`,
/// refused here) from its fields; a string or byte-string array is given
/// its elements' views (`elem_strs`, `elem_bytes`), the rest is read from
/// `array`.
///
/// # Safety
///
/// `string` and `array` (for `array_len` elements of the type's element
/// type) as in [`slice_arg`].
#[allow(clippy::too_many_arguments)]
unsafe fn plain_value<'a>(
    t: otlpx_value_type,
    string: &otlpx_str,
    int_value: i64,
    double_value: f64,
    array: *const std::ffi::c_void,
    array_len: usize,
    elem_strs: &'a [&'a str],
    elem_bytes: &'a [&'a [u8]],
) -> Result<Value<'a>, otlpx_status> {
    Ok(match t {
        // SAFETY: forwarded from the caller.
        otlpx_value_type::String => Value::Str(unsafe { str_of(string)? }),
        // SAFETY: forwarded from the caller.
        otlpx_value_type::Bytes => Value::Bytes(unsafe { bytes_of(string)? }),
        otlpx_value_type::Bool => Value::Bool(int_value != 0),
        otlpx_value_type::Int => Value::I64(int_value),
        otlpx_value_type::Double => Value::F64(double_value),
        otlpx_value_type::IntArray => {
            // SAFETY: forwarded from the caller.
            Value::I64Array(unsafe { slice_arg(array.cast::<i64>(), array_len)? })
        }
        otlpx_value_type::DoubleArray => {
            // SAFETY: forwarded from the caller.
            Value::F64Array(unsafe { slice_arg(array.cast::<f64>(), array_len)? })
        }
        otlpx_value_type::BoolArray => {
            // SAFETY: forwarded from the caller.
            let raw = unsafe { slice_arg::<u8>(array.cast::<u8>(), array_len)? };
            if raw.iter().any(|&v| v > 1) {
                return Err(otlpx_status::InvalidArgument);
            }
            // SAFETY: every byte is 0 or 1 (checked), the valid `bool`
            // values, and `bool` has the size and alignment of `u8`.
            Value::BoolArray(unsafe { &*(std::ptr::from_ref::<[u8]>(raw) as *const [bool]) })
        }
        otlpx_value_type::StringArray => Value::StrArray(elem_strs),
        otlpx_value_type::BytesArray => Value::BytesArray(elem_bytes),
        otlpx_value_type::Array | otlpx_value_type::Map => {
            return Err(otlpx_status::InvalidArgument);
        }
    })
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

/// A value of a log body met in the first pass, in breadth-first order:
/// the values of each level of nesting follow those of the level above,
/// and the elements of one array or map are contiguous.
#[derive(Clone, Copy)]
struct BodyNode<'c> {
    /// Its key, when it is a map's entry.
    key: Option<&'c str>,
    value: &'c otlpx_any_value,
    /// `value.r#type`, checked.
    ty: otlpx_value_type,
    /// Where its elements start: in the next level's values (`ARRAY`) or
    /// entries (`MAP`), or in the views of string or byte-string array
    /// elements.
    at: usize,
}

/// The storage of one level of a body: its values, and its map entries.
type Level<'a> = (Vec<AnyValue<'a>>, Vec<(&'a str, AnyValue<'a>)>);

/// Reusable vectors for converting a log body, kept empty between calls
/// and labelled `'static` only for storage, as [`Arena`]'s are. Its own
/// thread-local: a record's attributes are converted in [`ARENA`] around
/// the body's conversion.
#[derive(Default)]
struct BodyArena {
    nodes: Vec<BodyNode<'static>>,
    /// Where each level starts in `nodes`.
    level_starts: Vec<usize>,
    strs: Vec<&'static str>,
    bytes: Vec<&'static [u8]>,
    /// One per level used so far (at most `OTLPX_MAX_BODY_DEPTH`).
    levels: Vec<Level<'static>>,
}

/// How many entries each vector of a [`BodyArena`] keeps between calls: a
/// thread that once converted a huge body does not hold its memory for
/// good.
const BODY_ARENA_KEEP: usize = 4096;

thread_local! {
    static BODY_ARENA: RefCell<BodyArena> = RefCell::default();
}

/// Empties `v` and gives back memory past [`BODY_ARENA_KEEP`] entries.
fn trim<T>(mut v: Vec<T>) -> Vec<T> {
    v.clear();
    v.shrink_to(BODY_ARENA_KEEP);
    v
}

/// Converts the log body `body` and runs `f` on it (`None`: type 0, no
/// body). Nested arrays and maps are laid out level by level in the
/// per-thread [`BodyArena`], each level's values borrowing the level
/// below, so a warm thread converts without allocating and nothing
/// recurses on the caller's data: the first pass is a loop over a queue,
/// the second recurses once per level, at most `OTLPX_MAX_BODY_DEPTH`
/// deep.
///
/// # Errors
///
/// The first conversion error (`f` is then not run), or `f`'s:
/// `InvalidArgument` for an unknown type (or 0 below the top), nesting
/// deeper than `OTLPX_MAX_BODY_DEPTH`, more than `OTLPX_MAX_BODY_VALUES`
/// values, a bool array byte other than 0 or 1; `NullPointer`;
/// `InvalidUtf8` for a string or key.
///
/// # Safety
///
/// Every pointer in `body`, and in every value nested in it, as in
/// [`slice_arg`].
pub(crate) unsafe fn with_body<R>(
    body: &otlpx_any_value,
    f: impl FnOnce(Option<AnyValue<'_>>) -> Result<R, otlpx_status>,
) -> Result<R, otlpx_status> {
    if body.r#type == 0 {
        return f(None);
    }
    let mut arena = BODY_ARENA
        .try_with(|a| a.try_borrow_mut().map(|mut a| std::mem::take(&mut *a)).ok())
        .ok()
        .flatten()
        // Thread teardown (or re-entry, which cannot happen): a fresh one.
        .unwrap_or_default();
    let mut nodes: Vec<BodyNode<'_>> = relabel(std::mem::take(&mut arena.nodes));
    let mut starts = std::mem::take(&mut arena.level_starts);
    let mut strs: Vec<&str> = relabel(std::mem::take(&mut arena.strs));
    let mut bytes: Vec<&[u8]> = relabel(std::mem::take(&mut arena.bytes));
    // SAFETY: forwarded from the caller.
    let result = unsafe { body_nodes(body, &mut nodes, &mut starts, &mut strs, &mut bytes) }
        .and_then(|()| {
            if arena.levels.len() < starts.len() {
                arena.levels.resize_with(starts.len(), Default::default);
            }
            let last = starts.len() - 1;
            let nodes = Nodes {
                nodes: &nodes,
                starts: &starts,
                strs: &strs,
                bytes: &bytes,
            };
            // SAFETY: forwarded from the caller.
            unsafe { nodes.build(&mut arena.levels, last, &[], &[], f) }
        });
    arena.nodes = relabel(trim(nodes));
    arena.level_starts = trim(starts);
    arena.strs = relabel(trim(strs));
    arena.bytes = relabel(trim(bytes));
    let _ = BODY_ARENA.try_with(|a| {
        if let Ok(mut a) = a.try_borrow_mut() {
            *a = arena;
        }
    });
    result
}

/// The first pass: every value of the body, breadth first (`nodes` used as
/// the queue), checked against the depth and size bounds as it is met;
/// each level's start in `starts`; the elements of string and byte-string
/// arrays viewed.
///
/// # Safety
///
/// As [`with_body`].
unsafe fn body_nodes<'c>(
    root: &'c otlpx_any_value,
    nodes: &mut Vec<BodyNode<'c>>,
    starts: &mut Vec<usize>,
    strs: &mut Vec<&'c str>,
    bytes: &mut Vec<&'c [u8]>,
) -> Result<(), otlpx_status> {
    use crate::types::{OTLPX_MAX_BODY_DEPTH, OTLPX_MAX_BODY_VALUES};
    let too_many = |n: usize| n > OTLPX_MAX_BODY_VALUES as usize;
    nodes.push(BodyNode {
        key: None,
        value: root,
        ty: any_value_type(root.r#type)?,
        at: 0,
    });
    starts.push(0);
    // Values met so far, with the elements of arrays of plain values: the
    // work the encoder will do, however often the caller's pointers
    // repeat the same array.
    let mut counted = 1_usize;
    // The level of `nodes[i]` (the body's is 1), where it ends, and how
    // many values and map entries the next level has so far.
    let (mut depth, mut level_end) = (1_u32, 1_usize);
    let (mut next_values, mut next_entries) = (0_usize, 0_usize);
    let mut i = 0;
    while i < nodes.len() {
        if i == level_end {
            starts.push(i);
            level_end = nodes.len();
            depth += 1;
            (next_values, next_entries) = (0, 0);
        }
        let BodyNode { value, ty, .. } = nodes[i];
        let len = value.array_len;
        let nested = matches!(ty, otlpx_value_type::Array | otlpx_value_type::Map);
        if nested && len != 0 && depth >= OTLPX_MAX_BODY_DEPTH {
            return Err(otlpx_status::InvalidArgument);
        }
        match ty {
            otlpx_value_type::Array
            | otlpx_value_type::Map
            | otlpx_value_type::StringArray
            | otlpx_value_type::BytesArray
            | otlpx_value_type::BoolArray
            | otlpx_value_type::IntArray
            | otlpx_value_type::DoubleArray => {
                counted = counted.saturating_add(len);
                if too_many(counted) {
                    return Err(otlpx_status::InvalidArgument);
                }
            }
            _ => {}
        }
        match ty {
            otlpx_value_type::Array => {
                // SAFETY: forwarded from the caller.
                let items = unsafe { slice_arg::<'c>(value.array.cast::<otlpx_any_value>(), len)? };
                nodes[i].at = next_values;
                next_values += len;
                for v in items {
                    nodes.push(BodyNode {
                        key: None,
                        value: v,
                        ty: nested_type(v.r#type)?,
                        at: 0,
                    });
                }
            }
            otlpx_value_type::Map => {
                // SAFETY: forwarded from the caller.
                let entries =
                    unsafe { slice_arg::<'c>(value.array.cast::<otlpx_any_key_value>(), len)? };
                nodes[i].at = next_entries;
                next_entries += len;
                for e in entries {
                    nodes.push(BodyNode {
                        // SAFETY: forwarded from the caller.
                        key: Some(unsafe { str_of(&e.key)? }),
                        value: &e.value,
                        ty: nested_type(e.value.r#type)?,
                        at: 0,
                    });
                }
            }
            otlpx_value_type::StringArray => nodes[i].at = strs.len(),
            otlpx_value_type::BytesArray => nodes[i].at = bytes.len(),
            _ => {}
        }
        // SAFETY: forwarded from the caller.
        unsafe { push_elements(ty, value.array, len, strs, bytes)? };
        i += 1;
    }
    Ok(())
}

/// The type of a value inside an array or map: 0 (none) is not one.
fn nested_type(t: u32) -> Result<otlpx_value_type, otlpx_status> {
    if t == 0 {
        return Err(otlpx_status::InvalidArgument);
    }
    any_value_type(t)
}

/// What the first pass found, for the second.
struct Nodes<'n, 'c: 'n> {
    nodes: &'n [BodyNode<'c>],
    starts: &'n [usize],
    strs: &'n [&'c str],
    bytes: &'n [&'c [u8]],
}

impl<'n, 'c> Nodes<'n, 'c> {
    /// The second pass, from the deepest level up: builds level `d`'s
    /// values in `levels[d]`, borrowing the level below (`below_values`,
    /// `below_entries`), then level `d - 1` borrowing them, and at the top
    /// runs `f` on the body. One frame per level: at most
    /// `OTLPX_MAX_BODY_DEPTH`.
    ///
    /// # Safety
    ///
    /// As [`with_body`].
    unsafe fn build<'b, R>(
        &self,
        levels: &mut [Level<'static>],
        d: usize,
        below_values: &'b [AnyValue<'b>],
        below_entries: &'b [(&'b str, AnyValue<'b>)],
        f: impl FnOnce(Option<AnyValue<'_>>) -> Result<R, otlpx_status>,
    ) -> Result<R, otlpx_status>
    where
        'n: 'b,
    {
        let (values, entries) = &mut levels[d];
        let mut values: Vec<AnyValue<'b>> = relabel(std::mem::take(values));
        let mut entries: Vec<(&'b str, AnyValue<'b>)> = relabel(std::mem::take(entries));
        let end = self.starts.get(d + 1).copied().unwrap_or(self.nodes.len());
        let mut fill = || -> Result<(), otlpx_status> {
            for n in &self.nodes[self.starts[d]..end] {
                // SAFETY: forwarded from the caller.
                let v = unsafe { self.value(n, below_values, below_entries)? };
                match n.key {
                    Some(k) => entries.push((k, v)),
                    None => values.push(v),
                }
            }
            Ok(())
        };
        let result = fill().and_then(|()| {
            if d == 0 {
                f(Some(values[0]))
            } else {
                // SAFETY: forwarded from the caller.
                unsafe { self.build(levels, d - 1, &values, &entries, f) }
            }
        });
        levels[d] = (relabel(trim(values)), relabel(trim(entries)));
        result
    }

    /// One value, its elements borrowed from the level below or from the
    /// views of the first pass.
    ///
    /// # Safety
    ///
    /// As [`with_body`].
    unsafe fn value<'b>(
        &self,
        n: &BodyNode<'c>,
        below_values: &'b [AnyValue<'b>],
        below_entries: &'b [(&'b str, AnyValue<'b>)],
    ) -> Result<AnyValue<'b>, otlpx_status>
    where
        'n: 'b,
    {
        let v = n.value;
        let range = n.at..n.at + v.array_len;
        let (elem_strs, elem_bytes): (&[&str], &[&[u8]]) = match n.ty {
            otlpx_value_type::Array => return Ok(AnyValue::Array(&below_values[range])),
            otlpx_value_type::Map => return Ok(AnyValue::Map(&below_entries[range])),
            otlpx_value_type::StringArray => (&self.strs[range], &[]),
            otlpx_value_type::BytesArray => (&[], &self.bytes[range]),
            _ => (&[], &[]),
        };
        // SAFETY: forwarded from the caller.
        let plain = unsafe {
            plain_value(
                n.ty,
                &v.string,
                v.int_value,
                v.double_value,
                v.array,
                v.array_len,
                elem_strs,
                elem_bytes,
            )?
        };
        Ok(AnyValue::Value(plain))
    }
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

    fn any(t: otlpx_value_type) -> otlpx_any_value {
        otlpx_any_value {
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

    fn any_str(text: &str) -> otlpx_any_value {
        otlpx_any_value {
            string: s(text),
            ..any(otlpx_value_type::String)
        }
    }

    fn any_int(v: i64) -> otlpx_any_value {
        otlpx_any_value {
            int_value: v,
            ..any(otlpx_value_type::Int)
        }
    }

    fn array_of<T>(t: otlpx_value_type, items: &[T]) -> otlpx_any_value {
        otlpx_any_value {
            array: items.as_ptr().cast(),
            array_len: items.len(),
            ..any(t)
        }
    }

    fn entry(key: &str, value: otlpx_any_value) -> otlpx_any_key_value {
        otlpx_any_key_value { key: s(key), value }
    }

    /// Converts `body` and returns its `Debug` text, or the status.
    fn body_text(body: &otlpx_any_value) -> Result<String, otlpx_status> {
        // SAFETY: the tests' bodies point only to live locals.
        unsafe { with_body(body, |b| Ok(format!("{b:?}"))) }
    }

    #[test]
    fn a_map_entry_is_laid_out_as_an_attribute() {
        use std::mem::offset_of;
        assert_eq!(
            size_of::<otlpx_any_key_value>(),
            size_of::<otlpx_attribute>()
        );
        assert_eq!(
            align_of::<otlpx_any_key_value>(),
            align_of::<otlpx_attribute>()
        );
        let v = offset_of!(otlpx_any_key_value, value);
        assert_eq!(
            v + offset_of!(otlpx_any_value, r#type),
            offset_of!(otlpx_attribute, r#type)
        );
        assert_eq!(
            v + offset_of!(otlpx_any_value, string),
            offset_of!(otlpx_attribute, string)
        );
        assert_eq!(
            v + offset_of!(otlpx_any_value, int_value),
            offset_of!(otlpx_attribute, int_value)
        );
        assert_eq!(
            v + offset_of!(otlpx_any_value, double_value),
            offset_of!(otlpx_attribute, double_value)
        );
        assert_eq!(
            v + offset_of!(otlpx_any_value, array),
            offset_of!(otlpx_attribute, array)
        );
        assert_eq!(
            v + offset_of!(otlpx_any_value, array_len),
            offset_of!(otlpx_attribute, array_len)
        );
    }

    #[test]
    fn bodies_of_every_kind_nest_in_order() {
        assert_eq!(
            body_text(&any(otlpx_value_type::String)).unwrap(),
            "Some(Value(Str(\"\")))"
        );
        let mut none = any_int(0);
        none.r#type = 0;
        assert_eq!(body_text(&none).unwrap(), "None");

        let strs = [s("x"), s("yy")];
        let bools = [1_u8, 0];
        let ints = [5_i64, 6];
        let inner = [
            any_int(1),
            any_str("two"),
            array_of(otlpx_value_type::StringArray, &strs),
        ];
        let deep_entries = [entry("k", array_of(otlpx_value_type::BoolArray, &bools))];
        let map_entries = [
            entry("a", array_of(otlpx_value_type::Array, &inner)),
            entry("b", array_of(otlpx_value_type::Map, &deep_entries)),
            entry("c", array_of(otlpx_value_type::IntArray, &ints)),
            entry(
                "d",
                otlpx_any_value {
                    double_value: 0.5,
                    ..any(otlpx_value_type::Double)
                },
            ),
            entry(
                "e",
                array_of(otlpx_value_type::Map, &[] as &[otlpx_any_key_value]),
            ),
        ];
        let outer = [array_of(otlpx_value_type::Map, &map_entries), any_int(7)];
        let body = array_of(otlpx_value_type::Array, &outer);
        // SAFETY: every pointer above is live for the call.
        unsafe {
            with_body(&body, |b| {
                let Some(AnyValue::Array([AnyValue::Map(m), AnyValue::Value(Value::I64(7))])) = b
                else {
                    panic!("{b:?}");
                };
                assert_eq!(m.len(), 5);
                assert_eq!(
                    m[0],
                    (
                        "a",
                        AnyValue::Array(&[
                            AnyValue::Value(Value::I64(1)),
                            AnyValue::Value(Value::Str("two")),
                            AnyValue::Value(Value::StrArray(&["x", "yy"])),
                        ])
                    )
                );
                assert_eq!(
                    m[1],
                    (
                        "b",
                        AnyValue::Map(&[("k", AnyValue::Value(Value::BoolArray(&[true, false])))])
                    )
                );
                assert_eq!(m[2], ("c", AnyValue::Value(Value::I64Array(&[5, 6]))));
                assert_eq!(m[3], ("d", AnyValue::Value(Value::F64(0.5))));
                assert_eq!(m[4], ("e", AnyValue::Map(&[])));
                Ok(())
            })
        }
        .unwrap();
    }

    /// A chain of `depth` nested one-element arrays around `innermost`
    /// (`depth` values in all), in `store`.
    fn chain(
        depth: usize,
        innermost: otlpx_any_value,
        store: &mut Vec<otlpx_any_value>,
    ) -> otlpx_any_value {
        *store = Vec::with_capacity(depth);
        store.push(innermost);
        for _ in 1..depth {
            // Never reallocated (the capacity was reserved): the pointer
            // stays valid.
            let inner = store.as_ptr().wrapping_add(store.len() - 1);
            store.push(otlpx_any_value {
                array: inner.cast(),
                array_len: 1,
                ..any(otlpx_value_type::Array)
            });
        }
        *store.last().unwrap()
    }

    #[test]
    fn depth_and_size_are_bounded() {
        use crate::types::{OTLPX_MAX_BODY_DEPTH, OTLPX_MAX_BODY_VALUES};
        let max = OTLPX_MAX_BODY_DEPTH as usize;
        let mut store = Vec::new();
        let ok = chain(max, any_int(42), &mut store);
        assert!(body_text(&ok).unwrap().contains("I64(42)"));
        let deep = chain(max + 1, any_int(42), &mut store);
        assert_eq!(body_text(&deep), Err(otlpx_status::InvalidArgument));
        // An empty array or map at the deepest level is fine.
        for t in [otlpx_value_type::Array, otlpx_value_type::Map] {
            let empty = chain(max, any(t), &mut store);
            assert!(body_text(&empty).is_ok());
        }

        // The same pair of arrays repeated: each level doubles the values.
        if !cfg!(miri) {
            // Never reallocated: the pointers into it stay valid.
            let mut levels = Vec::with_capacity(max);
            levels.push([any_int(1), any_int(2)]);
            for _ in 1..max - 1 {
                let below = levels.as_ptr().wrapping_add(levels.len() - 1);
                let a = otlpx_any_value {
                    array: below.cast(),
                    array_len: 2,
                    ..any(otlpx_value_type::Array)
                };
                levels.push([a, a]);
            }
            let root = array_of(otlpx_value_type::Array, levels.last().unwrap());
            // 2^15 leaves + the arrays above them: within the bound.
            assert!(body_text(&root).is_ok());
            let wide: Vec<otlpx_any_value> = vec![root; 64];
            let too_many = array_of(otlpx_value_type::Array, &wide);
            const { assert!(64 << 16 > OTLPX_MAX_BODY_VALUES) };
            assert_eq!(body_text(&too_many), Err(otlpx_status::InvalidArgument));
        }
        let ints = vec![0_i64; OTLPX_MAX_BODY_VALUES as usize];
        let big = array_of(otlpx_value_type::IntArray, &ints);
        assert_eq!(body_text(&big), Err(otlpx_status::InvalidArgument));
    }

    #[test]
    fn bad_bodies_are_refused() {
        let bad_utf8 = [b'a', 0xff];
        let bad = otlpx_str {
            ptr: bad_utf8.as_ptr().cast(),
            len: 2,
        };
        let mut unknown = any_int(1);
        unknown.r#type = 13;
        let mut zero = any_int(1);
        zero.r#type = 0;
        let bad_key = [otlpx_any_key_value {
            key: bad,
            value: any_int(1),
        }];
        let bad_value = [entry(
            "k",
            otlpx_any_value {
                string: bad,
                ..any(otlpx_value_type::String)
            },
        )];
        let in_array = [zero];
        let bad_bools = [2_u8];
        let mut null_array = any(otlpx_value_type::Map);
        null_array.array_len = 1;
        let cases = [
            (unknown, otlpx_status::InvalidArgument),
            (
                array_of(otlpx_value_type::Array, &in_array),
                otlpx_status::InvalidArgument,
            ),
            (
                array_of(otlpx_value_type::Map, &bad_key),
                otlpx_status::InvalidUtf8,
            ),
            (
                array_of(otlpx_value_type::Map, &bad_value),
                otlpx_status::InvalidUtf8,
            ),
            (
                array_of(otlpx_value_type::BoolArray, &bad_bools),
                otlpx_status::InvalidArgument,
            ),
            (null_array, otlpx_status::NullPointer),
        ];
        for (body, want) in cases {
            assert_eq!(body_text(&body), Err(want), "{body:?}");
        }
        // Bytes are any bytes.
        let bytes = otlpx_any_value {
            string: bad,
            ..any(otlpx_value_type::Bytes)
        };
        assert!(body_text(&bytes).is_ok());
        // Neither body type is an attribute type.
        let mut a = attr("a", otlpx_value_type::Array);
        let truncated = AtomicU64::new(0);
        for t in [otlpx_value_type::Array, otlpx_value_type::Map] {
            a.r#type = t as u32;
            // SAFETY: as above.
            let got = unsafe { with_attribute_slice(&[a], None, &truncated, |_| Ok(())) };
            assert_eq!(got, Err(otlpx_status::InvalidArgument));
        }
    }

    #[test]
    fn a_warm_body_arena_keeps_its_capacity() {
        let leaves = [any_int(1), any_str("s"), any_int(3)];
        let entries = [
            entry("a", array_of(otlpx_value_type::Array, &leaves)),
            entry("b", any_int(2)),
        ];
        let body = array_of(otlpx_value_type::Map, &entries);
        let cap = || {
            body_text(&body).unwrap();
            BODY_ARENA.with(|a| {
                let a = a.borrow();
                assert!(a.nodes.is_empty() && a.levels.iter().all(|l| l.0.is_empty()));
                (a.nodes.capacity(), a.nodes.as_ptr(), a.levels[1].1.as_ptr())
            })
        };
        let first = cap();
        assert!(first.0 >= 6);
        assert_eq!(cap(), first, "the same allocations, reused");
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
