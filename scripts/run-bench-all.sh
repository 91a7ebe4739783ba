#!/usr/bin/env bash
# Every benchmark, one after the other, then the plots: what
# docs/benchmarks.md shows. Each writes its table to bench/results/; the
# figures go to docs/img/ (bench/plot.py, with matplotlib at its pinned
# version in a cached venv: scripts/python-env.sh).
#   scripts/run-bench-all.sh          about 10 minutes on 2 cores
# Run it on an otherwise idle machine: the ratios are robust to noise, the
# absolute figures are not.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$SECONDS
step() { echo; echo "=== $* ($((SECONDS - start)) s)"; }
step "C queues: scripts/run-bench-queue.sh"; bash scripts/run-bench-queue.sh
step "SMR: scripts/run-bench-smr.sh";        bash scripts/run-bench-smr.sh
step "allocation glue: scripts/run-bench-alloc.sh"; bash scripts/run-bench-alloc.sh
step "statistics out of tree: scripts/run-bench-alloc-user.sh"; bash scripts/run-bench-alloc-user.sh
step "Python: scripts/run-bench-python.sh";  bash scripts/run-bench-python.sh
step "plots: bench/plot.py"
py=$(bash scripts/python-env.sh "$(command -v python3)" matplotlib | tail -n1)/bin/python
"$py" bench/plot.py bench/results docs/img
echo "done in $((SECONDS - start)) s"
