//! The export side with a stand-in transport: every span recorded by
//! several threads arrives exactly once, through each compression; answers
//! and failures are counted by kind; retries resend the same bytes and
//! stop at the batch export timeout; batches respect size and age; a full
//! ring wakes a sleeping worker; shutdown keeps its deadline against a
//! receiver that never answers. (Pinning and idling: `export_idle.rs`;
//! retries against a real receiver: `tests/tests/e2e_retry.rs`.)

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as Av;
use otlpx::transport::{
    ExportError, ExportFuture, ExportRequest, ExportResponse, Retry, Transport,
};
use otlpx::{BuildError, Compression, Engine, FailureKind, FlushError, FlushReport};
use prost::Message;
use std::collections::HashSet;
use std::io::Read;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What the stand-in transport answers.
#[derive(Clone)]
enum Answer {
    Accept,
    Partial(u64),
    Fail(FailureKind),
    /// Fail the first `n` requests with `retry`, then accept.
    FailFirst(usize, Retry),
    Never,
}

/// Keeps every request and answers as told.
struct Capture {
    answer: Answer,
    requests: Mutex<Vec<ExportRequest>>,
}

impl Capture {
    fn new(answer: Answer) -> Arc<Self> {
        Arc::new(Self {
            answer,
            requests: Mutex::new(Vec::new()),
        })
    }

    fn requests(&self) -> Vec<ExportRequest> {
        self.requests.lock().unwrap().clone()
    }

    /// Every request decompressed and decoded, with its span count.
    fn decoded(&self) -> Vec<(ExportTraceServiceRequest, usize)> {
        self.requests()
            .iter()
            .map(|r| {
                let mut plain = Vec::new();
                match r.compression {
                    Compression::Gzip => {
                        flate2::read::GzDecoder::new(&r.body[..])
                            .read_to_end(&mut plain)
                            .unwrap();
                    }
                    Compression::Zstd => plain = zstd::decode_all(&r.body[..]).unwrap(),
                    _ => plain = r.body.to_vec(),
                }
                (
                    ExportTraceServiceRequest::decode(&plain[..]).unwrap(),
                    r.items,
                )
            })
            .collect()
    }
}

impl Transport for Capture {
    fn export(&self, request: ExportRequest) -> ExportFuture {
        let seen = {
            let mut requests = self.requests.lock().unwrap();
            requests.push(request);
            requests.len()
        };
        let answer = self.answer.clone();
        Box::pin(async move {
            match answer {
                Answer::Accept => Ok(ExportResponse::accepted()),
                Answer::FailFirst(n, retry) if seen <= n => {
                    Err(ExportError::new(FailureKind::Throttled, "not now").with_retry(retry))
                }
                Answer::FailFirst(..) => Ok(ExportResponse::accepted()),
                Answer::Partial(n) => Ok(ExportResponse::partial(n, "too old")),
                Answer::Fail(kind) => Err(ExportError::new(kind, "refused")),
                Answer::Never => std::future::pending().await,
            }
        })
    }
}

fn engine_with(capture: &Arc<Capture>) -> otlpx::EngineBuilder {
    Engine::builder()
        .service_name("export-test")
        .transport(capture.clone())
}

/// (thread, seq) of every span in `requests`.
fn span_ids(requests: &[(ExportTraceServiceRequest, usize)]) -> Vec<(i64, i64)> {
    let mut ids = Vec::new();
    for (req, items) in requests {
        let mut n = 0;
        for span in req
            .resource_spans
            .iter()
            .flat_map(|rs| &rs.scope_spans)
            .flat_map(|ss| &ss.spans)
        {
            n += 1;
            let int = |key: &str| {
                span.attributes
                    .iter()
                    .find(|kv| kv.key == key)
                    .and_then(|kv| match kv.value.as_ref()?.value.as_ref()? {
                        Av::IntValue(i) => Some(*i),
                        _ => None,
                    })
                    .unwrap()
            };
            ids.push((int("thread"), int("seq")));
        }
        assert_eq!(n, *items, "a request's item count matches its spans");
    }
    ids
}

