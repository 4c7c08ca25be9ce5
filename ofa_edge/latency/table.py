"""The latency table: per-layer latencies (ms) of one device + runtime, with provenance and a correction.

File format (CSV with ``#`` header lines, written atomically)::

    # ofa-edge latency table
    # format: 1
    # provenance: {"device": ..., "runtime": ..., "runtime_version": ..., "threads": ..., "cpu": ..., ...}
    # correction: {"scale": 1.0, "per_layer": 0.0, "offset": 0.0, "n_fit": 0, "by_resolution": {"32": 1.02}}
    key,kind,median_ms,mean_ms,p90_ms,std_ms,min_ms,repeats
    Conv-input:32x32x3-output:32x32x8,stem,0.0123,...

``key`` is the reference OFA LUT key (``LayerSpec.lut_key()``). The prediction of a subnet is
``(scale * sum(latency of its layers) + per_layer * n_layers + offset) * by_resolution.get(r, 1)``, a layer's
latency being the column
named by the profile's statistic (provenance ``stat``: ``median`` -> ``median_ms``, the default; ``min`` ->
``min_ms``).
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from ofa_edge.devices.profile import STATISTICS
from ofa_edge.errors import FileFormatError, MissingStepError
from ofa_edge.io import atomic_write_text
from ofa_edge.space import SearchSpace, Subnet, layers

TABLE_MAGIC = "# ofa-edge latency table"
TABLE_FORMAT = 1
COLUMNS = ("key", "kind", "median_ms", "mean_ms", "p90_ms", "std_ms", "min_ms", "repeats")
STATS = ("median_ms", "mean_ms", "p90_ms", "std_ms", "min_ms")
KINDS = ("stem", "mbconv", "final_expand", "pool", "feature_mix", "classifier")
#: Latencies above this (ms) in a table are refused as implausible.
MAX_MS = 1e6


@dataclass(frozen=True)
class Row:
    """Measured latency statistics of one layer (milliseconds)."""

    key: str
    kind: str
    median_ms: float
    mean_ms: float
    p90_ms: float
    std_ms: float
    min_ms: float
    repeats: int


@dataclass(frozen=True)
class Correction:
    """Per-device correction from summed layer latencies to whole-model latency.

    ``by_resolution`` maps an input resolution to a factor on the prediction: summed one-layer models
    misjudge whole subnets by a few percent differently per resolution (cache footprint, per-call overhead
    relative to the work); resolutions without a factor use 1.
    """

    scale: float = 1.0
    per_layer: float = 0.0
    offset: float = 0.0
    n_fit: int = 0
    by_resolution: dict[int, float] = field(default_factory=dict)

    def apply(self, raw_ms: float, n_layers: int, resolution: int | None = None) -> float:
        """Whole-model latency (ms) from the summed layer latencies of a subnet at ``resolution``."""
        return (self.scale * raw_ms + self.per_layer * n_layers + self.offset) * self.by_resolution.get(resolution, 1.0)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"scale": self.scale, "per_layer": self.per_layer, "offset": self.offset,
                               "n_fit": self.n_fit}
        if self.by_resolution:  # tables without per-resolution factors keep their earlier header
            out["by_resolution"] = {str(r): f for r, f in sorted(self.by_resolution.items())}
        return out


@dataclass
class LatencyTable:
    """Layer latencies of one device/runtime, the provenance and the fitted correction."""

    rows: dict[str, Row] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)
    correction: Correction = field(default_factory=Correction)
    path: str = ""

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def column(self) -> str:
        """The column holding each layer's latency: the profile's statistic (``median_ms`` unless ``min``)."""
        return STATISTICS.get(str(self.provenance.get("stat", "median")), "median_ms")

    def latency(self, key: str) -> float:
        """The latency (ms) of the layer ``key`` by the table's statistic."""
        return getattr(self.rows[key], self.column)

    def missing(self, keys: Iterable[str]) -> list[str]:
        """The keys of ``keys`` this table has no row for."""
        return [k for k in keys if k not in self.rows]

    def raw(self, space: SearchSpace, subnet: Subnet, n_classes: int) -> tuple[float, int]:
        """Sum of the latencies of the subnet's layers (ms) and the number of layers."""
        keys = [spec.lut_key() for spec in layers(space, subnet, n_classes)]
        missing = self.missing(keys)
        if missing:
            raise MissingStepError(f"{self.path or 'latency table'} has no latency for {missing[0]} "
                                   f"({len(missing)} of the subnet's {len(keys)} layers missing); profile the "
                                   f"device for resolution {subnet.r} of space {space.name} with {n_classes} "
                                   "classes", "profile", {"device": "D", "space": space.name, "classes": n_classes,
                                                          "resolutions": subnet.r})
        column = self.column  # once per subnet: the search predicts thousands of them
        return sum(getattr(self.rows[k], column) for k in keys), len(keys)

    def predict(self, space: SearchSpace, subnet: Subnet, n_classes: int | None = None) -> float:
        """Predicted latency (ms) of ``subnet``: summed layer latencies plus the device correction."""
        n_classes = n_classes if n_classes is not None else int(self.provenance.get("n_classes", 1000))
        raw, n = self.raw(space, subnet, n_classes)
        return self.correction.apply(raw, n, subnet.r)

    # -- files ----------------------------------------------------------------------------------
    def to_csv(self) -> str:
        out = io.StringIO()
        out.write(f"{TABLE_MAGIC}\n# format: {TABLE_FORMAT}\n")
        out.write(f"# provenance: {json.dumps(self.provenance, sort_keys=True)}\n")
        out.write(f"# correction: {json.dumps(self.correction.to_dict(), sort_keys=True)}\n")
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(COLUMNS)
        for row in self.rows.values():
            writer.writerow([row.key, row.kind, *(f"{getattr(row, s):.6g}" for s in STATS), row.repeats])
        return out.getvalue()

    def save(self, path: str | os.PathLike) -> Path:
        """Write the table atomically to ``path``."""
        atomic_write_text(path, self.to_csv())
        self.path = str(path)
        return Path(path)


