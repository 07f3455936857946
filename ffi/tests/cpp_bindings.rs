//! The C++ binding, `bindings/cpp/include/otlpx.hpp`, end to end: its test
//! program (`bindings/cpp/tests/test_otlpx.cpp`) is compiled with g++
//! (C++17, `-Wall -Wextra -Werror -pedantic`, AddressSanitizer and
//! UndefinedBehaviorSanitizer, nothing recoverable) against
//! `libotlpx_ffi.so`, and run with leak detection against the embedded
//! OTLP receiver, one endpoint over gRPC and one over HTTP.
//!
//! The program checks the wrapper's behaviour itself (RAII, moves,
//! exceptions, hot-path statuses, lifetimes, threads, flush) and prints
//! how many spans it sent; here the receiver must have exactly those, each
//! exactly once, with the fields the program set. The log records it
//! drains from a record-only engine into a file are decoded here and
//! compared field by field (the receiver keeps no log bodies).
//!
//! Needs g++ (or `CXX`) with libasan and libubsan; fails saying so if
//! there is none.

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::logs::v1::LogRecord;
use otlpx_bench::receiver::{self, Receiver, ReceiverConfig, Transport};
use prost::Message;
use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// How long the program may run (it takes about two seconds).
const RUN_TIMEOUT: Duration = Duration::from_secs(30);

/// `target/<profile>`: this test runs as `target/<profile>/deps/cpp_bindings-*`.
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    let deps = exe
        .parent()
        .expect("the test binary is in target/<profile>/deps");
    deps.parent()
        .expect("target/<profile>/deps has a parent")
        .to_path_buf()
}

/// The directory holding `libotlpx_ffi.so`, built by cargo for this test.
fn library_dir() -> PathBuf {
    let profile = profile_dir();
    [profile.clone(), profile.join("deps")]
        .into_iter()
        .find(|dir| dir.join("libotlpx_ffi.so").is_file())
        .unwrap_or_else(|| {
            panic!(
                "libotlpx_ffi.so is neither in {} nor in its deps/: \
                 build the cdylib (cargo build -p otlpx-ffi)",
                profile.display()
            )
        })
}

/// The C++ compiler: `CXX`, or g++. Fails clearly when there is none.
fn compiler() -> String {
    let cxx = std::env::var("CXX").unwrap_or_else(|_| "g++".to_owned());
    match Command::new(&cxx).arg("--version").output() {
        Ok(out) if out.status.success() => cxx,
        Ok(out) => panic!(
            "`{cxx} --version` failed ({}): the C++ binding test needs g++ \
             (C++17, AddressSanitizer), or CXX naming one",
            out.status
        ),
        Err(e) => panic!(
            "no C++ compiler: `{cxx}` could not run ({e}). The C++ binding test \
             needs g++ with C++17 and AddressSanitizer (e.g. `apt-get install g++`), \
             or CXX naming one"
        ),
    }
}

/// Compiles the test program; returns the executable's path.
fn compile(cxx: &str, lib_dir: &Path) -> PathBuf {
    let ffi = Path::new(env!("CARGO_MANIFEST_DIR"));
    let bindings = ffi.join("../bindings/cpp");
    let profile = profile_dir();
    let profile_name = profile.file_name().unwrap_or_default().to_string_lossy();
    let out_dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("cpp_bindings");
    std::fs::create_dir_all(&out_dir).expect("create the output directory");
    let exe = out_dir.join(format!("test_otlpx-{profile_name}"));
    let output = Command::new(cxx)
        .args([
            "-std=c++17",
            "-Wall",
            "-Wextra",
            "-Werror",
            "-pedantic",
            "-fsanitize=address,undefined",
            "-fno-sanitize-recover=all",
            "-fno-omit-frame-pointer",
            "-g",
            "-O1",
            "-pthread",
        ])
        .arg("-I")
        .arg(ffi.join("include"))
        .arg("-I")
        .arg(bindings.join("include"))
        .arg(bindings.join("tests/test_otlpx.cpp"))
        .arg("-o")
        .arg(&exe)
        .arg("-L")
        .arg(lib_dir)
        .arg("-lotlpx_ffi")
        .arg(format!("-Wl,-rpath,{}", lib_dir.display()))
        .output()
        .expect("run the C++ compiler");
    assert!(
        output.status.success(),
        "compiling bindings/cpp/tests/test_otlpx.cpp failed ({}):\n{}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    exe
}

/// Reads a child's pipe to the end on a thread of its own.
fn drain(pipe: Option<impl Read + Send + 'static>) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut text = String::new();
        if let Some(mut pipe) = pipe {
            let mut bytes = Vec::new();
            let _ = pipe.read_to_end(&mut bytes);
            text = String::from_utf8_lossy(&bytes).into_owned();
        }
        text
    })
}

