"""``ofa-edge build``: CI build matrices from ``targets.toml`` (devices x budgets x formats), resumably, with a summary.

``targets.toml`` (format ``ofa-edge-targets/1``)::

    format = "ofa-edge-targets/1"
    checkpoint = "runs/demo/supernet.pt"   # relative paths are relative to the toml file
    out = "builds"                         # default "builds"
    tables = "latency_tables"              # default "latency_tables"
    formats = ["onnx", "tflite"]           # any of onnx, tflite, coreml (default onnx)
    quantize = true                        # also build the INT8 variants (default true)
    measure = true                         # time every artefact on the device, recommend one (default false)
    max_drop = 1.0                         # top-1 drop (points) a recommended INT8 artefact may have
    int8_float_stages = [0, 1, 2]          # one INT8 artefact per value: early stages kept in float (default [0])
    precision = "fp32"                     # "int8": search/measure with the devices' INT8 tables (default fp32)
    latency_margin = 5                     # percent of each budget kept free for the table's error (default 0)
    retries = 2                            # with measure: new searches after a pick measured over budget
    devices = ["pi4", "jetson-nano"]       # the matrix: every device x every budget
    budgets = ["20ms", "40ms"]

    [[target]]                             # extra single targets; fields override the defaults
    device = "pi4"
    budget = "8ms"
    formats = ["tflite"]

A target is built into ``<out>/<device>/<budget>/`` (e.g. ``builds/pi4/20ms``). A target whose
manifest already exists with status "ok" and the same settings is skipped (resume). After all
targets, ``<out>/summary.csv`` is rebuilt from every manifest. A target fails on a converter error,
a parity drift, or a latency (measured, else predicted) over its budget; the others still build.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from ofa_edge.errors import FileFormatError
from ofa_edge.export.formats import EXPORTERS
from ofa_edge.latency.precision import PRECISIONS
from ofa_edge.export.manifest import MANIFEST_NAME, Manifest, read_manifest, write_summary_for
from ofa_edge.export.recommend import DEFAULT_MAX_DROP
from ofa_edge.pipelines.specialization import SpecializeRequest, build_folder, specialize
from ofa_edge.search.budget import parse_latency

TARGETS_FORMAT = "ofa-edge-targets/1"
_TOP_KEYS = {"format", "checkpoint", "out", "tables", "formats", "quantize", "devices", "budgets", "target",
             "data", "selector", "measure", "precision", "max_drop", "int8_float_stages", "latency_margin", "retries"}
_TARGET_KEYS = {"device", "budget", "formats", "quantize", "selector", "measure", "precision", "max_drop",
                "int8_float_stages", "latency_margin", "retries"}
DEFAULT_RETRIES = 2


@dataclass(frozen=True)
class Target:
    """One build: a device, a latency budget (ms) and the formats to export."""

    device: str
    budget_ms: float
    formats: tuple[str, ...]
    quantize: bool = True
    selector: str = "evolution"
    measure: bool = False
    precision: str = "fp32"  # the latency table searched with: fp32 or int8
    max_drop: float = DEFAULT_MAX_DROP
    int8_float_stages: tuple[int, ...] = (0,)
    latency_margin: float = 0.0  # percent of the budget kept free for the latency table's error
    retries: int = DEFAULT_RETRIES  # with measure: searches again after a pick measured over its budget

    @property
    def name(self) -> str:
        return f"{self.device}/{self.budget_ms:g}ms"

    def settings_key(self, checkpoint: str = "") -> str:
        """A short hash of everything that changes the build (used to decide whether to resume)."""
        blob = json.dumps([self.device, self.budget_ms, list(self.formats), self.quantize, self.selector,
                           self.measure, checkpoint] + ([] if self.precision == "fp32" else [self.precision])
                + ([] if self.max_drop == DEFAULT_MAX_DROP else [self.max_drop])
                + ([] if self.int8_float_stages == (0,) else [list(self.int8_float_stages)])
                + ([] if self.latency_margin == 0 else [{"latency_margin": self.latency_margin}])
                + ([] if self.retries == DEFAULT_RETRIES or not self.measure else [{"retries": self.retries}]))
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


@dataclass
class TargetsFile:
    """A parsed ``targets.toml``."""

    path: Path
    checkpoint: Path | None
    out: Path
    tables: Path
    targets: list[Target]
    data: str | None = None


@dataclass
class TargetResult:
    """What happened to one target: ``built``, ``skipped`` (already built) or ``failed``."""

    target: Target
    status: str
    folder: Path
    message: str = ""
    manifest: Manifest | None = None


@dataclass
class MatrixResult:
    """All targets' outcomes and the summary file."""

    results: list[TargetResult] = field(default_factory=list)
    summary: Path | None = None

    @property
    def failed(self) -> list[TargetResult]:
        return [r for r in self.results if r.status == "failed"]

    @property
    def ok(self) -> bool:
        return not self.failed


