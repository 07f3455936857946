//! Golden property tests: random spans → record (both paths: the live span
//! API and `record_span`) → drain → frame → decode with the official
//! `opentelemetry-proto` types → every field equals what a model of the
//! OpenTelemetry limits rules predicts, built independently here.

use bytes::BytesMut;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{
    AnyValue, ArrayValue, KeyValue as PKeyValue, any_value,
};
use opentelemetry_proto::tonic::trace::v1::{Span as PSpan, Status as PStatus, span};
use otlpx::{
    Engine, Event, FinishedSpan, KeyValue, Link, SpanContext, SpanId, SpanKind, SpanLimits, Status,
    TraceFlags, TraceId, TraceState, Value,
};
use proptest::prelude::*;
use prost::Message;

// ---- owned inputs -------------------------------------------------------

#[derive(Clone, Debug)]
enum OV {
    Str(String),
    Bool(bool),
    I64(i64),
    F64(f64),
    Bytes(Vec<u8>),
    StrA(Vec<String>),
    BoolA(Vec<bool>),
    I64A(Vec<i64>),
    F64A(Vec<f64>),
    BytesA(Vec<Vec<u8>>),
}

type Attrs = Vec<(String, OV)>;

/// Borrowed views of owned attributes: arrays of `&str` / `&[u8]` need
/// their own storage for `Value` to point at.
struct Views {
    strs: Vec<Vec<&'static str>>,
    bytes: Vec<Vec<&'static [u8]>>,
}

fn leak_views(attrs: &Attrs) -> Views {
    // Leaking keeps the test simple; each case leaks a few KiB.
    let strs = attrs
        .iter()
        .map(|(_, v)| match v {
            OV::StrA(a) => a
                .iter()
                .map(|s| &*Box::leak(s.clone().into_boxed_str()))
                .collect(),
            _ => Vec::new(),
        })
        .collect();
    let bytes = attrs
        .iter()
        .map(|(_, v)| match v {
            OV::BytesA(a) => a
                .iter()
                .map(|b| &*Box::leak(b.clone().into_boxed_slice()))
                .collect(),
            _ => Vec::new(),
        })
        .collect();
    Views { strs, bytes }
}

fn kvs<'a>(attrs: &'a Attrs, views: &'a Views) -> Vec<KeyValue<'a>> {
    attrs
        .iter()
        .enumerate()
        .map(|(i, (k, v))| KeyValue {
            key: k,
            value: match v {
                OV::Str(s) => Value::Str(s),
                OV::Bool(b) => Value::Bool(*b),
                OV::I64(n) => Value::I64(*n),
                OV::F64(f) => Value::F64(*f),
                OV::Bytes(b) => Value::Bytes(b),
                OV::StrA(_) => Value::StrArray(&views.strs[i]),
                OV::BoolA(a) => Value::BoolArray(a),
                OV::I64A(a) => Value::I64Array(a),
                OV::F64A(a) => Value::F64Array(a),
                OV::BytesA(_) => Value::BytesArray(&views.bytes[i]),
            },
        })
        .collect()
}

/// Attributes as `KeyValue`s; their array views are leaked for the rest of
/// the test, like those of `leak_views`.
fn kv_list(attrs: &Attrs) -> Vec<KeyValue<'_>> {
    let views: &'static Views = Box::leak(Box::new(leak_views(attrs)));
    kvs(attrs, views)
}

#[derive(Clone, Debug)]
struct EventSpec {
    name: String,
    time: u64,
    attrs: Attrs,
}

#[derive(Clone, Debug)]
struct LinkSpec {
    trace_id: [u8; 16],
    span_id: [u8; 8],
    state: String,
    remote: bool,
    sampled: bool,
    attrs: Attrs,
}

#[derive(Clone, Debug)]
enum StatusSpec {
    Unset,
    Ok,
    Error(String),
}

#[derive(Clone, Debug)]
struct SpanSpec {
    name: String,
    kind: SpanKind,
    parent: Option<([u8; 16], [u8; 8], bool, String)>,
    start: u64,
    end: u64,
    attrs: Attrs,
    events: Vec<EventSpec>,
    links: Vec<LinkSpec>,
    status: StatusSpec,
}

