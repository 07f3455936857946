//! The disk spool end to end, against the embedded receiver: what an
//! engine could not deliver (the receiver down) is spooled at shutdown,
//! and the next engine on the same directory sends all of it, exactly
//! once; a spool whose newest record was torn gives back everything before
//! the damage and counts the rest; a process killed with `SIGKILL` loses
//! nothing that was in its spool; two engines cannot share a directory;
//! and a paused spool drains as soon as the receiver is back, unless the
//! receiver asked for the pause (throttling).
//!
//! The accounting identity is checked across engines: the first counts
//! what it spooled, the second what it restored from the spool and sent.

mod common;

use common::{hint, received, receiver_on, refuse};
use otlpx::{BuildError, Engine, EngineBuilder, Protocol, Stats};
use otlpx_bench::receiver::{Fault, Receiver, unused_ports};
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A fresh directory for one test's spool, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let dir =
            std::env::temp_dir().join(format!("otlpx-e2e-spool-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        Self(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// An engine for `protocol` on `ports` spooling to `dir`: rings big enough
/// to hold every span of a test, quick retries.
fn engine(ports: (u16, u16), protocol: Protocol, dir: &Path) -> EngineBuilder {
    let port = match protocol {
        Protocol::Grpc => ports.0,
        _ => ports.1,
    };
    Engine::builder()
        .service_name("e2e-spool")
        .endpoint(format!("http://127.0.0.1:{port}"))
        .protocol(protocol)
        .ring_bytes_per_cpu(32 << 20)
        .rings(2)
        .retry_backoff(Duration::from_millis(50), Duration::from_millis(200))
        .spool_dir(dir)
}

/// Records `n` spans, each with its sequence number as an attribute.
fn record(engine: &Engine, n: u64) {
    let tracer = engine.tracer("e2e-spool", "");
    for i in 0..n {
        let mut span = tracer.start("op");
        span.set_attribute("i", i as i64);
        span.end();
    }
}

/// The identity across engines: `recorded + restored == exported +
/// dropped + in flight + in rings + spooled`.
fn assert_identity(s: &Stats, label: &str) {
    assert_eq!(
        s.recorded + s.spool.restored,
        s.exported + s.dropped.total() + s.in_flight + s.in_rings + s.spooled,
        "{label}: {s:?}"
    );
}

/// Records `n` spans with the receiver down and shuts down: everything is
/// spooled, nothing dropped.
fn spool_with_receiver_down(ports: (u16, u16), protocol: Protocol, dir: &Path, n: u64) {
    let engine = engine(ports, protocol, dir).build().unwrap();
    record(&engine, n);
    let report = engine
        .shutdown(Duration::from_secs(1))
        .expect("nothing lost: what could not be sent is spooled");
    assert_eq!(
        (
            report.delivered,
            report.spooled,
            report.dropped,
            report.in_rings
        ),
        (0, n, 0, 0),
        "{report:?}"
    );
    assert!(!report.flushed);
    assert_eq!(report.spool_pending, n);
    let s = engine.stats();
    assert_eq!((s.recorded, s.spooled, s.spool.written), (n, n, n), "{s:?}");
    assert_identity(&s, "first engine");
}

#[test]
fn what_one_engine_spooled_the_next_sends_exactly_once() {
    std::thread::scope(|s| {
        for protocol in [Protocol::Grpc, Protocol::HttpProtobuf] {
            s.spawn(move || {
                let label = format!("{protocol:?}");
                let dir = TempDir::new(&format!("restart-{label}"));
                let ports = unused_ports().unwrap();
                const N: u64 = 100_000;
                spool_with_receiver_down(ports, protocol, &dir.0, N);

                let receiver = receiver_on(ports);
                let engine = engine(ports, protocol, &dir.0).build().unwrap();
                engine.flush(Duration::from_secs(60)).unwrap();
                let s = engine.stats();
                assert_identity(&s, &label);
                assert_eq!(s.recorded, 0, "{label}");
                assert_eq!(
                    (s.spool.restored, s.spool.delivered, s.exported, s.spooled),
                    (N, N, N, 0),
                    "{label}: {s:?}"
                );
                assert_eq!(s.dropped.total(), 0, "{label}: {s:?}");
                let seen = received(&receiver);
                assert_eq!(seen.len() as u64, N, "{label}: distinct spans");
                assert_eq!(
                    seen.values().map(|n| n - 1).sum::<u64>(),
                    0,
                    "{label}: duplicates"
                );
                // Delivered records are gone from disk: a third engine
                // finds nothing.
                drop(engine);
                let again = self::engine(ports, protocol, &dir.0).build().unwrap();
                assert_eq!(again.stats().spool.restored, 0, "{label}");
            });
        }
    });
}

#[test]
fn a_torn_spool_gives_back_everything_before_the_damage() {
    let dir = TempDir::new("torn");
    let ports = unused_ports().unwrap();
    const N: u64 = 20_000;
    spool_with_receiver_down(ports, Protocol::Grpc, &dir.0, N);
    // Tear the newest segment's last record: cut its last 10 bytes, as a
    // write cut short by a power loss would.
    let newest = std::fs::read_dir(&dir.0)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "spool"))
        .filter(|p| std::fs::metadata(p).unwrap().len() > 64)
        .max()
        .expect("a segment with records");
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(&newest)
        .unwrap();
    let len = file.metadata().unwrap().len();
    file.set_len(len - 10).unwrap();
    drop(file);

    let receiver = receiver_on(ports);
    let engine = engine(ports, Protocol::Grpc, &dir.0).build().unwrap();
    engine.flush(Duration::from_secs(60)).unwrap();
    let s = engine.stats();
    assert_identity(&s, "torn");
    assert_eq!(s.spool.restored, N, "{s:?}");
    assert_eq!(s.spool.corrupt_records, 1, "{s:?}");
    assert!(s.spool.corrupt_bytes > 0, "{s:?}");
    // One request's spans were in the torn record: counted, not sent.
    assert!(s.dropped.spool_corrupt > 0, "{s:?}");
    assert_eq!(s.exported + s.dropped.spool_corrupt, N, "{s:?}");
    let seen = received(&receiver);
    assert_eq!(seen.len() as u64, s.exported);
    assert!(seen.values().all(|&n| n == 1), "no duplicates");
}

