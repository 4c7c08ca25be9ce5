"""Training checkpoints (supernet file + resumable state), the sampled-subnet log, metrics CSV, --init."""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path
from typing import Any

import torch

from ofa_edge.errors import FileFormatError, OfaEdgeError
from ofa_edge.io import atomic_write_text
from ofa_edge.space import SearchSpace
from ofa_edge.supernet import read_supernet_file, save_supernet
from ofa_edge.supernet.checkpoint import (FORMAT, _guess_ofa_space, _normalise_ofa_keys, _state_dict_of,
                                          load_state_into, read_torch_file, supernet_from_payload)
from ofa_edge.train.config import TrainConfig

TRAIN_STATE_VERSION = 1
SAMPLED_FORMAT = "ofa-edge-sampled-v1"
METRICS_FORMAT = "ofa-edge-metrics-v1"
CHECKPOINT_NAME = "supernet.pt"
SAMPLED_COLUMNS = ["format", "id", "last_iteration", "count", "subnet"]
METRICS_COLUMNS = ["format", "epoch", "phase", "lr", "loss", "images", "seconds", "images_per_s",
                   "val_max_top1", "val_min_top1", "val_max_ece", "val_min_ece"]


def save_train_checkpoint(path: Path, net, config: TrainConfig, state: dict[str, Any],
                          complete: bool) -> Path:
    """Atomically write the supernet with the config and resumable ``state`` in its meta."""
    return save_supernet(net, path, config=config.to_dict(), complete=complete,
                         train_state={"version": TRAIN_STATE_VERSION, **state})


def read_train_checkpoint(path: str | os.PathLike) -> tuple[dict[str, Any], TrainConfig, dict[str, Any]]:
    """Read a checkpoint for ``--resume``: (payload, config, train state); refuses anything else clearly."""
    path = Path(path)
    if path.is_dir():
        path = path / CHECKPOINT_NAME
    payload = read_supernet_file(path)
    meta = payload.get("meta") or {}
    state = meta.get("train_state")
    if not isinstance(state, dict) or "config" not in meta:
        raise FileFormatError(path, "holds no training state (not written by ofa-edge train); "
                                    "use it with --init to start a new run from its weights")
    if state.get("version") != TRAIN_STATE_VERSION:
        raise FileFormatError(path, f"unknown training-state version {state.get('version')!r}")
    try:
        config = TrainConfig.from_dict(meta["config"])
        for key in ("epoch", "step", "iteration", "optimizer", "torch_rng", "sampled"):
            if key not in state:
                raise KeyError(key)
    except (KeyError, TypeError, ValueError) as exc:
        raise FileFormatError(path, f"bad training state ({exc})") from None
    return payload, config, state


def resume_net(path: Path, payload: dict[str, Any]):
    """Rebuild the supernet stored in a training checkpoint (train mode)."""
    return supernet_from_payload(path, payload).train()


def write_sampled(path: Path, sampled: dict[str, list]) -> None:
    """The sampled-subnet log: one row per distinct subnet (by id) with the last iteration it was trained at
    and how often; rows in training order (iteration, then position within the step)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(SAMPLED_COLUMNS)
    for sid, (js, last, count, pos) in sorted(sampled.items(), key=lambda kv: (kv[1][1], kv[1][3])):
        w.writerow([SAMPLED_FORMAT, sid, last, count, js])
    atomic_write_text(path, buf.getvalue())


def read_sampled(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Rows of a sampled.csv (validated): id, last_iteration, count, subnet (JSON text)."""
    path = Path(path)
    if not path.is_file():
        raise FileFormatError(path, "no such file")
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    if rows and (set(rows[0]) != set(SAMPLED_COLUMNS) or any(r["format"] != SAMPLED_FORMAT for r in rows)):
        raise FileFormatError(path, f"not a sampled-subnet log (format {SAMPLED_FORMAT})")
    return [{"id": r["id"], "last_iteration": int(r["last_iteration"]), "count": int(r["count"]),
             "subnet": r["subnet"]} for r in rows]


def write_metrics(path: Path, rows: list[dict[str, Any]]) -> None:
    buf = io.StringIO()
    w = csv.DictWriter(buf, METRICS_COLUMNS, lineterminator="\n", extrasaction="ignore")
    w.writeheader()
    for row in rows:
        w.writerow({"format": METRICS_FORMAT, **row})
    atomic_write_text(path, buf.getvalue())


def load_init(net, path: str | os.PathLike) -> dict[str, Any]:
    """Load an OFA-format or ofa-edge checkpoint into ``net`` for transfer.

    Classifier heads are re-initialised when the class count differs (else the file's head is copied
    into every head); every other tensor must exist with the same shape. Returns a report.
    """
    path = Path(path)
    obj = read_torch_file(path)
    if isinstance(obj, dict) and obj.get("format") == FORMAT:
        kind = "ofa-edge"
        obj = read_supernet_file(path)
        sd = dict(obj["state_dict"])
        src_space = SearchSpace.from_dict(obj["space"])
    else:
        kind = "ofa"
        sd = _normalise_ofa_keys(_state_dict_of(path, obj))
        src_space = _guess_ofa_space(path, sd)
    if src_space.fingerprint() != net.space.fingerprint() and \
            sd.get("first_conv.conv.weight", torch.empty(0)).shape != net.first_conv.conv.weight.shape:
        raise OfaEdgeError(f"init: {path} holds a supernet of space {src_space.name!r} but this run uses "
                           f"{net.space.name!r}; pass --space {src_space.name}")
    head_keys = [k for k in sd if k.startswith("classifier.")]
    body = {k: v for k, v in sd.items() if not k.startswith("classifier.")}
    own = net.state_dict()
    w0 = sd.get("classifier.heads.0.linear.weight")
    reinit = w0 is None or tuple(w0.shape) != tuple(own["classifier.heads.0.linear.weight"].shape)
    if not reinit:
        for h in range(net.head_map.n_heads):
            for suffix in ("weight", "bias"):
                src = sd.get(f"classifier.heads.{h}.linear.{suffix}", sd[f"classifier.heads.0.linear.{suffix}"])
                body[f"classifier.heads.{h}.linear.{suffix}"] = src
    unknown = [k for k in head_keys if not k.startswith("classifier.heads.")]
    if unknown:
        raise FileFormatError(path, f"not an OFA MobileNetV3 checkpoint: unexpected key {unknown[0]!r}")
    allow = ("num_batches_tracked", "_matrix") + (("classifier.heads",) if reinit else ())
    missing_allowed = tuple(allow)
    own_missing = [k for k in own if k not in body and not k.endswith(missing_allowed)
                   and not (reinit and k.startswith("classifier."))]
    if own_missing:
        raise FileFormatError(path, f"not an OFA MobileNetV3 checkpoint of space {net.space.name!r}: "
                                    f"missing key {own_missing[0]!r} (+{len(own_missing) - 1} more)")
    load_state_into(net, body, path, allow_missing=tuple(k for k in own if k not in body))
    n_classes = None if w0 is None else int(w0.shape[0])
    return {"path": str(path), "format": kind, "space": src_space.name, "loaded": len(body),
            "kept": len(own) - len(body), "classifier": "reinitialised" if reinit else "loaded",
            "file_classes": n_classes, "classes": net.n_classes}
