//! The hidden `__child` subcommand: one engine in a process of its own,
//! so that its CPU time and peak memory are its own.
//!
//! It builds the engine for the plan's signal, starts the CPU clock, runs
//! the producers, flushes and shuts the engine down, stops the clock, and
//! prints one line of JSON (an [`EngineReport`] whose `receiver_items` is
//! `null`; the parent fills it in) on stdout. Nothing else goes to stdout;
//! errors go to stderr and make the exit status non-zero.

use std::io::Write as _;
use std::time::Instant;

use super::error::{BenchError, Context};
use super::options::{ChildArgs, EngineKind, Plan};
use super::otlpx_engine::OtlpxEngine;
use super::report::{EngineReport, RecordNs};
use super::sdk::SdkEngine;
use super::sys;
use super::workload::Produced;

/// What an engine did, in the terms common to both.
struct Counts {
    /// Items the receiver acknowledged.
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
            measure(
                EngineKind::Otlpx,
                &plan,
                engine,
                |e| e.produce(&plan),
                |e| {
                    let c = e.finish(plan.signal);
                    Counts {
                        exported: c.exported,
                        dropped_by_reason: Some(c.dropped_by_reason),
                    }
                },
            )?
        }
        EngineKind::OtelSdk => {
            let engine =
                SdkEngine::build(plan.signal, plan.protocol, plan.compression, &args.endpoint)?;
            measure(
                EngineKind::OtelSdk,
                &plan,
                engine,
                |e| e.produce(&plan),
                |e| {
                    Counts {
                        exported: e.finish().exported,
                        // The SDK drops without counting: `measure` reports
                        // `recorded - exported`.
                        dropped_by_reason: None,
                    }
                },
            )?
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

/// Runs `produce` (`plan`'s producers) on `engine`, then `finish` (flush
/// and shutdown), and measures all of it: wall time and process CPU time
/// from just before the producers start to the end of shutdown, the
/// record-cost percentiles, the process's peak resident memory.
fn measure<E, P, F>(
    kind: EngineKind,
    plan: &Plan,
    engine: E,
    produce: P,
    finish: F,
) -> Result<EngineReport, BenchError>
where
    P: FnOnce(&E) -> Result<Produced, BenchError>,
    F: FnOnce(E) -> Counts,
{
    let cpu_before = sys::usage()?.cpu;
    let start = Instant::now();
    let produced = produce(&engine)?;
    let counts = finish(engine);
    let duration_s = start.elapsed().as_secs_f64();
    let cpu = sys::usage()?.cpu.saturating_sub(cpu_before).as_secs_f64();

    let exported = counts.exported;
    let (dropped, dropped_by_reason) = match counts.dropped_by_reason {
        Some(reasons) => (reasons.iter().map(|(_, n)| n).sum(), reasons),
        None => {
            let dropped = produced.items.saturating_sub(exported);
            (dropped, vec![(SDK_DROP_REASON.to_owned(), dropped)])
        }
    };
    let h = &produced.record_ns;
    Ok(EngineReport {
        engine: kind,
        signal: plan.signal,
        protocol: plan.protocol,
        compression: plan.compression,
        threads: plan.threads,
        duration_s,
        recorded: produced.items,
        exported,
        dropped,
        dropped_by_reason,
        per_sec: if duration_s > 0.0 {
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
        receiver_items: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run::options::{Compression, Length, Protocol, Signal};
    use crate::run::workload::{ITEMS_PER_CONTEXT, LOG_BODY};
    use opentelemetry_proto::tonic::common::v1::any_value::Value as V;
    use opentelemetry_proto::tonic::logs::v1::LogRecord;
    use otlpx_bench::receiver::{Receiver, ReceiverConfig};

    /// The log records `kind` exports for `plan`, as the receiver got
    /// them.
    fn exported_log_records(kind: EngineKind, plan: &Plan, receiver: &Receiver) -> Vec<LogRecord> {
        let endpoint = match plan.protocol {
            Protocol::Grpc => receiver.grpc_endpoint(),
            Protocol::Http => receiver.http_endpoint(),
        };
        let Length::Items(n) = plan.length else {
            panic!("a fixed count")
        };
        let produced = match kind {
            EngineKind::Otlpx => {
                let engine = OtlpxEngine::build(plan.protocol, plan.compression, &endpoint)
                    .expect("the engine builds");
                let produced = engine.produce(plan).expect("the producers run");
                assert_eq!(engine.finish(plan.signal).exported, n);
                produced
            }
            EngineKind::OtelSdk => {
                let engine =
                    SdkEngine::build(plan.signal, plan.protocol, plan.compression, &endpoint)
                        .expect("the engine builds");
                let produced = engine.produce(plan).expect("the producers run");
                assert_eq!(engine.finish().exported, n);
                produced
            }
        };
        assert_eq!(produced.items, n);
        assert!(receiver.wait_for_log_records(n, std::time::Duration::from_secs(10)));
        assert!(
            receiver.take_requests().is_empty(),
            "no spans in a logs run"
        );
        receiver
            .take_log_requests()
            .into_iter()
            .flat_map(|r| r.resource_logs)
            .flat_map(|r| r.scope_logs)
            .flat_map(|s| s.log_records)
            .collect()
    }

    #[test]
    fn both_engines_emit_the_same_log_records_in_shared_span_contexts() {
        let receiver = Receiver::start(ReceiverConfig {
            keep_requests: true,
            ..ReceiverConfig::default()
        })
        .expect("the receiver starts");
        let n = 2 * ITEMS_PER_CONTEXT + 2;
        for (kind, protocol) in [
            (EngineKind::Otlpx, Protocol::Grpc),
            (EngineKind::OtelSdk, Protocol::Http),
        ] {
            let plan = Plan::new(
                Signal::Logs,
                protocol,
                Compression::Gzip,
                1,
                Length::Items(n),
                0,
                Signal::Logs.default_attrs(),
            )
            .expect("a valid plan");
            let mut records = exported_log_records(kind, &plan, &receiver);
            assert_eq!(records.len() as u64, n, "{kind:?}");
            records.sort_by_key(|r| r.time_unix_nano);
            for (i, r) in records.iter().enumerate() {
                assert_eq!(
                    r.body.as_ref().and_then(|b| b.value.clone()),
                    Some(V::StringValue(LOG_BODY.to_owned())),
                    "{kind:?}"
                );
                assert_eq!((r.severity_number, r.severity_text.as_str()), (9, "INFO"));
                assert!(r.time_unix_nano > 0 && r.observed_time_unix_nano > 0);
                let kinds: Vec<_> = r
                    .attributes
                    .iter()
                    .map(
                        |kv| match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                            Some(V::StringValue(_)) => "str",
                            Some(V::IntValue(_)) => "int",
                            Some(V::BoolValue(_)) => "bool",
                            Some(V::DoubleValue(_)) => "float",
                            _ => "other",
                        },
                    )
                    .collect();
                assert_eq!(
                    kinds,
                    ["str", "str", "int", "int", "bool", "float"],
                    "{kind:?}"
                );
                assert!(r.trace_id.len() == 16 && r.trace_id.iter().any(|&b| b != 0));
                assert!(r.span_id.len() == 8 && r.span_id.iter().any(|&b| b != 0));
                // A few records a context, then a fresh one.
                let first = &records[i - i % ITEMS_PER_CONTEXT as usize];
                assert_eq!(
                    (&r.trace_id, &r.span_id),
                    (&first.trace_id, &first.span_id),
                    "{kind:?} record {i}"
                );
                if i >= ITEMS_PER_CONTEXT as usize {
                    assert_ne!(r.trace_id, records[0].trace_id, "{kind:?} record {i}");
                }
            }
        }
    }
}
