"""Named training recipes: TrainConfig settings measured to converge within a stated CPU budget."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from ofa_edge.errors import OfaEdgeError
from ofa_edge.train.config import TrainConfig


@dataclass(frozen=True)
class Recipe:
    """TrainConfig overrides plus what the recipe was measured to reach (and where)."""

    name: str
    summary: str
    settings: dict[str, Any] = field(default_factory=dict)
    data_hint: str = ""

    def config(self, **overrides: Any) -> TrainConfig:
        """The recipe's TrainConfig with ``overrides`` (e.g. ``data``, ``out``) applied on top."""
        return TrainConfig(**{**self.settings, **overrides})


_RECIPES: dict[str, Recipe] = {}


def register_recipe(recipe: Recipe) -> Recipe:
    """Make ``recipe`` available as ``ofa-edge train --recipe NAME`` (duplicates are refused)."""
    if recipe.name in _RECIPES:
        raise OfaEdgeError(f"recipe {recipe.name!r} is already registered")
    unknown = set(recipe.settings) - {f.name for f in dataclasses.fields(TrainConfig)}
    if unknown:
        raise OfaEdgeError(f"recipe {recipe.name!r}: unknown TrainConfig fields {sorted(unknown)}")
    _RECIPES[recipe.name] = recipe
    return recipe


def get_recipe(name: str) -> Recipe:
    """The recipe registered as ``name``; a miss lists the known ones."""
    try:
        return _RECIPES[name]
    except KeyError:
        raise OfaEdgeError(f"recipe: {name!r} is not one of {sorted(_RECIPES)}") from None


def list_recipes() -> list[str]:
    return sorted(_RECIPES)


register_recipe(Recipe(
    name="cifar10-mbv3",
    summary="cifar-mbv3 on 20k CIFAR-10 images (16k train / 4k val: enough validation images for the "
            "predictor to rank subnets), random subnet sampling with every 8th step on the max subnet, batch "
            "128, 70 epochs, < 1 h on 2 CPU cores at 2 threads; the packaged cifar10-mbv3 supernet "
            "(bench/convergence.py)",
    settings=dict(space="cifar-mbv3", strategy="random", max_every=8, epochs=70, batch_size=128, lr=0.15, weight_decay=5e-4,
                  warmup_epochs=1, label_smoothing=0.1, dropout=0.1, val_fraction=0.2, eval_every=10,
                  bn_images=500, seed=0, precision="fp32"),
    data_hint="../shared/data/cifar10 (train.npz + train_extra.npz + test.npz)",
))
