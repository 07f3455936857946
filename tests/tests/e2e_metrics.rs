//! Metrics end to end, against the embedded receiver. There is no metrics
//! API yet: each test writes encoded OTLP `Metric` messages into the
//! metrics' rings as that API's collections will, through
//! `Engine::__not_api_record_metric` (hidden, and named as not API: the
//! receiver lives in another crate, so these tests cannot reach the
//! crate-private door itself). From there they must travel the pipeline
//! as spans and log records do: every metric arrives exactly once at the
//! receiver's MetricsService over gRPC and at `/v1/metrics` over HTTP,
//! uncompressed or not, decodes with `opentelemetry-proto` as an
//! `ExportMetricsServiceRequest` with its resource and scope, and
//! `signal_stats(Signal::Metrics)` accounts for each, equal to what the
//! receiver counted, while the same engine's spans and log records arrive
//! at their own services. The per-signal settings route metrics alone;
//! `OTEL_METRICS_EXPORTER=none` turns them off; what could not be sent is
//! spooled and sent to the metrics service by the next engine.

mod common;

use common::receiver_on;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue as PKeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, Gauge, Histogram, HistogramDataPoint, Metric, NumberDataPoint, Sum,
    metric::Data, number_data_point,
};
use otlpx::logs::{LogRecord, Severity};
use otlpx::{Compression, Engine, EngineBuilder, Protocol, Signal};
use otlpx_bench::receiver::{Receiver, Transport, unused_ports};
use prost::Message;
use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

/// Threads collecting at once, and metrics each collects.
const THREADS: usize = 2;
const PER_THREAD: usize = 300;

const TIME_UNIX_NANO: u64 = 1_700_000_000_000_000_000;

fn endpoint(receiver: &Receiver, protocol: Protocol) -> String {
    match protocol {
        Protocol::Grpc => receiver.grpc_endpoint(),
        _ => receiver.http_endpoint(),
    }
}

fn engine_to(endpoint: String, protocol: Protocol) -> EngineBuilder {
    Engine::builder()
        .service_name("e2e-metrics")
        .endpoint(endpoint)
        .protocol(protocol)
        .rings(2)
        .retry_backoff(Duration::from_millis(50), Duration::from_millis(200))
}

fn text(key: &str, value: &str) -> PKeyValue {
    PKeyValue {
        key: key.to_owned(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.to_owned())),
        }),
        ..PKeyValue::default()
    }
}

/// Metric `(t, i)`: a gauge, a monotonic cumulative sum or a delta
/// histogram, in turn, named after `t` and `i`.
fn metric(t: usize, i: usize) -> Metric {
    let point = |value| NumberDataPoint {
        attributes: vec![text("host", "a"), text("thread", &t.to_string())],
        start_time_unix_nano: TIME_UNIX_NANO - 60_000_000_000,
        time_unix_nano: TIME_UNIX_NANO,
        value: Some(value),
        ..NumberDataPoint::default()
    };
    let data = match i % 3 {
        0 => Data::Gauge(Gauge {
            data_points: vec![point(number_data_point::Value::AsDouble(i as f64 / 4.0))],
        }),
        1 => Data::Sum(Sum {
            data_points: vec![point(number_data_point::Value::AsInt(i as i64))],
            aggregation_temporality: AggregationTemporality::Cumulative as i32,
            is_monotonic: true,
        }),
        _ => Data::Histogram(Histogram {
            data_points: vec![HistogramDataPoint {
                attributes: vec![text("route", "/cart")],
                time_unix_nano: TIME_UNIX_NANO,
                count: 6,
                sum: Some(i as f64),
                bucket_counts: vec![1, 2, 3],
                explicit_bounds: vec![1.0, 5.0],
                min: Some(0.5),
                max: Some(9.0),
                ..HistogramDataPoint::default()
            }],
            aggregation_temporality: AggregationTemporality::Delta as i32,
        }),
    };
    Metric {
        name: format!("e2e.metric.{t}.{i}"),
        description: "what it measures".to_owned(),
        unit: "ms".to_owned(),
        data: Some(data),
        ..Metric::default()
    }
}

/// The scope a collection of thread `t` writes under.
fn scope(t: usize) -> (String, &'static str) {
    (format!("e2e.meter.{t}"), "3.1.0")
}

/// `THREADS` collections at once, each of `PER_THREAD` metrics.
fn collect_all(engine: &Engine) {
    std::thread::scope(|s| {
        for t in 0..THREADS {
            s.spawn(move || {
                let (name, version) = scope(t);
                for i in 0..PER_THREAD {
                    let bytes = metric(t, i).encode_to_vec();
                    engine
                        .__not_api_record_metric(&name, version, &bytes)
                        .unwrap();
                }
            });
        }
    });
}

