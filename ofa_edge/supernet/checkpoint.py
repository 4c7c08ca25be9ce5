"""Checkpoint I/O: the reference OFA layout and ofa-edge's own versioned supernet format."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from ofa_edge.errors import FileFormatError
from ofa_edge.io import atomic_save
from ofa_edge.pretrained import resolve_checkpoint
from ofa_edge.space import SearchSpace, get_space, resolve_space
from ofa_edge.supernet.factory import create_supernet
from ofa_edge.supernet.heads import HeadMap
from ofa_edge.supernet.mobilenetv3 import OFAMobileNetV3

FORMAT = "ofa-edge-supernet"
FORMAT_VERSION = 1
#: Keys a checkpoint may lack: BN counters and (transform mode off) kernel-transform matrices.
_OPTIONAL_SUFFIXES = ("num_batches_tracked", "_matrix")


def is_value(value: Any, expected: Any) -> bool:
    """``value == expected`` for plain values only (a tensor in a hostile file never compares equal)."""
    return type(value) is type(expected) and value == expected


def read_torch_file(path: str | os.PathLike) -> Any:
    """``torch.load(weights_only=True)`` with every failure turned into a FileFormatError (a packaged
    pretrained name such as ``cifar10-mbv3`` reads the packaged checkpoint)."""
    path = resolve_checkpoint(path)
    check_torch_file(path)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch.load raises many kinds of errors on damaged input
        text = str(exc).strip()
        if "Weights only load failed" in text:
            raise FileFormatError(path, "not a loadable checkpoint: holds Python objects other than tensors "
                                        "and plain data (refused: it could run code)") from None
        first = text.splitlines()[0] if text else ""
        detail = f" ({first[:200]})" if any(c.isalpha() for c in first) else ""
        raise FileFormatError(path, f"corrupt or truncated torch checkpoint{detail}") from None


#: How a file torch.save wrote starts: a zip archive (torch >= 1.6) or a legacy pickle.
_TORCH_MAGIC = (b"PK\x03\x04", b"\x80\x02")


def check_torch_file(path: Path) -> None:
    """Refuse a path that is no torch file (missing, a folder, text, ...) with a message naming what it is."""
    if path.is_dir():
        inside = path / "supernet.pt"
        raise FileFormatError(path, f"is a folder; pass {inside}" if inside.is_file() else
                              "is a folder, not a checkpoint file (e.g. runs/<run>/supernet.pt)")
    if not path.is_file():
        raise FileFormatError(path, "no such file")
    with open(path, "rb") as fh:
        head = fh.read(512)
    if head.startswith(_TORCH_MAGIC):
        return
    if not head:
        what = "an empty file"
    elif all(32 <= b < 127 or b in b"\t\r\n" for b in head):
        what = "a text file"
    else:
        what = "an unknown binary file"
    raise FileFormatError(path, f"not a torch checkpoint ({what}; checkpoints are the supernet.pt files that "
                                "`ofa-edge train` writes)")


def other_kind(obj: Any) -> str | None:
    """The kind of an ofa-edge torch file that is not a supernet (``predictor`` ...), else None."""
    fmt = obj.get("format") if isinstance(obj, dict) else None
    if isinstance(fmt, str) and fmt.startswith("ofa-edge-") and fmt != FORMAT:
        return fmt.removeprefix("ofa-edge-").split("/")[0]
    return None


def _state_dict_of(path: Path, obj: Any) -> dict[str, torch.Tensor]:
    kind = other_kind(obj)
    if kind is not None:
        raise FileFormatError(path, f"this is a {kind} file, not a supernet checkpoint; pass the supernet "
                                    "(e.g. runs/<run>/supernet.pt)")
    if isinstance(obj, dict) and "state_dict" in obj:
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not obj:
        raise FileFormatError(path, "holds no state dict (expected a dict of tensors or {'state_dict': ...})")
    bad = [k for k, v in obj.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if bad:
        raise FileFormatError(path, f"state dict entry {bad[0]!r} is not a tensor")
    return dict(obj)


def _normalise_ofa_keys(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename legacy ``.mobile_inverted_conv.`` keys and map ``classifier.linear`` to head 0."""
    out = {}
    for key, value in sd.items():
        key = key.replace(".mobile_inverted_conv.", ".conv.")
        if key.startswith("module."):
            key = key[len("module."):]
        if key.startswith("classifier.linear."):
            key = "classifier.heads.0.linear." + key[len("classifier.linear."):]
        out[key] = value
    return out


def _guess_ofa_space(path: Path, sd: dict[str, torch.Tensor]) -> SearchSpace:
    stem = sd.get("first_conv.conv.weight")
    if stem is None or stem.dim() != 4:
        raise FileFormatError(path, "not an OFA MobileNetV3 state dict (no first_conv.conv.weight)")
    for name in ("ofa-mbv3-w1", "ofa-mbv3-w1.2"):
        space = get_space(name)
        if space.widths[0] == stem.shape[0]:
            return space
    raise FileFormatError(path, f"stem width {stem.shape[0]} matches no known OFA MobileNetV3 "
                                "(w1.0 has 16, w1.2 has 24); pass space= explicitly")


