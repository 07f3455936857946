//! What the current span context costs the application thread, next to
//! the explicit-parent path it replaces, in one run.
//!
//! - `child/explicit_parent`: a child span (start, end; no attributes, so
//!   that the parent lookup is a large part of the cost) given its parent
//!   with `.parent(&ctx)`;
//! - `child/current_parent`: the same span with no parent argument, the
//!   parent attached as current (outside the timing);
//! - `root/explicit`: a root span asked for with `.root()`;
//! - `root/nothing_current`: a root span because nothing is attached;
//! - `attach_detach`: making a context current and dropping its guard;
//! - `in_span`: `tracer.in_span(name, |_| ())`, a span that is current
//!   while its closure runs, against `child/current_parent` plus
//!   `attach_detach`.
//!
//! Rings are drained between timed chunks (outside the timing), and each
//! sample asserts that nothing was dropped.
//!
//! Run: `cargo bench -p otlpx-bench --bench current_context`.

use criterion::{Bencher, Criterion, Throughput, criterion_group, criterion_main};
use otlpx::{SpanContext, Tracer};
use otlpx_bench::{SCOPE_NAME, SCOPE_VERSION, otlpx_engine, time_in_chunks};
use std::hint::black_box;
use std::time::Duration;

#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Times `record` per call, draining the engine's rings between chunks;
/// with `attached`, the parent span's context is current throughout.
fn bench(b: &mut Bencher<'_>, attached: bool, record: impl Fn(&Tracer, &SpanContext)) {
    let engine = otlpx_engine();
    let tracer = engine.tracer(SCOPE_NAME, SCOPE_VERSION);
    let parent = tracer.start("parent").context().clone();
    let _guard = attached.then(|| parent.attach());
    let mut out = bytes::BytesMut::with_capacity(1 << 20);
    b.iter_custom(|iters| {
        let elapsed = time_in_chunks(
            iters,
            || record(&tracer, &parent),
            || while engine.drain_traces(&mut out, 4096) > 0 {},
        );
        let s = engine.stats();
        assert_eq!(s.dropped.total(), 0, "spans dropped: {s:?}");
        elapsed
    });
}

fn current_context(c: &mut Criterion) {
    let mut group = c.benchmark_group("current_context");
    group
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .throughput(Throughput::Elements(1));
    group.bench_function("child/explicit_parent", |b| {
        bench(b, false, |tracer, parent| {
            tracer.span("child").parent(parent).start().end();
        });
    });
    group.bench_function("child/current_parent", |b| {
        bench(b, true, |tracer, _| tracer.start("child").end());
    });
    group.bench_function("root/explicit", |b| {
        bench(b, false, |tracer, _| {
            tracer.span("root").root().start().end()
        });
    });
    group.bench_function("root/nothing_current", |b| {
        bench(b, false, |tracer, _| tracer.start("root").end());
    });
    group.bench_function("attach_detach", |b| {
        bench(b, false, |_, parent| drop(black_box(parent.attach())));
    });
    group.bench_function("in_span", |b| {
        bench(b, true, |tracer, _| tracer.in_span("child", |_| ()));
    });
    group.finish();
}

criterion_group!(benches, current_context);
criterion_main!(benches);
