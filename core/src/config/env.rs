//! The standard `OTEL_*` environment variables, read into a [`Layer`], and
//! the string parsers the file reader shares.
//!
//! As the specification says, an empty variable counts as unset, and a
//! malformed value is reported and ignored: a warning naming the variable
//! and the value, and the setting falls back to the file or the default
//! (in strict mode, `EngineBuilder::strict_env`, it is an error instead).
//! Values the specification defines but otlpx does not support
//! (`http/json`, the Jaeger and X-Ray samplers, the `console` exporter)
//! are reported as warnings and fall back, never ignored silently.

use super::Sampler;
use super::layer::{BatchLayer, ExporterLayer, LIMITS, Layer, Scope, Sourced};
use super::{Compression, ConfigError, Protocol, Source};
use std::time::Duration;

/// Looks up one variable.
pub(crate) type Lookup<'a> = &'a dyn Fn(&str) -> Option<String>;

/// otlpx's own variable for the admin endpoint's address (`host:port`).
pub(crate) const ADMIN_ADDRESS_VAR: &str = "OTLPX_ADMIN_ADDRESS";

/// otlpx's own variables for the disk spool: its directory (setting it
/// turns the spool on) and its size bound in bytes.
pub(crate) const SPOOL_DIR_VAR: &str = "OTLPX_SPOOL_DIR";
pub(crate) const SPOOL_MAX_BYTES_VAR: &str = "OTLPX_SPOOL_MAX_BYTES";

/// otlpx's own variable for how long dropping the last engine handle may
/// flush, in milliseconds.
pub(crate) const SHUTDOWN_TIMEOUT_MS_VAR: &str = "OTLPX_SHUTDOWN_TIMEOUT_MS";

/// otlpx's own variable for the lowest severity a log record needs to be
/// kept: a name (`warn`) or an OTLP `SeverityNumber` (1 to 24).
pub(crate) const LOGS_MIN_SEVERITY_VAR: &str = "OTLPX_LOGS_MIN_SEVERITY";

/// Reads every variable otlpx knows into a layer. A malformed value is an
/// error if `strict`, else a warning in `warnings` and left unset.
pub(crate) fn read(
    lookup: Lookup<'_>,
    warnings: &mut Vec<String>,
    strict: bool,
) -> Result<Layer, ConfigError> {
    let mut r = Reader {
        lookup,
        warnings,
        strict,
        layer: Layer::default(),
    };
    r.read_all()?;
    Ok(r.layer)
}

struct Reader<'a, 'w> {
    lookup: Lookup<'a>,
    warnings: &'w mut Vec<String>,
    strict: bool,
    layer: Layer,
}

impl Reader<'_, '_> {
    /// The variable's value, trimmed; empty counts as unset.
    fn get(&self, var: &str) -> Option<(String, Source)> {
        let value = (self.lookup)(var)?;
        let value = value.trim();
        (!value.is_empty()).then(|| {
            (
                value.to_owned(),
                Source::Env {
                    var: var.to_owned(),
                },
            )
        })
    }

    /// Parses the variable with `parse`, naming it on error.
    fn parse<T>(
        &mut self,
        var: &str,
        parse: impl FnOnce(&str, &mut Vec<String>, &Source) -> Result<Option<T>, String>,
    ) -> Result<Option<Sourced<T>>, ConfigError> {
        let Some((value, source)) = self.get(var) else {
            return Ok(None);
        };
        match parse(&value, self.warnings, &source) {
            Ok(v) => Ok(v.map(|value| Sourced {
                value,
                source: source.clone(),
            })),
            Err(reason) => self.invalid(ConfigError::new(&source, var, value, reason)),
        }
    }

    /// A malformed value: the error in strict mode, else a warning and
    /// the value left unset.
    fn invalid<T>(&mut self, e: ConfigError) -> Result<Option<T>, ConfigError> {
        if self.strict {
            return Err(e);
        }
        self.warnings.push(super::ignored(&e));
        Ok(None)
    }

    fn ms(&mut self, var: &str) -> Result<Option<Sourced<Duration>>, ConfigError> {
        self.parse(var, |v, _, _| duration_ms(v).map(Some))
    }

    fn count(&mut self, var: &str) -> Result<Option<Sourced<usize>>, ConfigError> {
        self.parse(var, |v, _, _| count(v).map(Some))
    }

