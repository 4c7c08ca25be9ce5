"""Named search spaces: the OFA ImageNet layouts and small CIFAR spaces for CPU training."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

from ofa_edge.errors import FileFormatError, UnknownNameError
from ofa_edge.registry import Registry
from ofa_edge.space.config import SearchSpace

#: Named search spaces: zero-argument factories returning a :class:`SearchSpace`.
SPACES: Registry[Callable[[], SearchSpace]] = Registry("search space", "space")


def register_space(name: str):
    """Decorator: register a zero-argument factory under ``name`` (a name already taken is refused)."""
    return SPACES.register(name)


def list_spaces() -> list[str]:
    """The registered space names, sorted."""
    return SPACES.list()


def get_space(name: str) -> SearchSpace:
    """Return the registered space ``name``; unknown names list the known ones."""
    return SPACES.get(name)()


@register_space("ofa-mbv3-w1")
def ofa_mbv3_w1() -> SearchSpace:
    """The released ``ofa_mbv3_d234_e346_k357_w1.0`` ImageNet supernet."""
    return SearchSpace(name="ofa-mbv3-w1", width_mult=1.0)


@register_space("ofa-mbv3-w1.2")
def ofa_mbv3_w12() -> SearchSpace:
    """The released ``ofa_mbv3_d234_e346_k357_w1.2`` ImageNet supernet."""
    return SearchSpace(name="ofa-mbv3-w1.2", width_mult=1.2)


@register_space("cifar-mbv3")
def cifar_mbv3() -> SearchSpace:
    """OFA's elastic choices at width 0.5 with a stride-1 stem for 32 px images (the default)."""
    return SearchSpace(name="cifar-mbv3", width_mult=0.5, stem="cifar", resolutions=(24, 28, 32))


@register_space("cifar-tiny")
def cifar_tiny() -> SearchSpace:
    """A very small space (two choices per dimension) for tests and quick demos."""
    return SearchSpace(name="cifar-tiny", width_mult=0.25, stem="cifar", ks_list=(3, 5),
                       expand_list=(2, 4), depth_list=(1, 2), resolutions=(24, 32))


def resolve_space(spec: "str | SearchSpace") -> SearchSpace:
    """A registered name, or the path of a JSON file holding ``SearchSpace.to_dict()``.

    Args:
        spec: A registered space name, a ``.json`` path, or a SearchSpace (returned as is).

    Returns:
        The search space.

    Raises:
        UnknownNameError: neither a registered name nor a file (lists the registered spaces).
        FileFormatError: a missing or invalid space file.
    """

    if isinstance(spec, SearchSpace):
        return spec
    if spec in SPACES:
        return get_space(spec)
    path = Path(spec)
    if path.suffix == ".json" or path.is_file():
        if not path.is_file():
            raise FileFormatError(path, "search space file does not exist", "space")
        try:
            return SearchSpace.from_dict(json.loads(path.read_text()))
        except (json.JSONDecodeError, TypeError, ValueError, UnicodeDecodeError) as exc:
            raise FileFormatError(path, f"not a valid search space file: {exc}", "space") from None
    raise UnknownNameError("search space", spec, list_spaces(), "space",
                           "(or the path of a .json space file)")
