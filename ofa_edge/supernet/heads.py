"""SOLAR switchable output layer: K classification heads, one chosen per subnet by its MACs."""

from __future__ import annotations

import bisect
import random
from dataclasses import dataclass

import torch
from torch import nn

from ofa_edge.space import SearchSpace, Subnet, count_macs, sample
from ofa_edge.supernet.static import ClassifierHead


@dataclass(frozen=True)
class HeadMap:
    """Maps a subnet to a head: head i holds the i-th MACs quantile of the space (fixed at creation).

    ``boundaries`` are K-1 increasing MACs values; a subnet with MACs m uses head
    ``bisect_right(boundaries, m)``. K = 1 (no boundaries) is the shared-head baseline.
    """

    boundaries: tuple[float, ...] = ()

    @property
    def n_heads(self) -> int:
        return len(self.boundaries) + 1

    def head_for_macs(self, macs: float) -> int:
        return bisect.bisect_right(self.boundaries, macs)

    def head_for(self, space: SearchSpace, subnet: Subnet, n_classes: int) -> int:
        return self.head_for_macs(count_macs(space, subnet, n_classes)) if self.boundaries else 0

    @classmethod
    def from_space(cls, space: SearchSpace, n_heads: int, n_classes: int, samples: int = 2000,
                   seed: int = 0) -> "HeadMap":
        """Quantile boundaries of the MACs of ``samples`` uniformly drawn subnets."""
        if n_heads < 1:
            raise ValueError(f"heads: must be at least 1, got {n_heads}")
        if n_heads == 1:
            return cls(())
        rng = random.Random(seed)
        macs = sorted(count_macs(space, sample(space, rng), n_classes) for _ in range(samples))
        return cls(tuple(float(macs[len(macs) * i // n_heads]) for i in range(1, n_heads)))

    def to_dict(self) -> dict:
        return {"rule": "macs-quantile", "boundaries": list(self.boundaries)}

    @classmethod
    def from_dict(cls, data: dict) -> "HeadMap":
        if not isinstance(data, dict) or data.get("rule") != "macs-quantile":
            raise ValueError(f"head map: unknown rule in {data!r}")
        b = [float(x) for x in data.get("boundaries", [])]
        if b != sorted(b):
            raise ValueError("head map: boundaries must increase")
        return cls(tuple(b))


class SwitchableHead(nn.Module):
    """K linear heads over a shared feature; ``active`` selects the one used in forward."""

    def __init__(self, in_features: int, n_classes: int, n_heads: int = 1, dropout: float = 0.0):
        super().__init__()
        self.heads = nn.ModuleList(ClassifierHead(in_features, n_classes, dropout) for _ in range(n_heads))
        self.active = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.heads[self.active](x)
