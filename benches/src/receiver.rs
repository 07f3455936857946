//! An embedded OTLP receiver: gRPC and HTTP servers on 127.0.0.1 that
//! accept trace, metric and log exports, count them cheaply and answer as a
//! collector would, for the end-to-end tests and the load generator.
//!
//! A [`Receiver`] owns a small tokio runtime, so callers need none: `start`
//! returns once both ports are bound, and dropping the receiver stops it.
//! gRPC is served by tonic with a raw-bytes codec and a hand-written
//! service (no generated server, no prost decoding); HTTP by hyper (HTTP/1.1
//! and h2c on one port). Both set `TCP_NODELAY` on every accepted socket:
//! otherwise a response written in two pieces waits for the client's delayed
//! ACK (Nagle's algorithm), ~40 ms a round trip.
//!
//! Spans, log records and metrics (`Metric` messages, not their data
//! points) are counted by walking the wire format ([`crate::wire`]), never
//! by decoding, unless keep mode asks for the decoded requests.
//! Counters are statistics: each is a `Relaxed` atomic, read without
//! ordering against the others, except that in keep mode a request is
//! stored before its items are counted, so a caller that has seen the
//! spans (for instance through [`Receiver::wait_for_spans`]) also finds the
//! request in [`Receiver::take_requests`], one that has seen the log
//! records ([`Receiver::wait_for_log_records`]) finds it in
//! [`Receiver::take_log_requests`], and one that has seen the metrics
//! ([`Receiver::wait_for_metrics`]) in [`Receiver::take_metric_requests`].
//!
//! With [`ReceiverConfig::tls`] both servers speak TLS only (rustls with the
//! ring provider), and with a client CA they require a client certificate
//! that chains to it (mutual TLS). Each handshake runs on its connection's
//! own task, bounded by [`TLS_HANDSHAKE_TIMEOUT_MS`], so a slow or silent
//! client holds up no other; a failed handshake ends its connection
//! uncounted (the client sees the TLS alert).
//!
//! For exporters' retry and failover paths the receiver misbehaves on
//! command: a [`Fault`] refuses well-formed requests (optionally with a
//! retry hint), answers them late, or kills the connection a request came
//! on without answering it; [`Receiver::set_fault`] sets the fault for
//! every request, and [`Receiver::push_faults`] scripts the next few. Every
//! accepted connection, TLS or not, is a `KillableStream`, through which
//! that fault ends its own connection and [`Receiver::shutdown`] ends them
//! all before it returns, so that a new receiver can take the same ports at
//! once.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::future::{Future, ready};
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, PoisonError, RwLock, Weak};
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime};

use bytes::{Buf, BufMut, Bytes};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use prost::Message;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Runtime;
use tokio::sync::{mpsc, watch};
use tokio_rustls::TlsAcceptor;
use tonic::codec::{Codec, CompressionEncoding, DecodeBuf, Decoder, EncodeBuf, Encoder};

/// The largest request body accepted, compressed or not: 64 MiB, 16 times
/// tonic's default limit, so that no batch size a load test might try is
/// refused, while a decompression bomb still cannot exhaust memory.
const MAX_MESSAGE_BYTES: usize = 64 << 20;

/// How long `Drop` lets the runtime's threads finish: tasks are cancelled at
/// once, so this only bounds a blocked thread.
const SHUTDOWN_TIMEOUT_MS: u64 = 1000;

/// How often [`Receiver::wait_for_items`] looks at the item counter.
const WAIT_POLL_INTERVAL_MS: u64 = 1;

/// How long a TLS handshake may take before its connection is dropped:
/// generous for loopback, and a bound on what a client that connects and
/// says nothing costs.
pub const TLS_HANDSHAKE_TIMEOUT_MS: u64 = 10_000;

/// Accepted (with TLS, established) connections waiting for tonic to take
/// them; a handful suffices, as tonic takes each as soon as it is offered.
const GRPC_ACCEPT_QUEUE: usize = 16;

/// gRPC status codes used here (numbers from the gRPC specification).
const GRPC_INVALID_ARGUMENT: i32 = 3;
const GRPC_NOT_FOUND: i32 = 5;
const GRPC_UNIMPLEMENTED: i32 = 12;

/// The `type_url` of a `google.rpc.RetryInfo` packed in a
/// `google.protobuf.Any`.
const RETRY_INFO_TYPE_URL: &str = "type.googleapis.com/google.rpc.RetryInfo";

/// The last second an IMF-fixdate can name, 9999-12-31T23:59:59Z, in
/// seconds since the Unix epoch (`httpdate` panics past it).
const LAST_HTTP_DATE_SECS: u64 = 253_402_300_799;

/// The three OTLP signals, with their gRPC and HTTP paths.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Signal {
    /// `ExportTraceServiceRequest`.
    Traces,
    /// `ExportMetricsServiceRequest`.
    Metrics,
    /// `ExportLogsServiceRequest`.
    Logs,
}

impl Signal {
    const ALL: [Signal; 3] = [Signal::Traces, Signal::Metrics, Signal::Logs];

    /// The gRPC method path of this signal's `Export`.
    pub const fn grpc_path(self) -> &'static str {
        match self {
            Self::Traces => "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
            Self::Metrics => "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export",
            Self::Logs => "/opentelemetry.proto.collector.logs.v1.LogsService/Export",
        }
    }

    /// The OTLP/HTTP path of this signal.
    pub const fn http_path(self) -> &'static str {
        match self {
            Self::Traces => "/v1/traces",
            Self::Metrics => "/v1/metrics",
            Self::Logs => "/v1/logs",
        }
    }

    fn from_grpc_path(path: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.grpc_path() == path)
    }

    fn from_http_path(path: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.http_path() == path)
    }
}

/// How a [`Receiver`] is set up.
#[derive(Clone, Debug)]
pub struct ReceiverConfig {
    /// The gRPC port on 127.0.0.1; 0 picks a free one.
    pub grpc_port: u16,
    /// The HTTP port on 127.0.0.1; 0 picks a free one.
    pub http_port: u16,
    /// Whether to decode and keep every request and the metadata of every
    /// request (see [`Receiver::take_requests`],
    /// [`Receiver::take_log_requests`], [`Receiver::take_metric_requests`]
    /// and [`Receiver::take_request_meta`]).
    pub keep_requests: bool,
    /// Worker threads of the receiver's runtime (at least 1).
    pub io_threads: usize,
    /// TLS for both servers; `None` serves plain TCP (h2c and HTTP/1.1).
    pub tls: Option<ReceiverTls>,
}

impl Default for ReceiverConfig {
    /// Free ports, nothing kept, one worker thread, no TLS.
    fn default() -> Self {
        Self {
            grpc_port: 0,
            http_port: 0,
            keep_requests: false,
            io_threads: 1,
            tls: None,
        }
    }
}

/// The receiver's TLS identity and, for mutual TLS, the CA its clients'
/// certificates must chain to. All PEM text.
///
/// For the endpoints [`Receiver`] reports (`https://127.0.0.1:<port>`) to
/// verify, the certificate must name the IP address 127.0.0.1; clients
/// may also connect as `localhost` if it names that.
#[derive(Clone)]
pub struct ReceiverTls {
    /// The server's certificate chain, its own certificate first.
    pub cert_chain_pem: String,
    /// The server's private key (PKCS#8, PKCS#1 or SEC1).
    pub key_pem: String,
    /// CA certificates for client certificates. When set, every client
    /// must present a certificate that chains to one of them (mutual TLS);
    /// when not, none is asked for.
    pub client_ca_pem: Option<String>,
}

impl std::fmt::Debug for ReceiverTls {
    /// Leaves the private key out.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReceiverTls")
            .field("cert_chain_pem", &self.cert_chain_pem)
            .field("key_pem", &"<redacted>")
            .field("client_ca_pem", &self.client_ca_pem)
            .finish()
    }
}

impl ReceiverTls {
    /// A TLS acceptor offering the ALPN protocols `alpn`, on the ring
    /// provider (named here, so the process-wide default provider is
    /// neither needed nor touched).
    fn acceptor(&self, alpn: &[&[u8]]) -> io::Result<TlsAcceptor> {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};

        let invalid = |what: &str, e: &dyn std::fmt::Display| {
            io::Error::new(io::ErrorKind::InvalidInput, format!("TLS {what}: {e}"))
        };
        let certificates = |pem: &str, what: &str| {
            let certificates = CertificateDer::pem_slice_iter(pem.as_bytes())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| invalid(what, &e))?;
            if certificates.is_empty() {
                return Err(invalid(what, &"no certificate in the PEM text"));
            }
            Ok(certificates)
        };
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let chain = certificates(&self.cert_chain_pem, "certificate chain")?;
        let key = PrivateKeyDer::from_pem_slice(self.key_pem.as_bytes())
            .map_err(|e| invalid("private key", &e))?;
        let builder = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .map_err(|e| invalid("protocol versions", &e))?;
        let builder = match &self.client_ca_pem {
            None => builder.with_no_client_auth(),
            Some(pem) => {
                let mut roots = rustls::RootCertStore::empty();
                for certificate in certificates(pem, "client CA")? {
                    roots
                        .add(certificate)
                        .map_err(|e| invalid("client CA", &e))?;
                }
                let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                    Arc::new(roots),
                    provider,
                )
                .build()
                .map_err(|e| invalid("client verifier", &e))?;
                builder.with_client_cert_verifier(verifier)
            }
        };
        let mut config = builder
            .with_single_cert(chain, key)
            .map_err(|e| invalid("certificate and key", &e))?;
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Ok(TlsAcceptor::from(Arc::new(config)))
    }
}

/// A snapshot of a receiver's counters.
///
/// Every request that reaches a known export path counts once, in
/// `requests`, `metrics_requests` or `logs_requests` by its signal;
/// `requests_malformed` and `requests_faulted` count subsets of them (of
/// every signal), and `connections_dropped` a subset of `requests_faulted`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Trace export requests received.
    pub requests: u64,
    /// Spans received and accepted (all or partly, see `spans_rejected`).
    pub spans: u64,
    /// Request body bytes as received, compressed (for gRPC including the
    /// 5-byte message prefix), all signals.
    pub bytes_wire: u64,
    /// Request message bytes after decompression, all signals.
    pub bytes_decoded: u64,
    /// Requests refused as malformed: unsupported content type or encoding,
    /// a body that does not decompress or parse.
    pub requests_malformed: u64,
    /// Requests answered according to a [`Fault`] other than `None`.
    pub requests_faulted: u64,
    /// The `rejected_spans` reported in partial-success answers.
    pub spans_rejected: u64,
    /// Metric export requests received.
    pub metrics_requests: u64,
    /// Log export requests received.
    pub logs_requests: u64,
    /// Requests answered by killing their connection
    /// ([`Fault::DropConnection`]).
    pub connections_dropped: u64,
    /// Log records received and accepted (all or partly, see
    /// `log_records_rejected`).
    pub log_records: u64,
    /// The `rejected_log_records` reported in partial-success answers to
    /// log requests.
    pub log_records_rejected: u64,
    /// Metrics (`Metric` messages, whatever their data points) received
    /// and accepted (all or partly, see `metrics_rejected`): what an
    /// exporter that counts a metric as its item sent.
    pub metrics: u64,
    /// The `rejected_data_points` reported in partial-success answers to
    /// metric requests (data points, as OTLP counts them there).
    pub metrics_rejected: u64,
}

impl Counts {
    /// The items of `signal` received and accepted: `spans` for traces,
    /// `log_records` for logs, `metrics` for metrics.
    pub const fn items(&self, signal: Signal) -> u64 {
        match signal {
            Signal::Traces => self.spans,
            Signal::Logs => self.log_records,
            Signal::Metrics => self.metrics,
        }
    }

    /// The items of `signal` reported rejected in partial-success answers:
    /// `spans_rejected` for traces, `log_records_rejected` for logs,
    /// `metrics_rejected` (data points) for metrics.
    pub const fn items_rejected(&self, signal: Signal) -> u64 {
        match signal {
            Signal::Traces => self.spans_rejected,
            Signal::Logs => self.log_records_rejected,
            Signal::Metrics => self.metrics_rejected,
        }
    }
}

/// How the receiver answers a well-formed request, for testing exporters'
/// error paths (see [`Receiver::set_fault`] and [`Receiver::push_faults`]).
///
/// Malformed requests are refused whatever the fault. Every fault but
/// `None` counts in [`Counts::requests_faulted`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Fault {
    /// Accept the request.
    #[default]
    None,
    /// Refuse the request with this error; its spans (log records,
    /// metrics) are not counted.
    Status {
        /// The gRPC status code (`UNAVAILABLE` is 14).
        grpc_code: i32,
        /// The HTTP status (503 for instance).
        http_status: u16,
        /// The error message, in the gRPC status or the HTTP body's
        /// `google.rpc.Status`.
        message: String,
    },
    /// Accept the request but answer with a partial success. The spans
    /// (log records, metrics) still count in [`Counts::spans`]
    /// ([`Counts::log_records`], [`Counts::metrics`]); `rejected` (if
    /// positive) is added to [`Counts::spans_rejected`] for trace
    /// requests, [`Counts::log_records_rejected`] for log requests,
    /// [`Counts::metrics_rejected`] for metric requests.
    PartialSuccess {
        /// The `rejected_spans` (or data points, log records) reported.
        rejected: i64,
        /// The `error_message` reported.
        message: String,
    },
    /// Refuse the request as [`Fault::Status`] does, optionally telling
    /// the client when to retry; its spans (log records) are not counted.
    ///
    /// Over gRPC the hint is a `google.rpc.RetryInfo` in the details of the
    /// status (the `grpc-status-details-bin` metadata, a `google.rpc.Status`
    /// in unpadded base64); over HTTP it is the `Retry-After` header (see
    /// [`RetryHint`]), and the body's `google.rpc.Status` has no details.
    Refuse {
        /// The gRPC status code (`RESOURCE_EXHAUSTED` is 8, `UNAVAILABLE`
        /// 14).
        grpc_code: i32,
        /// The HTTP status (429 or 503 for instance).
        http_status: u16,
        /// The error message, in the gRPC status or the HTTP body's
        /// `google.rpc.Status`.
        message: String,
        /// When the client may retry; `None` sends no hint.
        retry_after: Option<RetryHint>,
    },
    /// Accept as [`Fault::None`] does (the items count at once), then
    /// wait `delay` before answering: a client that gives up on the answer
    /// has delivered the items all the same, so its retry duplicates them
    /// (OTLP's at-least-once). The wait holds up no other request but
    /// those an HTTP/1.1 client queues behind it on its connection.
    Slow {
        /// How long to wait before answering.
        delay: Duration,
    },
    /// Read the whole request, then kill the TCP connection it came on
    /// without answering: the client sees the connection close (a
    /// transport error), and no status of any kind. Its items are not
    /// counted; it counts in [`Counts::connections_dropped`].
    ///
    /// Only that connection is killed, plain or TLS alike; over HTTP/2 the
    /// other requests it carries fail with it.
    DropConnection,
}

/// When a client refused by [`Fault::Refuse`] may retry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetryHint {
    /// How long the client should wait before retrying. gRPC sends it
    /// exactly; HTTP rounds it up to a whole second.
    pub delay: Duration,
    /// Whether HTTP's `Retry-After` is an IMF-fixdate (now + `delay`,
    /// `Sun, 06 Nov 1994 08:49:37 GMT`) rather than a number of seconds.
    pub http_date: bool,
}

/// Which server a request came through.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// OTLP/gRPC.
    Grpc,
    /// OTLP/HTTP with protobuf bodies.
    Http,
}

/// The compression of a request body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    /// Uncompressed (no header, or `identity`).
    None,
    /// gzip.
    Gzip,
    /// zstd.
    Zstd,
}

