//! End to end: the admin endpoint of an engine exporting over gRPC to the
//! embedded OTLP receiver, spoken to over plain HTTP/1.1. `/health` answers
//! while the engine lives; `/metrics` (read by a Prometheus text-format
//! parser) and `/stats` (read by serde_json) say what `Engine::signal_stats`
//! says for each signal (traces, logs and metrics, under their `signal`
//! label); `/ready` turns false while the receiver is down, true once it
//! is up and a request succeeded, false after shutdown; other paths are
//! 404 and other methods 405.

use otlpx::logs::{LogRecord, Severity};
use otlpx::{Engine, Signal, Stats};
use otlpx_bench::receiver::{Receiver, ReceiverConfig};
use prometheus_parse::{Scrape, Value};
use serde_json::json;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// One HTTP answer.
#[derive(Debug)]
struct Answer {
    status: u16,
    content_type: String,
    body: String,
}

/// Sends `method path` over a fresh connection and reads the answer (the
/// server closes the connection, as asked).
fn request(addr: SocketAddr, method: &str, path: &str) -> Answer {
    let mut stream = TcpStream::connect(addr).expect("the admin endpoint accepts");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
    )
    .unwrap();
    let mut raw = String::new();
    stream.read_to_string(&mut raw).expect("a complete answer");
    let (head, body) = raw.split_once("\r\n\r\n").expect("headers end");
    let mut lines = head.lines();
    let status_line = lines.next().unwrap();
    assert!(status_line.starts_with("HTTP/1.1 "), "{status_line}");
    let status = status_line[9..12].parse().unwrap();
    let mut content_type = String::new();
    let mut length = None;
    for line in lines {
        let (name, value) = line.split_once(':').unwrap();
        match name.to_ascii_lowercase().as_str() {
            "content-type" => content_type = value.trim().to_owned(),
            "content-length" => length = Some(value.trim().parse::<usize>().unwrap()),
            _ => {}
        }
    }
    assert_eq!(
        length,
        Some(body.len()),
        "the body is whole and not chunked"
    );
    Answer {
        status,
        content_type,
        body: body.to_owned(),
    }
}

fn get(addr: SocketAddr, path: &str) -> Answer {
    request(addr, "GET", path)
}

/// The sample of `name` with exactly `labels`.
fn value(scrape: &Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    let found: Vec<_> = scrape
        .samples
        .iter()
        .filter(|s| {
            s.metric == name
                && s.labels.len() == labels.len()
                && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v))
        })
        .collect();
    assert_eq!(found.len(), 1, "{name}{labels:?}");
    match &found[0].value {
        Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => *v,
        other => panic!("{name}: {other:?}"),
    }
}

/// Every signal's counters now.
fn all_stats(engine: &Engine) -> [(Signal, Stats); otlpx::ring::SIGNALS] {
    Signal::ALL.map(|signal| (signal, engine.signal_stats(signal)))
}

/// Checks `/metrics` against `signals`, value by value.
fn check_metrics(addr: SocketAddr, signals: &[(Signal, Stats)]) {
    let answer = get(addr, "/metrics");
    assert_eq!(answer.status, 200);
    assert_eq!(
        answer.content_type,
        "text/plain; version=0.0.4; charset=utf-8"
    );
    let scrape = Scrape::parse(answer.body.lines().map(|l| Ok(l.to_owned()))).unwrap();
    for (signal, s) in signals {
        check_signal(&scrape, *signal, s);
    }
    // Engine-wide: once, without a `signal` label.
    let traces = &signals[0].1;
    assert_eq!(
        value(&scrape, "otlpx_config_warnings", &[]) as u64,
        traces.config_warnings
    );
    assert_eq!(
        value(&scrape, "otlpx_spool_bytes", &[]) as u64,
        traces.spool.bytes
    );
    let version = env!("CARGO_PKG_VERSION");
    assert_eq!(
        value(&scrape, "otlpx_build_info", &[("version", version)]),
        1.0
    );
}

