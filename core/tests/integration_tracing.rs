//! The `tracing` layer as applications run it, decoded with the official
//! OTLP types: events as log records (typed fields, body, severity,
//! location, scope from the target) correlated with their span; spans with
//! their parents across nesting, explicit parents and roots, `record()`ed
//! fields, the `otel.*` and `error` conventions, links, a remote parent
//! from a `traceparent`; otlpx spans inside `tracing` spans; a span entered
//! on two threads; a `fmt` layer and an `EnvFilter` (and a per-layer
//! filter) beside it; the engine's own targets, its dependencies' and its
//! threads never recorded; and no allocation per event once warm.
//!
//! Every test installs its subscriber with `with_default`: no global state.

use bytes::BytesMut;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{KeyValue as PKv, any_value::Value as Av};
use opentelemetry_proto::tonic::logs::v1::LogRecord as PLog;
use opentelemetry_proto::tonic::trace::v1::{Span as PSpan, span::SpanKind as PKind};
use otlpx::tracing::OtlpxSpanExt as _;
use otlpx::{Engine, Signal, SpanContext};
use prost::Message;
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::io::Write;
use std::sync::{Arc, Mutex};
use tracing::Dispatch;
use tracing_subscriber::filter::{EnvFilter, LevelFilter};
use tracing_subscriber::prelude::*;

fn engine() -> Engine {
    Engine::builder()
        .export(false)
        .ring_bytes_per_cpu(1 << 20)
        .build()
        .unwrap()
}

/// Runs `f` with a subscriber of only otlpx's layer.
fn with_layer<T>(engine: &Engine, f: impl FnOnce() -> T) -> T {
    let subscriber = tracing_subscriber::registry().with(otlpx::tracing::layer(engine));
    tracing::subscriber::with_default(subscriber, f)
}

/// Every log record so far, with its scope's name.
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

/// Every span so far, with its scope's name, in the order they ended.
fn spans(engine: &Engine) -> Vec<(String, PSpan)> {
    let mut out = BytesMut::new();
    let mut spans = Vec::new();
    while engine.drain_traces(&mut out, 512) > 0 {
        let req = ExportTraceServiceRequest::decode(&out[..]).unwrap();
        for rs in req.resource_spans {
            for ss in rs.scope_spans {
                let scope = ss.scope.map(|s| s.name).unwrap_or_default();
                spans.extend(ss.spans.into_iter().map(|s| (scope.clone(), s)));
            }
        }
    }
    spans.sort_by_key(|(_, s)| s.end_time_unix_nano);
    spans
}

fn span<'a>(spans: &'a [(String, PSpan)], name: &str) -> &'a PSpan {
    let found: Vec<_> = spans.iter().filter(|(_, s)| s.name == name).collect();
    assert_eq!(found.len(), 1, "one span {name:?} in {spans:#?}");
    &found[0].1
}

fn attr<'a>(attributes: &'a [PKv], key: &str) -> Option<&'a Av> {
    attributes
        .iter()
        .rev()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref()?.value.as_ref())
}

fn s(v: &str) -> Av {
    Av::StringValue(v.to_owned())
}

fn body(r: &PLog) -> Option<&Av> {
    r.body.as_ref().and_then(|b| b.value.as_ref())
}

#[derive(Debug)]
#[allow(dead_code)] // read through `Debug` only
struct Order {
    id: u32,
}

