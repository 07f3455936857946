//! Several endpoints: load balancing and failover across a tier of OTLP
//! receivers (collectors), for an engine given more than one endpoint URL
//! ([`EngineBuilder::endpoints`](crate::EngineBuilder::endpoints)).
//!
//! Each endpoint has its own transport (its own gRPC channels or HTTP
//! connection pool), and each attempt to send a request goes to one of
//! them, chosen as below. The attempt succeeds or fails as that
//! endpoint's transport says, with the endpoint's URL put in front of the
//! error message (`"{url}: {message}"`; kind and status codes unchanged).
//! An attempt the engine's timeout gives up on is dropped without an
//! error of its own, and the engine's names every endpoint (`no answer
//! from one of {url}, {url} within …`): which one the attempt went to is
//! not known there.
//! Retrying is the engine's, as with one endpoint ([`retry`](super::retry)):
//! a failed attempt is tried again as a new attempt, which goes wherever
//! the choice sends it. When the attempt failed because its endpoint is
//! unwell (below) and another endpoint is up, a retryable error's decision
//! becomes [`Retry::After`] 1 ms: the request fails over at once, instead
//! of waiting a backoff meant for the endpoint it left.
//!
//! # Choosing an endpoint
//!
//! Among the endpoints that are up, the one with the fewest requests in
//! flight (counted from the moment a request is handed to it until its
//! future completes or is dropped); ties are broken round robin, from a
//! start index that moves on by one with every attempt, so equal endpoints
//! share the load evenly. An endpoint that is out but due for its probe
//! (below) comes first: the first attempt that finds it due is its probe,
//! whatever the others' load. That costs at most one attempt per backoff
//! on an endpoint that is still down (the engine retries it elsewhere),
//! and it brings a recovered endpoint back within about one backoff even
//! when the others are idle.
//!
//! # Taking an endpoint out
//!
//! An attempt that fails in a way that says the endpoint is unwell takes
//! it out: kinds [`Unavailable`], [`Timeout`], [`Throttled`] and [`Tls`],
//! and an attempt whose future is dropped before it completed (the
//! engine's attempt timeout, or shutdown). It stays out for a backoff
//! drawn uniformly from `[b/2, b]`, where `b =
//! min(ENDPOINT_BACKOFF_MAX, ENDPOINT_BACKOFF_INITIAL × 2^(n − 1))` and `n`
//! counts the endpoint's failures in a row (the one that took it out, then
//! each failed probe). Half of `b` at least, rather than full jitter's
//! `[0, b]`, so that an endpoint that just failed is never put straight
//! back; the other half is jitter, so that clients that lost an endpoint
//! together do not all probe it at the same moment.
//!
//! Failures that are about the request rather than the endpoint
//! ([`Rejected`], [`Protocol`], [`Other`]) leave it in, and an endpoint
//! that answers at all (a success, a partial success, or one of those
//! errors) is well: its count of failures in a row goes back to zero.
//!
//! Attempts still in flight at an endpoint when it is taken out belong to
//! the period in which it was up: when they end, they count in its
//! [`EndpointStats`] but change nothing else. So a burst of requests that
//! fail together (a collector that died with eight requests in flight)
//! takes it out once, with the first backoff, not eight times over.
//!
//! # Probing back in
//!
//! When an out endpoint's backoff has passed, the next attempt is its
//! probe, and while the probe is outstanding no other attempt goes to it.
//! An answer puts it back in (up, failures in a row reset); a failure
//! takes it out again with the next, longer backoff.
//!
//! # All endpoints out
//!
//! When no endpoint is up and none is due for a probe, an attempt fails at
//! once, without sending anything, with an [`Unavailable`] error naming
//! how many endpoints are out. Its retry decision is
//! [`Retry::After`] the time until the earliest probe is due (1 ms at
//! least), so that the engine's retry loop waits exactly until a probe is
//! possible, and gives the request up on its own if that is past its
//! deadline. While some probe is outstanding the decision is
//! [`Retry::Backoff`] instead: that probe's answer may bring its endpoint
//! back at any moment.
//!
//! # Connections
//!
//! Reconnecting is left to the transports (tonic's and hyper's lazily
//! (re)connecting channels and pools): a dead endpoint is asked to
//! reconnect only when an attempt goes to it, so the backoff above is what
//! spaces the reconnection attempts to an endpoint that is down.
//!
//! # Diagnostics
//!
//! Each endpoint's counters (attempts, failures, times taken out) and
//! whether it is up are in [`EndpointStats`]. Taking an endpoint out is a
//! `tracing` event at WARN (its URL, failures in a row, how long it is
//! out), putting it back one at INFO: at most one of each per endpoint
//! per backoff, so they need no rate limit.
//!
//! # Invariants
//!
//! The health of every endpoint is behind one small mutex, taken twice per
//! attempt (choosing, settling) and never across an `.await`: this is the
//! export path, run once per attempt, not the recording path. Requests in
//! flight are per-endpoint atomics, read while choosing. An `Attempt`
//! guard inside every future handed out settles its attempt exactly once:
//! when the inner future completes, or when it is dropped unfinished.
//! Taking an endpoint out starts a new period of it, and only attempts
//! sent in its current period change its health: while it is out, every
//! attempt still in flight to it is from an older period, and while it is
//! being probed, the probe is the only one from the current period.
//!
//! [`Unavailable`]: FailureKind::Unavailable
//! [`Timeout`]: FailureKind::Timeout
//! [`Throttled`]: FailureKind::Throttled
//! [`Tls`]: FailureKind::Tls
//! [`Rejected`]: FailureKind::Rejected
//! [`Protocol`]: FailureKind::Protocol
//! [`Other`]: FailureKind::Other