fn record(engine: &Engine, threads: i64, per_thread: i64) {
    let tracer = engine.tracer("export-test", "1");
    std::thread::scope(|s| {
        for t in 0..threads {
            let tracer = &tracer;
            s.spawn(move || {
                for seq in 0..per_thread {
                    let mut span = tracer.start("op");
                    span.set_attribute("thread", t);
                    span.set_attribute("seq", seq);
                    span.end();
                }
            });
        }
    });
}

#[test]
fn every_span_arrives_exactly_once_through_each_compression() {
    let (threads, per_thread) = if cfg!(debug_assertions) {
        (4, 3_000)
    } else {
        (4, 30_000)
    };
    let total = (threads * per_thread) as u64;
    for compression in [Compression::None, Compression::Gzip, Compression::Zstd] {
        let capture = Capture::new(Answer::Accept);
        // Sized for everything recorded, whatever the worker manages
        // meanwhile: on a loaded machine it may send nothing until the
        // producers are done. One ring, which every thread shares (with a
        // ring per CPU, all four threads may run on one CPU); a span here
        // takes under 100 bytes, so 120,000 fit in 32 MiB with room to
        // spare (a span may take half a ring, so the rest is the limit).
        let engine = engine_with(&capture)
            .compression(compression)
            .max_batch_spans(300)
            .rings(1)
            .ring_bytes_per_cpu(32 << 20)
            .build()
            .unwrap();
        record(&engine, threads, per_thread);
        assert_eq!(engine.stats().dropped.ring_full, 0, "the ring is too small");
        engine.flush(Duration::from_secs(30)).unwrap();

        let requests = capture.decoded();
        let ids = span_ids(&requests);
        let unique: HashSet<_> = ids.iter().copied().collect();
        assert_eq!(ids.len() as u64, total, "{compression:?}");
        assert_eq!(unique.len() as u64, total, "{compression:?}: a span twice");
        assert!(requests.iter().all(|(_, n)| *n <= 300));

        let s = engine.stats();
        assert_eq!((s.recorded, s.exported), (total, total), "{compression:?}");
        assert_eq!((s.in_flight, s.in_rings, s.dropped.total()), (0, 0, 0));
        assert_eq!(s.export.requests, requests.len() as u64);
        let sent: usize = capture.requests().iter().map(|r| r.body.len()).sum();
        assert_eq!(s.export.bytes_sent, sent as u64);
        if compression != Compression::None {
            // Random ids make up much of these tiny spans: modest ratios.
            assert!(s.export.bytes_sent < s.export.bytes_uncompressed);
        }
        engine.shutdown(Duration::from_secs(5)).unwrap();
    }
}

/// The report of a flush that must have failed because spans were dropped
/// (and only for that reason); the error names the reasons.
fn dropping(flushed: Result<FlushReport, FlushError>) -> FlushReport {
    match flushed {
        Err(e @ FlushError::Dropped { .. }) => {
            let text = e.to_string();
            assert!(text.contains("spans dropped"), "{text}");
            let FlushError::Dropped { report, .. } = e else {
                unreachable!()
            };
            for (reason, n) in report.dropped.by_reason() {
                if n > 0 {
                    assert!(text.contains(&format!("{reason} {n}")), "{text}");
                }
            }
            *report
        }
        other => panic!("expected FlushError::Dropped, got {other:?}"),
    }
}