/// Checks the samples of `signal` in `scrape` against `s`.
fn check_signal(scrape: &Scrape, signal: Signal, s: &Stats) {
    let l = [("signal", signal.name())];
    let v = |name: &str| value(scrape, name, &l) as u64;
    assert_eq!(v("otlpx_items_recorded_total"), s.recorded);
    assert_eq!(v("otlpx_items_exported_total"), s.exported);
    assert_eq!(v("otlpx_items_in_flight"), s.in_flight);
    assert_eq!(v("otlpx_items_in_rings"), s.in_rings);
    assert_eq!(
        v("otlpx_items_drained_by_caller_total"),
        s.drained_by_caller
    );
    let d = &s.dropped;
    for (reason, n) in [
        ("ring_full", d.ring_full),
        ("too_large", d.too_large),
        ("invalid", d.invalid),
        ("aborted", d.aborted),
        ("rejected", d.rejected),
        ("export_failed", d.export_failed),
        ("shutdown", d.shutdown),
        ("evicted", d.evicted),
    ] {
        let labels = [("signal", signal.name()), ("reason", reason)];
        let got = value(scrape, "otlpx_items_dropped_total", &labels);
        assert_eq!(got as u64, n, "{signal} {reason}");
    }
    let e = &s.export;
    assert_eq!(v("otlpx_export_requests_total"), e.requests);
    let f = &e.failures;
    for (kind, n) in [
        ("unavailable", f.unavailable),
        ("timeout", f.timeout),
        ("throttled", f.throttled),
        ("rejected", f.rejected),
        ("protocol", f.protocol),
        ("other", f.other),
        ("tls", f.tls),
    ] {
        let labels = [("signal", signal.name()), ("kind", kind)];
        let got = value(scrape, "otlpx_export_failures_total", &labels);
        assert_eq!(got as u64, n, "{signal} {kind}");
    }
    assert_eq!(
        v("otlpx_export_uncompressed_bytes_total"),
        e.bytes_uncompressed
    );
    assert_eq!(v("otlpx_export_sent_bytes_total"), e.bytes_sent);
    for (name, h, per_unit) in [
        ("otlpx_export_duration_seconds", &e.duration_nanos, 1e9),
        ("otlpx_export_batch_items", &e.batch_spans, 1.0),
        ("otlpx_export_batch_bytes", &e.batch_bytes, 1.0),
    ] {
        let histogram = scrape
            .samples
            .iter()
            .find(|x| x.metric == name && x.labels.get("signal") == Some(signal.name()))
            .unwrap_or_else(|| panic!("no {name} of {signal}"));
        let Value::Histogram(buckets) = &histogram.value else {
            panic!("{name} is not a histogram");
        };
        let got: Vec<_> = buckets.iter().map(|b| (b.less_than, b.count)).collect();
        let want: Vec<_> = h
            .cumulative()
            .map(|(le, n)| (le.map_or(f64::INFINITY, |b| b as f64 / per_unit), n as f64))
            .collect();
        assert_eq!(got, want, "{name}");
        assert_eq!(v(&format!("{name}_count")), h.count(), "{name}");
        let sum = value(scrape, &format!("{name}_sum"), &l);
        let want = h.sum as f64 / per_unit;
        assert!((sum - want).abs() <= want * 1e-12, "{name}_sum");
    }
    assert_eq!(
        v("otlpx_export_duration_seconds_count"),
        e.requests + e.retries,
        "every attempt answered"
    );
    for (i, r) in s.rings.iter().enumerate() {
        let ring = i.to_string();
        let l = [("signal", signal.name()), ("ring", ring.as_str())];
        let g = |name: &str| value(scrape, name, &l) as u64;
        assert_eq!(g("otlpx_ring_used_bytes"), r.used_bytes);
        assert_eq!(g("otlpx_ring_high_water_bytes"), r.high_water_bytes);
        assert_eq!(g("otlpx_ring_capacity_bytes"), r.capacity_bytes);
    }
    for (name, nanos) in [
        (
            "otlpx_last_export_success_timestamp_seconds",
            e.last_success_unix_nanos,
        ),
        (
            "otlpx_last_export_failure_timestamp_seconds",
            e.last_failure_unix_nanos,
        ),
    ] {
        let seconds = value(scrape, name, &l);
        assert!((seconds * 1e9 - nanos as f64).abs() < 1_000.0, "{name}");
    }
}

/// `signals` as `/stats` should write them: the traces' fields at the top
/// level, and every signal's under `signals`.
fn stats_json(signals: &[(Signal, Stats)]) -> serde_json::Value {
    let mut top = signal_json(&signals[0].1);
    let by_signal: serde_json::Map<String, serde_json::Value> = signals
        .iter()
        .map(|(signal, s)| (signal.name().to_owned(), signal_json(s)))
        .collect();
    top["signals"] = by_signal.into();
    top
}

