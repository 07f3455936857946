//! The standard `OTEL_*` environment variables: each one set shows in the
//! effective configuration with its source and changes what the engine
//! does; bad values are warnings naming the variable and the value, and
//! ignored (errors in strict mode); values the specification defines but
//! otlpx lacks are reported, once.
//!
//! The environment is given to the builder (`EngineBuilder::environment`),
//! never set on the process, so tests can run in parallel. That the
//! process environment is read by default is tested through
//! `otlpx-bench config --check` (benches/tests/config_cli.rs).

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as Av;
use otlpx::config::{EffectiveConfig, Source};
use otlpx::{Engine, EngineBuilder};
use prost::Message;
use std::path::PathBuf;

fn with_env(vars: &[(&str, &str)]) -> EngineBuilder {
    Engine::builder().environment(vars.iter().map(|&(k, v)| (k, v)))
}

fn effective(vars: &[(&str, &str)]) -> EffectiveConfig {
    with_env(vars)
        .effective_config()
        .unwrap_or_else(|e| panic!("{e}"))
}

/// A record-only engine (`export(false)`), for tests that drain.
fn recording(vars: &[(&str, &str)]) -> Engine {
    with_env(vars)
        .export(false)
        .build()
        .unwrap_or_else(|e| panic!("{e}"))
}

/// The error a bad environment value gives in strict mode; checks that
/// without strict mode the same text is a warning, counted in the stats,
/// and the engine builds.
fn error(vars: &[(&str, &str)]) -> String {
    let e = with_env(vars)
        .strict_env(true)
        .export(false)
        .build()
        .unwrap_err()
        .to_string();
    let engine = with_env(vars).export(false).build().unwrap_or_else(|l| {
        panic!("not strict, {vars:?} should only warn; got {l}");
    });
    let warnings = engine.config().warnings();
    assert!(
        warnings
            .iter()
            .any(|w| w.starts_with(&e) && w.contains("; ignored, using the default")),
        "{vars:?}: no warning {e:?} in {warnings:?}"
    );
    assert_eq!(engine.stats().config_warnings, warnings.len() as u64);
    e
}

/// The value of `key` and, if from the environment, which variable.
fn get(c: &EffectiveConfig, key: &str) -> (String, String) {
    let e = c
        .get(key)
        .unwrap_or_else(|| panic!("no entry {key} in\n{c}"));
    let source = match &e.source {
        Source::Env { var } => var.clone(),
        other => other.to_string(),
    };
    (e.value.clone(), source)
}

fn assert_entry(c: &EffectiveConfig, key: &str, value: &str, var: &str) {
    assert_eq!(
        get(c, key),
        (value.to_owned(), var.to_owned()),
        "{key} in\n{c}"
    );
}

fn temp_file(name: &str, contents: &str) -> PathBuf {
    let path = std::env::temp_dir().join(format!("otlpx-config-env-{}-{name}", std::process::id()));
    std::fs::write(&path, contents).unwrap();
    path
}

/// Spans the engine recorded, drained and decoded.
fn drained(engine: &Engine) -> ExportTraceServiceRequest {
    let mut out = bytes::BytesMut::new();
    engine.drain_traces(&mut out, 10_000);
    ExportTraceServiceRequest::decode(&out[..]).unwrap()
}

fn resource_string(req: &ExportTraceServiceRequest, key: &str) -> Option<String> {
    let attrs = &req.resource_spans[0].resource.as_ref()?.attributes;
    attrs.iter().rev().find(|kv| kv.key == key).and_then(|kv| {
        match kv.value.as_ref()?.value.as_ref()? {
            Av::StringValue(s) => Some(s.clone()),
            _ => None,
        }
    })
}

#[test]
fn generic_exporter_variables() {
    let ca = temp_file("ca.pem", "x");
    let cert = temp_file("cert.pem", "x");
    let key = temp_file("key.pem", "x");
    let (ca, cert, key) = (
        ca.to_str().unwrap(),
        cert.to_str().unwrap(),
        key.to_str().unwrap(),
    );
    let c = effective(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318/"),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
        ("OTEL_EXPORTER_OTLP_HEADERS", "api-key=s%3Dcret,tenant=acme"),
        ("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip"),
        ("OTEL_EXPORTER_OTLP_TIMEOUT", "2500"),
        ("OTEL_EXPORTER_OTLP_CERTIFICATE", ca),
        ("OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE", cert),
        ("OTEL_EXPORTER_OTLP_CLIENT_KEY", key),
    ]);
    let v = "OTEL_EXPORTER_OTLP_";
    // The generic endpoint gets the signal's path over HTTP.
    assert_entry(
        &c,
        "exporter.traces.endpoint",
        "http://collector:4318/v1/traces",
        &format!("{v}ENDPOINT"),
    );
    assert_entry(
        &c,
        "exporter.traces.protocol",
        "http/protobuf",
        &format!("{v}PROTOCOL"),
    );
    // Header values are never shown.
    assert_entry(
        &c,
        "exporter.traces.headers.api-key",
        "***",
        &format!("{v}HEADERS"),
    );
    assert_entry(
        &c,
        "exporter.traces.headers.tenant",
        "***",
        &format!("{v}HEADERS"),
    );
    assert!(!c.to_string().contains("acme"), "{c}");
    assert_entry(
        &c,
        "exporter.traces.compression",
        "gzip",
        &format!("{v}COMPRESSION"),
    );
    assert_entry(
        &c,
        "exporter.traces.timeout_ms",
        "2500",
        &format!("{v}TIMEOUT"),
    );
    assert_entry(
        &c,
        "exporter.traces.certificate",
        ca,
        &format!("{v}CERTIFICATE"),
    );
    assert_entry(
        &c,
        "exporter.traces.client_certificate",
        cert,
        &format!("{v}CLIENT_CERTIFICATE"),
    );
    assert_entry(
        &c,
        "exporter.traces.client_key",
        key,
        &format!("{v}CLIENT_KEY"),
    );
    assert!(c.warnings().is_empty(), "{:?}", c.warnings());
    // Over gRPC the generic endpoint is used as given.
    let c = effective(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4317")]);
    assert_entry(
        &c,
        "exporter.traces.endpoint",
        "http://collector:4317",
        &format!("{v}ENDPOINT"),
    );
}

