//! One engine's results ([`EngineReport`]): the JSON line a child prints
//! and the parent reads back, the table printed for people, and the
//! otlpx ÷ opentelemetry-SDK ratios.
//!
//! The JSON object has exactly the keys of [`JSON_KEYS`], in that order;
//! the parent adds `receiver_spans`, which a child cannot know (`null`
//! when the user named the endpoint).

use std::fmt::Write as _;

use serde_json::Value;

use super::error::BenchError;
use super::options::{Compression, EngineKind, Protocol};

/// The keys of an engine's JSON object, in the order they are written.
pub const JSON_KEYS: [&str; 14] = [
    "engine",
    "protocol",
    "compression",
    "threads",
    "duration_s",
    "spans_recorded",
    "spans_exported",
    "spans_dropped",
    "dropped_by_reason",
    "spans_per_sec",
    "record_ns",
    "cpu_s_per_million",
    "peak_rss_mib",
    "receiver_spans",
];

/// Percentiles of the cost of one span on the application thread.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RecordNs {
    /// Median, nanoseconds.
    pub p50: u64,
    /// 99th percentile, nanoseconds.
    pub p99: u64,
    /// 99.9th percentile, nanoseconds.
    pub p999: u64,
}

/// One engine's results.
#[derive(Clone, Debug, PartialEq)]
pub struct EngineReport {
    /// The engine measured.
    pub engine: EngineKind,
    /// The OTLP transport.
    pub protocol: Protocol,
    /// The compression of request bodies.
    pub compression: Compression,
    /// Producer threads.
    pub threads: usize,
    /// Wall time from the producers' start to the end of shutdown, seconds.
    pub duration_s: f64,
    /// Spans the producers recorded.
    pub spans_recorded: u64,
    /// Spans the receiver acknowledged.
    pub spans_exported: u64,
    /// Spans dropped, all reasons.
    pub spans_dropped: u64,
    /// Spans dropped, by reason, in the engine's own terms.
    pub dropped_by_reason: Vec<(String, u64)>,
    /// Exported spans per second of `duration_s`.
    pub spans_per_sec: f64,
    /// The cost of one span on the application thread.
    pub record_ns: RecordNs,
    /// Process CPU seconds per million exported spans; `None` when nothing
    /// was exported.
    pub cpu_s_per_million: Option<f64>,
    /// The child process's peak resident memory, MiB.
    pub peak_rss_mib: f64,
    /// Spans the embedded receiver counted during this engine's run; `None`
    /// when the user named the endpoint.
    pub receiver_spans: Option<u64>,
}

/// Rounds `x` to `places` decimals, for JSON that reads well.
fn round(x: f64, places: i32) -> f64 {
    let scale = 10f64.powi(places);
    (x * scale).round() / scale
}

/// A JSON number from an f64; `null` if it is not finite.
fn number(x: f64) -> Value {
    serde_json::Number::from_f64(x).map_or(Value::Null, Value::Number)
}

impl EngineReport {
    /// The report as one line of JSON, keys in [`JSON_KEYS`] order.
    pub fn to_json_line(&self) -> String {
        let reasons: serde_json::Map<String, Value> = self
            .dropped_by_reason
            .iter()
            .map(|(k, v)| (k.clone(), Value::from(*v)))
            .collect();
        let record_ns = serde_json::json!({
            "p50": self.record_ns.p50,
            "p99": self.record_ns.p99,
            "p999": self.record_ns.p999,
        });
        let values: [Value; 14] = [
            Value::from(self.engine.name()),
            Value::from(self.protocol.name()),
            Value::from(self.compression.name()),
            Value::from(self.threads),
            number(round(self.duration_s, 6)),
            Value::from(self.spans_recorded),
            Value::from(self.spans_exported),
            Value::from(self.spans_dropped),
            Value::Object(reasons),
            number(round(self.spans_per_sec, 1)),
            record_ns,
            self.cpu_s_per_million
                .map_or(Value::Null, |x| number(round(x, 6))),
            number(round(self.peak_rss_mib, 2)),
            self.receiver_spans.map_or(Value::Null, Value::from),
        ];
        // serde_json's maps sort their keys; write the object by hand to keep
        // the documented order.
        let mut line = String::from("{");
        for (i, (key, value)) in JSON_KEYS.iter().zip(values).enumerate() {
            if i > 0 {
                line.push(',');
            }
            let _ = write!(line, "{}:{}", Value::from(*key), value);
        }
        line.push('}');
        line
    }

