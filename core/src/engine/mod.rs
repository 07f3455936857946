//! The [`Engine`] handle: built once from an [`EngineBuilder`], it owns the
//! rings, the resource, the registry of instrumentation scopes, and hands
//! out [`Tracer`]s. Everything here runs at setup or on the consumer side;
//! nothing here is on the recording hot path. The fork hooks ([`fork`])
//! are the engine's too: they hold and restart engines across `fork()`.

pub(crate) mod fork;
#[cfg(test)]
mod tests;

use crate::clock::Clock;
use crate::config::layer::{ExporterLayer, Layer, Limit, Opt, Scope, Sourced};
use crate::config::resolve::Resolved;
use crate::config::{self, Compression, ConfigError, EffectiveConfig, Protocol, Sampler};
use crate::config::{Overflow, Source, SpanLimits};
use crate::export::batch::{Batcher, Max};
use crate::export::frame::{Catalog, ScopeBytes, Scopes, resource_bytes};
use crate::logs::Logger;
use crate::proto;
use crate::record::Recorder;
use crate::ring::{CapacityError, Rings, Signal};
use crate::telemetry::Stats;
use crate::trace::Tracer;
use crate::value::{KeyValue, Value};
use bytes::BytesMut;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLockWriteGuard};
use std::time::Duration;
#[cfg(feature = "export")]
use {
    crate::config::ExportConfig,
    crate::export::batch::Policy,
    crate::export::deliver::{SignalSettings, WorkerSettings},
    crate::export::drain::Workers,
    crate::export::transport::{Balanced, GrpcTransport, HttpTransport, Transport},
    crate::ring::SIGNALS,
    crate::telemetry::{ExportCounters, SignalCounters},
    std::time::Instant,
};

/// Why an engine could not be built.
#[derive(thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// A configuration value is malformed or out of range; the error names
    /// its source (builder method, environment variable or `file:line`).
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The rings could not be allocated.
    #[error("invalid ring_bytes_per_cpu: {0}")]
    RingCapacity(#[from] CapacityError),
    /// The exporter's runtime, transport, threads or admin endpoint could
    /// not start.
    #[error("cannot start the exporter: {0}")]
    Start(String),
    /// The disk spool could not be opened: its directory is locked by
    /// another engine, or cannot be created or read.
    #[cfg(feature = "export")]
    #[error(transparent)]
    Spool(#[from] crate::export::spool::SpoolError),
}

debug_as_display!(BuildError);

/// Configures and builds an [`Engine`].
///
/// Settings come from three sources besides the defaults, and the highest
/// that sets a value wins: the builder's methods, then the standard
/// `OTEL_*` environment variables (read at [`build`](Self::build); see
/// [`environment`](Self::environment)), then a TOML file
/// ([`config_file`](Self::config_file), or the file `OTLPX_CONFIG` or
/// `CONFIG_PATH` names). README.md lists every key.
///
/// ```
/// let engine = otlpx::Engine::builder()
///     .service_name("checkout")
///     .resource_attribute("deployment.environment.name", "prod")
///     .ring_bytes_per_cpu(256 << 10)
///     .build()?;
/// # Ok::<(), otlpx::BuildError>(())
/// ```
#[derive(Debug, Clone)]
#[must_use = "a builder does nothing until `build`"]
pub struct EngineBuilder {
    /// What the methods set, each value tagged with its method.
    layer: Layer,
    /// Typed resource attributes from [`resource_attribute`](Self::resource_attribute).
    resource: Vec<(String, Vec<u8>)>,
    environment: Environment,
    file: Option<ConfigFile>,
    /// An invalid environment value is an error, not a warning.
    strict_env: bool,
    #[cfg(feature = "export")]
    transport: Option<CustomTransport>,
}

/// Where `OTEL_*` variables are read from.
#[derive(Debug, Clone)]
enum Environment {
    Process,
    Given(Vec<(String, String)>),
}

/// The configuration file the builder was given.
#[derive(Debug, Clone)]
enum ConfigFile {
    Path(PathBuf),
    Toml { text: String, name: PathBuf },
}

/// A caller's transport, shown as such in `Debug`.
#[cfg(feature = "export")]
#[derive(Clone)]
struct CustomTransport(Arc<dyn Transport>);

#[cfg(feature = "export")]
impl std::fmt::Debug for CustomTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CustomTransport")
    }
}

const SERVICE_NAME: &str = "service.name";

fn any_value(value: &Value<'_>) -> Vec<u8> {
    proto::any_value_bytes(value, usize::MAX)
}

/// A value set by the builder method `method`.
fn by<T>(method: &'static str, value: T) -> Opt<T> {
    Sourced::new(value, Source::Builder { method })
}

impl EngineBuilder {
    fn generic(&mut self) -> &mut ExporterLayer {
        &mut self.layer.exporter[Scope::Generic as usize]
    }

    /// The `service.name` resource attribute (beats `OTEL_SERVICE_NAME`).
    /// Without one from any source, the engine uses
    /// `unknown_service:<executable name>` as the specification requires.
    pub fn service_name(mut self, name: impl AsRef<str>) -> Self {
        self.layer.service_name = by("service_name", name.as_ref().to_owned());
        self
    }