#[test]
fn partial_success_and_failures_are_counted_by_kind() {
    let capture = Capture::new(Answer::Partial(2));
    let engine = engine_with(&capture).max_batch_spans(10).build().unwrap();
    record(&engine, 1, 50);
    let report = dropping(engine.flush(Duration::from_secs(10)));
    assert_eq!((report.delivered, report.dropped.rejected), (40, 10));
    assert_eq!(report.dropped.total(), 10);
    let s = engine.stats();
    assert_eq!(s.export.requests, 5);
    assert_eq!((s.exported, s.dropped.rejected), (40, 10));

    for kind in [
        FailureKind::Unavailable,
        FailureKind::Rejected,
        FailureKind::Throttled,
    ] {
        let capture = Capture::new(Answer::Fail(kind));
        // Retries off: each request fails once (retries are tested below).
        let engine = engine_with(&capture)
            .max_batch_spans(10)
            .retry(false)
            .build()
            .unwrap();
        record(&engine, 1, 30);
        let report = dropping(engine.flush(Duration::from_secs(10)));
        assert_eq!((report.delivered, report.dropped.export_failed), (0, 30));
        assert_eq!(report.failures.total(), 3, "{kind:?}");
        let s = engine.stats();
        assert_eq!((s.exported, s.dropped.export_failed), (0, 30), "{kind:?}");
        let f = s.export.failures;
        let counted = match kind {
            FailureKind::Unavailable => f.unavailable,
            FailureKind::Rejected => f.rejected,
            _ => f.throttled,
        };
        assert_eq!((counted, f.total()), (3, 3), "{kind:?}");
        assert!(engine.last_export_error().unwrap().contains("refused"));
    }
}

#[test]
fn shutdown_keeps_its_deadline_when_the_receiver_never_answers() {
    let capture = Capture::new(Answer::Never);
    let engine = engine_with(&capture)
        .max_batch_spans(10)
        .max_in_flight(2)
        .export_timeout(Duration::from_secs(3600))
        .build()
        .unwrap();
    record(&engine, 1, 100);
    let start = Instant::now();
    let report = engine
        .shutdown(Duration::from_millis(300))
        .unwrap_err()
        .report;
    // Two requests went out and were abandoned; the rest never left.
    assert_eq!(
        (
            report.delivered,
            report.spooled,
            report.dropped,
            report.in_rings
        ),
        (0, 0, 20, 80)
    );
    assert!(!report.flushed);
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "{:?}",
        start.elapsed()
    );
    let s = engine.stats();
    // Two requests went out and were abandoned; the rest never left.
    assert_eq!(s.dropped.shutdown, 20);
    assert_eq!((s.in_flight, s.in_rings), (0, 80));
    assert_eq!(s.recorded, 100);
    assert_eq!(
        engine.flush(Duration::from_secs(1)),
        Err(FlushError::NotExporting)
    );
    // A second call does nothing, and reports nothing.
    assert_eq!(
        engine.shutdown(Duration::from_secs(1)).unwrap(),
        otlpx::ShutdownReport::default()
    );
}

#[test]
fn attempts_that_time_out_are_retried_until_the_batch_export_timeout() {
    let capture = Capture::new(Answer::Never);
    let engine = engine_with(&capture)
        .export_timeout(Duration::from_millis(100))
        .batch_export_timeout(Duration::from_millis(1000))
        .retry_backoff(Duration::from_millis(10), Duration::from_millis(50))
        .build()
        .unwrap();
    record(&engine, 1, 5);
    let start = Instant::now();
    let report = dropping(engine.flush(Duration::from_secs(10)));
    let took = start.elapsed();
    assert_eq!(report.dropped.export_failed, 5);
    assert!(report.failures.timeout >= 1, "{report:?}");
    let s = engine.stats();
    let e = &s.export;
    assert_eq!((s.dropped.export_failed, e.requests), (5, 1));
    // Every attempt timed out; all but the last were retried.
    assert!(e.retries >= 5, "{e:?}");
    assert_eq!(e.failures.timeout, e.retries + 1, "{e:?}");
    assert_eq!(capture.requests().len() as u64, e.retries + 1);
    assert!(took < Duration::from_millis(2500), "{took:?}");
}

