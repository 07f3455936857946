//! The C ABI as C sees it: the programs in `bindings/c` (the example and
//! `tests/*.c`), compiled with `-Wall -Wextra -Werror -pedantic` under
//! AddressSanitizer, LeakSanitizer and UndefinedBehaviorSanitizer, linked
//! against the `libotlpx_ffi.so` this build made, and run against the
//! embedded OTLP receiver. Each must exit 0, and the spans each says it
//! sent must have arrived, intact; the log records `logs.c` drains from a
//! record-only engine are decoded here and compared field by field. `ffi/install.sh` and `otlpx.pc` are
//! checked the way a user would use them: install, then build the example
//! with `pkg-config` (shared, and static through `Libs.private`).
//!
//! Needs a C compiler (`$CC`, else `cc`) with the sanitizers, as CI has;
//! the pkg-config check is skipped, with a note, where `pkg-config` is not
//! installed. Build products go to `target/<profile>/c-tests/`.

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as Av;
use opentelemetry_proto::tonic::common::v1::{AnyValue, ArrayValue, KeyValue, KeyValueList};
use opentelemetry_proto::tonic::logs::v1::LogRecord;
use opentelemetry_proto::tonic::trace::v1::Span;
use otlpx_bench::receiver::{Receiver, ReceiverConfig};
use prost::Message;
use std::collections::HashMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// How long one C program may run (they take about a second).
const RUN_TIMEOUT: Duration = Duration::from_secs(60);

const STRICT_FLAGS: &[&str] = &["-std=c11", "-Wall", "-Wextra", "-Werror", "-pedantic"];
const SANITIZER_FLAGS: &[&str] = &[
    "-fsanitize=address,undefined",
    "-fno-omit-frame-pointer",
    "-fno-sanitize-recover=all",
    "-g",
];

/// Where things are, found once.
struct Paths {
    /// The workspace root.
    root: PathBuf,
    /// `target/<profile>/deps`: where `cargo test` put `libotlpx_ffi.so`.
    lib_dir: PathBuf,
    /// `target/<profile>/c-tests`.
    out_dir: PathBuf,
    /// The C compiler.
    cc: String,
}

fn paths() -> &'static Paths {
    static PATHS: OnceLock<Paths> = OnceLock::new();
    PATHS.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .expect("ffi/ is in the workspace")
            .to_path_buf();
        // This test runs as target/<profile>/deps/c_bindings-<hash>, and
        // the libraries cargo built for it are beside it: `cargo test`
        // leaves them in deps/ (only `cargo build` copies them up to
        // target/<profile>, so those may be stale, or absent).
        let exe = std::env::current_exe().expect("the test's own path");
        let lib_dir = exe.parent().expect("target/<profile>/deps").to_path_buf();
        for lib in ["libotlpx_ffi.so", "libotlpx_ffi.a"] {
            assert!(
                lib_dir.join(lib).is_file(),
                "{lib} is not in {}: cargo builds it with this test (ffi's crate-type)",
                lib_dir.display()
            );
        }
        let cc = std::env::var("CC").unwrap_or_else(|_| "cc".to_owned());
        match Command::new(&cc).arg("--version").output() {
            Ok(o) if o.status.success() => {}
            other => panic!(
                "the C tests need a C compiler with AddressSanitizer (gcc or clang): \
                 `{cc} --version` failed ({other:?}); install gcc, or point $CC at one"
            ),
        }
        let out_dir = lib_dir.with_file_name("c-tests");
        std::fs::create_dir_all(&out_dir).expect("create target/<profile>/c-tests");
        Paths {
            root,
            lib_dir,
            out_dir,
            cc,
        }
    })
}

