//! From `tracing` to otlpx: a [`tracing_subscriber::Layer`] that turns
//! events into OTLP log records and spans into OTLP spans, beside whatever
//! else the application's subscriber does (a `fmt` layer, an `EnvFilter`,
//! per-layer filters).
//!
//! ```
//! use otlpx::tracing::OtlpxSpanExt as _;
//! use tracing_subscriber::prelude::*;
//!
//! let engine = otlpx::Engine::builder().export(false).build()?;
//! let subscriber = tracing_subscriber::registry().with(otlpx::tracing::layer(&engine));
//! tracing::subscriber::with_default(subscriber, || {
//!     let request = tracing::info_span!("GET /orders", otel.kind = "server", http.route = "/orders");
//!     // A caller's `traceparent`: set it before the span is first entered.
//!     let caller = otlpx::SpanContext::from_traceparent(
//!         "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
//!     )?;
//!     request.set_parent(&caller);
//!     let _entered = request.enter();
//!     tracing::info!(orders = 3, "listed"); // a log record, correlated with `request`
//!     Ok::<_, otlpx::TraceparentError>(())
//! })?;
//! assert_eq!(engine.signal_stats(otlpx::Signal::Logs).recorded, 1);
//! assert_eq!(engine.signal_stats(otlpx::Signal::Traces).recorded, 1);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! **Events** become log records: the level is the severity (`TRACE` 1,
//! `DEBUG` 5, `INFO` 9, `WARN` 13, `ERROR` 17), the `message` field the
//! body, every other field an attribute of its own type (`i64`, `u64`,
//! `f64`, `bool`, `&str`, bytes; `i128`/`u128` as integers when they fit;
//! anything else, errors included, as its `Debug` or `Display` text), and
//! the code location `code.file.path`, `code.line.number` and
//! `code.namespace` (the module path; left out with
//! [`with_location(false)`](OtlpxLayer::with_location)). The event's **target is the
//! instrumentation scope name** (version empty), as in
//! `opentelemetry-appender-tracing`: records group by module at the
//! backend, and it costs a table lookup, not an attribute per record. An
//! event named explicitly (`info!(name: "cart.checkout", …)`) has that
//! event name; the default name (`event src/…:42`) is left out. Events
//! bridged from `log` by `tracing-log` take the `log` record's own target
//! and location from its `log.*` fields. A record is correlated with the
//! span current on its thread: entering a `tracing` span makes its otlpx
//! context current (below), so that is the innermost entered span, or an
//! otlpx span started inside it; an event with an explicit parent
//! (`info!(parent: &span, …)`) is correlated with that span, one with
//! `parent: None` with none. Events are not also added to their span as
//! span events, and an `ERROR` event leaves its span's status alone: the
//! span's own fields (`error`, `otel.status_code`) set that.
//!
//! **Spans** become spans under their target's scope, named as the
//! `tracing` span, timed from creation to close, with their fields (those
//! recorded later with `Span::record` too) and code location as
//! attributes. The parent: an explicit `parent:` span's context;
//! `parent: None`, a root; otherwise the otlpx context current on the
//! creating thread (the entered `tracing` span, an otlpx span inside it, or
//! a context attached from a request's headers), else a root. Fields with
//! a meaning of their own, as `tracing-opentelemetry` reads them:
//!
//! | field | effect |
//! |---|---|
//! | `otel.name` | the span's name |
//! | `otel.kind` | `client`, `server`, `producer`, `consumer` or `internal` (any case); only before the span starts (below) |
//! | `otel.status_code` | `ok` or `error` (any case) |
//! | `otel.status_message` | status error with this description |
//! | `error`, `exception.message` | status error with the field's text as description (also kept as an attribute) |
//!
//! The `otel.*` fields are not attributes. A span starts (takes its ids
//! and parent) when it is first entered, when a child or an event needs
//! its context, or when it closes, whichever comes first; until then
//! [`OtlpxSpanExt::set_parent`] can still give it a remote parent.
//! Entering a span makes its context current on that thread
//! ([`SpanContext::attach`]) until it is exited, so otlpx spans and log
//! records made inside it, by any code, are its children and correlate
//! with it; a span entered on several threads at once is current on each.
//!
//! **Never recorded**: events and spans whose target belongs to otlpx or
//! to a crate of its export path (the list is
//! [`EXCLUDED_CRATES`]: `otlpx`,
//! `tonic`, `h2`, `hyper`, `hyper_util`, `rustls`, `tokio`, `tower`,
//! `tower_http`, `reqwest`, …), and anything on the engine's own threads
//! (named `otlpx-…`), so that the engine's diagnostics never loop into its
//! own pipeline. They still reach the application's other layers: this
//! layer filters inside its callbacks and never disables a callsite.
//!
//! Costs: an event below the engine's minimum log severity costs a
//! compare. What never changes for a callsite (its scope, whether its
//! field names repeat, its code location encoded as attributes) is worked
//! out the first time it fires; then each field is encoded as an OTLP
//! attribute as it is visited, into a per-thread buffer, and the record
//! copies those bytes into its ring slot: nothing allocated once the
//! thread is warm. A span costs what
//! `tracing-subscriber`'s registry costs (one box in its extensions), its
//! fields buffered (pooled) until it starts, and an otlpx span.
//!
//! One otlpx layer per subscriber: two (two engines) each record
//! everything, but a record correlates with whichever context was
//! attached last.

