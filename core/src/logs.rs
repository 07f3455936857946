//! Logs: the front door of the logs signal. A [`Logger`] (from
//! [`Engine::logger`](crate::Engine::logger)) emits [`LogRecord`]s, each
//! encoded once, as an OTLP `LogRecord` message, straight into a slot of
//! the logs ring of the CPU it runs on; from there they travel the pipeline
//! every signal shares (batched per signal, framed into
//! `ExportLogsServiceRequest`s without re-encoding, sent to `/v1/logs` or
//! the gRPC `LogsService`).
//!
//! Emitting never blocks, never takes a lock and never allocates: a record
//! borrows everything it holds, its length is computed before it is
//! written (one pass), and a full ring drops it and counts it
//! ([`Stats::dropped`](crate::Stats) of
//! [`Engine::signal_stats(Signal::Logs)`](crate::Engine::signal_stats)). A
//! record below the minimum severity costs one compare.
//!
//! Trace correlation: a record takes the trace and span id of the span
//! current on its thread ([`SpanContext::attach`](crate::SpanContext)),
//! unless it names a context itself or says it has none.

use crate::context::{SpanContext, SpanId, TraceFlags, TraceId};
use crate::proto::{self, Enc, Prepared, common, field_len, logs as f, varint_field_len};
use crate::record::{RecordError, Recorder};
use crate::ring::{RecordKind, Signal};
use crate::value::{KeyValue, ToValue, Value};
use std::sync::Arc;

/// A log record's severity: an OTLP `SeverityNumber`, 1 (`TRACE`) to 24
/// (`FATAL4`), in six ranges of four; 0 is unspecified.
///
/// ```
/// use otlpx::logs::Severity;
/// assert!(Severity::WARN > Severity::INFO);
/// assert_eq!(Severity::ERROR.name(), "ERROR");
/// assert_eq!(Severity::new(10).map(|s| s.name()), Some("INFO2"));
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Severity(u8);

impl Severity {
    /// Unspecified (`SEVERITY_NUMBER_UNSPECIFIED`): passes any minimum.
    pub const UNSPECIFIED: Self = Self(0);
    /// `TRACE` (1): fine-grained debugging.
    pub const TRACE: Self = Self(1);
    /// `DEBUG` (5): debugging.
    pub const DEBUG: Self = Self(5);
    /// `INFO` (9): an informational event.
    pub const INFO: Self = Self(9);
    /// `WARN` (13): a warning.
    pub const WARN: Self = Self(13);
    /// `ERROR` (17): an error.
    pub const ERROR: Self = Self(17);
    /// `FATAL` (21): a fatal error.
    pub const FATAL: Self = Self(21);

    /// The severity numbered `number` (0 to 24); `None` past 24.
    pub const fn new(number: u8) -> Option<Self> {
        if number <= 24 {
            Some(Self(number))
        } else {
            None
        }
    }

    /// The `SeverityNumber`.
    pub const fn number(self) -> u8 {
        self.0
    }

    /// The specification's short name: `INFO`, `WARN2`, …; empty for
    /// unspecified. What a record's severity text is when it sets none.
    pub const fn name(self) -> &'static str {
        const NAMES: [&str; 25] = [
            "", "TRACE", "TRACE2", "TRACE3", "TRACE4", "DEBUG", "DEBUG2", "DEBUG3", "DEBUG4",
            "INFO", "INFO2", "INFO3", "INFO4", "WARN", "WARN2", "WARN3", "WARN4", "ERROR",
            "ERROR2", "ERROR3", "ERROR4", "FATAL", "FATAL2", "FATAL3", "FATAL4",
        ];
        NAMES[self.0 as usize]
    }
}