/// Runs `cmd`, panicking with its output unless it succeeds.
fn check(cmd: &mut Command, what: &str) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed ({}): {cmd:?}\n--- stdout\n{}\n--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Compiles `bindings/c/<source>` with the strict and sanitizer flags,
/// linked to this build's `libotlpx_ffi.so`; returns the executable.
fn compile(source: &str) -> PathBuf {
    let p = paths();
    let name = Path::new(source)
        .file_stem()
        .expect("a file name")
        .to_string_lossy()
        .into_owned();
    let exe = p.out_dir.join(&name);
    let mut cmd = Command::new(&p.cc);
    cmd.args(STRICT_FLAGS)
        .args(SANITIZER_FLAGS)
        .arg("-I")
        .arg(p.root.join("ffi/include"))
        .arg("-I")
        .arg(p.root.join("bindings/c/tests"))
        .arg(p.root.join("bindings/c").join(source))
        .arg("-o")
        .arg(&exe)
        .arg("-L")
        .arg(&p.lib_dir)
        .arg("-lotlpx_ffi")
        .arg(format!("-Wl,-rpath,{}", p.lib_dir.display()))
        .arg("-pthread");
    check(&mut cmd, &format!("compiling {source}"));
    exe
}

/// A command for a C program: sanitizers strict, and no `OTEL_*` or
/// `OTLPX_*` variable of this process leaking into what it reads.
fn c_program(exe: &Path) -> Command {
    let mut cmd = Command::new(exe);
    for (key, _) in std::env::vars_os() {
        let k = key.to_string_lossy();
        if k.starts_with("OTEL_") || k.starts_with("OTLPX_") {
            cmd.env_remove(&key);
        }
    }
    // cargo test puts target/<profile> on LD_LIBRARY_PATH, ahead of each
    // program's rpath: a stale libotlpx_ffi.so there (from an earlier
    // `cargo build`) would be loaded instead of this build's.
    cmd.env_remove("LD_LIBRARY_PATH");
    cmd.env("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=1")
        .env("UBSAN_OPTIONS", "halt_on_error=1:print_stacktrace=1");
    cmd
}

/// Runs `cmd` to completion within [`RUN_TIMEOUT`]; panics, with its
/// output, if it fails or hangs. Returns its stdout.
fn run(mut cmd: Command, name: &str) -> String {
    let p = paths();
    let stdout_path = p.out_dir.join(format!("{name}.stdout"));
    let stderr_path = p.out_dir.join(format!("{name}.stderr"));
    let file = |path: &Path| std::fs::File::create(path).expect("create an output file");
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(file(&stdout_path))
        .stderr(file(&stderr_path))
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {name}: {e}"));
    let deadline = Instant::now() + RUN_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for the C program") {
            break Some(status);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let stdout = std::fs::read_to_string(&stdout_path).unwrap_or_default();
    let stderr = std::fs::read_to_string(&stderr_path).unwrap_or_default();
    match status {
        Some(s) if s.success() => stdout,
        Some(s) => panic!("{name} failed ({s})\n--- stdout\n{stdout}\n--- stderr\n{stderr}"),
        None => panic!(
            "{name} did not finish within {RUN_TIMEOUT:?}\n--- stdout\n{stdout}\n--- stderr\n{stderr}"
        ),
    }
}

fn receiver() -> Receiver {
    Receiver::start(ReceiverConfig {
        keep_requests: true,
        ..ReceiverConfig::default()
    })
    .expect("the receiver starts")
}

/// A gRPC endpoint nobody listens on (a port just freed).
fn dead_endpoint() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    let port = listener.local_addr().expect("its address").port();
    drop(listener);
    format!("http://127.0.0.1:{port}")
}

/// Waits for exactly `n` spans at `receiver`, and returns every span with
/// its resource attributes and scope name (taking them: the receiver starts
/// from nothing again).
fn received(receiver: &Receiver, n: u64) -> Vec<(Vec<KeyValue>, String, Span)> {
    assert!(
        receiver.wait_for_spans(n, Duration::from_secs(10)),
        "the receiver got {} spans, expected {n}",
        receiver.counts().spans
    );
    // A flushed engine sent nothing more; anything extra would be a bug.
    std::thread::sleep(Duration::from_millis(50));
    let counts = receiver.counts();
    assert_eq!(counts.spans, n, "spans at the receiver");
    assert_eq!(counts.requests_malformed, 0);
    // Counted; the next program run against this receiver starts at 0.
    receiver.reset_counts();
    let requests: Vec<ExportTraceServiceRequest> = receiver.take_requests();
    let mut spans = Vec::new();
    for r in requests {
        for rs in r.resource_spans {
            let resource = rs.resource.map(|r| r.attributes).unwrap_or_default();
            for ss in rs.scope_spans {
                let scope = ss.scope.map(|s| s.name).unwrap_or_default();
                for s in ss.spans {
                    spans.push((resource.clone(), scope.clone(), s));
                }
            }
        }
    }
    spans
}

