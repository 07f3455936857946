//! Resolution: from the layers (builder, environment, file, highest
//! first) to the one validated configuration the engine runs with.
//!
//! For each setting the highest layer that set it wins. Where the
//! specification has a generic and a per-signal form (the exporter's
//! settings, the attribute limits), a layer's specific value beats its
//! generic one, and layers still go by precedence: an environment
//! variable's generic endpoint beats a file's traces endpoint. Each
//! signal (traces, logs, metrics) is resolved the same way from its own
//! scope (`OTEL_EXPORTER_OTLP_LOGS_*`, `[exporter.logs]`) and batch
//! processor (`OTEL_BSP_*` / `[batch]`, `OTEL_BLRP_*` / `[batch.logs]`,
//! for metrics otlpx's own policy and `OTEL_METRIC_EXPORT_TIMEOUT` /
//! `[batch.metrics]`), and shown under its own keys
//! (`exporter.logs.endpoint`, `batch.logs.*`); the
//! engine-wide settings (connections, in-flight bounds, retry, workers,
//! spool, admin) are one for all.
//!
//! This is the one validator: every check of a value happens here, and
//! every error names the value's source. Each resolved value is also kept,
//! with its source, as an [`EffectiveConfig`] entry.

use super::Sampler;
use super::layer::{ExporterLayer, Layer, Limit, Opt, Scope, Sourced};
use super::*;
use crate::ring::{MAX_CAPACITY_BYTES, MIN_CAPACITY_BYTES};
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

/// `OTEL_BLRP_MAX_QUEUE_SIZE` is converted the same way, at this many
/// bytes a log record: a record with a message of a hundred bytes or so
/// and a handful of attributes is about a span's size.
pub const QUEUE_LOG_RECORD_BYTES: usize = 512;

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
    /// The traces' ring size per CPU (the logs' is in `logs`).
    pub(crate) ring_bytes_per_cpu: usize,
    /// The metrics' ring size per CPU: the default, or
    /// `workers.ring_bytes_per_cpu` (metrics have no queue size).
    pub(crate) metrics_ring_bytes_per_cpu: usize,
    pub(crate) rings: Option<usize>,
    pub(crate) export: ExportConfig,
    /// The logs front door's limits, minimum severity and ring size.
    pub(crate) logs: LogsConfig,
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

/// One signal's exporter settings, resolved (`SignalExport` without the
/// batching).
struct SignalExporter {
    urls: Option<(Vec<String>, Source)>,
    enabled: bool,
    protocol: Protocol,
    compression: Compression,
    headers: Vec<(String, String)>,
    timeout: Duration,
    tls: TlsFiles,
}

/// One signal's batch processor settings, resolved.
struct SignalBatch {
    deadline: Duration,
    max_batch: usize,
    schedule_delay: Duration,
    prompt: bool,
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

    /// The highest layer's exporter value of `scope` (a signal's) or the
    /// generic one: within a layer the signal's own wins. Which of the two
    /// it was, for error messages.
    fn exporter<T: Clone>(
        &self,
        scope: Scope,
        get: impl Fn(&ExporterLayer) -> &Opt<T>,
    ) -> Option<(Sourced<T>, Scope)> {
        self.layers.iter().find_map(|l| {
            let own = get(&l.exporter[scope as usize]).clone();
            let generic = get(&l.exporter[Scope::Generic as usize]).clone();
            own.map(|v| (v, scope))
                .or(generic.map(|v| (v, Scope::Generic)))
        })
    }

