//! The trace API an application calls: a [`Tracer`] starts spans
//! ([`SpanBuilder`], [`Span`]; [`ActiveSpan`] while current, [`DetachedSpan`]
//! while held apart from its tracer) and records spans finished elsewhere
//! ([`FinishedSpan`], with its [`Event`]s and [`Link`]s); [`SpanKind`] and
//! [`Status`] describe a span.
//!
//! Each call encodes as it goes, into the span's `Scratch` (`mod.rs`). A
//! span holds one only while it records: an unsampled span, or one that
//! has ended, has none, and what is set on it is dropped at once.

use super::{Scratch, SpanHead};
use crate::config::SpanLimits;
use crate::context::{SpanContext, SpanId, TraceFlags, TraceId, TraceState};
use crate::proto::{self, Enc, field_len, trace as f};
use crate::record::{RecordError, Recorder};
use crate::ring::{RecordKind, Signal};
use crate::value::{KeyValue, ToValue};
use std::borrow::Cow;
use std::sync::Arc;
use std::sync::atomic::Ordering;

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
    ///
    /// [`Value`]: crate::Value
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