    /// A resource attribute, describing the whole process. A key set twice
    /// keeps the last value; a key set here beats the same key from
    /// `OTEL_RESOURCE_ATTRIBUTES` or the file.
    pub fn resource_attribute<'v>(
        mut self,
        key: impl Into<String>,
        value: impl Into<Value<'v>>,
    ) -> Self {
        let (key, value) = (key.into(), value.into());
        if key == SERVICE_NAME
            && let Value::Str(name) = value
        {
            self.layer.service_name = by("resource_attribute", name.to_owned());
        }
        self.resource.push((key, any_value(&value)));
        self
    }

    /// Bytes of ring per CPU: a power of two from 64 bytes to 1 GiB
    /// (default 1 MiB). One span may take up to half a ring.
    pub fn ring_bytes_per_cpu(mut self, bytes: usize) -> Self {
        self.layer.ring_bytes_per_cpu = by("ring_bytes_per_cpu", bytes);
        self
    }

    /// How many rings (default: one per configured CPU). Spans from a CPU
    /// numbered past the count share a ring with another CPU.
    pub fn rings(mut self, count: usize) -> Self {
        self.layer.rings = by("rings", count);
        self
    }

    /// Span limits (default: the specification's); they beat the
    /// `OTEL_*_LIMIT` variables.
    pub fn span_limits(mut self, limits: SpanLimits) -> Self {
        let set = [
            (Limit::SpanAttributeCount, limits.max_attributes_per_span),
            (Limit::SpanEventCount, limits.max_events_per_span),
            (Limit::SpanLinkCount, limits.max_links_per_span),
            (Limit::EventAttributeCount, limits.max_attributes_per_event),
            (Limit::LinkAttributeCount, limits.max_attributes_per_link),
            (
                Limit::SpanAttributeValueLength,
                limits.max_attribute_value_length.unwrap_or(u32::MAX),
            ),
        ];
        for (limit, value) in set {
            self.layer.limits[limit as usize] = by("span_limits", value);
        }
        self
    }

    /// The head sampler (default `ParentBasedAlwaysOn`; see
    /// `OTEL_TRACES_SAMPLER`).
    pub fn sampler(mut self, sampler: Sampler) -> Self {
        self.layer.sampler = by("sampler", sampler);
        self
    }

    /// Log records below `severity` (and not unspecified) are filtered
    /// out at the call, for one compare (`OTLPX_LOGS_MIN_SEVERITY`,
    /// `[logs] min_severity`; default: every record passes).
    pub fn logs_min_severity(mut self, severity: crate::logs::Severity) -> Self {
        self.layer.logs_min_severity = by("logs_min_severity", severity.number());
        self
    }

    /// Disables the engine: spans record nothing and cost next to nothing,
    /// nothing is exported (`OTEL_SDK_DISABLED`).
    pub fn disabled(mut self, disabled: bool) -> Self {
        self.layer.disabled = by("disabled", disabled);
        self
    }

    /// Exports to the OTLP receiver at `url`, for every signal: over gRPC
    /// the URL as given (`http://collector:4317`), over HTTP a base to
    /// which the signal's path (`/v1/traces`, `/v1/logs`, `/v1/metrics`)
    /// is appended (`http://collector:4318`). A URL
    /// without a scheme (`collector:4317`) gets `https://`, or `http://`
    /// when `insecure` is set (`OTEL_EXPORTER_OTLP_INSECURE`, `[exporter]
    /// insecure`), with a warning saying which.
    ///
    /// Without an endpoint from any source, the engine exports to the
    /// OpenTelemetry default, a Collector on this host:
    /// [`DEFAULT_GRPC_ENDPOINT`](crate::config::DEFAULT_GRPC_ENDPOINT)
    /// (`http://localhost:4317`) over gRPC,
    /// `http://localhost:4318` and the signal's path over HTTP (traces:
    /// [`DEFAULT_HTTP_TRACES_ENDPOINT`](crate::config::DEFAULT_HTTP_TRACES_ENDPOINT),
    /// `http://localhost:4318/v1/traces`). To record without exporting,
    /// for [`Engine::drain`], use
    /// [`export(false)`](Self::export). (Built without the `export`
    /// feature, an engine never exports, and an endpoint is an error.)
    pub fn endpoint(mut self, url: impl Into<String>) -> Self {
        self.generic().endpoint = by("endpoint", url.into());
        self
    }

    /// Exports to several OTLP receivers (a tier of collectors), each URL
    /// as [`endpoint`](Self::endpoint) takes it: each request goes to the
    /// endpoint with the fewest requests in flight, and an endpoint that
    /// fails is taken out and probed back in (see
    /// `otlpx::transport::balance`). The environment and the file take a
    /// comma-separated list (a TOML array too).
    ///
    /// ```
    /// # #[cfg(feature = "export")] // the default feature; without it, no exporter
    /// let engine = otlpx::Engine::builder()
    ///     .endpoints(["http://collector-a:4317", "http://collector-b:4317"])
    ///     .build()?;
    /// # Ok::<(), otlpx::BuildError>(())
    /// ```
    pub fn endpoints<S: AsRef<str>>(mut self, urls: impl IntoIterator<Item = S>) -> Self {
        let list: Vec<String> = urls.into_iter().map(|u| u.as_ref().to_owned()).collect();
        self.generic().endpoint = by("endpoints", list.join(","));
        self
    }

    /// Exports traces to `url`, used as given (over HTTP, the full URL,
    /// `/v1/traces` included); overrides [`endpoint`](Self::endpoint).
    pub fn traces_endpoint(mut self, url: impl Into<String>) -> Self {
        self.layer.exporter[Scope::Traces as usize].endpoint = by("traces_endpoint", url.into());
        self
    }

    /// Whether the engine exports (default true). `false` keeps it
    /// recording every signal, with no workers and no connections, for its
    /// caller to take the items with [`Engine::drain`]; it beats an endpoint
    /// or a [`transport`](Self::transport) from any source. The
    /// environment says the same with `OTEL_TRACES_EXPORTER`,
    /// `OTEL_LOGS_EXPORTER` and `OTEL_METRICS_EXPORTER` all `none`, the
    /// file with `[exporter] enabled = false`. (To record nothing at all,
    /// see [`disabled`](Self::disabled).)
    ///
    /// ```
    /// let engine = otlpx::Engine::builder().export(false).build()?;
    /// engine.tracer("demo", "").start("work").end();
    /// let mut out = bytes::BytesMut::new();
    /// assert_eq!(engine.drain_traces(&mut out, 512), 1);
    /// # Ok::<(), otlpx::BuildError>(())
    /// ```
    pub fn export(mut self, enabled: bool) -> Self {
        self.generic().enabled = by("export", enabled);
        self
    }

    /// How long dropping the last [`Engine`] handle may take to deliver
    /// what is still on its way (default
    /// [`SHUTDOWN_TIMEOUT_MS_DEFAULT`](crate::config::SHUTDOWN_TIMEOUT_MS_DEFAULT),
    /// 5 s; `OTLPX_SHUTDOWN_TIMEOUT_MS`, `[exporter] shutdown_timeout_ms`).
    /// A drop returns within this timeout plus about 100 ms to abandon the
    /// requests still unanswered (counted as
    /// [`Dropped::shutdown`](crate::Dropped::shutdown), or spooled, with a
    /// spool). [`Engine::shutdown`] takes its own timeout instead.
    pub fn shutdown_timeout(mut self, timeout: Duration) -> Self {
        self.layer.shutdown_timeout = by("shutdown_timeout", timeout);
        self
    }

    /// Whether an invalid `OTEL_*` / `OTLPX_*` environment value fails
    /// [`build`](Self::build) (default false). By default, as the SDK
    /// configuration specification says, such a value is reported (a
    /// warning in [`EffectiveConfig::warnings`], a `tracing` event,
    /// [`Stats::config_warnings`](crate::telemetry::Stats::config_warnings))
    /// and ignored: the setting takes the file's value or the default.
    /// The builder's and the file's values are always checked strictly.
    ///
    /// ```
    /// let vars = [("OTEL_BSP_SCHEDULE_DELAY", "abc")];
    /// let lenient = otlpx::Engine::builder().environment(vars).export(false).build()?;
    /// assert!(lenient.config().warnings()[0].contains("OTEL_BSP_SCHEDULE_DELAY"));
    /// let strict = otlpx::Engine::builder().environment(vars).strict_env(true).build();
    /// assert!(strict.is_err());
    /// # Ok::<(), otlpx::BuildError>(())
    /// ```
    pub fn strict_env(mut self, strict: bool) -> Self {
        self.strict_env = strict;
        self
    }

    /// OTLP/gRPC (default) or OTLP/HTTP with protobuf bodies.
    pub fn protocol(mut self, protocol: Protocol) -> Self {
        self.generic().protocol = by("protocol", protocol);
        self
    }

    /// Request compression (default none).
    pub fn compression(mut self, compression: Compression) -> Self {
        self.generic().compression = by("compression", compression);
        self
    }

    /// The compression level: gzip 0-9 (default
    /// [`GZIP_LEVEL_DEFAULT`](crate::config::GZIP_LEVEL_DEFAULT)), zstd
    /// 1-22 (default [`ZSTD_LEVEL_DEFAULT`](crate::config::ZSTD_LEVEL_DEFAULT)).
    pub fn compression_level(mut self, level: i32) -> Self {
        self.layer.compression_level = by("compression_level", level);
        self
    }

    /// A header sent with every request (an API key, a tenant id); it
    /// beats a header of the same name from the environment or the file.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        let value = Sourced {
            value: value.into(),
            source: Source::Builder { method: "header" },
        };
        self.generic().headers.push((name.into(), value));
        self
    }

    /// How long one attempt of a request may wait for its answer (default
    /// 10 s; `OTEL_EXPORTER_OTLP_TIMEOUT`).
    pub fn export_timeout(mut self, timeout: Duration) -> Self {
        self.generic().timeout = by("export_timeout", timeout);
        self
    }

    /// How long a request may take from its first attempt to its last,
    /// retries and their waits included (default 30 s;
    /// `OTEL_BSP_EXPORT_TIMEOUT`). No attempt starts after it.
    pub fn batch_export_timeout(mut self, timeout: Duration) -> Self {
        self.layer.bsp.export_timeout = by("batch_export_timeout", timeout);
        self
    }

    /// Whether failed requests are retried as the OTLP specification says
    /// (default yes): which failures are retried, and how long the waits
    /// are, is documented in `otlpx::transport::retry`.
    pub fn retry(mut self, enabled: bool) -> Self {
        self.layer.retry_enabled = by("retry", enabled);
        self
    }

    /// The backoff between retries when the receiver names no delay: the
    /// wait before retry `n` is uniformly random up to `min(max, initial ×
    /// 2^n)` (defaults 1 s and 5 s).
    pub fn retry_backoff(mut self, initial: Duration, max: Duration) -> Self {
        self.layer.retry_initial_backoff = by("retry_backoff", initial);
        self.layer.retry_max_backoff = by("retry_backoff", max);
        self
    }

    /// Connections to the receiver (default 2): separately connected
    /// HTTP/2 channels for gRPC, pooled keep-alive connections for HTTP.
    pub fn connections(mut self, connections: usize) -> Self {
        self.layer.connections = by("connections", connections);
        self
    }

    /// Requests being sent at once, all workers and signals together
    /// (default 8). A request waiting for a retry does not count (its
    /// bytes do, in [`max_in_flight_bytes`](Self::max_in_flight_bytes)).
    /// While all are out, items wait in the rings.
    pub fn max_in_flight(mut self, requests: usize) -> Self {
        self.layer.max_in_flight = by("max_in_flight", requests);
        self
    }

    /// Bound on the bytes (compressed, as sent) of requests held: being
    /// sent, waiting for a retry, or (with a spool) to be written to it
    /// (default 16 MiB), every signal's together. A request starts while
    /// fewer bytes are held; an outage fills this before anything is
    /// evicted.
    pub fn max_in_flight_bytes(mut self, bytes: usize) -> Self {
        self.layer.max_in_flight_bytes = by("max_in_flight_bytes", bytes);
        self
    }

    /// What happens when the in-flight bounds are reached and more spans
    /// wait (default [`Overflow::DropOldest`]).
    pub fn overflow(mut self, overflow: Overflow) -> Self {
        self.layer.overflow = by("overflow", overflow);
        self
    }

    /// Keeps what cannot be delivered in a bounded queue on disk, in `dir`
    /// (created if missing; one engine at a time: it is locked), and sends
    /// it when the receiver is back, oldest first, after a restart too. See
    /// `otlpx::spool` for what goes there and when.
    pub fn spool_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.layer.spool_dir = by("spool_dir", dir.into());
        self
    }

    /// Bound on the spool's files, in bytes (default 256 MiB, at least 1
    /// MiB); when full, [`overflow`](Self::overflow) says whether the
    /// oldest records or the new one go (counted in
    /// [`Dropped::spool_full`](crate::Dropped::spool_full)).
    pub fn spool_max_bytes(mut self, bytes: usize) -> Self {
        self.layer.spool_max_bytes = by("spool_max_bytes", bytes);
        self
    }

    /// Worker threads (default: one per 8 CPUs, at least one; at most one
    /// per ring).
    pub fn workers(mut self, workers: usize) -> Self {
        self.layer.workers = by("workers", workers);
        self
    }

    /// Whether workers are pinned to cores (default true).
    pub fn pin_workers(mut self, pin: bool) -> Self {
        self.layer.pin_workers = by("pin_workers", pin);
        self
    }

    /// The cores workers are pinned to, worker `i` to `cores[i % len]`
    /// (default: the cores this process may run on, in order).
    pub fn worker_cores(mut self, cores: impl Into<Vec<usize>>) -> Self {
        self.layer.worker_cores = by("worker_cores", cores.into());
        self
    }

    /// Spans per request, at most (default 512).
    pub fn max_batch_spans(mut self, spans: usize) -> Self {
        self.layer.bsp.max_export_batch_size = by("max_batch_spans", spans);
        self
    }

    /// Span bytes per request, at most (default 2 MiB; a larger span still
    /// goes, alone).
    pub fn max_batch_bytes(mut self, bytes: usize) -> Self {
        self.layer.max_batch_bytes = by("max_batch_bytes", bytes);
        self
    }

    /// How long a span may wait for its request to fill (default 1 s).
    pub fn schedule_delay(mut self, delay: Duration) -> Self {
        self.layer.bsp.schedule_delay = by("schedule_delay", delay);
        self
    }

    /// Trusts the CA certificates in this PEM file for `https://`
    /// endpoints, instead of the system's roots.
    pub fn certificate(mut self, pem_file: impl Into<PathBuf>) -> Self {
        self.generic().certificate = by("certificate", pem_file.into());
        self
    }

    /// The client certificate chain (PEM) presented for mutual TLS; needs
    /// [`client_key`](Self::client_key).
    pub fn client_certificate(mut self, pem_file: impl Into<PathBuf>) -> Self {
        self.generic().client_certificate = by("client_certificate", pem_file.into());
        self
    }

    /// The private key (PEM) of the [`client_certificate`](Self::client_certificate).
    pub fn client_key(mut self, pem_file: impl Into<PathBuf>) -> Self {
        self.generic().client_key = by("client_key", pem_file.into());
        self
    }

    /// Serves the admin endpoint (`/metrics`, `/health`, `/ready`,
    /// `/stats`) on `address`, such as `127.0.0.1:9464` (port 0: any free
    /// port, see [`Engine::admin_address`]). Off by default.
    pub fn admin_address(mut self, address: impl Into<String>) -> Self {
        self.layer.admin_address = by("admin_address", address.into());
        self
    }

    /// How long a failed export attempt keeps `/ready` false, unless one
    /// succeeds after it (default 30 s).
    pub fn ready_window(mut self, window: Duration) -> Self {
        self.layer.ready_window = by("ready_window", window);
        self
    }

    /// Reads this TOML file (below the environment and the builder in
    /// precedence) instead of the one `OTLPX_CONFIG` or `CONFIG_PATH`
    /// names.
    pub fn config_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.file = Some(ConfigFile::Path(path.into()));
        self
    }

    /// Reads configuration from TOML text, as if from a file named `name`
    /// (errors cite `name:line`).
    pub fn config_toml(mut self, name: impl Into<PathBuf>, toml: impl Into<String>) -> Self {
        self.file = Some(ConfigFile::Toml {
            text: toml.into(),
            name: name.into(),
        });
        self
    }

    /// Reads `OTEL_*` variables from `vars` instead of the process
    /// environment (an empty list: ignore the environment).
    pub fn environment<K, V>(mut self, vars: impl IntoIterator<Item = (K, V)>) -> Self
    where
        K: Into<String>,
        V: Into<String>,
    {
        let vars = vars
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .collect();
        self.environment = Environment::Given(vars);
        self
    }

    /// Sends requests through `transport` instead of gRPC or HTTP (tests,
    /// unusual deployments). Compression and batching still apply.
    #[cfg(feature = "export")]
    pub fn transport(mut self, transport: Arc<dyn Transport>) -> Self {
        self.transport = Some(CustomTransport(transport));
        self
    }

    /// The configuration [`build`](Self::build) would use, each value with
    /// its source, without starting anything: what `otlpx-bench config
    /// --check` prints.
    ///
    /// # Errors
    ///
    /// The first invalid value, naming its source.
    pub fn effective_config(&self) -> Result<EffectiveConfig, ConfigError> {
        self.resolve().map(|r| r.effective)
    }

    fn resolve(&self) -> Result<Resolved, ConfigError> {
        let mut warnings = Vec::new();
        let lookup = |var: &str| -> Option<String> {
            match &self.environment {
                Environment::Process => {
                    std::env::var_os(var).map(|v| v.to_string_lossy().into_owned())
                }
                Environment::Given(vars) => vars
                    .iter()
                    .rev()
                    .find(|(k, _)| k == var)
                    .map(|(_, v)| v.clone()),
            }
        };
        let env = config::env::read(&lookup, &mut warnings, self.strict_env)?;
        let file = match &self.file {
            Some(ConfigFile::Path(path)) => {
                let source = Source::Builder {
                    method: "config_file",
                };
                Some(read_config_file(
                    path,
                    &source,
                    "config_file",
                    &mut warnings,
                )?)
            }
            Some(ConfigFile::Toml { text, name }) => {
                Some(config::file::read(text, name, &mut warnings)?)
            }
            None => match ["OTLPX_CONFIG", "CONFIG_PATH"].into_iter().find_map(|var| {
                lookup(var)
                    .filter(|v| !v.trim().is_empty())
                    .map(|v| (var, v))
            }) {
                Some((var, path)) => {
                    let source = Source::Env {
                        var: var.to_owned(),
                    };
                    Some(read_config_file(
                        Path::new(path.trim()),
                        &source,
                        var,
                        &mut warnings,
                    )?)
                }
                None => None,
            },
        };
        let empty = Layer::default();
        config::resolve::resolve_layers(
            &self.layer,
            env,
            file.as_ref().unwrap_or(&empty),
            warnings,
            self.strict_env,
        )
    }

    /// Builds the engine.
    ///
    /// # Errors
    ///
    /// [`BuildError::Config`] for a value that is malformed or out of
    /// range, from any source (an endpoint that is not an `http(s)://`
    /// URL, a header that HTTP does not allow, a zero count or timeout, a
    /// compression level the codec refuses, a certificate file that cannot
    /// be read, an unknown key in the file); [`BuildError::Start`] when the
    /// exporter's threads, runtime, TLS setup or admin endpoint cannot
    /// start.
    pub fn build(self) -> Result<Engine, BuildError> {
        let resolved = self.resolve()?;
        #[cfg(feature = "export")]
        for warning in resolved.effective.warnings() {
            tracing::warn!(target: "otlpx", "configuration: {warning}");
        }
        let disabled = resolved.disabled;
        let (count, ring_bytes, logs_ring_bytes, metrics_ring_bytes) = if disabled {
            // Nothing is ever written: the smallest ring will do.
            let min = crate::ring::MIN_CAPACITY_BYTES;
            (1, min, min, min)
        } else {
            (
                resolved.rings.unwrap_or_else(Rings::default_count),
                resolved.ring_bytes_per_cpu,
                resolved.logs.ring_bytes_per_cpu,
                resolved.metrics_ring_bytes_per_cpu,
            )
        };
        // Every signal its own rings, by `Signal::index`: memory is only
        // touched as records are written (a zeroed allocation), so a
        // signal never used (metrics, until something records them) costs
        // address space, not RSS.
        let signal_rings = [
            Rings::new(count, ring_bytes)?,
            Rings::new(count, logs_ring_bytes)?,
            Rings::new(count, metrics_ring_bytes)?,
        ];
        let mut attributes = Vec::with_capacity(self.resource.len() + resolved.resource.len() + 4);
        let sdk = [
            ("telemetry.sdk.name", "otlpx"),
            ("telemetry.sdk.language", "rust"),
            ("telemetry.sdk.version", env!("CARGO_PKG_VERSION")),
        ];
        for (k, v) in sdk {
            attributes.push((k.to_owned(), any_value(&Value::Str(v))));
        }
        let service = resolved.service_name.clone().unwrap_or_else(|| {
            let exe = std::env::current_exe().ok();
            let name = exe
                .as_deref()
                .and_then(|p| p.file_name())
                .and_then(|n| n.to_str());
            match name {
                Some(n) => format!("unknown_service:{n}"),
                None => "unknown_service".to_owned(),
            }
        });
        for (k, v) in &resolved.resource {
            attributes.push((k.clone(), any_value(&Value::Str(v))));
        }
        attributes.push((SERVICE_NAME.to_owned(), any_value(&Value::Str(&service))));
        // Last: a key set twice keeps its last value, and the builder's
        // typed attributes beat the environment's and the file's strings.
        attributes.extend(self.resource.into_iter().filter(|(k, _)| k != SERVICE_NAME));
        // A signal this engine does not export, beside one it does, is off
        // (see `Recorder::off`); an engine exporting nothing records all.
        #[cfg(feature = "export")]
        let exported = Signal::ALL.map(|s| {
            let c = resolved.export.signal(s);
            c.enabled && (c.urls.is_some() || self.transport.is_some())
        });
        #[cfg(not(feature = "export"))]
        let exported = [false; crate::ring::SIGNALS];
        let some = exported.iter().any(|&e| e);
        let off = Signal::ALL.map(|s| disabled || (some && !exported[s.index()]));
        let recorder = Arc::new(Recorder {
            signal_rings,
            limits: resolved.limits,
            clock: Clock::new(),
            dropped_invalid: AtomicU64::new(0),
            sampler: crate::sample::Decider::new(resolved.sampler),
            off,
            log_limits: resolved.logs.limits,
            log_min_severity: resolved.logs.min_severity,
        });
        let catalog = Arc::new(Catalog::new(resource_bytes(&attributes)));
        #[cfg(feature = "export")]
        let admin = resolved.export.admin_address.filter(|_| !disabled);
        #[cfg(feature = "export")]
        let ready_window = resolved.export.ready_window;
        #[cfg(feature = "export")]
        let export = if disabled {
            ExportSlot::default()
        } else {
            let start = StartArgs {
                config: resolved.export,
                custom: self.transport,
            };
            match start_exporter(&start, &recorder, &catalog, false)? {
                Some(exporter) => ExportSlot {
                    exporter: Exporting::Yes(Arc::new(exporter)),
                    start: Some(start),
                    ..ExportSlot::default()
                },
                None => ExportSlot::default(),
            }
        };
        #[cfg(not(feature = "export"))]
        if resolved.export.signals.iter().any(|s| s.urls.is_some())
            || resolved.export.admin_address.is_some()
        {
            return Err(BuildError::Start(
                "otlpx was built without its `export` feature".to_owned(),
            ));
        }
        let engine = Engine {
            inner: Arc::new(Inner {
                recorder,
                catalog,
                batcher: Mutex::default(),
                config: resolved.effective,
                #[cfg(feature = "export")]
                export: Mutex::new(export),
            }),
        };
        crate::engine::fork::register(&engine.inner, disabled);
        #[cfg(feature = "export")]
        if let Some(addr) = admin {
            // Weak: the server lives inside `Inner`, and must not keep it
            // alive past the last handle.
            let weak = Arc::downgrade(&engine.inner);
            let snapshot = Box::new(move || match weak.upgrade() {
                Some(inner) => crate::admin::Snapshot {
                    signals: inner.all_stats(),
                    running: inner.running(),
                },
                None => crate::admin::Snapshot {
                    signals: Default::default(),
                    running: false,
                },
            });
            let server = crate::admin::AdminServer::start(addr, ready_window, snapshot)
                .map_err(|e| BuildError::Start(format!("admin endpoint on {addr}: {e}")))?;
            engine.inner.slot().admin = Some(server);
        }
        Ok(engine)
    }
}