/// One signal's `s` as `/stats` should write it.
fn signal_json(s: &Stats) -> serde_json::Value {
    let d = &s.dropped;
    let e = &s.export;
    let f = &e.failures;
    let h = |h: &otlpx::HistogramSnapshot| json!({"bounds": h.bounds, "counts": h.counts, "sum": h.sum, "count": h.count()});
    json!({
        "recorded": s.recorded,
        "exported": s.exported,
        "dropped": {
            "ring_full": d.ring_full,
            "too_large": d.too_large,
            "invalid": d.invalid,
            "aborted": d.aborted,
            "rejected": d.rejected,
            "export_failed": d.export_failed,
            "shutdown": d.shutdown,
            "evicted": d.evicted,
            "spool_full": d.spool_full,
            "spool_corrupt": d.spool_corrupt,
        },
        "in_flight": s.in_flight,
        "in_rings": s.in_rings,
        "drained_by_caller": s.drained_by_caller,
        "config_warnings": s.config_warnings,
        "spooled": s.spooled,
        "spool": {
            "restored": s.spool.restored,
            "written": s.spool.written,
            "delivered": s.spool.delivered,
            "bytes": s.spool.bytes,
            "corrupt_records": s.spool.corrupt_records,
            "corrupt_bytes": s.spool.corrupt_bytes,
        },
        "ring_bytes_used": s.ring_bytes_used,
        "rings": s.rings.iter().map(|r| json!({
            "used_bytes": r.used_bytes,
            "high_water_bytes": r.high_water_bytes,
            "capacity_bytes": r.capacity_bytes,
        })).collect::<Vec<_>>(),
        "export": {
            "requests": e.requests,
            "retries": e.retries,
            "in_flight_bytes": e.in_flight_bytes,
            "in_flight_bytes_high_water": e.in_flight_bytes_high_water,
            "failures": {
                "unavailable": f.unavailable,
                "timeout": f.timeout,
                "throttled": f.throttled,
                "rejected": f.rejected,
                "protocol": f.protocol,
                "other": f.other,
                "tls": f.tls,
            },
            "bytes_uncompressed": e.bytes_uncompressed,
            "bytes_sent": e.bytes_sent,
            "last_success_unix_nanos": e.last_success_unix_nanos,
            "last_failure_unix_nanos": e.last_failure_unix_nanos,
            "duration_nanos": h(&e.duration_nanos),
            "batch_spans": h(&e.batch_spans),
            "batch_bytes": h(&e.batch_bytes),
            "endpoints": e.endpoints.iter().map(|p| json!({
                "url": p.url,
                "up": p.up,
                "requests": p.requests,
                "failures": p.failures,
                "taken_out": p.taken_out,
            })).collect::<Vec<_>>(),
        },
    })
}

fn check_stats(addr: SocketAddr, signals: &[(Signal, Stats)]) {
    assert_eq!(
        signals[0].0,
        Signal::Traces,
        "traces first, at the top level"
    );
    let answer = get(addr, "/stats");
    assert_eq!(answer.status, 200);
    assert_eq!(answer.content_type, "application/json");
    let parsed: serde_json::Value = serde_json::from_str(&answer.body).expect("valid JSON");
    assert_eq!(parsed, stats_json(signals));
}

/// A port with nothing listening (for now).
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

fn record(engine: &Engine, n: usize) {
    let tracer = engine.tracer("admin", "1");
    for i in 0..n {
        let mut span = tracer.start("op");
        span.set_attribute("i", i as i64);
        span.end();
    }
}

