//! `otlpx-bench outage`: what an exporter does with spans while its
//! receiver is down, and how soon it has caught up once the receiver is
//! back.
//!
//! One run is one contender (otlpx, otlpx with a disk spool, or the
//! opentelemetry SDK with its defaults) in a child process of its own, so
//! that peak RSS and CPU time are the contender's alone. The child records
//! the benchmark span of `otlpx_bench` (start, 8 attributes, end) from one
//! application thread at `--rate` spans a second on an absolute schedule,
//! for `--up-before` + `--down` + `--up-after` seconds, then flushes and
//! shuts down with a generous timeout. The parent runs the embedded
//! receiver: up for `--up-before` seconds; then it refuses every request
//! (gRPC `UNAVAILABLE`) for [`REFUSE_BEFORE_DOWN`], so that no request is
//! half counted when it goes, and is shut down (connections refused) until
//! `--down` seconds after the outage began; then a new receiver listens on
//! the same ports.
//!
//! The child times every span on the application thread in one
//! hdrhistogram per phase (before, outage, after), counts what it recorded
//! in each phase and how far it fell behind its schedule, and prints a
//! sample line every [`SAMPLE_INTERVAL`] (spans recorded; for otlpx the
//! spool, what is still on its way, and drops), through its flush and
//! shutdown. The parent reads the receiver's count as each sample arrives
//! and decodes every request: distinct span ids give the spans lost (OTLP
//! delivery is at least once, so a raw count can include duplicates), and
//! each span's start time the phase it was recorded in. The recovery time
//! runs from the restart until the last span recorded before the restart
//! arrived: when the receiver has everything of the outage it will ever
//! get (to the sampling interval).
//!
//! Between parent and child, the child's stdout carries `start <Unix ns>`
//! (the application thread starts recording; the parent's clock for the
//! phases starts when it reads the line), `sample …` lines, and
//! `done {json}`; its stderr is passed through. Each run prints one JSON
//! line; all runs done, a table of medians per contender follows.

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use clap::{Args, ValueEnum};
use hdrhistogram::Histogram;
use opentelemetry::InstrumentationScope;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider, SpanData, SpanExporter};
use otlpx_bench::receiver::{Fault, Receiver, ReceiverConfig, unused_ports};
use serde_json::{Value, json};

use crate::run::BenchError;

/// How often the child reports its counters, and so the resolution of the
/// recovery time.
const SAMPLE_INTERVAL: Duration = Duration::from_millis(10);

/// How long the receiver refuses requests before it is shut down: long
/// enough for the requests it is handling to be answered, so that its
/// counts are final when it goes.
const REFUSE_BEFORE_DOWN: Duration = Duration::from_millis(50);

/// How long the child's flush may take: far more than draining a 10 s
/// outage's spool needs, so that hitting it means delivery is stuck.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(120);

/// How long shutdown may take after the flush (both engines).
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(30);

/// How long the parent waits for the child to start recording (building
/// an engine, opening a spool).
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// How long the parent keeps trying to bind the receiver's ports again
/// after the outage (another process could hold one for a moment).
const REBIND_TIMEOUT: Duration = Duration::from_secs(5);

/// Below this much time ahead of schedule the application thread records
/// at once instead of sleeping (as the load generator's producers do).
const MIN_SLEEP: Duration = Duration::from_micros(200);

/// The highest latency the histograms hold, in nanoseconds (one minute).
const HISTOGRAM_MAX_NS: u64 = 60_000_000_000;

/// Clock ticks per second of the CPU times in `/proc/self/stat` (`USER_HZ`,
/// 100 on every Linux architecture we run on).
const USER_HZ: f64 = 100.0;

/// The phases of a run, in order, as the JSON names them.
const PHASES: [&str; 3] = ["before", "outage", "after"];

/// One MiB, for the JSON's and the table's `_mib` figures.
const MIB: f64 = 1024.0 * 1024.0;

/// An exporter under test.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Contender {
    /// otlpx with its defaults, no spool.
    Otlpx,
    /// otlpx with its defaults and a disk spool in a fresh directory.
    OtlpxSpool,
    /// opentelemetry_sdk's `BatchSpanProcessor` and opentelemetry-otlp's
    /// tonic exporter, with their defaults.
    Sdk,
}

impl Contender {
    /// All contenders, in the order a round runs them.
    const ALL: [Contender; 3] = [Self::Otlpx, Self::OtlpxSpool, Self::Sdk];

    /// The name on the command line and in the output.
    fn name(self) -> &'static str {
        match self {
            Self::Otlpx => "otlpx",
            Self::OtlpxSpool => "otlpx-spool",
            Self::Sdk => "sdk",
        }
    }
}

/// The options of `otlpx-bench outage`.
#[derive(Debug, Args)]
pub struct OutageArgs {
    /// The contenders, comma-separated; each round runs them in this
    /// order (default: otlpx,otlpx-spool,sdk).
    #[arg(long, value_enum, value_delimiter = ',', value_name = "C")]
    contender: Vec<Contender>,
    /// Spans a second offered by the application thread.
    #[arg(long, value_name = "N", default_value_t = 50_000)]
    rate: u64,
    /// Seconds the receiver is up before the outage.
    #[arg(long, value_name = "S", default_value_t = 5.0)]
    up_before: f64,
    /// Seconds the receiver is down.
    #[arg(long, value_name = "S", default_value_t = 10.0)]
    down: f64,
    /// Seconds of recording after the receiver is back.
    #[arg(long, value_name = "S", default_value_t = 10.0)]
    up_after: f64,
    /// How many times each contender runs.
    #[arg(long, value_name = "N", default_value_t = 1)]
    rounds: usize,
    /// Where otlpx-spool runs make their fresh spool directories (default:
    /// the system's temporary directory).
    #[arg(long, value_name = "DIR")]
    spool_parent: Option<PathBuf>,
    /// Write each run's samples (every 10 ms: seconds, spans recorded,
    /// received, and for otlpx spooled, pending, dropped, spool bytes) to
    /// `DIR/<contender>-<round>.csv`.
    #[arg(long, value_name = "DIR")]
    samples_dir: Option<PathBuf>,
    /// The child process's endpoint (internal: the child runs one
    /// contender against it).
    #[arg(long, hide = true)]
    child_endpoint: Option<String>,
    /// The child process's spool directory (internal).
    #[arg(long, hide = true)]
    child_spool_dir: Option<PathBuf>,
}

