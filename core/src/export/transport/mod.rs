//! Transport: sending framed, compressed requests to an OTLP receiver and
//! reading its answer.
//!
//! One small trait, [`Transport`], stands between the workers and the wire,
//! so tests (and unusual deployments) can swap it. Two implementations come
//! with otlpx: OTLP/gRPC over a pool of separately connected tonic channels,
//! and OTLP/HTTP (binary protobuf) over hyper's pooled keep-alive client.
//! Both send the bytes they are given as they are: nothing is decoded or
//! re-encoded, and a request can be sent again without being rebuilt.
//!
//! Signals differ only in the table of paths below (the [`Signal`] itself
//! is the rings' type: a record carries it from the moment it is written).
//!
//! All I/O runs on the engine's own small tokio runtime; the application's
//! runtime, if it has one, is never used.

pub mod balance;
mod grpc;
mod http;
pub mod retry;
mod tls;

pub(crate) use self::balance::Balanced;
pub(crate) use self::grpc::GrpcTransport;
pub(crate) use self::http::HttpTransport;
pub use self::retry::Retry;
pub(crate) use self::tls::ClientTls;

use crate::config::Compression;
use crate::telemetry::FailureKind;
use bytes::Bytes;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

pub use crate::ring::Signal;

impl Signal {
    /// The gRPC method path of the signal's OTLP `Export` call.
    pub fn grpc_path(self) -> &'static str {
        match self {
            Self::Traces => "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
            Self::Logs => "/opentelemetry.proto.collector.logs.v1.LogsService/Export",
            Self::Metrics => "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export",
        }
    }

    /// The OTLP/HTTP path appended to a base endpoint.
    pub fn http_path(self) -> &'static str {
        match self {
            Self::Traces => "/v1/traces",
            Self::Logs => "/v1/logs",
            Self::Metrics => "/v1/metrics",
        }
    }
}

/// One export request, framed and compressed, ready to go (and to go again:
/// cloning it shares the bytes).
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ExportRequest {
    /// What the request carries.
    pub signal: Signal,
    /// The encoded `Export*ServiceRequest`, compressed as `compression` says.
    pub body: Bytes,
    /// How `body` is compressed.
    pub compression: Compression,
    /// Items (spans) in the request.
    pub items: usize,
}

impl ExportRequest {
    /// A request of `items` items whose encoded, compressed body is `body`.
    pub fn new(signal: Signal, body: Bytes, compression: Compression, items: usize) -> Self {
        Self {
            signal,
            body,
            compression,
            items,
        }
    }
}

/// A successful answer.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ExportResponse {
    /// Items the receiver refused although the request succeeded (OTLP
    /// partial success).
    pub rejected: u64,
    /// The receiver's message with a partial success, if any.
    pub message: String,
}

impl ExportResponse {
    /// Everything accepted.
    pub fn accepted() -> Self {
        Self::default()
    }

    /// A partial success: `rejected` items refused, with the receiver's
    /// message.
    pub fn partial(rejected: u64, message: impl Into<String>) -> Self {
        Self {
            rejected,
            message: message.into(),
        }
    }
}

/// Why a request failed.
#[derive(Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind:?}: {message}")]
#[non_exhaustive]
pub struct ExportError {
    /// The kind, as counted in [`ExportFailures`](crate::ExportFailures).
    pub kind: FailureKind,
    /// What happened, for people.
    pub message: String,
    /// The gRPC status code, when the receiver sent one.
    pub grpc_code: Option<i32>,
    /// The HTTP status, when the receiver sent one.
    pub http_status: Option<u16>,
    /// Whether, and when, the request may be sent again.
    pub retry: Retry,
}

debug_as_display!(ExportError);

