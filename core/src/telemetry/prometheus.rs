//! [`Stats`] in the Prometheus text exposition format, version 0.0.4.
//!
//! Every metric family gets its `# HELP` and `# TYPE` lines, then its
//! samples. Names and labels are fixed strings and numbers, so nothing
//! needs escaping; help texts hold neither backslashes nor line breaks.
//! Durations and times are written in seconds, as Prometheus wants.

use super::{HistogramSnapshot, Stats};
use std::fmt::{self, Write};

/// The `Content-Type` of [`Stats::prometheus_text`]'s output.
pub const PROMETHEUS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

const NANOS_PER_SECOND: f64 = 1e9;

/// Writes `# HELP` and `# TYPE` for metric `name`.
fn family(out: &mut impl Write, name: &str, kind: &str, help: &str) -> fmt::Result {
    writeln!(out, "# HELP {name} {help}")?;
    writeln!(out, "# TYPE {name} {kind}")
}

/// A family with one unlabelled sample.
fn single(out: &mut impl Write, name: &str, kind: &str, help: &str, value: u64) -> fmt::Result {
    family(out, name, kind, help)?;
    writeln!(out, "{name} {value}")
}

/// A family with one sample per value of `label`.
fn labelled(
    out: &mut impl Write,
    (name, kind, help): (&str, &str, &str),
    label: &str,
    samples: impl IntoIterator<Item = (impl fmt::Display, u64)>,
) -> fmt::Result {
    family(out, name, kind, help)?;
    for (value, n) in samples {
        writeln!(out, "{name}{{{label}=\"{value}\"}} {n}")?;
    }
    Ok(())
}

/// A histogram family; bounds and sum are divided by `per_unit` (1e9 to
/// write nanoseconds as seconds, 1 otherwise).
fn histogram(
    out: &mut impl Write,
    name: &str,
    help: &str,
    h: &HistogramSnapshot,
    per_unit: f64,
) -> fmt::Result {
    family(out, name, "histogram", help)?;
    let mut count = 0;
    for (bound, n) in h.cumulative() {
        count = n;
        match bound {
            Some(b) if per_unit == 1.0 => writeln!(out, "{name}_bucket{{le=\"{b}\"}} {n}")?,
            Some(b) => writeln!(out, "{name}_bucket{{le=\"{}\"}} {n}", b as f64 / per_unit)?,
            None => writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {n}")?,
        }
    }
    if per_unit == 1.0 {
        writeln!(out, "{name}_sum {}", h.sum)?;
    } else {
        writeln!(out, "{name}_sum {}", h.sum as f64 / per_unit)?;
    }
    // The last cumulative bucket, so that `+Inf` and `_count` agree.
    writeln!(out, "{name}_count {count}")
}

/// Unix nanoseconds as Unix seconds (0 stays 0: "never").
fn seconds(unix_nanos: u64) -> f64 {
    unix_nanos as f64 / NANOS_PER_SECOND
}