#[test]
fn per_signal_variables_beat_generic_ones_and_are_used_as_given() {
    let ca = temp_file("traces-ca.pem", "x");
    let c = effective(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://generic:4318"),
        (
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
            "http://traces:4318/custom/path",
        ),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
        ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/protobuf"),
        ("OTEL_EXPORTER_OTLP_HEADERS", "a=generic,b=generic"),
        ("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "a=traces"),
        ("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip"),
        ("OTEL_EXPORTER_OTLP_TRACES_COMPRESSION", "zstd"),
        ("OTEL_EXPORTER_OTLP_TIMEOUT", "100"),
        ("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "200"),
        (
            "OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE",
            ca.to_str().unwrap(),
        ),
        (
            "OTEL_EXPORTER_OTLP_TRACES_CLIENT_CERTIFICATE",
            ca.to_str().unwrap(),
        ),
        ("OTEL_EXPORTER_OTLP_TRACES_CLIENT_KEY", ca.to_str().unwrap()),
    ]);
    let t = "OTEL_EXPORTER_OTLP_TRACES_";
    assert_entry(
        &c,
        "exporter.traces.endpoint",
        "http://traces:4318/custom/path",
        &format!("{t}ENDPOINT"),
    );
    assert_entry(
        &c,
        "exporter.traces.protocol",
        "http/protobuf",
        &format!("{t}PROTOCOL"),
    );
    assert_entry(
        &c,
        "exporter.traces.headers.a",
        "***",
        &format!("{t}HEADERS"),
    );
    assert_entry(
        &c,
        "exporter.traces.headers.b",
        "***",
        "OTEL_EXPORTER_OTLP_HEADERS",
    );
    assert_entry(
        &c,
        "exporter.traces.compression",
        "zstd",
        &format!("{t}COMPRESSION"),
    );
    assert_entry(
        &c,
        "exporter.traces.timeout_ms",
        "200",
        &format!("{t}TIMEOUT"),
    );
    let ca = ca.to_str().unwrap();
    assert_entry(
        &c,
        "exporter.traces.certificate",
        ca,
        &format!("{t}CERTIFICATE"),
    );
    assert_entry(
        &c,
        "exporter.traces.client_certificate",
        ca,
        &format!("{t}CLIENT_CERTIFICATE"),
    );
    assert_entry(
        &c,
        "exporter.traces.client_key",
        ca,
        &format!("{t}CLIENT_KEY"),
    );
}

#[test]
fn insecure_picks_the_scheme_of_a_grpc_endpoint_without_one() {
    let c = effective(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4317")]);
    assert_eq!(
        get(&c, "exporter.traces.endpoint").0,
        "https://collector:4317"
    );
    for var in [
        "OTEL_EXPORTER_OTLP_INSECURE",
        "OTEL_EXPORTER_OTLP_TRACES_INSECURE",
    ] {
        let c = effective(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4317"),
            (var, "TRUE"),
        ]);
        assert_eq!(
            get(&c, "exporter.traces.endpoint").0,
            "http://collector:4317"
        );
    }
    // A scheme given wins over `insecure`.
    let c = effective(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "https://collector:4317"),
        ("OTEL_EXPORTER_OTLP_INSECURE", "true"),
    ]);
    assert_eq!(
        get(&c, "exporter.traces.endpoint").0,
        "https://collector:4317"
    );
    // Over HTTP the same: the scheme from `insecure`, with a warning
    // that says which and how to change it.
    let c = effective(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4318"),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
    ]);
    assert_eq!(
        get(&c, "exporter.traces.endpoint").0,
        "https://collector:4318/v1/traces"
    );
    let w = c.warnings().join("\n");
    assert!(
        w.contains("env OTEL_EXPORTER_OTLP_ENDPOINT")
            && w.contains("\"collector:4318\" has no scheme; assumed https://")
            && w.contains("OTEL_EXPORTER_OTLP_INSECURE=true"),
        "{w}"
    );
    let c = effective(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4318"),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
        ("OTEL_EXPORTER_OTLP_INSECURE", "true"),
    ]);
    assert_eq!(
        get(&c, "exporter.traces.endpoint").0,
        "http://collector:4318/v1/traces"
    );
    assert!(c.warnings()[0].contains("assumed http://"), "{c}");
    // A value that is neither true nor false is false, and reported.
    let c = effective(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4317"),
        ("OTEL_EXPORTER_OTLP_INSECURE", "yes"),
    ]);
    assert_eq!(
        get(&c, "exporter.traces.endpoint").0,
        "https://collector:4317"
    );
    assert!(
        c.warnings()
            .iter()
            .any(|w| w.contains("OTEL_EXPORTER_OTLP_INSECURE")),
        "{c}"
    );
}

