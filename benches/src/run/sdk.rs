//! The opentelemetry-rust engine: opentelemetry_sdk's thread-based
//! `BatchSpanProcessor` with its default configuration, feeding an
//! opentelemetry-otlp `SpanExporter` over the same protocol, endpoint and
//! compression as otlpx; for logs its `BatchLogProcessor` (default
//! configuration too) under an `SdkLoggerProvider`, feeding a `LogExporter`
//! the same way. Only the run's signal has a pipeline.
//!
//! What had to be learnt from opentelemetry-otlp 0.33's source:
//!
//! - The batch processor runs each export on its own plain thread under
//!   `futures_executor::block_on`, with no tokio runtime there. The tonic
//!   exporter's channel (`connect_lazy`) spawns its connection worker onto
//!   the *current* tokio runtime when it is built, so it must be built
//!   inside a runtime's context (`Runtime::enter`), and that multi-thread
//!   runtime must outlive the provider: the connection's I/O runs on it
//!   while the processor's thread just waits on the response.
//! - The HTTP exporter needs no runtime: its default client is reqwest's
//!   blocking one, which brings its own (and must not be used from inside a
//!   tokio context, which the processor's thread is not).
//! - An endpoint given to the HTTP builder is used as is: `/v1/traces`
//!   (`/v1/logs`) is appended only to endpoints from environment
//!   variables, so we pass the full URL.
//! - The SDK drops spans and log records silently (a full queue, a failed
//!   export) and exposes no counter; [`CountingExporter`] counts what the
//!   receiver acknowledged, and the drops are what is left.
//! - `SdkLogger::emit` fills a record's trace context from the current
//!   context when the record has none (opentelemetry_sdk's `trace`
//!   feature), as otlpx's `Logger::emit` does: both take it from the span
//!   context the producer attached.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use std::time::SystemTime;

use opentelemetry::logs::{AnyValue, LogRecord as _, Logger as _, LoggerProvider as _, Severity};
use opentelemetry::trace::{
    Span as _, SpanContext, SpanKind, Status, TraceContextExt as _, TraceFlags, TraceState,
    Tracer as _, TracerProvider as _,
};
use opentelemetry::{InstrumentationScope, Key, KeyValue, Value};
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig, WithTonicConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::logs::{LogBatch, LogExporter, SdkLogger, SdkLoggerProvider};
use opentelemetry_sdk::trace::{
    IdGenerator as _, RandomIdGenerator, SdkTracer, SdkTracerProvider, SpanData, SpanExporter,
};

use super::error::{BenchError, Context};
use super::options::{Compression, Plan, Protocol, Signal};
use super::workload::{
    self, Attribute, AttributeValue, ERROR_DESCRIPTION, LOG_BODY, Produced, Recorder,
};

/// How long shutdown may take to export what is queued.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(30);

/// The worker threads of the runtime the tonic channel runs on: one is
/// what a small service would give its exporter, and the processor never
/// has more than one export in flight.
const TONIC_RUNTIME_THREADS: usize = 1;

/// A `SpanExporter` or `LogExporter` that forwards to `inner` and counts
/// the items of every batch it exported successfully.
#[derive(Debug)]
pub struct CountingExporter<E> {
    inner: E,
    exported: Arc<AtomicU64>,
}

impl<E> CountingExporter<E> {
    /// Wraps `inner`; successful exports add their batch size to `exported`.
    pub fn new(inner: E, exported: Arc<AtomicU64>) -> Self {
        Self { inner, exported }
    }
}

