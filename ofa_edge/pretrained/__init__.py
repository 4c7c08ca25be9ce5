"""Pretrained supernets shipped inside the package, each with its predictor, recipe, metrics and provenance.

A name such as ``cifar10-mbv3`` is accepted wherever a checkpoint path is (``resolve_checkpoint``). This
module imports no torch: listing and resolving are cheap.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ofa_edge.errors import OfaEdgeError

ROOT = Path(__file__).resolve().parent
CARD = "card.json"
CARD_FORMAT = "ofa-edge-pretrained-card/1"


@dataclass(frozen=True)
class Pretrained:
    """One packaged supernet: its folder (supernet.pt, predictor.pt, card.json) and its card."""

    name: str
    folder: Path
    card: dict[str, Any] = field(default_factory=dict)

    @property
    def checkpoint(self) -> Path:
        return self.folder / "supernet.pt"

    @property
    def predictor(self) -> Path:
        return self.folder / "predictor.pt"

    @property
    def predictor_bn_images(self) -> int | None:
        """How many training images recalibrated BN before each of the shipped accuracy rows was measured."""
        return self.card.get("predictor", {}).get("bn_images")

    def summary(self) -> dict[str, Any]:
        """The card's headline fields (what ``ofa-edge pretrained list`` shows)."""
        c = self.card
        return {"name": self.name, "space": c.get("space"), "classes": c.get("classes"),
                "data": c.get("data"), "metrics": c.get("metrics", {}), "predictor": c.get("predictor", {}),
                "recipe": c.get("recipe", {}), "provenance": c.get("provenance", {}),
                "checkpoint": str(self.checkpoint), "size_mb": round(self.checkpoint.stat().st_size / 2**20, 2)
                if self.checkpoint.is_file() else None}


def list_pretrained() -> list[Pretrained]:
    """Every packaged supernet (folders holding a card and a checkpoint), by name."""
    found = []
    for card in sorted(ROOT.glob(f"*/{CARD}")):
        try:
            data = json.loads(card.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(data, dict) and data.get("format") == CARD_FORMAT and (card.parent / "supernet.pt").is_file():
            found.append(Pretrained(card.parent.name, card.parent, data))
    return found


def get_pretrained(name: str) -> Pretrained:
    """The packaged supernet ``name``; a miss lists the known names."""
    for p in list_pretrained():
        if p.name == name:
            return p
    known = ", ".join(p.name for p in list_pretrained()) or "none"
    raise OfaEdgeError(f"no pretrained supernet named {name!r} (packaged: {known})")


def resolve_checkpoint(spec: str | os.PathLike) -> Path:
    """A checkpoint path as given, or the packaged checkpoint when ``spec`` is a pretrained name and
    no file of that name exists here."""
    path = Path(spec)
    if path.exists() or os.sep in str(spec) or "/" in str(spec):
        return path
    for p in list_pretrained():
        if p.name == str(spec):
            return p.checkpoint
    return path


def is_packaged(path: str | os.PathLike) -> bool:
    """Whether ``path`` lies inside the package's pretrained folder (never written into)."""
    try:
        Path(path).resolve().relative_to(ROOT)
        return True
    except ValueError:
        return False