/// Reads and parses the configuration file at `path`, named by `source`.
fn read_config_file(
    path: &Path,
    source: &Source,
    key: &str,
    warnings: &mut Vec<String>,
) -> Result<Layer, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        ConfigError::new(
            source,
            key,
            path.display().to_string(),
            format!("cannot read the file: {e}"),
        )
    })?;
    config::file::read(&text, path, warnings)
}

/// What an [`Engine`] handle points to; `crate::engine::fork` keeps a registry of
/// them.
pub(crate) struct Inner {
    recorder: Arc<Recorder>,
    catalog: Arc<Catalog>,
    /// For `drain_traces` callers.
    batcher: Mutex<Batcher>,
    /// What the engine was built with.
    config: EffectiveConfig,
    /// The export side. Held only to read or swap what is in it, never
    /// while taking another lock, so the fork handlers can take it.
    #[cfg(feature = "export")]
    export: Mutex<ExportSlot>,
}

/// The export side of an engine, replaceable in a forked child.
#[cfg(feature = "export")]
#[derive(Default)]
struct ExportSlot {
    exporter: Exporting,
    /// What the exporter was started with, to start it again in a forked
    /// child; set when it started.
    start: Option<StartArgs>,
    admin: Option<crate::admin::AdminServer>,
    /// Why the exporter could not start again in a forked child.
    fork_error: Option<String>,
}