use super::{ExportError, ExportFuture, ExportRequest, ExportResponse, Retry, Transport};
use crate::telemetry::FailureKind;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// How long an endpoint that failed stays out before its first probe, and
/// at most after repeated failures (doubling; each drawn from the upper
/// half, `[b/2, b]`, of the bound: see the module documentation).
///
/// One second: long enough that a dead collector costs one refused
/// connection a second, not one per request; short enough that a
/// collector that restarts gets traffic again within a couple of seconds.
pub const ENDPOINT_BACKOFF_INITIAL: Duration = Duration::from_secs(1);
/// See [`ENDPOINT_BACKOFF_INITIAL`]. Thirty seconds: a collector down for
/// good is probed every 15 to 30 s, and one back after a long outage waits
/// at most that long for traffic.
pub const ENDPOINT_BACKOFF_MAX: Duration = Duration::from_secs(30);

/// The shortest wait an all-out error asks for: the engine waits as long
/// as it is told, and a retry sooner than this would find the probe not
/// quite due yet.
const ALL_OUT_MIN_WAIT: Duration = Duration::from_millis(1);

pub use crate::telemetry::EndpointStats;

/// Spreads requests over several endpoints' transports; see the module
/// documentation.
pub(crate) struct Balanced {
    shared: Arc<Shared>,
    /// Where the next choice starts looking: moves on by one per attempt,
    /// so ties go round robin. Relaxed: a hint shared by nothing else;
    /// two attempts that read the same value only break one tie alike.
    next: AtomicUsize,
    /// The endpoints' URLs, for [`Transport::endpoint`]: an attempt the
    /// engine gave up on was dropped without saying where it went.
    urls: Option<String>,
}

/// What the attempts' guards need after [`Balanced::export`] returned.
struct Shared {
    endpoints: Box<[Endpoint]>,
    /// Each endpoint's health, index for index with `endpoints`.
    health: Mutex<Box<[Health]>>,
    backoff: Backoff,
}

/// One endpoint: its transport and counters.
struct Endpoint {
    url: String,
    transport: Arc<dyn Transport>,
    /// Attempts handed to it and not yet settled. Relaxed: choosing reads
    /// and raises it under the health lock, which orders the choices
    /// among themselves; a decrement seen late only skews one choice
    /// towards another endpoint.
    in_flight: AtomicUsize,
    /// Statistics (Relaxed: counters read on their own).
    requests: AtomicU64,
    failures: AtomicU64,
    taken_out: AtomicU64,
}

/// One endpoint's health, changed only under [`Shared::health`].
#[derive(Clone, Copy, Debug)]
struct Health {
    state: State,
    /// Unwell failures in a row: the one that took the endpoint out, then
    /// each failed probe; zero while it is up.
    failures_in_a_row: u32,
    /// The endpoint's period, which taking it out ends: an attempt's
    /// outcome changes its health only if the attempt was sent in the
    /// current period (see the module's invariants).
    period: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Takes requests.
    Up,
    /// Taken out; its probe is due at `until`.
    Out { until: Instant },
    /// Taken out, and its probe is outstanding.
    Probing,
}

/// How long a request that failed on an unwell endpoint waits before it
/// is sent again, to another endpoint that is up: failing over needs no
/// backoff (the failed endpoint is out, so this cannot loop on it).
const FAILOVER_WAIT: Duration = Duration::from_millis(1);

/// The endpoint backoff's bounds (the constants, or shorter in tests).
#[derive(Clone, Copy, Debug)]
struct Backoff {
    initial: Duration,
    max: Duration,
}

