#!/usr/bin/env python3
"""Medians and same-run ratios of `otlpx-bench run --json` results.

Usage: python3 benches/matrix_summary.py target/matrix/*.jsonl

Lines are grouped into runs: an otlpx line and the otel-sdk line that
follows it with the same protocol, compression, threads (and rate, told
apart by the recorded count being paced). For each configuration it
prints, over the rounds, the median of each engine's figures and the
median of the per-run ratios (otlpx better when > 1).
"""
import json
import statistics
import sys
from collections import defaultdict


def key(r, paced):
    return (r["protocol"], r["compression"], r["threads"], paced)


def main(paths):
    rows = []
    for path in paths:
        with open(path) as f:
            rows += [json.loads(line) for line in f if line.strip()]
    runs = defaultdict(list)
    i = 0
    while i + 1 < len(rows):
        a, b = rows[i], rows[i + 1]
        if a["engine"] == "otlpx" and b["engine"] == "otel-sdk":
            # A paced run records about rate x duration; flat out, far more.
            paced = a["spans_recorded"] / a["duration_s"] < 600_000 and a["threads"] == 2 \
                and b["spans_recorded"] / b["duration_s"] < 600_000
            runs[key(a, paced)].append((a, b))
            i += 2
        else:
            i += 1
    med = statistics.median
    for k, pairs in runs.items():
        proto, comp, threads, paced = k
        title = f"{proto} {comp}, {threads} producer(s)" + (", paced 500k spans/s" if paced else "")
        print(f"\n{title}  ({len(pairs)} runs)")
        print(f"  {'':24}{'otlpx':>14}{'otel-sdk':>14}{'ratio':>9}")

        def line(name, f, better_high=True, fmt="{:,.0f}"):
            xs = [f(a) for a, _ in pairs]
            ys = [f(b) for _, b in pairs]
            ratios = [(x / y if better_high else y / x) for x, y in zip(xs, ys) if x and y]
            r = f"{med(ratios):.2f}x" if ratios else "-"
            print(f"  {name:24}{fmt.format(med(xs)):>14}{fmt.format(med(ys)):>14}{r:>9}")

        line("exported spans/s", lambda r: r["spans_per_sec"])
        line("recorded", lambda r: r["spans_recorded"])
        line("dropped %", lambda r: 100 * r["spans_dropped"] / max(1, r["spans_recorded"]),
             better_high=False, fmt="{:.1f}")
        for p in ("p50", "p99", "p999"):
            line(f"record ns {p}", lambda r, p=p: r["record_ns"][p], better_high=False)
        line("CPU s / M exported", lambda r: r["cpu_s_per_million"] or 0, better_high=False,
             fmt="{:.3f}")
        line("peak RSS MiB", lambda r: r["peak_rss_mib"], better_high=False, fmt="{:.1f}")


if __name__ == "__main__":
    main(sys.argv[1:])