fn attr<'a>(attributes: &'a [KeyValue], key: &str) -> &'a Av {
    attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref())
        .and_then(|v| v.value.as_ref())
        .unwrap_or_else(|| panic!("no attribute {key} in {attributes:?}"))
}

fn array(av: &Av) -> Vec<Av> {
    match av {
        Av::ArrayValue(a) => a.values.iter().filter_map(|v| v.value.clone()).collect(),
        other => panic!("not an array: {other:?}"),
    }
}

fn int(av: &Av) -> i64 {
    match av {
        Av::IntValue(v) => *v,
        other => panic!("not an int: {other:?}"),
    }
}

/// The `c.int_array` attribute.
fn ints_of(attributes: &[KeyValue]) -> Vec<i64> {
    array(attr(attributes, "c.int_array"))
        .iter()
        .map(int)
        .collect()
}

/// The attributes `every_type()` in happy_path.c sets (but `c.int` and
/// `c.int_array`, which vary).
fn check_every_type(attributes: &[KeyValue]) {
    use Av::*;
    assert_eq!(attributes.len(), 10, "{attributes:?}");
    assert_eq!(
        attr(attributes, "c.string"),
        &StringValue("hello from C".into())
    );
    assert_eq!(attr(attributes, "c.bool"), &BoolValue(true));
    assert_eq!(attr(attributes, "c.double"), &DoubleValue(3.5));
    assert_eq!(attr(attributes, "c.bytes"), &BytesValue(vec![0, 0xfe, 1]));
    assert_eq!(
        array(attr(attributes, "c.string_array")),
        [StringValue("alpha".into()), StringValue("beta".into())]
    );
    assert_eq!(
        array(attr(attributes, "c.bool_array")),
        [BoolValue(true), BoolValue(false), BoolValue(true)]
    );
    assert_eq!(
        array(attr(attributes, "c.double_array")),
        [DoubleValue(0.5), DoubleValue(-1.25)]
    );
    assert_eq!(
        array(attr(attributes, "c.bytes_array")),
        [BytesValue(vec![0, 1]), BytesValue(vec![0xff])]
    );
}

/// `expected_spans=N` from a C program's output.
fn expected_spans(stdout: &str) -> u64 {
    stdout
        .lines()
        .find_map(|l| l.strip_prefix("expected_spans="))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no expected_spans=N line in:\n{stdout}"))
}