/// The lengths of the three phases.
#[derive(Clone, Copy, Debug)]
struct Phases {
    up_before: Duration,
    down: Duration,
    up_after: Duration,
}

impl Phases {
    fn total(&self) -> Duration {
        self.up_before + self.down + self.up_after
    }

    /// The phase (an index into [`PHASES`]) of a moment `since_start`
    /// into the run.
    fn of(&self, since_start: Duration) -> usize {
        if since_start < self.up_before {
            0
        } else if since_start < self.up_before + self.down {
            1
        } else {
            2
        }
    }

    fn seconds(&self, phase: usize) -> f64 {
        [self.up_before, self.down, self.up_after][phase].as_secs_f64()
    }
}

impl OutageArgs {
    /// The phases, validated.
    fn phases(&self) -> Result<Phases, BenchError> {
        let seconds = |what: &str, s: f64| {
            Duration::try_from_secs_f64(s)
                .ok()
                .filter(|d| *d <= Duration::from_secs(3600))
                .ok_or_else(|| {
                    BenchError::msg(format!("--{what} must be 0 to 3600 seconds, not {s}"))
                })
        };
        let phases = Phases {
            up_before: seconds("up-before", self.up_before)?,
            down: seconds("down", self.down)?,
            up_after: seconds("up-after", self.up_after)?,
        };
        if phases.up_before.is_zero() || phases.down.is_zero() || phases.up_after.is_zero() {
            return Err(BenchError::msg(
                "--up-before, --down and --up-after must each be more than 0 seconds",
            ));
        }
        if self.rate == 0 || self.rate > 10_000_000 {
            return Err(BenchError::msg(
                "--rate must be 1 to 10,000,000 spans a second",
            ));
        }
        Ok(phases)
    }
}

/// `otlpx-bench outage`: runs the rounds and prints a JSON line per run and
/// the table of medians; or, with the hidden `--child-endpoint`, is the
/// child of one run.
///
/// # Errors
///
/// Bad options; a receiver that cannot bind; a child that fails or dies.
/// An exporter that loses spans or times out is a result, not an error.
pub fn main(args: &OutageArgs) -> Result<(), BenchError> {
    let phases = args.phases()?;
    if let Some(endpoint) = &args.child_endpoint {
        return child_main(args, &phases, endpoint);
    }
    if args.rounds == 0 {
        return Err(BenchError::msg("--rounds must be at least 1"));
    }
    let contenders = if args.contender.is_empty() {
        Contender::ALL.to_vec()
    } else {
        args.contender.clone()
    };
    let mut runs = Vec::new();
    for round in 1..=args.rounds {
        for &contender in &contenders {
            eprintln!(
                "otlpx-bench outage: round {round}/{}, {} ({:.0} s)",
                args.rounds,
                contender.name(),
                phases.total().as_secs_f64()
            );
            let run = run_one(contender, round, args, &phases)?;
            println!("{run}");
            runs.push((contender, round, run));
        }
    }
    print!("{}", table(&runs, &contenders, args.rate));
    Ok(())
}

// ---------------------------------------------------------------------------
// The parent: the receiver, the child, the figures
// ---------------------------------------------------------------------------

/// A spool directory for one run, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(parent: Option<&Path>, name: &str) -> Result<Self, BenchError> {
        let parent = parent.map_or_else(std::env::temp_dir, Path::to_path_buf);
        let dir = parent.join(format!("otlpx-outage-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).map_err(|e| {
            BenchError::with_source(format!("creating the spool directory {}", dir.display()), e)
        })?;
        Ok(Self(dir))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A receiver on `ports`, keeping requests so that span ids can be
/// counted.
fn start_receiver(ports: (u16, u16)) -> Result<Receiver, BenchError> {
    Receiver::start(ReceiverConfig {
        grpc_port: ports.0,
        http_port: ports.1,
        keep_requests: true,
        ..ReceiverConfig::default()
    })
    .map_err(|e| {
        BenchError::with_source(
            format!("starting the receiver on ports {} and {}", ports.0, ports.1),
            e,
        )
    })
}

/// What the receivers of one run got, across the outage.
struct Delivered {
    /// Spans counted by receivers already shut down.
    retired: u64,
    /// The distinct span ids received.
    ids: HashSet<u64>,
    /// When the child started recording, in Unix nanoseconds.
    start_unix_ns: u64,
    /// The ends of the first two phases, in nanoseconds since the start.
    phase_ends_ns: [u64; 2],
    /// Distinct spans received, by the phase they were recorded in (their
    /// start time).
    by_phase: [u64; 3],
    /// When the last span recorded before the restart arrived (seconds
    /// since the start), if any did.
    last_backlog_arrival: Option<f64>,
}

impl Delivered {
    fn new(start_unix_ns: u64, phases: &Phases) -> Self {
        let ns = |d: Duration| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        Self {
            retired: 0,
            ids: HashSet::new(),
            start_unix_ns,
            phase_ends_ns: [ns(phases.up_before), ns(phases.up_before + phases.down)],
            by_phase: [0; 3],
            last_backlog_arrival: None,
        }
    }

    /// Takes in what `receiver` decoded since the last call, as arrived at
    /// `t` seconds since the start, and returns the spans received so far
    /// (duplicates included).
    fn update(&mut self, receiver: Option<&Receiver>, t: f64) -> u64 {
        let Some(r) = receiver else {
            return self.retired;
        };
        let _ = r.take_request_meta();
        for request in r.take_requests() {
            let spans = request
                .resource_spans
                .iter()
                .flat_map(|r| &r.scope_spans)
                .flat_map(|s| &s.spans)
                .map(|span| {
                    let mut id = [0; 8];
                    let n = span.span_id.len().min(8);
                    id[..n].copy_from_slice(&span.span_id[..n]);
                    (u64::from_le_bytes(id), span.start_time_unix_nano)
                });
            self.take(spans, t);
        }
        self.retired + r.counts().spans
    }

