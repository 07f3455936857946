//! Recording a span allocates nothing once the thread is warm: a counting
//! global allocator watches this thread while spans are started, given
//! eight attributes, an event, and ended — and while `record_span` records
//! finished ones.

use otlpx::{Engine, FinishedSpan, KeyValue, SpanId, SpanKind, TraceFlags, TraceId};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

struct Counting;

thread_local! {
    // `const` thread-locals without destructors never allocate themselves.
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

fn note() {
    if COUNTING.with(Cell::get) {
        ALLOCATIONS.with(|a| a.set(a.get() + 1));
    }
}

// SAFETY: every method forwards to `System` unchanged; counting touches only
// const thread-locals, which neither allocate nor re-enter the allocator.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note();
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note();
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note();
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations_during(f: impl FnOnce()) -> u64 {
    ALLOCATIONS.with(|a| a.set(0));
    COUNTING.with(|c| c.set(true));
    f();
    COUNTING.with(|c| c.set(false));
    ALLOCATIONS.with(Cell::get)
}

fn record_one(tracer: &otlpx::Tracer, user: &str) {
    let mut span = tracer
        .span("GET /users/{id}")
        .kind(SpanKind::Server)
        .start();
    span.set_attribute("http.request.method", "GET");
    span.set_attribute("http.route", "/users/{id}");
    span.set_attribute("url.scheme", "https");
    span.set_attribute("user_agent.original", user);
    span.set_attribute("http.response.status_code", 200);
    span.set_attribute("server.port", 8443);
    span.set_attribute("http.server.request.duration", 0.0123);
    span.set_attribute("error", false);
    span.add_event("cache.hit", &[KeyValue::new("cache.key", "user:42")]);
    span.end();
}

#[test]
fn recording_a_span_allocates_nothing_once_warm() {
    let engine = Engine::builder()
        .export(false)
        .service_name("alloc")
        .rings(1)
        .ring_bytes_per_cpu(4 << 20)
        .build()
        .unwrap();
    let tracer = engine.tracer("alloc", "1");
    let user = String::from("Mozilla/5.0 (X11; Linux x86_64)");
    let attrs = [
        KeyValue::new("http.request.method", "GET"),
        KeyValue::new("http.response.status_code", 200),
    ];
    let finished = |i: u64| FinishedSpan {
        trace_id: TraceId::random(),
        span_id: SpanId::random(),
        trace_flags: TraceFlags::SAMPLED,
        name: "finished",
        start_time_unix_nano: i,
        end_time_unix_nano: i + 1,
        attributes: &attrs,
        ..Default::default()
    };
    // Warm up: thread-locals, the scratch pool, the id generator, the clock.
    for i in 0..64 {
        record_one(&tracer, &user);
        tracer.record_span(&finished(i)).unwrap();
    }
    let n = if cfg!(miri) { 16 } else { 2_000 };
    let allocs = allocations_during(|| {
        for i in 0..n {
            record_one(&tracer, &user);
            tracer.record_span(&finished(i)).unwrap();
        }
    });
    assert_eq!(
        allocs, 0,
        "allocations while recording {n} warm spans of each kind"
    );
    let stats = engine.stats();
    assert_eq!(stats.recorded, 2 * (64 + n));
    assert_eq!(
        stats.dropped.total(),
        0,
        "the ring was large enough: nothing dropped"
    );
}
