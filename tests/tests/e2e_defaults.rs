//! End to end: what an engine does with little or nothing configured.
//! With no endpoint it exports to the OpenTelemetry default
//! (`localhost:4317` over gRPC, `localhost:4318/v1/traces` over HTTP);
//! dropping the last handle with the receiver silent returns within the
//! shutdown timeout, not the export timeout; an `https://` endpoint that
//! answers in plaintext is explained as such.

mod common;

use otlpx::{Engine, Protocol};
use std::time::{Duration, Instant};

#[test]
fn no_endpoint_exports_to_localhost_4317() {
    // The resolved configuration, whatever listens on this machine.
    let config = Engine::builder()
        .environment(Vec::<(String, String)>::new())
        .effective_config()
        .unwrap();
    let endpoint = config.get("exporter.traces.endpoint").unwrap();
    assert_eq!(endpoint.value, "http://localhost:4317");
    assert_eq!(endpoint.source, otlpx::config::Source::Default);
    let config = Engine::builder()
        .environment(Vec::<(String, String)>::new())
        .protocol(Protocol::HttpProtobuf)
        .effective_config()
        .unwrap();
    assert_eq!(
        config.get("exporter.traces.endpoint").unwrap().value,
        "http://localhost:4318/v1/traces"
    );

    // And delivered there, when the default ports are free to listen on.
    let Ok(receiver) =
        otlpx_bench::receiver::Receiver::start(otlpx_bench::receiver::ReceiverConfig {
            grpc_port: 4317,
            http_port: 4318,
            ..Default::default()
        })
    else {
        eprintln!("ports 4317/4318 are taken here: only the resolved endpoint was checked");
        return;
    };
    for protocol in [Protocol::Grpc, Protocol::HttpProtobuf] {
        receiver.reset_counts();
        let engine = Engine::builder()
            .environment(Vec::<(String, String)>::new())
            .protocol(protocol)
            .build()
            .unwrap();
        let tracer = engine.tracer("defaults", "");
        for _ in 0..10 {
            tracer.start("op").end();
        }
        engine.flush(Duration::from_secs(10)).unwrap();
        assert_eq!(engine.stats().exported, 10, "{protocol:?}");
        assert!(
            receiver.wait_for_spans(10, Duration::from_secs(5)),
            "{protocol:?}"
        );
    }
    receiver.shutdown();
}

#[test]
fn dropping_the_last_handle_keeps_to_the_shutdown_timeout() {
    // Accepts connections (the kernel does, from its backlog) and never
    // answers: every request waits for its 10 s export timeout.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", silent.local_addr().unwrap());
    for protocol in [Protocol::Grpc, Protocol::HttpProtobuf] {
        let engine = Engine::builder()
            .environment(Vec::<(String, String)>::new())
            .endpoint(&endpoint)
            .protocol(protocol)
            .shutdown_timeout(Duration::from_millis(300))
            .build()
            .unwrap();
        assert_eq!(
            engine
                .config()
                .get("exporter.shutdown_timeout_ms")
                .unwrap()
                .value,
            "300"
        );
        let tracer = engine.tracer("drop", "");
        for _ in 0..10 {
            tracer.start("op").end();
        }
        drop(tracer);
        let start = Instant::now();
        drop(engine);
        let took = start.elapsed();
        // 300 ms plus ~100 ms to abandon; generous slack for a loaded
        // machine, and still well under the 10 s export timeout.
        assert!(took < Duration::from_secs(5), "{protocol:?}: {took:?}");
    }
}

#[test]
fn an_https_endpoint_answering_in_plaintext_is_explained() {
    let receiver = common::receiver_on((0, 0));
    let port = receiver.http_addr().port();
    for endpoint in [
        format!("https://127.0.0.1:{port}"),
        // Without a scheme, and not `insecure`: https:// assumed.
        format!("127.0.0.1:{port}"),
    ] {
        let engine = Engine::builder()
            .environment(Vec::<(String, String)>::new())
            .endpoint(&endpoint)
            .protocol(Protocol::HttpProtobuf)
            .retry(false)
            .shutdown_timeout(Duration::from_millis(200))
            .build()
            .unwrap();
        engine.tracer("tls", "").start("op").end();
        let _ = engine.flush(Duration::from_secs(5));
        let error = engine.last_export_error().expect("an error recorded");
        assert!(error.contains("is this endpoint plain http://?"), "{error}");
        assert!(engine.stats().export.failures.tls >= 1, "{error}");
    }
    receiver.shutdown();
}
