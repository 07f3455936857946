//! Framing: drained records (already complete OTLP `Span` or `LogRecord`
//! messages) become one `Export*ServiceRequest` of their signal, written
//! into a reused `BytesMut`.
//!
//! ```text
//! ExportTraceServiceRequest       ExportLogsServiceRequest
//!   resource_spans (1)              resource_logs (1)     ── Resource…
//!     resource (1)                    resource (1)        ── precomputed Resource bytes
//!     scope_spans (2)*                scope_logs (2)*     ── one per scope in the batch
//!       scope (1)                       scope (1)         ── precomputed InstrumentationScope
//!       spans (2)*                      log_records (2)*  ── the record bytes, copied once
//!       schema_url (3)                  schema_url (3)
//! ```
//!
//! The OTLP requests of every signal have this one shape, with the same
//! field numbers (metrics too: `resource_metrics`, `scope_metrics`,
//! `metrics`), so one [`Framer`] frames them all; what differs is the
//! record, which its front door encoded, and the request's path. A record
//! is already a complete `Scope*.spans|log_records` field (the producer
//! wrote its key and length with it), so each is copied verbatim,
//! exactly once, from ring memory into the request. Lengths are known before
//! writing: for a batch of one scope (the usual case) they come from the
//! ring's own summary; otherwise a first walk sums each scope's bytes.
//! Records are grouped by scope with one (cheap, header-only) walk per scope
//! present.

use crate::proto::{self, Enc, common, field_len, resource, trace as f};
use crate::ring::MAX_TAG;
use crate::value::KeyValue;
use bytes::{BufMut, BytesMut};
use std::collections::HashMap;
use std::sync::{PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

/// What a request says besides its spans: the resource, encoded once, and
/// the registry of instrumentation scopes that span records' tags index.
/// Shared by the engine (which registers scopes) and its workers.
#[derive(Debug)]
pub(crate) struct Catalog {
    /// `Resource` message body.
    pub(crate) resource: Vec<u8>,
    scopes: RwLock<Scopes>,
}

/// Registered scopes: the tag in a span record indexes `list`.
#[derive(Debug, Default)]
pub(crate) struct Scopes {
    pub(crate) list: Vec<ScopeBytes>,
    index: HashMap<(Vec<u8>, String), u32>,
}

impl Catalog {
    /// A catalog for the resource `resource` (a `Resource` body), no scopes.
    pub(crate) fn new(resource: Vec<u8>) -> Self {
        Self {
            resource,
            scopes: RwLock::default(),
        }
    }

    /// The tag of scope `bytes`, registering it on first sight.
    pub(crate) fn register(&self, bytes: ScopeBytes) -> u32 {
        let key = (bytes.scope.clone(), bytes.schema_url.clone());
        if let Some(&tag) = self
            .scopes
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .index
            .get(&key)
        {
            return tag;
        }
        let mut scopes = self.scopes.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(&tag) = scopes.index.get(&key) {
            return tag;
        }
        // A record tag has 24 bits. Past 16.7M distinct scopes (a leak in
        // the application) further ones share the last tag's scope, named
        // so that the overflow is visible at the backend.
        let tag = scopes.list.len() as u32;
        if tag >= MAX_TAG {
            if scopes.list.len() == MAX_TAG as usize {
                scopes
                    .list
                    .push(ScopeBytes::new("otlpx.scope_overflow", "", "", &[]));
            }
            return MAX_TAG;
        }
        scopes.list.push(bytes);
        scopes.index.insert(key, tag);
        tag
    }

    /// The registered scopes, read-locked (registration waits meanwhile).
    pub(crate) fn scopes(&self) -> RwLockReadGuard<'_, Scopes> {
        self.scopes.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// The scopes, write-locked by the thread about to fork (see
    /// `crate::engine::fork`): a worker holding the read lock at `fork()` would
    /// hold it forever in the child, and `register` there would deadlock.
    pub(crate) fn lock_for_fork(&self) -> RwLockWriteGuard<'_, Scopes> {
        self.scopes.write().unwrap_or_else(PoisonError::into_inner)
    }
}

/// An instrumentation scope, encoded once when its tracer is created.
#[derive(Clone, Debug, Default)]
pub(crate) struct ScopeBytes {
    /// `InstrumentationScope` message body.
    pub(crate) scope: Vec<u8>,
    /// `ScopeSpans.schema_url`.
    pub(crate) schema_url: String,
}