    /// Counts spans (id, start time in Unix nanoseconds) that arrived at
    /// `t`; a span already seen is a duplicate and counts for nothing.
    fn take(&mut self, spans: impl Iterator<Item = (u64, u64)>, t: f64) {
        for (id, start_unix_ns) in spans {
            if !self.ids.insert(id) {
                continue;
            }
            let since = start_unix_ns.saturating_sub(self.start_unix_ns);
            let phase = self
                .phase_ends_ns
                .iter()
                .filter(|&&end| since >= end)
                .count();
            self.by_phase[phase] += 1;
            if phase < 2 {
                self.last_backlog_arrival = Some(t);
            }
        }
    }

    /// Shuts `receiver` down at `t`, its counts kept.
    fn retire(&mut self, receiver: Receiver, t: f64) {
        self.retired = self.update(Some(&receiver), t);
        receiver.shutdown();
    }
}

/// One sample of a run, stamped by the parent.
#[derive(Clone, Copy, Debug)]
struct Sample {
    /// Seconds since the child started recording.
    t: f64,
    /// Spans recorded.
    recorded: u64,
    /// Spans received (duplicates included).
    received: u64,
    /// otlpx: spans in the spool.
    spooled: u64,
    /// otlpx: spans in the rings, in flight or in the spool.
    pending: u64,
    /// otlpx: spans dropped so far, all reasons.
    dropped: u64,
    /// otlpx: the spool's bytes.
    spool_bytes: u64,
}

/// What the receiver does next, and when (since the start).
#[derive(Clone, Copy, Debug)]
enum Event {
    Refuse,
    Down,
    Up,
}

/// Runs `contender` once in a child process against a receiver that goes
/// down and comes back, and returns the run's JSON object.
fn run_one(
    contender: Contender,
    round: usize,
    args: &OutageArgs,
    phases: &Phases,
) -> Result<Value, BenchError> {
    let ports = unused_ports().map_err(|e| BenchError::with_source("finding free ports", e))?;
    let mut receiver = Some(start_receiver(ports)?);
    let endpoint = format!("http://127.0.0.1:{}", ports.0);
    let spool = match contender {
        Contender::OtlpxSpool => Some(TempDir::new(
            args.spool_parent.as_deref(),
            &format!("round{round}"),
        )?),
        _ => None,
    };

    let exe = std::env::current_exe()
        .map_err(|e| BenchError::with_source("finding this program's executable", e))?;
    let mut command = Command::new(exe);
    command
        .arg("outage")
        .args(["--contender", contender.name()])
        .args(["--rate", &args.rate.to_string()])
        .args(["--up-before", &args.up_before.to_string()])
        .args(["--down", &args.down.to_string()])
        .args(["--up-after", &args.up_after.to_string()])
        .args(["--child-endpoint", &endpoint]);
    if let Some(dir) = &spool {
        command.arg("--child-spool-dir").arg(&dir.0);
    }
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| BenchError::with_source("starting the child process", e))?;
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| BenchError::msg("the child's stdout was not captured"))?;
    let (lines_tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });

    let outcome = follow_child(&lines, phases, ports, &mut receiver);
    if outcome.is_err() {
        let _ = child.kill();
    }
    let status = child
        .wait()
        .map_err(|e| BenchError::with_source("waiting for the child process", e))?;
    let (samples, restart_t, done_t, delivered, child_json) = outcome?;
    if !status.success() {
        return Err(BenchError::msg(format!(
            "the {} child failed ({status}); its error is printed above",
            contender.name()
        )));
    }
    let mut delivered = delivered;
    let received = delivered.update(receiver.as_ref(), done_t);
    if let Some(r) = receiver.take() {
        delivered.retire(r, done_t);
    }
    drop(spool);
    if let Some(dir) = &args.samples_dir {
        write_samples(dir, contender, round, &samples)?;
    }
    Ok(figures(
        contender, round, args, phases, &samples, restart_t, done_t, received, &delivered,
        child_json,
    ))
}

/// Writes `samples` as CSV to `dir/<contender>-<round>.csv`.
fn write_samples(
    dir: &Path,
    contender: Contender,
    round: usize,
    samples: &[Sample],
) -> Result<(), BenchError> {
    use std::fmt::Write as _;

    let mut csv = String::from("t_s,recorded,received,spooled,pending,dropped,spool_bytes\n");
    for s in samples {
        let _ = writeln!(
            csv,
            "{:.3},{},{},{},{},{},{}",
            s.t, s.recorded, s.received, s.spooled, s.pending, s.dropped, s.spool_bytes
        );
    }
    let path = dir.join(format!("{}-{round}.csv", contender.name()));
    std::fs::create_dir_all(dir)
        .and_then(|()| std::fs::write(&path, csv))
        .map_err(|e| BenchError::with_source(format!("writing {}", path.display()), e))
}

/// What [`follow_child`] gathers: the samples, when the receiver came
/// back and when the child was done (seconds since the start), the
/// deliveries, and the child's own report.
type Followed = (Vec<Sample>, f64, f64, Delivered, Value);