impl Compression {
    /// Parses a `grpc-encoding` or `Content-Encoding` value; `None` if it is
    /// not one the receiver decodes.
    fn from_header(value: Option<&http::HeaderValue>) -> Option<Self> {
        let Some(value) = value else {
            return Some(Self::None);
        };
        let value = value.to_str().ok()?.trim();
        if value.is_empty() || value.eq_ignore_ascii_case("identity") {
            Some(Self::None)
        } else if value.eq_ignore_ascii_case("gzip") {
            Some(Self::Gzip)
        } else if value.eq_ignore_ascii_case("zstd") {
            Some(Self::Zstd)
        } else {
            None
        }
    }
}

/// What keep mode records of each request that got as far as a
/// decompressed body (malformed and refused ones included, in arrival order).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestMeta {
    /// The request's signal.
    pub signal: Signal,
    /// The server it came through.
    pub transport: Transport,
    /// Its compression (`grpc-encoding` or `Content-Encoding`).
    pub compression: Compression,
    /// Its `user-agent` header, if any.
    pub user_agent: Option<String>,
    /// All its headers, names in lower case, in the order received (values
    /// that are not UTF-8 converted lossily).
    pub headers: Vec<(String, String)>,
    /// Its size after decompression.
    pub bytes_decoded: u64,
    /// The spans it held (0 if it is not a trace request or is malformed).
    pub spans: u64,
    /// Whether it was accepted (answered with success or partial success);
    /// only accepted trace requests appear in [`Receiver::take_requests`],
    /// only accepted log requests in [`Receiver::take_log_requests`], only
    /// accepted metric requests in [`Receiver::take_metric_requests`].
    pub accepted: bool,
    /// The log records it held (0 if it is not a log request or is
    /// malformed).
    pub log_records: u64,
    /// The metrics it held (0 if it is not a metric request or is
    /// malformed).
    pub metrics: u64,
}

/// A running OTLP receiver; see the module documentation.
#[derive(Debug)]
pub struct Receiver {
    shared: Arc<Shared>,
    grpc_addr: SocketAddr,
    http_addr: SocketAddr,
    /// Whether both servers speak TLS (their endpoints are `https://`).
    tls: bool,
    shutdown: watch::Sender<bool>,
    runtime: Option<Runtime>,
}

impl Receiver {
    /// Starts a receiver: builds its runtime, binds both ports on 127.0.0.1
    /// and serves them until dropped.
    ///
    /// # Errors
    ///
    /// If the runtime cannot be built, a port cannot be bound (already in
    /// use, for instance), or the TLS certificates or key are unusable
    /// (`InvalidInput`).
    pub fn start(config: ReceiverConfig) -> io::Result<Receiver> {
        // gRPC needs HTTP/2; the HTTP port serves both versions.
        let acceptors = match &config.tls {
            Some(tls) => Some((
                tls.acceptor(&[b"h2"])?,
                tls.acceptor(&[b"h2", b"http/1.1"])?,
            )),
            None => None,
        };
        let (grpc_tls, http_tls) = acceptors.unzip();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(config.io_threads.max(1))
            .thread_name("otlpx-receiver")
            .enable_io()
            .enable_time()
            .build()?;
        let grpc_std = bind_std(config.grpc_port)?;
        let http_std = bind_std(config.http_port)?;
        let grpc_addr = grpc_std.local_addr()?;
        let http_addr = http_std.local_addr()?;
        let (grpc_listener, http_listener) = {
            let _context = runtime.enter();
            (
                TcpListener::from_std(grpc_std)?,
                TcpListener::from_std(http_std)?,
            )
        };

        let shared = Arc::new(Shared::new(config.keep_requests));
        let (shutdown, stopped) = watch::channel(false);

        let service = GrpcService {
            shared: Arc::clone(&shared),
        };
        let tls = grpc_tls.is_some();
        match grpc_tls {
            None => {
                let (streams, incoming) = mpsc::channel(GRPC_ACCEPT_QUEUE);
                runtime.spawn(accept_grpc(
                    grpc_listener,
                    Arc::clone(&shared),
                    streams,
                    stopped.clone(),
                ));
                let incoming = tokio_stream::wrappers::ReceiverStream::new(incoming);
                runtime.spawn(serve_grpc(service, incoming, stopped.clone()));
            }
            Some(acceptor) => {
                let (streams, incoming) = mpsc::channel(GRPC_ACCEPT_QUEUE);
                runtime.spawn(accept_grpc_tls(
                    grpc_listener,
                    acceptor,
                    Arc::clone(&shared),
                    streams,
                    stopped.clone(),
                ));
                let incoming = tokio_stream::wrappers::ReceiverStream::new(incoming);
                runtime.spawn(serve_grpc(service, incoming, stopped.clone()));
            }
        }
        runtime.spawn(serve_http(
            http_listener,
            http_tls,
            Arc::clone(&shared),
            stopped,
        ));

        Ok(Receiver {
            shared,
            grpc_addr,
            http_addr,
            tls,
            shutdown,
            runtime: Some(runtime),
        })
    }

    /// The address of the gRPC server.
    pub fn grpc_addr(&self) -> SocketAddr {
        self.grpc_addr
    }

    /// The address of the HTTP server.
    pub fn http_addr(&self) -> SocketAddr {
        self.http_addr
    }

    /// The gRPC endpoint, `http://127.0.0.1:<port>` (`https://` with TLS).
    pub fn grpc_endpoint(&self) -> String {
        format!("{}://{}", self.scheme(), self.grpc_addr)
    }

    /// The OTLP/HTTP base endpoint, `http://127.0.0.1:<port>` (`https://`
    /// with TLS; without `/v1/traces`).
    pub fn http_endpoint(&self) -> String {
        format!("{}://{}", self.scheme(), self.http_addr)
    }

    fn scheme(&self) -> &'static str {
        if self.tls { "https" } else { "http" }
    }

    /// A snapshot of the counters.
    pub fn counts(&self) -> Counts {
        self.shared.counters.snapshot()
    }

    /// Sets every counter to 0 (requests in flight may still count after).
    pub fn reset_counts(&self) {
        self.shared.counters.reset();
    }

    /// Waits until at least `n` spans have been counted, or `timeout` has
    /// passed; returns whether they were.
    pub fn wait_for_spans(&self, n: u64, timeout: Duration) -> bool {
        self.wait_for_items(Signal::Traces, n, timeout)
    }

    /// Waits until at least `n` log records have been counted, or
    /// `timeout` has passed; returns whether they were.
    pub fn wait_for_log_records(&self, n: u64, timeout: Duration) -> bool {
        self.wait_for_items(Signal::Logs, n, timeout)
    }

    /// Waits until at least `n` metrics have been counted, or `timeout`
    /// has passed; returns whether they were.
    pub fn wait_for_metrics(&self, n: u64, timeout: Duration) -> bool {
        self.wait_for_items(Signal::Metrics, n, timeout)
    }

    /// Waits until at least `n` items of `signal` ([`Counts::items`]) have
    /// been counted, or `timeout` has passed; returns whether they were.
    pub fn wait_for_items(&self, signal: Signal, n: u64, timeout: Duration) -> bool {
        let counters = &self.shared.counters;
        let counter = match signal {
            Signal::Traces => &counters.spans,
            Signal::Logs => &counters.log_records,
            Signal::Metrics => &counters.metrics,
        };
        let deadline = Instant::now() + timeout;
        loop {
            if counter.load(Relaxed) >= n {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(WAIT_POLL_INTERVAL_MS));
        }
    }

    /// Sets how the following requests are answered: the base fault,
    /// which applies whenever no fault scripted by
    /// [`push_faults`](Self::push_faults) is left ([`Fault::None`] at
    /// first). The script is left as it is.
    pub fn set_fault(&self, fault: Fault) {
        *self
            .shared
            .fault
            .write()
            .unwrap_or_else(PoisonError::into_inner) = fault;
    }

    /// Scripts the answer to the next `requests` well-formed requests (of
    /// any signal, through either server): each is answered with `fault`.
    /// Pushes queue up in order, after what is left of the script; once
    /// the script is used up, the base fault ([`set_fault`](Self::set_fault))
    /// applies again. Malformed requests are refused as always and use up
    /// nothing.
    pub fn push_faults(&self, requests: u64, fault: Fault) {
        if requests > 0 {
            self.shared.lock_script().push_back((requests, fault));
        }
    }

    /// Empties the script of [`push_faults`](Self::push_faults): the base
    /// fault applies from the next request on.
    pub fn clear_faults(&self) {
        self.shared.lock_script().clear();
    }

    /// The trace requests accepted since the last call, decoded, in arrival
    /// order; always empty unless `keep_requests` is set.
    pub fn take_requests(&self) -> Vec<ExportTraceServiceRequest> {
        std::mem::take(&mut self.shared.lock_kept().requests)
    }

    /// The log requests accepted since the last call, decoded, in arrival
    /// order; always empty unless `keep_requests` is set.
    pub fn take_log_requests(&self) -> Vec<ExportLogsServiceRequest> {
        std::mem::take(&mut self.shared.lock_kept().logs)
    }

    /// The metric requests accepted since the last call, decoded, in
    /// arrival order; always empty unless `keep_requests` is set.
    pub fn take_metric_requests(&self) -> Vec<ExportMetricsServiceRequest> {
        std::mem::take(&mut self.shared.lock_kept().metrics)
    }

    /// The metadata of the requests received since the last call, in
    /// arrival order; always empty unless `keep_requests` is set.
    pub fn take_request_meta(&self) -> Vec<RequestMeta> {
        std::mem::take(&mut self.shared.lock_kept().meta)
    }

    /// Stops the servers and the runtime (what dropping the receiver does).
    ///
    /// Every open connection is shut down before this returns (clients see
    /// it close at once), and so are both listeners, so that a new receiver
    /// can bind the same ports right away. Called from inside another tokio
    /// runtime, it cannot wait for its own runtime: the listeners then
    /// close a moment later.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        // An error means no server is listening any more: nothing to stop.
        let _ = self.shutdown.send(true);
        // From this thread, now: the runtime's own threads may take a while
        // to drop the connections, or (shut down in the background) not be
        // waited for at all.
        self.shared.connections.kill_all();
        // Dropping the runtime's tasks drops the listeners with them.
        if let Some(runtime) = self.runtime.take() {
            if tokio::runtime::Handle::try_current().is_ok() {
                // Blocking inside another runtime would panic.
                runtime.shutdown_background();
            } else {
                runtime.shutdown_timeout(Duration::from_millis(SHUTDOWN_TIMEOUT_MS));
            }
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Two distinct ports on 127.0.0.1 that were free a moment ago, for tests
/// that start a receiver later on known ports (its
/// [`ReceiverConfig::grpc_port`] and [`ReceiverConfig::http_port`]). Both
/// are bound at once, so they differ; nothing stops another process from
/// taking one before the receiver does.
///
/// # Errors
///
/// If no port on 127.0.0.1 can be bound.
pub fn unused_ports() -> io::Result<(u16, u16)> {
    let first = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    let second = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    Ok((first.local_addr()?.port(), second.local_addr()?.port()))
}

/// Serves gRPC on the connections of `incoming` until `stopped` says stop.
async fn serve_grpc<I, IO, IE>(
    service: GrpcService,
    incoming: I,
    mut stopped: watch::Receiver<bool>,
) where
    I: tokio_stream::Stream<Item = Result<IO, IE>>,
    IO: tokio::io::AsyncRead
        + tokio::io::AsyncWrite
        + tonic::transport::server::Connected
        + Unpin
        + Send
        + 'static,
    IO::ConnectInfo: Clone + Send + Sync + 'static,
    IE: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let signal = async move {
        // An error means the sender is gone: stop as well.
        let _ = stopped.wait_for(|stop| *stop).await;
    };
    // An error here is an accept loop failure, with nobody to report it
    // to; the receiver then stops answering, which tests notice.
    // Adaptive (BDP-estimated) flow-control windows, as grpc-go servers
    // (the Collector) use by default: a fixed 64 KiB window would stall
    // every large request on WINDOW_UPDATEs.
    let _ = tonic::transport::Server::builder()
        .http2_adaptive_window(Some(true))
        .serve_with_incoming_shutdown(service, incoming, signal)
        .await;
}

/// Accepts TCP connections until `stopped` says stop and hands each to
/// `streams` (see [`accept`]).
async fn accept_grpc(
    listener: TcpListener,
    shared: Arc<Shared>,
    streams: mpsc::Sender<io::Result<KillableStream>>,
    mut stopped: watch::Receiver<bool>,
) {
    while let Some(stream) = accept(&listener, &shared.connections, &mut stopped).await {
        if streams.send(Ok(stream)).await.is_err() {
            return; // The server has stopped.
        }
    }
}

/// Accepts TCP connections until `stopped` says stop (see [`accept`]),
/// and hands each to `streams` once its TLS handshake has succeeded (on a
/// task of its own; see the module documentation).
async fn accept_grpc_tls(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    shared: Arc<Shared>,
    streams: mpsc::Sender<io::Result<TlsStream>>,
    mut stopped: watch::Receiver<bool>,
) {
    while let Some(stream) = accept(&listener, &shared.connections, &mut stopped).await {
        let acceptor = acceptor.clone();
        let streams = streams.clone();
        tokio::spawn(async move {
            if let Some(stream) = handshake(&acceptor, stream).await {
                // An error means the server has stopped.
                let _ = streams.send(Ok(stream)).await;
            }
        });
    }
}

/// The next accepted connection, with `TCP_NODELAY` set and tracked by
/// `connections`; `None` once `stopped` says stop.
async fn accept(
    listener: &TcpListener,
    connections: &Connections,
    stopped: &mut watch::Receiver<bool>,
) -> Option<KillableStream> {
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stopped.wait_for(|stop| *stop) => return None,
        };
        let tracked = accepted.and_then(|(stream, _)| {
            // Without it every response waits ~40 ms for a delayed ACK.
            let _ = stream.set_nodelay(true);
            connections.track(stream)
        });
        match tracked {
            Ok(stream) => return Some(stream),
            Err(_) => {
                // Out of file descriptors (to accept, or to duplicate the
                // socket for its kill switch), or a connection reset before
                // accept: back off a little and go on.
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

/// A TLS connection as the servers accept it.
type TlsStream = KillableStream<tokio_rustls::server::TlsStream<TcpStream>>;

/// The server side of a TLS handshake; `None` if it failed or took longer
/// than [`TLS_HANDSHAKE_TIMEOUT_MS`] (the connection is then dropped: an
/// unknown CA, a missing client certificate, a client that is not TLS).
/// The connection keeps its kill switch, which works throughout.
async fn handshake(acceptor: &TlsAcceptor, stream: KillableStream) -> Option<TlsStream> {
    let KillableStream { stream, switch } = stream;
    let timeout = Duration::from_millis(TLS_HANDSHAKE_TIMEOUT_MS);
    let stream = tokio::time::timeout(timeout, acceptor.accept(stream))
        .await
        .ok()?
        .ok()?;
    Some(KillableStream { stream, switch })
}

/// Binds 127.0.0.1:`port`, non-blocking as tokio requires.
fn bind_std(port: u16) -> io::Result<std::net::TcpListener> {
    let listener = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, port))?;
    listener.set_nonblocking(true)?;
    Ok(listener)
}

// ---------------------------------------------------------------------------
// Connections
// ---------------------------------------------------------------------------

/// The receiver's open connections (both servers'), so that
/// [`Receiver::shutdown`] can end them all at once.
#[derive(Debug, Default)]
struct Connections {
    /// The switch of every connection accepted; a connection's entry dies
    /// with its stream, and dead ones are pruned as new ones arrive.
    open: Mutex<Vec<Weak<Switch>>>,
}

