#!/usr/bin/env bash
# Max RSS of the soak (tests/regression/test_soak.c) under mimalloc 3 with the
# glue's setting (cross-thread reclaim on free off) and with mimalloc's own
# default (MIMALLOC_RECLAIM_ON_FREE=1), and under the system's mimalloc.
# Usage: scripts/run-soak-memory.sh [seconds, default 30]
# Builds go to build-test/soak-mem-{sys,mi3}. Figures: docs/mimalloc3.md.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-30}
mi_root=$(bash scripts/fetch-mimalloc3.sh | tail -n1)
mi_dir=$(find "$mi_root" -name mimalloc-config.cmake -printf '%h\n' | head -n1)
mkdir -p build-test
cmake -S . -B build-test/soak-mem-sys -DCC_BUILD_BENCH=OFF >/dev/null
cmake -S . -B build-test/soak-mem-mi3 -DCC_BUILD_BENCH=OFF -Dmimalloc_DIR="$mi_dir" >/dev/null
for b in sys mi3; do cmake --build build-test/soak-mem-$b -j2 --target test_soak >/dev/null; done
run() { # label build env...
  local label=$1 b=$2; shift 2
  echo "== $label"
  env "$@" CONCURRENT_COLLECTIONS_ALLOCATOR=mimalloc CC_SOAK_SECONDS="$secs" \
    build-test/soak-mem-$b/tests/regression/test_soak 2>&1 |
    awk '/soak: t=/ { split($0, a, "rss="); split(a[2], r, " "); split($0, c, "live="); split(c[2], l, " ");
                      n++; if (n % 10 == 0) printf "  t=%s rss/live %s/%s MiB\n", $3, r[1], l[1] }
         /soak: done|PASSED|FAILED  \]/ { print "  " $0 }'
}
run "system mimalloc" sys X=1
run "mimalloc 3, glue default (reclaim on free off)" mi3 X=1
run "mimalloc 3, MIMALLOC_RECLAIM_ON_FREE=1 (mimalloc's default)" mi3 MIMALLOC_RECLAIM_ON_FREE=1
