"""``pareto`` as a library call: the search's front over several budgets, random and measured subnets."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from ofa_edge.errors import OfaEdgeError
from ofa_edge.export.manifest import MANIFEST_NAME, read_manifest
from ofa_edge.latency.origin import origin_label
from ofa_edge.pipelines.checkpoint import open_run
from ofa_edge.pipelines.specialization import device_latency, resolve_predictor, search_setup
from ofa_edge.search.accuracy import read_accuracy_csv
from ofa_edge.search.evolution import EvolutionConfig
from ofa_edge.search.pareto import ParetoPoint, pareto_front, plot_pareto, write_pareto_csv
from ofa_edge.search.select import select_budgets


def pareto(checkpoint: str | os.PathLike, device: str, budgets_ms: list[float] | None = None, *,
           predictor: str | None = None, out: str | os.PathLike | None = None,
           tables_dir: str | os.PathLike = "latency_tables", n_random: int = 200, n_budgets: int = 8,
           config: EvolutionConfig = EvolutionConfig(), seed: int = 0,
           builds: str | os.PathLike | None = None) -> dict[str, Any]:
    """The search's front over several budgets, random subnets, the measured accuracy rows and the
    subnets built under ``builds``: PNG + CSV.

    Args:
        checkpoint: The trained supernet.
        device: Device profile name or ``.toml`` path with a latency table in ``tables_dir``.
        budgets_ms: Budgets to search (default: ``n_budgets`` spread between the fastest and slowest subnet).
        predictor: The accuracy predictor (default: ``predictor.pt`` beside the checkpoint).
        out: Folder for ``pareto.png`` and ``pareto.csv`` (default ``builds/<device>``).
        tables_dir: Folder of latency tables.
        n_random: Random subnets to plot.
        n_budgets: Budgets when ``budgets_ms`` is not given.
        config: Evolution settings.
        seed: Seed of the random subnets.
        builds: Folder whose manifests mark the built subnets (test top-1; default: ``out``).

    Returns:
        ``png``, ``csv``, the ``front`` points and the numbers of random, measured and built points.

    Raises:
        MissingStepError: no latency table or no predictor.
    """
    run = open_run(checkpoint)
    profile, table, _, latency = device_latency(device, tables_dir, run.space, run.n_classes)
    pred = resolve_predictor(run, predictor, required=True)
    setup = search_setup(run, pred, latency)
    if not budgets_ms:
        lo, hi = setup.latency.minimum()[0], setup.latency.maximum()[0]
        budgets_ms = list(np.round(np.linspace(lo, hi, n_budgets + 1)[1:], 4))
    results = select_budgets(setup, budgets_ms, "evolution", config=config)
    points = []
    front_subnets = [r.best.subnet for r in results]
    info = setup.describe(front_subnets)
    lat, acc = info["latency_ms"], info["predicted_top1"]
    for j in pareto_front(lat, acc):
        r = results[j]
        points.append(ParetoPoint("front", r.best.subnet.to_dict(), r.best.subnet.id, float(lat[j]),
                                  float(acc[j]), int(info["macs"][j]), int(info["params"][j]), "evolution",
                                  r.bounds["latency_ms"]))
    g = setup.codec.sample(np.random.default_rng(seed), n_random)
    rand = setup.codec.to_subnets(g)
    rinfo = setup.describe(rand)
    for j, s in enumerate(rand):
        if rinfo["latency_ms"][j] < 1e8:
            points.append(ParetoPoint("random", s.to_dict(), s.id, float(rinfo["latency_ms"][j]),
                                      float(rinfo["predicted_top1"][j]), int(rinfo["macs"][j]),
                                      int(rinfo["params"][j])))
    csv_rows = pred.meta.get("accuracy_csv")
    if csv_rows and not Path(csv_rows).is_file() and (run.path.parent / csv_rows).is_file():
        csv_rows = run.path.parent / csv_rows  # a packaged predictor names its rows relative to its folder
    if csv_rows and Path(csv_rows).is_file():
        rows = read_accuracy_csv(csv_rows, run.space)
        minfo = setup.describe([r.subnet for r in rows])
        for j, row in enumerate(rows):
            if minfo["latency_ms"][j] < 1e8:
                points.append(ParetoPoint("measured", row.subnet.to_dict(), row.subnet.id,
                                          float(minfo["latency_ms"][j]), float(minfo["predicted_top1"][j]),
                                          int(minfo["macs"][j]), int(minfo["params"][j]), measured_top1=row.top1))
    folder = Path(out) if out else Path("builds") / profile.name
    points += built_points(Path(builds) if builds else folder, run.space.name, profile.name)
    png = plot_pareto(folder / "pareto.png", points, f"{run.space.name} on {profile.name}")
    csv_path = write_pareto_csv(folder / "pareto.csv", points)
    return {"png": str(png), "csv": str(csv_path), "front": [p.__dict__ for p in points if p.kind == "front"],
            "n_random": sum(p.kind == "random" for p in points),
            "n_measured": sum(p.kind == "measured" for p in points),
            "n_built": sum(p.kind == "built" for p in points),
            "table_measured_on": origin_label(table.provenance, profile.connection.transport == "local")}


def built_points(folder: Path, space: str, device: str) -> list[ParetoPoint]:
    """The subnets built for ``device`` under ``folder`` (one per manifest of this space), as Pareto points."""
    points = []
    for path in sorted(folder.rglob(MANIFEST_NAME)) if folder.is_dir() else []:
        try:
            m = read_manifest(path.parent)
        except OfaEdgeError:
            continue  # a corrupt or foreign manifest is not this plot's business
        if m.space != space or m.extra.get("device") != device:
            continue
        lat, top1 = m.latency_ms or {}, m.top1 or {}
        points.append(ParetoPoint("built", m.subnet, m.subnet_id, float(lat.get("predicted") or 0.0),
                                  float(top1.get("predicted") or 0.0), m.macs, m.params, str(m.extra.get("selector", "")),
                                  m.extra.get("budget_ms"), lat.get("measured"), top1.get("fp32")))
    return points
