//! End to end across `fork()`: an exporting engine built in a parent
//! works in a forked child with nothing for the application to do, over
//! gRPC and HTTP. Spans the parent recorded before the fork are exported
//! once, by the parent (the child empties its copy of the rings); the
//! child's own spans arrive, counted from zero in its stats; and the ids
//! the child draws on the forking thread are not the parent's (the
//! generator is reseeded).
//!
//! One test in this file: forking a test binary while other tests run is
//! asking for trouble.

mod fork_support;

use fork_support::{fork_child, wait_child};
use otlpx::{Engine, Protocol};
use otlpx_bench::receiver::{Receiver, ReceiverConfig};
use std::collections::HashSet;
use std::time::Duration;

/// Spans in the parent's rings at the fork (K).
const BEFORE: u64 = 300;
/// Spans the child records (N).
const CHILD: u64 = 200;
/// Spans the parent records after the fork (M).
const AFTER: u64 = 150;

fn record(engine: &Engine, prefix: &str, n: u64) {
    let tracer = engine.tracer("fork", "1.0.0");
    for i in 0..n {
        // Root spans: each draws its ids from this thread's generator.
        tracer.start(format!("{prefix}-{i}")).end();
    }
}

/// The child's part: 0 when it holds, a code naming the failed check
/// otherwise.
fn child(engine: &Engine) -> i32 {
    let s = engine.stats();
    if (s.recorded, s.in_rings, s.exported) != (0, 0, 0) {
        return 10; // The parent's spans and counts are not the child's.
    }
    record(engine, "child", CHILD);
    if engine.flush(Duration::from_secs(15)).is_err() {
        return 11;
    }
    let s = engine.stats();
    if s.recorded != CHILD {
        return 12;
    }
    if (s.exported, s.in_rings, s.in_flight, s.dropped.total()) != (CHILD, 0, 0, 0) {
        return 13;
    }
    0
}

fn across_fork(protocol: Protocol) {
    let receiver = Receiver::start(ReceiverConfig {
        keep_requests: true,
        ..ReceiverConfig::default()
    })
    .expect("the receiver starts");
    let endpoint = match protocol {
        Protocol::Grpc => receiver.grpc_endpoint(),
        _ => receiver.http_endpoint(),
    };
    // Nothing is sent before a flush: the batch never fills, the delay
    // never passes.
    let engine = Engine::builder()
        .service_name("fork-test")
        .endpoint(endpoint)
        .protocol(protocol)
        .schedule_delay(Duration::from_secs(600))
        .max_batch_spans(100_000)
        .ring_bytes_per_cpu(4 << 20)
        .build()
        .unwrap();
    record(&engine, "before", BEFORE);
    let s = engine.stats();
    assert_eq!((s.recorded, s.in_rings), (BEFORE, BEFORE), "{protocol:?}");

    let pid = fork_child(|| child(&engine));

    record(&engine, "after", AFTER);
    engine.flush(Duration::from_secs(30)).unwrap();
    let code = wait_child(pid);
    assert_eq!(code, 0, "{protocol:?}: the child's check {code} failed");
    let s = engine.stats();
    let parent = BEFORE + AFTER;
    assert_eq!((s.recorded, s.exported), (parent, parent), "{protocol:?}");

    let total = BEFORE + AFTER + CHILD;
    assert!(
        receiver.wait_for_spans(total, Duration::from_secs(10)),
        "{protocol:?}"
    );
    // Room for a duplicate to arrive, if there were one.
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(receiver.counts().spans, total, "{protocol:?}");
    let mut names = HashSet::new();
    let mut span_ids = HashSet::new();
    let mut trace_ids = HashSet::new();
    for request in receiver.take_requests() {
        for span in request
            .resource_spans
            .iter()
            .flat_map(|rs| &rs.scope_spans)
            .flat_map(|ss| &ss.spans)
        {
            assert!(names.insert(span.name.clone()), "{} twice", span.name);
            assert!(span_ids.insert(span.span_id.clone()), "a span id twice");
            assert!(trace_ids.insert(span.trace_id.clone()), "a trace id twice");
        }
    }
    let expected: HashSet<String> = [("before", BEFORE), ("after", AFTER), ("child", CHILD)]
        .into_iter()
        .flat_map(|(prefix, n)| (0..n).map(move |i| format!("{prefix}-{i}")))
        .collect();
    assert_eq!(names, expected, "{protocol:?}");
    engine.shutdown(Duration::from_secs(5)).unwrap();
}

#[test]
fn an_exporting_engine_works_in_a_forked_child_without_duplicates() {
    for protocol in [Protocol::Grpc, Protocol::HttpProtobuf] {
        across_fork(protocol);
    }
}
