//! What the fork tests share: forking a child that runs a check and leaves
//! with `_exit`, and waiting for it with a bound.

use std::time::{Duration, Instant};

/// How long a child may take before it is taken for deadlocked.
pub const CHILD_DEADLINE: Duration = Duration::from_secs(20);

/// Forks; the child runs `check` and leaves with `_exit(code)` (0: pass),
/// running no destructor and nothing of the test harness; a panic is code
/// 101. Returns the child's pid, in the parent.
pub fn fork_child(check: impl FnOnce() -> i32) -> libc::pid_t {
    // SAFETY: the child only runs `check` (the engine's API, which the
    // engine's own fork handlers make usable there) and `_exit`.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork: {}", std::io::Error::last_os_error());
    if pid == 0 {
        let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(check)).unwrap_or(101);
        // SAFETY: ends the child at once, as a forked child of a
        // multi-threaded process should.
        unsafe { libc::_exit(code) }
    }
    pid
}

/// Waits for child `pid` for at most [`CHILD_DEADLINE`] and returns its
/// exit code; a child still running then is killed, and the test fails.
pub fn wait_child(pid: libc::pid_t) -> i32 {
    let deadline = Instant::now() + CHILD_DEADLINE;
    loop {
        let mut status = 0;
        // SAFETY: `status` is a valid out-pointer.
        let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        if r == pid {
            assert!(
                libc::WIFEXITED(status),
                "the child died of signal {}",
                libc::WTERMSIG(status)
            );
            return libc::WEXITSTATUS(status);
        }
        assert_eq!(r, 0, "waitpid: {}", std::io::Error::last_os_error());
        if Instant::now() >= deadline {
            // SAFETY: `pid` is our child, not yet reaped.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
                libc::waitpid(pid, &mut status, 0);
            }
            panic!("the child did not finish within {CHILD_DEADLINE:?}: deadlocked?");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}
