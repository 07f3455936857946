//! Self-telemetry end to end with a stand-in transport: the Prometheus text
//! an engine renders, read back by a Prometheus text-format parser (the
//! `prometheus-parse` crate), says exactly what `Engine::stats` says:
//! every counter, drops by reason and failures by kind (each with its own
//! count, so a swapped label shows), histograms whose counts match the
//! requests, per-ring memory gauges, last-outcome times; and with several
//! signals, each signal's own, under its `signal` label. And the `tracing`
//! diagnostics: a flood of failures logs one warning per kind, the count
//! held back reported at shutdown, never a header value.

use otlpx::logs::{LogRecord, Severity};
use otlpx::transport::{ExportError, ExportFuture, ExportRequest, ExportResponse, Transport};
use otlpx::{Engine, FailureKind, FinishedSpan, Signal, SpanId, Stats, TraceId};
use prometheus_parse::{Sample, Scrape, Value};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

/// What the stand-in transport answers to one request.
#[derive(Clone, Copy, Debug)]
enum Answer {
    Accept,
    Partial(u64),
    Fail(FailureKind),
    Never,
}

/// Answers request `i` with `script[i]`, and `then` past the script's end.
struct Scripted {
    script: Vec<Answer>,
    then: Answer,
    calls: AtomicUsize,
    /// Text put in every failure and partial-success message.
    marker: &'static str,
}

impl Scripted {
    fn new(script: Vec<Answer>, then: Answer, marker: &'static str) -> Arc<Self> {
        Arc::new(Self {
            script,
            then,
            calls: AtomicUsize::new(0),
            marker,
        })
    }
}

impl Transport for Scripted {
    fn export(&self, _request: ExportRequest) -> ExportFuture {
        let i = self.calls.fetch_add(1, Ordering::Relaxed);
        let answer = self.script.get(i).copied().unwrap_or(self.then);
        let marker = self.marker;
        Box::pin(async move {
            match answer {
                Answer::Accept => Ok(ExportResponse::accepted()),
                Answer::Partial(n) => Ok(ExportResponse::partial(n, marker)),
                Answer::Fail(kind) => Err(ExportError::new(kind, marker)),
                Answer::Never => std::future::pending().await,
            }
        })
    }
}

/// The stand-in's failure kinds, each scripted a different number of times.
const KINDS: [(FailureKind, &str); 7] = [
    (FailureKind::Unavailable, "unavailable"),
    (FailureKind::Timeout, "timeout"),
    (FailureKind::Throttled, "throttled"),
    (FailureKind::Rejected, "rejected"),
    (FailureKind::Protocol, "protocol"),
    (FailureKind::Other, "other"),
    (FailureKind::Tls, "tls"),
];

fn parse(text: &str) -> Scrape {
    Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).expect("parses")
}

/// The one sample named `name` with exactly `labels`.
fn sample<'s>(scrape: &'s Scrape, name: &str, labels: &[(&str, &str)]) -> &'s Sample {
    let found: Vec<_> = scrape
        .samples
        .iter()
        .filter(|s| {
            s.metric == name
                && s.labels.len() == labels.len()
                && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v))
        })
        .collect();
    assert_eq!(found.len(), 1, "{name}{labels:?}: {found:?}");
    found[0]
}

/// The value of a counter, gauge, or a histogram's `_sum` / `_count`.
fn value(scrape: &Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    match &sample(scrape, name, labels).value {
        Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => *v,
        other => panic!("{name}: not a single value: {other:?}"),
    }
}

fn counter(scrape: &Scrape, name: &str, labels: &[(&str, &str)]) -> u64 {
    match &sample(scrape, name, labels).value {
        Value::Counter(v) => *v as u64,
        other => panic!("{name}: not a counter: {other:?}"),
    }
}

fn gauge(scrape: &Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    match &sample(scrape, name, labels).value {
        Value::Gauge(v) => *v,
        other => panic!("{name}: not a gauge: {other:?}"),
    }
}