/// Every `OTEL_EXPORTER_OTLP_METRICS_*` setting, `OTEL_METRICS_EXPORTER`
/// and `OTEL_METRIC_EXPORT_TIMEOUT`: in effect, shown under the metrics'
/// keys. Only the collection interval (`OTEL_METRIC_EXPORT_INTERVAL`)
/// has nothing to act on until the metrics API exists: reported, once.
#[test]
fn metrics_settings_take_effect_and_the_interval_is_reported() {
    let ca = temp_file("metrics-ca.pem", "x");
    let ca = ca.to_str().unwrap();
    let c = effective(&[
        ("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "http://m:4318/v1/m"),
        ("OTEL_EXPORTER_OTLP_METRICS_PROTOCOL", "http/protobuf"),
        ("OTEL_EXPORTER_OTLP_METRICS_HEADERS", "k=v"),
        ("OTEL_EXPORTER_OTLP_METRICS_COMPRESSION", "zstd"),
        ("OTEL_EXPORTER_OTLP_METRICS_TIMEOUT", "10"),
        ("OTEL_EXPORTER_OTLP_METRICS_INSECURE", "false"),
        ("OTEL_EXPORTER_OTLP_METRICS_CERTIFICATE", ca),
        ("OTEL_EXPORTER_OTLP_METRICS_CLIENT_CERTIFICATE", ca),
        ("OTEL_EXPORTER_OTLP_METRICS_CLIENT_KEY", ca),
        ("OTEL_METRICS_EXPORTER", "otlp"),
        ("OTEL_METRIC_EXPORT_TIMEOUT", "7000"),
    ]);
    assert!(c.warnings().is_empty(), "{:?}", c.warnings());
    let m = "OTEL_EXPORTER_OTLP_METRICS_";
    for (key, value, var) in [
        ("endpoint", "http://m:4318/v1/m", "ENDPOINT"),
        ("protocol", "http/protobuf", "PROTOCOL"),
        ("headers.k", "***", "HEADERS"),
        ("compression", "zstd", "COMPRESSION"),
        ("timeout_ms", "10", "TIMEOUT"),
        ("certificate", ca, "CERTIFICATE"),
        ("client_certificate", ca, "CLIENT_CERTIFICATE"),
        ("client_key", ca, "CLIENT_KEY"),
    ] {
        assert_entry(
            &c,
            &format!("exporter.metrics.{key}"),
            value,
            &format!("{m}{var}"),
        );
    }
    assert_entry(
        &c,
        "exporter.metrics.enabled",
        "true",
        "OTEL_METRICS_EXPORTER",
    );
    assert_entry(
        &c,
        "batch.metrics.export_timeout_ms",
        "7000",
        "OTEL_METRIC_EXPORT_TIMEOUT",
    );
    // otlpx's own batching for metrics, which nothing sets.
    for (key, value) in [
        ("batch.metrics.schedule_delay_ms", "100"),
        ("batch.metrics.max_export_batch_size", "8192"),
        ("metrics.ring_bytes_per_cpu", "1048576"),
    ] {
        assert_eq!(
            get(&c, key),
            (value.to_owned(), "default".to_owned()),
            "{key}"
        );
    }
    // Traces and logs keep their defaults.
    for signal in ["traces", "logs"] {
        for (key, value) in [
            ("endpoint", "http://localhost:4317"),
            ("protocol", "grpc"),
            ("compression", "none"),
            ("timeout_ms", "10000"),
            ("certificate", "none"),
        ] {
            assert_eq!(
                get(&c, &format!("exporter.{signal}.{key}")),
                (value.to_owned(), "default".to_owned()),
                "{signal} {key}"
            );
        }
        assert!(c.get(&format!("exporter.{signal}.headers.k")).is_none());
    }
    // The collection interval: nothing collects yet, so it is reported
    // (once, whatever else is set) and still checked.
    let c = effective(&[
        ("OTEL_METRIC_EXPORT_INTERVAL", "10"),
        ("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "http://m:4317"),
    ]);
    assert_eq!(c.warnings().len(), 1, "{:?}", c.warnings());
    assert!(
        c.warnings()[0].contains("OTEL_METRIC_EXPORT_INTERVAL")
            && c.warnings()[0].contains("no metrics API yet"),
        "{:?}",
        c.warnings()
    );
    // Still checked: a bad metrics value is named, and ignored unless
    // strict.
    for (var, value) in [
        ("OTEL_METRIC_EXPORT_INTERVAL", "-1"),
        ("OTEL_METRIC_EXPORT_TIMEOUT", "0"),
        ("OTEL_EXPORTER_OTLP_METRICS_COMPRESSION", "brotli"),
        ("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "ftp://c:4318"),
        ("OTEL_EXPORTER_OTLP_METRICS_TIMEOUT", "0"),
        ("OTEL_METRICS_EXPORTER", "carrier-pigeon"),
    ] {
        let e = error(&[(var, value)]);
        assert!(
            e.contains(&format!("environment variable {var}={value:?}")),
            "{e}"
        );
    }
}

/// The metrics' exporter as the specification orders it: a source's own
/// metrics value beats its generic one, sources go by precedence (the
/// builder's generic endpoint beats the environment's metrics one), a
/// generic endpoint over HTTP gets `/v1/metrics`, a metrics endpoint is
/// used as given, and headers merge by name.
#[test]
fn a_metrics_endpoint_is_used_as_given_and_beats_the_generic_one() {
    let c = effective(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://generic:4318"),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
        ("OTEL_EXPORTER_OTLP_HEADERS", "a=generic,b=generic"),
        ("OTEL_EXPORTER_OTLP_METRICS_HEADERS", "a=metrics"),
        ("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip"),
        ("OTEL_EXPORTER_OTLP_TIMEOUT", "100"),
        ("OTEL_EXPORTER_OTLP_METRICS_TIMEOUT", "300"),
    ]);
    let m = "OTEL_EXPORTER_OTLP_METRICS_";
    let g = "OTEL_EXPORTER_OTLP_";
    assert_entry(
        &c,
        "exporter.metrics.endpoint",
        "http://generic:4318/v1/metrics",
        &format!("{g}ENDPOINT"),
    );
    assert_entry(
        &c,
        "exporter.metrics.protocol",
        "http/protobuf",
        &format!("{g}PROTOCOL"),
    );
    assert_entry(
        &c,
        "exporter.metrics.headers.a",
        "***",
        &format!("{m}HEADERS"),
    );
    assert_entry(
        &c,
        "exporter.metrics.headers.b",
        "***",
        &format!("{g}HEADERS"),
    );
    assert_entry(
        &c,
        "exporter.metrics.compression",
        "gzip",
        &format!("{g}COMPRESSION"),
    );
    assert_entry(
        &c,
        "exporter.metrics.timeout_ms",
        "300",
        &format!("{m}TIMEOUT"),
    );
    assert_entry(
        &c,
        "exporter.logs.timeout_ms",
        "100",
        &format!("{g}TIMEOUT"),
    );
    // Its own endpoint, as given, over its own protocol.
    let c = effective(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://generic:4317"),
        (
            "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
            "http://m:4318/custom",
        ),
        ("OTEL_EXPORTER_OTLP_METRICS_PROTOCOL", "http/protobuf"),
    ]);
    assert_entry(
        &c,
        "exporter.metrics.endpoint",
        "http://m:4318/custom",
        &format!("{m}ENDPOINT"),
    );
    assert_eq!(get(&c, "exporter.traces.endpoint").0, "http://generic:4317");
    assert_eq!(get(&c, "exporter.traces.protocol").0, "grpc");
    // The default over HTTP: the specification's, with the metrics path.
    let c = effective(&[("OTEL_EXPORTER_OTLP_METRICS_PROTOCOL", "http/protobuf")]);
    assert_eq!(
        get(&c, "exporter.metrics.endpoint"),
        (
            "http://localhost:4318/v1/metrics".to_owned(),
            "default".to_owned()
        )
    );
    // The builder beats the environment, its generic value included.
    let c = with_env(&[("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "http://m:4317")])
        .endpoint("http://builder:4317")
        .effective_config()
        .unwrap();
    assert_eq!(
        get(&c, "exporter.metrics.endpoint"),
        (
            "http://builder:4317".to_owned(),
            "builder .endpoint()".to_owned()
        )
    );
}

#[test]
fn metrics_exporter_none_turns_off_metrics_only() {
    let var = "OTEL_METRICS_EXPORTER";
    let c = effective(&[
        (var, "none"),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4317"),
    ]);
    assert_entry(&c, "exporter.metrics.enabled", "false", var);
    assert_entry(
        &c,
        "exporter.metrics.endpoint",
        "none: export off, the caller drains",
        var,
    );
    assert!(c.warnings().is_empty(), "{c}");
    for signal in ["traces", "logs"] {
        assert_eq!(get(&c, &format!("exporter.{signal}.enabled")).0, "true");
        assert_eq!(
            get(&c, &format!("exporter.{signal}.endpoint")).0,
            "http://c:4317"
        );
    }
    // The specification's other exporters: reported, OTLP used.
    let c = effective(&[(var, "prometheus")]);
    assert_entry(&c, "exporter.metrics.enabled", "true", var);
    assert!(
        c.warnings()[0].contains("exporting over OTLP instead"),
        "{c}"
    );
}

/// Every `OTEL_EXPORTER_OTLP_LOGS_*` setting, the `OTEL_BLRP_*` ones and
/// the log record limits: in effect, so none is reported as without one.
#[test]
fn logs_settings_take_effect_without_warnings() {
    let ca = temp_file("logs-ca.pem", "x");
    let ca = ca.to_str().unwrap();
    let c = effective(&[
        ("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT", "http://logs:4318/v1/l"),
        ("OTEL_EXPORTER_OTLP_LOGS_PROTOCOL", "http/protobuf"),
        ("OTEL_EXPORTER_OTLP_LOGS_HEADERS", "k=v"),
        ("OTEL_EXPORTER_OTLP_LOGS_COMPRESSION", "gzip"),
        ("OTEL_EXPORTER_OTLP_LOGS_TIMEOUT", "10"),
        ("OTEL_EXPORTER_OTLP_LOGS_INSECURE", "false"),
        ("OTEL_EXPORTER_OTLP_LOGS_CERTIFICATE", ca),
        ("OTEL_EXPORTER_OTLP_LOGS_CLIENT_CERTIFICATE", ca),
        ("OTEL_EXPORTER_OTLP_LOGS_CLIENT_KEY", ca),
        ("OTEL_LOGS_EXPORTER", "otlp"),
        ("OTEL_BLRP_SCHEDULE_DELAY", "250"),
        ("OTEL_BLRP_EXPORT_TIMEOUT", "10"),
        ("OTEL_BLRP_MAX_QUEUE_SIZE", "10"),
        ("OTEL_BLRP_MAX_EXPORT_BATCH_SIZE", "10"),
        ("OTEL_LOGRECORD_ATTRIBUTE_VALUE_LENGTH_LIMIT", "10"),
        ("OTEL_LOGRECORD_ATTRIBUTE_COUNT_LIMIT", "10"),
        ("OTLPX_LOGS_MIN_SEVERITY", "info"),
    ]);
    assert!(c.warnings().is_empty(), "{:?}", c.warnings());
    let l = "OTEL_EXPORTER_OTLP_LOGS_";
    for (key, value, var) in [
        ("endpoint", "http://logs:4318/v1/l", "ENDPOINT"),
        ("protocol", "http/protobuf", "PROTOCOL"),
        ("headers.k", "***", "HEADERS"),
        ("compression", "gzip", "COMPRESSION"),
        ("timeout_ms", "10", "TIMEOUT"),
        ("certificate", ca, "CERTIFICATE"),
        ("client_certificate", ca, "CLIENT_CERTIFICATE"),
        ("client_key", ca, "CLIENT_KEY"),
    ] {
        assert_entry(
            &c,
            &format!("exporter.logs.{key}"),
            value,
            &format!("{l}{var}"),
        );
    }
    assert_entry(&c, "exporter.logs.enabled", "true", "OTEL_LOGS_EXPORTER");
    // Traces keep their defaults.
    for (key, value) in [
        ("endpoint", "http://localhost:4317"),
        ("protocol", "grpc"),
        ("compression", "none"),
        ("timeout_ms", "10000"),
        ("certificate", "none"),
    ] {
        assert_eq!(
            get(&c, &format!("exporter.traces.{key}")),
            (value.to_owned(), "default".to_owned()),
            "{key}"
        );
    }
    assert!(c.get("exporter.traces.headers.k").is_none(), "{c}");
    // Still checked: a bad logs value is named, and ignored unless strict.
    for (var, value) in [
        ("OTEL_BLRP_MAX_QUEUE_SIZE", "many"),
        ("OTEL_BLRP_MAX_EXPORT_BATCH_SIZE", "0"),
        ("OTEL_BLRP_SCHEDULE_DELAY", "0"),
        ("OTEL_EXPORTER_OTLP_LOGS_COMPRESSION", "brotli"),
        ("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT", "ftp://c:4318"),
        ("OTEL_EXPORTER_OTLP_LOGS_TIMEOUT", "0"),
        ("OTEL_LOGRECORD_ATTRIBUTE_COUNT_LIMIT", "1e3"),
        ("OTEL_LOGS_EXPORTER", "carrier-pigeon"),
    ] {
        let e = error(&[(var, value)]);
        assert!(
            e.contains(&format!("environment variable {var}={value:?}")),
            "{e}"
        );
    }
}

#[test]
fn a_generic_endpoint_serves_every_signal_with_its_path() {
    let c = effective(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
    ]);
    let v = "OTEL_EXPORTER_OTLP_ENDPOINT";
    assert_entry(&c, "exporter.traces.endpoint", "http://c:4318/v1/traces", v);
    assert_entry(&c, "exporter.logs.endpoint", "http://c:4318/v1/logs", v);
    assert_entry(
        &c,
        "exporter.metrics.endpoint",
        "http://c:4318/v1/metrics",
        v,
    );
    assert_entry(
        &c,
        "exporter.logs.protocol",
        "http/protobuf",
        "OTEL_EXPORTER_OTLP_PROTOCOL",
    );
    // Several, each with the path; over gRPC, as given.
    let c = effective(&[
        (
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            "http://a:4318/,http://b:4318",
        ),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
    ]);
    assert_eq!(
        get(&c, "exporter.logs.endpoint").0,
        "http://a:4318/v1/logs,http://b:4318/v1/logs"
    );
    let c = effective(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4317")]);
    assert_entry(&c, "exporter.logs.endpoint", "http://c:4317", v);
    // The defaults: one collector on this host, the signal's path over
    // HTTP.
    let c = effective(&[]);
    assert_eq!(
        get(&c, "exporter.logs.endpoint"),
        ("http://localhost:4317".to_owned(), "default".to_owned())
    );
    let c = effective(&[("OTEL_EXPORTER_OTLP_LOGS_PROTOCOL", "http/protobuf")]);
    assert_eq!(
        get(&c, "exporter.logs.endpoint"),
        (
            "http://localhost:4318/v1/logs".to_owned(),
            "default".to_owned()
        )
    );
    assert_eq!(
        get(&c, "exporter.traces.endpoint").0,
        "http://localhost:4317"
    );
    // No scheme: assumed from the signal's `insecure`, reported once even
    // though both signals use the endpoint.
    let c = effective(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "c:4318"),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
        ("OTEL_EXPORTER_OTLP_INSECURE", "true"),
    ]);
    assert_eq!(get(&c, "exporter.logs.endpoint").0, "http://c:4318/v1/logs");
    assert_eq!(c.warnings().len(), 1, "{:?}", c.warnings());
    let c = effective(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "c:4317"),
        ("OTEL_EXPORTER_OTLP_LOGS_INSECURE", "true"),
    ]);
    assert_eq!(get(&c, "exporter.logs.endpoint").0, "http://c:4317");
    assert_eq!(get(&c, "exporter.traces.endpoint").0, "https://c:4317");
}

