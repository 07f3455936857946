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

use crate::clock::Clock;
use crate::config::SpanLimits;
use crate::context::{SpanContext, SpanId, TraceFlags, TraceId, TraceState};
use crate::proto::{self, Buf, Enc, Prepared, field_len, trace as f, varint_field_len};
use crate::ring::{RecordKind, Rings, SIGNALS, Signal, WriteError};
use crate::value::{KeyValue, ToValue, Value};
use std::borrow::Cow;
use std::cell::RefCell;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// The role of a span in a trace.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum SpanKind {
    /// An internal operation (the default).
    #[default]
    Internal = 1,
    /// The server side of a synchronous remote call.
    Server = 2,
    /// The client side of a synchronous remote call.
    Client = 3,
    /// The sending side of an asynchronous message.
    Producer = 4,
    /// The receiving side of an asynchronous message.
    Consumer = 5,
}

/// A span's outcome.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Status<'a> {
    /// Nothing said (the default).
    #[default]
    Unset,
    /// Marked successful by the application; final.
    Ok,
    /// Failed, with a description.
    Error {
        /// What went wrong.
        description: &'a str,
    },
}

impl<'a> Status<'a> {
    /// An error status with a description.
    pub fn error(description: &'a str) -> Self {
        Self::Error { description }
    }

    fn code(&self) -> u8 {
        match self {
            Self::Unset => 0,
            Self::Ok => 1,
            Self::Error { .. } => 2,
        }
    }
}

/// An event of a finished span.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Event<'a> {
    /// The event name.
    pub name: &'a str,
    /// When it happened, in nanoseconds since the Unix epoch.
    pub time_unix_nano: u64,
    /// Its attributes.
    pub attributes: &'a [KeyValue<'a>],
    /// Attributes the caller already dropped.
    pub dropped_attributes_count: u32,
}

/// A link from a span to another span.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Link<'a> {
    /// The linked span's trace.
    pub trace_id: TraceId,
    /// The linked span.
    pub span_id: SpanId,
    /// The linked span's trace flags.
    pub trace_flags: TraceFlags,
    /// The linked span's trace state (empty for none).
    pub trace_state: &'a str,
    /// Whether the linked context came from another process.
    pub is_remote: bool,
    /// The link's attributes.
    pub attributes: &'a [KeyValue<'a>],
    /// Attributes the caller already dropped.
    pub dropped_attributes_count: u32,
}

impl<'a> Link<'a> {
    /// A link to `context` with `attributes`.
    pub fn new(context: &'a SpanContext, attributes: &'a [KeyValue<'a>]) -> Self {
        Self {
            trace_id: context.trace_id,
            span_id: context.span_id,
            trace_flags: context.trace_flags,
            trace_state: context.trace_state.as_str(),
            is_remote: context.is_remote,
            attributes,
            dropped_attributes_count: 0,
        }
    }
}

/// A span finished elsewhere, described in full, for [`Tracer::record_span`].
///
/// Limits apply as for live spans; counts the caller already dropped add to
/// the ones otlpx drops.
///
/// ```
/// use otlpx::{FinishedSpan, KeyValue, SpanId, SpanKind, TraceFlags, TraceId};
///
/// let engine = otlpx::Engine::builder().export(false).build()?;
/// let tracer = engine.tracer("sdk-adapter", "");
/// let attributes = [KeyValue::new("db.system.name", "postgresql")];
/// tracer.record_span(&FinishedSpan {
///     trace_id: TraceId::random(),
///     span_id: SpanId::random(),
///     trace_flags: TraceFlags::SAMPLED,
///     name: "SELECT orders",
///     kind: SpanKind::Client,
///     start_time_unix_nano: 1_700_000_000_000_000_000,
///     end_time_unix_nano: 1_700_000_000_004_000_000,
///     attributes: &attributes,
///     ..Default::default()
/// })?;
/// assert_eq!(engine.stats().in_rings, 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct FinishedSpan<'a> {
    /// The span's trace (must not be all zeros).
    pub trace_id: TraceId,
    /// The span's id (must not be all zeros).
    pub span_id: SpanId,
    /// W3C trace flags.
    pub trace_flags: TraceFlags,
    /// W3C trace state (empty for none).
    pub trace_state: &'a str,
    /// The parent span, if any.
    pub parent_span_id: Option<SpanId>,
    /// Whether the parent came from another process.
    pub parent_is_remote: bool,
    /// The span name.
    pub name: &'a str,
    /// The span kind.
    pub kind: SpanKind,
    /// Start, in nanoseconds since the Unix epoch.
    pub start_time_unix_nano: u64,
    /// End, in nanoseconds since the Unix epoch.
    pub end_time_unix_nano: u64,
    /// Attributes.
    pub attributes: &'a [KeyValue<'a>],
    /// Events.
    pub events: &'a [Event<'a>],
    /// Links.
    pub links: &'a [Link<'a>],
    /// Outcome.
    pub status: Status<'a>,
    /// Attributes the caller already dropped.
    pub dropped_attributes_count: u32,
    /// Events the caller already dropped.
    pub dropped_events_count: u32,
    /// Links the caller already dropped.
    pub dropped_links_count: u32,
}