pub use super::EXCLUDED_CRATES;
use super::{
    FieldBuf, Item, Key, LOCATION_KEYS, ScopeId, Scopes, find_or_fill, give_buffer,
    is_excluded_target, location, on_engine_thread, take_buffer, with_scratch,
};
use crate::context::SpanContext;
use crate::current::ContextGuard;
use crate::engine::Engine;
use crate::logs::{AnyValue, LogRecord, Severity};
use crate::proto::{EncodedAttributes, logs::ATTRIBUTES};
use crate::trace::{DetachedSpan, Span, SpanKind, Status};
use crate::value::Value;
use ::tracing::field::{Field, Visit};
use ::tracing::span::{Attributes, Id, Record};
use ::tracing::{Dispatch, Event, Level, Metadata, Subscriber};
use std::cell::RefCell;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::{Extensions, ExtensionsMut, LookupSpan, SpanRef};

/// The layer: add it to a `tracing_subscriber::registry()` stack. See the
/// [module docs](self) for what it records.
pub fn layer(engine: &Engine) -> OtlpxLayer {
    OtlpxLayer::new(engine)
}

/// A [`tracing_subscriber::Layer`] that records into an otlpx engine; from
/// [`layer`]. See the [module docs](self).
pub struct OtlpxLayer {
    /// Tells this layer's state apart from another otlpx layer's in the
    /// same span (two engines).
    id: u64,
    scopes: Scopes,
    /// What each event callsite always has, worked out once.
    callsites: Box<[OnceLock<Box<Callsite>>]>,
    /// Reaches a span's state from a `tracing::Span` handle; set by
    /// `on_layer`, which knows the subscriber's type.
    access: AccessFn,
    /// Whether records and spans get `code.*` attributes.
    location: bool,
}

impl std::fmt::Debug for OtlpxLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OtlpxLayer").field("id", &self.id).finish()
    }
}

/// Runs a closure on a span's state, given the subscriber that holds it.
type AccessFn = fn(&OtlpxLayer, &Dispatch, &Id, &mut dyn FnMut(&mut SpanState));

impl OtlpxLayer {
    /// A layer recording into `engine`. It holds the engine weakly: once
    /// the application drops its last handle, the engine shuts down as
    /// usual and the layer records into nothing.
    pub fn new(engine: &Engine) -> Self {
        /// Layer ids, never reused. Relaxed: only uniqueness matters.
        static NEXT: AtomicU64 = AtomicU64::new(1);
        Self {
            id: NEXT.fetch_add(1, Ordering::Relaxed),
            scopes: Scopes::new(engine),
            callsites: (0..CALLSITES).map(|_| OnceLock::new()).collect(),
            access: |_, _, _, _| {},
            location: true,
        }
    }

    /// Whether records and spans carry their code location
    /// (`code.file.path`, `code.line.number`, `code.namespace`; on by
    /// default). Off, a record is smaller and cheaper: the location is
    /// often its largest part.
    pub fn with_location(mut self, location: bool) -> Self {
        self.location = location;
        self
    }

    /// Starts a pending span; a started one is left as it is.
    fn ensure_started(&self, state: &mut SpanState) {
        if matches!(state, SpanState::Pending(_))
            && let SpanState::Pending(pending) = std::mem::replace(state, SpanState::Ended)
        {
            let (span, scope) = self.start(pending);
            *state = SpanState::Started { span, scope };
        }
    }

    /// The span's context, starting it if it was pending; invalid for an
    /// ended one.
    fn context_of(&self, state: &mut SpanState) -> SpanContext {
        self.ensure_started(state);
        match state {
            SpanState::Started { span, .. } => span.context().clone(),
            _ => SpanContext::default(),
        }
    }

