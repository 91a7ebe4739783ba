#!/usr/bin/env bash
# Queue benchmark: the segment queue against cc_queue (Michael-Scott, the
# baseline), a mutex + ring, liburcu's cds_wfcq and Concurrency Kit's
# ck_fifo_mpmc; pairs at 1/2/4/8 threads and producer/consumer loads.
# Interleaved rounds, medians, ratios to cc_queue from the same run.
# Builds Release into build-bench/, tees the table to
# bench/results/queue_bench.txt and writes bench/results/queue_bench.csv.
#   scripts/run-bench-queue.sh [rounds=7] [items_per_cell=400000]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-deps.sh
cmake -S . -B build-bench -DCMAKE_BUILD_TYPE=Release -DCC_BUILD_TESTS=OFF -DCC_BUILD_BENCH=ON >/dev/null
cmake --build build-bench -j"$(nproc)" --target queue_bench >/dev/null
mkdir -p bench/results
rounds=${1:-7} items=${2:-400000}
{ echo "# queue_bench $(date -u +%Y-%m-%dT%H:%M:%SZ), commit $(git rev-parse --short HEAD 2>/dev/null || echo '?'), $(nproc) CPUs, load $(cut -d' ' -f1 /proc/loadavg)"
  build-bench/bench/queue/queue_bench "$rounds" "$items" bench/results/queue_bench.csv; } \
  | tee bench/results/queue_bench.txt
