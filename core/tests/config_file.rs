//! The TOML file: every section read with `file:line` sources, unknown
//! keys refused by name, bad values naming `file:line`, the file found
//! through `OTLPX_CONFIG` / `CONFIG_PATH`, and the precedence rule
//! builder > environment > file > defaults.

use otlpx::config::{EffectiveConfig, Source};
use otlpx::{Engine, EngineBuilder};
use std::path::PathBuf;
use std::time::Duration;

const FULL: &str = r#"# every section
disabled = false

[resource]
service_name = "billing"
attributes = { "deployment.environment.name" = "staging", team = "pay" }

[exporter]
endpoint = "http://collector:4318"
protocol = "http/protobuf"
compression = "zstd"
compression_level = 3
timeout_ms = 1500
connections = 3
max_in_flight = 5
max_in_flight_bytes = 1000000
overflow = "drop_newest"
headers = { "x-tenant" = "acme" }

[exporter.traces]
timeout_ms = 1200

[exporter.logs]
compression = "gzip"

[batch]
schedule_delay_ms = 200
export_timeout_ms = 20000
max_export_batch_size = 256
max_batch_bytes = 1048576

[batch.logs]
schedule_delay_ms = 400

[logs]
min_severity = "info"

[sampling]
sampler = "parentbased_traceidratio"
ratio = 0.5

[limits]
span_attribute_count = 64
span_event_count = 32
span_link_count = 16
event_attribute_count = 8
link_attribute_count = 4
attribute_value_length = 1024

[workers]
count = 1
pin = false
rings = 2
ring_bytes_per_cpu = 65536

[admin]
address = "127.0.0.1:0"
ready_window_ms = 5000

[retry]
enabled = true
initial_backoff_ms = 250
max_backoff_ms = 4000
"#;

fn toml(text: &str) -> EngineBuilder {
    Engine::builder()
        .environment(Vec::<(String, String)>::new())
        .config_toml("otlpx.toml", text)
}

fn line_of(text: &str, needle: &str) -> usize {
    let exact = text.lines().position(|l| l == needle);
    exact
        .or_else(|| text.lines().position(|l| l.contains(needle)))
        .expect(needle)
        + 1
}

fn at(c: &EffectiveConfig, key: &str) -> (String, Source) {
    let e = c.get(key).unwrap_or_else(|| panic!("no {key} in\n{c}"));
    (e.value.clone(), e.source.clone())
}

fn file_line(line: usize) -> Source {
    Source::File {
        path: PathBuf::from("otlpx.toml"),
        line,
    }
}

