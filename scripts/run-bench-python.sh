#!/usr/bin/env bash
# Python benchmarks on the machine's python3 and on free-threaded CPython 3.13t
# (scripts/build-python313t.sh, cached):
#   bench/python/bench_collections.py  throughput: queues and stacks, ratios to SimpleQueue
#   bench/python/bench_wakeup.py       wake-up latency, idle wakeups, Ctrl-C latency
# The package is installed as users get it: pip install of this checkout into
# a venv of each interpreter (scripts/python-env.sh, tools pinned by
# requirements-dev.txt: matplotlib on the GIL build, the peers ft_utils and
# cereggii on 3.13t).
# Output: bench/results/python_bench.txt (everything) and python_bench.csv
# (python, workload, threads, impl, value, ratio), then bench/plot.py.
#
#   scripts/run-bench-python.sh [bench_collections args, e.g. --rounds 7]
#
# Environment: CC_BENCH_PYTHONS  interpreters to run (default: python3 and 3.13t)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
out=bench/results/python_bench.txt
csv=bench/results/python_bench.csv
mkdir -p bench/results build-bench
rev="$(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet HEAD 2>/dev/null || echo ' (+ uncommitted changes)')"
rm -f "$csv"

if [ -n "${CC_BENCH_PYTHONS:-}" ]; then
  read -r -a pythons <<<"$CC_BENCH_PYTHONS"
else
  pythons=("$(command -v python3)" "$(bash scripts/build-python313t.sh | tail -n1)")
fi
# The loop runs in a pipeline (a subshell): it names the venv for the plot in a file.
plot_file=build-bench/python-plot-venv
rm -f "$plot_file"
{
  echo "# concurrent_collections Python benchmarks -- $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "# $(uname -srm), $(nproc) CPUs, commit $rev, load average $(cut -d' ' -f1-3 /proc/loadavg)"
  for py in "${pythons[@]}"; do
    # matplotlib has no complete set of cp313t wheels: it goes into the GIL
    # build's venv, and the peers (cp313t wheels only) into 3.13t's.
    if [ "$("$py" -c 'import sysconfig; print(int(bool(sysconfig.get_config_var("Py_GIL_DISABLED"))))')" = 1 ]; then
      tools=(ft_utils cereggii)
    else
      tools=(matplotlib)
    fi
    venv=$(bash scripts/python-env.sh "$py" "${tools[@]}" | tail -n1)
    log=build-bench/pip-install-$(basename "$venv").log
    echo "# $("$py" -V 2>&1): pip install of the checkout into $venv" >&2
    "$venv/bin/python" -m pip install -q --force-reinstall --no-deps "$root" >"$log" 2>&1 \
      || { tail -30 "$log" >&2; echo "pip install for $py failed: see $log" >&2; exit 1; }
    [ -s "$plot_file" ] || ! "$venv/bin/python" -c 'import matplotlib' 2>/dev/null || echo "$venv" >"$plot_file"
    echo
    # From outside the checkout, so that the installed package is imported.
    (cd / && "$venv/bin/python" "$root/bench/python/bench_collections.py" --csv "$root/$csv" "$@")
    echo
    (cd / && "$venv/bin/python" "$root/bench/python/bench_wakeup.py")
  done
} 2>&1 | tee "$out"
echo "written: $out $csv" >&2
plot_venv=$(cat "$plot_file" 2>/dev/null || true)
if [ -n "$plot_venv" ]; then
  "$plot_venv/bin/python" bench/plot.py
else
  echo "matplotlib not available: bench/plot.py skipped" >&2
fi
