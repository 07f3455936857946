//! The workload: the item every producer records (a span or a log
//! record), the producer loop that times each item on the application
//! thread, and the pacing of `--rate`.
//!
//! Both engines run this same code, monomorphised over [`Recorder`], so
//! they record exactly the same data in the same order. For traces, the
//! benchmark span of `otlpx_bench` (a server span with `--attrs`
//! attributes cycling through string, string, string, string, int, int,
//! double, bool), with every hundredth span's status an error. For logs, a
//! service's log line: the string body [`LOG_BODY`], `--attrs` attributes
//! cycling through [`LOG_ATTRIBUTE_COUNT`] of mixed types (string, string,
//! int, int, bool, double), severity INFO with every hundredth record
//! ERROR, and a span context current on the thread, so that each record
//! carries a trace and a span id: a fresh one every
//! [`ITEMS_PER_CONTEXT`] records, as a request handler logs a few lines
//! per request. The context is attached, not recorded as a span, so that a
//! logs run exports log records only. Keys and values are `'static` and
//! computed before the timed loop (each engine's [`Recorder::prepare`]);
//! nothing is formatted or allocated by the loop itself.

use std::time::Duration;

use hdrhistogram::Histogram;
use minstant::Instant;

use super::error::{BenchError, Context};
use super::options::{Length, Plan, Signal};

/// The description of the error status every hundredth span carries.
pub const ERROR_DESCRIPTION: &str = "upstream timed out";

/// One item in this many is an error: a span's status, a log record's
/// severity.
pub const ERROR_EVERY: u64 = 100;

/// The body of every log record: a typical message of a few dozen
/// characters.
pub const LOG_BODY: &str = "order 4711 shipped to orders.internal in 12.5 ms";

/// The attributes of a log record by default (and the length of the cycle
/// of types past it): 2 strings, 2 integers, a boolean and a double.
pub const LOG_ATTRIBUTE_COUNT: usize = 6;

/// Log records recorded under one span context before the next: "a few"
/// lines per request. Spans ignore it (each is a root).
pub const ITEMS_PER_CONTEXT: u64 = 5;

/// The value of one attribute.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum AttributeValue {
    /// A string.
    Str(&'static str),
    /// An integer.
    I64(i64),
    /// A double.
    F64(f64),
    /// A boolean.
    Bool(bool),
}

/// One attribute of the benchmark span.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Attribute {
    /// The key, distinct from every other attribute's.
    pub key: &'static str,
    /// The value.
    pub value: AttributeValue,
}

/// The 8 attributes of `otlpx_bench`'s benchmark span, in the order the
/// criterion benches set them.
fn base_attributes() -> [Attribute; otlpx_bench::ATTRIBUTE_COUNT] {
    use AttributeValue::{Bool, F64, I64, Str};
    let [s0, s1, s2, s3] = otlpx_bench::STR_ATTRIBUTES;
    let [i0, i1] = otlpx_bench::I64_ATTRIBUTES;
    let (f_key, f) = otlpx_bench::F64_ATTRIBUTE;
    let (b_key, b) = otlpx_bench::BOOL_ATTRIBUTE;
    let a = |key, value| Attribute { key, value };
    [
        a(s0.0, Str(s0.1)),
        a(s1.0, Str(s1.1)),
        a(s2.0, Str(s2.1)),
        a(s3.0, Str(s3.1)),
        a(i0.0, I64(i0.1)),
        a(i1.0, I64(i1.1)),
        a(f_key, F64(f)),
        a(b_key, Bool(b)),
    ]
}

/// The [`LOG_ATTRIBUTE_COUNT`] attributes of the benchmark log record:
/// what a service attaches to a line about a request it served.
fn log_attributes() -> [Attribute; LOG_ATTRIBUTE_COUNT] {
    use AttributeValue::{Bool, F64, I64, Str};
    let a = |key, value| Attribute { key, value };
    [
        a("http.route", Str("/api/v1/orders/{id}")),
        a("enduser.id", Str("u-83c1f2a7")),
        a("http.response.status_code", I64(200)),
        a("order.items", I64(3)),
        a("cache.hit", Bool(true)),
        a("duration_ms", F64(12.5)),
    ]
}