    fn read_all(&mut self) -> Result<(), ConfigError> {
        self.layer.disabled =
            self.parse("OTEL_SDK_DISABLED", |v, w, s| Ok(Some(boolean(v, w, s))))?;
        self.layer.service_name =
            self.parse("OTEL_SERVICE_NAME", |v, _, _| Ok(Some(v.to_owned())))?;
        if let Some((value, source)) = self.get("OTEL_RESOURCE_ATTRIBUTES") {
            let pairs = match key_values(&value) {
                Ok(pairs) => Some(pairs),
                Err(reason) => self.invalid(ConfigError::new(
                    &source,
                    "OTEL_RESOURCE_ATTRIBUTES",
                    &value,
                    reason,
                ))?,
            };
            self.layer.resource = tagged(pairs.unwrap_or_default(), &source);
        }
        for scope in Scope::ALL {
            self.read_exporter(scope)?;
        }
        self.layer.bsp = self.batch("OTEL_BSP_")?;
        self.layer.blrp = self.batch("OTEL_BLRP_")?;
        self.layer.logs_min_severity =
            self.parse(LOGS_MIN_SEVERITY_VAR, |v, _, _| severity(v).map(Some))?;
        self.layer.metric_export_interval = self.ms("OTEL_METRIC_EXPORT_INTERVAL")?;
        self.layer.metric_export.export_timeout = self.ms("OTEL_METRIC_EXPORT_TIMEOUT")?;
        let arg = self.get("OTEL_TRACES_SAMPLER_ARG");
        self.layer.sampler = self.parse("OTEL_TRACES_SAMPLER", |name, w, source| {
            sampler(name, arg.as_ref().map(|(a, _)| a.as_str()), w, source)
        })?;
        let has_ratio = self
            .layer
            .sampler
            .as_ref()
            .is_some_and(|s| s.value.ratio().is_some());
        if let (false, Some((_, source))) = (has_ratio, &arg) {
            self.warnings.push(format!(
                "{source}: has no effect without a ratio sampler in OTEL_TRACES_SAMPLER"
            ));
        }
        for (i, (_, var, _)) in LIMITS.iter().enumerate() {
            self.layer.limits[i] = self.parse(var, |v, _, _| limit(v).map(Some))?;
        }
        self.layer.admin_address =
            self.parse(ADMIN_ADDRESS_VAR, |v, _, _| Ok(Some(v.to_owned())))?;
        self.layer.spool_dir = self.parse(SPOOL_DIR_VAR, |v, _, _| Ok(Some(v.into())))?;
        self.layer.spool_max_bytes = self.count(SPOOL_MAX_BYTES_VAR)?;
        self.layer.shutdown_timeout = self.ms(SHUTDOWN_TIMEOUT_MS_VAR)?;
        Ok(())
    }

    fn read_exporter(&mut self, scope: Scope) -> Result<(), ConfigError> {
        let var = |name: &str| format!("OTEL_EXPORTER_OTLP_{}{name}", scope.env_infix());
        let path = |v: &str, _: &mut Vec<String>, _: &Source| Ok(Some(v.into()));
        let headers_var = var("HEADERS");
        let headers = match self.get(&headers_var) {
            // Never echo header values: they are often credentials.
            Some((value, source)) => match key_values(&value) {
                Ok(pairs) => tagged(pairs, &source),
                Err(reason) => self
                    .invalid(ConfigError::new(&source, &headers_var, "***", reason))?
                    .unwrap_or_default(),
            },
            None => Vec::new(),
        };
        // `OTEL_{TRACES,METRICS,LOGS}_EXPORTER`: per signal only.
        let enabled = match scope {
            Scope::Generic => None,
            _ => {
                let name = format!("OTEL_{}EXPORTER", scope.env_infix());
                self.parse(&name, exporter)?
            }
        };
        self.layer.exporter[scope as usize] = ExporterLayer {
            endpoint: self.parse(&var("ENDPOINT"), |v, _, _| Ok(Some(v.to_owned())))?,
            protocol: self.parse(&var("PROTOCOL"), protocol)?,
            headers,
            compression: self.parse(&var("COMPRESSION"), |v, _, _| compression(v).map(Some))?,
            timeout: self.ms(&var("TIMEOUT"))?,
            certificate: self.parse(&var("CERTIFICATE"), path)?,
            client_certificate: self.parse(&var("CLIENT_CERTIFICATE"), path)?,
            client_key: self.parse(&var("CLIENT_KEY"), path)?,
            insecure: self.parse(&var("INSECURE"), |v, w, s| Ok(Some(boolean(v, w, s))))?,
            enabled,
        };
        Ok(())
    }