/// Reads the child's lines until `done`, taking the receiver down and up
/// on schedule and sampling it with every sample of the child.
fn follow_child(
    lines: &mpsc::Receiver<std::io::Result<String>>,
    phases: &Phases,
    ports: (u16, u16),
    receiver: &mut Option<Receiver>,
) -> Result<Followed, BenchError> {
    let read_error = |e| BenchError::with_source("reading the child's output", e);
    let (start, start_unix_ns) = loop {
        match lines.recv_timeout(START_TIMEOUT) {
            Ok(Ok(line)) if line.starts_with("start ") => {
                let unix_ns = line["start ".len()..].trim().parse().map_err(|e| {
                    BenchError::with_source(format!("the child's start line {line:?}"), e)
                })?;
                break (Instant::now(), unix_ns);
            }
            // Samples before the start: the engine is idle.
            Ok(Ok(line)) if line.starts_with("sample ") => {}
            Ok(Ok(line)) => eprintln!("otlpx-bench outage: child: {line}"),
            Ok(Err(e)) => return Err(read_error(e)),
            Err(_) => return Err(BenchError::msg("the child did not start recording")),
        }
    };
    let mut events = vec![
        (phases.up_before, Event::Refuse),
        (phases.up_before + REFUSE_BEFORE_DOWN, Event::Down),
        (phases.up_before + phases.down, Event::Up),
    ];
    events.reverse();
    let mut delivered = Delivered::new(start_unix_ns, phases);
    let mut samples = Vec::new();
    let mut restart_t = f64::NAN;
    loop {
        while let Some(&(at, event)) = events.last() {
            if start.elapsed() < at {
                break;
            }
            events.pop();
            match event {
                Event::Refuse => {
                    if let Some(r) = receiver.as_ref() {
                        r.set_fault(Fault::Status {
                            grpc_code: 14,
                            http_status: 503,
                            message: "outage".to_owned(),
                        });
                    }
                }
                Event::Down => {
                    if let Some(r) = receiver.take() {
                        delivered.retire(r, start.elapsed().as_secs_f64());
                    }
                }
                Event::Up => {
                    *receiver = Some(rebind(ports)?);
                    restart_t = start.elapsed().as_secs_f64();
                }
            }
        }
        let wait = events
            .last()
            .map_or(START_TIMEOUT, |&(at, _)| at.saturating_sub(start.elapsed()));
        let line = match lines.recv_timeout(wait) {
            Ok(Ok(line)) => line,
            Ok(Err(e)) => return Err(read_error(e)),
            Err(mpsc::RecvTimeoutError::Timeout) => continue,
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                return Err(BenchError::msg("the child exited without its report"));
            }
        };
        if let Some(rest) = line.strip_prefix("sample ") {
            let t = start.elapsed().as_secs_f64();
            let received = delivered.update(receiver.as_ref(), t);
            let n: Vec<u64> = rest
                .split_whitespace()
                .map(|w| w.parse().unwrap_or(0))
                .collect();
            if let [recorded, spooled, pending, dropped, spool_bytes] = n[..] {
                samples.push(Sample {
                    t,
                    recorded,
                    received,
                    spooled,
                    pending,
                    dropped,
                    spool_bytes,
                });
            }
        } else if let Some(report) = line.strip_prefix("done ") {
            let done_t = start.elapsed().as_secs_f64();
            let report = serde_json::from_str(report)
                .map_err(|e| BenchError::with_source("parsing the child's report", e))?;
            return Ok((samples, restart_t, done_t, delivered, report));
        } else {
            eprintln!("otlpx-bench outage: child: {line}");
        }
    }
}