#[test]
fn c_happy_path_every_span_arrives_intact() {
    let exe = compile("tests/happy_path.c");
    let receiver = receiver();
    let mut cmd = c_program(&exe);
    cmd.arg(receiver.grpc_endpoint());
    let stdout = run(cmd, "happy_path");
    let n = expected_spans(&stdout);
    let spans = received(&receiver, n);

    let mut by_name: HashMap<&str, Vec<&Span>> = HashMap::new();
    for (resource, scope, span) in &spans {
        assert_eq!(
            attr(resource, "service.name"),
            &Av::StringValue("otlpx-c-tests".into())
        );
        assert_eq!(
            attr(resource, "deployment.environment"),
            &Av::StringValue("c-test".into())
        );
        assert_eq!(scope, "otlpx-c-tests");
        by_name.entry(span.name.as_str()).or_default().push(span);
    }
    let roots = &by_name["c.root"];
    let (threads, per_thread) = (4, 150);
    assert_eq!(roots.len(), threads * per_thread);
    assert_eq!(by_name["c.child"].len(), roots.len());
    assert_eq!(by_name["c.remote_child"].len(), roots.len());
    assert_eq!(by_name["c.one_shot"].len(), threads * 200);
    assert_eq!(spans.len(), roots.len() * 3 + threads * 200);

    let root_ids: HashMap<&[u8], &Span> = roots.iter().map(|s| (&s.span_id[..], *s)).collect();
    for root in roots {
        let i = int(attr(&root.attributes, "c.int"));
        let ints = ints_of(&root.attributes);
        assert!(ints.len() == 2 && (0..4).contains(&ints[0]) && ints[1] == i);
        check_every_type(&root.attributes);
        assert_eq!(root.kind, 2, "SERVER");
        assert!(root.parent_span_id.is_empty());
        assert_eq!(root.events.len(), 1);
        assert_eq!(root.events[0].name, "c.event");
        assert_eq!(int(attr(&root.events[0].attributes, "c.event.attr")), i);
        assert_eq!(root.links.len(), 1);
        assert_eq!(root.links[0].trace_state, "vendor=value");
        assert_eq!(
            attr(&root.links[0].attributes, "c.link.attr"),
            &Av::StringValue("linked".into())
        );
        let status = root.status.as_ref().expect("a status");
        if i % 2 == 0 {
            assert_eq!((status.code, status.message.as_str()), (2, "it failed"));
        } else {
            assert_eq!((status.code, status.message.as_str()), (1, ""));
        }
    }
    for (name, kind) in [("c.child", 3), ("c.remote_child", 5)] {
        for child in &by_name[name] {
            let parent = root_ids
                .get(&child.parent_span_id[..])
                .unwrap_or_else(|| panic!("{name} without its root: {child:?}"));
            assert_eq!(child.trace_id, parent.trace_id);
            assert_eq!(child.kind, kind);
        }
    }
    for span in &by_name["c.one_shot"] {
        assert_eq!(span.kind, 4, "PRODUCER");
        assert_eq!(span.trace_state, "k=v");
        assert_eq!(span.parent_span_id.len(), 8);
        assert_eq!(span.end_time_unix_nano - span.start_time_unix_nano, 1000);
        let status = span.status.as_ref().expect("a status");
        assert_eq!(
            (status.code, status.message.as_str()),
            (2, "one-shot error")
        );
        let ints = ints_of(&span.attributes);
        assert!(ints.len() == 3 && ints[1] == int(attr(&span.attributes, "c.int")));
        assert_eq!(ints[2], -1);
        check_every_type(&span.attributes);
        assert_eq!(span.events.len(), 1);
        assert_eq!(span.events[0].time_unix_nano, 1_700_000_000_000_000_500);
        assert_eq!(
            attr(&span.events[0].attributes, "c.event.attr"),
            &Av::DoubleValue(0.25)
        );
        assert_eq!(span.links.len(), 1);
        assert_eq!(
            attr(&span.links[0].attributes, "c.link.attr"),
            &Av::BoolValue(true)
        );
    }
}

#[test]
fn c_null_pointers_are_refused() {
    run(
        c_program(&compile("tests/null_pointers.c")),
        "null_pointers",
    );
}

#[test]
fn c_bad_values_are_refused_and_nothing_is_recorded() {
    run(c_program(&compile("tests/bad_values.c")), "bad_values");
}

#[test]
fn c_error_messages_and_stats_prefixes() {
    run(
        c_program(&compile("tests/errors_and_stats.c")),
        "errors_and_stats",
    );
}

#[test]
fn c_stale_handles_shutdown_and_full_rings() {
    let exe = compile("tests/handles.c");
    let receiver = receiver();
    let mut cmd = c_program(&exe);
    cmd.arg(receiver.grpc_endpoint()).arg(dead_endpoint());
    run(cmd, "handles");
    // after_shutdown(): one span exported, none after the shutdown.
    let spans = received(&receiver, 1);
    assert_eq!(spans[0].2.name, "minimal");
}

