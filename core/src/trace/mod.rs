//! Recording spans: the tracing API an application calls, and the one-pass
//! write of each finished span's OTLP `Span` message into a ring slot.
//!
//! A live [`Span`] encodes each attribute, event and link into protobuf the
//! moment it is set, into a scratch buffer taken from a per-thread pool; at
//! [`Span::end`] the span's own fields are written around that body straight
//! into the reserved ring slot. Nothing is encoded twice and, once the pool is
//! warm, nothing is allocated. [`Tracer::record_span`] takes the same path for
//! spans finished elsewhere (the C ABI, SDK adapters).
//!
//! Invariants of the scratch body: it holds only complete `Span` fields
//! (name excluded), so it can be copied verbatim; `attrs` lists the
//! attribute fields in body order with their key position, so a repeated key
//! replaces its earlier value (the spec's "setting an attribute with the same
//! key overwrites").
//!
//! Whether a span records is decided at start by the engine's sampler
//! ([`crate::sample`]); an unsampled span, or any span of a disabled engine
//! (`OTEL_SDK_DISABLED`), records nothing and costs next to nothing.
//!
//! The front door is two files: `api.rs`, the types an application calls
//! ([`Tracer`], [`SpanBuilder`], [`Span`] and the rest), and this one, the
//! encoding they share (`SpanHead`, the fields written at the end, and
//! `Scratch`, the pooled body). Both stand on `record`,
//! the layer every signal shares: a tracer records through the engine's
//! `Recorder` (its trace rings, clock, span limits and sampler).

use crate::config::SpanLimits;
use crate::context::{SpanId, TraceFlags, TraceId};
use crate::proto::{self, Buf, Enc, Prepared, field_len, trace as f, varint_field_len};
use crate::record::Recorder;
use crate::ring::Signal;
use crate::value::Value;
use std::cell::RefCell;

mod api;

pub use api::{
    ActiveSpan, DetachedSpan, Event, FinishedSpan, Link, Span, SpanBuilder, SpanKind, Status,
    Tracer,
};

impl Recorder {
    /// The largest scratch body a span may grow to: what a ring accepts.
    /// (A record a little over this is refused as too large, and counted.)
    fn max_body_bytes(&self) -> usize {
        self.rings(Signal::Traces).max_payload_bytes()
    }
}

/// The fields of a `Span` message that are written at the end, around the
/// pre-encoded body.
struct SpanHead<'a> {
    trace_id: TraceId,
    span_id: SpanId,
    trace_flags: TraceFlags,
    trace_state: &'a str,
    parent: Option<(SpanId, bool)>,
    name: &'a str,
    kind: SpanKind,
    start: u64,
    end: u64,
    status_code: u8,
    status_message: &'a str,
    dropped_attributes: u32,
    dropped_events: u32,
    dropped_links: u32,
}

/// Bytes of a `uint32` count field, omitted (0 bytes) when zero.
fn count_len(n: u32) -> usize {
    if n == 0 {
        0
    } else {
        varint_field_len(n.into())
    }
}

fn put_count(e: &mut Enc<'_>, key: u8, n: u32) {
    if n != 0 {
        e.varint_field(key, n.into());
    }
}

/// W3C flags plus OTLP's "is the parent remote" bits.
fn span_flags(trace_flags: TraceFlags, remote: bool) -> u32 {
    u32::from(trace_flags.0) | f::FLAGS_HAS_IS_REMOTE | if remote { f::FLAGS_IS_REMOTE } else { 0 }
}

