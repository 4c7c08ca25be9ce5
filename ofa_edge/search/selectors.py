"""Subnet selectors besides evolution: TOFA's last-sampled rule over the training log."""

from __future__ import annotations

import csv
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ofa_edge.errors import FileFormatError
from ofa_edge.search.cost import Constraint
from ofa_edge.search.evolution import Candidate, InfeasibleBudgetError, ScoreFn, SearchResult
from ofa_edge.search.genome import GenomeCodec
from ofa_edge.space import SearchSpace, Subnet, subnet_from_json

_SUBNET_COLUMNS = ("subnet", "subnet_json", "arch")
_ITER_COLUMNS = ("iteration", "last_iteration", "last_sampled", "step", "iter")


@dataclass(frozen=True)
class SampledEntry:
    """A subnet of the training log with the iteration it was last sampled at (``row`` breaks ties)."""

    subnet: Subnet
    iteration: int
    row: int


def read_sampled_log(path: str | os.PathLike, space: SearchSpace) -> list[SampledEntry]:
    """The training log ``runs/<run>/sampled.csv``: one entry per distinct subnet, at its latest iteration."""
    path = Path(path)
    if not path.is_file():
        raise FileFormatError(path, "no such file; the last-sampled selector needs the training log "
                                    "sampled.csv that `ofa-edge train` writes next to supernet.pt")
    try:
        return _read_sampled_log(path, space)
    except (UnicodeDecodeError, csv.Error) as exc:
        raise FileFormatError(path, f"cannot read the training log ({exc})") from None


def sampled_entries(record: dict[str, list], space: SearchSpace) -> list[SampledEntry]:
    """The entries of an in-memory sampled record (id -> [json, last iteration, count, position]) as
    ``read_sampled_log`` gives them for the sampled.csv written from it."""
    latest: dict[Subnet, SampledEntry] = {}
    for row, (js, it, _count, _pos) in enumerate(sorted(record.values(), key=lambda e: (e[1], e[3]))):
        subnet = subnet_from_json(space, js)
        latest[subnet] = SampledEntry(subnet, int(it), row)
    return sorted(latest.values(), key=lambda e: (e.iteration, e.row))


def _read_sampled_log(path: Path, space: SearchSpace) -> list[SampledEntry]:
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        fields = reader.fieldnames or []
        scol = next((c for c in _SUBNET_COLUMNS if c in fields), None)
        icol = next((c for c in _ITER_COLUMNS if c in fields), None)
        if scol is None or icol is None:
            raise FileFormatError(path, f"not a training log: needs a subnet column ({'/'.join(_SUBNET_COLUMNS)}) "
                                        f"and an iteration column ({'/'.join(_ITER_COLUMNS)}); has {fields}")
        latest: dict[Subnet, SampledEntry] = {}
        for row, rec in enumerate(reader):
            if rec.get(scol) is None or rec.get(icol) is None:  # torn last line
                continue
            if "format" in rec and not str(rec["format"]).startswith("ofa-edge-sampled"):
                raise FileFormatError(path, f"line {row + 2}: format {rec['format']!r} is not a training log")
            try:
                subnet = subnet_from_json(space, rec[scol])
                it = int(float(rec[icol]))
            except (ValueError, TypeError) as exc:
                raise FileFormatError(path, f"line {row + 2}: {exc}") from None
            prev = latest.get(subnet)
            if prev is None or (it, row) >= (prev.iteration, prev.row):
                latest[subnet] = SampledEntry(subnet, it, row)
    if not latest:
        raise FileFormatError(path, "the training log holds no subnets")
    return sorted(latest.values(), key=lambda e: (e.iteration, e.row))


def last_sampled(codec: GenomeCodec, entries: list[SampledEntry], constraints: list[Constraint],
                 score: ScoreFn | None = None) -> SearchResult:
    """TOFA's rule (Algorithm 2): of the logged subnets meeting every constraint, the one sampled last."""
    t0 = time.perf_counter()
    g = codec.from_subnets([e.subnet for e in entries])
    costs = {c.name: c.cost(g) for c in constraints}
    ok = np.ones(len(entries), dtype=bool)
    for c in constraints:
        ok &= costs[c.name] <= c.bound
    if not ok.any():
        parts = []
        for c in constraints:
            low = float(costs[c.name].min())
            parts.append(f"{c.name} <= {c.describe()} (the {'fastest' if c.cost.unit == 'ms' else 'smallest'} "
                         f"logged subnet has {c.describe(low)})")
        raise InfeasibleBudgetError(f"no subnet of the training log meets {' and '.join(parts)}; raise the "
                                    "budget or use the evolution selector")
    keyed = [(entries[i].iteration, entries[i].row, i) for i in np.flatnonzero(ok)]
    keyed.sort(reverse=True)
    scores = score(g) if score is not None else np.full(len(entries), np.nan)
    ranking = [Candidate(entries[i].subnet, float(scores[i]), {k: float(v[i]) for k, v in costs.items()})
               for _, _, i in keyed]
    return SearchResult(ranking[0], ranking, [], {c.name: c.bound for c in constraints}, "last-sampled",
                        time.perf_counter() - t0, len(entries),
                        {"iteration": entries[keyed[0][2]].iteration})
