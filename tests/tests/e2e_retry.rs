//! Retries end to end, per the OTLP specification, over gRPC and HTTP
//! against the embedded receiver told to misbehave: down at the start,
//! refusing with and without a retry hint, answering too slowly, dropping
//! the connection mid-request; and an outage with a small in-flight budget,
//! where the oldest requests waiting for a retry are evicted (which ones:
//! `core/tests/export_workers.rs`).
//!
//! Every test checks the engine's accounting exactly (`recorded ==
//! exported + dropped + in flight + in rings`, nothing left in flight or in
//! the rings after a flush) and counts what the receiver got: every span
//! id at least once, and duplicates only where an attempt may have reached
//! the receiver before it failed (OTLP delivery is at least once), counted
//! and bounded.

mod common;

use common::{duplicates, flush_settled, hint, received, receiver_on, refuse};
use otlpx::{Engine, EngineBuilder, Protocol, Stats};
use otlpx_bench::receiver::{Fault, Receiver, unused_ports};
use std::time::{Duration, Instant};

const PROTOCOLS: [Protocol; 2] = [Protocol::Grpc, Protocol::HttpProtobuf];

fn endpoint(ports: (u16, u16), protocol: Protocol) -> String {
    let port = match protocol {
        Protocol::Grpc => ports.0,
        _ => ports.1,
    };
    format!("http://127.0.0.1:{port}")
}

/// An engine for `protocol` on `ports`, batches of 100 spans, quick
/// backoff (the waits the receiver asks for are taken as given).
fn engine(ports: (u16, u16), protocol: Protocol) -> EngineBuilder {
    Engine::builder()
        .service_name("e2e-retry")
        .endpoint(endpoint(ports, protocol))
        .protocol(protocol)
        .max_batch_spans(100)
        .retry_backoff(Duration::from_millis(50), Duration::from_millis(500))
}

/// Records `n` spans, each with its sequence number as an attribute.
fn record(engine: &Engine, n: u64) {
    let tracer = engine.tracer("e2e-retry", "");
    for i in 0..n {
        let mut span = tracer.start("op");
        span.set_attribute("i", i as i64);
        span.end();
    }
}

/// The accounting identity, with nothing left in flight or in the rings.
fn assert_settled(s: &Stats, recorded: u64, label: &str) {
    assert_eq!(s.recorded, recorded, "{label}: {s:?}");
    assert_eq!(
        s.exported + s.dropped.total(),
        recorded,
        "{label}: everything settled: {s:?}"
    );
    assert_eq!((s.in_flight, s.in_rings), (0, 0), "{label}");
}

#[test]
fn a_receiver_down_at_the_start_for_3_s_gets_everything_once_it_is_up() {
    std::thread::scope(|s| {
        for protocol in PROTOCOLS {
            s.spawn(move || {
                let label = format!("{protocol:?}");
                let ports = unused_ports().unwrap();
                let engine = engine(ports, protocol).build().unwrap();
                record(&engine, 1000);
                std::thread::sleep(Duration::from_secs(3));
                let receiver = receiver_on(ports);
                engine.flush(Duration::from_secs(30)).unwrap();
                let s = engine.stats();
                assert_settled(&s, 1000, &label);
                assert_eq!(s.exported, 1000, "{label}: {s:?}");
                assert!(s.export.retries >= 10, "{label}: {:?}", s.export);
                assert_eq!(
                    s.export.failures.unavailable, s.export.retries,
                    "{label}: {:?}",
                    s.export
                );
                // Refused connections never reached the receiver.
                assert_eq!(duplicates(&received(&receiver), 1000, &label), 0, "{label}");
            });
        }
    });
}

/// Refuses the first request with `fault`, records 10 spans (one
/// request), flushes; the stats, the receiver, and how long the flush took.
fn refuse_first(protocol: Protocol, fault: Fault) -> (Stats, Receiver, Duration) {
    let receiver = receiver_on((0, 0));
    receiver.push_faults(1, fault);
    let ports = (receiver.grpc_addr().port(), receiver.http_addr().port());
    let engine = engine(ports, protocol).build().unwrap();
    record(&engine, 10);
    let start = Instant::now();
    flush_settled(&engine, Duration::from_secs(30));
    let took = start.elapsed();
    let s = engine.stats();
    assert_settled(&s, 10, &format!("{protocol:?}"));
    (s, receiver, took)
}

