//! The application-thread cost of one span: start, 8 attributes, end.
//!
//! `otlpx/*` record through otlpx into its per-CPU rings; the rings are
//! drained between timed chunks (outside the timing) so they never fill: a
//! full ring would turn the measurement into the cheap drop path, and every
//! sample asserts that nothing was dropped. `opentelemetry_sdk/*` record the
//! same span through an `SdkTracerProvider` with no processor (no export at
//! all), the SDK's own "sampled span without export" setup: its best case,
//! where `end` discards the span. `opentelemetry_sdk_exporting/*` add the
//! SDK's `SimpleSpanProcessor` and an exporter that discards each batch:
//! the SDK then builds the `SpanData` every exporter needs and hands it
//! over, which is the work otlpx's figure includes (its span leaves `end`
//! as finished OTLP bytes in a ring).
//!
//! Run: `cargo bench -p otlpx-bench --bench record_span`.

use criterion::{Bencher, Criterion, Throughput, criterion_group, criterion_main};
use opentelemetry::trace::TracerProvider as _;
use otlpx_bench::{
    SCOPE_NAME, SCOPE_VERSION, opentelemetry_provider, opentelemetry_provider_exporting,
    otlpx_engine, record_opentelemetry, record_otlpx,
};
use std::hint::spin_loop;
use std::sync::Barrier;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Spans a thread records per timed chunk. At ~400 bytes a span, two
/// threads' chunks on one CPU take ~400 KiB: well inside a 1 MiB ring.
const CHUNK: u64 = 500;

/// Times `iters` calls of `record` on this thread, in chunks of [`CHUNK`],
/// calling `between` after each chunk outside the timed region.
fn one_thread(iters: u64, record: impl Fn(), mut between: impl FnMut()) -> Duration {
    let mut total = Duration::ZERO;
    let mut left = iters;
    while left > 0 {
        let n = left.min(CHUNK);
        let start = Instant::now();
        for _ in 0..n {
            record();
        }
        total += start.elapsed();
        left -= n;
        between();
    }
    total
}

/// Two threads each call `record` `iters` times, concurrently, in rounds of
/// [`CHUNK`] spans per thread; `between` runs after each round while both
/// threads wait (outside the timing). Each thread times its own chunk; a
/// round counts as the slower thread's time. The sum is therefore the wall
/// time for each thread to record `iters` spans while the other thread does
/// the same: criterion's per-iteration figure is the per-span cost on each
/// of two concurrently recording threads.
fn two_threads<F>(iters: u64, record: &F, mut between: impl FnMut()) -> Duration
where
    F: Fn() + Sync,
{
    // Three parties: the two recorders and this thread, which hands out
    // rounds and runs `between`.
    let barrier = Barrier::new(3);
    // Spans per thread in the current round; 0 tells the threads to stop.
    let round_spans = AtomicU64::new(0);
    // Round arrivals, cumulative: both threads spin until the other one is
    // also awake, so their timed chunks overlap (a barrier's wake-ups are
    // staggered by microseconds).
    let arrived = AtomicU64::new(0);
    let elapsed = [AtomicU64::new(0), AtomicU64::new(0)];
    thread::scope(|s| {
        for slot in &elapsed {
            let (barrier, round_spans, arrived) = (&barrier, &round_spans, &arrived);
            s.spawn(move || {
                let mut round = 0;
                loop {
                    barrier.wait();
                    // Relaxed: the barrier orders this after the store.
                    let n = round_spans.load(Ordering::Relaxed);
                    if n == 0 {
                        break;
                    }
                    round += 1;
                    arrived.fetch_add(1, Ordering::Relaxed);
                    let mut spins = 0u32;
                    while arrived.load(Ordering::Relaxed) < 2 * round {
                        spins += 1;
                        if spins < 1 << 16 {
                            spin_loop();
                        } else {
                            thread::yield_now();
                        }
                    }
                    let start = Instant::now();
                    for _ in 0..n {
                        record();
                    }
                    let nanos = u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX);
                    // Relaxed: published to the main thread by the barrier.
                    slot.store(nanos, Ordering::Relaxed);
                    barrier.wait();
                }
            });
        }
        let mut total = Duration::ZERO;
        let mut left = iters;
        while left > 0 {
            let n = left.min(CHUNK);
            round_spans.store(n, Ordering::Relaxed);
            barrier.wait(); // round starts
            barrier.wait(); // both threads done
            let slowest = elapsed
                .iter()
                .map(|e| e.load(Ordering::Relaxed))
                .max()
                .unwrap_or(0);
            total += Duration::from_nanos(slowest);
            left -= n;
            between();
        }
        round_spans.store(0, Ordering::Relaxed);
        barrier.wait(); // release the threads
        total
    })
}

/// Takes every span out of the engine's rings.
fn drain_all(engine: &otlpx::Engine, out: &mut bytes::BytesMut) {
    while engine.drain_traces(out, 4096) > 0 {}
}

/// Asserts that the engine dropped nothing, so the figure is the recording
/// path and not the drop path.
fn assert_no_drops(engine: &otlpx::Engine) {
    let stats = engine.stats();
    assert_eq!(stats.dropped.total(), 0, "spans dropped: {stats:?}");
}

fn otlpx_iter(b: &mut Bencher<'_>, threads: usize) {
    let engine = otlpx_engine();
    let tracer = engine.tracer(SCOPE_NAME, SCOPE_VERSION);
    let mut out = bytes::BytesMut::with_capacity(1 << 20);
    let record = || record_otlpx(&tracer);
    b.iter_custom(|iters| {
        let between = || drain_all(&engine, &mut out);
        let elapsed = match threads {
            1 => one_thread(iters, record, between),
            _ => two_threads(iters, &record, between),
        };
        assert_no_drops(&engine);
        elapsed
    });
    let stats = engine.stats();
    assert_no_drops(&engine);
    assert_eq!(stats.in_rings, 0, "{stats:?}");
    assert!(stats.recorded > 0, "{stats:?}");
}

fn opentelemetry_iter(b: &mut Bencher<'_>, threads: usize, exporting: bool) {
    let provider = if exporting {
        opentelemetry_provider_exporting()
    } else {
        opentelemetry_provider()
    };
    let tracer = provider.tracer(SCOPE_NAME);
    let record = || record_opentelemetry(&tracer);
    b.iter_custom(|iters| match threads {
        1 => one_thread(iters, record, || {}),
        _ => two_threads(iters, &record, || {}),
    });
}

fn record_span(c: &mut Criterion) {
    let mut group = c.benchmark_group("record_span");
    group
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));

    // One span per iteration.
    group.throughput(Throughput::Elements(1));
    group.bench_function("otlpx/1thread", |b| otlpx_iter(b, 1));
    group.bench_function("opentelemetry_sdk/1thread", |b| {
        opentelemetry_iter(b, 1, false)
    });
    group.bench_function("opentelemetry_sdk_exporting/1thread", |b| {
        opentelemetry_iter(b, 1, true)
    });

    // Per iteration each of the two threads records one span: the time is
    // per span per thread, the throughput is both threads together.
    group.throughput(Throughput::Elements(2));
    group.bench_function("otlpx/2threads", |b| otlpx_iter(b, 2));
    group.bench_function("opentelemetry_sdk/2threads", |b| {
        opentelemetry_iter(b, 2, false)
    });
    group.bench_function("opentelemetry_sdk_exporting/2threads", |b| {
        opentelemetry_iter(b, 2, true)
    });

    group.finish();
}

criterion_group!(benches, record_span);
criterion_main!(benches);