#[test]
fn two_engines_cannot_share_a_spool() {
    let dir = TempDir::new("lock");
    let ports = unused_ports().unwrap();
    let first = engine(ports, Protocol::Grpc, &dir.0).build().unwrap();
    match engine(ports, Protocol::Grpc, &dir.0).build() {
        Err(e @ BuildError::Spool(_)) => {
            let message = e.to_string();
            assert!(message.contains("in use by another engine"), "{message}");
            assert!(
                message.contains(&format!("pid {}", std::process::id())),
                "{message}"
            );
        }
        Err(e) => panic!("another error: {e}"),
        Ok(_) => panic!("a second engine opened a locked spool"),
    }
    // Shut down (not even dropped): the directory is free again.
    first.shutdown(Duration::from_millis(100)).unwrap();
    engine(ports, Protocol::Grpc, &dir.0).build().unwrap();
}

/// The child of `a_killed_process_loses_nothing_in_its_spool`: records
/// with the receiver down, a short export deadline so that failed requests
/// go to the spool, prints how many spans are spooled as it goes, and
/// waits to be killed.
#[test]
#[ignore = "run by a_killed_process_loses_nothing_in_its_spool, in a child process"]
fn spool_child() {
    let Ok(dir) = std::env::var("OTLPX_E2E_SPOOL_DIR") else {
        return;
    };
    let port: u16 = std::env::var("OTLPX_E2E_SPOOL_PORT")
        .unwrap()
        .parse()
        .unwrap();
    let n: u64 = std::env::var("OTLPX_E2E_SPOOL_SPANS")
        .unwrap()
        .parse()
        .unwrap();
    let engine = engine((port, port), Protocol::Grpc, Path::new(&dir))
        .batch_export_timeout(Duration::from_millis(300))
        .max_batch_spans(200)
        .build()
        .unwrap();
    record(&engine, n);
    loop {
        println!("spooled {}", engine.stats().spool.written);
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_killed_process_loses_nothing_in_its_spool() {
    const N: u64 = 20_000;
    // Killed once everything is spooled, then while it is still spooling.
    for kill_at in [N, N / 4] {
        let dir = TempDir::new(&format!("kill-{kill_at}"));
        let ports = unused_ports().unwrap();
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["spool_child", "--exact", "--ignored", "--nocapture"])
            .env("OTLPX_E2E_SPOOL_DIR", &dir.0)
            .env("OTLPX_E2E_SPOOL_PORT", ports.0.to_string())
            .env("OTLPX_E2E_SPOOL_SPANS", N.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let start = Instant::now();
        let mut spooled = 0;
        for line in std::io::BufReader::new(child.stdout.take().unwrap()).lines() {
            let line = line.unwrap();
            if let Some(n) = line.strip_prefix("spooled ") {
                spooled = n.parse().unwrap();
                if spooled >= kill_at {
                    break;
                }
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "child stuck at {spooled}"
            );
        }
        // SIGKILL: no destructor, no flush, no fsync.
        child.kill().unwrap();
        child.wait().unwrap();

        let receiver = receiver_on(ports);
        let engine = engine(ports, Protocol::Grpc, &dir.0).build().unwrap();
        engine.flush(Duration::from_secs(60)).unwrap();
        let s = engine.stats();
        assert_identity(&s, "after kill");
        // Everything the child counted spooled was on disk; a request
        // being written at the kill may be there too, or torn and counted.
        assert!(s.spool.restored >= spooled, "{spooled} spooled, {s:?}");
        assert_eq!(
            s.exported + s.dropped.spool_corrupt,
            s.spool.restored,
            "{s:?}"
        );
        // Linux may cut a file write short when SIGKILL arrives (it checks
        // for a fatal signal between pages): at most the one record being
        // written (200 spans) is torn.
        assert!(
            s.spool.corrupt_records <= 1 && s.dropped.spool_corrupt <= 200,
            "a killed process tears at most the write under way: {s:?}"
        );
        let seen = received(&receiver);
        assert_eq!(seen.len() as u64, s.spool.restored, "kill at {kill_at}");
        assert!(seen.values().all(|&n| n == 1), "no duplicates");
    }
}

#[test]
fn requests_evicted_from_a_full_budget_go_to_the_spool() {
    let dir = TempDir::new("evicted");
    let ports = unused_ports().unwrap();
    // Small rings and byte budget, so that the budget fills and rings
    // pass half full while the receiver is down: the oldest request
    // waiting for a retry is evicted, into the spool. (Requests waiting
    // for a retry hold bytes, not send slots: the byte budget is what
    // fills.)
    let engine = engine(ports, Protocol::Grpc, &dir.0)
        .ring_bytes_per_cpu(256 << 10)
        .max_in_flight(2)
        .max_in_flight_bytes(64 << 10)
        .max_batch_spans(200)
        .build()
        .unwrap();
    const N: u64 = 20_000;
    let tracer = engine.tracer("e2e-spool", "");
    let start = Instant::now();
    for i in 0..N {
        let mut span = tracer.start("op");
        span.set_attribute("i", i as i64);
        span.end();
        // About 10,000 spans a second.
        if i % 100 == 99 {
            let due = Duration::from_micros(i * 100);
            std::thread::sleep(due.saturating_sub(start.elapsed()));
        }
    }
    let s = engine.stats();
    assert!(s.spool.written > 0, "nothing spooled while down: {s:?}");
    assert_eq!(s.dropped.evicted, 0, "evicted requests are spooled: {s:?}");

    let receiver = receiver_on(ports);
    engine.flush(Duration::from_secs(60)).unwrap();
    let s = engine.stats();
    assert_identity(&s, "evicted");
    assert_eq!(s.recorded, N);
    assert_eq!((s.spooled, s.in_flight, s.in_rings), (0, 0, 0), "{s:?}");
    // Only a ring too full for the eviction pace could lose spans, and
    // says so.
    assert_eq!(s.exported + s.dropped.ring_full, N, "{s:?}");
    let seen = received(&receiver);
    assert_eq!(seen.len() as u64, s.exported);
    assert!(seen.values().all(|&n| n == 1), "no duplicates");
}

/// The receiver refuses everything with `fault`; an engine spools what
/// it records (a 1 s deadline, shorter than any hint here, so requests go
/// to the spool at once) until the drainer's first attempt has failed too
/// and paused it. Returns the engine, the receiver and when the pause
/// began (at most a poll late).
fn spool_and_pause(dir: &Path, fault: Fault, n: u64) -> (Engine, Receiver, Instant) {
    let receiver = receiver_on(unused_ports().unwrap());
    receiver.set_fault(fault);
    let ports = (receiver.grpc_addr().port(), receiver.http_addr().port());
    let engine = engine(ports, Protocol::Grpc, dir)
        .batch_export_timeout(Duration::from_secs(1))
        .build()
        .unwrap();
    record(&engine, n);
    // Live requests are not retried (the hint is past their deadline):
    // each fails once, and every retry is a drainer's attempt. Paused
    // once every attempt it made has failed (it sends nothing after a
    // failure, and counts an attempt before it can see one).
    // The pause began when the first attempt failed: seen within a poll.
    let give_up = Instant::now() + Duration::from_secs(30);
    let mut first_failure = None;
    loop {
        let s = engine.stats();
        let f = &s.export.failures;
        let drainer_failed = (f.unavailable + f.throttled).saturating_sub(s.export.requests);
        if drainer_failed > 0 {
            first_failure.get_or_insert_with(Instant::now);
        }
        if let Some(paused) = first_failure
            && s.spool.written == n
            && s.export.retries == drainer_failed
        {
            return (engine, receiver, paused);
        }
        assert!(Instant::now() < give_up, "never spooled and paused: {s:?}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn the_spool_drains_as_soon_as_a_live_request_is_answered() {
    let dir = TempDir::new("wake");
    // UNAVAILABLE with a 60 s hint: the drainer pauses for 60 s.
    let (engine, receiver, _) = spool_and_pause(
        &dir.0,
        refuse(14, 503, hint(Duration::from_secs(60), false)),
        1000,
    );
    receiver.set_fault(Fault::None);
    // A live request answered shows the receiver is back: the spool
    // drains now, not when the pause ends.
    record(&engine, 10);
    engine
        .flush(Duration::from_secs(20))
        .expect("the spool drained long before its 60 s pause would end");
    let s = engine.stats();
    assert_identity(&s, "wake");
    assert_eq!(
        (s.exported, s.spooled, s.spool.delivered),
        (1010, 0, 1000),
        "{s:?}"
    );
    let seen = received(&receiver);
    assert_eq!(seen.len(), 1010);
    assert!(seen.values().all(|&n| n == 1), "no duplicates");
}

#[test]
fn a_throttled_spool_waits_out_the_receivers_hint() {
    let dir = TempDir::new("throttled");
    // RESOURCE_EXHAUSTED with RetryInfo: the receiver asked for 4 s.
    let asked = Duration::from_secs(4);
    let (engine, receiver, paused) =
        spool_and_pause(&dir.0, refuse(8, 429, hint(asked, false)), 1000);
    receiver.set_fault(Fault::None);
    record(&engine, 10);
    assert!(receiver.wait_for_spans(10, Duration::from_secs(10)));
    // The live spans went; the spool still waits, as it was asked to.
    if paused.elapsed() < asked - Duration::from_millis(500) {
        assert_eq!(engine.stats().spooled, 1000);
    }
    engine.flush(Duration::from_secs(20)).unwrap();
    // Slack for a late poll on a loaded machine; draining at once would
    // take ~0.1 s.
    let waited = paused.elapsed();
    assert!(waited >= asked - Duration::from_millis(500), "{waited:?}");
    let s = engine.stats();
    assert_identity(&s, "throttled");
    assert_eq!((s.exported, s.spool.delivered), (1010, 1000), "{s:?}");
    assert!(
        received(&receiver).values().all(|&n| n == 1),
        "no duplicates"
    );
}