/// The spans `example.c` sends.
fn check_example_spans(receiver: &Receiver) {
    let spans = received(receiver, 3);
    let mut names: Vec<&str> = spans.iter().map(|(_, _, s)| s.name.as_str()).collect();
    names.sort_unstable();
    assert_eq!(names, ["GET /orders", "SELECT orders", "batch job"]);
    let (resource, scope, _) = &spans[0];
    assert_eq!(
        attr(resource, "service.name"),
        &Av::StringValue("c-example".into())
    );
    assert_eq!(scope, "example.c");
    let by_name = |n: &str| &spans.iter().find(|(_, _, s)| s.name == n).expect(n).2;
    assert_eq!(
        by_name("SELECT orders").parent_span_id,
        by_name("GET /orders").span_id
    );
    let batch = by_name("batch job");
    assert_eq!((batch.events.len(), batch.links.len()), (1, 1));
    assert_eq!(
        attr(&batch.attributes, "job.id"),
        &Av::StringValue("nightly-7".into())
    );
}

#[test]
fn c_example_runs_and_its_spans_arrive() {
    let exe = compile("example.c");
    let receiver = receiver();
    let mut cmd = c_program(&exe);
    cmd.arg(receiver.grpc_endpoint());
    let stdout = run(cmd, "example");
    assert!(stdout.contains("3 spans recorded, 3 exported"), "{stdout}");
    check_example_spans(&receiver);

    // Without an argument it reads the standard environment.
    let mut cmd = c_program(&exe);
    cmd.env("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.grpc_endpoint());
    run(cmd, "example-env");
    check_example_spans(&receiver);
}

#[test]
fn install_sh_and_pkg_config_build_the_example() {
    let p = paths();
    if Command::new("pkg-config")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("NOTE: pkg-config is not installed; skipping the otlpx.pc check");
        return;
    }
    let prefix = p.out_dir.join("prefix");
    let _ = std::fs::remove_dir_all(&prefix);
    // The libraries this build made (see `paths`), not target/<profile>'s.
    check(
        Command::new(p.root.join("ffi/install.sh"))
            .arg(&prefix)
            .arg(&p.lib_dir),
        "ffi/install.sh",
    );
    for f in [
        "include/otlpx.h",
        "lib/libotlpx_ffi.so",
        "lib/libotlpx_ffi.a",
    ] {
        assert!(prefix.join(f).is_file(), "install.sh did not install {f}");
    }
    let pkg_config = |args: &[&str]| -> Vec<String> {
        let out = check(
            Command::new("pkg-config")
                .args(args)
                .arg("otlpx")
                .env("PKG_CONFIG_PATH", prefix.join("lib/pkgconfig")),
            "pkg-config",
        );
        out.split_whitespace().map(str::to_owned).collect()
    };
    let version = pkg_config(&["--modversion"]);
    assert_eq!(version, [env!("CARGO_PKG_VERSION")]);
    let flags = pkg_config(&["--cflags", "--libs"]);
    assert!(flags.contains(&"-lotlpx_ffi".to_owned()), "{flags:?}");

    // Shared, with the strict flags and the sanitizers.
    let exe = p.out_dir.join("example-pkg-config");
    check(
        Command::new(&p.cc)
            .args(STRICT_FLAGS)
            .args(SANITIZER_FLAGS)
            .arg(p.root.join("bindings/c/example.c"))
            .arg("-o")
            .arg(&exe)
            .args(&flags)
            .arg(format!("-Wl,-rpath,{}", prefix.join("lib").display())),
        "compiling example.c with pkg-config",
    );
    let receiver = receiver();
    let mut cmd = c_program(&exe);
    cmd.arg(receiver.grpc_endpoint());
    run(cmd, "example-pkg-config");
    check_example_spans(&receiver);

    // Static: libotlpx_ffi.a and what Libs.private says it needs suffice.
    let static_libs: Vec<String> = pkg_config(&["--cflags", "--libs", "--static"])
        .into_iter()
        .map(|f| {
            if f == "-lotlpx_ffi" {
                "-l:libotlpx_ffi.a".to_owned()
            } else {
                f
            }
        })
        .collect();
    let exe = p.out_dir.join("example-static");
    check(
        Command::new(&p.cc)
            .args(STRICT_FLAGS)
            .arg(p.root.join("bindings/c/example.c"))
            .arg("-o")
            .arg(&exe)
            .args(&static_libs),
        "linking example.c statically with pkg-config --static",
    );
    let ldd = Command::new("ldd").arg(&exe).output();
    if let Ok(o) = ldd {
        let text = String::from_utf8_lossy(&o.stdout);
        assert!(!text.contains("otlpx"), "linked statically, yet: {text}");
    }
    let mut cmd = c_program(&exe);
    cmd.arg(receiver.grpc_endpoint());
    run(cmd, "example-static");
    check_example_spans(&receiver);
}

