//! Configuration: one model, filled three ways, checked by one validator.
//!
//! Sources, by precedence: the [`EngineBuilder`](crate::EngineBuilder)'s
//! methods, then the standard `OTEL_*` environment variables, then a TOML
//! file (given to the builder, or named by `OTLPX_CONFIG` / `CONFIG_PATH`),
//! then the defaults below. Each source is read into a `layer` of its
//! own, every value tagged with where it came from ([`Source`]); `resolve`
//! picks, for each setting, the value of the highest source that set it,
//! validates the result and keeps the source beside each value, so an error
//! names the environment variable or `file:line` it came from, and
//! [`EffectiveConfig`] can show where every value came from.
//!
//! Span limits follow the specification's "Span Limits" with its defaults
//! (128 of each, no value length limit), log record limits its
//! "LogRecord Limits" (the same defaults); the batch processors' settings
//! its `OTEL_BSP_*` and `OTEL_BLRP_*` with their defaults, each signal
//! its own. Metrics have no batch processor in the specification (a
//! periodic reader exports each collection): their batching is otlpx's
//! (see [`METRIC_SCHEDULE_DELAY_MS`]), their export timeout
//! `OTEL_METRIC_EXPORT_TIMEOUT`.

pub(crate) mod env;
pub(crate) mod file;
pub(crate) mod layer;
pub(crate) mod resolve;

pub use resolve::{ConfigEntry, EffectiveConfig};

use crate::signal::{SIGNALS, Signal};
use std::fmt;
use std::path::PathBuf;

/// The sampler's configuration lives here, below the sampling stage
/// (`crate::sample`) that compiles it: the configuration imports no stage.
/// A head sampler, as the specification defines them.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
#[non_exhaustive]
pub enum Sampler {
    /// Every span (`always_on`).
    AlwaysOn,
    /// No span (`always_off`).
    AlwaysOff,
    /// A fraction of traces, by trace id (`traceidratio`): 0.0 to 1.0.
    TraceIdRatio(f64),
    /// A child follows its parent; a root span is sampled
    /// (`parentbased_always_on`, the default).
    #[default]
    ParentBasedAlwaysOn,
    /// A child follows its parent; a root span is not
    /// (`parentbased_always_off`).
    ParentBasedAlwaysOff,
    /// A child follows its parent; a root span by trace id ratio
    /// (`parentbased_traceidratio`).
    ParentBasedTraceIdRatio(f64),
}

impl Sampler {
    /// The name `OTEL_TRACES_SAMPLER` uses, and the ratio if any.
    pub fn name(&self) -> &'static str {
        match self {
            Self::AlwaysOn => "always_on",
            Self::AlwaysOff => "always_off",
            Self::TraceIdRatio(_) => "traceidratio",
            Self::ParentBasedAlwaysOn => "parentbased_always_on",
            Self::ParentBasedAlwaysOff => "parentbased_always_off",
            Self::ParentBasedTraceIdRatio(_) => "parentbased_traceidratio",
        }
    }

    /// The ratio of a ratio sampler.
    pub fn ratio(&self) -> Option<f64> {
        match *self {
            Self::TraceIdRatio(r) | Self::ParentBasedTraceIdRatio(r) => Some(r),
            _ => None,
        }
    }
}

/// Where a configuration value came from.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Source {
    /// otlpx's default.
    Default,
    /// A TOML file, at a line.
    File {
        /// The file, as given.
        path: PathBuf,
        /// 1-based line of the key.
        line: usize,
    },
    /// An environment variable.
    Env {
        /// Its name.
        var: String,
    },
    /// A method of the engine builder.
    Builder {
        /// The method's name.
        method: &'static str,
    },
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Default => f.write_str("default"),
            Self::File { path, line } => write!(f, "{}:{line}", path.display()),
            Self::Env { var } => write!(f, "env {var}"),
            Self::Builder { method } => write!(f, "builder .{method}()"),
        }
    }
}

