#!/usr/bin/env bash
# Python benchmark: builds the extension for the machine's python3 and for
# free-threaded CPython 3.13t (scripts/build-python313t.sh, cached), runs
# bench/python/bench_collections.py on each, and tees everything to
# bench/results/python_bench.txt.
#
#   scripts/run-bench-python.sh [bench args, e.g. --rounds 7]
#
# Build trees: build-bench/py-python3 and build-bench/py-313t (ignored by git).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
out=bench/results/python_bench.txt
mkdir -p bench/results build-bench

py313t=$(bash scripts/build-python313t.sh | tail -n1)
{
  echo "# concurrent_collections Python benchmark -- $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "# $(uname -srm), $(nproc) CPUs, commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
  for pair in "python3:$(command -v python3)" "313t:$py313t"; do
    tag=${pair%%:*}
    py=${pair#*:}
    dir=build-bench/py-$tag
    cmake -S "$root" -B "$dir" -DCMAKE_BUILD_TYPE=Release -DCC_PYTHON=ON \
      -DPython3_EXECUTABLE="$py" -DCC_BUILD_TESTS=OFF -DCC_BUILD_BENCH=OFF \
      -DCC_BUILD_EXAMPLES=OFF >"$dir.configure.log" 2>&1
    cmake --build "$dir" -j"$(nproc)" --target cc_python_core >"$dir.build.log" 2>&1 \
      || { echo "build for $py failed: see $dir.build.log" >&2; exit 1; }
    echo
    PYTHONPATH="$root/$dir/python" "$py" bench/python/bench_collections.py "$@"
  done
} 2>&1 | tee "$out"
echo "written: $out" >&2
