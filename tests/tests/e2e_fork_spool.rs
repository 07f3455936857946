//! A forked child does not keep its parent's spool directory locked: the
//! child closes its copy of the lock file's descriptor (the parent keeps
//! the spool), so once the parent's engine has shut down, a new engine
//! opens the same directory while the child still lives.
//!
//! One test in this file: forking a test binary while other tests run is
//! asking for trouble.

mod fork_support;

use fork_support::{fork_child, wait_child};
use otlpx::Engine;
use otlpx_bench::receiver::unused_ports;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How long the child lives after the fork: longer than the parent takes
/// to shut its engine down and open another.
const CHILD_LIVES: Duration = Duration::from_secs(2);

/// A fresh directory for the test's spool, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "otlpx-e2e-fork-spool-{}-{name}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        Self(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// An engine spooling to `dir`, exporting to a port nobody listens on (it
/// never records a span, so it never sends).
fn engine(dir: &Path, port: u16) -> Result<Engine, otlpx::BuildError> {
    Engine::builder()
        .service_name("e2e-fork-spool")
        .endpoint(format!("http://127.0.0.1:{port}"))
        .spool_dir(dir)
        .build()
}

#[test]
fn a_forked_child_does_not_keep_the_parents_spool_locked() {
    let dir = TempDir::new("lock");
    let (port, _) = unused_ports().unwrap();
    let first = engine(&dir.0, port).unwrap();

    let forked = Instant::now();
    let pid = fork_child(|| {
        std::thread::sleep(CHILD_LIVES);
        0
    });
    first.shutdown(Duration::from_secs(1)).unwrap();
    let second = engine(&dir.0, port);
    // The child's sleep began after `forked`: it was alive until now.
    let child_alive = forked.elapsed() < CHILD_LIVES;
    let code = wait_child(pid);
    assert!(child_alive, "too slow to tell: the child may have left");
    match second {
        Ok(second) => second.shutdown(Duration::from_secs(1)).unwrap(),
        Err(e) => panic!("the directory stayed locked while the child lived: {e}"),
    };
    assert_eq!(code, 0);
}
