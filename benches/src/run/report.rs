//! One engine's results ([`EngineReport`]): the JSON line a child prints
//! and the parent reads back, the table printed for people, and the
//! otlpx ÷ opentelemetry-SDK ratios.
//!
//! The JSON object has exactly the keys of [`JSON_KEYS`], in that order,
//! and for a trace run the [`TRACE_KEYS`] after them: the names the
//! figures had before there were logs, kept for the scripts that read
//! them. The parent fills in `receiver_items` (and `receiver_spans`),
//! which a child cannot know (`null` when the user named the endpoint).

use std::fmt::Write as _;

use serde_json::Value;

use super::error::BenchError;
use super::options::{Compression, EngineKind, Protocol, Signal};

/// The keys of an engine's JSON object, in the order they are written:
/// signal-neutral, an item being a span or a log record.
pub const JSON_KEYS: [&str; 15] = [
    "engine",
    "signal",
    "protocol",
    "compression",
    "threads",
    "duration_s",
    "recorded",
    "exported",
    "dropped",
    "dropped_by_reason",
    "per_sec",
    "record_ns",
    "cpu_s_per_million",
    "peak_rss_mib",
    "receiver_items",
];

/// The keys a trace run's object has after [`JSON_KEYS`], each the same
/// figure as a signal-neutral key: `recorded`, `exported`, `dropped`,
/// `per_sec`, `receiver_items`, in that order.
pub const TRACE_KEYS: [&str; 5] = [
    "spans_recorded",
    "spans_exported",
    "spans_dropped",
    "spans_per_sec",
    "receiver_spans",
];

