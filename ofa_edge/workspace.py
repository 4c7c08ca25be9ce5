"""The workspace: a project folder's ``ofa-edge.toml`` (its current supernet) and what lies beside it.

The file is optional and small; explicit command-line inputs always win over it. Devices are the ones with
latency tables under ``./latency_tables/``. This module imports no torch, so ``ofa-edge status`` is instant.
"""

from __future__ import annotations

import json
import os
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ofa_edge.errors import FileFormatError, MissingStepError
from ofa_edge.io import atomic_write_text

FILE = "ofa-edge.toml"
FORMAT = 1
#: The packaged supernet a workspace uses when none is set.
DEFAULT_PRETRAINED = "cifar10-mbv3"


@dataclass(frozen=True)
class Workspace:
    """A project folder and the supernet its ``ofa-edge.toml`` names (None: not set)."""

    root: Path
    supernet: str | None = None

    @property
    def file(self) -> Path:
        return self.root / FILE


@dataclass(frozen=True)
class Supernet:
    """The supernet a command uses: the checkpoint as given and where that choice came from."""

    checkpoint: str
    source: str  # "given" (passed explicitly), "ofa-edge.toml" or "packaged"


def load_workspace(root: str | os.PathLike | None = None) -> Workspace:
    """The workspace of ``root`` (default: the current folder); an absent file is an empty workspace."""
    root = Path(root) if root is not None else Path.cwd()
    path = root / FILE
    if not path.is_file():
        return Workspace(root)
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise FileFormatError(path, f"not a valid ofa-edge workspace file ({exc}); fix or delete it") from None
    version = data.get("format")
    if version != FORMAT:
        raise FileFormatError(path, f"unknown workspace format {version!r} (this ofa-edge reads format {FORMAT})")
    supernet = data.get("supernet", {}).get("checkpoint")
    if supernet is not None and not isinstance(supernet, str):
        raise FileFormatError(path, "[supernet] checkpoint must be a string")
    return Workspace(root, supernet)


def _relative(path: str | os.PathLike, root: Path) -> str:
    """``path`` relative to ``root`` when inside it (so the folder can move), else absolute."""
    p = Path(path)
    if not p.exists():  # a pretrained name
        return str(path)
    try:
        return p.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return str(p.resolve())


def set_supernet(checkpoint: str | os.PathLike, root: str | os.PathLike | None = None) -> Workspace:
    """Make ``checkpoint`` the current supernet of the workspace at ``root`` and write ``ofa-edge.toml``."""
    ws = load_workspace(root)
    value = _relative(checkpoint, ws.root)
    text = (f"# ofa-edge workspace (written by `ofa-edge train` and `ofa-edge use`)\n"
            f"format = {FORMAT}\n\n[supernet]\ncheckpoint = {json.dumps(value)}\n")
    atomic_write_text(ws.file, text)
    return Workspace(ws.root, value)


def packaged_supernet() -> str | None:
    """The name of the packaged pretrained supernet, if this install ships it."""
    try:
        from ofa_edge.pretrained import list_pretrained
    except ImportError:
        return None
    names = [p.name for p in list_pretrained()]
    return DEFAULT_PRETRAINED if DEFAULT_PRETRAINED in names else None


def current_supernet(ws: Workspace, checkpoint: str | os.PathLike | None = None) -> Supernet:
    """The supernet to use: ``checkpoint`` if given, else the workspace's, else the packaged one.

    Raises:
        MissingStepError: none of the three exists, or the workspace's file is gone.
    """
    if checkpoint is not None:
        return Supernet(str(checkpoint), "given")
    if ws.supernet is not None:
        path = Path(ws.supernet)
        if not path.is_absolute() and (ws.root / path).exists():
            path = ws.root / path
        if not _checkpoint_path(str(path)).is_file():
            raise MissingStepError(f"the supernet set in {ws.file}, {ws.supernet}, does not exist (any more)",
                                   step="train", field="checkpoint")
        return Supernet(str(path), FILE)
    packaged = packaged_supernet()
    if packaged is not None:
        return Supernet(packaged, "packaged")
    raise MissingStepError(f"no supernet: none given, none set in {ws.root / FILE} and no packaged supernet",
                           step="train", field="checkpoint")


def table_devices(tables_dir: str | os.PathLike) -> list[str]:
    """The devices that have a latency table under ``tables_dir`` (``<device>/<runtime>.csv``)."""
    root = Path(tables_dir)
    if not root.is_dir():
        return []
    return sorted(d.name for d in root.iterdir()
                  if d.is_dir() and any(not f.name.endswith(".validation.csv") for f in d.glob("*.csv")))


def table_header(path: str | os.PathLike) -> dict[str, Any]:
    """The ``# key: value`` header of a latency table (its provenance parsed), without reading the rows."""
    header: dict[str, Any] = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            if not line.startswith("#"):
                break
            key, sep, value = line[1:].strip().partition(":")
            if sep:
                header[key.strip()] = value.strip()
    try:
        header["provenance"] = json.loads(header.get("provenance", "{}"))
    except ValueError:
        header["provenance"] = {}
    return header


def _age(path: Path, now: float) -> str:
    """How long ago ``path`` was written, in words (``3 h``, ``2 d``)."""
    seconds = max(0.0, now - path.stat().st_mtime)
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f} {unit}"
    return f"{seconds:.0f} s"


def describe(ws: Workspace, tables_dir: str | os.PathLike = "latency_tables",
             builds_dir: str | os.PathLike = "builds") -> dict[str, Any]:
    """Everything ``ofa-edge status`` shows: supernet, predictor, latency tables and builds."""
    now = time.time()
    info: dict[str, Any] = {"workspace": str(ws.file) if ws.file.is_file() else None}
    try:
        net = current_supernet(ws)
        info["supernet"] = {"checkpoint": net.checkpoint, "source": net.source}
        path = _checkpoint_path(net.checkpoint)
        info["supernet"]["exists"] = path.is_file()
        predictor = path.parent / "predictor.pt"
        info["predictor"] = str(predictor) if predictor.is_file() else None
    except MissingStepError as exc:
        info["supernet"] = {"checkpoint": None, "source": None, "missing": str(exc)}
        info["predictor"] = None
    tables = []
    root = ws.root / tables_dir
    for device in table_devices(root):
        for csv in sorted((root / device).glob("*.csv")):
            if csv.name.endswith(".validation.csv"):
                continue
            prov = table_header(csv)["provenance"]
            tables.append({"device": device, "runtime": prov.get("runtime", csv.stem), "path": str(csv),
                           "age": _age(csv, now), "measured_on": prov.get("hostname"), "cpu": prov.get("cpu"),
                           "date": prov.get("date")})
    info["tables"] = tables
    builds = sorted(p.parent for p in (ws.root / builds_dir).glob("*/*/manifest.json"))
    info["builds"] = [{"device": b.parent.name, "budget": b.name, "folder": str(b)} for b in builds]
    return info


def _checkpoint_path(spec: str) -> Path:
    """The file a checkpoint spec names (a pretrained name resolves to the packaged file)."""
    try:
        from ofa_edge.pretrained import resolve_checkpoint
    except ImportError:
        return Path(spec)
    return Path(resolve_checkpoint(spec))