/// A log record's body: any OTLP `AnyValue`, borrowed. A string, a number,
/// a bool, bytes or a homogeneous array ([`Value`]); an array of values of
/// any kind; or a map, nested as deep as needed.
///
/// ```
/// use otlpx::logs::AnyValue;
/// let tags = [AnyValue::from("a"), AnyValue::from(2)];
/// let body = AnyValue::Map(&[
///     ("event", AnyValue::from("checkout")),
///     ("items", AnyValue::from(3)),
///     ("tags", AnyValue::Array(&tags)),
/// ]);
/// # let _ = body;
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum AnyValue<'a> {
    /// A primitive or a homogeneous array: any attribute value.
    Value(Value<'a>),
    /// An array of values of any kinds (OTLP `ArrayValue`).
    Array(&'a [AnyValue<'a>]),
    /// A map (OTLP `KeyValueList`): its entries in order, as given.
    Map(&'a [(&'a str, AnyValue<'a>)]),
}

impl<'a, T: ToValue + ?Sized> From<&'a T> for AnyValue<'a> {
    fn from(v: &'a T) -> Self {
        Self::Value(v.to_value())
    }
}

impl<'a> From<Value<'a>> for AnyValue<'a> {
    fn from(v: Value<'a>) -> Self {
        Self::Value(v)
    }
}

macro_rules! any_from {
    ($($t:ty => |$v:ident| $e:expr),* $(,)?) => {$(
        impl From<$t> for AnyValue<'_> {
            fn from($v: $t) -> Self {
                Self::Value($e)
            }
        }
    )*};
}
any_from! {
    bool => |v| Value::Bool(v),
    i8 => |v| Value::I64(v.into()),
    i16 => |v| Value::I64(v.into()),
    i32 => |v| Value::I64(v.into()),
    i64 => |v| Value::I64(v),
    // isize is at most 64 bits on every platform Rust supports.
    isize => |v| Value::I64(v as i64),
    u16 => |v| Value::I64(v.into()),
    u32 => |v| Value::I64(v.into()),
    u64 => |v| Value::U64(v),
    // usize is at most 64 bits on every platform Rust supports.
    usize => |v| Value::U64(v as u64),
    f32 => |v| Value::F64(v.into()),
    f64 => |v| Value::F64(v),
}

impl AnyValue<'_> {
    /// The `AnyValue` message length (no limit applies to a body).
    fn len(&self) -> usize {
        match self {
            Self::Value(v) => Prepared::new(v, usize::MAX).len(),
            Self::Array(items) => field_len(Self::array_len(items)),
            Self::Map(entries) => field_len(Self::map_len(entries)),
        }
    }

    /// The `ArrayValue` body length.
    fn array_len(items: &[AnyValue<'_>]) -> usize {
        items.iter().map(|v| field_len(v.len())).sum()
    }

    /// The `KeyValueList` body length.
    fn map_len(entries: &[(&str, AnyValue<'_>)]) -> usize {
        entries.iter().map(|(k, v)| field_len(kv_len(k, v))).sum()
    }

    /// Writes the `AnyValue` body.
    fn put(&self, e: &mut Enc<'_>) {
        match self {
            Self::Value(v) => Prepared::new(v, usize::MAX).put(e, usize::MAX),
            Self::Array(items) => {
                e.len_prefix(common::ANY_ARRAY, Self::array_len(items));
                for item in *items {
                    e.len_prefix(common::ARRAY_VALUES, item.len());
                    item.put(e);
                }
            }
            Self::Map(entries) => {
                e.len_prefix(common::ANY_KVLIST, Self::map_len(entries));
                for (key, value) in *entries {
                    e.len_prefix(common::KVLIST_VALUES, kv_len(key, value));
                    e.bytes_field(common::KV_KEY, key.as_bytes());
                    e.len_prefix(common::KV_VALUE, value.len());
                    value.put(e);
                }
            }
        }
    }
}

/// A `KeyValue` body length with an [`AnyValue`] value.
fn kv_len(key: &str, value: &AnyValue<'_>) -> usize {
    field_len(key.len()) + field_len(value.len())
}

/// Which trace context a record correlates with.
#[derive(Clone, Copy, Debug)]
enum Correlation<'a> {
    /// The span current on the emitting thread, if any.
    Current,
    /// This one.
    Given(&'a SpanContext),
    /// None.
    Without,
}

/// A record's attributes.
#[derive(Clone, Copy)]
enum Attributes<'a> {
    /// As the API takes them.
    Given(&'a [KeyValue<'a>]),
    #[cfg_attr(not(feature = "tracing"), allow(dead_code))]
    /// Encoded already, limits applied, by an integration that saw each
    /// value's type as it visited it: repeated `KeyValue` fields in two
    /// parts written one after the other (an event's fields, and its
    /// callsite's location encoded once); `dropped` by the count limit.
    Encoded { parts: [&'a [u8]; 2], dropped: u32 },
}

impl std::fmt::Debug for Attributes<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Given(attributes) => attributes.fmt(f),
            Self::Encoded { parts, .. } => {
                write!(f, "[{} encoded bytes]", parts[0].len() + parts[1].len())
            }
        }
    }
}

