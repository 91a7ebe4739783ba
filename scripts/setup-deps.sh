#!/usr/bin/env bash
# Install the Debian 12 packages the project needs, only those that are missing.
# Idempotent: a second run on a ready machine does no network work.
set -euo pipefail

PKGS=(
  build-essential cmake pkg-config clang llvm libclang-rt-14-dev
  libmimalloc-dev              # the allocator under the glue
  libcmocka-dev                # unit-test framework (CTest runs the binaries)
  valgrind
  spin                         # model checker for src/smr_protocol.pml (scripts/model-check.sh)
  libck-dev liburcu-dev        # SMR peers for bench/
  libjemalloc2 libgoogle-perftools4   # allocator peers for bench/ (LD_PRELOAD)
  python3-pytest               # Python test runner (also used with PYTHONPATH on 3.13t)
  python3-dev python3-venv      # venvs for the Python stages (scripts/python-env.sh)
)

missing=()
for p in "${PKGS[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -gt 0 ]; then
  echo "setup-deps: installing ${missing[*]}" >&2
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
