"""Accuracy data for the predictor: (subnet, resolution, top-1) rows measured on the validation split,
appended to a versioned CSV so an interrupted collection resumes where it stopped.

Each row records the checkpoint it was measured on and, from ``ofa-edge-accuracy/2`` on, how many training
images recalibrated BN first: a row's top-1 depends on both, so a file never mixes either. Files of
``ofa-edge-accuracy/1`` (no ``bn_images`` column) are read as rows of unknown budget; the first append
rewrites them as /2 with that column empty for the old rows."""

from __future__ import annotations

import csv
import io
import json
import os
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ofa_edge.errors import FileFormatError, InvalidValueError
from ofa_edge.io import atomic_write_text
from ofa_edge.space import SearchSpace, Subnet, sample, subnet_from_json

FORMAT = "ofa-edge-accuracy/2"
COLUMNS = ["format", "space", "checkpoint", "subnet_id", "r", "top1", "split", "bn_images", "subnet"]
FORMAT_V1 = "ofa-edge-accuracy/1"
COLUMNS_V1 = [c for c in COLUMNS if c != "bn_images"]


@dataclass(frozen=True)
class AccuracyRow:
    """One measured subnet: top-1 in percent on ``split`` after BN recalibration on ``bn_images`` training
    images (None: not recorded, a row of an ``ofa-edge-accuracy/1`` file)."""

    subnet: Subnet
    top1: float
    split: str
    bn_images: int | None = None


@dataclass(frozen=True)
class CollectResult:
    """All rows now in the CSV, and how many were measured by this call vs found already present
    (``unknown_budget``: rows kept from an ``ofa-edge-accuracy/1`` file, whose BN budget was not recorded)."""

    rows: list[AccuracyRow]
    evaluated: int
    skipped: int
    path: Path
    unknown_budget: int = 0


def plan_subnets(space: SearchSpace, n: int, seed: int = 0) -> list[Subnet]:
    """``n`` distinct subnets (resolution included) drawn with OFA's sampler from ``seed``: the same list
    every time, so a resumed collection asks for the same subnets."""
    if n < 1:
        raise InvalidValueError(f"samples: need at least 1, got {n}", "samples")
    if n > space.n_subnets:
        raise InvalidValueError(f"samples: {n} is more than the {space.n_subnets} subnets of space {space.name!r}",
                                "samples")
    rng = random.Random(seed)
    seen: dict[str, Subnet] = {}
    while len(seen) < n:
        s = sample(space, rng)
        seen.setdefault(s.id, s)
    return list(seen.values())


def _parse(path: Path, text: str, space: SearchSpace, source: str | None = None,
           bn_images: int | None = None) -> tuple[list[AccuracyRow], bool]:
    """Rows of a CSV text (of checkpoint ``source`` and BN budget ``bn_images`` if given); the second value is
    True when a torn (crash-interrupted) last line was dropped."""
    torn = bool(text) and not text.endswith("\n")
    if torn:
        text = text[: text.rfind("\n") + 1]
    reader = csv.DictReader(io.StringIO(text))
    if reader.fieldnames is None:
        return [], torn
    if reader.fieldnames == COLUMNS:
        fmt = FORMAT
    elif reader.fieldnames == COLUMNS_V1:
        fmt = FORMAT_V1
    else:
        raise FileFormatError(path, f"not an ofa-edge accuracy file: columns {reader.fieldnames}, "
                                    f"expected {COLUMNS}")
    rows = []
    fp = space.fingerprint()
    for line, rec in enumerate(reader, start=2):
        if rec["format"] != fmt:
            raise FileFormatError(path, f"line {line}: format {rec['format']!r} is not {fmt!r}")
        if rec["space"] != fp:
            raise FileFormatError(path, f"line {line}: rows of another search space (fingerprint "
                                        f"{rec['space']}, this checkpoint has {fp}); use another file")
        if source is not None and rec["checkpoint"] != source:
            raise FileFormatError(path, f"line {line}: measured on another checkpoint ({rec['checkpoint']}, "
                                        f"this one is {source}); its rows are stale: use another file")
        try:
            subnet = subnet_from_json(space, rec["subnet"])
            top1 = float(rec["top1"])
            bn = int(rec["bn_images"]) if rec.get("bn_images") else None
        except (ValueError, TypeError) as exc:
            raise FileFormatError(path, f"line {line}: {exc}") from None
        if subnet.id != rec["subnet_id"] or str(subnet.r) != rec["r"]:
            raise FileFormatError(path, f"line {line}: subnet_id/r do not match the subnet JSON")
        if bn_images is not None and bn is not None and bn != bn_images:
            raise FileFormatError(path, f"line {line}: measured after BN recalibration on {bn} images, this "
                                        f"call uses {bn_images}; its top-1 is not comparable: pass "
                                        f"--bn-images {bn} or use another file")
        rows.append(AccuracyRow(subnet, top1, rec["split"], bn))
    return rows, torn


