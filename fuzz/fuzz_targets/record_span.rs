//! Spans of any shape, under any limits, through both recording paths: the
//! one-pass encoder's length arithmetic must hold for every input, so every
//! span is either recorded and decodes with the official types, or refused
//! and counted — never a panic, a corrupt request or an uncounted loss.
#![no_main]

use arbitrary::Arbitrary;
use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use otlpx::{
    Engine, Event, FinishedSpan, KeyValue, Link, SpanId, SpanLimits, Status, TraceFlags, TraceId,
    Value,
};
use prost::Message;

#[derive(Arbitrary, Debug)]
enum V {
    Str(String),
    Bool(bool),
    I64(i64),
    F64(f64),
    Bytes(Vec<u8>),
    StrA(Vec<String>),
    I64A(Vec<i64>),
    BytesA(Vec<Vec<u8>>),
}

#[derive(Arbitrary, Debug)]
struct Input {
    ring_log2: u8,
    limits: [u8; 5],
    value_len: Option<u8>,
    name: String,
    status: Option<String>,
    attrs: Vec<(String, V)>,
    events: Vec<(String, u64, Vec<(String, V)>)>,
    links: u8,
    live: bool,
}

fn value<'a>(v: &'a V, strs: &'a [&'a str], bytes: &'a [&'a [u8]]) -> Value<'a> {
    match v {
        V::Str(s) => Value::Str(s),
        V::Bool(b) => Value::Bool(*b),
        V::I64(i) => Value::I64(*i),
        V::F64(f) => Value::F64(*f),
        V::Bytes(b) => Value::Bytes(b),
        V::StrA(_) => Value::StrArray(strs),
        V::I64A(a) => Value::I64Array(a),
        V::BytesA(_) => Value::BytesArray(bytes),
    }
}

fn with_kvs<R>(attrs: &[(String, V)], f: impl FnOnce(&[KeyValue<'_>]) -> R) -> R {
    let strs: Vec<Vec<&str>> = attrs
        .iter()
        .map(|(_, v)| match v {
            V::StrA(a) => a.iter().map(String::as_str).collect(),
            _ => Vec::new(),
        })
        .collect();
    let bytes: Vec<Vec<&[u8]>> = attrs
        .iter()
        .map(|(_, v)| match v {
            V::BytesA(a) => a.iter().map(Vec::as_slice).collect(),
            _ => Vec::new(),
        })
        .collect();
    let kvs: Vec<KeyValue<'_>> = attrs
        .iter()
        .enumerate()
        .map(|(i, (k, v))| KeyValue {
            key: k,
            value: value(v, &strs[i], &bytes[i]),
        })
        .collect();
    f(&kvs)
}

fuzz_target!(|input: Input| {
    let mut limits = SpanLimits::default();
    limits.max_attributes_per_span = u32::from(input.limits[0]);
    limits.max_events_per_span = u32::from(input.limits[1]);
    limits.max_links_per_span = u32::from(input.limits[2]);
    limits.max_attributes_per_event = u32::from(input.limits[3]);
    limits.max_attributes_per_link = u32::from(input.limits[4]);
    limits.max_attribute_value_length = input.value_len.map(u32::from);
    // Rings from 64 bytes to 1 MiB: small ones make drops likely.
    let ring = 1usize << (6 + input.ring_log2 % 15);
    let engine = Engine::builder()
        .export(false)
        .rings(1)
        .ring_bytes_per_cpu(ring)
        .span_limits(limits)
        .build()
        .unwrap();
    let tracer = engine.tracer("fuzz", "1");
    let status = match &input.status {
        None => Status::Unset,
        Some(m) if m.is_empty() => Status::Ok,
        Some(m) => Status::error(m),
    };
    let parent = otlpx::SpanContext {
        trace_id: TraceId([7; 16]),
        span_id: SpanId([9; 8]),
        trace_flags: TraceFlags::SAMPLED,
        is_remote: true,
        trace_state: otlpx::TraceState::from_header("k=v"),
    };
    with_kvs(&input.attrs, |attrs| {
        if input.live {
            let mut span = tracer.span(&input.name).parent(&parent).start();
            for kv in attrs {
                span.set_attribute(kv.key, kv.value);
            }
            for (name, time, ev) in &input.events {
                with_kvs(ev, |ea| span.add_event_with_timestamp(name, *time, ea));
            }
            for _ in 0..input.links {
                span.add_link(&parent, attrs);
            }
            span.set_status(status);
            span.end();
        } else {
            // Events and links reuse the span's attributes here; the live
            // path above gives each event its own.
            let events: Vec<Event<'_>> = input
                .events
                .iter()
                .map(|(name, time, _)| Event {
                    name,
                    time_unix_nano: *time,
                    attributes: attrs,
                    dropped_attributes_count: 0,
                })
                .collect();
            let links: Vec<Link<'_>> = (0..input.links)
                .map(|_| Link::new(&parent, attrs))
                .collect();
            let _ = tracer.record_span(&FinishedSpan {
                trace_id: TraceId([1; 16]),
                span_id: SpanId([2; 8]),
                name: &input.name,
                attributes: attrs,
                events: &events,
                links: &links,
                status,
                ..Default::default()
            });
        }
    });
    let stats = engine.stats();
    assert_eq!(stats.recorded, 1);
    let mut out = BytesMut::new();
    let framed = engine.drain_traces(&mut out, usize::MAX);
    assert_eq!(framed as u64, stats.in_rings);
    assert_eq!(
        framed as u64 + stats.dropped.total(),
        1,
        "recorded or counted as dropped"
    );
    if framed == 1 {
        let req = ExportTraceServiceRequest::decode(&out[..]).expect("our request decodes");
        let span = &req.resource_spans[0].scope_spans[0].spans[0];
        assert_eq!(span.name, input.name);
        assert!(span.attributes.len() <= usize::from(input.limits[0]));
    }
});
