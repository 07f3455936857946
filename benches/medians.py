#!/usr/bin/env python3
"""Print the medians of the last `cargo bench -p otlpx-bench` run, with the
ratios BENCHMARKS.md reports, as a Markdown table.

Criterion's console line shows its mean/slope estimate; the medians live in
target/criterion/<group>/<id>/new/estimates.json. Usage, from the workspace
root:  python3 benches/medians.py [target/criterion]
"""

import json
import pathlib
import sys

root = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "target/criterion")


def median_ns(bench: str) -> float | None:
    # Criterion keeps `group/function/param` ids as `group/function_param`.
    group, _, rest = bench.partition("/")
    path = root / group / rest.replace("/", "_") / "new" / "estimates.json"
    if not path.exists():
        return None
    return json.loads(path.read_text())["median"]["point_estimate"]


rows = [
    ("record_span/otlpx/1thread", "start + 8 attributes + end, 1 thread"),
    ("record_span/opentelemetry_sdk/1thread", "same span, opentelemetry SDK (no exporter)"),
    ("record_span/opentelemetry_sdk_exporting/1thread", "same span, SDK + SimpleSpanProcessor + discarding exporter"),
    ("record_span/otlpx/2threads", "per span, each of 2 threads recording at once"),
    ("record_span/opentelemetry_sdk/2threads", "same, opentelemetry SDK (no exporter)"),
    ("record_span/opentelemetry_sdk_exporting/2threads", "same, SDK + SimpleSpanProcessor + discarding exporter"),
    ("encode_batch/otlpx_frame", "frame 512 recorded spans into a request"),
    ("encode_batch/prost_structs", "build 512 opentelemetry-proto spans + prost encode"),
    ("encode_batch/memcpy", "copy as many bytes as the request"),
]

m = {name: median_ns(name) for name, _ in rows}
print("| benchmark | what | median |")
print("|---|---|---|")
for name, what in rows:
    v = m[name]
    shown = "n/a" if v is None else (f"{v:.1f} ns" if v < 10_000 else f"{v / 1000:.2f} µs")
    print(f"| `{name}` | {what} | {shown} |")


def ratio(a: str, b: str) -> str:
    if m[a] is None or m[b] is None:
        return "n/a"
    return f"{m[a] / m[b]:.2f}"


print()
print("| ratio (same run) | value |")
print("|---|---|")
print(f"| record_span 1 thread: opentelemetry SDK / otlpx | {ratio('record_span/opentelemetry_sdk/1thread', 'record_span/otlpx/1thread')}× |")
print(f"| record_span 1 thread: SDK exporting / otlpx | {ratio('record_span/opentelemetry_sdk_exporting/1thread', 'record_span/otlpx/1thread')}× |")
print(f"| record_span 2 threads: opentelemetry SDK / otlpx | {ratio('record_span/opentelemetry_sdk/2threads', 'record_span/otlpx/2threads')}× |")
print(f"| record_span 2 threads: SDK exporting / otlpx | {ratio('record_span/opentelemetry_sdk_exporting/2threads', 'record_span/otlpx/2threads')}× |")
print(f"| encode_batch: prost structs / otlpx frame | {ratio('encode_batch/prost_structs', 'encode_batch/otlpx_frame')}× |")
print(f"| encode_batch: otlpx frame / memcpy | {ratio('encode_batch/otlpx_frame', 'encode_batch/memcpy')}× |")
