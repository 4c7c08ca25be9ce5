"""The bundle shipped to a device: one zip with the runner as ``__main__.py``, a manifest and the models."""

from __future__ import annotations

import hashlib
import json
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from ofa_edge.devices import runner
from ofa_edge.devices.profile import DeviceProfile

MODEL_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
RESULT_FIELDS = ("median_ms", "mean_ms", "p90_ms", "std_ms", "min_ms")
#: A single block or small net taking longer than this is not a plausible measurement.
MAX_LATENCY_MS = 1e6


@dataclass(frozen=True)
class ModelFile:
    """A model to measure: unique name, the file on this machine, the input shape (batch first)."""

    name: str
    path: Path
    input_shape: tuple[int, ...]
    input_dtype: str = "float32"


def build_bundle(models: Iterable[ModelFile], profile: DeviceProfile, folder: Path) -> Path:
    """Write ``bundle-<hash>.zip`` into ``folder`` (deterministic content) and return its path."""
    models = list(models)
    entries = []
    for m in models:
        if not MODEL_NAME_RE.match(m.name):
            raise ValueError(f"model name {m.name!r} is not a safe file name")
        entries.append({"name": m.name, "file": f"models/{m.name}{m.path.suffix}",
                        "input_shape": [int(v) for v in m.input_shape], "input_dtype": m.input_dtype})
    manifest = {"format": runner.RUNNER_FORMAT, "device": profile.name,
                "runtime": {"name": profile.runtime.name, "providers": list(profile.runtime.providers),
                            "delegate": profile.runtime.delegate},
                "bench": {"warmup": profile.benchmark.warmup, "repeats": profile.benchmark.repeats,
                          "threads": profile.benchmark.threads, "batch": profile.benchmark.batch},
                "settings_id": profile.settings_id(), "models": entries}
    source = Path(runner.__file__).read_bytes()
    digest = hashlib.sha256(source + json.dumps(manifest, sort_keys=True).encode())
    for m in models:
        digest.update(m.path.read_bytes())
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"bundle-{digest.hexdigest()[:16]}.zip"
    tmp = path.with_suffix(".zip.part")
    with zipfile.ZipFile(tmp, "w") as zf:
        # level 1: fast; the point is fewer bytes on the wire, not the smallest file
        zf.writestr(_info("__main__.py"), source, compresslevel=1)
        zf.writestr(_info("manifest.json"), json.dumps(manifest, indent=1, sort_keys=True), compresslevel=1)
        for m, entry in zip(models, entries):
            zf.writestr(_info(entry["file"]), m.path.read_bytes(), compresslevel=1)
    tmp.replace(path)
    return path


def _info(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0))
    info.external_attr = 0o644 << 16
    info.compress_type = zipfile.ZIP_DEFLATED  # measurement models deflate well (see latency.models)
    return info


def parse_line(line: str) -> dict[str, Any] | None:
    """One line from the runner as validated data, or None if it is not a runner message.

    Results are checked field by field (finite, non-negative, plausible latencies; a safe model name);
    nothing in a line is ever executed or used as a path.
    """
    if len(line) > 65536 or not line.startswith("{"):
        return None
    try:
        obj = json.loads(line)
    except (ValueError, RecursionError):
        return None
    if not isinstance(obj, dict) or obj.get("type") not in ("info", "result", "error", "fatal", "done"):
        return None
    if obj["type"] == "result":
        return check_result(obj)
    if obj["type"] in ("error", "fatal"):
        msg = obj.get("message")
        out = {"type": obj["type"], "message": str(msg)[:2000] if msg is not None else "unknown error"}
        if obj["type"] == "error":
            name = obj.get("name")
            if not isinstance(name, str) or not MODEL_NAME_RE.match(name):
                return None
            out["name"] = name
        return out
    return obj


def check_result(obj: dict[str, Any]) -> dict[str, Any] | None:
    """A result message with every field checked (plausible latencies, a safe name), or None."""
    name = obj.get("name")
    if not isinstance(name, str) or not MODEL_NAME_RE.match(name):
        return None
    out: dict[str, Any] = {"type": "result", "name": name}
    for key in RESULT_FIELDS:
        v = obj.get(key)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v <= MAX_LATENCY_MS:
            return None
        out[key] = float(v)
    for key in ("repeats", "warmup", "threads", "batch"):
        v = obj.get(key)
        if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= 10**7:
            return None
        out[key] = v
    for key in ("runtime", "runtime_version", "settings"):
        v = obj.get(key, "")
        out[key] = v[:200] if isinstance(v, str) else ""
    return out