/// The first `count` attributes of `signal`'s benchmark item: for `count`
/// up to the base set (8 for the span, [`LOG_ATTRIBUTE_COUNT`] for the log
/// record) the item's own, past it the same types and values again with
/// the index appended to the key (`http.route.8`, `url.path.9`, …).
///
/// The longer keys are leaked, once per call, so that both engines can
/// borrow them for `'static` (the opentelemetry SDK's allocation-free case);
/// `count` is bounded by [`MAX_ATTRIBUTES`](super::options::MAX_ATTRIBUTES)
/// and this runs once per process.
pub fn attributes(signal: Signal, count: usize) -> Vec<Attribute> {
    let base = match signal {
        Signal::Traces => base_attributes().to_vec(),
        Signal::Logs => log_attributes().to_vec(),
    };
    (0..count)
        .map(|i| {
            let b = base[i % base.len()];
            if i < base.len() {
                b
            } else {
                let key: &'static str = Box::leak(format!("{}.{i}", b.key).into_boxed_str());
                Attribute { key, ..b }
            }
        })
        .collect()
}

/// An engine as the producer loop sees it: records one benchmark item of
/// its signal.
pub trait Recorder: Sync {
    /// The attributes as [`record`](Self::record) takes them, in the
    /// engine's own types where its API takes them prepared (a log
    /// record's attribute slice), built once per producer before the timed
    /// loop.
    type Prepared;

    /// Prepares `attributes` for [`record`](Self::record).
    fn prepare(&self, attributes: &[Attribute]) -> Self::Prepared;

    /// Records one item, on the calling thread: a server span named
    /// `otlpx_bench::SPAN_NAME` (start, attributes, end), its status an
    /// error when `error`; or a log record with body [`LOG_BODY`],
    /// severity ERROR when `error` and INFO otherwise.
    fn record(&self, attributes: &Self::Prepared, error: bool);

    /// Runs `f`, which records up to [`ITEMS_PER_CONTEXT`] items, in the
    /// context they share: for log records a fresh span context current
    /// on this thread (their trace and span ids), for spans nothing.
    fn in_context(&self, f: &mut dyn FnMut()) {
        f();
    }
}

/// The highest latency the histograms hold, in nanoseconds (one minute);
/// longer ones are recorded as this.
const HISTOGRAM_MAX_NS: u64 = 60_000_000_000;

/// Below this much time ahead of schedule a paced producer records at once
/// instead of sleeping: sleeping for less costs more than it saves, and the
/// schedule is absolute, so an early item is made up for by the next sleep.
const MIN_SLEEP: Duration = Duration::from_micros(200);

/// What the producers did.
#[derive(Debug)]
pub struct Produced {
    /// Items recorded, all producers.
    pub items: u64,
    /// The cost of each item on the producer thread, nanoseconds.
    pub record_ns: Histogram<u64>,
}

/// A histogram for record latencies.
fn new_histogram() -> Result<Histogram<u64>, BenchError> {
    Histogram::new_with_bounds(1, HISTOGRAM_MAX_NS, 3).context("creating a latency histogram")
}

/// How many items producer `index` of `threads` records for `Length::Items(total)`:
/// an even split, the first `total % threads` producers one more.
fn share(total: u64, threads: usize, index: usize) -> u64 {
    let threads = threads as u64;
    let index = index as u64;
    total / threads + u64::from(index < total % threads)
}

/// Runs `plan.threads` producers on `recorder` until `plan.length` is done
/// and returns what they did, the latency histograms merged.
///
/// # Errors
///
/// When a histogram cannot be created or merged, or a producer thread
/// cannot be spawned or panicked.
pub fn produce<R: Recorder>(recorder: &R, plan: &Plan) -> Result<Produced, BenchError> {
    let attributes = attributes(plan.signal, plan.attrs);
    let start = Instant::now();
    let results: Vec<Result<Produced, BenchError>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..plan.threads)
            .map(|index| {
                let attributes = &attributes;
                std::thread::Builder::new()
                    .name(format!("producer-{index}"))
                    .spawn_scoped(scope, move || {
                        producer(recorder, attributes, plan, index, start)
                    })
                    .context("spawning a producer thread")
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h?.join()
                    .map_err(|_| BenchError::msg("a producer thread panicked"))?
            })
            .collect()
    });
    let mut total = Produced {
        items: 0,
        record_ns: new_histogram()?,
    };
    for r in results {
        let r = r?;
        total.items += r.items;
        total
            .record_ns
            .add(&r.record_ns)
            .context("merging latency histograms")?;
    }
    Ok(total)
}