impl Backoff {
    /// How long an endpoint stays out after `failures_in_a_row` (1 or
    /// more) unwell failures, for a uniformly random `random`: uniform in
    /// `[b/2, b]` with `b = min(max, initial × 2^(failures − 1))`.
    fn out_for(self, failures_in_a_row: u32, random: u64) -> Duration {
        let doublings = failures_in_a_row.saturating_sub(1).min(31);
        let bound = self.initial.saturating_mul(1u32 << doublings).min(self.max);
        let half = bound / 2;
        let jitter = u64::try_from((bound - half).as_nanos()).unwrap_or(u64::MAX);
        // (random × (jitter + 1)) / 2^64 is uniform in [0, jitter], and
        // the product fits 128 bits (both factors are at most 2^64).
        let extra = (u128::from(random) * (u128::from(jitter) + 1)) >> 64;
        half + Duration::from_nanos(u64::try_from(extra).unwrap_or(jitter))
    }
}

/// How an attempt ended, for the endpoint's health.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    /// The endpoint answered: a success, or an error about the request.
    Answered,
    /// Failed with an error about the endpoint, or abandoned unfinished.
    Unwell,
}

impl Outcome {
    /// The outcome of a completed attempt.
    fn of(result: &Result<ExportResponse, ExportError>) -> Self {
        match result {
            Ok(_) => Self::Answered,
            Err(e) => match e.kind {
                FailureKind::Unavailable
                | FailureKind::Timeout
                | FailureKind::Throttled
                | FailureKind::Tls => Self::Unwell,
                FailureKind::Rejected | FailureKind::Protocol | FailureKind::Other => {
                    Self::Answered
                }
            },
        }
    }
}

impl Balanced {
    /// Balances over `endpoints` (URL, transport), at least one (with
    /// none, every attempt fails at once, not to be retried).
    pub(crate) fn new(endpoints: Vec<(String, Arc<dyn Transport>)>) -> Self {
        Self::with(
            endpoints,
            Backoff {
                initial: ENDPOINT_BACKOFF_INITIAL,
                max: ENDPOINT_BACKOFF_MAX,
            },
        )
    }

    /// [`new`](Self::new) with the endpoint backoff's bounds given, so
    /// tests run in milliseconds.
    #[cfg(test)]
    fn with_backoff(
        endpoints: Vec<(String, Arc<dyn Transport>)>,
        initial: Duration,
        max: Duration,
    ) -> Self {
        Self::with(endpoints, Backoff { initial, max })
    }

    fn with(endpoints: Vec<(String, Arc<dyn Transport>)>, backoff: Backoff) -> Self {
        let health = vec![
            Health {
                state: State::Up,
                failures_in_a_row: 0,
                period: 0,
            };
            endpoints.len()
        ];
        let urls = match &endpoints[..] {
            [] => None,
            [(url, _)] => Some(url.clone()),
            several => {
                let urls: Vec<&str> = several.iter().map(|(url, _)| url.as_str()).collect();
                Some(format!("one of {}", urls.join(", ")))
            }
        };
        let endpoints = endpoints
            .into_iter()
            .map(|(url, transport)| Endpoint {
                url,
                transport,
                in_flight: AtomicUsize::new(0),
                requests: AtomicU64::new(0),
                failures: AtomicU64::new(0),
                taken_out: AtomicU64::new(0),
            })
            .collect();
        Self {
            shared: Arc::new(Shared {
                endpoints,
                health: Mutex::new(health.into_boxed_slice()),
                backoff,
            }),
            next: AtomicUsize::new(0),
            urls,
        }
    }

    /// Each endpoint's state, in the order given to `new`.
    pub(crate) fn stats(&self) -> Vec<EndpointStats> {
        let health = self.shared.lock_health();
        self.shared
            .endpoints
            .iter()
            .zip(health.iter())
            .map(|(endpoint, health)| EndpointStats {
                url: endpoint.url.clone(),
                up: health.state == State::Up,
                requests: endpoint.requests.load(Relaxed),
                failures: endpoint.failures.load(Relaxed),
                taken_out: endpoint.taken_out.load(Relaxed),
            })
            .collect()
    }

    /// Chooses the endpoint for one attempt and counts the attempt handed
    /// to it (the returned guard settles it); or, with every endpoint out,
    /// the error to answer with.
    fn choose(&self) -> Result<Attempt, ExportError> {
        let shared = &self.shared;
        let mut health = shared.lock_health();
        let n = health.len();
        let start = self.next.fetch_add(1, Relaxed).checked_rem(n).unwrap_or(0);
        let now = Instant::now();
        // The least loaded endpoint that is up, the first endpoint due for
        // a probe, the earliest probe not yet due, and how many probes
        // are outstanding.
        let mut least: Option<(usize, usize)> = None;
        let mut due = None;
        let mut earliest: Option<Instant> = None;
        let mut probing = 0;
        for index in (start..n).chain(0..start) {
            match health[index].state {
                State::Up => {
                    let load = shared.endpoints[index].in_flight.load(Relaxed);
                    if least.is_none_or(|(_, fewest)| load < fewest) {
                        least = Some((index, load));
                    }
                }
                State::Out { until } if until <= now => {
                    due.get_or_insert(index);
                }
                State::Out { until } => {
                    earliest = Some(earliest.map_or(until, |e| e.min(until)));
                }
                State::Probing => probing += 1,
            }
        }
        let index = match (due, least) {
            (Some(index), _) => {
                health[index].state = State::Probing;
                index
            }
            (None, Some((index, _))) => index,
            (None, None) => return Err(all_out(n, probing, earliest, now)),
        };
        let endpoint = &shared.endpoints[index];
        // Raised under the lock: the next choice sees it (see `in_flight`).
        endpoint.in_flight.fetch_add(1, Relaxed);
        endpoint.requests.fetch_add(1, Relaxed);
        Ok(Attempt {
            shared: Arc::clone(shared),
            index,
            period: health[index].period,
            settled: false,
        })
    }
}

