//! The hidden `__child` subcommand: one engine in a process of its own,
//! so that its CPU time and peak memory are its own.
//!
//! It builds the engine, starts the CPU clock, runs the producers, flushes
//! and shuts the engine down, stops the clock, and prints one line of JSON
//! (an [`EngineReport`] whose `receiver_spans` is `null`; the parent fills
//! it in) on stdout. Nothing else goes to stdout; errors go to stderr and
//! make the exit status non-zero.

use std::io::Write as _;
use std::time::Instant;

use super::error::{BenchError, Context};
use super::options::{ChildArgs, EngineKind, Plan};
use super::otlpx_engine::OtlpxEngine;
use super::report::{EngineReport, RecordNs};
use super::sdk::SdkEngine;
use super::sys;
use super::workload::{self, Produced};

/// What an engine did, in the terms common to both.
struct Counts {
    /// Spans the receiver acknowledged.
    exported: u64,
    /// Drops by reason; `None` when the engine does not count its drops.
    dropped_by_reason: Option<Vec<(String, u64)>>,
}

/// Runs the child: one engine, one JSON line on stdout.
///
/// # Errors
///
/// When the options are invalid, the engine cannot be built or shut down,
/// or stdout cannot be written.
pub fn main(args: &ChildArgs) -> Result<(), BenchError> {
    let plan = args.plan()?;
    let report = match args.engine {
        EngineKind::Otlpx => {
            let engine = OtlpxEngine::build(plan.protocol, plan.compression, &args.endpoint)?;
            measure(EngineKind::Otlpx, &plan, engine, |e| {
                let c = e.finish();
                Counts {
                    exported: c.exported,
                    dropped_by_reason: Some(c.dropped_by_reason),
                }
            })?
        }
        EngineKind::OtelSdk => {
            let engine = SdkEngine::build(plan.protocol, plan.compression, &args.endpoint)?;
            measure(EngineKind::OtelSdk, &plan, engine, |e| {
                Counts {
                    exported: e.finish().exported,
                    // The SDK drops without counting: `measure` reports
                    // `recorded - exported`.
                    dropped_by_reason: None,
                }
            })?
        }
    };
    let mut out = std::io::stdout().lock();
    writeln!(out, "{}", report.to_json_line())
        .and_then(|()| out.flush())
        .context("writing the result to stdout")
}

/// The reason given for the SDK's drops: it counts neither a full queue
/// nor a failed export, so they cannot be told apart.
pub const SDK_DROP_REASON: &str = "queue_full_or_export_failed";

/// Runs `plan` on `engine`, then `finish` (flush and shutdown), and
/// measures all of it: wall time and process CPU time from just before the
/// producers start to the end of shutdown, the record-cost percentiles,
/// the process's peak resident memory.
fn measure<R, F>(
    kind: EngineKind,
    plan: &Plan,
    engine: R,
    finish: F,
) -> Result<EngineReport, BenchError>
where
    R: workload::Recorder,
    F: FnOnce(R) -> Counts,
{
    let cpu_before = sys::usage()?.cpu;
    let start = Instant::now();
    let produced: Produced = workload::produce(&engine, plan)?;
    let counts = finish(engine);
    let duration_s = start.elapsed().as_secs_f64();
    let cpu = sys::usage()?.cpu.saturating_sub(cpu_before).as_secs_f64();

    let exported = counts.exported;
    let (dropped, dropped_by_reason) = match counts.dropped_by_reason {
        Some(reasons) => (reasons.iter().map(|(_, n)| n).sum(), reasons),
        None => {
            let dropped = produced.spans.saturating_sub(exported);
            (dropped, vec![(SDK_DROP_REASON.to_owned(), dropped)])
        }
    };
    let h = &produced.record_ns;
    Ok(EngineReport {
        engine: kind,
        protocol: plan.protocol,
        compression: plan.compression,
        threads: plan.threads,
        duration_s,
        spans_recorded: produced.spans,
        spans_exported: exported,
        spans_dropped: dropped,
        dropped_by_reason,
        spans_per_sec: if duration_s > 0.0 {
            exported as f64 / duration_s
        } else {
            0.0
        },
        record_ns: RecordNs {
            p50: h.value_at_quantile(0.5),
            p99: h.value_at_quantile(0.99),
            p999: h.value_at_quantile(0.999),
        },
        cpu_s_per_million: (exported > 0).then(|| cpu / exported as f64 * 1e6),
        peak_rss_mib: sys::peak_rss_mib()?,
        receiver_spans: None,
    })
}