#[test]
fn unavailable_with_retry_info_waits_the_delay_asked() {
    let second = Duration::from_secs(1);
    // gRPC UNAVAILABLE with RetryInfo; HTTP 503 with `Retry-After: 1`.
    for protocol in PROTOCOLS {
        let (s, receiver, took) = refuse_first(protocol, refuse(14, 503, hint(second, false)));
        let label = format!("{protocol:?}");
        assert_eq!(s.exported, 10, "{label}");
        assert_eq!((s.export.retries, s.export.failures.unavailable), (1, 1));
        assert!(took >= second, "{label}: retried after {took:?}");
        assert_eq!(duplicates(&received(&receiver), 10, &label), 0);
    }
}

#[test]
fn http_429_retry_after_in_seconds_and_as_a_date_is_honoured() {
    // A date has whole seconds: 2 s ahead, rounded up, is at least 1 s.
    for (delay, date, at_least) in [
        (Duration::from_secs(1), false, Duration::from_secs(1)),
        (Duration::from_secs(2), true, Duration::from_secs(1)),
    ] {
        let (s, receiver, took) =
            refuse_first(Protocol::HttpProtobuf, refuse(8, 429, hint(delay, date)));
        let label = format!("date: {date}");
        assert_eq!(s.exported, 10, "{label}");
        assert_eq!((s.export.retries, s.export.failures.throttled), (1, 1));
        assert!(took >= at_least, "{label}: retried after {took:?}");
        assert!(took < delay + Duration::from_secs(3), "{label}: {took:?}");
        assert_eq!(duplicates(&received(&receiver), 10, &label), 0);
    }
}

#[test]
fn resource_exhausted_is_retried_only_with_retry_info() {
    let with = refuse_first(
        Protocol::Grpc,
        refuse(8, 429, hint(Duration::from_millis(200), false)),
    );
    assert_eq!((with.0.exported, with.0.export.retries), (10, 1));
    let without = refuse_first(Protocol::Grpc, refuse(8, 429, None));
    assert_eq!(
        (without.0.dropped.export_failed, without.0.export.retries),
        (10, 0)
    );
    assert_eq!(without.0.export.failures.throttled, 1);
}

#[test]
fn final_errors_are_not_retried_and_dropped_as_export_failed() {
    // gRPC INVALID_ARGUMENT; HTTP 400, and 500, which is not in the list.
    for (protocol, fault) in [
        (Protocol::Grpc, refuse(3, 400, None)),
        (Protocol::HttpProtobuf, refuse(3, 400, None)),
        (Protocol::HttpProtobuf, refuse(13, 500, None)),
        // A hint does not make a final error retryable.
        (
            Protocol::Grpc,
            refuse(3, 400, hint(Duration::from_millis(10), false)),
        ),
    ] {
        let label = format!("{protocol:?} {fault:?}");
        let (s, receiver, _) = refuse_first(protocol, fault);
        assert_eq!((s.exported, s.dropped.export_failed), (0, 10), "{label}");
        assert_eq!((s.export.requests, s.export.retries), (1, 0), "{label}");
        assert_eq!(s.export.failures.total(), 1, "{label}");
        assert_eq!(receiver.counts().spans, 0, "{label}");
    }
}

#[test]
fn a_partial_success_is_counted_and_not_retried() {
    for protocol in PROTOCOLS {
        let label = format!("{protocol:?}");
        let fault = Fault::PartialSuccess {
            rejected: 3,
            message: "too old".into(),
        };
        let (s, receiver, _) = refuse_first(protocol, fault);
        assert_eq!((s.exported, s.dropped.rejected), (7, 3), "{label}");
        assert_eq!((s.export.retries, s.export.failures.total()), (0, 0));
        assert_eq!(duplicates(&received(&receiver), 10, &label), 0);
    }
}

