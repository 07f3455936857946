//! `otlpx-bench config --check [FILE]`: the process environment and the
//! file, each value printed with its source, secrets masked; a bad value
//! is an error naming its source, with a non-zero exit.

use std::process::Command;

fn check(env: &[(&str, &str)], file: Option<&std::path::Path>) -> (bool, String, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_otlpx-bench"));
    cmd.args(["config", "--check"]);
    if let Some(f) = file {
        cmd.arg(f);
    }
    // Only what the test sets: no OTEL_* of the machine's own.
    cmd.env_clear();
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The printed row of `key`, split into its columns.
fn row(out: &str, key: &str) -> Vec<String> {
    let line = out
        .lines()
        .find(|l| l.split_whitespace().next() == Some(key))
        .unwrap_or_else(|| panic!("no row {key} in\n{out}"));
    line.split("  ")
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .map(str::to_owned)
        .collect()
}

#[test]
fn prints_each_value_with_its_source() {
    let dir = std::env::temp_dir().join(format!("otlpx-config-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("otlpx.toml");
    std::fs::write(
        &file,
        "[batch]\nmax_export_batch_size = 64\n\n[admin]\nenabled = true\n",
    )
    .unwrap();
    let (ok, out, err) = check(
        &[
            ("OTEL_SERVICE_NAME", "checkout"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4317"),
            ("OTEL_EXPORTER_OTLP_HEADERS", "api-key=s3cret"),
            ("OTEL_TRACES_SAMPLER", "xray"),
        ],
        Some(&file),
    );
    assert!(ok, "{err}");
    assert_eq!(
        row(&out, "resource.service_name"),
        ["resource.service_name", "checkout", "env OTEL_SERVICE_NAME"]
    );
    assert_eq!(
        row(&out, "exporter.traces.endpoint"),
        [
            "exporter.traces.endpoint",
            "http://collector:4317",
            "env OTEL_EXPORTER_OTLP_ENDPOINT"
        ]
    );
    assert_eq!(
        row(&out, "exporter.traces.headers.api-key"),
        [
            "exporter.traces.headers.api-key",
            "***",
            "env OTEL_EXPORTER_OTLP_HEADERS"
        ]
    );
    assert!(!out.contains("s3cret"), "{out}");
    let f = file.display();
    assert_eq!(
        row(&out, "batch.max_export_batch_size"),
        [
            "batch.max_export_batch_size".to_owned(),
            "64".to_owned(),
            format!("{f}:2")
        ]
    );
    assert_eq!(
        row(&out, "admin.address"),
        ["admin.address", "127.0.0.1:9464", "default"]
    );
    assert_eq!(
        row(&out, "exporter.connections"),
        ["exporter.connections", "2", "default"]
    );
    assert!(
        out.contains("warning: env OTEL_TRACES_SAMPLER: otlpx has no xray sampler"),
        "{out}"
    );
    // The file can also come from OTLPX_CONFIG.
    let (ok, out, _) = check(&[("OTLPX_CONFIG", file.to_str().unwrap())], None);
    assert!(ok);
    assert_eq!(row(&out, "batch.max_export_batch_size")[1], "64");
}

#[test]
fn a_bad_value_fails_naming_its_source() {
    let (ok, out, err) = check(&[("OTEL_BSP_MAX_QUEUE_SIZE", "abc")], None);
    assert!(!ok && out.is_empty());
    assert!(
        err.contains("invalid configuration: environment variable OTEL_BSP_MAX_QUEUE_SIZE=\"abc\""),
        "{err}"
    );
    let dir = std::env::temp_dir().join(format!("otlpx-config-cli-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("bad.toml");
    std::fs::write(&file, "[exporter]\nendpont = \"http://c:4317\"\n").unwrap();
    let (ok, _, err) = check(&[], Some(&file));
    assert!(!ok);
    assert!(
        err.contains(&format!("{}:2: exporter.endpont", file.display()))
            && err.contains("unknown key"),
        "{err}"
    );
    let (ok, _, err) = check(&[], Some(std::path::Path::new("/no/such.toml")));
    assert!(!ok && err.contains("/no/such.toml"), "{err}");
}