/// Checks `signal`'s histogram `name` against `h`, whose bounds are
/// divided by `per_unit` in the text; returns its `_count`.
fn check_histogram(
    scrape: &Scrape,
    name: &str,
    signal: Signal,
    h: &otlpx::HistogramSnapshot,
    per_unit: f64,
) -> u64 {
    let l = [("signal", signal.name())];
    let Value::Histogram(buckets) = &sample(scrape, name, &l).value else {
        panic!("{name}: not a histogram");
    };
    let expected: Vec<(f64, f64)> = h
        .cumulative()
        .map(|(bound, n)| {
            let le = bound.map_or(f64::INFINITY, |b| b as f64 / per_unit);
            (le, n as f64)
        })
        .collect();
    let got: Vec<(f64, f64)> = buckets.iter().map(|b| (b.less_than, b.count)).collect();
    assert_eq!(got, expected, "{name} buckets");
    let count = value(scrape, &format!("{name}_count"), &l);
    assert_eq!(count as u64, h.count(), "{name}_count");
    let sum = value(scrape, &format!("{name}_sum"), &l);
    let want = h.sum as f64 / per_unit;
    assert!(
        (sum - want).abs() <= want * 1e-12,
        "{name}_sum {sum} vs {want}"
    );
    count as u64
}

/// Unix seconds in the text against Unix nanoseconds in the stats, within
/// what an `f64` of seconds keeps (well under a microsecond today).
fn check_time(scrape: &Scrape, name: &str, signal: Signal, unix_nanos: u64) {
    let seconds = gauge(scrape, name, &[("signal", signal.name())]);
    let diff = (seconds * 1e9 - unix_nanos as f64).abs();
    assert!(diff < 1_000.0, "{name}: {seconds} vs {unix_nanos} ns");
}

/// Every family the text must carry, each with its `# HELP`.
const FAMILIES: [&str; 30] = [
    "otlpx_items_recorded_total",
    "otlpx_items_exported_total",
    "otlpx_items_dropped_total",
    "otlpx_items_in_flight",
    "otlpx_items_in_rings",
    "otlpx_items_drained_by_caller_total",
    "otlpx_items_spooled",
    "otlpx_spool_restored_items_total",
    "otlpx_spool_written_items_total",
    "otlpx_spool_delivered_items_total",
    "otlpx_export_requests_total",
    "otlpx_export_retries_total",
    "otlpx_export_in_flight_bytes",
    "otlpx_export_in_flight_bytes_high_water",
    "otlpx_export_failures_total",
    "otlpx_export_uncompressed_bytes_total",
    "otlpx_export_sent_bytes_total",
    "otlpx_export_duration_seconds",
    "otlpx_export_batch_items",
    "otlpx_export_batch_bytes",
    "otlpx_ring_used_bytes",
    "otlpx_ring_high_water_bytes",
    "otlpx_ring_capacity_bytes",
    "otlpx_last_export_success_timestamp_seconds",
    "otlpx_last_export_failure_timestamp_seconds",
    "otlpx_config_warnings",
    "otlpx_spool_bytes",
    "otlpx_spool_corrupt_records_total",
    "otlpx_spool_corrupt_bytes_total",
    "otlpx_build_info",
];

/// Renders `s` as the traces' (`Stats::prometheus_text`), parses the text
/// back and checks every value against `s`.
fn check_text_matches(s: &Stats) -> Scrape {
    let scrape = parse(&s.prometheus_text());
    check_signal(&scrape, Signal::Traces, s);
    check_engine_wide(&scrape, s);
    scrape
}

/// Checks the families without a `signal` label against `s`: each once.
fn check_engine_wide(scrape: &Scrape, s: &Stats) {
    for family in FAMILIES {
        assert!(scrape.docs.contains_key(family), "no HELP for {family}");
    }
    assert_eq!(
        gauge(scrape, "otlpx_config_warnings", &[]) as u64,
        s.config_warnings
    );
    assert_eq!(
        gauge(scrape, "otlpx_spool_bytes", &[]) as u64,
        s.spool.bytes
    );
    for (name, n) in [
        ("otlpx_spool_corrupt_records_total", s.spool.corrupt_records),
        ("otlpx_spool_corrupt_bytes_total", s.spool.corrupt_bytes),
    ] {
        assert_eq!(counter(scrape, name, &[]), n, "{name}");
    }
    let version = env!("CARGO_PKG_VERSION");
    assert_eq!(
        gauge(scrape, "otlpx_build_info", &[("version", version)]),
        1.0
    );
}