#[test]
fn events_become_records_with_typed_fields() {
    let engine = engine();
    let line = with_layer(&engine, || {
        let line = line!() + 1;
        tracing::info!(
            count = 3,
            ratio = 0.5,
            ok = true,
            big = u64::MAX,
            small = 7u64,
            wide = 5i128,
            user = "ada",
            order = ?Order { id: 7 },
            shown = %"displayed",
            "charged {} cards",
            2
        );
        tracing::trace!("t");
        tracing::debug!("d");
        tracing::warn!("w");
        tracing::error!(name: "cart.failed", target: "shop::cart", "e");
        line
    });
    let records = logs(&engine);
    assert_eq!(records.len(), 5, "{records:#?}");
    let (scope, r) = &records[0];
    assert_eq!(scope, "integration_tracing", "the target is the scope");
    assert_eq!((r.severity_number, r.severity_text.as_str()), (9, "INFO"));
    assert_eq!(body(r), Some(&s("charged 2 cards")));
    let a = &r.attributes;
    assert_eq!(attr(a, "count"), Some(&Av::IntValue(3)));
    assert_eq!(attr(a, "ratio"), Some(&Av::DoubleValue(0.5)));
    assert_eq!(attr(a, "ok"), Some(&Av::BoolValue(true)));
    assert_eq!(
        attr(a, "big"),
        Some(&s("18446744073709551615")),
        "above i64::MAX: its digits"
    );
    assert_eq!(attr(a, "small"), Some(&Av::IntValue(7)));
    assert_eq!(attr(a, "wide"), Some(&Av::IntValue(5)));
    assert_eq!(attr(a, "user"), Some(&s("ada")));
    assert_eq!(attr(a, "order"), Some(&s("Order { id: 7 }")));
    assert_eq!(attr(a, "shown"), Some(&s("displayed")));
    assert_eq!(attr(a, "message"), None, "the message is the body");
    assert_eq!(attr(a, "code.namespace"), Some(&s("integration_tracing")));
    assert_eq!(
        attr(a, "code.line.number"),
        Some(&Av::IntValue(line.into()))
    );
    match attr(a, "code.file.path") {
        Some(Av::StringValue(f)) => assert!(f.ends_with("integration_tracing.rs"), "{f}"),
        other => panic!("code.file.path: {other:?}"),
    }
    assert_eq!(
        r.event_name, "",
        "the default `event file:line` name is left out"
    );
    assert!(
        r.trace_id.is_empty() && r.span_id.is_empty(),
        "no span: no correlation"
    );
    let severities: Vec<_> = records[1..]
        .iter()
        .map(|(_, r)| r.severity_number)
        .collect();
    assert_eq!(severities, [1, 5, 13, 17]);
    let (scope, e) = &records[4];
    assert_eq!(
        (scope.as_str(), e.event_name.as_str()),
        ("shop::cart", "cart.failed")
    );
}

/// A field named twice keeps its last value; the log record limits apply
/// to fields and location alike, as to a record's attribute slice.
#[test]
fn repeated_fields_and_the_log_record_limits() {
    let engine = Engine::builder()
        .export(false)
        .ring_bytes_per_cpu(1 << 20)
        .config_toml(
            "limits.toml",
            "[limits]\nlog_record_attribute_count = 4\nlog_record_attribute_value_length = 5\n",
        )
        .build()
        .unwrap();
    with_layer(&engine, || {
        tracing::info!(a = 1, b = "abcdefgh", a = 2, "twice");
        tracing::info!(k1 = 1, k2 = 2, k3 = 3, k4 = 4, k5 = 5, "over");
        for _ in 0..2 {
            tracing::info!(x = 1, "no location past the limit");
        }
    });
    let records = logs(&engine);
    assert_eq!(records.len(), 4, "{records:#?}");
    let keys = |r: &PLog| -> Vec<String> { r.attributes.iter().map(|kv| kv.key.clone()).collect() };
    let (_, twice) = &records[0];
    assert_eq!(
        keys(twice),
        ["b", "a", "code.file.path", "code.line.number"]
    );
    assert_eq!(
        attr(&twice.attributes, "a"),
        Some(&Av::IntValue(2)),
        "the last value"
    );
    assert_eq!(
        attr(&twice.attributes, "b"),
        Some(&s("abcde")),
        "the length limit"
    );
    assert_eq!(attr(&twice.attributes, "code.file.path"), Some(&s("core/")));
    assert_eq!(twice.dropped_attributes_count, 1);
    let (_, over) = &records[1];
    assert_eq!(keys(over), ["k1", "k2", "k3", "k4"]);
    assert_eq!(over.dropped_attributes_count, 4);
    for (_, r) in &records[2..] {
        assert_eq!(
            keys(r),
            ["x", "code.file.path", "code.line.number", "code.namespace"]
        );
        assert_eq!(r.dropped_attributes_count, 0);
    }
}

