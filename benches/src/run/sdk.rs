//! The opentelemetry-rust engine: opentelemetry_sdk's thread-based
//! `BatchSpanProcessor` with its default configuration, feeding an
//! opentelemetry-otlp `SpanExporter` over the same protocol, endpoint and
//! compression as otlpx.
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
//! - An endpoint given to the HTTP builder is used as is: `/v1/traces` is
//!   appended only to endpoints from environment variables, so we pass the
//!   full URL.
//! - The SDK drops spans silently (a full queue, a failed export) and
//!   exposes no counter; [`CountingExporter`] counts what the receiver
//!   acknowledged, and the drops are what is left.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use opentelemetry::trace::{Span as _, SpanKind, Status, Tracer as _, TracerProvider as _};
use opentelemetry::{InstrumentationScope, Key, KeyValue, Value};
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig, WithTonicConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider, SpanData, SpanExporter};

use super::error::{BenchError, Context};
use super::options::{Compression, Protocol};
use super::workload::{Attribute, AttributeValue, ERROR_DESCRIPTION, Recorder};

/// How long shutdown may take to export what is queued.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(30);

/// The worker threads of the runtime the tonic channel runs on: one is
/// what a small service would give its exporter, and the processor never
/// has more than one export in flight.
const TONIC_RUNTIME_THREADS: usize = 1;

/// A `SpanExporter` that forwards to `inner` and counts the spans of every
/// batch it exported successfully.
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

/// The opentelemetry SDK set up to export to a receiver.
pub struct SdkEngine {
    provider: SdkTracerProvider,
    tracer: SdkTracer,
    exported: Arc<AtomicU64>,
    /// The runtime the tonic channel runs on; dropped after the provider.
    runtime: Option<tokio::runtime::Runtime>,
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
    /// Spans the receiver acknowledged.
    pub exported: u64,
}

impl SdkEngine {
    /// Builds the provider, its batch processor and its OTLP exporter for
    /// `endpoint` (for HTTP the base URL).
    ///
    /// # Errors
    ///
    /// When the runtime cannot start or the exporter refuses the settings
    /// (a malformed endpoint, a compression its features lack).
    pub fn build(
        protocol: Protocol,
        compression: Compression,
        endpoint: &str,
    ) -> Result<Self, BenchError> {
        let compression = match compression {
            Compression::None => None,
            Compression::Gzip => Some(opentelemetry_otlp::Compression::Gzip),
            Compression::Zstd => Some(opentelemetry_otlp::Compression::Zstd),
        };
        let (exporter, runtime) = match protocol {
            Protocol::Grpc => {
                let runtime = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(TONIC_RUNTIME_THREADS)
                    .thread_name("sdk-tonic")
                    .enable_all()
                    .build()
                    .context("starting a tokio runtime for the tonic exporter")?;
                let _context = runtime.enter();
                let mut builder = opentelemetry_otlp::SpanExporter::builder()
                    .with_tonic()
                    .with_endpoint(endpoint);
                if let Some(c) = compression {
                    builder = builder.with_compression(c);
                }
                let exporter = builder
                    .build()
                    .context(format!("building the OTLP/gRPC exporter for {endpoint}"))?;
                (exporter, Some(runtime))
            }
            Protocol::Http => {
                let url = format!("{}/v1/traces", endpoint.trim_end_matches('/'));
                let mut builder = opentelemetry_otlp::SpanExporter::builder()
                    .with_http()
                    .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
                    .with_endpoint(&url);
                if let Some(c) = compression {
                    builder = builder.with_compression(c);
                }
                let exporter = builder
                    .build()
                    .context(format!("building the OTLP/HTTP exporter for {url}"))?;
                (exporter, None)
            }
        };
        let exported = Arc::new(AtomicU64::new(0));
        let provider = SdkTracerProvider::builder()
            .with_resource(
                Resource::builder_empty()
                    .with_service_name(otlpx_bench::SERVICE_NAME)
                    .build(),
            )
            .with_batch_exporter(CountingExporter::new(exporter, Arc::clone(&exported)))
            .build();
        let tracer = provider.tracer_with_scope(
            InstrumentationScope::builder(otlpx_bench::SCOPE_NAME)
                .with_version(otlpx_bench::SCOPE_VERSION)
                .build(),
        );
        Ok(Self {
            provider,
            tracer,
            exported,
            runtime,
        })
    }

    /// Exports what is queued, shuts the provider down and says how many
    /// spans the receiver acknowledged. A shutdown that fails or times out
    /// is a result, not an error: it is reported on stderr, and the spans it
    /// did not export count as dropped.
    pub fn finish(self) -> SdkCounts {
        let Self {
            provider,
            tracer,
            exported,
            runtime,
        } = self;
        if let Err(e) = provider.shutdown_with_timeout(SHUTDOWN_TIMEOUT) {
            eprintln!("otlpx-bench: warning: opentelemetry SDK shutdown: {e}");
        }
        drop(tracer);
        drop(provider);
        // Relaxed: shutdown joined the processor's thread, the only writer.
        let exported = exported.load(Ordering::Relaxed);
        if let Some(rt) = runtime {
            rt.shutdown_timeout(Duration::from_secs(1));
        }
        SdkCounts { exported }
    }
}

impl Recorder for SdkEngine {
    #[inline]
    fn record(&self, attributes: &[Attribute], error: bool) {
        let mut span = self
            .tracer
            .span_builder(otlpx_bench::SPAN_NAME)
            .with_kind(SpanKind::Server)
            .start(&self.tracer);
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