/// A receiver on `ports` again, retrying while a port is taken.
fn rebind(ports: (u16, u16)) -> Result<Receiver, BenchError> {
    let deadline = Instant::now() + REBIND_TIMEOUT;
    loop {
        match start_receiver(ports) {
            Ok(r) => return Ok(r),
            Err(e) if Instant::now() >= deadline => return Err(e),
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

/// The first sample after the restart from which on otlpx's spool stays
/// empty, in seconds after the restart; `None` when nothing was spooled.
fn spool_drained(samples: &[Sample], restart_t: f64, done_t: f64) -> Option<f64> {
    if samples.iter().all(|s| s.spooled == 0) {
        return None;
    }
    let after: Vec<&Sample> = samples.iter().filter(|s| s.t >= restart_t).collect();
    let drained_t = match after.iter().rposition(|s| s.spooled > 0) {
        None => after.first().map_or(done_t, |s| s.t),
        Some(i) => after.get(i + 1).map_or(done_t, |s| s.t),
    };
    Some((drained_t - restart_t).max(0.0))
}

/// otlpx's drops in each phase, and during the flush and shutdown (by the
/// samples nearest the phases' ends).
fn dropped_by_phase(samples: &[Sample], phases: &Phases) -> Value {
    let at = |t: f64| {
        samples
            .iter()
            .take_while(|s| s.t <= t)
            .last()
            .map_or(0, |s| s.dropped)
    };
    let ends = [
        phases.up_before.as_secs_f64(),
        (phases.up_before + phases.down).as_secs_f64(),
        phases.total().as_secs_f64(),
    ];
    let [b, o, a] = ends.map(at);
    let end = samples.last().map_or(0, |s| s.dropped);
    json!({
        "before": b,
        "outage": o.saturating_sub(b),
        "after": a.saturating_sub(o),
        "finish": end.saturating_sub(a),
    })
}

/// The run's JSON object: the child's report and what the parent saw.
#[allow(clippy::too_many_arguments)]
fn figures(
    contender: Contender,
    round: usize,
    args: &OutageArgs,
    phases: &Phases,
    samples: &[Sample],
    restart_t: f64,
    done_t: f64,
    received: u64,
    delivered: &Delivered,
    child: Value,
) -> Value {
    let recorded = child["recorded"].as_u64().unwrap_or(0);
    let unique = delivered.ids.len() as u64;
    let lost = recorded.saturating_sub(unique);
    if unique > recorded {
        eprintln!(
            "otlpx-bench outage: warning: {unique} distinct spans received, {recorded} recorded"
        );
    }
    let at_restart = samples.iter().find(|s| s.t >= restart_t);
    let round3 = |x: f64| (x * 1000.0).round() / 1000.0;
    let per_phase = |f: &dyn Fn(usize) -> Value| {
        Value::Object((0..3).map(|i| (PHASES[i].to_owned(), f(i))).collect())
    };
    let mut run = json!({
        "contender": contender.name(),
        "round": round,
        "rate": args.rate,
        "up_before_s": phases.up_before.as_secs_f64(),
        "down_s": phases.down.as_secs_f64(),
        "up_after_s": phases.up_after.as_secs_f64(),
        "received": received,
        "received_unique": unique,
        "duplicates": received.saturating_sub(unique),
        "lost": lost,
        "lost_pct": round3(100.0 * lost as f64 / recorded.max(1) as f64),
        // Spans of each phase lost: recorded in it (by the child's clock),
        // never received (by their start time). A span recorded within
        // microseconds of a phase's end may count in the next phase.
        "lost_by_phase": per_phase(&|i| {
            let recorded = child["recorded_by_phase"][PHASES[i]].as_i64().unwrap_or(0);
            (recorded - i64::try_from(delivered.by_phase[i]).unwrap_or(i64::MAX)).into()
        }),
        // From the restart until the last span recorded before it arrived.
        "recovery_s": delivered
            .last_backlog_arrival
            .map(|t| round3((t - restart_t).max(0.0))),
        "spool_drained_s": spool_drained(samples, restart_t, done_t).map(round3),
        "pending_at_restart": at_restart.map(|s| s.pending),
        "spooled_at_restart": at_restart.map(|s| s.spooled),
        "dropped_by_phase": dropped_by_phase(samples, phases),
        "samples": samples.len(),
    });
    if let (Value::Object(run), Value::Object(child)) = (&mut run, child) {
        run.extend(child);
    }
    run
}

// ---------------------------------------------------------------------------
// The table of medians
// ---------------------------------------------------------------------------

/// Which way a figure is better, for its ratio.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Better {
    /// No ratio (counts, times, memory against a budget).
    NoRatio,
    /// Higher is better: the ratio is otlpx ÷ SDK.
    Higher,
    /// Lower is better: the ratio is SDK ÷ otlpx.
    Lower,
}

/// The rows of the table: label, JSON pointer, ratio.
#[rustfmt::skip]
const ROWS: [(&str, &str, Better); 28] = [
    ("recorded spans/s, outage", "/spans_per_s/outage", Better::Higher),
    ("recorded spans/s, after", "/spans_per_s/after", Better::Higher),
    ("max lag behind schedule ms", "/max_lag_ms/outage", Better::NoRatio),
    ("record ns p50, outage", "/record_ns/outage/p50", Better::Lower),
    ("record ns p99, outage", "/record_ns/outage/p99", Better::Lower),
    ("record ns p99.9, outage", "/record_ns/outage/p999", Better::Lower),
    ("record ns max, outage", "/record_ns/outage/max", Better::Lower),
    ("record ns p99, after", "/record_ns/after/p99", Better::Lower),
    ("record ns p99.9, after", "/record_ns/after/p999", Better::Lower),
    ("spans recorded", "/recorded", Better::NoRatio),
    ("spans lost (never received)", "/lost", Better::NoRatio),
    ("  lost %", "/lost_pct", Better::NoRatio),
    ("  recorded before, lost", "/lost_by_phase/before", Better::NoRatio),
    ("  recorded in outage, lost", "/lost_by_phase/outage", Better::NoRatio),
    ("  recorded after, lost", "/lost_by_phase/after", Better::NoRatio),
    ("  counted: ring_full", "/engine/dropped/ring_full", Better::NoRatio),
    ("  counted: evicted", "/engine/dropped/evicted", Better::NoRatio),
    ("  counted: export_failed", "/engine/dropped/export_failed", Better::NoRatio),
    ("  counted: spool_full", "/engine/dropped/spool_full", Better::NoRatio),
    ("  counted after restart", "/dropped_by_phase/after", Better::NoRatio),
    ("duplicates received", "/duplicates", Better::NoRatio),
    ("recovery s", "/recovery_s", Better::NoRatio),
    ("spool drained s", "/spool_drained_s", Better::NoRatio),
    ("flush + shutdown s", "/finish_s", Better::NoRatio),
    ("in-flight high-water MiB", "/engine/in_flight_bytes_high_water_mib", Better::NoRatio),
    ("spool high-water MiB", "/spool_bytes_high_water_mib", Better::NoRatio),
    ("peak RSS MiB", "/peak_rss_mib", Better::Lower),
    ("CPU s (whole process)", "/cpu_s", Better::Lower),
];

/// The median of `values` (the mean of the middle two for an even count).
fn median(mut values: Vec<f64>) -> Option<f64> {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(values[n / 2]),
        _ => Some((values[n / 2 - 1] + values[n / 2]) / 2.0),
    }
}

/// `x` for the table: thousands separated from 1,000 up, three
/// significant decimals below.
fn show(x: f64) -> String {
    if x.abs() >= 1000.0 {
        let digits = format!("{:.0}", x.abs());
        let mut out = String::new();
        for (i, c) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i) % 3 == 0 {
                out.push(',');
            }
            out.push(c);
        }
        if x < 0.0 { format!("-{out}") } else { out }
    } else if x == x.trunc() {
        format!("{x:.0}")
    } else if x.abs() >= 10.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.3}")
    }
}

