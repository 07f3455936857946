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

use crate::value::{KeyValue, Value};
use bytes::BufMut;
use prost::encoding::{encode_varint, encoded_len_varint};

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
    pub(crate) const ANY_BYTES: u8 = key(7, LEN);
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

/// Bytes a varint takes.
#[inline]
pub(crate) fn varint_len(v: u64) -> usize {
    encoded_len_varint(v)
}

/// Bytes a one-byte-key length-delimited field with a `len`-byte body takes.
#[inline]
pub(crate) fn field_len(len: usize) -> usize {
    1 + varint_len(len as u64) + len
}

/// Bytes a one-byte-key varint field takes.
#[inline]
pub(crate) fn varint_field_len(v: u64) -> usize {
    1 + varint_len(v)
}

#[inline]
pub(crate) fn put_varint(buf: &mut impl BufMut, v: u64) {
    encode_varint(v, buf);
}

/// Writes a one-byte key and a length prefix; the body follows.
#[inline]
pub(crate) fn put_len_prefix(buf: &mut impl BufMut, key: u8, len: usize) {
    buf.put_u8(key);
    put_varint(buf, len as u64);
}

#[inline]
pub(crate) fn put_bytes_field(buf: &mut impl BufMut, key: u8, bytes: &[u8]) {
    put_len_prefix(buf, key, bytes.len());
    buf.put_slice(bytes);
}

#[inline]
pub(crate) fn put_varint_field(buf: &mut impl BufMut, key: u8, v: u64) {
    buf.put_u8(key);
    put_varint(buf, v);
}

#[inline]
pub(crate) fn put_fixed64_field(buf: &mut impl BufMut, key: u8, v: u64) {
    buf.put_u8(key);
    buf.put_u64_le(v);
}

/// Truncates `s` to at most `max_chars` characters, as the attribute value
/// length limit asks (counting each character as 1).
#[inline]
pub(crate) fn truncate_str(s: &str, max_chars: usize) -> &str {
    // A string of at most `max_chars` bytes has at most that many chars.
    if s.len() <= max_chars {
        return s;
    }
    match s.char_indices().nth(max_chars) {
        Some((at, _)) => &s[..at],
        None => s,
    }
}

#[inline]
fn truncate_bytes(b: &[u8], max: usize) -> &[u8] {
    &b[..b.len().min(max)]
}

/// Length of the `ArrayValue` body of an array value (0 for a primitive).
fn array_body_len(v: &Value<'_>, max_len: usize) -> usize {
    use Value::*;
    let elem = |e: Value<'_>| field_len(any_value_len(&e, max_len));
    match *v {
        Str(_) | Bool(_) | I64(_) | F64(_) | Bytes(_) => 0,
        StrArray(a) => a.iter().map(|&s| elem(Str(s))).sum(),
        BoolArray(a) => a.len() * field_len(2),
        I64Array(a) => a.iter().map(|&i| elem(I64(i))).sum(),
        F64Array(a) => a.len() * field_len(9),
        BytesArray(a) => a.iter().map(|&b| elem(Bytes(b))).sum(),
    }
}

/// Length of the `AnyValue` message for `v`, with strings and bytes cut to
/// `max_len` (each element of an array separately).
pub(crate) fn any_value_len(v: &Value<'_>, max_len: usize) -> usize {
    use Value::*;
    match *v {
        Str(s) => field_len(truncate_str(s, max_len).len()),
        Bool(_) => 2,
        I64(i) => varint_field_len(i as u64),
        F64(_) => 9,
        Bytes(b) => field_len(truncate_bytes(b, max_len).len()),
        _ => field_len(array_body_len(v, max_len)),
    }
}

/// Writes the `AnyValue` message for `v` (its body, without key or length).
pub(crate) fn put_any_value(buf: &mut impl BufMut, v: &Value<'_>, max_len: usize) {
    use Value::*;
    fn elems<T>(
        buf: &mut impl BufMut,
        body: usize,
        max_len: usize,
        items: &[T],
        one: impl Fn(&T) -> Value<'_>,
    ) {
        put_len_prefix(buf, common::ANY_ARRAY, body);
        for item in items {
            let e = one(item);
            put_len_prefix(buf, common::ARRAY_VALUES, any_value_len(&e, max_len));
            put_any_value(buf, &e, max_len);
        }
    }
    let body = array_body_len(v, max_len);
    match *v {
        Str(s) => put_bytes_field(buf, common::ANY_STRING, truncate_str(s, max_len).as_bytes()),
        Bool(b) => put_varint_field(buf, common::ANY_BOOL, u64::from(b)),
        I64(i) => put_varint_field(buf, common::ANY_INT, i as u64),
        F64(f) => put_fixed64_field(buf, common::ANY_DOUBLE, f.to_bits()),
        Bytes(b) => put_bytes_field(buf, common::ANY_BYTES, truncate_bytes(b, max_len)),
        StrArray(a) => elems(buf, body, max_len, a, |&s| Str(s)),
        BoolArray(a) => elems(buf, body, max_len, a, |&b| Bool(b)),
        I64Array(a) => elems(buf, body, max_len, a, |&i| I64(i)),
        F64Array(a) => elems(buf, body, max_len, a, |&f| F64(f)),
        BytesArray(a) => elems(buf, body, max_len, a, |&b| Bytes(b)),
    }
}

/// Length of a `KeyValue` message body.
#[inline]
pub(crate) fn key_value_len(key: &str, v: &Value<'_>, max_len: usize) -> usize {
    field_len(key.len()) + field_len(any_value_len(v, max_len))
}

/// Writes a `KeyValue` message body.
#[inline]
pub(crate) fn put_key_value(buf: &mut impl BufMut, key: &str, v: &Value<'_>, max_len: usize) {
    put_bytes_field(buf, common::KV_KEY, key.as_bytes());
    put_len_prefix(buf, common::KV_VALUE, any_value_len(v, max_len));
    put_any_value(buf, v, max_len);
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

/// Length of the repeated `KeyValue` fields (key byte `field_key`) for the
/// kept attributes of `attrs`, and how many the count limit drops.
pub(crate) fn attributes_len(
    attrs: &[KeyValue<'_>],
    max_count: usize,
    max_len: usize,
) -> (usize, u32) {
    let mut len = 0;
    let dropped = for_each_kept(attrs, max_count, |kv| {
        len += field_len(key_value_len(kv.key, &kv.value, max_len));
    });
    (len, dropped)
}

/// Writes the kept attributes of `attrs` as repeated `KeyValue` fields.
pub(crate) fn put_attributes(
    buf: &mut impl BufMut,
    field_key: u8,
    attrs: &[KeyValue<'_>],
    max_count: usize,
    max_len: usize,
) {
    for_each_kept(attrs, max_count, |kv| {
        put_len_prefix(buf, field_key, key_value_len(kv.key, &kv.value, max_len));
        put_key_value(buf, kv.key, &kv.value, max_len);
    });
}
