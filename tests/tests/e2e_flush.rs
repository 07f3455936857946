//! End to end: `flush` answers "did it get out?" honestly. Against the
//! embedded receiver: a flush that delivered everything reports the
//! spans; one whose requests all failed (a 404 from a URL that is not
//! OTLP's, a TLS handshake against a plaintext port) fails fast, naming
//! the drop reason and the failure kind; and the shutdown after it reports
//! what it found.

use otlpx::{Engine, FlushError, Protocol};
use otlpx_bench::receiver::{Receiver, ReceiverConfig};
use std::time::{Duration, Instant};

const SPANS: u64 = 300;

fn receiver() -> Receiver {
    Receiver::start(ReceiverConfig::default()).expect("the receiver starts")
}

fn record(engine: &Engine) {
    let tracer = engine.tracer("e2e-flush", "");
    for i in 0..SPANS {
        let mut span = tracer.start("op");
        span.set_attribute("i", i);
    }
}

/// The text of a flush that must fail because every span was dropped.
fn dropped_flush(engine: &Engine, label: &str) -> (otlpx::FlushReport, String) {
    let start = Instant::now();
    let flushed = engine.flush(Duration::from_secs(20));
    // Final failures are not retried: the flush ends as soon as they are
    // answered, far inside its timeout.
    assert!(start.elapsed() < Duration::from_secs(15), "{label}");
    match flushed {
        Err(e @ FlushError::Dropped { .. }) => {
            let text = e.to_string();
            let FlushError::Dropped { report, last_error } = e else {
                unreachable!()
            };
            assert!(last_error.is_some(), "{label}: {text}");
            (*report, text)
        }
        other => panic!("{label}: expected FlushError::Dropped, got {other:?}"),
    }
}

#[test]
fn a_flush_that_delivered_everything_reports_it() {
    let receiver = receiver();
    for protocol in [Protocol::Grpc, Protocol::HttpProtobuf] {
        let url = match protocol {
            Protocol::Grpc => receiver.grpc_endpoint(),
            _ => receiver.http_endpoint(),
        };
        let engine = Engine::builder()
            .endpoint(url)
            .protocol(protocol)
            .build()
            .unwrap();
        record(&engine);
        let report = engine.flush(Duration::from_secs(20)).expect("delivered");
        assert_eq!(report.delivered, SPANS, "{protocol:?}");
        assert_eq!(report.dropped.total(), 0, "{protocol:?}");
        assert_eq!(report.failures.total(), 0, "{protocol:?}");
        engine.shutdown(Duration::from_secs(5)).unwrap();
    }
}

#[test]
fn a_404_fails_the_flush_naming_the_drop_and_the_failure_kind() {
    let receiver = receiver();
    // The receiver's HTTP server, at a path that is not OTLP's.
    let url = format!("{}/not-otlp", receiver.http_endpoint());
    let engine = Engine::builder()
        .traces_endpoint(url)
        .protocol(Protocol::HttpProtobuf)
        .build()
        .unwrap();
    record(&engine);
    let (report, text) = dropped_flush(&engine, "404");
    assert_eq!((report.delivered, report.dropped.export_failed), (0, SPANS));
    assert_eq!(report.failures.rejected, report.failures.total(), "{text}");
    assert!(text.contains(&format!("export_failed {SPANS}")), "{text}");
    assert!(text.contains("rejected "), "{text}");
    assert!(
        text.contains("404"),
        "the last error names the status: {text}"
    );
    // Nothing is left to flush, and nothing more was dropped.
    let e = engine.flush(Duration::from_secs(5));
    assert!(e.is_ok(), "nothing left to flush: {e:?}");

    // What the shutdown finds: nothing more to drop.
    let shut = engine.shutdown(Duration::from_secs(5)).unwrap();
    assert_eq!((shut.delivered, shut.dropped), (0, 0));
    assert!(shut.flushed);
}

#[test]
fn a_tls_handshake_against_a_plaintext_port_fails_the_flush_as_tls() {
    let receiver = receiver();
    let port = receiver.grpc_addr().port();
    let engine = Engine::builder()
        .endpoint(format!("https://127.0.0.1:{port}"))
        .build()
        .unwrap();
    record(&engine);
    let (report, text) = dropped_flush(&engine, "tls");
    assert_eq!(report.dropped.export_failed, SPANS, "{text}");
    assert!(report.failures.tls >= 1, "{text}");
    assert!(text.contains("tls "), "{text}");
    assert!(
        engine
            .last_export_error()
            .is_some_and(|e| e.contains("TLS") && e.contains("plain http://?")),
        "{:?}",
        engine.last_export_error()
    );
    let counts = receiver.counts();
    assert_eq!(counts.spans, 0);
}

#[test]
fn a_flush_error_debug_prints_as_its_sentence() {
    let receiver = receiver();
    let engine = Engine::builder()
        .traces_endpoint(format!("{}/nope", receiver.http_endpoint()))
        .protocol(Protocol::HttpProtobuf)
        .build()
        .unwrap();
    record(&engine);
    let e = engine.flush(Duration::from_secs(20)).unwrap_err();
    assert_eq!(format!("{e:?}"), e.to_string());
    let boxed: Box<dyn std::error::Error> = Box::new(e);
    assert!(format!("{boxed:?}").starts_with("flush: 300 spans dropped"));
}
