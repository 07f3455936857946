//! The [`Engine`] handle: built once from an [`EngineBuilder`], it owns the
//! rings, the resource, the registry of instrumentation scopes, and hands
//! out [`Tracer`]s. Everything here runs at setup or on the consumer side;
//! nothing here is on the recording hot path.

use crate::batch::Batcher;
use crate::clock::Clock;
use crate::config::{Compression, ExportConfig, Protocol};
use crate::config::{DEFAULT_RING_BYTES_PER_CPU, SpanLimits};
use crate::encode::{Catalog, ScopeBytes, resource_bytes};
use crate::proto;
use crate::record::{Recorder, Tracer};
use crate::ring::{CapacityError, Rings};
use crate::telemetry::Stats;
use crate::value::{KeyValue, Value};
use bytes::BytesMut;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
#[cfg(feature = "export")]
use {
    crate::batch::Policy,
    crate::telemetry::ExportCounters,
    crate::transport::{GrpcTransport, HttpTransport, Transport},
    crate::worker::{WorkerSettings, Workers},
    std::time::Instant,
};

/// Why an engine could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// `ring_bytes_per_cpu` is not a power of two in range.
    #[error("invalid ring_bytes_per_cpu: {0}")]
    RingCapacity(#[from] CapacityError),
    /// A setting's value is out of range or malformed.
    #[error("invalid {setting} {value:?}: {reason}")]
    Invalid {
        /// The setting, as the builder method names it.
        setting: &'static str,
        /// The value given.
        value: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The exporter's runtime, transport or threads could not start.
    #[error("cannot start the exporter: {0}")]
    Start(String),
}

/// Configures and builds an [`Engine`].
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
    resource: Vec<(String, Vec<u8>)>,
    ring_bytes_per_cpu: usize,
    rings: Option<usize>,
    limits: SpanLimits,
    export: ExportConfig,
    #[cfg(feature = "export")]
    transport: Option<CustomTransport>,
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

impl EngineBuilder {
    /// The `service.name` resource attribute. Without one, the engine uses
    /// `unknown_service:<executable name>` as the specification requires.
    pub fn service_name(self, name: impl AsRef<str>) -> Self {
        self.resource_attribute(SERVICE_NAME, name.as_ref())
    }

    /// A resource attribute, describing the whole process. A key set twice
    /// keeps the last value.
    pub fn resource_attribute<'v>(
        mut self,
        key: impl Into<String>,
        value: impl Into<Value<'v>>,
    ) -> Self {
        self.resource.push((key.into(), any_value(&value.into())));
        self
    }

    /// Bytes of ring per CPU: a power of two from 64 bytes to 1 GiB
    /// (default 1 MiB). One span may take up to half a ring.
    pub fn ring_bytes_per_cpu(mut self, bytes: usize) -> Self {
        self.ring_bytes_per_cpu = bytes;
        self
    }

    /// How many rings (default: one per configured CPU). Spans from a CPU
    /// numbered past the count share a ring with another CPU.
    pub fn rings(mut self, count: usize) -> Self {
        self.rings = Some(count);
        self
    }

    /// Span limits (default: the specification's).
    pub fn span_limits(mut self, limits: SpanLimits) -> Self {
        self.limits = limits;
        self
    }

    /// Exports to the OTLP receiver at `url`, for every signal: over gRPC
    /// the URL as given (`http://collector:4317`), over HTTP a base to
    /// which `/v1/traces` is appended (`http://collector:4318`). Without an
    /// endpoint (or a [`transport`](Self::transport)) the engine records
    /// and its caller drains ([`Engine::drain_traces`]).
    pub fn endpoint(mut self, url: impl Into<String>) -> Self {
        self.export.endpoint = Some(url.into());
        self
    }

    /// Exports traces to `url`, used as given (over HTTP, the full URL,
    /// `/v1/traces` included); overrides [`endpoint`](Self::endpoint).
    pub fn traces_endpoint(mut self, url: impl Into<String>) -> Self {
        self.export.traces_endpoint = Some(url.into());
        self
    }

    /// OTLP/gRPC (default) or OTLP/HTTP with protobuf bodies.
    pub fn protocol(mut self, protocol: Protocol) -> Self {
        self.export.protocol = protocol;
        self
    }

    /// Request compression (default none).
    pub fn compression(mut self, compression: Compression) -> Self {
        self.export.compression = compression;
        self
    }

    /// The compression level: gzip 0-9 (default
    /// [`GZIP_LEVEL_DEFAULT`](crate::config::GZIP_LEVEL_DEFAULT)), zstd
    /// 1-22 (default [`ZSTD_LEVEL_DEFAULT`](crate::config::ZSTD_LEVEL_DEFAULT)).
    pub fn compression_level(mut self, level: i32) -> Self {
        self.export.compression_level = Some(level);
        self
    }

    /// A header sent with every request (an API key, a tenant id).
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.export.headers.push((name.into(), value.into()));
        self
    }

    /// How long a request may wait for its answer (default 10 s).
    pub fn export_timeout(mut self, timeout: Duration) -> Self {
        self.export.timeout = timeout;
        self
    }

    /// Connections to the receiver (default 2): separately connected
    /// HTTP/2 channels for gRPC, pooled keep-alive connections for HTTP.
    pub fn connections(mut self, connections: usize) -> Self {
        self.export.connections = connections;
        self
    }

    /// Requests in flight at most, all workers together (default 8). While
    /// they are all out, spans wait in the rings.
    pub fn max_in_flight(mut self, requests: usize) -> Self {
        self.export.max_in_flight = requests;
        self
    }

    /// Worker threads (default: one per 8 CPUs, at least one; at most one
    /// per ring).
    pub fn workers(mut self, workers: usize) -> Self {
        self.export.workers = Some(workers);
        self
    }

    /// Whether workers are pinned to cores (default true).
    pub fn pin_workers(mut self, pin: bool) -> Self {
        self.export.pin_workers = pin;
        self
    }

    /// The cores workers are pinned to, worker `i` to `cores[i % len]`
    /// (default: the cores this process may run on, in order).
    pub fn worker_cores(mut self, cores: impl Into<Vec<usize>>) -> Self {
        self.export.worker_cores = Some(cores.into());
        self
    }

    /// Spans per request, at most (default 512).
    pub fn max_batch_spans(mut self, spans: usize) -> Self {
        self.export.max_batch_spans = spans;
        self
    }

    /// Span bytes per request, at most (default 2 MiB; a larger span still
    /// goes, alone).
    pub fn max_batch_bytes(mut self, bytes: usize) -> Self {
        self.export.max_batch_bytes = bytes;
        self
    }

    /// How long a span may wait for its request to fill (default 1 s).
    pub fn schedule_delay(mut self, delay: Duration) -> Self {
        self.export.schedule_delay = delay;
        self
    }

    /// Trusts the CA certificates in this PEM file for `https://`
    /// endpoints, instead of the system's roots.
    pub fn certificate(mut self, pem_file: impl Into<std::path::PathBuf>) -> Self {
        self.export.tls.ca_certificate = Some(pem_file.into());
        self
    }

    /// The client certificate chain (PEM) presented for mutual TLS; needs
    /// [`client_key`](Self::client_key).
    pub fn client_certificate(mut self, pem_file: impl Into<std::path::PathBuf>) -> Self {
        self.export.tls.client_certificate = Some(pem_file.into());
        self
    }

    /// The private key (PEM) of the [`client_certificate`](Self::client_certificate).
    pub fn client_key(mut self, pem_file: impl Into<std::path::PathBuf>) -> Self {
        self.export.tls.client_key = Some(pem_file.into());
        self
    }

    /// Serves the admin endpoint (`/metrics`, `/health`, `/ready`,
    /// `/stats`) on `address`, such as `127.0.0.1:9464` (port 0: any free
    /// port, see [`Engine::admin_address`]). Off by default.
    pub fn admin_address(mut self, address: impl Into<String>) -> Self {
        self.export.admin_address = Some(address.into());
        self
    }

    /// How long a failed export attempt keeps `/ready` false, unless one
    /// succeeds after it (default 30 s).
    pub fn ready_window(mut self, window: Duration) -> Self {
        self.export.ready_window = window;
        self
    }

    /// Sends requests through `transport` instead of gRPC or HTTP (tests,
    /// unusual deployments). Compression and batching still apply.
    #[cfg(feature = "export")]
    pub fn transport(mut self, transport: Arc<dyn Transport>) -> Self {
        self.transport = Some(CustomTransport(transport));
        self
    }

    /// Builds the engine.
    ///
    /// # Errors
    ///
    /// [`BuildError::RingCapacity`] for a ring size that is not a power of
    /// two between 64 bytes and 1 GiB; [`BuildError::Invalid`] for an
    /// export setting out of range (an endpoint that is not an `http://`
    /// URL, a header that HTTP does not allow, a zero count or timeout, a
    /// compression level the codec refuses); [`BuildError::Start`] when the
    /// exporter's threads or runtime cannot start.
    pub fn build(self) -> Result<Engine, BuildError> {
        let count = self.rings.unwrap_or_else(Rings::default_count);
        let rings = Rings::new(count, self.ring_bytes_per_cpu)?;
        let mut attributes = Vec::with_capacity(self.resource.len() + 4);
        let sdk = [
            ("telemetry.sdk.name", "otlpx"),
            ("telemetry.sdk.language", "rust"),
            ("telemetry.sdk.version", env!("CARGO_PKG_VERSION")),
        ];
        for (k, v) in sdk {
            attributes.push((k.to_owned(), any_value(&Value::Str(v))));
        }
        if !self.resource.iter().any(|(k, _)| k == SERVICE_NAME) {
            let exe = std::env::current_exe().ok();
            let name = exe
                .as_deref()
                .and_then(|p| p.file_name())
                .and_then(|n| n.to_str());
            let service = match name {
                Some(n) => format!("unknown_service:{n}"),
                None => "unknown_service".to_owned(),
            };
            attributes.push((SERVICE_NAME.to_owned(), any_value(&Value::Str(&service))));
        }
        attributes.extend(self.resource);
        let recorder = Arc::new(Recorder {
            rings,
            limits: self.limits,
            clock: Clock::new(),
            dropped_invalid: AtomicU64::new(0),
        });
        let catalog = Arc::new(Catalog::new(resource_bytes(&attributes)));
        #[cfg(feature = "export")]
        let admin = admin_address(&self.export)?;
        #[cfg(feature = "export")]
        let ready_window = self.export.ready_window;
        #[cfg(feature = "export")]
        let exporter = start_exporter(self.export, self.transport, &recorder, &catalog)?;
        #[cfg(not(feature = "export"))]
        if self.export.endpoint.is_some()
            || self.export.traces_endpoint.is_some()
            || self.export.admin_address.is_some()
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
                #[cfg(feature = "export")]
                exporter,
                #[cfg(feature = "export")]
                admin: std::sync::OnceLock::new(),
            }),
        };
        #[cfg(feature = "export")]
        if let Some(addr) = admin {
            // Weak: the server lives inside `Inner`, and must not keep it
            // alive past the last handle.
            let weak = Arc::downgrade(&engine.inner);
            let snapshot = Box::new(move || match weak.upgrade() {
                Some(inner) => crate::admin::Snapshot {
                    stats: inner.stats(),
                    running: inner.running(),
                },
                None => crate::admin::Snapshot {
                    stats: Stats::default(),
                    running: false,
                },
            });
            let server = crate::admin::AdminServer::start(addr, ready_window, snapshot)
                .map_err(|e| BuildError::Start(format!("admin endpoint on {addr}: {e}")))?;
            let _ = engine.inner.admin.set(server);
        }
        Ok(engine)
    }
}