impl Connections {
    /// Wraps an accepted stream so that it can be killed, and tracks it.
    ///
    /// # Errors
    ///
    /// If the socket cannot be duplicated (out of file descriptors).
    fn track(&self, stream: TcpStream) -> io::Result<KillableStream> {
        let stream = stream.into_std()?;
        let switch = KillSwitch(Arc::new(Switch {
            killed: AtomicBool::new(false),
            socket: stream.try_clone()?,
        }));
        let stream = TcpStream::from_std(stream)?;
        let mut open = self.lock();
        open.retain(|switch| switch.strong_count() > 0);
        open.push(Arc::downgrade(&switch.0));
        Ok(KillableStream { stream, switch })
    }

    /// Kills every open connection.
    fn kill_all(&self) {
        for switch in self.lock().iter().filter_map(Weak::upgrade) {
            KillSwitch(switch).kill();
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Weak<Switch>>> {
        // A panic while holding the lock leaves the vector valid.
        self.open.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// What kills one connection from outside its stream: the request
/// handlers find their connection's switch (hyper's in the service built
/// for the connection, tonic's in the request extensions, as the
/// [`Connected`](tonic::transport::server::Connected) information of a
/// [`KillableStream`]).
#[derive(Clone, Debug)]
struct KillSwitch(Arc<Switch>);

#[derive(Debug)]
struct Switch {
    /// Set once killed; never cleared.
    killed: AtomicBool,
    /// A second handle on the connection's socket (`try_clone`), to shut
    /// it down while the server's task owns the stream.
    socket: std::net::TcpStream,
}

impl KillSwitch {
    /// Kills the connection: shuts its socket down both ways, so that the
    /// peer sees it close at once and the task serving it wakes up, and
    /// fails every later read or write of its stream, so that the task
    /// drops the connection (with the request handlers it runs).
    fn kill(&self) {
        // Relaxed: the flag publishes nothing else, and a poll that misses
        // it meets the shut-down socket (end of file, broken pipe), which
        // ends the connection all the same.
        self.0.killed.store(true, Relaxed);
        // An error means the socket is closed already.
        let _ = self.0.socket.shutdown(Shutdown::Both);
    }

    /// `Err(ConnectionReset)` once killed.
    fn check(&self) -> io::Result<()> {
        // Relaxed: see `kill`.
        if self.0.killed.load(Relaxed) {
            return Err(io::Error::new(
                io::ErrorKind::ConnectionReset,
                "connection killed by the receiver",
            ));
        }
        Ok(())
    }
}

/// An accepted connection, a TCP stream or the TLS stream over it, that
/// its [`KillSwitch`] can end: once killed, every read and write fails with
/// `ConnectionReset` (the switch shuts the TCP socket itself down).
#[derive(Debug)]
struct KillableStream<S = TcpStream> {
    stream: S,
    switch: KillSwitch,
}

impl<S: AsyncRead + Unpin> AsyncRead for KillableStream<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.switch.check()?;
        Pin::new(&mut this.stream).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for KillableStream<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.switch.check()?;
        Pin::new(&mut this.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.switch.check()?;
        Pin::new(&mut this.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.switch.check()?;
        Pin::new(&mut this.stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.switch.check()?;
        Pin::new(&mut this.stream).poll_shutdown(cx)
    }
}

/// What tonic puts in the extensions of every request of the connection,
/// TLS or not.
impl<S> tonic::transport::server::Connected for KillableStream<S> {
    type ConnectInfo = KillSwitch;

    fn connect_info(&self) -> KillSwitch {
        self.switch.clone()
    }
}

/// The counters behind [`Counts`]. Every access is `Relaxed`: they are
/// independent statistics, and the one ordering that matters (a kept
/// request is visible once its items are) comes from the `kept` mutex,
/// taken before `spans` or `log_records` is incremented.
#[derive(Debug, Default)]
struct Counters {
    requests: AtomicU64,
    spans: AtomicU64,
    bytes_wire: AtomicU64,
    bytes_decoded: AtomicU64,
    requests_malformed: AtomicU64,
    requests_faulted: AtomicU64,
    spans_rejected: AtomicU64,
    metrics_requests: AtomicU64,
    logs_requests: AtomicU64,
    connections_dropped: AtomicU64,
    log_records: AtomicU64,
    log_records_rejected: AtomicU64,
    metrics: AtomicU64,
    metrics_rejected: AtomicU64,
}

impl Counters {
    fn all(&self) -> [&AtomicU64; 14] {
        [
            &self.requests,
            &self.spans,
            &self.bytes_wire,
            &self.bytes_decoded,
            &self.requests_malformed,
            &self.requests_faulted,
            &self.spans_rejected,
            &self.metrics_requests,
            &self.logs_requests,
            &self.connections_dropped,
            &self.log_records,
            &self.log_records_rejected,
            &self.metrics,
            &self.metrics_rejected,
        ]
    }

    fn snapshot(&self) -> Counts {
        let [
            requests,
            spans,
            bytes_wire,
            bytes_decoded,
            requests_malformed,
            requests_faulted,
            spans_rejected,
            metrics_requests,
            logs_requests,
            connections_dropped,
            log_records,
            log_records_rejected,
            metrics,
            metrics_rejected,
        ] = self.all().map(|counter| counter.load(Relaxed));
        Counts {
            requests,
            spans,
            bytes_wire,
            bytes_decoded,
            requests_malformed,
            requests_faulted,
            spans_rejected,
            metrics_requests,
            logs_requests,
            connections_dropped,
            log_records,
            log_records_rejected,
            metrics,
            metrics_rejected,
        }
    }

    fn reset(&self) {
        for counter in self.all() {
            counter.store(0, Relaxed);
        }
    }

    fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Relaxed);
    }
}

/// What keep mode stores.
#[derive(Debug, Default)]
struct Kept {
    requests: Vec<ExportTraceServiceRequest>,
    logs: Vec<ExportLogsServiceRequest>,
    metrics: Vec<ExportMetricsServiceRequest>,
    meta: Vec<RequestMeta>,
}

/// A request decoded in keep mode, to be kept once accepted.
enum Decoded {
    Traces(ExportTraceServiceRequest),
    Logs(ExportLogsServiceRequest),
    Metrics(ExportMetricsServiceRequest),
}

/// The metadata of a request as it arrives, before its body is read; only
/// built in keep mode.
struct PendingMeta {
    transport: Transport,
    compression: Compression,
    user_agent: Option<String>,
    headers: Vec<(String, String)>,
}

impl PendingMeta {
    fn new(transport: Transport, compression: Compression, headers: &http::HeaderMap) -> Self {
        let text =
            |value: &http::HeaderValue| String::from_utf8_lossy(value.as_bytes()).into_owned();
        Self {
            transport,
            compression,
            user_agent: headers.get(http::header::USER_AGENT).map(text),
            headers: headers
                .iter()
                .map(|(name, value)| (name.as_str().to_owned(), text(value)))
                .collect(),
        }
    }
}

/// Why a request was refused.
enum Refusal {
    /// It could not be decoded.
    Malformed(String),
    /// A [`Fault::Status`] or [`Fault::Refuse`] refused it.
    Fault {
        grpc_code: i32,
        http_status: u16,
        message: String,
        retry_after: Option<RetryHint>,
    },
}

/// How a well-formed request is answered, as its fault says.
enum Reply {
    /// Accept it after `delay`, with this response message.
    Accept { delay: Duration, response: Bytes },
    /// Refuse it (a [`Refusal::Fault`]).
    Refuse(Refusal),
    /// Kill its connection without answering.
    DropConnection,
}

/// The state both servers share.
#[derive(Debug)]
struct Shared {
    counters: Counters,
    keep: bool,
    kept: Mutex<Kept>,
    /// The base fault, for requests the script leaves to it.
    fault: RwLock<Fault>,
    /// Scripted faults, in order: how many requests each still answers
    /// (never 0) and how.
    script: Mutex<VecDeque<(u64, Fault)>>,
    connections: Connections,
}

impl Shared {
    fn new(keep: bool) -> Self {
        Self {
            counters: Counters::default(),
            keep,
            kept: Mutex::default(),
            fault: RwLock::default(),
            script: Mutex::default(),
            connections: Connections::default(),
        }
    }

    fn lock_kept(&self) -> std::sync::MutexGuard<'_, Kept> {
        // A panic while holding the lock leaves the vectors valid.
        self.kept.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn lock_script(&self) -> std::sync::MutexGuard<'_, VecDeque<(u64, Fault)>> {
        // A panic while holding the lock leaves the queue valid.
        self.script.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Counts a request that reached `signal`'s export path.
    fn count_request(&self, signal: Signal) {
        let counter = match signal {
            Signal::Traces => &self.counters.requests,
            Signal::Metrics => &self.counters.metrics_requests,
            Signal::Logs => &self.counters.logs_requests,
        };
        Counters::add(counter, 1);
    }

    /// Counts a malformed request and says why.
    fn malformed(&self, why: impl Into<String>) -> Refusal {
        Counters::add(&self.counters.requests_malformed, 1);
        Refusal::Malformed(why.into())
    }

    /// Handles the decompressed message of a request already counted by
    /// [`count_request`](Self::count_request), which came on `connection`:
    /// counts it, applies its fault, keeps it in keep mode, and returns the
    /// encoded response message. Never returns once it has killed the
    /// connection.
    async fn export(
        &self,
        signal: Signal,
        message: &Bytes,
        meta: Option<PendingMeta>,
        connection: &KillSwitch,
    ) -> Result<Bytes, Refusal> {
        let counters = &self.counters;
        let len = message.len() as u64;
        Counters::add(&counters.bytes_decoded, len);

        // Malformed requests take no fault (and use up none of the script).
        let outcome = self
            .parse(signal, message)
            .map(|(items, decoded)| (items, decoded, self.reply(signal)));

        if let Some(meta) = meta {
            let (items, accepted) = match &outcome {
                Ok((items, _, reply)) => (*items, matches!(reply, Reply::Accept { .. })),
                Err(_) => (0, false),
            };
            let of = |wanted| if signal == wanted { items } else { 0 };
            self.lock_kept().meta.push(RequestMeta {
                signal,
                transport: meta.transport,
                compression: meta.compression,
                user_agent: meta.user_agent,
                headers: meta.headers,
                bytes_decoded: len,
                spans: of(Signal::Traces),
                accepted,
                log_records: of(Signal::Logs),
                metrics: of(Signal::Metrics),
            });
        }
        let (items, decoded, reply) = outcome?;
        let (delay, response) = match reply {
            Reply::Accept { delay, response } => (delay, response),
            Reply::Refuse(refusal) => return Err(refusal),
            Reply::DropConnection => {
                Counters::add(&counters.connections_dropped, 1);
                connection.kill();
                // The connection's task drops this future with the
                // connection.
                return std::future::pending().await;
            }
        };
        match decoded {
            Some(Decoded::Traces(request)) => self.lock_kept().requests.push(request),
            Some(Decoded::Logs(request)) => self.lock_kept().logs.push(request),
            Some(Decoded::Metrics(request)) => self.lock_kept().metrics.push(request),
            None => {}
        }
        // Last, after the request is kept: see `Counters`.
        let counter = match signal {
            Signal::Traces => &counters.spans,
            Signal::Logs => &counters.log_records,
            Signal::Metrics => &counters.metrics,
        };
        Counters::add(counter, items);
        // Accepted and counted before a slow answer: a client that gives
        // up waiting has delivered the items all the same.
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        Ok(response)
    }

    /// The fault for the next well-formed request: the script's next, or
    /// else the base fault.
    fn next_fault(&self) -> Fault {
        let mut script = self.lock_script();
        let Some((left, fault)) = script.front_mut() else {
            drop(script);
            return self
                .fault
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .clone();
        };
        let fault = fault.clone();
        *left -= 1;
        if *left == 0 {
            script.pop_front();
        }
        fault
    }

    /// How the next fault answers a well-formed request of `signal`.
    /// Counts faulted requests, and the spans (log records) a partial
    /// success rejects.
    fn reply(&self, signal: Signal) -> Reply {
        let counters = &self.counters;
        let fault = self.next_fault();
        if fault != Fault::None {
            Counters::add(&counters.requests_faulted, 1);
        }
        let accept = |response| Reply::Accept {
            delay: Duration::ZERO,
            response,
        };
        match fault {
            Fault::None => accept(Bytes::new()),
            Fault::Status {
                grpc_code,
                http_status,
                message,
            } => Reply::Refuse(Refusal::Fault {
                grpc_code,
                http_status,
                message,
                retry_after: None,
            }),
            Fault::Refuse {
                grpc_code,
                http_status,
                message,
                retry_after,
            } => Reply::Refuse(Refusal::Fault {
                grpc_code,
                http_status,
                message,
                retry_after,
            }),
            Fault::PartialSuccess { rejected, message } => {
                // Negative counts make no sense: they count as 0.
                let rejected_items = rejected.max(0).unsigned_abs();
                let counter = match signal {
                    Signal::Traces => &counters.spans_rejected,
                    Signal::Logs => &counters.log_records_rejected,
                    Signal::Metrics => &counters.metrics_rejected,
                };
                Counters::add(counter, rejected_items);
                // The partial-success messages of the three signals share
                // their field numbers and types: one encoding answers all.
                let response = ExportTraceServiceResponse {
                    partial_success: Some(ExportTracePartialSuccess {
                        rejected_spans: rejected,
                        error_message: message,
                    }),
                };
                accept(Bytes::from(response.encode_to_vec()))
            }
            Fault::Slow { delay } => Reply::Accept {
                delay,
                response: Bytes::new(),
            },
            Fault::DropConnection => Reply::DropConnection,
        }
    }

    /// Counts the items of a request (its spans, log records or metrics)
    /// and, in keep mode, decodes it.
    fn parse(&self, signal: Signal, message: &Bytes) -> Result<(u64, Option<Decoded>), Refusal> {
        let malformed = |e: &dyn std::fmt::Display| self.malformed(e.to_string());
        // The three shapes share the path the walker follows.
        let items = crate::wire::count_items(message).map_err(|e| malformed(&e))?;
        if !self.keep {
            return Ok((items, None));
        }
        let decoded = match signal {
            Signal::Traces => ExportTraceServiceRequest::decode(message.clone())
                .map(Decoded::Traces)
                .map_err(|e| malformed(&e))?,
            Signal::Logs => ExportLogsServiceRequest::decode(message.clone())
                .map(Decoded::Logs)
                .map_err(|e| malformed(&e))?,
            Signal::Metrics => ExportMetricsServiceRequest::decode(message.clone())
                .map(Decoded::Metrics)
                .map_err(|e| malformed(&e))?,
        };
        Ok((items, Some(decoded)))
    }
}

// ---------------------------------------------------------------------------
// Error details: the google.rpc messages, written by hand (no protoc)
// ---------------------------------------------------------------------------

/// `google.rpc.Status`: the body of OTLP/HTTP error responses, and the
/// details of a gRPC status.
#[derive(Clone, PartialEq, prost::Message)]
struct RpcStatus {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(string, tag = "2")]
    message: String,
    #[prost(message, repeated, tag = "3")]
    details: Vec<ProtoAny>,
}

/// `google.protobuf.Any`.
#[derive(Clone, PartialEq, prost::Message)]
struct ProtoAny {
    #[prost(string, tag = "1")]
    type_url: String,
    #[prost(bytes = "vec", tag = "2")]
    value: Vec<u8>,
}

/// `google.rpc.RetryInfo`.
#[derive(Clone, PartialEq, prost::Message)]
struct RetryInfo {
    #[prost(message, optional, tag = "1")]
    retry_delay: Option<ProtoDuration>,
}

impl RetryInfo {
    /// A hint to retry after `delay`, packed for a status's details.
    fn packed(delay: Duration) -> ProtoAny {
        let info = RetryInfo {
            retry_delay: Some(ProtoDuration::from(delay)),
        };
        ProtoAny {
            type_url: RETRY_INFO_TYPE_URL.to_owned(),
            value: info.encode_to_vec(),
        }
    }
}

/// `google.protobuf.Duration`.
#[derive(Clone, Copy, PartialEq, Eq, prost::Message)]
struct ProtoDuration {
    #[prost(int64, tag = "1")]
    seconds: i64,
    #[prost(int32, tag = "2")]
    nanos: i32,
}

impl From<Duration> for ProtoDuration {
    fn from(duration: Duration) -> Self {
        Self {
            // Saturates some 292 billion years out.
            seconds: i64::try_from(duration.as_secs()).unwrap_or(i64::MAX),
            // Below 10^9: it fits.
            nanos: duration.subsec_nanos() as i32,
        }
    }
}

// ---------------------------------------------------------------------------
// gRPC
// ---------------------------------------------------------------------------

/// A tonic codec that passes messages through as bytes: the request is
/// counted from its wire format, and responses are encoded by hand.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct RawCodec;

impl Codec for RawCodec {
    type Encode = Bytes;
    type Decode = Bytes;
    type Encoder = RawCodec;
    type Decoder = RawCodec;

    fn encoder(&mut self) -> Self::Encoder {
        RawCodec
    }

    fn decoder(&mut self) -> Self::Decoder {
        RawCodec
    }
}

impl Encoder for RawCodec {
    type Item = Bytes;
    type Error = tonic::Status;

    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), Self::Error> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for RawCodec {
    type Item = Bytes;
    type Error = tonic::Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, Self::Error> {
        // Splits tonic's buffer: no copy.
        Ok(Some(src.copy_to_bytes(src.remaining())))
    }
}

/// The gRPC service: routes the three `Export` paths, the way tonic's
/// generated servers do, to a unary handler over [`RawCodec`].
#[derive(Clone, Debug)]
struct GrpcService {
    shared: Arc<Shared>,
}

type GrpcResponse = http::Response<tonic::body::Body>;

impl tonic::codegen::Service<http::Request<tonic::body::Body>> for GrpcService {
    type Response = GrpcResponse;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<GrpcResponse, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<tonic::body::Body>) -> Self::Future {
        let Some(signal) = Signal::from_grpc_path(request.uri().path()) else {
            let status =
                tonic::Status::unimplemented(format!("unknown method {}", request.uri().path()));
            return Box::pin(ready(Ok(status.into_http())));
        };
        let Some(connection) = request.extensions().get::<KillSwitch>().cloned() else {
            // Never: every stream served is a `KillableStream`, whose
            // switch tonic puts in the extensions of its requests.
            let status = tonic::Status::internal("the connection has no kill switch");
            return Box::pin(ready(Ok(status.into_http())));
        };
        let shared = Arc::clone(&self.shared);
        shared.count_request(signal);
        let meta = shared.keep.then(|| {
            let compression = Compression::from_header(request.headers().get("grpc-encoding"))
                .unwrap_or(Compression::None);
            PendingMeta::new(Transport::Grpc, compression, request.headers())
        });
        let wire_counter = Arc::clone(&shared);
        let request = request.map(move |body| {
            body.map_frame(move |frame| {
                if let Some(data) = frame.data_ref() {
                    Counters::add(&wire_counter.counters.bytes_wire, data.len() as u64);
                }
                frame
            })
        });
        Box::pin(async move {
            let reached = AtomicBool::new(false);
            let call = ExportCall {
                shared: &shared,
                signal,
                meta,
                connection: &connection,
                reached: &reached,
            };
            let mut grpc = tonic::server::Grpc::new(RawCodec)
                .accept_compressed(CompressionEncoding::Gzip)
                .accept_compressed(CompressionEncoding::Zstd)
                .max_decoding_message_size(MAX_MESSAGE_BYTES);
            let response = grpc.unary(call, request).await;
            // tonic refused the request before decoding it (unsupported
            // encoding, a body that does not decompress, too large): an
            // error status in the headers, and no call.
            if !reached.load(Relaxed)
                && response
                    .headers()
                    .get("grpc-status")
                    .is_some_and(|code| code != "0")
            {
                Counters::add(&shared.counters.requests_malformed, 1);
            }
            Ok(response)
        })
    }
}

/// One unary `Export` call, borrowing the receiver's state for its duration.
struct ExportCall<'a> {
    shared: &'a Shared,
    signal: Signal,
    meta: Option<PendingMeta>,
    /// The switch of the connection the call came on.
    connection: &'a KillSwitch,
    /// Set when tonic has decoded the request and called us.
    reached: &'a AtomicBool,
}

