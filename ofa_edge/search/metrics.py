"""Rank and error metrics for predicted vs measured values, accuracy or latency (no SciPy needed)."""

from __future__ import annotations

import numpy as np


def rmse(pred, target) -> float:
    """Root-mean-square error."""
    p, t = np.asarray(pred, dtype=np.float64), np.asarray(target, dtype=np.float64)
    return float(np.sqrt(np.mean((p - t) ** 2)))


def rankdata(x) -> np.ndarray:
    """Ranks 1..n with ties given their average rank."""
    x = np.asarray(x, dtype=np.float64)
    order = np.argsort(x, kind="mergesort")
    ranks = np.empty(len(x))
    sx = x[order]
    i = 0
    while i < len(x):
        j = i
        while j + 1 < len(x) and sx[j + 1] == sx[i]:
            j += 1
        ranks[order[i:j + 1]] = (i + j) / 2.0 + 1.0
        i = j + 1
    return ranks


def spearman(a, b) -> float:
    """Spearman's rho: Pearson correlation of the (tie-averaged) ranks."""
    ra, rb = rankdata(a), rankdata(b)
    ra, rb = ra - ra.mean(), rb - rb.mean()
    denom = np.sqrt((ra**2).sum() * (rb**2).sum())
    return float((ra * rb).sum() / denom) if denom > 0 else float("nan")


def kendall_tau(a, b) -> float:
    """Kendall's tau-b over all pairs, ties handled (O(n^2) time in blocks; fine for a few thousand rows)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if len(a) != len(b):
        raise ValueError("kendall_tau needs sequences of the same length")
    n = len(a)
    conc = disc = ties_a = ties_b = 0
    for start in range(0, n, 512):
        sa = np.sign(a[start:start + 512, None] - a[None, :])
        sb = np.sign(b[start:start + 512, None] - b[None, :])
        rows = np.arange(start, min(start + 512, n))[:, None]
        upper = np.arange(n)[None, :] > rows
        prod = sa * sb
        conc += int(((prod > 0) & upper).sum())
        disc += int(((prod < 0) & upper).sum())
        ties_a += int(((sa == 0) & (sb != 0) & upper).sum())
        ties_b += int(((sb == 0) & (sa != 0) & upper).sum())
    denom = np.sqrt((conc + disc + ties_a) * (conc + disc + ties_b))
    return float((conc - disc) / denom) if denom > 0 else float("nan")
