//! The protobuf wire format, as much of it as OTLP needs, written by hand.
//!
//! Field numbers come from the opentelemetry-proto `.proto` files named on
//! each constant group. Messages are written in one pass: a caller first
//! asks for a message's exact length (`*_len`), then writes it (`put_*`),
//! so nested length prefixes are known before the bytes they prefix.
//! Golden tests decode what these functions write with the official
//! generated types.
//!
//! Every key here is a single byte (field numbers below 16) except
//! `Span.flags` (field 16), which has its own two-byte constant.
//!
//! Writing goes through [`Enc`], a cursor over a slice sized exactly for the
//! message: plain stores, no capacity check or trait call per byte as with
//! the generic `BufMut` path it replaced on the recording path.

use crate::value::{KeyValue, Value};
use prost::encoding::encoded_len_varint;

/// A field key byte: `(field << 3) | wire_type`, for fields 1..=15.
const fn key(field: u8, wire_type: u8) -> u8 {
    (field << 3) | wire_type
}
const VARINT: u8 = 0;
const I64: u8 = 1;
const LEN: u8 = 2;
const I32: u8 = 5;

/// `opentelemetry/proto/common/v1/common.proto`
pub(crate) mod common {
    use super::*;
    pub(crate) const ANY_STRING: u8 = key(1, LEN);
    pub(crate) const ANY_BOOL: u8 = key(2, VARINT);
    pub(crate) const ANY_INT: u8 = key(3, VARINT);
    pub(crate) const ANY_DOUBLE: u8 = key(4, I64);
    pub(crate) const ANY_ARRAY: u8 = key(5, LEN);
    pub(crate) const ANY_KVLIST: u8 = key(6, LEN);
    pub(crate) const ANY_BYTES: u8 = key(7, LEN);
    pub(crate) const KVLIST_VALUES: u8 = key(1, LEN);
    pub(crate) const ARRAY_VALUES: u8 = key(1, LEN);
    pub(crate) const KV_KEY: u8 = key(1, LEN);
    pub(crate) const KV_VALUE: u8 = key(2, LEN);
    pub(crate) const SCOPE_NAME: u8 = key(1, LEN);
    pub(crate) const SCOPE_VERSION: u8 = key(2, LEN);
    pub(crate) const SCOPE_ATTRIBUTES: u8 = key(3, LEN);
}

/// `opentelemetry/proto/resource/v1/resource.proto`
pub(crate) mod resource {
    use super::*;
    pub(crate) const ATTRIBUTES: u8 = key(1, LEN);
}

/// `opentelemetry/proto/trace/v1/trace.proto` and
/// `opentelemetry/proto/collector/trace/v1/trace_service.proto`
pub(crate) mod trace {
    use super::*;
    pub(crate) const REQUEST_RESOURCE_SPANS: u8 = key(1, LEN);
    pub(crate) const RESOURCE_SPANS_RESOURCE: u8 = key(1, LEN);
    pub(crate) const RESOURCE_SPANS_SCOPE_SPANS: u8 = key(2, LEN);
    pub(crate) const SCOPE_SPANS_SCOPE: u8 = key(1, LEN);
    pub(crate) const SCOPE_SPANS_SPANS: u8 = key(2, LEN);
    pub(crate) const SCOPE_SPANS_SCHEMA_URL: u8 = key(3, LEN);

    pub(crate) const SPAN_TRACE_ID: u8 = key(1, LEN);
    pub(crate) const SPAN_SPAN_ID: u8 = key(2, LEN);
    pub(crate) const SPAN_TRACE_STATE: u8 = key(3, LEN);
    pub(crate) const SPAN_PARENT_SPAN_ID: u8 = key(4, LEN);
    pub(crate) const SPAN_NAME: u8 = key(5, LEN);
    pub(crate) const SPAN_KIND: u8 = key(6, VARINT);
    pub(crate) const SPAN_START: u8 = key(7, I64);
    pub(crate) const SPAN_END: u8 = key(8, I64);
    pub(crate) const SPAN_ATTRIBUTES: u8 = key(9, LEN);
    pub(crate) const SPAN_DROPPED_ATTRIBUTES: u8 = key(10, VARINT);
    pub(crate) const SPAN_EVENTS: u8 = key(11, LEN);
    pub(crate) const SPAN_DROPPED_EVENTS: u8 = key(12, VARINT);
    pub(crate) const SPAN_LINKS: u8 = key(13, LEN);
    pub(crate) const SPAN_DROPPED_LINKS: u8 = key(14, VARINT);
    pub(crate) const SPAN_STATUS: u8 = key(15, LEN);
    /// Field 16, fixed32: needs a two-byte varint key.
    pub(crate) const SPAN_FLAGS: [u8; 2] = [(16 << 3 | I32) | 0x80, 0x01];