/// Why a span was not recorded. Small and `Copy`; the drop is also counted
/// in [`Stats`](crate::Stats).
#[derive(Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RecordError {
    /// This CPU's ring is full: the exporter is behind.
    #[error("ring full: span dropped")]
    RingFull,
    /// The encoded span is larger than half a ring.
    #[error("span too large for the ring: dropped")]
    TooLarge,
    /// The span's trace id or span id is all zeros.
    #[error("span has an all-zero trace id or span id")]
    InvalidIds,
}

debug_as_display!(RecordError);

impl From<WriteError> for RecordError {
    fn from(e: WriteError) -> Self {
        match e {
            WriteError::Full => Self::RingFull,
            WriteError::TooLarge => Self::TooLarge,
        }
    }
}

/// The producer-side state every tracer of an engine shares.
pub(crate) struct Recorder {
    /// Each signal's rings, by [`Signal::index`].
    pub(crate) signal_rings: [Rings; SIGNALS],
    pub(crate) limits: SpanLimits,
    pub(crate) clock: Clock,
    /// Spans refused by `record_span` for invalid ids (an error path only).
    pub(crate) dropped_invalid: AtomicU64,
    pub(crate) sampler: crate::sample::Decider,
    /// Per signal, by [`Signal::index`]: its items are no-ops, recorded
    /// nowhere and counted nowhere. The engine is disabled
    /// (`OTEL_SDK_DISABLED`), or it exports other signals but not this one
    /// (`OTEL_LOGS_EXPORTER=none` beside exported traces), where the
    /// signal's items would only fill its rings and drop there. (An engine
    /// exporting nothing records every signal, for `Engine::drain`.)
    pub(crate) off: [bool; SIGNALS],
    /// What a log record keeps.
    pub(crate) log_limits: crate::config::LogLimits,
    /// Log records below this `SeverityNumber` (and not unspecified) are
    /// filtered out; 0 lets every record through.
    pub(crate) log_min_severity: u8,
}

/// An instrumentation scope: what a library or module records spans as.
/// Cheap to clone; obtain one from [`Engine::tracer`](crate::Engine::tracer).
///
/// A [`Span`] borrows its tracer, so starting and ending one touches no
/// shared reference count. Keep long-lived tracers in a `static` for
/// `'static` spans.
#[derive(Clone)]
pub struct Tracer {
    pub(crate) recorder: Arc<Recorder>,
    pub(crate) scope: u32,
}

impl std::fmt::Debug for Tracer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tracer")
            .field("scope", &self.scope)
            .finish()
    }
}