/// Percentiles of the cost of one item on the application thread.
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
    /// The signal recorded: what an item is.
    pub signal: Signal,
    /// The OTLP transport.
    pub protocol: Protocol,
    /// The compression of request bodies.
    pub compression: Compression,
    /// Producer threads.
    pub threads: usize,
    /// Wall time from the producers' start to the end of shutdown, seconds.
    pub duration_s: f64,
    /// Items the producers recorded.
    pub recorded: u64,
    /// Items the receiver acknowledged.
    pub exported: u64,
    /// Items dropped, all reasons.
    pub dropped: u64,
    /// Items dropped, by reason, in the engine's own terms.
    pub dropped_by_reason: Vec<(String, u64)>,
    /// Exported items per second of `duration_s`.
    pub per_sec: f64,
    /// The cost of one item on the application thread.
    pub record_ns: RecordNs,
    /// Process CPU seconds per million exported items; `None` when nothing
    /// was exported.
    pub cpu_s_per_million: Option<f64>,
    /// The child process's peak resident memory, MiB.
    pub peak_rss_mib: f64,
    /// Items of the signal the embedded receiver counted during this
    /// engine's run; `None` when the user named the endpoint.
    pub receiver_items: Option<u64>,
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
    /// The report as one line of JSON, keys in [`JSON_KEYS`] order, then
    /// for traces in [`TRACE_KEYS`] order.
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
        let per_sec = number(round(self.per_sec, 1));
        let receiver_items = self.receiver_items.map_or(Value::Null, Value::from);
        let values: [Value; 15] = [
            Value::from(self.engine.name()),
            Value::from(self.signal.name()),
            Value::from(self.protocol.name()),
            Value::from(self.compression.name()),
            Value::from(self.threads),
            number(round(self.duration_s, 6)),
            Value::from(self.recorded),
            Value::from(self.exported),
            Value::from(self.dropped),
            Value::Object(reasons),
            per_sec.clone(),
            record_ns,
            self.cpu_s_per_million
                .map_or(Value::Null, |x| number(round(x, 6))),
            number(round(self.peak_rss_mib, 2)),
            receiver_items.clone(),
        ];
        let trace_values: [Value; 5] = [
            Value::from(self.recorded),
            Value::from(self.exported),
            Value::from(self.dropped),
            per_sec,
            receiver_items,
        ];
        let trace_pairs = match self.signal {
            Signal::Traces => TRACE_KEYS.iter().zip(trace_values).collect(),
            Signal::Logs => Vec::new(),
        };
        // serde_json's maps sort their keys; write the object by hand to keep
        // the documented order.
        let mut line = String::from("{");
        let pairs = JSON_KEYS.iter().zip(values).chain(trace_pairs);
        for (i, (key, value)) in pairs.enumerate() {
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
            signal: Signal::from_name(str_of("signal")?).ok_or_else(|| missing("signal"))?,
            protocol: Protocol::from_name(str_of("protocol")?)
                .ok_or_else(|| missing("protocol"))?,
            compression: Compression::from_name(str_of("compression")?)
                .ok_or_else(|| missing("compression"))?,
            threads: usize::try_from(u64_of("threads")?).map_err(|_| missing("threads"))?,
            duration_s: f64_of("duration_s")?,
            recorded: u64_of("recorded")?,
            exported: u64_of("exported")?,
            dropped: u64_of("dropped")?,
            dropped_by_reason: reasons,
            per_sec: f64_of("per_sec")?,
            record_ns: RecordNs {
                p50: pct("p50")?,
                p99: pct("p99")?,
                p999: pct("p999")?,
            },
            cpu_s_per_million: v.get("cpu_s_per_million").and_then(Value::as_f64),
            peak_rss_mib: f64_of("peak_rss_mib")?,
            receiver_items: v.get("receiver_items").and_then(Value::as_u64),
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
        let items = self.signal.items();
        // The signal shows in the rows' names (`spans recorded`, `log
        // records recorded`).
        let rows: [(String, String); 12] = [
            ("protocol".to_owned(), self.protocol.name().to_owned()),
            ("compression".to_owned(), self.compression.name().to_owned()),
            ("producer threads".to_owned(), self.threads.to_string()),
            ("duration".to_owned(), format!("{:.3} s", self.duration_s)),
            (format!("{items} recorded"), grouped(self.recorded)),
            (format!("{items} exported"), grouped(self.exported)),
            (
                format!("{items} dropped"),
                format!("{} ({reasons})", grouped(self.dropped)),
            ),
            (
                format!("exported {items}/s"),
                grouped(self.per_sec.round() as u64),
            ),
            (
                "record p50/p99/p999".to_owned(),
                format!(
                    "{} / {} / {} ns",
                    grouped(self.record_ns.p50),
                    grouped(self.record_ns.p99),
                    grouped(self.record_ns.p999)
                ),
            ),
            (
                format!("CPU per million {items}"),
                self.cpu_s_per_million
                    .map_or_else(|| "n/a (none exported)".to_owned(), |x| format!("{x:.3} s")),
            ),
            (
                "peak RSS".to_owned(),
                format!("{:.1} MiB", self.peak_rss_mib),
            ),
            (
                format!("receiver {items}"),
                self.receiver_items
                    .map_or_else(|| "n/a (external endpoint)".to_owned(), grouped),
            ),
        ];
        let _ = writeln!(t, "{}", self.engine.name());
        let width = column_width(rows.iter().map(|(name, _)| name.as_str()), 24);
        for (name, value) in rows {
            let _ = writeln!(t, "  {name:<width$}{value}");
        }
        t
    }
}