// ---- strategies ---------------------------------------------------------

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        "[a-z._]{1,12}",
        "\\PC{0,24}",           // any printable unicode
        "[ -~]{100,300}",       // long ASCII
        "[αβγδ日本語🦀]{5,40}", // multi-byte characters
    ]
}

fn key() -> impl Strategy<Value = String> {
    // A small key space, so repeated keys (replacement) happen often.
    prop_oneof![
        4 => prop::sample::select(vec!["a", "b", "c", "http.request.method", "ключ", ""]).prop_map(String::from),
        1 => "[a-z.]{1,20}",
    ]
}

fn f64_not_nan() -> impl Strategy<Value = f64> {
    any::<f64>().prop_filter("NaN never compares equal", |f| !f.is_nan())
}

fn value() -> impl Strategy<Value = OV> {
    prop_oneof![
        text().prop_map(OV::Str),
        any::<bool>().prop_map(OV::Bool),
        any::<i64>().prop_map(OV::I64),
        f64_not_nan().prop_map(OV::F64),
        prop::collection::vec(any::<u8>(), 0..40).prop_map(OV::Bytes),
        prop::collection::vec(text(), 0..4).prop_map(OV::StrA),
        prop::collection::vec(any::<bool>(), 0..4).prop_map(OV::BoolA),
        prop::collection::vec(any::<i64>(), 0..4).prop_map(OV::I64A),
        prop::collection::vec(f64_not_nan(), 0..4).prop_map(OV::F64A),
        prop::collection::vec(prop::collection::vec(any::<u8>(), 0..30), 0..4).prop_map(OV::BytesA),
    ]
}

fn attrs(max: usize) -> impl Strategy<Value = Attrs> {
    prop::collection::vec((key(), value()), 0..max)
}

fn nonzero16() -> impl Strategy<Value = [u8; 16]> {
    any::<[u8; 16]>().prop_filter("valid id", |b| b.iter().any(|&x| x != 0))
}

fn nonzero8() -> impl Strategy<Value = [u8; 8]> {
    any::<[u8; 8]>().prop_filter("valid id", |b| b.iter().any(|&x| x != 0))
}

fn span_spec() -> impl Strategy<Value = SpanSpec> {
    let kind = prop::sample::select(vec![
        SpanKind::Internal,
        SpanKind::Server,
        SpanKind::Client,
        SpanKind::Producer,
        SpanKind::Consumer,
    ]);
    let parent = prop::option::of((
        nonzero16(),
        nonzero8(),
        any::<bool>(),
        prop_oneof![Just(String::new()), "[a-z]{1,5}=[a-z0-9]{1,8}"],
    ));
    let event = (text(), any::<u64>(), attrs(5)).prop_map(|(name, time, attrs)| EventSpec {
        name,
        time,
        attrs,
    });
    let link = (
        nonzero16(),
        nonzero8(),
        prop_oneof![Just(String::new()), "[a-z]{1,5}=[a-z0-9]{1,8}"],
        any::<bool>(),
        any::<bool>(),
        attrs(5),
    )
        .prop_map(
            |(trace_id, span_id, state, remote, sampled, attrs)| LinkSpec {
                trace_id,
                span_id,
                state,
                remote,
                sampled,
                attrs,
            },
        );
    let status = prop_oneof![
        Just(StatusSpec::Unset),
        Just(StatusSpec::Ok),
        text().prop_map(StatusSpec::Error)
    ];
    (
        text(),
        kind,
        parent,
        (any::<u64>(), any::<u64>()),
        attrs(12),
        prop::collection::vec(event, 0..6),
        prop::collection::vec(link, 0..6),
        status,
    )
        .prop_map(
            |(name, kind, parent, (start, end), attrs, events, links, status)| SpanSpec {
                name,
                kind,
                parent,
                start,
                end,
                attrs,
                events,
                links,
                status,
            },
        )
}

fn limits() -> impl Strategy<Value = SpanLimits> {
    (
        0u32..6,
        0u32..6,
        0u32..6,
        0u32..6,
        0u32..6,
        prop::option::of(0u32..12),
        any::<bool>(),
    )
        .prop_map(|(a, e, l, ea, la, len, defaults)| {
            let mut lim = SpanLimits::default();
            if !defaults {
                lim.max_attributes_per_span = a;
                lim.max_events_per_span = e;
                lim.max_links_per_span = l;
                lim.max_attributes_per_event = ea;
                lim.max_attributes_per_link = la;
                lim.max_attribute_value_length = len;
            }
            lim
        })
}