impl Tracer {
    /// Starts building a span named `name`: a `&str` of any lifetime, a
    /// `String` (`format!(…)`), or a `Cow<str>`. Its parent is the current
    /// span context ([`SpanContext::current`]) unless
    /// [`parent`](SpanBuilder::parent) or [`root`](SpanBuilder::root) says
    /// otherwise.
    pub fn span<'a>(&self, name: impl Into<Cow<'a, str>>) -> SpanBuilder<'_, 'a> {
        SpanBuilder {
            tracer: self,
            name: name.into(),
            kind: SpanKind::Internal,
            parent: Parent::Current,
            start_time_unix_nano: None,
        }
    }

    /// Starts a span of kind `Internal` now, as a child of the current span
    /// context (a root when none is current).
    ///
    /// ```
    /// let engine = otlpx::Engine::builder()
    ///     .service_name("checkout")
    ///     .export(false) // record only: this example has no collector
    ///     .build()?;
    /// let tracer = engine.tracer("checkout", "1.0.0");
    /// let mut span = tracer.start("charge card");
    /// span.set_attribute("payment.amount", 42);
    /// span.end();
    /// assert_eq!(engine.stats().recorded, 1);
    /// # Ok::<(), otlpx::BuildError>(())
    /// ```
    pub fn start<'a>(&self, name: impl Into<Cow<'a, str>>) -> Span<'_> {
        self.span(name).start()
    }

    /// Runs `f` inside a new span named `name`: the span is current while
    /// `f` runs (spans `f` starts are its children), and ends when `f`
    /// returns or panics (a panic sets its status to error). Returns what
    /// `f` returns.
    ///
    /// ```
    /// # let engine = otlpx::Engine::builder().build()?;
    /// # let tracer = engine.tracer("shop", "");
    /// fn load_cart(tracer: &otlpx::Tracer) -> usize {
    ///     // No parent given: a child of whatever span is current.
    ///     let _span = tracer.start("SELECT cart");
    ///     3
    /// }
    /// let items = tracer.in_span("GET /cart", |span| {
    ///     let items = load_cart(&tracer);
    ///     span.set_attribute("cart.items", items);
    ///     items
    /// });
    /// assert_eq!((items, engine.stats().recorded), (3, 2));
    /// # Ok::<(), otlpx::BuildError>(())
    /// ```
    pub fn in_span<'a, T>(
        &self,
        name: impl Into<Cow<'a, str>>,
        f: impl FnOnce(&mut Span<'_>) -> T,
    ) -> T {
        let mut span = self.start(name).attach();
        f(&mut span)
    }

    /// The attribute, event and link limits spans of this tracer obey.
    pub fn span_limits(&self) -> &SpanLimits {
        &self.recorder.limits
    }

    /// Records a span finished elsewhere, in one call.
    ///
    /// # Errors
    ///
    /// [`RecordError::InvalidIds`] for an all-zero trace or span id;
    /// [`RecordError::RingFull`] / [`RecordError::TooLarge`] when the ring
    /// cannot take it. Every error is also counted as a drop. A disabled
    /// engine records nothing and returns `Ok`.
    pub fn record_span(&self, span: &FinishedSpan<'_>) -> Result<(), RecordError> {
        if self.recorder.is_off(Signal::Traces) {
            return Ok(());
        }
        if !span.trace_id.is_valid() || !span.span_id.is_valid() {
            // Relaxed: a statistic.
            self.recorder
                .dropped_invalid
                .fetch_add(1, Ordering::Relaxed);
            return Err(RecordError::InvalidIds);
        }
        let limits = &self.recorder.limits;
        let max_bytes = self.recorder.max_body_bytes();
        let mut s = Scratch::take();
        s.dropped_attributes = span.dropped_attributes_count;
        s.dropped_events = span.dropped_events_count;
        s.dropped_links = span.dropped_links_count;
        let max_count = limits.max_attributes_per_span as usize;
        let over = proto::for_each_kept(span.attributes, max_count, |kv| {
            s.set_attribute(kv.key, &kv.value, limits, max_bytes);
        });
        s.dropped_attributes = s.dropped_attributes.saturating_add(over);
        for e in span.events {
            s.add_event(e, limits, max_bytes);
        }
        for l in span.links {
            s.add_link(l, limits, max_bytes);
        }
        let head = SpanHead {
            trace_id: span.trace_id,
            span_id: span.span_id,
            trace_flags: span.trace_flags,
            trace_state: span.trace_state,
            parent: span.parent_span_id.map(|id| (id, span.parent_is_remote)),
            name: span.name,
            kind: span.kind,
            start: span.start_time_unix_nano,
            end: span.end_time_unix_nano,
            status_code: span.status.code(),
            status_message: match span.status {
                Status::Error { description } => description,
                _ => "",
            },
            dropped_attributes: s.dropped_attributes,
            dropped_events: s.dropped_events,
            dropped_links: s.dropped_links,
        };
        let result = self.write_span(&head, s.body.as_slice());
        s.give_back();
        result
    }

    /// Writes a span message (its head fields and the pre-encoded body) into
    /// this CPU's ring.
    ///
    /// The record is the span as a complete `ScopeSpans.spans` field (key
    /// and length, then the `Span` message): the framer copies it verbatim.
    fn write_span(&self, head: &SpanHead<'_>, body: &[u8]) -> Result<(), RecordError> {
        let len = head.encoded_len() + body.len();
        self.recorder
            .rings(Signal::Traces)
            .local()
            .try_write(RecordKind::Span, self.scope, field_len(len), |slot| {
                let mut e = Enc::new(slot);
                e.len_prefix(f::SCOPE_SPANS_SPANS, len);
                head.put(&mut e);
                e.bytes(body);
                debug_assert!(e.is_full(), "span length computed wrong");
            })
            .map_err(RecordError::from)
    }
}

