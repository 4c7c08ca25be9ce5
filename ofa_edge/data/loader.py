"""Deterministic batch loaders: every batch's order and augmentation follow from (seed, epoch, batch)."""

from __future__ import annotations

from typing import Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from ofa_edge.errors import InvalidValueError
from ofa_edge.data.sources import ImageSet
from ofa_edge.data.transforms import make_transform


def derive_seed(*parts: int) -> int:
    """A 63-bit seed mixed from integers (stable across runs, processes and machines)."""
    return int(np.random.SeedSequence([int(p) & 0xFFFFFFFF for p in parts]).generate_state(2, np.uint64)[0]
               >> np.uint64(1))


def native_size(dataset: ImageSet) -> int | None:
    """Side of the stored images when they all share one size, else None."""
    return int(dataset.array.shape[1]) if dataset.array is not None else None


class _Batches(Dataset):
    """Item b = the whole batch b of one epoch (so worker processes cannot change the result)."""

    def __init__(self, dataset: ImageSet, order: np.ndarray, batch_size: int, n_batches: int,
                 views: Sequence[str], resolution: int, seed_parts: tuple[int, ...], start: int):
        self.dataset, self.order, self.batch_size = dataset, order, batch_size
        self.n_batches, self.start, self.seed_parts = n_batches, start, seed_parts
        native = native_size(dataset)
        self.transforms = [make_transform(v, resolution, dataset.mean, dataset.std, native) for v in views]

    def __len__(self) -> int:
        return self.n_batches - self.start

    def __getitem__(self, item: int):
        b = item + self.start
        pos = self.order[b * self.batch_size:(b + 1) * self.batch_size]
        images = [self.dataset.image(int(p)) for p in pos]
        y = torch.as_tensor(self.dataset.labels[self.dataset.indices[pos]], dtype=torch.long)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(derive_seed(*self.seed_parts, b))
            views = [t(images) for t in self.transforms]
        return (views[0] if len(views) == 1 else tuple(views)), y


class Loader:
    """Iterable of ``(x, y)`` batches (``x`` a tuple when several views are asked for)."""

    def __init__(self, dataset: ImageSet, resolution: int, batch_size: int, train: bool, seed: int = 0,
                 views: Sequence[str] | None = None, rank: int = 0, world: int = 1, workers: int = 0):
        if batch_size < 1:
            raise InvalidValueError(f"batch_size: must be at least 1, got {batch_size}", "batch_size")
        if len(dataset) == 0:
            raise InvalidValueError("cannot build a loader over an empty data set")
        self.dataset, self.resolution, self.batch_size, self.train = dataset, resolution, batch_size, train
        self.seed, self.rank, self.world, self.workers = seed, rank, world, workers
        self.views = tuple(views or (("weak",) if train else ("eval",)))
        self.epoch, self.start = 0, 0

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        """Select the epoch (shuffle order) and the first batch to yield (resume position)."""
        self.epoch, self.start = epoch, start_batch

    def __len__(self) -> int:
        n = len(self.dataset)
        if self.train:
            return max(1, n // (self.batch_size * self.world)) if n >= self.batch_size * self.world else 1
        return -(-n // self.batch_size)

    def _order(self) -> np.ndarray:
        n = len(self.dataset)
        if not self.train:
            return np.arange(n)
        rng = np.random.default_rng(derive_seed(self.seed, self.epoch, 17))
        order = rng.permutation(n)
        global_bs = self.batch_size * self.world
        if n < global_bs:  # tiny sets: repeat the permutation to fill one batch
            order = np.resize(order, global_bs)
        n_batches = len(self)
        # rank r takes rows r*bs:(r+1)*bs of every global batch
        grid = order[:n_batches * global_bs].reshape(n_batches, self.world, self.batch_size)
        return grid[:, self.rank].reshape(-1)

    def batch(self, epoch: int, b: int):
        """Batch ``b`` of epoch ``epoch`` directly (the same as the b-th item of that epoch's iteration)."""
        saved = self.epoch
        self.epoch = epoch
        try:
            order = self._order()
        finally:
            self.epoch = saved
        parts = (self.seed, epoch, self.rank, 1 if self.train else 0)
        return _Batches(self.dataset, order, self.batch_size, len(self), self.views, self.resolution,
                        parts, 0)[b % len(self)]

    def __iter__(self) -> Iterator:
        parts = (self.seed, self.epoch, self.rank, 1 if self.train else 0)
        batches = _Batches(self.dataset, self._order(), self.batch_size, len(self), self.views,
                           self.resolution, parts, self.start)
        if self.workers > 0:
            yield from DataLoader(batches, batch_size=None, shuffle=False, num_workers=self.workers,
                                  persistent_workers=False)
        else:
            for b in range(len(batches)):
                yield batches[b]


def make_loader(dataset: ImageSet, resolution: int, batch_size: int, train: bool, seed: int = 0,
                views: Sequence[str] | None = None, rank: int = 0, world: int = 1, workers: int = 0) -> Loader:
    """Batches of ``dataset`` at ``resolution``: shuffled + weakly augmented when ``train``, else
    evaluation transform in order. ``views`` (e.g. ("weak", "strong")) gives several views per image."""
    return Loader(dataset, resolution, batch_size, train, seed, views, rank, world, workers)


def bn_batches(dataset: ImageSet, resolution: int, n_images: int = 2000, batch_size: int = 200,
               seed: int = 937162211) -> list[torch.Tensor]:
    """Fixed batches for BN recalibration: a seeded subset with the training (weak) augmentation, as OFA."""
    if n_images < 1:
        raise InvalidValueError(f"bn images: must be at least 1, got {n_images}")
    rng = np.random.default_rng(seed)
    pos = rng.permutation(len(dataset))[:n_images]
    subset = dataset.subset(pos)
    batches = _Batches(subset, np.arange(len(subset)), batch_size, -(-len(subset) // batch_size),
                       ("weak",), resolution, (seed, resolution), 0)
    return [batches[b][0] for b in range(len(batches))]
