#!/usr/bin/env bash
# usage: run_install_test.sh BUILD_DIR TEST_SRC_DIR CC MIMALLOC_DIR MIMALLOC_INCLUDE_DIR MIMALLOC_LIBRARY
# (the last three: the mimalloc the project was built with, from CMake)
set -euo pipefail
build=$1 src=$2 cc=$3 mi_dir=$4 mi_inc=$5 mi_lib=$6
mi_libdir=$(dirname "$mi_lib")
# A user whose mimalloc is not in the compiler's default paths adds its
# directories, as for any library without a .pc file.
mi_cflags=() mi_ldflags=()
if [ "$mi_inc" != /usr/include ]; then
  mi_cflags=(-I"$mi_inc") mi_ldflags=(-L"$mi_libdir")
  echo "== mimalloc from $mi_libdir (not the system's): -I/-L added for pkg-config users"
fi
# Every program must load the mimalloc the library was built with.
same_mimalloc() { # program
  local got
  got=$(LD_LIBRARY_PATH=$libdir:$mi_libdir ldd "$1" | awk '/libmimalloc/ {print $3}')
  [ "$(readlink -f "$got")" = "$(readlink -f "$mi_lib")" ] \
    || { echo "$1 loads mimalloc from '$got', built with $mi_lib"; exit 1; }
}
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
"$cc" "$src/user_prog.c" -o "$scratch/prog_pc" "${mi_cflags[@]}" $(pkg-config --cflags --libs concurrent_collections) "${mi_ldflags[@]}"
same_mimalloc "$scratch/prog_pc"
LD_LIBRARY_PATH=$libdir:$mi_libdir "$scratch/prog_pc"

echo "== pkg-config --static"
"$cc" "$src/user_prog.c" -o "$scratch/prog_static" "${mi_cflags[@]}" $(pkg-config --cflags concurrent_collections) \
  "$libdir/libconcurrent_collections.a" "${mi_ldflags[@]}" -lmimalloc -pthread
same_mimalloc "$scratch/prog_static"
LD_LIBRARY_PATH=$mi_libdir "$scratch/prog_static"

echo "== CMake: find_package(concurrent_collections)"
mkdir -p "$scratch/consumer"
cp "$src/CMakeLists.consumer.txt" "$scratch/consumer/CMakeLists.txt"
cp "$src/user_prog.c" "$scratch/consumer/"
cmake -S "$scratch/consumer" -B "$scratch/consumer/build" -DCMAKE_PREFIX_PATH="$prefix" \
  -Dmimalloc_DIR="$mi_dir" -DCMAKE_C_COMPILER="$cc" >/dev/null
cmake --build "$scratch/consumer/build" >/dev/null
same_mimalloc "$scratch/consumer/build/user_prog"
"$scratch/consumer/build/user_prog"
echo "install test passed"
