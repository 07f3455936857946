//! The otlpx engine as the load generator drives it: built with export to
//! the receiver (default workers, connections and batching), recording the
//! benchmark span or log record, flushed and shut down at the end, its
//! drops reported by reason from the signal's `Engine::signal_stats`.

use std::fmt;
use std::time::Duration;

use otlpx::logs::{LogRecord, Severity};
use otlpx::{KeyValue, SpanContext, SpanId, SpanKind, Status, TraceFlags, TraceId};

use super::error::{BenchError, Context};
use super::options::{Compression, Plan, Protocol, Signal};
use super::workload::{
    self, Attribute, AttributeValue, ERROR_DESCRIPTION, LOG_BODY, Produced, Recorder,
};

/// How long flush and shutdown may each take: far more than a flush of
/// full rings needs, so hitting it means the receiver stopped answering.
const FINISH_TIMEOUT: Duration = Duration::from_secs(30);

/// An otlpx engine exporting to a receiver, its tracer and its logger.
pub struct OtlpxEngine {
    engine: otlpx::Engine,
    tracer: otlpx::Tracer,
    logger: otlpx::Logger,
}

impl fmt::Debug for OtlpxEngine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OtlpxEngine")
            .field("engine", &self.engine)
            .finish_non_exhaustive()
    }
}

/// What otlpx did, after shutdown.
#[derive(Clone, Debug)]
pub struct OtlpxCounts {
    /// Items the receiver acknowledged.
    pub exported: u64,
    /// Items dropped, by `otlpx::Dropped` field.
    pub dropped_by_reason: Vec<(String, u64)>,
}

impl OtlpxEngine {
    /// Builds an engine exporting to `endpoint` (for HTTP the base URL)
    /// over `protocol` with `compression`, and its tracer and logger.
    ///
    /// # Errors
    ///
    /// When the engine refuses the settings (a malformed endpoint) or its
    /// exporter cannot start.
    pub fn build(
        protocol: Protocol,
        compression: Compression,
        endpoint: &str,
    ) -> Result<Self, BenchError> {
        let engine = otlpx::Engine::builder()
            .service_name(otlpx_bench::SERVICE_NAME)
            .endpoint(endpoint)
            .protocol(match protocol {
                Protocol::Grpc => otlpx::Protocol::Grpc,
                Protocol::Http => otlpx::Protocol::HttpProtobuf,
            })
            .compression(match compression {
                Compression::None => otlpx::Compression::None,
                Compression::Gzip => otlpx::Compression::Gzip,
                Compression::Zstd => otlpx::Compression::Zstd,
            })
            .build()
            .context(format!("building the otlpx engine for {endpoint}"))?;
        let tracer = engine.tracer(otlpx_bench::SCOPE_NAME, otlpx_bench::SCOPE_VERSION);
        let logger = engine.logger(otlpx_bench::SCOPE_NAME, otlpx_bench::SCOPE_VERSION);
        Ok(Self {
            engine,
            tracer,
            logger,
        })
    }

    /// Runs the producers of `plan`, recording its signal's item.
    ///
    /// # Errors
    ///
    /// As [`workload::produce`].
    pub fn produce(&self, plan: &Plan) -> Result<Produced, BenchError> {
        match plan.signal {
            Signal::Traces => workload::produce(&Spans(&self.tracer), plan),
            Signal::Logs => workload::produce(&Logs(&self.logger), plan),
        }
    }

    /// Flushes, shuts down and reads the counters of `signal`. A flush or
    /// shutdown that times out is a result, not an error: it is reported
    /// on stderr and the items it left behind are counted as
    /// `unsent_at_shutdown`.
    pub fn finish(self, signal: Signal) -> OtlpxCounts {
        if let Err(e) = self.engine.flush(FINISH_TIMEOUT) {
            eprintln!("otlpx-bench: warning: otlpx flush: {e}");
        }
        if let Err(e) = self.engine.shutdown(FINISH_TIMEOUT) {
            eprintln!("otlpx-bench: warning: otlpx shutdown: {e}");
        }
        let s = self.engine.signal_stats(match signal {
            Signal::Traces => otlpx::Signal::Traces,
            Signal::Logs => otlpx::Signal::Logs,
        });
        if s.exported < s.recorded
            && let Some(error) = self.engine.last_export_error()
        {
            eprintln!("otlpx-bench: warning: otlpx's last export error: {error}");
        }
        let d = s.dropped;
        OtlpxCounts {
            exported: s.exported,
            dropped_by_reason: d
                .by_reason()
                .into_iter()
                // Neither exported nor dropped: still in a ring or in flight
                // when shutdown gave up. Counted so that recorded =
                // exported + dropped holds in the report.
                .chain([("unsent_at_shutdown", s.in_rings + s.in_flight)])
                .map(|(k, v)| (k.to_owned(), v))
                .collect(),
        }
    }
}

/// The benchmark span, recorded through a tracer.
struct Spans<'e>(&'e otlpx::Tracer);

impl Recorder for Spans<'_> {
    type Prepared = Vec<Attribute>;

    fn prepare(&self, attributes: &[Attribute]) -> Vec<Attribute> {
        attributes.to_vec()
    }

    #[inline]
    fn record(&self, attributes: &Vec<Attribute>, error: bool) {
        let mut span = self
            .0
            .span(otlpx_bench::SPAN_NAME)
            .kind(SpanKind::Server)
            .start();
        for a in attributes {
            match a.value {
                AttributeValue::Str(s) => span.set_attribute(a.key, s),
                AttributeValue::I64(i) => span.set_attribute(a.key, i),
                AttributeValue::F64(f) => span.set_attribute(a.key, f),
                AttributeValue::Bool(b) => span.set_attribute(a.key, b),
            }
        }
        if error {
            span.set_status(Status::error(ERROR_DESCRIPTION));
        }
        span.end();
    }
}

/// The benchmark log record, emitted through a logger under the span
/// context current on the thread.
struct Logs<'e>(&'e otlpx::Logger);

impl Recorder for Logs<'_> {
    /// The attribute slice a record borrows, as an application writes it
    /// (`&[KeyValue::new(..), ..]`), built once.
    type Prepared = Vec<KeyValue<'static>>;

    fn prepare(&self, attributes: &[Attribute]) -> Vec<KeyValue<'static>> {
        attributes
            .iter()
            .map(|a| match a.value {
                AttributeValue::Str(s) => KeyValue::new(a.key, s),
                AttributeValue::I64(i) => KeyValue::new(a.key, i),
                AttributeValue::F64(f) => KeyValue::new(a.key, f),
                AttributeValue::Bool(b) => KeyValue::new(a.key, b),
            })
            .collect()
    }

    #[inline]
    fn record(&self, attributes: &Vec<KeyValue<'static>>, error: bool) {
        let severity = if error {
            Severity::ERROR
        } else {
            Severity::INFO
        };
        // The trace context is the current one (`in_context`'s).
        self.0.emit(
            &LogRecord::new(severity)
                .body(LOG_BODY)
                .attributes(attributes),
        );
    }

    fn in_context(&self, f: &mut dyn FnMut()) {
        let context = SpanContext {
            trace_id: TraceId::random(),
            span_id: SpanId::random(),
            trace_flags: TraceFlags::SAMPLED,
            ..SpanContext::default()
        };
        let _current = context.attach();
        f();
    }
}