impl Recorder {
    /// Whether `signal`'s items are no-ops (see [`Recorder::off`]).
    #[inline(always)]
    pub(crate) fn is_off(&self, signal: Signal) -> bool {
        self.off[signal.index()]
    }

    /// The rings of `signal`.
    #[inline]
    pub(crate) fn rings(&self, signal: Signal) -> &Rings {
        &self.signal_rings[signal.index()]
    }

    /// Every ring of every signal (for the fork handlers).
    pub(crate) fn all_rings(&self) -> impl Iterator<Item = &Rings> {
        self.signal_rings.iter()
    }

    /// The largest scratch body a span may grow to: what a ring accepts.
    /// (A record a little over this is refused as too large, and counted.)
    fn max_body_bytes(&self) -> usize {
        self.rings(Signal::Traces).max_payload_bytes()
    }
}

/// A span about to start; from [`Tracer::span`].
#[must_use = "a span builder does nothing until `start`"]
pub struct SpanBuilder<'t, 'a> {
    tracer: &'t Tracer,
    name: Cow<'a, str>,
    kind: SpanKind,
    parent: Parent,
    start_time_unix_nano: Option<u64>,
}

/// Where a new span's parent comes from.
enum Parent {
    /// The current span context, read at `start` (the default).
    Current,
    /// Given; `None` for a root.
    Given(Option<SpanContext>),
}

impl<'t, 'a> SpanBuilder<'t, 'a> {
    /// Sets the span kind (default `Internal`).
    pub fn kind(mut self, kind: SpanKind) -> Self {
        self.kind = kind;
        self
    }

    /// Makes the span a child of `parent` instead of the current span
    /// context (an invalid context is ignored: the span is a root). The
    /// context is copied: the builder borrows nothing from it.
    pub fn parent(mut self, parent: &SpanContext) -> Self {
        self.parent = Parent::Given(Some(parent.clone()).filter(SpanContext::is_valid));
        self
    }

