//! A short outage costs memory, not data: the receiver answers
//! `UNAVAILABLE` (503 over HTTP) for 3 s while an application records
//! 20,000 spans at 10,000 a second, with the default settings and no
//! spool. Requests waiting for their retry hold bytes of the in-flight
//! budget, not send slots, so they wait in memory and every span is
//! delivered, exactly once, when the receiver is back; nothing is
//! evicted. (Before, eight requests waiting for a retry closed the gate
//! and most spans were evicted with most of the budget free.)

mod common;

use common::{duplicates, received, receiver_on, refuse};
use otlpx::{Engine, Protocol};
use otlpx_bench::receiver::Fault;
use std::time::{Duration, Instant};

const SPANS: u64 = 20_000;
const PER_SECOND: u64 = 10_000;

#[test]
fn a_three_second_outage_loses_nothing_with_the_defaults() {
    for protocol in [Protocol::HttpProtobuf, Protocol::Grpc] {
        let label = format!("{protocol:?}");
        let receiver = receiver_on((0, 0));
        receiver.set_fault(refuse(14, 503, None));
        let endpoint = match protocol {
            Protocol::Grpc => receiver.grpc_endpoint(),
            _ => receiver.http_endpoint(),
        };
        // One ring of 1 MiB: a second of spans, so that a worker starved
        // for a while by a loaded CI machine does not drop any as
        // `ring_full`; far less than the outage's, so the spans cannot
        // simply wait it out in the ring (half full, with the gate
        // closed, the oldest waiting request would be evicted).
        let engine = Engine::builder()
            .endpoint(endpoint)
            .protocol(protocol)
            .rings(1)
            .ring_bytes_per_cpu(1 << 20)
            .build()
            .unwrap();
        let tracer = engine.tracer("e2e-outage", "");
        let start = Instant::now();
        let mut back = false;
        for i in 0..SPANS {
            let mut span = tracer.start("op");
            span.set_attribute("i", i as i64);
            span.end();
            if i % 100 == 99 {
                let due = Duration::from_micros(i * 1_000_000 / PER_SECOND);
                std::thread::sleep(due.saturating_sub(start.elapsed()));
            }
            if !back && start.elapsed() >= Duration::from_secs(3) {
                receiver.set_fault(Fault::None);
                back = true;
            }
        }
        if !back {
            std::thread::sleep(Duration::from_secs(3).saturating_sub(start.elapsed()));
            receiver.set_fault(Fault::None);
        }
        engine.flush(Duration::from_secs(60)).unwrap();
        let s = engine.stats();
        assert_eq!(
            (s.recorded, s.exported, s.dropped.total()),
            (SPANS, SPANS, 0),
            "{label}: {s:?}"
        );
        assert!(
            s.export.failures.unavailable > 0,
            "{label}: the outage was seen"
        );
        assert!(
            s.export.in_flight_bytes_high_water <= 16 << 20,
            "{label}: {:?}",
            s.export
        );
        let seen = received(&receiver);
        // An attempt refused is not received: no duplicates at all.
        assert_eq!(duplicates(&seen, SPANS, &label), 0, "{label}");
    }
}