    pub(crate) const EVENT_TIME: u8 = key(1, I64);
    pub(crate) const EVENT_NAME: u8 = key(2, LEN);
    pub(crate) const EVENT_ATTRIBUTES: u8 = key(3, LEN);
    pub(crate) const EVENT_DROPPED_ATTRIBUTES: u8 = key(4, VARINT);

    pub(crate) const LINK_TRACE_ID: u8 = key(1, LEN);
    pub(crate) const LINK_SPAN_ID: u8 = key(2, LEN);
    pub(crate) const LINK_TRACE_STATE: u8 = key(3, LEN);
    pub(crate) const LINK_ATTRIBUTES: u8 = key(4, LEN);
    pub(crate) const LINK_DROPPED_ATTRIBUTES: u8 = key(5, VARINT);
    pub(crate) const LINK_FLAGS: u8 = key(6, I32);

    pub(crate) const STATUS_MESSAGE: u8 = key(2, LEN);
    pub(crate) const STATUS_CODE: u8 = key(3, VARINT);

    /// `SPAN_FLAGS_CONTEXT_HAS_IS_REMOTE_MASK`: bit 9 below is meaningful.
    pub(crate) const FLAGS_HAS_IS_REMOTE: u32 = 0x100;
    /// `SPAN_FLAGS_CONTEXT_IS_REMOTE_MASK`: the parent (or linked) context
    /// came from another process.
    pub(crate) const FLAGS_IS_REMOTE: u32 = 0x200;
}

/// `opentelemetry/proto/logs/v1/logs.proto` (the request, resource and
/// scope levels share the trace constants' numbers: see `crate::export::frame`)
pub(crate) mod logs {
    use super::*;
    pub(crate) const SCOPE_LOGS_LOG_RECORDS: u8 = key(2, LEN);

    pub(crate) const TIME: u8 = key(1, I64);
    pub(crate) const SEVERITY_NUMBER: u8 = key(2, VARINT);
    pub(crate) const SEVERITY_TEXT: u8 = key(3, LEN);
    pub(crate) const BODY: u8 = key(5, LEN);
    pub(crate) const ATTRIBUTES: u8 = key(6, LEN);
    pub(crate) const DROPPED_ATTRIBUTES: u8 = key(7, VARINT);
    pub(crate) const FLAGS: u8 = key(8, I32);
    pub(crate) const TRACE_ID: u8 = key(9, LEN);
    pub(crate) const SPAN_ID: u8 = key(10, LEN);
    pub(crate) const OBSERVED_TIME: u8 = key(11, I64);
    pub(crate) const EVENT_NAME: u8 = key(12, LEN);
}

/// Bytes a varint takes. Lengths below 128, nearly all of them, take one
/// compare instead of prost's `ilog2` arithmetic.
#[inline(always)]
pub(crate) fn varint_len(v: u64) -> usize {
    if v < 0x80 { 1 } else { encoded_len_varint(v) }
}

/// Bytes a one-byte-key length-delimited field with a `len`-byte body takes.
#[inline(always)]
pub(crate) fn field_len(len: usize) -> usize {
    1 + varint_len(len as u64) + len
}

/// Bytes a one-byte-key varint field takes.
#[inline]
pub(crate) fn varint_field_len(v: u64) -> usize {
    1 + varint_len(v)
}

/// A write cursor over a slice sized exactly for what is written into it.
/// Writing past the end is a bug in a length computation and panics (the
/// ring then commits the record as discarded and counts it).
pub(crate) struct Enc<'a> {
    buf: &'a mut [u8],
    pos: usize,
}