/// Waits for `child` at most `timeout`, killing it past that.
fn wait_with_timeout(mut child: Child, timeout: Duration) -> (ExitStatus, String, String) {
    let stdout = drain(child.stdout.take());
    let stderr = drain(child.stderr.take());
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for the C++ test") {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "the C++ test ran past {timeout:?} and was killed\nstdout:\n{}\nstderr:\n{}",
                stdout.join().unwrap_or_default(),
                stderr.join().unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    (
        status,
        stdout.join().unwrap_or_default(),
        stderr.join().unwrap_or_default(),
    )
}

/// The `Debug` text of attribute `key`'s value in `attributes` (a
/// `Vec<KeyValue>`), e.g. `IntValue(3)`; `None` if it is missing. A macro:
/// this crate does not name the protobuf types.
macro_rules! attr {
    ($attributes:expr, $key:expr) => {
        $attributes
            .iter()
            .find(|kv| kv.key == $key)
            .and_then(|kv| kv.value.as_ref())
            .and_then(|v| v.value.as_ref())
            .map(|v| format!("{v:?}"))
    };
}

/// The `Debug` text of an array value whose elements print as `items`.
fn array(items: &[&str]) -> String {
    let values: Vec<String> = items
        .iter()
        .map(|i| format!("AnyValue {{ value: Some({i}) }}"))
        .collect();
    format!(
        "ArrayValue(ArrayValue {{ values: [{}] }})",
        values.join(", ")
    )
}

fn s(v: &str) -> String {
    format!("StringValue({v:?})")
}

/// What the program sends: span name → how many times.
fn expected_names() -> BTreeMap<String, usize> {
    [
        ("cpp-raii", 1),
        ("cpp-move", 1),
        ("cpp-move-assign-old", 1),
        ("cpp-move-assign-new", 1),
        ("cpp-returned", 1),
        ("cpp-vector", 100),
        ("cpp-thread-moved", 1),
        ("cpp-parent", 1),
        ("cpp-typed", 1),
        ("cpp-remote-child", 1),
        ("cpp-recorded", 1),
        // 4 threads × 2,500 × (outer + inner).
        ("mt", 20_000),
        ("cpp-http-span", 100),
    ]
    .into_iter()
    .map(|(n, c)| (n.to_owned(), c))
    .collect()
}

