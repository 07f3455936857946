//! Resolution: from the layers (builder, environment, file, highest
//! first) to the one validated configuration the engine runs with.
//!
//! For each setting the highest layer that set it wins. Where the
//! specification has a generic and a per-signal form (the exporter's
//! settings, the attribute limits), a layer's specific value beats its
//! generic one, and layers still go by precedence: an environment
//! variable's generic endpoint beats a file's traces endpoint.
//!
//! This is the one validator: every check of a value happens here, and
//! every error names the value's source. Each resolved value is also kept,
//! with its source, as an [`EffectiveConfig`] entry.

use super::layer::{ExporterLayer, LIMITS, Layer, Limit, Opt, Scope, Sourced};
use super::*;
use crate::ring::{MAX_CAPACITY_BYTES, MIN_CAPACITY_BYTES};
use crate::sample::Sampler;
use std::time::Duration;

/// The address the admin endpoint takes when enabled without one:
/// loopback only, on the port OpenTelemetry's Prometheus exporters use.
pub const ADMIN_ADDRESS_DEFAULT: &str = "127.0.0.1:9464";

/// `OTEL_BSP_EXPORT_TIMEOUT`'s default in the specification.
pub const BSP_EXPORT_TIMEOUT_MS_DEFAULT: u64 = 30_000;

/// otlpx queues span bytes, per CPU, not spans: `OTEL_BSP_MAX_QUEUE_SIZE`
/// is converted at this many bytes a span (a span with 8 attributes takes
/// 300-400), spread over the rings, and rounded up to a power of two.
pub const QUEUE_SPAN_BYTES: usize = 512;

/// One resolved setting: its key (as the TOML file writes it), its value
/// as shown (header values masked) and where it came from.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConfigEntry {
    /// The dotted key, `exporter.traces.endpoint`.
    pub key: String,
    /// The value, as shown.
    pub value: String,
    /// Where it came from.
    pub source: Source,
}

/// The configuration an engine runs with, each value with its source, and
/// the warnings about values that have no effect.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EffectiveConfig {
    entries: Vec<ConfigEntry>,
    warnings: Vec<String>,
}

impl EffectiveConfig {
    /// Every setting, in the order of the file's sections.
    pub fn entries(&self) -> &[ConfigEntry] {
        &self.entries
    }

    /// The entry for `key`, if it exists.
    pub fn get(&self, key: &str) -> Option<&ConfigEntry> {
        self.entries.iter().find(|e| e.key == key)
    }

    /// Values set but without effect (a signal otlpx does not export yet,
    /// a sampler it does not have), each once.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }
}

impl std::fmt::Display for EffectiveConfig {
    /// A table of key, value and source, then the warnings.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let key_w = self.entries.iter().map(|e| e.key.len()).max().unwrap_or(0);
        let value_w = self
            .entries
            .iter()
            .map(|e| e.value.chars().count())
            .max()
            .unwrap_or(0)
            .min(48);
        for e in &self.entries {
            writeln!(f, "{:key_w$}  {:value_w$}  {}", e.key, e.value, e.source)?;
        }
        for w in &self.warnings {
            writeln!(f, "warning: {w}")?;
        }
        Ok(())
    }
}

/// What the engine is built from.
#[derive(Debug)]
pub(crate) struct Resolved {
    pub(crate) disabled: bool,
    /// `None`: the engine names the service after its executable.
    pub(crate) service_name: Option<String>,
    /// String resource attributes, `service.name` aside.
    pub(crate) resource: Vec<(String, String)>,
    pub(crate) limits: SpanLimits,
    pub(crate) sampler: Sampler,
    pub(crate) ring_bytes_per_cpu: usize,
    pub(crate) rings: Option<usize>,
    pub(crate) export: ExportConfig,
    pub(crate) effective: EffectiveConfig,
}

/// Resolves the builder's, the environment's and the file's layers. An
/// invalid value from the environment is, unless `strict`, a warning and
/// ignored: resolution starts again without it, falling through to the
/// file or the default, as the SDK configuration specification says.
/// (The builder's and the file's values stay errors: a person wrote them
/// on purpose.)
pub(crate) fn resolve_layers(
    builder: &Layer,
    mut env: Layer,
    file: &Layer,
    mut warnings: Vec<String>,
    strict: bool,
) -> Result<Resolved, ConfigError> {
    loop {
        match resolve(&[builder, &env, file], warnings.clone()) {
            // Terminates: each round forgets at least one value.
            Err(e)
                if !strict && matches!(e.origin, Source::Env { .. }) && env.forget(&e.origin) =>
            {
                warnings.push(ignored(&e));
            }
            done => return done,
        }
    }
}