    /// Makes the span the root of a new trace, whatever is current.
    pub fn root(mut self) -> Self {
        self.parent = Parent::Given(None);
        self
    }

    /// Sets an explicit start time instead of now.
    pub fn start_time_unix_nano(mut self, t: u64) -> Self {
        self.start_time_unix_nano = Some(t);
        self
    }

    /// Starts the span.
    #[inline]
    pub fn start(mut self) -> Span<'t> {
        let parent = match std::mem::replace(&mut self.parent, Parent::Given(None)) {
            Parent::Given(parent) => parent,
            Parent::Current => crate::current::current_parent(),
        };
        self.begin(parent)
    }

    #[inline(always)]
    fn begin(self, parent: Option<SpanContext>) -> Span<'t> {
        let recorder = &self.tracer.recorder;
        if recorder.is_off(Signal::Traces) {
            return self.no_op(parent);
        }
        let (new_trace_id, span_id) = crate::context::new_ids();
        let trace_id = parent.as_ref().map_or(new_trace_id, |p| p.trace_id);
        let sampled = recorder.sampler.sampled(parent.as_ref(), &trace_id);
        let (trace_id, trace_state, parent) = match parent {
            Some(p) => (p.trace_id, p.trace_state, Some((p.span_id, p.is_remote))),
            None => (new_trace_id, TraceState::EMPTY, None),
        };
        let context = SpanContext {
            trace_id,
            span_id,
            trace_flags: if sampled {
                TraceFlags::SAMPLED
            } else {
                TraceFlags::NONE
            },
            is_remote: false,
            trace_state,
        };
        let scratch = sampled.then(|| {
            let mut s = Scratch::take();
            s.name.push_str(&self.name);
            s
        });
        Span {
            tracer: self.tracer,
            context,
            parent,
            kind: self.kind,
            start: self
                .start_time_unix_nano
                .unwrap_or_else(|| recorder.clock.now_unix_nanos()),
            status_code: 0,
            scratch,
        }
    }
}

impl<'t> SpanBuilder<'t, '_> {
    /// The span of a disabled engine: it records nothing, and carries its
    /// parent's context (or an invalid one) so propagation still works.
    #[cold]
    fn no_op(self, parent: Option<SpanContext>) -> Span<'t> {
        Span {
            tracer: self.tracer,
            context: parent.unwrap_or_default(),
            parent: None,
            kind: self.kind,
            start: 0,
            status_code: 0,
            scratch: None,
        }
    }
}

/// A span in progress. Ends (and is recorded) on [`end`](Self::end) or when
/// dropped.
///
/// Setting attributes, adding events and links never allocate once this
/// thread has recorded a few spans; they encode straight to protobuf.
pub struct Span<'t> {
    tracer: &'t Tracer,
    context: SpanContext,
    parent: Option<(SpanId, bool)>,
    kind: SpanKind,
    start: u64,
    status_code: u8,
    /// `None` once ended, or when the span is not sampled.
    scratch: Option<Scratch>,
}

impl std::fmt::Debug for Span<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Span")
            .field("context", &self.context)
            .field("recording", &self.is_recording())
            .finish()
    }
}

impl<'t> Span<'t> {
    /// The span's identity, to propagate or to parent children with.
    pub fn context(&self) -> &SpanContext {
        &self.context
    }

    /// Whether the span records anything (it is sampled and not ended).
    pub fn is_recording(&self) -> bool {
        self.scratch.is_some()
    }