impl ScopeBytes {
    pub(crate) fn new(
        name: &str,
        version: &str,
        schema_url: &str,
        attributes: &[KeyValue<'_>],
    ) -> Self {
        let version_len = if version.is_empty() {
            0
        } else {
            field_len(version.len())
        };
        let (attrs_len, _) = proto::attributes_len(attributes, usize::MAX, usize::MAX);
        let mut scope = Vec::new();
        let mut e = Enc::append(&mut scope, field_len(name.len()) + version_len + attrs_len);
        e.bytes_field(common::SCOPE_NAME, name.as_bytes());
        if !version.is_empty() {
            e.bytes_field(common::SCOPE_VERSION, version.as_bytes());
        }
        proto::put_attributes(
            &mut e,
            common::SCOPE_ATTRIBUTES,
            attributes,
            usize::MAX,
            usize::MAX,
        );
        debug_assert!(e.is_full());
        Self {
            scope,
            schema_url: schema_url.to_owned(),
        }
    }

    fn scope_spans_len(&self, spans_len: usize) -> usize {
        field_len(self.scope.len())
            + spans_len
            + if self.schema_url.is_empty() {
                0
            } else {
                field_len(self.schema_url.len())
            }
    }
}

/// A `Resource` message body from attributes given as (key, encoded
/// `AnyValue`) pairs; a later pair for a key replaces an earlier one.
pub(crate) fn resource_bytes(attributes: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, (key, value)) in attributes.iter().enumerate() {
        if attributes[i + 1..].iter().any(|(k, _)| k == key) {
            continue;
        }
        let kv = field_len(key.len()) + field_len(value.len());
        let mut e = Enc::append(&mut out, field_len(kv));
        e.len_prefix(resource::ATTRIBUTES, kv);
        e.bytes_field(common::KV_KEY, key.as_bytes());
        e.bytes_field(common::KV_VALUE, value);
    }
    out
}

/// A batch known to hold spans of one scope only, sized without walking it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct OneScope {
    tag: u32,
    spans: usize,
    spans_len: usize,
}

impl OneScope {
    /// From the ring's summary of a batch: `spans` span records of scope
    /// `tag`, `payload_bytes` in all (records are whole `spans` fields).
    pub(crate) fn new(tag: u32, spans: usize, payload_bytes: usize) -> Option<Self> {
        (spans > 0).then_some(Self {
            tag,
            spans,
            spans_len: payload_bytes,
        })
    }
}

/// Per-scope totals of one batch.
#[derive(Clone, Copy, Debug)]
struct Slot {
    tag: u32,
    spans_len: usize,
}

/// Frames batches of records into `Export*ServiceRequest`s (one signal's
/// per request; see the module docs). Keep one per consumer and reuse it:
/// after the first batches it allocates nothing.
#[derive(Debug, Default)]
pub(crate) struct Framer {
    slots: Vec<Slot>,
}

impl Framer {
    /// Writes one request holding every span `records` yields into `out`
    /// (cleared first) and returns how many spans it framed; with none,
    /// `out` stays empty.
    ///
    /// `records` is called with a sink and must feed it the same
    /// `(scope tag, span bytes)` sequence each time: it is walked once to
    /// size the request and once per scope to write it. `resource` is a
    /// `Resource` body and `scopes[tag]` the scope of a tag (an unknown tag
    /// frames under an empty scope rather than losing the span).
    pub(crate) fn frame(
        &mut self,
        resource: &[u8],
        scopes: &[ScopeBytes],
        one_scope: Option<OneScope>,
        mut records: impl FnMut(&mut dyn FnMut(u32, &[u8])),
        out: &mut BytesMut,
    ) -> usize {
        out.clear();
        self.slots.clear();
        let mut spans = 0usize;
        if let Some(one) = one_scope {
            // Sizes known from the ring's summary: no sizing pass.
            spans = one.spans;
            self.slots.push(Slot {
                tag: one.tag,
                spans_len: one.spans_len,
            });
        } else {
            let slots = &mut self.slots;
            records(&mut |tag, span| {
                spans += 1;
                let len = span.len();
                // Batches hold few scopes, and runs of one: check the last first.
                match slots.iter().rposition(|s| s.tag == tag) {
                    Some(i) => slots[i].spans_len += len,
                    None => slots.push(Slot {
                        tag,
                        spans_len: len,
                    }),
                }
            });
        }
        if spans == 0 {
            return 0;
        }
        let empty = ScopeBytes::default();
        let scope_of = |tag: u32| scopes.get(tag as usize).unwrap_or(&empty);
        let rs_len = field_len(resource.len())
            + self
                .slots
                .iter()
                .map(|s| field_len(scope_of(s.tag).scope_spans_len(s.spans_len)))
                .sum::<usize>();
        out.reserve(field_len(rs_len));
        put_prefix(out, f::REQUEST_RESOURCE_SPANS, rs_len);
        put_field(out, f::RESOURCE_SPANS_RESOURCE, resource);
        for slot in &self.slots {
            let scope = scope_of(slot.tag);
            put_prefix(
                out,
                f::RESOURCE_SPANS_SCOPE_SPANS,
                scope.scope_spans_len(slot.spans_len),
            );
            put_field(out, f::SCOPE_SPANS_SCOPE, &scope.scope);
            records(&mut |tag, span| {
                if tag == slot.tag {
                    out.put_slice(span);
                }
            });
            if !scope.schema_url.is_empty() {
                put_field(out, f::SCOPE_SPANS_SCHEMA_URL, scope.schema_url.as_bytes());
            }
        }
        spans
    }
}

#[inline]
fn put_prefix(out: &mut BytesMut, key: u8, len: usize) {
    out.put_u8(key);
    prost::encoding::encode_varint(len as u64, out);
}

#[inline]
fn put_field(out: &mut BytesMut, key: u8, bytes: &[u8]) {
    put_prefix(out, key, bytes.len());
    out.put_slice(bytes);
}
