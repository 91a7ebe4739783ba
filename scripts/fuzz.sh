#!/usr/bin/env bash
# Builds the libFuzzer targets with ASan+UBSan (clang) and runs each for a
# bounded time, starting from the checked-in corpus in fuzz/corpus/<target>.
# New inputs go to a scratch directory, so the checked-in corpus stays as is.
# Any finding fails the run; the crashing input is kept in build-test/fuzz/.
#   FUZZ_SECONDS=60 scripts/fuzz.sh
set -uo pipefail
cd "$(dirname "$0")/.."
seconds=${FUZZ_SECONDS:-60}
bash scripts/setup-deps.sh || exit 1
dir=build-test/fuzz
mkdir -p build-test
CC=clang cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCC_FUZZ=ON -DCC_SANITIZE=address \
  -DCC_BUILD_TESTS=OFF -DCC_BUILD_BENCH=OFF -DCC_BUILD_EXAMPLES=OFF >"$dir.configure.log" 2>&1 \
  || { cat "$dir.configure.log"; exit 1; }
cmake --build "$dir" -j"$(nproc)" 2>&1 | grep -E "warning|error" ; [ "${PIPESTATUS[0]}" -eq 0 ] || exit 1
rc=0
for target in fuzz_alloc fuzz_api; do
  for backend in mimalloc debug; do
    scratch=$(mktemp -d)
    echo "== $target ($backend backend), $((seconds / 2))s"
    CONCURRENT_COLLECTIONS_ALLOCATOR=$backend UBSAN_OPTIONS=halt_on_error=1 \
      "$dir/fuzz/$target" -max_total_time=$((seconds / 2)) -max_len=4096 -timeout=20 \
      -artifact_prefix="$dir/$target-$backend-" -print_final_stats=0 \
      "$scratch" "fuzz/corpus/$target" 2>&1 | grep -E "^Done |ERROR|SUMMARY|mismatch|Test unit written" \
      ; [ "${PIPESTATUS[0]}" -eq 0 ] || { echo "  FINDING in $target ($backend)"; rc=1; }
    rm -rf "$scratch"
  done
done
exit $rc