/// Resolves `layers`, highest precedence first.
pub(crate) fn resolve(layers: &[&Layer], warnings: Vec<String>) -> Result<Resolved, ConfigError> {
    let mut r = Resolver {
        layers,
        entries: Vec::new(),
        warnings,
    };
    r.run()
}

struct Resolver<'l> {
    layers: &'l [&'l Layer],
    entries: Vec<ConfigEntry>,
    warnings: Vec<String>,
}

fn ms(d: &Duration) -> String {
    d.as_millis().to_string()
}

impl Resolver<'_> {
    fn show(&mut self, key: impl Into<String>, value: impl Into<String>, source: &Source) {
        self.entries.push(ConfigEntry {
            key: key.into(),
            value: value.into(),
            source: source.clone(),
        });
    }

    /// The highest layer's value, or `default`; shown under `key`.
    fn value<T: Clone>(
        &mut self,
        key: &str,
        get: impl Fn(&Layer) -> &Opt<T>,
        default: T,
        show: impl Fn(&T) -> String,
    ) -> Sourced<T> {
        let v = self
            .layers
            .iter()
            .find_map(|l| get(l).clone())
            .unwrap_or(Sourced {
                value: default,
                source: Source::Default,
            });
        self.show(key, show(&v.value), &v.source);
        v
    }

    /// The highest layer's traces or generic exporter value.
    fn exporter<T: Clone>(
        &self,
        get: impl Fn(&ExporterLayer) -> &Opt<T>,
    ) -> Option<(Sourced<T>, Scope)> {
        self.layers.iter().find_map(|l| {
            let traces = get(&l.exporter[Scope::Traces as usize]).clone();
            let generic = get(&l.exporter[Scope::Generic as usize]).clone();
            traces
                .map(|v| (v, Scope::Traces))
                .or(generic.map(|v| (v, Scope::Generic)))
        })
    }

    fn run(&mut self) -> Result<Resolved, ConfigError> {
        let disabled = self.value("disabled", |l| &l.disabled, false, bool::to_string);
        let (service_name, resource) = self.resource();
        let export = self.export()?;
        let sampler = self.sampler()?;
        let limits = self.limits();
        let (ring_bytes_per_cpu, rings) = self.rings()?;
        self.no_effect();
        Ok(Resolved {
            disabled: disabled.value,
            service_name,
            resource,
            limits,
            sampler,
            ring_bytes_per_cpu,
            rings,
            export,
            effective: EffectiveConfig {
                entries: std::mem::take(&mut self.entries),
                warnings: std::mem::take(&mut self.warnings),
            },
        })
    }

    fn resource(&mut self) -> (Option<String>, Vec<(String, String)>) {
        // Within a layer, `service_name` (OTEL_SERVICE_NAME) beats a
        // `service.name` resource attribute, as the specification says.
        let service = self.layers.iter().find_map(|l| {
            l.service_name.clone().or_else(|| {
                l.resource
                    .iter()
                    .rev()
                    .find(|(k, _)| k == SERVICE_NAME)
                    .map(|(_, v)| v.clone())
            })
        });
        match &service {
            Some(s) => self.show("resource.service_name", s.value.clone(), &s.source),
            None => self.show(
                "resource.service_name",
                "unknown_service:<executable>",
                &Source::Default,
            ),
        }
        let mut keys: Vec<&String> = Vec::new();
        for l in self.layers {
            for (k, _) in &l.resource {
                if k != SERVICE_NAME && !keys.contains(&k) {
                    keys.push(k);
                }
            }
        }
        let mut out = Vec::new();
        for key in keys {
            let v = self
                .layers
                .iter()
                .find_map(|l| l.resource.iter().rev().find(|(k, _)| k == key))
                .map(|(_, v)| v.clone())
                .expect("the key came from a layer");
            self.show(
                format!("resource.attributes.{key}"),
                v.value.clone(),
                &v.source,
            );
            out.push((key.clone(), v.value));
        }
        (service.map(|s| s.value), out)
    }

    fn export(&mut self) -> Result<ExportConfig, ConfigError> {
        let protocol = self.exporter(|e| &e.protocol);
        let protocol_value = protocol.as_ref().map_or(Protocol::Grpc, |(p, _)| p.value);
        let shown = match protocol_value {
            Protocol::Grpc => "grpc",
            Protocol::HttpProtobuf => "http/protobuf",
        };
        let source = protocol.map_or(Source::Default, |(p, _)| p.source);
        self.show("exporter.traces.protocol", shown, &source);
        let enabled = self.exporter(|e| &e.enabled).map_or(
            Sourced {
                value: true,
                source: Source::Default,
            },
            |(v, _)| v,
        );
        self.show(
            "exporter.traces.enabled",
            enabled.value.to_string(),
            &enabled.source,
        );
        let urls = self.url(protocol_value, &enabled)?;
        let compression = self.exporter(|e| &e.compression);
        let (compression, source) = compression
            .map_or((Compression::None, Source::Default), |(c, _)| {
                (c.value, c.source)
            });
        self.show(
            "exporter.traces.compression",
            compression_name(compression),
            &source,
        );
        let level = self.value(
            "exporter.compression_level",
            |l| &l.compression_level,
            -1,
            |&l| {
                if l < 0 {
                    "codec default".to_owned()
                } else {
                    l.to_string()
                }
            },
        );
        let compression_level = (level.source != Source::Default).then_some(level.value);
        if let Some(l) = compression_level {
            let range = match compression {
                Compression::Gzip => 0..=9,
                Compression::Zstd => 1..=22,
                Compression::None => i32::MIN..=i32::MAX,
            };
            if !range.contains(&l) {
                return Err(ConfigError::new(
                    &level.source,
                    key_of(&level.source, "exporter.compression_level"),
                    l.to_string(),
                    format!(
                        "{} levels go from {} to {}",
                        compression_name(compression),
                        range.start(),
                        range.end()
                    ),
                ));
            }
        }
        let headers = self.headers()?;
        let timeout = self
            .exporter(|e| &e.timeout)
            .map(|(t, _)| t)
            .unwrap_or(Sourced {
                value: Duration::from_millis(EXPORT_TIMEOUT_MS_DEFAULT),
                source: Source::Default,
            });
        self.show(
            "exporter.traces.timeout_ms",
            ms(&timeout.value),
            &timeout.source,
        );
        positive(&timeout, "exporter.timeout_ms")?;
        let bsp_timeout = self.value(
            "batch.export_timeout_ms",
            |l| &l.bsp.export_timeout,
            Duration::from_millis(BSP_EXPORT_TIMEOUT_MS_DEFAULT),
            ms,
        );
        positive(&bsp_timeout, "batch.export_timeout_ms")?;
        let retry = self.retry()?;
        let tls = self.tls()?;
        let connections = self.value(
            "exporter.connections",
            |l| &l.connections,
            CONNECTIONS_DEFAULT,
            usize::to_string,
        );
        at_least_one(&connections, "exporter.connections")?;
        let max_in_flight = self.value(
            "exporter.max_in_flight",
            |l| &l.max_in_flight,
            MAX_IN_FLIGHT_DEFAULT,
            usize::to_string,
        );
        at_least_one(&max_in_flight, "exporter.max_in_flight")?;
        let max_in_flight_bytes = self.value(
            "exporter.max_in_flight_bytes",
            |l| &l.max_in_flight_bytes,
            MAX_IN_FLIGHT_BYTES_DEFAULT,
            usize::to_string,
        );
        at_least_one(&max_in_flight_bytes, "exporter.max_in_flight_bytes")?;
        let overflow = self.value(
            "exporter.overflow",
            |l| &l.overflow,
            Overflow::default(),
            |o| o.as_str().to_owned(),
        );
        let batch = self.value(
            "batch.max_export_batch_size",
            |l| &l.bsp.max_export_batch_size,
            MAX_BATCH_SPANS_DEFAULT,
            usize::to_string,
        );
        at_least_one(&batch, "batch.max_export_batch_size")?;
        let batch_bytes = self.value(
            "batch.max_batch_bytes",
            |l| &l.max_batch_bytes,
            MAX_BATCH_BYTES_DEFAULT,
            usize::to_string,
        );
        at_least_one(&batch_bytes, "batch.max_batch_bytes")?;
        let delay = self.value(
            "batch.schedule_delay_ms",
            |l| &l.bsp.schedule_delay,
            Duration::from_millis(SCHEDULE_DELAY_MS_DEFAULT),
            ms,
        );
        positive(&delay, "batch.schedule_delay_ms")?;
        let workers = self.layers.iter().find_map(|l| l.workers.clone());
        match &workers {
            Some(w) => {
                self.show("workers.count", w.value.to_string(), &w.source);
                at_least_one(w, "workers.count")?;
            }
            None => self.show("workers.count", "one per 8 CPUs", &Source::Default),
        }
        let pin = self.value("workers.pin", |l| &l.pin_workers, true, bool::to_string);
        let cores = self.layers.iter().find_map(|l| l.worker_cores.clone());
        match &cores {
            Some(c) => {
                self.show("workers.cores", format!("{:?}", c.value), &c.source);
                if pin.value && c.value.is_empty() {
                    return Err(ConfigError::new(
                        &c.source,
                        key_of(&c.source, "workers.cores"),
                        "[]",
                        "name at least one core, or turn pinning off",
                    ));
                }
            }
            None => self.show(
                "workers.cores",
                "all this process may use",
                &Source::Default,
            ),
        }
        let admin_address = self.admin()?;
        let ready_window = self.value(
            "admin.ready_window_ms",
            |l| &l.ready_window,
            Duration::from_millis(READY_WINDOW_MS_DEFAULT),
            ms,
        );
        let spool = self.spool()?;
        let shutdown_timeout = self.value(
            "exporter.shutdown_timeout_ms",
            |l| &l.shutdown_timeout,
            Duration::from_millis(SHUTDOWN_TIMEOUT_MS_DEFAULT),
            ms,
        );
        let traces = SignalExport {
            urls,
            enabled: enabled.value,
            protocol: protocol_value,
            compression,
            headers,
            timeout: timeout.value,
            deadline: bsp_timeout.value,
            tls,
            max_batch: batch.value,
            max_batch_bytes: batch_bytes.value,
            schedule_delay: delay.value,
        };
        // TEMPORARY: logs as traces, to their own path.
        let logs = SignalExport {
            urls: traces.urls.clone().map(|(urls, source)| {
                let urls = urls
                    .into_iter()
                    .map(|u| match u.strip_suffix("/v1/traces") {
                        Some(base) => format!("{base}/v1/logs"),
                        None => u,
                    })
                    .collect();
                (urls, source)
            }),
            schedule_delay: Duration::from_millis(1000),
            ..traces.clone()
        };
        Ok(ExportConfig {
            signals: [traces, logs],
            shutdown_timeout: shutdown_timeout.value,
            spool,
            compression_level,
            retry,
            connections: connections.value,
            max_in_flight: max_in_flight.value,
            max_in_flight_bytes: max_in_flight_bytes.value,
            overflow: overflow.value,
            workers: workers.map(|w| w.value),
            pin_workers: pin.value,
            worker_cores: cores.map(|c| c.value),
            admin_address,
            ready_window: ready_window.value,
        })
    }

    /// `[spool]`: on when a directory is given.
    fn spool(&mut self) -> Result<Option<SpoolConfig>, ConfigError> {
        let dir = self.layers.iter().find_map(|l| l.spool_dir.clone());
        match &dir {
            Some(d) => self.show("spool.dir", d.value.display().to_string(), &d.source),
            None => self.show("spool.dir", "none: no spool", &Source::Default),
        }
        let max_bytes = self.value(
            "spool.max_bytes",
            |l| &l.spool_max_bytes,
            SPOOL_MAX_BYTES_DEFAULT,
            usize::to_string,
        );
        if max_bytes.value < SPOOL_MIN_BYTES {
            return Err(ConfigError::new(
                &max_bytes.source,
                key_of(&max_bytes.source, "spool.max_bytes"),
                max_bytes.value.to_string(),
                format!("must be at least {SPOOL_MIN_BYTES} (1 MiB)"),
            ));
        }
        Ok(dir.map(|dir| SpoolConfig {
            dir: dir.value,
            max_bytes: max_bytes.value as u64,
        }))
    }

    /// `[retry]`: on or off, and the backoff bounds (initial ≤ max).
    fn retry(&mut self) -> Result<RetryPolicy, ConfigError> {
        let enabled = self.value("retry.enabled", |l| &l.retry_enabled, true, bool::to_string);
        let initial = self.value(
            "retry.initial_backoff_ms",
            |l| &l.retry_initial_backoff,
            Duration::from_millis(RETRY_INITIAL_BACKOFF_MS_DEFAULT),
            ms,
        );
        positive(&initial, "retry.initial_backoff_ms")?;
        let max = self.value(
            "retry.max_backoff_ms",
            |l| &l.retry_max_backoff,
            Duration::from_millis(RETRY_MAX_BACKOFF_MS_DEFAULT),
            ms,
        );
        if max.value < initial.value {
            return Err(ConfigError::new(
                &max.source,
                key_of(&max.source, "retry.max_backoff_ms"),
                ms(&max.value),
                format!(
                    "must be at least retry.initial_backoff_ms ({})",
                    ms(&initial.value)
                ),
            ));
        }
        Ok(RetryPolicy {
            enabled: enabled.value,
            initial: initial.value,
            max: max.value,
        })
    }

    /// The traces URLs (one, or several to balance over): a generic
    /// endpoint gets `/v1/traces` over HTTP; an endpoint without a scheme
    /// gets one from `insecure`, with a warning. With export on and no
    /// endpoint anywhere, the specification's default for the protocol
    /// (with the `export` feature; without it, none: the caller drains).
    fn url(
        &mut self,
        protocol: Protocol,
        enabled: &Sourced<bool>,
    ) -> Result<Option<(Vec<String>, Source)>, ConfigError> {
        let off = |this: &mut Self| {
            this.show(
                "exporter.traces.endpoint",
                "none: export off, the caller drains",
                &enabled.source,
            );
            Ok(None)
        };
        let Some((given, scope)) = self.exporter(|e| &e.endpoint) else {
            if !enabled.value {
                return off(self);
            }
            if !cfg!(feature = "export") {
                self.show(
                    "exporter.traces.endpoint",
                    "none: built without export, the caller drains",
                    &Source::Default,
                );
                return Ok(None);
            }
            let url = match protocol {
                Protocol::Grpc => DEFAULT_GRPC_ENDPOINT,
                Protocol::HttpProtobuf => DEFAULT_HTTP_TRACES_ENDPOINT,
            };
            self.show("exporter.traces.endpoint", url, &Source::Default);
            return Ok(Some((vec![url.to_owned()], Source::Default)));
        };
        let key = key_of(&given.source, &format!("{}.endpoint", scope.section()));
        let insecure = self.exporter(|e| &e.insecure).is_some_and(|(i, _)| i.value);
        let mut urls = Vec::new();
        for one in given.value.split(',') {
            let bad = |reason: &str| ConfigError::new(&given.source, &key, one.trim(), reason);
            let (url, assumed) = endpoint_url(one, protocol, scope, insecure).map_err(bad)?;
            if urls.contains(&url) {
                return Err(bad("the same endpoint is listed twice"));
            }
            if assumed {
                let (scheme, change) = if insecure {
                    ("http://", "write https:// to use TLS")
                } else {
                    (
                        "https://",
                        "write http://, or set insecure (OTEL_EXPORTER_OTLP_INSECURE=true, \
                         [exporter] insecure = true), for plain HTTP",
                    )
                };
                self.warnings.push(format!(
                    "{}: endpoint {:?} has no scheme; assumed {scheme} ({change})",
                    given.source,
                    one.trim()
                ));
            }
            urls.push(url);
        }
        // Checked all the same: turning export on again must not find a
        // bad endpoint only then.
        if !enabled.value {
            return off(self);
        }
        self.show("exporter.traces.endpoint", urls.join(","), &given.source);
        Ok(Some((urls, given.source)))
    }

    /// Headers merged by name (case-insensitively); values masked.
    fn headers(&mut self) -> Result<Vec<(String, String)>, ConfigError> {
        let mut names: Vec<String> = Vec::new();
        for l in self.layers {
            for scope in [Scope::Traces, Scope::Generic] {
                for (n, _) in &l.exporter[scope as usize].headers {
                    if !names.iter().any(|m| m.eq_ignore_ascii_case(n)) {
                        names.push(n.clone());
                    }
                }
            }
        }
        let mut out = Vec::new();
        for name in names {
            let v = self
                .layers
                .iter()
                .find_map(|l| {
                    [Scope::Traces, Scope::Generic].iter().find_map(|&s| {
                        l.exporter[s as usize]
                            .headers
                            .iter()
                            .rev()
                            .find(|(n, _)| n.eq_ignore_ascii_case(&name))
                    })
                })
                .map(|(_, v)| v.clone())
                .expect("the name came from a layer");
            let key = key_of(&v.source, &format!("exporter.headers.{name}"));
            if name.is_empty() || !name.bytes().all(is_token) {
                return Err(ConfigError::new(
                    &v.source,
                    key,
                    "***",
                    format!("{name:?} is not a valid header name"),
                ));
            }
            if !v
                .value
                .bytes()
                .all(|b| b == b'\t' || (b >= 0x20 && b != 0x7f))
            {
                return Err(ConfigError::new(
                    &v.source,
                    key,
                    "***",
                    format!("the value of header {name} has characters HTTP does not allow"),
                ));
            }
            self.show(format!("exporter.traces.headers.{name}"), "***", &v.source);
            out.push((name, v.value));
        }
        Ok(out)
    }

    fn tls(&mut self) -> Result<TlsFiles, ConfigError> {
        let mut file = |name: &str, get: fn(&ExporterLayer) -> &Opt<std::path::PathBuf>| {
            let Some((v, scope)) = self.exporter(get) else {
                self.show(format!("exporter.traces.{name}"), "none", &Source::Default);
                return Ok(None);
            };
            let key = key_of(&v.source, &format!("{}.{name}", scope.section()));
            let shown = v.value.display().to_string();
            if let Err(e) = std::fs::File::open(&v.value) {
                return Err(ConfigError::new(
                    &v.source,
                    key,
                    shown,
                    format!("cannot read the file: {e}"),
                ));
            }
            self.show(format!("exporter.traces.{name}"), shown, &v.source);
            Ok(Some(v))
        };
        let ca = file("certificate", |e| &e.certificate)?;
        let cert = file("client_certificate", |e| &e.client_certificate)?;
        let key = file("client_key", |e| &e.client_key)?;
        match (&cert, &key) {
            (Some(c), None) => {
                return Err(ConfigError::new(
                    &c.source,
                    key_of(&c.source, "exporter.client_certificate"),
                    c.value.display().to_string(),
                    "a client certificate needs a client key too",
                ));
            }
            (None, Some(k)) => {
                return Err(ConfigError::new(
                    &k.source,
                    key_of(&k.source, "exporter.client_key"),
                    k.value.display().to_string(),
                    "a client key needs a client certificate too",
                ));
            }
            _ => {}
        }
        Ok(TlsFiles {
            ca_certificate: ca.map(|v| v.value),
            client_certificate: cert.map(|v| v.value),
            client_key: key.map(|v| v.value),
        })
    }

    fn admin(&mut self) -> Result<Option<std::net::SocketAddr>, ConfigError> {
        let enabled = self.layers.iter().find_map(|l| l.admin_enabled.clone());
        let address = self.layers.iter().find_map(|l| l.admin_address.clone());
        let on = match (&enabled, &address) {
            (Some(e), _) => e.value,
            (None, Some(_)) => true,
            (None, None) => false,
        };
        let source = enabled.as_ref().map_or(
            address
                .as_ref()
                .map_or(Source::Default, |a| a.source.clone()),
            |e| e.source.clone(),
        );
        self.show("admin.enabled", on.to_string(), &source);
        if !on {
            return Ok(None);
        }
        let (text, source) = address
            .map_or((ADMIN_ADDRESS_DEFAULT.to_owned(), Source::Default), |a| {
                (a.value, a.source)
            });
        let addr = text.parse().map_err(|_| {
            ConfigError::new(
                &source,
                key_of(&source, "admin.address"),
                &text,
                "expected an IP address and port, like 127.0.0.1:9464",
            )
        })?;
        self.show("admin.address", text, &source);
        Ok(Some(addr))
    }

    fn sampler(&mut self) -> Result<Sampler, ConfigError> {
        let s = self.value(
            "sampling.sampler",
            |l| &l.sampler,
            Sampler::default(),
            |s| match s.ratio() {
                Some(r) => format!("{} ({r})", s.name()),
                None => s.name().to_owned(),
            },
        );
        if let Some(r) = s.value.ratio()
            && !(0.0..=1.0).contains(&r)
        {
            return Err(ConfigError::new(
                &s.source,
                key_of(&s.source, "sampling.ratio"),
                r.to_string(),
                "a ratio goes from 0 to 1",
            ));
        }
        Ok(s.value)
    }

    fn limits(&mut self) -> SpanLimits {
        // Per layer, the span-specific limit beats the generic one.
        let pick = |this: &mut Self,
                    key: &str,
                    specific: Limit,
                    generic: Option<Limit>,
                    default: Option<u32>| {
            let v = this.layers.iter().find_map(|l| {
                l.limits[specific as usize]
                    .clone()
                    .or_else(|| generic.and_then(|g| l.limits[g as usize].clone()))
            });
            let (value, source) =
                v.map_or((default, Source::Default), |v| (Some(v.value), v.source));
            // `u32::MAX` is how the builder says "no limit" (see `Layer`).
            let value = value.filter(|&n| n != u32::MAX);
            this.show(
                format!("limits.{key}"),
                value.map_or("none".to_owned(), |n| n.to_string()),
                &source,
            );
            value
        };
        let d = SpanLimits::default();
        let count = Some(128);
        SpanLimits {
            max_attribute_value_length: pick(
                self,
                "span_attribute_value_length",
                Limit::SpanAttributeValueLength,
                Some(Limit::AttributeValueLength),
                None,
            ),
            max_attributes_per_span: pick(
                self,
                "span_attribute_count",
                Limit::SpanAttributeCount,
                Some(Limit::AttributeCount),
                count,
            )
            .unwrap_or(d.max_attributes_per_span),
            max_events_per_span: pick(self, "span_event_count", Limit::SpanEventCount, None, count)
                .unwrap_or(d.max_events_per_span),
            max_links_per_span: pick(self, "span_link_count", Limit::SpanLinkCount, None, count)
                .unwrap_or(d.max_links_per_span),
            max_attributes_per_event: pick(
                self,
                "event_attribute_count",
                Limit::EventAttributeCount,
                Some(Limit::AttributeCount),
                count,
            )
            .unwrap_or(d.max_attributes_per_event),
            max_attributes_per_link: pick(
                self,
                "link_attribute_count",
                Limit::LinkAttributeCount,
                Some(Limit::AttributeCount),
                count,
            )
            .unwrap_or(d.max_attributes_per_link),
        }
    }

    fn rings(&mut self) -> Result<(usize, Option<usize>), ConfigError> {
        let rings = self.layers.iter().find_map(|l| l.rings.clone());
        match &rings {
            Some(r) => {
                self.show("workers.rings", r.value.to_string(), &r.source);
                at_least_one(r, "workers.rings")?;
            }
            None => self.show("workers.rings", "one per CPU", &Source::Default),
        }
        let explicit = self
            .layers
            .iter()
            .find_map(|l| l.ring_bytes_per_cpu.clone());
        let queue = self
            .layers
            .iter()
            .find_map(|l| l.bsp.max_queue_size.clone());
        if let Some(q) = &queue {
            at_least_one(q, "batch.max_queue_size")?;
        }
        let bytes = match (explicit, queue) {
            (Some(b), _) => b,
            (None, Some(q)) => {
                let count = rings
                    .as_ref()
                    .map_or_else(crate::ring::Rings::default_count, |r| r.value)
                    .max(1);
                let per_ring =
                    (q.value.saturating_mul(QUEUE_SPAN_BYTES) / count).next_power_of_two();
                Sourced {
                    value: per_ring.clamp(MIN_CAPACITY_BYTES.max(4096), MAX_CAPACITY_BYTES),
                    source: q.source,
                }
            }
            (None, None) => Sourced {
                value: DEFAULT_RING_BYTES_PER_CPU,
                source: Source::Default,
            },
        };
        self.show(
            "workers.ring_bytes_per_cpu",
            bytes.value.to_string(),
            &bytes.source,
        );
        if !bytes.value.is_power_of_two()
            || !(MIN_CAPACITY_BYTES..=MAX_CAPACITY_BYTES).contains(&bytes.value)
        {
            return Err(ConfigError::new(
                &bytes.source,
                key_of(&bytes.source, "workers.ring_bytes_per_cpu"),
                bytes.value.to_string(),
                format!(
                    "expected a power of two from {MIN_CAPACITY_BYTES} to {MAX_CAPACITY_BYTES}"
                ),
            ));
        }
        Ok((bytes.value, rings.map(|r| r.value)))
    }

    /// Reports, once each, settings of pipelines otlpx does not have yet.
    fn no_effect(&mut self) {
        const WHY: &str = "otlpx exports traces only so far, so it has no effect";
        let mut seen = Vec::new();
        for l in self.layers {
            let mut sources: Vec<&Source> = Vec::new();
            sources.extend(l.exporter[Scope::Metrics as usize].first_set());
            sources.extend(l.exporter[Scope::Logs as usize].first_set());
            sources.extend(l.blrp.first_set());
            sources.extend(l.metric_export_interval.as_ref().map(|v| &v.source));
            sources.extend(l.metric_export_timeout.as_ref().map(|v| &v.source));
            for (i, (limit, _, _)) in LIMITS.iter().enumerate() {
                if matches!(
                    limit,
                    Limit::LogRecordAttributeCount | Limit::LogRecordAttributeValueLength
                ) {
                    sources.extend(l.limits[i].as_ref().map(|v| &v.source));
                }
            }
            for s in sources {
                let w = format!("{s}: {WHY}");
                if !seen.contains(&w) {
                    seen.push(w);
                }
            }
        }
        self.warnings.extend(seen);
    }
}