/// Whether an engine exports.
#[cfg(feature = "export")]
#[derive(Default)]
enum Exporting {
    /// Built without an exporter (its caller drains), or, in a forked
    /// child, the exporter could not start again.
    #[default]
    No,
    /// Cloned out by whoever uses it, so that the slot's lock is held only
    /// for the clone.
    Yes(Arc<Exporter>),
    /// Shut down in the parent before this process was forked from it: the
    /// child's engine stays shut down.
    ShutDownBeforeFork,
}

/// What `start_exporter` needs, kept to start again in a forked child.
#[cfg(feature = "export")]
struct StartArgs {
    config: ExportConfig,
    custom: Option<CustomTransport>,
}

impl Inner {
    #[cfg(feature = "export")]
    fn slot(&self) -> MutexGuard<'_, ExportSlot> {
        self.export.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The running exporter, if any.
    #[cfg(feature = "export")]
    fn exporter(&self) -> Option<Arc<Exporter>> {
        match &self.slot().exporter {
            Exporting::Yes(e) => Some(Arc::clone(e)),
            Exporting::No | Exporting::ShutDownBeforeFork => None,
        }
    }

    /// The counters of `signal`.
    fn stats(&self, signal: Signal) -> Stats {
        let r = &self.recorder;
        #[cfg(feature = "export")]
        let exporter = self.exporter().filter(|e| e.exports(signal));
        #[cfg(feature = "export")]
        let export = exporter.as_deref().map(|e| e.counters(signal));
        #[cfg(not(feature = "export"))]
        let export = None;
        let dropped_invalid = match signal {
            // Relaxed: a statistic.
            Signal::Traces => r.dropped_invalid.load(Ordering::Relaxed),
            Signal::Logs | Signal::Metrics => 0,
        };
        let mut s = Stats::collect(
            r.rings(signal).iter().map(|ring| ring.counters()),
            dropped_invalid,
            export,
        );
        #[cfg(feature = "export")]
        if let Some(balanced) = exporter
            .as_deref()
            .and_then(|e| e.balanced[signal.index()].as_ref())
        {
            s.export.endpoints = balanced.stats();
        }
        s.config_warnings = self.config.warnings().len() as u64;
        s
    }

