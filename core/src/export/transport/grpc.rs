//! OTLP/gRPC: unary `Export` calls over a pool of tonic channels.
//!
//! The call is written by hand rather than through a codec: the worker has
//! already framed and (optionally) compressed the message, and a tonic
//! codec cannot carry compressed bytes (tonic sets the message's compressed
//! flag only when it compresses itself). So the request body is the 5-byte
//! gRPC message prefix followed by the worker's bytes, sent as two chunks
//! without a copy, and the answer's status and message are read here. The
//! channels are tonic's: connection management, HTTP/2 and `TCP_NODELAY`.
//!
//! The pool is N separately connected channels (N HTTP/2 connections),
//! used in turn; clones of one channel would share its connection.
//!
//! With TLS (`https://`), the channels connect through the rustls connector
//! of [`ClientTls`] (ALPN `h2`) instead of tonic's own TCP connector, with
//! the same `TCP_NODELAY` and connect timeout; a failed handshake is a
//! [`FailureKind::Tls`] failure.

use super::tls::{TlsFailureSlot, tls_failure};
use super::{
    ClientTls, ExportError, ExportFuture, ExportRequest, ExportResponse, MAX_RESPONSE_BYTES,
    Transport, USER_AGENT, decode_response, error_chain, excerpt, grpc_code_kind, read_body, retry,
};
use crate::config::Compression;
use crate::telemetry::FailureKind;
use bytes::{Buf, Bytes};
use http::{HeaderMap, HeaderValue, header};
use hyper_util::client::legacy::connect::HttpConnector;
use std::io::Read;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;
use tonic::client::GrpcService;
use tonic::transport::{Channel, Endpoint};

/// OTLP/gRPC over a pool of channels.
pub(crate) struct GrpcTransport {
    channels: Vec<Channel>,
    next: AtomicUsize,
    /// The endpoint's URI, as given, for [`Transport::endpoint`].
    endpoint: String,
    headers: HeaderMap,
    /// `host:port` of a TLS endpoint, for the message of a failed
    /// handshake; `None` without TLS.
    tls_peer: Option<Arc<str>>,
    /// With TLS, each channel's [`TlsFailureSlot`], index for index;
    /// empty without.
    tls_slots: Vec<Arc<TlsFailureSlot>>,
}

impl GrpcTransport {
    /// `connections` lazily connected channels to `endpoint` (an `http://`
    /// URI, or an `https://` one with `tls`). Must be called inside the
    /// engine's runtime.
    ///
    /// # Errors
    ///
    /// A message when tonic refuses the endpoint.
    pub(crate) fn new(
        endpoint: &str,
        connections: usize,
        headers: HeaderMap,
        connect_timeout: Duration,
        tls: Option<&ClientTls>,
    ) -> Result<Self, String> {
        let url = endpoint.to_owned();
        let uri: http::Uri = endpoint.parse().map_err(|e| error_chain(&e))?;
        let tls_peer = tls.map(|_| Arc::from(uri.authority().map_or("", |a| a.as_str())));
        // With TLS, tonic sees `http://` and the `https` scheme only as the
        // origin; `TlsConnector` (in `tls`) says why.
        let (target, origin) = match tls {
            Some(_) => {
                let mut parts = uri.clone().into_parts();
                parts.scheme = Some(http::uri::Scheme::HTTP);
                let plain = http::Uri::from_parts(parts).map_err(|e| error_chain(&e))?;
                (plain, Some(uri))
            }
            None => (uri, None),
        };
        let mut endpoint = Endpoint::from(target)
            .user_agent(USER_AGENT)
            .map_err(|e| error_chain(&e))?
            .tcp_nodelay(true)
            .connect_timeout(connect_timeout)
            .http2_keep_alive_interval(Duration::from_secs(30))
            .keep_alive_timeout(Duration::from_secs(10));
        if let Some(origin) = origin {
            endpoint = endpoint.origin(origin);
        }
        let connections = connections.max(1);
        let (channels, tls_slots) = match tls {
            None => (
                (0..connections).map(|_| endpoint.connect_lazy()).collect(),
                Vec::new(),
            ),
            Some(tls) => (0..connections)
                .map(|_| {
                    // What tonic's own connector sets from the endpoint.
                    let mut tcp = HttpConnector::new();
                    tcp.enforce_http(false);
                    tcp.set_nodelay(true);
                    tcp.set_connect_timeout(Some(connect_timeout));
                    let slot = Arc::new(TlsFailureSlot::default());
                    let connector = tls.grpc_connector(tcp, connect_timeout, Arc::clone(&slot));
                    (endpoint.connect_with_connector_lazy(connector), slot)
                })
                .unzip(),
        };
        Ok(Self {
            channels,
            next: AtomicUsize::new(0),
            endpoint: url,
            headers,
            tls_peer,
            tls_slots,
        })
    }
}

