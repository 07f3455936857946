//! End to end: the otlpx engine exporting to the embedded OTLP receiver
//! over gRPC and over HTTP, uncompressed, gzip and zstd, from several
//! producer threads. Every span arrives exactly once with every field
//! intact, the receiver's counts match `Engine::stats` exactly, and a
//! receiver that is down or refuses is counted, never a panic, with
//! shutdown keeping its deadline.

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::KeyValue as PKeyValue;
use opentelemetry_proto::tonic::common::v1::any_value::Value as Av;
use opentelemetry_proto::tonic::trace::v1::Span as PSpan;
use otlpx::{
    Compression, Engine, KeyValue, Protocol, SpanContext, SpanId, SpanKind, Status, TraceFlags,
    TraceId,
};
use otlpx_bench::receiver::{self, Fault, Receiver, ReceiverConfig};
use std::collections::HashMap;
use std::time::{Duration, Instant};

const THREADS: u64 = 4;
const PER_THREAD: u64 = 1_500;

fn receiver() -> Receiver {
    Receiver::start(ReceiverConfig {
        keep_requests: true,
        ..ReceiverConfig::default()
    })
    .expect("the receiver starts")
}

fn endpoint(receiver: &Receiver, protocol: Protocol) -> String {
    match protocol {
        Protocol::Grpc => receiver.grpc_endpoint(),
        _ => receiver.http_endpoint(),
    }
}

/// The parent, link target and times of span `(t, i)`: all derived from
/// its numbers, so the test can predict every field.
fn parent_of(t: u64, i: u64) -> SpanContext {
    let mut trace = [0u8; 16];
    trace[..8].copy_from_slice(&(t + 1).to_be_bytes());
    trace[8..].copy_from_slice(&(i + 1).to_be_bytes());
    SpanContext {
        trace_id: TraceId(trace),
        span_id: SpanId((t << 32 | i | 1 << 63).to_be_bytes()),
        trace_flags: TraceFlags::SAMPLED,
        is_remote: true,
        ..SpanContext::default()
    }
}

fn link_of(t: u64, i: u64) -> SpanContext {
    let mut c = parent_of(t + 100, i);
    c.is_remote = false;
    c
}

const START: u64 = 1_700_000_000_000_000_000;

fn start_of(t: u64, i: u64) -> u64 {
    START + t * 1_000_000_000 + i * 1_000
}

fn kind_of(i: u64) -> SpanKind {
    [SpanKind::Server, SpanKind::Client, SpanKind::Internal][(i % 3) as usize]
}