    /// Every signal's counters, by [`Signal::index`].
    #[cfg(feature = "export")]
    fn all_stats(&self) -> [Stats; SIGNALS] {
        Signal::ALL.map(|signal| self.stats(signal))
    }

    /// Built and not shut down.
    #[cfg(feature = "export")]
    fn running(&self) -> bool {
        match &self.slot().exporter {
            Exporting::Yes(e) => !e.stopped(),
            Exporting::No => true,
            Exporting::ShutDownBeforeFork => false,
        }
    }

    /// Takes the locks a forked child needs (see `crate::engine::fork`), in an
    /// order no other path inverts: the export slot (whose holders take no
    /// other lock), then the batcher before the scopes, as `frame_traces`
    /// does.
    pub(crate) fn lock_for_fork(&self) -> ForkLocks<'_> {
        ForkLocks {
            inner: self,
            #[cfg(feature = "export")]
            export: self.slot(),
            batcher: self.batcher.lock().unwrap_or_else(PoisonError::into_inner),
            scopes: self.catalog.lock_for_fork(),
        }
    }
}

/// An engine's locks, held by the forking thread across `fork()` so that
/// no thread that will not exist in the child holds them there. Dropping
/// it (in the parent) releases them.
pub(crate) struct ForkLocks<'a> {
    inner: &'a Inner,
    #[cfg(feature = "export")]
    export: MutexGuard<'a, ExportSlot>,
    batcher: MutexGuard<'a, Batcher>,
    scopes: RwLockWriteGuard<'a, Scopes>,
}

impl ForkLocks<'_> {
    /// The engine's rings, every signal's.
    pub(crate) fn rings(&self) -> impl Iterator<Item = &Rings> {
        self.inner.recorder.all_rings()
    }

    /// In a forked child, once every engine's rings are reset: zeroes the
    /// engine's other counters, starts its exporter again (unless it had
    /// none or was shut down), leaking what the parent's threads owned,
    /// and releases the locks.
    pub(crate) fn restart_in_child(self) {
        let Self {
            inner,
            #[cfg(feature = "export")]
            export,
            batcher,
            scopes,
        } = self;
        // Relaxed: only this thread runs yet; threads the child starts
        // see it through their spawn.
        inner.recorder.dropped_invalid.store(0, Ordering::Relaxed);
        // Nothing below needs them, and the new workers will.
        drop((scopes, batcher));
        #[cfg(feature = "export")]
        restart_exporter(inner, export);
    }
}

/// Starts the exporter of `inner` again in a forked child. The parent's
/// exporter and admin server are leaked, never dropped: dropping them
/// would join threads that do not exist here and take locks that dead
/// threads may hold. The admin server goes on serving in the parent (the
/// child keeps a copy of its socket, and never accepts on it).
#[cfg(feature = "export")]
fn restart_exporter(inner: &Inner, mut slot: MutexGuard<'_, ExportSlot>) {
    if let Some(admin) = slot.admin.take() {
        std::mem::forget(admin);
    }
    let shut_down = match std::mem::take(&mut slot.exporter) {
        Exporting::No => return,
        Exporting::ShutDownBeforeFork => true,
        Exporting::Yes(old) => {
            let stopped = old.stopped();
            // The spool stays the parent's, and so does its lock: the
            // child's copy of the lock file would hold it as long as the
            // child lives.
            if let Some(lock) = &old.spool_lock {
                lock.close_in_child();
            }
            std::mem::forget(old);
            stopped
        }
    };
    if shut_down {
        slot.exporter = Exporting::ShutDownBeforeFork;
        return;
    }
    let Some(start) = &slot.start else {
        return; // Set whenever an exporter started.
    };
    // The parent keeps the spool (and its lock): the child exports
    // without one.
    match start_exporter(start, &inner.recorder, &inner.catalog, true) {
        Ok(Some(exporter)) => {
            slot.exporter = Exporting::Yes(Arc::new(exporter));
            slot.fork_error = None;
        }
        Ok(None) => {}
        Err(e) => {
            let message = format!(
                "cannot start the exporter again after fork(): {e}; \
                 spans stay in the rings, for `drain_traces`"
            );
            slot.fork_error = Some(message.clone());
            // Not under the lock: a subscriber may read the engine.
            drop(slot);
            tracing::warn!(target: "otlpx", "otlpx: {message}");
        }
    }
}

#[cfg(feature = "export")]
impl Drop for Inner {
    /// The last handle gone: deliver what can be delivered within the
    /// shutdown timeout (`EngineBuilder::shutdown_timeout`), abandon the
    /// rest (up to ~100 ms more), then stop.
    fn drop(&mut self) {
        let slot = self
            .export
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner);
        if let Exporting::Yes(exporter) = &slot.exporter {
            let _ = exporter.shutdown(exporter.shutdown_timeout());
        }
    }
}

/// The otlpx engine: cheap to clone (`Arc`), `Send + Sync`.
///
/// Record spans through the [`Tracer`]s it hands out. Its workers send
/// them to the configured endpoint (by default a Collector on this host,
/// `http://localhost:4317`); built with
/// [`EngineBuilder::export(false)`](EngineBuilder::export), take them out
/// as ready-to-send OTLP requests with [`drain_traces`](Self::drain_traces)
/// instead. Dropping the last handle of an exporting engine shuts it
/// down, within [`EngineBuilder::shutdown_timeout`].
///
/// # Fork safety
///
/// An engine built before `fork()` keeps working in the child, with nothing
/// to call (for pre-fork servers: gunicorn, Puma, PHP-FPM, Apache). Handlers
/// installed with `pthread_atfork` at the first build hold the engine's
/// locks across the fork; in the child they empty the rings (the spans
/// recorded before the fork are the parent's to export, never sent twice),
/// reseed the forking thread's id generator, zero the counters, and start
/// the exporter again: a new runtime, new workers, and a new connection
/// pool built from the engine's configuration (a custom transport given
/// to `EngineBuilder::transport` is reused as is). The parent is
/// unaffected. In the child, the admin endpoint is not served (the parent
/// goes on serving it), an engine shut down before the fork stays shut
/// down, and an exporter that cannot start again leaves the engine
/// recording for [`drain_traces`](Self::drain_traces), with the reason in
/// `last_export_error`. `fork()` from a signal handler is not supported;
/// `vfork` and `posix_spawn` need nothing.
#[derive(Clone)]
pub struct Engine {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("stats", &self.stats())
            .finish()
    }
}