#[test]
fn the_location_can_be_left_out() {
    let engine = engine();
    let layer = otlpx::tracing::layer(&engine).with_location(false);
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        tracing::info_span!("quiet").in_scope(|| tracing::info!(n = 1, "no location"));
    });
    let records = logs(&engine);
    let spans = spans(&engine);
    for attributes in [&records[0].1.attributes, &spans[0].1.attributes] {
        assert!(
            attributes.iter().all(|kv| !kv.key.starts_with("code.")),
            "{attributes:?}"
        );
    }
    assert_eq!(attr(&records[0].1.attributes, "n"), Some(&Av::IntValue(1)));
}

#[test]
fn nested_spans_have_their_parents_and_events_their_span() {
    let engine = engine();
    let tracer = engine.tracer("native", "");
    with_layer(&engine, || {
        let outer = tracing::info_span!("outer", tenant = "acme");
        let _outer = outer.enter();
        {
            let inner = tracing::info_span!("inner");
            let _inner = inner.enter();
            tracing::info!("inside inner");
            // An otlpx span and record inside: children of, and correlated
            // with, the entered `tracing` span.
            let mut native = tracer.start("native work");
            native.set_attribute("rows", 2);
            native.end();
            let attached = tracer.start("attached").attach();
            tracing::info!("inside attached");
            drop(attached);
        }
        tracing::info!("back in outer");
    });
    let spans = spans(&engine);
    let outer = span(&spans, "outer");
    let inner = span(&spans, "inner");
    let native = span(&spans, "native work");
    let attached = span(&spans, "attached");
    assert!(outer.parent_span_id.is_empty(), "a root");
    assert_eq!(inner.parent_span_id, outer.span_id);
    assert_eq!(native.parent_span_id, inner.span_id);
    assert_eq!(attached.parent_span_id, inner.span_id);
    for s in [inner, native, attached] {
        assert_eq!(s.trace_id, outer.trace_id);
    }
    assert_eq!(attr(&outer.attributes, "tenant"), Some(&s("acme")));
    assert!(attr(&outer.attributes, "code.file.path").is_some());
    let records = logs(&engine);
    let ids: Vec<_> = records
        .iter()
        .map(|(_, r)| (body(r).cloned(), r.trace_id.clone(), r.span_id.clone()))
        .collect();
    assert_eq!(
        ids,
        [
            (
                Some(s("inside inner")),
                outer.trace_id.clone(),
                inner.span_id.clone()
            ),
            (
                Some(s("inside attached")),
                outer.trace_id.clone(),
                attached.span_id.clone()
            ),
            (
                Some(s("back in outer")),
                outer.trace_id.clone(),
                outer.span_id.clone()
            ),
        ]
    );
    assert_eq!(records[0].1.flags, 1, "sampled");
    assert!(
        !SpanContext::current().is_valid(),
        "every context attached on enter is detached on exit"
    );
}

#[test]
fn explicit_parents_and_roots() {
    let engine = engine();
    with_layer(&engine, || {
        let a = tracing::info_span!("a");
        let _a = a.enter();
        let b = tracing::info_span!("b");
        // Explicit parent `b`, though `a` is entered; never entered itself.
        let c = tracing::info_span!(parent: &b, "c");
        tracing::info!(parent: &c, "to c");
        tracing::info!(parent: None, "to nobody");
        let root = tracing::info_span!(parent: None, "root");
        root.in_scope(|| tracing::info!("in root"));
    });
    let spans = spans(&engine);
    let (a, b, c, root) = (
        span(&spans, "a"),
        span(&spans, "b"),
        span(&spans, "c"),
        span(&spans, "root"),
    );
    assert_eq!(b.parent_span_id, a.span_id, "contextual: the entered span");
    assert_eq!(c.parent_span_id, b.span_id, "explicit");
    assert!(root.parent_span_id.is_empty());
    assert_ne!(root.trace_id, a.trace_id, "a new trace");
    let records = logs(&engine);
    assert_eq!(records[0].1.span_id, c.span_id);
    assert!(records[1].1.span_id.is_empty() && records[1].1.trace_id.is_empty());
    assert_eq!(records[2].1.span_id, root.span_id);
}

