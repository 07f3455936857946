//! Compression of one 512-span request (the benchmark span, 8 attributes,
//! framed by otlpx exactly as a worker frames it), per codec and level:
//!
//! - `zlib_rs_gzip_l1` / `_l6`: flate2 with the zlib-rs backend, as otlpx
//!   uses it: one raw deflate state, reset per request.
//! - `miniz_oxide_l1` / `_l6`: flate2's default backend, a fresh
//!   compressor per request (what `GzEncoder::new` per request does).
//! - `zstd_l1` / `_l3`: zstd with a reused context.
//!
//! Criterion reports time per request; divide by 512 for time per span.
//! The compressed sizes are printed once, to stderr.
//!
//! Run: `cargo bench -p otlpx-bench --bench compress_batch`.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use otlpx_bench::{otlpx_engine, record_otlpx};
use std::hint::black_box;
use std::time::Duration;

#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Spans per request.
const BATCH: usize = 512;

fn request() -> Vec<u8> {
    let engine = otlpx_engine();
    let tracer = engine.tracer(otlpx_bench::SCOPE_NAME, otlpx_bench::SCOPE_VERSION);
    for _ in 0..BATCH {
        record_otlpx(&tracer);
    }
    let mut out = bytes::BytesMut::new();
    assert_eq!(engine.drain_traces(&mut out, BATCH), BATCH);
    out.to_vec()
}

fn deflate(state: &mut flate2::Compress, input: &[u8], out: &mut Vec<u8>) {
    out.clear();
    out.reserve(input.len() + 1024);
    state.reset();
    let status = state
        .compress_vec(input, out, flate2::FlushCompress::Finish)
        .expect("deflate");
    assert_eq!(status, flate2::Status::StreamEnd);
}

fn compress_batch(c: &mut Criterion) {
    let input = request();
    let mut g = c.benchmark_group("compress_batch");
    g.throughput(Throughput::Elements(BATCH as u64));
    g.measurement_time(Duration::from_secs(3));
    let mut sizes = Vec::new();
    let mut out = Vec::new();

    for level in [1, 6] {
        let mut state = flate2::Compress::new(flate2::Compression::new(level), false);
        deflate(&mut state, &input, &mut out);
        sizes.push((format!("zlib-rs gzip level {level}"), out.len()));
        g.bench_function(format!("zlib_rs_gzip_l{level}"), |b| {
            b.iter(|| deflate(&mut state, black_box(&input), &mut out));
        });
    }
    for level in [1u8, 6] {
        let compressed = miniz_oxide::deflate::compress_to_vec(&input, level);
        sizes.push((format!("miniz_oxide level {level}"), compressed.len()));
        g.bench_function(format!("miniz_oxide_l{level}"), |b| {
            b.iter(|| miniz_oxide::deflate::compress_to_vec(black_box(&input), level));
        });
    }
    for level in [1, 3] {
        let mut z = zstd::bulk::Compressor::new(level).expect("zstd level");
        out.clear();
        out.reserve(zstd::zstd_safe::compress_bound(input.len()));
        z.compress_to_buffer(&input, &mut out).expect("zstd");
        sizes.push((format!("zstd level {level}"), out.len()));
        g.bench_function(format!("zstd_l{level}"), |b| {
            b.iter(|| {
                out.clear();
                z.compress_to_buffer(black_box(&input[..]), &mut out)
                    .expect("zstd")
            });
        });
    }
    g.finish();
    eprintln!(
        "compress_batch: a {} byte request of {BATCH} spans",
        input.len()
    );
    for (name, len) in sizes {
        eprintln!(
            "  {name:<22} {len:>7} bytes, ratio {:.2}",
            input.len() as f64 / len as f64
        );
    }
}

criterion_group!(benches, compress_batch);
criterion_main!(benches);
