//! The C ABI's cost per finished span, beside the Rust API's and
//! opentelemetry-rust's, on one thread.
//!
//! The span is the same as `record_span`'s: a name and 8 attributes (4
//! strings, 2 integers, a float, a bool).
//!
//! * `rust_api`: `Tracer::start`, 8 × `set_attribute`, `end` (the
//!   `record_span/otlpx/1thread` work).
//! * `c_handle`: `otlpx_span_begin`, one `otlpx_span_set_attributes` with
//!   the 8 attributes, `otlpx_span_end`: a runtime without an SDK.
//! * `c_handle_per_attribute`: the same with 8 `otlpx_span_set_attributes`
//!   calls of one attribute each, as a binding that forwards every
//!   `set_attribute` does.
//! * `c_one_shot`: one `otlpx_tracer_record_span` of an
//!   `otlpx_finished_span` with the 8 attributes: an SDK's span processor.
//! * `opentelemetry_sdk_exporting`: the opentelemetry-rust SDK with a
//!   `SimpleSpanProcessor` and a discarding exporter (as in `record_span`).
//!
//! The C functions are called through function pointers hidden from the
//! optimiser, as a C caller calls them: nothing is inlined across the ABI
//! (a call through the shared library's PLT adds an indirect jump, ~1 ns).
//! Rings are drained between timed chunks, outside the timing, and every
//! sample asserts nothing was dropped.
//!
//! Run: `cargo bench -p otlpx-bench --bench ffi_record`.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use opentelemetry::trace::TracerProvider as _;
use otlpx_bench::{
    BOOL_ATTRIBUTE, F64_ATTRIBUTE, I64_ATTRIBUTES, SCOPE_NAME, SCOPE_VERSION, SPAN_NAME,
    STR_ATTRIBUTES, opentelemetry_provider_exporting, otlpx_engine, record_opentelemetry,
    record_otlpx, time_in_chunks,
};
use otlpx_ffi::engine::{otlpx_engine, otlpx_tracer};
use otlpx_ffi::otlpx_status;
use otlpx_ffi::types::{otlpx_attribute, otlpx_finished_span, otlpx_str, otlpx_value_type};
use std::hint::black_box;
use std::time::Duration;

#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn s(text: &'static str) -> otlpx_str {
    otlpx_str {
        ptr: text.as_ptr().cast(),
        len: text.len(),
    }
}

fn attribute(key: &'static str, r#type: otlpx_value_type) -> otlpx_attribute {
    otlpx_attribute {
        key: s(key),
        r#type: r#type as u32,
        string: s(""),
        int_value: 0,
        double_value: 0.0,
        array: std::ptr::null(),
        array_len: 0,
    }
}

/// The benchmark span's 8 attributes as C structs.
fn c_attributes() -> Vec<otlpx_attribute> {
    let mut out = Vec::new();
    for (k, v) in STR_ATTRIBUTES {
        let mut a = attribute(k, otlpx_value_type::String);
        a.string = s(v);
        out.push(a);
    }
    for (k, v) in I64_ATTRIBUTES {
        let mut a = attribute(k, otlpx_value_type::Int);
        a.int_value = v;
        out.push(a);
    }
    let mut f = attribute(F64_ATTRIBUTE.0, otlpx_value_type::Double);
    f.double_value = F64_ATTRIBUTE.1;
    out.push(f);
    let mut b = attribute(BOOL_ATTRIBUTE.0, otlpx_value_type::Bool);
    b.int_value = i64::from(BOOL_ATTRIBUTE.1);
    out.push(b);
    out
}

/// An engine built through the C ABI: no exporter, 1 MiB rings, the
/// process environment ignored; and its tracer.
fn c_engine() -> (*mut otlpx_engine, *const otlpx_tracer) {
    use otlpx_ffi::config::*;
    use otlpx_ffi::engine::*;
    let mut config = std::ptr::null_mut();
    let mut engine = std::ptr::null_mut();
    let mut tracer = std::ptr::null();
    // SAFETY: out-pointers to locals; strings from `&'static str`s with
    // their lengths.
    unsafe {
        assert_eq!(otlpx_config_new(&mut config), otlpx_status::Ok);
        assert_eq!(otlpx_config_ignore_environment(config, 1), otlpx_status::Ok);
        assert_eq!(
            otlpx_config_set_ring_bytes_per_cpu(config, 1 << 20),
            otlpx_status::Ok
        );
        assert_eq!(otlpx_engine_new(config, &mut engine), otlpx_status::Ok);
        assert_eq!(
            otlpx_engine_tracer(
                engine,
                SCOPE_NAME.as_ptr().cast(),
                SCOPE_NAME.len(),
                SCOPE_VERSION.as_ptr().cast(),
                SCOPE_VERSION.len(),
                &mut tracer,
            ),
            otlpx_status::Ok
        );
    }
    (engine, tracer)
}

/// Times `iters` calls of `record` ([`time_in_chunks`]), draining
/// `engine` between chunks outside the timing; asserts nothing was dropped.
fn timed(iters: u64, engine: &otlpx::Engine, record: impl FnMut()) -> Duration {
    let mut out = bytes::BytesMut::new();
    let total = time_in_chunks(iters, record, || {
        while engine.drain_traces(&mut out, 4096) > 0 {}
    });
    let stats = engine.stats();
    assert_eq!(stats.dropped.total(), 0, "spans dropped: {stats:?}");
    total
}

