"""Evaluation: top-1 / top-5 / expected calibration error, and subnet evaluation after BN recalibration."""

from __future__ import annotations

from typing import Iterable

import torch
from torch import nn

from ofa_edge.errors import InvalidValueError
from ofa_edge.data import TaskData, bn_batches, make_loader
from ofa_edge.data.sources import ImageSet
from ofa_edge.space import Subnet
from ofa_edge.supernet.bn_calib import recalibrate_bn
from ofa_edge.train.layout import memory_format, to_device

ECE_BINS = 15
_BN_CACHE: dict[tuple, tuple[ImageSet, list[torch.Tensor]]] = {}


def expected_calibration_error(probs: torch.Tensor, labels: torch.Tensor, bins: int = ECE_BINS) -> float:
    """ECE in percent: sum over equal-width confidence bins of |accuracy - confidence| * bin share."""
    conf, pred = probs.max(dim=1)
    correct = pred.eq(labels).to(torch.float64)
    conf = conf.to(torch.float64)
    edges = torch.linspace(0, 1, bins + 1, dtype=torch.float64)
    ece = torch.zeros((), dtype=torch.float64)
    for lo, hi in zip(edges[:-1], edges[1:]):
        inside = (conf > lo) & (conf <= hi)
        if inside.any():
            ece += inside.to(torch.float64).mean() * (correct[inside].mean() - conf[inside].mean()).abs()
    return float(ece * 100)


@torch.no_grad()
def evaluate(model: nn.Module, loader: Iterable) -> dict:
    """Top-1 and top-5 accuracy (percent), ECE (percent, 15 bins), mean CE loss and image count."""
    was_training = model.training
    model.eval()
    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    all_logits, all_labels = [], []
    try:
        for x, y in loader:
            x = to_device(x, device)
            all_logits.append(model(x).float().cpu())
            all_labels.append(y)
    finally:
        model.train(was_training)
    if not all_logits:
        raise InvalidValueError("evaluate: the loader yielded no batches")
    logits, labels = torch.cat(all_logits), torch.cat(all_labels)
    k = min(5, logits.size(1))
    topk = logits.topk(k, dim=1).indices
    hits = topk.eq(labels.view(-1, 1))
    probs = logits.softmax(dim=1)
    return {"top1": float(hits[:, 0].float().mean() * 100), "top5": float(hits.any(1).float().mean() * 100),
            "ece": expected_calibration_error(probs, labels),
            "loss": float(nn.functional.cross_entropy(logits, labels)), "n": int(labels.numel())}


def calibration_batches(dataset: ImageSet, resolution: int, n_images: int, batch_size: int = 200,
                        seed: int = 937162211) -> list[torch.Tensor]:
    """``bn_batches`` with a small cache (the same batches serve every subnet at one resolution)."""
    key = (id(dataset), resolution, n_images, batch_size, seed)
    hit = _BN_CACHE.get(key)
    if hit is None or hit[0] is not dataset:  # the entry keeps its data set alive, so ids cannot be reused
        if len(_BN_CACHE) > 16:
            _BN_CACHE.clear()
        hit = _BN_CACHE[key] = (dataset, bn_batches(dataset, resolution, n_images, batch_size, seed))
    return hit[1]


def evaluate_subnet(net, subnet: Subnet, task: TaskData, bn_images: int = 2000, split: str = "val",
                    batch_size: int = 200, bn_mode: str = "ofa") -> dict:
    """Activate ``subnet``, extract it, recalibrate its BN on training images, evaluate on ``split``.

    The supernet itself is not modified (the static copy is recalibrated). Returns evaluate()'s dict
    plus ``subnet`` (its id) and ``r``.
    """
    if split not in ("val", "test"):
        raise InvalidValueError(f"split: {split!r} is not one of ['val', 'test']", "split")
    net.set_subnet(subnet)
    static = net.get_active_subnet()
    device = next(static.parameters()).device
    static = static.to(memory_format=memory_format(device))
    if bn_images > 0:
        batches = [to_device(b, device) for b in calibration_batches(task.train, subnet.r, bn_images, batch_size)]
        recalibrate_bn(static, batches, mode=bn_mode)
    data = task.val if split == "val" else task.test
    result = evaluate(static, make_loader(data, subnet.r, batch_size, train=False))
    return {**result, "subnet": subnet.id, "r": subnet.r}


def evaluate_checkpoint(path, subnet: str = "max", bn_images: int = 2000, data: str | None = None,
                        split: str = "test", rng=None) -> dict:
    """``ofa-edge eval``: load a checkpoint, pick ``subnet`` (max|min|random|JSON), evaluate it.

    The data defaults to the run's own (from the checkpoint's training config), else the embedded set; either
    is split as the run split it (its validation fraction, labels and seed).
    """
    import random as _random

    from ofa_edge.data import load_task
    from ofa_edge.space import max_subnet, min_subnet, sample, subnet_from_json
    from ofa_edge.supernet import load_any
    from ofa_edge.supernet.checkpoint import FORMAT, read_torch_file

    net = load_any(path)
    cfg = {}
    obj = read_torch_file(path)
    if isinstance(obj, dict) and obj.get("format") == FORMAT:
        cfg = (obj.get("meta") or {}).get("config") or {}
    # the run's own split of the data (its validation images, its BN-recalibration pool), also for --data
    task = load_task(data if data is not None else cfg.get("data"), cfg.get("val_fraction", 0.1),
                     cfg.get("labels_per_class"), cfg.get("seed", 0))
    if task.n_classes != net.n_classes:
        raise InvalidValueError(f"{path} classifies {net.n_classes} classes but the data has "
                                f"{task.n_classes}; give the data it was trained on", "data")
    if bn_images < 0:
        raise InvalidValueError(f"bn images: must be >= 0, got {bn_images}", "bn_images")
    space = net.space
    if subnet == "max":
        sub = max_subnet(space)
    elif subnet == "min":
        sub = min_subnet(space)
    elif subnet == "random":
        sub = sample(space, rng or _random.Random(0))
    else:
        try:
            sub = subnet_from_json(space, subnet)
        except ValueError as exc:
            raise InvalidValueError(f"subnet: {exc}; use max, min, random or a JSON subnet", "subnet") from None
    result = evaluate_subnet(net, sub, task, bn_images=bn_images, split=split)
    return {"checkpoint": str(path), "split": split, "bn_images": bn_images, "subnet_json": sub.to_dict(),
            **result}