/// Checks every sample labelled `signal` in `scrape` against `s`.
fn check_signal(scrape: &Scrape, signal: Signal, s: &Stats) {
    let l = [("signal", signal.name())];
    let c = |name: &str| counter(scrape, name, &l);
    assert_eq!(c("otlpx_items_recorded_total"), s.recorded);
    assert_eq!(c("otlpx_items_exported_total"), s.exported);
    assert_eq!(
        c("otlpx_items_drained_by_caller_total"),
        s.drained_by_caller
    );
    assert_eq!(c("otlpx_spool_restored_items_total"), s.spool.restored);
    assert_eq!(c("otlpx_spool_written_items_total"), s.spool.written);
    assert_eq!(c("otlpx_spool_delivered_items_total"), s.spool.delivered);
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
        ("spool_full", d.spool_full),
        ("spool_corrupt", d.spool_corrupt),
    ] {
        let got = counter(
            scrape,
            "otlpx_items_dropped_total",
            &[("signal", signal.name()), ("reason", reason)],
        );
        assert_eq!(got, n, "{signal} dropped {reason}");
    }
    let g = |name: &str| gauge(scrape, name, &l) as u64;
    assert_eq!(g("otlpx_items_in_flight"), s.in_flight);
    assert_eq!(g("otlpx_items_in_rings"), s.in_rings);
    assert_eq!(g("otlpx_items_spooled"), s.spooled);
    let e = &s.export;
    assert_eq!(c("otlpx_export_requests_total"), e.requests);
    assert_eq!(c("otlpx_export_retries_total"), e.retries);
    assert_eq!(g("otlpx_export_in_flight_bytes"), e.in_flight_bytes);
    assert_eq!(
        g("otlpx_export_in_flight_bytes_high_water"),
        e.in_flight_bytes_high_water
    );
    let f = &e.failures;
    for ((_, kind), n) in KINDS.iter().zip([
        f.unavailable,
        f.timeout,
        f.throttled,
        f.rejected,
        f.protocol,
        f.other,
        f.tls,
    ]) {
        let got = counter(
            scrape,
            "otlpx_export_failures_total",
            &[("signal", signal.name()), ("kind", kind)],
        );
        assert_eq!(got, n, "{signal} failures {kind}");
    }
    assert_eq!(
        c("otlpx_export_uncompressed_bytes_total"),
        e.bytes_uncompressed
    );
    assert_eq!(c("otlpx_export_sent_bytes_total"), e.bytes_sent);
    check_histogram(
        scrape,
        "otlpx_export_duration_seconds",
        signal,
        &e.duration_nanos,
        1e9,
    );
    check_histogram(
        scrape,
        "otlpx_export_batch_items",
        signal,
        &e.batch_spans,
        1.0,
    );
    check_histogram(
        scrape,
        "otlpx_export_batch_bytes",
        signal,
        &e.batch_bytes,
        1.0,
    );
    for (i, r) in s.rings.iter().enumerate() {
        let ring = i.to_string();
        let l = [("signal", signal.name()), ("ring", ring.as_str())];
        let g = |name: &str| gauge(scrape, name, &l) as u64;
        assert_eq!(g("otlpx_ring_used_bytes"), r.used_bytes, "ring {i}");
        assert_eq!(
            g("otlpx_ring_high_water_bytes"),
            r.high_water_bytes,
            "ring {i}"
        );
        assert_eq!(g("otlpx_ring_capacity_bytes"), r.capacity_bytes, "ring {i}");
    }
    let rings = |name: &str| {
        let of_signal = |x: &&Sample| x.labels.get("signal") == Some(signal.name());
        scrape
            .samples
            .iter()
            .filter(|x| x.metric == name)
            .filter(of_signal)
            .count()
    };
    assert_eq!(rings("otlpx_ring_used_bytes"), s.rings.len());
    check_time(
        scrape,
        "otlpx_last_export_success_timestamp_seconds",
        signal,
        e.last_success_unix_nanos,
    );
    check_time(
        scrape,
        "otlpx_last_export_failure_timestamp_seconds",
        signal,
        e.last_failure_unix_nanos,
    );
}

fn finished(valid: bool) -> FinishedSpan<'static> {
    FinishedSpan {
        trace_id: if valid {
            TraceId::random()
        } else {
            TraceId([0; 16])
        },
        span_id: SpanId::random(),
        name: "finished",
        ..Default::default()
    }
}

