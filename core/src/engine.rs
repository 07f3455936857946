//! The [`Engine`] handle: built once from an [`EngineBuilder`], it owns the
//! rings, the resource, the registry of instrumentation scopes, and hands
//! out [`Tracer`]s. Everything here runs at setup or on the consumer side;
//! nothing here is on the recording hot path.

use crate::clock::Clock;
use crate::config::{DEFAULT_RING_BYTES_PER_CPU, SpanLimits};
use crate::encode::{OneScope, ScopeBytes, TraceFramer, resource_bytes};
use crate::proto;
use crate::record::{Recorder, Tracer};
use crate::ring::{Batch, CapacityError, MAX_TAG, RecordKind, Rings};
use crate::telemetry::Stats;
use crate::value::{KeyValue, Value};
use bytes::BytesMut;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

/// Why an engine could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// `ring_bytes_per_cpu` is not a power of two in range.
    #[error("invalid ring_bytes_per_cpu: {0}")]
    RingCapacity(#[from] CapacityError),
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

    /// Builds the engine.
    ///
    /// # Errors
    ///
    /// [`BuildError::RingCapacity`] for a ring size that is not a power of
    /// two between 64 bytes and 1 GiB.
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
        Ok(Engine {
            inner: Arc::new(Inner {
                recorder: Arc::new(Recorder {
                    rings,
                    limits: self.limits,
                    clock: Clock::new(),
                    dropped_invalid: AtomicU64::new(0),
                }),
                resource: resource_bytes(&attributes),
                scopes: RwLock::default(),
                framer: Mutex::default(),
            }),
        })
    }
}

/// Registered scopes: the tag in a span record indexes `list`.
#[derive(Default)]
struct Scopes {
    list: Vec<ScopeBytes>,
    index: HashMap<(Vec<u8>, String), u32>,
}

struct Inner {
    recorder: Arc<Recorder>,
    resource: Vec<u8>,
    scopes: RwLock<Scopes>,
    framer: Mutex<TraceFramer>,
}

/// The otlpx engine: cheap to clone (`Arc`), `Send + Sync`.
///
/// Record spans through the [`Tracer`]s it hands out; take them out as
/// ready-to-send OTLP requests with [`drain_traces`](Self::drain_traces).
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
        let key = (bytes.scope.clone(), bytes.schema_url.clone());
        if let Some(&tag) = self
            .inner
            .scopes
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .index
            .get(&key)
        {
            return tag;
        }
        let mut scopes = self
            .inner
            .scopes
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(&tag) = scopes.index.get(&key) {
            return tag;
        }
        // A record tag has 24 bits. Past 16.7M distinct scopes (a leak in
        // the application) further ones share the last tag's scope, named
        // so that the overflow is visible at the backend.
        let tag = scopes.list.len() as u32;
        if tag >= MAX_TAG {
            if scopes.list.len() == MAX_TAG as usize {
                scopes
                    .list
                    .push(ScopeBytes::new("otlpx.scope_overflow", "", "", &[]));
            }
            return MAX_TAG;
        }
        scopes.list.push(bytes);
        scopes.index.insert(key, tag);
        tag
    }

    /// A snapshot of the engine's counters.
    pub fn stats(&self) -> Stats {
        let r = &self.inner.recorder;
        // Relaxed: a statistic.
        Stats::collect(
            r.rings.iter().map(|ring| ring.counters()),
            r.dropped_invalid.load(Ordering::Relaxed),
        )
    }

    /// Takes up to `max_spans` spans out of the rings and frames them as one
    /// OTLP `ExportTraceServiceRequest` in `out` (cleared first). Returns how
    /// many spans it framed; with none, `out` stays empty.
    ///
    /// This is the consumer side of the engine, for callers that send the
    /// bytes themselves (and for tests). Rings another consumer is draining
    /// at the moment are skipped. Spans are copied once, from ring memory
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
        let inner = &*self.inner;
        let mut framer = inner.framer.lock().unwrap_or_else(PoisonError::into_inner);
        let rings = &inner.recorder.rings;
        let mut taken = Vec::with_capacity(rings.len());
        let mut left = max_spans;
        for ring in rings.iter() {
            if left == 0 {
                break;
            }
            if let Some(consumer) = ring.try_consume() {
                let batch = consumer.peek(left, usize::MAX);
                left -= batch.len();
                taken.push((consumer, batch));
            }
        }
        let scopes = inner.scopes.read().unwrap_or_else(PoisonError::into_inner);
        let framed = framer.frame(
            &inner.resource,
            &scopes.list,
            one_scope(taken.iter().map(|(_, batch)| batch)),
            |sink| {
                for (consumer, batch) in &taken {
                    consumer.for_each(batch, |r| {
                        // Spans are the only kind recorded so far; other
                        // kinds get their own framers with their signals.
                        debug_assert_eq!(r.kind, Some(RecordKind::Span));
                        sink(r.tag, r.payload);
                    });
                }
            },
            out,
        );
        drop(scopes);
        if release {
            for (mut consumer, batch) in taken {
                consumer.release(batch);
            }
        }
        framed
    }
}

/// When every record of `batches` carries one scope (the usual case), the
/// request's sizes follow from the rings' summaries and the framer skips
/// its sizing walk.
fn one_scope<'b>(batches: impl Iterator<Item = &'b Batch>) -> Option<OneScope> {
    let (mut tag, mut spans, mut bytes) = (None, 0, 0);
    for batch in batches.filter(|b| !b.is_empty()) {
        let t = batch.single_tag()?;
        if *tag.get_or_insert(t) != t {
            return None;
        }
        spans += batch.len();
        bytes += batch.payload_bytes();
    }
    OneScope::new(tag?, spans, bytes)
}