/// The width of a column of `names`: `at_least`, or wider so that two
/// spaces follow the longest.
fn column_width<'a>(names: impl Iterator<Item = &'a str>, at_least: usize) -> usize {
    names
        .map(|name| name.chars().count() + 2)
        .fold(at_least, usize::max)
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
    let exported = format!("exported {}/s (otlpx ÷ sdk)", otlpx.signal.items());
    let rows = [
        (exported.as_str(), ratio(otlpx.per_sec, sdk.per_sec)),
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
    let width = column_width(rows.iter().map(|(name, _)| *name), 32);
    for (name, value) in rows {
        let _ = writeln!(t, "  {name:<width$}{value}");
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> EngineReport {
        EngineReport {
            engine: EngineKind::OtelSdk,
            signal: Signal::Traces,
            protocol: Protocol::Http,
            compression: Compression::Gzip,
            threads: 2,
            duration_s: 1.25,
            recorded: 3000,
            exported: 2000,
            dropped: 1000,
            dropped_by_reason: vec![("queue_full_or_export_failed".to_owned(), 1000)],
            per_sec: 1600.0,
            record_ns: RecordNs {
                p50: 100,
                p99: 900,
                p999: 12_000,
            },
            cpu_s_per_million: Some(0.5),
            peak_rss_mib: 20.5,
            receiver_items: None,
        }
    }

    /// The keys of `line`'s object, in the order written.
    fn keys_in_order(line: &str) -> Vec<String> {
        let v: Value = serde_json::from_str(line).unwrap();
        let mut keys: Vec<_> = v.as_object().unwrap().keys().cloned().collect();
        keys.sort_by_key(|k| line.find(&format!("\"{k}\":")).unwrap());
        keys
    }

    #[test]
    fn json_line_has_exactly_the_keys_in_order_and_reads_back() {
        let report = sample();
        let line = report.to_json_line();
        assert!(!line.contains('\n'));
        let expected: Vec<&str> = JSON_KEYS.iter().chain(&TRACE_KEYS).copied().collect();
        assert_eq!(keys_in_order(&line), expected, "{line}");
        let v: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["signal"], "traces");
        assert_eq!(v["receiver_items"], Value::Null);
        assert_eq!(v["receiver_spans"], Value::Null);
        for (old, new) in [
            ("spans_recorded", "recorded"),
            ("spans_exported", "exported"),
            ("spans_dropped", "dropped"),
            ("spans_per_sec", "per_sec"),
        ] {
            assert_eq!(v[old], v[new], "{old}");
        }
        assert_eq!(EngineReport::from_json_line(&line).unwrap(), report);

        let with_receiver = EngineReport {
            receiver_items: Some(2000),
            cpu_s_per_million: None,
            ..report
        };
        let line = with_receiver.to_json_line();
        let v: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(
            (&v["receiver_items"], &v["receiver_spans"]),
            (&2000.into(), &2000.into())
        );
        let back = EngineReport::from_json_line(&line).unwrap();
        assert_eq!(back, with_receiver);
    }

    #[test]
    fn log_runs_have_the_neutral_keys_only() {
        let report = EngineReport {
            signal: Signal::Logs,
            receiver_items: Some(2000),
            ..sample()
        };
        let line = report.to_json_line();
        assert_eq!(keys_in_order(&line), JSON_KEYS, "{line}");
        let v: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["signal"], "logs");
        assert_eq!(v["receiver_items"], 2000);
        assert_eq!(EngineReport::from_json_line(&line).unwrap(), report);
        let table = report.to_table();
        for needle in [
            "log records recorded",
            "exported log records/s",
            "receiver log records",
        ] {
            assert!(table.contains(needle), "{needle} in\n{table}");
        }
        assert!(!table.contains("spans"), "{table}");
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
            per_sec: 16_000.0,
            ..sample()
        };
        assert!(ratios_table(&otlpx, &sample()).contains("10.00×"));
    }

    #[test]
    fn columns_keep_the_trace_layout_and_widen_for_logs() {
        // A trace table as it always was: names in 24 columns.
        let t = sample().to_table();
        assert!(t.contains("\n  spans recorded          3,000\n"), "{t}");
        let otlpx = EngineReport {
            engine: EngineKind::Otlpx,
            ..sample()
        };
        let ratios = ratios_table(&otlpx, &sample());
        assert!(
            ratios.contains("\n  exported spans/s (otlpx ÷ sdk)  1.00×\n"),
            "{ratios}"
        );
        // Log records' longer names push the column out.
        let logs = |r: EngineReport| EngineReport {
            signal: Signal::Logs,
            ..r
        };
        let t = logs(sample()).to_table();
        assert!(
            t.contains("\n  log records recorded         3,000\n"),
            "{t}"
        );
        assert!(
            t.contains("\n  CPU per million log records  0.500 s\n"),
            "{t}"
        );
        let ratios = ratios_table(&logs(otlpx), &logs(sample()));
        assert!(
            ratios.contains("\n  exported log records/s (otlpx ÷ sdk)  1.00×\n"),
            "{ratios}"
        );
    }
}