#[test]
fn a_connection_dropped_mid_request_is_retried() {
    for protocol in PROTOCOLS {
        let label = format!("{protocol:?}");
        let (s, receiver, _) = refuse_first(protocol, Fault::DropConnection);
        assert_eq!(s.exported, 10, "{label}: {s:?}");
        assert_eq!(s.export.retries, 1, "{label}: {:?}", s.export);
        assert_eq!(s.export.failures.unavailable, 1, "{label}");
        assert_eq!(receiver.counts().connections_dropped, 1, "{label}");
        // The dropped request's spans were not accepted: no copy.
        assert_eq!(duplicates(&received(&receiver), 10, &label), 0);
    }
}

#[test]
fn an_answer_slower_than_the_attempt_timeout_is_retried_at_least_once() {
    for protocol in PROTOCOLS {
        let label = format!("{protocol:?}");
        let receiver = receiver_on((0, 0));
        // The first attempt's answer comes after the client gave up on it,
        // but the receiver still accepts it: the retry is a duplicate, as
        // at-least-once delivery allows.
        receiver.push_faults(
            1,
            Fault::Slow {
                delay: Duration::from_millis(1500),
            },
        );
        let ports = (receiver.grpc_addr().port(), receiver.http_addr().port());
        let engine = engine(ports, protocol)
            .export_timeout(Duration::from_millis(300))
            .build()
            .unwrap();
        record(&engine, 10);
        engine.flush(Duration::from_secs(30)).unwrap();
        let s = engine.stats();
        assert_settled(&s, 10, &label);
        assert_eq!(s.exported, 10, "{label}");
        assert_eq!((s.export.retries, s.export.failures.timeout), (1, 1));
        // The timeout's error names the endpoint that did not answer.
        let error = engine.last_export_error().expect("the timeout is kept");
        let expected = format!("no answer from {}", endpoint(ports, protocol));
        assert!(error.contains(&expected), "{label}: {error}");
        assert!(
            receiver.wait_for_spans(20, Duration::from_secs(5)),
            "{label}"
        );
        // One timed-out attempt: at most one extra copy of each span.
        assert_eq!(duplicates(&received(&receiver), 10, &label), 10, "{label}");
    }
}

#[test]
fn an_outage_with_a_small_budget_evicts_counts_and_never_blocks_recording() {
    for protocol in PROTOCOLS {
        let label = format!("{protocol:?}");
        let receiver = receiver_on((0, 0));
        // Down (UNAVAILABLE, retry in 1 s) for the first part of the run.
        receiver.set_fault(refuse(14, 503, hint(Duration::from_secs(1), false)));
        let ports = (receiver.grpc_addr().port(), receiver.http_addr().port());
        let budget = 64 << 10;
        let engine = engine(ports, protocol)
            .max_in_flight(4)
            .max_in_flight_bytes(budget)
            .build()
            .unwrap();
        let tracer = engine.tracer("e2e-retry", "");
        let mut slowest = Duration::ZERO;
        let start = Instant::now();
        let mut recorded = 0u64;
        while start.elapsed() < Duration::from_millis(1500) {
            for _ in 0..100 {
                let t = Instant::now();
                let mut span = tracer.start("op");
                span.set_attribute("i", recorded as i64);
                span.end();
                slowest = slowest.max(t.elapsed());
                recorded += 1;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        receiver.set_fault(Fault::None);
        flush_settled(&engine, Duration::from_secs(30));
        let s = engine.stats();
        assert_settled(&s, recorded, &label);
        assert!(s.dropped.evicted > 0, "{label}: {s:?}");
        assert_eq!(s.dropped.export_failed, 0, "{label}");
        // Compressed or not, a request of 100 small spans is well under
        // 64 KiB: the budget holds with at most one request over it.
        assert!(
            s.export.in_flight_bytes_high_water <= 2 * budget as u64,
            "{label}: {:?}",
            s.export
        );
        // Recording never waited on the exporter: a wait would be the
        // 1 s retry delay. (Not a performance figure: see BENCHMARKS.md.)
        assert!(slowest < Duration::from_millis(200), "{label}: {slowest:?}");
        // Everything exported arrived once (refusals count no spans).
        assert_eq!(
            duplicates(&received(&receiver), s.exported, &label),
            0,
            "{label}"
        );
    }
}