#[test]
fn retries_resend_the_same_bytes_after_the_asked_delay_or_backoff() {
    let asked = Duration::from_millis(300);
    for (retry, at_least) in [
        (Retry::After(asked), asked),
        (Retry::Backoff, Duration::ZERO),
    ] {
        let capture = Capture::new(Answer::FailFirst(3, retry));
        let engine = engine_with(&capture)
            .compression(Compression::Zstd)
            .retry_backoff(Duration::from_millis(20), Duration::from_millis(40))
            .build()
            .unwrap();
        record(&engine, 1, 7);
        let start = Instant::now();
        engine.flush(Duration::from_secs(10)).unwrap();
        let took = start.elapsed();
        let s = engine.stats();
        assert_eq!((s.exported, s.dropped.total()), (7, 0), "{retry:?}");
        let e = &s.export;
        assert_eq!((e.requests, e.retries), (1, 3), "{retry:?}");
        assert_eq!((e.failures.throttled, e.failures.total()), (3, 3));
        assert!(took >= at_least * 3, "{retry:?}: {took:?}");
        // Four attempts, one body: the very same buffer, never re-encoded.
        let sent = capture.requests();
        assert_eq!(sent.len(), 4);
        assert!(
            sent.iter()
                .all(|r| r.body.as_ptr() == sent[0].body.as_ptr() && r.body == sent[0].body)
        );
        assert_eq!(capture.decoded()[0].1, 7);
    }
}

#[test]
fn final_errors_and_retries_turned_off_are_not_retried() {
    for (retry, enabled) in [(Retry::Never, true), (Retry::Backoff, false)] {
        let capture = Capture::new(Answer::FailFirst(1, retry));
        let engine = engine_with(&capture).retry(enabled).build().unwrap();
        record(&engine, 1, 4);
        let report = dropping(engine.flush(Duration::from_secs(10)));
        assert_eq!(report.dropped.export_failed, 4, "{retry:?}");
        let s = engine.stats();
        assert_eq!((s.exported, s.dropped.export_failed), (0, 4), "{retry:?}");
        assert_eq!((s.export.retries, s.export.failures.throttled), (0, 1));
        assert_eq!(capture.requests().len(), 1);
    }
}

#[test]
fn a_delay_past_the_batch_export_timeout_gives_up_at_once() {
    let capture = Capture::new(Answer::FailFirst(1, Retry::After(Duration::from_secs(60))));
    let engine = engine_with(&capture).build().unwrap();
    record(&engine, 1, 3);
    let start = Instant::now();
    let report = dropping(engine.flush(Duration::from_secs(10)));
    assert_eq!(report.dropped.export_failed, 3);
    assert!(start.elapsed() < Duration::from_secs(5));
    let s = engine.stats();
    assert_eq!((s.dropped.export_failed, s.export.retries), (3, 0));
}

#[test]
fn batches_wait_for_their_age_and_a_filling_ring_wakes_the_worker() {
    // A long delay: a few spans stay put.
    let capture = Capture::new(Answer::Accept);
    let engine = engine_with(&capture)
        .rings(1)
        .ring_bytes_per_cpu(64 << 10)
        .schedule_delay(Duration::from_secs(60))
        .build()
        .unwrap();
    record(&engine, 1, 3);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(capture.requests().len(), 0, "sent before its delay");

    // Filling an eighth of the ring rings the doorbell: sent long before
    // the delay.
    record(&engine, 1, 400);
    let start = Instant::now();
    while engine.stats().exported == 0 && start.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(
        engine.stats().exported > 0,
        "a filling ring did not wake the worker"
    );
    drop(engine);

    // A short delay: one span goes on its own.
    let capture = Capture::new(Answer::Accept);
    let engine = engine_with(&capture)
        .schedule_delay(Duration::from_millis(50))
        .build()
        .unwrap();
    record(&engine, 1, 1);
    let start = Instant::now();
    while engine.stats().exported == 0 && start.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(engine.stats().exported, 1, "a lone span never left");
}

#[test]
fn dropping_the_last_handle_delivers_what_was_recorded() {
    let capture = Capture::new(Answer::Accept);
    let engine = engine_with(&capture)
        .schedule_delay(Duration::from_secs(60))
        .build()
        .unwrap();
    let clone = engine.clone();
    record(&engine, 2, 500);
    drop(engine);
    assert!(
        capture.requests().is_empty(),
        "a clone still holds the engine"
    );
    drop(clone);
    assert_eq!(span_ids(&capture.decoded()).len(), 1000);
}