/// Producer `index`: records its share of `plan`, paced by `plan.rate`,
/// timing each item, in groups of [`ITEMS_PER_CONTEXT`] that share a
/// context ([`Recorder::in_context`], outside the timing).
fn producer<R: Recorder>(
    recorder: &R,
    attributes: &[Attribute],
    plan: &Plan,
    index: usize,
    start: Instant,
) -> Result<Produced, BenchError> {
    let (quota, deadline) = match plan.length {
        Length::Items(n) => (share(n, plan.threads, index), None),
        Length::Duration(d) => (u64::MAX, Some(start + d)),
    };
    let mut state = Producing {
        recorder,
        attributes: recorder.prepare(attributes),
        plan,
        quota,
        deadline,
        start,
        histogram: new_histogram()?,
        recorded: 0,
        done: false,
    };
    while !state.done && state.recorded < quota {
        recorder.in_context(&mut || {
            for _ in 0..ITEMS_PER_CONTEXT {
                if !state.step() {
                    state.done = true;
                    break;
                }
            }
        });
    }
    Ok(Produced {
        items: state.recorded,
        record_ns: state.histogram,
    })
}

/// One producer's progress through its share.
struct Producing<'a, R: Recorder> {
    recorder: &'a R,
    attributes: R::Prepared,
    plan: &'a Plan,
    quota: u64,
    deadline: Option<Instant>,
    start: Instant,
    histogram: Histogram<u64>,
    /// Items recorded so far.
    recorded: u64,
    /// Set once the quota or the deadline is reached.
    done: bool,
}