impl ExportError {
    /// An error of `kind`, retryable after backoff if it is
    /// [`Unavailable`](FailureKind::Unavailable) or
    /// [`Timeout`](FailureKind::Timeout) (no answer: the receiver may not
    /// have seen the request), final otherwise; see
    /// [`with_retry`](Self::with_retry).
    pub fn new(kind: FailureKind, message: impl Into<String>) -> Self {
        let retry = match kind {
            FailureKind::Unavailable | FailureKind::Timeout => Retry::Backoff,
            _ => Retry::Never,
        };
        Self {
            kind,
            message: message.into(),
            grpc_code: None,
            http_status: None,
            retry,
        }
    }

    /// The same error with `retry` as its retry decision.
    pub fn with_retry(mut self, retry: Retry) -> Self {
        self.retry = retry;
        self
    }
}

/// The future an export returns.
pub type ExportFuture =
    Pin<Box<dyn Future<Output = Result<ExportResponse, ExportError>> + Send + 'static>>;

/// Sends requests to a receiver.
///
/// `export` is called on a worker thread inside the engine's tokio runtime
/// and must return quickly; the future runs on the runtime. The engine
/// bounds requests in flight and applies the export timeout around the
/// future, so implementations need do neither.
pub trait Transport: Send + Sync + 'static {
    /// Starts sending `request`.
    fn export(&self, request: ExportRequest) -> ExportFuture;

    /// Where requests go, for the messages of errors the engine makes up
    /// itself, such as an attempt that timed out: a URL, or words naming
    /// several; `None` (the default) names nothing.
    fn endpoint(&self) -> Option<&str> {
        None
    }
}

/// The error of an attempt `transport` did not answer within `timeout`
/// (the engine's attempt timeout, applied around the transport's future),
/// naming the transport's endpoint.
pub(crate) fn timed_out(transport: &dyn Transport, timeout: Duration) -> ExportError {
    let message = match transport.endpoint() {
        Some(endpoint) => format!("no answer from {endpoint} within {timeout:?}"),
        None => format!("no answer within {timeout:?}"),
    };
    ExportError::new(FailureKind::Timeout, message)
}

/// `User-Agent` of every request, as the OTLP exporter specification
/// recommends: the exporter's name and version.
pub(crate) const USER_AGENT: &str = concat!("otlpx/", env!("CARGO_PKG_VERSION"));

/// The largest answer body read; OTLP answers are tiny.
const MAX_RESPONSE_BYTES: usize = 64 << 10;

/// The partial-success part of any `Export*ServiceResponse`: field 1 in all
/// three, with `rejected_*` (1) and `error_message` (2) inside.
#[derive(Clone, PartialEq, prost::Message)]
struct ExportServiceResponse {
    #[prost(message, optional, tag = "1")]
    partial_success: Option<PartialSuccess>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct PartialSuccess {
    #[prost(int64, tag = "1")]
    rejected: i64,
    #[prost(string, tag = "2")]
    error_message: String,
}

/// `google.rpc.Status`, the body of OTLP/HTTP error answers.
#[derive(Clone, PartialEq, prost::Message)]
struct RpcStatus {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(string, tag = "2")]
    message: String,
}

/// Reads an `Export*ServiceResponse` body.
fn decode_response(body: &[u8]) -> Result<ExportResponse, ExportError> {
    let response = <ExportServiceResponse as prost::Message>::decode(body).map_err(|e| {
        ExportError::new(
            FailureKind::Protocol,
            format!("undecodable export response: {e}"),
        )
    })?;
    Ok(match response.partial_success {
        Some(p) => ExportResponse::partial(p.rejected.max(0) as u64, p.error_message),
        None => ExportResponse::accepted(),
    })
}

/// A short, printable excerpt of an unexpected body.
fn excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(&body[..body.len().min(256)]);
    text.trim().to_owned()
}

