"""BN recalibration: reset running statistics and re-estimate them over training images."""

from __future__ import annotations

import types
from typing import Iterable

import torch
import torch.nn.functional as F
from torch import nn

from ofa_edge.supernet.elastic import ElasticBatchNorm2d


class _Stats:
    """Per-channel running count, mean and M2 (Chan's parallel update, float64)."""

    def __init__(self) -> None:
        self.n = 0
        self.mean: torch.Tensor | None = None
        self.m2: torch.Tensor | None = None
        self.batch_means: list[tuple[int, torch.Tensor, torch.Tensor]] = []

    def update(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Add a batch's per-channel statistics; returns its (mean, biased variance) in float64."""
        var_b, mean_b = torch.var_mean(x.detach().to(torch.float64), dim=(0, 2, 3), correction=0)
        n_b = x.numel() // x.size(1)
        m2_b = var_b * n_b
        self.batch_means.append((x.size(0), mean_b, var_b))
        if self.mean is None:
            self.n, self.mean, self.m2 = n_b, mean_b, m2_b
            return mean_b, var_b
        delta = mean_b - self.mean
        total = self.n + n_b
        self.mean = self.mean + delta * (n_b / total)
        self.m2 = self.m2 + m2_b + delta**2 * (self.n * n_b / total)
        self.n = total
        return mean_b, var_b

    def result(self, mode: str) -> tuple[torch.Tensor, torch.Tensor]:
        if mode == "exact":
            return self.mean, self.m2 / self.n
        weights = torch.tensor([float(b) for b, _, _ in self.batch_means], dtype=torch.float64)
        means = torch.stack([m for _, m, _ in self.batch_means])
        vars_ = torch.stack([v for _, _, v in self.batch_means])
        w = (weights / weights.sum())[:, None]
        return (means * w).sum(0), (vars_ * w).sum(0)


def _calibration_forward(stats: _Stats, bn: nn.BatchNorm2d):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean, var = stats.update(x)  # normalise with the batch's own statistics, as OFA does
        c = x.size(1)
        return F.batch_norm(x, mean.to(x.dtype), var.to(x.dtype), bn.weight[:c], bn.bias[:c], False, 0.0, bn.eps)

    return forward


@torch.no_grad()
def recalibrate_bn(model: nn.Module, batches: Iterable[torch.Tensor], mode: str = "exact") -> int:
    """Re-estimate every BN's running mean/var of the active (sub)network over ``batches``.

    As in OFA, each BN normalises with its batch statistics during the pass. ``mode="exact"``
    stores the mean and (biased) variance of all values each BN saw; ``mode="ofa"`` stores the
    batch-size-weighted average of per-batch means and variances, as the reference does. Works on the
    supernet with a subnet active and on a static subnet. Returns the number of images seen.
    """
    if mode not in ("exact", "ofa"):
        raise ValueError(f"mode: {mode!r} is not one of ['exact', 'ofa']")
    targets: list[tuple[nn.Module, nn.BatchNorm2d, _Stats]] = []
    inner = {id(m.bn) for m in model.modules() if isinstance(m, ElasticBatchNorm2d)}
    for m in model.modules():
        if isinstance(m, ElasticBatchNorm2d):
            targets.append((m, m.bn, _Stats()))
        elif isinstance(m, nn.BatchNorm2d) and id(m) not in inner:
            targets.append((m, m, _Stats()))
    was_training = model.training
    model.eval()
    seen = 0
    try:
        for module, bn, stats in targets:
            module.forward = types.MethodType(_calibration_forward(stats, bn), module)
        for x in batches:
            model(x)
            seen += x.size(0)
    finally:
        for module, _, _ in targets:
            del module.forward
        model.train(was_training)
    if seen == 0:
        raise ValueError("BN recalibration needs at least one batch of images")
    for _, bn, stats in targets:
        if stats.mean is None:  # layer not on the active path
            continue
        mean, var = stats.result(mode)
        c = mean.numel()
        bn.running_mean[:c] = mean.to(bn.running_mean.dtype)
        bn.running_var[:c] = var.to(bn.running_var.dtype)
    return seen
