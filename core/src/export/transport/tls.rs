//! TLS for `https://` endpoints: rustls, never OpenSSL.
//!
//! [`ClientTls::load`] reads the configured PEM files once, when the engine
//! is built, so a missing or malformed file is a build error naming the
//! file, never an export failure. It holds one rustls `ClientConfig` per
//! ALPN setting (`h2` for gRPC, `http/1.1` for OTLP/HTTP, whose client
//! speaks HTTP/1.1 only), built on the same roots and client identity, and
//! both transports connect through one [`TlsConnector`]: hyper-rustls'
//! connector around hyper-util's TCP connector. One TLS path for both.
//!
//! Invariants:
//! - the `ring` provider is named explicitly, so otlpx neither needs nor
//!   touches the process-wide default provider an application may (or may
//!   not) have installed, and cannot panic over it;
//! - the roots are the system's unless a CA file is given, then only that
//!   file's certificates (as `OTEL_EXPORTER_OTLP_CERTIFICATE` means);
//! - a client identity is both a certificate chain and its key, checked to
//!   match, or nothing;
//! - plain `http://` endpoints never reach this module.
//!
//! A failed handshake is classified [`FailureKind::Tls`] by
//! [`tls_failure`], which finds the `rustls::Error` among the causes of a
//! transport error, or, over gRPC, in the [`TlsFailureSlot`] where the
//! connection's stream ([`NotingStream`]) noted it, as HTTP/2 does not
//! pass it on.

use super::ExportError;
use crate::config::TlsFiles;
use crate::telemetry::FailureKind;
use http::Uri;
use http::uri::Scheme;
use hyper::rt;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector};
use rustls::ClientConfig;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::error::Error;
use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

/// ALPN protocol of gRPC: HTTP/2, which gRPC servers require.
const ALPN_H2: &[u8] = b"h2";

/// ALPN protocol of the OTLP/HTTP client, which speaks HTTP/1.1 only:
/// offering `h2` too would let a server pick a protocol the client cannot
/// speak.
const ALPN_HTTP1: &[u8] = b"http/1.1";

/// How deep the walks over an error's causes go; real chains are under ten
/// deep, and the bound keeps a pathological one from looping.
const MAX_CAUSE_DEPTH: usize = 32;

/// A client TLS configuration, ready for either transport.
#[derive(Clone, Debug)]
pub(crate) struct ClientTls {
    /// ALPN `h2`.
    grpc: Arc<ClientConfig>,
    /// ALPN `http/1.1`.
    http: Arc<ClientConfig>,
}

impl ClientTls {
    /// Loads the roots (system roots unless a CA file is given) and the
    /// client identity (both files, or neither).
    ///
    /// Errors name the file and what is wrong with it.
    pub(crate) fn load(files: &TlsFiles) -> Result<Self, String> {
        // Checked before any file is read: a configuration mistake, whatever
        // the files hold.
        let identity_files = match (&files.client_certificate, &files.client_key) {
            (Some(certificate), Some(key)) => Some((certificate, key)),
            (None, None) => None,
            (Some(certificate), None) => {
                return Err(format!(
                    "client certificate {} given without a client key",
                    certificate.display()
                ));
            }
            (None, Some(key)) => {
                return Err(format!(
                    "client key {} given without a client certificate",
                    key.display()
                ));
            }
        };

        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let roots = match &files.ca_certificate {
            Some(path) => file_roots(path)?,
            None => system_roots()?,
        };
        let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("the ring provider refuses TLS 1.2 and 1.3: {e}"))?
            .with_root_certificates(roots);
        let config = match identity_files {
            None => builder.with_no_client_auth(),
            Some((certificate_path, key_path)) => {
                let chain = read_certificates(certificate_path)?;
                let key = read_key(key_path, &provider)?;
                builder.with_client_auth_cert(chain, key).map_err(|e| {
                    format!(
                        "client certificate {} and client key {} do not go together: {e}",
                        certificate_path.display(),
                        key_path.display()
                    )
                })?
            }
        };
        let with_alpn = |protocol: &[u8]| {
            let mut config = config.clone();
            config.alpn_protocols = vec![protocol.to_vec()];
            Arc::new(config)
        };
        Ok(Self {
            grpc: with_alpn(ALPN_H2),
            http: with_alpn(ALPN_HTTP1),
        })
    }

    /// The TLS connector of the OTLP/HTTP client around `tcp` (whose
    /// `enforce_http` must be off, as the URLs are `https://`), giving up
    /// on a connection (TCP and handshake) after `connect_timeout`.
    pub(crate) fn http_connector(
        &self,
        tcp: HttpConnector,
        connect_timeout: Duration,
    ) -> TlsConnector {
        TlsConnector::new(tcp, &self.http, connect_timeout, None)
    }

    /// The TLS connector of a gRPC channel around `tcp` (whose
    /// `enforce_http` must be off), giving up on a connection after
    /// `connect_timeout`, noting TLS failures in `slot`.
    pub(crate) fn grpc_connector(
        &self,
        tcp: HttpConnector,
        connect_timeout: Duration,
        slot: Arc<TlsFailureSlot>,
    ) -> TlsConnector {
        TlsConnector::new(tcp, &self.grpc, connect_timeout, Some(slot))
    }
}

