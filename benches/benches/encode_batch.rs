//! The export-side cost of one batch: 512 spans (each the benchmark span of
//! `otlpx_bench`, 8 attributes) turned into an encoded
//! `ExportTraceServiceRequest`.
//!
//! - `otlpx_frame`: otlpx frames the 512 spans, already encoded in its rings
//!   at record time, into a reused buffer (without releasing them, so the
//!   same spans are framed every iteration).
//! - `prost_structs`: what an SDK exporter does per batch: convert span data
//!   held in memory (plain structs with owned strings, like the SDK's
//!   `SpanData`) into the generated `opentelemetry-proto` structs, and
//!   prost-encode them into a reused buffer. The span data is the very data
//!   otlpx recorded (decoded from its request), and the encoded request is
//!   checked to be exactly as long as otlpx's.
//! - `memcpy`: copying as many bytes as the otlpx request, the floor.
//!
//! Run: `cargo bench -p otlpx-bench --bench encode_batch`.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use otlpx_bench::{ATTRIBUTE_COUNT, SCOPE_NAME, SCOPE_VERSION, otlpx_engine, record_otlpx};
use prost::Message;
use std::hint::black_box;
use std::time::Duration;

#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Spans per batch.
const BATCH: usize = 512;

/// An attribute value as an SDK holds it.
#[derive(Clone, Debug)]
enum PlainValue {
    Str(String),
    I64(i64),
    F64(f64),
    Bool(bool),
}

/// A finished span as an SDK holds it before export.
#[derive(Clone, Debug)]
struct PlainSpan {
    trace_id: [u8; 16],
    span_id: [u8; 8],
    flags: u32,
    name: String,
    kind: i32,
    start_time_unix_nano: u64,
    end_time_unix_nano: u64,
    attributes: Vec<(String, PlainValue)>,
}

/// A batch of spans of one resource and one scope.
#[derive(Clone, Debug)]
struct PlainBatch {
    resource: Vec<(String, PlainValue)>,
    scope_name: String,
    scope_version: String,
    spans: Vec<PlainSpan>,
}

fn plain_attributes(attributes: &[KeyValue]) -> Vec<(String, PlainValue)> {
    attributes
        .iter()
        .map(|kv| {
            let value = match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                Some(any_value::Value::StringValue(s)) => PlainValue::Str(s.clone()),
                Some(any_value::Value::IntValue(i)) => PlainValue::I64(*i),
                Some(any_value::Value::DoubleValue(d)) => PlainValue::F64(*d),
                Some(any_value::Value::BoolValue(b)) => PlainValue::Bool(*b),
                other => panic!("unexpected attribute value {other:?}"),
            };
            (kv.key.clone(), value)
        })
        .collect()
}

/// The span data of a decoded request (one resource, one scope), owned.
fn plain_batch(request: &ExportTraceServiceRequest) -> PlainBatch {
    let [resource_spans] = request.resource_spans.as_slice() else {
        panic!("expected one ResourceSpans");
    };
    let [scope_spans] = resource_spans.scope_spans.as_slice() else {
        panic!("expected one ScopeSpans");
    };
    let scope = scope_spans.scope.as_ref().expect("a scope");
    PlainBatch {
        resource: plain_attributes(
            &resource_spans
                .resource
                .as_ref()
                .expect("a resource")
                .attributes,
        ),
        scope_name: scope.name.clone(),
        scope_version: scope.version.clone(),
        spans: scope_spans
            .spans
            .iter()
            .map(|s| PlainSpan {
                trace_id: s.trace_id.as_slice().try_into().expect("16-byte trace id"),
                span_id: s.span_id.as_slice().try_into().expect("8-byte span id"),
                flags: s.flags,
                name: s.name.clone(),
                kind: s.kind,
                start_time_unix_nano: s.start_time_unix_nano,
                end_time_unix_nano: s.end_time_unix_nano,
                attributes: plain_attributes(&s.attributes),
            })
            .collect(),
    }
}

