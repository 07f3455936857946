//! The metrics signal through the engine, written by the crate-private door
//! its API will use (`crate::metrics::write_metric`): metric records frame
//! as an `ExportMetricsServiceRequest` (decoded with `opentelemetry-proto`)
//! with the resource and their scopes; exported, a collection leaves
//! promptly, in one request, though the other signals' delays are long,
//! and is accounted exactly; metrics off beside exported traces record
//! nothing. (Against the embedded receiver, over gRPC and HTTP:
//! `tests/tests/e2e_metrics.rs`.)

use super::*;
use crate::metrics::write_metric;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue as PKeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, Gauge, Histogram, HistogramDataPoint, Metric, NumberDataPoint, Sum,
    metric::Data, number_data_point,
};
use prost::Message;

const TIME_UNIX_NANO: u64 = 1_700_000_000_000_000_000;

fn attribute(key: &str, value: &str) -> PKeyValue {
    PKeyValue {
        key: key.to_owned(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.to_owned())),
        }),
        ..Default::default()
    }
}

fn point(value: number_data_point::Value) -> NumberDataPoint {
    NumberDataPoint {
        attributes: vec![attribute("host", "a")],
        start_time_unix_nano: TIME_UNIX_NANO - 60_000_000_000,
        time_unix_nano: TIME_UNIX_NANO,
        value: Some(value),
        ..Default::default()
    }
}

/// Metric `i` of a collection: a gauge, a monotonic cumulative sum or a
/// histogram, in turn.
fn metric(i: usize) -> Metric {
    let data = match i % 3 {
        0 => Data::Gauge(Gauge {
            data_points: vec![point(number_data_point::Value::AsDouble(i as f64 / 2.0))],
        }),
        1 => Data::Sum(Sum {
            data_points: vec![point(number_data_point::Value::AsInt(i as i64))],
            aggregation_temporality: AggregationTemporality::Cumulative as i32,
            is_monotonic: true,
        }),
        _ => Data::Histogram(Histogram {
            data_points: vec![HistogramDataPoint {
                attributes: vec![attribute("route", "/cart")],
                time_unix_nano: TIME_UNIX_NANO,
                count: 6,
                sum: Some(21.5),
                bucket_counts: vec![1, 2, 3],
                explicit_bounds: vec![1.0, 5.0],
                ..Default::default()
            }],
            aggregation_temporality: AggregationTemporality::Delta as i32,
        }),
    };
    Metric {
        name: format!("app.metric.{i}"),
        description: "what it measures".to_owned(),
        unit: "ms".to_owned(),
        data: Some(data),
        ..Default::default()
    }
}

/// Writes `metric` as a collection will: encoded once, into the metrics'
/// rings, under its scope.
fn record(engine: &Engine, scope: (&str, &str), metric: &Metric) {
    let tag = engine.register_scope(ScopeBytes::new(scope.0, scope.1, "", &[]));
    write_metric(&engine.inner.recorder, tag, &metric.encode_to_vec()).unwrap();
}

fn service_name(request: &ExportMetricsServiceRequest) -> Option<String> {
    let resource = request.resource_metrics[0].resource.as_ref()?;
    resource
        .attributes
        .iter()
        .find(|kv| kv.key == "service.name")
        .and_then(|kv| match kv.value.as_ref()?.value.as_ref()? {
            any_value::Value::StringValue(s) => Some(s.clone()),
            _ => None,
        })
}

/// The request's metrics by scope: (name, version, metrics).
fn by_scope(request: &ExportMetricsServiceRequest) -> Vec<(String, String, Vec<Metric>)> {
    assert_eq!(request.resource_metrics.len(), 1);
    request.resource_metrics[0]
        .scope_metrics
        .iter()
        .map(|sm| {
            let scope = sm.scope.clone().unwrap_or_default();
            (scope.name, scope.version, sm.metrics.clone())
        })
        .collect()
}

#[test]
fn metric_records_frame_as_an_export_metrics_service_request() {
    let engine = Engine::builder()
        .service_name("meter")
        .export(false)
        .build()
        .unwrap();
    record(&engine, ("app.db", "1.2.0"), &metric(0));
    record(&engine, ("app.http", ""), &metric(1));
    record(&engine, ("app.db", "1.2.0"), &metric(2));

    // No other signal's rings hold them.
    let mut out = BytesMut::new();
    for signal in [Signal::Traces, Signal::Logs] {
        assert_eq!(engine.drain(signal, &mut out, 512), 0, "{signal}");
    }
    assert_eq!(engine.drain(Signal::Metrics, &mut out, 512), 3);
    let request = ExportMetricsServiceRequest::decode(&out[..]).unwrap();
    assert_eq!(service_name(&request).as_deref(), Some("meter"));
    assert_eq!(
        by_scope(&request),
        [
            ("app.db".into(), "1.2.0".into(), vec![metric(0), metric(2)]),
            ("app.http".into(), String::new(), vec![metric(1)]),
        ]
    );
    let s = engine.signal_stats(Signal::Metrics);
    assert_eq!((s.recorded, s.drained_by_caller, s.in_rings), (3, 3, 0));
    assert_eq!(engine.signal_stats(Signal::Traces).recorded, 0);
    assert_eq!(engine.signal_stats(Signal::Logs).recorded, 0);
}

