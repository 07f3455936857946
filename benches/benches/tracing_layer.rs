//! The application-thread cost of one `tracing::info!` event with four
//! fields (a string, an integer, a float, a bool) and a literal message,
//! outside any span, through three subscribers built the same way
//! (`tracing_subscriber::registry().with(layer)`):
//!
//! - `tracing_layer/otlpx`: otlpx's layer, recording into an engine that
//!   does not export; the log rings are drained between timed chunks
//!   (outside the timing) so they never fill, and each sample asserts
//!   nothing was dropped. The record leaves the call as finished OTLP
//!   bytes in a ring, with the event's code location (three more
//!   attributes, the file path the longest value).
//! - `tracing_layer/otlpx_no_location`: the same, `with_location(false)`:
//!   the attributes the appender below sends (it adds no location by
//!   default).
//! - `tracing_layer/opentelemetry_appender_tracing`: the
//!   opentelemetry-rust way, `opentelemetry-appender-tracing`'s bridge
//!   into an `SdkLoggerProvider` with a `SimpleLogProcessor` and an
//!   exporter that discards each batch: the SDK builds the record every
//!   exporter needs and hands it over, the work otlpx's figure includes
//!   (as `record_span`'s `opentelemetry_sdk_exporting`).
//! - `tracing_layer/opentelemetry_appender_tracing_batch`: the same bridge
//!   with the SDK's batch log processor (its production setup): on the
//!   event's thread, the record is cloned and sent to the processor's
//!   thread over a channel (the export there discards it).
//! - `tracing_layer/noop`: a layer that does nothing, the floor: what
//!   `tracing` and the registry cost by themselves.
//!
//! Read the first two against the third with this in mind: otlpx's figure
//! includes encoding the record to OTLP protobuf (it is never encoded
//! again), where the SDK's stops at handing an `SdkLogRecord` to its
//! exporter, whose encoding (on its own thread, with a batch processor)
//! is not measured here.
//!
//! Run: `cargo bench -p otlpx-bench --bench tracing_layer`.

use criterion::{Bencher, Criterion, Throughput, criterion_group, criterion_main};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::logs::{LogBatch, LogExporter, SdkLoggerProvider};
use otlpx::Signal;
use otlpx_bench::{otlpx_engine, time_in_chunks};
use std::time::Duration;
use tracing::Subscriber;
use tracing_subscriber::Layer;
use tracing_subscriber::prelude::*;

#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// The measured event.
#[inline]
fn event(i: u64) {
    tracing::info!(
        user.id = "u-1042",
        order.items = i,
        order.total = 99.5,
        order.retry = false,
        "order placed"
    );
}

/// Times [`event`] under `subscriber`, calling `between` after each chunk
/// outside the timing.
fn bench(
    b: &mut Bencher<'_>,
    subscriber: impl Subscriber + Send + Sync,
    mut between: impl FnMut(),
) {
    tracing::subscriber::with_default(subscriber, || {
        let mut i = 0;
        b.iter_custom(|iters| {
            time_in_chunks(
                iters,
                || {
                    i += 1;
                    event(i);
                },
                &mut between,
            )
        });
    });
}

/// Discards every batch: the SDK's cost up to an exporter, no further.
#[derive(Debug)]
struct Discard;

impl LogExporter for Discard {
    async fn export(&self, _batch: LogBatch<'_>) -> OTelSdkResult {
        Ok(())
    }
}

/// Does nothing at all.
struct Noop;

impl<S: Subscriber> Layer<S> for Noop {}

fn tracing_layer(c: &mut Criterion) {
    let mut group = c.benchmark_group("tracing_layer");
    group
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .throughput(Throughput::Elements(1));
    group.bench_function("otlpx", |b| {
        let engine = otlpx_engine();
        let mut out = bytes::BytesMut::with_capacity(1 << 20);
        let subscriber = tracing_subscriber::registry().with(otlpx::tracing::layer(&engine));
        bench(b, subscriber, || {
            while engine.drain(Signal::Logs, &mut out, 4096) > 0 {}
            let s = engine.signal_stats(Signal::Logs);
            assert_eq!(s.dropped.total(), 0, "records dropped: {s:?}");
        });
        assert!(engine.signal_stats(Signal::Logs).recorded > 0);
    });
    group.bench_function("otlpx_no_location", |b| {
        let engine = otlpx_engine();
        let mut out = bytes::BytesMut::with_capacity(1 << 20);
        let layer = otlpx::tracing::layer(&engine).with_location(false);
        bench(b, tracing_subscriber::registry().with(layer), || {
            while engine.drain(Signal::Logs, &mut out, 4096) > 0 {}
            let s = engine.signal_stats(Signal::Logs);
            assert_eq!(s.dropped.total(), 0, "records dropped: {s:?}");
        });
    });
    group.bench_function("opentelemetry_appender_tracing", |b| {
        let provider = SdkLoggerProvider::builder()
            .with_simple_exporter(Discard)
            .build();
        let bridge =
            opentelemetry_appender_tracing::layer::OpenTelemetryTracingBridge::new(&provider);
        bench(b, tracing_subscriber::registry().with(bridge), || {});
        let _ = provider.shutdown();
    });
    group.bench_function("opentelemetry_appender_tracing_batch", |b| {
        let provider = SdkLoggerProvider::builder()
            .with_batch_exporter(Discard)
            .build();
        let bridge =
            opentelemetry_appender_tracing::layer::OpenTelemetryTracingBridge::new(&provider);
        bench(b, tracing_subscriber::registry().with(bridge), || {});
        let _ = provider.shutdown();
    });
    group.bench_function("noop", |b| {
        bench(b, tracing_subscriber::registry().with(Noop), || {});
    });
    group.finish();
}

criterion_group!(benches, tracing_layer);
criterion_main!(benches);