/// The table of medians per contender, with the median per-round ratio of
/// each otlpx contender to the SDK where a ratio means something (> 1:
/// otlpx better).
fn table(runs: &[(Contender, usize, Value)], contenders: &[Contender], rate: u64) -> String {
    use std::fmt::Write as _;

    let value = |run: &Value, pointer: &str| run.pointer(pointer).and_then(Value::as_f64);
    let rounds = runs.iter().map(|r| r.1).max().unwrap_or(0);
    let of =
        |c: Contender, round: usize| runs.iter().find(|r| r.0 == c && r.1 == round).map(|r| &r.2);
    let has_sdk = contenders.contains(&Contender::Sdk);
    let ratio_of: Vec<Contender> = contenders
        .iter()
        .copied()
        .filter(|&c| has_sdk && c != Contender::Sdk)
        .collect();

    let mut out = String::new();
    let _ = writeln!(
        out,
        "\noutage: {rate} spans/s offered, medians of {rounds} round(s); ratio > 1: otlpx better"
    );
    let _ = write!(out, "{:<30}", "");
    for c in contenders {
        let _ = write!(out, "{:>14}", c.name());
    }
    for c in &ratio_of {
        let _ = write!(out, "{:>18}", format!("{}/sdk", c.name()));
    }
    out.push('\n');
    for (label, pointer, better) in ROWS {
        let medians: Vec<Option<f64>> = contenders
            .iter()
            .map(|&c| {
                median(
                    (1..=rounds)
                        .filter_map(|r| of(c, r).and_then(|run| value(run, pointer)))
                        .collect(),
                )
            })
            .collect();
        if medians.iter().all(Option::is_none) {
            continue;
        }
        let _ = write!(out, "{label:<30}");
        for m in &medians {
            let _ = write!(out, "{:>14}", m.map_or("-".to_owned(), show));
        }
        for &c in &ratio_of {
            let ratios = (1..=rounds).filter_map(|r| {
                let ours = of(c, r).and_then(|run| value(run, pointer))?;
                let sdk = of(Contender::Sdk, r).and_then(|run| value(run, pointer))?;
                let ratio = match better {
                    Better::NoRatio => return None,
                    Better::Higher => ours / sdk,
                    Better::Lower => sdk / ours,
                };
                ratio.is_finite().then_some(ratio)
            });
            let shown = median(ratios.collect()).map_or(String::new(), |r| format!("{r:.2}x"));
            let _ = write!(out, "{shown:>18}");
        }
        out.push('\n');
    }
    out
}

// ---------------------------------------------------------------------------
// The child: one contender recording through the outage
// ---------------------------------------------------------------------------

/// A `SpanExporter` that counts the spans of every batch its inner
/// exporter delivered.
#[derive(Debug)]
struct CountingExporter<E> {
    inner: E,
    exported: Arc<AtomicU64>,
}

impl<E: SpanExporter> SpanExporter for CountingExporter<E> {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let spans = batch.len() as u64;
        let result = self.inner.export(batch).await;
        if result.is_ok() {
            // Relaxed: a statistic, read after shutdown joined the
            // processor's thread (the join orders it).
            self.exported.fetch_add(spans, Ordering::Relaxed);
        }
        result
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

/// The opentelemetry SDK as `otlpx-bench run` sets it up (see
/// `run/sdk.rs`): the default `BatchSpanProcessor` (a 2,048-span queue,
/// 512-span batches, one export at a time) and the default tonic exporter
/// (10 s timeout, 3 retries from 100 ms), its channel on a one-thread
/// tokio runtime that outlives the provider.
struct Sdk {
    provider: SdkTracerProvider,
    tracer: SdkTracer,
    exported: Arc<AtomicU64>,
    /// Dropped last (fields drop in order): the channel's I/O runs on it.
    _runtime: tokio::runtime::Runtime,
}

/// The contender in the child.
enum Side {
    Otlpx {
        engine: otlpx::Engine,
        tracer: otlpx::Tracer,
    },
    Sdk(Sdk),
}

impl Side {
    fn build(
        contender: Contender,
        endpoint: &str,
        spool_dir: Option<&Path>,
    ) -> Result<Self, BenchError> {
        match contender {
            Contender::Otlpx | Contender::OtlpxSpool => {
                let mut builder = otlpx::Engine::builder()
                    .service_name(otlpx_bench::SERVICE_NAME)
                    .endpoint(endpoint)
                    .protocol(otlpx::Protocol::Grpc);
                if contender == Contender::OtlpxSpool {
                    let dir = spool_dir.ok_or_else(|| BenchError::msg("no spool directory"))?;
                    builder = builder.spool_dir(dir);
                }
                let engine = builder
                    .build()
                    .map_err(|e| BenchError::with_source("building the otlpx engine", e))?;
                let tracer = engine.tracer(otlpx_bench::SCOPE_NAME, otlpx_bench::SCOPE_VERSION);
                Ok(Self::Otlpx { engine, tracer })
            }
            Contender::Sdk => {
                let runtime = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(1)
                    .thread_name("sdk-tonic")
                    .enable_all()
                    .build()
                    .map_err(|e| BenchError::with_source("starting a tokio runtime", e))?;
                let exporter = {
                    let _context = runtime.enter();
                    opentelemetry_otlp::SpanExporter::builder()
                        .with_tonic()
                        .with_endpoint(endpoint)
                        .build()
                        .map_err(|e| {
                            BenchError::with_source("building the OTLP/gRPC exporter", e)
                        })?
                };
                let exported = Arc::new(AtomicU64::new(0));
                let provider = SdkTracerProvider::builder()
                    .with_resource(
                        Resource::builder_empty()
                            .with_service_name(otlpx_bench::SERVICE_NAME)
                            .build(),
                    )
                    .with_batch_exporter(CountingExporter {
                        inner: exporter,
                        exported: Arc::clone(&exported),
                    })
                    .build();
                let tracer = provider.tracer_with_scope(
                    InstrumentationScope::builder(otlpx_bench::SCOPE_NAME)
                        .with_version(otlpx_bench::SCOPE_VERSION)
                        .build(),
                );
                Ok(Self::Sdk(Sdk {
                    provider,
                    tracer,
                    exported,
                    _runtime: runtime,
                }))
            }
        }
    }

    /// Spans in the spool, spans not yet delivered (rings, in flight,
    /// spool), spans dropped, and the spool's bytes; zeros for the SDK,
    /// which does not say.
    fn sample(&self) -> [u64; 4] {
        match self {
            Self::Otlpx { engine, .. } => {
                let s = engine.stats();
                [
                    s.spooled,
                    s.in_rings + s.in_flight + s.spooled,
                    s.dropped.total(),
                    s.spool.bytes,
                ]
            }
            Self::Sdk(_) => [0; 4],
        }
    }