/// A configuration value that cannot be used: where it came from, the key,
/// the value (secrets masked) and why.
#[derive(Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.describe())]
#[non_exhaustive]
pub struct ConfigError {
    /// Where the value came from.
    pub origin: Source,
    /// The setting: the environment variable, the file's dotted key, or
    /// the builder method.
    pub key: String,
    /// The value as given (a header value is shown as `***`).
    pub value: String,
    /// What is wrong with it.
    pub reason: String,
}

debug_as_display!(ConfigError);

impl ConfigError {
    pub(crate) fn new(
        source: &Source,
        key: impl Into<String>,
        value: impl Into<String>,
        reason: impl Into<String>,
    ) -> Self {
        Self {
            origin: source.clone(),
            key: key.into(),
            value: value.into(),
            reason: reason.into(),
        }
    }

    fn describe(&self) -> String {
        let Self {
            origin: source,
            key,
            value,
            reason,
        } = self;
        match source {
            Source::Env { .. } => format!("environment variable {key}={value:?}: {reason}"),
            Source::File { .. } if key.is_empty() => format!("{source}: {reason}"),
            Source::File { .. } => format!("{source}: {key} = {value:?}: {reason}"),
            Source::Builder { method } => format!("builder .{method}({value:?}): {reason}"),
            Source::Default => format!("default {key} = {value:?}: {reason}"),
        }
    }
}

/// The warning for an environment value that is ignored (not strict
/// mode): the error, and what happens instead.
pub(crate) fn ignored(e: &ConfigError) -> String {
    format!("{e}; ignored, using the default (or the configuration file's value)")
}

/// How much of a span is kept, as the OpenTelemetry specification defines
/// span limits. What is cut is counted in the span's `dropped_*_count`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct SpanLimits {
    /// Attributes kept per span (`OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT`).
    pub max_attributes_per_span: u32,
    /// Events kept per span (`OTEL_SPAN_EVENT_COUNT_LIMIT`).
    pub max_events_per_span: u32,
    /// Links kept per span (`OTEL_SPAN_LINK_COUNT_LIMIT`).
    pub max_links_per_span: u32,
    /// Attributes kept per event (`OTEL_EVENT_ATTRIBUTE_COUNT_LIMIT`).
    pub max_attributes_per_event: u32,
    /// Attributes kept per link (`OTEL_LINK_ATTRIBUTE_COUNT_LIMIT`).
    pub max_attributes_per_link: u32,
    /// Longest string (in characters) or byte array (in bytes) an attribute
    /// value keeps; each element of an array separately. `None`: no limit
    /// (`OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT`).
    pub max_attribute_value_length: Option<u32>,
}

impl Default for SpanLimits {
    fn default() -> Self {
        Self {
            max_attributes_per_span: 128,
            max_events_per_span: 128,
            max_links_per_span: 128,
            max_attributes_per_event: 128,
            max_attributes_per_link: 128,
            max_attribute_value_length: None,
        }
    }
}

impl SpanLimits {
    /// The value length limit as a plain bound (`usize::MAX` for none).
    pub(crate) fn value_len(&self) -> usize {
        self.max_attribute_value_length
            .map_or(usize::MAX, |n| n as usize)
    }
}

/// How much of a log record is kept, as the OpenTelemetry specification
/// defines log record limits. What is cut is counted in the record's
/// `dropped_attributes_count`.
///
/// ```
/// let limits = otlpx::config::LogLimits::default();
/// assert_eq!(limits.max_attributes, 128);
/// assert_eq!(limits.max_attribute_value_length, u32::MAX); // no limit
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct LogLimits {
    /// Attributes kept per log record (`OTEL_LOGRECORD_ATTRIBUTE_COUNT_LIMIT`,
    /// else `OTEL_ATTRIBUTE_COUNT_LIMIT`; default 128).
    pub max_attributes: u32,
    /// Longest string (in characters) or byte array (in bytes) an attribute
    /// value keeps; each element of an array separately. `u32::MAX`: no
    /// limit, the default (`OTEL_LOGRECORD_ATTRIBUTE_VALUE_LENGTH_LIMIT`,
    /// else `OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT`).
    pub max_attribute_value_length: u32,
}

