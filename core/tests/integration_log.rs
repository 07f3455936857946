//! The `log` bridge as applications run it: installed once as the
//! process's logger, records arrive as OTLP log records (severity, body
//! literal or formatted, typed key-values, code location, the target as
//! scope) correlated with the otlpx span current on their thread (an
//! attached otlpx span, or an entered `tracing` span with the otlpx
//! layer); the level filter applies; the engine's own targets, its
//! dependencies' and its threads are never recorded.
//!
//! `log`'s logger is global: one test function runs every check, in
//! order, against one engine.

use bytes::BytesMut;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{KeyValue as PKv, any_value::Value as Av};
use opentelemetry_proto::tonic::logs::v1::LogRecord as PLog;
use otlpx::{Engine, Signal};
use prost::Message;
use tracing_subscriber::prelude::*;

fn logs(engine: &Engine) -> Vec<(String, PLog)> {
    let mut out = BytesMut::new();
    let mut records = Vec::new();
    while engine.drain(Signal::Logs, &mut out, 512) > 0 {
        let req = ExportLogsServiceRequest::decode(&out[..]).unwrap();
        for rl in req.resource_logs {
            for sl in rl.scope_logs {
                let scope = sl.scope.map(|s| s.name).unwrap_or_default();
                records.extend(sl.log_records.into_iter().map(|r| (scope.clone(), r)));
            }
        }
    }
    records
}

fn attr<'a>(attributes: &'a [PKv], key: &str) -> Option<&'a Av> {
    attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref()?.value.as_ref())
}

fn s(v: &str) -> Av {
    Av::StringValue(v.to_owned())
}

fn body(r: &PLog) -> Option<&Av> {
    r.body.as_ref().and_then(|b| b.value.as_ref())
}

#[test]
fn log_records_through_the_bridge() {
    let engine = Engine::builder()
        .export(false)
        .ring_bytes_per_cpu(1 << 20)
        .build()
        .unwrap();
    otlpx::log::init(&engine, log::LevelFilter::Debug).unwrap();
    assert!(
        otlpx::log::init(&engine, log::LevelFilter::Debug).is_err(),
        "one logger per process"
    );

    // Severity, body, location, scope.
    let line = line!() + 1;
    log::info!("plain");
    log::warn!(order = 1042, user = "ada", ratio = 0.5, ok = true, id:? = (1, 2); "retried {} times", 2);
    log::debug!(target: "shop::cart", "debug");
    log::trace!("below the max level");
    let records = logs(&engine);
    assert_eq!(records.len(), 3, "{records:#?}");
    let (scope, plain) = &records[0];
    assert_eq!(scope, "integration_log", "the target is the scope");
    assert_eq!(
        (plain.severity_number, plain.severity_text.as_str()),
        (9, "INFO")
    );
    assert_eq!(body(plain), Some(&s("plain")));
    assert_eq!(
        attr(&plain.attributes, "code.line.number"),
        Some(&Av::IntValue(line.into()))
    );
    assert_eq!(
        attr(&plain.attributes, "code.namespace"),
        Some(&s("integration_log"))
    );
    match attr(&plain.attributes, "code.file.path") {
        Some(Av::StringValue(f)) => assert!(f.ends_with("integration_log.rs"), "{f}"),
        other => panic!("code.file.path: {other:?}"),
    }
    assert!(plain.trace_id.is_empty(), "nothing current: no correlation");
    let warn = &records[1].1;
    assert_eq!(warn.severity_number, 13);
    assert_eq!(body(warn), Some(&s("retried 2 times")));
    let a = &warn.attributes;
    assert_eq!(attr(a, "order"), Some(&Av::IntValue(1042)));
    assert_eq!(attr(a, "user"), Some(&s("ada")));
    assert_eq!(attr(a, "ratio"), Some(&Av::DoubleValue(0.5)));
    assert_eq!(attr(a, "ok"), Some(&Av::BoolValue(true)));
    assert_eq!(attr(a, "id"), Some(&s("(1, 2)")));
    assert_eq!(records[2].0, "shop::cart");
    assert_eq!(records[2].1.severity_number, 5);

    // Correlation with the current otlpx span.
    let tracer = engine.tracer("checkout", "");
    let context = tracer.in_span("request", |span| {
        log::info!("inside");
        span.context().clone()
    });
    let records = logs(&engine);
    assert_eq!(records.len(), 1);
    let inside = &records[0].1;
    assert_eq!(inside.severity_number, 9);
    assert_eq!(inside.trace_id, context.trace_id.0);
    assert_eq!(inside.span_id, context.span_id.0);
    assert_eq!(inside.flags, 1);

    // … and with an entered `tracing` span, through the otlpx layer.
    let subscriber = tracing_subscriber::registry().with(otlpx::tracing::layer(&engine));
    tracing::subscriber::with_default(subscriber, || {
        tracing::info_span!("tracing span").in_scope(|| log::error!("in a tracing span"));
    });
    let mut out = BytesMut::new();
    assert_eq!(
        engine.drain_traces(&mut out, 512),
        2,
        "request and tracing span"
    );
    let records = logs(&engine);
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].1.severity_number, 17);
    assert_eq!(records[0].1.span_id.len(), 8, "correlated");

    // The engine's targets, its dependencies' and its threads: never.
    log::warn!(target: "otlpx::worker", "export failed");
    log::warn!(target: "otlpx", "configuration");
    log::info!(target: "h2", "frame");
    log::info!(target: "rustls::client::hs", "handshake");
    log::info!(target: "hyper_util::client", "connect");
    assert!(!log::log_enabled!(target: "tonic::transport", log::Level::Error));
    assert!(log::log_enabled!(target: "app", log::Level::Error));
    std::thread::Builder::new()
        .name("otlpx-io".into())
        .spawn(|| {
            log::error!(target: "app", "on an engine thread");
            assert!(!log::log_enabled!(target: "app", log::Level::Error));
        })
        .unwrap()
        .join()
        .unwrap();
    log::info!(target: "hyperfine", "not a dependency: recorded");
    let records = logs(&engine);
    let got: Vec<_> = records
        .iter()
        .map(|(scope, r)| (scope.as_str(), body(r).cloned()))
        .collect();
    assert_eq!(got, [("hyperfine", Some(s("not a dependency: recorded")))]);

    // An engine that does not export: flushing is a no-op, not a wait.
    log::logger().flush();
}