#[test]
fn a_logs_endpoint_is_used_as_given_and_beats_the_generic_one() {
    let c = effective(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://generic:4318"),
        (
            "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT",
            "http://logs:4318/custom",
        ),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
        ("OTEL_EXPORTER_OTLP_HEADERS", "a=generic,b=generic"),
        ("OTEL_EXPORTER_OTLP_LOGS_HEADERS", "a=logs"),
        ("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip"),
        ("OTEL_EXPORTER_OTLP_LOGS_COMPRESSION", "zstd"),
        ("OTEL_EXPORTER_OTLP_TIMEOUT", "100"),
        ("OTEL_EXPORTER_OTLP_LOGS_TIMEOUT", "300"),
    ]);
    let l = "OTEL_EXPORTER_OTLP_LOGS_";
    let g = "OTEL_EXPORTER_OTLP_";
    assert_entry(
        &c,
        "exporter.logs.endpoint",
        "http://logs:4318/custom",
        &format!("{l}ENDPOINT"),
    );
    assert_entry(
        &c,
        "exporter.traces.endpoint",
        "http://generic:4318/v1/traces",
        &format!("{g}ENDPOINT"),
    );
    assert_entry(&c, "exporter.logs.headers.a", "***", &format!("{l}HEADERS"));
    assert_entry(&c, "exporter.logs.headers.b", "***", &format!("{g}HEADERS"));
    assert_entry(
        &c,
        "exporter.traces.headers.a",
        "***",
        &format!("{g}HEADERS"),
    );
    assert_entry(
        &c,
        "exporter.logs.compression",
        "zstd",
        &format!("{l}COMPRESSION"),
    );
    assert_entry(
        &c,
        "exporter.traces.compression",
        "gzip",
        &format!("{g}COMPRESSION"),
    );
    assert_entry(
        &c,
        "exporter.logs.timeout_ms",
        "300",
        &format!("{l}TIMEOUT"),
    );
    assert_entry(
        &c,
        "exporter.traces.timeout_ms",
        "100",
        &format!("{g}TIMEOUT"),
    );
    // The traces' own settings stay theirs.
    let c = effective(&[
        ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://traces:4317"),
        ("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "t=1"),
    ]);
    assert_eq!(
        get(&c, "exporter.logs.endpoint"),
        ("http://localhost:4317".to_owned(), "default".to_owned())
    );
    assert!(c.get("exporter.logs.headers.t").is_none(), "{c}");
    // One compression level for both: it must suit each codec.
    let e = with_env(&[
        ("OTEL_EXPORTER_OTLP_LOGS_COMPRESSION", "gzip"),
        ("OTEL_EXPORTER_OTLP_TRACES_COMPRESSION", "zstd"),
    ])
    .compression_level(15)
    .build()
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("compression_level") && e.contains("gzip levels"),
        "{e}"
    );
}