impl Transport for GrpcTransport {
    fn export(&self, request: ExportRequest) -> ExportFuture {
        // Relaxed: any spread over the channels will do.
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.channels.len();
        let mut channel = self.channels[i].clone();
        let http_request = build_request(&request, &self.headers);
        let tls = self
            .tls_peer
            .clone()
            .zip(self.tls_slots.get(i).map(Arc::clone));
        Box::pin(async move {
            let http_request = http_request?;
            let failed = |e: &(dyn std::error::Error + 'static)| match &tls {
                Some((peer, slot)) => {
                    tls_failure(e, peer, Some(slot)).unwrap_or_else(|| unavailable(e))
                }
                None => unavailable(e),
            };
            std::future::poll_fn(|cx| GrpcService::poll_ready(&mut channel, cx))
                .await
                .map_err(|e| failed(&e))?;
            let response = GrpcService::call(&mut channel, http_request)
                .await
                .map_err(|e| failed(&e))?;
            if let Some((_, slot)) = &tls {
                // An answer: the connection works (again).
                slot.clear();
            }
            read_response(response).await
        })
    }

    fn endpoint(&self) -> Option<&str> {
        Some(&self.endpoint)
    }
}

fn unavailable(e: &(dyn std::error::Error + 'static)) -> ExportError {
    ExportError::new(FailureKind::Unavailable, error_chain(e))
}

fn build_request(
    request: &ExportRequest,
    headers: &HeaderMap,
) -> Result<http::Request<tonic::body::Body>, ExportError> {
    let compressed = request.compression != Compression::None;
    let Ok(len) = u32::try_from(request.body.len()) else {
        return Err(ExportError::new(
            FailureKind::Rejected,
            format!(
                "a {} byte message does not fit gRPC's prefix",
                request.body.len()
            ),
        ));
    };
    let mut prefix = [0u8; 5];
    prefix[0] = u8::from(compressed);
    prefix[1..].copy_from_slice(&len.to_be_bytes());
    let body = MessageBody {
        chunks: [
            Some(Bytes::copy_from_slice(&prefix)),
            Some(request.body.clone()),
        ],
    };
    let mut http_request = http::Request::new(tonic::body::Body::new(body));
    *http_request.method_mut() = http::Method::POST;
    *http_request.uri_mut() = http::Uri::from_static(request.signal.grpc_path());
    *http_request.version_mut() = http::Version::HTTP_2;
    let h = http_request.headers_mut();
    h.clone_from(headers);
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
    h.insert(header::TE, HeaderValue::from_static("trailers"));
    if compressed {
        h.insert(
            "grpc-encoding",
            HeaderValue::from_static(request.compression.as_str()),
        );
    }
    Ok(http_request)
}

/// The request body: the message prefix, then the message, as two chunks.
struct MessageBody {
    chunks: [Option<Bytes>; 2],
}

impl http_body::Body for MessageBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        let next = self.chunks.iter_mut().find_map(Option::take);
        Poll::Ready(next.map(|b| Ok(http_body::Frame::data(b))))
    }

    fn is_end_stream(&self) -> bool {
        self.chunks.iter().all(Option::is_none)
    }

    fn size_hint(&self) -> http_body::SizeHint {
        let n = self.chunks.iter().flatten().map(Bytes::len).sum::<usize>();
        http_body::SizeHint::with_exact(n as u64)
    }
}

/// Reads a unary gRPC answer: its status (from the trailers, or the
/// headers of a trailers-only answer) and its one message.
async fn read_response(
    response: http::Response<tonic::body::Body>,
) -> Result<ExportResponse, ExportError> {
    let (parts, body) = response.into_parts();
    if parts.status != http::StatusCode::OK {
        // Not a gRPC answer (a proxy's, say): classify by HTTP status.
        let e = super::http_error(
            parts.status.as_u16(),
            &parts.headers,
            format!("HTTP {} instead of a gRPC answer", parts.status),
        );
        return Err(e);
    }
    if let Some(e) = status_error(&parts.headers)? {
        return Err(e);
    }
    let collected = read_body(body).await?;
    let trailers = collected.trailers().cloned().unwrap_or_default();
    let data = collected.to_bytes();
    match status_error(&trailers)? {
        Some(e) => Err(e),
        None if !trailers.contains_key("grpc-status") => Err(ExportError::new(
            FailureKind::Protocol,
            "the answer has no grpc-status",
        )),
        None => decode_message(data, &parts.headers),
    }
}