impl Default for LogLimits {
    fn default() -> Self {
        Self {
            max_attributes: 128,
            max_attribute_value_length: u32::MAX,
        }
    }
}

/// The settings of the logs front door, resolved: what a `Logger` keeps of
/// a record, which records it keeps at all, and the size of the logs'
/// rings. (Their exporter and batching are in [`ExportConfig`].)
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct LogsConfig {
    /// The log record limits.
    pub(crate) limits: LogLimits,
    /// The lowest OTLP `SeverityNumber` kept (1 `TRACE` to 24 `FATAL4`);
    /// 0, the default, keeps every record (`OTLPX_LOGS_MIN_SEVERITY`,
    /// `[logs] min_severity`).
    pub(crate) min_severity: u8,
    /// Ring size per CPU of the logs' rings: from `OTEL_BLRP_MAX_QUEUE_SIZE`
    /// as the traces' is from `OTEL_BSP_MAX_QUEUE_SIZE`; an explicit
    /// `workers.ring_bytes_per_cpu` sizes both.
    pub(crate) ring_bytes_per_cpu: usize,
}

/// Default ring size per CPU: 1 MiB holds ~3,000 spans of ~300 bytes, about
/// 30 ms of a saturated producer core at 100k spans/s, while a consumer is
/// meant to drain every few milliseconds. Rings are allocated zeroed, so memory the traffic
/// never reaches is never touched.
pub const DEFAULT_RING_BYTES_PER_CPU: usize = 1 << 20;

/// The OTLP transport protocol.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Protocol {
    /// OTLP/gRPC (HTTP/2), default port 4317.
    #[default]
    Grpc,
    /// OTLP/HTTP with binary protobuf bodies, default port 4318.
    HttpProtobuf,
}

/// What the exporter does when its in-flight byte budget
/// (`max_in_flight_bytes` of requests being sent or waiting for a retry)
/// is full and more items are waiting in the rings. The application thread never waits either way.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Overflow {
    /// Evict the oldest request that is waiting to be retried (its spans
    /// counted as dropped, reason `evicted`), so that newer spans go out:
    /// in an outage, the latest data is what the collector gets once it is
    /// back. Requests on the wire are never evicted.
    #[default]
    DropOldest,
    /// Keep every request until it is settled; the rings fill and drop new
    /// spans (reason `ring_full`).
    DropNewest,
}

impl Overflow {
    /// The name the file and `config --check` use.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::DropOldest => "drop_oldest",
            Self::DropNewest => "drop_newest",
        }
    }
}

/// Compression of request bodies, done by the workers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Compression {
    /// Bodies sent as encoded.
    #[default]
    None,
    /// gzip (deflate, zlib-rs backend), at [`GZIP_LEVEL_DEFAULT`] unless set.
    Gzip,
    /// zstd, at [`ZSTD_LEVEL_DEFAULT`] unless set. The OTLP specification
    /// names it for OTLP/HTTP; over gRPC the Collector accepts it too.
    Zstd,
}

impl Compression {
    /// The name used on the wire (`grpc-encoding`, `Content-Encoding`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "identity",
            Self::Gzip => "gzip",
            Self::Zstd => "zstd",
        }
    }
}

/// gzip level 1. On a 512-span request (zlib-rs backend) it takes a
/// seventh of level 6's time, ~0.2 µs a span, for a 10% lower ratio
/// (BENCHMARKS.md, `compress_batch`): level 6 alone would hold one worker
/// under ~750k spans/s.
pub const GZIP_LEVEL_DEFAULT: u32 = 1;

/// zstd level 1: the fastest standard level, and already a better ratio
/// than gzip level 6 on OTLP spans (BENCHMARKS.md, `compress_batch`).
pub const ZSTD_LEVEL_DEFAULT: i32 = 1;

/// Default per-request timeout, the OTLP exporter specification's 10 s.
pub const EXPORT_TIMEOUT_MS_DEFAULT: u64 = 10_000;