#[test]
fn logs_exporter_none_turns_off_logs_only() {
    let var = "OTEL_LOGS_EXPORTER";
    let c = effective(&[
        (var, "none"),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4317"),
    ]);
    assert_entry(&c, "exporter.logs.enabled", "false", var);
    assert_entry(
        &c,
        "exporter.logs.endpoint",
        "none: export off, the caller drains",
        var,
    );
    assert_eq!(
        get(&c, "exporter.traces.enabled"),
        ("true".to_owned(), "default".to_owned())
    );
    assert_eq!(get(&c, "exporter.traces.endpoint").0, "http://c:4317");
    assert!(c.warnings().is_empty(), "{c}");
    // And the other way round.
    let c = effective(&[("OTEL_TRACES_EXPORTER", "none")]);
    assert_eq!(get(&c, "exporter.traces.enabled").0, "false");
    assert_eq!(get(&c, "exporter.logs.enabled").0, "true");
    // An engine built so exports traces (workers run).
    let engine = with_env(&[
        (var, "none"),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9"),
    ])
    .build()
    .unwrap();
    assert_eq!(get(engine.config(), "exporter.logs.enabled").0, "false");
    engine.shutdown(std::time::Duration::from_millis(100)).ok();
}

#[test]
fn export_false_turns_off_every_signal() {
    let c = with_env(&[("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT", "http://logs:4317")])
        .export(false)
        .effective_config()
        .unwrap();
    for signal in ["traces", "logs"] {
        assert_eq!(
            get(&c, &format!("exporter.{signal}.enabled")),
            ("false".to_owned(), "builder .export()".to_owned()),
            "{signal}"
        );
        assert_eq!(
            get(&c, &format!("exporter.{signal}.endpoint")).0,
            "none: export off, the caller drains"
        );
    }
    // It beats a signal's own `enabled` from below, too.
    let c = with_env(&[("OTEL_LOGS_EXPORTER", "otlp")])
        .config_toml(
            "otlpx.toml",
            "[exporter.logs]
enabled = true
",
        )
        .export(false)
        .effective_config()
        .unwrap();
    assert_eq!(get(&c, "exporter.logs.enabled").0, "false");
}

#[test]
fn blrp_variables_and_their_defaults() {
    let c = effective(&[]);
    for (key, value) in [
        ("schedule_delay_ms", "1000"),
        ("export_timeout_ms", "30000"),
        ("max_queue_size", "2048"),
        ("max_export_batch_size", "512"),
    ] {
        assert_eq!(
            get(&c, &format!("batch.logs.{key}")),
            (value.to_owned(), "default".to_owned()),
            "{key}"
        );
    }
    assert_eq!(
        get(&c, "logs.ring_bytes_per_cpu"),
        ((1 << 20).to_string(), "default".to_owned())
    );
    let c = effective(&[
        ("OTEL_BLRP_SCHEDULE_DELAY", "250"),
        ("OTEL_BLRP_EXPORT_TIMEOUT", "7000"),
        ("OTEL_BLRP_MAX_QUEUE_SIZE", "4096"),
        ("OTEL_BLRP_MAX_EXPORT_BATCH_SIZE", "128"),
    ]);
    assert!(c.warnings().is_empty(), "{:?}", c.warnings());
    for (key, value, var) in [
        ("schedule_delay_ms", "250", "OTEL_BLRP_SCHEDULE_DELAY"),
        ("export_timeout_ms", "7000", "OTEL_BLRP_EXPORT_TIMEOUT"),
        ("max_queue_size", "4096", "OTEL_BLRP_MAX_QUEUE_SIZE"),
        (
            "max_export_batch_size",
            "128",
            "OTEL_BLRP_MAX_EXPORT_BATCH_SIZE",
        ),
    ] {
        assert_entry(&c, &format!("batch.logs.{key}"), value, var);
    }
    // The traces' batching is the BSP's alone.
    assert_eq!(
        get(&c, "batch.schedule_delay_ms"),
        ("1000".to_owned(), "default".to_owned())
    );
    assert_eq!(get(&c, "batch.max_export_batch_size").0, "512");
    assert_eq!(get(&c, "batch.export_timeout_ms").0, "30000");
    // The logs' rings from the BLRP queue as the traces' from the BSP's.
    let rings = std::thread::available_parallelism().map_or(1, |n| n.get());
    let want = (4096 * 512 / rings).next_power_of_two().max(4096);
    assert_entry(
        &c,
        "logs.ring_bytes_per_cpu",
        &want.to_string(),
        "OTEL_BLRP_MAX_QUEUE_SIZE",
    );
    assert_eq!(
        get(&c, "workers.ring_bytes_per_cpu"),
        ((1 << 20).to_string(), "default".to_owned())
    );
    // An explicit ring size sizes both.
    let c = with_env(&[
        ("OTEL_BLRP_MAX_QUEUE_SIZE", "4096"),
        ("OTEL_BSP_MAX_QUEUE_SIZE", "4096"),
    ])
    .ring_bytes_per_cpu(1 << 16)
    .effective_config()
    .unwrap();
    assert_eq!(get(&c, "workers.ring_bytes_per_cpu").0, "65536");
    assert_eq!(
        get(&c, "logs.ring_bytes_per_cpu"),
        (
            "65536".to_owned(),
            "builder .ring_bytes_per_cpu()".to_owned()
        )
    );
    // `max_batch_bytes` is one for both.
    let c = effective(&[]);
    assert_eq!(get(&c, "batch.max_batch_bytes").0, "2097152");
    assert!(c.get("batch.logs.max_batch_bytes").is_none());
}

#[test]
fn log_record_limits_and_their_generic_fallback() {
    let c = effective(&[]);
    assert_eq!(
        get(&c, "limits.log_record_attribute_count"),
        ("128".to_owned(), "default".to_owned())
    );
    assert_eq!(
        get(&c, "limits.log_record_attribute_value_length"),
        ("none".to_owned(), "default".to_owned())
    );
    let c = effective(&[
        ("OTEL_LOGRECORD_ATTRIBUTE_COUNT_LIMIT", "7"),
        ("OTEL_LOGRECORD_ATTRIBUTE_VALUE_LENGTH_LIMIT", "64"),
        ("OTEL_ATTRIBUTE_COUNT_LIMIT", "9"),
    ]);
    assert_entry(
        &c,
        "limits.log_record_attribute_count",
        "7",
        "OTEL_LOGRECORD_ATTRIBUTE_COUNT_LIMIT",
    );
    assert_entry(
        &c,
        "limits.log_record_attribute_value_length",
        "64",
        "OTEL_LOGRECORD_ATTRIBUTE_VALUE_LENGTH_LIMIT",
    );
    // The span limits do not take the log record ones.
    assert_entry(
        &c,
        "limits.span_attribute_count",
        "9",
        "OTEL_ATTRIBUTE_COUNT_LIMIT",
    );
    assert_eq!(get(&c, "limits.span_attribute_value_length").0, "none");
    // The generic limits stand in where the log record ones are unset.
    let c = effective(&[
        ("OTEL_ATTRIBUTE_COUNT_LIMIT", "9"),
        ("OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT", "99"),
    ]);
    assert_entry(
        &c,
        "limits.log_record_attribute_count",
        "9",
        "OTEL_ATTRIBUTE_COUNT_LIMIT",
    );
    assert_entry(
        &c,
        "limits.log_record_attribute_value_length",
        "99",
        "OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT",
    );
    assert!(c.warnings().is_empty(), "{:?}", c.warnings());
}

