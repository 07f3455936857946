"""Fork safety as a pre-fork server sees it: the provider and processor
are built in the parent, which forks; parent and child both keep
recording, and the receiver gets every span exactly once."""

from __future__ import annotations

import os
import signal
import time
from collections import Counter

import pytest
from _util import by_id
from opentelemetry.sdk.trace import TracerProvider

import otlpx

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")

CHILD_TIMEOUT_S = 30.0


def record(tracer, prefix: str, n: int) -> None:
    for i in range(n):
        with tracer.start_as_current_span(f"{prefix}-{i}", attributes={"i": i, "who": prefix}):
            pass


def fork_child(body) -> int:
    """Runs ``body`` in a forked child, which exits 0 if it returned True;
    returns the child's pid."""
    pid = os.fork()
    if pid == 0:  # the child: never return into pytest
        code = 1
        try:
            code = 0 if body() else 2
        finally:
            os._exit(code)
    return pid


def wait_child(pid: int) -> int:
    """The child's exit code, waiting at most CHILD_TIMEOUT_S."""
    deadline = time.monotonic() + CHILD_TIMEOUT_S
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            pytest.fail(f"the forked child did not finish within {CHILD_TIMEOUT_S}s")
        time.sleep(0.02)


def check_exactly(spans: list[dict], expected: dict[str, int]) -> None:
    want = [f"{p}-{i}" for p, n in expected.items() for i in range(n)]
    names = Counter(s["name"] for s in spans)
    dupes = {n: c for n, c in names.items() if c > 1}
    assert not dupes, f"received twice: {sorted(dupes)[:10]}"
    assert sorted(names) == sorted(want), (
        f"missing {sorted(set(want) - set(names))[:10]}, unexpected {sorted(set(names) - set(want))[:10]}"
    )
    by_id(spans)  # distinct span ids


@pytest.mark.parametrize("flush_before_fork", [True, False], ids=["flushed", "in-rings"])
def test_parent_and_child_both_export_after_fork(sink, engine_args, flush_before_fork):
    pre, k, m = 20, 30, 40
    processor = otlpx.SpanProcessor(**engine_args, service_name="fork")
    provider = TracerProvider()
    provider.add_span_processor(processor)
    tracer = provider.get_tracer("fork")
    record(tracer, "pre", pre)
    if flush_before_fork:
        assert processor.force_flush(10_000)
        assert len(sink.wait_for(pre, settle=0)) == pre

    def child() -> bool:
        record(tracer, "child", k)
        return processor.force_flush(10_000)

    pid = fork_child(child)
    record(tracer, "parent", m)
    assert processor.force_flush(10_000)
    assert wait_child(pid) == 0, "the child recorded and flushed"

    spans = sink.wait_for(pre + k + m)
    check_exactly(spans, {"pre": pre, "child": k, "parent": m})
    assert {s["resource"]["service.name"] for s in spans} == {"fork"}
    stats = processor.engine.stats()
    assert stats.recorded == pre + m and stats.dropped == 0, stats
    provider.shutdown()