impl SpanHead<'_> {
    fn status_len(&self) -> usize {
        let msg = if self.status_message.is_empty() {
            0
        } else {
            field_len(self.status_message.len())
        };
        msg + if self.status_code == 0 { 0 } else { 2 }
    }

    fn encoded_len(&self) -> usize {
        let status = self.status_len();
        field_len(16)
            + field_len(8)
            + if self.trace_state.is_empty() { 0 } else { field_len(self.trace_state.len()) }
            + if self.parent.is_some() { field_len(8) } else { 0 }
            + 6 // flags: two-byte key + fixed32
            + field_len(self.name.len())
            + 2 // kind: key + one-byte varint
            + 9 // start: key + fixed64
            + 9 // end
            + count_len(self.dropped_attributes)
            + count_len(self.dropped_events)
            + count_len(self.dropped_links)
            + if status == 0 { 0 } else { field_len(status) }
    }

    fn put(&self, e: &mut Enc<'_>) {
        e.bytes_field(f::SPAN_TRACE_ID, &self.trace_id.0);
        e.bytes_field(f::SPAN_SPAN_ID, &self.span_id.0);
        if !self.trace_state.is_empty() {
            e.bytes_field(f::SPAN_TRACE_STATE, self.trace_state.as_bytes());
        }
        if let Some((parent, _)) = self.parent {
            e.bytes_field(f::SPAN_PARENT_SPAN_ID, &parent.0);
        }
        e.bytes(&f::SPAN_FLAGS);
        let remote = self.parent.is_some_and(|(_, remote)| remote);
        e.bytes(&span_flags(self.trace_flags, remote).to_le_bytes());
        e.bytes_field(f::SPAN_NAME, self.name.as_bytes());
        e.varint_field(f::SPAN_KIND, self.kind as u64);
        e.fixed64_field(f::SPAN_START, self.start);
        e.fixed64_field(f::SPAN_END, self.end);
        put_count(e, f::SPAN_DROPPED_ATTRIBUTES, self.dropped_attributes);
        put_count(e, f::SPAN_DROPPED_EVENTS, self.dropped_events);
        put_count(e, f::SPAN_DROPPED_LINKS, self.dropped_links);
        let status = self.status_len();
        if status != 0 {
            e.len_prefix(f::SPAN_STATUS, status);
            if !self.status_message.is_empty() {
                e.bytes_field(f::STATUS_MESSAGE, self.status_message.as_bytes());
            }
            if self.status_code != 0 {
                e.varint_field(f::STATUS_CODE, self.status_code.into());
            }
        }
    }
}

/// Where an attribute field sits in the scratch body.
#[derive(Clone, Copy)]
struct AttrSlot {
    start: u32,
    len: u32,
    key_at: u32,
    key_len: u32,
}

/// A span's growing encoded body, its side tables and drop counts; pooled
/// per thread so a warm thread records without allocating.
#[derive(Default)]
struct Scratch {
    body: Buf,
    attrs: Vec<AttrSlot>,
    name: String,
    status: String,
    events: u32,
    links: u32,
    dropped_attributes: u32,
    dropped_events: u32,
    dropped_links: u32,
}

/// Scratch buffers a thread keeps for its next spans: enough for deep
/// nesting, few enough to bound memory.
const POOL_SCRATCH_MAX: usize = 32;
/// A scratch whose body grew past this is freed rather than pooled, so one
/// huge span does not pin memory for the thread's lifetime.
const POOL_BODY_BYTES_MAX: usize = 64 << 10;

thread_local! {
    static POOL: RefCell<Vec<Scratch>> = const { RefCell::new(Vec::new()) };
}

impl Scratch {
    fn take() -> Self {
        POOL.try_with(|p| p.borrow_mut().pop())
            .ok()
            .flatten()
            .unwrap_or_default()
    }

    fn give_back(mut self) {
        if self.body.capacity() > POOL_BODY_BYTES_MAX {
            return;
        }
        self.body.clear();
        self.attrs.clear();
        self.name.clear();
        self.status.clear();
        self.events = 0;
        self.links = 0;
        self.dropped_attributes = 0;
        self.dropped_events = 0;
        self.dropped_links = 0;
        // During thread teardown the pool is gone: the scratch is just freed.
        let _ = POOL.try_with(|p| {
            let mut p = p.borrow_mut();
            if p.len() < POOL_SCRATCH_MAX {
                p.push(self);
            }
        });
    }

