//! Failover end to end (`otlpx::transport::balance`), over gRPC and HTTP:
//! an engine given two endpoints, each an embedded receiver, spreads its
//! requests over both; when one dies mid-run, or is down from the start,
//! the other takes everything and nothing is lost; when a dead one comes
//! back, its probe puts it back in and it gets traffic again.
//!
//! Spans are recorded from a thread at a steady pace (100 every 10 ms),
//! each with its sequence number as an attribute. Every test checks the
//! engine's accounting (everything recorded exported, nothing dropped,
//! nothing left in flight); where the receivers keep what they got, every
//! span id must have arrived at one of them, and duplicates are counted
//! and bounded: only a request that reached a receiver and was never
//! answered may arrive twice (OTLP delivery is at least once).

mod common;

use common::{count_received, duplicates};
use otlpx::{Engine, EngineBuilder, Protocol, Stats};
use otlpx_bench::receiver::{Fault, Receiver, ReceiverConfig, unused_ports};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

const PROTOCOLS: [Protocol; 2] = [Protocol::Grpc, Protocol::HttpProtobuf];

/// Spans per request, at most.
const BATCH_SPANS: u64 = 100;
/// Requests in flight, at most (the engine's default, set explicitly: the
/// duplicate bound depends on it).
const MAX_IN_FLIGHT: u64 = 8;
/// The recorder's pace: this many spans, then a pause of [`PAUSE`].
const BURST: u64 = 100;
const PAUSE: Duration = Duration::from_millis(10);

/// A receiver on `ports` (`(0, 0)`: any), keeping the requests it accepts
/// if `keep`.
fn receiver_on(ports: (u16, u16), keep: bool) -> Receiver {
    Receiver::start(ReceiverConfig {
        grpc_port: ports.0,
        http_port: ports.1,
        keep_requests: keep,
        ..ReceiverConfig::default()
    })
    .expect("the receiver starts")
}

fn ports_of(receiver: &Receiver) -> (u16, u16) {
    (receiver.grpc_addr().port(), receiver.http_addr().port())
}

fn endpoint(ports: (u16, u16), protocol: Protocol) -> String {
    let port = match protocol {
        Protocol::Grpc => ports.0,
        _ => ports.1,
    };
    format!("http://127.0.0.1:{port}")
}

/// An engine for `protocol` over the receivers on `ports`, small batches
/// and quick retries.
fn engine(ports: &[(u16, u16)], protocol: Protocol) -> EngineBuilder {
    Engine::builder()
        .service_name("e2e-failover")
        .endpoints(ports.iter().map(|&p| endpoint(p, protocol)))
        .protocol(protocol)
        .max_batch_spans(BATCH_SPANS as usize)
        .max_in_flight(MAX_IN_FLIGHT as usize)
        .retry_backoff(Duration::from_millis(50), Duration::from_millis(500))
}

/// Records spans at a steady pace, each with its sequence number as the
/// attribute `i`, until `max` are recorded or `stop` is set; `progress`
/// follows the count. Returns how many were recorded.
fn record_paced(engine: &Engine, max: u64, progress: &AtomicU64, stop: &AtomicBool) -> u64 {
    let tracer = engine.tracer("e2e-failover", "");
    let mut recorded = 0;
    while recorded < max && !stop.load(Relaxed) {
        for _ in 0..BURST.min(max - recorded) {
            let mut span = tracer.start("op");
            span.set_attribute("i", recorded as i64);
            span.end();
            recorded += 1;
        }
        progress.store(recorded, Relaxed);
        std::thread::sleep(PAUSE);
    }
    recorded
}