    fn batch(&mut self, prefix: &str) -> Result<BatchLayer, ConfigError> {
        Ok(BatchLayer {
            schedule_delay: self.ms(&format!("{prefix}SCHEDULE_DELAY"))?,
            export_timeout: self.ms(&format!("{prefix}EXPORT_TIMEOUT"))?,
            max_queue_size: self.count(&format!("{prefix}MAX_QUEUE_SIZE"))?,
            max_export_batch_size: self.count(&format!("{prefix}MAX_EXPORT_BATCH_SIZE"))?,
        })
    }
}

/// Each pair's value tagged with `source`.
fn tagged(pairs: Vec<(String, String)>, source: &Source) -> Vec<(String, Sourced<String>)> {
    pairs
        .into_iter()
        .map(|(k, value)| {
            let source = source.clone();
            (k, Sourced { value, source })
        })
        .collect()
}

/// A duration in whole milliseconds, as the specification writes them.
pub(super) fn duration_ms(v: &str) -> Result<Duration, String> {
    v.trim()
        .parse::<u64>()
        .map(Duration::from_millis)
        .map_err(|_| "expected a whole number of milliseconds, 0 or more".to_owned())
}

/// A count or size.
pub(super) fn count(v: &str) -> Result<usize, String> {
    v.trim()
        .parse::<usize>()
        .map_err(|_| "expected a whole number, 0 or more".to_owned())
}

/// A limit: a whole number up to 2^32 - 1.
pub(super) fn limit(v: &str) -> Result<u32, String> {
    v.trim()
        .parse::<u32>()
        .map_err(|_| "expected a whole number from 0 to 4294967295".to_owned())
}

/// A minimum log severity: a name (any case) for the first OTLP
/// `SeverityNumber` of its range (`trace` 1, `debug` 5, `info` 9, `warn`
/// 13, `error` 17, `fatal` 21), or a number from 1 to 24.
pub(super) fn severity(v: &str) -> Result<u8, String> {
    let v = v.trim();
    const NAMES: [(&str, u8); 6] = [
        ("trace", 1),
        ("debug", 5),
        ("info", 9),
        ("warn", 13),
        ("error", 17),
        ("fatal", 21),
    ];
    if let Some(&(_, n)) = NAMES.iter().find(|(name, _)| name.eq_ignore_ascii_case(v)) {
        return Ok(n);
    }
    match v.parse::<u8>() {
        Ok(n) if (1..=24).contains(&n) => Ok(n),
        _ => Err(
            "expected trace, debug, info, warn, error, fatal or a severity number from 1 to 24"
                .to_owned(),
        ),
    }
}

/// The specification's boolean: `true` (any case) is true; anything else
/// is false, with a warning unless it is `false`.
pub(super) fn boolean(v: &str, warnings: &mut Vec<String>, source: &Source) -> bool {
    if v.eq_ignore_ascii_case("true") {
        return true;
    }
    if !v.eq_ignore_ascii_case("false") {
        warnings.push(format!(
            "{source}: {v:?} is not true or false; read as false"
        ));
    }
    false
}

pub(super) fn protocol(
    v: &str,
    warnings: &mut Vec<String>,
    source: &Source,
) -> Result<Option<Protocol>, String> {
    match v {
        "grpc" => Ok(Some(Protocol::Grpc)),
        "http/protobuf" => Ok(Some(Protocol::HttpProtobuf)),
        "http/json" => {
            warnings.push(format!(
                "{source}: otlpx does not send http/json; sending http/protobuf instead"
            ));
            Ok(Some(Protocol::HttpProtobuf))
        }
        _ => Err("expected grpc or http/protobuf".to_owned()),
    }
}

/// `OTEL_TRACES_EXPORTER` (and its metrics and logs forms): a
/// comma-separated list of exporters. `otlp` exports, `none` alone turns
/// export off; the specification's other exporters (`console`, `zipkin`,
/// ...) otlpx lacks: reported, and OTLP used instead.
pub(super) fn exporter(
    v: &str,
    warnings: &mut Vec<String>,
    source: &Source,
) -> Result<Option<bool>, String> {
    let names: Vec<&str> = v
        .split(',')
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .collect();
    if names.iter().all(|&n| n == "none") {
        return Ok(Some(false));
    }
    for &name in &names {
        match name {
            "otlp" => {}
            "console" | "logging" | "zipkin" | "jaeger" | "prometheus" => warnings.push(format!(
                "{source}: otlpx has no {name} exporter; exporting over OTLP instead"
            )),
            "none" => warnings.push(format!(
                "{source}: \"none\" beside other exporters has no effect"
            )),
            _ => return Err("expected otlp or none".to_owned()),
        }
    }
    Ok(Some(true))
}