/// The failure kind of a gRPC status code (see [`ExportFailures`] for the
/// grouping; whether to retry is decided by the code itself, in
/// [`retry`]).
///
/// [`ExportFailures`]: crate::ExportFailures
fn grpc_code_kind(code: i32) -> FailureKind {
    match code {
        // DEADLINE_EXCEEDED
        4 => FailureKind::Timeout,
        // RESOURCE_EXHAUSTED
        8 => FailureKind::Throttled,
        // UNAVAILABLE
        14 => FailureKind::Unavailable,
        // INVALID_ARGUMENT, NOT_FOUND, ALREADY_EXISTS, PERMISSION_DENIED,
        // FAILED_PRECONDITION, UNIMPLEMENTED, UNAUTHENTICATED
        3 | 5 | 6 | 7 | 9 | 12 | 16 => FailureKind::Rejected,
        // CANCELLED, UNKNOWN, ABORTED, OUT_OF_RANGE, INTERNAL, DATA_LOSS, …
        _ => FailureKind::Other,
    }
}

/// The failure kind of an HTTP status that is not a success.
fn http_status_kind(status: u16) -> FailureKind {
    match status {
        408 => FailureKind::Timeout,
        429 => FailureKind::Throttled,
        502..=504 => FailureKind::Unavailable,
        400..=499 => FailureKind::Rejected,
        _ => FailureKind::Other,
    }
}

/// The error of an HTTP answer with a status that is not a success:
/// retryable (after `Retry-After`, when the answer has one) for the
/// statuses the specification lists.
fn http_error(status: u16, headers: &::http::HeaderMap, message: String) -> ExportError {
    let asked = headers
        .get(::http::header::RETRY_AFTER)
        .and_then(|v| retry::http_retry_after(v.as_bytes(), std::time::SystemTime::now()));
    let retry = retry::decide(retry::http_status_retryable(status), asked);
    let mut e = ExportError::new(http_status_kind(status), message).with_retry(retry);
    e.http_status = Some(status);
    e
}

/// Reads an answer body, at most [`MAX_RESPONSE_BYTES`] of it.
async fn read_body<B>(body: B) -> Result<http_body_util::Collected<bytes::Bytes>, ExportError>
where
    B: http_body::Body<Data = bytes::Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    use http_body_util::BodyExt;
    http_body_util::Limited::new(body, MAX_RESPONSE_BYTES)
        .collect()
        .await
        .map_err(|e| {
            ExportError::new(
                FailureKind::Unavailable,
                format!("reading the answer: {}", error_chain(&*e)),
            )
        })
}

/// The message of an error from a transport library, with its causes.
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut message = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        source = s.source();
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_signal_has_its_service_and_path() {
        let paths = Signal::ALL.map(|s| (s.grpc_path(), s.http_path()));
        assert_eq!(
            paths,
            [
                (
                    "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
                    "/v1/traces"
                ),
                (
                    "/opentelemetry.proto.collector.logs.v1.LogsService/Export",
                    "/v1/logs"
                ),
                (
                    "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export",
                    "/v1/metrics"
                ),
            ]
        );
    }

    #[test]
    fn responses_decode_partial_success_and_refuse_garbage() {
        assert_eq!(decode_response(&[]).unwrap(), ExportResponse::accepted());
        let body =
            <ExportServiceResponse as prost::Message>::encode_to_vec(&ExportServiceResponse {
                partial_success: Some(PartialSuccess {
                    rejected: 3,
                    error_message: "too old".into(),
                }),
            });
        assert_eq!(
            decode_response(&body).unwrap(),
            ExportResponse::partial(3, "too old")
        );
        let err = decode_response(&[0x0a, 0x05, 1]).unwrap_err();
        assert_eq!(err.kind, FailureKind::Protocol);
    }

    #[test]
    fn status_kinds() {
        assert_eq!(grpc_code_kind(14), FailureKind::Unavailable);
        assert_eq!(grpc_code_kind(3), FailureKind::Rejected);
        assert_eq!(grpc_code_kind(8), FailureKind::Throttled);
        assert_eq!(grpc_code_kind(13), FailureKind::Other);
        assert_eq!(http_status_kind(429), FailureKind::Throttled);
        assert_eq!(http_status_kind(503), FailureKind::Unavailable);
        assert_eq!(http_status_kind(400), FailureKind::Rejected);
        assert_eq!(http_status_kind(500), FailureKind::Other);
    }
}