    /// Starts `pending`: its kind and name from its `otel.*` fields, then
    /// its location and fields as attributes.
    fn start(&self, pending: Pending) -> (DetachedSpan, ScopeId) {
        let Pending {
            scope,
            meta,
            parent,
            start,
            fields,
        } = pending;
        let tracer = &self.scopes.get(&scope).tracer;
        let mut name = meta.name();
        let mut kind = SpanKind::Internal;
        if let Some(buf) = &fields {
            for &(key, item) in &buf.items {
                match buf.key(key) {
                    "otel.name" => name = buf.str(item).unwrap_or(name),
                    "otel.kind" => kind = buf.str(item).and_then(parse_kind).unwrap_or(kind),
                    _ => {}
                }
            }
        }
        let builder = tracer.span(name).kind(kind).start_time_unix_nano(start);
        let mut span = match &parent {
            Some(parent) => builder.parent(parent),
            None => builder.root(),
        }
        .start();
        if span.is_recording() {
            if self.location {
                for (key, value) in location(meta.file(), meta.line(), meta.module_path()) {
                    span.set_attribute(key, value);
                }
            }
            if let Some(buf) = &fields {
                apply(&mut span, buf, true);
            }
        }
        if let Some(buf) = fields {
            give_buffer(buf);
        }
        (span.detach(), scope)
    }

