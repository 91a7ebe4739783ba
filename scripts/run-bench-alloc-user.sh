#!/usr/bin/env bash
# What statistics cost a program built the way a user builds it: installs the
# package (from a RelWithDebInfo build), compiles bench/alloc/user_stats_cost.c
# OUT OF TREE with `cc -O2 ... $(pkg-config --cflags --libs concurrent_collections)`,
# and runs it in fresh processes, interleaved: every round runs raw mi_malloc,
# the glue with statistics off and with statistics on, at 1 and 2 threads, in
# an order that rotates from round to round. Prints the median ns per
# alloc+free pair per thread and the median over rounds of (case / raw of the
# same round and thread count).
#
#   scripts/run-bench-alloc-user.sh [ROUNDS] [MS]        defaults: 9 rounds, 300 ms
# Env: BUILD_DIR (default build-bench-user), PREFIX (default /tmp/ccinst-alloc),
#      CC (default cc).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
rounds=${1:-9} ms=${2:-300}
build=${BUILD_DIR:-$root/build-bench-user}
prefix=${PREFIX:-/tmp/ccinst-alloc}
cc=${CC:-cc}

cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCC_BUILD_TESTS=OFF >/dev/null
cmake --build "$build" -j2 --target concurrent_collections concurrent_collections_static >/dev/null
cmake --install "$build" --prefix "$prefix" >/dev/null
pc=$(dirname "$(find "$prefix" -name concurrent_collections.pc | head -n1)")
libdir=$(cd "$pc/.." && pwd)

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp "$root/bench/alloc/user_stats_cost.c" "$work/"
(cd "$work" && "$cc" -O2 user_stats_cost.c -o user_stats_cost \
  $(PKG_CONFIG_PATH=$pc pkg-config --cflags --libs concurrent_collections) -pthread)
prog=$work/user_stats_cost
mkdir -p "$root/bench/results"
out=$root/bench/results/alloc_bench_user.txt
{
echo "built out of tree: $cc -O2 user_stats_cost.c \$(pkg-config --cflags --libs concurrent_collections) -pthread"
echo "prefix $prefix; $rounds rounds x ${ms} ms; $(nproc) cores"

cases=(raw off on)
for ((r = 0; r < rounds; r++)); do
  for ((i = 0; i < 3; i++)); do
    c=${cases[$(((i + r) % 3))]}
    for t in 1 2; do
      env -u CONCURRENT_COLLECTIONS_ENABLE_STATS LD_LIBRARY_PATH="$libdir" "$prog" "$c" "$t" "$ms" \
        | sed "s/^/$r /"
    done
  done
done >"$work/runs.txt"

python3 - "$work/runs.txt" <<'PY'
import sys, statistics as st
runs = {}
for line in open(sys.argv[1]):
    r, c, t, ns = line.split()
    runs[(int(r), c, int(t))] = float(ns)
rounds = sorted({k[0] for k in runs})
print(f"{'case':<6}{'threads':>8}{'ns/pair (median)':>18}{'x raw (median of per-round ratios)':>38}")
for t in (1, 2):
    for c in ("raw", "off", "on"):
        ns = [runs[(r, c, t)] for r in rounds]
        ratio = [runs[(r, c, t)] / runs[(r, "raw", t)] for r in rounds]
        print(f"{c:<6}{t:>8}{st.median(ns):>18.2f}{st.median(ratio):>38.3f}")
PY
} | tee "$out"