const SERVICE_NAME: &str = "service.name";

fn compression_name(c: Compression) -> &'static str {
    match c {
        Compression::None => "none",
        Compression::Gzip => "gzip",
        Compression::Zstd => "zstd",
    }
}

/// The key an error names: the variable for the environment, the method
/// for the builder, the dotted key for a file or a default.
fn key_of(source: &Source, dotted: &str) -> String {
    match source {
        Source::Env { var } => var.clone(),
        Source::Builder { method } => (*method).to_owned(),
        _ => dotted.to_owned(),
    }
}

fn at_least_one(v: &Sourced<usize>, key: &str) -> Result<(), ConfigError> {
    if v.value == 0 {
        return Err(ConfigError::new(
            &v.source,
            key_of(&v.source, key),
            "0",
            "must be at least 1",
        ));
    }
    Ok(())
}

fn positive(v: &Sourced<Duration>, key: &str) -> Result<(), ConfigError> {
    if v.value.is_zero() {
        return Err(ConfigError::new(
            &v.source,
            key_of(&v.source, key),
            ms(&v.value),
            "must be more than zero",
        ));
    }
    Ok(())
}

/// RFC 9110 `tchar`.
fn is_token(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// One endpoint URL, checked and completed (see `Resolver::url`), and
/// whether its scheme was assumed (it had none: `insecure` picks it, for
/// either protocol, as the specification says for gRPC); why not, if it
/// cannot be.
fn endpoint_url(
    given: &str,
    protocol: Protocol,
    scope: Scope,
    insecure: bool,
) -> Result<(String, bool), &'static str> {
    let mut url = given.trim().to_owned();
    if url.is_empty() {
        return Err("an empty endpoint (two commas in a row, or one at an end?)");
    }
    let assumed = !url.contains("://");
    if assumed {
        url = format!("{}://{url}", if insecure { "http" } else { "https" });
    }
    let (scheme, rest) = url.split_once("://").expect("checked above");
    if scheme != "http" && scheme != "https" {
        return Err("expected an http:// or https:// URL");
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let (host, port) = match authority.strip_prefix('[') {
        Some(v6) => match v6.split_once(']') {
            Some((host, port)) => (host, port.strip_prefix(':')),
            None => return Err("the host's `[` is never closed"),
        },
        None => match authority.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        },
    };
    if port.is_some_and(|p| p.parse::<u16>().is_err()) {
        return Err("the port is not a number from 0 to 65535");
    }
    if host.is_empty() || authority.contains(char::is_whitespace) || authority.contains('@') {
        return Err("the URL names no host");
    }
    if scope == Scope::Generic && protocol == Protocol::HttpProtobuf {
        url = format!("{}/v1/traces", url.trim_end_matches('/'));
    }
    Ok((url, assumed))
}
