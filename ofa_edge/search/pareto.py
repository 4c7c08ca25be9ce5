"""Pareto fronts (latency vs accuracy), their CSV and their plot."""

from __future__ import annotations

import csv
import io
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from ofa_edge.io import atomic_write_bytes, atomic_write_text

FORMAT = "ofa-edge-pareto/1"
COLUMNS = ["format", "kind", "selector", "budget_ms", "subnet_id", "latency_ms", "predicted_top1",
           "measured_latency_ms", "measured_top1", "macs", "params", "subnet"]


def pareto_front(latency: Sequence[float], accuracy: Sequence[float]) -> np.ndarray:
    """Indices of the non-dominated points (lower latency, higher accuracy), by ascending latency."""
    lat, acc = np.asarray(latency, dtype=np.float64), np.asarray(accuracy, dtype=np.float64)
    order = np.lexsort((-acc, lat))
    keep, best = [], -np.inf
    for i in order:
        if acc[i] > best:
            keep.append(int(i))
            best = acc[i]
    return np.asarray(keep, dtype=np.int64)


@dataclass
class ParetoPoint:
    """One row of a Pareto CSV: a subnet with predicted and (optionally) measured numbers."""

    kind: str  # front | random | measured (a predictor row) | built (a build's manifest)
    subnet: dict
    subnet_id: str
    latency_ms: float
    predicted_top1: float
    macs: int
    params: int
    selector: str = ""
    budget_ms: float | None = None
    measured_latency_ms: float | None = None
    measured_top1: float | None = None
    extra: dict = field(default_factory=dict)


def write_pareto_csv(path: str | os.PathLike, points: list[ParetoPoint]) -> Path:
    """Write the points as a versioned CSV (atomic)."""
    import json

    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(COLUMNS)
    fmt = lambda v: "" if v is None else (f"{v:.6g}" if isinstance(v, float) else str(v))  # noqa: E731
    for p in points:
        w.writerow([FORMAT, p.kind, p.selector, fmt(p.budget_ms), p.subnet_id, fmt(p.latency_ms),
                    fmt(p.predicted_top1), fmt(p.measured_latency_ms), fmt(p.measured_top1), p.macs, p.params,
                    json.dumps(p.subnet, separators=(",", ":"))])
    atomic_write_text(path, buf.getvalue())
    return Path(path)


def plot_pareto(path: str | os.PathLike, points: list[ParetoPoint], title: str = "") -> Path:
    """PNG: predicted accuracy vs predicted latency of the front and random subnets, the predictor's measured
    rows, and the built subnets (test top-1 at their measured latency, else the predicted one)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.2, 5.6), dpi=120)
    rand = [p for p in points if p.kind == "random"]
    if rand:
        ax.scatter([p.latency_ms for p in rand], [p.predicted_top1 for p in rand], s=8, c="0.7",
                   label="random subnets: predicted top-1 at predicted latency")
    front = sorted((p for p in points if p.kind == "front"), key=lambda p: p.latency_ms)
    if front:
        ax.plot([p.latency_ms for p in front], [p.predicted_top1 for p in front], "o-", c="C0",
                label="search front: predicted top-1 at predicted latency")
        budgets = sorted({p.budget_ms for p in front if p.budget_ms is not None})
        for i, b in enumerate(budgets):
            ax.axvline(b, c="C0", lw=0.6, ls=":", label="latency budgets searched" if i == 0 else None)
    meas = [p for p in points if p.kind == "measured"]
    if meas:
        ax.scatter([p.latency_ms for p in meas], [p.measured_top1 for p in meas], marker="x", c="C3", s=30,
                   label="predictor's rows: measured top-1 (validation) at predicted latency")
    built = [p for p in points if p.kind == "built"]
    if built:
        timed = all(p.measured_latency_ms is not None for p in built)
        xs = [p.measured_latency_ms if p.measured_latency_ms is not None else p.latency_ms for p in built]
        ys = [p.measured_top1 if p.measured_top1 is not None else p.predicted_top1 for p in built]
        ax.scatter(xs, ys, marker="*", s=180, c="C2", edgecolors="k", linewidths=0.6, zorder=5,
                   label=f"built: test top-1 at {'measured' if timed else 'predicted'} latency")
        for x, y, p in zip(xs, ys, built):
            if p.budget_ms is not None:
                ax.annotate(f"{p.budget_ms:g} ms", (x, y), textcoords="offset points", xytext=(6, -10), fontsize=7)
    ax.set_xlabel("latency on the device (ms)")
    ax.set_ylabel("top-1 accuracy (%)")
    if title:
        ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.14), fontsize=7, frameon=False)  # never over points
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())
    return Path(path)