    /// Runs `f` on the live span of `state`, starting it first if needed.
    fn with_live(&self, state: &mut SpanState, f: impl FnOnce(&mut Span<'_>)) {
        self.ensure_started(state);
        if matches!(state, SpanState::Started { .. })
            && let SpanState::Started { span, scope } = std::mem::replace(state, SpanState::Ended)
        {
            let mut live = span.resume(&self.scopes.get(&scope).tracer);
            f(&mut live);
            *state = SpanState::Started {
                span: live.detach(),
                scope,
            };
        }
    }

    /// Ends the span of `state` now (starting it first if it never
    /// started).
    fn end(&self, state: SpanState) {
        let (span, scope) = match state {
            SpanState::Pending(pending) => self.start(pending),
            SpanState::Started { span, scope } => (span, scope),
            SpanState::Ended => return,
        };
        span.resume(&self.scopes.get(&scope).tracer).end();
    }

    /// The context of the nearest span, `span` itself or an ancestor, that
    /// this layer records (one it excluded has no state); started if it
    /// was pending.
    fn nearest_context<S>(&self, span: SpanRef<'_, S>) -> Option<SpanContext>
    where
        S: for<'a> LookupSpan<'a>,
    {
        for span in span.scope() {
            let mut ext = span.extensions_mut();
            if let Some(state) = state_mut(&mut ext, self.id) {
                return Some(self.context_of(state));
            }
        }
        None
    }
}

/// A `tracing` span's otlpx side, kept in its extensions.
enum SpanState {
    /// Not started yet: its ids and parent are still open (see the module
    /// docs).
    Pending(Pending),
    Started {
        span: DetachedSpan,
        scope: ScopeId,
    },
    /// Closed, or lost to a panic between taking and putting back.
    Ended,
}

struct Pending {
    scope: ScopeId,
    meta: &'static Metadata<'static>,
    /// `None`: a root.
    parent: Option<SpanContext>,
    start: u64,
    /// Its fields so far (`None` while it has none).
    fields: Option<FieldBuf>,
}

/// What a span's extensions hold for the otlpx layers of its subscriber:
/// one, usually (extensions hold one value per type, hence the list).
struct LayerStates {
    first: Option<(u64, SpanState)>,
    more: Vec<(u64, SpanState)>,
}

fn state_mut<'e>(ext: &'e mut ExtensionsMut<'_>, layer: u64) -> Option<&'e mut SpanState> {
    let states = ext.get_mut::<LayerStates>()?;
    match &mut states.first {
        Some((id, state)) if *id == layer => Some(state),
        _ => states
            .more
            .iter_mut()
            .find(|(id, _)| *id == layer)
            .map(|(_, state)| state),
    }
}

fn has_state(ext: &Extensions<'_>, layer: u64) -> bool {
    ext.get::<LayerStates>().is_some_and(|states| {
        states.first.as_ref().is_some_and(|(id, _)| *id == layer)
            || states.more.iter().any(|(id, _)| *id == layer)
    })
}

fn insert_state(ext: &mut ExtensionsMut<'_>, layer: u64, state: SpanState) {
    match ext.get_mut::<LayerStates>() {
        Some(states) if states.first.is_none() => states.first = Some((layer, state)),
        Some(states) => states.more.push((layer, state)),
        None => ext.insert(LayerStates {
            first: Some((layer, state)),
            more: Vec::new(),
        }),
    }
}

fn take_state(ext: &mut ExtensionsMut<'_>, layer: u64) -> Option<SpanState> {
    let states = ext.get_mut::<LayerStates>()?;
    if states.first.as_ref().is_some_and(|(id, _)| *id == layer) {
        return states.first.take().map(|(_, state)| state);
    }
    let i = states.more.iter().position(|(id, _)| *id == layer)?;
    Some(states.more.swap_remove(i).1)
}

/// Applies buffered fields to a live span: attributes, and the
/// conventional fields of the module docs. `at_start`: `otel.name` and
/// `otel.kind` were already used to start it.
fn apply(span: &mut Span<'_>, buf: &FieldBuf, at_start: bool) {
    let mut code = None;
    let mut message = None;
    let mut error = None;
    for &(key, item) in &buf.items {
        let key = buf.key(key);
        match key {
            "otel.name" => {
                if !at_start && let Some(name) = buf.str(item) {
                    span.update_name(name);
                }
            }
            // The kind is fixed when a span starts.
            "otel.kind" => {}
            "otel.status_code" => code = buf.str(item).map(unquote),
            "otel.status_message" => message = buf.str(item).map(unquote),
            "error" | "exception.message" => {
                span.set_attribute(key, buf.value(item));
                error = match buf.value(item) {
                    Value::Bool(false) => error,
                    Value::Str(text) => Some(text),
                    _ => Some(error.unwrap_or("")),
                };
            }
            _ => span.set_attribute(key, buf.value(item)),
        }
    }
    let description = message.or(error).unwrap_or("");
    match code {
        Some(c) if c.eq_ignore_ascii_case("ok") => span.set_status(Status::Ok),
        Some(c) if c.eq_ignore_ascii_case("error") => span.set_status(Status::error(description)),
        _ if message.is_some() || error.is_some() => span.set_status(Status::error(description)),
        _ => {}
    }
}

/// A string field's text without the quotes `?field` (`Debug`) put around
/// it.
fn unquote(s: &str) -> &str {
    s.strip_prefix('"')
        .and_then(|s| s.strip_suffix('"'))
        .unwrap_or(s)
}

fn parse_kind(s: &str) -> Option<SpanKind> {
    let s = unquote(s);
    [
        ("internal", SpanKind::Internal),
        ("server", SpanKind::Server),
        ("client", SpanKind::Client),
        ("producer", SpanKind::Producer),
        ("consumer", SpanKind::Consumer),
    ]
    .into_iter()
    .find(|(name, _)| s.eq_ignore_ascii_case(name))
    .map(|(_, kind)| kind)
}

const fn severity(level: &Level) -> Severity {
    match *level {
        Level::TRACE => Severity::TRACE,
        Level::DEBUG => Severity::DEBUG,
        Level::INFO => Severity::INFO,
        Level::WARN => Severity::WARN,
        Level::ERROR => Severity::ERROR,
    }
}

/// Copies `tracing` fields into a [`FieldBuf`].
struct Collect<'b>(&'b mut FieldBuf);

impl Visit for Collect<'_> {
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.push(Key::Static(field.name()), Item::F64(value));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.push(Key::Static(field.name()), Item::I64(value));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.push(Key::Static(field.name()), Item::U64(value));
    }

    fn record_i128(&mut self, field: &Field, value: i128) {
        match i64::try_from(value) {
            Ok(v) => self.0.push(Key::Static(field.name()), Item::I64(v)),
            Err(_) => self
                .0
                .push_fmt(Key::Static(field.name()), format_args!("{value}")),
        }
    }

    fn record_u128(&mut self, field: &Field, value: u128) {
        match u64::try_from(value) {
            Ok(v) => self.0.push(Key::Static(field.name()), Item::U64(v)),
            Err(_) => self
                .0
                .push_fmt(Key::Static(field.name()), format_args!("{value}")),
        }
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.push(Key::Static(field.name()), Item::Bool(value));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.push_str(Key::Static(field.name()), value);
    }

    fn record_bytes(&mut self, field: &Field, value: &[u8]) {
        self.0.push_bytes(Key::Static(field.name()), value);
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.0
            .push_fmt(Key::Static(field.name()), format_args!("{value}"));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0
            .push_fmt(Key::Static(field.name()), format_args!("{value:?}"));
    }
}

/// Event callsites a layer keeps what it worked out about (a power of
/// two: 64 KiB of slots). An application with more event callsites than
/// the table finds room for works each further one out per event.
const CALLSITES: usize = 4096;

