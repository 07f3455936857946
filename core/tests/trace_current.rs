//! The current span context, as a user relies on it: a library function
//! that starts a span with no parent argument gets the caller's current
//! span as parent; contexts cross threads only when carried; across
//! `.await` with the future wrappers; `in_span`, `ActiveSpan`, guards out of
//! order, explicit `parent` and `root` beating the current context. Spans
//! are drained and decoded with the official OTLP types.

use bytes::BytesMut;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::trace::v1::Span as PSpan;
use otlpx::{Engine, FutureExt as _, Span, SpanContext, SpanKind, Tracer};
use prost::Message;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

fn engine() -> Engine {
    Engine::builder()
        .export(false)
        .ring_bytes_per_cpu(1 << 20)
        .build()
        .unwrap()
}

/// Every span recorded so far, by name.
fn drain(engine: &Engine) -> Vec<PSpan> {
    let mut out = BytesMut::new();
    let mut spans = Vec::new();
    while engine.drain_traces(&mut out, 512) > 0 {
        let req = ExportTraceServiceRequest::decode(&out[..]).unwrap();
        for rs in req.resource_spans {
            for ss in rs.scope_spans {
                spans.extend(ss.spans);
            }
        }
    }
    spans
}

fn by_name<'a>(spans: &'a [PSpan], name: &str) -> &'a PSpan {
    spans
        .iter()
        .find(|s| s.name == name)
        .unwrap_or_else(|| panic!("no span {name} in {:?}", names(spans)))
}

fn names(spans: &[PSpan]) -> Vec<&str> {
    spans.iter().map(|s| s.name.as_str()).collect()
}

fn is_child(child: &PSpan, parent: &PSpan) -> bool {
    child.parent_span_id == parent.span_id && child.trace_id == parent.trace_id
}

/// A library function: it knows nothing of its caller's span.
fn query_database(tracer: &Tracer) {
    let mut span = tracer.span("SELECT").kind(SpanKind::Client).start();
    span.set_attribute("db.system.name", "postgresql");
}

#[test]
fn a_library_span_without_a_parent_argument_is_a_child_of_the_current_span() {
    let engine = engine();
    let tracer = engine.tracer("svc", "");
    let remote =
        SpanContext::from_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
            .unwrap();
    {
        let _incoming = remote.attach();
        let request = tracer
            .span("GET /orders")
            .kind(SpanKind::Server)
            .start()
            .attach();
        assert_eq!(SpanContext::current(), *request.context());
        assert_eq!(Span::current(), *request.context());
        query_database(&tracer);
    }
    query_database(&tracer); // nothing current: a root
    assert!(!SpanContext::current().is_valid());

    let spans = drain(&engine);
    assert_eq!(spans.len(), 3, "{:?}", names(&spans));
    let server = by_name(&spans, "GET /orders");
    assert_eq!(server.parent_span_id, remote.span_id.0);
    assert_eq!(server.trace_id, remote.trace_id.0);
    // The server span's parent came from another process.
    assert_eq!(server.flags & 0x300, 0x300);
    let selects: Vec<&PSpan> = spans.iter().filter(|s| s.name == "SELECT").collect();
    assert_eq!(
        selects.iter().filter(|s| is_child(s, server)).count(),
        1,
        "one SELECT under the request"
    );
    assert_eq!(
        selects
            .iter()
            .filter(|s| s.parent_span_id.is_empty())
            .count(),
        1,
        "one SELECT with nothing current: a root"
    );
}

#[test]
fn explicit_parent_and_root_beat_the_current_context() {
    let engine = engine();
    let tracer = engine.tracer("svc", "");
    let other = tracer.start("other");
    let other_ctx = other.context().clone();
    other.end();
    tracer.in_span("current", |_| {
        tracer.span("explicit").parent(&other_ctx).start().end();
        tracer.span("root").root().start().end();
        // An invalid explicit parent makes a root as well.
        tracer
            .span("invalid-parent")
            .parent(&SpanContext::default())
            .start()
            .end();
    });
    let spans = drain(&engine);
    assert!(is_child(
        by_name(&spans, "explicit"),
        by_name(&spans, "other")
    ));
    for root in ["root", "invalid-parent"] {
        let s = by_name(&spans, root);
        assert!(s.parent_span_id.is_empty(), "{root}");
        assert_ne!(s.trace_id, by_name(&spans, "current").trace_id, "{root}");
    }
}

#[test]
fn in_span_nests_returns_and_ends_on_panic_with_an_error() {
    let engine = engine();
    let tracer = engine.tracer("svc", "");
    let n = tracer.in_span("outer", |outer| {
        outer.set_attribute("level", 1);
        tracer.in_span("inner", |_| query_database(&tracer));
        7
    });
    assert_eq!(n, 7);
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        tracer.in_span("boom", |_| panic!("on purpose"));
    }));
    assert!(caught.is_err());
    assert!(
        !SpanContext::current().is_valid(),
        "unwinding detached the span"
    );
    let spans = drain(&engine);
    let (outer, inner) = (by_name(&spans, "outer"), by_name(&spans, "inner"));
    assert!(is_child(inner, outer));
    assert!(is_child(by_name(&spans, "SELECT"), inner));
    let boom = by_name(&spans, "boom");
    let status = boom.status.as_ref().expect("a status");
    assert_eq!((status.code, status.message.as_str()), (2, "panicked"));
}

