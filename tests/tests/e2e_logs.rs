//! Logs end to end, against the embedded receiver: over gRPC and HTTP,
//! uncompressed, gzip and zstd, from several producer threads, every log
//! record arrives exactly once with its body (nested maps and arrays),
//! attributes, severity and trace correlation intact, at the logs service,
//! while the same engine's spans arrive at the traces service; the
//! receiver's counts equal `signal_stats`. A receiver that refuses for a
//! while costs retries, not records; what could not be sent is spooled at
//! shutdown and the next engine sends it to the logs service.

mod common;

use common::{receiver_on, refuse};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::common::v1::KeyValue as PKeyValue;
use opentelemetry_proto::tonic::common::v1::any_value::Value as Av;
use opentelemetry_proto::tonic::logs::v1::LogRecord as PLog;
use otlpx::logs::{AnyValue, LogRecord, Severity};
use otlpx::{Compression, Engine, EngineBuilder, KeyValue, Protocol, Signal};
use otlpx_bench::receiver::{Receiver, unused_ports};
use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

const THREADS: u64 = 4;
const PER_THREAD: u64 = 1_000;

fn endpoint(receiver: &Receiver, protocol: Protocol) -> String {
    match protocol {
        Protocol::Grpc => receiver.grpc_endpoint(),
        _ => receiver.http_endpoint(),
    }
}

/// Rings that hold every item a test records (the worker may fall behind
/// its producers on a loaded machine), quick retries.
fn engine_to(endpoint: String, protocol: Protocol) -> EngineBuilder {
    Engine::builder()
        .service_name("e2e-logs")
        .endpoint(endpoint)
        .protocol(protocol)
        .ring_bytes_per_cpu(16 << 20)
        .rings(2)
        .retry_backoff(Duration::from_millis(50), Duration::from_millis(200))
}

/// Emits record `(t, i)` inside span `(t, i)`: a map body with a nested
/// array and map, five attributes of mixed types, INFO with every tenth
/// an ERROR.
fn emit_all(engine: &Engine) {
    let tracer = engine.tracer("e2e-logs", "2.0.0");
    let logger = engine.logger("e2e-logs", "2.0.0");
    std::thread::scope(|s| {
        for t in 0..THREADS {
            let (tracer, logger) = (&tracer, &logger);
            s.spawn(move || {
                for i in 0..PER_THREAD {
                    tracer.in_span(format!("op-{t}-{i}"), |_| {
                        let text = format!("message {t}-{i}");
                        let tags = [AnyValue::from("a"), AnyValue::from(i as i64)];
                        let nested = [("even", AnyValue::from(i % 2 == 0))];
                        let body = AnyValue::Map(&[
                            ("text", AnyValue::from(text.as_str())),
                            ("tags", AnyValue::Array(&tags)),
                            ("nested", AnyValue::Map(&nested)),
                        ]);
                        let severity = if i % 10 == 0 {
                            Severity::ERROR
                        } else {
                            Severity::INFO
                        };
                        logger.emit(
                            &LogRecord::new(severity)
                                .body(body)
                                .attributes(&[
                                    KeyValue::new("thread", t as i64),
                                    KeyValue::new("seq", i as i64),
                                    KeyValue::new("ratio", i as f64 / 4.0),
                                    KeyValue::new("ok", i % 3 != 0),
                                    KeyValue::new("route", "/checkout"),
                                ])
                                .event_name("checkout.step"),
                        );
                    });
                }
            });
        }
    });
}

fn attr<'a>(attributes: &'a [PKeyValue], key: &str) -> &'a Av {
    attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref()?.value.as_ref())
        .unwrap_or_else(|| panic!("no attribute {key}"))
}

fn int(attributes: &[PKeyValue], key: &str) -> u64 {
    match attr(attributes, key) {
        Av::IntValue(v) => *v as u64,
        other => panic!("{key} is {other:?}"),
    }
}

/// Checks every field of one received record; its `(thread, seq)`.
fn check_record(r: &PLog) -> (u64, u64) {
    let (t, i) = (int(&r.attributes, "thread"), int(&r.attributes, "seq"));
    let (number, text) = if i % 10 == 0 {
        (17, "ERROR")
    } else {
        (9, "INFO")
    };
    assert_eq!(
        (r.severity_number, r.severity_text.as_str()),
        (number, text)
    );
    assert_eq!(r.event_name, "checkout.step");
    assert!(r.time_unix_nano > 0 && r.observed_time_unix_nano > 0);
    assert_eq!(r.attributes.len(), 5);
    assert_eq!(
        attr(&r.attributes, "ratio"),
        &Av::DoubleValue(i as f64 / 4.0)
    );
    assert_eq!(attr(&r.attributes, "ok"), &Av::BoolValue(i % 3 != 0));
    assert_eq!(
        attr(&r.attributes, "route"),
        &Av::StringValue("/checkout".into())
    );
    let Some(Av::KvlistValue(body)) = r.body.as_ref().and_then(|b| b.value.as_ref()) else {
        panic!("a map body: {:?}", r.body)
    };
    assert_eq!(
        attr(&body.values, "text"),
        &Av::StringValue(format!("message {t}-{i}"))
    );
    let Av::ArrayValue(tags) = attr(&body.values, "tags") else {
        panic!("an array")
    };
    let tags: Vec<_> = tags.values.iter().map(|v| v.value.clone()).collect();
    assert_eq!(
        tags,
        [
            Some(Av::StringValue("a".into())),
            Some(Av::IntValue(i as i64))
        ]
    );
    let Av::KvlistValue(nested) = attr(&body.values, "nested") else {
        panic!("a nested map")
    };
    assert_eq!(attr(&nested.values, "even"), &Av::BoolValue(i % 2 == 0));
    assert_eq!((r.trace_id.len(), r.span_id.len(), r.flags), (16, 8, 1));
    (t, i)
}

