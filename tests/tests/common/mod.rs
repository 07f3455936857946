//! What several end-to-end tests share: counting what the embedded
//! receiver got, span by span, to check for loss and duplicates.
// Each test binary compiles this module and uses part of it.
#![allow(dead_code)]

use otlpx_bench::receiver::Receiver;
use std::collections::HashMap;

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
