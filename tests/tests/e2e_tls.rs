//! End to end over TLS: the otlpx engine exporting to the embedded receiver
//! serving `https://`, over gRPC and over HTTP, with certificates made by
//! the test (rcgen) in a directory of its own.
//!
//! What must hold: with the right CA every span arrives exactly once and
//! the counts agree; with a CA that did not sign the server's certificate,
//! or without the client certificate a mutual-TLS receiver demands,
//! nothing arrives, the failures are counted as `tls`, the spans as
//! `dropped.export_failed`, the last error names the certificate problem,
//! and every recorded span is accounted for; and unusable certificate
//! files fail `build()` with an error naming the file, never a panic.

use otlpx::{Engine, EngineBuilder, Protocol};
use otlpx_bench::receiver::{Receiver, ReceiverConfig, ReceiverTls};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use std::path::{Path, PathBuf};
use std::time::Duration;

const PROTOCOLS: [Protocol; 2] = [Protocol::Grpc, Protocol::HttpProtobuf];

/// Spans per test and per request: several requests, so that a failure
/// on one connection and a success on another could not hide each other.
const SPANS: u64 = 1_000;
const BATCH_SPANS: usize = 250;

/// Bounds the flush of an engine whose every export fails fast.
const FLUSH: Duration = Duration::from_secs(30);

/// A CA, as PEM, able to sign more certificates.
struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl Ca {
    fn new(name: &str) -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let key = KeyPair::generate().expect("a CA key");
        Self {
            issuer: CertifiedIssuer::self_signed(params, key).expect("a CA certificate"),
        }
    }

    fn pem(&self) -> String {
        self.issuer.pem()
    }

    /// A certificate for `names` (DNS names or IP addresses) and its key,
    /// both PEM.
    fn sign(&self, names: &[&str], usage: ExtendedKeyUsagePurpose) -> (String, String) {
        let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let mut params = CertificateParams::new(names.clone()).expect("leaf params");
        params.distinguished_name.push(
            DnType::CommonName,
            names.first().cloned().unwrap_or_default(),
        );
        params.extended_key_usages = vec![usage];
        let key = KeyPair::generate().expect("a leaf key");
        let certificate = params.signed_by(&key, &self.issuer).expect("signed");
        (certificate.pem(), key.serialize_pem())
    }
}

/// The certificates of one test, as PEM files in a directory of their own
/// (removed when dropped) and as text for the receiver.
struct Pki {
    dir: PathBuf,
    /// The CA that signed the server's and the client's certificates.
    ca: PathBuf,
    /// A CA that signed nothing the test meets except `stranger_*`.
    other_ca: PathBuf,
    client_cert: PathBuf,
    client_key: PathBuf,
    /// A client identity the other CA signed.
    stranger_cert: PathBuf,
    stranger_key: PathBuf,
    ca_pem: String,
    server_cert_pem: String,
    server_key_pem: String,
    /// A server certificate of the right CA for another name only.
    misnamed_cert_pem: String,
    misnamed_key_pem: String,
}