impl<E: SpanExporter> SpanExporter for CountingExporter<E> {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let spans = batch.len() as u64;
        let result = self.inner.export(batch).await;
        if result.is_ok() {
            // Relaxed: a plain counter, read after `shutdown` has joined
            // the processor's thread (the join orders it).
            self.exported.fetch_add(spans, Ordering::Relaxed);
        }
        result
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn shutdown(&self) -> OTelSdkResult {
        self.inner.shutdown()
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

impl<E: LogExporter> LogExporter for CountingExporter<E> {
    async fn export(&self, batch: LogBatch<'_>) -> OTelSdkResult {
        let records = batch.iter().count() as u64;
        let result = self.inner.export(batch).await;
        if result.is_ok() {
            // Relaxed: as for spans.
            self.exported.fetch_add(records, Ordering::Relaxed);
        }
        result
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn shutdown(&self) -> OTelSdkResult {
        self.inner.shutdown()
    }

    fn event_enabled(
        &self,
        level: opentelemetry::logs::Severity,
        target: &str,
        name: Option<&str>,
    ) -> bool {
        self.inner.event_enabled(level, target, name)
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

/// The opentelemetry SDK set up to export one signal to a receiver.
pub struct SdkEngine {
    pipeline: Pipeline,
    exported: Arc<AtomicU64>,
    /// The runtime the tonic channel runs on; dropped after the provider.
    runtime: Option<tokio::runtime::Runtime>,
}

/// The provider of the run's signal, and what records through it.
enum Pipeline {
    Traces {
        provider: SdkTracerProvider,
        tracer: SdkTracer,
    },
    Logs {
        provider: SdkLoggerProvider,
        logger: SdkLogger,
    },
}

impl fmt::Debug for SdkEngine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SdkEngine")
            .field("exported", &self.exported)
            .finish_non_exhaustive()
    }
}

/// What the SDK did, after shutdown.
#[derive(Clone, Copy, Debug)]
pub struct SdkCounts {
    /// Items the receiver acknowledged.
    pub exported: u64,
}

/// Where and how the exporter sends.
#[derive(Clone, Copy)]
struct Target<'a> {
    protocol: Protocol,
    compression: Option<opentelemetry_otlp::Compression>,
    /// The base URL; the HTTP exporters get the signal's full URL.
    endpoint: &'a str,
}

impl Target<'_> {
    /// The runtime a tonic exporter needs, entered while it is built (see
    /// the module documentation); `None` over HTTP.
    fn runtime(&self) -> Result<Option<tokio::runtime::Runtime>, BenchError> {
        if self.protocol == Protocol::Http {
            return Ok(None);
        }
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(TONIC_RUNTIME_THREADS)
            .thread_name("sdk-tonic")
            .enable_all()
            .build()
            .context("starting a tokio runtime for the tonic exporter")
            .map(Some)
    }

    /// The full OTLP/HTTP URL for the signal at `path` (`/v1/traces`).
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.endpoint.trim_end_matches('/'))
    }

    /// A tonic exporter builder with this target's endpoint and compression.
    fn tonic<B: WithExportConfig + WithTonicConfig>(&self, builder: B) -> B {
        let builder = builder.with_endpoint(self.endpoint);
        match self.compression {
            Some(c) => builder.with_compression(c),
            None => builder,
        }
    }

    /// An HTTP exporter builder for `url` with this target's compression.
    fn http<B: WithExportConfig + WithHttpConfig>(&self, builder: B, url: &str) -> B {
        let builder = builder
            .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
            .with_endpoint(url);
        match self.compression {
            Some(c) => builder.with_compression(c),
            None => builder,
        }
    }
}

impl SdkEngine {
    /// Builds the provider of `signal`, its batch processor and its OTLP
    /// exporter for `endpoint` (for HTTP the base URL).
    ///
    /// # Errors
    ///
    /// When the runtime cannot start or the exporter refuses the settings
    /// (a malformed endpoint, a compression its features lack).
    pub fn build(
        signal: Signal,
        protocol: Protocol,
        compression: Compression,
        endpoint: &str,
    ) -> Result<Self, BenchError> {
        let target = Target {
            protocol,
            compression: match compression {
                Compression::None => None,
                Compression::Gzip => Some(opentelemetry_otlp::Compression::Gzip),
                Compression::Zstd => Some(opentelemetry_otlp::Compression::Zstd),
            },
            endpoint,
        };
        let runtime = target.runtime()?;
        let entered = runtime.as_ref().map(tokio::runtime::Runtime::enter);
        let exported = Arc::new(AtomicU64::new(0));
        let resource = Resource::builder_empty()
            .with_service_name(otlpx_bench::SERVICE_NAME)
            .build();
        let scope = InstrumentationScope::builder(otlpx_bench::SCOPE_NAME)
            .with_version(otlpx_bench::SCOPE_VERSION)
            .build();
        let pipeline = match signal {
            Signal::Traces => {
                let builder = opentelemetry_otlp::SpanExporter::builder();
                let exporter = match protocol {
                    Protocol::Grpc => target.tonic(builder.with_tonic()).build(),
                    Protocol::Http => {
                        let url = target.url("/v1/traces");
                        target.http(builder.with_http(), &url).build()
                    }
                }
                .context(format!(
                    "building the OTLP/{} span exporter for {endpoint}",
                    protocol.name()
                ))?;
                // Only the exporter's channel needs the runtime's context.
                drop(entered);
                let provider = SdkTracerProvider::builder()
                    .with_resource(resource)
                    .with_batch_exporter(CountingExporter::new(exporter, Arc::clone(&exported)))
                    .build();
                let tracer = provider.tracer_with_scope(scope);
                Pipeline::Traces { provider, tracer }
            }
            Signal::Logs => {
                let builder = opentelemetry_otlp::LogExporter::builder();
                let exporter = match protocol {
                    Protocol::Grpc => target.tonic(builder.with_tonic()).build(),
                    Protocol::Http => {
                        let url = target.url("/v1/logs");
                        target.http(builder.with_http(), &url).build()
                    }
                }
                .context(format!(
                    "building the OTLP/{} log exporter for {endpoint}",
                    protocol.name()
                ))?;
                // Only the exporter's channel needs the runtime's context.
                drop(entered);
                let provider = SdkLoggerProvider::builder()
                    .with_resource(resource)
                    .with_batch_exporter(CountingExporter::new(exporter, Arc::clone(&exported)))
                    .build();
                let logger = provider.logger_with_scope(scope);
                Pipeline::Logs { provider, logger }
            }
        };
        Ok(Self {
            pipeline,
            exported,
            runtime,
        })
    }