// ---- the model ----------------------------------------------------------

fn trunc_str(s: &str, max: Option<u32>) -> String {
    match max {
        Some(n) => s.chars().take(n as usize).collect(),
        None => s.to_owned(),
    }
}

fn trunc_bytes(b: &[u8], max: Option<u32>) -> Vec<u8> {
    b[..b.len().min(max.map_or(usize::MAX, |n| n as usize))].to_vec()
}

fn anyv(v: any_value::Value) -> AnyValue {
    AnyValue { value: Some(v) }
}

fn model_value(v: &OV, max: Option<u32>) -> AnyValue {
    use any_value::Value as V;
    let arr = |values: Vec<AnyValue>| anyv(V::ArrayValue(ArrayValue { values }));
    match v {
        OV::Str(s) => anyv(V::StringValue(trunc_str(s, max))),
        OV::Bool(b) => anyv(V::BoolValue(*b)),
        OV::I64(n) => anyv(V::IntValue(*n)),
        OV::F64(f) => anyv(V::DoubleValue(*f)),
        OV::Bytes(b) => anyv(V::BytesValue(trunc_bytes(b, max))),
        OV::StrA(a) => arr(a
            .iter()
            .map(|s| anyv(V::StringValue(trunc_str(s, max))))
            .collect()),
        OV::BoolA(a) => arr(a.iter().map(|b| anyv(V::BoolValue(*b))).collect()),
        OV::I64A(a) => arr(a.iter().map(|n| anyv(V::IntValue(*n))).collect()),
        OV::F64A(a) => arr(a.iter().map(|f| anyv(V::DoubleValue(*f))).collect()),
        OV::BytesA(a) => arr(a
            .iter()
            .map(|b| anyv(V::BytesValue(trunc_bytes(b, max))))
            .collect()),
    }
}

fn pkv(k: &str, v: &OV, max: Option<u32>) -> PKeyValue {
    PKeyValue {
        key: k.to_owned(),
        value: Some(model_value(v, max)),
        ..Default::default()
    }
}

/// A collection given at once: the last value of each key, in the order of
/// those last occurrences, then the first `limit`.
fn model_list(attrs: &Attrs, limit: u32, max: Option<u32>) -> (Vec<PKeyValue>, u32) {
    let unique: Vec<_> = attrs
        .iter()
        .enumerate()
        .filter(|(i, (k, _))| !attrs[i + 1..].iter().any(|(k2, _)| k2 == k))
        .map(|(_, kv)| kv)
        .collect();
    let kept = unique.len().min(limit as usize);
    (
        unique[..kept].iter().map(|(k, v)| pkv(k, v, max)).collect(),
        (unique.len() - kept) as u32,
    )
}

/// Attributes set one by one on a live span: a known key is replaced (and
/// moves to the end), a new key past the limit is dropped.
fn model_sequential(attrs: &Attrs, limit: u32, max: Option<u32>) -> (Vec<PKeyValue>, u32) {
    let mut out: Vec<PKeyValue> = Vec::new();
    let mut dropped = 0;
    for (k, v) in attrs {
        if let Some(i) = out.iter().position(|kv| &kv.key == k) {
            out.remove(i);
        } else if out.len() >= limit as usize {
            dropped += 1;
            continue;
        }
        out.push(pkv(k, v, max));
    }
    (out, dropped)
}

fn flags(sampled: bool, remote: bool) -> u32 {
    u32::from(sampled) | 0x100 | if remote { 0x200 } else { 0 }
}

