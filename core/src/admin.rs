//! The admin endpoint: `/metrics` (Prometheus text), `/health`, `/ready`
//! and `/stats` (JSON), over HTTP/1.1 on a thread of its own. Opt-in, and
//! bound to 127.0.0.1 unless configured otherwise. It reads the engine's
//! counters; nothing here is on the recording path.
//!
//! # Routes
//!
//! All answer `GET` only (other methods: 405), anything else is 404:
//!
//! * `/metrics`: every signal's counters,
//!   [`write_prometheus`](crate::telemetry::write_prometheus), text format
//!   0.0.4.
//! * `/health`: 200 while the server answers (the process is alive). A
//!   liveness probe: it looks at no signal, since restarting the process
//!   would not mend a collector that fails.
//! * `/ready`: 200 while the engine runs and, for every signal, no export
//!   request failed within the ready window more recently than one
//!   succeeded; 503 otherwise, with a line per failing signal saying why.
//!   A signal the engine does not export never fails.
//! * `/stats`: the traces' [`Stats`] snapshot as JSON at the top level
//!   (as before there were several signals), and every signal's under
//!   `"signals"` (`{"traces":{…},"logs":{…}}`), with the field names of the
//!   Rust struct. Written by hand (the crate has no serde): every key is
//!   fixed and every value a number or an endpoint URL, so nothing needs
//!   escaping.
//!
//! # Threads and stopping
//!
//! The thread (`otlpx-admin`) runs a current-thread tokio runtime: an
//! accept loop and one task per connection, at most [`MAX_CONNECTIONS`]
//! (more are closed at once). Dropping the [`AdminServer`] drops the stop
//! sender; the accept loop sees it at once and returns, the runtime drops
//! with its connection tasks, and the drop joins the thread. One exception:
//! when the drop runs on the admin thread itself (the application let go
//! of its last engine handle while a request's snapshot held the engine),
//! it cannot join itself, and the thread ends on its own once that request
//! returns.
//!
//! A request never panics the server: a snapshot that panics (a bug) is
//! answered with a 500, and nothing else here can panic.

use crate::ring::{SIGNALS, Signal};
use crate::telemetry::{HistogramSnapshot, PROMETHEUS_CONTENT_TYPE, Stats};
use bytes::Bytes;
use http::header::{ALLOW, CACHE_CONTROL, CONTENT_TYPE};
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::convert::Infallible;
use std::fmt::Write;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::Poll;
use std::thread::JoinHandle;
use std::time::Duration;
use tokio::sync::oneshot;

/// Connections served at once; more are closed as they come. Scrapers and
/// probes use one or two each; this only bounds a misbehaving client.
const MAX_CONNECTIONS: usize = 64;

/// How long a client may take to send a request's headers.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// How long the accept loop waits after a failed accept (out of file
/// descriptors, say) before it tries again, rather than spin.
const ACCEPT_RETRY: Duration = Duration::from_millis(50);

const TEXT: &str = "text/plain; charset=utf-8";
const JSON: &str = "application/json";

/// What one admin request sees, taken fresh for each request.
pub(crate) struct Snapshot {
    /// Each signal's counters, by [`Signal::index`].
    pub(crate) signals: [Stats; SIGNALS],
    /// Whether the engine runs: built, and not shut down.
    pub(crate) running: bool,
}

impl Snapshot {
    /// Each signal with its counters, in [`Signal::ALL`] order.
    fn by_signal(&self) -> [(Signal, &Stats); SIGNALS] {
        Signal::ALL.map(|signal| (signal, &self.signals[signal.index()]))
    }
}

/// What the connection tasks share.
struct State {
    ready_window: Duration,
    snapshot: Box<dyn Fn() -> Snapshot + Send + Sync>,
    /// Connections being served.
    connections: AtomicUsize,
}

