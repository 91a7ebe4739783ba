#!/usr/bin/env bash
# Install the Debian packages the project needs, only those that are missing.
# Works on Debian 12 (bookworm) and Debian 13 (trixie).
# Idempotent: a second run on a ready machine does no network work.
#
# An entry "a|b" is one requirement with alternatives: it is met when any of
# them is installed, and otherwise the first one apt knows is installed. The
# alternatives cover the names that differ between the releases:
#  - trixie renamed many runtime libraries with a t64 suffix (the 64-bit
#    time_t transition; e.g. libgoogle-perftools4 -> libgoogle-perftools4t64),
#    and on amd64 the old name survives only as a virtual package, which
#    dpkg-query and apt-get install do not accept (checked against
#    trixie's index: libgoogle-perftools4t64; libjemalloc2 kept its name);
#  - libclang-rt-dev (llvm-defaults) pulls the compiler runtime of the default
#    clang (14 on bookworm, 19 on trixie); libclang-rt-14-dev also meets it on
#    bookworm.
# libmimalloc-dev is 2.0.9 on bookworm and 3.0.1 on trixie; both work
# (docs/mimalloc3.md; scripts/test.sh runs the suite against 3.x on bookworm).
set -euo pipefail

PKGS=(
  build-essential cmake pkg-config clang llvm
  "libclang-rt-dev|libclang-rt-14-dev"  # sanitizer and libFuzzer runtimes for clang
  libmimalloc-dev              # the allocator under the glue
  libcmocka-dev                # unit-test framework (CTest runs the binaries)
  valgrind
  spin                         # model checker for src/smr_protocol.pml (scripts/model-check.sh)
  libck-dev liburcu-dev        # SMR peers for bench/
  libjemalloc2 "libgoogle-perftools4t64|libgoogle-perftools4"  # allocator peers for bench/ (LD_PRELOAD)
  python3-pytest               # Python test runner (also used with PYTHONPATH on 3.13t)
  python3-dev python3-venv      # venvs for the Python stages (scripts/python-env.sh)
  dpkg-dev debian-archive-keyring  # scripts/fetch-mimalloc3.sh: dpkg-deb, the trixie index's keys
)

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }
# A real package with a candidate version (not only a virtual name).
known() { apt-cache show --no-all-versions "$1" 2>/dev/null | grep -qx "Package: $1"; }

missing=()
for req in "${PKGS[@]}"; do
  met=0
  IFS='|' read -ra alts <<<"$req"
  for p in "${alts[@]}"; do installed "$p" && { met=1; break; }; done
  [ "$met" = 1 ] || missing+=("$req")
done
[ ${#missing[@]} -eq 0 ] && exit 0

SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
names=()
for req in "${missing[@]}"; do
  IFS='|' read -ra alts <<<"$req"
  pick=""
  for p in "${alts[@]}"; do known "$p" && { pick=$p; break; }; done
  [ -n "$pick" ] || { echo "setup-deps: apt knows none of: ${alts[*]}" >&2; exit 1; }
  names+=("$pick")
done
echo "setup-deps: installing ${names[*]}" >&2
$SUDO apt-get install -y -qq --no-install-recommends "${names[@]}" >/dev/null