    /// Reads a report back from the object [`to_json_line`](Self::to_json_line)
    /// wrote.
    ///
    /// # Errors
    ///
    /// When `line` is not such an object.
    pub fn from_json_line(line: &str) -> Result<Self, BenchError> {
        let v: Value = serde_json::from_str(line)
            .map_err(|e| BenchError::with_source(format!("not JSON: {line:?}"), e))?;
        let missing = |key: &str| BenchError::msg(format!("no valid {key:?} in {line:?}"));
        let str_of = |key: &str| {
            v.get(key)
                .and_then(Value::as_str)
                .ok_or_else(|| missing(key))
        };
        let u64_of = |key: &str| {
            v.get(key)
                .and_then(Value::as_u64)
                .ok_or_else(|| missing(key))
        };
        let f64_of = |key: &str| {
            v.get(key)
                .and_then(Value::as_f64)
                .ok_or_else(|| missing(key))
        };
        let record = v.get("record_ns").ok_or_else(|| missing("record_ns"))?;
        let pct = |key: &str| {
            record
                .get(key)
                .and_then(Value::as_u64)
                .ok_or_else(|| missing(key))
        };
        let reasons = v
            .get("dropped_by_reason")
            .and_then(Value::as_object)
            .ok_or_else(|| missing("dropped_by_reason"))?
            .iter()
            .map(|(k, n)| Ok((k.clone(), n.as_u64().ok_or_else(|| missing(k))?)))
            .collect::<Result<Vec<_>, BenchError>>()?;
        Ok(Self {
            engine: EngineKind::from_name(str_of("engine")?).ok_or_else(|| missing("engine"))?,
            protocol: Protocol::from_name(str_of("protocol")?)
                .ok_or_else(|| missing("protocol"))?,
            compression: Compression::from_name(str_of("compression")?)
                .ok_or_else(|| missing("compression"))?,
            threads: usize::try_from(u64_of("threads")?).map_err(|_| missing("threads"))?,
            duration_s: f64_of("duration_s")?,
            spans_recorded: u64_of("spans_recorded")?,
            spans_exported: u64_of("spans_exported")?,
            spans_dropped: u64_of("spans_dropped")?,
            dropped_by_reason: reasons,
            spans_per_sec: f64_of("spans_per_sec")?,
            record_ns: RecordNs {
                p50: pct("p50")?,
                p99: pct("p99")?,
                p999: pct("p999")?,
            },
            cpu_s_per_million: v.get("cpu_s_per_million").and_then(Value::as_f64),
            peak_rss_mib: f64_of("peak_rss_mib")?,
            receiver_spans: v.get("receiver_spans").and_then(Value::as_u64),
        })
    }

    /// The report as a table for people, one field a line.
    pub fn to_table(&self) -> String {
        let mut t = String::new();
        let reasons = self
            .dropped_by_reason
            .iter()
            .map(|(k, v)| format!("{k} {}", grouped(*v)))
            .collect::<Vec<_>>()
            .join(", ");
        let rows: [(&str, String); 12] = [
            ("protocol", self.protocol.name().to_owned()),
            ("compression", self.compression.name().to_owned()),
            ("producer threads", self.threads.to_string()),
            ("duration", format!("{:.3} s", self.duration_s)),
            ("spans recorded", grouped(self.spans_recorded)),
            ("spans exported", grouped(self.spans_exported)),
            (
                "spans dropped",
                format!("{} ({reasons})", grouped(self.spans_dropped)),
            ),
            (
                "exported spans/s",
                grouped(self.spans_per_sec.round() as u64),
            ),
            (
                "record p50/p99/p999",
                format!(
                    "{} / {} / {} ns",
                    grouped(self.record_ns.p50),
                    grouped(self.record_ns.p99),
                    grouped(self.record_ns.p999)
                ),
            ),
            (
                "CPU per million spans",
                self.cpu_s_per_million
                    .map_or_else(|| "n/a (none exported)".to_owned(), |x| format!("{x:.3} s")),
            ),
            ("peak RSS", format!("{:.1} MiB", self.peak_rss_mib)),
            (
                "receiver spans",
                self.receiver_spans
                    .map_or_else(|| "n/a (external endpoint)".to_owned(), grouped),
            ),
        ];
        let _ = writeln!(t, "{}", self.engine.name());
        for (name, value) in rows {
            let _ = writeln!(t, "  {name:<24}{value}");
        }
        t
    }
}

