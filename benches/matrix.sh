#!/usr/bin/env bash
# The load-generator matrix of BENCHMARKS.md: otlpx and the opentelemetry
# SDK, same run, for gRPC/none, gRPC/gzip and HTTP/zstd with 1 and 2
# producers, then both at a paced 500k spans/s; ROUNDS rounds (default 3).
# JSON lines go to OUT (default target/matrix); then
#   python3 benches/matrix_summary.py target/matrix/*.jsonl
# prints medians and same-run ratios.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${ROUNDS:-3}
out=${OUT:-target/matrix}
duration=${DURATION:-10}
mkdir -p "$out"
cargo build --release -p otlpx-bench --bin otlpx-bench
bench=target/release/otlpx-bench
for round in $(seq 1 "$rounds"); do
    file="$out/round-$round.jsonl"
    : > "$file"
    for cfg in "grpc none" "grpc gzip" "http zstd"; do
        set -- $cfg
        for threads in 1 2; do
            "$bench" run --engine both --protocol "$1" --compression "$2" \
                --threads "$threads" --duration "$duration" --json >> "$file"
        done
    done
    "$bench" run --engine both --rate 500000 --threads 2 --duration "$duration" --json >> "$file"
done
