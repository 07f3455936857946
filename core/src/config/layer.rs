//! One source's configuration: every setting that source set, each value
//! tagged with its [`Source`]. A setting a source leaves alone is `None`,
//! so [`resolve`](super::resolve) can fall through to the next source.

use super::Sampler;
use super::{Compression, Overflow, Protocol, Source};
use crate::signal::Signal;
use std::path::PathBuf;
use std::time::Duration;

/// A value and where it came from.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Sourced<T> {
    pub(crate) value: T,
    pub(crate) source: Source,
}

impl<T> Sourced<T> {
    pub(crate) fn new(value: T, source: Source) -> Option<Self> {
        Some(Self { value, source })
    }

    pub(crate) fn map<U>(self, f: impl FnOnce(T) -> U) -> Sourced<U> {
        Sourced {
            value: f(self.value),
            source: self.source,
        }
    }
}

/// A setting one source may or may not have set.
pub(crate) type Opt<T> = Option<Sourced<T>>;

/// The OTLP exporter settings the specification defines per signal, first
/// their generic form (`OTEL_EXPORTER_OTLP_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Scope {
    Generic = 0,
    Traces = 1,
    Metrics = 2,
    Logs = 3,
}

impl Scope {
    pub(crate) const ALL: [Self; 4] = [Self::Generic, Self::Traces, Self::Metrics, Self::Logs];

    /// The scope of `signal`'s own exporter settings.
    pub(crate) fn of(signal: Signal) -> Self {
        match signal {
            Signal::Traces => Self::Traces,
            Signal::Logs => Self::Logs,
            Signal::Metrics => Self::Metrics,
        }
    }

    /// The infix of the environment variables (`TRACES_`) and the TOML
    /// section (`exporter.traces`).
    pub(crate) fn env_infix(self) -> &'static str {
        match self {
            Self::Generic => "",
            Self::Traces => "TRACES_",
            Self::Metrics => "METRICS_",
            Self::Logs => "LOGS_",
        }
    }

    pub(crate) fn section(self) -> &'static str {
        match self {
            Self::Generic => "exporter",
            Self::Traces => "exporter.traces",
            Self::Metrics => "exporter.metrics",
            Self::Logs => "exporter.logs",
        }
    }
}

/// The OTLP exporter settings of one scope.
#[derive(Clone, Debug, Default)]
pub(crate) struct ExporterLayer {
    pub(crate) endpoint: Opt<String>,
    pub(crate) protocol: Opt<Protocol>,
    /// Merged by name across sources: each header keeps its own source.
    pub(crate) headers: Vec<(String, Sourced<String>)>,
    pub(crate) compression: Opt<Compression>,
    pub(crate) timeout: Opt<Duration>,
    pub(crate) certificate: Opt<PathBuf>,
    pub(crate) client_certificate: Opt<PathBuf>,
    pub(crate) client_key: Opt<PathBuf>,
    pub(crate) insecure: Opt<bool>,
    /// Whether this signal is exported at all (`OTEL_TRACES_EXPORTER`,
    /// `OTEL_LOGS_EXPORTER`, `OTEL_METRICS_EXPORTER`, `[exporter]
    /// enabled`, `.export(bool)`); off, the engine records for its caller
    /// to drain.
    pub(crate) enabled: Opt<bool>,
}

/// A batch processor's settings (`OTEL_BSP_*`, `OTEL_BLRP_*`; for metrics
/// only the export timeout, see [`Layer::metric_export`]).
#[derive(Clone, Debug, Default)]
pub(crate) struct BatchLayer {
    pub(crate) schedule_delay: Opt<Duration>,
    pub(crate) export_timeout: Opt<Duration>,
    pub(crate) max_queue_size: Opt<usize>,
    pub(crate) max_export_batch_size: Opt<usize>,
}

/// The attribute and span limits, in the order of [`LIMITS`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Limit {
    AttributeValueLength,
    AttributeCount,
    SpanAttributeValueLength,
    SpanAttributeCount,
    SpanEventCount,
    SpanLinkCount,
    EventAttributeCount,
    LinkAttributeCount,
    LogRecordAttributeValueLength,
    LogRecordAttributeCount,
}

