//! Benchmarks of otlpx, measured side by side with opentelemetry-rust.
//!
//! The criterion benches live in `benches/` (`record_span`: the cost on the
//! application thread of one span; `encode_batch`: turning 512 recorded spans
//! into an `ExportTraceServiceRequest`). This library holds what they share:
//! the one span shape every bench records, written once for otlpx and once
//! for the opentelemetry SDK so that both sides record exactly the same data;
//! the embedded OTLP receiver ([`receiver`], counting spans and log records
//! with [`wire`]), which the load generator (`otlpx-bench run`, in
//! `src/main.rs`) and the end-to-end tests export to.
//!
//! The span is a typical HTTP server span: a name plus 8 attributes with
//! semantic-convention keys, 4 strings of 10-20 characters, 2 integers, a
//! float and a boolean. All keys and values are `'static`, which is the
//! opentelemetry SDK's best case (its `Key` and `StringValue` then borrow
//! instead of allocating).

pub mod receiver;
pub mod wire;

/// The name of the benchmark span.
pub const SPAN_NAME: &str = "GET /api/v1/orders/{id}";

/// The instrumentation scope name the benches' tracers use.
pub const SCOPE_NAME: &str = "bench";

/// The instrumentation scope version the benches' tracers use.
pub const SCOPE_VERSION: &str = "1.0";

/// The `service.name` of the benches' engines.
pub const SERVICE_NAME: &str = "bench";

/// The 4 string attributes of the benchmark span.
pub const STR_ATTRIBUTES: [(&str, &str); 4] = [
    ("http.route", "/api/v1/orders/{id}"),
    ("url.path", "/api/v1/orders/4711"),
    ("server.address", "orders.internal"),
    ("user_agent.original", "okhttp/4.12.0"),
];

/// The 2 integer attributes of the benchmark span.
pub const I64_ATTRIBUTES: [(&str, i64); 2] =
    [("http.response.status_code", 200), ("server.port", 8443)];

/// The float attribute of the benchmark span.
pub const F64_ATTRIBUTE: (&str, f64) = ("app.cache.hit_ratio", 0.875);

/// The boolean attribute of the benchmark span.
pub const BOOL_ATTRIBUTE: (&str, bool) = ("app.cache.hit", true);

/// How many attributes the benchmark span has.
pub const ATTRIBUTE_COUNT: usize = STR_ATTRIBUTES.len() + I64_ATTRIBUTES.len() + 2;

/// Spans a thread records per timed chunk in the criterion benches. At
/// ~400 bytes a span, two threads' chunks on one CPU take ~400 KiB: well
/// inside a 1 MiB ring, which is drained between chunks.
pub const CHUNK_SPANS: u64 = 500;

/// Times `iters` calls of `record` on this thread, in chunks of
/// [`CHUNK_SPANS`], calling `between` after each chunk outside the timed
/// region (where the benches drain their rings).
pub fn time_in_chunks(
    iters: u64,
    mut record: impl FnMut(),
    mut between: impl FnMut(),
) -> std::time::Duration {
    let mut total = std::time::Duration::ZERO;
    let mut left = iters;
    while left > 0 {
        let n = left.min(CHUNK_SPANS);
        let start = std::time::Instant::now();
        for _ in 0..n {
            record();
        }
        total += start.elapsed();
        left -= n;
        between();
    }
    total
}

/// An otlpx engine configured like every bench's: `service.name` set, the
/// default ring size (1 MiB per CPU), recording only (`export(false)`):
/// the benches take the spans out themselves with `drain_traces`.
///
/// # Panics
///
/// If the engine cannot be built (it always can with these settings).
pub fn otlpx_engine() -> otlpx::Engine {
    otlpx::Engine::builder()
        .service_name(SERVICE_NAME)
        .ring_bytes_per_cpu(1 << 20)
        .export(false)
        .build()
        .expect("a valid engine configuration")
}

/// Records the benchmark span through otlpx: start, the 8 attributes, end.
#[inline]
pub fn record_otlpx(tracer: &otlpx::Tracer) {
    let mut span = tracer.start(SPAN_NAME);
    for (key, value) in STR_ATTRIBUTES {
        span.set_attribute(key, value);
    }
    for (key, value) in I64_ATTRIBUTES {
        span.set_attribute(key, value);
    }
    span.set_attribute(F64_ATTRIBUTE.0, F64_ATTRIBUTE.1);
    span.set_attribute(BOOL_ATTRIBUTE.0, BOOL_ATTRIBUTE.1);
    span.end();
}

/// An opentelemetry SDK tracer provider with the default sampler
/// (parent-based always-on) and no span processor, hence no exporter: what
/// opentelemetry-rust's own "sampled span without export" benchmarks measure.
pub fn opentelemetry_provider() -> opentelemetry_sdk::trace::SdkTracerProvider {
    opentelemetry_sdk::trace::SdkTracerProvider::builder().build()
}

/// Records the benchmark span through the opentelemetry SDK: start, the same
/// 8 attributes, end.
#[inline]
pub fn record_opentelemetry(tracer: &opentelemetry_sdk::trace::SdkTracer) {
    use opentelemetry::KeyValue;
    use opentelemetry::trace::{Span, Tracer};

    let mut span = tracer.start(SPAN_NAME);
    for (key, value) in STR_ATTRIBUTES {
        span.set_attribute(KeyValue::new(key, value));
    }
    for (key, value) in I64_ATTRIBUTES {
        span.set_attribute(KeyValue::new(key, value));
    }
    span.set_attribute(KeyValue::new(F64_ATTRIBUTE.0, F64_ATTRIBUTE.1));
    span.set_attribute(KeyValue::new(BOOL_ATTRIBUTE.0, BOOL_ATTRIBUTE.1));
    span.end();
}

/// An exporter that accepts every batch and does nothing with it: with it
/// the SDK builds each span's `SpanData` and hands it over, as it must for
/// any real exporter, while the export itself costs nothing.
#[derive(Debug, Default)]
pub struct DiscardingExporter;

impl opentelemetry_sdk::trace::SpanExporter for DiscardingExporter {
    async fn export(
        &self,
        batch: Vec<opentelemetry_sdk::trace::SpanData>,
    ) -> opentelemetry_sdk::error::OTelSdkResult {
        std::hint::black_box(batch);
        Ok(())
    }
}

/// An opentelemetry SDK tracer provider that exports every ended span,
/// synchronously, through the SDK's `SimpleSpanProcessor` to a
/// [`DiscardingExporter`]: the SDK's cost to hand a finished span to an
/// exporter, never reduced by dropping spans under load (as a batch
/// processor's full queue would).
pub fn opentelemetry_provider_exporting() -> opentelemetry_sdk::trace::SdkTracerProvider {
    opentelemetry_sdk::trace::SdkTracerProvider::builder()
        .with_simple_exporter(DiscardingExporter)
        .build()
}

/// An otlpx engine configured like [`otlpx_engine`], serving its admin
/// endpoint (`/metrics` and the rest) on a free port of 127.0.0.1; find it
/// with [`otlpx::Engine::admin_address`].
///
/// # Panics
///
/// If the engine cannot be built (with these settings, only when the admin
/// endpoint cannot bind).
pub fn otlpx_engine_with_admin() -> otlpx::Engine {
    otlpx::Engine::builder()
        .service_name(SERVICE_NAME)
        .ring_bytes_per_cpu(1 << 20)
        .export(false)
        .admin_address("127.0.0.1:0")
        .build()
        .expect("a valid engine configuration")
}
