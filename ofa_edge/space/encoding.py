"""One-hot encoding of a subnet for the accuracy predictor (OFA's MobileNetArchEncoder layout)."""

from __future__ import annotations

from ofa_edge.errors import InvalidValueError
from ofa_edge.space.config import SearchSpace
from ofa_edge.space.subnet import Subnet


def encoding_size(space: SearchSpace) -> int:
    """Length of the feature vector: resolutions + blocks x kernels + blocks x expands."""
    return len(space.resolutions) + space.n_blocks * (len(space.ks_list) + len(space.expand_list))


def encode(space: SearchSpace, subnet: Subnet) -> list[float]:
    """[one-hot r][per slot one-hot kernel][per slot one-hot expand]; skipped slots are all zero."""
    if subnet.r not in space.resolutions:
        raise InvalidValueError(f"r: {subnet.r} is not one of {list(space.resolutions)}")
    nk, ne = len(space.ks_list), len(space.expand_list)
    vec = [0.0] * encoding_size(space)
    vec[space.resolutions.index(subnet.r)] = 1.0
    k0 = len(space.resolutions)
    e0 = k0 + space.n_blocks * nk
    for i in subnet.active_blocks():
        vec[k0 + i * nk + space.ks_list.index(subnet.ks[i])] = 1.0
        vec[e0 + i * ne + space.expand_list.index(subnet.e[i])] = 1.0
    return vec