/// What an event callsite always has, worked out the first time it fires:
/// its scope, whether its records are recorded at all, and its code
/// location encoded once, so that an event pays for its fields only.
struct Callsite {
    /// The callsite's metadata: `'static`, one per callsite, so its
    /// address is its identity.
    meta: &'static Metadata<'static>,
    scope: ScopeId,
    excluded: bool,
    /// A `log` record bridged by `tracing-log`: its target and location
    /// are in its `log.*` fields, which are not attributes.
    bridged: bool,
    /// The fields kept aside as items rather than encoded, by index in the
    /// callsite's field set: the first `message` (the body), and a bridged
    /// record's `log.*` fields. Fields past 64 are always encoded.
    aside: u64,
    /// No two of its attributes (its fields but the message, and the
    /// location) share a key: the duplicate check can be skipped.
    unique: bool,
    event_name: Option<&'static str>,
    /// The `code.*` attributes, encoded (empty with the location off):
    /// `None` when worked out per event (not kept, or bridged).
    location: Option<EncodedAttributes>,
}

impl Callsite {
    /// `max_len`: the value length limit to encode the location with,
    /// when it is kept.
    fn new(layer: &OtlpxLayer, meta: &'static Metadata<'static>, max_len: Option<usize>) -> Self {
        let bridged = meta.target() == "log" && meta.fields().field("log.target").is_some();
        let scope = if bridged {
            ScopeId::Base
        } else {
            layer.scopes.lookup(meta.target())
        };
        let excluded = !bridged && layer.scopes.get(&scope).excluded;
        let message = meta.fields().field("message").map(|field| field.index());
        let is_aside = |field: &Field| {
            field.index() < 64
                && ((bridged && field.name().starts_with("log.")) || Some(field.index()) == message)
        };
        let aside = meta
            .fields()
            .iter()
            .filter(is_aside)
            .fold(0u64, |mask, field| mask | 1 << field.index());
        // The attribute keys, with no allocation: a callsite the table has
        // no room for is worked out per event.
        let location_keys: &[&str] = if layer.location { &LOCATION_KEYS } else { &[] };
        let keys = || {
            meta.fields()
                .iter()
                .filter(|field| !is_aside(field))
                .map(|field| field.name())
                .chain(location_keys.iter().copied())
        };
        let unique = keys()
            .enumerate()
            .all(|(i, key)| keys().skip(i + 1).all(|other| other != key));
        let location = max_len.filter(|_| !bridged).map(|max_len| {
            let mut encoded = EncodedAttributes::default();
            if layer.location {
                for (key, value) in location(meta.file(), meta.line(), meta.module_path()) {
                    encoded.push(ATTRIBUTES, key, &value, max_len);
                }
            }
            encoded
        });
        Self {
            meta,
            scope,
            excluded,
            bridged,
            aside,
            unique,
            event_name: if bridged { None } else { explicit_name(meta) },
            location,
        }
    }
}

impl OtlpxLayer {
    /// The callsite of `meta`, worked out the first time; `None` when the
    /// table has no room for it.
    fn callsite(&self, meta: &'static Metadata<'static>) -> Option<&Callsite> {
        let (_, max_len) = self.scopes.base().logger.attribute_limits();
        let address = std::ptr::from_ref(meta) as usize;
        // Metadata is word-aligned: the low bits say nothing.
        let hash = ((address >> 3) as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 32;
        let i = find_or_fill(
            &self.callsites,
            hash as usize,
            |site| std::ptr::eq(site.meta, meta),
            || Callsite::new(self, meta, Some(max_len)),
        )?;
        self.callsites[i].get().map(|site| &**site)
    }
}

/// Visits an event's fields: each attribute encoded as it comes (its type
/// known here, so matched and sized once), the message (the body) and a
/// bridged `log` record's `log.*` fields kept aside as items.
struct EventFields<'b> {
    buf: &'b mut FieldBuf,
    /// The callsite's [`Callsite::aside`].
    aside: u64,
    max_len: usize,
}