impl Transport for Balanced {
    fn export(&self, request: ExportRequest) -> ExportFuture {
        let mut attempt = match self.choose() {
            Ok(attempt) => attempt,
            Err(e) => return Box::pin(std::future::ready(Err(e))),
        };
        let endpoint = attempt.endpoint();
        let sending = endpoint.transport.export(request);
        Box::pin(async move {
            let result = sending.await;
            let error = result.as_ref().err().map(|e| e.message.as_str());
            let outcome = Outcome::of(&result);
            attempt.settle(outcome, error);
            result.map_err(|mut e| {
                // Fail over at once: another endpoint is up, and the wait
                // (a backoff, or this endpoint's own hint) was for this
                // one.
                if outcome == Outcome::Unwell && e.retry != Retry::Never && attempt.another_up() {
                    e.retry = Retry::After(FAILOVER_WAIT);
                }
                e.message = format!("{}: {}", attempt.endpoint().url, e.message);
                e
            })
        })
    }

    fn endpoint(&self) -> Option<&str> {
        self.urls.as_deref()
    }
}

/// The error of an attempt made while all `n` endpoints are out,
/// `probing` of them being probed and the earliest other probe due at
/// `earliest`.
fn all_out(n: usize, probing: usize, earliest: Option<Instant>, now: Instant) -> ExportError {
    if n == 0 {
        return ExportError::new(FailureKind::Unavailable, "no endpoints configured")
            .with_retry(Retry::Never);
    }
    let (retry, when) = match earliest {
        Some(until) if probing == 0 => {
            let wait = until.saturating_duration_since(now).max(ALL_OUT_MIN_WAIT);
            (Retry::After(wait), format!("the next probe in {wait:?}"))
        }
        _ => (Retry::Backoff, format!("{probing} being probed")),
    };
    ExportError::new(
        FailureKind::Unavailable,
        format!("all {n} endpoints are out after failures ({when})"),
    )
    .with_retry(retry)
}

impl Shared {
    /// The health table. A panic elsewhere while holding it cannot leave
    /// it inconsistent (every update is a plain store), so a poisoned lock
    /// is used as it is.
    fn lock_health(&self) -> MutexGuard<'_, Box<[Health]>> {
        self.health.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// One attempt handed to an endpoint; settles it exactly once, when the
/// attempt completes ([`settle`](Self::settle)) or, unfinished, when it
/// is dropped.
struct Attempt {
    shared: Arc<Shared>,
    index: usize,
    /// The endpoint's period when the attempt was sent.
    period: u64,
    settled: bool,
}

/// A change in an endpoint's health worth a diagnostic.
enum Change {
    TakenOut {
        failures_in_a_row: u32,
        out_for: Duration,
    },
    BackIn,
}

impl Attempt {
    fn endpoint(&self) -> &Endpoint {
        &self.shared.endpoints[self.index]
    }

    /// Whether an endpoint other than this attempt's is up now.
    fn another_up(&self) -> bool {
        let table = self.shared.lock_health();
        table
            .iter()
            .enumerate()
            .any(|(i, h)| i != self.index && h.state == State::Up)
    }

    /// Records how the attempt ended, with the error's message if it
    /// failed (of any kind); only the first call counts.
    fn settle(&mut self, outcome: Outcome, error: Option<&str>) {
        if std::mem::replace(&mut self.settled, true) {
            return;
        }
        let endpoint = self.endpoint();
        // Relaxed, both: see the fields.
        endpoint.in_flight.fetch_sub(1, Relaxed);
        if error.is_some() {
            endpoint.failures.fetch_add(1, Relaxed);
        }
        let change = self.update_health(outcome);
        let url = &self.endpoint().url;
        match change {
            Some(Change::TakenOut {
                failures_in_a_row,
                out_for,
            }) => tracing::warn!(
                url = url.as_str(),
                error = error.unwrap_or_default(),
                failures_in_a_row,
                ?out_for,
                "otlpx: an export endpoint failed and is taken out; it will \
                 be probed after `out_for`, and the other endpoints take its \
                 requests meanwhile"
            ),
            Some(Change::BackIn) => {
                tracing::info!(url = url.as_str(), "otlpx: an export endpoint is back in");
            }
            None => {}
        }
    }