fn model_span(
    spec: &SpanSpec,
    lim: &SpanLimits,
    trace_id: [u8; 16],
    span_id: [u8; 8],
    live: bool,
) -> PSpan {
    let max = lim.max_attribute_value_length;
    let (attributes, dropped_attributes_count) = if live {
        model_sequential(&spec.attrs, lim.max_attributes_per_span, max)
    } else {
        model_list(&spec.attrs, lim.max_attributes_per_span, max)
    };
    let kept_events = spec.events.len().min(lim.max_events_per_span as usize);
    let events = spec.events[..kept_events]
        .iter()
        .map(|e| {
            let (attributes, dropped) = model_list(&e.attrs, lim.max_attributes_per_event, max);
            span::Event {
                time_unix_nano: e.time,
                name: e.name.clone(),
                attributes,
                dropped_attributes_count: dropped,
            }
        })
        .collect();
    let kept_links = spec.links.len().min(lim.max_links_per_span as usize);
    let links = spec.links[..kept_links]
        .iter()
        .map(|l| {
            let (attributes, dropped) = model_list(&l.attrs, lim.max_attributes_per_link, max);
            span::Link {
                trace_id: l.trace_id.to_vec(),
                span_id: l.span_id.to_vec(),
                trace_state: l.state.clone(),
                attributes,
                dropped_attributes_count: dropped,
                flags: flags(l.sampled, l.remote),
            }
        })
        .collect();
    let status = match &spec.status {
        StatusSpec::Unset => None,
        StatusSpec::Ok => Some(PStatus {
            message: String::new(),
            code: 1,
        }),
        StatusSpec::Error(m) => Some(PStatus {
            message: m.clone(),
            code: 2,
        }),
    };
    let (parent_span_id, trace_state, remote) = match &spec.parent {
        Some((_, p, remote, state)) => (p.to_vec(), state.clone(), *remote),
        None => (Vec::new(), String::new(), false),
    };
    PSpan {
        trace_id: trace_id.to_vec(),
        span_id: span_id.to_vec(),
        trace_state,
        parent_span_id,
        flags: flags(true, remote),
        name: spec.name.clone(),
        kind: spec.kind as i32,
        start_time_unix_nano: spec.start,
        end_time_unix_nano: spec.end,
        attributes,
        dropped_attributes_count,
        events,
        dropped_events_count: (spec.events.len() - kept_events) as u32,
        links,
        dropped_links_count: (spec.links.len() - kept_links) as u32,
        status,
    }
}

// ---- recording ----------------------------------------------------------

fn engine(lim: SpanLimits) -> Engine {
    Engine::builder()
        .export(false)
        .service_name("golden")
        .resource_attribute("host.name", "test-host")
        .rings(2)
        .ring_bytes_per_cpu(1 << 20)
        .span_limits(lim)
        .build()
        .unwrap()
}

fn parent_ctx(spec: &SpanSpec) -> Option<SpanContext> {
    spec.parent
        .as_ref()
        .map(|(t, s, remote, state)| SpanContext {
            trace_id: TraceId(*t),
            span_id: SpanId(*s),
            trace_flags: TraceFlags::SAMPLED,
            is_remote: *remote,
            trace_state: TraceState::from_header(state),
        })
}

/// Records through the live API; returns the ids it was given.
fn record_live(tracer: &otlpx::Tracer, spec: &SpanSpec) -> ([u8; 16], [u8; 8]) {
    let parent = parent_ctx(spec);
    let mut b = tracer
        .span(&spec.name)
        .kind(spec.kind)
        .start_time_unix_nano(spec.start);
    if let Some(p) = &parent {
        b = b.parent(p);
    }
    let mut span = b.start();
    for kv in kv_list(&spec.attrs) {
        span.set_attribute(kv.key, kv.value);
    }
    for e in &spec.events {
        span.add_event_with_timestamp(&e.name, e.time, &kv_list(&e.attrs));
    }
    for l in &spec.links {
        let ctx = SpanContext {
            trace_id: TraceId(l.trace_id),
            span_id: SpanId(l.span_id),
            trace_flags: if l.sampled {
                TraceFlags::SAMPLED
            } else {
                TraceFlags::NONE
            },
            is_remote: l.remote,
            trace_state: TraceState::from_header(&l.state),
        };
        span.add_link(&ctx, &kv_list(&l.attrs));
    }
    match &spec.status {
        StatusSpec::Unset => {}
        StatusSpec::Ok => span.set_status(Status::Ok),
        StatusSpec::Error(m) => span.set_status(Status::error(m)),
    }
    let ids = (span.context().trace_id.0, span.context().span_id.0);
    span.end_with_timestamp(spec.end);
    ids
}