#[test]
fn export_settings_are_checked_at_build() {
    let bad = |b: otlpx::EngineBuilder| match b.build() {
        Err(BuildError::Config(e)) => e.key,
        Err(e) => panic!("unexpected error {e}"),
        Ok(_) => panic!("built"),
    };
    let e = || Engine::builder();
    assert_eq!(bad(e().endpoint("ftp://collector:4317")), "endpoint");
    assert_eq!(bad(e().endpoint("not a url")), "endpoint");
    assert_eq!(
        bad(e()
            .endpoint("https://collector:4317")
            .certificate("/no/such/ca.pem")),
        "certificate"
    );
    assert_eq!(bad(e().traces_endpoint("http://")), "traces_endpoint");
    assert_eq!(
        bad(e().endpoint("http://c:4317").header("x-key", "a\nb")),
        "header"
    );
    assert_eq!(
        bad(e().endpoint("http://c:4317").header("bad key", "v")),
        "header"
    );
    assert_eq!(
        bad(e().endpoint("http://c:4317").connections(0)),
        "connections"
    );
    assert_eq!(
        bad(e().endpoint("http://c:4317").max_batch_spans(0)),
        "max_batch_spans"
    );
    assert_eq!(
        bad(e().endpoint("http://c:4317").export_timeout(Duration::ZERO)),
        "export_timeout"
    );
    assert_eq!(
        bad(e()
            .endpoint("http://c:4317")
            .compression(Compression::Gzip)
            .compression_level(12)),
        "compression_level"
    );
    let msg = e()
        .endpoint("http://c:4317")
        .header("authorization", "Bearer s3cret\n")
        .build()
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("authorization") && !msg.contains("s3cret"),
        "{msg}"
    );
    // Settings are checked whether or not the engine exports.
    assert_eq!(bad(e().connections(0)), "connections");
}