    /// Applies `outcome` to the endpoint's health, if the attempt belongs
    /// to its current period; what changed, for the diagnostics.
    fn update_health(&self, outcome: Outcome) -> Option<Change> {
        let shared = &self.shared;
        let mut table = shared.lock_health();
        let health = &mut table[self.index];
        if health.period != self.period {
            // Sent before the endpoint was last taken out: that failure
            // already counted for all of its period.
            return None;
        }
        // In the current period the endpoint is up, or this is its probe:
        // taking it out starts a new period.
        let was = health.state;
        match outcome {
            Outcome::Answered => {
                health.state = State::Up;
                health.failures_in_a_row = 0;
                (was != State::Up).then_some(Change::BackIn)
            }
            Outcome::Unwell => {
                let failures_in_a_row = health.failures_in_a_row.saturating_add(1);
                let random = u64::from_le_bytes(crate::SpanId::random().0);
                let out_for = shared.backoff.out_for(failures_in_a_row, random);
                let now = Instant::now();
                *health = Health {
                    state: State::Out {
                        // Overflow is out of reach (`out_for` is at most
                        // the backoff's cap); were it not, probe now.
                        until: now.checked_add(out_for).unwrap_or(now),
                    },
                    failures_in_a_row,
                    period: health.period.wrapping_add(1),
                };
                // Under the lock, so `stats` sees it with the state.
                self.endpoint().taken_out.fetch_add(1, Relaxed);
                Some(Change::TakenOut {
                    failures_in_a_row,
                    out_for,
                })
            }
        }
    }
}

impl Drop for Attempt {
    fn drop(&mut self) {
        // Dropped unfinished: the engine's attempt timeout, or shutdown.
        self.settle(
            Outcome::Unwell,
            Some("no answer: the attempt was abandoned (its timeout, or shutdown)"),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Compression;
    use crate::export::transport::Signal;
    use std::task::{Context, Poll, Waker};
    use tokio::sync::Semaphore;

    /// How a stand-in endpoint answers.
    #[derive(Clone)]
    enum Answer {
        Ok,
        Fail(FailureKind),
        /// Succeeds once the semaphore gives a permit.
        Held(Arc<Semaphore>),
        /// Never completes.
        Hang,
    }

    /// A stand-in transport whose answers the test scripts.
    struct Scripted {
        answer: Mutex<Answer>,
        calls: AtomicU64,
    }

    impl Scripted {
        fn new(answer: Answer) -> Arc<Self> {
            Arc::new(Self {
                answer: Mutex::new(answer),
                calls: AtomicU64::new(0),
            })
        }

        fn set(&self, answer: Answer) {
            *self.answer.lock().unwrap() = answer;
        }

        fn calls(&self) -> u64 {
            self.calls.load(Relaxed)
        }
    }

    impl Transport for Scripted {
        fn export(&self, _: ExportRequest) -> ExportFuture {
            self.calls.fetch_add(1, Relaxed);
            match self.answer.lock().unwrap().clone() {
                Answer::Ok => Box::pin(std::future::ready(Ok(ExportResponse::accepted()))),
                Answer::Fail(kind) => {
                    Box::pin(std::future::ready(Err(ExportError::new(kind, "scripted"))))
                }
                Answer::Held(gate) => Box::pin(async move {
                    let _permit = gate.acquire().await;
                    Ok(ExportResponse::accepted())
                }),
                Answer::Hang => Box::pin(std::future::pending()),
            }
        }
    }

    const MS: Duration = Duration::from_millis(1);

    fn balanced(scripted: &[&Arc<Scripted>], initial: Duration, max: Duration) -> Balanced {
        let endpoints = scripted
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let transport: Arc<dyn Transport> = Arc::<Scripted>::clone(s);
                (format!("http://endpoint-{i}"), transport)
            })
            .collect();
        Balanced::with_backoff(endpoints, initial, max)
    }

    fn request() -> ExportRequest {
        ExportRequest::new(
            Signal::Traces,
            bytes::Bytes::from_static(b"spans"),
            Compression::None,
            1,
        )
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap()
    }

    /// One attempt, run to completion.
    fn send(rt: &tokio::runtime::Runtime, b: &Balanced) -> Result<ExportResponse, ExportError> {
        rt.block_on(b.export(request()))
    }

    /// Polls `future` once: whether it completed, without any runtime
    /// (so it cannot have waited on anything).
    fn ready_at_once(future: &mut ExportFuture) -> Option<Result<ExportResponse, ExportError>> {
        match future
            .as_mut()
            .poll(&mut Context::from_waker(Waker::noop()))
        {
            Poll::Ready(result) => Some(result),
            Poll::Pending => None,
        }
    }

    fn requests(b: &Balanced) -> Vec<u64> {
        b.stats().iter().map(|s| s.requests).collect()
    }