/// Records through `record_span` with fresh ids; returns them.
fn record_finished(tracer: &otlpx::Tracer, spec: &SpanSpec) -> ([u8; 16], [u8; 8]) {
    let trace_id = spec
        .parent
        .as_ref()
        .map_or_else(TraceId::random, |p| TraceId(p.0));
    let span_id = SpanId::random();
    let attributes = kv_list(&spec.attrs);
    let event_kvs: Vec<_> = spec.events.iter().map(|e| kv_list(&e.attrs)).collect();
    let events: Vec<_> = spec
        .events
        .iter()
        .zip(&event_kvs)
        .map(|(e, a)| Event {
            name: &e.name,
            time_unix_nano: e.time,
            attributes: a,
            dropped_attributes_count: 0,
        })
        .collect();
    let link_kvs: Vec<_> = spec.links.iter().map(|l| kv_list(&l.attrs)).collect();
    let links: Vec<_> = spec
        .links
        .iter()
        .zip(&link_kvs)
        .map(|(l, a)| Link {
            trace_id: TraceId(l.trace_id),
            span_id: SpanId(l.span_id),
            trace_flags: if l.sampled {
                TraceFlags::SAMPLED
            } else {
                TraceFlags::NONE
            },
            trace_state: &l.state,
            is_remote: l.remote,
            attributes: a,
            dropped_attributes_count: 0,
        })
        .collect();
    let status = match &spec.status {
        StatusSpec::Unset => Status::Unset,
        StatusSpec::Ok => Status::Ok,
        StatusSpec::Error(m) => Status::error(m),
    };
    let (parent_span_id, parent_is_remote, trace_state) = match &spec.parent {
        Some((_, p, remote, state)) => (Some(SpanId(*p)), *remote, state.as_str()),
        None => (None, false, ""),
    };
    tracer
        .record_span(&FinishedSpan {
            trace_id,
            span_id,
            trace_flags: TraceFlags::SAMPLED,
            trace_state: trace_state.trim(),
            parent_span_id,
            parent_is_remote,
            name: &spec.name,
            kind: spec.kind,
            start_time_unix_nano: spec.start,
            end_time_unix_nano: spec.end,
            attributes: &attributes,
            events: &events,
            links: &links,
            status,
            ..Default::default()
        })
        .unwrap();
    (trace_id.0, span_id.0)
}

fn drain(engine: &Engine) -> ExportTraceServiceRequest {
    let mut out = BytesMut::new();
    engine.drain_traces(&mut out, usize::MAX);
    ExportTraceServiceRequest::decode(&out[..]).expect("our bytes decode")
}