impl Pki {
    fn new(test: &str) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "otlpx-e2e-tls-{test}-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default()
                .as_nanos()
        ));
        std::fs::create_dir_all(&dir).expect("a scratch directory");
        let ca = Ca::new("otlpx e2e CA");
        let other_ca = Ca::new("otlpx e2e unrelated CA");
        let (server_cert_pem, server_key_pem) = ca.sign(
            &["localhost", "127.0.0.1"],
            ExtendedKeyUsagePurpose::ServerAuth,
        );
        let (misnamed_cert_pem, misnamed_key_pem) =
            ca.sign(&["elsewhere.invalid"], ExtendedKeyUsagePurpose::ServerAuth);
        let (client_cert, client_key) = ca.sign(&["client"], ExtendedKeyUsagePurpose::ClientAuth);
        let (stranger_cert, stranger_key) =
            other_ca.sign(&["stranger"], ExtendedKeyUsagePurpose::ClientAuth);
        let write = |name: &str, contents: &str| {
            let path = dir.join(name);
            std::fs::write(&path, contents).expect("a PEM file written");
            path
        };
        Self {
            ca: write("ca.pem", &ca.pem()),
            other_ca: write("other-ca.pem", &other_ca.pem()),
            client_cert: write("client.pem", &client_cert),
            client_key: write("client.key", &client_key),
            stranger_cert: write("stranger.pem", &stranger_cert),
            stranger_key: write("stranger.key", &stranger_key),
            ca_pem: ca.pem(),
            server_cert_pem,
            server_key_pem,
            misnamed_cert_pem,
            misnamed_key_pem,
            dir,
        }
    }

    /// A file of the scratch directory holding `contents`.
    fn file(&self, name: &str, contents: &str) -> PathBuf {
        let path = self.dir.join(name);
        std::fs::write(&path, contents).expect("a file written");
        path
    }

    /// A receiver serving TLS with the server certificate; with
    /// `require_client_cert`, mutual TLS with clients of `ca`.
    fn receiver(&self, require_client_cert: bool) -> Receiver {
        Receiver::start(ReceiverConfig {
            tls: Some(ReceiverTls {
                cert_chain_pem: self.server_cert_pem.clone(),
                key_pem: self.server_key_pem.clone(),
                client_ca_pem: require_client_cert.then(|| self.ca_pem.clone()),
            }),
            ..ReceiverConfig::default()
        })
        .expect("the TLS receiver starts")
    }

    /// A TLS receiver whose certificate (of the right CA) names neither
    /// `localhost` nor 127.0.0.1.
    fn misnamed_receiver(&self) -> Receiver {
        Receiver::start(ReceiverConfig {
            tls: Some(ReceiverTls {
                cert_chain_pem: self.misnamed_cert_pem.clone(),
                key_pem: self.misnamed_key_pem.clone(),
                client_ca_pem: None,
            }),
            ..ReceiverConfig::default()
        })
        .expect("the TLS receiver starts")
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `https://localhost:<port>` of the receiver's server for `protocol`: the
/// name, not the address, as a deployment would use.
fn endpoint(receiver: &Receiver, protocol: Protocol) -> String {
    let port = match protocol {
        Protocol::Grpc => receiver.grpc_addr().port(),
        _ => receiver.http_addr().port(),
    };
    format!("https://localhost:{port}")
}

fn builder(receiver: &Receiver, protocol: Protocol) -> EngineBuilder {
    Engine::builder()
        .service_name("e2e-tls")
        .endpoint(endpoint(receiver, protocol))
        .protocol(protocol)
        .max_batch_spans(BATCH_SPANS)
}

/// Records [`SPANS`] spans and flushes them.
fn record_and_flush(engine: &Engine) -> Result<otlpx::FlushReport, otlpx::FlushError> {
    let tracer = engine.tracer("e2e-tls", "");
    for _ in 0..SPANS {
        tracer.start("op").end();
    }
    engine.flush(FLUSH)
}

/// Every span exported, exactly once, and counted so on both sides.
fn assert_delivered(engine: &Engine, receiver: &Receiver, label: &str) {
    let report = record_and_flush(engine).expect("flushed");
    assert_eq!(report.delivered, SPANS, "{label}");
    engine.shutdown(Duration::from_secs(10)).expect("shut down");
    let s = engine.stats();
    assert_eq!((s.recorded, s.exported), (SPANS, SPANS), "{label}");
    assert_eq!(s.dropped.total(), 0, "{label}: {:?}", s.dropped);
    assert_eq!(
        s.export.failures.total(),
        0,
        "{label}: {:?}",
        engine.last_export_error()
    );
    let counts = receiver.counts();
    assert_eq!(counts.spans, SPANS, "{label}");
    assert_eq!(counts.requests, s.export.requests, "{label}");
}

/// Nothing delivered, every failure a TLS one, every span accounted for as
/// failed; returns the last export error.
fn assert_refused(engine: &Engine, receiver: &Receiver, label: &str) -> String {
    // The flush says what happened: dropped, and why.
    match record_and_flush(engine) {
        Err(e @ otlpx::FlushError::Dropped { .. }) => {
            let text = e.to_string();
            assert!(
                text.contains(&format!("export_failed {SPANS}")) && text.contains("tls "),
                "{label}: {text}"
            );
        }
        other => panic!("{label}: the flush must fail naming the drops: {other:?}"),
    }
    let s = engine.stats();
    assert_eq!(s.exported, 0, "{label}");
    assert!(
        s.export.failures.tls >= 1,
        "{label}: {:?}",
        s.export.failures
    );
    assert_eq!(
        s.export.failures.total(),
        s.export.failures.tls,
        "{label}: every failure is a TLS one: {:?} ({:?})",
        s.export.failures,
        engine.last_export_error()
    );
    assert_eq!(s.dropped.export_failed, SPANS, "{label}");
    assert_eq!(
        s.recorded,
        s.exported + s.dropped.total() + s.in_flight + s.in_rings,
        "{label}"
    );
    let counts = receiver.counts();
    assert_eq!((counts.requests, counts.spans), (0, 0), "{label}");
    engine.last_export_error().expect("an error recorded")
}

#[test]
fn tls_with_the_servers_ca_delivers_every_span_once() {
    let pki = Pki::new("happy");
    for protocol in PROTOCOLS {
        let receiver = pki.receiver(false);
        let engine = builder(&receiver, protocol)
            .certificate(&pki.ca)
            .build()
            .expect("an engine");
        assert_delivered(&engine, &receiver, &format!("{protocol:?}"));
    }
}

/// By address: the certificate's IP address entry is what matches.
#[test]
fn tls_by_ip_address_delivers_every_span_once() {
    let pki = Pki::new("by-address");
    for protocol in PROTOCOLS {
        let receiver = pki.receiver(false);
        let endpoint = match protocol {
            Protocol::Grpc => receiver.grpc_endpoint(),
            _ => receiver.http_endpoint(),
        };
        assert!(endpoint.starts_with("https://127.0.0.1:"), "{endpoint}");
        let engine = builder(&receiver, protocol)
            .endpoint(endpoint)
            .certificate(&pki.ca)
            .build()
            .expect("an engine");
        assert_delivered(&engine, &receiver, &format!("{protocol:?}"));
    }
}

#[test]
fn tls_with_an_unrelated_ca_is_refused_and_counted() {
    let pki = Pki::new("wrong-ca");
    for protocol in PROTOCOLS {
        let receiver = pki.receiver(false);
        let engine = builder(&receiver, protocol)
            .certificate(&pki.other_ca)
            .build()
            .expect("an engine");
        let label = format!("{protocol:?}");
        let error = assert_refused(&engine, &receiver, &label);
        assert!(
            error.contains("TLS handshake with localhost:")
                && error.contains("invalid peer certificate")
                && error.contains("UnknownIssuer"),
            "{label}: {error}"
        );
    }
}

#[test]
fn tls_with_a_certificate_for_another_name_is_refused_and_counted() {
    let pki = Pki::new("misnamed");
    for protocol in PROTOCOLS {
        let receiver = pki.misnamed_receiver();
        let engine = builder(&receiver, protocol)
            .certificate(&pki.ca)
            .build()
            .expect("an engine");
        let label = format!("{protocol:?}");
        let error = assert_refused(&engine, &receiver, &label);
        assert!(
            error.contains("TLS handshake with localhost:")
                && error.contains("not valid for name \"localhost\""),
            "{label}: {error}"
        );
    }
}

#[test]
fn mutual_tls_delivers_with_the_client_certificate() {
    let pki = Pki::new("mtls");
    for protocol in PROTOCOLS {
        let receiver = pki.receiver(true);
        let engine = builder(&receiver, protocol)
            .certificate(&pki.ca)
            .client_certificate(&pki.client_cert)
            .client_key(&pki.client_key)
            .build()
            .expect("an engine");
        assert_delivered(&engine, &receiver, &format!("{protocol:?}"));
    }
}

#[test]
fn mutual_tls_refuses_a_client_without_a_certificate() {
    let pki = Pki::new("mtls-none");
    for protocol in PROTOCOLS {
        let receiver = pki.receiver(true);
        let engine = builder(&receiver, protocol)
            .certificate(&pki.ca)
            .build()
            .expect("an engine");
        let label = format!("{protocol:?}");
        let error = assert_refused(&engine, &receiver, &label);
        // TLS 1.3: the server's alert for a missing client certificate.
        assert!(
            error.contains("TLS handshake with localhost:")
                && error.contains("CertificateRequired"),
            "{label}: {error}"
        );
    }
}

#[test]
fn mutual_tls_refuses_a_client_certificate_from_another_ca() {
    let pki = Pki::new("mtls-stranger");
    for protocol in PROTOCOLS {
        let receiver = pki.receiver(true);
        let engine = builder(&receiver, protocol)
            .certificate(&pki.ca)
            .client_certificate(&pki.stranger_cert)
            .client_key(&pki.stranger_key)
            .build()
            .expect("an engine");
        let label = format!("{protocol:?}");
        let error = assert_refused(&engine, &receiver, &label);
        assert!(
            error.contains("TLS handshake with localhost:") && error.contains("alert"),
            "{label}: {error}"
        );
    }
}

/// The text of the error `build()` returns for an `https://` endpoint
/// configured by `configure`.
fn build_error(
    protocol: Protocol,
    configure: impl FnOnce(EngineBuilder) -> EngineBuilder,
) -> String {
    let builder = Engine::builder()
        .endpoint("https://localhost:4317")
        .protocol(protocol);
    match configure(builder).build() {
        Ok(_) => panic!("{protocol:?}: the engine built"),
        Err(e) => e.to_string(),
    }
}

fn assert_names(error: &str, path: &Path, problem: &str) {
    assert!(
        error.contains(&path.display().to_string()) && error.contains(problem),
        "wanted {} and {problem:?} in: {error}",
        path.display()
    );
}

#[test]
fn tls_files_that_cannot_serve_fail_the_build_naming_the_file() {
    let pki = Pki::new("build");
    let missing = pki.dir.join("missing.pem");
    let no_certificate = pki.file("no-certificate.pem", "no PEM here\n");
    for protocol in PROTOCOLS {
        let e = build_error(protocol, |b| b.certificate(&missing));
        assert_names(&e, &missing, "cannot read");

        let e = build_error(protocol, |b| b.certificate(&no_certificate));
        assert_names(&e, &no_certificate, "no certificate");

        let e = build_error(protocol, |b| {
            b.certificate(&pki.ca).client_certificate(&pki.client_cert)
        });
        assert_names(&e, &pki.client_cert, "client key");

        let e = build_error(protocol, |b| {
            b.certificate(&pki.ca).client_key(&pki.client_key)
        });
        assert_names(&e, &pki.client_key, "client certificate");

        // A certificate where the key should be.
        let e = build_error(protocol, |b| {
            b.certificate(&pki.ca)
                .client_certificate(&pki.client_cert)
                .client_key(&pki.client_cert)
        });
        assert_names(&e, &pki.client_cert, "no private key");

        // Someone else's key.
        let e = build_error(protocol, |b| {
            b.certificate(&pki.ca)
                .client_certificate(&pki.client_cert)
                .client_key(&pki.stranger_key)
        });
        assert_names(&e, &pki.stranger_key, "do not go together");
    }
}
