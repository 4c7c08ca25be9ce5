"""Supernet families: one registered class per family; ``create_supernet`` builds the one a space names."""

from __future__ import annotations

from typing import Callable

from torch import nn

from ofa_edge.registry import Registry
from ofa_edge.space import SearchSpace, resolve_space
from ofa_edge.supernet.heads import HeadMap
from ofa_edge.supernet.mobilenetv3 import OFAMobileNetV3

#: family name -> supernet class taking ``(space, n_classes, head_map, dropout)``.
SUPERNETS: Registry[Callable[..., nn.Module]] = Registry("supernet family", "family")
SUPERNETS.add("mobilenetv3", OFAMobileNetV3)


def register_supernet(family: str):
    """Class decorator: make a supernet class the builder of spaces whose ``family`` is ``family``."""
    return SUPERNETS.register(family)


def create_supernet(space: SearchSpace | str, n_classes: int = 1000, head_map: HeadMap | None = None,
                    dropout: float = 0.0) -> nn.Module:
    """A fresh supernet for ``space`` (a registered name, a .json space file or a SearchSpace).

    Args:
        space: The search space; its ``family`` picks the supernet class.
        n_classes: Outputs of the classifier.
        head_map: Switchable heads (default: one shared head).
        dropout: Dropout before the classifier.

    Returns:
        The supernet module (in training mode, freshly initialised).

    Raises:
        UnknownNameError: the space or its family is not registered.
    """
    space = resolve_space(space)
    return SUPERNETS.get(space.family)(space, n_classes, head_map, dropout)
