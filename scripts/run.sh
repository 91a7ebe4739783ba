#!/usr/bin/env bash
# The main job: build the library and run the example program, whose threads
# allocate, hand blocks to each other and free them, then print statistics.
# Installs what is missing first (scripts/setup-deps.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DCC_BUILD_TESTS=OFF >/dev/null
cmake --build build -j"$(nproc)" --target alloc_demo >/dev/null
exec ./build/examples/alloc_demo "$@"