impl<'a> Enc<'a> {
    #[inline]
    pub(crate) fn new(buf: &'a mut [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    /// Grows `v` by `len` bytes and returns a cursor over them.
    #[inline]
    pub(crate) fn append(v: &'a mut Vec<u8>, len: usize) -> Self {
        let start = v.len();
        v.resize(start + len, 0);
        Self::new(&mut v[start..])
    }

    /// Whether every byte of the slice has been written.
    #[inline]
    pub(crate) fn is_full(&self) -> bool {
        self.pos == self.buf.len()
    }

    #[inline(always)]
    pub(crate) fn byte(&mut self, b: u8) {
        self.buf[self.pos] = b;
        self.pos += 1;
    }

    #[inline(always)]
    pub(crate) fn varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.byte(v as u8 | 0x80);
            v >>= 7;
        }
        self.byte(v as u8);
    }

    #[inline(always)]
    pub(crate) fn bytes(&mut self, b: &[u8]) {
        copy(&mut self.buf[self.pos..self.pos + b.len()], b);
        self.pos += b.len();
    }

    /// A one-byte key and a length; the body follows.
    #[inline(always)]
    pub(crate) fn len_prefix(&mut self, key: u8, len: usize) {
        if len < 0x80 {
            // The usual case: one two-byte store instead of a varint loop.
            self.bytes(&[key, len as u8]);
        } else {
            self.byte(key);
            self.varint(len as u64);
        }
    }

    #[inline(always)]
    pub(crate) fn bytes_field(&mut self, key: u8, b: &[u8]) {
        self.len_prefix(key, b.len());
        self.bytes(b);
    }

    #[inline(always)]
    pub(crate) fn varint_field(&mut self, key: u8, v: u64) {
        self.byte(key);
        self.varint(v);
    }

    #[inline(always)]
    pub(crate) fn fixed64_field(&mut self, key: u8, v: u64) {
        self.byte(key);
        self.bytes(&v.to_le_bytes());
    }
}

/// Copies `src` into `dst` (same length). Keys and values are mostly short:
/// up to 32 bytes, two overlapping fixed-size moves replace a `memcpy` call.
#[inline(always)]
fn copy(dst: &mut [u8], src: &[u8]) {
    let n = src.len();
    debug_assert_eq!(dst.len(), n);
    if (16..=32).contains(&n) {
        dst[..16].copy_from_slice(&src[..16]);
        dst[n - 16..].copy_from_slice(&src[n - 16..]);
    } else if (8..16).contains(&n) {
        dst[..8].copy_from_slice(&src[..8]);
        dst[n - 8..].copy_from_slice(&src[n - 8..]);
    } else if (4..8).contains(&n) {
        dst[..4].copy_from_slice(&src[..4]);
        dst[n - 4..].copy_from_slice(&src[n - 4..]);
    } else {
        dst.copy_from_slice(src);
    }
}

/// A reusable encoding buffer: its bytes are zero-filled when it grows and
/// then reused, so appending hands out initialised bytes without a memset
/// per write. Only `..len` is meaningful.
#[derive(Default)]
pub(crate) struct Buf {
    bytes: Vec<u8>,
    len: usize,
}

impl Buf {
    /// The bytes written.
    #[inline]
    pub(crate) fn as_slice(&self) -> &[u8] {
        &self.bytes[..self.len]
    }

    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Bytes held, for pooling decisions.
    pub(crate) fn capacity(&self) -> usize {
        self.bytes.len()
    }

    #[inline]
    pub(crate) fn clear(&mut self) {
        self.len = 0;
    }

    /// Appends `n` bytes and returns a cursor over them.
    #[inline]
    pub(crate) fn append(&mut self, n: usize) -> Enc<'_> {
        let end = self.len + n;
        if end > self.bytes.len() {
            self.bytes.resize(end.max(2 * self.bytes.len()).max(256), 0);
        }
        let start = std::mem::replace(&mut self.len, end);
        Enc::new(&mut self.bytes[start..end])
    }

    /// Removes `range`, moving what follows it down.
    pub(crate) fn remove(&mut self, range: std::ops::Range<usize>) {
        self.bytes.copy_within(range.end..self.len, range.start);
        self.len -= range.len();
    }

    /// `n` bytes at `at`.
    #[inline]
    pub(crate) fn get(&self, at: usize, n: usize) -> &[u8] {
        &self.bytes[at..at + n]
    }
}