/// Describes an instrumentation scope beyond its name; from
/// [`Engine::tracer_builder`].
#[must_use = "a tracer builder does nothing until `build`"]
pub struct TracerBuilder<'e, 'a> {
    engine: &'e Engine,
    name: &'a str,
    version: &'a str,
    schema_url: &'a str,
    attributes: &'a [KeyValue<'a>],
}

impl<'a> TracerBuilder<'_, 'a> {
    /// The scope's version.
    pub fn version(mut self, version: &'a str) -> Self {
        self.version = version;
        self
    }

    /// The schema URL of the scope's telemetry.
    pub fn schema_url(mut self, url: &'a str) -> Self {
        self.schema_url = url;
        self
    }

    /// The scope's attributes.
    pub fn attributes(mut self, attributes: &'a [KeyValue<'a>]) -> Self {
        self.attributes = attributes;
        self
    }

    /// The tracer; the same scope described twice gives the same scope.
    pub fn build(self) -> Tracer {
        let bytes = ScopeBytes::new(self.name, self.version, self.schema_url, self.attributes);
        Tracer {
            recorder: Arc::clone(&self.engine.inner.recorder),
            scope: self.engine.register_scope(bytes),
        }
    }
}

impl Engine {
    /// A builder with the defaults.
    pub fn builder() -> EngineBuilder {
        EngineBuilder {
            layer: Layer::default(),
            resource: Vec::new(),
            environment: Environment::Process,
            file: None,
            strict_env: false,
            #[cfg(feature = "export")]
            transport: None,
        }
    }

    /// A tracer for the instrumentation scope `name` at `version`.
    ///
    /// Creating a tracer looks the scope up under a lock and allocates;
    /// create tracers once (per library or module) and keep them, rather
    /// than per request. The same scope asked for twice gives the same
    /// scope.
    pub fn tracer(&self, name: &str, version: &str) -> Tracer {
        self.tracer_builder(name).version(version).build()
    }

    /// A tracer whose scope also has a schema URL or attributes.
    pub fn tracer_builder<'e, 'a>(&'e self, name: &'a str) -> TracerBuilder<'e, 'a> {
        TracerBuilder {
            engine: self,
            name,
            version: "",
            schema_url: "",
            attributes: &[],
        }
    }

    /// A logger for the instrumentation scope `name` at `version`: what a
    /// library or module emits log records as. As with tracers, create
    /// loggers once and keep them; the same scope asked for twice gives
    /// the same scope.
    pub fn logger(&self, name: &str, version: &str) -> Logger {
        let bytes = ScopeBytes::new(name, version, "", &[]);
        Logger {
            recorder: Arc::clone(&self.inner.recorder),
            scope: self.register_scope(bytes),
        }
    }

    fn register_scope(&self, bytes: ScopeBytes) -> u32 {
        self.inner.catalog.register(bytes)
    }

    /// Not API: for otlpx's own end-to-end tests until the metrics API
    /// exists, and to change or go without notice. Writes `metric`, an
    /// encoded OTLP `Metric` message, into the metrics' rings under the
    /// instrumentation scope `scope_name` at `scope_version`, as that
    /// API's collections will: it then travels the pipeline as a
    /// [`Signal::Metrics`] item.
    ///
    /// # Errors
    ///
    /// The ring's: the metric was dropped, and counted.
    #[doc(hidden)]
    pub fn __not_api_record_metric(
        &self,
        scope_name: &str,
        scope_version: &str,
        metric: &[u8],
    ) -> Result<(), crate::ring::WriteError> {
        let scope = self.register_scope(ScopeBytes::new(scope_name, scope_version, "", &[]));
        crate::metrics::write_metric(&self.inner.recorder, scope, metric)
    }

    /// Sends every item (span, log record) recorded before the call and
    /// waits for the receiver's answers, for at most `timeout`; with a
    /// spool, until the spool is empty too. Recording goes on meanwhile;
    /// items recorded during the flush may or may not be in it. Returns
    /// what became of the items, every signal's
    /// ([`FlushReport`](crate::FlushReport)): delivered, spooled.
    ///
    /// This is the call that answers "did it get out?": it succeeds only
    /// when nothing it waited for was dropped.
    ///
    /// # Errors
    ///
    /// [`FlushError::Dropped`] when spans were dropped on their way (the
    /// receiver refused them, or their requests failed for good: a 404
    /// from a port that is not OTLP, a failed TLS handshake), naming the
    /// reasons, the kinds of failure and the last error;
    /// [`FlushError::Timeout`] if spans were still in rings, in flight or
    /// in the spool at the deadline (they stay counted there, and go on
    /// their way); [`FlushError::NotExporting`] for an engine that does not
    /// export ([`EngineBuilder::export(false)`](EngineBuilder::export),
    /// every signal's `OTEL_*_EXPORTER=none`, disabled) or after
    /// shutdown. `Dropped` and `Timeout` carry the report.
    ///
    /// [`FlushError::Dropped`]: crate::FlushError::Dropped
    /// [`FlushError::Timeout`]: crate::FlushError::Timeout
    /// [`FlushError::NotExporting`]: crate::FlushError::NotExporting
    #[cfg(feature = "export")]
    pub fn flush(&self, timeout: Duration) -> Result<crate::FlushReport, crate::FlushError> {
        use crate::export::drain::Unflushed;
        let Some(e) = self.inner.exporter() else {
            return Err(crate::FlushError::NotExporting);
        };
        let before = self.inner.all_stats();
        let flushed = e.workers.flush(Instant::now() + timeout);
        let report = crate::FlushReport::between_all(&before, &self.inner.all_stats());
        match flushed {
            Err(Unflushed::Stopped) => Err(crate::FlushError::NotExporting),
            Err(Unflushed::Timeout) => Err(crate::FlushError::Timeout {
                report: Box::new(report),
                last_error: e.workers.last_error(),
            }),
            Ok(()) if report.dropped.total() > 0 => Err(crate::FlushError::Dropped {
                report: Box::new(report),
                last_error: e.workers.last_error(),
            }),
            Ok(()) => Ok(report),
        }
    }

    /// Flushes for at most `timeout` (sending what the rings hold, waiting
    /// for answers and retries), then stops the workers and the I/O
    /// runtime, and reports what became of the spans on their way
    /// ([`ShutdownReport`](crate::ShutdownReport)).
    ///
    /// Without a spool, requests still unanswered at the deadline are
    /// abandoned and counted in [`Dropped::shutdown`](crate::Dropped::shutdown)
    /// (abandoning them may take up to 100 ms past the deadline), and
    /// spans a full flush could not send stay in the rings. With a spool
    /// ([`EngineBuilder::spool_dir`]), both go to the spool instead, for
    /// the next engine on the same directory. Spans recorded afterwards
    /// are kept in the rings and never sent. Dropping the last handle of an
    /// engine shuts it down with the shutdown timeout
    /// ([`EngineBuilder::shutdown_timeout`], 5 s). Calling it again does
    /// nothing (and reports nothing).
    ///
    /// # Errors
    ///
    /// [`ShutdownError`](crate::ShutdownError), with the report, when spans
    /// were dropped or left in the rings; the engine is stopped all the
    /// same.
    #[cfg(feature = "export")]
    pub fn shutdown(
        &self,
        timeout: Duration,
    ) -> Result<crate::ShutdownReport, crate::ShutdownError> {
        let Some(e) = self.inner.exporter().filter(|e| !e.stopped()) else {
            return Ok(crate::ShutdownReport::default());
        };
        let before = self.inner.all_stats();
        let completed = e.shutdown(timeout).is_ok();
        let after = self.inner.all_stats();
        let sum = |f: fn(&Stats) -> u64, of: &[Stats]| of.iter().map(f).sum::<u64>();
        let dropped = sum(|s| s.dropped.total(), &after) - sum(|s| s.dropped.total(), &before);
        let report = crate::ShutdownReport {
            delivered: sum(|s| s.exported, &after) - sum(|s| s.exported, &before),
            spooled: sum(|s| s.spool.written, &after) - sum(|s| s.spool.written, &before),
            dropped,
            in_rings: sum(|s| s.in_rings, &after),
            // The spool is one for every signal.
            spool_pending: sum(|s| s.spooled, &after),
            flushed: completed && dropped == 0,
        };
        if report.dropped > 0 || report.in_rings > 0 {
            return Err(crate::ShutdownError { report });
        }
        Ok(report)
    }