fn record_all(engine: &Engine) {
    let tracer = engine.tracer("e2e", "1.2.3");
    std::thread::scope(|s| {
        for t in 0..THREADS {
            let tracer = &tracer;
            s.spawn(move || {
                for i in 0..PER_THREAD {
                    let parent = parent_of(t, i);
                    let name = format!("op-{t}-{i}");
                    let mut span = tracer
                        .span(&name)
                        .kind(kind_of(i))
                        .parent(&parent)
                        .start_time_unix_nano(start_of(t, i))
                        .start();
                    span.set_attribute("thread", t as i64);
                    span.set_attribute("seq", i as i64);
                    span.set_attribute("text", format!("value-{i}").as_str());
                    span.set_attribute("ratio", i as f64 / 4.0);
                    span.set_attribute("even", i % 2 == 0);
                    span.add_event_with_timestamp(
                        "checkpoint",
                        start_of(t, i) + 10,
                        &[KeyValue::new("n", i as i64)],
                    );
                    span.add_link(&link_of(t, i), &[KeyValue::new("why", "retry")]);
                    let description = format!("failed {i}");
                    match i % 3 {
                        0 => span.set_status(Status::error(&description)),
                        1 => span.set_status(Status::Ok),
                        _ => {}
                    }
                    span.end_with_timestamp(start_of(t, i) + 500 + i);
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

/// Checks every field of one received span against what was recorded.
fn check_span(span: &PSpan) -> (u64, u64) {
    let (t, i) = (
        int(&span.attributes, "thread"),
        int(&span.attributes, "seq"),
    );
    let parent = parent_of(t, i);
    assert_eq!(span.name, format!("op-{t}-{i}"));
    assert_eq!(span.kind, kind_of(i) as i32);
    assert_eq!(span.trace_id, parent.trace_id.0);
    assert_eq!(span.parent_span_id, parent.span_id.0);
    assert_eq!(span.span_id.len(), 8);
    assert_ne!(span.span_id, [0; 8]);
    assert_eq!(span.start_time_unix_nano, start_of(t, i));
    assert_eq!(span.end_time_unix_nano, start_of(t, i) + 500 + i);
    assert_eq!(span.attributes.len(), 5);
    assert_eq!(
        attr(&span.attributes, "text"),
        &Av::StringValue(format!("value-{i}"))
    );
    assert_eq!(
        attr(&span.attributes, "ratio"),
        &Av::DoubleValue(i as f64 / 4.0)
    );
    assert_eq!(attr(&span.attributes, "even"), &Av::BoolValue(i % 2 == 0));
    assert_eq!(span.events.len(), 1);
    let event = &span.events[0];
    assert_eq!(
        (event.name.as_str(), event.time_unix_nano),
        ("checkpoint", start_of(t, i) + 10)
    );
    assert_eq!(int(&event.attributes, "n"), i);
    assert_eq!(span.links.len(), 1);
    let link = &span.links[0];
    assert_eq!(link.trace_id, link_of(t, i).trace_id.0);
    assert_eq!(link.span_id, link_of(t, i).span_id.0);
    assert_eq!(
        attr(&link.attributes, "why"),
        &Av::StringValue("retry".into())
    );
    let status = span.status.clone().unwrap_or_default();
    match i % 3 {
        0 => assert_eq!((status.code, status.message), (2, format!("failed {i}"))),
        1 => assert_eq!(status.code, 1),
        _ => assert_eq!(status.code, 0),
    }
    assert_eq!(span.dropped_attributes_count, 0);
    (t, i)
}

/// Every span of `requests`, checked, exactly once each.
fn check_requests(requests: &[ExportTraceServiceRequest]) {
    let mut seen: HashMap<(u64, u64), u32> = HashMap::new();
    for request in requests {
        for rs in &request.resource_spans {
            let resource = rs.resource.as_ref().expect("a resource");
            assert_eq!(
                attr(&resource.attributes, "service.name"),
                &Av::StringValue("e2e-test".into())
            );
            for ss in &rs.scope_spans {
                let scope = ss.scope.as_ref().expect("a scope");
                assert_eq!(
                    (scope.name.as_str(), scope.version.as_str()),
                    ("e2e", "1.2.3")
                );
                for span in &ss.spans {
                    *seen.entry(check_span(span)).or_default() += 1;
                }
            }
        }
    }
    assert_eq!(seen.len() as u64, THREADS * PER_THREAD, "spans missing");
    assert!(seen.values().all(|&n| n == 1), "a span arrived twice");
}

fn round_trip(protocol: Protocol, compression: Compression) {
    let receiver = receiver();
    let engine = Engine::builder()
        .service_name("e2e-test")
        .endpoint(endpoint(&receiver, protocol))
        .protocol(protocol)
        .compression(compression)
        .header("x-api-key", "k-123")
        .max_batch_spans(256)
        .ring_bytes_per_cpu(8 << 20)
        .build()
        .unwrap();
    record_all(&engine);
    engine.flush(Duration::from_secs(30)).unwrap();
    engine.shutdown(Duration::from_secs(10)).unwrap();

    let total = THREADS * PER_THREAD;
    let s = engine.stats();
    let label = format!("{protocol:?} {compression:?}");
    assert_eq!((s.recorded, s.exported), (total, total), "{label}");
    assert_eq!(
        (s.in_flight, s.in_rings, s.dropped.total()),
        (0, 0, 0),
        "{label}"
    );
    let counts = receiver.counts();
    assert_eq!(counts.spans, s.exported, "{label}");
    assert_eq!(counts.requests, s.export.requests, "{label}");
    assert_eq!(counts.requests_malformed, 0, "{label}");
    check_requests(&receiver.take_requests());

    let wanted = match compression {
        Compression::Gzip => receiver::Compression::Gzip,
        Compression::Zstd => receiver::Compression::Zstd,
        _ => receiver::Compression::None,
    };
    for meta in receiver.take_request_meta() {
        assert_eq!(meta.compression, wanted, "{label}");
        let agent = meta.user_agent.unwrap_or_default();
        assert!(agent.starts_with("otlpx/"), "{label}: user-agent {agent:?}");
        assert!(
            meta.headers
                .iter()
                .any(|(k, v)| k == "x-api-key" && v == "k-123"),
            "{label}: custom header missing"
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

/// A port nobody listens on.
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

#[test]
fn a_receiver_that_is_down_is_counted_and_shutdown_keeps_its_deadline() {
    for protocol in [Protocol::Grpc, Protocol::HttpProtobuf] {
        let engine = Engine::builder()
            .endpoint(format!("http://127.0.0.1:{}", closed_port()))
            .protocol(protocol)
            .max_batch_spans(100)
            // Retried (no answer is retryable), but not for long.
            .batch_export_timeout(Duration::from_secs(2))
            .retry_backoff(Duration::from_millis(50), Duration::from_millis(200))
            .build()
            .unwrap();
        let tracer = engine.tracer("down", "");
        for _ in 0..1000 {
            tracer.start("op").end();
        }
        let report = engine.flush(Duration::from_secs(20)).unwrap_err();
        assert!(
            matches!(report, otlpx::FlushError::Dropped { .. }),
            "{protocol:?}: {report}"
        );
        let s = engine.stats();
        // Ten requests for eight slots: batches waiting in the rings evict
        // the oldest requests waiting for a retry; the rest fail for good.
        let d = &s.dropped;
        assert_eq!(s.exported, 0, "{protocol:?}");
        assert_eq!(d.export_failed + d.evicted, 1000, "{protocol:?}: {d:?}");
        let e = &s.export;
        assert_eq!(e.requests, 10, "{protocol:?}");
        assert!(e.retries >= 8, "{protocol:?}: {e:?}");
        // Every attempt failed: refused, or (the last one, cut short by
        // the batch export timeout) timed out.
        let f = &e.failures;
        assert_eq!(f.total(), 10 + e.retries, "{protocol:?}: {f:?}");
        assert_eq!(f.unavailable + f.timeout, f.total(), "{protocol:?}: {f:?}");
        let error = engine.last_export_error().unwrap();
        assert!(!error.is_empty(), "{protocol:?}");

        for _ in 0..100 {
            tracer.start("op").end();
        }
        let start = Instant::now();
        let _ = engine.shutdown(Duration::from_secs(2));
        assert!(start.elapsed() < Duration::from_secs(4), "{protocol:?}");
        let s = engine.stats();
        assert_eq!(s.recorded, 1100);
        assert_eq!(s.exported + s.dropped.total() + s.in_rings, 1100);
        assert_eq!(s.in_flight, 0);
    }
}

#[test]
fn refusals_and_partial_successes_are_counted() {
    for protocol in [Protocol::Grpc, Protocol::HttpProtobuf] {
        let receiver = receiver();
        let engine = |receiver: &Receiver| {
            Engine::builder()
                .endpoint(endpoint(receiver, protocol))
                .protocol(protocol)
                .max_batch_spans(50)
                .build()
                .unwrap()
        };
        receiver.set_fault(Fault::Status {
            grpc_code: 3,
            http_status: 400,
            message: "bad data".into(),
        });
        let refused = engine(&receiver);
        let tracer = refused.tracer("refused", "");
        for _ in 0..200 {
            tracer.start("op").end();
        }
        let e = refused.flush(Duration::from_secs(10)).unwrap_err();
        assert!(e.to_string().contains("export_failed 200"), "{e}");
        let s = refused.stats();
        assert_eq!(
            (s.exported, s.dropped.export_failed),
            (0, 200),
            "{protocol:?}"
        );
        assert_eq!(s.export.failures.rejected, 4, "{protocol:?}");
        let error = refused.last_export_error().unwrap();
        assert!(error.contains("bad data"), "{protocol:?}: {error}");

        receiver.set_fault(Fault::PartialSuccess {
            rejected: 5,
            message: "too old".into(),
        });
        let partial = engine(&receiver);
        let tracer = partial.tracer("partial", "");
        for _ in 0..200 {
            tracer.start("op").end();
        }
        // A partial success drops what the receiver refused: the flush
        // says so, though every request was answered.
        match partial.flush(Duration::from_secs(10)) {
            Err(otlpx::FlushError::Dropped { report, .. }) => {
                assert_eq!((report.delivered, report.dropped.rejected), (180, 20));
            }
            other => panic!("{protocol:?}: {other:?}"),
        }
        let s = partial.stats();
        assert_eq!((s.exported, s.dropped.rejected), (180, 20), "{protocol:?}");
        assert_eq!(s.export.failures.total(), 0, "{protocol:?}");
    }
}

/// An application with its own tokio runtime: the engine neither needs nor
/// uses it, and building, using and dropping the engine inside one works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_engine_inside_the_applications_runtime_builds_exports_and_drops() {
    let receiver = receiver();
    let engine = Engine::builder()
        .endpoint(receiver.grpc_endpoint())
        .build()
        .unwrap();
    let tracer = engine.tracer("in-runtime", "");
    for _ in 0..100 {
        tracer.start("op").end();
    }
    // The last handle dropped on a runtime thread: flushes and stops
    // without touching this runtime (and without panicking in it).
    drop(tracer);
    drop(engine);
    assert!(receiver.wait_for_spans(100, Duration::from_secs(10)));
    assert_eq!(receiver.counts().spans, 100);
}