fn str_attr(kvs: &[PKeyValue], key: &str) -> Option<String> {
    kvs.iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| match &kv.value.as_ref()?.value {
            Some(any_value::Value::StringValue(s)) => Some(s.clone()),
            _ => None,
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    #[cfg_attr(miri, ignore = "proptest's generators take hours under miri; the unsafe code is exercised by the ring, engine and allocation tests")]
    fn spans_decode_to_what_was_recorded(specs in prop::collection::vec(span_spec(), 1..6), lim in limits()) {
        let engine = engine(lim);
        let tracer_a = engine.tracer("lib.a", "1.2.3");
        let tracer_b = engine.tracer_builder("lib.b").schema_url("https://opentelemetry.io/schemas/1.26.0").build();
        let mut expected = Vec::new();
        for (i, spec) in specs.iter().enumerate() {
            let (tracer, scope) = if i % 2 == 0 { (&tracer_a, "lib.a") } else { (&tracer_b, "lib.b") };
            let (t, s) = record_live(tracer, spec);
            expected.push((scope, model_span(spec, &lim, t, s, true)));
            let (t, s) = record_finished(tracer, spec);
            expected.push((scope, model_span(spec, &lim, t, s, false)));
        }
        let stats = engine.stats();
        prop_assert_eq!(stats.recorded, expected.len() as u64);
        prop_assert_eq!(stats.in_rings, expected.len() as u64);

        let req = drain(&engine);
        prop_assert_eq!(req.resource_spans.len(), 1);
        let rs = &req.resource_spans[0];
        let res = rs.resource.as_ref().unwrap();
        prop_assert_eq!(str_attr(&res.attributes, "service.name"), Some("golden".to_string()));
        prop_assert_eq!(str_attr(&res.attributes, "host.name"), Some("test-host".to_string()));
        prop_assert_eq!(str_attr(&res.attributes, "telemetry.sdk.name"), Some("otlpx".to_string()));
        let mut got = Vec::new();
        for ss in &rs.scope_spans {
            let scope = ss.scope.as_ref().unwrap();
            match scope.name.as_str() {
                "lib.a" => { prop_assert_eq!(&scope.version, "1.2.3"); prop_assert_eq!(&ss.schema_url, ""); }
                "lib.b" => { prop_assert_eq!(&scope.version, ""); prop_assert_eq!(&ss.schema_url, "https://opentelemetry.io/schemas/1.26.0"); }
                other => prop_assert!(false, "unexpected scope {other}"),
            }
            for s in &ss.spans {
                got.push((if scope.name == "lib.a" { "lib.a" } else { "lib.b" }, s.clone()));
            }
        }
        // Order within a scope follows ring order; compare as sorted sets.
        let key = |(scope, s): &(&str, PSpan)| (scope.to_string(), s.span_id.clone());
        got.sort_by_key(key);
        expected.sort_by_key(key);
        prop_assert_eq!(got, expected);

        let stats = engine.stats();
        prop_assert_eq!(stats.drained_by_caller, stats.recorded);
        prop_assert_eq!(stats.in_rings, 0);
        prop_assert_eq!(stats.ring_bytes_used, 0);
    }
}

#[test]
fn unsampled_parent_records_nothing_but_propagates() {
    let engine = engine(SpanLimits::default());
    let tracer = engine.tracer("t", "");
    let parent =
        SpanContext::from_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00")
            .unwrap();
    let mut span = tracer.span("child").parent(&parent).start();
    assert!(!span.is_recording());
    span.set_attribute("k", "v");
    assert_eq!(span.context().trace_id, parent.trace_id);
    assert!(!span.context().trace_flags.is_sampled());
    span.end();
    assert_eq!(engine.stats().recorded, 0);
}

#[test]
fn status_rules() {
    let engine = engine(SpanLimits::default());
    let tracer = engine.tracer("t", "");
    let mut a = tracer.start("ok is final");
    a.set_status(Status::Ok);
    a.set_status(Status::error("ignored"));
    a.end();
    let mut b = tracer.start("unset never overrides");
    b.set_status(Status::error("kept"));
    b.set_status(Status::Unset);
    b.end();
    let req = drain(&engine);
    let spans = &req.resource_spans[0].scope_spans[0].spans;
    let by_name = |n: &str| spans.iter().find(|s| s.name == n).unwrap().status.clone();
    assert_eq!(
        by_name("ok is final"),
        Some(PStatus {
            message: String::new(),
            code: 1
        })
    );
    assert_eq!(
        by_name("unset never overrides"),
        Some(PStatus {
            message: "kept".into(),
            code: 2
        })
    );
}

#[test]
fn record_span_rejects_zero_ids_and_counts_them() {
    let engine = engine(SpanLimits::default());
    let tracer = engine.tracer("t", "");
    let err = tracer.record_span(&FinishedSpan {
        name: "x",
        span_id: SpanId::random(),
        ..Default::default()
    });
    assert_eq!(err, Err(otlpx::RecordError::InvalidIds));
    let s = engine.stats();
    assert_eq!((s.recorded, s.dropped.invalid), (1, 1));
}

#[test]
fn default_service_name_names_the_executable() {
    let engine = Engine::builder().export(false).rings(1).build().unwrap();
    engine.tracer("t", "").start("s").end();
    let req = drain(&engine);
    let name = str_attr(
        &req.resource_spans[0].resource.as_ref().unwrap().attributes,
        "service.name",
    )
    .unwrap();
    // The specification: `unknown_service:` + process.executable.name.
    let exe = std::env::current_exe().unwrap();
    let exe = exe.file_name().unwrap().to_str().unwrap();
    assert_eq!(name, format!("unknown_service:{exe}"));
}