/// The endpoint of an exporting engine configured with none, over gRPC:
/// the OTLP exporter specification's default (a Collector on this host).
pub const DEFAULT_GRPC_ENDPOINT: &str = "http://localhost:4317";

/// The endpoint of an exporting engine configured with none, over
/// OTLP/HTTP: the specification's default, with the traces path.
pub const DEFAULT_HTTP_TRACES_ENDPOINT: &str = "http://localhost:4318/v1/traces";

/// The logs endpoint of an exporting engine configured with none, over
/// OTLP/HTTP: the specification's default, with the logs path.
pub const DEFAULT_HTTP_LOGS_ENDPOINT: &str = "http://localhost:4318/v1/logs";

/// The metrics endpoint of an exporting engine configured with none, over
/// OTLP/HTTP: the specification's default, with the metrics path.
pub const DEFAULT_HTTP_METRICS_ENDPOINT: &str = "http://localhost:4318/v1/metrics";

/// Default bound on how long dropping the last handle of an engine may
/// flush before abandoning what is still unanswered: 5 s, half the export
/// timeout, so that a process exiting with its receiver down is held up
/// for seconds, not for every retry a request has left. (An explicit
/// `Engine::shutdown(timeout)` takes its own timeout.)
pub const SHUTDOWN_TIMEOUT_MS_DEFAULT: u64 = 5_000;

/// Default spans per request: the specification's
/// `OTEL_BSP_MAX_EXPORT_BATCH_SIZE` default.
pub const MAX_BATCH_SPANS_DEFAULT: usize = 512;

/// Default log records per request: the specification's
/// `OTEL_BLRP_MAX_EXPORT_BATCH_SIZE` default.
pub const MAX_BATCH_LOG_RECORDS_DEFAULT: usize = 512;

/// Default queue of the batch log record processor, in records: the
/// specification's `OTEL_BLRP_MAX_QUEUE_SIZE` default. (otlpx queues bytes:
/// a queue size given is converted to the logs' ring size; without one
/// the rings are [`DEFAULT_RING_BYTES_PER_CPU`].)
pub const LOG_QUEUE_RECORDS_DEFAULT: usize = 2048;

/// Default age bound of a logs batch: the specification's
/// `OTEL_BLRP_SCHEDULE_DELAY` default, 1 s (the same as otlpx's for
/// spans, [`SCHEDULE_DELAY_MS_DEFAULT`]).
pub const LOG_SCHEDULE_DELAY_MS_DEFAULT: u64 = 1_000;

/// Default bound on all attempts of one logs request: the
/// specification's `OTEL_BLRP_EXPORT_TIMEOUT` default, 30 s.
pub const LOG_BATCH_EXPORT_TIMEOUT_MS_DEFAULT: u64 = 30_000;

/// How long a metric waits in its ring for the rest of its collection
/// before its request goes: 100 ms, otlpx's choice (not configurable).
///
/// The specification has no batch processor for metrics and so no
/// `OTEL_BSP`-like variable: a periodic reader collects every
/// `OTEL_METRIC_EXPORT_INTERVAL` (60 s by default) and exports the
/// collection. Here a collection writes each of its metrics into the
/// metrics' rings in one burst, microseconds to a few milliseconds long,
/// after which nothing comes until the next one. The metrics should
/// leave together, in one request, and promptly: they have already
/// waited their interval, and a dashboard showing the latest point waits
/// on them. So the metrics' rings wake their worker with their
/// first record (`export::batch::Policy::prompt`), whose age counts from
/// then, and the request goes this long after: time for the rest of a
/// collection of thousands of metrics to arrive even on a loaded
/// machine, short beside any interval. A collection larger than a
/// request goes out as each request fills. Nothing polls for metrics in
/// between: an engine where nothing records metrics never wakes for
/// them.
pub const METRIC_SCHEDULE_DELAY_MS: u64 = 100;

