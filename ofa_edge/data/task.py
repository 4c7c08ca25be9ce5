"""A task: train / unlabelled / validation / test splits of one data source, with class names and stats."""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from ofa_edge.data.sources import ImageSet, open_source
from ofa_edge.errors import OfaEdgeError


@dataclass(frozen=True)
class TaskData:
    """The splits a training run uses; ``unlabelled`` is None unless ``labels_per_class`` was given."""

    train: ImageSet
    unlabelled: ImageSet | None
    val: ImageSet
    test: ImageSet
    classes: tuple[str, ...]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    name: str = ""

    @property
    def n_classes(self) -> int:
        return len(self.classes)

    def describe(self) -> str:
        unl = len(self.unlabelled) if self.unlabelled is not None else 0
        return (f"{self.name}: {self.n_classes} classes, train {len(self.train)} labelled + {unl} unlabelled, "
                f"val {len(self.val)}, test {len(self.test)}")


def stratified_split(labels: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Positions split per class into (rest, carved), ``round(fraction * n_c)`` carved per class."""
    rng = np.random.default_rng(seed)
    rest, carved = [], []
    for c in np.unique(labels):
        pos = rng.permutation(np.flatnonzero(labels == c))
        k = int(round(fraction * pos.size))
        k = min(max(k, 1 if fraction > 0 else 0), pos.size - 1)
        carved.append(pos[:k])
        rest.append(pos[k:])
    return np.sort(np.concatenate(rest)), np.sort(np.concatenate(carved))


def load_task(data: str | os.PathLike | None = None, val_fraction: float = 0.1,
              labels_per_class: int | None = None, seed: int = 0, test_fraction: float = 0.1) -> TaskData:
    """Open ``data`` (None = the embedded CIFAR-10 mini set) and split it.

    The validation split is carved per class from the training images (``val_fraction``); with
    ``labels_per_class`` N, N images per class of the rest stay labelled and the others become the
    unlabelled set. Sources without a test split get one carved the same way (``test_fraction``).
    """
    if not 0.0 <= val_fraction < 1.0:
        raise OfaEdgeError(f"val fraction: must be in [0, 1), got {val_fraction}")
    src = open_source(data)
    train, test = src.train, src.test
    if test is None:
        rest, carved = stratified_split(train.targets, test_fraction, seed + 1)
        train, test = train.subset(rest), train.subset(carved)
    if val_fraction > 0:
        rest, carved = stratified_split(train.targets, val_fraction, seed)
        train, val = train.subset(rest), train.subset(carved)
    else:
        val = test
    unlabelled = None
    if labels_per_class is not None:
        if labels_per_class < 1:
            raise OfaEdgeError(f"labels per class: must be at least 1, got {labels_per_class}")
        counts = np.bincount(train.targets, minlength=len(train.classes))
        present = counts[counts > 0]
        if labels_per_class >= present.min():
            raise OfaEdgeError(f"labels per class: {labels_per_class} is not smaller than the "
                               f"{int(present.min())} training images of the smallest class "
                               f"(after the validation split); use at most {int(present.min()) - 1}")
        rng = np.random.default_rng(seed + 2)
        lab, unl = [], []
        for c in np.flatnonzero(counts):
            pos = rng.permutation(np.flatnonzero(train.targets == c))
            lab.append(pos[:labels_per_class])
            unl.append(pos[labels_per_class:])
        train, unlabelled = train.subset(np.sort(np.concatenate(lab))), train.subset(np.sort(np.concatenate(unl)))
    return TaskData(train, unlabelled, val, test, src.train.classes, src.train.mean, src.train.std, src.name)
