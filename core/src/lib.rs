//! otlpx: a lock-free, allocation-free OpenTelemetry exporter engine.
//!
//! An application records spans; otlpx encodes each one to OTLP protobuf
//! once, straight into a per-CPU lock-free ring. Worker threads frame the
//! ring bytes into `ExportTraceServiceRequest`s without re-encoding them,
//! compress them, and send them over OTLP/gRPC or OTLP/HTTP. Recording
//! never blocks, never takes a lock and, once a thread is warm, never
//! allocates; every span is accounted for in [`Engine::stats`].
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
//! let mut span = tracer.span("POST /charge").kind(SpanKind::Server).start();
//! span.set_attribute("http.request.method", "POST");
//! span.set_attribute("http.response.status_code", 502);
//! span.add_event("retrying", &[KeyValue::new("attempt", 2)]);
//! span.set_status(Status::error("upstream timed out"));
//! span.end();
//!
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
//! [`EngineBuilder::export(false)`](EngineBuilder::export) (or
//! `OTEL_TRACES_EXPORTER=none`) it only records, and its caller takes the
//! framed requests out with [`Engine::drain_traces`].
//!
//! # Reading order
//!
//! One module per stage of the flow, upstream first: [`record`] (the API
//! and the one-pass span write), [`ring`] (per-CPU MPSC rings), `worker`
//! (threads that drain rings), `batch` (when and what to send), `encode`
//! (framing requests), `compress`, [`transport`] (gRPC and HTTP); beside
//! the flow, `proto` (wire format), `context` (ids and `traceparent`),
//! [`config`] and [`telemetry`].
#![deny(unsafe_code)]
#![warn(missing_docs)]
// Under miri no fork handlers are installed (miri has no `fork()`), which
// leaves the prepare/parent chain unused there.
#![cfg_attr(miri, allow(dead_code))]

#[cfg(feature = "export")]
mod admin;
mod batch;
mod clock;
#[cfg(feature = "export")]
mod compress;
pub mod config;
mod context;
mod encode;
mod engine;
mod fork;
mod proto;
pub mod record;
pub mod ring;
pub mod sample;
#[cfg(feature = "export")]
pub mod spool;
mod sync;
pub mod telemetry;
#[cfg(feature = "export")]
pub mod transport;
mod value;
#[cfg(feature = "export")]
mod worker;

pub use config::{Compression, Overflow, Protocol, SpanLimits};
pub use context::{
    SpanContext, SpanId, TraceFlags, TraceId, TraceState, Traceparent, TraceparentError,
};
pub use engine::{BuildError, Engine, EngineBuilder, TracerBuilder};
pub use record::{
    DetachedSpan, Event, FinishedSpan, Link, RecordError, Span, SpanBuilder, SpanKind, Status,
    Tracer,
};
pub use telemetry::{
    Dropped, ExportFailures, ExportStats, FailureKind, HistogramSnapshot, RingStats, SpoolStats,
    Stats,
};
pub use value::{KeyValue, Value};
#[cfg(feature = "export")]
pub use worker::{FlushError, ShutdownError, ShutdownReport};