#[test]
fn a_metric_larger_than_half_a_ring_is_dropped_and_counted() {
    let engine = Engine::builder()
        .export(false)
        .rings(1)
        .ring_bytes_per_cpu(4096)
        .build()
        .unwrap();
    let tag = engine.register_scope(ScopeBytes::new("big", "", "", &[]));
    let r = write_metric(&engine.inner.recorder, tag, &[0; 4096]);
    assert_eq!(r, Err(crate::ring::WriteError::TooLarge));
    let s = engine.signal_stats(Signal::Metrics);
    // Handed to the engine, and dropped there: counted both ways.
    assert_eq!((s.recorded, s.dropped.too_large, s.in_rings), (1, 1, 0));
}

#[cfg(feature = "export")]
mod export {
    use super::*;
    use crate::export::transport::{ExportFuture, ExportRequest, ExportResponse, Transport};
    use std::time::Instant;

    /// Keeps every request, and accepts it.
    #[derive(Default)]
    struct Capture(Mutex<Vec<ExportRequest>>);

    impl Transport for Capture {
        fn export(&self, request: ExportRequest) -> ExportFuture {
            self.0
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(request);
            Box::pin(async { Ok(ExportResponse::accepted()) })
        }
    }

    impl Capture {
        fn requests(&self) -> Vec<ExportRequest> {
            self.0
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone()
        }
    }

    #[test]
    fn a_collection_leaves_promptly_in_one_request_and_is_accounted() {
        let capture = Arc::new(Capture::default());
        // The other signals wait 30 s for their batches: only the metrics'
        // own policy can send the collection sooner.
        let engine = Engine::builder()
            .service_name("meter")
            .transport(Arc::clone(&capture) as Arc<dyn Transport>)
            .workers(1)
            .pin_workers(false)
            .schedule_delay(Duration::from_secs(30))
            .environment([("OTEL_BLRP_SCHEDULE_DELAY", "30000")])
            .build()
            .unwrap();
        // Asleep by now, with nothing to wake it but a record.
        std::thread::sleep(Duration::from_millis(50));
        const COLLECTION: usize = 60;
        let start = Instant::now();
        for i in 0..COLLECTION {
            record(&engine, ("app", "1.0"), &metric(i));
        }
        // No flush: the first record wakes the worker, and the request
        // goes `METRIC_SCHEDULE_DELAY_MS` later with the rest.
        while capture.requests().is_empty() && start.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(Duration::from_millis(5));
        }
        let took = start.elapsed();
        assert!(
            took >= Duration::from_millis(crate::config::METRIC_SCHEDULE_DELAY_MS),
            "sent after {took:?}, before the rest of the burst could come"
        );
        // Well before the traces' and logs' 30 s, and before the 5 s a
        // missed doorbell would cost.
        assert!(took < Duration::from_secs(3), "sent after {took:?}");
        let requests = capture.requests();
        assert_eq!(requests.len(), 1, "one request for the collection");
        let request = &requests[0];
        assert_eq!(
            (request.signal, request.items),
            (Signal::Metrics, COLLECTION)
        );
        let decoded = ExportMetricsServiceRequest::decode(&request.body[..]).unwrap();
        assert_eq!(service_name(&decoded).as_deref(), Some("meter"));
        assert_eq!(
            by_scope(&decoded),
            [(
                "app".into(),
                "1.0".into(),
                (0..COLLECTION).map(metric).collect::<Vec<_>>()
            )]
        );

        engine.flush(Duration::from_secs(5)).unwrap();
        let s = engine.signal_stats(Signal::Metrics);
        assert_eq!(
            (s.recorded, s.exported, s.in_flight, s.in_rings, s.spooled),
            (COLLECTION as u64, COLLECTION as u64, 0, 0, 0)
        );
        assert_eq!(s.dropped.total(), 0);
        assert_eq!(s.export.requests, 1);
        for signal in [Signal::Traces, Signal::Logs] {
            let other = engine.signal_stats(signal);
            assert_eq!((other.recorded, other.export.requests), (0, 0), "{signal}");
        }
        engine.shutdown(Duration::from_secs(5)).unwrap();
    }

    #[test]
    fn metrics_off_beside_exported_traces_record_nothing() {
        let capture = Arc::new(Capture::default());
        let engine = Engine::builder()
            .transport(Arc::clone(&capture) as Arc<dyn Transport>)
            .environment([("OTEL_METRICS_EXPORTER", "none")])
            .build()
            .unwrap();
        record(&engine, ("app", ""), &metric(0));
        engine.tracer("app", "").start("work").end();
        engine.flush(Duration::from_secs(5)).unwrap();
        assert_eq!(engine.signal_stats(Signal::Metrics).recorded, 0);
        assert_eq!(engine.stats().exported, 1);
        assert!(
            capture
                .requests()
                .iter()
                .all(|r| r.signal == Signal::Traces)
        );
    }
}