#[test]
fn recorded_fields_and_conventions() {
    let engine = engine();
    with_layer(&engine, || {
        let span = tracing::info_span!(
            "GET",
            otel.kind = "server",
            otel.name = tracing::field::Empty,
            http.route = "/orders/{id}",
            http.response.status_code = tracing::field::Empty,
        );
        span.record("otel.name", "GET /orders/{id}"); // before it starts
        span.in_scope(|| {
            span.record("http.response.status_code", 500);
            span.record("otel.name", "GET /orders/{id} (renamed)"); // after
        });
        drop(span);

        tracing::info_span!("client call", otel.kind = "Client", otel.status_code = "ok")
            .in_scope(|| {});
        tracing::info_span!("failing", error = "card declined").in_scope(|| {});
        tracing::info_span!(
            "failing later",
            otel.status_code = tracing::field::Empty,
            otel.status_message = tracing::field::Empty
        )
        .in_scope(|| {
            let span = tracing::Span::current();
            span.record("otel.status_code", "ERROR");
            span.record("otel.status_message", "upstream timed out");
        });
        tracing::info_span!("producer", otel.kind = ?"producer").in_scope(|| {});
        tracing::info_span!("fine", error = false).in_scope(|| {});
    });
    let spans = spans(&engine);
    let get = span(&spans, "GET /orders/{id} (renamed)");
    assert_eq!(get.kind, PKind::Server as i32);
    assert_eq!(
        attr(&get.attributes, "http.route"),
        Some(&s("/orders/{id}"))
    );
    assert_eq!(
        attr(&get.attributes, "http.response.status_code"),
        Some(&Av::IntValue(500))
    );
    for kv in &get.attributes {
        assert!(!kv.key.starts_with("otel."), "{kv:?}");
    }
    let client = span(&spans, "client call");
    assert_eq!(client.kind, PKind::Client as i32);
    assert_eq!(client.status.as_ref().map(|s| s.code), Some(1), "ok");
    let failing = span(&spans, "failing");
    let status = failing.status.clone().unwrap();
    assert_eq!((status.code, status.message.as_str()), (2, "card declined"));
    assert_eq!(
        attr(&failing.attributes, "error"),
        Some(&s("card declined"))
    );
    let later = span(&spans, "failing later").status.clone().unwrap();
    assert_eq!(
        (later.code, later.message.as_str()),
        (2, "upstream timed out")
    );
    assert_eq!(span(&spans, "producer").kind, PKind::Producer as i32);
    assert_eq!(
        span(&spans, "fine").status.as_ref().map_or(0, |s| s.code),
        0
    );
    assert_eq!(span(&spans, "fine").kind, PKind::Internal as i32);
}

#[test]
fn a_remote_parent_from_a_traceparent() {
    let engine = engine();
    let caller =
        SpanContext::from_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
            .unwrap();
    let (context, late) = with_layer(&engine, || {
        let request = tracing::info_span!("POST /charge", otel.kind = "server", user = 7);
        assert!(request.set_parent(&caller));
        let _entered = request.enter();
        tracing::info_span!("charge").in_scope(|| tracing::info!("charging"));
        (
            request.context(),
            request.set_parent(&SpanContext::default()),
        )
    });
    assert!(!late, "set_parent after the first enter changes nothing");
    let spans = spans(&engine);
    let request = span(&spans, "POST /charge");
    let charge = span(&spans, "charge");
    assert_eq!(request.trace_id, caller.trace_id.0);
    assert_eq!(request.parent_span_id, caller.span_id.0);
    assert_eq!(request.flags & 0x300, 0x300, "the parent is remote");
    assert_eq!(
        attr(&request.attributes, "user"),
        Some(&Av::IntValue(7)),
        "fields kept"
    );
    assert_eq!(request.span_id, context.span_id.0);
    assert_eq!(charge.parent_span_id, request.span_id);
    assert_eq!(charge.trace_id, caller.trace_id.0);
    assert_eq!(logs(&engine)[0].1.span_id, charge.span_id);

    // Without an otlpx layer: nothing to set, no context.
    tracing::subscriber::with_default(tracing_subscriber::registry(), || {
        let span = tracing::info_span!("elsewhere");
        assert!(!span.set_parent(&caller));
        assert!(!span.context().is_valid());
    });
}

#[test]
fn follows_from_is_a_link() {
    let engine = engine();
    with_layer(&engine, || {
        let cause = tracing::info_span!("cause");
        let effect = tracing::info_span!(parent: None, "effect");
        effect.follows_from(&cause);
    });
    let spans = spans(&engine);
    let (cause, effect) = (span(&spans, "cause"), span(&spans, "effect"));
    assert_eq!(effect.links.len(), 1);
    assert_eq!(effect.links[0].span_id, cause.span_id);
    assert_eq!(effect.links[0].trace_id, cause.trace_id);
}