/// A running admin endpoint; dropping it stops it.
pub(crate) struct AdminServer {
    addr: SocketAddr,
    /// Dropped to stop the accept loop.
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl AdminServer {
    /// Binds `addr` and serves until dropped. `/ready` answers 200 when
    /// `running` and, for every signal, no export attempt failed within
    /// `ready_window` more recently than one succeeded; 503 otherwise.
    ///
    /// # Errors
    ///
    /// When the address cannot be bound, or the runtime or the thread
    /// cannot start.
    pub(crate) fn start(
        addr: SocketAddr,
        ready_window: Duration,
        snapshot: Box<dyn Fn() -> Snapshot + Send + Sync>,
    ) -> std::io::Result<Self> {
        // Bound here, so that the caller hears of a busy port at once.
        let std_listener = std::net::TcpListener::bind(addr)?;
        std_listener.set_nonblocking(true)?;
        let addr = std_listener.local_addr()?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()?;
        let listener = {
            let _entered = runtime.enter();
            tokio::net::TcpListener::from_std(std_listener)?
        };
        let (stop, stopped) = oneshot::channel();
        let state = Arc::new(State {
            ready_window,
            snapshot,
            connections: AtomicUsize::new(0),
        });
        let thread = std::thread::Builder::new()
            .name("otlpx-admin".into())
            // The runtime drops at the end of the thread, with the
            // connection tasks still open.
            .spawn(move || runtime.block_on(serve(listener, stopped, state)))?;
        Ok(Self {
            addr,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// The address it listens on (with the port the OS chose for port 0).
    pub(crate) fn local_addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for AdminServer {
    fn drop(&mut self) {
        // Wakes the accept loop, which returns.
        drop(self.stop.take());
        if let Some(thread) = self.thread.take()
            && thread.thread().id() != std::thread::current().id()
        {
            // The thread only panics on a bug; nothing to do about it here.
            let _ = thread.join();
        }
    }
}

/// Accepts connections until `stopped` fires (or its sender is dropped).
async fn serve(
    listener: tokio::net::TcpListener,
    mut stopped: oneshot::Receiver<()>,
    state: Arc<State>,
) {
    loop {
        let accepted = std::future::poll_fn(|cx| {
            // Checked first, and never polled again once ready.
            if Pin::new(&mut stopped).poll(cx).is_ready() {
                return Poll::Ready(None);
            }
            listener.poll_accept(cx).map(Some)
        })
        .await;
        let stream = match accepted {
            None => return,
            Some(Ok((stream, _peer))) => stream,
            Some(Err(_)) => {
                tokio::time::sleep(ACCEPT_RETRY).await;
                continue;
            }
        };
        // Relaxed (both here and in the task): a bound, not a lock; one
        // thread runs all of this anyway.
        if state.connections.fetch_add(1, Ordering::Relaxed) >= MAX_CONNECTIONS {
            state.connections.fetch_sub(1, Ordering::Relaxed);
            continue;
        }
        let state = Arc::clone(&state);
        tokio::spawn(async move {
            let _ = stream.set_nodelay(true);
            let shared = Arc::clone(&state);
            let service = hyper::service::service_fn(move |request: Request<Incoming>| {
                let response = respond(&shared, request.method(), request.uri().path());
                std::future::ready(Ok::<_, Infallible>(response))
            });
            let mut http = hyper::server::conn::http1::Builder::new();
            http.timer(TokioTimer::new())
                .header_read_timeout(HEADER_READ_TIMEOUT);
            // A client that goes away mid-request is its own business.
            let _ = http.serve_connection(TokioIo::new(stream), service).await;
            state.connections.fetch_sub(1, Ordering::Relaxed);
        });
    }
}

/// A response with `body` of `content_type`.
fn answer(status: StatusCode, content_type: &'static str, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    // Every answer is a fresh reading.
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// The answer to `method path`.
fn respond(state: &State, method: &Method, path: &str) -> Response<Full<Bytes>> {
    if !matches!(path, "/metrics" | "/health" | "/ready" | "/stats") {
        return answer(
            StatusCode::NOT_FOUND,
            TEXT,
            "not found: try /metrics, /health, /ready or /stats\n".into(),
        );
    }
    if method != Method::GET {
        let mut response = answer(
            StatusCode::METHOD_NOT_ALLOWED,
            TEXT,
            "method not allowed: GET only\n".into(),
        );
        response
            .headers_mut()
            .insert(ALLOW, HeaderValue::from_static("GET"));
        return response;
    }
    if path == "/health" {
        return answer(StatusCode::OK, TEXT, "ok\n".into());
    }
    let taken = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| (state.snapshot)()));
    let Ok(snapshot) = taken else {
        return answer(
            StatusCode::INTERNAL_SERVER_ERROR,
            TEXT,
            "internal error: the engine's counters could not be read\n".into(),
        );
    };
    match path {
        "/metrics" => answer(
            StatusCode::OK,
            PROMETHEUS_CONTENT_TYPE,
            crate::telemetry::prometheus_text(&snapshot.by_signal()),
        ),
        "/stats" => answer(StatusCode::OK, JSON, stats_json(&snapshot)),
        _ => match readiness(
            &snapshot,
            state.ready_window,
            crate::telemetry::unix_nanos_now(),
        ) {
            Ok(()) => answer(StatusCode::OK, TEXT, "ready\n".into()),
            Err(why) => answer(StatusCode::SERVICE_UNAVAILABLE, TEXT, why),
        },
    }
}

/// Whether `/ready` answers 200 at `now_unix_nanos`; if not, why: a line
/// per signal whose last failure is within `window` and more recent than
/// its last success (each signal has its own requests, often its own
/// endpoint).
///
/// A failure stamped after `now` (the wall clock stepped back) counts as
/// just now: it is not ready until the clock passes it by the window, or a
/// request succeeds.
fn readiness(s: &Snapshot, window: Duration, now_unix_nanos: u64) -> Result<(), String> {
    if !s.running {
        return Err("not ready: the engine is shut down\n".into());
    }
    let mut why = String::new();
    for (signal, stats) in s.by_signal() {
        let e = &stats.export;
        let failed = e.last_failure_unix_nanos;
        if failed > e.last_success_unix_nanos {
            let age = now_unix_nanos.saturating_sub(failed);
            if u128::from(age) < window.as_nanos() {
                // Writing to a `String` cannot fail.
                let _ = writeln!(
                    why,
                    "not ready: a {signal} export request failed {:.1} s ago and none has succeeded since",
                    age as f64 / 1e9
                );
            }
        }
    }
    if why.is_empty() { Ok(()) } else { Err(why) }
}

/// `"key":[n,n,…]`, a comma first unless `first`.
fn json_list(out: &mut String, key: &str, values: impl IntoIterator<Item = u64>) {
    let _ = write!(out, "\"{key}\":[");
    for (i, v) in values.into_iter().enumerate() {
        let _ = write!(out, "{}{v}", if i == 0 { "" } else { "," });
    }
    out.push(']');
}

/// `{"key":n,…}` for fixed keys.
fn json_object(out: &mut String, fields: &[(&str, u64)]) {
    out.push('{');
    for (i, (key, value)) in fields.iter().enumerate() {
        let _ = write!(out, "{}\"{key}\":{value}", if i == 0 { "" } else { "," });
    }
    out.push('}');
}

/// A histogram as `{"bounds":[…],"counts":[…],"sum":n,"count":n}`, counts
/// per bucket (not cumulative), the last one above every bound.
fn json_histogram(out: &mut String, h: &HistogramSnapshot) {
    out.push('{');
    json_list(out, "bounds", h.bounds.iter().copied());
    out.push(',');
    json_list(out, "counts", h.counts.iter().copied());
    let _ = write!(out, ",\"sum\":{},\"count\":{}}}", h.sum, h.count());
}

/// The snapshot as JSON: the traces' fields at the top level, as before
/// there were several signals, then `"signals":{"traces":{…},"logs":{…}}`,
/// each keyed like the fields of [`Stats`].
fn stats_json(s: &Snapshot) -> String {
    // Writing to a `String` cannot fail: results are ignored below.
    let mut o = String::with_capacity(SIGNALS * 4096);
    o.push('{');
    stats_fields(&mut o, &s.signals[Signal::Traces.index()]);
    o.push_str(",\"signals\":{");
    for (i, (signal, stats)) in s.by_signal().into_iter().enumerate() {
        let _ = write!(o, "{}\"{signal}\":{{", if i == 0 { "" } else { "," });
        stats_fields(&mut o, stats);
        o.push('}');
    }
    o.push_str("}}\n");
    o
}

/// The fields of `s` as JSON members (`"recorded":n,…`, no braces around
/// them), keyed like the fields of [`Stats`].
fn stats_fields(o: &mut String, s: &Stats) {
    // Writing to a `String` cannot fail: results are ignored below.
    let _ = write!(
        o,
        "\"recorded\":{},\"exported\":{},\"dropped\":",
        s.recorded, s.exported
    );
    let d = &s.dropped;
    json_object(o, &d.by_reason());
    let _ = write!(
        o,
        ",\"in_flight\":{},\"in_rings\":{},\"drained_by_caller\":{},\"config_warnings\":{},\"spooled\":{},\"spool\":",
        s.in_flight, s.in_rings, s.drained_by_caller, s.config_warnings, s.spooled
    );
    let sp = &s.spool;
    json_object(
        o,
        &[
            ("restored", sp.restored),
            ("written", sp.written),
            ("delivered", sp.delivered),
            ("bytes", sp.bytes),
            ("corrupt_records", sp.corrupt_records),
            ("corrupt_bytes", sp.corrupt_bytes),
        ],
    );
    let _ = write!(o, ",\"ring_bytes_used\":{},\"rings\":[", s.ring_bytes_used);
    for (i, r) in s.rings.iter().enumerate() {
        if i > 0 {
            o.push(',');
        }
        json_object(
            o,
            &[
                ("used_bytes", r.used_bytes),
                ("high_water_bytes", r.high_water_bytes),
                ("capacity_bytes", r.capacity_bytes),
            ],
        );
    }
    let e = &s.export;
    let _ = write!(
        o,
        "],\"export\":{{\"requests\":{},\"retries\":{},\"in_flight_bytes\":{},\"in_flight_bytes_high_water\":{},\"failures\":",
        e.requests, e.retries, e.in_flight_bytes, e.in_flight_bytes_high_water
    );
    let f = &e.failures;
    json_object(o, &f.by_kind());
    let _ = write!(
        o,
        ",\"bytes_uncompressed\":{},\"bytes_sent\":{},\"last_success_unix_nanos\":{},\"last_failure_unix_nanos\":{}",
        e.bytes_uncompressed, e.bytes_sent, e.last_success_unix_nanos, e.last_failure_unix_nanos
    );
    for (key, h) in [
        ("duration_nanos", &e.duration_nanos),
        ("batch_spans", &e.batch_spans),
        ("batch_bytes", &e.batch_bytes),
    ] {
        let _ = write!(o, ",\"{key}\":");
        json_histogram(o, h);
    }
    o.push_str(",\"endpoints\":[");
    for (i, p) in e.endpoints.iter().enumerate() {
        if i > 0 {
            o.push(',');
        }
        // URLs parsed by `http::Uri` hold no `"` or `\`: no escaping.
        let _ = write!(
            o,
            "{{\"url\":\"{}\",\"up\":{},\"requests\":{},\"failures\":{},\"taken_out\":{}}}",
            p.url, p.up, p.requests, p.failures, p.taken_out
        );
    }
    // The endpoints, then `export`.
    o.push_str("]}");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::RingStats;

    const SECOND: u64 = 1_000_000_000;

    /// Traces last succeeded at `success` and failed at `failure`; the
    /// other signals never sent anything.
    fn snapshot(running: bool, success: u64, failure: u64) -> Snapshot {
        let mut signals: [Stats; SIGNALS] = Default::default();
        let traces = &mut signals[Signal::Traces.index()].export;
        traces.last_success_unix_nanos = success;
        traces.last_failure_unix_nanos = failure;
        Snapshot { signals, running }
    }

    #[test]
    fn ready_unless_stopped_or_a_recent_failure_outlives_the_last_success() {
        let window = Duration::from_secs(30);
        let now = 1_000 * SECOND;
        let ready = |running, success, failure| {
            readiness(&snapshot(running, success, failure), window, now).is_ok()
        };
        assert!(ready(true, 0, 0), "nothing sent yet");
        assert!(!ready(false, 0, 0), "shut down");
        assert!(!ready(true, 0, now - SECOND), "failed, never succeeded");
        assert!(!ready(true, now - 5 * SECOND, now - SECOND), "failed since");
        assert!(
            ready(true, now - SECOND, now - 5 * SECOND),
            "succeeded since"
        );
        assert!(
            ready(true, 0, now - 31 * SECOND),
            "failure out of the window"
        );
        assert!(!ready(true, 0, now - 29 * SECOND), "failure in the window");
        assert!(!ready(true, 0, now + SECOND), "clock stepped back");
        let why = readiness(&snapshot(true, 0, now - 2 * SECOND), window, now).unwrap_err();
        assert!(
            why.contains("a traces export request failed 2.0 s ago"),
            "{why}"
        );
    }

    #[test]
    fn a_failing_logs_export_is_not_ready_either() {
        let window = Duration::from_secs(30);
        let now = 1_000 * SECOND;
        // Traces fine, logs failed since their last success.
        let mut s = snapshot(true, now - SECOND, 0);
        let logs = &mut s.signals[Signal::Logs.index()].export;
        logs.last_success_unix_nanos = now - 10 * SECOND;
        logs.last_failure_unix_nanos = now - 3 * SECOND;
        let why = readiness(&s, window, now).unwrap_err();
        assert_eq!(
            why,
            "not ready: a logs export request failed 3.0 s ago and none has succeeded since\n"
        );
        // Both failing: a line each.
        let traces = &mut s.signals[Signal::Traces.index()].export;
        traces.last_failure_unix_nanos = now - SECOND / 2;
        let why = readiness(&s, window, now).unwrap_err();
        assert_eq!(why.lines().count(), 2, "{why}");
        assert!(why.starts_with("not ready: a traces export"), "{why}");
        // Logs succeeded since: only traces holds it back.
        s.signals[Signal::Logs.index()]
            .export
            .last_success_unix_nanos = now;
        let why = readiness(&s, window, now).unwrap_err();
        assert_eq!(why.lines().count(), 1, "{why}");
        assert!(!why.contains("logs"), "{why}");
    }

    fn state() -> State {
        State {
            ready_window: Duration::from_secs(30),
            snapshot: Box::new(|| snapshot(true, 0, 0)),
            connections: AtomicUsize::new(0),
        }
    }

    #[test]
    fn routes_methods_and_a_panicking_snapshot() {
        let s = state();
        let status = |method: Method, path: &str| respond(&s, &method, path).status();
        assert_eq!(status(Method::GET, "/health"), StatusCode::OK);
        assert_eq!(status(Method::GET, "/ready"), StatusCode::OK);
        assert_eq!(status(Method::GET, "/metrics"), StatusCode::OK);
        assert_eq!(status(Method::GET, "/stats"), StatusCode::OK);
        assert_eq!(status(Method::GET, "/nope"), StatusCode::NOT_FOUND);
        assert_eq!(status(Method::GET, "/metrics/"), StatusCode::NOT_FOUND);
        assert_eq!(
            status(Method::POST, "/metrics"),
            StatusCode::METHOD_NOT_ALLOWED
        );
        assert_eq!(status(Method::DELETE, "/nope"), StatusCode::NOT_FOUND);
        let metrics = respond(&s, &Method::GET, "/metrics");
        assert_eq!(metrics.headers()[CONTENT_TYPE], PROMETHEUS_CONTENT_TYPE);
        let broken = State {
            snapshot: Box::new(|| panic!("a bug")),
            ..state()
        };
        let answer = respond(&broken, &Method::GET, "/stats");
        assert_eq!(answer.status(), StatusCode::INTERNAL_SERVER_ERROR);
    }

    /// The body of `response`, as text.
    fn body(response: Response<Full<Bytes>>) -> String {
        use http_body_util::BodyExt;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let collected = runtime.block_on(response.into_body().collect());
        String::from_utf8(collected.unwrap().to_bytes().to_vec()).unwrap()
    }

    #[test]
    fn metrics_carry_every_signal() {
        let mut signals: [Stats; SIGNALS] = Default::default();
        signals[Signal::Traces.index()].recorded = 3;
        signals[Signal::Logs.index()].recorded = 4;
        signals[Signal::Metrics.index()].recorded = 5;
        let s = State {
            snapshot: Box::new(move || Snapshot {
                signals: signals.clone(),
                running: true,
            }),
            ..state()
        };
        let metrics = respond(&s, &Method::GET, "/metrics");
        let body = body(metrics);
        assert!(body.contains("otlpx_items_recorded_total{signal=\"traces\"} 3\n"));
        assert!(body.contains("otlpx_items_recorded_total{signal=\"logs\"} 4\n"));
        assert!(body.contains("otlpx_items_recorded_total{signal=\"metrics\"} 5\n"));
    }

    #[test]
    fn stats_json_has_every_field() {
        let mut s = Stats {
            recorded: 1,
            exported: 2,
            in_flight: 3,
            in_rings: 4,
            drained_by_caller: 5,
            ring_bytes_used: 6,
            rings: vec![RingStats::default(); 2],
            ..Stats::default()
        };
        s.dropped.shutdown = 7;
        s.export.failures.tls = 8;
        s.export.batch_spans.counts[1] = 9;
        let logs = Stats {
            recorded: 11,
            ..Stats::default()
        };
        let metrics = Stats {
            recorded: 13,
            ..Stats::default()
        };
        let json = stats_json(&Snapshot {
            signals: [s, logs, metrics],
            running: true,
        });
        for needle in [
            "{\"recorded\":1,\"exported\":2,\"dropped\":{\"ring_full\":0,",
            "\"shutdown\":7,\"evicted\":0,\"spool_full\":0,\"spool_corrupt\":0},\"in_flight\":3,\"in_rings\":4,\"drained_by_caller\":5,\"config_warnings\":0,",
            "\"spooled\":0,\"spool\":{\"restored\":0,\"written\":0,\"delivered\":0,\"bytes\":0,\"corrupt_records\":0,\"corrupt_bytes\":0},",
            "\"ring_bytes_used\":6,\"rings\":[{\"used_bytes\":0,\"high_water_bytes\":0,\"capacity_bytes\":0},{",
            "\"tls\":8},\"bytes_uncompressed\":0,",
            "\"batch_spans\":{\"bounds\":[1,2,4,",
            "\"counts\":[0,9,0,",
            "\"sum\":0,\"count\":9}",
        ] {
            assert!(json.contains(needle), "{needle} not in {json}");
        }
        // The traces' fields twice: at the top level, and in `signals`.
        let top = json.split(",\"signals\":").next().unwrap();
        assert!(top.ends_with("},\"endpoints\":[]}"), "{json}");
        let traces = &top[1..];
        assert!(
            json.contains(&format!(
                ",\"signals\":{{\"traces\":{{{traces}}},\"logs\":{{\"recorded\":11,\"exported\":0,"
            )),
            "{json}"
        );
        assert!(
            json.contains("}},\"metrics\":{\"recorded\":13,\"exported\":0,"),
            "{json}"
        );
        assert!(json.ends_with("},\"endpoints\":[]}}}}\n"), "{json}");
        // Balanced, and nothing but numbers, keys and punctuation.
        let depth = json.chars().try_fold(0i32, |d, c| match c {
            '{' | '[' => Some(d + 1),
            '}' | ']' => (d > 0).then(|| d - 1),
            _ => Some(d),
        });
        assert_eq!(depth, Some(0));
    }

    #[test]
    fn the_server_stops_when_dropped() {
        let server = AdminServer::start(
            "127.0.0.1:0".parse().unwrap(),
            Duration::from_secs(30),
            Box::new(|| snapshot(true, 0, 0)),
        )
        .unwrap();
        let addr = server.local_addr();
        assert_ne!(addr.port(), 0);
        // A connection left open does not hold the drop up.
        let _open = std::net::TcpStream::connect(addr).unwrap();
        let start = std::time::Instant::now();
        drop(server);
        assert!(start.elapsed() < Duration::from_secs(1));
        assert!(
            std::net::TcpStream::connect(addr).is_err(),
            "still listening"
        );
    }
}