/// Truncates `s` to at most `max_chars` characters, as the attribute value
/// length limit asks (counting each character as 1).
#[inline(always)]
pub(crate) fn truncate_str(s: &str, max_chars: usize) -> &str {
    // A string of at most `max_chars` bytes has at most that many chars.
    if s.len() <= max_chars {
        s
    } else {
        truncate_chars(s, max_chars)
    }
}

#[cold]
fn truncate_chars(s: &str, max_chars: usize) -> &str {
    match s.char_indices().nth(max_chars) {
        Some((at, _)) => &s[..at],
        None => s,
    }
}

#[inline]
fn truncate_bytes(b: &[u8], max: usize) -> &[u8] {
    &b[..b.len().min(max)]
}

/// A value with the length limit applied and its `AnyValue` length known:
/// computed once, then written.
#[derive(Clone, Copy)]
pub(crate) struct Prepared<'a> {
    value: Value<'a>,
    /// `AnyValue` body length.
    len: usize,
    /// For arrays, the `ArrayValue` body length.
    array_len: usize,
}

impl<'a> Prepared<'a> {
    #[inline(always)]
    pub(crate) fn new(v: &Value<'a>, max_len: usize) -> Self {
        use Value::*;
        let (value, len) = match *v {
            Str(s) => {
                let s = truncate_str(s, max_len);
                (Str(s), field_len(s.len()))
            }
            Bool(_) => (*v, 2),
            I64(i) => (*v, varint_field_len(i as u64)),
            U64(u) => match i64::try_from(u) {
                Ok(i) => (I64(i), varint_field_len(u)),
                Err(_) => return Self::decimal(u),
            },
            F64(_) => (*v, 9),
            Bytes(b) => {
                let b = truncate_bytes(b, max_len);
                (Bytes(b), field_len(b.len()))
            }
            _ => return Self::array(v, max_len),
        };
        Self {
            value,
            len,
            array_len: 0,
        }
    }

    /// An unsigned value as its decimal digits, a string. `put` writes any
    /// `U64` it holds this way: `new` turns those that fit into `I64`.
    #[cold]
    fn decimal(u: u64) -> Self {
        Self {
            value: Value::U64(u),
            len: field_len(Decimal::new(u).as_bytes().len()),
            array_len: 0,
        }
    }

    /// An array item: as [`new`](Self::new), except that unsigned items
    /// are strings when `strings` (see [`unsigned_as_strings`]).
    fn item(v: &Value<'a>, max_len: usize, strings: bool) -> Self {
        match *v {
            Value::U64(u) if strings => Self::decimal(u),
            _ => Self::new(v, max_len),
        }
    }

    /// Arrays are rare: kept out of line so the scalar path stays small
    /// enough to inline into the recording call.
    #[cold]
    #[inline(never)]
    fn array(v: &Value<'a>, max_len: usize) -> Self {
        use Value::*;
        let elem = |e: Value<'_>| field_len(Prepared::new(&e, max_len).len);
        let body = match *v {
            StrArray(a) => a.iter().map(|&s| elem(Str(s))).sum(),
            BoolArray(a) => a.len() * field_len(2),
            I64Array(a) => a.iter().map(|&i| elem(I64(i))).sum(),
            F64Array(a) => a.len() * field_len(9),
            BytesArray(a) => a.iter().map(|&b| elem(Bytes(b))).sum(),
            Array(a) => {
                let strings = unsigned_as_strings(&a);
                a.iter()
                    .map(|e| field_len(Prepared::item(&e, max_len, strings).len))
                    .sum()
            }
            Str(_) | Bool(_) | I64(_) | U64(_) | F64(_) | Bytes(_) => 0,
        };
        Self {
            value: *v,
            len: field_len(body),
            array_len: body,
        }
    }