/// A log record to emit, borrowing what it holds; build it with chained
/// calls, then hand it to [`Logger::emit`].
///
/// ```
/// use otlpx::KeyValue;
/// use otlpx::logs::{LogRecord, Severity};
/// let engine = otlpx::Engine::builder().export(false).build()?;
/// let logger = engine.logger("checkout", "1.4.0");
/// let order = 1042;
/// logger.emit(
///     &LogRecord::new(Severity::WARN)
///         .body("payment retried")
///         .attributes(&[KeyValue::new("order.id", order), KeyValue::new("attempt", 2)]),
/// );
/// assert_eq!(engine.signal_stats(otlpx::Signal::Logs).recorded, 1);
/// # Ok::<(), otlpx::BuildError>(())
/// ```
#[derive(Clone, Copy, Debug)]
#[must_use = "a log record does nothing until emitted"]
pub struct LogRecord<'a> {
    timestamp: Option<u64>,
    observed_timestamp: Option<u64>,
    severity: Severity,
    severity_text: Option<&'a str>,
    body: Option<AnyValue<'a>>,
    attributes: Attributes<'a>,
    event_name: &'a str,
    correlation: Correlation<'a>,
}

impl<'a> LogRecord<'a> {
    /// A record of `severity`, with nothing else yet: its time and observed
    /// time will be when it is emitted, its trace context the current
    /// span's, its severity text the severity's [name](Severity::name).
    pub fn new(severity: Severity) -> Self {
        Self {
            timestamp: None,
            observed_timestamp: None,
            severity,
            severity_text: None,
            body: None,
            attributes: Attributes::Given(&[]),
            event_name: "",
            correlation: Correlation::Current,
        }
    }

    /// The body: a message string, or any [`AnyValue`].
    pub fn body(mut self, body: impl Into<AnyValue<'a>>) -> Self {
        self.body = Some(body.into());
        self
    }

    /// The attributes. As for spans, a key given twice keeps its last
    /// value, and past the limit attributes are dropped and counted.
    pub fn attributes(mut self, attributes: &'a [KeyValue<'a>]) -> Self {
        self.attributes = Attributes::Given(attributes);
        self
    }

    #[cfg_attr(not(feature = "tracing"), allow(dead_code))]
    /// The attributes, encoded already
    /// ([`EncodedAttributes`](crate::proto::EncodedAttributes)) with the
    /// logger's [limits](Logger::attribute_limits), in two parts written
    /// one after the other; `dropped` of them went past the count limit.
    pub(crate) fn encoded_attributes(mut self, parts: [&'a [u8]; 2], dropped: u32) -> Self {
        self.attributes = Attributes::Encoded { parts, dropped };
        self
    }

    /// When the event happened, in nanoseconds since the Unix epoch
    /// (default: when emitted).
    pub fn timestamp(mut self, unix_nanos: u64) -> Self {
        self.timestamp = Some(unix_nanos);
        self
    }

    /// When the event was observed, e.g. read from a file, in nanoseconds
    /// since the Unix epoch (default: when emitted).
    pub fn observed_timestamp(mut self, unix_nanos: u64) -> Self {
        self.observed_timestamp = Some(unix_nanos);
        self
    }

    /// The severity as the source wrote it (`"warning"`, `"E"`); default:
    /// the severity's name; `""` for none.
    pub fn severity_text(mut self, text: &'a str) -> Self {
        self.severity_text = Some(text);
        self
    }

    /// The event's name, for records that are events.
    pub fn event_name(mut self, name: &'a str) -> Self {
        self.event_name = name;
        self
    }

    /// Correlates the record with `context` instead of the current span.
    pub fn span_context(mut self, context: &'a SpanContext) -> Self {
        self.correlation = Correlation::Given(context);
        self
    }

    /// Correlates the record with no trace, even when a span is current.
    pub fn without_span_context(mut self) -> Self {
        self.correlation = Correlation::Without;
        self
    }
}

