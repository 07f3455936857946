//! OTLP/HTTP with binary protobuf: `POST <endpoint>` over hyper's pooled
//! keep-alive client (HTTP/1.1), answers read per the OTLP/HTTP
//! specification: a 2xx carries an `Export*ServiceResponse` (partial
//! success), an error status a `google.rpc.Status` when it can.
//!
//! With TLS (`https://`) the client connects through the rustls connector
//! of [`ClientTls`] (ALPN `http/1.1`) around the same TCP connector; plain
//! `http://` keeps a client without any TLS in it. A failed handshake is a
//! [`FailureKind::Tls`] failure.
//!
//! # At most `connections` connections
//!
//! HTTP/1.1 carries one request at a time on a connection, and hyper's pool
//! opens a new connection for a request that finds none idle: its idle
//! bound caps only the connections kept between requests. So the transport
//! bounds requests instead: a request holds one of `connections` permits
//! from before it asks the pool for a connection until its answer has been
//! read (or it is abandoned), so at most `connections` requests are on the
//! wire at once and the pool never needs more connections than that. The
//! others wait for a permit, in order; the attempt timeout (the engine's)
//! counts that wait too, as it would a wait for a connection.
//!
//! The bound is on requests, not sockets: hyper puts a connection back in
//! its pool from a task of its own just after the answer is read, so a
//! request whose permit comes before that task runs could still start a
//! connection (the pool races a new connection against an idle one coming
//! back); the idle bound, also `connections`, then closes the spare.

use super::tls::{TlsConnector, tls_failure};
use super::{
    ClientTls, ExportError, ExportFuture, ExportRequest, RpcStatus, Transport, USER_AGENT,
    decode_response, error_chain, excerpt, read_body,
};
use crate::config::Compression;
use crate::telemetry::FailureKind;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Uri, header};
use http_body_util::Full;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::{Client, ResponseFuture};
use hyper_util::rt::TokioExecutor;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;

/// OTLP/HTTP to one URL.
pub(crate) struct HttpTransport {
    client: HttpClient,
    uri: Uri,
    /// `uri` as text, for [`Transport::endpoint`].
    endpoint: String,
    headers: HeaderMap,
    /// One permit per connection, held by a request until its answer has
    /// been read (see the module documentation). Never closed.
    permits: Arc<Semaphore>,
}

/// The pooled client, with TLS or without: two types, as hyper's client is
/// generic over its connector.
enum HttpClient {
    Plain(Client<HttpConnector, Full<Bytes>>),
    Tls {
        client: Client<TlsConnector, Full<Bytes>>,
        /// `host:port`, for the message of a failed handshake.
        peer: Arc<str>,
    },
}

impl HttpTransport {
    /// A pooled client posting to `uri` (the full signal URL) over at most
    /// `connections` connections (at least one). Must be called inside the
    /// engine's runtime.
    pub(crate) fn new(
        uri: Uri,
        connections: usize,
        headers: HeaderMap,
        connect_timeout: Duration,
        tls: Option<&ClientTls>,
    ) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(connect_timeout));
        connector.set_keepalive(Some(Duration::from_secs(60)));
        let connections = connections.max(1);
        let mut builder = Client::builder(TokioExecutor::new());
        builder
            .pool_max_idle_per_host(connections)
            .pool_idle_timeout(Duration::from_secs(90));
        let client = match tls {
            None => HttpClient::Plain(builder.build(connector)),
            Some(tls) => {
                // The TLS connector hands it `https://` URLs.
                connector.enforce_http(false);
                HttpClient::Tls {
                    client: builder.build(tls.http_connector(connector, connect_timeout)),
                    peer: Arc::from(uri.authority().map_or("", |a| a.as_str())),
                }
            }
        };
        Self {
            client,
            endpoint: uri.to_string(),
            uri,
            headers,
            permits: Arc::new(Semaphore::new(connections)),
        }
    }
}