struct Inner {
    recorder: Arc<Recorder>,
    catalog: Arc<Catalog>,
    /// For `drain_traces` callers.
    batcher: Mutex<Batcher>,
    #[cfg(feature = "export")]
    exporter: Option<Exporter>,
    #[cfg(feature = "export")]
    admin: std::sync::OnceLock<crate::admin::AdminServer>,
}

impl Inner {
    fn stats(&self) -> Stats {
        let r = &self.recorder;
        #[cfg(feature = "export")]
        let export = self.exporter.as_ref().map(Exporter::counters);
        #[cfg(not(feature = "export"))]
        let export = None;
        Stats::collect(
            r.rings.iter().map(|ring| ring.counters()),
            // Relaxed: a statistic.
            r.dropped_invalid.load(Ordering::Relaxed),
            export,
        )
    }

    /// Built and not shut down.
    #[cfg(feature = "export")]
    fn running(&self) -> bool {
        self.exporter.as_ref().is_none_or(|e| !e.stopped())
    }
}

#[cfg(feature = "export")]
impl Drop for Inner {
    /// The last handle gone: deliver what can be delivered within the
    /// export timeout, then stop.
    fn drop(&mut self) {
        if let Some(exporter) = &self.exporter {
            let _ = exporter.shutdown(exporter.timeout());
        }
    }
}

