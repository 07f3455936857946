//! Each signal's [`Stats`] in the Prometheus text exposition format,
//! version 0.0.4.
//!
//! Every metric family gets its `# HELP` and `# TYPE` lines, then its
//! samples, every signal's together (the format wants a family's samples
//! in one group, so the loop over signals is inside each family). Item and
//! request families carry a `signal` label (`traces`, `logs`, `metrics`); the
//! engine-wide ones (the build, configuration warnings, the spool's size
//! and damage) carry none and appear once. Names, labels and label values
//! are fixed strings, numbers and endpoint URLs (parsed by `http::Uri`,
//! which admits no `"` or `\`), so nothing needs escaping; help texts hold
//! neither backslashes nor line breaks. Durations and times are written in
//! seconds, as Prometheus wants.

#[cfg(feature = "export")]
use super::EndpointStats;
use super::{HistogramSnapshot, RingStats, Stats};
use crate::ring::Signal;
use std::borrow::Borrow;
use std::fmt::{self, Display, Write};

/// The `Content-Type` of [`prometheus_text`]'s output.
pub const PROMETHEUS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

const NANOS_PER_SECOND: f64 = 1e9;

/// A family's name, type and help text.
type Meta = (&'static str, &'static str, &'static str);

/// A family, and how to read its number from a `T`.
type Field<T> = (Meta, fn(&T) -> u64);

/// The per-signal families with one number per signal.
const COUNTS: [Field<Stats>; 15] = [
    (
        (
            "otlpx_items_recorded_total",
            "counter",
            "Items (spans, log records, metrics) handed to the engine.",
        ),
        |s| s.recorded,
    ),
    (
        (
            "otlpx_items_exported_total",
            "counter",
            "Items the receiver acknowledged.",
        ),
        |s| s.exported,
    ),
    (
        (
            "otlpx_items_in_flight",
            "gauge",
            "Items taken from the rings whose request is not answered yet.",
        ),
        |s| s.in_flight,
    ),
    (
        (
            "otlpx_items_in_rings",
            "gauge",
            "Items in the rings, waiting to be sent.",
        ),
        |s| s.in_rings,
    ),
    (
        (
            "otlpx_items_drained_by_caller_total",
            "counter",
            "Items taken out of the rings by drain callers.",
        ),
        |s| s.drained_by_caller,
    ),
    (
        (
            "otlpx_items_spooled",
            "gauge",
            "Items in the disk spool, waiting to be sent.",
        ),
        |s| s.spooled,
    ),
    (
        (
            "otlpx_spool_restored_items_total",
            "counter",
            "Items found in the spool at start, left by an earlier engine.",
        ),
        |s| s.spool.restored,
    ),
    (
        (
            "otlpx_spool_written_items_total",
            "counter",
            "Items written to the spool.",
        ),
        |s| s.spool.written,
    ),
    (
        (
            "otlpx_spool_delivered_items_total",
            "counter",
            "Items sent from the spool and acknowledged.",
        ),
        |s| s.spool.delivered,
    ),
    (
        (
            "otlpx_export_requests_total",
            "counter",
            "Export requests sent (each once, however often retried).",
        ),
        |s| s.export.requests,
    ),
    (
        (
            "otlpx_export_retries_total",
            "counter",
            "Export attempts that sent a failed request again.",
        ),
        |s| s.export.retries,
    ),
    (
        (
            "otlpx_export_in_flight_bytes",
            "gauge",
            "Bytes of requests in flight (waiting for an answer or a retry).",
        ),
        |s| s.export.in_flight_bytes,
    ),
    (
        (
            "otlpx_export_in_flight_bytes_high_water",
            "gauge",
            "The most bytes of requests in flight at once.",
        ),
        |s| s.export.in_flight_bytes_high_water,
    ),
    (
        (
            "otlpx_export_uncompressed_bytes_total",
            "counter",
            "Request bytes as framed, before compression.",
        ),
        |s| s.export.bytes_uncompressed,
    ),
    (
        (
            "otlpx_export_sent_bytes_total",
            "counter",
            "Request bytes sent, after compression.",
        ),
        |s| s.export.bytes_sent,
    ),
];

const DROPPED: Meta = (
    "otlpx_items_dropped_total",
    "counter",
    "Items dropped, by reason.",
);

const FAILURES: Meta = (
    "otlpx_export_failures_total",
    "counter",
    "Export attempts that failed, by kind.",
);

/// The per-ring gauges, labelled `ring` (its CPU).
const RINGS: [Field<RingStats>; 3] = [
    (
        (
            "otlpx_ring_used_bytes",
            "gauge",
            "Bytes in use in a ring (records, headers, padding).",
        ),
        |r| r.used_bytes,
    ),
    (
        (
            "otlpx_ring_high_water_bytes",
            "gauge",
            "The most bytes a ring has held at once.",
        ),
        |r| r.high_water_bytes,
    ),
    (
        ("otlpx_ring_capacity_bytes", "gauge", "A ring's size."),
        |r| r.capacity_bytes,
    ),
];

/// The per-endpoint families, labelled `endpoint` (its URL), with
/// several endpoints.
#[cfg(feature = "export")]
const ENDPOINTS: [Field<EndpointStats>; 4] = [
    (
        (
            "otlpx_endpoint_up",
            "gauge",
            "Whether requests go to the endpoint (0: taken out after failing).",
        ),
        |p| u64::from(p.up),
    ),
    (
        (
            "otlpx_endpoint_requests_total",
            "counter",
            "Export attempts sent to the endpoint.",
        ),
        |p| p.requests,
    ),
    (
        (
            "otlpx_endpoint_failures_total",
            "counter",
            "Export attempts to the endpoint that failed.",
        ),
        |p| p.failures,
    ),
    (
        (
            "otlpx_endpoint_taken_out_total",
            "counter",
            "Times the endpoint was taken out after failing.",
        ),
        |p| p.taken_out,
    ),
];

/// Writes `# HELP` and `# TYPE` for metric `name`.
fn family(out: &mut impl Write, (name, kind, help): Meta) -> fmt::Result {
    writeln!(out, "# HELP {name} {help}")?;
    writeln!(out, "# TYPE {name} {kind}")
}

/// An engine-wide family: one sample, no labels.
fn single(out: &mut impl Write, meta: Meta, value: u64) -> fmt::Result {
    family(out, meta)?;
    writeln!(out, "{} {value}", meta.0)
}

/// A family with one sample per signal, `{signal="…"}`.
fn per_signal<S: Borrow<Stats>, V: Display>(
    out: &mut impl Write,
    meta: Meta,
    signals: &[(Signal, S)],
    value: impl Fn(&Stats) -> V,
) -> fmt::Result {
    family(out, meta)?;
    let name = meta.0;
    for (signal, s) in signals {
        writeln!(out, "{name}{{signal=\"{signal}\"}} {}", value(s.borrow()))?;
    }
    Ok(())
}

/// A family with one sample per signal and value of `label`,
/// `{signal="…",label="…"}`.
fn per_signal_by<S: Borrow<Stats>, L: Display>(
    out: &mut impl Write,
    meta: Meta,
    signals: &[(Signal, S)],
    label: &str,
    samples: impl Fn(&Stats) -> Vec<(L, u64)>,
) -> fmt::Result {
    family(out, meta)?;
    let name = meta.0;
    for (signal, s) in signals {
        for (value, n) in samples(s.borrow()) {
            writeln!(out, "{name}{{signal=\"{signal}\",{label}=\"{value}\"}} {n}")?;
        }
    }
    Ok(())
}

/// A histogram family, one histogram per signal; bounds and sum are
/// divided by `per_unit` (1e9 to write nanoseconds as seconds, 1
/// otherwise).
fn histogram<S: Borrow<Stats>>(
    out: &mut impl Write,
    (name, help): (&'static str, &'static str),
    signals: &[(Signal, S)],
    of: impl Fn(&Stats) -> &HistogramSnapshot,
    per_unit: f64,
) -> fmt::Result {
    family(out, (name, "histogram", help))?;
    for (signal, s) in signals {
        let h = of(s.borrow());
        let mut count = 0;
        for (bound, n) in h.cumulative() {
            count = n;
            write!(out, "{name}_bucket{{signal=\"{signal}\",le=\"")?;
            match bound {
                Some(b) if per_unit == 1.0 => write!(out, "{b}")?,
                Some(b) => write!(out, "{}", b as f64 / per_unit)?,
                None => out.write_str("+Inf")?,
            }
            writeln!(out, "\"}} {n}")?;
        }
        if per_unit == 1.0 {
            writeln!(out, "{name}_sum{{signal=\"{signal}\"}} {}", h.sum)?;
        } else {
            writeln!(
                out,
                "{name}_sum{{signal=\"{signal}\"}} {}",
                h.sum as f64 / per_unit
            )?;
        }
        // The last cumulative bucket, so that `+Inf` and `_count` agree.
        writeln!(out, "{name}_count{{signal=\"{signal}\"}} {count}")?;
    }
    Ok(())
}

/// Unix nanoseconds as Unix seconds (0 stays 0: "never").
fn seconds(unix_nanos: u64) -> f64 {
    unix_nanos as f64 / NANOS_PER_SECOND
}

/// Writes each signal's snapshot in `signals` (each signal at most once)
/// in the Prometheus text format, version 0.0.4, served with
/// [`PROMETHEUS_CONTENT_TYPE`]: what the admin endpoint's `/metrics`
/// serves, with every signal.
///
/// Per signal, labelled `signal` (`traces`, `logs`, `metrics`):
/// `otlpx_items_recorded_total`, `otlpx_items_exported_total`,
/// `otlpx_items_dropped_total{reason}`, `otlpx_items_in_flight`,
/// `otlpx_items_in_rings`, `otlpx_items_drained_by_caller_total`,
/// `otlpx_items_spooled`, `otlpx_spool_restored_items_total`,
/// `otlpx_spool_written_items_total`, `otlpx_spool_delivered_items_total`,
/// `otlpx_export_requests_total`, `otlpx_export_retries_total`,
/// `otlpx_export_failures_total{kind}`, `otlpx_export_in_flight_bytes`,
/// `otlpx_export_in_flight_bytes_high_water`,
/// `otlpx_export_uncompressed_bytes_total`,
/// `otlpx_export_sent_bytes_total`, the histograms
/// `otlpx_export_duration_seconds`, `otlpx_export_batch_items` and
/// `otlpx_export_batch_bytes`, the per-ring gauges
/// `otlpx_ring_used_bytes{ring}`, `otlpx_ring_high_water_bytes{ring}` and
/// `otlpx_ring_capacity_bytes{ring}`, with several endpoints
/// `otlpx_endpoint_up{endpoint}`, `otlpx_endpoint_requests_total{endpoint}`,
/// `otlpx_endpoint_failures_total{endpoint}` and
/// `otlpx_endpoint_taken_out_total{endpoint}`, and
/// `otlpx_last_export_success_timestamp_seconds`,
/// `otlpx_last_export_failure_timestamp_seconds` (0: never).
///
/// Engine-wide, without labels: `otlpx_config_warnings`,
/// `otlpx_spool_bytes`, `otlpx_spool_corrupt_records_total`,
/// `otlpx_spool_corrupt_bytes_total` and `otlpx_build_info{version}`.
/// Every signal's snapshot holds the same configuration warnings and
/// spool bytes, and each damaged spool record is counted in one signal's
/// snapshot: these families take the largest value of the snapshots
/// given for the former, the sum for the latter.
///
/// ```
/// use otlpx::Signal;
/// let engine = otlpx::Engine::builder().export(false).build()?;
/// engine.tracer("demo", "").start("work").end();
/// let text = otlpx::telemetry::prometheus_text(&Signal::ALL.map(|s| (s, engine.signal_stats(s))));
/// assert!(text.contains("otlpx_items_recorded_total{signal=\"traces\"} 1\n"));
/// assert!(text.contains("otlpx_items_recorded_total{signal=\"logs\"} 0\n"));
/// assert!(text.contains("otlpx_items_recorded_total{signal=\"metrics\"} 0\n"));
/// # Ok::<(), otlpx::BuildError>(())
/// ```
///
/// # Errors
///
/// Only those `out` returns.
pub fn write_prometheus<S: Borrow<Stats>>(
    out: &mut impl Write,
    signals: &[(Signal, S)],
) -> fmt::Result {
    for (meta, value) in COUNTS {
        per_signal(out, meta, signals, value)?;
    }
    per_signal_by(out, DROPPED, signals, "reason", |s| {
        s.dropped.by_reason().to_vec()
    })?;
    per_signal_by(out, FAILURES, signals, "kind", |s| {
        s.export.failures.by_kind().to_vec()
    })?;
    histogram(
        out,
        (
            "otlpx_export_duration_seconds",
            "Time from handing a request to the transport to its answer or failure.",
        ),
        signals,
        |s| &s.export.duration_nanos,
        NANOS_PER_SECOND,
    )?;
    histogram(
        out,
        ("otlpx_export_batch_items", "Items per export request."),
        signals,
        |s| &s.export.batch_spans,
        1.0,
    )?;
    histogram(
        out,
        (
            "otlpx_export_batch_bytes",
            "Bytes per export request, before compression.",
        ),
        signals,
        |s| &s.export.batch_bytes,
        1.0,
    )?;
    for (meta, value) in RINGS {
        per_signal_by(out, meta, signals, "ring", |s| {
            s.rings.iter().map(value).enumerate().collect()
        })?;
    }
    #[cfg(feature = "export")]
    if signals
        .iter()
        .any(|(_, s)| !s.borrow().export.endpoints.is_empty())
    {
        for (meta, value) in ENDPOINTS {
            per_signal_by(out, meta, signals, "endpoint", |s| {
                s.export
                    .endpoints
                    .iter()
                    .map(|p| (p.url.clone(), value(p)))
                    .collect()
            })?;
        }
    }
    per_signal(
        out,
        (
            "otlpx_last_export_success_timestamp_seconds",
            "gauge",
            "When an export request last succeeded, in Unix seconds; 0 if none has.",
        ),
        signals,
        |s| seconds(s.export.last_success_unix_nanos),
    )?;
    per_signal(
        out,
        (
            "otlpx_last_export_failure_timestamp_seconds",
            "gauge",
            "When an export request last failed, in Unix seconds; 0 if none has.",
        ),
        signals,
        |s| seconds(s.export.last_failure_unix_nanos),
    )?;
    // Engine-wide.
    let of_all = |f: fn(&Stats) -> u64| signals.iter().map(move |(_, s)| f(s.borrow()));
    single(
        out,
        (
            "otlpx_config_warnings",
            "gauge",
            "Configuration warnings at build (ignored or ineffective values; see the build's log).",
        ),
        of_all(|s| s.config_warnings).max().unwrap_or(0),
    )?;
    single(
        out,
        ("otlpx_spool_bytes", "gauge", "Bytes of the spool's files."),
        of_all(|s| s.spool.bytes).max().unwrap_or(0),
    )?;
    single(
        out,
        (
            "otlpx_spool_corrupt_records_total",
            "counter",
            "Damaged spool records skipped.",
        ),
        of_all(|s| s.spool.corrupt_records).sum(),
    )?;
    single(
        out,
        (
            "otlpx_spool_corrupt_bytes_total",
            "counter",
            "Bytes of damaged spool records skipped.",
        ),
        of_all(|s| s.spool.corrupt_bytes).sum(),
    )?;
    family(
        out,
        (
            "otlpx_build_info",
            "gauge",
            "The otlpx version serving these metrics; always 1.",
        ),
    )?;
    writeln!(
        out,
        "otlpx_build_info{{version=\"{}\"}} 1",
        env!("CARGO_PKG_VERSION")
    )
}

/// [`write_prometheus`] into a new `String`.
pub fn prometheus_text<S: Borrow<Stats>>(signals: &[(Signal, S)]) -> String {
    let mut out = String::with_capacity(signals.len() * (8 << 10));
    // Writing to a `String` cannot fail.
    let _ = write_prometheus(&mut out, signals);
    out
}

impl Stats {
    /// Writes this snapshot as the traces' ([`Engine::stats`] returns
    /// those): [`write_prometheus`] with this one signal, every
    /// per-signal family labelled `signal="traces"`. For another signal's
    /// snapshot, or every signal's as the admin endpoint serves them, call
    /// [`write_prometheus`] with each.
    ///
    /// [`Engine::stats`]: crate::Engine::stats
    ///
    /// # Errors
    ///
    /// Only those `out` returns.
    pub fn write_prometheus(&self, out: &mut impl Write) -> fmt::Result {
        write_prometheus(out, &[(Signal::Traces, self)])
    }

    /// [`write_prometheus`](Self::write_prometheus) into a new `String`.
    pub fn prometheus_text(&self) -> String {
        prometheus_text(&[(Signal::Traces, self)])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{HashMap, HashSet};

    /// Checks the text's shape (each family's `# HELP` and `# TYPE` once,
    /// then its samples, together and nowhere else; every value a number)
    /// and returns each family's sample lines.
    fn families(text: &str) -> HashMap<&str, Vec<&str>> {
        let mut typed = HashMap::new();
        let mut helped = HashSet::new();
        let mut samples: HashMap<&str, Vec<&str>> = HashMap::new();
        let mut current = None;
        for line in text.lines() {
            let words: Vec<&str> = line.split(' ').collect();
            match words[..] {
                ["#", "HELP", name, ..] => {
                    assert!(helped.insert(name), "{line}");
                    current = None;
                }
                ["#", "TYPE", name, kind] => {
                    assert!(helped.contains(name), "TYPE before HELP: {line}");
                    assert!(typed.insert(name, kind).is_none(), "{line}");
                    current = Some(name);
                }
                [sample, value] => {
                    let name = sample.split('{').next().unwrap();
                    let family = match typed.get(name) {
                        Some(_) => name,
                        None => name
                            .strip_suffix("_bucket")
                            .or_else(|| name.strip_suffix("_sum"))
                            .or_else(|| name.strip_suffix("_count"))
                            .unwrap_or(name),
                    };
                    assert_eq!(current, Some(family), "a sample out of its group: {line}");
                    assert!(value.parse::<f64>().is_ok(), "{line}");
                    samples.entry(family).or_default().push(line);
                }
                _ => panic!("unexpected line {line:?}"),
            }
        }
        for name in typed.keys() {
            samples.entry(name).or_default();
        }
        samples
    }

    fn stats(recorded: u64, rings: usize) -> Stats {
        let mut s = Stats {
            recorded,
            rings: vec![RingStats::default(); rings],
            config_warnings: 2,
            ..Stats::default()
        };
        s.spool.bytes = 4096;
        s
    }

    #[test]
    fn every_signal_in_each_family_and_engine_wide_families_once() {
        let mut traces = stats(7, 2);
        traces.export.duration_nanos.counts[0] = 1;
        traces.export.duration_nanos.sum = 50_000;
        traces.spool.corrupt_records = 3;
        let mut logs = stats(5, 1);
        logs.dropped.ring_full = 4;
        #[cfg(feature = "export")]
        let endpoints = 4;
        #[cfg(not(feature = "export"))]
        let endpoints = 0;
        #[cfg(feature = "export")]
        {
            logs.export.endpoints = vec![super::EndpointStats {
                url: "http://a:4317".into(),
                up: false,
                requests: 3,
                failures: 2,
                taken_out: 1,
            }];
        }
        let text = prometheus_text(&[(Signal::Traces, &traces), (Signal::Logs, &logs)]);
        let families = families(&text);
        assert_eq!(families.len(), 30 + endpoints, "{text}");
        for (family, lines) in &families {
            let engine_wide = [
                "otlpx_config_warnings",
                "otlpx_spool_bytes",
                "otlpx_spool_corrupt_records_total",
                "otlpx_spool_corrupt_bytes_total",
                "otlpx_build_info",
            ]
            .contains(family);
            if engine_wide {
                assert_eq!(lines.len(), 1, "{family}: {lines:?}");
                assert!(!lines[0].contains("signal="), "{family}: {lines:?}");
            } else {
                assert!(
                    lines.iter().all(|l| l.contains("{signal=\"")),
                    "{family}: {lines:?}"
                );
                for signal in ["traces", "logs"] {
                    let endpoint_of_traces =
                        family.starts_with("otlpx_endpoint_") && signal == "traces";
                    assert_eq!(
                        lines
                            .iter()
                            .any(|l| l.contains(&format!("{{signal=\"{signal}\""))),
                        !endpoint_of_traces,
                        "{family} {signal}: {lines:?}"
                    );
                }
            }
        }
        for needle in [
            "otlpx_items_recorded_total{signal=\"traces\"} 7\n",
            "otlpx_items_recorded_total{signal=\"logs\"} 5\n",
            "otlpx_items_dropped_total{signal=\"logs\",reason=\"ring_full\"} 4\n",
            "otlpx_items_dropped_total{signal=\"traces\",reason=\"ring_full\"} 0\n",
            "otlpx_export_duration_seconds_bucket{signal=\"traces\",le=\"0.0001\"} 1\n",
            "otlpx_export_duration_seconds_bucket{signal=\"traces\",le=\"+Inf\"} 1\n",
            "otlpx_export_duration_seconds_sum{signal=\"traces\"} 0.00005\n",
            "otlpx_export_duration_seconds_count{signal=\"logs\"} 0\n",
            "otlpx_export_batch_items_bucket{signal=\"logs\",le=\"1024\"} 0\n",
            "otlpx_export_batch_bytes_bucket{signal=\"traces\",le=\"1024\"} 0\n",
            "otlpx_ring_capacity_bytes{signal=\"traces\",ring=\"1\"} 0\n",
            "otlpx_ring_capacity_bytes{signal=\"logs\",ring=\"0\"} 0\n",
            "otlpx_last_export_failure_timestamp_seconds{signal=\"logs\"} 0\n",
            // The same in every snapshot: once, not added up.
            "otlpx_config_warnings 2\n",
            "otlpx_spool_bytes 4096\n",
            // Each damaged record in one signal's snapshot: added up.
            "otlpx_spool_corrupt_records_total 3\n",
        ] {
            assert!(text.contains(needle), "{needle} not in\n{text}");
        }
        // Each signal's own rings: two of traces, one of logs.
        assert_eq!(families["otlpx_ring_used_bytes"].len(), 3);
        #[cfg(feature = "export")]
        {
            assert!(
                text.contains("otlpx_endpoint_up{signal=\"logs\",endpoint=\"http://a:4317\"} 0\n")
            );
            assert!(text.contains(
                "otlpx_endpoint_failures_total{signal=\"logs\",endpoint=\"http://a:4317\"} 2\n"
            ));
        }
        let version = env!("CARGO_PKG_VERSION");
        assert!(text.contains(&format!("otlpx_build_info{{version=\"{version}\"}} 1\n")));
    }

    #[test]
    fn one_snapshot_renders_as_the_traces() {
        let s = stats(7, 1);
        let text = s.prometheus_text();
        assert_eq!(text, prometheus_text(&[(Signal::Traces, s.clone())]));
        let families = families(&text);
        assert_eq!(families.len(), 30, "{text}");
        assert!(text.contains("otlpx_items_recorded_total{signal=\"traces\"} 7\n"));
        assert!(!text.contains("signal=\"logs\""));
        // Without any snapshot: only the engine-wide families have samples.
        let empty = prometheus_text::<Stats>(&[]);
        let families = super::tests::families(&empty);
        let sampled: Vec<_> = families.iter().filter(|(_, l)| !l.is_empty()).collect();
        assert_eq!(sampled.len(), 5, "{empty}");
        assert!(empty.contains("otlpx_config_warnings 0\n"));
    }
}