    /// The most recent export error, for diagnostics (counts by kind are in
    /// [`stats`](Self::stats)); in a forked child whose exporter could not
    /// start again, why.
    #[cfg(feature = "export")]
    pub fn last_export_error(&self) -> Option<String> {
        match self.inner.exporter() {
            Some(e) => e.workers.last_error(),
            None => self.inner.slot().fork_error.clone(),
        }
    }

    /// The core each worker thread is pinned to (`None`: not pinned, by
    /// configuration or because the OS refused); empty without an exporter.
    #[cfg(feature = "export")]
    pub fn worker_cores(&self) -> Vec<Option<usize>> {
        self.inner
            .exporter()
            .map(|e| e.pinned.clone())
            .unwrap_or_default()
    }

    /// The configuration the engine was built with, each value with its
    /// source, and the warnings about values without effect.
    pub fn config(&self) -> &EffectiveConfig {
        &self.inner.config
    }

    /// A snapshot of the engine's counters for traces (spans); see
    /// [`signal_stats`](Self::signal_stats) for the other signals.
    pub fn stats(&self) -> Stats {
        self.inner.stats(Signal::Traces)
    }

    /// A snapshot of the engine's counters for `signal`: its items
    /// recorded, exported and dropped by reason, its rings, its requests.
    /// The accounting holds per signal.
    ///
    /// ```
    /// use otlpx::Signal;
    /// let engine = otlpx::Engine::builder().export(false).build()?;
    /// engine.tracer("demo", "").start("work").end();
    /// assert_eq!(engine.signal_stats(Signal::Traces).recorded, 1);
    /// assert_eq!(engine.signal_stats(Signal::Logs).recorded, 0);
    /// # Ok::<(), otlpx::BuildError>(())
    /// ```
    pub fn signal_stats(&self, signal: Signal) -> Stats {
        self.inner.stats(signal)
    }

    /// Where the admin endpoint listens, if the engine serves one.
    #[cfg(feature = "export")]
    pub fn admin_address(&self) -> Option<std::net::SocketAddr> {
        self.inner
            .slot()
            .admin
            .as_ref()
            .map(crate::admin::AdminServer::local_addr)
    }

    /// Takes up to `max_spans` spans out of the rings and frames them as one
    /// OTLP `ExportTraceServiceRequest` in `out` (cleared first). Returns how
    /// many spans it framed; with none, `out` stays empty.
    ///
    /// This is the consumer side of an engine built not to export
    /// ([`EngineBuilder::export(false)`](EngineBuilder::export), or without
    /// the `export` feature),
    /// for callers that send the bytes themselves (and for tests); an
    /// exporting engine's workers own its rings, and this returns 0. Rings
    /// another consumer is draining at the moment are skipped. Spans are copied once, from ring memory
    /// into `out`; reuse `out` across calls.
    ///
    /// ```
    /// let engine = otlpx::Engine::builder().export(false).build()?;
    /// engine.tracer("demo", "").start("work").end();
    /// let mut out = bytes::BytesMut::new();
    /// assert_eq!(engine.drain_traces(&mut out, 512), 1);
    /// assert!(!out.is_empty());
    /// # Ok::<(), otlpx::BuildError>(())
    /// ```
    pub fn drain_traces(&self, out: &mut BytesMut, max_spans: usize) -> usize {
        self.frame(Signal::Traces, out, max_spans, true)
    }

    /// As [`drain_traces`](Self::drain_traces), for any signal: takes up to
    /// `max_items` of `signal`'s items out of its rings and frames them as
    /// one OTLP `Export*ServiceRequest` of that signal in `out`.
    ///
    /// ```
    /// let engine = otlpx::Engine::builder().export(false).build()?;
    /// let mut out = bytes::BytesMut::new();
    /// assert_eq!(engine.drain(otlpx::Signal::Logs, &mut out, 512), 0);
    /// # Ok::<(), otlpx::BuildError>(())
    /// ```
    pub fn drain(&self, signal: Signal, out: &mut BytesMut, max_items: usize) -> usize {
        self.frame(signal, out, max_items, true)
    }

    /// Frames like [`drain_traces`](Self::drain_traces) but leaves the spans
    /// in the rings: for benchmarks that frame the same spans repeatedly.
    #[doc(hidden)]
    pub fn frame_traces_without_release(&self, out: &mut BytesMut, max_spans: usize) -> usize {
        self.frame(Signal::Traces, out, max_spans, false)
    }

    fn frame(&self, signal: Signal, out: &mut BytesMut, max_items: usize, release: bool) -> usize {
        #[cfg(feature = "export")]
        {
            let owned = match &self.inner.slot().exporter {
                Exporting::No => false,
                Exporting::Yes(e) => e.exports(signal),
                Exporting::ShutDownBeforeFork => true,
            };
            if owned {
                out.clear();
                return 0;
            }
        }
        let inner = &*self.inner;
        inner
            .batcher
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take(
                signal,
                inner.recorder.rings(signal).iter(),
                &inner.catalog,
                Max {
                    items: max_items,
                    bytes: usize::MAX,
                },
                out,
                release,
            )
    }
}

/// The running export side of an engine.
#[cfg(feature = "export")]
struct Exporter {
    workers: Workers,
    counters: Arc<SignalCounters>,
    /// How long the last handle's drop may flush.
    shutdown_timeout: Duration,
    pinned: Vec<Option<usize>>,
    /// Per signal, with several endpoints: their balancer (for their
    /// stats).
    balanced: [Option<Arc<Balanced>>; SIGNALS],
    /// With a spool, its lock file, for a forked child to close its copy
    /// of ([`restart_exporter`]).
    spool_lock: Option<crate::export::spool::InheritedLock>,
    /// Set by the first `shutdown`.
    stopped: std::sync::atomic::AtomicBool,
}

#[cfg(feature = "export")]
impl Exporter {
    fn counters(&self, signal: Signal) -> &ExportCounters {
        &self.counters[signal]
    }

    /// Whether the exporter sends `signal` (its workers own its rings).
    fn exports(&self, signal: Signal) -> bool {
        self.workers.exports(signal)
    }

    fn shutdown_timeout(&self) -> Duration {
        self.shutdown_timeout
    }

    fn shutdown(&self, timeout: Duration) -> Result<(), crate::export::drain::Unflushed> {
        // Relaxed: a flag for `/ready`, ordered with nothing else.
        self.stopped.store(true, Ordering::Relaxed);
        self.workers.shutdown(Instant::now() + timeout)
    }

    fn stopped(&self) -> bool {
        // Relaxed: see `shutdown`.
        self.stopped.load(Ordering::Relaxed)
    }
}

/// A value of `config` HTTP refuses, though the validator let it through.
#[cfg(feature = "export")]
fn refused(source: &Source, key: &str, value: &str, reason: impl Into<String>) -> BuildError {
    BuildError::Config(ConfigError::new(source, key, value, reason))
}

