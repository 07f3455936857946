//! Log records as the logs front door writes them, decoded with the
//! official OTLP types: every field, bodies of every `AnyValue` kind
//! (nested maps and arrays), attributes of every type and their limits,
//! trace correlation from the current span, an explicit one or none, the
//! severity filter, and the logs signal kept apart from traces (its own
//! rings, its own requests, its own counts).

use bytes::BytesMut;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue as PAny, any_value::Value as Av};
use opentelemetry_proto::tonic::logs::v1::LogRecord as PLog;
use otlpx::logs::{AnyValue, LogRecord, Severity};
use otlpx::{Engine, KeyValue, Signal, SpanContext, Value};
use prost::Message;

fn engine() -> Engine {
    Engine::builder()
        .export(false)
        .ring_bytes_per_cpu(1 << 20)
        .build()
        .unwrap()
}

/// Every log record emitted so far, with its scope's name.
fn drain(engine: &Engine) -> Vec<(String, PLog)> {
    let mut out = BytesMut::new();
    let mut records = Vec::new();
    while engine.drain(Signal::Logs, &mut out, 512) > 0 {
        let req = ExportLogsServiceRequest::decode(&out[..]).unwrap();
        for rl in req.resource_logs {
            let resource = rl.resource.expect("a resource");
            assert!(
                resource
                    .attributes
                    .iter()
                    .any(|kv| kv.key == "service.name"),
                "the resource names the service"
            );
            for sl in rl.scope_logs {
                let scope = sl.scope.map(|s| s.name).unwrap_or_default();
                records.extend(sl.log_records.into_iter().map(|r| (scope.clone(), r)));
            }
        }
    }
    records
}

fn one(engine: &Engine) -> PLog {
    let mut records = drain(engine);
    assert_eq!(records.len(), 1, "{records:?}");
    records.remove(0).1
}

fn value(v: &Option<PAny>) -> &Av {
    v.as_ref().and_then(|v| v.value.as_ref()).expect("a value")
}

fn s(v: &str) -> Av {
    Av::StringValue(v.to_owned())
}

#[test]
fn every_field_arrives() {
    let engine = engine();
    let logger = engine.logger("checkout", "1.4.0");
    let context =
        SpanContext::from_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
            .unwrap();
    logger.emit(
        &LogRecord::new(Severity::WARN)
            .timestamp(1_700_000_000_000_000_001)
            .observed_timestamp(1_700_000_000_000_000_002)
            .severity_text("warning")
            .body("payment retried")
            .attributes(&[
                KeyValue::new("order.id", 1042),
                KeyValue::new("retry", true),
            ])
            .event_name("payment.retry")
            .span_context(&context),
    );
    let records = drain(&engine);
    assert_eq!(records.len(), 1);
    let (scope, r) = &records[0];
    assert_eq!(scope, "checkout");
    assert_eq!(r.time_unix_nano, 1_700_000_000_000_000_001);
    assert_eq!(r.observed_time_unix_nano, 1_700_000_000_000_000_002);
    assert_eq!(r.severity_number, 13);
    assert_eq!(r.severity_text, "warning");
    assert_eq!(value(&r.body), &s("payment retried"));
    assert_eq!(r.attributes.len(), 2);
    assert_eq!(r.attributes[0].key, "order.id");
    assert_eq!(value(&r.attributes[0].value), &Av::IntValue(1042));
    assert_eq!(value(&r.attributes[1].value), &Av::BoolValue(true));
    assert_eq!(r.dropped_attributes_count, 0);
    assert_eq!(r.event_name, "payment.retry");
    assert_eq!(r.trace_id, context.trace_id.0);
    assert_eq!(r.span_id, context.span_id.0);
    assert_eq!(r.flags, 1, "sampled");
}

#[test]
fn defaults_are_now_the_severity_name_and_no_trace() {
    let engine = engine();
    let logger = engine.logger("app", "");
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    logger.emit(&LogRecord::new(Severity::INFO).body("started"));
    let r = one(&engine);
    assert!(
        r.time_unix_nano >= before - 1_000_000_000,
        "{}",
        r.time_unix_nano
    );
    assert_eq!(r.time_unix_nano, r.observed_time_unix_nano);
    assert_eq!((r.severity_number, r.severity_text.as_str()), (9, "INFO"));
    assert!(r.trace_id.is_empty() && r.span_id.is_empty() && r.flags == 0);
    // Unspecified: no number, no text.
    logger.emit(&LogRecord::new(Severity::UNSPECIFIED).body("plain"));
    let r = one(&engine);
    assert_eq!((r.severity_number, r.severity_text.as_str()), (0, ""));
}

