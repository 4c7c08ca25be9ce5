"""Training checkpoints (supernet file + resumable state), the sampled-subnet log, metrics CSV, --init."""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path
from typing import Any

import torch

from ofa_edge.errors import FileFormatError, InvalidValueError, OfaEdgeError
from ofa_edge.io import atomic_write_text
from ofa_edge.space import SearchSpace
from ofa_edge.supernet import read_supernet_file, save_supernet
from ofa_edge.supernet.checkpoint import (FORMAT, _guess_ofa_space, _normalise_ofa_keys, _state_dict_of, is_value,
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
    meta = payload.get("meta")
    state = meta.get("train_state") if isinstance(meta, dict) else None
    if not isinstance(state, dict) or "config" not in meta:
        raise FileFormatError(path, "holds no training state (not written by ofa-edge train); "
                                    "start a new run from its weights instead (init)")
    if not is_value(state.get("version"), TRAIN_STATE_VERSION):
        raise FileFormatError(path, f"unknown training-state version {state.get('version')!r}")
    try:
        if not isinstance(meta["config"], dict):
            raise TypeError("config must be a dict")
        config = TrainConfig.from_dict(meta["config"])
        check_train_state(state)
    except (KeyError, TypeError, ValueError, OfaEdgeError) as exc:
        raise FileFormatError(path, f"bad training state ({exc})") from None
    return payload, config, state


def _int(state: dict[str, Any], key: str, high: int = 10**12) -> int:
    value = state[key]
    if type(value) is not int or not 0 <= value <= high:
        raise ValueError(f"{key} must be an integer in 0..{high}, got {value!r}")
    return value


def _tensors(value: Any, where: str) -> None:
    """Every tensor inside ``value`` (dicts/lists) must hold finite values."""
    if isinstance(value, torch.Tensor):
        if value.is_floating_point() and not torch.isfinite(value).all():
            raise ValueError(f"{where} holds NaN or inf values")
    elif isinstance(value, dict):
        for k, v in value.items():
            _tensors(v, f"{where}.{k}")
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            _tensors(v, f"{where}[{i}]")


def check_train_state(state: dict[str, Any]) -> None:
    """Validate the resumable state of a training checkpoint (types, ranges, finite tensors)."""
    for key in ("epoch", "step", "iteration", "optimizer", "torch_rng", "sampled"):
        if key not in state:
            raise KeyError(key)
    _int(state, "epoch", 10**6)
    _int(state, "step", 10**9)
    _int(state, "iteration")
    if "world" in state and (type(state["world"]) is not int or not 1 <= state["world"] <= 4096):
        raise ValueError(f"world must be an integer in 1..4096, got {state['world']!r}")
    rng = state["torch_rng"]
    if not isinstance(rng, torch.Tensor) or rng.dtype != torch.uint8 or rng.dim() != 1 or \
            rng.numel() != torch.get_rng_state().numel():
        raise ValueError("torch_rng is not a torch RNG state")
    sampled = state["sampled"]
    if not isinstance(sampled, dict) or not all(
            isinstance(k, str) and isinstance(v, (list, tuple)) and len(v) == 4 and isinstance(v[0], str)
            and all(type(x) is int and x >= 0 for x in v[1:]) for k, v in sampled.items()):
        raise ValueError("sampled must map subnet ids to [json, last iteration, count, position]")
    metrics = state.get("metrics", [])
    if not isinstance(metrics, list) or not all(isinstance(m, dict) for m in metrics):
        raise ValueError("metrics must be a list of dicts")
    acc = state.get("acc", {"loss": 0.0, "images": 0, "seconds": 0.0})
    if not isinstance(acc, dict) or set(acc) != {"loss", "images", "seconds"} or not all(
            not isinstance(v, bool) and isinstance(v, (int, float)) for v in acc.values()):
        raise ValueError("acc must hold loss, images and seconds")
    opt = state["optimizer"]
    if opt is not None and (not isinstance(opt, dict) or not isinstance(opt.get("state"), dict)
                            or not isinstance(opt.get("param_groups"), list)):
        raise ValueError("optimizer must be an optimizer state dict")
    teacher = state.get("teacher")
    if teacher is not None and (not isinstance(teacher, dict) or not all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in teacher.items())):
        raise ValueError("teacher must be a state dict")
    _tensors(opt, "optimizer")
    _tensors(teacher, "teacher")


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
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise FileFormatError(path, f"cannot read the sampled-subnet log ({exc})") from None
    out = []
    for n, r in enumerate(rows, start=2):
        if set(r) != set(SAMPLED_COLUMNS) or r["format"] != SAMPLED_FORMAT or None in r.values():
            raise FileFormatError(path, f"line {n}: not a sampled-subnet log row (format {SAMPLED_FORMAT}, "
                                        f"columns {','.join(SAMPLED_COLUMNS)})")
        try:
            last, count = int(r["last_iteration"]), int(r["count"])
        except ValueError:
            raise FileFormatError(path, f"line {n}: last_iteration and count must be integers") from None
        if not (0 <= last <= 10**12 and 0 <= count <= 10**12):
            raise FileFormatError(path, f"line {n}: last_iteration/count out of range")
        out.append({"id": r["id"], "last_iteration": last, "count": count, "subnet": r["subnet"]})
    return out


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
    if isinstance(obj, dict) and is_value(obj.get("format"), FORMAT):
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
        raise InvalidValueError(f"init: {path} holds a supernet of space {src_space.name!r} but this run uses "
                                f"{net.space.name!r}; use space {src_space.name}", "space")
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