/// Every metric of `requests`, each checked against what was written, its
/// resource and its scope; how often each `(thread, index)` arrived.
fn received(requests: &[ExportMetricsServiceRequest]) -> HashMap<(usize, usize), u64> {
    let mut seen = HashMap::new();
    for request in requests {
        for rm in &request.resource_metrics {
            let resource = rm.resource.as_ref().expect("a resource");
            assert!(
                resource
                    .attributes
                    .contains(&text("service.name", "e2e-metrics")),
                "{:?}",
                resource.attributes
            );
            for sm in &rm.scope_metrics {
                let scope_of = sm.scope.as_ref().expect("a scope");
                for m in &sm.metrics {
                    let parts: Vec<usize> = m.name["e2e.metric.".len()..]
                        .split('.')
                        .map(|n| n.parse().unwrap())
                        .collect();
                    let (t, i) = (parts[0], parts[1]);
                    let (name, version) = scope(t);
                    assert_eq!(
                        (scope_of.name.as_str(), scope_of.version.as_str()),
                        (name.as_str(), version)
                    );
                    assert_eq!(m, &metric(t, i), "metric {t}.{i} arrived changed");
                    *seen.entry((t, i)).or_insert(0) += 1;
                }
            }
        }
    }
    seen
}

fn assert_each_once(seen: &HashMap<(usize, usize), u64>, total: usize, label: &str) {
    assert_eq!(seen.len(), total, "{label}: metrics missing");
    assert!(seen.values().all(|&n| n == 1), "{label}: a metric twice");
}

fn round_trip(protocol: Protocol, compression: Compression) {
    let label = format!("{protocol:?} {compression:?}");
    let receiver = receiver_on((0, 0));
    let engine = engine_to(endpoint(&receiver, protocol), protocol)
        .compression(compression)
        .build()
        .unwrap();
    collect_all(&engine);
    engine.tracer("e2e-metrics", "").start("a span").end();
    engine
        .logger("e2e-metrics", "")
        .emit(&LogRecord::new(Severity::INFO).body("a log record"));
    engine.flush(Duration::from_secs(30)).unwrap();
    engine.shutdown(Duration::from_secs(10)).unwrap();

    let total = (THREADS * PER_THREAD) as u64;
    let metrics = engine.signal_stats(Signal::Metrics);
    assert_eq!(
        (metrics.recorded, metrics.exported),
        (total, total),
        "{label}: {metrics:?}"
    );
    assert_eq!(
        (
            metrics.in_flight,
            metrics.in_rings,
            metrics.spooled,
            metrics.dropped.total()
        ),
        (0, 0, 0, 0),
        "{label}"
    );
    assert!(metrics.export.requests >= 1, "{label}");
    assert!(metrics.export.bytes_sent > 0, "{label}");
    let counts = receiver.counts();
    assert_eq!(counts.metrics, metrics.exported, "{label}");
    assert_eq!(counts.metrics_requests, metrics.export.requests, "{label}");
    assert_eq!(counts.requests_malformed, 0, "{label}");
    // The other signals at their own services, on their own requests.
    let traces = engine.signal_stats(Signal::Traces);
    let logs = engine.signal_stats(Signal::Logs);
    assert_eq!((traces.exported, counts.spans), (1, 1), "{label}");
    assert_eq!((logs.exported, counts.log_records), (1, 1), "{label}");
    assert_eq!(counts.requests, traces.export.requests, "{label}");
    assert_eq!(counts.logs_requests, logs.export.requests, "{label}");

    let seen = received(&receiver.take_metric_requests());
    assert_each_once(&seen, THREADS * PER_THREAD, &label);
    let transport = match protocol {
        Protocol::Grpc => Transport::Grpc,
        _ => Transport::Http,
    };
    let meta: Vec<_> = receiver
        .take_request_meta()
        .into_iter()
        .filter(|m| m.metrics > 0)
        .collect();
    assert_eq!(meta.len() as u64, metrics.export.requests, "{label}");
    assert!(
        meta.iter()
            .all(|m| m.signal == otlpx_bench::receiver::Signal::Metrics
                && m.transport == transport
                && m.accepted),
        "{label}: {meta:?}"
    );
}