impl EventFields<'_> {
    /// Whether `field` is kept aside rather than encoded.
    #[inline(always)]
    fn aside(&self, field: &Field) -> bool {
        field.index() < 64 && self.aside & (1 << field.index()) != 0
    }

    #[inline(always)]
    fn value(&mut self, field: &Field, value: Value<'_>, item: impl FnOnce() -> Item) {
        let key = field.name();
        if self.aside(field) {
            self.buf.push(Key::Static(key), item());
        } else {
            self.buf
                .attributes
                .push(ATTRIBUTES, key, &value, self.max_len);
        }
    }

    fn text(&mut self, field: &Field, args: std::fmt::Arguments<'_>) {
        let key = field.name();
        if self.aside(field) {
            self.buf.push_fmt(Key::Static(key), args);
        } else {
            let (start, end) = self.buf.format(args);
            let FieldBuf {
                text, attributes, ..
            } = &mut *self.buf;
            let value = Value::Str(text.get(start..end).unwrap_or(""));
            attributes.push(ATTRIBUTES, key, &value, self.max_len);
            text.truncate(start);
        }
    }
}

impl Visit for EventFields<'_> {
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.value(field, Value::F64(value), || Item::F64(value));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.value(field, Value::I64(value), || Item::I64(value));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.value(field, Value::U64(value), || Item::U64(value));
    }

    fn record_i128(&mut self, field: &Field, value: i128) {
        match i64::try_from(value) {
            Ok(v) => self.record_i64(field, v),
            Err(_) => self.text(field, format_args!("{value}")),
        }
    }

    fn record_u128(&mut self, field: &Field, value: u128) {
        match u64::try_from(value) {
            Ok(v) => self.record_u64(field, v),
            Err(_) => self.text(field, format_args!("{value}")),
        }
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.value(field, Value::Bool(value), || Item::Bool(value));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        let key = field.name();
        if self.aside(field) {
            self.buf.push_str(Key::Static(key), value);
        } else {
            self.buf
                .attributes
                .push(ATTRIBUTES, key, &Value::Str(value), self.max_len);
        }
    }

    fn record_bytes(&mut self, field: &Field, value: &[u8]) {
        let key = field.name();
        if self.aside(field) {
            self.buf.push_bytes(Key::Static(key), value);
        } else {
            self.buf
                .attributes
                .push(ATTRIBUTES, key, &Value::Bytes(value), self.max_len);
        }
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.text(field, format_args!("{value}"));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.text(field, format_args!("{value:?}"));
    }
}

thread_local! {
    /// The contexts this thread's entered spans made current, innermost
    /// last: `(layer, span id, guard)`. A span entered twice has two.
    static ENTERED: RefCell<Vec<(u64, u64, ContextGuard)>> = const { RefCell::new(Vec::new()) };
}