/// Every record of `requests`, checked, exactly once each; the span id of
/// each, by `(thread, seq)`.
fn check_requests(requests: &[ExportLogsServiceRequest]) -> HashMap<(u64, u64), Vec<u8>> {
    let mut seen: HashMap<(u64, u64), Vec<u8>> = HashMap::new();
    for request in requests {
        for rl in &request.resource_logs {
            let resource = rl.resource.as_ref().expect("a resource");
            assert_eq!(
                attr(&resource.attributes, "service.name"),
                &Av::StringValue("e2e-logs".into())
            );
            for sl in &rl.scope_logs {
                let scope = sl.scope.as_ref().expect("a scope");
                assert_eq!(
                    (scope.name.as_str(), scope.version.as_str()),
                    ("e2e-logs", "2.0.0")
                );
                for r in &sl.log_records {
                    let key = check_record(r);
                    assert!(
                        seen.insert(key, r.span_id.clone()).is_none(),
                        "{key:?} twice"
                    );
                }
            }
        }
    }
    assert_eq!(seen.len() as u64, THREADS * PER_THREAD, "records missing");
    seen
}

fn round_trip(protocol: Protocol, compression: Compression) {
    let label = format!("{protocol:?} {compression:?}");
    let receiver = receiver_on((0, 0));
    let engine = engine_to(endpoint(&receiver, protocol), protocol)
        .compression(compression)
        .build()
        .unwrap();
    emit_all(&engine);
    engine.flush(Duration::from_secs(30)).unwrap();
    engine.shutdown(Duration::from_secs(10)).unwrap();

    let total = THREADS * PER_THREAD;
    let logs = engine.signal_stats(Signal::Logs);
    let traces = engine.signal_stats(Signal::Traces);
    for (s, what) in [(&logs, "logs"), (&traces, "traces")] {
        assert_eq!((s.recorded, s.exported), (total, total), "{label} {what}");
        assert_eq!(
            (s.in_flight, s.in_rings, s.dropped.total()),
            (0, 0, 0),
            "{label} {what}"
        );
    }
    let counts = receiver.counts();
    assert_eq!(counts.log_records, logs.exported, "{label}");
    assert_eq!(counts.logs_requests, logs.export.requests, "{label}");
    assert_eq!(
        counts.spans, traces.exported,
        "{label}: spans at their own service"
    );
    assert_eq!(counts.requests, traces.export.requests, "{label}");
    assert_eq!(counts.requests_malformed, 0, "{label}");
    let span_of = check_requests(&receiver.take_log_requests());
    // Each record correlates with the span it was emitted in.
    let mut spans: HashMap<String, Vec<u8>> = HashMap::new();
    for request in receiver.take_requests() {
        for span in request
            .resource_spans
            .iter()
            .flat_map(|r| &r.scope_spans)
            .flat_map(|s| &s.spans)
        {
            spans.insert(span.name.clone(), span.span_id.clone());
        }
    }
    for ((t, i), span_id) in span_of {
        assert_eq!(
            spans[&format!("op-{t}-{i}")],
            span_id,
            "{label}: record {t}-{i}"
        );
    }
}

#[test]
fn grpc_uncompressed() {
    round_trip(Protocol::Grpc, Compression::None);
}

#[test]
fn grpc_gzip() {
    round_trip(Protocol::Grpc, Compression::Gzip);
}

#[test]
fn grpc_zstd() {
    round_trip(Protocol::Grpc, Compression::Zstd);
}

#[test]
fn http_uncompressed() {
    round_trip(Protocol::HttpProtobuf, Compression::None);
}

#[test]
fn http_gzip() {
    round_trip(Protocol::HttpProtobuf, Compression::Gzip);
}

#[test]
fn http_zstd() {
    round_trip(Protocol::HttpProtobuf, Compression::Zstd);
}

/// Emits `n` plain records, numbered.
fn emit(engine: &Engine, n: u64) {
    let logger = engine.logger("e2e-logs", "");
    for i in 0..n {
        logger.emit(
            &LogRecord::new(Severity::INFO)
                .body("numbered")
                .attributes(&[KeyValue::new("seq", i as i64)]),
        );
    }
}