/// The parts of a record as written: limits applied, defaults filled.
struct Encoded<'r, 'a> {
    record: &'r LogRecord<'a>,
    time: u64,
    observed: u64,
    severity_text: &'a str,
    ids: Option<(TraceId, SpanId, TraceFlags)>,
    max_attributes: usize,
    max_value_len: usize,
    /// The attributes kept, when [`proto::kept_mask`] could say.
    kept: Option<u64>,
    attributes_len: usize,
    dropped_attributes: u32,
    body_len: usize,
}

impl Encoded<'_, '_> {
    /// The `LogRecord` message length.
    fn len(&self) -> usize {
        let r = self.record;
        let fixed64 = |v: u64| if v == 0 { 0 } else { 9 };
        fixed64(self.time)
            + fixed64(self.observed)
            + if r.severity.0 == 0 {
                0
            } else {
                varint_field_len(u64::from(r.severity.0))
            }
            + if self.severity_text.is_empty() {
                0
            } else {
                field_len(self.severity_text.len())
            }
            + r.body.map_or(0, |_| field_len(self.body_len))
            + self.attributes_len
            + if self.dropped_attributes == 0 {
                0
            } else {
                varint_field_len(u64::from(self.dropped_attributes))
            }
            + self.ids.map_or(0, |_| 5 + field_len(16) + field_len(8))
            + if r.event_name.is_empty() {
                0
            } else {
                field_len(r.event_name.len())
            }
    }

    /// Writes the `LogRecord` message body, in field order.
    fn put(&self, e: &mut Enc<'_>) {
        let r = self.record;
        if self.time != 0 {
            e.fixed64_field(f::TIME, self.time);
        }
        if r.severity.0 != 0 {
            e.varint_field(f::SEVERITY_NUMBER, u64::from(r.severity.0));
        }
        if !self.severity_text.is_empty() {
            e.bytes_field(f::SEVERITY_TEXT, self.severity_text.as_bytes());
        }
        if let Some(body) = &r.body {
            e.len_prefix(f::BODY, self.body_len);
            body.put(e);
        }
        match (r.attributes, self.kept) {
            (Attributes::Encoded { parts, .. }, _) => {
                e.bytes(parts[0]);
                e.bytes(parts[1]);
            }
            (Attributes::Given(attributes), Some(mask)) => {
                proto::for_each_masked(attributes, mask, |kv| {
                    let v = Prepared::new(&kv.value, self.max_value_len);
                    let len = proto::key_value_len(kv.key, &v);
                    proto::put_key_value_field(
                        e,
                        f::ATTRIBUTES,
                        len,
                        kv.key,
                        &v,
                        self.max_value_len,
                    );
                });
            }
            (Attributes::Given(attributes), None) => proto::put_attributes(
                e,
                f::ATTRIBUTES,
                attributes,
                self.max_attributes,
                self.max_value_len,
            ),
        }
        if self.dropped_attributes != 0 {
            e.varint_field(f::DROPPED_ATTRIBUTES, u64::from(self.dropped_attributes));
        }
        if let Some((trace_id, span_id, flags)) = self.ids {
            e.byte(f::FLAGS);
            e.bytes(&u32::from(flags.0).to_le_bytes());
            e.bytes_field(f::TRACE_ID, &trace_id.0);
            e.bytes_field(f::SPAN_ID, &span_id.0);
        }
        if self.observed != 0 {
            e.fixed64_field(f::OBSERVED_TIME, self.observed);
        }
        if !r.event_name.is_empty() {
            e.bytes_field(f::EVENT_NAME, r.event_name.as_bytes());
        }
    }
}

/// An instrumentation scope that emits log records. Cheap to clone; obtain
/// one from [`Engine::logger`](crate::Engine::logger) and keep it.
#[derive(Clone)]
pub struct Logger {
    pub(crate) recorder: Arc<Recorder>,
    pub(crate) scope: u32,
}

