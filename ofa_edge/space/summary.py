"""Summaries of a space and of one subnet for the CLI and reports."""

from __future__ import annotations

import random
from typing import Any

from ofa_edge.space.arch import count_macs, count_params
from ofa_edge.space.config import SearchSpace
from ofa_edge.space.sampling import max_subnet, min_subnet, sample
from ofa_edge.space.subnet import Subnet, subnet_from_json


def default_classes(space: SearchSpace) -> int:
    return 1000 if space.name.startswith("ofa-") else 10


def space_summary(space: SearchSpace, n_classes: int | None = None) -> dict[str, Any]:
    """Choices, subnet count and min/max MACs/params at each resolution."""
    n_classes = n_classes or default_classes(space)
    rows = []
    for r in space.resolutions:
        lo, hi = min_subnet(space, r), max_subnet(space, r)
        rows.append({"r": r, "min_macs": count_macs(space, lo, n_classes),
                     "max_macs": count_macs(space, hi, n_classes),
                     "min_params": count_params(space, lo, n_classes),
                     "max_params": count_params(space, hi, n_classes)})
    return {"space": space.to_dict(), "n_classes": n_classes, "n_subnets": space.n_subnets,
            "n_architectures": space.n_subnets // len(space.resolutions), "per_resolution": rows}


def resolve_subnet(space: SearchSpace, spec: str, rng: random.Random | None = None) -> Subnet:
    """``max`` | ``min`` | ``random`` | JSON text -> a validated subnet of ``space``."""
    key = spec.strip().lower()
    if key == "max":
        return max_subnet(space)
    if key == "min":
        return min_subnet(space)
    if key == "random":
        return sample(space, rng or random.Random(0))
    return subnet_from_json(space, spec)


def describe_subnet(space: SearchSpace, spec: str | Subnet, n_classes: int,
                    rng: random.Random | None = None) -> dict[str, Any]:
    subnet = spec if isinstance(spec, Subnet) else resolve_subnet(space, spec, rng)
    return {"id": subnet.id, "short": subnet.short(), "subnet": subnet.to_dict(),
            "macs": count_macs(space, subnet, n_classes), "params": count_params(space, subnet, n_classes),
            "space": space.name}