#[test]
fn grpc_uncompressed() {
    round_trip(Protocol::Grpc, Compression::None);
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

/// `OTEL_EXPORTER_OTLP_METRICS_*` over the generic settings: metrics go
/// alone to their own receiver, over their own protocol, to their own
/// endpoint as given (`/v1/metrics` included), with their own headers;
/// spans go where the generic settings say.
#[test]
fn per_signal_settings_send_metrics_alone_to_their_endpoint() {
    let traces_to = receiver_on((0, 0));
    let metrics_to = receiver_on((0, 0));
    let metrics_url = format!("{}/v1/metrics", metrics_to.http_endpoint());
    let traces_url = traces_to.grpc_endpoint();
    // All from the environment: the builder's generic endpoint would beat
    // the environment's metrics one (the builder beats the environment).
    let engine = Engine::builder()
        .service_name("e2e-metrics")
        .environment([
            ("OTEL_EXPORTER_OTLP_ENDPOINT", traces_url.as_str()),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
            ("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", metrics_url.as_str()),
            ("OTEL_EXPORTER_OTLP_METRICS_PROTOCOL", "http/protobuf"),
            ("OTEL_EXPORTER_OTLP_METRICS_COMPRESSION", "gzip"),
            (
                "OTEL_EXPORTER_OTLP_METRICS_HEADERS",
                "x-tenant=metrics-team",
            ),
        ])
        .build()
        .unwrap();
    assert_eq!(
        engine
            .config()
            .get("exporter.metrics.endpoint")
            .unwrap()
            .value,
        metrics_url
    );
    let bytes = metric(0, 1).encode_to_vec();
    for _ in 0..3 {
        engine
            .__not_api_record_metric("e2e.meter.0", "3.1.0", &bytes)
            .unwrap();
    }
    engine.tracer("e2e-metrics", "").start("a span").end();
    engine.flush(Duration::from_secs(30)).unwrap();

    let (t, m) = (traces_to.counts(), metrics_to.counts());
    assert_eq!((t.spans, t.metrics, t.metrics_requests), (1, 0, 0));
    assert_eq!((m.spans, m.metrics), (0, 3));
    let meta = metrics_to.take_request_meta();
    assert!(!meta.is_empty());
    for m in &meta {
        assert_eq!(m.transport, Transport::Http);
        assert_eq!(m.compression, otlpx_bench::receiver::Compression::Gzip);
        assert!(
            m.headers
                .contains(&("x-tenant".to_owned(), "metrics-team".to_owned())),
            "{:?}",
            m.headers
        );
    }
    let s = engine.signal_stats(Signal::Metrics);
    assert_eq!((s.recorded, s.exported), (3, 3));
}

#[test]
fn metrics_exporter_none_exports_traces_and_turns_metrics_off() {
    let receiver = receiver_on((0, 0));
    let engine = engine_to(receiver.grpc_endpoint(), Protocol::Grpc)
        .environment([("OTEL_METRICS_EXPORTER", "none")])
        .build()
        .unwrap();
    let bytes = metric(0, 0).encode_to_vec();
    engine
        .__not_api_record_metric("e2e.meter.0", "", &bytes)
        .unwrap();
    engine.tracer("e2e-metrics", "").start("op").end();
    engine.flush(Duration::from_secs(10)).unwrap();
    assert_eq!(receiver.counts().spans, 1);
    assert_eq!(receiver.counts().metrics_requests, 0);
    // Off beside an exported signal: recorded nowhere, counted nowhere.
    assert_eq!(engine.signal_stats(Signal::Metrics).recorded, 0);
    let mut out = bytes::BytesMut::new();
    assert_eq!(engine.drain(Signal::Metrics, &mut out, 512), 0);
}

/// A fresh directory for a spool, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let dir =
            std::env::temp_dir().join(format!("otlpx-e2e-metrics-{}-{name}", std::process::id()));
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
fn spooled_metrics_go_to_the_metrics_service_with_the_next_engine() {
    for protocol in [Protocol::Grpc, Protocol::HttpProtobuf] {
        let label = format!("{protocol:?}");
        let dir = TempDir::new(&label);
        let ports = unused_ports().unwrap();
        let port = match protocol {
            Protocol::Grpc => ports.0,
            _ => ports.1,
        };
        let url = format!("http://127.0.0.1:{port}");
        let total = (THREADS * PER_THREAD) as u64;
        {
            // The receiver is down: everything goes to the spool.
            let engine = engine_to(url.clone(), protocol)
                .spool_dir(&dir.0)
                .build()
                .unwrap();
            collect_all(&engine);
            engine.tracer("e2e-metrics", "").start("a span too").end();
            let report = engine.shutdown(Duration::from_secs(1)).unwrap();
            assert_eq!(
                (report.spooled, report.dropped),
                (total + 1, 0),
                "{label}: {report:?}"
            );
            let s = engine.signal_stats(Signal::Metrics);
            assert_eq!(
                (s.recorded, s.spooled, s.spool.written),
                (total, total, total),
                "{label}: {s:?}"
            );
        }
        let receiver = receiver_on(ports);
        let engine = engine_to(url, protocol).spool_dir(&dir.0).build().unwrap();
        engine.flush(Duration::from_secs(30)).unwrap();
        let metrics = engine.signal_stats(Signal::Metrics);
        assert_eq!(
            (
                metrics.spool.restored,
                metrics.spool.delivered,
                metrics.exported,
                metrics.spooled
            ),
            (total, total, total, 0),
            "{label}: {metrics:?}"
        );
        let traces = engine.stats();
        assert_eq!((traces.spool.restored, traces.exported), (1, 1), "{label}");
        let seen = received(&receiver.take_metric_requests());
        assert_each_once(&seen, THREADS * PER_THREAD, &label);
        let counts = receiver.counts();
        assert_eq!((counts.metrics, counts.spans), (total, 1), "{label}");
    }
}
