//! The otlpx engine as the load generator drives it: built with export to
//! the receiver (default workers, connections and batching), recording the
//! benchmark span, flushed and shut down at the end, its drops reported by
//! reason from `Engine::stats`.

use std::fmt;
use std::time::Duration;

use otlpx::{SpanKind, Status};

use super::error::{BenchError, Context};
use super::options::{Compression, Protocol};
use super::workload::{Attribute, AttributeValue, ERROR_DESCRIPTION, Recorder};

/// How long flush and shutdown may each take: far more than a flush of
/// full rings needs, so hitting it means the receiver stopped answering.
const FINISH_TIMEOUT: Duration = Duration::from_secs(30);

/// An otlpx engine exporting to a receiver, and its tracer.
pub struct OtlpxEngine {
    engine: otlpx::Engine,
    tracer: otlpx::Tracer,
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
    /// Spans the receiver acknowledged.
    pub exported: u64,
    /// Spans dropped, by `otlpx::Dropped` field.
    pub dropped_by_reason: Vec<(String, u64)>,
}

impl OtlpxEngine {
    /// Builds an engine exporting to `endpoint` (for HTTP the base URL)
    /// over `protocol` with `compression`, and its tracer.
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
        Ok(Self { engine, tracer })
    }

    /// Flushes, shuts down and reads the counters. A flush or shutdown that
    /// times out is a result, not an error: it is reported on stderr and
    /// the spans it left behind are counted as `unsent_at_shutdown`.
    pub fn finish(self) -> OtlpxCounts {
        if let Err(e) = self.engine.flush(FINISH_TIMEOUT) {
            eprintln!("otlpx-bench: warning: otlpx flush: {e}");
        }
        if let Err(e) = self.engine.shutdown(FINISH_TIMEOUT) {
            eprintln!("otlpx-bench: warning: otlpx shutdown: {e}");
        }
        let s = self.engine.stats();
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

impl Recorder for OtlpxEngine {
    #[inline]
    fn record(&self, attributes: &[Attribute], error: bool) {
        let mut span = self
            .tracer
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