#[test]
fn cpp_binding_against_the_receiver() {
    let cxx = compiler();
    let lib_dir = library_dir();
    let exe = compile(&cxx, &lib_dir);

    let receiver = Receiver::start(ReceiverConfig {
        keep_requests: true,
        ..ReceiverConfig::default()
    })
    .expect("the receiver starts");
    let logs_file = Path::new(env!("CARGO_TARGET_TMPDIR")).join("cpp_bindings/logs.requests");
    let _ = std::fs::remove_file(&logs_file);
    let child = Command::new(&exe)
        .arg(receiver.grpc_endpoint())
        .arg(receiver.http_endpoint())
        .arg(&logs_file)
        // No OTEL_* variable of this process may reach the engines
        // (Engine::from_env must find no endpoint).
        .env_clear()
        .env(
            "ASAN_OPTIONS",
            "detect_leaks=1:halt_on_error=1:abort_on_error=0",
        )
        .env("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the C++ test");
    let (status, stdout, stderr) = wait_with_timeout(child, RUN_TIMEOUT);
    assert!(
        status.success(),
        "the C++ test failed ({status})\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    let sent: u64 = stdout
        .lines()
        .find_map(|l| l.strip_prefix("SENT "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no `SENT <n>` line in:\n{stdout}"));
    assert_eq!(
        sent,
        expected_names().values().sum::<usize>() as u64,
        "the program sent another number of spans than it should"
    );

    // The engines flushed before exiting: all of it was acknowledged.
    assert!(receiver.wait_for_spans(sent, Duration::from_secs(5)));
    let counts = receiver.counts();
    assert_eq!(counts.spans, sent, "the receiver's count is what was sent");
    assert_eq!(counts.requests_malformed, 0);

    for meta in receiver.take_request_meta() {
        let wanted = match meta.transport {
            Transport::Grpc => receiver::Compression::Zstd,
            Transport::Http => receiver::Compression::Gzip,
        };
        assert_eq!(meta.compression, wanted, "{:?}", meta.transport);
        if meta.transport == Transport::Http {
            assert!(
                meta.headers.iter().any(|(k, v)| k == "x-cpp" && v == "yes"),
                "the Config's header is sent"
            );
        }
    }

    // Every span, with its resource's service.name and its scope.
    let requests = receiver.take_requests();
    let mut spans = Vec::new();
    for request in &requests {
        for rs in &request.resource_spans {
            let resource = rs.resource.as_ref().expect("a resource");
            let service = attr!(resource.attributes, "service.name").unwrap_or_default();
            if service == s("cpp-test") {
                assert_eq!(
                    attr!(resource.attributes, "deployment.environment"),
                    Some(s("test"))
                );
                assert_eq!(
                    attr!(resource.attributes, "cpp.answer").as_deref(),
                    Some("IntValue(42)")
                );
            }
            for ss in &rs.scope_spans {
                let scope = ss.scope.as_ref().expect("a scope");
                for span in &ss.spans {
                    spans.push((
                        service.clone(),
                        (scope.name.clone(), scope.version.clone()),
                        span,
                    ));
                }
            }
        }
    }
    let mut names = BTreeMap::new();
    for (_, _, span) in &spans {
        *names.entry(span.name.clone()).or_insert(0) += 1;
    }
    assert_eq!(
        names,
        expected_names(),
        "each span exactly once; none discarded, renamed away or after shutdown"
    );

    let one = |name: &str| {
        let found: Vec<_> = spans.iter().filter(|(_, _, sp)| sp.name == name).collect();
        assert_eq!(found.len(), 1, "{name}");
        found[0]
    };
    for (service, scope, span) in &spans {
        let (want_service, want_scope) = match span.name.as_str() {
            "mt" => ("cpp-test", ("cpp-mt", "1.0")),
            "cpp-http-span" => ("cpp-http", ("cpp-http", "")),
            _ => ("cpp-test", ("cpp-test", "1.2.3")),
        };
        assert_eq!(service, &s(want_service), "{}", span.name);
        assert_eq!(
            (scope.0.as_str(), scope.1.as_str()),
            want_scope,
            "{}",
            span.name
        );
    }
    let children = spans
        .iter()
        .filter(|(_, _, sp)| sp.name == "mt" && !sp.parent_span_id.is_empty())
        .count();
    assert_eq!(children, 10_000, "every inner mt span has its parent");

    // The span with every kind of value.
    let (_, _, parent) = one("cpp-parent");
    let (_, _, typed) = one("cpp-typed");
    assert_eq!((parent.kind, typed.kind), (2, 3), "server, client");
    assert_eq!(parent.status.as_ref().map(|s| s.code), Some(1));
    assert_eq!(typed.trace_id, parent.trace_id);
    assert_eq!(typed.parent_span_id, parent.span_id);
    const T0: u64 = 1_700_000_000_000_000_000;
    assert_eq!(
        (typed.start_time_unix_nano, typed.end_time_unix_nano),
        (T0, T0 + 500)
    );
    let status = typed.status.as_ref().expect("a status");
    assert_eq!((status.code, status.message.as_str()), (2, "boom"));
    let want: Vec<(&str, String)> = vec![
        ("s.view", s("value")),
        ("s.cstr", s("literal")),
        ("s.string", s("owned")),
        ("b", "BoolValue(true)".into()),
        ("i.int", "IntValue(-42)".into()),
        ("i.unsigned", "IntValue(7)".into()),
        ("i.max", format!("IntValue({})", i64::MAX)),
        ("i.u8", "IntValue(200)".into()),
        ("d", "DoubleValue(2.5)".into()),
        ("d.float", "DoubleValue(0.5)".into()),
        (
            "a.i64",
            array(&["IntValue(1)", "IntValue(2)", "IntValue(3)"]),
        ),
        ("a.int", array(&["IntValue(4)", "IntValue(5)"])),
        (
            "a.double",
            array(&["DoubleValue(1.5)", "DoubleValue(-2.5)"]),
        ),
        ("a.bool", array(&["BoolValue(true)", "BoolValue(false)"])),
        (
            "a.barr",
            array(&["BoolValue(false)", "BoolValue(true)", "BoolValue(true)"]),
        ),
        ("a.string", array(&[&s("a"), &s("bc")])),
        ("a.cstr", array(&[&s("x"), &s("y")])),
        ("a.view", array(&[&s("p"), &s("q")])),
        (
            "a.init",
            array(&["IntValue(7)", "IntValue(8)", "IntValue(9)"]),
        ),
        (
            "a.carray",
            array(&["DoubleValue(0.25)", "DoubleValue(0.75)"]),
        ),
        (
            "a.many",
            array(
                &(0..20)
                    .map(|i| format!("IntValue({i})"))
                    .collect::<Vec<_>>()
                    .iter()
                    .map(String::as_str)
                    .collect::<Vec<_>>(),
            ),
        ),
        ("m.one", "IntValue(1)".into()),
        ("m.two", s("two")),
        ("replaced", "IntValue(2)".into()),
    ];
    for (key, value) in &want {
        assert_eq!(
            attr!(typed.attributes, *key).as_ref(),
            Some(value),
            "attribute {key}"
        );
    }
    assert_eq!(typed.attributes.len(), want.len(), "no other attribute");
    assert_eq!(typed.dropped_attributes_count, 0);
    assert_eq!(typed.events.len(), 2);
    let event = &typed.events[0];
    assert_eq!(
        (event.name.as_str(), event.time_unix_nano),
        ("checkpoint", T0 + 10)
    );
    assert_eq!(attr!(event.attributes, "n").as_deref(), Some("IntValue(1)"));
    assert_eq!(attr!(event.attributes, "why"), Some(s("test")));
    assert_eq!(typed.events[1].name, "now");
    assert_eq!(typed.links.len(), 1);
    let link = &typed.links[0];
    assert_eq!(
        link.trace_id,
        (0xa0..0xb0).collect::<Vec<u8>>(),
        "link trace id"
    );
    assert_eq!(link.span_id, (0xb0..0xb8).collect::<Vec<u8>>());
    assert_eq!(attr!(link.attributes, "link.why"), Some(s("retry")));

    // A parent from elsewhere.
    let (_, _, remote) = one("cpp-remote-child");
    assert_eq!(remote.trace_id, (1..=16).collect::<Vec<u8>>());
    assert_eq!(remote.parent_span_id, (0x10..0x18).collect::<Vec<u8>>());
    assert_eq!(remote.kind, 5, "consumer");

    // Recorded in one call.
    let (_, _, recorded) = one("cpp-recorded");
    let mut trace_id = vec![0u8; 16];
    trace_id[15] = 0x42;
    let mut span_id = vec![0u8; 8];
    span_id[7] = 0x43;
    assert_eq!(
        (&recorded.trace_id, &recorded.span_id),
        (&trace_id, &span_id)
    );
    assert_eq!(recorded.kind, 4, "producer");
    assert_eq!(
        (recorded.start_time_unix_nano, recorded.end_time_unix_nano),
        (T0, T0 + 1000)
    );
    assert_eq!(attr!(recorded.attributes, "src"), Some(s("finished")));
    assert_eq!(
        attr!(recorded.attributes, "n").as_deref(),
        Some("IntValue(3)")
    );
    assert!(recorded.parent_span_id.is_empty(), "a root span");

    // The exporting engine's log records were acknowledged, in requests of
    // their own.
    assert!(stdout.contains("LOGS_EXPORTED 50"), "{stdout}");
    assert!(counts.logs_requests >= 1, "{counts:?}");

    check_drained_logs(&logs_file);
}

/// The log records `test_logs` drained into `path` (each request a 4-byte
/// little-endian length and its bytes), checked by their `case` attribute.
fn check_drained_logs(path: &Path) {
    let bytes = std::fs::read(path).expect("the C++ test wrote its log requests");
    let mut records: BTreeMap<String, LogRecord> = BTreeMap::new();
    let mut rest = &bytes[..];
    let mut requests = 0;
    while !rest.is_empty() {
        let (len, tail) = rest.split_at(4);
        let (msg, tail) = tail.split_at(u32::from_le_bytes(len.try_into().unwrap()) as usize);
        rest = tail;
        requests += 1;
        let req = ExportLogsServiceRequest::decode(msg).expect("a logs request decodes");
        for rl in req.resource_logs {
            let resource = rl.resource.expect("a resource");
            assert_eq!(
                attr!(resource.attributes, "service.name"),
                Some(s("cpp-logs"))
            );
            for sl in rl.scope_logs {
                let scope = sl.scope.expect("a scope");
                assert_eq!(
                    (scope.name.as_str(), scope.version.as_str()),
                    ("cpp-logger", "3.1")
                );
                for r in sl.log_records {
                    let case = attr!(r.attributes, "case").expect("a case attribute");
                    assert!(records.insert(case.clone(), r).is_none(), "{case} twice");
                }
            }
        }
    }
    assert_eq!(requests, 2, "4 records, at most 2 a request");
    let names: Vec<&str> = records.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        [
            s("cpp-correlated"),
            s("cpp-max-depth"),
            s("cpp-plain"),
            s("cpp-structured")
        ]
    );
    let body = |r: &LogRecord| {
        r.body
            .as_ref()
            .and_then(|b| b.value.as_ref())
            .map(|v| format!("{v:?}"))
    };

    let plain = &records[&s("cpp-plain")];
    assert_eq!(
        (plain.severity_number, plain.severity_text.as_str()),
        (9, "INFO")
    );
    assert_eq!(body(plain), Some(s("cpp plain")));
    assert_eq!(attr!(plain.attributes, "n").as_deref(), Some("IntValue(1)"));
    assert!(plain.trace_id.is_empty(), "no current span on the C side");

    let r = &records[&s("cpp-structured")];
    const T0: u64 = 1_700_000_000_000_000_000;
    assert_eq!((r.time_unix_nano, r.observed_time_unix_nano), (T0, T0 + 1));
    assert_eq!(
        (r.severity_number, r.severity_text.as_str()),
        (13, "warning")
    );
    assert_eq!(r.event_name, "cpp.event");
    assert_eq!(attr!(r.attributes, "user"), Some(s("u-7")));
    let mut trace_id = vec![0u8; 16];
    trace_id[15] = 0x51;
    let mut span_id = vec![0u8; 8];
    span_id[7] = 0x52;
    assert_eq!((&r.trace_id, &r.span_id, r.flags), (&trace_id, &span_id, 1));
    let any = |v: &str| format!("AnyValue {{ value: Some({v}) }}");
    let kv = |k: &str, v: &str| {
        format!(
            "KeyValue {{ key: {k:?}, value: Some({}), key_strindex: 0 }}",
            any(v)
        )
    };
    let want_body = format!(
        "KvlistValue(KeyValueList {{ values: [{}] }})",
        [
            kv(
                "inner",
                &array(&[
                    "IntValue(1)",
                    &s("two"),
                    "DoubleValue(3.5)",
                    "BoolValue(true)",
                    &s("owned"),
                    "BytesValue([0, 255])",
                ])
            ),
            kv(
                "deeper",
                &format!(
                    "KvlistValue(KeyValueList {{ values: [{}] }})",
                    kv(
                        "ints",
                        &array(&["IntValue(1)", "IntValue(2)", "IntValue(3)"])
                    )
                )
            ),
            kv("flags", &array(&["BoolValue(true)", "BoolValue(false)"])),
            kv("names", &array(&[&s("a"), &s("b")])),
            kv("empty", &array(&[])),
        ]
        .join(", ")
    );
    assert_eq!(body(r), Some(want_body));

    let r = &records[&s("cpp-correlated")];
    assert_eq!(r.severity_number, 17);
    assert_eq!((r.trace_id.len(), r.span_id.len(), r.flags), (16, 8, 1));
    assert_eq!(body(r), None);

    let r = &records[&s("cpp-max-depth")];
    let mut want = "IntValue(42)".to_owned();
    for _ in 1..16 {
        want = array(&[&want]);
    }
    assert_eq!(body(r), Some(want));
}
