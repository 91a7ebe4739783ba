#!/usr/bin/env bash
# Model-checks src/smr_protocol.pml (the SMR protocol of src/smr_epoch.c and src/smr_revoke.c) with spin:
# exhaustive safety search (pan -DSAFETY, no bitstate). The fixed protocol
# must verify with no errors; each broken variant must report an error.
#
#   scripts/model-check.sh          all runs (about 2-3 minutes on 2 cores)
#
# Exit status: 0 if every run gave the expected result, 1 otherwise.
# Installs spin (Debian package `spin`) if missing; builds pan in a temp
# directory, never in the checkout.
set -uo pipefail
cd "$(dirname "$0")/.."
model=$(pwd)/src/smr_protocol.pml

if ! command -v spin >/dev/null 2>&1; then
  echo "spin not found: installing the Debian package"
  sudo_=""; [ "$(id -u)" -ne 0 ] && sudo_="sudo"
  $sudo_ env DEBIAN_FRONTEND=noninteractive apt-get install -y -q spin >/dev/null ||
    { $sudo_ apt-get update -q >/dev/null && $sudo_ env DEBIAN_FRONTEND=noninteractive apt-get install -y -q spin >/dev/null; } ||
    { echo "cannot install spin"; exit 1; }
fi
command -v gcc >/dev/null 2>&1 || { echo "gcc is needed to build pan"; exit 1; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/cc-model-check.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

# Bounds shared by every run (see the header of the model): 2 Reader
# sections, 1 Writer section, epochs 1..5.
bounds="-DR_SECTIONS=2 -DW_SECTIONS=1 -DMAXE=5"

# name | expected (pass/fail) | spin defines
runs=(
  "fixed-asymmetric|pass|"
  "old-revoke-predicate|fail|-DOLD_REVOKE_PREDICATE"
  "no-membarrier|fail|-DNO_MEMBARRIER"
  "fixed-fencing-mode|pass|-DFENCE_MODE"
  "fencing-mode-plain-announce|fail|-DFENCE_MODE -DNO_XCHG"
)

run_one() { # name expected defines
  local name=$1 expect=$2 defs=$3 d="$tmp/$1"
  mkdir -p "$d"
  cp "$model" "$d/"
  (
    cd "$d" || exit 2
    # shellcheck disable=SC2086
    spin -a $bounds $defs smr_protocol.pml >spin.log 2>&1 || { echo "spin -a failed"; cat spin.log; exit 2; }
    gcc -O2 -w -DSAFETY -DCOLLAPSE -DMEMLIM=3000 -o pan pan.c >gcc.log 2>&1 || { cat gcc.log; exit 2; }
    local t0 t1
    t0=$(date +%s)
    ./pan -m200000 >pan.log 2>&1
    t1=$(date +%s)
    local errors states viol
    errors=$(sed -n 's/.*errors: \([0-9]*\).*/\1/p' pan.log | head -1)
    states=$(sed -n 's/^ *\([0-9][0-9]*\) states, stored.*/\1/p' pan.log | head -1)
    viol=$(grep -m1 -E "^pan:[0-9]+:|error:" pan.log)
    # an incomplete search is not a verification
    if grep -q "out of memory\|memory limit\|max search depth too small" pan.log; then errors=oom; fi
    local got=pass
    [ "${errors:-x}" = 0 ] || got=fail
    local verdict=ok
    if [ "$errors" = oom ] || [ -z "$errors" ]; then verdict=BROKEN-RUN; fi
    [ "$got" = "$expect" ] || verdict=UNEXPECTED
    [ "$errors" = oom ] && verdict=UNEXPECTED
    printf '%-28s expect %-4s: %s states stored, errors %s, %ss%s -> %s\n' \
      "$name" "$expect" "${states:-?}" "${errors:-?}" "$((t1 - t0))" "${viol:+ ($viol)}" "$verdict"
    if [ "$got" = fail ] && [ -f smr_protocol.pml.trail ]; then
      # shellcheck disable=SC2086
      spin -t -p $bounds $defs smr_protocol.pml >trail.txt 2>&1
      echo "    trail: $(grep -c 'proc' trail.txt) steps (spin -t -p $bounds $defs src/smr_protocol.pml)"
    fi
    [ "$verdict" = ok ]
  ) >"$d/result" 2>&1
  echo $? >"$d/rc"
}

echo "spin: $(spin -V 2>&1 | head -1)"
jobs_max=$(nproc 2>/dev/null || echo 2)
[ "$jobs_max" -gt 2 ] && jobs_max=2  # each run takes ~0.5-1 GB
fail=0
for r in "${runs[@]}"; do
  IFS='|' read -r name expect defs <<<"$r"
  while [ "$(jobs -rp | wc -l)" -ge "$jobs_max" ]; do sleep 1; done
  run_one "$name" "$expect" "$defs" &
done
wait
for r in "${runs[@]}"; do
  IFS='|' read -r name _ _ <<<"$r"
  cat "$tmp/$name/result"
  [ "$(cat "$tmp/$name/rc")" = 0 ] || fail=1
done
if [ "$fail" -eq 0 ]; then echo "model-check: all runs as expected"; else echo "model-check: FAILED"; fi
exit "$fail"
