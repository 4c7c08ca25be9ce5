"""Every distinct layer (by its LUT key) that the subnets of a space can contain at given resolutions."""

from __future__ import annotations

from typing import Iterable

from ofa_edge.errors import InvalidValueError
from ofa_edge.space import LayerSpec, SearchSpace, Subnet, layers


def uniform_subnet(space: SearchSpace, k: int, e: int, r: int) -> Subnet:
    """The deepest subnet with kernel ``k`` and expand ``e`` in every block, at resolution ``r``."""
    n = space.n_blocks
    return Subnet(ks=(k,) * n, e=(e,) * n, d=(space.max_depth,) * space.n_stages, r=r,
                  max_depth=space.max_depth)


def enumerate_blocks(space: SearchSpace, resolutions: Iterable[int] | None = None,
                     n_classes: int = 10) -> list[LayerSpec]:
    """Distinct layers over all subnets at ``resolutions`` (default: the space's), first-seen order.

    A layer's shape depends only on its slot, its own kernel and expand ratio and the resolution
    (odd kernels with padding k // 2 keep spatial sizes), so the union of the uniform deepest
    subnets over every (kernel, expand, resolution) covers every layer any subnet can have.
    """
    res = sorted(set(resolutions if resolutions is not None else space.resolutions))
    bad = [r for r in res if r not in space.resolutions]
    if bad:
        raise InvalidValueError(f"resolution {bad[0]} is not in space {space.name} "
                                f"(allowed: {list(space.resolutions)})", "resolutions")
    seen: dict[str, LayerSpec] = {}
    for r in res:
        for k in space.ks_list:
            for e in space.expand_list:
                for spec in layers(space, uniform_subnet(space, k, e, r), n_classes):
                    seen.setdefault(spec.lut_key(), spec)
    return list(seen.values())


def input_shape(spec: LayerSpec, batch: int = 1) -> tuple[int, int, int, int]:
    """NCHW input shape of a one-layer model (the classifier takes the pooled ``C x 1 x 1`` map)."""
    return (batch, spec.in_ch, spec.in_size, spec.in_size)
