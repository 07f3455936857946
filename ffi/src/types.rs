//! The plain C structs and enums the ABI passes by pointer or value:
//! strings, attributes, span contexts, events, links, finished spans, log
//! records and their bodies, and the bounds a body is held to.
//!
//! Every enum a caller *passes in* travels as `uint32_t` and is checked
//! (an out-of-range Rust enum would be undefined behaviour); flags are
//! `uint8_t`, 0 for false and anything else for true, for the same reason.
//! A zero-initialised struct is always a valid "nothing here" value: empty
//! strings, no attributes, kind and status unset.

use std::ffi::c_char;

/// A string or byte string: `len` bytes at `ptr`, not NUL-terminated.
/// `ptr` may be NULL when `len` is 0.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct otlpx_str {
    /// The first byte.
    pub ptr: *const c_char,
    /// How many bytes.
    pub len: usize,
}

/// The type of an [`otlpx_attribute`]'s value.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum otlpx_value_type {
    /// `string`: UTF-8.
    String = 1,
    /// `int_value` as a boolean: 0 is false, anything else true.
    Bool = 2,
    /// `int_value`.
    Int = 3,
    /// `double_value`.
    Double = 4,
    /// `string`: any bytes.
    Bytes = 5,
    /// `array`: `array_len` `otlpx_str`s, each UTF-8.
    StringArray = 6,
    /// `array`: `array_len` `uint8_t`s, each 0 (false) or 1 (true).
    BoolArray = 7,
    /// `array`: `array_len` `int64_t`s.
    IntArray = 8,
    /// `array`: `array_len` `double`s.
    DoubleArray = 9,
    /// `array`: `array_len` `otlpx_str`s, any bytes.
    BytesArray = 10,
    /// `array`: `array_len` `otlpx_any_value`s, each of any type (a
    /// heterogeneous array). Only in an `otlpx_any_value` (a log body):
    /// an attribute of this type is refused.
    Array = 11,
    /// `array`: `array_len` `otlpx_any_key_value`s, in order (a map; a key
    /// given twice is sent twice). Only in an `otlpx_any_value`, as
    /// `ARRAY`.
    Map = 12,
}

/// One attribute: a key and a typed value. Only the fields the type names
/// are read. `type` is an `otlpx_value_type` number; others are refused
/// with `OTLPX_STATUS_INVALID_ARGUMENT`.
///
/// Values longer than the engine's attribute value length limit
/// (`OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT`) are truncated — strings by
/// characters, bytes by bytes, each array element on its own — and
/// counted in `otlpx_stats.values_truncated`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct otlpx_attribute {
    /// The key, UTF-8.
    pub key: otlpx_str,
    /// An `otlpx_value_type`.
    pub r#type: u32,
    /// `STRING` and `BYTES` values.
    pub string: otlpx_str,
    /// `INT` and `BOOL` values.
    pub int_value: i64,
    /// `DOUBLE` values.
    pub double_value: f64,
    /// The elements of an `*_ARRAY` value.
    pub array: *const std::ffi::c_void,
    /// How many elements `array` has.
    pub array_len: usize,
}

/// How deep a log body may nest: the body is level 1, a value in a map
/// or array body level 2, and so on. A body deeper than this is refused
/// with `OTLPX_STATUS_INVALID_ARGUMENT`. Structured log bodies are a few
/// levels deep; the bound keeps a cyclic or runaway structure (which C can
/// build with pointers) from costing more than a bounded amount of work.
pub const OTLPX_MAX_BODY_DEPTH: u32 = 16;

/// How many values a log body may hold, counting every value at every
/// level and every element of its arrays, however often the body's
/// pointers repeat the same array; more is refused with
/// `OTLPX_STATUS_INVALID_ARGUMENT`. Each value takes at least a byte of
/// the encoded record, and a record may take at most half a ring (512 KiB
/// with the default 1 MiB rings), so a body this large already needs rings
/// of 2 MiB or more; the bound stops 16 levels of shared pointers from
/// making a small C structure into an exponentially large body.
pub const OTLPX_MAX_BODY_VALUES: u32 = 1 << 20;