/// How often each numbered record arrived.
fn received_seqs(receiver: &Receiver) -> HashMap<u64, u64> {
    let mut seen = HashMap::new();
    for request in receiver.take_log_requests() {
        for r in request
            .resource_logs
            .iter()
            .flat_map(|r| &r.scope_logs)
            .flat_map(|s| &s.log_records)
        {
            *seen.entry(int(&r.attributes, "seq")).or_insert(0) += 1;
        }
    }
    seen
}

#[test]
fn a_receiver_refusing_for_a_while_costs_retries_not_records() {
    for protocol in [Protocol::Grpc, Protocol::HttpProtobuf] {
        let label = format!("{protocol:?}");
        let receiver = receiver_on((0, 0));
        // UNAVAILABLE / 503 for the first five requests: retryable.
        receiver.push_faults(5, refuse(14, 503, None));
        let engine = engine_to(endpoint(&receiver, protocol), protocol)
            .max_batch_spans(100)
            .environment([("OTEL_BLRP_MAX_EXPORT_BATCH_SIZE", "100")])
            .build()
            .unwrap();
        const N: u64 = 2_000;
        emit(&engine, N);
        engine.flush(Duration::from_secs(30)).unwrap();
        let s = engine.signal_stats(Signal::Logs);
        assert_eq!(
            (s.recorded, s.exported, s.dropped.total()),
            (N, N, 0),
            "{label}: {s:?}"
        );
        assert!(s.export.retries >= 5, "{label}: {:?}", s.export);
        assert_eq!(s.export.failures.unavailable, 5, "{label}: {:?}", s.export);
        let seen = received_seqs(&receiver);
        assert_eq!(seen.len() as u64, N, "{label}");
        assert!(seen.values().all(|&n| n == 1), "{label}: a record twice");
        // The traces signal saw none of it.
        assert_eq!(engine.stats().export.requests, 0, "{label}");
    }
}

/// A fresh directory for a spool, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let dir =
            std::env::temp_dir().join(format!("otlpx-e2e-logs-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        Self(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn spooled_records_go_to_the_logs_service_with_the_next_engine() {
    for protocol in [Protocol::Grpc, Protocol::HttpProtobuf] {
        let label = format!("{protocol:?}");
        let dir = TempDir::new(&label);
        let ports = unused_ports().unwrap();
        let port = match protocol {
            Protocol::Grpc => ports.0,
            _ => ports.1,
        };
        let url = format!("http://127.0.0.1:{port}");
        const N: u64 = 3_000;
        {
            // The receiver is down: everything goes to the spool.
            let engine = engine_to(url.clone(), protocol)
                .spool_dir(&dir.0)
                .build()
                .unwrap();
            emit(&engine, N);
            engine.tracer("e2e-logs", "").start("a span too").end();
            let report = engine.shutdown(Duration::from_secs(1)).unwrap();
            assert_eq!(
                (report.spooled, report.dropped),
                (N + 1, 0),
                "{label}: {report:?}"
            );
            let s = engine.signal_stats(Signal::Logs);
            assert_eq!(
                (s.recorded, s.spooled, s.spool.written),
                (N, N, N),
                "{label}: {s:?}"
            );
        }
        let receiver = receiver_on(ports);
        let engine = engine_to(url, protocol).spool_dir(&dir.0).build().unwrap();
        engine.flush(Duration::from_secs(30)).unwrap();
        let logs = engine.signal_stats(Signal::Logs);
        assert_eq!(
            (
                logs.spool.restored,
                logs.spool.delivered,
                logs.exported,
                logs.spooled
            ),
            (N, N, N, 0),
            "{label}: {logs:?}"
        );
        let traces = engine.stats();
        assert_eq!((traces.spool.restored, traces.exported), (1, 1), "{label}");
        let seen = received_seqs(&receiver);
        assert_eq!(seen.len() as u64, N, "{label}");
        assert!(seen.values().all(|&n| n == 1), "{label}: a record twice");
        assert_eq!(
            receiver.counts().spans,
            1,
            "{label}: the span at the traces service"
        );
    }
}

#[test]
fn logs_exporter_none_exports_traces_and_turns_logs_off() {
    let receiver = receiver_on((0, 0));
    let engine = engine_to(receiver.grpc_endpoint(), Protocol::Grpc)
        .environment([("OTEL_LOGS_EXPORTER", "none")])
        .build()
        .unwrap();
    emit(&engine, 10);
    engine.tracer("e2e-logs", "").start("op").end();
    engine.flush(Duration::from_secs(10)).unwrap();
    assert_eq!(receiver.counts().spans, 1);
    assert_eq!(receiver.counts().log_records, 0);
    // Logs are off, as with a no-op logger provider: recorded nowhere (they
    // would only fill their rings and drop there), counted nowhere.
    let logger = engine.logger("e2e-logs", "");
    assert!(!logger.enabled(Severity::FATAL));
    assert_eq!(engine.signal_stats(Signal::Logs).recorded, 0);
    let mut out = bytes::BytesMut::new();
    assert_eq!(engine.drain(Signal::Logs, &mut out, 512), 0);
}
