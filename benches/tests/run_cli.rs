//! End to end through the built `otlpx-bench` binary: `run --json` with a
//! fixed item count against the embedded receiver, for each engine and
//! signal, must print one JSON object with exactly the documented keys,
//! and every span or log record must be exported and seen by the
//! receiver. Bad options must fail with a message and a non-zero exit,
//! not a panic.

use std::process::{Command, Output};

use serde_json::Value;

/// The keys of every engine's JSON line, as documented for `run --json`.
const KEYS: [&str; 15] = [
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

/// The keys a trace run's line has besides: the names from before logs.
const TRACE_KEYS: [&str; 5] = [
    "spans_recorded",
    "spans_exported",
    "spans_dropped",
    "spans_per_sec",
    "receiver_spans",
];

/// Runs the binary with `args`.
fn bench(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_otlpx-bench"))
        .args(args)
        .output()
        .expect("the otlpx-bench binary runs")
}

/// Runs `run --engine <engine> --signal <signal> --items <items> --threads
/// 1 --json` over `protocol` with `compression`, and returns its one line
/// of output, checked for the keys of `signal` and the figures every run
/// has.
fn run_json(engine: &str, signal: &str, protocol: &str, compression: &str, items: u64) -> Value {
    let items_arg = items.to_string();
    let out = bench(&[
        "run",
        "--engine",
        engine,
        "--signal",
        signal,
        "--protocol",
        protocol,
        "--compression",
        compression,
        "--items",
        &items_arg,
        "--threads",
        "1",
        "--json",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        out.status
    );
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 1, "one JSON line on stdout, got:\n{stdout}");
    let v: Value = serde_json::from_str(lines[0]).expect("stdout is JSON");
    let object = v.as_object().expect("a JSON object");
    let mut keys: Vec<&str> = object.keys().map(String::as_str).collect();
    let mut expected = KEYS.to_vec();
    if signal == "traces" {
        expected.extend(TRACE_KEYS);
    }
    keys.sort_unstable();
    expected.sort_unstable();
    assert_eq!(keys, expected);

    assert_eq!(v["engine"], engine);
    assert_eq!(v["signal"], signal);
    assert_eq!(v["protocol"], protocol);
    assert_eq!(v["compression"], compression);
    assert_eq!(v["threads"], 1);
    assert_eq!(v["recorded"], items);
    let reasons = v["dropped_by_reason"].as_object().expect("an object");
    assert!(!reasons.is_empty());
    let record = v["record_ns"].as_object().expect("an object");
    let pct = |k: &str| record[k].as_u64().expect("a count of nanoseconds");
    assert!(0 < pct("p50") && pct("p50") <= pct("p99") && pct("p99") <= pct("p999"));
    assert!(v["duration_s"].as_f64().is_some_and(|d| d > 0.0));
    assert!(v["peak_rss_mib"].as_f64().is_some_and(|m| m > 1.0));
    // What the engine says it exported, the receiver got.
    assert_eq!(v["receiver_items"], v["exported"], "{stdout}");
    let counted = |k: &str| v[k].as_u64().unwrap_or_else(|| panic!("{k} in {stdout}"));
    assert_eq!(counted("exported") + counted("dropped"), items, "{stdout}");
    v
}

/// Checks that a run exported all its `items` and dropped none.
fn all_exported(v: &Value, items: u64) {
    assert_eq!(v["exported"], items, "{v}");
    assert_eq!(v["receiver_items"], items, "{v}");
    assert_eq!(v["dropped"], 0, "{v}");
    let reasons = v["dropped_by_reason"].as_object().expect("an object");
    assert!(reasons.values().all(|n| n == 0), "{v}");
    assert!(v["per_sec"].as_f64().is_some_and(|r| r > 0.0));
    assert!(v["cpu_s_per_million"].as_f64().is_some_and(|c| c > 0.0));
}

/// A trace run of 2000 spans, every one exported; the spans_* keys hold
/// the same figures as the neutral ones.
fn spans_are_all_exported(engine: &str, protocol: &str, compression: &str) {
    let v = run_json(engine, "traces", protocol, compression, 2000);
    all_exported(&v, 2000);
    assert_eq!(v["spans_recorded"], 2000);
    assert_eq!(v["spans_exported"], 2000, "{v}");
    assert_eq!(v["receiver_spans"], 2000, "{v}");
    assert_eq!(v["spans_dropped"], 0);
    assert_eq!(v["spans_per_sec"], v["per_sec"]);
}

#[test]
fn otel_sdk_exports_every_span_over_grpc() {
    spans_are_all_exported("otel-sdk", "grpc", "none");
}

#[test]
fn otel_sdk_exports_every_span_over_http_gzip() {
    spans_are_all_exported("otel-sdk", "http", "gzip");
}

#[test]
fn otlpx_exports_every_span_over_grpc() {
    spans_are_all_exported("otlpx", "grpc", "none");
}

#[test]
fn otlpx_exports_every_span_over_http_zstd() {
    spans_are_all_exported("otlpx", "http", "zstd");
}

#[test]
fn otlpx_exports_every_log_record_over_grpc() {
    let v = run_json("otlpx", "logs", "grpc", "none", 3000);
    all_exported(&v, 3000);
}

#[test]
fn otlpx_exports_every_log_record_over_http_gzip() {
    let v = run_json("otlpx", "logs", "http", "gzip", 3000);
    all_exported(&v, 3000);
}

#[test]
fn otel_sdk_exports_log_records_over_grpc() {
    // A smoke run: the SDK's batch processor drops what does not fit its
    // queue (2048 records) and counts nothing, so only what it exported
    // must have arrived (`run_json`); 2000 records from one thread fit.
    let v = run_json("otel-sdk", "logs", "grpc", "none", 2000);
    assert!(v["exported"].as_u64().is_some_and(|n| n > 0), "{v}");
}

#[test]
fn bad_options_fail_with_a_message() {
    for args in [
        &["run", "--spans", "0"][..],
        &["run", "--items", "0"],
        &["run", "--threads", "0"],
        &["run", "--attrs", "129"],
        &["run", "--duration", "-1"],
        &["run", "--endpoint", "localhost:4317"],
        &["run", "--duration", "1", "--spans", "5"],
        &["run", "--duration", "1", "--items", "5"],
        &["run", "--engine", "nope"],
        &["run", "--signal", "metrics"],
    ] {
        let out = bench(args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} succeeded");
        assert!(out.stdout.is_empty(), "{args:?} printed to stdout");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert!(!stderr.trim().is_empty(), "{args:?} said nothing");
    }
}
