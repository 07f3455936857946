//! otlpx: a lock-free, allocation-free OpenTelemetry exporter engine.
//!
//! An application records spans and log records; otlpx encodes each one to
//! OTLP protobuf once, straight into a per-CPU lock-free ring of its signal.
//! Worker threads frame the ring bytes into `ExportTraceServiceRequest`s
//! and `ExportLogsServiceRequest`s (and `ExportMetricsServiceRequest`s:
//! the pipeline carries metrics, though no API records them yet) without
//! re-encoding them,
//! compress them, and send them over OTLP/gRPC or OTLP/HTTP. Recording
//! never blocks, never takes a lock and, once a thread is warm, never
//! allocates; every item is accounted for, per signal, in
//! [`Engine::signal_stats`] ([`Engine::stats`] for spans).
//!
//! ```no_run
//! # #[cfg(feature = "export")] // the default feature
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use otlpx::{Compression, Engine, KeyValue, Protocol, SpanKind, Status};
//! use std::time::Duration;
//!
//! let engine = Engine::builder()
//!     .service_name("checkout")
//!     .endpoint("http://localhost:4317") // an OpenTelemetry Collector
//!     .protocol(Protocol::Grpc)
//!     .compression(Compression::Gzip)
//!     .build()?;
//! let tracer = engine.tracer("checkout.http", "1.4.0");
//!
//! // Current until dropped: spans started meanwhile without a parent
//! // argument, here or in libraries, are its children.
//! let mut request = tracer.span("POST /charge").kind(SpanKind::Server).start().attach();
//! request.set_attribute("http.request.method", "POST");
//! tracer.in_span("card.authorize", |span| {
//!     span.add_event("retrying", &[KeyValue::new("attempt", 2)]);
//!     span.set_status(Status::error("upstream timed out"));
//! });
//! request.set_attribute("http.response.status_code", 502);
//! request.end();
//!
//! engine.flush(Duration::from_secs(5))?; // fails naming what was dropped, if anything
//! engine.shutdown(Duration::from_secs(5))?; // or just drop the engine
//! println!("{:?}", engine.stats());
//! # Ok(())
//! # }
//! # #[cfg(not(feature = "export"))]
//! # fn main() {}
//! ```
//!
//! Without an endpoint from any source, the engine exports to the
//! OpenTelemetry default, `http://localhost:4317` (gRPC) or
//! `http://localhost:4318/v1/traces` (HTTP). Built with
//! [`EngineBuilder::export(false)`](EngineBuilder::export) (or every
//! signal's `OTEL_*_EXPORTER=none`) it only records, and its caller takes the
//! framed requests out with [`Engine::drain_traces`].
//!
//! # Reading order
//!
//! One module per stage of the flow, upstream first: the front doors,
//! [`trace`] (spans: the API and the one-pass span write), [`logs`]
//! (log records) and `metrics` (the door a collection's metrics will
//! enter by), with `current` (the current span context:
//! [`SpanContext::attach`], [`FutureExt`]); under them `record` (what
//! every signal's recording shares: the engine's rings, clock and
//! limits); [`ring`] (per signal, per-CPU
//! MPSC rings); then the export stages in `export/`: `drain` (threads that
//! drain rings), `batch` (when and what to send), `frame` (framing
//! requests), `compress`, `deliver` (in flight, retries, the spool
//! hand-off), [`spool`] and [`transport`] (gRPC and HTTP); beside the
//! flow, `proto` (wire format), `context` (ids and `traceparent`),
//! [`propagation`] (W3C `traceparent`, `tracestate` and `baggage` in and
//! out of headers), [`config`] and [`telemetry`]; `engine` on top. The
//! map: `docs/architecture.md`.
#![deny(unsafe_code)]
#![warn(missing_docs)]
// Under miri no fork handlers are installed (miri has no `fork()`), which
// leaves the prepare/parent chain unused there.
#![cfg_attr(miri, allow(dead_code))]

/// Implements `Debug` for error types as their `Display`.
///
/// `fn main() -> Result<(), Box<dyn Error>>` prints a returned error with
/// `Debug`; a derived one would dump the enum or struct, where the
/// sentence is what the user needs. The `Display` of every error here
/// already includes its source's text when it has one (`{0}`, `{source}`
/// or `#[error(transparent)]`), so nothing more is appended. Defined before
/// the `mod` declarations, so every module can use it.
macro_rules! debug_as_display {
    ($($error:ty),+ $(,)?) => {$(
        impl ::std::fmt::Debug for $error {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                ::std::fmt::Display::fmt(self, f)
            }
        }
    )+};
}

