"""A trained run as the flows see it: the supernet checkpoint, its hash and its training config."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ofa_edge.data import TaskData, load_task
from ofa_edge.errors import InvalidValueError
from ofa_edge.export.manifest import sha256_path
from ofa_edge.pretrained import list_pretrained, resolve_checkpoint
from ofa_edge.search.selectors import SampledEntry, read_sampled_log, sampled_entries
from ofa_edge.space import SearchSpace
from ofa_edge.supernet import load_any
from ofa_edge.supernet.checkpoint import FORMAT, read_torch_file


@dataclass
class TrainedRun:
    """A trained supernet checkpoint with what it was trained on."""

    path: Path
    net: Any
    sha256: str
    config: dict[str, Any]

    @property
    def space(self) -> SearchSpace:
        """The supernet's search space."""
        return self.net.space

    @property
    def n_classes(self) -> int:
        """Classes the supernet's classifier predicts."""
        return self.net.n_classes

    def task(self, data: str | None = None) -> TaskData:
        """The training run's data splits (or those of ``data``), checked against the class count."""
        cfg = self.config
        task = load_task(data if data is not None else cfg.get("data"), cfg.get("val_fraction", 0.1),
                         cfg.get("labels_per_class"), cfg.get("seed", 0))
        if task.n_classes != self.n_classes:
            raise InvalidValueError(f"{self.path} classifies {self.n_classes} classes but the data has "
                                    f"{task.n_classes}; give the data it was trained on", "data")
        return task

    def training_log(self) -> list[SampledEntry]:
        """The subnets training sampled (``sampled.csv`` beside the checkpoint), for the last-sampled rule.

        A packaged supernet ships without the file; its card's ``training_log.steps_per_epoch`` lets the
        log be replayed from the recipe instead (``ofa_edge.train.replay``), giving the same entries.
        """
        path = self.path.parent / "sampled.csv"
        steps = _packaged_steps_per_epoch(self.path) if not path.is_file() else None
        if steps:
            from ofa_edge.train.replay import replay_sampled

            return sampled_entries(replay_sampled(self.config, self.space, steps), self.space)
        return read_sampled_log(path, self.space)


def _packaged_steps_per_epoch(path: Path) -> int | None:
    """Steps per epoch of the packaged supernet whose checkpoint is ``path`` (None for any other file)."""
    for pack in list_pretrained():
        if pack.checkpoint.resolve() == path.resolve():
            steps = (pack.card.get("training_log") or {}).get("steps_per_epoch")
            return int(steps) if isinstance(steps, int) and steps > 0 else None
    return None


def open_run(checkpoint: str | os.PathLike) -> TrainedRun:
    """Load a supernet checkpoint (ofa-edge or OFA format, or a packaged pretrained name) in eval mode."""
    path = resolve_checkpoint(checkpoint)
    net = load_any(path).eval()
    obj = read_torch_file(path)
    cfg = ((obj.get("meta") or {}).get("config") or {}) if isinstance(obj, dict) and obj.get("format") == FORMAT else {}
    return TrainedRun(path, net, sha256_path(path), cfg)