/// Metrics per request, at most: 8192, the OpenTelemetry Collector's batch
/// processor default (`send_batch_size`), so that a collection of usual
/// size goes as one request; the byte bound
/// ([`MAX_BATCH_BYTES_DEFAULT`]) splits a larger one. Not configurable,
/// as [`METRIC_SCHEDULE_DELAY_MS`].
pub const MAX_BATCH_METRICS: usize = 8192;

/// Default bound on all attempts of one metrics request: the
/// specification's `OTEL_METRIC_EXPORT_TIMEOUT` default, 30 s.
pub const METRIC_EXPORT_TIMEOUT_MS_DEFAULT: u64 = 30_000;

/// Default bound on one request's encoded size. The Collector's OTLP
/// receiver refuses gRPC messages over 4 MiB by default
/// (`max_recv_msg_size_mib`); 2 MiB keeps well clear of it with framing.
pub const MAX_BATCH_BYTES_DEFAULT: usize = 2 << 20;

/// Default age bound of a batch: how long a span may wait in a ring for
/// more to fill its request. The specification's `OTEL_BSP_SCHEDULE_DELAY`
/// default is 5 s, sized for SDKs that export from one queue; otlpx sends a
/// batch as soon as it is full, so this only bounds quiet periods.
pub const SCHEDULE_DELAY_MS_DEFAULT: u64 = 1_000;

/// Default number of separately connected gRPC channels (HTTP/2
/// connections), or of pooled HTTP/1.1 keep-alive connections.
pub const CONNECTIONS_DEFAULT: usize = 2;

/// Default bound on requests in flight, all workers together.
pub const MAX_IN_FLIGHT_DEFAULT: usize = 8;

/// Default bound on the bytes of requests in flight (as sent, compressed),
/// waiting for an answer or for a retry: 16 MiB, eight requests of the
/// largest default size uncompressed, so by default the count binds first
/// and this only bounds larger batches.
pub const MAX_IN_FLIGHT_BYTES_DEFAULT: usize = 16 << 20;

/// Default wait bound before the first retry (full jitter: 0 to this).
pub const RETRY_INITIAL_BACKOFF_MS_DEFAULT: u64 = 1_000;

/// Default cap on the backoff bound: 1, 2, 4, 5, 5 … s. Within the 30 s
/// default batch export timeout that is about ten attempts on average, so
/// a receiver restarting for a few seconds is ridden out without a retry
/// storm.
pub const RETRY_MAX_BACKOFF_MS_DEFAULT: u64 = 5_000;

/// How the engine retries failed requests (the rules are in
/// `transport::retry`).
#[cfg_attr(not(feature = "export"), allow(dead_code))]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct RetryPolicy {
    /// Whether to retry at all.
    pub(crate) enabled: bool,
    /// The backoff bound before the first retry.
    pub(crate) initial: std::time::Duration,
    /// The cap on the backoff bound.
    pub(crate) max: std::time::Duration,
}

/// The export settings of every signal, resolved and validated.
/// (Without the `export` feature only the endpoint and admin address are
/// read: to refuse them.)
#[cfg_attr(not(feature = "export"), allow(dead_code))]
#[derive(Clone, Debug)]
pub(crate) struct ExportConfig {
    /// Each signal's exporter and batching, by [`Signal::index`].
    pub(crate) signals: [SignalExport; SIGNALS],
    /// How long dropping the last handle may flush.
    pub(crate) shutdown_timeout: std::time::Duration,
    /// The disk spool, when configured.
    pub(crate) spool: Option<SpoolConfig>,
    pub(crate) compression_level: Option<i32>,
    pub(crate) retry: RetryPolicy,
    pub(crate) connections: usize,
    pub(crate) max_in_flight: usize,
    pub(crate) max_in_flight_bytes: usize,
    pub(crate) overflow: Overflow,
    /// `None`: one worker per 8 CPUs, at least one.
    pub(crate) workers: Option<usize>,
    pub(crate) pin_workers: bool,
    /// `None`: the cores this process may run on, in order.
    pub(crate) worker_cores: Option<Vec<usize>>,
    /// Where the admin endpoint listens (`None`: no admin endpoint).
    pub(crate) admin_address: Option<std::net::SocketAddr>,
    /// How far back `/ready` looks for a failed export attempt.
    pub(crate) ready_window: std::time::Duration,
}