    /// Sets an attribute: replaces a same-key one, else appends within the
    /// count limit and `max_bytes` of body.
    fn set_attribute(
        &mut self,
        key: &str,
        value: &Value<'_>,
        limits: &SpanLimits,
        max_bytes: usize,
    ) {
        let existing = self.attrs.iter().position(|a| {
            a.key_len as usize == key.len()
                && self.body.get(a.key_at as usize, key.len()) == key.as_bytes()
        });
        if let Some(i) = existing {
            let old = self.attrs.remove(i);
            self.body
                .remove(old.start as usize..(old.start + old.len) as usize);
            for later in &mut self.attrs[i..] {
                later.start -= old.len;
                later.key_at -= old.len;
            }
        } else if self.attrs.len() >= limits.max_attributes_per_span as usize {
            self.dropped_attributes = self.dropped_attributes.saturating_add(1);
            return;
        }
        let max_len = limits.value_len();
        let value = Prepared::new(value, max_len);
        let kv_len = proto::key_value_len(key, &value);
        let len = field_len(kv_len);
        if self.body.len() + len > max_bytes {
            self.dropped_attributes = self.dropped_attributes.saturating_add(1);
            return;
        }
        let start = self.body.len();
        // The key's bytes follow the field's key and length, then the
        // key's own tag and length.
        let key_at = start + (len - kv_len) + 1 + proto::varint_len(key.len() as u64);
        let mut e = self.body.append(len);
        proto::put_key_value_field(&mut e, f::SPAN_ATTRIBUTES, kv_len, key, &value, max_len);
        // Fits in u32: the body never exceeds a ring's max payload (< 2^29).
        self.attrs.push(AttrSlot {
            start: start as u32,
            len: len as u32,
            key_at: key_at as u32,
            key_len: key.len() as u32,
        });
    }

    fn add_event(&mut self, e: &Event<'_>, limits: &SpanLimits, max_bytes: usize) {
        let max_len = limits.value_len();
        let max_count = limits.max_attributes_per_event as usize;
        let (attrs_len, dropped) = proto::attributes_len(e.attributes, max_count, max_len);
        let dropped = dropped.saturating_add(e.dropped_attributes_count);
        let len = 9 + field_len(e.name.len()) + attrs_len + count_len(dropped);
        if self.events >= limits.max_events_per_span || self.body.len() + field_len(len) > max_bytes
        {
            self.dropped_events = self.dropped_events.saturating_add(1);
            return;
        }
        self.events += 1;
        let mut b = self.body.append(field_len(len));
        b.len_prefix(f::SPAN_EVENTS, len);
        b.fixed64_field(f::EVENT_TIME, e.time_unix_nano);
        b.bytes_field(f::EVENT_NAME, e.name.as_bytes());
        proto::put_attributes(
            &mut b,
            f::EVENT_ATTRIBUTES,
            e.attributes,
            max_count,
            max_len,
        );
        put_count(&mut b, f::EVENT_DROPPED_ATTRIBUTES, dropped);
        debug_assert!(b.is_full());
    }

    fn add_link(&mut self, l: &Link<'_>, limits: &SpanLimits, max_bytes: usize) {
        let max_len = limits.value_len();
        let max_count = limits.max_attributes_per_link as usize;
        let (attrs_len, dropped) = proto::attributes_len(l.attributes, max_count, max_len);
        let dropped = dropped.saturating_add(l.dropped_attributes_count);
        let state = if l.trace_state.is_empty() {
            0
        } else {
            field_len(l.trace_state.len())
        };
        let len = field_len(16) + field_len(8) + state + attrs_len + count_len(dropped) + 5;
        if self.links >= limits.max_links_per_span || self.body.len() + field_len(len) > max_bytes {
            self.dropped_links = self.dropped_links.saturating_add(1);
            return;
        }
        self.links += 1;
        let mut b = self.body.append(field_len(len));
        b.len_prefix(f::SPAN_LINKS, len);
        b.bytes_field(f::LINK_TRACE_ID, &l.trace_id.0);
        b.bytes_field(f::LINK_SPAN_ID, &l.span_id.0);
        if !l.trace_state.is_empty() {
            b.bytes_field(f::LINK_TRACE_STATE, l.trace_state.as_bytes());
        }
        proto::put_attributes(&mut b, f::LINK_ATTRIBUTES, l.attributes, max_count, max_len);
        put_count(&mut b, f::LINK_DROPPED_ATTRIBUTES, dropped);
        b.byte(f::LINK_FLAGS);
        b.bytes(&span_flags(l.trace_flags, l.is_remote).to_le_bytes());
        debug_assert!(b.is_full());
    }
}