/// Waits up to `timeout` for `condition`; whether it came true.
fn wait_for(timeout: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while !condition() {
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    true
}

/// Everything recorded exported, nothing dropped, in flight or in rings.
fn assert_all_exported(s: &Stats, recorded: u64, label: &str) {
    assert_eq!(s.recorded, recorded, "{label}: {s:?}");
    assert_eq!(s.exported, recorded, "{label}: {s:?}");
    assert_eq!(s.dropped.total(), 0, "{label}: {s:?}");
    assert_eq!((s.in_flight, s.in_rings), (0, 0), "{label}");
}

#[test]
fn a_receiver_dying_mid_run_loses_nothing_and_the_other_takes_over() {
    std::thread::scope(|s| {
        for protocol in PROTOCOLS {
            s.spawn(move || dies_mid_run(protocol));
        }
    });
}

fn dies_mid_run(protocol: Protocol) {
    const SPANS: u64 = 20_000;
    let label = format!("{protocol:?}");
    let a = receiver_on((0, 0), true);
    let b = receiver_on((0, 0), true);
    let engine = engine(&[ports_of(&a), ports_of(&b)], protocol)
        .build()
        .unwrap();
    let progress = AtomicU64::new(0);
    let stop = AtomicBool::new(false);
    let mut seen = HashMap::new();
    let (recorded, b_before, stuck) = std::thread::scope(|s| {
        let recorder = s.spawn(|| record_paced(&engine, SPANS, &progress, &stop));
        // Both share the load first.
        let shared = wait_for(Duration::from_secs(20), || {
            progress.load(Relaxed) >= SPANS / 3 && a.counts().spans > 0 && b.counts().spans > 0
        });
        assert!(
            shared,
            "{label}: both got spans: {:?} {:?}",
            a.counts(),
            b.counts()
        );
        let b_before = b.counts().spans;
        // A dies. The requests it is answering now are answered; those
        // that arrive from now on it accepts and holds until the shutdown
        // kills their connections: they reached A and were never
        // answered, so the engine sends them again (to B), at least once.
        a.set_fault(Fault::Slow {
            delay: Duration::from_secs(60),
        });
        std::thread::sleep(Duration::from_millis(300));
        count_received(&a, &mut seen);
        // Every request held by now (more may arrive after the count
        // above: those are not in it).
        let stuck = a.counts().requests_faulted;
        a.shutdown();
        assert!(
            progress.load(Relaxed) < SPANS,
            "{label}: still recording when A died"
        );
        (recorder.join().unwrap(), b_before, stuck)
    });
    engine.flush(Duration::from_secs(30)).unwrap();
    let s = engine.stats();
    assert_all_exported(&s, recorded, &label);
    assert_eq!(recorded, SPANS, "{label}");
    let b_after = b.counts().spans;
    assert!(
        b_after > b_before,
        "{label}: B took over: {b_before} -> {b_after}"
    );
    // Nothing lost: every span arrived at A (before it died) or at B.
    count_received(&b, &mut seen);
    let copies = duplicates(&seen, recorded, &label);
    // Only the requests held at A when it died can arrive twice, and no
    // more requests than the in-flight bound can be held at once.
    assert!(
        stuck <= MAX_IN_FLIGHT,
        "{label}: {stuck} requests held at A"
    );
    assert!(
        copies <= stuck * BATCH_SPANS,
        "{label}: {copies} duplicates, {stuck} requests held at A"
    );
}

#[test]
fn an_endpoint_down_from_the_start_is_kept_out_of_the_way() {
    std::thread::scope(|s| {
        for protocol in PROTOCOLS {
            s.spawn(move || down_from_the_start(protocol));
        }
    });
}

/// Records `spans` at the steady pace into a new engine over `ports`,
/// then flushes; the engine's stats and how long it all took.
fn paced_run(ports: &[(u16, u16)], protocol: Protocol, spans: u64) -> (Stats, Duration) {
    let engine = engine(ports, protocol).build().unwrap();
    let start = Instant::now();
    let recorded = record_paced(&engine, spans, &AtomicU64::new(0), &AtomicBool::new(false));
    engine.flush(Duration::from_secs(30)).unwrap();
    let took = start.elapsed();
    let s = engine.stats();
    assert_all_exported(&s, recorded, &format!("{protocol:?} over {ports:?}"));
    (s, took)
}

fn down_from_the_start(protocol: Protocol) {
    const SPANS: u64 = 10_000;
    let label = format!("{protocol:?}");
    let b = receiver_on((0, 0), true);
    // Never started: connections to it are refused.
    let a = unused_ports().unwrap();
    let (_, alone) = paced_run(&[ports_of(&b)], protocol, SPANS);
    let mut seen = HashMap::new();
    count_received(&b, &mut seen);
    assert_eq!(duplicates(&seen, SPANS, &label), 0, "{label}");
    let (s, both) = paced_run(&[a, ports_of(&b)], protocol, SPANS);
    // Everything went to B, once: attempts at A never reached anyone.
    seen.clear();
    count_received(&b, &mut seen);
    assert_eq!(duplicates(&seen, SPANS, &label), 0, "{label}");
    // A gets the first requests, until the first refusal takes it out
    // (the requests in flight, at most), then one probe per backoff
    // (0.5 s at least, doubling): a handful of attempts in all, where
    // round robin alone would send it half the run's ~100 requests.
    let at_a = s.export.failures.unavailable;
    let probes = 2 + both.as_secs();
    assert!(
        at_a <= MAX_IN_FLIGHT + probes,
        "{label}: {at_a} attempts failed at A in {both:?}: {:?}",
        s.export
    );
    assert_eq!(s.export.failures.total(), at_a, "{label}: {:?}", s.export);
    // And the run takes about as long as with B alone: the attempts at A
    // cost a retry wait of at most 0.5 s each, mostly overlapped.
    assert!(
        both < alone + Duration::from_secs(3),
        "{label}: {both:?} with A down, {alone:?} with B alone"
    );
}

#[test]
fn a_receiver_that_comes_back_gets_traffic_again() {
    std::thread::scope(|s| {
        for protocol in PROTOCOLS {
            s.spawn(move || comes_back(protocol));
        }
    });
}

fn comes_back(protocol: Protocol) {
    let label = format!("{protocol:?}");
    let a = receiver_on((0, 0), false);
    let b = receiver_on((0, 0), false);
    let a_ports = ports_of(&a);
    let engine = engine(&[a_ports, ports_of(&b)], protocol).build().unwrap();
    let progress = AtomicU64::new(0);
    let stop = AtomicBool::new(false);
    let (recorded, back) = std::thread::scope(|s| {
        let recorder = s.spawn(|| record_paced(&engine, u64::MAX, &progress, &stop));
        let shared = wait_for(Duration::from_secs(20), || {
            a.counts().spans > 0 && b.counts().spans > 0
        });
        assert!(shared, "{label}: both got spans");
        a.shutdown();
        // Long enough for requests to fail at A and take it out.
        std::thread::sleep(Duration::from_millis(300));
        let again = receiver_on(a_ports, false);
        let start = Instant::now();
        // The probe is due within ENDPOINT_BACKOFF_INITIAL (1 s) of the
        // failure, or twice that after a failed probe; generous for a
        // loaded machine.
        let back = wait_for(Duration::from_secs(15), || again.counts().spans > 0);
        let waited = start.elapsed();
        stop.store(true, Relaxed);
        let recorded = recorder.join().unwrap();
        assert!(
            back,
            "{label}: A got nothing in {waited:?} after it came back"
        );
        (recorded, again)
    });
    // The new A stays up (`back`) until everything is answered.
    engine.flush(Duration::from_secs(30)).unwrap();
    let s = engine.stats();
    assert_all_exported(&s, recorded, &label);
    drop(back);
}