/// The log records `logs.c` wrote to `path` (drained requests, each a
/// 4-byte little-endian length and its bytes), by their `c.case`
/// attribute, with their scope's name and version.
fn drained_logs(path: &Path) -> HashMap<String, (String, String, LogRecord)> {
    let bytes = std::fs::read(path).expect("logs.c wrote its requests");
    let mut records = HashMap::new();
    let mut rest = &bytes[..];
    while !rest.is_empty() {
        let (len, tail) = rest.split_at(4);
        let len = u32::from_le_bytes(len.try_into().unwrap()) as usize;
        let (msg, tail) = tail.split_at(len);
        rest = tail;
        let req = ExportLogsServiceRequest::decode(msg).expect("a logs request decodes");
        for rl in req.resource_logs {
            let resource = rl.resource.map(|r| r.attributes).unwrap_or_default();
            assert_eq!(
                attr(&resource, "service.name"),
                &Av::StringValue("otlpx-c-tests".into())
            );
            for sl in rl.scope_logs {
                let scope = sl.scope.expect("a scope");
                for r in sl.log_records {
                    let Av::StringValue(case) = attr(&r.attributes, "c.case").clone() else {
                        panic!("no c.case in {r:?}");
                    };
                    let old = records.insert(case, (scope.name.clone(), scope.version.clone(), r));
                    assert!(old.is_none(), "a case twice: {old:?}");
                }
            }
        }
    }
    records
}

fn body(r: &LogRecord) -> Option<&Av> {
    r.body.as_ref().and_then(|b| b.value.as_ref())
}

fn any(v: Av) -> AnyValue {
    AnyValue { value: Some(v) }
}

fn arr(items: Vec<Av>) -> Av {
    Av::ArrayValue(ArrayValue {
        values: items.into_iter().map(any).collect(),
    })
}

fn kvlist(entries: Vec<(&str, Av)>) -> Av {
    Av::KvlistValue(KeyValueList {
        values: entries
            .into_iter()
            .map(|(k, v)| KeyValue {
                key: k.to_owned(),
                value: Some(any(v)),
                ..KeyValue::default()
            })
            .collect(),
    })
}

fn string(s: &str) -> Av {
    Av::StringValue(s.to_owned())
}