/// A TLS connector: TCP, then the rustls handshake (hyper-rustls), on a
/// [`NotingStream`]. Always TLS, whatever the scheme of the URI it is
/// given: it never sends anything in clear. The connect timeout bounds
/// TCP and handshake together, as a server that accepts and then says
/// nothing would otherwise hold a connection until the export timeout.
///
/// Why the scheme is put back: a gRPC channel's endpoint is given to tonic
/// as `http://`, with the `https` scheme only as its origin (so requests
/// still carry `:scheme: https`). Should tonic be built with one of its
/// own TLS features (Cargo unifies features: an application using tonic
/// with TLS would do it), tonic would refuse an `https://` endpoint that
/// has no TLS settings of tonic's before this connector could run.
#[derive(Clone, Debug)]
pub(crate) struct TlsConnector {
    inner: HttpsConnector<HttpConnector>,
    connect_timeout: Duration,
    /// gRPC's; see [`TlsFailureSlot`].
    slot: Option<Arc<TlsFailureSlot>>,
}

type HttpsStream = <HttpsConnector<HttpConnector> as tower_service::Service<Uri>>::Response;
type BoxError = Box<dyn Error + Send + Sync>;

impl TlsConnector {
    fn new(
        tcp: HttpConnector,
        config: &Arc<ClientConfig>,
        connect_timeout: Duration,
        slot: Option<Arc<TlsFailureSlot>>,
    ) -> Self {
        // Built directly rather than through hyper-rustls' builder, which
        // insists on setting ALPN itself (and to nothing for HTTP/1.1).
        let mut inner = HttpsConnector::from((tcp, Arc::clone(config)));
        inner.enforce_https();
        Self {
            inner,
            connect_timeout,
            slot,
        }
    }
}

impl tower_service::Service<Uri> for TlsConnector {
    type Response = NotingStream<HttpsStream>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let mut parts = uri.into_parts();
        parts.scheme = Some(Scheme::HTTPS);
        let connecting = match Uri::from_parts(parts) {
            Ok(uri) => self.inner.call(uri),
            Err(e) => return Box::pin(std::future::ready(Err(e.into()))),
        };
        let slot = self.slot.clone();
        let timeout = self.connect_timeout;
        Box::pin(async move {
            let stream = tokio::time::timeout(timeout, connecting)
                .await
                .map_err(|_| {
                    std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        format!("TCP connection and TLS handshake took over {timeout:?}"),
                    )
                })??;
            Ok(NotingStream::new(stream, slot))
        })
    }
}

