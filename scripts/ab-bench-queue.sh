#!/usr/bin/env bash
# A/B comparison of two builds of queue_bench (for example the tree before
# and after a change, each built with -DCC_BUILD_BENCH=ON): runs one round of
# each binary in turn, `rounds` times (interleaved), with only cc_queue and
# cc_segqueue, and prints per cell and binary the ratio cc_segqueue/cc_queue
# of every run, sorted, and the median. Ratios only: the machine is noisy.
#   scripts/ab-bench-queue.sh BIN_A BIN_B [rounds=11] [cells=pairs-1,pairs-2] [items=400000]
set -euo pipefail
[ $# -ge 2 ] || { echo "usage: $0 BIN_A BIN_B [rounds] [cells] [items]" >&2; exit 2; }
a=$1 b=$2 rounds=${3:-11} cells=${4:-pairs-1,pairs-2} items=${5:-400000}
for r in $(seq "$rounds"); do
  for label in A B; do
    bin=$a; [ $label = B ] && bin=$b
    QUEUE_BENCH_QUEUES=segqueue QUEUE_BENCH_CELLS=$cells "$bin" 1 "$items" \
      | awk -v l=$label 'NR > 2 { gsub(/[()x]/, "", $6); print $1, l, $6 }'
  done
done | sort -k1,1 -k2,2 -k3,3g | awk '
  { k = $1 " " $2; v[k] = v[k] " " $3; n[k]++ }
  END { for (k in v) { split(substr(v[k], 2), x, " "); print k ":" v[k] "  median " x[int((n[k] + 1) / 2)] } }' | sort
echo "A = $a"
echo "B = $b"
