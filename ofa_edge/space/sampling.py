"""Seeded sampling, corner subnets, mutation and crossover over a search space."""

from __future__ import annotations

import random

from ofa_edge.space.config import SearchSpace
from ofa_edge.space.subnet import Subnet


def max_subnet(space: SearchSpace, r: int | None = None) -> Subnet:
    """The largest subnet (largest kernel, expand, depth; largest resolution unless given)."""
    n = space.n_blocks
    return Subnet(ks=[max(space.ks_list)] * n, e=[max(space.expand_list)] * n,
                  d=[max(space.depth_list)] * space.n_stages, r=r or max(space.resolutions),
                  max_depth=space.max_depth)


def min_subnet(space: SearchSpace, r: int | None = None) -> Subnet:
    """The smallest subnet (smallest of every choice; smallest resolution unless given)."""
    n = space.n_blocks
    return Subnet(ks=[min(space.ks_list)] * n, e=[min(space.expand_list)] * n,
                  d=[min(space.depth_list)] * space.n_stages, r=r or min(space.resolutions),
                  max_depth=space.max_depth)


def sample(space: SearchSpace, rng: random.Random | int | None = None, r: int | None = None) -> Subnet:
    """Draw a subnet uniformly per choice, in OFA's order: kernels, expands, depths, resolution.

    With ``random.seed(S)`` state this reproduces the reference ``sample_active_subnet``.
    """
    rng = rng if isinstance(rng, random.Random) else random.Random(rng)
    n = space.n_blocks
    ks = [rng.choice(space.ks_list) for _ in range(n)]
    e = [rng.choice(space.expand_list) for _ in range(n)]
    d = [rng.choice(space.depth_list) for _ in range(space.n_stages)]
    if r is None:
        r = rng.choice(space.resolutions)
    return Subnet(ks=ks, e=e, d=d, r=r, max_depth=space.max_depth)


def mutate(space: SearchSpace, subnet: Subnet, rng: random.Random, prob: float = 0.1,
           resolution_prob: float = 0.5) -> Subnet:
    """OFA mutation: each block slot re-draws kernel and expand with ``prob``; each depth with
    ``prob``; the resolution with ``resolution_prob``."""
    ks, e, d = list(subnet.ks), list(subnet.e), list(subnet.d)
    r = subnet.r
    if rng.random() < resolution_prob:
        r = rng.choice(space.resolutions)
    for i in range(space.n_blocks):
        if rng.random() < prob:
            ks[i] = rng.choice(space.ks_list)
            e[i] = rng.choice(space.expand_list)
    for s in range(space.n_stages):
        if rng.random() < prob:
            d[s] = rng.choice(space.depth_list)
    return Subnet(ks=ks, e=e, d=d, r=r, max_depth=space.max_depth)


def crossover(subnet_a: Subnet, subnet_b: Subnet, rng: random.Random) -> Subnet:
    """OFA crossover: every gene (and the resolution) taken from either parent with p = 0.5."""
    pick = lambda a, b: [x if rng.random() < 0.5 else y for x, y in zip(a, b)]  # noqa: E731
    return Subnet(ks=pick(subnet_a.ks, subnet_b.ks), e=pick(subnet_a.e, subnet_b.e),
                  d=pick(subnet_a.d, subnet_b.d),
                  r=subnet_a.r if rng.random() < 0.5 else subnet_b.r, max_depth=subnet_a.max_depth)
