"""Build manifests (one ``manifest.json`` per target) and the ``summary.csv`` over a builds folder.

``manifest.json`` (format ``ofa-edge-manifest/1``) holds: the subnet (dict + id), search space,
class count, resolution, input shape, MACs, params, latency in ms (``predicted``/``measured``, null
until the search part fills them), top-1 (``fp32`` and per quantised artifact, with the drop in
points), every artifact (format, precision, file, export seconds, parity vs PyTorch; a .tflite file also
``tflite``: XNNPACK ``delegate_partitions``, ``delegated_ops`` and the ``other_ops`` it leaves to the
interpreter, by name, with ``other_int8_ops`` among them; once timed on the device ``measured_ms``), every file with
size in bytes and sha256 (a folder such as an .mlpackage hashes its files in sorted order), versions of
torch and each converter, ``status`` ("ok" | "failed") with ``errors``, and ``extra`` (caller fields:
device, budget, checkpoint, search...). When the artefacts were timed on the device,
``latency_ms.artifacts`` maps each to its median in ms and ``recommended`` names the artefact to ship (the
fastest whose top-1 drop is within the limit; see :mod:`ofa_edge.export.recommend`); otherwise it is null.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import re
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable

from ofa_edge.errors import FileFormatError
from ofa_edge.io import atomic_write_text

MANIFEST_FORMAT = "ofa-edge-manifest/1"
MANIFEST_NAME = "manifest.json"
SUMMARY_FORMAT = "ofa-edge-summary/1"
SUMMARY_COLUMNS = ("format", "target", "device", "budget_ms", "status", "subnet_id", "resolution", "macs",
                   "params", "predicted_ms", "measured_ms", "top1_fp32", "top1_onnx_int8", "top1_tflite_int8",
                   "max_drop_points", "recommended", "recommended_ms", "files", "errors", "folder")


def sha256_path(path: str | os.PathLike) -> str:
    """sha256 of a file, or of a folder's files (relative path and bytes, in sorted order)."""
    path = Path(path)
    h = hashlib.sha256()
    if path.is_dir():
        for f in sorted(p for p in path.rglob("*") if p.is_file()):
            h.update(f.relative_to(path).as_posix().encode() + b"\0")
            h.update(hashlib.sha256(f.read_bytes()).digest())
        return h.hexdigest()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def size_bytes(path: str | os.PathLike) -> int:
    """Size of a file, or the total of a folder's files."""
    path = Path(path)
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size


def file_entry(path: str | os.PathLike, root: str | os.PathLike) -> dict[str, Any]:
    """``{"path", "bytes", "sha256"}`` for a file (or package folder) relative to ``root``."""
    path = Path(path)
    return {"path": path.relative_to(root).as_posix(), "bytes": size_bytes(path), "sha256": sha256_path(path)}