#[test]
fn prometheus_text_matches_stats_after_answers_of_every_kind() {
    // Failure kind i fails i + 1 requests; two partial successes reject
    // one span each; then everything is accepted.
    let mut script = Vec::new();
    for (i, (kind, _)) in KINDS.iter().enumerate() {
        script.extend(std::iter::repeat_n(Answer::Fail(*kind), i + 1));
    }
    script.extend([Answer::Partial(1), Answer::Partial(1)]);
    let transport = Scripted::new(script, Answer::Accept, "scripted");
    let engine = Engine::builder()
        .rings(2)
        .ring_bytes_per_cpu(64 << 10)
        .max_batch_spans(1)
        // One attempt per request: the script's answers map to requests.
        .retry(false)
        .transport(transport)
        .build()
        .unwrap();
    let tracer = engine.tracer("prometheus", "1");
    let spans = 40;
    for i in 0..spans {
        let mut span = tracer.start("op");
        span.set_attribute("i", i);
        span.end();
    }
    for _ in 0..2 {
        assert!(tracer.record_span(&finished(false)).is_err());
    }
    tracer.start("x".repeat(40 << 10)).end(); // more than half a ring
    // Some answers failed or refused spans: the flush says so.
    let flushed = engine.flush(Duration::from_secs(10));
    assert!(
        matches!(flushed, Err(otlpx::FlushError::Dropped { .. })),
        "{flushed:?}"
    );

    let s = engine.stats();
    assert_eq!(s.recorded, spans as u64 + 3);
    assert_eq!(s.export.requests, spans as u64);
    let failures = &s.export.failures;
    assert_eq!(
        [
            failures.unavailable,
            failures.timeout,
            failures.throttled,
            failures.rejected,
            failures.protocol,
            failures.other,
            failures.tls
        ],
        [1, 2, 3, 4, 5, 6, 7]
    );
    assert_eq!((s.dropped.invalid, s.dropped.too_large), (2, 1));
    assert_eq!((s.dropped.export_failed, s.dropped.rejected), (28, 2));
    assert_eq!(s.exported, spans as u64 - 30);
    // Every request sent was answered: each histogram counted each once.
    assert_eq!(s.export.duration_nanos.count(), s.export.requests);
    assert_eq!(s.export.batch_spans.count(), s.export.requests);
    assert_eq!(s.export.batch_bytes.count(), s.export.requests);
    // One span per request.
    assert_eq!(s.export.batch_spans.counts[0], s.export.requests);
    assert_eq!(s.export.batch_spans.sum, s.export.requests);
    assert_eq!(s.export.batch_bytes.sum, s.export.bytes_uncompressed);
    assert!(s.export.last_success_unix_nanos > 0);
    assert!(s.export.last_failure_unix_nanos > 0);
    // Rings: 64 KiB each; at least one held spans, and the high water is
    // between what is in use and the capacity.
    assert_eq!(s.rings.len(), 2);
    for r in &s.rings {
        assert_eq!(r.capacity_bytes, 64 << 10);
        assert!(r.used_bytes <= r.high_water_bytes && r.high_water_bytes <= r.capacity_bytes);
    }
    assert!(
        s.rings.iter().any(|r| r.high_water_bytes > 0),
        "{:?}",
        s.rings
    );
    assert_eq!(s.rings.iter().map(|r| r.used_bytes).sum::<u64>(), 0);

    let scrape = check_text_matches(&s);
    assert_eq!(
        check_histogram(
            &scrape,
            "otlpx_export_batch_items",
            Signal::Traces,
            &s.export.batch_spans,
            1.0
        ),
        counter(
            &scrape,
            "otlpx_export_requests_total",
            &[("signal", "traces")]
        )
    );
    engine.shutdown(Duration::from_secs(5)).unwrap();
}

#[test]
fn prometheus_text_matches_stats_with_spans_queued_dropped_and_abandoned() {
    // The receiver never answers and one request may be out: the first
    // request stays in flight, the ring fills and drops.
    let transport = Scripted::new(Vec::new(), Answer::Never, "never");
    let engine = Engine::builder()
        .rings(1)
        .ring_bytes_per_cpu(4096)
        .max_in_flight(1)
        .max_batch_spans(4)
        .transport(transport)
        .build()
        .unwrap();
    let tracer = engine.tracer("prometheus", "1");
    tracer.start("first").end();
    // The worker takes the first span; then the rest queue and overflow.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while engine.stats().in_flight == 0 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
    for _ in 0..500 {
        tracer.start("queued").end();
    }
    let s = engine.stats();
    assert_eq!(s.in_flight, 1);
    assert!(s.in_rings > 0 && s.dropped.ring_full > 0, "{s:?}");
    let ring = s.rings[0];
    assert!(ring.used_bytes > 0 && ring.used_bytes <= ring.high_water_bytes);
    assert!(ring.high_water_bytes <= ring.capacity_bytes);
    assert!(ring.high_water_bytes > ring.capacity_bytes / 2, "{ring:?}");
    assert_eq!(s.export.duration_nanos.count(), 0, "nothing answered");
    assert_eq!(s.export.last_success_unix_nanos, 0);
    let scrape = check_text_matches(&s);
    assert_eq!(
        check_histogram(
            &scrape,
            "otlpx_export_batch_items",
            Signal::Traces,
            &s.export.batch_spans,
            1.0
        ),
        1
    );
    check_time(
        &scrape,
        "otlpx_last_export_success_timestamp_seconds",
        Signal::Traces,
        0,
    );

    // Shutdown abandons the request out; its span is dropped as such.
    let _ = engine.shutdown(Duration::from_millis(100));
    let s = engine.stats();
    assert_eq!((s.in_flight, s.dropped.shutdown), (0, 1));
    check_text_matches(&s);
}