    /// Sets an attribute; a key set before gets the new value. Past the
    /// attribute count limit new keys are dropped and counted.
    ///
    /// Values are anything [`ToValue`]: strings (`&str`, `String`,
    /// `Cow<str>`, `Arc<str>`, `Box<str>`), `bool`, every integer type
    /// (`usize`, `u64`, `i32`, …), `f32`/`f64`, bytes (`&[u8]`,
    /// `Vec<u8>`), a [`Value`], and slices, arrays and `Vec`s of these
    /// (bytes aside) as arrays. OTLP integers are signed 64-bit: an
    /// unsigned value above `i64::MAX` is sent as its decimal digits, a
    /// string, so nothing is lost or wrapped.
    ///
    /// ```
    /// # let engine = otlpx::Engine::builder().build()?;
    /// # let tracer = engine.tracer("demo", "");
    /// let body = vec![0u8; 512];
    /// let route = String::from("/orders/{id}");
    /// let mut span = tracer.start(format!("GET {route}"));
    /// span.set_attribute("http.response.body.size", body.len());
    /// span.set_attribute("http.route", route);
    /// span.set_attribute("app.retry_delays_ms", vec![10u32, 20, 40]);
    /// span.set_attribute("app.hash", u64::MAX); // "18446744073709551615"
    /// # Ok::<(), otlpx::BuildError>(())
    /// ```
    pub fn set_attribute(&mut self, key: &str, value: impl ToValue) {
        let recorder = &*self.tracer.recorder;
        if let Some(s) = self.scratch.as_mut() {
            s.set_attribute(
                key,
                &value.to_value(),
                &recorder.limits,
                recorder.max_body_bytes(),
            );
        }
    }

    /// Records `error` as an `exception` event, as the OpenTelemetry
    /// semantic conventions describe it: `exception.type` (the Rust type's
    /// name), `exception.message` (its `Display`), and, when it has
    /// sources, `exception.stacktrace` listing the chain (`Caused by:`,
    /// one `Display` a line). It leaves the span's status alone: set it
    /// with [`set_status`](Self::set_status) if the error failed the
    /// operation. Formats the texts, so it allocates (an error path).
    ///
    /// ```
    /// # let engine = otlpx::Engine::builder().build()?;
    /// # let tracer = engine.tracer("demo", "");
    /// let mut span = tracer.start("read config");
    /// if let Err(e) = std::fs::read("/nonexistent/otlpx.toml") {
    ///     span.record_exception(&e);
    ///     span.set_status(otlpx::Status::error("config unreadable"));
    /// }
    /// # Ok::<(), otlpx::BuildError>(())
    /// ```
    pub fn record_exception<E: std::error::Error + ?Sized>(&mut self, error: &E) {
        if self.scratch.is_none() {
            return;
        }
        let message = error.to_string();
        let mut chain = String::new();
        let mut source = error.source();
        let mut n = 0;
        while let Some(cause) = source {
            use std::fmt::Write as _;
            if n == 0 {
                let _ = write!(chain, "{message}\n\nCaused by:");
            }
            let _ = write!(chain, "\n    {n}: {cause}");
            n += 1;
            source = cause.source();
        }
        let type_name = std::any::type_name::<E>();
        let attributes = [
            KeyValue::new("exception.type", type_name),
            KeyValue::new("exception.message", &message),
            KeyValue::new("exception.stacktrace", &chain),
        ];
        let kept = if chain.is_empty() { 2 } else { 3 };
        self.add_event("exception", &attributes[..kept]);
    }