#[test]
fn c_logs_every_record_arrives_intact() {
    use Av::*;
    let exe = compile("tests/logs.c");
    let receiver = receiver();
    let out = paths().out_dir.join("logs.requests");
    let _ = std::fs::remove_file(&out);
    let mut cmd = c_program(&exe);
    cmd.arg(receiver.grpc_endpoint()).arg(&out);
    let stdout = run(cmd, "logs");

    // The exporting engine's records reached the receiver (which keeps
    // no log bodies: its counts say requests came, the engine's stats that
    // every record was acknowledged).
    assert!(stdout.contains("expected_log_records=100"), "{stdout}");
    let counts = receiver.counts();
    assert!(counts.logs_requests >= 1, "{counts:?}");
    assert_eq!((counts.requests, counts.requests_malformed), (0, 0));

    let records = drained_logs(&out);
    let cases: usize = stdout
        .lines()
        .find_map(|l| l.strip_prefix("cases="))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no cases=N line in:\n{stdout}"));
    assert_eq!(records.len(), cases, "{:?}", records.keys());
    let case = |name: &str| {
        let (scope, version, r) = records
            .get(name)
            .unwrap_or_else(|| panic!("no case {name}"));
        assert_eq!((scope.as_str(), version.as_str()), ("otlpx-c-logs", "2.0"));
        r
    };

    let r = case("every_field");
    assert_eq!(r.time_unix_nano, 1_700_000_000_000_000_001);
    assert_eq!(r.observed_time_unix_nano, 1_700_000_000_000_000_002);
    assert_eq!(
        (r.severity_number, r.severity_text.as_str()),
        (13, "warning")
    );
    assert_eq!(body(r), Some(&string("payment retried")));
    assert_eq!(r.attributes.len(), 4);
    assert_eq!(attr(&r.attributes, "order.id"), &IntValue(1042));
    assert_eq!(attr(&r.attributes, "retry"), &BoolValue(true));
    assert_eq!(
        attr(&r.attributes, "tags"),
        &arr(vec![string("a"), string("b")])
    );
    assert_eq!(r.event_name, "payment.retry");
    assert_eq!(r.trace_id, (0x40..0x50).collect::<Vec<u8>>());
    assert_eq!(r.span_id, (0x80..0x88).collect::<Vec<u8>>());
    assert_eq!(r.flags, 1);
    let r = case("unsampled_context");
    assert_eq!((r.trace_id.len(), r.span_id.len(), r.flags), (16, 8, 0));

    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let r = case("defaults");
    assert!(r.time_unix_nano > now - 120_000_000_000 && r.time_unix_nano <= now);
    assert_eq!(r.time_unix_nano, r.observed_time_unix_nano);
    assert_eq!((r.severity_number, r.severity_text.as_str()), (9, "INFO"));
    assert!(r.trace_id.is_empty() && r.span_id.is_empty() && r.flags == 0);
    assert!(r.event_name.is_empty());
    let r = case("unspecified");
    assert_eq!((r.severity_number, r.severity_text.as_str()), (0, ""));
    assert_eq!(body(r), Some(&string("")));
    assert_eq!(body(case("no_body")), None);
    assert_eq!(body(case("zeroed")), None);
    assert_eq!(case("zeroed").severity_number, 0);
    assert_eq!(case("info2").severity_text, "INFO2");

    assert_eq!(
        body(case("scalars")),
        Some(&kvlist(vec![
            ("s", string("text")),
            ("b", BoolValue(true)),
            ("i", IntValue(-7)),
            ("d", DoubleValue(2.5)),
            ("y", BytesValue(vec![0, 0xfe])),
            ("sa", arr(vec![string("x"), string("yy")])),
            ("ba", arr(vec![BoolValue(true), BoolValue(false)])),
            (
                "ia",
                arr(vec![IntValue(-1), IntValue(0), IntValue(i64::MAX)])
            ),
            ("da", arr(vec![DoubleValue(0.5), DoubleValue(-2.0)])),
            ("ya", arr(vec![BytesValue(vec![0, 0xff])])),
        ]))
    );
    assert_eq!(
        body(case("bytes_body")),
        Some(&BytesValue(vec![0xff, 0, 1]))
    );
    assert_eq!(body(case("double_body")), Some(&DoubleValue(-0.25)));
    assert_eq!(
        body(case("attributes_as_map")),
        Some(&kvlist(vec![("k1", IntValue(1)), ("k2", string("v2"))]))
    );
    assert_eq!(
        body(case("nested")),
        Some(&arr(vec![
            kvlist(vec![
                ("k", arr(vec![IntValue(1), string("two"), kvlist(vec![])])),
                (
                    "m",
                    kvlist(vec![("deep", kvlist(vec![("deeper", IntValue(3))]))])
                ),
            ]),
            IntValue(7),
            string("x"),
            arr(vec![]),
        ]))
    );
    assert_eq!(case("nested").severity_text, "ERROR");
    let mut want = IntValue(42);
    for _ in 1..16 {
        want = arr(vec![want]);
    }
    assert_eq!(body(case("max_depth")), Some(&want));
}