#[test]
fn prometheus_text_has_each_signals_own_counts_under_its_label() {
    // Record only: the caller drains, so nothing moves between snapshots.
    let engine = Engine::builder().rings(2).export(false).build().unwrap();
    let tracer = engine.tracer("prometheus", "1");
    for _ in 0..3 {
        tracer.start("op").end();
    }
    engine
        .logger("x", "")
        .emit(&LogRecord::new(Severity::INFO).body("m"));
    // One of the spans, none of the log records, taken out by the caller.
    let mut out = bytes::BytesMut::new();
    assert_eq!(engine.drain_traces(&mut out, 1), 1);
    let traces = engine.signal_stats(Signal::Traces);
    let logs = engine.signal_stats(Signal::Logs);
    let metrics = engine.signal_stats(Signal::Metrics);
    assert_eq!((traces.recorded, traces.drained_by_caller), (3, 1));
    assert_eq!((logs.recorded, logs.in_rings), (1, 1));
    assert_eq!(metrics.recorded, 0, "nothing records metrics");

    // As the admin endpoint renders them: every signal, one text.
    let text = otlpx::telemetry::prometheus_text(&Signal::ALL.map(|s| (s, engine.signal_stats(s))));
    assert_eq!(
        text,
        otlpx::telemetry::prometheus_text(&[
            (Signal::Traces, &traces),
            (Signal::Logs, &logs),
            (Signal::Metrics, &metrics),
        ])
    );
    let scrape = parse(&text);
    let recorded = |signal| counter(&scrape, "otlpx_items_recorded_total", &[("signal", signal)]);
    assert_eq!(
        (recorded("traces"), recorded("logs"), recorded("metrics")),
        (3, 1, 0)
    );
    check_signal(&scrape, Signal::Traces, &traces);
    check_signal(&scrape, Signal::Logs, &logs);
    check_signal(&scrape, Signal::Metrics, &metrics);
    check_engine_wide(&scrape, &traces);
    // Each family's samples: one per signal (per reason, kind or ring)
    // for the labelled ones, one for the engine-wide ones.
    let samples = |name: &str| scrape.samples.iter().filter(|x| x.metric == name).count();
    assert_eq!(samples("otlpx_items_recorded_total"), 3);
    assert_eq!(samples("otlpx_items_dropped_total"), 3 * 10);
    assert_eq!(samples("otlpx_export_failures_total"), 3 * 7);
    assert_eq!(samples("otlpx_ring_capacity_bytes"), 3 * 2);
    assert_eq!(samples("otlpx_export_duration_seconds"), 3);
    assert_eq!(samples("otlpx_config_warnings"), 1);
    assert_eq!(samples("otlpx_build_info"), 1);

    // The same log record, taken out: the logs' count moves, not the
    // traces'.
    assert_eq!(engine.drain(Signal::Logs, &mut out, 512), 1);
    let logs = engine.signal_stats(Signal::Logs);
    let scrape = parse(&otlpx::telemetry::prometheus_text(&[
        (Signal::Traces, &traces),
        (Signal::Logs, &logs),
    ]));
    let drained = |signal| {
        counter(
            &scrape,
            "otlpx_items_drained_by_caller_total",
            &[("signal", signal)],
        )
    };
    assert_eq!((drained("traces"), drained("logs")), (1, 1));
    check_signal(&scrape, Signal::Logs, &logs);
}

// ---------------------------------------------------------------------------
// Diagnostics: a subscriber that keeps every event, for the whole binary.

/// One event: its level and its fields as `name=value` text.
#[derive(Clone, Debug)]
struct Logged {
    level: tracing::Level,
    text: String,
}

#[derive(Default)]
struct Keep(Mutex<Vec<Logged>>);

struct Fields(String);