/// Each limit's environment variable and key in the file's `[limits]`.
pub(crate) const LIMITS: [(Limit, &str, &str); 10] = [
    (
        Limit::AttributeValueLength,
        "OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT",
        "attribute_value_length",
    ),
    (
        Limit::AttributeCount,
        "OTEL_ATTRIBUTE_COUNT_LIMIT",
        "attribute_count",
    ),
    (
        Limit::SpanAttributeValueLength,
        "OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT",
        "span_attribute_value_length",
    ),
    (
        Limit::SpanAttributeCount,
        "OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT",
        "span_attribute_count",
    ),
    (
        Limit::SpanEventCount,
        "OTEL_SPAN_EVENT_COUNT_LIMIT",
        "span_event_count",
    ),
    (
        Limit::SpanLinkCount,
        "OTEL_SPAN_LINK_COUNT_LIMIT",
        "span_link_count",
    ),
    (
        Limit::EventAttributeCount,
        "OTEL_EVENT_ATTRIBUTE_COUNT_LIMIT",
        "event_attribute_count",
    ),
    (
        Limit::LinkAttributeCount,
        "OTEL_LINK_ATTRIBUTE_COUNT_LIMIT",
        "link_attribute_count",
    ),
    (
        Limit::LogRecordAttributeValueLength,
        "OTEL_LOGRECORD_ATTRIBUTE_VALUE_LENGTH_LIMIT",
        "log_record_attribute_value_length",
    ),
    (
        Limit::LogRecordAttributeCount,
        "OTEL_LOGRECORD_ATTRIBUTE_COUNT_LIMIT",
        "log_record_attribute_count",
    ),
];

/// Everything one source can set.
#[derive(Clone, Debug, Default)]
pub(crate) struct Layer {
    pub(crate) disabled: Opt<bool>,
    pub(crate) service_name: Opt<String>,
    /// String resource attributes, in order; a later key wins.
    pub(crate) resource: Vec<(String, Sourced<String>)>,
    /// Indexed by [`Scope`].
    pub(crate) exporter: [ExporterLayer; 4],
    pub(crate) compression_level: Opt<i32>,
    pub(crate) connections: Opt<usize>,
    pub(crate) max_in_flight: Opt<usize>,
    pub(crate) max_in_flight_bytes: Opt<usize>,
    pub(crate) overflow: Opt<Overflow>,
    pub(crate) bsp: BatchLayer,
    pub(crate) max_batch_bytes: Opt<usize>,
    pub(crate) blrp: BatchLayer,
    /// The lowest severity a log record needs to be kept
    /// (`OTLPX_LOGS_MIN_SEVERITY`, `[logs] min_severity`): an OTLP
    /// `SeverityNumber`, 1 to 24.
    pub(crate) logs_min_severity: Opt<u8>,
    /// How often the metrics API (not built yet) will collect
    /// (`OTEL_METRIC_EXPORT_INTERVAL`, `[batch.metrics]
    /// export_interval_ms`): read, and reported as having no effect.
    pub(crate) metric_export_interval: Opt<Duration>,
    /// The metrics' batching: only `export_timeout` is ever set
    /// (`OTEL_METRIC_EXPORT_TIMEOUT`, `[batch.metrics] export_timeout_ms`);
    /// the specification has no batch processor for metrics, so their
    /// delay and batch size are otlpx's (see
    /// [`METRIC_SCHEDULE_DELAY_MS_DEFAULT`](super::METRIC_SCHEDULE_DELAY_MS_DEFAULT)).
    pub(crate) metric_export: BatchLayer,
    pub(crate) sampler: Opt<Sampler>,
    /// Indexed by [`Limit`]; `u32::MAX` stands for "no limit" where a
    /// value length limit is concerned.
    pub(crate) limits: [Opt<u32>; 10],
    pub(crate) workers: Opt<usize>,
    pub(crate) pin_workers: Opt<bool>,
    pub(crate) worker_cores: Opt<Vec<usize>>,
    pub(crate) ring_bytes_per_cpu: Opt<usize>,
    pub(crate) rings: Opt<usize>,
    pub(crate) admin_enabled: Opt<bool>,
    pub(crate) admin_address: Opt<String>,
    pub(crate) ready_window: Opt<Duration>,
    pub(crate) retry_enabled: Opt<bool>,
    pub(crate) retry_initial_backoff: Opt<Duration>,
    pub(crate) retry_max_backoff: Opt<Duration>,
    pub(crate) spool_dir: Opt<PathBuf>,
    pub(crate) spool_max_bytes: Opt<usize>,
    /// How long dropping the last engine handle may flush.
    pub(crate) shutdown_timeout: Opt<Duration>,
}