def read_accuracy_csv(path: str | os.PathLike, space: SearchSpace, source: str | None = None,
                      bn_images: int | None = None) -> list[AccuracyRow]:
    """Rows of an accuracy CSV of ``space`` (and of checkpoint ``source`` and BN budget ``bn_images`` if
    given); a torn last line is ignored."""
    path = Path(path)
    if not path.is_file():
        raise FileFormatError(path, "no such file; collect accuracy rows with `ofa-edge predictor fit`")
    return _parse(path, path.read_text(encoding="utf-8"), space, source, bn_images)[0]


def _line(space: SearchSpace, row: AccuracyRow, source: str) -> str:
    buf = io.StringIO()
    bn = "" if row.bn_images is None else row.bn_images
    csv.writer(buf, lineterminator="\n").writerow(
        [FORMAT, space.fingerprint(), source, row.subnet.id, row.subnet.r, f"{row.top1:.6g}", row.split, bn,
         json.dumps(row.subnet.to_dict(), separators=(",", ":"))])
    return buf.getvalue()


def write_accuracy_csv(path: str | os.PathLike, space: SearchSpace, rows: list[AccuracyRow],
                       source: str) -> Path:
    """Write ``rows`` as a whole accuracy CSV of ``space`` measured on checkpoint ``source`` (atomically)."""
    path = Path(path)
    atomic_write_text(path, ",".join(COLUMNS) + "\n" + "".join(
        _line(space, r, source) for r in rows))
    return path


def collect_accuracy(space: SearchSpace, evaluate: Callable[[Subnet], float], path: str | os.PathLike,
                     n_samples: int, seed: int = 0, split: str = "val", source: str = "",
                     bn_images: int | None = None,
                     progress: Callable[[int, int, AccuracyRow], None] | None = None) -> CollectResult:
    """Measure ``evaluate(subnet)`` (top-1 %) for ``n_samples`` planned subnets, skipping those already in
    ``path``; every measured row is appended (flushed and fsynced) before the next one starts.
    ``source`` names the weights measured (e.g. the checkpoint's sha256 prefix) and ``bn_images`` the BN
    recalibration budget ``evaluate`` uses; rows of another checkpoint or another budget are refused."""
    if split == "test":
        raise InvalidValueError("accuracy rows for the predictor must come from the validation split, never test")
    path = Path(path)
    rows: list[AccuracyRow] = []
    if path.is_file():
        text = path.read_text(encoding="utf-8")
        rows, torn = _parse(path, text, space, source, bn_images)
        if torn or not text.startswith(",".join(COLUMNS) + "\n"):  # torn, empty or /1: rewritten as /2
            write_accuracy_csv(path, space, rows, source)
    else:
        atomic_write_text(path, ",".join(COLUMNS) + "\n")
    done = {r.subnet.id for r in rows}
    todo = [s for s in plan_subnets(space, n_samples, seed) if s.id not in done]
    skipped = n_samples - len(todo)
    with open(path, "a", encoding="utf-8") as fh:
        for i, subnet in enumerate(todo):
            row = AccuracyRow(subnet, float(evaluate(subnet)), split, bn_images)
            fh.write(_line(space, row, source))
            fh.flush()
            os.fsync(fh.fileno())
            rows.append(row)
            if progress is not None:
                progress(i + 1, len(todo), row)
    return CollectResult(rows, len(todo), skipped, path, sum(r.bn_images is None for r in rows))