/// The otlpx engine: cheap to clone (`Arc`), `Send + Sync`.
///
/// Record spans through the [`Tracer`]s it hands out. Built with an
/// endpoint, its workers send them; without one, take them out as
/// ready-to-send OTLP requests with [`drain_traces`](Self::drain_traces).
/// Dropping the last handle of an exporting engine shuts it down.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
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
            resource: Vec::new(),
            ring_bytes_per_cpu: DEFAULT_RING_BYTES_PER_CPU,
            rings: None,
            limits: SpanLimits::default(),
            export: ExportConfig::default(),
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

    fn register_scope(&self, bytes: ScopeBytes) -> u32 {
        self.inner.catalog.register(bytes)
    }

    /// Sends every span recorded before the call and waits for the
    /// receiver's answers, for at most `timeout`. Recording goes on
    /// meanwhile; spans recorded during the flush may or may not be in it.
    ///
    /// # Errors
    ///
    /// [`FlushError::Timeout`] if spans were still in rings or in flight at
    /// the deadline (they stay counted there, and go on their way);
    /// [`FlushError::NotExporting`] for an engine without an exporter or
    /// after shutdown.
    ///
    /// [`FlushError::Timeout`]: crate::FlushError::Timeout
    /// [`FlushError::NotExporting`]: crate::FlushError::NotExporting
    #[cfg(feature = "export")]
    pub fn flush(&self, timeout: Duration) -> Result<(), crate::FlushError> {
        match &self.inner.exporter {
            Some(e) => e.workers.flush(Instant::now() + timeout),
            None => Err(crate::FlushError::NotExporting),
        }
    }

    /// Flushes for at most `timeout`, then stops the workers and the I/O
    /// runtime. Requests still unanswered then are abandoned and counted in
    /// [`Dropped::shutdown`](crate::Dropped::shutdown) (abandoning them may
    /// take up to 100 ms past the deadline); spans a full flush
    /// could not send stay counted `in_rings`. Spans recorded afterwards
    /// are kept in the rings and never sent. Dropping the last handle of an
    /// engine shuts it down with the export timeout. Calling it again does
    /// nothing.
    ///
    /// # Errors
    ///
    /// [`FlushError::Timeout`](crate::FlushError::Timeout) when the flush
    /// did not complete in time (the engine is stopped all the same).
    #[cfg(feature = "export")]
    pub fn shutdown(&self, timeout: Duration) -> Result<(), crate::FlushError> {
        match &self.inner.exporter {
            Some(e) => e.shutdown(timeout),
            None => Ok(()),
        }
    }

    /// The most recent export error, for diagnostics (counts by kind are in
    /// [`stats`](Self::stats)).
    #[cfg(feature = "export")]
    pub fn last_export_error(&self) -> Option<String> {
        self.inner.exporter.as_ref()?.workers.last_error()
    }

    /// The core each worker thread is pinned to (`None`: not pinned, by
    /// configuration or because the OS refused); empty without an exporter.
    #[cfg(feature = "export")]
    pub fn worker_cores(&self) -> Vec<Option<usize>> {
        self.inner
            .exporter
            .as_ref()
            .map(|e| e.pinned.clone())
            .unwrap_or_default()
    }

    /// A snapshot of the engine's counters.
    pub fn stats(&self) -> Stats {
        self.inner.stats()
    }

    /// Where the admin endpoint listens, if the engine serves one.
    #[cfg(feature = "export")]
    pub fn admin_address(&self) -> Option<std::net::SocketAddr> {
        self.inner
            .admin
            .get()
            .map(crate::admin::AdminServer::local_addr)
    }

    /// Takes up to `max_spans` spans out of the rings and frames them as one
    /// OTLP `ExportTraceServiceRequest` in `out` (cleared first). Returns how
    /// many spans it framed; with none, `out` stays empty.
    ///
    /// This is the consumer side of an engine built without an exporter,
    /// for callers that send the bytes themselves (and for tests); an
    /// exporting engine's workers own its rings, and this returns 0. Rings
    /// another consumer is draining at the moment are skipped. Spans are copied once, from ring memory
    /// into `out`; reuse `out` across calls.
    ///
    /// ```
    /// # let engine = otlpx::Engine::builder().build()?;
    /// engine.tracer("demo", "").start("work").end();
    /// let mut out = bytes::BytesMut::new();
    /// assert_eq!(engine.drain_traces(&mut out, 512), 1);
    /// assert!(!out.is_empty());
    /// # Ok::<(), otlpx::BuildError>(())
    /// ```
    pub fn drain_traces(&self, out: &mut BytesMut, max_spans: usize) -> usize {
        self.frame_traces(out, max_spans, true)
    }

    /// Frames like [`drain_traces`](Self::drain_traces) but leaves the spans
    /// in the rings: for benchmarks that frame the same spans repeatedly.
    #[doc(hidden)]
    pub fn frame_traces_without_release(&self, out: &mut BytesMut, max_spans: usize) -> usize {
        self.frame_traces(out, max_spans, false)
    }

    fn frame_traces(&self, out: &mut BytesMut, max_spans: usize, release: bool) -> usize {
        #[cfg(feature = "export")]
        if self.inner.exporter.is_some() {
            out.clear();
            return 0;
        }
        let inner = &*self.inner;
        inner
            .batcher
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take(
                inner.recorder.rings.iter(),
                &inner.catalog,
                max_spans,
                usize::MAX,
                out,
                release,
            )
    }
}