    /// The `AnyValue` message length.
    #[inline(always)]
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Writes the `AnyValue` body.
    #[inline(always)]
    pub(crate) fn put(&self, e: &mut Enc<'_>, max_len: usize) {
        use Value::*;
        match self.value {
            Str(s) => e.bytes_field(common::ANY_STRING, s.as_bytes()),
            Bool(b) => {
                e.byte(common::ANY_BOOL);
                e.byte(u8::from(b));
            }
            I64(i) => e.varint_field(common::ANY_INT, i as u64),
            // Only above i64::MAX: `new` made the others `I64`.
            U64(u) => e.bytes_field(common::ANY_STRING, Decimal::new(u).as_bytes()),
            F64(f) => e.fixed64_field(common::ANY_DOUBLE, f.to_bits()),
            Bytes(b) => e.bytes_field(common::ANY_BYTES, b),
            _ => self.put_array(e, max_len),
        }
    }

    #[cold]
    #[inline(never)]
    fn put_array(&self, e: &mut Enc<'_>, max_len: usize) {
        use Value::*;
        fn elems<'v>(
            e: &mut Enc<'_>,
            body: usize,
            max_len: usize,
            items: impl Iterator<Item = Value<'v>>,
            strings: bool,
        ) {
            e.len_prefix(common::ANY_ARRAY, body);
            for item in items {
                let p = Prepared::item(&item, max_len, strings);
                e.len_prefix(common::ARRAY_VALUES, p.len);
                p.put(e, max_len);
            }
        }
        match self.value {
            StrArray(a) => elems(e, self.array_len, max_len, a.iter().map(|&s| Str(s)), false),
            BoolArray(a) => elems(
                e,
                self.array_len,
                max_len,
                a.iter().map(|&b| Bool(b)),
                false,
            ),
            I64Array(a) => elems(e, self.array_len, max_len, a.iter().map(|&i| I64(i)), false),
            F64Array(a) => elems(e, self.array_len, max_len, a.iter().map(|&f| F64(f)), false),
            BytesArray(a) => elems(
                e,
                self.array_len,
                max_len,
                a.iter().map(|&b| Bytes(b)),
                false,
            ),
            Array(a) => elems(
                e,
                self.array_len,
                max_len,
                a.iter(),
                unsigned_as_strings(&a),
            ),
            Str(_) | Bool(_) | I64(_) | U64(_) | F64(_) | Bytes(_) => self.put(e, max_len),
        }
    }
}

/// The decimal digits of a `u64`, on the stack: how an unsigned value that
/// OTLP's signed ints cannot hold is sent.
struct Decimal {
    digits: [u8; 20],
    start: usize,
}

impl Decimal {
    fn new(mut v: u64) -> Self {
        let mut d = Self {
            digits: [b'0'; 20],
            start: 20,
        };
        loop {
            d.start -= 1;
            d.digits[d.start] = b'0' + (v % 10) as u8;
            v /= 10;
            if v == 0 {
                return d;
            }
        }
    }

    fn as_bytes(&self) -> &[u8] {
        &self.digits[self.start..]
    }
}

/// Whether an array holds an unsigned value above `i64::MAX`: then all its
/// unsigned items go as strings, so that the array stays homogeneous.
#[cold]
fn unsigned_as_strings(a: &crate::value::Array<'_>) -> bool {
    a.iter()
        .any(|v| matches!(v, Value::U64(u) if i64::try_from(u).is_err()))
}

/// An `AnyValue` body for `v`, in a new buffer (setup paths only).
pub(crate) fn any_value_bytes(v: &Value<'_>, max_len: usize) -> Vec<u8> {
    let p = Prepared::new(v, max_len);
    let mut out = Vec::new();
    p.put(&mut Enc::append(&mut out, p.len()), max_len);
    out
}

/// Length of a `KeyValue` message body whose value is prepared.
#[inline(always)]
pub(crate) fn key_value_len(key: &str, v: &Prepared<'_>) -> usize {
    field_len(key.len()) + field_len(v.len())
}

/// Writes a repeated `KeyValue` field (key byte `field_key`, message length
/// `kv_len` from [`key_value_len`]). A field under 128 bytes, the usual
/// case, has one-byte lengths throughout: its four leading bytes are one
/// store.
#[inline(always)]
pub(crate) fn put_key_value_field(
    e: &mut Enc<'_>,
    field_key: u8,
    kv_len: usize,
    key: &str,
    v: &Prepared<'_>,
    max_len: usize,
) {
    if kv_len < 0x80 {
        // kv_len bounds the key's and the value's lengths too.
        e.bytes(&[field_key, kv_len as u8, common::KV_KEY, key.len() as u8]);
        e.bytes(key.as_bytes());
    } else {
        e.len_prefix(field_key, kv_len);
        e.bytes_field(common::KV_KEY, key.as_bytes());
    }
    e.len_prefix(common::KV_VALUE, v.len());
    v.put(e, max_len);
}