/// What an [`ExportCall`] returns: it may wait (a slow answer) or never
/// end (a killed connection).
type ExportFuture<'a> =
    Pin<Box<dyn Future<Output = Result<tonic::Response<Bytes>, tonic::Status>> + Send + 'a>>;

impl<'a> tonic::server::UnaryService<Bytes> for ExportCall<'a> {
    type Response = Bytes;
    type Future = ExportFuture<'a>;

    fn call(&mut self, request: tonic::Request<Bytes>) -> ExportFuture<'a> {
        self.reached.store(true, Relaxed);
        let (shared, signal, connection) = (self.shared, self.signal, self.connection);
        let meta = self.meta.take();
        Box::pin(async move {
            let message = request.into_inner();
            match shared.export(signal, &message, meta, connection).await {
                Ok(response) => Ok(tonic::Response::new(response)),
                Err(refusal) => Err(grpc_status(refusal)),
            }
        })
    }
}

/// The gRPC status that answers `refusal`. A retry hint goes in its
/// details, which tonic sends as `grpc-status-details-bin` (a
/// `google.rpc.Status` in base64 without padding).
fn grpc_status(refusal: Refusal) -> tonic::Status {
    let (grpc_code, message, retry_after) = match refusal {
        Refusal::Malformed(why) => return tonic::Status::invalid_argument(why),
        Refusal::Fault {
            grpc_code,
            message,
            retry_after,
            ..
        } => (grpc_code, message, retry_after),
    };
    let code = tonic::Code::from(grpc_code);
    let Some(hint) = retry_after else {
        return tonic::Status::new(code, message);
    };
    let details = RpcStatus {
        code: grpc_code,
        message: message.clone(),
        details: vec![RetryInfo::packed(hint.delay)],
    };
    tonic::Status::with_details(code, message, Bytes::from(details.encode_to_vec()))
}

// ---------------------------------------------------------------------------
// HTTP
// ---------------------------------------------------------------------------

type HttpResponse = http::Response<Full<Bytes>>;

const PROTOBUF: &str = "application/x-protobuf";

/// Accepts connections until `stopped` says stop, serving each with hyper
/// (HTTP/1.1 or HTTP/2, whichever the client speaks), after a TLS
/// handshake when `tls` is set.
async fn serve_http(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    shared: Arc<Shared>,
    mut stopped: watch::Receiver<bool>,
) {
    let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    while let Some(stream) = accept(&listener, &shared.connections, &mut stopped).await {
        let builder = builder.clone();
        let shared = Arc::clone(&shared);
        let tls = tls.clone();
        let connection = stream.switch.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                let shared = Arc::clone(&shared);
                let connection = connection.clone();
                async move { Ok::<_, Infallible>(handle_http(&shared, &connection, request).await) }
            });
            // Errors are the client's (reset, bad HTTP): the connection ends.
            match tls {
                None => {
                    let _ = builder
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                }
                Some(acceptor) => {
                    if let Some(stream) = handshake(&acceptor, stream).await {
                        let _ = builder
                            .serve_connection(TokioIo::new(stream), service)
                            .await;
                    }
                }
            }
        });
    }
}

/// Answers one OTLP/HTTP request, which came on `connection`.
async fn handle_http(
    shared: &Shared,
    connection: &KillSwitch,
    request: http::Request<Incoming>,
) -> HttpResponse {
    let Some(signal) = Signal::from_http_path(request.uri().path()) else {
        let message = format!("unknown path {}", request.uri().path());
        return error_response(http::StatusCode::NOT_FOUND, GRPC_NOT_FOUND, message);
    };
    if request.method() != http::Method::POST {
        let mut response = error_response(
            http::StatusCode::METHOD_NOT_ALLOWED,
            GRPC_UNIMPLEMENTED,
            format!("method {} not allowed, only POST", request.method()),
        );
        response
            .headers_mut()
            .insert(http::header::ALLOW, http::HeaderValue::from_static("POST"));
        return response;
    }
    shared.count_request(signal);
    match read_http(shared, connection, signal, request).await {
        Ok(response) => http::Response::builder()
            .header(http::header::CONTENT_TYPE, PROTOBUF)
            .body(Full::new(response))
            .unwrap_or_default(),
        Err((status, Refusal::Malformed(message))) => {
            error_response(status, GRPC_INVALID_ARGUMENT, message)
        }
        Err((
            _,
            Refusal::Fault {
                grpc_code,
                http_status,
                message,
                retry_after,
            },
        )) => {
            let status = http::StatusCode::from_u16(http_status)
                .unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
            let mut response = error_response(status, grpc_code, message);
            if let Some(hint) = retry_after {
                // Digits or an IMF-fixdate: always a valid header value.
                if let Ok(value) = http::HeaderValue::try_from(retry_after_header(&hint)) {
                    response
                        .headers_mut()
                        .insert(http::header::RETRY_AFTER, value);
                }
            }
            response
        }
    }
}

/// The `Retry-After` value of `hint`: its delay in seconds, or the
/// IMF-fixdate that far from now, either rounded up to a whole second
/// (so that a client never retries early).
fn retry_after_header(hint: &RetryHint) -> String {
    if !hint.http_date {
        return whole_seconds_up(hint.delay).to_string();
    }
    // A clock before 1970 counts as 1970.
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = whole_seconds_up(now.saturating_add(hint.delay)).min(LAST_HTTP_DATE_SECS);
    httpdate::fmt_http_date(SystemTime::UNIX_EPOCH + Duration::from_secs(secs))
}

/// `duration` in seconds, rounded up.
fn whole_seconds_up(duration: Duration) -> u64 {
    let fraction = u64::from(duration.subsec_nanos() > 0);
    duration.as_secs().saturating_add(fraction)
}

/// Checks the headers, reads and decompresses the body and exports it.
async fn read_http(
    shared: &Shared,
    connection: &KillSwitch,
    signal: Signal,
    request: http::Request<Incoming>,
) -> Result<Bytes, (http::StatusCode, Refusal)> {
    let bad = |status, why: String| (status, shared.malformed(why));
    let headers = request.headers();
    let content_type = headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("");
    let media_type = content_type.split(';').next().unwrap_or("").trim();
    if !media_type.eq_ignore_ascii_case(PROTOBUF) {
        return Err(bad(
            http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("unsupported content type {content_type:?}, only {PROTOBUF}"),
        ));
    }
    let encoding = headers.get(http::header::CONTENT_ENCODING);
    let Some(compression) = Compression::from_header(encoding) else {
        let encoding = encoding.map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
        return Err(bad(
            http::StatusCode::BAD_REQUEST,
            format!("unsupported content encoding {encoding:?}, only gzip and zstd"),
        ));
    };
    let meta = shared
        .keep
        .then(|| PendingMeta::new(Transport::Http, compression, headers));

    let body = match Limited::new(request.into_body(), MAX_MESSAGE_BYTES)
        .collect()
        .await
    {
        Ok(body) => body.to_bytes(),
        Err(e) => {
            return Err(bad(
                http::StatusCode::BAD_REQUEST,
                format!("cannot read the body: {e}"),
            ));
        }
    };
    Counters::add(&shared.counters.bytes_wire, body.len() as u64);
    let message = decompress(compression, body).map_err(|e| {
        bad(
            http::StatusCode::BAD_REQUEST,
            format!("cannot decompress the body: {e}"),
        )
    })?;
    shared
        .export(signal, &message, meta, connection)
        .await
        .map_err(|refusal| (http::StatusCode::BAD_REQUEST, refusal))
}

/// Decompresses a body, refusing one that would exceed
/// [`MAX_MESSAGE_BYTES`].
fn decompress(compression: Compression, body: Bytes) -> io::Result<Bytes> {
    let mut out = Vec::new();
    let limit = MAX_MESSAGE_BYTES as u64 + 1;
    match compression {
        Compression::None => return Ok(body),
        Compression::Gzip => {
            flate2::read::MultiGzDecoder::new(&body[..])
                .take(limit)
                .read_to_end(&mut out)?;
        }
        Compression::Zstd => {
            zstd::stream::read::Decoder::with_buffer(&body[..])?
                .take(limit)
                .read_to_end(&mut out)?;
        }
    }
    if out.len() > MAX_MESSAGE_BYTES {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("more than {MAX_MESSAGE_BYTES} bytes decompressed"),
        ));
    }
    Ok(Bytes::from(out))
}

/// An error response with a `google.rpc.Status` body (without details).
fn error_response(status: http::StatusCode, code: i32, message: String) -> HttpResponse {
    let body = RpcStatus {
        code,
        message,
        details: Vec::new(),
    }
    .encode_to_vec();
    http::Response::builder()
        .status(status)
        .header(http::header::CONTENT_TYPE, PROTOBUF)
        .body(Full::new(Bytes::from(body)))
        .unwrap_or_default()
}

// ---------------------------------------------------------------------------
// The `sink` subcommand
// ---------------------------------------------------------------------------

/// Runs a standalone receiver until Ctrl-C: prints its endpoints, then every
/// second the counts and the span rate since the previous line.
///
/// `keep` decodes every trace and log request with prost (a full validity
/// check, at about 1.5 CPU-seconds per million spans) and discards it every
/// second. `dump` decodes them too and writes every span to that file as
/// one JSON line ([`span_json`]), flushed after each request (log records
/// are decoded and discarded: the dump holds spans only); a port of 0 binds
/// any free port (the first line names the ones bound).
///
/// # Errors
///
/// If the receiver cannot start (a port in use), the dump file cannot be
/// created or written, Ctrl-C cannot be handled, or stdout cannot be
/// written.
pub fn sink_main(
    grpc_port: u16,
    http_port: u16,
    keep: bool,
    dump: Option<&std::path::Path>,
) -> io::Result<()> {
    let dump_file = dump
        .map(|path| std::fs::File::create(path).map(io::BufWriter::new))
        .transpose()?;
    let receiver = Receiver::start(ReceiverConfig {
        grpc_port,
        http_port,
        keep_requests: keep || dump_file.is_some(),
        ..ReceiverConfig::default()
    })?;
    let mut out = io::stdout().lock();
    writeln!(
        out,
        "otlpx-bench sink: gRPC {}  HTTP {}",
        receiver.grpc_endpoint(),
        receiver.http_endpoint()
    )?;
    out.flush()?;

    let Some(runtime) = receiver.runtime.as_ref() else {
        return Ok(());
    };
    let stop_dumping = AtomicBool::new(false);
    std::thread::scope(|scope| {
        let dumper =
            dump_file.map(|file| scope.spawn(|| dump_requests(&receiver, file, &stop_dumping)));
        let counting = runtime.block_on(async {
            let ctrl_c = tokio::signal::ctrl_c();
            tokio::pin!(ctrl_c);
            let start = Instant::now();
            let mut ticks = tokio::time::interval(Duration::from_secs(1));
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            ticks.tick().await;
            let counts = receiver.counts();
            let mut last = (Instant::now(), counts.spans, counts.log_records);
            loop {
                tokio::select! {
                    signal = &mut ctrl_c => {
                        signal?;
                        break;
                    }
                    _ = ticks.tick() => {}
                }
                if keep && dump.is_none() {
                    drop(receiver.take_requests());
                    drop(receiver.take_log_requests());
                    drop(receiver.take_request_meta());
                }
                let now = Instant::now();
                let counts = receiver.counts();
                let seconds = now.duration_since(last.0).as_secs_f64().max(1e-9);
                let rate = counts.spans.saturating_sub(last.1) as f64 / seconds;
                let log_rate = counts.log_records.saturating_sub(last.2) as f64 / seconds;
                last = (now, counts.spans, counts.log_records);
                writeln!(
                    out,
                    "{:>5.0}s {} ({rate:.0} spans/s, {log_rate:.0} log records/s)",
                    now.duration_since(start).as_secs_f64(),
                    format_counts(&counts)
                )?;
                out.flush()?;
            }
            Ok::<_, io::Error>(())
        });
        stop_dumping.store(true, Relaxed);
        let dumped = dumper.map_or(Ok(()), |d| {
            d.join()
                .unwrap_or_else(|_| Err(io::Error::other("the dump thread panicked")))
        });
        counting.and(dumped)
    })?;
    writeln!(
        out,
        "otlpx-bench sink: stopped, {}",
        format_counts(&receiver.counts())
    )?;
    out.flush()
}

