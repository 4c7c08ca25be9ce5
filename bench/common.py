"""Helpers shared by the benchmark scripts (imported as ``common``: a script's own folder is on sys.path)."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def shown(path: Path) -> str:
    """``path`` relative to the checkout when inside it, else its last two parts (no machine paths)."""
    path = Path(path).resolve()
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else "/".join(path.parts[-2:])


def checkpoint_sha256(checkpoint: str) -> str:
    """SHA-256 of a checkpoint file or packaged name: which weights a result was measured on."""
    from ofa_edge.export.manifest import sha256_path
    from ofa_edge.pretrained import resolve_checkpoint

    return sha256_path(resolve_checkpoint(checkpoint))