    /// Flushes and shuts down, and reports the engine's own counters.
    fn finish(&self) -> Value {
        match self {
            Self::Otlpx { engine, .. } => {
                let flushed = engine.flush(FLUSH_TIMEOUT);
                if let Err(e) = &flushed {
                    eprintln!("otlpx-bench outage: warning: otlpx flush: {e}");
                }
                let shutdown = engine.shutdown(SHUTDOWN_TIMEOUT);
                if let Err(e) = &shutdown {
                    eprintln!("otlpx-bench outage: warning: otlpx shutdown: {e}");
                }
                let s = engine.stats();
                let dropped: serde_json::Map<String, Value> = s
                    .dropped
                    .by_reason()
                    .into_iter()
                    .map(|(k, v)| (k.to_owned(), v.into()))
                    .collect();
                let budget = engine
                    .config()
                    .get("exporter.max_in_flight_bytes")
                    .and_then(|e| e.value.parse::<u64>().ok());
                json!({
                    "exported": s.exported,
                    "dropped_total": s.dropped.total(),
                    "dropped": dropped,
                    "in_rings": s.in_rings,
                    "in_flight": s.in_flight,
                    "spooled": s.spooled,
                    "spool_written": s.spool.written,
                    "spool_delivered": s.spool.delivered,
                    "identity_holds": s.recorded + s.spool.restored
                        == s.exported + s.dropped.total() + s.in_flight + s.in_rings + s.spooled,
                    "requests": s.export.requests,
                    "retries": s.export.retries,
                    "failed_attempts": s.export.failures.total(),
                    "in_flight_bytes_high_water_mib":
                        s.export.in_flight_bytes_high_water as f64 / MIB,
                    "max_in_flight_bytes_mib": budget.map(|b| b as f64 / MIB),
                    "flushed": flushed.is_ok(),
                    "shutdown_clean": shutdown.is_ok(),
                    "last_export_error": engine.last_export_error(),
                })
            }
            Self::Sdk(sdk) => {
                let shutdown = sdk.provider.shutdown_with_timeout(SHUTDOWN_TIMEOUT);
                if let Err(e) = &shutdown {
                    eprintln!("otlpx-bench outage: warning: SDK shutdown: {e}");
                }
                json!({
                    // Relaxed: shutdown joined the processor's thread.
                    "exported": sdk.exported.load(Ordering::Relaxed),
                    "shutdown_clean": shutdown.is_ok(),
                })
            }
        }
    }
}

/// What the application thread did in each phase.
struct Produced {
    spans: [u64; 3],
    record_ns: [Histogram<u64>; 3],
    max_lag: [Duration; 3],
}

/// Says `start <Unix ns>` to the parent, then records with `record` at
/// `rate` spans a second for the whole run, timing each span and storing
/// the running count in `recorded`.
fn produce(
    record: impl Fn(),
    rate: u64,
    phases: &Phases,
    recorded: &AtomicU64,
) -> Result<Produced, BenchError> {
    let histogram = || {
        Histogram::new_with_bounds(1, HISTOGRAM_MAX_NS, 3)
            .map_err(|e| BenchError::with_source("creating a latency histogram", e))
    };
    let mut p = Produced {
        spans: [0; 3],
        record_ns: [histogram()?, histogram()?, histogram()?],
        max_lag: [Duration::ZERO; 3],
    };
    let total = phases.total();
    let anchor = minstant::Anchor::new();
    let start = minstant::Instant::now();
    // The span timestamps of both engines are on this scale: otlpx's
    // clock is minstant's, the SDK's the system clock it is anchored to.
    say(&format!("start {}", start.as_unix_nanos(&anchor)));
    let mut i: u64 = 0;
    loop {
        // Span `i` is due `i / rate` seconds in: an absolute schedule, so
        // that a late span is made up for by recording the next ones at
        // once (and the lag says how late).
        let due_ns = u128::from(i) * 1_000_000_000 / u128::from(rate);
        let due = Duration::from_nanos(u64::try_from(due_ns).unwrap_or(u64::MAX));
        if due >= total {
            break;
        }
        let now = minstant::Instant::now();
        let since = now.saturating_duration_since(start);
        if due > since + MIN_SLEEP {
            std::thread::sleep(due - since);
        }
        let t0 = minstant::Instant::now();
        let at = t0.saturating_duration_since(start);
        record();
        let t1 = minstant::Instant::now();
        let phase = phases.of(at);
        p.spans[phase] += 1;
        p.max_lag[phase] = p.max_lag[phase].max(at.saturating_sub(due));
        let ns = t1.saturating_duration_since(t0).as_nanos();
        p.record_ns[phase].saturating_record(u64::try_from(ns).unwrap_or(u64::MAX));
        i += 1;
        // Relaxed: a statistic for the sampler, no data depends on it.
        recorded.store(i, Ordering::Relaxed);
    }
    Ok(p)
}

/// A line on stdout, to the parent (line-buffered, so it goes at once).
fn say(line: &str) {
    println!("{line}");
}

/// Prints a sample every [`SAMPLE_INTERVAL`] until `done` (and one after),
/// and returns the spool's high-water mark in bytes.
fn sample_until(side: &Side, recorded: &AtomicU64, done: &AtomicBool) -> u64 {
    let mut spool_high_water = 0;
    loop {
        // Relaxed: `done` is set after the finish returned, and a sample
        // taken a moment late is still a sample.
        let last = done.load(Ordering::Relaxed);
        let [spooled, pending, dropped, spool_bytes] = side.sample();
        spool_high_water = spool_high_water.max(spool_bytes);
        say(&format!(
            "sample {} {spooled} {pending} {dropped} {spool_bytes}",
            recorded.load(Ordering::Relaxed)
        ));
        if last {
            return spool_high_water;
        }
        std::thread::sleep(SAMPLE_INTERVAL);
    }
}

/// A `/proc/self/status` value in KiB (`VmHWM`, `VmRSS`).
fn proc_status_kib(key: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(key))?;
    line[key.len()..]
        .trim_start_matches(':')
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// User plus system CPU seconds of this process, all threads, from
/// `/proc/self/stat`.
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which may hold spaces) start at the
    // third; utime and stime are the 14th and 15th.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(ticks as f64 / USER_HZ)
}