/// The TLS failure that ended a gRPC channel's last connection, until the
/// channel gets an answer again.
///
/// In TLS 1.3 a server checks the client's certificate after the client
/// has finished its side of the handshake, so a refused (or missing)
/// client certificate shows as an alert on the connection's first read,
/// inside HTTP/2. h2 passes an I/O error on as text only, and the other
/// requests on the connection see only "connection closed": the
/// `rustls::Error` is gone from their errors. The connection's stream
/// ([`NotingStream`]) notes it here as it passes, so those requests can
/// still be counted as TLS failures.
///
/// Written when a connection fails (rare), cleared by the transport when
/// an answer arrives; the flag keeps that clearing to one `Relaxed` load
/// on the hot path while nothing is noted.
#[derive(Debug, Default)]
pub(crate) struct TlsFailureSlot {
    /// Whether `failure` holds something; written only under the mutex,
    /// so the two always agree once it is taken. Relaxed: the load outside
    /// the mutex only spares taking it, and a failure noted concurrently
    /// with an answer that misses it is newer than the answer anyway.
    noted: AtomicBool,
    failure: Mutex<Option<Arc<str>>>,
}

impl TlsFailureSlot {
    /// Notes `e` if TLS caused it.
    fn note(&self, e: &std::io::Error) {
        if let Some(tls) = rustls_cause(e) {
            let mut failure = self.lock();
            *failure = Some(Arc::from(describe(tls)));
            self.noted.store(true, Ordering::Relaxed);
        }
    }

    /// Forgets the failure: the channel's connection works again.
    pub(crate) fn clear(&self) {
        if self.noted.load(Ordering::Relaxed) {
            let mut failure = self.lock();
            *failure = None;
            self.noted.store(false, Ordering::Relaxed);
        }
    }