#[test]
fn logs_min_severity_variable() {
    let var = "OTLPX_LOGS_MIN_SEVERITY";
    assert_eq!(
        get(&effective(&[]), "logs.min_severity"),
        ("0".to_owned(), "default".to_owned())
    );
    for (value, n) in [
        ("trace", "1"),
        ("debug", "5"),
        ("INFO", "9"),
        ("warn", "13"),
        ("Error", "17"),
        ("fatal", "21"),
        ("1", "1"),
        ("24", "24"),
    ] {
        let c = effective(&[(var, value)]);
        assert_entry(&c, "logs.min_severity", n, var);
        assert!(c.warnings().is_empty(), "{:?}", c.warnings());
    }
    for value in ["abc", "0", "25", "warning"] {
        let e = error(&[(var, value)]);
        assert_eq!(
            e,
            format!(
                "environment variable {var}={value:?}: expected trace, debug, info, warn, \
                 error, fatal or a severity number from 1 to 24"
            )
        );
        // Ignored: the default (or the file's value) applies.
        let c = with_env(&[(var, value)])
            .config_toml(
                "otlpx.toml",
                "[logs]
min_severity = \"error\"
",
            )
            .effective_config()
            .unwrap();
        assert_eq!(get(&c, "logs.min_severity").0, "17");
        assert!(c.warnings()[0].contains(var), "{c}");
    }
}

#[test]
fn service_name_and_resource_attributes_reach_the_resource() {
    let engine = recording(&[
        ("OTEL_SERVICE_NAME", "checkout"),
        (
            "OTEL_RESOURCE_ATTRIBUTES",
            "service.name=ignored,deployment.environment.name=prod%2Ceu,team=pay%20ments",
        ),
    ]);
    let c = engine.config();
    assert_entry(c, "resource.service_name", "checkout", "OTEL_SERVICE_NAME");
    assert_entry(
        c,
        "resource.attributes.team",
        "pay ments",
        "OTEL_RESOURCE_ATTRIBUTES",
    );
    engine.tracer("t", "").start("s").end();
    let req = drained(&engine);
    assert_eq!(
        resource_string(&req, "service.name").as_deref(),
        Some("checkout")
    );
    assert_eq!(
        resource_string(&req, "deployment.environment.name").as_deref(),
        Some("prod,eu")
    );
    assert_eq!(resource_string(&req, "team").as_deref(), Some("pay ments"));
    // Without OTEL_SERVICE_NAME, the attribute's service.name is used.
    let engine = recording(&[("OTEL_RESOURCE_ATTRIBUTES", "service.name=from-attrs")]);
    engine.tracer("t", "").start("s").end();
    assert_eq!(
        resource_string(&drained(&engine), "service.name").as_deref(),
        Some("from-attrs")
    );
    let e = error(&[("OTEL_RESOURCE_ATTRIBUTES", "a=b,broken")]);
    assert!(
        e.contains("OTEL_RESOURCE_ATTRIBUTES") && e.contains("no `=`"),
        "{e}"
    );
}

#[test]
fn samplers() {
    let count = |vars: &[(&str, &str)], parent_sampled: Option<bool>| -> u64 {
        let engine = recording(vars);
        let tracer = engine.tracer("t", "");
        let parent = parent_sampled.map(|s| {
            otlpx::SpanContext::from_traceparent(&format!(
                "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-0{}",
                u8::from(s)
            ))
            .unwrap()
        });
        for _ in 0..2000 {
            match &parent {
                Some(p) => tracer.span("s").parent(p).start().end(),
                None => tracer.start("s").end(),
            }
        }
        engine.stats().recorded
    };
    let s = "OTEL_TRACES_SAMPLER";
    assert_eq!(count(&[], None), 2000, "default: parentbased_always_on");
    assert_eq!(count(&[], Some(false)), 0);
    assert_eq!(count(&[(s, "always_off")], None), 0);
    assert_eq!(count(&[(s, "always_on")], Some(false)), 2000);
    assert_eq!(count(&[(s, "parentbased_always_off")], None), 0);
    assert_eq!(count(&[(s, "parentbased_always_off")], Some(true)), 2000);
    let half = count(
        &[(s, "traceidratio"), ("OTEL_TRACES_SAMPLER_ARG", "0.5")],
        None,
    );
    assert!((800..1200).contains(&half), "{half}");
    let pb = [
        (s, "parentbased_traceidratio"),
        ("OTEL_TRACES_SAMPLER_ARG", "0"),
    ];
    assert_eq!(count(&pb, None), 0);
    assert_eq!(count(&pb, Some(true)), 2000);
    // Without an argument, the ratio is 1.
    assert_eq!(count(&[(s, "traceidratio")], None), 2000);
    let c = effective(&[(s, "traceidratio"), ("OTEL_TRACES_SAMPLER_ARG", "0.25")]);
    assert_entry(&c, "sampling.sampler", "traceidratio (0.25)", s);
    // Defined by the specification, not by otlpx: reported, default kept.
    for name in ["jaeger_remote", "parentbased_jaeger_remote", "xray"] {
        let c = effective(&[(s, name)]);
        assert_eq!(get(&c, "sampling.sampler").0, "parentbased_always_on");
        assert_eq!(c.warnings().len(), 1, "{:?}", c.warnings());
        assert!(c.warnings()[0].contains(name));
    }
    let e = error(&[(s, "sometimes")]);
    assert!(e.contains(s) && e.contains("sometimes"), "{e}");
    let e = error(&[(s, "traceidratio"), ("OTEL_TRACES_SAMPLER_ARG", "1.5")]);
    assert!(e.contains("1.5"), "{e}");
}

#[test]
fn batch_processor_variables() {
    let c = effective(&[
        ("OTEL_BSP_SCHEDULE_DELAY", "250"),
        ("OTEL_BSP_EXPORT_TIMEOUT", "7000"),
        ("OTEL_BSP_MAX_QUEUE_SIZE", "4096"),
        ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "128"),
        ("OTEL_EXPORTER_OTLP_TIMEOUT", "9000"),
    ]);
    assert_entry(
        &c,
        "batch.schedule_delay_ms",
        "250",
        "OTEL_BSP_SCHEDULE_DELAY",
    );
    assert_entry(
        &c,
        "batch.export_timeout_ms",
        "7000",
        "OTEL_BSP_EXPORT_TIMEOUT",
    );
    assert_entry(
        &c,
        "batch.max_export_batch_size",
        "128",
        "OTEL_BSP_MAX_EXPORT_BATCH_SIZE",
    );
    // The queue is bytes per CPU in otlpx: 4096 spans at 512 bytes, over
    // the rings, rounded up to a power of two.
    let rings = std::thread::available_parallelism().map_or(1, |n| n.get());
    let want = (4096 * 512 / rings).next_power_of_two().max(4096);
    assert_entry(
        &c,
        "workers.ring_bytes_per_cpu",
        &want.to_string(),
        "OTEL_BSP_MAX_QUEUE_SIZE",
    );
    // An explicit ring size wins over the queue size.
    let c = with_env(&[("OTEL_BSP_MAX_QUEUE_SIZE", "4096")])
        .ring_bytes_per_cpu(1 << 16)
        .effective_config()
        .unwrap();
    assert_eq!(get(&c, "workers.ring_bytes_per_cpu").0, "65536");
}