pub(super) fn compression(v: &str) -> Result<Compression, String> {
    match v {
        "none" => Ok(Compression::None),
        "gzip" => Ok(Compression::Gzip),
        "zstd" => Ok(Compression::Zstd),
        _ => Err("expected none, gzip or zstd".to_owned()),
    }
}

/// A sampler by its `OTEL_TRACES_SAMPLER` name, with its argument.
pub(super) fn sampler(
    name: &str,
    arg: Option<&str>,
    warnings: &mut Vec<String>,
    source: &Source,
) -> Result<Option<Sampler>, String> {
    let ratio = || -> Result<f64, String> {
        let Some(arg) = arg else {
            return Ok(1.0);
        };
        match arg.trim().parse::<f64>() {
            Ok(r) if (0.0..=1.0).contains(&r) => Ok(r),
            _ => Err(format!(
                "its ratio (OTEL_TRACES_SAMPLER_ARG / sampling.ratio) {arg:?} is not a number from 0 to 1"
            )),
        }
    };
    Ok(Some(match name {
        "always_on" => Sampler::AlwaysOn,
        "always_off" => Sampler::AlwaysOff,
        "traceidratio" => Sampler::TraceIdRatio(ratio()?),
        "parentbased_always_on" => Sampler::ParentBasedAlwaysOn,
        "parentbased_always_off" => Sampler::ParentBasedAlwaysOff,
        "parentbased_traceidratio" => Sampler::ParentBasedTraceIdRatio(ratio()?),
        "jaeger_remote" | "parentbased_jaeger_remote" | "xray" => {
            warnings.push(format!(
                "{source}: otlpx has no {name} sampler; using parentbased_always_on"
            ));
            return Ok(None);
        }
        _ => {
            return Err(
                "expected always_on, always_off, traceidratio, parentbased_always_on, \
                 parentbased_always_off or parentbased_traceidratio"
                    .to_owned(),
            );
        }
    }))
}

/// `key1=value1,key2=value2`, keys and values percent-decoded and trimmed
/// (the W3C Baggage syntax `OTEL_RESOURCE_ATTRIBUTES` and
/// `OTEL_EXPORTER_OTLP_HEADERS` use). The reason never quotes a value.
pub(super) fn key_values(v: &str) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    for (i, item) in v.split(',').enumerate() {
        if item.trim().is_empty() {
            continue;
        }
        let Some((key, value)) = item.split_once('=') else {
            return Err(format!("item {} has no `=`; expected key=value,…", i + 1));
        };
        let key =
            percent_decode(key.trim()).map_err(|e| format!("the key of item {}: {e}", i + 1))?;
        if key.is_empty() {
            return Err(format!("item {} has an empty key", i + 1));
        }
        let value = percent_decode(value.trim())
            .map_err(|e| format!("the value of item {} ({key}): {e}", i + 1))?;
        out.push((key, value));
    }
    Ok(out)
}

/// Decodes `%XX` escapes; the result must be UTF-8.
pub(super) fn percent_decode(s: &str) -> Result<String, String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| "a `%` not followed by two hex digits".to_owned())?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| "percent-decodes to bytes that are not UTF-8".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_values_decode_and_trim() {
        assert_eq!(
            key_values(" a = b%20c ,, k%3D=v%2C1").unwrap(),
            vec![
                ("a".to_owned(), "b c".to_owned()),
                ("k=".to_owned(), "v,1".to_owned())
            ]
        );
        assert!(key_values("novalue").unwrap_err().contains("no `=`"));
        assert!(key_values("=v").unwrap_err().contains("empty key"));
        assert!(key_values("k=%zz").unwrap_err().contains("hex"));
        assert!(key_values("k=%ff").unwrap_err().contains("UTF-8"));
        // A value is never quoted back.
        assert!(!key_values("k=sec%ret").unwrap_err().contains("sec"));
    }

    #[test]
    fn severity_names_and_numbers() {
        for (v, n) in [
            ("trace", 1),
            ("DEBUG", 5),
            ("Info", 9),
            ("warn", 13),
            ("error", 17),
            (" fatal ", 21),
            ("1", 1),
            ("24", 24),
        ] {
            assert_eq!(severity(v), Ok(n), "{v}");
        }
        for v in ["0", "25", "-1", "warning", "abc", "", "1.5", "300"] {
            assert!(severity(v).unwrap_err().contains("1 to 24"), "{v}");
        }
    }
}