    fn get(&self) -> Option<Arc<str>> {
        self.lock().clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Arc<str>>> {
        // Whoever panicked left a valid `Option`.
        self.failure.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Reads [`NotingStream`] makes after a failed write to find why the peer
/// closed: one usually suffices (the alert), a few allow for data before it.
const LAST_WORDS_READS: usize = 4;

/// Times a failed write waits for the peer's last words to be readable.
/// Once a write has failed the socket is closed or reset, so the reactor
/// soon reports it readable (data, end or error): one wait is the norm,
/// and the bound only keeps a surprise from holding the error forever.
const LAST_WORDS_WAITS: u8 = 8;

/// A connection's stream, watching its errors for TLS ones.
///
/// - A read that fails of TLS notes it in the slot (gRPC's).
/// - A write that fails (a broken pipe, a reset) is often the peer closing
///   after a TLS alert the client has not read yet: the stream then reads
///   what the peer sent last (waiting, if need be, until the reactor says
///   it is readable, with the write's error held back) and, if it is a TLS
///   error, notes it and returns it instead of the write's error, so that
///   it reaches the request's error (HTTP/1.1) and the slot (gRPC). A
///   connection that has failed has no other use for those bytes.
#[derive(Debug)]
pub(crate) struct NotingStream<S> {
    inner: S,
    slot: Option<Arc<TlsFailureSlot>>,
    /// A write's error, held back while the peer's last words are awaited.
    failed_write: Option<std::io::Error>,
    /// Waits so far for the last words (at most [`LAST_WORDS_WAITS`]).
    waits: u8,
}

/// What the peer sent before closing.
enum LastWords {
    /// A TLS error: an alert, or bytes that are not TLS.
    Tls(std::io::Error),
    /// Nothing that says why.
    Nothing,
    /// Nothing readable yet; the read's waker is registered.
    NotYet,
}

impl<S: rt::Read + Unpin> NotingStream<S> {
    fn new(inner: S, slot: Option<Arc<TlsFailureSlot>>) -> Self {
        Self {
            inner,
            slot,
            failed_write: None,
            waits: 0,
        }
    }

    fn note(&self, e: &std::io::Error) {
        if let Some(slot) = &self.slot {
            slot.note(e);
        }
    }

    /// `poll` of a write (or flush), checked for a failure.
    fn written<T>(
        &mut self,
        cx: &mut Context<'_>,
        poll: Poll<std::io::Result<T>>,
    ) -> Poll<std::io::Result<T>> {
        match poll {
            Poll::Ready(Err(e)) => self.write_failed(cx, e),
            poll => poll,
        }
    }

    /// The error of a failed write: a TLS error the peer sent last in
    /// place of `e`, or `e`; pending while the last words may still come.
    fn write_failed<T>(
        &mut self,
        cx: &mut Context<'_>,
        e: std::io::Error,
    ) -> Poll<std::io::Result<T>> {
        let e = match self.last_words(cx) {
            LastWords::Tls(tls) => tls,
            LastWords::NotYet if self.waits < LAST_WORDS_WAITS => {
                self.waits += 1;
                self.failed_write = Some(e);
                return Poll::Pending;
            }
            LastWords::NotYet | LastWords::Nothing => e,
        };
        self.note(&e);
        Poll::Ready(Err(e))
    }

    /// Reads what the peer sent before closing, looking for a TLS error.
    fn last_words(&mut self, cx: &mut Context<'_>) -> LastWords {
        let mut scratch = [0u8; 512];
        for _ in 0..LAST_WORDS_READS {
            let mut buf = rt::ReadBuf::new(&mut scratch);
            match Pin::new(&mut self.inner).poll_read(cx, buf.unfilled()) {
                Poll::Ready(Ok(())) if !buf.filled().is_empty() => {}
                Poll::Ready(Ok(())) => return LastWords::Nothing,
                Poll::Ready(Err(e)) => {
                    return match rustls_cause(&e) {
                        Some(tls) => LastWords::Tls(std::io::Error::new(
                            std::io::ErrorKind::InvalidData,
                            tls.clone(),
                        )),
                        None => LastWords::Nothing,
                    };
                }
                Poll::Pending => return LastWords::NotYet,
            }
        }
        LastWords::Nothing
    }
}

impl<S: rt::Read + Unpin> rt::Read for NotingStream<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: rt::ReadBufCursor<'_>,
    ) -> Poll<std::io::Result<()>> {
        let poll = Pin::new(&mut self.inner).poll_read(cx, buf);
        if let Poll::Ready(Err(e)) = &poll {
            self.note(e);
        }
        poll
    }
}

impl<S: rt::Read + rt::Write + Unpin> rt::Write for NotingStream<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        if let Some(e) = self.failed_write.take() {
            return self.write_failed(cx, e);
        }
        let poll = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.written(cx, poll)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        if let Some(e) = self.failed_write.take() {
            return self.write_failed(cx, e);
        }
        let poll = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.written(cx, poll)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        if let Some(e) = self.failed_write.take() {
            return self.write_failed(cx, e);
        }
        let poll = Pin::new(&mut self.inner).poll_flush(cx);
        self.written(cx, poll)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        // Closing is what a connection does once it has failed: its errors
        // say nothing new.
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

impl<S: Connection> Connection for NotingStream<S> {
    fn connected(&self) -> Connected {
        self.inner.connected()
    }
}

/// The CA certificates of a PEM file, as the only roots.
fn file_roots(path: &Path) -> Result<rustls::RootCertStore, String> {
    let mut roots = rustls::RootCertStore::empty();
    for (i, certificate) in read_certificates(path)?.into_iter().enumerate() {
        roots.add(certificate).map_err(|e| {
            format!(
                "CA certificate {} (certificate {} in it) is not usable: {e}",
                path.display(),
                i + 1
            )
        })?;
    }
    Ok(roots)
}

/// The system's trusted roots. Unreadable ones are skipped, as a browser
/// would; none at all is an error, since no handshake could then succeed.
fn system_roots() -> Result<rustls::RootCertStore, String> {
    let found = rustls_native_certs::load_native_certs();
    let mut roots = rustls::RootCertStore::empty();
    roots.add_parsable_certificates(found.certs);
    if roots.is_empty() {
        let why: Vec<String> = found.errors.iter().map(ToString::to_string).collect();
        return Err(format!(
            "no trusted root certificates found on this system{}; name a CA certificate file",
            if why.is_empty() {
                String::new()
            } else {
                format!(" ({})", why.join("; "))
            }
        ));
    }
    Ok(roots)
}

/// Reads a PEM file, naming it in the error.
fn read_file(path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
}

/// Every certificate of a PEM file, in order; at least one.
fn read_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let bytes = read_file(path)?;
    let certificates = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{} is not valid PEM: {e}", path.display()))?;
    if certificates.is_empty() {
        return Err(format!(
            "{} holds no certificate (no PEM \"BEGIN CERTIFICATE\" section)",
            path.display()
        ));
    }
    Ok(certificates)
}