#[test]
fn every_section_with_its_line() {
    let c = toml(FULL)
        .effective_config()
        .unwrap_or_else(|e| panic!("{e}"));
    for (key, value, needle) in [
        ("disabled", "false", "disabled ="),
        ("resource.service_name", "billing", "service_name ="),
        ("resource.attributes.team", "pay", "attributes ="),
        (
            "exporter.traces.endpoint",
            "http://collector:4318/v1/traces",
            "endpoint =",
        ),
        ("exporter.traces.protocol", "http/protobuf", "protocol ="),
        ("exporter.traces.compression", "zstd", "compression ="),
        ("exporter.compression_level", "3", "compression_level"),
        ("exporter.traces.timeout_ms", "1200", "timeout_ms = 1200"),
        ("exporter.connections", "3", "connections"),
        ("exporter.max_in_flight", "5", "max_in_flight = 5"),
        (
            "exporter.max_in_flight_bytes",
            "1000000",
            "max_in_flight_bytes",
        ),
        ("exporter.overflow", "drop_newest", "overflow ="),
        ("exporter.traces.headers.x-tenant", "***", "headers ="),
        ("batch.schedule_delay_ms", "200", "schedule_delay_ms"),
        ("batch.export_timeout_ms", "20000", "export_timeout_ms"),
        (
            "batch.max_export_batch_size",
            "256",
            "max_export_batch_size",
        ),
        ("batch.max_batch_bytes", "1048576", "max_batch_bytes"),
        (
            "exporter.logs.compression",
            "gzip",
            "compression = \"gzip\"",
        ),
        (
            "exporter.logs.endpoint",
            "http://collector:4318/v1/logs",
            "endpoint =",
        ),
        (
            "batch.logs.schedule_delay_ms",
            "400",
            "schedule_delay_ms = 400",
        ),
        ("logs.min_severity", "9", "min_severity"),
        (
            "sampling.sampler",
            "parentbased_traceidratio (0.5)",
            "sampler =",
        ),
        ("limits.span_attribute_count", "64", "span_attribute_count"),
        ("limits.span_event_count", "32", "span_event_count"),
        ("limits.span_link_count", "16", "span_link_count"),
        ("limits.event_attribute_count", "8", "event_attribute_count"),
        ("limits.link_attribute_count", "4", "link_attribute_count"),
        (
            "limits.span_attribute_value_length",
            "1024",
            "attribute_value_length",
        ),
        ("workers.count", "1", "count = 1"),
        ("workers.pin", "false", "pin ="),
        ("workers.rings", "2", "rings ="),
        ("workers.ring_bytes_per_cpu", "65536", "ring_bytes_per_cpu"),
        ("admin.enabled", "true", "address ="),
        ("admin.address", "127.0.0.1:0", "address ="),
        ("admin.ready_window_ms", "5000", "ready_window_ms"),
        ("retry.enabled", "true", "enabled = true"),
        ("retry.initial_backoff_ms", "250", "initial_backoff_ms"),
        ("retry.max_backoff_ms", "4000", "max_backoff_ms"),
    ] {
        assert_eq!(
            at(&c, key),
            (value.to_owned(), file_line(line_of(FULL, needle))),
            "{key}"
        );
    }
    assert!(c.warnings().is_empty(), "{:?}", c.warnings());
    assert!(
        !c.to_string().contains("acme"),
        "a header value shown:\n{c}"
    );
}

#[test]
fn the_file_configures_a_running_engine() {
    let engine = toml(FULL).build().unwrap_or_else(|e| panic!("{e}"));
    assert!(
        engine.admin_address().is_some(),
        "admin endpoint from the file"
    );
    assert_eq!(engine.stats().rings.len(), 2);
    engine.shutdown(Duration::from_millis(100)).ok();
}

#[test]
fn unknown_keys_and_sections_are_named_with_their_line() {
    for (text, key, line) in [
        (
            "[exporter]\nendpoint = \"http://c:4317\"\nendpont = \"x\"\n",
            "exporter.endpont",
            3,
        ),
        ("[exporters]\nendpoint = \"x\"\n", "exporters", 1),
        ("\n\n[batch]\nmax_queue = 1\n", "batch.max_queue", 4),
        (
            "[exporter.traces]\nconnections = 2\n",
            "exporter.traces.connections",
            2,
        ),
        ("[exporter.spans]\nendpoint = \"x\"\n", "exporter.spans", 1),
        (
            "[limits]\nspan_attribute_counts = 1\n",
            "limits.span_attribute_counts",
            2,
        ),
        ("[admin]\nport = 9464\n", "admin.port", 2),
        ("[retry]\nmax_attempts = 5\n", "retry.max_attempts", 2),
        ("[logs]\nmin_severity = 9\nlevel = 9\n", "logs.level", 3),
        (
            "[exporter.logs]\nconnections = 2\n",
            "exporter.logs.connections",
            2,
        ),
        ("colour = \"blue\"\n", "colour", 1),
    ] {
        let e = toml(text).build().unwrap_err().to_string();
        assert!(
            e.starts_with(&format!("otlpx.toml:{line}: {key} = ")) && e.contains("unknown key"),
            "{text:?}: {e}"
        );
    }
}