/// The running export side of an engine.
#[cfg(feature = "export")]
struct Exporter {
    workers: Workers,
    counters: Arc<ExportCounters>,
    timeout: Duration,
    pinned: Vec<Option<usize>>,
    /// Set by the first `shutdown`.
    stopped: std::sync::atomic::AtomicBool,
}

#[cfg(feature = "export")]
impl Exporter {
    fn counters(&self) -> &ExportCounters {
        &self.counters
    }

    fn timeout(&self) -> Duration {
        self.timeout
    }

    fn shutdown(&self, timeout: Duration) -> Result<(), crate::worker::FlushError> {
        // Relaxed: a flag for `/ready`, ordered with nothing else.
        self.stopped.store(true, Ordering::Relaxed);
        self.workers.shutdown(Instant::now() + timeout)
    }

    fn stopped(&self) -> bool {
        // Relaxed: see `shutdown`.
        self.stopped.load(Ordering::Relaxed)
    }
}

#[cfg(feature = "export")]
fn invalid(
    setting: &'static str,
    value: impl std::fmt::Debug,
    reason: impl Into<String>,
) -> BuildError {
    BuildError::Invalid {
        setting,
        value: format!("{value:?}").trim_matches('"').to_owned(),
        reason: reason.into(),
    }
}

/// The admin endpoint's address, checked.
#[cfg(feature = "export")]
fn admin_address(config: &ExportConfig) -> Result<Option<std::net::SocketAddr>, BuildError> {
    let Some(address) = &config.admin_address else {
        return Ok(None);
    };
    address.parse().map(Some).map_err(|_| {
        invalid(
            "admin_address",
            address,
            "expected an IP address and port, like 127.0.0.1:9464",
        )
    })
}