/// The child: builds the contender, records through the run, finishes, and
/// reports.
fn child_main(args: &OutageArgs, phases: &Phases, endpoint: &str) -> Result<(), BenchError> {
    let [contender] = args.contender[..] else {
        return Err(BenchError::msg("the child runs exactly one contender"));
    };
    let side = Side::build(contender, endpoint, args.child_spool_dir.as_deref())?;
    let recorded = AtomicU64::new(0);
    let done = AtomicBool::new(false);
    let (produced, finish, engine, spool_high_water) = std::thread::scope(|scope| {
        let sampler = scope.spawn(|| sample_until(&side, &recorded, &done));
        let produced = match &side {
            Side::Otlpx { tracer, .. } => produce(
                || otlpx_bench::record_otlpx(tracer),
                args.rate,
                phases,
                &recorded,
            ),
            Side::Sdk(sdk) => produce(
                || otlpx_bench::record_opentelemetry(&sdk.tracer),
                args.rate,
                phases,
                &recorded,
            ),
        };
        let finish_start = Instant::now();
        let engine = side.finish();
        let finish = finish_start.elapsed();
        done.store(true, Ordering::Relaxed);
        let spool_high_water = sampler.join().unwrap_or(0);
        (produced, finish, engine, spool_high_water)
    });
    let produced = produced?;
    let per_phase = |f: &dyn Fn(usize) -> Value| {
        Value::Object((0..3).map(|i| (PHASES[i].to_owned(), f(i))).collect())
    };
    let report = json!({
        "recorded": recorded.load(Ordering::Relaxed),
        "recorded_by_phase": per_phase(&|i| produced.spans[i].into()),
        "spans_per_s": per_phase(&|i| {
            (produced.spans[i] as f64 / phases.seconds(i)).round().into()
        }),
        "max_lag_ms": per_phase(&|i| {
            ((produced.max_lag[i].as_secs_f64() * 1e6).round() / 1e3).into()
        }),
        "record_ns": per_phase(&|i| {
            let h = &produced.record_ns[i];
            json!({
                "p50": h.value_at_quantile(0.50),
                "p99": h.value_at_quantile(0.99),
                "p999": h.value_at_quantile(0.999),
                "max": h.max(),
            })
        }),
        "finish_s": (finish.as_secs_f64() * 1e3).round() / 1e3,
        "spool_bytes_high_water_mib": (contender == Contender::OtlpxSpool)
            .then_some(spool_high_water as f64 / MIB),
        "peak_rss_mib": proc_status_kib("VmHWM").map(|k| k as f64 / 1024.0),
        "cpu_s": cpu_seconds(),
        "engine": engine,
    });
    say(&format!("done {report}"));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(t: f64, spooled: u64, dropped: u64) -> Sample {
        Sample {
            t,
            recorded: 0,
            received: 0,
            spooled,
            pending: spooled,
            dropped,
            spool_bytes: 0,
        }
    }

    #[test]
    fn the_spool_is_drained_once_it_stays_empty_and_drops_go_by_phase() {
        let phases = Phases {
            up_before: Duration::from_secs(1),
            down: Duration::from_secs(1),
            up_after: Duration::from_secs(1),
        };
        let samples = [
            sample(0.5, 0, 0),
            sample(1.5, 10, 3),
            sample(2.2, 5, 3),
            sample(2.4, 0, 4),
            sample(2.6, 2, 4),
            sample(2.8, 0, 4),
            sample(3.2, 0, 6),
        ];
        let drained = spool_drained(&samples, 2.0, 3.5).unwrap();
        assert!((drained - 0.8).abs() < 1e-9, "{drained}");
        // Still spooled at the last sample: drained when the child was done.
        let drained = spool_drained(&samples[..5], 2.0, 3.5).unwrap();
        assert!((drained - 1.5).abs() < 1e-9, "{drained}");
        assert_eq!(spool_drained(&samples[..1], 2.0, 3.5), None);
        assert_eq!(
            dropped_by_phase(&samples, &phases),
            json!({"before": 0, "outage": 3, "after": 1, "finish": 2})
        );
    }

    #[test]
    fn deliveries_count_once_by_the_phase_they_were_recorded_in() {
        let phases = Phases {
            up_before: Duration::from_secs(5),
            down: Duration::from_secs(10),
            up_after: Duration::from_secs(10),
        };
        let t0 = 1_000_000_000_000;
        let at = |s: u64| t0 + s * 1_000_000_000;
        let mut d = Delivered::new(t0, &phases);
        d.take([(1, at(1)), (2, at(4)), (3, at(5))].into_iter(), 1.0);
        assert_eq!((d.by_phase, d.last_backlog_arrival), ([2, 1, 0], Some(1.0)));
        // After the restart: a span of the outage, one of the last phase,
        // and the first one again (a duplicate, which counts for nothing).
        d.take([(4, at(14)), (5, at(15)), (1, at(1))].into_iter(), 17.5);
        assert_eq!(
            (d.by_phase, d.last_backlog_arrival),
            ([2, 2, 1], Some(17.5))
        );
        d.take([(6, at(20))].into_iter(), 21.0);
        assert_eq!(
            (d.by_phase, d.last_backlog_arrival),
            ([2, 2, 2], Some(17.5))
        );
        assert_eq!(d.ids.len(), 6);
    }

    #[test]
    fn medians_and_numbers_for_the_table() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(vec![4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(median(vec![]), None);
        assert_eq!(show(1_234_567.0), "1,234,567");
        assert_eq!(show(-1234.0), "-1,234");
        assert_eq!(show(12.0), "12");
        assert_eq!(show(12.34), "12.3");
        assert_eq!(show(0.1234), "0.123");
    }
}