impl Transport for HttpTransport {
    fn export(&self, request: ExportRequest) -> ExportFuture {
        let mut http_request = http::Request::new(Full::new(request.body));
        *http_request.method_mut() = http::Method::POST;
        *http_request.uri_mut() = self.uri.clone();
        let h = http_request.headers_mut();
        h.clone_from(&self.headers);
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/x-protobuf"),
        );
        h.insert(header::USER_AGENT, HeaderValue::from_static(USER_AGENT));
        if request.compression != Compression::None {
            h.insert(
                header::CONTENT_ENCODING,
                HeaderValue::from_static(request.compression.as_str()),
            );
        }
        // Lazy, as futures are: it asks the pool for a connection only
        // once polled, after the permit below.
        let (response, tls_peer): (ResponseFuture, _) = match &self.client {
            HttpClient::Plain(client) => (client.request(http_request), None),
            HttpClient::Tls { client, peer } => {
                (client.request(http_request), Some(Arc::clone(peer)))
            }
        };
        let permits = Arc::clone(&self.permits);
        Box::pin(async move {
            // Never closed, so this is always a permit; released when the
            // future ends (answer read) or is dropped (abandoned).
            let _permit = permits.acquire().await;
            let response = response.await.map_err(|e| {
                tls_peer
                    .and_then(|peer| tls_failure(&e, &peer, None))
                    .unwrap_or_else(|| ExportError::new(FailureKind::Unavailable, error_chain(&e)))
            })?;
            let (parts, body) = response.into_parts();
            let status = parts.status;
            let body = read_body(body).await?.to_bytes();
            if status.is_success() {
                // A success whose body says nothing we can read still
                // delivered the data: count it accepted.
                return Ok(decode_response(&body).unwrap_or_default());
            }
            let detail = match <RpcStatus as prost::Message>::decode(&body[..]) {
                Ok(s) if !s.message.is_empty() => s.message,
                _ => excerpt(&body),
            };
            Err(super::http_error(
                status.as_u16(),
                &parts.headers,
                format!("HTTP {status}: {detail}"),
            ))
        })
    }

    fn endpoint(&self) -> Option<&str> {
        Some(&self.endpoint)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::export::transport::{ExportResponse, Signal};
    use hyper::body::Incoming;
    use hyper_util::rt::TokioIo;
    use std::convert::Infallible;
    use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

    /// How long the test receiver takes to answer: long enough that every
    /// request is sent while the first ones still wait for theirs.
    const ANSWER_AFTER: Duration = Duration::from_millis(200);

    /// An OTLP/HTTP receiver that answers every request with an empty
    /// success after [`ANSWER_AFTER`]; returns its address and the count
    /// of connections it accepted.
    async fn slow_receiver() -> (std::net::SocketAddr, Arc<AtomicUsize>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = Arc::clone(&accepted);
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                // Relaxed: read after the requests were answered, which
                // orders it.
                count.fetch_add(1, Relaxed);
                let service = hyper::service::service_fn(|_: http::Request<Incoming>| async {
                    tokio::time::sleep(ANSWER_AFTER).await;
                    let mut response = http::Response::new(Full::new(Bytes::new()));
                    response.headers_mut().insert(
                        header::CONTENT_TYPE,
                        HeaderValue::from_static("application/x-protobuf"),
                    );
                    Ok::<_, Infallible>(response)
                });
                tokio::spawn(
                    hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service),
                );
            }
        });
        (addr, accepted)
    }

    #[test]
    fn http_concurrent_requests_share_at_most_connections_connections() {
        const CONNECTIONS: usize = 2;
        const REQUESTS: u32 = 16;
        // Two threads, so that requests and connections race for real.
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let (addr, accepted) = slow_receiver().await;
            let uri: Uri = format!("http://{addr}/v1/traces").parse().unwrap();
            let transport = HttpTransport::new(
                uri,
                CONNECTIONS,
                HeaderMap::new(),
                Duration::from_secs(5),
                None,
            );
            let start = std::time::Instant::now();
            let sending: Vec<_> = (0..REQUESTS)
                .map(|_| {
                    let request = ExportRequest::new(
                        Signal::Traces,
                        Bytes::from_static(b"spans"),
                        Compression::None,
                        1,
                    );
                    tokio::spawn(transport.export(request))
                })
                .collect();
            for sent in sending {
                assert_eq!(sent.await.unwrap().unwrap(), ExportResponse::accepted());
            }
            let elapsed = start.elapsed();
            assert!(
                accepted.load(Relaxed) <= CONNECTIONS,
                "{} connections for {REQUESTS} requests",
                accepted.load(Relaxed)
            );
            // Two at a time: eight answers in turn.
            let rounds = REQUESTS / CONNECTIONS as u32;
            assert!(elapsed >= ANSWER_AFTER * rounds, "{elapsed:?}");
        });
    }
}