#[test]
fn bad_values_name_file_line_key_and_value() {
    for (text, line, key, reason) in [
        (
            "[batch]\n\nmax_queue_size = \"abc\"\n",
            3,
            "batch.max_queue_size",
            "whole number",
        ),
        (
            "[batch]\nmax_queue_size = -4\n",
            2,
            "batch.max_queue_size",
            "whole number",
        ),
        (
            "[exporter]\ntimeout_ms = -5\n",
            2,
            "exporter.timeout_ms",
            "milliseconds",
        ),
        (
            "[exporter]\nendpoint = \"not a url\"\n",
            2,
            "exporter.endpoint",
            "URL",
        ),
        (
            "[exporter]\ncertificate = \"/no/such/ca.pem\"\n",
            2,
            "exporter.certificate",
            "cannot read",
        ),
        (
            "[exporter]\nprotocol = \"udp\"\n",
            2,
            "exporter.protocol",
            "grpc",
        ),
        (
            "[exporter]\ninsecure = \"yes\"\n",
            2,
            "exporter.insecure",
            "true or false",
        ),
        (
            "[sampling]\nsampler = \"traceidratio\"\nratio = 2.0\n",
            2,
            "sampling.sampler",
            "0 to 1",
        ),
        (
            "[workers]\nring_bytes_per_cpu = 1000\n",
            2,
            "workers.ring_bytes_per_cpu",
            "power of two",
        ),
        (
            "[workers]\ncores = [\"a\"]\n",
            2,
            "workers.cores",
            "core numbers",
        ),
        (
            "[admin]\naddress = \"localhost\"\n",
            2,
            "admin.address",
            "IP address",
        ),
        (
            "[retry]\ninitial_backoff_ms = 0\n",
            2,
            "retry.initial_backoff_ms",
            "more than zero",
        ),
        (
            "[retry]\ninitial_backoff_ms = 900\nmax_backoff_ms = 800\n",
            3,
            "retry.max_backoff_ms",
            "at least retry.initial_backoff_ms (900)",
        ),
        (
            "[exporter]\noverflow = \"block\"\n",
            2,
            "exporter.overflow",
            "drop_oldest",
        ),
        (
            "[retry]\nenabled = \"no\"\n",
            2,
            "retry.enabled",
            "true or false",
        ),
    ] {
        let e = toml(text).build().unwrap_err().to_string();
        assert!(
            e.starts_with(&format!("otlpx.toml:{line}: {key} = ")) && e.contains(reason),
            "{text:?}: {e}"
        );
    }
    // Header values are never echoed, even when wrong.
    let e = toml("[exporter]\nheaders = { authorization = 42 }\n")
        .build()
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("exporter.headers.authorization") && !e.contains("42"),
        "{e}"
    );
    // Not TOML at all.
    let e = toml("[exporter\nendpoint = 1\n")
        .build()
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("otlpx.toml:1: not valid TOML"), "{e}");
}

#[test]
fn the_file_is_found_through_the_environment() {
    let dir = std::env::temp_dir().join(format!("otlpx-config-file-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("otlpx.toml");
    std::fs::write(&path, "[batch]\nmax_export_batch_size = 77\n").unwrap();
    let path_str = path.to_str().unwrap();
    for var in ["OTLPX_CONFIG", "CONFIG_PATH"] {
        let c = Engine::builder()
            .environment([(var, path_str)])
            .effective_config()
            .unwrap();
        assert_eq!(
            at(&c, "batch.max_export_batch_size"),
            (
                "77".to_owned(),
                Source::File {
                    path: path.clone(),
                    line: 2
                }
            )
        );
    }
    // OTLPX_CONFIG first.
    let c = Engine::builder()
        .environment([("CONFIG_PATH", "/nowhere.toml"), ("OTLPX_CONFIG", path_str)])
        .effective_config()
        .unwrap();
    assert_eq!(at(&c, "batch.max_export_batch_size").0, "77");
    // The builder's file beats the environment's.
    let other = dir.join("other.toml");
    std::fs::write(&other, "[batch]\nmax_export_batch_size = 88\n").unwrap();
    let c = Engine::builder()
        .environment([("OTLPX_CONFIG", path_str)])
        .config_file(&other)
        .effective_config()
        .unwrap();
    assert_eq!(at(&c, "batch.max_export_batch_size").0, "88");
    // A missing file is an error naming where its name came from.
    let e = Engine::builder()
        .environment([("OTLPX_CONFIG", "/no/such/otlpx.toml")])
        .build()
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("OTLPX_CONFIG") && e.contains("/no/such/otlpx.toml"),
        "{e}"
    );
    let e = Engine::builder()
        .environment(Vec::<(String, String)>::new())
        .config_file("/no/such/file.toml")
        .build()
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("config_file") && e.contains("cannot read"),
        "{e}"
    );
}