#[test]
fn guards_dropped_out_of_order_leave_the_newest_live_span_current() {
    let engine = engine();
    let tracer = engine.tracer("svc", "");
    let a = tracer.start("a").attach();
    let b = tracer.start("b").attach();
    let b_ctx = b.context().clone();
    a.end(); // not the innermost: b stays current
    assert_eq!(SpanContext::current(), b_ctx);
    tracer.start("under-b").end();
    b.end();
    assert!(!SpanContext::current().is_valid());
    let spans = drain(&engine);
    assert!(is_child(by_name(&spans, "under-b"), by_name(&spans, "b")));
    assert!(is_child(by_name(&spans, "b"), by_name(&spans, "a")));
}

#[test]
fn the_context_crosses_threads_only_when_carried() {
    let engine = engine();
    let tracer = engine.tracer("svc", "");
    let request = tracer.start("request").attach();
    let carried = request.context().clone();
    std::thread::scope(|s| {
        s.spawn(|| {
            assert!(!SpanContext::current().is_valid(), "not implicit");
            tracer.start("uncarried").end();
        });
        s.spawn(|| {
            let _g = carried.attach();
            tracer.start("carried").end();
        });
    });
    request.end();
    let spans = drain(&engine);
    let request = by_name(&spans, "request");
    assert!(is_child(by_name(&spans, "carried"), request));
    assert!(by_name(&spans, "uncarried").parent_span_id.is_empty());
}

/// Pending once, then ready: an `.await` that gives the thread away.
struct YieldOnce(bool);

impl Future for YieldOnce {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if std::mem::replace(&mut self.0, true) {
            Poll::Ready(())
        } else {
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    }
}

/// Polls `future` once on this thread and, if it is not done, to the end
/// on another one: as a work-stealing runtime may.
fn poll_across_threads<F: Future<Output = ()> + Send>(future: F) {
    let mut future = Box::pin(future);
    let mut cx = Context::from_waker(Waker::noop());
    if future.as_mut().poll(&mut cx).is_ready() {
        return;
    }
    std::thread::scope(|s| {
        s.spawn(move || {
            let mut cx = Context::from_waker(Waker::noop());
            while future.as_mut().poll(&mut cx).is_pending() {}
        });
    });
}

#[test]
fn with_span_carries_the_span_across_await_and_threads_and_ends_it() {
    let engine = engine();
    let tracer = &engine.tracer("svc", "");
    let request = tracer.start("request");
    poll_across_threads(
        async move {
            query_database(tracer);
            YieldOnce(false).await;
            tracer.start("after-await").end();
        }
        .with_span(request),
    );
    assert!(!SpanContext::current().is_valid(), "detached after poll");
    let spans = drain(&engine);
    let request = by_name(&spans, "request");
    assert!(is_child(by_name(&spans, "SELECT"), request));
    assert!(is_child(by_name(&spans, "after-await"), request));
    assert!(request.end_time_unix_nano > 0);
}

#[test]
fn in_current_span_carries_the_context_current_at_the_call() {
    let engine = engine();
    let tracer = &engine.tracer("svc", "");
    let task = tracer.in_span("spawner", |_| {
        async move {
            YieldOnce(false).await;
            tracer.start("task").end();
        }
        .in_current_span()
    });
    poll_across_threads(task);
    let spans = drain(&engine);
    assert!(is_child(
        by_name(&spans, "task"),
        by_name(&spans, "spawner")
    ));
}

#[test]
fn names_are_borrowed_or_owned_and_a_conditional_parent_compiles() {
    let engine = engine();
    let tracer = engine.tracer("svc", "");
    let remote: Option<SpanContext> =
        SpanContext::from_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
            .ok();
    let route = String::from("/orders");
    // An owned name and a parent set conditionally on a builder kept in a
    // variable: the builder borrows neither.
    let mut builder = tracer.span(format!("GET {route}")).kind(SpanKind::Server);
    if let Some(parent) = &remote {
        builder = builder.parent(parent);
    }
    let mut span = builder.start();
    span.update_name(format!("GET {route} (renamed)"));
    span.end();
    tracer.start(route.as_str()).end(); // borrowed, any lifetime
    tracer.start(std::borrow::Cow::Borrowed("cow")).end();
    let spans = drain(&engine);
    let server = by_name(&spans, "GET /orders (renamed)");
    assert_eq!(server.trace_id, remote.unwrap().trace_id.0);
    by_name(&spans, "/orders");
    by_name(&spans, "cow");
}
