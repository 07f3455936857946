//! Forking while other threads of the parent record spans, register
//! scopes, read stats, flush and drain, over and over: no child ever
//! deadlocks on a lock a vanished thread held (every wait is bounded),
//! each child exports and drains exactly its own spans, and the receiver
//! gets exactly what the parent and the children exported.
//!
//! One test in this file: forking a test binary while other tests run is
//! asking for trouble.

mod fork_support;

use bytes::BytesMut;
use fork_support::{fork_child, wait_child};
use otlpx::Engine;
use otlpx_bench::receiver::{Receiver, ReceiverConfig};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

const FORKS: u64 = 40;
/// Spans each child records on each engine.
const CHILD: u64 = 50;

/// Takes everything out of an exporter-less engine; how many spans.
fn drain_all(engine: &Engine, out: &mut BytesMut) -> u64 {
    let mut total = 0;
    loop {
        let n = engine.drain_traces(out, 512) as u64;
        if n == 0 {
            return total;
        }
        total += n;
    }
}

/// The child's part: 0 when it holds, a code naming the failed check.
fn child(exporting: &Engine, draining: &Engine) -> i32 {
    if exporting.stats().recorded != 0 || draining.stats().recorded != 0 {
        return 10;
    }
    // Takes the scope catalog's write lock, which a parent thread may have
    // been waiting for, or holding for reading, at the fork.
    let tracer = exporting.tracer("child-scope", "");
    let local = draining.tracer("child-scope", "");
    for _ in 0..CHILD {
        tracer.start("child").end();
        local.start("child").end();
    }
    if exporting.flush(Duration::from_secs(10)).is_err() {
        return 11;
    }
    let s = exporting.stats();
    if (s.recorded, s.exported) != (CHILD, CHILD) {
        return 12;
    }
    // The drain batcher's lock, which the parent's drain thread takes in a
    // loop; only the child's own spans come out.
    if drain_all(draining, &mut BytesMut::new()) != CHILD {
        return 13;
    }
    0
}

struct StopOnDrop<'a>(&'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        // Relaxed: see `running` below.
        self.0.store(true, Ordering::Relaxed);
    }
}

#[test]
fn forking_while_threads_record_register_flush_and_drain_never_deadlocks_a_child() {
    let receiver = Receiver::start(ReceiverConfig::default()).expect("the receiver starts");
    let exporting = Engine::builder()
        .service_name("fork-stress")
        .endpoint(receiver.grpc_endpoint())
        .schedule_delay(Duration::from_millis(20))
        .ring_bytes_per_cpu(1 << 20)
        .build()
        .unwrap();
    let draining = Engine::builder()
        .service_name("fork-stress-drain")
        .export(false)
        .ring_bytes_per_cpu(1 << 20)
        .build()
        .unwrap();
    let stop = AtomicBool::new(false);
    // Relaxed (every access): a flag to stop loops, publishing nothing.
    let running = || !stop.load(Ordering::Relaxed);
    std::thread::scope(|s| {
        // Stops the threads however the forking loop ends (a failed check
        // panics), so that the scope can join them.
        let _stop = StopOnDrop(&stop);
        s.spawn(|| {
            let (a, b) = (exporting.tracer("busy", ""), draining.tracer("busy", ""));
            while running() {
                a.start("busy").end();
                b.start("busy").end();
            }
        });
        s.spawn(|| {
            let mut i = 0u64;
            while running() {
                // A new scope each time: the catalog's write lock.
                let _ = exporting.tracer(&format!("scope-{i}"), "");
                let _ = exporting.stats();
                if i.is_multiple_of(64) {
                    let _ = exporting.flush(Duration::from_millis(200));
                }
                i += 1;
            }
        });
        s.spawn(|| {
            let mut out = BytesMut::new();
            while running() {
                let _ = draining.drain_traces(&mut out, 64);
            }
        });
        for round in 0..FORKS {
            std::thread::sleep(Duration::from_millis(5));
            let pid = fork_child(|| child(&exporting, &draining));
            let code = wait_child(pid);
            assert_eq!(code, 0, "fork {round}: the child's check {code} failed");
        }
    });
    exporting.flush(Duration::from_secs(30)).unwrap();
    let s = exporting.stats();
    assert_eq!(s.in_rings + s.in_flight, 0);
    let total = s.exported + FORKS * CHILD;
    assert!(receiver.wait_for_spans(total, Duration::from_secs(10)));
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        receiver.counts().spans,
        total,
        "the children sent exactly their own spans"
    );
}
