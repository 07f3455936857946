//! The application-thread cost of one span: start, 8 attributes, end.
//!
//! `otlpx/*` record through otlpx into its per-CPU rings; the rings are
//! drained between timed chunks (outside the timing) so they never fill: a
//! full ring would turn the measurement into the cheap drop path, and every
//! sample asserts that nothing was dropped. `opentelemetry_sdk/*` record the
//! same span through an `SdkTracerProvider` with no processor (no export at
//! all), the SDK's own "sampled span without export" setup: its best case,
//! where `end` discards the span. `opentelemetry_sdk_exporting/*` add the
//! SDK's `SimpleSpanProcessor` and an exporter that discards each batch:
//! the SDK then builds the `SpanData` every exporter needs and hands it
//! over, which is the work otlpx's figure includes (its span leaves `end`
//! as finished OTLP bytes in a ring).
//!
//! `otlpx_admin_scraped/*` are `otlpx/*` with the engine's admin endpoint
//! on and a scraper thread asking it for `/metrics` every 100 ms, 150
//! times Prometheus' default rate (`GET` over HTTP/1.1 on a new connection
//! each time, `Connection: close`), through every warm-up and measured
//! sample. Read side by side with `otlpx/*`, the difference is what
//! serving the metrics costs a recording thread: the endpoint reading the
//! counters the recorders write, and its thread and the scraper's taking
//! CPU time (with 2 recording threads on a 2-CPU machine, the figure
//! includes that competition). Criterion builds a new engine for each
//! sample, as for `otlpx/*`; the scraper keeps its pace across them and
//! scrapes whichever engine is current. It counts its scrapes, and the
//! bench panics unless they succeeded (at least one, at most one in ten
//! failed): a failed scrape costs the engine nothing, and the figure would
//! then claim a cost it never measured.
//!
//! Run: `cargo bench -p otlpx-bench --bench record_span`.

use criterion::{Bencher, Criterion, Throughput, criterion_group, criterion_main};
use opentelemetry::trace::TracerProvider as _;
use otlpx_bench::{
    CHUNK_SPANS, SCOPE_NAME, SCOPE_VERSION, opentelemetry_provider,
    opentelemetry_provider_exporting, otlpx_engine, otlpx_engine_with_admin, record_opentelemetry,
    record_otlpx, time_in_chunks,
};
use std::hint::spin_loop;
use std::io::{self, Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Barrier, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Spans a thread records per timed chunk (see [`CHUNK_SPANS`]).
const CHUNK: u64 = CHUNK_SPANS;

/// Two threads each call `record` `iters` times, concurrently, in rounds of
/// [`CHUNK`] spans per thread; `between` runs after each round while both
/// threads wait (outside the timing). Each thread times its own chunk; a
/// round counts as the slower thread's time. The sum is therefore the wall
/// time for each thread to record `iters` spans while the other thread does
/// the same: criterion's per-iteration figure is the per-span cost on each
/// of two concurrently recording threads.
fn two_threads<F>(iters: u64, record: &F, mut between: impl FnMut()) -> Duration
where
    F: Fn() + Sync,
{
    // Three parties: the two recorders and this thread, which hands out
    // rounds and runs `between`.
    let barrier = Barrier::new(3);
    // Spans per thread in the current round; 0 tells the threads to stop.
    let round_spans = AtomicU64::new(0);
    // Round arrivals, cumulative: both threads spin until the other one is
    // also awake, so their timed chunks overlap (a barrier's wake-ups are
    // staggered by microseconds).
    let arrived = AtomicU64::new(0);
    let elapsed = [AtomicU64::new(0), AtomicU64::new(0)];
    thread::scope(|s| {
        for slot in &elapsed {
            let (barrier, round_spans, arrived) = (&barrier, &round_spans, &arrived);
            s.spawn(move || {
                let mut round = 0;
                loop {
                    barrier.wait();
                    // Relaxed: the barrier orders this after the store.
                    let n = round_spans.load(Ordering::Relaxed);
                    if n == 0 {
                        break;
                    }
                    round += 1;
                    arrived.fetch_add(1, Ordering::Relaxed);
                    let mut spins = 0u32;
                    while arrived.load(Ordering::Relaxed) < 2 * round {
                        spins += 1;
                        if spins < 1 << 16 {
                            spin_loop();
                        } else {
                            thread::yield_now();
                        }
                    }
                    let start = Instant::now();
                    for _ in 0..n {
                        record();
                    }
                    let nanos = u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX);
                    // Relaxed: published to the main thread by the barrier.
                    slot.store(nanos, Ordering::Relaxed);
                    barrier.wait();
                }
            });
        }
        let mut total = Duration::ZERO;
        let mut left = iters;
        while left > 0 {
            let n = left.min(CHUNK);
            round_spans.store(n, Ordering::Relaxed);
            barrier.wait(); // round starts
            barrier.wait(); // both threads done
            let slowest = elapsed
                .iter()
                .map(|e| e.load(Ordering::Relaxed))
                .max()
                .unwrap_or(0);
            total += Duration::from_nanos(slowest);
            left -= n;
            between();
        }
        round_spans.store(0, Ordering::Relaxed);
        barrier.wait(); // release the threads
        total
    })
}