/// How often the dump thread takes the kept requests.
const DUMP_POLL_INTERVAL_MS: u64 = 2;

/// The dump thread of [`sink_main`]: writes the kept requests' spans to
/// `file` until `stop` is set (then once more, so nothing received is
/// left out), flushing after each request.
fn dump_requests(receiver: &Receiver, mut file: impl Write, stop: &AtomicBool) -> io::Result<()> {
    loop {
        let last = stop.load(Relaxed);
        drop(receiver.take_request_meta());
        // The dump is the spans' (see `sink_main`).
        drop(receiver.take_log_requests());
        for request in receiver.take_requests() {
            write_request_json(&mut file, &request)?;
            file.flush()?;
        }
        if last {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(DUMP_POLL_INTERVAL_MS));
    }
}

/// Writes every span of `request` as one JSON line ([`span_json`]).
fn write_request_json(out: &mut impl Write, request: &ExportTraceServiceRequest) -> io::Result<()> {
    for resource_spans in &request.resource_spans {
        let resource = resource_spans
            .resource
            .as_ref()
            .map_or(&[][..], |r| &r.attributes[..]);
        for scope_spans in &resource_spans.scope_spans {
            for span in &scope_spans.spans {
                let line = span_json(span, scope_spans.scope.as_ref(), resource);
                serde_json::to_writer(&mut *out, &line)?;
                out.write_all(b"\n")?;
            }
        }
    }
    Ok(())
}