@dataclass
class Manifest:
    """What was built for one target, and how well it matches PyTorch."""

    subnet: dict[str, Any]
    subnet_id: str
    space: str
    n_classes: int
    resolution: int
    input_shape: list[int]
    macs: int
    params: int
    latency_ms: dict[str, Any] = field(default_factory=lambda: {"predicted": None, "measured": None})
    top1: dict[str, Any] = field(default_factory=dict)
    artifacts: list[dict[str, Any]] = field(default_factory=list)
    files: list[dict[str, Any]] = field(default_factory=list)
    versions: dict[str, Any] = field(default_factory=dict)
    status: str = "ok"
    errors: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)
    recommended: dict[str, Any] | None = None
    created: str = field(default_factory=lambda: time.strftime("%Y-%m-%dT%H:%M:%S%z"))
    ofa_edge_version: str = ""
    format: str = MANIFEST_FORMAT

    @property
    def ok(self) -> bool:
        return self.status == "ok" and not self.errors

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        return {"format": data.pop("format"), **data}

    @classmethod
    def from_dict(cls, data: dict[str, Any], path: str | os.PathLike = "<manifest>") -> "Manifest":
        if not isinstance(data, dict):
            raise FileFormatError(path, "not a JSON object; expected an ofa-edge build manifest")
        if data.get("format") != MANIFEST_FORMAT:
            raise FileFormatError(path, f"format is {data.get('format')!r}; this version of ofa-edge reads "
                                  f"{MANIFEST_FORMAT!r} (rebuild the target)")
        known = set(cls.__dataclass_fields__)
        required = {"subnet", "subnet_id", "space", "n_classes", "resolution", "input_shape", "macs", "params"}
        missing = sorted(required - set(data))
        if missing:
            raise FileFormatError(path, f"manifest lacks field(s) {', '.join(missing)}")
        problem = _problem(data)
        if problem:
            raise FileFormatError(path, f"bad manifest: {problem}")
        return cls(**{k: v for k, v in data.items() if k in known})

    def write(self, folder: str | os.PathLike) -> Path:
        """Write ``manifest.json`` into ``folder`` atomically; returns its path."""
        path = Path(folder) / MANIFEST_NAME
        atomic_write_text(path, json.dumps(self.to_dict(), indent=2, default=str) + "\n")
        return path


_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def _number(v: Any, low: float = 0.0, high: float = 1e15) -> bool:
    """A finite int/float (not bool) in [low, high]."""
    return not isinstance(v, bool) and isinstance(v, (int, float)) and low <= v <= high


def _safe_relative(p: Any) -> bool:
    """A relative POSIX path inside the target folder (no '..', not absolute, no backslash or NUL)."""
    return isinstance(p, str) and 0 < len(p) <= 255 and not p.startswith("/") and "\\" not in p \
        and "\0" not in p and ".." not in p.split("/")


def _problem(d: dict[str, Any]) -> str | None:
    """What is wrong with the fields of a parsed manifest (types, ranges, file entries), or None."""
    if not isinstance(d["subnet"], dict) or not all(isinstance(d[k], str) for k in ("subnet_id", "space")):
        return "subnet must be an object, subnet_id and space strings"
    for key, low, high in (("n_classes", 1, 10**6), ("resolution", 1, 10**5), ("macs", 0, 1e15),
                           ("params", 0, 1e15)):
        if not _number(d[key], low, high) or not isinstance(d[key], int):
            return f"{key} must be an integer in {low}..{high:g}"
    shape = d["input_shape"]
    if not isinstance(shape, list) or len(shape) != 4 or not all(_number(v, 1, 10**5) and isinstance(v, int)
                                                                 for v in shape):
        return "input_shape must be 4 positive integers"
    for key, kind in (("latency_ms", dict), ("top1", dict), ("versions", dict), ("extra", dict),
                      ("artifacts", list), ("files", list), ("errors", list)):
        if key in d and not isinstance(d[key], kind):
            return f"{key} must be a JSON {'object' if kind is dict else 'array'}"
    for key in ("predicted", "measured"):
        v = d.get("latency_ms", {}).get(key)
        if v is not None and not _number(v, 0.0, 1e6):
            return f"latency_ms.{key} {v!r} is not a plausible latency in ms"
    timed = d.get("latency_ms", {}).get("artifacts", {})
    if not isinstance(timed, dict) or not all(_number(v, 0.0, 1e6) for v in timed.values()):
        return "latency_ms.artifacts must map artifacts to plausible latencies in ms"
    rec = d.get("recommended")
    if rec is not None and (not isinstance(rec, dict) or not _safe_relative(rec.get("file"))
                            or not isinstance(rec.get("artifact"), str) or not _number(rec.get("latency_ms"), 0.0, 1e6)):
        return "recommended must be null or an object with artifact, a file inside the folder and latency_ms"
    top1 = d.get("top1", {})
    for key, v in top1.items():
        if key == "drop_points":
            if not isinstance(v, dict) or not all(x is None or _number(x, -100, 100) for x in v.values()):
                return "top1.drop_points must map artifacts to numbers"
        elif key not in ("split",) and v is not None and not _number(v, 0, 1e9):
            return f"top1.{key} {v!r} is not a number"
    for f in d.get("files", []):
        if not isinstance(f, dict) or not _safe_relative(f.get("path")) or not _number(f.get("bytes"), 0, 1e15) \
                or not isinstance(f.get("sha256"), str) or not _SHA256.match(f["sha256"]):
            return f"file entry {f!r} needs a relative path inside the folder, bytes and a sha256"
    if not all(isinstance(a, dict) for a in d.get("artifacts", [])):
        return "artifacts must be objects"
    if d.get("status", "ok") not in ("ok", "failed"):
        return f"status {d.get('status')!r} is not ok or failed"
    if not all(isinstance(e, str) for e in d.get("errors", [])):
        return "errors must be strings"
    return None