/// Takes every span out of the engine's rings.
fn drain_all(engine: &otlpx::Engine, out: &mut bytes::BytesMut) {
    while engine.drain_traces(out, 4096) > 0 {}
}

/// Asserts that the engine dropped nothing, so the figure is the recording
/// path and not the drop path.
fn assert_no_drops(engine: &otlpx::Engine) {
    let stats = engine.stats();
    assert_eq!(stats.dropped.total(), 0, "spans dropped: {stats:?}");
}

/// How often [`Scraper`] asks for `/metrics`: 150 times Prometheus'
/// default 15 s, so that a cost too small to see at the real rate shows.
const SCRAPE_INTERVAL: Duration = Duration::from_millis(100);

/// Bound on each step of a scrape (connect, send, read the answer): a
/// stuck endpoint makes a failed scrape, not a hung bench.
const SCRAPE_TIMEOUT: Duration = Duration::from_secs(1);

/// What [`Scraper`]'s thread and the bench share.
#[derive(Default)]
struct ScrapeState {
    /// The current engine's admin endpoint; `None` between engines.
    target: Option<SocketAddr>,
    /// How many engines were handed over: 0 when criterion's filter left
    /// the bench out.
    targets: u64,
    ok: u64,
    failed: u64,
    last_error: Option<String>,
    stop: bool,
}

/// A thread that scrapes the current engine's `/metrics` every
/// [`SCRAPE_INTERVAL`], counting the scrapes that succeeded and failed.
///
/// It holds the state's lock while it scrapes, so handing over a new
/// engine (or none) waits for a scrape in flight: an engine is never
/// dropped under a scrape, which would fail for a reason that is not the
/// endpoint's. The bench only touches the lock between samples, outside
/// the timing.
struct Scraper {
    state: Mutex<ScrapeState>,
    changed: Condvar,
}

impl Scraper {
    fn new() -> Self {
        Self {
            state: Mutex::default(),
            changed: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, ScrapeState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Scrapes every [`SCRAPE_INTERVAL`] until [`stop`](Self::stop). A
    /// scrape that came due while there was no engine happens as soon as
    /// the next one is handed over: the average rate holds, only the
    /// phase moves.
    fn run(&self) {
        let mut body = Vec::with_capacity(64 << 10);
        let mut last: Option<Instant> = None;
        let mut state = self.lock();
        while !state.stop {
            let now = Instant::now();
            let due = last.map_or(now, |l| l + SCRAPE_INTERVAL);
            match state.target {
                Some(addr) if now >= due => {
                    last = Some(now);
                    match scrape(addr, &mut body) {
                        Ok(()) => state.ok += 1,
                        Err(e) => {
                            state.failed += 1;
                            state.last_error = Some(e.to_string());
                        }
                    }
                    self.changed.notify_all();
                }
                Some(_) => {
                    state = self
                        .changed
                        .wait_timeout(state, due - now)
                        .unwrap_or_else(PoisonError::into_inner)
                        .0;
                }
                None => {
                    state = self
                        .changed
                        .wait(state)
                        .unwrap_or_else(PoisonError::into_inner);
                }
            }
        }
    }

    /// Hands over the engine whose endpoint is at `addr`.
    fn set_target(&self, addr: SocketAddr) {
        let mut state = self.lock();
        state.target = Some(addr);
        state.targets += 1;
        self.changed.notify_all();
    }

    /// Takes the current engine back, once no scrape of it is in flight.
    /// Until the first scrape was made it waits for that one too, so that
    /// even a single short sample (`--test`) scrapes once.
    fn clear_target(&self) {
        let mut state = self.lock();
        while state.ok + state.failed == 0 && !state.stop {
            state = self
                .changed
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
        state.target = None;
    }

    /// Stops the thread, after its scrape in flight.
    fn stop(&self) {
        self.lock().stop = true;
        self.changed.notify_all();
    }
}

/// Calls [`Scraper::stop`] when dropped.
struct StopOnDrop<'a>(&'a Scraper);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.stop();
    }
}

/// Runs `bench` while a [`Scraper`] scrapes the engines it hands over;
/// then reports the scrapes, and panics if the bench ran but they did not
/// succeed (at least one, and at most one in ten failed).
fn with_scraper(name: &str, bench: impl FnOnce(&Scraper)) {
    let scraper = Scraper::new();
    thread::scope(|s| {
        let thread = thread::Builder::new()
            .name("scraper".to_owned())
            .spawn_scoped(s, || scraper.run())
            .expect("the scraper thread starts");
        // Stops the thread even if `bench` panics: the scope joins it.
        let stop = StopOnDrop(&scraper);
        bench(&scraper);
        drop(stop);
        thread.join().expect("the scraper does not panic");
    });
    let state = scraper.lock();
    if state.targets == 0 {
        return; // filtered out
    }
    let error = state.last_error.as_deref().unwrap_or("none");
    eprintln!(
        "record_span/{name}: {} scrapes of /metrics, {} failed (last error: {error})",
        state.ok, state.failed
    );
    assert!(
        state.ok > 0 && state.failed * 10 <= state.ok,
        "record_span/{name}: {} of {} scrapes of /metrics failed (last error: {error}); \
         the figure would not include the cost of scraping",
        state.failed,
        state.ok + state.failed,
    );
}

