#!/usr/bin/python3
"""Latency CDFs from an ember-bench-flame results directory.

usage: plot_latency.py RESULTS_DIR   ->  RESULTS_DIR/latency_cdf.png

One panel per 1-in-flight scenario (the executor's pattern), one curve per
server, all rounds pooled; dotted lines mark each server's p50 and p99.
"""
import csv
import os
import sys

import matplotlib

matplotlib.use("Agg")  # no display here
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import FuncFormatter, LogLocator  # noqa: E402
import numpy as np  # noqa: E402

COLORS = {"ember": "#d62728", "grpc++": "#1f77b4", "floor": "#7f7f7f"}


def load(path):
    with open(path, newline="") as f:
        rows = csv.reader(f)
        next(rows)
        return np.fromiter((int(r[1]) for r in rows), dtype=np.float64) / 1000.0


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    out = sys.argv[1]
    with open(os.path.join(out, "latency", "index.csv"), newline="") as f:
        index = list(csv.DictReader(f))
    scenarios = []
    for row in index:
        if row["depth"] == "1" and row["scenario"] not in scenarios:
            scenarios.append(row["scenario"])
    if not scenarios:
        print("plot_latency: no 1-in-flight scenario to plot", file=sys.stderr)
        return
    fig, axes = plt.subplots(len(scenarios), 1, figsize=(10, 3.8 * len(scenarios)), squeeze=False)
    for ax, sc in zip(axes[:, 0], scenarios):
        right = 0.0
        left = float("inf")
        for row in (r for r in index if r["scenario"] == sc):
            lat = np.sort(load(os.path.join(out, row["file"])))
            if lat.size == 0:
                continue
            y = np.arange(1, lat.size + 1) / lat.size
            color = COLORS.get(row["server"])
            p50, p99 = np.percentile(lat, 50), np.percentile(lat, 99)
            # Show up to p99.9: a few outliers would otherwise squash the curves.
            right = max(right, np.percentile(lat, 99.9) * 1.3)
            left = min(left, lat[0] * 0.8)
            ax.plot(lat, y, color=color, linewidth=1.6,
                    label=f"{row['server']}  p50 {p50:.1f} us, p99 {p99:.1f} us")
            ax.axvline(p50, color=color, linestyle=":", linewidth=0.8)
            ax.axvline(p99, color=color, linestyle="--", linewidth=0.8)
        ax.set_xscale("log")
        if right > 0:
            ax.set_xlim(left, right)
        # Plain numbers at 1-2-5 steps: a log axis spanning less than a decade
        # otherwise shows a single tick.
        ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        ax.xaxis.set_minor_locator(LogLocator(base=10, subs=tuple(range(1, 10))))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.set_title(f"{sc}: latency per call, 1 in flight")
        ax.set_xlabel("latency (us, log scale; cut at 1.3 x the largest p99.9)")
        ax.set_ylabel("fraction of calls")
        ax.set_ylim(0, 1.0)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(loc="lower right", fontsize=9)
    fig.suptitle("ember-bench-flame: per-call latency CDF (dotted p50, dashed p99)")
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    path = os.path.join(out, "latency_cdf.png")
    fig.savefig(path, dpi=110)
    print(f"plot_latency: wrote {path}", file=sys.stderr)


if __name__ == "__main__":
    main()