#[test]
fn limit_variables_and_their_effect() {
    let mut vars = Vec::new();
    let names = [
        (
            "OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT",
            "span_attribute_value_length",
            "4",
        ),
        (
            "OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT",
            "span_attribute_count",
            "2",
        ),
        ("OTEL_SPAN_EVENT_COUNT_LIMIT", "span_event_count", "1"),
        ("OTEL_SPAN_LINK_COUNT_LIMIT", "span_link_count", "3"),
        (
            "OTEL_EVENT_ATTRIBUTE_COUNT_LIMIT",
            "event_attribute_count",
            "5",
        ),
        (
            "OTEL_LINK_ATTRIBUTE_COUNT_LIMIT",
            "link_attribute_count",
            "6",
        ),
    ];
    for (var, _, v) in names {
        vars.push((var, v));
    }
    let engine = recording(&vars);
    for (var, key, v) in names {
        assert_entry(engine.config(), &format!("limits.{key}"), v, var);
    }
    let tracer = engine.tracer("t", "");
    let mut span = tracer.start("s");
    span.set_attribute("a", "abcdefgh");
    span.set_attribute("b", 1);
    span.set_attribute("c", 2);
    span.add_event("e1", &[]);
    span.add_event("e2", &[]);
    span.end();
    let req = drained(&engine);
    let s = &req.resource_spans[0].scope_spans[0].spans[0];
    assert_eq!(s.attributes.len(), 2);
    assert_eq!(s.dropped_attributes_count, 1);
    assert_eq!(s.events.len(), 1);
    assert_eq!(s.dropped_events_count, 1);
    match s.attributes[0]
        .value
        .as_ref()
        .unwrap()
        .value
        .as_ref()
        .unwrap()
    {
        Av::StringValue(v) => assert_eq!(v, "abcd"),
        other => panic!("{other:?}"),
    }
    // The generic limits stand in where a specific one is not set.
    let c = effective(&[
        ("OTEL_ATTRIBUTE_COUNT_LIMIT", "9"),
        ("OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT", "99"),
        ("OTEL_LINK_ATTRIBUTE_COUNT_LIMIT", "3"),
    ]);
    assert_entry(
        &c,
        "limits.span_attribute_count",
        "9",
        "OTEL_ATTRIBUTE_COUNT_LIMIT",
    );
    assert_entry(
        &c,
        "limits.event_attribute_count",
        "9",
        "OTEL_ATTRIBUTE_COUNT_LIMIT",
    );
    assert_entry(
        &c,
        "limits.link_attribute_count",
        "3",
        "OTEL_LINK_ATTRIBUTE_COUNT_LIMIT",
    );
    assert_entry(
        &c,
        "limits.span_attribute_value_length",
        "99",
        "OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT",
    );
    assert_eq!(
        get(&c, "limits.span_event_count"),
        ("128".to_owned(), "default".to_owned())
    );
}

#[test]
fn sdk_disabled_records_nothing_and_exports_nothing() {
    for value in ["true", "TRUE", "True"] {
        let engine = with_env(&[
            ("OTEL_SDK_DISABLED", value),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9"),
        ])
        .build()
        .unwrap();
        let tracer = engine.tracer("t", "");
        let parent = otlpx::SpanContext::from_traceparent(
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        )
        .unwrap();
        let mut span = tracer.span("s").parent(&parent).start();
        assert!(!span.is_recording());
        // The parent's context still propagates.
        assert_eq!(span.context().trace_id, parent.trace_id);
        span.set_attribute("k", "v");
        span.end();
        tracer.start("root").end();
        let stats = engine.stats();
        assert_eq!(
            (stats.recorded, stats.in_rings, stats.export.requests),
            (0, 0, 0)
        );
        assert!(engine.worker_cores().is_empty(), "no workers run");
        assert!(engine.flush(std::time::Duration::from_millis(10)).is_err());
    }
    let engine = recording(&[("OTEL_SDK_DISABLED", "false")]);
    engine.tracer("t", "").start("s").end();
    assert_eq!(engine.stats().recorded, 1);
}

#[test]
fn bad_values_name_the_variable_and_the_value() {
    let certificate = "/no/such/dir/ca.pem";
    for (var, value, reason) in [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "not a url", "URL"),
        ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "ftp://c:4317", "http"),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:99999", "port"),
        ("OTEL_BSP_MAX_QUEUE_SIZE", "abc", "whole number"),
        ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "0", "at least 1"),
        ("OTEL_BSP_SCHEDULE_DELAY", "1.5", "milliseconds"),
        ("OTEL_EXPORTER_OTLP_TIMEOUT", "-5", "milliseconds"),
        ("OTEL_EXPORTER_OTLP_TIMEOUT", "0", "more than zero"),
        ("OTEL_EXPORTER_OTLP_CERTIFICATE", certificate, "cannot read"),
        ("OTEL_EXPORTER_OTLP_CLIENT_KEY", certificate, "cannot read"),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "thrift", "grpc"),
        ("OTEL_EXPORTER_OTLP_COMPRESSION", "brotli", "gzip"),
        ("OTEL_SPAN_EVENT_COUNT_LIMIT", "-1", "whole number"),
        ("OTEL_TRACES_SAMPLER", "random", "always_on"),
        ("OTLPX_ADMIN_ADDRESS", "localhost", "IP address"),
    ] {
        let e = error(&[(var, value)]);
        let quoted = format!("{value:?}");
        assert!(
            e.contains(&format!("environment variable {var}={quoted}")) && e.contains(reason),
            "{var}={value}: {e}"
        );
    }
    // A client certificate without its key.
    let cert = temp_file("lonely-cert.pem", "x");
    let e = error(&[(
        "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE",
        cert.to_str().unwrap(),
    )]);
    assert!(
        e.contains("OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE") && e.contains("key"),
        "{e}"
    );
    // A malformed header names the variable but never echoes the value.
    let e = error(&[(
        "OTEL_EXPORTER_OTLP_HEADERS",
        "authorization=Bearer%20s3cret,oops",
    )]);
    assert!(
        e.contains("OTEL_EXPORTER_OTLP_HEADERS") && !e.contains("s3cret"),
        "{e}"
    );
    let e = error(&[(
        "OTEL_EXPORTER_OTLP_HEADERS",
        "authorization=Bearer%0As3cret",
    )]);
    assert!(e.contains("authorization") && !e.contains("s3cret"), "{e}");
}

#[test]
fn http_json_is_reported_and_protobuf_sent() {
    let c = effective(&[("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")]);
    assert_eq!(get(&c, "exporter.traces.protocol").0, "http/protobuf");
    assert_eq!(c.warnings().len(), 1);
    assert!(c.warnings()[0].contains("http/json"), "{:?}", c.warnings());
}

#[test]
fn empty_variables_count_as_unset() {
    let c = effective(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", ""),
        ("OTEL_BSP_MAX_QUEUE_SIZE", "  "),
        ("OTEL_SERVICE_NAME", ""),
    ]);
    assert_eq!(get(&c, "exporter.traces.endpoint").1, "default");
    assert_eq!(get(&c, "workers.ring_bytes_per_cpu").1, "default");
    assert_eq!(get(&c, "resource.service_name").1, "default");
}

#[test]
fn admin_address_variable() {
    let c = effective(&[("OTLPX_ADMIN_ADDRESS", "127.0.0.1:0")]);
    assert_entry(&c, "admin.enabled", "true", "OTLPX_ADMIN_ADDRESS");
    assert_entry(&c, "admin.address", "127.0.0.1:0", "OTLPX_ADMIN_ADDRESS");
}

