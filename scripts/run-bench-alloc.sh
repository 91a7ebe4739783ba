#!/usr/bin/env bash
# Build the allocation benchmark (Release) into build-bench/ and run it.
#   scripts/run-bench-alloc.sh            full run (~45 s), table in bench/results/alloc_bench.txt
#   scripts/run-bench-alloc.sh --quick    smoke run (~6 s), bench/results/alloc_bench-quick.txt
# Other arguments go to alloc_bench (--rounds N, --ms N). BUILD_DIR overrides build-bench/.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${BUILD_DIR:-$root/build-bench}"

"$root/scripts/setup-deps.sh"   # mimalloc, jemalloc, tcmalloc, cmake ... when missing

cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DCC_BUILD_TESTS=OFF -DCC_BUILD_BENCH=ON >/dev/null
cmake --build "$build" -j"$(nproc)" --target alloc_bench alloc_bench_peer

out="$root/bench/results/alloc_bench.txt"
for arg in "$@"; do
  [ "$arg" = "--quick" ] && out="$root/bench/results/alloc_bench-quick.txt"
done
mkdir -p "$(dirname "$out")"
"$build/bench/alloc/alloc_bench" "$@" | tee "$out"
echo "(saved to ${out#"$root"/})"
