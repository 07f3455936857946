#!/usr/bin/env python3
"""The OpenTelemetry Python SDK exporting the same spans two ways, against
one running `otlpx-bench sink`:

* ``otlpx``: ``otlpx.SpanProcessor`` (record in ``on_end``, export on the
  engine's native threads);
* ``sdk``: the SDK's ``BatchSpanProcessor(OTLPSpanExporter(grpc))``.

Each variant runs in a child process of its own, so its CPU time
(``getrusage(RUSAGE_SELF)`` in the child, all its threads, from the first
span to the end of ``provider.shutdown()``) is its own. Per variant and
round: spans created, spans/s, CPU µs per span, spans the receiver got
(its count before and after; the SDK's queue may drop, so what arrived is
what counts) and spans exported per CPU-second; then medians over the
rounds, and otlpx ÷ sdk of spans exported per CPU-second.

    target/py-venv/bin/python benches/python/sdk_processor.py --seconds 10 --rounds 5

Needs opentelemetry-sdk, opentelemetry-exporter-otlp-proto-grpc and otlpx
(bindings/python/run-tests.sh installs them into target/py-venv), and a
built `otlpx-bench` (``$OTLPX_BENCH``, else target/release, else
target/debug) and libotlpx_ffi (``$OTLPX_LIBRARY``, else target/release,
else target/debug: build the release one for real figures).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import signal
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
VARIANTS = ("otlpx", "sdk")

# ---------------------------------------------------------------------------
# The child: one variant
# ---------------------------------------------------------------------------


def child_main(args: argparse.Namespace) -> None:
    try:
        import otlpx
    except ImportError:  # not installed: the checkout's
        sys.path.insert(0, str(ROOT / "bindings" / "python"))
        import otlpx
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider

    service = {"service.name": f"sdk-processor-{args.child}"}
    provider = TracerProvider(resource=Resource.create(service))
    if args.child == "otlpx":
        provider.add_span_processor(
            otlpx.SpanProcessor(endpoint=args.endpoint, ignore_environment=True, resource=service)
        )
    else:
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=args.endpoint, insecure=True)))
    tracer = provider.get_tracer("sdk_processor", "1.0")
    n_attrs, n_events = args.attributes, args.events
    keys = [f"attr.{j}" for j in range(n_attrs)]
    values = ["value", 42, 3.5, True, ("a", "b")]

    def one(i: int) -> None:
        attrs = {keys[j]: values[j % len(values)] for j in range(n_attrs)}
        attrs["i"] = i
        with tracer.start_as_current_span("GET /api/items", attributes=attrs) as span:
            for e in range(n_events):
                span.add_event("cache.miss", {"e": e})

    for i in range(min(1000, args.spans or 1000)):  # warm up: caches, connections
        one(i)
    time.sleep(0.2)
    r0 = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.perf_counter()
    created = 0
    if args.seconds:
        deadline = t0 + args.seconds
        while True:
            for _ in range(1000):
                one(created)
                created += 1
            if time.perf_counter() >= deadline:
                break
    else:
        for i in range(args.spans):
            one(i)
        created = args.spans
    t1 = time.perf_counter()
    provider.shutdown()
    t2 = time.perf_counter()
    r1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    print(json.dumps({"created": created, "loop_s": t1 - t0, "total_s": t2 - t0, "cpu_s": cpu}), flush=True)


# ---------------------------------------------------------------------------
# The parent: the sink, the rounds, the report
# ---------------------------------------------------------------------------


def find_sink() -> Path:
    env = os.environ.get("OTLPX_BENCH")
    if env:
        return Path(env)
    for profile in ("release", "debug"):
        p = ROOT / "target" / profile / "otlpx-bench"
        if p.exists():
            return p
    sys.exit("otlpx-bench not found: `cargo build --release -p otlpx-bench` (or set OTLPX_BENCH)")


class Sink:
    """`otlpx-bench sink` on ephemeral ports; its per-second lines give the
    spans received."""

    def __init__(self, path: Path) -> None:
        self.proc = subprocess.Popen(
            [str(path), "sink", "--grpc-port", "0", "--http-port", "0"],
            stdout=subprocess.PIPE,
            text=True,
        )
        words = self.proc.stdout.readline().split()
        if "gRPC" not in words:
            self.proc.kill()
            sys.exit("the sink did not start")
        self.grpc = words[words.index("gRPC") + 1]
        self.count = 0
        self.ticks = 0
        self._cv = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            m = re.search(r"\bspans=(\d+)", line)
            if m:
                with self._cv:
                    self.count = int(m.group(1))
                    self.ticks += 1
                    self._cv.notify_all()

    def settled_count(self, timeout: float = 30.0) -> int:
        """The count once two consecutive lines (a second apart) agree."""
        deadline = time.monotonic() + timeout
        with self._cv:
            last = None
            while time.monotonic() < deadline:
                tick = self.ticks
                self._cv.wait_for(lambda: self.ticks > tick, timeout=2.0)
                if self.count == last:
                    return self.count
                last = self.count
            return self.count

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def run_variant(args: argparse.Namespace, sink: Sink, variant: str) -> dict:
    before = sink.settled_count()
    cmd = [sys.executable, __file__, "--child", variant, "--endpoint", sink.grpc]
    cmd += ["--attributes", str(args.attributes), "--events", str(args.events)]
    cmd += ["--seconds", str(args.seconds)] if args.seconds else ["--spans", str(args.spans)]
    out = subprocess.run(cmd, check=True, stdout=subprocess.PIPE, text=True).stdout
    r = json.loads(out.strip().splitlines()[-1])
    exported = sink.settled_count() - before
    warmup = min(1000, args.spans or 1000)
    exported = max(0, exported - warmup)  # the warm-up spans arrive too
    r.update(
        variant=variant,
        exported=exported,
        spans_per_s=r["created"] / r["loop_s"],
        cpu_us_per_span=r["cpu_s"] / r["created"] * 1e6,
        exported_per_cpu_s=exported / r["cpu_s"] if r["cpu_s"] else 0.0,
    )
    return r


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--spans", type=int, default=100_000, help="spans per variant and round (default 100000)")
    p.add_argument("--seconds", type=float, default=0.0, help="run each variant this long instead of --spans")
    p.add_argument("--rounds", type=int, default=3, help="rounds (default 3); medians are reported")
    p.add_argument("--attributes", type=int, default=5, help="attributes per span (default 5)")
    p.add_argument("--events", type=int, default=1, help="events per span (default 1)")
    p.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated: otlpx,sdk")
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    p.add_argument("--child", choices=VARIANTS, help=argparse.SUPPRESS)
    p.add_argument("--endpoint", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        child_main(args)
        return

    variants = [v for v in args.variants.split(",") if v]
    sink = Sink(find_sink())
    rounds: dict[str, list[dict]] = {v: [] for v in variants}
    try:
        for r in range(args.rounds):
            for v in variants:
                res = run_variant(args, sink, v)
                rounds[v].append(res)
                if not args.json:
                    print(
                        f"round {r + 1} {v:>5}: {res['created']} spans, {res['spans_per_s']:,.0f} spans/s, "
                        f"{res['cpu_us_per_span']:.2f} CPU µs/span, {res['exported']} exported, "
                        f"{res['exported_per_cpu_s']:,.0f} exported/CPU-s",
                        file=sys.stderr,
                        flush=True,
                    )
    finally:
        sink.stop()

    keys = ("created", "exported", "spans_per_s", "cpu_us_per_span", "exported_per_cpu_s")
    medians = {v: {k: statistics.median(x[k] for x in rs) for k in keys} for v, rs in rounds.items()}
    result = {
        "config": {k: getattr(args, k) for k in ("spans", "seconds", "rounds", "attributes", "events")},
        "python": sys.version.split()[0],
        "medians": medians,
        "rounds": rounds,
    }
    if "otlpx" in medians and "sdk" in medians and medians["sdk"]["exported_per_cpu_s"]:
        result["ratio_exported_per_cpu_s"] = medians["otlpx"]["exported_per_cpu_s"] / medians["sdk"]["exported_per_cpu_s"]
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"{'variant':>8} {'spans':>9} {'exported':>9} {'spans/s':>10} {'CPU µs/span':>12} {'exported/CPU-s':>15}")
    for v, m in medians.items():
        print(
            f"{v:>8} {m['created']:>9.0f} {m['exported']:>9.0f} {m['spans_per_s']:>10,.0f} "
            f"{m['cpu_us_per_span']:>12.2f} {m['exported_per_cpu_s']:>15,.0f}"
        )
    if "ratio_exported_per_cpu_s" in result:
        print(f"otlpx ÷ sdk, spans exported per CPU-second: {result['ratio_exported_per_cpu_s']:.2f}x")


if __name__ == "__main__":
    main()