fn proto_attributes(attributes: &[(String, PlainValue)]) -> Vec<KeyValue> {
    attributes
        .iter()
        .map(|(key, value)| KeyValue {
            key: key.clone(),
            value: Some(AnyValue {
                value: Some(match value {
                    PlainValue::Str(s) => any_value::Value::StringValue(s.clone()),
                    PlainValue::I64(i) => any_value::Value::IntValue(*i),
                    PlainValue::F64(d) => any_value::Value::DoubleValue(*d),
                    PlainValue::Bool(b) => any_value::Value::BoolValue(*b),
                }),
            }),
            ..Default::default()
        })
        .collect()
}

/// Converts span data into the generated proto structs, as an SDK exporter
/// does for every batch (the SDK clones the resource and copies ids, names
/// and attributes into owned proto fields the same way).
fn proto_request(batch: &PlainBatch) -> ExportTraceServiceRequest {
    let spans = batch
        .spans
        .iter()
        .map(|s| Span {
            trace_id: s.trace_id.to_vec(),
            span_id: s.span_id.to_vec(),
            flags: s.flags,
            name: s.name.clone(),
            kind: s.kind,
            start_time_unix_nano: s.start_time_unix_nano,
            end_time_unix_nano: s.end_time_unix_nano,
            attributes: proto_attributes(&s.attributes),
            ..Default::default()
        })
        .collect();
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: proto_attributes(&batch.resource),
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                scope: Some(InstrumentationScope {
                    name: batch.scope_name.clone(),
                    version: batch.scope_version.clone(),
                    ..Default::default()
                }),
                spans,
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }],
    }
}

fn encode_batch(c: &mut Criterion) {
    let engine = otlpx_engine();
    let tracer = engine.tracer(SCOPE_NAME, SCOPE_VERSION);
    for _ in 0..BATCH {
        record_otlpx(&tracer);
    }
    let stats = engine.stats();
    assert_eq!(stats.in_rings, BATCH as u64, "{stats:?}");

    let mut out = bytes::BytesMut::with_capacity(1 << 20);
    assert_eq!(engine.frame_traces_without_release(&mut out, BATCH), BATCH);

    // Sanity, outside the timing: otlpx's bytes decode to the 512 spans.
    let request = ExportTraceServiceRequest::decode(&out[..]).expect("otlpx bytes decode");
    let spans: usize = request
        .resource_spans
        .iter()
        .flat_map(|r| &r.scope_spans)
        .map(|s| s.spans.len())
        .sum();
    assert_eq!(spans, BATCH);

    let batch = plain_batch(&request);
    assert_eq!(batch.spans.len(), BATCH);
    assert!(
        batch
            .spans
            .iter()
            .all(|s| s.attributes.len() == ATTRIBUTE_COUNT)
    );
    let mut encoded = Vec::with_capacity(out.len() * 2);
    proto_request(&batch)
        .encode(&mut encoded)
        .expect("a Vec grows");
    // Same data, same size: the prost path encodes exactly what otlpx framed.
    assert_eq!(encoded.len(), out.len());
    assert_eq!(
        ExportTraceServiceRequest::decode(&encoded[..]).expect("prost bytes decode"),
        request
    );

    eprintln!(
        "otlpx request: {} bytes for {BATCH} spans ({} bytes a span with framing)",
        out.len(),
        out.len() / BATCH
    );

    let src = out.to_vec();
    let mut dst = vec![0u8; src.len()];

    let mut group = c.benchmark_group("encode_batch");
    group
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .throughput(Throughput::Elements(BATCH as u64));

    group.bench_function("otlpx_frame", |b| {
        b.iter(|| {
            let framed = engine.frame_traces_without_release(&mut out, BATCH);
            black_box(&out);
            framed
        });
    });

    group.bench_function("prost_structs", |b| {
        b.iter(|| {
            encoded.clear();
            proto_request(black_box(&batch))
                .encode(&mut encoded)
                .expect("a Vec grows");
            black_box(&encoded);
        });
    });

    group.bench_function("memcpy", |b| {
        b.iter(|| {
            dst.copy_from_slice(black_box(&src));
            black_box(&mut dst);
        });
    });

    group.finish();
    assert_eq!(engine.stats().dropped.total(), 0);
}

criterion_group!(benches, encode_batch);
criterion_main!(benches);