/// The error a `grpc-status` header or trailer names, if any; `Ok(None)`
/// for status 0 or no status at all.
fn status_error(headers: &HeaderMap) -> Result<Option<ExportError>, ExportError> {
    let Some(status) = headers.get("grpc-status") else {
        return Ok(None);
    };
    let code: i32 = status
        .to_str()
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .ok_or_else(|| {
            ExportError::new(
                FailureKind::Protocol,
                format!(
                    "grpc-status {:?} is not a number",
                    excerpt(status.as_bytes())
                ),
            )
        })?;
    if code == 0 {
        return Ok(None);
    }
    let message = headers
        .get("grpc-message")
        .map(|m| percent_decode(m.as_bytes()))
        .unwrap_or_default();
    let retry_info = headers
        .get("grpc-status-details-bin")
        .and_then(|details| retry::grpc_retry_info(details.as_bytes()));
    let retry = retry::decide(
        retry::grpc_code_retryable(code, retry_info.is_some()),
        retry_info,
    );
    let mut e = ExportError::new(
        grpc_code_kind(code),
        format!("gRPC status {code}: {message}"),
    )
    .with_retry(retry);
    e.grpc_code = Some(code);
    Ok(Some(e))
}

/// The answer's message: one length-prefixed `Export*ServiceResponse`,
/// possibly compressed with the answer's `grpc-encoding`.
fn decode_message(mut data: Bytes, headers: &HeaderMap) -> Result<ExportResponse, ExportError> {
    if data.is_empty() {
        return Ok(ExportResponse::accepted());
    }
    let bad =
        |what: &str| ExportError::new(FailureKind::Protocol, format!("answer message {what}"));
    if data.len() < 5 {
        return Err(bad("shorter than its prefix"));
    }
    let flag = data.get_u8();
    let len = data.get_u32() as usize;
    if len != data.len() {
        return Err(bad("length disagrees with its prefix"));
    }
    match flag {
        0 => decode_response(&data),
        1 => {
            let encoding = headers.get("grpc-encoding").map(HeaderValue::as_bytes);
            let mut plain = Vec::new();
            let read = match encoding {
                Some(b"gzip") => flate2::read::GzDecoder::new(&data[..])
                    .take(MAX_RESPONSE_BYTES as u64)
                    .read_to_end(&mut plain),
                Some(b"zstd") => zstd::stream::read::Decoder::new(&data[..])
                    .and_then(|d| d.take(MAX_RESPONSE_BYTES as u64).read_to_end(&mut plain)),
                _ => return Err(bad("compressed with an encoding not offered")),
            };
            read.map_err(|e| bad(&format!("does not decompress: {e}")))?;
            decode_response(&plain)
        }
        _ => Err(bad("has an unknown flag")),
    }
}

/// `grpc-message` is percent-encoded (gRPC over HTTP/2, "Responses").
fn percent_decode(raw: &[u8]) -> String {
    let hex = |b: Option<&u8>| b.and_then(|&b| (b as char).to_digit(16));
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        if raw[i] == b'%'
            && let (Some(h), Some(l)) = (hex(raw.get(i + 1)), hex(raw.get(i + 2)))
        {
            out.push((h * 16 + l) as u8);
            i += 3;
            continue;
        }
        out.push(raw[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_message_is_percent_decoded_leniently() {
        assert_eq!(percent_decode(b"bad%20data%3A x"), "bad data: x");
        assert_eq!(percent_decode(b"100%"), "100%");
        assert_eq!(percent_decode(b"%zz%4"), "%zz%4");
    }

    #[test]
    fn status_headers_become_errors() {
        let mut h = HeaderMap::new();
        assert!(status_error(&h).unwrap().is_none());
        h.insert("grpc-status", HeaderValue::from_static("14"));
        h.insert("grpc-message", HeaderValue::from_static("down%21"));
        let e = status_error(&h).unwrap().unwrap();
        assert_eq!((e.kind, e.grpc_code), (FailureKind::Unavailable, Some(14)));
        assert!(e.message.contains("down!"));
        h.insert("grpc-status", HeaderValue::from_static("x"));
        assert_eq!(status_error(&h).unwrap_err().kind, FailureKind::Protocol);
    }

    #[test]
    fn answer_messages_decode_or_fail_cleanly() {
        let h = HeaderMap::new();
        assert_eq!(
            decode_message(Bytes::new(), &h).unwrap(),
            ExportResponse::accepted()
        );
        let ok = Bytes::from_static(&[0, 0, 0, 0, 0]);
        assert_eq!(decode_message(ok, &h).unwrap(), ExportResponse::accepted());
        for bad in [
            &[0u8, 0, 0][..],
            &[0, 0, 0, 0, 9, 1],
            &[7, 0, 0, 0, 0],
            &[1, 0, 0, 0, 0],
        ] {
            let e = decode_message(Bytes::copy_from_slice(bad), &h).unwrap_err();
            assert_eq!(e.kind, FailureKind::Protocol, "{bad:?}");
        }
    }
}
