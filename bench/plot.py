"""Plots of the benchmark results: throughput against threads.

    python bench/plot.py [results_dir=bench/results] [out_dir=docs/img]

Reads what the bench scripts write into bench/results/ and draws one PNG per
figure into docs/img/ (each line is one implementation):

  queue_threads.png   scripts/run-bench-queue.sh   (queue_bench.csv, "pairs-N" cells)
  smr_threads.png     scripts/run-bench-smr.sh     (smr_bench.txt, first table: stack and queue)
  python_threads.png  scripts/run-bench-python.sh  (python_bench.csv, if present)

A missing input skips its figure with a note. matplotlib comes from the
project's pinned Python tools.
"""

from __future__ import annotations

import csv
import os
import re
import sys
from collections import defaultdict

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt


def _lines(ax, series: dict[str, dict[int, float]], title: str, ylabel: str) -> None:
    for name, points in series.items():
        xs = sorted(points)
        ax.plot(xs, [points[x] for x in xs], marker="o", label=name)
    ax.set_title(title)
    ax.set_xlabel(f"threads (the machine's cores: {os.cpu_count()})")
    ax.set_ylabel(ylabel)
    ax.set_xscale("log", base=2)
    ax.set_xticks(sorted({x for p in series.values() for x in p}))
    ax.get_xaxis().set_major_formatter(matplotlib.ticker.ScalarFormatter())
    ax.set_ylim(bottom=0)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small")


def queue_figure(results: str, out: str) -> bool:
    path = os.path.join(results, "queue_bench.csv")
    if not os.path.exists(path):
        print(f"plot: {path} missing (run scripts/run-bench-queue.sh); queue figure skipped")
        return False
    pairs: dict[str, dict[int, float]] = defaultdict(dict)
    pc: dict[str, dict[str, float]] = defaultdict(dict)
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            cell, queue = row["cell"], row["queue"]
            value = float(row["median_mitems_s"])
            if cell.startswith("pairs-"):
                pairs[queue][int(row["threads"])] = value
            else:
                pc[queue][cell] = value
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    _lines(axes[0], pairs, "C queues, pairs (each thread push+pop)", "M items/s (median)")
    cells = sorted({c for v in pc.values() for c in v})
    width = 0.8 / max(1, len(pc))
    for k, (queue, values) in enumerate(pc.items()):
        axes[1].bar([i + k * width for i in range(len(cells))], [values.get(c, 0) for c in cells],
                    width, label=queue)
    axes[1].set_xticks([i + 0.4 - width / 2 for i in range(len(cells))], cells)
    axes[1].set_title("C queues, producers/consumers")
    axes[1].set_ylabel("M items/s (median)")
    axes[1].legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(os.path.join(out, "queue_threads.png"), dpi=110)
    return True


SMR_ROW = re.compile(r"^(stack|queue)\s+(\d+)\s+(\S+)\s+([\d.]+)\s")


def smr_figure(results: str, out: str) -> bool:
    path = os.path.join(results, "smr_bench.txt")
    if not os.path.exists(path):
        print(f"plot: {path} missing (run scripts/run-bench-smr.sh); SMR figure skipped")
        return False
    data: dict[str, dict[str, dict[int, float]]] = {"stack": defaultdict(dict), "queue": defaultdict(dict)}
    with open(path) as f:
        for line in f:
            if line.startswith("targets"):
                break  # only the first table: every scheme at the default threshold
            m = SMR_ROW.match(line)
            if m:
                data[m.group(1)][m.group(3)][int(m.group(2))] = float(m.group(4))
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    for ax, structure in zip(axes, ("stack", "queue"), strict=True):
        _lines(ax, data[structure], f"{structure}: reclamation schemes", "M push+pop pairs/s (median)")
    fig.tight_layout()
    fig.savefig(os.path.join(out, "smr_threads.png"), dpi=110)
    return True


def python_figure(results: str, out: str) -> bool:
    path = os.path.join(results, "python_bench.csv")
    if not os.path.exists(path):
        print(f"plot: {path} missing (run scripts/run-bench-python.sh); Python figure skipped")
        return False
    # rows: python, workload, threads, impl, value (M items/s)
    data: dict[str, dict[str, dict[int, float]]] = defaultdict(lambda: defaultdict(dict))
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            if row["workload"] == "pairs":
                data[row["python"]][row["impl"]][int(row["threads"])] = float(row["value"])
    if not data:
        print(f"plot: {path} has no pairs rows; Python figure skipped")
        return False
    fig, axes = plt.subplots(1, len(data), figsize=(6 * len(data), 4.5), squeeze=False)
    for ax, (python, series) in zip(axes[0], sorted(data.items()), strict=True):
        _lines(ax, series, f"Python {python}: queues, pairs", "M put+get pairs/s (median)")
    fig.tight_layout()
    fig.savefig(os.path.join(out, "python_threads.png"), dpi=110)
    return True


def main(argv: list[str]) -> int:
    results = argv[1] if len(argv) > 1 else "bench/results"
    out = argv[2] if len(argv) > 2 else "docs/img"
    os.makedirs(out, exist_ok=True)
    made = [f(results, out) for f in (queue_figure, smr_figure, python_figure)]
    print(f"plot: {sum(made)} figure(s) written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