impl Stats {
    /// Writes the snapshot in the Prometheus text format (version 0.0.4,
    /// served with [`PROMETHEUS_CONTENT_TYPE`]).
    ///
    /// Metric families: `otlpx_spans_recorded_total`,
    /// `otlpx_spans_exported_total`, `otlpx_spans_dropped_total{reason}`,
    /// `otlpx_spans_in_flight`, `otlpx_spans_in_rings`,
    /// `otlpx_spans_drained_by_caller_total`, `otlpx_config_warnings`,
    /// `otlpx_spans_spooled`,
    /// `otlpx_spool_restored_spans_total`, `otlpx_spool_written_spans_total`,
    /// `otlpx_spool_delivered_spans_total`, `otlpx_spool_bytes`,
    /// `otlpx_spool_corrupt_records_total`, `otlpx_spool_corrupt_bytes_total`,
    /// `otlpx_export_requests_total`,
    /// `otlpx_export_retries_total`, `otlpx_export_failures_total{kind}`,
    /// `otlpx_export_in_flight_bytes`,
    /// `otlpx_export_in_flight_bytes_high_water`,
    /// `otlpx_export_uncompressed_bytes_total`,
    /// `otlpx_export_sent_bytes_total`, the histograms
    /// `otlpx_export_duration_seconds`, `otlpx_export_batch_spans` and
    /// `otlpx_export_batch_bytes`, the per-ring gauges
    /// `otlpx_ring_used_bytes{ring}`, `otlpx_ring_high_water_bytes{ring}`
    /// and `otlpx_ring_capacity_bytes{ring}`, with several endpoints the
    /// per-endpoint `otlpx_endpoint_up{endpoint}`,
    /// `otlpx_endpoint_requests_total{endpoint}`,
    /// `otlpx_endpoint_failures_total{endpoint}` and
    /// `otlpx_endpoint_taken_out_total{endpoint}`,
    /// `otlpx_last_export_success_timestamp_seconds`,
    /// `otlpx_last_export_failure_timestamp_seconds` (0: never) and
    /// `otlpx_build_info{version}`.
    ///
    /// # Errors
    ///
    /// Only those `out` returns.
    pub fn write_prometheus(&self, out: &mut impl Write) -> fmt::Result {
        let d = &self.dropped;
        let e = &self.export;
        let f = &e.failures;
        single(
            out,
            "otlpx_spans_recorded_total",
            "counter",
            "Spans handed to the engine.",
            self.recorded,
        )?;
        single(
            out,
            "otlpx_spans_exported_total",
            "counter",
            "Spans the receiver acknowledged.",
            self.exported,
        )?;
        labelled(
            out,
            (
                "otlpx_spans_dropped_total",
                "counter",
                "Spans dropped, by reason.",
            ),
            "reason",
            d.by_reason(),
        )?;
        single(
            out,
            "otlpx_spans_in_flight",
            "gauge",
            "Spans taken from the rings whose request is not answered yet.",
            self.in_flight,
        )?;
        single(
            out,
            "otlpx_spans_in_rings",
            "gauge",
            "Spans in the rings, waiting to be sent.",
            self.in_rings,
        )?;
        single(
            out,
            "otlpx_config_warnings",
            "gauge",
            "Configuration warnings at build (ignored or ineffective values; see the build's log).",
            self.config_warnings,
        )?;
        single(
            out,
            "otlpx_spans_drained_by_caller_total",
            "counter",
            "Spans taken out of the rings by drain_traces callers.",
            self.drained_by_caller,
        )?;
        let sp = &self.spool;
        for (name, kind, help, value) in [
            (
                "otlpx_spans_spooled",
                "gauge",
                "Spans in the disk spool, waiting to be sent.",
                self.spooled,
            ),
            (
                "otlpx_spool_restored_spans_total",
                "counter",
                "Spans found in the spool at start, left by an earlier engine.",
                sp.restored,
            ),
            (
                "otlpx_spool_written_spans_total",
                "counter",
                "Spans written to the spool.",
                sp.written,
            ),
            (
                "otlpx_spool_delivered_spans_total",
                "counter",
                "Spans sent from the spool and acknowledged.",
                sp.delivered,
            ),
            (
                "otlpx_spool_bytes",
                "gauge",
                "Bytes of the spool's files.",
                sp.bytes,
            ),
            (
                "otlpx_spool_corrupt_records_total",
                "counter",
                "Damaged spool records skipped.",
                sp.corrupt_records,
            ),
            (
                "otlpx_spool_corrupt_bytes_total",
                "counter",
                "Bytes of damaged spool records skipped.",
                sp.corrupt_bytes,
            ),
        ] {
            single(out, name, kind, help, value)?;
        }
        single(
            out,
            "otlpx_export_requests_total",
            "counter",
            "Export requests sent (each once, however often retried).",
            e.requests,
        )?;
        single(
            out,
            "otlpx_export_retries_total",
            "counter",
            "Export attempts that sent a failed request again.",
            e.retries,
        )?;
        single(
            out,
            "otlpx_export_in_flight_bytes",
            "gauge",
            "Bytes of requests in flight (waiting for an answer or a retry).",
            e.in_flight_bytes,
        )?;
        single(
            out,
            "otlpx_export_in_flight_bytes_high_water",
            "gauge",
            "The most bytes of requests in flight at once.",
            e.in_flight_bytes_high_water,
        )?;
        labelled(
            out,
            (
                "otlpx_export_failures_total",
                "counter",
                "Export attempts that failed, by kind.",
            ),
            "kind",
            f.by_kind(),
        )?;
        single(
            out,
            "otlpx_export_uncompressed_bytes_total",
            "counter",
            "Request bytes as framed, before compression.",
            e.bytes_uncompressed,
        )?;
        single(
            out,
            "otlpx_export_sent_bytes_total",
            "counter",
            "Request bytes sent, after compression.",
            e.bytes_sent,
        )?;
        histogram(
            out,
            "otlpx_export_duration_seconds",
            "Time from handing a request to the transport to its answer or failure.",
            &e.duration_nanos,
            NANOS_PER_SECOND,
        )?;
        histogram(
            out,
            "otlpx_export_batch_spans",
            "Spans per export request.",
            &e.batch_spans,
            1.0,
        )?;
        histogram(
            out,
            "otlpx_export_batch_bytes",
            "Bytes per export request, before compression.",
            &e.batch_bytes,
            1.0,
        )?;
        let rings = self.rings.iter().enumerate();
        labelled(
            out,
            (
                "otlpx_ring_used_bytes",
                "gauge",
                "Bytes in use in a ring (records, headers, padding).",
            ),
            "ring",
            rings.clone().map(|(i, r)| (i, r.used_bytes)),
        )?;
        labelled(
            out,
            (
                "otlpx_ring_high_water_bytes",
                "gauge",
                "The most bytes a ring has held at once.",
            ),
            "ring",
            rings.clone().map(|(i, r)| (i, r.high_water_bytes)),
        )?;
        labelled(
            out,
            ("otlpx_ring_capacity_bytes", "gauge", "A ring's size."),
            "ring",
            rings.map(|(i, r)| (i, r.capacity_bytes)),
        )?;
        #[cfg(feature = "export")]
        if !e.endpoints.is_empty() {
            // URLs parsed by `http::Uri` hold no `"` or `\`: no escaping.
            let url = |p: &crate::export::transport::balance::EndpointStats| p.url.clone();
            for (name, help, value) in [
                (
                    "otlpx_endpoint_up",
                    "Whether requests go to the endpoint (0: taken out after failing).",
                    (|p| u64::from(p.up))
                        as fn(&crate::export::transport::balance::EndpointStats) -> u64,
                ),
                (
                    "otlpx_endpoint_requests_total",
                    "Export attempts sent to the endpoint.",
                    |p| p.requests,
                ),
                (
                    "otlpx_endpoint_failures_total",
                    "Export attempts to the endpoint that failed.",
                    |p| p.failures,
                ),
                (
                    "otlpx_endpoint_taken_out_total",
                    "Times the endpoint was taken out after failing.",
                    |p| p.taken_out,
                ),
            ] {
                let kind = if name.ends_with("_total") {
                    "counter"
                } else {
                    "gauge"
                };
                labelled(
                    out,
                    (name, kind, help),
                    "endpoint",
                    e.endpoints.iter().map(|p| (url(p), value(p))),
                )?;
            }
        }
        family(
            out,
            "otlpx_last_export_success_timestamp_seconds",
            "gauge",
            "When an export request last succeeded, in Unix seconds; 0 if none has.",
        )?;
        writeln!(
            out,
            "otlpx_last_export_success_timestamp_seconds {}",
            seconds(e.last_success_unix_nanos)
        )?;
        family(
            out,
            "otlpx_last_export_failure_timestamp_seconds",
            "gauge",
            "When an export request last failed, in Unix seconds; 0 if none has.",
        )?;
        writeln!(
            out,
            "otlpx_last_export_failure_timestamp_seconds {}",
            seconds(e.last_failure_unix_nanos)
        )?;
        labelled(
            out,
            (
                "otlpx_build_info",
                "gauge",
                "The otlpx version serving these metrics; always 1.",
            ),
            "version",
            [(env!("CARGO_PKG_VERSION"), 1)],
        )
    }