/// `n` with thin groups of three digits: `12_345_678` → `12,345,678`.
fn grouped(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// `a ÷ b` as `12.3×`, or `n/a` when it is not a finite positive number.
fn ratio(a: f64, b: f64) -> String {
    let r = a / b;
    if r.is_finite() && r > 0.0 {
        format!("{r:.2}×")
    } else {
        "n/a".to_owned()
    }
}

/// The otlpx ÷ opentelemetry-SDK comparison, each ratio oriented so that
/// above 1 means otlpx is better.
pub fn ratios_table(otlpx: &EngineReport, sdk: &EngineReport) -> String {
    let rows = [
        (
            "exported spans/s (otlpx ÷ sdk)",
            ratio(otlpx.spans_per_sec, sdk.spans_per_sec),
        ),
        (
            "record p50 (sdk ÷ otlpx)",
            ratio(sdk.record_ns.p50 as f64, otlpx.record_ns.p50 as f64),
        ),
        (
            "record p99 (sdk ÷ otlpx)",
            ratio(sdk.record_ns.p99 as f64, otlpx.record_ns.p99 as f64),
        ),
        (
            "record p999 (sdk ÷ otlpx)",
            ratio(sdk.record_ns.p999 as f64, otlpx.record_ns.p999 as f64),
        ),
        (
            "CPU per million (sdk ÷ otlpx)",
            match (sdk.cpu_s_per_million, otlpx.cpu_s_per_million) {
                (Some(s), Some(o)) => ratio(s, o),
                _ => "n/a".to_owned(),
            },
        ),
        (
            "peak RSS (sdk ÷ otlpx)",
            ratio(sdk.peak_rss_mib, otlpx.peak_rss_mib),
        ),
    ];
    let mut t = String::from("otlpx vs otel-sdk (above 1: otlpx better)\n");
    for (name, value) in rows {
        let _ = writeln!(t, "  {name:<32}{value}");
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> EngineReport {
        EngineReport {
            engine: EngineKind::OtelSdk,
            protocol: Protocol::Http,
            compression: Compression::Gzip,
            threads: 2,
            duration_s: 1.25,
            spans_recorded: 3000,
            spans_exported: 2000,
            spans_dropped: 1000,
            dropped_by_reason: vec![("queue_full_or_export_failed".to_owned(), 1000)],
            spans_per_sec: 1600.0,
            record_ns: RecordNs {
                p50: 100,
                p99: 900,
                p999: 12_000,
            },
            cpu_s_per_million: Some(0.5),
            peak_rss_mib: 20.5,
            receiver_spans: None,
        }
    }

    #[test]
    fn json_line_has_exactly_the_keys_in_order_and_reads_back() {
        let report = sample();
        let line = report.to_json_line();
        assert!(!line.contains('\n'));
        let v: Value = serde_json::from_str(&line).unwrap();
        let mut keys: Vec<_> = v.as_object().unwrap().keys().cloned().collect();
        let mut expected: Vec<_> = JSON_KEYS.iter().map(|k| (*k).to_owned()).collect();
        keys.sort();
        expected.sort();
        assert_eq!(keys, expected);
        let positions: Vec<_> = JSON_KEYS
            .iter()
            .map(|k| line.find(&format!("\"{k}\":")).unwrap())
            .collect();
        assert!(positions.is_sorted(), "{line}");
        assert_eq!(v["receiver_spans"], Value::Null);
        assert_eq!(EngineReport::from_json_line(&line).unwrap(), report);

        let with_receiver = EngineReport {
            receiver_spans: Some(2000),
            cpu_s_per_million: None,
            ..report
        };
        let back = EngineReport::from_json_line(&with_receiver.to_json_line()).unwrap();
        assert_eq!(back, with_receiver);
    }

    #[test]
    fn bad_lines_are_errors() {
        assert!(EngineReport::from_json_line("").is_err());
        assert!(EngineReport::from_json_line("{}").is_err());
        let line = sample().to_json_line().replace("otel-sdk", "other");
        assert!(EngineReport::from_json_line(&line).is_err());
    }

    #[test]
    fn numbers_are_grouped_and_ratios_guarded() {
        assert_eq!(grouped(0), "0");
        assert_eq!(grouped(999), "999");
        assert_eq!(grouped(1000), "1,000");
        assert_eq!(grouped(12_345_678), "12,345,678");
        assert_eq!(ratio(3.0, 2.0), "1.50×");
        assert_eq!(ratio(1.0, 0.0), "n/a");
        assert_eq!(ratio(0.0, 0.0), "n/a");
    }

    #[test]
    fn tables_name_every_field() {
        let t = sample().to_table();
        for needle in [
            "otel-sdk",
            "1,000 (queue_full_or_export_failed 1,000)",
            "12,000 ns",
        ] {
            assert!(t.contains(needle), "{needle} in\n{t}");
        }
        let otlpx = EngineReport {
            engine: EngineKind::Otlpx,
            spans_per_sec: 16_000.0,
            ..sample()
        };
        assert!(ratios_table(&otlpx, &sample()).contains("10.00×"));
    }
}