#[test]
fn precedence_builder_then_environment_then_file_then_defaults() {
    let file = "[exporter]\nendpoint = \"http://from-file:4317\"\nheaders = { a = \"file\", b = \"file\", c = \"file\" }\n\
                [exporter.traces]\nendpoint = \"http://traces-from-file:4317\"\n\
                [batch]\nmax_export_batch_size = 11\nschedule_delay_ms = 11\nexport_timeout_ms = 11\n";
    let env = [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://from-env:4317"),
        ("OTEL_EXPORTER_OTLP_HEADERS", "a=env,b=env"),
        ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "22"),
        ("OTEL_BSP_SCHEDULE_DELAY", "22"),
    ];
    let builder = || {
        Engine::builder()
            .environment(env)
            .config_toml("otlpx.toml", file)
    };
    let c = builder()
        .max_batch_spans(33)
        .header("a", "builder")
        .effective_config()
        .unwrap();
    let env_of = |var: &str| Source::Env {
        var: var.to_owned(),
    };
    // builder > environment
    assert_eq!(
        at(&c, "batch.max_export_batch_size"),
        (
            "33".to_owned(),
            Source::Builder {
                method: "max_batch_spans"
            }
        )
    );
    assert_eq!(
        at(&c, "exporter.traces.headers.a").1,
        Source::Builder { method: "header" }
    );
    // environment > file, even the environment's generic endpoint over
    // the file's traces endpoint.
    assert_eq!(
        at(&c, "batch.schedule_delay_ms").1,
        env_of("OTEL_BSP_SCHEDULE_DELAY")
    );
    assert_eq!(
        at(&c, "exporter.traces.endpoint"),
        (
            "http://from-env:4317".to_owned(),
            env_of("OTEL_EXPORTER_OTLP_ENDPOINT")
        )
    );
    assert_eq!(
        at(&c, "exporter.traces.headers.b").1,
        env_of("OTEL_EXPORTER_OTLP_HEADERS")
    );
    // file > defaults
    assert_eq!(at(&c, "exporter.traces.headers.c").1, file_line(3));
    assert_eq!(
        at(&c, "batch.export_timeout_ms"),
        ("11".to_owned(), file_line(9))
    );
    // defaults
    assert_eq!(
        at(&c, "exporter.connections"),
        ("2".to_owned(), Source::Default)
    );
    // Without the environment's endpoint, the file's traces endpoint wins
    // over its generic one.
    let c = Engine::builder()
        .environment(Vec::<(String, String)>::new())
        .config_toml("otlpx.toml", file)
        .effective_config()
        .unwrap();
    assert_eq!(
        at(&c, "exporter.traces.endpoint").0,
        "http://traces-from-file:4317"
    );
}