impl std::fmt::Debug for Logger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Logger")
            .field("scope", &self.scope)
            .finish()
    }
}

impl Logger {
    /// Whether a record of `severity` would be emitted: logs are on (the
    /// engine is enabled, and it exports logs or exports nothing) and
    /// `severity` is unspecified or at least the configured minimum. One load and a compare: check it before building a costly
    /// record.
    #[inline]
    pub fn enabled(&self, severity: Severity) -> bool {
        let r = &*self.recorder;
        !r.is_off(Signal::Logs) && (severity.0 == 0 || severity.0 >= r.log_min_severity)
    }

    /// The attribute count and value length limits
    /// (`OTEL_LOGRECORD_ATTRIBUTE_COUNT_LIMIT`, `…_VALUE_LENGTH_LIMIT`).
    #[inline]
    pub(crate) fn attribute_limits(&self) -> (usize, usize) {
        let limits = &self.recorder.log_limits;
        (
            limits.max_attributes as usize,
            limits.max_attribute_value_length as usize,
        )
    }

    /// Emits `record`. A record the ring cannot take is dropped and
    /// counted; see [`try_emit`](Self::try_emit) to be told.
    #[inline]
    pub fn emit(&self, record: &LogRecord<'_>) {
        let _ = self.try_emit(record);
    }

    /// Emits `record`, or says why it was dropped.
    ///
    /// # Errors
    ///
    /// [`RecordError::RingFull`] when the exporter is behind and the ring
    /// has no room, [`RecordError::TooLarge`] for a record larger than
    /// half a ring; both are counted as drops. A record below the minimum
    /// severity, or emitted to a disabled engine, is not an error: it is
    /// filtered, as an unsampled span is, and counts nowhere.
    pub fn try_emit(&self, record: &LogRecord<'_>) -> Result<(), RecordError> {
        if !self.enabled(record.severity) {
            return Ok(());
        }
        let r = &*self.recorder;
        let now = match (record.timestamp, record.observed_timestamp) {
            (Some(_), Some(_)) => 0,
            _ => r.clock.now_unix_nanos(),
        };
        let ids = match record.correlation {
            Correlation::Current => crate::current::current_ids(),
            Correlation::Given(c) => c
                .is_valid()
                .then_some((c.trace_id, c.span_id, c.trace_flags)),
            Correlation::Without => None,
        };
        let (max_attributes, max_value_len) = self.attribute_limits();
        let (kept, attributes_len, dropped_attributes) = match record.attributes {
            Attributes::Encoded { parts, dropped } => {
                (None, parts[0].len() + parts[1].len(), dropped)
            }
            Attributes::Given(attributes) => match proto::kept_mask(attributes, max_attributes) {
                Some((mask, dropped)) => {
                    let mut len = 0;
                    proto::for_each_masked(attributes, mask, |kv| {
                        let v = Prepared::new(&kv.value, max_value_len);
                        len += field_len(proto::key_value_len(kv.key, &v));
                    });
                    (Some(mask), len, dropped)
                }
                None => {
                    let (len, dropped) =
                        proto::attributes_len(attributes, max_attributes, max_value_len);
                    (None, len, dropped)
                }
            },
        };
        let encoded = Encoded {
            record,
            time: record.timestamp.unwrap_or(now),
            observed: record.observed_timestamp.unwrap_or(now),
            severity_text: record.severity_text.unwrap_or(record.severity.name()),
            ids,
            max_attributes,
            max_value_len,
            kept,
            attributes_len,
            dropped_attributes,
            body_len: record.body.map_or(0, |b| b.len()),
        };
        let len = encoded.len();
        r.rings(Signal::Logs)
            .local()
            .try_write(RecordKind::LogRecord, self.scope, field_len(len), |slot| {
                let mut e = Enc::new(slot);
                e.len_prefix(f::SCOPE_LOGS_LOG_RECORDS, len);
                encoded.put(&mut e);
                debug_assert!(e.is_full(), "log record length computed wrong");
            })
            .map_err(RecordError::from)
    }
}