def load_state_into(net: torch.nn.Module, sd: dict[str, torch.Tensor], path: str | os.PathLike,
                    allow_missing: tuple[str, ...] = _OPTIONAL_SUFFIXES) -> list[str]:
    """Copy ``sd`` into ``net`` after checking names and shapes; returns the keys kept from ``net``."""
    path = Path(path)
    own = net.state_dict()
    unknown = sorted(set(sd) - set(own))
    if unknown:
        raise FileFormatError(path, f"not a state dict of this model: unexpected key {unknown[0]!r} "
                                    f"(+{len(unknown) - 1} more)")
    missing = sorted(k for k in set(own) - set(sd) if not k.endswith(allow_missing))
    if missing:
        raise FileFormatError(path, f"not a state dict of this model: missing key {missing[0]!r} "
                                    f"(+{len(missing) - 1} more)")
    for key, value in sd.items():
        if tuple(value.shape) != tuple(own[key].shape):
            raise FileFormatError(path, f"shape mismatch for {key!r}: file has {list(value.shape)}, "
                                        f"model expects {list(own[key].shape)}")
        if value.is_floating_point() and not torch.isfinite(value).all():
            raise FileFormatError(path, f"tensor {key!r} holds NaN or inf values")
    net.load_state_dict(sd, strict=False)
    return sorted(set(own) - set(sd))


def load_ofa_checkpoint(path: str | os.PathLike, space: SearchSpace | str | None = None,
                        n_classes: int | None = None) -> OFAMobileNetV3:
    """Load a reference OFA MobileNetV3 checkpoint (wrapped or bare) into a supernet in eval mode."""
    path = resolve_checkpoint(path)
    obj = read_torch_file(path)
    if isinstance(obj, dict) and is_value(obj.get("format"), FORMAT):
        return load_supernet(path)
    sd = _normalise_ofa_keys(_state_dict_of(path, obj))
    if space is None:
        space = _guess_ofa_space(path, sd)
    elif isinstance(space, str):
        space = resolve_space(space)
    head = sd.get("classifier.heads.0.linear.weight")
    if head is None:
        raise FileFormatError(path, "not an OFA MobileNetV3 state dict (no classifier.linear.weight)")
    net = OFAMobileNetV3(space, n_classes or head.shape[0])
    load_state_into(net, sd, path)
    return net.eval()


# -- ofa-edge's own format -------------------------------------------------------------------------
def save_supernet(net: OFAMobileNetV3, path: str | os.PathLike, **meta: Any) -> Path:
    """Write weights + search space + head map + format version atomically."""
    path = Path(path)
    payload = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "space": net.space.to_dict(),
        "n_classes": net.n_classes,
        "head_map": net.head_map.to_dict(),
        "dropout": net.dropout,
        "meta": meta,
        "state_dict": net.state_dict(),
    }
    atomic_save(path, lambda fh: torch.save(payload, fh))
    return path


def read_versioned_file(path: str | os.PathLike, fmt: str, version: int, what: str, hint: str,
                        short: str = "") -> dict[str, Any]:
    """A torch file holding a dict of format ``fmt`` and version ``version``; anything else is refused.

    ``what`` names the kind of file, ``hint`` how to get a right one, ``short`` prefixes "format version".
    """
    path = Path(path)
    obj = read_torch_file(path)
    if not isinstance(obj, dict) or not is_value(obj.get("format"), fmt):
        kind = "supernet checkpoint" if is_value(obj.get("format") if isinstance(obj, dict) else None, FORMAT) \
            else other_kind(obj) and f"{other_kind(obj)} file"
        if kind:
            raise FileFormatError(path, f"this is a {kind}, not an ofa-edge {what}; {hint}")
        raise FileFormatError(path, f"not an ofa-edge {what} (no format={fmt!r}); {hint}")
    if not is_value(obj.get("version"), version):
        raise FileFormatError(path, f"unknown {short}format version {obj.get('version')!r} "
                                    f"(this ofa-edge reads version {version})")
    return obj


def read_supernet_file(path: str | os.PathLike) -> dict[str, Any]:
    """Read and validate the header of an ofa-edge checkpoint (also used by resume)."""
    return read_versioned_file(path, FORMAT, FORMAT_VERSION, "supernet checkpoint",
                               "for reference OFA files use load_ofa_checkpoint")


def supernet_from_payload(path: str | os.PathLike, obj: dict[str, Any]) -> OFAMobileNetV3:
    """Build the supernet a checkpoint payload describes and load its weights."""
    try:
        space = SearchSpace.from_dict(obj["space"])
        head_map = HeadMap.from_dict(obj["head_map"])
        n_classes = int(obj["n_classes"])
        dropout = float(obj.get("dropout", 0.0))
        if n_classes < 1:
            raise ValueError(f"n_classes must be positive, got {n_classes}")
    except (KeyError, TypeError, ValueError) as exc:
        raise FileFormatError(path, f"bad checkpoint header: {exc}") from None
    net = create_supernet(space, n_classes, head_map, dropout)
    load_state_into(net, _state_dict_of(Path(path), obj), path, allow_missing=())
    return net


def load_supernet(path: str | os.PathLike) -> OFAMobileNetV3:
    """Load an ofa-edge supernet checkpoint in eval mode."""
    return supernet_from_payload(path, read_supernet_file(path)).eval()


def load_any(path: str | os.PathLike, **kwargs: Any) -> OFAMobileNetV3:
    """Load either format: ofa-edge's own or the reference OFA layout."""
    return load_ofa_checkpoint(path, **kwargs)

