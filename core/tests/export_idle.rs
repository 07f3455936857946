//! Pinned and unpinned workers both export, and an idle worker sleeps,
//! waking no more often for a signal nothing records (metrics, woken by
//! their first record, are not polled). In a file of its own so that no
//! other test's workers run in the process while it looks at its worker
//! thread in `/proc`.
#![cfg(target_os = "linux")]

use otlpx::Engine;
use otlpx::transport::{ExportFuture, ExportRequest, ExportResponse, Transport};
use std::sync::Arc;
use std::time::Duration;

struct Accept;

impl Transport for Accept {
    fn export(&self, _request: ExportRequest) -> ExportFuture {
        Box::pin(async { Ok(ExportResponse::accepted()) })
    }
}

/// CPU time (user + system, clock ticks) and allowed CPUs of this process's
/// thread named `name`.
#[cfg(target_os = "linux")]
fn thread_info(name: &str) -> Option<(u64, String)> {
    for task in std::fs::read_dir("/proc/self/task").ok()? {
        let dir = task.ok()?.path();
        if std::fs::read_to_string(dir.join("comm")).ok()?.trim() != name {
            continue;
        }
        let stat = std::fs::read_to_string(dir.join("stat")).ok()?;
        // Fields after the parenthesised name; utime and stime are 14, 15.
        let rest = &stat[stat.rfind(')')? + 2..];
        let f: Vec<&str> = rest.split(' ').collect();
        let ticks = f[11].parse::<u64>().ok()? + f[12].parse::<u64>().ok()?;
        let status = std::fs::read_to_string(dir.join("status")).ok()?;
        let cpus = status
            .lines()
            .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))?
            .trim()
            .to_owned();
        return Some((ticks, cpus));
    }
    None
}

/// How often this process's thread named `name` has slept and been woken
/// (its voluntary context switches).
#[cfg(target_os = "linux")]
fn wakeups(name: &str) -> Option<u64> {
    for task in std::fs::read_dir("/proc/self/task").ok()? {
        let dir = task.ok()?.path();
        if std::fs::read_to_string(dir.join("comm")).ok()?.trim() != name {
            continue;
        }
        let status = std::fs::read_to_string(dir.join("status")).ok()?;
        return status
            .lines()
            .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))?
            .trim()
            .parse()
            .ok();
    }
    None
}

#[cfg(target_os = "linux")]
#[test]
fn pinned_and_unpinned_workers_export_and_an_idle_worker_sleeps() {
    let all_cpus = std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| {
            l.strip_prefix("Cpus_allowed_list:")
                .map(|s| s.trim().to_owned())
        })
        .unwrap();
    for pin in [true, false] {
        let engine = Engine::builder()
            .transport(Arc::new(Accept))
            .pin_workers(pin)
            .worker_cores([0])
            .schedule_delay(Duration::from_millis(100))
            .build()
            .unwrap();
        let expected = if pin { vec![Some(0)] } else { vec![None] };
        assert_eq!(engine.worker_cores(), expected);
        let (_, cpus) = thread_info("otlpx-worker-0").unwrap();
        assert_eq!(
            cpus,
            if pin {
                "0".to_owned()
            } else {
                all_cpus.clone()
            }
        );

        let tracer = engine.tracer("idle", "");
        for _ in 0..2000 {
            tracer.start("op").end();
        }
        engine.flush(Duration::from_secs(10)).unwrap();
        assert_eq!(engine.stats().exported, 2000, "pinned: {pin}");

        // Idle for a second: the worker wakes ten times (the delay) and
        // uses next to no CPU. A spinning worker would take ~100 ticks.
        let (before, _) = thread_info("otlpx-worker-0").unwrap();
        std::thread::sleep(Duration::from_secs(1));
        let (after, _) = thread_info("otlpx-worker-0").unwrap();
        assert!(
            after - before <= 3,
            "idle worker used {} ticks",
            after - before
        );
        engine.shutdown(Duration::from_secs(5)).unwrap();
    }

    // Every signal exported, at the default delays (traces and logs 1 s;
    // metrics 100 ms, but counted from their first record, which wakes the
    // worker): idle, the worker wakes about once a second. Polling the
    // metrics' empty rings at their delay would wake it ten times as often.
    let engine = Engine::builder()
        .transport(Arc::new(Accept))
        .workers(1)
        .pin_workers(false)
        .build()
        .unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let before = wakeups("otlpx-worker-0").unwrap();
    std::thread::sleep(Duration::from_secs(2));
    let after = wakeups("otlpx-worker-0").unwrap();
    assert!(
        after - before <= 6,
        "an idle worker woke {} times in 2 s",
        after - before
    );
    engine.shutdown(Duration::from_secs(5)).unwrap();
}