#[test]
fn logs_sections_take_effect_and_the_metrics_interval_is_reported() {
    let text = "[exporter]\nendpoint = \"http://c:4318\"\nprotocol = \"http/protobuf\"\n\
                [exporter.logs]\nendpoint = \"http://logs:4318/v1/logs\"\ncompression = \"gzip\"\n\
                headers = { tenant = \"a\" }\ntimeout_ms = 900\n\
                [batch.logs]\nmax_queue_size = 10\nschedule_delay_ms = 300\n\
                export_timeout_ms = 4000\nmax_export_batch_size = 64\n\
                [batch.metrics]\nexport_interval_ms = 1000\n\
                [limits]\nlog_record_attribute_count = 3\n\
                log_record_attribute_value_length = 40\n\
                [logs]\nmin_severity = \"warn\"\n";
    let c = toml(text).effective_config().unwrap();
    // Only the metrics' collection interval has no effect (nothing
    // collects metrics yet).
    assert_eq!(c.warnings().len(), 1, "{:?}", c.warnings());
    let line = line_of(text, "export_interval_ms");
    assert!(
        c.warnings()[0].starts_with(&format!("otlpx.toml:{line}:"))
            && c.warnings()[0].contains("no metrics API yet"),
        "{:?}",
        c.warnings()
    );
    for (key, value, needle) in [
        (
            "exporter.logs.endpoint",
            "http://logs:4318/v1/logs",
            "endpoint = \"http://logs",
        ),
        ("exporter.logs.protocol", "http/protobuf", "protocol ="),
        ("exporter.logs.compression", "gzip", "compression ="),
        ("exporter.logs.headers.tenant", "***", "headers ="),
        ("exporter.logs.timeout_ms", "900", "timeout_ms = 900"),
        ("batch.logs.max_queue_size", "10", "max_queue_size"),
        ("batch.logs.schedule_delay_ms", "300", "schedule_delay_ms"),
        ("batch.logs.export_timeout_ms", "4000", "export_timeout_ms"),
        (
            "batch.logs.max_export_batch_size",
            "64",
            "max_export_batch_size",
        ),
        (
            "limits.log_record_attribute_count",
            "3",
            "log_record_attribute_count",
        ),
        (
            "limits.log_record_attribute_value_length",
            "40",
            "log_record_attribute_value_length",
        ),
        ("logs.min_severity", "13", "min_severity"),
    ] {
        assert_eq!(
            at(&c, key),
            (value.to_owned(), file_line(line_of(text, needle))),
            "{key}"
        );
    }
    // The traces keep the generic endpoint, with their path, and the
    // BSP's defaults.
    assert_eq!(
        at(&c, "exporter.traces.endpoint"),
        (
            "http://c:4318/v1/traces".to_owned(),
            file_line(line_of(text, "endpoint = \"http://c:4318\""))
        )
    );
    assert_eq!(at(&c, "exporter.traces.compression").0, "none");
    assert_eq!(at(&c, "batch.schedule_delay_ms").1, Source::Default);
    assert!(c.get("exporter.traces.headers.tenant").is_none(), "{c}");
    // A severity as a number, a string or an integer.
    for (value, n) in [("13", "13"), ("\"13\"", "13"), ("\"FATAL\"", "21")] {
        let c = toml(&format!("[logs]\nmin_severity = {value}\n"))
            .effective_config()
            .unwrap();
        assert_eq!(at(&c, "logs.min_severity"), (n.to_owned(), file_line(2)));
    }
    // `[exporter.logs] enabled`: logs only.
    let c = toml("[exporter.logs]\nenabled = false\n")
        .effective_config()
        .unwrap();
    assert_eq!(
        at(&c, "exporter.logs.enabled"),
        ("false".to_owned(), file_line(2))
    );
    assert_eq!(at(&c, "exporter.traces.enabled").0, "true");
    // Bad values, named with their line; the logs scope named as such.
    for (text, line, key, reason) in [
        (
            "[batch.logs]\nmax_queue_size = \"x\"\n",
            2,
            "batch.logs.max_queue_size",
            "whole number",
        ),
        (
            "[batch.logs]\nmax_export_batch_size = 0\n",
            2,
            "batch.logs.max_export_batch_size",
            "at least 1",
        ),
        (
            "[batch.logs]\n\nschedule_delay_ms = 0\n",
            3,
            "batch.logs.schedule_delay_ms",
            "more than zero",
        ),
        (
            "[exporter.logs]\ntimeout_ms = 0\n",
            2,
            "exporter.logs.timeout_ms",
            "more than zero",
        ),
        (
            "[exporter.logs]\nendpoint = \"ftp://x\"\n",
            2,
            "exporter.logs.endpoint",
            "http",
        ),
        (
            "[exporter.logs]\ncertificate = \"/no/such/ca.pem\"\n",
            2,
            "exporter.logs.certificate",
            "cannot read",
        ),
        (
            "[logs]\nmin_severity = \"loud\"\n",
            2,
            "logs.min_severity",
            "1 to 24",
        ),
        (
            "[logs]\nmin_severity = 0\n",
            2,
            "logs.min_severity",
            "1 to 24",
        ),
        (
            "[logs]\nmin_severity = true\n",
            2,
            "logs.min_severity",
            "severity name or number",
        ),
    ] {
        let e = toml(text).build().unwrap_err().to_string();
        assert!(
            e.starts_with(&format!("otlpx.toml:{line}: {key} = ")) && e.contains(reason),
            "{text:?}: {e}"
        );
    }
}