#[cfg_attr(not(feature = "export"), allow(dead_code))]
impl ExportConfig {
    /// The exporter and batching of `signal`.
    #[cfg_attr(not(feature = "export"), allow(dead_code))]
    pub(crate) fn signal(&self, signal: Signal) -> &SignalExport {
        &self.signals[signal.index()]
    }
}

/// One signal's exporter (`OTEL_EXPORTER_OTLP_{TRACES,LOGS,METRICS}_*`
/// over `OTEL_EXPORTER_OTLP_*`) and batch processor (`OTEL_BSP_*`,
/// `OTEL_BLRP_*`; for metrics otlpx's own), resolved. (Without the
/// `export` feature only the endpoints are read: to refuse them.)
#[derive(Clone, Debug)]
#[cfg_attr(not(feature = "export"), allow(dead_code))]
pub(crate) struct SignalExport {
    /// The endpoints' full URLs (one or more; the signal's path, such as
    /// `/v1/logs`, already appended where the specification says so), and
    /// where they were given.
    pub(crate) urls: Option<(Vec<String>, Source)>,
    /// Whether to export the signal at all (`false`: record for `drain`).
    pub(crate) enabled: bool,
    pub(crate) protocol: Protocol,
    pub(crate) compression: Compression,
    pub(crate) headers: Vec<(String, String)>,
    /// Bound on one attempt (`OTEL_EXPORTER_OTLP_TIMEOUT`).
    pub(crate) timeout: std::time::Duration,
    /// Bound on all attempts of one request (`OTEL_BSP_EXPORT_TIMEOUT`,
    /// `OTEL_BLRP_EXPORT_TIMEOUT`, `OTEL_METRIC_EXPORT_TIMEOUT`).
    pub(crate) deadline: std::time::Duration,
    /// Certificates for `https://` endpoints.
    pub(crate) tls: TlsFiles,
    /// Items per request, at most.
    pub(crate) max_batch: usize,
    pub(crate) max_batch_bytes: usize,
    pub(crate) schedule_delay: std::time::Duration,
    /// The signal's first record wakes its worker, and its batch's age
    /// counts from then (metrics: see [`METRIC_SCHEDULE_DELAY_MS`]).
    pub(crate) prompt: bool,
}

/// PEM files for TLS, as configured; read when the engine is built.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct TlsFiles {
    /// Trusted CA certificates instead of the system's roots
    /// (`OTEL_EXPORTER_OTLP_CERTIFICATE`).
    pub(crate) ca_certificate: Option<std::path::PathBuf>,
    /// The client's certificate chain for mutual TLS
    /// (`OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE`).
    pub(crate) client_certificate: Option<std::path::PathBuf>,
    /// The client's private key for mutual TLS
    /// (`OTEL_EXPORTER_OTLP_CLIENT_KEY`).
    pub(crate) client_key: Option<std::path::PathBuf>,
}

/// The disk spool's size bound when none is given: 256 MiB of compressed
/// requests, an outage of tens of minutes at tens of thousands of spans a
/// second, small beside a disk.
pub const SPOOL_MAX_BYTES_DEFAULT: usize = 256 << 20;

/// The smallest spool size bound accepted: a few requests' worth.
pub const SPOOL_MIN_BYTES: usize = 1 << 20;

/// Where the disk spool lives and how big it may grow.
#[cfg_attr(not(feature = "export"), allow(dead_code))]
#[derive(Clone, Debug)]
pub(crate) struct SpoolConfig {
    pub(crate) dir: std::path::PathBuf,
    pub(crate) max_bytes: u64,
}

/// Default window of `/ready`: an export attempt that failed this recently
/// makes the engine not ready.
pub const READY_WINDOW_MS_DEFAULT: u64 = 30_000;