#[cfg(feature = "export")]
mod admin;
mod clock;
pub mod config;
mod context;
mod current;
mod engine;
mod entropy;
mod export;
#[cfg(any(feature = "tracing", feature = "log"))]
mod integrations;
pub mod logs;
mod metrics;
pub mod propagation;
mod proto;
mod record;
pub mod ring;
pub mod sample;
mod signal;
mod sync;
pub mod telemetry;
pub mod trace;
mod value;

pub use config::{Compression, LogLimits, Overflow, Protocol, SpanLimits};
pub use context::{
    SpanContext, SpanId, TraceFlags, TraceId, TraceState, TraceStateError, Traceparent,
    TraceparentError,
};
pub use current::{ContextGuard, FutureExt, WithContext, WithSpan};
pub use engine::{BuildError, Engine, EngineBuilder, TracerBuilder};
#[cfg(feature = "export")]
pub use export::drain::{FlushError, FlushReport, ShutdownError, ShutdownReport};
#[cfg(feature = "export")]
pub use export::{spool, transport};
pub use logs::Logger;
pub use propagation::{Baggage, Extracted, Extractor, Injector};
pub use record::RecordError;
pub use ring::Signal;
pub use telemetry::{
    Dropped, ExportFailures, ExportStats, FailureKind, HistogramSnapshot, RingStats, SpoolStats,
    Stats,
};
pub use trace::{
    ActiveSpan, DetachedSpan, Event, FinishedSpan, Link, Span, SpanBuilder, SpanKind, Status,
    Tracer,
};
pub use value::{Array, ArrayItem, KeyValue, ToValue, Value};
// The integrations, as `otlpx::tracing` and `otlpx::log` (the crates of
// those names stay reachable as `::tracing` and `::log`).
#[cfg(feature = "log")]
pub use integrations::log;
#[cfg(feature = "tracing")]
pub use integrations::tracing;

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error;

    /// Errors debug-print as the sentence their `Display` writes.
    #[test]
    fn errors_debug_as_display() {
        let errors: [&dyn Error; 5] = [
            &TraceparentError::Hex,
            &TraceStateError::DuplicateKey,
            &RecordError::RingFull,
            &ring::WriteError::TooLarge,
            &ring::CapacityError { bytes: 3 },
        ];
        for e in errors {
            assert_eq!(format!("{e:?}"), e.to_string());
            assert_eq!(format!("{e:#?}"), e.to_string());
        }
        let Err(BuildError::Config(config)) = Engine::builder().ring_bytes_per_cpu(3).build()
        else {
            panic!("ring_bytes_per_cpu(3) is a ConfigError");
        };
        assert_eq!(format!("{config:?}"), config.to_string());
        #[cfg(feature = "export")]
        {
            let spool = spool::SpoolError::Io {
                what: "open",
                path: "/nonexistent".into(),
                source: std::io::ErrorKind::NotFound.into(),
            };
            let export = transport::ExportError::new(FailureKind::Timeout, "no answer");
            for e in [&spool as &dyn Error, &export] {
                assert_eq!(format!("{e:?}"), e.to_string());
            }
            // The cause is in the sentence once, from `Display`.
            assert_eq!(
                format!("{spool:?}"),
                "spool open /nonexistent: entity not found"
            );
        }
    }

    /// What `fn main() -> Result<(), Box<dyn Error>>` prints for a bad
    /// builder value: the sentence, not a struct dump.
    #[test]
    fn build_error_debug_prints_the_sentence() {
        let err: Box<dyn Error> = Engine::builder()
            .ring_bytes_per_cpu(3)
            .build()
            .map(drop)
            .unwrap_err()
            .into();
        let debug = format!("{err:?}");
        assert_eq!(debug, err.to_string());
        assert!(debug.contains("ring_bytes_per_cpu"), "{debug}");
        assert!(debug.contains("3"), "{debug}");
        assert!(
            !debug.contains('{') && !debug.contains("Config("),
            "{debug}"
        );
    }
}