#[test]
fn a_span_entered_on_two_threads_is_current_on_each() {
    let engine = engine();
    let dispatch =
        Dispatch::new(tracing_subscriber::registry().with(otlpx::tracing::layer(&engine)));
    tracing::dispatcher::with_default(&dispatch, || {
        let shared = tracing::info_span!("shared");
        let _here = shared.enter();
        std::thread::scope(|scope| {
            scope.spawn(|| {
                tracing::dispatcher::with_default(&dispatch, || {
                    shared.in_scope(|| tracing::info!("there"));
                    tracing::info!("there, after");
                });
            });
        });
        tracing::info!("here");
    });
    let spans = spans(&engine);
    let shared = span(&spans, "shared");
    let records = logs(&engine);
    let by_body = |b: &str| {
        records
            .iter()
            .find(|(_, r)| body(r) == Some(&s(b)))
            .map(|(_, r)| r.span_id.clone())
            .unwrap()
    };
    assert_eq!(by_body("there"), shared.span_id);
    assert_eq!(by_body("here"), shared.span_id);
    assert!(
        by_body("there, after").is_empty(),
        "exited there, still entered here"
    );
}

/// A `fmt` layer's output, shared with the test.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

#[test]
fn beside_a_fmt_layer_and_an_env_filter() {
    let engine = engine();
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::registry()
        .with(EnvFilter::new("info,noisy=warn"))
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(move || writer.clone())
                .with_ansi(false),
        )
        .with(otlpx::tracing::layer(&engine));
    tracing::subscriber::with_default(subscriber, || {
        tracing::info_span!("request").in_scope(|| {
            tracing::info!(n = 1, "kept");
            tracing::debug!("filtered out");
            tracing::info!(target: "noisy", "filtered too");
            tracing::warn!(target: "noisy", "noisy but kept");
        });
    });
    let text = captured.text();
    assert!(
        text.contains("kept") && text.contains("noisy but kept"),
        "{text}"
    );
    assert!(!text.contains("filtered"), "{text}");
    let records = logs(&engine);
    let bodies: Vec<_> = records.iter().map(|(_, r)| body(r).cloned()).collect();
    assert_eq!(bodies, [Some(s("kept")), Some(s("noisy but kept"))]);
    assert_eq!(records[1].0, "noisy");
    assert_eq!(spans(&engine).len(), 1);
}

#[test]
fn with_a_per_layer_filter() {
    let engine = engine();
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(move || writer.clone())
                .with_ansi(false),
        )
        .with(otlpx::tracing::layer(&engine).with_filter(LevelFilter::WARN));
    tracing::subscriber::with_default(subscriber, || {
        let outer = tracing::warn_span!("outer");
        let _outer = outer.enter();
        // Filtered out for otlpx: its children skip it.
        tracing::info_span!("info span").in_scope(|| {
            tracing::info!("info event");
            tracing::warn!("warn event");
            let inner = tracing::warn_span!("inner");
            assert!(inner.context().is_valid());
            assert!(
                !tracing::Span::current().context().is_valid(),
                "not recorded by otlpx"
            );
        });
    });
    let text = captured.text();
    assert!(
        text.contains("info event") && text.contains("warn event"),
        "{text}"
    );
    let spans = spans(&engine);
    assert_eq!(spans.len(), 2, "{spans:#?}");
    let (outer, inner) = (span(&spans, "outer"), span(&spans, "inner"));
    assert_eq!(inner.parent_span_id, outer.span_id);
    let records = logs(&engine);
    assert_eq!(records.len(), 1);
    assert_eq!(body(&records[0].1), Some(&s("warn event")));
    assert_eq!(records[0].1.span_id, outer.span_id);
}