impl Layer {
    /// The batch processor settings of `signal` (`OTEL_BSP_*` for traces,
    /// `OTEL_BLRP_*` for logs, `OTEL_METRIC_EXPORT_TIMEOUT` for metrics).
    pub(crate) fn batch(&self, signal: Signal) -> &BatchLayer {
        match signal {
            Signal::Traces => &self.bsp,
            Signal::Logs => &self.blrp,
            Signal::Metrics => &self.metric_export,
        }
    }
}

/// Clears `opt` if `source` set it; whether it did.
fn forget_opt<T>(opt: &mut Opt<T>, source: &Source) -> bool {
    if opt.as_ref().is_some_and(|v| &v.source == source) {
        *opt = None;
        return true;
    }
    false
}

/// Removes the entries `source` set; whether there were any.
fn forget_list<T>(list: &mut Vec<(String, Sourced<T>)>, source: &Source) -> bool {
    let before = list.len();
    list.retain(|(_, v)| &v.source != source);
    list.len() != before
}

impl ExporterLayer {
    fn forget(&mut self, s: &Source) -> bool {
        // `|` (not `||`): every field is cleared, not only the first.
        forget_opt(&mut self.endpoint, s)
            | forget_opt(&mut self.protocol, s)
            | forget_list(&mut self.headers, s)
            | forget_opt(&mut self.compression, s)
            | forget_opt(&mut self.timeout, s)
            | forget_opt(&mut self.certificate, s)
            | forget_opt(&mut self.client_certificate, s)
            | forget_opt(&mut self.client_key, s)
            | forget_opt(&mut self.insecure, s)
            | forget_opt(&mut self.enabled, s)
    }
}

impl BatchLayer {
    fn forget(&mut self, s: &Source) -> bool {
        forget_opt(&mut self.schedule_delay, s)
            | forget_opt(&mut self.export_timeout, s)
            | forget_opt(&mut self.max_queue_size, s)
            | forget_opt(&mut self.max_export_batch_size, s)
    }
}

impl Layer {
    /// Clears every value `source` set (one environment variable, say),
    /// so that resolution falls through to the next layer or the default;
    /// whether there was any. How an invalid environment value is
    /// ignored rather than fatal (see `resolve::resolve_lenient`).
    pub(crate) fn forget(&mut self, s: &Source) -> bool {
        // Destructured, so that a new field cannot be forgotten here.
        let Self {
            disabled,
            service_name,
            resource,
            exporter,
            compression_level,
            connections,
            max_in_flight,
            max_in_flight_bytes,
            overflow,
            bsp,
            max_batch_bytes,
            blrp,
            logs_min_severity,
            metric_export_interval,
            metric_export,
            sampler,
            limits,
            workers,
            pin_workers,
            worker_cores,
            ring_bytes_per_cpu,
            rings,
            admin_enabled,
            admin_address,
            ready_window,
            retry_enabled,
            retry_initial_backoff,
            retry_max_backoff,
            spool_dir,
            spool_max_bytes,
            shutdown_timeout,
        } = self;
        let mut any = false;
        for x in exporter {
            any |= x.forget(s);
        }
        for l in limits {
            any |= forget_opt(l, s);
        }
        any | forget_opt(disabled, s)
            | forget_opt(service_name, s)
            | forget_list(resource, s)
            | forget_opt(compression_level, s)
            | forget_opt(connections, s)
            | forget_opt(max_in_flight, s)
            | forget_opt(max_in_flight_bytes, s)
            | forget_opt(overflow, s)
            | bsp.forget(s)
            | forget_opt(max_batch_bytes, s)
            | blrp.forget(s)
            | forget_opt(logs_min_severity, s)
            | forget_opt(metric_export_interval, s)
            | metric_export.forget(s)
            | forget_opt(sampler, s)
            | forget_opt(workers, s)
            | forget_opt(pin_workers, s)
            | forget_opt(worker_cores, s)
            | forget_opt(ring_bytes_per_cpu, s)
            | forget_opt(rings, s)
            | forget_opt(admin_enabled, s)
            | forget_opt(admin_address, s)
            | forget_opt(ready_window, s)
            | forget_opt(retry_enabled, s)
            | forget_opt(retry_initial_backoff, s)
            | forget_opt(retry_max_backoff, s)
            | forget_opt(spool_dir, s)
            | forget_opt(spool_max_bytes, s)
            | forget_opt(shutdown_timeout, s)
    }
}