    /// Runs the producers of `plan`, recording its signal's item.
    ///
    /// # Errors
    ///
    /// As [`workload::produce`].
    pub fn produce(&self, plan: &Plan) -> Result<Produced, BenchError> {
        match &self.pipeline {
            Pipeline::Traces { tracer, .. } => workload::produce(&Spans(tracer), plan),
            Pipeline::Logs { logger, .. } => workload::produce(
                &Logs {
                    logger,
                    ids: RandomIdGenerator::default(),
                },
                plan,
            ),
        }
    }

    /// Exports what is queued, shuts the provider down and says how many
    /// items the receiver acknowledged. A shutdown that fails or times out
    /// is a result, not an error: it is reported on stderr, and the items
    /// it did not export count as dropped.
    pub fn finish(self) -> SdkCounts {
        let Self {
            pipeline,
            exported,
            runtime,
        } = self;
        let shutdown = match &pipeline {
            Pipeline::Traces { provider, .. } => provider.shutdown_with_timeout(SHUTDOWN_TIMEOUT),
            Pipeline::Logs { provider, .. } => provider.shutdown_with_timeout(SHUTDOWN_TIMEOUT),
        };
        if let Err(e) = shutdown {
            eprintln!("otlpx-bench: warning: opentelemetry SDK shutdown: {e}");
        }
        drop(pipeline);
        // Relaxed: shutdown joined the processor's thread, the only writer.
        let exported = exported.load(Ordering::Relaxed);
        if let Some(rt) = runtime {
            rt.shutdown_timeout(Duration::from_secs(1));
        }
        SdkCounts { exported }
    }
}

/// The benchmark span, recorded through a tracer.
struct Spans<'e>(&'e SdkTracer);

impl Recorder for Spans<'_> {
    type Prepared = Vec<Attribute>;

    fn prepare(&self, attributes: &[Attribute]) -> Vec<Attribute> {
        attributes.to_vec()
    }

    #[inline]
    fn record(&self, attributes: &Vec<Attribute>, error: bool) {
        let tracer = self.0;
        let mut span = tracer
            .span_builder(otlpx_bench::SPAN_NAME)
            .with_kind(SpanKind::Server)
            .start(tracer);
        for a in attributes {
            let value = match a.value {
                AttributeValue::Str(s) => Value::from(s),
                AttributeValue::I64(i) => Value::I64(i),
                AttributeValue::F64(f) => Value::F64(f),
                AttributeValue::Bool(b) => Value::Bool(b),
            };
            span.set_attribute(KeyValue::new(Key::from_static_str(a.key), value));
        }
        if error {
            span.set_status(Status::error(ERROR_DESCRIPTION));
        }
        span.end();
    }
}

/// The benchmark log record, emitted through a logger under the span
/// context current on the thread.
struct Logs<'e> {
    logger: &'e SdkLogger,
    /// The SDK's own id generator, for the contexts the records share.
    ids: RandomIdGenerator,
}

impl Recorder for Logs<'_> {
    /// The attributes in the SDK's types, built once; cloning them per
    /// record allocates nothing (`'static` keys and strings), as an
    /// application's `add_attribute("k", "v")` does not.
    type Prepared = Vec<(Key, AnyValue)>;

    fn prepare(&self, attributes: &[Attribute]) -> Vec<(Key, AnyValue)> {
        attributes
            .iter()
            .map(|a| {
                let value = match a.value {
                    AttributeValue::Str(s) => AnyValue::from(s),
                    AttributeValue::I64(i) => AnyValue::Int(i),
                    AttributeValue::F64(f) => AnyValue::Double(f),
                    AttributeValue::Bool(b) => AnyValue::Boolean(b),
                };
                (Key::from_static_str(a.key), value)
            })
            .collect()
    }

    #[inline]
    fn record(&self, attributes: &Vec<(Key, AnyValue)>, error: bool) {
        let (severity, text) = if error {
            (Severity::Error, "ERROR")
        } else {
            (Severity::Info, "INFO")
        };
        let mut record = self.logger.create_log_record();
        // otlpx stamps both times at emit: so does this.
        record.set_timestamp(SystemTime::now());
        record.set_severity_number(severity);
        record.set_severity_text(text);
        record.set_body(AnyValue::from(LOG_BODY));
        record.add_attributes(attributes.iter().cloned());
        // The trace context: `emit` takes the current one (`in_context`'s).
        self.logger.emit(record);
    }

    fn in_context(&self, f: &mut dyn FnMut()) {
        let context = SpanContext::new(
            self.ids.new_trace_id(),
            self.ids.new_span_id(),
            TraceFlags::SAMPLED,
            false,
            TraceState::NONE,
        );
        let _current = opentelemetry::Context::current()
            .with_remote_span_context(context)
            .attach();
        f();
    }
}