def _bad(path: Path, problem: str) -> FileFormatError:
    return FileFormatError(path, problem)


def _formats(path: Path, value: Any, where: str) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise _bad(path, f"{where}formats must be a non-empty list such as [\"onnx\", \"tflite\"]")
    bad = [v for v in value if v not in EXPORTERS]
    if bad:
        raise _bad(path, f"{where}formats: {bad[0]!r} is not one of {', '.join(EXPORTERS)}")
    return tuple(dict.fromkeys(value))


def _budget(path: Path, value: Any, where: str) -> float:
    try:
        return parse_latency(value if isinstance(value, (int, float, str)) else str(value))
    except ValueError as exc:
        raise _bad(path, f"{where}budget {value!r}: {exc}") from None


def _bool(path: Path, value: Any, name: str) -> bool:
    if not isinstance(value, bool):
        raise _bad(path, f"{name} must be true or false, not {value!r}")
    return value


def _precision(path: Path, value: Any, where: str) -> str:
    if value not in PRECISIONS:
        raise _bad(path, f"{where}precision must be one of {', '.join(map(repr, PRECISIONS))}, not {value!r}")
    return value


def _max_drop(path: Path, value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 100:
        raise _bad(path, f"{where}max_drop must be a top-1 drop in points between 0 and 100, not {value!r}")
    return float(value)


def _margin(path: Path, value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 100:
        raise _bad(path, f"{where}latency_margin must be a percentage of the budget from 0 to under 100 (e.g. 5), "
                         f"not {value!r}")
    return float(value)


def _retries(path: Path, value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 10:
        raise _bad(path, f"{where}retries must be a whole number of new searches from 0 to 10 (e.g. 2), "
                         f"not {value!r}")
    return value


def _float_stages(path: Path, value: Any, where: str) -> tuple[int, ...]:
    if (not isinstance(value, list) or not value
            or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in value)):
        raise _bad(path, f"{where}int8_float_stages must be a list of whole numbers >= 0 such as [0, 1, 2], "
                         f"not {value!r}")
    return tuple(sorted(set(value)))


def load_targets(path: str | os.PathLike) -> TargetsFile:
    """Read and validate a ``targets.toml``; errors name the file and the bad field."""
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise _bad(path, "no such targets file") from None
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise _bad(path, f"not valid TOML ({exc})") from None
    except RecursionError:
        raise _bad(path, "not valid TOML (nested too deeply)") from None
    if raw.get("format", TARGETS_FORMAT) != TARGETS_FORMAT:
        raise _bad(path, f"format is {raw.get('format')!r}; this version reads {TARGETS_FORMAT!r}")
    unknown = sorted(set(raw) - _TOP_KEYS)
    if unknown:
        raise _bad(path, f"unknown key {unknown[0]!r}; known keys: {', '.join(sorted(_TOP_KEYS))}")
    base = path.parent

    def rel(value: Any, name: str) -> Path:
        if not isinstance(value, str) or not value:
            raise _bad(path, f"{name} must be a path string")
        p = Path(value).expanduser()
        return p if p.is_absolute() else base / p

    formats = _formats(path, raw.get("formats", ["onnx"]), "")
    quantize = _bool(path, raw.get("quantize", True), "quantize")
    measure = _bool(path, raw.get("measure", False), "measure")
    selector = str(raw.get("selector", "evolution"))
    precision = _precision(path, raw.get("precision", "fp32"), "")
    max_drop = _max_drop(path, raw.get("max_drop", DEFAULT_MAX_DROP), "")
    float_stages = _float_stages(path, raw.get("int8_float_stages", [0]), "")
    margin = _margin(path, raw.get("latency_margin", 0), "")
    retries = _retries(path, raw.get("retries", DEFAULT_RETRIES), "")
    devices, budgets = raw.get("devices", []), raw.get("budgets", [])
    if not isinstance(devices, list) or not all(isinstance(d, str) and d for d in devices):
        raise _bad(path, "devices must be a list of device names such as [\"pi4\"]")
    if not isinstance(budgets, list):
        raise _bad(path, "budgets must be a list such as [\"20ms\", \"40ms\"]")
    if bool(devices) != bool(budgets):
        raise _bad(path, "give both devices and budgets (the matrix is every device x every budget)")
    targets = [Target(d, _budget(path, b, ""), formats, quantize, selector, measure, precision, max_drop,
                      float_stages, margin, retries) for d in devices for b in budgets]
    extra = raw.get("target", [])
    if not isinstance(extra, list):
        raise _bad(path, "[[target]] must be an array of tables")
    for i, t in enumerate(extra):
        where = f"target #{i + 1}: "
        if not isinstance(t, dict):
            raise _bad(path, f"{where}must be a table")
        unknown = sorted(set(t) - _TARGET_KEYS)
        if unknown:
            raise _bad(path, f"{where}unknown key {unknown[0]!r}; known: {', '.join(sorted(_TARGET_KEYS))}")
        if not isinstance(t.get("device"), str) or "budget" not in t:
            raise _bad(path, f"{where}needs device = \"name\" and budget = \"20ms\"")
        targets.append(Target(t["device"], _budget(path, t["budget"], where),
                              _formats(path, t.get("formats", list(formats)), where),
                              _bool(path, t.get("quantize", quantize), f"{where}quantize"),
                              str(t.get("selector", selector)), _bool(path, t.get("measure", measure), f"{where}measure"),
                              _precision(path, t.get("precision", precision), where),
                              _max_drop(path, t.get("max_drop", max_drop), where),
                              _float_stages(path, t.get("int8_float_stages", list(float_stages)), where),
                              _margin(path, t.get("latency_margin", margin), where),
                              _retries(path, t.get("retries", retries), where)))
    if not targets:
        raise _bad(path, "no targets: give devices + budgets, or [[target]] tables")
    names = [t.name for t in targets]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise _bad(path, f"target {dupes[0]} is listed twice")
    checkpoint = rel(raw["checkpoint"], "checkpoint") if "checkpoint" in raw else None
    data = raw.get("data")
    return TargetsFile(path, checkpoint, rel(raw.get("out", "builds"), "out"),
                       rel(raw.get("tables", "latency_tables"), "tables"), targets,
                       None if data is None else str(rel(data, "data")))


def target_folder(out: Path, target: Target) -> Path:
    """``<out>/<device>/<budget>ms``."""
    return build_folder(out, target.device, target.budget_ms)


def budget_problem(manifest: Manifest, budget_ms: float) -> str | None:
    """A message if the target's latency (measured, else predicted) is over budget, else None."""
    lat = manifest.latency_ms or {}
    value, kind = (lat.get("measured"), "measured") if lat.get("measured") is not None else (lat.get("predicted"), "predicted")
    if value is not None and float(value) > budget_ms:
        return f"budget missed: {kind} latency {float(value):.3g} ms > {budget_ms:g} ms"
    return None


Builder = Callable[[Target, Path], Manifest]


def run_matrix(spec: TargetsFile, builder: Builder, resume: bool = True,
               progress: Callable[[Target, int, int, str], None] | None = None) -> MatrixResult:
    """Build every target with ``builder(target, folder) -> Manifest`` (which writes the manifest).

    Skips targets already built with the same settings when ``resume``; a failing target (exception,
    manifest status "failed", or over budget) is recorded and the next one is built. Rebuilds the summary.
    """
    result = MatrixResult()
    ckpt = str(spec.checkpoint or "")
    for i, target in enumerate(spec.targets):
        folder = target_folder(spec.out, target)
        key = target.settings_key(ckpt)
        if progress:
            progress(target, i, len(spec.targets), "start")
        if resume and (folder / MANIFEST_NAME).is_file():
            try:
                old = read_manifest(folder)
            except FileFormatError:
                old = None
            if old is not None and old.ok and old.extra.get("settings_key") == key:
                result.results.append(TargetResult(target, "skipped", folder, "already built", old))
                continue
        # a stale manifest must never list files that this build is about to replace
        (folder / MANIFEST_NAME).unlink(missing_ok=True)
        remove_stale_temps(folder)
        try:
            manifest = builder(target, folder)
        except Exception as exc:  # any failure of one target must not stop the matrix
            message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            manifest = getattr(exc, "manifest", None)
            if manifest is not None:
                manifest.extra.update(_extra(target, key))
                manifest.write(folder)
            result.results.append(TargetResult(target, "failed", folder, message, manifest))
            continue
        manifest.extra.update(_extra(target, key))
        problem = budget_problem(manifest, target.budget_ms)
        if problem:
            manifest.errors.append(problem)
        if manifest.errors:
            manifest.status = "failed"
        manifest.write(folder)
        status = "built" if manifest.ok else "failed"
        result.results.append(TargetResult(target, status, folder, "; ".join(manifest.errors), manifest))
    if progress:
        progress(spec.targets[-1], len(spec.targets), len(spec.targets), "done")
    result.summary = write_summary_for(spec.out)
    return result


def remove_stale_temps(folder: Path) -> list[str]:
    """Delete the temp files and folders an interrupted build left in a target folder; returns their names."""
    gone = []
    if not folder.is_dir():
        return gone
    for p in folder.iterdir():
        if p.name.startswith(".") and (p.name.endswith((".tmp", ".export")) or p.name.startswith((".ofa-int8-",
                                                                                                  ".tmp-"))):
            shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)
            gone.append(p.name)
    return gone


def _extra(target: Target, key: str) -> dict[str, Any]:
    return {"target": target.name, "device": target.device, "budget_ms": target.budget_ms,
            "formats": list(target.formats), "quantize": target.quantize, "precision": target.precision,
            "settings_key": key}


def specialize_builder(spec: TargetsFile, bn_images: int = 500, verbose: bool = False) -> Builder:
    """A builder that runs :func:`ofa_edge.pipelines.specialize` (search, extract, BN recalibration,
    test accuracy, :func:`ofa_edge.export.build_target` for the target's formats) for its device and budget;
    ``verbose`` streams the converters' output instead of logging it to each build's ``logs/``."""
    if spec.checkpoint is None:
        raise FileFormatError(spec.path, "checkpoint = \"runs/<run>/supernet.pt\" is required for ofa-edge build")

    def build(target: Target, folder: Path) -> Manifest:
        (found,) = specialize(SpecializeRequest(
            spec.checkpoint, target.device, (target.budget_ms,), selector=target.selector, out=folder.parent.parent,
            export=("pt",) + tuple(target.formats), quantize="int8" if target.quantize else None,
            tables_dir=spec.tables, data=spec.data, bn_images=bn_images, measure=target.measure,
            precision=target.precision, max_drop=target.max_drop,
            verbose=verbose, int8_float_stages=target.int8_float_stages, latency_margin=target.latency_margin,
            retries=target.retries))
        return read_manifest(Path(found["folder"]))

    return build