def read_manifest(path: str | os.PathLike) -> Manifest:
    """Load and validate a ``manifest.json`` (or the one in a target folder)."""
    path = Path(path)
    if path.is_dir():
        path = path / MANIFEST_NAME
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise FileFormatError(path, "no such manifest") from None
    except OSError as exc:
        raise FileFormatError(path, f"cannot read ({exc.strerror or exc})") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise FileFormatError(path, f"not valid JSON ({exc})") from None
    except RecursionError:
        raise FileFormatError(path, "not valid JSON (nested too deeply)") from None
    return Manifest.from_dict(data, path)


def _top1_of(m: Manifest, key: str):
    value = m.top1.get(key)
    return "" if value is None else f"{value:.4f}"


def summary_row(m: Manifest, folder: str) -> dict[str, Any]:
    """One ``summary.csv`` row for a manifest."""
    drops = [v for k, v in m.top1.get("drop_points", {}).items() if v is not None]
    return {
        "format": SUMMARY_FORMAT, "target": m.extra.get("target", ""), "device": m.extra.get("device", ""),
        "budget_ms": m.extra.get("budget_ms", ""), "status": m.status, "subnet_id": m.subnet_id,
        "resolution": m.resolution, "macs": m.macs, "params": m.params,
        "predicted_ms": "" if m.latency_ms.get("predicted") is None else m.latency_ms["predicted"],
        "measured_ms": "" if m.latency_ms.get("measured") is None else m.latency_ms["measured"],
        "top1_fp32": _top1_of(m, "fp32"), "top1_onnx_int8": _top1_of(m, "onnx-int8"),
        "top1_tflite_int8": _top1_of(m, "tflite-int8"),
        "max_drop_points": f"{max(drops):.2f}" if drops else "",
        "recommended": (m.recommended or {}).get("file", ""),
        "recommended_ms": (m.recommended or {}).get("latency_ms", ""),
        "files": " ".join(f["path"] for f in m.files), "errors": " | ".join(m.errors), "folder": folder,
    }


def write_summary(root: str | os.PathLike, rows: Iterable[dict[str, Any]]) -> Path:
    """Write ``<root>/summary.csv`` atomically from summary rows."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=SUMMARY_COLUMNS, extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow(row)
    path = Path(root) / "summary.csv"
    atomic_write_text(path, buf.getvalue())
    return path


def collect(root: str | os.PathLike) -> list[tuple[Path, Manifest]]:
    """Every valid manifest below ``root`` (sorted by folder); unreadable ones are skipped."""
    out = []
    for path in sorted(Path(root).rglob(MANIFEST_NAME)):
        try:
            out.append((path.parent, read_manifest(path)))
        except FileFormatError:
            continue
    return out


def write_summary_for(root: str | os.PathLike) -> Path:
    """Rebuild ``<root>/summary.csv`` from every manifest below ``root``."""
    root = Path(root)
    return write_summary(root, [summary_row(m, folder.relative_to(root).as_posix()) for folder, m in collect(root)])
