"""The validation file: whole subnets measured on the device, with the table's prediction for each.

Format (CSV, written atomically)::

    # ofa-edge latency validation
    # format: 1
    # settings: <the device profile's measurement settings>
    split,name,space,n_classes,subnet,n_layers,raw_ms,predicted_ms,measured_ms,mean_ms,p90_ms

``split`` is ``fit`` (used to fit the correction) or ``test`` (held out; the metrics use only these).
"""

from __future__ import annotations

import csv
import io
import math
import os
from dataclasses import dataclass, replace
from pathlib import Path

from ofa_edge.errors import FileFormatError
from ofa_edge.io import atomic_write_text
from ofa_edge.latency.table import MAX_MS

VALIDATION_MAGIC = "# ofa-edge latency validation"
VALIDATION_FORMAT = 1
COLUMNS = ("split", "name", "space", "n_classes", "subnet", "n_layers", "raw_ms", "predicted_ms", "measured_ms",
           "mean_ms", "p90_ms")


@dataclass(frozen=True)
class Measured:
    """One whole subnet measured on the device (ms) and what the table predicts for it."""

    split: str
    name: str
    space: str
    n_classes: int
    subnet: str  # the subnet as compact JSON
    n_layers: int
    raw_ms: float
    predicted_ms: float
    measured_ms: float
    mean_ms: float
    p90_ms: float

    def with_prediction(self, raw_ms: float, predicted_ms: float) -> "Measured":
        return replace(self, raw_ms=raw_ms, predicted_ms=predicted_ms)


def save_validation(path: str | os.PathLike, settings: str, rows: list[Measured]) -> None:
    """Write the validation file atomically."""
    out = io.StringIO()
    out.write(f"{VALIDATION_MAGIC}\n# format: {VALIDATION_FORMAT}\n# settings: {settings}\n")
    w = csv.writer(out, lineterminator="\n")
    w.writerow(COLUMNS)
    for r in rows:
        w.writerow([r.split, r.name, r.space, r.n_classes, r.subnet, r.n_layers,
                    *(f"{v:.6g}" for v in (r.raw_ms, r.predicted_ms, r.measured_ms, r.mean_ms, r.p90_ms))])
    atomic_write_text(path, out.getvalue())


def load_validation(path: str | os.PathLike) -> tuple[str, list[Measured]]:
    """(settings, rows) of a validation file; a corrupt file is refused naming it."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise FileFormatError(path, "validation file not found; profile the device with held-out validation "
                                    "subnets first") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise FileFormatError(path, f"cannot read ({exc})") from None
    if len(lines) < 4 or lines[0] != VALIDATION_MAGIC or lines[1] != f"# format: {VALIDATION_FORMAT}" \
            or not lines[2].startswith("# settings: "):
        raise FileFormatError(path, f"not an ofa-edge validation file of format {VALIDATION_FORMAT}")
    settings = lines[2][len("# settings: "):]
    try:
        return settings, _rows(path, lines)
    except csv.Error as exc:
        raise FileFormatError(path, f"not a valid CSV file ({exc})") from None


def _rows(path: Path, lines: list[str]) -> list[Measured]:
    reader = csv.reader(lines[3:])
    if tuple(next(reader)) != COLUMNS:
        raise FileFormatError(path, f"column header must be {','.join(COLUMNS)}")
    rows = []
    for n, rec in enumerate(reader, start=5):
        if not rec:
            continue
        try:
            if len(rec) != len(COLUMNS) or rec[0] not in ("fit", "test"):
                raise ValueError("bad split or field count")
            nums = [float(v) for v in rec[6:]]
            if not all(math.isfinite(v) and 0 <= v <= MAX_MS for v in nums):
                raise ValueError("latency out of range")
            n_classes, n_layers = int(rec[3]), int(rec[5])
            if not (1 <= n_classes <= 100000 and 1 <= n_layers <= 10000):
                raise ValueError(f"n_classes {n_classes} or n_layers {n_layers} out of range")
            rows.append(Measured(rec[0], rec[1], rec[2], n_classes, rec[4], n_layers, *nums))
        except ValueError as exc:
            raise FileFormatError(path, f"line {n}: {exc}") from None
    return rows