/// The first private key of a PEM file (PKCS#8, PKCS#1 or SEC1), checked
/// to be one the provider can sign with.
fn read_key(path: &Path, provider: &CryptoProvider) -> Result<PrivateKeyDer<'static>, String> {
    let bytes = read_file(path)?;
    let key = PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| match e {
        pem::Error::NoItemsFound => format!(
            "{} holds no private key (no PEM \"BEGIN PRIVATE KEY\", \"BEGIN RSA PRIVATE KEY\" or \"BEGIN EC PRIVATE KEY\" section)",
            path.display()
        ),
        e => format!("{} is not valid PEM: {e}", path.display()),
    })?;
    // Loaded here only to name the file in the error; rustls loads it again
    // with the certificate.
    provider
        .key_provider
        .load_private_key(key.clone_key())
        .map_err(|e| format!("the private key in {} is not usable: {e}", path.display()))?;
    Ok(key)
}

/// The [`FailureKind::Tls`] error for a transport error `e` with `peer`
/// (`host:port`) when TLS caused it; `None` when it did not.
///
/// TLS caused it when a `rustls::Error` is among its causes, or, for a
/// gRPC request that failed on an established connection (not while
/// connecting, which reports its own causes), when the channel's `slot`
/// holds the TLS failure that ended the connection.
pub(crate) fn tls_failure(
    e: &(dyn Error + 'static),
    peer: &str,
    slot: Option<&TlsFailureSlot>,
) -> Option<ExportError> {
    let cause: Arc<str> = match rustls_cause(e) {
        Some(tls) => Arc::from(describe(tls)),
        None if while_connecting(e) => return None,
        None => slot?.get()?,
    };
    Some(ExportError::new(
        FailureKind::Tls,
        format!("TLS handshake with {peer} failed: {cause}"),
    ))
}

/// The text of a TLS failure. A record that does not parse as TLS
/// (rustls: "received corrupt message", `InvalidContentType` and the
/// like) is most often a server answering in plaintext, an `https://` (or
/// scheme-less, not `insecure`) endpoint that is plain HTTP: say so.
fn describe(tls: &rustls::Error) -> String {
    match tls {
        rustls::Error::InvalidMessage(_) => format!(
            "{tls}: the server's answer is not TLS; is this endpoint plain http://? \
             (write http://, or set insecure for an endpoint without a scheme)"
        ),
        _ => tls.to_string(),
    }
}

/// Whether `e` is a failure to connect (tonic's connect error, or the
/// connect timeout), rather than one on an established connection.
fn while_connecting(e: &(dyn Error + 'static)) -> bool {
    causes(e).take(MAX_CAUSE_DEPTH).any(|e| {
        e.is::<tonic::ConnectError>()
            || e.downcast_ref::<std::io::Error>()
                .is_some_and(|io| io.kind() == std::io::ErrorKind::TimedOut)
    })
}

/// `e` and its causes, looking inside `io::Error`s: `io::Error::source`
/// skips the error an `io::Error` wraps (it answers that error's own
/// source), and tokio-rustls and hyper-rustls both wrap rustls errors in
/// `io::Error`s.
fn causes<'a>(e: &'a (dyn Error + 'static)) -> impl Iterator<Item = &'a (dyn Error + 'static)> {
    std::iter::successors(Some(e), |&e| {
        e.downcast_ref::<std::io::Error>()
            .and_then(std::io::Error::get_ref)
            .map(|inner| inner as &(dyn Error + 'static))
            .or_else(|| e.source())
    })
}

/// The `rustls::Error` among the causes of `e`, if any.
fn rustls_cause<'a>(e: &'a (dyn Error + 'static)) -> Option<&'a rustls::Error> {
    causes(e)
        .take(MAX_CAUSE_DEPTH)
        .find_map(|e| e.downcast_ref::<rustls::Error>())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    /// A unique scratch directory, removed when dropped.
    struct Scratch(PathBuf);

    impl Scratch {
        fn new(name: &str) -> Self {
            let dir = std::env::temp_dir().join(format!(
                "otlpx-tls-unit-{name}-{}-{}",
                std::process::id(),
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap_or_default()
                    .as_nanos()
            ));
            std::fs::create_dir_all(&dir).unwrap();
            Self(dir)
        }

        fn file(&self, name: &str, contents: &str) -> PathBuf {
            let path = self.0.join(name);
            std::fs::write(&path, contents).unwrap();
            path
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn files(ca: Option<&Path>, cert: Option<&Path>, key: Option<&Path>) -> TlsFiles {
        TlsFiles {
            ca_certificate: ca.map(Path::to_path_buf),
            client_certificate: cert.map(Path::to_path_buf),
            client_key: key.map(Path::to_path_buf),
        }
    }

    fn load_err(files: &TlsFiles) -> String {
        ClientTls::load(files).expect_err("an error")
    }

    #[test]
    fn tls_missing_unreadable_and_empty_files_are_named() {
        let scratch = Scratch::new("files");
        let missing = scratch.0.join("missing.pem");
        let e = load_err(&files(Some(&missing), None, None));
        assert!(
            e.contains("cannot read") && e.contains("missing.pem"),
            "{e}"
        );

        let text = scratch.file("text.pem", "not a certificate\n");
        let e = load_err(&files(Some(&text), None, None));
        assert!(
            e.contains("text.pem") && e.contains("no certificate"),
            "{e}"
        );

        let broken = scratch.file(
            "broken.pem",
            "-----BEGIN CERTIFICATE-----\nAAAA\n", // no END line
        );
        let e = load_err(&files(Some(&broken), None, None));
        assert!(
            e.contains("broken.pem") && e.contains("not valid PEM"),
            "{e}"
        );

        // Valid PEM, but DER that is no certificate.
        let junk = scratch.file(
            "junk.pem",
            "-----BEGIN CERTIFICATE-----\nAAECAw==\n-----END CERTIFICATE-----\n",
        );
        let e = load_err(&files(Some(&junk), None, None));
        assert!(e.contains("junk.pem") && e.contains("not usable"), "{e}");
    }

    #[test]
    fn tls_a_client_certificate_needs_its_key_and_the_other_way_round() {
        let cert = Path::new("/nowhere/client.pem");
        let key = Path::new("/nowhere/client.key");
        let e = load_err(&files(None, Some(cert), None));
        assert!(
            e.contains("client.pem") && e.contains("without a client key"),
            "{e}"
        );
        let e = load_err(&files(None, None, Some(key)));
        assert!(
            e.contains("client.key") && e.contains("without a client certificate"),
            "{e}"
        );
    }

    #[test]
    fn tls_a_key_file_without_a_key_is_named() {
        let scratch = Scratch::new("key");
        let ca = scratch.file("ca.pem", "");
        let nokey = scratch.file("nokey.pem", "nothing here\n");
        // The CA file is read before the identity's: its error comes first.
        let e = load_err(&files(Some(&ca), Some(&nokey), Some(&nokey)));
        assert!(e.contains("ca.pem") && e.contains("no certificate"), "{e}");
        let e = read_key(&nokey, &rustls::crypto::ring::default_provider()).unwrap_err();
        assert!(
            e.contains("nokey.pem") && e.contains("no private key"),
            "{e}"
        );
        let bad = scratch.file(
            "bad.key",
            "-----BEGIN PRIVATE KEY-----\nAAECAw==\n-----END PRIVATE KEY-----\n",
        );
        let e = read_key(&bad, &rustls::crypto::ring::default_provider()).unwrap_err();
        assert!(e.contains("bad.key") && e.contains("not usable"), "{e}");
    }

    #[test]
    fn tls_a_server_that_never_answers_the_handshake_times_out_connecting() {
        use tower_service::Service;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        // No roots at all: the handshake never gets as far as checking.
        let config = Arc::new(
            ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_root_certificates(rustls::RootCertStore::empty())
                .with_no_client_auth(),
        );
        let tls = ClientTls {
            grpc: Arc::clone(&config),
            http: config,
        };
        // Accepts (the kernel does, from its backlog) and never answers.
        let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let uri: Uri = format!("https://{}", silent.local_addr().unwrap())
            .parse()
            .unwrap();
        let timeout = std::time::Duration::from_millis(200);
        let mut tcp = HttpConnector::new();
        tcp.enforce_http(false);
        let mut connector = tls.http_connector(tcp, timeout);
        let start = std::time::Instant::now();
        // Bounded here too, so that a connector without its own bound
        // fails the test instead of hanging it.
        let e = runtime
            .block_on(async { tokio::time::timeout(timeout * 10, connector.call(uri)).await })
            .expect("the connector gives up by itself")
            .expect_err("no handshake");
        let elapsed = start.elapsed();
        assert!(elapsed >= timeout && elapsed < timeout * 10, "{elapsed:?}");
        assert!(while_connecting(&*e), "{e}");
        assert!(tls_failure(&*e, "h:1", None).is_none(), "{e}");
    }

    #[test]
    fn tls_a_plaintext_answer_asks_whether_the_endpoint_is_plain_http() {
        let tls = rustls::Error::InvalidMessage(rustls::InvalidMessage::InvalidContentType);
        let io = std::io::Error::other(std::io::Error::new(std::io::ErrorKind::InvalidData, tls));
        let e = tls_failure(&io, "localhost:4317", None).expect("a TLS failure");
        assert_eq!(e.kind, FailureKind::Tls);
        assert!(
            e.message
                .starts_with("TLS handshake with localhost:4317 failed: received corrupt message")
                && e.message.contains("is this endpoint plain http://?"),
            "{}",
            e.message
        );
        // Through a channel's slot too.
        let slot = TlsFailureSlot::default();
        slot.note(&std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            rustls::Error::InvalidMessage(rustls::InvalidMessage::InvalidContentType),
        ));
        assert!(slot.get().unwrap().contains("plain http://?"));
        // Other failures say only what they are.
        let other = rustls::Error::InvalidCertificate(rustls::CertificateError::Expired);
        assert!(!describe(&other).contains("http://"));
    }

    #[test]
    fn tls_causes_are_found_inside_io_errors_and_boxes() {
        let tls = rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer);
        // As hyper-rustls reports it: an io::Error around tokio-rustls'
        // io::Error around the rustls error, boxed.
        let io = std::io::Error::other(std::io::Error::new(std::io::ErrorKind::InvalidData, tls));
        let boxed: Box<dyn Error + Send + Sync> = Box::new(io);
        let e = tls_failure(&*boxed, "localhost:4317", None).expect("a TLS failure");
        assert_eq!(e.kind, FailureKind::Tls);
        assert_eq!(
            e.message,
            "TLS handshake with localhost:4317 failed: invalid peer certificate: UnknownIssuer"
        );

        let refused = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        assert!(tls_failure(&refused, "localhost:4317", None).is_none());
    }

    #[test]
    fn tls_a_noted_failure_names_errors_that_lost_their_cause() {
        let slot = TlsFailureSlot::default();
        // What h2 hands the requests waiting on a connection that died.
        let closed = std::io::Error::new(std::io::ErrorKind::BrokenPipe, "connection closed");
        assert!(tls_failure(&closed, "h:1", Some(&slot)).is_none());

        // Not TLS: nothing noted.
        slot.note(&std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "reset",
        ));
        assert!(tls_failure(&closed, "h:1", Some(&slot)).is_none());

        // The alert as tokio-rustls reports it to the stream's reader.
        let alert = rustls::Error::AlertReceived(rustls::AlertDescription::CertificateRequired);
        slot.note(&std::io::Error::new(std::io::ErrorKind::InvalidData, alert));
        let e = tls_failure(&closed, "h:1", Some(&slot)).expect("a TLS failure");
        assert_eq!(e.kind, FailureKind::Tls);
        assert_eq!(
            e.message,
            "TLS handshake with h:1 failed: received fatal alert: CertificateRequired"
        );

        // Not for a failure to connect, which reports its own causes.
        let refused = tonic::ConnectError(Box::new(std::io::Error::new(
            std::io::ErrorKind::ConnectionRefused,
            "refused",
        )));
        assert!(tls_failure(&refused, "h:1", Some(&slot)).is_none());
        let timeout = std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timeout");
        assert!(tls_failure(&timeout, "h:1", Some(&slot)).is_none());

        // An answer: the connection works again.
        slot.clear();
        assert!(tls_failure(&closed, "h:1", Some(&slot)).is_none());
    }
}