    /// Adds an event that happens now.
    pub fn add_event(&mut self, name: &str, attributes: &[KeyValue<'_>]) {
        if self.scratch.is_some() {
            let now = self.tracer.recorder.clock.now_unix_nanos();
            self.add_event_with_timestamp(name, now, attributes);
        }
    }

    /// Adds an event at an explicit time (nanoseconds since the Unix epoch).
    pub fn add_event_with_timestamp(
        &mut self,
        name: &str,
        time_unix_nano: u64,
        attributes: &[KeyValue<'_>],
    ) {
        let recorder = &*self.tracer.recorder;
        if let Some(s) = self.scratch.as_mut() {
            let event = Event {
                name,
                time_unix_nano,
                attributes,
                dropped_attributes_count: 0,
            };
            s.add_event(&event, &recorder.limits, recorder.max_body_bytes());
        }
    }

    /// Adds a link to another span.
    pub fn add_link(&mut self, context: &SpanContext, attributes: &[KeyValue<'_>]) {
        let recorder = &*self.tracer.recorder;
        if let Some(s) = self.scratch.as_mut() {
            s.add_link(
                &Link::new(context, attributes),
                &recorder.limits,
                recorder.max_body_bytes(),
            );
        }
    }

    /// Sets the status as the specification orders it: `Ok` is final,
    /// `Unset` never overrides, `Error` replaces `Unset` or an earlier error.
    pub fn set_status(&mut self, status: Status<'_>) {
        let Some(s) = self.scratch.as_mut() else {
            return;
        };
        if self.status_code == Status::Ok.code() || status == Status::Unset {
            return;
        }
        self.status_code = status.code();
        s.status.clear();
        if let Status::Error { description } = status {
            s.status.push_str(description);
        }
    }

    /// Renames the span.
    pub fn update_name(&mut self, name: impl AsRef<str>) {
        if let Some(s) = self.scratch.as_mut() {
            s.name.clear();
            s.name.push_str(name.as_ref());
        }
    }

    /// Makes this span current on this thread until the returned
    /// [`ActiveSpan`] drops, and ends the span then: spans started
    /// meanwhile without an explicit parent, by this code or by libraries
    /// it calls, are its children. The `ActiveSpan` is used as the span
    /// itself (it dereferences to it).
    ///
    /// ```
    /// # let engine = otlpx::Engine::builder().build()?;
    /// # let tracer = engine.tracer("demo", "");
    /// let mut request = tracer.span("GET /").kind(otlpx::SpanKind::Server).start().attach();
    /// request.set_attribute("http.route", "/");
    /// let child = tracer.start("render"); // no parent given
    /// assert_eq!(child.parent_span_id(), Some(request.context().span_id));
    /// # Ok::<(), otlpx::BuildError>(())
    /// ```
    pub fn attach(self) -> ActiveSpan<'t> {
        let guard = self.context.attach();
        ActiveSpan { span: self, guard }
    }

    /// The context of the span current on this thread (an invalid one when
    /// none is): the same as [`SpanContext::current`].
    pub fn current() -> SpanContext {
        SpanContext::current()
    }

    /// The parent's span id, `None` for a root.
    pub fn parent_span_id(&self) -> Option<SpanId> {
        self.parent.map(|(id, _)| id)
    }

    /// Ends the span now and records it.
    pub fn end(mut self) {
        // A drop is counted by the ring; a live span has nobody to report to.
        let _ = self.finish(None);
    }

    /// Ends the span at an explicit time and records it.
    pub fn end_with_timestamp(mut self, end_time_unix_nano: u64) {
        // As in `end`.
        let _ = self.finish(Some(end_time_unix_nano));
    }

    /// Ends the span (now, or at `end_time_unix_nano`) and says whether the
    /// ring took it, for callers that report drops (the C ABI).
    ///
    /// # Errors
    ///
    /// [`RecordError::RingFull`] / [`RecordError::TooLarge`] when the ring
    /// could not take the span; the drop is counted either way. An
    /// unsampled span, or one of a disabled engine, ends with `Ok`.
    pub fn end_checked(mut self, end_time_unix_nano: Option<u64>) -> Result<(), RecordError> {
        self.finish(end_time_unix_nano)
    }

    fn finish(&mut self, end: Option<u64>) -> Result<(), RecordError> {
        let Some(s) = self.scratch.take() else {
            return Ok(());
        };
        let recorder = &self.tracer.recorder;
        let head = SpanHead {
            trace_id: self.context.trace_id,
            span_id: self.context.span_id,
            trace_flags: self.context.trace_flags,
            trace_state: self.context.trace_state.as_str(),
            parent: self.parent,
            name: &s.name,
            kind: self.kind,
            start: self.start,
            end: end.unwrap_or_else(|| recorder.clock.now_unix_nanos()),
            status_code: self.status_code,
            status_message: &s.status,
            dropped_attributes: s.dropped_attributes,
            dropped_events: s.dropped_events,
            dropped_links: s.dropped_links,
        };
        // A drop is counted by the ring.
        let result = self.tracer.write_span(&head, s.body.as_slice());
        s.give_back();
        result
    }
}

/// A span that is current on this thread; from [`Span::attach`].
///
/// Dereferences to the [`Span`]. Dropping it (or [`end`](Self::end))
/// ends the span and makes the context that was current before it current
/// again. Not `Send`: it belongs to the thread it was attached on (across
/// `.await`, use [`FutureExt::with_span`](crate::FutureExt::with_span)).
#[must_use = "the span ends when this is dropped"]
pub struct ActiveSpan<'t> {
    span: Span<'t>,
    guard: crate::current::ContextGuard,
}

impl std::fmt::Debug for ActiveSpan<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("ActiveSpan").field(&self.span).finish()
    }
}