    fn up(b: &Balanced) -> Vec<bool> {
        b.stats().iter().map(|s| s.up).collect()
    }

    #[test]
    fn equal_endpoints_share_evenly_and_the_least_loaded_is_chosen() {
        let rt = runtime();
        let all = [
            Scripted::new(Answer::Ok),
            Scripted::new(Answer::Ok),
            Scripted::new(Answer::Ok),
        ];
        let b = balanced(&[&all[0], &all[1], &all[2]], 10 * MS, 100 * MS);
        for _ in 0..300 {
            send(&rt, &b).unwrap();
        }
        assert_eq!(requests(&b), [100, 100, 100]);

        // Hold one request at each endpoint, then a fourth.
        let gates: Vec<_> = all.iter().map(|_| Arc::new(Semaphore::new(0))).collect();
        for (s, gate) in all.iter().zip(&gates) {
            s.set(Answer::Held(Arc::clone(gate)));
        }
        let held: Vec<_> = (0..3).map(|_| b.export(request())).collect();
        // One each, whatever the rotation.
        assert_eq!(requests(&b), [101, 101, 101]);
        let mut held_more = b.export(request());
        let at = requests(&b)
            .iter()
            .position(|&r| r == 102)
            .expect("one endpoint got a second request");
        // Endpoint `at` has two in flight; finishing the others' requests
        // leaves it the most loaded, and it gets nothing until it is not.
        let mut held = held;
        for (i, gate) in gates.iter().enumerate() {
            if i != at {
                gate.add_permits(1);
            }
        }
        let mut finished = 0;
        held.retain_mut(|f| match ready_at_once(f) {
            Some(result) => {
                result.unwrap();
                finished += 1;
                false
            }
            None => true,
        });
        assert_eq!(finished, 2);
        for s in &all {
            s.set(Answer::Ok);
        }
        for _ in 0..4 {
            send(&rt, &b).unwrap();
        }
        let r = requests(&b);
        assert_eq!(r[at], 102, "{r:?}");
        assert_eq!(r.iter().sum::<u64>(), 308, "{r:?}");
        gates[at].add_permits(2);
        ready_at_once(&mut held_more).unwrap().unwrap();
        ready_at_once(&mut held[0]).unwrap().unwrap();
        assert!(b.stats().iter().all(|s| s.up && s.failures == 0));
    }

    #[test]
    fn a_failed_endpoint_is_taken_out_and_the_others_take_its_requests() {
        let rt = runtime();
        let a = Scripted::new(Answer::Fail(FailureKind::Unavailable));
        let b_ = Scripted::new(Answer::Ok);
        let b = balanced(&[&a, &b_], Duration::from_secs(60), Duration::from_secs(60));
        let e = send(&rt, &b).unwrap_err();
        // The error names the endpoint and keeps the rest, but asks for
        // the retry at once: another endpoint is up.
        assert_eq!(e.kind, FailureKind::Unavailable);
        assert_eq!(e.retry, Retry::After(FAILOVER_WAIT));
        assert_eq!(e.message, "http://endpoint-0: scripted");
        for _ in 0..10 {
            send(&rt, &b).unwrap();
        }
        assert_eq!((a.calls(), b_.calls()), (1, 10));
        let stats = b.stats();
        assert_eq!(
            stats[0],
            EndpointStats {
                url: "http://endpoint-0".into(),
                up: false,
                requests: 1,
                failures: 1,
                taken_out: 1,
            }
        );
        assert_eq!(
            (stats[1].up, stats[1].requests, stats[1].failures),
            (true, 10, 0)
        );
    }

    #[test]
    fn every_unwell_kind_takes_out_and_errors_about_the_request_do_not() {
        let rt = runtime();
        for kind in [
            FailureKind::Unavailable,
            FailureKind::Timeout,
            FailureKind::Throttled,
            FailureKind::Tls,
            FailureKind::Rejected,
            FailureKind::Protocol,
            FailureKind::Other,
        ] {
            let a = Scripted::new(Answer::Fail(kind));
            let b_ = Scripted::new(Answer::Ok);
            let b = balanced(&[&a, &b_], Duration::from_secs(60), Duration::from_secs(60));
            for _ in 0..4 {
                let _ = send(&rt, &b);
            }
            let unwell = matches!(
                kind,
                FailureKind::Unavailable
                    | FailureKind::Timeout
                    | FailureKind::Throttled
                    | FailureKind::Tls
            );
            let s = &b.stats()[0];
            assert_eq!(s.up, !unwell, "{kind:?}");
            assert_eq!(s.taken_out, u64::from(unwell), "{kind:?}");
            // Still in: round robin keeps sending it every other request.
            let expected = if unwell { 1 } else { 2 };
            assert_eq!((s.requests, s.failures), (expected, expected), "{kind:?}");
        }
    }