/// `[exporter.metrics]` and `[batch.metrics]`: the metrics' own settings
/// beat `[exporter]`'s, the environment beats the file (its generic
/// endpoint included), and the metrics' batching is otlpx's, so
/// `[batch.metrics]` takes only the export timeout (and the collection
/// interval, for the metrics API to come).
#[test]
fn metrics_sections_take_effect() {
    let text = "[exporter]\nendpoint = \"http://c:4318\"\nprotocol = \"http/protobuf\"\n\
                compression = \"gzip\"\n\
                [exporter.metrics]\nendpoint = \"http://metrics:4318/v1/metrics\"\n\
                compression = \"zstd\"\nheaders = { tenant = \"m\" }\ntimeout_ms = 800\n\
                [batch.metrics]\nexport_timeout_ms = 9000\n";
    let c = toml(text).effective_config().unwrap();
    assert!(c.warnings().is_empty(), "{:?}", c.warnings());
    for (key, value, needle) in [
        (
            "exporter.metrics.endpoint",
            "http://metrics:4318/v1/metrics",
            "endpoint = \"http://metrics",
        ),
        ("exporter.metrics.protocol", "http/protobuf", "protocol ="),
        (
            "exporter.metrics.compression",
            "zstd",
            "compression = \"zstd",
        ),
        ("exporter.metrics.headers.tenant", "***", "headers ="),
        ("exporter.metrics.timeout_ms", "800", "timeout_ms = 800"),
        (
            "batch.metrics.export_timeout_ms",
            "9000",
            "export_timeout_ms",
        ),
    ] {
        assert_eq!(
            at(&c, key),
            (value.to_owned(), file_line(line_of(text, needle))),
            "{key}"
        );
    }
    assert_eq!(at(&c, "batch.metrics.schedule_delay_ms").1, Source::Default);
    // The others keep `[exporter]`'s, with their paths.
    assert_eq!(at(&c, "exporter.logs.endpoint").0, "http://c:4318/v1/logs");
    assert_eq!(at(&c, "exporter.logs.compression").0, "gzip");
    assert!(c.get("exporter.traces.headers.tenant").is_none(), "{c}");
    // The environment beats the file: its metrics endpoint, and its
    // generic one too; its metrics timeout over the file's.
    let env_of = |var: &str| Source::Env {
        var: var.to_owned(),
    };
    for (var, url) in [
        ("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "http://env-m:4318/x"),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://env:4318/v1/metrics"),
    ] {
        let given = url.trim_end_matches("/v1/metrics");
        let c = Engine::builder()
            .environment([(var, given), ("OTEL_METRIC_EXPORT_TIMEOUT", "1200")])
            .config_toml("otlpx.toml", text)
            .effective_config()
            .unwrap();
        assert_eq!(
            at(&c, "exporter.metrics.endpoint"),
            (url.to_owned(), env_of(var))
        );
        assert_eq!(
            at(&c, "batch.metrics.export_timeout_ms"),
            ("1200".to_owned(), env_of("OTEL_METRIC_EXPORT_TIMEOUT"))
        );
    }
    // `[exporter.metrics] enabled`: metrics only.
    let c = toml("[exporter.metrics]\nenabled = false\n")
        .effective_config()
        .unwrap();
    assert_eq!(
        at(&c, "exporter.metrics.enabled"),
        ("false".to_owned(), file_line(2))
    );
    assert_eq!(at(&c, "exporter.traces.enabled").0, "true");
    assert_eq!(at(&c, "exporter.logs.enabled").0, "true");
    // Bad values, named with their line; the batching otlpx keeps its own
    // is not a key.
    for (text, line, key, reason) in [
        (
            "[exporter.metrics]\ntimeout_ms = 0\n",
            2,
            "exporter.metrics.timeout_ms",
            "more than zero",
        ),
        (
            "[exporter.metrics]\nendpoint = \"ftp://x\"\n",
            2,
            "exporter.metrics.endpoint",
            "http",
        ),
        (
            "[batch.metrics]\nexport_timeout_ms = 0\n",
            2,
            "batch.metrics.export_timeout_ms",
            "more than zero",
        ),
        (
            "[batch.metrics]\nschedule_delay_ms = 50\n",
            2,
            "batch.metrics.schedule_delay_ms",
            "unknown key",
        ),
    ] {
        let e = toml(text).build().unwrap_err().to_string();
        assert!(
            e.starts_with(&format!("otlpx.toml:{line}: {key} = ")) && e.contains(reason),
            "{text:?}: {e}"
        );
    }
}

#[test]
fn several_endpoints_and_the_spool() {
    let text = "[exporter]\nendpoint = [\"http://a:4317\", \"http://b:4317\"]\n\n\
                [spool]\ndir = \"/tmp/otlpx-spool\"\nmax_bytes = 2097152\n";
    let c = toml(text)
        .effective_config()
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        at(&c, "exporter.traces.endpoint"),
        ("http://a:4317,http://b:4317".to_owned(), file_line(2))
    );
    assert_eq!(
        at(&c, "spool.dir"),
        ("/tmp/otlpx-spool".to_owned(), file_line(5))
    );
    assert_eq!(
        at(&c, "spool.max_bytes"),
        ("2097152".to_owned(), file_line(6))
    );
    // The environment takes a comma-separated list; HTTP gets the path.
    let c = Engine::builder()
        .environment([
            (
                "OTEL_EXPORTER_OTLP_ENDPOINT",
                " http://a:4318 , http://b:4318",
            ),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
            ("OTLPX_SPOOL_DIR", "/var/spool/otlpx"),
        ])
        .effective_config()
        .unwrap();
    assert_eq!(
        c.get("exporter.traces.endpoint").unwrap().value,
        "http://a:4318/v1/traces,http://b:4318/v1/traces"
    );
    assert_eq!(c.get("spool.dir").unwrap().value, "/var/spool/otlpx");
    // Bad lists and bounds are named.
    for (text, reason) in [
        ("[exporter]\nendpoint = []\n", "non-empty array"),
        (
            "[exporter]\nendpoint = [\"http://a:1\", 3]\n",
            "non-empty array",
        ),
        (
            "[exporter]\nendpoint = \"http://a:1,,http://b:1\"\n",
            "empty endpoint",
        ),
        (
            "[exporter]\nendpoint = \"http://a:1,http://a:1\"\n",
            "listed twice",
        ),
        ("[spool]\ndir = \"/tmp/x\"\nmax_bytes = 1000\n", "at least"),
        ("[spool]\ndirectory = \"/tmp/x\"\n", "unknown key"),
    ] {
        let e = toml(text).effective_config().unwrap_err().to_string();
        assert!(e.contains(reason), "{text}: {e}");
    }
}