def load_table(path: str | os.PathLike) -> LatencyTable:
    """Read and validate a latency table; a wrong, corrupt or newer file is refused naming the file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise FileFormatError(path, "latency table not found; profile the device first") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise FileFormatError(path, f"cannot read latency table ({exc})") from None
    return parse_table(text, path)


def parse_table(text: str, path: str | os.PathLike = "<table>") -> LatencyTable:
    """Parse the CSV text of a latency table (see the module docstring for the format)."""
    def bad(problem: str) -> FileFormatError:
        return FileFormatError(path, problem)

    lines = text.splitlines()
    if not lines or lines[0].strip() != TABLE_MAGIC:
        raise bad(f"not an ofa-edge latency table (first line must be {TABLE_MAGIC!r})")
    header: dict[str, str] = {}
    i = 1
    while i < len(lines) and lines[i].startswith("#"):
        name, sep, value = lines[i][1:].partition(":")
        if not sep:
            raise bad(f"line {i + 1}: header lines look like '# name: value'")
        header[name.strip()] = value.strip()
        i += 1
    if header.get("format") != str(TABLE_FORMAT):
        raise bad(f"format {header.get('format')!r} is not supported (this ofa-edge reads format "
                  f"{TABLE_FORMAT}); rebuild the table with this version")
    try:
        provenance = json.loads(header.get("provenance", "{}"))
        corr = json.loads(header.get("correction", "{}"))
    except ValueError as exc:
        raise bad(f"provenance/correction header is not valid JSON ({exc})") from None
    if not isinstance(provenance, dict) or not isinstance(corr, dict):
        raise bad("provenance and correction headers must be JSON objects")
    correction = _parse_correction(corr, bad)
    try:
        return _parse_rows(lines, i, header, provenance, correction, path, bad)
    except csv.Error as exc:
        raise bad(f"not a valid CSV table ({exc})") from None


def _parse_rows(lines, i, header, provenance, correction, path, bad) -> LatencyTable:
    reader = csv.reader(lines[i:])
    columns = next(reader, None)
    if columns is None or tuple(columns) != COLUMNS:
        raise bad(f"column header must be {','.join(COLUMNS)}, got {columns}")
    rows: dict[str, Row] = {}
    for n, rec in enumerate(reader, start=i + 2):
        if not rec:
            continue
        if len(rec) != len(COLUMNS):
            raise bad(f"line {n}: expected {len(COLUMNS)} fields, got {len(rec)}")
        key, kind = rec[0], rec[1]
        if not key or len(key) > 300 or kind not in KINDS:
            raise bad(f"line {n}: bad key or kind {kind!r} (kinds: {', '.join(KINDS)})")
        if key in rows:
            raise bad(f"line {n}: duplicate key {key}")
        vals = []
        for col, raw in zip(STATS, rec[2:7]):
            try:
                v = float(raw)
            except ValueError:
                raise bad(f"line {n}: {col} {raw!r} is not a number") from None
            if not math.isfinite(v) or v < 0 or v > MAX_MS:
                raise bad(f"line {n}: {col} = {raw} is not a plausible latency in ms (0..{MAX_MS:g}, finite)")
            vals.append(v)
        try:
            repeats = int(rec[7])
        except ValueError:
            raise bad(f"line {n}: repeats {rec[7]!r} is not an integer") from None
        if repeats < 1:
            raise bad(f"line {n}: repeats must be >= 1")
        rows[key] = Row(key, kind, *vals, repeats)
    return LatencyTable(rows, provenance, correction, str(path))


def _parse_correction(corr: dict[str, Any], bad) -> Correction:
    try:
        values = {k: float(corr.get(k, d)) for k, d in (("scale", 1.0), ("per_layer", 0.0), ("offset", 0.0))}
        n_fit = int(corr.get("n_fit", 0))
    except (TypeError, ValueError, OverflowError):
        raise bad("correction values must be numbers") from None
    if not 0 <= n_fit <= 10**6:
        raise bad(f"correction n_fit {n_fit} is not plausible (0..1000000)")
    if not all(math.isfinite(v) and abs(v) < MAX_MS for v in values.values()) or not 0 < values["scale"] < 100:
        raise bad(f"correction {corr} is not plausible (scale must be in (0, 100), all finite)")
    by_res = corr.get("by_resolution", {})
    try:
        factors = {int(r): float(f) for r, f in by_res.items()} if isinstance(by_res, dict) else None
    except (TypeError, ValueError, OverflowError):
        factors = None
    if factors is None or not all(0 < r <= 100000 and math.isfinite(f) and 0.1 <= f <= 10 for r, f in factors.items()):
        raise bad(f"correction by_resolution {by_res!r} is not plausible (resolution: factor in 0.1..10)")
    return Correction(n_fit=n_fit, by_resolution=factors, **values)