#[test]
fn the_engines_own_targets_and_threads_are_never_recorded() {
    let engine = engine();
    let captured = Captured::default();
    let writer = captured.clone();
    let dispatch = Dispatch::new(
        tracing_subscriber::registry()
            .with(
                tracing_subscriber::fmt::layer()
                    .with_writer(move || writer.clone())
                    .with_ansi(false),
            )
            .with(otlpx::tracing::layer(&engine)),
    );
    tracing::dispatcher::with_default(&dispatch, || {
        tracing::warn!(target: "otlpx::worker", "export failed");
        tracing::warn!(target: "otlpx", "configuration: odd");
        tracing::debug!(target: "h2", "frame");
        tracing::info!(target: "hyper_util::client::legacy", "connecting");
        tracing::info!(target: "tokio::task", "spawned");
        tracing::info_span!(target: "tonic::transport", "connect").in_scope(|| {
            // A user's event inside a dependency's span still counts, and
            // correlates with nothing the layer skipped.
            tracing::info!(target: "app", "app inside tonic's span");
        });
        // `tracing-log`'s form of a `log` record from an excluded crate.
        tracing::info!(target: "log", message = "handshake", log.target = "rustls::client", log.line = 1u32);
        tracing::info!(
            target: "log",
            message = "from log",
            log.target = "my_app::db",
            log.module_path = "my_app::db",
            log.file = "src/db.rs",
            log.line = 42u32,
        );
    });
    std::thread::Builder::new()
        .name("otlpx-worker-9".into())
        .spawn({
            let dispatch = dispatch.clone();
            move || {
                tracing::dispatcher::with_default(&dispatch, || {
                    tracing::warn!(target: "app", "on an engine thread");
                    tracing::info_span!("engine span").in_scope(|| {});
                })
            }
        })
        .unwrap()
        .join()
        .unwrap();
    let text = captured.text();
    for seen in [
        "export failed",
        "configuration: odd",
        "frame",
        "connecting",
        "handshake",
        "on an engine thread",
    ] {
        assert!(
            text.contains(seen),
            "other layers still get {seen:?}: {text}"
        );
    }
    let records = logs(&engine);
    let got: Vec<_> = records
        .iter()
        .map(|(scope, r)| (scope.as_str(), body(r).cloned()))
        .collect();
    assert_eq!(
        got,
        [
            ("app", Some(s("app inside tonic's span"))),
            ("my_app::db", Some(s("from log"))),
        ]
    );
    assert!(records[0].1.span_id.is_empty());
    let bridged = &records[1].1.attributes;
    assert_eq!(attr(bridged, "code.file.path"), Some(&s("src/db.rs")));
    assert_eq!(attr(bridged, "code.line.number"), Some(&Av::IntValue(42)));
    assert_eq!(attr(bridged, "code.namespace"), Some(&s("my_app::db")));
    assert!(
        bridged.iter().all(|kv| !kv.key.starts_with("log.")),
        "{bridged:?}"
    );
    assert!(spans(&engine).is_empty());
}

#[test]
fn a_disabled_engine_records_nothing() {
    let engine = Engine::builder()
        .export(false)
        .disabled(true)
        .build()
        .unwrap();
    with_layer(&engine, || {
        tracing::error!("nothing records on a disabled engine");
        tracing::info_span!("nor spans").in_scope(|| tracing::info!("nor here"));
    });
    assert_eq!(engine.signal_stats(Signal::Logs).recorded, 0);
    assert_eq!(engine.stats().recorded, 0);
}

struct Counting;

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

fn note() {
    if COUNTING.with(Cell::get) {
        ALLOCATIONS.with(|a| a.set(a.get() + 1));
    }
}

// SAFETY: every method forwards to `System` unchanged; counting touches only
// const thread-locals, which neither allocate nor re-enter the allocator.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note();
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note();
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note();
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn an_event_allocates_nothing_once_warm() {
    let engine = engine();
    with_layer(&engine, || {
        let event = |i: u64| {
            tracing::info!(
                user = "ada",
                order = i,
                total = 9.5,
                retry = false,
                "charged {i}"
            );
        };
        let span = tracing::info_span!("request");
        let _entered = span.enter();
        for i in 0..10 {
            event(i); // warms the thread's buffers and the scope table
        }
        ALLOCATIONS.with(|a| a.set(0));
        COUNTING.with(|c| c.set(true));
        for i in 0..100 {
            event(i);
        }
        COUNTING.with(|c| c.set(false));
    });
    assert_eq!(ALLOCATIONS.with(Cell::get), 0, "allocations in 100 events");
    assert_eq!(engine.signal_stats(Signal::Logs).recorded, 110);
}