/// Attributes encoded as they come, as repeated `KeyValue` fields, into a
/// buffer a thread reuses: for callers that learn each value's type as
/// they visit it (the `tracing` integration's field visitor), so that a
/// value is matched, sized and written once, and a record then copies the
/// bytes. What a slice of attributes gets from [`for_each_kept`] (a key
/// given twice keeps its last value; past the count limit, the first ones
/// are kept) these get from [`settle`](Self::settle).
// Used by the `tracing` integration only (so far).
#[cfg_attr(not(feature = "tracing"), allow(dead_code))]
#[derive(Default)]
pub(crate) struct EncodedAttributes {
    bytes: Buf,
    count: usize,
}

impl std::fmt::Debug for EncodedAttributes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EncodedAttributes")
            .field("count", &self.count)
            .field("bytes", &self.as_bytes().len())
            .finish()
    }
}

// Used by the `tracing` integration only (so far).
#[cfg_attr(not(feature = "tracing"), allow(dead_code))]
impl EncodedAttributes {
    pub(crate) fn clear(&mut self) {
        self.bytes.clear();
        self.count = 0;
    }

    /// Bytes held, for pooling decisions.
    pub(crate) fn capacity(&self) -> usize {
        self.bytes.capacity()
    }

    /// Appends `key` = `value` (length limit `max_len` applied) as a
    /// field keyed `field_key`. Inlined: a caller that knows the value's
    /// type has the match on it folded away.
    #[inline(always)]
    pub(crate) fn push(&mut self, field_key: u8, key: &str, value: &Value<'_>, max_len: usize) {
        let v = Prepared::new(value, max_len);
        let kv_len = key_value_len(key, &v);
        let mut e = self.bytes.append(field_len(kv_len));
        put_key_value_field(&mut e, field_key, kv_len, key, &v, max_len);
        self.count += 1;
    }

    /// Appends attributes encoded before (with the same field key).
    #[inline]
    pub(crate) fn extend(&mut self, other: &EncodedAttributes) {
        let src = other.as_bytes();
        self.bytes.append(src.len()).bytes(src);
        self.count += other.count;
    }

    /// How many attributes.
    #[inline]
    pub(crate) fn count(&self) -> usize {
        self.count
    }

    /// The fields written.
    #[inline]
    pub(crate) fn as_bytes(&self) -> &[u8] {
        self.bytes.as_slice()
    }

    /// Applies the rules of [`for_each_kept`]: drops each attribute whose
    /// key comes again later, then those past `max_count`; returns how
    /// many the count limit dropped. `unique`: the caller knows no key
    /// repeats (a `tracing` callsite's field names, checked once), so
    /// that only the count is looked at.
    #[inline]
    pub(crate) fn settle(&mut self, max_count: usize, unique: bool) -> u32 {
        if unique && self.count <= max_count {
            return 0;
        }
        self.settle_slow(max_count)
    }

    #[cold]
    fn settle_slow(&mut self, max_count: usize) -> u32 {
        // Each field: its range in `bytes`, and its key.
        let mut fields = Vec::with_capacity(self.count);
        let mut at = 0;
        while at < self.bytes.len() {
            let field = &self.bytes.as_slice()[at..];
            let (body, prefix) = read_varint(&field[1..]);
            let end = at + 1 + prefix + body;
            fields.push((at..end, key_of_field(&field[..end - at])));
            at = end;
        }
        debug_assert_eq!(fields.len(), self.count);
        let (mut kept, mut dropped) = (0usize, 0u32);
        let mut keep = vec![false; fields.len()];
        for (i, (_, key)) in fields.iter().enumerate() {
            if fields[i + 1..].iter().any(|(_, later)| later == key) {
                continue; // replaced by a later value
            }
            if kept == max_count {
                dropped += 1;
                continue;
            }
            kept += 1;
            keep[i] = true;
        }
        let ranges: Vec<_> = fields.into_iter().map(|(range, _)| range).collect();
        // From the back, so that earlier ranges stay where they are.
        for (range, keep) in ranges.into_iter().zip(keep).rev() {
            if !keep {
                self.bytes.remove(range);
            }
        }
        self.count = kept;
        dropped
    }
}