fn bench(c: &mut Criterion) {
    use otlpx_ffi::record::otlpx_tracer_record_span;
    use otlpx_ffi::span::{otlpx_span_begin, otlpx_span_end, otlpx_span_set_attributes};

    let mut g = c.benchmark_group("ffi_record_span");
    g.throughput(Throughput::Elements(1));
    let attrs = c_attributes();

    g.bench_function("rust_api", |b| {
        b.iter_custom(|iters| {
            let engine = otlpx_engine();
            let tracer = engine.tracer(SCOPE_NAME, SCOPE_VERSION);
            timed(iters, &engine, || record_otlpx(&tracer))
        });
    });

    // Function pointers the optimiser cannot see through: real calls.
    type Begin = unsafe extern "C" fn(
        *const otlpx_tracer,
        *const std::ffi::c_char,
        usize,
        *const otlpx_ffi::types::otlpx_span_options,
        *mut u64,
    ) -> otlpx_status;
    type Set = unsafe extern "C" fn(u64, *const otlpx_attribute, usize) -> otlpx_status;
    type End = unsafe extern "C" fn(u64, u64) -> otlpx_status;
    type Record =
        unsafe extern "C" fn(*const otlpx_tracer, *const otlpx_finished_span) -> otlpx_status;
    let begin: Begin = black_box(otlpx_span_begin);
    let set: Set = black_box(otlpx_span_set_attributes);
    let end: End = black_box(otlpx_span_end);
    let record: Record = black_box(otlpx_tracer_record_span);

    g.bench_function("c_handle", |b| {
        b.iter_custom(|iters| {
            let (engine, tracer) = c_engine();
            // SAFETY: `engine` is live until freed below.
            let core = unsafe { otlpx_ffi::engine::core_engine(engine) }.expect("live");
            let t = timed(iters, core, || {
                let mut span = 0;
                // SAFETY: a live tracer, a static name, live attributes.
                unsafe {
                    let st = begin(
                        tracer,
                        SPAN_NAME.as_ptr().cast(),
                        SPAN_NAME.len(),
                        std::ptr::null(),
                        &mut span,
                    );
                    debug_assert_eq!(st, otlpx_status::Ok);
                    let st = set(span, attrs.as_ptr(), attrs.len());
                    debug_assert_eq!(st, otlpx_status::Ok);
                    let st = end(span, 0);
                    debug_assert_eq!(st, otlpx_status::Ok);
                }
            });
            // SAFETY: from `otlpx_engine_new`, freed once.
            unsafe { otlpx_ffi::engine::otlpx_engine_free(engine) };
            t
        });
    });

    g.bench_function("c_handle_per_attribute", |b| {
        b.iter_custom(|iters| {
            let (engine, tracer) = c_engine();
            // SAFETY: as above.
            let core = unsafe { otlpx_ffi::engine::core_engine(engine) }.expect("live");
            let t = timed(iters, core, || {
                let mut span = 0;
                // SAFETY: as above.
                unsafe {
                    begin(
                        tracer,
                        SPAN_NAME.as_ptr().cast(),
                        SPAN_NAME.len(),
                        std::ptr::null(),
                        &mut span,
                    );
                    for a in &attrs {
                        set(span, a, 1);
                    }
                    end(span, 0);
                }
            });
            // SAFETY: as above.
            unsafe { otlpx_ffi::engine::otlpx_engine_free(engine) };
            t
        });
    });

    g.bench_function("c_one_shot", |b| {
        b.iter_custom(|iters| {
            let (engine, tracer) = c_engine();
            // SAFETY: as above.
            let core = unsafe { otlpx_ffi::engine::core_engine(engine) }.expect("live");
            let mut span = otlpx_finished_span {
                trace_id: [0; 16],
                span_id: [0; 8],
                trace_flags: 1,
                parent_is_remote: 0,
                parent_span_id: [7; 8],
                trace_state: s(""),
                name: s(SPAN_NAME),
                kind: 2,
                start_time_unix_nano: 1_700_000_000_000_000_000,
                end_time_unix_nano: 1_700_000_000_000_500_000,
                status_code: 0,
                status_message: s(""),
                attributes: attrs.as_ptr(),
                attributes_len: attrs.len(),
                events: std::ptr::null(),
                events_len: 0,
                links: std::ptr::null(),
                links_len: 0,
                dropped_attributes_count: 0,
                dropped_events_count: 0,
                dropped_links_count: 0,
            };
            let mut n = 0u64;
            let t = timed(iters, core, || {
                // Fresh ids per span, as an SDK's spans have.
                n += 1;
                span.trace_id[..8].copy_from_slice(&n.to_be_bytes());
                span.span_id = (n | 1 << 63).to_be_bytes();
                // SAFETY: a live tracer and a span whose pointers are live.
                let st = unsafe { record(tracer, &span) };
                debug_assert_eq!(st, otlpx_status::Ok);
            });
            // SAFETY: as above.
            unsafe { otlpx_ffi::engine::otlpx_engine_free(engine) };
            t
        });
    });

    g.bench_function("opentelemetry_sdk_exporting", |b| {
        let provider = opentelemetry_provider_exporting();
        let tracer = provider.tracer(SCOPE_NAME);
        b.iter(|| record_opentelemetry(&tracer));
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
