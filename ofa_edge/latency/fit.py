"""Fit the per-device correction on measured whole subnets, and the accuracy metrics of a table."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ofa_edge.latency.table import Correction
from ofa_edge.search.metrics import kendall_tau


#: Fit subnets a resolution needs for its own factor (fewer: the factor would follow their noise).
MIN_PER_RESOLUTION = 5


def fit_correction(raw_ms: Sequence[float], n_layers: Sequence[int], measured_ms: Sequence[float],
                   min_layer_ms: float = 0.0, resolutions: Sequence[int] | None = None) -> Correction:
    """Least squares in relative error: ``measured ~ scale * raw + per_layer * n_layers + offset``.

    With ``resolutions`` (each fit subnet's), every resolution with at least ``MIN_PER_RESOLUTION`` fit
    subnets also gets a factor: the median of measured / predicted over its subnets.

    The per-layer term absorbs the runtime's per-call overhead that summing one-layer models counts
    once per layer; the offset the whole model's one call. When the offset comes out negative (it is
    small, and the subnets' layer counts span a narrow range) the model drops it and keeps the per-layer
    term, ``scale * raw + per_layer * n_layers``; with few samples it shrinks to ``scale * raw + offset``
    and then to ``scale * raw``. A fit is kept only if it predicts a positive
    latency for every possible subnet, not just the fitted ones: ``scale > 0``, ``offset >= 0`` and
    ``per_layer >= -scale * min_layer_ms`` (``min_layer_ms``: the table's fastest layer, so every
    layer still adds a non-negative amount); otherwise the simpler model is tried.
    """
    raw = np.asarray(raw_ms, dtype=np.float64)
    n = np.asarray(n_layers, dtype=np.float64)
    y = np.asarray(measured_ms, dtype=np.float64)
    if not (len(raw) == len(n) == len(y)):
        raise ValueError("raw_ms, n_layers and measured_ms need the same length")
    if len(y) == 0:
        return Correction()
    if np.any(raw <= 0) or np.any(y <= 0) or not np.all(np.isfinite(raw)) or not np.all(np.isfinite(y)):
        raise ValueError("latencies used for the fit must be positive and finite")
    w = 1.0 / y
    candidates = []
    if len(y) >= 6 and np.ptp(n) > 0:
        candidates.append(np.stack([raw, n, np.ones_like(raw)], 1))
        candidates.append(np.stack([raw, n, np.zeros_like(raw)], 1))
    if len(y) >= 3:
        candidates.append(np.stack([raw, np.zeros_like(raw), np.ones_like(raw)], 1))
    base = Correction(float(np.sum(y * w) / np.sum(raw * w)), 0.0, 0.0, len(y))
    for x in candidates:
        coef, *_ = np.linalg.lstsq(x * w[:, None], y * w, rcond=None)
        pred = x @ coef
        scale, per_layer, offset = (float(c) for c in coef)
        if scale > 0 and offset >= 0 and per_layer >= -scale * min_layer_ms and np.all(pred > 0):
            base = Correction(scale, per_layer, offset, len(y))
            break
    if resolutions is None:
        return base
    ratio = y / np.array([base.apply(a, b) for a, b in zip(raw, n)])
    res = np.asarray(resolutions)
    factors = {int(r): float(np.clip(np.median(ratio[res == r]), 0.1, 10.0)) for r in np.unique(res)
               if np.sum(res == r) >= MIN_PER_RESOLUTION}
    return Correction(base.scale, base.per_layer, base.offset, base.n_fit, factors)


def accuracy_metrics(measured_ms: Sequence[float], predicted_ms: Sequence[float]) -> dict[str, float]:
    """n, mean absolute percentage error (%), fraction within +-10 % and Kendall's tau."""
    y = np.asarray(measured_ms, dtype=np.float64)
    p = np.asarray(predicted_ms, dtype=np.float64)
    if len(y) == 0:
        return {"n": 0, "mape": float("nan"), "within_10pct": float("nan"), "kendall_tau": float("nan")}
    rel = np.abs(p - y) / y
    return {"n": int(len(y)), "mape": float(100 * rel.mean()), "within_10pct": float(np.mean(rel <= 0.10)),
            "kendall_tau": kendall_tau(y, p)}