    /// [`write_prometheus`](Self::write_prometheus) into a new `String`.
    pub fn prometheus_text(&self) -> String {
        let mut out = String::with_capacity(8 << 10);
        // Writing to a `String` cannot fail.
        let _ = self.write_prometheus(&mut out);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::RingStats;

    #[test]
    fn every_family_has_help_and_type_before_its_samples() {
        let mut s = Stats {
            recorded: 7,
            rings: vec![RingStats::default(); 2],
            ..Stats::default()
        };
        s.export.duration_nanos.counts[0] = 1;
        s.export.duration_nanos.sum = 50_000;
        #[cfg(feature = "export")]
        let endpoints = 4;
        #[cfg(not(feature = "export"))]
        let endpoints = 0;
        #[cfg(feature = "export")]
        {
            s.export.endpoints = vec![crate::export::transport::balance::EndpointStats {
                url: "http://a:4317".into(),
                up: false,
                requests: 3,
                failures: 2,
                taken_out: 1,
            }];
        }
        let text = s.prometheus_text();
        let mut typed = std::collections::HashMap::new();
        let mut helped = std::collections::HashSet::new();
        for line in text.lines() {
            let words: Vec<&str> = line.split(' ').collect();
            match words[..] {
                ["#", "HELP", name, ..] => assert!(helped.insert(name), "{line}"),
                ["#", "TYPE", name, kind] => assert!(typed.insert(name, kind).is_none()),
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
                    assert!(typed.contains_key(family), "untyped sample: {line}");
                    assert!(helped.contains(family), "no help: {line}");
                    assert!(value.parse::<f64>().is_ok(), "{line}");
                }
                _ => panic!("unexpected line {line:?}"),
            }
        }
        assert_eq!(typed.len(), 30 + endpoints, "{text}");
        #[cfg(feature = "export")]
        {
            assert!(text.contains("otlpx_endpoint_up{endpoint=\"http://a:4317\"} 0\n"));
            assert!(text.contains("otlpx_endpoint_failures_total{endpoint=\"http://a:4317\"} 2\n"));
        }
        assert!(text.contains("otlpx_spans_recorded_total 7\n"));
        assert!(text.contains("otlpx_export_duration_seconds_bucket{le=\"0.0001\"} 1\n"));
        assert!(text.contains("otlpx_export_duration_seconds_bucket{le=\"+Inf\"} 1\n"));
        assert!(text.contains("otlpx_export_duration_seconds_sum 0.00005\n"));
        assert!(text.contains("otlpx_export_batch_bytes_bucket{le=\"1024\"} 0\n"));
        assert!(text.contains("otlpx_ring_capacity_bytes{ring=\"1\"} 0\n"));
        assert!(text.contains("otlpx_last_export_failure_timestamp_seconds 0\n"));
        let version = env!("CARGO_PKG_VERSION");
        assert!(text.contains(&format!("otlpx_build_info{{version=\"{version}\"}} 1\n")));
    }
}
