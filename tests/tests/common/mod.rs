//! What several end-to-end tests share: the embedded receiver, and
//! counting what it got, span by span, to check for loss and duplicates.
// Each test binary compiles this module and uses part of it.
#![allow(dead_code)]

use otlpx_bench::receiver::{Fault, Receiver, ReceiverConfig, RetryHint};
use std::collections::HashMap;
use std::time::Duration;

/// The embedded receiver on `ports` (0: any), keeping every request.
pub fn receiver_on(ports: (u16, u16)) -> Receiver {
    Receiver::start(ReceiverConfig {
        grpc_port: ports.0,
        http_port: ports.1,
        keep_requests: true,
        ..ReceiverConfig::default()
    })
    .expect("the receiver starts")
}

/// Adds how often `receiver` got each span id (since the last call: the
/// receiver hands its requests over once) to `seen`.
pub fn count_received(receiver: &Receiver, seen: &mut HashMap<Vec<u8>, u64>) {
    for request in receiver.take_requests() {
        for span in request
            .resource_spans
            .iter()
            .flat_map(|r| &r.scope_spans)
            .flat_map(|s| &s.spans)
        {
            *seen.entry(span.span_id.clone()).or_insert(0) += 1;
        }
    }
}

/// How often `receiver` got each span id (since the last call).
pub fn received(receiver: &Receiver) -> HashMap<Vec<u8>, u64> {
    let mut seen = HashMap::new();
    count_received(receiver, &mut seen);
    seen
}

/// Asserts `seen` holds `unique` distinct spans; returns how many arrived
/// more than once (extra copies).
pub fn duplicates(seen: &HashMap<Vec<u8>, u64>, unique: u64, label: &str) -> u64 {
    assert_eq!(
        seen.len() as u64,
        unique,
        "{label}: distinct spans received"
    );
    seen.values().map(|n| n - 1).sum()
}

/// The receiver's refusal: `grpc_code` over gRPC, `http_status` over HTTP,
/// with `retry_after` as its hint.
pub fn refuse(grpc_code: i32, http_status: u16, retry_after: Option<RetryHint>) -> Fault {
    Fault::Refuse {
        grpc_code,
        http_status,
        message: "not now".into(),
        retry_after,
    }
}

/// A retry hint of `delay` (HTTP: as a date if `http_date`).
pub fn hint(delay: Duration, http_date: bool) -> Option<RetryHint> {
    Some(RetryHint { delay, http_date })
}

/// Flushes `engine` and returns what became of its spans, whether or not
/// some were dropped on the way (the tests that use this count the drops
/// themselves); checks that the flush failed exactly when it reported
/// drops. Panics on a timeout, or an engine that does not export.
pub fn flush_settled(engine: &otlpx::Engine, timeout: Duration) -> otlpx::FlushReport {
    match engine.flush(timeout) {
        Ok(report) => {
            assert_eq!(report.dropped.total(), 0, "{report:?}");
            report
        }
        Err(otlpx::FlushError::Dropped { report, .. }) => {
            assert!(report.dropped.total() > 0, "{report:?}");
            *report
        }
        Err(e) => panic!("flush: {e}"),
    }
}