impl<S> Layer<S> for OtlpxLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_layer(&mut self, _subscriber: &mut S) {
        self.access = access::<S>;
    }

    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        if on_engine_thread() {
            return;
        }
        let meta = attrs.metadata();
        let scope = self.scopes.lookup(meta.target());
        if self.scopes.get(&scope).excluded {
            return;
        }
        let parent = if attrs.is_root() {
            None
        } else if let Some(parent) = attrs.parent().and_then(|p| ctx.span(p)) {
            self.nearest_context(parent)
        } else {
            // Contextual: the context current here is the entered span's
            // (attached by `on_enter`) or a more recent one; only when
            // nothing is current is the span tree asked.
            let current = SpanContext::current();
            if current.is_valid() {
                Some(current)
            } else {
                ctx.lookup_current()
                    .and_then(|span| self.nearest_context(span))
            }
        };
        let mut fields = take_buffer();
        attrs.record(&mut Collect(&mut fields));
        let fields = if fields.items.is_empty() {
            give_buffer(fields);
            None
        } else {
            Some(fields)
        };
        let state = SpanState::Pending(Pending {
            scope,
            meta,
            parent,
            start: self.scopes.base().tracer.recorder.clock.now_unix_nanos(),
            fields,
        });
        if let Some(span) = ctx.span(id) {
            insert_state(&mut span.extensions_mut(), self.id, state);
        }
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else {
            return;
        };
        if !has_state(&span.extensions(), self.id) {
            return;
        }
        // Fields are copied out before the span's extensions are locked:
        // a `Debug` impl may itself log.
        with_scratch(|buf| {
            values.record(&mut Collect(buf));
            if buf.items.is_empty() {
                return;
            }
            let mut ext = span.extensions_mut();
            let Some(state) = state_mut(&mut ext, self.id) else {
                return;
            };
            match state {
                SpanState::Pending(pending) => {
                    pending.fields.get_or_insert_with(take_buffer).append(buf)
                }
                SpanState::Started { .. } => self.with_live(state, |span| apply(span, buf, false)),
                SpanState::Ended => {}
            }
        });
    }

    fn on_follows_from(&self, id: &Id, follows: &Id, ctx: Context<'_, S>) {
        let (Some(span), Some(follows)) = (ctx.span(id), ctx.span(follows)) else {
            return;
        };
        let Some(link) = self.nearest_context(follows) else {
            return;
        };
        let mut ext = span.extensions_mut();
        if let Some(state) = state_mut(&mut ext, self.id) {
            self.with_live(state, |span| span.add_link(&link, &[]));
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let meta = event.metadata();
        let severity = severity(meta.level());
        let base = &self.scopes.base().logger;
        if !base.enabled(severity) || on_engine_thread() {
            return;
        }
        let (max_count, max_len) = base.attribute_limits();
        let uncached;
        let site = match self.callsite(meta) {
            Some(site) => site,
            None => {
                uncached = Callsite::new(self, meta, None);
                &uncached
            }
        };
        if site.excluded {
            return;
        }
        let explicit = event
            .parent()
            .and_then(|parent| ctx.span(parent))
            .and_then(|parent| self.nearest_context(parent));
        with_scratch(|buf| {
            event.record(&mut EventFields {
                buf,
                aside: site.aside,
                max_len,
            });
            let bridged;
            let mut encoded_location: &[u8] = &[];
            let scope = if site.bridged {
                // `tracing-log`: a `log` record, its own target and
                // location in `log.*` fields.
                let target = buf
                    .find("log.target")
                    .and_then(|t| buf.str(t))
                    .unwrap_or("");
                if is_excluded_target(target) {
                    return;
                }
                bridged = self.scopes.lookup(target);
                if self.location {
                    let mut attributes = std::mem::take(&mut buf.attributes);
                    let line = buf.find("log.line").and_then(|l| match l {
                        Item::I64(n) => u32::try_from(n).ok(),
                        Item::U64(n) => u32::try_from(n).ok(),
                        _ => None,
                    });
                    let file = buf.find("log.file").and_then(|f| buf.str(f));
                    let module = buf.find("log.module_path").and_then(|m| buf.str(m));
                    for (key, value) in location(file, line, module) {
                        attributes.push(ATTRIBUTES, key, &value, max_len);
                    }
                    buf.attributes = attributes;
                }
                &bridged
            } else {
                match &site.location {
                    // The usual case: the location is written as encoded
                    // once, after the fields.
                    Some(encoded)
                        if site.unique && buf.attributes.count() + encoded.count() <= max_count =>
                    {
                        encoded_location = encoded.as_bytes();
                    }
                    Some(encoded) => buf.attributes.extend(encoded),
                    None if self.location => {
                        for (key, value) in location(meta.file(), meta.line(), meta.module_path()) {
                            buf.attributes.push(ATTRIBUTES, key, &value, max_len);
                        }
                    }
                    None => {}
                }
                &site.scope
            };
            let dropped = buf.attributes.settle(max_count, site.unique);
            let mut record = LogRecord::new(severity)
                .encoded_attributes([buf.attributes.as_bytes(), encoded_location], dropped);
            if let Some(body) = buf.find("message") {
                record = record.body(AnyValue::Value(buf.value(body)));
            }
            if let Some(name) = site.event_name {
                record = record.event_name(name);
            }
            if let Some(parent) = &explicit {
                record = record.span_context(parent);
            } else if event.is_root() {
                record = record.without_span_context();
            }
            self.scopes.get(scope).logger.emit(&record);
        });
    }

    fn on_enter(&self, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else {
            return;
        };
        let guard = {
            let mut ext = span.extensions_mut();
            let Some(state) = state_mut(&mut ext, self.id) else {
                return;
            };
            self.ensure_started(state);
            let SpanState::Started { span, .. } = state else {
                return;
            };
            span.context().attach()
        };
        let entry = (self.id, id.into_u64(), guard);
        let _ = ENTERED.try_with(|entered| {
            if let Ok(mut entered) = entered.try_borrow_mut() {
                entered.push(entry);
            }
            // Else the guard drops here: the context is not current,
            // which only loses correlation.
        });
    }

    fn on_exit(&self, id: &Id, _ctx: Context<'_, S>) {
        let key = (self.id, id.into_u64());
        let guard = ENTERED
            .try_with(|entered| {
                let mut entered = entered.try_borrow_mut().ok()?;
                let i = entered.iter().rposition(|(l, s, _)| (*l, *s) == key)?;
                Some(entered.remove(i))
            })
            .ok()
            .flatten();
        // Dropped outside the borrow: it detaches the context.
        drop(guard);
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(&id) else {
            return;
        };
        let state = take_state(&mut span.extensions_mut(), self.id);
        if let Some(state) = state {
            self.end(state);
        }
    }
}