impl<R: Recorder> Producing<'_, R> {
    /// Waits for the next item's turn, records and times it; `false`
    /// (recording nothing) once the quota or the deadline is reached.
    fn step(&mut self) -> bool {
        let i = self.recorded;
        if i >= self.quota {
            return false;
        }
        if self.plan.rate > 0 {
            // Item `i` of this producer is due `i * threads / rate` seconds
            // after `start`: this producer's share of the rate, on an
            // absolute schedule so that sleeping late never lowers the
            // average.
            let pace_ns_numerator = self.plan.threads as u128 * 1_000_000_000;
            let due_ns = i as u128 * pace_ns_numerator / u128::from(self.plan.rate);
            let due = self.start + Duration::from_nanos(u64::try_from(due_ns).unwrap_or(u64::MAX));
            if self.deadline.is_some_and(|d| due >= d) {
                return false;
            }
            let now = Instant::now();
            if due > now + MIN_SLEEP {
                std::thread::sleep(due - now);
            }
        }
        let t0 = Instant::now();
        self.recorder
            .record(&self.attributes, i % ERROR_EVERY == ERROR_EVERY - 1);
        let t1 = Instant::now();
        self.histogram
            .saturating_record((t1 - t0).as_nanos().try_into().unwrap_or(u64::MAX));
        self.recorded = i + 1;
        self.deadline.is_none_or(|d| t1 < d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run::options::{Compression, Protocol};
    use std::sync::Mutex;

    #[test]
    fn the_first_eight_attributes_are_the_bench_span_s() {
        let a = attributes(Signal::Traces, 8);
        assert_eq!(a.as_slice(), base_attributes().as_slice());
        assert_eq!(a[0].key, otlpx_bench::STR_ATTRIBUTES[0].0);
        assert_eq!(a[7].value, AttributeValue::Bool(true));
    }

    #[test]
    fn more_attributes_cycle_types_with_distinct_keys() {
        let a = attributes(Signal::Traces, 20);
        assert_eq!(a[8].key, "http.route.8");
        assert_eq!(a[8].value, a[0].value);
        assert_eq!(a[15].value, AttributeValue::Bool(true));
        let mut keys: Vec<_> = a.iter().map(|a| a.key).collect();
        keys.sort_unstable();
        keys.dedup();
        assert_eq!(keys.len(), 20);
        assert!(attributes(Signal::Traces, 0).is_empty());
        assert_eq!(attributes(Signal::Traces, 3).len(), 3);
    }

    #[test]
    fn log_records_mix_six_attribute_types() {
        use AttributeValue::{Bool, F64, I64, Str};
        let a = attributes(Signal::Logs, LOG_ATTRIBUTE_COUNT);
        let kinds: Vec<_> = a
            .iter()
            .map(|a| match a.value {
                Str(_) => "str",
                I64(_) => "int",
                Bool(_) => "bool",
                F64(_) => "float",
            })
            .collect();
        assert_eq!(kinds, ["str", "str", "int", "int", "bool", "float"]);
        let more = attributes(Signal::Logs, 8);
        assert_eq!(more[6].key, "http.route.6");
        assert_eq!(more[7].value, a[1].value);
    }

    #[test]
    fn shares_add_up_to_the_total() {
        for (total, threads) in [(2000, 1), (2000, 3), (5, 8), (1, 2)] {
            let sum: u64 = (0..threads).map(|i| share(total, threads, i)).sum();
            assert_eq!(sum, total, "{total} spans over {threads} producers");
        }
    }

    /// Counts items, errors and contexts, and checks the attributes.
    #[derive(Default)]
    struct Counting {
        /// Items, errors, contexts entered, items outside a context.
        seen: Mutex<(u64, u64, u64, u64)>,
    }

    thread_local! {
        /// Items recorded in the context current on this thread, if any.
        static IN_CONTEXT: std::cell::Cell<Option<u64>> = const { std::cell::Cell::new(None) };
    }

    impl Recorder for Counting {
        type Prepared = usize;

        fn prepare(&self, attributes: &[Attribute]) -> usize {
            attributes.len()
        }

        fn record(&self, attributes: &usize, error: bool) {
            assert_eq!(*attributes, 5);
            let mut seen = self.seen.lock().unwrap();
            seen.0 += 1;
            seen.1 += u64::from(error);
            match IN_CONTEXT.get() {
                Some(n) => {
                    assert!(n < ITEMS_PER_CONTEXT, "at most a few items per context");
                    IN_CONTEXT.set(Some(n + 1));
                }
                None => seen.3 += 1,
            }
        }

        fn in_context(&self, f: &mut dyn FnMut()) {
            self.seen.lock().unwrap().2 += 1;
            IN_CONTEXT.set(Some(0));
            f();
            IN_CONTEXT.set(None);
        }
    }

    fn plan(threads: usize, length: Length, rate: u64) -> Plan {
        Plan::new(
            Signal::Traces,
            Protocol::Grpc,
            Compression::None,
            threads,
            length,
            rate,
            5,
        )
        .unwrap()
    }

    #[test]
    fn items_records_exactly_n_with_one_error_in_a_hundred() {
        let recorder = Counting::default();
        let produced = produce(&recorder, &plan(3, Length::Items(3000), 0)).unwrap();
        assert_eq!(produced.items, 3000);
        assert_eq!(produced.record_ns.len(), 3000);
        // 1000 items a producer, 5 a context: 200 contexts each, none empty.
        assert_eq!(*recorder.seen.lock().unwrap(), (3000, 30, 600, 0));
    }

    #[test]
    fn rate_paces_the_producers() {
        let recorder = Counting::default();
        let start = std::time::Instant::now();
        // 400 spans at 2000/s: 0.2 s, give or take the last sleep.
        let produced = produce(&recorder, &plan(2, Length::Items(400), 2000)).unwrap();
        let elapsed = start.elapsed();
        assert_eq!(produced.items, 400);
        assert!(
            elapsed >= Duration::from_millis(190) && elapsed < Duration::from_secs(2),
            "{elapsed:?}"
        );
    }

    #[test]
    fn duration_stops_the_producers() {
        let recorder = Counting::default();
        let start = std::time::Instant::now();
        let produced = produce(
            &recorder,
            &plan(2, Length::Duration(Duration::from_millis(100)), 10_000),
        )
        .unwrap();
        let elapsed = start.elapsed();
        assert!(elapsed < Duration::from_secs(2), "{elapsed:?}");
        // 10 000/s for 0.1 s; the schedule stops at the deadline.
        assert!((900..=1000).contains(&produced.items), "{}", produced.items);
    }
}