#[test]
fn bodies_of_every_kind_nest() {
    let engine = engine();
    let logger = engine.logger("app", "");
    let inner = [
        AnyValue::from("a"),
        AnyValue::from(7),
        AnyValue::Map(&[("deep", AnyValue::from(true))]),
    ];
    let body = AnyValue::Map(&[
        ("text", AnyValue::from("hello")),
        ("int", AnyValue::from(-3i64)),
        ("big", AnyValue::from(u64::MAX)),
        ("float", AnyValue::from(1.5)),
        ("bool", AnyValue::from(false)),
        ("bytes", AnyValue::from(&b"\x00\xff"[..])),
        ("ints", AnyValue::from(&[1i64, 2, 3][..])),
        ("mixed", AnyValue::Array(&inner)),
        ("empty", AnyValue::Map(&[])),
    ]);
    logger.emit(&LogRecord::new(Severity::DEBUG).body(body));
    let r = one(&engine);
    let Av::KvlistValue(map) = value(&r.body) else {
        panic!("a map: {:?}", r.body)
    };
    let get = |k: &str| {
        value(
            &map.values
                .iter()
                .find(|kv| kv.key == k)
                .unwrap_or_else(|| panic!("no {k}"))
                .value,
        )
        .clone()
    };
    assert_eq!(get("text"), s("hello"));
    assert_eq!(get("int"), Av::IntValue(-3));
    assert_eq!(get("big"), s("18446744073709551615"));
    assert_eq!(get("float"), Av::DoubleValue(1.5));
    assert_eq!(get("bool"), Av::BoolValue(false));
    assert_eq!(get("bytes"), Av::BytesValue(vec![0, 255]));
    let Av::ArrayValue(ints) = get("ints") else {
        panic!("an array")
    };
    assert_eq!(ints.values.len(), 3);
    let Av::ArrayValue(mixed) = get("mixed") else {
        panic!("an array")
    };
    assert_eq!(mixed.values[0].value, Some(s("a")));
    assert_eq!(mixed.values[1].value, Some(Av::IntValue(7)));
    let Some(Av::KvlistValue(deep)) = &mixed.values[2].value else {
        panic!("a map in the array")
    };
    assert_eq!(deep.values[0].key, "deep");
    assert_eq!(value(&deep.values[0].value), &Av::BoolValue(true));
    let Av::KvlistValue(empty) = get("empty") else {
        panic!("an empty map")
    };
    assert!(empty.values.is_empty());
}