/// The URL requests go to, checked: `http[s]://host[:port][/path]`.
#[cfg(feature = "export")]
fn signal_uri(config: &ExportConfig) -> Result<Option<http::Uri>, BuildError> {
    let (setting, url, append) = match (&config.traces_endpoint, &config.endpoint) {
        (Some(url), _) => ("traces_endpoint", url, false),
        (None, Some(url)) => ("endpoint", url, config.protocol == Protocol::HttpProtobuf),
        (None, None) => return Ok(None),
    };
    let uri: http::Uri = url
        .parse()
        .map_err(|e: http::uri::InvalidUri| invalid(setting, url, e.to_string()))?;
    match uri.scheme_str() {
        Some("http" | "https") => {}
        _ => return Err(invalid(setting, url, "expected an http:// or https:// URL")),
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err(invalid(setting, url, "the URL names no host"));
    }
    if !append {
        return Ok(Some(uri));
    }
    let base = url.trim_end_matches('/');
    let full = format!("{base}{}", crate::transport::Signal::Traces.http_path());
    full.parse()
        .map(Some)
        .map_err(|e: http::uri::InvalidUri| invalid(setting, url, e.to_string()))
}

#[cfg(feature = "export")]
fn start_exporter(
    config: ExportConfig,
    custom: Option<CustomTransport>,
    recorder: &Arc<Recorder>,
    catalog: &Arc<Catalog>,
) -> Result<Option<Exporter>, BuildError> {
    let uri = signal_uri(&config)?;
    if uri.is_none() && custom.is_none() {
        return Ok(None);
    }
    for (setting, value) in [
        ("connections", config.connections),
        ("max_in_flight", config.max_in_flight),
        ("max_batch_spans", config.max_batch_spans),
        ("max_batch_bytes", config.max_batch_bytes),
        ("workers", config.workers.unwrap_or(1)),
    ] {
        if value == 0 {
            return Err(invalid(setting, value, "must be at least 1"));
        }
    }
    if config.timeout.is_zero() {
        return Err(invalid(
            "export_timeout",
            config.timeout,
            "must be more than zero",
        ));
    }
    if config.schedule_delay.is_zero() {
        return Err(invalid(
            "schedule_delay",
            config.schedule_delay,
            "must be more than zero",
        ));
    }
    let mut headers = http::HeaderMap::new();
    for (name, value) in &config.headers {
        let name = http::HeaderName::try_from(name.as_str())
            .map_err(|e| invalid("header", name, e.to_string()))?;
        // The value is a secret as often as not: name the header only.
        let value = http::HeaderValue::try_from(value.as_str()).map_err(|_| {
            invalid(
                "header",
                name.as_str(),
                "its value has characters HTTP does not allow",
            )
        })?;
        headers.append(name, value);
    }
    let cores = if !config.pin_workers {
        Vec::new()
    } else if let Some(cores) = config.worker_cores.clone() {
        if cores.is_empty() {
            return Err(invalid(
                "worker_cores",
                cores,
                "name at least one core, or turn pinning off",
            ));
        }
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
        policy: Policy {
            max_spans: config.max_batch_spans,
            max_bytes: config.max_batch_bytes,
            delay: config.schedule_delay,
        },
        compression: config.compression,
        compression_level: config.compression_level,
        timeout: config.timeout,
        max_in_flight: config.max_in_flight,
    };
    crate::compress::Compressor::new(config.compression, config.compression_level).map_err(
        |reason| {
            invalid(
                "compression_level",
                config.compression_level.unwrap_or_default(),
                reason,
            )
        },
    )?;
    let tls = match &uri {
        Some(uri) if uri.scheme_str() == Some("https") => Some(
            crate::transport::ClientTls::load(&config.tls)
                .map_err(|reason| BuildError::Start(format!("TLS: {reason}")))?,
        ),
        _ => None,
    };
    let counters = Arc::new(ExportCounters::default());
    let connect_timeout = config.timeout.min(Duration::from_secs(5));
    let make_transport = || -> Result<Arc<dyn Transport>, String> {
        if let Some(CustomTransport(t)) = custom {
            return Ok(t);
        }
        let uri = uri.expect("checked above");
        Ok(match config.protocol {
            Protocol::Grpc => Arc::new(GrpcTransport::new(
                &uri.to_string(),
                config.connections,
                headers,
                connect_timeout,
                tls.as_ref(),
            )?),
            Protocol::HttpProtobuf => Arc::new(HttpTransport::new(
                uri,
                config.connections,
                headers,
                connect_timeout,
                tls.as_ref(),
            )),
        })
    };
    let (workers, started) = Workers::start(
        Arc::clone(recorder),
        Arc::clone(catalog),
        Arc::clone(&counters),
        settings,
        make_transport,
    )
    .map_err(BuildError::Start)?;
    Ok(Some(Exporter {
        workers,
        counters,
        timeout: config.timeout,
        pinned: started.into_iter().map(|s| s.pinned).collect(),
        stopped: std::sync::atomic::AtomicBool::new(false),
    }))
}
