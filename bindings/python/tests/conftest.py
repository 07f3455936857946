"""Fixtures: the embedded OTLP receiver (`otlpx-bench sink --dump`), run
as a child process, and helpers to read what it received.

Nothing is built here: `cargo build -p otlpx-ffi -p otlpx-bench` must have
run (run-tests.sh does). The receiver is `$OTLPX_BENCH`, else the
checkout's target/debug/otlpx-bench; the library `$OTLPX_LIBRARY`, else
the checkout's target/debug/libotlpx_ffi.so (the build just made, rather
than whatever target/release holds).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
_DEBUG_LIB = ROOT / "target" / "debug" / ("libotlpx_ffi.dylib" if sys.platform == "darwin" else "libotlpx_ffi.so")
if "OTLPX_LIBRARY" not in os.environ and _DEBUG_LIB.exists():
    os.environ["OTLPX_LIBRARY"] = str(_DEBUG_LIB)

# Spans may take this long to reach the receiver once flushed.
WAIT_S = 15.0


def bench_binary() -> Path:
    path = Path(os.environ.get("OTLPX_BENCH", ROOT / "target" / "debug" / "otlpx-bench"))
    if not path.exists():
        pytest.fail(f"{path} not found: run `cargo build -p otlpx-bench` first (or set OTLPX_BENCH)")
    return path


class Sink:
    """A running `otlpx-bench sink` on ephemeral ports, dumping every span
    it receives to a JSON-lines file."""

    def __init__(self, dump: Path) -> None:
        self.dump = dump
        self.proc = subprocess.Popen(
            [str(bench_binary()), "sink", "--grpc-port", "0", "--http-port", "0", "--dump", str(dump)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        first = self.proc.stdout.readline()
        # "otlpx-bench sink: gRPC http://127.0.0.1:P  HTTP http://127.0.0.1:Q"
        words = first.split()
        if "gRPC" not in words or "HTTP" not in words:
            self.proc.kill()
            raise RuntimeError(f"the sink did not start: {first!r} {self.proc.stderr.read()!r}")
        self.grpc = words[words.index("gRPC") + 1]
        self.http = words[words.index("HTTP") + 1]
        self.lines: list[str] = []
        # Drain the per-second count lines, so the pipe never fills.
        self._reader = threading.Thread(target=self._drain, daemon=True)
        self._reader.start()

    def _drain(self) -> None:
        for line in self.proc.stdout:
            self.lines.append(line)

    def spans(self) -> list[dict]:
        """Every span received so far (complete lines only)."""
        try:
            text = self.dump.read_text()
        except FileNotFoundError:
            return []
        return [json.loads(line) for line in text.split("\n")[:-1] if line]

    def wait_for(self, n: int, timeout: float = WAIT_S, settle: float = 0.3) -> list[dict]:
        """Waits until at least ``n`` spans arrived, then ``settle``
        seconds more (so that extra ones, duplicates, would show)."""
        deadline = time.monotonic() + timeout
        while True:
            got = self.spans()
            if len(got) >= n:
                time.sleep(settle)
                return self.spans()
            if time.monotonic() > deadline:
                return got
            time.sleep(0.02)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._reader.join(2)


@pytest.fixture
def sink(tmp_path):
    s = Sink(tmp_path / "spans.jsonl")
    try:
        yield s
    finally:
        s.stop()


@pytest.fixture
def engine_args(sink):
    """Arguments for an engine exporting to the sink, untouched by the
    environment, with a short batch delay."""
    return dict(endpoint=sink.grpc, ignore_environment=True, schedule_delay_ms=20)