    fn run(&mut self) -> Result<Resolved, ConfigError> {
        let disabled = self.value("disabled", |l| &l.disabled, false, bool::to_string);
        let (service_name, resource) = self.resource();
        let export = self.export()?;
        let sampler = self.sampler()?;
        let (limits, log_limits) = self.limits();
        let (
            [
                ring_bytes_per_cpu,
                logs_ring_bytes,
                metrics_ring_bytes_per_cpu,
            ],
            rings,
        ) = self.rings()?;
        let min_severity = self.logs_min_severity();
        self.no_effect();
        Ok(Resolved {
            disabled: disabled.value,
            service_name,
            resource,
            limits,
            sampler,
            ring_bytes_per_cpu,
            metrics_ring_bytes_per_cpu,
            rings,
            export,
            logs: LogsConfig {
                limits: log_limits,
                min_severity,
                ring_bytes_per_cpu: logs_ring_bytes,
            },
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
        let mut exporters = Vec::with_capacity(SIGNALS);
        for signal in Signal::ALL {
            exporters.push(self.signal_exporter(signal)?);
        }
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
            // One level for every signal: it must suit each one's codec.
            for x in &exporters {
                let range = match x.compression {
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
                            compression_name(x.compression),
                            range.start(),
                            range.end()
                        ),
                    ));
                }
            }
        }
        let retry = self.retry()?;
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
        let batch_bytes = self.value(
            "batch.max_batch_bytes",
            |l| &l.max_batch_bytes,
            MAX_BATCH_BYTES_DEFAULT,
            usize::to_string,
        );
        at_least_one(&batch_bytes, "batch.max_batch_bytes")?;
        let mut batches = Vec::with_capacity(SIGNALS);
        for signal in Signal::ALL {
            batches.push(self.batch(signal)?);
        }
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
        let signals: Vec<SignalExport> = exporters
            .into_iter()
            .zip(batches)
            .map(|(x, b)| SignalExport {
                urls: x.urls,
                enabled: x.enabled,
                protocol: x.protocol,
                compression: x.compression,
                headers: x.headers,
                timeout: x.timeout,
                deadline: b.deadline,
                tls: x.tls,
                max_batch: b.max_batch,
                max_batch_bytes: batch_bytes.value,
                schedule_delay: b.schedule_delay,
                prompt: b.prompt,
            })
            .collect();
        Ok(ExportConfig {
            signals: signals.try_into().expect("one per signal"),
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

    /// `signal`'s exporter: each setting from the signal's own scope or
    /// the generic one (see [`exporter`](Self::exporter)), shown under
    /// `exporter.<signal>.<key>`.
    fn signal_exporter(&mut self, signal: Signal) -> Result<SignalExporter, ConfigError> {
        let scope = Scope::of(signal);
        let shown_key = |name: &str| format!("exporter.{signal}.{name}");
        let protocol = self.exporter(scope, |e| &e.protocol);
        let protocol_value = protocol.as_ref().map_or(Protocol::Grpc, |(p, _)| p.value);
        let shown = match protocol_value {
            Protocol::Grpc => "grpc",
            Protocol::HttpProtobuf => "http/protobuf",
        };
        let source = protocol.map_or(Source::Default, |(p, _)| p.source);
        self.show(shown_key("protocol"), shown, &source);
        let enabled = self.exporter(scope, |e| &e.enabled).map_or(
            Sourced {
                value: true,
                source: Source::Default,
            },
            |(v, _)| v,
        );
        self.show(
            shown_key("enabled"),
            enabled.value.to_string(),
            &enabled.source,
        );
        let urls = self.url(signal, protocol_value, &enabled)?;
        let (compression, source) = self
            .exporter(scope, |e| &e.compression)
            .map_or((Compression::None, Source::Default), |(c, _)| {
                (c.value, c.source)
            });
        self.show(
            shown_key("compression"),
            compression_name(compression),
            &source,
        );
        let headers = self.headers(signal)?;
        let (timeout, timeout_scope) = self.exporter(scope, |e| &e.timeout).unwrap_or((
            Sourced {
                value: Duration::from_millis(EXPORT_TIMEOUT_MS_DEFAULT),
                source: Source::Default,
            },
            Scope::Generic,
        ));
        self.show(shown_key("timeout_ms"), ms(&timeout.value), &timeout.source);
        positive(&timeout, &format!("{}.timeout_ms", timeout_scope.section()))?;
        let tls = self.tls(signal)?;
        Ok(SignalExporter {
            urls,
            enabled: enabled.value,
            protocol: protocol_value,
            compression,
            headers,
            timeout: timeout.value,
            tls,
        })
    }

    /// `signal`'s batch processor: traces from `OTEL_BSP_*` / `[batch]`,
    /// logs from `OTEL_BLRP_*` / `[batch.logs]`, each with the
    /// specification's defaults (but otlpx's own schedule delay for
    /// spans, see [`SCHEDULE_DELAY_MS_DEFAULT`]); metrics from otlpx's own
    /// policy (see [`METRIC_SCHEDULE_DELAY_MS`]: no source sets its delay
    /// or batch size) with `OTEL_METRIC_EXPORT_TIMEOUT` / `[batch.metrics]
    /// export_timeout_ms`. The queue size sizes the rings (see
    /// [`rings`](Self::rings)); the logs' is shown here.
    fn batch(&mut self, signal: Signal) -> Result<SignalBatch, ConfigError> {
        let (prefix, delay_ms, deadline_ms, max_batch) = match signal {
            Signal::Traces => (
                "batch",
                SCHEDULE_DELAY_MS_DEFAULT,
                BSP_EXPORT_TIMEOUT_MS_DEFAULT,
                MAX_BATCH_SPANS_DEFAULT,
            ),
            Signal::Logs => (
                "batch.logs",
                LOG_SCHEDULE_DELAY_MS_DEFAULT,
                LOG_BATCH_EXPORT_TIMEOUT_MS_DEFAULT,
                MAX_BATCH_LOG_RECORDS_DEFAULT,
            ),
            Signal::Metrics => (
                "batch.metrics",
                METRIC_SCHEDULE_DELAY_MS,
                METRIC_EXPORT_TIMEOUT_MS_DEFAULT,
                MAX_BATCH_METRICS,
            ),
        };
        let key = |name: &str| format!("{prefix}.{name}");
        let deadline = self.value(
            &key("export_timeout_ms"),
            |l| &l.batch(signal).export_timeout,
            Duration::from_millis(deadline_ms),
            ms,
        );
        positive(&deadline, &key("export_timeout_ms"))?;
        let batch = self.value(
            &key("max_export_batch_size"),
            |l| &l.batch(signal).max_export_batch_size,
            max_batch,
            usize::to_string,
        );
        at_least_one(&batch, &key("max_export_batch_size"))?;
        let delay = self.value(
            &key("schedule_delay_ms"),
            |l| &l.batch(signal).schedule_delay,
            Duration::from_millis(delay_ms),
            ms,
        );
        positive(&delay, &key("schedule_delay_ms"))?;
        if signal == Signal::Logs {
            let queue = self.value(
                &key("max_queue_size"),
                |l| &l.batch(signal).max_queue_size,
                LOG_QUEUE_RECORDS_DEFAULT,
                usize::to_string,
            );
            at_least_one(&queue, &key("max_queue_size"))?;
        }
        Ok(SignalBatch {
            deadline: deadline.value,
            max_batch: batch.value,
            schedule_delay: delay.value,
            // A collection's burst wakes its worker (see
            // `METRIC_SCHEDULE_DELAY_MS`); spans and log records trickle
            // in, and wait for their worker's next look.
            prompt: signal == Signal::Metrics,
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

    /// `signal`'s URLs (one, or several to balance over): a generic
    /// endpoint gets the signal's path (`/v1/traces`, `/v1/logs`,
    /// `/v1/metrics`) over
    /// HTTP, a signal's own is used as given; an endpoint without a scheme
    /// gets one from `insecure`, with a warning. With export on and no
    /// endpoint anywhere, the specification's default for the protocol
    /// (with the `export` feature; without it, none: the caller drains).
    fn url(
        &mut self,
        signal: Signal,
        protocol: Protocol,
        enabled: &Sourced<bool>,
    ) -> Result<Option<(Vec<String>, Source)>, ConfigError> {
        let scope = Scope::of(signal);
        let shown_key = format!("exporter.{signal}.endpoint");
        let off = |this: &mut Self| {
            this.show(
                &shown_key,
                "none: export off, the caller drains",
                &enabled.source,
            );
            Ok(None)
        };
        let Some((given, found)) = self.exporter(scope, |e| &e.endpoint) else {
            if !enabled.value {
                return off(self);
            }
            if !cfg!(feature = "export") {
                self.show(
                    &shown_key,
                    "none: built without export, the caller drains",
                    &Source::Default,
                );
                return Ok(None);
            }
            let url = match (protocol, signal) {
                (Protocol::Grpc, _) => DEFAULT_GRPC_ENDPOINT,
                (Protocol::HttpProtobuf, Signal::Traces) => DEFAULT_HTTP_TRACES_ENDPOINT,
                (Protocol::HttpProtobuf, Signal::Logs) => DEFAULT_HTTP_LOGS_ENDPOINT,
                (Protocol::HttpProtobuf, Signal::Metrics) => DEFAULT_HTTP_METRICS_ENDPOINT,
            };
            self.show(&shown_key, url, &Source::Default);
            return Ok(Some((vec![url.to_owned()], Source::Default)));
        };
        let key = key_of(&given.source, &format!("{}.endpoint", found.section()));
        let insecure = self
            .exporter(scope, |e| &e.insecure)
            .is_some_and(|(i, _)| i.value);
        // The signal's path, for a generic endpoint over HTTP.
        let path = (found == Scope::Generic && protocol == Protocol::HttpProtobuf)
            .then(|| format!("/v1/{signal}"));
        let mut urls = Vec::new();
        for one in given.value.split(',') {
            let bad = |reason: &str| ConfigError::new(&given.source, &key, one.trim(), reason);
            let (url, assumed) = endpoint_url(one, path.as_deref(), insecure).map_err(bad)?;
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
                let w = format!(
                    "{}: endpoint {:?} has no scheme; assumed {scheme} ({change})",
                    given.source,
                    one.trim()
                );
                // Once: a generic endpoint serves every signal.
                if !self.warnings.contains(&w) {
                    self.warnings.push(w);
                }
            }
            urls.push(url);
        }
        // Checked all the same: turning export on again must not find a
        // bad endpoint only then.
        if !enabled.value {
            return off(self);
        }
        self.show(&shown_key, urls.join(","), &given.source);
        Ok(Some((urls, given.source)))
    }

    /// `signal`'s headers, its own and the generic ones merged by name
    /// (case-insensitively; within a layer its own win); values masked.
    fn headers(&mut self, signal: Signal) -> Result<Vec<(String, String)>, ConfigError> {
        let scopes = [Scope::of(signal), Scope::Generic];
        let mut names: Vec<String> = Vec::new();
        for l in self.layers {
            for scope in scopes {
                for (n, _) in &l.exporter[scope as usize].headers {
                    if !names.iter().any(|m| m.eq_ignore_ascii_case(n)) {
                        names.push(n.clone());
                    }
                }
            }
        }
        let mut out = Vec::new();
        for name in names {
            let (v, scope) = self
                .layers
                .iter()
                .find_map(|l| {
                    scopes.iter().find_map(|&s| {
                        l.exporter[s as usize]
                            .headers
                            .iter()
                            .rev()
                            .find(|(n, _)| n.eq_ignore_ascii_case(&name))
                            .map(|(_, v)| (v.clone(), s))
                    })
                })
                .expect("the name came from a layer");
            let key = key_of(&v.source, &format!("{}.headers.{name}", scope.section()));
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
            self.show(
                format!("exporter.{signal}.headers.{name}"),
                "***",
                &v.source,
            );
            out.push((name, v.value));
        }
        Ok(out)
    }

    /// `signal`'s certificate files, each checked to be readable.
    fn tls(&mut self, signal: Signal) -> Result<TlsFiles, ConfigError> {
        let scope = Scope::of(signal);
        let mut file = |name: &str, get: fn(&ExporterLayer) -> &Opt<std::path::PathBuf>| {
            let Some((v, found)) = self.exporter(scope, get) else {
                self.show(
                    format!("exporter.{signal}.{name}"),
                    "none",
                    &Source::Default,
                );
                return Ok(None);
            };
            let key = key_of(&v.source, &format!("{}.{name}", found.section()));
            let shown = v.value.display().to_string();
            if let Err(e) = std::fs::File::open(&v.value) {
                return Err(ConfigError::new(
                    &v.source,
                    key,
                    shown,
                    format!("cannot read the file: {e}"),
                ));
            }
            self.show(format!("exporter.{signal}.{name}"), shown, &v.source);
            Ok(Some((v, found)))
        };
        let ca = file("certificate", |e| &e.certificate)?;
        let cert = file("client_certificate", |e| &e.client_certificate)?;
        let key = file("client_key", |e| &e.client_key)?;
        match (&cert, &key) {
            (Some((c, found)), None) => {
                return Err(ConfigError::new(
                    &c.source,
                    key_of(
                        &c.source,
                        &format!("{}.client_certificate", found.section()),
                    ),
                    c.value.display().to_string(),
                    "a client certificate needs a client key too",
                ));
            }
            (None, Some((k, found))) => {
                return Err(ConfigError::new(
                    &k.source,
                    key_of(&k.source, &format!("{}.client_key", found.section())),
                    k.value.display().to_string(),
                    "a client key needs a client certificate too",
                ));
            }
            _ => {}
        }
        Ok(TlsFiles {
            ca_certificate: ca.map(|(v, _)| v.value),
            client_certificate: cert.map(|(v, _)| v.value),
            client_key: key.map(|(v, _)| v.value),
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

    /// The span and the log record limits: per layer a specific limit
    /// beats the generic one (`OTEL_ATTRIBUTE_*_LIMIT`) it falls back to.
    fn limits(&mut self) -> (SpanLimits, LogLimits) {
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
        let spans = SpanLimits {
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
        };
        let d = LogLimits::default();
        let logs = LogLimits {
            max_attributes: pick(
                self,
                "log_record_attribute_count",
                Limit::LogRecordAttributeCount,
                Some(Limit::AttributeCount),
                Some(d.max_attributes),
            )
            .unwrap_or(d.max_attributes),
            max_attribute_value_length: pick(
                self,
                "log_record_attribute_value_length",
                Limit::LogRecordAttributeValueLength,
                Some(Limit::AttributeValueLength),
                None,
            )
            .unwrap_or(d.max_attribute_value_length),
        };
        (spans, logs)
    }

    /// `logs.min_severity`: 0, every record, unless set.
    fn logs_min_severity(&mut self) -> u8 {
        self.value(
            "logs.min_severity",
            |l| &l.logs_min_severity,
            0,
            u8::to_string,
        )
        .value
    }

    /// The rings: how many, and each signal's size per CPU, by
    /// [`Signal::index`] (see [`ring_bytes`](Self::ring_bytes)).
    fn rings(&mut self) -> Result<([usize; SIGNALS], Option<usize>), ConfigError> {
        let rings = self.layers.iter().find_map(|l| l.rings.clone());
        match &rings {
            Some(r) => {
                self.show("workers.rings", r.value.to_string(), &r.source);
                at_least_one(r, "workers.rings")?;
            }
            None => self.show("workers.rings", "one per CPU", &Source::Default),
        }
        let count = rings.as_ref().map(|r| r.value);
        let mut bytes = [0; SIGNALS];
        for signal in Signal::ALL {
            bytes[signal.index()] = self.ring_bytes(signal, count)?;
        }
        Ok((bytes, count))
    }

    /// `signal`'s ring size per CPU: `workers.ring_bytes_per_cpu` if set
    /// (for every signal), else from the signal's batch queue size (items
    /// at [`QUEUE_SPAN_BYTES`] / [`QUEUE_LOG_RECORD_BYTES`] each, spread
    /// over the `rings`, rounded up to a power of two; metrics have none),
    /// else the default.
    fn ring_bytes(&mut self, signal: Signal, rings: Option<usize>) -> Result<usize, ConfigError> {
        let (shown_key, queue) = match signal {
            Signal::Traces => (
                "workers.ring_bytes_per_cpu",
                Some(("batch.max_queue_size", QUEUE_SPAN_BYTES)),
            ),
            Signal::Logs => (
                "logs.ring_bytes_per_cpu",
                Some(("batch.logs.max_queue_size", QUEUE_LOG_RECORD_BYTES)),
            ),
            Signal::Metrics => ("metrics.ring_bytes_per_cpu", None),
        };
        let explicit = self
            .layers
            .iter()
            .find_map(|l| l.ring_bytes_per_cpu.clone());
        let queue = queue.and_then(|(key, item_bytes)| {
            self.layers
                .iter()
                .find_map(|l| l.batch(signal).max_queue_size.clone())
                .map(|q| (q, key, item_bytes))
        });
        if let Some((q, key, _)) = &queue {
            at_least_one(q, key)?;
        }
        let bytes = match (explicit, queue) {
            (Some(b), _) => b,
            (None, Some((q, _, item_bytes))) => {
                let count = rings
                    .unwrap_or_else(crate::ring::Rings::default_count)
                    .max(1);
                let per_ring = (q.value.saturating_mul(item_bytes) / count).next_power_of_two();
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
        self.show(shown_key, bytes.value.to_string(), &bytes.source);
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
        Ok(bytes.value)
    }

    /// Reports, once each, settings of parts otlpx does not have yet (the
    /// metrics API's collection interval, `OTEL_METRIC_EXPORT_INTERVAL`:
    /// the pipeline exports metrics, but nothing collects them yet).
    fn no_effect(&mut self) {
        const WHY: &str = "otlpx has no metrics API yet (nothing collects metrics on an \
                           interval), so it has no effect";
        let mut seen = Vec::new();
        for l in self.layers {
            if let Some(v) = &l.metric_export_interval {
                let w = format!("{}: {WHY}", v.source);
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

/// One endpoint URL, checked and completed with `path` (a signal's, for a
/// generic endpoint over HTTP; see `Resolver::url`), and whether its scheme
/// was assumed (it had none: `insecure` picks it, for either protocol, as
/// the specification says for gRPC); why not, if it cannot be.
fn endpoint_url(
    given: &str,
    path: Option<&str>,
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
    if let Some(path) = path {
        url = format!("{}{path}", url.trim_end_matches('/'));
    }
    Ok((url, assumed))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    /// Resolves `vars` as the environment and `toml` as the file.
    fn resolved(vars: &[(&str, &str)], toml: &str) -> Resolved {
        resolved_over(&Layer::default(), vars, toml)
    }

    fn resolved_over(builder: &Layer, vars: &[(&str, &str)], toml: &str) -> Resolved {
        let lookup = |k: &str| {
            vars.iter()
                .find(|(name, _)| *name == k)
                .map(|(_, v)| (*v).to_owned())
        };
        let mut warnings = Vec::new();
        let env = super::super::env::read(&lookup, &mut warnings, false).unwrap();
        let file = super::super::file::read(toml, Path::new("t.toml"), &mut warnings).unwrap();
        resolve_layers(builder, env, &file, warnings, false).unwrap_or_else(|e| panic!("{e}"))
    }

    fn urls(r: &Resolved, signal: Signal) -> Vec<String> {
        r.export.signal(signal).urls.clone().unwrap().0
    }

    #[test]
    fn logs_defaults_are_the_specifications() {
        let r = resolved(&[], "");
        assert_eq!(
            r.logs,
            LogsConfig {
                limits: LogLimits::default(),
                min_severity: 0,
                ring_bytes_per_cpu: DEFAULT_RING_BYTES_PER_CPU,
            }
        );
        let logs = r.export.signal(Signal::Logs);
        assert!(logs.enabled);
        if cfg!(feature = "export") {
            assert_eq!(urls(&r, Signal::Logs), [DEFAULT_GRPC_ENDPOINT]);
        } else {
            assert!(logs.urls.is_none(), "the caller drains");
        }
        assert_eq!(logs.max_batch, 512);
        assert_eq!(logs.schedule_delay, Duration::from_millis(1000));
        assert_eq!(logs.deadline, Duration::from_millis(30_000));
        assert_eq!(
            logs.timeout,
            Duration::from_millis(EXPORT_TIMEOUT_MS_DEFAULT)
        );
        assert_eq!(logs.max_batch_bytes, MAX_BATCH_BYTES_DEFAULT);
        assert!(r.effective.warnings().is_empty());
    }

    #[test]
    fn each_signal_from_its_own_scope_or_the_generic_one() {
        let r = resolved(
            &[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318/"),
                ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
                ("OTEL_EXPORTER_OTLP_HEADERS", "a=generic,b=generic"),
                ("OTEL_EXPORTER_OTLP_LOGS_HEADERS", "A=logs"),
                ("OTEL_EXPORTER_OTLP_LOGS_COMPRESSION", "zstd"),
                ("OTEL_EXPORTER_OTLP_LOGS_TIMEOUT", "700"),
                ("OTEL_BLRP_SCHEDULE_DELAY", "250"),
                ("OTEL_BLRP_EXPORT_TIMEOUT", "5000"),
                ("OTEL_BLRP_MAX_EXPORT_BATCH_SIZE", "100"),
            ],
            "[batch]\nmax_batch_bytes = 65536\n",
        );
        let (traces, logs) = (
            r.export.signal(Signal::Traces),
            r.export.signal(Signal::Logs),
        );
        assert_eq!(urls(&r, Signal::Traces), ["http://c:4318/v1/traces"]);
        assert_eq!(urls(&r, Signal::Logs), ["http://c:4318/v1/logs"]);
        assert_eq!(logs.protocol, Protocol::HttpProtobuf);
        let pairs = |h: &[(String, String)]| {
            h.iter()
                .map(|(n, v)| format!("{n}={v}"))
                .collect::<Vec<_>>()
        };
        assert_eq!(pairs(&logs.headers), ["A=logs", "b=generic"]);
        assert_eq!(pairs(&traces.headers), ["a=generic", "b=generic"]);
        assert_eq!(
            (logs.compression, traces.compression),
            (Compression::Zstd, Compression::None)
        );
        assert_eq!(logs.timeout, Duration::from_millis(700));
        assert_eq!(
            traces.timeout,
            Duration::from_millis(EXPORT_TIMEOUT_MS_DEFAULT)
        );
        assert_eq!(logs.schedule_delay, Duration::from_millis(250));
        assert_eq!(logs.deadline, Duration::from_millis(5000));
        assert_eq!(logs.max_batch, 100);
        assert_eq!(traces.schedule_delay, Duration::from_millis(1000));
        assert_eq!(traces.max_batch, MAX_BATCH_SPANS_DEFAULT);
        // One request size bound for both.
        assert_eq!(
            (traces.max_batch_bytes, logs.max_batch_bytes),
            (65536, 65536)
        );
    }

    #[test]
    fn export_off_from_the_builder_turns_off_every_signal() {
        let mut builder = Layer::default();
        builder.exporter[Scope::Generic as usize].enabled =
            Sourced::new(false, Source::Builder { method: "export" });
        let r = resolved_over(&builder, &[("OTEL_LOGS_EXPORTER", "otlp")], "");
        for signal in Signal::ALL {
            let s = r.export.signal(signal);
            assert!(!s.enabled && s.urls.is_none(), "{signal}");
        }
        // `OTEL_LOGS_EXPORTER=none`: logs only.
        let r = resolved(&[("OTEL_LOGS_EXPORTER", "none")], "");
        assert!(r.export.signal(Signal::Traces).enabled);
        assert!(!r.export.signal(Signal::Logs).enabled);
    }

    #[test]
    fn log_limits_severity_and_ring_size() {
        let r = resolved(
            &[
                ("OTEL_ATTRIBUTE_COUNT_LIMIT", "9"),
                ("OTEL_LOGRECORD_ATTRIBUTE_VALUE_LENGTH_LIMIT", "33"),
                ("OTEL_BLRP_MAX_QUEUE_SIZE", "64"),
            ],
            "[logs]\nmin_severity = \"error\"\n[workers]\nrings = 2\n",
        );
        assert_eq!(
            r.logs.limits,
            LogLimits {
                max_attributes: 9,
                max_attribute_value_length: 33,
            }
        );
        assert_eq!(r.logs.min_severity, 17);
        // 64 records at 512 bytes over 2 rings, at least 4 KiB.
        assert_eq!(r.logs.ring_bytes_per_cpu, 16 << 10);
        assert_eq!(r.ring_bytes_per_cpu, DEFAULT_RING_BYTES_PER_CPU);
        // An explicit ring size is every signal's.
        let r = resolved(
            &[("OTEL_BLRP_MAX_QUEUE_SIZE", "64")],
            "[workers]\nring_bytes_per_cpu = 65536\n",
        );
        assert_eq!(
            (r.ring_bytes_per_cpu, r.logs.ring_bytes_per_cpu),
            (65536, 65536)
        );
        // The builder's "no limit".
        let mut builder = Layer::default();
        builder.limits[Limit::LogRecordAttributeValueLength as usize] =
            Sourced::new(u32::MAX, Source::Builder { method: "limits" });
        let r = resolved_over(&builder, &[("OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT", "5")], "");
        assert_eq!(r.logs.limits.max_attribute_value_length, u32::MAX);
    }
}