impl tracing::field::Visit for Fields {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        let _ = write!(self.0, "{}={:?} ", field.name(), value);
    }
}

impl tracing::Subscriber for &'static Keep {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        let mut fields = Fields(String::new());
        event.record(&mut fields);
        self.0.lock().unwrap().push(Logged {
            level: *event.metadata().level(),
            text: fields.0,
        });
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

/// Every event logged in this test binary so far.
fn logged() -> Vec<Logged> {
    static KEEP: OnceLock<&'static Keep> = OnceLock::new();
    let keep = KEEP.get_or_init(|| {
        let keep: &'static Keep = Box::leak(Box::default());
        tracing::subscriber::set_global_default(keep).expect("the first subscriber");
        keep
    });
    keep.0.lock().unwrap().clone()
}

fn warnings_with(needle: &str) -> Vec<Logged> {
    logged()
        .into_iter()
        .filter(|e| e.level == tracing::Level::WARN && e.text.contains(needle))
        .collect()
}

#[test]
fn a_flood_of_failures_logs_one_warning_per_kind_and_no_header_value() {
    logged(); // the subscriber, before the engine's first event
    // Failures of two kinds, then partial successes, each message marked.
    let marker = "failure-marker-7f3a";
    let script = [
        vec![Answer::Fail(FailureKind::Unavailable); 41],
        vec![Answer::Fail(FailureKind::Throttled); 5],
    ]
    .concat();
    let transport = Scripted::new(script, Answer::Partial(1), marker);
    let secret = "s3cret-header-value-9c1d";
    let engine = Engine::builder()
        .rings(1)
        .max_batch_spans(1)
        .header("x-api-key", secret)
        // One attempt per request: the script's answers map to requests.
        .retry(false)
        .transport(transport)
        .build()
        .unwrap();
    let tracer = engine.tracer("diagnostics", "1");
    for _ in 0..60 {
        tracer.start("op").end();
    }
    let flushed = engine.flush(Duration::from_secs(10));
    assert!(
        matches!(flushed, Err(otlpx::FlushError::Dropped { .. })),
        "{flushed:?}"
    );
    let s = engine.stats();
    assert_eq!(s.export.failures.unavailable, 41);
    assert_eq!(s.export.failures.throttled, 5);
    assert_eq!(s.dropped.rejected, 14);

    let warned = warnings_with(marker);
    let kinds: Vec<_> = warned
        .iter()
        .map(|e| {
            if e.text.contains("kind=Unavailable") {
                "unavailable"
            } else if e.text.contains("kind=Throttled") {
                "throttled"
            } else if e.text.contains("rejected=1") {
                "partial"
            } else {
                panic!("unexpected warning {e:?}")
            }
        })
        .collect();
    let mut sorted = kinds.clone();
    sorted.sort_unstable();
    assert_eq!(
        sorted,
        ["partial", "throttled", "unavailable"],
        "{warned:?}"
    );
    assert!(
        warned.iter().all(|e| e.text.contains("suppressed=0")),
        "{warned:?}"
    );

    engine.shutdown(Duration::from_secs(5)).unwrap();
    // Held back: 40 + 4 failures, 13 partial successes.
    let held = warnings_with("suppressed=57 ");
    assert_eq!(held.len(), 1, "{:?}", logged());
    let all = logged();
    assert!(
        all.iter().all(|e| !e.text.contains(secret)),
        "a header value was logged"
    );
    let debug = |needle: &str| {
        all.iter()
            .any(|e| e.level == tracing::Level::DEBUG && e.text.contains(needle))
    };
    assert!(debug("export worker started") && debug("export worker stopped"));
}

#[test]
fn shutdown_abandoning_requests_warns_once() {
    logged();
    let transport = Scripted::new(Vec::new(), Answer::Never, "never");
    let engine = Engine::builder()
        .rings(1)
        .max_batch_spans(1)
        .max_in_flight(3)
        .transport(transport)
        .build()
        .unwrap();
    let tracer = engine.tracer("diagnostics", "1");
    for _ in 0..3 {
        tracer.start("op").end();
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while engine.stats().in_flight < 3 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
    let _ = engine.shutdown(Duration::from_millis(50));
    assert_eq!(engine.stats().dropped.shutdown, 3);
    // Three requests abandoned, one warning for them.
    let abandoned = warnings_with("spans=3 ");
    assert_eq!(abandoned.len(), 1, "{:?}", logged());
    assert!(
        abandoned[0].text.contains("shutdown abandoned"),
        "{abandoned:?}"
    );
}