#[test]
fn admin_endpoint_serves_metrics_stats_health_and_readiness() {
    let port = free_port();
    let engine = Engine::builder()
        .service_name("admin-e2e")
        .endpoint(format!("http://127.0.0.1:{port}"))
        .admin_address("127.0.0.1:0")
        .ready_window(Duration::from_secs(600))
        .max_batch_spans(10)
        .export_timeout(Duration::from_secs(5))
        // Retried while the receiver is down, but not for long.
        .batch_export_timeout(Duration::from_secs(1))
        .retry_backoff(Duration::from_millis(50), Duration::from_millis(200))
        .rings(2)
        .build()
        .unwrap();
    let admin = engine.admin_address().expect("an admin endpoint");
    assert_ne!(admin.port(), 0);

    let health = get(admin, "/health");
    assert_eq!((health.status, health.body.as_str()), (200, "ok\n"));
    assert_eq!(get(admin, "/ready").status, 200, "nothing has failed yet");
    assert_eq!(get(admin, "/nowhere").status, 404);
    assert_eq!(request(admin, "POST", "/metrics").status, 405);
    assert_eq!(request(admin, "DELETE", "/ready").status, 405);

    // The receiver is down: every request fails, and /ready says so.
    record(&engine, 50);
    // The flush ends once every request gave up, and says they did.
    match engine.flush(Duration::from_secs(20)) {
        Err(otlpx::FlushError::Dropped { report, .. }) => {
            assert_eq!((report.delivered, report.dropped.export_failed), (0, 50));
        }
        other => panic!("the flush must report the drops: {other:?}"),
    }
    let s = engine.stats();
    assert_eq!((s.exported, s.dropped.export_failed), (0, 50));
    // Ten spans a request, or fewer if the schedule delay ran out while
    // they were recorded.
    assert!(s.export.requests >= 5, "{s:?}");
    // Every attempt failed: refused, or (the last one, cut short by the
    // batch export timeout) timed out.
    let f = &s.export.failures;
    assert_eq!(f.total(), s.export.requests + s.export.retries, "{f:?}");
    assert_eq!(f.unavailable + f.timeout, f.total(), "{f:?}");
    assert!(s.export.last_failure_unix_nanos > 0);
    assert_eq!(s.export.last_success_unix_nanos, 0);
    let ready = get(admin, "/ready");
    assert_eq!(ready.status, 503, "{ready:?}");
    assert!(
        ready.body.contains("a traces export request failed"),
        "{ready:?}"
    );
    let all = all_stats(&engine);
    assert_eq!(all[0].1, s);
    check_metrics(admin, &all);
    check_stats(admin, &all);

    // Up on the same port: once a request succeeds, ready again.
    let receiver = Receiver::start(ReceiverConfig {
        grpc_port: port,
        ..ReceiverConfig::default()
    })
    .expect("the receiver starts on the port the engine uses");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        record(&engine, 10);
        engine.flush(Duration::from_secs(20)).unwrap();
        if engine.stats().exported > 0 {
            break;
        }
        assert!(Instant::now() < deadline, "never reconnected");
        std::thread::sleep(Duration::from_millis(100));
    }
    // Log records too, to the same receiver, on their own requests.
    let logger = engine.logger("admin", "1");
    for _ in 0..7 {
        logger.emit(&LogRecord::new(Severity::INFO).body("m"));
    }
    engine.flush(Duration::from_secs(20)).unwrap();
    let ready = get(admin, "/ready");
    assert_eq!((ready.status, ready.body.as_str()), (200, "ready\n"));
    let s = engine.stats();
    assert!(s.export.last_success_unix_nanos > s.export.last_failure_unix_nanos);
    assert_eq!(receiver.counts().spans, s.exported);
    assert_eq!(
        s.recorded,
        s.exported + s.dropped.total() + s.in_flight + s.in_rings
    );
    assert!(s.rings.iter().any(|r| r.high_water_bytes > 0));
    let logs = engine.signal_stats(Signal::Logs);
    assert_eq!((logs.recorded, logs.exported), (7, 7), "{logs:?}");
    assert!(logs.export.requests >= 1 && logs.export.last_success_unix_nanos > 0);
    assert_eq!(receiver.counts().logs_requests, logs.export.requests);
    // And metrics, written as the metrics API will (there is none yet).
    for _ in 0..3 {
        engine.__not_api_record_metric("admin", "1", &[]).unwrap();
    }
    engine.flush(Duration::from_secs(20)).unwrap();
    let metrics = engine.signal_stats(Signal::Metrics);
    assert_eq!((metrics.recorded, metrics.exported), (3, 3), "{metrics:?}");
    assert_eq!(receiver.counts().metrics_requests, metrics.export.requests);
    let all = all_stats(&engine);
    check_metrics(admin, &all);
    check_stats(admin, &all);

    // Shut down: not ready, still healthy while the engine lives.
    engine.shutdown(Duration::from_secs(5)).unwrap();
    let ready = get(admin, "/ready");
    assert_eq!(ready.status, 503);
    assert!(ready.body.contains("shut down"), "{ready:?}");
    assert_eq!(get(admin, "/health").status, 200);
    check_stats(admin, &all_stats(&engine));

    // Dropping the engine stops the endpoint.
    drop(engine);
    assert!(
        TcpStream::connect(admin).is_err(),
        "still listening after the engine is gone"
    );
}