impl<'t> std::ops::Deref for ActiveSpan<'t> {
    type Target = Span<'t>;
    fn deref(&self) -> &Span<'t> {
        &self.span
    }
}

impl std::ops::DerefMut for ActiveSpan<'_> {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.span
    }
}

impl<'t> ActiveSpan<'t> {
    /// Ends the span now; the context current before it is current again.
    pub fn end(self) {
        let Self { span, guard } = self;
        drop(guard);
        span.end();
    }

    /// Stops the span being current and hands it back, still open.
    pub fn deactivate(self) -> Span<'t> {
        self.span
    }
}

impl<'t> Span<'t> {
    /// Lets go of the tracer borrow: the span stays open, as a value to keep
    /// in a table and [`resume`](DetachedSpan::resume) again later (the C
    /// ABI's span handles work this way). Costs a move, nothing else.
    pub fn detach(mut self) -> DetachedSpan {
        DetachedSpan {
            context: std::mem::replace(
                &mut self.context,
                SpanContext {
                    trace_id: TraceId::INVALID,
                    span_id: SpanId::INVALID,
                    trace_flags: TraceFlags::NONE,
                    is_remote: false,
                    trace_state: TraceState::EMPTY,
                },
            ),
            parent: self.parent,
            kind: self.kind,
            start: self.start,
            status_code: self.status_code,
            // Taken: `self` then drops as an ended span, recording nothing.
            scratch: self.scratch.take(),
        }
    }
}

/// An open span that borrows no tracer; from [`Span::detach`].
///
/// It records nothing until attached and ended. Dropping it abandons the
/// span: it is never recorded (it was never counted either).
pub struct DetachedSpan {
    context: SpanContext,
    parent: Option<(SpanId, bool)>,
    kind: SpanKind,
    start: u64,
    status_code: u8,
    scratch: Option<Scratch>,
}

impl std::fmt::Debug for DetachedSpan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DetachedSpan")
            .field("context", &self.context)
            .field("recording", &self.scratch.is_some())
            .finish()
    }
}

impl DetachedSpan {
    /// The span's identity.
    pub fn context(&self) -> &SpanContext {
        &self.context
    }

    /// A live span again, borrowing `tracer`: the tracer it was started
    /// from (another one records it under that tracer's scope).
    pub fn resume(self, tracer: &Tracer) -> Span<'_> {
        Span {
            tracer,
            context: self.context,
            parent: self.parent,
            kind: self.kind,
            start: self.start,
            status_code: self.status_code,
            scratch: self.scratch,
        }
    }
}

impl Drop for Span<'_> {
    /// Ends the span; one dropped while a panic unwinds the stack, with no
    /// status set, ends with status error `panicked`.
    fn drop(&mut self) {
        if self.scratch.is_some() && self.status_code == 0 && std::thread::panicking() {
            self.set_status(Status::error("panicked"));
        }
        // As in `end`.
        let _ = self.finish(None);
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