#[test]
fn the_current_span_correlates_unless_told_otherwise() {
    let engine = engine();
    let tracer = engine.tracer("app", "");
    let logger = engine.logger("app", "");
    let other =
        SpanContext::from_traceparent("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
            .unwrap();
    let (trace_id, span_id) = tracer.in_span("request", |span| {
        logger.emit(&LogRecord::new(Severity::INFO).body("inside"));
        logger.emit(
            &LogRecord::new(Severity::INFO)
                .body("explicit")
                .span_context(&other),
        );
        logger.emit(
            &LogRecord::new(Severity::INFO)
                .body("none")
                .without_span_context(),
        );
        (span.context().trace_id, span.context().span_id)
    });
    logger.emit(&LogRecord::new(Severity::INFO).body("after"));
    let records: Vec<PLog> = drain(&engine).into_iter().map(|(_, r)| r).collect();
    let by_body = |b: &str| {
        records
            .iter()
            .find(|r| value(&r.body) == &s(b))
            .unwrap_or_else(|| panic!("no record {b}"))
    };
    let inside = by_body("inside");
    assert_eq!(
        (inside.trace_id.as_slice(), inside.span_id.as_slice()),
        (&trace_id.0[..], &span_id.0[..])
    );
    assert_eq!(inside.flags, 1);
    assert_eq!(by_body("explicit").span_id, other.span_id.0);
    assert!(by_body("none").trace_id.is_empty());
    assert!(by_body("after").trace_id.is_empty());
}

#[test]
fn attribute_limits_cut_and_count() {
    let engine = Engine::builder()
        .export(false)
        .environment([
            ("OTEL_LOGRECORD_ATTRIBUTE_COUNT_LIMIT", "2"),
            ("OTEL_LOGRECORD_ATTRIBUTE_VALUE_LENGTH_LIMIT", "4"),
        ])
        .build()
        .unwrap();
    let logger = engine.logger("app", "");
    logger.emit(&LogRecord::new(Severity::INFO).attributes(&[
        KeyValue::new("a", "abcdefgh"),
        KeyValue::new("b", 2),
        KeyValue::new("c", 3),
        KeyValue::new("a", "later"),
    ]));
    let r = one(&engine);
    // A key given twice keeps its last value; past two, dropped and counted.
    let keys: Vec<&str> = r.attributes.iter().map(|kv| kv.key.as_str()).collect();
    assert_eq!(keys, ["b", "c"]);
    assert_eq!(r.dropped_attributes_count, 1);
    let engine2 = Engine::builder()
        .export(false)
        .environment([("OTEL_LOGRECORD_ATTRIBUTE_VALUE_LENGTH_LIMIT", "4")])
        .build()
        .unwrap();
    engine2
        .logger("app", "")
        .emit(&LogRecord::new(Severity::INFO).attributes(&[KeyValue::new("a", "abcdefgh")]));
    let r = one(&engine2);
    assert_eq!(value(&r.attributes[0].value), &s("abcd"));
}

#[test]
fn records_below_the_minimum_severity_cost_nothing_and_count_nowhere() {
    let engine = Engine::builder()
        .export(false)
        .environment([("OTLPX_LOGS_MIN_SEVERITY", "warn")])
        .build()
        .unwrap();
    let logger = engine.logger("app", "");
    assert!(!logger.enabled(Severity::INFO));
    assert!(logger.enabled(Severity::WARN));
    assert!(logger.enabled(Severity::UNSPECIFIED));
    logger.emit(&LogRecord::new(Severity::INFO).body("filtered"));
    logger.emit(&LogRecord::new(Severity::ERROR).body("kept"));
    let stats = engine.signal_stats(Signal::Logs);
    assert_eq!((stats.recorded, stats.dropped.total()), (1, 0));
    assert_eq!(value(&one(&engine).body), &s("kept"));
}

#[test]
fn logs_and_traces_keep_apart() {
    let engine = engine();
    let logger = engine.logger("app", "");
    let tracer = engine.tracer("app", "");
    for i in 0..10 {
        tracer.start("op").end();
        logger.emit(&LogRecord::new(Severity::INFO).body(i));
    }
    assert_eq!(engine.signal_stats(Signal::Logs).in_rings, 10);
    assert_eq!(engine.signal_stats(Signal::Traces).in_rings, 10);
    assert_eq!(engine.stats().recorded, 10, "stats() is the traces'");
    assert_eq!(drain(&engine).len(), 10);
    let mut out = BytesMut::new();
    assert_eq!(engine.drain_traces(&mut out, 512), 10);
    let logs = engine.signal_stats(Signal::Logs);
    assert_eq!(
        (logs.recorded, logs.drained_by_caller, logs.in_rings),
        (10, 10, 0)
    );
}

#[test]
fn a_record_larger_than_the_ring_is_dropped_and_counted() {
    let engine = Engine::builder()
        .export(false)
        .ring_bytes_per_cpu(4096)
        .rings(1)
        .build()
        .unwrap();
    let logger = engine.logger("app", "");
    let big = "x".repeat(10_000);
    let result = logger.try_emit(&LogRecord::new(Severity::INFO).body(big.as_str()));
    assert_eq!(result, Err(otlpx::RecordError::TooLarge));
    let stats = engine.signal_stats(Signal::Logs);
    assert_eq!((stats.recorded, stats.dropped.too_large), (1, 1));
    assert_eq!(engine.stats().recorded, 0, "traces untouched");
    // A value that is not a string nor a number goes as it is.
    logger.emit(&LogRecord::new(Severity::INFO).body(Value::Bool(true)));
    assert_eq!(value(&one(&engine).body), &Av::BoolValue(true));
}