/// Any OTLP value: a log record's body, or a value nested in one. The
/// same fields as an `otlpx_attribute`'s value, read the same way, plus two
/// types only a body may have: `OTLPX_VALUE_TYPE_ARRAY` (`array` holds
/// `otlpx_any_value`s of any types) and `OTLPX_VALUE_TYPE_MAP` (`array`
/// holds `otlpx_any_key_value`s).
///
/// `type` 0 means no value: a record without a body (so a zeroed record
/// is valid). Nested values must have a type: 0 inside an array or map is
/// refused with `OTLPX_STATUS_INVALID_ARGUMENT`, as is nesting deeper than
/// `OTLPX_MAX_BODY_DEPTH` or more than `OTLPX_MAX_BODY_VALUES` values.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct otlpx_any_value {
    /// An `otlpx_value_type`, or 0 for none (top level only).
    pub r#type: u32,
    /// `STRING` and `BYTES` values.
    pub string: otlpx_str,
    /// `INT` and `BOOL` values.
    pub int_value: i64,
    /// `DOUBLE` values.
    pub double_value: f64,
    /// The elements of an `*_ARRAY`, `ARRAY` or `MAP` value.
    pub array: *const std::ffi::c_void,
    /// How many elements `array` has.
    pub array_len: usize,
}

/// One entry of a map value (`OTLPX_VALUE_TYPE_MAP`): a key and any value.
/// Laid out as an `otlpx_attribute` is (the key, then the value's fields),
/// so an array of attributes of the plain types is also a map's entries.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct otlpx_any_key_value {
    /// The key, UTF-8.
    pub key: otlpx_str,
    /// The value.
    pub value: otlpx_any_value,
}

/// A telemetry signal, for the calls that take one
/// (`otlpx_engine_signal_stats`, `otlpx_engine_drain`). Numbers are
/// stable and never reused; 0 is no signal.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum otlpx_signal {
    /// Spans.
    Traces = 1,
    /// Log records.
    Logs = 2,
}

/// One log record, for `otlpx_logger_emit`: read during the call only. A
/// zero-initialised record is valid: severity unspecified, no body, no
/// attributes, timestamps now, no trace context.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct otlpx_log_record {
    /// When the event happened, in nanoseconds since the Unix epoch; 0 for
    /// now.
    pub time_unix_nano: u64,
    /// When it was observed (e.g. read from a file), in nanoseconds since
    /// the Unix epoch; 0 for now.
    pub observed_time_unix_nano: u64,
    /// An OTLP `SeverityNumber`: 0 (unspecified) or 1 (`TRACE`) to 24
    /// (`FATAL4`); others are refused with `OTLPX_STATUS_INVALID_ARGUMENT`.
    pub severity_number: u32,
    /// The severity as the source wrote it (`"warning"`), UTF-8; empty for
    /// the severity's short name (`"WARN"`, `"INFO2"`; none for
    /// unspecified).
    pub severity_text: otlpx_str,
    /// The body: a message string, or any value (type 0: none).
    pub body: otlpx_any_value,
    /// `attributes_len` attributes (NULL when 0), of the plain types only.
    pub attributes: *const otlpx_attribute,
    /// How many attributes.
    pub attributes_len: usize,
    /// The event's name, for records that are events, UTF-8; empty for
    /// none.
    pub event_name: otlpx_str,
    /// The trace the record belongs to, when `has_span_context` is set.
    pub trace_id: [u8; 16],
    /// The span it belongs to, when `has_span_context` is set.
    pub span_id: [u8; 8],
    /// W3C trace flags (bit 0: sampled), when `has_span_context` is set.
    pub trace_flags: u8,
    /// Non-zero: the record correlates with the span `trace_id` and
    /// `span_id` name (neither may be all zeros). Zero: with no span. There
    /// is no "current span" on the C side: a record has the context it is
    /// given, or none, whatever the calling thread is doing.
    pub has_span_context: u8,
}

/// The role of a span, numbered as OTLP numbers it.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum otlpx_span_kind {
    /// Not said: recorded as `INTERNAL` (so a zeroed struct is valid).
    Unspecified = 0,
    /// An internal operation.
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

/// A span's outcome, numbered as OTLP numbers it.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum otlpx_status_code {
    /// Nothing said.
    Unset = 0,
    /// Marked successful.
    Ok = 1,
    /// Failed; a description may say why.
    Error = 2,
}

/// Which spans an engine samples (`OTEL_TRACES_SAMPLER`).
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum otlpx_sampler {
    /// Every span.
    AlwaysOn = 0,
    /// No span.
    AlwaysOff = 1,
    /// A fraction of traces, by trace id.
    TraceIdRatio = 2,
    /// A child follows its parent; a root span is sampled (the default).
    ParentBasedAlwaysOn = 3,
    /// A child follows its parent; a root span is not.
    ParentBasedAlwaysOff = 4,
    /// A child follows its parent; a root span by trace id ratio.
    ParentBasedTraceIdRatio = 5,
}