/// One signal's transport, as configured: its endpoints (balanced when
/// several), headers and TLS. `Ok(None)`: the signal is not exported.
#[cfg(feature = "export")]
struct SignalTransport {
    uris: Vec<http::Uri>,
    headers: http::HeaderMap,
    tls: Option<crate::export::transport::ClientTls>,
}

/// A signal's transport, and its balancer when it has several endpoints.
#[cfg(feature = "export")]
type Connected = (Arc<dyn Transport>, Option<Arc<Balanced>>);

#[cfg(feature = "export")]
impl SignalTransport {
    /// Reads `signal`'s exporter configuration; `None` when the signal is
    /// not exported (turned off, or no endpoint and no custom transport).
    fn configure(
        config: &crate::config::SignalExport,
        custom: bool,
    ) -> Result<Option<Self>, BuildError> {
        let uris = match &config.urls {
            Some((urls, source)) => urls
                .iter()
                .map(|url| {
                    url.parse::<http::Uri>()
                        .map_err(|e| refused(source, "endpoint", url, e.to_string()))
                })
                .collect::<Result<Vec<_>, _>>()?,
            None => Vec::new(),
        };
        if !config.enabled || (uris.is_empty() && !custom) {
            return Ok(None);
        }
        let mut headers = http::HeaderMap::new();
        for (name, value) in &config.headers {
            let source = Source::Default;
            let name = http::HeaderName::try_from(name.as_str())
                .map_err(|e| refused(&source, "header", name, e.to_string()))?;
            // The value is a secret as often as not: never shown.
            let value = http::HeaderValue::try_from(value.as_str()).map_err(|_| {
                refused(
                    &source,
                    name.as_str(),
                    "***",
                    "its value has characters HTTP does not allow",
                )
            })?;
            headers.append(name, value);
        }
        let tls = if uris.iter().any(|uri| uri.scheme_str() == Some("https")) {
            Some(
                crate::export::transport::ClientTls::load(&config.tls)
                    .map_err(|reason| BuildError::Start(format!("TLS: {reason}")))?,
            )
        } else {
            None
        };
        Ok(Some(Self { uris, headers, tls }))
    }

    /// Connects the transport (inside the runtime); with several
    /// endpoints, also their balancer, for its stats.
    fn connect(
        self,
        config: &crate::config::SignalExport,
        connections: usize,
    ) -> Result<Connected, String> {
        let connect_timeout = config.timeout.min(Duration::from_secs(5));
        let mut each = Vec::with_capacity(self.uris.len());
        for uri in self.uris {
            let tls = self
                .tls
                .as_ref()
                .filter(|_| uri.scheme_str() == Some("https"));
            let url = uri.to_string();
            let transport: Arc<dyn Transport> = match config.protocol {
                Protocol::Grpc => Arc::new(GrpcTransport::new(
                    &url,
                    connections,
                    self.headers.clone(),
                    connect_timeout,
                    tls,
                )?),
                Protocol::HttpProtobuf => Arc::new(HttpTransport::new(
                    uri,
                    connections,
                    self.headers.clone(),
                    connect_timeout,
                    tls,
                )),
            };
            each.push((url, transport));
        }
        Ok(match each.len() {
            1 => (each.remove(0).1, None),
            _ => {
                let one = Arc::new(Balanced::new(each));
                (Arc::clone(&one) as Arc<dyn Transport>, Some(one))
            }
        })
    }
}

#[cfg(feature = "export")]
fn start_exporter(
    start: &StartArgs,
    recorder: &Arc<Recorder>,
    catalog: &Arc<Catalog>,
    in_child: bool,
) -> Result<Option<Exporter>, BuildError> {
    let StartArgs { config, custom } = start;
    let mut configured = Vec::with_capacity(SIGNALS);
    for signal in Signal::ALL {
        configured.push(SignalTransport::configure(
            config.signal(signal),
            custom.is_some(),
        )?);
    }
    if configured.iter().all(Option::is_none) {
        return Ok(None);
    }
    let cores = if !config.pin_workers {
        Vec::new()
    } else if let Some(cores) = config.worker_cores.clone() {
        cores
    } else {
        core_affinity::get_core_ids()
            .unwrap_or_default()
            .into_iter()
            .map(|c| c.id)
            .collect()
    };
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let settings = WorkerSettings {
        workers: config.workers.unwrap_or(cpus.div_ceil(8)),
        cores,
        signals: Signal::ALL.map(|signal| {
            let c = config.signal(signal);
            SignalSettings {
                policy: Policy {
                    max_spans: c.max_batch,
                    max_bytes: c.max_batch_bytes,
                    delay: c.schedule_delay,
                    prompt: c.prompt,
                },
                compression: c.compression,
                timeout: c.timeout,
                deadline: c.deadline,
            }
        }),
        exported: Signal::ALL.map(|signal| configured[signal.index()].is_some()),
        compression_level: config.compression_level,
        retry: config.retry,
        max_in_flight: config.max_in_flight,
        max_in_flight_bytes: config.max_in_flight_bytes,
        overflow: config.overflow,
    };
    for signal in Signal::ALL {
        let compression = config.signal(signal).compression;
        crate::export::compress::Compressor::new(compression, config.compression_level)
            .map_err(|reason| BuildError::Start(format!("compression: {reason}")))?;
    }
    let counters = Arc::new(SignalCounters::default());
    let spool = match &config.spool {
        Some(spool) if !in_child => {
            let (spool, found) =
                crate::export::spool::Spool::open(&crate::export::spool::SpoolSettings {
                    dir: spool.dir.clone(),
                    max_bytes: spool.max_bytes,
                    drop_oldest: config.overflow == crate::Overflow::DropOldest,
                })?;
            for signal in Signal::ALL {
                let i = signal.index();
                counters[signal].restored(
                    found.items_by_signal[i],
                    spool.disk_bytes(),
                    (
                        found.corrupt_items_by_signal[i],
                        // Records and bytes once, with traces.
                        if i == 0 { found.corrupt_records } else { 0 },
                        if i == 0 { found.corrupt_bytes } else { 0 },
                    ),
                );
            }
            if found.corrupt_records > 0 {
                tracing::warn!(
                    records = found.corrupt_records,
                    bytes = found.corrupt_bytes,
                    items = found.corrupt_items,
                    "otlpx: the spool held damaged records (a torn write, or \
                     damage on disk); they were skipped and counted as dropped"
                );
            }
            Some(spool)
        }
        _ => None,
    };
    let spool_lock = spool
        .as_ref()
        .map(crate::export::spool::Spool::inherited_lock);
    let mut balanced: [Option<Arc<Balanced>>; SIGNALS] = Default::default();
    let make_transports = || -> Result<[Option<Arc<dyn Transport>>; SIGNALS], String> {
        let mut transports: [Option<Arc<dyn Transport>>; SIGNALS] = Default::default();
        for (signal, configured) in Signal::ALL.into_iter().zip(configured) {
            let Some(configured) = configured else {
                continue;
            };
            let i = signal.index();
            transports[i] = Some(match custom {
                Some(CustomTransport(t)) => Arc::clone(t),
                None => {
                    let (transport, balancer) =
                        configured.connect(config.signal(signal), config.connections)?;
                    balanced[i] = balancer;
                    transport
                }
            });
        }
        Ok(transports)
    };
    let (workers, started) = Workers::start(
        Arc::clone(recorder),
        Arc::clone(catalog),
        Arc::clone(&counters),
        settings,
        spool,
        make_transports,
    )
    .map_err(BuildError::Start)?;
    Ok(Some(Exporter {
        workers,
        counters,
        shutdown_timeout: config.shutdown_timeout,
        pinned: started.into_iter().map(|s| s.pinned).collect(),
        balanced,
        spool_lock,
        stopped: std::sync::atomic::AtomicBool::new(false),
    }))
}