// Used by the `tracing` integration only (so far).
#[cfg_attr(not(feature = "tracing"), allow(dead_code))]
/// A varint at the start of `b`: its value, and how many bytes it took.
fn read_varint(b: &[u8]) -> (usize, usize) {
    let mut v = 0usize;
    for (i, &byte) in b.iter().enumerate().take(10) {
        v |= usize::from(byte & 0x7f) << (7 * i);
        if byte < 0x80 {
            return (v, i + 1);
        }
    }
    (v, b.len().min(10))
}

// Used by the `tracing` integration only (so far).
#[cfg_attr(not(feature = "tracing"), allow(dead_code))]
/// The key of a `KeyValue` field as [`put_key_value_field`] writes it:
/// the field key, the message length, the key's field key, its length,
/// then the key.
fn key_of_field(field: &[u8]) -> &[u8] {
    let (_, prefix) = read_varint(field.get(1..).unwrap_or(&[]));
    let at = 1 + prefix + 1;
    let (len, prefix) = read_varint(field.get(at..).unwrap_or(&[]));
    field.get(at + prefix..at + prefix + len).unwrap_or(&[])
}

/// Calls `f` for the attributes of `attrs` that an attribute collection
/// keeps: keys are unique (a later value for a key replaces an earlier one)
/// and at most `max_count` are kept, in order. Returns how many were dropped
/// for the count limit.
pub(crate) fn for_each_kept(
    attrs: &[KeyValue<'_>],
    max_count: usize,
    mut f: impl FnMut(&KeyValue<'_>),
) -> u32 {
    let mut kept = 0usize;
    let mut dropped = 0u32;
    for (i, kv) in attrs.iter().enumerate() {
        if attrs[i + 1..].iter().any(|later| later.key == kv.key) {
            continue; // replaced by a later value
        }
        if kept == max_count {
            dropped += 1;
            continue;
        }
        kept += 1;
        f(kv);
    }
    dropped
}

/// The attributes of `attrs` an attribute collection keeps (as
/// [`for_each_kept`] decides), as a bit mask over their indexes, and how
/// many the count limit drops; `None` past 64 attributes. One walk for
/// both the sizing and the writing pass: the duplicate check compares
/// every pair of keys, and was a quarter of a log record's cost when it
/// ran twice.
#[inline]
pub(crate) fn kept_mask(attrs: &[KeyValue<'_>], max_count: usize) -> Option<(u64, u32)> {
    if attrs.len() > 64 {
        return None;
    }
    let mut mask = 0u64;
    let mut i = 0;
    let dropped = for_each_kept(attrs, max_count, |kv| {
        // `for_each_kept` yields in order: find the item's index.
        while !std::ptr::eq(&attrs[i], kv) {
            i += 1;
        }
        mask |= 1 << i;
    });
    Some((mask, dropped))
}

/// Calls `f` for the attributes of `attrs` whose bit is set in `mask`.
#[inline]
pub(crate) fn for_each_masked(attrs: &[KeyValue<'_>], mask: u64, mut f: impl FnMut(&KeyValue<'_>)) {
    let mut left = mask;
    while left != 0 {
        let i = left.trailing_zeros() as usize;
        left &= left - 1;
        f(&attrs[i]);
    }
}

/// Length of the repeated `KeyValue` fields for the kept attributes of
/// `attrs`, and how many the count limit drops.
pub(crate) fn attributes_len(
    attrs: &[KeyValue<'_>],
    max_count: usize,
    max_len: usize,
) -> (usize, u32) {
    let mut len = 0;
    let dropped = for_each_kept(attrs, max_count, |kv| {
        len += field_len(key_value_len(kv.key, &Prepared::new(&kv.value, max_len)));
    });
    (len, dropped)
}

/// Writes the kept attributes of `attrs` as repeated `KeyValue` fields with
/// key byte `field_key`.
pub(crate) fn put_attributes(
    e: &mut Enc<'_>,
    field_key: u8,
    attrs: &[KeyValue<'_>],
    max_count: usize,
    max_len: usize,
) {
    for_each_kept(attrs, max_count, |kv| {
        let v = Prepared::new(&kv.value, max_len);
        put_key_value_field(e, field_key, key_value_len(kv.key, &v), kv.key, &v, max_len);
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Attributes encoded as they come, once settled, are the bytes a
    /// slice of them encodes to: duplicates, the count limit, long values
    /// (two-byte lengths) and the value length limit included.
    #[test]
    fn encoded_attributes_settle_to_what_a_slice_encodes() {
        let long = "x".repeat(300);
        let long = long.as_str();
        fn kv<'a>(key: &'a str, value: Value<'a>) -> KeyValue<'a> {
            KeyValue { key, value }
        }
        let cases: Vec<Vec<KeyValue<'_>>> = vec![
            vec![],
            vec![
                kv("a", Value::I64(1)),
                kv("b", Value::Str("two")),
                kv("c", Value::F64(3.0)),
            ],
            vec![
                kv("a", Value::I64(1)),
                kv("b", Value::Str(long)),
                kv("a", Value::Bool(true)),
                kv("c", Value::U64(u64::MAX)),
                kv("b", Value::Bytes(&[1, 2, 3])),
            ],
            vec![
                kv("x", Value::I64(1)),
                kv("x", Value::I64(2)),
                kv("x", Value::I64(3)),
            ],
            (0..20)
                .map(|i| kv(["k0", "k1", "k2", "k3", "k4"][i % 5], Value::I64(i as i64)))
                .collect(),
        ];
        for attrs in &cases {
            for max_count in [0, 1, 2, 3, 128] {
                for max_len in [2, 64, usize::MAX] {
                    let (len, want_dropped) = attributes_len(attrs, max_count, max_len);
                    let mut want = vec![0; len];
                    put_attributes(&mut Enc::new(&mut want), 0x32, attrs, max_count, max_len);
                    let mut got = EncodedAttributes::default();
                    for a in attrs {
                        got.push(0x32, a.key, &a.value, max_len);
                    }
                    let unique = attrs
                        .iter()
                        .enumerate()
                        .all(|(i, a)| attrs[i + 1..].iter().all(|b| b.key != a.key));
                    let dropped = got.settle(max_count, unique);
                    let case = format!("{attrs:?} max_count {max_count} max_len {max_len}");
                    assert_eq!(got.as_bytes(), &want[..], "{case}");
                    assert_eq!(dropped, want_dropped, "{case}");
                    let distinct = attrs
                        .iter()
                        .enumerate()
                        .filter(|(i, a)| attrs[i + 1..].iter().all(|b| b.key != a.key))
                        .count();
                    assert_eq!(got.count(), distinct.min(max_count), "{case}");
                }
            }
        }
    }

    /// The mask keeps what `for_each_kept` keeps: later duplicates win,
    /// the count limit applies in order.
    #[test]
    fn kept_mask_agrees_with_for_each_kept() {
        let kv = |k: &'static str| KeyValue::new(k, 1);
        let cases: [&[KeyValue<'_>]; 4] = [
            &[],
            &[kv("a"), kv("b"), kv("c")],
            &[kv("a"), kv("b"), kv("a"), kv("c"), kv("b")],
            &[kv("x"), kv("x"), kv("x")],
        ];
        for attrs in cases {
            for max in [0, 1, 2, 3, 128] {
                let mut expected = Vec::new();
                let dropped = for_each_kept(attrs, max, |kv| expected.push(kv.key.to_owned()));
                let (mask, masked_dropped) = kept_mask(attrs, max).unwrap();
                let mut got = Vec::new();
                for_each_masked(attrs, mask, |kv| got.push(kv.key.to_owned()));
                assert_eq!(
                    (got, masked_dropped),
                    (expected, dropped),
                    "{attrs:?} max {max}"
                );
            }
        }
        let many: Vec<KeyValue<'_>> = (0..65).map(|_| kv("k")).collect();
        assert!(kept_mask(&many, 128).is_none());
    }
}