    #[test]
    fn all_out_fails_at_once_asking_to_wait_for_the_first_probe() {
        let initial = 200 * MS;
        let a = Scripted::new(Answer::Fail(FailureKind::Unavailable));
        let b_ = Scripted::new(Answer::Fail(FailureKind::Timeout));
        let b = balanced(&[&a, &b_], initial, 10 * initial);
        let rt = runtime();
        send(&rt, &b).unwrap_err();
        send(&rt, &b).unwrap_err();
        assert_eq!(up(&b), [false, false]);
        let mut attempt = b.export(request());
        let e = ready_at_once(&mut attempt)
            .expect("all out: no waiting")
            .unwrap_err();
        assert_eq!((a.calls(), b_.calls()), (1, 1), "nothing sent");
        assert_eq!(e.kind, FailureKind::Unavailable);
        assert!(e.message.contains("all 2 endpoints are out"), "{e}");
        let Retry::After(wait) = e.retry else {
            panic!("{e:?}");
        };
        assert!(wait >= MS && wait <= initial, "{wait:?}");
        // Requests counts what was sent; the refusal is no attempt.
        assert_eq!(requests(&b), [1, 1]);
    }

    #[test]
    fn a_probe_after_the_backoff_puts_a_recovered_endpoint_back() {
        let rt = runtime();
        let initial = 20 * MS;
        let a = Scripted::new(Answer::Fail(FailureKind::Unavailable));
        let b_ = Scripted::new(Answer::Ok);
        let b = balanced(&[&a, &b_], initial, 10 * initial);
        send(&rt, &b).unwrap_err();
        send(&rt, &b).unwrap();
        assert_eq!(up(&b), [false, true]);
        let gate = Arc::new(Semaphore::new(0));
        a.set(Answer::Held(Arc::clone(&gate)));
        std::thread::sleep(initial + 5 * MS);
        // The first attempt after the backoff is the probe, even though
        // endpoint 1 is idle too.
        let mut probe = b.export(request());
        assert_eq!(a.calls(), 2);
        // While it is outstanding, nothing else goes there.
        for _ in 0..5 {
            send(&rt, &b).unwrap();
        }
        assert_eq!(a.calls(), 2);
        assert_eq!(up(&b), [false, true]);
        gate.add_permits(1);
        ready_at_once(&mut probe).unwrap().unwrap();
        assert_eq!(up(&b), [true, true]);
        assert_eq!(b.shared.lock_health()[0].failures_in_a_row, 0);
        a.set(Answer::Ok);
        for _ in 0..10 {
            send(&rt, &b).unwrap();
        }
        assert_eq!(a.calls(), 7, "back in the rotation");
        assert_eq!(b.stats()[0].taken_out, 1);
    }

    #[test]
    fn a_failed_probe_doubles_the_backoff_up_to_the_cap() {
        let rt = runtime();
        let initial = 60 * MS;
        let a = Scripted::new(Answer::Fail(FailureKind::Unavailable));
        // One endpoint: the all-out error tells when its probe is due.
        let b = balanced(&[&a], initial, 3 * initial);
        let due_in = |b: &Balanced| match ready_at_once(&mut b.export(request())) {
            Some(Err(ExportError {
                retry: Retry::After(wait),
                ..
            })) => wait,
            other => panic!("{other:?}"),
        };
        // Out for [b/2, b]: b = 60, 120, 180 (capped), 180 ms.
        for (n, bound) in [
            (1, initial),
            (2, 2 * initial),
            (3, 3 * initial),
            (4, 3 * initial),
        ] {
            send(&rt, &b).unwrap_err();
            let wait = due_in(&b);
            let state = b.shared.lock_health()[0];
            assert_eq!(state.failures_in_a_row, n);
            // Some time passed since it was taken out: up to a few ms.
            assert!(wait <= bound, "{n}: {wait:?}");
            assert!(wait + 20 * MS >= bound / 2, "{n}: {wait:?}");
            std::thread::sleep(wait + MS);
        }
        assert_eq!(b.stats()[0].taken_out, 4);
        assert_eq!(a.calls(), 4, "the refusals sent nothing");
    }

    #[test]
    fn the_backoff_is_jittered_in_the_upper_half() {
        let backoff = Backoff {
            initial: ENDPOINT_BACKOFF_INITIAL,
            max: ENDPOINT_BACKOFF_MAX,
        };
        let second = Duration::from_secs(1);
        assert_eq!(backoff.out_for(1, 0), second / 2);
        assert_eq!(backoff.out_for(1, u64::MAX), second);
        assert_eq!(backoff.out_for(3, u64::MAX), 4 * second);
        assert_eq!(backoff.out_for(3, 0), 2 * second);
        assert_eq!(backoff.out_for(6, u64::MAX), 30 * second);
        assert_eq!(backoff.out_for(u32::MAX, 0), 15 * second);
        let mid = backoff.out_for(2, u64::MAX / 2);
        assert!(mid.abs_diff(second * 3 / 2) < Duration::from_micros(1));
    }

