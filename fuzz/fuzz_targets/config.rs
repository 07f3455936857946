//! Configuration comes from files and environment variables an operator
//! writes: any TOML text and any values of the `OTEL_*` variables must give
//! an effective configuration or a `ConfigError`, never a panic; an error
//! names a source and never quotes a header's value.
#![no_main]

use libfuzzer_sys::fuzz_target;

/// Variables the input's first lines are given as, one value a line.
const VARS: [&str; 8] = [
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_HEADERS",
    "OTEL_RESOURCE_ATTRIBUTES",
    "OTEL_TRACES_SAMPLER",
    "OTEL_TRACES_SAMPLER_ARG",
    "OTEL_BSP_MAX_QUEUE_SIZE",
    "OTEL_EXPORTER_OTLP_PROTOCOL",
    "OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT",
];

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // The first line picks how many of the next lines are variables.
    let mut lines = text.splitn(VARS.len() + 2, '\n');
    let n = lines.next().map_or(0, |l| l.len() % (VARS.len() + 1));
    let vars: Vec<(&str, &str)> = VARS.iter().take(n).map(|&v| (v, lines.next().unwrap_or(""))).collect();
    let toml: String = lines.collect::<Vec<_>>().join("\n");
    let result = otlpx::Engine::builder()
        .environment(vars.iter().copied())
        .config_toml("fuzz.toml", toml)
        .effective_config();
    if let Ok(config) = result {
        for entry in config.entries() {
            // Only the exporter's headers: a resource attribute may be named
            // anything, `.headers.` included, and its value is shown.
            if entry.key.starts_with("exporter.") && entry.key.contains(".headers.") {
                assert_eq!(entry.value, "***", "a header value shown");
            }
        }
        let _ = config.to_string();
    }
});
