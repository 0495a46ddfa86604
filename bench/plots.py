"""PNG plots of the provisioning benchmark for ``bench/results/latest.md``."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib

matplotlib.use("Agg")  # no display here; only files are written
import matplotlib.pyplot as plt

if TYPE_CHECKING:
    from bench.provision import RunResult


def _percentile(values: Sequence[float], fraction: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


def makespan_vs_n(results: Sequence[RunResult], path: Path, *, target: float) -> None:
    """Makespan / single latency against N, one line per service layout."""
    figure, axes = plt.subplots(figsize=(7, 4.2))
    for label in dict.fromkeys(r.label for r in results):
        points = [
            (r.orders, r.makespan_ratio)
            for r in results
            if r.label == label and r.makespan_ratio is not None
        ]
        if points:
            axes.plot(*zip(*points, strict=True), marker="o", label=label)
    axes.axhline(target, color="grey", linestyle="--", label=f"target <= {target}")
    axes.set_xlabel("orders submitted at once (N)")
    axes.set_ylabel("makespan / single-order latency")
    axes.set_title("Burst makespan against N")
    axes.grid(alpha=0.3)
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def latency_percentiles(results: Sequence[RunResult], path: Path) -> None:
    """p50 / p95 / max of each burst's order latency, next to the single-order latency."""
    bursts = [r for r in results if any(t.latency is not None for t in r.bulk)]
    figure, axes = plt.subplots(figsize=(max(7.0, 1.1 * len(bursts) + 2), 4.5))
    width = 0.2
    for offset, (name, fraction) in enumerate((("p50", 0.5), ("p95", 0.95), ("max", 1.0))):
        heights = [
            _percentile([t.latency for t in r.bulk if t.latency is not None], fraction)
            for r in bursts
        ]
        axes.bar([i + (offset - 1) * width for i in range(len(bursts))], heights, width, label=name)
    singles = [r.single_latency or 0.0 for r in bursts]
    axes.scatter(
        [i + 2 * width for i in range(len(bursts))], singles, color="black", label="single"
    )
    axes.set_xticks(range(len(bursts)))
    axes.set_xticklabels(
        [f"{r.label}\nN={r.orders}" for r in bursts], fontsize=7, rotation=30, ha="right"
    )
    axes.set_ylabel("accepted -> active, seconds")
    axes.set_title("Order latency in each burst")
    axes.grid(axis="y", alpha=0.3)
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
