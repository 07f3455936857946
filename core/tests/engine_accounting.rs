//! Exact accounting at the engine level: a tiny ring with no consumer keeps
//! exactly the spans that fit and counts the rest; threads recording while a
//! consumer drains end with `recorded == drained + dropped` and every
//! drained span decoded, none twice.

use bytes::BytesMut;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use otlpx::{Engine, RecordError};
use prost::Message;
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};

fn decode_names(bytes: &[u8]) -> Vec<String> {
    let req = ExportTraceServiceRequest::decode(bytes).unwrap();
    req.resource_spans
        .iter()
        .flat_map(|rs| &rs.scope_spans)
        .flat_map(|ss| &ss.spans)
        .map(|s| s.name.clone())
        .collect()
}

#[test]
fn tiny_ring_without_consumer_keeps_what_fits_and_counts_the_rest() {
    let engine = Engine::builder()
        .export(false)
        .rings(1)
        .ring_bytes_per_cpu(1024)
        .build()
        .unwrap();
    let tracer = engine.tracer("overflow", "");
    let mut kept = 0u64;
    let names: Vec<String> = (0..100).map(|i| format!("span-{i:03}")).collect();
    for name in &names {
        let mut span = tracer.start(name);
        span.set_attribute("i", 1);
        span.end();
        // The live API reports nothing; the stats tell.
        if engine.stats().dropped.ring_full == 0 {
            kept += 1;
        }
    }
    let s = engine.stats();
    assert_eq!(s.recorded, 100);
    assert_eq!(s.in_rings, kept);
    assert_eq!(s.dropped.ring_full, 100 - kept);
    assert!(
        kept > 5 && kept < 100,
        "a 1 KiB ring holds some spans, not all: {kept}"
    );
    assert!(s.ring_bytes_used <= 1024);

    // The spans kept are the first ones, whole and in order.
    let mut out = BytesMut::new();
    assert_eq!(engine.drain_traces(&mut out, usize::MAX) as u64, kept);
    assert_eq!(decode_names(&out), names[..kept as usize]);
    let s = engine.stats();
    assert_eq!(
        (s.drained_by_caller, s.in_rings, s.ring_bytes_used),
        (kept, 0, 0)
    );

    // record_span reports the same drop as a status.
    let finished = otlpx::FinishedSpan {
        trace_id: otlpx::TraceId::random(),
        span_id: otlpx::SpanId::random(),
        name: "x",
        ..Default::default()
    };
    while tracer.record_span(&finished).is_ok() {}
    assert_eq!(tracer.record_span(&finished), Err(RecordError::RingFull));
}

#[test]
fn span_larger_than_half_a_ring_is_dropped_as_too_large() {
    let engine = Engine::builder()
        .export(false)
        .rings(1)
        .ring_bytes_per_cpu(1024)
        .build()
        .unwrap();
    let tracer = engine.tracer("t", "");
    let big = "x".repeat(600);
    tracer.start(&big).end();
    let s = engine.stats();
    assert_eq!((s.recorded, s.dropped.too_large), (1, 1));
}

#[test]
fn producers_and_a_draining_consumer_account_for_every_span() {
    let threads = 4;
    let per_thread = if cfg!(miri) { 50 } else { 50_000 };
    let engine = Engine::builder()
        .export(false)
        .rings(2)
        .ring_bytes_per_cpu(64 << 10)
        .build()
        .unwrap();
    let done = AtomicBool::new(false);
    let mut seen = HashSet::new();
    let mut drained = 0u64;
    std::thread::scope(|s| {
        let producers: Vec<_> = (0..threads)
            .map(|t| {
                let engine = engine.clone();
                s.spawn(move || {
                    let tracer = engine.tracer("stress", "");
                    for i in 0..per_thread {
                        let name = format!("{t}-{i}");
                        let mut span = tracer.start(&name);
                        span.set_attribute("thread", t);
                        span.end();
                    }
                })
            })
            .collect();
        let mut out = BytesMut::new();
        let mut drain = |seen: &mut HashSet<String>| {
            let n = engine.drain_traces(&mut out, 1000);
            if n > 0 {
                let names = decode_names(&out);
                assert_eq!(names.len(), n);
                for name in names {
                    assert!(seen.insert(name), "a span was drained twice");
                }
            }
            n as u64
        };
        // "done" is said even when a producer panicked, so a failure fails
        // the test instead of leaving the drain loop spinning forever.
        let stop = s.spawn(|| {
            let results: Vec<_> = producers.into_iter().map(|p| p.join()).collect();
            done.store(true, Ordering::Release);
            for r in results {
                if let Err(panic) = r {
                    std::panic::resume_unwind(panic);
                }
            }
        });
        while !done.load(Ordering::Acquire) {
            drained += drain(&mut seen);
        }
        stop.join().unwrap();
        loop {
            match drain(&mut seen) {
                0 => break,
                n => drained += n,
            }
        }
    });
    let s = engine.stats();
    let total = (threads * per_thread) as u64;
    assert_eq!(s.recorded, total, "every span handed over is counted");
    assert_eq!(s.drained_by_caller, drained);
    assert_eq!(s.in_rings, 0);
    assert_eq!(s.drained_by_caller + s.dropped.total(), total);
    assert_eq!(
        s.dropped.total(),
        s.dropped.ring_full,
        "only full rings drop here"
    );
    assert_eq!(seen.len() as u64, drained);
}

#[test]
fn handles_are_thread_safe() {
    fn send_sync<T: Send + Sync>() {}
    fn send<T: Send>() {}
    send_sync::<Engine>();
    send_sync::<otlpx::Tracer>();
    // A span may end on another thread than the one that started it.
    send::<otlpx::Span<'static>>();
}

#[test]
fn bad_ring_size_is_a_clear_build_error() {
    let err = Engine::builder()
        .ring_bytes_per_cpu(1000)
        .build()
        .unwrap_err();
    assert!(matches!(err, otlpx::BuildError::Config(_)));
    let msg = err.to_string();
    assert!(
        msg.contains("ring_bytes_per_cpu") && msg.contains("1000"),
        "{msg}"
    );
    // A zero ring count is refused too, naming the setting.
    let err = Engine::builder().rings(0).build().unwrap_err();
    assert!(err.to_string().contains("rings"), "{err}");
}
