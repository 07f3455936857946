//! otlpx: a lock-free, allocation-free OpenTelemetry exporter engine.
//!
//! An application records spans; otlpx encodes each one to OTLP protobuf
//! once, straight into a per-CPU lock-free ring, and consumers frame the
//! ring bytes into `ExportTraceServiceRequest`s without re-encoding them.
//! Recording never blocks, never takes a lock and, once a thread is warm,
//! never allocates; every span is accounted for in [`Engine::stats`].
//!
//! ```
//! use otlpx::{Engine, KeyValue, SpanKind, Status};
//!
//! let engine = Engine::builder().service_name("checkout").build()?;
//! let tracer = engine.tracer("checkout.http", "1.4.0");
//!
//! let mut span = tracer.span("POST /charge").kind(SpanKind::Server).start();
//! span.set_attribute("http.request.method", "POST");
//! span.set_attribute("http.response.status_code", 502);
//! span.add_event("retrying", &[KeyValue::new("attempt", 2)]);
//! span.set_status(Status::error("upstream timed out"));
//! span.end();
//!
//! let mut request = bytes::BytesMut::new();
//! assert_eq!(engine.drain_traces(&mut request, 512), 1);
//! // `request` is a complete, encoded ExportTraceServiceRequest.
//! # Ok::<(), otlpx::BuildError>(())
//! ```
//!
//! # Reading order
//!
//! One module per stage of the flow, upstream first: [`record`] (the API
//! and the one-pass span write), [`ring`] (per-CPU MPSC rings), `encode`
//! (framing requests); beside the flow, `proto` (wire format), `context`
//! (ids and `traceparent`), [`config`] and [`telemetry`].
#![deny(unsafe_code)]
#![warn(missing_docs)]

mod batch;
mod clock;
#[cfg(feature = "export")]
mod compress;
pub mod config;
mod context;
mod encode;
mod engine;
mod proto;
pub mod record;
pub mod ring;
mod sync;
pub mod telemetry;
#[cfg(feature = "export")]
pub mod transport;
mod value;
#[cfg(feature = "export")]
mod worker;

pub use config::{Compression, Protocol, SpanLimits};
pub use context::{
    SpanContext, SpanId, TraceFlags, TraceId, TraceState, Traceparent, TraceparentError,
};
pub use engine::{BuildError, Engine, EngineBuilder, TracerBuilder};
pub use record::{
    Event, FinishedSpan, Link, RecordError, Span, SpanBuilder, SpanKind, Status, Tracer,
};
pub use telemetry::{Dropped, ExportFailures, ExportStats, FailureKind, Stats};
pub use value::{KeyValue, Value};
#[cfg(feature = "export")]
pub use worker::FlushError;
