#!/usr/bin/env bash
# SMR benchmark: stack and queue throughput with only the reclamation swapped
# (our SMR, leaky, ck_epoch, liburcu call_rcu), then the same cells taken
# apart (smr-sections, smr-nofree), then our SMR and ck_epoch at a 4 x larger
# retire threshold (256). Builds Release into build-bench/ and tees
# the tables to bench/results/smr_bench.txt.
# Also runs fence_cost (the per-section barrier's price, and membarrier's) and
# revoke_cost (what revoking idle threads costs a reclaiming thread).
#   scripts/run-bench-smr.sh [rounds=9] [pairs_per_thread=400000]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-deps.sh
cmake -S . -B build-bench -DCMAKE_BUILD_TYPE=Release -DCC_BUILD_TESTS=OFF -DCC_BUILD_BENCH=ON >/dev/null
cmake --build build-bench -j"$(nproc)" --target smr_bench fence_cost revoke_cost >/dev/null
mkdir -p bench/results
# smr_bench with this script's arguments (rounds, pairs per thread).
smr_bench() { build-bench/bench/smr/smr_bench "${rounds}" ${pairs:+"$pairs"}; }
rounds=${1:-9} pairs=${2:-}
{ echo "# smr_bench $(date -u +%Y-%m-%dT%H:%M:%SZ), commit $(git rev-parse --short HEAD 2>/dev/null || echo '?'), $(nproc) CPUs, load $(cut -d' ' -f1 /proc/loadavg)"
  smr_bench
  echo
  echo "# decomposition: leaky -> smr-sections (+ our sections) -> smr-nofree (+ retire"
  echo "# bookkeeping, nodes leaked) -> smr (+ the frees, and node reuse)"
  SMR_BENCH_SCHEMES=smr,smr-sections,smr-nofree smr_bench | grep -v '^#'
  echo
  echo "# a 4 x larger retire threshold (256; ck_epoch polls at the same threshold)"
  CONCURRENT_COLLECTIONS_RETIRE_THRESHOLD=256 SMR_BENCH_SCHEMES=smr,ck_epoch smr_bench | grep -v '^#'
  echo
  build-bench/bench/smr/fence_cost
  CONCURRENT_COLLECTIONS_SMR_FENCE=always build-bench/bench/smr/fence_cost 20000000 lib
  echo
  build-bench/bench/smr/revoke_cost; } | tee bench/results/smr_bench.txt