    #[test]
    fn an_abandoned_attempt_takes_its_endpoint_out() {
        let a = Scripted::new(Answer::Hang);
        let b_ = Scripted::new(Answer::Ok);
        let b = balanced(&[&a, &b_], Duration::from_secs(60), Duration::from_secs(60));
        let rt = runtime();
        // The engine's attempt timeout, as the engine applies it.
        let timed_out =
            rt.block_on(async { tokio::time::timeout(10 * MS, b.export(request())).await });
        assert!(timed_out.is_err());
        // The engine's error then names the endpoints.
        assert_eq!(
            crate::export::transport::timed_out(&b, 10 * MS).message,
            "no answer from one of http://endpoint-0, http://endpoint-1 within 10ms"
        );
        assert_eq!(up(&b), [false, true]);
        let s = &b.stats()[0];
        assert_eq!((s.requests, s.failures, s.taken_out), (1, 1, 1));
        assert_eq!(b.shared.endpoints[0].in_flight.load(Relaxed), 0);
        send(&rt, &b).unwrap();
        assert_eq!(b_.calls(), 1);
    }

    #[test]
    fn attempts_that_fail_together_take_out_once() {
        let rt = runtime();
        let a = Scripted::new(Answer::Hang);
        let b_ = Scripted::new(Answer::Hang);
        let b = balanced(&[&a, &b_], 20 * MS, 200 * MS);
        // Four in flight at each, then the endpoint 0 ones fail together.
        let (mut at_a, mut at_b) = (Vec::new(), Vec::new());
        for _ in 0..8 {
            let before = a.calls();
            let attempt = b.export(request());
            if a.calls() > before {
                at_a.push(attempt);
            } else {
                at_b.push(attempt);
            }
        }
        assert_eq!((at_a.len(), at_b.len()), (4, 4));
        drop(at_a);
        let s = &b.stats()[0];
        assert_eq!((s.failures, s.taken_out, s.up), (4, 1, false));
        assert_eq!(b.shared.lock_health()[0].failures_in_a_row, 1);
        // Probe due in [10, 20] ms: it succeeds while the other endpoint
        // is still loaded.
        a.set(Answer::Ok);
        std::thread::sleep(25 * MS);
        send(&rt, &b).unwrap();
        assert_eq!(up(&b), [true, true]);
        // Endpoint 1 has 4 in flight: everything goes to endpoint 0.
        for _ in 0..3 {
            send(&rt, &b).unwrap();
        }
        assert_eq!(requests(&b), [8, 4]);
        assert_eq!(b.stats()[1].failures, 0);
        drop(at_b);
        assert_eq!(b.stats()[1].failures, 4);
    }

    #[test]
    fn a_late_success_from_before_the_take_out_does_not_bring_it_back() {
        let rt = runtime();
        let gate = Arc::new(Semaphore::new(0));
        let a = Scripted::new(Answer::Held(Arc::clone(&gate)));
        let b = balanced(&[&a], Duration::from_secs(60), Duration::from_secs(60));
        let mut slow = b.export(request());
        a.set(Answer::Fail(FailureKind::Unavailable));
        send(&rt, &b).unwrap_err();
        assert_eq!(up(&b), [false]);
        gate.add_permits(1);
        ready_at_once(&mut slow).unwrap().unwrap();
        assert_eq!(up(&b), [false], "out until its probe");
        let s = &b.stats()[0];
        assert_eq!((s.requests, s.failures, s.taken_out), (2, 1, 1));
        assert_eq!(b.shared.lock_health()[0].failures_in_a_row, 1);
    }

    #[test]
    fn while_a_probe_is_outstanding_all_out_asks_for_backoff() {
        let rt = runtime();
        let initial = 10 * MS;
        let a = Scripted::new(Answer::Fail(FailureKind::Unavailable));
        let b = balanced(&[&a], initial, initial);
        send(&rt, &b).unwrap_err();
        a.set(Answer::Hang);
        std::thread::sleep(initial + MS);
        let probe = b.export(request());
        let e = ready_at_once(&mut b.export(request()))
            .unwrap()
            .unwrap_err();
        assert_eq!(e.retry, Retry::Backoff, "{e}");
        assert!(e.message.contains("1 being probed"), "{e}");
        drop(probe);
        assert_eq!(b.stats()[0].taken_out, 2);
    }

    #[test]
    fn no_endpoints_is_an_error_not_a_panic() {
        let b = Balanced::new(Vec::new());
        let e = ready_at_once(&mut b.export(request()))
            .unwrap()
            .unwrap_err();
        assert_eq!((e.kind, e.retry), (FailureKind::Unavailable, Retry::Never));
        assert!(b.stats().is_empty());
    }
}