/// One `GET /metrics` to `addr` over a new connection, its answer read into
/// `body`. Succeeds on a 200 answer whose body has the engine's metrics.
fn scrape(addr: SocketAddr, body: &mut Vec<u8>) -> io::Result<()> {
    let mut stream = TcpStream::connect_timeout(&addr, SCRAPE_TIMEOUT)?;
    stream.set_read_timeout(Some(SCRAPE_TIMEOUT))?;
    stream.set_write_timeout(Some(SCRAPE_TIMEOUT))?;
    let request = format!(
        "GET /metrics HTTP/1.1\r\nHost: {addr}\r\nAccept: text/plain\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes())?;
    body.clear();
    stream.read_to_end(body)?;
    let status_line = body.split(|&b| b == b'\n').next().unwrap_or_default();
    let status_line = String::from_utf8_lossy(status_line);
    if status_line.split(' ').nth(1) != Some("200") {
        return Err(io::Error::other(format!(
            "answer {:?}",
            status_line.trim_end()
        )));
    }
    let metric = b"otlpx_items_recorded_total";
    if !body.windows(metric.len()).any(|w| w == metric) {
        return Err(io::Error::other(
            "a 200 answer without otlpx_items_recorded_total",
        ));
    }
    Ok(())
}

/// `otlpx/*`, or with `scraper` `otlpx_admin_scraped/*`: the same engine
/// with its admin endpoint on, handed to the scraper for this sample.
fn otlpx_iter(b: &mut Bencher<'_>, threads: usize, scraper: Option<&Scraper>) {
    let engine = match scraper {
        Some(_) => otlpx_engine_with_admin(),
        None => otlpx_engine(),
    };
    if let Some(scraper) = scraper {
        let addr = engine
            .admin_address()
            .expect("an engine built with an admin address serves one");
        scraper.set_target(addr);
    }
    let tracer = engine.tracer(SCOPE_NAME, SCOPE_VERSION);
    let mut out = bytes::BytesMut::with_capacity(1 << 20);
    let record = || record_otlpx(&tracer);
    b.iter_custom(|iters| {
        let between = || drain_all(&engine, &mut out);
        let elapsed = match threads {
            1 => time_in_chunks(iters, record, between),
            _ => two_threads(iters, &record, between),
        };
        assert_no_drops(&engine);
        elapsed
    });
    if let Some(scraper) = scraper {
        scraper.clear_target();
    }
    let stats = engine.stats();
    assert_no_drops(&engine);
    assert_eq!(stats.in_rings, 0, "{stats:?}");
    assert!(stats.recorded > 0, "{stats:?}");
}

fn opentelemetry_iter(b: &mut Bencher<'_>, threads: usize, exporting: bool) {
    let provider = if exporting {
        opentelemetry_provider_exporting()
    } else {
        opentelemetry_provider()
    };
    let tracer = provider.tracer(SCOPE_NAME);
    let record = || record_opentelemetry(&tracer);
    b.iter_custom(|iters| match threads {
        1 => time_in_chunks(iters, record, || {}),
        _ => two_threads(iters, &record, || {}),
    });
}

fn record_span(c: &mut Criterion) {
    let mut group = c.benchmark_group("record_span");
    group
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));

    // One span per iteration.
    group.throughput(Throughput::Elements(1));
    group.bench_function("otlpx/1thread", |b| otlpx_iter(b, 1, None));
    with_scraper("otlpx_admin_scraped/1thread", |scraper| {
        group.bench_function("otlpx_admin_scraped/1thread", |b| {
            otlpx_iter(b, 1, Some(scraper))
        });
    });
    group.bench_function("opentelemetry_sdk/1thread", |b| {
        opentelemetry_iter(b, 1, false)
    });
    group.bench_function("opentelemetry_sdk_exporting/1thread", |b| {
        opentelemetry_iter(b, 1, true)
    });

    // Per iteration each of the two threads records one span: the time is
    // per span per thread, the throughput is both threads together.
    group.throughput(Throughput::Elements(2));
    group.bench_function("otlpx/2threads", |b| otlpx_iter(b, 2, None));
    with_scraper("otlpx_admin_scraped/2threads", |scraper| {
        group.bench_function("otlpx_admin_scraped/2threads", |b| {
            otlpx_iter(b, 2, Some(scraper))
        });
    });
    group.bench_function("opentelemetry_sdk/2threads", |b| {
        opentelemetry_iter(b, 2, false)
    });
    group.bench_function("opentelemetry_sdk_exporting/2threads", |b| {
        opentelemetry_iter(b, 2, true)
    });

    group.finish();
}

criterion_group!(benches, record_span);
criterion_main!(benches);