#[test]
fn an_invalid_value_warns_and_the_default_applies() {
    let vars = [("OTEL_BSP_SCHEDULE_DELAY", "abc")];
    let engine = recording(&vars);
    let c = engine.config();
    assert_eq!(
        get(c, "batch.schedule_delay_ms"),
        ("1000".to_owned(), "default".to_owned())
    );
    assert_eq!(
        c.warnings(),
        [
            "environment variable OTEL_BSP_SCHEDULE_DELAY=\"abc\": expected a whole number of \
          milliseconds, 0 or more; ignored, using the default (or the configuration file's value)"
        ]
    );
    assert_eq!(engine.stats().config_warnings, 1);
    assert!(
        engine
            .stats()
            .prometheus_text()
            .contains("otlpx_config_warnings 1\n")
    );
    // Strict mode: the same text, as an error.
    let e = with_env(&vars).strict_env(true).build().unwrap_err();
    assert_eq!(
        e.to_string(),
        "environment variable OTEL_BSP_SCHEDULE_DELAY=\"abc\": expected a whole number of \
         milliseconds, 0 or more"
    );
    // A value out of range falls through to the file, not only to the
    // default; the builder and the file stay strict.
    let file = "[batch]\nschedule_delay_ms = 250\n";
    let c = with_env(&[("OTEL_BSP_SCHEDULE_DELAY", "0")])
        .config_toml("otlpx.toml", file)
        .effective_config()
        .unwrap();
    assert_eq!(get(&c, "batch.schedule_delay_ms").0, "250");
    assert!(c.warnings()[0].contains("more than zero"), "{c}");
    let e = with_env(&[])
        .config_toml("otlpx.toml", "[batch]\nschedule_delay_ms = 0\n")
        .build()
        .unwrap_err();
    assert!(e.to_string().contains("otlpx.toml:2"), "{e}");
    let e = with_env(&[])
        .schedule_delay(std::time::Duration::ZERO)
        .build()
        .unwrap_err();
    assert!(e.to_string().contains("builder .schedule_delay"), "{e}");
    // Several bad values: each reported, each ignored.
    let c = with_env(&[
        ("OTEL_BSP_SCHEDULE_DELAY", "abc"),
        ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "0"),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "ftp://x"),
    ])
    .effective_config()
    .unwrap();
    assert_eq!(c.warnings().len(), 3, "{c}");
    assert_eq!(get(&c, "batch.max_export_batch_size").0, "512");
    assert_eq!(
        get(&c, "exporter.traces.endpoint"),
        ("http://localhost:4317".to_owned(), "default".to_owned())
    );
}

#[test]
fn no_endpoint_exports_to_the_specification_default() {
    let c = effective(&[]);
    assert_eq!(
        get(&c, "exporter.traces.endpoint"),
        ("http://localhost:4317".to_owned(), "default".to_owned())
    );
    assert_eq!(
        get(&c, "exporter.traces.enabled"),
        ("true".to_owned(), "default".to_owned())
    );
    let c = effective(&[("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")]);
    assert_eq!(
        get(&c, "exporter.traces.endpoint"),
        (
            "http://localhost:4318/v1/traces".to_owned(),
            "default".to_owned()
        )
    );
}

#[test]
fn traces_exporter_none_records_without_exporting() {
    let var = "OTEL_TRACES_EXPORTER";
    for value in ["none", " none ", "none,none"] {
        // Logs and metrics off too: nothing is exported, and no worker
        // runs.
        let engine = with_env(&[
            (var, value),
            ("OTEL_LOGS_EXPORTER", "none"),
            ("OTEL_METRICS_EXPORTER", "none"),
        ])
        .build()
        .unwrap();
        let c = engine.config();
        assert_entry(c, "exporter.traces.enabled", "false", var);
        assert_entry(
            c,
            "exporter.traces.endpoint",
            "none: export off, the caller drains",
            var,
        );
        assert!(engine.worker_cores().is_empty(), "no workers");
        engine.tracer("t", "").start("s").end();
        assert_eq!(drained(&engine).resource_spans.len(), 1);
        assert_eq!(
            engine.flush(std::time::Duration::from_millis(10)),
            Err(otlpx::FlushError::NotExporting)
        );
    }
    // Traces off alone: the logs are still exported (workers run), and
    // spans are no-ops, as with a no-op tracer provider: recorded nowhere
    // (they would only fill their rings), counted nowhere.
    let engine = with_env(&[
        (var, "none"),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9"),
    ])
    .build()
    .unwrap();
    assert_eq!(get(engine.config(), "exporter.logs.enabled").0, "true");
    let tracer = engine.tracer("t", "");
    let span = tracer.start("s");
    assert!(!span.is_recording());
    span.end();
    assert_eq!(drained(&engine).resource_spans.len(), 0);
    assert_eq!(engine.stats().recorded, 0);
    engine.shutdown(std::time::Duration::from_millis(100)).ok();
    // `none` beats an endpoint, and the builder beats the environment.
    let c = effective(&[
        (var, "none"),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4317"),
    ]);
    assert_eq!(get(&c, "exporter.traces.enabled").0, "false");
    let c = with_env(&[(var, "none")])
        .export(true)
        .effective_config()
        .unwrap();
    assert_eq!(get(&c, "exporter.traces.enabled").0, "true");
    // otlp is the default; the specification's other exporters are
    // reported and OTLP is used.
    let c = effective(&[(var, "otlp")]);
    assert_entry(&c, "exporter.traces.enabled", "true", var);
    assert!(c.warnings().is_empty(), "{c}");
    for other in ["console", "zipkin", "otlp,console"] {
        let c = effective(&[(var, other)]);
        assert_entry(&c, "exporter.traces.enabled", "true", var);
        assert!(
            c.warnings()[0].contains("exporting over OTLP instead"),
            "{c}"
        );
    }
    let e = error(&[(var, "carrier-pigeon")]);
    assert!(e.contains("expected otlp or none"), "{e}");
    // The metrics form turns the metrics off alone.
    let c = effective(&[("OTEL_METRICS_EXPORTER", "none")]);
    assert_eq!(get(&c, "exporter.metrics.enabled").0, "false");
    assert_eq!(get(&c, "exporter.traces.enabled").0, "true");
    assert!(c.warnings().is_empty(), "{c}");
}

#[test]
fn export_false_records_for_drain_traces() {
    let engine = with_env(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4317")])
        .export(false)
        .build()
        .unwrap();
    assert_eq!(
        get(engine.config(), "exporter.traces.enabled"),
        ("false".to_owned(), "builder .export()".to_owned())
    );
    engine.tracer("t", "").start("s").end();
    assert_eq!(drained(&engine).resource_spans.len(), 1);
    assert_eq!(engine.stats().drained_by_caller, 1);
}

#[test]
fn shutdown_timeout_variable() {
    let var = "OTLPX_SHUTDOWN_TIMEOUT_MS";
    assert_eq!(
        get(&effective(&[]), "exporter.shutdown_timeout_ms"),
        ("5000".to_owned(), "default".to_owned())
    );
    assert_entry(
        &effective(&[(var, "250")]),
        "exporter.shutdown_timeout_ms",
        "250",
        var,
    );
    let c = with_env(&[(var, "250")])
        .shutdown_timeout(std::time::Duration::from_millis(40))
        .effective_config()
        .unwrap();
    assert_eq!(get(&c, "exporter.shutdown_timeout_ms").0, "40");
    let e = error(&[(var, "soon")]);
    assert!(e.contains("milliseconds"), "{e}");
}
