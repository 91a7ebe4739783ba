#!/usr/bin/env bash
# LockFreeQueue vs queue.SimpleQueue on its target workloads, on free-threaded
# CPython 3.13t (scripts/build-python313t.sh, cached) and the machine's python3.
#
#   scripts/run-bench-pyqueue.sh [--rounds 7] [--items 200000]
#
# Build trees: build-bench/pyq-python3 and build-bench/pyq-313t (ignored by git).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
mkdir -p build-bench
py313t=$(bash scripts/build-python313t.sh | tail -n1)
for pair in "313t:$py313t" "python3:$(command -v python3)"; do
  tag=${pair%%:*}
  py=${pair#*:}
  dir=build-bench/pyq-$tag
  cmake -S "$root" -B "$dir" -DCMAKE_BUILD_TYPE=Release -DCC_PYTHON=ON \
    -DPython3_EXECUTABLE="$py" -DCC_BUILD_TESTS=OFF -DCC_BUILD_BENCH=OFF >"$dir.configure.log" 2>&1
  cmake --build "$dir" -j2 --target cc_python_core >"$dir.build.log" 2>&1
  PYTHONPATH="$root/$dir/python" "$py" bench/python/bench_queue_targets.py "$@"
done
