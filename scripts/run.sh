#!/usr/bin/env bash
# The main job: build the library and run examples/pipeline, a three-stage
# pipeline over the project's segment queue (producers allocate blocks,
# workers check and rewrite them in batches, consumers check and free them),
# printing progress each second, then throughput, the allocation statistics
# and the SMR statistics. Arguments go to the program (--seconds S, --items N,
# --producers/--workers/--consumers N, --quick).
# Installs what is missing first (scripts/setup-deps.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-deps.sh
echo "building (cmake, Release) ..."
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DCC_BUILD_TESTS=OFF >/dev/null
cmake --build build -j"$(nproc)" --target pipeline >/dev/null
exec ./build/examples/pipeline "$@"