/// The OTLP transport.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum otlpx_protocol {
    /// OTLP/gRPC.
    Grpc = 0,
    /// OTLP/HTTP with binary protobuf bodies.
    HttpProtobuf = 1,
}

/// Compression of request bodies.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum otlpx_compression {
    /// None.
    None = 0,
    /// gzip.
    Gzip = 1,
    /// zstd.
    Zstd = 2,
}

/// A span's identity as W3C Trace Context defines it.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct otlpx_span_context {
    /// The trace id, big-endian bytes as in `traceparent`.
    pub trace_id: [u8; 16],
    /// The span id.
    pub span_id: [u8; 8],
    /// W3C trace flags (bit 0: sampled).
    pub trace_flags: u8,
    /// Non-zero when the context came from another process.
    pub is_remote: u8,
    /// The W3C `tracestate` header value; empty for none.
    pub trace_state: otlpx_str,
}

/// An event of a finished span.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct otlpx_event {
    /// The event name, UTF-8.
    pub name: otlpx_str,
    /// When it happened, in nanoseconds since the Unix epoch.
    pub time_unix_nano: u64,
    /// `attributes_len` attributes (NULL when 0).
    pub attributes: *const otlpx_attribute,
    /// How many attributes.
    pub attributes_len: usize,
    /// Attributes the caller already dropped.
    pub dropped_attributes_count: u32,
}

/// A link from a finished span to another span.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct otlpx_link {
    /// The linked span.
    pub context: otlpx_span_context,
    /// `attributes_len` attributes (NULL when 0).
    pub attributes: *const otlpx_attribute,
    /// How many attributes.
    pub attributes_len: usize,
    /// Attributes the caller already dropped.
    pub dropped_attributes_count: u32,
}

/// A span finished elsewhere (by another SDK), described in full for
/// `otlpx_tracer_record_span`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct otlpx_finished_span {
    /// The span's trace id; must not be all zeros.
    pub trace_id: [u8; 16],
    /// The span's id; must not be all zeros.
    pub span_id: [u8; 8],
    /// W3C trace flags.
    pub trace_flags: u8,
    /// Non-zero when the parent came from another process.
    pub parent_is_remote: u8,
    /// The parent span's id; all zeros for a root span.
    pub parent_span_id: [u8; 8],
    /// The W3C `tracestate`; empty for none.
    pub trace_state: otlpx_str,
    /// The span name, UTF-8.
    pub name: otlpx_str,
    /// An `otlpx_span_kind`.
    pub kind: u32,
    /// Start, in nanoseconds since the Unix epoch.
    pub start_time_unix_nano: u64,
    /// End, in nanoseconds since the Unix epoch.
    pub end_time_unix_nano: u64,
    /// An `otlpx_status_code`.
    pub status_code: u32,
    /// The status description (kept only for `ERROR`), UTF-8.
    pub status_message: otlpx_str,
    /// `attributes_len` attributes (NULL when 0).
    pub attributes: *const otlpx_attribute,
    /// How many attributes.
    pub attributes_len: usize,
    /// `events_len` events (NULL when 0).
    pub events: *const otlpx_event,
    /// How many events.
    pub events_len: usize,
    /// `links_len` links (NULL when 0).
    pub links: *const otlpx_link,
    /// How many links.
    pub links_len: usize,
    /// Attributes the caller already dropped.
    pub dropped_attributes_count: u32,
    /// Events the caller already dropped.
    pub dropped_events_count: u32,
    /// Links the caller already dropped.
    pub dropped_links_count: u32,
}

/// How a handle-based span starts; pass NULL for the defaults (a root span
/// of kind `INTERNAL`, starting now).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct otlpx_span_options {
    /// An `otlpx_span_kind`.
    pub kind: u32,
    /// Start, in nanoseconds since the Unix epoch; 0 for now.
    pub start_time_unix_nano: u64,
    /// An open span of the same engine to be the parent; 0 for none.
    pub parent_span: u64,
    /// A parent from elsewhere (e.g. a `traceparent` header); NULL for
    /// none. Ignored when `parent_span` is set.
    pub parent_context: *const otlpx_span_context,
}
