#!/usr/bin/env bash
# usage: run_install_test.sh BUILD_DIR TEST_SRC_DIR CC
set -euo pipefail
build=$1 src=$2 cc=$3
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
prefix=$scratch/prefix
cmake --install "$build" --prefix "$prefix" >/dev/null
libdir=$(dirname "$(find "$prefix" -name concurrent_collections.pc)")/..
libdir=$(cd "$libdir" && pwd)

for h in config alloc smr stack queue segqueue; do
  test -f "$prefix/include/cc/$h.h" || { echo "missing include/cc/$h.h"; exit 1; }
done
test -f "$libdir/libconcurrent_collections.a" || { echo "missing static library"; exit 1; }
test -f "$libdir/libconcurrent_collections.so" || { echo "missing shared library"; exit 1; }

echo "== pkg-config: cc prog.c \$(pkg-config --cflags --libs concurrent_collections)"
export PKG_CONFIG_PATH=$libdir/pkgconfig
"$cc" "$src/user_prog.c" -o "$scratch/prog_pc" $(pkg-config --cflags --libs concurrent_collections)
LD_LIBRARY_PATH=$libdir "$scratch/prog_pc"

echo "== pkg-config --static"
"$cc" "$src/user_prog.c" -o "$scratch/prog_static" $(pkg-config --cflags concurrent_collections) \
  "$libdir/libconcurrent_collections.a" -lmimalloc -pthread
"$scratch/prog_static"

echo "== CMake: find_package(concurrent_collections)"
mkdir -p "$scratch/consumer"
cp "$src/CMakeLists.consumer.txt" "$scratch/consumer/CMakeLists.txt"
cp "$src/user_prog.c" "$scratch/consumer/"
cmake -S "$scratch/consumer" -B "$scratch/consumer/build" -DCMAKE_PREFIX_PATH="$prefix" \
  -DCMAKE_C_COMPILER="$cc" >/dev/null
cmake --build "$scratch/consumer/build" >/dev/null
"$scratch/consumer/build/user_prog"
echo "install test passed"
