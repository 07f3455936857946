//! The admin endpoint: `/metrics` (Prometheus text), `/health`, `/ready`
//! and `/stats` (JSON), over HTTP/1.1 on a thread of its own. Opt-in, and
//! bound to 127.0.0.1 unless configured otherwise. It reads the engine's
//! counters; nothing here is on the recording path.
//!
//! STUB: to be written (issue 4).

use crate::telemetry::Stats;
use std::net::SocketAddr;
use std::time::Duration;

/// What one admin request sees, taken fresh for each request.
pub(crate) struct Snapshot {
    /// The engine's counters.
    pub(crate) stats: Stats,
    /// Whether the engine runs: built, and not shut down.
    pub(crate) running: bool,
}

/// A running admin endpoint; dropping it stops it.
pub(crate) struct AdminServer {
    addr: SocketAddr,
}

impl AdminServer {
    /// Binds `addr` and serves until dropped. `/ready` answers 200 when
    /// `running` and no export attempt failed within `ready_window` more
    /// recently than one succeeded, 503 otherwise.
    pub(crate) fn start(
        addr: SocketAddr,
        ready_window: Duration,
        snapshot: Box<dyn Fn() -> Snapshot + Send + Sync>,
    ) -> std::io::Result<Self> {
        let _ = (ready_window, snapshot);
        Ok(Self { addr })
    }

    /// The address it listens on (with the port the OS chose for port 0).
    pub(crate) fn local_addr(&self) -> SocketAddr {
        self.addr
    }
}