/// One received span as JSON, for tests in other languages to compare
/// with what they sent: ids as lowercase hex (`parent_span_id` empty for a
/// root), `kind` and `status.code` as OTLP numbers them, times in
/// nanoseconds, attributes as `{key: value}` (see [`any_value_json`]),
/// with its scope and its resource's attributes.
pub fn span_json(
    span: &opentelemetry_proto::tonic::trace::v1::Span,
    scope: Option<&opentelemetry_proto::tonic::common::v1::InstrumentationScope>,
    resource: &[opentelemetry_proto::tonic::common::v1::KeyValue],
) -> serde_json::Value {
    use serde_json::json;
    let status = span.status.as_ref();
    json!({
        "trace_id": hex(&span.trace_id),
        "span_id": hex(&span.span_id),
        "parent_span_id": hex(&span.parent_span_id),
        "trace_state": span.trace_state,
        "flags": span.flags,
        "name": span.name,
        "kind": span.kind,
        "start_time_unix_nano": span.start_time_unix_nano,
        "end_time_unix_nano": span.end_time_unix_nano,
        "status": {
            "code": status.map_or(0, |s| s.code),
            "message": status.map_or("", |s| s.message.as_str()),
        },
        "attributes": attributes_json(&span.attributes),
        "dropped_attributes_count": span.dropped_attributes_count,
        "events": span.events.iter().map(|e| json!({
            "name": e.name,
            "time_unix_nano": e.time_unix_nano,
            "attributes": attributes_json(&e.attributes),
            "dropped_attributes_count": e.dropped_attributes_count,
        })).collect::<Vec<_>>(),
        "dropped_events_count": span.dropped_events_count,
        "links": span.links.iter().map(|l| json!({
            "trace_id": hex(&l.trace_id),
            "span_id": hex(&l.span_id),
            "trace_state": l.trace_state,
            "flags": l.flags,
            "attributes": attributes_json(&l.attributes),
            "dropped_attributes_count": l.dropped_attributes_count,
        })).collect::<Vec<_>>(),
        "dropped_links_count": span.dropped_links_count,
        "scope": {
            "name": scope.map_or("", |s| s.name.as_str()),
            "version": scope.map_or("", |s| s.version.as_str()),
        },
        "resource": attributes_json(resource),
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn attributes_json(kvs: &[opentelemetry_proto::tonic::common::v1::KeyValue]) -> serde_json::Value {
    serde_json::Value::Object(
        kvs.iter()
            .map(|kv| (kv.key.clone(), any_value_json(kv.value.as_ref())))
            .collect(),
    )
}

/// A value as JSON: strings, booleans, integers and doubles as
/// themselves (a double always with a fraction or exponent, so it reads
/// back as a float; NaN and infinities as `null`), arrays as arrays,
/// key-value lists as objects, bytes as `{"bytes": "<hex>"}`, an empty
/// value as `null`.
fn any_value_json(
    value: Option<&opentelemetry_proto::tonic::common::v1::AnyValue>,
) -> serde_json::Value {
    use opentelemetry_proto::tonic::common::v1::any_value::Value as V;
    use serde_json::Value as J;
    match value.and_then(|v| v.value.as_ref()) {
        None => J::Null,
        Some(V::StringValue(s)) => J::from(s.as_str()),
        Some(V::BoolValue(b)) => J::from(*b),
        Some(V::IntValue(i)) => J::from(*i),
        Some(V::DoubleValue(d)) => serde_json::Number::from_f64(*d).map_or(J::Null, J::Number),
        Some(V::ArrayValue(a)) => {
            J::Array(a.values.iter().map(|v| any_value_json(Some(v))).collect())
        }
        Some(V::KvlistValue(l)) => attributes_json(&l.values),
        Some(V::BytesValue(b)) => serde_json::json!({ "bytes": hex(b) }),
        Some(V::StringValueStrindex(i)) => serde_json::json!({ "strindex": i }),
    }
}

/// One line of counts for the sink.
fn format_counts(counts: &Counts) -> String {
    const MB: f64 = 1e6;
    format!(
        "requests={} spans={} wire={:.1}MB decoded={:.1}MB malformed={} faulted={} metrics_requests={} metrics={} logs={} log_records={}",
        counts.requests,
        counts.spans,
        counts.bytes_wire as f64 / MB,
        counts.bytes_decoded as f64 / MB,
        counts.requests_malformed,
        counts.requests_faulted,
        counts.metrics_requests,
        counts.metrics,
        counts.logs_requests,
        counts.log_records,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
    use std::net::TcpStream;

    const WAIT: Duration = Duration::from_secs(10);

    fn receiver(keep_requests: bool) -> Receiver {
        Receiver::start(ReceiverConfig {
            keep_requests,
            ..ReceiverConfig::default()
        })
        .expect("the receiver starts")
    }

    /// A request of `groups.len()` resource groups of one scope group each,
    /// with that many spans, named `<group>/<span>`.
    fn request(groups: &[usize]) -> ExportTraceServiceRequest {
        ExportTraceServiceRequest {
            resource_spans: groups
                .iter()
                .enumerate()
                .map(|(g, &n)| ResourceSpans {
                    scope_spans: vec![ScopeSpans {
                        spans: (0..n)
                            .map(|i| Span {
                                trace_id: vec![1; 16],
                                span_id: vec![2; 8],
                                name: format!("{g}/{i}"),
                                ..Span::default()
                            })
                            .collect(),
                        ..ScopeSpans::default()
                    }],
                    ..ResourceSpans::default()
                })
                .collect(),
        }
    }

    /// A log request of `groups.len()` resource groups of one scope group
    /// each, with that many records, bodies `<group>/<record>`, inside
    /// trace 1…1 and span 2…2.
    fn logs_request(groups: &[usize]) -> ExportLogsServiceRequest {
        use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value::Value};
        use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
        let text = |s: String| {
            Some(AnyValue {
                value: Some(Value::StringValue(s)),
            })
        };
        ExportLogsServiceRequest {
            resource_logs: groups
                .iter()
                .enumerate()
                .map(|(g, &n)| ResourceLogs {
                    scope_logs: vec![ScopeLogs {
                        log_records: (0..n)
                            .map(|i| LogRecord {
                                time_unix_nano: 1_700_000_000_000_000_000,
                                severity_number: 9,
                                severity_text: "INFO".to_owned(),
                                body: text(format!("{g}/{i}")),
                                attributes: vec![KeyValue {
                                    key: "i".to_owned(),
                                    value: text(i.to_string()),
                                    ..KeyValue::default()
                                }],
                                trace_id: vec![1; 16],
                                span_id: vec![2; 8],
                                ..LogRecord::default()
                            })
                            .collect(),
                        ..ScopeLogs::default()
                    }],
                    ..ResourceLogs::default()
                })
                .collect(),
        }
    }

    /// A metric request of `groups.len()` resource groups of one scope
    /// group each, with that many metrics (gauges named `<group>/<metric>`
    /// of two data points each).
    fn metrics_request(groups: &[usize]) -> ExportMetricsServiceRequest {
        use opentelemetry_proto::tonic::metrics::v1::{
            Gauge, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, metric::Data,
            number_data_point::Value,
        };
        let point = |v: f64| NumberDataPoint {
            time_unix_nano: 1_700_000_000_000_000_000,
            value: Some(Value::AsDouble(v)),
            ..NumberDataPoint::default()
        };
        ExportMetricsServiceRequest {
            resource_metrics: groups
                .iter()
                .enumerate()
                .map(|(g, &n)| ResourceMetrics {
                    scope_metrics: vec![ScopeMetrics {
                        metrics: (0..n)
                            .map(|i| Metric {
                                name: format!("{g}/{i}"),
                                unit: "1".to_owned(),
                                data: Some(Data::Gauge(Gauge {
                                    data_points: vec![point(1.0), point(i as f64)],
                                })),
                                ..Metric::default()
                            })
                            .collect(),
                        ..ScopeMetrics::default()
                    }],
                    ..ResourceMetrics::default()
                })
                .collect(),
        }
    }

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        encoder.write_all(bytes).expect("gzip into a Vec");
        encoder.finish().expect("gzip into a Vec")
    }

    /// An HTTP/1.1 response: status, headers (names in lower case), body.
    struct HttpReply {
        status: u16,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    }

    impl HttpReply {
        fn header(&self, name: &str) -> Option<&str> {
            self.headers
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.as_str())
        }

        fn rpc_status(&self) -> RpcStatus {
            RpcStatus::decode(&self.body[..]).expect("a google.rpc.Status body")
        }
    }

    /// Sends one HTTP/1.1 request by hand and reads the reply to the end.
    fn http(
        addr: SocketAddr,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> HttpReply {
        let reply = http_bytes(addr, method, path, headers, body).expect("read");
        let split = reply
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("a complete head");
        let head = String::from_utf8(reply[..split].to_vec()).expect("an ASCII head");
        let mut lines = head.split("\r\n");
        let status = lines
            .next()
            .and_then(|line| line.split(' ').nth(1))
            .and_then(|code| code.parse().ok())
            .expect("a status line");
        let headers = lines
            .filter_map(|line| line.split_once(':'))
            .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
            .collect();
        HttpReply {
            status,
            headers,
            body: reply[split + 4..].to_vec(),
        }
    }

    /// Sends one HTTP/1.1 request by hand; the reply's bytes, read to the
    /// end, or the error that ended the reading.
    fn http_bytes(
        addr: SocketAddr,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> io::Result<Vec<u8>> {
        let mut stream = TcpStream::connect(addr).expect("connect");
        stream.set_read_timeout(Some(WAIT)).expect("timeout");
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\nConnection: close\r\n",
            body.len()
        );
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str("\r\n");
        stream.write_all(head.as_bytes()).expect("write");
        stream.write_all(body).expect("write");
        let mut reply = Vec::new();
        stream.read_to_end(&mut reply)?;
        Ok(reply)
    }

    fn post_traces(receiver: &Receiver, encoding: Option<&str>, body: &[u8]) -> HttpReply {
        let mut headers = vec![
            ("Content-Type", PROTOBUF),
            ("User-Agent", "receiver-test/1"),
        ];
        if let Some(encoding) = encoding {
            headers.push(("Content-Encoding", encoding));
        }
        http(receiver.http_addr(), "POST", "/v1/traces", &headers, body)
    }

    #[test]
    fn sink_dump_writes_every_span_as_one_json_line_per_request() {
        use opentelemetry_proto::tonic::common::v1::{
            AnyValue, ArrayValue, InstrumentationScope, KeyValue, KeyValueList, any_value::Value,
        };
        use opentelemetry_proto::tonic::resource::v1::Resource;
        use opentelemetry_proto::tonic::trace::v1::{Status, span};
        let kv = |key: &str, value: Value| KeyValue {
            key: key.to_owned(),
            value: Some(AnyValue { value: Some(value) }),
            ..KeyValue::default()
        };
        let full = Span {
            trace_id: (1..=16).collect(),
            span_id: vec![0xab; 8],
            parent_span_id: vec![0, 1, 2, 3, 4, 5, 6, 7],
            trace_state: "k=v".into(),
            flags: 0x301,
            name: "full".into(),
            kind: 3,
            start_time_unix_nano: 1_700_000_000_000_000_001,
            end_time_unix_nano: 1_700_000_000_000_000_002,
            attributes: vec![
                kv("s", Value::StringValue("x".into())),
                kv("b", Value::BoolValue(true)),
                kv("i", Value::IntValue(i64::MIN)),
                kv("d", Value::DoubleValue(2.0)),
                kv("y", Value::BytesValue(vec![0, 255])),
                kv(
                    "a",
                    Value::ArrayValue(ArrayValue {
                        values: vec![AnyValue {
                            value: Some(Value::IntValue(7)),
                        }],
                    }),
                ),
                kv(
                    "m",
                    Value::KvlistValue(KeyValueList {
                        values: vec![kv("n", Value::DoubleValue(0.5))],
                    }),
                ),
            ],
            dropped_attributes_count: 1,
            events: vec![span::Event {
                time_unix_nano: 5,
                name: "ev".into(),
                attributes: vec![kv("e", Value::IntValue(1))],
                dropped_attributes_count: 2,
            }],
            dropped_events_count: 3,
            links: vec![span::Link {
                trace_id: vec![9; 16],
                span_id: vec![8; 8],
                trace_state: "l=1".into(),
                attributes: vec![kv("l", Value::StringValue("k".into()))],
                dropped_attributes_count: 4,
                flags: 1,
            }],
            dropped_links_count: 5,
            status: Some(Status {
                message: "bad".into(),
                code: 2,
            }),
        };
        let mut sent = request(&[1]);
        let group = &mut sent.resource_spans[0];
        group.resource = Some(Resource {
            attributes: vec![kv("service.name", Value::StringValue("svc".into()))],
            ..Resource::default()
        });
        group.scope_spans[0].scope = Some(InstrumentationScope {
            name: "lib".into(),
            version: "1.2".into(),
            ..InstrumentationScope::default()
        });
        group.scope_spans[0].spans.push(full);

        let receiver = receiver(true);
        assert_eq!(
            post_traces(&receiver, None, &sent.encode_to_vec()).status,
            200
        );
        let mut file = Vec::new();
        let stop = AtomicBool::new(true);
        dump_requests(&receiver, &mut file, &stop).unwrap();
        let lines: Vec<serde_json::Value> = std::str::from_utf8(&file)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2, "one line a span");
        assert_eq!(lines[0]["name"], "0/0");
        assert_eq!(lines[0]["parent_span_id"], "", "a root");
        let want = serde_json::json!({
            "trace_id": "0102030405060708090a0b0c0d0e0f10",
            "span_id": "abababababababab",
            "parent_span_id": "0001020304050607",
            "trace_state": "k=v",
            "flags": 0x301,
            "name": "full",
            "kind": 3,
            "start_time_unix_nano": 1_700_000_000_000_000_001_u64,
            "end_time_unix_nano": 1_700_000_000_000_000_002_u64,
            "status": {"code": 2, "message": "bad"},
            "attributes": {
                "s": "x", "b": true, "i": i64::MIN, "d": 2.0,
                "y": {"bytes": "00ff"}, "a": [7], "m": {"n": 0.5},
            },
            "dropped_attributes_count": 1,
            "events": [{
                "name": "ev", "time_unix_nano": 5,
                "attributes": {"e": 1}, "dropped_attributes_count": 2,
            }],
            "dropped_events_count": 3,
            "links": [{
                "trace_id": "09090909090909090909090909090909",
                "span_id": "0808080808080808",
                "trace_state": "l=1", "flags": 1,
                "attributes": {"l": "k"}, "dropped_attributes_count": 4,
            }],
            "dropped_links_count": 5,
            "scope": {"name": "lib", "version": "1.2"},
            "resource": {"service.name": "svc"},
        });
        assert_eq!(lines[1], want);
        assert!(
            String::from_utf8(file).unwrap().contains("\"d\":2.0"),
            "a double reads back as a float"
        );
        assert!(receiver.take_requests().is_empty(), "taken by the dump");
    }

    #[test]
    fn receiver_endpoints_name_the_bound_ports() {
        let receiver = receiver(false);
        assert_ne!(receiver.grpc_addr().port(), 0);
        assert_ne!(receiver.http_addr().port(), receiver.grpc_addr().port());
        assert_eq!(
            receiver.http_endpoint(),
            format!("http://127.0.0.1:{}", receiver.http_addr().port())
        );
        assert_eq!(
            receiver.grpc_endpoint(),
            format!("http://127.0.0.1:{}", receiver.grpc_addr().port())
        );
        let addr = receiver.http_addr();
        receiver.shutdown();
        assert!(TcpStream::connect(addr).is_err(), "the port is closed");
    }

    #[test]
    fn receiver_http_counts_plain_gzip_and_zstd_bodies() {
        let receiver = receiver(true);
        let plain = request(&[2, 3]).encode_to_vec();
        let gzipped = gzip(&request(&[4]).encode_to_vec());
        let zstded = zstd::bulk::compress(&request(&[1, 1, 1]).encode_to_vec(), 3).expect("zstd");

        for (encoding, body) in [
            (None, &plain),
            (Some("gzip"), &gzipped),
            (Some("zstd"), &zstded),
        ] {
            let reply = post_traces(&receiver, encoding, body);
            assert_eq!(reply.status, 200, "{encoding:?}");
            assert_eq!(reply.header("content-type"), Some(PROTOBUF));
            let response =
                ExportTraceServiceResponse::decode(&reply.body[..]).expect("a response body");
            assert_eq!(response, ExportTraceServiceResponse::default());
        }

        let counts = receiver.counts();
        assert_eq!(counts.requests, 3);
        assert_eq!(counts.spans, 5 + 4 + 3);
        assert_eq!(
            counts.bytes_wire,
            (plain.len() + gzipped.len() + zstded.len()) as u64
        );
        assert_eq!(
            counts.bytes_decoded,
            (plain.len() + request(&[4]).encoded_len() + request(&[1, 1, 1]).encoded_len()) as u64
        );
        assert_eq!(counts.requests_malformed, 0);

        let kept = receiver.take_requests();
        assert_eq!(
            kept,
            vec![request(&[2, 3]), request(&[4]), request(&[1, 1, 1])]
        );
        let meta = receiver.take_request_meta();
        let compressions: Vec<_> = meta.iter().map(|m| m.compression).collect();
        assert_eq!(
            compressions,
            [Compression::None, Compression::Gzip, Compression::Zstd]
        );
        assert!(meta.iter().all(|m| m.transport == Transport::Http
            && m.signal == Signal::Traces
            && m.accepted
            && m.user_agent.as_deref() == Some("receiver-test/1")));
        assert!(
            meta[1]
                .headers
                .contains(&("content-encoding".to_owned(), "gzip".to_owned()))
        );
        assert_eq!(meta[0].spans, 5);
        assert!(receiver.take_requests().is_empty(), "drained");

        receiver.reset_counts();
        assert_eq!(receiver.counts(), Counts::default());
    }

    #[test]
    fn receiver_http_counts_other_signals_and_keeps_nothing_by_default() {
        let receiver = receiver(false);
        let headers = [("Content-Type", PROTOBUF)];
        for path in ["/v1/metrics", "/v1/logs", "/v1/logs"] {
            let reply = http(receiver.http_addr(), "POST", path, &headers, b"\x0a\x00");
            assert_eq!(reply.status, 200, "{path}");
        }
        assert_eq!(post_traces(&receiver, None, &[]).status, 200);
        let counts = receiver.counts();
        assert_eq!(
            (
                counts.metrics_requests,
                counts.logs_requests,
                counts.requests
            ),
            (1, 2, 1)
        );
        assert_eq!(counts.bytes_decoded, 6);
        assert!(receiver.take_requests().is_empty());
        assert!(receiver.take_request_meta().is_empty());
    }

    #[test]
    fn receiver_http_counts_and_keeps_log_records() {
        use opentelemetry_proto::tonic::collector::logs::v1::{
            ExportLogsPartialSuccess, ExportLogsServiceResponse,
        };
        let receiver = receiver(true);
        let plain = logs_request(&[2, 3]).encode_to_vec();
        let gzipped = gzip(&logs_request(&[4]).encode_to_vec());
        let headers = |encoding| {
            let mut headers = vec![("Content-Type", PROTOBUF)];
            if let Some(encoding) = encoding {
                headers.push(("Content-Encoding", encoding));
            }
            headers
        };
        let post = |encoding, body: &[u8]| {
            http(
                receiver.http_addr(),
                "POST",
                "/v1/logs",
                &headers(encoding),
                body,
            )
        };
        for (encoding, body) in [(None, &plain), (Some("gzip"), &gzipped)] {
            let reply = post(encoding, body);
            assert_eq!(reply.status, 200, "{encoding:?}");
            let response =
                ExportLogsServiceResponse::decode(&reply.body[..]).expect("a response body");
            assert_eq!(response, ExportLogsServiceResponse::default());
        }
        assert!(receiver.wait_for_log_records(9, WAIT));
        let counts = receiver.counts();
        assert_eq!((counts.logs_requests, counts.log_records), (2, 5 + 4));
        assert_eq!((counts.requests, counts.spans), (0, 0), "no traces");
        assert_eq!(counts.items(Signal::Logs), 9);
        assert_eq!(counts.bytes_wire, (plain.len() + gzipped.len()) as u64);

        assert_eq!(
            receiver.take_log_requests(),
            vec![logs_request(&[2, 3]), logs_request(&[4])]
        );
        assert!(receiver.take_log_requests().is_empty(), "drained");
        assert!(receiver.take_requests().is_empty(), "no trace requests");
        let meta = receiver.take_request_meta();
        let records: Vec<_> = meta.iter().map(|m| (m.log_records, m.spans)).collect();
        assert_eq!(records, [(5, 0), (4, 0)]);
        assert!(meta.iter().all(|m| m.signal == Signal::Logs && m.accepted));
        assert_eq!(meta[1].compression, Compression::Gzip);

        // A partial success counts the rejected records as the logs'.
        receiver.set_fault(Fault::PartialSuccess {
            rejected: 3,
            message: "too old".to_owned(),
        });
        let reply = post(None, &plain);
        assert_eq!(reply.status, 200);
        let response = ExportLogsServiceResponse::decode(&reply.body[..]).expect("a response");
        assert_eq!(
            response.partial_success,
            Some(ExportLogsPartialSuccess {
                rejected_log_records: 3,
                error_message: "too old".to_owned()
            })
        );
        let counts = receiver.counts();
        assert_eq!(
            (counts.log_records, counts.log_records_rejected),
            (9 + 5, 3)
        );
        assert_eq!(counts.spans_rejected, 0, "not a trace request");
        assert_eq!(counts.items_rejected(Signal::Logs), 3);
        assert_eq!(receiver.take_log_requests(), vec![logs_request(&[2, 3])]);

        // A refused or malformed request is neither counted nor kept.
        receiver.set_fault(Fault::Status {
            grpc_code: 14,
            http_status: 503,
            message: "try later".to_owned(),
        });
        assert_eq!(post(None, &plain).status, 503);
        receiver.set_fault(Fault::None);
        assert_eq!(post(None, &plain[..plain.len() - 1]).status, 400);
        let counts = receiver.counts();
        assert_eq!(counts.log_records, 14);
        assert_eq!(counts.requests_malformed, 1);
        assert!(receiver.take_log_requests().is_empty());
    }

    #[test]
    fn receiver_http_refuses_bad_requests() {
        let receiver = receiver(false);
        let addr = receiver.http_addr();
        let body = request(&[1]).encode_to_vec();
        let protobuf = [("Content-Type", PROTOBUF)];

        let reply = http(addr, "POST", "/v1/nothing", &protobuf, &body);
        assert_eq!(reply.status, 404);
        assert_eq!(reply.rpc_status().code, GRPC_NOT_FOUND);

        let reply = http(addr, "GET", "/v1/traces", &[], &[]);
        assert_eq!(reply.status, 405);
        assert_eq!(reply.header("allow"), Some("POST"));

        let reply = http(
            addr,
            "POST",
            "/v1/traces",
            &[("Content-Type", "application/json")],
            b"{}",
        );
        assert_eq!(reply.status, 415);

        let reply = post_traces(&receiver, Some("br"), &body);
        assert_eq!(reply.status, 400);
        assert!(
            reply.rpc_status().message.contains("br"),
            "names the encoding"
        );

        let reply = post_traces(&receiver, Some("gzip"), &body);
        assert_eq!(reply.status, 400, "not gzip");

        let reply = post_traces(&receiver, None, &body[..body.len() - 1]);
        assert_eq!(reply.status, 400, "truncated protobuf");
        assert_eq!(reply.rpc_status().code, GRPC_INVALID_ARGUMENT);

        let counts = receiver.counts();
        // 404 and 405 never reached an export path.
        assert_eq!(counts.requests, 4);
        assert_eq!(counts.requests_malformed, 4);
        assert_eq!(counts.spans, 0);
    }

    #[test]
    fn receiver_http_applies_faults() {
        let receiver = receiver(true);
        let body = request(&[3]).encode_to_vec();

        receiver.set_fault(Fault::Status {
            grpc_code: 14,
            http_status: 503,
            message: "try later".to_owned(),
        });
        let reply = post_traces(&receiver, None, &body);
        assert_eq!(reply.status, 503);
        assert_eq!(
            reply.rpc_status(),
            RpcStatus {
                code: 14,
                message: "try later".to_owned(),
                details: vec![],
            }
        );
        let counts = receiver.counts();
        assert_eq!(
            (counts.requests, counts.requests_faulted, counts.spans),
            (1, 1, 0)
        );
        assert!(receiver.take_requests().is_empty(), "refused, not kept");
        assert!(!receiver.take_request_meta()[0].accepted);

        receiver.set_fault(Fault::PartialSuccess {
            rejected: 2,
            message: "too old".to_owned(),
        });
        let reply = post_traces(&receiver, None, &body);
        assert_eq!(reply.status, 200);
        let response = ExportTraceServiceResponse::decode(&reply.body[..]).expect("a response");
        assert_eq!(
            response.partial_success,
            Some(ExportTracePartialSuccess {
                rejected_spans: 2,
                error_message: "too old".to_owned()
            })
        );
        let counts = receiver.counts();
        assert_eq!(
            (
                counts.requests,
                counts.requests_faulted,
                counts.spans,
                counts.spans_rejected
            ),
            (2, 2, 3, 2)
        );
        assert_eq!(receiver.take_requests(), vec![request(&[3])]);

        receiver.set_fault(Fault::None);
        assert_eq!(post_traces(&receiver, None, &body).status, 200);
        assert_eq!(receiver.counts().requests_faulted, 2);
        assert!(receiver.wait_for_spans(6, WAIT));
        assert!(!receiver.wait_for_spans(7, Duration::from_millis(20)));
    }

    #[test]
    fn receiver_http2_cleartext_is_served() {
        // Prior-knowledge h2c: the preface, then our SETTINGS; the server
        // answers with its own SETTINGS frame (type 4).
        let receiver = receiver(false);
        let mut stream = TcpStream::connect(receiver.http_addr()).expect("connect");
        stream.set_read_timeout(Some(WAIT)).expect("timeout");
        stream
            .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")
            .expect("write");
        let mut frame_header = [0u8; 9];
        stream.read_exact(&mut frame_header).expect("a frame");
        assert_eq!(frame_header[3], 4, "a SETTINGS frame");
    }

    /// Runs `f` with a tonic client connected to the receiver, on a runtime
    /// of the test's own.
    fn with_grpc_client<T>(
        receiver: &Receiver,
        f: impl AsyncFnOnce(tonic::client::Grpc<tonic::transport::Channel>) -> T,
    ) -> T {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        runtime.block_on(async {
            let channel = tonic::transport::Endpoint::from_shared(receiver.grpc_endpoint())
                .expect("a valid endpoint")
                .connect()
                .await
                .expect("connect");
            f(tonic::client::Grpc::new(channel)).await
        })
    }

    async fn grpc_export(
        client: &mut tonic::client::Grpc<tonic::transport::Channel>,
        path: &'static str,
        message: Vec<u8>,
    ) -> Result<Bytes, tonic::Status> {
        client.ready().await.expect("ready");
        let mut request = tonic::Request::new(Bytes::from(message));
        request
            .metadata_mut()
            .insert("x-test", tonic::metadata::MetadataValue::from_static("yes"));
        let path = http::uri::PathAndQuery::from_static(path);
        client
            .unary(request, path, RawCodec)
            .await
            .map(tonic::Response::into_inner)
    }

    #[test]
    fn receiver_grpc_counts_plain_and_compressed_requests() {
        let receiver = receiver(true);
        let traces = Signal::Traces.grpc_path();
        let message = request(&[2, 3]).encode_to_vec();
        let len = message.len() as u64;
        with_grpc_client(&receiver, async |client| {
            let mut plain = client.clone();
            assert_eq!(
                grpc_export(&mut plain, traces, message.clone()).await.ok(),
                Some(Bytes::new())
            );
            for encoding in [CompressionEncoding::Gzip, CompressionEncoding::Zstd] {
                let mut compressed = client.clone().send_compressed(encoding);
                let answer = grpc_export(&mut compressed, traces, message.clone()).await;
                assert_eq!(answer.ok(), Some(Bytes::new()));
            }
            let mut other = client.clone();
            for signal in [Signal::Metrics, Signal::Logs] {
                let answer = grpc_export(&mut other, signal.grpc_path(), vec![]).await;
                assert_eq!(answer.ok(), Some(Bytes::new()));
            }
            let unknown = "/opentelemetry.proto.collector.trace.v1.TraceService/Nothing";
            let status = grpc_export(&mut other, unknown, vec![]).await.unwrap_err();
            assert_eq!(status.code(), tonic::Code::Unimplemented);
            let status = grpc_export(&mut other, traces, vec![0x0a, 0x05])
                .await
                .unwrap_err();
            assert_eq!(status.code(), tonic::Code::InvalidArgument);
        });

        let counts = receiver.counts();
        assert_eq!(counts.requests, 4);
        assert_eq!((counts.metrics_requests, counts.logs_requests), (1, 1));
        assert_eq!(counts.spans, 3 * 5);
        assert_eq!(counts.requests_malformed, 1);
        assert_eq!(counts.bytes_decoded, 3 * len + 2);
        // The plain request's wire bytes are its message and 5 bytes of
        // framing; compression makes the other two differ.
        assert!(counts.bytes_wire >= len + 5);

        assert_eq!(receiver.take_requests(), vec![request(&[2, 3]); 3]);
        let meta = receiver.take_request_meta();
        let compressions: Vec<_> = meta.iter().take(3).map(|m| m.compression).collect();
        assert_eq!(
            compressions,
            [Compression::None, Compression::Gzip, Compression::Zstd]
        );
        assert!(meta.iter().all(|m| m.transport == Transport::Grpc));
        assert!(
            meta[0]
                .user_agent
                .as_deref()
                .is_some_and(|ua| ua.starts_with("tonic/"))
        );
        assert!(
            meta[0]
                .headers
                .contains(&("x-test".to_owned(), "yes".to_owned()))
        );
        assert_eq!(meta.len(), 6, "3 traces, metrics, logs, the malformed one");
        assert!(!meta[5].accepted);
    }

    #[test]
    fn receiver_grpc_counts_and_keeps_log_records() {
        use opentelemetry_proto::tonic::collector::logs::v1::{
            ExportLogsPartialSuccess, ExportLogsServiceResponse,
        };
        let receiver = receiver(true);
        let logs = Signal::Logs.grpc_path();
        let message = logs_request(&[2, 3]).encode_to_vec();
        with_grpc_client(&receiver, async |client| {
            let mut plain = client.clone();
            let answer = grpc_export(&mut plain, logs, message.clone()).await;
            assert_eq!(answer.ok(), Some(Bytes::new()));
            let mut gzipped = client.clone().send_compressed(CompressionEncoding::Gzip);
            let answer = grpc_export(&mut gzipped, logs, logs_request(&[4]).encode_to_vec()).await;
            assert_eq!(answer.ok(), Some(Bytes::new()));

            receiver.set_fault(Fault::PartialSuccess {
                rejected: 2,
                message: "too big".to_owned(),
            });
            let answer = grpc_export(&mut plain, logs, message.clone())
                .await
                .expect("a partial success");
            let response = ExportLogsServiceResponse::decode(answer).expect("a response");
            assert_eq!(
                response.partial_success,
                Some(ExportLogsPartialSuccess {
                    rejected_log_records: 2,
                    error_message: "too big".to_owned()
                })
            );
            receiver.set_fault(Fault::None);

            let status = grpc_export(&mut plain, logs, vec![0x0a, 0x05])
                .await
                .unwrap_err();
            assert_eq!(status.code(), tonic::Code::InvalidArgument);
        });

        assert!(receiver.wait_for_log_records(5 + 4 + 5, WAIT));
        let counts = receiver.counts();
        assert_eq!(counts.logs_requests, 4);
        assert_eq!(counts.log_records, 5 + 4 + 5);
        assert_eq!(counts.log_records_rejected, 2);
        assert_eq!(
            (counts.requests, counts.spans, counts.spans_rejected),
            (0, 0, 0)
        );
        assert_eq!(counts.requests_malformed, 1);
        assert_eq!(
            receiver.take_log_requests(),
            vec![
                logs_request(&[2, 3]),
                logs_request(&[4]),
                logs_request(&[2, 3])
            ]
        );
        assert!(receiver.take_requests().is_empty());
        let meta = receiver.take_request_meta();
        let seen: Vec<_> = meta
            .iter()
            .map(|m| (m.transport, m.compression, m.log_records, m.accepted))
            .collect();
        assert_eq!(
            seen,
            [
                (Transport::Grpc, Compression::None, 5, true),
                (Transport::Grpc, Compression::Gzip, 4, true),
                (Transport::Grpc, Compression::None, 5, true),
                (Transport::Grpc, Compression::None, 0, false),
            ]
        );
    }

    #[test]
    fn receiver_counts_and_keeps_metrics_over_both_servers() {
        use opentelemetry_proto::tonic::collector::metrics::v1::{
            ExportMetricsPartialSuccess, ExportMetricsServiceResponse,
        };
        let receiver = receiver(true);
        let plain = metrics_request(&[2, 3]).encode_to_vec();
        let gzipped = gzip(&metrics_request(&[4]).encode_to_vec());
        let post = |encoding: Option<&'static str>, body: &[u8]| {
            let mut headers = vec![("Content-Type", PROTOBUF)];
            headers.extend(encoding.map(|e| ("Content-Encoding", e)));
            http(receiver.http_addr(), "POST", "/v1/metrics", &headers, body)
        };
        for (encoding, body) in [(None, &plain), (Some("gzip"), &gzipped)] {
            let reply = post(encoding, body);
            assert_eq!(reply.status, 200, "{encoding:?}");
            let response =
                ExportMetricsServiceResponse::decode(&reply.body[..]).expect("a response body");
            assert_eq!(response, ExportMetricsServiceResponse::default());
        }
        let metrics = Signal::Metrics.grpc_path();
        with_grpc_client(&receiver, async |mut client| {
            let answer = grpc_export(&mut client, metrics, plain.clone()).await;
            assert_eq!(answer.ok(), Some(Bytes::new()));
            // A partial success counts the rejected data points as the
            // metrics'.
            receiver.set_fault(Fault::PartialSuccess {
                rejected: 3,
                message: "too many series".to_owned(),
            });
            let answer = grpc_export(&mut client, metrics, plain.clone())
                .await
                .expect("a partial success");
            let response = ExportMetricsServiceResponse::decode(answer).expect("a response");
            assert_eq!(
                response.partial_success,
                Some(ExportMetricsPartialSuccess {
                    rejected_data_points: 3,
                    error_message: "too many series".to_owned()
                })
            );
            // Refused or malformed: neither counted nor kept.
            receiver.set_fault(Fault::Status {
                grpc_code: 14,
                http_status: 503,
                message: "try later".to_owned(),
            });
            let status = grpc_export(&mut client, metrics, plain.clone()).await;
            assert_eq!(status.unwrap_err().code(), tonic::Code::Unavailable);
            receiver.set_fault(Fault::None);
            let status = grpc_export(&mut client, metrics, vec![0x0a, 0x05]).await;
            assert_eq!(status.unwrap_err().code(), tonic::Code::InvalidArgument);
        });

        assert!(receiver.wait_for_metrics(5 + 4 + 5 + 5, WAIT));
        let counts = receiver.counts();
        assert_eq!(counts.metrics_requests, 6);
        assert_eq!(
            (counts.metrics, counts.metrics_rejected),
            (5 + 4 + 5 + 5, 3)
        );
        assert_eq!(counts.items(Signal::Metrics), 19);
        assert_eq!(counts.items_rejected(Signal::Metrics), 3);
        assert_eq!(
            (counts.requests, counts.spans, counts.log_records),
            (0, 0, 0)
        );
        assert_eq!(counts.requests_malformed, 1);
        assert_eq!(
            receiver.take_metric_requests(),
            vec![
                metrics_request(&[2, 3]),
                metrics_request(&[4]),
                metrics_request(&[2, 3]),
                metrics_request(&[2, 3]),
            ]
        );
        assert!(receiver.take_metric_requests().is_empty(), "drained");
        assert!(receiver.take_requests().is_empty() && receiver.take_log_requests().is_empty());
        let meta = receiver.take_request_meta();
        let seen: Vec<_> = meta
            .iter()
            .map(|m| {
                (
                    m.transport,
                    m.compression,
                    m.metrics,
                    m.log_records,
                    m.accepted,
                )
            })
            .collect();
        assert_eq!(
            seen,
            [
                (Transport::Http, Compression::None, 5, 0, true),
                (Transport::Http, Compression::Gzip, 4, 0, true),
                (Transport::Grpc, Compression::None, 5, 0, true),
                (Transport::Grpc, Compression::None, 5, 0, true),
                (Transport::Grpc, Compression::None, 5, 0, false),
                (Transport::Grpc, Compression::None, 0, 0, false),
            ]
        );
        assert!(meta.iter().all(|m| m.signal == Signal::Metrics));
    }

    #[test]
    fn receiver_grpc_counts_a_body_that_does_not_decompress_as_malformed() {
        // A message flagged compressed under `grpc-encoding: gzip` that is
        // not gzip: tonic refuses it before our handler runs. The typed
        // client cannot send it, so the request is built by hand.
        let receiver = receiver(false);
        let mut frame = vec![1, 0, 0, 0, 3];
        frame.extend_from_slice(b"bad");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        let status = runtime.block_on(async {
            use tonic::codegen::Service;
            let mut channel = tonic::transport::Endpoint::from_shared(receiver.grpc_endpoint())
                .expect("a valid endpoint")
                .connect()
                .await
                .expect("connect");
            let request = http::Request::builder()
                .method("POST")
                .uri(format!(
                    "{}{}",
                    receiver.grpc_endpoint(),
                    Signal::Traces.grpc_path()
                ))
                .header("content-type", "application/grpc")
                .header("te", "trailers")
                .header("grpc-encoding", "gzip")
                .body(tonic::body::Body::new(Full::new(Bytes::from(frame))))
                .expect("a request");
            std::future::poll_fn(|cx| channel.poll_ready(cx))
                .await
                .expect("ready");
            let response = channel.call(request).await.expect("a response");
            response.headers().get("grpc-status").cloned()
        });
        assert!(
            status.as_ref().is_some_and(|code| code != "0"),
            "{status:?}"
        );
        let counts = receiver.counts();
        assert_eq!((counts.requests, counts.requests_malformed), (1, 1));
        assert_eq!(counts.bytes_wire, 8);
        assert_eq!(counts.bytes_decoded, 0);
    }

    #[test]
    fn receiver_grpc_applies_faults() {
        let receiver = receiver(false);
        let traces = Signal::Traces.grpc_path();
        let message = request(&[4]).encode_to_vec();

        receiver.set_fault(Fault::Status {
            grpc_code: 14,
            http_status: 503,
            message: "try later".to_owned(),
        });
        with_grpc_client(&receiver, async |mut client| {
            let status = grpc_export(&mut client, traces, message.clone())
                .await
                .unwrap_err();
            assert_eq!(status.code(), tonic::Code::Unavailable);
            assert_eq!(status.message(), "try later");
        });
        let counts = receiver.counts();
        assert_eq!(
            (counts.requests, counts.requests_faulted, counts.spans),
            (1, 1, 0)
        );
        assert_eq!(counts.requests_malformed, 0);

        receiver.set_fault(Fault::PartialSuccess {
            rejected: 1,
            message: "one too many".to_owned(),
        });
        let answer = with_grpc_client(&receiver, async |mut client| {
            grpc_export(&mut client, traces, message.clone()).await
        })
        .expect("a partial success is a success");
        let response = ExportTraceServiceResponse::decode(answer).expect("a response");
        assert_eq!(
            response.partial_success,
            Some(ExportTracePartialSuccess {
                rejected_spans: 1,
                error_message: "one too many".to_owned()
            })
        );
        let counts = receiver.counts();
        assert_eq!(
            (
                counts.requests,
                counts.requests_faulted,
                counts.spans,
                counts.spans_rejected
            ),
            (2, 2, 4, 1)
        );
    }

    /// Round trips of a large request (5000 spans, ~190 KB: several HTTP/2
    /// flow-control windows) on one connection. A stall on a delayed ACK
    /// would cost ~40 ms each. (On Linux loopback the Nagle stall that
    /// `TCP_NODELAY` prevents does not reproduce with these requests, so
    /// this guards round-trip latency in general, not that option.)
    const ROUND_TRIPS: u32 = 20;
    const NAGLE_STALL: Duration = Duration::from_millis(40);

    #[test]
    fn receiver_grpc_large_round_trips_do_not_stall() {
        let receiver = receiver(false);
        let message = request(&[5000]).encode_to_vec();
        let elapsed = with_grpc_client(&receiver, async |mut client| {
            // The first call warms the connection up.
            grpc_export(&mut client, Signal::Traces.grpc_path(), message.clone())
                .await
                .expect("exported");
            let start = Instant::now();
            for _ in 0..ROUND_TRIPS {
                grpc_export(&mut client, Signal::Traces.grpc_path(), message.clone())
                    .await
                    .expect("exported");
            }
            start.elapsed()
        });
        assert!(elapsed < NAGLE_STALL * ROUND_TRIPS / 2, "{elapsed:?}");
    }

    #[test]
    fn receiver_http_keep_alive_large_round_trips_do_not_stall() {
        let receiver = receiver(false);
        let body = request(&[5000]).encode_to_vec();
        let mut stream = TcpStream::connect(receiver.http_addr()).expect("connect");
        stream.set_nodelay(true).expect("nodelay");
        stream.set_read_timeout(Some(WAIT)).expect("timeout");
        let head = format!(
            "POST /v1/traces HTTP/1.1\r\nHost: localhost\r\nContent-Type: {PROTOBUF}\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        let mut round_trip = || {
            // Head and body in two writes, as many clients do.
            stream.write_all(head.as_bytes()).expect("write");
            stream.write_all(&body).expect("write");
            let mut reply = Vec::new();
            let mut byte = [0u8; 1];
            while !reply.ends_with(b"\r\n\r\n") {
                stream.read_exact(&mut byte).expect("a reply head");
                reply.push(byte[0]);
            }
            let head = String::from_utf8(reply).expect("an ASCII head");
            assert!(head.starts_with("HTTP/1.1 200"), "{head}");
            let length: usize = head
                .lines()
                .find_map(|line| {
                    let (name, value) = line.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse().ok())?
                })
                .expect("a content length");
            let mut body = vec![0; length];
            stream.read_exact(&mut body).expect("a reply body");
        };
        round_trip();
        let start = Instant::now();
        for _ in 0..ROUND_TRIPS {
            round_trip();
        }
        let elapsed = start.elapsed();
        assert!(elapsed < NAGLE_STALL * ROUND_TRIPS / 2, "{elapsed:?}");
        assert_eq!(receiver.counts().spans, 5000 * (u64::from(ROUND_TRIPS) + 1));
    }

    #[test]
    fn receiver_drops_inside_another_runtime() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a runtime");
        runtime.block_on(async { drop(receiver(false)) });
    }

    #[test]
    fn receiver_refuses_unusable_tls_material() {
        let start = |tls: ReceiverTls| {
            Receiver::start(ReceiverConfig {
                tls: Some(tls),
                ..ReceiverConfig::default()
            })
            .expect_err("unusable TLS material")
        };
        // Valid PEM, but DER that is no certificate, and no key at all.
        let junk = "-----BEGIN CERTIFICATE-----\nAAECAw==\n-----END CERTIFICATE-----\n";
        let e = start(ReceiverTls {
            cert_chain_pem: "no PEM here".to_owned(),
            key_pem: String::new(),
            client_ca_pem: None,
        });
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        assert!(e.to_string().contains("certificate chain"), "{e}");
        let e = start(ReceiverTls {
            cert_chain_pem: junk.to_owned(),
            key_pem: "no key".to_owned(),
            client_ca_pem: None,
        });
        assert!(e.to_string().contains("private key"), "{e}");
        let tls = ReceiverTls {
            cert_chain_pem: junk.to_owned(),
            key_pem: "secret".to_owned(),
            client_ca_pem: None,
        };
        assert!(
            !format!("{tls:?}").contains("secret"),
            "the key is left out"
        );
    }

    // -----------------------------------------------------------------------
    // Fault modes, the fault script, restarts
    // -----------------------------------------------------------------------

    /// A [`Fault::Refuse`] as `RESOURCE_EXHAUSTED` and 429.
    fn refuse(message: &str, retry_after: Option<RetryHint>) -> Fault {
        Fault::Refuse {
            grpc_code: 8,
            http_status: 429,
            message: message.to_owned(),
            retry_after,
        }
    }

    fn test_runtime() -> Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime")
    }

    /// Sends one uncompressed gRPC request by hand, on a connection of its
    /// own: the response's headers (where a refusal's status is), or the
    /// transport error that came instead.
    fn grpc_raw(
        receiver: &Receiver,
        path: &str,
        message: &[u8],
    ) -> Result<http::HeaderMap, tonic::transport::Error> {
        use tonic::codegen::Service;
        let length = u32::try_from(message.len()).expect("a small message");
        let mut frame = vec![0];
        frame.extend_from_slice(&length.to_be_bytes());
        frame.extend_from_slice(message);
        test_runtime().block_on(async {
            let mut channel = tonic::transport::Endpoint::from_shared(receiver.grpc_endpoint())
                .expect("a valid endpoint")
                .connect()
                .await
                .expect("connect");
            let request = http::Request::builder()
                .method("POST")
                .uri(format!("{}{path}", receiver.grpc_endpoint()))
                .header("content-type", "application/grpc")
                .header("te", "trailers")
                .body(tonic::body::Body::new(Full::new(Bytes::from(frame))))
                .expect("a request");
            std::future::poll_fn(|cx| channel.poll_ready(cx))
                .await
                .expect("ready");
            let response = channel.call(request).await?;
            Ok(response.headers().clone())
        })
    }

    /// A cleartext HTTP/2 connection to `addr` that has sent its preface
    /// and read the server's first frame: accepted, served, and idle.
    fn h2_connection(addr: SocketAddr) -> TcpStream {
        let mut stream = TcpStream::connect(addr).expect("connect");
        stream.set_read_timeout(Some(WAIT)).expect("timeout");
        stream
            .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")
            .expect("write");
        let mut frame_header = [0u8; 9];
        stream.read_exact(&mut frame_header).expect("a frame");
        stream
    }

    /// Whether the server closes `stream` (end of file or a reset) before
    /// it has been silent for `silence`; what it sends first is skipped.
    fn closes_within(stream: &mut TcpStream, silence: Duration) -> bool {
        stream.set_read_timeout(Some(silence)).expect("timeout");
        let mut buffer = [0u8; 1024];
        loop {
            match stream.read(&mut buffer) {
                Ok(0) => return true,
                Ok(_) => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    return false;
                }
                Err(_) => return true,
            }
        }
    }

    /// How long a connection that should stay open is watched.
    const STILL_OPEN: Duration = Duration::from_millis(100);

    #[test]
    fn receiver_grpc_refuses_with_and_without_a_retry_hint() {
        let receiver = receiver(false);
        let traces = Signal::Traces.grpc_path();
        let message = request(&[2]).encode_to_vec();
        let export = || {
            with_grpc_client(&receiver, async |mut client| {
                grpc_export(&mut client, traces, message.clone()).await
            })
            .expect_err("refused")
        };

        receiver.set_fault(refuse("slow down!", None));
        let status = export();
        assert_eq!(status.code(), tonic::Code::ResourceExhausted);
        assert_eq!(status.message(), "slow down!");
        assert!(status.details().is_empty(), "no hint, no details");

        let delay = Duration::from_millis(1500);
        let hint = RetryHint {
            delay,
            http_date: false,
        };
        receiver.set_fault(refuse("slow down!", Some(hint)));
        let status = export();
        assert_eq!(status.code(), tonic::Code::ResourceExhausted);
        assert_eq!(status.message(), "slow down!");

        // On the wire: the usual status, and its details in base64 without
        // padding.
        let headers = grpc_raw(&receiver, traces, &message).expect("an answer");
        assert_eq!(headers["grpc-status"], "8");
        assert_eq!(headers["grpc-message"], "slow%20down!");
        let encoded = headers["grpc-status-details-bin"].as_bytes();
        let details = tonic::metadata::MetadataMap::from_headers(headers.clone())
            .get_bin("grpc-status-details-bin")
            .expect("details")
            .to_bytes()
            .expect("base64");
        assert_ne!(details.len() % 3, 0, "padding would show");
        assert_eq!(encoded.len(), (4 * details.len()).div_ceil(3), "no padding");
        assert_eq!(status.details(), &details[..], "what tonic clients see");

        let details = RpcStatus::decode(details).expect("a google.rpc.Status");
        assert_eq!((details.code, details.message.as_str()), (8, "slow down!"));
        let [detail] = &details.details[..] else {
            panic!("one detail: {details:?}");
        };
        assert_eq!(detail.type_url, RETRY_INFO_TYPE_URL);
        let info = RetryInfo::decode(&detail.value[..]).expect("a google.rpc.RetryInfo");
        assert_eq!(
            info.retry_delay,
            Some(ProtoDuration {
                seconds: 1,
                nanos: 500_000_000
            })
        );

        let counts = receiver.counts();
        assert_eq!(
            (counts.requests, counts.requests_faulted, counts.spans),
            (3, 3, 0)
        );
    }

    #[test]
    fn receiver_http_refuses_with_and_without_a_retry_hint() {
        let receiver = receiver(false);
        let body = request(&[2]).encode_to_vec();
        let refused = |retry_after| {
            receiver.set_fault(refuse("slow down", retry_after));
            let reply = post_traces(&receiver, None, &body);
            assert_eq!(reply.status, 429);
            assert_eq!(
                reply.rpc_status(),
                RpcStatus {
                    code: 8,
                    message: "slow down".to_owned(),
                    details: vec![],
                }
            );
            reply
        };
        assert_eq!(refused(None).header("retry-after"), None);

        let seconds = |millis| {
            let delay = Duration::from_millis(millis);
            let reply = refused(Some(RetryHint {
                delay,
                http_date: false,
            }));
            reply.header("retry-after").map(str::to_owned)
        };
        assert_eq!(seconds(1000).as_deref(), Some("1"));
        assert_eq!(seconds(1200).as_deref(), Some("2"), "rounded up");

        let delay = Duration::from_secs(3);
        let before = SystemTime::now();
        let reply = refused(Some(RetryHint {
            delay,
            http_date: true,
        }));
        let after = SystemTime::now();
        let date = reply.header("retry-after").expect("a Retry-After");
        let retry_at = httpdate::parse_http_date(date).expect("an HTTP date");
        assert!(
            retry_at >= before + delay - Duration::from_secs(1),
            "{date}"
        );
        assert!(retry_at <= after + delay + Duration::from_secs(2), "{date}");

        let counts = receiver.counts();
        assert_eq!(
            (counts.requests, counts.requests_faulted, counts.spans),
            (4, 4, 0)
        );
    }

    #[test]
    fn receiver_retry_after_rounds_up_to_a_whole_second() {
        let seconds = |delay| {
            retry_after_header(&RetryHint {
                delay,
                http_date: false,
            })
        };
        assert_eq!(seconds(Duration::ZERO), "0");
        assert_eq!(seconds(Duration::from_nanos(1)), "1");
        assert_eq!(seconds(Duration::from_secs(1)), "1");
        assert_eq!(seconds(Duration::from_millis(1200)), "2");
        assert_eq!(seconds(Duration::MAX), u64::MAX.to_string());

        let date = |delay| {
            retry_after_header(&RetryHint {
                delay,
                http_date: true,
            })
        };
        let now = SystemTime::now();
        let retry_at =
            httpdate::parse_http_date(&date(Duration::from_millis(500))).expect("an HTTP date");
        assert!(retry_at > now, "never early");
        assert_eq!(
            date(Duration::MAX),
            "Fri, 31 Dec 9999 23:59:59 GMT",
            "the last date, not a panic"
        );
    }

    #[test]
    fn receiver_grpc_answers_slowly_without_holding_up_other_requests() {
        let receiver = receiver(false);
        let traces = Signal::Traces.grpc_path();
        let message = request(&[2]).encode_to_vec();
        let delay = Duration::from_secs(1);
        receiver.push_faults(1, Fault::Slow { delay });
        // Both on one connection; the second once the first is in.
        let (slow, fast) = with_grpc_client(&receiver, async |client| {
            let start = Instant::now();
            let (mut first, mut second) = (client.clone(), client);
            let slow = async {
                let answer = grpc_export(&mut first, traces, message.clone()).await;
                (answer, start.elapsed())
            };
            let fast = async {
                tokio::time::sleep(Duration::from_millis(200)).await;
                let answer = grpc_export(&mut second, traces, message.clone()).await;
                (answer, start.elapsed())
            };
            tokio::join!(slow, fast)
        });
        assert!(slow.1 >= delay, "{:?}", slow.1);
        assert!(fast.1 < slow.1, "held up: {:?} {:?}", fast.1, slow.1);
        assert_eq!(slow.0.ok(), Some(Bytes::new()));
        assert_eq!(fast.0.ok(), Some(Bytes::new()));
        let counts = receiver.counts();
        assert_eq!(
            (counts.requests, counts.requests_faulted, counts.spans),
            (2, 1, 4)
        );
    }

    #[test]
    fn receiver_http_answers_slowly() {
        let receiver = receiver(false);
        let delay = Duration::from_millis(1000);
        receiver.set_fault(Fault::Slow { delay });
        let start = Instant::now();
        let reply = std::thread::scope(|s| {
            let posted = s.spawn(|| post_traces(&receiver, None, &request(&[3]).encode_to_vec()));
            // Counted before the answer goes.
            assert!(receiver.wait_for_spans(3, delay / 2));
            assert!(start.elapsed() < delay);
            posted.join().unwrap()
        });
        assert!(start.elapsed() >= delay, "{:?}", start.elapsed());
        assert_eq!(reply.status, 200);
        let counts = receiver.counts();
        assert_eq!(
            (counts.requests, counts.requests_faulted, counts.spans),
            (1, 1, 3)
        );
    }

    #[test]
    fn receiver_grpc_drops_the_connection_without_a_status() {
        let receiver = receiver(false);
        let traces = Signal::Traces.grpc_path();
        let message = request(&[2]).encode_to_vec();
        let mut bystander = h2_connection(receiver.grpc_addr());

        receiver.push_faults(1, Fault::DropConnection);
        let answer = grpc_raw(&receiver, traces, &message);
        assert!(answer.is_err(), "no status, a transport error: {answer:?}");
        assert!(
            !closes_within(&mut bystander, STILL_OPEN),
            "only that connection is killed"
        );
        let answer = with_grpc_client(&receiver, async |mut client| {
            grpc_export(&mut client, traces, message.clone()).await
        });
        assert_eq!(
            answer.ok(),
            Some(Bytes::new()),
            "a new connection is served"
        );

        let counts = receiver.counts();
        assert_eq!(
            (
                counts.requests,
                counts.requests_faulted,
                counts.connections_dropped,
                counts.spans
            ),
            (2, 1, 1, 2)
        );
    }

    #[test]
    fn receiver_http_drops_the_connection_without_an_answer() {
        let receiver = receiver(true);
        let body = request(&[2]).encode_to_vec();
        let mut bystander = TcpStream::connect(receiver.http_addr()).expect("connect");

        receiver.push_faults(1, Fault::DropConnection);
        let headers = [("Content-Type", PROTOBUF)];
        let reply = http_bytes(receiver.http_addr(), "POST", "/v1/traces", &headers, &body);
        let answered = reply.as_ref().is_ok_and(|bytes| !bytes.is_empty());
        assert!(!answered, "no answer at all: {reply:?}");
        assert!(
            !closes_within(&mut bystander, STILL_OPEN),
            "only that connection is killed"
        );
        assert_eq!(post_traces(&receiver, None, &body).status, 200);

        let counts = receiver.counts();
        assert_eq!(
            (
                counts.requests,
                counts.requests_faulted,
                counts.connections_dropped,
                counts.spans
            ),
            (2, 1, 1, 2)
        );
        assert_eq!(
            receiver.take_requests().len(),
            1,
            "the dropped one is not kept"
        );
        let accepted: Vec<_> = receiver
            .take_request_meta()
            .iter()
            .map(|meta| meta.accepted)
            .collect();
        assert_eq!(accepted, [false, true]);
    }

    #[test]
    fn receiver_scripted_faults_apply_in_order_then_the_base_fault() {
        let receiver = receiver(false);
        let body = request(&[1]).encode_to_vec();
        let traces = Signal::Traces.grpc_path();
        receiver.set_fault(Fault::PartialSuccess {
            rejected: 1,
            message: "base".to_owned(),
        });
        receiver.push_faults(0, Fault::DropConnection);
        receiver.push_faults(2, refuse("scripted", None));
        receiver.push_faults(
            1,
            Fault::Slow {
                delay: Duration::from_millis(50),
            },
        );

        // Any signal, either server, in arrival order.
        assert_eq!(post_traces(&receiver, None, &body).status, 429);
        let truncated = &body[..body.len() - 1];
        assert_eq!(
            post_traces(&receiver, None, truncated).status,
            400,
            "malformed: refused as always, using up nothing"
        );
        let (refused, slow) = with_grpc_client(&receiver, async |mut client| {
            let refused = grpc_export(&mut client, traces, body.clone()).await;
            let slow = grpc_export(&mut client, Signal::Metrics.grpc_path(), vec![]).await;
            (refused, slow)
        });
        assert_eq!(
            refused.map_err(|status| status.code()),
            Err(tonic::Code::ResourceExhausted)
        );
        assert_eq!(slow.ok(), Some(Bytes::new()));
        let reply = post_traces(&receiver, None, &body);
        assert_eq!(reply.status, 200);
        let response = ExportTraceServiceResponse::decode(&reply.body[..]).expect("a response");
        let base = response.partial_success.map(|p| p.error_message);
        assert_eq!(base.as_deref(), Some("base"), "the script is used up");
        let counts = receiver.counts();
        assert_eq!((counts.requests_faulted, counts.requests_malformed), (4, 1));

        // `set_fault` leaves the script alone; `clear_faults` empties it.
        receiver.push_faults(1, refuse("scripted", None));
        receiver.set_fault(Fault::None);
        assert_eq!(post_traces(&receiver, None, &body).status, 429);
        receiver.push_faults(3, refuse("scripted", None));
        receiver.clear_faults();
        assert_eq!(post_traces(&receiver, None, &body).status, 200);
        assert_eq!(receiver.counts().requests_faulted, 5);
    }

    #[test]
    fn receiver_restarts_on_the_same_ports() {
        let receiver = receiver(false);
        let (grpc_port, http_port) = (receiver.grpc_addr().port(), receiver.http_addr().port());
        let traces = Signal::Traces.grpc_path();
        let message = request(&[1]).encode_to_vec();
        let runtime = test_runtime();
        let mut client = runtime.block_on(async {
            let channel = tonic::transport::Endpoint::from_shared(receiver.grpc_endpoint())
                .expect("a valid endpoint")
                .connect()
                .await
                .expect("connect");
            tonic::client::Grpc::new(channel)
        });
        let mut export = || runtime.block_on(grpc_export(&mut client, traces, message.clone()));
        export().expect("exported");
        let mut idle_grpc = h2_connection(receiver.grpc_addr());
        let mut idle_http = TcpStream::connect(receiver.http_addr()).expect("connect");

        let start = Instant::now();
        receiver.shutdown();
        assert!(
            closes_within(&mut idle_grpc, WAIT),
            "the gRPC connection ends"
        );
        assert!(
            closes_within(&mut idle_http, WAIT),
            "the HTTP connection ends"
        );
        assert!(start.elapsed() < WAIT / 4, "at once: {:?}", start.elapsed());
        assert!(export().is_err(), "the receiver is gone");

        let receiver = Receiver::start(ReceiverConfig {
            grpc_port,
            http_port,
            ..ReceiverConfig::default()
        })
        .expect("the same ports, at once");
        assert_eq!(
            (receiver.grpc_addr().port(), receiver.http_addr().port()),
            (grpc_port, http_port)
        );
        export().expect("the same client, reconnected");
        assert_eq!(post_traces(&receiver, None, &message).status, 200);
        assert_eq!(receiver.counts().spans, 2);
    }

    #[test]
    fn unused_ports_are_distinct_and_free() {
        let (grpc_port, http_port) = unused_ports().expect("two free ports");
        assert_ne!(grpc_port, http_port);
        assert!(grpc_port != 0 && http_port != 0);
        let receiver = Receiver::start(ReceiverConfig {
            grpc_port,
            http_port,
            ..ReceiverConfig::default()
        })
        .expect("both ports free");
        assert_eq!(
            (receiver.grpc_addr().port(), receiver.http_addr().port()),
            (grpc_port, http_port)
        );
        assert_eq!(post_traces(&receiver, None, &[]).status, 200);
    }
}
