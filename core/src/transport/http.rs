//! OTLP/HTTP with binary protobuf: `POST <endpoint>` over hyper's pooled
//! keep-alive client (HTTP/1.1), answers read per the OTLP/HTTP
//! specification: a 2xx carries an `Export*ServiceResponse` (partial
//! success), an error status a `google.rpc.Status` when it can.
//!
//! With TLS (`https://`) the client connects through the rustls connector
//! of [`ClientTls`] (ALPN `http/1.1`) around the same TCP connector; plain
//! `http://` keeps a client without any TLS in it. A failed handshake is a
//! [`FailureKind::Tls`] failure.

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

/// OTLP/HTTP to one URL.
pub(crate) struct HttpTransport {
    client: HttpClient,
    uri: Uri,
    headers: HeaderMap,
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
    /// A pooled client posting to `uri` (the full signal URL), keeping up
    /// to `connections` idle connections. Must be called inside the
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
        let mut builder = Client::builder(TokioExecutor::new());
        builder
            .pool_max_idle_per_host(connections.max(1))
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
            uri,
            headers,
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
        let (response, tls_peer): (ResponseFuture, _) = match &self.client {
            HttpClient::Plain(client) => (client.request(http_request), None),
            HttpClient::Tls { client, peer } => {
                (client.request(http_request), Some(Arc::clone(peer)))
            }
        };
        Box::pin(async move {
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
}
