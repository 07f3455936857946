//! The workload: the span every producer records, the producer loop that
//! times each span on the application thread, and the pacing of `--rate`.
//!
//! Both engines run this same code, monomorphised over [`Recorder`], so
//! they record exactly the same data in the same order: the benchmark span
//! of `otlpx_bench` (a server span with `--attrs` attributes cycling through
//! string, string, string, string, int, int, double, bool), with every
//! hundredth span's status an error. Keys and values are `'static` and
//! computed before the timed loop; nothing is formatted or allocated by the
//! loop itself.

use std::time::Duration;

use hdrhistogram::Histogram;
use minstant::Instant;

use super::error::{BenchError, Context};
use super::options::{Length, Plan};

/// The description of the error status every hundredth span carries.
pub const ERROR_DESCRIPTION: &str = "upstream timed out";

/// One span in this many has status Error.
pub const ERROR_EVERY: u64 = 100;

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

/// The first `count` attributes of the benchmark span: for `count` ≤ 8 the
/// bench span's own, past 8 the same 8 types and values again with the
/// index appended to the key (`http.route.8`, `url.path.9`, …).
///
/// The longer keys are leaked, once per call, so that both engines can
/// borrow them for `'static` (the opentelemetry SDK's allocation-free case);
/// `count` is bounded by [`MAX_ATTRIBUTES`](super::options::MAX_ATTRIBUTES)
/// and this runs once per process.
pub fn attributes(count: usize) -> Vec<Attribute> {
    let base = base_attributes();
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

/// An engine as the producer loop sees it: records one benchmark span.
pub trait Recorder: Sync {
    /// Records one server span named `otlpx_bench::SPAN_NAME` with
    /// `attributes`, its status an error when `error`: start, attributes,
    /// end, all on the calling thread.
    fn record(&self, attributes: &[Attribute], error: bool);
}

/// The highest latency the histograms hold, in nanoseconds (one minute);
/// longer ones are recorded as this.
const HISTOGRAM_MAX_NS: u64 = 60_000_000_000;

/// Below this much time ahead of schedule a paced producer records at once
/// instead of sleeping: sleeping for less costs more than it saves, and the
/// schedule is absolute, so an early span is made up for by the next sleep.
const MIN_SLEEP: Duration = Duration::from_micros(200);

/// What the producers did.
#[derive(Debug)]
pub struct Produced {
    /// Spans recorded, all producers.
    pub spans: u64,
    /// The cost of each span on the producer thread, nanoseconds.
    pub record_ns: Histogram<u64>,
}

/// A histogram for record latencies.
fn new_histogram() -> Result<Histogram<u64>, BenchError> {
    Histogram::new_with_bounds(1, HISTOGRAM_MAX_NS, 3).context("creating a latency histogram")
}

/// How many spans producer `index` of `threads` records for `Length::Spans(total)`:
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
    let attributes = attributes(plan.attrs);
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
        spans: 0,
        record_ns: new_histogram()?,
    };
    for r in results {
        let r = r?;
        total.spans += r.spans;
        total
            .record_ns
            .add(&r.record_ns)
            .context("merging latency histograms")?;
    }
    Ok(total)
}

/// Producer `index`: records its share of `plan`, paced by `plan.rate`,
/// timing each span.
fn producer<R: Recorder>(
    recorder: &R,
    attributes: &[Attribute],
    plan: &Plan,
    index: usize,
    start: Instant,
) -> Result<Produced, BenchError> {
    let mut histogram = new_histogram()?;
    let (quota, deadline) = match plan.length {
        Length::Spans(n) => (share(n, plan.threads, index), None),
        Length::Duration(d) => (u64::MAX, Some(start + d)),
    };
    // Span `i` of this producer is due `i * threads / rate` seconds after
    // `start`: this producer's share of the rate, on an absolute schedule
    // so that sleeping late never lowers the average.
    let pace_ns_numerator = plan.threads as u128 * 1_000_000_000;
    let mut i: u64 = 0;
    while i < quota {
        if plan.rate > 0 {
            let due_ns = i as u128 * pace_ns_numerator / u128::from(plan.rate);
            let due = start + Duration::from_nanos(u64::try_from(due_ns).unwrap_or(u64::MAX));
            if deadline.is_some_and(|d| due >= d) {
                break;
            }
            let now = Instant::now();
            if due > now + MIN_SLEEP {
                std::thread::sleep(due - now);
            }
        }
        let t0 = Instant::now();
        recorder.record(attributes, i % ERROR_EVERY == ERROR_EVERY - 1);
        let t1 = Instant::now();
        histogram.saturating_record((t1 - t0).as_nanos().try_into().unwrap_or(u64::MAX));
        i += 1;
        if deadline.is_some_and(|d| t1 >= d) {
            break;
        }
    }
    Ok(Produced {
        spans: i,
        record_ns: histogram,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run::options::{Compression, Protocol};
    use std::sync::Mutex;

    #[test]
    fn the_first_eight_attributes_are_the_bench_span_s() {
        let a = attributes(8);
        assert_eq!(a.as_slice(), base_attributes().as_slice());
        assert_eq!(a[0].key, otlpx_bench::STR_ATTRIBUTES[0].0);
        assert_eq!(a[7].value, AttributeValue::Bool(true));
    }

    #[test]
    fn more_attributes_cycle_types_with_distinct_keys() {
        let a = attributes(20);
        assert_eq!(a[8].key, "http.route.8");
        assert_eq!(a[8].value, a[0].value);
        assert_eq!(a[15].value, AttributeValue::Bool(true));
        let mut keys: Vec<_> = a.iter().map(|a| a.key).collect();
        keys.sort_unstable();
        keys.dedup();
        assert_eq!(keys.len(), 20);
        assert!(attributes(0).is_empty());
        assert_eq!(attributes(3).len(), 3);
    }

    #[test]
    fn shares_add_up_to_the_total() {
        for (total, threads) in [(2000, 1), (2000, 3), (5, 8), (1, 2)] {
            let sum: u64 = (0..threads).map(|i| share(total, threads, i)).sum();
            assert_eq!(sum, total, "{total} spans over {threads} producers");
        }
    }

    /// Counts spans and errors, and remembers the attributes.
    #[derive(Default)]
    struct Counting {
        seen: Mutex<(u64, u64)>,
    }

    impl Recorder for Counting {
        fn record(&self, attributes: &[Attribute], error: bool) {
            assert_eq!(attributes.len(), 5);
            let mut seen = self.seen.lock().unwrap();
            seen.0 += 1;
            seen.1 += u64::from(error);
        }
    }

    fn plan(threads: usize, length: Length, rate: u64) -> Plan {
        Plan::new(Protocol::Grpc, Compression::None, threads, length, rate, 5).unwrap()
    }

    #[test]
    fn spans_records_exactly_n_with_one_error_in_a_hundred() {
        let recorder = Counting::default();
        let produced = produce(&recorder, &plan(3, Length::Spans(3000), 0)).unwrap();
        assert_eq!(produced.spans, 3000);
        assert_eq!(produced.record_ns.len(), 3000);
        assert_eq!(*recorder.seen.lock().unwrap(), (3000, 30));
    }

    #[test]
    fn rate_paces_the_producers() {
        let recorder = Counting::default();
        let start = std::time::Instant::now();
        // 400 spans at 2000/s: 0.2 s, give or take the last sleep.
        let produced = produce(&recorder, &plan(2, Length::Spans(400), 2000)).unwrap();
        let elapsed = start.elapsed();
        assert_eq!(produced.spans, 400);
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
        assert!((900..=1000).contains(&produced.spans), "{}", produced.spans);
    }
}
