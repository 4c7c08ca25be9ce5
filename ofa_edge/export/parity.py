"""Numeric checks after export: max abs logit difference vs PyTorch, top-1 agreement, accuracy."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ofa_edge.errors import OfaEdgeError

FP32_TOLERANCE = 1e-4


class ParityError(OfaEdgeError):
    """An exported model's outputs drifted from PyTorch by more than the tolerance."""


@dataclass(frozen=True)
class Parity:
    """Outcome of one comparison of an exported model's logits with PyTorch's."""

    max_abs_diff: float
    tolerance: float | None
    top1_agreement: float
    n_images: int

    @property
    def passed(self) -> bool:
        return self.tolerance is None or self.max_abs_diff <= self.tolerance

    def to_dict(self) -> dict:
        return {"max_abs_diff": self.max_abs_diff, "tolerance": self.tolerance,
                "top1_agreement": self.top1_agreement, "n_images": self.n_images, "passed": self.passed}


def compare(reference: np.ndarray, exported: np.ndarray, tolerance: float | None = FP32_TOLERANCE) -> Parity:
    """Compare two logit arrays of the same shape (tolerance None = report only, never fail)."""
    reference, exported = np.asarray(reference, np.float64), np.asarray(exported, np.float64)
    if reference.shape != exported.shape:
        raise ParityError(f"exported model gives outputs of shape {exported.shape}, PyTorch {reference.shape}")
    if not np.isfinite(exported).all():
        return Parity(float("inf"), tolerance, float(top1_agreement(reference, exported)), len(reference))
    diff = float(np.abs(reference - exported).max()) if reference.size else 0.0
    return Parity(diff, tolerance, top1_agreement(reference, exported), len(reference))


def check(what: str, reference: np.ndarray, exported: np.ndarray,
          tolerance: float | None = FP32_TOLERANCE) -> Parity:
    """Like :func:`compare`, but raise :class:`ParityError` naming ``what`` when over the tolerance."""
    result = compare(reference, exported, tolerance)
    if not result.passed:
        raise ParityError(f"{what}: outputs differ from PyTorch by up to {result.max_abs_diff:.3g} "
                          f"(tolerance {tolerance:g}); the export drifted numerically")
    return result


def top1_agreement(a: np.ndarray, b: np.ndarray) -> float:
    """Fraction of rows whose arg-max is the same in ``a`` and ``b``."""
    if len(a) == 0:
        return float("nan")
    return float((np.asarray(a).argmax(1) == np.asarray(b).argmax(1)).mean())


def accuracy(logits: np.ndarray, labels: np.ndarray) -> float:
    """Top-1 accuracy in percent (0..100), the unit of every accuracy in ofa-edge."""
    labels = np.asarray(labels).reshape(-1)
    if len(labels) == 0:
        return float("nan")
    return float(100.0 * (np.asarray(logits).argmax(1) == labels).mean())
