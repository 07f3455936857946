//! `fork()` with an engine its caller drains (no exporter; also built
//! without the `export` feature): the child's rings start empty, so the
//! parent's pending spans come out of the parent only, the child's counts
//! start from zero, and the ids the forking thread draws in the child are
//! not the ones it draws in the parent.
//!
//! One test in this file: forking a test binary while other tests run is
//! asking for trouble. Not under miri, which cannot call `fork`.
#![cfg(not(miri))]

use bytes::BytesMut;
use otlpx::{Engine, SpanId};
use std::time::{Duration, Instant};

const BEFORE: usize = 40;
const CHILD: usize = 25;
const AFTER: usize = 15;
const IDS: usize = 8;

fn record(engine: &Engine, n: usize) {
    let tracer = engine.tracer("fork", "");
    for _ in 0..n {
        tracer.start("op").end();
    }
}

fn drain_all(engine: &Engine) -> usize {
    let mut out = BytesMut::new();
    let mut total = 0;
    loop {
        match engine.drain_traces(&mut out, 16) {
            0 => return total,
            n => total += n,
        }
    }
}

fn ids() -> Vec<[u8; 8]> {
    (0..IDS).map(|_| SpanId::random().0).collect()
}

/// The child's part: writes its ids to `fd`, then 0 if its checks hold.
fn child(engine: &Engine, fd: libc::c_int) -> i32 {
    let bytes: Vec<u8> = ids().concat();
    // SAFETY: `bytes` is valid for reads of its length.
    if unsafe { libc::write(fd, bytes.as_ptr().cast(), bytes.len()) } != bytes.len() as isize {
        return 9;
    }
    let s = engine.stats();
    if (s.recorded, s.in_rings, s.drained_by_caller) != (0, 0, 0) {
        return 10;
    }
    if drain_all(engine) != 0 {
        return 11; // The parent's spans: the parent drains them.
    }
    record(engine, CHILD);
    if drain_all(engine) != CHILD {
        return 12;
    }
    let s = engine.stats();
    if (s.recorded, s.drained_by_caller) != (CHILD as u64, CHILD as u64) {
        return 13;
    }
    0
}

#[test]
fn a_drained_engine_starts_empty_in_a_forked_child_with_fresh_ids() {
    let engine = Engine::builder()
        .export(false)
        .environment(Vec::<(String, String)>::new())
        .service_name("fork")
        .build()
        .unwrap();
    record(&engine, BEFORE);
    let _ = ids();
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two descriptors.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    // SAFETY: the child only uses the engine, writes to the pipe and
    // leaves with `_exit`.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0);
    if pid == 0 {
        let code =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| child(&engine, fds[1])))
                .unwrap_or(101);
        // SAFETY: ends the child at once.
        unsafe { libc::_exit(code) }
    }
    let parent_ids = ids();
    record(&engine, AFTER);
    assert_eq!(drain_all(&engine), BEFORE + AFTER);

    let deadline = Instant::now() + Duration::from_secs(20);
    let mut status = 0;
    loop {
        // SAFETY: `status` is a valid out-pointer.
        let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        if r == pid {
            break;
        }
        assert_eq!(r, 0);
        if Instant::now() >= deadline {
            // SAFETY: our child, not yet reaped.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            panic!("the child did not finish: deadlocked?");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(libc::WIFEXITED(status), "the child died of a signal");
    assert_eq!(libc::WEXITSTATUS(status), 0, "the child's check failed");
    let mut bytes = [0u8; IDS * 8];
    // SAFETY: `bytes` is valid for writes of its length; the child wrote
    // that much before it exited.
    let n = unsafe { libc::read(fds[0], bytes.as_mut_ptr().cast(), bytes.len()) };
    assert_eq!(n, bytes.len() as isize);
    for id in bytes.chunks_exact(8) {
        assert!(
            parent_ids.iter().all(|p| p != id),
            "the child drew the parent's id"
        );
    }
    // SAFETY: our descriptors, closed once.
    unsafe {
        libc::close(fds[0]);
        libc::close(fds[1]);
    }
}