#[test]
fn exporter_enabled_and_shutdown_timeout() {
    let c = toml("[exporter]\nenabled = false\nshutdown_timeout_ms = 750\n")
        .effective_config()
        .unwrap();
    let file = |line| Source::File {
        path: PathBuf::from("otlpx.toml"),
        line,
    };
    assert_eq!(
        at(&c, "exporter.traces.enabled"),
        ("false".to_owned(), file(2))
    );
    assert_eq!(
        at(&c, "exporter.traces.endpoint"),
        ("none: export off, the caller drains".to_owned(), file(2))
    );
    assert_eq!(
        at(&c, "exporter.shutdown_timeout_ms"),
        ("750".to_owned(), file(3))
    );
    // The traces section beats the generic one.
    let c = toml("[exporter]\nenabled = false\n[exporter.traces]\nenabled = true\n")
        .effective_config()
        .unwrap();
    assert_eq!(at(&c, "exporter.traces.enabled").0, "true");
    // An engine built so records for its caller.
    let engine = toml("[exporter]\nenabled = false\n").build().unwrap();
    engine.tracer("t", "").start("s").end();
    let mut out = bytes::BytesMut::new();
    assert_eq!(engine.drain_traces(&mut out, 10), 1);
    // Strict as ever: a bad value, or the timeout in a signal's section.
    let e = toml("[exporter]\nenabled = \"no\"\n").build().unwrap_err();
    assert!(
        e.to_string().contains("otlpx.toml:2: exporter.enabled"),
        "{e}"
    );
    let e = toml("[exporter.traces]\nshutdown_timeout_ms = 1\n")
        .build()
        .unwrap_err();
    assert!(e.to_string().contains("unknown key"), "{e}");
    let e = toml("[exporter]\nshutdown_timeout_ms = -1\n")
        .build()
        .unwrap_err();
    assert!(e.to_string().contains("milliseconds"), "{e}");
}