/// Records `n` spans `thread = batch`, `seq` 0..n, and waits until the
/// transport has seen `requests` requests.
fn record_batch(engine: &Engine, capture: &Capture, batch: i64, n: i64, requests: usize) {
    let tracer = engine.tracer("export-test", "1");
    for seq in 0..n {
        let mut span = tracer.start("op");
        span.set_attribute("thread", batch);
        span.set_attribute("seq", seq);
        span.end();
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while capture.requests().len() < requests {
        assert!(Instant::now() < deadline, "request {requests} never went");
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// A request waiting for a retry gives its send slot back: in a short
/// outage requests wait in memory, within the byte budget, and nothing is
/// evicted however few send slots there are.
#[test]
fn requests_waiting_for_a_retry_hold_bytes_not_send_slots() {
    // Both slots' first requests wait 1 s for their retry.
    let capture = Capture::new(Answer::FailFirst(2, Retry::After(Duration::from_secs(1))));
    let engine = engine_with(&capture)
        .rings(1)
        .ring_bytes_per_cpu(64 << 10)
        .max_batch_spans(10)
        .max_in_flight(2)
        .build()
        .unwrap();
    record_batch(&engine, &capture, 0, 10, 1);
    record_batch(&engine, &capture, 1, 10, 2);
    // ~96 bytes a span: 400 fill the 64 KiB ring past half, which used
    // to evict batch 0 when the two waiting requests held both slots.
    let third = Instant::now();
    record_batch(&engine, &capture, 2, 400, 42);
    assert!(
        third.elapsed() < Duration::from_millis(900),
        "{:?}",
        third.elapsed()
    );
    engine.flush(Duration::from_secs(10)).unwrap();
    let s = engine.stats();
    assert_eq!(
        (s.recorded, s.exported, s.dropped.total()),
        (420, 420, 0),
        "{s:?}"
    );
    assert_eq!(s.export.retries, 2);
    let largest = capture
        .requests()
        .iter()
        .map(|r| r.body.len())
        .max()
        .unwrap() as u64;
    // The two waiting requests and at least one more were held at once.
    assert!(
        s.export.in_flight_bytes_high_water >= 3 * largest / 2,
        "{:?}",
        s.export
    );
}

#[test]
fn a_full_budget_evicts_the_oldest_request_waiting_for_a_retry_once_a_ring_is_half_full() {
    use otlpx::Overflow;
    for overflow in [Overflow::DropOldest, Overflow::DropNewest] {
        let label = format!("{overflow:?}");
        // The first two requests wait 1 s for their retry, and fill the
        // byte budget between them (a request of 10 spans takes ~1.1 KB).
        let capture = Capture::new(Answer::FailFirst(2, Retry::After(Duration::from_secs(1))));
        let engine = engine_with(&capture)
            .rings(1)
            .ring_bytes_per_cpu(64 << 10)
            .max_batch_spans(10)
            .max_in_flight(8)
            .max_in_flight_bytes(1800)
            .overflow(overflow)
            .build()
            .unwrap();
        record_batch(&engine, &capture, 0, 10, 1);
        record_batch(&engine, &capture, 1, 10, 2);
        let first = capture.requests()[0].body.len();
        assert!(
            (900..1800).contains(&first),
            "{label}: a request of {first} bytes"
        );
        // ~96 bytes a span: 400 fill the 64 KiB ring past half. Drop
        // oldest then evicts batch 0 at once and sends; drop newest waits
        // for a retry to free bytes.
        let third = Instant::now();
        record_batch(&engine, &capture, 2, 400, 3);
        let waited = third.elapsed();
        // Under drop oldest a flush fails naming the eviction if it comes
        // while it waits (batch 1 may go then); it must not time out.
        match engine.flush(Duration::from_secs(10)) {
            Ok(_) | Err(otlpx::FlushError::Dropped { .. }) => {}
            Err(e) => panic!("{label}: {e}"),
        }
        let s = engine.stats();
        assert_eq!(s.recorded, 420, "{label}");
        assert_eq!(s.recorded, s.exported + s.dropped.total(), "{label}");
        let batches: Vec<i64> = capture
            .decoded()
            .into_iter()
            .map(|request| span_ids(&[request])[0].0)
            .collect();
        match overflow {
            Overflow::DropOldest => {
                assert!(waited < Duration::from_millis(900), "{label}: {waited:?}");
                // Batch 0 went first; batch 1 may have followed it while
                // the ring was still over half full.
                assert!(
                    s.dropped.evicted == 10 || s.dropped.evicted == 20,
                    "{label}: {s:?}"
                );
                assert_eq!(&batches[..3], [0, 1, 2], "{label}");
                assert_eq!(s.exported, 420 - s.dropped.evicted, "{label}");
                assert_eq!(s.dropped.total(), s.dropped.evicted, "{label}");
            }
            _ => {
                assert!(waited >= Duration::from_millis(500), "{label}: {waited:?}");
                assert_eq!((s.exported, s.dropped.total()), (420, 0), "{label}");
                assert_eq!(s.export.retries, 2, "{label}");
            }
        }
        let e = &s.export;
        assert_eq!(e.in_flight_bytes, 0, "{label}");
        let largest = capture
            .requests()
            .iter()
            .map(|r| r.body.len())
            .max()
            .unwrap();
        assert!(
            e.in_flight_bytes_high_water >= largest as u64
                && e.in_flight_bytes_high_water <= 1800 + largest as u64,
            "{label}: {e:?}"
        );
    }
}

#[test]
fn the_byte_budget_bounds_requests_in_flight() {
    // A budget of one byte: one request at a time, whatever max_in_flight.
    let capture = Capture::new(Answer::FailFirst(
        1,
        Retry::After(Duration::from_millis(300)),
    ));
    let engine = engine_with(&capture)
        .max_batch_spans(10)
        .max_in_flight(8)
        .max_in_flight_bytes(1)
        .overflow(otlpx::Overflow::DropNewest)
        .build()
        .unwrap();
    record_batch(&engine, &capture, 0, 10, 1);
    let start = Instant::now();
    record_batch(&engine, &capture, 1, 10, 3);
    // The second batch waited for the first's retry to be answered.
    assert!(
        start.elapsed() >= Duration::from_millis(200),
        "{:?}",
        start.elapsed()
    );
    engine.flush(Duration::from_secs(10)).unwrap();
    let s = engine.stats();
    assert_eq!((s.exported, s.dropped.total()), (20, 0));
    let largest = capture
        .requests()
        .iter()
        .map(|r| r.body.len())
        .max()
        .unwrap();
    assert!(s.export.in_flight_bytes_high_water <= largest as u64);
}
