//! `traceparent` headers come from the network: parsing any bytes must
//! never panic, and whatever parses must be valid and survive a round trip
//! through our own formatting.
#![no_main]

use libfuzzer_sys::fuzz_target;
use otlpx::{SpanContext, TraceState};

fuzz_target!(|data: &[u8]| {
    let Ok(header) = std::str::from_utf8(data) else {
        return;
    };
    let _ = TraceState::from_header(header);
    let Ok(ctx) = SpanContext::from_traceparent(header) else {
        return;
    };
    assert!(ctx.is_valid() && ctx.is_remote);
    let again = SpanContext::from_traceparent(ctx.traceparent().as_str())
        .expect("a header we format parses");
    assert_eq!((again.trace_id, again.span_id), (ctx.trace_id, ctx.span_id));
    assert_eq!(again.trace_flags.is_sampled(), ctx.trace_flags.is_sampled());
});