/// An event's name when the application gave one: `tracing` names the
/// others `event <file>:<line>`, which says nothing the location does not.
fn explicit_name(meta: &'static Metadata<'static>) -> Option<&'static str> {
    let name = meta.name();
    match (name.strip_prefix("event "), meta.file()) {
        (Some(rest), Some(file)) if rest.starts_with(file) => None,
        _ => Some(name),
    }
}

/// The [`AccessFn`] for a subscriber of type `S`.
fn access<S>(layer: &OtlpxLayer, dispatch: &Dispatch, id: &Id, f: &mut dyn FnMut(&mut SpanState))
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    let Some(subscriber) = dispatch.downcast_ref::<S>() else {
        return;
    };
    let Some(span) = subscriber.span(id) else {
        return;
    };
    let mut ext = span.extensions_mut();
    if let Some(state) = state_mut(&mut ext, layer.id) {
        f(state);
    }
}

/// Runs `f` on the otlpx state of `span`, if an otlpx layer records it.
fn with_state(span: &::tracing::Span, f: &mut dyn FnMut(&OtlpxLayer, &mut SpanState)) {
    span.with_subscriber(|(id, dispatch)| {
        if let Some(layer) = dispatch.downcast_ref::<OtlpxLayer>() {
            (layer.access)(layer, dispatch, id, &mut |state| f(layer, state));
        }
    });
}

/// otlpx's side of a [`tracing::Span`](::tracing::Span): its context, and
/// a remote parent.
///
/// ```
/// use otlpx::tracing::OtlpxSpanExt as _;
/// use tracing_subscriber::prelude::*;
///
/// let engine = otlpx::Engine::builder().export(false).build()?;
/// let subscriber = tracing_subscriber::registry().with(otlpx::tracing::layer(&engine));
/// tracing::subscriber::with_default(subscriber, || {
///     let caller = otlpx::SpanContext::from_traceparent(
///         "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
///     )?;
///     let span = tracing::info_span!("POST /charge", otel.kind = "server");
///     assert!(span.set_parent(&caller));
///     let context = span.context();
///     assert_eq!(context.trace_id, caller.trace_id);
///     assert!(!span.set_parent(&caller), "started: too late");
///     Ok::<_, otlpx::TraceparentError>(())
/// })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub trait OtlpxSpanExt {
    /// Makes `parent` (a remote context from a request's `traceparent`,
    /// typically) the span's parent; an invalid context makes it a root.
    /// Call it before the span is first entered, and before anything
    /// needs its context (a child span, an event with it as explicit
    /// parent, [`context`](Self::context)): it then has its ids already,
    /// and this returns `false` and changes nothing. `false` too for a
    /// span that no otlpx layer records (no subscriber, disabled,
    /// filtered out, an excluded target).
    fn set_parent(&self, parent: &SpanContext) -> bool;

    /// The span's otlpx context: for `traceparent` headers of outgoing
    /// requests, or to correlate work done elsewhere. Starts the span if
    /// it had not started (see [`set_parent`](Self::set_parent)). An
    /// invalid context for a span no otlpx layer records.
    fn context(&self) -> SpanContext;
}

impl OtlpxSpanExt for ::tracing::Span {
    fn set_parent(&self, parent: &SpanContext) -> bool {
        let mut done = false;
        with_state(self, &mut |_, state| {
            if let SpanState::Pending(pending) = state {
                pending.parent = Some(parent.clone());
                done = true;
            }
        });
        done
    }

    fn context(&self) -> SpanContext {
        let mut context = SpanContext::default();
        with_state(self, &mut |layer, state| context = layer.context_of(state));
        context
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_parse_in_any_case_and_quoted() {
        assert_eq!(parse_kind("server"), Some(SpanKind::Server));
        assert_eq!(parse_kind("Client"), Some(SpanKind::Client));
        assert_eq!(parse_kind("\"PRODUCER\""), Some(SpanKind::Producer));
        assert_eq!(parse_kind("consumer"), Some(SpanKind::Consumer));
        assert_eq!(parse_kind("internal"), Some(SpanKind::Internal));
        assert_eq!(parse_kind("sideways"), None);
        assert_eq!(parse_kind(""), None);
    }

    #[test]
    fn levels_map_to_the_base_severities() {
        assert_eq!(severity(&Level::TRACE).number(), 1);
        assert_eq!(severity(&Level::DEBUG).number(), 5);
        assert_eq!(severity(&Level::INFO).number(), 9);
        assert_eq!(severity(&Level::WARN).number(), 13);
        assert_eq!(severity(&Level::ERROR).number(), 17);
    }
}
